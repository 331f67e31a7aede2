/**
 * The list of stack knobs has one owner, StackKnobsSchema: Pulumi.yaml's `config:`
 * declarations and README's knob table are held equal to what the schema says.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { describe, expect, it } from "vitest";
import { KNOB_KEYS, knobDeclarations, knobTable, PROJECT } from "../../stacks";

const ROOT = path.join(__dirname, "..", "..");

describe("Pulumi.yaml declares exactly the schema's project knobs", () => {
  const declared = (YAML.parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { config: Record<string, unknown> }).config;

  it("same keys, types, items, defaults, secret flags and descriptions, in the same order", () => {
    // Fails when either side gains, loses or changes a key: edit StackKnobsSchema, then
    // copy knobDeclarations() into Pulumi.yaml.
    expect(declared).toEqual(knobDeclarations());
    expect(Object.keys(declared)).toEqual(Object.keys(knobDeclarations()));
  });

  it("every dockyard: knob of the schema is declared (aws:region is the AWS provider's, not the project's)", () => {
    const project = KNOB_KEYS.filter((k) => k.startsWith(`${PROJECT}:`)).map((k) => k.slice(PROJECT.length + 1));
    expect(Object.keys(knobDeclarations())).toEqual(project);
    expect(KNOB_KEYS.filter((k) => !k.startsWith(`${PROJECT}:`))).toEqual(["aws:region"]);
  });

  it("an optional knob without a schema default is declared with default \"\", which the schema reads as unset", () => {
    // The CLI requires every project key without a default (pkg/workspace/config.go mergeConfig).
    const d = knobDeclarations();
    expect(d.sshPublicKey.default).toBe("");
    expect(d.proxyImage.default).toBe("");
    expect(d.registry.default).toBeUndefined();
    expect(d.sshCidrs).toMatchObject({ type: "array", items: { type: "string" }, default: [] });
  });
});

describe("README's knob table", () => {
  it("is knobTable()'s output (paste it from `npx tsx -e 'console.log(require(\"./stacks\").knobTable())'`)", () => {
    const lines = fs.readFileSync(path.join(ROOT, "README.md"), "utf8").split("\n");
    const header = knobTable().split("\n")[0];
    const start = lines.indexOf(header);
    expect(start, `README.md has no line "${header}"`).toBeGreaterThanOrEqual(0);
    let end = start;
    while (end < lines.length && lines[end].startsWith("|")) end++;
    expect(lines.slice(start, end).join("\n")).toBe(knobTable());
  });

  it("lists every knob once, code in backticks (so <placeholders> are not read as HTML)", () => {
    const rows = knobTable().split("\n").slice(2);
    expect(rows.map((r) => /^\| `([^`]+)` \|/.exec(r)?.[1])).toEqual(KNOB_KEYS);
    for (const r of rows) expect(r.replace(/`[^`]*`/g, "")).not.toMatch(/<[A-Za-z0-9]/);
  });
});
