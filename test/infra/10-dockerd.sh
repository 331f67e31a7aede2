#!/usr/bin/env bash
# The real Docker Engine the integration tests talk to: Debian's docker.io, with its
# dockerd started here (no init system runs it on this machine).
set -euo pipefail
# shellcheck source=test/infra/lib.sh
. "$(dirname "$0")/lib.sh"
need_packages docker.io iptables ca-certificates
if docker info >/dev/null 2>&1; then echo "dockerd already running"; exit 0; fi
# /usr/local/bin/docker may be a newer client; the daemon is Debian's.
nohup /usr/sbin/dockerd --host unix:///var/run/docker.sock >"$DOCKYARD_TEST_STATE/dockerd.log" 2>&1 &
wait_for 60 docker info || { tail -50 "$DOCKYARD_TEST_STATE/dockerd.log" >&2; exit 1; }
docker version --format 'docker client {{.Client.Version}}, engine {{.Server.Version}}'
