/**
 * The host-failure drill (issue 13, part 1): two hosts behind a stand-in for the front
 * door's target group; one host fails mid-load; how long do clients see failures?
 *
 * The hosts: the `test` stack's two app hosts (test-app-1, test-app-2), each booted by the
 * host harness from the user-data components/engine.ts renders for it (channel forced to
 * `distro`, as in engine.int.test.ts: Docker's apt repository is unreachable here). On each,
 * what the program renders for that host (`renderStack("test")`, the whole program on the
 * mock runtime): the service network, the data volume, the proxy's configuration written by
 * the rendered proxy-config command (as the SSH user, its stdin along; the configuration
 * carries the monitor, MONITOR_PATH), the web replica and the proxy, each from its rendered
 * inputs (see `runArgs`), publishing port 80 on the host's address (the rendered pull and
 * pids-limit commands are not run: the images are loaded from this machine's engine).
 *
 * The stand-in for the NLB's target group: HAProxy on this machine (/usr/sbin/haproxy,
 * Debian's 2.6) in `mode tcp` (bytes passed through, like a TCP listener), one server per
 * host at its address and the published port, health-checked as the target group does it
 * with the values imported from components/front-door.ts: HTTP GET of HEALTH_CHECK.path on
 * the traffic port, status HEALTH_CHECK.matcher, every HEALTH_CHECK.interval, timing out
 * after HEALTH_CHECK.timeout (`timeout connect` and `timeout check`: HAProxy 2.6
 * configuration.txt, timeout check: with it set, a check's connect timeout is min(timeout
 * connect, inter) and `timeout check` bounds the read), out after unhealthyThreshold
 * failures (`fall`), back after healthyThreshold passes (`rise`). `retries 0` and no
 * `option redispatch`: a connection whose target does not answer is not tried on another
 * target. An NLB does not either: it "selects a target ... using a flow hash algorithm" and
 * "routes each individual TCP connection to a single target for the life of the
 * connection" (Elastic Load Balancing, Network Load Balancers, "Network Load Balancer
 * overview", docs.aws.amazon.com/elasticloadbalancing/latest/network/introduction.html).
 *
 * The drill, twice, with a request every 1/RATE s through the stand-in (a new TCP connection
 * each, as each new flow is balanced anew; each request times out after REQUEST_TIMEOUT_MS),
 * the failure set off WARMUP_MS plus a random part of a check interval in:
 *  1. engine alive, replicas dead: test-app-1's replica is stopped (`docker stop`); its proxy
 *     notices, its monitor answers 503, the stand-in takes the host out; the replica is started
 *     again and the host must come back without a failed request;
 *  2. host dead: `docker kill` of test-app-2's container (systemd, its engine, the replica and
 *     the proxy go at once, as when an instance dies).
 * Each runs until the stand-in has taken the host out (and, in 1, back in) and TAIL_MS more.
 * Measured: the failed requests, and the window from the failure to the sending of the last
 * request that failed. Asserted: the window is at most the bound (2: worstCaseDrainSeconds()
 * plus SLACK_SECONDS; 1: the proxy's own detection, from its rendered check timing, plus
 * unhealthyThreshold x interval plus 2 s), every request sent after it succeeded, every
 * failed request was one the stand-in sent to the failed host (its tcplog, matched by the
 * client's port), and the other host answered throughout.
 *
 * What this does NOT prove:
 *  - the real NLB's health checker: AWS runs it from every load balancer node (with
 *    cross-zone on, several nodes check each target), adds passive health checks that may
 *    take a host out sooner ("Health checks for Network Load Balancer target groups"), and
 *    its timing is AWS's; the stand-in is one HAProxy checking on its own schedule, which
 *    starts the next check `inter` after the previous one ENDED (src/check.c,
 *    process_chk_conn: t->expire = now + srv_getinter()), so each timed-out check adds its
 *    timeout: its own worst case is unhealthyThreshold x (interval + timeout), 30 s today,
 *    not the 25 s of worstCaseDrainSeconds, hence SLACK_SECONDS;
 *  - connection tracking of established flows: every request here is a new connection; the
 *    NLB's handling of flows open to a target that turns unhealthy (RSTs, or
 *    `unhealthy.draining`) and its deregistration delay are not exercised;
 *  - fail-open: with every target unhealthy an NLB sends to all of them; the stand-in sends
 *    to none. Only one of two hosts dies here;
 *  - balancing: the stand-in is round-robin per connection, an NLB hashes flows, so which
 *    requests meet the dead host (and so the failed count) differs, not the window;
 *  - the hosts are the harness's containers on one machine, behind docker0, not EC2
 *    instances in subnets; a dead container's address stops answering ARP, a dead instance's
 *    ENI may behave otherwise;
 *  - the containers are started with the docker CLI on the host from their rendered inputs
 *    (runArgs), not by the Docker provider (test/components/fleet.int.test.ts plays the
 *    provider's create over the Engine API); the CLI can only set a CMD-SHELL health check,
 *    so the replica's exec-form check runs through its shell and the proxy (no shell in its
 *    image) gets none: its readiness is its monitor answering 200 on the host's address;
 *  - in 1, the replica is stopped, not crashed, on a host that stays up; requests that reach
 *    the proxy before it noticed wait for its connect timeout and retries (longer than a
 *    client's REQUEST_TIMEOUT_MS here), so the first failures are timeouts, then 503s.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { HEALTH_CHECK, worstCaseDrainSeconds } from "../../components/front-door";
import { MONITOR_PATH } from "../../components/proxy";
import { renderStack, type RenderedResource } from "../../scripts/lib/render";
import * as h from "./harness";
import { CONTAINER_SHAPE, refuseUntranslated, type Shape } from "../helpers/container-replay";

const STACK = "test";
const RUN = `drill${process.pid}`;
const WEB = "dockyard-test/web:local";
const PROXY = "dockyard-test/haproxy:local";
const HAPROXY = "/usr/sbin/haproxy";
/** Requests per second through the stand-in. */
const RATE = 15;
const REQUEST_TIMEOUT_MS = 2000;
/** Load before the failure (plus a random part of a check interval, see runPhase). */
const WARMUP_MS = 5000;
/** Load after the stand-in took the failed host out, or back in (longer than a request's timeout). */
const TAIL_MS = 5000;
/**
 * Beyond worstCaseDrainSeconds(): the stand-in's own scheduling adds each timed-out check's
 * timeout before the next check, (unhealthyThreshold - 1) x timeout (see the header), and 3 s
 * for a loaded 2-core machine: the kill itself (`docker kill` took up to 0.9 s here, and the
 * window counts from before it), timers and process scheduling (load averages of 6-8 were
 * seen while other test files ran). A measured window came within 0.7 s of the 30 s.
 */
const SLACK_SECONDS = (HEALTH_CHECK.unhealthyThreshold - 1) * HEALTH_CHECK.timeout + 3;
const BOUND_SECONDS = worstCaseDrainSeconds() + SLACK_SECONDS;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------
// The hosts and what the program renders for them
// ---------------------------------------------------------------------------------

interface DrillHost {
  name: string;
  host: h.Host;
  ip: string;
  /** Short ids of its replicas: what /cgi-bin/whoami answers first. */
  replicas: string[];
  /** The port its proxy publishes (the service's publishPort). */
  port: number;
}

const hosts: DrillHost[] = [];
const started: h.Host[] = [];
const volumes: h.DataVolume[] = [];
let dir: string;
const times: string[] = [];

/**
 * Inputs of docker:index/container:Container (and the keys of their nested blocks) that runArgs
 * turns into docker CLI flags, a subset of the replay's (test/helpers/container-replay.ts);
 * any other fails the test. `ports[].ip` is not among them: `--publish` binds every address.
 */
const RUN_SHAPE: Shape = Object.fromEntries(
  Object.entries(CONTAINER_SHAPE as Record<string, Shape>)
    .filter(([k]) => ["name", "image", "envs", "restart", "user", "readOnly", "tmpfs", "memory", "memorySwap", "cpus", "capabilities", "securityOpts",
      "sysctls", "logDriver", "logOpts", "healthcheck", "networksAdvanced", "mounts", "labels", "ports", "init", "stopTimeout",
      // Provider-side only: the wait (played below by waiting until healthy) and the delete's grace.
      "wait", "waitTimeout", "destroyGraceSeconds"].includes(k))
    .map(([k, v]) => [k, k === "ports" ? { internal: "leaf", external: "leaf", protocol: "leaf" } : v]),
);

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `docker create` flags for a rendered container (its first network at create, the others connected before start). */
function runArgs(c: RenderedResource, image: string): string[] {
  const i = c.inputs as Record<string, any>;
  refuseUntranslated(c.name, i, RUN_SHAPE);
  const envs = i.envs ?? [];
  if (!Array.isArray(envs)) throw new Error(`${c.name}: envs is not a plain list (a secret?); the drill passes plain env only`);
  const args = ["--name", c.name, "--restart", i.restart ?? "no"];
  for (const e of envs as string[]) args.push("--env", e);
  if (i.user) args.push("--user", i.user);
  if (i.readOnly) args.push("--read-only");
  for (const [p, o] of Object.entries((i.tmpfs ?? {}) as Record<string, string>)) args.push("--tmpfs", `${p}:${o}`);
  if (i.memory) args.push("--memory", `${i.memory}m`);
  if (i.memorySwap) args.push("--memory-swap", `${i.memorySwap}m`);
  if (i.cpus) args.push("--cpus", String(i.cpus));
  for (const cap of i.capabilities?.drops ?? []) args.push("--cap-drop", cap);
  for (const cap of i.capabilities?.adds ?? []) args.push("--cap-add", cap);
  for (const o of i.securityOpts ?? []) args.push("--security-opt", o);
  for (const [k, v] of Object.entries((i.sysctls ?? {}) as Record<string, string>)) args.push("--sysctl", `${k}=${v}`);
  if (i.logDriver) args.push("--log-driver", i.logDriver);
  for (const [k, v] of Object.entries((i.logOpts ?? {}) as Record<string, string>)) args.push("--log-opt", `${k}=${v}`);
  const hc = i.healthcheck as { tests: string[]; interval: string; timeout: string; retries: number; startPeriod: string } | undefined;
  if (hc && image === WEB) {
    // The CLI sets CMD-SHELL only: the exec form's words, quoted, through the replica's sh.
    if (hc.tests[0] !== "CMD") throw new Error(`${c.name}: health check ${hc.tests[0]} not translated`);
    args.push("--health-cmd", hc.tests.slice(1).map(shellQuote).join(" "), "--health-interval", hc.interval, "--health-timeout", hc.timeout, "--health-retries", String(hc.retries), "--health-start-period", hc.startPeriod);
  }
  const nets = (i.networksAdvanced ?? []) as { name: string; aliases?: string[] }[];
  if (nets.length > 0) {
    args.push("--network", nets[0].name);
    for (const a of nets[0].aliases ?? []) args.push("--network-alias", a);
  }
  for (const m of (i.mounts ?? []) as { type: string; source: string; target: string; readOnly?: boolean }[]) {
    args.push("--mount", `type=${m.type},source=${m.source},target=${m.target}${m.readOnly ? ",readonly" : ""}`);
  }
  for (const l of (i.labels ?? []) as { label: string; value: string }[]) args.push("--label", `${l.label}=${l.value}`);
  for (const p of (i.ports ?? []) as { internal: number; external: number; protocol: string }[]) args.push("--publish", `${p.external}:${p.internal}/${p.protocol}`);
  if (i.init) args.push("--init");
  if (i.stopTimeout !== undefined) args.push("--stop-timeout", String(i.stopTimeout));
  return [...args, image];
}

const hostDocker = (d: h.Host, args: string[], opts: { input?: string; timeoutMs?: number } = {}) => h.sh("docker", ["exec", ...(opts.input !== undefined ? ["-i"] : []), d.container, "docker", ...args], opts);

/** Creates what the render declares for one host, in the order its dependencies give; returns its replicas' short ids. */
async function deployFleet(d: h.Host, hostName: string, sshUser: string, rendered: RenderedResource[]): Promise<{ replicas: string[]; port: number }> {
  const mine = (type: string) => rendered.filter((r) => r.type === type && r.name.startsWith(`fleet-${hostName}-`));
  const labels = (r: RenderedResource) => ((r.inputs.labels ?? []) as { label: string; value: string }[]).flatMap((l) => ["--label", `${l.label}=${l.value}`]);
  for (const n of mine("docker:index/network:Network")) await hostDocker(d, ["network", "create", "--driver", String(n.inputs.driver), ...labels(n), String(n.inputs.name)]);
  for (const v of mine("docker:index/volume:Volume")) await hostDocker(d, ["volume", "create", ...labels(v), String(v.inputs.name)]);
  const configs = mine("command:local:Command").filter((c) => c.name.endsWith("-proxy-config"));
  expect(configs).toHaveLength(1);
  expect(String(configs[0].inputs.stdin)).toContain(`monitor-uri ${MONITOR_PATH}`);
  // As the command provider runs it: the create, as the SSH user, with its stdin.
  await h.sh("docker", ["exec", "-i", "-u", sshUser, d.container, "sh", "-c", String(configs[0].inputs.create)], { input: String(configs[0].inputs.stdin) });
  const containers = mine("docker:index/container:Container");
  const isProxy = (c: RenderedResource) => ((c.inputs.labels ?? []) as { label: string; value: string }[]).some((l) => l.label === "dockyard.role" && l.value === "proxy");
  // Each container's image is a RemoteImage's imageId (pulumi-docker#1431); its stand-in is the local image of that RemoteImage.
  const images = mine("docker:index/remoteImage:RemoteImage");
  const imageOf = (c: RenderedResource) => {
    const im = images.find((x) => c.inputs.image === `computed(${x.name}.imageId)`);
    if (!im) throw new Error(`${c.name}: image ${JSON.stringify(c.inputs.image)} is no imageId of this host's RemoteImages`);
    return im.name.endsWith("-proxy-image") ? PROXY : WEB;
  };
  const replicas: string[] = [];
  let port = 0;
  // Replicas first: the proxy's monitor answers 200 only once one of them passes its check.
  for (const c of [...containers.filter((x) => !isProxy(x)), ...containers.filter(isProxy)]) {
    const proxy = isProxy(c);
    const nets = (c.inputs.networksAdvanced ?? []) as { name: string; aliases?: string[] }[];
    const image = imageOf(c);
    expect(image, c.name).toBe(proxy ? PROXY : WEB);
    const id = (await hostDocker(d, ["create", ...runArgs(c, image)])).trim();
    for (const n of nets.slice(1)) await hostDocker(d, ["network", "connect", ...(n.aliases ?? []).flatMap((a) => ["--alias", a]), n.name, id]);
    await hostDocker(d, ["start", id]);
    if (proxy) {
      port = ((c.inputs.ports ?? []) as { external: number }[])[0]?.external ?? 0;
    } else {
      replicas.push(id.slice(0, 12));
      await waitFor(`${hostName}: replica ${c.name} healthy`, Number(c.inputs.waitTimeout ?? 60) * 1000, async () => (await hostDocker(d, ["inspect", "-f", "{{.State.Health.Status}}", id])).trim() === "healthy");
    }
  }
  if (replicas.length === 0 || port === 0) throw new Error(`${hostName}: the render has no replica or no published proxy port for this host`);
  return { replicas, port };
}

async function waitFor(what: string, timeoutMs: number, ok: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await ok().catch(() => false)) return;
    await sleep(500);
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
}

async function bootHost(spec: ReturnType<typeof h.distroSpec>, hostName: string, rendered: RenderedResource[]): Promise<DrillHost> {
  const input = h.hostInput(spec, hostName);
  const hostKey = h.newKeyPair(dir, `${hostName}-host-key`);
  const data = await h.createDataVolume(`${RUN}-${hostName}`);
  volumes.push(data);
  const host = await h.startHost({
    name: `dockyard-${RUN}-${hostName}`,
    userData: h.renderUserData(input),
    instanceId: `i-${RUN}-${hostName}`,
    data,
    input,
    hostPrivateKey: fs.readFileSync(hostKey.privateKey, "utf8"),
  });
  started.push(host);
  const ready = await h.waitEngineReady(host);
  await h.loadImages(host, [WEB, PROXY]);
  const { replicas, port } = await deployFleet(host, hostName, spec.os.sshUser, rendered);
  const ip = await h.containerIp(host);
  times.push(`${hostName}: engine ready ${ready.toFixed(1)} s after start, fleet up ${((Date.now() - host.startedAt) / 1000).toFixed(1)} s after start`);
  return { name: hostName, host, ip, replicas, port };
}

// ---------------------------------------------------------------------------------
// The stand-in for the target group
// ---------------------------------------------------------------------------------

interface StandIn {
  port: number;
  proc: ChildProcess;
  /** Every line of its log (stdout), with when it arrived. */
  lines: { at: number; text: string }[];
  stderr: string;
  socket: string;
}

function standInConfig(port: number, socket: string, targets: Pick<DrillHost, "name" | "ip" | "port">[]): string {
  const hc = HEALTH_CHECK;
  return [
    "global",
    "    log stdout format raw local0 info",
    `    stats socket ${socket} mode 600 level admin`,
    "",
    "defaults",
    "    mode tcp",
    "    log global",
    "    option tcplog",
    "    option log-health-checks",
    // A check's connect and read each end at the target group's timeout.
    `    timeout connect ${hc.timeout}s`,
    `    timeout check ${hc.timeout}s`,
    "    timeout client 30s",
    "    timeout server 30s",
    // One target per connection, as an NLB: no retry, no redispatch to another server.
    "    retries 0",
    "",
    "frontend nlb",
    `    bind 127.0.0.1:${port}`,
    "    default_backend targets",
    "",
    "backend targets",
    "    balance roundrobin",
    `    option httpchk GET ${hc.path}`,
    `    http-check expect status ${hc.matcher}`,
    ...targets.map((t) => `    server ${t.name} ${t.ip}:${t.port} check inter ${hc.interval}s fall ${hc.unhealthyThreshold} rise ${hc.healthyThreshold}`),
  ].join("\n") + "\n";
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function startStandIn(targets: DrillHost[]): Promise<StandIn> {
  const port = await freePort();
  const socket = path.join(dir, "stand-in.sock");
  const cfg = path.join(dir, "stand-in.cfg");
  fs.writeFileSync(cfg, standInConfig(port, socket, targets));
  await h.sh(HAPROXY, ["-c", "-q", "-f", cfg]);
  const proc = spawn(HAPROXY, ["-db", "-f", cfg], { stdio: ["ignore", "pipe", "pipe"] });
  const s: StandIn = { port, proc, lines: [], stderr: "", socket };
  // Its log (stdout): a tcplog line per connection, health checks, state changes. Its
  // stderr repeats the state changes as warnings; kept for a failure's message only.
  let buf = "";
  proc.stdout!.on("data", (chunk: Buffer) => {
    buf += chunk.toString();
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    for (const text of parts) if (text.trim()) s.lines.push({ at: Date.now(), text });
  });
  proc.stderr!.on("data", (chunk: Buffer) => (s.stderr += chunk.toString()));
  await waitFor("the stand-in's stats socket", 10_000, async () => fs.existsSync(socket));
  return s;
}

/** The stand-in's view of each server: status (UP/DOWN) and last check status (L7OK, L4TOUT, ...). */
async function serverStates(s: StandIn): Promise<Record<string, { status: string; check: string }>> {
  const csv = await new Promise<string>((resolve, reject) => {
    const c = net.connect(s.socket);
    let out = "";
    c.on("data", (d) => (out += d));
    c.on("end", () => resolve(out));
    c.on("error", reject);
    c.end("show stat\n");
  });
  const [header, ...rows] = csv.split("\n").filter(Boolean);
  const cols = header.replace(/^# /, "").split(",");
  const at = (name: string) => cols.indexOf(name);
  const out: Record<string, { status: string; check: string }> = {};
  for (const r of rows.map((x) => x.split(","))) {
    if (r[at("pxname")] === "targets" && r[at("svname")] !== "BACKEND") out[r[at("svname")]] = { status: r[at("status")], check: r[at("check_status")] };
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------

interface Shot {
  sentAt: number;
  doneAt: number;
  /** HTTP status, or 0 when no answer came (timeout, reset, refused). */
  status: number;
  body: string;
  /** The client's local port: what the stand-in's tcplog names the connection by. */
  localPort: number;
}

function shoot(port: number): Promise<Shot> {
  return new Promise((resolve) => {
    const shot: Shot = { sentAt: Date.now(), doneAt: 0, status: 0, body: "", localPort: 0 };
    const finish = (status: number, body: string) => {
      if (shot.doneAt) return;
      clearTimeout(timer);
      Object.assign(shot, { doneAt: Date.now(), status, body: body.trim() });
      resolve(shot);
    };
    const req = http.get({ host: "127.0.0.1", port, path: "/cgi-bin/whoami", agent: false }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => finish(res.statusCode ?? 0, body));
      res.on("error", (e) => finish(0, String(e)));
    });
    const timer = setTimeout(() => {
      req.destroy(new Error("timeout"));
      finish(0, "timeout");
    }, REQUEST_TIMEOUT_MS);
    req.on("socket", (sock) => sock.on("connect", () => (shot.localPort = sock.localPort ?? 0)));
    req.on("error", (e) => finish(0, String(e.message)));
  });
}

/** The status a host's proxy answers at MONITOR_PATH on the host's address (0: no answer). */
function monitorStatus(d: Pick<DrillHost, "ip" | "port">): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: d.ip, port: d.port, path: MONITOR_PATH, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(0));
  });
}

/** Open-loop load: a request every 1/RATE s (not waiting for answers) until stop() says so; bounded by maxMs. */
async function load(port: number, stop: () => boolean, maxMs: number): Promise<Shot[]> {
  const pending: Promise<Shot>[] = [];
  const t0 = Date.now();
  for (let n = 0; !stop() && Date.now() - t0 < maxMs; n++) {
    pending.push(shoot(port));
    const next = t0 + ((n + 1) * 1000) / RATE;
    await sleep(Math.max(0, next - Date.now()));
  }
  return Promise.all(pending);
}

// ---------------------------------------------------------------------------------
// The drill
// ---------------------------------------------------------------------------------

/** One run of load through the stand-in around one failure of `victim`. */
interface Phase {
  victim: DrillHost;
  survivor: DrillHost;
  t0: number;
  /** Random delay added to WARMUP_MS before the failure. */
  offsetMs: number;
  /** When the failure was set off, and when the command doing it returned. */
  actAt: number;
  actedAt: number;
  /** When the stand-in logged the victim DOWN, and (when it was brought back) UP again; 0: never. */
  downAt: number;
  upAt: number;
  rows: (Shot & { target: string; ok: boolean })[];
  failed: (Shot & { target: string; ok: boolean })[];
  /** From the failure to the sending of the last request that failed, in seconds. */
  window: number;
}

const who = (r: { body: string }) => r.body.split(" ")[0];
const since = (at: number, from: number) => (at ? `+${((at - from) / 1000).toFixed(1)} s` : "never");

/**
 * Load through the stand-in; WARMUP_MS in, `act` sets off the failure of `victim`. Once the
 * stand-in logs the victim DOWN: `bringBack` (if given) repairs it, and the load goes on
 * until the stand-in logs it UP again; then TAIL_MS more. Bounded by maxMs.
 */
async function runPhase(s: StandIn, victim: DrillHost, act: () => Promise<void>, maxMs: number, bringBack?: () => Promise<void>): Promise<Phase> {
  const survivor = hosts.find((d) => d !== victim)!;
  // Both targets passed their last check (an NLB routes to a target once it passed one).
  await waitFor("both targets healthy in the stand-in", (HEALTH_CHECK.interval + HEALTH_CHECK.timeout) * 1000 * HEALTH_CHECK.healthyThreshold * 2, async () => {
    const st = await serverStates(s);
    return hosts.every((d) => st[d.name]?.status === "UP" && st[d.name]?.check === "L7OK");
  });
  const ev = { actAt: 0, actedAt: 0, downAt: 0, upAt: 0 };
  const state = (word: "DOWN" | "UP", after: number) => s.lines.find((l) => l.at >= after && l.text.includes(`Server targets/${victim.name} is ${word}`))?.at ?? 0;
  let repair: Promise<void> = Promise.resolve();
  const t0 = Date.now();
  // Where in the stand-in's check cycle the failure falls decides the window: a random
  // point, so that runs sample the range (the bounds hold for every point).
  const offsetMs = Math.round(Math.random() * HEALTH_CHECK.interval * 1000);
  const trigger = (async () => {
    await sleep(WARMUP_MS + offsetMs);
    ev.actAt = Date.now();
    await act();
    ev.actedAt = Date.now();
  })();
  const shots = await load(
    s.port,
    () => {
      if (!ev.actAt) return false;
      if (!ev.downAt && (ev.downAt = state("DOWN", ev.actAt)) && bringBack) repair = bringBack();
      if (bringBack && ev.downAt && !ev.upAt) ev.upAt = state("UP", ev.downAt);
      const settled = bringBack ? ev.upAt : ev.downAt;
      return settled > 0 && Date.now() - settled > TAIL_MS;
    },
    maxMs + offsetMs,
  );
  await trigger;
  await repair;
  // The stand-in logs a connection when it ends: a connect to a dead host ends at `timeout connect`.
  await sleep(HEALTH_CHECK.timeout * 1000 + 1000);

  // Which target the stand-in sent each request to, from its tcplog (by the client's port).
  const routed = new Map<number, string[]>();
  for (const l of s.lines.filter((x) => x.at >= t0)) {
    const m = /^127\.0\.0\.1:(\d+) \[[^\]]+\] nlb targets\/(\S+) /.exec(l.text);
    if (m) routed.set(Number(m[1]), [...(routed.get(Number(m[1])) ?? []), m[2]]);
  }
  const rows = shots.map((x) => ({ ...x, target: routed.get(x.localPort)?.shift() ?? "?", ok: x.status === 200 }));
  const failed = rows.filter((r) => !r.ok);
  const window = failed.length ? (failed[failed.length - 1].sentAt - ev.actAt) / 1000 : 0;
  return { victim, survivor, t0, offsetMs, ...ev, rows, failed, window };
}

/** The phase in a few lines: counts, kinds of failure, the window, the stand-in's checks of the victim. */
function report(title: string, p: Phase, bound: number, s: StandIn): void {
  // Per kind of failure: how many, and when they were sent (seconds after the failure).
  const kinds: Record<string, number[]> = {};
  for (const r of p.failed) (kinds[r.status ? `HTTP ${r.status}` : r.body] ??= []).push((r.sentAt - p.actAt) / 1000);
  const after = p.rows.filter((r) => r.sentAt > p.actAt + p.window * 1000);
  const checks = s.lines.filter((l) => l.at >= p.actAt && l.text.includes(`targets/${p.victim.name}`) && !l.text.startsWith("127.0.0.1:"));
  console.log(
    [
      `${title}: ${p.rows.length} requests at ${RATE}/s over ${((p.rows[p.rows.length - 1].sentAt - p.t0) / 1000).toFixed(1)} s; ${p.victim.name} failed at +${((p.actAt - p.t0) / 1000).toFixed(1)} s (warm-up + random ${(p.offsetMs / 1000).toFixed(1)} s; the command took ${((p.actedAt - p.actAt) / 1000).toFixed(1)} s)`,
      `  failed: ${p.failed.length} (${Object.entries(kinds).map(([k, at]) => `${at.length} ${k} sent +${at[0].toFixed(1)}..+${at[at.length - 1].toFixed(1)} s`).join(", ") || "none"}), sent to: ${[...new Set(p.failed.map((r) => r.target))].join(", ") || "-"}`,
      `  window from the failure to the last failed request: ${p.window.toFixed(1)} s (bound ${bound} s); stand-in: ${p.victim.name} DOWN ${since(p.downAt, p.actAt)}${p.upAt ? `, UP again ${since(p.upAt, p.actAt)}` : ""}`,
      `  after the window: ${after.length} requests, ${after.filter((r) => r.ok).length} answered 200`,
      `  stand-in's checks of ${p.victim.name} after the failure:`,
      ...checks.map((l) => `    ${since(l.at, p.actAt)} ${l.text}`),
    ].join("\n"),
  );
}

/** What every phase must show: bounded failures, all of them at the victim, the survivor serving throughout. */
function expectDrained(p: Phase, bound: number): void {
  const { victim, survivor, rows, failed } = p;
  // Before the failure, both hosts answered and nothing failed.
  const before = rows.filter((r) => r.sentAt < p.actAt);
  expect(before.length).toBeGreaterThan(RATE * (WARMUP_MS / 1000) * 0.5);
  expect(before.filter((r) => !r.ok)).toEqual([]);
  for (const d of hosts) expect(before.some((r) => d.replicas.includes(who(r))), `${d.name} answered before the failure`).toBe(true);
  // The failure cost requests (the victim was getting traffic), and only for a bounded window.
  expect(failed.length).toBeGreaterThan(0);
  expect(p.window).toBeLessThanOrEqual(bound);
  expect(p.downAt, "the stand-in took the victim out").toBeGreaterThan(0);
  expect((p.downAt - p.actAt) / 1000).toBeLessThanOrEqual(bound);
  // Every failed request was one the stand-in sent to the victim; none sent to the survivor failed.
  expect(failed.map((r) => r.target)).toEqual(failed.map(() => victim.name));
  expect(rows.filter((r) => r.target === survivor.name && !r.ok)).toEqual([]);
  // After the window every request succeeded.
  const after = rows.filter((r) => r.sentAt > p.actAt + p.window * 1000);
  expect(after.length).toBeGreaterThan(RATE * (TAIL_MS / 1000) * 0.5);
  expect(after.filter((r) => !r.ok)).toEqual([]);
  // The survivor answered throughout: in every 2-second slice of the run.
  const end = rows[rows.length - 1].sentAt;
  for (let from = p.t0; from + 2000 <= end; from += 2000) {
    const slice = rows.filter((r) => r.sentAt >= from && r.sentAt < from + 2000);
    expect(slice.some((r) => r.ok && survivor.replicas.includes(who(r))), `the survivor answered in [+${(from - p.t0) / 1000}, +${(from - p.t0) / 1000 + 2}) s`).toBe(true);
  }
}

let standIn: StandIn | undefined;
/** The rendered proxy configuration's own check timing: `inter`, `fall` of its servers and `timeout connect`. */
let proxyCheck = { inter: 0, fall: 0, connect: 0 };

beforeAll(async () => {
  h.assertHostImage();
  for (const image of [WEB, PROXY]) await h.sh("docker", ["image", "inspect", image]).catch(() => {
    throw new Error(`image ${image} is missing: run bash test/infra/up.sh (test/infra/20-fleet-images.sh builds it)`);
  });
  await h.reapStale();
  dir = h.scratchDir("dockyard-drill");
  const spec = h.distroSpec(STACK);
  const rendered = (await renderStack(STACK)).resources;
  const names = spec.hostGroups.flatMap((g) => Array.from({ length: g.count }, (_, n) => `${STACK}-${g.name}-${n + 1}`));
  if (names.length !== 2) throw new Error(`the drill needs a stack with two hosts; ${STACK} has ${names.join(", ")}`);
  const config = String(rendered.find((r) => r.name === `fleet-${names[0]}-proxy-config`)?.inputs.stdin ?? "");
  const server = / check inter (\d+)s .*fall (\d+) /.exec(config);
  const connect = /timeout connect (\d+)(ms|s)\b/.exec(config);
  if (!server || !connect) throw new Error(`cannot read the proxy's check timing from its rendered configuration:\n${config}`);
  proxyCheck = { inter: Number(server[1]), fall: Number(server[2]), connect: Number(connect[1]) / (connect[2] === "ms" ? 1000 : 1) };
  // Both hosts boot at once: the boot is most of this file's time.
  const booted = await Promise.allSettled(names.map((n) => bootHost(spec, n, rendered)));
  const failed = booted.filter((b): b is PromiseRejectedResult => b.status === "rejected");
  if (failed.length > 0) throw new Error(failed.map((f) => String(f.reason)).join("\n\n"));
  for (const b of booted) if (b.status === "fulfilled") hosts.push(b.value);
  console.log(`drill hosts:\n  ${times.join("\n  ")}`);
  // Each host's proxy answers its monitor on its own address before the stand-in starts.
  for (const d of hosts) await waitFor(`${d.name}'s monitor`, 30_000, async () => (await monitorStatus(d)) === 200);
  standIn = await startStandIn(hosts);
}, 600_000);

afterAll(async () => {
  if (standIn) {
    standIn.proc.kill("SIGTERM");
    if (standIn.stderr.trim()) console.log(`stand-in's stderr:\n${standIn.stderr.trim()}`);
  }
  for (const x of started) await h.removeHost(x);
  for (const v of volumes) await h.destroyDataVolume(v);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

const getStandIn = (): StandIn => {
  if (!standIn) throw new Error("the stand-in did not start");
  return standIn;
};

describe("host failure drill: two hosts behind a stand-in for the target group", () => {
  it("the stand-in checks what the target group checks (HTTP, traffic port, the monitor path, matcher 200)", () => {
    // If the front door's check changes kind, the stand-in's config must change with it.
    expect(HEALTH_CHECK.protocol).toBe("HTTP");
    expect(HEALTH_CHECK.port).toBe("traffic-port");
    expect(HEALTH_CHECK.path).toBe(MONITOR_PATH);
    const cfg = standInConfig(8080, "/s", [{ name: "a", ip: "10.0.0.1", port: 80 }]);
    expect(cfg).toContain(`option httpchk GET ${MONITOR_PATH}\n`);
    expect(cfg).toContain(`server a 10.0.0.1:80 check inter ${HEALTH_CHECK.interval}s fall ${HEALTH_CHECK.unhealthyThreshold} rise ${HEALTH_CHECK.healthyThreshold}\n`);
    expect(cfg).not.toMatch(/redispatch/);
  });

  /**
   * Engine alive, every replica on the host stopped: its proxy notices within fall x (inter +
   * timeout connect) of its own checks, then answers 503 at the monitor, which fails each
   * stand-in check at once: out within unhealthyThreshold x interval after that, plus 2 s of
   * slack. Clients meanwhile time out (before the proxy noticed) or get its 503. Then the
   * replica is started again and the host must return without a failed request.
   */
  it("a live host whose replicas all stopped: its 503s end within the proxy's detection + unhealthyThreshold x interval; it returns without a failure", async () => {
    const s = getStandIn();
    const victim = hosts[0];
    const detection = proxyCheck.fall * (proxyCheck.inter + proxyCheck.connect);
    const bound = detection + HEALTH_CHECK.unhealthyThreshold * HEALTH_CHECK.interval + 2;
    const replicas = victim.replicas;
    const p = await runPhase(
      s,
      victim,
      async () => void (await hostDocker(victim.host, ["stop", "-t", "1", ...replicas])),
      WARMUP_MS + (bound + 2 * HEALTH_CHECK.interval * HEALTH_CHECK.healthyThreshold + 30) * 1000 + TAIL_MS,
      async () => void (await hostDocker(victim.host, ["start", ...replicas])),
    );
    report("replicas stopped", p, bound, s);
    expectDrained(p, bound);
    // Until the proxy notices, a request meets a stopped replica and waits for the proxy's
    // connect timeout (and its retries), past the client's; after that the proxy answers 503 at once.
    expect(p.failed.filter((r) => r.status !== 503 && r.sentAt > p.actAt + detection * 1000)).toEqual([]);
    expect(p.failed.some((r) => r.status === 503)).toBe(true);
    // Back: the stand-in took the host in again, and it answered again without a failed request.
    expect(p.upAt, "the stand-in took the host back").toBeGreaterThan(0);
    const back = p.rows.filter((r) => r.sentAt > p.upAt);
    expect(back.some((r) => victim.replicas.includes(who(r)))).toBe(true);
    expect(back.filter((r) => !r.ok)).toEqual([]);
  }, 240_000);

  it(`kill one host mid-load: failures end within worstCaseDrainSeconds (${worstCaseDrainSeconds()} s) + ${SLACK_SECONDS} s, the other host serves throughout`, async () => {
    const s = getStandIn();
    const victim = hosts[1];
    const p = await runPhase(s, victim, async () => void (await h.sh("docker", ["kill", victim.host.container])), WARMUP_MS + (BOUND_SECONDS + 15) * 1000 + TAIL_MS);
    report("host killed", p, BOUND_SECONDS, s);
    expectDrained(p, BOUND_SECONDS);
    // After the window, every answer came from the survivor's replicas.
    expect(p.rows.filter((r) => r.sentAt > p.actAt + p.window * 1000).every((r) => p.survivor.replicas.includes(who(r)))).toBe(true);
    const st = await serverStates(s);
    expect(st[victim.name]?.status).toMatch(/^DOWN/);
    expect(st[p.survivor.name]?.status).toBe("UP");
  }, 180_000);
});
