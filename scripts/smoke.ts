/**
 * `dockyard smoke <stack>`: do the stack's published services answer where clients reach
 * them, and on every host that serves them? Reads the stack's outputs (`pulumi stack output
 * --json`, or a file) and takes each service's publishPort and health path from the
 * environment definition. It asks, retrying until a deadline:
 *  - what clients use: each host group's front door (outputs.frontDoor.<group>: dnsName,
 *    ports, protocol), https where the listener is TLS (dockyard:certificateArn), http where
 *    TCP; a local host's endpoint (hostsByName.<host>.endpoints) where a group has no front door;
 *  - each host that serves the service (outputs.services.<svc>.hosts), through the access path:
 *    over the host's SSH connection (the one Pulumi uses, components/connection.ts), the host
 *    asks its own proxy on 127.0.0.1:<publishPort><health.path> (scripts/lib/host-request.sh).
 *    The hosts' service ports admit the front door's security group only, so a host cannot
 *    be asked from outside.
 * The front door's check is one of two (--front-door):
 *  - request (the default): GET its health path from here, as a client; only a machine
 *    inside dockyard:ingressCidrs reaches it (the load balancer's security group);
 *  - health: the load balancer's own view, for a machine that is no client (CI's runner):
 *    every host that runs the service is a `healthy` target of the port's target group
 *    (`aws elbv2 describe-target-health`, scripts/lib/aws.ts; frontDoor.<group>.targetGroupArns).
 * Exit 0 every check passed, 1 one did not, 2 bad input (unknown stack, unreadable or
 * malformed outputs, a bad --ca-file, --tls-name or --front-door).
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { isIP } from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import type { Argv, CommandModule } from "yargs";
import { sshArgv } from "../components/connection";
import { loadStackSpec, type EnvironmentSpec } from "../stacks";
import { hostAccess, type HostAccess } from "./lib/access";
import { describeTargetHealthArgv, runAws, targetHealthAnswer, targetHealthVerdict, type ExpectedTarget } from "./lib/aws";
import { DockyardError, EXIT, reported, toStderr, toStdout, withSourceOptions, type Write } from "./lib/cli";
import { hostAnswer, hostRequestCommand, runOnHost } from "./lib/remote";
import { REPO_ROOT } from "./lib/render";

export interface SmokeArgs {
  stack: string;
  /** JSON as `pulumi stack output --json --stack <stack>` prints it; default: run that command. */
  outputs?: string;
  /** Seconds until every check must have answered. */
  timeout: number;
  /** Seconds between two attempts at one check. */
  interval: number;
  json: boolean;
  /** PEM file of CA certificates trusted for TLS front doors besides Node's bundled roots (a private CA). */
  caFile?: string;
  /** The DNS name clients use for the TLS front doors (their certificate's name), when it is not the load balancer's own. */
  tlsName?: string;
  /** How each front door is checked: request (from here, as a client; default) or health (the load balancer's target health). */
  frontDoor?: FrontDoorCheck;
  stacksDir?: string;
  environment?: string;
}

/** How smoke checks a front door: asked from here as a client, or the load balancer's own view of its targets. */
export const FRONT_DOOR_CHECKS = ["request", "health"] as const;
export type FrontDoorCheck = (typeof FRONT_DOOR_CHECKS)[number];

/** A front door checked by its load balancer's view: the port's target group and the hosts that must be healthy in it. */
export interface TargetHealthCheck {
  region: string;
  targetGroupArn: string;
  expected: ExpectedTarget[];
}

/** One check: a service's health path at a front door, or on one host through its proxy; or a front door's target health. */
export interface SmokeTarget {
  service: string;
  /** Where: `frontDoor.<group>`, a local host's `<host> endpoint`, or a host name as in hostsByName (asked on the host). */
  host: string;
  /** The URL asked: what clients use; for a check on a host, the proxy's URL on that host (127.0.0.1); via elb: the target group's ARN. */
  url: string;
  /** client: asked from here, as clients ask; ssh: asked on the host, over its SSH connection; elb: the load balancer's target health. */
  via: "client" | "ssh" | "elb";
  /** via elb: which target group, and which instances must be healthy in it. */
  targetHealth?: TargetHealthCheck;
  /** via ssh: how the host is reached (the connection Pulumi uses). */
  access?: HostAccess;
  /** via client over TLS: the name the certificate must be for (--tls-name), sent as SNI and Host. */
  tlsName?: string;
}

/** A service the smoke test does not ask, and why (not a failure). */
export interface SmokeSkip {
  service: string;
  reason: string;
}

export type SmokeOutcome = "ok" | "failed";

export interface SmokeResult extends SmokeTarget {
  outcome: SmokeOutcome;
  /** The last answer's HTTP status, if there was one. */
  status?: number;
  /** Why the last attempt failed when there was no answer (refused, timeout, ssh, TLS, ...). */
  error?: string;
  /** via elb: what the load balancer said of the targets at the last answer. */
  health?: string;
  attempts: number;
  /** Seconds from the first attempt to the verdict. */
  seconds: number;
}

export interface SmokeReport {
  stack: string;
  ok: boolean;
  results: SmokeResult[];
  skipped: SmokeSkip[];
}

/** How long one request from here may take at most (less when the deadline is nearer). */
export const REQUEST_TIMEOUT_MS = 5_000;
/**
 * How long one check on a host may take at most: the ssh dial (ConnectTimeout 30 s in
 * sshOptions; through Session Manager a key push and a session first) and the request.
 */
export const HOST_REQUEST_TIMEOUT_MS = 45_000;
/** How long one `aws elbv2 describe-target-health` may take at most. */
export const AWS_REQUEST_TIMEOUT_MS = 30_000;
/** How long the host waits for its proxy's status line. */
export const HOST_ANSWER_WAIT_S = 5;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
/** An address a URL can carry: an IP, or a DNS name. */
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const isAddress = (v: unknown): v is string => typeof v === "string" && (isIP(v) !== 0 || HOSTNAME.test(v));
const urlHost = (address: string) => (isIP(address) === 6 ? `[${address}]` : address);
/** `<address>:<port>` as a local host's endpoints hold it. */
const isEndpoint = (v: unknown): v is string => typeof v === "string" && /^(.+):(\d{1,5})$/.test(v) && isAddress(/^(.+):\d+$/.exec(v)![1]);
/** A target group's ARN (arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>). */
const TARGET_GROUP_ARN = /^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup\/[A-Za-z0-9-]{1,32}\/[0-9a-f]{16}$/;
/** An EC2 instance id. */
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** Parses outputs JSON text; every problem is bad input (exit 2) naming where the outputs came from. */
export function parseOutputs(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new DockyardError(`${source}: not JSON (${(e as Error).message}); expected what \`pulumi stack output --json\` prints`, EXIT.usage);
  }
  if (!isObject(doc)) throw new DockyardError(`${source}: not a JSON object of stack outputs; expected what \`pulumi stack output --json\` prints`, EXIT.usage);
  return doc;
}

/**
 * What to ask, from the environment definition and the stack's outputs in the shape index.ts
 * exports them. Per service with a publishPort: its group's front door (frontDoor.<group>,
 * https when its protocol is TLS), or, for a group without one, each local host's endpoint;
 * and each host that runs it (services.<svc>.hosts), on the host over its connection
 * (hostsByName.<host>: sshUser, sshTarget, hostPublicKey, platform). Services without
 * publishPort are skipped. An EC2 group without a front door is bad input: its hosts admit
 * the service ports from the load balancer only. Malformed outputs are bad input.
 */
export function smokeTargets(spec: EnvironmentSpec, outputs: Record<string, unknown>, source: string, opts: { tlsName?: string; frontDoor?: FrontDoorCheck } = {}): { targets: SmokeTarget[]; skipped: SmokeSkip[] } {
  const bad = (what: string) => new DockyardError(`${source}: ${what}`, EXIT.usage);
  if (outputs.stack !== undefined && outputs.stack !== spec.stack) throw bad(`these are the outputs of stack "${String(outputs.stack)}", not "${spec.stack}"`);
  const hosts = outputs.hostsByName;
  const services = outputs.services;
  const frontDoors = outputs.frontDoor ?? {};
  if (!isObject(hosts)) throw bad("hostsByName: missing or not an object (host name -> { sshUser, sshTarget, hostPublicKey, ... })");
  if (!isObject(services)) throw bad("services: missing or not an object (service name -> { hosts, ... })");
  if (!isObject(frontDoors)) throw bad("frontDoor: not an object (host group -> { dnsName, ports, protocol })");
  const groupPlatform = (group: unknown) => spec.hostGroups.find((g) => g.name === group)?.platform ?? "aws";
  const targets: SmokeTarget[] = [];
  const skipped: SmokeSkip[] = [];
  for (const svc of [...spec.services].sort((a, b) => a.name.localeCompare(b.name))) {
    const out = services[svc.name];
    if (out === undefined) {
      skipped.push({ service: svc.name, reason: "not in the stack's outputs (not deployed)" });
      continue;
    }
    if (!isObject(out) || !Array.isArray(out.hosts) || !out.hosts.every((h) => typeof h === "string")) throw bad(`services.${svc.name}.hosts: missing or not a list of host names`);
    const port = svc.publishPort;
    if (port === undefined) {
      skipped.push({ service: svc.name, reason: "no publishPort: not reachable from outside" });
      continue;
    }
    const on = out.hosts as string[];
    for (const host of on) if (!isObject(hosts[host])) throw bad(`services.${svc.name}.hosts names "${host}", which is not in hostsByName`);
    // What clients use: the group's front door.
    const fd = frontDoors[svc.group];
    const at = `frontDoor.${svc.group}`;
    if (fd !== undefined) {
      if (!isObject(fd)) throw bad(`${at}: not an object ({ dnsName, ports, protocol })`);
      if (!isAddress(fd.dnsName)) throw bad(`${at}.dnsName: ${JSON.stringify(fd.dnsName)} is not a DNS name`);
      if (fd.protocol !== "TCP" && fd.protocol !== "TLS") throw bad(`${at}.protocol: ${JSON.stringify(fd.protocol)}; expected TCP or TLS`);
      if (!Array.isArray(fd.ports) || !fd.ports.includes(port)) throw bad(`${at}.ports: ${JSON.stringify(fd.ports)} has no listener on ${svc.name}'s publishPort ${port}`);
      if (opts.frontDoor === "health") {
        // The load balancer's view: the port's target group, each host that runs the service in it.
        const arn = isObject(fd.targetGroupArns) ? fd.targetGroupArns[String(port)] : undefined;
        if (typeof arn !== "string" || !TARGET_GROUP_ARN.test(arn)) throw bad(`${at}.targetGroupArns.${port}: ${JSON.stringify(arn)} is not a target group ARN; --front-door health needs the outputs of this program (index.ts exports each port's target group)`);
        const expected = on.map((host) => {
          const id = (hosts[host] as Record<string, unknown>).instanceId;
          if (typeof id !== "string" || !INSTANCE_ID.test(id)) throw bad(`hostsByName.${host}.instanceId: ${JSON.stringify(id)} is not an EC2 instance id`);
          return { host, instanceId: id };
        });
        targets.push({ service: svc.name, host: at, url: arn, via: "elb", targetHealth: { region: spec.region, targetGroupArn: arn, expected } });
      } else {
        const scheme = fd.protocol === "TLS" ? "https" : "http";
        targets.push({ service: svc.name, host: at, url: `${scheme}://${urlHost(fd.dnsName)}:${port}${svc.health.path}`, via: "client", ...(scheme === "https" && opts.tlsName ? { tlsName: opts.tlsName } : {}) });
      }
    } else if (on.some((h) => ((hosts[h] as Record<string, unknown>).platform ?? groupPlatform(svc.group)) !== "local")) {
      throw bad(`${at}: missing, but ${svc.name} publishes port ${port} on EC2 hosts of group ${svc.group}, which admit it from the front door only; expected the outputs of this program (index.ts exports frontDoor per group)`);
    } else {
      // A local host's published port is reached on the deployer's machine (components/local-host.ts endpoints).
      for (const host of on) {
        const endpoint = isObject((hosts[host] as Record<string, unknown>).endpoints) ? ((hosts[host] as Record<string, Record<string, unknown>>).endpoints[String(port)]) : undefined;
        if (!isEndpoint(endpoint)) throw bad(`hostsByName.${host}.endpoints.${port}: ${JSON.stringify(endpoint)} is not <address>:<port>`);
        targets.push({ service: svc.name, host: `${host} endpoint`, url: `http://${endpoint}${svc.health.path}`, via: "client" });
      }
    }
    if (on.length === 0) skipped.push({ service: svc.name, reason: "no host runs a replica (services.<name>.hosts is empty)" });
    // Each host, through the access path: its own proxy, asked on the host.
    for (const host of on) {
      const h = hosts[host] as Record<string, unknown>;
      const access = hostAccess(spec, groupPlatform(h.group ?? svc.group), h);
      if (!access) throw bad(`hostsByName.${host}: no sshUser, sshTarget and hostPublicKey strings; the host cannot be reached`);
      try {
        sshArgv(access);
      } catch (e) {
        throw bad(`hostsByName.${host}: ${(e as Error).message}`);
      }
      targets.push({ service: svc.name, host, url: `http://127.0.0.1:${port}${svc.health.path}`, via: "ssh", access });
    }
  }
  return { targets, skipped };
}

/** What one attempt found: an HTTP status, the load balancer's verdict on its targets, or why there was neither (timedOut: it ran out of time). */
export type Answer = { status: number } | { health: { ok: boolean; summary: string } } | { error: string; timedOut?: boolean };

const TLS_TRUST_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_UNTRUSTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
]);

/** Why a request failed, in a few words: the system or TLS error code where there is one. */
function requestError(e: NodeJS.ErrnoException, host: string): string {
  const code = e.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET") return "connection reset";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return `TLS: the certificate is not for ${host} (${code}); give the name clients use with --tls-name`;
  if (code && TLS_TRUST_CODES.has(code)) return `TLS: certificate not trusted (${code}: ${e.message}); a private CA's certificate: --ca-file`;
  return code ?? e.message ?? String(e);
}

/**
 * One GET from here: the status of the answer, or why there was none. TLS is verified
 * against Node's bundled roots plus `ca` (--ca-file), for `tlsName` when given (SNI, the
 * certificate's name and the Host header), else for the URL's host. No redirect is followed.
 */
export function httpStatus(url: string, opts: { timeoutMs: number; ca?: string; tlsName?: string }): Promise<Answer> {
  const u = new URL(url);
  const secure = u.protocol === "https:";
  const name = (secure && opts.tlsName) || u.hostname;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (a: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(a);
    };
    const headers = { "user-agent": "dockyard-smoke", ...(secure && opts.tlsName ? { host: u.port ? `${opts.tlsName}:${u.port}` : opts.tlsName } : {}) };
    const tlsOptions: https.RequestOptions = secure ? { ...(opts.ca ? { ca: [...tls.rootCertificates, opts.ca] } : {}), ...(opts.tlsName ? { servername: opts.tlsName } : {}) } : {};
    const req = (secure ? https : http).request(u, { method: "GET", headers, agent: false, ...tlsOptions }, (res) => {
      // Read nothing more than the status; free the connection.
      finish({ status: res.statusCode ?? 0 });
      res.destroy();
    });
    req.on("error", (e) => finish({ error: requestError(e as NodeJS.ErrnoException, name) }));
    const timer = setTimeout(() => {
      finish({ error: `no answer within ${(opts.timeoutMs / 1000).toFixed(1)}s`, timedOut: true });
      req.destroy();
    }, opts.timeoutMs);
    req.end();
  });
}

/** What a probe needs besides the target: the extra CA (--ca-file). */
export interface ProbeOptions {
  deadline: number;
  intervalMs: number;
  ca?: string;
}

const requestTimeout = (t: SmokeTarget) => (t.via === "ssh" ? HOST_REQUEST_TIMEOUT_MS : t.via === "elb" ? AWS_REQUEST_TIMEOUT_MS : REQUEST_TIMEOUT_MS);

/** One attempt at a target, within `budgetMs`: from here, on the host over ssh, or the load balancer's target health. */
async function attempt(target: SmokeTarget, budgetMs: number, ca: string | undefined): Promise<Answer> {
  if (target.via === "client") return httpStatus(target.url, { timeoutMs: budgetMs, ca, tlsName: target.tlsName });
  if (target.via === "elb") {
    const th = target.targetHealth!;
    const a = targetHealthAnswer(await runAws(describeTargetHealthArgv(th.region, th.targetGroupArn), budgetMs), budgetMs);
    return "targets" in a ? { health: targetHealthVerdict(a.targets, th.expected) } : a;
  }
  const u = new URL(target.url);
  const wait = Math.max(0.5, Math.min(HOST_ANSWER_WAIT_S, budgetMs / 1000 - 1));
  // URL drops the scheme's default port (publishPort 80 reads as "").
  const port = Number(u.port || (u.protocol === "https:" ? 443 : 80));
  return hostAnswer(await runOnHost(target.access!, hostRequestCommand(port, `${u.pathname}${u.search}`, wait), budgetMs), budgetMs);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A retry is started only with this much time left before the deadline: on a busy machine a
 * sleep can overrun, and a request cut to a few milliseconds would end in "no answer" and
 * hide what the host last said (seen in CI: "FAILED (no answer within 0.0s)" for a host that
 * answered 500 every time).
 */
export const MIN_RETRY_MS = 250;

/**
 * Asks one target until it answers 2xx or the deadline passes: each attempt may take
 * REQUEST_TIMEOUT_MS (HOST_REQUEST_TIMEOUT_MS on a host) at most, less near the deadline,
 * with `intervalMs` between attempts. The verdict carries the last answer; a later attempt
 * that the deadline cut short and that got none does not replace an earlier answer.
 */
export async function probe(target: SmokeTarget, opts: ProbeOptions): Promise<SmokeResult> {
  const start = Date.now();
  let attempts = 0;
  let status: number | undefined;
  let error: string | undefined;
  let health: string | undefined;
  for (;;) {
    const left = opts.deadline - Date.now();
    if (attempts > 0 && left < MIN_RETRY_MS) break;
    const budget = Math.min(requestTimeout(target), Math.max(left, 1));
    attempts++;
    const a = await attempt(target, budget, opts.ca);
    if ("health" in a) {
      health = a.health.summary;
      status = error = undefined;
      if (a.health.ok) return { ...target, outcome: "ok", health, attempts, seconds: (Date.now() - start) / 1000 };
    } else if ("status" in a) {
      status = a.status;
      error = health = undefined;
      if (a.status >= 200 && a.status < 300) return { ...target, outcome: "ok", status, attempts, seconds: (Date.now() - start) / 1000 };
    } else {
      const cutShort = budget < requestTimeout(target) && a.timedOut === true;
      if (!(cutShort && attempts > 1)) {
        status = health = undefined;
        error = a.error;
      }
    }
    if (Date.now() + opts.intervalMs >= opts.deadline) break;
    await sleep(opts.intervalMs);
  }
  return { ...target, outcome: "failed", ...(status !== undefined ? { status } : {}), ...(error !== undefined ? { error } : {}), ...(health !== undefined ? { health } : {}), attempts, seconds: (Date.now() - start) / 1000 };
}

/** Asks every target at once, each until its verdict; `progress` hears each verdict as it comes. */
export async function probeAll(targets: SmokeTarget[], opts: { timeoutMs: number; intervalMs: number; ca?: string; progress?: (r: SmokeResult) => void }): Promise<SmokeResult[]> {
  const deadline = Date.now() + opts.timeoutMs;
  return Promise.all(
    targets.map(async (t) => {
      const r = await probe(t, { deadline, intervalMs: opts.intervalMs, ca: opts.ca });
      opts.progress?.(r);
      return r;
    }),
  );
}

function verdict(r: SmokeResult): string {
  const said = r.health ?? (r.status !== undefined ? `HTTP ${r.status}` : r.error);
  return r.outcome === "ok" ? `ok (${said})` : `FAILED (${said})`;
}

const where = (r: SmokeResult) => (r.via === "ssh" ? `${r.url} on the host (ssh)` : r.via === "elb" ? `target health of ${r.url}` : r.url);

/** The report as text: one line per check (front doors, then hosts), then the skipped services and a summary. */
export function formatSmoke(report: SmokeReport): string {
  const rows = report.results.map((r) => [r.service, r.host, where(r), verdict(r), `${r.attempts} attempt${r.attempts === 1 ? "" : "s"}`, `${r.seconds.toFixed(1)}s`]);
  const widths = rows.reduce((w, row) => row.map((c, i) => Math.max(w[i] ?? 0, c.length)), [] as number[]);
  const lines = [`Smoke test of stack ${report.stack}:`];
  for (const row of rows) lines.push(`  ${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join("  ")}`);
  for (const s of report.skipped) lines.push(`  ${s.service}  (not checked: ${s.reason})`);
  const failed = report.results.filter((r) => r.outcome === "failed").length;
  lines.push(`${report.results.length - failed} ok, ${failed} failed${report.skipped.length ? `, ${report.skipped.length} not checked` : ""}.`);
  return `${lines.join("\n")}\n`;
}

/** The pulumi CLI: the one on PATH, else the repository's own (the `pulumi` dev dependency). */
function pulumiCli(): string {
  const onPath = (process.env.PATH ?? "").split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, "pulumi")));
  return onPath ? "pulumi" : path.join(REPO_ROOT, "node_modules", ".bin", "pulumi");
}

/** The stack's outputs as `pulumi stack output --json --stack <stack>` prints them. */
function outputsFromPulumi(stack: string): Promise<{ text: string; source: string }> {
  const source = `pulumi stack output --json --stack ${stack}`;
  return new Promise((resolve, reject) => {
    execFile(pulumiCli(), ["stack", "output", "--json", "--stack", stack], { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) {
        const why = (stderr.trim().split("\n").filter(Boolean).pop() ?? err.message).trim();
        reject(new DockyardError(`${source}: failed: ${why} (or pass the outputs with --outputs FILE)`, EXIT.usage));
      } else resolve({ text: stdout, source });
    });
  });
}

/** The PEM certificates of --ca-file; unreadable or without a certificate is bad usage. */
function readCaFile(file: string): string {
  let pem: string;
  try {
    pem = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DockyardError(`--ca-file ${file}: cannot read it (${code === "ENOENT" ? "no such file" : (e as Error).message})`, EXIT.usage);
  }
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(pem)) throw new DockyardError(`--ca-file ${file}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`, EXIT.usage);
  return pem;
}

/** Runs `smoke` and returns the exit code; output goes to the given writers. */
export async function runSmoke(args: SmokeArgs, out: Write = toStdout, err: Write = toStderr): Promise<number> {
  return reported(err, async () => {
    if (!(args.timeout > 0) || !(args.interval > 0)) throw new DockyardError(`--timeout and --interval must be positive numbers of seconds (got ${args.timeout}, ${args.interval})`, EXIT.usage);
    // Empty is unset, so CI can pass a variable that may be empty (`--tls-name "$TLS_NAME"`).
    const tlsName = args.tlsName === "" ? undefined : args.tlsName;
    if (tlsName !== undefined && !HOSTNAME.test(tlsName)) throw new DockyardError(`--tls-name: ${JSON.stringify(args.tlsName)} is not a DNS name (the name the front door's certificate is for)`, EXIT.usage);
    const frontDoor = args.frontDoor ?? "request";
    if (!FRONT_DOOR_CHECKS.includes(frontDoor)) throw new DockyardError(`--front-door: ${JSON.stringify(args.frontDoor)}; expected ${FRONT_DOOR_CHECKS.join(" or ")}`, EXIT.usage);
    const ca = args.caFile !== undefined ? readCaFile(args.caFile) : undefined;
    const spec = loadStackSpec(args.stack, { dir: args.stacksDir, environmentFile: args.environment });
    let text: string;
    let source: string;
    if (args.outputs !== undefined) {
      source = args.outputs;
      try {
        text = fs.readFileSync(args.outputs, "utf8");
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new DockyardError(`${source}: cannot read the outputs file (${code === "ENOENT" ? "no such file" : (e as Error).message})`, EXIT.usage);
      }
    } else {
      ({ text, source } = await outputsFromPulumi(args.stack));
    }
    const { targets, skipped } = smokeTargets(spec, parseOutputs(text, source), source, { tlsName, frontDoor });
    err(`Checking ${targets.length} endpoint${targets.length === 1 ? "" : "s"} of stack ${args.stack} (up to ${args.timeout}s, every ${args.interval}s)...\n`);
    const results = await probeAll(targets, {
      timeoutMs: args.timeout * 1000,
      intervalMs: args.interval * 1000,
      ca,
      progress: (r) => err(`  ${r.service} on ${r.host}: ${verdict(r)}\n`),
    });
    const report: SmokeReport = { stack: args.stack, ok: results.every((r) => r.outcome === "ok"), results, skipped };
    out(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatSmoke(report));
    return report.ok ? EXIT.ok : EXIT.failure;
  });
}

export const smokeCommand: CommandModule<object, SmokeArgs> = {
  command: "smoke <stack>",
  describe: "Check every published service's health path at its front door and on every host that runs it (over the host's SSH connection), through the stack's outputs",
  builder: (y) =>
    withSourceOptions(y)
      .positional("stack", { type: "string", demandOption: true, describe: "Stack name: dev, test, prod or your own (stacks/Pulumi.<stack>.yaml)" })
      .option("outputs", { type: "string", describe: "Read the stack outputs from this JSON file (what `pulumi stack output --json` prints) instead of running that command" })
      .option("timeout", { type: "number", default: 120, describe: "Seconds every check has to answer 2xx (a fresh deploy's containers may still be starting)" })
      .option("interval", { type: "number", default: 3, describe: "Seconds between two attempts at one check" })
      .option("tls-name", { type: "string", describe: "With dockyard:certificateArn: the DNS name clients use (a CNAME or alias of the front door) that the certificate is for; sent as SNI and Host. Default (or empty): the load balancer's own name" })
      .option("ca-file", { type: "string", describe: "PEM file of CA certificates to trust for TLS front doors besides the bundled public roots (a certificate from a private CA); TLS is always verified" })
      .option("front-door", {
        choices: FRONT_DOOR_CHECKS,
        default: "request" as const,
        describe:
          "How each front door is checked. request: its health path asked from here, as clients ask (this machine must be inside dockyard:ingressCidrs). " +
          "health: the load balancer's own view, every host that runs the service a healthy target of the port's target group (aws elbv2 describe-target-health; what CI uses, its runner being no client)",
      })
      .option("json", { type: "boolean", default: false, describe: "Print the report as JSON (for scripts and CI)" })
      .example("$0 smoke test", "after `pulumi up --stack test`: each front door, and every replica's health path through its host's proxy")
      .example("$0 smoke prod --outputs prod-outputs.json --tls-name app.example.com --json", "from saved outputs, a TLS front door whose certificate is for app.example.com, as JSON")
      .example("$0 smoke test --front-door health", "from outside dockyard:ingressCidrs (CI): the load balancer's target health instead of a request to the front door")
      .epilog(
        "Per service with a publishPort (port and health.path from the environment definition): what clients use, its group's front door " +
          "(outputs frontDoor.<group>.dnsName; https when its protocol is TLS, http when TCP; a local host's endpoint where a group has none), " +
          "and each host that runs it (services.<name>.hosts): over the host's SSH connection (the one Pulumi uses: pinned host key, Session Manager with hostAccess ssm), " +
          "the host asks its own proxy at http://127.0.0.1:<publishPort><health.path>. A check passes on any 2xx answer; others are retried until --timeout. " +
          "ssh needs what `pulumi up` needs: a key in ssh-agent, and with hostAccess ssm the aws CLI and the Session Manager plugin. " +
          "Services without publishPort are listed as not reachable from outside (not a failure). " +
          "With --front-door health the front door is not asked: every host that runs the service must be `healthy` in the port's target group (frontDoor.<group>.targetGroupArns), with the AWS credentials `pulumi up` has. " +
          "Exit codes: 0 every check passed, 1 one did not, 2 bad usage or input (unknown stack, unreadable or malformed outputs, a bad --ca-file, --tls-name or --front-door).",
      ) as Argv<SmokeArgs>,
  handler: async (args) => {
    process.exitCode = await runSmoke(args);
  },
};
