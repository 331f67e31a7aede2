/**
 * The rollout order of a rendered stack, read from its dependency graph (`dependsOn` as the
 * program declared it), not recomputed from the knobs: what `plan` prints under "Rollout",
 * and what test/components/rollout.test.ts holds against `maxUnavailable`.
 *
 * A host's turn ends with its serving gate (components/rollout.ts; a command:local:Command
 * that depends on the host's engine `<host>-engine`). A host waits for the gates its
 * machine (EC2 instance `<host>-instance`, local machine container `<host>-machine`)
 * depends on; its batch is one after the latest batch it waits for.
 */
import type { Rendered, RenderedResource } from "./render";

export interface HostTurn {
  host: string;
  /** 1 for hosts that wait for nobody. */
  batch: number;
  /** Hosts whose serving gates this host's machine waits for. */
  waitsFor: string[];
}

const key = (r: Pick<RenderedResource, "type" | "name">) => `${r.type}::${r.name}`;
const ENGINE = "dockyard:index:DockerEngine::";
const GATE_TYPE = "command:local:Command";

/** Host name -> the key (`type::name`) of its serving gate. */
export function servingGates(rendered: Pick<Rendered, "resources">): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of rendered.resources) {
    // Static mode: the fleet's serving gate; swarm mode: the host's swarm init or join (components/swarm-fleet.ts).
    if (r.type !== GATE_TYPE || !/-(serving|init|join)$/.test(r.name)) continue;
    const engine = (r.options?.dependsOn ?? []).find((d) => d.startsWith(ENGINE));
    if (engine) out.set(engine.slice(ENGINE.length).replace(/-engine$/, ""), key(r));
  }
  return out;
}

/** Each host's rollout turn, in host order; empty when the stack has no serving gates. */
export function rolloutTurns(rendered: Pick<Rendered, "resources">): HostTurn[] {
  // Serving gate key -> its host (the engine it depends on).
  const gateHost = new Map([...servingGates(rendered)].map(([h, k]) => [k, h]));
  const waits = new Map<string, string[]>();
  for (const r of rendered.resources) {
    const m = /^(.*)-(instance|machine)$/.exec(r.name);
    if (!m || !(r.type === "aws:ec2/instance:Instance" || r.type === "docker:index/container:Container")) continue;
    if (r.type === "docker:index/container:Container" && m[2] !== "machine") continue;
    const hosts = (r.options?.dependsOn ?? []).map((d) => gateHost.get(d)).filter((h): h is string => h !== undefined);
    waits.set(m[1], [...new Set(hosts)].sort());
  }
  if (gateHost.size === 0) return [];
  const batch = new Map<string, number>();
  const batchOf = (h: string, seen: string[] = []): number => {
    if (seen.includes(h)) throw new Error(`rollout: hosts wait for each other in a cycle: ${[...seen, h].join(" -> ")}`);
    if (!batch.has(h)) batch.set(h, 1 + Math.max(0, ...(waits.get(h) ?? []).map((w) => batchOf(w, [...seen, h]))));
    return batch.get(h)!;
  };
  return [...waits.keys()].map((host) => ({ host, batch: batchOf(host), waitsFor: waits.get(host)! }));
}

/** The "Rollout" section of `plan`. */
export function formatRollout(turns: HostTurn[]): string {
  if (turns.length === 0) return "";
  const lines = ["", "Rollout (read from the dependency graph; components/rollout.ts): a host's machine, replicas and proxy wait for the serving gates of the hosts listed"];
  for (const t of turns) lines.push(`  batch ${t.batch}: ${t.host}${t.waitsFor.length > 0 ? `  (waits for ${t.waitsFor.join(", ")})` : ""}`);
  return `${lines.join("\n")}\n`;
}
