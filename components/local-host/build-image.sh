#!/usr/bin/env bash
# Builds the local host image (Dockerfile beside this script) into the local Docker Engine
# as dockyard/host:<recipe hash>, the tag components/local-host.ts hostImageTag() names, so
# a stack with `platform: local` host groups finds it. Built once per recipe; prints the tag.
#
#   bash components/local-host/build-image.sh            # FROM debian:bookworm (pulled if missing)
#   bash components/local-host/build-image.sh --debootstrap
#   bash components/local-host/build-image.sh --print-tag   # the tag only, nothing built
#
# --debootstrap (or when debian:bookworm cannot be pulled): the base is a bookworm tree
# made with debootstrap from Debian's mirror (needs root and the debootstrap package), for
# machines that reach Debian's packages but no image registry.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
mode=auto
case "${1:-}" in
  "") ;;
  --debootstrap) mode=debootstrap ;;
  --print-tag) mode=print ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "build-image.sh: unknown option '$1'; allowed: --debootstrap, --print-tag" >&2; exit 2 ;;
esac

# The recipe hash: every file of the recipe (this script excepted), by path and content.
hash=$(cd "$dir" && find . -type f ! -name build-image.sh -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
image="dockyard/host:$hash"
if [ "$mode" = print ]; then
  echo "$image"
  exit 0
fi
command -v docker >/dev/null 2>&1 || { echo "build-image.sh: the docker CLI is needed (Docker Engine running)" >&2; exit 1; }
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

base=debian:bookworm
if [ "$mode" = auto ] && ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
  echo "build-image.sh: cannot pull $base; building the base with debootstrap" >&2
  mode=debootstrap
fi
if [ "$mode" = debootstrap ]; then
  command -v debootstrap >/dev/null 2>&1 || { echo "build-image.sh: --debootstrap needs the debootstrap package (apt-get install debootstrap) and root" >&2; exit 1; }
  work=${DOCKYARD_DEBOOTSTRAP_DIR:-/var/tmp/dockyard-host}
  args=(--variant=minbase --include=ca-certificates bookworm)
  rootfs="$work/rootfs-$(echo "${args[*]}" | sha256sum | cut -c1-12)"
  base="dockyard/host-base:$(echo "${args[*]}" | sha256sum | cut -c1-12)"
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [ ! -f "$rootfs/.complete" ]; then
      rm -rf "$rootfs"
      mkdir -p "$work"
      echo "build-image.sh: debootstrap bookworm -> $rootfs" >&2
      debootstrap "${args[@]}" "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
        || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
      touch "$rootfs/.complete"
    fi
    tar --exclude=./.complete -C "$rootfs" -c . | docker import - "$base" >/dev/null
  fi
fi

echo "build-image.sh: building $image from $base" >&2
docker build -q --build-arg "BASE=$base" --label "dockyard.recipe=$hash" -t "$image" "$dir" >&2
echo "$image"
