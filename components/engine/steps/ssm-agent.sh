#!/bin/bash
# Dockyard: the AWS Systems Manager agent, so that Session Manager can carry SSH to this
# host (hostAccess ssm: no inbound port 22 needed). Debian's cloud images do not ship it.
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
#
# Every stack runs the same agent, as it runs the same engine: SSM_AGENT_VERSION is pinned
# (components/engine.ts SSM_AGENT_VERSION) and the package comes from that version's path in
# the region's bucket, never from latest/. Whether the bytes are AWS's package is decided by:
#  - SSM_AGENT_SHA256 when it is set (the package's pinned sha256 for this architecture):
#    nothing else, so no expiring signing key decides whether a host boots;
#  - otherwise the detached signature, checked against the signing key written with the
#    user-data and identified by its full fingerprint (docs.aws.amazon.com/systems-manager/
#    latest/userguide/verify-agent-signature.html). GnuPG reports VALIDSIG for a good
#    signature even when the key has expired since (it then also says EXPKEYSIG): what
#    counts is that the signature is valid and made by the key with this fingerprint.
# A package that fails its check is never installed.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh

unit_present() { systemctl list-unit-files "$1" >/dev/null 2>&1 && [ -n "$(systemctl list-unit-files --no-legend "$1" 2>/dev/null)" ]; }

# Amazon Linux and Ubuntu's AWS images ship the agent (rpm or snap): only make sure it runs.
for u in amazon-ssm-agent.service snap.amazon-ssm-agent.amazon-ssm-agent.service; do
  if unit_present "$u"; then
    systemctl enable --now "$u" >/dev/null 2>&1 || die "cannot start $u"
    log "SSM agent present ($u); running"
    exit 0
  fi
done

command -v dpkg >/dev/null 2>&1 || die "no SSM agent unit and no dpkg to install one"
need_cmd curl curl curl

work=$(mktemp -d /var/tmp/dockyard-ssm-agent.XXXXXX)
trap 'rm -rf "$work"' EXIT

fetch() { curl -fsSL --retry 5 --retry-delay 5 --connect-timeout 20 --max-time 300 -o "$work/$1" "$SSM_AGENT_URL/$1"; }
retry 3 10 fetch amazon-ssm-agent.deb || die "cannot download $SSM_AGENT_URL/amazon-ssm-agent.deb"

if [ -n "${SSM_AGENT_SHA256:-}" ]; then
  have=$(sha256sum "$work/amazon-ssm-agent.deb" | awk '{ print $1 }')
  [ "$have" = "$SSM_AGENT_SHA256" ] || die "amazon-ssm-agent.deb from $SSM_AGENT_URL has sha256 $have, pinned $SSM_AGENT_SHA256; not installed"
  log "amazon-ssm-agent.deb: sha256 $have as pinned"
else
  need_cmd gpg gnupg gnupg2
  retry 3 10 fetch amazon-ssm-agent.deb.sig || die "cannot download $SSM_AGENT_URL/amazon-ssm-agent.deb.sig"
  export GNUPGHOME="$work/gnupg"
  install -d -m 0700 "$GNUPGHOME"
  gpg --batch --quiet --import "$SSM_AGENT_KEY" 2>/dev/null || die "cannot read the SSM agent signing key $SSM_AGENT_KEY"
  have=$(gpg --batch --with-colons --fingerprint | awk -F: '$1 == "fpr" { print $10; exit }')
  [ "$have" = "$SSM_AGENT_KEY_FINGERPRINT" ] || die "the SSM agent signing key has fingerprint '$have', expected $SSM_AGENT_KEY_FINGERPRINT"
  # VALIDSIG <signing key fpr> ... <primary key fpr>: the primary key must be the pinned one.
  status=$(gpg --batch --status-fd 1 --verify "$work/amazon-ssm-agent.deb.sig" "$work/amazon-ssm-agent.deb" 2>/dev/null || true)
  if ! printf '%s\n' "$status" | awk -v fpr="$SSM_AGENT_KEY_FINGERPRINT" '$1 == "[GNUPG:]" && $2 == "VALIDSIG" && $NF == fpr { ok = 1 } $2 == "BADSIG" { bad = 1 } END { exit !(ok && !bad) }'; then
    die "amazon-ssm-agent.deb from $SSM_AGENT_URL: its signature does not verify with key $SSM_AGENT_KEY_FINGERPRINT; not installed"
  fi
  log "amazon-ssm-agent.deb: signature valid (key $SSM_AGENT_KEY_FINGERPRINT)"
fi

dpkg -i "$work/amazon-ssm-agent.deb" >/dev/null || die "dpkg could not install amazon-ssm-agent.deb"
installed=$(deb_version amazon-ssm-agent)
# AWS's package versions are "<agent version>-1"; a stand-in source (tests) pins none.
if [ -n "${SSM_AGENT_VERSION:-}" ]; then
  case "$installed" in "$SSM_AGENT_VERSION" | "$SSM_AGENT_VERSION"-*) ;; *) die "installed amazon-ssm-agent $installed, pinned $SSM_AGENT_VERSION" ;; esac
fi
systemctl enable --now amazon-ssm-agent.service >/dev/null 2>&1 || die "cannot start amazon-ssm-agent.service"
log "SSM agent $installed installed and running"
