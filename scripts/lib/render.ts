/**
 * Renders a stack offline: runs the real program (index.ts) for one stack under the
 * shared Pulumi mock runtime (scripts/lib/mocks.ts) and returns every resource it
 * registers, with its parent, inputs and the stack outputs, as plain JSON.
 *
 * Pulumi's runtime is global per process, so each render runs in a fresh child
 * process (scripts/lib/render-worker.ts). Configuration comes from the stack file and
 * is validated here, in the parent, before any child starts: a bad stack file never
 * reaches the program, so nothing is registered.
 *
 * The plan and diff subcommands are built on this; so are the whole-program tests.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";
import {
  ConfigError,
  ENVIRONMENT_FILE,
  PROJECT,
  SECRET_PLACEHOLDER,
  STACKS_DIR,
  parseEnvironment,
  readEnvironmentFile,
  readStackFile,
  isSecureValue,
  type EnvironmentSpec,
  type RawStackFile,
} from "../../stacks";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { COMPUTED_RE } from "./mocks";

/** The repository root: where index.ts lives. */
export const REPO_ROOT = path.resolve(__dirname, "..", "..");
/** The Pulumi program every stack runs. */
export const PROGRAM = path.join(REPO_ROOT, "index.ts");
const WORKER = path.join(__dirname, "render-worker.ts");
/**
 * Node flags of the render worker (and of the bench's SDK-floor worker, to compare alike).
 * A larger young generation: a render allocates many short-lived objects per resource, and
 * the scavenges were a quarter of its time (1,000 containers: 22 s -> 19.5 s).
 */
export const WORKER_NODE_FLAGS = ["--max-semi-space-size=64", "--import", "tsx"];

/** Where a render takes its inputs from. Defaults: the shipped stacks/ and index.ts. */
export interface RenderOptions {
  /** Directory holding Pulumi.<stack>.yaml. Default: stacks/. */
  stacksDir?: string;
  /** Environment definition to use instead of stacks/environment.yaml. */
  environmentFile?: string;
  /**
   * Take the per-stack knobs (the stack file) from this stack instead of `stack`,
   * keeping `stack` as the stack name. The parity check renders "A's environment
   * with B's knobs" this way. Default: `stack` itself.
   */
  knobsFrom?: string;
  /** Directory holding the knobsFrom stack's file. Default: stacksDir. */
  knobsDir?: string;
  /** Program to run instead of index.ts (tests use a small fixture). */
  program?: string;
  /** Render as a preview (unknown values stay unknown). Default false: mocks answer every value. */
  preview?: boolean;
  /** Give up on a render after this long. Default 120 s. */
  timeoutMs?: number;
}

/** One resource the program registered. */
export interface RenderedResource {
  type: string;
  name: string;
  /** `type::name` of the parent resource; undefined for children of the stack. */
  parent?: string;
  /** Custom (cloud) resource, or a component. */
  custom: boolean;
  /** The inputs the resource received; cloud-only values are `computed(<name>.<field>)`. */
  inputs: Record<string, unknown>;
  /** The resource options that decide what the engine does with it (set ones only). */
  options?: RenderedOptions;
}

/** Resource options as the engine sees them; resources named by resourceKey(). */
export interface RenderedOptions {
  protect?: boolean;
  retainOnDelete?: boolean;
  deleteBeforeReplace?: boolean;
  ignoreChanges?: string[];
  replaceOnChanges?: string[];
  additionalSecretOutputs?: string[];
  customTimeouts?: { create?: string; update?: string; delete?: string };
  /** Explicit dependencies (dependsOn). */
  dependsOn?: string[];
  /** The explicit provider resource, if any. */
  provider?: string;
}

/** What a stack declares, as the mock runtime saw it. */
export interface Rendered {
  project: string;
  stack: string;
  resources: RenderedResource[];
  /** Stack outputs (the program's exports); secret outputs are SECRET_PLACEHOLDER. */
  outputs: Record<string, unknown>;
}

/** What a render cost the worker process, for `npm run bench -- plan`. */
export interface RenderStats {
  /** Peak resident memory, KiB (process.resourceUsage().maxRSS). */
  maxRssKb: number;
  /** CPU time of the worker, user + system, all its threads (GC helpers too), seconds. */
  cpuSeconds?: number;
}

/** What the parent hands a render worker. */
export interface RenderRequest {
  stack: string;
  program: string;
  /** Pulumi config as the engine would pass it: every value a string. */
  config: Record<string, string>;
  secretKeys: string[];
  environmentFile?: string;
  preview: boolean;
}

/** What a render worker hands back. */
export type RenderReply =
  | { ok: true; rendered: Rendered; stats?: RenderStats }
  | { ok: false; kind: "config" | "program"; message: string };

/** The program failed while rendering (not a configuration problem). */
export class RenderError extends Error {
  constructor(
    public readonly stack: string,
    message: string,
  ) {
    super(message);
    this.name = "RenderError";
  }
}

/** Stable key of a resource: Pulumi names are unique per type. */
export function resourceKey(r: { type: string; name: string }): string {
  return `${r.type}::${r.name}`;
}

/**
 * Turns a stack file's `config:` mapping into what the Pulumi engine passes a program:
 * every value a string, structured values as JSON. Encrypted values cannot be read
 * offline; they become SECRET_PLACEHOLDER and their key is marked secret.
 */
export function toPulumiConfig(raw: RawStackFile): { config: Record<string, string>; secretKeys: string[] } {
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(raw.config ?? {})) {
    let v = value;
    let secret = false;
    if (isSecureValue(v)) {
      v = SECRET_PLACEHOLDER;
      secret = true;
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      // Pulumi keeps a map with a secure leaf secret as a whole (config set --secret --path).
      const entries = Object.entries(v as Record<string, unknown>).map(([k, x]) => {
        if (isSecureValue(x)) secret = true;
        return [k, isSecureValue(x) ? SECRET_PLACEHOLDER : x] as const;
      });
      v = Object.fromEntries(entries);
    }
    // dockyard:secrets holds secret values by definition, encrypted or not.
    if (key === `${PROJECT}:secrets`) secret = true;
    config[key] = typeof v === "string" ? v : v !== null && typeof v === "object" ? JSON.stringify(v) : String(v);
    if (secret) secretKeys.push(key);
  }
  return { config, secretKeys };
}

/**
 * Reads and validates a stack's configuration exactly as the program will see it.
 * Throws ConfigError listing every problem (naming stack, key and what is allowed).
 */
export function prepareRender(stack: string, opts: RenderOptions = {}): { request: RenderRequest; spec: EnvironmentSpec } {
  const stacksDir = opts.stacksDir ?? STACKS_DIR;
  const knobsStack = opts.knobsFrom ?? stack;
  const environmentFile = opts.environmentFile ? path.resolve(opts.environmentFile) : ENVIRONMENT_FILE;
  // The rendered stack's file must exist even when its knobs come from another stack's
  // (readStackFile refuses a bad stack name before any path is made of it).
  if (knobsStack !== stack) readStackFile(stack, stacksDir);
  const env = readEnvironmentFile(stack, environmentFile);
  let stackFile: RawStackFile;
  try {
    stackFile = readStackFile(knobsStack, opts.knobsDir ?? stacksDir);
  } catch (e) {
    // Name the stack being rendered, as well as the one the knobs came from.
    if (e instanceof ConfigError && knobsStack !== stack) throw new ConfigError(stack, e.problems.map((p) => `(knobs of stack "${knobsStack}") ${p}`));
    throw e;
  }
  // Validate first, with the same parser the program uses: bad config never reaches it.
  const spec = parseEnvironment(stack, env, stackFile);
  const { config, secretKeys } = toPulumiConfig(stackFile);
  return {
    spec,
    request: {
      stack,
      program: path.resolve(opts.program ?? PROGRAM),
      config,
      secretKeys,
      environmentFile: environmentFile === ENVIRONMENT_FILE ? undefined : environmentFile,
      preview: opts.preview ?? false,
    },
  };
}

/**
 * Runs the program for `stack` under the mock runtime in a fresh child process.
 * Throws ConfigError (bad configuration; the program never ran) or RenderError.
 */
export async function renderStack(stack: string, opts: RenderOptions = {}): Promise<Rendered> {
  const { request } = prepareRender(stack, opts);
  return (await runWorker(request, opts.timeoutMs ?? 120_000)).rendered;
}

/** renderStack, with what the render cost the worker (`npm run bench -- plan`). */
export async function renderStackMeasured(stack: string, opts: RenderOptions = {}): Promise<{ rendered: Rendered; stats?: RenderStats }> {
  const { request } = prepareRender(stack, opts);
  return runWorker(request, opts.timeoutMs ?? 120_000);
}

function runWorker(request: RenderRequest, timeoutMs: number): Promise<{ rendered: Rendered; stats?: RenderStats }> {
  return new Promise((resolve, reject) => {
    // fd 3 carries the reply, so whatever the program logs cannot corrupt it. tsx is
    // loaded in-process (not its CLI, which would start yet another process without fd 3).
    // DOCKYARD_RENDER_PROFILE=<dir>: a V8 CPU profile of the worker, for `npm run bench -- plan` work.
    const profile = process.env.DOCKYARD_RENDER_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.DOCKYARD_RENDER_PROFILE}`] : [];
    const child = spawn(process.execPath, [...profile, ...WORKER_NODE_FLAGS, WORKER], {
      cwd: REPO_ROOT,
      stdio: ["pipe", "pipe", "pipe", "pipe"],
      env: workerEnv(),
    });
    const out: Buffer[] = [];
    const log: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => log.push(d));
    child.stderr!.on("data", (d: Buffer) => log.push(d));
    (child.stdio[3] as NodeJS.ReadableStream).on("data", (d: Buffer) => out.push(d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new RenderError(request.stack, `rendering stack "${request.stack}" took longer than ${timeoutMs / 1000}s; gave up`));
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new RenderError(request.stack, `cannot start the render worker: ${e.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const text = Buffer.concat(out).toString("utf8");
      const logText = Buffer.concat(log).toString("utf8").trim();
      let reply: RenderReply | undefined;
      try {
        reply = text ? (JSON.parse(text) as RenderReply) : undefined;
      } catch {
        reply = undefined;
      }
      if (!reply) {
        reject(new RenderError(request.stack, `rendering stack "${request.stack}" failed (worker exit ${code})${logText ? `:\n${logText}` : ""}`));
      } else if (!reply.ok) {
        reject(reply.kind === "config" ? new ConfigError(request.stack, configProblems(reply.message)) : new RenderError(request.stack, reply.message));
      } else {
        resolve({ rendered: reply.rendered, stats: reply.stats });
      }
    });
    child.stdin!.end(JSON.stringify(request));
  });
}

/** The worker's environment: ours, minus anything that would point Pulumi at a real engine. */
function workerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("PULUMI_NODEJS_") || k === "PULUMI_CONFIG" || k === "PULUMI_CONFIG_SECRET_KEYS") delete env[k];
  return env;
}

/** Recovers the problem list from a ConfigError message the worker passed back. */
function configProblems(message: string): string[] {
  const lines = message.split("\n").filter((l) => l.startsWith("  - "));
  return lines.length > 0 ? lines.map((l) => l.slice(4)) : [message];
}

// ---------------------------------------------------------------------------------
// Presentation (pure)
// ---------------------------------------------------------------------------------

/**
 * The properties worth showing per resource type, as dotted paths into its inputs.
 * The one place to extend when a component starts registering a new type; a type
 * missing here is still listed, just without properties (plan --all shows every input).
 */
export const KEY_PROPERTIES: Record<string, string[]> = {
  "docker:index/service:Service": ["name", "mode.replicated.replicas", "mode.global", "taskSpec.containerSpec.image", "taskSpec.placement.constraints", "taskSpec.placement.prefs", "updateConfig.order", "updateConfig.failureAction", "endpointSpec.mode", "endpointSpec.ports"],
  "docker:index/secret:Secret": ["labels"],
  "aws:ec2/instance:Instance": ["instanceType", "ami", "availabilityZone", "subnetId", "metadataOptions.httpTokens", "metadataOptions.httpPutResponseHopLimit", "rootBlockDevice.volumeSize", "rootBlockDevice.encrypted", "keyName", "iamInstanceProfile"],
  "aws:ec2/launchTemplate:LaunchTemplate": ["instanceType", "imageId", "metadataOptions.httpTokens"],
  "aws:ec2/securityGroup:SecurityGroup": ["vpcId", "ingress", "egress"],
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ["ipProtocol", "fromPort", "toPort", "cidrIpv4", "cidrIpv6"],
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ["ipProtocol", "fromPort", "toPort", "cidrIpv4", "cidrIpv6"],
  "aws:ec2/securityGroupRule:SecurityGroupRule": ["type", "protocol", "fromPort", "toPort", "cidrBlocks"],
  "aws:ebs/volume:Volume": ["size", "type", "encrypted", "availabilityZone"],
  "aws:ec2/volumeAttachment:VolumeAttachment": ["deviceName", "instanceId", "volumeId"],
  "aws:ec2/eip:Eip": ["domain", "instance"],
  "aws:ec2/eipAssociation:EipAssociation": ["instanceId", "allocationId"],
  "aws:ec2/keyPair:KeyPair": ["keyName", "publicKey"],
  "aws:iam/role:Role": ["name", "managedPolicyArns"],
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ["role", "policyArn"],
  "aws:iam/instanceProfile:InstanceProfile": ["role"],
  "aws:ssm/parameter:Parameter": ["type", "name", "keyId"],
  "aws:kms/key:Key": ["enableKeyRotation", "deletionWindowInDays"],
  "aws:kms/alias:Alias": ["name", "targetKeyId"],
  "tls:index/privateKey:PrivateKey": ["algorithm"],
  "pulumi:providers:docker": ["host"],
  "aws:ecr/repository:Repository": ["name", "imageTagMutability", "imageScanningConfiguration.scanOnPush"],
  "docker:index/remoteImage:RemoteImage": ["name", "keepLocally"],
  "docker:index/container:Container": ["image", "replicas", "ports", "healthcheck", "restart", "memory", "user", "readOnly"],
  "docker:index/network:Network": ["driver", "internal"],
  "docker:index/volume:Volume": ["driver"],
  // Commands: the script itself is long (plan --all shows it); triggers say what reruns it.
  "command:local:Command": ["triggers"],
  "dockyard:index:DockerEngine": ["channel", "version"],
  "dockyard:index:DockerHost": ["instanceType", "group"],
};

/**
 * True for a value the program marked secret. The mock runtime hands such inputs over
 * wrapped as `{ <specialSigKey>: <specialSecretSig>, value }`; they are never shown.
 */
export function isSecretValue(v: unknown): boolean {
  return !!v && typeof v === "object" && (v as Record<string, unknown>)[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig;
}

/** How a value reads in a plan: cloud-only values as `(computed)`, secrets as SECRET_PLACEHOLDER. */
export function displayValue(v: unknown): unknown {
  if (isSecretValue(v)) return SECRET_PLACEHOLDER;
  if (typeof v === "string") return v.replace(COMPUTED_RE, "(computed)");
  if (Array.isArray(v)) return v.map(displayValue);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, displayValue(x)]));
  return v;
}

/** The value at a dotted path (array elements by index), or undefined. */
export function getPath(obj: unknown, dotted: string): unknown {
  let cur: unknown = obj;
  for (const part of dotted.split(".")) {
    if (cur === null || typeof cur !== "object" || isSecretValue(cur)) return isSecretValue(cur) ? cur : undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** The key properties of one resource, in table order, display-ready. */
export function keyProperties(r: RenderedResource): Record<string, unknown> {
  const props: Record<string, unknown> = {};
  for (const p of KEY_PROPERTIES[r.type] ?? []) {
    const v = getPath(r.inputs, p);
    if (v !== undefined) props[p] = displayValue(v);
  }
  return props;
}

/** A node of the resource tree. */
export interface PlanNode {
  type: string;
  name: string;
  custom: boolean;
  properties: Record<string, unknown>;
  children: PlanNode[];
}

/** The plan of a stack: its resources as a tree, with key properties, and its outputs. */
export interface Plan {
  project: string;
  stack: string;
  resourceCount: number;
  resources: PlanNode[];
  outputs: Record<string, unknown>;
}

const byTypeThenName = (a: { type: string; name: string }, b: { type: string; name: string }) =>
  a.type.localeCompare(b.type) || a.name.localeCompare(b.name, "en", { numeric: true });

/**
 * Builds the plan: resources nested under their parents, siblings sorted by type and
 * name (registration order is not deterministic), cloud-only values as `(computed)`.
 * `all`: every input instead of the key properties.
 */
export function buildPlan(rendered: Rendered, opts: { all?: boolean } = {}): Plan {
  const nodes = new Map<string, PlanNode>();
  for (const r of rendered.resources) {
    nodes.set(resourceKey(r), {
      type: r.type,
      name: r.name,
      custom: r.custom,
      properties: opts.all ? (displayValue(r.inputs) as Record<string, unknown>) : keyProperties(r),
      children: [],
    });
  }
  const roots: PlanNode[] = [];
  for (const r of rendered.resources) {
    const node = nodes.get(resourceKey(r))!;
    const parent = r.parent ? nodes.get(r.parent) : undefined;
    (parent ? parent.children : roots).push(node);
  }
  const sort = (list: PlanNode[]) => {
    list.sort(byTypeThenName);
    list.forEach((n) => sort(n.children));
  };
  sort(roots);
  return {
    project: rendered.project,
    stack: rendered.stack,
    resourceCount: rendered.resources.length,
    resources: roots,
    outputs: displayValue(rendered.outputs) as Record<string, unknown>,
  };
}

/** One value on one line; long values are cut in the text view (--json has them whole). */
function inline(v: unknown, max = 200): string {
  const s = typeof v === "string" && /^[\w./:@~+()-][\w ./:@~+()-]*$/.test(v) && !v.endsWith(" ") ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}… (${s.length} chars)` : s;
}

/**
 * `key: value` lines: short values inline, larger structures (ingress rules, health
 * checks, outputs per host) as indented YAML beneath the key.
 */
function propertyLines(key: string, v: unknown): string[] {
  const flat = inline(v, 100_000);
  if (v === null || typeof v !== "object" || flat.length <= 100) return [`${key}: ${inline(v)}`];
  const doc = new YAML.Document(v);
  // Short lists of plain values stay on one line: `cidrBlocks: [ 198.51.100.0/24 ]`.
  YAML.visit(doc, {
    Seq(_, node) {
      if (node.items.every((i) => YAML.isScalar(i)) && JSON.stringify(node.toJSON()).length <= 80) node.flow = true;
    },
  });
  const body = doc.toString({ lineWidth: 0 }).trimEnd().split("\n");
  return [`${key}:`, ...body.map((l) => `  ${l.length > 200 ? `${l.slice(0, 199)}…` : l}`)];
}

/** The plan as text: a tree of `type  name` lines, key properties beneath, then outputs. */
export function formatPlan(plan: Plan): string {
  const lines: string[] = [];
  lines.push(`Stack ${plan.stack} (project ${plan.project}): ${plan.resourceCount} resource${plan.resourceCount === 1 ? "" : "s"}`);
  lines.push("");
  const walk = (list: PlanNode[], prefix: string) => {
    list.forEach((n, i) => {
      const last = i === list.length - 1;
      lines.push(`${prefix}${last ? "└─ " : "├─ "}${n.type}  ${n.name}`);
      const inner = prefix + (last ? "   " : "│  ");
      for (const [k, v] of Object.entries(n.properties)) {
        for (const l of propertyLines(k, v)) lines.push(`${inner}${n.children.length ? "│ " : "  "}  ${l}`);
      }
      walk(n.children, inner);
    });
  };
  if (plan.resources.length === 0) lines.push("(no resources)");
  walk(plan.resources, "");
  lines.push("");
  lines.push("Outputs:");
  const keys = Object.keys(plan.outputs).sort();
  if (keys.length === 0) lines.push("  (none)");
  for (const k of keys) for (const l of propertyLines(k, plan.outputs[k])) lines.push(`  ${l}`);
  return lines.join("\n") + "\n";
}
