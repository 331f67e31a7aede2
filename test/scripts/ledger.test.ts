import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { appendLedger, currentActor, previousDigest, readLedger, type LedgerEntry } from "../../scripts/lib/ledger";

const D = (c: string) => `sha256:${c.repeat(64)}`;
const dirs: string[] = [];
function ledgerFile(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-ledger-"));
  dirs.push(d);
  return path.join(d, "promotions.jsonl");
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function entry(over: Partial<LedgerEntry>): LedgerEntry {
  return { time: "2026-01-01T00:00:00.000Z", actor: "ci@example.com", action: "promote", from: "test", to: "prod", service: "web", repository: "r/web", oldDigest: D("a"), newDigest: D("b"), ...over };
}

describe("ledger", () => {
  it("appends whole lines and reads them back in order; a missing file is empty", () => {
    const f = ledgerFile();
    expect(readLedger(f)).toEqual([]);
    appendLedger(f, [entry({})]);
    appendLedger(f, [entry({ oldDigest: D("b"), newDigest: D("c") }), entry({ service: "api" })]);
    const text = fs.readFileSync(f, "utf8");
    expect(text.split("\n")).toHaveLength(4);
    expect(text.endsWith("\n")).toBe(true);
    expect(readLedger(f).map((e) => [e.service, e.newDigest])).toEqual([
      ["web", D("b")],
      ["web", D("c")],
      ["api", D("b")],
    ]);
  });

  it("names the line of a corrupt entry, and refuses to extend a torn last line", () => {
    const f = ledgerFile();
    appendLedger(f, [entry({})]);
    fs.appendFileSync(f, '{"time": "x"');
    expect(() => readLedger(f)).toThrow(/promotions\.jsonl:2: not a JSON line/);
    expect(() => appendLedger(f, [entry({})])).toThrow(/last line is incomplete/);
    fs.writeFileSync(f, JSON.stringify({ ...entry({}), newDigest: "latest" }) + "\n");
    expect(() => readLedger(f)).toThrow(/:1: not a ledger entry/);
    expect(() => appendLedger(ledgerFile(), [entry({ newDigest: "latest" })])).toThrow(/invalid ledger entry/);
  });

  it("previousDigest finds the change that moved the stack to its current digest", () => {
    const entries = [
      entry({ oldDigest: D("a"), newDigest: D("b") }),
      entry({ oldDigest: D("b"), newDigest: D("c") }),
      entry({ to: "staging", oldDigest: D("e"), newDigest: D("c") }),
      entry({ action: "rollback", from: "prod", oldDigest: D("c"), newDigest: D("b") }),
    ];
    expect(previousDigest(entries, "prod", "web", D("b"))?.oldDigest).toBe(D("c")); // latest entry wins: the rollback
    expect(previousDigest(entries.slice(0, 2), "prod", "web", D("b"))?.oldDigest).toBe(D("a"));
    expect(previousDigest(entries, "staging", "web", D("c"))?.oldDigest).toBe(D("e"));
    expect(previousDigest(entries, "prod", "api", D("b"))).toBeUndefined();
    expect(previousDigest([entry({ oldDigest: null })], "prod", "web", D("b"))).toBeUndefined();
  });

  it("currentActor prefers DOCKYARD_ACTOR", () => {
    const saved = process.env.DOCKYARD_ACTOR;
    process.env.DOCKYARD_ACTOR = "release-bot";
    try {
      expect(currentActor()).toBe("release-bot");
    } finally {
      if (saved === undefined) delete process.env.DOCKYARD_ACTOR;
      else process.env.DOCKYARD_ACTOR = saved;
    }
    expect(currentActor().length).toBeGreaterThan(0);
  });
});
