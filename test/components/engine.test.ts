import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { useMocks, promisify } from "../helpers/pulumi";
import { RETRY_SCRIPT, sshArgv, ssmProxyCommand } from "../../components/connection";
import { OS_FAMILIES, loadStackSpec, sshKeyLine, type EngineSpec, type EnvironmentSpec, type OsFamily } from "../../stacks";
import {
  renderUserData,
  renderEnvironment,
  renderDaemonJson,
  renderReadyCommand,
  engineFingerprint,
  readyTriggers,
  userDataBase64,
  BOOTSTRAP_SCRIPT,
  CRED_HELPER_SCRIPT,
  DAEMON_JSON,
  DOCKER_APT_KEY_FINGERPRINT,
  DOCKER_SOURCE_STAGED,
  DOCKER_UNIT_DROPIN,
  DockerEngine,
  EC2_USER_DATA_LIMIT,
  ENGINE_FILES_DIR,
  ENV_PATH,
  LIB_PATH,
  READY_MARKER,
  STEPS,
  stepScript,
  stepsFor,
  REGISTRY_AUTH_STEP,
  APPARMOR_STEP,
  AUDIT_STEP,
  SSM_AGENT_KEY,
  SSM_AGENT_SHA256,
  debArch,
  EIC_KEYS_COMMAND,
  type UserDataInput,
} from "../../components/engine";

// components/engine registers nothing at import time, so a static import is fine; the
// mocks only need to be in place before a DockerEngine is constructed.
const mocks = useMocks("dev");

const DEVICE = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0";
const STACKS = ["dev", "test", "prod"] as const;
const FAMILIES = Object.keys(OS_FAMILIES) as OsFamily[];
const ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

interface WriteFile {
  path: string;
  owner: string;
  permissions: string;
  content: string;
}
interface CloudConfig {
  hostname: string;
  preserve_hostname: boolean;
  write_files: WriteFile[];
  runcmd: string[][];
}

function osFor(family: OsFamily, arch: "x86_64" | "arm64" = "x86_64"): EnvironmentSpec["os"] {
  const info = OS_FAMILIES[family];
  return { family, architecture: arch, info, sshUser: info.sshUser };
}

function inputFor(stack: string, over: Partial<UserDataInput> = {}): UserDataInput {
  const spec = loadStackSpec(stack);
  return {
    stack,
    hostName: `${stack}-app-1`,
    os: spec.os,
    engine: spec.engine,
    dataMount: spec.hostGroups[0].dataMount,
    dataDevice: DEVICE,
    hostKey: { ssmParameter: `/dockyard/${stack}/hosts/${stack}-app-1/ssh-host-key`, region: spec.region },
    registryHost: spec.registry.split("/")[0],
    ...over,
  };
}

function parse(userData: string): CloudConfig {
  expect(userData.startsWith("#cloud-config\n")).toBe(true);
  const doc = YAML.parse(userData) as CloudConfig;
  expect(doc).toBeTypeOf("object");
  return doc;
}

function file(doc: CloudConfig, p: string): WriteFile {
  const f = doc.write_files.find((x) => x.path === p);
  if (!f) throw new Error(`no write_files entry ${p}; have ${doc.write_files.map((x) => x.path).join(", ")}`);
  return f;
}

/** The env file as bash reads it: sourced by a real bash, every variable printed back. */
function sourced(env: string): Record<string, string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-env-"));
  try {
    fs.writeFileSync(path.join(dir, "env"), env);
    const keys = [...env.matchAll(/^([A-Z_]+)=/gm)].map((m) => m[1]);
    const out = execFileSync("bash", ["-c", `set -eu; . "$1"; for k in ${keys.join(" ")}; do printf '%s=%s\\0' "$k" "\${!k}"; done`, "env", path.join(dir, "env")], { encoding: "utf8" });
    return Object.fromEntries(out.split("\0").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Every rendering variant the schema allows: each stack x OS family x channel, with and without ECR. */
function variants(): { name: string; input: UserDataInput }[] {
  const out: { name: string; input: UserDataInput }[] = [];
  for (const stack of STACKS) {
    const spec = loadStackSpec(stack);
    for (const family of FAMILIES) {
      const os = osFor(family);
      if (OS_FAMILIES[family].dockerCeRepo) {
        const version = `5:28.5.1-1~${OS_FAMILIES[family].distro}.${family === "debian-12" ? "12" : "24.04"}~${OS_FAMILIES[family].codename}`;
        out.push({ name: `${stack}/${family}/docker-ce`, input: inputFor(stack, { os, engine: { ...spec.engine, channel: "docker-ce", version } }) });
      }
      out.push({ name: `${stack}/${family}/distro`, input: inputFor(stack, { os, engine: { ...spec.engine, channel: "distro", version: undefined } }) });
      out.push({ name: `${stack}/${family}/distro/no-ecr`, input: inputFor(stack, { os, engine: { ...spec.engine, channel: "distro", version: undefined }, registryHost: "127.0.0.1:5000" }) });
    }
  }
  return out;
}

const engineFile = (name: string) => fs.readFileSync(path.join(ENGINE_FILES_DIR, name), "utf8");

describe("renderUserData: the files of components/engine/ as they are, plus one env file", () => {
  for (const { name, input } of variants()) {
    it(`${name}: exactly the expected files, scripts byte for byte, bootstrap runs the steps`, () => {
      const doc = parse(renderUserData(input));
      expect(doc.hostname).toBe(input.hostName);
      expect(doc.preserve_hostname).toBe(false);
      expect(doc.runcmd).toEqual([[BOOTSTRAP_SCRIPT]]);
      const steps = stepsFor(input);
      const ce = input.engine.channel === "docker-ce";
      const ecr = steps.includes(REGISTRY_AUTH_STEP);
      expect(doc.write_files.map((f) => f.path)).toEqual([
        ENV_PATH,
        LIB_PATH,
        DAEMON_JSON,
        DOCKER_UNIT_DROPIN,
        // The signing key only while the host's architecture has no pinned sha256 (issue 24 item 1).
        ...(SSM_AGENT_SHA256[debArch(input.os.architecture)] ? [] : [SSM_AGENT_KEY]),
        EIC_KEYS_COMMAND,
        ...(ce ? [DOCKER_SOURCE_STAGED] : []),
        ...(ecr ? [CRED_HELPER_SCRIPT] : []),
        ...steps.map(stepScript),
        BOOTSTRAP_SCRIPT,
      ]);
      for (const f of doc.write_files) expect(f.owner, f.path).toBe("root:root");
      for (const step of steps) {
        const f = file(doc, stepScript(step));
        expect(f.content, step).toBe(engineFile(`steps/${step}.sh`));
        expect(f.permissions).toBe("0755");
      }
      expect(file(doc, LIB_PATH).content).toBe(engineFile("lib.sh"));
      expect(file(doc, EIC_KEYS_COMMAND)).toMatchObject({ content: engineFile("eic-keys.sh"), permissions: "0755" });
      if (!SSM_AGENT_SHA256[debArch(input.os.architecture)]) expect(file(doc, SSM_AGENT_KEY).content).toBe(engineFile("keys/amazon-ssm-agent.asc"));
      expect(file(doc, BOOTSTRAP_SCRIPT).content).toBe(engineFile("steps/bootstrap.sh"));
      if (ecr) expect(file(doc, CRED_HELPER_SCRIPT).content).toBe(engineFile("set-cred-helper.py"));
      expect(JSON.parse(file(doc, DAEMON_JSON).content)).toEqual(renderDaemonJson(input.engine, input.dataMount));
      expect(file(doc, DOCKER_UNIT_DROPIN).content).toContain(`\nRequiresMountsFor=${input.dataMount}\n`);
      const env = sourced(file(doc, ENV_PATH).content);
      expect(env.STEPS.split(" ")).toEqual(steps);
      expect(env.ENGINE_INSTALL).toBe(ce ? "docker-ce" : input.os.info.packageManager);
      // No secret material: the host key is read from SSM at boot, registries use the instance role.
      const code = renderUserData(input).split("\n").filter((l) => !l.trimStart().startsWith("#")).join("\n");
      expect(code).not.toMatch(/BEGIN [A-Z ]*PRIVATE KEY|"auths"|docker login|--password/);
      // Under EC2's limit once gzip-compressed.
      expect(Buffer.from(userDataBase64(renderUserData(input)), "base64").length).toBeLessThanOrEqual(EC2_USER_DATA_LIMIT);
    });
  }

  it("each script names the lib and env paths the component writes them to", () => {
    for (const step of [...STEPS, REGISTRY_AUTH_STEP, APPARMOR_STEP, AUDIT_STEP, "bootstrap"]) {
      expect(engineFile(`steps/${step}.sh`), step).toContain(`\n. ${LIB_PATH}\n`);
    }
    expect(engineFile("lib.sh")).toContain(`\n. ${ENV_PATH}\n`);
    expect(engineFile("steps/registry-auth.sh")).toContain(`"$DOCKYARD_LIB/${path.basename(CRED_HELPER_SCRIPT)}"`);
  });
});

describe("renderEnvironment: the one part of the scripts that varies", () => {
  it("prod (docker-ce, ECR): every value, shell-quoted", () => {
    const input = inputFor("prod");
    const spec = loadStackSpec("prod");
    expect(renderEnvironment(input)).toBe(
      [
        "# Dockyard: the values rendered for this host (components/engine.ts renderEnvironment)",
        "# shellcheck shell=bash disable=SC2034 # read by the scripts that source this file",
        "DOCKYARD_LIB='/usr/local/lib/dockyard'",
        "SCRIPT_DIR='/usr/local/sbin'",
        "STEPS='hostkey ssm-agent instance-connect data-volume apparmor engine-install audit registry-auth engine-ready'",
        `SSH_USER='${spec.os.sshUser}'`,
        "HOSTKEY_SOURCE='ssm'",
        `HOSTKEY_REGION='${spec.region}'`,
        "HOSTKEY_PARAMETER='/dockyard/prod/hosts/prod-app-1/ssh-host-key'",
        "HOSTKEY_FILE=''",
        "SSH_HOST_KEY='/etc/ssh/ssh_host_ed25519_key'",
        "SSHD_DROPIN='/etc/ssh/sshd_config.d/10-dockyard-hostkey.conf'",
        `DATA_DEVICE='${DEVICE}'`,
        "DATA_MOUNT='/var/lib/dockyard'",
        "DATA_ROOT='/var/lib/dockyard/docker'",
        "DAEMON_JSON='/etc/docker/daemon.json'",
        "ENGINE_CHANNEL='docker-ce'",
        `ENGINE_VERSION='${spec.engine.version}'`,
        "ENGINE_INSTALL='docker-ce'",
        `ENGINE_FINGERPRINT='${engineFingerprint(spec.engine)}'`,
        `DISTRO_PACKAGE='${spec.os.info.distroPackage}'`,
        `DOCKER_REPO='${spec.os.info.dockerCeRepo}'`,
        `DOCKER_KEY_FINGERPRINT='${DOCKER_APT_KEY_FINGERPRINT}'`,
        "DOCKER_KEYRING='/etc/apt/keyrings/docker.asc'",
        "DOCKER_SOURCE_STAGED='/usr/local/share/dockyard/docker.sources'",
        "DOCKER_SOURCE='/etc/apt/sources.list.d/docker.sources'",
        `REGISTRY_HOST='${spec.registry.split("/")[0]}'`,
        "ECR_CRED_HELPER='ecr-login'",
        "ECR_CRED_HELPER_PACKAGE='amazon-ecr-credential-helper'",
        `METRICS_ADDR='127.0.0.1:${spec.engine.daemon.metricsPort}'`,
        "ENGINE_LISTEN_PORTS=''",
        `READY_MARKER='${READY_MARKER}'`,
        "AUDIT_RULES='/etc/audit/rules.d/dockyard-docker.rules'",
        "APPARMOR='1'",
        "PROXY_CONFIG_DIR='/var/lib/dockyard/proxy'",
        // The pinned agent from the region's versioned path (issue 24 item 1); no sha256 pinned yet, so the key checks it.
        `SSM_AGENT_URL='https://s3.${spec.region}.amazonaws.com/amazon-ssm-${spec.region}/3.3.5226.0/debian_amd64'`,
        "SSM_AGENT_VERSION='3.3.5226.0'",
        "SSM_AGENT_SHA256=''",
        "SSM_AGENT_KEY='/usr/local/lib/dockyard/amazon-ssm-agent.asc'",
        "SSM_AGENT_KEY_FINGERPRINT='1C5B395CBE5E74E2F1CA21592784DBF388D19D46'",
        "EIC_KEYS_COMMAND='/usr/local/sbin/dockyard-eic-keys'",
        "EIC_SSHD_DROPIN='/etc/ssh/sshd_config.d/20-dockyard-instance-connect.conf'",
        "",
      ].join("\n"),
    );
  });

  it("dev on the distro channel, loopback registry, metrics off: every value, the unused ones empty", () => {
    const spec = loadStackSpec("dev");
    const engine: EngineSpec = { ...spec.engine, channel: "distro", version: undefined, daemon: { ...spec.engine.daemon, metricsPort: 0 } };
    const input = inputFor("dev", { os: osFor("debian-12"), engine, dataDevice: "/dev/xvdf", registryHost: "127.0.0.1:5000" });
    expect(renderEnvironment(input)).toBe(
      [
        "# Dockyard: the values rendered for this host (components/engine.ts renderEnvironment)",
        "# shellcheck shell=bash disable=SC2034 # read by the scripts that source this file",
        "DOCKYARD_LIB='/usr/local/lib/dockyard'",
        "SCRIPT_DIR='/usr/local/sbin'",
        "STEPS='hostkey ssm-agent instance-connect data-volume apparmor engine-install audit engine-ready'",
        "SSH_USER='admin'",
        "HOSTKEY_SOURCE='ssm'",
        `HOSTKEY_REGION='${spec.region}'`,
        "HOSTKEY_PARAMETER='/dockyard/dev/hosts/dev-app-1/ssh-host-key'",
        "HOSTKEY_FILE=''",
        "SSH_HOST_KEY='/etc/ssh/ssh_host_ed25519_key'",
        "SSHD_DROPIN='/etc/ssh/sshd_config.d/10-dockyard-hostkey.conf'",
        "DATA_DEVICE='/dev/xvdf'",
        "DATA_MOUNT='/var/lib/dockyard'",
        "DATA_ROOT='/var/lib/dockyard/docker'",
        "DAEMON_JSON='/etc/docker/daemon.json'",
        "ENGINE_CHANNEL='distro'",
        "ENGINE_VERSION=''",
        "ENGINE_INSTALL='apt'",
        `ENGINE_FINGERPRINT='${engineFingerprint(engine)}'`,
        "DISTRO_PACKAGE='docker.io'",
        "DOCKER_REPO=''",
        "DOCKER_KEY_FINGERPRINT=''",
        "DOCKER_KEYRING='/etc/apt/keyrings/docker.asc'",
        "DOCKER_SOURCE_STAGED='/usr/local/share/dockyard/docker.sources'",
        "DOCKER_SOURCE='/etc/apt/sources.list.d/docker.sources'",
        "REGISTRY_HOST=''",
        "ECR_CRED_HELPER='ecr-login'",
        "ECR_CRED_HELPER_PACKAGE='amazon-ecr-credential-helper'",
        "METRICS_ADDR=''",
        "ENGINE_LISTEN_PORTS=''",
        `READY_MARKER='${READY_MARKER}'`,
        "AUDIT_RULES='/etc/audit/rules.d/dockyard-docker.rules'",
        "APPARMOR='1'",
        "PROXY_CONFIG_DIR='/var/lib/dockyard/proxy'",
        // The pinned agent from the region's versioned path (issue 24 item 1); no sha256 pinned yet, so the key checks it.
        `SSM_AGENT_URL='https://s3.${spec.region}.amazonaws.com/amazon-ssm-${spec.region}/3.3.5226.0/debian_amd64'`,
        "SSM_AGENT_VERSION='3.3.5226.0'",
        "SSM_AGENT_SHA256=''",
        "SSM_AGENT_KEY='/usr/local/lib/dockyard/amazon-ssm-agent.asc'",
        "SSM_AGENT_KEY_FINGERPRINT='1C5B395CBE5E74E2F1CA21592784DBF388D19D46'",
        "EIC_KEYS_COMMAND='/usr/local/sbin/dockyard-eic-keys'",
        "EIC_SSHD_DROPIN='/etc/ssh/sshd_config.d/20-dockyard-instance-connect.conf'",
        "",
      ].join("\n"),
    );
  });

  it("a hostile value reaches bash exactly as given, never as code", () => {
    const hostile = `/x'; touch /tmp/pwned; echo '$(id) \`id\` "q" \\ $HOME`;
    const env = sourced(renderEnvironment(inputFor("dev", { hostKey: { ssmParameter: hostile, region: "eu-west-1" } })));
    expect(env.HOSTKEY_PARAMETER).toBe(hostile);
  });

  it("distro channel: the package and version (or none); no ECR: no registry; metrics off when 0", () => {
    const spec = loadStackSpec("dev");
    const pinned = sourced(renderEnvironment(inputFor("dev", { engine: { ...spec.engine, channel: "distro", version: "20.10.24+dfsg1-1+b3" } })));
    expect([pinned.ENGINE_INSTALL, pinned.ENGINE_VERSION, pinned.DOCKER_REPO]).toEqual(["apt", "20.10.24+dfsg1-1+b3", ""]);
    const al = sourced(renderEnvironment(inputFor("dev", { os: osFor("amazon-linux-2023"), engine: { ...spec.engine, channel: "distro", version: undefined } })));
    expect([al.ENGINE_INSTALL, al.ENGINE_VERSION, al.DISTRO_PACKAGE]).toEqual(["dnf", "", OS_FAMILIES["amazon-linux-2023"].distroPackage]);
    const local = sourced(renderEnvironment(inputFor("dev", { registryHost: "127.0.0.1:5000", engine: { ...spec.engine, daemon: { ...spec.engine.daemon, metricsPort: 0 } } })));
    expect([local.REGISTRY_HOST, local.METRICS_ADDR]).toEqual(["", ""]);
    expect(local.STEPS).toBe("hostkey ssm-agent instance-connect data-volume apparmor engine-install audit engine-ready");
  });
});

describe("renderUserData: one snapshot of the whole user-data", () => {
  it("prod's first host", async () => {
    await expect(renderUserData(inputFor("prod"))).toMatchFileSnapshot("__snapshots__/prod-app-1.user-data.yaml");
  });
});

describe("renderUserData: Docker's apt source", () => {
  it("uses the arm64 architecture for arm64 hosts", () => {
    const doc = parse(renderUserData(inputFor("dev", { os: osFor("debian-12", "arm64") })));
    expect(file(doc, DOCKER_SOURCE_STAGED).content).toContain("Architectures: arm64\n");
  });

  it("installs docker-ce from a mirror of Docker's repository when given, still checking its key's fingerprint", () => {
    const fp = "0123456789ABCDEF0123456789ABCDEF01234567";
    const mirror = { url: "https://mirror.example.com/docker/linux/debian/", keyFingerprint: fp.toLowerCase() };
    const input = inputFor("prod", { dockerCeRepository: mirror });
    expect(file(parse(renderUserData(input)), DOCKER_SOURCE_STAGED).content).toContain("\nURIs: https://mirror.example.com/docker/linux/debian\n");
    const env = sourced(renderEnvironment(input));
    expect([env.DOCKER_REPO, env.DOCKER_KEY_FINGERPRINT]).toEqual(["https://mirror.example.com/docker/linux/debian", fp]);
    expect(() => renderUserData(inputFor("prod", { dockerCeRepository: { ...mirror, url: "http://mirror.example.com/x" } }))).toThrow(/stack "prod": dockerCeRepository\.url/);
    expect(() => renderUserData(inputFor("prod", { dockerCeRepository: { ...mirror, url: "https://m/x'; rm -rf /" } }))).toThrow(/dockerCeRepository\.url/);
    expect(() => renderUserData(inputFor("prod", { dockerCeRepository: { ...mirror, keyFingerprint: "0EBFCD88" } }))).toThrow(/dockerCeRepository\.keyFingerprint/);
  });

  it("daemon.json: data-root on the data volume, metrics only on loopback and only when set", () => {
    const spec = loadStackSpec("dev");
    expect(renderDaemonJson(spec.engine, "/data")["data-root"]).toBe("/data/docker");
    expect(renderDaemonJson(spec.engine, "/data")["metrics-addr"]).toBe(`127.0.0.1:${spec.engine.daemon.metricsPort}`);
    expect(renderDaemonJson({ ...spec.engine, daemon: { ...spec.engine.daemon, metricsPort: 0 } }, "/data")).not.toHaveProperty("metrics-addr");
    expect(renderDaemonJson(spec.engine, "/data")).not.toHaveProperty("hosts");
  });

  it("daemon.json: default ulimits in moby's form (CIS 2.8), userns-remap only when asked (CIS 2.9)", () => {
    const spec = loadStackSpec("dev");
    expect(renderDaemonJson(spec.engine, "/data")["default-ulimits"]).toEqual({ nofile: { Name: "nofile", Hard: 16384, Soft: 16384 } });
    expect(renderDaemonJson(spec.engine, "/data")).not.toHaveProperty("userns-remap");
    const remap = { ...spec.engine, daemon: { ...spec.engine.daemon, userNamespaceRemap: true, defaultUlimits: {} } };
    expect(renderDaemonJson(remap, "/data")["userns-remap"]).toBe("default");
    expect(renderDaemonJson(remap, "/data")).not.toHaveProperty("default-ulimits");
  });

  it("the env file names the audit rules, AppArmor and the proxy's configuration directory; the fingerprint changes with audit or AppArmor", () => {
    const input = inputFor("prod");
    const env = sourced(renderEnvironment(input));
    expect([env.AUDIT_RULES, env.APPARMOR, env.PROXY_CONFIG_DIR]).toEqual(["/etc/audit/rules.d/dockyard-docker.rules", "1", "/var/lib/dockyard/proxy"]);
    expect(sourced(renderEnvironment({ ...input, engine: { ...input.engine, apparmor: false } })).APPARMOR).toBe("");
    expect(engineFingerprint({ ...input.engine, audit: false })).not.toBe(engineFingerprint(input.engine));
    expect(engineFingerprint({ ...input.engine, apparmor: false })).not.toBe(engineFingerprint(input.engine));
  });
});

describe("engineFingerprint and the ready check", () => {
  const engine = loadStackSpec("dev").engine;

  it("changes with version, channel and any daemon setting, and only then", () => {
    const fp = engineFingerprint(engine);
    expect(fp).toMatch(/^[0-9a-f]{16}$/);
    expect(engineFingerprint({ ...engine, daemon: { ...engine.daemon } })).toBe(fp);
    expect(engineFingerprint({ ...engine, version: "5:28.5.2-1~debian.12~bookworm" })).not.toBe(fp);
    expect(engineFingerprint({ ...engine, channel: "distro" })).not.toBe(fp);
    for (const [k, v] of Object.entries({ logMaxFile: 7, liveRestore: false, metricsPort: 0, icc: true, logDriver: "json-file" })) {
      expect(engineFingerprint({ ...engine, daemon: { ...engine.daemon, [k]: v } }), k).not.toBe(fp);
    }
  });

  it("the ready command is ready-check.sh after its values (timeout, instance id, fingerprint, marker)", () => {
    const fp = engineFingerprint(engine);
    const check = fs.readFileSync(path.join(ENGINE_FILES_DIR, "ready-check.sh"), "utf8");
    expect(renderReadyCommand(engine, 900)).toBe(
      `TIMEOUT='900'\nINSTANCE_ID=''\nFINGERPRINT='${fp}'\nREADY_MARKER='${READY_MARKER}'\nCLOUD_INIT_INSTANCE_ID='/var/lib/cloud/data/instance-id'\n${check}`,
    );
    expect(renderReadyCommand(engine, 1200, "i-0123456789abcdef0")).toContain("\nINSTANCE_ID='i-0123456789abcdef0'\n");
  });
});

describe("DockerEngine on the mock runtime", () => {
  const engine = loadStackSpec("dev").engine;
  const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkq0sJm2cX4l9gJz3wq8sOe0x6y6m5Yc3o3z0m0kQ2y";

  it("runs the ready check over the host's ssh, host key pinned, retried while the host boots, and reports the engine version", async () => {
    const e = new DockerEngine("dev-app-1-engine", {
      hostName: "dev-app-1",
      connection: { target: "203.0.113.10", user: "admin", hostPublicKey: `${hostKey} dockyard-host\n` },
      engine,
    });
    expect(await promisify(e.ready)).toBe("computed(dev-app-1-engine-ready.stdout)");
    expect(await promisify(e.channel)).toBe("docker-ce");
    expect(await promisify(e.version)).toBe(engine.version);
    const comp = mocks.get("dockyard:index:DockerEngine", "dev-app-1-engine");
    expect(comp.custom).toBe(false);
    const cmd = mocks.get("command:local:Command", "dev-app-1-engine-ready");
    const argv = cmd.inputs.interpreter as string[];
    // The retry wrapper, then exactly the ssh command line every connection to this host uses.
    expect(argv.slice(0, 4)).toEqual(["/bin/sh", "-c", RETRY_SCRIPT, "dockyard-ssh-retry"]);
    expect(Number(argv[4])).toBeGreaterThan(10);
    expect(argv.slice(6)).toEqual(sshArgv({ target: "203.0.113.10", user: "admin", hostPublicKey: hostKey }));
    expect(argv).toContain(`KnownHostsCommand=/bin/echo %H ${hostKey}`);
    expect(cmd.inputs.addPreviousOutputInEnv).toBe(false);
    expect(cmd.inputs.create).toBe(renderReadyCommand(engine, 1200));
    expect(cmd.inputs.triggers).toEqual(readyTriggers(engine));
  });

  it("changes the ready command's triggers when the engine version changes", async () => {
    const newer: EngineSpec = { ...engine, version: "5:28.5.2-1~debian.12~bookworm" };
    const e = new DockerEngine("dev-app-2-engine", {
      hostName: "dev-app-2",
      connection: { target: "i-0123456789abcdef0", user: "admin", hostPublicKey: hostKey, proxyCommand: ssmProxyCommand("eu-west-1", "admin") },
      engine: newer,
    });
    await promisify(e.ready);
    const argv = mocks.get("command:local:Command", "dev-app-2-engine-ready").inputs.interpreter as string[];
    expect(argv.slice(-2)).toEqual(["--", "admin@i-0123456789abcdef0"]);
    expect(argv).toContain(`ProxyCommand=${ssmProxyCommand("eu-west-1", "admin")}`);
    const a = mocks.get("command:local:Command", "dev-app-1-engine-ready").inputs.triggers as string[];
    const b = mocks.get("command:local:Command", "dev-app-2-engine-ready").inputs.triggers as string[];
    expect(b).not.toEqual(a);
    expect(b).toContain("5:28.5.2-1~debian.12~bookworm");
    expect(await promisify(e.version)).toBe("5:28.5.2-1~debian.12~bookworm");
  });

  it("re-runs the check for a replaced host (hostId is a trigger)", async () => {
    const e = new DockerEngine("dev-app-4-engine", {
      hostName: "dev-app-4",
      connection: { target: "203.0.113.14", user: "admin", hostPublicKey: hostKey },
      engine,
      hostId: "i-0123456789abcdef0",
    });
    await promisify(e.ready);
    const t = mocks.get("command:local:Command", "dev-app-4-engine-ready").inputs.triggers as string[];
    expect(t).toEqual([...readyTriggers(engine), "i-0123456789abcdef0"]);
  });

  it("reports the server version as `version` for an unpinned distro engine", async () => {
    const e = new DockerEngine("dev-app-3-engine", {
      hostName: "dev-app-3",
      connection: { target: "203.0.113.12", user: "admin", hostPublicKey: hostKey },
      engine: { ...engine, channel: "distro", version: undefined },
    });
    expect(await promisify(e.version)).toBe("computed(dev-app-3-engine-ready.stdout)");
  });

  it("pins the host key as '<type> <base64>' (stacks/ssh sshKeyLine) and rejects anything else", async () => {
    expect(sshKeyLine(`${hostKey} comment\n`)).toBe(hostKey);
    expect(() => sshKeyLine("not a key", "connection.hostPublicKey")).toThrow(/connection.hostPublicKey must be an OpenSSH public key/);
    expect(() => sshKeyLine("")).toThrow(/OpenSSH public key/);
  });

  it("rejects an out-of-range timeout", () => {
    expect(
      () =>
        new DockerEngine("bad-engine", {
          hostName: "bad",
          connection: { target: "203.0.113.13", user: "admin", hostPublicKey: hostKey },
          engine,
          timeoutSeconds: 5,
        }),
    ).toThrow(/timeoutSeconds must be an integer from 60 to 7200/);
  });
});

describe("ECR credentials through the instance role (registryHost)", () => {
  it("stepsFor puts registry-auth right before engine-ready, only for an ECR host (stacks/ecr)", () => {
    const off = { engine: { audit: false, apparmor: false } };
    expect(stepsFor({ registryHost: ECR, ...off })).toEqual(["hostkey", "ssm-agent", "instance-connect", "data-volume", "engine-install", "registry-auth", "engine-ready"]);
    expect(stepsFor({ registryHost: "127.0.0.1:5000", ...off })).toEqual([...STEPS]);
    expect(stepsFor(off)).toEqual([...STEPS]);
  });

  it("stepsFor: AppArmor before the engine is installed (dockerd loads its profile at start), audit rules once the engine's files exist", () => {
    expect(stepsFor({ registryHost: ECR, engine: { audit: true, apparmor: true } })).toEqual([
      "hostkey", "ssm-agent", "instance-connect", "data-volume", "apparmor", "engine-install", "audit", "registry-auth", "engine-ready",
    ]);
  });

  it("a FIPS-endpoint ECR registry gets the credential helper too (promote already got it a token)", () => {
    // The old engine.ts parsed ECR hosts with a pattern that had no dkr.ecr-fips form: such a
    // stack's hosts got no credential helper and every pull was refused.
    const fips = "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com";
    expect(stepsFor({ registryHost: fips, engine: { audit: true, apparmor: true } })).toContain(REGISTRY_AUTH_STEP);
    expect(sourced(renderEnvironment(inputFor("prod", { registryHost: fips }))).REGISTRY_HOST).toBe(fips);
  });

  for (const host of ["127.0.0.1:5000", "localhost:5000", "registry.example.com", "ghcr.io"]) {
    it(`a non-ECR registry (${host}): no registry-auth step, no helper, no docker config`, () => {
      const input = inputFor("test", { registryHost: host });
      const doc = parse(renderUserData(input));
      expect(doc.write_files.some((f) => f.path.includes(REGISTRY_AUTH_STEP) || f.path === CRED_HELPER_SCRIPT)).toBe(false);
      expect(sourced(renderEnvironment(input)).REGISTRY_HOST).toBe("");
    });
  }

  it("set-cred-helper.py (run by python3, as on the host) sets credHelpers[registry] and keeps everything else", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-credhelper-"));
    const run = (cfg: string | undefined) => {
      const f = path.join(dir, "config.json");
      fs.rmSync(f, { force: true });
      if (cfg !== undefined) fs.writeFileSync(f, cfg);
      return execFileSync("python3", [path.join(ENGINE_FILES_DIR, "set-cred-helper.py"), f, ECR, "ecr-login"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    };
    try {
      expect(JSON.parse(run(undefined))).toEqual({ credHelpers: { [ECR]: "ecr-login" } });
      const kept = { auths: { "ghcr.io": { auth: "x" } }, credHelpers: { "other.example.com": "pass" }, credsStore: "desktop" };
      expect(JSON.parse(run(JSON.stringify(kept)))).toEqual({ ...kept, credHelpers: { "other.example.com": "pass", [ECR]: "ecr-login" } });
      expect(() => run("[1, 2]")).toThrow();
      expect(() => run('{"credHelpers": []}')).toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("every shipped stack's dockyard:registry is ECR, so every shipped stack configures the helper", () => {
    for (const stack of STACKS) {
      const doc = parse(renderUserData(inputFor(stack)));
      expect(doc.write_files.map((f) => f.path), stack).toContain(stepScript(REGISTRY_AUTH_STEP));
    }
  });
});
