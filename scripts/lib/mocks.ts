/**
 * Pulumi mock runtime shared by the offline plan, the parity diff and the tests.
 *
 * Every resource the program registers is recorded with its inputs. Values that only
 * the cloud knows (ids, addresses, ARNs) come back as `computed(<name>.<field>)` so a
 * test can see which resource a reference points at, and the plan prints them as
 * `(computed)`. Provider function calls are answered from a table keyed by token; an
 * unexpected token fails loudly instead of echoing its inputs.
 */
import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";

/** A resource as the program registered it. */
export interface RecordedResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  custom: boolean;
  provider?: string;
  id: string;
}

/** A provider function call the program made. */
export interface RecordedCall {
  token: string;
  inputs: Record<string, unknown>;
}

/**
 * A well-formed but fabricated ed25519 public key (OpenSSH wire format), for code that
 * validates host keys. Its first 24 key bytes are a fixed marker, so every fabricated
 * key shares a base64 prefix that COMPUTED_RE recognises.
 */
const MOCK_KEY_MARKER = Buffer.from("dockyard-mock-host-key:0");
function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}
function mockSshPublicKeyBlob(name: string): Buffer {
  const tail = crypto.createHash("sha256").update(name).digest().subarray(0, 8);
  return Buffer.concat([sshString(Buffer.from("ssh-ed25519")), sshString(Buffer.concat([MOCK_KEY_MARKER, tail]))]);
}
export function mockSshPublicKey(name: string): string {
  return `ssh-ed25519 ${mockSshPublicKeyBlob(name).toString("base64")}`;
}
// 19 header bytes + 24 marker bytes = 43: the first 14 base64 groups (42 bytes) are fixed.
const MOCK_KEY_PREFIX = mockSshPublicKeyBlob("").toString("base64").slice(0, 56);

export const COMPUTED_RE = new RegExp(
  String.raw`computed\([^()]*\)|vol-?computed-[a-z0-9-]+|ssh-ed25519 ${MOCK_KEY_PREFIX.replace(/[+/]/g, "\\$&")}[A-Za-z0-9+/=]*`,
  "g",
);
/** The stand-in for a value only the cloud knows. */
export function computed(name: string, field: string): string {
  return `computed(${name}.${field})`;
}
/** True if a value is (or contains) a stand-in for a cloud-computed value. */
export function isComputed(v: unknown): boolean {
  return typeof v === "string" && new RegExp(COMPUTED_RE.source).test(v);
}

/**
 * The id a resource gets under mocks. EBS volume ids end up in device paths
 * (/dev/disk/by-id/...), so they are path-safe while still recognisable as computed.
 */
function fabricatedId(type: string, name: string): string {
  if (type === "aws:ebs/volume:Volume") return `vol-computed-${name}`;
  return computed(name, "id");
}

/** Output properties each resource type gets from the cloud, beyond its inputs. */
export const COMPUTED_OUTPUTS: Record<string, string[]> = {
  "aws:ec2/instance:Instance": ["arn", "publicIp", "privateIp", "publicDns", "privateDns", "primaryNetworkInterfaceId"],
  "aws:ec2/eip:Eip": ["arn", "publicIp", "allocationId", "publicDns"],
  // Read after the association exists (terraform-provider-aws ec2_eip_association.go).
  "aws:ec2/eipAssociation:EipAssociation": ["publicIp", "networkInterfaceId", "privateIpAddress"],
  "aws:ec2/securityGroup:SecurityGroup": ["arn", "ownerId"],
  "aws:ebs/volume:Volume": ["arn"],
  "aws:ec2/keyPair:KeyPair": ["arn", "fingerprint", "keyPairId", "keyName"],
  "aws:iam/role:Role": ["arn", "uniqueId", "name"],
  "aws:iam/instanceProfile:InstanceProfile": ["arn", "uniqueId", "name"],
  "aws:iam/policy:Policy": ["arn", "policyId"],
  "aws:ssm/parameter:Parameter": ["arn", "version"],
  "aws:kms/key:Key": ["arn", "keyId"],
  "aws:ecr/repository:Repository": ["arn", "registryId", "repositoryUrl"],
  "aws:lb/loadBalancer:LoadBalancer": ["arn", "arnSuffix", "dnsName", "zoneId"],
  "aws:lb/targetGroup:TargetGroup": ["arn", "arnSuffix"],
  "aws:lb/listener:Listener": ["arn"],
  "aws:sns/topic:Topic": ["arn"],
  "aws:cloudwatch/metricAlarm:MetricAlarm": ["arn"],
  "tls:index/privateKey:PrivateKey": ["privateKeyOpenssh", "privateKeyPem", "publicKeyOpenssh", "publicKeyPem", "publicKeyFingerprintSha256"],
  "docker:index/remoteImage:RemoteImage": ["imageId", "repoDigest"],
  "docker:index/container:Container": ["hostname", "networkDatas"],
  "docker:index/network:Network": ["scope"],
  "docker:index/volume:Volume": ["mountpoint"],
  "command:local:Command": ["stdout", "stderr"],
};

/** A provider function's mocked answer, given its inputs. */
export type CallHandler = (inputs: Record<string, unknown>) => Record<string, unknown>;

/** Provider functions the program may call, answered with plausible values. */
export const DEFAULT_CALLS: Record<string, CallHandler> = {
  "aws:ec2/getAmi:getAmi": (inputs) => ({
    id: computed("getAmi", "id"),
    imageId: computed("getAmi", "id"),
    name: computed("getAmi", "name"),
    owners: inputs.owners,
    architecture: "x86_64",
  }),
  "aws:index/getAvailabilityZones:getAvailabilityZones": () => ({
    id: "azs",
    names: [computed("zone", "a"), computed("zone", "b"), computed("zone", "c")],
    zoneIds: [computed("zone", "a-id"), computed("zone", "b-id"), computed("zone", "c-id")],
  }),
  "aws:index/getCallerIdentity:getCallerIdentity": () => ({
    id: computed("caller", "accountId"),
    accountId: computed("caller", "accountId"),
    arn: computed("caller", "arn"),
    userId: computed("caller", "userId"),
  }),
  "aws:index/getPartition:getPartition": () => ({ id: "aws", partition: "aws", dnsSuffix: "amazonaws.com" }),
  "aws:index/getRegion:getRegion": (inputs) => ({ id: inputs.name ?? computed("region", "name"), name: inputs.name ?? computed("region", "name") }),
  "aws:ec2/getVpc:getVpc": () => ({ id: computed("defaultVpc", "id"), cidrBlock: computed("defaultVpc", "cidrBlock") }),
  "aws:ec2/getSubnets:getSubnets": () => ({ id: "subnets", ids: [computed("subnet", "a"), computed("subnet", "b"), computed("subnet", "c")] }),
  "aws:ec2/getSubnet:getSubnet": (inputs) => ({ id: inputs.id ?? computed("subnet", "id"), availabilityZone: computed("subnet", "availabilityZone") }),
  "aws:iam/getPolicyDocument:getPolicyDocument": (inputs) => ({ id: "policy", json: JSON.stringify(inputs) }),
};

/** Records every resource and call; answers calls from `calls`, failing on any other token. */
export class DockyardMocks implements pulumi.runtime.Mocks {
  readonly resources: RecordedResource[] = [];
  readonly calls: RecordedCall[] = [];

  constructor(private readonly handlers: Record<string, CallHandler> = DEFAULT_CALLS) {}

  newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
    // The mock monitor passes id "" for every resource that is not imported.
    const id = args.id || fabricatedId(args.type, args.name);
    this.resources.push({ type: args.type, name: args.name, inputs: args.inputs, custom: args.custom ?? true, provider: args.provider, id });
    const state: Record<string, unknown> = { ...args.inputs };
    if (args.type === "tls:index/privateKey:PrivateKey" && args.inputs.algorithm === "ED25519") {
      state.publicKeyOpenssh = mockSshPublicKey(args.name);
    }
    for (const field of COMPUTED_OUTPUTS[args.type] ?? []) {
      if (state[field] === undefined) state[field] = computed(args.name, field);
    }
    return { id, state };
  }

  call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    const handler = this.handlers[args.token];
    if (!handler) {
      const message = `unexpected provider call ${args.token}: add it to DEFAULT_CALLS in scripts/lib/mocks.ts if the program really needs it`;
      // Pulumi rethrows a failed mocked call as new Error(err.details): carry the message there too.
      throw Object.assign(new Error(message), { details: message });
    }
    this.calls.push({ token: args.token, inputs: args.inputs });
    return handler(args.inputs);
  }

  /** Resources of one type, in registration order. */
  ofType(type: string): RecordedResource[] {
    return this.resources.filter((r) => r.type === type);
  }

  /** The one resource with this type and name; throws if absent. */
  get(type: string, name: string): RecordedResource {
    const r = this.resources.find((x) => x.type === type && x.name === name);
    if (!r) throw new Error(`no ${type} named ${name}; have: ${this.resources.map((x) => `${x.type}:${x.name}`).join(", ")}`);
    return r;
  }
}

/** Reads an Output's value in a test or script (undefined if unknown). */
export function promisify<T>(output: pulumi.Output<T> | pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) => pulumi.output(output).apply((v) => { resolve(v as T); return v; }));
}

/** Reads whether an Output is marked secret. */
export function isSecretOutput<T>(output: pulumi.Output<T>): Promise<boolean> {
  return (output as unknown as { isSecret: Promise<boolean> }).isSecret;
}

/**
 * Makes this process capture and format no stack traces: the render worker's (and the SDK-floor
 * bench's) setting, called before the program registers anything.
 *
 * The Pulumi SDK captures a stack trace per promise it tracks and per resource, and the render
 * reads neither (issue 13, measured with DOCKYARD_RENDER_PROFILE):
 * - runtime/debuggable.ts debuggablePromise stores `new Error().stack` on every promise, only
 *   read to report a promise leak: about 90 per resource here (4 per output property).
 * - resource.ts Resource.callsites sets Error.stackTraceLimit = Infinity and parses
 *   `new Error().stack` for every resource, for the source position it sends the engine
 *   (sourcePosition); the mock monitor ignores it.
 * tsx turns on source maps, so at first every one of those stacks was mapped back to
 * TypeScript: more than half of a render's time. Here nothing is captured or formatted:
 * - a stackTraceLimit that is not a number captures no stack at all, not even an empty one
 *   (nodejs.org/api/errors.html#errorstacktracelimit); 0 still captured and formatted one,
 *   about 1 us each;
 * - during Resource.callsites' Infinity window V8 still walks the frames, but this
 *   prepareStackTrace formats none (about 50 us instead of 200-300 us per resource), so
 *   callsites finds no position and the request carries none.
 * An error in the program still reports its name and message (render-worker.ts fail).
 * DOCKYARD_RENDER_STACKS=1 keeps full, source-mapped stacks for debugging the program.
 */
export function captureNoStacks(): void {
  if (process.env.DOCKYARD_RENDER_STACKS) return;
  process.setSourceMapsEnabled(false);
  (Error as { stackTraceLimit?: unknown }).stackTraceLimit = undefined;
  Error.prepareStackTrace = () => undefined;
}
