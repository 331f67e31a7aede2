#!/bin/bash
# Dockyard smoke (scripts/smoke.ts): one HTTP request from a host to its own proxy, run on
# the host over SSH (bash reads this script from stdin).
#   host-request.sh <port> <path> <seconds to wait for the answer>
# GET <path> on 127.0.0.1:<port> (HTTP/1.0: the proxy closes after it), as the serving gate
# asks the proxy's monitor (components/rollout/serving-gate.sh). Prints one line:
#   dockyard-smoke: answer <status line>
#   dockyard-smoke: connection refused | connection closed without an answer | no answer within <seconds>s
# and exits 0; any other exit status is the host's shell failing, not the proxy's answer.
set -uo pipefail

port=$1
path=$2
wait=$3

if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
  echo "dockyard-smoke: connection refused"
  exit 0
fi
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nUser-Agent: dockyard-smoke\r\n\r\n' "$path" "$port" >&3 2>/dev/null || true
line=""
IFS= read -r -t "$wait" line <&3
rc=$?
exec 3<&- 3>&-
if [[ -n $line ]]; then
  printf 'dockyard-smoke: answer %s\n' "${line%$'\r'}"
elif ((rc > 128)); then
  echo "dockyard-smoke: no answer within ${wait}s"
else
  echo "dockyard-smoke: connection closed without an answer"
fi
