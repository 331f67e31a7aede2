#!/usr/bin/env bash
# Images the fleet integration tests run, built locally (nothing can be pulled):
#  - dockyard-test/web:local: the example service (stacks/services/web, busybox-static);
#  - dockyard-test/haproxy:local: Debian's haproxy binary and the shared libraries it
#    links, FROM scratch. It stands in for the per-host proxy image (in production the
#    official haproxy image, mirrored into the stack's registry and pinned by digest),
#    including its user: the official image runs as haproxy, uid:gid 99:99, and so does
#    this one (USER, and the fleet renders user 99:99), so every file haproxy reads is
#    world-readable and nothing in its root needs to be writable (the fleet mounts it
#    read-only, with only a tmpfs /tmp).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_packages busybox-static haproxy openssh-client
root=$(cd "$(dirname "$0")/../.." && pwd)

bash "$root/stacks/services/web/build.sh" dockyard-test/web:local >/dev/null
echo "built dockyard-test/web:local"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root/usr/sbin" "$ctx/root/usr/local/etc/haproxy" "$ctx/root/tmp" "$ctx/root/etc"
cp /usr/sbin/haproxy "$ctx/root/usr/sbin/haproxy"
# Every library haproxy links, at the same path, plus the dynamic loader.
ldd /usr/sbin/haproxy | awk '/=> \//{print $3} /^[ \t]*\/lib/{print $1}' | sort -u | while read -r lib; do
  mkdir -p "$ctx/root$(dirname "$lib")"
  cp -L "$lib" "$ctx/root$lib"
done
chmod -R a+rX "$ctx/root"
chmod 1777 "$ctx/root/tmp"
printf 'root:x:0:0:root:/:/sbin/nologin\nhaproxy:x:99:99:haproxy:/var/lib/haproxy:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$ctx/root/etc/passwd"
printf 'root:x:0:\nhaproxy:x:99:\nnogroup:x:65534:\n' >"$ctx/root/etc/group"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
STOPSIGNAL SIGUSR1
USER haproxy
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t dockyard-test/haproxy:local "$ctx" >/dev/null 2>&1 \
  || DOCKER_BUILDKIT=0 docker build -t dockyard-test/haproxy:local "$ctx"
echo "built dockyard-test/haproxy:local"
