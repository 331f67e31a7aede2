/**
 * DockerEngine: the Docker Engine on a host, installed and hardened by cloud-init.
 *
 * Two halves:
 *  - renderUserData(): a pure function that renders the host's cloud-config. The host
 *    (components/host) passes it to the instance; it installs a pinned engine, writes
 *    /etc/docker/daemon.json before the engine first starts, mounts the data volume,
 *    installs the host's SSH host key from SSM and writes READY_MARKER last.
 *  - DockerEngine: a component that waits, over SSH with strict host key checking, until
 *    the host says the engine is ready, and reports the engine version.
 *
 * What happens when the engine changes (version, channel, daemon settings, data mount):
 * the user-data changes, so the host is REPLACED (the host component sets
 * userDataReplaceOnChange); cloud-init never upgrades an engine in place. The data volume
 * is a separate, retained, protected EBS volume: the new instance re-attaches it, the
 * mount script finds its filesystem (it never reformats) and the new engine starts on the
 * same data-root (`<dataMount>/docker`), so images, volumes and container state survive.
 * A downgrade across Docker versions whose on-disk format differs is the operator's call.
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as YAML from "yaml";
import { gzipSync } from "fflate";
import type { EngineSpec, EnvironmentSpec } from "../stacks";
import { parseEcrRegistry } from "./registry";

// ---------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------

/**
 * Readiness marker, on the ROOT filesystem (never on the data volume: a replacement host
 * that re-attaches the volume must not look ready before its own engine is up). It lives
 * in cloud-init's state directory, so `cloud-init clean` also clears it.
 */
export const READY_MARKER = "/var/lib/cloud/dockyard-engine-ready";

/** Fingerprint of Docker's release signing key (docs.docker.com/engine/install/debian). */
export const DOCKER_APT_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88";

/** Where the scripts live on the host. */
export const SCRIPT_DIR = "/usr/local/sbin";
/** Shared shell helpers sourced by every script. */
export const LIB_PATH = "/usr/local/lib/dockyard/lib.sh";
/** Docker's apt source (deb822), staged here and installed once the key is verified. */
export const DOCKER_SOURCE_STAGED = "/usr/local/share/dockyard/docker.sources";
export const DOCKER_SOURCE = "/etc/apt/sources.list.d/docker.sources";
export const DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc";
export const SSH_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key";
export const SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-dockyard-hostkey.conf";
export const DAEMON_JSON = "/etc/docker/daemon.json";
export const DOCKER_UNIT_DROPIN = "/etc/systemd/system/docker.service.d/10-dockyard.conf";

/** The scripts, in the order the bootstrap runs them. */
export const STEPS = ["hostkey", "data-volume", "engine-install", "engine-ready"] as const;
/**
 * Extra step, only when the stack's registry is ECR (see stepsFor): installs the ECR
 * credential helper and points the docker CLI of the SSH user and root at it.
 */
export const REGISTRY_AUTH_STEP = "registry-auth" as const;
export type Step = (typeof STEPS)[number] | typeof REGISTRY_AUTH_STEP;
export const BOOTSTRAP_SCRIPT = `${SCRIPT_DIR}/dockyard-bootstrap.sh`;
export function stepScript(step: Step): string {
  return `${SCRIPT_DIR}/dockyard-${step}.sh`;
}
/** The credential helper docker's `credHelpers` names for ECR (binary docker-credential-ecr-login). */
export const ECR_CRED_HELPER = "ecr-login";
/** The package that ships docker-credential-ecr-login: same name in Debian, Ubuntu (universe) and Amazon Linux 2023. */
export const ECR_CRED_HELPER_PACKAGE = "amazon-ecr-credential-helper";

/**
 * The steps this host runs, in order: STEPS, plus registry-auth before engine-ready when
 * the registry is ECR (so the readiness marker still means every step succeeded).
 */
export function stepsFor(input: Pick<UserDataInput, "registryHost">): Step[] {
  if (!isEcrHost(input.registryHost)) return [...STEPS];
  const out: Step[] = [...STEPS];
  out.splice(out.indexOf("engine-ready"), 0, REGISTRY_AUTH_STEP);
  return out;
}

/** True when `host` is an ECR registry host (<account>.dkr.ecr.<region>.amazonaws.com). */
export function isEcrHost(host: string | undefined): host is string {
  return host !== undefined && parseEcrRegistry(`${host}/x`)?.host === host;
}

// ---------------------------------------------------------------------------------
// Pure rendering
// ---------------------------------------------------------------------------------

export interface UserDataInput {
  /** Stack name; only used in error messages and the marker. */
  stack: string;
  /** Host name, e.g. "dev-app-1"; becomes the hostname. */
  hostName: string;
  /** OS family and its catalog entry (distro, codename, package manager, packages, repo). */
  os: EnvironmentSpec["os"];
  /** Engine channel, pinned version and daemon settings. */
  engine: EngineSpec;
  /** Mount point of the separate data volume, e.g. /var/lib/dockyard. */
  dataMount: string;
  /** Stable device path of the data volume, e.g. /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123... */
  dataDevice: string;
  /** SSM SecureString holding this host's ed25519 SSH host private key (OpenSSH format). */
  hostKey: { ssmParameter: string; region: string };
  /**
   * Host part of the stack's `dockyard:registry` (`host[:port]`, e.g.
   * 123456789012.dkr.ecr.eu-west-1.amazonaws.com). When it is an ECR host, the user-data
   * installs amazon-ecr-credential-helper and sets `credHelpers[<host>] = "ecr-login"` in
   * the docker client config of the SSH user and of root, so image pulls authenticate with
   * the instance role (no registry password in user-data, state or provider config).
   * Any other registry (e.g. a loopback test registry), or unset: nothing is installed or written.
   */
  registryHost?: string;
  /**
   * Channel docker-ce only: a mirror of Docker's apt repository (an https:// URL laid out
   * like https://download.docker.com/linux/debian, serving its signing key at `<url>/gpg`)
   * and the fingerprint of its signing key (40 hex digits). Default: Docker's own,
   * `os.info.dockerCeRepo` and DOCKER_APT_KEY_FINGERPRINT. Enterprises mirror it; the
   * tests serve a signed copy. The key is still refused unless it has this fingerprint.
   */
  dockerCeRepository?: { url: string; keyFingerprint: string };
}

/** The daemon.json the engine starts with (pure; exported for tests and the plan). */
export function renderDaemonJson(engine: EngineSpec, dataMount: string): Record<string, unknown> {
  const d = engine.daemon;
  const cfg: Record<string, unknown> = {
    // No "hosts" key: the packaged docker.service starts dockerd with `-H fd://`, and a
    // "hosts" entry here would conflict with that flag and stop the daemon from starting.
    // fd:// is the unix socket docker.socket creates; nothing listens on TCP.
    "data-root": `${dataMount.replace(/\/+$/, "")}/docker`,
    "log-driver": d.logDriver,
    "log-opts": { "max-size": d.logMaxSize, "max-file": String(d.logMaxFile) },
    "live-restore": d.liveRestore,
    icc: d.icc,
    "userland-proxy": d.userlandProxy,
    "no-new-privileges": d.noNewPrivileges,
  };
  // metrics-addr is not experimental since Engine 20.10 (docker/cli#4391), which is the
  // oldest engine we install (Debian bookworm's docker.io 20.10.24); no "experimental".
  if (d.metricsPort > 0) cfg["metrics-addr"] = `127.0.0.1:${d.metricsPort}`;
  return cfg;
}

/**
 * Short fingerprint of everything about the engine that needs a new host when it changes.
 * Written into READY_MARKER at boot and checked by DockerEngine's ready command, so a host
 * that was not re-provisioned after a change never counts as ready.
 */
export function engineFingerprint(engine: EngineSpec): string {
  const d = engine.daemon;
  const canonical = JSON.stringify({
    channel: engine.channel,
    version: engine.version ?? null,
    daemon: Object.fromEntries(Object.keys(d).sort().map((k) => [k, d[k as keyof typeof d]])),
  });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

/** Quotes a value for a POSIX shell (single quotes). */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const HOSTNAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SSM_NAME_RE = /^[A-Za-z0-9_.\-/]{1,2048}$/;
const REGION_RE = /^[a-z]{2}(-gov)?-[a-z]+-[0-9]$/;
const PATH_RE = /^\/[A-Za-z0-9._/-]*$/;

/** Every problem with a UserDataInput, each naming the stack and the key. */
export function userDataProblems(input: UserDataInput): string[] {
  const where = `stack "${input.stack}"`;
  const p: string[] = [];
  if (!HOSTNAME_RE.test(input.hostName)) p.push(`${where}: hostName: "${input.hostName}" must be a DNS label (a-z, 0-9, '-', at most 63 chars)`);
  const mount = input.dataMount.replace(/\/+$/, "");
  if (!PATH_RE.test(input.dataMount) || mount === "" || mount.includes("..")) {
    p.push(`${where}: hostGroups.*.dataMount: "${input.dataMount}" must be an absolute path other than /`);
  } else if (READY_MARKER.startsWith(`${mount}/`) || ["/etc", "/usr", "/var", "/var/lib", "/boot", "/proc", "/sys", "/dev", "/run", "/tmp", "/home", "/root"].includes(mount)) {
    p.push(`${where}: hostGroups.*.dataMount: "${input.dataMount}" would shadow a system directory or the readiness marker ${READY_MARKER}; use a dedicated directory such as /var/lib/dockyard`);
  }
  if (!/^\/dev\/[A-Za-z0-9._:/-]+$/.test(input.dataDevice)) p.push(`${where}: dataDevice: "${input.dataDevice}" must be a device path under /dev`);
  if (!SSM_NAME_RE.test(input.hostKey.ssmParameter)) p.push(`${where}: hostKey.ssmParameter: "${input.hostKey.ssmParameter}" is not an SSM parameter name`);
  if (!REGION_RE.test(input.hostKey.region)) p.push(`${where}: hostKey.region: "${input.hostKey.region}" is not an AWS region like eu-west-1`);
  const info = input.os.info;
  if (input.engine.channel === "docker-ce") {
    if (!info.dockerCeRepo || info.packageManager !== "apt" || !info.codename) {
      p.push(`${where}: engine.channel: docker-ce is not offered for ${input.os.family}; use "distro"`);
    }
    if (!input.engine.version) p.push(`${where}: engine.version: required for channel docker-ce`);
  }
  if (input.engine.version !== undefined && !/^[0-9][A-Za-z0-9.:+~_-]*$/.test(input.engine.version)) {
    p.push(`${where}: engine.version: "${input.engine.version}" is not a package version string`);
  }
  if (!/^[a-z_][a-z0-9_-]*$/.test(input.os.sshUser)) p.push(`${where}: os.sshUser: "${input.os.sshUser}" is not a user name`);
  if (input.registryHost !== undefined) {
    const h = input.registryHost;
    const key = `${where}: config.dockyard:registry (registryHost)`;
    const m = REGISTRY_HOST_RE.exec(h);
    if (!m || (m[1] !== undefined && (Number(m[1]) < 1 || Number(m[1]) > 65535))) {
      p.push(`${key}: "${h}" is not a registry host; allowed: a lower-case DNS name or IPv4 address with an optional :port, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com or 127.0.0.1:5000`);
    } else if (/\.dkr\.ecr[.-]|\.amazonaws\.com/.test(h) && !isEcrHost(h)) {
      // Looks like ECR but would not get the credential helper: every pull would fail later.
      p.push(`${key}: "${h}" looks like ECR but is not '<12-digit account>.dkr.ecr.<region>.amazonaws.com' (no port)`);
    }
  }
  return p;
}

/** host[:port]: lower-case DNS name or IPv4 address (docker reference grammar, minus IPv6). */
const REGISTRY_HOST_RE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::([0-9]{1,5}))?$/;

/** Renders the host's cloud-config ("#cloud-config\n..."). Throws on bad input, naming stack and key. */
export function renderUserData(input: UserDataInput): string {
  const problems = userDataProblems(input);
  if (problems.length > 0) {
    throw new Error(`Cannot render user-data for host "${input.hostName}":\n${problems.map((x) => `  - ${x}`).join("\n")}`);
  }
  const files: { path: string; permissions: string; content: string }[] = [
    { path: LIB_PATH, permissions: "0644", content: libScript() },
    { path: DAEMON_JSON, permissions: "0644", content: `${JSON.stringify(renderDaemonJson(input.engine, input.dataMount), null, 2)}\n` },
    { path: DOCKER_UNIT_DROPIN, permissions: "0644", content: dockerUnitDropin(input.dataMount) },
  ];
  if (input.engine.channel === "docker-ce") {
    files.push({ path: DOCKER_SOURCE_STAGED, permissions: "0644", content: dockerSource(input) });
  }
  files.push(
    { path: stepScript("hostkey"), permissions: "0755", content: hostKeyScript(input) },
    { path: stepScript("data-volume"), permissions: "0755", content: dataVolumeScript(input) },
    { path: stepScript("engine-install"), permissions: "0755", content: engineInstallScript(input) },
  );
  if (isEcrHost(input.registryHost)) {
    files.push({ path: stepScript(REGISTRY_AUTH_STEP), permissions: "0755", content: registryAuthScript(input.os.sshUser, input.registryHost) });
  }
  files.push(
    { path: stepScript("engine-ready"), permissions: "0755", content: engineReadyScript(input) },
    { path: BOOTSTRAP_SCRIPT, permissions: "0755", content: bootstrapScript(stepsFor(input)) },
  );
  const doc = {
    hostname: input.hostName,
    preserve_hostname: false,
    manage_etc_hosts: "localhost",
    // Scripts, not inline runcmd: cloud-init runs runcmd lines with plain sh and goes on
    // after a failure; the bootstrap stops at the first failing step, so READY_MARKER is
    // only ever written after every step succeeded.
    write_files: files.map((f) => ({ path: f.path, owner: "root:root", permissions: f.permissions, content: f.content })),
    runcmd: [[BOOTSTRAP_SCRIPT]],
  };
  return `#cloud-config\n${YAML.stringify(doc, { lineWidth: 0, blockQuote: "literal" })}`;
}

/**
 * EC2 refuses user-data larger than 16 KB (16384 bytes) before base64 encoding
 * (RunInstances, UserData: "User data is limited to 16 KB, in raw form, before it is
 * base64-encoded"; docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html).
 */
export const EC2_USER_DATA_LIMIT = 16384;

/**
 * The user-data as EC2 receives it: the cloud-config gzip-compressed, base64-encoded
 * (aws.ec2.Instance `userDataBase64`). cloud-init recognises gzip by its magic bytes and
 * decompresses before parsing (cloudinit/user_data.py: util.decomp_gzip), so the rendered
 * cloud-config (~19 KB) ships well under EC2's 16 KB raw limit.
 *
 * Compressed with fflate (pure JavaScript), not node:zlib: Node bundles Chromium's zlib,
 * whose output may differ between Node versions and CPU features, and any change in these
 * bytes replaces every host (userDataReplaceOnChange). mtime 0 and a fixed level keep the
 * bytes a pure function of the text. Throws if even the compressed form is over the limit.
 */
export function userDataBase64(cloudConfig: string, where = "user-data"): string {
  const gz = gzipSync(Buffer.from(cloudConfig, "utf8"), { level: 9, mtime: 0 });
  if (gz.length > EC2_USER_DATA_LIMIT) {
    throw new Error(`${where}: ${gz.length} bytes gzip-compressed; EC2 accepts at most ${EC2_USER_DATA_LIMIT} bytes of user-data`);
  }
  return Buffer.from(gz).toString("base64");
}

// ---------------------------------------------------------------------------------
// The files (every script: bash, set -euo pipefail, idempotent, shellcheck-clean)
// ---------------------------------------------------------------------------------

const HEADER = (what: string) => `#!/bin/bash
# Dockyard: ${what}
# Rendered by components/engine.ts; safe to run again.
set -euo pipefail
# shellcheck source=/dev/null
. ${LIB_PATH}
`;

function libScript(): string {
  return `# Dockyard: shell helpers shared by the dockyard-*.sh scripts (sourced, not run).
# shellcheck shell=bash
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

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then retry 5 10 apt_get update; APT_UPDATED=1; fi
}
# After adding a source: update even if an earlier step already did.
apt_update_force() {
  APT_UPDATED=0
  apt_update_once
}

# Installed version of a Debian package, or nothing.
# dpkg-query exits 1 for a package apt has never seen; under pipefail that would abort
# the caller's "current=$(deb_version ...)" on every fresh host, so it may fail here.
deb_version() {
  # shellcheck disable=SC2016 # dpkg-query fields, not shell expansions
  { dpkg-query -W -f='\${Status} \${Version}\\n' "$1" 2>/dev/null || true; } | awk '$3 == "installed" { print $4 }'
}

# Installed version-release of an RPM package, or nothing.
rpm_version() {
  if rpm -q "$1" >/dev/null 2>&1; then rpm -q --qf '%{VERSION}-%{RELEASE}\\n' "$1" | head -n1; fi
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
`;
}

function dockerUnitDropin(dataMount: string): string {
  return `# Dockyard: the engine's data-root is on the data volume; never start without it
# (the fstab entry is nofail so the host still boots and stays reachable over SSH).
[Unit]
RequiresMountsFor=${dataMount.replace(/\/+$/, "")}
`;
}

/**
 * Where channel docker-ce installs from, and the fingerprint its key must have:
 * input.dockerCeRepository (a mirror), else Docker's own repository and key.
 */
function dockerCeRepository(input: UserDataInput): { url: string; keyFingerprint: string } {
  const r = input.dockerCeRepository;
  if (r === undefined) return { url: input.os.info.dockerCeRepo ?? "", keyFingerprint: DOCKER_APT_KEY_FINGERPRINT };
  const url = r.url.replace(/\/+$/, "");
  const keyFingerprint = r.keyFingerprint.replace(/\s+/g, "").toUpperCase();
  // https only: the key is fetched with curl --proto '=https'; no characters that would
  // break out of the deb822 source or the shell quoting.
  if (!/^https:\/\/[A-Za-z0-9._~:@%/[\]+=,-]+$/.test(url)) {
    throw new Error(`stack "${input.stack}": dockerCeRepository.url: "${r.url}" must be an https:// URL`);
  }
  if (!/^[0-9A-F]{40}$/.test(keyFingerprint)) {
    throw new Error(`stack "${input.stack}": dockerCeRepository.keyFingerprint: "${r.keyFingerprint}" must be a 40-hex-digit OpenPGP fingerprint`);
  }
  return { url, keyFingerprint };
}

function dockerSource(input: UserDataInput): string {
  const arch = input.os.architecture === "arm64" ? "arm64" : "amd64";
  return `Types: deb
URIs: ${dockerCeRepository(input).url}
Suites: ${input.os.info.codename}
Components: stable
Architectures: ${arch}
Signed-By: ${DOCKER_KEYRING}
`;
}

function hostKeyScript(input: UserDataInput): string {
  return `${HEADER("install this host's SSH host key from SSM Parameter Store")}
# The private key never appears in user-data, logs or the process list: aws writes it
# straight into a 0600 temp file next to its destination.
REGION=${shq(input.hostKey.region)}
PARAMETER=${shq(input.hostKey.ssmParameter)}
KEY=${SSH_HOST_KEY}
DROPIN=${SSHD_DROPIN}

# aws is called via PATH (a test host may provide its own). Ubuntu 24.04 has no awscli
# deb; its cloud images ship snapd, so the snap is the fallback there.
if ! command -v aws >/dev/null 2>&1; then
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
  aws ssm get-parameter --region "$REGION" --name "$PARAMETER" --with-decryption \\
    --query Parameter.Value --output text >"$tmp"
}
# The instance profile's credentials can take a moment to appear after boot.
retry 30 10 fetch || die "cannot read SSM parameter $PARAMETER in $REGION (instance role needs ssm:GetParameter and kms:Decrypt)"
[ -s "$tmp" ] || die "SSM parameter $PARAMETER is empty"
ssh-keygen -y -f "$tmp" >"$tmp.pub" 2>/dev/null || die "SSM parameter $PARAMETER does not hold an OpenSSH private key"
case "$(cut -d' ' -f1 "$tmp.pub")" in
  ssh-ed25519) ;;
  *) die "SSM parameter $PARAMETER holds a $(cut -d' ' -f1 "$tmp.pub") key; an ed25519 key is required" ;;
esac

changed=0
if [ -f "$KEY" ] && [ -f "$KEY.pub" ] && [ "$(cut -d' ' -f1,2 "$KEY.pub")" = "$(cut -d' ' -f1,2 "$tmp.pub")" ] \\
  && [ "$(stat -c %a "$KEY")" = 600 ]; then
  log "host key already installed"
else
  install -m 0600 -o root -g root "$tmp" "$KEY"
  install -m 0644 -o root -g root "$tmp.pub" "$KEY.pub"
  changed=1
fi

want="# Dockyard: the host key from SSM is this host's only host key; clients pin it.
HostKey $KEY"
if [ "$(cat "$DROPIN" 2>/dev/null || true)" != "$want" ]; then
  printf '%s\\n' "$want" >"$DROPIN.tmp"
  chmod 0644 "$DROPIN.tmp"
  mv "$DROPIN.tmp" "$DROPIN"
  changed=1
fi
# Any HostKey in the main file would add keys besides ours.
if grep -qE '^[[:space:]]*HostKey[[:space:]]' /etc/ssh/sshd_config; then
  sed -i -E 's/^([[:space:]]*HostKey[[:space:]])/# dockyard: \\1/' /etc/ssh/sshd_config
  changed=1
fi

command -v sshd >/dev/null 2>&1 || die "sshd is not installed"
if ! sshd -t; then
  rm -f "$DROPIN"
  die "sshd rejects the configuration with the new host key; drop-in removed"
fi
keys=$(sshd -T 2>/dev/null | awk 'tolower($1) == "hostkey" { print $2 }')
[ "$keys" = "$KEY" ] || die "sshd would use host keys: $keys (expected only $KEY)"

if [ "$changed" -eq 1 ]; then
  unit=$(first_unit ssh.service sshd.service) || die "no ssh.service or sshd.service unit"
  # try-restart: a socket-activated sshd that is not running yet reads the new config when it starts.
  systemctl try-restart "$unit"
  log "host key installed; $unit restarted"
fi
`;
}

function dataVolumeScript(input: UserDataInput): string {
  const mount = input.dataMount.replace(/\/+$/, "");
  return `${HEADER("mount the data volume (never reformats an existing filesystem)")}
DEVICE=${shq(input.dataDevice)}
MOUNT=${shq(mount)}
LABEL=dockyard-data

if mountpoint -q "$MOUNT"; then
  log "$MOUNT is already a mount point; leaving it as it is"
  exit 0
fi

# The volume is attached after the instance starts: wait for it (bounded).
retry 60 5 test -b "$DEVICE" || die "data volume $DEVICE did not appear within 5 minutes"
dev=$(readlink -f "$DEVICE")

# blkid -p probes the device itself: exit 0 = a filesystem or partition table is there,
# 2 = nothing at all. Only a device with nothing on it is formatted.
rc=0
blkid -p "$dev" >/dev/null 2>&1 || rc=$?
case "$rc" in
  0) log "$DEVICE already holds data; not formatting" ;;
  2)
    log "$DEVICE is blank; creating ext4"
    mkfs.ext4 -q -L "$LABEL" "$dev"
    ;;
  *) die "blkid could not probe $DEVICE (exit $rc); refusing to touch it" ;;
esac

uuid=$(blkid -s UUID -o value "$dev")
fstype=$(blkid -s TYPE -o value "$dev")
if [ -z "$uuid" ] || [ -z "$fstype" ]; then
  die "$DEVICE has no filesystem UUID/type (a partitioned disk?); refusing to mount it"
fi

mkdir -p "$MOUNT"
# By UUID, so a different device order after a replacement still mounts the right volume;
# nofail, so a missing volume never stops the host from booting (docker.service requires the mount).
if ! awk -v m="$MOUNT" '$1 !~ /^#/ && $2 == m { found = 1 } END { exit !found }' /etc/fstab; then
  printf 'UUID=%s %s %s defaults,nofail,x-systemd.device-timeout=30s 0 2\\n' "$uuid" "$MOUNT" "$fstype" >>/etc/fstab
  systemctl daemon-reload || true
fi
mount "$MOUNT"
mountpoint -q "$MOUNT" || die "$MOUNT is not mounted after mount"
log "mounted $DEVICE ($fstype, UUID=$uuid) on $MOUNT"
`;
}

function engineInstallScript(input: UserDataInput): string {
  const info = input.os.info;
  const version = input.engine.version ?? "";
  const user = input.os.sshUser;
  let body: string;
  if (input.engine.channel === "docker-ce") {
    const repo = dockerCeRepository(input);
    body = `# Channel docker-ce: Docker's apt repository, exact version pinned and held.
VERSION=${shq(version)}
REPO=${shq(repo.url)}
FINGERPRINT=${repo.keyFingerprint}
PACKAGES=(docker-ce docker-ce-cli containerd.io)

current=$(deb_version docker-ce)
if [ -n "$current" ]; then
  [ "$current" = "$VERSION" ] || die "docker-ce $current is installed but this host is pinned to $VERSION; engine changes replace the host, they are never applied in place"
  log "docker-ce $VERSION already installed"
else
  need_cmd curl curl curl
  need_cmd gpg gpg gnupg2
  install -d -m 0755 /etc/apt/keyrings
  if [ ! -s ${DOCKER_KEYRING} ]; then
    # The key comes over HTTPS from Docker and is accepted only if its primary key has
    # Docker's published fingerprint; apt then trusts it for this one source (Signed-By).
    key=$(mktemp)
    gnupghome=$(mktemp -d)
    trap 'rm -rf "$key" "$gnupghome"' EXIT
    retry 5 10 curl -fsSL --proto '=https' "$REPO/gpg" -o "$key" || die "cannot download $REPO/gpg"
    got=$(GNUPGHOME="$gnupghome" gpg --batch --show-keys --with-colons "$key" | awk -F: '$1 == "pub" { n++ } $1 == "fpr" && !seen { print $10; seen = 1 } END { if (n != 1) print "not-exactly-one-key" }')
    [ "$got" = "$FINGERPRINT" ] || die "Docker's apt key from $REPO/gpg has fingerprint '$got', expected $FINGERPRINT; refusing it"
    install -m 0644 "$key" ${DOCKER_KEYRING}
  fi
  install -m 0644 ${DOCKER_SOURCE_STAGED} ${DOCKER_SOURCE}
  apt_update_force
  # containerd.io is versioned separately by Docker: the version current at first boot is installed, then held.
  apt_get install -y --no-install-recommends "docker-ce=$VERSION" "docker-ce-cli=$VERSION" containerd.io
fi
apt-mark hold "\${PACKAGES[@]}" >/dev/null
log "held: \${PACKAGES[*]}"
`;
  } else if (info.packageManager === "apt") {
    body = `# Channel distro: the distribution's ${info.distroPackage}${version ? `, pinned to ${version}` : " (the release's version)"}, held.
PACKAGE=${shq(info.distroPackage)}
VERSION=${shq(version)}

current=$(deb_version "$PACKAGE")
if [ -n "$current" ]; then
  if [ -n "$VERSION" ] && [ "$current" != "$VERSION" ]; then
    die "$PACKAGE $current is installed but this host is pinned to $VERSION; engine changes replace the host, they are never applied in place"
  fi
  log "$PACKAGE $current already installed"
else
  apt_update_once
  if [ -n "$VERSION" ]; then
    apt_get install -y --no-install-recommends "$PACKAGE=$VERSION"
  else
    apt_get install -y --no-install-recommends "$PACKAGE"
  fi
fi
held=("$PACKAGE")
# The runtime under the engine is held too, so unattended upgrades cannot move it.
for p in containerd runc; do
  if [ -n "$(deb_version "$p")" ]; then held+=("$p"); fi
done
apt-mark hold "\${held[@]}" >/dev/null
log "held: \${held[*]}"
`;
  } else {
    body = `# Channel distro: the distribution's ${info.distroPackage} via dnf${version ? `, pinned to ${version}` : " (the release's version)"}, version-locked.
PACKAGE=${shq(info.distroPackage)}
VERSION=${shq(version)}

current=$(rpm_version "$PACKAGE")
if [ -n "$current" ]; then
  if [ -n "$VERSION" ] && [ "$current" != "$VERSION" ]; then
    die "$PACKAGE $current is installed but this host is pinned to $VERSION; engine changes replace the host, they are never applied in place"
  fi
  log "$PACKAGE $current already installed"
else
  if [ -n "$VERSION" ]; then
    retry 3 10 dnf install -y "$PACKAGE-$VERSION"
  else
    retry 3 10 dnf install -y "$PACKAGE"
  fi
fi
# dnf versionlock is a plugin; without it the pin still holds until someone upgrades by hand.
if dnf versionlock --help >/dev/null 2>&1 || dnf install -y python3-dnf-plugin-versionlock >/dev/null 2>&1; then
  for p in "$PACKAGE" containerd runc; do
    if [ -n "$(rpm_version "$p")" ] && ! dnf versionlock list 2>/dev/null | grep -q "^$p-[0-9]"; then
      dnf versionlock add "$p" >/dev/null
    fi
  done
  log "version-locked: $PACKAGE containerd runc"
else
  log "WARNING: dnf versionlock is not available; $PACKAGE is not locked"
fi
`;
  }
  return `${HEADER("install the pinned Docker Engine")}
SSH_USER=${shq(user)}
[ -s ${DAEMON_JSON} ] || die "${DAEMON_JSON} is missing; it must exist before the engine first starts"
mountpoint -q ${shq(input.dataMount.replace(/\/+$/, ""))} || die "the data volume is not mounted; the engine must not start without it"

${body}
getent group docker >/dev/null || die "the docker group does not exist after installing the engine"
id "$SSH_USER" >/dev/null 2>&1 || die "SSH user $SSH_USER does not exist"
if ! id -nG "$SSH_USER" | tr ' ' '\\n' | grep -qx docker; then
  usermod -aG docker "$SSH_USER"
  log "added $SSH_USER to the docker group"
fi
`;
}

function registryAuthScript(sshUser: string, registryHost: string): string {
  return `${HEADER("docker pulls from the stack's ECR registry authenticate with the instance role")}
# No registry password anywhere (not in user-data, Pulumi state or provider config; a
# 12-hour ECR token in state breaks later previews, pulumi-docker#952/#459): the docker CLI
# asks docker-credential-ecr-login, which gets a token with the instance role each time.
SSH_USER=${shq(sshUser)}
REGISTRY=${shq(registryHost)}
HELPER=${ECR_CRED_HELPER}

need_cmd docker-credential-$HELPER ${ECR_CRED_HELPER_PACKAGE} ${ECR_CRED_HELPER_PACKAGE}
# JSON is merged with python3, not sed/jq: cloud-init, which runs this script, is itself a
# Python 3 program, so python3 is on every host this user-data reaches (jq often is not).
need_cmd python3 python3 python3

# Sets credHelpers[REGISTRY] = HELPER in USER's ~/.docker/config.json, keeping every other
# setting (auths, credsStore, other helpers); replaced atomically, owned by USER, mode 0600.
# A file that is not a JSON object is left as it is and the step fails.
set_cred_helper() {
  local user=$1 home group dir file tmp
  home=$(getent passwd "$user" | cut -d: -f6)
  if [ -z "$home" ] || [ ! -d "$home" ]; then die "home directory of $user not found"; fi
  group=$(id -gn "$user")
  dir=$home/.docker
  file=$dir/config.json
  if [ -L "$dir" ] || [ -L "$file" ]; then die "$file or its directory is a symlink; refusing to write through it"; fi
  install -d -m 0700 -o "$user" -g "$group" "$dir"
  tmp=$(mktemp "$dir/.config.json.XXXXXX")
  if ! python3 - "$file" "$REGISTRY" "$HELPER" >"$tmp" <<'PY'
import json, sys
path, registry, helper = sys.argv[1:4]
try:
    with open(path, encoding="utf-8") as f:
        text = f.read()
except FileNotFoundError:
    text = ""
cfg = json.loads(text) if text.strip() else {}
if not isinstance(cfg, dict):
    sys.exit(path + " does not hold a JSON object")
helpers = cfg.setdefault("credHelpers", {})
if not isinstance(helpers, dict):
    sys.exit(path + ": credHelpers is not a JSON object")
helpers[registry] = helper
sys.stdout.write(json.dumps(cfg, indent=2) + "\\n")
PY
  then
    rm -f "$tmp"
    die "cannot add the $HELPER credential helper to $file (not valid JSON?); left it unchanged"
  fi
  chmod 0600 "$tmp"
  chown "$user:$group" "$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file" && [ "$(stat -c '%a %U' "$file")" = "600 $user" ]; then
    rm -f "$tmp"
    log "$file already uses $HELPER for $REGISTRY"
    return 0
  fi
  mv -f "$tmp" "$file"
  log "$file: $REGISTRY uses the $HELPER credential helper"
}

# The fleet pulls as the SSH user; root's config serves operators using sudo docker.
set_cred_helper "$SSH_USER"
set_cred_helper root
`;
}

function engineReadyScript(input: UserDataInput): string {
  const d = input.engine.daemon;
  return `${HEADER("start the engine, check it, then write the readiness marker")}
MARKER=${READY_MARKER}
DATA_ROOT=${shq(`${input.dataMount.replace(/\/+$/, "")}/docker`)}
METRICS=${shq(d.metricsPort > 0 ? `127.0.0.1:${d.metricsPort}` : "")}
FINGERPRINT=${engineFingerprint(input.engine)}
CHANNEL=${shq(input.engine.channel)}
VERSION=${shq(input.engine.version ?? "")}

systemctl daemon-reload
containerd_unit=$(first_unit containerd.service) || die "no containerd.service unit"
systemctl enable --now "$containerd_unit"
# enable --now leaves a running engine alone.
systemctl enable --now docker.service

retry 60 2 docker info >/dev/null 2>&1 || die "docker info did not answer within 2 minutes"
server=$(docker version --format '{{.Server.Version}}')
root=$(docker info --format '{{.DockerRootDir}}')
[ "$root" = "$DATA_ROOT" ] || die "engine data-root is $root, expected $DATA_ROOT on the data volume"

# The engine must not listen on TCP, except the metrics endpoint on loopback.
command -v ss >/dev/null 2>&1 || need_cmd ss iproute2 iproute
listeners=$(ss -Hltnp | awk '/users:\\(\\("dockerd",/ { print $4 }' | sort -u)
for l in $listeners; do
  [ -n "$METRICS" ] && [ "$l" = "$METRICS" ] && continue
  die "dockerd listens on TCP $l; only the unix socket (and metrics on $METRICS) is allowed"
done

tmp=$(mktemp "$MARKER.XXXXXX")
printf 'fingerprint=%s\\nchannel=%s\\nversion=%s\\nserver=%s\\n' "$FINGERPRINT" "$CHANNEL" "$VERSION" "$server" >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$MARKER"
log "engine $server ready (data-root $root); wrote $MARKER"
`;
}

function bootstrapScript(steps: readonly Step[]): string {
  return `#!/bin/bash
# Dockyard: provisions the engine, one step after the other; stops at the first failure,
# so the readiness marker (written by the last step) means every step succeeded.
set -euo pipefail
for step in ${steps.join(" ")}; do
  echo "dockyard: step $step" >&2
  ${SCRIPT_DIR}/dockyard-"$step".sh
done
echo "dockyard: all steps done" >&2
`;
}

// ---------------------------------------------------------------------------------
// The ready check the component runs over SSH
// ---------------------------------------------------------------------------------

/** Where cloud-init records the id of the instance it provisioned (cloudinit/stages.py: `<cloud dir>/data/instance-id`). */
export const CLOUD_INIT_INSTANCE_ID = "/var/lib/cloud/data/instance-id";

/**
 * The command DockerEngine runs on the host as the SSH user (POSIX sh): waits (bounded)
 * for cloud-init, checks that it reached `instanceId` (when given: the instance the
 * address is associated with; a replaced host keeps its address and host key, so only the
 * id tells the old instance from the new one), checks READY_MARKER carries this engine's
 * fingerprint, asks the engine for its version and prints it as the only line on stdout.
 */
export function renderReadyCommand(engine: EngineSpec, timeoutSeconds = 1200, instanceId?: string): string {
  const fp = engineFingerprint(engine);
  const instanceCheck =
    instanceId === undefined
      ? ""
      : `want=${shq(instanceId)}
got=$(cat ${CLOUD_INIT_INSTANCE_ID} 2>/dev/null || true)
[ "$got" = "$want" ] || { echo "dockyard: the address reached $(hostname), instance '$got', not $want: it still points at another instance" >&2; exit 1; }
`;
  return `set -eu
# cloud-init's exit code is not the verdict (newer releases exit 2 on mere warnings);
# the marker is: the bootstrap writes it only after every step succeeded.
rc=0
timeout ${timeoutSeconds} cloud-init status --wait >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 124 ] || { echo "dockyard: cloud-init still running on $(hostname) after ${timeoutSeconds}s" >&2; exit 1; }
${instanceCheck}i=0
until [ -f ${READY_MARKER} ]; do
  i=$((i + 1))
  [ "$i" -le 12 ] || { cloud-init status --long >&2 || true; echo "dockyard: ${READY_MARKER} missing on $(hostname): provisioning failed, see /var/log/cloud-init-output.log" >&2; exit 1; }
  sleep 5
done
grep -qx 'fingerprint=${fp}' ${READY_MARKER} || { echo "dockyard: $(hostname) was provisioned for another engine configuration (want fingerprint ${fp}); the host must be replaced" >&2; exit 1; }
i=0
# sg: this login may predate the user's docker group membership.
until v=$(sg docker -c "docker version --format '{{.Server.Version}}'" 2>/dev/null) && [ -n "$v" ]; do
  i=$((i + 1))
  [ "$i" -le 30 ] || { echo "dockyard: docker does not answer on $(hostname)" >&2; exit 1; }
  sleep 2
done
echo "$v"
`;
}

/**
 * The host key as the command provider pins it: "<type> <base64>" (authorized_keys form,
 * as tls.PrivateKey's publicKeyOpenssh gives it), without comment or trailing newline.
 */
export function hostKeyLine(key: string, what = "host"): string {
  const [type, data] = key.trim().split(/\s+/);
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521))$/.test(type ?? "") || !/^[A-Za-z0-9+/]+={0,3}$/.test(data ?? "")) {
    throw new Error(`${what}: connection.hostPublicKey must be an OpenSSH public key like "ssh-ed25519 AAAA..." (got ${JSON.stringify(key.slice(0, 40))})`);
  }
  return `${type} ${data}`;
}

/** What re-runs the ready check: anything that changes the engine. */
export function readyTriggers(engine: EngineSpec): string[] {
  return [engine.channel, engine.version ?? "", engineFingerprint(engine)];
}

// ---------------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------------

export interface DockerEngineArgs {
  /** Host name (as given to renderUserData); used in descriptions only. */
  hostName: string;
  /**
   * How to reach the host over SSH. `hostPublicKey` ("ssh-ed25519 AAAA...", the public half
   * of the key in SSM) is always enforced: the connection fails on any other host key.
   */
  connection: {
    /** Address of the host (public or private IP / DNS name). */
    host: pulumi.Input<string>;
    /** SSH user (the OS family's default user, a member of the docker group). */
    user: string;
    /** The host's SSH public key in authorized_keys format; strict host key checking. */
    hostPublicKey: pulumi.Input<string>;
    /** SSH port; default 22. */
    port?: pulumi.Input<number>;
    /** Private key for the user, as a Pulumi secret. Default: use the SSH agent. */
    privateKey?: pulumi.Input<string>;
    /** SSH agent socket; default $SSH_AUTH_SOCK. Used when privateKey is unset. */
    agentSocketPath?: pulumi.Input<string>;
  };
  /** Engine spec the host was rendered with (same value passed to renderUserData). */
  engine: EngineSpec;
  /**
   * The id of the instance `connection.host` must reach (the EIP association's instanceId).
   * A replaced host keeps its address and host key: this id re-runs the check for the new
   * instance, and the check fails if the address still reaches another one.
   */
  hostId?: pulumi.Input<string>;
  /** Upper bound for the wait on cloud-init, in seconds; default 1200. */
  timeoutSeconds?: number;
}

/** Waits until a host's Docker Engine is ready and reports its version. */
export class DockerEngine extends pulumi.ComponentResource {
  /** The engine's server version as the host reports it (e.g. "28.5.1"); resolves only once the engine is ready. */
  public readonly ready: pulumi.Output<string>;
  /** Engine channel: "docker-ce" or "distro". */
  public readonly channel: pulumi.Output<string>;
  /** The pinned package version, or the reported server version when the distro package is unpinned. */
  public readonly version: pulumi.Output<string>;

  constructor(name: string, args: DockerEngineArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:DockerEngine", name, {}, opts);
    const timeout = args.timeoutSeconds ?? 1200;
    if (!Number.isInteger(timeout) || timeout < 60 || timeout > 7200) {
      throw new Error(`DockerEngine ${name}: timeoutSeconds must be an integer from 60 to 7200 (got ${timeout})`);
    }
    const c = args.connection;
    const connection: command.types.input.remote.ConnectionArgs = {
      host: c.host,
      user: c.user,
      port: c.port ?? 22,
      hostKey: pulumi.output(c.hostPublicKey).apply((k) => hostKeyLine(k, name)),
      // The host key is installed early by cloud-init; until then sshd presents another
      // key and the dial fails verification, so allow retries while the host boots.
      dialErrorLimit: 120,
      perDialTimeout: 30,
    };
    if (c.privateKey !== undefined) connection.privateKey = pulumi.secret(c.privateKey);
    if (c.agentSocketPath !== undefined) connection.agentSocketPath = c.agentSocketPath;

    // Runs once per engine configuration (and per host: the connection changes with it).
    const readyCmd = new command.remote.Command(
      `${name}-ready`,
      {
        connection,
        create: args.hostId !== undefined ? pulumi.output(args.hostId).apply((id) => renderReadyCommand(args.engine, timeout, id)) : renderReadyCommand(args.engine, timeout),
        triggers: args.hostId !== undefined ? [...readyTriggers(args.engine), args.hostId] : readyTriggers(args.engine),
      },
      { parent: this, customTimeouts: { create: `${timeout + 600}s`, update: `${timeout + 600}s` } },
    );

    this.ready = readyCmd.stdout.apply((s) => s.trim());
    this.channel = pulumi.output(args.engine.channel);
    this.version = args.engine.version !== undefined ? pulumi.output(args.engine.version) : this.ready;
    this.registerOutputs({ ready: this.ready, channel: this.channel, version: this.version });
  }
}
