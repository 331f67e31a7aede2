/**
 * What promote and rollback share: the options, the plan of a change to a stack's
 * digests, the registry clients, the verify-pin-write tail, and how a result is printed.
 * Used by scripts/promote.ts, scripts/rollback.ts and scripts/pin.ts (and the benchmarks).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Argv } from "yargs";
import { ConfigError, loadStackSpec, pinnedImages, PROXY_REPOSITORY, shortDigest, stackFilePath, STACKS_DIR, type EnvironmentSpec, type PinnedImage } from "../../stacks";
import { DockyardError, exitCodeOf } from "./cli";
import { appendLedger, currentActor, type LedgerEntry } from "./ledger";
import { emptyStats, parseRepository, pinImage, RegistryClient, verifyImage, type ClientOptions, type CopyStrategy, type PinOutcome, type RepositoryRef, type TransferStats } from "./oci";
import { assertReplaceable, setImageDigests, withFileLock, type WriteHooks } from "./stackfile";

/** Options shared by promote and rollback. */
export interface CommonOptions {
  /** Directory with environment.yaml and the stack files; default stacks/. */
  stacksDir?: string;
  /** Ledger file; default <stacksDir>/promotions.jsonl. */
  ledgerFile?: string;
  /** Print the plan, change nothing. */
  dryRun?: boolean;
  /** Parallel blob transfers per image; default 6 uploads, 16 mounts. */
  concurrency?: number;
  /** Registry client options (credentials, retries, upload mode). */
  client?: ClientOptions;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** Test hooks into the atomic stack-file write. */
  writeHooks?: WriteHooks;
}

/** What happens to one image: a service's, or the per-host proxy's (service PROXY_REPOSITORY). */
export interface PlanItem {
  /** Service name, or PROXY_REPOSITORY for the proxy (`dockyard:proxyImage`). */
  service: string;
  /** Source repository (promote) or the stack's own (rollback), without digest. */
  sourceRepository: string;
  targetRepository: string;
  /** Digest being moved to the target stack. */
  digest: string;
  /** Digest the target stack pins now (null: it pins none, e.g. no dockyard:proxyImage yet). */
  oldDigest: string | null;
  strategy: CopyStrategy;
  /** The target stack already pins `digest`: its file is not changed for this service. */
  unchanged: boolean;
  /** Manifests and blobs in the image (filled after the copy). */
  manifests?: string[];
  blobs?: string[];
  /** The pin tags `pinTag(digest)` (and of an index's children) in the target repository: already there, or put there now. */
  pin?: PinOutcome;
}

export interface ChangeResult {
  from: string;
  to: string;
  action: "promote" | "rollback";
  dryRun: boolean;
  stackFile: string;
  items: PlanItem[];
  stats: TransferStats;
  /** Ledger lines appended (empty on dry run or when nothing changed). */
  ledger: LedgerEntry[];
  elapsedMs: number;
}

export function resolveStacksDir(dir?: string): string {
  return path.resolve(dir ?? STACKS_DIR);
}

/** loadStackSpec with the directory's own environment.yaml when it has one. */
export function loadSpec(stack: string, stacksDir: string): EnvironmentSpec {
  const env = path.join(stacksDir, "environment.yaml");
  try {
    return loadStackSpec(stack, { dir: stacksDir, environmentFile: fs.existsSync(env) ? env : undefined });
  } catch (e) {
    if (e instanceof ConfigError) throw new DockyardError(e.message, 2);
    throw e;
  }
}

/**
 * The images of `spec` named by --service (a service, or PROXY_REPOSITORY for the proxy);
 * default all of them. An unknown name is bad input (2), naming the stack file and what is allowed.
 */
export function selectImages(spec: EnvironmentSpec, stacksDir: string, names: string[] | undefined, role: string): PinnedImage[] {
  const images = pinnedImages(spec);
  if (!names || names.length === 0) return images;
  const file = path.relative(process.cwd(), stackFilePath(spec.stack, stacksDir)) || stackFilePath(spec.stack, stacksDir);
  const out: PinnedImage[] = [];
  for (const n of new Set(names)) {
    const s = images.find((x) => x.name === n);
    if (!s && n === PROXY_REPOSITORY) throw new DockyardError(`--service ${n}: stack ${spec.stack} (${role}) sets no proxy image: ${file} has no config.dockyard:proxyImage`, 2);
    if (!s) {
      const services = spec.services.map((x) => x.name).join(", ") || "(none)";
      throw new DockyardError(`--service ${n}: stack ${spec.stack} (${role}, ${file}) has no such service; services: ${services}${spec.proxyImage ? `; the per-host proxy: ${PROXY_REPOSITORY}` : ""}`, 2);
    }
    out.push(s);
  }
  return out;
}

/** One client per registry host, all counting into the same stats. */
export class ClientPool {
  readonly stats = emptyStats();
  private readonly clients = new Map<string, RegistryClient>();
  constructor(private readonly opts: ClientOptions = {}) {}
  get(registry: string): RegistryClient {
    let c = this.clients.get(registry);
    if (!c) {
      c = new RegistryClient(registry, { ...this.opts, stats: this.stats });
      this.clients.set(registry, c);
    }
    return c;
  }
  close(): void {
    for (const c of this.clients.values()) c.close();
  }
}

export function repoRef(repository: string, stack: string, service: string): RepositoryRef {
  try {
    return parseRepository(repository);
  } catch (e) {
    throw new DockyardError(`stack ${stack}, service ${service}: ${(e as Error).message}`, 2);
  }
}

export function short(d: string | null): string {
  return d === null ? "(none)" : shortDigest(d);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * The shared tail of promote and rollback: verify every image in the target repository
 * (HEAD by digest, children too), put its pin tag on it (so the lifecycle policy never
 * expires a pinned image), then rewrite the target stack file atomically, then append
 * the ledger lines. The stack file is not written unless every image verified and is tagged.
 */
export async function verifyAndApply(
  pool: ClientPool,
  items: PlanItem[],
  ctx: { action: "promote" | "rollback"; from: string; to: string; stackFile: string; ledgerFile: string; writeHooks?: WriteHooks; log?: (line: string) => void },
): Promise<LedgerEntry[]> {
  const problems: string[] = [];
  for (const it of items) {
    const target = parseRepository(it.targetRepository);
    const children = (it.manifests ?? []).filter((d) => d !== it.digest);
    problems.push(...(await verifyImage(pool.get(target.registry), target, it.digest, children)));
  }
  if (problems.length > 0) {
    throw new DockyardError(`verification failed in the target repository; ${ctx.stackFile} was not changed:\n${problems.map((p) => `  - ${p}`).join("\n")}`, 1);
  }
  // Tag before the stack file names the digest: a pinned image without its tag could expire.
  const untagged: string[] = [];
  for (const it of items) {
    const target = parseRepository(it.targetRepository);
    try {
      it.pin = await pinImage(pool.get(target.registry), target, it.digest);
      const added = it.pin.children.filter((c) => c.outcome === "tagged").length;
      ctx.log?.(`[${it.service}] pin tag ${it.pin.tag}: ${it.pin.outcome === "tagged" ? "added" : "already there"}${it.pin.children.length ? ` (and ${it.pin.children.length} child manifest(s): ${added} added)` : ""}`);
    } catch (e) {
      untagged.push(`${it.service}: ${(e as Error).message}`);
    }
  }
  if (untagged.length > 0) {
    throw new DockyardError(`could not put the pin tag on the image in the target repository; ${ctx.stackFile} was not changed:\n${untagged.map((p) => `  - ${p}`).join("\n")}`, 1);
  }
  const changes = items.filter((i) => !i.unchanged);
  if (changes.length === 0) return [];
  const actor = currentActor();
  let entries: LedgerEntry[] = [];
  try {
    withFileLock(ctx.stackFile, () => {
      // The previous digests as the file says at write time (another change may have landed since we read it).
      const previous = setImageDigests(ctx.stackFile, Object.fromEntries(changes.map((i) => [i.service, i.digest])), ctx.writeHooks);
      const time = new Date().toISOString();
      entries = changes.filter((i) => previous[i.service] !== i.digest).map((i) => ({
        time,
        actor,
        action: ctx.action,
        from: ctx.from,
        to: ctx.to,
        service: i.service,
        repository: i.targetRepository,
        oldDigest: previous[i.service] ?? null,
        newDigest: i.digest,
      }));
      try {
        appendLedger(ctx.ledgerFile, entries);
      } catch (e) {
        throw new DockyardError(`${ctx.stackFile} was updated, but the ledger was not: ${(e as Error).message}`, 1);
      }
    });
  } catch (e) {
    if (e instanceof DockyardError) throw e;
    throw new DockyardError((e as Error).message, 1);
  }
  return entries;
}

/** Human-readable summary of a promote/rollback result. */
export function formatResult(r: ChangeResult): string {
  const lines: string[] = [];
  const verb = r.dryRun ? "would" : "did";
  lines.push(`${r.action} ${r.action === "promote" ? `${r.from} -> ${r.to}` : r.to}${r.dryRun ? " (dry run: nothing copied or written)" : ""}`);
  const rows = r.items.map((i) => [
    i.service,
    `${short(i.oldDigest)} -> ${short(i.digest)}`,
    i.unchanged ? "already pinned" : "rewrite digest",
    i.strategy === "same-repository" ? "same repository: nothing to copy" : i.strategy === "mount" ? `mount blobs from ${i.sourceRepository}` : `copy from ${i.sourceRepository}`,
    i.targetRepository,
  ]);
  const head = ["SERVICE", "DIGEST (target)", "STACK FILE", "IMAGE", "TARGET REPOSITORY"];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  for (const row of [head, ...rows]) lines.push(row.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd());
  if (!r.dryRun) {
    const s = r.stats;
    lines.push(
      `${verb}: ${s.blobsMounted} blob(s) mounted, ${s.blobsUploaded} uploaded (${formatBytes(s.bytesUploaded)}), ${s.blobsPresent} already present, ${s.manifestsPut} manifest(s) pushed, ${s.tagsPut} pin tag(s) added; ` +
        `${r.ledger.length} ledger line(s); ${(r.elapsedMs / 1000).toFixed(2)} s`,
    );
    if (r.ledger.length > 0) lines.push(`updated ${path.relative(process.cwd(), r.stackFile) || r.stackFile}; commit it with the ledger`);
  }
  return lines.join("\n");
}

/** Options every promote/rollback command line takes. */
export function commonOptions<T>(y: Argv<T>) {
  return y
    .option("stacks-dir", { type: "string", describe: "Directory with environment.yaml and Pulumi.<stack>.yaml files", default: undefined as string | undefined, defaultDescription: "stacks/" })
    .option("ledger", { type: "string", describe: "Promotion ledger file", defaultDescription: "<stacks-dir>/promotions.jsonl" })
    .option("dry-run", { type: "boolean", default: false, describe: "Print what would be done; copy and change nothing" })
    .option("json", { type: "boolean", default: false, describe: "Print the result as JSON on stdout (progress stays on stderr)" })
    .option("concurrency", { type: "number", describe: "Blobs transferred in parallel", defaultDescription: "6 uploads, 16 mounts" });
}

/** Runs a command body: prints the result, maps errors to exit codes 1/2. */
export async function runCommand(json: boolean, body: (log: (l: string) => void) => Promise<ChangeResult>): Promise<number> {
  const log = (l: string) => process.stderr.write(`${l}\n`);
  try {
    const r = await body(log);
    process.stdout.write(json ? `${JSON.stringify(r, null, 2)}\n` : `${formatResult(r)}\n`);
    return 0;
  } catch (e) {
    const code = exitCodeOf(e);
    if (json) process.stdout.write(`${JSON.stringify({ error: (e as Error).message, exitCode: code })}\n`);
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return code;
  }
}


/**
 * A change's result before anything is copied; for a real run that changes a digest, first
 * checks the stack file can be replaced (fails before any slow copy, `nothingDone` says what
 * was not done).
 */
export function beginChange(r: Pick<ChangeResult, "from" | "to" | "action" | "dryRun" | "stackFile" | "items">, nothingDone: string): ChangeResult {
  if (!r.dryRun && r.items.some((i) => !i.unchanged)) {
    try {
      assertReplaceable(r.stackFile);
    } catch (e) {
      throw new DockyardError(`${(e as Error).message}; ${nothingDone}`, 1);
    }
  }
  return { ...r, stats: emptyStats(), ledger: [], elapsedMs: 0 };
}

/**
 * Runs a change that beginChange opened: nothing on a dry run; otherwise `body` with one
 * client pool (its transfer counts become the result's stats), closed afterwards.
 */
export async function runChange(result: ChangeResult, t0: number, client: ClientOptions, body: (pool: ClientPool) => Promise<void>): Promise<ChangeResult> {
  if (!result.dryRun) {
    const pool = new ClientPool(client);
    result.stats = pool.stats;
    try {
      await body(pool);
    } finally {
      pool.close();
    }
  }
  result.elapsedMs = performance.now() - t0;
  return result;
}
