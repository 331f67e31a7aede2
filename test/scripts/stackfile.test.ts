import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { assertReplaceable, rewriteDigests, setImageDigests, StackFileError, withFileLock, writeFileAtomic } from "../../scripts/lib/stackfile";

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

  it("refuses a value that is not a digest, and a file without config.dockyard:images", () => {
    expect(() => rewriteDigests(SAMPLE, { web: "latest" })).toThrow(/config\.dockyard:images\.web: refusing to write "latest"/);
    expect(() => rewriteDigests("config:\n  aws:region: eu-west-1\n", { web: B }, "Pulumi.x.yaml")).toThrow(/Pulumi\.x\.yaml: config\.dockyard:images: missing/);
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

  it("an immutable file (chattr +i; binds root too) is refused by assertReplaceable and by the write", async () => {
    const { execFileSync } = await import("node:child_process");
    const f = tmpFile(SAMPLE);
    execFileSync("chattr", ["+i", f]);
    try {
      expect(() => assertReplaceable(f)).toThrow(/cannot write .*Pulumi\.prod\.yaml/);
      expect(() => setImageDigests(f, { web: B })).toThrow(/left unchanged/);
      expect(fs.readFileSync(f, "utf8")).toBe(SAMPLE);
      expect(fs.readdirSync(path.dirname(f))).toEqual(["Pulumi.prod.yaml"]);
    } finally {
      execFileSync("chattr", ["-i", f]);
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
  it("serialises changes: a lock held by a live process refuses, a stale one is taken over, the lock is removed after", () => {
    const f = tmpFile(SAMPLE);
    expect(withFileLock(f, () => fs.existsSync(`${f}.lock`))).toBe(true);
    expect(fs.existsSync(`${f}.lock`)).toBe(false);
    fs.writeFileSync(`${f}.lock`, `${process.pid}\n`); // held by a live process (this one)
    expect(() => withFileLock(f, () => 1)).toThrow(new RegExp(`another promote or rollback \\(pid ${process.pid}\\)`));
    const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
    fs.writeFileSync(`${f}.lock`, `${gone}\n`); // its process has exited
    expect(withFileLock(f, () => "ran")).toBe("ran");
    expect(fs.existsSync(`${f}.lock`)).toBe(false);
    expect(() => withFileLock(f, () => { throw new Error("inner"); })).toThrow("inner");
    expect(fs.existsSync(`${f}.lock`)).toBe(false);
  });
});
