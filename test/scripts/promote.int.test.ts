/**
 * promote and rollback against two real registries on loopback (Debian docker-registry,
 * started by test/infra/30-registries.sh) with images built by the real dockerd.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLedger } from "../../scripts/lib/ledger";
import { pin, pinExitCode } from "../../scripts/pin";
import { DockyardError } from "../../scripts/lib/cli";
import { promote } from "../../scripts/promote";
import { pinTag, PROXY_REPOSITORY } from "../../stacks";
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
const srcProxy = `${REGISTRY_A}/${ns}src/${PROXY_REPOSITORY}`;
let proxy: string; // the proxy image test runs (a stand-in for HAProxy)
let proxyOld: string; // the proxy image prod ran before
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

/** The pin tag of `digest` resolves, in `repository`, to exactly that manifest. */
async function expectPinned(repository: string, digest: string) {
  const byTag = await getManifestRaw(repository, pinTag(digest));
  expect(byTag.status, `${repository}:${pinTag(digest)}`).toBe(200);
  expect(byTag.digest).toBe(digest);
  expect(byTag.bytes.equals((await getManifestRaw(repository, digest)).bytes)).toBe(true);
}

/** Copies an image by skopeo under a plain tag (as a CI push would): no pin tag. */
function skopeoCopy(from: string, to: string) {
  execFileSync("skopeo", ["copy", "--all", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", `docker://${from}`, `docker://${to}`], { stdio: "pipe" });
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
  proxy = buildAndPush(srcProxy, "new", { "haproxy.cfg": `new ${ns}\n`, "haproxy.bin": randomBytes(64 << 10) }).digest;
  proxyOld = buildAndPush(srcProxy, "old", { "haproxy.cfg": `old ${ns}\n` }).digest;
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
    const r = await promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: index }), log: (l) => lines.push(l) });
    expect(r.items[0].strategy).toBe("stream");
    const tree = await expectImageComplete(`${REGISTRY_B}/${ns}prod/web`, index, srcRepo);
    expect(tree.manifests).toHaveLength(3);
    expect(r.stats.blobsUploaded).toBe(new Set(tree.blobs).size);
    expect(r.stats.bytesUploaded).toBeGreaterThan(512 << 10);
    expect(r.stats.manifestsPut).toBe(3);
    expect(lines.some((l) => /blob \d+\/\d+ uploaded/.test(l))).toBe(true);
    // The pin tag protects the promoted index from the lifecycle policy.
    // So do its children's: a rule on untagged images must not see an untagged child of a pinned index.
    const children = tree.manifests.filter((m) => m !== index);
    expect(r.items[0].pin).toEqual({ tag: pinTag(index), outcome: "tagged", children: children.map((d) => ({ digest: d, tag: pinTag(d), outcome: "tagged" })) });
    expect(r.stats.tagsPut).toBe(3);
    for (const d of tree.manifests) await expectPinned(`${REGISTRY_B}/${ns}prod/web`, d);
    expect(lines).toContain(`[web] pin tag ${pinTag(index)}: added (and 2 child manifest(s): 2 added)`);
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
      const r = await promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: index }) });
      expect(r.items[0].strategy).toBe("mount");
      expect(r.stats.bytesUploaded).toBe(0);
      expect(r.stats.blobsUploaded).toBe(0);
      expect(r.stats.blobsMounted).toBe(new Set(r.items[0].blobs).size);
      expect(proxy.bytesUp).toBeLessThan(blobBytes / 4); // requests + 3 small manifests only
      await expectImageComplete(`${REGISTRY_A}/${ns}prod/web`, index, srcRepo);
      expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${index}   # pinned by digest`);
      await expectPinned(`${REGISTRY_A}/${ns}prod/web`, index);
      expect(readLedger(s.ledger)).toHaveLength(1);
    } finally {
      proxy.stop();
    }
  });

  it("same repository: nothing is copied, only the stack file and ledger change", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_A}/${ns}src`, web: older } });
    const r = await promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }) });
    expect(r.items[0].strategy).toBe("same-repository");
    expect(r.stats).toMatchObject({ bytesUploaded: 0, blobsUploaded: 0, blobsMounted: 0, manifestsPut: 0 });
    expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${single}`);
    // The same repository still needs the pin tag (test's stack file alone may not have tagged it).
    await expectPinned(srcRepo, single);
    // Promoting again: nothing to rewrite, the tag is already there, nothing is PUT.
    const again = await promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }) });
    expect(again.items[0]).toMatchObject({ unchanged: true, pin: { outcome: "present" } });
    expect(again.stats.tagsPut).toBe(0);
    expect(readLedger(s.ledger)).toHaveLength(1);
    expect(readLedger(s.ledger)[0].newDigest).toBe(single);
  });

  it("--dry-run prints the plan and changes nothing", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}dry`, web: older } });
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const r = await promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }), dryRun: true });
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
      await promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: big }), client: FAST_RETRY });
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
    await expectRefused(s, promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: big }), client: FAST_RETRY }), 1, /copying web .* failed;.*was not changed/s);
    expect(proxy.cuts).toBe(1);
    expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(before);
    expect((await getManifestRaw(`${REGISTRY_B}/${ns}down/web`, big)).status).toBe(404);
  });

  it("a pin tag that names another digest: the image is copied but the stack file is not changed, the tag not overwritten", async () => {
    const target = `${REGISTRY_B}/${ns}conflict/web`;
    skopeoCopy(`${srcRepo}@${older}`, `${target}:${pinTag(single)}`); // a tag that lies
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}conflict`, web: older } });
    await expectRefused(
      s,
      promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }), client: FAST_RETRY }),
      1,
      new RegExp(`could not put the pin tag.*was not changed.*:${pinTag(single)} names ${older}, not ${single}`, "s"),
    );
    expect((await getManifestRaw(target, pinTag(single))).digest).toBe(older);
  });

  it("unknown digest (not in the source registry)", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: ABSENT }, prod: { registry: `${REGISTRY_B}/${ns}prod`, web: older } });
    await expectRefused(s, promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: ABSENT }), client: FAST_RETRY }), 1, /not found in the source registry \(unknown digest\)/);
  });

  it("digest not deployed in the source stack", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}prod`, web: older } });
    await expectRefused(s, promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: older }) }), 1, new RegExp(`stack test pins ${single} but has not deployed it \\(its last deployment runs ${older}`));
  });

  it("target stack file immutable (chattr +i, which binds root too): refused before copying", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}immut`, web: older } });
    execFileSync("chattr", ["+i", s.file("prod")]);
    try {
      await expectRefused(s, promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }) }), 1, /cannot write .*Pulumi\.prod\.yaml.*nothing was copied/);
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
        services: ["web"],
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
    await promote({ from: "test", to: "prod", services: ["web"], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single }) });
    const promoted = fs.readFileSync(s.file("prod"), "utf8");
    const r = await rollback({ stack: "prod", stacksDir: s.dir });
    expect(r.items).toHaveLength(1);
    expectOnlyDigestChanged(promoted, fs.readFileSync(s.file("prod"), "utf8"), single, older);
    expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${older}   # pinned by digest`);
    const ledger = readLedger(s.ledger);
    expect(ledger.map((e) => e.action)).toEqual(["promote", "rollback"]);
    expect(ledger[1]).toMatchObject({ from: "prod", to: "prod", oldDigest: single, newDigest: older });
    // `older` reached prod's repository under a plain tag; the rollback pinned it.
    expect(r.items[0].pin?.tag).toBe(pinTag(older));
    await expectPinned(`${REGISTRY_B}/${ns}prod/web`, older);
    await rollback({ stack: "prod", stacksDir: s.dir });
    expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(promoted);
  });

  it("--to DIGEST puts back an explicit digest; an absent one is refused and nothing changes", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_A}/${ns}src`, web: single } });
    await rollback({ stack: "prod", stacksDir: s.dir, services: ["web"], to: older });
    expect(fs.readFileSync(s.file("prod"), "utf8")).toContain(`web: ${older}`);
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const err = await rollback({ stack: "prod", stacksDir: s.dir, services: ["web"], to: ABSENT, client: FAST_RETRY }).catch((e) => e);
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

describe("pin", () => {
  it("tags every digest the stack files pin, in each stack's repository; --check reports what is missing and changes nothing", async () => {
    const a = `${REGISTRY_A}/${ns}pina/web`;
    const b = `${REGISTRY_B}/${ns}pinb/web`;
    // The index carries its own pin tag but its children do not (pinned by hand, say).
    skopeoCopy(`${srcRepo}@${index}`, `${a}:${pinTag(index)}`);
    const children = (await imageTree(srcRepo, index)).manifests.filter((m) => m !== index);
    expect(children).toHaveLength(2);
    skopeoCopy(`${srcRepo}@${older}`, `${b}:ci-build`);
    // Each stack's proxy image is there and pinned already.
    const [ap, bp] = [`${REGISTRY_A}/${ns}pina/${PROXY_REPOSITORY}`, `${REGISTRY_B}/${ns}pinb/${PROXY_REPOSITORY}`];
    for (const r of [ap, bp]) skopeoCopy(`${srcProxy}@${proxy}`, `${r}:${pinTag(proxy)}`);
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}pina`, web: index, proxy }, prod: { registry: `${REGISTRY_B}/${ns}pinb`, web: older, proxy } });
    const before = { test: fs.readFileSync(s.file("test"), "utf8"), prod: fs.readFileSync(s.file("prod"), "utf8") };

    const check = await pin({ stacksDir: s.dir, check: true });
    expect(check.items.map((i) => [i.stacks, i.repository, i.outcome])).toEqual([
      [["prod"], b, "missing"],
      [["prod"], bp, "present"],
      [["test"], a, "missing"],
      [["test"], ap, "present"],
    ]);
    expect(pinExitCode(check)).toBe(1);
    expect(check.stats.tagsPut).toBe(0);
    expect((await getManifestRaw(a, pinTag(children[0]))).status).toBe(404);
    expect((await getManifestRaw(b, pinTag(older))).status).toBe(404);

    const done = await pin({ stacksDir: s.dir });
    expect(done.items.map((i) => [i.outcome, i.children])).toEqual([["tagged", 0], ["present", 0], ["present", 2], ["present", 0]]);
    expect(done.stats.tagsPut).toBe(3); // older, and the index's two children
    expect(pinExitCode(done)).toBe(0);
    for (const d of [index, ...children]) await expectPinned(a, d);
    await expectPinned(b, older);

    const recheck = await pin({ stacksDir: s.dir, check: true });
    expect(recheck.items.map((i) => i.outcome)).toEqual(["present", "present", "present", "present"]);
    expect(pinExitCode(recheck)).toBe(0);
    const again = await pin({ stacksDir: s.dir, stacks: ["prod"] });
    expect(again.items).toHaveLength(2);
    expect(again.items[0]).toMatchObject({ repository: b, outcome: "present" });
    expect(again.stats.tagsPut).toBe(0);
    // The stack files are only read.
    expect(fs.readFileSync(s.file("test"), "utf8")).toBe(before.test);
    expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(before.prod);
  });

  it("a digest missing from its repository is reported (exit 1) and the others are still tagged", async () => {
    const a = `${REGISTRY_A}/${ns}pinc/web`;
    skopeoCopy(`${srcRepo}@${single}`, `${a}:ci-build`);
    for (const r of [`${REGISTRY_A}/${ns}pinc`, `${REGISTRY_B}/${ns}pind`]) skopeoCopy(`${srcProxy}@${proxy}`, `${r}/${PROXY_REPOSITORY}:${pinTag(proxy)}`);
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}pinc`, web: single, proxy }, prod: { registry: `${REGISTRY_B}/${ns}pind`, web: ABSENT, proxy } });
    const r = await pin({ stacksDir: s.dir, client: FAST_RETRY });
    expect(r.items.filter((i) => i.services.includes(PROXY_REPOSITORY)).map((i) => i.outcome)).toEqual(["present", "present"]);
    const byStack = Object.fromEntries(r.items.filter((i) => i.services.includes("web")).map((i) => [i.stacks[0], i]));
    expect(byStack.test.outcome).toBe("tagged");
    expect(byStack.prod.outcome).toBe("error");
    expect(byStack.prod.error).toMatch(/the image is not in the repository/);
    expect(pinExitCode(r)).toBe(1);
    await expectPinned(a, single);
  });
});

describe("the per-host proxy image (dockyard:proxyImage) is pinned and promoted like a service's", () => {
  /** A stack file differs from `before` only in the proxyImage value (its comments kept). */
  function expectOnlyProxyChanged(before: string, after: string, oldDigest: string, newDigest: string) {
    const changed = before.split("\n").map((l, i) => [l, after.split("\n")[i]] as const).filter(([x, y]) => x !== y);
    expect(after.split("\n")).toHaveLength(before.split("\n").length);
    expect(changed).toEqual([[`  dockyard:proxyImage: ${oldDigest}   # the proxy, by digest`, `  dockyard:proxyImage: ${newDigest}   # the proxy, by digest`]]);
    expect(after).toContain("# The per-host reverse proxy (HAProxy), mirrored into <registry>/haproxy.");
  }

  it("pin --check fails while a stack's proxy image lacks its pin tag; pin tags it", async () => {
    const [a, b] = [`${REGISTRY_A}/${ns}pxa`, `${REGISTRY_B}/${ns}pxb`];
    skopeoCopy(`${srcRepo}@${single}`, `${a}/web:${pinTag(single)}`);
    skopeoCopy(`${srcRepo}@${single}`, `${b}/web:${pinTag(single)}`);
    skopeoCopy(`${srcProxy}@${proxy}`, `${a}/${PROXY_REPOSITORY}:${pinTag(proxy)}`);
    skopeoCopy(`${srcProxy}@${proxyOld}`, `${b}/${PROXY_REPOSITORY}:mirrored`); // prod's copy: untagged as far as the lifecycle policy goes
    const s = stacks({ test: { registry: a, web: single, proxy }, prod: { registry: b, web: single, proxy: proxyOld } });
    const check = await pin({ stacksDir: s.dir, check: true });
    expect(check.items.filter((i) => i.outcome !== "present").map((i) => [i.stacks, i.services, i.repository, i.outcome])).toEqual([
      [["prod"], [PROXY_REPOSITORY], `${b}/${PROXY_REPOSITORY}`, "missing"],
    ]);
    expect(pinExitCode(check)).toBe(1);
    const done = await pin({ stacksDir: s.dir });
    expect(pinExitCode(done)).toBe(0);
    expect(done.stats.tagsPut).toBe(1);
    await expectPinned(`${b}/${PROXY_REPOSITORY}`, proxyOld);
  });

  it("promote copies, pins and rewrites the proxy with the services by default; rollback --service haproxy puts the old one back", async () => {
    const prodRoot = `${REGISTRY_B}/${ns}pxprod`;
    skopeoCopy(`${srcProxy}@${proxyOld}`, `${prodRoot}/${PROXY_REPOSITORY}:old`);
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single, proxy }, prod: { registry: prodRoot, web: older, proxy: proxyOld } });
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const r = await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: single, [PROXY_REPOSITORY]: proxy }) });
    expect(r.items.map((i) => [i.service, i.strategy, i.targetRepository])).toEqual([
      ["web", "stream", `${prodRoot}/web`],
      [PROXY_REPOSITORY, "stream", `${prodRoot}/${PROXY_REPOSITORY}`],
    ]);
    await expectImageComplete(`${prodRoot}/${PROXY_REPOSITORY}`, proxy, srcProxy);
    await expectPinned(`${prodRoot}/${PROXY_REPOSITORY}`, proxy);
    const promoted = fs.readFileSync(s.file("prod"), "utf8");
    expect(promoted).toContain(`web: ${single}   # pinned by digest`);
    expectOnlyProxyChanged(before.replace(older, single), promoted, proxyOld, proxy);
    expect(readLedger(s.ledger).map((e) => [e.action, e.service, e.repository, e.oldDigest, e.newDigest])).toEqual([
      ["promote", "web", `${prodRoot}/web`, older, single],
      ["promote", PROXY_REPOSITORY, `${prodRoot}/${PROXY_REPOSITORY}`, proxyOld, proxy],
    ]);

    const rb = await rollback({ stack: "prod", stacksDir: s.dir, services: [PROXY_REPOSITORY] });
    expect(rb.items.map((i) => [i.service, i.oldDigest, i.digest])).toEqual([[PROXY_REPOSITORY, proxy, proxyOld]]);
    expectOnlyProxyChanged(promoted, fs.readFileSync(s.file("prod"), "utf8"), proxy, proxyOld);
    await expectPinned(`${prodRoot}/${PROXY_REPOSITORY}`, proxyOld);
    expect(readLedger(s.ledger)[2]).toMatchObject({ action: "rollback", service: PROXY_REPOSITORY, oldDigest: proxy, newDigest: proxyOld });
  });

  it("--service haproxy promotes the proxy alone (same registry: blobs mounted)", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single, proxy }, prod: { registry: `${REGISTRY_A}/${ns}pxsame`, web: older, proxy: proxyOld } });
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const r = await promote({ from: "test", to: "prod", services: [PROXY_REPOSITORY], stacksDir: s.dir, sourceOutputs: s.outputs("test", { web: older, [PROXY_REPOSITORY]: proxy }) });
    expect(r.items.map((i) => [i.service, i.strategy])).toEqual([[PROXY_REPOSITORY, "mount"]]);
    expect(r.stats.blobsUploaded).toBe(0);
    await expectPinned(`${REGISTRY_A}/${ns}pxsame/${PROXY_REPOSITORY}`, proxy);
    expectOnlyProxyChanged(before, fs.readFileSync(s.file("prod"), "utf8"), proxyOld, proxy);
    expect(readLedger(s.ledger).map((e) => e.service)).toEqual([PROXY_REPOSITORY]);
  });

  it("promote refuses a proxy digest test has not deployed, or whose deployment it cannot see; nothing changes", async () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single, proxy }, prod: { registry: `${REGISTRY_B}/${ns}pxref`, web: older, proxy: proxyOld } });
    const before = fs.readFileSync(s.file("prod"), "utf8");
    const refused = async (outputs: Record<string, string>, services?: string[]) => {
      const err = await promote({ from: "test", to: "prod", services, stacksDir: s.dir, sourceOutputs: s.outputs("test", outputs) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DockyardError);
      expect(fs.readFileSync(s.file("prod"), "utf8")).toBe(before);
      expect(fs.existsSync(s.ledger)).toBe(false);
      return err as DockyardError;
    };
    const noOutput = await refused({ web: single });
    expect(noOutput.exitCode).toBe(1);
    expect(noOutput.message).toMatch(new RegExp(`${PROXY_REPOSITORY}: stack test pins ${proxy} but has not deployed it \\(no 'proxyImage' output "<registry>/haproxy@<digest>" in --source-outputs .*: its last deployment ran no proxy, or predates that output; .*--service NAME\\)`));
    const other = await refused({ web: single, [PROXY_REPOSITORY]: proxyOld }, [PROXY_REPOSITORY]);
    expect(other.exitCode).toBe(1);
    expect(other.message).toMatch(new RegExp(`its last deployment runs ${proxyOld}`));
    expect((await getManifestRaw(`${REGISTRY_B}/${ns}pxref/${PROXY_REPOSITORY}`, proxy)).status).toBe(404);
    const file = s.outputs("test", { web: single });
    fs.writeFileSync(file, JSON.stringify({ services: { web: { digest: single } }, proxyImage: "haproxy:latest" }));
    const bad = await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: file }).then(() => undefined, (e: DockyardError) => e) as DockyardError;
    expect(bad.exitCode).toBe(2);
    expect(bad.message).toMatch(/output 'proxyImage' of stack test: must be a string '<registry>\/haproxy@sha256:<64 hex>' \(got "haproxy:latest"\)/);
    const unknown = await promote({ from: "test", to: "prod", services: ["nope"], stacksDir: s.dir, sourceOutputs: file }).then(() => undefined, (e: DockyardError) => e) as DockyardError;
    expect(unknown.exitCode).toBe(2);
    expect(unknown.message).toMatch(/--service nope: stack test \(--from, .*Pulumi\.test\.yaml\) has no such service; services: web; the per-host proxy: haproxy/);
  });
});

describe("CLI", () => {
  const tsx = path.join(REPO_ROOT, "node_modules/.bin/tsx");
  const run = (script: string, args: string[]) => spawnSync(tsx, [path.join(REPO_ROOT, "scripts", script), ...args], { encoding: "utf8", cwd: REPO_ROOT, timeout: 60_000 });

  it("promote --dry-run --json prints the plan on stdout, exit 0; bad usage exits 2; refusal exits 1", () => {
    const s = stacks({ test: { registry: `${REGISTRY_A}/${ns}src`, web: single }, prod: { registry: `${REGISTRY_B}/${ns}cli`, web: older } });
    const out = s.outputs("test", { web: single });
    const ok = run("promote.ts", ["--from", "test", "--to", "prod", "--service", "web", "--stacks-dir", s.dir, "--source-outputs", out, "--dry-run", "--json"]);
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
    const viaCli = run("dockyard.ts", ["promote", "--from", "test", "--to", "prod", "--service", "web", "--stacks-dir", s.dir, "--source-outputs", s.outputs("test", { web: single }), "--dry-run"]);
    expect(viaCli.status, viaCli.stderr).toBe(0);
    expect(viaCli.stdout).toMatch(/promote test -> prod \(dry run: nothing copied or written\)/);
    expect(viaCli.stdout).toMatch(new RegExp(`web .* copy from ${REGISTRY_A}/${ns}src/web`));
    skopeoCopy(`${srcRepo}@${older}`, `${REGISTRY_B}/${ns}cli/web:ci-build`);
    const pinCheck = run("dockyard.ts", ["pin", "--stacks-dir", s.dir, "--check"]);
    expect(pinCheck.status, pinCheck.stderr).toBe(1); // prod's `older` is in ${ns}cli without its pin tag
    expect(pinCheck.stdout).toMatch(/NOT TAGGED/);
    expect(pinCheck.stdout).toMatch(/pinned digest\(s\) without their pin tag/);
    const pinBad = run("dockyard.ts", ["pin", "nosuchstack", "--stacks-dir", s.dir]);
    expect(pinBad.status).toBe(2);
    expect(pinBad.stderr).toMatch(/nosuchstack/);
    const rb = run("rollback.ts", ["prod", "--stacks-dir", s.dir, "--to", "latest"]);
    expect(rb.status).toBe(2);
    expect(rb.stderr).toMatch(/--to latest: must be an image digest/);
  }, 120_000);
});
