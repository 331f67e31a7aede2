#!/usr/bin/env bash
# The host image the host harness boots (test/host/harness.ts) is the product's local host
# image (components/local-host/: Dockerfile, built by build-image.sh): a Debian 12 "cloud
# image" booted with systemd as PID 1 and a NoCloud seed. Docker Hub is not reachable here,
# so its base is a debootstrap tree of bookworm (build-image.sh --debootstrap).
#
# Cached: build-image.sh tags dockyard/host:<recipe hash> and builds only when the recipe
# changed; this script also tags it dockyard/host:latest for the harness.
#
# The apt cache the hosts use is started by 35-apt-cache.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_packages debootstrap e2fsprogs openssh-client iproute2 busybox-static

image=$(bash "$(dirname "$0")/../../components/local-host/build-image.sh" --debootstrap)
docker tag "$image" dockyard/host:latest
# Images of previous recipes only waste space.
docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^dockyard/host:[0-9a-f]{12}$' \
  | grep -v "^$image\$" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "host image $image"
