/**
 * The per-host proxy's retries against the real HAProxy (Debian bookworm's 2.6, the
 * proxy images' major version; installed by test/infra/20-fleet-images.sh), run as a plain
 * process on loopback with the configuration renderHaproxyConfig renders:
 *  - replicas are found the production way, by DNS: a small DNS server here answers the
 *    service name with two loopback addresses (127.0.0.1 and 127.0.0.2, one Node HTTP
 *    replica on each, same port), in place of Docker's embedded DNS (ProxyOptions.dns);
 *  - the replicas count the requests they receive and can answer 503 to the next one.
 * Proven: a POST that a replica answered 503 reaches the replicas exactly once and the
 * client gets the 503; a GET that met a 503 is replayed on the other replica and
 * succeeds; a POST whose connection fails (replica gone, still UP in HAProxy's view) is
 * retried on the other replica; the same test on the config without the method rule
 * does see the POST twice (so the test can fail). `haproxy -c` accepts the proxy config
 * of every shipped stack as the program renders it.
 *
 * Not proven here: HAProxy inside the proxy image and Docker's DNS (fleet.int.test.ts runs
 * the image); the config differs from production in its ports, DNS address and, in the
 * connection-failure case only, `fall`; response timeouts (`timeout server 30s`) and
 * empty answers are not exercised, only a 503 and a refused connection.
 */
import { describe, it, expect } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { servingGateCommand } from "../../components/rollout";
import { MONITOR_PATH, PROXY_CONFIG_PATH, renderHaproxyConfig, type ProxyOptions, type ProxyRoute } from "../../components/proxy";
import { writeConfigCommand } from "../../components/fleet";
import { renderStack } from "../../scripts/lib/render";
import { STACKS } from "../../stacks";

const HAPROXY = "/usr/sbin/haproxy";
const REPLICA_ADDRESSES = ["127.0.0.1", "127.0.0.2"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------
// DNS: answers A queries for one name with fixed addresses (RFC 1035 wire format)
// ---------------------------------------------------------------------------------

async function startDns(name: string, addresses: string[]): Promise<{ address: string; close: () => void }> {
  const sock = dgram.createSocket("udp4");
  sock.on("message", (q, rinfo) => {
    if (q.length < 12) return;
    let off = 12;
    const labels: string[] = [];
    while (off < q.length && q[off] !== 0) {
      labels.push(q.subarray(off + 1, off + 1 + q[off]).toString("ascii"));
      off += 1 + q[off];
    }
    const qtype = q.readUInt16BE(off + 1);
    const question = q.subarray(12, off + 5);
    const known = labels.join(".").toLowerCase() === name;
    const answers = known && qtype === 1 ? addresses : [];
    const header = Buffer.alloc(12);
    header.writeUInt16BE(q.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8180 | (known ? 0 : 3), 2); // response, recursion available; NXDOMAIN if unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const records = answers.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(1, 6); // TTL
      rr.writeUInt16BE(4, 10);
      ip.split(".").forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
      return rr;
    });
    sock.send(Buffer.concat([header, question, ...records]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  return { address: `127.0.0.1:${sock.address().port}`, close: () => sock.close() };
}

// ---------------------------------------------------------------------------------
// Replicas: count what they receive; the next non-health request may get a 503
// ---------------------------------------------------------------------------------

interface Replica {
  name: string;
  server: http.Server;
  /** Requests other than health checks, as "METHOD /path". */
  seen: string[];
  /** What it answered: "METHOD /path status". */
  answered: string[];
  health: number;
}

interface Replicas {
  port: number;
  list: Replica[];
  /** The next request (on any replica) gets a 503. */
  failNext: boolean;
  count: (what: string) => number;
}

async function listen(server: http.Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
}

async function freePort(host = "0.0.0.0"): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function startReplicas(healthPath: string): Promise<Replicas> {
  const state: Replicas = { port: 0, list: [], failNext: false, count: (w) => state.list.reduce((n, r) => n + r.seen.filter((s) => s === w).length, 0) };
  for (let attempt = 0; attempt < 20 && state.list.length < REPLICA_ADDRESSES.length; attempt++) {
    for (const r of state.list) r.server.close();
    state.list = [];
    state.port = await freePort("127.0.0.1");
    try {
      for (const [i, addr] of REPLICA_ADDRESSES.entries()) {
        const replica: Replica = { name: `r${i}`, server: http.createServer(), seen: [], answered: [], health: 0 };
        replica.server.on("request", (req, res) => {
          req.resume();
          req.on("end", () => {
            if (req.url === healthPath) {
              replica.health++;
              res.end("ok");
              return;
            }
            replica.seen.push(`${req.method} ${req.url}`);
            const status = state.failNext ? 503 : 200;
            state.failNext = false;
            replica.answered.push(`${req.method} ${req.url} ${status}`);
            res.writeHead(status, { "content-type": "text/plain" }).end(replica.name);
          });
        });
        await listen(replica.server, state.port, addr);
        state.list.push(replica);
      }
    } catch {
      // The port was free on 127.0.0.1 but not on 127.0.0.2: try another.
    }
  }
  if (state.list.length < REPLICA_ADDRESSES.length) throw new Error("no port free on both replica addresses");
  return state;
}

// ---------------------------------------------------------------------------------
// HAProxy with a rendered configuration
// ---------------------------------------------------------------------------------

interface Harness {
  replicas: Replicas;
  /** The configuration haproxy runs. */
  config: string;
  /** The published port (the frontend, and its monitor). */
  port: number;
  request: (method: string, urlPath: string) => Promise<{ status: number; body: string }>;
  stop: () => Promise<void>;
}

/**
 * Starts DNS, two replicas and haproxy with the rendered config (edited by `edit`, if
 * given), and waits until both replicas take traffic through the proxy.
 */
async function startHarness(opts: ProxyOptions = {}, edit: (cfg: string) => string = (c) => c): Promise<Harness> {
  const replicas = await startReplicas("/healthz");
  const dns = await startDns("web", REPLICA_ADDRESSES);
  const route: ProxyRoute = { service: "web", publishPort: await freePort(), containerPort: replicas.port, healthPath: "/healthz", replicas: 2 };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-proxy-"));
  const cfgFile = path.join(dir, "haproxy.cfg");
  const config = edit(renderHaproxyConfig([route], { ...opts, dns: dns.address }));
  fs.writeFileSync(cfgFile, config);
  const log: string[] = [];
  const proc: ChildProcess = spawn(HAPROXY, ["-db", "-f", cfgFile], { stdio: ["ignore", "pipe", "pipe"] });
  proc.stdout!.on("data", (d: Buffer) => log.push(d.toString()));
  proc.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
  const stop = async () => {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    }
    dns.close();
    for (const r of replicas.list) {
      r.server.closeAllConnections();
      r.server.close();
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const request = (method: string, urlPath: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port: route.publishPort, method, path: urlPath, agent: false }, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      });
      req.on("error", reject);
      req.end(method === "POST" ? "order=1" : undefined);
    });
  try {
    // Ready when each replica has answered a request through the proxy (resolved by DNS,
    // health checks passed, in the round robin).
    const deadline = Date.now() + 20_000;
    while (!replicas.list.every((r) => r.seen.includes("GET /probe"))) {
      if (proc.exitCode !== null) throw new Error(`haproxy exited ${proc.exitCode}: ${log.join("")}`);
      if (Date.now() > deadline) throw new Error(`replicas not reachable through haproxy in 20 s: ${log.join("")}`);
      await request("GET", "/probe").catch(() => undefined);
      await sleep(200);
    }
    for (const r of replicas.list) r.seen.length = r.answered.length = 0;
  } catch (e) {
    await stop();
    throw e;
  }
  return { replicas, config, port: route.publishPort, request, stop };
}

describe("the rendered proxy config in the real HAProxy", () => {
  it("a POST answered 503 reaches the replicas once and the client gets the 503; a GET answered 503 is replayed and succeeds", async () => {
    const h = await startHarness();
    try {
      h.replicas.failNext = true;
      expect(await h.request("POST", "/orders")).toMatchObject({ status: 503 });
      await sleep(500); // a replay, had there been one, would have arrived by now
      expect(h.replicas.count("POST /orders")).toBe(1);

      h.replicas.failNext = true;
      const get = await h.request("GET", "/orders");
      expect(get.status).toBe(200);
      // Sent twice: the 503 from one replica, then the 200 from the other (redispatch).
      const gets = h.replicas.list.map((r) => r.answered.filter((s) => s.startsWith("GET ")));
      expect(gets.flat().sort()).toEqual(["GET /orders 200", "GET /orders 503"]);
      expect(h.replicas.list.find((r) => r.name === get.body)!.answered).toContain("GET /orders 200");
      expect(gets.every((g) => g.length === 1)).toBe(true);

      h.replicas.failNext = true;
      expect(await h.request("HEAD", "/orders")).toMatchObject({ status: 200 });
      expect(h.replicas.count("HEAD /orders")).toBe(2);
    } finally {
      await h.stop();
    }
  });

  it("without the method rule the same POST is sent twice (the test above can fail)", async () => {
    const h = await startHarness({}, (cfg) => {
      const out = cfg.replace(/^ *http-request disable-l7-retry .*\n/m, "");
      expect(out).not.toBe(cfg);
      return out;
    });
    try {
      h.replicas.failNext = true;
      expect(await h.request("POST", "/orders")).toMatchObject({ status: 200 });
      expect(h.replicas.count("POST /orders")).toBe(2);
    } finally {
      await h.stop();
    }
  });

  it("a POST whose connection to a replica fails is retried on another replica", async () => {
    // fall 1000: the closed replica stays UP in HAProxy's view, so the round robin keeps
    // picking it and the connection really fails (with the default fall 2 it is taken
    // out within about 2 s and no request would try it).
    const h = await startHarness({ fall: 1000 });
    try {
      const [alive, gone] = h.replicas.list;
      gone.server.closeAllConnections();
      await new Promise((r) => gone.server.close(r));
      const results = [];
      // Round robin over two UP servers: at least two of these four are sent to `gone` first.
      for (let i = 0; i < 4; i++) results.push(await h.request("POST", `/orders/${i}`));
      expect(results.map((r) => [r.status, r.body])).toEqual(Array(4).fill([200, alive.name]));
      expect(alive.seen).toEqual(["POST /orders/0", "POST /orders/1", "POST /orders/2", "POST /orders/3"]);
    } finally {
      await h.stop();
    }
  });
});

/** Stops a replica (its port refuses connections, as when its container is gone). */
async function kill(r: Replica): Promise<void> {
  r.server.closeAllConnections();
  await new Promise((done) => r.server.close(done));
}

/** Starts a replica again on its address and port, with the same request handler. */
async function revive(r: Replica, port: number, address: string): Promise<void> {
  const handler = r.server.listeners("request")[0] as http.RequestListener;
  r.server = http.createServer(handler);
  await listen(r.server, port, address);
}

describe("the monitor path the load balancer checks (issue 13)", () => {
  /**
   * Polls MONITOR_PATH every 100 ms until it answers `status`; the seconds that took.
   * HAProxy's view changes only at a check, so the bound is what the rendered check timing
   * allows: a replica is DOWN after `fall` failed checks and UP after `rise` passed ones,
   * `inter` apart, the first of them up to one `inter` after the change (checks are not
   * aligned with it), plus one poll and scheduling slack.
   */
  async function until(h: Harness, status: number, limitSeconds: number): Promise<number> {
    const start = Date.now();
    for (;;) {
      const r = await h.request("GET", MONITOR_PATH).catch(() => ({ status: 0, body: "" }));
      if (r.status === status) return (Date.now() - start) / 1000;
      if (Date.now() - start > limitSeconds * 1000 + 5_000) throw new Error(`monitor still ${r.status} after ${limitSeconds + 5} s, not ${status}`);
      await sleep(100);
    }
  }

  it("answers 200, flips to 503 when every replica of the service dies and back to 200 when one returns, within the rendered check timing", async () => {
    const h = await startHarness();
    try {
      const m = /check inter (\d+)s fastinter \d+s downinter (\d+)s fall (\d+) rise (\d+)/.exec(h.config);
      expect(m, "the rendered check timing").not.toBeNull();
      const [inter, downinter, fall, rise] = m!.slice(1).map(Number);
      const slack = 0.5;
      const downBound = (fall + 1) * inter + slack;
      const upBound = (rise + 1) * downinter + slack;

      const healthy = await h.request("GET", MONITOR_PATH);
      expect(healthy.status).toBe(200);
      // Answered by HAProxy itself: no replica saw it.
      expect(h.replicas.list.flatMap((r) => r.seen)).toEqual([]);

      await kill(h.replicas.list[0]);
      // One replica left: still 200 (the host still serves the service).
      await sleep((fall + 1) * inter * 1000);
      expect((await h.request("GET", MONITOR_PATH)).status).toBe(200);

      await kill(h.replicas.list[1]);
      const down = await until(h, 503, downBound);
      await revive(h.replicas.list[1], h.replicas.port, REPLICA_ADDRESSES[1]);
      const up = await until(h, 200, upBound);
      console.log(`monitor: 200 -> 503 in ${down.toFixed(1)} s (bound ${downBound} s), 503 -> 200 in ${up.toFixed(1)} s (bound ${upBound} s)`);
      expect(down).toBeLessThanOrEqual(downBound);
      expect(up).toBeLessThanOrEqual(upBound);
      // And the service answers again through the returned replica.
      expect(await h.request("GET", "/after")).toMatchObject({ status: 200, body: h.replicas.list[1].name });
    } finally {
      await h.stop();
    }
  }, 60_000);
});

describe.each([...STACKS])("haproxy -c on the proxy config stack %s renders", (stack) => {
  it("accepts every host's config", async () => {
    const r = await renderStack(stack);
    // Each proxy mounts its configuration at PROXY_CONFIG_PATH from the host file its
    // -proxy-config command writes (the command's stdin).
    const proxies = r.resources.filter((x) => x.type === "docker:index/container:Container" && x.name.endsWith("-proxy"));
    expect(proxies.length).toBeGreaterThan(0);
    const configs = proxies.map((p) => {
      const mount = (p.inputs.mounts as { source: string; target: string }[]).find((m) => m.target === PROXY_CONFIG_PATH);
      const cmd = r.resources.find((x) => x.type === "command:local:Command" && x.name === `${p.name}-config`);
      // The command writes exactly the file the proxy mounts (fleet.ts writeConfigCommand: the write, then older files no container mounts removed).
      expect(mount && cmd && String(cmd.inputs.create) === writeConfigCommand(mount.source), p.name).toBe(true);
      return String(cmd!.inputs.stdin);
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dockyard-proxy-${stack}-`));
    try {
      for (const [i, content] of configs.entries()) {
        expect(content).toMatch(/^ +http-request disable-l7-retry unless \{ method GET HEAD OPTIONS TRACE \}$/m);
        expect(content).toContain(`    monitor-uri ${MONITOR_PATH}\n`);
        const file = path.join(dir, `haproxy-${i}.cfg`);
        fs.writeFileSync(file, content);
        // Throws (test fails with haproxy's message) on an invalid configuration.
        execFileSync(HAPROXY, ["-c", "-q", "-f", file], { stdio: ["ignore", "pipe", "pipe"] });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A host's serving gate (components/rollout/serving-gate.sh, issue 13 part 2), run the way
 * the fleet renders it (servingGateCommand, the script on stdin) against the real HAProxy with
 * the rendered configuration: here bash runs on this machine, on a host it runs over SSH.
 * What it proves: the script reads the real monitor's answers (status line and all), waits
 * while it is 503, passes once it is 200, and fails with the reason at its bound. Not proven
 * here: the same over SSH on a booted host (the fleet's host commands are, in fleet.int.test.ts).
 */
describe("the serving gate that ends a host's turn in a rollout", () => {
  const SCRIPT = path.resolve(__dirname, "../../components/rollout/serving-gate.sh");
  function gate(port: number, admit: number, timeout: number): { done: Promise<{ code: number; out: string; err: string; at: number }> } {
    const argv = servingGateCommand([port], admit, timeout).split(" ");
    expect(argv.slice(0, 3)).toEqual(["bash", "-s", "--"]);
    // The rendered command line as a shell would split it (the path is single-quoted).
    const args = argv.slice(3).map((a) => a.replace(/^'(.*)'$/, "$1"));
    const proc = spawn("bash", ["-s", "--", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    proc.stdin!.end(fs.readFileSync(SCRIPT));
    let out = "";
    let err = "";
    proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    return { done: new Promise((resolve) => proc.once("exit", (code) => resolve({ code: code ?? -1, out, err, at: Date.now() }))) };
  }

  it("waits while the monitor answers 503, passes once it answers 200, then waits the admit time; fails at its bound with the last answer", async () => {
    const h = await startHarness();
    try {
      // Healthy: passes at once, after the admit time (1 s here).
      const t0 = Date.now();
      const ok = await gate(h.port, 1, 10).done;
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out).toMatch(new RegExp(`port ${h.port} serves \\(monitor 200\\)`));
      expect(ok.at - t0).toBeGreaterThanOrEqual(1000);

      // No replica: 503 until its bound, then exit 1 naming the port and the answer.
      for (const r of h.replicas.list) await kill(r);
      for (let i = 0; i < 100 && (await h.request("GET", MONITOR_PATH)).status !== 503; i++) await sleep(200);
      const failed = await gate(h.port, 0, 3).done;
      expect(failed.code).toBe(1);
      expect(failed.err).toMatch(new RegExp(`monitor on port ${h.port} did not answer 200 within 3s \\(last answer: HTTP/1\\.[01] 503`));

      // A gate started while 503 waits, and passes only after a replica returned.
      const waiting = gate(h.port, 0, 60);
      await sleep(3000);
      const revivedAt = Date.now();
      await revive(h.replicas.list[0], h.replicas.port, REPLICA_ADDRESSES[0]);
      const passed = await waiting.done;
      expect(passed.code, passed.err).toBe(0);
      expect(passed.at).toBeGreaterThan(revivedAt);
    } finally {
      await h.stop();
    }
  }, 120_000);
});
