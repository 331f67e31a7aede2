/**
 * `dockyard plan <stack>`: what a stack declares, offline. Runs the real program for
 * the stack under the mock runtime and prints every resource by type and name as a
 * tree, with its key properties, values only the cloud knows as `(computed)`, and the
 * stack outputs, then the rollout batches read from the dependency graph. `--map` prints the estate as a Mermaid flowchart instead (scripts/lib/map.ts).
 * Exit 0 ok, 1 the program failed, 2 bad configuration or usage.
 */
import type { Argv, CommandModule } from "yargs";
import { EXIT, reported, toStderr, toStdout, type Write, withSourceOptions } from "./lib/cli";
import { buildPlan, formatPlan, prepareRender, renderStack, type RenderOptions } from "./lib/render";
import { formatRollout, rolloutTurns } from "./lib/rollout-view";

export interface PlanArgs {
  stack: string;
  program?: string;
  json: boolean;
  all: boolean;
  /** Print the estate as a Mermaid flowchart instead of the resource tree. */
  map?: boolean;
  /** With map: the number of default subnets (AZs) the region has. */
  zones?: number;
  stacksDir?: string;
  environment?: string;
}

/**
 * What is wrong with a combination of plan's options, if anything. (Checked here, not with
 * yargs' conflicts(): that counts a boolean's default as given, and a throwing check() would
 * be reported as a failure, exit 1.)
 */
export function planUsageProblem(args: Pick<PlanArgs, "map" | "zones" | "json" | "all">): string | undefined {
  if (args.map && (args.json || args.all)) return "--map prints a Mermaid diagram; it cannot be combined with --json or --all";
  if (args.zones !== undefined && !args.map) return "--zones only applies to --map";
  if (args.zones !== undefined && (!Number.isInteger(args.zones) || args.zones < 1)) return `--zones must be an integer >= 1 (got ${args.zones})`;
  return undefined;
}

/** Runs `plan` and returns the exit code; output goes to the given writers. */
export async function runPlan(
  args: PlanArgs,
  out: Write = toStdout,
  err: Write = toStderr,
): Promise<number> {
  const usage = planUsageProblem(args);
  if (usage) {
    err(`${usage}\n\nRun with --help for usage.\n`);
    return EXIT.usage;
  }
  const opts: RenderOptions = { stacksDir: args.stacksDir, environmentFile: args.environment, program: args.program };
  return reported(err, async () => {
    if (args.map) {
      // The map needs the parsed spec and the fleet's placement rules, not a render. Loaded
      // here: it pulls in the components (and @pulumi/aws), which other commands do not need.
      const { spec } = prepareRender(args.stack, opts);
      const { estateMap, formatMap } = await import("./lib/map");
      out(formatMap(estateMap(spec, { zones: args.zones })));
      return EXIT.ok;
    }
    err(`Rendering stack ${args.stack} under the mock runtime...\n`);
    const rendered = await renderStack(args.stack, opts);
    const plan = buildPlan(rendered, { all: args.all });
    const rollout = rolloutTurns(rendered);
    out(args.json ? `${JSON.stringify({ ...plan, rollout }, null, 2)}\n` : formatPlan(plan) + formatRollout(rollout));
    return EXIT.ok;
  });
}

export const planCommand: CommandModule<object, PlanArgs> = {
  command: "plan <stack>",
  describe: "Show what a stack declares, offline: resources as a tree with key properties, and stack outputs",
  builder: (y) =>
    withSourceOptions(
      y
        .positional("stack", { type: "string", demandOption: true, describe: "Stack name: dev, test, prod or your own (stacks/Pulumi.<stack>.yaml)" })
        .option("json", { type: "boolean", default: false, describe: "Print the plan as JSON (for scripts and CI)" })
        .option("all", { type: "boolean", default: false, describe: "Show every input of every resource, not only the key properties" })
        .option("map", {
          type: "boolean",
          default: false,
          describe:
            "Print the estate as a Mermaid flowchart (GitHub renders it in a README or PR): availability zones by position, " +
            "the hosts in each, each host's proxy with the ports it publishes and its replicas by digest, and the path from ingressCidrs",
        })
        .option("zones", { type: "number", describe: "With --map: how many default subnets (AZs) the region has (default: enough that no host wraps around)" }),
    )
      .example("$0 plan dev", "the dev stack's hosts, engine and fleet, no cloud account needed")
      .example("$0 plan prod --json", "the same as JSON")
      .example("$0 plan prod --map", "prod's hosts by availability zone, proxies, replicas and client path, as Mermaid")
      .epilog(
        "Runs the real program (index.ts) with Pulumi's mock runtime: no cloud, no Pulumi service. " +
          "Values only the cloud knows (ids, addresses, AMI ids) print as (computed). " +
          "--map draws the estate from the stack's configuration with the program's own placement rules (no render); " +
          "AZs are shown by position, as the real names are only known in AWS. " +
          "Exit codes: 0 ok, 1 the program failed, 2 bad stack configuration or usage.",
      ) as Argv<PlanArgs>,
  handler: async (args) => {
    process.exitCode = await runPlan(args);
  },
};
