import { spawn } from "node:child_process";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { PlacementError } from "../../components/placement";
import { ConfigError } from "../../stacks";
import { DockyardError, EXIT, exitCodeOf, reportError } from "../../scripts/lib/cli";
import { LedgerError } from "../../scripts/lib/ledger";

const ROOT = path.resolve(__dirname, "../..");

describe("one exit-code mechanism", () => {
  it("exitCodeOf: a DockyardError's own code, bad input 2 for config and placement, 1 for anything else", () => {
    expect(exitCodeOf(new DockyardError("x", 2))).toBe(EXIT.usage);
    expect(exitCodeOf(new DockyardError("x"))).toBe(EXIT.failure);
    expect(exitCodeOf(new ConfigError("dev", ["p"]))).toBe(EXIT.usage);
    expect(exitCodeOf(new PlacementError("p"))).toBe(EXIT.usage);
    expect(exitCodeOf(new Error("boom"))).toBe(EXIT.failure);
  });

  it("reportError prints an operator's mistake as its message only, and an unexpected error with its stack", () => {
    const out: string[] = [];
    expect(reportError(new LedgerError("stacks/promotions.jsonl: line 3 is not JSON"), (s) => out.push(s))).toBe(EXIT.failure);
    expect(out.join("")).toBe("stacks/promotions.jsonl: line 3 is not JSON\n");
    out.length = 0;
    reportError(new Error("boom"), (s) => out.push(s));
    expect(out.join("")).toMatch(/^Error: boom\n\s+at /);
  });
});

describe("the dockyard CLI with a closed stdout", () => {
  it("`dockyard plan dev | head -c 0`: ends quietly (exit 141, as SIGPIPE would), no EPIPE trace", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "scripts/dockyard.ts"), "plan", "dev"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // The reader goes away before the plan is printed (as `head -c 0` does, or `head` after its lines).
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(code).toBe(141);
  }, 120_000);
});
