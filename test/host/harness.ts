/**
 * Boots the local host image (components/local-host/, built by test/infra/40-host-image.sh) like an EC2 instance:
 * systemd as PID 1, cloud-init reading a NoCloud seed with the REAL user-data that
 * components/engine.ts renders, a data volume on a real block device (a loop device),
 * and a stub `aws` that answers the one SSM call the user-data makes with the test's
 * own ed25519 host key. Used by test/host/*.int.test.ts and test/bench/engine.ts.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { READY_MARKER, renderUserData, userDataBase64, type AwsUserDataInput, type UserDataInput } from "../../components/engine";
import { dataDevicePath, hostKeyParameterName } from "../../components/host";
import { hostImageRecipeHash } from "../../components/local-host";
import { loadStackSpec, type EnvironmentSpec } from "../../stacks";

const run = promisify(execFile);

export const REPO_ROOT = path.resolve(__dirname, "../..");
export const HOST_IMAGE = "dockyard/host:latest";
/** State the test infrastructure (test/infra) keeps between runs. */
export const TEST_STATE = process.env.DOCKYARD_TEST_STATE ?? "/var/tmp/dockyard-test";
/** Where hosts keep their seeds, keys and data images between steps of one run. */
export const STATE_DIR = path.join(TEST_STATE, "hosts");
/** The stable device path the data volume gets inside the host: what DockerHost passes for a Nitro instance. */
export const TEST_VOLUME_ID = "vol-0d0c4ad0123456789";
export const TEST_DATA_DEVICE = dataDevicePath(TEST_VOLUME_ID);
/** Labels every container/volume this harness creates, so a crashed run can be cleaned up. */
export const LABEL = "dockyard.test=host";

/** The process that started a host; reapStale() removes hosts whose process is gone. */
export const PID_LABEL = "dockyard.test.pid";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Cleans up after runs that were killed before their own cleanup: host containers whose
 * starting process is gone, and loop devices backed by this harness's files nobody uses.
 * Files are named `<prefix><pid>-...img`, so only dead runs' devices are touched.
 */
export async function reapStale(): Promise<void> {
  const rows = (await sh("docker", ["ps", "-a", "--filter", `label=${LABEL}`, "--format", `{{.Names}} {{.Label "${PID_LABEL}"}}`])).split("\n").filter(Boolean);
  for (const row of rows) {
    const [name, pid] = row.split(" ");
    if (!pid || !alive(Number(pid))) await removeHost(name);
  }
  const loops = JSON.parse((await sh("losetup", ["-J", "-l"]).catch(() => "")) || '{"loopdevices":[]}') as { loopdevices: { name: string; "back-file": string | null }[] };
  for (const l of loops.loopdevices) {
    const file = (l["back-file"] ?? "").replace(/ \(deleted\)$/, "");
    if (path.dirname(file) !== STATE_DIR) continue;
    const m = /^[a-z]+(\d+)-/.exec(path.basename(file));
    if (m && !alive(Number(m[1]))) {
      await sh("losetup", ["-d", l.name]).catch(() => undefined);
      fs.rmSync(file, { force: true });
    }
  }
}

/** The docker run flags that let systemd and a nested dockerd run here (see DESIGN.md). */
export const SYSTEMD_FLAGS = [
  "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
  "--security-opt", "seccomp=unconfined",
  // dockerd writes /proc/sys/net/... (route_localnet for userland-proxy=false, ip_forward);
  // docker makes /proc/sys read-only in a container unless its system paths are unconfined.
  "--security-opt", "systempaths=unconfined",
  "--device-cgroup-rule", "a *:* rwm",
  "--tmpfs", "/run", "--tmpfs", "/run/lock",
  "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
  "--stop-signal", "SIGRTMIN+3",
];

export async function sh(cmd: string, args: string[], opts: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  if (opts.input !== undefined) {
    return new Promise((resolve, reject) => {
      const p = spawn(cmd, args, { env: opts.env ?? process.env });
      let out = "";
      let err = "";
      const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
      p.stdout.on("data", (d) => (out += d));
      p.stderr.on("data", (d) => (err += d));
      p.on("close", (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err.trim()}`));
      });
      p.stdin.end(opts.input);
    });
  }
  try {
    const { stdout } = await run(cmd, args, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20, env: opts.env ?? process.env });
    return stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string; code?: number };
    throw new Error(`${cmd} ${args.join(" ")} failed (${err.code ?? "signal"}): ${(err.stderr || err.stdout || err.message).trim()}`);
  }
}

/** The host image exists and was built from the current recipe (else: how to build it). */
export function assertHostImage(): void {
  const want = hostImageRecipeHash();
  let got = "";
  try {
    got = execFileSync("docker", ["image", "inspect", "-f", '{{index .Config.Labels "dockyard.recipe"}}', HOST_IMAGE], { encoding: "utf8" }).trim();
  } catch {
    /* missing */
  }
  if (got !== want) {
    throw new Error(`host image ${HOST_IMAGE} is ${got ? `from recipe ${got}` : "missing"}, want recipe ${want}: run 'bash test/infra/40-host-image.sh' (or npm test)`);
  }
}

/** The stack's spec with the engine channel forced to distro (Docker's apt repo is unreachable here). */
export function distroSpec(stack: string): EnvironmentSpec {
  const spec = loadStackSpec(stack);
  return { ...spec, engine: { ...spec.engine, channel: "distro", version: undefined } };
}

/** A fresh ed25519 key pair made with ssh-keygen; returns file paths and the public line. */
export function newKeyPair(dir: string, name: string): { privateKey: string; publicKeyFile: string; publicKey: string } {
  const file = path.join(dir, name);
  fs.rmSync(file, { force: true });
  fs.rmSync(`${file}.pub`, { force: true });
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
  return { privateKey: file, publicKeyFile: `${file}.pub`, publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim() };
}

/**
 * The gateway of docker's default bridge: where apt-cacher-ng (port 3143) and the test
 * docker-ce repository are reachable from a host. Debian's dockerd 20.10 leaves Gateway out
 * of the default bridge's IPAM config; then it is the bridge interface's own address.
 */
export function bridgeGateway(): string {
  const gw = execFileSync("docker", ["network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"], { encoding: "utf8" }).trim();
  if (gw) return gw;
  const br = execFileSync("docker", ["network", "inspect", "bridge", "-f", '{{index .Options "com.docker.network.bridge.name"}}'], { encoding: "utf8" }).trim() || "docker0";
  const m = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(execFileSync("ip", ["-4", "-o", "addr", "show", "dev", br], { encoding: "utf8" }));
  if (!m) throw new Error(`cannot find the address of docker's bridge ${br}`);
  return m[1];
}

/**
 * The local copy of Docker's apt repository that test/infra/45-docker-apt-repo.sh serves
 * over HTTPS (signed by a test key; its packages are Debian's docker.io repackaged, NOT
 * Docker's 28.5.1), and the CA bundle a host needs to trust its certificate.
 */
export interface DockerCeTestRepo {
  /** https://<docker0 gateway>:3443/linux/debian */
  url: string;
  /** Fingerprint of the test signing key. */
  keyFingerprint: string;
  /** The version the repository holds docker-ce and docker-ce-cli at (stacks/environment.yaml's). */
  version: string;
  /** The host image's CA bundle plus the test CA (see HostOptions.caBundle). */
  caBundle: string;
  /** The SSM agent stand-in (a package that only sleeps, signed by the test key), laid out like AWS's bucket. */
  ssmAgentUrl: string;
  /** The same, with the package tampered with after signing: must be refused. */
  ssmAgentTamperedUrl: string;
  /** The test signing key, armored. */
  ssmAgentKey: string;
}
export const DOCKER_CE_TEST_REPO_STATE = path.join(TEST_STATE, "docker-apt-repo", "repo.json");
export function dockerCeTestRepo(): DockerCeTestRepo {
  let raw: string;
  try {
    raw = fs.readFileSync(DOCKER_CE_TEST_REPO_STATE, "utf8");
  } catch {
    throw new Error(`${DOCKER_CE_TEST_REPO_STATE} is missing: run 'bash test/infra/45-docker-apt-repo.sh' (or npm test)`);
  }
  const r = JSON.parse(raw) as DockerCeTestRepo;
  if (!fs.existsSync(r.caBundle)) throw new Error(`${r.caBundle} is missing: run 'bash test/infra/45-docker-apt-repo.sh'`);
  return r;
}

/**
 * A data volume that outlives host containers. Preferably a real block device (a sparse
 * file behind a loop device), attached at the stable EBS device path so the user-data's
 * wait / blkid / mkfs / mount-by-UUID path runs for real; where loop devices are not
 * available, a directory bind-mounted at dataMount (the user-data then finds a mount
 * point and leaves it alone).
 */
export type DataVolume =
  | { kind: "block"; file: string; loop: string }
  | { kind: "bind"; dir: string };

export async function createDataVolume(name: string, sizeMb = 4096): Promise<DataVolume> {
  fs.mkdirSync(STATE_DIR, { recursive: true });
  const file = path.join(STATE_DIR, `${name}.img`);
  fs.rmSync(file, { force: true });
  const fd = fs.openSync(file, "w");
  fs.ftruncateSync(fd, sizeMb * 1024 * 1024);
  fs.closeSync(fd);
  try {
    const loop = (await sh("losetup", ["--find", "--show", file])).trim();
    return { kind: "block", file, loop };
  } catch (e) {
    fs.rmSync(file, { force: true });
    if (process.env.DOCKYARD_HOST_REQUIRE_BLOCK === "1") throw e;
    console.warn(`loop devices unavailable (${(e as Error).message}); data volume ${name} is a bind-mounted directory`);
    const dir = path.join(STATE_DIR, `${name}.data`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    return { kind: "bind", dir };
  }
}

export async function destroyDataVolume(v: DataVolume): Promise<void> {
  if (v.kind === "block") {
    await sh("losetup", ["-d", v.loop]).catch(() => undefined);
    fs.rmSync(v.file, { force: true });
  } else {
    fs.rmSync(v.dir, { recursive: true, force: true });
  }
}

export interface HostOptions {
  /** Container name (also the seed/key directory name). */
  name: string;
  /** The rendered #cloud-config. */
  userData: string;
  /** NoCloud instance-id; a new id is a new instance for cloud-init. */
  instanceId: string;
  /** Data volume: a block device at input.dataDevice (and under its loop name, which blkid scans to resolve UUID=), or a bind mount at dataMount. */
  data: DataVolume;
  /** The user-data input the host was rendered from (device path, SSM parameter, region). */
  input: AwsUserDataInput;
  /** Private host key (OpenSSH) the stub SSM returns for input.hostKey.ssmParameter. */
  hostPrivateKey: string;
  /**
   * Attach the volume at its stable path only later, with attachVolume() (EC2 attaches a
   * re-used volume after the instance started); the user-data must wait for it.
   */
  attachLate?: boolean;
  /** Point apt at the local apt-cacher-ng (default true); false: straight to Debian's mirror. */
  aptCache?: boolean;
  /**
   * A CA bundle bind-mounted over the host's /etc/ssl/certs/ca-certificates.crt (what curl
   * and apt's https read), e.g. DockerCeTestRepo.caBundle, so the host trusts the test
   * repository's certificate the way an enterprise image trusts its own CA. The user-data
   * is not changed for it.
   */
  caBundle?: string;
}

export interface Host {
  name: string;
  container: string;
  startedAt: number;
}

/** The stub `aws`: answers exactly the SSM call the user-data makes, for one parameter and region. */
export function awsStub(parameter: string, region: string): string {
  return `#!/bin/sh
# Test stand-in for the AWS CLI: only 'ssm get-parameter' for ${parameter} in ${region}.
want="ssm get-parameter --region ${region} --name ${parameter} --with-decryption --query Parameter.Value --output text"
if [ "$*" != "$want" ]; then
  echo "aws stub: unexpected call: aws $*" >&2
  echo "An error occurred (ParameterNotFound) when calling the GetParameter operation" >&2
  exit 254
fi
cat /opt/fake-ssm/value
`;
}

/** True if apt-cacher-ng (test/infra/40-host-image.sh) listens on port 3143; else hosts go to Debian's mirror. */
export function aptCacheRunning(): boolean {
  try {
    return execFileSync("ss", ["-Hltn", "sport = :3143"], { encoding: "utf8" }).trim() !== "";
  } catch {
    return false;
  }
}

/** Starts a host container (systemd as PID 1) that cloud-init provisions from the seed. */
export async function startHost(o: HostOptions): Promise<Host> {
  const dir = path.join(STATE_DIR, o.name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, "seed"), { recursive: true });
  fs.mkdirSync(path.join(dir, "ssm"), { recursive: true });
  // The bytes EC2 receives: the cloud-config gzip-compressed (userDataBase64, what
  // DockerHost sends), so cloud-init must decompress it as it does on EC2.
  fs.writeFileSync(path.join(dir, "seed", "user-data"), Buffer.from(userDataBase64(o.userData, `host ${o.name}: user-data`), "base64"));
  fs.writeFileSync(path.join(dir, "seed", "meta-data"), `instance-id: ${o.instanceId}\nlocal-hostname: ${o.input.hostName}\n`);
  fs.writeFileSync(path.join(dir, "ssm", "aws"), awsStub(o.input.hostKey.ssmParameter, o.input.hostKey.region), { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "ssm", "value"), o.hostPrivateKey, { mode: 0o600 });
  // The apt proxy is the test platform's mirror setting (like a VPC mirror), not part of the user-data.
  const useCache = o.aptCache !== false && aptCacheRunning();
  // Bounded timeouts with retries: a stalled download fails the step (and the test, with
  // cloud-init's log) instead of hanging until waitEngineReady gives up.
  fs.writeFileSync(
    path.join(dir, "apt-proxy.conf"),
    // apt would also send https (the docker-ce repository) through the http proxy, which
    // apt-cacher-ng refuses (CONNECT denied): https goes direct.
    (useCache ? `Acquire::http::Proxy "http://${bridgeGateway()}:3143";\nAcquire::https::Proxy "DIRECT";\n` : "// no proxy: Debian's mirror directly\n") +
      'Acquire::http::Timeout "30";\nAcquire::Retries "3";\n',
  );
  await sh("docker", ["rm", "-f", o.name]).catch(() => undefined);
  const startedAt = Date.now();
  await sh("docker", [
    "run", "-d", "--name", o.name, "--hostname", o.input.hostName, "--label", LABEL, "--label", `${PID_LABEL}=${process.pid}`,
    ...SYSTEMD_FLAGS,
    ...(o.data.kind === "block"
      ? ["--device", `${o.data.loop}:${o.data.loop}`, ...(o.attachLate ? [] : ["--device", `${o.data.loop}:${o.input.dataDevice}`])]
      : ["-v", `${o.data.dir}:${o.input.dataMount}`]),
    "-v", `${path.join(dir, "seed")}:/var/lib/cloud/seed/nocloud:ro`,
    "-v", `${path.join(dir, "ssm")}:/opt/fake-ssm:ro`,
    "-v", `${path.join(dir, "ssm", "aws")}:/usr/local/bin/aws:ro`,
    "-v", `${path.join(dir, "apt-proxy.conf")}:/etc/apt/apt.conf.d/01dockyard-test-proxy:ro`,
    // Every host trusts the test CA (the SSM agent stand-in is served over HTTPS with it).
    "-v", `${o.caBundle ?? dockerCeTestRepo().caBundle}:/etc/ssl/certs/ca-certificates.crt:ro`,
    HOST_IMAGE,
  ]);
  return { name: o.name, container: o.name, startedAt };
}

/**
 * Boots a host `dockyard-<run>-<input.hostName>` from the user-data rendered for `input`, with
 * a fresh host key pair (in `dir`) and a fresh data volume (`<run>-<hostName>`). Both are
 * pushed to `track` as soon as they exist, so that the caller's cleanup (removeHost,
 * destroyDataVolume) finds them even when a later step fails.
 */
export async function startRenderedHost(run: string, dir: string, input: AwsUserDataInput, track: { started: Host[]; volumes: DataVolume[] }): Promise<Host> {
  const hostKey = newKeyPair(dir, `${input.hostName}-host-key`);
  const data = await createDataVolume(`${run}-${input.hostName}`);
  track.volumes.push(data);
  const host = await startHost({
    name: `dockyard-${run}-${input.hostName}`,
    userData: renderUserData(input),
    instanceId: `i-${run}-${input.hostName}`,
    data,
    input,
    hostPrivateKey: fs.readFileSync(hostKey.privateKey, "utf8"),
  });
  track.started.push(host);
  return host;
}

/** Makes the block volume appear at its stable path in a running host (what udev does on attach). */
export async function attachVolume(host: Host, data: DataVolume, devicePath: string): Promise<void> {
  if (data.kind !== "block") throw new Error("attachVolume needs a block data volume");
  const [major, minor] = execFileSync("stat", ["-c", "%t %T", data.loop], { encoding: "utf8" }).trim().split(" ").map((x) => parseInt(x, 16));
  await exec(host, `mkdir -p "$(dirname ${devicePath})" && mknod ${devicePath}.tmp b ${major} ${minor} && mv ${devicePath}.tmp ${devicePath}`);
}

export async function exec(host: Host, script: string, timeoutMs = 60_000): Promise<string> {
  return sh("docker", ["exec", host.container, "bash", "-euo", "pipefail", "-c", script], { timeoutMs });
}

/** Same as exec, but returns exit code and output instead of throwing. */
export async function tryExec(host: Host, script: string, timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  try {
    return { code: 0, out: await exec(host, script, timeoutMs) };
  } catch (e) {
    const m = /failed \((\d+)\): ([\s\S]*)$/.exec((e as Error).message);
    return { code: m ? Number(m[1]) : -1, out: m ? m[2] : (e as Error).message };
  }
}

/**
 * Waits (bounded) until READY_MARKER exists, then returns the seconds from container start.
 * Fails early, with cloud-init's own words, if cloud-init finished without writing the marker.
 */
export async function waitEngineReady(host: Host, timeoutMs = 480_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const r = await tryExec(host, `test -f ${READY_MARKER} && echo ready || cloud-init status 2>/dev/null || true`, 15_000);
    if (r.out.trim() === "ready") return (Date.now() - host.startedAt) / 1000;
    if (/status: (error|done)/.test(r.out)) {
      // done without the marker, or an error: the marker may still be written a moment later.
      const again = await tryExec(host, `test -f ${READY_MARKER}`);
      if (again.code === 0) return (Date.now() - host.startedAt) / 1000;
      throw new Error(`host ${host.name}: cloud-init finished without ${READY_MARKER}:\n${await diagnostics(host)}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`host ${host.name}: engine not ready after ${timeoutMs / 1000}s:\n${await diagnostics(host)}`);
}

/** Waits (bounded) until cloud-init has finished, successfully or not; returns `cloud-init status --long`. */
export async function waitCloudInitFinished(host: Host, timeoutMs = 480_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const r = await tryExec(host, "cloud-init status --long 2>/dev/null || true", 15_000);
    if (/^status: (error|done)$/m.test(r.out)) return r.out;
    await new Promise((res) => setTimeout(res, 1000));
  }
  throw new Error(`host ${host.name}: cloud-init still running after ${timeoutMs / 1000}s:\n${await diagnostics(host)}`);
}

/** cloud-init's status and the tail of its output log, for failure messages. */
export async function diagnostics(host: Host): Promise<string> {
  const r = await tryExec(host, "cloud-init status --long || true; tail -n 60 /var/log/cloud-init-output.log || true; systemctl --failed --no-pager || true", 30_000);
  return r.out;
}

/** Installs the test client's public key for the SSH user (test only; the user-data delivers no user key). */
export async function authorizeKey(host: Host, user: string, publicKey: string): Promise<void> {
  await exec(
    host,
    `install -d -m 0700 -o ${user} -g ${user} ~${user}/.ssh
printf '%s\\n' '${publicKey}' > ~${user}/.ssh/authorized_keys
chown ${user}:${user} ~${user}/.ssh/authorized_keys && chmod 0600 ~${user}/.ssh/authorized_keys`,
  );
}

export async function containerIp(host: Host): Promise<string> {
  return (await sh("docker", ["inspect", "-f", "{{.NetworkSettings.IPAddress}}", host.container])).trim();
}

export async function removeHost(host: Host | string): Promise<void> {
  const name = typeof host === "string" ? host : host.container;
  await sh("docker", ["rm", "-f", "-v", name]).catch(() => undefined);
}

/**
 * Everything a host needs, rendered from a stack's real spec. `extra`: what index.ts also
 * passes (registryHost: the host part of dockyard:registry) and a docker-ce mirror.
 */
export function hostInput(spec: EnvironmentSpec, hostName: string, extra: Pick<UserDataInput, "registryHost" | "dockerCeRepository"> = {}): AwsUserDataInput {
  const group = spec.hostGroups[0];
  const repo = dockerCeTestRepo();
  return {
    // AWS's bucket is not reachable here: the stand-in, signed by the test key (test/infra/45-docker-apt-repo.sh).
    ssmAgent: { url: repo.ssmAgentUrl, publicKey: fs.readFileSync(repo.ssmAgentKey, "utf8"), keyFingerprint: repo.keyFingerprint },
    ...extra,
    stack: spec.stack,
    hostName,
    os: spec.os,
    engine: spec.engine,
    dataMount: group.dataMount,
    dataDevice: TEST_DATA_DEVICE,
    hostKey: { ssmParameter: hostKeyParameterName(spec.stack, hostName), region: spec.region },
  };
}

export { renderUserData, READY_MARKER, loadStackSpec };

/**
 * Runs the docker CLI against a host the way the fleet's docker provider reaches it:
 * `-H ssh://<user>@<addr>` (dockerHostUrl) with the provider's sshOpts (sshOptions of
 * the host's public key: strict checking, that key only). The CLI has no flag for ssh
 * options, so a wrapper named `ssh` first on PATH adds them, plus the test's client key.
 */
export async function dockerOverSsh(
  conn: { url: string; sshOpts: string[]; identity: string; dir: string },
  args: string[],
  opts: { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<string> {
  const bin = path.join(conn.dir, "ssh-wrapper");
  fs.mkdirSync(bin, { recursive: true });
  const quoted = [...conn.sshOpts, "-o", "IdentitiesOnly=yes", "-i", conn.identity].map((a) => `'${a.replace(/'/g, `'\\''`)}'`);
  fs.writeFileSync(path.join(bin, "ssh"), `#!/bin/sh\nexec /usr/bin/ssh ${quoted.join(" ")} "$@"\n`, { mode: 0o755 });
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` };
  delete env.DOCKER_HOST;
  delete env.DOCKER_CONTEXT;
  return sh("docker", ["-H", conn.url, ...args], { ...opts, env });
}

/** A tiny image made locally (busybox-static), for running containers on the hosts. */
export const BUSYBOX_IMAGE = "dockyard-test/host-busybox:2";
export async function ensureBusyboxImage(): Promise<void> {
  const ok = await sh("docker", ["image", "inspect", BUSYBOX_IMAGE]).then(() => true, () => false);
  if (ok) return;
  const dir = scratchDir("busybox");
  fs.mkdirSync(path.join(dir, "bin"));
  fs.copyFileSync("/bin/busybox", path.join(dir, "bin/busybox"));
  fs.chmodSync(path.join(dir, "bin/busybox"), 0o755);
  // Every applet as a command (sh, sleep, cat, ...), as `busybox --install` would do.
  const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" }).split("\n").filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== "busybox");
  for (const a of applets) fs.symlinkSync("busybox", path.join(dir, "bin", a));
  const tar = execFileSync("tar", ["-C", dir, "-c", "."], { maxBuffer: 64 << 20 });
  await sh("docker", ["import", "-c", 'CMD ["/bin/sh"]', "-", BUSYBOX_IMAGE], { input: tar });
  fs.rmSync(dir, { recursive: true, force: true });
}

/** `docker save` of BUSYBOX_IMAGE (a few MB), to load into a host's engine. */
export function busyboxTar(): Buffer {
  return execFileSync("docker", ["save", BUSYBOX_IMAGE], { maxBuffer: 64 << 20 });
}

/** Loads images of this machine's engine into a host's engine (`docker save | docker load`, through docker exec). */
export async function loadImages(host: Host, images: string[]): Promise<void> {
  const tar = execFileSync("docker", ["save", ...images], { maxBuffer: 256 << 20 });
  await sh("docker", ["exec", "-i", host.container, "docker", "load", "-q"], { input: tar, timeoutMs: 180_000 });
}

/**
 * One HTTP GET on a new connection, bounded by `timeoutMs`: the status (0: no answer, as on a
 * timeout, reset or refusal), the body trimmed (or what went wrong) and the milliseconds it took.
 */
export function httpGet(o: { host: string; port: number; path: string }, timeoutMs: number): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let done = false;
    const finish = (status: number, body: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status, body: body.trim(), ms: Date.now() - t0 });
    };
    const req = http.get({ ...o, agent: false }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => finish(res.statusCode ?? 0, body));
      res.on("error", (e) => finish(0, String(e)));
    });
    const timer = setTimeout(() => {
      req.destroy(new Error("timeout"));
      finish(0, "timeout");
    }, timeoutMs);
    req.on("error", (e) => finish(0, e.message));
  });
}

/** A scratch directory for one test run. */
export function scratchDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
