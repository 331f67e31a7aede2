/**
 * The fleet's per-host proxy and rollout order against the real Docker Engine, with the
 * containers ContainerFleet RENDERS: the fleet is built on the Pulumi mock runtime and
 * every docker.RemoteImage and docker.Container it registers is created here from its
 * recorded inputs, the way the Docker provider does it (test/helpers/container-replay.ts,
 * after kreuzwerker/terraform-provider-docker v4.5.0, embedded by pulumi-docker 5.2): the
 * image found locally and the container created from the RemoteImage's id, networks joined,
 * uploads copied, started and (with `wait`) health-waited; deleted with its grace,
 * RemoveVolumes and the wait. An input, or a key of a nested block, the replay does not
 * translate fails the test, so a new input of the fleet cannot be silently left out here.
 *
 * What this does NOT prove:
 *  - the provider's own code is not run (no Pulumi engine or provider plugin here): the
 *    translation above is ours, read from the provider source, not the provider;
 *  - images: the digests are not pulled; the local images of test/infra/20-fleet-images.sh
 *    (dockyard-test/web:local, dockyard-test/haproxy:local) stand in for the RemoteImages'
 *    names, so the host-side pull is not exercised (the lookup by the stand-in's name and the
 *    containers' image by its id are);
 *  - Pulumi's ordering is played by the test (create the new container, wait, then delete
 *    the old one at the end), not computed by the engine; the proxies' host-by-host chain
 *    is a unit test (fleet.test.ts) over the engine source it cites;
 *  - the proxy publishes on 127.0.0.1 only (the rendered ports bind all addresses);
 *  - the proxy's configuration file is written by the rendered command (its create, with
 *    its stdin) into a temporary directory standing in for the host's proxyConfigDir, and
 *    the bind mount's source is moved there the same way; the pids-limit commands run as
 *    rendered, with the mock container ids replaced by the real ones; that the limit
 *    outlives a restart is shown for a container restart, not an engine restart or a
 *    reboot (dockerd is shared with the other tests): for those, the test reads the
 *    container's hostconfig.json, which moby writes (daemon/update.go, CheckpointTo) and
 *    reads back at start;
 *  - that the stop grace lets a draining service finish its requests: the example service
 *    does not drain (busybox httpd as PID 1 has no SIGTERM handler, so the signal is
 *    ignored and the delete takes the whole grace, serving until SIGKILL).
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { useMocks, settle } from "../helpers/pulumi";
import type { RecordedResource } from "../../scripts/lib/mocks";
import type { ServiceSpec } from "../../stacks";
import { ContainerFleet } from "../../components/fleet";
import { MONITOR_PATH, proxyConfigDir } from "../../components/proxy";
import { RETRY_SCRIPT, ssmProxyCommand, type HostConnection } from "../../components/connection";
import { dockerApi } from "../helpers/docker-api";
import { EngineReplay, ReplayError } from "../helpers/container-replay";

const mocks = useMocks("dev");

const WEB = "dockyard-test/web:local";
const PROXY = "dockyard-test/haproxy:local";
const RUN = `dyit${process.pid}`;
const NET = `${RUN}-web`;
const HEALTH = { path: "/healthz", interval: "1s", timeout: "1s", retries: 2, startPeriod: "1s" };
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dockyard-host";
const FAKE_DIGEST = "sha256:" + "e".repeat(64);

const docker = (...args: string[]) => execFileSync("docker", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const created: string[] = [];
/** The data mount of the rendered host. */
const DATA_MOUNT = "/var/lib/dockyard";
/** Stands in for the host's proxyConfigDir(DATA_MOUNT). */
const CONFIG_DIR = fs.mkdtempSync(path.join(os.tmpdir(), "dyit-proxy-config-"));
const hostPath = (p: string) => p.replaceAll(proxyConfigDir(DATA_MOUNT), CONFIG_DIR);
const PROXY_SETTINGS = { cpus: 0.5, memoryMb: 128, pidsLimit: 128, user: "99:99" };

// ---------------------------------------------------------------------------------
// The rendered fleet
// ---------------------------------------------------------------------------------

function webService(publishPort: number, env: Record<string, string>): ServiceSpec {
  return {
    name: "web",
    group: "app",
    repository: "dockyard-test/web",
    digest: FAKE_DIGEST,
    replicas: 1,
    containerPort: 8080,
    publishPort,
    health: HEALTH,
    env,
    secrets: {},
    volumes: {},
    restart: "unless-stopped",
    memoryMb: 64,
    cpus: 0.5,
    user: "65534:65534",
    readOnlyRootFilesystem: true,
    pidsLimit: 512,
  };
}

/** Renders a one-host fleet `name` (stack RUN) whose host is reached through `connection`; finds its recorded resources. */
async function renderOneHost(name: string, connection: HostConnection, service: ServiceSpec) {
  const ready = new pulumi.ComponentResource("dockyard:test:EngineReady", `${name}-ready`);
  new ContainerFleet(name, {
    stack: RUN,
    hosts: [{ name: "h1", group: "app", dataMount: DATA_MOUNT, connection, ready }],
    services: [service],
    secrets: {},
    architecture: "x86_64",
    logging: { logDriver: "local", logMaxSize: "1m", logMaxFile: 2 },
    proxyImage: `dockyard-test/haproxy@${FAKE_DIGEST}`,
    proxy: PROXY_SETTINGS,
  });
  await settle(50);
  const mine = (type: string) => mocks.ofType(type).filter((r) => r.name.startsWith(`${name}-`));
  const one = (xs: RecordedResource[], what: string) => {
    if (xs.length !== 1) throw new Error(`expected one ${what}, got ${xs.map((x) => x.name).join(", ")}`);
    return xs[0];
  };
  return { mine, one };
}

let renders = 0;
/** Renders a one-host fleet (stack RUN) and returns its recorded Docker resources. */
async function render(publishPort: number, env: Record<string, string>) {
  const { mine, one } = await renderOneHost(`r${++renders}`, { target: "127.0.0.1", user: "root", hostPublicKey: HOST_KEY }, webService(publishPort, env));
  const containers = mine("docker:index/container:Container");
  const commands = mine("command:local:Command");
  await createImages(mine("docker:index/remoteImage:RemoteImage"));
  return {
    replica: one(containers.filter((c) => !c.name.endsWith("-proxy")), "replica"),
    proxy: one(containers.filter((c) => c.name.endsWith("-proxy")), "proxy"),
    network: one(mine("docker:index/network:Network"), "network"),
    proxyConfig: one(commands.filter((c) => c.name.endsWith("-proxy-config")), "proxy config command"),
    /** The host's serving gate (components/rollout.ts). */
    gate: one(commands.filter((c) => c.name.endsWith("-serving")), "serving gate"),
    /** Container resource name -> its pids-limit command. */
    pidsLimit: Object.fromEntries(commands.filter((c) => c.name.endsWith("-pids-limit")).map((c) => [c.name.replace(/-pids-limit$/, ""), c])),
  };
}

// ---------------------------------------------------------------------------------
// The provider's semantics, over the Docker Engine API
// ---------------------------------------------------------------------------------

/** A remote command as the command provider runs it on the host: its create (stdin on standard input) or its delete. */
function runOnHost(cmd: RecordedResource, replace: (create: string) => string = (x) => x, stdin?: string, which: "create" | "delete" = "create"): void {
  const inputs = cmd.inputs as { create: string; delete?: string; stdin?: string };
  const script = inputs[which];
  if (!script) throw new Error(`${cmd.name} has no ${which} command`);
  execFileSync("bash", ["-c", hostPath(replace(script))], { input: which === "create" ? (stdin ?? inputs.stdin ?? "") : "", stdio: ["pipe", "pipe", "pipe"] });
}

/** The provider's calls for the rendered resources, on the local engine (test/helpers/container-replay.ts). */
const replay = new EngineReplay(dockerApi);
const api = dockerApi;
/** Label -> container id, for the containers this file created. */
const ids = new Map<string, string>();

/**
 * The render's RemoteImages created as findImage creates them, each found locally under its
 * stand-in (the rendered names carry a digest that is not on this machine): the proxy's
 * haproxy image, the service's web image. Containers then resolve their `image` (the
 * RemoteImage's imageId) to the stand-in's real id.
 */
async function createImages(images: RecordedResource[]): Promise<void> {
  for (const im of images) await replay.createRemoteImage(im.name, im.inputs, `computed(${im.name}.imageId)`, im.name.endsWith("-proxy-image") ? PROXY : WEB);
}

/** A container as the provider creates it, named RUN-<label>; resolves once created (and healthy, with `wait`), rejects as the provider fails. */
async function createAsProvider(label: string, c: RecordedResource, opts: { waitTimeout?: number } = {}): Promise<string> {
  const name = `${RUN}-${label}`;
  created.push(name);
  try {
    const id = await replay.createContainer(name, c.name, c.inputs, { hostIp: "127.0.0.1", hostPath, waitTimeout: opts.waitTimeout });
    ids.set(label, id);
    return id.slice(0, 12);
  } catch (e) {
    if (e instanceof ReplayError) ids.set(label, e.id);
    throw e;
  }
}

/** A container deleted as the provider deletes it (stop with the grace, remove with RemoveVolumes, wait). */
async function deleteAsProvider(label: string, c: RecordedResource): Promise<void> {
  await replay.deleteContainer(ids.get(label) ?? `${RUN}-${label}`, c.inputs);
}

async function healthStatus(label: string): Promise<string> {
  return (await api<{ State: { Health?: { Status: string } } }>("GET", `/containers/${RUN}-${label}/json`)).State.Health?.Status ?? "none";
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, agent: false, timeout: 10_000 }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: 0, body: String(e) }));
  });
}

/** Sends requests one after another until stopped (bounded by maxRequests); records every answer. */
function client(port: number, maxRequests: number) {
  const answers: { status: number; body: string; at: number }[] = [];
  let stop = false;
  const done = (async () => {
    for (let i = 0; i < maxRequests && !stop; i++) {
      const r = await get(port, "/cgi-bin/whoami");
      answers.push({ ...r, at: Date.now() });
      await sleep(10);
    }
  })();
  return { answers, stop: async () => { stop = true; await done; } };
}

let port: number;
let base: Awaited<ReturnType<typeof render>>;
/** The provider waits `waitTimeout` (60 s at least); a failing wait is cut short here. */
const SHORT_WAIT = 8;

beforeAll(async () => {
  for (const image of [WEB, PROXY]) {
    try {
      docker("image", "inspect", image);
    } catch {
      throw new Error(`image ${image} is missing: run bash test/infra/up.sh (test/infra/20-fleet-images.sh builds it)`);
    }
  }
  port = await freePort();
  base = await render(port, { WEB_VERSION: "v1" });
  // The service network as rendered, created as the provider creates it.
  expect(base.network.inputs.name).toBe(NET);
  await replay.createNetwork(base.network.name, base.network.inputs, { "dockyard.test": RUN });
  // The proxy's configuration written to its host file by the rendered command, then the
  // proxy as rendered (read-only root, the file mounted, uid 99), created and health-waited as the provider does.
  runOnHost(base.proxyConfig);
  await createAsProvider("proxy", base.proxy);
});

afterAll(() => {
  for (const c of created) {
    try { docker("rm", "-f", c); } catch { /* already gone */ }
  }
  fs.rmSync(CONFIG_DIR, { recursive: true, force: true });
  try { docker("network", "rm", NET); } catch { /* in use or gone */ }
});

describe("the rendered proxy and replicas against the real engine", () => {
  it("the proxy's health check (haproxy -c) passes in the real image; a proxy whose haproxy cannot run never passes the wait", async () => {
    expect(await healthStatus("proxy")).toBe("healthy");
    const other = await render(await freePort(), { WEB_VERSION: "v1" });
    const broken = { ...other.proxy, inputs: { ...other.proxy.inputs, waitTimeout: SHORT_WAIT } };
    runOnHost(other.proxyConfig, (x) => x, "this is not a haproxy configuration\n");
    await expect(createAsProvider("proxy-broken", broken)).rejects.toThrow(/failed to be in healthy state/);
    expect(await healthStatus("proxy-broken")).not.toBe("healthy");
    await deleteAsProvider("proxy-broken", broken);
  });

  it("routes to the healthy replica and never to an unhealthy one", async () => {
    const good = await createAsProvider("good", base.replica);
    // A bad release: its create fails the wait, and the container stays (a failed create is not rolled back).
    const badRender = (await render(port, { WEB_VERSION: "v1", WEB_UNHEALTHY: "1" })).replica;
    const badDef = { ...badRender, inputs: { ...badRender.inputs, waitTimeout: SHORT_WAIT } };
    await expect(createAsProvider("bad", badDef)).rejects.toThrow(/failed to be in healthy state/);
    const bad = docker("inspect", "-f", "{{.Id}}", `${RUN}-bad`).slice(0, 12);
    const turning = await createAsProvider("turning", base.replica);
    // The unhealthy replica does serve requests: only the proxy's check keeps traffic away.
    expect(docker("exec", `${RUN}-bad`, "wget", "-qO-", "http://127.0.0.1:8080/cgi-bin/whoami")).toBe(`${bad} v1`);
    // This one becomes unhealthy while running.
    docker("exec", `${RUN}-turning`, "rm", "/tmp/healthz");
    await sleep(4000); // > fall x inter of the proxy's checks, plus DNS hold
    const seen = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const r = await get(port, "/cgi-bin/whoami");
      expect(r.status).toBe(200);
      const who = r.body.split(" ")[0];
      seen.set(who, (seen.get(who) ?? 0) + 1);
    }
    expect([...seen.keys()]).toEqual([good]);
    expect(seen.has(bad)).toBe(false);
    expect(seen.has(turning)).toBe(false);
    docker("rm", "-f", `${RUN}-bad`, `${RUN}-turning`); // cleanup, not part of what is tested
  });

  it("Pulumi's order (new created and healthy, then the old one deleted with its grace) loses no request", async () => {
    // State before: one old replica (v1) serving, as after the previous test.
    const old = docker("ps", "-q", "--filter", `name=${RUN}-good`).slice(0, 12);
    expect(old).not.toBe("");
    const c = client(port, 3000);
    await sleep(1000);
    // 1. create the replacement (a new resource: the spec hash changed) and wait until healthy.
    const v2 = (await render(port, { WEB_VERSION: "v2" })).replica;
    expect(v2.name).not.toBe(base.replica.name);
    const fresh = await createAsProvider("v2", v2);
    await sleep(1500);
    // 2. end of the update: the old container is deleted (stop with its grace, then remove).
    // With `init` (docker-init as PID 1) the stop signal reaches busybox httpd, which has no
    // handler of its own and so exits at once; without it, httpd as PID 1 would ignore
    // SIGTERM and sit out the whole grace before SIGKILL.
    const t0 = Date.now();
    await deleteAsProvider("good", base.replica);
    const took = (Date.now() - t0) / 1000;
    console.log(`old replica deleted after ${took.toFixed(1)} s (grace ${(base.replica.inputs as { destroyGraceSeconds: number }).destroyGraceSeconds} s)`);
    expect(took).toBeLessThan(10);
    await sleep(4000);
    await c.stop();
    const failed = c.answers.filter((a) => a.status !== 200);
    expect(c.answers.length).toBeGreaterThan(100);
    expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
    const versions = c.answers.map((a) => a.body.split(" ")[1]);
    expect(versions[0]).toBe("v1");
    expect(versions[versions.length - 1]).toBe("v2");
    expect(c.answers.some((a) => a.body.startsWith(old))).toBe(true);
    expect(c.answers.slice(-20).every((a) => a.body.startsWith(fresh))).toBe(true);
  }, 120_000);

  it("an unhealthy new version fails the wait, the old one keeps serving, and no request fails", async () => {
    const c = client(port, 3000);
    await sleep(500);
    const v3 = (await render(port, { WEB_VERSION: "v3", WEB_UNHEALTHY: "1" })).replica;
    // The provider's wait times out: the update fails and the old container is never deleted.
    await expect(createAsProvider("v3", { ...v3, inputs: { ...v3.inputs, waitTimeout: SHORT_WAIT } })).rejects.toThrow(/failed to be in healthy state/);
    await sleep(1000);
    await c.stop();
    const failed = c.answers.filter((a) => a.status !== 200);
    expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
    // Once the proxy's checks have run, only the old version answers.
    const settled = c.answers.filter((a) => a.at > c.answers[0].at + 4000);
    expect(settled.length).toBeGreaterThan(20);
    expect(settled.every((a) => a.body.endsWith(" v2"))).toBe(true);
    const early = c.answers.filter((a) => a.body.endsWith(" v3")).length;
    // Before its first failed checks the new replica may take a few requests (it answers them).
    console.log(`unhealthy new version answered ${early} of ${c.answers.length} requests before the proxy took it out`);
  });

  it("deleting the proxy (SIGUSR1 soft stop, grace as rendered) ends as soon as haproxy has drained, not after the grace", async () => {
    const t0 = Date.now();
    await deleteAsProvider("proxy", base.proxy);
    const took = (Date.now() - t0) / 1000;
    expect((base.proxy.inputs as { destroyGraceSeconds: number }).destroyGraceSeconds).toBeGreaterThan(30);
    expect(took).toBeLessThan(10);
  });
});

describe("the second up after a failed health wait (issue 24 item 16), replayed on the real engine", () => {
  // What is real here: the rendered containers created as the provider creates them (the
  // wait that fails leaves a running, unhealthy container with its id), the proxy routing, and
  // each rendered serving gate run as the command provider runs it (bash, the script on
  // stdin, the mock ids replaced by the real ones; its 180 s bound cut to GATE_BOUND s).
  // What is played from the engine's source, not computed by it:
  //  - up 1: the replica's create fails after its id was set, so the engine keeps it with an
  //    init error; the step failed, so its dependents (pids limit, the host's gate) are not
  //    run, the next batch (waiting for this gate: fleet.test.ts, "rolls one host at a time")
  //    is not started, and no delete runs (deployment_executor.go performPostSteps runs only
  //    after a program that finished without error);
  //  - up 2, the same program: the replica's inputs are the same as in up 1 (asserted below),
  //    so the provider's diff is empty, and the engine updates it for its init error
  //    (step_generator.go: "generate an empty update step"); resourceDockerContainerUpdate
  //    calls ContainerUpdate only for changed restart/limits: nothing, no wait. The gate's
  //    triggers name the new container (asserted), pulumi-command's triggers are
  //    replaceOnChanges (common/inputs.go): the gate is replaced and its create runs;
  //  - up 3: a failed command create leaves no state (pulumi-go-provider infer/resource.go
  //    Create), so the old gate is still there and its replacement runs again.
  // The outputs (`services` does not move) are fleet.test.ts ("the second up after a failed
  // health wait ..."): they wait for the gates, and a rejected output is never written.
  const GATE_BOUND = 6;
  let gport: number;
  /** The stack's state before: v1 on the host, its gate passed. */
  let v1: Awaited<ReturnType<typeof render>>;
  const realId: Record<string, string> = {};
  /** A rendered gate's create with the real container ids and a short bound, run as the command provider runs it: exit code and stderr. */
  function runGate(gate: RecordedResource): { code: number; out: string; err: string } {
    const create = String(gate.inputs.create)
      .replace(/^bash -s -- 180 /, `bash -s -- ${GATE_BOUND} `)
      .replace(/'computed\(([^)]+)\.id\)'/g, (m, name: string) => (realId[name] ? `'${realId[name]}'` : m));
    expect(create).not.toMatch(/computed\(/);
    const r = spawnSync("bash", ["-c", create], { input: String(gate.inputs.stdin), encoding: "utf8", timeout: 60_000 });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  }
  const strip = (r: RecordedResource) => JSON.parse(JSON.stringify(r.inputs).replace(/\br\d+-h1-/g, "<render>-h1-"));

  beforeAll(async () => {
    gport = await freePort();
    v1 = await render(gport, { WEB_VERSION: "v1" });
    runOnHost(v1.proxyConfig);
    await createAsProvider("g-v1", v1.replica);
    await createAsProvider("g-proxy", v1.proxy);
    realId[v1.replica.name] = ids.get("g-v1")!;
    realId[v1.proxy.name] = ids.get("g-proxy")!;
    // The gate of the up that deployed v1 passed.
    const passed = runGate(v1.gate);
    expect(passed.code, passed.err).toBe(0);
  }, 120_000);

  it("up 1 fails at the new replica's wait; up 2 updates it without a wait and its host's gate fails while the proxy still serves from v1; up 3 fails again; once it is healthy the gate passes", async () => {
    // Up 1: v2 never becomes healthy. The provider's wait fails; the container stays, with its id.
    const up1 = await render(gport, { WEB_VERSION: "v2", WEB_UNHEALTHY: "1" });
    // A new resource: its name carries another spec hash.
    expect(up1.replica.name.split("-").pop()).not.toBe(v1.replica.name.split("-").pop());
    const failed = await createAsProvider("g-v2", up1.replica, { waitTimeout: SHORT_WAIT }).then(() => "created", (e: Error) => e);
    expect(failed).toBeInstanceOf(ReplayError);
    expect(String(failed)).toMatch(/failed to be in healthy state/);
    const bad = ids.get("g-v2")!;
    expect((await api<{ State: { Running: boolean } }>("GET", `/containers/${bad}/json`)).State.Running).toBe(true);
    expect(await healthStatus("g-v2")).not.toBe("healthy");

    // Up 2, the same program: the same replica inputs (no diff; the init error makes it an
    // update, which waits for nothing), the same proxy; the gate's triggers name the new replica.
    const up2 = await render(gport, { WEB_VERSION: "v2", WEB_UNHEALTHY: "1" });
    expect(strip(up2.replica)).toEqual(strip(up1.replica));
    expect(strip(up2.proxy)).toEqual(strip(v1.proxy));
    const triggers = (r: Awaited<ReturnType<typeof render>>, names: string[]) => (r.gate.inputs.triggers as string[]).map((t) => names.indexOf(t.replace(/^computed\((.*)\.id\)$/, "$1")));
    expect(triggers(up2, [up2.replica.name, up2.proxy.name]).sort()).toEqual([0, 1]);
    expect(triggers(v1, [v1.replica.name, v1.proxy.name]).sort()).toEqual([0, 1]);
    realId[up2.replica.name] = bad;
    realId[up2.proxy.name] = realId[v1.proxy.name];
    // The proxy's monitor answers 200 (v1 serves): a gate that checked the monitor only passed here.
    expect((await get(gport, MONITOR_PATH)).status).toBe(200);
    const gate2 = runGate(up2.gate);
    expect(gate2.code, gate2.out).toBe(1);
    expect(gate2.err).toMatch(new RegExp(`container ${bad.slice(0, 12)} is not healthy within ${GATE_BOUND}s \\(running: true, health: (unhealthy|starting)\\)`));
    // The up failed: no delete ran, the v1 replica still runs, healthy, and serves; the
    // unhealthy one takes no request. (The service network is this file's: the healthy
    // replicas earlier tests left on it answer too.)
    expect(await healthStatus("g-v1")).toBe("healthy");
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await get(gport, "/cgi-bin/whoami");
      expect(r.status).toBe(200);
      seen.add(r.body.split(" ")[0]);
    }
    expect(seen.has(realId[v1.replica.name].slice(0, 12))).toBe(true);
    expect(seen.has(bad.slice(0, 12))).toBe(false);

    // Up 3: the failed gate left no state; its replacement runs again, and fails again.
    const up3 = await render(gport, { WEB_VERSION: "v2", WEB_UNHEALTHY: "1" });
    realId[up3.replica.name] = bad;
    realId[up3.proxy.name] = realId[v1.proxy.name];
    expect(runGate(up3.gate).code).toBe(1);

    // Once the container is healthy (here: its health file written), the same gate passes.
    docker("exec", `${RUN}-g-v2`, "sh", "-c", "echo ok v2 > /tmp/healthz");
    for (let i = 0; i < 30 && (await healthStatus("g-v2")) !== "healthy"; i++) await sleep(1000);
    const gate4 = runGate(up3.gate);
    expect(gate4.code, gate4.err).toBe(0);
    expect(gate4.out).toMatch(new RegExp(`container ${bad.slice(0, 12)} is healthy`));
  }, 180_000);
});

describe("CIS Docker Benchmark settings on the running fleet containers (docker inspect)", () => {
  interface Inspect {
    State: { Pid: number; Running: boolean; Health?: { Status: string } };
    Config: { User: string; Healthcheck?: { Test: string[] } };
    HostConfig: { PidsLimit: number | null; ReadonlyRootfs: boolean; NanoCpus: number; Memory: number; CapDrop: string[]; SecurityOpt: string[] };
    Mounts: { Type: string; Source: string; Destination: string; RW: boolean }[];
  }
  const inspect = (name: string) => JSON.parse(docker("inspect", name))[0] as Inspect;
  /** The rendered command names mock ids (computed(<resource>.id) at preview, <resource>_id on update): the real ones instead. */
  const realIds = (real: Record<string, string>) => (create: string) =>
    create.replace(/computed\(([^)]+)\.id\)|(\S+)_id\b/g, (m, a: string | undefined, b: string | undefined) => real[(a ?? b)!] ?? m);
  async function healthy(label: string): Promise<void> {
    for (let i = 0; i < 30 && (await healthStatus(label)) !== "healthy"; i++) await sleep(1000);
    expect(await healthStatus(label)).toBe("healthy");
  }

  // A fleet of its own on another port: a replica and a proxy, its config written by its command,
  // each container's PIDs limit set by its own rendered command, as the fleet orders them.
  let cis: Awaited<ReturnType<typeof render>>;
  let cisPort: number;
  beforeAll(async () => {
    cisPort = await freePort();
    cis = await render(cisPort, { WEB_VERSION: "v1" });
    runOnHost(cis.proxyConfig);
    const real: Record<string, string> = {};
    for (const [c, label] of [[cis.replica, "cis"], [cis.proxy, "cis-proxy"]] as const) {
      real[c.name] = await createAsProvider(label, c);
      runOnHost(cis.pidsLimit[c.name], realIds(real));
    }
  });

  it("PIDs limits as rendered (5.29), each set by its container's docker update; a fork past it fails; they hold across a restart", async () => {
    expect(Object.keys(cis.pidsLimit).sort()).toEqual([cis.proxy.name, cis.replica.name].sort());
    expect(inspect(`${RUN}-cis`).HostConfig.PidsLimit).toBe(512);
    expect(inspect(`${RUN}-cis-proxy`).HostConfig.PidsLimit).toBe(PROXY_SETTINGS.pidsLimit);
    // The limit holds: 600 background sleeps cannot all start in a container limited to 512.
    const forkPast = () =>
      new Promise<string>((resolve) =>
        execFile("docker", ["exec", `${RUN}-cis`, "sh", "-c", "n=0; while [ $n -lt 600 ]; do sleep 30 & n=$((n+1)); done 2>&1 | head -1; echo started"], (_e, out, err) => resolve(`${out}${err}`)),
      );
    expect(await forkPast()).toMatch(/can't fork|Resource temporarily unavailable|fork/i);
    // docker update wrote it to the container's hostconfig.json (moby daemon/update.go,
    // CheckpointTo), which the engine reads back at its next start (readHostConfig).
    const root = docker("info", "-f", "{{.DockerRootDir}}");
    for (const [name, limit] of [[`${RUN}-cis`, 512], [`${RUN}-cis-proxy`, PROXY_SETTINGS.pidsLimit]] as const) {
      const id = docker("inspect", "-f", "{{.Id}}", name);
      expect(JSON.parse(fs.readFileSync(path.join(root, "containers", id, "hostconfig.json"), "utf8")).PidsLimit, name).toBe(limit);
    }
    // A restart keeps it, and the proxy comes back with its mounted configuration and serves again.
    docker("restart", `${RUN}-cis`, `${RUN}-cis-proxy`);
    expect(inspect(`${RUN}-cis`).HostConfig.PidsLimit).toBe(512);
    expect(inspect(`${RUN}-cis-proxy`).HostConfig.PidsLimit).toBe(PROXY_SETTINGS.pidsLimit);
    await healthy("cis");
    // The kernel enforces it in the restarted container too (its new cgroup).
    expect(await forkPast()).toMatch(/can't fork|Resource temporarily unavailable|fork/i);
    await healthy("cis");
    await healthy("cis-proxy");
    expect((await get(cisPort, "/cgi-bin/whoami")).status).toBe(200);
  }, 120_000);

  it("the proxy: read-only root (5.13), not root (4.1), CPU (5.12) and memory limits, health check (5.27); every container: no capabilities, no-new-privileges", () => {
    const proxy = inspect(`${RUN}-cis-proxy`);
    expect(proxy.HostConfig.ReadonlyRootfs).toBe(true);
    expect(proxy.Config.User).toBe("99:99");
    // The process itself, as the kernel sees it.
    expect(fs.readFileSync(`/proc/${proxy.State.Pid}/status`, "utf8")).toMatch(/^Uid:\s+99\s+99\s+99\s+99$/m);
    expect(proxy.HostConfig.NanoCpus).toBe(0.5e9);
    expect(proxy.HostConfig.Memory).toBe(128 * 1024 * 1024);
    expect(proxy.Config.Healthcheck?.Test[0]).toBe("CMD");
    // Its configuration: the host file the rendered command wrote, mounted read-only.
    const mount = proxy.Mounts.find((m) => m.Destination === "/usr/local/etc/haproxy/haproxy.cfg");
    expect(mount).toMatchObject({ Type: "bind", Source: hostPath((cis.proxy.inputs as { mounts: { source: string }[] }).mounts[0].source), RW: false });
    expect(fs.readFileSync(mount!.Source, "utf8")).toBe(cis.proxyConfig.inputs.stdin);
    for (const name of [`${RUN}-cis-proxy`, `${RUN}-cis`]) {
      const c = inspect(name);
      expect(c.HostConfig.CapDrop).toEqual(["ALL"]);
      expect(c.HostConfig.SecurityOpt).toContain("no-new-privileges:true");
      expect(c.Config.Healthcheck).toBeTruthy();
      expect(c.State.Health?.Status).toBe("healthy");
      expect(c.HostConfig.NanoCpus).toBeGreaterThan(0);
      expect(c.HostConfig.PidsLimit).toBeGreaterThan(0);
      expect(c.HostConfig.ReadonlyRootfs).toBe(true);
      expect(c.Config.User).not.toMatch(/^(0|root)?(:|$)/);
    }
    // Its root is read-only indeed, and its configuration is the mounted file.
    expect(() => docker("exec", `${RUN}-cis-proxy`, "/usr/sbin/haproxy", "-c", "-q", "-f", "/usr/local/etc/haproxy/haproxy.cfg")).not.toThrow();
    expect(() => docker("exec", `${RUN}-cis-proxy`, "/usr/sbin/haproxy", "-c", "-q", "-f", "/nonexistent")).toThrow();
  });

  it("as uid 99 with a read-only root the proxy binds port 80 in the container (the rendered sysctl) and serves; with the port start at 1024 it cannot bind", async () => {
    // The example service publishes 80: rendered so, published here on a free loopback port.
    const p80 = await render(80, { WEB_VERSION: "v1" });
    const free = await freePort();
    const ports = (p80.proxy.inputs as { ports: { internal: number; external: number; protocol: string }[] }).ports;
    expect(ports).toEqual([{ internal: 80, external: 80, protocol: "tcp" }]);
    const remapped = { ...p80.proxy, inputs: { ...p80.proxy.inputs, ports: [{ ...ports[0], external: free }] } };
    runOnHost(p80.proxyConfig);
    await createAsProvider("p80", remapped);
    expect(inspect(`${RUN}-p80`).Config.User).toBe("99:99");
    expect((await get(free, "/cgi-bin/whoami")).status).toBe(200);
    await deleteAsProvider("p80", remapped);
    // The control: the same container with the kernel's default of 1024 (the engine would set 0
    // on its own, moby daemon/oci_linux.go withCommonOptions; the rendered sysctl makes it explicit),
    // started once (no restart, no wait): uid 99 cannot bind port 80.
    const inputs = { ...remapped.inputs, restart: "no", wait: false, sysctls: { "net.ipv4.ip_unprivileged_port_start": "1024" } };
    await createAsProvider("p80-nosysctl", { ...remapped, inputs });
    for (let i = 0; i < 10 && inspect(`${RUN}-p80-nosysctl`).State.Running; i++) await sleep(500);
    expect(inspect(`${RUN}-p80-nosysctl`).State.Running).toBe(false);
    const logs = execFileSync("sh", ["-c", `docker logs ${RUN}-p80-nosysctl 2>&1`], { encoding: "utf8" });
    expect(logs).toMatch(/cannot bind socket|Permission denied/);
    docker("rm", "-f", `${RUN}-p80-nosysctl`);
  });

  it("the next configuration's write keeps a file a container still mounts, and removes it once none does (no delete command)", async () => {
    expect((cis.proxyConfig.inputs as { delete?: string }).delete).toBeUndefined();
    const file = hostPath((cis.proxy.inputs as { mounts: { source: string }[] }).mounts[0].source);
    // The next configuration of this host, written by the command a config change renders.
    const next = await render(cisPort + 1, { WEB_VERSION: "next" });
    const nextFile = hostPath((next.proxy.inputs as { mounts: { source: string }[] }).mounts[0].source);
    expect(nextFile).not.toBe(file);
    runOnHost(next.proxyConfig);
    expect(fs.existsSync(nextFile)).toBe(true);
    expect(fs.existsSync(file)).toBe(true);
    expect((await get(cisPort, "/cgi-bin/whoami")).status).toBe(200);
    await deleteAsProvider("cis-proxy", cis.proxy);
    runOnHost(next.proxyConfig);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.existsSync(nextFile)).toBe(true);
  });
});

describe("the host connection with the real OpenSSH client, through a stand-in Session Manager (issue 11)", () => {
  // What this proves: the ssh command line a command:local:Command receives (interpreter +
  // its create, stdin along) and the Docker provider's sshOpts, exactly as rendered for an
  // `access: ssm` host (target an instance id, the real ssmProxyCommand), reach an sshd
  // with the pinned host key, authenticate with the key in ssh-agent, refuse any other host
  // key, and run the ProxyCommand the way ssh does: with the agent's key pushed for the
  // instance and OS user, then a session to port 22 of the instance. The stand-in is the
  // `aws` CLI only (first on PATH): it logs its arguments and, for `ssm start-session`,
  // pipes stdin/stdout to the sshd (what the Session Manager plugin does). What it cannot
  // show: IAM, EC2 Instance Connect placing the key in the instance metadata and the host's
  // AuthorizedKeysCommand reading it (the sshd here authorizes the agent's key itself).
  const HOST_IMAGE = "dockyard/host:latest";
  const INSTANCE = "i-0123456789abcdef0";
  let dir: string;
  let sshPort: number;
  let agentPid = 0;
  let env: NodeJS.ProcessEnv;
  let rendered: { pull: RecordedResource; proxyConfig: RecordedResource; pids: RecordedResource[]; provider: RecordedResource };
  const log = () => (fs.existsSync(path.join(dir, "aws.log")) ? fs.readFileSync(path.join(dir, "aws.log"), "utf8") : "");

  beforeAll(async () => {
    try {
      docker("image", "inspect", HOST_IMAGE);
    } catch {
      throw new Error(`image ${HOST_IMAGE} is missing: run bash test/infra/up.sh (test/infra/40-host-image.sh builds it)`);
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "dyit-ssh-"));
    for (const k of ["host", "other", "client"]) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", k, "-f", path.join(dir, k)]);
    fs.copyFileSync(path.join(dir, "client.pub"), path.join(dir, "authorized_keys"));
    fs.chmodSync(path.join(dir, "authorized_keys"), 0o644);
    sshPort = await freePort();
    docker(
      "run", "-d", "--name", `${RUN}-sshd`, "-p", `127.0.0.1:${sshPort}:22`,
      "-v", `${path.join(dir, "host")}:/etc/ssh/pinned_host_key:ro`, "-v", `${path.join(dir, "authorized_keys")}:/root/.ssh/authorized_keys:ro`,
      "--entrypoint", "/bin/sh", HOST_IMAGE, "-c", `mkdir -p /run/sshd ${proxyConfigDir(DATA_MOUNT)} && exec /usr/sbin/sshd -D -e -h /etc/ssh/pinned_host_key`,
    );
    created.push(`${RUN}-sshd`);
    // The stand-in aws CLI.
    fs.mkdirSync(path.join(dir, "bin"));
    fs.writeFileSync(
      path.join(dir, "bin", "aws"),
      `#!/bin/sh
printf '%s\\n' "$*" >> "${path.join(dir, "aws.log")}"
case "$1 $2" in
  "ec2-instance-connect send-ssh-public-key") echo True ;;
  "ssm start-session")
    if [ -e "${path.join(dir, "ssm-down")}" ]; then echo "An error occurred (TargetNotConnected) when calling the StartSession operation" >&2; exit 254; fi
    exec node -e 'const s = require("net").connect(${sshPort}, "127.0.0.1"); process.stdin.pipe(s); s.pipe(process.stdout); s.on("close", () => process.exit(0)); s.on("error", () => process.exit(1))' ;;
  *) echo "aws stand-in: unexpected call: aws $*" >&2; exit 2 ;;
esac
`,
      { mode: 0o755 },
    );
    // The deployer's ssh-agent, holding the client key (HOME is the temp dir: no user config or known_hosts).
    const agent = execFileSync("ssh-agent", ["-s", "-a", path.join(dir, "agent.sock")], { encoding: "utf8" });
    agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent)?.[1] ?? 0);
    env = { ...process.env, HOME: dir, SSH_AUTH_SOCK: path.join(dir, "agent.sock"), PATH: `${path.join(dir, "bin")}:${process.env.PATH}` };
    execFileSync("ssh-add", ["-q", path.join(dir, "client")], { env, stdio: ["ignore", "pipe", "pipe"] });

    rendered = await renderSsm(fs.readFileSync(path.join(dir, "host.pub"), "utf8"));
    for (let i = 0; i < 40; i++) {
      if (docker("exec", `${RUN}-sshd`, "sh", "-c", "ls /run/sshd.pid 2>/dev/null || true") !== "") break;
      await sleep(250);
    }
  });
  afterAll(() => {
    if (agentPid > 0) process.kill(agentPid);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Renders a one-host fleet whose host is reached the way DockerHost builds it for hostAccess ssm. */
  async function renderSsm(hostPublicKey: string, name = "ssm") {
    const connection = { target: INSTANCE, user: "root", hostPublicKey, proxyCommand: ssmProxyCommand("eu-west-1", "root") };
    const { mine, one } = await renderOneHost(name, connection, webService(18080, {}));
    const commands = mine("command:local:Command");
    return {
      pull: one(commands.filter((c) => c.name.endsWith("-web-pull")), "pull"),
      proxyConfig: one(commands.filter((c) => c.name.endsWith("-proxy-config")), "proxy config command"),
      pids: commands.filter((c) => c.name.endsWith("-pids-limit")),
      provider: one(mine("pulumi:providers:docker"), "docker provider"),
    };
  }

  /** Runs a command as pulumi-command's local provider does: interpreter argv + the command, stdin along, our environment. */
  const runAsProvider = (cmd: RecordedResource, opts: { interpreter?: string[]; script?: string; env?: NodeJS.ProcessEnv } = {}) => {
    const argv = opts.interpreter ?? (cmd.inputs.interpreter as string[]);
    const script = opts.script ?? (cmd.inputs.create as string);
    return execFileSync(argv[0], [...argv.slice(1), script], { encoding: "utf8", env: opts.env ?? env, input: (cmd.inputs.stdin as string | undefined) ?? "", stdio: ["pipe", "pipe", "pipe"], timeout: 60_000 });
  };
  const failure = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      const x = e as { status?: number; stderr?: string };
      return `exit ${x.status}: ${x.stderr ?? String(e)}`;
    }
    return "no failure";
  };

  it("every command and the Docker provider get the same ssh options: the pinned key and the Session Manager ProxyCommand", () => {
    const { pull, proxyConfig, pids, provider } = rendered;
    expect(pids.length).toBeGreaterThan(0);
    const argv = pull.inputs.interpreter as string[];
    expect(argv.slice(-2)).toEqual(["--", `root@${INSTANCE}`]);
    for (const c of [proxyConfig, ...pids]) expect(c.inputs.interpreter).toEqual(argv);
    expect(provider.inputs.host).toBe(`ssh://root@${INSTANCE}`);
    // A provider's configuration reaches the mock runtime JSON-encoded, as the engine sends it.
    const sshOpts = typeof provider.inputs.sshOpts === "string" ? JSON.parse(provider.inputs.sshOpts) : provider.inputs.sshOpts;
    expect(argv.slice(1, -2)).toEqual(sshOpts);
    expect(argv).toContain(`ProxyCommand=${ssmProxyCommand("eu-west-1", "root")}`);
    expect(argv).toContain("StrictHostKeyChecking=yes");
  });

  it("runs a rendered command on the host through the ProxyCommand, stdin along, with the agent's key pushed for that instance and user", () => {
    fs.rmSync(path.join(dir, "aws.log"), { force: true });
    runAsProvider(rendered.proxyConfig);
    const file = /'([^']+\.cfg)\.tmp'/.exec(rendered.proxyConfig.inputs.create as string)![1];
    expect(docker("exec", `${RUN}-sshd`, "cat", file)).toBe((rendered.proxyConfig.inputs.stdin as string).trim());
    const agentKey = execFileSync("ssh-add", ["-L"], { env, encoding: "utf8" }).trim();
    expect(log().trim().split("\n")).toEqual([
      `ec2-instance-connect send-ssh-public-key --region eu-west-1 --instance-id ${INSTANCE} --instance-os-user root --ssh-public-key ${agentKey} --output text`,
      `ssm start-session --region eu-west-1 --target ${INSTANCE} --document-name AWS-StartSSHSession --parameters portNumber=22`,
    ]);
    // Nothing was written to a known_hosts file: the pinned key is the only one.
    expect(fs.existsSync(path.join(dir, ".ssh", "known_hosts"))).toBe(false);
  });

  it("refuses a host that presents any other key", async () => {
    const other = await renderSsm(fs.readFileSync(path.join(dir, "other.pub"), "utf8"), "ssmother");
    const err = failure(() => runAsProvider(other.proxyConfig, { interpreter: other.proxyConfig.inputs.interpreter as string[] }));
    expect(err).toMatch(/^exit 255: .*Host key verification failed/s);
  });

  it("stops at the ProxyCommand, with the reason, when ssh-agent holds no key", () => {
    const noAgent = { ...env, SSH_AUTH_SOCK: path.join(dir, "no-such-agent.sock") };
    const err = failure(() => runAsProvider(rendered.proxyConfig, { env: noAgent }));
    expect(err).toMatch(/^exit 255: .*dockyard: no key in ssh-agent/s);
  });

  it("the engine check's retry wrapper dials again while the host is unreachable, and gives up with ssh's 255", () => {
    fs.rmSync(path.join(dir, "aws.log"), { force: true });
    fs.writeFileSync(path.join(dir, "ssm-down"), "");
    try {
      const argv = ["/bin/sh", "-c", RETRY_SCRIPT, "dockyard-ssh-retry", "3", "0", ...(rendered.pull.inputs.interpreter as string[])];
      const err = failure(() => runAsProvider(rendered.pull, { interpreter: argv, script: "echo reached" }));
      expect(err).toMatch(/^exit 255: /);
      expect(err).toMatch(/attempt 2 of 3/);
      expect(log().split("\n").filter((l) => l.startsWith("ssm start-session"))).toHaveLength(3);
    } finally {
      fs.rmSync(path.join(dir, "ssm-down"));
    }
    const argv = ["/bin/sh", "-c", RETRY_SCRIPT, "dockyard-ssh-retry", "3", "0", ...(rendered.pull.inputs.interpreter as string[])];
    // A remote command's own failure is not retried: its status comes back at once.
    expect(failure(() => runAsProvider(rendered.pull, { interpreter: argv, script: "exit 7" }))).toMatch(/^exit 7: /);
    expect(runAsProvider(rendered.pull, { interpreter: argv, script: "echo reached" }).trim()).toBe("reached");
  });
});
