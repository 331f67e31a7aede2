# Dockyard: shell helpers shared by the dockyard-*.sh scripts (sourced, not run).
# shellcheck shell=bash
# The values rendered for this host (components/engine.ts renderEnvironment).
# shellcheck source=/dev/null
. /usr/local/lib/dockyard/env
export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin:$PATH"

log() { echo "dockyard[$(basename "$0")]: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Runs "$@" until it succeeds, at most $1 tries, $2 seconds apart.
retry() {
  local tries=$1 delay=$2 i
  shift 2
  for ((i = 1; i <= tries; i++)); do
    if "$@"; then return 0; fi
    [ "$i" -lt "$tries" ] && sleep "$delay"
  done
  return 1
}

# apt-get, waiting for a running apt (unattended-upgrades at first boot) instead of failing.
apt_get() {
  apt-get -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold "$@"
}

# The package lists are fetched once per boot for all steps (each step is its own process; a
# stamp in /run, which every boot starts empty), not once per step that installs something.
APT_STAMP=/run/dockyard/apt-updated
apt_update_once() {
  if [ ! -e "$APT_STAMP" ]; then
    retry 5 10 apt_get update
    mkdir -p "${APT_STAMP%/*}"
    : >"$APT_STAMP"
  fi
}
# After adding a source: update even if an earlier step already did.
apt_update_force() {
  rm -f "$APT_STAMP"
  apt_update_once
}

# Installed version of a Debian package, or nothing.
# dpkg-query exits 1 for a package apt has never seen; under pipefail that would abort
# the caller's "current=$(deb_version ...)" on every fresh host, so it may fail here.
deb_version() {
  # shellcheck disable=SC2016 # dpkg-query fields, not shell expansions
  { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null || true; } | awk '$3 == "installed" { print $4 }'
}

# Installed version-release of an RPM package, or nothing.
rpm_version() {
  if rpm -q "$1" >/dev/null 2>&1; then rpm -q --qf '%{VERSION}-%{RELEASE}\n' "$1" | head -n1; fi
}

# Installs packages that provide missing commands: need_cmd COMMAND APT_PACKAGE DNF_PACKAGE
need_cmd() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $1"
  if command -v apt-get >/dev/null 2>&1; then
    apt_update_once
    apt_get install -y --no-install-recommends "$2"
  else
    dnf install -y "$3"
  fi
  command -v "$1" >/dev/null 2>&1 || die "$1 is still missing after installing its package"
}

# The unit name that exists among the arguments (ssh.service on Debian/Ubuntu, sshd.service on Amazon Linux).
first_unit() {
  local u
  for u in "$@"; do
    if systemctl cat "$u" >/dev/null 2>&1; then echo "$u"; return 0; fi
  done
  return 1
}
