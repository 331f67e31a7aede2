/**
 * The security invariants (policy/checks.ts) over every contract stack's render (dev,
 * test, prod and the large stack at the schema's edges), each shown catching a violation
 * planted into a copy of a real render; and the policy pack (policy/index.ts) shown to run
 * the same check functions over the same render, adapted to what @pulumi/policy hands a
 * policy (secrets unwrapped, additionalSecretOutputs, URNs).
 */
import { beforeAll, describe, expect, it, vi } from "vitest";
import { gzipSync } from "node:zlib";
import type { PolicyPackArgs, PolicyResource, StackValidationPolicy } from "@pulumi/policy";
import type { Rendered, RenderedResource } from "../../scripts/lib/render";
import { isSecretValue } from "../../scripts/lib/render";
import { CONTRACT_STACKS, LARGE_STACK, contractRender } from "../contracts/stacks";
import { CHECKS, PREVIEW_UNKNOWN, T, fromPolicyResource, fromRendered, secretValue, userDataText, type Check } from "../../policy/checks";

// The pack registers itself with `new PolicyPack(...)`, which starts @pulumi/policy's gRPC
// server; here the class only records what the pack hands it.
const registered = vi.hoisted(() => ({ packs: [] as { name: string; args: PolicyPackArgs }[] }));
vi.mock("@pulumi/policy", () => ({
  PolicyPack: class {
    constructor(name: string, args: PolicyPackArgs) {
      registered.packs.push({ name, args });
    }
  },
}));

const renders = new Map<string, Rendered>();
beforeAll(async () => {
  // One render per stack for the whole file (the large stack's takes minutes on 2 cores).
  for (const s of CONTRACT_STACKS) renders.set(s, await contractRender(s));
}, 900_000);
const render = (stack: string) => renders.get(stack)!;
const check = (id: string): Check => CHECKS.find((c) => c.id === id)!;
const run = (id: string, r: Rendered) => check(id).check(fromRendered(r), r.stack);

describe.each([...CONTRACT_STACKS])("stack %s", (stack) => {
  it.each(CHECKS.map((c) => [c.id, c] as const))("%s holds", (_id, c) => {
    expect(c.check(fromRendered(render(stack)), stack), c.description).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------
// Planting violations into copies of real renders
// ---------------------------------------------------------------------------------

/** A copy of a render with every resource of `type` changed by `change` (the first only, with `first`). */
function planted(base: Rendered, type: string, change: (r: RenderedResource) => void, opts: { first?: boolean } = {}): Rendered {
  const copy = structuredClone(base);
  const targets = copy.resources.filter((x) => x.type === type);
  if (targets.length === 0) throw new Error(`no ${type} in stack ${base.stack} to plant into`);
  for (const r of opts.first ? targets.slice(0, 1) : targets) change(r);
  return copy;
}
/** A copy of a render with its first replica of the web service changed. */
function plantedWeb(base: Rendered, change: (r: RenderedResource) => void): Rendered {
  const copy = structuredClone(base);
  change(copy.resources.find((x) => x.type === T.container && JSON.stringify(x.inputs.labels).includes('"value":"web"'))!);
  return copy;
}
/** A copy of a render with one more resource. */
function added(base: Rendered, r: Omit<RenderedResource, "custom"> & { custom?: boolean }): Rendered {
  const copy = structuredClone(base);
  copy.resources.push({ custom: true, ...r });
  return copy;
}
const gzip64 = (s: string) => gzipSync(Buffer.from(s)).toString("base64");
const ingress = (r: RenderedResource) => (r.inputs.ingress ??= []) as Record<string, unknown>[];
const PINNED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRvY2t5YXJkLXRlc3Qta2V5LTAwMDAwMDAwMDAwMA";

/** For each check: violations planted into real renders, each with the message it must give. */
const PLANTS: Record<string, [string, () => Rendered, RegExp][]> = {
  imdsv2: [
    ["httpTokens optional", () => planted(render("dev"), T.instance, (r) => void ((r.inputs.metadataOptions as Record<string, unknown>).httpTokens = "optional")), /Instance dev-app-1-instance: metadataOptions\.httpTokens is "optional"; IMDSv2 needs "required"/],
    ["no metadataOptions", () => planted(render("prod"), T.instance, (r) => void delete r.inputs.metadataOptions, { first: true }), /prod-app-1-instance: metadataOptions\.httpTokens is not set/],
  ],
  "encrypted-volumes": [
    ["a data volume unencrypted", () => planted(render("dev"), T.volume, (r) => void (r.inputs.encrypted = false)), /Volume dev-app-1-data: encrypted is false, not true/],
    ["a root volume unencrypted", () => planted(render("test"), T.instance, (r) => void delete (r.inputs.rootBlockDevice as Record<string, unknown>).encrypted, { first: true }), /test-app-1-instance: rootBlockDevice\.encrypted is undefined, not true/],
  ],
  "no-docker-api-port": [
    ["2376 open in a security group", () => planted(render("dev"), T.sg, (r) => void ingress(r).push({ protocol: "tcp", fromPort: 2376, toPort: 2376, cidrBlocks: ["10.0.0.0/8"] })), /SecurityGroup dev-app-1-sg: ingress\[\d\]: lets 2376 in \(the Docker API\)/],
    ["a port range over 2375", () => planted(render("prod"), T.sg, (r) => void ingress(r).push({ protocol: "tcp", fromPort: 2000, toPort: 3000, cidrBlocks: ["10.0.0.0/8"] }), { first: true }), /lets 2375\/2376 in/],
    ["all traffic in", () => planted(render("dev"), T.sg, (r) => void ingress(r).push({ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["10.0.0.0/8"] })), /protocol -1: every port/],
    ["a container publishing 2375", () => planted(render("dev"), T.container, (r) => void (r.inputs.ports = [{ internal: 2375, external: 2375, protocol: "tcp" }]), { first: true }), /Container fleet-dev-app-1-\S+: ports\[0\]\.internal is 2375 \(a Docker API port\)/],
    ["the Docker provider over tcp://", () => planted(render("dev"), T.dockerProvider, (r) => void (r.inputs.host = "tcp://203.0.113.10:2376")), /providers:docker fleet-dev-app-1: host tcp:\/\/203\.0\.113\.10:2376 reaches the Docker API over TCP/],
    ["a daemon host in user-data", () => planted(render("dev"), T.instance, (r) => void (r.inputs.userDataBase64 = gzip64(`${userDataText(r.inputs)}\nwrite_files:\n- path: /etc/docker/daemon.json\n  content: '{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]}'\n`))), /dev-app-1-instance: user-data sets a Docker daemon host on TCP \(tcp:\/\/0\.0\.0\.0:2375\)/],
  ],
  "no-public-ssh-in-prod": [
    ["22 from 0.0.0.0/0", () => planted(render("prod"), T.sg, (r) => void ingress(r).push({ protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["0.0.0.0/0"] }), { first: true }), /SecurityGroup prod-app-(1-)?sg: ingress\[\d\]: lets SSH \(22\) in from 0\.0\.0\.0\/0 in production stack "prod"/],
    ["22 from ::/0", () => planted(render("prod"), T.sg, (r) => void ingress(r).push({ protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: [], ipv6CidrBlocks: ["::/0"] }), { first: true }), /lets SSH \(22\) in from ::\/0/],
    ["a separate ingress rule resource", () => added(render("prod"), { type: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", name: "prod-ssh-anywhere", inputs: { ipProtocol: "tcp", fromPort: 22, toPort: 22, cidrIpv4: "0.0.0.0/0", securityGroupId: "computed(prod-app-1-sg.id)" } }), /SecurityGroupIngressRule prod-ssh-anywhere: lets SSH \(22\) in from 0\.0\.0\.0\/0/],
  ],
  "images-by-digest": [
    ["a RemoteImage by tag", () => planted(render("dev"), T.image, (r) => void (r.inputs.name = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev/web:latest"), { first: true }), /RemoteImage \S+: name \S+:latest is not pinned by digest/],
    ["a container by tag", () => planted(render("test"), T.container, (r) => void (r.inputs.image = "nginx:1.27"), { first: true }), /Container \S+: image nginx:1\.27 is not pinned by digest/],
  ],
  "no-plaintext-secrets": [
    // The large stack's services carry secrets (the render shows their values as [secret]).
    [
      "a replica whose env is not marked secret",
      () => {
        const copy = structuredClone(render(LARGE_STACK));
        const replica = copy.resources.find((x) => x.type === T.container && isSecretValue(x.inputs.envs))!;
        replica.inputs.envs = (replica.inputs.envs as { value: unknown }).value;
        // Nor declared a secret output (which would keep it encrypted in the state all the same).
        replica.options = { ...replica.options, additionalSecretOutputs: [] };
        return copy;
      }, /Container fleet-\S+: inputs\.envs\[\d+\] holds in plain a secret value \(the one at docker:index\/container:Container fleet-\S+: inputs\.envs\[\d+\]\)/],
    [
      "a secret written into user-data",
      () => {
        const withSecret = plantedWeb(render("dev"), (r) => void (r.inputs.envs = secretValue(["LOG_LEVEL=info", "API_TOKEN=s3cr3t-v4lue-42"])));
        return planted(withSecret, T.instance, (r) => void (r.inputs.userDataBase64 = gzip64(`${userDataText(r.inputs)}\nruncmd:\n- echo s3cr3t-v4lue-42 > /etc/token\n`)));
      },
      /Instance dev-app-1-instance: user-data holds in plain a secret value \(the one at docker:index\/container:Container fleet-dev-app-1-\S+: inputs\.envs\[1\]\)/,
    ],
    [
      "a secret in a plain stack output",
      () => {
        const copy = plantedWeb(render("test"), (r) => void (r.inputs.envs = secretValue(["DB_PASSWORD=correct-horse-battery"])));
        copy.outputs.debug = { connectionString: "postgres://app:correct-horse-battery@db" };
        return copy;
      },
      /pulumi:pulumi:Stack dockyard-test: inputs\.debug\.connectionString holds in plain a secret value/,
    ],
  ],
  "host-key-checking": [
    ["the Docker provider with StrictHostKeyChecking=no", () => planted(render("dev"), T.dockerProvider, (r) => void (r.inputs.sshOpts = JSON.stringify(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]))), /providers:docker fleet-dev-app-1: sshOpts turns host-key checking down \(StrictHostKeyChecking=no\)/],
    ["the Docker provider with accept-new", () => planted(render("prod"), T.dockerProvider, (r) => void (r.inputs.sshOpts = ["-o", "StrictHostKeyChecking=accept-new"]), { first: true }), /sshOpts turns host-key checking down \(StrictHostKeyChecking=accept-new\)/],
    ["the Docker provider without ssh options", () => planted(render("dev"), T.dockerProvider, (r) => void delete r.inputs.sshOpts), /providers:docker fleet-dev-app-1: sshOpts does not pass StrictHostKeyChecking=yes/],
    ["a remote command without a pinned host key", () => added(render("dev"), { type: T.remoteCommand, name: "dev-app-1-unpinned", inputs: { connection: secretValue({ host: "computed(dev-app-1-eip-association.publicIp)", user: "admin", port: 22 }), create: "docker ps" } }), /command:remote:Command dev-app-1-unpinned: connection\.hostKey is not set/],
    ["a local command whose interpreter is ssh without the option", () => added(render("dev"), { type: T.localCommand, name: "dev-app-1-plain-ssh", inputs: { interpreter: ["ssh", "-o", "BatchMode=yes", "--", "admin@203.0.113.10"], create: "docker ps" } }), /command:local:Command dev-app-1-plain-ssh: interpreter runs ssh but does not pass StrictHostKeyChecking=yes/],
    ["a local command running ssh with accept-new", () => added(render("test"), { type: T.localCommand, name: "test-app-1-tofu", inputs: { create: "ssh -o StrictHostKeyChecking=accept-new admin@203.0.113.10 docker ps" } }), /command:local:Command test-app-1-tofu: create runs ssh but turns host-key checking down \(StrictHostKeyChecking=accept-new\)/],
    ["a local command whose delete runs /usr/bin/ssh with 'StrictHostKeyChecking no'", () => added(render("dev"), { type: T.localCommand, name: "dev-cleanup", inputs: { create: "true", delete: "/usr/bin/ssh -o 'StrictHostKeyChecking no' admin@203.0.113.10 rm -f /tmp/x" } }), /dev-cleanup: delete runs ssh but turns host-key checking down \(StrictHostKeyChecking=no\)/],
  ],
  "securestring-own-key": [
    ["a host key without keyId (aws/ssm)", () => planted(render("prod"), "aws:ssm/parameter:Parameter", (r) => void delete r.inputs.keyId, { first: true }), /aws:ssm\/parameter:Parameter prod-app-1-host-key-param: keyId is not set, so SSM encrypts it with aws\/ssm/],
    ["a host key with alias/aws/ssm", () => planted(render("dev"), "aws:ssm/parameter:Parameter", (r) => void (r.inputs.keyId = "alias/aws/ssm")), /dev-app-1-host-key-param: keyId is "?alias\/aws\/ssm"? \(the AWS managed key/],
    ["a host key with aws/ssm's alias ARN", () => planted(render("test"), "aws:ssm/parameter:Parameter", (r) => void (r.inputs.keyId = "arn:aws:kms:eu-west-1:123456789012:alias/aws/ssm"), { first: true }), /test-app-1-host-key-param: keyId is "?arn:aws:kms:eu-west-1:123456789012:alias\/aws\/ssm"? \(the AWS managed key/],
  ],
  "monitoring-in-prod": [
    ["an instance without detailed monitoring", () => planted(render("prod"), T.instance, (r) => void (r.inputs.monitoring = false), { first: true }), /Instance prod-app-1-instance: monitoring is false; production stack "prod" needs detailed monitoring \(true\)/],
  ],
};

describe("each check catches a violation planted into a real render", () => {
  it("every check has planted cases", () => {
    expect(Object.keys(PLANTS).sort()).toEqual(CHECKS.map((c) => c.id).sort());
  });
  const cases = Object.entries(PLANTS).flatMap(([id, list]) => list.map(([name, make, message]) => [id, name, make, message] as const));
  it.each(cases)("%s: %s", (id, _name, make, message) => {
    const bad = make();
    expect(run(id, render(bad.stack))).toEqual([]);
    expect(run(id, bad).join("\n")).toMatch(message);
    // No other check is disturbed by the plant, unless it is about the same thing (a host key is not a secret).
    for (const other of CHECKS.filter((c) => c.id !== id && c.id !== "no-docker-api-port")) expect(other.check(fromRendered(bad), bad.stack), other.id).toEqual([]);
  });

  it("a secret's value is never printed, only where it is known from", () => {
    const [, make] = PLANTS["no-plaintext-secrets"][1];
    expect(run("no-plaintext-secrets", make()).join("\n")).not.toContain("s3cr3t-v4lue-42");
  });

  it("what the checks allow stays allowed: the prod-only checks in dev, secrets marked secret, ssh-add and host keys pinned", () => {
    const dev = render("dev");
    // Public SSH and no monitoring are prod's rules only.
    expect(run("no-public-ssh-in-prod", planted(dev, T.sg, (r) => void ingress(r).push({ protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["0.0.0.0/0"] })))).toEqual([]);
    expect(run("monitoring-in-prod", planted(dev, T.instance, (r) => void (r.inputs.monitoring = false)))).toEqual([]);
    // A secret in user-data or an output is fine while it is marked secret.
    const withSecret = plantedWeb(dev, (r) => void (r.inputs.envs = secretValue(["API_TOKEN=s3cr3t-v4lue-42"])));
    const markedOutput = structuredClone(withSecret);
    markedOutput.outputs.token = "[secret]";
    expect(run("no-plaintext-secrets", markedOutput)).toEqual([]);
    // A plain setting two services share is not a secret because one of them also holds a secret; the same line in plain in a replica of the SAME service is a leak.
    const sharing = plantedWeb(dev, (r) => void (r.inputs.envs = secretValue(["SHARED_SETTING=some-long-value", "API_TOKEN=s3cr3t-v4lue-42"])));
    const other = (service: string) => ({ type: T.container, name: `other-${service}`, inputs: { image: `computed(x-${service}.imageId)`, labels: [{ label: "dockyard.service", value: service }], envs: ["SHARED_SETTING=some-long-value"] } });
    expect(run("no-plaintext-secrets", added(sharing, other("api")))).toEqual([]);
    expect(run("no-plaintext-secrets", added(sharing, other("web"))).join()).toMatch(/Container other-web: inputs\.envs\[0\] holds in plain a secret value/);
    // A local command that pins the key, and one that only loads ssh-agent, pass.
    const pinned = added(dev, { type: T.localCommand, name: "pinned", inputs: { interpreter: ["/bin/sh", "-c", "retry", "x", "ssh", "-o", "StrictHostKeyChecking=yes", "-o", `KnownHostsCommand=/bin/echo %H ${PINNED_KEY}`, "--", "admin@i-0123"], create: "docker ps" } });
    expect(run("host-key-checking", added(pinned, { type: T.localCommand, name: "agent", inputs: { create: "ssh-add -L | head -n 1" } }))).toEqual([]);
    // A host key named by its stack's own alias (as rendered: the form SSM reports back,
    // terraform-provider-aws internal/service/ssm/parameter.go resourceParameterRead) passes, by name or by alias ARN.
    expect(dev.resources.filter((x) => x.type === "aws:ssm/parameter:Parameter").map((x) => x.inputs.keyId)).toContain("alias/dockyard/dev/host-keys");
    expect(run("securestring-own-key", planted(dev, "aws:ssm/parameter:Parameter", (r) => void (r.inputs.keyId = "arn:aws:kms:eu-west-1:123456789012:alias/dockyard/dev/host-keys")))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------
// The policy pack runs the same checks
// ---------------------------------------------------------------------------------

/** A value with every secret unwrapped, as @pulumi/policy hands it to a policy (deserialize.ts). */
function unwrapSecrets(v: unknown): unknown {
  if (isSecretValue(v)) return unwrapSecrets((v as { value: unknown }).value);
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  return v;
}
/** A render as the engine hands it to a stack policy: URNs, secrets unwrapped, additionalSecretOutputs, the outputs on the Stack resource. */
function toPolicyResources(r: Rendered): PolicyResource[] {
  const urn = (type: string, name: string) => `urn:pulumi:${r.stack}::${r.project}::${type}::${name}`;
  const one = (type: string, name: string, props: Record<string, unknown>, secretOutputs: string[] = []): PolicyResource => ({
    type,
    name,
    urn: urn(type, name),
    props: unwrapSecrets(props) as Record<string, unknown>,
    opts: { protect: false, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: secretOutputs },
    dependencies: [],
    propertyDependencies: {},
    isType: () => false,
    asType: () => undefined,
  });
  return [one(T.stack, `${r.project}-${r.stack}`, r.outputs), ...r.resources.map((x) => one(x.type, x.name, x.inputs, x.options?.additionalSecretOutputs))];
}
/** Every violation the pack's policies report over a render, by policy name. */
function runPack(policies: StackValidationPolicy[], r: Rendered): Record<string, string[]> {
  const resources = toPolicyResources(r);
  const out: Record<string, string[]> = {};
  for (const p of policies) {
    const found: string[] = [];
    void p.validateStack!({ resources, stackTags: new Map(), getConfig: () => ({}) as never, notApplicable: () => { throw new Error("not applicable"); } }, (m) => void found.push(m));
    out[p.name] = found;
  }
  return out;
}

describe("the policy pack (policy/index.ts)", () => {
  let policies: StackValidationPolicy[];
  beforeAll(async () => {
    await import("../../policy/index");
    expect(registered.packs).toHaveLength(1);
    policies = registered.packs[0].args.policies as StackValidationPolicy[];
  });

  it("registers one mandatory stack policy per check, named after it", () => {
    expect(registered.packs[0]).toMatchObject({ name: "dockyard", args: { enforcementLevel: "mandatory" } });
    expect(policies.map((p) => [p.name, p.description, p.enforcementLevel, typeof p.validateStack])).toEqual(CHECKS.map((c) => [`dockyard-${c.id}`, c.description, "mandatory", "function"]));
  });

  it("reports nothing on any stack's render", () => {
    for (const s of CONTRACT_STACKS) expect(Object.values(runPack(policies, render(s))).flat(), s).toEqual([]);
  });

  it("reports, for every planted violation, exactly what the check itself reports", () => {
    for (const [id, list] of Object.entries(PLANTS)) {
      for (const [name, make] of list) {
        const bad = make();
        const direct = check(id).check(fromRendered(bad), bad.stack);
        expect(direct.length, `${id}: ${name}`).toBeGreaterThan(0);
        expect(runPack(policies, bad)[`dockyard-${id}`], `${id}: ${name}`).toEqual(direct);
      }
    }
  });

  it("reads the stack from the URNs: prod's rules apply to prod's resources only", () => {
    const bad = planted(render("prod"), T.instance, (r) => void (r.inputs.monitoring = false), { first: true });
    expect(runPack(policies, bad)["dockyard-monitoring-in-prod"]).toHaveLength(1);
    expect(runPack(policies, { ...bad, stack: "staging" })["dockyard-monitoring-in-prod"]).toEqual([]);
  });

  it("a value unknown at preview (the policy SDK's proxy throws on reading it) becomes a computed stand-in", () => {
    const props = new Proxy({ name: "web", image: "unknown" } as Record<string, unknown>, {
      get: (o, k) => {
        if (k === "image") throw new Error("string value at .image can't be known during preview");
        return o[k as string];
      },
    });
    const r = fromPolicyResource({ type: T.container, name: "c", props, opts: { additionalSecretOutputs: ["envs"] } as PolicyResource["opts"] });
    expect(r.inputs).toEqual({ name: "web", image: PREVIEW_UNKNOWN });
    expect(check("images-by-digest").check([r], "dev")).toEqual([]);
  });
});
