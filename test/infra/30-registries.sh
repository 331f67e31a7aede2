#!/usr/bin/env bash
# Two real OCI registries on loopback (Debian's docker-registry) for promote/rollback
# tests and the promote benchmark: A on 127.0.0.1:5001, B on 127.0.0.1:5002, each with
# its own config and storage under $DOCKYARD_TEST_STATE, delete enabled, no auth.
# skopeo is the reference copier the benchmark compares against.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_packages docker-registry skopeo curl e2fsprogs

start_registry() {
  local name=$1 port=$2
  local dir="$DOCKYARD_TEST_STATE/registry-$name"
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
YAML
  if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
    echo "registry $name already running on 127.0.0.1:$port"
    return 0
  fi
  nohup /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/pid"
  wait_for 30 curl -fsS "http://127.0.0.1:$port/v2/" || { tail -30 "$dir/registry.log" >&2; exit 1; }
  echo "registry $name started on 127.0.0.1:$port"
}

start_registry a 5001
start_registry b 5002
skopeo --version
