/**
 * ci/stack-exists.sh (issue 24 item 5): a pull request's preview of a stack the backend does
 * not hold yet says so and passes, without creating it; any other failure still fails.
 * The pulumi on PATH is a stand-in that answers `stack select` as the real CLI does
 * (pulumi/pulumi pkg/cmd/pulumi/stack/stack_select.go: without --create, a missing stack is
 * `no stack named '<name>' found`, exit 1; with --create it would init the stack) and logs
 * every call, so the test sees that nothing was created.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const SCRIPT = path.resolve(__dirname, "../../ci/stack-exists.sh");
let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A backend holding `stacks` (or failing every call with `fail`), and a pulumi that reads it. */
function backend(stacks: string[], fail?: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "h5b-exists-"));
  dirs.push(dir);
  fs.mkdirSync(path.join(dir, "bin"));
  fs.writeFileSync(path.join(dir, "stacks"), stacks.map((s) => `${s}\n`).join(""));
  fs.writeFileSync(
    path.join(dir, "bin/pulumi"),
    `#!/bin/sh
echo "$*" >> "${dir}/calls"
${fail ? `echo "${fail}" >&2; exit 1` : ""}
[ "$1 $2" = "stack select" ] || { echo "stand-in: unexpected $*" >&2; exit 3; }
case " $* " in *" --create "*) echo "$4" >> "${dir}/stacks"; exit 0 ;; esac
grep -qx "$4" "${dir}/stacks" && exit 0
echo "error: no stack named '$4' found" >&2
exit 1
`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(dir, "summary"), "");
  const run = (stack: string) => spawnSync("bash", [SCRIPT, stack], { encoding: "utf8", env: { PATH: `${dir}/bin:${process.env.PATH}`, GITHUB_STEP_SUMMARY: path.join(dir, "summary") } });
  const read = (f: string) => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), "utf8") : "");
  return { run, read };
}

describe("ci/stack-exists.sh", () => {
  it("a stack the backend holds: exists=true", () => {
    const b = backend(["test", "prod"]);
    const r = b.run("prod");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("exists=true\n");
    expect(b.read("summary")).toBe("");
  });

  it("a stack that does not exist yet: says so, passes, exists=false, and creates nothing", () => {
    const b = backend(["test"]);
    const r = b.run("prod");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("exists=false\n");
    expect(b.read("summary")).toBe("stack prod does not exist yet; its first deploy creates it (nothing to preview)\n");
    expect(b.read("calls")).toBe("stack select --stack prod\n");
    expect(b.read("stacks")).toBe("test\n");
  });

  it("any other failure (access denied) fails the step with pulumi's message", () => {
    const b = backend(["prod"], "error: failed to load checkpoint: AccessDenied: Access Denied");
    const r = b.run("prod");
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("AccessDenied");
  });
});
