#!/bin/bash
# Dockyard: provisions the engine, one step after the other; stops at the first failure,
# so the readiness marker (written by the last step) means every step succeeded.
# Part of components/engine/ (written as it is; the values come from the env file).
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh
for step in $STEPS; do
  echo "dockyard: step $step" >&2
  "$SCRIPT_DIR/dockyard-$step.sh"
done
echo "dockyard: all steps done" >&2
