#!/usr/bin/env bash
# Runs shellcheck on every shell script in the repository (rendered user-data scripts are
# checked by test/components/engine.int.test.ts).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v shellcheck >/dev/null || { echo "shellcheck missing: run 'bash test/infra/up.sh' (or apt-get install shellcheck)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.sh' .ci/run)
shellcheck -x -P SCRIPTDIR -P . "${files[@]}"
echo "shellcheck: ${#files[@]} scripts clean"
