/**
 * The rules the real systems apply at `pulumi up` to what the program declares, each
 * with where it was read. A rule looks at the whole render of a stack (every resource with
 * its inputs and options) and returns the problems it finds; the contract test runs every
 * rule over every contract stack, and shows each rule failing on a planted bad resource.
 *
 * Values only the cloud knows are `computed(<resource>.<field>)` strings under the mock
 * runtime (scripts/lib/mocks.ts); a rule checks what is known and, where the rule is about
 * a reference (which resource a value comes from), checks the reference.
 */
import { gunzipSync } from "node:zlib";
import * as YAML from "yaml";
import { isComputed } from "../../scripts/lib/mocks";
import { isSecretValue, resourceKey, type Rendered, type RenderedResource } from "../../scripts/lib/render";
import { parseEcrRegistry } from "../../stacks/ecr";
import { DAEMON_JSON, EC2_USER_DATA_LIMIT, CLOUD_INIT_INSTANCE_ID } from "../../components/engine";
import { SWARM_PORTS } from "../../components/swarm";
import { hostImageTag, localInstanceId } from "../../components/local-host";
import { rolloutTurns, servingGates } from "../../scripts/lib/rollout-view";

/** The Docker provider of the deployer's own engine, where local hosts run (index.ts). */
export const LOCAL_ENGINE = "pulumi:providers:docker::deployer-engine";

export interface Rule {
  id: string;
  /** What the real system does, in a sentence. */
  rule: string;
  /** Where that was read. */
  source: string;
  check(r: Rendered): string[];
}

export const T = {
  instance: "aws:ec2/instance:Instance",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  role: "aws:iam/role:Role",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  rpa: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
  profile: "aws:iam/instanceProfile:InstanceProfile",
  keyPair: "aws:ec2/keyPair:KeyPair",
  param: "aws:ssm/parameter:Parameter",
  ecrRepo: "aws:ecr/repository:Repository",
  ecrLifecycle: "aws:ecr/lifecyclePolicy:LifecyclePolicy",
  volume: "aws:ebs/volume:Volume",
  attachment: "aws:ec2/volumeAttachment:VolumeAttachment",
  eipAssoc: "aws:ec2/eipAssociation:EipAssociation",
  container: "docker:index/container:Container",
  image: "docker:index/remoteImage:RemoteImage",
  dockerProvider: "pulumi:providers:docker",
  hostCommand: "command:local:Command",
  localHost: "dockyard:index:LocalHost",
  dockerVolume: "docker:index/volume:Volume",
  lb: "aws:lb/loadBalancer:LoadBalancer",
  targetGroup: "aws:lb/targetGroup:TargetGroup",
  listener: "aws:lb/listener:Listener",
  targetAttachment: "aws:lb/targetGroupAttachment:TargetGroupAttachment",
  service: "docker:index/service:Service",
  swarmFleet: "dockyard:index:SwarmFleet",
  dockerNetwork: "docker:index/network:Network",
  swarmSecret: "docker:index/secret:Secret",
  swarmConfig: "docker:index/serviceConfig:ServiceConfig",
} as const;

/** ELB names: 1-32 of 0-9A-Za-z and '-', not starting or ending with '-' (terraform-provider-aws internal/service/elbv2/validate.go). */
export const ELB_NAME_MAX = 32;
/** Protocols a network load balancer's listeners and target groups take (ELB API reference, CreateListener / CreateTargetGroup: TCP, TLS, UDP, TCP_UDP for Network Load Balancers). */
export const NLB_PROTOCOLS = ["TCP", "TLS", "UDP", "TCP_UDP"];

const of = (r: Rendered, type: string) => r.resources.filter((x) => x.type === type);
const str = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
const byKey = (r: Rendered) => new Map(r.resources.map((x) => [resourceKey(x), x]));
/** The resource a `computed(<name>.<field>)` value comes from, and the field. */
function computedRef(v: unknown): { name: string; field: string } | undefined {
  const m = typeof v === "string" ? /^computed\(([^()]+)\.([A-Za-z0-9]+)\)$/.exec(v) : null;
  return m ? { name: m[1], field: m[2] } : undefined;
}

/**
 * Pulumi autonames a resource without an explicit name `<logical name>-<7 random hex>`
 * (pulumi-terraform-bridge AutoName, separator "-", 7 random characters) and the engine
 * refuses a result over the type's maximum (pulumi/pulumi sdk/go/common/resource/resource_id.go
 * NewUniqueHex). Maxima: pulumi-aws provider/resources.go (aws_iam_role AutoName 64;
 * everything else SetAutonaming(255)) and the AWS API where it is lower (IAM instance
 * profile and role policy names: 128, IAM API reference CreateInstanceProfile/PutRolePolicy).
 */
export const AUTONAME_MAX: Record<string, number> = {
  [T.role]: 64,
  [T.profile]: 128,
  [T.rolePolicy]: 128,
  [T.sg]: 255,
  [T.keyPair]: 255,
};
export const AUTONAME_SUFFIX = 8;

/** swarmkit manager/controlapi/common.go (moby's vendor tree): validateAnnotations (services, networks) and validateConfigOrSecretAnnotations (secrets, configs). */
const MAX_SWARM_NAME = 63;
const SWARM_NAME_RE = /^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/;
const MAX_SWARM_OBJECT_NAME = 64;
const SWARM_OBJECT_NAME_RE = /^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$/;

/** Characters EC2 allows in a security group's description and its rules' descriptions. */
const SG_TEXT = /^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]*$/;

function gunzipUserData(b64: string): string {
  return gunzipSync(Buffer.from(b64, "base64")).toString("utf8");
}

/** The kreuzwerker/terraform-provider-docker commit pulumi-docker 5.2 builds (pulumi/pulumi-docker's `upstream` submodule, the same from v5.1.0 on; provider/go.mod replaces the module with ../upstream). */
export const DOCKER_PROVIDER_COMMIT = "5074970c71ce6cc393c74942d5d628943834beb9";

/**
 * One cross-attribute rule of a resource schema: `key` set (and known) with any of `with`
 * set (conflicts), not all of `with` set (requiredWith), more or fewer than one of `with`
 * (exactlyOneOf, `with` includes `key`), none of `with` (atLeastOneOf). Keys are the Pulumi
 * input paths (a MaxItems 1 block is an object: TF `mode.0.global` is `mode.global`); `tf` is
 * the provider's own name for the message.
 */
export interface SchemaRule {
  kind: "conflictsWith" | "requiredWith" | "exactlyOneOf" | "atLeastOneOf";
  key: string;
  with: string[];
  tf: string;
}

/**
 * Every ConflictsWith / ExactlyOneOf / RequiredWith / AtLeastOneOf of the docker resource
 * types Dockyard declares, read in internal/provider/ at DOCKER_PROVIDER_COMMIT (a type with
 * none has an empty list, so a new type must be read before it renders). provider.go's
 * schema (the provider config) has none; nor have resource_docker_network.go,
 * resource_docker_volume.go, resource_docker_secret.go.
 */
export const DOCKER_SCHEMA_RULES: Record<string, SchemaRule[]> = {
  // resource_docker_container.go: device_requests ConflictsWith gpus.
  [T.container]: [{ kind: "conflictsWith", key: "deviceRequests", with: ["gpus"], tf: "device_requests" }],
  // resource_docker_image.go: build ConflictsWith pull_triggers.
  [T.image]: [{ kind: "conflictsWith", key: "build", with: ["pullTriggers"], tf: "build" }],
  [T.dockerNetwork]: [],
  [T.dockerVolume]: [],
  // resource_docker_service.go: mode.0.replicated ConflictsWith mode.0.global; mode.0.global
  // ConflictsWith mode.0.replicated and converge_config; converge_config ConflictsWith mode.0.global.
  [T.service]: [
    { kind: "conflictsWith", key: "mode.replicated", with: ["mode.global"], tf: "mode.0.replicated" },
    { kind: "conflictsWith", key: "mode.global", with: ["mode.replicated", "convergeConfig"], tf: "mode.0.global" },
    { kind: "conflictsWith", key: "convergeConfig", with: ["mode.global"], tf: "converge_config" },
  ],
  [T.swarmSecret]: [],
  // resource_docker_config.go: data and data_raw ExactlyOneOf (each names both).
  [T.swarmConfig]: [
    { kind: "exactlyOneOf", key: "data", with: ["data", "dataRaw"], tf: "data" },
    { kind: "exactlyOneOf", key: "dataRaw", with: ["data", "dataRaw"], tf: "data_raw" },
  ],
  [T.dockerProvider]: [],
};

/**
 * terraform-plugin-sdk/v2 helper/schema/schema.go (pulumi's fork, which the provider's
 * go.mod replaces it with) schemaMap.validate: a key is "set" when the configuration holds
 * it (false and 0 count, null does not); ExactlyOneOf and AtLeastOneOf run whether or not
 * the key is set; RequiredWith and ConflictsWith only when it is; ConflictsWith skips a key
 * whose value is not wholly known, and a conflicting key that is unknown.
 */
function schemaLookup(inputs: Record<string, unknown>, path: string): { set: boolean; known: boolean } {
  let v: unknown = inputs;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object") return { set: false, known: true };
    v = (v as Record<string, unknown>)[part];
  }
  if (v === undefined || v === null) return { set: false, known: true };
  const known = (x: unknown): boolean => (typeof x === "string" ? !isComputed(x) : Array.isArray(x) ? x.every(known) : x !== null && typeof x === "object" ? Object.values(x).every(known) : true);
  return { set: true, known: known(v) };
}

/** The problems the provider's schema validation reports for one resource's inputs. */
export function schemaProblems(res: RenderedResource, rules: SchemaRule[]): string[] {
  const p: string[] = [];
  const at = (k: string) => schemaLookup(res.inputs, k);
  for (const r of rules) {
    const self = at(r.key);
    if (r.kind === "exactlyOneOf") {
      const set = r.with.filter((k) => at(k).set);
      if (set.length !== 1) p.push(`${res.type} ${res.name}: ${r.tf}: ExactlyOneOf ${r.with.join(", ")}; ${set.length === 0 ? "none" : set.join(" and ")} set`);
    } else if (r.kind === "atLeastOneOf") {
      if (!r.with.some((k) => at(k).set)) p.push(`${res.type} ${res.name}: ${r.tf}: AtLeastOneOf ${r.with.join(", ")}; none set`);
    } else if (r.kind === "requiredWith") {
      if (self.set && !r.with.every((k) => at(k).set)) p.push(`${res.type} ${res.name}: ${r.tf}: RequiredWith ${r.with.join(", ")}; not all set`);
    } else if (self.set && self.known) {
      const hit = r.with.filter((k) => at(k).set && at(k).known);
      if (hit.length > 0) p.push(`${res.type} ${res.name}: ${r.tf}: ConflictsWith ${hit.join(", ")} (both set)`);
    }
  }
  return p;
}

export const RULES: Rule[] = [
  {
    id: "docker-schema",
    rule: "the Docker provider refuses a resource whose inputs break its schema's ConflictsWith, ExactlyOneOf, RequiredWith or AtLeastOneOf (at check, so preview fails); every docker type a stack declares has its rules recorded",
    source: `kreuzwerker/terraform-provider-docker@${DOCKER_PROVIDER_COMMIT} internal/provider/resource_docker_service.go (mode.0.global ConflictsWith converge_config), resource_docker_container.go, resource_docker_image.go, resource_docker_config.go, resource_docker_network.go, resource_docker_volume.go, resource_docker_secret.go, provider.go; pulumi/terraform-plugin-sdk helper/schema/schema.go schemaMap.validate, validateConflictingAttributes, validateExactlyOneAttribute`,
    check(r) {
      const p: string[] = [];
      for (const res of r.resources.filter((x) => x.type.startsWith("docker:") || x.type === T.dockerProvider)) {
        const rules = DOCKER_SCHEMA_RULES[res.type];
        if (rules === undefined) p.push(`${res.type} ${res.name}: no schema rules recorded for this type (read its internal/provider/resource_docker_*.go at ${DOCKER_PROVIDER_COMMIT})`);
        else p.push(...schemaProblems(res, rules));
      }
      return p;
    },
  },

  {
    id: "ec2-user-data",
    rule: "EC2 accepts at most 16 KB of user-data before base64; cloud-init decompresses gzip by its magic bytes; the text is a #cloud-config YAML document",
    source: "EC2 User Guide, 'Run commands when you launch an EC2 instance with user data input' (16 KB raw limit); canonical/cloud-init cloudinit/user_data.py (util.decomp_gzip)",
    check(r) {
      const p: string[] = [];
      for (const i of of(r, T.instance)) {
        if (i.inputs.userData !== undefined) {
          const raw = Buffer.byteLength(str(i.inputs.userData));
          if (raw > EC2_USER_DATA_LIMIT) p.push(`${i.name}: userData is ${raw} bytes; EC2 accepts ${EC2_USER_DATA_LIMIT}`);
          continue;
        }
        const b64 = i.inputs.userDataBase64;
        if (typeof b64 !== "string") {
          p.push(`${i.name}: no user-data`);
          continue;
        }
        const raw = Buffer.from(b64, "base64");
        if (raw.length > EC2_USER_DATA_LIMIT) p.push(`${i.name}: userDataBase64 is ${raw.length} bytes before base64; EC2 accepts ${EC2_USER_DATA_LIMIT}`);
        let text = "";
        try {
          text = gunzipUserData(b64);
        } catch (e) {
          p.push(`${i.name}: userDataBase64 is not gzip: ${(e as Error).message}`);
          continue;
        }
        if (!text.startsWith("#cloud-config\n")) p.push(`${i.name}: user-data does not start with #cloud-config`);
        const doc = YAML.parseDocument(text);
        if (doc.errors.length > 0) p.push(`${i.name}: user-data is not YAML: ${doc.errors[0].message}`);
        if (i.inputs.userDataReplaceOnChange !== true) p.push(`${i.name}: userDataReplaceOnChange must be true (engine changes replace hosts)`);
      }
      return p;
    },
  },
  {
    id: "ec2-tags",
    rule: "a resource has at most 50 user tags; keys 1-128 characters, values at most 256; the aws: prefix is reserved",
    source: "AWS Tagging Best Practices / EC2 User Guide 'Tag restrictions'",
    check(r) {
      const p: string[] = [];
      for (const res of r.resources) {
        const sets: [string, unknown][] = [["tags", res.inputs.tags]];
        const root = res.inputs.rootBlockDevice as { tags?: unknown } | undefined;
        if (root?.tags) sets.push(["rootBlockDevice.tags", root.tags]);
        for (const [where, tags] of sets) {
          if (!tags || typeof tags !== "object") continue;
          const entries = Object.entries(tags as Record<string, unknown>);
          if (entries.length > 50) p.push(`${res.name}: ${where}: ${entries.length} tags; at most 50`);
          for (const [k, v] of entries) {
            if (k.length < 1 || k.length > 128) p.push(`${res.name}: ${where}: key "${k}" is ${k.length} characters; 1-128`);
            if (/^aws:/i.test(k)) p.push(`${res.name}: ${where}: key "${k}" uses the reserved aws: prefix`);
            if (str(v).length > 256) p.push(`${res.name}: ${where}.${k}: value is ${str(v).length} characters; at most 256`);
          }
        }
      }
      return p;
    },
  },
  {
    id: "autonames",
    rule: "an autonamed resource's name is its logical name plus '-' and 7 random characters, and may not exceed the type's maximum",
    source: "pulumi/pulumi sdk/go/common/resource/resource_id.go NewUniqueHex; pulumi-aws provider/resources.go (aws_iam_role AutoName 64, SetAutonaming 255); IAM API reference (instance profile, role policy names: 128)",
    check(r) {
      const p: string[] = [];
      for (const res of r.resources) {
        const max = AUTONAME_MAX[res.type];
        if (max === undefined) continue;
        const explicit = res.inputs.name ?? res.inputs.keyName;
        const len = typeof explicit === "string" && !isComputed(explicit) ? explicit.length : res.name.length + AUTONAME_SUFFIX;
        if (len > max) p.push(`${res.type} ${res.name}: name would be ${len} characters; at most ${max}`);
      }
      return p;
    },
  },
  {
    id: "security-groups",
    rule: "a security group's name may not start with sg-; its description is 0-255 characters of a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*, as are rule descriptions; a group holds at most 60 inbound and 60 outbound rules, each CIDR counting as one",
    source: "EC2 API reference CreateSecurityGroup (GroupDescription constraints); Amazon VPC quotas 'Inbound or outbound rules per security group: 60'",
    check(r) {
      const p: string[] = [];
      for (const sg of of(r, T.sg)) {
        const d = str(sg.inputs.description ?? "");
        if (d.length > 255 || !SG_TEXT.test(d)) p.push(`${sg.name}: description ${JSON.stringify(d)} is over 255 characters or uses characters EC2 refuses`);
        const name = typeof sg.inputs.name === "string" ? sg.inputs.name : sg.name;
        if (/^sg-/i.test(name)) p.push(`${sg.name}: a group name may not start with sg-`);
        for (const dir of ["ingress", "egress"] as const) {
          const rules = (sg.inputs[dir] ?? []) as { description?: string; cidrBlocks?: string[]; ipv6CidrBlocks?: string[]; securityGroups?: string[] }[];
          // A source security group is a rule too (Amazon VPC quotas count each referenced group).
          const count = rules.reduce((n, x) => n + (x.cidrBlocks?.length ?? 0) + (x.ipv6CidrBlocks?.length ?? 0) + (x.securityGroups?.length ?? 0), 0);
          if (count > 60) p.push(`${sg.name}: ${count} ${dir} rules (one per CIDR); at most 60`);
          for (const x of rules) {
            const rd = x.description ?? "";
            if (rd.length > 255 || !SG_TEXT.test(rd)) p.push(`${sg.name}: ${dir} rule description ${JSON.stringify(rd)} is refused`);
          }
        }
      }
      return p;
    },
  },
  {
    id: "iam",
    rule: "role trust policies are at most 2048 characters; a role's inline policies together at most 10240 characters (whitespace not counted); at most 10 managed policies per role; policies are JSON with Version and Statements of Effect, Action and Resource; role descriptions at most 1000 characters",
    source: "IAM User Guide 'IAM and AWS STS quotas' (role trust policy length 2048, role policy size 10240, managed policies per role 10); IAM JSON policy element reference; IAM API CreateRole (Description 0-1000)",
    check(r) {
      const p: string[] = [];
      const inlineByRole = new Map<string, number>();
      const managedByRole = new Map<string, number>();
      for (const role of of(r, T.role)) {
        const trust = str(role.inputs.assumeRolePolicy);
        if (trust.replace(/\s/g, "").length > 2048) p.push(`${role.name}: trust policy over 2048 characters`);
        if (str(role.inputs.description ?? "").length > 1000) p.push(`${role.name}: description over 1000 characters`);
      }
      for (const pol of of(r, T.rolePolicy)) {
        const text = str(pol.inputs.policy);
        const role = str(pol.inputs.role);
        inlineByRole.set(role, (inlineByRole.get(role) ?? 0) + text.replace(/\s/g, "").length);
        let doc: { Version?: string; Statement?: { Effect?: string; Action?: unknown; Resource?: unknown }[] };
        try {
          doc = JSON.parse(text);
        } catch {
          p.push(`${pol.name}: policy is not JSON`);
          continue;
        }
        if (doc.Version !== "2012-10-17") p.push(`${pol.name}: Version must be 2012-10-17`);
        for (const s of doc.Statement ?? []) {
          if (!["Allow", "Deny"].includes(s.Effect ?? "") || s.Action === undefined || s.Resource === undefined) p.push(`${pol.name}: statement without Effect, Action or Resource`);
        }
        if (!doc.Statement?.length) p.push(`${pol.name}: no statements`);
      }
      for (const [role, n] of inlineByRole) if (n > 10240) p.push(`role ${role}: inline policies total ${n} characters; at most 10240`);
      for (const a of of(r, T.rpa)) managedByRole.set(str(a.inputs.role), (managedByRole.get(str(a.inputs.role)) ?? 0) + 1);
      for (const [role, n] of managedByRole) if (n > 10) p.push(`role ${role}: ${n} managed policies; at most 10`);
      return p;
    },
  },
  {
    id: "ecr-pull-scope",
    rule: "a host reads only its own stack's repositories: image-pull actions are granted on <account>:repository/<namespace>/* in the registry's region, never on every repository",
    source: "issue 8 finding 9; ECR actions and resource types (Service Authorization Reference: GetAuthorizationToken has no resource type)",
    check(r) {
      const p: string[] = [];
      for (const a of of(r, T.rpa)) if (/AmazonEC2ContainerRegistry/.test(str(a.inputs.policyArn))) p.push(`${a.name}: attaches ${str(a.inputs.policyArn)} (every repository of the account)`);
      const repos = of(r, T.ecrRepo);
      const namespaces = new Set(repos.map((x) => str(x.inputs.name).split("/").slice(0, -1).join("/")));
      for (const pol of of(r, T.rolePolicy)) {
        const doc = JSON.parse(str(pol.inputs.policy)) as { Statement: { Action: string | string[]; Resource: string | string[] }[] };
        for (const s of doc.Statement) {
          const actions = ([] as string[]).concat(s.Action);
          if (!actions.some((a) => /^ecr:(BatchGetImage|GetDownloadUrlForLayer|\*)$/.test(a))) continue;
          for (const res of ([] as string[]).concat(s.Resource)) {
            const m = /^arn:[a-z-]+:ecr:([a-z0-9-]+):([0-9]{12}):repository\/(.+)\/\*$/.exec(res);
            if (!m) {
              p.push(`${pol.name}: ${actions.join(",")} on ${res}: not scoped to a repository namespace`);
              continue;
            }
            if (!namespaces.has(m[3])) p.push(`${pol.name}: grants pulls from ${m[3]}/*, which is not this stack's namespace (${[...namespaces].join(", ")})`);
            const region = repos.map((x) => str(x.inputs.region))[0];
            if (region && m[1] !== region) p.push(`${pol.name}: grants pulls in ${m[1]}, but the repositories are in ${region}`);
          }
        }
      }
      return p;
    },
  },
  {
    id: "ssm-parameters",
    rule: "parameter names use a-zA-Z0-9_.-/, at most 15 levels, may not begin with aws or ssm, and with the full ARN at most 1011 characters",
    source: "AWS Systems Manager User Guide 'Requirements and constraints for parameter names'",
    check(r) {
      const p: string[] = [];
      for (const x of of(r, T.param)) {
        const name = str(x.inputs.name);
        const arn = `arn:aws-us-gov:ssm:${str(x.inputs.region)}:123456789012:parameter${name.startsWith("/") ? "" : "/"}${name}`;
        if (!/^[a-zA-Z0-9_.\-/]+$/.test(name)) p.push(`${x.name}: name ${name} has characters SSM refuses`);
        if (name.split("/").filter(Boolean).length > 15) p.push(`${x.name}: name ${name} has more than 15 levels`);
        if (/^\/?(aws|ssm)/i.test(name)) p.push(`${x.name}: name ${name} begins with aws or ssm`);
        if (arn.length > 1011) p.push(`${x.name}: the parameter's ARN would be ${arn.length} characters; at most 1011`);
        if (x.inputs.type !== "SecureString") p.push(`${x.name}: holds a private key but is ${str(x.inputs.type)}, not SecureString`);
      }
      return p;
    },
  },
  {
    id: "ecr-repositories",
    rule: "repository names are 2-256 characters matching (?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*, created in the region of the registry host that references them; lifecycle policies are 100-30720 characters of valid rules",
    source: "ECR API reference CreateRepository (repositoryName pattern, length); ECR User Guide 'Lifecycle policy properties'; PutLifecyclePolicy (lifecyclePolicyText 100-30720)",
    check(r) {
      const p: string[] = [];
      // The region in the registry host the fleet pulls from (stack output services.*.image).
      const images = Object.values((r.outputs.services ?? {}) as Record<string, { image: string }>).map((s) => s.image);
      const registryRegion = images.length > 0 ? parseEcrRegistry(images[0].split("@")[0])?.region : undefined;
      for (const x of of(r, T.ecrRepo)) {
        const name = str(x.inputs.name);
        if (name.length < 2 || name.length > 256 || !/^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(name)) p.push(`${x.name}: repository name ${name} is refused`);
        if (registryRegion && x.inputs.region !== registryRegion) p.push(`${x.name}: created in ${str(x.inputs.region)}, but images are pulled from ${registryRegion}`);
      }
      for (const x of of(r, T.ecrLifecycle)) {
        const text = str(x.inputs.policy);
        if (text.length < 100 || text.length > 30720) p.push(`${x.name}: lifecycle policy is ${text.length} characters; 100-30720`);
        const doc = JSON.parse(text) as { rules: Record<string, any>[] };
        const priorities = doc.rules.map((rule) => rule.rulePriority);
        if (new Set(priorities).size !== priorities.length) p.push(`${x.name}: rule priorities are not unique`);
        for (const rule of doc.rules) {
          const s = rule.selection ?? {};
          if (!Number.isInteger(rule.rulePriority) || rule.rulePriority < 1) p.push(`${x.name}: rulePriority must be an integer >= 1`);
          if (!["tagged", "untagged", "any"].includes(s.tagStatus)) p.push(`${x.name}: tagStatus ${s.tagStatus}`);
          if (s.tagStatus === "untagged" && (s.tagPrefixList || s.tagPatternList)) p.push(`${x.name}: an untagged rule may not list tags`);
          if (s.tagStatus === "tagged" && !s.tagPrefixList && !s.tagPatternList) p.push(`${x.name}: a tagged rule needs tagPrefixList or tagPatternList`);
          if (!["imageCountMoreThan", "sinceImagePushed"].includes(s.countType)) p.push(`${x.name}: countType ${s.countType}`);
          if (s.countType === "sinceImagePushed" && s.countUnit !== "days") p.push(`${x.name}: sinceImagePushed needs countUnit days`);
          if (rule.action?.type !== "expire") p.push(`${x.name}: action must be expire`);
        }
      }
      return p;
    },
  },
  {
    id: "deletable",
    rule: "the engine refuses any plan that deletes a protected resource (a lower count, a removed group, destroy); data volumes must survive their host without protect",
    source: "pulumi/pulumi pkg/resource/deploy/step.go DeleteStep.Apply (deleteProtectedError; RetainOnDelete skips the provider's Delete)",
    check(r) {
      const p: string[] = [];
      for (const x of r.resources) if (x.options?.protect) p.push(`${x.type} ${x.name} is protected`);
      for (const v of of(r, T.volume)) if (!v.options?.retainOnDelete) p.push(`${v.name}: a data volume without retainOnDelete is deleted with its host`);
      // A local host's data volume (issue 12): a Docker volume on the deployer's engine, kept the same way.
      for (const v of of(r, T.dockerVolume).filter((x) => x.options?.provider === LOCAL_ENGINE)) {
        if (!v.options?.retainOnDelete) p.push(`${v.name}: a local host's data volume without retainOnDelete is deleted with its host`);
      }
      return p;
    },
  },
  {
    id: "docker-image-id",
    rule: "a container's image is the id of a RemoteImage, never a repo digest (the provider compares image ids: a digest replaces the container on every deploy), and every Docker resource names its provider",
    source: "pulumi/pulumi-docker#1431; a Docker resource without an explicit provider uses the default provider, i.e. the Docker socket where Pulumi runs",
    check(r) {
      const p: string[] = [];
      const keys = byKey(r);
      for (const c of of(r, T.container)) {
        const ref = computedRef(c.inputs.image);
        if (!ref || ref.field !== "imageId" || !keys.has(`${T.image}::${ref.name}`)) p.push(`${c.name}: image ${str(c.inputs.image)} is not a RemoteImage's imageId`);
      }
      for (const x of r.resources) {
        if (!x.type.startsWith("docker:index/")) continue;
        if (!x.options?.provider || !keys.get(x.options.provider)?.type.startsWith("pulumi:providers:docker")) p.push(`${x.type} ${x.name}: no explicit Docker provider`);
      }
      return p;
    },
  },
  {
    id: "docker-pulls",
    rule: "the Docker provider pulls with the registry auth it is given and anonymously otherwise (ECR answers 'no basic auth credentials'); so every image reaches its host by a host-side pull (the instance role's ECR helper) before the RemoteImage, which then finds it locally; no registry credential is in provider config; the local host image is found in the deployer's engine, where it was built",
    source: "kreuzwerker/terraform-provider-docker (embedded in pulumi-docker) internal/provider/resource_docker_image_funcs.go: findImage returns a local image (searchLocalImages) before pullImage, which sends only the provider's registry_auth (provider.go: none configured, empty AuthConfig); issue 8 finding 3",
    check(r) {
      const p: string[] = [];
      const keys = byKey(r);
      for (const prov of of(r, T.dockerProvider)) {
        if (prov.inputs.registryAuth !== undefined) p.push(`${prov.name}: carries registryAuth (a token in state)`);
      }
      for (const img of of(r, T.image)) {
        const ref = str(img.inputs.name);
        // The local host image (issue 12) is in the deployer's own engine, built from the recipe
        // before `up` (components/local-host/build-image.sh), never pulled: findImage finds it
        // locally, and keepLocally leaves it there when the stack goes.
        if (img.options?.provider === LOCAL_ENGINE) {
          if (ref !== hostImageTag() || img.inputs.keepLocally !== true) p.push(`${img.name}: on the local engine, ${ref} is not the local host image ${hostImageTag()} kept locally`);
          continue;
        }
        const pulls = (img.options?.dependsOn ?? []).map((k) => keys.get(k)).filter((x): x is RenderedResource => x?.type === T.hostCommand);
        const pulled = pulls.some((c) => new RegExp(`docker pull\\b[^\\n]* ${ref.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(\\s|$)`).test(str(c.inputs.create)));
        if (!pulled) p.push(`${img.name}: ${ref} is not pulled on the host before the provider looks for it`);
      }
      return p;
    },
  },
  {
    id: "docker-containers",
    rule: "`wait` fails a container without a health check; deleting a container without destroyGraceSeconds stops it with timeout 0 (SIGKILL at once); an upload needs exactly one of content, contentBase64, source, and octal permissions; a host port can be bound by one container only, so a container publishing host ports must be replaced delete-first (and, by the rule rollouts, one batch of hosts at a time); `uploads` into a read-only root are refused; a bind mount's source must exist on the host, so a remote command the container depends on writes it",
    source: "kreuzwerker/terraform-provider-docker (embedded in pulumi-docker) internal/provider/resource_docker_container_funcs.go: create's waitForHealthyState ('the container does not have a healthcheck defined'), resourceDockerContainerDelete (ContainerStop timeout = destroy_grace_seconds), create's upload loop (one of content/content_base64/source, strconv.ParseInt(permission, 8, 32)); moby portallocator ('port is already allocated'), daemon/archive_unix.go ('container rootfs is marked read-only'), daemon/volume/mounts/validate.go ('bind source path does not exist'); pulumi/pulumi replacements are create-before-delete unless deleteBeforeReplace",
    check(r) {
      const p: string[] = [];
      const keys = byKey(r);
      const publishing: RenderedResource[] = [];
      for (const c of of(r, T.container)) {
        const hc = c.inputs.healthcheck as { tests?: string[] } | undefined;
        if (c.inputs.wait === true && !hc?.tests?.length) p.push(`${c.name}: wait without a health check`);
        if (!(Number(c.inputs.destroyGraceSeconds) > 0)) p.push(`${c.name}: no destroyGraceSeconds; deleting it kills it at once`);
        if (c.inputs.readOnly === true && ((c.inputs.uploads ?? []) as unknown[]).length > 0) p.push(`${c.name}: uploads into a read-only root ('container rootfs is marked read-only')`);
        // Each upload: a file path and exactly one of content, contentBase64, source; permissions
        // an octal string (strconv.ParseInt(permission, 8, 32)).
        const uploads = c.inputs.uploads as { value?: unknown } | unknown[] | undefined;
        for (const u of ((Array.isArray(uploads) ? uploads : (uploads?.value ?? [])) as Record<string, unknown>[])) {
          const set = ["content", "contentBase64", "source"].filter((k) => u[k] !== undefined && u[k] !== "");
          if (typeof u.file !== "string" || !u.file.startsWith("/")) p.push(`${c.name}: an upload without an absolute file path`);
          if (set.length !== 1) p.push(`${c.name}: upload ${str(u.file)} sets ${set.length === 0 ? "none" : set.join(" and ")} of content, contentBase64, source ('only one of ... can be set' / 'one of ... must be set')`);
          if (u.permissions !== undefined && !/^[0-7]{3,4}$/.test(str(u.permissions))) p.push(`${c.name}: upload ${str(u.file)} permissions ${str(u.permissions)} is not octal`);
        }
        const writers = (c.options?.dependsOn ?? []).map((d) => keys.get(d)).filter((x): x is RenderedResource => x?.type === T.hostCommand);
        for (const m of (c.inputs.mounts ?? []) as { type?: string; source?: string }[]) {
          if (m.type !== "bind") continue;
          const quoted = `'${m.source}'`;
          if (!writers.some((w) => str(w.inputs.create).includes(quoted))) p.push(`${c.name}: bind-mounts ${m.source}, which no command it depends on writes ('bind source path does not exist')`);
        }
        const ports = ((c.inputs.ports ?? []) as { external?: number }[]).filter((x) => x.external !== undefined);
        if (ports.length > 0) {
          publishing.push(c);
          if (c.options?.deleteBeforeReplace !== true) p.push(`${c.name}: publishes host ports but would be replaced create-first ('port is already allocated')`);
        } else if (c.options?.deleteBeforeReplace) {
          p.push(`${c.name}: replaced delete-first although it holds no host port (a gap for nothing)`);
        }
      }
      const byProvider = new Map<string, number>();
      for (const c of publishing) byProvider.set(c.options?.provider ?? "", (byProvider.get(c.options?.provider ?? "") ?? 0) + 1);
      for (const [prov, n] of byProvider) if (n > 1) p.push(`${prov}: ${n} containers publish host ports on one host`);
      // One batch of hosts at a time: the rule "rollouts" holds every proxy to its host's turn.
      return p;
    },
  },
  {
    id: "one-way-in",
    rule: "every SSH connection (engine readiness, pulls, proxy configuration, PIDs limits, serving gates, the Docker provider; a local command may only wait, as a host's drain does) is the system ssh with the same options, to the host the EIP ASSOCIATION names: its instanceId through the Session Manager ProxyCommand (hostAccess ssm) or its publicIp (public), or a local host's machine container by name through the docker exec ProxyCommand, with the host key pinned; @pulumi/command's own SSH client has no ProxyCommand, so no command:remote:Command may exist; the readiness check insists on the instance that association names",
    source: "terraform-provider-aws internal/service/ec2/ec2_eip_association.go (Create waits, Read sets public_ip and instance_id); pulumi-command provider/pkg/provider/remote/connection.go (x/crypto/ssh dial, `proxy` is an SSH jump host only) and local/commandOutputs.go (interpreter + command, os.Environ); docker cli connhelper (ssh <sshOpts> -- <host> docker system dial-stdio); issue 8 finding 4, issue 11",
    check(r) {
      const p: string[] = [];
      if (r.resources.some((x) => x.type === "command:remote:Command")) p.push("a command:remote:Command dials with its own SSH client, which cannot use the Session Manager ProxyCommand");
      /**
       * `user@<x>` -> the association x comes from and which of its outputs: publicIp (computed
       * by the cloud), or instanceId (the mock runtime echoes the association's input there).
       */
      const viaAssociation = (v: unknown): { assoc: string; field: string } | undefined => {
        const dest = /@([^@]+)$/.exec(str(v))?.[1];
        // A local host (issue 12): its machine container's name, which the mock runtime echoes.
        const machine = r.resources.find((x) => x.type === T.container && x.options?.provider === LOCAL_ENGINE && dest !== undefined && str(x.inputs.name) === dest);
        if (machine) return { assoc: machine.name, field: "container" };
        const ref = computedRef(dest);
        if (ref && ref.field === "publicIp" && r.resources.some((x) => x.type === T.eipAssoc && x.name === ref.name)) return { assoc: ref.name, field: ref.field };
        const assoc = r.resources.find((x) => x.type === T.eipAssoc && dest !== undefined && str(x.inputs.instanceId) === dest);
        return assoc ? { assoc: assoc.name, field: "instanceId" } : undefined;
      };
      /** A connection's ssh options and destination, with what they must be. */
      const check = (what: string, opts: string[], dest: unknown) => {
        const via = viaAssociation(dest);
        const proxy = opts.find((o) => o.startsWith("ProxyCommand="));
        if (via?.field === "container") {
          if (!proxy?.includes("dockyard-local %h %p")) p.push(`${what}: dials local host ${str(dest)} without the docker exec ProxyCommand`);
        } else {
          const want = proxy ? "instanceId" : "publicIp";
          if (!via || via.field !== want) p.push(`${what}: dials ${str(dest)}, not the EIP association's ${want}${proxy ? " (through the ProxyCommand)" : ""}`);
        }
        if (!opts.includes("StrictHostKeyChecking=yes") || !opts.some((o) => o.startsWith("KnownHostsCommand="))) p.push(`${what}: ssh does not pin the host key`);
        return via?.assoc;
      };
      const optsByHost = new Map<string, string>();
      const same = (what: string, assoc: string | undefined, opts: string[]) => {
        if (!assoc) return;
        const key = JSON.stringify(opts);
        const seen = optsByHost.get(assoc);
        if (seen === undefined) optsByHost.set(assoc, key);
        else if (seen !== key) p.push(`${what}: ssh options differ from another connection to the same host`);
      };
      for (const c of of(r, T.hostCommand)) {
        // A host's drain (DockerHost.drain) touches no host: a bare wait on the deployer's machine.
        if (c.inputs.interpreter === undefined && /^sleep \d+$/.test(str(c.inputs.create)) && c.inputs.stdin === undefined && c.inputs.delete === undefined) continue;
        const argv = (Array.isArray(c.inputs.interpreter) ? c.inputs.interpreter : []).map(str);
        const ssh = argv.indexOf("ssh");
        const dd = argv.indexOf("--", ssh);
        if (ssh < 0 || dd < 0 || dd !== argv.length - 2) {
          p.push(`${c.name}: its interpreter is not an ssh command line ending at the destination: ${JSON.stringify(argv)}`);
          continue;
        }
        const opts = argv.slice(ssh + 1, dd).filter((_, i) => i % 2 === 1);
        same(c.name, check(c.name, opts, argv[dd + 1]), opts);
      }
      for (const prov of of(r, T.dockerProvider)) {
        // The deployer's own engine (local hosts run there): no ssh at all, DOCKER_HOST or the local socket.
        if (resourceKey(prov) === LOCAL_ENGINE) {
          if (prov.inputs.host !== undefined || prov.inputs.sshOpts !== undefined) p.push(`${prov.name}: the local engine's provider dials ${str(prov.inputs.host)}`);
          continue;
        }
        // A provider's configuration reaches the mock runtime JSON-encoded, as the engine sends it.
        const raw = typeof prov.inputs.sshOpts === "string" ? JSON.parse(prov.inputs.sshOpts) : prov.inputs.sshOpts;
        const opts = (Array.isArray(raw) ? raw : []).map(str).filter((_, i) => i % 2 === 1);
        same(prov.name, check(prov.name, opts, prov.inputs.host), opts);
      }
      for (const c of of(r, T.hostCommand).filter((x) => x.name.endsWith("-engine-ready"))) {
        const host = c.name.replace(/-engine-ready$/, "");
        const assoc = r.resources.find((x) => x.type === T.eipAssoc && x.name === `${host}-eip-association`);
        const machine = r.resources.find((x) => x.type === T.container && x.name === `${host}-machine` && x.options?.provider === LOCAL_ENGINE);
        // A local host: cloud-init's instance id from its seed (its name; a new definition is a new container).
        const want = machine ? localInstanceId(str(machine.inputs.name)) : str(assoc?.inputs.instanceId);
        if (!str(c.inputs.create).includes(CLOUD_INIT_INSTANCE_ID) || !str(c.inputs.create).includes(want)) p.push(`${c.name}: does not check it reached instance ${want}`);
      }
      return p;
    },
  },
  {
    id: "elbv2-names",
    rule: "load balancer and target group names are 1-32 characters of 0-9A-Za-z and '-', neither beginning nor ending with '-'; a load balancer's may not begin with 'internal-'; an autonamed one is its logical name plus '-' and 7 random characters",
    source: "terraform-provider-aws internal/service/elbv2/validate.go (validName, validTargetGroupName); target_group.go and load_balancer.go name ValidateFunc; pulumi/pulumi sdk/go/common/resource/resource_id.go NewUniqueHex",
    check(r) {
      const p: string[] = [];
      for (const x of [...of(r, T.lb), ...of(r, T.targetGroup)]) {
        const explicit = x.inputs.name;
        const name = typeof explicit === "string" && !isComputed(explicit) ? explicit : `${x.name}-abcdef0`;
        const what = `${x.type} ${x.name}: name ${name}`;
        if (name.length > ELB_NAME_MAX) p.push(`${what} is ${name.length} characters; at most ${ELB_NAME_MAX}`);
        if (!/^[0-9A-Za-z-]+$/.test(name)) p.push(`${what}: only alphanumeric characters and hyphens allowed`);
        if (/^-|-$/.test(name)) p.push(`${what} begins or ends with a hyphen`);
        if (x.type === T.lb && /^internal-/.test(name)) p.push(`${what} begins with "internal-"`);
      }
      const names = of(r, T.targetGroup).map((x) => str(x.inputs.name));
      if (new Set(names).size !== names.length) p.push(`target group names repeat (CreateTargetGroup: "already exists"): ${names.join(", ")}`);
      return p;
    },
  },
  {
    id: "elbv2-protocols",
    rule: "a network load balancer's listeners are TCP, TLS, UDP or TCP_UDP, a TLS listener needs a certificate, and each forwards to a target group of the stack whose protocol suits it (TCP/TLS behind TLS, the same otherwise); a health check over TCP takes no path or matcher",
    source: "ELB API reference CreateListener (Protocol for Network Load Balancers; Certificates required for HTTPS and TLS) and CreateTargetGroup; terraform-provider-aws internal/service/elbv2/listener.go (protocol enum, certificate_arn), target_group.go resourceTargetGroupCustomizeDiff (matcher/path conflict with health_check.protocol TCP)",
    check(r) {
      const p: string[] = [];
      const keys = byKey(r);
      const nlbs = new Set(of(r, T.lb).filter((x) => x.inputs.loadBalancerType === "network").map((x) => x.name));
      for (const l of of(r, T.listener)) {
        const lb = computedRef(l.inputs.loadBalancerArn);
        if (!lb || !nlbs.has(lb.name)) {
          p.push(`${l.name}: loadBalancerArn ${str(l.inputs.loadBalancerArn)} is not a network load balancer of the stack`);
          continue;
        }
        const proto = str(l.inputs.protocol);
        if (!NLB_PROTOCOLS.includes(proto)) p.push(`${l.name}: protocol ${proto} on a network load balancer; allowed ${NLB_PROTOCOLS.join(", ")}`);
        if (proto === "TLS" && !l.inputs.certificateArn) p.push(`${l.name}: a TLS listener without certificateArn`);
        for (const a of (l.inputs.defaultActions ?? []) as { type?: string; targetGroupArn?: string }[]) {
          const ref = computedRef(a.targetGroupArn);
          const tg = ref ? keys.get(`${T.targetGroup}::${ref.name}`) : undefined;
          if (a.type !== "forward" || !tg) {
            p.push(`${l.name}: default action ${str(a.type)} does not forward to a target group of the stack`);
            continue;
          }
          const tgProto = str(tg.inputs.protocol);
          const fits = proto === "TLS" ? ["TCP", "TLS"].includes(tgProto) : tgProto === proto;
          if (!fits) p.push(`${l.name}: a ${proto} listener forwards to ${tg.name}, a ${tgProto} target group`);
        }
      }
      for (const tg of of(r, T.targetGroup)) {
        if (!NLB_PROTOCOLS.includes(str(tg.inputs.protocol))) p.push(`${tg.name}: protocol ${str(tg.inputs.protocol)} is not a network load balancer's`);
        if (!["instance", "ip"].includes(str(tg.inputs.targetType ?? "instance"))) p.push(`${tg.name}: target type ${str(tg.inputs.targetType)}`);
        const hc = (tg.inputs.healthCheck ?? {}) as { protocol?: string; path?: string; matcher?: string };
        if (str(hc.protocol ?? "HTTP").toUpperCase() === "TCP" && (hc.path || hc.matcher)) p.push(`${tg.name}: a TCP health check with a path or matcher`);
      }
      return p;
    },
  },
  {
    id: "elbv2-health-checks",
    rule: "a target group's health check interval is 5-300 s, its healthy and unhealthy thresholds 2-10, its timeout 2-120 s, its path 1-1024 characters beginning with '/'; the deregistration delay is 0-3600 s; every target registered is an instance of the stack on a port of its group",
    source: "terraform-provider-aws internal/service/elbv2/target_group.go (health_check interval IntBetween(5, 300), healthy_threshold/unhealthy_threshold IntBetween(2, 10), timeout IntBetween(2, 120), path StringLenBetween(1, 1024) + prefix '/', deregistration_delay 0-3600)",
    check(r) {
      const p: string[] = [];
      const keys = byKey(r);
      const between = (what: string, v: unknown, lo: number, hi: number) => {
        if (v === undefined) return;
        const n = Number(v);
        if (!Number.isInteger(n) || n < lo || n > hi) p.push(`${what} is ${str(v)}; allowed ${lo}-${hi}`);
      };
      for (const tg of of(r, T.targetGroup)) {
        const hc = (tg.inputs.healthCheck ?? {}) as Record<string, unknown>;
        between(`${tg.name}: healthCheck.interval`, hc.interval, 5, 300);
        between(`${tg.name}: healthCheck.healthyThreshold`, hc.healthyThreshold, 2, 10);
        between(`${tg.name}: healthCheck.unhealthyThreshold`, hc.unhealthyThreshold, 2, 10);
        between(`${tg.name}: healthCheck.timeout`, hc.timeout, 2, 120);
        between(`${tg.name}: deregistrationDelay`, tg.inputs.deregistrationDelay, 0, 3600);
        if (hc.path !== undefined && (str(hc.path).length > 1024 || !str(hc.path).startsWith("/"))) p.push(`${tg.name}: healthCheck.path ${str(hc.path)} must be 1-1024 characters beginning with '/'`);
      }
      for (const a of of(r, T.targetAttachment)) {
        const tgRef = computedRef(a.inputs.targetGroupArn);
        const tg = tgRef ? keys.get(`${T.targetGroup}::${tgRef.name}`) : undefined;
        const inst = computedRef(a.inputs.targetId);
        if (!tg) p.push(`${a.name}: targetGroupArn ${str(a.inputs.targetGroupArn)} is not a target group of the stack`);
        if (!inst || !keys.has(`${T.instance}::${inst.name}`)) p.push(`${a.name}: targetId ${str(a.inputs.targetId)} is not an instance of the stack`);
        if (tg && a.inputs.port !== undefined && a.inputs.port !== tg.inputs.port) p.push(`${a.name}: registers port ${str(a.inputs.port)} in ${tg.name}, whose port is ${str(tg.inputs.port)}`);
      }
      return p;
    },
  },
  {
    id: "nlb-security-groups",
    rule: "a network load balancer gets its security groups when it is created: adding them to one that has none, or removing all, replaces it (a new DNS name); the hosts behind it admit its published ports from its security group only",
    source: "terraform-provider-aws internal/service/elbv2/load_balancer.go customizeDiffLoadBalancerNLB (ForceNew on security_groups added where none exist or all removed; subnets may only grow in place); issue 13",
    check(r) {
      const p: string[] = [];
      const keys = byKey(r);
      for (const lb of of(r, T.lb).filter((x) => x.inputs.loadBalancerType === "network")) {
        const groups = ((lb.inputs.securityGroups ?? []) as string[]).map(computedRef);
        if (groups.length === 0) {
          p.push(`${lb.name}: a network load balancer without security groups (adding one later replaces it)`);
          continue;
        }
        if (groups.some((g) => !g || !keys.has(`${T.sg}::${g.name}`))) p.push(`${lb.name}: securityGroups ${str(lb.inputs.securityGroups)} are not security groups of the stack`);
        // The hosts it forwards to: service ports from its group, never from CIDRs.
        const lbGroups = (lb.inputs.securityGroups as string[]).map(str);
        const tgs = new Set(of(r, T.listener).filter((l) => computedRef(l.inputs.loadBalancerArn)?.name === lb.name).flatMap((l) => ((l.inputs.defaultActions ?? []) as { targetGroupArn?: string }[]).map((a) => computedRef(a.targetGroupArn)?.name)));
        for (const a of of(r, T.targetAttachment).filter((x) => tgs.has(computedRef(x.inputs.targetGroupArn)?.name))) {
          const inst = keys.get(`${T.instance}::${computedRef(a.inputs.targetId)?.name}`);
          const sgNames = ((inst?.inputs.vpcSecurityGroupIds ?? []) as string[]).map((v) => computedRef(v)?.name);
          for (const sg of sgNames.map((n) => keys.get(`${T.sg}::${n}`)).filter((x): x is RenderedResource => x !== undefined)) {
            for (const rule of (sg.inputs.ingress ?? []) as { fromPort?: number; toPort?: number; cidrBlocks?: string[]; securityGroups?: string[] }[]) {
              if (rule.fromPort === undefined || Number(rule.fromPort) > Number(a.inputs.port) || Number(rule.toPort) < Number(a.inputs.port)) continue;
              if ((rule.cidrBlocks ?? []).length > 0) p.push(`${sg.name}: admits port ${str(a.inputs.port)} from ${str(rule.cidrBlocks)}, not only from the load balancer ${lb.name}`);
              if (!(rule.securityGroups ?? []).map(str).some((g) => lbGroups.includes(g))) p.push(`${sg.name}: port ${str(a.inputs.port)} does not admit ${lb.name}'s security group (its traffic and health checks)`);
            }
          }
        }
      }
      return p;
    },
  },
  {
    id: "rollouts",
    rule: "the engine starts a resource's step only once the resources it depends on finished theirs, so a change never takes every host of a group at once: each host's machine, replicas and proxy depend on the serving gates of the previous batch of its group, each gate runs on its host after its engine and containers and again when any is replaced (swarm mode: the gate is the host's swarm init or join, after its engine), and a group of 2 or more hosts never has all of them in its first batch",
    source: "pulumi pkg/resource/deploy/source_eval.go (RegisterResource answers once the step is done) and sdk/nodejs/runtime/resource.ts prepareResource (awaits the dependsOn URNs); step_generator.go calculateDependentReplacements (dependsOn edges never replace); issue 13 part 2",
    check(r) {
      const p: string[] = [];
      const gates = servingGates(r);
      const turns = rolloutTurns(r);
      const machines = r.resources.filter((x) => x.type === T.instance || (x.type === T.container && x.name.endsWith("-machine")));
      if (machines.length === 0) return p;
      const keys = byKey(r);
      const groupOf = (host: string) => host.slice(`${r.stack}-`.length).replace(/-\d+$/, "");
      const groups = new Map<string, typeof turns>();
      for (const t of turns) groups.set(groupOf(t.host), [...(groups.get(groupOf(t.host)) ?? []), t]);
      for (const m of machines) {
        const host = m.name.replace(/-(instance|machine)$/, "");
        if (!gates.has(host)) p.push(`${host}: no serving gate ends its turn`);
      }
      for (const [g, ts] of groups) {
        if (ts.length >= 2 && ts.every((t) => t.batch === 1)) p.push(`group ${g}: all ${ts.length} hosts are in the first batch (a change would take them all at once)`);
        for (const t of ts) for (const w of t.waitsFor) if (groupOf(w) !== g) p.push(`${t.host}: waits for ${w} of another group`);
      }
      for (const t of turns) {
        const gate = keys.get(gates.get(t.host) ?? "");
        // The host's fleet containers: those the fleet's provider for this host creates.
        const containers = r.resources.filter((x) => x.type === T.container && (x.options?.provider ?? "").endsWith(`-${t.host}`) && x.options?.provider !== LOCAL_ENGINE);
        const waited = t.waitsFor.map((w) => gates.get(w)!);
        for (const c of containers) {
          const deps = c.options?.dependsOn ?? [];
          const missing = waited.filter((k) => !deps.includes(k));
          if (missing.length > 0) p.push(`${c.name}: does not wait for ${missing.join(", ")} (the previous batch)`);
        }
        // Swarm mode: the turn ends with the host's swarm init or join (it depends on the engine:
        // servingGates found it by that); swarm starts the host's tasks itself.
        if (!gate || !gate.name.endsWith("-serving")) continue;
        const gateDeps = gate.options?.dependsOn ?? [];
        for (const c of containers) if (!gateDeps.includes(resourceKey(c))) p.push(`${gate.name}: runs without waiting for ${c.name}`);
        const triggers = (gate.inputs.triggers ?? []) as unknown[];
        if (triggers.length !== containers.length + 1) p.push(`${gate.name}: ${triggers.length} triggers; expected one per container on ${t.host} (${containers.length}) and the engine readiness`);
      }
      return p;
    },
  },
  {
    id: "planned-drain",
    rule: "a load balancer keeps sending new connections to a registered target until it is deregistered, then lets open ones finish for the deregistration delay; the provider's delete of a target group attachment deregisters and returns at once. So a replaced instance must be deregistered (its attachments replaced delete-first) and the deregistration delay waited before the data volume's detach stops it",
    source: "terraform-provider-aws internal/service/elbv2/target_group_attachment.go resourceAttachmentDelete (DeregisterTargets, no wait); Elastic Load Balancing NLB guide 'Deregistration delay'; components/host.ts attachDataVolume (stopInstanceBeforeDetaching)",
    check(r) {
      const p: string[] = [];
      const keys = byKey(r);
      const delay = new Map(of(r, T.targetGroup).map((tg) => [tg.name, Number(tg.inputs.deregistrationDelay ?? 300)]));
      for (const inst of of(r, T.instance)) {
        const mine = of(r, T.targetAttachment).filter((a) => computedRef(a.inputs.targetId)?.name === inst.name);
        if (mine.length === 0) continue;
        for (const a of mine) if (!a.options?.deleteBeforeReplace) p.push(`${a.name}: not replaced delete-first (the old instance stays registered until the end of the update)`);
        const data = of(r, T.attachment).find((x) => computedRef(x.inputs.instanceId)?.name === inst.name);
        const drains = (data?.options?.dependsOn ?? []).map((d) => keys.get(d)).filter((x): x is RenderedResource => x?.type === T.hostCommand);
        const drain = drains.find((d) => mine.every((a) => (d.options?.dependsOn ?? []).includes(resourceKey(a))));
        if (!data || !drain) {
          p.push(`${inst.name}: its data volume's attachment (which stops the old instance) does not wait for a drain after its target registrations`);
          continue;
        }
        const seconds = Number(/^sleep (\d+)$/.exec(String(drain.inputs.create))?.[1] ?? NaN);
        const needed = Math.max(...mine.map((a) => delay.get(computedRef(a.inputs.targetGroupArn)?.name ?? "") ?? 300));
        if (!(seconds >= needed)) p.push(`${drain.name}: waits ${String(drain.inputs.create)}; the target groups' deregistration delay is ${needed} s`);
        if (!((drain.inputs.triggers ?? []) as unknown[]).map(String).some((t) => computedRef(t)?.name === inst.name)) p.push(`${drain.name}: does not run again for a new instance (triggers)`);
      }
      return p;
    },
  },
  {
    id: "swarm",
    rule: "dockerd refuses swarm mode while live-restore is on; the provider accepts only its listed update/rollback orders, failure actions and endpoint modes, replaces a service whose networks are given by name, and requires its name (ForceNew, unique in the swarm); swarm refuses ingress-published ports with dnsrr; a host port binds once per host, so a host-mode publisher cannot start its new task first, and (networks_advanced being ForceNew, replaced delete-first) it runs on one node, the group's publishers waiting one for another; a task by digest found on its node is not pulled (so every host of its group pulls it with its credential helper); the join tokens stay secret and unlogged; the swarm ports are open between the stack's hosts only; a service's and an overlay network's name is a DNS name component of 63 characters or fewer, a secret's or config's name 64 characters of [a-zA-Z0-9-_.] (autonamed: the resource name, '-' and 7 characters)",
    source: "moby daemon/config/config_linux.go IsSwarmCompatible; kreuzwerker/terraform-provider-docker internal/provider/resource_docker_service.go (validateStringMatchesPattern of update_config.order/failure_action, rollback_config.failure_action, endpoint_spec.mode; networks_advanced.name deprecated, ForceNew; name Required ForceNew); moby vendor/github.com/moby/swarmkit/v2/manager/controlapi/service.go ('port published with ingress mode can't be used with dnsrr mode'); moby daemon/cluster/executor/container/adapter.go pullImage; pulumi-command local Command `logging`; terraform-provider-aws aws_security_group ingress `self`; moby vendor/github.com/moby/swarmkit/v2/manager/controlapi/common.go validateAnnotations (isValidDNSName, 63) and validateConfigOrSecretAnnotations (64, isValidConfigOrSecretName); pulumi-docker provider/resources.go SetAutonaming(255, \"-\")",
    check(r) {
      const p: string[] = [];
      if (of(r, T.swarmFleet).length === 0) {
        if (of(r, T.service).length > 0) p.push("docker services without a swarm");
        return p;
      }
      for (const i of of(r, T.instance)) {
        const b64 = i.inputs.userDataBase64;
        if (typeof b64 !== "string") continue;
        const doc = YAML.parse(gunzipUserData(b64)) as { write_files?: { path: string; content: string }[] };
        const daemon = doc.write_files?.find((f) => f.path === DAEMON_JSON);
        const json = daemon ? (JSON.parse(daemon.content) as Record<string, unknown>) : undefined;
        if (!json || json["live-restore"] !== false) p.push(`${i.name}: live-restore is not off in ${DAEMON_JSON} (dockerd refuses swarm init/join with it on)`);
      }
      const pulls = of(r, T.hostCommand).map((c) => str(c.inputs.create));
      for (const svc of of(r, T.service)) {
        const i = svc.inputs as Record<string, any>;
        if (typeof i.name !== "string" || i.name === "") p.push(`${svc.name}: no name`);
        if (!svc.options?.deleteBeforeReplace) p.push(`${svc.name}: not replaced delete-first (its name is unique in the swarm)`);
        const u = i.updateConfig ?? {};
        const rb = i.rollbackConfig ?? {};
        if (!/^(stop-first|start-first)$/.test(u.order ?? "")) p.push(`${svc.name}: updateConfig.order ${u.order}; allowed stop-first, start-first`);
        if (!/^(pause|continue|rollback)$/.test(u.failureAction ?? "")) p.push(`${svc.name}: updateConfig.failureAction ${u.failureAction}; allowed pause, continue, rollback`);
        if (!/^(pause|continue)$/.test(rb.failureAction ?? "")) p.push(`${svc.name}: rollbackConfig.failureAction ${rb.failureAction}; allowed pause, continue`);
        const e = i.endpointSpec ?? {};
        if (!/^(vip|dnsrr)$/.test(e.mode ?? "vip")) p.push(`${svc.name}: endpointSpec.mode ${e.mode}; allowed vip, dnsrr`);
        const ports = (e.ports ?? []) as { publishMode?: string }[];
        if (e.mode === "dnsrr" && ports.some((x) => (x.publishMode ?? "ingress") === "ingress")) p.push(`${svc.name}: publishes in ingress mode with dnsrr (swarm refuses it)`);
        if (ports.some((x) => x.publishMode === "host") && u.order !== "stop-first") p.push(`${svc.name}: publishes host ports but updates ${u.order} (the new task cannot bind the port the old one holds)`);
        for (const n of (i.taskSpec?.networksAdvanceds ?? []) as { id?: string; name?: string }[]) if (n.name !== undefined || n.id === undefined) p.push(`${svc.name}: a network given by name, not id (replaced on every update)`);
        // Replaced delete-first (a new published service's network: networks_advanced ForceNew),
        // a host-mode publisher is down wherever its tasks run: one node per service, so one host at a time.
        if (ports.some((x) => x.publishMode === "host")) {
          const constraints = (i.taskSpec?.placement?.constraints ?? []) as string[];
          if (i.mode?.replicated?.replicas !== 1 || !constraints.some((c) => /^node\.id==\S+$/.test(c))) p.push(`${svc.name}: publishes host ports from more than one node (mode ${JSON.stringify(i.mode)}): replaced delete-first, every host of its group stops serving at once`);
        }
        const image = String(i.taskSpec?.containerSpec?.image ?? "");
        if (!/@sha256:[0-9a-f]{64}$/.test(image)) p.push(`${svc.name}: image ${image} is not by digest`);
        else if (!pulls.some((c) => c.endsWith(` ${image}`) && c.startsWith("docker pull "))) p.push(`${svc.name}: image ${image} is pulled on no host`);
      }
      // The host-mode publishers of a group wait one for another (one chain): a change that
      // replaces them all goes one host at a time, not all in one step.
      const publishers = of(r, T.service).filter((x) => ((x.inputs as any).endpointSpec?.ports ?? []).some((pt: { publishMode?: string }) => pt.publishMode === "host"));
      const groupOf = (x: RenderedResource) => ((x.inputs.labels ?? []) as { label: string; value: string }[]).find((l) => l.label === "dockyard.group")?.value ?? "?";
      for (const g of new Set(publishers.map(groupOf))) {
        const mine = publishers.filter((x) => groupOf(x) === g);
        const keys = new Set(mine.map(resourceKey));
        const heads = mine.filter((x) => !(x.options?.dependsOn ?? []).some((d) => keys.has(d)));
        if (mine.length > 1 && heads.length !== 1) p.push(`group ${g}: ${heads.length} of its ${mine.length} proxy services wait for no other (${heads.map((x) => x.name).join(", ")}): they would be replaced at once`);
      }
      // Names swarm validates (controlapi/common.go): services and overlay networks, then secrets and configs.
      const dnsName = (what: string, name: unknown) => {
        if (typeof name !== "string" || name.length > MAX_SWARM_NAME || !SWARM_NAME_RE.test(name)) p.push(`${what}: name ${JSON.stringify(name)} is not a DNS name component of ${MAX_SWARM_NAME} characters or fewer`);
      };
      for (const svc of of(r, T.service)) dnsName(svc.name, svc.inputs.name);
      for (const n of of(r, T.dockerNetwork).filter((x) => x.inputs.driver === "overlay")) dnsName(n.name, n.inputs.name);
      for (const o of [...of(r, T.swarmSecret), ...of(r, T.swarmConfig)]) {
        // Unset: Pulumi autonames it, the resource name plus "-" and 7 random characters.
        const name = typeof o.inputs.name === "string" ? o.inputs.name : `${o.name}-${"a".repeat(AUTONAME_SUFFIX - 1)}`;
        if (name.length > MAX_SWARM_OBJECT_NAME || !SWARM_OBJECT_NAME_RE.test(name)) p.push(`${o.name}: its name (${typeof o.inputs.name === "string" ? "set" : "autonamed"}, ${name.length} characters) is not ${MAX_SWARM_OBJECT_NAME} or fewer of [a-zA-Z0-9-_.]`);
      }
      const tokens = of(r, T.hostCommand).filter((c) => c.name.endsWith("-join-tokens"));
      if (tokens.length !== 1) p.push(`${tokens.length} join-tokens commands; expected 1`);
      for (const t of tokens) {
        if (t.inputs.logging !== "none") p.push(`${t.name}: logging ${t.inputs.logging}; its stdout (the join tokens) would be logged`);
        if (!(t.options?.additionalSecretOutputs ?? []).includes("stdout")) p.push(`${t.name}: stdout (the join tokens) is not a secret output`);
      }
      for (const j of of(r, T.hostCommand).filter((c) => c.name.endsWith("-join"))) {
        if (!isSecretValue(j.inputs.stdin)) p.push(`${j.name}: stdin (a join token) is not a secret`);
        if (/SWMTKN-1-[0-9a-z]{10,}/.test(str(j.inputs.create))) p.push(`${j.name}: a join token on its command line`);
      }
      const swarmGroups = of(r, T.sg).filter((g) => ((g.inputs.ingress ?? []) as { self?: boolean }[]).some((x) => x.self));
      for (const g of of(r, T.sg)) {
        for (const x of (g.inputs.ingress ?? []) as { fromPort: number; toPort: number; protocol: string; self?: boolean; cidrBlocks?: string[] }[]) {
          const swarmPort = SWARM_PORTS.some((sp) => sp.port >= x.fromPort && sp.port <= x.toPort && (x.protocol === sp.protocol || x.protocol === "-1"));
          if (swarmPort && !x.self) p.push(`${g.name}: opens swarm port ${x.fromPort}/${x.protocol} to others than the stack's hosts`);
        }
      }
      if (of(r, T.instance).length > 0) {
        for (const sp of SWARM_PORTS) {
          if (!swarmGroups.some((g) => ((g.inputs.ingress ?? []) as { fromPort: number; protocol: string; self?: boolean }[]).some((x) => x.self && x.fromPort === sp.port && x.protocol === sp.protocol))) p.push(`no security group opens ${sp.port}/${sp.protocol} between the hosts`);
        }
        for (const i of of(r, T.instance)) {
          const ids = (i.inputs.vpcSecurityGroupIds ?? []) as unknown[];
          if (!swarmGroups.some((g) => ids.some((id) => computedRef(id)?.name === g.name))) p.push(`${i.name}: not in the swarm's security group`);
        }
      }
      return p;
    },
  },
];
