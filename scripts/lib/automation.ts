/**
 * The seam between `dockyard dev-server` and Pulumi: the few stack operations the command
 * needs (DevServerBackend), and the one implementation that performs them with Pulumi's
 * Automation API (`@pulumi/pulumi/automation`): a LocalWorkspace on the repository root, so
 * the project's own program (index.ts) and its `stackConfigDir: stacks` apply, and every
 * call is the `pulumi` CLI on PATH with the backend of PULUMI_BACKEND_URL (or the one
 * logged in to). Tests give the command a fake; test/scripts/dev-server-automation.test.ts
 * runs this adapter against a stand-in `pulumi` and checks the exact command lines.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PROJECT } from "../../stacks";
import { diyLocation, listStacksByKeys } from "./stack-keys";

/** One config value as `pulumi config --json` prints it (value is the JSON text of objectValue for an object). */
export interface ConfigJsonValue {
  value: string;
  objectValue?: unknown;
  secret: boolean;
}

/** Config key (`namespace:name`, or a path with `path`) -> value. */
export type ConfigValues = Record<string, { value: string; secret: boolean }>;

/** A stack as the backend lists it. */
export interface StackListing {
  /** The stack's short name (`dev-alice`), whatever form the backend lists it in. */
  name: string;
  /** ISO 8601 time of the last update, if any. */
  lastUpdate?: string;
  updateInProgress?: boolean;
  resourceCount?: number;
}

/** A resource of the stack's state (from `pulumi stack export`). */
export interface StateResource {
  urn: string;
  type: string;
  parent?: string;
  /** The provider's id of the resource (e.g. vol-..., i-...), once created. */
  id?: string;
  /** Its provider reference, `<provider urn>::<provider id>` (custom resources). */
  provider?: string;
  /** The custom resources it depends on (dependsOn and inputs alike), by URN. */
  dependencies?: string[];
}

/** The stack is locked by another update; the message is the backend's, naming the holder. */
export class StackLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackLockedError";
  }
}

/** The stack does not exist in the backend. */
export class StackMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackMissingError";
  }
}

/**
 * The stack has no update in its history, so `pulumi config refresh` has nothing to restore
 * ("getting latest configuration: no previous deployment": pkg/backend/diy/backend.go
 * GetLatestConfiguration, backenderr.ErrNoPreviousDeployment). Its secrets provider is still in
 * its state: stack init stores it there (pkg/cmd/pulumi/stack/io.go CreateStack's initialState,
 * persisted by pkg/backend/diy/backend.go CreateStack).
 */
export class NoDeploymentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoDeploymentError";
  }
}

/** A Pulumi command failed; `detail` is what it printed on stderr (its last lines say why). */
export class PulumiCommandError extends Error {
  constructor(
    message: string,
    public readonly detail: string,
  ) {
    super(message);
    this.name = "PulumiCommandError";
  }
}

/** Everything `dockyard dev-server` asks of Pulumi. Stack names are short (`dev-alice`). */
export interface DevServerBackend {
  /** Where stacks live, for messages: PULUMI_BACKEND_URL, or the logged-in backend. */
  readonly location: string;
  /** Selects the stack; creates it first (with this secrets provider; none: the backend's default) when missing. */
  selectOrCreate(stack: string, opts: { secretsProvider?: string }): Promise<{ created: boolean }>;
  /** Every config value of the stack with secrets decrypted (`pulumi config --show-secrets --json`). */
  getAllConfig(stack: string): Promise<Record<string, ConfigJsonValue>>;
  /** Sets whole values as `pulumi config --json` prints them (objects stay objects; `config set-all --json`). */
  setConfigJson(stack: string, values: Record<string, ConfigJsonValue>): Promise<void>;
  /** Sets values by path (`a:b.c.d`), each plaintext or secret (`config set-all --path`). */
  setConfigPaths(stack: string, values: ConfigValues): Promise<void>;
  /** Removes top-level keys. */
  removeConfig(stack: string, keys: string[]): Promise<void>;
  /** Rewrites the local stack file from the last deployment's config and secrets provider (`config refresh --force`). Throws NoDeploymentError when the stack was never deployed. */
  refreshConfig(stack: string): Promise<void>;
  getTags(stack: string): Promise<Record<string, string>>;
  setTags(stack: string, tags: Record<string, string>): Promise<void>;
  /**
   * The stacks whose names start with `prefix` (`dev-`). On a DIY backend (file://, s3://)
   * from the backend's keys under `.pulumi/stacks/dockyard/<prefix>` only (scripts/lib/stack-keys.ts):
   * `pulumi stack ls` would read every stack's checkpoint, prod's included. Elsewhere (Pulumi
   * Cloud) `pulumi stack ls`, filtered.
   */
  listStacks(prefix: string): Promise<StackListing[]>;
  /** `pulumi up` with the policy pack (policyPackDir), replacing these URNs; progress goes to onOutput as it comes. Throws StackLockedError on a lock. */
  up(stack: string, opts: { replace?: string[]; onOutput: (text: string) => void }): Promise<void>;
  /** The stack outputs, plain values. */
  outputs(stack: string): Promise<Record<string, unknown>>;
  /** The resources of the stack's current state. */
  resources(stack: string): Promise<StateResource[]>;
  /** `pulumi destroy`. Throws StackLockedError on a lock. */
  destroy(stack: string, opts: { onOutput: (text: string) => void }): Promise<void>;
  /** Removes the stack (its history, tags and local stack file) from the backend. */
  remove(stack: string): Promise<void>;
}

/** The short name of a stack as `pulumi stack ls` prints it (`org/project/name` on some backends). */
export function shortStackName(listed: string): string {
  return listed.split("/").pop() ?? listed;
}

/** Who `pulumi whoami --json` says is logged in, and to which backend (its URL). */
export interface WhoAmI {
  user: string;
  url?: string;
}

/** The backend `dockyard up` uses: dev-server's operations, and who is logged in. */
export interface PulumiBackend extends DevServerBackend {
  /** `pulumi whoami --json`; throws PulumiCommandError when nobody is logged in (and no PULUMI_BACKEND_URL). */
  whoAmI(): Promise<WhoAmI>;
}

/** Is there a `pulumi` on this PATH? */
function pulumiOnPath(env: NodeJS.ProcessEnv): boolean {
  return (env.PATH ?? "").split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, "pulumi")));
}

/** The pulumi CLI to run: the `pulumi` on PATH, else the repository's own (the `pulumi` dev dependency in node_modules/.bin). */
export function pulumiCommand(workDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return pulumiOnPath(env) ? "pulumi" : path.join(workDir, "node_modules", ".bin", "pulumi");
}

/**
 * The policy pack (policy/PulumiPolicy.yaml, whose checks are policy/checks.ts) that gates every
 * up: CI's (`--policy-pack policy`), `npm run up`'s, and the adapter's (UpOptions.policyPacks,
 * passed as `--policy-pack` by automation/stack.js Stack.up).
 */
export function policyPackDir(workDir: string): string {
  return path.join(workDir, "policy");
}

/** The variables of `env` that say where state is and how secrets are decrypted, handed to every Pulumi call. */
const BACKEND_VARS = ["PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"] as const;

/**
 * Set on every Pulumi call: a stack file without a secrets provider (one `config set-all`
 * started on a machine that never had the file) takes the provider recorded in the stack's
 * state, and Pulumi writes it into the file, instead of the backend's default, a passphrase on
 * a DIY backend (pkg/cmd/pulumi/stack/secrets.go SecretsManagerLoader.GetSecretsManager with
 * FallbackToState, read from PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER by
 * NewStackSecretsManagerLoaderFromEnv; off by default; `destroy` always falls back).
 */
export const FALLBACK_TO_STATE = { PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER: "true" } as const;

/**
 * The real backend: Pulumi's Automation API on `workDir` (the repository root). The CLI is
 * the `pulumi` on PATH, else the repository's own (the `pulumi` dev dependency in
 * node_modules/.bin, which npm scripts put on PATH anyway). The backend and passphrase
 * variables of `env` are passed to every call (the workspace's envVars, added to
 * process.env: automation/localWorkspace.js runPulumiCmd).
 */
export async function automationBackend(workDir: string, env: NodeJS.ProcessEnv = process.env): Promise<PulumiBackend> {
  // Loaded here, not at the top: `--help` and input errors need no Pulumi runtime.
  const auto = await import("@pulumi/pulumi/automation");
  type Workspace = Awaited<ReturnType<typeof auto.LocalWorkspace.create>>;
  if (!pulumiOnPath(env)) process.env.PATH = `${path.join(workDir, "node_modules", ".bin")}${path.delimiter}${process.env.PATH ?? ""}`;
  const envVars = { ...Object.fromEntries(BACKEND_VARS.flatMap((k) => (env[k] ? [[k, env[k] as string]] : []))), ...FALLBACK_TO_STATE };
  // The CLI runs `pulumi version` once per workspace; one workspace per secrets provider asked for.
  const workspaces = new Map<string, Promise<Workspace>>();
  const workspace = (secretsProvider?: string) => {
    const key = secretsProvider ?? "";
    if (!workspaces.has(key)) workspaces.set(key, auto.LocalWorkspace.create({ workDir, envVars, ...(secretsProvider ? { secretsProvider } : {}) }));
    return workspaces.get(key)!;
  };
  /** Pulumi's errors as ours: a lock, a missing stack, or the command's own stderr. */
  const mapped = (e: unknown): Error => {
    if (e instanceof auto.ConcurrentUpdateError) return new StackLockedError(stderrOf(e));
    if (e instanceof auto.StackNotFoundError) return new StackMissingError(stderrOf(e));
    if (e instanceof auto.CommandError) return new PulumiCommandError(lastLine(stderrOf(e)) || e.message, stderrOf(e));
    return e as Error;
  };
  const call = async <T>(f: (ws: Workspace) => Promise<T>, secretsProvider?: string): Promise<T> => {
    try {
      return await f(await workspace(secretsProvider));
    } catch (e) {
      throw mapped(e);
    }
  };
  /** A stack object for up/destroy (`pulumi stack select` first, as the Automation API does). */
  const stackOf = (name: string) => call((ws) => auto.Stack.select(name, ws));
  return {
    location: env.PULUMI_BACKEND_URL ? `backend ${env.PULUMI_BACKEND_URL}` : "the backend you are logged in to (`pulumi whoami -v`)",
    async selectOrCreate(stack, opts) {
      try {
        await call((ws) => ws.selectStack(stack));
        return { created: false };
      } catch (e) {
        if (!(e instanceof StackMissingError)) throw e;
      }
      await call((ws) => ws.createStack(stack), opts.secretsProvider);
      return { created: true };
    },
    getAllConfig: (stack) => call(async (ws) => (await ws.getAllConfig(stack)) as unknown as Record<string, ConfigJsonValue>),
    setConfigJson: (stack, values) => call((ws) => ws.setAllConfigJson(stack, JSON.stringify(values))),
    setConfigPaths: (stack, values) => call((ws) => ws.setAllConfig(stack, values, true)),
    removeConfig: (stack, keys) => call((ws) => ws.removeAllConfig(stack, keys)),
    async refreshConfig(stack) {
      try {
        await call(async (ws) => void (await ws.refreshConfig(stack)));
      } catch (e) {
        if (e instanceof PulumiCommandError && /no previous deployment/.test(e.detail)) throw new NoDeploymentError(e.detail);
        throw e;
      }
    },
    getTags: (stack) => call((ws) => ws.listTags(stack)),
    async setTags(stack, tags) {
      // One `pulumi stack tag set` per tag: the CLI has no command that sets several.
      for (const [k, v] of Object.entries(tags)) await call((ws) => ws.setTag(stack, k, v));
    },
    async listStacks(prefix) {
      // The backend: PULUMI_BACKEND_URL, else the one logged in to (`pulumi whoami --json` names its URL).
      const url = env.PULUMI_BACKEND_URL ?? (await call((ws) => ws.whoAmI())).url;
      const diy = url ? diyLocation(url) : undefined;
      if (diy) return listStacksByKeys(diy, PROJECT, prefix);
      return call(async (ws) =>
        (await ws.listStacks())
          .map((s) => ({
            name: shortStackName(s.name),
            ...(s.lastUpdate ? { lastUpdate: s.lastUpdate } : {}),
            ...(s.updateInProgress !== undefined ? { updateInProgress: s.updateInProgress } : {}),
            ...(s.resourceCount !== undefined ? { resourceCount: s.resourceCount } : {}),
          }))
          .filter((s) => s.name.startsWith(prefix)),
      );
    },
    async up(stack, opts) {
      const s = await stackOf(stack);
      try {
        await s.up({ onOutput: opts.onOutput, policyPacks: [policyPackDir(workDir)], ...(opts.replace?.length ? { replace: opts.replace } : {}) });
      } catch (e) {
        throw mapped(e);
      }
    },
    async outputs(stack) {
      const outs = await call((ws) => ws.stackOutputs(stack));
      return Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, v.value]));
    },
    async resources(stack) {
      const d = await call((ws) => ws.exportStack(stack));
      const list = (d.deployment?.resources ?? []) as Array<Record<string, unknown>>;
      return list.map((r) => ({
        urn: String(r.urn),
        type: String(r.type),
        ...(typeof r.parent === "string" && r.parent ? { parent: r.parent } : {}),
        ...(typeof r.id === "string" && r.id ? { id: r.id } : {}),
        ...(typeof r.provider === "string" && r.provider ? { provider: r.provider } : {}),
        ...(Array.isArray(r.dependencies) && r.dependencies.length ? { dependencies: r.dependencies.map(String) } : {}),
      }));
    },
    async destroy(stack, opts) {
      const s = await stackOf(stack);
      try {
        await s.destroy({ onOutput: opts.onOutput });
      } catch (e) {
        throw mapped(e);
      }
    },
    remove: (stack) => call((ws) => ws.removeStack(stack)),
    // `pulumi whoami --json` (CLI >= 3.58; automation/localWorkspace.js whoAmI): user and backend URL.
    whoAmI: () =>
      call(async (ws) => {
        const w = await ws.whoAmI();
        return { user: w.user, ...(w.url ? { url: w.url } : {}) };
      }),
  };
}

function stderrOf(e: unknown): string {
  const r = (e as { commandResult?: { stderr?: string } }).commandResult;
  return (r?.stderr ?? (e as Error).message ?? String(e)).trim();
}

function lastLine(text: string): string {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).pop() ?? "";
}
