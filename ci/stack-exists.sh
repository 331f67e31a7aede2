#!/usr/bin/env bash
# Does the backend hold stack <stack>? For a preview (issue 24 item 5): a pull request may
# preview a stack whose first deploy has not run yet, and a preview must neither fail on it
# nor create it (prod's preview role may not write state; `pulumi stack select --create`
# would write the stack's checkpoint).
#
# Runs `pulumi stack select --stack <stack>` (no --create), which fails with
# "no stack named '<stack>' found" when the backend has no such stack
# (pulumi/pulumi pkg/cmd/pulumi/stack/stack_select.go). Prints `exists=true` or
# `exists=false` on stdout (for $GITHUB_OUTPUT); on a missing stack also one line for the
# job summary. Any other failure (no credentials, access denied, ...) is printed and exit 1.
set -euo pipefail

stack=${1:?usage: ci/stack-exists.sh <stack>}
err=$(mktemp)
trap 'rm -f "$err"' EXIT

if pulumi stack select --stack "$stack" 2>"$err" >/dev/null; then
  echo "exists=true"
  exit 0
fi
if grep -qF "no stack named '$stack' found" "$err"; then
  line="stack $stack does not exist yet; its first deploy creates it (nothing to preview)"
  echo "$line" >&2
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then echo "$line" >>"$GITHUB_STEP_SUMMARY"; fi
  echo "exists=false"
  exit 0
fi
cat "$err" >&2
exit 1
