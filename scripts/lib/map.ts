/**
 * `dockyard plan <stack> --map`: the estate as a Mermaid flowchart, which GitHub renders
 * in a PR or README. Pure: built from the parsed spec with the program's own rules, so
 * the picture cannot drift from what the program creates:
 *  - hosts and their ordinals: stackHosts (the hosts index.ts creates, in fleet order);
 *  - availability zone: hostZone over dockyard:zones, the rule DockerHost places a host by
 *    (issue 24 item 6), shown by name; with --zones N (a what-if), or a stack that names no
 *    zones, by position: "AZ k" is the k-th of N zones sorted by name (pickSubnet);
 *  - replicas per host: placeFleet; the proxy and its routes: hostProxy (ContainerFleet);
 *  - the path from clients to the published ports: ingressRules (the host's security group).
 */
import { hostProxy, placeFleet } from "../../components/fleet";
import { hostZone, ingressRules, pickSubnet, stackHosts, type SubnetChoice } from "../../components/host";
import { replicaSlots } from "../../components/placement";
import { shortDigest, splitImageRef, type EnvironmentSpec } from "../../stacks";

/** One container on a host: a replica of a service, by its slot there. */
export interface MapReplica {
  service: string;
  slot: number;
  digest: string;
  containerPort: number;
}

/** The host's proxy: its image digest and what it publishes. */
export interface MapProxy {
  digest: string;
  routes: { service: string; publishPort: number; containerPort: number }[];
}

export interface MapHost {
  name: string;
  group: string;
  instanceType: string;
  ordinal: number;
  /** 1-based position of the host's AZ: in dockyard:zones when the stack names its zones, else among the region's default subnets (sorted by AZ name). */
  zone: number;
  /** The zone's name, when the stack names its zones (dockyard:zones) and --zones does not override them. */
  zoneName?: string;
  replicas: MapReplica[];
  proxy?: MapProxy;
  /** Ports on this host the clients reach (open to ingressCidrs and published by its proxy), with the CIDRs allowed. */
  reachable: { port: number; cidrs: string[] }[];
}

/** What the map shows, in the program's order. */
export interface EstateMap {
  stack: string;
  region: string;
  /** How many default subnets (AZs) the region is taken to have. */
  zones: number;
  /** True when `zones` was given; otherwise dockyard:zones' length, or the largest group's host count (no host wraps around). */
  zonesGiven: boolean;
  /** dockyard:zones, when the stack names its zones and `zones` was not given: hosts are placed by it (components/host.ts hostZone). */
  zoneNames?: string[];
  ingressCidrs: string[];
  hosts: MapHost[];
  /** environment.yaml fleet.mode: in swarm mode the swarm places the replicas; the map shows where static placement would. */
  fleetMode?: EnvironmentSpec["fleetMode"];
}

/**
 * Position (1-based) of the AZ a host with this ordinal lands in, in a region with `zones`
 * default subnets: pickSubnet chooses among stand-ins whose names sort in position order.
 */
export function zonePosition(ordinal: number, zones: number): number {
  const width = String(zones).length;
  const subnets: SubnetChoice[] = Array.from({ length: zones }, (_, i) => ({ id: `position-${i + 1}`, availabilityZone: `az-${String(i + 1).padStart(width, "0")}` }));
  return subnets.indexOf(pickSubnet(subnets, ordinal)) + 1;
}

/**
 * The estate of a parsed stack. `zones`: the number of default subnets (AZs) in the
 * region; default the largest group's host count, i.e. enough AZs that host k of every
 * group is in AZ k.
 */
export function estateMap(spec: EnvironmentSpec, opts: { zones?: number } = {}): EstateMap {
  const hosts = stackHosts(spec);
  // The stack's own zones place its EC2 hosts (issue 24 item 6); --zones is a what-if over positions.
  const zoneNames = opts.zones === undefined && spec.zones.length > 0 ? spec.zones : undefined;
  const zones = opts.zones ?? zoneNames?.length ?? Math.max(1, ...spec.hostGroups.map((g) => g.count));
  if (!Number.isInteger(zones) || zones < 1) throw new Error(`zones must be an integer >= 1 (got ${zones})`);
  const placements = placeFleet(spec.stack, spec.services, hosts.map((h) => ({ name: h.name, group: h.group.name })));
  return {
    stack: spec.stack,
    region: spec.region,
    zones,
    zonesGiven: opts.zones !== undefined,
    ...(zoneNames ? { zoneNames } : {}),
    ingressCidrs: spec.access.ingressCidrs,
    fleetMode: spec.fleetMode,
    hosts: hosts.map((h) => {
      const replicas = spec.services.flatMap((s) =>
        replicaSlots(s.name, { [h.name]: placements[s.name][h.name] ?? 0 }).map((r) => ({ service: s.name, slot: r.slot, digest: s.digest, containerPort: s.containerPort })),
      );
      const proxy = hostProxy(spec.proxyImage, spec.services, placements, h.name);
      const ports = proxy ? proxy.routes.map((r) => r.publishPort) : [];
      // The host's security group rules for the ports its proxy publishes; SSH is not a client path.
      const rules = ingressRules({ stack: spec.stack, group: h.group.name, sshCidrs: [], ingressCidrs: spec.access.ingressCidrs, servicePorts: ports });
      return {
        name: h.name,
        group: h.group.name,
        instanceType: h.group.instanceType,
        ordinal: h.ordinal,
        zone: zonePosition(h.ordinal, zones),
        ...(zoneNames ? { zoneName: hostZone(zoneNames, h.ordinal) } : {}),
        replicas,
        proxy: proxy && {
          digest: splitImageRef(proxy.image)?.digest ?? proxy.image,
          routes: proxy.routes.map((r) => ({ service: r.service, publishPort: r.publishPort, containerPort: r.containerPort })),
        },
        reachable: rules.map((r) => ({ port: r.fromPort, cidrs: r.cidrBlocks })),
      };
    }),
  };
}

// ---------------------------------------------------------------------------------
// Mermaid
// ---------------------------------------------------------------------------------

/** What a node or subgraph id looks like: letters, digits and `_`, starting with a letter. */
export const MERMAID_ID_RE = /^[A-Za-z][A-Za-z0-9_]*$/;

/**
 * Text inside a quoted Mermaid label: `"` would end it, `#` starts an entity code, and
 * GitHub renders labels as HTML, so `<`, `>` and `&` are written as entity codes too.
 * Line breaks are the only markup (`<br/>`), added by the caller.
 */
export function mermaidText(s: string): string {
  return s.replace(/[#"<>&]/g, (c) => `#${c.charCodeAt(0)};`);
}

const lines = (...parts: string[]) => parts.map(mermaidText).join("<br/>");

/**
 * The map as a Mermaid flowchart: clients at the top, then one box per AZ position with its
 * hosts, each host with its proxy (and the ports it publishes) and its replicas (service,
 * slot, digest). Edges: clients to each published port, the proxy to its replicas.
 * Ids are positional (h1, h1p, h1r2...), so no name can clash with Mermaid's syntax.
 */
export function formatMap(map: EstateMap): string {
  const out: string[] = ["flowchart TB"];
  out.push(`  %% dockyard plan ${map.stack} --map: stack ${map.stack}, region ${map.region}.`);
  out.push(
    map.zoneNames
      ? `  %% Zones: dockyard:zones (${map.zoneNames.join(", ")}); host k of each group is in its k-th zone, wrapping around.`
      : map.zonesGiven
      ? `  %% AZ k: the k-th of the region's default subnets, sorted by AZ name; the region is taken to have ${map.zones} (--zones).`
      : `  %% AZ k: the k-th of the region's default subnets, sorted by AZ name (host k of each group is placed there; a region with fewer wraps: --zones).`,
  );
  if (map.fleetMode === "swarm") {
    out.push("  %% fleet.mode swarm: the swarm places the replicas (spread over zones) and moves them off a dead host; shown where static placement would put them. Each proxy reaches every replica of its group.");
  }
  const edges: string[] = [];
  const cidrs = [...new Set(map.ingressCidrs)].sort();
  out.push(cidrs.length > 0 ? `  clients(["${lines("clients", ...cidrs)}"])` : `  clients(["${lines("no clients: dockyard:ingressCidrs is empty")}"])`);
  const zones = [...new Set(map.hosts.map((h) => h.zone))].sort((a, b) => a - b);
  for (const zone of zones) {
    const name = map.hosts.find((h) => h.zone === zone)?.zoneName;
    out.push(`  subgraph az${zone}["${lines(name ? `zone ${name}` : `AZ ${zone} of the region's default subnets`)}"]`);
    map.hosts.forEach((h, i) => {
      if (h.zone !== zone) return;
      const id = `h${i + 1}`;
      out.push(`    subgraph ${id}["${lines(`${h.name} (${h.instanceType})`)}"]`);
      if (h.proxy) {
        const ports = h.proxy.routes.map((r) => `:${r.publishPort} to ${r.service}`);
        out.push(`      ${id}p[["${lines(`proxy haproxy@${shortDigest(h.proxy.digest)}`, `publishes ${ports.join(", ")}`)}"]]`);
        for (const r of h.reachable) edges.push(`  clients -->|"${lines(`tcp/${r.port}`)}"| ${id}p`);
      }
      h.replicas.forEach((r, j) => {
        const rid = `${id}r${j + 1}`;
        out.push(`      ${rid}("${lines(`${r.service}@${shortDigest(r.digest)}`, `slot ${r.slot}`)}")`);
        if (h.proxy?.routes.some((x) => x.service === r.service)) edges.push(`  ${id}p -->|"${lines(`:${r.containerPort}`)}"| ${rid}`);
      });
      if (!h.proxy && h.replicas.length === 0) out.push(`      ${id}e["${lines("no containers")}"]`);
      out.push("    end");
    });
    out.push("  end");
  }
  return [...out, ...edges].join("\n") + "\n";
}
