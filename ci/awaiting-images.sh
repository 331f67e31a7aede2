#!/usr/bin/env bash
# After up-test's `pulumi up` (issue 24 item 8): does the stack still wait for images?
#
#   ci/awaiting-images.sh OUTPUTS_JSON     (pulumi stack output --json)
#
# Reads the stack output awaitingImage (index.ts: { services: [<name>...], proxy: <bool> }):
# the services the stack file has no digest for yet, and whether the proxy's is missing. Prints
# `awaiting=true` when anything waits (a new stack's first up, or a new service: README "The
# first deploy of a new stack" step 1 is done, the build job's digest pull request is step 2,
# its merge the second up), else `awaiting=false`; says which on stderr and, in GitHub
# Actions, in the job summary. Exit 2 when the file is not outputs with awaitingImage.
set -euo pipefail
outputs=${1:?usage: ci/awaiting-images.sh OUTPUTS_JSON}
if ! jq -e '(.awaitingImage.services | type) == "array" and (.awaitingImage.proxy | type) == "boolean"' "$outputs" >/dev/null 2>&1; then
  echo "$outputs: no stack output awaitingImage { services: [...], proxy: true|false } (index.ts exports it)" >&2
  exit 2
fi
waiting=$(jq -r '[.awaitingImage.services[]] + (if .awaitingImage.proxy then ["haproxy (the proxy)"] else [] end) | join(", ")' "$outputs")
if [ -n "$waiting" ]; then
  msg="awaiting images: $waiting. Their repositories exist now; the build job pushes the images and opens the digest pull request, whose merge deploys them. Not smoke-tested, and test's tested commit (dockyard:commit) is unchanged."
  echo "awaiting=true"
else
  msg="every declared service and the proxy have a digest"
  echo "awaiting=false"
fi
echo "$msg" >&2
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then echo "$msg" >>"$GITHUB_STEP_SUMMARY"; fi
