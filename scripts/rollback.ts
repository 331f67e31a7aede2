/**
 * `dockyard rollback <stack> [--service NAME] [--to DIGEST]`
 *
 * Puts back the digest a stack ran before its last promotion (or rollback), as the
 * promotion ledger records it, or an explicit `--to DIGEST`; for each service, and for the
 * per-host proxy (`--service haproxy`, the stack file's `dockyard:proxyImage`). Same verified, atomic path
 * as promote: the image must be in the stack's repository (HEAD by digest, children of
 * an index too) before the stack file's digest line is rewritten and a ledger line
 * (action "rollback") is appended.
 */
import type { Argv, CommandModule } from "yargs";
import { DIGEST_RE, pinnedImages, PROXY_REPOSITORY, stackFilePath } from "../stacks";
import { ledgerPath, LedgerError, previousDigest, readLedger } from "./lib/ledger";
import { manifestReferences, parseRepository } from "./lib/oci";
import { DockyardError, standalone } from "./lib/cli";
import {
  beginChange,
  runChange,
  commonOptions,
  loadSpec,
  resolveStacksDir,
  runCommand,
  selectImages,
  verifyAndApply,
  type ChangeResult,
  type CommonOptions,
  type PlanItem,
} from "./lib/change";

export interface RollbackOptions extends CommonOptions {
  stack: string;
  /** Images to roll back (services; PROXY_REPOSITORY for the proxy); default every one the ledger has a previous digest for. */
  services?: string[];
  /** Explicit digest to put back (needs exactly one service). */
  to?: string;
}

export async function rollback(opts: RollbackOptions): Promise<ChangeResult> {
  const t0 = performance.now();
  const log = opts.log ?? (() => undefined);
  const stacksDir = resolveStacksDir(opts.stacksDir);
  const spec = loadSpec(opts.stack, stacksDir);
  const stackFile = stackFilePath(opts.stack, stacksDir);
  const ledgerFile = opts.ledgerFile ?? ledgerPath(stacksDir);
  if (opts.to !== undefined && !DIGEST_RE.test(opts.to)) throw new DockyardError(`--to ${opts.to}: must be an image digest 'sha256:<64 lowercase hex>'`, 2);

  const images = pinnedImages(spec);
  let names = opts.services?.length ? selectImages(spec, stacksDir, opts.services, "rollback").map((i) => i.name) : [];
  if (opts.to !== undefined && names.length === 0) {
    if (images.length !== 1) {
      const proxy = images.some((i) => i.proxy) ? `; ${PROXY_REPOSITORY} is the per-host proxy` : "";
      throw new DockyardError(`--to needs --service: stack ${opts.stack} pins ${images.length} images (${images.map((i) => i.name).join(", ")}${proxy})`, 2);
    }
    names = [images[0].name];
  }
  if (opts.to !== undefined && names.length > 1) throw new DockyardError(`--to takes one --service; got ${names.join(", ")}`, 2);

  let entries;
  try {
    entries = readLedger(ledgerFile);
  } catch (e) {
    // A ledger line that is not an entry is bad input: the operator fixes the file (exit 2).
    if (e instanceof LedgerError) throw new DockyardError(`${e.message}; nothing was changed`, 2);
    throw e;
  }
  const explicit = names.length > 0;
  const items: PlanItem[] = [];
  const missing: string[] = [];
  for (const s of images.filter((x) => !explicit || names.includes(x.name))) {
    let digest = opts.to;
    if (digest === undefined) {
      const e = previousDigest(entries, opts.stack, s.name, s.digest);
      if (!e?.oldDigest) {
        if (explicit) missing.push(`${s.name}: the ledger ${ledgerFile} has no entry that moved stack ${opts.stack} to ${s.digest}; pass --to DIGEST`);
        continue;
      }
      digest = e.oldDigest;
    }
    items.push({ service: s.name, sourceRepository: s.repository, targetRepository: s.repository, digest, oldDigest: s.digest, strategy: "same-repository", unchanged: digest === s.digest });
  }
  if (missing.length > 0) throw new DockyardError(`cannot roll back stack ${opts.stack}; nothing was changed:\n${missing.map((m) => `  - ${m}`).join("\n")}`, 1);
  if (items.length === 0) throw new DockyardError(`nothing to roll back in stack ${opts.stack}: the ledger ${ledgerFile} records no earlier digest for its current ones; pass --service and --to DIGEST`, 1);

  const result = beginChange({ from: opts.stack, to: opts.stack, action: "rollback", dryRun: !!opts.dryRun, stackFile, items }, "nothing was changed");
  return runChange(result, t0, { log, ...opts.client }, async (pool) => {
    // The image must still be complete in the stack's repository: read its manifest tree.
    for (const it of items) {
      const ref = parseRepository(it.targetRepository);
      const client = pool.get(ref.registry);
      const top = await client.getManifest(ref.repository, it.digest).catch((e: Error) => {
        throw new DockyardError(`${it.service}: cannot read ${it.targetRepository}@${it.digest}: ${e.message}; ${stackFile} was not changed`, 1);
      });
      if (!top) throw new DockyardError(`${it.service}: ${it.targetRepository}@${it.digest} is not in the repository; cannot roll back to it; ${stackFile} was not changed`, 1);
      it.manifests = [top.digest, ...manifestReferences(top).manifests.map((m) => m.digest)];
      log(`[${it.service}] rollback ${it.oldDigest} -> ${it.digest}: present in ${it.targetRepository}`);
    }
    result.ledger = await verifyAndApply(pool, items, { action: "rollback", from: opts.stack, to: opts.stack, stackFile, ledgerFile, writeHooks: opts.writeHooks, log }).catch((e) => {
      if (e instanceof DockyardError) throw e;
      throw new DockyardError(`verifying ${opts.stack}'s repository failed; ${stackFile} was not changed: ${(e as Error).message}`, 1);
    });
  });
}

interface RollbackArgs {
  stack: string;
  service?: string[];
  to?: string;
  "stacks-dir"?: string;
  ledger?: string;
  "dry-run": boolean;
  json: boolean;
  concurrency?: number;
}

export const rollbackCommand: CommandModule<object, RollbackArgs> = {
  command: "rollback <stack>",
  describe: "Put back the image digest a stack ran before (from the promotion ledger), or --to DIGEST",
  builder: (y) =>
    commonOptions(
      y
        .usage(
          "$0 rollback <stack> [--service NAME] [--to DIGEST]\n\n" +
            `Finds, in stacks/promotions.jsonl, the change that moved each image of <stack> (its services', and its\n` +
            `per-host proxy's dockyard:proxyImage, named ${PROXY_REPOSITORY}) to the digest it pins now and puts back\n` +
            "the digest it ran before (or --to DIGEST for one --service). The image must still be\n" +
            "in the stack's repository (verified by digest) before only the digest line of stacks/Pulumi.<stack>.yaml\n" +
            "is rewritten, atomically, and a 'rollback' line is appended to the ledger. Then run `pulumi up`.\n" +
            "Exit codes: 0 done, 1 refused or failed (stack file untouched), 2 bad usage or input.",
        )
        .positional("stack", { type: "string", demandOption: true, describe: "Stack to roll back" })
        .option("service", {
          type: "string",
          array: true,
          describe: `Only these images (repeatable): a service name, or ${PROXY_REPOSITORY} for the per-host proxy image; default every one the ledger can roll back`,
        })
        .option("to", { type: "string", describe: "Digest to put back instead of the ledger's previous one (one service)" }),
    ) as unknown as Argv<RollbackArgs>,
  handler: async (a) => {
    process.exitCode = await runCommand(a.json, (log) =>
      rollback({ stack: a.stack, services: a.service, to: a.to, stacksDir: a["stacks-dir"], ledgerFile: a.ledger, dryRun: a["dry-run"], concurrency: a.concurrency, log }),
    );
  },
};

if (require.main === module) void standalone(rollbackCommand as unknown as CommandModule<object, never>, process.argv.slice(2));
