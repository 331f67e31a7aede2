/**
 * `dockyard smoke` against real HTTP servers on loopback. Each "host" of the test stack is
 * its own loopback address (127.0.0.1, 127.0.0.2) with a node:http server on it, and the
 * outputs file points each host's publicIp there. What differs from production: the
 * publish port. Port 80 needs root, so the test's copy of the environment definition
 * publishes `web` on a free high port the servers listen on; everything else (loading the
 * stack and environment, reading the outputs, the retries, fetch, the report, the exit
 * code) runs as shipped, with no seam.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { readEnvironmentFile, STACKS_DIR } from "../../stacks";
import { MIN_RETRY_MS, probe, runSmoke, type SmokeArgs, type SmokeReport } from "../../scripts/smoke";
import { cli } from "./cli";

const HOSTS = { "test-app-1": "127.0.0.1", "test-app-2": "127.0.0.2" } as const;
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

let dir: string;
let port: number;
let servers: http.Server[] = [];
const seen: Record<string, string[]> = {};

function listen(address: string, p: number, handler: Handler): Promise<http.Server> {
  return new Promise((resolve, reject) => {
    const s = http.createServer((req, res) => {
      (seen[address] ??= []).push(req.url ?? "");
      handler(req, res);
    });
    s.once("error", reject);
    s.listen(p, address, () => resolve(s));
    servers.push(s);
  });
}
const answer = (status: number): Handler => (_req, res) => {
  res.statusCode = status;
  res.end(status === 200 ? "ok" : "not yet");
};

/** Servers for the hosts given (a host left out has none: connection refused). */
async function serve(handlers: Partial<Record<keyof typeof HOSTS, Handler>>): Promise<void> {
  for (const [host, h] of Object.entries(handlers)) await listen(HOSTS[host as keyof typeof HOSTS], port, h!);
}

/** The environment definition with web published on `p`, plus an unpublished worker; the test stack with the worker's digest. */
function writeFixture(p: number): void {
  const env = structuredClone(readEnvironmentFile("test")) as Record<string, any>;
  env.services.web.publishPort = p;
  env.services.worker = { ...structuredClone(env.services.web), repository: "worker" };
  delete env.services.worker.publishPort;
  fs.writeFileSync(path.join(dir, "environment.yaml"), YAML.stringify(env));
  const stack = YAML.parse(fs.readFileSync(path.join(STACKS_DIR, "Pulumi.test.yaml"), "utf8"));
  stack.config["dockyard:images"].worker = `sha256:${"ab".repeat(32)}`;
  fs.writeFileSync(path.join(dir, "Pulumi.test.yaml"), YAML.stringify(stack));
}

function writeOutputs(outputs: unknown, name = "outputs.json"): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof outputs === "string" ? outputs : JSON.stringify(outputs));
  return file;
}
/** What `pulumi stack output --json --stack test` prints after a deploy (abridged). */
const OUTPUTS = {
  stack: "test",
  region: "eu-west-1",
  hostsByName: Object.fromEntries(Object.entries(HOSTS).map(([h, ip]) => [h, { group: "app", publicIp: ip, sshUser: "admin" }])),
  services: {
    web: { digest: `sha256:${"4f".repeat(32)}`, replicas: 2, hosts: Object.keys(HOSTS) },
    worker: { digest: `sha256:${"ab".repeat(32)}`, replicas: 2, hosts: Object.keys(HOSTS) },
  },
};

async function smoke(args: Partial<SmokeArgs> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runSmoke(
    { stack: "test", outputs: writeOutputs(OUTPUTS), timeout: 4, interval: 0.2, json: false, stacksDir: dir, environment: path.join(dir, "environment.yaml"), ...args },
    (s) => void (out += s),
    (s) => void (err += s),
  );
  return { code, out, err };
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-smoke-"));
  // A free port on 127.0.0.1; the same number is free on 127.0.0.2 (nothing else binds there).
  const probe = await listen("127.0.0.1", 0, answer(200));
  port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  servers = [];
  for (const k of Object.keys(seen)) delete seen[k];
  writeFixture(port);
});
afterEach(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("dockyard smoke", () => {
  it("all healthy: one ok line per service x host at publicIp:publishPort<health.path>, the unpublished service listed, exit 0", async () => {
    await serve({ "test-app-1": answer(200), "test-app-2": answer(204) });
    const r = await smoke();
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`web\\s+test-app-1\\s+http://127\\.0\\.0\\.1:${port}/healthz\\s+ok \\(HTTP 200\\)\\s+1 attempt\\s+\\d+\\.\\ds`));
    expect(r.out).toMatch(new RegExp(`web\\s+test-app-2\\s+http://127\\.0\\.0\\.2:${port}/healthz\\s+ok \\(HTTP 204\\)`));
    expect(r.out).toMatch(/worker\s+\(not checked: no publishPort: not reachable from outside\)/);
    expect(r.out).toMatch(/2 ok, 0 failed, 1 not checked\./);
    expect(seen["127.0.0.1"]).toEqual(["/healthz"]);
    expect(seen["127.0.0.2"]).toEqual(["/healthz"]);
  });

  it("retries: a host that answers 503 twice and then 200 passes on its third attempt", async () => {
    let n = 0;
    await serve({ "test-app-1": answer(200), "test-app-2": (req, res) => answer(++n <= 2 ? 503 : 200)(req, res) });
    const r = await smoke({ json: true });
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as SmokeReport;
    expect(report.ok).toBe(true);
    const h2 = report.results.find((x) => x.host === "test-app-2")!;
    expect(h2).toMatchObject({ service: "web", outcome: "ok", status: 200, attempts: 3 });
    expect(report.results.find((x) => x.host === "test-app-1")).toMatchObject({ outcome: "ok", attempts: 1 });
    expect(report.skipped).toEqual([{ service: "worker", reason: "no publishPort: not reachable from outside" }]);
  });

  it("a host that keeps failing is retried until the deadline, then reported with its status: exit 1", async () => {
    await serve({ "test-app-1": answer(200), "test-app-2": answer(500) });
    const started = Date.now();
    const r = await smoke({ timeout: 1.5, interval: 0.2 });
    expect(r.code).toBe(1);
    // It gives up at the deadline (less one interval), not before and not much after.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_200);
    expect(Date.now() - started).toBeLessThan(4_000);
    const line = r.out.split("\n").find((l) => l.includes("test-app-2"))!;
    expect(line).toMatch(new RegExp(`^  web\\s+test-app-2\\s+http://127\\.0\\.0\\.2:${port}/healthz\\s+FAILED \\(HTTP 500\\)\\s+(\\d+) attempts\\s+\\d+\\.\\ds$`));
    // Retried (the first fetch of a process loads undici, which on a busy machine eats into the deadline).
    expect(Number(/(\d+) attempts/.exec(line)![1])).toBeGreaterThanOrEqual(2);
    expect(seen["127.0.0.2"].length).toBe(Number(/(\d+) attempts/.exec(line)![1]));
    expect(r.out).toMatch(/1 ok, 1 failed, 1 not checked\./);
  });

  it("a retry the deadline cuts short keeps the host's last answer: 500, then no answer before the deadline, is reported as HTTP 500", async () => {
    let n = 0;
    // First request: 500 at once; every later one: never answered (the deadline cuts it).
    await serve({ "test-app-1": (req, res) => (++n === 1 ? answer(500)(req, res) : undefined) });
    const target = { service: "web", host: "test-app-1", url: `http://127.0.0.1:${port}/healthz` };
    const r = await probe(target, { deadline: Date.now() + 1_000, intervalMs: 100 });
    expect(r).toMatchObject({ outcome: "failed", status: 500 });
    expect(r.error).toBeUndefined();
    expect(r.attempts).toBe(2);
    expect(seen["127.0.0.1"]).toHaveLength(2);
  });

  it(`no retry is started with less than ${MIN_RETRY_MS} ms left before the deadline (it could only end in "no answer")`, async () => {
    await serve({ "test-app-1": answer(500) });
    const target = { service: "web", host: "test-app-1", url: `http://127.0.0.1:${port}/healthz` };
    // Deadline 300 ms away, 100 ms between attempts: after the first answer and the sleep, under 250 ms are left.
    const r = await probe(target, { deadline: Date.now() + MIN_RETRY_MS + 50, intervalMs: 100 });
    expect(r).toMatchObject({ outcome: "failed", status: 500, attempts: 1 });
    expect(seen["127.0.0.1"]).toHaveLength(1);
  });

  it("connection refused (no proxy listening) is reported as such: exit 1", async () => {
    await serve({ "test-app-1": answer(200) });
    const r = await smoke({ timeout: 1, json: true });
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out) as SmokeReport;
    expect(report.ok).toBe(false);
    expect(report.results.find((x) => x.host === "test-app-2")).toMatchObject({ outcome: "failed", error: "connection refused" });
    expect(report.results.find((x) => x.host === "test-app-2")!.status).toBeUndefined();
  });

  it("a server that never answers fails with the request timeout, not a hang", async () => {
    await serve({ "test-app-1": answer(200), "test-app-2": () => undefined });
    const started = Date.now();
    const r = await smoke({ timeout: 1, json: true });
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(JSON.parse(r.out).results.find((x: { host: string }) => x.host === "test-app-2").error).toMatch(/^no answer within \d\.\ds$/);
  });

  it("a front door in the outputs is asked too, on the same port and path", async () => {
    await serve({ "test-app-1": answer(200), "test-app-2": answer(200) });
    const file = writeOutputs({ ...OUTPUTS, frontDoor: { dnsName: "localhost" } }, "fd.json");
    const r = await smoke({ outputs: file, json: true });
    // localhost resolves to 127.0.0.1 here (or ::1, where nothing listens: then it fails, which the test allows but names).
    const fd = (JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "frontDoor")!;
    expect(fd.url).toBe(`http://localhost:${port}/healthz`);
    expect(fd.outcome === "ok" || fd.error === "connection refused").toBe(true);
  });

  describe("bad input: exit 2, one line naming the file and what is wrong, no request made", () => {
    const cases: [string, unknown, RegExp][] = [
      ["not JSON", '{"hostsByName": ', /: not JSON \(/],
      ["not an object", "[1, 2]", /: not a JSON object of stack outputs/],
      ["no hostsByName", { services: OUTPUTS.services }, /: hostsByName: missing or not an object/],
      ["a host missing from hostsByName", { ...OUTPUTS, hostsByName: { "test-app-1": OUTPUTS.hostsByName["test-app-1"] } }, /: services\.web\.hosts names "test-app-2", which is not in hostsByName/],
      ["a publicIp that is no address", { ...OUTPUTS, hostsByName: { ...OUTPUTS.hostsByName, "test-app-2": { publicIp: "http://x y" } } }, /: hostsByName\.test-app-2\.publicIp: "http:\/\/x y" is not an IP address or DNS name/],
      ["hosts not a list", { ...OUTPUTS, services: { ...OUTPUTS.services, web: { hosts: "test-app-1" } } }, /: services\.web\.hosts: missing or not a list of host names/],
      ["another stack's outputs", { ...OUTPUTS, stack: "prod" }, /: these are the outputs of stack "prod", not "test"/],
    ];
    it.each(cases)("%s", async (_name, outputs, message) => {
      await serve({ "test-app-1": answer(200), "test-app-2": answer(200) });
      const file = writeOutputs(outputs, "bad.json");
      const r = await smoke({ outputs: file });
      expect(r.code).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toContain(file);
      expect(r.err).toMatch(message);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(seen).toEqual({});
    });
    it("a missing outputs file", async () => {
      const file = path.join(dir, "nope.json");
      const r = await smoke({ outputs: file });
      expect(r.code).toBe(2);
      expect(r.err).toBe(`${file}: cannot read the outputs file (no such file)\n`);
    });
  });
});

describe("dockyard smoke, run as the CLI", () => {
  const base = () => ["smoke", "test", "--stacks-dir", dir, "--environment", path.join(dir, "environment.yaml"), "--interval", "0.2"];

  it("healthy: exit 0 and the JSON report; a failing host: exit 1", async () => {
    await serve({ "test-app-1": answer(200), "test-app-2": answer(200) });
    const ok = await cli([...base(), "--outputs", writeOutputs(OUTPUTS), "--json"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as SmokeReport).results.map((x) => [x.host, x.outcome])).toEqual([
      ["test-app-1", "ok"],
      ["test-app-2", "ok"],
    ]);
    expect(ok.stderr).toMatch(/Checking 2 endpoints of stack test/);
    const file = writeOutputs({ ...OUTPUTS, hostsByName: { ...OUTPUTS.hostsByName, "test-app-2": { publicIp: "127.0.0.3" } } }, "moved.json");
    const failed = await cli([...base(), "--outputs", file, "--timeout", "1"]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/web\s+test-app-2\s+http:\/\/127\.0\.0\.3:\d+\/healthz\s+FAILED \(connection refused\)/);
  }, 60_000);

  it("bad input: a malformed outputs file and an unknown stack exit 2 with one line, no trace", async () => {
    const file = writeOutputs("not json", "bad.json");
    const bad = await cli([...base(), "--outputs", file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toEqual([expect.stringMatching(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: not JSON \\(`))]);
    const unknown = await cli(["smoke", "nosuchstack", "--outputs", file]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/stack "nosuchstack": stacks\/Pulumi\.nosuchstack\.yaml: no such stack file/);
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);

  it("without --outputs it runs `pulumi stack output --json --stack <stack>` (a stand-in pulumi on PATH) and checks what it prints", async () => {
    await serve({ "test-app-1": answer(200), "test-app-2": answer(200) });
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    const outputsFile = writeOutputs(OUTPUTS);
    fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\necho "$@" > '${dir}/pulumi-args'\ncat '${outputsFile}'\n`, { mode: 0o755 });
    const r = await cli(base(), { PATH: `${bin}${path.delimiter}${process.env.PATH}` });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, "pulumi-args"), "utf8").trim()).toBe("stack output --json --stack test");
    expect(r.stdout).toMatch(/2 ok, 0 failed, 1 not checked\./);
    // The command failing (not logged in, no such stack) is bad input with its last line of stderr.
    fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\necho "error: no stack named 'test' found" >&2\nexit 255\n`, { mode: 0o755 });
    const failing = await cli(base(), { PATH: `${bin}${path.delimiter}${process.env.PATH}` });
    expect(failing.code).toBe(2);
    expect(failing.stderr.trim()).toBe("pulumi stack output --json --stack test: failed: error: no stack named 'test' found (or pass the outputs with --outputs FILE)");
  }, 60_000);
});
