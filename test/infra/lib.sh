#!/usr/bin/env bash
# Helpers shared by the test/infra steps.

# Installs Debian packages that are missing (needs root; non-interactive).
need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "need root to install ${missing[*]}" >&2; return 1; fi
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get update -q
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Waits until a command succeeds, up to $1 seconds.
wait_for() {
  local timeout=$1; shift
  local end=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then echo "timed out after ${timeout}s waiting for: $*" >&2; return 1; fi
    sleep 0.5
  done
}

# Directory for state the test infrastructure keeps between runs (logs, caches).
DOCKYARD_TEST_STATE=${DOCKYARD_TEST_STATE:-/var/tmp/dockyard-test}
mkdir -p "$DOCKYARD_TEST_STATE"
