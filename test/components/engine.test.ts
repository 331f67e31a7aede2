import { describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { useMocks, promisify } from "../helpers/pulumi";
import { OS_FAMILIES, loadStackSpec, type EngineSpec, type EnvironmentSpec, type OsFamily } from "../../stacks";

import {
  renderUserData,
  renderDaemonJson,
  renderReadyCommand,
  engineFingerprint,
  readyTriggers,
  READY_MARKER,
  DOCKER_APT_KEY_FINGERPRINT,
  DockerEngine,
  BOOTSTRAP_SCRIPT,
  STEPS,
  stepScript,
  hostKeyLine,
  stepsFor,
  isEcrHost,
  REGISTRY_AUTH_STEP,
  type UserDataInput,
} from "../../components/engine";

// components/engine registers nothing at import time, so a static import is fine; the
// mocks only need to be in place before a DockerEngine is constructed.
const mocks = useMocks("dev");

/** How the mock runtime receives a secret value (Pulumi's wire format). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";
const DEVICE = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0";
const STACKS = ["dev", "test", "prod"] as const;
const FAMILIES = Object.keys(OS_FAMILIES) as OsFamily[];

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
    ...over,
  };
}

function parse(userData: string): CloudConfig {
  expect(userData.startsWith("#cloud-config\n")).toBe(true);
  const doc = YAML.parse(userData) as CloudConfig;
  expect(doc).toBeTypeOf("object");
  return doc;
}

function file(doc: CloudConfig, path: string): WriteFile {
  const f = doc.write_files.find((x) => x.path === path);
  if (!f) throw new Error(`no write_files entry ${path}; have ${doc.write_files.map((x) => x.path).join(", ")}`);
  return f;
}

/** Every rendering variant the schema allows: each stack x OS family x channel. */
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
    }
  }
  return out;
}

describe("renderUserData: every stack, OS family and channel", () => {
  for (const { name, input } of variants()) {
    it(`${name}: a cloud-config whose scripts are strict bash, run by one bootstrap`, () => {
      const doc = parse(renderUserData(input));
      expect(doc.hostname).toBe(input.hostName);
      expect(doc.preserve_hostname).toBe(false);
      expect(doc.runcmd).toEqual([[BOOTSTRAP_SCRIPT]]);
      const scripts = doc.write_files.filter((f) => f.path.endsWith(".sh") && !f.path.endsWith("lib.sh"));
      expect(scripts.map((s) => s.path).sort()).toEqual([BOOTSTRAP_SCRIPT, ...STEPS.map(stepScript)].sort());
      for (const s of scripts) {
        expect(s.content.startsWith("#!/bin/bash\n"), s.path).toBe(true);
        expect(s.content, s.path).toMatch(/^set -euo pipefail$/m);
        expect(s.permissions).toBe("0755");
        expect(s.owner).toBe("root:root");
      }
    });

    it(`${name}: daemon.json has rotation, live-restore, no TCP host, data-root on the data volume`, () => {
      const doc = parse(renderUserData(input));
      const daemon = JSON.parse(file(doc, "/etc/docker/daemon.json").content) as Record<string, unknown>;
      const d = input.engine.daemon;
      expect(daemon).toEqual({
        "data-root": `${input.dataMount}/docker`,
        "log-driver": d.logDriver,
        "log-opts": { "max-size": d.logMaxSize, "max-file": String(d.logMaxFile) },
        "live-restore": d.liveRestore,
        icc: d.icc,
        "userland-proxy": d.userlandProxy,
        "no-new-privileges": d.noNewPrivileges,
        "metrics-addr": `127.0.0.1:${d.metricsPort}`,
      });
      expect(daemon).not.toHaveProperty("hosts");
      expect(JSON.stringify(daemon)).not.toMatch(/tcp:\/\/|0\.0\.0\.0|:2375|:2376/);
      // docker.service may not start without the data volume mounted.
      expect(file(doc, "/etc/systemd/system/docker.service.d/10-dockyard.conf").content).toContain(`RequiresMountsFor=${input.dataMount}\n`);
    });

    it(`${name}: the data volume is mounted by its stable device, formatted only when blank`, () => {
      const doc = parse(renderUserData(input));
      const s = file(doc, stepScript("data-volume")).content;
      expect(s).toContain(`DEVICE='${DEVICE}'`);
      expect(s).toContain(`MOUNT='${input.dataMount}'`);
      // Already a mount point (re-run, or a test that bind-mounts a volume): nothing else happens.
      const skip = s.indexOf('if mountpoint -q "$MOUNT"; then');
      const mkfs = s.indexOf("mkfs.ext4");
      expect(skip).toBeGreaterThan(0);
      expect(s.slice(skip, s.indexOf("fi", skip))).toContain("exit 0");
      // mkfs only in the branch where blkid found nothing (exit 2).
      expect(mkfs).toBeGreaterThan(skip);
      expect(s.match(/mkfs/g)).toHaveLength(1);
      const branch = s.slice(s.lastIndexOf("\n  2)", mkfs), mkfs);
      expect(branch).toMatch(/^\n {2}2\)/);
      expect(s).toMatch(/blkid -p "\$dev" >\/dev\/null 2>&1 \|\| rc=\$\?/);
      expect(s).toMatch(/UUID=%s %s %s defaults,nofail/);
      expect(s).toMatch(/retry 60 5 test -b "\$DEVICE"/);
    });

    it(`${name}: the engine is pinned and held`, () => {
      const doc = parse(renderUserData(input));
      const s = file(doc, stepScript("engine-install")).content;
      const info = input.os.info;
      if (input.engine.channel === "docker-ce") {
        expect(s).toContain(`VERSION='${input.engine.version}'`);
        expect(s).toContain('"docker-ce=$VERSION" "docker-ce-cli=$VERSION" containerd.io');
        expect(s).toContain("PACKAGES=(docker-ce docker-ce-cli containerd.io)");
        expect(s).toContain('apt-mark hold "${PACKAGES[@]}"');
        expect(s).toContain(`FINGERPRINT=${DOCKER_APT_KEY_FINGERPRINT}`);
        expect(s).toContain('[ "$got" = "$FINGERPRINT" ] || die');
        const source = file(doc, "/usr/local/share/dockyard/docker.sources").content;
        expect(source).toBe(
          `Types: deb\nURIs: ${info.dockerCeRepo}\nSuites: ${info.codename}\nComponents: stable\nArchitectures: amd64\nSigned-By: /etc/apt/keyrings/docker.asc\n`,
        );
        expect(s).toContain("install -m 0644 /usr/local/share/dockyard/docker.sources /etc/apt/sources.list.d/docker.sources");
        // The source is installed only after the key passed the fingerprint check.
        expect(s.indexOf("/etc/apt/sources.list.d/docker.sources")).toBeGreaterThan(s.indexOf('[ "$got" = "$FINGERPRINT" ]'));
      } else if (info.packageManager === "apt") {
        expect(s).toContain(`PACKAGE='${info.distroPackage}'`);
        expect(s).toContain('apt_get install -y --no-install-recommends "$PACKAGE=$VERSION"');
        expect(s).toContain('apt-mark hold "${held[@]}"');
        expect(s).not.toContain("docker-ce");
        expect(doc.write_files.some((f) => f.path.includes("docker.sources"))).toBe(false);
      } else {
        expect(s).toContain("PACKAGE='docker'");
        expect(s).toContain('dnf install -y "$PACKAGE-$VERSION"');
        expect(s).toContain('dnf versionlock add "$p"');
        expect(s).not.toContain("apt");
      }
      // An installed engine of another version is never changed in place.
      expect(s).toMatch(/is installed but this host is pinned to \$VERSION/);
    });

    it(`${name}: the SSH user joins the docker group; the marker is written last, on the root fs`, () => {
      const doc = parse(renderUserData(input));
      const install = file(doc, stepScript("engine-install")).content;
      expect(install).toContain(`SSH_USER='${input.os.sshUser}'`);
      expect(install).toContain('usermod -aG docker "$SSH_USER"');
      expect(STEPS[STEPS.length - 1]).toBe("engine-ready");
      const boot = file(doc, BOOTSTRAP_SCRIPT).content;
      expect(boot).toContain(`for step in ${STEPS.join(" ")}; do`);
      const ready = file(doc, stepScript("engine-ready")).content;
      expect(ready).toContain(`MARKER=${READY_MARKER}`);
      const mv = ready.indexOf('mv "$tmp" "$MARKER"');
      expect(mv).toBeGreaterThan(ready.indexOf("retry 60 2 docker info"));
      expect(mv).toBeGreaterThan(ready.indexOf('[ "$root" = "$DATA_ROOT" ] || die'));
      expect(mv).toBeGreaterThan(ready.indexOf("dockerd listens on TCP"));
      // Nothing after the marker but the log line.
      expect(ready.slice(mv).trim().split("\n").slice(1).every((l) => l.startsWith("log "))).toBe(true);
      expect(READY_MARKER.startsWith(`${input.dataMount}/`)).toBe(false);
      expect(ready).toContain(`FINGERPRINT=${engineFingerprint(input.engine)}`);
    });

    it(`${name}: the host key comes from SSM at boot; no secret material in the user-data`, () => {
      const ud = renderUserData(input);
      const doc = parse(ud);
      const s = file(doc, stepScript("hostkey")).content;
      expect(s).toContain(`REGION='${input.hostKey.region}'`);
      expect(s).toContain(`PARAMETER='${input.hostKey.ssmParameter}'`);
      expect(s).toMatch(/aws ssm get-parameter --region "\$REGION" --name "\$PARAMETER" --with-decryption \\\n\s+--query Parameter.Value --output text >"\$tmp"/);
      expect(s).toContain('install -m 0600 -o root -g root "$tmp" "$KEY"');
      expect(s).toContain("HostKey $KEY");
      expect(s).toContain('ssh-keygen -y -f "$tmp" >"$tmp.pub"');
      // The key value is never echoed, catted or logged.
      expect(s).not.toMatch(/(echo|cat|printf)[^\n]*"\$tmp"(?!\.pub)/);
      expect(ud).not.toMatch(/-----BEGIN|AKIA[0-9A-Z]{16}|aws_secret_access_key|[A-Za-z0-9+/]{60,}/);
      // The bootstrap does the host key first, so SSH with the pinned key works early.
      expect(STEPS[0]).toBe("hostkey");
    });
  }
});

describe("renderUserData: pinning and inputs", () => {
  const spec = loadStackSpec("dev");

  it("pins the distro package when a version is given, and not otherwise", () => {
    const pinned = parse(renderUserData(inputFor("dev", { engine: { ...spec.engine, channel: "distro", version: "20.10.24+dfsg1-1+b3" } })));
    expect(file(pinned, stepScript("engine-install")).content).toContain("VERSION='20.10.24+dfsg1-1+b3'");
    const unpinned = parse(renderUserData(inputFor("dev", { engine: { ...spec.engine, channel: "distro", version: undefined } })));
    expect(file(unpinned, stepScript("engine-install")).content).toContain("VERSION=''");
  });

  it("uses the arm64 architecture in Docker's source for arm64 hosts", () => {
    const doc = parse(renderUserData(inputFor("dev", { os: osFor("debian-12", "arm64") })));
    expect(file(doc, "/usr/local/share/dockyard/docker.sources").content).toContain("Architectures: arm64\n");
  });

  it("installs docker-ce from a mirror of Docker's repository when given, still checking its key's fingerprint", () => {
    const fp = "0123456789ABCDEF0123456789ABCDEF01234567";
    const mirror = { url: "https://mirror.example.com/docker/linux/debian/", keyFingerprint: fp.toLowerCase() };
    const doc = parse(renderUserData(inputFor("prod", { dockerCeRepository: mirror })));
    expect(file(doc, "/usr/local/share/dockyard/docker.sources").content).toContain("\nURIs: https://mirror.example.com/docker/linux/debian\n");
    const s = file(doc, stepScript("engine-install")).content;
    expect(s).toContain("REPO='https://mirror.example.com/docker/linux/debian'\n");
    expect(s).toContain(`FINGERPRINT=${fp}\n`);
    expect(s).not.toContain(DOCKER_APT_KEY_FINGERPRINT);
    expect(s).toContain('[ "$got" = "$FINGERPRINT" ] || die');
    // Without a mirror: Docker's own repository and key.
    const dflt = file(parse(renderUserData(inputFor("prod"))), stepScript("engine-install")).content;
    expect(dflt).toContain(`REPO='${spec.os.info.dockerCeRepo}'\n`);
    expect(dflt).toContain(`FINGERPRINT=${DOCKER_APT_KEY_FINGERPRINT}\n`);
    expect(() => renderUserData(inputFor("prod", { dockerCeRepository: { ...mirror, url: "http://mirror.example.com/x" } }))).toThrow(/stack "prod": dockerCeRepository\.url/);
    expect(() => renderUserData(inputFor("prod", { dockerCeRepository: { ...mirror, url: "https://m/x'; rm -rf /" } }))).toThrow(/dockerCeRepository\.url/);
    expect(() => renderUserData(inputFor("prod", { dockerCeRepository: { ...mirror, keyFingerprint: "0EBFCD88" } }))).toThrow(/dockerCeRepository\.keyFingerprint/);
  });

  it("leaves metrics off when metricsPort is 0", () => {
    const engine: EngineSpec = { ...spec.engine, daemon: { ...spec.engine.daemon, metricsPort: 0 } };
    expect(renderDaemonJson(engine, "/data")).not.toHaveProperty("metrics-addr");
    expect(renderDaemonJson(spec.engine, "/data/")["data-root"]).toBe("/data/docker");
    const ready = file(parse(renderUserData(inputFor("dev", { engine }))), stepScript("engine-ready")).content;
    expect(ready).toContain("METRICS=''");
  });

  it("quotes values for the shell", () => {
    const doc = parse(renderUserData(inputFor("dev", { hostKey: { ssmParameter: "/a/b_c.d-e", region: "eu-west-1" } })));
    expect(file(doc, stepScript("hostkey")).content).toContain("PARAMETER='/a/b_c.d-e'");
  });

  it("rejects docker-ce on Amazon Linux, naming the stack and the key", () => {
    expect(() =>
      renderUserData(inputFor("dev", { os: osFor("amazon-linux-2023"), engine: { ...spec.engine, channel: "docker-ce", version: "5:28.5.1-1" } })),
    ).toThrow(/stack "dev": engine\.channel: docker-ce is not offered for amazon-linux-2023/);
  });

  it("rejects a data mount that would shadow the root fs, a system directory or the readiness marker", () => {
    expect(() => renderUserData(inputFor("prod", { dataMount: "/" }))).toThrow(/stack "prod": hostGroups\.\*\.dataMount/);
    expect(() => renderUserData(inputFor("prod", { dataMount: "/var/lib/cloud" }))).toThrow(/readiness marker/);
    expect(() => renderUserData(inputFor("prod", { dataMount: "/var" }))).toThrow(/system directory/);
  });

  it("rejects bad host names, devices, parameters, regions and users, listing every problem", () => {
    let message = "";
    try {
      renderUserData(
        inputFor("test", {
          hostName: "Bad_Name",
          dataDevice: "sdf",
          hostKey: { ssmParameter: "bad name;rm", region: "mars" },
          os: { ...osFor("debian-12"), sshUser: "x y" },
        }),
      );
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/stack "test": hostName/);
    expect(message).toMatch(/stack "test": dataDevice/);
    expect(message).toMatch(/stack "test": hostKey\.ssmParameter/);
    expect(message).toMatch(/stack "test": hostKey\.region/);
    expect(message).toMatch(/stack "test": os\.sshUser/);
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

  it("the ready command waits (bounded) for cloud-init, checks the marker's fingerprint, then asks docker", () => {
    const cmd = renderReadyCommand(engine, 900);
    expect(cmd).toContain("timeout 900 cloud-init status --wait");
    expect(cmd).toContain(`grep -qx 'fingerprint=${engineFingerprint(engine)}' ${READY_MARKER}`);
    expect(cmd).toContain(`sg docker -c "docker version --format '{{.Server.Version}}'"`);
    expect(cmd.indexOf("cloud-init status --wait")).toBeLessThan(cmd.indexOf(READY_MARKER));
    expect(cmd.indexOf(`fingerprint=`)).toBeLessThan(cmd.indexOf("docker version"));
  });
});

describe("DockerEngine on the mock runtime", () => {
  const engine = loadStackSpec("dev").engine;
  const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkq0sJm2cX4l9gJz3wq8sOe0x6y6m5Yc3o3z0m0kQ2y";

  it("runs the ready check with strict host key checking and reports the engine version", async () => {
    const e = new DockerEngine("dev-app-1-engine", {
      hostName: "dev-app-1",
      connection: { host: "203.0.113.10", user: "admin", hostPublicKey: `${hostKey} dockyard-host\n`, privateKey: "not-a-real-key" },
      engine,
    });
    expect(await promisify(e.ready)).toBe("computed(dev-app-1-engine-ready.stdout)");
    expect(await promisify(e.channel)).toBe("docker-ce");
    expect(await promisify(e.version)).toBe(engine.version);
    const comp = mocks.get("dockyard:index:DockerEngine", "dev-app-1-engine");
    expect(comp.custom).toBe(false);
    const cmd = mocks.get("command:remote:Command", "dev-app-1-engine-ready");
    // @pulumi/command always stores the connection (it may hold a private key) as a secret.
    const wrapped = cmd.inputs.connection as Record<string, unknown>;
    expect(wrapped[SECRET_SIG]).toBe(SECRET_VALUE);
    const conn = wrapped.value as Record<string, unknown>;
    expect(conn.privateKey).toBe("not-a-real-key");
    expect(conn.hostKey).toBe(hostKey);
    expect(conn.host).toBe("203.0.113.10");
    expect(conn.user).toBe("admin");
    expect(conn.dialErrorLimit).toBeGreaterThan(10);
    expect(cmd.inputs.create).toBe(renderReadyCommand(engine, 1200));
    expect(cmd.inputs.triggers).toEqual(readyTriggers(engine));
  });

  it("changes the ready command's triggers when the engine version changes", async () => {
    const newer: EngineSpec = { ...engine, version: "5:28.5.2-1~debian.12~bookworm" };
    const e = new DockerEngine("dev-app-2-engine", {
      hostName: "dev-app-2",
      connection: { host: "203.0.113.11", user: "admin", hostPublicKey: hostKey },
      engine: newer,
    });
    await promisify(e.ready);
    const wrapped = mocks.get("command:remote:Command", "dev-app-2-engine-ready").inputs.connection as Record<string, unknown>;
    const conn = wrapped.value as Record<string, unknown>;
    expect(conn.hostKey).toBe(hostKey);
    expect(conn).not.toHaveProperty("privateKey");
    const a = mocks.get("command:remote:Command", "dev-app-1-engine-ready").inputs.triggers as string[];
    const b = mocks.get("command:remote:Command", "dev-app-2-engine-ready").inputs.triggers as string[];
    expect(b).not.toEqual(a);
    expect(b).toContain("5:28.5.2-1~debian.12~bookworm");
    expect(await promisify(e.version)).toBe("5:28.5.2-1~debian.12~bookworm");
  });

  it("re-runs the check for a replaced host (hostId is a trigger)", async () => {
    const e = new DockerEngine("dev-app-4-engine", {
      hostName: "dev-app-4",
      connection: { host: "203.0.113.14", user: "admin", hostPublicKey: hostKey },
      engine,
      hostId: "i-0123456789abcdef0",
    });
    await promisify(e.ready);
    const t = mocks.get("command:remote:Command", "dev-app-4-engine-ready").inputs.triggers as string[];
    expect(t).toEqual([...readyTriggers(engine), "i-0123456789abcdef0"]);
  });

  it("reports the server version as `version` for an unpinned distro engine", async () => {
    const e = new DockerEngine("dev-app-3-engine", {
      hostName: "dev-app-3",
      connection: { host: "203.0.113.12", user: "admin", hostPublicKey: hostKey },
      engine: { ...engine, channel: "distro", version: undefined },
    });
    expect(await promisify(e.version)).toBe("computed(dev-app-3-engine-ready.stdout)");
  });

  it("pins the host key as '<type> <base64>' and rejects anything else", () => {
    expect(hostKeyLine(`${hostKey} comment\n`)).toBe(hostKey);
    expect(() => hostKeyLine("not a key", "dev-app-1-engine")).toThrow(/dev-app-1-engine: connection.hostPublicKey must be an OpenSSH public key/);
    expect(() => hostKeyLine("")).toThrow(/hostPublicKey/);
  });

  it("rejects an out-of-range timeout", () => {
    expect(
      () =>
        new DockerEngine("bad-engine", {
          hostName: "bad",
          connection: { host: "203.0.113.13", user: "admin", hostPublicKey: hostKey },
          engine,
          timeoutSeconds: 5,
        }),
    ).toThrow(/timeoutSeconds must be an integer from 60 to 7200/);
  });
});

describe("renderUserData: ECR credentials through the instance role (registryHost)", () => {
  const ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

  for (const family of FAMILIES) {
    it(`${family}: an ECR host gets amazon-ecr-credential-helper and credHelpers for the SSH user and root`, () => {
      const os = osFor(family);
      const spec = loadStackSpec("dev");
      const engine = { ...spec.engine, channel: "distro" as const, version: undefined };
      const doc = parse(renderUserData(inputFor("dev", { os, engine, registryHost: ECR })));
      const f = file(doc, stepScript(REGISTRY_AUTH_STEP));
      expect(f.permissions).toBe("0755");
      expect(f.owner).toBe("root:root");
      const s = f.content;
      expect(s.startsWith("#!/bin/bash\n")).toBe(true);
      expect(s).toMatch(/^set -euo pipefail$/m);
      expect(s).toContain(`SSH_USER='${os.sshUser}'`);
      expect(s).toContain(`REGISTRY='${ECR}'`);
      expect(s).toContain("HELPER=ecr-login");
      // need_cmd COMMAND APT_PACKAGE DNF_PACKAGE: the same package name in Debian, Ubuntu and AL2023.
      expect(s).toContain("need_cmd docker-credential-$HELPER amazon-ecr-credential-helper amazon-ecr-credential-helper");
      // The merge sets exactly credHelpers[<registry>] = <helper>, for the SSH user and for root.
      expect(s).toContain('python3 - "$file" "$REGISTRY" "$HELPER"');
      expect(s).toContain('helpers = cfg.setdefault("credHelpers", {})');
      expect(s).toContain("helpers[registry] = helper");
      expect(s).toContain('dir=$home/.docker\n  file=$dir/config.json');
      expect(s).toMatch(/^set_cred_helper "\$SSH_USER"$/m);
      expect(s).toMatch(/^set_cred_helper root$/m);
      // Owned by the user, 0600, inside a 0700 directory; replaced atomically.
      expect(s).toContain('install -d -m 0700 -o "$user" -g "$group" "$dir"');
      expect(s).toContain('chmod 0600 "$tmp"\n  chown "$user:$group" "$tmp"');
      expect(s).toContain('mv -f "$tmp" "$file"');
      // No credentials of any kind in the user-data: only the helper's name.
      const code = s.split("\n").filter((l) => !l.trimStart().startsWith("#")).join("\n");
      expect(code).not.toMatch(/"auths"|password|docker login|get-login/i);
      // Runs after the engine install and before the readiness marker is written.
      const boot = file(doc, BOOTSTRAP_SCRIPT).content;
      expect(boot).toContain("for step in hostkey data-volume engine-install registry-auth engine-ready; do");
    });
  }

  it("stepsFor puts registry-auth right before engine-ready, only for ECR", () => {
    expect(stepsFor({ registryHost: ECR })).toEqual(["hostkey", "data-volume", "engine-install", "registry-auth", "engine-ready"]);
    expect(stepsFor({ registryHost: "127.0.0.1:5000" })).toEqual([...STEPS]);
    expect(stepsFor({})).toEqual([...STEPS]);
    expect(isEcrHost(ECR)).toBe(true);
    expect(isEcrHost("210987654321.dkr.ecr.us-gov-west-1.amazonaws.com")).toBe(true);
    expect(isEcrHost(`${ECR}:443`)).toBe(false);
    expect(isEcrHost("localhost:5000")).toBe(false);
    expect(isEcrHost(undefined)).toBe(false);
  });

  for (const host of [undefined, "127.0.0.1:5000", "localhost:5000", "registry.example.com", "ghcr.io"]) {
    it(`a non-ECR registry (${host ?? "unset"}): nothing installed, no docker config written`, () => {
      const ud = renderUserData(inputFor("test", { registryHost: host }));
      // Byte for byte the user-data of a host without a registry host.
      expect(ud).toBe(renderUserData(inputFor("test")));
      const doc = parse(ud);
      expect(doc.write_files.some((f) => f.path.includes(REGISTRY_AUTH_STEP))).toBe(false);
      expect(ud).not.toMatch(/ecr-credential-helper|credHelpers|ecr-login|\.docker\/config\.json/);
      expect(file(doc, BOOTSTRAP_SCRIPT).content).toContain(`for step in ${STEPS.join(" ")}; do`);
    });
  }

  it("rejects an invalid registry host, naming the stack and the key, and lists it with other problems", () => {
    for (const bad of ["Bad Host!", "https://registry.example.com", "registry.example.com/ns", "host:99999", "host:", "-x.example.com", ""]) {
      expect(() => renderUserData(inputFor("prod", { registryHost: bad })), bad).toThrow(
        /stack "prod": config\.dockyard:registry \(registryHost\): ".*" is not a registry host; allowed: a lower-case DNS name or IPv4 address with an optional :port/,
      );
    }
    // Looks like ECR but is not an ECR host: pulls would fail later for lack of credentials.
    for (const near of [`${ECR}:443`, "12345.dkr.ecr.eu-west-1.amazonaws.com", "123456789012.dkr.ecr.mars.amazonaws.com"]) {
      expect(() => renderUserData(inputFor("prod", { registryHost: near })), near).toThrow(
        /stack "prod": config\.dockyard:registry \(registryHost\): .* looks like ECR but is not '<12-digit account>\.dkr\.ecr\.<region>\.amazonaws\.com'/,
      );
    }
    let message = "";
    try {
      renderUserData(inputFor("prod", { registryHost: "no good", hostName: "Bad_Name" }));
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/stack "prod": hostName/);
    expect(message).toMatch(/stack "prod": config\.dockyard:registry/);
  });

  it("every stack's real dockyard:registry is ECR, so every shipped stack configures the helper", () => {
    for (const stack of STACKS) {
      const spec = loadStackSpec(stack);
      const host = spec.registry.split("/")[0];
      expect(isEcrHost(host), stack).toBe(true);
      const doc = parse(renderUserData(inputFor(stack, { registryHost: host })));
      expect(file(doc, stepScript(REGISTRY_AUTH_STEP)).content).toContain(`REGISTRY='${host}'`);
    }
  });
});
