/**
 * Contract: what every stack declares is accepted by the real systems at `pulumi up`.
 * Each rule (./rules.ts, with the source it was read in) runs over every resource of dev,
 * test, prod and a generated large stack at the schema's edges (./stacks.ts); then each
 * rule is shown to fail on a planted bad resource, so a passing rule is not a rule that
 * cannot fail. What this does not prove: behaviour the mock runtime cannot show (timing of
 * real replacements, AWS eventual consistency); the README lists what is unverified.
 */
import { describe, expect, it } from "vitest";
import { gunzipSync, gzipSync } from "node:zlib";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as YAML from "yaml";
import { renderStack, type Rendered, type RenderedResource } from "../../scripts/lib/render";
import { CONTRACT_STACKS, LARGE_STACK, SWARM_STACK, contractRender, writeLargeStack } from "./stacks";
import { RULES, T, type Rule } from "./rules";

describe.each([...CONTRACT_STACKS])("stack %s", (stack) => {
  it.each(RULES.map((r) => [r.id, r] as const))("%s", async (_id, rule: Rule) => {
    const rendered = await contractRender(stack);
    expect(rule.check(rendered), `${rule.rule} (${rule.source})`).toEqual([]);
    // The large stack's render alone takes 2-4 minutes on 2 cores (every container now has
    // its pids-limit command too), longer while the rest of the suite runs beside it.
  }, 600_000);
});

describe("the large stack", () => {
  it("is at the edges: 51-character host names, 32-character group and service names, >900 resources", async () => {
    const r = await contractRender(LARGE_STACK);
    const hosts = r.resources.filter((x) => x.type === "dockyard:index:DockerHost").map((x) => x.name);
    expect(Math.max(...hosts.map((h) => h.length))).toBe(51);
    expect(r.resources.length).toBeGreaterThan(900);
  }, 600_000);
});

/** A copy of a render with one resource changed (or added). */
function planted(base: Rendered, type: string, change: (r: RenderedResource) => RenderedResource | RenderedResource[]): Rendered {
  const i = base.resources.findIndex((x) => x.type === type);
  if (i < 0) throw new Error(`no ${type} to plant into`);
  const copy = structuredClone(base);
  const out = change(copy.resources[i]);
  copy.resources.splice(i, 1, ...([] as RenderedResource[]).concat(out));
  return copy;
}
const b64gz = (s: string) => gzipSync(Buffer.from(s)).toString("base64");

/** For each rule, one bad resource it must catch (the message it must give). */
const BAD: Record<string, [string, (r: RenderedResource) => RenderedResource | RenderedResource[], RegExp]> = {
  "ec2-user-data": [T.instance, (r) => ({ ...r, inputs: { ...r.inputs, userDataBase64: undefined, userData: `#cloud-config\n${"#".repeat(19_000)}\n` } }), /userData is 19\d\d\d bytes; EC2 accepts 16384/],
  "ec2-tags": [T.instance, (r) => ({ ...r, inputs: { ...r.inputs, tags: { "aws:owner": "x", k: "v".repeat(300) } } }), /reserved aws: prefix/],
  autonames: [T.role, (r) => ({ ...r, name: `${"h".repeat(52)}-role` }), /name would be 65 characters; at most 64/],
  "security-groups": [T.sg, (r) => ({ ...r, inputs: { ...r.inputs, description: "Dockyard host: SSH <from> 'sshCidrs'" } }), /characters EC2 refuses/],
  iam: [T.rolePolicy, (r) => ({ ...r, inputs: { ...r.inputs, policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "x".repeat(10_300) }] }) } }), /inline policies total \d+ characters; at most 10240/],
  "ecr-pull-scope": [T.rolePolicy, (r) => ({ ...r, inputs: { ...r.inputs, policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["ecr:BatchGetImage"], Resource: "*" }] }) } }), /not scoped to a repository namespace/],
  "ssm-parameters": [T.param, (r) => ({ ...r, inputs: { ...r.inputs, name: "/ssm/x" } }), /begins with aws or ssm/],
  "ecr-repositories": [T.ecrRepo, (r) => ({ ...r, inputs: { ...r.inputs, region: "ap-south-1" } }), /created in ap-south-1, but images are pulled from/],
  deletable: [T.volume, (r) => ({ ...r, options: { protect: true, retainOnDelete: true } }), /is protected/],
  "docker-image-id": [T.container, (r) => ({ ...r, inputs: { ...r.inputs, image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev/web@sha256:" + "a".repeat(64) } }), /is not a RemoteImage's imageId/],
  "docker-pulls": [T.image, (r) => ({ ...r, options: { ...r.options, dependsOn: [] } }), /is not pulled on the host/],
  "docker-containers": [T.container, (r) => ({ ...r, inputs: { ...r.inputs, destroyGraceSeconds: undefined } }), /no destroyGraceSeconds/],
  "elbv2-names": [T.targetGroup, (r) => ({ ...r, inputs: { ...r.inputs, name: `dev-app-${"x".repeat(30)}` } }), /name dev-app-x+ is 38 characters; at most 32/],
  "elbv2-protocols": [T.listener, (r) => ({ ...r, inputs: { ...r.inputs, protocol: "HTTP" } }), /protocol HTTP on a network load balancer/],
  "elbv2-health-checks": [T.targetGroup, (r) => ({ ...r, inputs: { ...r.inputs, healthCheck: { ...(r.inputs.healthCheck as object), interval: 3 } } }), /healthCheck\.interval is 3; allowed 5-300/],
  "nlb-security-groups": [T.lb, (r) => ({ ...r, inputs: { ...r.inputs, securityGroups: [] } }), /a network load balancer without security groups \(adding one later replaces it\)/],
  swarm: [T.container, (r) => ({ ...r, type: T.service }), /docker services without a swarm/],
  "docker-schema": [T.container, (r) => ({ ...r, inputs: { ...r.inputs, gpus: "all", deviceRequests: [{ driver: "cdi", deviceIds: ["nvidia.com/gpu=all"] }] } }), /device_requests: ConflictsWith gpus \(both set\)/],
  rollouts: [T.instance, (r) => ({ ...r, name: "dev-app-9-instance" }), /dev-app-9: no serving gate ends its turn/],
  "planned-drain": [T.targetAttachment, (r) => ({ ...r, options: { ...r.options, deleteBeforeReplace: undefined } }), /not replaced delete-first/],
  "one-way-in": [T.dockerProvider, (r) => ({ ...r, inputs: { ...r.inputs, host: "ssh://admin@computed(dev-app-1-eip.publicIp)" } }), /not the EIP association's instanceId \(through the ProxyCommand\)/],
};

/** A rule's problems on a copy of a stack's render (which passes it) where `change` rewrote the resources `pred` picks. */
async function editorOf(id: string, stack: string) {
  const rule = RULES.find((r) => r.id === id)!;
  const base = await contractRender(stack);
  expect(rule.check(base)).toEqual([]);
  return (pred: (x: RenderedResource) => boolean, change: (x: RenderedResource) => RenderedResource) => {
    const copy = structuredClone(base);
    copy.resources = copy.resources.map((x) => (pred(x) ? change(x) : x));
    return rule.check(copy).join("\n");
  };
}

describe("each rule fails on a planted bad resource", () => {
  it("every rule has a planted case", () => {
    expect(Object.keys(BAD).sort()).toEqual(RULES.map((r) => r.id).sort());
  });
  it.each(RULES.map((r) => [r.id, r] as const))("%s", async (id, rule: Rule) => {
    const base = await contractRender("dev");
    const [type, change, message] = BAD[id];
    expect(rule.check(base)).toEqual([]);
    const problems = rule.check(planted(base, type, change));
    expect(problems.join("\n")).toMatch(message);
  }, 300_000);
  it("rollouts: on the two-host test stack, a host that skips its turn, a container that does not wait, a gate that does not", async () => {
    const rule = RULES.find((r) => r.id === "rollouts")!;
    const base = await contractRender("test");
    expect(rule.check(base)).toEqual([]);
    const gate1 = "command:local:Command::fleet-test-app-1-serving";
    const without = (deps: string[] | undefined, k: string) => (deps ?? []).filter((d) => d !== k);
    const edit = (pred: (x: RenderedResource) => boolean, change: (x: RenderedResource) => RenderedResource) => {
      const copy = structuredClone(base);
      copy.resources = copy.resources.map((x) => (pred(x) ? change(x) : x));
      return rule.check(copy).join("\n");
    };
    // test-app-2's instance no longer waits: both hosts would roll at once.
    expect(edit((x) => x.name === "test-app-2-instance", (x) => ({ ...x, options: { ...x.options, dependsOn: without(x.options?.dependsOn, gate1) } }))).toMatch(/all 2 hosts are in the first batch/);
    // Its proxy no longer waits for test-app-1's gate.
    expect(edit((x) => x.name === "fleet-test-app-2-proxy", (x) => ({ ...x, options: { ...x.options, dependsOn: without(x.options?.dependsOn, gate1) } }))).toMatch(/fleet-test-app-2-proxy: does not wait for command:local:Command::fleet-test-app-1-serving/);
    // test-app-1's gate runs before its proxy, or does not run again when the proxy is replaced.
    expect(edit((x) => x.name === "fleet-test-app-1-serving", (x) => ({ ...x, options: { ...x.options, dependsOn: without(x.options?.dependsOn, `${T.container}::fleet-test-app-1-proxy`) } }))).toMatch(/fleet-test-app-1-serving: runs without waiting for fleet-test-app-1-proxy/);
    expect(edit((x) => x.name === "fleet-test-app-1-serving", (x) => ({ ...x, inputs: { ...x.inputs, triggers: (x.inputs.triggers as unknown[]).slice(1) } }))).toMatch(/fleet-test-app-1-serving: \d+ triggers; expected one per container/);
  }, 300_000);
  it("swarm: on prod in swarm mode, live-restore on, a host-mode proxy updating start-first, a network by name, an unpulled image, logged or plaintext join tokens, a swarm port open to the world", async () => {
    const edit = await editorOf("swarm", SWARM_STACK);
    const isProxy = (x: RenderedResource) => x.type === T.service && x.name.includes("-proxy-");
    const isWeb = (x: RenderedResource) => x.type === T.service && !x.name.includes("-proxy-");
    const daemonOn = (x: RenderedResource) => {
      const text = gunzipSync(Buffer.from(String(x.inputs.userDataBase64), "base64")).toString("utf8").replace('"live-restore": false', '"live-restore": true');
      return { ...x, inputs: { ...x.inputs, userDataBase64: b64gz(text) } };
    };
    expect(edit((x) => x.type === T.instance && x.name === "prod-app-2-instance", daemonOn)).toMatch(/prod-app-2-instance: live-restore is not off/);
    expect(edit(isProxy, (x) => ({ ...x, inputs: { ...x.inputs, updateConfig: { ...(x.inputs.updateConfig as object), order: "start-first" } } }))).toMatch(/publishes host ports but updates start-first/);
    expect(edit(isWeb, (x) => ({ ...x, inputs: { ...x.inputs, taskSpec: { ...(x.inputs.taskSpec as object), networksAdvanceds: [{ name: "prod-web" }] } } }))).toMatch(/a network given by name/);
    expect(edit(isWeb, (x) => ({ ...x, inputs: { ...x.inputs, taskSpec: { ...(x.inputs.taskSpec as any), containerSpec: { ...(x.inputs.taskSpec as any).containerSpec, image: (x.inputs.taskSpec as any).containerSpec.image.replace(/.$/, "0") } } } }))).toMatch(/is pulled on no host/);
    expect(edit((x) => x.name.endsWith("-join-tokens"), (x) => ({ ...x, inputs: { ...x.inputs, logging: undefined } }))).toMatch(/would be logged/);
    expect(edit((x) => x.name.endsWith("-join-tokens"), (x) => ({ ...x, options: { ...x.options, additionalSecretOutputs: [] } }))).toMatch(/is not a secret output/);
    expect(edit((x) => x.name.endsWith("-join"), (x) => ({ ...x, inputs: { ...x.inputs, stdin: "SWMTKN-1-abc-def\n" } }))).toMatch(/stdin \(a join token\) is not a secret/);
    expect(edit((x) => x.type === T.sg && x.name === "prod-app-1-sg", (x) => ({ ...x, inputs: { ...x.inputs, ingress: [...(x.inputs.ingress as object[]), { protocol: "tcp", fromPort: 2377, toPort: 2377, cidrBlocks: ["0.0.0.0/0"] }] } }))).toMatch(/opens swarm port 2377\/tcp to others/);
    expect(edit((x) => x.type === T.instance && x.name === "prod-app-3-instance", (x) => ({ ...x, inputs: { ...x.inputs, vpcSecurityGroupIds: (x.inputs.vpcSecurityGroupIds as unknown[]).slice(0, 1) } }))).toMatch(/prod-app-3-instance: not in the swarm's security group/);
    // Issue 24 item 18: the proxy as one global service (replaced delete-first, all hosts at once), or per host without the chain.
    expect(edit(isProxy, (x) => ({ ...x, inputs: { ...x.inputs, mode: { global: true } } }))).toMatch(/swarm-proxy-prod-app-1: publishes host ports from more than one node/);
    expect(edit(isProxy, (x) => ({ ...x, options: { ...x.options, dependsOn: (x.options?.dependsOn ?? []).filter((d) => !d.includes("-proxy-prod-app-")) } }))).toMatch(/group app: 3 of its 3 proxy services wait for no other/);
    // Names swarm refuses: a 64-character overlay network, a service name with a dot, a secret whose autoname passes 64.
    expect(edit((x) => x.type === T.dockerNetwork, (x) => ({ ...x, inputs: { ...x.inputs, name: "n".repeat(64) } }))).toMatch(/swarm-web-net: name "n{64}" is not a DNS name component of 63/);
    expect(edit(isWeb, (x) => ({ ...x, inputs: { ...x.inputs, name: "web.v2" } }))).toMatch(/swarm-web: name "web.v2" is not a DNS name component/);
    const withSecret = structuredClone(await contractRender(SWARM_STACK));
    withSecret.resources.push({ type: T.swarmSecret, name: `swarm-${"w".repeat(32)}-${"e".repeat(30)}`, custom: true, inputs: { data: "eA==" } });
    expect(RULES.find((r) => r.id === "swarm")!.check(withSecret).join("\n")).toMatch(/its name \(autonamed, 77 characters\) is not 64 or fewer/);
  }, 300_000);
  it("docker-schema: a global service with convergeConfig (the proxy before issue 24 item 3), a config with data and dataRaw or neither, a docker type whose rules nobody read", async () => {
    const edit = await editorOf("docker-schema", SWARM_STACK);
    const svc = (x: RenderedResource) => x.type === T.service;
    expect(edit(svc, (x) => ({ ...x, inputs: { ...x.inputs, mode: { global: true }, convergeConfig: { delay: "5s", timeout: "60s" } } }))).toMatch(/mode\.0\.global: ConflictsWith convergeConfig \(both set\)/);
    expect(edit(svc, (x) => ({ ...x, inputs: { ...x.inputs, mode: { global: false, replicated: { replicas: 2 } } } }))).toMatch(/mode\.0\.replicated: ConflictsWith mode\.global/);
    // A value only known after create (computed) defers the check, as the SDK does.
    expect(edit(svc, (x) => ({ ...x, inputs: { ...x.inputs, mode: { global: "computed(x.global)" }, convergeConfig: { delay: "5s" } } }))).toBe("");
    const cfg = (x: RenderedResource) => x.type === T.swarmConfig;
    expect(edit(cfg, (x) => ({ ...x, inputs: { ...x.inputs, dataRaw: "frontend x" } }))).toMatch(/data: ExactlyOneOf data, dataRaw; data and dataRaw set/);
    expect(edit(cfg, (x) => ({ ...x, inputs: { ...x.inputs, data: undefined } }))).toMatch(/ExactlyOneOf data, dataRaw; none set/);
    expect(edit(cfg, (x) => ({ ...x, type: "docker:index/plugin:Plugin" }))).toMatch(/docker:index\/plugin:Plugin .*: no schema rules recorded/);
  }, 300_000);
  it("swarm: the large stack in swarm mode (32-character groups and services, 24 secrets) fits swarm's names and every other swarm rule", async () => {
    const opts = writeLargeStack();
    const env = YAML.parse(fs.readFileSync(opts.environmentFile!, "utf8"));
    fs.writeFileSync(opts.environmentFile!, YAML.stringify({ ...env, fleet: { mode: "swarm" } }));
    const r = await renderStack(LARGE_STACK, opts);
    expect(r.resources.filter((x) => x.type === T.service).length).toBeGreaterThan(12);
    const nets = r.resources.filter((x) => x.type === T.dockerNetwork).map((x) => String(x.inputs.name));
    expect(nets).toHaveLength(13);
    expect(new Set(nets).size).toBe(nets.length);
    expect(r.resources.filter((x) => x.type === T.swarmSecret)).toHaveLength(24);
    expect(RULES.find((x) => x.id === "swarm")!.check(r)).toEqual([]);
  }, 300_000);
  it("planned-drain: a data attachment that stops the old instance without the drain, or a drain shorter than the deregistration delay, is caught", async () => {
    const rule = RULES.find((r) => r.id === "planned-drain")!;
    const base = await contractRender("test");
    expect(rule.check(base)).toEqual([]);
    const noWait = structuredClone(base);
    const data = noWait.resources.find((x) => x.type === T.attachment && x.name === "test-app-1-data-attachment")!;
    data.options = { ...data.options, dependsOn: [] };
    expect(rule.check(noWait).join()).toMatch(/test-app-1-instance: its data volume's attachment \(which stops the old instance\) does not wait for a drain/);
    const short = structuredClone(base);
    short.resources.find((x) => x.type === T.hostCommand && x.name === "test-app-2-drain")!.inputs.create = "sleep 5";
    expect(rule.check(short).join()).toMatch(/test-app-2-drain: waits sleep 5; the target groups' deregistration delay is 30 s/);
  }, 300_000);
  it("a host command through @pulumi/command's own SSH client, one without the pinned key, or with other ssh options than the provider's, is caught", async () => {
    const rule = RULES.find((r) => r.id === "one-way-in")!;
    const base = await contractRender("dev");
    const remote = structuredClone(base);
    const ready = remote.resources.find((x) => x.type === T.hostCommand && x.name.endsWith("-engine-ready"))!;
    remote.resources.push({ ...ready, type: "command:remote:Command", name: "x-remote" });
    expect(rule.check(remote).join()).toMatch(/command:remote:Command dials with its own SSH client/);
    const unpinned = structuredClone(base);
    const overSsh = unpinned.resources.find((x) => x.type === T.hostCommand && Array.isArray(x.inputs.interpreter))!;
    overSsh.inputs.interpreter = (overSsh.inputs.interpreter as string[]).map((a) => (a === "StrictHostKeyChecking=yes" ? "StrictHostKeyChecking=no" : a));
    expect(rule.check(unpinned).join()).toMatch(/ssh does not pin the host key/);
    expect(rule.check(unpinned).join()).toMatch(/ssh options differ from another connection to the same host/);
  }, 300_000);
  it("local hosts (issue 12): a machine container dialed without the docker exec ProxyCommand, a ready check for another instance, another image on the local engine, a data volume not kept, a bad upload, or an ssh local engine, are caught", async () => {
    const base = await contractRender("local");
    const way = RULES.find((r) => r.id === "one-way-in")!;
    const pulls = RULES.find((r) => r.id === "docker-pulls")!;
    expect(way.check(base)).toEqual([]);
    expect(pulls.check(base)).toEqual([]);
    const direct = structuredClone(base);
    for (const c of direct.resources.filter((x) => x.type === T.hostCommand)) c.inputs.interpreter = (c.inputs.interpreter as string[]).map((a) => (a.startsWith("ProxyCommand=") ? "ProxyCommand=nc %h %p" : a));
    expect(way.check(direct).join()).toMatch(/dials local host admin@local-app-1 without the docker exec ProxyCommand/);
    const readyOf = structuredClone(base);
    const rc = readyOf.resources.find((x) => x.name === "local-app-1-engine-ready")!;
    rc.inputs.create = String(rc.inputs.create).replace("'local-local-app-1'", "'local-other'");
    expect(way.check(readyOf).join()).toMatch(/local-app-1-engine-ready: does not check it reached instance local-local-app-1/);
    const otherImage = structuredClone(base);
    otherImage.resources.find((x) => x.name === "machine-image")!.inputs.name = "debian:bookworm";
    expect(pulls.check(otherImage).join()).toMatch(/not the local host image/);
    const deletable = RULES.find((r) => r.id === "deletable")!;
    const containers = RULES.find((r) => r.id === "docker-containers")!;
    expect(deletable.check(base)).toEqual([]);
    expect(containers.check(base)).toEqual([]);
    const unkept = structuredClone(base);
    unkept.resources.find((x) => x.name === "local-app-1-data")!.options!.retainOnDelete = false;
    expect(deletable.check(unkept).join()).toMatch(/local-app-1-data: a local host's data volume without retainOnDelete/);
    const twoContents = structuredClone(base);
    const seed = (twoContents.resources.find((x) => x.name === "local-app-1-machine")!.inputs.uploads as { value: Record<string, unknown>[] }).value[0];
    seed.content = "#cloud-config\n";
    seed.permissions = "rw-------";
    expect(containers.check(twoContents).join()).toMatch(/sets content and contentBase64 of content, contentBase64, source/);
    expect(containers.check(twoContents).join()).toMatch(/permissions rw------- is not octal/);
    const sshEngine = structuredClone(base);
    sshEngine.resources.find((x) => x.type === T.dockerProvider && x.name === "deployer-engine")!.inputs.host = "ssh://admin@elsewhere";
    expect(way.check(sshEngine).join()).toMatch(/the local engine's provider dials ssh:\/\/admin@elsewhere/);
  }, 300_000);
  it("front door (issue 13): a TLS listener without a certificate, a load balancer named internal-, a host admitting a service port from CIDRs, and a target that is no instance are caught", async () => {
    const base = await contractRender("dev");
    const rule = (id: string) => RULES.find((r) => r.id === id)!;
    const tls = planted(base, T.listener, (r) => ({ ...r, inputs: { ...r.inputs, protocol: "TLS" } }));
    expect(rule("elbv2-protocols").check(tls).join()).toMatch(/a TLS listener without certificateArn/);
    expect(rule("elbv2-protocols").check(planted(base, T.listener, (r) => ({ ...r, inputs: { ...r.inputs, protocol: "TLS", certificateArn: "arn:aws:acm:eu-west-1:123456789012:certificate/x" } })))).toEqual([]);
    expect(rule("elbv2-names").check(planted(base, T.lb, (r) => ({ ...r, name: "internal-app-nlb" }))).join()).toMatch(/begins with "internal-"/);
    const open = structuredClone(base);
    const hostSg = open.resources.find((x) => x.type === T.sg && x.name === "dev-app-1-sg")!;
    (hostSg.inputs.ingress as Record<string, unknown>[]).push({ protocol: "tcp", fromPort: 80, toPort: 80, cidrBlocks: ["0.0.0.0/0"] });
    expect(rule("nlb-security-groups").check(open).join()).toMatch(/dev-app-1-sg: admits port 80 from \["0\.0\.0\.0\/0"\], not only from the load balancer/);
    expect(rule("elbv2-health-checks").check(planted(base, T.targetAttachment, (r) => ({ ...r, inputs: { ...r.inputs, targetId: "i-0123456789abcdef0" } }))).join()).toMatch(/is not an instance of the stack/);
  }, 300_000);
  it("a security group autonamed from a logical name starting with sg- is caught", async () => {
    const rule = RULES.find((r) => r.id === "security-groups")!;
    const base = await contractRender("dev");
    expect(rule.check(planted(base, T.sg, (r) => ({ ...r, name: "sg-app-1-sg" }))).join()).toMatch(/may not start with sg-/);
  }, 300_000);
  it("proxies replaced all at once, or create-first, are caught", async () => {
    const rule = RULES.find((r) => r.id === "docker-containers")!;
    const base = await contractRender("prod");
    expect(rule.check(base)).toEqual([]);
    // All at once: no container waits for a serving gate (the rule "rollouts").
    const unchained = structuredClone(base);
    for (const c of unchained.resources) if (c.type === T.container && c.options) c.options.dependsOn = (c.options.dependsOn ?? []).filter((d) => !d.endsWith("-serving"));
    expect(RULES.find((r) => r.id === "rollouts")!.check(unchained).join()).toMatch(/fleet-prod-app-3-proxy: does not wait for command:local:Command::fleet-prod-app-2-serving/);
    const createFirst = structuredClone(base);
    for (const c of createFirst.resources) if (c.type === T.container && c.name.endsWith("-proxy") && c.options) c.options.deleteBeforeReplace = false;
    expect(rule.check(createFirst).join()).toMatch(/publishes host ports but would be replaced create-first/);
  }, 300_000);
  it("gzip over 16 KB is refused too, and gzip of a YAML error is reported", async () => {
    const base = await contractRender("dev");
    const rule = RULES.find((r) => r.id === "ec2-user-data")!;
    const random = randomBytes(18_000).toString("base64");
    expect(rule.check(planted(base, T.instance, (r) => ({ ...r, inputs: { ...r.inputs, userDataBase64: b64gz(`#cloud-config\n#${random}\n`) } }))).join()).toMatch(/before base64; EC2 accepts 16384/);
    expect(rule.check(planted(base, T.instance, (r) => ({ ...r, inputs: { ...r.inputs, userDataBase64: b64gz("#cloud-config\na: [\n") } }))).join()).toMatch(/is not YAML/);
  }, 300_000);
});
