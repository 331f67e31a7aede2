import * as crypto from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  copyStrategy,
  dockerConfigCredentials,
  ecrCredentials,
  ensureTag,
  isLoopbackHost,
  isTransient,
  isUnreachable,
  mapLimit,
  parseChallenge,
  parseRepository,
  RegistryClient,
  RegistryError,
  withRetry,
} from "../../scripts/lib/oci";
import { parseEcrHost } from "../../stacks";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const DIGEST = `sha256:${"d".repeat(64)}`;

describe("references and hosts", () => {
  it("splits repository references and rejects tags/digests", () => {
    expect(parseRepository("127.0.0.1:5001/dockyard-test/web")).toEqual({ registry: "127.0.0.1:5001", repository: "dockyard-test/web" });
    expect(parseRepository("123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-prod/web")).toEqual({
      registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
      repository: "dockyard-prod/web",
    });
    expect(() => parseRepository("127.0.0.1:5001/web:latest")).toThrow(/not a repository reference/);
    expect(() => parseRepository(`127.0.0.1:5001/web@${DIGEST}`)).toThrow(/not a repository reference/);
    expect(() => parseRepository("web")).toThrow(/not a repository reference/);
  });

  it("plain http only for loopback", () => {
    for (const h of ["127.0.0.1:5001", "127.8.9.10", "localhost:5000", "[::1]:5000"]) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ["10.0.0.1:5000", "registry.example.com", "128.0.0.1", "localhost.example.com"]) expect(isLoopbackHost(h), h).toBe(false);
  });

  it("recognises ECR hosts", () => {
    expect(parseEcrHost("123456789012.dkr.ecr.eu-west-1.amazonaws.com")).toEqual({ host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", accountId: "123456789012", region: "eu-west-1", fips: false });
    // The same grammar as the hosts' credential helper (stacks/ecr): FIPS and China endpoints are ECR too.
    expect(parseEcrHost("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com")).toMatchObject({ region: "us-east-1", fips: true });
    expect(parseEcrHost("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")).toMatchObject({ region: "cn-north-1", fips: false });
    expect(parseEcrHost("127.0.0.1:5001")).toBeUndefined();
  });

  it("chooses the copy strategy from registry and repository", () => {
    const r = (s: string) => parseRepository(s);
    expect(copyStrategy(r("h:1/a/web"), r("h:1/a/web"))).toBe("same-repository");
    expect(copyStrategy(r("h:1/a/web"), r("h:1/b/web"))).toBe("mount");
    expect(copyStrategy(r("h:1/a/web"), r("h:2/a/web"))).toBe("stream");
  });

  it("parses WWW-Authenticate challenges", () => {
    expect(parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"')).toEqual({
      scheme: "bearer",
      params: { realm: "https://auth.example.com/token", service: "registry.example.com", scope: "repository:a/b:pull,push" },
    });
    expect(parseChallenge('Basic realm="https://x.dkr.ecr.eu-west-1.amazonaws.com/",service="ecr.amazonaws.com"').scheme).toBe("basic");
  });
});

describe("credentials", () => {
  it("ECR: GetAuthorizationToken per region, decoded and cached; other hosts fall through", async () => {
    const regions: string[] = [];
    const commands: string[] = [];
    const creds = ecrCredentials(
      async (h) => (h === "other.example.com" ? { username: "u", password: "p" } : undefined),
      (region) => {
        regions.push(region);
        return {
          send: async (cmd: unknown) => {
            commands.push((cmd as object).constructor.name);
            return { authorizationData: [{ authorizationToken: Buffer.from("AWS:ecr-password").toString("base64"), expiresAt: new Date(Date.now() + 3600_000) }] };
          },
        };
      },
    );
    const host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    expect(await creds(host)).toEqual({ username: "AWS", password: "ecr-password" });
    expect(await creds(host)).toEqual({ username: "AWS", password: "ecr-password" });
    expect(regions).toEqual(["eu-west-1"]);
    expect(commands).toEqual(["GetAuthorizationTokenCommand"]);
    expect(await creds("other.example.com")).toEqual({ username: "u", password: "p" });
    // A FIPS-endpoint registry gets its token from the region's ECR API as well.
    expect(await creds("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com")).toEqual({ username: "AWS", password: "ecr-password" });
    expect(regions).toEqual(["eu-west-1", "us-east-1"]);
  });

  it("reads auths from a Docker config file", async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-dcfg-"));
    try {
      const f = path.join(d, "config.json");
      fs.writeFileSync(f, JSON.stringify({ auths: { "reg.example.com": { auth: Buffer.from("alice:s3cret:x").toString("base64") } } }));
      const src = dockerConfigCredentials(f);
      expect(await src("reg.example.com")).toEqual({ username: "alice", password: "s3cret:x" });
      expect(await src("nope.example.com")).toBeUndefined();
      expect(await dockerConfigCredentials(path.join(d, "missing.json"))("reg.example.com")).toBeUndefined();
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});

describe("retries", () => {
  it("retries transient failures with backoff and gives up after the attempts", async () => {
    let n = 0;
    const notes: string[] = [];
    const v = await withRetry("op", { attempts: 4, baseDelayMs: 1 }, async () => {
      if (++n < 3) throw Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
      return 42;
    }, (m) => notes.push(m));
    expect(v).toBe(42);
    expect(n).toBe(3);
    expect(notes).toHaveLength(2);
    n = 0;
    await expect(withRetry("op", { attempts: 3, baseDelayMs: 1 }, async () => {
      n++;
      throw new RegistryError("HTTP 503", 503, true);
    })).rejects.toThrow(/op: HTTP 503/);
    expect(n).toBe(3);
    n = 0;
    await expect(withRetry("op", { attempts: 3, baseDelayMs: 1 }, async () => {
      n++;
      throw new RegistryError("HTTP 404", 404, false);
    })).rejects.toThrow(/HTTP 404/);
    expect(n).toBe(1);
    expect(isTransient(Object.assign(new Error("x"), { code: "ECONNREFUSED" }))).toBe(true);
    expect(isTransient(new Error("bad json"))).toBe(false);
  });

  it("keeps the connection error's code, so a registry nothing answers at is told apart from one answering with an error", async () => {
    const fail = (e: Error) => withRetry("GET r/x", { attempts: 2, baseDelayMs: 1 }, async () => {
      throw e;
    }).catch((x: unknown) => x);
    const refused = await fail(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" }));
    expect(refused).toMatchObject({ code: "ECONNREFUSED", status: undefined, message: "GET r/x: connect ECONNREFUSED 127.0.0.1:9 (gave up after 2 attempts)" });
    expect(isUnreachable(refused)).toBe(true);
    expect(isUnreachable(await fail(Object.assign(new Error("getaddrinfo ENOTFOUND reg.invalid"), { code: "ENOTFOUND" })))).toBe(true);
    expect(isUnreachable(await fail(new RegistryError("HTTP 503", 503, true)))).toBe(false); // it answered
    expect(isUnreachable(await fail(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })))).toBe(false); // connected, then cut
    expect(isUnreachable(await fail(new Error("bad json")))).toBe(false);
  });

  it("mapLimit keeps at most `limit` in flight and reports the first error", async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapLimit([1, 2, 3, 4, 5, 6], 2, async (x) => {
      peak = Math.max(peak, ++inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return x * 2;
    });
    expect(out).toEqual([2, 4, 6, 8, 10, 12]);
    expect(peak).toBe(2);
    await expect(mapLimit([1, 2, 3], 2, async (x) => {
      if (x === 2) throw new Error("boom");
      return x;
    })).rejects.toThrow("boom");
  });
});

/** A fake registry on loopback that demands auth, to exercise the client's auth flows. */
const servers: http.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});
async function fakeRegistry(handler: (req: http.IncomingMessage, res: http.ServerResponse, base: string) => void): Promise<string> {
  let base = "";
  const s = http.createServer((req, res) => handler(req, res, base));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  base = `127.0.0.1:${(s.address() as AddressInfo).port}`;
  return base;
}

describe("auth flows against a fake registry", () => {
  it("Bearer: follows the challenge to the token realm with Basic credentials and the scope, then retries with the token", async () => {
    const tokenRequests: { auth?: string; scope: string[]; service: string | null }[] = [];
    const host = await fakeRegistry((req, res, base) => {
      const url = new URL(req.url ?? "/", `http://${base}`);
      if (url.pathname === "/token") {
        tokenRequests.push({ auth: req.headers.authorization, scope: url.searchParams.getAll("scope"), service: url.searchParams.get("service") });
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ token: "tok-123" }));
        return;
      }
      if (req.headers.authorization !== "Bearer tok-123") {
        res.statusCode = 401;
        res.setHeader("WWW-Authenticate", `Bearer realm="http://${base}/token",service="fake-registry",scope="repository:team/web:pull"`);
        res.end();
        return;
      }
      res.setHeader("Docker-Content-Digest", DIGEST);
      res.setHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json");
      res.end();
    });
    const c = new RegistryClient(host, { credentials: async () => ({ username: "bob", password: "pw" }) });
    try {
      expect(await c.headManifest("team/web", DIGEST)).toMatchObject({ digest: DIGEST });
      expect(await c.headManifest("team/web", DIGEST)).toMatchObject({ digest: DIGEST }); // token cached
      expect(tokenRequests).toEqual([{ auth: `Basic ${Buffer.from("bob:pw").toString("base64")}`, scope: ["repository:team/web:pull"], service: "fake-registry" }]);
    } finally {
      c.close();
    }
  });

  it("Basic: sends credentials after the challenge; without credentials says to log in", async () => {
    const host = await fakeRegistry((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from("AWS:pw").toString("base64")}`) {
        res.statusCode = 401;
        res.setHeader("WWW-Authenticate", 'Basic realm="fake"');
        res.end();
        return;
      }
      res.statusCode = 404;
      res.end();
    });
    const ok = new RegistryClient(host, { credentials: async () => ({ username: "AWS", password: "pw" }) });
    const anon = new RegistryClient(host, { credentials: async () => undefined });
    try {
      expect(await ok.hasBlob("web", DIGEST)).toBe(false);
      await expect(anon.hasBlob("web", DIGEST)).rejects.toThrow(/requires credentials.*docker login/);
    } finally {
      ok.close();
      anon.close();
    }
  });

  it("retries a 503 and then succeeds; a manifest whose bytes do not match the digest is rejected", async () => {
    let calls = 0;
    const host = await fakeRegistry((_req, res) => {
      if (++calls < 3) {
        res.statusCode = 503;
        res.end("busy");
        return;
      }
      res.setHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json");
      res.end('{"schemaVersion":2}');
    });
    const c = new RegistryClient(host, { credentials: async () => undefined, retry: { attempts: 4, baseDelayMs: 1 } });
    try {
      await expect(c.getManifest("web", DIGEST)).rejects.toThrow(/content digest is sha256:[a-f0-9]{64}, not the digest asked for/);
      expect(calls).toBe(3);
    } finally {
      c.close();
    }
  });
});

describe("ensureTag against a fake registry with immutable tags (as ECR)", () => {
  const body = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}');
  const digest = `sha256:${crypto.createHash("sha256").update(body).digest("hex")}`;
  const TAG = "pin-tag";

  /** Serves `body` by digest; tags are immutable: a PUT on an existing tag is 400 TAG_INVALID, as ECR answers. */
  async function immutableRegistry(opts: { tags?: Record<string, string>; onPut?: (tags: Record<string, string>) => void }) {
    const tags: Record<string, string> = { ...opts.tags };
    const puts: string[] = [];
    const host = await fakeRegistry((req, res) => {
      const ref = decodeURIComponent((req.url ?? "").split("/manifests/")[1] ?? "");
      if (req.method === "PUT") {
        req.resume();
        puts.push(ref);
        opts.onPut?.(tags);
        if (tags[ref] !== undefined) {
          res.statusCode = 400;
          res.end(JSON.stringify({ errors: [{ code: "TAG_INVALID", message: `The image tag '${ref}' already exists in the 'web' repository and cannot be overwritten because the repository is immutable.` }] }));
          return;
        }
        tags[ref] = digest;
        res.statusCode = 201;
        res.setHeader("Docker-Content-Digest", digest);
        res.end();
        return;
      }
      const d = ref.startsWith("sha256:") ? (ref === digest ? digest : undefined) : tags[ref];
      if (d === undefined) {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader("Docker-Content-Digest", d);
      res.setHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json");
      res.end(req.method === "HEAD" ? undefined : body);
    });
    return { host, tags, puts };
  }

  it("tags once, then finds the tag present and PUTs nothing", async () => {
    const r = await immutableRegistry({});
    const c = new RegistryClient(r.host, { credentials: async () => undefined, retry: { attempts: 1 } });
    try {
      expect(await ensureTag(c, { registry: r.host, repository: "web" }, digest, TAG)).toBe("tagged");
      expect(r.tags[TAG]).toBe(digest);
      expect(await ensureTag(c, { registry: r.host, repository: "web" }, digest, TAG)).toBe("present");
      expect(r.puts).toEqual([TAG]);
      expect(c.stats.tagsPut).toBe(1);
    } finally {
      c.close();
    }
  });

  it("a concurrent run that tagged first (PUT refused as immutable) counts as present", async () => {
    const r = await immutableRegistry({ onPut: (tags) => (tags[TAG] = digest) }); // the other run wins just before our PUT
    const c = new RegistryClient(r.host, { credentials: async () => undefined, retry: { attempts: 1 } });
    try {
      expect(await ensureTag(c, { registry: r.host, repository: "web" }, digest, TAG)).toBe("present");
      expect(c.stats.tagsPut).toBe(0);
    } finally {
      c.close();
    }
  });

  it("a tag naming another digest is an error and is not overwritten; an absent image cannot be tagged", async () => {
    const other = `sha256:${"e".repeat(64)}`;
    const r = await immutableRegistry({ tags: { [TAG]: other } });
    const c = new RegistryClient(r.host, { credentials: async () => undefined, retry: { attempts: 1 } });
    try {
      await expect(ensureTag(c, { registry: r.host, repository: "web" }, digest, TAG)).rejects.toThrow(new RegExp(`web:${TAG} names ${other}, not ${digest}`));
      await expect(ensureTag(c, { registry: r.host, repository: "web" }, DIGEST, "pin-other")).rejects.toThrow(/not in the repository/);
      expect(r.puts).toEqual([]);
    } finally {
      c.close();
    }
  });
});
