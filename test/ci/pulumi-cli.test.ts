/**
 * ci/pulumi-cli.sh (issue 24 item 13): after it, the `pulumi` on PATH is the CLI package-lock.json
 * pins and its first `pulumi version` prints exactly `v<pinned>`, which is what pulumi/actions
 * needs to use it instead of downloading another (src/libs/pulumi-cli.ts at v7.0.0, commit
 * 8e5e406f: getVersion takes the CLI only when `pulumi version` exits 0 and its trimmed stdout
 * starts with `v`; downloadCli then checks semver.satisfies(version, pulumi-version)).
 *
 * The npm wrapper is a stand-in with the real one's behaviour (node_modules/pulumi/lib/resolve.js:
 * "Downloading pulumi v<version>..." on stderr, then get.pulumi.com's install.sh with stdio
 * inherited, whose say_green lines go to stdout; the binary lands in
 * $PULUMI_HOME/versions/<version>/bin). PATH is built from GITHUB_PATH as the runner does
 * (actions/runner Handler.cs AddPrependPathToEnvironment: the lines reversed, before PATH).
 * Not run here: the real download (no network to get.pulumi.com).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "../..");
const SCRIPT = path.join(ROOT, "ci/pulumi-cli.sh");
const PINNED = JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8")).packages["node_modules/pulumi"].version as string;

const WRAPPER = `#!/bin/sh
v=$(node -p 'require("'"$PWD"'/node_modules/pulumi/package.json").version')
bin="\${PULUMI_HOME:-$HOME/.pulumi}/versions/$v/bin"
if [ ! -x "$bin/pulumi" ]; then
  echo "Downloading pulumi v$v..." >&2
  printf '+ Downloading Pulumi from https://get.pulumi.com/releases/sdk/pulumi-v%s-linux-x64.tar.gz\\n' "$v"
  mkdir -p "$bin"
  printf '#!/bin/sh\\n[ "$1" = version ] && echo v%s\\n' "\${FAKE_BINARY_VERSION:-$v}" > "$bin/pulumi"
  chmod +x "$bin/pulumi"
fi
exec "$bin/pulumi" "$@"
`;

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A checkout after `npm ci`: package-lock.json, node_modules/pulumi/package.json, the wrapper; an empty PULUMI_HOME. */
function checkout(version = PINNED) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "h5-cli-"));
  dirs.push(dir);
  fs.mkdirSync(path.join(dir, "node_modules/pulumi"), { recursive: true });
  fs.mkdirSync(path.join(dir, "node_modules/.bin"));
  fs.writeFileSync(path.join(dir, "node_modules/pulumi/package.json"), JSON.stringify({ name: "pulumi", version }));
  fs.writeFileSync(path.join(dir, "package-lock.json"), JSON.stringify({ packages: { "node_modules/pulumi": { version: PINNED } } }));
  fs.writeFileSync(path.join(dir, "node_modules/.bin/pulumi"), WRAPPER, { mode: 0o755 });
  for (const f of ["GITHUB_PATH", "GITHUB_OUTPUT"]) fs.writeFileSync(path.join(dir, f), "");
  const env = { PATH: process.env.PATH!, HOME: dir, PULUMI_HOME: path.join(dir, "pulumi-home"), GITHUB_PATH: path.join(dir, "GITHUB_PATH"), GITHUB_OUTPUT: path.join(dir, "GITHUB_OUTPUT") };
  return { dir, env };
}

/** The PATH a later step gets: GITHUB_PATH's lines, last first, before the job's PATH. */
const stepPath = (dir: string, base: string) => [...fs.readFileSync(path.join(dir, "GITHUB_PATH"), "utf8").split("\n").filter(Boolean).reverse(), base].join(":");

/** pulumi/actions' getVersion: the CLI on PATH is used only if `pulumi version` exits 0 and its trimmed stdout starts with `v`. */
function actionSeesVersion(cwd: string, env: NodeJS.ProcessEnv): string | undefined {
  const r = spawnSync("pulumi", ["version"], { cwd, env, encoding: "utf8" });
  const out = r.stdout.trim();
  return r.status === 0 && out.startsWith("v") ? out.substring(1) : undefined;
}

describe("ci/pulumi-cli.sh: the pinned Pulumi CLI is the one pulumi/actions finds", () => {
  it("without it, the wrapper's first `pulumi version` prints the install log first: the action would download another CLI", () => {
    const { dir, env } = checkout();
    // Today's workflows: only node_modules/.bin on PATH, nothing cached yet.
    expect(actionSeesVersion(dir, { ...env, PATH: `${dir}/node_modules/.bin:${env.PATH}` })).toBeUndefined();
  });

  it("with it, the first `pulumi version` of the next step prints exactly v<pinned> from the pinned binary, and the action gets pulumi-version=<pinned>", () => {
    const { dir, env } = checkout();
    const r = spawnSync("bash", [SCRIPT], { cwd: dir, env, encoding: "utf8" });
    expect(r.stderr).toContain(`Downloading pulumi v${PINNED}`);
    expect(r.status).toBe(0);
    const next = { ...env, PATH: stepPath(dir, env.PATH) };
    expect(actionSeesVersion(dir, next)).toBe(PINNED);
    expect(spawnSync("sh", ["-c", "command -v pulumi"], { env: next, encoding: "utf8" }).stdout.trim()).toBe(path.join(env.PULUMI_HOME, "versions", PINNED, "bin", "pulumi"));
    expect(fs.readFileSync(env.GITHUB_OUTPUT, "utf8")).toBe(`version=${PINNED}\n`);
    // node_modules/.bin (tsx and the rest) stays on PATH, after the real CLI.
    expect(next.PATH.split(":").slice(0, 2)).toEqual([path.join(env.PULUMI_HOME, "versions", PINNED, "bin"), `${dir}/node_modules/.bin`]);
  });

  it("fails, naming both versions, when the downloaded binary is another version or node_modules is not what package-lock.json pins", () => {
    const a = checkout();
    const wrong = spawnSync("bash", [SCRIPT], { cwd: a.dir, env: { ...a.env, FAKE_BINARY_VERSION: "3.999.0" }, encoding: "utf8" });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain(`version says "v3.999.0", not v${PINNED} (package-lock.json)`);
    expect(fs.readFileSync(a.env.GITHUB_PATH, "utf8")).toBe("");
    const b = checkout("3.1.0");
    const stale = spawnSync("bash", [SCRIPT], { cwd: b.dir, env: b.env, encoding: "utf8" });
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain(`node_modules/pulumi is 3.1.0 but package-lock.json pins ${PINNED}: run npm ci`);
  });
});
