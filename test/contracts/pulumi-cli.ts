/**
 * The Pulumi CLI's rules for project configuration, ported from its source so that they
 * can be checked here, where the CLI itself cannot run (its binary is downloaded from
 * get.pulumi.com, which this machine cannot reach). What it proves: that Pulumi.yaml and
 * every stack file satisfy THESE rules, as read in pulumi/pulumi at 1b5949891b3c:
 *
 *  - sdk/go/common/workspace/project.go, Project.Validate: a project-namespaced key may not
 *    have both `default` and `value`; an `array` type needs `items`; a typed `default` must
 *    be of its type; a key of another namespace may have no type and no default, only a value.
 *  - sdk/go/common/workspace/project.json: a config declaration has only the attributes
 *    type, items, description, secret, default, value; type is string, integer, boolean,
 *    array or object.
 *  - pkg/workspace/config.go, mergeConfig: a project-namespaced key without `default` or
 *    `value` that the stack does not set fails the stack with "Stack '<s>' is missing
 *    configuration value '<k>'", before the program runs.
 *  - pkg/workspace/config.go, validateStackConfigValue + project.go ValidateConfigValue: a
 *    typed key's stack value must be of the type (integers may be whole floats or strings
 *    that parse; booleans true/false or "true"/"false"; arrays item by item); a `secret`
 *    key must be set encrypted.
 * What it does not prove: that the port is complete for every future CLI version.
 */
import * as fs from "node:fs";
import * as YAML from "yaml";

export const SIMPLE_TYPES = ["string", "integer", "boolean", "array", "object"] as const;
const DECLARATION_KEYS = new Set(["type", "items", "description", "secret", "default", "value"]);

interface ItemsType {
  type: string | ItemsType;
  items?: ItemsType;
}
export interface ConfigDeclaration {
  type?: string;
  items?: ItemsType;
  description?: string;
  secret?: boolean;
  default?: unknown;
  value?: unknown;
}
export interface ProjectFile {
  name: string;
  stackConfigDir?: string;
  config?: Record<string, ConfigDeclaration>;
}

export function readProject(file: string): ProjectFile {
  return YAML.parse(fs.readFileSync(file, "utf8")) as ProjectFile;
}

const isSecure = (v: unknown) => !!v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "secure" in v;

/** project.go ValidateConfigValue. */
export function validateConfigValue(typeName: string, items: ItemsType | undefined, value: unknown): boolean {
  switch (typeName) {
    case "string":
      return typeof value === "string";
    case "integer":
      return (typeof value === "number" && Number.isInteger(value)) || (typeof value === "string" && /^[+-]?\d+$/.test(value));
    case "boolean":
      return typeof value === "boolean" || value === "true" || value === "false";
    case "object":
      return !!value && typeof value === "object" && !Array.isArray(value);
    default:
      if (!Array.isArray(value) || !items) return false;
      return value.every((x) => validateConfigValue(typeof items.type === "string" ? items.type : "array", items.items, x));
  }
}

/** Key namespaced by the project ("x" or "<project>:x")? project.go configKeyIsNamespacedByProject. */
function namespacedByProject(project: string, key: string): boolean {
  return !key.includes(":") || key.startsWith(`${project}:`);
}
function fullKey(project: string, key: string): string {
  return key.includes(":") ? key : `${project}:${key}`;
}

/** Errors the CLI gives for the project file itself (Project.Validate + the JSON schema's config part). */
export function projectErrors(p: ProjectFile): string[] {
  const errs: string[] = [];
  if (!p.name) errs.push("project is missing a 'name' attribute");
  for (const [key, decl] of Object.entries(p.config ?? {})) {
    if (decl === null || typeof decl !== "object" || Array.isArray(decl)) continue; // a bare value is allowed by the schema
    for (const a of Object.keys(decl)) if (!DECLARATION_KEYS.has(a)) errs.push(`config.${key}: '${a}' not allowed`);
    if (decl.type !== undefined && !(SIMPLE_TYPES as readonly string[]).includes(decl.type)) errs.push(`config.${key}: type '${decl.type}' is not one of ${SIMPLE_TYPES.join(", ")}`);
    if (decl.default !== undefined && decl.value !== undefined) errs.push(`project config '${key}' cannot have both a 'default' and 'value' attribute`);
    if (namespacedByProject(p.name, key)) {
      if (decl.type === "array" && !decl.items) errs.push(`The configuration key '${key}' declares an array but does not specify the underlying type via the 'items' attribute`);
      if (decl.type !== undefined && decl.default !== undefined && !validateConfigValue(decl.type, decl.items, decl.default)) {
        errs.push(`The default value specified for configuration key '${key}' is not of the expected type '${decl.type}'`);
      }
    } else {
      if (decl.type !== undefined) errs.push(`Configuration key '${key}' is not namespaced by the project and should not define a type`);
      if (decl.default !== undefined) errs.push(`Configuration key '${key}' is not namespaced by the project and should not define a default value.`);
      if (decl.value === undefined) errs.push(`Configuration key '${key}' is namespaced and must provide an attribute 'value'`);
    }
  }
  return errs;
}

/** Errors `pulumi preview`/`up` gives for one stack's config before the program runs (mergeConfig, validate=true). */
export function stackConfigErrors(p: ProjectFile, stack: string, config: Record<string, unknown>): string[] {
  const errs: string[] = [];
  const missing: string[] = [];
  for (const key of Object.keys(p.config ?? {}).sort()) {
    const decl = (p.config ?? {})[key];
    const full = fullKey(p.name, key);
    const found = Object.prototype.hasOwnProperty.call(config, full);
    const hasDefault = decl?.default !== undefined && decl?.default !== null;
    const hasValue = decl?.value !== undefined && decl?.value !== null;
    if (!found && !hasValue && !hasDefault && namespacedByProject(p.name, full)) {
      missing.push(key);
      continue;
    }
    if (!found || !decl?.type) continue;
    const v = config[full];
    if (decl.secret && !isSecure(v)) errs.push(`Stack '${stack}' with configuration key '${key}' must be encrypted as it's secret`);
    if (isSecure(v)) continue; // checked by the CLI after decryption, which needs the stack's secrets provider
    const value = replaceSecure(v);
    if (!validateConfigValue(decl.type, decl.items, value)) errs.push(`Stack '${stack}' with configuration key '${key}' must be of type '${decl.type}'`);
  }
  if (missing.length > 0) {
    // config.go missingStackConfigurationKeysError: "'a'", "'a' and 'b'", "'a', 'b' and 'c'".
    const q = missing.map((k) => `'${k}'`);
    const list = q.length === 1 ? q[0] : `${q.slice(0, -1).join(", ")} and ${q[q.length - 1]}`;
    errs.unshift(`Stack '${stack}' is missing configuration value${q.length > 1 ? "s" : ""} ${list}`);
  }
  return errs;
}

/** A nested secure leaf decrypts to a string: stand one in, so the object's shape can be checked. */
function replaceSecure(v: unknown): unknown {
  if (isSecure(v)) return "[secret]";
  if (Array.isArray(v)) return v.map(replaceSecure);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, replaceSecure(x)]));
  return v;
}
