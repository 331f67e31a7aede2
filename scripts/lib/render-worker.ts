/**
 * Child process of renderStack() (scripts/lib/render.ts): runs ONE stack of the real
 * program under the mock runtime and writes a RenderReply as JSON to fd 3.
 * Pulumi's runtime state is global per process, hence one process per render.
 */
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, ENVIRONMENT_FILE, PROJECT, SECRET_PLACEHOLDER } from "../../stacks";
import { DockyardMocks, captureNoStacks } from "./mocks";
import { resourceKey, type RenderReply, type RenderRequest, type RenderStats, type RenderedOptions, type RenderedResource } from "./render";

/**
 * The mock monitor passes `id: ""` (no import id) for every new resource; treat it as
 * "no id" so ids read as computed even with a DockyardMocks that keeps "" as is.
 * Pulumi's invoke rethrows a failed call as `new Error(err.details)`, which drops a
 * plain Error's message: give errors `details`, so "unexpected provider call <token>"
 * reaches the operator.
 */
class RenderMocks extends DockyardMocks {
  override newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
    return super.newResource({ ...args, id: args.id || undefined });
  }

  override call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    try {
      return super.call(args);
    } catch (e) {
      const err = (e instanceof Error ? e : new Error(String(e))) as Error & { details?: string };
      err.details ??= err.message;
      throw err;
    }
  }
}

captureNoStacks();

function reply(r: RenderReply): never {
  fs.writeSync(3, JSON.stringify(r));
  fs.closeSync(3);
  process.exit(0);
}

function fail(e: unknown): never {
  if (e instanceof ConfigError || (e instanceof Error && e.name === "ConfigError")) reply({ ok: false, kind: "config", message: (e as Error).message });
  const err = e instanceof Error ? e : new Error(String(e));
  // No stack without DOCKYARD_RENDER_STACKS: name and message, as a stack's first line reads.
  reply({ ok: false, kind: "program", message: `the program failed: ${err.stack ?? String(err)}` });
}

/**
 * stacks/index.ts reads environment.yaml from a fixed path. To render another
 * environment definition (the parity check's planted copies), answer reads of that
 * one path from the other file; every other read is untouched.
 */
function redirectEnvironmentFile(to: string): void {
  // The module object itself (an `import *` namespace only has getters onto it).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fsModule = require("node:fs") as { readFileSync: typeof fs.readFileSync };
  const original = fsModule.readFileSync;
  const patched = function (this: unknown, file: fs.PathOrFileDescriptor, ...rest: unknown[]) {
    const target = typeof file === "string" && file === ENVIRONMENT_FILE ? to : file;
    return (original as (...a: unknown[]) => unknown).call(this, target, ...rest);
  };
  fsModule.readFileSync = patched as typeof fs.readFileSync;
}

type Internal = { promise(): Promise<unknown>; isKnown: Promise<boolean>; isSecret: Promise<boolean> };

/** Resolves Outputs, Promises and resources inside a stack output into plain JSON. */
async function resolveValue(v: unknown, keys: Map<unknown, string>, seen: Set<unknown>): Promise<unknown> {
  if (v instanceof Promise) return resolveValue(await v, keys, seen);
  if (pulumi.Output.isInstance(v)) {
    const o = v as unknown as Internal;
    if (await o.isSecret) return SECRET_PLACEHOLDER;
    if (!(await o.isKnown)) return "computed(output.unknown)";
    return resolveValue(await o.promise(), keys, seen);
  }
  if (pulumi.Resource.isInstance(v)) return { resource: keys.get(v) ?? "(unknown resource)" };
  if (v === null || typeof v !== "object") return typeof v === "function" || typeof v === "symbol" ? undefined : v;
  if (seen.has(v)) return undefined;
  seen.add(v);
  try {
    if (Array.isArray(v)) return Promise.all(v.map((x) => resolveValue(x, keys, seen)));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === "__esModule") continue;
      const r = await resolveValue(x, keys, seen);
      if (r !== undefined) out[k] = r;
    }
    return out;
  } finally {
    seen.delete(v);
  }
}

/** The options of one resource, with resources named by their keys. */
async function renderedOptions(opts: pulumi.CustomResourceOptions | undefined, keys: Map<unknown, string>): Promise<RenderedOptions> {
  if (!opts) return {};
  const out: RenderedOptions = {};
  const value = async (x: unknown) => (pulumi.output(x) as unknown as Internal).promise();
  if (opts.protect !== undefined) out.protect = (await value(opts.protect)) as boolean;
  if (opts.retainOnDelete !== undefined) out.retainOnDelete = (await value(opts.retainOnDelete)) as boolean;
  if (opts.deleteBeforeReplace !== undefined) out.deleteBeforeReplace = opts.deleteBeforeReplace;
  if (opts.ignoreChanges) out.ignoreChanges = [...opts.ignoreChanges];
  if (opts.replaceOnChanges) out.replaceOnChanges = [...opts.replaceOnChanges];
  if (opts.additionalSecretOutputs) out.additionalSecretOutputs = [...opts.additionalSecretOutputs];
  if (opts.customTimeouts) out.customTimeouts = { ...opts.customTimeouts };
  if (opts.dependsOn) out.dependsOn = (await resources(opts.dependsOn)).map((d) => keys.get(d) ?? "(unknown resource)");
  if (opts.provider) out.provider = keys.get(opts.provider) ?? "(unknown provider)";
  return out;
}

/**
 * The resources a `dependsOn` names, through any Outputs, promises and arrays around them.
 * Not `pulumi.output(dependsOn)`: an Output checks its value for unknowns by walking it
 * (output.js containsUnknowns), and a Resource object reaches its parent, providers and
 * through them most of the stack, so that walk cost O(stack) per resource, O(n^2) per render
 * (issue 13: 10 hosts x 10 services took 50 s, 40% of it there).
 */
async function resources(d: unknown): Promise<unknown[]> {
  if (pulumi.Output.isInstance(d)) return resources(await (d as unknown as Internal).promise());
  if (d instanceof Promise) return resources(await d);
  if (Array.isArray(d)) return (await Promise.all(d.map(resources))).flat();
  return d === undefined ? [] : [d];
}

/** What this render cost: peak memory, and CPU time (all threads: GC helpers too), which a busy machine inflates less than wall time. */
function renderStats(): RenderStats {
  const u = process.resourceUsage();
  return { maxRssKb: u.maxRSS, cpuSeconds: (u.userCPUTime + u.systemCPUTime) / 1e6 };
}

/** Waits until the program stops registering: pending RPCs drained, then a quiet period. */
async function settle(mocks: DockyardMocks): Promise<void> {
  const waitForRPCs = (pulumi.runtime as unknown as { waitForRPCs?: () => Promise<void> }).waitForRPCs;
  let stable = 0;
  let last = -1;
  for (let round = 0; round < 400; round++) {
    if (waitForRPCs) await waitForRPCs();
    await new Promise((r) => setTimeout(r, 10));
    const n = mocks.resources.length;
    stable = n === last ? stable + 1 : 0;
    last = n;
    if (stable >= 5) return;
  }
  throw new Error("the program kept registering resources for too long (more than 400 rounds); is a registration looping?");
}

async function main(): Promise<void> {
  const input = fs.readFileSync(0, "utf8");
  const req = JSON.parse(input) as RenderRequest;
  if (req.environmentFile) redirectEnvironmentFile(req.environmentFile);

  const problems: unknown[] = [];
  process.on("unhandledRejection", (e) => problems.push(e));
  process.on("uncaughtException", (e) => fail(e));

  pulumi.runtime.setAllConfig(req.config, req.secretKeys);
  const mocks = new RenderMocks();
  pulumi.runtime.setMocks(mocks, PROJECT, req.stack, req.preview);

  // MockResourceArgs carries no parent, so record parents as resources are constructed.
  const keys = new Map<unknown, string>();
  const parents = new Map<string, string | undefined>();
  const options = new Map<string, pulumi.CustomResourceOptions>();
  let exported: Record<string, unknown> = {};
  const outputs = pulumi.runtime.runInPulumiStack(async () => {
    pulumi.runtime.registerStackTransformation((args) => {
      const key = resourceKey(args);
      keys.set(args.resource, key);
      parents.set(key, args.opts.parent ? keys.get(args.opts.parent) : undefined);
      options.set(key, args.opts as pulumi.CustomResourceOptions);
      return undefined;
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    exported = require(req.program) as Record<string, unknown>;
    return exported;
  });
  await outputs;
  await settle(mocks);
  if (problems.length > 0) fail(problems[0]);

  const resources: RenderedResource[] = [];
  for (const r of mocks.resources) {
    if (r.type === "pulumi:pulumi:Stack") continue;
    const key = resourceKey(r);
    resources.push({ type: r.type, name: r.name, parent: parents.get(key), custom: r.custom, inputs: r.inputs, options: await renderedOptions(options.get(key), keys) });
  }
  const resolved = (await resolveValue(exported, keys, new Set())) as Record<string, unknown>;
  reply({ ok: true, rendered: { project: PROJECT, stack: req.stack, resources, outputs: resolved }, stats: renderStats() });
}

main().catch(fail);
