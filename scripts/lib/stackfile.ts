/**
 * Rewriting image digests in a stack file (stacks/Pulumi.<stack>.yaml).
 *
 * Only the digest values change: the file is parsed with the `yaml` document API to
 * find each `config.dockyard:images.<service>` scalar (or, for the per-host proxy,
 * `config.dockyard:proxyImage`), and exactly that value's source
 * range is replaced, so comments, blank lines, key order, quoting and indentation stay
 * byte for byte. The write is atomic (temp file in the same directory, fsync, rename,
 * fsync of the directory): a reader sees the old file or the new one, never half of one.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { DIGEST_RE, PROXY_REPOSITORY } from "../../stacks/schema";

export const IMAGES_KEY = "dockyard:images";
export const PROXY_IMAGE_KEY = "dockyard:proxyImage";

/** Where an image's digest lives in a stack file: `config.dockyard:images.<name>`, or `config.dockyard:proxyImage` for the proxy (named PROXY_REPOSITORY). */
export function digestKeyPath(name: string): string[] {
  return name === PROXY_REPOSITORY ? ["config", PROXY_IMAGE_KEY] : ["config", IMAGES_KEY, name];
}

/** A stack file problem: unreadable, unwritable, or without the keys to rewrite. */
export class StackFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackFileError";
  }
}

/**
 * Returns `text` with each image in `updates` (a service name, or PROXY_REPOSITORY for the
 * proxy; see digestKeyPath) set to its digest. An entry that exists keeps its quoting
 * style; a missing one is added (the only case where the yaml library re-renders that mapping).
 */
export function rewriteDigests(text: string, updates: Record<string, string>, where = "stack file"): string {
  const key = (name: string) => digestKeyPath(name).slice(1).join(".");
  for (const [name, d] of Object.entries(updates)) {
    if (!DIGEST_RE.test(d)) throw new StackFileError(`${where}: config.${key(name)}: refusing to write ${JSON.stringify(d)}; must be 'sha256:<64 lowercase hex>'`);
  }
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) throw new StackFileError(`${where}: YAML syntax: ${doc.errors[0].message}`);
  // A new stack's file has no images yet (README "The first deploy of a new stack"): the map is added.
  const images = doc.getIn(["config", IMAGES_KEY], true);
  if (Object.keys(updates).some((name) => name !== PROXY_REPOSITORY) && images !== undefined && !YAML.isMap(images)) {
    throw new StackFileError(`${where}: config.${IMAGES_KEY}: not a mapping of service -> digest`);
  }
  if (!YAML.isMap(doc.get("config", true))) throw new StackFileError(`${where}: config: missing or not a mapping`);

  const splices: { start: number; end: number; value: string }[] = [];
  const missing: [string[], string][] = [];
  for (const [name, d] of Object.entries(updates)) {
    const node = doc.getIn(digestKeyPath(name), true);
    if (node === undefined) {
      missing.push([digestKeyPath(name), d]);
      continue;
    }
    if (!YAML.isScalar(node) || !node.range) throw new StackFileError(`${where}: config.${key(name)}: not a plain value`);
    const [start, valueEnd] = node.range;
    const q = node.type === YAML.Scalar.QUOTE_DOUBLE ? '"' : node.type === YAML.Scalar.QUOTE_SINGLE ? "'" : "";
    if (node.type === YAML.Scalar.BLOCK_FOLDED || node.type === YAML.Scalar.BLOCK_LITERAL) {
      throw new StackFileError(`${where}: config.${key(name)}: block scalars are not supported for digests`);
    }
    splices.push({ start, end: valueEnd, value: `${q}${d}${q}` });
  }
  let out = text;
  for (const s of splices.sort((a, b) => b.start - a.start)) out = out.slice(0, s.start) + s.value + out.slice(s.end);
  if (missing.length > 0) {
    const d2 = YAML.parseDocument(out);
    for (const [keyPath, d] of missing) d2.setIn(keyPath, d);
    out = d2.toString();
  }
  // Prove the result says what we meant before anyone writes it.
  const check = YAML.parseDocument(out);
  for (const [name, d] of Object.entries(updates)) {
    if (check.getIn(digestKeyPath(name)) !== d) throw new StackFileError(`${where}: internal error: rewritten file does not pin ${name} to ${d}`);
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
 * Returns the previous digests of the images updated (keyed as in rewriteDigests).
 */
export function setImageDigests(file: string, updates: Record<string, string>, hooks: WriteHooks = {}): Record<string, string | undefined> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new StackFileError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const out = rewriteDigests(text, updates, path.basename(file));
  const before = YAML.parseDocument(text);
  const previous: Record<string, string | undefined> = {};
  for (const name of Object.keys(updates)) {
    const v = before.getIn(digestKeyPath(name));
    previous[name] = typeof v === "string" ? v : undefined;
  }
  if (out !== text) writeFileAtomic(file, out, hooks);
  return previous;
}

/** How long withFileLock waits for another writer, and when a lock counts as abandoned. */
export interface LockOptions {
  /** Wait up to this long for a live holder to finish; default 15 s (a holder only rewrites one file and appends a line). */
  waitMs?: number;
  /** A lock file older than this is stale whatever it says; default 10 minutes. */
  staleMs?: number;
}

/** What a lock file says: who holds it. Written whole before the lock exists (see takeLock). */
interface LockHolder {
  pid: number;
  host: string;
  time: string;
}

const LOCK_WAIT_MS = 15_000;
const LOCK_STALE_MS = 10 * 60_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Creates `lock` with our pid, host and time in one step: the content goes to a temp file
 * first, which is then hard-linked to the lock path; link(2) fails with EEXIST if the lock
 * exists, so the lock is never seen without its content. Returns the lock's inode, or
 * undefined if another writer holds it.
 */
function takeLock(lock: string): number | undefined {
  const tmp = `${lock}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const me: LockHolder = { pid: process.pid, host: os.hostname(), time: new Date().toISOString() };
  try {
    fs.writeFileSync(tmp, `${JSON.stringify(me)}\n`, { flag: "wx" });
    try {
      fs.linkSync(tmp, lock);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return undefined;
      throw e;
    }
    return fs.statSync(tmp).ino;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Why a lock held by `holder` (undefined: unreadable) and last written at `mtimeMs` is stale,
 * or undefined if it may still be held: stale only when its holder is provably dead (a pid on this host that
 * no longer runs) or it is older than `staleMs`. An empty or unreadable lock is not stale
 * until it is old: it may belong to a writer we cannot identify.
 */
function staleReason(holder: LockHolder | undefined, mtimeMs: number, staleMs: number): string | undefined {
  const ageMs = Date.now() - mtimeMs;
  if (ageMs > staleMs) return `older than ${Math.round(staleMs / 1000)} s`;
  if (holder && holder.host === os.hostname()) {
    try {
      process.kill(holder.pid, 0);
    } catch (k) {
      if ((k as NodeJS.ErrnoException).code === "ESRCH") return `pid ${holder.pid} no longer runs on this host`;
    }
  }
  return undefined;
}

function readHolder(lock: string): LockHolder | undefined {
  try {
    const h = JSON.parse(fs.readFileSync(lock, "utf8")) as Partial<LockHolder>;
    if (Number.isInteger(h.pid) && (h.pid as number) > 0 && typeof h.host === "string" && typeof h.time === "string") return h as LockHolder;
  } catch {
    /* empty, partial or not ours: unknown holder */
  }
  return undefined;
}

/**
 * Removes the stale lock `lock` if it is still the file (inode `ino`) judged stale, and is
 * still stale when judged again under the guard: an inode number freed by a breaker is
 * reused at once by the next file created (tmpfs, ext4), so a lock another writer took
 * since we looked can carry the very inode we judged. Breakers
 * take `<lock>.break` first (created the same way as the lock), so two writers that both saw
 * the same stale lock cannot remove it once and then the lock the first of them took
 * afterwards. Returns false if another writer is breaking it now.
 */
export function breakLock(lock: string, ino: number, staleMs: number): boolean {
  const guard = `${lock}.break`;
  let guardIno = takeLock(guard);
  if (guardIno === undefined) {
    // A breaker that died holding the guard (it is held for microseconds) leaves it behind.
    let st: fs.Stats;
    try {
      st = fs.statSync(guard);
    } catch {
      return false;
    }
    if (!staleReason(readHolder(guard), st.mtimeMs, Math.min(staleMs, 60_000))) return false;
    fs.rmSync(guard, { force: true });
    guardIno = takeLock(guard);
    if (guardIno === undefined) return false;
  }
  try {
    const st = fs.statSync(lock, { throwIfNoEntry: false });
    if (st?.ino === ino && staleReason(readHolder(lock), st.mtimeMs, staleMs)) fs.rmSync(lock, { force: true });
    return true;
  } finally {
    if (fs.statSync(guard, { throwIfNoEntry: false })?.ino === guardIno) fs.rmSync(guard, { force: true });
  }
}

function describeHolder(lock: string, holder: LockHolder | undefined, mtimeMs: number): string {
  if (holder) return `pid ${holder.pid} on ${holder.host}, since ${holder.time}`;
  return `lock file ${lock} empty or unreadable, written ${Math.round((Date.now() - mtimeMs) / 1000)} s ago; remove it if no promote or rollback runs`;
}

/**
 * Runs `fn` holding `<file>.lock`, so two promotes or rollbacks never interleave their
 * read-modify-write of one stack file and its ledger. The lock file names its holder (pid,
 * host, time) from the moment it exists. A writer that finds the lock held waits for it
 * (up to `waitMs`), then refuses. A lock is taken over only when stale: its holder's pid
 * no longer runs on this host, or it is older than `staleMs`.
 */
export function withFileLock<T>(file: string, fn: () => T, opts: LockOptions = {}): T {
  const lock = `${file}.lock`;
  const waitMs = opts.waitMs ?? LOCK_WAIT_MS;
  const staleMs = opts.staleMs ?? LOCK_STALE_MS;
  const deadline = Date.now() + waitMs;
  let ino: number | undefined;
  for (let pause = 5; ; pause = Math.min(pause * 2, 100)) {
    try {
      ino = takeLock(lock);
    } catch (e) {
      throw new StackFileError(`cannot lock ${file}: ${(e as Error).message}`);
    }
    if (ino !== undefined) break;
    const st = fs.statSync(lock, { throwIfNoEntry: false });
    if (!st) continue; // released between our link and our look: try again at once
    const holder = readHolder(lock);
    if (staleReason(holder, st.mtimeMs, staleMs) && breakLock(lock, st.ino, staleMs)) continue;
    if (Date.now() >= deadline) {
      throw new StackFileError(`cannot change ${file}: another promote or rollback (${describeHolder(lock, holder, st.mtimeMs)}) is changing it; waited ${Math.round(waitMs / 1000)} s for lock ${lock}`);
    }
    sleepSync(pause);
  }
  try {
    return fn();
  } finally {
    // Remove only our own lock: if we outlived staleMs, another writer may hold it now.
    if (fs.statSync(lock, { throwIfNoEntry: false })?.ino === ino) fs.rmSync(lock, { force: true });
  }
}
