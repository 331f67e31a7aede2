#!/bin/bash
# Dockyard: mount the data volume (never reformats an existing filesystem)
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh
LABEL=dockyard-data

if mountpoint -q "$DATA_MOUNT"; then
  log "$DATA_MOUNT is already a mount point; leaving it as it is"
  exit 0
fi

# The volume is attached after the instance starts: wait for it (bounded).
retry 60 5 test -b "$DATA_DEVICE" || die "data volume $DATA_DEVICE did not appear within 5 minutes"
dev=$(readlink -f "$DATA_DEVICE")

# blkid -p probes the device itself: exit 0 = a filesystem or partition table is there,
# 2 = nothing at all. Only a device with nothing on it is formatted.
rc=0
blkid -p "$dev" >/dev/null 2>&1 || rc=$?
case "$rc" in
  0) log "$DATA_DEVICE already holds data; not formatting" ;;
  2)
    log "$DATA_DEVICE is blank; creating ext4"
    mkfs.ext4 -q -L "$LABEL" "$dev"
    ;;
  *) die "blkid could not probe $DATA_DEVICE (exit $rc); refusing to touch it" ;;
esac

uuid=$(blkid -s UUID -o value "$dev")
fstype=$(blkid -s TYPE -o value "$dev")
if [ -z "$uuid" ] || [ -z "$fstype" ]; then
  die "$DATA_DEVICE has no filesystem UUID/type (a partitioned disk?); refusing to mount it"
fi

mkdir -p "$DATA_MOUNT"
# By UUID, so a different device order after a replacement still mounts the right volume;
# nofail, so a missing volume never stops the host from booting (docker.service requires the mount).
if ! awk -v m="$DATA_MOUNT" '$1 !~ /^#/ && $2 == m { found = 1 } END { exit !found }' /etc/fstab; then
  printf 'UUID=%s %s %s defaults,nofail,x-systemd.device-timeout=30s 0 2\n' "$uuid" "$DATA_MOUNT" "$fstype" >>/etc/fstab
  systemctl daemon-reload || true
fi
mount "$DATA_MOUNT"
mountpoint -q "$DATA_MOUNT" || die "$DATA_MOUNT is not mounted after mount"
log "mounted $DATA_DEVICE ($fstype, UUID=$uuid) on $DATA_MOUNT"
