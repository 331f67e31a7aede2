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
import type { Argv, CommandModule } from "yargs";
import {
  pinnedImages,
  PROXY_REPOSITORY,
  proxyRepository,
  splitImageRef,
  stackFilePath,
} from "../stacks";
import { ledgerPath } from "./lib/ledger";
import {
  copyImage,
  copyStrategy,
  parseRepository,
  type CopyResult,
} from "./lib/oci";
import { DockyardError, standalone } from "./lib/cli";
import {
  beginChange,
  runChange,
  commonOptions,
  formatBytes,
  loadSpec,
  repoRef,
  resolveStacksDir,
  runCommand,
  selectImages,
  short,
  verifyAndApply,
  type ChangeResult,
  type CommonOptions,
  type PlanItem,
} from "./lib/change";

export interface PromoteOptions extends CommonOptions {
  from: string;
  to: string;
  /** Images to promote by name: services, and PROXY_REPOSITORY for the proxy; default every service and the proxy. */
  services?: string[];
  /** JSON file as printed by `pulumi stack output --json --stack <from>`; default: run that command. */
  sourceOutputs?: string;
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

  // Fails before any slow copy if the stack file cannot be replaced.
  const result = beginChange({ from: opts.from, to: opts.to, action: "promote", dryRun: !!opts.dryRun, stackFile, items }, "nothing was copied or changed");
  return runChange(result, t0, { log, ...opts.client }, async (pool) => {
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
  });
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

if (require.main === module) void standalone(promoteCommand as unknown as CommandModule<object, never>, process.argv.slice(2));
