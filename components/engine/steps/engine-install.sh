#!/bin/bash
# Dockyard: install the pinned Docker Engine
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh
# ENGINE_INSTALL says how: docker-ce (Docker's apt repository), apt or dnf (the distribution's package).

# Channel docker-ce: Docker's apt repository, exact version pinned and held.
install_docker_ce() {
  # key and gnupghome stay global: the EXIT trap removes them after this function returned.
  local current got
  local packages=(docker-ce docker-ce-cli containerd.io)
  current=$(deb_version docker-ce)
  if [ -n "$current" ]; then
    [ "$current" = "$ENGINE_VERSION" ] || die "docker-ce $current is installed but this host is pinned to $ENGINE_VERSION; engine changes replace the host, they are never applied in place"
    log "docker-ce $ENGINE_VERSION already installed"
  else
    need_cmd curl curl curl
    need_cmd gpg gpg gnupg2
    install -d -m 0755 /etc/apt/keyrings
    if [ ! -s "$DOCKER_KEYRING" ]; then
      # The key comes over HTTPS from Docker and is accepted only if its primary key has
      # Docker's published fingerprint; apt then trusts it for this one source (Signed-By).
      key=$(mktemp)
      gnupghome=$(mktemp -d)
      trap 'rm -rf "$key" "$gnupghome"' EXIT
      retry 5 10 curl -fsSL --proto '=https' "$DOCKER_REPO/gpg" -o "$key" || die "cannot download $DOCKER_REPO/gpg"
      got=$(GNUPGHOME="$gnupghome" gpg --batch --show-keys --with-colons "$key" | awk -F: '$1 == "pub" { n++ } $1 == "fpr" && !seen { print $10; seen = 1 } END { if (n != 1) print "not-exactly-one-key" }')
      [ "$got" = "$DOCKER_KEY_FINGERPRINT" ] || die "Docker's apt key from $DOCKER_REPO/gpg has fingerprint '$got', expected $DOCKER_KEY_FINGERPRINT; refusing it"
      install -m 0644 "$key" "$DOCKER_KEYRING"
    fi
    install -m 0644 "$DOCKER_SOURCE_STAGED" "$DOCKER_SOURCE"
    apt_update_force
    # containerd.io is versioned separately by Docker: the version current at first boot is installed, then held.
    apt_get install -y --no-install-recommends "docker-ce=$ENGINE_VERSION" "docker-ce-cli=$ENGINE_VERSION" containerd.io
  fi
  apt-mark hold "${packages[@]}" >/dev/null
  log "held: ${packages[*]}"
}

# Channel distro on apt: the distribution's package, pinned when ENGINE_VERSION is set, held.
install_distro_apt() {
  local current p held
  current=$(deb_version "$DISTRO_PACKAGE")
  if [ -n "$current" ]; then
    if [ -n "$ENGINE_VERSION" ] && [ "$current" != "$ENGINE_VERSION" ]; then
      die "$DISTRO_PACKAGE $current is installed but this host is pinned to $ENGINE_VERSION; engine changes replace the host, they are never applied in place"
    fi
    log "$DISTRO_PACKAGE $current already installed"
  else
    apt_update_once
    if [ -n "$ENGINE_VERSION" ]; then
      apt_get install -y --no-install-recommends "$DISTRO_PACKAGE=$ENGINE_VERSION"
    else
      apt_get install -y --no-install-recommends "$DISTRO_PACKAGE"
    fi
  fi
  held=("$DISTRO_PACKAGE")
  # The runtime under the engine is held too, so unattended upgrades cannot move it.
  for p in containerd runc; do
    if [ -n "$(deb_version "$p")" ]; then held+=("$p"); fi
  done
  apt-mark hold "${held[@]}" >/dev/null
  log "held: ${held[*]}"
}

# Channel distro on dnf: the distribution's package, pinned when ENGINE_VERSION is set, version-locked.
install_distro_dnf() {
  local current p
  current=$(rpm_version "$DISTRO_PACKAGE")
  if [ -n "$current" ]; then
    if [ -n "$ENGINE_VERSION" ] && [ "$current" != "$ENGINE_VERSION" ]; then
      die "$DISTRO_PACKAGE $current is installed but this host is pinned to $ENGINE_VERSION; engine changes replace the host, they are never applied in place"
    fi
    log "$DISTRO_PACKAGE $current already installed"
  else
    if [ -n "$ENGINE_VERSION" ]; then
      retry 3 10 dnf install -y "$DISTRO_PACKAGE-$ENGINE_VERSION"
    else
      retry 3 10 dnf install -y "$DISTRO_PACKAGE"
    fi
  fi
  # dnf versionlock is a plugin; without it the pin still holds until someone upgrades by hand.
  if dnf versionlock --help >/dev/null 2>&1 || dnf install -y python3-dnf-plugin-versionlock >/dev/null 2>&1; then
    for p in "$DISTRO_PACKAGE" containerd runc; do
      if [ -n "$(rpm_version "$p")" ] && ! dnf versionlock list 2>/dev/null | grep -q "^$p-[0-9]"; then
        dnf versionlock add "$p" >/dev/null
      fi
    done
    log "version-locked: $DISTRO_PACKAGE containerd runc"
  else
    log "WARNING: dnf versionlock is not available; $DISTRO_PACKAGE is not locked"
  fi
}

[ -s "$DAEMON_JSON" ] || die "$DAEMON_JSON is missing; it must exist before the engine first starts"
mountpoint -q "$DATA_MOUNT" || die "the data volume is not mounted; the engine must not start without it"

case "$ENGINE_INSTALL" in
  docker-ce) install_docker_ce ;;
  apt) install_distro_apt ;;
  dnf) install_distro_dnf ;;
  *) die "unknown ENGINE_INSTALL '$ENGINE_INSTALL'" ;;
esac

getent group docker >/dev/null || die "the docker group does not exist after installing the engine"
id "$SSH_USER" >/dev/null 2>&1 || die "SSH user $SSH_USER does not exist"
if ! id -nG "$SSH_USER" | tr ' ' '\n' | grep -qx docker; then
  usermod -aG docker "$SSH_USER"
  log "added $SSH_USER to the docker group"
fi
# The per-host proxy's configuration files: written by the SSH user over SSH (the fleet's
# proxy-config command), bind-mounted read-only into the proxy.
install -d -m 0755 -o "$SSH_USER" -g "$(id -gn "$SSH_USER")" "$PROXY_CONFIG_DIR"
