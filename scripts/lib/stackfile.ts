/**
 * Rewriting image digests in a stack file (stacks/Pulumi.<stack>.yaml).
 *
 * Only the digest values change: the file is parsed with the `yaml` document API to
 * find each `config.dockyard:images.<service>` scalar, and exactly that value's source
 * range is replaced, so comments, blank lines, key order, quoting and indentation stay
 * byte for byte. The write is atomic (temp file in the same directory, fsync, rename,
 * fsync of the directory): a reader sees the old file or the new one, never half of one.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { DIGEST_RE } from "./oci";

export const IMAGES_KEY = "dockyard:images";

/** A stack file problem: unreadable, unwritable, or without the keys to rewrite. */
export class StackFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackFileError";
  }
}

/**
 * Returns `text` with `config.dockyard:images.<service>` set to each digest in `updates`.
 * A service that already has an entry keeps its quoting style; a missing one is added
 * to the mapping (the only case where the yaml library re-renders that mapping).
 */
export function rewriteDigests(text: string, updates: Record<string, string>, where = "stack file"): string {
  for (const [svc, d] of Object.entries(updates)) {
    if (!DIGEST_RE.test(d)) throw new StackFileError(`${where}: config.${IMAGES_KEY}.${svc}: refusing to write ${JSON.stringify(d)}; must be 'sha256:<64 lowercase hex>'`);
  }
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) throw new StackFileError(`${where}: YAML syntax: ${doc.errors[0].message}`);
  const images = doc.getIn(["config", IMAGES_KEY], true);
  if (!YAML.isMap(images)) throw new StackFileError(`${where}: config.${IMAGES_KEY}: missing or not a mapping of service -> digest`);

  const splices: { start: number; end: number; value: string }[] = [];
  const missing: [string, string][] = [];
  for (const [svc, d] of Object.entries(updates)) {
    const node = images.get(svc, true);
    if (node === undefined) {
      missing.push([svc, d]);
      continue;
    }
    if (!YAML.isScalar(node) || !node.range) throw new StackFileError(`${where}: config.${IMAGES_KEY}.${svc}: not a plain value`);
    const [start, valueEnd] = node.range;
    const q = node.type === YAML.Scalar.QUOTE_DOUBLE ? '"' : node.type === YAML.Scalar.QUOTE_SINGLE ? "'" : "";
    if (node.type === YAML.Scalar.BLOCK_FOLDED || node.type === YAML.Scalar.BLOCK_LITERAL) {
      throw new StackFileError(`${where}: config.${IMAGES_KEY}.${svc}: block scalars are not supported for digests`);
    }
    splices.push({ start, end: valueEnd, value: `${q}${d}${q}` });
  }
  let out = text;
  for (const s of splices.sort((a, b) => b.start - a.start)) out = out.slice(0, s.start) + s.value + out.slice(s.end);
  if (missing.length > 0) {
    const d2 = YAML.parseDocument(out);
    for (const [svc, d] of missing) d2.setIn(["config", IMAGES_KEY, svc], d);
    out = d2.toString();
  }
  // Prove the result says what we meant before anyone writes it.
  const check = YAML.parse(out) as { config?: Record<string, Record<string, unknown>> };
  for (const [svc, d] of Object.entries(updates)) {
    if (check?.config?.[IMAGES_KEY]?.[svc] !== d) throw new StackFileError(`${where}: internal error: rewritten file does not pin ${svc} to ${d}`);
  }
  return out;
}

/** Hooks for tests to inject a failure at a given step of the atomic write. */
export interface WriteHooks {
  /** Called after the temp file is written and synced, before the rename. */
  beforeRename?: (tmp: string) => void;
}

/**
 * Replaces `file` with `content` atomically: temp file in the same directory, fsync,
 * rename over the original, fsync of the directory. Keeps the original's mode. On any
 * failure the original is left as it was and the temp file is removed.
 */
export function writeFileAtomic(file: string, content: string, hooks: WriteHooks = {}): void {
  const dir = path.dirname(file);
  let mode = 0o644;
  try {
    mode = fs.statSync(file).mode & 0o7777;
  } catch {
    /* new file */
  }
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
    fs.writeFileSync(fd, content);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    hooks.beforeRename?.(tmp);
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* nothing was created there */
    }
    throw new StackFileError(`cannot write ${file}: ${(e as Error).message}; the file was left unchanged`);
  }
  try {
    const dfd = fs.openSync(dir, "r");
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    /* some filesystems cannot fsync a directory; the rename is done */
  }
}

/**
 * Checks, before any slow work, that `file` can be replaced: it is readable, its
 * directory takes a new file, and the file is not immutable/append-only. Throws
 * StackFileError naming the reason. Nothing is changed.
 */
export function assertReplaceable(file: string): void {
  try {
    fs.accessSync(file, fs.constants.R_OK | fs.constants.W_OK);
  } catch (e) {
    throw new StackFileError(`cannot write ${file}: ${(e as Error).message}`);
  }
  const dir = path.dirname(file);
  const probe = path.join(dir, `.${path.basename(file)}.${process.pid}.probe`);
  try {
    fs.writeFileSync(probe, "", { flag: "wx" });
    // Renaming the probe onto itself is a no-op; what we need is that the target may be replaced.
    // An immutable file (chattr +i) refuses open for writing even to root:
    fs.closeSync(fs.openSync(file, "r+"));
  } catch (e) {
    throw new StackFileError(`cannot write ${file}: ${(e as Error).message}`);
  } finally {
    try {
      fs.rmSync(probe, { force: true });
    } catch {
      /* nothing was created there */
    }
  }
}

/**
 * Sets the digests in the stack file `file` (only those values change) atomically.
 * Returns the previous digests of the services updated.
 */
export function setImageDigests(file: string, updates: Record<string, string>, hooks: WriteHooks = {}): Record<string, string | undefined> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new StackFileError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const before = (YAML.parse(text) as { config?: Record<string, Record<string, string>> })?.config?.[IMAGES_KEY] ?? {};
  const out = rewriteDigests(text, updates, path.basename(file));
  const previous: Record<string, string | undefined> = {};
  for (const svc of Object.keys(updates)) previous[svc] = before[svc];
  if (out !== text) writeFileAtomic(file, out, hooks);
  return previous;
}

/**
 * Runs `fn` holding `<file>.lock` (created O_EXCL, holding our pid), so two promotes or
 * rollbacks never interleave their read-modify-write of one stack file and its ledger.
 * A lock left by a process that no longer runs is taken over.
 */
export function withFileLock<T>(file: string, fn: () => T): T {
  const lock = `${file}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) {
        throw new StackFileError(`cannot lock ${file}: ${(e as Error).message}${(e as NodeJS.ErrnoException).code === "EEXIST" ? "; another promote or rollback is changing it" : ""}`);
      }
      const holder = Number.parseInt(fs.readFileSync(lock, "utf8"), 10);
      let alive = false;
      try {
        if (Number.isInteger(holder) && holder > 0) {
          process.kill(holder, 0);
          alive = true;
        }
      } catch (k) {
        alive = (k as NodeJS.ErrnoException).code === "EPERM";
      }
      if (alive) throw new StackFileError(`cannot change ${file}: another promote or rollback (pid ${holder}) is changing it; lock ${lock}`);
      fs.rmSync(lock, { force: true }); // stale: its process is gone
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}
