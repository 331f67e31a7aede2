/**
 * The `local` platform for real (issue 12): the shipped `local` stack is rendered on the mock
 * runtime (the whole program, index.ts), and its machine container, data volume and engine
 * ready check are run against the real Docker Engine here the way the providers run them:
 *  - docker:index/remoteImage:RemoteImage, docker:index/container:Container and
 *    docker:index/volume:Volume as kreuzwerker/terraform-provider-docker (embedded by
 *    pulumi-docker) creates and deletes them (test/helpers/container-replay.ts): the host
 *    image found locally by its name, the machine container created from that image's id
 *    (findImage, ContainerCreate with Config + HostConfig from the inputs, `systempaths=unconfined`
 *    turned into empty MaskedPaths/ReadonlyPaths, each `upload` copied in as a one-file tar at
 *    "/" with its mode, ContainerStart), the data volume by VolumeCreate; the recreate deletes
 *    the container as the provider does (stop with the grace, remove with RemoveVolumes, wait),
 *    and the named data volume survives it. An input or nested key the replay does not
 *    translate fails the test;
 *  - command:local:Command: interpreter + create as argv, no shell, the deployer's environment
 *    (pulumi-command local/commandOutputs.go).
 * Then the host boots from the seed with systemd and cloud-init, Pulumi's ready check reaches
 * it over SSH through `docker exec` with the pinned key and the agent's key pushed, and the
 * example service runs on its engine and answers at the host's published endpoint.
 *
 * What this does NOT prove:
 *  - the providers' code is not run (no Pulumi engine or plugins here): the translation
 *    above is ours, read from their source;
 *  - the mock runtime's host key pair is not a real key pair: the test makes one with
 *    ssh-keygen and puts its private half in the upload and its public half in the pinned
 *    options, where the provider would put tls.PrivateKey's;
 *  - the local image is the one test/infra/40-host-image.sh built from the same recipe with
 *    a debootstrap base (debian:bookworm cannot be pulled here);
 *  - the stack rendered is the shipped `local` stack with one change: `dockyard:images.web` is
 *    the digest of the example image this test pushed to the deployer's registry (a real
 *    registry, Debian's docker-registry, on this machine's docker bridge at port 5000, where
 *    the shipped stack's `localhost:5000` leads through the host's forwarder), and
 *    `dockyard:proxyImage` the digest of the test haproxy image pushed there (the shipped
 *    digests are dev's, which are not here); both are pulled by the fleet's rendered pull
 *    commands, the proxy's configuration written by its rendered command, and the host's fleet
 *    (network, volume, images, the web replica, the proxy) replayed on the host's engine through
 *    `docker system dial-stdio`, as the Docker provider reaches it over SSH (its pids-limit and
 *    serving-gate commands are not run here; the fleet on real Docker is test/components/fleet.int.test.ts);
 *  - Docker's apt repository is not reachable here: in the seed's user-data its URL and key
 *    fingerprint are replaced by this machine's signed stand-in's (test/infra/45-docker-apt-repo.sh,
 *    Debian's docker.io repackaged at the pinned version), and the machine container gets the
 *    host harness's platform settings: the test CA trusted, apt through the local cache.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile, execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as h from "./harness";
import { renderStack, type Rendered, type RenderedResource } from "../../scripts/lib/render";
import { hostImageTag, LOCAL_HOST_KEY_FILE, NOCLOUD_SEED, localInstanceId } from "../../components/local-host";
import { DOCKER_APT_KEY_FINGERPRINT, userDataBase64 } from "../../components/engine";
import { gunzipSync } from "node:zlib";
import * as YAML from "yaml";
import { loadStackSpec, stackFilePath } from "../../stacks";
import { dockerApi } from "../helpers/docker-api";
import { EngineReplay, plain } from "../helpers/container-replay";
import { Duplex } from "node:stream";

const execFileP = promisify(execFile);
/** The machine container's name: the rendered one (what ssh dials through docker exec). */
const RUN = "local-app-1";
const WEB = "dockyard-test/web:local";
/** The test haproxy image (test/infra/20-fleet-images.sh), as dockyard:proxyImage. */
const HAPROXY = "dockyard-test/haproxy:local";

const api = dockerApi;
const replay = new EngineReplay(api);
interface Upload { file: string; content?: string; contentBase64?: string; permissions?: string }

/**
 * The Engine API of the host's own dockerd, over `docker system dial-stdio` in the machine
 * container: one connection per call, as docker's connhelper gives the Docker provider over SSH.
 */
function hostApi<T = unknown>(method: string, p: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn("docker", ["exec", "-i", RUN, "docker", "system", "dial-stdio"], { stdio: ["pipe", "pipe", "ignore"] });
    const socket = Duplex.from({ readable: child.stdout, writable: child.stdin });
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      { createConnection: () => socket as never, method, path: `/v1.41${p}`, headers: { Host: "docker", Connection: "close", ...(data ? { "Content-Type": "application/json", "Content-Length": data.length } : {}) } },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          child.kill();
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${p}: ${res.statusCode} ${text.trim()}`));
          else resolve((text ? JSON.parse(text) : undefined) as T);
        });
      },
    );
    req.on("error", (e) => {
      child.kill();
      reject(e);
    });
    req.end(data);
  });
}
/** The Docker provider of the host (fleet-local-app-1), replayed on the host's engine. */
const onHost = new EngineReplay(hostApi as typeof dockerApi);

/** The deployer's registry: where `localhost:5000` of the local stack leads (host.docker.internal = the bridge's gateway). */
const REGISTRY_PORT = 5000;
let registryPid = 0;
let webDigest = "";
let proxyDigest = "";

/** Starts Debian's docker-registry on the docker bridge's gateway (reachable from containers, not from elsewhere). */
async function startRegistry(stateDir: string): Promise<void> {
  const gw = h.bridgeGateway();
  fs.mkdirSync(path.join(stateDir, "data"), { recursive: true });
  fs.writeFileSync(
    path.join(stateDir, "config.yml"),
    `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${stateDir}/data\nhttp:\n  addr: ${gw}:${REGISTRY_PORT}\n`,
  );
  const child = spawn("/usr/bin/docker-registry", ["serve", path.join(stateDir, "config.yml")], { stdio: "ignore", detached: false });
  registryPid = child.pid ?? 0;
  for (let i = 0; i < 60; i++) {
    const ok = await new Promise<boolean>((resolve) => http.get({ host: gw, port: REGISTRY_PORT, path: "/v2/" }, (r) => resolve(r.statusCode === 200)).on("error", () => resolve(false)));
    if (ok) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`docker-registry did not start on ${gw}:${REGISTRY_PORT}`);
}

let rendered: Rendered;
let machine: RenderedResource;
let ready: RenderedResource;
let dir: string;
let env: NodeJS.ProcessEnv;
let agentPid = 0;
let hostPub = "";
let mockPub = "";
let host: h.Host;
let volume = "";
/** Creates and starts the machine container from the rendered inputs, as the provider's create does. */
let createMachine: () => Promise<h.Host>;
/** The machine container's id, as the provider keeps it. */
let machineId = "";
/** Where the host's port 80 is reached from this machine (the engine picks the port). */
async function endpointPort(port: number): Promise<number> {
  const info = await api<{ NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[]> } }>("GET", `/containers/${RUN}/json`);
  const binding = info.NetworkSettings.Ports[`${port}/tcp`]?.[0];
  expect(binding?.HostIp).toBe("127.0.0.1");
  return Number(binding!.HostPort);
}
/** GET <path> on 127.0.0.1:<port> until it answers 200 (bounded); its body, or "" if it never did. */
async function answers(port: number, p: string): Promise<string> {
  for (let i = 0; i < 30; i++) {
    const body = await new Promise<string>((resolve) => {
      http.get({ host: "127.0.0.1", port, path: p, timeout: 2000 }, (res) => {
        let t = "";
        res.on("data", (c) => (t += c));
        res.on("end", () => resolve(res.statusCode === 200 ? t || "ok" : ""));
      }).on("error", () => resolve(""));
    });
    if (body) return body;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return "";
}

/**
 * Runs a rendered command:local:Command's create the way the command provider does, with
 * the real host key for the mock's; its retry wrapper (RETRY_SCRIPT: attempts, interval)
 * is bounded to 3 dials 5 s apart here: the host is up already.
 */
function runCommand(cmd: RenderedResource, input?: string | Buffer) {
  const argv = [...(cmd.inputs.interpreter as string[]), String(cmd.inputs.create)].map((a) => a.split(mockPub).join(hostPub));
  const at = argv.indexOf("dockyard-ssh-retry");
  if (at > 0) argv.splice(at + 1, 2, "3", "5");
  return spawnSync(argv[0], argv.slice(1), { env, input, encoding: "utf8", timeout: 600_000, maxBuffer: 64 << 20 });
}
/** One resource of the host's fleet as rendered: `fleet-local-app-1-<suffix>`. */
function fleetResource(suffix: string): RenderedResource {
  const r = rendered.resources.find((x) => x.name === `fleet-${RUN}-${suffix}`);
  if (!r) throw new Error(`the local stack renders no fleet-${RUN}-${suffix}`);
  return r;
}
/** The ready check's ssh command line (up to the destination), with no retry wrapper. */
function sshArgv(): string[] {
  const argv = (ready.inputs.interpreter as string[]).map((a) => a.split(mockPub).join(hostPub));
  return argv.slice(argv.indexOf("ssh"));
}

beforeAll(async () => {
  h.assertHostImage();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dylocal-"));
  // The deployer's registry, holding the example image; the shipped local stack with its digest.
  await startRegistry(path.join(dir, "registry"));
  const target = `docker://${h.bridgeGateway()}:${REGISTRY_PORT}/dockyard/web:test`;
  execFileSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `docker-daemon:${WEB}`, target]);
  webDigest = execFileSync("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", target], { encoding: "utf8" }).trim();
  const proxyTarget = `docker://${h.bridgeGateway()}:${REGISTRY_PORT}/dockyard/haproxy:test`;
  execFileSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `docker-daemon:${HAPROXY}`, proxyTarget]);
  proxyDigest = execFileSync("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", proxyTarget], { encoding: "utf8" }).trim();
  const stacksDir = path.join(dir, "stacks");
  fs.mkdirSync(stacksDir);
  const file = YAML.parse(fs.readFileSync(stackFilePath("local"), "utf8")) as { config: Record<string, unknown> };
  expect(file.config["dockyard:registry"]).toBe(`localhost:${REGISTRY_PORT}/dockyard`);
  file.config["dockyard:images"] = { web: webDigest };
  file.config["dockyard:proxyImage"] = proxyDigest;
  fs.writeFileSync(stackFilePath("local", stacksDir), YAML.stringify(file));
  rendered = await renderStack("local", { stacksDir });
  machine = rendered.resources.find((r) => r.type === "docker:index/container:Container" && r.name === "local-app-1-machine")!;
  ready = rendered.resources.find((r) => r.type === "command:local:Command" && r.name === "local-app-1-engine-ready")!;
  expect(machine, "the local stack renders local-app-1's machine container").toBeDefined();
  expect(ready, "and its engine ready check").toBeDefined();
  const image = rendered.resources.find((r) => r.type === "docker:index/remoteImage:RemoteImage")!;
  // The image the program looks up is the one the recipe builds (and 40-host-image.sh built).
  expect(image.inputs.name).toBe(hostImageTag());
  mockPub = String(rendered.outputs.hostsByName && (rendered.outputs.hostsByName as Record<string, { hostPublicKey: string }>)["local-app-1"].hostPublicKey);
  expect(mockPub).toMatch(/^ssh-ed25519 /);

  const hostKey = h.newKeyPair(dir, "host");
  h.newKeyPair(dir, "client");
  hostPub = hostKey.publicKey.split(" ").slice(0, 2).join(" ");
  // The deployer's ssh-agent, holding the client key (HOME is the temp dir: no user config or known_hosts).
  const agent = execFileSync("ssh-agent", ["-s", "-a", path.join(dir, "agent.sock")], { encoding: "utf8" });
  agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent)?.[1] ?? 0);
  env = { ...process.env, HOME: dir, SSH_AUTH_SOCK: path.join(dir, "agent.sock") };
  delete env.DOCKER_HOST;
  execFileSync("ssh-add", ["-q", path.join(dir, "client")], { env, stdio: ["ignore", "pipe", "pipe"] });

  // The volume and the container as the provider creates them, under their rendered names
  // (a container left by a killed run is removed first; its volume with it).
  const inputs = machine.inputs as Record<string, any>;
  expect(inputs.name).toBe(RUN);
  volume = String(rendered.resources.find((r) => r.type === "docker:index/volume:Volume" && r.name === "local-app-1-data")!.inputs.name);
  await h.removeHost(RUN);
  await execFileP("docker", ["volume", "rm", "-f", volume]).catch(() => undefined);
  const testLabels = { [h.LABEL.split("=")[0]]: "host", [h.PID_LABEL]: String(process.pid) };
  const dataVolume = rendered.resources.find((r) => r.type === "docker:index/volume:Volume" && r.name === "local-app-1-data")!;
  await replay.createVolume(dataVolume.name, dataVolume.inputs, testLabels);
  expect((inputs.volumes as { volumeName?: string }[]).map((v) => v.volumeName).filter(Boolean)).toEqual([volume]);
  // The host image as the RemoteImage finds it (by its rendered name: 40-host-image.sh built
  // it here); the machine container takes its id.
  expect(inputs.image).toBe(`computed(${image.name}.imageId)`);
  await replay.createRemoteImage(image.name, image.inputs, String(inputs.image), String(image.inputs.name));
  // The test platform's settings (as the host harness gives every host): the test CA trusted,
  // apt through this machine's cache. Not part of the user-data.
  const repo = h.dockerCeTestRepo();
  const aptConf = path.join(dir, "apt-proxy.conf");
  fs.writeFileSync(aptConf, (h.aptCacheRunning() ? `Acquire::http::Proxy "http://${h.bridgeGateway()}:3143";\nAcquire::https::Proxy "DIRECT";\n` : "") + 'Acquire::http::Timeout "30";\nAcquire::Retries "3";\n');
  const binds = [`${repo.caBundle}:/etc/ssl/certs/ca-certificates.crt:ro`, `${aptConf}:/etc/apt/apt.conf.d/01dockyard-test-proxy:ro`];
  const info = loadStackSpec("local").os.info;
  // The uploads the test replaces: the real host key for the mock one; the user-data with
  // Docker's repository (not reachable here) replaced by the signed stand-in's URL and key fingerprint, nothing else.
  const uploads: Record<string, { content?: string; contentBase64?: string }> = { [LOCAL_HOST_KEY_FILE]: { content: fs.readFileSync(hostKey.privateKey, "utf8") } };
  const seed = plain(inputs.uploads as Upload[]).find((u) => u.file === `${NOCLOUD_SEED}/user-data`)!;
  const text = gunzipSync(Buffer.from(seed.contentBase64!, "base64")).toString("utf8");
  const standIn = text.split(info.dockerCeRepo!).join(repo.url).split(DOCKER_APT_KEY_FINGERPRINT).join(repo.keyFingerprint);
  expect(standIn).not.toBe(text);
  uploads[seed.file] = { contentBase64: userDataBase64(standIn) };
  createMachine = async () => {
    machineId = await replay.createContainer(RUN, machine.name, inputs, { uploads, extra: { labels: testLabels, binds } });
    return { name: RUN, container: RUN, startedAt: Date.now() };
  };
  host = await createMachine();
  const secs = await h.waitEngineReady(host, 540_000);
  console.log(`local host booted to engine-ready in ${secs.toFixed(0)} s`);
}, 600_000);

afterAll(async () => {
  if (agentPid > 0) process.kill(agentPid);
  if (registryPid > 0) process.kill(registryPid);
  await h.removeHost(RUN);
  if (volume) await execFileP("docker", ["volume", "rm", "-f", volume]).catch(() => undefined);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("a local host built from the local stack's rendered inputs", () => {
  it("boots the user-data an app host of the stack renders, from the NoCloud seed, without errors", async () => {
    const spec = loadStackSpec("local");
    const seed = plain(machine.inputs.uploads as Upload[]).find((u) => u.file === `${NOCLOUD_SEED}/user-data`)!;
    const text = gunzipSync(Buffer.from(seed.contentBase64!, "base64")).toString("utf8");
    expect(userDataBase64(text)).toBe(seed.contentBase64);
    expect(text).toMatch(/^#cloud-config\n/);
    // cloud-init used this seed: its instance id is the one the ready check insists on.
    expect((await h.exec(host, "cat /var/lib/cloud/data/instance-id")).trim()).toBe(localInstanceId("local-app-1"));
    const status = await h.exec(host, "cloud-init status --long || true");
    expect(status).toMatch(/^status: done$/m);
    // The engine version the environment pins, as every dev host runs it.
    expect(spec.engine.channel).toBe("docker-ce");
    const installed = (await h.exec(host, "dpkg-query -W -f='${Version}' docker-ce")).trim();
    expect(installed).toBe(spec.engine.version);
  });

  it("keeps the engine's data-root on the data volume Docker mounted at dataMount", async () => {
    const mount = loadStackSpec("local").hostGroups[0].dataMount;
    const root = (await h.exec(host, "docker info -f '{{.DockerRootDir}}'")).trim();
    expect(root).toBe(`${mount}/docker`);
    expect((await h.tryExec(host, `mountpoint -q ${mount}`)).code).toBe(0);
    const [rootDev, dataDev] = (await h.exec(host, `stat -c %d / ${mount}/docker`)).trim().split("\n");
    expect(dataDev).not.toBe(rootDev);
  });

  it("answers Pulumi's ready check over SSH through docker exec, with the agent's key pushed and the host key pinned", () => {
    const r = runCommand(ready);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    // The pushed key is the agent's, the only authorized one.
    const authorized = execFileSync("docker", ["exec", RUN, "cat", "/home/admin/.ssh/authorized_keys"], { encoding: "utf8" }).trim();
    expect(authorized.split(" ").slice(0, 2).join(" ")).toBe(fs.readFileSync(path.join(dir, "client.pub"), "utf8").trim().split(" ").slice(0, 2).join(" "));
  });

  it("refuses the host when another key is pinned, and stops with the reason when the agent is empty", () => {
    const other = h.newKeyPair(dir, "other").publicKey.split(" ").slice(0, 2).join(" ");
    const wrong = spawnSync(sshArgv()[0], [...sshArgv().slice(1).map((a) => a.split(hostPub).join(other)), "true"], { env, encoding: "utf8", timeout: 60_000 });
    expect(wrong.status).toBe(255);
    expect(wrong.stderr).toMatch(/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/);
    const noAgent = spawnSync(sshArgv()[0], [...sshArgv().slice(1), "true"], { env: { ...env, SSH_AUTH_SOCK: path.join(dir, "no-agent.sock") }, encoding: "utf8", timeout: 60_000 });
    expect(noAgent.status).toBe(255);
    expect(noAgent.stderr).toMatch(/dockyard: no key in ssh-agent/);
  });

  it("pulls the service's image from the deployer's registry through the host's forwarder, with the fleet's rendered pull command", async () => {
    expect(await h.exec(host, "systemctl is-active dockyard-registry-forward.socket")).toMatch(/^active/);
    const pull = rendered.resources.find((r) => r.type === "command:local:Command" && r.name === "fleet-local-app-1-web-pull")!;
    expect(String(pull.inputs.create)).toContain(`localhost:${REGISTRY_PORT}/dockyard/web@${webDigest}`);
    const r = runCommand(pull);
    expect(r.status, r.stderr).toBe(0);
    const ids = await h.exec(host, `docker image inspect -f '{{.Id}}' localhost:${REGISTRY_PORT}/dockyard/web@${webDigest}`);
    expect(ids.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it("runs the host's rendered fleet on its engine (the web replica and the proxy, its configuration on the data volume), answering at the host's published endpoint", async () => {
    for (const pull of [fleetResource("web-pull"), fleetResource("proxy-pull")]) {
      const r = runCommand(pull);
      expect(r.status, r.stderr).toBe(0);
    }
    // The proxy's configuration, written by its rendered command (stdin) over SSH as the SSH
    // user, into the directory the user-data made on the data volume.
    const config = fleetResource("proxy-config");
    const w = runCommand(config, String(config.inputs.stdin));
    expect(w.status, w.stderr).toBe(0);
    const proxy = fleetResource("proxy");
    const source = (proxy.inputs.mounts as { source: string }[])[0].source;
    expect(source.startsWith(`${loadStackSpec("local").hostGroups[0].dataMount}/proxy/`)).toBe(true);
    expect(await h.exec(host, `cat '${source}'`)).toBe(String(config.inputs.stdin));
    // The network, volume, images and containers as the host's Docker provider creates them.
    const net = fleetResource("web-net");
    await onHost.createNetwork(net.name, net.inputs);
    const vol = fleetResource("web-uploads");
    await onHost.createVolume(vol.name, vol.inputs);
    for (const img of [fleetResource("web-image"), fleetResource("proxy-image")]) await onHost.createRemoteImage(img.name, img.inputs, `computed(${img.name}.imageId)`, String(img.inputs.name));
    const replica = rendered.resources.find((r) => r.type === "docker:index/container:Container" && r.name.startsWith(`fleet-${RUN}-web-0-`))!;
    await onHost.createContainer(replica.name, replica.name, replica.inputs);
    await onHost.createContainer(proxy.name, proxy.name, proxy.inputs);
    // Where the deployer's machine reaches the proxy: the machine container's binding of its port on 127.0.0.1.
    const web = loadStackSpec("local").services.find((s) => s.name === "web")!;
    expect(await answers(await endpointPort(web.publishPort!), web.health.path)).not.toBe("");
  }, 300_000);

  it("a recreated host (a new container on the kept volume, as `dev-server recreate` does) boots again with its engine's data: the service comes back by itself", async () => {
    // The provider's delete: stop with destroyGraceSeconds (systemd shuts the engine down),
    // remove with RemoveVolumes (the schema's default) and wait; the named data volume stays
    // (moby daemon/mounts.go removeMountPoints removes anonymous volumes only).
    expect(machine.inputs.removeVolumes).toBeUndefined();
    await replay.deleteContainer(machineId, machine.inputs);
    expect((await api<{ Name: string }>("GET", `/volumes/${volume}`)).Name).toBe(volume);
    host = await createMachine();
    await h.waitEngineReady(host, 540_000);
    // Before any command of an `up`: the containers, their images and restart policies live in
    // the engine's data root on the volume, and dockerd restored them at its start (moby
    // daemon/daemon.go Daemon.restore, once); the proxy's bind-mounted configuration is on the
    // volume too (components/proxy.ts proxyConfigDir), so its start found the file.
    const replica = rendered.resources.find((r) => r.type === "docker:index/container:Container" && r.name.startsWith(`fleet-${RUN}-web-0-`))!;
    for (const c of [replica.name, fleetResource("proxy").name]) {
      expect((await h.exec(host, `docker inspect -f '{{.State.Running}} {{.RestartCount}}' ${c}`)).trim(), c).toBe("true 0");
    }
    const web = loadStackSpec("local").services.find((s) => s.name === "web")!;
    expect(await answers(await endpointPort(web.publishPort!), web.health.path)).not.toBe("");
    const r = runCommand(ready);
    expect(r.status, r.stderr).toBe(0);
  }, 600_000);
});
