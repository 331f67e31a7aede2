/**
 * Dockyard's security invariants as pure checks. Each takes every resource of a stack as
 * `{ type, name, inputs }` and the stack's name, and returns one message per violation.
 * The same functions run in `npm test` over every stack's offline render
 * (fromRendered: scripts/lib/render.ts) and in the policy pack (policy/index.ts,
 * fromPolicyResource: @pulumi/policy's PolicyResource) at `pulumi preview --policy-pack policy`.
 *
 * A value only the cloud knows is a `computed(...)` string (the mock runtime's stand-in;
 * the pack turns a preview's unknowns into the same), and a value the program marked
 * secret is wrapped as the mock runtime records it (`isSecretValue`).
 */
import { gunzipSync } from "node:zlib";
import * as pulumi from "@pulumi/pulumi";
import type { PolicyResource } from "@pulumi/policy";
import { isComputed } from "../scripts/lib/mocks";
import { isSecretValue, type Rendered } from "../scripts/lib/render";
import { SECRET_PLACEHOLDER } from "../stacks/schema";
import { hostImageTag } from "../components/local-host";

/** One resource as the checks see it: the shape of RenderedResource and of PolicyResource, adapted. */
export interface CheckedResource {
  type: string;
  name: string;
  /** Inputs (the render) or state (the pack); values marked secret are wrapped (isSecretValue). */
  inputs: Record<string, unknown>;
}

export interface Check {
  id: string;
  /** The invariant, in a sentence (the policy's description). */
  description: string;
  check(resources: CheckedResource[], stack: string): string[];
}

export const T = {
  instance: "aws:ec2/instance:Instance",
  launchTemplate: "aws:ec2/launchTemplate:LaunchTemplate",
  volume: "aws:ebs/volume:Volume",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  sgIngress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  sgRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
  container: "docker:index/container:Container",
  image: "docker:index/remoteImage:RemoteImage",
  dockerProvider: "pulumi:providers:docker",
  remoteCommand: "command:remote:Command",
  localCommand: "command:local:Command",
  ssmParameter: "aws:ssm/parameter:Parameter",
  stack: "pulumi:pulumi:Stack",
} as const;

/** The stacks that hold customer traffic: `prod`, and `prod-<anything>`. */
export function isProduction(stack: string): boolean {
  return stack === "prod" || stack.startsWith("prod-");
}

/** The Docker Engine API's TCP ports (plain and TLS). */
export const DOCKER_API_PORTS = [2375, 2376];
const ANYWHERE = ["0.0.0.0/0", "::/0"];

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

const of = (rs: CheckedResource[], type: string) => rs.filter((r) => r.type === type);
const who = (r: CheckedResource) => `${r.type} ${r.name}`;
const str = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v) ?? String(v));
/** A secret-marked value, unwrapped; anything else as is. */
const plain = (v: unknown): unknown => (isSecretValue(v) ? (v as { value: unknown }).value : v);
const obj = (v: unknown): Record<string, unknown> | undefined => {
  const p = plain(v);
  return p !== null && typeof p === "object" && !Array.isArray(p) ? (p as Record<string, unknown>) : undefined;
};
const list = (v: unknown): unknown[] => {
  const p = plain(v);
  return Array.isArray(p) ? p : [];
};
/** A list of strings given as an array or as its JSON (provider inputs are JSON strings). */
function stringList(v: unknown): string[] | undefined {
  let p = plain(v);
  if (typeof p === "string") {
    try {
      p = JSON.parse(p);
    } catch {
      return [p as string];
    }
  }
  return Array.isArray(p) ? p.map((x) => str(plain(x))) : undefined;
}

/** The user-data as text when it can be read: `userData`, or `userDataBase64` (gzip or not). */
export function userDataText(inputs: Record<string, unknown>): string | undefined {
  const ud = plain(inputs.userData);
  if (typeof ud === "string" && !isComputed(ud)) return ud;
  const b64 = plain(inputs.userDataBase64);
  if (typeof b64 !== "string" || isComputed(b64)) return undefined;
  const raw = Buffer.from(b64, "base64");
  try {
    return raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw).toString("utf8") : raw.toString("utf8");
  } catch {
    return undefined;
  }
}

interface IngressRule {
  where: string;
  protocol: string;
  from?: number;
  to?: number;
  cidrs: string[];
}

/** Every inbound rule, whichever resource type holds it. */
function ingressRules(rs: CheckedResource[]): IngressRule[] {
  const rules: IngressRule[] = [];
  const num = (v: unknown) => (v === undefined || v === null || Number.isNaN(Number(plain(v))) ? undefined : Number(plain(v)));
  for (const sg of of(rs, T.sg)) {
    list(sg.inputs.ingress).forEach((x, i) => {
      const r = obj(x) ?? {};
      rules.push({ where: `${who(sg)}: ingress[${i}]`, protocol: str(plain(r.protocol)), from: num(r.fromPort), to: num(r.toPort), cidrs: [...list(r.cidrBlocks), ...list(r.ipv6CidrBlocks)].map((c) => str(plain(c))) });
    });
  }
  for (const r of of(rs, T.sgIngress)) {
    rules.push({ where: who(r), protocol: str(plain(r.inputs.ipProtocol)), from: num(r.inputs.fromPort), to: num(r.inputs.toPort), cidrs: [r.inputs.cidrIpv4, r.inputs.cidrIpv6].filter((c) => c !== undefined).map((c) => str(plain(c))) });
  }
  for (const r of of(rs, T.sgRule).filter((x) => plain(x.inputs.type) === "ingress")) {
    rules.push({ where: who(r), protocol: str(plain(r.inputs.protocol)), from: num(r.inputs.fromPort), to: num(r.inputs.toPort), cidrs: [...list(r.inputs.cidrBlocks), ...list(r.inputs.ipv6CidrBlocks)].map((c) => str(plain(c))) });
  }
  return rules;
}

/** Does a rule let `port`/tcp in? Protocol -1 ("all") lets every port in. */
function opens(rule: IngressRule, port: number): boolean {
  if (rule.protocol === "-1" || rule.protocol.toLowerCase() === "all") return true;
  if (!["tcp", "6"].includes(rule.protocol.toLowerCase())) return false;
  return rule.from !== undefined && rule.to !== undefined && rule.from <= port && port <= rule.to;
}

/** Every StrictHostKeyChecking value in a text of ssh options (`=value`, ` value`, quoted), lower case. */
function hostKeyCheckingValues(text: string): string[] {
  return [...text.matchAll(/StrictHostKeyChecking\s*(?:=|\s)\s*["']?([A-Za-z-]+)/gi)].map((m) => m[1].toLowerCase());
}
/** What is wrong with the host-key checking a text of ssh options asks for, if anything. */
function hostKeyProblem(text: string): string | undefined {
  const values = hostKeyCheckingValues(text);
  const weak = values.filter((v) => v !== "yes");
  if (weak.length > 0) return `turns host-key checking down (StrictHostKeyChecking=${weak.join(", ")})`;
  if (values.length === 0) return "does not pass StrictHostKeyChecking=yes";
  return undefined;
}
/** Does a shell text or argv run ssh (not ssh-add, ssh-keygen, ...)? */
function runsSsh(v: unknown): boolean {
  const parts = stringList(v);
  if (!parts) return false;
  return parts.some((p) => /(^|[\s;&|(`'"/])ssh(?=$|[\s'"])/.test(p));
}

// ---------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------

/** Shorter values are not searched for: a 5-letter word matches by chance, a secret is longer. */
export const MIN_SECRET_LENGTH = 8;
/** Inside a secret-marked connection these say where to connect, not how to get in (@pulumi/command marks the whole connection secret for its keys). */
const NOT_SECRET_KEYS = new Set(["host", "user", "port", "hostKey", "dialErrorLimit", "perDialTimeout"]);
const PUBLIC_KEY = /^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+/;

/** Strings worth searching for: neither a cloud stand-in nor a public key, long enough. */
function secretCandidates(s: string): string[] {
  const out: string[] = [];
  const add = (x: string) => {
    if (x.length >= MIN_SECRET_LENGTH && !isComputed(x) && !PUBLIC_KEY.test(x)) out.push(x);
  };
  add(s);
  // `NAME=value` (container env): the value alone too.
  const env = /^[A-Za-z_][A-Za-z0-9_]*=([\s\S]*)$/.exec(s);
  if (env) add(env[1]);
  return out;
}

/** Every secret value the stack's resources know: the strings inside secret-marked values, with where each was found. */
export function knownSecrets(rs: CheckedResource[]): Map<string, string> {
  const found = new Map<string, string>();
  const collect = (v: unknown, where: string) => {
    if (typeof v === "string") {
      for (const s of secretCandidates(v)) if (!found.has(s)) found.set(s, where);
    } else if (Array.isArray(v)) v.forEach((x, i) => collect(plain(x), `${where}[${i}]`));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) if (!NOT_SECRET_KEYS.has(k)) collect(plain(x), `${where}.${k}`);
  };
  const walk = (v: unknown, where: string) => {
    if (isSecretValue(v)) collect((v as { value: unknown }).value, where);
    else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}[${i}]`));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`);
  };
  // A service's env is marked secret as a whole when it holds one secret, its plain settings
  // too: a `NAME=value` line that another service's container has in plain is a setting they
  // share, not a secret (the same line in plain in a replica of the same service is a leak).
  const shared = new Set<string>();
  const plainLines = new Map<string, Set<string | undefined>>();
  for (const c of of(rs, T.container)) {
    if (isSecretValue(c.inputs.envs)) continue;
    for (const line of list(c.inputs.envs)) {
      const services = plainLines.get(str(line)) ?? new Set();
      services.add(serviceOf(c));
      plainLines.set(str(line), services);
    }
  }
  for (const c of of(rs, T.container)) {
    if (!isSecretValue(c.inputs.envs)) continue;
    for (const line of list(c.inputs.envs)) if ([...(plainLines.get(str(line)) ?? [])].some((s) => s !== serviceOf(c))) shared.add(str(line));
  }
  for (const r of rs) {
    if (r.type !== T.container || !isSecretValue(r.inputs.envs)) continue;
    const lines = list(r.inputs.envs).filter((l) => !shared.has(str(l)));
    collect(lines, `${who(r)}: inputs.envs`);
  }
  for (const r of rs) walk(r.type === T.container ? { ...r.inputs, envs: undefined } : r.inputs, `${who(r)}: inputs`);
  return found;
}

/** The service a container runs (its dockyard.service label), if any. */
function serviceOf(c: CheckedResource): string | undefined {
  const label = list(c.inputs.labels).map(obj).find((l) => plain(l?.label) === "dockyard.service");
  return label ? str(plain(label.value)) : undefined;
}

/** Every plain (not secret-marked) string of a value, with its path; a readable user-data as its text. */
function plainStrings(v: unknown, where: string, out: [string, string][] = []): [string, string][] {
  if (isSecretValue(v)) return out;
  if (typeof v === "string") out.push([where, v]);
  else if (Array.isArray(v)) v.forEach((x, i) => plainStrings(x, `${where}[${i}]`, out));
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) plainStrings(x, `${where}.${k}`, out);
  return out;
}

// ---------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------

export const CHECKS: Check[] = [
  {
    id: "imdsv2",
    description: "EC2 instances (and launch templates) require IMDSv2: metadataOptions.httpTokens is \"required\"",
    check(rs) {
      const p: string[] = [];
      for (const r of [...of(rs, T.instance), ...of(rs, T.launchTemplate)]) {
        const tokens = obj(r.inputs.metadataOptions)?.httpTokens;
        if (plain(tokens) !== "required") p.push(`${who(r)}: metadataOptions.httpTokens is ${tokens === undefined ? "not set (IMDSv1 allowed)" : JSON.stringify(plain(tokens))}; IMDSv2 needs "required"`);
      }
      return p;
    },
  },
  {
    id: "encrypted-volumes",
    description: "every EBS volume, instance root and EBS block device is encrypted",
    check(rs) {
      const p: string[] = [];
      for (const v of of(rs, T.volume)) if (plain(v.inputs.encrypted) !== true) p.push(`${who(v)}: encrypted is ${str(plain(v.inputs.encrypted))}, not true`);
      for (const i of of(rs, T.instance)) {
        const root = obj(i.inputs.rootBlockDevice);
        if (plain(root?.encrypted) !== true) p.push(`${who(i)}: rootBlockDevice.encrypted is ${str(plain(root?.encrypted))}, not true (the root volume would follow the account's default)`);
        list(i.inputs.ebsBlockDevices).forEach((d, n) => {
          if (plain(obj(d)?.encrypted) !== true) p.push(`${who(i)}: ebsBlockDevices[${n}].encrypted is not true`);
        });
      }
      for (const t of of(rs, T.launchTemplate)) {
        list(t.inputs.blockDeviceMappings).forEach((m, n) => {
          const ebs = obj(obj(m)?.ebs);
          if (ebs && ![true, "true"].includes(plain(ebs.encrypted) as string)) p.push(`${who(t)}: blockDeviceMappings[${n}].ebs.encrypted is not true`);
        });
      }
      return p;
    },
  },
  {
    id: "no-docker-api-port",
    description: "the Docker API is never on TCP: no 2375/2376 in security group ingress or container ports, no tcp:// Docker provider host, no tcp:// daemon host in user-data",
    check(rs) {
      const p: string[] = [];
      for (const rule of ingressRules(rs)) {
        const ports = DOCKER_API_PORTS.filter((port) => opens(rule, port));
        if (ports.length > 0) p.push(`${rule.where}: lets ${ports.join("/")} in (the Docker API)${rule.protocol === "-1" ? " (protocol -1: every port)" : ""}`);
      }
      for (const c of of(rs, T.container)) {
        list(c.inputs.ports).forEach((x, n) => {
          const port = obj(x) ?? {};
          for (const k of ["internal", "external"]) if (DOCKER_API_PORTS.includes(Number(plain(port[k])))) p.push(`${who(c)}: ports[${n}].${k} is ${str(plain(port[k]))} (a Docker API port)`);
        });
      }
      for (const prov of of(rs, T.dockerProvider)) {
        const host = str(plain(prov.inputs.host) ?? "");
        if (/^tcp:\/\//i.test(host) || /:237[56]\b/.test(host)) p.push(`${who(prov)}: host ${host} reaches the Docker API over TCP; use ssh://`);
      }
      for (const i of of(rs, T.instance)) {
        const text = userDataText(i.inputs);
        const m = text ? /tcp:\/\/[^\s"',\]]*|[\w.-]*:237[56]\b/.exec(text) : null;
        if (m) p.push(`${who(i)}: user-data sets a Docker daemon host on TCP (${m[0]})`);
      }
      return p;
    },
  },
  {
    id: "no-public-ssh-in-prod",
    description: "in prod, no security group lets SSH (22) in from 0.0.0.0/0 or ::/0",
    check(rs, stack) {
      if (!isProduction(stack)) return [];
      return ingressRules(rs)
        .filter((rule) => opens(rule, 22) && rule.cidrs.some((c) => ANYWHERE.includes(c)))
        .map((rule) => `${rule.where}: lets SSH (22) in from ${rule.cidrs.filter((c) => ANYWHERE.includes(c)).join(", ")} in production stack "${stack}"`);
    },
  },
  {
    id: "images-by-digest",
    description:
      "every RemoteImage and container image is pinned by digest (@sha256:), or is the image id of a pulled image; the one exception is the local host image, built in the deployer's engine from this repository's recipe and tagged with the recipe's hash",
    check(rs) {
      const p: string[] = [];
      const digest = /@sha256:[0-9a-f]{64}$/;
      for (const img of of(rs, T.image)) {
        const name = str(plain(img.inputs.name));
        // components/local-host.ts hostImageTag(): never pulled, so no digest to pin; its tag names its recipe.
        if (name === hostImageTag() && plain(img.inputs.keepLocally) === true) continue;
        if (!digest.test(name) && !isComputed(name)) p.push(`${who(img)}: name ${name} is not pinned by digest (@sha256:<64 hex>)`);
      }
      for (const c of of(rs, T.container)) {
        const image = str(plain(c.inputs.image));
        // A pulled image's id (content-addressed), or the stand-in for it before it is pulled.
        const ok = digest.test(image) || /^sha256:[0-9a-f]{64}$/.test(image) || /^computed\([^()]*\.(imageId|repoDigest)\)$/.test(image) || image === PREVIEW_UNKNOWN;
        if (!ok) p.push(`${who(c)}: image ${image} is not pinned by digest (@sha256:<64 hex>) nor a pulled image's id`);
      }
      return p;
    },
  },
  {
    id: "no-plaintext-secrets",
    description: "no secret value appears in plain (not marked secret) in any input, the user-data or the stack outputs",
    check(rs) {
      const secrets = knownSecrets(rs);
      if (secrets.size === 0) return [];
      const p: string[] = [];
      for (const r of rs) {
        const texts = plainStrings(r.inputs, "inputs");
        const ud = r.type === T.instance ? userDataText(r.inputs) : undefined;
        if (ud !== undefined && plain(r.inputs.userData) === undefined) texts.push(["user-data", ud]);
        for (const [where, text] of texts) {
          // One message per place; the secret itself is never printed, where it is known from is.
          const hit = [...secrets].find(([secret]) => text.includes(secret));
          if (hit) p.push(`${who(r)}: ${where} holds in plain a secret value (the one at ${hit[1]})`);
        }
      }
      return p;
    },
  },
  {
    id: "host-key-checking",
    description: "host keys are always checked: the Docker provider's ssh options and every command:local:Command running ssh pass StrictHostKeyChecking=yes (never no or accept-new); every command:remote:Command connection pins a hostKey",
    check(rs) {
      const p: string[] = [];
      for (const prov of of(rs, T.dockerProvider)) {
        const host = str(plain(prov.inputs.host) ?? "");
        const opts = (stringList(prov.inputs.sshOpts) ?? []).join(" ");
        const problem = hostKeyProblem(opts);
        if (/^ssh:\/\//i.test(host) && problem) p.push(`${who(prov)}: sshOpts ${problem}`);
        else if (hostKeyCheckingValues(opts).some((v) => v !== "yes")) p.push(`${who(prov)}: sshOpts ${problem}`);
      }
      for (const c of of(rs, T.remoteCommand)) {
        const hostKey = obj(c.inputs.connection)?.hostKey;
        if (typeof plain(hostKey) !== "string" || str(plain(hostKey)).trim() === "") p.push(`${who(c)}: connection.hostKey is not set (any host key would be accepted)`);
      }
      for (const c of of(rs, T.localCommand)) {
        for (const field of ["interpreter", "create", "update", "delete"]) {
          const v = c.inputs[field];
          if (v === undefined) continue;
          const text = (stringList(v) ?? []).join(" ");
          const problem = hostKeyProblem(text);
          if (runsSsh(v) && problem) p.push(`${who(c)}: ${field} runs ssh but ${problem}`);
          else if (hostKeyCheckingValues(text).some((x) => x !== "yes")) p.push(`${who(c)}: ${field} ${problem}`);
        }
      }
      return p;
    },
  },
  {
    id: "monitoring-in-prod",
    description: "in prod, every EC2 instance has detailed monitoring on (monitoring: true)",
    check(rs, stack) {
      if (!isProduction(stack)) return [];
      const p: string[] = [];
      for (const i of of(rs, T.instance)) if (plain(i.inputs.monitoring) !== true) p.push(`${who(i)}: monitoring is ${str(plain(i.inputs.monitoring))}; production stack "${stack}" needs detailed monitoring (true)`);
      for (const t of of(rs, T.launchTemplate)) if (plain(obj(t.inputs.monitoring)?.enabled) !== true) p.push(`${who(t)}: monitoring.enabled is not true in production stack "${stack}"`);
      return p;
    },
  },
  {
    id: "securestring-own-key",
    description:
      "every SecureString SSM parameter is encrypted with a customer managed KMS key (keyId set, not aws/ssm): the AWS managed key aws/ssm lets every principal of the account decrypt it through SSM (Systems Manager user guide, ps-restrict-decryption; issue 24 item 5)",
    check(rs) {
      const p: string[] = [];
      for (const r of of(rs, T.ssmParameter)) {
        if (plain(r.inputs.type) !== "SecureString") continue;
        const key = plain(r.inputs.keyId);
        if (key === undefined || key === "") p.push(`${who(r)}: keyId is not set, so SSM encrypts it with aws/ssm, which every principal of the account may decrypt; set the stack's own key`);
        else if (/(^|[:/])alias\/aws\/ssm$/.test(str(key))) p.push(`${who(r)}: keyId is ${str(key)} (the AWS managed key every principal of the account may decrypt); set the stack's own key`);
      }
      return p;
    },
  },
];

/** Runs every check; the problems of each, by check id (only checks with problems). */
export function runChecks(rs: CheckedResource[], stack: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const c of CHECKS) {
    const problems = c.check(rs, stack);
    if (problems.length > 0) out[c.id] = problems;
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Adapters: the offline render and @pulumi/policy's resources, to CheckedResource
// ---------------------------------------------------------------------------------

/** A value marked secret, as the mock runtime records it. */
export function secretValue(value: unknown): Record<string, unknown> {
  return { [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value };
}

/**
 * A render's resources, plus its stack outputs as the `pulumi:pulumi:Stack` resource (as
 * the engine hands them to a policy pack). An output the render shows as SECRET_PLACEHOLDER
 * was a secret output: it is marked secret again.
 */
export function fromRendered(r: Rendered): CheckedResource[] {
  const outputs = Object.fromEntries(Object.entries(r.outputs).map(([k, v]) => [k, v === SECRET_PLACEHOLDER ? secretValue(v) : v]));
  return [...r.resources.map(({ type, name, inputs }) => ({ type, name, inputs })), { type: T.stack, name: `${r.project}-${r.stack}`, inputs: outputs }];
}

/** What a value the engine does not know yet (a preview) becomes: a computed stand-in. */
export const PREVIEW_UNKNOWN = "computed(preview.unknown)";

/**
 * Copies a value @pulumi/policy hands a policy into plain data. Its props are wrapped in a
 * proxy that throws on reading a value unknown at preview (proxy.ts unknownCheckingProxy):
 * such a value becomes PREVIEW_UNKNOWN.
 */
function copyPolicyValue(read: () => unknown): unknown {
  let v: unknown;
  try {
    v = read();
  } catch {
    return PREVIEW_UNKNOWN;
  }
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return Array.from({ length: v.length }, (_, i) => copyPolicyValue(() => (v as unknown[])[i]));
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = copyPolicyValue(() => (v as Record<string, unknown>)[k]);
  return out;
}

/**
 * A policy pack's resource as the checks see it. @pulumi/policy unwraps secrets before a
 * policy sees them (deserialize.ts: "secrets must be fully unpacked"), so the only marking
 * left is the resource's additionalSecretOutputs: those properties are marked secret again.
 */
export function fromPolicyResource(r: Pick<PolicyResource, "type" | "name" | "props" | "opts">): CheckedResource {
  const inputs = copyPolicyValue(() => r.props) as Record<string, unknown>;
  for (const k of r.opts?.additionalSecretOutputs ?? []) if (inputs[k] !== undefined && !isSecretValue(inputs[k])) inputs[k] = secretValue(inputs[k]);
  return { type: r.type, name: r.name, inputs };
}

/** The stack a resource belongs to, from its URN (`urn:pulumi:<stack>::<project>::<type>::<name>`). */
export function stackOfUrn(urn: string): string {
  const m = /^urn:pulumi:([^:]+)::/.exec(urn);
  if (!m) throw new Error(`not a Pulumi URN: ${urn}`);
  return m[1];
}
