#!/usr/bin/env bash
# Installs and starts everything the test suite needs, idempotently: each
# test/infra/NN-*.sh in order. Safe to run again; a running service is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for step in "$here"/[0-9][0-9]-*.sh; do
  echo "==> test/infra/$(basename "$step")"
  bash "$step"
done
