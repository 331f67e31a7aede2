/**
 * `dockyard smoke <stack>`: is every published service answering on every host that runs
 * it? Reads the stack's outputs (`pulumi stack output --json`, or a file), takes each
 * service's publishPort and health path from the environment definition, and asks
 * http://<host publicIp>:<publishPort><health.path> on each host that runs a replica (the
 * host's proxy serves it there), retrying until a deadline. Exit 0 every endpoint answered
 * 2xx, 1 one did not, 2 bad input (unknown stack, unreadable or malformed outputs).
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import { isIP } from "node:net";
import * as path from "node:path";
import type { Argv, CommandModule } from "yargs";
import { loadStackSpec, type EnvironmentSpec } from "../stacks";
import { DockyardError, EXIT, reported, toStderr, toStdout, withSourceOptions, type Write } from "./lib/cli";
import { REPO_ROOT } from "./lib/render";

export interface SmokeArgs {
  stack: string;
  /** JSON as `pulumi stack output --json --stack <stack>` prints it; default: run that command. */
  outputs?: string;
  /** Seconds until every endpoint must have answered. */
  timeout: number;
  /** Seconds between two attempts at one endpoint. */
  interval: number;
  json: boolean;
  stacksDir?: string;
  environment?: string;
}

/** One endpoint to ask: a service's health path on one host (or on the front door). */
export interface SmokeTarget {
  service: string;
  /** Host name as in hostsByName, or "frontDoor". */
  host: string;
  url: string;
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
  /** Why the last attempt failed when there was no answer (refused, timeout, ...). */
  error?: string;
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

/** How long one request may take at most (less when the deadline is nearer). */
export const REQUEST_TIMEOUT_MS = 5_000;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
/** An address a URL can carry: an IP, or a DNS name. */
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const isAddress = (v: unknown): v is string => typeof v === "string" && (isIP(v) !== 0 || HOSTNAME.test(v));
const urlHost = (address: string) => (isIP(address) === 6 ? `[${address}]` : address);

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
 * What to ask, from the environment definition and the stack's outputs: for each service
 * with a publishPort, each host that runs a replica (outputs.services.<svc>.hosts), at its
 * publicIp (outputs.hostsByName.<host>.publicIp); services without publishPort are skipped.
 * When the outputs hold a front door (`frontDoor.dnsName`, a later load balancer), each
 * published service is asked there too, on the same port. Malformed outputs are bad input.
 */
export function smokeTargets(spec: EnvironmentSpec, outputs: Record<string, unknown>, source: string): { targets: SmokeTarget[]; skipped: SmokeSkip[] } {
  const bad = (what: string) => new DockyardError(`${source}: ${what}`, EXIT.usage);
  if (outputs.stack !== undefined && outputs.stack !== spec.stack) throw bad(`these are the outputs of stack "${String(outputs.stack)}", not "${spec.stack}"`);
  const hosts = outputs.hostsByName;
  const services = outputs.services;
  if (!isObject(hosts)) throw bad("hostsByName: missing or not an object (host name -> { publicIp, ... })");
  if (!isObject(services)) throw bad("services: missing or not an object (service name -> { hosts, ... })");
  const targets: SmokeTarget[] = [];
  const skipped: SmokeSkip[] = [];
  const frontDoor = isObject(outputs.frontDoor) ? outputs.frontDoor.dnsName : undefined;
  if (frontDoor !== undefined && !isAddress(frontDoor)) throw bad(`frontDoor.dnsName: ${JSON.stringify(frontDoor)} is not a DNS name`);
  for (const svc of [...spec.services].sort((a, b) => a.name.localeCompare(b.name))) {
    const out = services[svc.name];
    if (out === undefined) {
      skipped.push({ service: svc.name, reason: "not in the stack's outputs (not deployed)" });
      continue;
    }
    if (!isObject(out) || !Array.isArray(out.hosts) || !out.hosts.every((h) => typeof h === "string")) throw bad(`services.${svc.name}.hosts: missing or not a list of host names`);
    if (svc.publishPort === undefined) {
      skipped.push({ service: svc.name, reason: "no publishPort: not reachable from outside" });
      continue;
    }
    if (out.hosts.length === 0) skipped.push({ service: svc.name, reason: "no host runs a replica (services.<name>.hosts is empty)" });
    for (const host of out.hosts as string[]) {
      const h = hosts[host];
      if (!isObject(h)) throw bad(`services.${svc.name}.hosts names "${host}", which is not in hostsByName`);
      if (!isAddress(h.publicIp)) throw bad(`hostsByName.${host}.publicIp: ${JSON.stringify(h.publicIp)} is not an IP address or DNS name`);
      targets.push({ service: svc.name, host, url: `http://${urlHost(h.publicIp)}:${svc.publishPort}${svc.health.path}` });
    }
    if (frontDoor) targets.push({ service: svc.name, host: "frontDoor", url: `http://${frontDoor}:${svc.publishPort}${svc.health.path}` });
  }
  return { targets, skipped };
}

const isTimeout = (e: unknown) => (e as Error)?.name === "TimeoutError" || (e as Error)?.name === "AbortError";

/** Why a fetch failed, in a few words: the system error code where there is one. */
function fetchError(e: unknown, timeoutMs: number): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (isTimeout(err)) return `no answer within ${(timeoutMs / 1000).toFixed(1)}s`;
  const code = err?.cause?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET") return "connection reset";
  if (code) return code;
  return err?.cause?.message ?? err?.message ?? String(e);
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
 * Asks one endpoint until it answers 2xx or the deadline passes: each request may take
 * REQUEST_TIMEOUT_MS at most (less near the deadline), with `intervalMs` between attempts.
 * The verdict carries the last answer; a later request that the deadline cut short and that
 * got none does not replace an earlier answer (status or error).
 */
export async function probe(target: SmokeTarget, opts: { deadline: number; intervalMs: number }): Promise<SmokeResult> {
  const start = Date.now();
  let attempts = 0;
  let status: number | undefined;
  let error: string | undefined;
  for (;;) {
    const left = opts.deadline - Date.now();
    if (attempts > 0 && left < MIN_RETRY_MS) break;
    const budget = Math.min(REQUEST_TIMEOUT_MS, Math.max(left, 1));
    attempts++;
    try {
      const res = await fetch(target.url, { signal: AbortSignal.timeout(budget), redirect: "manual", headers: { "user-agent": "dockyard-smoke" } });
      // Read nothing more than the status; free the connection.
      await res.body?.cancel().catch(() => undefined);
      status = res.status;
      error = undefined;
      if (res.status >= 200 && res.status < 300) return { ...target, outcome: "ok", status, attempts, seconds: (Date.now() - start) / 1000 };
    } catch (e) {
      const cutShort = budget < REQUEST_TIMEOUT_MS && isTimeout(e);
      if (!(cutShort && attempts > 1)) {
        status = undefined;
        error = fetchError(e, budget);
      }
    }
    if (Date.now() + opts.intervalMs >= opts.deadline) break;
    await sleep(opts.intervalMs);
  }
  return { ...target, outcome: "failed", ...(status !== undefined ? { status } : {}), ...(error !== undefined ? { error } : {}), attempts, seconds: (Date.now() - start) / 1000 };
}

/** Asks every target at once, each until its verdict; `progress` hears each verdict as it comes. */
export async function probeAll(targets: SmokeTarget[], opts: { timeoutMs: number; intervalMs: number; progress?: (r: SmokeResult) => void }): Promise<SmokeResult[]> {
  const deadline = Date.now() + opts.timeoutMs;
  return Promise.all(
    targets.map(async (t) => {
      const r = await probe(t, { deadline, intervalMs: opts.intervalMs });
      opts.progress?.(r);
      return r;
    }),
  );
}

function verdict(r: SmokeResult): string {
  if (r.outcome === "ok") return `ok (HTTP ${r.status})`;
  return `FAILED (${r.status !== undefined ? `HTTP ${r.status}` : r.error})`;
}

/** The report as text: one line per service x host, then the skipped services and a summary. */
export function formatSmoke(report: SmokeReport): string {
  const rows = report.results.map((r) => [r.service, r.host, r.url, verdict(r), `${r.attempts} attempt${r.attempts === 1 ? "" : "s"}`, `${r.seconds.toFixed(1)}s`]);
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

/** Runs `smoke` and returns the exit code; output goes to the given writers. */
export async function runSmoke(args: SmokeArgs, out: Write = toStdout, err: Write = toStderr): Promise<number> {
  return reported(err, async () => {
    if (!(args.timeout > 0) || !(args.interval > 0)) throw new DockyardError(`--timeout and --interval must be positive numbers of seconds (got ${args.timeout}, ${args.interval})`, EXIT.usage);
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
    const { targets, skipped } = smokeTargets(spec, parseOutputs(text, source), source);
    err(`Checking ${targets.length} endpoint${targets.length === 1 ? "" : "s"} of stack ${args.stack} (up to ${args.timeout}s, every ${args.interval}s)...\n`);
    const results = await probeAll(targets, {
      timeoutMs: args.timeout * 1000,
      intervalMs: args.interval * 1000,
      progress: (r) => err(`  ${r.service} on ${r.host}: ${verdict(r)}\n`),
    });
    const report: SmokeReport = { stack: args.stack, ok: results.every((r) => r.outcome === "ok"), results, skipped };
    out(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatSmoke(report));
    return report.ok ? EXIT.ok : EXIT.failure;
  });
}

export const smokeCommand: CommandModule<object, SmokeArgs> = {
  command: "smoke <stack>",
  describe: "Check every published service's health endpoint on every host that runs it, through the stack's outputs",
  builder: (y) =>
    withSourceOptions(y)
      .positional("stack", { type: "string", demandOption: true, describe: "Stack name: dev, test, prod or your own (stacks/Pulumi.<stack>.yaml)" })
      .option("outputs", { type: "string", describe: "Read the stack outputs from this JSON file (what `pulumi stack output --json` prints) instead of running that command" })
      .option("timeout", { type: "number", default: 120, describe: "Seconds every endpoint has to answer 2xx (a fresh deploy's containers may still be starting)" })
      .option("interval", { type: "number", default: 3, describe: "Seconds between two attempts at one endpoint" })
      .option("json", { type: "boolean", default: false, describe: "Print the report as JSON (for scripts and CI)" })
      .example("$0 smoke test", "after `pulumi up --stack test`: every replica's health path through its host's proxy")
      .example("$0 smoke prod --outputs prod-outputs.json --json", "from saved outputs, as JSON")
      .epilog(
        "Each host that runs a replica of a service with a publishPort serves it on its proxy at " +
          "http://<publicIp>:<publishPort><health.path> (publicIp from the outputs' hostsByName, the hosts from services.<name>.hosts, " +
          "the port and path from the environment definition). An endpoint passes on any 2xx answer; others are retried until --timeout. " +
          "Services without publishPort are listed as not reachable from outside (not a failure). " +
          "Exit codes: 0 every endpoint answered, 1 one did not, 2 bad usage or input (unknown stack, unreadable or malformed outputs).",
      ) as Argv<SmokeArgs>,
  handler: async (args) => {
    process.exitCode = await runSmoke(args);
  },
};
