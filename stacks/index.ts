/**
 * Loading configuration: the only module that reads raw config. The Pulumi program
 * uses loadSpecFromPulumi(); scripts and tests use loadStackSpec(), which reads the
 * same files directly (secret values then stand as SECRET_PLACEHOLDER).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { ConfigError, parseEnvironment, type EnvironmentSpec, type RawStackFile } from "./schema";

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

function readYaml(stack: string, file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(stack, [`${path.relative(process.cwd(), file) || file}: cannot read: ${(e as Error).message}`]);
  }
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) {
    throw new ConfigError(stack, doc.errors.map((e) => `${path.basename(file)}: YAML syntax: ${e.message}`));
  }
  return doc.toJS();
}

/** Reads stacks/environment.yaml as plain data (not yet validated). */
export function readEnvironmentFile(stack: string, file = ENVIRONMENT_FILE): unknown {
  return readYaml(stack, file);
}

/** Reads a stack file into its `config:` mapping and other top-level keys (not yet validated). */
export function readStackFile(stack: string, dir = STACKS_DIR): RawStackFile {
  const doc = readYaml(stack, stackFilePath(stack, dir));
  if (doc === null || doc === undefined) return { config: {} };
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(stack, [`stacks/Pulumi.${stack}.yaml: (top level): must be a mapping with a config: key`]);
  }
  const { config, ...other } = doc as Record<string, unknown>;
  if (config !== undefined && (typeof config !== "object" || config === null || Array.isArray(config))) {
    throw new ConfigError(stack, [`stacks/Pulumi.${stack}.yaml: config: must be a mapping of keys to values`]);
  }
  return { config: (config ?? {}) as Record<string, unknown>, other };
}

/** Parses a stack offline from its files. Throws ConfigError listing every problem. */
export function loadStackSpec(stack: string, opts: { dir?: string; environmentFile?: string } = {}): EnvironmentSpec {
  const env = readEnvironmentFile(stack, opts.environmentFile);
  const stackFile = readStackFile(stack, opts.dir);
  return parseEnvironment(stack, env, stackFile);
}

/**
 * Parses the current Pulumi stack's configuration, as the Pulumi engine passed it
 * (secrets decrypted), together with environment.yaml.
 */
export function loadSpecFromPulumi(): EnvironmentSpec {
  // Imported lazily so scripts that only parse files do not load the Pulumi runtime.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  const stack = pulumi.getStack();
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(pulumi.runtime.allConfig())) {
    config[k] = decodeConfigValue(v);
  }
  return parseEnvironment(stack, readEnvironmentFile(stack), { config });
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
