#!/usr/bin/env bash
# Installs and starts everything the test suite needs, idempotently: each
# test/infra/NN-*.sh in order. Safe to run again; a running service is left alone.
set -euo pipefail
# What every step needs, checked first and with bash builtins only: root and Debian's apt.
# Without them, one line says so and names what works instead (issue 15).
lacking=()
[ "$EUID" -eq 0 ] || lacking+=("root (this is uid $EUID)")
{ command -v apt-get && command -v dpkg-query; } >/dev/null || lacking+=("Debian's apt (no apt-get/dpkg-query on PATH)")
if [ ${#lacking[@]} -gt 0 ]; then
  missing=${lacking[0]}${lacking[1]:+ and ${lacking[1]}}
  echo "npm test needs root and Debian's apt (it installs and starts Docker Engine, registries and test tools); missing here: $missing. Without them, run the unit tests: npm run test:unit" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
for step in "$here"/[0-9][0-9]-*.sh; do
  echo "==> test/infra/$(basename "$step")"
  bash "$step"
done
