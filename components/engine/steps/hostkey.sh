#!/bin/bash
# Dockyard: install this host's SSH host key from SSM Parameter Store (EC2), or from the
# file the platform placed before the host started (a local host: HOSTKEY_SOURCE=file)
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh
# The private key never appears in user-data, logs or the process list: aws writes it
# straight into a 0600 temp file next to its destination.

# aws is called via PATH (a test host may provide its own). Ubuntu 24.04 has no awscli
# deb; its cloud images ship snapd, so the snap is the fallback there.
if [ "$HOSTKEY_SOURCE" = ssm ] && ! command -v aws >/dev/null 2>&1; then
  log "installing the AWS CLI"
  if command -v apt-get >/dev/null 2>&1; then
    apt_update_once
    apt_get install -y --no-install-recommends awscli || { command -v snap >/dev/null 2>&1 && snap install aws-cli --classic; } \
      || die "cannot install the AWS CLI"
  else
    dnf install -y awscli-2 || die "cannot install the AWS CLI"
  fi
  command -v aws >/dev/null 2>&1 || die "aws is still missing after installing it"
fi
need_cmd ssh-keygen openssh-client openssh-clients

umask 077
install -d -m 0755 /etc/ssh/sshd_config.d
tmp=$(mktemp /etc/ssh/.dockyard-hostkey.XXXXXX)
trap 'rm -f "$tmp" "$tmp.pub"' EXIT

fetch() {
  aws ssm get-parameter --region "$HOSTKEY_REGION" --name "$HOSTKEY_PARAMETER" --with-decryption \
    --query Parameter.Value --output text >"$tmp"
}
case "$HOSTKEY_SOURCE" in
  ssm)
    source_name="SSM parameter $HOSTKEY_PARAMETER"
    # The instance profile's credentials can take a moment to appear after boot.
    retry 30 10 fetch || die "cannot read $source_name in $HOSTKEY_REGION (instance role needs ssm:GetParameter and kms:Decrypt)"
    ;;
  file)
    source_name="$HOSTKEY_FILE"
    [ -f "$HOSTKEY_FILE" ] || die "$HOSTKEY_FILE is missing (the platform places the host key there before the host starts)"
    cat "$HOSTKEY_FILE" >"$tmp"
    ;;
  *) die "HOSTKEY_SOURCE is '$HOSTKEY_SOURCE'; allowed: ssm, file" ;;
esac
[ -s "$tmp" ] || die "$source_name is empty"
ssh-keygen -y -f "$tmp" >"$tmp.pub" 2>/dev/null || die "$source_name does not hold an OpenSSH private key"
case "$(cut -d' ' -f1 "$tmp.pub")" in
  ssh-ed25519) ;;
  *) die "$source_name holds a $(cut -d' ' -f1 "$tmp.pub") key; an ed25519 key is required" ;;
esac

changed=0
if [ -f "$SSH_HOST_KEY" ] && [ -f "$SSH_HOST_KEY.pub" ] && [ "$(cut -d' ' -f1,2 "$SSH_HOST_KEY.pub")" = "$(cut -d' ' -f1,2 "$tmp.pub")" ] \
  && [ "$(stat -c %a "$SSH_HOST_KEY")" = 600 ]; then
  log "host key already installed"
else
  install -m 0600 -o root -g root "$tmp" "$SSH_HOST_KEY"
  install -m 0644 -o root -g root "$tmp.pub" "$SSH_HOST_KEY.pub"
  changed=1
fi

want="# Dockyard: the host key from SSM (or the platform's file) is this host's only host key; clients pin it.
HostKey $SSH_HOST_KEY"
if [ "$(cat "$SSHD_DROPIN" 2>/dev/null || true)" != "$want" ]; then
  printf '%s\n' "$want" >"$SSHD_DROPIN.tmp"
  chmod 0644 "$SSHD_DROPIN.tmp"
  mv "$SSHD_DROPIN.tmp" "$SSHD_DROPIN"
  changed=1
fi
# Any HostKey in the main file would add keys besides ours.
if grep -qE '^[[:space:]]*HostKey[[:space:]]' /etc/ssh/sshd_config; then
  sed -i -E 's/^([[:space:]]*HostKey[[:space:]])/# dockyard: \1/' /etc/ssh/sshd_config
  changed=1
fi

command -v sshd >/dev/null 2>&1 || die "sshd is not installed"
if ! sshd -t; then
  rm -f "$SSHD_DROPIN"
  die "sshd rejects the configuration with the new host key; drop-in removed"
fi
keys=$(sshd -T 2>/dev/null | awk 'tolower($1) == "hostkey" { print $2 }')
[ "$keys" = "$SSH_HOST_KEY" ] || die "sshd would use host keys: $keys (expected only $SSH_HOST_KEY)"

if [ "$changed" -eq 1 ]; then
  unit=$(first_unit ssh.service sshd.service) || die "no ssh.service or sshd.service unit"
  # try-restart: a socket-activated sshd that is not running yet reads the new config when it starts.
  systemctl try-restart "$unit"
  log "host key installed; $unit restarted"
fi
