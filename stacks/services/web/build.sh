#!/usr/bin/env bash
# Builds the example web image locally from Debian's busybox-static; nothing is pulled.
# Usage: stacks/services/web/build.sh [TAG]   (default dockyard/web:local)
# Prints the image id. Push it to the stack's registry and pin the pushed digest in
# stacks/Pulumi.<stack>.yaml under dockyard:images.web.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag=${1:-dockyard/web:local}
busybox=/bin/busybox
if [[ "$(ldd "$busybox" 2>&1 || true)" != *"not a dynamic executable"* ]]; then
  echo "build.sh: $busybox is not Debian's static busybox; install busybox-static" >&2
  exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
cp -a "$here/rootfs" "$ctx/"
cp "$busybox" "$ctx/busybox"
mkdir -p "$ctx/rootfs/tmp" "$ctx/uploads" && chmod 1777 "$ctx/rootfs/tmp"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" 2> >(grep -v -e DEPRECATED -e "legacy builder" -e BuildKit -e "environment-variable" -e "^\s*$" >&2)
