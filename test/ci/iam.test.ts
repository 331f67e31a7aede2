/**
 * The CI roles' state and secrets grants (ci/iam/policies.ts) evaluated by an IAM policy
 * simulator (@cloud-copilot/iam-simulate, offline): every S3 key the Pulumi CLI's DIY backend
 * touches for a login, preview, up and stack tag of a stack, and the KMS calls of its cloud
 * secrets manager, each case with the source file the key or call comes from (pulumi/pulumi
 * at 1b5949891b, pkg/backend/diy and pkg/secrets/cloud; google/go-cloud secrets/awskms/kms.go).
 * The KMS key policy is AWS's default one (the account's root may use the key, so IAM decides).
 *
 * What this cannot show here: a real account's answers (no AWS), S3's 404-for-ListBucket-holders
 * rule (AWS's GetObject documentation; taken as documented), and whether the key ids exist.
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { describe, expect, it } from "vitest";
import { ciPolicies, setupPolicy, type PolicyDocument } from "../../ci/iam/policies";

const ACCOUNT = "123456789012";
const REGION = "eu-west-1";
const BUCKET = "dockyard-pulumi-state";
const target = { account: ACCOUNT, region: REGION, bucket: BUCKET };
const policies = ciPolicies(target);
const KEY = (id: string) => `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`;
const TEST_KEY = KEY("1111aaaa-11aa-11aa-11aa-111111aaaaaa");
const PROD_KEY = KEY("2222bbbb-22bb-22bb-22bb-222222bbbbbb");
const ALIASES: Record<string, string> = { [TEST_KEY]: "alias/dockyard-test", [PROD_KEY]: "alias/dockyard-prod" };
const DEFAULT_KEY_POLICY = { Version: "2012-10-17", Statement: [{ Sid: "Enable IAM User Permissions", Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "kms:*", Resource: "*" }] };

type Decision = "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied";

async function decide(role: string, policy: PolicyDocument, action: string, resource: string, context: Record<string, string | string[]> = {}): Promise<Decision | string> {
  const kms = action.startsWith("kms:");
  const r = await runSimulation(
    {
      identityPolicies: [{ name: role, policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(kms ? { resourcePolicy: DEFAULT_KEY_POLICY } : {}),
      request: {
        action,
        principal: `arn:aws:sts::${ACCOUNT}:assumed-role/${role}/GitHubActions`,
        resource: { accountId: ACCOUNT, resource },
        contextVariables: kms && ALIASES[resource] ? { "kms:ResourceAliases": [ALIASES[resource]], ...context } : context,
      },
    } as Parameters<typeof runSimulation>[0],
    {},
  );
  return r.resultType === "error" ? `error: ${JSON.stringify(r.errors)}` : r.overallResult;
}

const obj = (key: string) => `arn:aws:s3:::${BUCKET}/${key}`;
const BUCKET_ARN = `arn:aws:s3:::${BUCKET}`;

/** [what, action, resource, expected, source of the key or call] */
type Case = [string, string, string, Decision, string, Record<string, string>?];

/** What a deploy role does for its stack: login, stack select --create, up, stack output, stack tag set. */
function deployCases(s: string, key: string): Case[] {
  return [
    ["login reads the state's metadata", "s3:GetObject", obj(".pulumi/meta.yaml"), "Allowed", "pkg/backend/diy/meta.go readPulumiMeta"],
    ["stackPath lists the checkpoint's variants", "s3:ListBucket", BUCKET_ARN, "Allowed", "pkg/backend/diy/state.go stackPath", { "s3:prefix": `.pulumi/stacks/dockyard/${s}.json` }],
    ["checkForLock lists the stack's locks", "s3:ListBucket", BUCKET_ARN, "Allowed", "pkg/backend/diy/lock.go checkForLock", { "s3:prefix": `.pulumi/locks/organization/dockyard/${s}/` }],
    ["the checkpoint is read", "s3:GetObject", obj(`.pulumi/stacks/dockyard/${s}.json`), "Allowed", "pkg/backend/diy/state.go getCheckpoint"],
    ["the checkpoint is written (create and every step)", "s3:PutObject", obj(`.pulumi/stacks/dockyard/${s}.json`), "Allowed", "pkg/backend/diy/state.go saveCheckpoint"],
    ["a compressed checkpoint is written", "s3:PutObject", obj(`.pulumi/stacks/dockyard/${s}.json.gz`), "Allowed", "pkg/backend/diy/store.go StackBasePath (.json.gz)"],
    ["the checkpoint is copied to .bak before a write", "s3:PutObject", obj(`.pulumi/stacks/dockyard/${s}.json.bak`), "Allowed", "pkg/backend/diy/state.go backupTarget"],
    ["the lock is written", "s3:PutObject", obj(`.pulumi/locks/organization/dockyard/${s}/0d9e6c3a-5b8f-4c2e-9a71-3f0b2c4d5e6f.json`), "Allowed", "pkg/backend/diy/lock.go Lock, lockPath"],
    ["another process's lock is read", "s3:GetObject", obj(`.pulumi/locks/organization/dockyard/${s}/7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d.json`), "Allowed", "pkg/backend/diy/lock.go checkForLock"],
    ["the lock is removed", "s3:DeleteObject", obj(`.pulumi/locks/organization/dockyard/${s}/0d9e6c3a-5b8f-4c2e-9a71-3f0b2c4d5e6f.json`), "Allowed", "pkg/backend/diy/lock.go Unlock"],
    ["the update's history entry", "s3:PutObject", obj(`.pulumi/history/dockyard/${s}/${s}-1765150000000000000.history.json`), "Allowed", "pkg/backend/diy/state.go addToHistory"],
    ["the update's checkpoint copy", "s3:PutObject", obj(`.pulumi/history/dockyard/${s}/${s}-1765150000000000000.checkpoint.json`), "Allowed", "pkg/backend/diy/state.go addToHistory"],
    ["the update's backup", "s3:PutObject", obj(`.pulumi/backups/dockyard/${s}/${s}.1765150000000000000.json`), "Allowed", "pkg/backend/diy/state.go backupStack"],
    ["stack tags are read", "s3:GetObject", obj(`.pulumi/stacks/dockyard/${s}.pulumi-tags`), "Allowed", "pkg/backend/diy/stack_tags.go loadStackTags"],
    ["stack tags are written (dockyard:commit)", "s3:PutObject", obj(`.pulumi/stacks/dockyard/${s}.pulumi-tags`), "Allowed", "pkg/backend/diy/stack_tags.go saveStackTags"],
    ["the data key is unwrapped", "kms:Decrypt", key, "Allowed", "pkg/secrets/cloud/manager.go newCloudSecretsManager (keeper.Decrypt)"],
    ["no new data key is wrapped in CI (the committed encryptedkey is used)", "kms:Encrypt", key, "ImplicitlyDenied", "pkg/secrets/cloud/manager.go generateNewDataKey (keeper.Encrypt)"],
    ["never GenerateDataKey (Pulumi does not call it)", "kms:GenerateDataKey", key, "ImplicitlyDenied", "pkg/secrets/cloud/manager.go generateNewDataKey"],
  ];
}

const cases: Record<string, Case[]> = {
  "dockyard-ci-test": [
    ...deployCases("test", TEST_KEY),
    ["not prod's checkpoint", "s3:GetObject", obj(".pulumi/stacks/dockyard/prod.json"), "ImplicitlyDenied", "pkg/backend/diy/state.go getCheckpoint"],
    ["not writing prod's checkpoint", "s3:PutObject", obj(".pulumi/stacks/dockyard/prod.json"), "ImplicitlyDenied", "pkg/backend/diy/state.go saveCheckpoint"],
    ["not prod's lock", "s3:PutObject", obj(".pulumi/locks/organization/dockyard/prod/0d9e6c3a-5b8f-4c2e-9a71-3f0b2c4d5e6f.json"), "ImplicitlyDenied", "pkg/backend/diy/lock.go Lock"],
    ["not prod's tags", "s3:PutObject", obj(".pulumi/stacks/dockyard/prod.pulumi-tags"), "ImplicitlyDenied", "pkg/backend/diy/stack_tags.go saveStackTags"],
    ["not another stack named test-something", "s3:GetObject", obj(".pulumi/stacks/dockyard/test-other.json"), "ImplicitlyDenied", "pkg/backend/diy/store.go StackBasePath"],
    ["not prod's key", "kms:Decrypt", PROD_KEY, "ImplicitlyDenied", "pkg/secrets/cloud/manager.go newCloudSecretsManager"],
    ["not rewriting the state's metadata", "s3:PutObject", obj(".pulumi/meta.yaml"), "ImplicitlyDenied", "pkg/backend/diy/meta.go WriteTo"],
  ],
  "dockyard-ci-prod-preview": [
    ["login reads the state's metadata", "s3:GetObject", obj(".pulumi/meta.yaml"), "Allowed", "pkg/backend/diy/meta.go readPulumiMeta"],
    ["stackPath lists the checkpoint's variants", "s3:ListBucket", BUCKET_ARN, "Allowed", "pkg/backend/diy/state.go stackPath", { "s3:prefix": ".pulumi/stacks/dockyard/prod.json" }],
    ["prod's checkpoint is read", "s3:GetObject", obj(".pulumi/stacks/dockyard/prod.json"), "Allowed", "pkg/backend/diy/state.go getCheckpoint"],
    ["test's checkpoint (stack tag get --stack test opens the stack)", "s3:GetObject", obj(".pulumi/stacks/dockyard/test.json"), "Allowed", "pkg/backend/diy/state.go stackExists"],
    ["test's tags (dockyard:commit)", "s3:GetObject", obj(".pulumi/stacks/dockyard/test.pulumi-tags"), "Allowed", "pkg/backend/diy/stack_tags.go loadStackTags"],
    ["prod's data key is unwrapped", "kms:Decrypt", PROD_KEY, "Allowed", "pkg/secrets/cloud/manager.go newCloudSecretsManager"],
    ["a preview wraps no data key", "kms:Encrypt", PROD_KEY, "ImplicitlyDenied", "pkg/secrets/cloud/manager.go generateNewDataKey"],
    ["the preview role writes no checkpoint", "s3:PutObject", obj(".pulumi/stacks/dockyard/prod.json"), "ImplicitlyDenied", "pkg/backend/diy/state.go saveCheckpoint"],
    ["the preview role takes no lock", "s3:PutObject", obj(".pulumi/locks/organization/dockyard/prod/0d9e6c3a-5b8f-4c2e-9a71-3f0b2c4d5e6f.json"), "ImplicitlyDenied", "pkg/backend/diy/lock.go Lock"],
    ["the preview role writes no tags", "s3:PutObject", obj(".pulumi/stacks/dockyard/test.pulumi-tags"), "ImplicitlyDenied", "pkg/backend/diy/stack_tags.go saveStackTags"],
    ["the preview role deletes nothing", "s3:DeleteObject", obj(".pulumi/stacks/dockyard/prod.json"), "ImplicitlyDenied", "pkg/backend/diy/state.go removeTargetAndBackup"],
    ["not test's key", "kms:Decrypt", TEST_KEY, "ImplicitlyDenied", "pkg/secrets/cloud/manager.go newCloudSecretsManager"],
  ],
  "dockyard-ci-prod": [
    ...deployCases("prod", PROD_KEY),
    ["not test's checkpoint", "s3:PutObject", obj(".pulumi/stacks/dockyard/test.json"), "ImplicitlyDenied", "pkg/backend/diy/state.go saveCheckpoint"],
    ["not test's key", "kms:Decrypt", TEST_KEY, "ImplicitlyDenied", "pkg/secrets/cloud/manager.go newCloudSecretsManager"],
  ],
};

describe("CI roles' state and secrets grants (ci/iam/policies.ts), by IAM simulation", () => {
  for (const [role, list] of Object.entries(cases)) {
    describe(role, () => {
      it.each(list)("%s: %s %s -> %s (%s)", async (_what, action, resource, expected, _source, context) => {
        expect(await decide(role, policies[role], action, resource, context ?? {})).toBe(expected);
      });
    });
  }

  it("the one-time set-up's grant wraps and unwraps the stack's data key with its environment's key only", async () => {
    const setup = setupPolicy(target, "test");
    expect(await decide("operator", setup, "kms:Encrypt", TEST_KEY)).toBe("Allowed");
    expect(await decide("operator", setup, "kms:Decrypt", TEST_KEY)).toBe("Allowed");
    expect(await decide("operator", setup, "kms:Encrypt", PROD_KEY)).toBe("ImplicitlyDenied");
  });

  it("the README's former grants fail the CLI: meta.yaml outside .pulumi/**/dockyard/<stack>*, and an alias ARN does not cover the key", async () => {
    // README "One-time set-up" before issue 24: state `.pulumi/**/dockyard/test*`, KMS with `alias/dockyard-test`.
    const former: PolicyDocument = {
      Version: "2012-10-17",
      Statement: [
        { Sid: "State", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: [obj(".pulumi/*/dockyard/test*")] },
        { Sid: "Kms", Effect: "Allow", Action: ["kms:Encrypt", "kms:Decrypt"], Resource: [`arn:aws:kms:${REGION}:${ACCOUNT}:alias/dockyard-test`] },
      ],
    };
    expect(await decide("former", former, "s3:GetObject", obj(".pulumi/meta.yaml"))).toBe("ImplicitlyDenied");
    expect(await decide("former", former, "kms:Decrypt", TEST_KEY)).toBe("ImplicitlyDenied");
    expect(await decide("dockyard-ci-test", policies["dockyard-ci-test"], "s3:GetObject", obj(".pulumi/meta.yaml"))).toBe("Allowed");
  });

  it("npx tsx ci/iam/policies.ts prints the documents to attach, by name; a bad account is exit 2", () => {
    const run = (...a: string[]) => spawnSync(process.execPath, ["--import", "tsx", path.join(__dirname, "../../ci/iam/policies.ts"), ...a], { encoding: "utf8" });
    const all = run(ACCOUNT, REGION, BUCKET);
    expect(all.status).toBe(0);
    // Split to IAM's managed-policy size (test/ci/iam-resources.test.ts holds the parts to the roles' documents).
    expect(Object.keys(JSON.parse(all.stdout))).toEqual(["dockyard-ci-test-1", "dockyard-ci-test-2", "dockyard-ci-prod-preview", "dockyard-ci-prod-1", "dockyard-ci-prod-2", "dockyard-dev-server", "dockyard-setup-test", "dockyard-setup-prod"]);
    expect(JSON.parse(run(ACCOUNT, REGION, BUCKET, "dockyard-ci-prod-preview").stdout)).toEqual(policies["dockyard-ci-prod-preview"]);
    const bad = run("12345", REGION, BUCKET);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe("usage: npx tsx ci/iam/policies.ts <12-digit account> <region> <state bucket> [name]\n");
  });

  it("a stack without a KMS environment has no CI grant to render", () => {
    expect(() => ciPolicies(target) && setupPolicy(target, "contract-x")).toThrow(/stack contract-x: no KMS key .* allowed: dev, test, prod, dev-<owner>/);
  });
});
