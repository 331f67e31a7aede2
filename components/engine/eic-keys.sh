#!/bin/sh
# Dockyard: sshd's AuthorizedKeysCommand for EC2 Instance Connect (hostAccess ssm).
# Prints the public keys EC2 Instance Connect's SendSSHPublicKey placed in the instance
# metadata for user "$1" (each valid 60 seconds), and nothing else. Written by the
# instance-connect step to /usr/local/sbin/dockyard-eic-keys; run by sshd as `nobody`
# with sshd's own PATH.
#
# The metadata service lists active keys under meta-data/managed-ssh-keys/active-keys/
# <user>/ as blocks: "#Timestamp=<expiry, epoch seconds>", "#Instance=<instance id>",
# "#Caller=...", "#Request=...", the key line, base64 signature lines, a blank line (the
# format aws-ec2-instance-connect-config's eic_parse_authorized_keys reads). A key is
# printed only in a block for THIS instance whose expiry is still ahead.
#
# Unlike AWS's package, the blocks' signatures are not checked: the metadata service is
# reachable only from this host itself (IMDSv2 with a PUT hop limit of 1 keeps containers
# out unless the host group sets containerImds), and whoever could answer in its place
# already controls the host. See README "Access to hosts".
set -u
user=${1:-}
case "$user" in "" | *[!a-z0-9_-]*) exit 0 ;; esac
imds=http://169.254.169.254/latest
token=$(curl -sf -m 2 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$imds/api/token") || exit 0
md() { curl -sf -m 2 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/$1"; }
instance=$(md instance-id) || exit 0
case "$instance" in i-[0-9a-f]*) ;; *) exit 0 ;; esac
keys=$(md "managed-ssh-keys/active-keys/$user/") || exit 0
printf '%s\n' "$keys" | awk -v instance="$instance" -v now="$(date +%s)" '
  /^#Timestamp=/ { ts = substr($0, 12) + 0; next }
  /^#Instance=/ { inst = substr($0, 11); next }
  /^#/ { next }
  /^(ssh-|ecdsa-|sk-)/ { if (inst == instance && ts > now) print; ts = 0; inst = ""; next }
  /^$/ { ts = 0; inst = "" }
'
