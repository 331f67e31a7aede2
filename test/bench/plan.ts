/**
 * `npm run bench -- plan [--hosts 100] [--services 10] [--floor] [--json]`
 *
 * Renders a generated stack of N hosts that each run M services (N x M containers, one
 * replica of every service on every host, each service publishing a port through the host's
 * proxy) the way `npm run plan` does (renderStack: the real program under the mock runtime
 * in a worker process), then the same with 2N hosts, and prints the wall time and the
 * worker's peak resident memory of each. A host group holds at most 50 hosts (the schema's
 * count), so N hosts are ceil(N/50) groups, each with its own M services.
 *
 * Targets (issue 13): N x M = 1,000 containers in under 10 s; 2N within 2.2x the time of N.
 * Exit 0 when met, 1 when not, 2 for bad usage. Each run also prints the worker's CPU time
 * and the load average: wall time here moves with others' work on the 2 cores, CPU time less.
 *
 * Measured 2026-11-29 (2 cores, load 4-10; program at 3a15803, 9,492 resources per 1,000
 * containers), before/after the worker stopped capturing stacks (scripts/lib/render-worker.ts):
 *   1,000 containers: 42-84 s wall, 39-46 s CPU, 2.3 GiB  ->  38-48 s wall, 35-42 s CPU, 2.2 GiB
 *   2,000 containers: 90-103 s CPU, 3.7 GiB               ->  82-86 s CPU, 3.8 GiB; 2N/N 1.9-2.4x
 * (3 runs each; about 10-15% less CPU, within the spread of single runs.)
 * With the rollout gates' O(n^2) dependsOn fixed (components/rollout.ts withTurn), program at
 * 7991d7c, load 2.5-3.3: 1,000 containers 23.2 s wall, 33.1 s CPU, 2.1 GiB; 2,000 containers
 * 50.6 s, 72.6 s CPU, 3.6 GiB; 2N/N 2.18x.
 * Both targets missed (README, Benchmarks: where the rest of the time goes). With `--floor`
 * (program as of the floor's commit, load 2.6): 1,000 containers 27.2 s wall, 37.9 s CPU;
 * the SDK alone for those 9,692 resources 20.1 s with their classes, 11.4 s bare; 2N/N 2.04x.
 *
 * `--floor` then measures the SDK's own cost for the N-host render's resources
 * (test/bench/lib/sdk-floor-worker.ts): the same resources registered again from their
 * recorded inputs under the same mock runtime, with no Dockyard code, once with their real
 * SDK classes and once as bare CustomResources (inputs only). A render cannot beat it
 * without registering fewer resources or changing the SDK.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { readEnvironmentFile } from "../../stacks";
import { spawn } from "node:child_process";
import { WORKER_NODE_FLAGS, renderStackMeasured, type RenderedResource } from "../../scripts/lib/render";

const STACK = "bench";
const GROUP_MAX = 50;
const digest = (i: number) => `sha256:${(i % 256).toString(16).padStart(2, "0").repeat(32)}`;

/** Writes environment.yaml and Pulumi.bench.yaml for `hosts` x `services` into a temp dir. */
export function writeBenchStack(hosts: number, services: number): { stacksDir: string; environmentFile: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-bench-plan-"));
  const env = structuredClone(readEnvironmentFile(STACK)) as Record<string, any>;
  const web = env.services.web;
  const groups = Array.from({ length: Math.ceil(hosts / GROUP_MAX) }, (_, g) => `g${g}`);
  env.hostGroups = Object.fromEntries(groups.map((g) => [g, { role: "app", dataMount: "/var/lib/dockyard" }]));
  env.services = {};
  const hostGroups: Record<string, unknown> = {};
  const images: Record<string, string> = {};
  const replicas: Record<string, number> = {};
  groups.forEach((g, gi) => {
    const count = Math.min(GROUP_MAX, hosts - gi * GROUP_MAX);
    hostGroups[g] = { instanceType: "m6i.large", count, rootVolumeGb: 30, dataVolumeGb: 100 };
    for (let s = 0; s < services; s++) {
      const name = `${g}-s${s}`;
      env.services[name] = { ...structuredClone(web), group: g, publishPort: 8000 + s };
      delete env.services[name].repository;
      images[name] = digest(gi * services + s + 1);
      replicas[name] = count;
    }
  });
  const config = {
    "aws:region": "eu-west-1",
    "dockyard:registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-bench",
    "dockyard:hostGroups": hostGroups,
    "dockyard:zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
    "dockyard:ingressCidrs": ["0.0.0.0/0"],
    "dockyard:proxyImage": digest(255),
    "dockyard:images": images,
    "dockyard:replicas": replicas,
  };
  const environmentFile = path.join(dir, "environment.yaml");
  fs.writeFileSync(environmentFile, YAML.stringify(env));
  fs.writeFileSync(path.join(dir, `Pulumi.${STACK}.yaml`), YAML.stringify({ config }));
  return { stacksDir: dir, environmentFile };
}

interface Measured {
  hosts: number;
  services: number;
  containers: number;
  resources: number;
  seconds: number;
  /** The worker's CPU time, all threads: less inflated than wall time when the machine is busy. */
  cpuSeconds: number;
  peakMiB: number;
  /** 1-minute load average when the render ended (os.loadavg): other work competing for the cores. */
  load: number;
}

async function measure(hosts: number, services: number): Promise<{ measured: Measured; resources: RenderedResource[] }> {
  const opts = writeBenchStack(hosts, services);
  try {
    const t0 = process.hrtime.bigint();
    const { rendered: r, stats } = await renderStackMeasured(STACK, { ...opts, timeoutMs: 900_000 });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const containers = r.resources.filter((x) => x.type === "docker:index/container:Container" && !x.name.endsWith("-proxy")).length;
    const measured = { hosts, services, containers, resources: r.resources.length, seconds, cpuSeconds: stats?.cpuSeconds ?? 0, peakMiB: (stats?.maxRssKb ?? 0) / 1024, load: os.loadavg()[0] };
    return { measured, resources: r.resources };
  } finally {
    fs.rmSync(opts.stacksDir, { recursive: true, force: true });
  }
}

/** The SDK-floor worker's answer (test/bench/lib/sdk-floor-worker.ts). */
interface Floor {
  mode: "classes" | "bare";
  resources: number;
  /** Registration until every RPC answered; the SDK packages' load time is apart. */
  registerSeconds: number;
  loadSeconds: number;
  cpuSeconds: number;
  maxRssKb: number;
}

/** Runs the SDK-floor worker over `resources` in a fresh process, with the render worker's node flags. */
export function floor(resources: RenderedResource[], mode: Floor["mode"]): Promise<Floor> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-bench-floor-"));
  const file = path.join(dir, "resources.json");
  fs.writeFileSync(file, JSON.stringify(resources));
  return new Promise<Floor>((resolve, reject) => {
    const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, path.join(__dirname, "lib", "sdk-floor-worker.ts"), file, mode], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    (child.stdio[3] as NodeJS.ReadableStream).on("data", (d: Buffer) => out.push(d));
    child.on("error", reject);
    child.on("close", (code) => {
      const text = Buffer.concat(out).toString("utf8");
      if (code === 0 && text) resolve({ mode, ...(JSON.parse(text) as Omit<Floor, "mode">) });
      else reject(new Error(`the SDK-floor worker (${mode}) failed, exit ${code}: ${Buffer.concat(err).toString("utf8").trim()}`));
    });
  }).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

export async function run(argv: string[]): Promise<number> {
  const opt = (name: string, dflt: number): number | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return dflt;
    const v = Number(argv[i + 1]);
    return Number.isInteger(v) && v > 0 && v <= 1000 ? v : undefined;
  };
  const unknown = argv.filter((a, i) => a.startsWith("--") && !["--hosts", "--services", "--floor", "--json"].includes(a) && !(i > 0 && ["--hosts", "--services"].includes(argv[i - 1])));
  const hosts = opt("hosts", 100);
  const services = opt("services", 10);
  if (hosts === undefined || services === undefined || unknown.length > 0) {
    process.stderr.write("usage: npm run bench -- plan [--hosts N (1-1000, default 100)] [--services M (1-1000, default 10)] [--floor] [--json]\n");
    return 2;
  }
  const first = await measure(hosts, services);
  const a = first.measured;
  const floors = argv.includes("--floor") ? [await floor(first.resources, "classes"), await floor(first.resources, "bare")] : [];
  first.resources.length = 0;
  const b = (await measure(2 * hosts, services)).measured;
  const ratio = b.seconds / a.seconds;
  // The 10 s target is for 1,000 containers; other sizes are held to it pro rata.
  const budget = (10 * a.containers) / 1000;
  const missed = [
    ...(a.seconds > budget ? [`${a.containers} containers took ${a.seconds.toFixed(1)} s (target: ${budget.toFixed(1)} s, 10 s per 1,000)`] : []),
    ...(ratio > 2.2 ? [`${b.hosts} hosts took ${ratio.toFixed(2)}x the time of ${a.hosts} (target: at most 2.2x)`] : []),
  ];
  if (argv.includes("--json")) {
    process.stdout.write(`${JSON.stringify({ runs: [a, b], ratio, floors, missed }, null, 2)}\n`);
  } else {
    for (const m of [a, b]) {
      process.stdout.write(`${String(m.hosts).padStart(4)} hosts x ${m.services} services: ${m.containers} containers, ${m.resources} resources, ${m.seconds.toFixed(1)} s (worker CPU ${m.cpuSeconds.toFixed(1)} s), peak ${m.peakMiB.toFixed(0)} MiB, load ${m.load.toFixed(1)} on ${os.cpus().length} cores\n`);
    }
    process.stdout.write(`ratio ${b.hosts}/${a.hosts} hosts: ${ratio.toFixed(2)}x\n`);
    for (const f of floors) {
      const what = f.mode === "classes" ? "their SDK classes" : "bare CustomResources (inputs only)";
      process.stdout.write(`SDK floor, the ${a.hosts}-host render's ${f.resources} resources as ${what}, no Dockyard code: ${f.registerSeconds.toFixed(1)} s (+${f.loadSeconds.toFixed(1)} s loading the classes; worker CPU ${f.cpuSeconds.toFixed(1)} s), peak ${(f.maxRssKb / 1024).toFixed(0)} MiB\n`);
    }
    process.stdout.write(missed.length === 0 ? "targets met\n" : missed.map((m) => `MISSED: ${m}\n`).join(""));
  }
  return missed.length === 0 ? 0 : 1;
}
