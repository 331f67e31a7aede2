#!/bin/bash
# Dockyard: start the engine, check it, then write the readiness marker
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh

systemctl daemon-reload
containerd_unit=$(first_unit containerd.service) || die "no containerd.service unit"
systemctl enable --now "$containerd_unit"
# enable --now leaves a running engine alone.
systemctl enable --now docker.service

retry 60 2 docker info >/dev/null 2>&1 || die "docker info did not answer within 2 minutes"
server=$(docker version --format '{{.Server.Version}}')
root=$(docker info --format '{{.DockerRootDir}}')
[ "$root" = "$DATA_ROOT" ] || die "engine data-root is $root, expected $DATA_ROOT on the data volume"

# The engine must not listen on TCP, except the metrics endpoint on loopback and the host
# ports its containers publish: with userland-proxy off, dockerd holds each published port
# open itself. A host that boots on a kept data volume (a replacement, a reboot) has its
# containers back before this check, the proxy's published ports included. Swarm mode: the
# swarm's own ports (ENGINE_LISTEN_PORTS, 2377 and 7946), open to the stack's hosts only by
# their security group; a host that boots with its kept swarm state listens on them at once.
command -v ss >/dev/null 2>&1 || need_cmd ss iproute2 iproute
published=$(docker ps -q | xargs -r docker inspect -f '{{range .NetworkSettings.Ports}}{{range .}}{{.HostPort}} {{end}}{{end}}' | tr ' ' '\n' | sed '/^$/d' | sort -u)
listeners=$(ss -Hltnp | awk '/users:\(\("dockerd",/ { print $4 }' | sort -u)
for l in $listeners; do
  [ -n "$METRICS_ADDR" ] && [ "$l" = "$METRICS_ADDR" ] && continue
  printf '%s\n' "$published" | grep -qx "${l##*:}" && continue
  # shellcheck disable=SC2086 # a list of port numbers
  printf '%s\n' $ENGINE_LISTEN_PORTS | grep -qx "${l##*:}" && continue
  die "dockerd listens on TCP $l; only the unix socket (and metrics on $METRICS_ADDR) is allowed"
done

# CIS 5.2: where the kernel has AppArmor, the engine must confine containers with it.
if [ -n "$APPARMOR" ] && [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = "Y" ]; then
  docker info --format '{{json .SecurityOptions}}' | grep -q 'name=apparmor' || die "the kernel has AppArmor but the engine does not use it (docker info SecurityOptions)"
fi

tmp=$(mktemp "$READY_MARKER.XXXXXX")
printf 'fingerprint=%s\nchannel=%s\nversion=%s\nserver=%s\n' "$ENGINE_FINGERPRINT" "$ENGINE_CHANNEL" "$ENGINE_VERSION" "$server" >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$READY_MARKER"
log "engine $server ready (data-root $root); wrote $READY_MARKER"
