/**
 * Every shipped stack file names its environment's KMS key as its secrets provider and
 * holds no passphrase salt (stacks/secrets-provider.ts; README "State and secrets"); a
 * developer's dev-<owner> stack on the local platform alone may use a passphrase.
 * What this cannot show here: that the KMS keys exist and the roles may use them.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { STACKS, loadStackSpec } from "../../stacks";
import { ciStackFileProblems, passphraseAllowed, requiredSecretsProvider, secretsProviderProblems, stackPlatform } from "../../stacks/secrets-provider";

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

describe("CI's stack file check (ciStackFileProblems, ci/stack-file.ts): no encryptedkey, no CI run", () => {
  // pulumi pkg/secrets/cloud/manager.go NewCloudSecretsManager: `info.EncryptedKey == ""` ->
  // generateNewDataKey (rand.Read + keeper.Encrypt, i.e. kms:Encrypt); CI's roles have kms:Decrypt only (ci/iam/policies.ts).
  it("refuses a KMS stack file without encryptedkey, naming the stack, the file, the key and the set-up step", () => {
    const f = { secretsprovider: "awskms://alias/dockyard-test?region=eu-west-1" };
    expect(ciStackFileProblems("test", "stacks/Pulumi.test.yaml", "eu-west-1", f)).toEqual([
      `stack "test": stacks/Pulumi.test.yaml: encryptedkey: missing; without it Pulumi makes a new data key and wraps it with kms:Encrypt, which CI's roles may not do; allowed: the key the one-time set-up commits (\`npx pulumi stack init test --secrets-provider 'awskms://alias/dockyard-test?region=eu-west-1'\` with the set-up's credentials, then commit stacks/Pulumi.test.yaml)`,
    ]);
    expect(ciStackFileProblems("test", "stacks/Pulumi.test.yaml", "eu-west-1", { ...f, encryptedkey: "AQICAHh0ZXN0" })).toEqual([]);
    // A passphrase is never allowed in CI, even for a dev-<owner> stack (CI reaps aws servers only).
    expect(ciStackFileProblems("dev-alice", "stacks/Pulumi.dev-alice.yaml", "eu-west-1", { encryptionsalt: "v1:c2FsdA==:v1:aXY=:Y2lwaGVy" }).join("\n")).toMatch(/secretsprovider: is missing/);
  });

  it("ci/stack-file.ts: exit 2 with that line for a shipped stack file without encryptedkey, else the provider on stdout", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "h5-stackfile-"));
    try {
      const text = fs.readFileSync(path.join(ROOT, fileOf("test")), "utf8").replace(/^encryptedkey:.*\n/m, "");
      fs.writeFileSync(path.join(dir, "Pulumi.test.yaml"), text);
      const run = () => spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "ci/stack-file.ts"), "test"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, DOCKYARD_STACKS_DIR: dir } });
      const bad = run();
      expect(bad.status).toBe(2);
      expect(bad.stdout).toBe("");
      expect(bad.stderr).toMatch(/^stack "test": stacks\/Pulumi\.test\.yaml: encryptedkey: missing; .*kms:Encrypt/);
      expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
      fs.writeFileSync(path.join(dir, "Pulumi.test.yaml"), text.replace(/^secretsprovider: .*$/m, (l) => `${l}\nencryptedkey: AQICAHh0ZXN0`));
      const good = run();
      expect(good.stderr).toBe("");
      expect(good.status).toBe(0);
      expect(good.stdout).toBe("awskms://alias/dockyard-test?region=eu-west-1\n");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
