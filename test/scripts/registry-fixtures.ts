/**
 * Fixtures for the promote/rollback tests: the two loopback registries started by
 * test/infra/30-registries.sh, images built with the real dockerd (FROM scratch + files)
 * and pushed there, multi-platform indexes assembled from them, temp stack directories,
 * and a loopback TCP proxy that counts bytes and can cut connections (a registry going
 * down mid-copy). Registry checks here use plain fetch, not the client under test.
 */
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { PROXY_REPOSITORY, proxyRepository } from "../../stacks";

export const REGISTRY_A = "127.0.0.1:5001";
export const REGISTRY_B = "127.0.0.1:5002";
const REPO_ROOT = path.resolve(__dirname, "../..");

export const ACCEPT =
  "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, " +
  "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

export async function registryUp(host: string): Promise<boolean> {
  try {
    return (await fetch(`http://${host}/v2/`)).status === 200;
  } catch {
    return false;
  }
}

export async function assertRegistriesUp(): Promise<void> {
  for (const r of [REGISTRY_A, REGISTRY_B]) {
    if (!(await registryUp(r))) throw new Error(`registry ${r} is not running; start it with: bash test/infra/30-registries.sh`);
  }
}

/** A fresh namespace per test run, so runs never see each other's repositories. */
export function uniqueNamespace(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${crypto.randomBytes(3).toString("hex")}`;
}

export interface BuiltImage {
  /** Repository `host/path` without tag. */
  repository: string;
  digest: string;
}

/**
 * Builds FROM scratch with one COPY layer per file (real dockerd, legacy builder, no
 * network) and pushes it; returns the pushed manifest digest.
 */
export function buildAndPush(repository: string, tag: string, files: Record<string, string | Buffer>, platform = "linux/amd64"): BuiltImage {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-img-"));
  try {
    const lines = ["FROM scratch"];
    for (const [name, content] of Object.entries(files)) {
      fs.writeFileSync(path.join(dir, name), content);
      lines.push(`COPY ${name} /${name}`);
    }
    fs.writeFileSync(path.join(dir, "Dockerfile"), lines.join("\n") + "\n");
    const ref = `${repository}:${tag}`;
    const env = { ...process.env, DOCKER_BUILDKIT: "0" };
    execFileSync("docker", ["build", "-q", "--platform", platform, "-t", ref, dir], { env, stdio: ["ignore", "pipe", "pipe"] });
    const out = execFileSync("docker", ["push", ref], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const m = /digest: (sha256:[a-f0-9]{64})/.exec(out);
    if (!m) throw new Error(`docker push ${ref}: no digest in output:\n${out}`);
    execFileSync("docker", ["rmi", ref], { stdio: "ignore" });
    return { repository, digest: m[1] };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function getManifestRaw(repository: string, ref: string): Promise<{ status: number; bytes: Buffer; contentType: string; digest?: string }> {
  const [host, ...rest] = repository.split("/");
  const res = await fetch(`http://${host}/v2/${rest.join("/")}/manifests/${ref}`, { headers: { Accept: ACCEPT } });
  return {
    status: res.status,
    bytes: Buffer.from(await res.arrayBuffer()),
    contentType: res.headers.get("content-type") ?? "",
    digest: res.headers.get("docker-content-digest") ?? undefined,
  };
}

export async function blobStatus(repository: string, digest: string): Promise<number> {
  const [host, ...rest] = repository.split("/");
  return (await fetch(`http://${host}/v2/${rest.join("/")}/blobs/${digest}`, { method: "HEAD" })).status;
}

/** Assembles and pushes an OCI index over the given (already pushed) platform manifests. */
export async function pushIndex(repository: string, tag: string, children: { digest: string; platform: { os: string; architecture: string } }[]): Promise<string> {
  const manifests = [];
  for (const c of children) {
    const m = await getManifestRaw(repository, c.digest);
    if (m.status !== 200) throw new Error(`child ${c.digest} not in ${repository}`);
    manifests.push({ mediaType: m.contentType, digest: c.digest, size: m.bytes.length, platform: c.platform });
  }
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }, null, 3));
  const [host, ...rest] = repository.split("/");
  const res = await fetch(`http://${host}/v2/${rest.join("/")}/manifests/${tag}`, {
    method: "PUT",
    headers: { "Content-Type": "application/vnd.oci.image.index.v1+json" },
    body,
  });
  if (res.status !== 201) throw new Error(`PUT index: HTTP ${res.status} ${await res.text()}`);
  return `sha256:${crypto.createHash("sha256").update(body).digest("hex")}`;
}

/** Every manifest and blob digest of an image (index children included), read with plain fetch. */
export async function imageTree(repository: string, digest: string): Promise<{ manifests: string[]; blobs: string[] }> {
  const m = await getManifestRaw(repository, digest);
  if (m.status !== 200) throw new Error(`${repository}@${digest}: HTTP ${m.status}`);
  const doc = JSON.parse(m.bytes.toString("utf8"));
  if (doc.manifests) {
    const out = { manifests: [digest], blobs: [] as string[] };
    for (const c of doc.manifests) {
      const sub = await imageTree(repository, c.digest);
      out.manifests.push(...sub.manifests);
      out.blobs.push(...sub.blobs);
    }
    return out;
  }
  return { manifests: [digest], blobs: [doc.config.digest, ...doc.layers.map((l: { digest: string }) => l.digest)] };
}

export interface StacksDir {
  dir: string;
  file(stack: string): string;
  ledger: string;
  /** Writes --source-outputs JSON saying `stack` runs these digests (the proxy's, under "haproxy", as the `proxyImage` output). */
  outputs(stack: string, digests: Record<string, string>): string;
}

/**
 * A temp copy of stacks/ (environment.yaml + test/prod stack files) with the registries
 * and digests replaced (the proxy's too, when given); comments and layout otherwise as shipped.
 */
export function makeStacksDir(opts: Record<"test" | "prod", { registry: string; web: string; proxy?: string }>): StacksDir {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-stacks-"));
  fs.copyFileSync(path.join(REPO_ROOT, "stacks/environment.yaml"), path.join(dir, "environment.yaml"));
  for (const stack of ["test", "prod"] as const) {
    const text = fs.readFileSync(path.join(REPO_ROOT, `stacks/Pulumi.${stack}.yaml`), "utf8");
    const out = text
      .replace(/^(\s*dockyard:registry:\s*).*$/m, `$1${opts[stack].registry}`)
      .replace(/^(\s*web:\s*)sha256:[a-f0-9]{64}.*$/m, `$1${opts[stack].web}   # pinned by digest; promote rewrites only this value`)
      .replace(/^(\s*dockyard:proxyImage:\s*)sha256:[a-f0-9]{64}.*$/m, (line, key: string) => (opts[stack].proxy ? `${key}${opts[stack].proxy}   # the proxy, by digest` : line));
    fs.writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), out);
  }
  return {
    dir,
    file: (stack) => path.join(dir, `Pulumi.${stack}.yaml`),
    ledger: path.join(dir, "promotions.jsonl"),
    outputs: (stack, digests) => {
      const f = path.join(dir, `${stack}.outputs.json`);
      const { [PROXY_REPOSITORY]: proxy, ...rest } = digests;
      const services = Object.fromEntries(Object.entries(rest).map(([s, d]) => [s, { digest: d, image: `x@${d}`, replicas: 1, hosts: ["h1"] }]));
      const proxyImage = proxy ? `${proxyRepository(opts[stack as "test" | "prod"].registry)}@${proxy}` : undefined;
      fs.writeFileSync(f, JSON.stringify({ services, proxyImage }, null, 2));
      return f;
    },
  };
}

/** A loopback TCP proxy to `upstream` that counts client->server bytes and can be cut. */
export class CountingProxy {
  bytesUp = 0;
  private server: net.Server;
  private sockets = new Set<net.Socket>();
  port = 0;
  /** Cut every connection (and stop listening) once this many bytes went upstream. */
  cutAfter?: number;
  /** Reset only the connection that crosses cutAfter, then go on (a transient failure). */
  transient = false;
  cuts = 0;

  constructor(private readonly upstreamPort: number) {
    this.server = net.createServer((client) => {
      const up = net.connect(this.upstreamPort, "127.0.0.1");
      this.sockets.add(client).add(up);
      client.on("data", (d: Buffer) => {
        this.bytesUp += d.length;
        if (this.cutAfter !== undefined && this.bytesUp > this.cutAfter) {
          this.cutAfter = undefined;
          this.cuts++;
          if (this.transient) {
            client.resetAndDestroy();
            up.destroy();
          } else this.stop();
          return;
        }
        up.write(d);
      });
      up.pipe(client);
      // Each side is ended (after flushing) when the other ends; only errors tear down both.
      client.on("end", () => up.end());
      const kill = () => {
        client.destroy();
        up.destroy();
      };
      client.on("error", kill);
      up.on("error", kill);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The registry goes away: listener closed, every connection reset. */
  stop(): void {
    this.server.close();
    for (const s of this.sockets) s.resetAndDestroy();
  }
}

export function randomBytes(n: number): Buffer {
  return crypto.randomBytes(n);
}
