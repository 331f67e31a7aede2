/**
 * Rollouts in batches (issue 13): a change that replaces hosts, containers or proxies never
 * takes every host of a group at once. The hosts of a group roll in batches of
 * `maxUnavailable` (a stack knob, default 1) in group order; a batch starts only once every
 * host of the batch before it serves again.
 *
 * How, with nothing but Pulumi dependencies:
 *  - each host ends its turn with a SERVING GATE (ContainerFleet): a command run on the host
 *    after its containers and proxy were created that waits until each of them runs and
 *    Docker reports it healthy (see "A second up after a failed health wait" below), then
 *    until the proxy's monitor answers 200 on every published port, then for the front
 *    door's healthy threshold x interval (the load balancer needs that many passed checks
 *    to send the host traffic again: components/front-door.ts frontDoorAdmitSeconds). It
 *    runs again whenever one of the host's containers or its engine readiness is replaced
 *    (its triggers);
 *  - every host of the next batch depends on the gates of this batch: its machine (the EC2
 *    instance, which a new engine or user-data replaces; a local host's container), its
 *    replicas and its proxy (`dependsOn`). The engine registers a resource only after the
 *    resources it depends on finished their step (pulumi pkg/resource/deploy/source_eval.go:
 *    RegisterResource answers once the step is done; the Node SDK awaits the `dependsOn`
 *    URNs before it registers: sdk/nodejs/runtime/resource.ts prepareResource), so the
 *    next batch's replacements start only after this batch's gates passed, and a failed
 *    gate stops the update before the next batch is touched.
 *
 * These are `dependsOn` edges only, never inputs, so replacing a gate or a host never
 * replaces the next batch's resources (pkg/resource/deploy/step_generator.go,
 * calculateDependentReplacements follows input dependencies).
 *
 * A second up after a failed health wait (issue 24 item 16). The provider's `wait` alone does
 * not hold a rollout: resourceDockerContainerCreate (kreuzwerker/terraform-provider-docker
 * internal/provider/resource_docker_container_funcs.go, the v4.5.0 commit pulumi-docker 5.2
 * builds) calls d.SetId right after ContainerCreate, before the start and the health wait, so
 * a create whose wait times out returns its id with the error; the bridge reports it as a
 * partial create (pulumi-terraform-bridge pkg/tfbridge/provider.go Create:
 * initializationError(newstate.ID(), ...)), and the engine keeps the container with
 * InitErrors. The next `up`, with the same inputs, gets an update step for it all the same
 * (pulumi pkg/resource/deploy/step_generator.go: "If resource was unchanged, but there were
 * initialization errors, generate an empty update step"), and the provider's update
 * (resourceDockerContainerUpdate) only calls ContainerUpdate for restart and resource limits
 * that changed: it never waits for health. The container then counts as created, unhealthy.
 * So the gate checks health itself, and the gate runs on that second `up`:
 *  - its `triggers` hold every container id of the host, and pulumi-command marks triggers
 *    replaceOnChanges (provider/pkg/provider/common/inputs.go): a container the previous
 *    successful `up` did not have makes the gate a replacement, whose create runs the gate;
 *  - a failed gate is no partial create: pulumi-command's local Command.Create returns the
 *    command's error as a plain error (local/commandController.go), which pulumi-go-provider's
 *    infer Create turns into an error without id or state (infer/resource.go: only a
 *    ResourceInitFailedError keeps a partial state); the engine's CreateStep.Apply (step.go)
 *    then returns before it marks the old gate for deletion, so the old gate stays with its
 *    old triggers, and every later `up` replaces it again and runs the gate again, until the
 *    container is healthy (or replaced by another version: a new id again);
 *  - with a failed step the engine runs no deletes (deployment_executor.go: performPostSteps
 *    only once the program finished without error): the old replica keeps serving; the next
 *    batch waits for this gate (dependsOn), so it is not touched;
 *  - the stack outputs `services` and `proxyImage` resolve only after the gates
 *    (ContainerFleet): a failed gate rejects them, the Node SDK then sends no stack outputs
 *    (sdk/nodejs/runtime/stack.ts Stack.initialize awaits every exported output before
 *    registerOutputs), and the stack keeps its old ones (step.go SameStep.Apply retains the
 *    old outputs). Had they resolved, the engine would write them even on a failed `up`
 *    (step_executor.go executeRegisterResourceOutputs: on an error, new outputs overwrite old).
 *
 * What it costs: the first `up` of a stack creates the hosts of a group batch by batch too
 * (Pulumi cannot order replacements only), and every rollout waits about the admit time per
 * batch. Image pulls are not gated: they run on every host at once, ahead of their turn.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { MONITOR_PATH } from "./proxy";

/** Seconds a host's containers have to be healthy and its proxy to answer 200 on every published port before its gate fails. */
export const SERVING_GATE_TIMEOUT_SECONDS = 180;

/** The hosts of a group in rollout batches of `maxUnavailable`, in group order. */
export function rolloutBatches<T>(hosts: readonly T[], maxUnavailable: number): T[][] {
  if (!Number.isInteger(maxUnavailable) || maxUnavailable < 1) throw new Error(`maxUnavailable must be an integer of at least 1 (got ${maxUnavailable})`);
  const out: T[][] = [];
  for (let i = 0; i < hosts.length; i += maxUnavailable) out.push(hosts.slice(i, i + maxUnavailable));
  return out;
}

let gateScript: string | undefined;
/** The serving gate's script (components/rollout/serving-gate.sh), sent as the command's stdin. */
export function servingGateScript(): string {
  gateScript ??= fs.readFileSync(path.join(__dirname, "rollout", "serving-gate.sh"), "utf8");
  return gateScript;
}

/**
 * The serving gate's command line on the host: bash reads the script from stdin. `containers`:
 * the ids of the host's containers, each of which must run and be healthy (after `--`, each
 * single-quoted); none: the line has no `--`.
 */
export function servingGateCommand(ports: readonly number[], admitSeconds: number, timeoutSeconds = SERVING_GATE_TIMEOUT_SECONDS, containers: readonly string[] = []): string {
  for (const n of [admitSeconds, timeoutSeconds, ...ports]) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`serving gate: ${n} is not a whole number of seconds or a port`);
  }
  for (const id of containers) {
    if (id === "" || id.includes("'")) throw new Error(`serving gate: ${JSON.stringify(id)} is not a container id`);
  }
  const line = ["bash", "-s", "--", String(timeoutSeconds), String(admitSeconds), `'${MONITOR_PATH}'`, ...[...new Set(ports)].sort((a, b) => a - b).map(String)];
  return (containers.length > 0 ? [...line, "--", ...containers.map((id) => `'${id}'`)] : line).join(" ");
}

/** A host group as the rollout sees it. */
export interface RolloutGroup {
  name: string;
  /** Host names in group order. */
  hosts: readonly string[];
  maxUnavailable: number;
}

interface Gate {
  promise: Promise<pulumi.Resource[]>;
  resolve: (r: pulumi.Resource[]) => void;
  set: boolean;
}

/**
 * The order hosts roll in: which resources end each host's turn (its gate), and what each
 * host waits for (the gates of the batch before its own). Made before the hosts (their
 * machines wait too) and given each host's gate by the fleet, which comes after them, so
 * `after` hands out promises that `gate` fulfils. `close` fulfils the rest; call it once
 * everything is declared, or a host would wait forever.
 */
export class RolloutOrder {
  private readonly previous = new Map<string, string[]>();
  private readonly gates = new Map<string, Gate>();
  private closed = false;

  constructor(groups: readonly RolloutGroup[]) {
    for (const g of groups) {
      const batches = rolloutBatches(g.hosts, g.maxUnavailable);
      batches.forEach((batch, i) => {
        for (const h of batch) {
          if (this.gates.has(h)) throw new Error(`rollout: host ${h} is in two groups`);
          let resolve!: (r: pulumi.Resource[]) => void;
          const promise = new Promise<pulumi.Resource[]>((r) => (resolve = r));
          this.gates.set(h, { promise, resolve, set: false });
          this.previous.set(h, i > 0 ? [...batches[i - 1]] : []);
        }
      });
    }
  }

  /** The hosts whose gates `host` waits for: the batch before its own (none for the first). */
  waitsFor(host: string): string[] {
    const p = this.previous.get(host);
    if (!p) throw new Error(`rollout: unknown host ${host}`);
    return p;
  }

  /** What `host`'s machine, replicas and proxy depend on: the gates of the batch before its own. */
  after(host: string): Promise<pulumi.Resource[]> {
    const hosts = this.waitsFor(host);
    return hosts.length === 0 ? Promise.resolve([]) : Promise.all(hosts.map((h) => this.gates.get(h)!.promise)).then((r) => r.flat());
  }

  /** The resources that end `host`'s turn (its serving gate). Once per host. */
  gate(host: string, resources: pulumi.Resource[]): void {
    const g = this.gates.get(host);
    if (!g) throw new Error(`rollout: unknown host ${host}`);
    if (g.set || this.closed) throw new Error(`rollout: the gate of host ${host} is already set`);
    g.set = true;
    g.resolve(resources);
  }

  /** Gives every host without a gate yet `fallback(host)` (e.g. its engine readiness). */
  close(fallback: (host: string) => pulumi.Resource[]): void {
    for (const [host, g] of this.gates) {
      if (!g.set) {
        g.set = true;
        g.resolve(fallback(host));
      }
    }
    this.closed = true;
  }
}

/**
 * `dependsOn` of a resource that also waits for its host's turn: the list, then the gates.
 * An array with the gates' promise as its last element, not one promise of the whole list:
 * the SDK merges a top-level promise dependsOn with the resource's default options through
 * `output()` (resource.ts mergeOptions/merge), and that Output checks its value for unknowns
 * by walking it (output.ts containsUnknowns): from each Resource into its parent, providers
 * and most of the stack, O(stack) per resource (issue 13: 20 hosts x 10 services took 172 s
 * instead of 12 s). gatherExplicitDependencies awaits a promise inside the array as well.
 */
export function withTurn(dependsOn: pulumi.Resource[], after: Promise<pulumi.Resource[]> | undefined): pulumi.Input<pulumi.Resource[]> {
  return after ? ([...dependsOn, after] as unknown as pulumi.Resource[]) : dependsOn;
}
