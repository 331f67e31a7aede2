/**
 * DockerHost: one EC2 Linux VM of a host group, with everything that makes it a host
 * Dockyard can replace at any time without losing data or identity:
 *  - a separate encrypted EBS data volume (retained) that outlives the VM;
 *  - an Elastic IP that stays with the host across replacements;
 *  - a per-host SSH host key kept in SSM Parameter Store, so known_hosts stays valid;
 *  - an IAM identity that can pull its stack's images from ECR, be managed by SSM and read
 *    its own host key.
 *
 * The pure helpers below (names, tags, ingress rules, subnet placement, policies) hold
 * the decisions and are unit-tested without Pulumi; the component only wires resources.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as tls from "@pulumi/tls";
import * as command from "@pulumi/command";
import { hostNameFor, type EnvironmentSpec, type HostGroupSpec } from "../stacks/schema";
import type { Architecture, OsFamilyInfo } from "../stacks/os";
import type { EcrRegistry } from "../stacks/ecr";
import { userDataBase64 } from "./engine";
import { ssmProxyCommand, type HostConnection } from "./connection";
import { withTurn } from "./rollout";

// ---------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------

/** SSH, opened only to the stack's sshCidrs. */
export const SSH_PORT = 22;
/** Device name the data volume is attached as; on Nitro instances it shows up as NVMe, see dataDevicePath(). */
export const DATA_DEVICE_NAME = "/dev/sdf";

/** A host a stack declares: its name, its group and its 1-based ordinal in the group (which decides its zone, hostZone). */
export interface StackHost {
  name: string;
  group: HostGroupSpec;
  ordinal: number;
}

/**
 * Every host of a stack, group by group in the spec's order, ordinals 1..count: the hosts
 * the program creates, in the order the fleet places replicas on them.
 */
export function stackHosts(spec: Pick<EnvironmentSpec, "stack" | "hostGroups">): StackHost[] {
  return spec.hostGroups.flatMap((group) => Array.from({ length: group.count }, (_, i) => ({ name: hostNameFor(spec.stack, group.name, i + 1), group, ordinal: i + 1 })));
}

/**
 * The stable device path of an EBS volume on a Nitro instance. EBS volumes appear as NVMe
 * devices whose serial is the volume id without its hyphen, and udev links them as
 * /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123...; unlike /dev/nvme1n1 this
 * path does not depend on attachment order. (Xen instance types such as t2 are not covered.)
 */
export function dataDevicePath(volumeId: string): string {
  if (!volumeId || /[\s/]/.test(volumeId)) {
    throw new Error(`data volume id must be an EBS volume id like vol-0123456789abcdef0 (got ${JSON.stringify(volumeId)})`);
  }
  return `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace(/^vol-/, "vol")}`;
}

/** The SSM parameter holding a host's SSH host private key. */
export function hostKeyParameterName(stack: string, host: string): string {
  return `/dockyard/${stack}/${host}/ssh_host_ed25519_key`;
}

/** What the tags of a host's resources are made of. */
export interface HostTagInputs {
  stack: string;
  project: string;
  group: string;
  role: string;
  hostName: string;
}

/**
 * Tags for every taggable resource of a host. They are set per resource, not through the
 * AWS provider's defaultTags (which @pulumi/aws 7 supports): the group/role/host tags differ
 * per host, defaultTags would need an explicit provider threaded through every component,
 * and it does not reach the instance's root volume. `Name` is the host name, or
 * `${hostName}-${part}` for a part of it (data volume, security group, ...), so the
 * console lists them together; `dockyard:host` always names the host.
 */
export function hostTags(t: HostTagInputs, part?: string): Record<string, string> {
  return {
    Name: part ? `${t.hostName}-${part}` : t.hostName,
    "dockyard:stack": t.stack,
    "dockyard:project": t.project,
    "dockyard:group": t.group,
    "dockyard:role": t.role,
    "dockyard:host": t.hostName,
  };
}

/** One inbound security group rule, shaped as aws.ec2.SecurityGroup's inline `ingress`. */
export interface IngressRule {
  description: string;
  protocol: "tcp";
  fromPort: number;
  toPort: number;
  cidrBlocks: string[];
}

/** An inbound rule whose source is another security group (the front door's). */
export interface SourceGroupIngressRule {
  description: string;
  protocol: "tcp";
  fromPort: number;
  toPort: number;
  securityGroups: pulumi.Input<string>[];
}

/** What decides a host's inbound rules. */
export interface IngressInputs {
  stack: string;
  group: string;
  /** CIDRs allowed to reach SSH (22); empty: no SSH from the network (SSM Session Manager only). */
  sshCidrs: string[];
  /** CIDRs allowed to reach the published service ports; empty: the ports are not reachable. */
  ingressCidrs: string[];
  /** Ports the per-host proxy publishes (services' publishPort on this group). */
  servicePorts: number[];
}

/**
 * The minimal inbound rules of a host: SSH only from sshCidrs, each published service port
 * only from ingressCidrs, nothing else. The ports come from the parsed spec, whose schema
 * refuses 22, 2375/2376 (the Docker API is never exposed) and anything outside 1-65535.
 */
export function ingressRules(i: IngressInputs): IngressRule[] {
  const rules: IngressRule[] = [];
  const ssh = [...new Set(i.sshCidrs)].sort();
  if (ssh.length > 0) {
    rules.push({ description: "SSH (dockyard:sshCidrs)", protocol: "tcp", fromPort: SSH_PORT, toPort: SSH_PORT, cidrBlocks: ssh });
  }
  const ingress = [...new Set(i.ingressCidrs)].sort();
  if (ingress.length > 0) {
    for (const p of [...new Set(i.servicePorts)].sort((a, b) => a - b)) {
      rules.push({ description: `service port ${p} (dockyard:ingressCidrs)`, protocol: "tcp", fromPort: p, toPort: p, cidrBlocks: ingress });
    }
  }
  return rules;
}

/**
 * A host's inbound rules behind a front door (issue 13): SSH as ingressRules says, and each
 * published service port only from the front door's security group, which carries both the
 * clients' connections and the load balancer's health checks; ingressCidrs apply on the
 * load balancer instead. Without a front door: ingressRules.
 */
export function hostIngressRules(i: IngressInputs & { frontDoorSecurityGroupId?: pulumi.Input<string> }): (IngressRule | SourceGroupIngressRule)[] {
  if (i.frontDoorSecurityGroupId === undefined) return ingressRules(i);
  const source = i.frontDoorSecurityGroupId;
  const ports = [...new Set(i.servicePorts)].sort((a, b) => a - b);
  return [
    ...ingressRules({ ...i, ingressCidrs: [] }),
    ...ports.map((p): SourceGroupIngressRule => ({ description: `service port ${p} (from the front door)`, protocol: "tcp", fromPort: p, toPort: p, securityGroups: [source] })),
  ];
}

/** Outbound: everything (package repositories, ECR, SSM endpoints, NTP). */
export function egressRules(): { description: string; protocol: "-1"; fromPort: 0; toPort: 0; cidrBlocks: string[]; ipv6CidrBlocks: string[] }[] {
  return [{ description: "all outbound", protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"], ipv6CidrBlocks: ["::/0"] }];
}

/** The AMI lookup of an OS family: the publisher's account, its name pattern for the architecture, newest first. */
export function amiQuery(info: OsFamilyInfo, arch: Architecture): { owners: string[]; mostRecent: true; filters: { name: string; values: string[] }[] } {
  return {
    owners: [info.amiOwner],
    mostRecent: true,
    filters: [
      { name: "name", values: [info.amiNamePattern[arch]] },
      { name: "architecture", values: [arch] },
      { name: "virtualization-type", values: ["hvm"] },
      { name: "root-device-type", values: ["ebs"] },
      { name: "state", values: ["available"] },
    ],
  };
}

/**
 * IMDSv2 only (session tokens required). The PUT response hop limit is 1 so containers
 * (one network hop further) cannot get a token; 2 only for groups whose containers
 * need the metadata service (containerImds).
 */
export function metadataOptions(containerImds: boolean): {
  httpEndpoint: "enabled";
  httpTokens: "required";
  httpPutResponseHopLimit: 1 | 2;
  instanceMetadataTags: "disabled";
} {
  return { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: containerImds ? 2 : 1, instanceMetadataTags: "disabled" };
}

/** A subnet a host may be placed in. */
export interface SubnetChoice {
  id: string;
  availabilityZone: string;
}

/**
 * The availability zone of host `ordinal` (1-based) of a group: zones[(ordinal-1) mod n], in
 * the order the stack file's dockyard:zones lists them (issue 24 item 6). The zone is decided
 * by that list alone, never by the subnets the region has today: an EBS volume's
 * availability_zone is ForceNew (terraform-provider-aws internal/service/ec2/ebs_volume.go),
 * so a host that moved zone would get a new, blank data volume.
 */
export function hostZone(zones: readonly string[], ordinal: number, where = "dockyard:zones"): string {
  if (zones.length === 0) throw new Error(`${where}: no availability zones; EC2 hosts need config.dockyard:zones`);
  if (!Number.isInteger(ordinal) || ordinal < 1) throw new Error(`${where}: host ordinal must be an integer >= 1 (got ${ordinal})`);
  return zones[(ordinal - 1) % zones.length];
}

/**
 * Where the map (scripts/lib/map.ts) expects a host when the zones are the given subnets'
 * zones in alphabetical order: hostZone over them. (Before issue 24 item 6 this was how
 * DockerHost placed hosts; it now takes its zone from dockyard:zones.)
 */
export function pickSubnet(subnets: SubnetChoice[], ordinal: number, where = "default VPC"): SubnetChoice {
  if (subnets.length === 0) {
    throw new Error(`${where}: no default subnets found; Dockyard places hosts in the region's default VPC (create one with 'aws ec2 create-default-vpc')`);
  }
  const sorted = [...subnets].sort((a, b) => a.availabilityZone.localeCompare(b.availabilityZone) || a.id.localeCompare(b.id));
  const zone = hostZone(sorted.map((s) => s.availabilityZone), ordinal, where);
  return sorted.find((s) => s.availabilityZone === zone)!;
}

/** What a host's subnet lookup says when its zone has no default subnet: the host stays out, it is not moved. */
export function noSubnetInZoneMessage(t: { stack: string; host: string; region: string; zone: string }, cause: string): string {
  return (
    `stack "${t.stack}": host ${t.host}: the default VPC of ${t.region} has no default subnet in ${t.zone}, the zone stacks/Pulumi.${t.stack}.yaml config.dockyard:zones places this host in ` +
    `(a host never changes zone by itself: its data volume cannot follow); create one with 'aws ec2 create-default-subnet --availability-zone ${t.zone} --region ${t.region}', ` +
    `or change config.dockyard:zones to move the host (it then gets a new, empty data volume) [${cause}]`
  );
}

/** Trust policy: only EC2 may assume the host role. */
export function ec2AssumeRolePolicy(): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
  });
}

/** The parameter-reading actions a host role is denied on every other /dockyard/ parameter. */
export const PARAMETER_READ_ACTIONS = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory", "ssm:GetParametersByPath"] as const;

/** What a host's grant on its own host key is made of. */
export interface HostKeyGrant {
  partition: string;
  region: string;
  /** The host's name: the `dockyard:host` tag of its parameter (hostTags). */
  host: string;
  parameterArn: string;
  /** The stack's host-key KMS key (hostKeysKey) that encrypts the parameter. */
  keyArn: string;
}

/**
 * The host may read and decrypt exactly its own host-key parameter (issue 24 item 5).
 * AmazonSSMManagedInstanceCore, which every host attaches, allows ssm:GetParameter and
 * ssm:GetParameters on "*" (AWS Managed Policy Reference, v2), and the AWS managed key aws/ssm
 * lets every principal of the account decrypt through SSM (Systems Manager user guide,
 * ps-restrict-decryption). So:
 *  - the parameter is encrypted with the stack's own key, and this role may use it only
 *    through SSM (kms:ViaService) for its own parameter: SSM decrypts a standard
 *    SecureString with the encryption context PARAMETER_ARN = the parameter's ARN (AWS KMS
 *    developer guide, "How AWS Systems Manager Parameter Store uses AWS KMS");
 *  - a deny on every /dockyard/ parameter not tagged with this host (any stack, any region,
 *    by path too): restricting kms:Decrypt does not hide a parameter (ps-restrict-decryption:
 *    "Use Parameter Store action denies"), and a deny outweighs the managed policy's allow.
 *    The tag is the parameter's own `dockyard:host` (hostTags), which no host role may change.
 */
export function hostKeyReadPolicy(g: HostKeyGrant): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      { Sid: "ReadOwnSshHostKey", Effect: "Allow", Action: "ssm:GetParameter", Resource: g.parameterArn },
      {
        Sid: "DecryptOwnSshHostKey",
        Effect: "Allow",
        Action: "kms:Decrypt",
        Resource: g.keyArn,
        Condition: { StringEquals: { "kms:EncryptionContext:PARAMETER_ARN": g.parameterArn, "kms:ViaService": `ssm.${g.region}.amazonaws.com` } },
      },
      {
        Sid: "NoOtherDockyardParameter",
        Effect: "Deny",
        Action: [...PARAMETER_READ_ACTIONS],
        Resource: `arn:${g.partition}:ssm:*:*:parameter/dockyard/*`,
        Condition: { StringNotEquals: { "aws:ResourceTag/dockyard:host": g.host } },
      },
    ],
  });
}

/**
 * The key policy of a stack's host-key KMS key: KMS's default key policy, which leaves every
 * use of the key to IAM policies in the account (KMS developer guide, "Default key policy":
 * the account principal is allowed kms:*, so IAM policies grant, and no principal of another
 * account can). The stack's host roles get kms:Decrypt for their own parameter only
 * (hostKeyReadPolicy); the deployers need kms:Encrypt and kms:Decrypt on it (README "Access
 * to hosts"). No principal is named here, so a replaced host role never edits the key policy.
 */
export function hostKeysKeyPolicy(partition: string, accountId: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Id: "dockyard-host-keys",
    Statement: [{ Sid: "AccountIamPoliciesDecide", Effect: "Allow", Principal: { AWS: `arn:${partition}:iam::${accountId}:root` }, Action: "kms:*", Resource: "*" }],
  });
}

/** The alias of a stack's host-key KMS key (KMS: alias/ and [a-zA-Z0-9/_-], never alias/aws/). */
export function hostKeysAliasName(stack: string): string {
  return `alias/dockyard/${stack}/host-keys`;
}

/** What a stack's host-key KMS key is made of. */
export interface HostKeysKeyArgs {
  stack: string;
  project: string;
  region: string;
}

/**
 * The stack's own KMS key for its hosts' SSH host-key parameters (issue 24 item 5), and its
 * alias. One per stack, made before its hosts (index.ts): a parameter encrypted with it is
 * readable by its host, by the deployers, and by no other host of any stack.
 */
export function hostKeysKey(name: string, args: HostKeysKeyArgs): HostKeysKey {
  const partition = aws.getPartitionOutput({}).partition;
  const accountId = aws.getCallerIdentityOutput({}).accountId;
  const key = new aws.kms.Key(name, {
    region: args.region,
    description: `Dockyard stack ${args.stack}: the SSH host keys of its hosts (SSM SecureString parameters /dockyard/${args.stack}/)`,
    keyUsage: "ENCRYPT_DECRYPT",
    customerMasterKeySpec: "SYMMETRIC_DEFAULT",
    enableKeyRotation: true,
    // The longest wait KMS allows before a deleted key is gone: a destroy by mistake can be undone (CancelKeyDeletion).
    deletionWindowInDays: 30,
    policy: pulumi.all([partition, accountId]).apply(([p, a]) => hostKeysKeyPolicy(p, a)),
    tags: { Name: name, "dockyard:stack": args.stack, "dockyard:project": args.project },
  });
  // The provider's id of a key is its KeyId (terraform-provider-aws internal/service/kms/key.go
  // resourceKeyCreate: d.SetId(KeyMetadata.KeyId)); its ARN is KMS's
  // arn:<partition>:kms:<region>:<account>:key/<key id>.
  const keyId = key.id;
  const alias = new aws.kms.Alias(`${name}-alias`, { region: args.region, name: hostKeysAliasName(args.stack), targetKeyId: keyId }, { parent: key });
  // Parameters name the key by the alias resource's name output: the form SSM reports and the
  // provider reads back (see DockerHost's host-key parameter), and a dependency on the alias.
  return { key, alias, aliasName: alias.name, arn: pulumi.interpolate`arn:${partition}:kms:${args.region}:${accountId}:key/${keyId}` };
}

/**
 * A stack's host-key KMS key: the key, its alias, the alias's name (what a parameter's keyId
 * names) and the key's ARN (what IAM policies name: kms:Decrypt is authorized against the key,
 * not an alias ARN).
 */
export interface HostKeysKey {
  key: aws.kms.Key;
  alias: aws.kms.Alias;
  aliasName: pulumi.Output<string>;
  arn: pulumi.Output<string>;
}

/**
 * Pulls from the stack's own repositories only: `<registry namespace>/*` in the registry's
 * account and region. The AWS managed AmazonEC2ContainerRegistryReadOnly would let a dev
 * host read every repository in the account, prod's included. GetAuthorizationToken has no
 * resource-level permissions (Resource must be "*"); it only issues the token, and what a
 * token may pull is decided by the statements on the repositories.
 */
export function ecrPullPolicy(partition: string, ecr: Pick<EcrRegistry, "accountId" | "region" | "namespace">): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      { Sid: "EcrToken", Effect: "Allow", Action: "ecr:GetAuthorizationToken", Resource: "*" },
      {
        Sid: "PullStackRepositories",
        Effect: "Allow",
        Action: ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
        Resource: `arn:${partition}:ecr:${ecr.region}:${ecr.accountId}:repository/${ecr.namespace}/*`,
      },
    ],
  });
}

/** AWS managed policies every host gets: SSM management (Session Manager). */
export const MANAGED_POLICIES = {
  ssm: "AmazonSSMManagedInstanceCore",
} as const;

// ---------------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------------

/** What the host's boot script (rendered by components/engine.ts) needs to know about the host. */
export interface HostBootContext {
  /** `${stack}-${group}-${ordinal}`; set as the Linux hostname. */
  hostName: string;
  /** Stable device path of the data volume (dataDevicePath of its id); it appears once the attachment is made, which can be after boot. */
  dataDevice: pulumi.Output<string>;
  /** SSM parameter name holding this host's SSH host private key (SecureString; the instance role may read it). */
  hostKeyParameter: string;
  /** The availability zone the host is placed in (swarm mode: its engine's zone label, components/swarm.ts). */
  availabilityZone: pulumi.Output<string>;
}

export interface DockerHostArgs {
  /** Stack name (dev, test, prod, ...); part of the host name, tags and SSM path. */
  stack: string;
  /** Pulumi project name; the `dockyard:project` tag. */
  project: string;
  /** The host group this host belongs to: instance type, volume sizes, role, containerImds. */
  group: HostGroupSpec;
  /** 1-based index of this host within its group; decides the name. */
  ordinal: number;
  /**
   * The availability zone the host and its data volume are in (index.ts: hostZone of the
   * stack's dockyard:zones). The host's subnet is the default subnet of this zone; a zone
   * without one is an error, never a move to another zone.
   */
  availabilityZone: string;
  /** AWS region; the AMI, VPC and every regional resource are looked up / created there. */
  region: string;
  /** OS image family of the environment (AMI owner + name pattern, SSH user). */
  os: EnvironmentSpec["os"];
  /** Network access: sshCidrs (port 22), ingressCidrs (service ports), optional sshPublicKey for an EC2 key pair (unset: SSM only). */
  access: EnvironmentSpec["access"];
  /** Ports the per-host proxy publishes for services on this group; opened to the front door (or ingressCidrs) only (never 22, 2375 or 2376: the schema refuses them). */
  servicePorts: number[];
  /** The group's front door's security group: the only source of the service ports (ingressCidrs apply on the load balancer). */
  frontDoorSecurityGroupId?: pulumi.Input<string>;
  /** More security groups of the instance besides its own (swarm mode: the stack's swarm group, components/swarm-fleet.ts). */
  extraSecurityGroupIds?: pulumi.Input<string>[];
  /**
   * What the machine waits for before it is created or replaced: the serving gates of the
   * previous rollout batch of its group (components/rollout.ts RolloutOrder.after), so a new
   * engine or user-data replaces one batch of hosts at a time.
   */
  after?: Promise<pulumi.Resource[]>;
  /**
   * Registers the instance with the group's front door (FrontDoor.attach) and returns the
   * registrations. When the instance is replaced, the old one is deregistered and drained
   * (`drainSeconds`) BEFORE the data volume's detach stops it (attachDataVolume).
   */
  frontDoor?: { register: (instanceId: pulumi.Output<string>) => pulumi.Resource[]; drainSeconds: number };
  /**
   * The stack's host-key KMS key (hostKeysKey): it encrypts the host's SSH host-key
   * parameter (named by `aliasName`, the alias resource's name), and the host role may
   * decrypt with it (by the key's `arn`) for that parameter only.
   */
  hostKeysKey: { aliasName: pulumi.Input<string>; arn: pulumi.Input<string> };
  /** The stack's ECR registry (parsed dockyard:registry); the host may pull from its namespace only. Unset: no ECR permissions. */
  ecr?: Pick<EcrRegistry, "accountId" | "region" | "namespace">;
  /**
   * Renders the instance user-data (the #cloud-config text) for this host; components/engine.ts
   * provides it. It is sent gzip-compressed (userDataBase64), under EC2's 16 KB limit.
   * A change replaces the instance (userDataReplaceOnChange), which is how a new engine version is rolled out.
   */
  userData: (ctx: HostBootContext) => pulumi.Input<string>;
  /**
   * Replace the instance when the OS family publishes a newer AMI. Default false: the image
   * is chosen when the host is first created and then kept (`ignoreChanges: ["ami"]`), so a
   * new upstream image never replaces every host as a surprise on an unrelated `up`. Note
   * that Pulumi's ignoreChanges keeps the old value even when the instance is replaced for
   * another reason (user-data), so hosts only move to a newer image when this is true
   * (or the host is created anew); OS patches otherwise come from the package manager.
   */
  replaceOnNewImage?: boolean;
}

/** Where a host is placed: its image and its subnet in the region's default VPC. */
interface HostPlacement {
  amiId: pulumi.Output<string>;
  vpcId: pulumi.Output<string>;
  subnetId: pulumi.Output<string>;
  availabilityZone: pulumi.Output<string>;
}

/** Who a host is: its SSH host key (kept in SSM), optional key pair, role and instance profile. */
interface HostIdentity {
  keyPair?: aws.ec2.KeyPair;
  hostKey: tls.PrivateKey;
  hostKeyParameter: string;
  hostKeyParam: aws.ssm.Parameter;
  profile: aws.iam.InstanceProfile;
  /** What the boot script needs granted before the VM exists (host key, its read policy, SSM, ECR pulls). */
  bootGrants: pulumi.Resource[];
}

/** One EC2 host of a host group, with its data volume, address, identity and SSH host key. */
export class DockerHost extends pulumi.ComponentResource {
  /** `${stack}-${group}-${ordinal}`. */
  public readonly hostName: string;
  /** EC2 instance id (changes when the instance is replaced). */
  public readonly instanceId: pulumi.Output<string>;
  /**
   * The host's public address (its Elastic IP), read from the EIP ASSOCIATION: it resolves
   * only once the address points at the current instance. The EIP's own publicIp is known
   * before that, so during a replacement it could reach the OLD instance (same pinned host key).
   */
  public readonly publicIp: pulumi.Output<string>;
  /** The instance the address reaches, per the association; the engine's ready check insists on meeting it. */
  public readonly addressInstanceId: pulumi.Output<string>;
  /** Private IPv4 address in the default VPC. */
  public readonly privateIp: pulumi.Output<string>;
  /** The data volume's id (stable; the volume is retained when its host is removed). */
  public readonly dataVolumeId: pulumi.Output<string>;
  /** AZ of the instance and its data volume. */
  public readonly availabilityZone: pulumi.Output<string>;
  /** The host's SSH host public key, `ssh-ed25519 AAAA...`, for known_hosts. */
  public readonly hostPublicKey: pulumi.Output<string>;
  /** Login user of the OS image. */
  public readonly sshUser: string;
  /**
   * How Pulumi reaches this host (principle 8, one way in), built once here: with access
   * `ssm` the instance id behind the Elastic IP's association, through the Session Manager
   * ProxyCommand; with `public` the Elastic IP itself. The login user and the pinned host
   * key either way. The engine's ready check, every command on the host and the Docker
   * provider take their connection from this one value (components/connection.ts).
   */
  public readonly connection: HostConnection;
  /** SSM parameter holding the SSH host private key. */
  public readonly hostKeyParameter: string;
  /** The host's security group. */
  public readonly securityGroupId: pulumi.Output<string>;

  private readonly args: DockerHostArgs;
  private readonly name: string;
  private readonly tagInputs: HostTagInputs;

  constructor(name: string, args: DockerHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:DockerHost", name, {}, opts);
    const host = hostNameFor(args.stack, args.group.name, args.ordinal);
    const ingress = hostIngressRules({
      stack: args.stack,
      group: args.group.name,
      sshCidrs: args.access.sshCidrs,
      ingressCidrs: args.access.ingressCidrs,
      servicePorts: args.servicePorts,
      frontDoorSecurityGroupId: args.frontDoorSecurityGroupId,
    });
    this.args = args;
    this.name = name;
    this.tagInputs = { stack: args.stack, project: args.project, group: args.group.name, role: args.group.role, hostName: host };

    const placement = this.placement();
    const sg = this.securityGroup(placement.vpcId, ingress);
    const identity = this.identity();
    // The zone as the stack file names it, a plain value: the volume's zone (ForceNew) changes
    // only when dockyard:zones does, whatever the region's subnets are.
    const dataVolume = this.dataVolume(args.availabilityZone);
    const userData = args.userData({ hostName: host, dataDevice: dataVolume.id.apply(dataDevicePath), hostKeyParameter: identity.hostKeyParameter, availabilityZone: placement.availabilityZone });
    const instance = this.instance(placement, sg, identity, userData);
    const attachment = this.attachDataVolume(instance, dataVolume, this.drain(instance));
    const association = this.address(instance);

    this.hostName = host;
    this.instanceId = instance.id;
    // terraform-provider-aws ec2_eip_association.go: Create waits for the association, then
    // Read sets public_ip and instance_id from DescribeAddresses.
    this.publicIp = association.publicIp;
    this.addressInstanceId = association.instanceId;
    this.privateIp = instance.privateIp;
    // Depend on the attachment, so consumers (the fleet) wait until the data volume is attached.
    this.dataVolumeId = pulumi.all([dataVolume.id, attachment.id]).apply(([id]) => id);
    this.availabilityZone = placement.availabilityZone;
    this.hostPublicKey = identity.hostKey.publicKeyOpenssh.apply((k) => k.trim());
    this.sshUser = args.os.sshUser;
    this.connection =
      args.access.mode === "ssm"
        ? // The association's instanceId: the instance the address is on, so a replaced host
          // is reached once it took over (as the address is).
          { target: this.addressInstanceId, user: this.sshUser, hostPublicKey: this.hostPublicKey, proxyCommand: ssmProxyCommand(args.region, this.sshUser) }
        : { target: this.publicIp, user: this.sshUser, hostPublicKey: this.hostPublicKey };
    this.hostKeyParameter = identity.hostKeyParameter;
    this.securityGroupId = sg.id;

    this.registerOutputs({
      hostName: this.hostName,
      instanceId: this.instanceId,
      publicIp: this.publicIp,
      addressInstanceId: this.addressInstanceId,
      privateIp: this.privateIp,
      dataVolumeId: this.dataVolumeId,
      availabilityZone: this.availabilityZone,
      hostPublicKey: this.hostPublicKey,
      sshUser: this.sshUser,
      hostKeyParameter: this.hostKeyParameter,
      securityGroupId: this.securityGroupId,
    });
  }

  private tags(part?: string): Record<string, string> {
    return hostTags(this.tagInputs, part);
  }

  /** The newest image of the pinned OS family, and the default subnet of the host's zone in the default VPC. */
  private placement(): HostPlacement {
    const { args } = this;
    const region = args.region;
    const zone = args.availabilityZone;
    const invokeOpts: pulumi.InvokeOutputOptions = { parent: this };
    const ami = aws.ec2.getAmiOutput({ ...amiQuery(args.os.info, args.os.architecture), region }, invokeOpts);
    const vpc = aws.ec2.getVpcOutput({ default: true, region }, invokeOpts);
    // Looked up by the host's zone, not picked from today's list: a subnet added or removed
    // elsewhere moves no host (issue 24 item 6).
    const subnetId = vpc.id.apply((vpcId) =>
      aws.ec2
        .getSubnet({ region, vpcId, availabilityZone: zone, defaultForAz: true }, { parent: this })
        .then(
          (s) => s.id,
          (e: unknown) => {
            throw new Error(noSubnetInZoneMessage({ stack: args.stack, host: this.tagInputs.hostName, region, zone }, e instanceof Error ? e.message : String(e)));
          },
        ),
    );
    return { amiId: ami.id, vpcId: vpc.id, subnetId, availabilityZone: pulumi.output(zone) };
  }

  /**
   * Minimal ingress, all egress. Inline rules make this resource the only owner of the
   * group's rules, so a rule added by hand is removed on the next `up`.
   */
  private securityGroup(vpcId: pulumi.Output<string>, ingress: (IngressRule | SourceGroupIngressRule)[]): aws.ec2.SecurityGroup {
    return new aws.ec2.SecurityGroup(
      `${this.name}-sg`,
      {
        region: this.args.region,
        vpcId,
        description: `Dockyard host ${this.tagInputs.hostName}: SSH from sshCidrs, service ports from ${this.args.frontDoorSecurityGroupId !== undefined ? "the front door" : "ingressCidrs"}`,
        ingress,
        egress: egressRules(),
        tags: this.tags("sg"),
      },
      { parent: this },
    );
  }

  /** The host's identity: key pair (optional), SSH host key in SSM, and the instance role and profile. */
  private identity(): HostIdentity {
    const { args, name } = this;
    const region = args.region;
    const host = this.tagInputs.hostName;

    // Optional EC2 key pair; without one, operators reach the host through SSM Session Manager.
    const keyPair = args.access.sshPublicKey
      ? new aws.ec2.KeyPair(`${name}-key`, { region, publicKey: args.access.sshPublicKey, tags: this.tags("key") }, { parent: this })
      : undefined;

    // The host's SSH host key, generated once and kept in state (as a secret) and in SSM, so a
    // replaced instance presents the same key and known_hosts written by the fleet stays valid.
    const hostKey = new tls.PrivateKey(`${name}-host-key`, { algorithm: "ED25519" }, { parent: this });
    const hostKeyParameter = hostKeyParameterName(args.stack, host);
    const hostKeyParam = new aws.ssm.Parameter(
      `${name}-host-key-param`,
      {
        region,
        name: hostKeyParameter,
        type: "SecureString",
        description: `SSH host private key (ed25519) of Dockyard host ${host}`,
        value: pulumi.secret(hostKey.privateKeyOpenssh),
        // The stack's own key, not aws/ssm (which every principal of the account may use via
        // SSM), named by its ALIAS: the provider's Read sets key_id from DescribeParameters'
        // KeyId, the key's alias (terraform-provider-aws internal/service/ssm/parameter.go
        // resourceParameterRead; key_id is Optional+Computed with no DiffSuppressFunc), and its
        // acceptance test TestAccSSMParameter_Secure_key (parameter_test.go) round-trips
        // key_id = "alias/<name>". A bare key id would show an update on every preview. Not
        // ForceNew: a change of key_id is a PutParameter Overwrite in place.
        keyId: args.hostKeysKey.aliasName,
        tags: this.tags("host-key"),
      },
      { parent: this, additionalSecretOutputs: ["value"] },
    );

    // Instance identity: SSM management, pulls from the stack's ECR namespace, and reading and
    // decrypting its own host key only (no other /dockyard/ parameter, hostKeyReadPolicy).
    const partition = aws.getPartitionOutput({}, { parent: this }).partition;
    const role = new aws.iam.Role(
      `${name}-role`,
      { description: `Dockyard host ${host}`, assumeRolePolicy: ec2AssumeRolePolicy(), tags: this.tags("role") },
      { parent: this },
    );
    const ssmCore = new aws.iam.RolePolicyAttachment(
      `${name}-ssm-core`,
      { role: role.name, policyArn: pulumi.interpolate`arn:${partition}:iam::aws:policy/${MANAGED_POLICIES.ssm}` },
      { parent: this },
    );
    const ecr = args.ecr;
    const ecrPull = ecr
      ? new aws.iam.RolePolicy(`${name}-ecr-pull`, { role: role.name, policy: partition.apply((p) => ecrPullPolicy(p, ecr)) }, { parent: this })
      : undefined;
    const hostKeyRead = new aws.iam.RolePolicy(
      `${name}-host-key-read`,
      {
        role: role.name,
        policy: pulumi
          .all([partition, hostKeyParam.arn, args.hostKeysKey.arn])
          .apply(([p, parameterArn, keyArn]) => hostKeyReadPolicy({ partition: p, region, host, parameterArn, keyArn })),
      },
      { parent: this },
    );
    const profile = new aws.iam.InstanceProfile(`${name}-profile`, { role: role.name, tags: this.tags("profile") }, { parent: this });
    return { keyPair, hostKey, hostKeyParameter, hostKeyParam, profile, bootGrants: [hostKeyParam, hostKeyRead, ssmCore, ...(ecrPull ? [ecrPull] : [])] };
  }

  /**
   * The data volume: Docker's data-root and the services' volumes live here, not on the
   * instance. It outlives the instance: retainOnDelete makes Pulumi drop it from the stack
   * without calling EC2's DeleteVolume (pkg/resource/deploy/step.go, DeleteStep.Apply), so
   * lowering a group's count, removing a group or `pulumi destroy` leave the volume (and its
   * data) in the account, tagged with its host, for the operator to reattach or delete.
   * Not `protect`: Pulumi refuses every plan that would delete a protected resource
   * (deleteProtectedError), so a smaller count or a destroy would fail outright.
   * A final snapshot is taken if it is ever deleted through the provider anyway.
   */
  private dataVolume(availabilityZone: string): aws.ebs.Volume {
    return new aws.ebs.Volume(
      `${this.name}-data`,
      {
        region: this.args.region,
        availabilityZone,
        type: "gp3",
        size: this.args.group.dataVolumeGb,
        encrypted: true,
        finalSnapshot: true,
        tags: this.tags("data"),
      },
      { parent: this, retainOnDelete: true },
    );
  }

  /** The VM. Changing user-data (a new engine version or daemon settings) replaces it. */
  private instance(placement: HostPlacement, sg: aws.ec2.SecurityGroup, identity: HostIdentity, userData: pulumi.Input<string>): aws.ec2.Instance {
    const { args } = this;
    const host = this.tagInputs.hostName;
    return new aws.ec2.Instance(
      `${this.name}-instance`,
      {
        region: args.region,
        ami: placement.amiId,
        instanceType: args.group.instanceType,
        subnetId: placement.subnetId,
        vpcSecurityGroupIds: [sg.id, ...(args.extraSecurityGroupIds ?? [])],
        // Outbound access during boot, before the Elastic IP is associated.
        associatePublicIpAddress: true,
        iamInstanceProfile: identity.profile.name,
        keyName: identity.keyPair?.keyName,
        metadataOptions: metadataOptions(args.group.containerImds),
        // Detailed (1-minute) CloudWatch metrics: the status checks and CPU of a host are
        // seen within a minute, not five (a per-instance charge; on for every stack so dev is prod).
        monitoring: true,
        rootBlockDevice: {
          volumeType: "gp3",
          volumeSize: args.group.rootVolumeGb,
          encrypted: true,
          deleteOnTermination: true,
          tags: this.tags("root"),
        },
        userDataBase64: pulumi.output(userData).apply((text) => userDataBase64(text, `stack "${args.stack}": host ${host}: user-data`)),
        userDataReplaceOnChange: true,
        tags: this.tags(),
      },
      {
        parent: this,
        // The boot script reads the host key and pulls from ECR: grant both before the VM exists.
        // `after`: the previous rollout batch serves again (a new engine replaces one batch at a time).
        dependsOn: withTurn(identity.bootGrants, args.after),
        ignoreChanges: args.replaceOnNewImage ? [] : ["ami"],
      },
    );
  }

  /**
   * Attaching the data volume, and moving it when the instance is replaced.
   *
   * A replacement (user-data change) runs in this order:
   *  1. the new instance is created (create-before-delete) and boots; its boot script waits
   *     (bounded) for the data device to appear before starting Docker;
   *  2. the attachment's instanceId changed, so it is replaced. deleteBeforeReplace makes
   *     Pulumi delete the old attachment first: stopInstanceBeforeDetaching stops the OLD
   *     instance (containers and dockerd shut down cleanly, file systems flushed), then the
   *     volume is detached;
   *  3. the new attachment attaches the volume to the new instance; its boot continues;
   *  4. the Elastic IP association moves to the new instance;
   *  5. the old (stopped) instance is deleted; its root volume goes with it, the data volume does not.
   * Without deleteBeforeReplace the new attachment is created first and fails with
   * VolumeInUse (pulumi-aws#2769). forceDetach stays off: it can corrupt the file system.
   * Behind a front door, step 2 waits for `drained` (see drain): the old instance is stopped
   * only once the load balancer no longer sends it new connections.
   */
  private attachDataVolume(instance: aws.ec2.Instance, dataVolume: aws.ebs.Volume, drained: pulumi.Resource[]): aws.ec2.VolumeAttachment {
    return new aws.ec2.VolumeAttachment(
      `${this.name}-data-attachment`,
      {
        region: this.args.region,
        instanceId: instance.id,
        volumeId: dataVolume.id,
        deviceName: DATA_DEVICE_NAME,
        stopInstanceBeforeDetaching: true,
        forceDetach: false,
        skipDestroy: false,
      },
      { parent: this, deleteBeforeReplace: true, dependsOn: drained },
    );
  }

  /**
   * Behind a front door: the instance's target registrations, and a wait of the
   * deregistration delay that the data volume's attachment depends on. When the instance is
   * replaced, the registrations (deleteBeforeReplace, FrontDoor.attach) deregister the old
   * instance first, which the load balancer then stops sending new connections while it
   * lets open ones finish for the deregistration delay; the provider's delete does not wait
   * for that (terraform-provider-aws elbv2 target_group_attachment.go resourceAttachmentDelete:
   * DeregisterTargets, then returns), so this wait does, before the detach stops the old
   * instance. Triggered by the instance id: it runs once per new instance (so a new host's
   * first boot waits it too). Runs on the deployer's machine; nothing on the host.
   */
  private drain(instance: aws.ec2.Instance): pulumi.Resource[] {
    const door = this.args.frontDoor;
    if (!door) return [];
    const registrations = door.register(instance.id);
    if (registrations.length === 0) return [];
    return [
      new command.local.Command(
        `${this.name}-drain`,
        { create: `sleep ${door.drainSeconds}`, triggers: [instance.id] },
        { parent: this, dependsOn: registrations, customTimeouts: { create: `${door.drainSeconds + 300}s`, update: `${door.drainSeconds + 300}s` } },
      ),
    ];
  }

  /** The host's public address, kept across instance replacement: an Elastic IP and its association with the current instance. */
  private address(instance: aws.ec2.Instance): aws.ec2.EipAssociation {
    const region = this.args.region;
    const eip = new aws.ec2.Eip(`${this.name}-eip`, { region, domain: "vpc", tags: this.tags("eip") }, { parent: this });
    // Disassociate from the old instance first, then associate with the new one.
    return new aws.ec2.EipAssociation(
      `${this.name}-eip-association`,
      { region, allocationId: eip.allocationId, instanceId: instance.id, allowReassociation: true },
      { parent: this, deleteBeforeReplace: true },
    );
  }
}
