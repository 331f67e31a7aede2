/**
 * `dockyard plan <stack> --map` (scripts/lib/map.ts): the Mermaid diagram is read back with
 * a small parser of the only syntax it may use, and held against the program's own rules
 * for dev, test, prod and a planted estate of several groups and services: each host under
 * the AZ its ordinal gives, exactly the replicas placeFleet gives it, a proxy with its ports
 * exactly where a published service has a replica, the client path only to those ports.
 * The map is also checked against what the real program renders, and the README's prod
 * map against the command's output.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { placeFleet, proxyRoutes } from "../../components/fleet";
import { stackHosts } from "../../components/host";
import { ENVIRONMENT_FILE, STACKS_DIR, loadStackSpec, shortDigest, type EnvironmentSpec } from "../../stacks";
import { MERMAID_ID_RE, estateMap, formatMap, mermaidText, zonePosition } from "../../scripts/lib/map";
import { renderStack } from "../../scripts/lib/render";
import { ROOT, cli } from "./cli";

// ---------------------------------------------------------------------------------
// Reading the diagram back
// ---------------------------------------------------------------------------------

interface Node {
  id: string;
  shape: string;
  label: string[];
  /** Enclosing subgraph ids, outermost first. */
  parents: string[];
}
interface Subgraph {
  id: string;
  label: string[];
  parents: string[];
}
interface Diagram {
  nodes: Map<string, Node>;
  subgraphs: Map<string, Subgraph>;
  edges: { from: string; to: string; label: string[] }[];
}

/** Words Mermaid's flowchart grammar reserves; an id equal to one breaks the diagram. */
const RESERVED = new Set(["end", "graph", "flowchart", "subgraph", "style", "class", "classDef", "click", "linkStyle", "direction", "default", "call", "href", "callback", "interpolate"]);
const ID = String.raw`([A-Za-z][A-Za-z0-9_]*)`;
const LABEL = String.raw`"([^"]*)"`;
const SHAPES: [string, RegExp][] = [
  ["stadium", new RegExp(`^${ID}\\(\\[${LABEL}\\]\\)$`)],
  ["subroutine", new RegExp(`^${ID}\\[\\[${LABEL}\\]\\]$`)],
  ["round", new RegExp(`^${ID}\\(${LABEL}\\)$`)],
  ["box", new RegExp(`^${ID}\\[${LABEL}\\]$`)],
];

/** Label text as it reads: lines split at <br/>, entity codes decoded. Fails on markup other than <br/>. */
function labelLines(raw: string): string[] {
  const parts = raw.split("<br/>");
  for (const p of parts) expect(p, `label ${JSON.stringify(raw)}`).not.toMatch(/[<>&"]/);
  return parts.map((p) => p.replace(/#(\d+);/g, (_, n) => String.fromCharCode(Number(n))));
}

/** Parses the diagram; fails the test on any line outside the syntax the map may use. */
function parseDiagram(text: string): Diagram {
  const d: Diagram = { nodes: new Map(), subgraphs: new Map(), edges: [] };
  const lines = text.split("\n");
  expect(lines[0]).toBe("flowchart TB");
  expect(lines.at(-1)).toBe(""); // ends with a newline
  const stack: string[] = [];
  const define = (id: string) => {
    expect(RESERVED.has(id) || RESERVED.has(id.toLowerCase()), `id ${id} is a Mermaid keyword`).toBe(false);
    expect(d.nodes.has(id) || d.subgraphs.has(id), `id ${id} defined twice`).toBe(false);
  };
  for (const raw of lines.slice(1, -1)) {
    const line = raw.trim();
    // Indentation shows nesting: two spaces per level, `end` at its subgraph's level.
    expect(raw).toBe(`${"  ".repeat(line === "end" ? stack.length : stack.length + 1)}${line}`);
    if (line.startsWith("%% ")) continue;
    let m = new RegExp(`^subgraph ${ID}\\[${LABEL}\\]$`).exec(line);
    if (m) {
      define(m[1]);
      d.subgraphs.set(m[1], { id: m[1], label: labelLines(m[2]), parents: [...stack] });
      stack.push(m[1]);
      continue;
    }
    if (line === "end") {
      expect(stack.length, "end without subgraph").toBeGreaterThan(0);
      stack.pop();
      continue;
    }
    m = new RegExp(`^${ID} -->\\|${LABEL}\\| ${ID}$`).exec(line);
    if (m) {
      d.edges.push({ from: m[1], to: m[3], label: labelLines(m[2]) });
      continue;
    }
    const shape = SHAPES.find(([, re]) => re.test(line));
    expect(shape, `line outside the map's syntax: ${JSON.stringify(line)}`).toBeDefined();
    m = shape![1].exec(line)!;
    define(m[1]);
    d.nodes.set(m[1], { id: m[1], shape: shape![0], label: labelLines(m[2]), parents: [...stack] });
  }
  expect(stack, "every subgraph is closed").toEqual([]);
  for (const id of [...d.nodes.keys(), ...d.subgraphs.keys()]) expect(id).toMatch(MERMAID_ID_RE);
  for (const e of d.edges) {
    expect(d.nodes.has(e.from), `edge from undefined node ${e.from}`).toBe(true);
    expect(d.nodes.has(e.to), `edge to undefined node ${e.to}`).toBe(true);
  }
  return d;
}

/** What the diagram says about each host, read from its subgraph. */
interface SeenHost {
  az: string;
  replicas: Record<string, number>;
  digests: Record<string, string[]>;
  proxy?: { id: string; label: string[] };
  replicaIds: Record<string, string[]>;
}
function hostsOf(d: Diagram): Map<string, SeenHost> {
  const out = new Map<string, SeenHost>();
  for (const sg of d.subgraphs.values()) {
    if (sg.parents.length === 0) {
      expect(sg.label[0]).toMatch(/^(AZ \d+ of the region's default subnets|zone [a-z0-9-]+)$/);
      continue;
    }
    expect(sg.parents).toHaveLength(1);
    // "AZ k" by position, or "zone <name>" when the stack names its zones (dockyard:zones).
    const zoneLabel = d.subgraphs.get(sg.parents[0])!.label[0];
    const az = /^AZ (\d+) /.exec(zoneLabel)?.[1] ?? /^zone (\S+)$/.exec(zoneLabel)![1];
    const name = /^(\S+) \(/.exec(sg.label[0])![1];
    const host: SeenHost = { az, replicas: {}, digests: {}, replicaIds: {} };
    for (const n of d.nodes.values()) {
      if (n.parents.at(-1) !== sg.id) continue;
      if (n.label[0].startsWith("proxy ")) {
        expect(host.proxy, `${name}: one proxy`).toBeUndefined();
        host.proxy = { id: n.id, label: n.label };
        continue;
      }
      if (n.label[0] === "no containers") continue;
      const [service, digest] = n.label[0].split("@");
      host.replicas[service] = (host.replicas[service] ?? 0) + 1;
      (host.digests[service] ??= []).push(digest);
      (host.replicaIds[service] ??= []).push(n.id);
    }
    expect(out.has(name), `${name} drawn twice`).toBe(false);
    out.set(name, host);
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Stacks
// ---------------------------------------------------------------------------------

let tmp: string;
/** A planted estate: three groups (one empty), four services, some published, uneven spreads. */
let planted: { dir: string; environmentFile: string };
let noIngress: { dir: string; environmentFile: string };

function plant(name: string, ingressCidrs: string[]): { dir: string; environmentFile: string } {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const env = YAML.parse(fs.readFileSync(ENVIRONMENT_FILE, "utf8"));
  env.hostGroups.worker = { role: "worker", dataMount: "/var/lib/dockyard" };
  env.hostGroups.edge = { role: "edge" };
  const web = env.services.web;
  env.services.api = { ...web, repository: "api", containerPort: 9090, publishPort: 8443, replicas: 2, volumes: {} };
  env.services.jobs = { group: "worker", repository: "jobs", containerPort: 7000, replicas: 3, health: web.health };
  env.services.admin = { group: "worker", repository: "admin", containerPort: 8081, publishPort: 9000, replicas: 1, health: web.health };
  env.services.cron = { group: "edge", repository: "cron", containerPort: 7001, replicas: 0, health: web.health };
  const environmentFile = path.join(dir, "environment.yaml");
  fs.writeFileSync(environmentFile, YAML.stringify(env));
  const stack = YAML.parse(fs.readFileSync(path.join(STACKS_DIR, "Pulumi.prod.yaml"), "utf8"));
  const c = stack.config;
  c["dockyard:registry"] = c["dockyard:registry"].replace("dockyard-prod", "dockyard-lab");
  c["dockyard:hostGroups"].worker = { instanceType: "c6i.large", count: 2 };
  c["dockyard:hostGroups"].edge = { instanceType: "t3.small", count: 0 };
  c["dockyard:replicas"] = { web: 5 };
  c["dockyard:ingressCidrs"] = ingressCidrs;
  const digest = (n: number) => `sha256:${String(n).repeat(64)}`;
  c["dockyard:images"] = { web: c["dockyard:images"].web, api: digest(1), jobs: digest(2), admin: digest(3), cron: digest(4) };
  fs.writeFileSync(path.join(dir, "Pulumi.lab.yaml"), YAML.stringify(stack));
  return { dir, environmentFile };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-map-"));
  planted = plant("planted", ["203.0.113.0/24", "198.51.100.0/24"]);
  noIngress = plant("no-ingress", []);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const labSpec = () => loadStackSpec("lab", planted);

/**
 * Host -> AZ position each case must show, written out by hand from the rule (host
 * ordinal k in AZ ((k-1) mod zones) + 1), not computed with the code under test.
 */
const CASES: { name: string; spec: () => EnvironmentSpec; zones?: number; az: Record<string, string | number> }[] = [
  // The shipped stacks name their zones (dockyard:zones: eu-west-1a, b, c): shown by name.
  { name: "dev", spec: () => loadStackSpec("dev"), az: { "dev-app-1": "eu-west-1a" } },
  { name: "test", spec: () => loadStackSpec("test"), az: { "test-app-1": "eu-west-1a", "test-app-2": "eu-west-1b" } },
  { name: "prod", spec: () => loadStackSpec("prod"), az: { "prod-app-1": "eu-west-1a", "prod-app-2": "eu-west-1b", "prod-app-3": "eu-west-1c" } },
  // The zones' order is the stack file's, not the alphabet's: host 1 in the first named zone.
  { name: "prod, zones listed c, a", spec: () => ({ ...loadStackSpec("prod"), zones: ["eu-west-1c", "eu-west-1a"] }), az: { "prod-app-1": "eu-west-1c", "prod-app-2": "eu-west-1a", "prod-app-3": "eu-west-1c" } },
  // --zones is a what-if by position, over the stack's own names.
  { name: "prod, --zones 2", spec: () => loadStackSpec("prod"), zones: 2, az: { "prod-app-1": 1, "prod-app-2": 2, "prod-app-3": 1 } },
  { name: "planted", spec: labSpec, az: { "lab-app-1": "eu-west-1a", "lab-app-2": "eu-west-1b", "lab-app-3": "eu-west-1c", "lab-worker-1": "eu-west-1a", "lab-worker-2": "eu-west-1b" } },
  { name: "planted, region of 2 AZs", spec: labSpec, zones: 2, az: { "lab-app-1": 1, "lab-app-2": 2, "lab-app-3": 1, "lab-worker-1": 1, "lab-worker-2": 2 } },
];

describe("the map against the placement", () => {
  for (const c of CASES) {
    it(`${c.name}: every host under its AZ with exactly its replicas, proxies and client paths where routes are published`, () => {
      const spec = c.spec();
      const text = formatMap(estateMap(spec, { zones: c.zones }));
      const d = parseDiagram(text);
      const seen = hostsOf(d);
      const hosts = stackHosts(spec);
      const placements = placeFleet(spec.stack, spec.services, hosts.map((h) => ({ name: h.name, group: h.group.name })));

      expect(Object.fromEntries([...seen].map(([h, s]) => [h, s.az]))).toEqual(Object.fromEntries(Object.entries(c.az).map(([h, z]) => [h, String(z)])));
      for (const h of hosts) {
        const s = seen.get(h.name)!;
        // Replicas: exactly placeFleet's, each labelled with its service's digest.
        const expected = Object.fromEntries(spec.services.map((x) => [x.name, placements[x.name][h.name] ?? 0]).filter(([, n]) => (n as number) > 0));
        expect(s.replicas, h.name).toEqual(expected);
        for (const x of spec.services) for (const dg of s.digests[x.name] ?? []) expect(dg).toBe(shortDigest(x.digest));
        // The proxy: exactly on hosts with a published route, publishing exactly those ports.
        const routes = proxyRoutes(spec.services, placements, h.name);
        expect(!!s.proxy, `${h.name} proxy`).toBe(routes.length > 0);
        if (!s.proxy) continue;
        expect(s.proxy.label).toEqual([`proxy haproxy@${shortDigest(spec.proxyImage!.split("@")[1])}`, `publishes ${routes.map((r) => `:${r.publishPort} to ${r.service}`).join(", ")}`]);
        // Clients reach exactly the published ports; the proxy reaches exactly its routed replicas.
        const clientPorts = d.edges.filter((e) => e.to === s.proxy!.id).map((e) => (expect(e.from).toBe("clients"), e.label[0]));
        expect(clientPorts).toEqual(spec.access.ingressCidrs.length > 0 ? routes.map((r) => `tcp/${r.publishPort}`) : []);
        const toReplicas = d.edges.filter((e) => e.from === s.proxy!.id);
        expect(toReplicas.map((e) => e.to).sort()).toEqual(routes.flatMap((r) => s.replicaIds[r.service]).sort());
        for (const r of routes) for (const e of toReplicas.filter((x) => s.replicaIds[r.service].includes(x.to))) expect(e.label).toEqual([`:${r.containerPort}`]);
      }
      expect([...seen.keys()].sort()).toEqual(hosts.map((h) => h.name).sort());
      // Clients: every ingress CIDR, and no other edge than clients -> proxy -> replica.
      expect(d.nodes.get("clients")!.label).toEqual(["clients", ...[...spec.access.ingressCidrs].sort()]);
      for (const e of d.edges) expect(e.from === "clients" || d.nodes.get(e.from)!.label[0].startsWith("proxy ")).toBe(true);
      // Deterministic: the same text from a fresh parse of the same files.
      expect(formatMap(estateMap(c.spec(), { zones: c.zones }))).toBe(text);
    });
  }

  it("the planted estate really exercises the cases: uneven spreads, a host without proxy, a proxy with two ports", () => {
    const seen = hostsOf(parseDiagram(formatMap(estateMap(labSpec()))));
    expect(seen.get("lab-app-1")!.replicas).toEqual({ web: 2, api: 1 });
    expect(seen.get("lab-app-3")!.replicas).toEqual({ web: 1 });
    expect(seen.get("lab-worker-1")!.replicas).toEqual({ jobs: 2, admin: 1 });
    expect(seen.get("lab-worker-2")!.replicas).toEqual({ jobs: 1 });
    expect(seen.get("lab-worker-2")!.proxy).toBeUndefined();
    expect(seen.get("lab-app-1")!.proxy!.label[1]).toBe("publishes :80 to web, :8443 to api");
    expect(seen.get("lab-app-3")!.proxy!.label[1]).toBe("publishes :80 to web");
  });

  it("without ingressCidrs the published ports show no client path, and say so", () => {
    const d = parseDiagram(formatMap(estateMap(loadStackSpec("lab", noIngress))));
    expect(d.nodes.get("clients")!.label).toEqual(["no clients: dockyard:ingressCidrs is empty"]);
    expect(d.edges.filter((e) => e.from === "clients")).toEqual([]);
    expect(d.edges.length).toBeGreaterThan(0); // proxies still route to their replicas
  });

  it("a host with nothing on it is still drawn, with a node (an empty subgraph does not render)", () => {
    const spec = loadStackSpec("prod");
    const idle = { ...spec, services: spec.services.map((s) => ({ ...s, replicas: 2 })) };
    const d = parseDiagram(formatMap(estateMap(idle)));
    const h3 = [...d.subgraphs.values()].find((s) => s.label[0].startsWith("prod-app-3 "))!;
    expect([...d.nodes.values()].filter((n) => n.parents.at(-1) === h3.id).map((n) => n.label)).toEqual([["no containers"]]);
  });
});

describe("AZ positions and Mermaid text", () => {
  it("zonePosition follows pickSubnet: hosts 1..n in n AZs, then around again", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((o) => zonePosition(o, 3))).toEqual([1, 2, 3, 1, 2, 3, 1]);
    expect([1, 2, 3].map((o) => zonePosition(o, 1))).toEqual([1, 1, 1]);
    // Positions past 9 sort as numbers, not as text ("10" < "2").
    expect([2, 10, 11, 12].map((o) => zonePosition(o, 12))).toEqual([2, 10, 11, 12]);
  });

  it("label text cannot end a label or inject markup", () => {
    const s = mermaidText('a"b<script>&c#1;');
    expect(s).not.toMatch(/["<>&]/);
    expect(labelLines(s)).toEqual(['a"b<script>&c#1;']);
  });
});

describe("the map against the rendered program", () => {
  for (const [stack, opts, spec] of [
    ["prod", () => ({}), () => loadStackSpec("prod")],
    ["lab", () => ({ stacksDir: planted.dir, environmentFile: planted.environmentFile }), labSpec],
  ] as const) {
    it(`${stack}: the containers and proxy ports the program registers per host are the map's`, async () => {
      const r = await renderStack(stack, opts());
      const seen = hostsOf(parseDiagram(formatMap(estateMap(spec()))));
      const label = (c: { inputs: Record<string, unknown> }, k: string) => (c.inputs.labels as { label: string; value: string }[]).find((l) => l.label === k)?.value;
      const fromRender = new Map<string, { replicas: Record<string, number>; ports?: number[] }>();
      for (const c of r.resources.filter((x) => x.type === "docker:index/container:Container")) {
        const host = c.options!.provider!.replace(/^pulumi:providers:docker::fleet-/, "");
        const h = fromRender.get(host) ?? { replicas: {} };
        if (label(c, "dockyard.role") === "proxy") h.ports = (c.inputs.ports as { external: number }[]).map((p) => p.external);
        else h.replicas[label(c, "dockyard.service")!] = (h.replicas[label(c, "dockyard.service")!] ?? 0) + 1;
        fromRender.set(host, h);
      }
      for (const [host, s] of seen) {
        const h = fromRender.get(host) ?? { replicas: {} };
        expect(s.replicas, host).toEqual(h.replicas);
        expect(s.proxy ? [...s.proxy.label[1].matchAll(/:(\d+) to/g)].map((m) => Number(m[1])) : undefined, host).toEqual(h.ports);
      }
      expect([...fromRender.keys()].every((h) => seen.has(h))).toBe(true);
    }, 180_000);
  }
});

describe("dockyard plan --map (CLI)", () => {
  it("README.md shows prod's map exactly as the command prints it now", async () => {
    const r = await cli(["plan", "prod", "--map"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(formatMap(estateMap(loadStackSpec("prod"))));
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const block = /<!-- plan prod --map -->\n```mermaid\n([\s\S]*?)```\n/.exec(readme);
    expect(block, "README.md: a ```mermaid block after <!-- plan prod --map -->").not.toBeNull();
    expect(block![1], "README.md's map is stale: regenerate it with npm run -s plan -- prod --map").toBe(r.stdout);
  });

  it("--map with --json or --all, or --zones without --map or below 1, is a usage error (exit 2)", async () => {
    for (const [args, msg] of [
      [["--map", "--json"], "--map prints a Mermaid diagram; it cannot be combined with --json or --all"],
      [["--map", "--all"], "cannot be combined with --json or --all"],
      [["--zones", "2"], "--zones only applies to --map"],
      [["--map", "--zones", "0"], "--zones must be an integer >= 1 (got 0)"],
    ] as const) {
      const r = await cli(["plan", "prod", ...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });

  it("bad input: exit 2 naming the stack, file and key, no stack trace; --zones shows the wrap", async () => {
    const dir = path.join(tmp, "bad");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), fs.readFileSync(path.join(STACKS_DIR, "Pulumi.prod.yaml"), "utf8").replace("count: 3", "count: many"));
    const bad = await cli(["plan", "prod", "--map", "--stacks-dir", dir]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toMatch(/stack "prod".*Pulumi\.prod\.yaml: config\.dockyard:hostGroups\.app\.count/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    const unknown = await cli(["plan", "staging", "--map"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("no such stack file; stacks: dev, local, prod, test");
    const two = await cli(["plan", "lab", "--map", "--zones", "2", "--stacks-dir", planted.dir, "--environment", planted.environmentFile]);
    expect(two.code).toBe(0);
    expect(two.stdout).toBe(formatMap(estateMap(labSpec(), { zones: 2 })));
  });
});
