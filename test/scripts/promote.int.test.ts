/**
 * promote and rollback against two real registries on loopback (Debian docker-registry,
 * started by test/infra/30-registries.sh) with images built by the real dockerd.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLedger } from "../../scripts/lib/ledger";
import { DockyardError, promote } from "../../scripts/promote";
import { rollback } from "../../scripts/rollback";
import {
  assertRegistriesUp,
  blobStatus,
  buildAndPush,
  CountingProxy,
  getManifestRaw,
  imageTree,
  makeStacksDir,
  pushIndex,
  randomBytes,
  REGISTRY_A,
  REGISTRY_B,
  uniqueNamespace,
  type StacksDir,
} from "./registry-fixtures";

const REPO_ROOT = path.resolve(__dirname, "../..");
const ABSENT = `sha256:${"0".repeat(63)}1`;
const FAST_RETRY = { retry: { attempts: 3, baseDelayMs: 50 } };

const ns = uniqueNamespace("t");
const srcRepo = `${REGISTRY_A}/${ns}src/web`;
let single: string; // single-platform image with a 1 MiB random layer
let older: string; // an older single-platform image (what prod ran before)
let index: string; // OCI index over an amd64 and an arm64 image
let big: string; // 4 MiB random layer, for the mid-copy failures
const dirs: StacksDir[] = [];

function stacks(opts: Parameters<typeof makeStacksDir>[0]): StacksDir {
  const d = makeStacksDir(opts);
  dirs.push(d);
  return d;
}

/** Asserts the target stack file differs from `before` only in the web digest value, comments intact. */
function expectOnlyDigestChanged(before: string, after: string, oldDigest: string, newDigest: string) {
  const b = before.split("\n");
  const a = after.split("\n");
  expect(a.length).toBe(b.length);
  const changed = b.map((l, i) => [l, a[i]] as const).filter(([x, y]) => x !== y);
  expect(changed).toHaveLength(1);
  expect(changed[0][0]).toContain(oldDigest);
  expect(changed[0][1]).toBe(changed[0][0].replace(oldDigest, newDigest));
  expect(changed[0][1]).toContain("# pinned by digest; promote rewrites only this value");
  expect(after).toContain("# prod: customer traffic.");
}

async function expectImageComplete(repository: string, digest: string, sourceRepository: string) {
  const want = await imageTree(sourceRepository, digest);
  const got = await getManifestRaw(repository, digest);
  expect(got.status).toBe(200);
  expect(got.digest).toBe(digest);
  const src = await getManifestRaw(sourceRepository, digest);
  expect(got.bytes.equals(src.bytes)).toBe(true); // byte for byte
  expect(got.contentType).toBe(src.contentType);
  for (const m of want.manifests) expect((await getManifestRaw(repository, m)).status, `manifest ${m}`).toBe(200);
  for (const b of want.blobs) expect(await blobStatus(repository, b), `blob ${b}`).toBe(200);
  return want;
}

beforeAll(async () => {
  await assertRegistriesUp();
  single = buildAndPush(srcRepo, "single", { "app.bin": randomBytes(1 << 20), "version.txt": `single ${ns}\n` }).digest;
  older = buildAndPush(srcRepo, "older", { "version.txt": `older ${ns}\n` }).digest;
  const amd = buildAndPush(srcRepo, "amd64", { "app.bin": randomBytes(256 << 10), "arch.txt": "amd64\n" }, "linux/amd64").digest;
  const arm = buildAndPush(srcRepo, "arm64", { "app.bin": randomBytes(256 << 10), "arch.txt": "arm64\n" }, "linux/arm64").digest;
  index = await pushIndex(srcRepo, "multi", [
    { digest: amd, platform: { os: "linux", architecture: "amd64" } },
    { digest: arm, platform: { os: "linux", architecture: "arm64" } },
  ]);
  big = buildAndPush(srcRepo, "big", { "a.bin": randomBytes(4 << 20), "b.bin": randomBytes(4 << 20) }).digest;
  // prod already runs `older` in each target repository used below.
  for (const target of [`${REGISTRY_B}/${ns}prod/web`, `${REGISTRY_A}/${ns}prod/web`]) {
    execFileSync("skopeo", ["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", `docker://${srcRepo}@${older}`, `docker://${target}:older`], { stdio: "pipe" });
  }
}, 300_000);

afterAll(() => {
  for (const d of dirs) fs.rmSync(d.dir, { recursive: true, force: true });
});

describe("promote", () => {
  it("cross-registry: copies a multi-platform index whole, digest preserved, then rewrites only the digest line and writes the ledger", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: index }, prod: { registry: `${REGISTRY_B}/${ns}prod`, web: older } });
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const lines: string[] = [];
    const r = await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: index }), log: (l) => lines.push(l) });
    expect(r.items[0].strategy).toBe("stream");
    const tree = await expectImageComplete(`${REGISTRY_B}/${ns}prod/web`, index, srcRepo);
    expect(tree.manifests).toHaveLength(3);
    expect(r.stats.blobsUploaded).toBe(new Set(tree.blobs).size);
    expect(r.stats.bytesUploaded).toBeGreaterThan(512 << 10);
    expect(r.stats.manifestsPut).toBe(3);
    expect(lines.some((l) => /blob \d+\/\d+ uploaded/.test(l))).toBe(true);
    expectOnlyDigestChanged(before, fs.readFileSync(s.file("prod"), "utf8"), older, index);
    const ledger = readLedger(s.ledger);
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ action: "promote", from: "test", to: "prod", service: "web", oldDigest: older, newDigest: index, repository: `${REGISTRY_B}/${ns}prod/web` });
    expect(Date.parse(ledger[0].time)).toBeGreaterThan(Date.now() - 120_000);
    expect(ledger[0].actor.length).toBeGreaterThan(0);
  });

  it("cross-repository in the same registry: mounts every blob, uploads no blob bytes (counted on the wire)", async () => {
    const proxy = await new CountingProxy(5001).start();
    try {
      const host = proxy.host; // both stacks name the same registry host, through the counter
      const s = stacks({ test: { registry: `${host}/${ns}src`, web: index }, prod: { registry: `${host}/${ns}prod`, web: older } });
      const blobBytes = 2 * (256 << 10);
      const r = await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: index }) });
      expect(r.items[0].strategy).toBe("mount");
      expect(r.stats.bytesUploaded).toBe(0);
      expect(r.stats.blobsUploaded).toBe(0);
      expect(r.stats.blobsMounted).toBe(new Set(r.items[0].blobs).size);
      expect(proxy.bytesUp).toBeLessThan(blobBytes / 4); // requests + 3 small manifests only
      await expectImageComplete(`${REGISTRY_A}/${ns}prod/web`, index, srcRepo);
      expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${index}   # pinned by digest`);
      expect(readLedger(s.ledger)).toHaveLength(1);
    } finally {
      proxy.stop();
    }
  });

  it("same repository: nothing is copied, only the stack file and ledger change", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_A}/${ns}src`, web: older } });
    const r = await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }) });
    expect(r.items[0].strategy).toBe("same-repository");
    expect(r.stats).toMatchObject({ bytesUploaded: 0, blobsUploaded: 0, blobsMounted: 0, manifestsPut: 0 });
    expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${single}`);
    expect(readLedger(s.ledger)[0].newDigest).toBe(single);
  });

  it("--dry-run prints the plan and changes nothing", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}dry`, web: older } });
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const r = await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }), dryRun: true });
    expect(r.items[0]).toMatchObject({ strategy: "stream", digest: single, oldDigest: older });
    expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(before);
    expect(fs.existsSync(s.ledger)).toBe(false);
    expect((await getManifestRaw(`${REGISTRY_B}/${ns}dry/web`, single)).status).toBe(404);
  });

  it("retries a connection reset mid-upload and completes", async () => {
    const proxy = await new CountingProxy(5002).start();
    try {
      proxy.cutAfter = 2 << 20;
      proxy.transient = true;
      const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: big }, prod: { registry: `${proxy.host}/${ns}retry`, web: older } });
      await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: big }), client: FAST_RETRY });
      expect(proxy.cuts).toBe(1);
      await expectImageComplete(`${REGISTRY_B}/${ns}retry/web`, big, srcRepo);
      expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${big}`);
    } finally {
      proxy.stop();
    }
  });
});

describe("promote failures leave the target stack file untouched", () => {
  async function expectRefused(s: StacksDir, p: Promise<unknown>, code: 1 | 2, message: RegExp) {
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DockyardError);
    expect((err as DockyardError).exitCode).toBe(code);
    expect((err as Error).message).toMatch(message);
    expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(before);
    expect(fs.existsSync(s.ledger)).toBe(false);
    expect(fs.readdirSync(s.dir).filter((f) => f.endsWith(".tmp") || f.endsWith(".probe") || f.endsWith(".lock"))).toEqual([]);
  }

  it("target registry goes down mid-copy", async () => {
    const proxy = await new CountingProxy(5002).start();
    proxy.cutAfter = 3 << 20; // after 3 MiB of an 8 MiB image
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: big }, prod: { registry: `${proxy.host}/${ns}down`, web: older } });
    const before = fs.readFileSync(s.file("prod"), "utf8");
    await expectRefused(s, promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: big }), client: FAST_RETRY }), 1, /copying web .* failed;.*was not changed/s);
    expect(proxy.cuts).toBe(1);
    expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(before);
    expect((await getManifestRaw(`${REGISTRY_B}/${ns}down/web`, big)).status).toBe(404);
  });

  it("unknown digest (not in the source registry)", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: ABSENT }, prod: { registry: `${REGISTRY_B}/${ns}prod`, web: older } });
    await expectRefused(s, promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: ABSENT }), client: FAST_RETRY }), 1, /not found in the source registry \(unknown digest\)/);
  });

  it("digest not deployed in the source stack", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}prod`, web: older } });
    await expectRefused(s, promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: older }) }), 1, new RegExp(`stack test pins ${single} but has not deployed it \\(its last deployment runs ${older}`));
  });

  it("target stack file immutable (chattr +i, which binds root too): refused before copying", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}immut`, web: older } });
    execFileSync("chattr", ["+i", s.file("prod")]);
    try {
      await expectRefused(s, promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }) }), 1, /cannot write .*Pulumi\.prod\.yaml.*nothing was copied/);
      expect((await getManifestRaw(`${REGISTRY_B}/${ns}immut/web`, single)).status).toBe(404);
    } finally {
      execFileSync("chattr", ["-i", s.file("prod")]);
    }
  });

  it("write fails at the rename (injected): original intact, temp file removed, no ledger line", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}inject`, web: older } });
    let tmpSeen = "";
    await expectRefused(
      s,
      promote({
        from: "test",
        to: "prod",
        stacksDir: s.dir,
        sourceOutputs: s.outputs("test", { web: single }),
        writeHooks: {
          beforeRename: (tmp) => {
            tmpSeen = tmp;
            throw Object.assign(new Error("EIO: i/o error, rename"), { code: "EIO" });
          },
        },
      }),
      1,
      /cannot write .*EIO.*left unchanged/,
    );
    expect(tmpSeen).not.toBe("");
    expect(fs.existsSync(tmpSeen)).toBe(false);
  });
});

describe("rollback", () => {
  it("puts back what the stack ran before (from the ledger), verified, atomically; then toggles forward again", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}prod`, web: older } });
    await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }) });
    const promoted = fs.readFileSync(s.file("prod"), "utf8");
    const r = await rollback({ stack: "prod", stacksDir: s.dir });
    expect(r.items).toHaveLength(1);
    expectOnlyDigestChanged(promoted, fs.readFileSync(s.file("prod"), "utf8"), single, older);
    expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${older}   # pinned by digest`);
    const ledger = readLedger(s.ledger);
    expect(ledger.map((e) => e.action)).toEqual(["promote", "rollback"]);
    expect(ledger[1]).toMatchObject({ from: "prod", to: "prod", oldDigest: single, newDigest: older });
    await rollback({ stack: "prod", stacksDir: s.dir });
    expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(promoted);
  });

  it("--to DIGEST puts back an explicit digest; an absent one is refused and nothing changes", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_A}/${ns}src`, web: single } });
    await rollback({ stack: "prod", stacksDir: s.dir, services: ["web"], to: older });
    expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${older}`);
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const err = await rollback({ stack: "prod", stacksDir: s.dir, to: ABSENT, client: FAST_RETRY }).catch((e) => e);
    expect(err).toBeInstanceOf(DockyardError);
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/is not in the repository/);
    expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(before);
    expect(readLedger(s.ledger)).toHaveLength(1);
  });

  it("refuses when the ledger does not know the previous digest", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_A}/${ns}src`, web: single } });
    const err = await rollback({ stack: "prod", stacksDir: s.dir, services: ["web"] }).catch((e) => e);
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/has no entry that moved stack prod to .*pass --to DIGEST/);
  });
});

describe("CLI", () => {
  const tsx = path.join(REPO_ROOT, "node_modules/.bin/tsx");
  const run = (script: string, args: string[]) => spawnSync(tsx, [path.join(REPO_ROOT, "scripts", script), ...args], { encoding: "utf8", cwd: REPO_ROOT, timeout: 60_000 });

  it("promote --dry-run --json prints the plan on stdout, exit 0; bad usage exits 2; refusal exits 1", () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}cli`, web: older } });
    const out = s.outputs("test", { web: single });
    const ok = run("promote.ts", ["--from", "test", "--to", "prod", "--stacks-dir", s.dir, "--source-outputs", out, "--dry-run", "--json"]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ dryRun: true, items: [{ service: "web", digest: single, strategy: "stream" }] });
    const bad = run("promote.ts", ["--from", "test", "--to", "prod", "--stacks-dir", s.dir, "--source-outputs", out, "--service", "nope"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--service nope: stack test .*has no such service; services: web/);
    const missing = run("promote.ts", ["--to", "prod"]);
    expect(missing.status).toBe(2);
    const refused = run("promote.ts", ["--from", "test", "--to", "prod", "--stacks-dir", s.dir, "--source-outputs", s.outputs("test", { web: older })]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/has not deployed it/);
    const viaCli = run("dockyard.ts", ["promote", "--from", "test", "--to", "prod", "--stacks-dir", s.dir, "--source-outputs", s.outputs("test", { web: single }), "--dry-run"]);
    expect(viaCli.status, viaCli.stderr).toBe(0);
    expect(viaCli.stdout).toMatch(/promote test -> prod \(dry run: nothing copied or written\)/);
    expect(viaCli.stdout).toMatch(new RegExp(`web .* copy from ${REGISTRY_A}/${ns}src/web`));
    const rb = run("rollback.ts", ["prod", "--stacks-dir", s.dir, "--to", "latest"]);
    expect(rb.status).toBe(2);
    expect(rb.stderr).toMatch(/--to latest: must be an image digest/);
  }, 120_000);
});
