/**
 * The one schema of Dockyard's configuration.
 *
 * Two inputs, parsed together into one typed EnvironmentSpec per stack:
 *  - stacks/environment.yaml: the environment definition, written ONCE and shared by
 *    every stack (host groups, OS family, engine, services, health checks);
 *  - stacks/Pulumi.<stack>.yaml: the per-stack knobs, and nothing else (region, sizes,
 *    counts, allowed CIDRs, registry, image digests, secrets).
 *
 * Every problem is collected and reported at once in a ConfigError, each line naming
 * the stack, the file, the full key path and what is allowed. Nothing here touches
 * Pulumi, so scripts and tests use it directly.
 */
import { z } from "zod";
import { OS_FAMILIES, instanceArchitecture, type Architecture, type OsFamily, type OsFamilyInfo } from "./os";

/** The Pulumi project name; stack config keys are namespaced by it. */
export const PROJECT = "dockyard";
/**
 * Repository (under the stack's registry) of the per-host reverse proxy image, and the
 * proxy's name wherever images are listed by name (`promote`/`rollback --service haproxy`,
 * `pin`, the promotion ledger); no service may take this name or repository.
 */
export const PROXY_REPOSITORY = "haproxy";
/** The stacks shipped in this repository. Others (a developer's own) are allowed too. */
export const STACKS = ["dev", "test", "prod"] as const;

// ---------------------------------------------------------------------------------
// Shared value types
// ---------------------------------------------------------------------------------

const NAME_RE = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
const name = (what: string) =>
  z.string().regex(NAME_RE, { error: `${what} must be 2-32 chars of a-z, 0-9 and '-', starting with a letter` });

/** A host's name, `<stack>-<group>-<ordinal>` (ordinal 1-based): its hostname, Name tag and the prefix of its resources' names. */
export function hostNameFor(stack: string, group: string, ordinal: number): string {
  return `${stack}-${group}-${ordinal}`;
}
/**
 * The longest host name allowed. The host's IAM role is the resource `<host>-role`, which
 * Pulumi autonames `<name>-<7 random hex>` with a maximum of 64 characters for IAM roles
 * (pulumi-aws provider/resources.go: aws_iam_role name AutoName("name", 64, "-"); the
 * engine refuses a longer one, sdk/go/common/resource/resource_id.go NewUniqueHex):
 * 64 - 8 - "-role".length = 51. It is also well within a DNS label's 63.
 */
export const HOST_NAME_MAX_LENGTH = 51;

/** EC2's default quota of inbound rules per security group; each CIDR of a rule counts as one. */
export const SECURITY_GROUP_INBOUND_RULES = 60;

export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/**
 * The immutable tag that protects a pinned digest from the registry's lifecycle policy
 * (components/registry.ts): "pin-sha256-<hex>", 75 characters, within the 128 a tag may have.
 * `promote`, `rollback` and `dockyard pin` put it on every digest a stack file pins.
 */
export function pinTag(digest: string): string {
  if (!DIGEST_RE.test(digest)) throw new Error(`pinTag: ${JSON.stringify(digest)} is not a digest 'sha256:<64 hex>'`);
  return `pin-${digest.replace(":", "-")}`;
}
/** The short form of a digest, as people read it: its first 12 hex digits ("4f2e8a1c9b7d"). */
export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

/** `<registry>/haproxy`: the stack's repository of the per-host proxy image. */
export function proxyRepository(registry: string): string {
  return `${registry}/${PROXY_REPOSITORY}`;
}

/** Splits an image reference `<repository>@sha256:<hex>`; undefined if it is not one. */
export function splitImageRef(ref: string): { repository: string; digest: string } | undefined {
  const at = ref.lastIndexOf("@");
  const digest = ref.slice(at + 1);
  return at > 0 && DIGEST_RE.test(digest) ? { repository: ref.slice(0, at), digest } : undefined;
}

const digest = z.string({ error: "must be a string 'sha256:<64 lowercase hex>'" }).regex(DIGEST_RE, {
  error: "must be an image digest 'sha256:<64 lowercase hex>' (tags are not allowed)",
});

/** True if `s` is an IPv4 CIDR with a valid prefix and no host bits set. */
export function isCidr(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (!m) return false;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return false;
  const addr = octets.reduce((acc, o) => acc * 256 + o, 0);
  const hostBits = 2 ** (32 - prefix);
  return addr % hostBits === 0;
}
const cidr = z.string({ error: "must be an IPv4 CIDR string like 203.0.113.0/24" }).refine(isCidr, {
  error: (iss) => `must be an IPv4 CIDR like 203.0.113.0/24 with no host bits set (got ${JSON.stringify(iss.input)})`,
});

const int = (min: number, max: number, unit = "") =>
  z
    .number({ error: `must be an integer from ${min} to ${max}${unit}` })
    .int({ error: `must be an integer from ${min} to ${max}${unit}` })
    .min(min, { error: (iss) => `must be an integer from ${min} to ${max}${unit} (got ${iss.input})` })
    .max(max, { error: (iss) => `must be an integer from ${min} to ${max}${unit} (got ${iss.input})` });

const duration = z.string().regex(/^[1-9][0-9]*(ms|s|m|h)$/, { error: "must be a duration like 500ms, 10s, 2m" });
const port = int(1, 65535);
const absPath = z.string().regex(/^\/[A-Za-z0-9._/-]*$/, { error: "must be an absolute path" });

/**
 * Pulumi.yaml gives optional string keys the default "" (the CLI requires every project key
 * without a default, pkg/workspace/config.go mergeConfig), and the CLI hands that default to
 * the program: "" therefore means "not set".
 */
const unsetIfEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === "" ? undefined : v), schema);

const strict = <T extends z.ZodRawShape>(shape: T) =>
  z.strictObject(shape, {
    error: (iss) =>
      iss.code === "unrecognized_keys"
        ? `unknown key ${iss.keys.map((k) => JSON.stringify(k)).join(", ")}; allowed: ${Object.keys(shape).join(", ")}`
        : `must be a mapping with keys ${Object.keys(shape).join(", ")}`,
  });

// ---------------------------------------------------------------------------------
// The environment definition (stacks/environment.yaml)
// ---------------------------------------------------------------------------------

const DaemonSchema = strict({
  /** Container log driver; rotation below applies to both. */
  logDriver: z.enum(["json-file", "local"]).default("local"),
  /** Rotate a container's log at this size, e.g. 10m. */
  logMaxSize: z.string().regex(/^[1-9][0-9]*[kmg]$/, { error: "must be a size like 10m or 1g" }).default("10m"),
  /** Keep this many rotated log files per container. */
  logMaxFile: int(1, 100).default(5),
  /** Keep containers running while dockerd restarts (engine upgrades). */
  liveRestore: z.boolean().default(true),
  /** Prometheus metrics port, bound on 127.0.0.1 only. 0 disables metrics. */
  metricsPort: int(0, 65535).default(9323),
  /** Disable inter-container communication on the default bridge. */
  icc: z.boolean().default(false),
  /** Use iptables DNAT instead of the userland proxy for published ports. */
  userlandProxy: z.boolean().default(false),
  /** Containers may not gain privileges via setuid binaries. */
  noNewPrivileges: z.boolean().default(true),
});

const EngineSchema = strict({
  /** `docker-ce`: Docker's apt repository, exact version pinned; `distro`: the distribution's package. */
  channel: z.enum(["docker-ce", "distro"]),
  /**
   * Exact package version to install and hold. Required for docker-ce
   * (e.g. "5:28.5.1-1~debian.12~bookworm"); for distro, optional (unset: the release's version).
   */
  version: z.string().regex(/^[0-9][A-Za-z0-9.:+~_-]*$/, { error: "must be a package version string" }).optional(),
  daemon: DaemonSchema.default(DaemonSchema.parse({})),
});

const HostGroupDefSchema = strict({
  /** What the hosts of this group are for; becomes the `role` tag. */
  role: name("role"),
  /** Where the data volume is mounted; the engine's data-root lives under it. */
  dataMount: absPath.default("/var/lib/dockyard"),
  /** Let containers reach the instance metadata service (IMDSv2 hop limit 2 instead of 1). */
  containerImds: z.boolean().default(false),
});

const HealthSchema = strict({
  /** HTTP path that answers 2xx when the service is healthy. */
  path: z.string().regex(/^\/[^\s]*$/, { error: "must be an HTTP path starting with /" }),
  interval: duration.default("10s"),
  timeout: duration.default("3s"),
  retries: int(1, 20).default(3),
  startPeriod: duration.default("5s"),
});

const ServiceDefSchema = strict({
  /** Host group whose hosts run this service. */
  group: name("group"),
  /** Repository name under the stack's registry; default: the service name. */
  repository: z.string().regex(/^[a-z0-9]+([._/-][a-z0-9]+)*$/, { error: "must be a repository path" }).optional(),
  /** Port the container listens on. */
  containerPort: port,
  /** Port the per-host proxy publishes for this service; unset: not published. */
  publishPort: port.optional(),
  /** Replicas across the group's hosts, unless the stack file overrides the count. */
  replicas: int(0, 100).default(1),
  health: HealthSchema,
  /** Plain environment variables (never secrets). */
  env: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, { error: "env names must be UPPER_SNAKE" }), z.string()).default({}),
  /** Environment variable -> name of a secret in the stack file's dockyard:secrets. */
  secrets: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, { error: "env names must be UPPER_SNAKE" }), name("secret")).default({}),
  /** Named volume -> mount path in the container; volumes live on the data volume. */
  volumes: z.record(name("volume"), absPath).default({}),
  restart: z.enum(["always", "unless-stopped", "on-failure"]).default("unless-stopped"),
  /** Memory limit in MiB. */
  memoryMb: int(16, 1048576).default(256),
  /** CPU limit in cores. */
  cpus: z.number().positive().max(256).default(1),
  /** User the process runs as; default: the image's. */
  user: z.string().regex(/^[0-9a-z_][0-9a-z_-]*(:[0-9a-z_][0-9a-z_-]*)?$/).optional(),
  readOnlyRootFilesystem: z.boolean().default(true),
});

export const EnvironmentFileSchema = strict({
  os: strict({
    family: z.enum(Object.keys(OS_FAMILIES) as [OsFamily, ...OsFamily[]]),
    architecture: z.enum(["x86_64", "arm64"]).default("x86_64"),
  }),
  engine: EngineSchema,
  hostGroups: z.record(name("host group"), HostGroupDefSchema),
  services: z.record(name("service"), ServiceDefSchema).default({}),
});
export type EnvironmentFile = z.infer<typeof EnvironmentFileSchema>;

// ---------------------------------------------------------------------------------
// The per-stack knobs (stacks/Pulumi.<stack>.yaml, key `config:`)
// ---------------------------------------------------------------------------------

const HostGroupKnobsSchema = strict({
  /** EC2 instance type, e.g. t3.small. */
  instanceType: z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, { error: "must be an EC2 instance type like t3.small" }),
  /** Number of hosts in the group. */
  count: int(0, 50),
  rootVolumeGb: int(8, 16384, " GiB").default(20),
  dataVolumeGb: int(1, 16384, " GiB").default(20),
});

/**
 * Every key a stack file may set. `dockyard:` keys are the project's; `aws:region` is
 * the AWS provider's. Anything else is rejected, so an environment difference cannot
 * hide in a stack file.
 */
export const StackKnobsSchema = strict({
  "aws:region": z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-[0-9]$/, { error: "must be an AWS region like eu-west-1" }),
  /** Image repository prefix `<registry host>/<namespace>`; each service's repository lives under it. */
  "dockyard:registry": z
    .string()
    .regex(/^[a-z0-9.-]+(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)+$/, {
      error: "must be '<registry host>[:port]/<namespace>', e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev",
    }),
  "dockyard:hostGroups": z.record(z.string(), HostGroupKnobsSchema),
  "dockyard:sshCidrs": z.array(cidr).default([]),
  "dockyard:ingressCidrs": z.array(cidr).default([]),
  /** OpenSSH public key installed for the SSH user; unset: SSM Session Manager only. */
  "dockyard:sshPublicKey": unsetIfEmpty(z
    .string()
    .regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$/, { error: "must be an OpenSSH public key" })
    .optional()),
  "dockyard:images": z.record(z.string(), digest),
  /** Digest of the per-host reverse proxy image (HAProxy, mirrored to `<registry>/haproxy`); required when a service publishes a port. */
  "dockyard:proxyImage": unsetIfEmpty(digest.optional()),
  "dockyard:replicas": z.record(z.string(), int(0, 100)).default({}),
  /** Secret values referenced by services; set with `pulumi config set --secret`. */
  "dockyard:secrets": z.record(z.string(), z.string()).default({}),
});
export type StackKnobs = z.infer<typeof StackKnobsSchema>;

/** Keys that are per-stack knobs; the parity check allows exactly these to differ. */
export const KNOB_KEYS = Object.keys(StackKnobsSchema.shape) as (keyof StackKnobs)[];

// ---------------------------------------------------------------------------------
// The typed result
// ---------------------------------------------------------------------------------

export type DaemonSettings = z.infer<typeof DaemonSchema>;
export type HealthCheck = z.infer<typeof HealthSchema>;

export interface EngineSpec {
  channel: "docker-ce" | "distro";
  /** Exact version to install and hold; undefined for distro without pin. */
  version?: string;
  daemon: DaemonSettings;
}

export interface HostGroupSpec {
  name: string;
  role: string;
  instanceType: string;
  count: number;
  rootVolumeGb: number;
  dataVolumeGb: number;
  dataMount: string;
  containerImds: boolean;
}

export interface ServiceSpec {
  name: string;
  group: string;
  /** Full repository reference without digest: `<registry>/<repository>`. */
  repository: string;
  /** Image digest the stack runs. */
  digest: string;
  replicas: number;
  containerPort: number;
  publishPort?: number;
  health: HealthCheck;
  env: Record<string, string>;
  /** Env var -> secret name (values are in EnvironmentSpec.secrets). */
  secrets: Record<string, string>;
  volumes: Record<string, string>;
  restart: "always" | "unless-stopped" | "on-failure";
  memoryMb: number;
  cpus: number;
  user?: string;
  readOnlyRootFilesystem: boolean;
}

export interface EnvironmentSpec {
  project: string;
  stack: string;
  region: string;
  os: { family: OsFamily; architecture: Architecture; info: OsFamilyInfo; sshUser: string };
  engine: EngineSpec;
  access: { sshCidrs: string[]; ingressCidrs: string[]; sshPublicKey?: string };
  /** Repository prefix `<registry host>/<namespace>`. */
  registry: string;
  /** The per-host reverse proxy image `<registry>/haproxy@<digest>`; set when any service publishes a port. */
  proxyImage?: string;
  hostGroups: HostGroupSpec[];
  services: ServiceSpec[];
  /** Secret name -> value. Plain strings here; components wrap them as Pulumi secrets. */
  secrets: Record<string, string>;
}

// ---------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------

/** Every configuration problem found, each naming stack, file, key path and what is allowed. */
export class ConfigError extends Error {
  constructor(
    public readonly stack: string,
    public readonly problems: string[],
  ) {
    super(
      `Invalid configuration for stack "${stack}" (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

function keyPath(path: PropertyKey[]): string {
  return path.map((p) => String(p)).join(".");
}

function zodProblems(where: string, err: z.ZodError): string[] {
  return err.issues.map((iss) => {
    // Unknown keys are reported per key so each message names its full path.
    const path = keyPath(iss.path);
    const message =
      iss.code === "invalid_type" && /received undefined/.test(iss.message)
        ? `missing; required (${iss.message.replace(/^Invalid input: /, "").replace(/, received undefined/, "")})`
        : iss.message;
    return path ? `${where}: ${path}: ${message}` : `${where}: ${message}`;
  });
}

export interface RawStackFile {
  /** The `config:` mapping of the stack file (secure values as `{ secure: ... }` or decrypted strings). */
  config: Record<string, unknown>;
  /** Other top-level keys of the stack file. */
  other?: Record<string, unknown>;
}

const STACK_FILE_TOP_KEYS = new Set(["config", "encryptionsalt", "secretsprovider", "encryptedkey"]);

/**
 * Parses the environment definition and a stack's knobs into one EnvironmentSpec.
 * Throws ConfigError listing every problem found.
 */
export function parseEnvironment(stack: string, envDoc: unknown, stackFile: RawStackFile): EnvironmentSpec {
  const envWhere = `stack "${stack}": stacks/environment.yaml`;
  const stackWhere = `stack "${stack}": stacks/Pulumi.${stack}.yaml`;
  const problems: string[] = [];

  for (const k of Object.keys(stackFile.other ?? {})) {
    if (!STACK_FILE_TOP_KEYS.has(k)) problems.push(`${stackWhere}: ${k}: unknown top-level key; allowed: ${[...STACK_FILE_TOP_KEYS].join(", ")}`);
  }

  const envParsed = EnvironmentFileSchema.safeParse(envDoc ?? {});
  if (!envParsed.success) problems.push(...zodProblems(envWhere, envParsed.error));

  // Secure values appear as { secure: "..." } when read from the file without decryption.
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(stackFile.config ?? {})) config[k] = v;
  const rawSecrets = config["dockyard:secrets"];
  if (rawSecrets && typeof rawSecrets === "object" && !Array.isArray(rawSecrets)) {
    const secrets: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(rawSecrets as Record<string, unknown>)) {
      secrets[k] = isSecureValue(v) ? SECRET_PLACEHOLDER : v;
    }
    config["dockyard:secrets"] = secrets;
  }
  for (const [k, v] of Object.entries(config)) {
    if (isSecureValue(v) && k !== "dockyard:secrets") {
      problems.push(`${stackWhere}: config.${k}: only dockyard:secrets may hold secure values`);
    }
  }
  const knobsParsed = StackKnobsSchema.safeParse(config);
  if (!knobsParsed.success) {
    problems.push(
      ...zodProblems(stackWhere, knobsParsed.error).map((p) =>
        p.startsWith(`${stackWhere}: dockyard:`) || p.startsWith(`${stackWhere}: aws:`)
          ? p.replace(`${stackWhere}: `, `${stackWhere}: config.`)
          : p.replace(`${stackWhere}: `, `${stackWhere}: config: `),
      ),
    );
  }

  // Cross-references are checked even when a field failed above, on whatever is
  // well-formed, so one run reports every problem.
  const env = envParsed.success ? envParsed.data : looseEnvironment(envDoc);
  const knobs = knobsParsed.success ? knobsParsed.data : looseKnobs(config);
  const info = OS_FAMILIES[env.os.family] ?? OS_FAMILIES["debian-12"];

  // Cross-references and combinations that a per-field schema cannot see.
  const groupNames = Object.keys(env.hostGroups);
  const serviceNames = Object.keys(env.services);
  if (groupNames.length === 0) problems.push(`${envWhere}: hostGroups: must declare at least one host group`);
  for (const [svc, def] of Object.entries(env.services)) {
    if (!env.hostGroups[def.group]) {
      problems.push(`${envWhere}: services.${svc}.group: unknown host group "${def.group}"; declared groups: ${groupNames.join(", ") || "(none)"}`);
    }
    for (const [envName, secretName] of Object.entries(def.secrets)) {
      if (!(secretName in knobs["dockyard:secrets"])) {
        problems.push(
          `${stackWhere}: config.dockyard:secrets.${secretName}: missing; service "${svc}" needs it for ${envName} (set it with: npx pulumi config set --secret --path 'dockyard:secrets.${secretName}' VALUE --stack ${stack})`,
        );
      }
      if (envName in def.env) problems.push(`${envWhere}: services.${svc}.secrets.${envName}: also set in env; a variable is either plain or secret`);
    }
  }
  const repositoryOwner = new Map<string, string>();
  for (const [svc, def] of Object.entries(env.services)) {
    // One repository per service: each service's repository is created, pinned and promoted
    // on its own, and a host holds one image resource per service (removed when its digest
    // moves on, which Docker refuses while another service's container still uses it).
    const repo = def.repository ?? svc;
    const other = repositoryOwner.get(repo);
    if (other !== undefined && repo !== PROXY_REPOSITORY) problems.push(`${envWhere}: services.${svc}.repository: "${repo}" is already service "${other}"'s repository; each service has its own`);
    repositoryOwner.set(repo, svc);
    if (svc === PROXY_REPOSITORY) {
      problems.push(`${envWhere}: services.${svc}: "${PROXY_REPOSITORY}" names the per-host proxy (dockyard:proxyImage, in <registry>/${PROXY_REPOSITORY}); give the service another name`);
    } else if ((def.repository ?? svc) === PROXY_REPOSITORY) {
      problems.push(`${envWhere}: services.${svc}.repository: "${PROXY_REPOSITORY}" is the per-host proxy's repository (dockyard:proxyImage); use another repository`);
    }
  }
  const published = new Map<number, string>();
  for (const [svc, def] of Object.entries(env.services)) {
    if (def.publishPort === undefined) continue;
    if (def.publishPort === 2375 || def.publishPort === 2376) {
      problems.push(`${envWhere}: services.${svc}.publishPort: 2375/2376 are Docker API ports and are never published`);
    }
    if (def.publishPort === 22) problems.push(`${envWhere}: services.${svc}.publishPort: 22 is reserved for SSH`);
    const other = published.get(def.publishPort);
    if (other && env.services[other].group === def.group) {
      problems.push(`${envWhere}: services.${svc}.publishPort: ${def.publishPort} is already published by service "${other}" in group "${def.group}"`);
    }
    published.set(def.publishPort, svc);
  }
  if (env.engine.channel === "docker-ce") {
    if (!info.dockerCeRepo) {
      problems.push(`${envWhere}: engine.channel: docker-ce is not offered for ${env.os.family}; use "distro"`);
    }
    if (!env.engine.version) {
      problems.push(`${envWhere}: engine.version: required for channel docker-ce (an exact apt version like 5:28.5.1-1~${info.distro}.12~${info.codename ?? "codename"})`);
    } else if (info.codename && !env.engine.version.endsWith(`~${info.codename}`)) {
      problems.push(`${envWhere}: engine.version: "${env.engine.version}" is not a ${info.codename} build; docker-ce versions for ${env.os.family} end in ~${info.codename}`);
    }
  }

  for (const g of Object.keys(knobs["dockyard:hostGroups"])) {
    if (!env.hostGroups[g]) problems.push(`${stackWhere}: config.dockyard:hostGroups.${g}: unknown host group; declared groups: ${groupNames.join(", ")}`);
  }
  for (const g of groupNames) {
    // EC2 counts each CIDR of a rule as one rule, at most 60 inbound per security group
    // (Amazon VPC quotas, "Inbound or outbound rules per security group"; components/host.ts ingressRules).
    const ports = new Set(Object.values(env.services).filter((d) => d.group === g && d.publishPort !== undefined).map((d) => d.publishPort));
    const sshCidrs = Array.isArray(knobs["dockyard:sshCidrs"]) ? new Set(knobs["dockyard:sshCidrs"]).size : 0;
    const ingressCidrs = Array.isArray(knobs["dockyard:ingressCidrs"]) ? new Set(knobs["dockyard:ingressCidrs"]).size : 0;
    const inbound = sshCidrs + (ingressCidrs > 0 ? ports.size * ingressCidrs : 0);
    if (inbound > SECURITY_GROUP_INBOUND_RULES) {
      problems.push(
        `${stackWhere}: config.dockyard:ingressCidrs: host group "${g}" would need ${inbound} inbound security group rules (${sshCidrs} sshCidrs + ${ports.size} published ports x ${ingressCidrs} ingressCidrs); EC2 allows at most ${SECURITY_GROUP_INBOUND_RULES}: use fewer or wider CIDRs`,
      );
    }
    const type = knobs["dockyard:hostGroups"][g]?.instanceType;
    if (typeof type === "string" && env.os?.architecture && instanceArchitecture(type) !== env.os.architecture) {
      problems.push(
        `${stackWhere}: config.dockyard:hostGroups.${g}.instanceType: ${type} is an ${instanceArchitecture(type)} instance type, but stacks/environment.yaml os.architecture is ${env.os.architecture} (EC2 refuses an AMI of the other architecture); allowed: an ${env.os.architecture} type${env.os.architecture === "arm64" ? " (Graviton: c7g, m7g, t4g, ...)" : " (not a Graviton type such as c7g or t4g)"}`,
      );
    }
    const count = knobs["dockyard:hostGroups"][g]?.count;
    const longest = hostNameFor(stack, g, typeof count === "number" && count > 0 ? count : 1);
    if (/^sg-/.test(longest)) {
      problems.push(`${stackWhere}: config.dockyard:hostGroups.${g}: host names begin with "sg-", and so would each host's security group name, which EC2 refuses (CreateSecurityGroup: names cannot start with sg-): use another stack name`);
    }
    if (longest.length > HOST_NAME_MAX_LENGTH) {
      problems.push(
        `${stackWhere}: config.dockyard:hostGroups.${g}: host names '<stack>-<group>-<n>' reach ${longest.length} characters ("${longest}"); at most ${HOST_NAME_MAX_LENGTH} are allowed (each host's IAM role is '<host>-role' plus Pulumi's 8-character random suffix, and IAM role names end at 64): use a shorter stack or group name`,
      );
    }
    if (!knobs["dockyard:hostGroups"][g]) problems.push(`${stackWhere}: config.dockyard:hostGroups.${g}: missing; every host group needs instanceType and count`);
  }
  for (const key of ["dockyard:images", "dockyard:replicas"] as const) {
    for (const s of Object.keys(knobs[key])) {
      if (!env.services[s]) problems.push(`${stackWhere}: config.${key}.${s}: unknown service; declared services: ${serviceNames.join(", ") || "(none)"}`);
    }
  }
  for (const s of serviceNames) {
    if (!knobs["dockyard:images"][s]) problems.push(`${stackWhere}: config.dockyard:images.${s}: missing; every service needs a digest 'sha256:<64 hex>'`);
  }
  for (const [s, def] of Object.entries(env.services)) {
    const replicas = knobs["dockyard:replicas"][s] ?? def.replicas;
    const hosts = knobs["dockyard:hostGroups"][def.group]?.count;
    if (replicas > 0 && hosts === 0) {
      problems.push(`${stackWhere}: config.dockyard:hostGroups.${def.group}.count: is 0 but service "${s}" needs ${replicas} replica(s) on that group`);
    }
  }
  const publishing = Object.entries(env.services).filter(([, d]) => d.publishPort !== undefined).map(([s]) => s);
  if (publishing.length > 0 && !knobs["dockyard:proxyImage"] && knobsParsed.success) {
    problems.push(
      `${stackWhere}: config.dockyard:proxyImage: missing; services ${publishing.join(", ")} publish ports through the per-host proxy, which needs an image digest 'sha256:<64 hex>' in <registry>/haproxy`,
    );
  }
  const usedSecrets = new Set(Object.values(env.services).flatMap((d) => Object.values(d.secrets)));
  for (const s of Object.keys(knobs["dockyard:secrets"])) {
    if (!usedSecrets.has(s)) problems.push(`${stackWhere}: config.dockyard:secrets.${s}: not used by any service`);
  }
  if (problems.length > 0 || !envParsed.success || !knobsParsed.success) throw new ConfigError(stack, problems);

  return {
    project: PROJECT,
    stack,
    region: knobs["aws:region"],
    os: { family: env.os.family, architecture: env.os.architecture, info, sshUser: info.sshUser },
    engine: { channel: env.engine.channel, version: env.engine.version, daemon: env.engine.daemon },
    access: {
      sshCidrs: knobs["dockyard:sshCidrs"],
      ingressCidrs: knobs["dockyard:ingressCidrs"],
      sshPublicKey: knobs["dockyard:sshPublicKey"],
    },
    registry: knobs["dockyard:registry"],
    proxyImage: knobs["dockyard:proxyImage"] ? `${proxyRepository(knobs["dockyard:registry"])}@${knobs["dockyard:proxyImage"]}` : undefined,
    hostGroups: groupNames.map((g) => ({
      name: g,
      role: env.hostGroups[g].role,
      dataMount: env.hostGroups[g].dataMount,
      containerImds: env.hostGroups[g].containerImds,
      ...knobs["dockyard:hostGroups"][g],
    })),
    services: serviceNames.map((s) => {
      const def = env.services[s];
      return {
        name: s,
        group: def.group,
        repository: `${knobs["dockyard:registry"]}/${def.repository ?? s}`,
        digest: knobs["dockyard:images"][s],
        replicas: knobs["dockyard:replicas"][s] ?? def.replicas,
        containerPort: def.containerPort,
        publishPort: def.publishPort,
        health: def.health,
        env: def.env,
        secrets: def.secrets,
        volumes: def.volumes,
        restart: def.restart,
        memoryMb: def.memoryMb,
        cpus: def.cpus,
        user: def.user,
        readOnlyRootFilesystem: def.readOnlyRootFilesystem,
      };
    }),
    secrets: knobs["dockyard:secrets"],
  };
}

/** An image a stack pins by digest: a service's (`dockyard:images.<name>`) or the per-host proxy's (`dockyard:proxyImage`, named PROXY_REPOSITORY). */
export interface PinnedImage {
  name: string;
  /** `<registry>/<repository>`, without digest. */
  repository: string;
  digest: string;
  proxy: boolean;
}

/** Every image the stack pins: each service's, then the proxy's when the stack sets one. */
export function pinnedImages(spec: Pick<EnvironmentSpec, "services" | "proxyImage">): PinnedImage[] {
  const out: PinnedImage[] = spec.services.map((s) => ({ name: s.name, repository: s.repository, digest: s.digest, proxy: false }));
  const proxy = spec.proxyImage ? splitImageRef(spec.proxyImage) : undefined;
  if (proxy) out.push({ name: PROXY_REPOSITORY, ...proxy, proxy: true });
  return out;
}

const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
const mapOf = (v: unknown): Record<string, unknown> => (isMap(v) ? v : {});

/** The well-formed parts of an environment file that failed validation, for cross-reference checks. */
function looseEnvironment(doc: unknown): EnvironmentFile {
  const d = mapOf(doc);
  const services: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(mapOf(d.services))) {
    const s = mapOf(v);
    services[k] = {
      ...s,
      group: typeof s.group === "string" ? s.group : "",
      secrets: mapOf(s.secrets),
      env: mapOf(s.env),
      replicas: typeof s.replicas === "number" ? s.replicas : 1,
      publishPort: typeof s.publishPort === "number" ? s.publishPort : undefined,
    };
  }
  const engine = mapOf(d.engine);
  return {
    os: { family: mapOf(d.os).family, architecture: "x86_64" },
    engine: { ...engine, channel: engine.channel === "docker-ce" ? "distro" : engine.channel },
    hostGroups: mapOf(d.hostGroups),
    services,
  } as unknown as EnvironmentFile;
}

/** The well-formed parts of stack knobs that failed validation, for cross-reference checks. */
function looseKnobs(config: Record<string, unknown>): StackKnobs {
  return {
    ...config,
    "dockyard:hostGroups": mapOf(config["dockyard:hostGroups"]),
    "dockyard:images": mapOf(config["dockyard:images"]),
    "dockyard:replicas": mapOf(config["dockyard:replicas"]),
    "dockyard:secrets": mapOf(config["dockyard:secrets"]),
  } as unknown as StackKnobs;
}

/** Stands in for a secret value that is only readable through Pulumi (plan, diff, scripts). */
export const SECRET_PLACEHOLDER = "[secret]";

export function isSecureValue(v: unknown): boolean {
  return !!v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "secure" in v;
}
