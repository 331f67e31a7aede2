/**
 * `dockyard diff <stackA> <stackB>`: the parity check. Proves two stacks declare the
 * same resources, types and properties, apart from what the per-stack knobs
 * (KNOB_KEYS in stacks/schema.ts) change.
 *
 * Which differences the knobs explain is decided by provenance, not by guessing from
 * property names. Three renders of the real program:
 *   A   = stack A as it is;
 *   A'  = stack A's environment definition (and stack name) with stack B's knobs;
 *   B   = stack B as it is.
 * A -> A' changes only knob values, so every A -> B difference that also appears
 * there is allowed (and shown with B's values). A' -> B
 * changes everything except the knobs (environment definition, stack identity), so
 * every difference there is real, once the stack name inside resource names and
 * values is normalized (dev-app-1 vs prod-app-1). Extra hosts from a larger count
 * show up in A -> A', so they are allowed; an extra port, another engine version or a
 * different health check shows up in A' -> B.
 *
 * Exit 0 identical up to knobs, 1 real difference, 2 bad input or usage.
 */
import * as zlib from "node:zlib";
import type { Argv, CommandModule } from "yargs";
import { ConfigError, ENVIRONMENT_FILE, EnvironmentFileSchema, KNOB_KEYS, SECRET_PLACEHOLDER, readEnvironmentFile } from "../stacks";
import { COMPUTED_RE } from "./lib/mocks";
import { displayValue, isSecretValue, prepareRender, renderStack, resourceKey, type Rendered, type RenderedResource, type RenderOptions } from "./lib/render";
import { EXIT, reported, toStderr, toStdout, type Write } from "./lib/cli";

/** One difference between two rendered stacks. */
export interface Difference {
  /** `type name` with the stack name shown as `<stack>`, or `(outputs)`, or `(config)`. */
  resource: string;
  kind: "added" | "removed" | "type" | "parent" | "property" | "output" | "config" | "environment";
  /** Dotted path of the property (`ingress[1].fromPort`), when kind is property/output. */
  path?: string;
  /** Value on side A / side B, display-ready (`(computed)` for cloud-only values). */
  a?: unknown;
  b?: unknown;
  /** For multi-line text: the first line that differs (1-based); a and b are that line. */
  line?: number;
  /** For added/removed: how many of the resource's descendants came or went with it. */
  children?: number;
}

/** The result of the parity check. */
export interface ParityReport {
  a: string;
  b: string;
  /** True when the stacks are identical up to the per-stack knobs. */
  identical: boolean;
  /** Differences the knobs explain (A -> A'). */
  allowed: Difference[];
  /** Every other difference (A' -> B). */
  real: Difference[];
  /** The knobs the schema allows to differ. */
  knobKeys: string[];
}

// ---------------------------------------------------------------------------------
// Comparison (pure)
// ---------------------------------------------------------------------------------

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Occurrences of a stack name as a token (not inside a longer word such as "latest"). */
function stackTokenRe(stack: string, flags = "g"): RegExp {
  return new RegExp(`(?<![A-Za-z0-9])${escapeRe(stack)}(?![A-Za-z0-9])`, flags);
}

/** A resource name with its stack name shown as `<stack>`. */
export function normalizeName(name: string, stack: string): string {
  return name.replace(stackTokenRe(stack), "<stack>");
}

/**
 * True if `sa` (rendered for stack `a`) equals `sb` (for stack `b`) once the stack
 * name is taken into account: each token occurrence of `a` in `sa` may stand for `b`
 * (names, tags) or stay as it is (`/dev/xvdf` is a device, not the dev stack).
 * Base64 (and gzip+base64) payloads such as user-data are compared decoded.
 */
export function sameString(sa: string, sb: string, a: string, b: string): boolean {
  if (sa === sb) return true;
  // Fabricated stand-ins that cannot carry a stack name (mock host keys are hashes of
  // the resource name) compare as "computed"; `computed(<name>.<field>)` keeps its name.
  const ca = canonicalComputed(sa);
  const cb = canonicalComputed(sb);
  if (ca !== sa || cb !== sb) return sameString(ca, cb, a, b);
  if (a !== b && stackTokenRe(a, "").test(sa)) {
    const parts = sa.split(stackTokenRe(a));
    const pattern = parts.map(escapeRe).join(`(?:${escapeRe(a)}|${escapeRe(b)})`);
    if (pattern.length < 200_000 && new RegExp(`^${pattern}$`, "s").test(sb)) return true;
  }
  const da = decodePayload(sa);
  const db = decodePayload(sb);
  return da !== undefined && db !== undefined && (da !== sa || db !== sb) && sameString(da, db, a, b);
}

function canonicalComputed(s: string): string {
  return s.replace(COMPUTED_RE, (m) => (m.startsWith("computed(") || m.startsWith("vol-") ? m : "(computed)"));
}

/** The text inside a base64 (optionally gzipped) payload, or undefined if it is not one. */
function decodePayload(s: string): string | undefined {
  if (s.length < 16 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return undefined;
  let buf = Buffer.from(s, "base64");
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch {
      return undefined;
    }
  }
  const text = buf.toString("utf8");
  // Only text payloads: binary would decode to replacement characters.
  return text.includes("\uFFFD") ? undefined : text;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

function joinPath(base: string, key: string | number): string {
  if (typeof key === "number") return `${base}[${key}]`;
  const k = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  return base ? `${base}.${k}` : k;
}

/** Deep comparison; pushes one entry per differing leaf (arrays of other length: the array). */
/**
 * For multi-line text (scripts, user-data, configs; base64 payloads decoded), the
 * first line that differs, instead of two whole documents.
 */
export function textDetail(va: string, vb: string, stacks: { a: string; b: string }): { a: unknown; b: unknown; line?: number } {
  const ta = decodePayload(va) ?? va;
  const tb = decodePayload(vb) ?? vb;
  if (!ta.includes("\n") && !tb.includes("\n")) return { a: va, b: vb };
  const la = ta.split("\n");
  const lb = tb.split("\n");
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] === undefined || lb[i] === undefined || !sameString(la[i], lb[i], stacks.a, stacks.b)) {
      return { a: la[i] ?? "(no such line)", b: lb[i] ?? "(no such line)", line: i + 1 };
    }
  }
  return { a: va, b: vb };
}

export function compareValues(va: unknown, vb: unknown, stacks: { a: string; b: string }, path = "", out: { path: string; a: unknown; b: unknown; line?: number }[] = []) {
  if (isSecretValue(va) || isSecretValue(vb)) {
    // Compared, never shown: a differing secret is reported by path only.
    const inner = (v: unknown) => (isSecretValue(v) ? (v as { value?: unknown }).value : v);
    if (compareValues(inner(va), inner(vb), stacks).length > 0 || isSecretValue(va) !== isSecretValue(vb)) {
      out.push({ path, a: isSecretValue(va) ? SECRET_PLACEHOLDER : "(not secret)", b: isSecretValue(vb) ? SECRET_PLACEHOLDER : "(not secret)" });
    }
  } else if (typeof va === "string" && typeof vb === "string") {
    if (!sameString(va, vb, stacks.a, stacks.b)) out.push({ path, ...textDetail(va, vb, stacks) });
  } else if (Array.isArray(va) && Array.isArray(vb) && va.length === vb.length) {
    va.forEach((x, i) => compareValues(x, vb[i], stacks, joinPath(path, i), out));
  } else if (isObject(va) && isObject(vb)) {
    // Keys may contain the stack name too (hosts by name): match them normalized.
    const ka = new Map(Object.keys(va).map((k) => [normalizeName(k, stacks.a), k]));
    const kb = new Map(Object.keys(vb).map((k) => [normalizeName(k, stacks.b), k]));
    const keys = [...new Set([...ka.keys(), ...kb.keys()])].sort((x, y) => x.localeCompare(y, "en", { numeric: true }));
    for (const k of keys) {
      const xa = ka.has(k) ? va[ka.get(k)!] : undefined;
      const xb = kb.has(k) ? vb[kb.get(k)!] : undefined;
      compareValues(xa, xb, stacks, joinPath(path, k), out);
    }
  } else if (JSON.stringify(va) !== JSON.stringify(vb)) {
    out.push({ path, a: va, b: vb });
  }
  return out;
}

/** What identifies a difference across comparisons: kind, resource and property path. */
export function differenceKey(d: Difference): string {
  return `${d.kind}|${d.resource}|${d.path ?? ""}`;
}

function label(r: { type: string; name: string }, stack: string): string {
  return `${r.type} ${normalizeName(r.name, stack)}`;
}

/** Number of descendants of each resource, by key. */
function descendantCounts(resources: RenderedResource[]): Map<string, number> {
  const counts = new Map<string, number>();
  const byKey = new Map(resources.map((r) => [resourceKey(r), r]));
  for (const r of resources) {
    const seen = new Set<string>();
    let p = r.parent;
    while (p && byKey.has(p) && !seen.has(p)) {
      seen.add(p);
      counts.set(p, (counts.get(p) ?? 0) + 1);
      p = byKey.get(p)!.parent;
    }
  }
  return counts;
}

/**
 * Compares two renders resource by resource. Resources are matched by name with each
 * side's stack name normalized, then by type; properties and parents are compared
 * with sameString's stack-name rule. A resource added or removed together with its
 * parent is folded into the parent's entry (counted in `children`).
 */
export function compareRendered(ra: Rendered, rb: Rendered): Difference[] {
  const stacks = { a: ra.stack, b: rb.stack };
  const diffs: Difference[] = [];
  const group = (r: Rendered) => {
    const m = new Map<string, RenderedResource[]>();
    for (const x of r.resources) {
      const k = normalizeName(x.name, r.stack);
      m.set(k, [...(m.get(k) ?? []), x]);
    }
    return m;
  };
  const ga = group(ra);
  const gb = group(rb);
  const normParent = (p: string | undefined, stack: string) => (p ? normalizeName(p, stack) : "(stack)");
  const onlyA: RenderedResource[] = [];
  const onlyB: RenderedResource[] = [];
  const names = [...new Set([...ga.keys(), ...gb.keys()])].sort((x, y) => x.localeCompare(y, "en", { numeric: true }));
  for (const n of names) {
    const la = [...(ga.get(n) ?? [])];
    const lb = [...(gb.get(n) ?? [])];
    for (const x of [...la]) {
      const i = lb.findIndex((y) => y.type === x.type);
      if (i < 0) continue;
      const y = lb.splice(i, 1)[0];
      la.splice(la.indexOf(x), 1);
      if (normParent(x.parent, ra.stack) !== normParent(y.parent, rb.stack)) {
        diffs.push({ resource: label(x, ra.stack), kind: "parent", a: normParent(x.parent, ra.stack), b: normParent(y.parent, rb.stack) });
      }
      for (const d of compareValues(x.inputs, y.inputs, stacks)) {
        diffs.push({ resource: label(x, ra.stack), kind: "property", path: d.path, a: displayValue(d.a), b: displayValue(d.b), ...(d.line ? { line: d.line } : {}) });
      }
    }
    if (la.length === 1 && lb.length === 1) {
      diffs.push({ resource: n, kind: "type", a: la[0].type, b: lb[0].type });
      continue;
    }
    onlyA.push(...la);
    onlyB.push(...lb);
  }
  const fold = (only: RenderedResource[], all: RenderedResource[], stack: string, kind: "added" | "removed") => {
    const keys = new Set(only.map(resourceKey));
    const counts = descendantCounts(all);
    for (const r of only) {
      if (r.parent && keys.has(r.parent)) continue; // reported with its parent
      const d: Difference = { resource: label(r, stack), kind };
      const c = counts.get(resourceKey(r)) ?? 0;
      if (c > 0) d.children = c;
      diffs.push(d);
    }
  };
  fold(onlyA, ra.resources, ra.stack, "removed");
  fold(onlyB, rb.resources, rb.stack, "added");
  for (const d of compareValues(ra.outputs, rb.outputs, stacks)) {
    diffs.push({ resource: "(outputs)", kind: "output", path: d.path, a: displayValue(d.a), b: displayValue(d.b), ...(d.line ? { line: d.line } : {}) });
  }
  return diffs;
}

// ---------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------

/** Where each side's files come from. */
export interface DiffSources {
  /** Stack files directory for both sides (default stacks/). */
  stacksDir?: string;
  /** Environment definition for both sides (default stacks/environment.yaml). */
  environment?: string;
  aStacksDir?: string;
  bStacksDir?: string;
  aEnvironment?: string;
  bEnvironment?: string;
  /** Program instead of index.ts (tests). */
  program?: string;
}

/** Leaves of a parsed environment definition, by dotted path (arrays as values). */
function leaves(v: unknown, at = ""): [string, unknown][] {
  if (v && typeof v === "object" && !Array.isArray(v)) return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => leaves(x, at ? `${at}.${k}` : k));
  return [[at, v]];
}

/**
 * The keys in which the two sides' environment definitions differ, defaults applied (an
 * absent `fleet` is `fleet.mode: static`): so a change of the definition itself, such as
 * moving to swarm mode, is named as such, besides what it does to the resources.
 */
export function environmentDifferences(a: string, b: string, fileA = ENVIRONMENT_FILE, fileB = ENVIRONMENT_FILE): Difference[] {
  if (fileA === fileB) return [];
  const pa = EnvironmentFileSchema.safeParse(readEnvironmentFile(a, fileA));
  const pb = EnvironmentFileSchema.safeParse(readEnvironmentFile(b, fileB));
  if (!pa.success || !pb.success) return [];
  const la = new Map(leaves(pa.data));
  const lb = new Map(leaves(pb.data));
  return [...new Set([...la.keys(), ...lb.keys()])]
    .sort()
    .filter((k) => JSON.stringify(la.get(k)) !== JSON.stringify(lb.get(k)))
    .map((k): Difference => ({ resource: "(environment)", kind: "environment", path: k, a: la.get(k), b: lb.get(k) }));
}

/** Runs the three renders and classifies every difference. Throws ConfigError on bad input. */
export async function checkParity(a: string, b: string, src: DiffSources = {}, progress: (s: string) => void = () => {}): Promise<ParityReport> {
  const optsA: RenderOptions = { stacksDir: src.aStacksDir ?? src.stacksDir, environmentFile: src.aEnvironment ?? src.environment, program: src.program };
  const optsB: RenderOptions = { stacksDir: src.bStacksDir ?? src.stacksDir, environmentFile: src.bEnvironment ?? src.environment, program: src.program };
  const optsMixed: RenderOptions = { ...optsA, knobsFrom: b, knobsDir: optsB.stacksDir };
  // Each side must be valid on its own (bad input: exit 2, nothing rendered).
  const bad: ConfigError[] = [];
  for (const [s, o] of [[a, optsA], [b, optsB]] as const) {
    try {
      prepareRender(s, o);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      bad.push(e);
    }
  }
  if (bad.length === 1) throw bad[0];
  // Every problem line names its own stack.
  if (bad.length === 2) throw new ConfigError(`${a}+${b}`, bad.flatMap((e) => e.problems));

  const base = { a, b, knobKeys: [...KNOB_KEYS] };
  const environment = environmentDifferences(a, b, optsA.environmentFile ?? ENVIRONMENT_FILE, optsB.environmentFile ?? ENVIRONMENT_FILE);
  // Stack B's knobs must fit stack A's environment; if they do not, the environments differ.
  try {
    prepareRender(a, optsMixed);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const real = e.problems.map((p): Difference => ({ resource: "(config)", kind: "config", a: `environment of ${a}`, b: p }));
    return { ...base, identical: false, allowed: [], real: [...environment, ...real] };
  }
  progress(`Rendering ${a}, ${b}, and ${a}'s environment with ${b}'s knobs (3 runs of the program, in parallel)...\n`);
  const [ra, rb, rMixed] = await Promise.all([renderStack(a, optsA), renderStack(b, optsB), renderStack(a, optsMixed)]);
  // Allowed: the differences between A and B that the knobs alone produce (A -> A'),
  // shown with B's own values.
  const byKnobs = new Set(compareRendered(ra, rMixed).map(differenceKey));
  const allowed = compareRendered(ra, rb).filter((d) => byKnobs.has(differenceKey(d)));
  const real = [...environment, ...compareRendered(rMixed, rb)];
  return { ...base, identical: real.length === 0, allowed, real };
}

/** Two differing values for a table, long strings cut around where they start to differ. */
function cells(a: unknown, b: unknown, width = 48): [string, string] {
  let sa = a === undefined ? "-" : typeof a === "string" ? a : JSON.stringify(a);
  let sb = b === undefined ? "-" : typeof b === "string" ? b : JSON.stringify(b);
  let p = 0;
  while (p < sa.length && p < sb.length && sa[p] === sb[p]) p++;
  if (p > 12 && (sa.length > width || sb.length > width)) {
    sa = `…${sa.slice(p - 8)}`;
    sb = `…${sb.slice(p - 8)}`;
  }
  const cut = (s: string) => (s.length > width ? `${s.slice(0, width - 1)}…` : s);
  return [cut(sa), cut(sb)];
}

function rowOf(d: Difference, a: string, b: string): [string, string, string, string] {
  switch (d.kind) {
    case "added":
      return [d.resource, `(only in ${b}${d.children ? `, +${d.children} children` : ""})`, "-", "present"];
    case "removed":
      return [d.resource, `(only in ${a}${d.children ? `, +${d.children} children` : ""})`, "present", "-"];
    case "type":
      return [d.resource, "(type)", ...cells(d.a, d.b)];
    case "parent":
      return [d.resource, "(parent)", ...cells(d.a, d.b)];
    case "config":
      return [d.resource, "", "", String(d.b)];
    default:
      return [d.resource, `${d.path ?? ""}${d.line ? ` line ${d.line}` : ""}`, ...cells(d.a, d.b)];
  }
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => "  " + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ")).join("\n") + "\n";
}

/** The report as text: allowed differences as a table, real ones as errors. */
export function formatParity(r: ParityReport): string {
  let s = "";
  if (r.allowed.length > 0) {
    s += `Allowed differences (per-stack knobs: ${r.knobKeys.join(", ")}):\n`;
    s += table([["RESOURCE", "PROPERTY", r.a, r.b], ...r.allowed.map((d) => rowOf(d, r.a, r.b))]);
  } else {
    s += "Allowed differences: none\n";
  }
  s += "\n";
  if (r.real.length === 0) {
    s += `OK: ${r.a} and ${r.b} are identical apart from the per-stack knobs.\n`;
  } else {
    for (const d of r.real) {
      const [res, prop, va, vb] = rowOf(d, r.a, r.b);
      if (d.kind === "config") s += `error: ${r.b}'s knobs do not fit ${r.a}'s environment: ${vb}\n`;
      else if (d.kind === "added" || d.kind === "removed") s += `error: ${res} ${prop}\n`;
      else s += `error: ${res}: ${prop} differs: ${r.a}=${va} ${r.b}=${vb}\n`;
    }
    s += `\nFAILED: ${r.real.length} difference${r.real.length === 1 ? "" : "s"} between ${r.a} and ${r.b} that no per-stack knob explains.\n`;
  }
  return s;
}

/** The diff command's arguments: the two stacks plus where each side's files come from. */
export interface DiffArgs extends DiffSources {
  stackA: string;
  stackB: string;
  json: boolean;
}

/** Runs `diff` and returns the exit code. */
export async function runDiff(
  args: DiffArgs,
  out: Write = toStdout,
  err: Write = toStderr,
): Promise<number> {
  return reported(err, async () => {
    const report = await checkParity(args.stackA, args.stackB, args, err);
    out(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatParity(report));
    return report.identical ? EXIT.ok : EXIT.failure;
  });
}

export const diffCommand: CommandModule<object, DiffArgs> = {
  command: "diff <stackA> <stackB>",
  describe: "Parity check: prove two stacks differ only in their per-stack knobs",
  builder: (y) =>
    y
      .positional("stackA", { type: "string", demandOption: true, describe: "First stack, e.g. dev" })
      .positional("stackB", { type: "string", demandOption: true, describe: "Second stack, e.g. prod" })
      .option("json", { type: "boolean", default: false, describe: "Print the report as JSON" })
      .option("stacks-dir", { type: "string", describe: "Directory with the Pulumi.<stack>.yaml files for both sides (default: stacks/)" })
      .option("environment", { type: "string", describe: "Environment definition for both sides (default: stacks/environment.yaml)" })
      .option("a-stacks-dir", { type: "string", describe: "Stack files directory for stackA only" })
      .option("b-stacks-dir", { type: "string", describe: "Stack files directory for stackB only" })
      .option("a-environment", { type: "string", describe: "Environment definition for stackA only" })
      .option("b-environment", { type: "string", describe: "Environment definition for stackB only (e.g. a proposed change)" })
      .option("program", { type: "string", hidden: true, describe: "Program to run instead of index.ts (tests)" })
      .example("$0 diff dev prod", "exit 0 if prod is dev apart from sizes, counts, region, CIDRs, registry and digests")
      .example("$0 diff test prod --b-environment /tmp/environment.yaml", "would this environment change break parity?")
      .epilog(
        "Renders both stacks with the real program under Pulumi's mock runtime, plus stackA's environment with " +
          "stackB's knobs. Differences the knobs explain are listed as allowed; any other difference is an error. " +
          "Exit codes: 0 identical up to knobs, 1 real difference, 2 bad stack configuration or usage.",
      ) as Argv<DiffArgs>,
  handler: async (args) => {
    process.exitCode = await runDiff(args);
  },
};
