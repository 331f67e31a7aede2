#!/bin/bash
# Dockyard: the serving gate of one host (components/rollout.ts). Run on the host over SSH
# after the fleet's containers there were created; it ends a host's turn in a rollout.
#   serving-gate.sh <timeout seconds> <admit seconds> <monitor path> [<published port>...]
# Waits until the proxy's monitor (the path the front door checks) answers
# 200 on every published port from the host itself, then waits <admit seconds> more: the
# front door's healthy threshold x interval, the time its checks take to send traffic to
# the host again. Exit 1 with the reason when a port does not answer 200 within the timeout.
set -euo pipefail

timeout=$1
admit=$2
monitor_path=$3
shift 3
deadline=$((SECONDS + timeout))

# The status line of GET <path> on 127.0.0.1:<port> (HTTP/1.0: the proxy closes after it), or nothing.
status() {
  local line=""
  if exec 3<>"/dev/tcp/127.0.0.1/$1"; then
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$monitor_path" >&3 || true
    IFS= read -r -t 5 line <&3 || true
    exec 3<&- 3>&-
  fi 2>/dev/null
  printf '%s' "${line%$'\r'}"
}

for port in "$@"; do
  while :; do
    answer=$(status "$port")
    [[ $answer =~ ^HTTP/1\.[01]\ 200 ]] && break
    if ((SECONDS >= deadline)); then
      echo "dockyard: $(hostname): the proxy's monitor on port $port did not answer 200 within ${timeout}s (last answer: ${answer:-none}); this host's turn in the rollout failed, the next hosts were not touched" >&2
      exit 1
    fi
    sleep 1
  done
  echo "dockyard: $(hostname): port $port serves (monitor 200)"
done
if ((admit > 0)); then
  echo "dockyard: $(hostname): waiting ${admit}s for the front door to admit the host again"
  sleep "$admit"
fi
