/**
 * A small client for the OCI distribution API (the registry HTTP API v2), enough to copy
 * an image by digest between repositories and registries without changing one byte:
 * manifests (OCI index, Docker manifest list, OCI / Docker image manifests) are fetched
 * and pushed as the exact bytes with their exact content type, blobs are cross-repository
 * mounted inside a registry and streamed between registries.
 *
 * No npm library does mount + index push well, so this speaks the API directly over
 * node:http(s). Plain http is used only for loopback registries (127.0.0.0/8, localhost,
 * [::1]); every other registry is https.
 *
 * Auth: ECR hosts get a token from ECR's GetAuthorizationToken (@aws-sdk/client-ecr);
 * other registries get the standard Bearer token flow from the WWW-Authenticate
 * challenge, or Basic, with credentials from the Docker config file (~/.docker/config.json).
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { DIGEST_RE, parseEcrHost, pinTag } from "../../stacks";

export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
} as const;

/** Every manifest type we copy; sent as Accept so the registry never converts a manifest. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(", ");


export function isIndexMediaType(mt: string): boolean {
  return mt === MEDIA_TYPES.ociIndex || mt === MEDIA_TYPES.dockerManifestList;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${crypto.createHash("sha256").update(bytes).digest("hex")}`;
}

/** A repository reference `<registry host>[:port]/<path>` split into its parts. */
export interface RepositoryRef {
  /** Registry host with optional port, e.g. `127.0.0.1:5001` or `1234.dkr.ecr.eu-west-1.amazonaws.com`. */
  registry: string;
  /** Repository path inside the registry, e.g. `dockyard-prod/web`. */
  repository: string;
}

/** Splits `host[:port]/path` (no tag, no digest). Throws on anything else. */
export function parseRepository(ref: string): RepositoryRef {
  const m = /^([a-z0-9.-]+(?::[0-9]+)?|\[[0-9a-f:]+\](?::[0-9]+)?)\/([a-z0-9]+(?:(?:[._-]|__|[-]*)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._-]|__|[-]*)[a-z0-9]+)*)*)$/.exec(ref);
  if (!m) throw new Error(`not a repository reference '<registry host>[:port]/<path>' (no tag or digest): ${JSON.stringify(ref)}`);
  return { registry: m[1], repository: m[2] };
}

/** True for hosts that are this machine: the only ones spoken to over plain http. */
export function isLoopbackHost(registry: string): boolean {
  const host = registry.startsWith("[") ? registry.slice(1, registry.indexOf("]")) : registry.replace(/:[0-9]+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Parses a `WWW-Authenticate` header: scheme and its parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return { scheme: "", params: {} };
  const params: Record<string, string> = {};
  const re = /(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2])) !== null) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
  return { scheme: m[1].toLowerCase(), params };
}

/** username/password for a registry. */
export interface Credentials {
  username: string;
  password: string;
}

/** Returns credentials for a registry host; undefined when anonymous. */
export type CredentialSource = (registry: string) => Promise<Credentials | undefined>;

/**
 * Credentials from the Docker config file ($DOCKER_CONFIG/config.json or
 * ~/.docker/config.json), `auths.<host>.auth` entries only (credential helpers are not run).
 */
export function dockerConfigCredentials(file = path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), ".docker"), "config.json")): CredentialSource {
  return async (registry) => {
    let cfg: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
    try {
      cfg = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch {
      return undefined;
    }
    const entry = cfg.auths?.[registry] ?? cfg.auths?.[`https://${registry}`];
    if (!entry) return undefined;
    if (entry.auth) {
      const dec = Buffer.from(entry.auth, "base64").toString("utf8");
      const i = dec.indexOf(":");
      if (i > 0) return { username: dec.slice(0, i), password: dec.slice(i + 1) };
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    return undefined;
  };
}

/** The part of ECRClient we use, so tests can pass a fake. */
export interface EcrTokenClient {
  send(command: unknown): Promise<{ authorizationData?: { authorizationToken?: string; expiresAt?: Date }[] }>;
}

/**
 * Credentials for ECR hosts from GetAuthorizationToken (the caller's AWS credentials and
 * the region in the host name); other hosts fall through to `fallback`.
 */
export function ecrCredentials(fallback: CredentialSource, makeClient?: (region: string) => EcrTokenClient): CredentialSource {
  const cache = new Map<string, { creds: Credentials; expires: number }>();
  return async (registry) => {
    const ecr = parseEcrHost(registry);
    if (!ecr) return fallback(registry);
    const hit = cache.get(registry);
    if (hit && hit.expires > Date.now() + 60_000) return hit.creds;
    // Loaded lazily: most runs never talk to ECR.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sdk = require("@aws-sdk/client-ecr") as typeof import("@aws-sdk/client-ecr");
    const client = makeClient ? makeClient(ecr.region) : (new sdk.ECRClient({ region: ecr.region }) as unknown as EcrTokenClient);
    const out = await client.send(new sdk.GetAuthorizationTokenCommand({}));
    const data = out.authorizationData?.[0];
    if (!data?.authorizationToken) throw new Error(`ECR GetAuthorizationToken for ${registry} returned no token`);
    const dec = Buffer.from(data.authorizationToken, "base64").toString("utf8");
    const i = dec.indexOf(":");
    const creds = { username: dec.slice(0, i), password: dec.slice(i + 1) };
    cache.set(registry, { creds, expires: data.expiresAt ? data.expiresAt.getTime() : Date.now() + 3600_000 });
    return creds;
  };
}

/** Default credentials: ECR via the AWS SDK, everything else from the Docker config file. */
export function defaultCredentials(): CredentialSource {
  return ecrCredentials(dockerConfigCredentials());
}

/** An HTTP error from a registry, with its status and the registry's error body. */
export class RegistryError extends Error {
  constructor(
    message: string,
    public readonly status?: number,
    public readonly transient = false,
    /** Node's error code (ECONNREFUSED, ENOTFOUND...) when the failure was the connection, not an HTTP answer. */
    public readonly code?: string,
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

export interface RetryPolicy {
  /** Attempts per operation, the first included. Default 5. */
  attempts: number;
  /** First backoff in ms, doubled each retry (with jitter). Default 250. */
  baseDelayMs: number;
}

const TRANSIENT_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "ENOTFOUND", "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_SOCKET", "ERR_STREAM_PREMATURE_CLOSE"]);

/** Connection failures that mean nothing answered at that address: no HTTP exchange took place. */
const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN", "EADDRNOTAVAIL", "ETIMEDOUT"]);

/** True when `e` (as withRetry throws it) says the registry could not be reached at all, rather than answering with an error. */
export function isUnreachable(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return (e as { status?: number })?.status === undefined && code !== undefined && UNREACHABLE_CODES.has(code);
}

export function isTransient(e: unknown): boolean {
  if (e instanceof RegistryError) return e.transient;
  const code = (e as { code?: string })?.code;
  if (code && TRANSIENT_CODES.has(code)) return true;
  return /socket hang up|premature close|aborted/i.test((e as Error)?.message ?? "");
}

/** Runs `fn`, retrying transient failures (5xx, 429, connection resets/refusals) with exponential backoff. */
export async function withRetry<T>(what: string, policy: RetryPolicy, fn: (attempt: number) => Promise<T>, onRetry?: (msg: string) => void): Promise<T> {
  let last: unknown;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      last = e;
      if (!isTransient(e) || attempt === policy.attempts) break;
      const delay = policy.baseDelayMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
      onRetry?.(`${what}: ${(e as Error).message}; retry ${attempt}/${policy.attempts - 1} in ${Math.round(delay)}ms`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  const msg = (last as Error)?.message ?? String(last);
  if (last instanceof RegistryError) throw new RegistryError(`${what}: ${msg}`, last.status, last.transient, last.code);
  const code = (last as { code?: unknown })?.code;
  throw new RegistryError(`${what}: ${msg}${policy.attempts > 1 && isTransient(last) ? ` (gave up after ${policy.attempts} attempts)` : ""}`, undefined, isTransient(last), typeof code === "string" ? code : undefined);
}

/** Counts what a client sent and did, for progress and the benchmark. */
export interface TransferStats {
  /** Blob body bytes sent to registries (uploads); mounts send none. */
  bytesUploaded: number;
  blobsUploaded: number;
  blobsMounted: number;
  /** Blobs already present in the target repository (nothing sent). */
  blobsPresent: number;
  manifestsPut: number;
  /** Tags put on manifests already in the repository (pin tags). */
  tagsPut: number;
  requests: number;
}

export function emptyStats(): TransferStats {
  return { bytesUploaded: 0, blobsUploaded: 0, blobsMounted: 0, blobsPresent: 0, manifestsPut: 0, tagsPut: 0, requests: 0 };
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

/** How a blob body is sent: one PATCH with the whole stream (default, what docker push does), one PUT, or fixed-size PATCH chunks. */
export type UploadMode = "stream" | "monolithic" | "chunked";

export interface ClientOptions {
  credentials?: CredentialSource;
  retry?: Partial<RetryPolicy>;
  /** Blob upload style; default "stream". */
  uploadMode?: UploadMode;
  /** Chunk size for "chunked" uploads, bytes; default 16 MiB (ECR wants >= 5 MiB). */
  chunkSize?: number;
  /** Per-request idle timeout in ms; default 60 s. */
  timeoutMs?: number;
  /** Receives retry notices and other progress lines. */
  log?: (line: string) => void;
  stats?: TransferStats;
}

/** A manifest as stored: exact bytes, content type and digest. */
export interface Manifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
}

/** The blobs (config + layers) or child manifests a manifest refers to. */
export function manifestReferences(m: Manifest): { manifests: Descriptor[]; blobs: Descriptor[] } {
  const doc = JSON.parse(m.bytes.toString("utf8")) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[]; mediaType?: string };
  if (isIndexMediaType(m.mediaType)) return { manifests: doc.manifests ?? [], blobs: [] };
  const blobs = [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])];
  return { manifests: [], blobs };
}

/**
 * One client for one registry host. Connections are kept alive; tokens are cached per
 * scope. All methods take repository paths inside this registry.
 */
export class RegistryClient {
  readonly registry: string;
  readonly stats: TransferStats;
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly retry: RetryPolicy;
  private readonly credentials: CredentialSource;
  private readonly opts: ClientOptions;
  /** Authorization header per scope key; "" key for Basic (scope-independent). */
  private readonly auth = new Map<string, string>();
  private basicAuth: string | undefined;

  constructor(registry: string, opts: ClientOptions = {}) {
    this.registry = registry;
    this.opts = opts;
    const secure = !isLoopbackHost(registry);
    this.base = new URL(`${secure ? "https" : "http"}://${registry}`);
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 16 }) : new http.Agent({ keepAlive: true, maxSockets: 16 });
    this.retry = { attempts: opts.retry?.attempts ?? 5, baseDelayMs: opts.retry?.baseDelayMs ?? 250 };
    this.credentials = opts.credentials ?? defaultCredentials();
    this.stats = opts.stats ?? emptyStats();
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private log(line: string) {
    this.opts.log?.(line);
  }

  private send(method: string, url: URL, headers: Record<string, string>, body?: Buffer | Readable): Promise<RawResponse> {
    const mod = url.protocol === "https:" ? https : http;
    this.stats.requests++;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method, headers, agent: this.agent, timeout: this.opts.timeoutMs ?? 60_000 }, (res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.on("error", reject);
      req.on("timeout", () => req.destroy(Object.assign(new Error(`${method} ${url.pathname}: timed out`), { code: "ETIMEDOUT" })));
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        body.on("error", (e) => req.destroy(e));
        body.pipe(req);
      }
    });
  }

  private scopeKey(scopes: string[]): string {
    return [...scopes].sort().join(" ");
  }

  /** Answers a 401 challenge: gets a Bearer token for `scopes` or switches to Basic. */
  private async authenticate(challenge: string, scopes: string[]): Promise<void> {
    const { scheme, params } = parseChallenge(challenge);
    const creds = await this.credentials(this.registry);
    if (scheme === "basic") {
      if (!creds) throw new RegistryError(`registry ${this.registry} requires credentials (Basic auth); run \`docker login ${this.registry}\``, 401);
      this.basicAuth = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
      return;
    }
    if (scheme !== "bearer" || !params.realm) throw new RegistryError(`registry ${this.registry} asked for unsupported auth: ${challenge}`, 401);
    const realm = new URL(params.realm);
    if (realm.protocol !== "https:" && !isLoopbackHost(realm.host)) throw new RegistryError(`registry ${this.registry}: token realm ${realm.origin} is not https`, 401);
    if (params.service) realm.searchParams.set("service", params.service);
    for (const s of scopes) realm.searchParams.append("scope", s);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (creds) headers.Authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
    const res = await this.send("GET", realm, headers);
    const text = await readText(res.body);
    if (res.status !== 200) throw new RegistryError(`registry ${this.registry}: token request to ${realm.origin}${realm.pathname} failed: HTTP ${res.status} ${text.slice(0, 200)}`, res.status, res.status >= 500);
    const tok = JSON.parse(text) as { token?: string; access_token?: string };
    const token = tok.token ?? tok.access_token;
    if (!token) throw new RegistryError(`registry ${this.registry}: token response has no token`, res.status);
    this.auth.set(this.scopeKey(scopes), `Bearer ${token}`);
  }

  /**
   * One HTTP exchange with auth: sends, answers a 401 challenge once, sends again.
   * `body` is a factory so a streamed body can be recreated for the second send.
   */
  private async request(method: string, pathOrUrl: string, opts: { headers?: Record<string, string>; body?: () => Buffer | Readable; scopes: string[] }): Promise<RawResponse> {
    const url = new URL(pathOrUrl, this.base);
    for (let round = 0; round < 2; round++) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      const authz = this.auth.get(this.scopeKey(opts.scopes)) ?? this.basicAuth;
      if (authz && url.host === this.base.host) headers.Authorization = authz;
      const res = await this.send(method, url, headers, opts.body?.());
      if (res.status === 401 && round === 0 && res.headers["www-authenticate"]) {
        res.body.resume();
        await this.authenticate(String(res.headers["www-authenticate"]), opts.scopes);
        continue;
      }
      if (res.status >= 500 || res.status === 429) {
        const text = await readText(res.body).catch(() => "");
        throw new RegistryError(`${method} ${url.pathname}: HTTP ${res.status} ${text.slice(0, 200)}`, res.status, true);
      }
      return res;
    }
    throw new RegistryError(`${method} ${url.pathname}: still unauthorized after authenticating to ${this.registry}`, 401);
  }

  private async fail(res: RawResponse, what: string): Promise<never> {
    const text = await readText(res.body).catch(() => "");
    throw new RegistryError(`${what}: HTTP ${res.status} ${text.trim().slice(0, 300)}`, res.status, res.status >= 500);
  }

  private pull(repo: string) {
    return [`repository:${repo}:pull`];
  }
  private push(repo: string, from?: string) {
    return [`repository:${repo}:pull,push`, ...(from && from !== repo ? [`repository:${from}:pull`] : [])];
  }

  /** HEAD of a manifest by digest or tag; undefined if the registry does not have it. */
  async headManifest(repo: string, ref: string): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
    return withRetry(`HEAD ${this.registry}/${repo}@${ref}`, this.retry, async () => {
      const res = await this.request("HEAD", `/v2/${repo}/manifests/${ref}`, { headers: { Accept: MANIFEST_ACCEPT }, scopes: this.pull(repo) });
      res.body.resume();
      if (res.status === 404) return undefined;
      if (res.status !== 200) return this.fail(res, `HEAD manifest ${this.registry}/${repo}@${ref}`);
      return {
        digest: String(res.headers["docker-content-digest"] ?? ref),
        mediaType: String(res.headers["content-type"] ?? ""),
        size: Number(res.headers["content-length"] ?? 0),
      };
    }, (m) => this.log(m));
  }

  /** GET a manifest by digest: the exact bytes, checked against the digest. Undefined if absent. */
  async getManifest(repo: string, digest: string): Promise<Manifest | undefined> {
    return withRetry(`GET ${this.registry}/${repo}@${digest}`, this.retry, async () => {
      const res = await this.request("GET", `/v2/${repo}/manifests/${digest}`, { headers: { Accept: MANIFEST_ACCEPT }, scopes: this.pull(repo) });
      if (res.status === 404) {
        res.body.resume();
        return undefined;
      }
      if (res.status !== 200) return this.fail(res, `GET manifest ${this.registry}/${repo}@${digest}`);
      const bytes = await readBuffer(res.body);
      if (DIGEST_RE.test(digest) && sha256Digest(bytes) !== digest) {
        throw new RegistryError(`GET manifest ${this.registry}/${repo}@${digest}: content digest is ${sha256Digest(bytes)}, not the digest asked for`);
      }
      let mediaType = String(res.headers["content-type"] ?? "").split(";")[0].trim();
      if (!mediaType || mediaType === "application/json") mediaType = (JSON.parse(bytes.toString("utf8")) as { mediaType?: string }).mediaType ?? MEDIA_TYPES.ociManifest;
      return { digest: sha256Digest(bytes), mediaType, bytes };
    }, (m) => this.log(m));
  }

  /**
   * PUT a manifest's exact bytes and content type by digest, or under `tag` (a manifest
   * already in the repository: nothing else is sent), and checks the registry stored the
   * same digest.
   */
  async putManifest(repo: string, m: Manifest, tag?: string): Promise<void> {
    const where = tag === undefined ? `${this.registry}/${repo}@${m.digest}` : `${this.registry}/${repo}:${tag}`;
    await withRetry(`PUT ${where}`, this.retry, async () => {
      const res = await this.request("PUT", `/v2/${repo}/manifests/${tag === undefined ? m.digest : encodeURIComponent(tag)}`, {
        headers: { "Content-Type": m.mediaType, "Content-Length": String(m.bytes.length) },
        body: () => m.bytes,
        scopes: this.push(repo),
      });
      if (res.status !== 201 && res.status !== 200) return this.fail(res, `PUT manifest ${where}`);
      res.body.resume();
      const got = res.headers["docker-content-digest"];
      if (got && got !== m.digest) throw new RegistryError(`PUT manifest ${where}: registry stored digest ${got}, expected ${m.digest}`);
      if (tag === undefined) this.stats.manifestsPut++;
      else this.stats.tagsPut++;
    }, (msg) => this.log(msg));
  }

  /** True if the blob is in the repository. */
  async hasBlob(repo: string, digest: string): Promise<boolean> {
    return withRetry(`HEAD blob ${this.registry}/${repo}@${digest}`, this.retry, async () => {
      const res = await this.request("HEAD", `/v2/${repo}/blobs/${digest}`, { scopes: this.pull(repo) });
      res.body.resume();
      if (res.status === 200) return true;
      if (res.status === 404) return false;
      return this.fail(res, `HEAD blob ${this.registry}/${repo}@${digest}`);
    }, (m) => this.log(m));
  }

  /**
   * Cross-repository mount (no bytes sent). True if mounted; false if the registry
   * declined (it then opened an upload session, which is cancelled).
   */
  async mountBlob(repo: string, digest: string, fromRepo: string): Promise<boolean> {
    return withRetry(`mount ${digest} from ${fromRepo} into ${this.registry}/${repo}`, this.retry, async () => {
      const q = new URLSearchParams({ mount: digest, from: fromRepo });
      const res = await this.request("POST", `/v2/${repo}/blobs/uploads/?${q}`, { headers: { "Content-Length": "0" }, body: () => Buffer.alloc(0), scopes: this.push(repo, fromRepo) });
      res.body.resume();
      if (res.status === 201) {
        this.stats.blobsMounted++;
        return true;
      }
      if (res.status === 202) {
        const loc = res.headers.location;
        if (loc) await this.request("DELETE", String(loc), { scopes: this.push(repo) }).then((r) => r.body.resume()).catch(() => undefined);
        return false;
      }
      return this.fail(res, `mount blob ${digest} into ${this.registry}/${repo}`);
    }, (m) => this.log(m));
  }

  /** Opens a blob stream (GET, redirects followed); the caller must consume it. */
  async openBlob(repo: string, digest: string): Promise<{ size: number; stream: Readable }> {
    let res = await this.request("GET", `/v2/${repo}/blobs/${digest}`, { scopes: this.pull(repo) });
    for (let hops = 0; (res.status === 307 || res.status === 302 || res.status === 301) && hops < 3; hops++) {
      res.body.resume();
      // Redirects go to storage (S3 for ECR) with a signed URL: no registry auth there.
      const target = new URL(String(res.headers.location), this.base);
      res = await this.send("GET", target, {});
    }
    if (res.status !== 200) return this.fail(res, `GET blob ${this.registry}/${repo}@${digest}`);
    return { size: Number(res.headers["content-length"] ?? -1), stream: res.body };
  }

  /**
   * Uploads one blob whose bytes come from `open()` (called again on each retry).
   * `size` must be the blob's size; the registry checks the digest on commit.
   */
  async uploadBlob(repo: string, digest: string, size: number, open: () => Promise<Readable>, onBytes?: (n: number) => void): Promise<void> {
    await withRetry(`upload ${digest} to ${this.registry}/${repo}`, this.retry, async () => {
      const start = await this.request("POST", `/v2/${repo}/blobs/uploads/`, { headers: { "Content-Length": "0" }, body: () => Buffer.alloc(0), scopes: this.push(repo) });
      start.body.resume();
      if (start.status !== 202) return this.fail(start, `start upload to ${this.registry}/${repo}`);
      let location = String(start.headers.location ?? "");
      if (!location) throw new RegistryError(`start upload to ${this.registry}/${repo}: no Location header`);
      const source = await open();
      // Counted as they flow, without another stream stage in the path.
      const counted = (s: Readable) =>
        s.on("data", (c: Buffer) => {
          this.stats.bytesUploaded += c.length;
          onBytes?.(c.length);
        });
      const withDigest = (loc: string) => {
        const u = new URL(loc, this.base);
        u.searchParams.set("digest", digest);
        return u.toString();
      };
      const mode = this.opts.uploadMode ?? "stream";
      if (mode === "monolithic") {
        const body = counted(source);
        const res = await this.request("PUT", withDigest(location), {
          headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
          body: () => body,
          scopes: this.push(repo),
        });
        if (res.status !== 201) return this.fail(res, `PUT blob ${digest} to ${this.registry}/${repo}`);
        res.body.resume();
      } else if (mode === "stream") {
        const body = counted(source);
        const res = await this.request("PATCH", location, {
          headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
          body: () => body,
          scopes: this.push(repo),
        });
        if (res.status !== 202) return this.fail(res, `PATCH blob ${digest} to ${this.registry}/${repo}`);
        res.body.resume();
        location = String(res.headers.location ?? location);
        await this.commitUpload(repo, digest, withDigest(location));
      } else {
        const chunk = this.opts.chunkSize ?? 16 * 1024 * 1024;
        let offset = 0;
        for await (const part of chunks(source, chunk)) {
          const res = await this.request("PATCH", location, {
            headers: { "Content-Type": "application/octet-stream", "Content-Length": String(part.length), "Content-Range": `${offset}-${offset + part.length - 1}` },
            body: () => part,
            scopes: this.push(repo),
          });
          if (res.status !== 202) return this.fail(res, `PATCH chunk ${offset} of ${digest} to ${this.registry}/${repo}`);
          res.body.resume();
          location = String(res.headers.location ?? location);
          offset += part.length;
          this.stats.bytesUploaded += part.length;
          onBytes?.(part.length);
        }
        await this.commitUpload(repo, digest, withDigest(location));
      }
      this.stats.blobsUploaded++;
    }, (m) => this.log(m));
  }

  private async commitUpload(repo: string, digest: string, url: string): Promise<void> {
    const res = await this.request("PUT", url, { headers: { "Content-Length": "0" }, body: () => Buffer.alloc(0), scopes: this.push(repo) });
    if (res.status !== 201) return this.fail(res, `commit blob ${digest} to ${this.registry}/${repo}`);
    res.body.resume();
  }
}

/** Re-chunks a stream into buffers of exactly `size` bytes (the last may be shorter). */
async function* chunks(source: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const c of source as AsyncIterable<Buffer>) {
    let buf = c;
    while (have + buf.length >= size) {
      const take = size - have;
      parts.push(buf.subarray(0, take));
      yield Buffer.concat(parts);
      parts = [];
      have = 0;
      buf = buf.subarray(take);
    }
    if (buf.length > 0) {
      parts.push(buf);
      have += buf.length;
    }
  }
  if (have > 0) yield Buffer.concat(parts);
}

async function readBuffer(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

async function readText(s: Readable): Promise<string> {
  return (await readBuffer(s)).toString("utf8");
}

// ---------------------------------------------------------------------------------
// Copying an image by digest
// ---------------------------------------------------------------------------------

/** How an image reaches the target repository. */
export type CopyStrategy = "same-repository" | "mount" | "stream";

/** Which strategy applies between two repository references. */
export function copyStrategy(source: RepositoryRef, target: RepositoryRef): CopyStrategy {
  if (source.registry === target.registry && source.repository === target.repository) return "same-repository";
  if (source.registry === target.registry) return "mount";
  return "stream";
}

export interface CopyProgress {
  /** Called per blob when it is done. */
  blob?: (e: { digest: string; size: number; how: "present" | "mounted" | "uploaded"; done: number; total: number }) => void;
  /** Called with byte counts as a streamed blob is uploaded. */
  bytes?: (n: number) => void;
}

export interface CopyResult {
  strategy: CopyStrategy;
  digest: string;
  mediaType: string;
  /** Every manifest digest copied or verified (the index first, then its children). */
  manifests: string[];
  /** Every distinct blob digest the image refers to. */
  blobs: string[];
}

/** Runs `fn` over `items` with at most `limit` in flight; rejects on the first error after all in-flight work settles. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (e) {
        if (failed === undefined) failed = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
  return out;
}

/**
 * Copies the image `digest` from `source` to `target`, every child manifest and blob
 * included, preserving every manifest byte for byte. Blobs first, then child manifests,
 * then the index, so the target never has a manifest whose content is missing.
 * Throws RegistryError if the source does not have the digest.
 */
export async function copyImage(
  src: RegistryClient,
  source: RepositoryRef,
  dst: RegistryClient,
  target: RepositoryRef,
  digest: string,
  /** concurrency: blobs in flight; default 6 for uploads, 16 for mounts. */
  opts: { concurrency?: number; progress?: CopyProgress } = {},
): Promise<CopyResult> {
  const strategy = copyStrategy(source, target);
  const top = await src.getManifest(source.repository, digest);
  if (!top) throw new RegistryError(`image ${source.registry}/${source.repository}@${digest} not found in the source registry (unknown digest)`, 404);
  // Collect the manifest tree: index -> children (one level; nested indexes are followed too).
  const manifests: Manifest[] = [];
  const walk = async (m: Manifest, depth: number) => {
    const refs = manifestReferences(m);
    for (const child of refs.manifests) {
      if (depth > 3) throw new RegistryError(`manifest ${m.digest}: index nesting too deep`);
      const cm = await src.getManifest(source.repository, child.digest);
      if (!cm) throw new RegistryError(`index ${m.digest} refers to ${child.digest}, which is not in ${source.registry}/${source.repository}`, 404);
      await walk(cm, depth + 1);
    }
    manifests.push(m); // children before parents
  };
  await walk(top, 0);
  const blobMap = new Map<string, Descriptor>();
  for (const m of manifests) for (const b of manifestReferences(m).blobs) blobMap.set(b.digest, b);
  const blobs = [...blobMap.values()];
  const ordered = [...manifests].reverse().map((m) => m.digest);
  if (strategy === "same-repository") return { strategy, digest, mediaType: top.mediaType, manifests: ordered, blobs: blobs.map((b) => b.digest) };

  let done = 0;
  // Mounts are cheap requests: more of them in flight. A mount of a blob the target
  // already links also answers 201, so mounting skips the HEAD an upload needs.
  // 6 uploads in flight, as skopeo/containers-image does; on a 2-core machine more only adds contention.
  const limit = opts.concurrency ?? (strategy === "mount" ? 16 : 6);
  // Largest first, so one big layer does not start last and run alone.
  const queue = [...blobs].sort((x, y) => y.size - x.size);
  await mapLimit(queue, limit, async (b) => {
    let how: "present" | "mounted" | "uploaded";
    if (strategy === "mount" && (await dst.mountBlob(target.repository, b.digest, source.repository))) {
      how = "mounted";
    } else if (await dst.hasBlob(target.repository, b.digest)) {
      how = "present";
      dst.stats.blobsPresent++;
    } else {
      await dst.uploadBlob(target.repository, b.digest, b.size, async () => {
        const { size, stream } = await src.openBlob(source.repository, b.digest);
        if (size >= 0 && size !== b.size) {
          stream.destroy();
          throw new RegistryError(`blob ${b.digest}: source has ${size} bytes, manifest says ${b.size}`);
        }
        return stream;
      }, opts.progress?.bytes);
      how = "uploaded";
    }
    done++;
    opts.progress?.blob?.({ digest: b.digest, size: b.size, how, done, total: blobs.length });
  });
  for (const m of manifests) {
    const have = await dst.headManifest(target.repository, m.digest);
    if (!have) await dst.putManifest(target.repository, m);
  }
  return { strategy, digest, mediaType: top.mediaType, manifests: ordered, blobs: blobs.map((b) => b.digest) };
}

/**
 * Verifies that the target has the image: HEAD of the manifest by digest (and of each
 * child manifest of an index). Returns the problems found; empty when complete.
 */
export async function verifyImage(dst: RegistryClient, target: RepositoryRef, digest: string, children: string[] = []): Promise<string[]> {
  const problems: string[] = [];
  for (const d of [digest, ...children.filter((c) => c !== digest)]) {
    const h = await dst.headManifest(target.repository, d);
    if (!h) problems.push(`${target.registry}/${target.repository}@${d}: manifest not found`);
    else if (h.digest !== d) problems.push(`${target.registry}/${target.repository}@${d}: registry answers digest ${h.digest}`);
  }
  return problems;
}

/** What ensureTag found or did; "missing" only when asked to check, not tag. */
export type TagOutcome = "present" | "tagged" | "missing";

/**
 * Makes `tag` name `digest` in the target repository: nothing if it already does; else
 * PUTs the manifest's own bytes (read from the repository by digest) under the tag and
 * reads the tag back. A tag that names ANOTHER digest is an error, never overwritten.
 * With immutable tags (ECR) a concurrent run may win the PUT: the read-back decides.
 * With `check`, nothing is written: an absent tag is "missing".
 */
export async function ensureTag(dst: RegistryClient, target: RepositoryRef, digest: string, tag: string, opts: { manifest?: Manifest; check?: boolean } = {}): Promise<TagOutcome> {
  const where = `${target.registry}/${target.repository}:${tag}`;
  const names = async (): Promise<string | undefined> => (await dst.headManifest(target.repository, tag))?.digest;
  const now = await names();
  if (now === digest) return "present";
  if (now !== undefined) throw new RegistryError(`${where} names ${now}, not ${digest}; delete that tag by hand (it is immutable by design)`);
  if (opts.check) return "missing";
  const m = opts.manifest ?? (await dst.getManifest(target.repository, digest));
  if (!m) throw new RegistryError(`cannot tag ${target.registry}/${target.repository}@${digest}: the image is not in the repository`, 404);
  try {
    await dst.putManifest(target.repository, m, tag);
  } catch (e) {
    // ECR answers 400 (tag already exists, immutable) if another run tagged it first.
    if ((await names()) === digest) return "present";
    throw e;
  }
  const after = await names();
  if (after !== digest) throw new RegistryError(`${where}: after the PUT the tag names ${after ?? "nothing"}, not ${digest}`);
  return "tagged";
}

/** What pinImage found or did for the image (top manifest) and its child manifests. */
export interface PinOutcome {
  tag: string;
  outcome: TagOutcome;
  /** Child manifests of an index, each pinned with its own tag. */
  children: { digest: string; tag: string; outcome: TagOutcome }[];
}

/**
 * Puts the pin tag `pinTag(d)` on the image `digest` and, for an index, on every child
 * manifest first: a lifecycle rule on untagged images must not see an untagged child of
 * a pinned index either. The parent's tag goes on last, so a present parent tag means
 * the children were pinned too (they are still checked, a HEAD each). With `check`,
 * nothing is written and absent tags are reported "missing".
 */
export async function pinImage(dst: RegistryClient, target: RepositoryRef, digest: string, opts: { check?: boolean } = {}, depth = 0): Promise<PinOutcome> {
  const m = await dst.getManifest(target.repository, digest);
  if (!m) throw new RegistryError(`cannot pin ${target.registry}/${target.repository}@${digest}: the image is not in the repository`, 404);
  const children: PinOutcome["children"] = [];
  for (const c of manifestReferences(m).manifests) {
    if (depth > 3) throw new RegistryError(`manifest ${digest}: index nesting too deep`);
    const p = await pinImage(dst, target, c.digest, opts, depth + 1);
    children.push({ digest: c.digest, tag: p.tag, outcome: p.outcome }, ...p.children);
  }
  const tag = pinTag(digest);
  return { tag, outcome: await ensureTag(dst, target, digest, tag, { manifest: m, check: opts.check }), children };
}
