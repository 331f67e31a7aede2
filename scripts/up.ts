/**
 * `dockyard up <stack> [--yes] [--preview]`: `pulumi up` of one stack, for a person at a
 * terminal, after checking everything that would otherwise fail minutes into the update
 * (README "Run it on your laptop": `npm run up -- local` needs Docker and nothing else).
 *
 * Before anything is created, each of these is one line naming the stack, what is missing
 * and the fix (exit 2): the stack's files parse; a terminal to confirm on (or --yes); for
 * `platform: local` hosts, a Docker Engine the docker CLI reaches; a backend
 * (PULUMI_BACKEND_URL; an all-local stack defaults to file://$HOME/.dockyard-state; a
 * stack with aws hosts needs it or `pulumi login`); the passphrase when the stack's secrets
 * use it; an ssh-agent holding a key (Pulumi reaches every host with it, README "Access to
 * hosts"). Then the local host image is built (the program looks it up by tag), the stack
 * is selected or created, and `pulumi up` runs with the policy pack (policy/); on success, how
 * to reach each host and service (hostsByName).
 *
 * How Pulumi runs: stack select/create, whoami and the outputs go through the Automation API
 * seam (scripts/lib/automation.ts, as dev-server); `pulumi up`/`preview` itself is the CLI as
 * a child process with this terminal (stdio inherited). The Automation API cannot confirm:
 * every command it runs gets --non-interactive (automation/cmd.js PulumiCommand.run) and
 * `up` always gets --yes --skip-preview (automation/stack.js Stack.up). Showing a preview and
 * asking ourselves would run the program twice more and offer less than Pulumi's own prompt
 * (yes/no/details, pkg/backend/apply.go confirmBeforeUpdating), so the CLI asks.
 *
 * Exit codes: 0 deployed (or previewed), 1 the image build or pulumi failed (or the update
 * was declined at Pulumi's prompt), 2 bad usage or a missing precondition.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Argv, CommandModule } from "yargs";
import { HOST_IMAGE_DIR } from "../components/local-host";
import { loadStackSpec, readStackFile } from "../stacks";
import { accessLines } from "./lib/access";
import { PulumiCommandError, StackLockedError, StackMissingError, automationBackend, policyPackDir, pulumiCommand, type PulumiBackend } from "./lib/automation";
import { DockyardError, EXIT, reported, toStderr, toStdout, type Write } from "./lib/cli";
import { REPO_ROOT } from "./lib/render";

/** Where an all-local stack keeps its state when PULUMI_BACKEND_URL is not set (under $HOME). */
export const DEFAULT_STATE_DIR = ".dockyard-state";
const RUN = "npm run up --";

export interface UpArgs {
  stack: string;
  yes: boolean;
  preview: boolean;
}

/** What a child process did: its exit code (-1: could not start, `error` says why) and what it printed when captured. */
export interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
  error?: NodeJS.ErrnoException;
}

export interface UpDeps {
  /** The environment every check and child process sees (PATH, HOME, PULUMI_*, SSH_AUTH_SOCK). */
  env: NodeJS.ProcessEnv;
  /** Pulumi's Automation API seam, on the backend of env.PULUMI_BACKEND_URL. */
  backend: (env: NodeJS.ProcessEnv) => Promise<PulumiBackend>;
  /** Are stdin and stdout a terminal? Pulumi can ask for confirmation only then (cmdutil.InteractiveTerminal). */
  interactive: boolean;
  out: Write;
  err: Write;
  /** `inherit`: the child has this terminal (pulumi's display and prompt); else its output is captured, and streamed to `onOutput`. */
  run: (cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; inherit?: boolean; onOutput?: Write }) => Promise<ChildResult>;
}

/** Runs a program in the repository root; never throws. */
export function runChild(cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; inherit?: boolean; onOutput?: Write }): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env: opts.env, stdio: opts.inherit ? "inherit" : ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d;
      opts.onOutput?.(d.toString());
    });
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d;
      opts.onOutput?.(d.toString());
    });
    child.on("error", (error: NodeJS.ErrnoException) => resolve({ code: -1, stdout, stderr, error }));
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
  });
}

export function defaultDeps(): UpDeps {
  return {
    env: process.env,
    backend: (env) => automationBackend(REPO_ROOT, env),
    interactive: !!process.stdin.isTTY && !!process.stdout.isTTY,
    out: toStdout,
    err: toStderr,
    run: runChild,
  };
}

/** A missing precondition: one line naming the stack, what is missing and the fix (exit 2). */
const missing = (stack: string, what: string) => new DockyardError(`stack ${stack}: ${what}`, EXIT.usage);

/** The last non-empty line a command printed, for a one-line message. */
const lastLine = (r: ChildResult) =>
  (r.error?.message ?? `${r.stderr}\n${r.stdout}`)
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .pop() ?? `exit code ${r.code}`;

/** Does this stack's secrets provider need PULUMI_CONFIG_PASSPHRASE on this backend? */
export function needsPassphrase(file: { secretsprovider?: unknown; encryptionsalt?: unknown }, backendUrl: string): boolean {
  const provider = file.secretsprovider;
  if (provider !== undefined && provider !== "passphrase" && provider !== "default") return false;
  // Without one named, a new stack gets its backend's default (`stack init` -> createSecretsManagerForNewStack):
  // the passphrase on a DIY backend (diyBackend.DefaultSecretManager), Pulumi Cloud's own on https (cloudBackend);
  // a salt already in the file is the passphrase whatever the backend.
  return provider === "passphrase" || file.encryptionsalt !== undefined || !/^https?:\/\//.test(backendUrl);
}

/** A Pulumi call through the seam; what Pulumi said becomes one line naming the stack (exit 1), not a stack trace. */
async function pulumiStep<T>(stack: string, backendUrl: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof PulumiCommandError || e instanceof StackLockedError || e instanceof StackMissingError) {
      throw new DockyardError(`stack ${stack}: pulumi failed: ${e.message.split("\n")[0]} (the pulumi CLI on PATH, else node_modules/.bin/pulumi; backend ${backendUrl})`, EXIT.failure);
    }
    throw e;
  }
}

export async function runUp(args: UpArgs, deps: UpDeps): Promise<number> {
  return reported(deps.err, async () => {
    const { stack } = args;
    // 1. The stack's files: stacks/Pulumi.<stack>.yaml and stacks/environment.yaml (ConfigError: exit 2).
    const spec = loadStackSpec(stack);
    const stackFile = readStackFile(stack);
    const local = spec.hostGroups.filter((g) => g.platform === "local");
    const allLocal = local.length === spec.hostGroups.length;
    const op = args.preview ? "preview" : "up";

    // Pulumi asks before it changes anything, and can only on a terminal (pkg/cmd/pulumi/operations/up.go:
    // without --yes, a non-interactive run fails with NoConfirmationInNonInteractiveError).
    if (!args.yes && !args.preview && !deps.interactive) {
      throw missing(stack, `no terminal to confirm the update on (stdin or stdout is not a terminal): run ${RUN} ${stack} --yes to deploy without asking, or --preview to see the changes only`);
    }

    // 2. Local hosts are containers on this machine's Docker Engine.
    if (local.length) {
      const info = await deps.run("docker", ["info", "--format", "{{.ServerVersion}}"], { env: deps.env });
      if (info.error?.code === "ENOENT") {
        throw missing(stack, `host group ${local[0].name} runs on the local platform, which needs Docker, but there is no docker command: install Docker Engine (or Docker Desktop) and check that \`docker info\` works`);
      }
      if (info.code !== 0) {
        throw missing(stack, `host group ${local[0].name} runs on the local platform, but the docker CLI reaches no Docker Engine (docker info: ${lastLine(info)}): start Docker, and check that \`docker info\` works without sudo`);
      }
    }

    // 3. Where the state lives.
    const env: NodeJS.ProcessEnv = { ...deps.env };
    let backendUrl = env.PULUMI_BACKEND_URL;
    let defaultDir: string | undefined;
    if (!backendUrl && allLocal) {
      defaultDir = path.join(env.HOME || os.homedir(), DEFAULT_STATE_DIR);
      backendUrl = env.PULUMI_BACKEND_URL = `file://${defaultDir}`;
    }

    // 4. The passphrase, when the stack's secrets use it. A logged-in backend is known after step 6; judged there.
    const passphraseSet = !!(env.PULUMI_CONFIG_PASSPHRASE || env.PULUMI_CONFIG_PASSPHRASE_FILE);
    const checkPassphrase = (url: string) => {
      if (passphraseSet || !needsPassphrase(stackFile.other ?? {}, url)) return;
      throw missing(
        stack,
        `its secrets are encrypted with a passphrase (stacks/Pulumi.${stack}.yaml names no secretsprovider) and neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE is set: export PULUMI_CONFIG_PASSPHRASE='<a passphrase you choose>' and keep it: every later up and destroy of ${stack} needs the same one`,
      );
    };
    if (backendUrl) checkPassphrase(backendUrl);

    // 5. Pulumi reaches every host with the key in your ssh-agent (README "Access to hosts").
    const agent = await deps.run("ssh-add", ["-L"], { env });
    if (agent.code !== 0) {
      const why = agent.error?.code === "ENOENT" ? "there is no ssh-add command (install OpenSSH's client)" : agent.code === 1 ? "your ssh-agent holds no key" : "no ssh-agent is reachable (SSH_AUTH_SOCK)";
      throw missing(stack, `${why}; Pulumi reaches every host with your agent's key (README "Access to hosts"): run eval "$(ssh-agent -s)" && ssh-add`);
    }

    const backend = await deps.backend(env);
    // 6. No backend named, aws hosts: the one `pulumi login` chose, if any (its secrets rule then applies).
    if (!backendUrl) {
      try {
        backendUrl = (await backend.whoAmI()).url ?? "the backend you are logged in to";
      } catch (e) {
        if (!(e instanceof PulumiCommandError)) throw e;
        throw missing(
          stack,
          `no backend for its state: PULUMI_BACKEND_URL is not set and \`pulumi whoami\` finds no login (it said: ${e.message}); its hosts run on aws, so its state belongs in the team's backend: set PULUMI_BACKEND_URL as README "State and secrets" says, or pulumi login`,
        );
      }
      checkPassphrase(backendUrl);
    }

    // Everything is there: now create what is needed.
    if (defaultDir) {
      fs.mkdirSync(defaultDir, { recursive: true });
      deps.err(`PULUMI_BACKEND_URL is not set: keeping ${stack}'s state in ${backendUrl} (every host is local). Set PULUMI_BACKEND_URL to keep it elsewhere.\n`);
    }
    if (local.length) {
      // The program finds the host image by its tag in this engine (components/local-host.ts hostImageTag):
      // it must exist before pulumi runs. Built once per recipe; a no-op when it is there.
      deps.err(`Building the local host image (components/local-host/build-image.sh; the first build takes a few minutes):\n`);
      const build = await deps.run("bash", [path.join(HOST_IMAGE_DIR, "build-image.sh")], { env, onOutput: deps.err });
      if (build.code !== 0) {
        throw new DockyardError(`stack ${stack}: building the local host image failed (${lastLine(build)}); fix the cause above and run ${RUN} ${stack} again`, EXIT.failure);
      }
    }

    const secretsProvider = typeof stackFile.other?.secretsprovider === "string" ? stackFile.other.secretsprovider : undefined;
    const { created } = await pulumiStep(stack, backendUrl, () => backend.selectOrCreate(stack, { secretsProvider }));
    deps.err(`${created ? "Created" : "Selected"} stack ${stack} in ${backendUrl}.\n`);

    // The policy pack gates every up and preview, here as in CI (README "Smoke test and policy"; --policy-pack,
    // pkg/cmd/pulumi/operations/up.go): a violation fails the preview the CLI runs before changing anything.
    const pulumiArgs = [op, "--stack", stack, "--policy-pack", policyPackDir(REPO_ROOT), ...(args.yes && !args.preview ? ["--yes"] : [])];
    const cli = pulumiCommand(REPO_ROOT, env);
    deps.err(`Running: pulumi ${pulumiArgs.join(" ")}\n`);
    const result = await deps.run(cli, pulumiArgs, { env, inherit: true });
    if (result.code !== 0) {
      const why = result.error ? result.error.message : `exit code ${result.code}`;
      throw new DockyardError(`stack ${stack}: pulumi ${op} did not complete (${why}; its output above says why, or that the update was declined); run ${RUN} ${stack}${args.preview ? " --preview" : ""} again once fixed`, EXIT.failure);
    }
    if (args.preview) {
      deps.out(`Preview of ${stack} done; nothing was changed. Deploy it: ${RUN} ${stack}\n`);
      return EXIT.ok;
    }
    const outputs = await pulumiStep(stack, backendUrl, () => backend.outputs(stack));
    deps.out([`Stack ${stack} is up (state: ${backendUrl}).`, ...accessLines(spec, allLocal ? "local" : "aws", outputs)].join("\n") + "\n");
    return EXIT.ok;
  });
}

export const upCommand: CommandModule<object, UpArgs> = {
  command: "up <stack>",
  describe: "Deploy one stack (pulumi up) after checking Docker, the backend, the passphrase and your ssh-agent",
  builder: (y) =>
    y
      .positional("stack", { type: "string", demandOption: true, describe: "The stack to deploy: a stacks/Pulumi.<stack>.yaml file (local, dev, test, prod, ...)" })
      .option("yes", { alias: "y", type: "boolean", default: false, describe: "Deploy without asking (Pulumi otherwise shows the changes and asks first; needed without a terminal)" })
      .option("preview", { type: "boolean", default: false, describe: "Only show what would change (pulumi preview); no resource is created or changed" })
      .example("$0 up local", "the whole environment on your Docker Engine, no cloud account: state in ~/.dockyard-state")
      .example("$0 up local --preview", "what `up local` would do, without doing it")
      .example("$0 up dev --yes", "dev on AWS (PULUMI_BACKEND_URL set, or `pulumi login`), without the question")
      .epilog(
        [
          "Checked before anything runs; a missing one is one line with its fix (exit 2), and nothing is created:",
          "  - the stack's files parse (stacks/Pulumi.<stack>.yaml, stacks/environment.yaml)",
          "  - hosts with platform: local: Docker is running (`docker info`)",
          "  - where the state lives: PULUMI_BACKEND_URL; if unset, ~/.dockyard-state when every host is local,",
          "    else the backend you are logged in to (`pulumi login`; README \"State and secrets\")",
          "  - PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) if the stack's secrets use a passphrase,",
          "    as local's do. Keep it: every later up and destroy of the stack needs the same one",
          "  - an ssh-agent holding your key (`ssh-add -L`): Pulumi reaches every host with it",
          "Then the local host image is built (minutes the first time, then reused), the stack is selected (created",
          "the first time), Pulumi shows the changes, checked by the policy pack (policy/), and asks (unless --yes),",
          "and you get an ssh command per host and",
          "a URL per published service.",
          "Exit codes: 0 done, 1 the image build or pulumi failed (or you answered no), 2 something above is missing.",
        ].join("\n"),
      ) as unknown as Argv<UpArgs>,
  handler: async (a) => {
    process.exitCode = await runUp(a, defaultDeps());
  },
};
