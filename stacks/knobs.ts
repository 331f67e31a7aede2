/**
 * The stack knobs as Pulumi.yaml declares them and README lists them, read from their one
 * owner, StackKnobsSchema (stacks/schema.ts): type, items, default and description.
 * test/stacks/knobs.test.ts holds Pulumi.yaml and README's table equal to these.
 */
import { z } from "zod";
import { PROJECT, StackKnobsSchema } from "./schema";

type PulumiType = "string" | "integer" | "boolean" | "array" | "object";
/** A project config key as Pulumi.yaml declares it (the CLI's ProjectConfigType). */
export interface KnobDeclaration {
  type: PulumiType;
  items?: { type: PulumiType };
  /** Absent: the key is required (the CLI refuses a stack without it). */
  default?: unknown;
  secret?: boolean;
  description: string;
}

function pulumiType(t: z.core.$ZodType): PulumiType {
  const kind = t._zod.def.type;
  if (kind === "string" || kind === "boolean") return kind;
  if (kind === "enum") return "string";
  if (kind === "number") return "integer";
  if (kind === "array") return "array";
  if (kind === "record" || kind === "object") return "object";
  throw new Error(`knob type ${kind} has no Pulumi.yaml declaration`);
}

/** How Pulumi.yaml declares one knob, read from its schema. */
function declarationOf(key: string, schema: z.ZodType): KnobDeclaration {
  const meta = z.globalRegistry.get(schema) ?? {};
  if (typeof meta.description !== "string") throw new Error(`knob ${key} has no description`);
  let t: z.core.$ZodType = schema;
  let dflt: { value: unknown } | undefined;
  let optional = false;
  for (;;) {
    const def = t._zod.def as z.core.$ZodTypeDef & Record<string, unknown>;
    if (def.type === "default" || def.type === "prefault") [dflt, t] = [{ value: def.defaultValue }, def.innerType as z.core.$ZodType];
    else if (def.type === "optional") [optional, t] = [true, def.innerType as z.core.$ZodType];
    // unsetIfEmpty: the preprocess that reads "" as unset, then the value's own schema.
    else if (def.type === "pipe" && (def.in as z.core.$ZodType)._zod.def.type === "transform") t = def.out as z.core.$ZodType;
    // schema's record(): the record, then the transform to a null-prototype object.
    else if (def.type === "pipe" && (def.out as z.core.$ZodType)._zod.def.type === "transform") t = def.in as z.core.$ZodType;
    else break;
  }
  const type = pulumiType(t);
  if (optional && dflt === undefined) {
    // The CLI requires a key without a default, so an optional knob declares "" (= unset).
    if (type !== "string" || schema.safeParse("").data !== undefined) throw new Error(`optional knob ${key} must read "" as unset`);
    dflt = { value: "" };
  }
  return {
    type,
    ...(type === "array" ? { items: { type: pulumiType((t._zod.def as z.core.$ZodArrayDef).element) } } : {}),
    ...(dflt !== undefined ? { default: dflt.value } : {}),
    ...(meta.secret === true ? { secret: true } : {}),
    description: meta.description,
  };
}

/** Every knob's declaration, in the schema's order (`aws:region` included). */
export function allKnobDeclarations(): Record<string, KnobDeclaration> {
  return Object.fromEntries(Object.entries(StackKnobsSchema.shape).map(([k, v]) => [k, declarationOf(k, v)]));
}

/** Pulumi.yaml's `config:` declarations: each project (`dockyard:`) knob, keyed without the prefix. */
export function knobDeclarations(): Record<string, KnobDeclaration> {
  return Object.fromEntries(
    Object.entries(allKnobDeclarations())
      .filter(([k]) => k.startsWith(`${PROJECT}:`))
      .map(([k, d]) => [k.slice(PROJECT.length + 1), d]),
  );
}

/** README's table of the stack knobs (Markdown), rendered from the schema. */
export function knobTable(): string {
  const cell = (s: string) => s.replace(/\|/g, "\\|");
  const rows = Object.entries(allKnobDeclarations()).map(([k, d]) => {
    const type = d.type === "array" ? `array of ${d.items?.type}` : d.type;
    const dflt = d.default === undefined ? "required" : d.default === "" ? "unset" : `\`${JSON.stringify(d.default)}\``;
    return `| \`${k}\` | ${type}${d.secret ? ", secret" : ""} | ${dflt} | ${cell(d.description)} |`;
  });
  return ["| key | type | default | what |", "|---|---|---|---|", ...rows].join("\n");
}
