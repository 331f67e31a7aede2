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
import { ECR_LOOKALIKE_RE, parseEcrHost, registryHost } from "./ecr";
import { OS_FAMILIES, dockerCeOffered, instanceArchitecture, type OsFamily, type OsFamilyInfo } from "./os";
import { parseSshPublicKey, SSH_KEY_ALLOWED } from "./ssh";

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
  z.string({ error: `must be a ${what} name (a string)` }).regex(NAME_RE, {
    error: `must be a ${what} name: 2-32 chars of a-z, 0-9 and '-', starting with a letter and ending with a letter or digit`,
  });

/**
 * A stack's name: it begins every host's name (a DNS label) and names its file, so only
 * a-z, 0-9 and '-', starting with a letter (Pulumi itself would also take '_', '.' and
 * capitals, none of which a hostname may hold).
 */
const STACK_NAME_RE = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;
/** What is wrong with a stack name, as the whole message, or undefined when it is usable. */
export function stackNameProblem(stack: string): string | undefined {
  if (stack.length > STACK_NAME_MAX_LENGTH) {
    return `stack "${stack.slice(0, STACK_NAME_MAX_LENGTH)}..." (${stack.length} characters): the stack name is too long; allowed: at most ${STACK_NAME_MAX_LENGTH} characters (it begins every host's name '<stack>-<group>-<n>', at most ${HOST_NAME_MAX_LENGTH} characters, and names stacks/Pulumi.<stack>.yaml)`;
  }
  if (STACK_NAME_RE.test(stack)) return undefined;
  return `stack "${stack}": the stack name is not allowed; allowed: a-z, 0-9 and '-', starting with a letter and ending with a letter or digit (it begins every host's name, which must be a DNS label, and names stacks/Pulumi.<stack>.yaml), e.g. dev, prod, dev-alice`;
}

/**
 * A mapping of names to values, parsed into a null-prototype object: `"constructor" in
 * record` is true only when the file sets it (zod builds records on a plain {}, where
 * every name Object.prototype has would seem present).
 */
const record = <K extends z.core.$ZodRecordKey, V extends z.ZodType>(key: K, value: V) =>
  z.record(key, value).transform((r) => Object.assign(Object.create(null) as typeof r, r));
/** A string a process environment can hold: no NUL (execve's strings end at one). */
const envString = (what: string) =>
  z.string({ error: `must be a string (${what})` }).refine((v) => !v.includes("\u0000"), { error: `contains a NUL character, which no process environment can hold; allowed: any other text (${what})` });

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
/** The longest stack name: its shortest host name, '<stack>-<group of 2>-1', must fit HOST_NAME_MAX_LENGTH (every stack has a host group). */
export const STACK_NAME_MAX_LENGTH = HOST_NAME_MAX_LENGTH - "-gg-1".length;

/** EC2's default quota of inbound rules per security group; each CIDR of a rule counts as one. */
export const SECURITY_GROUP_INBOUND_RULES = 60;

/** An image digest, `sha256:<64 lower-case hex>`: the one pattern (scripts/lib/oci.ts imports it). */
export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** An AWS region name like eu-west-1 or us-gov-west-1 (`aws:region`, and the region an ECR registry host names). */
const AWS_REGION_RE = /^[a-z]{2}(-gov)?-[a-z]+-[0-9]$/;
/** An availability zone's name: its region's name and one letter (eu-west-1a). Local and Wavelength Zones have no default subnet. */
const AVAILABILITY_ZONE_RE = /^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$/;
/** An ACM certificate's ARN: partition, region, account, certificate/<id> (ACM API reference, CertificateArn). */
export const ACM_CERTIFICATE_ARN_RE = /^arn:aws(-[a-z]+)*:acm:[a-z]{2}(-gov)?-[a-z]+-[0-9]:[0-9]{12}:certificate\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The pin tag of a digest, `pin-sha256-<64 hex>` (75 characters, within the 128 a tag may
 * have). This is the one place that tells what it is for; other places refer here.
 *
 * Each stack's registry expires untagged images after some days (the lifecycle policy in
 * components/registry.ts), and an ECR lifecycle rule cannot select by digest, so "keep
 * what a stack file pins" is said with a tag: every digest a stack file pins (services'
 * `dockyard:images`, the proxy's `dockyard:proxyImage`) carries this immutable tag, and
 * on a multi-platform index each child manifest carries its own, so no untagged child of a
 * pinned index expires. Because tags are immutable, a pin tag always names the digest it
 * was made from. `promote` and `rollback` put it on each digest before they write it to a
 * stack file; `dockyard pin` puts it on every digest any stack file pins (the manifest's
 * own bytes under the tag, nothing re-uploaded), and `pin --check` fails while one is
 * missing. An image no stack file pins stays untagged and expires.
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
 * The readiness marker DockerEngine's user-data writes last and its ready check waits for.
 * components/engine.ts READY_MARKER must be this same path (test/stacks/schema.test.ts
 * compares them): a data volume mounted over it would hide it.
 */
export const ENGINE_READY_MARKER = "/var/lib/cloud/dockyard-engine-ready";
/** Directories a host group's data volume may not be mounted on, nor above. */
export const SYSTEM_DIRECTORIES = ["/etc", "/usr", "/var", "/var/lib", "/boot", "/proc", "/sys", "/dev", "/run", "/tmp", "/home", "/root"] as const;

/** What is wrong with a host group's dataMount, or undefined when it is usable. */
export function dataMountProblem(path: string): string | undefined {
  const allowed = "allowed: a dedicated absolute directory such as /var/lib/dockyard";
  const mount = path.replace(/\/+$/, "");
  if (!/^\/[A-Za-z0-9._/-]*$/.test(path) || mount === "") {
    return `"${path}" must be an absolute path other than / (letters, digits, '.', '_', '-' between slashes); ${allowed}`;
  }
  if (mount.split("/").slice(1).some((seg) => seg === "" || seg === "." || seg === "..")) {
    return `"${path}" has an empty, '.' or '..' segment; ${allowed}`;
  }
  const under = (dir: string) => dir === mount || dir.startsWith(`${mount}/`);
  const system = SYSTEM_DIRECTORIES.find(under);
  if (system !== undefined) return `"${path}" would shadow the system directory ${system}; ${allowed}, not one of ${SYSTEM_DIRECTORIES.join(", ")} or above them`;
  if (under(ENGINE_READY_MARKER) || mount.startsWith(`${ENGINE_READY_MARKER}/`)) {
    return `"${path}" would hide the engine's readiness marker ${ENGINE_READY_MARKER}; ${allowed}`;
  }
  return undefined;
}
/** A data volume's mount point, trailing slashes trimmed ("/var/lib/dockyard/" -> "/var/lib/dockyard"): components use it as is. */
const dataMount = z
  .string({ error: "must be an absolute path such as /var/lib/dockyard" })
  .refine((v) => dataMountProblem(v) === undefined, { error: (iss) => dataMountProblem(iss.input as string) })
  .transform((v) => v.replace(/\/+$/, ""));

/** host[:port]: lower-case DNS name or IPv4 address (docker reference grammar, minus IPv6). */
const REGISTRY_HOST_RE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::([0-9]{1,5}))?$/;
const REGISTRY_NAMESPACE_RE = /^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;
const REGISTRY_ALLOWED = "'<registry host>[:port]/<namespace>', e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev or 127.0.0.1:5000/dockyard";

/** What is wrong with a registry prefix `<host>[:port]/<namespace>`, or undefined when it is usable. */
export function registryProblem(prefix: string): string | undefined {
  const host = registryHost(prefix);
  const namespace = prefix.slice(host.length + 1);
  const m = REGISTRY_HOST_RE.exec(host);
  if (!m || (m[1] !== undefined && (Number(m[1]) < 1 || Number(m[1]) > 65535))) {
    return `"${host}" is not a registry host (a lower-case DNS name or IPv4 address with an optional :port from 1 to 65535); must be ${REGISTRY_ALLOWED}`;
  }
  if (!REGISTRY_NAMESPACE_RE.test(namespace)) return `"${prefix}" has no valid namespace after the host; must be ${REGISTRY_ALLOWED}`;
  const ecr = parseEcrHost(host);
  if (ECR_LOOKALIKE_RE.test(host) && !ecr) {
    // Hosts get the ECR credential helper only for hosts stacks/ecr.ts accepts: every pull would fail.
    return `"${host}" looks like ECR but is not an ECR registry host '<12-digit account>.dkr.ecr[-fips].<region>.amazonaws.com' (no port), so hosts would get no ECR credential helper; must be ${REGISTRY_ALLOWED}`;
  }
  if (ecr && !AWS_REGION_RE.test(ecr.region)) {
    // The repositories are created in that region, which AWS would refuse at `pulumi up`.
    return `"${host}" names the region "${ecr.region}", which is not an AWS region like eu-west-1; must be ${REGISTRY_ALLOWED}`;
  }
  return undefined;
}

/**
 * Pulumi.yaml gives optional string keys the default "" (the CLI requires every project key
 * without a default, pkg/workspace/config.go mergeConfig), and the CLI hands that default to
 * the program: "" therefore means "not set".
 */
const unsetIfEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === "" ? undefined : v), schema);
/** A boolean knob: the stack file holds true/false, the Pulumi engine hands the program "true"/"false". */
const configBoolean = () => z.preprocess((v) => (v === "true" ? true : v === "false" ? false : v), z.boolean({ error: "must be true or false" }));

const strict = <T extends z.ZodRawShape>(shape: T) =>
  z.strictObject(shape, {
    error: (iss) =>
      iss.code === "unrecognized_keys"
        ? `unknown key ${iss.keys.map((k) => JSON.stringify(k)).join(", ")}; allowed: ${Object.keys(shape).join(", ")}`
        : iss.input === undefined
          ? `missing; required: a mapping with keys ${Object.keys(shape).join(", ")}`
          : `must be a mapping with keys ${Object.keys(shape).join(", ")} (got ${kindOf(iss.input)})`,
  });

// ---------------------------------------------------------------------------------
// The environment definition (stacks/environment.yaml)
// ---------------------------------------------------------------------------------

/** Names daemon.json `default-ulimits` accepts (docker/go-units ulimit.go ulimitNameMapping, as moby vendors it). */
export const ULIMIT_NAMES = ["core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"] as const;

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
  /**
   * Resource limits every container starts with unless it sets its own (daemon.json
   * `default-ulimits`; CIS Docker Benchmark 2.8). Name -> soft and hard limit. A limit
   * above what dockerd itself may set fails every container start ("error setting
   * rlimits"): on a VM dockerd may raise it, in a container (the test harness) it may not.
   */
  defaultUlimits: z
    .partialRecord(
      z.enum(ULIMIT_NAMES, { error: `must be a ulimit name; allowed: ${ULIMIT_NAMES.join(", ")}` }),
      strict({ soft: int(0, 2 ** 31 - 1), hard: int(0, 2 ** 31 - 1) }).refine((l) => l.soft <= l.hard, { error: "soft must not exceed hard" }),
    )
    .default({ nofile: { soft: 16384, hard: 16384 } }),
  /**
   * Run containers in a remapped user namespace (daemon.json `userns-remap: default`; CIS
   * 2.9): root in a container is an unprivileged uid on the host. Off by default; the
   * trade-off is in README ("CIS Docker Benchmark").
   */
  userNamespaceRemap: z.boolean().default(false),
});

const EngineSchema = strict({
  /** `docker-ce`: Docker's apt repository, exact version pinned; `distro`: the distribution's package. */
  channel: z.enum(["docker-ce", "distro"]),
  /**
   * Exact package version to install and hold. Required for docker-ce
   * (e.g. "5:28.5.1-1~debian.12~bookworm"); for distro, optional (unset: the release's version).
   */
  version: z
    .string({ error: "must be a package version string" })
    .regex(/^[0-9][A-Za-z0-9.:+~_-]*$/, {
      error: (iss) => `${JSON.stringify(iss.input)} is not a package version string; allowed: a digit, then letters, digits and . : + ~ _ - (e.g. 5:28.5.1-1~debian.12~bookworm)`,
    })
    .optional(),
  daemon: DaemonSchema.default(DaemonSchema.parse({})),
  /**
   * Install auditd with rules watching the Docker daemon, containerd, runc, their
   * configuration, unit and socket (CIS Docker Benchmark 1.1.3-1.1.18).
   */
  audit: z.boolean().default(true),
  /**
   * Install AppArmor, so containers run under the docker-default profile (CIS 5.2): the
   * engine is installed without Recommends, where AppArmor comes from.
   */
  apparmor: z.boolean().default(true),
});

const HostGroupDefSchema = strict({
  /** What the hosts of this group are for; becomes the `role` tag. */
  role: name("role"),
  /** Where the data volume is mounted (no trailing slash); the engine's data-root lives under it. */
  dataMount: dataMount.default("/var/lib/dockyard"),
  /** Let containers reach the instance metadata service (IMDSv2 hop limit 2 instead of 1). */
  containerImds: z.boolean().default(false),
});

const HealthSchema = strict({
  /** HTTP path that answers 2xx when the service is healthy. */
  /**
   * HTTP path (and query) that answers 2xx when the service is healthy: RFC 3986 path and
   * query characters, without the ones HAProxy's configuration reads itself (quotes, '#'
   * starts a comment, '\\' escapes), as the proxy's `http-check send ... uri <path>` holds it.
   */
  path: z.string().regex(/^\/[A-Za-z0-9._~!$&()*+,;=:@%/?-]*$/, {
    error: "must be an HTTP path starting with /; allowed: letters, digits and . _ ~ ! $ & ( ) * + , ; = : @ % / ? - (no spaces, quotes, '#' or '\\')",
  }),
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
  env: record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, { error: "must be an env name in UPPER_SNAKE: A-Z, 0-9 and '_', not starting with a digit" }), envString("the variable's value")).prefault({}),
  /** Environment variable -> name of a secret in the stack file's dockyard:secrets. */
  secrets: record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, { error: "must be an env name in UPPER_SNAKE: A-Z, 0-9 and '_', not starting with a digit" }), name("secret")).prefault({}),
  /** Named volume -> mount path in the container; volumes live on the data volume. */
  volumes: record(name("volume"), absPath).prefault({}),
  restart: z.enum(["always", "unless-stopped", "on-failure"]).default("unless-stopped"),
  /** Memory limit in MiB. */
  memoryMb: int(16, 1048576).default(256),
  /** CPU limit in cores. */
  cpus: z.number().positive().max(256).default(1),
  /** User the process runs as; default: the image's. */
  user: z.string().regex(/^[0-9a-z_][0-9a-z_-]*(:[0-9a-z_][0-9a-z_-]*)?$/).optional(),
  readOnlyRootFilesystem: z.boolean().default(true),
  /** Most processes (threads count) the container may run: a fork bomb stops there (CIS 5.29). */
  pidsLimit: int(16, 65536).default(512),
});

/**
 * The per-host reverse proxy's container (it runs on every host of a group that publishes
 * a port). Its root filesystem is always read-only (the configuration is mounted).
 */
const ProxySchema = strict({
  /** CPU limit in cores (CIS 5.12). */
  cpus: z.number().positive().max(256).default(0.5),
  /** Memory limit in MiB. */
  memoryMb: int(16, 1048576).default(128),
  /** Most processes the proxy may run (CIS 5.29). */
  pidsLimit: int(16, 65536).default(128),
  /** uid:gid the proxy runs as, never root (CIS 4.1); default the official haproxy image's haproxy user. */
  user: z
    .string()
    .regex(/^[1-9][0-9]*:[1-9][0-9]*$/, { error: "must be a numeric uid:gid other than root, e.g. 99:99" })
    .default("99:99"),
});

export const EnvironmentFileSchema = strict({
  os: strict({
    family: z.enum(Object.keys(OS_FAMILIES) as [OsFamily, ...OsFamily[]]),
    architecture: z.enum(["x86_64", "arm64"]).default("x86_64"),
  }),
  engine: EngineSchema,
  hostGroups: record(name("host group"), HostGroupDefSchema),
  services: record(name("service"), ServiceDefSchema).prefault({}),
  proxy: ProxySchema.default(ProxySchema.parse({})),
  /**
   * How the fleet is run (issue 14): `static`, Pulumi places each replica on a host; `swarm`,
   * the stack's hosts form one Docker Swarm that places, reschedules and rolls the services.
   */
  fleet: strict({ mode: z.enum(["static", "swarm"]).default("static") }).default({ mode: "static" }),
});
export type EnvironmentFile = z.infer<typeof EnvironmentFileSchema>;
/** The managers of a swarm-mode stack outside dev (components/swarm.ts managerCount): 3 tolerate the loss of one. */
export const MAX_MANAGERS = 3;
/** environment.yaml `fleet.mode`. */
export type FleetMode = EnvironmentFile["fleet"]["mode"];

// ---------------------------------------------------------------------------------
// The per-stack knobs (stacks/Pulumi.<stack>.yaml, key `config:`)
// ---------------------------------------------------------------------------------

/**
 * Where a host group's hosts run: `aws`, EC2 VMs (components/host.ts); `local`, systemd
 * machine containers on the deployer's own Docker Engine (components/local-host.ts),
 * booted from the same user-data, for a dev server on a laptop (README "Run it on your laptop").
 */
export const HOST_PLATFORMS = ["aws", "local"] as const;
export type HostPlatform = (typeof HOST_PLATFORMS)[number];
/** The OS family of the local host image (components/local-host/Dockerfile): local hosts need an environment of it. */
export const LOCAL_HOST_OS = "debian-12";

const HostGroupKnobsSchema = strict({
  /** Where the hosts run (HOST_PLATFORMS); instanceType and the volume sizes only apply to aws. */
  platform: z.enum(HOST_PLATFORMS).default("aws"),
  /** EC2 instance type, e.g. t3.small. */
  instanceType: z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, { error: "must be an EC2 instance type like t3.small" }),
  /** Number of hosts in the group. */
  count: int(0, 50),
  rootVolumeGb: int(8, 16384, " GiB").default(20),
  dataVolumeGb: int(1, 16384, " GiB").default(20),
  /**
   * Hosts of the group a rollout changes at once (components/rollout.ts): a new engine
   * (host replacement), new containers or a new proxy reach the next batch only once every
   * host of this one serves again. Below `count` when the group has two hosts or more.
   */
  maxUnavailable: int(1, 49).default(1),
});

/**
 * Every key a stack file may set: the one list of stack knobs. `dockyard:` keys are the
 * project's (Pulumi.yaml declares each as stacks/knobs.ts knobDeclarations() says;
 * test/stacks/knobs.test.ts holds the two equal) and `aws:region` is the AWS provider's. Anything else is rejected,
 * so an environment difference cannot hide in a stack file. Each knob's description is its
 * one text: Pulumi.yaml's `description` and README's knob table (knobTable()) are it.
 */
/** How hosts are reached (components/connection.ts): through Session Manager, or SSH to their public address. */
export const HOST_ACCESS_MODES = ["ssm", "public"] as const;
export type HostAccessMode = (typeof HOST_ACCESS_MODES)[number];

export const StackKnobsSchema = strict({
  "aws:region": z
    .string()
    .regex(AWS_REGION_RE, { error: "must be an AWS region like eu-west-1" })
    .meta({ description: "AWS region of the stack's hosts, e.g. `eu-west-1`." }),
  "dockyard:registry": z
    .string()
    .refine((v) => registryProblem(v) === undefined, { error: (iss) => registryProblem(iss.input as string) })
    .meta({ description: "Image repository prefix `<registry host>/<namespace>`; each service's repository lives under it." }),
  "dockyard:createRepositories": configBoolean()
    .default(true)
    .meta({
      description:
        "Create and own the ECR repositories of `dockyard:registry` (one per service, and haproxy). `false` for a stack that shares another stack's registry and only pulls from it: a dev server copied from dev, the local stack.",
    }),
  "dockyard:hostGroups": record(z.string(), HostGroupKnobsSchema)
    .meta({ description: "Per host group (declared in `stacks/environment.yaml`): `instanceType`, `count`, `rootVolumeGb`, `dataVolumeGb`, `platform`: `aws` (default, EC2 VMs) or `local` (systemd containers on the deployer's Docker Engine, booted from the same user-data), and `maxUnavailable` (default 1): how many of the group's hosts a rollout (new engine, containers or proxy) changes at once, below `count`; the next batch starts once these serve again." }),
  "dockyard:zones": z
    .array(z.string().regex(AVAILABILITY_ZONE_RE, { error: "must be an availability zone name like eu-west-1a" }))
    .default([])
    .meta({
      description:
        "Availability zones of the EC2 hosts, in order: host n of every group is placed in zone n (wrapping around: host 4 of three zones is in the first), with its data volume, which cannot leave its zone. Required with EC2 hosts; a change moves hosts and gives each moved host a new, empty data volume (the old one is kept, detached), so change it only to move hosts.",
    }),
  "dockyard:hostAccess": z
    .enum(HOST_ACCESS_MODES)
    .default("ssm")
    .meta({
      description:
        "How Pulumi and operators reach the hosts: `ssm` (default) SSH carried over AWS Systems Manager Session Manager, the deployer's key pushed with EC2 Instance Connect, no inbound SSH needed; `public` SSH to each host's Elastic IP from `sshCidrs` with the key in `sshPublicKey`.",
    }),
  "dockyard:sshCidrs": z
    .array(cidr)
    .default([])
    .meta({ description: "IPv4 CIDRs allowed to reach SSH (22/tcp) on the hosts. Empty (the default): no inbound SSH at all (with hostAccess ssm)." }),
  "dockyard:ingressCidrs": z
    .array(cidr)
    .default([])
    .meta({ description: "IPv4 CIDRs allowed to reach the services' published ports on the front door (the load balancer); hosts accept those ports from the load balancer only." }),
  "dockyard:certificateArn": unsetIfEmpty(
    z
      .string()
      .regex(ACM_CERTIFICATE_ARN_RE, { error: "must be an ACM certificate ARN like arn:aws:acm:eu-west-1:123456789012:certificate/<uuid>" })
      .optional(),
  ).meta({ description: "ACM certificate ARN (in the stack's region) for the front door: set, each published port's listener is TLS with it (the load balancer ends TLS, hosts get plain TCP); empty (the default): TCP listeners." }),
  "dockyard:sshPublicKey": unsetIfEmpty(
    z
      .string()
      .refine((v) => parseSshPublicKey(v) !== undefined, { error: `must be ${SSH_KEY_ALLOWED}` })
      .optional(),
  ).meta({ description: "OpenSSH public key installed for the hosts' SSH user as an EC2 key pair (empty, the default: none; keys are pushed per connection with EC2 Instance Connect). Required with hostAccess public." }),
  "dockyard:images": record(z.string(), digest)
    .prefault({})
    .meta({
      description:
        "Service name -> image digest `sha256:<64 hex>` this stack runs. Changed by `npm run promote`. A service without one runs no container yet (a new stack's first deploy).",
    }),
  "dockyard:proxyImage": unsetIfEmpty(digest.optional()).meta({
    description:
      "Digest `sha256:<64 hex>` of the per-host reverse proxy (HAProxy) in `<registry>/haproxy`; until it is set, no host runs a proxy and published ports are not served.",
  }),
  "dockyard:replicas": record(z.string(), int(0, 100))
    .prefault({})
    .meta({ description: "Service name -> replica count for this stack (default from `stacks/environment.yaml`)." }),
  "dockyard:secrets": record(z.string(), envString("a secret's value"))
    .prefault({})
    .meta({ description: "Secret name -> value used by services; always set with `pulumi config set --secret --path 'dockyard:secrets.<name>'`." }),
});
export type StackKnobs = z.infer<typeof StackKnobsSchema>;

/** Keys that are per-stack knobs; the parity check allows exactly these to differ. */
export const KNOB_KEYS = Object.keys(StackKnobsSchema.shape) as (keyof StackKnobs)[];

// ---------------------------------------------------------------------------------
// The typed result: every field's type comes from the schemas above
// ---------------------------------------------------------------------------------

/** Spells out an intersection as one object type (editors then show its fields). */
type Flat<T> = { [K in keyof T]: T[K] } & {};

type HostGroupDef = EnvironmentFile["hostGroups"][string];
type ServiceDef = EnvironmentFile["services"][string];
type HostGroupKnobs = z.output<typeof HostGroupKnobsSchema>;

export type DaemonSettings = z.output<typeof DaemonSchema>;
export type HealthCheck = z.output<typeof HealthSchema>;
/** The per-host proxy's container settings (environment.yaml `proxy:`). */
export type ProxySettings = z.output<typeof ProxySchema>;
/** Channel, exact version to install and hold (undefined: distro without pin), daemon settings. */
export type EngineSpec = z.output<typeof EngineSchema>;

/** A host group: its definition in environment.yaml and this stack's knobs for it. */
export type HostGroupSpec = Flat<{ name: string } & HostGroupDef & HostGroupKnobs>;

/** A service: its definition in environment.yaml, resolved against this stack's knobs. */
export type ServiceSpec = Flat<
  {
    name: string;
    /** Full repository reference without digest: `<registry>/<repository>`. */
    repository: string;
    /** Image digest the stack runs. */
    digest: StackKnobs["dockyard:images"][string];
  } & Omit<ServiceDef, "repository">
>;

export interface EnvironmentSpec {
  project: string;
  stack: string;
  region: StackKnobs["aws:region"];
  os: Flat<EnvironmentFile["os"] & { info: OsFamilyInfo; sshUser: OsFamilyInfo["sshUser"] }>;
  engine: EngineSpec;
  /** The per-host proxy's container settings. */
  proxy: ProxySettings;
  access: {
    /** `ssm`: ssh through Session Manager to the instance id; `public`: ssh to the Elastic IP. */
    mode: HostAccessMode;
    sshCidrs: StackKnobs["dockyard:sshCidrs"];
    ingressCidrs: StackKnobs["dockyard:ingressCidrs"];
    sshPublicKey?: StackKnobs["dockyard:sshPublicKey"];
  };
  /** Availability zones of the EC2 hosts, in order: host n of each group in zone n (wrapping around); components/host.ts hostZone. */
  zones: StackKnobs["dockyard:zones"];
  /** ACM certificate of the front door's TLS listeners; unset: TCP listeners. */
  certificateArn?: StackKnobs["dockyard:certificateArn"];
  /** Repository prefix `<registry host>/<namespace>`. */
  registry: StackKnobs["dockyard:registry"];
  /** Whether this stack creates its registry's ECR repositories (false: another stack owns them). */
  createRepositories: boolean;
  /**
   * Declared services this stack has no digest for yet (`dockyard:images` leaves them out):
   * their repositories exist, no container runs. Not in `services`.
   */
  awaitingImage: Pick<ServiceSpec, "name" | "repository" | "group" | "publishPort">[];
  /** True when a service publishes a port but the stack has no proxy digest yet: no host runs a proxy. */
  proxyAwaitingImage: boolean;
  /** The per-host reverse proxy image `<registry>/haproxy@<digest>`; set when any service publishes a port. */
  proxyImage?: string;
  hostGroups: HostGroupSpec[];
  services: ServiceSpec[];
  /** environment.yaml `fleet.mode`: static placement by Pulumi, or a Docker Swarm (components/swarm.ts). */
  fleetMode: FleetMode;
  /** Secret name -> value. Plain strings here; components wrap them as Pulumi secrets. */
  secrets: StackKnobs["dockyard:secrets"];
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
    const path = keyPath(iss.path);
    let message = iss.message;
    if (iss.code === "invalid_type" && /received undefined/.test(iss.message)) {
      message = `missing; required (${iss.message.replace(/^Invalid input: /, "").replace(/, received undefined/, "")})`;
    } else if (iss.code === "invalid_type" && /^Invalid input: expected/.test(iss.message)) {
      // zod's default wording ("expected array, received string") in an operator's words.
      const received = /received (\w+)/.exec(iss.message)?.[1] ?? "";
      message = `must be ${KIND_NAMES[iss.expected] ?? iss.expected} (got ${KIND_NAMES[received] ?? received})`;
    } else if (iss.code === "invalid_key") {
      // A record's key failed its rule: say the rule (what is allowed), not "Invalid key in record".
      message = iss.issues.map((i) => i.message).join("; ");
    } else if (iss.code === "unrecognized_keys" && /^Unrecognized key/.test(iss.message)) {
      // A mapping with a fixed set of names (defaultUlimits): name the allowed ones.
      const allowed = allowedKeysAt(iss.path);
      message = `unknown key ${iss.keys.map((k) => JSON.stringify(k)).join(", ")}${allowed ? `; allowed: ${allowed}` : ""}`;
    }
    return path ? `${where}: ${path}: ${message}` : `${where}: ${message}`;
  });
}

const KIND_NAMES: Record<string, string> = { array: "a list", object: "a mapping", record: "a mapping", string: "a string", number: "a number", boolean: "true or false" };
/** What a YAML value is, in an operator's words. */
function kindOf(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return `${KIND_NAMES[typeof v] ?? typeof v} ${JSON.stringify(v)}`.slice(0, 80);
}

/** The names a fixed-key mapping allows, by the path zod reports an unknown key at. */
function allowedKeysAt(path: PropertyKey[]): string | undefined {
  return path.at(-1) === "defaultUlimits" ? ULIMIT_NAMES.join(", ") : undefined;
}

export interface RawStackFile {
  /** The `config:` mapping of the stack file (secure values as `{ secure: ... }` or decrypted strings). */
  config: Record<string, unknown>;
  /**
   * True when `config` holds the values the Pulumi engine handed the program (secrets
   * decrypted); otherwise it is the file as committed, where each secret must be a secure value.
   */
  decrypted?: boolean;
  /** With `decrypted`: the stack file's `config:` as committed, whose secrets are checked instead. */
  committed?: Record<string, unknown>;
  /** Other top-level keys of the stack file. */
  other?: Record<string, unknown>;
}

/** Where a problem is: the stack's two files, as every message names them. */
interface Where {
  stack: string;
  /** `stack "<stack>": stacks/environment.yaml` */
  env: string;
  /** `stack "<stack>": stacks/Pulumi.<stack>.yaml` */
  stackFile: string;
}

/** The result of one parse step: the value (well-formed parts only when not ok) and its problems. */
interface Parsed<T> {
  ok: boolean;
  value: T;
  problems: string[];
}

/**
 * Parses the environment definition and a stack's knobs into one EnvironmentSpec.
 * Throws ConfigError listing every problem found.
 *
 * The steps: check the stack file's top-level keys, parse environment.yaml, read the
 * stack's config values (secure values as placeholders), parse the knobs, check what
 * the two files say about each other, then resolve host groups and services. Cross
 * references are checked even when a field failed to parse, on whatever is well-formed,
 * so one run reports every problem.
 */
export function parseEnvironment(stack: string, envDoc: unknown, stackFile: RawStackFile): EnvironmentSpec {
  const nameProblem = stackNameProblem(stack);
  if (nameProblem) throw new ConfigError(stack, [nameProblem]);
  const at: Where = { stack, env: `stack "${stack}": stacks/environment.yaml`, stackFile: `stack "${stack}": stacks/Pulumi.${stack}.yaml` };
  const reserved: string[] = [];
  const env = parseEnvironmentFile(at, withoutReservedKeys(envDoc ?? {}, `${at.env}: `, reserved));
  const config = readConfigValues(at, withoutReservedKeys(stackFile.config ?? {}, `${at.stackFile}: config.`, reserved) as Record<string, unknown>, stackFile);
  const knobs = parseKnobs(at, config.value, config.problems);
  const problems = [
    ...reserved,
    ...topLevelKeyProblems(at, stackFile),
    ...env.problems,
    ...config.problems,
    ...knobs.problems,
    ...crossReferenceProblems(at, env.value, knobs.value, knobs.ok),
  ];
  if (problems.length > 0 || !env.ok || !knobs.ok) throw new ConfigError(stack, problems);
  return resolveSpec(stack, env.value, knobs.value);
}

const STACK_FILE_TOP_KEYS = new Set(["config", "encryptionsalt", "secretsprovider", "encryptedkey"]);

/** A stack file holds `config:` and Pulumi's own encryption keys, nothing else. */
function topLevelKeyProblems(at: Where, stackFile: RawStackFile): string[] {
  return Object.keys(stackFile.other ?? {})
    .filter((k) => !STACK_FILE_TOP_KEYS.has(k))
    .map((k) => `${at.stackFile}: ${k}: unknown top-level key; allowed: ${[...STACK_FILE_TOP_KEYS].join(", ")}`);
}

/** environment.yaml against its schema; when it fails, its well-formed parts. */
function parseEnvironmentFile(at: Where, envDoc: unknown): Parsed<EnvironmentFile> {
  const parsed = EnvironmentFileSchema.safeParse(envDoc ?? {});
  return parsed.success
    ? { ok: true, value: parsed.data, problems: [] }
    : { ok: false, value: looseEnvironment(envDoc), problems: zodProblems(at.env, parsed.error) };
}

/**
 * The stack's config values. Secure values appear as { secure: "..." } when read from the
 * file without decryption: in dockyard:secrets they stand as SECRET_PLACEHOLDER, anywhere
 * else they are refused.
 */
function readConfigValues(at: Where, raw: Record<string, unknown>, source: Pick<RawStackFile, "decrypted" | "committed">): Parsed<Record<string, unknown>> {
  const config: Record<string, unknown> = Object.assign(Object.create(null), raw);
  const committed = source.decrypted ? (source.committed ?? {}) : raw;
  const rawSecrets = config["dockyard:secrets"];
  if (isMap(rawSecrets) && !source.decrypted) {
    // Read from the file: a secret's value is its ciphertext, standing as the placeholder. A
    // plaintext or malformed one is reported once, by committedSecretProblems, not again as a type.
    const stands = (v: unknown) => isSecureValue(v) || typeof v === "string" || (isMap(v) && "secure" in v);
    config["dockyard:secrets"] = Object.assign(
      Object.create(null),
      Object.fromEntries(Object.entries(rawSecrets).map(([k, v]) => [k, stands(v) ? SECRET_PLACEHOLDER : v])),
    );
  }
  const misplaced = Object.keys(committed).filter((k) => isSecureValue(committed[k]) && k !== "dockyard:secrets");
  for (const k of misplaced) delete config[k];
  const problems = [
    ...misplaced.map((k) => `${at.stackFile}: config.${k}: only dockyard:secrets may hold secure values`),
    ...committedSecretProblems(at, committed["dockyard:secrets"]),
  ];
  return { ok: problems.length === 0, value: config, problems };
}

/**
 * A committed stack file holds each secret as Pulumi's ciphertext `{ secure: ... }`: a
 * plaintext value would be in git for anyone to read (Pulumi itself would take it, as a
 * plain config value).
 */
function committedSecretProblems(at: Where, secrets: unknown): string[] {
  if (!isMap(secrets)) return [];
  const setIt = (k: string) => `npx pulumi config set --secret --path 'dockyard:secrets.${k}' VALUE --stack ${at.stack}`;
  return Object.entries(secrets).flatMap(([k, v]) => {
    if (isSecureValue(v)) return [];
    if (isMap(v) && "secure" in v) return [`${at.stackFile}: config.dockyard:secrets.${k}: is not a secure value (secure: must be Pulumi's ciphertext string, alone); set it again with: ${setIt(k)}`];
    if (typeof v === "string") return [`${at.stackFile}: config.dockyard:secrets.${k}: is plaintext; allowed: a secure value, never the secret itself in a committed file (remove it, rotate it if it was pushed, and set it with: ${setIt(k)})`];
    return [];
  });
}

/** Keys no mapping may use: JavaScript would take `__proto__` as the object's prototype (zod drops it without a word). */
const RESERVED_KEYS = new Set(["__proto__"]);

/** A copy of a document without reserved keys, each one reported on `problems` with its path. */
function withoutReservedKeys(v: unknown, prefix: string, problems: string[], path = ""): unknown {
  if (Array.isArray(v)) return v.map((x, i) => withoutReservedKeys(x, prefix, problems, path ? `${path}.${i}` : String(i)));
  if (!isMap(v)) return v;
  const out = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(v)) {
    const p = path ? `${path}.${k}` : k;
    if (RESERVED_KEYS.has(k)) {
      problems.push(`${prefix}${p}: the key "${k}" is not allowed (JavaScript reserves it for an object's prototype); use another name`);
    } else {
      out[k] = withoutReservedKeys(v[k], prefix, problems, p);
    }
  }
  return out;
}

/** The stack's knobs against StackKnobsSchema; when they fail, their well-formed parts. */
function parseKnobs(at: Where, config: Record<string, unknown>, reported: string[] = []): Parsed<StackKnobs> {
  const parsed = StackKnobsSchema.safeParse(config);
  if (parsed.success) return { ok: true, value: parsed.data, problems: [] };
  const problems = zodProblems(at.stackFile, parsed.error)
    .map((p) =>
      p.startsWith(`${at.stackFile}: dockyard:`) || p.startsWith(`${at.stackFile}: aws:`)
        ? p.replace(`${at.stackFile}: `, `${at.stackFile}: config.`)
        : p.replace(`${at.stackFile}: `, `${at.stackFile}: config: `),
    )
    // A key readConfigValues already reported (a secure value out of place) is not reported again as missing.
    .filter((p) => !reported.some((r) => p.startsWith(`${r.slice(0, r.indexOf(": ", at.stackFile.length + 2))}: `)));
  return { ok: false, value: looseKnobs(config), problems };
}

// ---------------------------------------------------------------------------------
// What the two files say about each other (a per-field schema cannot see it)
// ---------------------------------------------------------------------------------

function crossReferenceProblems(at: Where, env: EnvironmentFile, knobs: StackKnobs, knobsOk: boolean): string[] {
  return [
    ...serviceProblems(at, env, knobs),
    ...repositoryProblems(at, env),
    ...publishPortProblems(at, env),
    ...engineProblems(at, env),
    ...hostGroupProblems(at, env, knobs),
    ...fleetModeProblems(at, env, knobs),
    ...accessProblems(at, knobs),
    ...zoneProblems(at, env, knobs),
    ...certificateProblems(at, knobs),
    ...imageAndReplicaProblems(at, env, knobs, knobsOk),
    ...unusedSecretProblems(at, env, knobs),
  ];
}

/**
 * Swarm mode's needs of the stack (components/swarm.ts): an odd number of managers, 3 unless
 * the stack is dev (one manager lost is the control plane lost: no rescheduling, no
 * updates), so at least 3 hosts; and hosts of one platform (a local machine container cannot
 * reach an EC2 host's private address).
 */
function fleetModeProblems(at: Where, env: EnvironmentFile, knobs: StackKnobs): string[] {
  if (env.fleet?.mode !== "swarm") return [];
  const p: string[] = [];
  const groups = Object.keys(env.hostGroups).filter((g) => Object.hasOwn(knobs["dockyard:hostGroups"], g));
  const counts = groups.map((g) => knobs["dockyard:hostGroups"][g]?.count).filter((c): c is number => Number.isInteger(c));
  const hosts = counts.reduce((a, b) => a + b, 0);
  const platforms = new Set(groups.map((g) => knobs["dockyard:hostGroups"][g]?.platform ?? "aws"));
  const developers = at.stack === "dev" || (platforms.size === 1 && platforms.has("local"));
  if (counts.length === groups.length && hosts < MAX_MANAGERS && !developers) {
    const file = at.stackFile.replace(/^stack "[^"]*": /, "");
    p.push(
      `${at.env}: fleet.mode: swarm needs ${MAX_MANAGERS} managers over availability zones, so at least ${MAX_MANAGERS} hosts, and this stack has ${hosts} (${file}: config.dockyard:hostGroups.<group>.count); one manager is allowed only in dev and on local hosts; allowed: more hosts, or fleet.mode static`,
    );
  }
  if (platforms.size > 1) {
    p.push(`${at.stackFile}: config.dockyard:hostGroups: fleet.mode swarm puts every host in one swarm, and local hosts cannot reach EC2 hosts; allowed: every group on one platform (aws or local)`);
  }
  return p;
}

/** Host groups exist, each service names one, and its secrets are set in the stack. */
function serviceProblems(at: Where, env: EnvironmentFile, knobs: StackKnobs): string[] {
  const p: string[] = [];
  const groupNames = Object.keys(env.hostGroups);
  if (groupNames.length === 0) p.push(`${at.env}: hostGroups: must declare at least one host group`);
  for (const [svc, def] of Object.entries(env.services)) {
    if (!Object.hasOwn(env.hostGroups, def.group)) {
      p.push(`${at.env}: services.${svc}.group: unknown host group "${def.group}"; declared groups: ${listOrNone(groupNames)}`);
    }
    for (const [envName, secretName] of Object.entries(def.secrets)) {
      if (!Object.hasOwn(knobs["dockyard:secrets"], secretName)) {
        p.push(
          `${at.stackFile}: config.dockyard:secrets.${secretName}: missing; service "${svc}" needs it for ${envName} (set it with: npx pulumi config set --secret --path 'dockyard:secrets.${secretName}' VALUE --stack ${at.stack})`,
        );
      }
      if (Object.hasOwn(def.env, envName)) p.push(`${at.env}: services.${svc}.secrets.${envName}: also set in env; a variable is either plain or secret`);
    }
  }
  return p;
}

/**
 * One repository per service: each service's repository is created, pinned and promoted on
 * its own, and a host holds one image resource per service (removed when its digest moves
 * on, which Docker refuses while another service's container still uses it). The proxy's
 * name and repository are nobody else's.
 */
function repositoryProblems(at: Where, env: EnvironmentFile): string[] {
  const p: string[] = [];
  const repositoryOwner = new Map<string, string>();
  for (const [svc, def] of Object.entries(env.services)) {
    const repo = def.repository ?? svc;
    const other = repositoryOwner.get(repo);
    if (other !== undefined && repo !== PROXY_REPOSITORY) p.push(`${at.env}: services.${svc}.repository: "${repo}" is already service "${other}"'s repository; each service has its own`);
    repositoryOwner.set(repo, svc);
    if (svc === PROXY_REPOSITORY) {
      p.push(`${at.env}: services.${svc}: "${PROXY_REPOSITORY}" names the per-host proxy (dockyard:proxyImage, in <registry>/${PROXY_REPOSITORY}); give the service another name`);
    } else if (repo === PROXY_REPOSITORY) {
      p.push(`${at.env}: services.${svc}.repository: "${PROXY_REPOSITORY}" is the per-host proxy's repository (dockyard:proxyImage); use another repository`);
    }
  }
  return p;
}

/** Published ports: never Docker's API ports or SSH, and one service per port in a group. */
function publishPortProblems(at: Where, env: EnvironmentFile): string[] {
  const p: string[] = [];
  const published = new Map<number, string>();
  for (const [svc, def] of Object.entries(env.services)) {
    if (def.publishPort === undefined) continue;
    if (def.publishPort === 2375 || def.publishPort === 2376) {
      p.push(`${at.env}: services.${svc}.publishPort: 2375/2376 are Docker API ports and are never published`);
    }
    if (def.publishPort === 22) p.push(`${at.env}: services.${svc}.publishPort: 22 is reserved for SSH`);
    const other = published.get(def.publishPort);
    if (other && env.services[other].group === def.group) {
      p.push(`${at.env}: services.${svc}.publishPort: ${def.publishPort} is already published by service "${other}" in group "${def.group}"`);
    }
    published.set(def.publishPort, svc);
  }
  return p;
}

/** Channel docker-ce: offered for the OS family (dockerCeOffered), with an exact version built for its codename. */
function engineProblems(at: Where, env: EnvironmentFile): string[] {
  if (env.engine.channel !== "docker-ce") return [];
  const p: string[] = [];
  const info = OS_FAMILIES[env.os.family] ?? OS_FAMILIES["debian-12"];
  if (!dockerCeOffered(info)) p.push(`${at.env}: engine.channel: docker-ce is not offered for ${env.os.family}; use "distro"`);
  if (!env.engine.version) {
    p.push(`${at.env}: engine.version: required for channel docker-ce (an exact apt version like 5:28.5.1-1~${info.distro}.12~${info.codename ?? "codename"})`);
  } else if (info.codename && !env.engine.version.endsWith(`~${info.codename}`)) {
    p.push(`${at.env}: engine.version: "${env.engine.version}" is not a ${info.codename} build; docker-ce versions for ${env.os.family} end in ~${info.codename}`);
  }
  return p;
}

/** A host name is a DNS label: it is the host's hostname. */
const HOST_NAME_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/**
 * The stack's host groups against the declared ones, and what AWS would refuse at
 * `pulumi up`: too many inbound rules, an instance type of the other architecture, host
 * names that are not DNS labels, too long, or make security group names start with sg-.
 */
function hostGroupProblems(at: Where, env: EnvironmentFile, knobs: StackKnobs): string[] {
  const p: string[] = [];
  const groupNames = Object.keys(env.hostGroups);
  for (const g of Object.keys(knobs["dockyard:hostGroups"])) {
    if (!Object.hasOwn(env.hostGroups, g)) p.push(`${at.stackFile}: config.dockyard:hostGroups.${g}: unknown host group; declared groups: ${listOrNone(groupNames)}`);
  }
  // Names that failed their own rule are reported once, there, not again as host names.
  for (const g of groupNames.filter((n) => NAME_RE.test(n))) {
    const where = `${at.stackFile}: config.dockyard:hostGroups.${g}`;
    // EC2 counts each CIDR of a rule as one rule, and a rule whose source is a security group
    // as one, at most 60 inbound per security group (Amazon VPC quotas, "Inbound or outbound
    // rules per security group"). An EC2 group with published ports has two groups (issue 13):
    // each host's (components/host.ts hostIngressRules: sshCidrs, then one rule per port from
    // the front door's group) and its front door's (components/front-door.ts
    // frontDoorIngressRules: each port from every ingressCidr). A local group has none.
    const ports = new Set(Object.values(env.services).filter((d) => d.group === g && d.publishPort !== undefined).map((d) => d.publishPort));
    const sshCidrs = Array.isArray(knobs["dockyard:sshCidrs"]) ? new Set(knobs["dockyard:sshCidrs"]).size : 0;
    const ingressCidrs = Array.isArray(knobs["dockyard:ingressCidrs"]) ? new Set(knobs["dockyard:ingressCidrs"]).size : 0;
    if (knobs["dockyard:hostGroups"][g]?.platform !== "local") {
      const hostInbound = sshCidrs + ports.size;
      if (hostInbound > SECURITY_GROUP_INBOUND_RULES) {
        p.push(
          `${at.stackFile}: config.dockyard:sshCidrs: each host of group "${g}" would need ${hostInbound} inbound security group rules (${sshCidrs} sshCidrs + ${ports.size} published ports from the front door); EC2 allows at most ${SECURITY_GROUP_INBOUND_RULES}: use fewer or wider CIDRs`,
        );
      }
      const doorInbound = ports.size * ingressCidrs;
      if (doorInbound > SECURITY_GROUP_INBOUND_RULES) {
        p.push(
          `${at.stackFile}: config.dockyard:ingressCidrs: the front door of host group "${g}" would need ${doorInbound} inbound security group rules (${ports.size} published ports x ${ingressCidrs} ingressCidrs); EC2 allows at most ${SECURITY_GROUP_INBOUND_RULES}: use fewer or wider CIDRs`,
        );
      }
    }
    const type = knobs["dockyard:hostGroups"][g]?.instanceType;
    if (typeof type === "string" && env.os?.architecture && instanceArchitecture(type) !== env.os.architecture) {
      p.push(
        `${where}.instanceType: ${type} is an ${instanceArchitecture(type)} instance type, but stacks/environment.yaml os.architecture is ${env.os.architecture} (EC2 refuses an AMI of the other architecture); allowed: an ${env.os.architecture} type${env.os.architecture === "arm64" ? " (Graviton: c7g, m7g, t4g, ...)" : " (not a Graviton type such as c7g or t4g)"}`,
      );
    }
    const count = knobs["dockyard:hostGroups"][g]?.count;
    const longest = hostNameFor(at.stack, g, Number.isInteger(count) && (count as number) > 0 ? (count as number) : 1);
    if (!HOST_NAME_RE.test(longest)) {
      p.push(`${where}: host names '<stack>-<group>-<n>' ("${longest}") are the hosts' hostnames and must be DNS labels: a-z, 0-9 and '-' inside; use a lower-case stack name of a-z, 0-9 and '-'`);
    }
    if (/^sg-/.test(longest)) {
      p.push(`${where}: host names begin with "sg-", and so would each host's security group name, which EC2 refuses (CreateSecurityGroup: names cannot start with sg-): use another stack name`);
    }
    if (longest.length > HOST_NAME_MAX_LENGTH) {
      p.push(
        `${where}: host names '<stack>-<group>-<n>' reach ${longest.length} characters ("${longest}"); at most ${HOST_NAME_MAX_LENGTH} are allowed (each host's IAM role is '<host>-role' plus Pulumi's 8-character random suffix, and IAM role names end at 64): use a shorter stack or group name`,
      );
    }
    if (knobs["dockyard:hostGroups"][g]?.platform === "local" && env.os?.family && env.os.family !== LOCAL_HOST_OS) {
      p.push(`${where}.platform: local hosts run the local host image (components/local-host/Dockerfile, ${LOCAL_HOST_OS}), but stacks/environment.yaml os.family is ${env.os.family}; allowed: aws, or os.family ${LOCAL_HOST_OS}`);
    }
    const maxUnavailable = knobs["dockyard:hostGroups"][g]?.maxUnavailable;
    if (Number.isInteger(count) && (count as number) >= 2 && Number.isInteger(maxUnavailable) && (maxUnavailable as number) >= (count as number)) {
      p.push(`${where}.maxUnavailable: ${maxUnavailable} would roll all ${count} hosts of the group at once (every replica and proxy down together); allowed: 1 to ${(count as number) - 1}`);
    }
    if (!Object.hasOwn(knobs["dockyard:hostGroups"], g)) p.push(`${where}: missing; every host group needs instanceType and count`);
  }
  return p;
}

/**
 * Images and replica counts name declared services, and every service has hosts for its
 * replicas. A service without a digest, or a stack without the proxy's, is not a mistake:
 * it is a new stack before its first images (README "The first deploy of a new stack").
 */
function imageAndReplicaProblems(at: Where, env: EnvironmentFile, knobs: StackKnobs, knobsOk: boolean): string[] {
  const p: string[] = [];
  const serviceNames = Object.keys(env.services);
  for (const key of ["dockyard:images", "dockyard:replicas"] as const) {
    for (const s of Object.keys(knobs[key])) {
      if (!Object.hasOwn(env.services, s)) p.push(`${at.stackFile}: config.${key}.${s}: unknown service; declared services: ${listOrNone(serviceNames)}`);
    }
  }
  for (const [s, def] of Object.entries(env.services)) {
    const replicas = knobs["dockyard:replicas"][s] ?? def.replicas;
    const hosts = knobs["dockyard:hostGroups"][def.group]?.count;
    if (replicas > 0 && hosts === 0) {
      p.push(`${at.stackFile}: config.dockyard:hostGroups.${def.group}.count: is 0 but service "${s}" needs ${replicas} replica(s) on that group`);
    }
  }
  return p;
}

/**
 * `hostAccess: public` dials each host's address on 22 with the deployer's own key: it
 * needs somewhere to dial from (sshCidrs) and a key on the hosts (sshPublicKey), or no
 * `pulumi up` could ever reach a host.
 */
function accessProblems(at: Where, knobs: StackKnobs): string[] {
  if (knobs["dockyard:hostAccess"] !== "public") return [];
  const p: string[] = [];
  if (Array.isArray(knobs["dockyard:sshCidrs"]) && knobs["dockyard:sshCidrs"].length === 0) {
    p.push(`${at.stackFile}: config.dockyard:sshCidrs: empty, but hostAccess is public (SSH to the hosts' addresses); allowed: the CIDRs Pulumi runs from, or hostAccess ssm`);
  }
  if (!knobs["dockyard:sshPublicKey"]) {
    p.push(`${at.stackFile}: config.dockyard:sshPublicKey: missing, but hostAccess is public (no EC2 Instance Connect push); allowed: ${SSH_KEY_ALLOWED}, or hostAccess ssm`);
  }
  return p;
}

/**
 * `dockyard:zones` (issue 24 item 6): the zones EC2 hosts are placed in, named, so a change of
 * the region's default subnets never moves a host (an EBS volume's availability_zone is
 * ForceNew: terraform-provider-aws internal/service/ec2/ebs_volume.go). Required with EC2
 * hosts; each one a zone of the stack's region, listed once.
 */
function zoneProblems(at: Where, env: EnvironmentFile, knobs: StackKnobs): string[] {
  const zones = knobs["dockyard:zones"];
  if (!Array.isArray(zones)) return [];
  const region = knobs["aws:region"];
  const where = `${at.stackFile}: config.dockyard:zones`;
  const example = typeof region === "string" ? `${region}a, ${region}b, ${region}c` : "eu-west-1a, eu-west-1b, eu-west-1c";
  const p: string[] = [];
  const ec2Hosts = Object.keys(env.hostGroups).some((g) => (knobs["dockyard:hostGroups"][g]?.platform ?? "aws") === "aws" && (knobs["dockyard:hostGroups"][g]?.count ?? 0) > 0);
  if (ec2Hosts && zones.length === 0) {
    p.push(`${where}: missing; EC2 hosts are placed in the zones it names (host n of each group in zone n), so a new default subnet never moves a host off its data volume; allowed: availability zones of ${region}, e.g. [${example}] (to keep hosts where they are: the zones of the region's default subnets, in alphabetical order)`);
  }
  zones.forEach((z, i) => {
    // A malformed zone or region is reported once, by its own rule.
    if (typeof z !== "string" || !AVAILABILITY_ZONE_RE.test(z)) return;
    if (typeof region === "string" && AWS_REGION_RE.test(region) && !new RegExp(`^${region}[a-z]$`).test(z)) p.push(`${where}.${i}: ${z} is not an availability zone of the stack's region ${region}; allowed: ${region} and one letter, e.g. ${region}a`);
    if (zones.indexOf(z) !== i) p.push(`${where}.${i}: ${z} is listed twice; allowed: each zone once`);
  });
  return p;
}

/** A load balancer's listener uses an ACM certificate of its own region only. */
function certificateProblems(at: Where, knobs: StackKnobs): string[] {
  const arn = knobs["dockyard:certificateArn"];
  const region = typeof arn === "string" ? arn.split(":")[3] : undefined;
  if (!region || region === knobs["aws:region"]) return [];
  return [`${at.stackFile}: config.dockyard:certificateArn: the certificate is in ${region}, but the stack's load balancer is in ${knobs["aws:region"]}; allowed: an ACM certificate of ${knobs["aws:region"]}`];
}

/** A secret the stack sets that no service uses is a mistake (a typo, or a leftover). */
function unusedSecretProblems(at: Where, env: EnvironmentFile, knobs: StackKnobs): string[] {
  const used = new Set(Object.values(env.services).flatMap((d) => Object.values(d.secrets)));
  return Object.keys(knobs["dockyard:secrets"])
    .filter((s) => !used.has(s))
    .map((s) => `${at.stackFile}: config.dockyard:secrets.${s}: not used by any service`);
}

// ---------------------------------------------------------------------------------
// Resolving the checked files into the spec
// ---------------------------------------------------------------------------------

function resolveSpec(stack: string, env: EnvironmentFile, knobs: StackKnobs): EnvironmentSpec {
  const info = OS_FAMILIES[env.os.family];
  const declared = resolveServices(env, knobs);
  return {
    project: PROJECT,
    stack,
    region: knobs["aws:region"],
    os: { ...env.os, info, sshUser: info.sshUser },
    engine: { channel: env.engine.channel, version: env.engine.version, daemon: env.engine.daemon, audit: env.engine.audit, apparmor: env.engine.apparmor },
    proxy: env.proxy,
    access: {
      mode: knobs["dockyard:hostAccess"],
      sshCidrs: knobs["dockyard:sshCidrs"],
      ingressCidrs: knobs["dockyard:ingressCidrs"],
      sshPublicKey: knobs["dockyard:sshPublicKey"],
    },
    zones: knobs["dockyard:zones"],
    registry: knobs["dockyard:registry"],
    ...(knobs["dockyard:certificateArn"] ? { certificateArn: knobs["dockyard:certificateArn"] } : {}),
    createRepositories: knobs["dockyard:createRepositories"],
    proxyImage: knobs["dockyard:proxyImage"] ? `${proxyRepository(knobs["dockyard:registry"])}@${knobs["dockyard:proxyImage"]}` : undefined,
    hostGroups: resolveHostGroups(env, knobs),
    services: declared.filter((x): x is ServiceSpec => x.digest !== undefined),
    fleetMode: env.fleet.mode,
    awaitingImage: declared
      .filter((x) => x.digest === undefined)
      .map(({ name, repository, group, publishPort }) => ({ name, repository, group, ...(publishPort !== undefined ? { publishPort } : {}) })),
    proxyAwaitingImage: !knobs["dockyard:proxyImage"] && Object.values(env.services).some((d) => d.publishPort !== undefined),
    secrets: knobs["dockyard:secrets"],
  };
}

/** Each declared host group with this stack's knobs for it, in environment.yaml's order. */
function resolveHostGroups(env: EnvironmentFile, knobs: StackKnobs): HostGroupSpec[] {
  return Object.entries(env.hostGroups).map(([name, def]) => ({ name, ...def, ...knobs["dockyard:hostGroups"][name] }));
}

/** Each declared service with its full repository, this stack's digest and replica count. */
function resolveServices(env: EnvironmentFile, knobs: StackKnobs): (Omit<ServiceSpec, "digest"> & { digest: string | undefined })[] {
  return Object.entries(env.services).map(([name, { group, repository, replicas, ...def }]) => ({
    name,
    group,
    repository: `${knobs["dockyard:registry"]}/${repository ?? name}`,
    digest: Object.hasOwn(knobs["dockyard:images"], name) ? knobs["dockyard:images"][name] : undefined,
    replicas: knobs["dockyard:replicas"][name] ?? replicas,
    ...def,
  }));
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
/** A mapping's own entries on a null-prototype object; {} for anything else. */
const mapOf = (v: unknown): Record<string, unknown> => Object.assign(Object.create(null), isMap(v) ? v : {});
/** Names as a message lists them; "(none)" for none. */
const listOrNone = (names: readonly string[]): string => names.join(", ") || "(none)";

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

/** A Pulumi secure value as a stack file holds it, `{ secure: "<ciphertext>" }` (not decrypted). */
export function isSecureValue(v: unknown): boolean {
  return isMap(v) && Object.keys(v).length === 1 && typeof v.secure === "string" && v.secure.length > 0;
}
