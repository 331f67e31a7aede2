/**
 * The whole program, for every shipped stack: index.ts runs under the mock runtime
 * (as `plan` runs it) without errors, registers a well-formed resource tree, exports
 * what the stack spec says, and every stack is identical to prod up to its knobs.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { STACKS, hostNameFor, loadStackSpec, readStackFile } from "../stacks";
import { buildPlan, resourceKey, renderStack, type Rendered } from "../scripts/lib/render";
import { checkParity } from "../scripts/diff";
import { RULES } from "./contracts/rules";
import { DEREGISTRATION_DELAY_SECONDS, HEALTH_CHECK, frontDoorBaseName } from "../components/front-door";
import { MONITOR_PATH } from "../components/proxy";
import { servingGateCommand } from "../components/rollout";

const renders = new Map<string, Promise<Rendered>>();
const render = (stack: string) => {
  if (!renders.has(stack)) renders.set(stack, renderStack(stack));
  return renders.get(stack)!;
};

describe.each([...STACKS])("the program for stack %s", (stack) => {
  it("runs under the mock runtime and exports the stack and engine of its spec", async () => {
    const spec = loadStackSpec(stack);
    const r = await render(stack);
    expect(r.stack).toBe(stack);
    expect(r.outputs.stack).toBe(stack);
    expect(r.outputs.engine).toMatchObject({ channel: spec.engine.channel });
    if (spec.engine.version) expect((r.outputs.engine as { version: string }).version).toBe(spec.engine.version);
  });

  it("registers a well-formed tree: unique names per type, every parent registered, cloud resources present", async () => {
    const r = await render(stack);
    const keys = r.resources.map(resourceKey);
    expect(new Set(keys).size).toBe(keys.length);
    for (const res of r.resources) if (res.parent) expect(keys).toContain(res.parent);
    expect(r.resources.filter((x) => x.custom).length).toBeGreaterThan(0);
    const plan = buildPlan(r);
    const count = (nodes: typeof plan.resources): number => nodes.reduce((n, x) => n + 1 + count(x.children), 0);
    expect(count(plan.resources)).toBe(r.resources.length);
  });

  it("grows by exactly one host's resources with one more host, and changes nothing that exists", async () => {
    const spec = loadStackSpec(stack);
    const group = spec.hostGroups.find((g) => g.count > 0)!;
    const raw = readStackFile(stack);
    const config = structuredClone(raw.config) as Record<string, any>;
    config["dockyard:hostGroups"][group.name].count = group.count + 1;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dockyard-grow-${stack}-`));
    let bigger: Rendered;
    try {
      fs.writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), YAML.stringify({ ...raw.other, config }));
      bigger = await renderStack(stack, { stacksDir: dir });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const r = await render(stack);
    const before = new Map(r.resources.map((x) => [resourceKey(x), x]));
    const after = new Map(bigger.resources.map((x) => [resourceKey(x), x]));
    // Nothing that exists is removed or gets other inputs, options or parent.
    expect([...before.keys()].filter((k) => !after.has(k))).toEqual([]);
    expect([...before].filter(([k, x]) => JSON.stringify(x) !== JSON.stringify(after.get(k))).map(([k]) => k)).toEqual([]);

    // What is added is the new host's, and it is what the group's last host has of its own:
    // its DockerHost subtree, the fleet's provider for it and its serving gate (the end of its
    // turn in a rollout, components/rollout.ts). The replica count did not change, so the new
    // host runs none (placement moves no replica), hence no service or proxy resources there.
    const last = hostNameFor(stack, group.name, group.count);
    const added = hostNameFor(stack, group.name, group.count + 1);
    const of = (host: string) => new RegExp(`(^|-)${host}(-|$)`);
    const newKeys = [...after.keys()].filter((k) => !before.has(k));
    expect(newKeys.length).toBeGreaterThan(0);
    expect(newKeys.filter((k) => !of(added).test(k.split("::")[1]))).toEqual([]);
    const workload = new RegExp(`^fleet-${last}-`);
    const lastHostOwn = [...before.values()].filter((x) => of(last).test(x.name) && (!workload.test(x.name) || x.name === `fleet-${last}-serving`)).map(resourceKey);
    const asLast = (k: string) => k.replace(/::(.*)$/, (_, n: string) => `::${n.replace(of(added), (m) => m.replace(added, last))}`);
    expect(newKeys.map(asLast).sort()).toEqual(lastHostOwn.sort());
    expect(newKeys).toContain(`dockyard:index:DockerHost::${added}`);
    expect(newKeys).toContain(`aws:ec2/instance:Instance::${added}-instance`);
  });
});

describe.each(STACKS.filter((s) => s !== "prod"))("stack %s against prod", (stack) => {
  it("is identical apart from the per-stack knobs (which do differ)", async () => {
    const report = await checkParity(stack, "prod");
    expect(report.real).toEqual([]);
    expect(report.identical).toBe(true);
    expect(report.allowed.length).toBeGreaterThan(0);
  });
});

describe("a stack whose registry is not ECR (issue 10: the README and the program agree)", () => {
  it("renders: no ECR repository or ECR grant, no credential helper, hosts pull from that registry by digest", async () => {
    const raw = readStackFile("dev");
    const config = structuredClone(raw.config) as Record<string, any>;
    config["dockyard:registry"] = "registry.example.com/dockyard";
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-registry-"));
    let r: Rendered;
    try {
      fs.writeFileSync(path.join(dir, "Pulumi.dev.yaml"), YAML.stringify({ ...raw.other, config }));
      r = await renderStack("dev", { stacksDir: dir });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(r.resources.filter((x) => x.type.startsWith("aws:ecr/")).map(resourceKey)).toEqual([]);
    expect(JSON.stringify(r.resources.filter((x) => x.type.startsWith("aws:iam/")).map((x) => x.inputs))).not.toMatch(/ecr:/);
    const pulls = r.resources.filter((x) => x.type === "command:local:Command" && /docker pull/.test(String(x.inputs.create)));
    expect(pulls.length).toBeGreaterThan(0);
    for (const p of pulls) expect(String(p.inputs.create)).toMatch(/ registry\.example\.com\/dockyard\/(web|haproxy)@sha256:[0-9a-f]{64}$/);
    expect(r.outputs.repositories).toEqual({});
    const instances = r.resources.filter((x) => x.type === "aws:ec2/instance:Instance");
    expect(instances.length).toBeGreaterThan(0);
    for (const i of instances) {
      const userData = zlib.gunzipSync(Buffer.from(String(i.inputs.userDataBase64), "base64")).toString("utf8");
      expect(userData).toContain("REGISTRY_HOST=''");
      // The env file names the helper always; the step that installs and configures it is not there.
      expect(userData).not.toMatch(/registry-auth\.sh|set-cred-helper/);
    }
  });
});

describe("the first deploy of a new stack (issue 11): a sequence of states on the mock runtime", () => {
  /** dev's stack file as a brand-new stack `next` would start: no image digest, no proxy digest. */
  async function renderState(stack: string, edit: (config: Record<string, any>) => void): Promise<Rendered> {
    const raw = readStackFile("dev");
    const config = structuredClone(raw.config) as Record<string, any>;
    edit(config);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-first-"));
    try {
      fs.writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), YAML.stringify({ config }));
      return await renderStack(stack, { stacksDir: dir });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const ofType = (r: Rendered, type: string) => r.resources.filter((x) => x.type === type);

  it("state 1, no digest yet: repositories and hosts exist, no container runs, the outputs say what awaits an image; state 2, digests set: the fleet is added and nothing that existed changes", async () => {
    const dev = readStackFile("dev").config as Record<string, any>;
    const first = await renderState("next", (c) => {
      delete c["dockyard:images"];
      delete c["dockyard:proxyImage"];
    });
    // The repositories the images will be pushed to (the service's and the proxy's), the hosts and engines.
    expect(ofType(first, "aws:ecr/repository:Repository").map((x) => x.name).sort()).toEqual(["registry-haproxy", "registry-web"]);
    expect(ofType(first, "aws:ec2/instance:Instance").length).toBeGreaterThan(0);
    expect(ofType(first, "command:local:Command").filter((x) => x.name.endsWith("-engine-ready")).length).toBe(ofType(first, "aws:ec2/instance:Instance").length);
    // Nothing that needs an image: no container, no image, no pull, no proxy configuration.
    expect(ofType(first, "docker:index/container:Container")).toEqual([]);
    expect(ofType(first, "docker:index/remoteImage:RemoteImage")).toEqual([]);
    // (Each host's drain before a replaced instance stops, its serving gate.)
    expect(ofType(first, "command:local:Command").filter((x) => !x.name.endsWith("-engine-ready") && !x.name.endsWith("-serving") && !x.name.endsWith("-drain")).map((x) => x.name)).toEqual([]);
    // Each host still ends its rollout turn with a serving gate, on no port yet (triggered by its engine's readiness only).
    const gates = ofType(first, "command:local:Command").filter((x) => x.name.endsWith("-serving"));
    expect(gates.length).toBe(ofType(first, "aws:ec2/instance:Instance").length);
    for (const g of gates) expect(g.inputs.create).toBe(servingGateCommand([], 0));
    expect(first.outputs.awaitingImage).toEqual({ services: ["web"], proxy: true });

    // CI pushed the images and pinned their digests (README "The first deploy of a new stack").
    const second = await renderState("next", (c) => {
      c["dockyard:images"] = dev["dockyard:images"];
      c["dockyard:proxyImage"] = dev["dockyard:proxyImage"];
    });
    expect(second.outputs.awaitingImage).toEqual({ services: [], proxy: false });
    expect(ofType(second, "docker:index/container:Container").length).toBeGreaterThan(0);
    const before = new Map(first.resources.map((x) => [resourceKey(x), x]));
    const after = new Map(second.resources.map((x) => [resourceKey(x), x]));
    // Nothing the first `up` created is removed or changed: the second only adds the fleet,
    // and each host's serving gate now also waits for (and triggers on) its new containers.
    expect([...before.keys()].filter((k) => !after.has(k))).toEqual([]);
    const changed = [...before].filter(([k, x]) => JSON.stringify(x) !== JSON.stringify(after.get(k)));
    expect(changed.map(([, x]) => x.name).sort()).toEqual(gates.map((g) => g.name).sort());
    for (const [k, x] of changed) {
      const y = after.get(k)!;
      expect({ ...y.inputs, triggers: undefined, create: undefined }, x.name).toEqual({ ...x.inputs, triggers: undefined, create: undefined });
      expect((y.inputs.triggers as unknown[]).length).toBeGreaterThan((x.inputs.triggers as unknown[]).length);
    }
    const added = [...after.values()].filter((x) => !before.has(resourceKey(x)));
    expect(new Set(added.map((x) => x.type))).toEqual(
      new Set(["docker:index/container:Container", "docker:index/remoteImage:RemoteImage", "docker:index/network:Network", "docker:index/volume:Volume", "command:local:Command", "pulumi:providers:docker"].filter((t) => added.some((x) => x.type === t))),
    );
    expect(added.every((x) => x.name.startsWith("fleet"))).toBe(true);
  }, 300_000);

  it("a service with its digest but no proxy digest yet runs its replicas, and no host runs a proxy", async () => {
    const r = await renderState("next", (c) => {
      delete c["dockyard:proxyImage"];
    });
    expect(r.outputs.awaitingImage).toEqual({ services: [], proxy: true });
    const containers = ofType(r, "docker:index/container:Container").map((x) => x.name);
    expect(containers.length).toBeGreaterThan(0);
    expect(containers.filter((n) => n.endsWith("-proxy"))).toEqual([]);
  }, 300_000);
});

describe("hostAccess public (issue 11): ssh to the Elastic IP with the deployer's key pair", () => {
  it("every host command and the Docker provider dial the association's publicIp with no ProxyCommand, port 22 open to sshCidrs only, and the key pair installed", async () => {
    const raw = readStackFile("dev");
    const config = structuredClone(raw.config) as Record<string, any>;
    config["dockyard:hostAccess"] = "public";
    config["dockyard:sshPublicKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice";
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-public-"));
    let r: Rendered;
    try {
      fs.writeFileSync(path.join(dir, "Pulumi.pub.yaml"), YAML.stringify({ config }));
      r = await renderStack("pub", { stacksDir: dir });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // Every command but the hosts' drains (a wait on the deployer's machine) runs on a host.
    const commands = r.resources.filter((x) => x.type === "command:local:Command" && !x.name.endsWith("-drain"));
    expect(commands.length).toBeGreaterThan(0);
    for (const c of r.resources.filter((x) => x.type === "command:local:Command" && x.name.endsWith("-drain"))) expect(c.inputs.interpreter, c.name).toBeUndefined();
    for (const c of commands) {
      const argv = c.inputs.interpreter as string[];
      expect(argv.slice(-1)[0], c.name).toMatch(/^admin@computed\(pub-app-\d+-eip-association\.publicIp\)$/);
      expect(argv.some((a) => a.startsWith("ProxyCommand=")), c.name).toBe(false);
    }
    const providers = r.resources.filter((x) => x.type === "pulumi:providers:docker");
    for (const p of providers) expect(p.inputs.host).toMatch(/^ssh:\/\/admin@computed\(pub-app-\d+-eip-association\.publicIp\)$/);
    const oneWayIn = RULES.find((x) => x.id === "one-way-in")!;
    expect(oneWayIn.check(r)).toEqual([]);
    const sg = r.resources.find((x) => x.type === "aws:ec2/securityGroup:SecurityGroup" && /-app-\d+-sg$/.test(x.name))!;
    const ssh = (sg.inputs.ingress as { fromPort: number; cidrBlocks: string[] }[]).filter((i) => i.fromPort === 22);
    expect(ssh.map((i) => i.cidrBlocks)).toEqual([config["dockyard:sshCidrs"]]);
    expect(r.resources.filter((x) => x.type === "aws:ec2/keyPair:KeyPair")).toHaveLength(r.resources.filter((x) => x.type === "aws:ec2/instance:Instance").length);
  }, 300_000);

  it("the shipped stacks (hostAccess ssm) dial the association's instance through the ProxyCommand", async () => {
    const r = await render("prod");
    const oneWayIn = RULES.find((x) => x.id === "one-way-in")!;
    expect(oneWayIn.check(r)).toEqual([]);
    const cmd = r.resources.find((x) => x.type === "command:local:Command" && x.name.endsWith("-engine-ready"))!;
    expect((cmd.inputs.interpreter as string[]).some((a) => a.startsWith("ProxyCommand=sh -c ") && a.includes("AWS-StartSSHSession"))).toBe(true);
    const sg = r.resources.find((x) => x.type === "aws:ec2/securityGroup:SecurityGroup" && /-app-\d+-sg$/.test(x.name))!;
    expect((sg.inputs.ingress as { fromPort: number }[]).filter((i) => i.fromPort === 22)).toEqual([]);
  }, 300_000);
});

describe.each([...STACKS])("the front door of stack %s (issue 13)", (stack) => {
  it("one network load balancer over the group's hosts: a TCP listener and target group per published port checked at the proxy's monitor path, hosts' service ports from its security group only, ingressCidrs on it, a status-check alarm pair per host to one topic", async () => {
    const spec = loadStackSpec(stack);
    const r = await render(stack);
    const of = (t: string) => r.resources.filter((x) => x.type === t);
    const base = frontDoorBaseName(stack, "app");
    const hosts = of("aws:ec2/instance:Instance").map((x) => x.name.replace(/-instance$/, ""));
    const ports = [...new Set(spec.services.filter((s) => s.publishPort !== undefined).map((s) => s.publishPort!))].sort((a, b) => a - b);
    expect(ports).toEqual([80]);

    const [lb, ...others] = of("aws:lb/loadBalancer:LoadBalancer");
    expect(others).toEqual([]);
    expect(lb.name).toBe(`${base}-nlb`);
    expect(lb.inputs).toMatchObject({ loadBalancerType: "network", internal: false, enableCrossZoneLoadBalancing: true, securityGroups: [`computed(${base}-sg.id)`], region: spec.region });
    expect(lb.inputs.subnets).toHaveLength(3);

    const tgs = of("aws:lb/targetGroup:TargetGroup");
    expect(tgs.map((t) => [t.name, t.inputs.name, t.inputs.port, t.inputs.protocol, t.inputs.targetType])).toEqual(ports.map((p) => [`${base}-${p}`, `${base}-${p}`, p, "TCP", "instance"]));
    for (const tg of tgs) {
      expect(tg.inputs.healthCheck).toEqual({ ...HEALTH_CHECK });
      expect(tg.inputs.deregistrationDelay).toBe(DEREGISTRATION_DELAY_SECONDS);
    }
    expect((tgs[0].inputs.healthCheck as { path: string }).path).toBe(MONITOR_PATH);
    const listeners = of("aws:lb/listener:Listener");
    expect(listeners.map((l) => [l.inputs.port, l.inputs.protocol, l.inputs.loadBalancerArn, (l.inputs.defaultActions as { targetGroupArn: string }[])[0].targetGroupArn])).toEqual(
      ports.map((p) => [p, "TCP", `computed(${base}-nlb.arn)`, `computed(${base}-${p}.arn)`]),
    );
    expect(listeners.every((l) => l.inputs.certificateArn === undefined)).toBe(true);
    const attachments = of("aws:lb/targetGroupAttachment:TargetGroupAttachment");
    expect(attachments.map((a) => [a.inputs.targetGroupArn, a.inputs.targetId, a.inputs.port]).sort()).toEqual(
      ports.flatMap((p) => hosts.map((h) => [`computed(${base}-${p}.arn)`, `computed(${h}-instance.id)`, p])).sort(),
    );

    // The load balancer's group takes ingressCidrs; the hosts' take the service ports from it only.
    const lbSg = of("aws:ec2/securityGroup:SecurityGroup").find((x) => x.name === `${base}-sg`)!;
    expect(lbSg.inputs.ingress).toEqual(ports.map((p) => expect.objectContaining({ fromPort: p, toPort: p, protocol: "tcp", cidrBlocks: [...spec.access.ingressCidrs].sort() })));
    const hostSgs = of("aws:ec2/securityGroup:SecurityGroup").filter((x) => x !== lbSg);
    expect(hostSgs).toHaveLength(hosts.length);
    for (const sg of hostSgs) {
      const rules = sg.inputs.ingress as { fromPort: number; cidrBlocks?: string[]; securityGroups?: string[] }[];
      const service = rules.filter((x) => x.fromPort !== 22);
      expect(service.map((x) => [x.fromPort, x.securityGroups, x.cidrBlocks ?? []])).toEqual(ports.map((p) => [p, [`computed(${base}-sg.id)`], []]));
      expect(rules.filter((x) => x.fromPort === 22).map((x) => x.cidrBlocks)).toEqual(spec.access.sshCidrs.length > 0 ? [[...spec.access.sshCidrs].sort()] : []);
    }

    // EC2 recovery: the instances keep the default (simplified automatic recovery) and alarm.
    for (const i of of("aws:ec2/instance:Instance")) expect((i.inputs.maintenanceOptions as { autoRecovery?: string } | undefined)?.autoRecovery ?? "default").toBe("default");
    const [topic, ...moreTopics] = of("aws:sns/topic:Topic");
    expect(moreTopics).toEqual([]);
    const alarms = of("aws:cloudwatch/metricAlarm:MetricAlarm");
    expect(alarms.map((a) => [(a.inputs.dimensions as { InstanceId: string }).InstanceId, a.inputs.metricName]).sort()).toEqual(
      hosts.flatMap((h) => [`computed(${h}-instance.id)`]).flatMap((id) => [[id, "StatusCheckFailed_Instance"], [id, "StatusCheckFailed_System"]]).sort(),
    );
    for (const a of alarms) expect(a.inputs).toMatchObject({ namespace: "AWS/EC2", alarmActions: [`computed(${topic.name}.arn)`], okActions: [`computed(${topic.name}.arn)`], threshold: 1 });

    // targetGroupArns: per port, the target group its listener forwards to and every host is
    // registered with; `dockyard smoke --front-door health` asks DescribeTargetHealth of it.
    expect(r.outputs.frontDoor).toEqual({ app: { dnsName: `computed(${base}-nlb.dnsName)`, ports, protocol: "TCP", targetGroupArns: Object.fromEntries(ports.map((p) => [String(p), `computed(${base}-${p}.arn)`])) } });
    expect(r.outputs.alarmTopicArn).toBe(`computed(${topic.name}.arn)`);
  }, 300_000);
});
