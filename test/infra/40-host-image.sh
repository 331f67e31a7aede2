#!/usr/bin/env bash
# The test host image: a Debian 12 (bookworm) "cloud image" made from Debian's packages
# only, booted by test/host/*.int.test.ts with systemd as PID 1 and a NoCloud seed.
#
# It carries what a stock Debian cloud image carries (systemd, cloud-init, openssh-server,
# locales, sudo, the admin user's groups) and NOTHING that the rendered user-data must do
# itself: no docker.io, no daemon.json, no SSH host key, no data mount.
#
# Cached: the image is tagged dockyard/host:<recipe hash> (hash of this file), so it is
# rebuilt only when this recipe changes; debootstrap output is kept under /var/tmp.
#
# The apt cache the hosts use is started by 35-apt-cache.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_packages debootstrap e2fsprogs openssh-client iproute2 busybox-static

# --- host image ------------------------------------------------------------------------
recipe_hash=$(sha256sum "$0" | cut -c1-12)
image="dockyard/host:$recipe_hash"
if docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" dockyard/host:latest
  echo "host image $image already built"
  exit 0
fi

work=/var/tmp/dockyard-host
# The debootstrap tree depends only on its own arguments, not on the rest of the recipe.
debootstrap_args=(--variant=minbase --include=ca-certificates bookworm)
rootfs_hash=$(echo "${debootstrap_args[*]}" | sha256sum | cut -c1-12)
rootfs="$work/rootfs-$rootfs_hash"
mkdir -p "$work"
if [ ! -f "$rootfs/.complete" ]; then
  rm -rf "$rootfs"
  echo "debootstrap bookworm -> $rootfs"
  debootstrap "${debootstrap_args[@]}" "$rootfs" http://deb.debian.org/debian \
    >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
  touch "$rootfs/.complete"
fi
# Trees of older debootstrap arguments only waste space.
find "$work" -maxdepth 1 -name 'rootfs-*' ! -name "rootfs-$rootfs_hash" -exec rm -rf {} +

base="dockyard/host-base:$recipe_hash"
if ! docker image inspect "$base" >/dev/null 2>&1; then
  tar --exclude=./.complete -C "$rootfs" -c . | docker import - "$base" >/dev/null
fi

# Everything a Debian cloud image has, installed with apt inside a build container.
build=dockyard-host-build-$$
trap 'docker rm -f "$build" >/dev/null 2>&1 || true' EXIT
docker run -i --name "$build" -e DEBIAN_FRONTEND=noninteractive "$base" bash -eu <<'RECIPE'
cat >/etc/apt/sources.list <<EOF
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
apt-get update -q
apt-get install -y -q --no-install-recommends \
  systemd systemd-sysv dbus cloud-init openssh-server locales sudo \
  iproute2 netbase e2fsprogs util-linux procps less python3-apt
# Like Debian's cloud images: en_US.UTF-8 generated (cloud-init's locale module selects it).
sed -i "s/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/" /etc/locale.gen
locale-gen
# A cloud image ships without SSH host keys and without apt lists.
rm -f /etc/ssh/ssh_host_*
apt-get clean
rm -rf /var/lib/apt/lists/* /var/lib/cloud/* /var/log/cloud-init*
# The platform (docker) provides networking and the hostname; cloud-init must not manage the network.
cat >/etc/cloud/cloud.cfg.d/90-dockyard-test.cfg <<EOF
datasource_list: [ NoCloud, None ]
network: {config: disabled}
EOF
# Debian's EC2 images log in as "admin" (stacks/os.ts sshUser), not the package's "debian".
cat >/etc/cloud/cloud.cfg.d/91-dockyard-default-user.cfg <<EOF
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
EOF
# On a VM, systemd mounts /etc/fstab's device entries at boot; in a container its fstab
# generator skips them ("Running in a container, ignoring fstab device entry"). This unit
# stands in for that, so a reboot mounts the data volume as on EC2.
cat >/etc/systemd/system/container-fstab.service <<EOF
[Unit]
Description=Mount /etc/fstab device entries (what systemd-fstab-generator does on a VM)
DefaultDependencies=no
After=local-fs-pre.target
Before=local-fs.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount -a -t ext4,xfs
[Install]
WantedBy=local-fs.target
EOF
systemctl enable container-fstab.service
# Units that cannot work in a container and would only slow the boot down.
for u in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
         systemd-udev-trigger.service systemd-udev-settle.service getty@tty1.service \
         systemd-logind.service systemd-timesyncd.service; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
# Keep the journal in memory.
mkdir -p /etc/systemd/journald.conf.d
printf "[Journal]\nStorage=volatile\n" >/etc/systemd/journald.conf.d/volatile.conf
: >/etc/machine-id
RECIPE
docker commit \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' \
  --change "LABEL dockyard.recipe=$recipe_hash" \
  "$build" "$image" >/dev/null
docker tag "$image" dockyard/host:latest
# Images of previous recipes only waste space.
docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^dockyard/host(-base)?:[0-9a-f]{12}$' \
  | grep -v ":$recipe_hash\$" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "built host image $image"
