/**
 * Rules every workflow in .github/workflows must keep (issue 11, part 3), as pure checks
 * over a parsed workflow: each returns the problems it finds, [] when the workflow keeps
 * the rule. workflows.test.ts runs them on the real workflows (no problem allowed) and on
 * test/workflows/fixtures/bad.yml (each rule must find its planted problem).
 */
import * as YAML from "yaml";

export interface Workflow {
  file: string;
  text: string;
  doc: any;
}

type Job = Record<string, any>;
type Step = Record<string, any>;

export function parseWorkflow(file: string, text: string): Workflow {
  return { file, text, doc: YAML.parse(text) };
}

function jobs(wf: Workflow): [string, Job][] {
  return Object.entries((wf.doc?.jobs ?? {}) as Record<string, Job>);
}

function steps(job: Job): Step[] {
  return Array.isArray(job.steps) ? job.steps : [];
}

/** All `run:` scripts of a job. */
function runs(job: Job): string[] {
  return steps(job).map((s) => s.run).filter((r): r is string => typeof r === "string");
}

function uses(job: Job): string[] {
  const u = steps(job).map((s) => s.uses).filter((x): x is string => typeof x === "string");
  return typeof job.uses === "string" ? [...u, job.uses] : u;
}

function usesAction(job: Job, action: string): Step[] {
  return steps(job).filter((s) => typeof s.uses === "string" && s.uses.split("@")[0] === action);
}

/** The stack a job operates on: its STACK env, the workflow's, or a literal --stack / stack-name. */
export function jobStack(wf: Workflow, job: Job): string | undefined {
  const env = job.env?.STACK ?? wf.doc?.env?.STACK;
  if (typeof env === "string") return env;
  for (const r of runs(job)) {
    const m = /--stack\s+([a-z][a-z0-9-]*)/.exec(r);
    if (m) return m[1];
  }
  const named = usesAction(job, "pulumi/actions").map((s) => s.with?.["stack-name"]).find((n) => typeof n === "string");
  return named;
}

/** Does the job run `pulumi up` (CLI, or pulumi/actions with command up/update)? */
export function runsUp(job: Job): boolean {
  return runs(job).some((r) => /(^|[\s;&|(])(npx\s+)?pulumi\s+(up|update)\b/m.test(r)) ||
    usesAction(job, "pulumi/actions").some((s) => ["up", "update"].includes(s.with?.command));
}

/** Does the job run `pulumi preview` (CLI, or pulumi/actions with command preview)? */
export function runsPreview(job: Job): boolean {
  return runs(job).some((r) => /(^|[\s;&|(])(npx\s+)?pulumi\s+preview\b/m.test(r)) ||
    usesAction(job, "pulumi/actions").some((s) => s.with?.command === "preview");
}

const PINNED = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_./-]+@[0-9a-f]{40}$/;

/** Every `uses:` names owner/repo@<40-hex commit>, with a `# vX.Y.Z` comment on its line. */
export function checkPinnedActions(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    for (const u of uses(job)) if (!PINNED.test(u)) problems.push(`${wf.file}: job ${name}: uses ${u}: not owner/repo@<full commit SHA>`);
  }
  wf.text.split("\n").forEach((line, i) => {
    const m = /^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/.exec(line);
    if (m && !/#\s*v\d+\.\d+\.\d+\b/.test(m[2])) problems.push(`${wf.file}:${i + 1}: uses ${m[1]}: no "# vX.Y.Z" comment naming the release`);
  });
  return problems;
}

/** A top-level `permissions:` on every workflow. */
export function checkPermissions(wf: Workflow): string[] {
  return wf.doc?.permissions === undefined ? [`${wf.file}: no top-level permissions:`] : [];
}

/** Every job has a numeric timeout-minutes. */
export function checkTimeouts(wf: Workflow): string[] {
  return jobs(wf)
    .filter(([, job]) => typeof job["timeout-minutes"] !== "number")
    .map(([name]) => `${wf.file}: job ${name}: no timeout-minutes`);
}

/**
 * id-token: write only where OIDC is used: never workflow-wide, and on a job exactly when
 * it uses aws-actions/configure-aws-credentials (which needs it).
 */
export function checkIdToken(wf: Workflow): string[] {
  const problems: string[] = [];
  if (wf.doc?.permissions?.["id-token"] === "write" || wf.doc?.permissions === "write-all") {
    problems.push(`${wf.file}: id-token: write at the workflow level (give it only to the jobs that use OIDC)`);
  }
  for (const [name, job] of jobs(wf)) {
    const perms = job.permissions ?? wf.doc?.permissions;
    const hasIdToken = perms === "write-all" || perms?.["id-token"] === "write";
    const oidc = usesAction(job, "aws-actions/configure-aws-credentials").length > 0;
    if (hasIdToken && !oidc) problems.push(`${wf.file}: job ${name}: id-token: write but no OIDC login`);
    if (oidc && !hasIdToken) problems.push(`${wf.file}: job ${name}: configure-aws-credentials without id-token: write`);
  }
  return problems;
}

/**
 * A job that runs `pulumi up` is in the concurrency group dockyard-stack-<stack> (its own
 * or its workflow's) with cancel-in-progress: false, so updates of one stack queue.
 */
export function checkStackConcurrency(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    if (!runsUp(job)) continue;
    const stack = jobStack(wf, job);
    if (!stack) {
      problems.push(`${wf.file}: job ${name}: runs pulumi up but names no stack`);
      continue;
    }
    const c = job.concurrency ?? wf.doc?.concurrency;
    const group = typeof c === "string" ? c : c?.group;
    if (group !== `dockyard-stack-${stack}`) problems.push(`${wf.file}: job ${name}: pulumi up on ${stack} outside concurrency group dockyard-stack-${stack} (got ${JSON.stringify(group)})`);
    if (typeof c !== "object" || c === null || c["cancel-in-progress"] !== false) {
      problems.push(`${wf.file}: job ${name}: its concurrency must say cancel-in-progress: false (a running update is never cancelled)`);
    }
  }
  return problems;
}

function environmentName(job: Job): string | undefined {
  return typeof job.environment === "string" ? job.environment : job.environment?.name;
}

function needsOf(job: Job): string[] {
  return typeof job.needs === "string" ? [job.needs] : Array.isArray(job.needs) ? job.needs : [];
}

/**
 * `pulumi up` on prod: only in environment prod (required reviewers), needing a job that
 * previews prod, and skipped when that preview found nothing (its `if` reads the preview
 * job's outputs).
 */
export function checkProdUp(wf: Workflow): string[] {
  const problems: string[] = [];
  const all = Object.fromEntries(jobs(wf));
  for (const [name, job] of jobs(wf)) {
    if (!runsUp(job) || jobStack(wf, job) !== "prod") continue;
    if (environmentName(job) !== "prod") problems.push(`${wf.file}: job ${name}: pulumi up on prod outside environment prod`);
    const previews = needsOf(job).filter((n) => all[n] && runsPreview(all[n]) && jobStack(wf, all[n]) === "prod");
    if (previews.length === 0) problems.push(`${wf.file}: job ${name}: pulumi up on prod without needing a job that previews prod`);
    else if (!previews.some((p) => typeof job.if === "string" && job.if.includes(`needs.${p}.outputs.`))) {
      problems.push(`${wf.file}: job ${name}: not skipped on the preview's result (its if: should read needs.<preview>.outputs)`);
    }
  }
  return problems;
}

/**
 * A job that runs pulumi preview or up has what the host connection needs: AWS
 * credentials by OIDC, the session-manager-plugin checked, and an ephemeral key in an
 * ssh-agent whose socket later steps get through GITHUB_ENV.
 */
export function checkHostAccess(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    if (!runsUp(job) && !runsPreview(job)) continue;
    const script = runs(job).join("\n");
    const need: [boolean, string][] = [
      [usesAction(job, "aws-actions/configure-aws-credentials").length > 0, "aws-actions/configure-aws-credentials"],
      [/session-manager-plugin/.test(script), "session-manager-plugin"],
      [/ssh-keygen -q -t ed25519 -N '' .*-f "\$RUNNER_TEMP\/dockyard-key"/.test(script), "ssh-keygen of $RUNNER_TEMP/dockyard-key"],
      [/ssh-agent -a "\$RUNNER_TEMP\/agent\.sock"/.test(script) && /ssh-add/.test(script), "ssh-agent and ssh-add"],
      [/SSH_AUTH_SOCK=\$RUNNER_TEMP\/agent\.sock" >> "\$GITHUB_ENV"/.test(script), "SSH_AUTH_SOCK exported through $GITHUB_ENV"],
    ];
    for (const [ok, what] of need) if (!ok) problems.push(`${wf.file}: job ${name}: runs pulumi but lacks ${what}`);
  }
  return problems;
}

/** Node.js comes from package.json's engines (setup-node node-version-file), never a literal. */
export function checkNodeVersion(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    for (const s of usesAction(job, "actions/setup-node")) {
      if (s.with?.["node-version-file"] !== "package.json" || s.with?.["node-version"] !== undefined) {
        problems.push(`${wf.file}: job ${name}: setup-node must take node-version-file: package.json (engines.node)`);
      }
    }
  }
  return problems;
}

/** `npm run X` (and `npm run -s X`) in each run: script, as written. */
export function npmScriptsCalled(wf: Workflow): string[] {
  const out: string[] = [];
  for (const [, job] of jobs(wf)) {
    for (const r of runs(job)) for (const m of r.matchAll(/\bnpm\s+run(?:\s+-s|\s+--silent)?\s+([A-Za-z0-9:_-]+)/g)) out.push(m[1]);
  }
  return out;
}

/** Dockyard subcommands called: `npm run dockyard -- <sub>`, `npm run <script>` whose script is `tsx scripts/dockyard.ts <sub>`, or tsx scripts/dockyard.ts <sub>. */
export function dockyardSubcommandsCalled(wf: Workflow, scripts: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [, job] of jobs(wf)) {
    for (const r of runs(job)) {
      for (const m of r.matchAll(/\bnpm\s+run(?:\s+-s|\s+--silent)?\s+([A-Za-z0-9:_-]+)(?:\s+--\s+([a-z][a-z-]*))?/g)) {
        const body = scripts[m[1]] ?? "";
        const fixed = /scripts\/dockyard\.ts\s+([a-z][a-z-]*)/.exec(body);
        if (fixed) out.push(fixed[1]);
        else if (/scripts\/dockyard\.ts\s*$/.test(body) && m[2]) out.push(m[2]);
      }
      for (const m of r.matchAll(/scripts\/dockyard\.ts\s+([a-z][a-z-]*)/g)) out.push(m[1]);
    }
  }
  return out;
}

export function checkNpmScripts(wf: Workflow, scripts: Record<string, string>): string[] {
  return npmScriptsCalled(wf).filter((s) => !(s in scripts)).map((s) => `${wf.file}: npm run ${s}: no such script in package.json`);
}

export function checkDockyardSubcommands(wf: Workflow, scripts: Record<string, string>, commands: string[]): string[] {
  return dockyardSubcommandsCalled(wf, scripts).filter((c) => !commands.includes(c)).map((c) => `${wf.file}: dockyard ${c}: no such subcommand (dockyard --help lists ${commands.join(", ")})`);
}

/** Subcommand names from `dockyard --help` (yargs' Commands: section, lines "  dockyard <name> ..."). */
export function parseHelpCommands(help: string): string[] {
  const section = help.split(/\nCommands:\n/)[1]?.split(/\n\n/)[0] ?? "";
  return [...section.matchAll(/^\s+dockyard\s+([a-z][a-z-]*)/gm)].map((m) => m[1]);
}

/** The pulumi/actions steps of a job that run a command (not install-only). */
function pulumiActionSteps(job: Job): Step[] {
  return usesAction(job, "pulumi/actions").filter((s) => typeof s.with?.command === "string");
}

/** Each `pulumi up|preview` command line in a job's run: scripts. */
function pulumiCommandLines(job: Job): string[] {
  // Quoted text is not a command (echo "### pulumi preview ..."); the flags outside quotes are what counts.
  const unquoted = (l: string) => l.replace(/"[^"]*"|'[^']*'/g, "");
  return runs(job).flatMap((r) => r.split("\n").filter((l) => /(^|[\s;&|(])(npx\s+)?pulumi\s+(up|update|preview)\b/.test(unquoted(l))));
}

/**
 * The policy pack gates every preview and up (issue 24 item 10): each `pulumi up|preview`
 * passes `--policy-pack policy` (pkg/cmd/pulumi/operations/up.go, preview.go: --policy-pack),
 * and each pulumi/actions step its `policyPacks: policy` input (pulumi/actions src/config.ts:
 * options.policyPacks from the multiline input policyPacks).
 */
export function checkPolicyPack(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    for (const l of pulumiCommandLines(job)) {
      if (!/--policy-pack[ =]policy(\s|$)/.test(l)) problems.push(`${wf.file}: job ${name}: "${l.trim()}" without --policy-pack policy`);
    }
    for (const s of pulumiActionSteps(job)) {
      const packs = String(s.with?.policyPacks ?? "").split(/[\n;]/).map((p) => p.trim());
      if (!packs.includes("policy")) problems.push(`${wf.file}: job ${name}: pulumi/actions ${s.with.command} without policyPacks: policy`);
    }
  }
  return problems;
}

/** Does the job run the Pulumi CLI: pulumi in a run: line, pulumi/actions, or a dockyard command that runs it (up, dev-server)? */
export function runsPulumi(job: Job): boolean {
  return runs(job).some((r) => /(^|[\s;&|($])(npx\s+)?pulumi\s+[a-z]/m.test(r) || /\bnpm\s+run\s+(up|dev-server)\b/.test(r)) || pulumiActionSteps(job).length > 0;
}

function stepIndex(job: Job, pred: (s: Step) => boolean): number {
  return steps(job).findIndex(pred);
}

const isPulumiStep = (s: Step) =>
  (typeof s.run === "string" && (/(^|[\s;&|($])(npx\s+)?pulumi\s+[a-z]/m.test(s.run) || /\bnpm\s+run\s+(up|dev-server)\b/.test(s.run))) ||
  (typeof s.uses === "string" && s.uses.split("@")[0] === "pulumi/actions");

/**
 * The pinned Pulumi CLI is the one that runs (issue 24 item 13): a job that runs pulumi first
 * runs `bash ci/pulumi-cli.sh` in a step with an id (it installs the wrapper's CLI and puts the
 * binary on PATH), adds nothing to GITHUB_PATH itself, and gives each pulumi/actions step
 * `pulumi-version: ${{ steps.<id>.outputs.version }}` (pulumi/actions src/libs/pulumi-cli.ts
 * downloadCli: without it the range is ^3, and a failed version check downloads the newest).
 */
export function checkPinnedCli(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    if (!runsPulumi(job)) continue;
    const cliAt = stepIndex(job, (s) => typeof s.run === "string" && /(^|\s)bash (ci|"\$GITHUB_WORKSPACE\/ci)\/pulumi-cli\.sh"?(\s|$)/.test(s.run));
    const cli = steps(job)[cliAt];
    if (cliAt < 0 || typeof cli?.id !== "string") {
      problems.push(`${wf.file}: job ${name}: runs pulumi without a step (with an id) that runs bash ci/pulumi-cli.sh first`);
      continue;
    }
    if (stepIndex(job, isPulumiStep) < cliAt) problems.push(`${wf.file}: job ${name}: runs pulumi before ci/pulumi-cli.sh`);
    if (runs(job).some((r) => /node_modules\/\.bin.*GITHUB_PATH/.test(r))) problems.push(`${wf.file}: job ${name}: adds node_modules/.bin to GITHUB_PATH itself (ci/pulumi-cli.sh does, in the order that puts the pinned binary first)`);
    for (const s of pulumiActionSteps(job)) {
      const want = `\${{ steps.${cli.id}.outputs.version }}`;
      if (s.with?.["pulumi-version"] !== want) problems.push(`${wf.file}: job ${name}: pulumi/actions without pulumi-version: ${want}`);
    }
  }
  return problems;
}

/**
 * A job that previews or deploys a stack first runs `npx tsx ci/stack-file.ts <stack>` (issue
 * 24 item 4): a stack file without its committed encryptedkey stops there with one line, before
 * Pulumi would wrap a new data key with kms:Encrypt (pkg/secrets/cloud/manager.go).
 */
export function checkStackFileChecked(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    if (!runsUp(job) && !runsPreview(job)) continue;
    const at = stepIndex(job, (s) => typeof s.run === "string" && /npx tsx ci\/stack-file\.ts\s+\S+/.test(s.run));
    const firstOp = stepIndex(job, (s) => runsUp({ steps: [s] }) || runsPreview({ steps: [s] }));
    if (at < 0) problems.push(`${wf.file}: job ${name}: runs pulumi preview/up without npx tsx ci/stack-file.ts <stack> first`);
    else if (firstOp < at) problems.push(`${wf.file}: job ${name}: runs pulumi preview/up before ci/stack-file.ts`);
  }
  return problems;
}

/**
 * No step passes an input its action marks deprecated (action-inputs.ts, read from each
 * pinned action.yml), and every pinned action has been read (has an entry there).
 */
export function checkDeprecatedInputs(wf: Workflow, inputs: Record<string, { deprecated: Record<string, string> }>): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    for (const s of steps(job)) {
      if (typeof s.uses !== "string" || !PINNED.test(s.uses)) continue;
      const known = inputs[s.uses];
      if (!known) {
        problems.push(`${wf.file}: job ${name}: uses ${s.uses}: its action.yml's deprecated inputs are not recorded (test/workflows/action-inputs.ts)`);
        continue;
      }
      for (const key of Object.keys(s.with ?? {})) {
        if (key in known.deprecated) problems.push(`${wf.file}: job ${name}: ${s.uses.split("@")[0]} input ${key} is deprecated: ${known.deprecated[key]}`);
      }
    }
  }
  return problems;
}

/** Commands that find node on PATH (node, npm, npx, the CI entry point that runs them). */
const NODE_COMMAND = /(^|\s)(node|npm|npx|tsx|bash\s+\.ci\/run)(\s|$)/;

/**
 * sudo runs its command with the sudoers secure_path, not the caller's PATH (Ubuntu's
 * /etc/sudoers `Defaults secure_path=...`; runner-images' node is installed into
 * /usr/local/bin by install-nodejs.sh, setup-node's into the tool cache, prepended to PATH):
 * so `sudo <node command>` after setup-node runs the image's node. Each such sudo passes the
 * PATH on: `sudo env "PATH=$PATH" ...`.
 */
export function checkSudoKeepsNode(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    if (usesAction(job, "actions/setup-node").length === 0) continue;
    for (const r of runs(job)) {
      for (const m of r.matchAll(/\bsudo\s+([^\n;&|]*)/g)) {
        const rest = m[1];
        if (NODE_COMMAND.test(rest) && !/^env\s+"PATH=\$PATH"\s/.test(rest)) {
          problems.push(`${wf.file}: job ${name}: "sudo ${rest.trim()}" runs the image's node (sudo's secure_path), not setup-node's: sudo env "PATH=$PATH" ...`);
        }
      }
    }
  }
  return problems;
}

/**
 * Refs that are the workflow's own commit: github.sha, and deploy-test's gate sha (the ci run's
 * head_sha, which up-test deploys only while it is main's HEAD, so no older than the workflow).
 */
const OWN_COMMIT_REFS = ["${{ github.sha }}", "${{ needs.gate.outputs.sha }}"];

/**
 * A job that checks out another commit than the workflow's (deploy-prod: test's tested commit,
 * possibly older than ci/) runs the pipeline's tools (ci/) from the workflow's commit (issue 24
 * item 4): no `git checkout` of another commit in a run: step; the other commit goes into its
 * own path (actions/checkout `path:`), and no step working in that path calls ci/ relatively.
 */
export function checkToolsFromWorkflowCommit(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    if (runs(job).some((r) => /\bgit\s+checkout\s+(--detach\s+)?"?\$/.test(r))) problems.push(`${wf.file}: job ${name}: git checkout of another commit replaces the workflow's ci/ (check it out into its own path)`);
    for (const s of usesAction(job, "actions/checkout")) {
      const ref = s.with?.ref;
      if (ref === undefined || OWN_COMMIT_REFS.includes(ref)) continue;
      const where = s.with?.path;
      if (typeof where !== "string" || where === "." || where === "") {
        problems.push(`${wf.file}: job ${name}: checks out ${ref} over the workflow's commit (give it a path:, keep ci/ from the workflow's commit)`);
        continue;
      }
      for (const st of steps(job)) {
        if (st["working-directory"] === where && typeof st.run === "string" && /(^|[\s"])(bash|tsx)\s+ci\//m.test(st.run)) {
          problems.push(`${wf.file}: job ${name}: runs ci/ from ${where} (the checked-out ${ref}), not from the workflow's commit`);
        }
      }
    }
  }
  return problems;
}

/** A smoke test of `stack` in CI's mode: `dockyard smoke <stack|$STACK> ... --front-door health` (npm run dockyard --, or npx tsx scripts/dockyard.ts). */
export function isCiSmoke(run: string, stack: string): boolean {
  const smoke = run.split("\n").find((l) => /\bdockyard(?:\.ts)?\s+(?:--\s+)?smoke\s/.test(l));
  if (!smoke) return false;
  const named = /\bsmoke\s+("?\$\{?STACK\}?"?|[a-z][a-z0-9-]*)(\s|$)/.exec(smoke)?.[1].replace(/["${}]/g, "");
  return (named === "STACK" || named === stack) && /\s--front-door[ =]health(\s|$)/.test(smoke);
}

/**
 * Every job that runs `pulumi up` of test or prod then smoke-tests that stack in CI's mode
 * (issue 24 item 2): a later step runs `dockyard smoke <stack> --front-door health`. CI's
 * runner is outside dockyard:ingressCidrs, which the front door's security group admits
 * (components/front-door.ts frontDoorIngressRules), so a request to it times out; health
 * asks the load balancer's target health instead. A step recording the tested commit
 * (`pulumi stack tag set dockyard:commit`) comes after that smoke step.
 */
export function checkSmokeAfterUp(wf: Workflow): string[] {
  const problems: string[] = [];
  for (const [name, job] of jobs(wf)) {
    const stack = jobStack(wf, job);
    if (!runsUp(job) || (stack !== "test" && stack !== "prod")) continue;
    const all = steps(job);
    const up = all.findIndex((s) => typeof s.run === "string" && /(^|[\s;&|(])(npx\s+)?pulumi\s+(up|update)\b/m.test(s.run));
    const smoke = all.findIndex((s, i) => i > up && typeof s.run === "string" && isCiSmoke(s.run, stack));
    if (smoke < 0) {
      problems.push(`${wf.file}: job ${name}: pulumi up of ${stack} without a later step running dockyard smoke ${stack} --front-door health`);
      continue;
    }
    const tag = all.findIndex((s) => typeof s.run === "string" && /pulumi\s+stack\s+tag\s+set\s+dockyard:commit\b/.test(s.run));
    if (tag >= 0 && tag < smoke) problems.push(`${wf.file}: job ${name}: records dockyard:commit before its smoke test`);
  }
  return problems;
}
