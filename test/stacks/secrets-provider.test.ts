/**
 * Every shipped stack file names its environment's KMS key as its secrets provider and
 * holds no passphrase salt (stacks/secrets-provider.ts; README "State and secrets"); a
 * developer's dev-<owner> stack on the local platform alone may use a passphrase.
 * What this cannot show here: that the KMS keys exist and the roles may use them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { STACKS, loadStackSpec } from "../../stacks";
import { passphraseAllowed, requiredSecretsProvider, secretsProviderProblems, stackPlatform } from "../../stacks/secrets-provider";

const ROOT = path.resolve(__dirname, "../..");
const fileOf = (stack: string) => `stacks/Pulumi.${stack}.yaml`;
const read = (stack: string) => YAML.parse(fs.readFileSync(path.join(ROOT, fileOf(stack)), "utf8")) as Record<string, unknown>;

describe("secrets providers of the shipped stacks", () => {
  it.each(STACKS)("%s: KMS key alias/dockyard-<stack> in the stack's region, no passphrase salt", (stack) => {
    const f = read(stack);
    const region = loadStackSpec(stack).region;
    expect(f.secretsprovider).toBe(`awskms://alias/dockyard-${stack}?region=${region}`);
    expect(secretsProviderProblems(stack, fileOf(stack), region, f)).toEqual([]);
  });

  it("a developer's dev-<owner> stack uses dev's key; other stacks have no requirement", () => {
    expect(requiredSecretsProvider("dev-alice", "eu-west-1")).toBe("awskms://alias/dockyard-dev?region=eu-west-1");
    expect(requiredSecretsProvider("contract-xz", "eu-west-1")).toBeUndefined();
  });

  it("refuses a passphrase stack (no provider, or a salt), another key, another region and a malformed wrapped key", () => {
    const prod = read("prod");
    const problems = (f: Record<string, unknown>) => secretsProviderProblems("prod", fileOf("prod"), "eu-west-1", f).join("\n");
    const { secretsprovider: _, ...noProvider } = prod;
    expect(problems(noProvider)).toMatch(/^stack "prod": stacks\/Pulumi\.prod\.yaml: secretsprovider: is missing \(the passphrase provider\); allowed: awskms:\/\/alias\/dockyard-prod\?region=eu-west-1$/);
    expect(problems({ ...prod, encryptionsalt: "v1:abc:def" })).toMatch(/encryptionsalt: a passphrase-encrypted key; allowed: none/);
    expect(problems({ ...prod, secretsprovider: "awskms://alias/dockyard-test?region=eu-west-1" })).toMatch(/secretsprovider: is "awskms:\/\/alias\/dockyard-test/);
    expect(problems({ ...prod, secretsprovider: "awskms://alias/dockyard-prod?region=us-east-1" })).toMatch(/allowed: awskms:\/\/alias\/dockyard-prod\?region=eu-west-1/);
    expect(problems({ ...prod, encryptedkey: "not base64!" })).toMatch(/encryptedkey: not a base64/);
    expect(problems({ ...prod, encryptedkey: "AQICAHh0ZXN0" })).toBe("");
  });

  it("a dev-<owner> stack on the local platform may use a passphrase (its owner may have no cloud account); dev's key still passes; no other stack may", () => {
    expect(passphraseAllowed("dev-alice", "local")).toBe(true);
    expect(passphraseAllowed("dev-alice", "aws")).toBe(false);
    expect(passphraseAllowed("dev", "local")).toBe(false);
    expect(passphraseAllowed("prod", "local")).toBe(false);
    const file = fileOf("dev-alice");
    const local = (f: Record<string, unknown>) => secretsProviderProblems("dev-alice", file, "eu-west-1", f, "local");
    expect(local({ encryptionsalt: "v1:c2FsdA==:v1:aXY=:Y2lwaGVy" })).toEqual([]);
    expect(local({ secretsprovider: "passphrase", encryptionsalt: "v1:c2FsdA==:v1:aXY=:Y2lwaGVy" })).toEqual([]);
    expect(local({ secretsprovider: "awskms://alias/dockyard-dev?region=eu-west-1", encryptedkey: "AQICAHh0ZXN0" })).toEqual([]);
    expect(local({ secretsprovider: "awskms://alias/dockyard-prod?region=eu-west-1" }).join("\n")).toMatch(/allowed: awskms:\/\/alias\/dockyard-dev\?region=eu-west-1, or passphrase \(a dev server on the local platform\)/);
    // On aws the same passphrase file is refused: dev's KMS key is required.
    const aws = secretsProviderProblems("dev-alice", file, "eu-west-1", { encryptionsalt: "v1:c2FsdA==:v1:aXY=:Y2lwaGVy" }, "aws").join("\n");
    expect(aws).toMatch(/secretsprovider: is missing \(the passphrase provider\); allowed: awskms:\/\/alias\/dockyard-dev\?region=eu-west-1$/m);
    expect(aws).toMatch(/encryptionsalt: a passphrase-encrypted key/);
  });

  it("stackPlatform: local only when every host group runs there", () => {
    expect(stackPlatform({ app: { platform: "local" }, db: { platform: "local" } })).toBe("local");
    expect(stackPlatform({ app: { platform: "local" }, db: {} })).toBe("aws");
    expect(stackPlatform({})).toBe("aws");
    expect(stackPlatform(undefined)).toBe("aws");
  });
});
