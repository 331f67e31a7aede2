/**
 * The AWS CLI calls the operator's CLI makes itself (not through Pulumi): one runner
 * (scripts/lib/process.ts, as ssh to a host is run) and one builder per call, each with the
 * reader of its answer. The CLI is the `aws` first on PATH (v2, as CI installs it and the
 * Session Manager ProxyCommand already needs), with the credentials of this process's
 * environment: the deploy role in CI.
 */
import { runProcess, lastLine, type ProcessResult } from "./process";

/** argv of `aws elbv2 describe-target-health` for one target group (every registered target), JSON out. */
export function describeTargetHealthArgv(region: string, targetGroupArn: string): string[] {
  return ["aws", "elbv2", "describe-target-health", "--region", region, "--target-group-arn", targetGroupArn, "--output", "json"];
}

/** Runs an AWS CLI argv (from a builder here), killed at `timeoutMs`. */
export function runAws(argv: string[], timeoutMs: number): Promise<ProcessResult> {
  return runProcess(argv, { timeoutMs, cannotRun: (code) => `cannot run ${argv[0]} (${code}); smoke --front-door health asks the load balancer with the AWS CLI` });
}

/** One target as DescribeTargetHealth reports it (TargetHealthDescription: Target.Id/Port, TargetHealth.State/Reason/Description). */
export interface TargetHealthEntry {
  id: string;
  port?: number;
  /** initial | healthy | unhealthy | unused | draining | unavailable (ELBv2 API reference, TargetHealth). */
  state: string;
  reason?: string;
  description?: string;
}

export type TargetHealthAnswer = { targets: TargetHealthEntry[] } | { error: string; timedOut?: boolean };

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const optString = (v: unknown) => (typeof v === "string" ? v : undefined);

/**
 * Reads the result of describeTargetHealthArgv: the targets, or why there are none. Exit
 * status per the AWS CLI's return codes: 0 the service answered; 254 it answered with an
 * error (AccessDenied, TargetGroupNotFound), 253 no credentials or configuration, 252 bad
 * syntax, 255 any other failure: each is the CLI's last line of stderr.
 */
export function targetHealthAnswer(r: ProcessResult, timeoutMs: number): TargetHealthAnswer {
  if (r.spawnError) return { error: r.spawnError };
  if (r.timedOut) return { error: `no answer from the AWS CLI within ${(timeoutMs / 1000).toFixed(1)}s`, timedOut: true };
  if (r.code !== 0) return { error: `aws (exit ${r.code ?? "by a signal"}): ${lastLine(r.stderr) || "no message"}` };
  let doc: unknown;
  try {
    doc = JSON.parse(r.stdout);
  } catch (e) {
    return { error: `aws elbv2 describe-target-health printed no JSON (${(e as Error).message})` };
  }
  const list = isObject(doc) ? doc.TargetHealthDescriptions : undefined;
  if (!Array.isArray(list)) return { error: "aws elbv2 describe-target-health: no TargetHealthDescriptions list in its answer" };
  const targets: TargetHealthEntry[] = [];
  for (const d of list) {
    const t = isObject(d) && isObject(d.Target) ? d.Target : undefined;
    const h = isObject(d) && isObject(d.TargetHealth) ? d.TargetHealth : undefined;
    if (!t || typeof t.Id !== "string" || !h || typeof h.State !== "string") return { error: `aws elbv2 describe-target-health: a target without Target.Id or TargetHealth.State: ${JSON.stringify(d)}` };
    targets.push({ id: t.Id, ...(typeof t.Port === "number" ? { port: t.Port } : {}), state: h.State, ...(optString(h.Reason) ? { reason: h.Reason as string } : {}), ...(optString(h.Description) ? { description: h.Description as string } : {}) });
  }
  return { targets };
}

/** A host that must be serving through the target group: its name and EC2 instance id. */
export interface ExpectedTarget {
  host: string;
  instanceId: string;
}

const said = (t: TargetHealthEntry) => `${t.state}${t.reason ? ` ${t.reason}` : ""}${t.description ? ` (${t.description})` : ""}`;

/**
 * The load balancer's own view of one published port: ok when every host that runs the
 * service is a `healthy` target (its health check at the proxy's monitor passes, so the
 * load balancer sends it clients), and there is at least one. A host missing from the
 * target group, or in any other state, fails (`initial` too: it gets no traffic yet; smoke
 * retries until its deadline). Targets of other instances are not counted: `draining` is an
 * instance being deregistered (a replaced host, for the deregistration delay), and a host of
 * the group without a replica of this service answers the monitor 503 by design.
 */
export function targetHealthVerdict(targets: TargetHealthEntry[], expected: ExpectedTarget[]): { ok: boolean; summary: string } {
  const byId = new Map(targets.map((t) => [t.id, t]));
  const bad: string[] = [];
  for (const e of expected) {
    const t = byId.get(e.instanceId);
    if (!t) bad.push(`${e.host} (${e.instanceId}) not registered`);
    else if (t.state !== "healthy") bad.push(`${e.host} (${e.instanceId}) ${said(t)}`);
  }
  const wanted = new Set(expected.map((e) => e.instanceId));
  const others = targets.filter((t) => !wanted.has(t.id)).map((t) => `${t.id} ${said(t)}`);
  const notCounted = others.length ? `; not counted: ${others.join(", ")}` : "";
  if (expected.length === 0) return { ok: false, summary: `no host runs a replica${notCounted}` };
  if (bad.length) return { ok: false, summary: `${bad.join(", ")}${notCounted}` };
  return { ok: true, summary: `healthy: ${expected.map((e) => e.host).join(", ")}${notCounted}` };
}
