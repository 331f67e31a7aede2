/**
 * The rendered user-data against real tools on this machine (installed by
 * test/infra/10-dockerd.sh and 20-lint-tools.sh):
 *  - Debian's cloud-init 22.4 `cloud-init schema` accepts it, and every top-level key is
 *    one that release knows (22.4 silently ignores unknown keys, so that is checked too);
 *  - shellcheck passes on every embedded script and on the SSH ready command;
 *  - Debian's dockerd 20.10 (the oldest engine we install) starts with the rendered
 *    daemon.json, serves metrics on loopback only and listens on no other TCP port;
 *  - the data-volume script on a real (loop) block device formats a blank volume once,
 *    and never again;
 *  - the registry-auth script (ECR hosts) merges credHelpers into real docker client
 *    configs, and the real docker CLI then asks the ECR helper for that registry.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { OS_FAMILIES, loadStackSpec, type OsFamily } from "../../stacks";
import { BOOTSTRAP_SCRIPT, CRED_HELPER_SCRIPT, ENV_PATH, LIB_PATH, renderReadyCommand, renderUserData, stepScript, stepsFor, type UserDataInput } from "../../components/engine";

const STACKS = ["dev", "test", "prod"] as const;
const DEVICE = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-engine-int-"));

interface WriteFile {
  path: string;
  content: string;
}

function variants(): { name: string; input: UserDataInput }[] {
  const out: { name: string; input: UserDataInput }[] = [];
  for (const stack of STACKS) {
    const spec = loadStackSpec(stack);
    for (const family of Object.keys(OS_FAMILIES) as OsFamily[]) {
      const info = OS_FAMILIES[family];
      const base = {
        stack,
        hostName: `${stack}-app-1`,
        os: { family, architecture: spec.os.architecture, info, sshUser: info.sshUser },
        dataMount: spec.hostGroups[0].dataMount,
        dataDevice: DEVICE,
        hostKey: { ssmParameter: `/dockyard/${stack}/hosts/${stack}-app-1/ssh-host-key`, region: spec.region },
      };
      if (info.dockerCeRepo) {
        const version = family === spec.os.family ? spec.engine.version : `5:28.5.1-1~${info.distro}.24.04~${info.codename}`;
        out.push({ name: `${stack}/${family}/docker-ce`, input: { ...base, engine: { ...spec.engine, channel: "docker-ce", version } } });
      }
      out.push({ name: `${stack}/${family}/distro`, input: { ...base, engine: { ...spec.engine, channel: "distro", version: undefined } } });
      // The stack's real registry host (ECR): adds the registry-auth step.
      const registryHost = spec.registry.split("/")[0];
      out.push({ name: `${stack}/${family}/distro+ecr`, input: { ...base, engine: { ...spec.engine, channel: "distro", version: undefined }, registryHost } });
    }
  }
  return out;
}

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", input: opts.input, env: opts.env ?? process.env, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout ?? "", out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** Every top-level key the installed cloud-init's schema defines. */
function knownCloudConfigKeys(): Set<string> {
  const files = execFileSync("dpkg", ["-L", "cloud-init"], { encoding: "utf8" }).split("\n");
  const schemaFile = files.find((f) => f.endsWith("/schemas/schema-cloud-config-v1.json"));
  if (!schemaFile) throw new Error("cloud-init's schema-cloud-config-v1.json not found (is cloud-init installed?)");
  const schema = JSON.parse(fs.readFileSync(schemaFile, "utf8")) as { $defs: Record<string, { properties?: Record<string, unknown> }>; allOf: { $ref: string }[] };
  const keys = new Set<string>();
  for (const { $ref } of schema.allOf) {
    const def = schema.$defs[$ref.replace("#/$defs/", "")];
    for (const k of Object.keys(def?.properties ?? {})) keys.add(k);
  }
  return keys;
}

beforeAll(() => {
  for (const tool of ["cloud-init", "shellcheck"]) {
    expect(run("sh", ["-c", `command -v ${tool}`]).code, `${tool} missing: run test/infra/20-lint-tools.sh`).toBe(0);
  }
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe("cloud-init schema and shellcheck on the rendered user-data", () => {
  const known = knownCloudConfigKeys();

  it("the checks can fail: a broken cloud-config and a sloppy script are rejected", () => {
    const bad = path.join(work, "bad.yaml");
    fs.writeFileSync(bad, "#cloud-config\nwrite_files: 5\nruncmd: {a: 1}\n");
    expect(run("cloud-init", ["schema", "--config-file", bad]).code).not.toBe(0);
    const sloppy = path.join(work, "sloppy.sh");
    fs.writeFileSync(sloppy, "#!/bin/bash\nrm -rf $DIR/*\n");
    expect(run("shellcheck", [sloppy]).code).not.toBe(0);
    expect(known.has("write_files") && known.has("runcmd")).toBe(true);
    expect(known.has("no_such_module_key")).toBe(false);
  });

  for (const { name, input } of variants()) {
    it(`${name}: cloud-init accepts it and every script is shellcheck-clean`, () => {
      const dir = fs.mkdtempSync(path.join(work, `${name.replace(/\//g, "-")}-`));
      const ud = renderUserData(input);
      const file = path.join(dir, "user-data.yaml");
      fs.writeFileSync(file, ud);
      const schema = run("cloud-init", ["schema", "--config-file", file]);
      expect(schema.out).toContain("Valid cloud-config");
      expect(schema.code, schema.out).toBe(0);

      const doc = YAML.parse(ud) as Record<string, unknown> & { write_files: WriteFile[] };
      for (const k of Object.keys(doc)) expect(known.has(k), `top-level key ${k} unknown to this cloud-init`).toBe(true);
      // cloud-init reads the file with PyYAML (YAML 1.1): it must see exactly what we rendered.
      const py = run("/usr/bin/python3", ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", file]);
      expect(py.code, py.out).toBe(0);
      expect(JSON.parse(py.stdout)).toEqual(doc);

      const scripts = doc.write_files.filter((f) => f.path.endsWith(".sh"));
      // Every step's script, lib.sh and the bootstrap.
      expect(scripts.map((f) => f.path).sort()).toEqual([...stepsFor(input).map(stepScript), LIB_PATH, BOOTSTRAP_SCRIPT].sort());
      const paths: string[] = [];
      for (const s of scripts) {
        const p = path.join(dir, path.basename(s.path));
        fs.writeFileSync(p, s.content);
        paths.push(p);
      }
      // The env file is sourced by bash: it is checked as shell too.
      const env = path.join(dir, "env.sh");
      fs.writeFileSync(env, doc.write_files.find((f) => f.path === ENV_PATH)!.content);
      paths.push(env);
      // Laid out as in the repository, so `# shellcheck source=components/engine/lib.sh` is followed
      // (-x): the scripts are checked knowing lib.sh's functions.
      fs.mkdirSync(path.join(dir, "components/engine"), { recursive: true });
      fs.writeFileSync(path.join(dir, "components/engine/lib.sh"), doc.write_files.find((f) => f.path === LIB_PATH)!.content);
      const sc = run("shellcheck", ["--shell=bash", "--severity=style", "-x", "-P", dir, ...paths]);
      expect(sc.out).toBe("");
      expect(sc.code).toBe(0);

      const ready = path.join(dir, "ready.sh");
      fs.writeFileSync(ready, renderReadyCommand(input.engine));
      const rc = run("shellcheck", ["--shell=sh", "--severity=style", ready]);
      expect(rc.out).toBe("");
      expect(rc.code).toBe(0);
    });
  }
});

describe("the rendered daemon.json on Debian's dockerd 20.10", () => {
  let daemon: ChildProcess | undefined;
  const dir = path.join(work, "dockerd");
  const sock = path.join(dir, "docker.sock");
  const pidfile = path.join(dir, "docker.pid");
  const port = 19000 + Math.floor(Math.random() * 900);

  afterAll(async () => {
    if (daemon?.pid) {
      const pid = fs.existsSync(pidfile) ? Number(fs.readFileSync(pidfile, "utf8")) : undefined;
      if (pid) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          /* already gone */
        }
      }
      for (let i = 0; i < 40 && pid && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 250));
    }
    // dockerd unmounts its data-root on a clean stop; make sure, before the directory goes.
    const root = path.join(dir, "root");
    if (fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${root} `)) run("umount", ["-l", root]);
  });

  it("starts with it: data-root, log driver, live-restore as rendered; metrics on loopback; no other TCP listener", async () => {
    const spec = loadStackSpec("prod");
    const engine = { ...spec.engine, channel: "distro" as const, version: undefined, daemon: { ...spec.engine.daemon, metricsPort: port } };
    const ud = renderUserData({
      stack: "prod",
      hostName: "prod-app-1",
      os: spec.os,
      engine,
      dataMount: spec.hostGroups[0].dataMount,
      dataDevice: DEVICE,
      hostKey: { ssmParameter: "/dockyard/prod/hosts/prod-app-1/ssh-host-key", region: spec.region },
    });
    const cfg = JSON.parse((YAML.parse(ud) as { write_files: WriteFile[] }).write_files.find((f) => f.path === "/etc/docker/daemon.json")!.content);
    expect(cfg["data-root"]).toBe(`${spec.hostGroups[0].dataMount}/docker`);
    expect(cfg).not.toHaveProperty("experimental");
    // Only the data-root is moved for this test; every other setting is exactly as rendered.
    fs.mkdirSync(path.join(dir, "root"), { recursive: true });
    fs.mkdirSync(path.join(dir, "exec"), { recursive: true });
    cfg["data-root"] = path.join(dir, "root");
    fs.writeFileSync(path.join(dir, "daemon.json"), JSON.stringify(cfg));

    // Its own network namespace: its iptables rules (icc=false needs them) and bridge
    // cannot touch the dockerd the other tests use.
    const log = fs.openSync(path.join(dir, "dockerd.log"), "w");
    daemon = spawn(
      "unshare",
      [
        "--net",
        "sh",
        "-c",
        `ip link set lo up && exec /usr/sbin/dockerd --config-file ${dir}/daemon.json --host unix://${sock} --exec-root ${dir}/exec --pidfile ${pidfile}`,
      ],
      { stdio: ["ignore", log, log], detached: false },
    );
    let info = "";
    for (let i = 0; i < 120 && !info; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const r = run("docker", ["-H", `unix://${sock}`, "info", "--format", "{{json .}}"]);
      if (r.code === 0) info = r.out;
      if (daemon.exitCode !== null) break;
    }
    expect(info, fs.readFileSync(path.join(dir, "dockerd.log"), "utf8").slice(-3000)).not.toBe("");
    const i = JSON.parse(info) as Record<string, unknown>;
    expect(i.ServerVersion).toMatch(/^20\.10\./);
    expect(i.DockerRootDir).toBe(path.join(dir, "root"));
    expect(i.LoggingDriver).toBe(engine.daemon.logDriver);
    expect(i.LiveRestoreEnabled).toBe(engine.daemon.liveRestore);

    const pid = fs.readFileSync(pidfile, "utf8").trim();
    const netns = ["--net=/proc/" + pid + "/ns/net"];
    const metrics = run("nsenter", [...netns, "curl", "-fsS", `http://127.0.0.1:${port}/metrics`]);
    expect(metrics.code, metrics.out.slice(0, 500)).toBe(0);
    expect(metrics.out).toMatch(/^engine_daemon_/m);
    // The same listener check the engine-ready script makes on a host.
    const ss = run("nsenter", [...netns, "sh", "-c", `ss -Hltnp | awk '/users:\\(\\("dockerd",/ { print $4 }' | sort -u`]);
    expect(ss.code).toBe(0);
    expect(ss.out.trim().split("\n")).toEqual([`127.0.0.1:${port}`]);
  });
});

describe("the data-volume script on a real block device", () => {
  const dir = path.join(work, "volume");
  let loop = "";

  beforeAll(() => {
    fs.mkdirSync(dir, { recursive: true });
    const img = path.join(dir, "disk.img");
    fs.writeFileSync(img, "");
    fs.truncateSync(img, 64 * 1024 * 1024);
    loop = execFileSync("losetup", ["--find", "--show", img], { encoding: "utf8" }).trim();
  });
  afterAll(() => {
    const mnt = path.join(dir, "mnt");
    if (fs.existsSync(mnt) && fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${mnt} `)) run("umount", [mnt]);
    if (loop) run("losetup", ["-d", loop]);
  });

  /**
   * Runs the rendered script in a private mount namespace where /etc/fstab and the
   * script library are this test's own files; the mount it makes stays inside.
   * `then` runs in the same namespace afterwards.
   */
  function runScript(fstab: string, then = "true") {
    const spec = loadStackSpec("dev");
    const mnt = path.join(dir, "mnt");
    const ud = renderUserData({
      stack: "dev",
      hostName: "dev-app-1",
      os: spec.os,
      engine: spec.engine,
      dataMount: mnt,
      dataDevice: loop,
      hostKey: { ssmParameter: "/dockyard/dev/hosts/dev-app-1/ssh-host-key", region: spec.region },
    });
    const files = (YAML.parse(ud) as { write_files: WriteFile[] }).write_files;
    fs.writeFileSync(path.join(dir, "lib.sh"), files.find((f) => f.path === LIB_PATH)!.content);
    fs.writeFileSync(path.join(dir, "env"), files.find((f) => f.path === ENV_PATH)!.content);
    fs.writeFileSync(path.join(dir, "data-volume.sh"), files.find((f) => f.path === stepScript("data-volume"))!.content);
    const libDir = path.dirname(LIB_PATH);
    const script = [
      "set -e",
      `mount -t tmpfs dockyard-lib ${path.dirname(libDir)}`,
      `mkdir -p ${libDir} && cp ${dir}/lib.sh ${LIB_PATH} && cp ${dir}/env ${ENV_PATH}`,
      `mount --bind ${fstab} /etc/fstab`,
      // No systemd here: the script's `systemctl daemon-reload || true` must not matter.
      `bash ${dir}/data-volume.sh`,
      then,
    ].join("\n");
    return run("unshare", ["--mount", "--propagation", "private", "bash", "-c", script]);
  }

  it("formats a blank volume, mounts it by UUID with nofail; a second run changes nothing", () => {
    const fstab = path.join(dir, "fstab");
    fs.writeFileSync(fstab, "# test fstab\n");
    const mnt = path.join(dir, "mnt");
    const first = runScript(fstab, `echo precious >${mnt}/keep && findmnt -n -o SOURCE,FSTYPE ${mnt}`);
    expect(first.code, first.out).toBe(0);
    expect(first.out).toContain("is blank; creating ext4");
    expect(first.out).toMatch(new RegExp(`${loop}\\s+ext4`));
    const uuid = execFileSync("blkid", ["-s", "UUID", "-o", "value", loop], { encoding: "utf8" }).trim();
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    const line = `UUID=${uuid} ${mnt} ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2`;
    expect(fs.readFileSync(fstab, "utf8")).toBe(`# test fstab\n${line}\n`);

    // Same volume again (a replaced host, or a re-run): never reformatted, the data is there,
    // fstab is not appended twice.
    const second = runScript(fstab, `cat ${mnt}/keep`);
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("already holds data; not formatting");
    expect(second.out).not.toContain("creating ext4");
    expect(second.out).toContain("precious");
    expect(execFileSync("blkid", ["-s", "UUID", "-o", "value", loop], { encoding: "utf8" }).trim()).toBe(uuid);
    expect(fs.readFileSync(fstab, "utf8")).toBe(`# test fstab\n${line}\n`);
  });

  it("leaves an already-mounted data directory alone (re-runs, bind-mounted test volumes)", () => {
    const fstab = path.join(dir, "fstab2");
    fs.writeFileSync(fstab, "");
    const mnt = path.join(dir, "mnt");
    fs.mkdirSync(mnt, { recursive: true });
    const r = run("unshare", [
      "--mount",
      "--propagation",
      "private",
      "bash",
      "-c",
      `set -e; mount -t tmpfs bound ${mnt}; mount -t tmpfs dockyard-lib ${path.dirname(path.dirname(LIB_PATH))}; mkdir -p ${path.dirname(LIB_PATH)}; ` +
        `cp ${dir}/lib.sh ${LIB_PATH}; cp ${dir}/env ${ENV_PATH}; mount --bind ${fstab} /etc/fstab; bash ${dir}/data-volume.sh; findmnt -n -o FSTYPE ${mnt}`,
    ]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain("already a mount point");
    expect(r.stdout.trim()).toBe("tmpfs");
    expect(fs.readFileSync(fstab, "utf8")).toBe("");
  });
});

describe("the registry-auth script against real docker client configs", () => {
  const ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
  const ZERO = `sha256:${"0".repeat(64)}`;
  const base = path.join(work, "registry-auth");
  const fake = path.join(base, "fake-bin");
  const helperLog = path.join(base, "helper.log");
  let scriptText = "";
  let libText = "";
  let envText = "";
  let helperText = "";

  beforeAll(() => {
    fs.mkdirSync(fake, { recursive: true });
    const spec = loadStackSpec("dev");
    const ud = renderUserData({
      stack: "dev",
      hostName: "dev-app-1",
      os: { ...spec.os, sshUser: "admin" },
      engine: spec.engine,
      dataMount: spec.hostGroups[0].dataMount,
      dataDevice: DEVICE,
      hostKey: { ssmParameter: "/dockyard/dev/hosts/dev-app-1/ssh-host-key", region: spec.region },
      registryHost: ECR,
    });
    const files = (YAML.parse(ud) as { write_files: WriteFile[] }).write_files;
    scriptText = files.find((f) => f.path === stepScript("registry-auth"))!.content;
    libText = files.find((f) => f.path === LIB_PATH)!.content;
    envText = files.find((f) => f.path === ENV_PATH)!.content;
    helperText = files.find((f) => f.path === CRED_HELPER_SCRIPT)!.content;
    // Stands in for docker-credential-ecr-login (which would need the instance role): records
    // what the docker CLI asks and answers with a dummy token.
    fs.writeFileSync(
      path.join(fake, "docker-credential-ecr-login"),
      `#!/bin/sh\nserver=$(cat)\necho "$1 $server" >>${helperLog}\nprintf '{"ServerURL":"%s","Username":"AWS","Secret":"dummy"}\\n' "$server"\n`,
      { mode: 0o755 },
    );
  });

  /** A fresh host: its own /etc/passwd and /etc/group (root, and admin with uid 4242), homes under the test dir. */
  function host(name: string) {
    const dir = path.join(base, name);
    const adminHome = path.join(dir, "home/admin");
    const rootHome = path.join(dir, "root");
    fs.mkdirSync(adminHome, { recursive: true });
    fs.mkdirSync(rootHome, { recursive: true });
    fs.chownSync(adminHome, 4242, 4242);
    fs.writeFileSync(path.join(dir, "passwd"), `root:x:0:0:root:${rootHome}:/bin/bash\nadmin:x:4242:4242::${adminHome}:/bin/bash\n`);
    fs.writeFileSync(path.join(dir, "group"), "root:x:0:\nadmin:x:4242:\n");
    fs.writeFileSync(path.join(dir, "lib.sh"), libText);
    fs.writeFileSync(path.join(dir, "env"), envText);
    fs.writeFileSync(path.join(dir, "set-cred-helper.py"), helperText);
    fs.writeFileSync(path.join(dir, "registry-auth.sh"), scriptText);
    return { dir, adminConfig: path.join(adminHome, ".docker/config.json"), rootConfig: path.join(rootHome, ".docker/config.json") };
  }

  /** Runs the rendered script in a private mount namespace with that host's passwd/group and lib.sh. */
  function runScript(dir: string) {
    const libDir = path.dirname(LIB_PATH);
    const script = [
      "set -e",
      `mount -t tmpfs dockyard-lib ${path.dirname(libDir)}`,
      `mkdir -p ${libDir} && cp ${dir}/lib.sh ${LIB_PATH} && cp ${dir}/env ${ENV_PATH} && cp ${dir}/set-cred-helper.py ${CRED_HELPER_SCRIPT}`,
      `mount --bind ${dir}/passwd /etc/passwd`,
      `mount --bind ${dir}/group /etc/group`,
      `PATH=${fake}:$PATH bash ${dir}/registry-auth.sh`,
    ].join("\n");
    return run("unshare", ["--mount", "--propagation", "private", "bash", "-c", script]);
  }

  const leftovers = (config: string) => fs.readdirSync(path.dirname(config)).filter((f) => f !== "config.json");

  it("merges credHelpers into the SSH user's existing config and creates root's; owned by each user, 0600; a re-run changes nothing", () => {
    const h = host("merge");
    fs.mkdirSync(path.dirname(h.adminConfig), { mode: 0o755 });
    const existing = { auths: { "registry.example.com": { auth: "dXNlcjpwYXNz" } }, credHelpers: { "other.example.com": "gcloud" }, detachKeys: "ctrl-e,e" };
    fs.writeFileSync(h.adminConfig, JSON.stringify(existing), { mode: 0o644 });

    const first = runScript(h.dir);
    expect(first.code, first.out).toBe(0);
    expect(first.out).toContain(`${h.adminConfig}: ${ECR} uses the ecr-login credential helper`);
    expect(JSON.parse(fs.readFileSync(h.adminConfig, "utf8"))).toEqual({ ...existing, credHelpers: { "other.example.com": "gcloud", [ECR]: "ecr-login" } });
    expect(JSON.parse(fs.readFileSync(h.rootConfig, "utf8"))).toEqual({ credHelpers: { [ECR]: "ecr-login" } });
    for (const [file, uid] of [[h.adminConfig, 4242], [h.rootConfig, 0]] as const) {
      const st = fs.statSync(file);
      expect(st.mode & 0o777, file).toBe(0o600);
      expect([st.uid, st.gid], file).toEqual([uid, uid]);
      const d = fs.statSync(path.dirname(file));
      expect(d.mode & 0o777, path.dirname(file)).toBe(0o700);
      expect(d.uid, path.dirname(file)).toBe(uid);
      expect(leftovers(file)).toEqual([]);
    }

    const inodes = [fs.statSync(h.adminConfig).ino, fs.statSync(h.rootConfig).ino];
    const second = runScript(h.dir);
    expect(second.code, second.out).toBe(0);
    expect(second.out.match(/already uses ecr-login for /g)).toHaveLength(2);
    expect([fs.statSync(h.adminConfig).ino, fs.statSync(h.rootConfig).ino]).toEqual(inodes);
    expect(leftovers(h.adminConfig)).toEqual([]);
  });

  it("the real docker CLI then asks the ECR helper for the ECR registry, and only for it", () => {
    const h = host("cli");
    const r = runScript(h.dir);
    expect(r.code, r.out).toBe(0);
    fs.rmSync(helperLog, { force: true });
    // No daemon behind this socket: the CLI resolves credentials before it connects.
    const env = { ...process.env, HOME: path.dirname(path.dirname(h.adminConfig)), PATH: `${fake}:${process.env.PATH}`, DOCKER_HOST: `unix://${base}/no-daemon.sock` };
    const pull = run("docker", ["pull", "--platform", "linux/amd64", `${ECR}/dockyard-dev/web@${ZERO}`], { env });
    expect(pull.out).toContain("Cannot connect to the Docker daemon");
    expect(fs.readFileSync(helperLog, "utf8")).toBe(`get ${ECR}\n`);
    const other = run("docker", ["pull", `registry.example.com/web@${ZERO}`], { env });
    expect(other.out).toContain("Cannot connect to the Docker daemon");
    expect(fs.readFileSync(helperLog, "utf8")).toBe(`get ${ECR}\n`);
  });

  it("leaves a config that is not a JSON object untouched and fails", () => {
    const h = host("broken");
    fs.mkdirSync(path.dirname(h.adminConfig), { mode: 0o700 });
    fs.writeFileSync(h.adminConfig, "{ not json", { mode: 0o600 });
    const r = runScript(h.dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`cannot add the ecr-login credential helper to ${h.adminConfig}`);
    expect(fs.readFileSync(h.adminConfig, "utf8")).toBe("{ not json");
    expect(leftovers(h.adminConfig)).toEqual([]);

    const arr = host("array");
    fs.mkdirSync(path.dirname(arr.rootConfig), { mode: 0o700 });
    fs.writeFileSync(arr.rootConfig, "[1, 2]");
    const r2 = runScript(arr.dir);
    expect(r2.code).not.toBe(0);
    expect(r2.out).toContain("does not hold a JSON object");
    expect(fs.readFileSync(arr.rootConfig, "utf8")).toBe("[1, 2]");
  });
});
