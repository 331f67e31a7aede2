/**
 * Contract: the Pulumi CLI accepts the project and every stack file before it runs the
 * program. The rules are ported in ./pulumi-cli.ts, each naming its place in pulumi/pulumi.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { readStackFile, STACKS_DIR } from "../../stacks";
import { projectErrors, readProject, stackConfigErrors, validateConfigValue } from "./pulumi-cli";

const ROOT = path.resolve(__dirname, "../..");
const project = readProject(path.join(ROOT, "Pulumi.yaml"));
/** Every stack file in the stack config dir, as the CLI finds them (Pulumi.<stack>.yaml). */
const stackFiles = fs.readdirSync(path.join(ROOT, project.stackConfigDir ?? ".")).map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1]).filter((s): s is string => !!s);

describe("Pulumi.yaml", () => {
  it("passes the CLI's project validation", () => {
    expect(projectErrors(project)).toEqual([]);
  });

  it("keeps stack files where the program's schema reads them (stackConfigDir)", () => {
    expect(path.resolve(ROOT, project.stackConfigDir ?? ".")).toBe(STACKS_DIR);
    expect(stackFiles.sort()).toEqual(expect.arrayContaining(["dev", "prod", "test"]));
  });

  it("declares every dockyard: key a stack file sets, and only those the schema knows", async () => {
    const { KNOB_KEYS } = await import("../../stacks");
    const declared = Object.keys(project.config ?? {}).map((k) => `dockyard:${k}`).sort();
    expect(declared).toEqual(KNOB_KEYS.filter((k) => k.startsWith("dockyard:")).sort());
  });
});

describe.each(stackFiles)("stack %s as the Pulumi CLI loads it", (stack) => {
  it("sets every required project key, each of its declared type", () => {
    expect(stackConfigErrors(project, stack, readStackFile(stack).config)).toEqual([]);
  });
});

describe("the ported rules fail where the CLI fails", () => {
  it("the Pulumi.yaml before this contract (keys without default) fails dev, test and prod", () => {
    // The declarations of Pulumi.yaml at commit 3915675 that stacks do not set: no default.
    const old = { name: "dockyard", config: { sshPublicKey: { type: "string" }, secrets: { description: "x" }, sshCidrs: { type: "array", items: { type: "string" } } } };
    // dev sets sshCidrs (its office CIDR); test and prod leave it at the default (none).
    expect(stackConfigErrors(old, "dev", readStackFile("dev").config)).toEqual([`Stack 'dev' is missing configuration values 'secrets' and 'sshPublicKey'`]);
    for (const s of ["test", "prod"]) {
      expect(stackConfigErrors(old, s, readStackFile(s).config)).toEqual([`Stack '${s}' is missing configuration values 'secrets', 'sshCidrs' and 'sshPublicKey'`]);
    }
  });

  it("type mismatches, secret keys set in plaintext and bad declarations", () => {
    const p = { name: "dockyard", config: { n: { type: "integer" }, xs: { type: "array", items: { type: "string" } }, s: { type: "string", secret: true }, o: { type: "object", default: {} } } };
    expect(stackConfigErrors(p, "dev", { "dockyard:n": "12", "dockyard:xs": ["a"], "dockyard:s": { secure: "v1:x" } })).toEqual([]);
    expect(stackConfigErrors(p, "dev", { "dockyard:n": 1.5, "dockyard:xs": ["a", 1], "dockyard:s": "plain", "dockyard:o": [] })).toEqual([
      "Stack 'dev' with configuration key 'n' must be of type 'integer'",
      "Stack 'dev' with configuration key 'o' must be of type 'object'",
      "Stack 'dev' with configuration key 's' must be encrypted as it's secret",
      "Stack 'dev' with configuration key 'xs' must be of type 'array'",
    ]);
    expect(projectErrors({ name: "dockyard", config: { a: { type: "array" }, b: { type: "string", default: 3 }, "aws:region": { type: "string" }, c: { typ: "string" } as never } })).toEqual([
      "The configuration key 'a' declares an array but does not specify the underlying type via the 'items' attribute",
      "The default value specified for configuration key 'b' is not of the expected type 'string'",
      "Configuration key 'aws:region' is not namespaced by the project and should not define a type",
      "Configuration key 'aws:region' is namespaced and must provide an attribute 'value'",
      "config.c: 'typ' not allowed",
    ]);
    expect(validateConfigValue("boolean", undefined, "true")).toBe(true);
    expect(validateConfigValue("boolean", undefined, "yes")).toBe(false);
  });
});
