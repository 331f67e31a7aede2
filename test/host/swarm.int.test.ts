/**
 * Swarm mode on real hosts (issue 14): three hosts boot from their rendered user-data, form
 * one Swarm with the rendered commands, run the web service and the global proxy as the
 * rendered swarm services, and keep serving through host deaths and updates.
 *
 * What runs, and where it comes from:
 *  - the program's render (scripts/lib/render.ts renderStack, the whole index.ts on the mock
 *    runtime) of the `test` stack in swarm mode: environment.yaml with `fleet: { mode: swarm }`,
 *    the stack file at 3 app hosts and 3 web replicas (one per zone), its registry and digests
 *    this file's (below). Three renders, one per web digest (v1, bad, v2): an update is what
 *    the program renders for the stack file's new digest;
 *  - the hosts: test-app-1..3 in zones a, b, c, booted by the host harness from renderUserData
 *    with the inputs index.ts passes in swarm mode (swarmDaemonSettings: live-restore off;
 *    swarmEngineLabels: daemon.json `labels` dockyard.zone / dockyard.group; the swarm's TCP
 *    ports for engine-ready), channel forced to `distro` as in engine.int.test.ts (Docker's apt
 *    repository is unreachable here) and the harness's stand-ins for SSM and the host key; each
 *    host's daemon.json and ENGINE_LISTEN_PORTS are checked against its rendered user-data
 *    (the render's zone is the mocked subnet's, replaced by the test's);
 *  - the swarm: the rendered commands `<fleet>-<first>-init`, `<fleet>-join-tokens` (stdout
 *    parsed by joinToken, as the program does) and `<fleet>-<host>-join` (the token on stdin),
 *    each run on its host as the user its rendered ssh command line logs in as, the render's
 *    private IPs replaced by the hosts' addresses; pickManagers(3 hosts) makes all three managers;
 *  - the images: the example web image (stacks/services/web) in three versions, v1, v2 and
 *    `bad` (WEB_UNHEALTHY=1: /healthz missing, its health check never passes; its whoami
 *    answers `bad`), and the stand-in proxy image (test/infra/20-fleet-images.sh), pushed by
 *    skopeo to a registry this file starts on the docker0 gateway with the test CA's
 *    certificate (test/infra/45-docker-apt-repo.sh; the hosts trust that CA), and pulled on
 *    every host by the rendered pull commands (`docker pull --platform ... <repo>@sha256:...`):
 *    a task whose image is named by digest and present is not pulled again (moby adapter.go
 *    pullImage);
 *  - the rendered overlay network, proxy config (renderHaproxyConfig of swarmProxyRoutes), web
 *    service and global proxy service, created and updated through the Engine API the way
 *    pulumi-docker's resources do (test/helpers/swarm-service.ts follows the Terraform
 *    provider's createServiceSpec), the render's computed ids replaced by the real ones.
 *
 * The hosts are on a bridge network of their own with fixed addresses (besides docker's
 * default bridge, which reaches the apt cache and the registry): a killed host container
 * started again must come back at the address the swarm knows it by, as an instance keeps
 * its private IP; the default bridge hands a freed address to the next container.
 *
 * The scenario, under a bounded request loop (RATE requests/s, a new connection each, each
 * bounded by REQUEST_TIMEOUT_MS) rotating over the three hosts' published port 80 (their
 * proxies), as a front door would spread them. A request sent to a host while it is dead
 * (from just before its kill until its proxy's monitor answers 200 again) counts apart, as
 * "sent to a dead host": a front door drains a dead host (drill.int.test.ts measures that).
 * Requests to live hosts are counted: failed ones, and slow ones (answered after SLOW_MS):
 *  1. a follower (with a web replica) killed: its replica rescheduled on the others (the
 *     service back at 3 running tasks on live nodes; seconds measured);
 *  2. that follower started again: it rejoins by itself (Ready, reachable manager, its proxy
 *     task serving) - before the leader is killed, since with one of three managers down a
 *     second loss would lose the Raft quorum;
 *  3. the leader killed: a new leader, its replica rescheduled (seconds measured); it is
 *     started again and rejoins while the next steps run;
 *  4. an update to the bad image: swarm rolls it back by itself (UpdateStatus rollback_completed),
 *     no answer ever came from a bad task;
 *  5. an update to v2 (a new digest): completed, every replica on v2.
 * Asserted: no request to a live host failed in any step; none was slow in 2, 4 and 5; in 1
 * and 3 the slow ones were sent within the proxy's own detection of the dead task (see
 * detectionBound): they met the dead task, waited the proxy's connect timeout and were
 * answered by another replica. With the connect timeout at 2 s and no traffic observation,
 * 12-26 requests per kill took 2-4 s (6 runs; a client with a 2 s timeout counts them failed);
 * with 500 ms and `observe layer4 ... on-error mark-down` (components/proxy.ts), none did
 * (first run after the change: 0 failed and 0 slow in every step). The bound is kept loose.
 *
 * What this does NOT prove:
 *  - the ingress routing mesh, service virtual IPs and encrypted overlays: they need IPVS and
 *    ESP, which this kernel lacks; the design uses none of them (endpoint mode dnsrr, the
 *    proxy publishing in host mode, plain VXLAN overlays);
 *  - the front door: requests go straight to the hosts' proxies, and those to a dead host are
 *    counted apart instead of being drained by a load balancer;
 *  - `pulumi up`: the Command and Docker providers are played (commands run with docker exec,
 *    not ssh through SSM; the Engine API calls built from the provider's source, not run by
 *    it; no converge wait, no state), and the mock runtime's values (private IPs, ids, zones,
 *    the config's autoname) are replaced by this file's;
 *  - EC2: the hosts are containers on one machine; a killed container stands for a dead
 *    instance, and its restart (same data volume, same address) for a rebooted one, not a
 *    replaced one;
 *  - Docker's 28.x engine: the hosts run Debian's 20.10 (distro channel).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as zlib from "node:zlib";
import type * as docker from "@pulumi/docker";
import * as YAML from "yaml";
import { MONITOR_PATH } from "../../components/proxy";
import { GROUP_LABEL, SWARM_PORTS, ZONE_LABEL, joinToken, managerCount, nodeIdOf, pickManagers, proxyServiceName, swarmDaemonSettings, swarmEngineLabels } from "../../components/swarm";
import { isSecretValue, renderStack, type RenderedResource } from "../../scripts/lib/render";
import { serviceNetworkName } from "../../components/fleet";
import { loadStackSpec, readEnvironmentFile, readStackFile, type EnvironmentSpec } from "../../stacks";
import { createConfig, createNetwork, createSecret, createService, hostApi, updateService } from "../helpers/swarm-service";
import * as h from "./harness";

const STACK = "test";
const GROUP = "app";
/** The stack's zones (dockyard:zones: host n of each group in zone n, components/host.ts), as the render labels the engines. */
const ZONES = (readStackFile(STACK).config as Record<string, string[]>)["dockyard:zones"];
const RUN = `swarm${process.pid}`;
const WEB = "dockyard-test/web:local";
const PROXY = "dockyard-test/haproxy:local";
/** The registry namespace: the stack's `dockyard:registry` is `<this file's registry>/<NAMESPACE>`. */
const NAMESPACE = "dockyard-test";
type Version = "v1" | "bad" | "v2";
/** Web replicas (the stack file's dockyard:replicas.web here): one per zone, so that each host killed has one to reschedule. */
const REPLICAS = 3;
/** web's secret: the environment variable its file is named after, and the value the test gives it (the render holds a placeholder). */
const SECRET_ENV = "API_TOKEN";
const SECRET_VALUE = `token-${process.pid}-\u00e9\n`;
/** Requests per second over the three hosts. */
const RATE = 15;
/**
 * A request's bound. Longer than the proxy's connect timeout (2 s, renderHaproxyConfig): a
 * request the proxy sent to a task that just died waits that long, then is retried on
 * another replica (`retries`, `option redispatch`) and answered; 4 s when the retry met a
 * second dead task (a host that ran two replicas since an earlier rescheduling: swarm does
 * not rebalance). Such an answer is counted as slow (over SLOW_MS): a client with a 2 s
 * timeout would have counted it as failed.
 */
const REQUEST_TIMEOUT_MS = 5000;
const SLOW_MS = 2000;
/** Load after a phase's event settled. */
const TAIL_MS = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>, everyMs = 500): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}

// ---------------------------------------------------------------------------------
// Hosts, network, registry
// ---------------------------------------------------------------------------------

interface SwarmHost {
  name: string;
  zone: string;
  host: h.Host;
  /** Its address on the hosts' network: advertised to the swarm, and where its proxy publishes. */
  ip: string;
  nodeId: string;
}

const hosts: SwarmHost[] = [];
const started: h.Host[] = [];
const volumes: h.DataVolume[] = [];
let dir = "";
/** The hosts' network's first three octets (a replaced machine gets another address in it). */
let netPrefix = "";
let netName = "";
let registryProc: ChildProcess | undefined;
let registry = "";
const digests: Record<Version | "proxy", string> = { v1: "", v2: "", bad: "", proxy: "" };
const bootTimes: string[] = [];
/** Hosts currently dead, by name: requests to them count apart. */
const dead = new Set<string>();

/** A bridge network with a /24 of its own, tried over a few candidates (another network may hold one). */
async function createHostNetwork(): Promise<{ name: string; prefix: string }> {
  const name = `dockyard-${RUN}`;
  await h.sh("docker", ["network", "rm", name]).catch(() => undefined);
  for (let i = 0; i < 40; i++) {
    const prefix = `172.28.${(process.pid + i * 7) % 250}`;
    try {
      await h.sh("docker", ["network", "create", "--driver", "bridge", "--subnet", `${prefix}.0/24`, "--ip-range", `${prefix}.128/25`, "--label", h.LABEL, "--label", `${h.PID_LABEL}=${process.pid}`, name]);
      return { name, prefix };
    } catch (e) {
      if (!/overlap|in use/i.test((e as Error).message)) throw e;
    }
  }
  throw new Error("no free 172.28.x.0/24 for the hosts' network");
}

/** A registry on the docker0 gateway, serving HTTPS with the test CA's certificate for that address. */
async function startRegistry(): Promise<string> {
  const gw = h.bridgeGateway();
  const repoDir = path.dirname(h.DOCKER_CE_TEST_REPO_STATE);
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, gw, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  const cfg = path.join(dir, "registry.yml");
  fs.mkdirSync(path.join(dir, "registry"), { recursive: true });
  fs.writeFileSync(
    cfg,
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${path.join(dir, "registry")}`,
      "http:",
      `  addr: ${gw}:${port}`,
      "  tls:",
      `    certificate: ${path.join(repoDir, "server.pem")}`,
      `    key: ${path.join(repoDir, "server.key")}`,
      "",
    ].join("\n"),
  );
  registryProc = spawn("/usr/bin/docker-registry", ["serve", cfg], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  registryProc.stderr!.on("data", (d) => (err += d));
  const url = `${gw}:${port}`;
  await waitFor(`the registry at ${url} (${err.trim()})`, 20_000, async () =>
    (await h.sh("curl", ["-fsS", "--cacert", path.join(repoDir, "ca.pem"), `https://${url}/v2/`]).then(() => true, () => false)) || undefined,
  );
  return url;
}

/** Builds `FROM web` with some ENV, pushes it with skopeo, returns the pushed manifest's digest. */
async function pushImage(source: string, repo: string, tag: string, env?: Record<string, string>): Promise<string> {
  let local = source;
  if (env) {
    local = `dockyard-test/swarm-${repo}:${tag}`;
    const dockerfile = `FROM ${source}\n${Object.entries(env).map(([k, v]) => `ENV ${k}=${v}`).join("\n")}\n`;
    await h.sh("docker", ["build", "-q", "-t", local, "-"], { input: dockerfile, env: { ...process.env, DOCKER_BUILDKIT: "0" } });
  }
  const digestFile = path.join(dir, `${repo}-${tag}.digest`);
  await h.sh("skopeo", ["copy", "-q", "--dest-tls-verify=false", "--digestfile", digestFile, `docker-daemon:${local}`, `docker://${registry}/${NAMESPACE}/${repo}:${tag}`], { timeoutMs: 120_000 });
  return fs.readFileSync(digestFile, "utf8").trim();
}

/** A rendered command's create, run on its host as the user its rendered ssh command line logs in as (`<user>@<host>`, last). */
async function runCommand(d: SwarmHost, c: RenderedResource, values: Record<string, string>, stdin?: string): Promise<string> {
  const interpreter = c.inputs.interpreter as string[];
  const user = /^([a-z_][a-z0-9_-]*)@/.exec(interpreter[interpreter.length - 1] ?? "")?.[1];
  if (interpreter[0] !== "ssh" || !user) throw new Error(`${c.name}: not an ssh command line: ${JSON.stringify(interpreter)}`);
  const script = resolve(String(c.inputs.create), values);
  return h.sh("docker", ["exec", ...(stdin !== undefined ? ["-i"] : []), "-u", user, d.host.container, "sh", "-c", script], { input: stdin, timeoutMs: 180_000 });
}

/** The swarm's TCP ports dockerd listens on (engine-ready's ENGINE_LISTEN_PORTS), as index.ts passes them. */
const SWARM_TCP_PORTS = [...new Set(SWARM_PORTS.filter((p) => p.protocol === "tcp").map((p) => p.port))];

/** A file of a rendered instance's user-data (gzip, base64: what EC2 receives). */
function renderedUserDataFile(instance: RenderedResource, file: string): string {
  const cc = YAML.parse(zlib.gunzipSync(Buffer.from(String(instance.inputs.userDataBase64), "base64")).toString("utf8")) as { write_files: { path: string; content: string }[] };
  const f = cc.write_files.find((x) => x.path === file);
  if (!f) throw new Error(`${instance.name}: no ${file} in its user-data`);
  return f.content;
}

async function bootHost(spec: EnvironmentSpec, name: string, zone: string, ip: string): Promise<SwarmHost> {
  const base = h.hostInput(spec, name);
  // What index.ts passes in swarm mode (checked against the render below).
  const input = { ...base, engine: { ...base.engine, daemon: swarmDaemonSettings(base.engine.daemon) }, engineLabels: swarmEngineLabels(zone, GROUP), engineListenPorts: SWARM_TCP_PORTS };
  const host = await h.startRenderedHost(RUN, dir, input, { started, volumes });
  // Its fixed address, before its engine starts (the engine picks its own bridges around it).
  await h.sh("docker", ["network", "connect", "--ip", ip, netName, host.container]);
  const ready = await h.waitEngineReady(host);
  // What the user-data made of the swarm settings.
  const info = (await h.exec(host, "docker info --format '{{json .Labels}} {{.LiveRestoreEnabled}}'")).trim();
  // dockerd does not keep daemon.json's order of the labels (seen in CI: group before zone).
  const [labels, liveRestore] = info.split(" ");
  expect((JSON.parse(labels) as string[]).sort()).toEqual([...swarmEngineLabels(zone, GROUP)].sort());
  expect(liveRestore).toBe("false");
  bootTimes.push(`${name} (zone ${zone}, ${ip}): engine ready ${ready.toFixed(1)} s after start`);
  return { name, zone, host, ip, nodeId: "" };
}

// ---------------------------------------------------------------------------------
// The swarm through the Engine API
// ---------------------------------------------------------------------------------

interface Node {
  ID: string;
  Description: { Hostname: string; Engine: { Labels?: Record<string, string> } };
  Spec: { Role: string };
  Status: { State: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability: string; Addr?: string };
}
interface Task {
  ID: string;
  NodeID: string;
  DesiredState: string;
  Status: { State: string; Err?: string };
  Spec: { ContainerSpec: { Image: string } };
}
interface Service {
  ID: string;
  Version: { Index: number };
  UpdateStatus?: { State: string; Message?: string };
}

const live = () => hosts.filter((d) => !dead.has(d.name));
/** An Engine API call on the first live host (a manager: all three are). */
async function api<T>(method: string, p: string, body?: unknown): Promise<T> {
  let last: unknown;
  for (const d of live()) {
    try {
      return (await hostApi<T>(d.host.container, method, p, body, { timeoutMs: 15_000 })).body;
    } catch (e) {
      last = e;
    }
  }
  throw last ?? new Error("no live host");
}
const nodes = () => api<Node[]>("GET", "/nodes");
const tasks = (service: string) => api<Task[]>("GET", `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: [service], "desired-state": ["running"] }))}`);
const serviceOf = (name: string) => api<Service>("GET", `/services/${name}`);
const byNode = (id: string) => hosts.find((d) => d.nodeId === id)?.name ?? id;

/** Tasks of `service` running on live hosts. */
async function runningOnLive(service: string): Promise<Task[]> {
  const ids = new Set(live().map((d) => d.nodeId));
  return (await tasks(service)).filter((t) => t.Status.State === "running" && ids.has(t.NodeID));
}

async function leader(): Promise<SwarmHost> {
  const l = (await nodes()).find((n) => n.ManagerStatus?.Leader);
  const d = hosts.find((x) => x.nodeId === l?.ID);
  if (!d) throw new Error("no leader");
  return d;
}

// ---------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------

interface Shot {
  host: string;
  /** The host was dead when the request was sent. */
  toDead: boolean;
  sentAt: number;
  /** Milliseconds until the answer (or the failure). */
  ms: number;
  status: number;
  body: string;
}

async function shoot(d: SwarmHost, p = "/cgi-bin/whoami"): Promise<Shot> {
  const at = { host: d.name, toDead: dead.has(d.name), sentAt: Date.now() };
  return { ...at, ...(await h.httpGet({ host: d.ip, port: 80, path: p }, REQUEST_TIMEOUT_MS)) };
}

/** Open-loop load over the hosts in turn until `during` settles; returns every request. */
async function underLoad(during: () => Promise<void>): Promise<Shot[]> {
  const pending: Promise<Shot>[] = [];
  let over = false;
  const act = during().finally(() => (over = true));
  const t0 = Date.now();
  for (let n = 0; !over; n++) {
    pending.push(shoot(hosts[n % hosts.length]));
    await sleep(Math.max(0, t0 + ((n + 1) * 1000) / RATE - Date.now()));
  }
  await act;
  return Promise.all(pending);
}

const version = (s: Shot) => s.body.split(" ")[1] ?? "";
interface Counts {
  requests: number;
  toLive: number;
  /** Requests to live hosts that got no 200 within REQUEST_TIMEOUT_MS. */
  failedToLive: Shot[];
  /** Requests to live hosts answered 200, but after SLOW_MS. */
  slowToLive: Shot[];
  toDead: number;
  versions: Record<string, number>;
}
function count(shots: Shot[]): Counts {
  const toLive = shots.filter((s) => !s.toDead);
  const versions: Record<string, number> = {};
  for (const s of toLive.filter((x) => x.status === 200)) versions[version(s)] = (versions[version(s)] ?? 0) + 1;
  return {
    requests: shots.length,
    toLive: toLive.length,
    failedToLive: toLive.filter((s) => s.status !== 200),
    slowToLive: toLive.filter((s) => s.status === 200 && s.ms > SLOW_MS),
    toDead: shots.length - toLive.length,
    versions,
  };
}
const results: string[] = [];
/** `at`: the event's time; slow and failed requests are listed by when they were sent after it. */
function report(title: string, c: Counts, extra: string, at?: number): void {
  const kinds: Record<string, number> = {};
  for (const f of c.failedToLive) kinds[f.status ? `HTTP ${f.status}` : f.body] = (kinds[f.status ? `HTTP ${f.status}` : f.body] ?? 0) + 1;
  const when = (xs: Shot[]) => (at && xs.length ? ` sent +${((xs[0].sentAt - at) / 1000).toFixed(1)}..+${((xs[xs.length - 1].sentAt - at) / 1000).toFixed(1)} s, ${Math.max(...xs.map((x) => x.ms))} ms at most` : "");
  const line =
    `${title}: ${extra}; ${c.requests} requests, ${c.toLive} to live hosts: ${c.failedToLive.length} failed${c.failedToLive.length ? ` (${JSON.stringify(kinds)}${when(c.failedToLive)})` : ""}, ` +
    `${c.slowToLive.length} answered after ${SLOW_MS / 1000} s${when(c.slowToLive)}; ${c.toDead} sent to a dead host; answers by version ${JSON.stringify(c.versions)}`;
  results.push(line);
  console.log(line);
}

/** The status of a host's proxy monitor (0: no answer). */
async function monitor(d: SwarmHost): Promise<number> {
  const s = await shoot(d, MONITOR_PATH);
  return s.status;
}

// ---------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------

/** The stack's files for a render in swarm mode with `webDigest` as the web image. */
function writeSwarmStack(webDigest: string): { stacksDir: string; environmentFile: string } {
  const d = fs.mkdtempSync(path.join(dir, "stack-"));
  const env = structuredClone(readEnvironmentFile(STACK)) as Record<string, any>;
  env.fleet = { mode: "swarm" };
  // web gets a secret, as a swarm secret (its value is encrypted in the stack file: a placeholder in the render).
  env.services.web.secrets = { [SECRET_ENV]: "api-token" };
  const environmentFile = path.join(d, "environment.yaml");
  fs.writeFileSync(environmentFile, YAML.stringify(env));
  const { config } = structuredClone(readStackFile(STACK)) as { config: Record<string, any> };
  config["dockyard:hostGroups"][GROUP].count = 3;
  config["dockyard:replicas"].web = REPLICAS;
  config["dockyard:registry"] = `${registry}/${NAMESPACE}`;
  config["dockyard:images"].web = webDigest;
  config["dockyard:proxyImage"] = digests.proxy;
  config["dockyard:secrets"] = { "api-token": { secure: "v1:dGVzdA==" } };
  fs.writeFileSync(path.join(d, `Pulumi.${STACK}.yaml`), YAML.stringify({ config }));
  return { stacksDir: d, environmentFile };
}

/** The render for each web version. */
const renders = {} as Record<Version, RenderedResource[]>;
/** The SwarmFleet component's name: its resources are `<fleet>-...`. */
let fleet = "";
function rendered(v: Version, type: string, name: string): RenderedResource {
  const r = renders[v].find((x) => x.type === type && x.name === name);
  if (!r) throw new Error(`the ${v} render has no ${type} ${name}`);
  return r;
}
const COMMAND = "command:local:Command";
const SERVICE = "docker:index/service:Service";

/** Replaces the render's computed values (`computed(<resource>.<field>)`) by real ones; an unknown one fails. */
function resolve<T>(v: T, values: Record<string, string>): T {
  const text = JSON.stringify(v).replace(/computed\(([^)]+)\)/g, (m, k: string) => {
    if (!(k in values)) throw new Error(`no value for the rendered ${m}`);
    return values[k];
  });
  return JSON.parse(text) as T;
}
/**
 * The real values of the render's computed ones: the hosts' private IPs, then the network's and
 * the config's ids. A host's init/join stdout stands for the node id it printed: the render
 * holds the placeholder where the program holds nodePlacement's result of the real stdout.
 */
const values: Record<string, string> = {};

let spec: EnvironmentSpec;
let webId = "";
let configName = "";
let secretName = "";
/** The join-tokens command's answer (a Pulumi secret in the program). */
let joinTokens = "";
const allShots: Shot[] = [];

/** The host's rendered proxy service, its computed ids resolved (its node: the init's or join's stdout). */
function proxyArgs(d: SwarmHost): docker.ServiceArgs {
  const args = resolve(rendered("v1", SERVICE, `${fleet}-${proxyServiceName(d.name)}`).inputs, values) as any;
  // The config's name is the config resource's output, unknown to the mock runtime.
  for (const c of args.taskSpec.containerSpec.configs) c.configName ??= configName;
  return args as docker.ServiceArgs;
}
/** Each host's proxy service id. */
const proxyIds: Record<string, string> = {};

/** The rendered web service of a version, its computed ids resolved. */
function webArgs(v: Version): docker.ServiceArgs {
  const args = resolve(rendered(v, SERVICE, `${fleet}-web`).inputs, values) as any;
  // The secret's name is the secret resource's output, unknown to the mock runtime (swarmkit requires it: controlapi validateSecretRefsSpec).
  for (const ref of args.taskSpec.containerSpec.secrets ?? []) ref.secretName ??= secretName;
  return args as docker.ServiceArgs;
}

beforeAll(async () => {
  h.assertHostImage();
  for (const image of [WEB, PROXY]) await h.sh("docker", ["image", "inspect", image]).catch(() => {
    throw new Error(`image ${image} is missing: run bash test/infra/up.sh (test/infra/20-fleet-images.sh builds it)`);
  });
  await h.reapStale();
  dir = h.scratchDir("dockyard-swarm");
  const hostNet = await createHostNetwork();
  netName = hostNet.name;
  netPrefix = hostNet.prefix;
  registry = await startRegistry();
  digests.proxy = await pushImage(PROXY, "haproxy", "local");
  digests.v1 = await pushImage(WEB, "web", "v1", { WEB_VERSION: "v1" });
  digests.v2 = await pushImage(WEB, "web", "v2", { WEB_VERSION: "v2" });
  digests.bad = await pushImage(WEB, "web", "bad", { WEB_VERSION: "bad", WEB_UNHEALTHY: "1" });

  // The spec the hosts' user-data is rendered from: the v1 stack's, channel distro.
  const files = writeSwarmStack(digests.v1);
  const loaded = loadStackSpec(STACK, { dir: files.stacksDir, environmentFile: files.environmentFile });
  expect(loaded.fleetMode).toBe("swarm");
  spec = { ...loaded, engine: { ...loaded.engine, channel: "distro", version: undefined } };
  const names = [1, 2, 3].map((n) => `${STACK}-${GROUP}-${n}`);
  expect(spec.hostGroups.flatMap((g) => Array.from({ length: g.count }, (_, n) => `${STACK}-${g.name}-${n + 1}`))).toEqual(names);

  // The three renders (a fresh process each) while the three hosts boot at once: the boot is most of this file's time.
  const rendering = (async () => {
    for (const v of ["v1", "bad", "v2"] as const) renders[v] = (await renderStack(STACK, { ...(v === "v1" ? files : writeSwarmStack(digests[v])), timeoutMs: 300_000 })).resources;
  })();
  const booted = await Promise.allSettled([rendering, ...names.map((n, i) => bootHost(spec, n, ZONES[i], `${hostNet.prefix}.${10 + i}`))]);
  const failed = booted.filter((b): b is PromiseRejectedResult => b.status === "rejected");
  if (failed.length > 0) throw new Error(failed.map((f) => String(f.reason)).join("\n\n"));
  for (const b of booted.slice(1)) if (b.status === "fulfilled") hosts.push(b.value as SwarmHost);
  fleet = renders.v1.find((r) => r.type === "dockyard:index:SwarmFleet")?.name ?? "";
  if (!fleet) throw new Error("the render has no SwarmFleet: is the stack in swarm mode?");
  for (const d of hosts) values[`${d.name}-instance.privateIp`] = d.ip;

  // Each host's engine configuration is its rendered one (the render's zone is the mocked subnet's).
  for (const d of hosts) {
    const instance = rendered("v1", "aws:ec2/instance:Instance", `${d.name}-instance`);
    const want = renderedUserDataFile(instance, "/etc/docker/daemon.json");
    expect(await h.exec(d.host, "cat /etc/docker/daemon.json")).toBe(want);
    const port = /^ENGINE_LISTEN_PORTS=.*$/m;
    expect(port.exec(await h.exec(d.host, "cat /usr/local/lib/dockyard/env"))?.[0]).toBe(port.exec(renderedUserDataFile(instance, "/usr/local/lib/dockyard/env"))?.[0]);
  }
  // Every host pulls the images by digest itself: the rendered pull commands of the three renders.
  await Promise.all(
    hosts.map(async (d) => {
      const pulls = (["v1", "bad", "v2"] as const).flatMap((v) => renders[v].filter((r) => r.type === COMMAND && r.name.startsWith(`${fleet}-${d.name}-`) && r.name.endsWith("-pull")));
      expect(new Set(pulls.map((p) => p.inputs.create)).size).toBe(4);
      for (const p of pulls) await runCommand(d, p, values);
    }),
  );
  console.log(`swarm hosts:\n  ${bootTimes.join("\n  ")}`);
}, 900_000);

afterAll(async () => {
  if (results.length) console.log(`swarm scenario:\n  ${results.join("\n  ")}`);
  for (const x of started) await h.removeHost(x);
  for (const v of volumes) await h.destroyDataVolume(v);
  if (netName) await h.sh("docker", ["network", "rm", netName]).catch(() => undefined);
  if (registryProc?.pid) registryProc.kill("SIGTERM");
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

// ---------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------

describe("swarm mode on three real hosts", () => {
  it("the hosts form one swarm with the rendered commands: three managers, one per zone, engine labels for placement", async () => {
    const managers = pickManagers(hosts.map((d) => ({ name: d.name, zone: d.zone })));
    expect(managerCount(hosts.length)).toBe(3);
    expect(managers).toEqual(hosts.map((d) => d.name));
    const init = renders.v1.filter((r) => r.type === COMMAND && r.name.endsWith("-init"));
    expect(init.map((r) => r.name)).toEqual([`${fleet}-${managers[0]}-init`]);
    const first = hosts.find((d) => d.name === managers[0])!;
    const initOut = await runCommand(first, init[0], values);
    values[`${init[0].name}.stdout`] = nodeIdOf(initOut);
    // Run again (a replaced or rebooted first manager), it does nothing but print the node's id again.
    expect(await runCommand(first, init[0], values)).toBe(initOut);
    const tokens = await runCommand(first, rendered("v1", COMMAND, `${fleet}-join-tokens`), values);
    joinTokens = tokens;
    for (const d of hosts.filter((x) => x !== first)) {
      const role = managers.includes(d.name) ? "manager" : "worker";
      values[`${fleet}-${d.name}-join.stdout`] = nodeIdOf(await runCommand(d, rendered("v1", COMMAND, `${fleet}-${d.name}-join`), values, `${joinToken(tokens, role)}\n`));
    }
    const ns = await waitFor("three Ready nodes", 60_000, async () => {
      const n = await nodes();
      return n.length === 3 && n.every((x) => x.Status.State === "ready" && x.ManagerStatus?.Reachability === "reachable") ? n : undefined;
    });
    for (const d of hosts) {
      const n = ns.find((x) => x.Description.Hostname === d.name);
      expect(n, `node of ${d.name}`).toBeDefined();
      d.nodeId = n!.ID;
      // Its init or join printed that id last: the host's proxy service is pinned by it.
      expect(values[`${fleet}-${d.name}-${d === first ? "init" : "join"}.stdout`]).toBe(d.nodeId);
      expect(n!.Spec.Role).toBe("manager");
      expect(n!.Description.Engine.Labels).toEqual({ [ZONE_LABEL]: d.zone, [GROUP_LABEL]: GROUP });
    }
    expect((await leader()).name).toBe(first.name);
  }, 180_000);

  it("the rendered network, proxy config, web service and global proxy start as the Docker provider creates them; every host's proxy serves", async () => {
    const on = live()[0].host.container;
    // A stack moved in place from static mode: each new machine's dockerd brings back what the
    // static fleet left on its kept data volume: the service's bridge network (the static
    // name), a replica on it, and the proxy holding port 80 (restart unless-stopped).
    const webV1 = `${registry}/${NAMESPACE}/web@${digests.v1}`;
    const staticNet = serviceNetworkName(STACK, "web");
    for (const d of hosts) {
      await h.exec(
        d.host,
        [
          `docker network create --label dockyard.stack=${STACK} --label dockyard.service=web ${staticNet} >/dev/null`,
          `docker run -d --name static-web-1 --restart unless-stopped --network ${staticNet} --label dockyard.stack=${STACK} --label dockyard.service=web ${webV1} >/dev/null`,
          `docker run -d --name static-proxy --restart unless-stopped -p 80:8080 --label dockyard.stack=${STACK} --label dockyard.role=proxy ${webV1} >/dev/null`,
        ].join(" && "),
      );
    }
    const network = rendered("v1", "docker:index/network:Network", `${fleet}-web-net`);
    // The overlay's name is not the static one: dockerd would refuse it while the bridge exists.
    expect(network.inputs.name).not.toBe(staticNet);
    values[`${network.name}.id`] = await createNetwork(on, network.inputs as unknown as docker.NetworkArgs);
    const config = rendered("v1", "docker:index/serviceConfig:ServiceConfig", `${fleet}-proxy-app-config`);
    expect(Buffer.from(String(config.inputs.data), "base64").toString()).toContain(`server-template web 10 tasks.web:8080 `);
    // The name the bridge's autonaming would give (the mock runtime has none).
    configName = `${config.name}-${Math.random().toString(16).slice(2, 9)}`;
    values[`${config.name}.id`] = await createConfig(on, { ...(config.inputs as unknown as docker.ServiceConfigArgs), name: configName });

    // The updates' renders differ from v1's only in the web image (and the pull commands).
    const image = (v: Version) => (rendered(v, SERVICE, `${fleet}-web`).inputs as any).taskSpec.containerSpec.image as string;
    expect(image("v1")).toBe(`${registry}/${NAMESPACE}/web@${digests.v1}`);
    for (const v of ["bad", "v2"] as const) {
      expect(image(v)).toBe(`${registry}/${NAMESPACE}/web@${digests[v]}`);
      expect(JSON.stringify(rendered(v, SERVICE, `${fleet}-web`).inputs).replace(digests[v], digests.v1)).toBe(JSON.stringify(rendered("v1", SERVICE, `${fleet}-web`).inputs));
    }

    // The secret as the provider creates it, its value the test's (the render's is encrypted), its name the bridge's autonaming's.
    const secret = rendered("v1", "docker:index/secret:Secret", `${fleet}-web-${SECRET_ENV.toLowerCase().replace(/_/g, "-")}`);
    expect(isSecretValue(secret.inputs.data)).toBe(true);
    secretName = `${secret.name}-${Math.random().toString(16).slice(2, 9)}`;
    values[`${secret.name}.id`] = await createSecret(on, { name: secretName, data: Buffer.from(SECRET_VALUE).toString("base64"), labels: secret.inputs.labels });

    const created = await createService(on, webArgs("v1"));
    webId = created.id;
    expect(created.warnings).toEqual([]);
    await waitFor(`${REPLICAS} web tasks running`, 90_000, async () => (await runningOnLive("web")).length === REPLICAS);

    // Each task has the secret as a file, its name in <ENV>_FILE, owned by the service's user, mode 0400, and no <ENV> variable.
    const ref = (webArgs("v1") as any).taskSpec.containerSpec.secrets[0];
    for (const d of hosts) {
      const tasks = (await h.exec(d.host, "docker ps -q --filter label=com.docker.swarm.service.name=web")).trim().split("\n").filter(Boolean);
      expect(tasks, `${d.name}: a web task`).toHaveLength(1);
      const seen = await h.exec(
        d.host,
        `docker exec ${tasks[0]} sh -c 'cat "$${SECRET_ENV}_FILE"; echo "|$${SECRET_ENV}_FILE|$(stat -c "%u:%g %a" "$${SECRET_ENV}_FILE")|$${SECRET_ENV}-unset|$(id -u)"'`,
      );
      expect(seen, d.name).toBe(`${SECRET_VALUE}|${ref.fileName}|${ref.fileUid}:${ref.fileGid} ${ref.fileMode.toString(8)}|-unset|${ref.fileUid}\n`);
    }

    // Then each host's static leftovers go (the rendered command), the swarm's tasks stay.
    for (const d of hosts) {
      const command = rendered("v1", COMMAND, `${fleet}-${d.name}-static-leftovers`);
      const out = (await runCommand(d, command, values)).trim().split("\n");
      expect(out.filter((l) => /^removed container [0-9a-f]{12} \(left by the static fleet\)$/.test(l)), d.name).toHaveLength(2);
      expect(out.filter((l) => /^removed network [0-9a-f]{12} \(left by the static fleet\)$/.test(l)), d.name).toHaveLength(1);
      expect(await h.exec(d.host, `docker ps -a --filter label=dockyard.stack=${STACK} --format '{{.Names}}' | grep -c '^static-' || true`)).toBe("0\n");
      expect((await h.exec(d.host, "docker network ls --format '{{.Name}}'")).split("\n"), d.name).not.toContain(staticNet);
      // Again (a replaced machine in swarm mode): nothing left, nothing printed.
      expect(await runCommand(d, command, values)).toBe("");
    }
    expect(await runningOnLive("web")).toHaveLength(REPLICAS);

    // One proxy service per host, each pinned to its node, created in the render's order, each with the provider's converge wait.
    for (const d of hosts) {
      const proxy = await createService(on, proxyArgs(d));
      expect(proxy.warnings).toEqual([]);
      proxyIds[d.name] = proxy.id;
    }

    // Every replica running (healthy), one per zone; a proxy on every host.
    const running = await waitFor(`${REPLICAS} web tasks running`, 90_000, async () => {
      const t = await runningOnLive("web");
      return t.length === REPLICAS ? t : undefined;
    });
    expect(new Set(running.map((t) => byNode(t.NodeID))).size).toBe(3);
    for (const d of hosts) expect((await runningOnLive(proxyServiceName(d.name))).map((t) => t.NodeID)).toEqual([d.nodeId]);
    for (const d of hosts) await waitFor(`${d.name}'s proxy monitor`, 30_000, async () => (await monitor(d)) === 200);
    for (const d of hosts) {
      const x = await shoot(d);
      expect(x.status, `${d.name}: ${x.body}`).toBe(200);
      expect(version(x)).toBe("v1");
    }
  }, 180_000);

  it("a service that never converges: the provider's create deletes it and fails (resource_docker_service_funcs.go resourceDockerServiceCreate)", async () => {
    const on = live()[0].host.container;
    const never = { ...(webArgs("v1") as any), name: "never", mode: { replicated: { replicas: 1 } }, convergeConfig: { delay: "1s", timeout: "10s" } };
    never.taskSpec = { ...never.taskSpec, placement: { constraints: ["node.labels.nowhere==1"] } };
    await expect(createService(on, never as docker.ServiceArgs, { intervalMs: 1000 })).rejects.toThrow(/^Service with ID \(\w+\) did not converge after 10s$/);
    expect((await hostApi(on, "GET", "/services/never", undefined, { allowError: true })).status).toBe(404);
  }, 60_000);

  /** Kills a host mid-load; resolves when the service has REPLICAS running tasks on live hosts again. */
  async function killHost(victim: SwarmHost): Promise<{ seconds: number; shots: Shot[]; at: number }> {
    let seconds = 0;
    let t0 = 0;
    const shots = await underLoad(async () => {
      await sleep(3000);
      dead.add(victim.name);
      t0 = Date.now();
      await h.sh("docker", ["kill", victim.host.container]);
      await waitFor(`${REPLICAS} web tasks running on live hosts after ${victim.name} died`, 150_000, async () => (await runningOnLive("web")).length === REPLICAS, 250);
      seconds = (Date.now() - t0) / 1000;
      await sleep(TAIL_MS);
    });
    allShots.push(...shots);
    return { seconds, shots, at: t0 };
  }

  /**
   * After a host died, what a live host's proxy may still send to its dead task: until the
   * proxy's own check takes that server out, `fall` failed checks, each timing out after
   * `inter` (no `timeout check`: HAProxy 2.6 configuration.txt) and starting `inter` after the
   * previous one ended, plus one `inter` of phase and 2 s for the kill itself on a loaded
   * machine. Such a request waits the proxy's connect timeout, then is retried on another
   * replica: slow, not failed.
   */
  function detectionBound(): number {
    const cfg = Buffer.from(String(rendered("v1", "docker:index/serviceConfig:ServiceConfig", `${fleet}-proxy-app-config`).inputs.data), "base64").toString();
    const m = / check inter (\d+)s .*fall (\d+) /.exec(cfg);
    if (!m) throw new Error(`cannot read the proxy's check timing from its configuration:\n${cfg}`);
    const [inter, fall] = [Number(m[1]), Number(m[2])];
    return fall * 2 * inter + inter + 2;
  }

  function expectKillCounts(c: Counts, at: number): void {
    expect(c.failedToLive).toEqual([]);
    expect(c.toDead).toBeGreaterThan(0);
    const late = c.slowToLive.filter((s) => s.sentAt - at > detectionBound() * 1000);
    expect(late.map((s) => `${s.host} +${((s.sentAt - at) / 1000).toFixed(1)} s ${s.ms} ms`)).toEqual([]);
  }

  /** Starts a killed host again; resolves when it is a Ready, reachable manager and its proxy serves (it is live again then). */
  async function restartHost(d: SwarmHost): Promise<number> {
    const t0 = Date.now();
    await h.sh("docker", ["start", d.host.container]);
    const ip = (await h.sh("docker", ["inspect", "-f", `{{(index .NetworkSettings.Networks "${netName}").IPAddress}}`, d.host.container])).trim();
    expect(ip).toBe(d.ip);
    // Its rendered init or join, run again once its engine answers (as after a new machine with
    // the kept data volume, once engine readiness passed): it waits while the kept swarm state
    // reconnects (`pending`) and then does nothing.
    await waitFor(`${d.name}'s engine answering`, 120_000, async () => (await h.tryExec(d.host, "docker version --format '{{.Server.Version}}'", 10_000)).code === 0, 1000);
    const mine = renders.v1.find((r) => r.type === COMMAND && (r.name === `${fleet}-${d.name}-init` || r.name === `${fleet}-${d.name}-join`))!;
    await runCommand(d, mine, values, mine.name.endsWith("-join") ? `${joinToken(joinTokens, "manager")}\n` : undefined);
    expect((await h.exec(d.host, "docker info --format '{{.Swarm.LocalNodeState}}'")).trim()).toBe("active");
    await waitFor(`${d.name} Ready again`, 180_000, async () => {
      const n = (await nodes()).find((x) => x.ID === d.nodeId);
      return n?.Status.State === "ready" && n.ManagerStatus?.Reachability === "reachable";
    }, 1000);
    await waitFor(`${d.name}'s proxy serving again`, 90_000, async () => (await monitor(d)) === 200, 1000);
    dead.delete(d.name);
    return (Date.now() - t0) / 1000;
  }

  let follower: SwarmHost;
  it("a follower killed mid-load: its replica is rescheduled on the others; no request to a live host fails", async () => {
    const lead = await leader();
    const withReplica = new Set((await runningOnLive("web")).map((t) => t.NodeID));
    follower = hosts.find((d) => d !== lead && withReplica.has(d.nodeId))!;
    const { seconds, shots, at } = await killHost(follower);
    const c = count(shots);
    report("follower killed", c, `${follower.name} killed, ${REPLICAS} replicas running on live hosts again after ${seconds.toFixed(1)} s`, at);
    expectKillCounts(c, at);
    expect((await runningOnLive("web")).every((t) => t.NodeID !== follower.nodeId)).toBe(true);
    expect(seconds).toBeLessThan(120);
  }, 240_000);

  it("the killed follower, started again, rejoins by itself (Ready, reachable manager, its proxy serving)", async () => {
    let seconds = 0;
    const shots = await underLoad(async () => {
      seconds = await restartHost(follower);
      await sleep(TAIL_MS);
    });
    allShots.push(...shots);
    const c = count(shots);
    report("follower rejoined", c, `${follower.name} back in ${seconds.toFixed(1)} s`);
    expect(c.failedToLive).toEqual([]);
    expect(c.slowToLive).toEqual([]);
    // Its answers come back once live again.
    expect(shots.some((s) => s.host === follower.name && !s.toDead && s.status === 200)).toBe(true);
  }, 300_000);

  let oldLeader: SwarmHost;
  let leaderBack: Promise<number> | undefined;
  it("the leader killed mid-load: the two other managers elect a leader and its replica is rescheduled; no request to a live host fails", async () => {
    oldLeader = await leader();
    const { seconds, shots, at } = await killHost(oldLeader);
    const now = await leader();
    // It comes back while the updates run.
    leaderBack = restartHost(oldLeader);
    leaderBack.catch(() => undefined);
    const c = count(shots);
    report("leader killed", c, `${oldLeader.name} killed, new leader ${now.name}, ${REPLICAS} replicas running on live hosts again after ${seconds.toFixed(1)} s`, at);
    expect(now.name).not.toBe(oldLeader.name);
    expectKillCounts(c, at);
    expect(seconds).toBeLessThan(150);
  }, 300_000);

  /**
   * Updates the web service to the render of `to` as the provider does, under load, until swarm ends
   * the update (UpdateStatus: completed, or rolled back/paused) and REPLICAS tasks of
   * `settlesOn` run on live hosts.
   */
  async function updateUnderLoad(to: Version, settlesOn: Version): Promise<{ state: string; outcome: string; seconds: number; shots: Shot[] }> {
    const t0 = Date.now();
    let state = "";
    let outcome = "";
    const shots = await underLoad(async () => {
      await sleep(2000);
      // The provider's converge wait (resource_docker_service_funcs.go): it returns once swarm completed the update, and fails when swarm rolled it back.
      outcome = await updateService(live()[0].host.container, webId, webArgs(to)).then(
        () => "converged",
        (e: Error) => e.message,
      );
      state = await waitFor("the update to end", 240_000, async () => {
        const st = (await serviceOf(webId)).UpdateStatus?.State ?? "";
        return ["rollback_completed", "rollback_paused", "paused", "completed"].includes(st) ? st : undefined;
      }, 1000);
      await waitFor(`${REPLICAS} tasks of ${settlesOn} running`, 60_000, async () => {
        const t = await runningOnLive("web");
        return t.length === REPLICAS && t.every((x) => x.Spec.ContainerSpec.Image.endsWith(digests[settlesOn]));
      });
      await sleep(TAIL_MS);
    });
    allShots.push(...shots);
    return { state, outcome, seconds: (Date.now() - t0) / 1000, shots };
  }

  it("an update to an unhealthy image rolls back by itself; none of its tasks served a request", async () => {
    const { state, outcome, seconds, shots } = await updateUnderLoad("bad", "v1");
    // The provider's own wait may report this update complete: while UpdateStatus is
    // `updating` it counts running tasks by slot (desired state running), and once the new
    // task failed and before swarm starts the rollback, the old tasks fill every slot, so
    // running == replicas (kreuzwerker/terraform-provider-docker 5074970c
    // internal/provider/resource_docker_service_funcs.go, resourceDockerServiceUpdateRefreshFunc
    // + replicatedConsoleLogUpdater.update). Either its rollback error or "converged", by the race.
    expect(outcome).toMatch(/^(service rollback completed: .*|converged)$/s);
    // What makes `pulumi up` fail all the same: the service's rendered update gate, run on a
    // manager after the update as the command provider runs it (its create, the script on
    // stdin), exits non-zero naming swarm's rollback; `services` resolves only after it.
    const gate = rendered("bad", COMMAND, `${fleet}-web-update-gate`);
    expect(String(gate.inputs.create)).toContain(`'${registry}/${NAMESPACE}/web@${digests.bad}'`);
    const gated = await runCommand(live()[0], gate, values, String(gate.inputs.stdin)).then(
      () => "exit 0",
      (e: Error) => e.message,
    );
    expect(gated).toMatch(/exited 1: .*dockyard: service web: swarm's update status is rollback_completed: /s);
    const c = count(shots);
    // The bad image did run: swarm started its task(s), which never became healthy (a task with a health check is running only once healthy).
    const everyTask = await api<Task[]>("GET", `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: ["web"] }))}`);
    const bad = everyTask.filter((t) => t.Spec.ContainerSpec.Image.endsWith(digests.bad));
    const badStates = bad.map((t) => `${t.Status.State}${t.Status.Err ? ` (${t.Status.Err})` : ""}`);
    report("bad update", c, `${state}, back on v1 after ${seconds.toFixed(1)} s; the bad image's tasks: ${badStates.join(", ")}`);
    expect(state).toBe("rollback_completed");
    expect(bad.length).toBeGreaterThan(0);
    expect(bad.filter((t) => t.Status.State === "running")).toEqual([]);
    expect(c.versions.bad ?? 0).toBe(0);
    expect(c.failedToLive).toEqual([]);
    expect(c.slowToLive).toEqual([]);
  }, 300_000);

  it("a good update (a new digest) rolls out with no failed request", async () => {
    const { state, outcome, seconds, shots } = await updateUnderLoad("v2", "v2");
    expect(outcome).toBe("converged");
    const c = count(shots);
    report("good update", c, `${state}, all on v2 after ${seconds.toFixed(1)} s`);
    expect(state).toBe("completed");
    expect(c.failedToLive).toEqual([]);
    expect(c.slowToLive).toEqual([]);
    expect(c.versions.v2 ?? 0).toBeGreaterThan(0);
    // The last answers are all v2.
    expect(shots.slice(-10).filter((x) => !x.toDead).every((x) => version(x) === "v2")).toBe(true);
  }, 300_000);

  it("the killed leader rejoins too; no answer ever came from the bad image", async () => {
    expect(leaderBack).toBeDefined();
    const seconds = await leaderBack!;
    results.push(`leader rejoined: ${oldLeader.name} back ${seconds.toFixed(1)} s after its restart began`);
    const ns = await nodes();
    expect(ns.filter((n) => n.Status.State === "ready" && n.ManagerStatus?.Reachability === "reachable")).toHaveLength(3);
    expect(allShots.filter((s) => version(s) === "bad")).toEqual([]);
  }, 240_000);

  /**
   * Issue 24 item 7: a replaced machine as EC2 makes one: the same data volume (the engine's
   * swarm state on it, moby noderunner.go loadPersistentState), another private address. Its
   * rendered init or join runs again (a new machine: its triggers), with the new address; the
   * host's proxy service is updated to the node id it printed, as Pulumi would (its placement
   * input changed). Resolves once the swarm has 3 Ready, reachable managers again, none of
   * them the former node, the host's node advertising the new address, its proxy serving.
   */
  /** A replacement as EC2 makes it here: the same data volume (the container's), a new private address. */
  async function moveMachine(d: SwarmHost, newIp: string): Promise<void> {
    dead.add(d.name);
    await h.sh("docker", ["stop", "-t", "5", d.host.container]);
    await h.sh("docker", ["network", "disconnect", netName, d.host.container]);
    await h.sh("docker", ["network", "connect", "--ip", newIp, netName, d.host.container]);
    await h.sh("docker", ["start", d.host.container]);
    d.ip = newIp;
    values[`${d.name}-instance.privateIp`] = newIp;
    await waitFor(`${d.name}'s engine answering`, 120_000, async () => (await h.tryExec(d.host, "docker version --format '{{.Server.Version}}'", 10_000)).code === 0, 1000);
  }

  /** Three Ready, reachable managers, `former` gone and `d` at its new address; then d's proxy follows its new node id. */
  async function swarmWhole(d: SwarmHost, former: string): Promise<void> {
    await waitFor("3 Ready, reachable managers, the former node gone", 180_000, async () => {
      const ns = await nodes();
      const mineNode = ns.find((n) => n.ID === d.nodeId);
      return ns.length === 3 && !ns.some((n) => n.ID === former) && ns.every((n) => n.Status.State === "ready" && n.ManagerStatus?.Reachability === "reachable") && mineNode?.Status.Addr === d.ip;
    }, 2000);
    await updateService(live().find((x) => x !== d)!.host.container, proxyIds[d.name], proxyArgs(d));
    await waitFor(`${d.name}'s proxy serving`, 90_000, async () => (await monitor(d)) === 200, 1000);
  }

  async function replaceMachine(d: SwarmHost, newIp: string): Promise<{ seconds: number; former: string }> {
    const t0 = Date.now();
    const former = d.nodeId;
    await moveMachine(d, newIp);
    const mine = renders.v1.find((r) => r.type === COMMAND && (r.name === `${fleet}-${d.name}-init` || r.name === `${fleet}-${d.name}-join`))!;
    const out = await runCommand(d, mine, values, mine.name.endsWith("-join") ? `${joinToken(joinTokens, "manager")}\n` : undefined);
    d.nodeId = nodeIdOf(out);
    values[`${mine.name}.stdout`] = d.nodeId;
    dead.delete(d.name);
    expect(d.nodeId).not.toBe(former);
    await swarmWhole(d, former);
    return { seconds: (Date.now() - t0) / 1000, former };
  }

  it("a replaced follower (kept data volume, new address) leaves, joins again with its new address and removes its former node", async () => {
    const d = hosts[1];
    const { seconds, former } = await replaceMachine(d, `${netPrefix}.${30 + 1}`);
    results.push(`follower replaced: ${d.name} at ${d.ip}, node ${former} -> ${d.nodeId}, 3 reachable managers after ${seconds.toFixed(1)} s`);
  }, 420_000);

  // No test of the first manager's replacement here: issue 24 item 7 is open for it. Its kept state
  // advertises the old address; in one run its rendered init stopped (no leader reachable:
  // "The swarm does not have a leader"), in the next it exited 0 printing no node id (its NodeAddr
  // read empty while the engine settled). Neither is a rejoin; see the issue note.
});
