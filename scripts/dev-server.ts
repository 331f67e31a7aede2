/**
 * `dockyard dev-server up|recreate|destroy|list|reap`: a developer's own copy of an
 * environment (stack `dev-<owner>`), identical to `--from` (dev) by construction: the same
 * program and environment definition, the same knobs copied through Pulumi's config calls,
 * on AWS or on the local Docker Engine (`--platform local`), with an expiry that a scheduled
 * `reap` enforces (README "Dev servers on demand"). Pulumi is reached through one small seam
 * (scripts/lib/automation.ts), so this file is tested with a fake of it.
 *
 * Exit codes: 0 ok, 1 a Pulumi operation failed (what exists and the retry command are
 * printed), 2 bad usage or input (owner, --ttl, --from, passphrase missing, no such server).
 */
import * as fs from "node:fs";
import type { Argv, CommandModule } from "yargs";
import { ConfigError, HOST_NAME_MAX_LENGTH, HOST_PLATFORMS, STACKS_DIR, hostNameFor, isSecureValue, loadStackSpec, readStackFile, stackFileLabel, stackFilePath, stackNameProblem, type EnvironmentSpec } from "../stacks";
import { requiredSecretsProvider, secretsProviderProblems, type HostPlatform } from "../stacks/secrets-provider";
import {
  NoDeploymentError,
  PulumiCommandError,
  StackLockedError,
  StackMissingError,
  automationBackend,
  type ConfigJsonValue,
  type ConfigValues,
  type DevServerBackend,
  type StateResource,
} from "./lib/automation";
import { StateListError } from "./lib/stack-keys";
import { accessLines } from "./lib/access";
import { DockyardError, EXIT, reported, toStderr, toStdout, type Write } from "./lib/cli";
import { REPO_ROOT } from "./lib/render";

/** Stack tags a dev server carries (Pulumi stack tags; the DIY backend stores them in `<stack>.pulumi-tags`). */
export const TAG = {
  owner: "dockyard:owner",
  platform: "dockyard:platform",
  from: "dockyard:from",
  created: "dockyard:created",
  expires: "dockyard:expires",
  ttl: "dockyard:ttl",
} as const;

/** --ttl bounds: long enough for an `up` to finish, short enough that a forgotten server is reaped within a month. */
export const TTL_MIN_MS = 10 * 60_000;
export const TTL_MAX_MS = 30 * 86_400_000;
/** --lock-wait at most: a stack locked for longer is a stuck update, not a busy one. */
export const LOCK_WAIT_MAX_MS = 2 * 3_600_000;
/** How often a locked stack is tried again. */
export const LOCK_POLL_MS = 15_000;

/** What the command needs from outside: Pulumi (created only once the input is valid), time, output. */
export interface DevServerDeps {
  backend: () => Promise<DevServerBackend>;
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  out: Write;
  err: Write;
  /** Pulumi's stackConfigDir, where Pulumi.<stack>.yaml files live (default stacks/). */
  stacksDir?: string;
  /** The environment definition (default stacks/environment.yaml; tests use their own). */
  environmentFile?: string;
  env: NodeJS.ProcessEnv;
}

export function defaultDeps(): DevServerDeps {
  return {
    backend: () => automationBackend(REPO_ROOT),
    now: () => new Date(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    out: toStdout,
    err: toStderr,
    env: process.env,
  };
}

// ---------------------------------------------------------------------------------
// Input: owner, durations
// ---------------------------------------------------------------------------------

/** Every dev server's stack name starts with it; listing asks the backend for these stacks only (a dev-server role may read no other state). */
export const DEV_PREFIX = "dev-";
export const devStackName = (owner: string) => `${DEV_PREFIX}${owner}`;

/** What is wrong with an owner name (the whole message), or undefined. Length is checked against the hosts (hostNameProblem). */
export function ownerProblem(owner: string): string | undefined {
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(owner)) {
    return `--owner ${JSON.stringify(owner)}: not allowed; allowed: lowercase letters a-z, digits and '-', starting and ending with a letter or digit (it becomes the stack dev-<owner> and begins every host name, a DNS label), e.g. alice or bob-2`;
  }
  const stackProblem = stackNameProblem(devStackName(owner));
  return stackProblem ? `--owner ${JSON.stringify(owner)}: ${stackProblem}` : undefined;
}

/** The owner must leave every host name `dev-<owner>-<group>-<n>` within HOST_NAME_MAX_LENGTH. */
export function hostNameProblem(owner: string, groups: readonly { name: string; count: number }[]): string | undefined {
  const stack = devStackName(owner);
  const names = groups.map((g) => hostNameFor(stack, g.name, Math.max(g.count, 1)));
  const longest = names.reduce((a, b) => (b.length > a.length ? b : a), "");
  if (longest.length <= HOST_NAME_MAX_LENGTH) return undefined;
  const room = owner.length - (longest.length - HOST_NAME_MAX_LENGTH);
  return `--owner ${JSON.stringify(owner)}: too long; host name "${longest}" would have ${longest.length} characters, at most ${HOST_NAME_MAX_LENGTH} are allowed (each host's IAM role name must fit IAM's 64): use an owner of at most ${Math.max(room, 0)} characters`;
}

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration like 30m, 8h, 2d (and 90s where `seconds`) within bounds; errors name the flag. */
export function parseDuration(text: string, flag: string, bounds: { min: number; max: number; seconds?: boolean }): number {
  const units = bounds.seconds ? "s, m, h or d" : "m, h or d";
  const m = /^(\d{1,5})([smhd])$/.exec(text.trim());
  const ms = m && (bounds.seconds || m[2] !== "s") ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
  if (!(ms >= bounds.min && ms <= bounds.max)) {
    throw new DockyardError(`${flag} ${JSON.stringify(text)}: not allowed; allowed: a whole number and a unit (${units}), e.g. 30m, 8h or 2d, from ${formatDuration(bounds.min)} to ${formatDuration(bounds.max)}`, EXIT.usage);
  }
  return ms;
}

/** A duration in the largest two units: 2d 3h, 45m, 30s. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  const parts: string[] = [];
  let rest = Math.floor(abs / 1000);
  for (const [unit, secs] of [["d", 86_400], ["h", 3_600], ["m", 60], ["s", 1]] as const) {
    const n = Math.floor(rest / secs);
    rest -= n * secs;
    if (n > 0 || (parts.length === 0 && unit === "s")) parts.push(`${n}${unit}`);
  }
  return parts.slice(0, 2).join(" ");
}

/** ISO 8601, to the second. */
export const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

// ---------------------------------------------------------------------------------
// Copying the knobs of --from
// ---------------------------------------------------------------------------------

/**
 * A config path segment as Pulumi's `--path` syntax reads it: `.name`, or `["name"]` for one
 * with '.', '[', ']' or '"' (a bare name runs to the next '.' or '['; in quotes only `\"`
 * is an escape: sdk/go/common/resource/properties_path.go parsePropertyPath).
 */
function pathSegment(s: string): string {
  return s !== "" && !/[.[\]"]/.test(s) ? `.${s}` : `["${s.replace(/"/g, '\\"')}"]`;
}
export const configPath = (key: string, segments: readonly string[]) => key + segments.map(pathSegment).join("");

/** Where the secure values (`{ secure: ... }`) inside a value are, as key paths. */
function securePaths(v: unknown, at: string[] = []): string[][] {
  if (isSecureValue(v)) return [at];
  if (v === null || typeof v !== "object") return [];
  return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => securePaths(x, [...at, k]));
}

/** A value with its secure leaves left out. */
function withoutSecure(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => !isSecureValue(x)).map(withoutSecure);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => !isSecureValue(x)).map(([k, x]) => [k, withoutSecure(x)]));
}

function at(v: unknown, segments: readonly string[]): unknown {
  return segments.reduce<unknown>((o, s) => (o !== null && typeof o === "object" ? (o as Record<string, unknown>)[s] : undefined), v);
}

/** What to set on the new stack so its config is the from-stack's file, and the secure values' places. */
export interface ConfigCopy {
  /** Plain values, whole (`config set-all --json`): objects stay objects, numbers stay numbers. */
  json: Record<string, ConfigJsonValue>;
  /** The secure values by path, each set as a secret (`config set-all --path --secret`). */
  secrets: { key: string; segments: string[] }[];
}

/** Splits the from-stack file's `config:` into plain values and secure values (read decrypted later). */
export function planConfigCopy(config: Record<string, unknown>): ConfigCopy {
  const json: Record<string, ConfigJsonValue> = {};
  const secrets: ConfigCopy["secrets"] = [];
  for (const [key, value] of Object.entries(config)) {
    const secure = securePaths(value);
    secrets.push(...secure.map((segments) => ({ key, segments })));
    if (secure.some((s) => s.length === 0)) continue; // the whole value is secure
    const plain = withoutSecure(value);
    json[key] = plain !== null && typeof plain === "object" ? { value: JSON.stringify(plain), objectValue: plain, secret: false } : { value: String(plain), secret: false };
  }
  return { json, secrets };
}

/** The decrypted secure values, from the from-stack's `pulumi config --show-secrets --json`. */
export function decryptedSecrets(copy: ConfigCopy, decrypted: Record<string, ConfigJsonValue>, from: string): ConfigValues {
  const values: ConfigValues = {};
  for (const { key, segments } of copy.secrets) {
    const entry = decrypted[key];
    let whole: unknown = entry?.objectValue ?? entry?.value;
    if (segments.length > 0 && typeof whole === "string") {
      try {
        whole = JSON.parse(whole);
      } catch {
        whole = undefined;
      }
    }
    const v = segments.length === 0 ? entry?.value : at(whole, segments);
    if (typeof v !== "string") throw new DockyardError(`--from ${from}: ${configPath(key, segments)}: pulumi did not return its decrypted value; check that you may decrypt ${from}'s secrets`, EXIT.failure);
    values[configPath(key, segments)] = { value: v, secret: true };
  }
  return values;
}

/** `dockyard:hostGroups.<group>.platform` for each group whose platform differs from the one asked for. */
export function platformSettings(hostGroups: unknown, platform: HostPlatform): ConfigValues {
  const groups = hostGroups !== null && typeof hostGroups === "object" ? (hostGroups as Record<string, Record<string, unknown>>) : {};
  const values: ConfigValues = {};
  for (const [g, knobs] of Object.entries(groups)) {
    if ((knobs?.platform ?? "aws") !== platform) values[configPath("dockyard:hostGroups", [g, "platform"])] = { value: platform, secret: false };
  }
  return values;
}

// ---------------------------------------------------------------------------------
// Recreate, reap, reporting
// ---------------------------------------------------------------------------------

/** Host components and what of them is the machine (replaced by recreate) and the data (kept unless --wipe-data). */
export const HOST_PARTS = {
  "dockyard:index:DockerHost": { machine: "aws:ec2/instance:Instance", data: "aws:ebs/volume:Volume" },
  "dockyard:index:LocalHost": { machine: "docker:index/container:Container", data: "docker:index/volume:Volume" },
} as const;

/** The host component (DockerHost/LocalHost) a resource is under, nearest ancestor first. */
function hostComponentOf(byUrn: ReadonlyMap<string, StateResource>, r: StateResource): StateResource | undefined {
  for (let p = r.parent ? byUrn.get(r.parent) : undefined; p; p = p.parent ? byUrn.get(p.parent) : undefined) {
    if (p.type in HOST_PARTS) return p;
  }
  return undefined;
}

/** Each resource that is a host's machine or data volume (under its nearest DockerHost/LocalHost ancestor), with which part it is. */
interface HostPart {
  resource: StateResource;
  part: "machine" | "data";
}
function hostParts(resources: readonly StateResource[]): HostPart[] {
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  return resources.flatMap((resource): HostPart[] => {
    const host = hostComponentOf(byUrn, resource);
    if (!host) return [];
    const parts = HOST_PARTS[host.type as keyof typeof HOST_PARTS];
    return resource.type === parts.machine ? [{ resource, part: "machine" }] : resource.type === parts.data ? [{ resource, part: "data" }] : [];
  });
}

/**
 * Not replaced with the engines: a RemoteImage's delete removes its image by name (kreuzwerker
 * resource_docker_image_funcs.go removeImage: ImageRemove, not forced) from the engine its
 * provider reaches now, the new one, where the replacement containers use that very image, and
 * dockerd refuses (moby daemon/images/image_delete.go: "unable to remove repository reference
 * ... (must force)"), failing the up. Its state (name, digest) stays true: the replaced pull
 * command (its dependency) puts the image into the new engine before any container is created.
 */
const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";

/**
 * What lives in a host's Docker Engine or on its disks, found in the state: every
 * docker:index/* resource whose provider's dependencies lead to a host (the fleet's per-host
 * and swarm providers depend on the host's DockerEngine, whose readiness depends on the
 * machine; the deployer's own engine provider, on which a LocalHost's container and volume
 * live, depends on nothing), and every command:local:Command outside the host components whose
 * dependencies lead to a host (each runs there over the host's connection: pulls, the proxy's
 * config file, PIDs limits, serving gates, the engine readiness, swarm init/join). A resource
 * "leads to a host" if it is under a DockerHost/LocalHost, or one of its `dependencies` does.
 * The engine's data-root is on the data volume: a wiped volume is an empty engine, but Pulumi's
 * state still has all of these with no diff, and `up` does not refresh (automation/stack.js
 * runs `up --yes --skip-preview`), so only --replace brings them back.
 */
export function engineResources(resources: readonly StateResource[]): StateResource[] {
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  const leads = new Map<string, boolean>();
  const leadsToHost = (urn: string): boolean => {
    const known = leads.get(urn);
    if (known !== undefined) return known;
    leads.set(urn, false); // a cycle leads nowhere new
    const r = byUrn.get(urn);
    const v = r !== undefined && (hostComponentOf(byUrn, r) !== undefined || (r.dependencies ?? []).some(leadsToHost));
    leads.set(urn, v);
    return v;
  };
  // A provider reference is `<provider urn>::<provider id>`.
  const providerOf = (r: StateResource) => (r.provider ? byUrn.get(r.provider.slice(0, r.provider.lastIndexOf("::"))) : undefined);
  return resources.filter((r) => {
    if (hostComponentOf(byUrn, r)) return false;
    if (r.type === "command:local:Command") return leadsToHost(r.urn);
    if (!r.type.startsWith("docker:index/") || r.type === REMOTE_IMAGE) return false;
    const provider = providerOf(r);
    return provider?.type === "pulumi:providers:docker" && leadsToHost(provider.urn);
  });
}

/**
 * The URNs `recreate` replaces, in state order: each host's machine; with wipeData also its
 * data volume and everything that lived in its engine or on its disks (engineResources), so
 * one `up` rebuilds the server on empty volumes.
 */
export function replaceUrns(resources: readonly StateResource[], wipeData: boolean): string[] {
  const replace = new Set(
    [...hostParts(resources).filter((h) => h.part === "machine" || wipeData).map((h) => h.resource), ...(wipeData ? engineResources(resources) : [])].map((r) => r.urn),
  );
  return resources.map((r) => r.urn).filter((u) => replace.has(u));
}

/**
 * The Docker volume names of the LocalHost data volumes. Such a volume cannot be wiped by a
 * replacement: its name is fixed (`<host>-data`, components/local-host.ts) and it is
 * retainOnDelete, and dockerd answers VolumeCreate of an existing name with that volume (tried
 * on this machine: `docker volume create` twice gives one volume, one CreatedAt), so the "new"
 * volume would be the old one, data included.
 */
function localDataVolumes(resources: readonly StateResource[]): string[] {
  return hostParts(resources)
    .filter((h) => h.part === "data" && h.resource.type === HOST_PARTS["dockyard:index:LocalHost"].data)
    .map((h) => h.resource.id ?? h.resource.urn.split("::").pop()!);
}

/**
 * The hosts' data volumes a destroy leaves in the account (or on the Docker Engine): they are
 * retainOnDelete, so Pulumi drops them from the state and never deletes them; a later up of the
 * same owner makes new, empty EBS volumes, but on local Docker hands it the kept volume of the
 * same name, data included (localDataVolumes). Named with their id so someone can delete them.
 */
export function retainedDataVolumes(resources: readonly StateResource[]): string[] {
  return hostParts(resources)
    .filter((h) => h.part === "data")
    .map(({ resource: r }) => `data volume ${r.id ?? "(no id: never created)"} (${r.urn.split("::").pop()})`);
}

/** A dev server as `list` shows it. */
export interface DevServerInfo {
  stack: string;
  owner?: string;
  platform?: string;
  from?: string;
  created?: string;
  expires?: string;
  /** Milliseconds since created. */
  ageMs?: number;
  /** Milliseconds until expiry (negative: expired). */
  expiresInMs?: number;
  lastUpdate?: string;
  updateInProgress?: boolean;
  resourceCount?: number;
}

const timeOf = (s: string | undefined) => (s && !Number.isNaN(Date.parse(s)) ? Date.parse(s) : undefined);

export function serverInfo(stack: string, tags: Record<string, string>, now: Date, listing: { lastUpdate?: string; updateInProgress?: boolean; resourceCount?: number } = {}): DevServerInfo {
  const created = timeOf(tags[TAG.created]);
  const expires = timeOf(tags[TAG.expires]);
  return {
    stack,
    ...(tags[TAG.owner] ? { owner: tags[TAG.owner] } : {}),
    ...(tags[TAG.platform] ? { platform: tags[TAG.platform] } : {}),
    ...(tags[TAG.from] ? { from: tags[TAG.from] } : {}),
    ...(tags[TAG.created] ? { created: tags[TAG.created] } : {}),
    ...(tags[TAG.expires] ? { expires: tags[TAG.expires] } : {}),
    ...(created !== undefined ? { ageMs: now.getTime() - created } : {}),
    ...(expires !== undefined ? { expiresInMs: expires - now.getTime() } : {}),
    ...listing,
  };
}

/** Which servers `reap` destroys: those whose dockyard:expires has passed. Servers without a readable expiry are kept (and named). */
export function reapSelection(servers: readonly DevServerInfo[]): { expired: DevServerInfo[]; noExpiry: DevServerInfo[] } {
  return {
    expired: servers.filter((s) => s.expiresInMs !== undefined && s.expiresInMs <= 0),
    noExpiry: servers.filter((s) => s.expiresInMs === undefined),
  };
}

/** One line per resource of a stack (type and name), providers and the stack itself left out. */
export function describeResources(resources: readonly StateResource[], max = 40): string[] {
  const shown = resources.filter((r) => r.type !== "pulumi:pulumi:Stack" && !r.type.startsWith("pulumi:providers:"));
  const lines = shown.slice(0, max).map((r) => `  ${r.type}  ${r.urn.split("::").pop()}`);
  if (shown.length > max) lines.push(`  ... and ${shown.length - max} more`);
  return lines.length ? lines : ["  (nothing)"];
}


// ---------------------------------------------------------------------------------
// The commands
// ---------------------------------------------------------------------------------

const RUN = "npm run dev-server --";

/** Runs a Pulumi operation; while the stack is locked by another update, waits (bounded) and says who holds it. */
export async function withLockWait<T>(stack: string, waitMs: number, deps: DevServerDeps, run: () => Promise<T>): Promise<T> {
  const deadline = deps.now().getTime() + waitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (e) {
      if (!(e instanceof StackLockedError)) throw e;
      const holders = e.message.split("\n").filter((l) => /created by/.test(l)).map((l) => `  ${l.trim()}`);
      const who = holders.length ? holders.join("\n") : `  ${e.message.trim()}`;
      const left = deadline - deps.now().getTime();
      if (left <= 0) {
        throw new DockyardError(
          `stack ${stack} is still locked by another update after waiting ${formatDuration(waitMs)} (--lock-wait):\n${who}\n` +
            `If nothing runs there any more (a killed process), remove its lock: npx pulumi cancel --stack ${stack} --yes`,
          EXIT.failure,
        );
      }
      if (attempt === 1) deps.err(`Stack ${stack} is locked by another update; waiting up to ${formatDuration(left)} (--lock-wait), trying again every ${formatDuration(LOCK_POLL_MS)}:\n${who}\n`);
      else deps.err(`  still locked; ${formatDuration(left)} left\n`);
      await deps.sleep(Math.min(LOCK_POLL_MS, left));
    }
  }
}

/**
 * Runs a subcommand with the CLI's error reporting; a Pulumi failure that no step turned into
 * its own message is one line naming what Pulumi said (exit 1), not a stack trace.
 */
function reportedPulumi(deps: DevServerDeps, body: () => Promise<number>): Promise<number> {
  return reported(deps.err, async () => {
    try {
      return await body();
    } catch (e) {
      if (e instanceof PulumiCommandError || e instanceof StackLockedError || e instanceof StackMissingError) {
        throw new DockyardError(`pulumi failed: ${e.message} (the pulumi CLI on PATH, else node_modules/.bin/pulumi; backend: ${deps.env.PULUMI_BACKEND_URL ?? "the one you are logged in to"})`, EXIT.failure);
      }
      if (e instanceof StateListError) throw new DockyardError(`listing the dev-* stacks failed: ${e.message} (backend: ${deps.env.PULUMI_BACKEND_URL ?? "the one you are logged in to"})`, EXIT.failure);
      throw e;
    }
  });
}

/** Progress of a Pulumi operation, as it comes, on stderr (stdout keeps the result). */
const progress = (deps: DevServerDeps) => (text: string) => deps.err(text);

function validOwner(owner: string): string {
  const problem = ownerProblem(owner);
  if (problem) throw new DockyardError(problem, EXIT.usage);
  return devStackName(owner);
}

/** Is this backend one where the passphrase provider needs PULUMI_CONFIG_PASSPHRASE (DIY: file://, s3://, ...)? */
function needsPassphrase(env: NodeJS.ProcessEnv): boolean {
  const url = env.PULUMI_BACKEND_URL;
  return !!url && !/^https?:\/\//.test(url) && !env.PULUMI_CONFIG_PASSPHRASE && !env.PULUMI_CONFIG_PASSPHRASE_FILE;
}

/** The stack exists (else exit 2 naming the dev servers there). */
async function requireServer(backend: DevServerBackend, stack: string, owner: string): Promise<void> {
  const servers = (await backend.listStacks(DEV_PREFIX)).map((s) => s.name);
  if (servers.includes(stack)) return;
  throw new DockyardError(`--owner ${owner}: no dev server ${stack} in ${backend.location}; dev servers there: ${servers.join(", ") || "(none)"} (create one with: ${RUN} up --owner ${owner})`, EXIT.usage);
}

/**
 * A stack file made elsewhere (CI, another laptop) is rebuilt from the last deployment before
 * Pulumi runs: without it, a new file names no secrets provider and Pulumi would take the
 * backend's default (a passphrase on a DIY backend). A stack never deployed has no deployment
 * to restore from; the adapter's FALLBACK_TO_STATE makes Pulumi take the provider its state records.
 */
async function ensureStackFile(backend: DevServerBackend, stack: string, deps: DevServerDeps): Promise<void> {
  if (fs.existsSync(stackFilePath(stack, deps.stacksDir ?? STACKS_DIR))) return;
  deps.err(`No stacks/Pulumi.${stack}.yaml here: restoring it from the last deployment (pulumi config refresh).\n`);
  try {
    await backend.refreshConfig(stack);
  } catch (e) {
    if (!(e instanceof NoDeploymentError)) throw e;
    deps.err(`${stack} was never deployed: no stack file to restore; Pulumi takes the secrets provider its stack init recorded in the state.\n`);
  }
}

/**
 * An existing server's stack file must name the secrets provider its platform needs after this
 * up: on aws dev's KMS key, which reap (CI, no passphrase) decrypts with; a passphrase only on
 * local (stacks/secrets-provider.ts). Else exit 2 with the command that moves it, nothing changed.
 */
function requireSecretsProvider(stack: string, platform: HostPlatform, region: string, deps: DevServerDeps): void {
  const dir = deps.stacksDir ?? STACKS_DIR;
  if (!fs.existsSync(stackFilePath(stack, dir))) return;
  const problems = secretsProviderProblems(stack, stackFileLabel(stackFilePath(stack, dir)), region, readStackFile(stack, dir).other ?? {}, platform);
  if (problems.length === 0) return;
  const want = requiredSecretsProvider(stack, region);
  throw new DockyardError(
    [
      `${stack} would run on ${platform} with secrets the scheduled reap cannot decrypt:`,
      ...problems.map((p) => `  - ${p}`),
      `Move its secrets to the key first (with the passphrase it has now in PULUMI_CONFIG_PASSPHRASE): npx pulumi stack change-secrets-provider --stack ${stack} "${want}"; then run up again.`,
    ].join("\n"),
    EXIT.usage,
  );
}

/** A failed `up`: what exists now and the exact command to retry (exit 1). */
async function failedUp(backend: DevServerBackend, stack: string, e: unknown, retry: string): Promise<never> {
  if (e instanceof DockyardError) throw e;
  const why = e instanceof PulumiCommandError ? e.message : e instanceof Error ? e.message : String(e);
  let exists: string[];
  try {
    const resources = await backend.resources(stack);
    exists = [`What exists in ${stack} now (${resources.filter((r) => r.type !== "pulumi:pulumi:Stack" && !r.type.startsWith("pulumi:providers:")).length} resources):`, ...describeResources(resources)];
  } catch (x) {
    exists = [`What exists in ${stack} now: unknown (pulumi stack export failed: ${(x as Error).message})`];
  }
  throw new DockyardError([`pulumi up of ${stack} failed: ${why}`, ...exists, `Fix the cause above, then run again (up continues from what exists):`, `  ${retry}`].join("\n"), EXIT.failure);
}

export interface UpArgs {
  owner: string;
  ttl: string;
  platform?: HostPlatform;
  from?: string;
  lockWait: string;
}

/** The --from stack's parsed spec; an unknown or invalid one is --from's problem (exit 2). */
function fromSpec(from: string, deps: DevServerDeps): EnvironmentSpec {
  try {
    return loadStackSpec(from, { dir: deps.stacksDir, environmentFile: deps.environmentFile });
  } catch (e) {
    if (e instanceof ConfigError) throw new DockyardError(`--from ${from}: ${e.message}`, EXIT.usage);
    throw e;
  }
}

export async function runUp(args: UpArgs, deps: DevServerDeps): Promise<number> {
  return reportedPulumi(deps, async () => {
    const stack = validOwner(args.owner);
    const ttlMs = parseDuration(args.ttl, "--ttl", { min: TTL_MIN_MS, max: TTL_MAX_MS });
    const lockWaitMs = parseDuration(args.lockWait, "--lock-wait", { min: 0, max: LOCK_WAIT_MAX_MS, seconds: true });
    // A laptop's server copies the local stack (its images come from the laptop's registry), any other dev.
    const from = args.from ?? (args.platform === "local" && fs.existsSync(stackFilePath("local", deps.stacksDir ?? STACKS_DIR)) ? "local" : "dev");
    const spec = fromSpec(from, deps);
    const nameProblem = hostNameProblem(args.owner, spec.hostGroups);
    if (nameProblem) throw new DockyardError(`${nameProblem} (with --from ${from})`, EXIT.usage);
    const fromFile = readStackFile(from, deps.stacksDir);
    const copy = planConfigCopy(fromFile.config);

    const backend = await deps.backend();
    const now = deps.now();
    // An existing server keeps its platform unless --platform says otherwise.
    const exists = (await backend.listStacks(DEV_PREFIX)).some((s) => s.name === stack);
    const old = exists ? await backend.getTags(stack) : {};
    const tagged = HOST_PLATFORMS.find((p) => p === old[TAG.platform]);
    const platform: HostPlatform = args.platform ?? tagged ?? "aws";
    if (platform === "local" && needsPassphrase(deps.env)) {
      throw new DockyardError(
        `--platform local on ${deps.env.PULUMI_BACKEND_URL} encrypts the stack's secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) first, and keep it: every later up, recreate and destroy of ${stack} needs the same one (README "Dev servers on demand")`,
        EXIT.usage,
      );
    }
    if (exists) {
      // A server made on another machine: its stack file first, naming the secrets provider its state has.
      await ensureStackFile(backend, stack, deps);
      requireSecretsProvider(stack, platform, spec.region, deps);
    }
    // KMS (dev's key) on aws; on local the backend's default (a passphrase on a DIY backend), no cloud account needed.
    const secretsProvider = platform === "aws" ? requiredSecretsProvider(stack, spec.region) : undefined;
    const { created } = await backend.selectOrCreate(stack, { secretsProvider });
    deps.err(`${created ? "Created" : "Selected"} stack ${stack} in ${backend.location}${created && secretsProvider ? ` (secrets: ${secretsProvider})` : ""}.\n`);

    // The knobs of --from, as they are: stale keys out, plain values whole, secrets decrypted and set as secrets.
    const targetFile = stackFilePath(stack, deps.stacksDir ?? STACKS_DIR);
    const stale = fs.existsSync(targetFile) ? Object.keys(readStackFile(stack, deps.stacksDir).config).filter((k) => !(k in fromFile.config)) : [];
    if (stale.length) await backend.removeConfig(stack, stale);
    // A dev server only pulls from --from's registry: its repositories are --from's (dockyard:createRepositories).
    await backend.setConfigJson(stack, { ...copy.json, "dockyard:createRepositories": { value: "false", secret: false } });
    const secrets = copy.secrets.length ? decryptedSecrets(copy, await backend.getAllConfig(from), from) : {};
    const paths = { ...secrets, ...platformSettings(fromFile.config["dockyard:hostGroups"], platform) };
    if (Object.keys(paths).length) await backend.setConfigPaths(stack, paths);
    deps.err(`Copied ${Object.keys(fromFile.config).length} knobs of ${from}${copy.secrets.length ? ` (${copy.secrets.length} as secrets)` : ""}${platform === "local" ? ", every host group on the local platform" : ""}.\n`);

    // Tags before the update: a half-failed up is still a server that reap must find.
    const expires = new Date(now.getTime() + ttlMs);
    await backend.setTags(stack, {
      [TAG.owner]: args.owner,
      [TAG.platform]: platform,
      [TAG.from]: from,
      [TAG.created]: old[TAG.created] ?? iso(now),
      [TAG.expires]: iso(expires),
      [TAG.ttl]: args.ttl,
    });

    const retry = `${RUN} up --owner ${args.owner} --ttl ${args.ttl} --platform ${platform} --from ${from}`;
    deps.err(`pulumi up ${stack}:\n`);
    try {
      await withLockWait(stack, lockWaitMs, deps, () => backend.up(stack, { onOutput: progress(deps) }));
    } catch (e) {
      await failedUp(backend, stack, e, retry);
    }
    const outputs = await backend.outputs(stack);
    deps.out(
      [
        `Dev server ${stack} is up (${platform}, a copy of ${from}). Expires ${iso(expires)} (in ${formatDuration(ttlMs)}); to keep it longer run up again with --ttl.`,
        ...accessLines(spec, platform, outputs),
        `Fresh hosts: ${RUN} recreate --owner ${args.owner}   Remove: ${RUN} destroy --owner ${args.owner}`,
      ].join("\n") + "\n",
    );
    return EXIT.ok;
  });
}

export interface RecreateArgs {
  owner: string;
  wipeData: boolean;
  lockWait: string;
}

export async function runRecreate(args: RecreateArgs, deps: DevServerDeps): Promise<number> {
  return reportedPulumi(deps, async () => {
    const stack = validOwner(args.owner);
    const lockWaitMs = parseDuration(args.lockWait, "--lock-wait", { min: 0, max: LOCK_WAIT_MAX_MS, seconds: true });
    const backend = await deps.backend();
    await requireServer(backend, stack, args.owner);
    await ensureStackFile(backend, stack, deps);
    const resources = await backend.resources(stack);
    const local = args.wipeData ? localDataVolumes(resources) : [];
    if (local.length) {
      throw new DockyardError(
        `${stack}: --wipe-data cannot empty the data volumes of local hosts (${local.join(", ")}): each keeps its name and Docker hands the old volume, data included, to a new one of that name. ` +
          `Nothing was changed. For empty hosts: ${RUN} destroy --owner ${args.owner}; docker volume rm ${local.join(" ")}; then ${RUN} up --owner ${args.owner} --platform local`,
        EXIT.usage,
      );
    }
    const replace = replaceUrns(resources, args.wipeData);
    if (replace.length === 0) throw new DockyardError(`${stack} has no hosts in its state to recreate (a failed first up?): run ${RUN} up --owner ${args.owner}`, EXIT.failure);
    deps.err(`Replacing ${replace.length} resources of ${stack}${args.wipeData ? " (machines, data volumes and what their engines held)" : " (machines; data volumes kept)"}:\n${replace.map((u) => `  ${u}\n`).join("")}`);
    try {
      await withLockWait(stack, lockWaitMs, deps, () => backend.up(stack, { replace, onOutput: progress(deps) }));
    } catch (e) {
      await failedUp(backend, stack, e, `${RUN} recreate --owner ${args.owner}${args.wipeData ? " --wipe-data" : ""}`);
    }
    deps.out(`Recreated the hosts of ${stack}${args.wipeData ? " with empty data volumes" : "; their data volumes were kept"}.\n`);
    return EXIT.ok;
  });
}

/** destroy + remove, waiting for a lock; shared by destroy and reap. Returns what it left behind (retainedDataVolumes), as a suffix for its report line. */
async function destroyServer(backend: DevServerBackend, stack: string, lockWaitMs: number, deps: DevServerDeps): Promise<string> {
  await ensureStackFile(backend, stack, deps);
  // Read before the destroy: afterwards the state no longer has them.
  const kept = retainedDataVolumes(await backend.resources(stack));
  await withLockWait(stack, lockWaitMs, deps, () => backend.destroy(stack, { onOutput: progress(deps) }));
  await backend.remove(stack);
  return kept.length ? `; kept in the account: ${kept.join(", ")}` : "";
}

export interface DestroyArgs {
  owner: string;
  lockWait: string;
}

export async function runDestroy(args: DestroyArgs, deps: DevServerDeps): Promise<number> {
  return reportedPulumi(deps, async () => {
    const stack = validOwner(args.owner);
    const lockWaitMs = parseDuration(args.lockWait, "--lock-wait", { min: 0, max: LOCK_WAIT_MAX_MS, seconds: true });
    const backend = await deps.backend();
    await requireServer(backend, stack, args.owner);
    let kept: string;
    try {
      kept = await destroyServer(backend, stack, lockWaitMs, deps);
    } catch (e) {
      if (e instanceof DockyardError) throw e;
      throw new DockyardError(`destroy of ${stack} failed: ${(e as Error).message}\nRun again: ${RUN} destroy --owner ${args.owner}`, EXIT.failure);
    }
    deps.out(`Destroyed and removed ${stack}${kept}. EBS data volumes of aws hosts are retained (retainOnDelete): delete them in the account when their data is no longer needed (tag dockyard:stack=${stack}).\n`);
    return EXIT.ok;
  });
}

/** Every dev-* stack with its tags. */
async function devServers(backend: DevServerBackend, now: Date): Promise<DevServerInfo[]> {
  const stacks = (await backend.listStacks(DEV_PREFIX)).filter((s) => s.name.startsWith(DEV_PREFIX)).sort((a, b) => a.name.localeCompare(b.name));
  return Promise.all(
    stacks.map(async ({ name, ...listing }) => serverInfo(name, await backend.getTags(name), now, listing)),
  );
}

export function formatList(servers: readonly DevServerInfo[]): string {
  if (servers.length === 0) return "No dev servers (stacks dev-*).\n";
  const rows = [
    ["STACK", "OWNER", "PLATFORM", "AGE", "EXPIRES", "LAST UPDATE"],
    ...servers.map((s) => [
      s.stack,
      s.owner ?? "-",
      s.platform ?? "-",
      s.ageMs !== undefined ? formatDuration(s.ageMs) : "-",
      s.expiresInMs === undefined ? "never (no tag)" : s.expiresInMs <= 0 ? `expired ${formatDuration(-s.expiresInMs)} ago` : `in ${formatDuration(s.expiresInMs)}`,
      s.updateInProgress ? "in progress" : (s.lastUpdate ?? "never"),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ")).join("\n") + "\n";
}

export async function runList(args: { json: boolean }, deps: DevServerDeps): Promise<number> {
  return reportedPulumi(deps, async () => {
    const servers = await devServers(await deps.backend(), deps.now());
    deps.out(args.json ? `${JSON.stringify(servers, null, 2)}\n` : formatList(servers));
    return EXIT.ok;
  });
}

export interface ReapArgs {
  dryRun: boolean;
  lockWait: string;
  /** Only servers of this platform (tag dockyard:platform; untagged count as aws): CI cannot reach a laptop's Docker Engine. */
  platform?: HostPlatform;
}

export async function runReap(args: ReapArgs, deps: DevServerDeps): Promise<number> {
  return reportedPulumi(deps, async () => {
    const lockWaitMs = parseDuration(args.lockWait, "--lock-wait", { min: 0, max: LOCK_WAIT_MAX_MS, seconds: true });
    const backend = await deps.backend();
    const servers = (await devServers(backend, deps.now())).filter((s) => !args.platform || (s.platform ?? "aws") === args.platform);
    const { expired, noExpiry } = reapSelection(servers);
    for (const s of noExpiry) deps.err(`${s.stack}: no readable ${TAG.expires} tag, not reaped (made by hand? set one: npx pulumi stack tag set ${TAG.expires} <ISO time> --stack ${s.stack})\n`);
    if (expired.length === 0) {
      deps.out("Nothing to reap: no dev server has expired.\n");
      return EXIT.ok;
    }
    const failed: string[] = [];
    for (const s of expired) {
      const line = `${s.stack} (owner ${s.owner ?? "?"}, expired ${formatDuration(-(s.expiresInMs ?? 0))} ago)`;
      if (args.dryRun) {
        deps.out(`would destroy ${line}\n`);
        continue;
      }
      try {
        // Its owner may have extended it since the list was read.
        const now = serverInfo(s.stack, await backend.getTags(s.stack), deps.now());
        if (now.expiresInMs !== undefined && now.expiresInMs > 0) {
          deps.out(`kept ${s.stack}: extended meanwhile, expires ${now.expires}\n`);
          continue;
        }
        deps.err(`Destroying ${line}:\n`);
        const kept = await destroyServer(backend, s.stack, lockWaitMs, deps);
        deps.out(`destroyed ${line}${kept}\n`);
      } catch (e) {
        // Its owner's destroy removed it since the list was read (the CLI: "no stack named ..."): nothing left to reap.
        if (e instanceof StackMissingError) {
          deps.out(`gone ${s.stack}: removed since the list was read\n`);
          continue;
        }
        failed.push(s.stack);
        deps.out(`FAILED to destroy ${line}: ${(e as Error).message.split("\n")[0]}\n`);
      }
    }
    if (failed.length) {
      deps.err(`${failed.length} of ${expired.length} expired dev servers could not be destroyed: ${failed.join(", ")}\n`);
      return EXIT.failure;
    }
    return EXIT.ok;
  });
}

// ---------------------------------------------------------------------------------
// yargs
// ---------------------------------------------------------------------------------

const ownerOption = {
  type: "string",
  demandOption: true,
  describe: "Whose server: your short name, lowercase (a-z, 0-9, '-'); the stack is dev-<owner>",
} as const;
const lockWaitOption = {
  type: "string",
  default: "10m",
  describe: "How long to wait while another update holds the stack's lock (e.g. 90s, 10m; 0s: do not wait)",
} as const;

type Sub<T> = CommandModule<object, T>;
const handle = <T>(run: (a: T, d: DevServerDeps) => Promise<number>) => async (a: T) => {
  process.exitCode = await run(a, defaultDeps());
};

const upCommand: Sub<UpArgs> = {
  command: "up",
  describe: "Create (or update) your dev server dev-<owner>: a copy of --from's knobs, deployed, with an expiry",
  builder: (y) =>
    y
      .option("owner", ownerOption)
      .option("ttl", { type: "string", default: "8h", describe: "How long until `reap` destroys it, from now (30m, 8h, 2d; 10m to 30d). Running up again renews it" })
      .option("platform", { choices: HOST_PLATFORMS, describe: "Where the hosts run: aws (EC2, needs AWS credentials) or local (containers on your Docker Engine, no cloud account). Default: the server's current platform, aws for a new one" })
      .option("from", {
        type: "string",
        describe: "The stack whose knobs (stacks/Pulumi.<from>.yaml) are copied, secrets included. Default: local with --platform local (images from your machine's registry, README \"Run it on your laptop\"), else dev",
      })
      .option("lock-wait", lockWaitOption)
      .example("$0 dev-server up --owner alice", "dev-alice on AWS, a copy of dev, for 8 hours")
      .example("$0 dev-server up --owner alice --platform local --ttl 2d", "the same on your laptop's Docker Engine")
      .epilog(
        "Every run copies --from's knobs again, so the server stays identical to it (keys --from does not set are removed), sets the stack tags " +
          "dockyard:owner, dockyard:platform, dockyard:from, dockyard:created and dockyard:expires, runs pulumi up with its progress on stderr, " +
          "and prints an ssh line per host and a URL per published service. The backend is PULUMI_BACKEND_URL's (or the one you are logged in to); " +
          "on a file:// or s3:// backend, --platform local needs PULUMI_CONFIG_PASSPHRASE. A failed up prints what exists and the command to retry. " +
          "Exit codes: 0 up, 1 pulumi failed, 2 bad input.",
      ) as unknown as Argv<UpArgs>,
  handler: handle(runUp),
};

const recreateCommand: Sub<RecreateArgs> = {
  command: "recreate",
  describe: "Replace your dev server's hosts with fresh ones from the same definition; the data volume is kept",
  builder: (y) =>
    y
      .option("owner", ownerOption)
      .option("wipe-data", {
        type: "boolean",
        default: false,
        describe:
          "Also replace the data volumes, starting empty, and everything that lived on them (the fleet's containers, networks, volumes, pulled images, the proxy's config), so the same up rebuilds it. aws hosts only (a local host's volume keeps its name, and Docker would hand back the old one: exit 2 with the commands that empty it). The old EBS volume is retained in the account (retainOnDelete): delete it yourself",
      })
      .option("lock-wait", lockWaitOption)
      .example("$0 dev-server recreate --owner alice", "new VMs (or containers), same data")
      .epilog(
        "Runs pulumi up with --replace for each host's machine (the EC2 instance under a DockerHost, the container under a LocalHost), " +
          "so the hosts boot again from the current user-data while their data volumes (Docker's data and the services' volumes) are reattached. " +
          "With --wipe-data it also replaces the data volumes and every resource in the hosts' engines or on their disks (found in the state by provider and dependencies). " +
          "Exit codes: 0 recreated, 1 pulumi failed, 2 bad input or no such server.",
      ) as unknown as Argv<RecreateArgs>,
  handler: handle(runRecreate),
};

const destroyCommand: Sub<DestroyArgs> = {
  command: "destroy",
  describe: "Destroy your dev server's resources and remove the stack dev-<owner>",
  builder: (y) =>
    y
      .option("owner", ownerOption)
      .option("lock-wait", lockWaitOption)
      .epilog("EBS data volumes of aws hosts are retained (retainOnDelete) and stay in the account, tagged with their host. Exit codes: 0 removed, 1 pulumi failed, 2 bad input or no such server.") as unknown as Argv<DestroyArgs>,
  handler: handle(runDestroy),
};

const listCommand: Sub<{ json: boolean }> = {
  command: "list",
  describe: "List every dev server (stacks dev-*): owner, platform, age, expiry, last update",
  builder: (y) => y.option("json", { type: "boolean", default: false, describe: "Print JSON (for scripts)" }) as Argv<{ json: boolean }>,
  handler: handle(runList),
};

const reapCommand: Sub<ReapArgs> = {
  command: "reap",
  describe: "Destroy every dev server whose expiry (tag dockyard:expires) has passed; for a scheduled CI job",
  builder: (y) =>
    y
      .option("dry-run", { type: "boolean", default: false, describe: "Only print what would be destroyed" })
      .option("platform", { choices: HOST_PLATFORMS, describe: "Only servers on this platform (CI: aws; a local server's Docker Engine is reachable from its owner's machine only)" })
      .option("lock-wait", lockWaitOption)
      .example("$0 dev-server reap --platform aws", "what the scheduled job .github/workflows/dev-server-reap.yml runs")
      .epilog("Servers without a dockyard:expires tag are named and kept. Exit codes: 0 every expired server destroyed (or none), 1 one could not be, 2 bad input.") as unknown as Argv<ReapArgs>,
  handler: handle(runReap),
};

export const devServerCommand: CommandModule<object, object> = {
  command: "dev-server <command>",
  describe: "Your own dev server on demand (stack dev-<owner>, a copy of dev): up, recreate, destroy, list, reap",
  builder: (y) =>
    y
      .command(upCommand)
      .command(recreateCommand)
      .command(destroyCommand)
      .command(listCommand)
      .command(reapCommand)
      .demandCommand(1, "Name a dev-server command: up, recreate, destroy, list or reap")
      .epilog(
        "A dev server is the stack dev-<owner>: the same program and environment as dev, with dev's knobs copied, on AWS or on your own " +
          "Docker Engine (--platform local). It expires (--ttl) and `reap` destroys expired ones. State lives where PULUMI_BACKEND_URL says " +
          "(e.g. file://~/.dockyard-state with PULUMI_CONFIG_PASSPHRASE for a team without Pulumi Cloud). See README \"Dev servers on demand\".",
      ),
  handler: () => undefined,
};
