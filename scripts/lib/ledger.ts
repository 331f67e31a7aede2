/**
 * The promotion ledger: stacks/promotions.jsonl, one JSON object per line, appended
 * by promote and rollback after the stack file is rewritten, and committed with it.
 * It is the audit trail (who moved which digest where, when) and rollback's memory of
 * what a stack ran before.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DIGEST_RE } from "../../stacks";

export const LEDGER_FILE = "promotions.jsonl";

export interface LedgerEntry {
  /** ISO 8601 UTC time of the change. */
  time: string;
  /** Who made it: $DOCKYARD_ACTOR, else git user.email, else user@host. */
  actor: string;
  action: "promote" | "rollback";
  /** Source stack (promote) or the stack itself (rollback). */
  from: string;
  /** Stack whose file was rewritten. */
  to: string;
  service: string;
  /** Target repository without digest. */
  repository: string;
  /** Digest the target stack pinned before. */
  oldDigest: string | null;
  /** Digest it pins now. */
  newDigest: string;
}

export class LedgerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LedgerError";
  }
}

export function ledgerPath(stacksDir: string): string {
  return path.join(stacksDir, LEDGER_FILE);
}

/** Who is making a change, for the ledger. */
export function currentActor(): string {
  if (process.env.DOCKYARD_ACTOR) return process.env.DOCKYARD_ACTOR;
  try {
    const email = execFileSync("git", ["config", "user.email"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 }).trim();
    if (email) return email;
  } catch {
    /* no git or no user.email */
  }
  return `${os.userInfo().username}@${os.hostname()}`;
}

function validEntry(e: unknown): e is LedgerEntry {
  const x = e as LedgerEntry;
  return (
    typeof x === "object" && x !== null && typeof x.time === "string" && typeof x.actor === "string" &&
    (x.action === "promote" || x.action === "rollback") && typeof x.from === "string" && typeof x.to === "string" &&
    typeof x.service === "string" && typeof x.newDigest === "string" && DIGEST_RE.test(x.newDigest) &&
    (x.oldDigest === null || (typeof x.oldDigest === "string" && DIGEST_RE.test(x.oldDigest)))
  );
}

/** Reads every entry, oldest first. A missing file is an empty ledger; a bad line is an error naming it. */
export function readLedger(file: string): LedgerEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new LedgerError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const out: LedgerEntry[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch {
      throw new LedgerError(`${file}:${i + 1}: not a JSON line`);
    }
    if (!validEntry(e)) throw new LedgerError(`${file}:${i + 1}: not a ledger entry (needs time, actor, action, from, to, service, oldDigest, newDigest)`);
    out.push(e);
  });
  return out;
}

/**
 * Appends entries, one line each, in one write of whole lines (O_APPEND), then fsync.
 * A file that does not end in a newline (a torn last line) is refused rather than extended.
 */
export function appendLedger(file: string, entries: LedgerEntry[]): void {
  if (entries.length === 0) return;
  for (const e of entries) if (!validEntry(e)) throw new LedgerError(`refusing to append an invalid ledger entry: ${JSON.stringify(e)}`);
  const text = entries.map((e) => JSON.stringify(e) + "\n").join("");
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644);
    const size = fs.fstatSync(fd).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      const r = fs.openSync(file, "r");
      fs.readSync(r, last, 0, 1, size - 1);
      fs.closeSync(r);
      if (last[0] !== 0x0a) throw new Error("its last line is incomplete; fix the file by hand");
    }
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } catch (e) {
    throw new LedgerError(`cannot append to ${file}: ${(e as Error).message}`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * What `stack` ran before `current` for `service`: the old digest of the latest entry
 * that moved the stack's service to `current`. Undefined when the ledger does not say.
 */
export function previousDigest(entries: LedgerEntry[], stack: string, service: string, current: string): LedgerEntry | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    if (e.to === stack && e.service === service && e.newDigest === current) return e.oldDigest ? e : undefined;
  }
  return undefined;
}
