/**
 * Loading configuration: the only module that reads raw config. The Pulumi program
 * uses loadSpecFromPulumi(); scripts and tests use loadStackSpec(), which reads the
 * same files directly (secret values then stand as SECRET_PLACEHOLDER).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { ConfigError, parseEnvironment, stackNameProblem, type EnvironmentSpec, type RawStackFile } from "./schema";

export * from "./schema";
export * from "./os";
export * from "./ecr";
export * from "./ssh";
export * from "./knobs";

/** Directory holding environment.yaml and the Pulumi.<stack>.yaml files. */
export const STACKS_DIR = __dirname;
export const ENVIRONMENT_FILE = path.join(STACKS_DIR, "environment.yaml");

export function stackFilePath(stack: string, dir = STACKS_DIR): string {
  return path.join(dir, `Pulumi.${stack}.yaml`);
}

/** How a message names a file: `stacks/<name>` for the repository's own, else the path given. */
export function stackFileLabel(file: string): string {
  return path.dirname(path.resolve(file)) === STACKS_DIR ? `stacks/${path.basename(file)}` : file;
}

/** A JSON-like value with every mapping as a null-prototype object: a key like "constructor" is there only when the file sets it. */
function nullPrototype(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(nullPrototype);
  if (v === null || typeof v !== "object") return v;
  const out = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(v)) out[k] = nullPrototype((v as Record<string, unknown>)[k]);
  return out;
}

/**
 * Reads a YAML file as plain data. Every failure is a ConfigError naming the stack and the
 * file: a missing file, a syntax error or duplicate key (with line and column), an unknown
 * tag, and an alias bomb (the yaml library's resource-exhaustion guard, maxAliasCount).
 */
function readYaml(stack: string, file: string, missing?: () => string): unknown {
  const where = `stack "${stack}": ${stackFileLabel(file)}`;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(stack, [`${where}: ${err.code === "ENOENT" && missing ? missing() : `cannot read: ${err.message}`}`]);
  }
  const doc = YAML.parseDocument(text);
  const syntax = [...doc.errors, ...doc.warnings].map((e) => {
    const at = e.linePos?.[0];
    const message = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    return `${where}: YAML syntax${at ? ` at line ${at.line}, column ${at.col}` : ""}: ${message}`;
  });
  if (syntax.length > 0) throw new ConfigError(stack, syntax);
  try {
    return nullPrototype(doc.toJS());
  } catch (e) {
    // yaml throws a ReferenceError for an alias bomb ("Excessive alias count ...").
    throw new ConfigError(stack, [`${where}: YAML: ${(e as Error).message}; allowed: at most 100 alias expansions`]);
  }
}

/** Reads stacks/environment.yaml as plain data (not yet validated). */
export function readEnvironmentFile(stack: string, file = ENVIRONMENT_FILE): unknown {
  return readYaml(stack, file);
}

/** The stacks that have a file in `dir`, by name. */
export function stackNames(dir = STACKS_DIR): string[] {
  try {
    return fs.readdirSync(dir).flatMap((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1] ?? []).sort();
  } catch {
    return [];
  }
}

/** Reads a stack file into its `config:` mapping and other top-level keys (not yet validated). */
export function readStackFile(stack: string, dir = STACKS_DIR): RawStackFile {
  const nameProblem = stackNameProblem(stack);
  if (nameProblem) throw new ConfigError(stack, [nameProblem]);
  const file = stackFilePath(stack, dir);
  const doc = readYaml(stack, file, () => `no such stack file; stacks: ${stackNames(dir).join(", ") || "(none)"} (a new stack starts as a copy of stacks/Pulumi.dev.yaml)`);
  const where = `stack "${stack}": ${stackFileLabel(file)}`;
  if (doc === null || doc === undefined) return { config: {} };
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(stack, [`${where}: (top level): must be a mapping with a config: key`]);
  }
  const { config, ...other } = doc as Record<string, unknown>;
  if (config !== undefined && (typeof config !== "object" || config === null || Array.isArray(config))) {
    throw new ConfigError(stack, [`${where}: config: must be a mapping of keys to values`]);
  }
  return { config: (config ?? {}) as Record<string, unknown>, other };
}

/** Parses a stack offline from its files. Throws ConfigError listing every problem. */
export function loadStackSpec(stack: string, opts: { dir?: string; environmentFile?: string } = {}): EnvironmentSpec {
  const stackFile = readStackFile(stack, opts.dir);
  const env = readEnvironmentFile(stack, opts.environmentFile);
  return parseEnvironment(stack, env, stackFile);
}

/**
 * Parses the current Pulumi stack's configuration, as the Pulumi engine passed it
 * (secrets decrypted), together with environment.yaml. Bad configuration throws a
 * pulumi.RunError carrying the ConfigError's message, before any resource is declared.
 */
export function loadSpecFromPulumi(): EnvironmentSpec {
  // Imported lazily so scripts that only parse files do not load the Pulumi runtime.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  const stack = pulumi.getStack();
  const config = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(pulumi.runtime.allConfig())) {
    config[k] = nullPrototype(decodeConfigValue(v));
  }
  // The committed file too: a secret committed in plaintext is refused here as offline,
  // though the engine hands the program every value as a plain string.
  try {
    const committed = fs.existsSync(stackFilePath(stack)) ? readStackFile(stack).config : undefined;
    return parseEnvironment(stack, readEnvironmentFile(stack), { config, decrypted: true, committed });
  } catch (e) {
    // A RunError is how a program tells the Pulumi CLI the message is the whole story: it is
    // printed without the stack trace (sdk/nodejs/cmd/run/run.ts uncaughtHandler).
    if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
}

/** Pulumi hands structured config values to the program as JSON strings. */
function decodeConfigValue(v: string): unknown {
  const t = v.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      return v;
    }
  }
  return v;
}
