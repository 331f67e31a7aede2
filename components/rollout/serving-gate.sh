#!/bin/bash
# Dockyard: the serving gate of one host (components/rollout.ts). Run on the host over SSH
# after the fleet's containers there were created; it ends a host's turn in a rollout.
#   serving-gate.sh <timeout seconds> <admit seconds> <monitor path> [<published port>...] [-- <container id>...]
# Waits until every container named after `--` runs and Docker reports it healthy, then until
# the proxy's monitor (the path the front door checks) answers 200 on every published port
# from the host itself, then waits <admit seconds> more: the front door's healthy threshold x
# interval, the time its checks take to send traffic to the host again. Exit 1 with the reason
# when a container is not healthy or a port does not answer 200 within the timeout.
#
# Why the containers' health is checked here although the provider's `wait` checked it at
# create: a container whose wait failed is kept by Pulumi with an initialization error, and
# the next `up` only updates it, without waiting (components/rollout.ts). This gate runs again
# then (its triggers hold the container ids) and stops the rollout until the container is healthy.
set -euo pipefail

timeout=$1
admit=$2
monitor_path=$3
shift 3
deadline=$((SECONDS + timeout))
ports=()
while (($# > 0)) && [[ $1 != -- ]]; do
  ports+=("$1")
  shift
done
(($# > 0)) && shift
containers=("$@")

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

# "<running> <health status>" of a container as Docker reports it, or what docker said.
health() {
  docker inspect -f '{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' "$1" 2>&1 | head -1
}

for id in "${containers[@]}"; do
  while :; do
    state=$(health "$id")
    [[ $state == "true healthy" ]] && break
    if ((SECONDS >= deadline)); then
      read -r running healthy _ <<<"$state" || true
      echo "dockyard: $(hostname): container ${id:0:12} is not healthy within ${timeout}s (running: ${running:-?}, health: ${healthy:-?}); this host's turn in the rollout failed, the next hosts were not touched" >&2
      docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$id" 2>/dev/null | tail -3 | sed 's/^/dockyard:   last health check: /' >&2 || true
      exit 1
    fi
    sleep 1
  done
  echo "dockyard: $(hostname): container ${id:0:12} is healthy"
done

for port in "${ports[@]}"; do
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
