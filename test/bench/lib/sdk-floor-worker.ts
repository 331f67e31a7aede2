/**
 * Child process of `npm run bench -- plan --floor`: the Pulumi SDK's own cost for a rendered
 * resource list, with none of Dockyard's program in it.
 *
 * Reads a JSON file of RenderedResource (scripts/lib/render.ts; written from a render of the
 * bench stack), then, under the same mock runtime and stack-trace settings as the render
 * worker (scripts/lib/render-worker.ts), registers every resource again from its recorded
 * plain inputs and parent, with no dependsOn, no Output chaining, no program logic:
 * - mode `classes`: each custom resource with its real SDK class (docker.Container,
 *   aws.ec2.Instance, ...), which declares every output property the provider's schema has;
 * - mode `bare`: each as a bare `pulumi.CustomResource` with only its inputs as properties.
 * Writes `{ resources, loadSeconds, registerSeconds, cpuSeconds, maxRssKb }` to fd 3.
 *
 * What it proves: a lower bound on the render's time for that many resources of those
 * types with this SDK and mock runtime. What it does not: it is not the program's render
 * (the bench measures that), and a real `pulumi preview` adds the engine and providers.
 */
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { DockyardMocks, captureNoStacks } from "../../../scripts/lib/mocks";
import { PROJECT } from "../../../stacks";
import { resourceKey, type RenderedResource } from "../../../scripts/lib/render";

captureNoStacks();

/** A custom resource with only the properties it is given (CustomResource is abstract in the SDK's types). */
class BareResource extends pulumi.CustomResource {}

type ResourceClass = new (name: string, args: Record<string, unknown>, opts: pulumi.CustomResourceOptions) => pulumi.CustomResource;

/** The SDK class registering `type` (`pkg:module/file:Class`, `pulumi:providers:pkg`), checked by its __pulumiType. */
function sdkClass(type: string): ResourceClass {
  const packages: Record<string, () => Record<string, any>> = {
    aws: () => require("@pulumi/aws"),
    command: () => require("@pulumi/command"),
    docker: () => require("@pulumi/docker"),
    tls: () => require("@pulumi/tls"),
  };
  const [pkg, mod, cls] = type.split(":");
  const provider = pkg === "pulumi" && mod === "providers";
  const load = packages[provider ? cls : pkg];
  if (!load) throw new Error(`no SDK package for resource type ${type}`);
  const root = load();
  const module = provider ? "index" : mod.split("/")[0];
  const found = provider ? root.Provider : (module === "index" ? root : root[module])?.[cls];
  const token = provider ? cls : type; // a provider class carries the bare package name
  if (typeof found !== "function" || (found as { __pulumiType?: string }).__pulumiType !== token) throw new Error(`no SDK class for resource type ${type}`);
  return found as ResourceClass;
}

async function main(): Promise<void> {
  const [file, mode] = process.argv.slice(2);
  if (mode !== "classes" && mode !== "bare") throw new Error(`mode must be classes or bare, got ${mode}`);
  const resources = JSON.parse(fs.readFileSync(file, "utf8")) as RenderedResource[];
  pulumi.runtime.setMocks(new DockyardMocks(), PROJECT, "bench", true);
  const t0 = performance.now();
  const classes = new Map<string, ResourceClass>();
  if (mode === "classes") for (const r of resources) if (r.custom && !classes.has(r.type)) classes.set(r.type, sdkClass(r.type));
  const t1 = performance.now();
  await pulumi.runtime.runInPulumiStack(async () => {
    const made = new Map<string, pulumi.Resource>();
    for (const r of resources) {
      const opts = { parent: r.parent ? made.get(r.parent) : undefined };
      const inputs = r.inputs as Record<string, unknown>;
      const Class = classes.get(r.type);
      const res = !r.custom
        ? new pulumi.ComponentResource(r.type, r.name, {}, opts)
        : Class
          ? new Class(r.name, inputs, opts)
          : new BareResource(r.type, r.name, inputs, opts);
      made.set(resourceKey(r), res);
    }
    return {};
  });
  await (pulumi.runtime as unknown as { waitForRPCs: () => Promise<void> }).waitForRPCs();
  const t2 = performance.now();
  const u = process.resourceUsage();
  const result = { resources: resources.length, loadSeconds: (t1 - t0) / 1000, registerSeconds: (t2 - t1) / 1000, cpuSeconds: (u.userCPUTime + u.systemCPUTime) / 1e6, maxRssKb: u.maxRSS };
  fs.writeSync(3, JSON.stringify(result));
  fs.closeSync(3);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
