import * as YAML from "yaml";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { assertReplaceable, breakLock, rewriteDigests, setImageDigests, StackFileError, withFileLock, writeFileAtomic } from "../../scripts/lib/stackfile";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;
const C = `sha256:${"c".repeat(64)}`;

const SAMPLE = `# prod: customer traffic.
config:
  aws:region: eu-west-1   # keep
  dockyard:registry: 127.0.0.1:5002/prod

  # digests arrive only through promote
  dockyard:images:
    web: ${A}    # the web tier
    api: "${A}"
    worker: '${A}'
  dockyard:replicas:
    web: 3
`;

const tmpDirs: string[] = [];
function tmpFile(content: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-sf-"));
  tmpDirs.push(d);
  const f = path.join(d, "Pulumi.prod.yaml");
  fs.writeFileSync(f, content, { mode: 0o640 });
  return f;
}
afterEach(() => {
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("rewriteDigests", () => {
  it("changes only the digest values, keeping comments, blank lines and each value's quoting", () => {
    const out = rewriteDigests(SAMPLE, { web: B, api: B, worker: C });
    expect(out).toBe(
      SAMPLE.replace(`web: ${A}`, `web: ${B}`).replace(`api: "${A}"`, `api: "${B}"`).replace(`worker: '${A}'`, `worker: '${C}'`),
    );
  });

  it("leaves other services untouched", () => {
    const out = rewriteDigests(SAMPLE, { api: B });
    expect(out.split("\n").filter((l, i) => l !== SAMPLE.split("\n")[i])).toEqual([`    api: "${B}"`]);
  });

  it("adds a missing service to the mapping", () => {
    const out = rewriteDigests(SAMPLE, { cron: C });
    expect(out).toContain(`cron: ${C}`);
    expect(out).toContain("# digests arrive only through promote");
  });

  it("adds the images mapping to a new stack's file that has none yet (issue 11, the first deploy), and refuses one that is not a mapping", () => {
    const fresh = "# a new stack\nconfig:\n  aws:region: eu-west-1\n";
    const out = rewriteDigests(fresh, { web: B, haproxy: C });
    expect(YAML.parse(out).config).toEqual({ "aws:region": "eu-west-1", "dockyard:images": { web: B }, "dockyard:proxyImage": C });
    expect(out).toContain("# a new stack");
    expect(() => rewriteDigests(`${fresh}  dockyard:images: [web]\n`, { web: B })).toThrow(/config\.dockyard:images: not a mapping of service -> digest/);
  });

  it("rewrites the proxy's digest (dockyard:proxyImage, named haproxy) in place, or adds it", () => {
    const withProxy = SAMPLE.replace("  dockyard:replicas:", `  # the per-host proxy\n  dockyard:proxyImage: ${A}   # HAProxy\n  dockyard:replicas:`);
    expect(rewriteDigests(withProxy, { haproxy: B, web: C })).toBe(withProxy.replace(`proxyImage: ${A}`, `proxyImage: ${B}`).replace(`web: ${A}`, `web: ${C}`));
    const added = rewriteDigests(SAMPLE, { haproxy: B });
    expect(added).toContain(`dockyard:proxyImage: ${B}`);
    expect(added).toContain("# digests arrive only through promote");
    expect(() => rewriteDigests(SAMPLE, { haproxy: "latest" })).toThrow(/config\.dockyard:proxyImage: refusing to write "latest"/);
    const f = tmpFile(withProxy);
    expect(setImageDigests(f, { haproxy: C })).toEqual({ haproxy: A });
    expect(fs.readFileSync(f, "utf8")).toBe(withProxy.replace(`proxyImage: ${A}`, `proxyImage: ${C}`));
  });

  it("refuses a value that is not a digest, and a file without a config mapping", () => {
    expect(() => rewriteDigests(SAMPLE, { web: "latest" })).toThrow(/config\.dockyard:images\.web: refusing to write "latest"/);
    expect(() => rewriteDigests("config: 3\n", { web: B }, "Pulumi.x.yaml")).toThrow(/Pulumi\.x\.yaml: config: missing or not a mapping/);
    expect(() => rewriteDigests("config: [\n", { web: B })).toThrow(StackFileError);
  });
});

describe("setImageDigests / writeFileAtomic", () => {
  it("rewrites the file atomically, keeps its mode, returns the previous digests", () => {
    const f = tmpFile(SAMPLE);
    const prev = setImageDigests(f, { web: B });
    expect(prev).toEqual({ web: A });
    expect(fs.readFileSync(f, "utf8")).toBe(SAMPLE.replace(`web: ${A}`, `web: ${B}`));
    expect(fs.statSync(f).mode & 0o777).toBe(0o640);
    expect(fs.readdirSync(path.dirname(f))).toEqual(["Pulumi.prod.yaml"]);
  });

  it("an injected failure before the rename leaves the original and no temp file", () => {
    const f = tmpFile(SAMPLE);
    expect(() =>
      setImageDigests(f, { web: B }, {
        beforeRename: () => {
          throw new Error("ENOSPC: no space left on device");
        },
      }),
    ).toThrow(/cannot write .*ENOSPC.*left unchanged/);
    expect(fs.readFileSync(f, "utf8")).toBe(SAMPLE);
    expect(fs.readdirSync(path.dirname(f))).toEqual(["Pulumi.prod.yaml"]);
  });

  it("a path whose directory is a file is refused", () => {
    const f = tmpFile(SAMPLE);
    expect(() => writeFileAtomic(path.join(f, "x.yaml"), "a: 1\n")).toThrow(/cannot write .*ENOTDIR/);
    expect(() => assertReplaceable(path.join(f, "x.yaml"))).toThrow(StackFileError);
  });

  // A file this process may not replace, made with what this user can do: a read-only
  // directory for a user (the npm run test:unit path needs no root), and for root, whom
  // directory modes do not bind, an immutable file (chattr +i).
  const root = process.getuid?.() === 0;
  it(`a file this process may not replace (${root ? "chattr +i, as root" : "in a read-only directory"}) is refused by assertReplaceable and by the write`, async () => {
    const { execFileSync } = await import("node:child_process");
    const f = tmpFile(SAMPLE);
    const dir = path.dirname(f);
    const [lock, unlock] = root
      ? [() => execFileSync("chattr", ["+i", f]), () => execFileSync("chattr", ["-i", f])]
      : [() => fs.chmodSync(dir, 0o555), () => fs.chmodSync(dir, 0o700)];
    lock();
    try {
      expect(() => assertReplaceable(f)).toThrow(/cannot write .*Pulumi\.prod\.yaml/);
      expect(() => setImageDigests(f, { web: B })).toThrow(/left unchanged/);
      expect(fs.readFileSync(f, "utf8")).toBe(SAMPLE);
      expect(fs.readdirSync(dir)).toEqual(["Pulumi.prod.yaml"]);
    } finally {
      unlock();
    }
  });

  it("works on the shipped stack file text: only the digest line changes", () => {
    const shipped = fs.readFileSync(path.resolve(__dirname, "../../stacks/Pulumi.prod.yaml"), "utf8");
    const out = rewriteDigests(shipped, { web: C });
    const diff = shipped.split("\n").map((l, i) => [l, out.split("\n")[i]]).filter(([x, y]) => x !== y);
    expect(diff).toHaveLength(1);
    expect(diff[0][1]).toMatch(new RegExp(`^\\s+web: ${C}$`));
  });
});

describe("withFileLock", () => {
  const FAST = { waitMs: 300 };
  /** Lock content as a holder on `host` writes it. */
  const holder = (pid: number, host = os.hostname()) => JSON.stringify({ pid, host, time: new Date().toISOString() }) + "\n";
  const exitedPid = () => Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);
  const age = (file: string, seconds: number) => {
    const t = Date.now() / 1000 - seconds;
    fs.utimesSync(file, t, t);
  };

  it("serialises changes: a lock held by a live process refuses after waiting, a dead holder's is taken over, the lock is removed after", () => {
    const f = tmpFile(SAMPLE);
    expect(withFileLock(f, () => JSON.parse(fs.readFileSync(`${f}.lock`, "utf8")))).toMatchObject({ pid: process.pid, host: os.hostname() });
    expect(fs.existsSync(`${f}.lock`)).toBe(false);
    fs.writeFileSync(`${f}.lock`, holder(process.pid)); // held by a live process (this one)
    const t0 = Date.now();
    expect(() => withFileLock(f, () => 1, FAST)).toThrow(new RegExp(`another promote or rollback \\(pid ${process.pid} on ${os.hostname()}, since .*\\) is changing it`));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250); // it waited for the holder first
    fs.writeFileSync(`${f}.lock`, holder(exitedPid())); // its process has exited, on this host
    expect(withFileLock(f, () => "ran", FAST)).toBe("ran");
    expect(fs.existsSync(`${f}.lock`)).toBe(false);
    expect(() => withFileLock(f, () => { throw new Error("inner"); })).toThrow("inner");
    expect(fs.readdirSync(path.dirname(f))).toEqual(["Pulumi.prod.yaml"]);
  });

  it("an empty or unreadable lock file is not stale: a second writer refuses it, and takes it only once it is older than the bound", () => {
    const f = tmpFile(SAMPLE);
    for (const content of ["", "garbage\n", "12345\n"]) {
      fs.writeFileSync(`${f}.lock`, content); // a writer caught mid-way by the old code, or a stray file
      expect(() => withFileLock(f, () => "taken", FAST)).toThrow(/cannot change .*Pulumi\.prod\.yaml: another promote or rollback \(lock file .* unreadable/);
      expect(fs.readFileSync(`${f}.lock`, "utf8")).toBe(content); // left alone
      age(`${f}.lock`, 3600);
      expect(withFileLock(f, () => "taken", { ...FAST, staleMs: 600_000 })).toBe("taken");
      expect(fs.existsSync(`${f}.lock`)).toBe(false);
    }
  });

  it("a lock from another host is stale only by age (its process cannot be checked from here)", () => {
    const f = tmpFile(SAMPLE);
    fs.writeFileSync(`${f}.lock`, holder(exitedPid(), "some-other-host"));
    expect(() => withFileLock(f, () => 1, FAST)).toThrow(/pid \d+ on some-other-host/);
    age(`${f}.lock`, 3600);
    expect(withFileLock(f, () => 2, { ...FAST, staleMs: 600_000 })).toBe(2);
  });

  it("a breaker that judged a dead writer's lock stale never removes the live lock now at the same inode", () => {
    // CI caught two writers holding the lock at once: the dead writer's lock was removed by one
    // breaker, the next lock (taken by a live writer) got the freed inode number, and a second
    // breaker, which had judged the old lock stale, matched the inode and removed the live lock.
    const f = tmpFile(SAMPLE);
    const lock = `${f}.lock`;
    fs.writeFileSync(lock, holder(process.pid)); // alive: this process
    const ino = fs.statSync(lock).ino; // the inode the second breaker saw on the dead lock
    expect(breakLock(lock, ino, 60_000)).toBe(true);
    expect(fs.existsSync(lock)).toBe(true);
    // A lock still held by the dead writer is removed.
    fs.writeFileSync(lock, holder(exitedPid()));
    expect(breakLock(lock, fs.statSync(lock).ino, 60_000)).toBe(true);
    expect(fs.existsSync(lock)).toBe(false);
  });

  it.each([
    ["no lock", false],
    ["the lock of a writer that died", true],
  ])("concurrent writer processes never both hold it, and each waits its turn (starting from %s)", async (_, deadLock) => {
    const f = tmpFile(SAMPLE);
    fs.writeFileSync(`${f}.counter`, "0");
    if (deadLock) fs.writeFileSync(`${f}.lock`, holder(exitedPid())); // every writer finds it stale at once
    const writers = 4;
    const iterations = 25;
    const startAt = Date.now() + 4000; // after every child has loaded tsx
    const fixture = path.join(__dirname, "fixtures", "lock-writer.ts");
    const { execFile } = await import("node:child_process");
    const exits = await Promise.all(
      Array.from({ length: writers }, () =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
          execFile(process.execPath, ["--import", "tsx", fixture, f, String(iterations), String(startAt)], { timeout: 60_000 }, (err, stdout, stderr) =>
            resolve({ code: err ? Number(err.code ?? -1) : 0, stdout, stderr: stderr.split("\n").slice(0, 3).join(" | ") }),
          ),
        ),
      ),
    );
    for (const x of exits) expect(x.code, x.stderr).toBe(0);
    const runs = exits.map((x) => JSON.parse(x.stdout) as { overlaps: number; refusals: number });
    expect(runs.reduce((n, r) => n + r.overlaps, 0)).toBe(0);
    expect(Number(fs.readFileSync(`${f}.counter`, "utf8"))).toBe(writers * iterations); // no lost update
    expect(runs.reduce((n, r) => n + r.refusals, 0)).toBe(0); // each waited instead of failing
    expect(fs.existsSync(`${f}.lock`)).toBe(false);
  }, 90_000);
});
