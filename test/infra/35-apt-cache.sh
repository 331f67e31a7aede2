#!/usr/bin/env bash
# A private apt-cacher-ng on port 3143, so the apt downloads that the rendered user-data
# makes inside each test host container (test/host/harness.ts) come from a local cache
# after the first download instead of from Debian's mirror, three hosts at a time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_packages apt-cacher-ng curl iproute2

# --- apt cache -----------------------------------------------------------------------
# Our own instance with our own configuration, not the package's: Debian's acng.conf
# remaps deb.debian.org/debian to the mirrors in backends_debian (ftp.debian.org), a host
# this machine cannot resolve, and a cold cache then hangs every apt-get in the hosts.
# Without Remap lines apt-cacher-ng fetches from the host each URL names, as apt would.
# Host containers reach it at the docker0 gateway. The tests go straight to Debian's
# mirror when nothing listens on the port (test/host/harness.ts aptCacheRunning).
acng_port=3143
acng_dir="$DOCKYARD_TEST_STATE/apt-cacher-ng"
acng_conf="CacheDir: /var/cache/dockyard-apt-cacher-ng
LogDir: $acng_dir/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $acng_port
BindAddress: 0.0.0.0
ExThreshold: 4
ReportPage: acng-report.html"
acng_probe() {
  curl -fsS -o /dev/null --max-time 60 --proxy "http://127.0.0.1:$acng_port" \
    http://deb.debian.org/debian/dists/bookworm/InRelease
}
acng_running() { [ -f "$acng_dir/pid" ] && kill -0 "$(cat "$acng_dir/pid")" 2>/dev/null; }
if acng_running && [ "$(cat "$acng_dir/conf/acng.conf" 2>/dev/null)" = "$acng_conf" ]; then
  echo "apt-cacher-ng already running on :$acng_port"
else
  if acng_running; then kill "$(cat "$acng_dir/pid")"; sleep 1; fi
  mkdir -p "$acng_dir/conf" "$acng_dir/log" /var/cache/dockyard-apt-cacher-ng
  printf '%s\n' "$acng_conf" >"$acng_dir/conf/acng.conf"
  chown -R apt-cacher-ng:apt-cacher-ng "$acng_dir" /var/cache/dockyard-apt-cacher-ng
  # ForeGround=0: the daemon forks itself; no init system runs services on this machine.
  su -s /bin/sh apt-cacher-ng -c "/usr/sbin/apt-cacher-ng -c '$acng_dir/conf' ForeGround=0 \
    pidfile='$acng_dir/pid' SocketPath='$acng_dir/socket'" >"$acng_dir/start.log" 2>&1
  wait_for 30 bash -c "ss -Hltn 'sport = :$acng_port' | grep -q ." || { cat "$acng_dir/start.log" >&2; exit 1; }
  echo "apt-cacher-ng listening on :$acng_port"
fi
# A cache that cannot fetch is worse than none: stop it, and the hosts go to the mirror.
if ! acng_probe; then
  echo "WARNING: apt-cacher-ng on :$acng_port cannot fetch Debian's InRelease; stopping it (hosts use Debian's mirror directly)" >&2
  kill "$(cat "$acng_dir/pid")" 2>/dev/null || true
  wait_for 10 bash -c "! ss -Hltn 'sport = :$acng_port' | grep -q ."
fi
