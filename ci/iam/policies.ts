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
import { ATTACHABLE_POLICIES, AUTONAMED, DATA_SOURCE_ACTIONS, REPOSITORY, RESOURCE_ACTIONS, TAG_WRITE_ACTIONS, isMutating, type Grant } from "./resource-actions";

export const PROJECT = "dockyard";

export interface PolicyStatement {
  Sid: string;
  Effect: "Allow" | "Deny";
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string | string[] | boolean>>;
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
  // A pattern (dev-*: every dev-<owner> stack) takes the key of the stacks it matches.
  const env = kmsEnvironment(stack.replace(/\*$/, "owner"));
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

const TAG = "dockyard:stack";

/** The condition that limits a grant to a stack's resources (StringLike when the pattern has a wildcard: dev-*). */
function tagCondition(on: "resource" | "request", stack: string): PolicyStatement["Condition"] {
  const op = stack.includes("*") ? "StringLike" : "StringEquals";
  return { [op]: { [`aws:${on === "resource" ? "ResourceTag" : "RequestTag"}/${TAG}`]: stack } };
}

/** Conditions of one statement, merged operator by operator. */
function mergeConditions(...cs: (PolicyStatement["Condition"] | undefined)[]): PolicyStatement["Condition"] | undefined {
  const out: NonNullable<PolicyStatement["Condition"]> = {};
  for (const c of cs) for (const [op, kv] of Object.entries(c ?? {})) out[op] = { ...(out[op] ?? {}), ...kv };
  return Object.keys(out).length ? out : undefined;
}

/**
 * One grant of resource-actions.ts as (resource, condition) for a stack. `tagNamed`: an
 * auto-named ARN also needs the stack's tag (a pattern stack, dev-*, whose names the dev
 * stack's also match). `action`: a tag-writing action (TAG_WRITE_ACTIONS) on a named resource
 * may set dockyard:stack only to the stack's own (IfExists: when it sets it).
 */
export function grantScope(t: Target, stack: string, g: Grant, tagNamed = false, action?: string): { resource: string; condition?: PolicyStatement["Condition"] } {
  switch (g.scope.kind) {
    case "any":
      return { resource: "*" };
    case "fixed":
      return { resource: g.scope.arn(t.region, t.account, stack) };
    case "name": {
      const ownTag = action && TAG_WRITE_ACTIONS.has(action) ? { [`${stack.includes("*") ? "StringLike" : "StringEquals"}IfExists`]: { [`aws:RequestTag/${TAG}`]: stack } } : undefined;
      const condition = mergeConditions(tagNamed && AUTONAMED.has(g.scope.arn) ? tagCondition("resource", stack) : undefined, ownTag);
      return { resource: g.scope.arn(t.region, t.account, stack), ...(condition ? { condition } : {}) };
    }
    case "tag": {
      const { on, via, createAction } = g.scope;
      const condition = mergeConditions(
        tagCondition(on === "resource" ? "resource" : "request", stack),
        via ? { [Object.keys(tagCondition("resource", stack)!)[0]]: { "kms:ViaService": `${via}.${t.region}.amazonaws.com` } } : undefined,
        // The create call whose tags these are (EC2 User Guide, supported-iam-actions-tagging).
        createAction ? { StringEquals: { "ec2:CreateAction": createAction } } : undefined,
        // A resource with no dockyard:stack tag yet (the root volume RunInstances made).
        on === "untagged" ? { Null: { [`aws:ResourceTag/${TAG}`]: "true" } } : undefined,
      );
      return { resource: g.scope.arn(t.region, t.account, stack), condition };
    }
  }
}

/** Statements from grants: one per (resource, condition), actions merged and sorted; `drop` leaves actions out. */
function statementsOf(t: Target, stack: string, all: Grant[], sid: string, drop: string[] = [], tagNamed = false): PolicyStatement[] {
  const grants = all.map((g) => ({ ...g, actions: g.actions.filter((a) => !drop.includes(a)) })).filter((g) => g.actions.length > 0);
  const by = new Map<string, { resource: string; condition?: PolicyStatement["Condition"]; actions: Set<string> }>();
  for (const g of grants) {
    for (const a of g.actions) {
      const { resource, condition } = grantScope(t, stack, g, tagNamed, a);
      const key = JSON.stringify([resource, condition ?? null]);
      if (!by.has(key)) by.set(key, { resource, condition, actions: new Set() });
      by.get(key)!.actions.add(a);
    }
  }
  // The same actions under the same condition on several ARNs: one statement (exactly the same grants, fewer characters).
  const merged = new Map<string, { resources: string[]; condition?: PolicyStatement["Condition"]; actions: string[] }>();
  for (const v of by.values()) {
    const actions = [...v.actions].sort();
    const key = JSON.stringify([actions, v.condition ?? null]);
    if (!merged.has(key)) merged.set(key, { resources: [], condition: v.condition, actions });
    merged.get(key)!.resources.push(v.resource);
  }
  // Statements of different services under the same condition: one statement. Exact when each
  // statement's actions and ARNs are of one service (arn:aws:<service>:...): an action is never
  // evaluated against another service's ARN. "*" and mixed statements stay on their own.
  const serviceOf = (v: { resources: string[]; actions: string[] }): string | undefined => {
    const services = new Set([...v.actions.map((a) => a.split(":")[0]), ...v.resources.map((r) => (/^arn:aws:([a-z0-9-]+):/.exec(r)?.[1] ?? "*"))]);
    return services.size === 1 && !services.has("*") ? [...services][0] : undefined;
  };
  const out: { resources: string[]; condition?: PolicyStatement["Condition"]; actions: string[]; services?: Set<string> }[] = [];
  for (const v of merged.values()) {
    const service = serviceOf(v);
    const into = service && out.find((o) => o.services && !o.services.has(service) && JSON.stringify(o.condition ?? null) === JSON.stringify(v.condition ?? null));
    if (into) {
      into.services!.add(service);
      into.actions.push(...v.actions);
      into.resources.push(...v.resources);
    } else out.push({ ...v, actions: [...v.actions], resources: [...v.resources], ...(service ? { services: new Set([service]) } : {}) });
  }
  return out.map((v, i) => ({ Sid: `${sid}${i + 1}`, Effect: "Allow" as const, Action: v.actions.sort(), Resource: v.resources, ...(v.condition ? { Condition: v.condition } : {}) }));
}

/** Attaching and detaching managed policies: only the ones the program attaches (iam:PolicyARN). */
const POLICY_ARN_ACTIONS = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"];

/** Every grant of every resource type, or only the reads (a preview's refresh). */
function resourceGrants(readOnly: boolean): Grant[] {
  return Object.values(RESOURCE_ACTIONS).flatMap((t) => t.grants).filter((g) => !readOnly || !isMutating(g.op));
}

/** The data sources' reads (all Describe* without resource scope). */
function dataSourceGrants(): Grant[] {
  const scoped: Grant[] = Object.values(DATA_SOURCE_ACTIONS).flatMap((d) => (d.scoped ? [{ op: "read" as const, actions: d.scoped.actions, scope: { kind: "fixed" as const, arn: d.scoped.arn } }] : []));
  return [{ op: "read", actions: [...new Set(Object.values(DATA_SOURCE_ACTIONS).flatMap((d) => d.actions))], scope: { kind: "any" } }, ...scoped];
}

/**
 * What the provider needs for a stack's resources: create/read/update/delete of every type
 * (deploy), or read only (preview, refresh). Deploy also passes the stack's host roles to EC2
 * (RunInstances with an instance profile: iam:PassRole, iam:PassedToService) and attaches only
 * the managed policies the program attaches (iam:PolicyARN).
 */
export function resourceStatements(t: Target, stack: string, mode: "deploy" | "read"): PolicyStatement[] {
  const grants = [...resourceGrants(mode === "read"), ...dataSourceGrants()];
  const out = statementsOf(t, stack, grants, "Resources", POLICY_ARN_ACTIONS);
  if (mode === "read") return out;
  const role = `arn:aws:iam::${t.account}:role/${stack}-*`;
  return [
    ...out,
    { Sid: "HostRolePolicies", Effect: "Allow", Action: ["iam:AttachRolePolicy", "iam:DetachRolePolicy"], Resource: [role], Condition: { ArnEquals: { "iam:PolicyARN": ATTACHABLE_POLICIES } } },
    // RunInstances passes the profile's role to EC2 (iam:PassedToService ec2.amazonaws.com);
    // AddRoleToInstanceProfile needs PassRole on the role too (IAM API Reference,
    // AddRoleToInstanceProfile: "must be granted the PassRole permission on the IAM role") and
    // names no service: IfExists lets that request through and holds every other to EC2.
    { Sid: "PassHostRoles", Effect: "Allow", Action: ["iam:PassRole"], Resource: [role], Condition: { StringEqualsIfExists: { "iam:PassedToService": "ec2.amazonaws.com" } } },
  ];
}

/**
 * Host access (components/connection.ts): an SSM session (document AWS-StartSSHSession) to
 * the stack's instances, and EC2 Instance Connect's SendSSHPublicKey to them; both by tag.
 */
export function hostAccessStatements(t: Target, stack: string): PolicyStatement[] {
  const instances = `arn:aws:ec2:${t.region}:${t.account}:instance/*`;
  return [
    { Sid: "HostSession", Effect: "Allow", Action: ["ssm:StartSession"], Resource: [instances], Condition: tagCondition("resource", stack) },
    { Sid: "HostSessionDocument", Effect: "Allow", Action: ["ssm:StartSession"], Resource: [`arn:aws:ssm:${t.region}::document/AWS-StartSSHSession`] },
    { Sid: "HostKey", Effect: "Allow", Action: ["ec2-instance-connect:SendSSHPublicKey"], Resource: [instances], Condition: tagCondition("resource", stack) },
    // Its own sessions only: Session Manager names a session <caller's user id>-<suffix>.
    { Sid: "HostSessionEnd", Effect: "Allow", Action: ["ssm:TerminateSession"], Resource: [`arn:aws:ssm:${t.region}:${t.account}:session/\${aws:userid}-*`] },
  ];
}

/**
 * Images: GetAuthorizationToken has no resource scope (scripts/lib/oci.ts calls it for pin
 * and pin --check); reading the stack's repositories (pin --check: manifests by digest), and
 * for a role that builds (test's: deploy-test's build) pushing and tagging (pin).
 */
export function imageStatements(t: Target, stack: string, push: boolean): PolicyStatement[] {
  const repos = REPOSITORY(t.region, t.account, stack);
  const read = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"];
  const write = ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"];
  return [
    { Sid: "RegistryToken", Effect: "Allow", Action: ["ecr:GetAuthorizationToken"], Resource: ["*"] },
    { Sid: "Images", Effect: "Allow", Action: push ? [...read, ...write] : read, Resource: [repos] },
  ];
}

/** A CI role's whole document: state and secrets, the stack's resources, host access, images. */
export function roleDocument(t: Target, stack: string, kind: "deploy" | "preview", opts: { push?: boolean; readTagsOf?: string[] } = {}): PolicyDocument {
  const state = kind === "deploy" ? deployPolicy(t, stack) : previewPolicy(t, stack, opts.readTagsOf ?? []);
  return {
    Version: "2012-10-17",
    Statement: [...state.Statement, ...resourceStatements(t, stack, kind === "deploy" ? "deploy" : "read"), ...hostAccessStatements(t, stack), ...imageStatements(t, stack, opts.push ?? false)],
  };
}

/**
 * The dev-server role (README One-time set-up step 5, dev-server-reap.yml): the state of
 * dev-<owner> stacks (dev-*), dev's key, destroy of their resources (read and delete, by
 * dev-* names and tags) and host access to them over SSM (the Docker provider deletes
 * containers over the host connection).
 */
export function devServerPolicy(t: Target): PolicyDocument {
  const pattern = "dev-*";
  const destroy = Object.values(RESOURCE_ACTIONS).flatMap((x) => x.grants).filter((g) => g.op === "read" || g.op === "delete");
  return {
    Version: "2012-10-17",
    Statement: [
      // The state of every dev-<owner> stack (dev-*), decrypted with dev's key: deployPolicy's grants.
      ...deployPolicy(t, pattern).Statement,
      ...statementsOf(t, pattern, [...destroy, ...dataSourceGrants()], "Destroy", POLICY_ARN_ACTIONS, true),
      { Sid: "HostRolePolicies", Effect: "Allow", Action: ["iam:DetachRolePolicy"], Resource: [`arn:aws:iam::${t.account}:role/${pattern}`], Condition: { ArnEquals: { "iam:PolicyARN": ATTACHABLE_POLICIES }, ...tagCondition("resource", pattern) } },
      ...hostAccessStatements(t, pattern),
    ],
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
    "dockyard-ci-test": roleDocument(t, "test", "deploy", { push: true }),
    "dockyard-ci-prod-preview": roleDocument(t, "prod", "preview", { readTagsOf: ["test"] }),
    "dockyard-ci-prod": roleDocument(t, "prod", "deploy"),
    "dockyard-dev-server": devServerPolicy(t),
  };
}

/** Every document the README's set-up attaches: the CI roles', and the set-up's KMS grant per environment. */
export function allPolicies(t: Target): Record<string, PolicyDocument> {
  return { ...ciPolicies(t), "dockyard-setup-test": setupPolicy(t, "test"), "dockyard-setup-prod": setupPolicy(t, "prod") };
}

/** IAM's quota for one customer managed policy: 6,144 characters, whitespace not counted. */
export const MANAGED_POLICY_MAX = 6144;
/** Managed policies a role may have attached (IAM's default quota). */
export const MANAGED_PER_ROLE_MAX = 10;

/** A role's document as managed policies of at most MANAGED_POLICY_MAX characters each: `<role>-1`, `<role>-2`, ... (or `<role>` when one fits). */
export function splitForIam(role: string, doc: PolicyDocument): Record<string, PolicyDocument> {
  const parts: PolicyStatement[][] = [[]];
  const size = (st: PolicyStatement[]) => JSON.stringify({ Version: doc.Version, Statement: st }).length;
  for (const st of doc.Statement) {
    if (size([...parts[parts.length - 1], st]) > MANAGED_POLICY_MAX) parts.push([]);
    parts[parts.length - 1].push(st);
  }
  if (parts.length === 1) return { [role]: doc };
  return Object.fromEntries(parts.map((st, i) => [`${role}-${i + 1}`, { Version: doc.Version, Statement: st }]));
}

/** What `npx tsx ci/iam/policies.ts` prints: every document, split to IAM's managed-policy size. */
export function managedPolicies(t: Target): Record<string, PolicyDocument> {
  return Object.assign({}, ...Object.entries(allPolicies(t)).map(([role, doc]) => splitForIam(role, doc)));
}

/** The table behind the resource grants, as Markdown: type, provider source file, actions by operation, scope. */
export function actionTable(): string {
  const rows = Object.entries(RESOURCE_ACTIONS).map(([type, t]) => {
    const ops = (["create", "read", "update", "delete"] as const).map((op) => [...new Set(t.grants.filter((g) => g.op === op).flatMap((g) => g.actions))].join(", ") || "-");
    const scope = [...new Set(t.grants.map((g) => (g.scope.kind === "any" ? "*" : g.scope.kind === "fixed" ? "fixed ARN" : g.scope.kind)))].join(", ");
    return `| \`${type}\` | ${t.source} | ${ops.join(" | ")} | ${scope} |`;
  });
  const data = Object.entries(DATA_SOURCE_ACTIONS).map(([token, d]) => `| \`${token}\` | ${d.source} | - | ${[...d.actions, ...(d.scoped?.actions ?? [])].join(", ") || d.note} | - | - | * |`);
  return ["| type | terraform-provider-aws source | create | read | update | delete | scope |", "|---|---|---|---|---|---|---|", ...rows, ...data].join("\n") + "\n";
}

// `npx tsx ci/iam/policies.ts <account> <region> <bucket> [name]`: the managed policies as JSON, to attach (name: one of them).
// `npx tsx ci/iam/policies.ts --table`: the calls per resource type and data source, as Markdown.
if (require.main === module) {
  if (process.argv[2] === "--table") {
    process.stdout.write(actionTable());
    process.exit(0);
  }
  const [account, region, bucket, role] = process.argv.slice(2);
  if (!/^\d{12}$/.test(account ?? "") || !region || !bucket) {
    process.stderr.write("usage: npx tsx ci/iam/policies.ts <12-digit account> <region> <state bucket> [name]\n");
    process.exit(2);
  }
  const all = managedPolicies({ account, region, bucket });
  if (role !== undefined && !(role in all)) {
    process.stderr.write(`ci/iam/policies.ts: ${role}: allowed: ${Object.keys(all).join(", ")}\n`);
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(role ? all[role] : all, null, 2) + "\n");
}
