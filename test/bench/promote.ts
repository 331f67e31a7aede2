/**
 * `npm run bench -- promote [--layers 12] [--layer-mib 18] [--rounds 2] [--json]`
 *
 * Promotes one multi-layer image of random (incompressible) data, built here, between
 * the two loopback registries of test/infra/30-registries.sh, and runs `skopeo copy --all`
 * of the same image over the same paths in the same run:
 *   - same registry (127.0.0.1:5001, another repository): promote mounts every blob;
 *   - across registries (5001 -> 5002): promote streams every blob.
 * Each copy goes to a repository never used before, and each round builds a new image, so
 * no tool finds the blobs already there (skopeo's blob-info cache included). Rounds
 * alternate which tool goes first; `sync` runs before each measurement; the ratios are
 * of the total times over all rounds.
 * All traffic goes through byte-counting loopback proxies (one per registry, in a child
 * process so they do not share the promoting process's CPU); "sent to dest" is what the
 * client sent to the destination registry: request lines, headers and bodies.
 * Targets: same-registry promote <= 0.1x skopeo's time with 0 layer bytes uploaded;
 * cross-registry promote <= 1.0x skopeo's time. Exit 0 when met, 1 when not.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import * as zlib from "node:zlib";
import { DIGEST_RE } from "../../stacks";
import { formatBytes } from "../../scripts/lib/change";
import { MEDIA_TYPES, RegistryClient, sha256Digest } from "../../scripts/lib/oci";
import { promote } from "../../scripts/promote";

const REGISTRY_A_PORT = 5001;
const REGISTRY_B_PORT = 5002;
const REPO_ROOT = path.resolve(__dirname, "../..");

/** A tar archive holding one file of `data` (ustar, one header, two zero blocks). */
export function tarOneFile(name: string, data: Buffer): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(data.length.toString(8).padStart(11, "0") + "\0", 124);
  h.write("00000000000\0", 136);
  h.write("        ", 148); // checksum placeholder
  h.write("0", 156);
  h.write("ustar\0", 257);
  h.write("00", 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([h, data, Buffer.alloc(pad), Buffer.alloc(1024)]);
}

interface BenchImage {
  repository: string;
  digest: string;
  layers: number;
  layerBytes: number;
}

/** Builds and pushes an image of `layers` gzip layers, each a tar of `layerMiB` MiB of random bytes. */
async function buildImage(client: RegistryClient, repository: string, layers: number, layerMiB: number, log: (l: string) => void): Promise<BenchImage> {
  const descs: { mediaType: string; digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  let total = 0;
  for (let i = 0; i < layers; i++) {
    const tar = tarOneFile(`layer-${i}.bin`, crypto.randomBytes(layerMiB * 1024 * 1024));
    diffIds.push(sha256Digest(tar));
    const gz = zlib.gzipSync(tar, { level: 1 });
    const digest = sha256Digest(gz);
    await client.uploadBlob(repository, digest, gz.length, async () => Readable.from([gz]));
    descs.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest, size: gz.length });
    total += gz.length;
  }
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: diffIds } }));
  const configDigest = sha256Digest(config);
  await client.uploadBlob(repository, configDigest, config.length, async () => Readable.from([config]));
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length }, layers: descs }),
  );
  const digest = sha256Digest(manifest);
  await client.putManifest(repository, { digest, mediaType: MEDIA_TYPES.ociManifest, bytes: manifest });
  log(`built ${client.registry}/${repository}@${digest}: ${layers} layers, ${formatBytes(total)}`);
  return { repository, digest, layers, layerBytes: total };
}

/** Byte-counting TCP proxies in a child process: one listener per upstream port. */
class ProxyProcess {
  private child: ChildProcess;
  private pending: ((m: Record<string, number>) => void)[] = [];
  ports: Record<string, number> = {};
  private readonly ready: Promise<Record<string, number>>;

  constructor(upstreams: number[]) {
    const code = `
      const net = require("net");
      const counts = {}; const ports = {}; let ready = 0;
      for (const up of ${JSON.stringify(upstreams)}) {
        counts[up] = 0;
        const srv = net.createServer((c) => {
          const u = net.connect(up, "127.0.0.1");
          c.on("data", (d) => { counts[up] += d.length; });
          // pipe() ends each side after the other ends, once its data is flushed; only errors tear down both.
          c.pipe(u); u.pipe(c);
          const kill = () => { c.destroy(); u.destroy(); };
          c.on("error", kill); u.on("error", kill);
        });
        srv.listen(0, "127.0.0.1", () => { ports[up] = srv.address().port; if (++ready === ${upstreams.length}) process.send({ ports }); });
      }
      process.on("message", (m) => { if (m === "read") process.send({ counts: { ...counts } }); if (m === "exit") process.exit(0); });
    `;
    this.child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    // Registered before any message can arrive: the first one is the listening ports.
    this.ready = this.ask();
    this.child.on("message", (m: { ports?: Record<string, number>; counts?: Record<string, number> }) => {
      const next = this.pending.shift();
      next?.(m.ports ?? m.counts ?? {});
    });
  }

  private ask(msg?: string): Promise<Record<string, number>> {
    return new Promise((resolve) => {
      this.pending.push(resolve);
      if (msg) this.child.send(msg);
    });
  }
  async start(): Promise<void> {
    this.ports = await this.ready;
  }
  async counts(): Promise<Record<string, number>> {
    return this.ask("read");
  }
  stop(): void {
    this.child.send("exit");
  }
  host(upstream: number): string {
    return `127.0.0.1:${this.ports[upstream]}`;
  }
}

interface Measurement {
  round: number;
  name: string;
  tool: "promote" | "skopeo";
  path: "same-registry" | "cross-registry";
  seconds: number;
  /** Bytes the client sent to the destination registry (proxy count: requests + bodies). */
  bytesSentToDest: number;
  /** Blob body bytes uploaded, as promote counts them (promote only). */
  blobBytesUploaded?: number;
}

function stacksDir(dir: string, testRegistry: string, prodRegistry: string, digest: string, prodDigest: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(REPO_ROOT, "stacks/environment.yaml"), path.join(dir, "environment.yaml"));
  for (const [stack, reg, d] of [["test", testRegistry, digest], ["prod", prodRegistry, prodDigest]] as const) {
    const text = fs.readFileSync(path.join(REPO_ROOT, `stacks/Pulumi.${stack}.yaml`), "utf8");
    fs.writeFileSync(
      path.join(dir, `Pulumi.${stack}.yaml`),
      text.replace(/^(\s*dockyard:registry:\s*).*$/m, `$1${reg}`).replace(new RegExp(`^(\\s*web:\\s*)${DIGEST_RE.source.slice(1, -1)}`, "m"), `$1${d}`),
    );
  }
  fs.writeFileSync(path.join(dir, "test.outputs.json"), JSON.stringify({ services: { web: { digest, image: "", replicas: 1, hosts: [] } } }));
}

function parseArgs(argv: string[]): { layers: number; layerMiB: number; rounds: number; concurrency?: number; json: boolean } {
  const out: { layers: number; layerMiB: number; rounds: number; concurrency?: number; json: boolean } = { layers: 12, layerMiB: 18, rounds: 2, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") out.json = true;
    else if (a === "--layers") out.layers = Number(argv[++i]);
    else if (a === "--layer-mib") out.layerMiB = Number(argv[++i]);
    else if (a === "--rounds") out.rounds = Number(argv[++i]);
    else if (a === "--concurrency") out.concurrency = Number(argv[++i]);
    else throw Object.assign(new Error(`unknown option ${a}; options: --layers N (default 12), --layer-mib N (default 18), --rounds N (default 2), --concurrency N (promote's default), --json`), { usage: true });
  }
  if (!Number.isInteger(out.layers) || out.layers < 1 || out.layers > 100) throw Object.assign(new Error("--layers must be 1-100"), { usage: true });
  if (!Number.isInteger(out.rounds) || out.rounds < 1 || out.rounds > 10) throw Object.assign(new Error("--rounds must be 1-10"), { usage: true });
  if (!Number.isInteger(out.layerMiB) || out.layerMiB < 1 || out.layerMiB > 1024) throw Object.assign(new Error("--layer-mib must be 1-1024"), { usage: true });
  return out;
}

async function registryUp(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/v2/`)).status === 200;
  } catch {
    return false;
  }
}

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const log = (l: string) => process.stderr.write(`${l}\n`);
  for (const p of [REGISTRY_A_PORT, REGISTRY_B_PORT]) {
    if (!(await registryUp(p))) {
      log(`registry 127.0.0.1:${p} is not running; start both with: bash test/infra/30-registries.sh`);
      return 1;
    }
  }
  try {
    execFileSync("skopeo", ["--version"], { stdio: "ignore" });
  } catch {
    log("skopeo is not installed; run: bash test/infra/30-registries.sh");
    return 1;
  }

  const work = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-bench-"));
  const direct = new RegistryClient(`127.0.0.1:${REGISTRY_A_PORT}`, { credentials: async () => undefined });
  const proxies = new ProxyProcess([REGISTRY_A_PORT, REGISTRY_B_PORT]);
  const results: Measurement[] = [];
  const images: BenchImage[] = [];
  try {
    await proxies.start();
    const A = proxies.host(REGISTRY_A_PORT);
    const B = proxies.host(REGISTRY_B_PORT);
    for (let round = 1; round <= args.rounds; round++) {
      // A new image each round: no tool may find its blobs anywhere it has written before.
      const id = `b${Date.now().toString(36)}r${round}`;
      const image = await buildImage(direct, `${id}/src/web`, args.layers, args.layerMiB, log);
      images.push(image);
      const src = `docker://${A}/${id}/src/web@${image.digest}`;
      const measure = async (name: string, tool: Measurement["tool"], p: Measurement["path"], destPort: number, fn: () => Promise<number | undefined>) => {
        // Flush the previous run's writes so its disk writeback does not land on this one.
        execFileSync("sync");
        const before = (await proxies.counts())[destPort];
        const t0 = performance.now();
        const blobBytes = await fn();
        const seconds = (performance.now() - t0) / 1000;
        const after = (await proxies.counts())[destPort];
        const m: Measurement = { round, name, tool, path: p, seconds, bytesSentToDest: after - before, ...(blobBytes !== undefined ? { blobBytesUploaded: blobBytes } : {}) };
        results.push(m);
        log(`round ${round}: ${name}: ${seconds.toFixed(3)} s, ${formatBytes(m.bytesSentToDest)} sent to the destination registry`);
      };
      const skopeo = (dest: string) => async () => {
        execFileSync("skopeo", ["copy", "--all", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", src, dest], { stdio: ["ignore", "ignore", "inherit"] });
        return undefined;
      };
      const promoteTo = (testReg: string, prodReg: string, dir: string) => async () => {
        // Writing the temp stack files is inside the timed region: a few KiB, and honest.
        stacksDir(dir, testReg, prodReg, image.digest, `sha256:${"0".repeat(64)}`);
        const r = await promote({ from: "test", to: "prod", services: ["web"], stacksDir: dir, sourceOutputs: path.join(dir, "test.outputs.json"), concurrency: args.concurrency, client: { credentials: async () => undefined } });
        if (r.ledger.length !== 1) throw new Error("promote wrote no ledger line");
        return r.stats.bytesUploaded;
      };
      const runs = {
        skopeoSame: () => measure("skopeo copy --all, same registry", "skopeo", "same-registry", REGISTRY_A_PORT, skopeo(`docker://${A}/${id}/skopeo-same/web:bench`)),
        promoteSame: () => measure("dockyard promote, same registry (mount)", "promote", "same-registry", REGISTRY_A_PORT, promoteTo(`${A}/${id}/src`, `${A}/${id}/prod-same`, path.join(work, `${id}-same`))),
        skopeoCross: () => measure("skopeo copy --all, cross registry", "skopeo", "cross-registry", REGISTRY_B_PORT, skopeo(`docker://${B}/${id}/skopeo-cross/web:bench`)),
        promoteCross: () => measure("dockyard promote, cross registry (stream)", "promote", "cross-registry", REGISTRY_B_PORT, promoteTo(`${A}/${id}/src`, `${B}/${id}/prod-cross`, path.join(work, `${id}-cross`))),
      };
      // Alternate which tool goes first, so neither always meets a warmer (or busier) registry.
      const order = round % 2 === 1 ? ["skopeoSame", "promoteSame", "skopeoCross", "promoteCross"] : ["promoteSame", "skopeoSame", "promoteCross", "skopeoCross"];
      for (const k of order) await runs[k as keyof typeof runs]();

      // Every copy must have the same digest in its destination.
      for (const [host, repo] of [[REGISTRY_A_PORT, `${id}/skopeo-same/web`], [REGISTRY_A_PORT, `${id}/prod-same/web`], [REGISTRY_B_PORT, `${id}/skopeo-cross/web`], [REGISTRY_B_PORT, `${id}/prod-cross/web`]] as const) {
        const c = new RegistryClient(`127.0.0.1:${host}`, { credentials: async () => undefined });
        const h = await c.headManifest(repo, image.digest);
        c.close();
        if (h?.digest !== image.digest) throw new Error(`127.0.0.1:${host}/${repo} does not have ${image.digest} after the copy`);
      }
    }

    // Ratios of total times over all rounds.
    const total = (tool: string, p: string) => results.filter((r) => r.tool === tool && r.path === p).reduce((a, r) => a + r.seconds, 0);
    const sameRatio = total("promote", "same-registry") / total("skopeo", "same-registry");
    const crossRatio = total("promote", "cross-registry") / total("skopeo", "cross-registry");
    const sameBlobBytes = results.filter((r) => r.tool === "promote" && r.path === "same-registry").reduce((a, r) => a + (r.blobBytesUploaded ?? 0), 0);
    const targets = [
      { target: "same-registry promote <= 0.1x skopeo time", value: `${sameRatio.toFixed(3)}x`, met: sameRatio <= 0.1 },
      { target: "same-registry promote uploads 0 layer bytes", value: `${sameBlobBytes} B`, met: sameBlobBytes === 0 },
      { target: "cross-registry promote <= 1.0x skopeo time", value: `${crossRatio.toFixed(3)}x`, met: crossRatio <= 1.0 },
    ];
    const image = images[0];
    const report = { image: { layers: image.layers, bytes: image.layerBytes }, rounds: args.rounds, results, targets, machine: { cpus: os.cpus().length, load: os.loadavg(), node: process.version } };
    if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      const lines = [`image: ${image.layers} layers, ${formatBytes(image.layerBytes)} (random data, gzip; a new one each round); ${args.rounds} round(s); load average ${os.loadavg()[0].toFixed(1)}`, ""];
      const head = ["ROUND", "RUN", "WALL TIME", "SENT TO DEST", "LAYER BYTES UPLOADED"];
      const rows = results.map((r) => [String(r.round), r.name, `${r.seconds.toFixed(3)} s`, formatBytes(r.bytesSentToDest), r.blobBytesUploaded !== undefined ? formatBytes(r.blobBytesUploaded) : "-"]);
      const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      for (const r of [head, ...rows]) lines.push(r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd());
      lines.push("");
      for (const t of targets) lines.push(`${t.met ? "MET   " : "MISSED"}  ${t.target}: ${t.value}`);
      process.stdout.write(lines.join("\n") + "\n");
    }
    return targets.every((t) => t.met) ? 0 : 1;
  } finally {
    direct.close();
    proxies.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
