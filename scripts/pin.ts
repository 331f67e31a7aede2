/**
 * `dockyard pin [STACK ...] [--check]`
 *
 * Makes sure every image digest a stack file pins (each service's `dockyard:images.<name>`
 * and the per-host proxy's `dockyard:proxyImage`) carries its pin tag
 * (`pin-sha256-<hex>`) in that stack's repository, so the repository's lifecycle policy
 * (expire untagged images) can never delete an image a stack still runs. promote and
 * rollback tag the digests they write; this covers digests that reach a stack file any
 * other way (CI writing test's digest after a build, a hand edit), and checks the lot.
 *
 * Default: every stack file in the stacks directory. `--check` only reads: exit 1 and
 * the list of untagged digests if any is missing. Nothing in the stack files changes.
 * A registry that cannot be reached is reported as such (its digests "unreachable", not
 * "missing": running pin would not help), and its other digests are not tried again.
 */
import type { Argv, CommandModule } from "yargs";
import { pinnedImages, pinTag, shortDigest, stackNames } from "../stacks";
import { isUnreachable, parseRepository, pinImage, type ClientOptions, type TagOutcome, type TransferStats } from "./lib/oci";
import { DockyardError, standalone } from "./lib/cli";
import { ClientPool, loadSpec, resolveStacksDir } from "./lib/change";

export interface PinOptions {
  /** Stacks whose pinned digests are tagged; default every Pulumi.<stack>.yaml in stacksDir. */
  stacks?: string[];
  stacksDir?: string;
  /** Only check: tag nothing, report what is missing. */
  check?: boolean;
  client?: ClientOptions;
  log?: (line: string) => void;
}

export interface PinItem {
  /** Stacks that pin this image (one repository may serve several stacks). */
  stacks: string[];
  /** Services that run it; "haproxy" (PROXY_REPOSITORY) for the per-host proxy image. */
  services: string[];
  repository: string;
  digest: string;
  tag: string;
  /** Child manifests of an index, each pinned too (0 for a single-platform image; unset after an error). */
  children?: number;
  /**
   * present: already tagged; tagged: tagged now; missing: untagged (--check); unreachable: its
   * registry could not be reached, so not known (see `error` and PinResult.unreachable); error: see `error`.
   */
  outcome: TagOutcome | "unreachable" | "error";
  error?: string;
}

/** A registry nothing answered at (connection refused, unknown host, timeout...). */
export interface UnreachableRegistry {
  registry: string;
  /** The connection error, as the first request to it failed (after its retries). */
  error: string;
  /** How many pinned digests in it were therefore neither checked nor tagged. */
  items: number;
}

export interface PinResult {
  check: boolean;
  items: PinItem[];
  /** Registries that could not be reached; their items have outcome "unreachable". */
  unreachable: UnreachableRegistry[];
  stats: TransferStats;
}

/** Tags (or with check, looks for the tag of) every digest the stacks pin. Throws DockyardError on bad input. */
export async function pin(opts: PinOptions): Promise<PinResult> {
  const log = opts.log ?? (() => undefined);
  const stacksDir = resolveStacksDir(opts.stacksDir);
  const stacks = opts.stacks && opts.stacks.length > 0 ? opts.stacks : stackNames(stacksDir);
  if (stacks.length === 0) throw new DockyardError(`no stack files Pulumi.<stack>.yaml in ${stacksDir}`, 2);
  // Every stack is validated before any registry is touched.
  const specs = stacks.map((s) => loadSpec(s, stacksDir));
  const byImage = new Map<string, PinItem>();
  for (const spec of specs) {
    for (const s of pinnedImages(spec)) {
      const key = `${s.repository}@${s.digest}`;
      const item = byImage.get(key) ?? { stacks: [], services: [], repository: s.repository, digest: s.digest, tag: pinTag(s.digest), outcome: "missing" as const };
      if (!item.stacks.includes(spec.stack)) item.stacks.push(spec.stack);
      if (!item.services.includes(s.name)) item.services.push(s.name);
      byImage.set(key, item);
    }
  }
  const pool = new ClientPool({ log, ...opts.client });
  const items = [...byImage.values()];
  const unreachable = new Map<string, UnreachableRegistry>();
  try {
    for (const it of items) {
      const ref = parseRepository(it.repository);
      const down = unreachable.get(ref.registry);
      if (down) {
        // Already failed to connect after its retries: do not spend them again per image.
        it.outcome = "unreachable";
        it.error = `registry ${ref.registry} could not be reached: ${down.error}`;
        down.items++;
        log(`${it.repository}@${it.digest} (${it.stacks.join(", ")}): unreachable (registry ${ref.registry})`);
        continue;
      }
      const client = pool.get(ref.registry);
      try {
        const p = await pinImage(client, ref, it.digest, { check: opts.check });
        it.children = p.children.length;
        // An index counts as pinned only with every child: one missing tag is "missing".
        it.outcome = p.children.some((c) => c.outcome === "missing") ? "missing" : p.outcome;
      } catch (e) {
        if (isUnreachable(e)) {
          unreachable.set(ref.registry, { registry: ref.registry, error: (e as Error).message, items: 1 });
          it.outcome = "unreachable";
          it.error = `registry ${ref.registry} could not be reached: ${(e as Error).message}`;
        } else {
          it.outcome = "error";
          it.error = (e as Error).message;
        }
      }
      log(`${it.repository}@${it.digest} (${it.stacks.join(", ")}): ${it.outcome}${it.error ? `: ${it.error}` : ""}`);
    }
  } finally {
    pool.close();
  }
  return { check: !!opts.check, items, unreachable: [...unreachable.values()], stats: pool.stats };
}

/** 0 when every pinned digest is tagged (now), 1 otherwise (missing, unreachable registry, or error). */
export function pinExitCode(r: PinResult): 0 | 1 {
  return r.items.every((i) => i.outcome === "present" || i.outcome === "tagged") ? 0 : 1;
}

export function formatPinResult(r: PinResult): string {
  const word: Record<PinItem["outcome"], string> = { present: "tagged", tagged: "tagged now", missing: "NOT TAGGED", unreachable: "UNKNOWN (registry unreachable)", error: "ERROR" };
  // An unreachable registry's error is said once, below, not on each of its rows.
  const detail = (i: PinItem) => (i.error && i.outcome !== "unreachable" ? `: ${i.error}` : "");
  const rows = r.items.map((i) => [i.stacks.join(","), i.services.join(","), `${i.repository}@${shortDigest(i.digest)}`, word[i.outcome] + detail(i)]);
  const head = ["STACKS", "SERVICE", "IMAGE", "PIN TAG"];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => (c === 3 ? 0 : row[c].length))));
  const lines = [head, ...rows].map((row) => row.map((cell, c) => (c === 3 ? cell : cell.padEnd(widths[c]))).join("  ").trimEnd());
  const count = (o: PinItem["outcome"]) => r.items.filter((i) => i.outcome === o).length;
  const [missing, failed] = [count("missing"), count("error")];
  if (missing + failed + r.unreachable.length === 0) {
    lines.push(`every pinned digest carries its pin tag (${r.items.length} image(s), ${r.stats.tagsPut} tag(s) added)`);
  }
  // Tagging cannot help where nothing answers: name the registry and its error, suggest no pin run.
  for (const u of r.unreachable) {
    lines.push(`registry ${u.registry} could not be reached (${u.error}): ${u.items} pinned digest(s) there not ${r.check ? "checked" : "tagged"}; check the registry address in the stack file, the network and the registry, then run this again`);
  }
  if (missing > 0) lines.push(`${missing} pinned digest(s) without their pin tag: the lifecycle policy may expire them; run \`npm run dockyard -- pin\``);
  if (failed > 0) lines.push(`${failed} pinned digest(s) could not be ${r.check ? "checked" : "tagged"} (ERROR above)`);
  return lines.join("\n");
}

interface PinArgs {
  stacks?: string[];
  "stacks-dir"?: string;
  check: boolean;
  json: boolean;
}

export const pinCommand: CommandModule<object, PinArgs> = {
  command: "pin [stacks..]",
  describe: "Tag every digest the stack files pin (pin-sha256-<hex>) so the lifecycle policy never expires it",
  builder: (y) =>
    y
      .usage(
        "$0 pin [STACK ...] [--check]\n\n" +
          "For each digest the stack files pin (default: every stacks/Pulumi.<stack>.yaml): each service's image\n" +
          "and the per-host proxy's (dockyard:proxyImage, in <registry>/haproxy), makes sure its\n" +
          "repository has the immutable tag pin-sha256-<hex> on it; the repository lifecycle policy only\n" +
          "expires untagged images. --check changes nothing and exits 1 if a tag is missing.\n" +
          "A registry that cannot be reached is named with its error (its digests are UNKNOWN, not untagged).\n" +
          "Exit codes: 0 every pinned digest tagged, 1 some are not (or a registry could not be reached or failed), 2 bad input.",
      )
      .positional("stacks", { type: "string", array: true, describe: "Stacks to pin; default all stack files" })
      .option("stacks-dir", { type: "string", describe: "Directory with environment.yaml and Pulumi.<stack>.yaml files", defaultDescription: "stacks/" })
      .option("check", { type: "boolean", default: false, describe: "Only check for the tags; tag nothing" })
      .option("json", { type: "boolean", default: false, describe: "Print the result as JSON on stdout" }) as unknown as Argv<PinArgs>,
  handler: async (a) => {
    const log = (l: string) => process.stderr.write(`${l}\n`);
    try {
      const r = await pin({ stacks: a.stacks, stacksDir: a["stacks-dir"], check: a.check, log });
      process.stdout.write(a.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatPinResult(r)}\n`);
      process.exitCode = pinExitCode(r);
    } catch (e) {
      const code = e instanceof DockyardError ? e.exitCode : 1;
      if (a.json) process.stdout.write(`${JSON.stringify({ error: (e as Error).message, exitCode: code })}\n`);
      process.stderr.write(`error: ${(e as Error).message}\n`);
      process.exitCode = code;
    }
  },
};

if (require.main === module) void standalone(pinCommand as unknown as CommandModule<object, never>, process.argv.slice(2));
