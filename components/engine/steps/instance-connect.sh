#!/bin/bash
# Dockyard: sshd accepts keys pushed with EC2 Instance Connect (60 s each, for one OS
# user, authorised by IAM) besides authorized_keys, so deployers and CI need no key
# stored on the host (hostAccess ssm; README "Access to hosts").
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh

# Amazon Linux 2023 and Ubuntu ship AWS's ec2-instance-connect package, which sets its
# own AuthorizedKeysCommand: leave it.
if [ -d /usr/share/ec2-instance-connect ]; then
  log "ec2-instance-connect package present; its AuthorizedKeysCommand is used"
  exit 0
fi
need_cmd curl curl curl
[ -x "$EIC_KEYS_COMMAND" ] || die "$EIC_KEYS_COMMAND is missing (written by the user-data)"
# sshd refuses an AuthorizedKeysCommand that is not root-owned and writable by others.
chown root:root "$EIC_KEYS_COMMAND"
chmod 0755 "$EIC_KEYS_COMMAND"

want="# Dockyard: keys pushed with EC2 Instance Connect (components/engine/eic-keys.sh)
AuthorizedKeysCommand $EIC_KEYS_COMMAND %u
AuthorizedKeysCommandUser nobody"
install -d -m 0755 /etc/ssh/sshd_config.d
if [ "$(cat "$EIC_SSHD_DROPIN" 2>/dev/null || true)" != "$want" ]; then
  printf '%s\n' "$want" >"$EIC_SSHD_DROPIN.tmp"
  chmod 0644 "$EIC_SSHD_DROPIN.tmp"
  mv "$EIC_SSHD_DROPIN.tmp" "$EIC_SSHD_DROPIN"
  if ! sshd -t; then
    rm -f "$EIC_SSHD_DROPIN"
    die "sshd rejects the EC2 Instance Connect drop-in; removed"
  fi
  got=$(sshd -T 2>/dev/null | awk 'tolower($1) == "authorizedkeyscommand" { $1 = ""; sub(/^ /, ""); print }')
  [ "$got" = "$EIC_KEYS_COMMAND %u" ] || die "sshd would run AuthorizedKeysCommand '$got' (another file sets it first?)"
  unit=$(first_unit ssh.service sshd.service) || die "no ssh.service or sshd.service unit"
  systemctl try-restart "$unit"
  log "EC2 Instance Connect keys accepted; $unit restarted"
else
  log "EC2 Instance Connect already configured"
fi
