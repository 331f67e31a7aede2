#!/bin/bash
# Dockyard: install AppArmor before the engine, so dockerd loads its docker-default profile
# and every container runs confined by it (CIS Docker Benchmark 5.2). The engine packages only
# recommend apparmor, and the engine is installed with --no-install-recommends.
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh

if ! command -v apt-get >/dev/null 2>&1; then
  # dnf families (Amazon Linux, RHEL-likes) confine containers with SELinux, not AppArmor.
  log "no apt: AppArmor does not apply to this OS family (SELinux confines containers there)"
  exit 0
fi
if [ -z "$(deb_version apparmor)" ]; then
  apt_update_once
  apt_get install -y --no-install-recommends apparmor
fi
log "apparmor $(deb_version apparmor) installed; kernel AppArmor enabled: $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo no)"
