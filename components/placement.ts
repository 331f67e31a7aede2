/**
 * Placement of service replicas on the hosts of their group: pure functions, no Pulumi.
 *
 * Rule: with R replicas on n hosts, every host gets floor(R/n) replicas and the first
 * R mod n hosts (in group order) get one more. So no host carries two replicas of a
 * service while another host of the group carries none, and the result depends only on
 * (R, hosts), never on hashing or on state, so `plan` and `up` agree.
 *
 * Movement: hosts of a group are numbered and a count change adds or removes hosts at
 * the END of the group (dev-app-3 after dev-app-2). Because extras go to the FIRST hosts,
 * adding or removing the last host moves exactly as many replicas as that host carries,
 * which is the minimum any placement can do. When a host in the middle disappears (or
 * to plan from a known earlier placement), pass `previous`: the result is then the
 * balanced placement that moves the fewest replicas away from `previous`.
 *
 * Within a host, replicas are numbered by slot 0..k-1; a replica's identity is
 * (service, host, slot), which the fleet uses in resource names.
 */

/** Replicas per host, in group order. Hosts carrying none are listed with 0. */
export type Placement = Record<string, number>;

/** A placement that cannot be made; names the stack, the key and what is allowed. */
export class PlacementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PlacementError";
  }
}

export interface PlaceOptions {
  /** Stack name, for error messages. */
  stack?: string;
  /** Host group name, for error messages. */
  group?: string;
  /** An earlier placement to move as few replicas away from as possible. */
  previous?: Placement;
}

/**
 * Places `replicas` of `service` on `hosts` (group order). Throws PlacementError on zero
 * hosts with replicas > 0, on duplicate host names and on a bad replica count.
 */
export function placeReplicas(service: string, replicas: number, hosts: readonly string[], opts: PlaceOptions = {}): Placement {
  const where = `${opts.stack ? `stack "${opts.stack}": ` : ""}service "${service}"`;
  if (!Number.isInteger(replicas) || replicas < 0) {
    throw new PlacementError(`${where}: replicas must be an integer >= 0 (got ${replicas})`);
  }
  const seen = new Set<string>();
  for (const h of hosts) {
    if (seen.has(h)) throw new PlacementError(`${where}: host "${h}" is listed twice in host group "${opts.group ?? "?"}"`);
    seen.add(h);
  }
  if (hosts.length === 0) {
    if (replicas === 0) return {};
    const g = opts.group ?? "?";
    throw new PlacementError(
      `${where}: needs ${replicas} replica(s) but host group "${g}" has no hosts; ` +
        `set config.dockyard:hostGroups.${g}.count to at least 1, or config.dockyard:replicas.${service} to 0`,
    );
  }
  const n = hosts.length;
  const base = Math.floor(replicas / n);
  const extra = replicas % n;
  // Which hosts get the extra replica: the first `extra` in group order, or, given a
  // previous placement, the hosts that already carry the most (ties: group order).
  let extraHosts: Set<string>;
  if (opts.previous) {
    const prev = opts.previous;
    const ranked = hosts
      .map((h, i) => ({ h, i, had: prev[h] ?? 0 }))
      .sort((a, b) => b.had - a.had || a.i - b.i)
      .slice(0, extra)
      .map((x) => x.h);
    extraHosts = new Set(ranked);
  } else {
    extraHosts = new Set(hosts.slice(0, extra));
  }
  const out: Placement = {};
  for (const h of hosts) out[h] = base + (extraHosts.has(h) ? 1 : 0);
  return out;
}

/** Replicas that have to start somewhere new going from `before` to `after`. */
export function movedReplicas(before: Placement, after: Placement): number {
  let moved = 0;
  for (const [h, count] of Object.entries(after)) moved += Math.max(0, count - (before[h] ?? 0));
  return moved;
}

/** One replica: which host, which slot on that host. */
export interface ReplicaSlot {
  service: string;
  host: string;
  slot: number;
}

/** Expands a placement into its replicas, host by host in group order, slot 0..k-1. */
export function replicaSlots(service: string, placement: Placement): ReplicaSlot[] {
  return Object.entries(placement).flatMap(([host, count]) => Array.from({ length: count }, (_, slot) => ({ service, host, slot })));
}

/** Hosts that carry at least one replica, in group order. */
export function hostsWithReplicas(placement: Placement): string[] {
  return Object.entries(placement)
    .filter(([, c]) => c > 0)
    .map(([h]) => h);
}
