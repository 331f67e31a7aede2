/**
 * pin / pin --check when a registry cannot be reached (issue 15): nothing listens at the
 * prod stack's registry address, while the test stack's registry (a fake one on loopback)
 * answers and lacks the pin tags. Needs no registry started by test/infra.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatPinResult, pin, pinExitCode, type PinResult } from "../../scripts/pin";
import { cli } from "./cli";
import { makeStacksDir, type StacksDir } from "./registry-fixtures";

/** A port on loopback that nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const manifest = (name: string) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: {}, layers: [], annotations: { name } }));
const WEB = manifest("web");
const PROXY = manifest("haproxy");
const digestOf = (b: Buffer) => `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`;

let server: http.Server;
let reachable: string; // the test stack's registry: has both images, no pin tags
let down: string; // the prod stack's registry: nothing listens there
let s: StacksDir;
const FAST = { retry: { attempts: 2, baseDelayMs: 1 }, credentials: async () => undefined };

beforeAll(async () => {
  const byDigest = new Map([WEB, PROXY].map((b) => [digestOf(b), b]));
  server = http.createServer((req, res) => {
    const m = /^\/v2\/.+\/manifests\/(.+)$/.exec(req.url ?? "");
    const body = m ? byDigest.get(decodeURIComponent(m[1])) : undefined;
    if (!body) {
      res.statusCode = 404; // every pin-sha256-<hex> tag is missing
      res.end();
      return;
    }
    res.setHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    res.setHeader("Docker-Content-Digest", digestOf(body));
    res.end(req.method === "HEAD" ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  reachable = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  down = `127.0.0.1:${await freePort()}`;
  s = makeStacksDir({ test: { registry: `${reachable}/t`, web: digestOf(WEB), proxy: digestOf(PROXY) }, prod: { registry: `${down}/p`, web: digestOf(WEB), proxy: digestOf(PROXY) } });
});

afterAll(() => {
  server?.close();
  if (s) fs.rmSync(s.dir, { recursive: true, force: true });
});

describe("pin --check with a registry that cannot be reached", () => {
  it("reports the registry as unreachable with its error, apart from digests really missing their tag, and exits 1", async () => {
    const r = await pin({ stacksDir: s.dir, check: true, client: FAST });
    expect(r.items.map((i) => [i.stacks, i.services, i.outcome])).toEqual([
      [["prod"], ["web"], "unreachable"],
      [["prod"], ["haproxy"], "unreachable"],
      [["test"], ["web"], "missing"],
      [["test"], ["haproxy"], "missing"],
    ]);
    expect(r.unreachable).toEqual([{ registry: down, items: 2, error: expect.stringMatching(new RegExp(`ECONNREFUSED ${down}`)) }]);
    expect(pinExitCode(r)).toBe(1);
    const text = formatPinResult(r);
    const lines = text.split("\n");
    expect(lines.filter((l) => l.startsWith("prod ")).every((l) => /UNKNOWN \(registry unreachable\)$/.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith("test ")).every((l) => /NOT TAGGED$/.test(l))).toBe(true);
    const summary = lines.slice(5);
    expect(summary).toHaveLength(2);
    expect(summary[0]).toMatch(new RegExp(`^registry ${down} could not be reached \\(.*ECONNREFUSED ${down}.*\\): 2 pinned digest\\(s\\) there not checked; check the registry address`));
    expect(summary[0]).not.toMatch(/dockyard -- pin/); // tagging cannot help a registry nobody answers at
    expect(summary[1]).toBe("2 pinned digest(s) without their pin tag: the lifecycle policy may expire them; run `npm run dockyard -- pin`");
  });

  it("pin (not --check) says the same: unreachable, not failed to tag", async () => {
    const r = await pin({ stacksDir: s.dir, stacks: ["prod"], client: FAST });
    expect(r.items.map((i) => i.outcome)).toEqual(["unreachable", "unreachable"]);
    expect(r.stats.requests).toBe(2); // one request per attempt for the first image; the second is not tried
    expect(formatPinResult(r).split("\n").at(-1)).toMatch(new RegExp(`^registry ${down} could not be reached .*: 2 pinned digest\\(s\\) there not tagged;`));
    expect(pinExitCode(r)).toBe(1);
  });

  it("the CLI: exit 1, the registry and its error named, no advice to run pin; --json says so too", async () => {
    const [text, json] = await Promise.all([
      cli(["pin", "prod", "--stacks-dir", s.dir, "--check"]),
      cli(["pin", "prod", "--stacks-dir", s.dir, "--check", "--json"]),
    ]);
    expect(text.code, text.stderr).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`registry ${down} could not be reached \\(.*ECONNREFUSED ${down}`));
    expect(text.stdout).not.toMatch(/without their pin tag|dockyard -- pin/);
    expect(json.code, json.stderr).toBe(1);
    const r = JSON.parse(json.stdout) as PinResult;
    expect(r.unreachable).toEqual([{ registry: down, items: 2, error: expect.stringMatching(/ECONNREFUSED/) }]);
    expect(r.items.map((i) => i.outcome)).toEqual(["unreachable", "unreachable"]);
  }, 60_000);
});
