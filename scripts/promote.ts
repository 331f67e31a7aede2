/**
 * `dockyard promote --from test --to prod [--service NAME ...]`
 *
 * Moves the digests a source stack runs to a target stack (every service's, and the
 * per-host proxy's `dockyard:proxyImage`, named `haproxy`): checks the source stack has
 * deployed them, makes sure each image is in the target stack's repository (nothing to
 * do in the same repository; cross-repository mount in the same registry; streamed copy
 * across registries; multi-platform indexes whole, digests byte for byte), verifies the
 * target has it, and only then rewrites the digest lines of the target stack file
 * (atomically) and appends a line per service to the promotion ledger.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Argv, CommandModule } from "yargs";
import {
  ConfigError,
  loadStackSpec,
  pinnedImages,
  PROXY_REPOSITORY,
  proxyRepository,
  shortDigest,
  splitImageRef,
  stackFilePath,
  STACKS_DIR,
  type EnvironmentSpec,
  type PinnedImage,
} from "../stacks";
import { appendLedger, currentActor, ledgerPath, type LedgerEntry } from "./lib/ledger";
import {
  copyImage,
  copyStrategy,
  emptyStats,
  pinImage,
  parseRepository,
  RegistryClient,
  verifyImage,
  type ClientOptions,
  type CopyResult,
  type CopyStrategy,
  type RepositoryRef,
  type PinOutcome,
  type TransferStats,
} from "./lib/oci";
import { assertReplaceable, setImageDigests, withFileLock, type WriteHooks } from "./lib/stackfile";

/** A failure with the exit code the CLI returns: 1 refused or failed, 2 bad usage or input. */
export class DockyardError extends Error {
  constructor(
    message: string,
    public readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = "DockyardError";
  }
}

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

export interface PromoteOptions extends CommonOptions {
  from: string;
  to: string;
  /** Images to promote by name: services, and PROXY_REPOSITORY for the proxy; default every service and the proxy. */
  services?: string[];
  /** JSON file as printed by `pulumi stack output --json --stack <from>`; default: run that command. */
  sourceOutputs?: string;
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
 * Digests a stack's last deployment runs, per service, from its `services` stack output,
 * and the proxy's (under PROXY_REPOSITORY) from its `proxyImage` output
 * (`"<registry>/haproxy@sha256:<hex>"`) when the program exports one.
 */
export function deployedDigests(stack: string, outputsJson: unknown, where: string): Record<string, string> {
  const services = (outputsJson as { services?: unknown })?.services;
  const proxy = (outputsJson as { proxyImage?: unknown })?.proxyImage;
  if (typeof services !== "object" || services === null || Array.isArray(services)) {
    throw new DockyardError(`${where}: no 'services' output (expected {"services": {"<service>": {"digest": "sha256:..."}}}) for stack ${stack}`, 2);
  }
  const out: Record<string, string> = {};
  for (const [svc, v] of Object.entries(services as Record<string, unknown>)) {
    const d = (v as { digest?: unknown })?.digest;
    if (typeof d === "string") out[svc] = d;
  }
  if (proxy !== undefined && proxy !== null) {
    const ref = typeof proxy === "string" ? splitImageRef(proxy) : undefined;
    if (!ref) throw new DockyardError(`${where}: output 'proxyImage' of stack ${stack}: must be a string '<registry>/${PROXY_REPOSITORY}@sha256:<64 hex>' (got ${JSON.stringify(proxy)})`, 2);
    out[PROXY_REPOSITORY] = ref.digest;
  }
  return out;
}

/** Reads the source stack's outputs from a file, or from `pulumi stack output --json`. */
export function readSourceOutputs(stack: string, file?: string): { json: unknown; where: string } {
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      throw new DockyardError(`--source-outputs ${file}: cannot read: ${(e as Error).message}`, 2);
    }
    try {
      return { json: JSON.parse(text), where: `--source-outputs ${file}` };
    } catch {
      throw new DockyardError(`--source-outputs ${file}: not JSON (expected the output of \`pulumi stack output --json --stack ${stack}\`)`, 2);
    }
  }
  try {
    const text = execFileSync("npx", ["--no-install", "pulumi", "stack", "output", "--json", "--stack", stack], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 120_000,
    });
    return { json: JSON.parse(text), where: `pulumi stack output --json --stack ${stack}` };
  } catch (e) {
    const err = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    throw new DockyardError(
      `cannot read the deployed digests of stack ${stack} with \`pulumi stack output --json --stack ${stack}\`: ${err.split("\n").filter((l) => l.trim()).pop()}\n` +
        `  pass --source-outputs FILE with that command's output instead`,
      1,
    );
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

function repoRef(repository: string, stack: string, service: string): RepositoryRef {
  try {
    return parseRepository(repository);
  } catch (e) {
    throw new DockyardError(`stack ${stack}, service ${service}: ${(e as Error).message}`, 2);
  }
}

function short(d: string | null): string {
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

/** Promotes digests from one stack to another. Throws DockyardError (with its exit code) on any refusal or failure. */
export async function promote(opts: PromoteOptions): Promise<ChangeResult> {
  const t0 = performance.now();
  const log = opts.log ?? (() => undefined);
  if (opts.from === opts.to) throw new DockyardError(`--from and --to are both ${opts.from}; promote moves digests between two stacks`, 2);
  const stacksDir = resolveStacksDir(opts.stacksDir);
  const source = loadSpec(opts.from, stacksDir);
  const target = loadSpec(opts.to, stacksDir);
  const images = selectImages(source, stacksDir, opts.services, "--from");
  const stackFile = stackFilePath(opts.to, stacksDir);
  const ledgerFile = opts.ledgerFile ?? ledgerPath(stacksDir);

  const outputs = readSourceOutputs(opts.from, opts.sourceOutputs);
  const deployed = deployedDigests(opts.from, outputs.json, outputs.where);
  const refused: string[] = [];
  const items: PlanItem[] = [];
  const targetImages = pinnedImages(target);
  for (const s of images) {
    // The target's proxy repository exists by name even while its stack file pins no proxy yet.
    const t = targetImages.find((x) => x.name === s.name) ?? (s.proxy ? { repository: proxyRepository(target.registry), digest: null } : undefined);
    if (!t) throw new DockyardError(`service ${s.name} is in stack ${opts.from} but not in stack ${opts.to}`, 2);
    if (deployed[s.name] !== s.digest) {
      const none = s.proxy
        ? `(no 'proxyImage' output "<registry>/${PROXY_REPOSITORY}@<digest>" in ${outputs.where}: its last deployment ran no proxy, or predates that output; deploy it, or promote the services alone with --service NAME)`
        : `(no digest for ${s.name} in ${outputs.where})`;
      refused.push(`${s.name}: stack ${opts.from} pins ${s.digest} but has not deployed it ${deployed[s.name] ? `(its last deployment runs ${deployed[s.name]}, per ${outputs.where})` : none}`);
      continue;
    }
    const strategy = copyStrategy(repoRef(s.repository, opts.from, s.name), repoRef(t.repository, opts.to, s.name));
    items.push({ service: s.name, sourceRepository: s.repository, targetRepository: t.repository, digest: s.digest, oldDigest: t.digest, strategy, unchanged: t.digest === s.digest });
  }
  if (refused.length > 0) {
    throw new DockyardError(`refusing to promote ${opts.from} -> ${opts.to}: only digests the source stack has run are promoted; nothing was changed:\n${refused.map((r) => `  - ${r}`).join("\n")}`, 1);
  }

  const result: ChangeResult = { from: opts.from, to: opts.to, action: "promote", dryRun: !!opts.dryRun, stackFile, items, stats: emptyStats(), ledger: [], elapsedMs: 0 };
  if (opts.dryRun) {
    result.elapsedMs = performance.now() - t0;
    return result;
  }
  // Fail before any slow copy if the stack file cannot be replaced.
  if (items.some((i) => !i.unchanged)) {
    try {
      assertReplaceable(stackFile);
    } catch (e) {
      throw new DockyardError(`${(e as Error).message}; nothing was copied or changed`, 1);
    }
  }

  const pool = new ClientPool({ log, ...opts.client });
  result.stats = pool.stats;
  try {
    for (const it of items) {
      const src = parseRepository(it.sourceRepository);
      const dst = parseRepository(it.targetRepository);
      log(`[${it.service}] ${it.strategy}: ${it.sourceRepository}@${short(it.digest)} -> ${it.targetRepository}`);
      let lastBytesLog = 0;
      let bytes = 0;
      let copy: CopyResult;
      try {
        copy = await copyImage(pool.get(src.registry), src, pool.get(dst.registry), dst, it.digest, {
          concurrency: opts.concurrency,
          progress: {
            blob: (b) => log(`[${it.service}] blob ${b.done}/${b.total} ${b.how} ${short(b.digest)} (${formatBytes(b.size)})`),
            bytes: (n) => {
              bytes += n;
              const now = Date.now();
              if (now - lastBytesLog > 1000) {
                lastBytesLog = now;
                log(`[${it.service}] ${formatBytes(bytes)} uploaded`);
              }
            },
          },
        });
      } catch (e) {
        throw new DockyardError(`copying ${it.service} ${it.sourceRepository}@${it.digest} to ${it.targetRepository} failed; ${stackFile} was not changed:\n  ${(e as Error).message}`, 1);
      }
      it.manifests = copy.manifests;
      it.blobs = copy.blobs;
      log(`[${it.service}] ${copy.manifests.length} manifest(s), ${copy.blobs.length} blob(s) in ${it.targetRepository}`);
    }
    result.ledger = await verifyAndApply(pool, items, { action: "promote", from: opts.from, to: opts.to, stackFile, ledgerFile, writeHooks: opts.writeHooks, log }).catch((e) => {
      if (e instanceof DockyardError) throw e;
      throw new DockyardError(`verifying in the target failed; ${stackFile} was not changed: ${(e as Error).message}`, 1);
    });
  } finally {
    pool.close();
  }
  result.elapsedMs = performance.now() - t0;
  return result;
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
    const code = e instanceof DockyardError ? e.exitCode : 1;
    if (json) process.stdout.write(`${JSON.stringify({ error: (e as Error).message, exitCode: code })}\n`);
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return code;
  }
}

interface PromoteArgs {
  from: string;
  to: string;
  service?: string[];
  "source-outputs"?: string;
  "stacks-dir"?: string;
  ledger?: string;
  "dry-run": boolean;
  json: boolean;
  concurrency?: number;
}

export const promoteCommand: CommandModule<object, PromoteArgs> = {
  command: "promote",
  describe: "Promote image digests a stack has run (e.g. test) to another stack (e.g. prod)",
  builder: (y) =>
    commonOptions(
      y
        .usage(
          "$0 promote --from <stack> --to <stack> [--service NAME ...]\n\n" +
            "Takes the digests the --from stack file pins and has deployed (every service's, and the per-host\n" +
            `proxy's dockyard:proxyImage, named ${PROXY_REPOSITORY}; --service selects some), copies each image into the --to\n` +
            "stack's repository if it is not there (same repository: nothing; same registry: blobs mounted;\n" +
            "other registry: blobs streamed; multi-platform indexes whole, digests unchanged), verifies it there,\n" +
            "tags it pin-sha256-<hex> there (the lifecycle policy never expires a tagged image), then rewrites\n" +
            "only the digest lines of stacks/Pulumi.<to>.yaml and appends to stacks/promotions.jsonl.\n" +
            `Deployed means: the 'services' output of --from (and its 'proxyImage' output for ${PROXY_REPOSITORY}).\n` +
            "Exit codes: 0 done, 1 refused or failed (stack file untouched), 2 bad usage or input.",
        )
        .option("from", { type: "string", demandOption: true, describe: "Stack whose deployed digests are promoted" })
        .option("to", { type: "string", demandOption: true, describe: "Stack whose stack file is rewritten" })
        .option("service", {
          type: "string",
          array: true,
          describe: `Only these images (repeatable): a service name, or ${PROXY_REPOSITORY} for the per-host proxy image; default every service and the proxy`,
        })
        .option("source-outputs", { type: "string", describe: "JSON from `pulumi stack output --json --stack <from>`; default: run it" }),
    ) as unknown as Argv<PromoteArgs>,
  handler: async (a) => {
    process.exitCode = await runCommand(a.json, (log) =>
      promote({
        from: a.from,
        to: a.to,
        services: a.service,
        sourceOutputs: a["source-outputs"],
        stacksDir: a["stacks-dir"],
        ledgerFile: a.ledger,
        dryRun: a["dry-run"],
        concurrency: a.concurrency,
        log,
      }),
    );
  },
};

/** Standalone entry (`tsx scripts/promote.ts ...`) until the dockyard CLI registers the command. */
export async function standalone(cmd: CommandModule<object, never>, argv: string[]): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const yargs = require("yargs") as typeof import("yargs");
  await yargs(argv)
    .scriptName(`dockyard ${String(cmd.command).split(" ")[0]}`)
    .command({ ...cmd, command: String(cmd.command).replace(/^\S+/, "$0") } as CommandModule<object, never>)
    .strict()
    .help()
    .fail((msg, err) => {
      process.stderr.write(`error: ${msg ?? err?.message}\n`);
      process.exit(2);
    })
    .parseAsync();
}

if (require.main === module) void standalone(promoteCommand as unknown as CommandModule<object, never>, process.argv.slice(2));
