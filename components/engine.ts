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
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as YAML from "yaml";
import { gzipSync } from "fflate";
import { ENGINE_READY_MARKER, isEcrHost, type EngineSpec, type EnvironmentSpec } from "../stacks";
import { hostCommandArgs, type HostConnection } from "./connection";
import { proxyConfigDir } from "./proxy";

// ---------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------

/**
 * Readiness marker, on the ROOT filesystem (never on the data volume: a replacement host
 * that re-attaches the volume must not look ready before its own engine is up). It lives
 * in cloud-init's state directory, so `cloud-init clean` also clears it. The path is the
 * schema's (stacks ENGINE_READY_MARKER), which refuses a dataMount that would hide it.
 */
export const READY_MARKER = ENGINE_READY_MARKER;

/** Fingerprint of Docker's release signing key (docs.docker.com/engine/install/debian). */
export const DOCKER_APT_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88";

/** Where the scripts live on the host. */
export const SCRIPT_DIR = "/usr/local/sbin";
/** Dockyard's files on the host besides the step scripts. */
export const DOCKYARD_LIB = "/usr/local/lib/dockyard";
/** Shared shell helpers sourced by every script (the scripts name this path themselves). */
export const LIB_PATH = `${DOCKYARD_LIB}/lib.sh`;
/** The values rendered for this host, sourced by lib.sh (which names this path itself). */
export const ENV_PATH = `${DOCKYARD_LIB}/env`;
/** Merges the ECR credential helper into a docker config.json (registry-auth step). */
export const CRED_HELPER_SCRIPT = `${DOCKYARD_LIB}/set-cred-helper.py`;
/** The scripts and files written to every host as they are (components/engine/). */
export const ENGINE_FILES_DIR = path.join(__dirname, "engine");
/** Docker's apt source (deb822), staged here and installed once the key is verified. */
export const DOCKER_SOURCE_STAGED = "/usr/local/share/dockyard/docker.sources";
export const DOCKER_SOURCE = "/etc/apt/sources.list.d/docker.sources";
export const DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc";
export const SSH_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key";
export const SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-dockyard-hostkey.conf";
export const DAEMON_JSON = "/etc/docker/daemon.json";
export const DOCKER_UNIT_DROPIN = "/etc/systemd/system/docker.service.d/10-dockyard.conf";
/** sshd's AuthorizedKeysCommand for EC2 Instance Connect (components/engine/eic-keys.sh) and its drop-in. */
export const EIC_KEYS_COMMAND = `${SCRIPT_DIR}/dockyard-eic-keys`;
export const EIC_SSHD_DROPIN = "/etc/ssh/sshd_config.d/20-dockyard-instance-connect.conf";
/** The SSM agent's package signing key, as AWS publishes it, written with the user-data when no sha256 is pinned. */
export const SSM_AGENT_KEY = `${DOCKYARD_LIB}/amazon-ssm-agent.asc`;
/**
 * Fingerprint of "SSM Agent <ssm-agent-signer@amazon.com>" as components/engine/keys/
 * amazon-ssm-agent.asc holds it: AWS's current package signing key (made 2026-06-04, expires
 * 2027-11-25), byte for byte the key of aws/eks-hybrid internal/ssm/source.go ssmPublicGPGKey
 * (commit d5bd0d04, "updating ssm installer gpg keys", after eks-hybrid#864 "ssm public key
 * expired") and of aws/amazon-ecs-ami files/amazon-ssm-agent.gpg (commit 440dda5). The keys
 * before it expired on 2023-09-05 (2BC7C7C2...), 2025-02-17 (DE92C7DA..., still the one in
 * aws/amazon-ssm-agent Tools/src/setupcli_data_integrity_linux.sh) and 2026-07-15
 * (4855A9E6..., aws/amazon-ssm-agent#676). test/components/engine/ssm-agent-pin.test.ts fails
 * 60 days before this one expires while a host still depends on it.
 */
export const SSM_AGENT_KEY_FINGERPRINT = "1C5B395CBE5E74E2F1CA21592784DBF388D19D46";

/**
 * The SSM agent every stack installs, pinned as the engine version is: 3.3.5226.0, the Linux
 * agent Amazon Linux 2023 ships since 2023.12.20260928 (docs.aws.amazon.com/linux/al2023/
 * release-notes/relnotes-2023.12.20260928.html: amazon-ssm-agent-3.3.5226.0-1), released
 * after AWS signed with the key above (from July 2026; the key before it expired 2026-07-15).
 */
export const SSM_AGENT_VERSION = "3.3.5226.0";

/** Debian architecture names of the agent's package (debian_amd64, debian_arm64). */
export type DebArch = "amd64" | "arm64";
export function debArch(architecture: "x86_64" | "arm64"): DebArch {
  return architecture === "arm64" ? "arm64" : "amd64";
}

/**
 * sha256 of amazon-ssm-agent.deb of SSM_AGENT_VERSION per architecture. When set, the
 * ssm-agent step checks the package against it and against nothing else, so no signing key
 * decides whether a host boots. Empty: no value for this version could be read from a
 * source that can be cited (AWS publishes none beside the package; see README "The engine"),
 * so the step falls back to the signature. Fill both from one download of the two packages.
 */
export const SSM_AGENT_SHA256: Readonly<Partial<Record<DebArch, string>>> = {};

/**
 * Where AWS publishes one version of the SSM agent's Debian package and its signature for a
 * region and architecture: https://s3.<region>.amazonaws.com/amazon-ssm-<region>/<version>/debian_<amd64|arm64>/
 * (the versioned form of verify-agent-signature.html's latest/ path).
 */
export function ssmAgentUrl(region: string, architecture: "x86_64" | "arm64", version = SSM_AGENT_VERSION): string {
  return `https://s3.${region}.amazonaws.com/amazon-ssm-${region}/${version}/debian_${debArch(architecture)}`;
}

/** The scripts, in the order the bootstrap runs them. */
export const STEPS = ["hostkey", "ssm-agent", "instance-connect", "data-volume", "engine-install", "engine-ready"] as const;
/** The steps that set up how an EC2 host is reached (Session Manager, Instance Connect): skipped on a local host. */
export const AWS_ACCESS_STEPS = ["ssm-agent", "instance-connect"] as const;

/**
 * Where a host's SSH host private key comes from: the SSM SecureString parameter an EC2
 * host reads with its instance role, or a file the platform placed in the host before it
 * started (a local host: components/local-host.ts uploads it into the machine container).
 */
export type AwsHostKey = { ssmParameter: string; region: string };
export type HostKeySource = AwsHostKey | { file: string };
export function isAwsHostKey(k: HostKeySource): k is AwsHostKey {
  return "ssmParameter" in k;
}
/**
 * Extra step, only when the stack's registry is ECR (see stepsFor): installs the ECR
 * credential helper and points the docker CLI of the SSH user and root at it.
 */
export const REGISTRY_AUTH_STEP = "registry-auth" as const;
/** Extra step when engine.apparmor: installs AppArmor before the engine (CIS 5.2). */
export const APPARMOR_STEP = "apparmor" as const;
/** Extra step when engine.audit: auditd and the engine's audit rules (CIS 1.1.3-1.1.18). */
export const AUDIT_STEP = "audit" as const;
export type Step = (typeof STEPS)[number] | typeof REGISTRY_AUTH_STEP | typeof APPARMOR_STEP | typeof AUDIT_STEP;
/** The engine's audit rules; auditd loads /etc/audit/rules.d at boot (augenrules). */
export const AUDIT_RULES = "/etc/audit/rules.d/dockyard-docker.rules";
export const BOOTSTRAP_SCRIPT = `${SCRIPT_DIR}/dockyard-bootstrap.sh`;
export function stepScript(step: Step): string {
  return `${SCRIPT_DIR}/dockyard-${step}.sh`;
}
/** The credential helper docker's `credHelpers` names for ECR (binary docker-credential-ecr-login). */
export const ECR_CRED_HELPER = "ecr-login";
/** The package that ships docker-credential-ecr-login: same name in Debian, Ubuntu (universe) and Amazon Linux 2023. */
export const ECR_CRED_HELPER_PACKAGE = "amazon-ecr-credential-helper";

/**
 * The steps this host runs, in order: STEPS, with apparmor before engine-install (dockerd
 * loads its profile at start), and audit and (ECR registry) registry-auth before
 * engine-ready, so the readiness marker still means every step succeeded.
 */
export function stepsFor(input: Pick<UserDataInput, "registryHost"> & { engine: Pick<EngineSpec, "audit" | "apparmor">; hostKey?: UserDataInput["hostKey"] }): Step[] {
  // A local host (hostKey from a file) has no SSM agent or Instance Connect to set up: it is reached through the Docker Engine it runs on.
  const out: Step[] = STEPS.filter((s) => !(input.hostKey && !isAwsHostKey(input.hostKey) && (AWS_ACCESS_STEPS as readonly string[]).includes(s)));
  if (input.engine.apparmor) out.splice(out.indexOf("engine-install"), 0, APPARMOR_STEP);
  if (input.engine.audit) out.splice(out.indexOf("engine-ready"), 0, AUDIT_STEP);
  if (isEcrHost(input.registryHost)) out.splice(out.indexOf("engine-ready"), 0, REGISTRY_AUTH_STEP);
  return out;
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
  /** Engine labels, `key=value` (swarm mode: zone and group, components/swarm.ts swarmEngineLabels). */
  engineLabels?: readonly string[];
  /** TCP ports dockerd itself may listen on, on every address (swarm mode: 2377 and 7946, components/swarm.ts SWARM_PORTS); engine-ready refuses any other. */
  engineListenPorts?: readonly number[];
  /** Mount point of the separate data volume, e.g. /var/lib/dockyard. */
  dataMount: string;
  /** Stable device path of the data volume, e.g. /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123... */
  dataDevice: string;
  /**
   * This host's ed25519 SSH host private key (OpenSSH format): the SSM SecureString an EC2
   * host reads, or (a local host) the file its platform placed. The SSM agent and EC2
   * Instance Connect are set up only with the former.
   */
  hostKey: HostKeySource;
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
  /**
   * Where the SSM agent's package comes from: a directory URL (https) holding
   * amazon-ssm-agent.deb (and amazon-ssm-agent.deb.sig), and how it is checked: its sha256
   * (`sha256`, then nothing else), else the armored signing key and its fingerprint;
   * `version`, when given, is what dpkg must report installed. Default: AWS's bucket for
   * the host's region at SSM_AGENT_VERSION, SSM_AGENT_SHA256 for the host's architecture
   * when pinned, else AWS's key. The tests serve a stand-in.
   */
  ssmAgent?: SsmAgentSource;
}

/** Where one host's SSM agent package comes from and how the ssm-agent step checks it. */
export interface SsmAgentSource {
  url: string;
  publicKey: string;
  keyFingerprint: string;
  /** The package's sha256 (64 lowercase hex): when set, the only check. */
  sha256?: string;
  /** The agent version dpkg must report installed (`<version>` or `<version>-<n>`). */
  version?: string;
}

/** The user-data input of an EC2 host: its host key in SSM. */
export type AwsUserDataInput = UserDataInput & { hostKey: AwsHostKey };

/** The daemon.json the engine starts with (pure; exported for tests and the plan). */
export function renderDaemonJson(engine: EngineSpec, dataMount: string, labels: readonly string[] = []): Record<string, unknown> {
  const d = engine.daemon;
  const cfg: Record<string, unknown> = {
    // No "hosts" key: the packaged docker.service starts dockerd with `-H fd://`, and a
    // "hosts" entry here would conflict with that flag and stop the daemon from starting.
    // fd:// is the unix socket docker.socket creates; nothing listens on TCP.
    "data-root": dataRoot(dataMount),
    "log-driver": d.logDriver,
    "log-opts": { "max-size": d.logMaxSize, "max-file": String(d.logMaxFile) },
    "live-restore": d.liveRestore,
    icc: d.icc,
    "userland-proxy": d.userlandProxy,
    "no-new-privileges": d.noNewPrivileges,
  };
  // CIS 2.8: limits every container starts with (moby daemon/config: map of go-units Ulimit).
  const ulimits = Object.entries(d.defaultUlimits);
  if (ulimits.length > 0) cfg["default-ulimits"] = Object.fromEntries(ulimits.map(([name, l]) => [name, { Name: name, Hard: l?.hard, Soft: l?.soft }]));
  // CIS 2.9: "default" makes dockerd create the dockremap user and its subordinate ids (moby daemon_unix.go defaultIDSpecifier).
  if (d.userNamespaceRemap) cfg["userns-remap"] = "default";
  // metrics-addr is not experimental since Engine 20.10 (docker/cli#4391), which is the
  // oldest engine we install (Debian bookworm's docker.io 20.10.24); no "experimental".
  if (d.metricsPort > 0) cfg["metrics-addr"] = `127.0.0.1:${d.metricsPort}`;
  // Engine labels (swarm mode: the host's zone and group, which placement reads; components/swarm.ts).
  if (labels.length > 0) cfg.labels = [...labels];
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
    audit: engine.audit,
    apparmor: engine.apparmor,
    daemon: Object.fromEntries(Object.keys(d).sort().map((k) => [k, d[k as keyof typeof d]])),
  });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

/** Quotes a value for a POSIX shell (single quotes). */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The values this host's scripts need, as `KEY='value'` lines (shell-quoted) for the env
 * file that lib.sh sources: the only part of the scripts that varies between hosts.
 */
export function renderEnvironment(input: UserDataInput): string {
  const ce = input.engine.channel === "docker-ce";
  const repo = ce ? dockerCeRepository(input) : undefined;
  const d = input.engine.daemon;
  const k = input.hostKey;
  const aws = isAwsHostKey(k) ? k : undefined;
  const env: [string, string][] = [
    ["DOCKYARD_LIB", DOCKYARD_LIB],
    ["SCRIPT_DIR", SCRIPT_DIR],
    ["STEPS", stepsFor(input).join(" ")],
    ["SSH_USER", input.os.sshUser],
    ["HOSTKEY_SOURCE", aws ? "ssm" : "file"],
    ["HOSTKEY_REGION", aws?.region ?? ""],
    ["HOSTKEY_PARAMETER", aws?.ssmParameter ?? ""],
    ["HOSTKEY_FILE", isAwsHostKey(k) ? "" : k.file],
    ["SSH_HOST_KEY", SSH_HOST_KEY],
    ["SSHD_DROPIN", SSHD_DROPIN],
    ["DATA_DEVICE", input.dataDevice],
    ["DATA_MOUNT", input.dataMount],
    ["DATA_ROOT", dataRoot(input.dataMount)],
    ["DAEMON_JSON", DAEMON_JSON],
    ["ENGINE_CHANNEL", input.engine.channel],
    ["ENGINE_VERSION", input.engine.version ?? ""],
    ["ENGINE_INSTALL", ce ? "docker-ce" : input.os.info.packageManager],
    ["ENGINE_FINGERPRINT", engineFingerprint(input.engine)],
    ["DISTRO_PACKAGE", input.os.info.distroPackage],
    ["DOCKER_REPO", repo?.url ?? ""],
    ["DOCKER_KEY_FINGERPRINT", repo?.keyFingerprint ?? ""],
    ["DOCKER_KEYRING", DOCKER_KEYRING],
    ["DOCKER_SOURCE_STAGED", DOCKER_SOURCE_STAGED],
    ["DOCKER_SOURCE", DOCKER_SOURCE],
    ["REGISTRY_HOST", isEcrHost(input.registryHost) ? input.registryHost : ""],
    ["ECR_CRED_HELPER", ECR_CRED_HELPER],
    ["ECR_CRED_HELPER_PACKAGE", ECR_CRED_HELPER_PACKAGE],
    ["METRICS_ADDR", d.metricsPort > 0 ? `127.0.0.1:${d.metricsPort}` : ""],
    ["ENGINE_LISTEN_PORTS", (input.engineListenPorts ?? []).join(" ")],
    ["READY_MARKER", READY_MARKER],
    ["AUDIT_RULES", AUDIT_RULES],
    ["APPARMOR", input.engine.apparmor ? "1" : ""],
    ["PROXY_CONFIG_DIR", proxyConfigDir(input.dataMount)],
  ];
  if (aws) {
    const ssm = ssmAgentSource({ ...input, hostKey: aws });
    env.push(
      ["SSM_AGENT_URL", ssm.url],
      ["SSM_AGENT_VERSION", ssm.version ?? ""],
      ["SSM_AGENT_SHA256", ssm.sha256 ?? ""],
      ["SSM_AGENT_KEY", ssm.sha256 ? "" : SSM_AGENT_KEY],
      ["SSM_AGENT_KEY_FINGERPRINT", ssm.sha256 ? "" : ssm.keyFingerprint],
      ["EIC_KEYS_COMMAND", EIC_KEYS_COMMAND],
      ["EIC_SSHD_DROPIN", EIC_SSHD_DROPIN],
    );
  }
  return `# Dockyard: the values rendered for this host (components/engine.ts renderEnvironment)\n# shellcheck shell=bash disable=SC2034 # read by the scripts that source this file\n${env.map(([k, v]) => `${k}=${shq(v)}`).join("\n")}\n`;
}

/** The SSM agent's source for this host: input.ssmAgent (a stand-in), else AWS's for its region, at the pinned version. */
export function ssmAgentSource(input: Pick<UserDataInput, "stack" | "os" | "ssmAgent"> & { hostKey: { region: string } }): SsmAgentSource {
  const sha256 = SSM_AGENT_SHA256[debArch(input.os.architecture)];
  const s: SsmAgentSource = input.ssmAgent ?? {
    url: ssmAgentUrl(input.hostKey.region, input.os.architecture),
    publicKey: engineFile("keys/amazon-ssm-agent.asc"),
    keyFingerprint: SSM_AGENT_KEY_FINGERPRINT,
    version: SSM_AGENT_VERSION,
    ...(sha256 !== undefined ? { sha256 } : {}),
  };
  if (!/^https:\/\/[^\s'"]+$/.test(s.url)) throw new Error(`stack "${input.stack}": ssmAgent.url: "${s.url}" must be an https:// URL`);
  if (!/^[0-9A-F]{40}$/.test(s.keyFingerprint)) throw new Error(`stack "${input.stack}": ssmAgent.keyFingerprint must be a 40-hex-digit OpenPGP fingerprint`);
  if (s.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(s.sha256)) throw new Error(`stack "${input.stack}": ssmAgent.sha256 must be 64 lowercase hex digits`);
  if (s.version !== undefined && !/^\d+(\.\d+)+$/.test(s.version)) throw new Error(`stack "${input.stack}": ssmAgent.version "${s.version}" must be a dotted version`);
  return { ...s, url: s.url.replace(/\/+$/, "") };
}

/** A file of components/engine/, as it is. */
function engineFile(name: string): string {
  return fs.readFileSync(path.join(ENGINE_FILES_DIR, name), "utf8");
}

/** Renders the host's cloud-config ("#cloud-config\n..."); the input comes from the parsed spec. */
export function renderUserData(input: UserDataInput): string {
  const steps = stepsFor(input);
  const files: { path: string; permissions: string; content: string }[] = [
    { path: ENV_PATH, permissions: "0644", content: renderEnvironment(input) },
    { path: LIB_PATH, permissions: "0644", content: engineFile("lib.sh") },
    { path: DAEMON_JSON, permissions: "0644", content: `${JSON.stringify(renderDaemonJson(input.engine, input.dataMount, input.engineLabels), null, 2)}\n` },
    { path: DOCKER_UNIT_DROPIN, permissions: "0644", content: dockerUnitDropin(input.dataMount) },
  ];
  if (isAwsHostKey(input.hostKey)) {
    const ssm = ssmAgentSource({ ...input, hostKey: input.hostKey });
    // The key only when the step uses it: with a pinned sha256 no key takes part.
    if (!ssm.sha256) files.push({ path: SSM_AGENT_KEY, permissions: "0644", content: ssm.publicKey });
    files.push({ path: EIC_KEYS_COMMAND, permissions: "0755", content: engineFile("eic-keys.sh") });
  }
  if (input.engine.channel === "docker-ce") {
    files.push({ path: DOCKER_SOURCE_STAGED, permissions: "0644", content: dockerSource(input) });
  }
  if (steps.includes(REGISTRY_AUTH_STEP)) {
    files.push({ path: CRED_HELPER_SCRIPT, permissions: "0644", content: engineFile("set-cred-helper.py") });
  }
  for (const step of steps) {
    files.push({ path: stepScript(step), permissions: "0755", content: engineFile(`steps/${step}.sh`) });
  }
  files.push({ path: BOOTSTRAP_SCRIPT, permissions: "0755", content: engineFile("steps/bootstrap.sh") });
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
 * cloud-config (~24 KB) ships well under EC2's 16 KB raw limit.
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
// The small files rendered here (the scripts are files in components/engine/)
// ---------------------------------------------------------------------------------

/** The engine's data-root: on the data volume (the schema hands dataMount over without a trailing slash). */
function dataRoot(dataMount: string): string {
  return `${dataMount}/docker`;
}

function dockerUnitDropin(dataMount: string): string {
  return `# Dockyard: the engine's data-root is on the data volume; never start without it
# (the fstab entry is nofail so the host still boots and stays reachable over SSH).
[Unit]
RequiresMountsFor=${dataMount}
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
  // break out of the deb822 source.
  if (!/^https:\/\/[A-Za-z0-9._~:@%/[\]+=,-]+$/.test(url)) {
    throw new Error(`stack "${input.stack}": dockerCeRepository.url: "${r.url}" must be an https:// URL`);
  }
  if (!/^[0-9A-F]{40}$/.test(keyFingerprint)) {
    throw new Error(`stack "${input.stack}": dockerCeRepository.keyFingerprint: "${r.keyFingerprint}" must be a 40-hex-digit OpenPGP fingerprint`);
  }
  return { url, keyFingerprint };
}

function dockerSource(input: UserDataInput): string {
  const arch = debArch(input.os.architecture);
  return `Types: deb
URIs: ${dockerCeRepository(input).url}
Suites: ${input.os.info.codename}
Components: stable
Architectures: ${arch}
Signed-By: ${DOCKER_KEYRING}
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
  const values: [string, string][] = [
    ["TIMEOUT", String(timeoutSeconds)],
    ["INSTANCE_ID", instanceId ?? ""],
    ["FINGERPRINT", engineFingerprint(engine)],
    ["READY_MARKER", READY_MARKER],
    ["CLOUD_INIT_INSTANCE_ID", CLOUD_INIT_INSTANCE_ID],
  ];
  return `${values.map(([k, v]) => `${k}=${shq(v)}`).join("\n")}\n${engineFile("ready-check.sh")}`;
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
  /** How to reach the host: the host's one HostConnection (DockerHost.connection), host key pinned. */
  connection: HostConnection;
  /** Engine spec the host was rendered with (same value passed to renderUserData). */
  engine: EngineSpec;
  /**
   * The id of the instance `connection.target` must reach (the EIP association's instanceId).
   * A replaced host keeps its address and host key: this id re-runs the check for the new
   * instance, and the check fails if the connection still reaches another one.
   */
  hostId?: pulumi.Input<string>;
  /**
   * Something that changes whenever the machine is replaced while `hostId` may not (a local
   * host: its container id; the cloud-init instance id follows the user-data only): the
   * check runs again for the new machine.
   */
  machineId?: pulumi.Input<string>;
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
  /**
   * The ready check's id: new each time the check is created again (a new machine, a new
   * engine; pulumi-command's Create makes a fresh resource.NewUniqueHex id), so what
   * depends on a host having come back (the fleet's serving gate) can trigger on it.
   */
  public readonly readyId: pulumi.Output<string>;

  constructor(name: string, args: DockerEngineArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:DockerEngine", name, {}, opts);
    const timeout = args.timeoutSeconds ?? 1200;
    if (!Number.isInteger(timeout) || timeout < 60 || timeout > 7200) {
      throw new Error(`DockerEngine ${name}: timeoutSeconds must be an integer from 60 to 7200 (got ${timeout})`);
    }
    // The host key is installed early by cloud-init; until then sshd presents another key
    // (and, through Session Manager, the SSM agent is not registered yet), so the dial is
    // retried while the host boots: up to 120 dials, 30 s apart, plus ssh's own 30 s
    // ConnectTimeout each - the customTimeouts below still bound the whole.
    const retry = { attempts: 120, intervalSeconds: 30 };

    // Runs once per engine configuration (and per host: the target changes with it).
    const readyCmd = new command.local.Command(
      `${name}-ready`,
      hostCommandArgs(
        args.connection,
        {
          create: args.hostId !== undefined ? pulumi.output(args.hostId).apply((id) => renderReadyCommand(args.engine, timeout, id)) : renderReadyCommand(args.engine, timeout),
          triggers: [...readyTriggers(args.engine), ...(args.hostId !== undefined ? [args.hostId] : []), ...(args.machineId !== undefined ? [args.machineId] : [])],
        },
        retry,
      ),
      { parent: this, customTimeouts: { create: `${timeout + 600}s`, update: `${timeout + 600}s` } },
    );

    this.ready = readyCmd.stdout.apply((s) => s.trim());
    this.readyId = readyCmd.id;
    this.channel = pulumi.output(args.engine.channel);
    this.version = args.engine.version !== undefined ? pulumi.output(args.engine.version) : this.ready;
    this.registerOutputs({ ready: this.ready, channel: this.channel, version: this.version });
  }
}
