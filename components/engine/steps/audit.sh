#!/bin/bash
# Dockyard: auditd with rules watching the Docker engine's binaries, configuration, data,
# unit and socket (CIS Docker Benchmark v1.6, 1.1.3-1.1.18), loaded now and at every boot
# (augenrules reads /etc/audit/rules.d). Runs after the engine is installed: a rule names
# only a path that exists.
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh

if command -v apt-get >/dev/null 2>&1; then
  if [ -z "$(deb_version auditd)" ]; then
    apt_update_once
    apt_get install -y --no-install-recommends auditd
  fi
else
  rpm -q audit >/dev/null 2>&1 || retry 3 10 dnf install -y audit
fi

# CIS 1.1.3-1.1.18, each path where this OS family puts it; the data-root is on the data volume.
# Every watch's parent directory must exist when auditd loads the rules at boot, long before
# containerd starts: the kernel refuses a watch under a missing directory (ENOENT) and
# `auditctl -R` (augenrules) stops at that line, dropping every rule after it. So watch
# /run/containerd (/run always exists; a watch on a directory is `-F dir`, its whole
# subtree: auditctl(8)), never /run/containerd/containerd.sock.
paths=(
  /usr/bin/dockerd /usr/sbin/dockerd "$DATA_ROOT" /etc/docker "$DAEMON_JSON" /etc/default/docker /etc/sysconfig/docker
  /run/containerd /etc/containerd/config.toml
  /usr/bin/containerd /usr/bin/containerd-shim /usr/bin/containerd-shim-runc-v1 /usr/bin/containerd-shim-runc-v2
  /usr/bin/runc /usr/sbin/runc
  /lib/systemd/system/docker.service /usr/lib/systemd/system/docker.service
  /lib/systemd/system/docker.socket /usr/lib/systemd/system/docker.socket
)
# dockerd makes its data-root at first start (0710, moby daemon.setupDaemonRoot); made here first so it is watched.
[ -e "$DATA_ROOT" ] || install -d -m 0710 "$DATA_ROOT"
install -d -m 0750 "$(dirname "$AUDIT_RULES")"
tmp=$(mktemp "$AUDIT_RULES.XXXXXX")
echo "# Dockyard: CIS Docker Benchmark 1.1.3-1.1.18 (components/engine/steps/audit.sh)" >"$tmp"
for p in "${paths[@]}"; do
  # /lib is /usr/lib on merged-/usr systems: watch the real path once.
  real=$(readlink -f "$p" 2>/dev/null || true)
  if [ -z "$real" ] || [ ! -e "$real" ]; then continue; fi
  grep -qx -- "-w $real -p wa -k docker" "$tmp" || echo "-w $real -p wa -k docker" >>"$tmp"
done
chmod 0640 "$tmp"
mv "$tmp" "$AUDIT_RULES"
log "audit rules: $(grep -c '^-w' "$AUDIT_RULES") watches in $AUDIT_RULES"

systemctl enable auditd.service >/dev/null 2>&1 || true
if ! auditctl -s >/dev/null 2>&1; then
  # The kernel's audit interface is not reachable from here (a container without the
  # initial namespaces, as the test harness is; never on an EC2 instance): the rules are
  # installed and load at the next boot on a kernel that has it.
  log "WARNING: the kernel audit interface is not available here (auditctl -s failed); rules installed, not loaded"
  exit 0
fi
systemctl start auditd.service || die "auditd did not start"
augenrules --load >/dev/null || die "augenrules could not load $AUDIT_RULES"
loaded=$(auditctl -l | grep -c -- '-k docker' || true)
[ "$loaded" -ge "$(grep -c '^-w' "$AUDIT_RULES")" ] || die "only $loaded docker audit rules are loaded; expected every watch of $AUDIT_RULES"
log "audit: $loaded docker rules loaded"
