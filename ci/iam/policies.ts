/**
 * The state and secrets grants of the CI roles (README "Deploying from CI", One-time set-up
 * step 4), rendered per stack as IAM policy documents, so the README points here and
 * test/ci/iam.test.ts evaluates them with an IAM simulator against every S3 key and KMS call
 * the Pulumi CLI makes. The other grants of a role (EC2, IAM, ECR, SSM, host access) are the
 * README's table; these are the ones a login, preview or up needs before any provider runs.
 *
 * Where each key comes from, in pulumi/pulumi pkg/backend/diy (project layout, meta.yaml
 * version 1; project `dockyard`, stack <s>):
 *  - `.pulumi/meta.yaml`: read at every login (meta.go readPulumiMeta, from newDIYBackend);
 *    written only when missing, which the one-time set-up does once (ensurePulumiMeta).
 *  - `.pulumi/stacks/dockyard/<s>.json` (or `.json.gz`, `.json.zst`): the checkpoint; its
 *    backup `<s>.json.bak` (state.go stackPath, getCheckpoint, saveCheckpoint, backupTarget:
 *    a copy, which S3 does as GetObject of the source and PutObject of the copy).
 *  - `.pulumi/stacks/dockyard/<s>.pulumi-tags`: stack tags (stack_tags.go stackTagsPath).
 *  - `.pulumi/locks/organization/dockyard/<s>/<uuid>.json`: the update lock; every lock of the
 *    stack is listed and read before and after writing its own, and deleted at the end
 *    (lock.go checkForLock, Lock, Unlock, stackLockDir).
 *  - `.pulumi/history/dockyard/<s>/<s>-<ns>.history.json` and `.checkpoint.json` (a copy of
 *    the checkpoint) after each update (state.go addToHistory).
 *  - `.pulumi/backups/dockyard/<s>/<s>.<ns>.json` after each update (state.go backupStack).
 * A preview writes none of these (backend.go Preview: no Lock, no snapshot persister, no
 * history: apply with DryRun). Listing: stackPath and checkForLock list by prefix, and the
 * backend treats only "not found" as absence (meta.yaml, tags, Exists before a backup), which
 * S3 answers for a missing key only to a caller with s3:ListBucket on the bucket (403 else);
 * so each role may list the bucket (key names, never contents).
 *
 * KMS (pkg/secrets/cloud/manager.go): a stack file with an `encryptedkey` needs only
 * kms:Decrypt (newCloudSecretsManager); without one, NewCloudSecretsManager makes a data key
 * locally and wraps it with kms:Encrypt (generateNewDataKey), never GenerateDataKey. So CI's
 * roles get Decrypt only, and the one-time set-up (an operator with `setupPolicy`) makes and
 * commits each stack's encryptedkey; CI refuses a stack file without one (ci/stack-file.ts).
 * gocloud's awskms keeper decrypts without naming a key (secrets/awskms/kms.go Decrypt) and
 * KMS authorizes against the key's ARN, not an alias ARN ("Using aliases to control access"),
 * so the grants are on `key/*` with the condition kms:ResourceAliases = alias/dockyard-<env>.
 */
import { kmsEnvironment } from "../../stacks/secrets-provider";

export const PROJECT = "dockyard";

export interface PolicyStatement {
  Sid: string;
  Effect: "Allow" | "Deny";
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

export interface Target {
  account: string;
  region: string;
  /** The state bucket of PULUMI_BACKEND_URL (s3://<bucket>?...). */
  bucket: string;
}

/** The S3 object ARNs (patterns) of one stack's state, each with its source in pkg/backend/diy. */
export function stackStateKeys(bucket: string, stack: string): { checkpoint: string; tags: string; locks: string; history: string; backups: string } {
  const b = `arn:aws:s3:::${bucket}/.pulumi`;
  return {
    checkpoint: `${b}/stacks/${PROJECT}/${stack}.json*`,
    tags: `${b}/stacks/${PROJECT}/${stack}.pulumi-tags`,
    locks: `${b}/locks/organization/${PROJECT}/${stack}/*`,
    history: `${b}/history/${PROJECT}/${stack}/*`,
    backups: `${b}/backups/${PROJECT}/${stack}/*`,
  };
}

const meta = (t: Target): PolicyStatement => ({ Sid: "StateMeta", Effect: "Allow", Action: ["s3:GetObject"], Resource: [`arn:aws:s3:::${t.bucket}/.pulumi/meta.yaml`] });
const list = (t: Target): PolicyStatement => ({ Sid: "StateList", Effect: "Allow", Action: ["s3:ListBucket"], Resource: [`arn:aws:s3:::${t.bucket}`] });

function kmsEnv(stack: string): string {
  const env = kmsEnvironment(stack);
  if (!env) throw new Error(`stack ${stack}: no KMS key (stacks/secrets-provider.ts kmsEnvironment): allowed: dev, test, prod, dev-<owner>`);
  return env;
}

/** kms actions on the environment's key, by the alias the key carries (not an alias ARN). */
function kms(t: Target, stack: string, actions: string[], sid: string): PolicyStatement {
  return {
    Sid: sid,
    Effect: "Allow",
    Action: actions,
    Resource: [`arn:aws:kms:${t.region}:${t.account}:key/*`],
    Condition: { "ForAnyValue:StringEquals": { "kms:ResourceAliases": `alias/dockyard-${kmsEnv(stack)}` } },
  };
}

/** A deploy role's state and secrets (dockyard-ci-test, dockyard-ci-prod): read and write its stack's state, decrypt with its key. */
export function deployPolicy(t: Target, stack: string): PolicyDocument {
  const k = stackStateKeys(t.bucket, stack);
  return {
    Version: "2012-10-17",
    Statement: [
      meta(t),
      list(t),
      { Sid: "StackState", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], Resource: [k.checkpoint, k.tags, k.locks] },
      { Sid: "StackHistory", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: [k.history, k.backups] },
      kms(t, stack, ["kms:Decrypt"], "StackSecrets"),
    ],
  };
}

/**
 * prod's preview role (dockyard-ci-prod-preview): read prod's state and decrypt with prod's
 * key; read test's checkpoint and tags (deploy-prod reads test's tag dockyard:commit:
 * `pulumi stack tag get` opens the stack, stackExists, then loadStackTags). Writes nothing.
 */
export function previewPolicy(t: Target, stack: string, readTagsOf: string[] = []): PolicyDocument {
  const k = stackStateKeys(t.bucket, stack);
  const others = readTagsOf.flatMap((s) => {
    const o = stackStateKeys(t.bucket, s);
    return [o.checkpoint, o.tags];
  });
  return {
    Version: "2012-10-17",
    Statement: [
      meta(t),
      list(t),
      { Sid: "StackStateRead", Effect: "Allow", Action: ["s3:GetObject"], Resource: [k.checkpoint, k.tags, ...others] },
      kms(t, stack, ["kms:Decrypt"], "StackSecrets"),
    ],
  };
}

/**
 * The one-time set-up's KMS grant (an operator, not CI): `pulumi stack init --secrets-provider
 * awskms://alias/dockyard-<env>` makes the stack's data key and wraps it (kms:Encrypt), then
 * unwraps it (kms:Decrypt); the stack file's `encryptedkey` is then committed.
 */
export function setupPolicy(t: Target, stack: string): PolicyDocument {
  return { Version: "2012-10-17", Statement: [kms(t, stack, ["kms:Encrypt", "kms:Decrypt"], "StackDataKey")] };
}

/** The roles the README's table names, by role name. */
export function ciPolicies(t: Target): Record<string, PolicyDocument> {
  return {
    "dockyard-ci-test": deployPolicy(t, "test"),
    "dockyard-ci-prod-preview": previewPolicy(t, "prod", ["test"]),
    "dockyard-ci-prod": deployPolicy(t, "prod"),
  };
}

/** Every document the README's set-up attaches: the CI roles', and the set-up's KMS grant per environment. */
export function allPolicies(t: Target): Record<string, PolicyDocument> {
  return { ...ciPolicies(t), "dockyard-setup-test": setupPolicy(t, "test"), "dockyard-setup-prod": setupPolicy(t, "prod") };
}

// `npx tsx ci/iam/policies.ts <account> <region> <bucket> [name]`: the documents as JSON, to attach.
if (require.main === module) {
  const [account, region, bucket, role] = process.argv.slice(2);
  if (!/^\d{12}$/.test(account ?? "") || !region || !bucket) {
    process.stderr.write("usage: npx tsx ci/iam/policies.ts <12-digit account> <region> <state bucket> [name]\n");
    process.exit(2);
  }
  const all = allPolicies({ account, region, bucket });
  if (role !== undefined && !(role in all)) {
    process.stderr.write(`ci/iam/policies.ts: ${role}: allowed: ${Object.keys(all).join(", ")}\n`);
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(role ? all[role] : all, null, 2) + "\n");
}
