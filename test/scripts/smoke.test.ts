/**
 * `dockyard smoke` against real HTTP and HTTPS servers on loopback, fed the outputs of the
 * REAL program (index.ts) for the test stack, rendered under the mock runtime with the
 * cloud's values filled in (smoke-fixtures.ts deployed): the front door's dnsName is
 * 127.0.0.1, where a node:http server stands in for the load balancer (a node:https one, with
 * a certificate made here by openssl from a CA made here, when the stack has
 * dockyard:certificateArn and its listener is TLS).
 *
 * Each host is asked through its access path: smoke runs `ssh <the host's pinned options>
 * -- admin@<instance id> bash -s -- <port> <path> <wait>` with scripts/lib/host-request.sh on
 * stdin. Here `ssh` is a stand-in first on PATH that runs that command line with `sh -c` on
 * this machine, as the host named by the destination: each host is a loopback address of its
 * own (test-app-1 127.0.0.2, test-app-2 127.0.0.3) with a server for its proxy, so the
 * stand-in points the script's 127.0.0.1 at that address. What this proves: the command line
 * and stdin smoke sends, the script's request and its parsing, retries, deadlines and
 * verdicts. What it does not: ssh itself, the ProxyCommand and the host's own shell
 * (smoke-ssh.int.test.ts runs a real ssh to a real sshd).
 *
 * What differs from production: the publish port (port 80 needs root, so the test's copy of
 * the environment definition publishes `web` on a free high port).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import type { TLSSocket } from "node:tls";
import * as YAML from "yaml";
import { readEnvironmentFile, STACKS_DIR } from "../../stacks";
import { renderStack } from "../../scripts/lib/render";
import { MIN_RETRY_MS, probe, runSmoke, type SmokeArgs, type SmokeReport } from "../../scripts/smoke";
import { cli } from "./cli";
import { deployed } from "./smoke-fixtures";

/** Where each stand-in listens: the front door on 127.0.0.1, each host's proxy on its own loopback address. */
const AT = { frontDoor: "127.0.0.1", "test-app-1": "127.0.0.2", "test-app-2": "127.0.0.3" } as const;
type Place = keyof typeof AT;
/** The instance ids the deployed outputs carry (sshTarget with hostAccess ssm). */
const INSTANCE = { "test-app-1": "i-0a1b2c3d4e5f60001", "test-app-2": "i-0a1b2c3d4e5f60002" } as const;
const CERT_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0b3c6f0e-8a4e-4d4b-9c7a-5f0e2d1c3b4a";
const TLS_NAME = "smoke.test";
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

let root: string;
let dir: string;
let bin: string;
let port: number;
let OUTPUTS: Record<string, any>;
let TLS_OUTPUTS: Record<string, any>;
let servers: http.Server[] = [];
const seen: Record<string, string[]> = {};
const pathBefore = process.env.PATH;

function listen(address: string, handler: Handler, tls?: { key: string; cert: string }): Promise<http.Server> {
  return new Promise((resolve, reject) => {
    const record: Handler = (req, res) => {
      const sni = (req.socket as TLSSocket).servername;
      (seen[address] ??= []).push(tls ? `${req.url} sni=${sni} host=${req.headers.host}` : (req.url ?? ""));
      handler(req, res);
    };
    const s = tls ? https.createServer(tls, record) : http.createServer(record);
    s.once("error", reject);
    s.listen(port, address, () => resolve(s));
    servers.push(s);
  });
}
const answer = (status: number): Handler => (_req, res) => {
  res.statusCode = status;
  res.end(status === 200 ? "ok" : "not yet");
};

/** Servers for the places given (a place left out has none: connection refused). */
async function serve(handlers: Partial<Record<Place, Handler>>): Promise<void> {
  for (const [place, h] of Object.entries(handlers)) await listen(AT[place as Place], h!);
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
  // The same stack with a certificate: its front door's listener is TLS.
  stack.config["dockyard:certificateArn"] = CERT_ARN;
  fs.mkdirSync(path.join(dir, "tls"));
  fs.writeFileSync(path.join(dir, "tls", "Pulumi.test.yaml"), YAML.stringify(stack));
}

/** The stand-in ssh: the remote command line run here, as the host the destination names (see the header). */
function writeStandInSsh(): void {
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(dir, "hosts"), Object.entries(INSTANCE).map(([h, id]) => `${id} ${AT[h as Place]}\n`).join(""));
  fs.writeFileSync(
    path.join(bin, "ssh"),
    `#!/bin/bash
printf '%s\\n' "$*" >> '${dir}/ssh-calls'
dest=""; prev=""
for a in "$@"; do [ "$prev" = "--" ] && dest=$a; prev=$a; done
cmd=\${!#}
target=\${dest#*@}
addr=$(awk -v t="$target" '$1 == t { print $2 }' '${dir}/hosts')
if [ -z "$addr" ]; then echo "ssh: Could not resolve hostname $target: Name or service not known" >&2; exit 255; fi
sed "s#/dev/tcp/127\\.0\\.0\\.1/#/dev/tcp/$addr/#" | sh -c "$cmd"
`,
    { mode: 0o755 },
  );
}

/**
 * The stand-in aws: logs its arguments, then runs the answer the test wrote for this call
 * (aws-answer.<n>.sh for the n-th call, else aws-answer.sh): a shell snippet printing what
 * the AWS CLI v2 prints (the DescribeTargetHealth JSON, or an error on stderr) and exiting
 * with its return code.
 */
function writeStandInAws(): void {
  fs.writeFileSync(
    path.join(bin, "aws"),
    `#!/bin/bash
printf '%s\\n' "$*" >> '${dir}/aws-calls'
n=$(wc -l < '${dir}/aws-calls')
f='${dir}/aws-answer.sh'
[ -f '${dir}/aws-answer.'$n'.sh' ] && f='${dir}/aws-answer.'$n'.sh'
. "$f"
`,
    { mode: 0o755 },
  );
}

/** A CA and a certificate it signed for TLS_NAME, made with openssl; the CA's PEM file for --ca-file. */
function makeCertificates(): { key: string; cert: string; caFile: string } {
  const d = path.join(root, "pki");
  fs.mkdirSync(d);
  const ossl = (...args: string[]) => execFileSync("openssl", args, { cwd: d, stdio: "pipe" });
  ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=dockyard smoke test CA");
  ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", `/CN=${TLS_NAME}`);
  fs.writeFileSync(path.join(d, "ext"), `subjectAltName=DNS:${TLS_NAME}\n`);
  ossl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext");
  return { key: fs.readFileSync(path.join(d, "leaf.key"), "utf8"), cert: fs.readFileSync(path.join(d, "leaf.pem"), "utf8"), caFile: path.join(d, "ca.pem") };
}
let pki: ReturnType<typeof makeCertificates>;

function writeOutputs(outputs: unknown, name = "outputs.json"): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof outputs === "string" ? outputs : JSON.stringify(outputs));
  return file;
}

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

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-smoke-"));
  dir = path.join(root, "stacks");
  bin = path.join(root, "bin");
  fs.mkdirSync(dir);
  // A free port on 127.0.0.1; the same number is free on 127.0.0.2 and .3 (nothing else binds there).
  const s = http.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => s.once("listening", r));
  port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  writeFixture(port);
  writeStandInSsh();
  writeStandInAws();
  pki = makeCertificates();
  const environmentFile = path.join(dir, "environment.yaml");
  const [plain, tls] = await Promise.all([renderStack("test", { stacksDir: dir, environmentFile }), renderStack("test", { stacksDir: path.join(dir, "tls"), environmentFile })]);
  const given = { "test-app-nlb.dnsName": AT.frontDoor, "test-app-1-instance.id": INSTANCE["test-app-1"], "test-app-2-instance.id": INSTANCE["test-app-2"] };
  OUTPUTS = deployed(plain.outputs, given);
  TLS_OUTPUTS = deployed(tls.outputs, given);
  process.env.PATH = `${bin}${path.delimiter}${pathBefore}`;
}, 120_000);
afterAll(() => {
  process.env.PATH = pathBefore;
  fs.rmSync(root, { recursive: true, force: true });
});
beforeEach(() => {
  servers = [];
  for (const k of Object.keys(seen)) delete seen[k];
  fs.rmSync(path.join(dir, "ssh-calls"), { force: true });
  for (const f of fs.readdirSync(dir)) if (/^aws-(calls|answer)/.test(f)) fs.rmSync(path.join(dir, f));
});
afterEach(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const row = (where: string, url: string, verdict: string) => new RegExp(`web\\s+${esc(where)}\\s+${esc(url)}\\s+${esc(verdict)}`);
const onHost = () => `http://127.0.0.1:${port}/healthz on the host (ssh)`;

describe("dockyard smoke", () => {
  it("the outputs are the program's: frontDoor per group, hosts reached by instance id (hostAccess ssm)", () => {
    expect(OUTPUTS.frontDoor).toEqual({ app: { dnsName: "127.0.0.1", ports: [port], protocol: "TCP", targetGroupArns: { [String(port)]: expect.stringMatching(/^arn:aws:elasticloadbalancing:eu-west-1:\d{12}:targetgroup\//) } } });
    expect(TLS_OUTPUTS.frontDoor.app.protocol).toBe("TLS");
    expect(OUTPUTS.hostsByName["test-app-1"]).toMatchObject({ platform: "aws", sshUser: "admin", sshTarget: INSTANCE["test-app-1"] });
  });

  it("all healthy: the front door, then each host through its own proxy on the host (over ssh), the unpublished service listed, exit 0", async () => {
    await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": answer(204) });
    const r = await smoke();
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(row("frontDoor.app", `http://127.0.0.1:${port}/healthz`, "ok (HTTP 200)"));
    expect(r.out).toMatch(row("test-app-1", onHost(), "ok (HTTP 200)"));
    expect(r.out).toMatch(row("test-app-2", onHost(), "ok (HTTP 204)"));
    expect(r.out).toMatch(/worker\s+\(not checked: no publishPort: not reachable from outside\)/);
    expect(r.out).toMatch(/3 ok, 0 failed, 1 not checked\./);
    expect(seen).toEqual({ [AT.frontDoor]: ["/healthz"], [AT["test-app-1"]]: ["/healthz"], [AT["test-app-2"]]: ["/healthz"] });
    // One ssh per host, with the host's pinned key, through the Session Manager ProxyCommand, to the instance id.
    const calls = fs.readFileSync(path.join(dir, "ssh-calls"), "utf8").trim().split("\n");
    expect(calls).toHaveLength(2);
    for (const h of ["test-app-1", "test-app-2"] as const) {
      const call = calls.find((c) => c.includes(`-- admin@${INSTANCE[h]} `))!;
      expect(call).toContain(`KnownHostsCommand=/bin/echo %H ${OUTPUTS.hostsByName[h].hostPublicKey}`);
      expect(call).toContain("StrictHostKeyChecking=yes");
      expect(call).toContain("aws ssm start-session --region eu-west-1");
      // The host waits for its proxy's answer at most HOST_ANSWER_WAIT_S, less when the deadline is nearer.
      expect(call).toMatch(new RegExp(`-- admin@${INSTANCE[h]} bash -s -- ${port} '/healthz' [1-5]\\.\\d$`));
    }
  });

  it("retries: a host whose proxy answers 503 twice and then 200 passes on its third attempt", async () => {
    let n = 0;
    await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": (req, res) => answer(++n <= 2 ? 503 : 200)(req, res) });
    const r = await smoke({ json: true });
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as SmokeReport;
    expect(report.ok).toBe(true);
    expect(report.results.find((x) => x.host === "test-app-2")).toMatchObject({ service: "web", via: "ssh", outcome: "ok", status: 200, attempts: 3 });
    expect(report.results.find((x) => x.host === "test-app-1")).toMatchObject({ outcome: "ok", attempts: 1 });
    expect(report.skipped).toEqual([{ service: "worker", reason: "no publishPort: not reachable from outside" }]);
  });

  it("a host that keeps failing is retried until the deadline, then reported with its status: exit 1", async () => {
    await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": answer(500) });
    const started = Date.now();
    const r = await smoke({ timeout: 1.5, interval: 0.2 });
    expect(r.code).toBe(1);
    // It gives up at the deadline (less one interval), not before and not much after.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_200);
    expect(Date.now() - started).toBeLessThan(5_000);
    const line = r.out.split("\n").find((l) => l.includes("test-app-2"))!;
    expect(line).toMatch(row("test-app-2", onHost(), "FAILED (HTTP 500)"));
    const attempts = Number(/(\d+) attempts/.exec(line)![1]);
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(seen[AT["test-app-2"]].length).toBe(attempts);
    expect(r.out).toMatch(/2 ok, 1 failed, 1 not checked\./);
  });

  it("a front door that keeps failing fails the smoke test even when every host serves: exit 1", async () => {
    await serve({ frontDoor: answer(503), "test-app-1": answer(200), "test-app-2": answer(200) });
    const r = await smoke({ timeout: 1, json: true });
    expect(r.code).toBe(1);
    expect((JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "frontDoor.app")).toMatchObject({ via: "client", outcome: "failed", status: 503 });
  });

  it("a retry the deadline cuts short keeps the last answer: 500, then no answer before the deadline, is reported as HTTP 500", async () => {
    let n = 0;
    // First request: 500 at once; every later one: never answered (the deadline cuts it).
    await serve({ frontDoor: (req, res) => (++n === 1 ? answer(500)(req, res) : undefined) });
    const target = { service: "web", host: "frontDoor.app", via: "client" as const, url: `http://127.0.0.1:${port}/healthz` };
    const r = await probe(target, { deadline: Date.now() + 1_000, intervalMs: 100 });
    expect(r).toMatchObject({ outcome: "failed", status: 500 });
    expect(r.error).toBeUndefined();
    expect(r.attempts).toBe(2);
    expect(seen[AT.frontDoor]).toHaveLength(2);
  });

  it(`no retry is started with less than ${MIN_RETRY_MS} ms left before the deadline (it could only end in "no answer")`, async () => {
    await serve({ frontDoor: answer(500) });
    const target = { service: "web", host: "frontDoor.app", via: "client" as const, url: `http://127.0.0.1:${port}/healthz` };
    const r = await probe(target, { deadline: Date.now() + MIN_RETRY_MS + 50, intervalMs: 100 });
    expect(r).toMatchObject({ outcome: "failed", status: 500, attempts: 1 });
    expect(seen[AT.frontDoor]).toHaveLength(1);
  });

  it("no proxy listening on a host is reported as connection refused (said by the host): exit 1", async () => {
    await serve({ frontDoor: answer(200), "test-app-1": answer(200) });
    const r = await smoke({ timeout: 1, json: true });
    expect(r.code).toBe(1);
    const h2 = (JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "test-app-2")!;
    expect(h2).toMatchObject({ outcome: "failed", error: "connection refused" });
    expect(h2.status).toBeUndefined();
  });

  it("a proxy that never answers fails with the host's wait, a front door that never answers with the request timeout, not a hang", async () => {
    await serve({ frontDoor: () => undefined, "test-app-1": answer(200), "test-app-2": () => undefined });
    const started = Date.now();
    const r = await smoke({ timeout: 1, json: true });
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(4_000);
    const results = (JSON.parse(r.out) as SmokeReport).results;
    expect(results.find((x) => x.host === "test-app-2")!.error).toMatch(/^no answer within \d\.\ds$/);
    expect(results.find((x) => x.host === "frontDoor.app")!.error).toMatch(/^no answer within \d\.\ds$/);
  });

  it("a host ssh cannot reach is reported with ssh's own words: exit 1", async () => {
    await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": answer(200) });
    const outputs = structuredClone(OUTPUTS);
    outputs.hostsByName["test-app-2"].sshTarget = "i-0ffffffffffffffff";
    const r = await smoke({ outputs: writeOutputs(outputs, "moved.json"), timeout: 1, json: true });
    expect(r.code).toBe(1);
    expect((JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "test-app-2")).toMatchObject({
      outcome: "failed",
      error: "ssh: ssh: Could not resolve hostname i-0ffffffffffffffff: Name or service not known",
    });
  });

  it("no ssh on PATH: each host check fails saying so, exit 1", async () => {
    await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": answer(200) });
    const empty = path.join(root, "empty-bin");
    fs.mkdirSync(empty, { recursive: true });
    process.env.PATH = empty;
    try {
      const r = await smoke({ timeout: 1, json: true });
      expect(r.code).toBe(1);
      const hosts = (JSON.parse(r.out) as SmokeReport).results.filter((x) => x.via === "ssh");
      expect(hosts.map((x) => x.error)).toEqual(Array(2).fill("cannot run ssh (ENOENT); smoke reaches hosts with the system OpenSSH client, as Pulumi does"));
    } finally {
      process.env.PATH = `${bin}${path.delimiter}${pathBefore}`;
    }
  });

  describe("a TLS front door (dockyard:certificateArn): https, verified", () => {
    const tlsServe = async (status = 200) => {
      servers.push(await listen(AT.frontDoor, answer(status), pki));
      await serve({ "test-app-1": answer(200), "test-app-2": answer(200) });
    };

    it("trusting the CA (--ca-file) and for the name clients use (--tls-name): ok, with that name as SNI and Host", async () => {
      await tlsServe();
      const r = await smoke({ outputs: writeOutputs(TLS_OUTPUTS, "tls.json"), caFile: pki.caFile, tlsName: TLS_NAME, json: true });
      expect(r.code, r.out + r.err).toBe(0);
      const fd = (JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "frontDoor.app")!;
      expect(fd).toMatchObject({ url: `https://127.0.0.1:${port}/healthz`, outcome: "ok", status: 200, tlsName: TLS_NAME });
      expect(seen[AT.frontDoor]).toEqual([`/healthz sni=${TLS_NAME} host=${TLS_NAME}:${port}`]);
    });

    it("a certificate no trusted CA signed fails (TLS is verified), naming --ca-file", async () => {
      await tlsServe();
      const r = await smoke({ outputs: writeOutputs(TLS_OUTPUTS, "tls.json"), tlsName: TLS_NAME, timeout: 1, json: true });
      expect(r.code).toBe(1);
      const fd = (JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "frontDoor.app")!;
      expect(fd.error).toMatch(/^TLS: certificate not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE: .*\); a private CA's certificate: --ca-file$/);
      expect(seen[AT.frontDoor]).toBeUndefined();
    });

    it("a certificate for another name than the one asked fails, naming --tls-name", async () => {
      await tlsServe();
      const r = await smoke({ outputs: writeOutputs(TLS_OUTPUTS, "tls.json"), caFile: pki.caFile, timeout: 1, json: true });
      expect(r.code).toBe(1);
      const fd = (JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "frontDoor.app")!;
      expect(fd.error).toBe("TLS: the certificate is not for 127.0.0.1 (ERR_TLS_CERT_ALTNAME_INVALID); give the name clients use with --tls-name");
    });

    it("an empty --tls-name is no name (CI passes a variable that may be empty): the load balancer's own name is asked", async () => {
      await tlsServe();
      const r = await smoke({ outputs: writeOutputs(TLS_OUTPUTS, "tls.json"), caFile: pki.caFile, tlsName: "", timeout: 1, json: true });
      expect(r.code).toBe(1);
      expect((JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "frontDoor.app")!.error).toMatch(/^TLS: the certificate is not for 127\.0\.0\.1 /);
    });

    it("a TCP listener is not asked over https: the stack without a certificate speaks http", async () => {
      await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": answer(200) });
      const r = await smoke({ caFile: pki.caFile, tlsName: TLS_NAME, json: true });
      expect(r.code, r.err).toBe(0);
      expect((JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "frontDoor.app")!.url).toBe(`http://127.0.0.1:${port}/healthz`);
    });
  });

  describe("bad input: exit 2, one line naming the file (or option) and what is wrong, no request made", () => {
    const cases: [string, () => unknown, RegExp][] = [
      ["not JSON", () => '{"hostsByName": ', /: not JSON \(/],
      ["not an object", () => "[1, 2]", /: not a JSON object of stack outputs/],
      ["no hostsByName", () => ({ ...OUTPUTS, hostsByName: undefined }), /: hostsByName: missing or not an object/],
      ["a host missing from hostsByName", () => ({ ...OUTPUTS, hostsByName: { "test-app-1": OUTPUTS.hostsByName["test-app-1"] } }), /: services\.web\.hosts names "test-app-2", which is not in hostsByName/],
      ["a host without its ssh address", () => ({ ...OUTPUTS, hostsByName: { ...OUTPUTS.hostsByName, "test-app-2": { ...OUTPUTS.hostsByName["test-app-2"], sshTarget: undefined } } }), /: hostsByName\.test-app-2: no sshUser, sshTarget and hostPublicKey strings/],
      ["an ssh target that is an option", () => ({ ...OUTPUTS, hostsByName: { ...OUTPUTS.hostsByName, "test-app-2": { ...OUTPUTS.hostsByName["test-app-2"], sshTarget: "-oProxyCommand=x" } } }), /: hostsByName\.test-app-2: host connection target "-oProxyCommand=x" is not an instance id/],
      ["a front door dnsName that is no name", () => ({ ...OUTPUTS, frontDoor: { app: { ...OUTPUTS.frontDoor.app, dnsName: "http://x y" } } }), /: frontDoor\.app\.dnsName: "http:\/\/x y" is not a DNS name/],
      ["a front door without the service's port", () => ({ ...OUTPUTS, frontDoor: { app: { ...OUTPUTS.frontDoor.app, ports: [443] } } }), /: frontDoor\.app\.ports: \[443\] has no listener on web's publishPort/],
      ["the flat frontDoor shape", () => ({ ...OUTPUTS, frontDoor: { dnsName: "127.0.0.1" } }), /: frontDoor\.app: missing, but web publishes port \d+ on EC2 hosts of group app/],
      ["hosts not a list", () => ({ ...OUTPUTS, services: { ...OUTPUTS.services, web: { hosts: "test-app-1" } } }), /: services\.web\.hosts: missing or not a list of host names/],
      ["another stack's outputs", () => ({ ...OUTPUTS, stack: "prod" }), /: these are the outputs of stack "prod", not "test"/],
    ];
    it.each(cases)("%s", async (_name, outputs, message) => {
      await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": answer(200) });
      const file = writeOutputs(outputs(), "bad.json");
      const r = await smoke({ outputs: file });
      expect(r.code).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toContain(file);
      expect(r.err).toMatch(message);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(seen).toEqual({});
      expect(fs.existsSync(path.join(dir, "ssh-calls"))).toBe(false);
    });
    it("a missing outputs file", async () => {
      const file = path.join(dir, "nope.json");
      const r = await smoke({ outputs: file });
      expect(r.code).toBe(2);
      expect(r.err).toBe(`${file}: cannot read the outputs file (no such file)\n`);
    });
    it("a --ca-file that is missing or holds no certificate, a --tls-name that is no DNS name", async () => {
      const missing = path.join(dir, "no-ca.pem");
      expect(await smoke({ caFile: missing })).toMatchObject({ code: 2, out: "", err: `--ca-file ${missing}: cannot read it (no such file)\n` });
      const notPem = writeOutputs("hello", "ca.txt");
      expect(await smoke({ caFile: notPem })).toMatchObject({ code: 2, err: `--ca-file ${notPem}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)\n` });
      expect(await smoke({ tlsName: "https://app" })).toMatchObject({ code: 2, err: `--tls-name: "https://app" is not a DNS name (the name the front door's certificate is for)\n` });
      expect(seen).toEqual({});
    });
  });
});

/**
 * --front-door health: the load balancer's own view instead of a request to the front door
 * (CI's runner is outside dockyard:ingressCidrs, which the load balancer's security group
 * admits: components/front-door.ts frontDoorIngressRules). The stand-in aws answers what the
 * AWS CLI v2 prints for `aws elbv2 describe-target-health`: the DescribeTargetHealth
 * response (ELBv2 API reference, TargetHealthDescription and TargetHealth: State initial |
 * healthy | unhealthy | unused | draining | unavailable; Reason and Description absent when
 * healthy; an NLB's failed check is Target.FailedHealthChecks, a deregistering target
 * draining with Target.DeregistrationInProgress), or an error with the CLI's return code
 * (254: the service answered with an error; "AWS CLI return codes").
 */
describe("dockyard smoke --front-door health (the load balancer's target health)", () => {
  const OLD = "i-0ffff0000aaaa1111";
  const arn = () => OUTPUTS.frontDoor.app.targetGroupArns[String(port)] as string;
  const id = (h: keyof typeof INSTANCE) => INSTANCE[h];
  const healthy = (target: string) => ({ Target: { Id: target, Port: port }, HealthCheckPort: String(port), TargetHealth: { State: "healthy" }, AdministrativeOverride: { State: "no_override", Reason: "AdministrativeOverride.NoOverride", Description: "No override is currently active on target" } });
  const state = (target: string, State: string, Reason: string, Description: string) => ({ ...healthy(target), TargetHealth: { State, Reason, Description } });
  /** The stand-in's answer to the n-th call (every call when n is omitted). */
  const awsAnswers = (descriptions: unknown[], n?: number) =>
    fs.writeFileSync(path.join(dir, n === undefined ? "aws-answer.sh" : `aws-answer.${n}.sh`), `cat <<'JSON'\n${JSON.stringify({ TargetHealthDescriptions: descriptions }, null, 4)}\nJSON\nexit 0\n`);
  const awsError = (rc: number, stderr: string) => fs.writeFileSync(path.join(dir, "aws-answer.sh"), `echo ${JSON.stringify(stderr)} >&2\nexit ${rc}\n`);
  const awsCalls = () => fs.readFileSync(path.join(dir, "aws-calls"), "utf8").trim().split("\n");
  const hostsServe = () => serve({ "test-app-1": answer(200), "test-app-2": answer(200) });
  const frontDoorResult = (r: { out: string }) => (JSON.parse(r.out) as SmokeReport).results.find((x) => x.host === "frontDoor.app")!;

  it("the outputs carry the port's target group (index.ts frontDoor.<group>.targetGroupArns) and each host's instance id", () => {
    expect(arn()).toMatch(new RegExp(`^arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/test-app-${port}/[0-9a-f]{16}$`));
    expect(OUTPUTS.hostsByName["test-app-1"].instanceId).toBe(id("test-app-1"));
  });

  it("every host that runs the service healthy: ok without a request to the front door, a draining old instance not counted; hosts still asked over ssh; exit 0", async () => {
    await hostsServe();
    awsAnswers([healthy(id("test-app-1")), healthy(id("test-app-2")), state(OLD, "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")]);
    const r = await smoke({ frontDoor: "health" });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(row("frontDoor.app", `target health of ${arn()}`, `ok (healthy: test-app-1, test-app-2; not counted: ${OLD} draining Target.DeregistrationInProgress (Target deregistration is in progress))`));
    expect(r.out).toMatch(row("test-app-1", onHost(), "ok (HTTP 200)"));
    expect(r.out).toMatch(row("test-app-2", onHost(), "ok (HTTP 200)"));
    expect(r.out).toMatch(/3 ok, 0 failed, 1 not checked\./);
    // One call, in the stack's region, for the port's target group; no request to the front door.
    expect(awsCalls()).toEqual([`elbv2 describe-target-health --region eu-west-1 --target-group-arn ${arn()} --output json`]);
    expect(seen[AT.frontDoor]).toBeUndefined();
  });

  it("a host unhealthy in the target group (with its Reason) fails after retries, with what the load balancer said: exit 1", async () => {
    await hostsServe();
    awsAnswers([healthy(id("test-app-1")), state(id("test-app-2"), "unhealthy", "Target.FailedHealthChecks", "Health checks failed")]);
    const r = await smoke({ frontDoor: "health", timeout: 1, interval: 0.2, json: true });
    expect(r.code).toBe(1);
    const fd = frontDoorResult(r);
    expect(fd).toMatchObject({ via: "elb", outcome: "failed", health: `test-app-2 (${id("test-app-2")}) unhealthy Target.FailedHealthChecks (Health checks failed)` });
    expect(fd.status).toBeUndefined();
    expect(fd.attempts).toBeGreaterThanOrEqual(2);
    expect(awsCalls()).toHaveLength(fd.attempts);
  });

  it("a host still `initial` is retried until it is healthy: ok on the second answer", async () => {
    await hostsServe();
    awsAnswers([healthy(id("test-app-1")), state(id("test-app-2"), "initial", "Elb.InitialHealthChecking", "Initial health checks in progress")], 1);
    awsAnswers([healthy(id("test-app-1")), healthy(id("test-app-2"))]);
    const r = await smoke({ frontDoor: "health", json: true });
    expect(r.code, r.err).toBe(0);
    expect(frontDoorResult(r)).toMatchObject({ outcome: "ok", attempts: 2, health: "healthy: test-app-1, test-app-2" });
  });

  it("a host that runs the service but is not a target (missing from the group) fails, while the other targets are healthy: exit 1", async () => {
    await hostsServe();
    awsAnswers([healthy(id("test-app-1")), healthy(OLD)]);
    const r = await smoke({ frontDoor: "health", timeout: 1, json: true });
    expect(r.code).toBe(1);
    expect(frontDoorResult(r).health).toBe(`test-app-2 (${id("test-app-2")}) not registered; not counted: ${OLD} healthy`);
  });

  it("the AWS CLI's error (return code 254, AccessDenied) is the verdict, in its own words: exit 1", async () => {
    await hostsServe();
    const denied = "An error occurred (AccessDenied) when calling the DescribeTargetHealth operation: User: arn:aws:sts::123456789012:assumed-role/dockyard-test-deploy/ci is not authorized to perform: elasticloadbalancing:DescribeTargetHealth";
    awsError(254, denied);
    const r = await smoke({ frontDoor: "health", timeout: 1, json: true });
    expect(r.code).toBe(1);
    expect(frontDoorResult(r)).toMatchObject({ outcome: "failed", error: `aws (exit 254): ${denied}` });
  });

  it("an answer that is not DescribeTargetHealth's fails saying so", async () => {
    await hostsServe();
    fs.writeFileSync(path.join(dir, "aws-answer.sh"), `echo '{"TargetGroups": []}'\n`);
    const r = await smoke({ frontDoor: "health", timeout: 1, json: true });
    expect(r.code).toBe(1);
    expect(frontDoorResult(r).error).toBe("aws elbv2 describe-target-health: no TargetHealthDescriptions list in its answer");
  });

  it("no aws on PATH: the front door's check fails saying so (ssh still found), exit 1", async () => {
    await hostsServe();
    const sshOnly = path.join(root, "ssh-only-bin");
    fs.mkdirSync(sshOnly, { recursive: true });
    fs.rmSync(path.join(sshOnly, "ssh"), { force: true });
    fs.symlinkSync(path.join(bin, "ssh"), path.join(sshOnly, "ssh"));
    // sh, sed, awk for the stand-in ssh.
    process.env.PATH = `${sshOnly}${path.delimiter}/usr/bin${path.delimiter}/bin`;
    try {
      const r = await smoke({ frontDoor: "health", timeout: 1, json: true });
      expect(r.code).toBe(1);
      expect(frontDoorResult(r).error).toBe("cannot run aws (ENOENT); smoke --front-door health asks the load balancer with the AWS CLI");
      expect((JSON.parse(r.out) as SmokeReport).results.filter((x) => x.via === "ssh").map((x) => x.outcome)).toEqual(["ok", "ok"]);
    } finally {
      process.env.PATH = `${bin}${path.delimiter}${pathBefore}`;
    }
  });

  it("bad input: outputs without the port's target group, or a host without an instance id, exit 2 naming the key; an unknown --front-door exit 2; nothing asked", async () => {
    const noArns = structuredClone(OUTPUTS);
    delete noArns.frontDoor.app.targetGroupArns;
    const r = await smoke({ frontDoor: "health", outputs: writeOutputs(noArns, "no-arns.json") });
    expect(r).toMatchObject({ code: 2, out: "" });
    expect(r.err).toBe(`${path.join(dir, "no-arns.json")}: frontDoor.app.targetGroupArns.${port}: undefined is not a target group ARN; --front-door health needs the outputs of this program (index.ts exports each port's target group)\n`);
    const noId = structuredClone(OUTPUTS);
    noId.hostsByName["test-app-2"].instanceId = "computed(test-app-2-instance.id)";
    expect((await smoke({ frontDoor: "health", outputs: writeOutputs(noId, "no-id.json") })).err).toMatch(/: hostsByName\.test-app-2\.instanceId: "computed\(test-app-2-instance\.id\)" is not an EC2 instance id\n$/);
    expect(await smoke({ frontDoor: "bogus" as never })).toMatchObject({ code: 2, err: `--front-door: "bogus"; expected request or health\n` });
    // The request mode does not need the target groups.
    await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": answer(200) });
    expect((await smoke({ outputs: writeOutputs(noArns, "no-arns.json") })).code).toBe(0);
    expect(fs.existsSync(path.join(dir, "aws-calls"))).toBe(false);
  });
});

describe("dockyard smoke, run as the CLI", () => {
  const base = () => ["smoke", "test", "--stacks-dir", dir, "--environment", path.join(dir, "environment.yaml"), "--interval", "0.2"];
  const env = () => ({ PATH: `${bin}${path.delimiter}${pathBefore}` });

  it("healthy: exit 0 and the JSON report; --ca-file and --tls-name reach the TLS front door; a failing host: exit 1", async () => {
    servers.push(await listen(AT.frontDoor, answer(200), pki));
    await serve({ "test-app-1": answer(200), "test-app-2": answer(200) });
    const ok = await cli([...base(), "--outputs", writeOutputs(TLS_OUTPUTS, "tls.json"), "--ca-file", pki.caFile, "--tls-name", TLS_NAME, "--json"], env());
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as SmokeReport).results.map((x) => [x.host, x.via, x.outcome])).toEqual([
      ["frontDoor.app", "client", "ok"],
      ["test-app-1", "ssh", "ok"],
      ["test-app-2", "ssh", "ok"],
    ]);
    expect(ok.stderr).toMatch(/Checking 3 endpoints of stack test/);
    const outputs = structuredClone(TLS_OUTPUTS);
    outputs.hostsByName["test-app-2"].sshTarget = "i-0ffffffffffffffff";
    const failed = await cli([...base(), "--outputs", writeOutputs(outputs, "moved.json"), "--ca-file", pki.caFile, "--tls-name", TLS_NAME, "--timeout", "1"], env());
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/web\s+test-app-2\s+http:\/\/127\.0\.0\.1:\d+\/healthz on the host \(ssh\)\s+FAILED \(ssh: ssh: Could not resolve hostname i-0ffffffffffffffff/);
  }, 60_000);

  it("--front-door health reaches the load balancer's view through the CLI; an unknown --front-door is a usage error (exit 2)", async () => {
    await serve({ "test-app-1": answer(200), "test-app-2": answer(200) });
    const ids = Object.values(INSTANCE).map((Id) => ({ Target: { Id, Port: port }, HealthCheckPort: String(port), TargetHealth: { State: "healthy" } }));
    fs.writeFileSync(path.join(dir, "aws-answer.sh"), `cat <<'JSON'\n${JSON.stringify({ TargetHealthDescriptions: ids })}\nJSON\n`);
    const ok = await cli([...base(), "--outputs", writeOutputs(OUTPUTS), "--front-door", "health", "--json"], env());
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as SmokeReport).results.map((x) => [x.host, x.via, x.outcome])).toEqual([
      ["frontDoor.app", "elb", "ok"],
      ["test-app-1", "ssh", "ok"],
      ["test-app-2", "ssh", "ok"],
    ]);
    expect(seen[AT.frontDoor]).toBeUndefined();
    const bad = await cli([...base(), "--outputs", writeOutputs(OUTPUTS), "--front-door", "skip"], env());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/front-door/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
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
    await serve({ frontDoor: answer(200), "test-app-1": answer(200), "test-app-2": answer(200) });
    const outputsFile = writeOutputs(OUTPUTS);
    fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\necho "$@" > '${dir}/pulumi-args'\ncat '${outputsFile}'\n`, { mode: 0o755 });
    try {
      const r = await cli(base(), env());
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readFileSync(path.join(dir, "pulumi-args"), "utf8").trim()).toBe("stack output --json --stack test");
      expect(r.stdout).toMatch(/3 ok, 0 failed, 1 not checked\./);
      // The command failing (not logged in, no such stack) is bad input with its last line of stderr.
      fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\necho "error: no stack named 'test' found" >&2\nexit 255\n`, { mode: 0o755 });
      const failing = await cli(base(), env());
      expect(failing.code).toBe(2);
      expect(failing.stderr.trim()).toBe("pulumi stack output --json --stack test: failed: error: no stack named 'test' found (or pass the outputs with --outputs FILE)");
    } finally {
      fs.rmSync(path.join(bin, "pulumi"), { force: true });
    }
  }, 60_000);
});
