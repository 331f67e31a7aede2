/**
 * The front door (issue 13): its names, health check and worst case as plain functions,
 * the hosts' inbound rules behind it, and the program's render of a stack with a
 * certificate (TLS listeners), with a bad certificate knob, and with a local group (no
 * front door). The resources of dev, test and prod are asserted in test/index.test.ts.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import * as YAML from "yaml";
import {
  DEREGISTRATION_DELAY_SECONDS,
  FRONT_DOOR_BASE_MAX,
  HEALTH_CHECK,
  TLS_POLICY,
  frontDoorBaseName,
  frontDoorIngressRules,
  targetGroupName,
  worstCaseDrainSeconds,
} from "../../components/front-door";
import { hostIngressRules, ingressRules } from "../../components/host";
import { MONITOR_PATH } from "../../components/proxy";
import { readStackFile } from "../../stacks";
import { renderStack, type Rendered } from "../../scripts/lib/render";

describe("names", () => {
  it("are <stack>-<group> when that fits, else its start and a hash; never over the ELB limit with -nlb and Pulumi's suffix", () => {
    expect(frontDoorBaseName("prod", "app")).toBe("prod-app");
    const long = frontDoorBaseName("contract-xxxxxz", "workers-xxxxxxxxxxxxxxxxxxxxxxxz");
    expect(long.length).toBeLessThanOrEqual(FRONT_DOOR_BASE_MAX);
    expect(long).toMatch(/^contract-xxxx-[0-9a-f]{6}$/);
    expect(frontDoorBaseName("contract-xxxxxz", "edge-xxxxxxxxxxxxxxxxxxxxxxxxxxz")).not.toBe(long);
    expect(`${long}-nlb`.length + 8).toBeLessThanOrEqual(32);
    expect(targetGroupName(long, 65535).length).toBeLessThanOrEqual(32);
    expect(frontDoorBaseName("internal", "app")).toBe("dy-internal-app");
  });
});

describe("health check and drain", () => {
  it("checks the proxy's monitor path on the traffic port over HTTP, 200 only, within the NLB ranges", () => {
    expect(HEALTH_CHECK).toMatchObject({ protocol: "HTTP", port: "traffic-port", path: MONITOR_PATH, matcher: "200" });
    expect(HEALTH_CHECK.interval).toBeGreaterThanOrEqual(5);
    expect(HEALTH_CHECK.timeout).toBeLessThan(HEALTH_CHECK.interval);
    expect(DEREGISTRATION_DELAY_SECONDS).toBe(30);
  });
  it("a dead host gets new connections for at most 2 x 10 s + 5 s = 25 s", () => {
    expect(worstCaseDrainSeconds()).toBe(25);
    expect(worstCaseDrainSeconds({ interval: 30, timeout: 6, unhealthyThreshold: 3 })).toBe(96);
  });
});

describe("inbound rules", () => {
  const base = { stack: "dev", group: "app", sshCidrs: ["198.51.100.0/24"], ingressCidrs: ["203.0.113.0/24", "203.0.113.0/24"], servicePorts: [443, 80] };
  it("the load balancer takes each published port from ingressCidrs, nothing without them", () => {
    expect(frontDoorIngressRules(base.servicePorts, base.ingressCidrs)).toEqual([
      { description: "service port 80 (dockyard:ingressCidrs)", protocol: "tcp", fromPort: 80, toPort: 80, cidrBlocks: ["203.0.113.0/24"] },
      { description: "service port 443 (dockyard:ingressCidrs)", protocol: "tcp", fromPort: 443, toPort: 443, cidrBlocks: ["203.0.113.0/24"] },
    ]);
    expect(frontDoorIngressRules([80], [])).toEqual([]);
  });
  it("a host behind a front door: SSH as before, service ports from the front door's group only; without one, ingressRules", () => {
    expect(hostIngressRules({ ...base, frontDoorSecurityGroupId: "sg-front" })).toEqual([
      { description: "SSH (dockyard:sshCidrs)", protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["198.51.100.0/24"] },
      { description: "service port 80 (from the front door)", protocol: "tcp", fromPort: 80, toPort: 80, securityGroups: ["sg-front"] },
      { description: "service port 443 (from the front door)", protocol: "tcp", fromPort: 443, toPort: 443, securityGroups: ["sg-front"] },
    ]);
    expect(hostIngressRules(base)).toEqual(ingressRules(base));
  });
});

/** Renders `stack` with its stack file's config changed by `edit`. */
async function renderEdited(stack: string, edit: (config: Record<string, any>) => void): Promise<Rendered> {
  const raw = readStackFile(stack);
  const config = structuredClone(raw.config) as Record<string, any>;
  edit(config);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dockyard-front-door-${stack}-`));
  try {
    fs.writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), YAML.stringify({ ...raw.other, config }));
    return await renderStack(stack, { stacksDir: dir });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";

describe("the program's front door (mock runtime)", () => {
  it("with dockyard:certificateArn, every listener is TLS with the certificate and the TLS 1.2/1.3 policy, its target groups stay TCP, and the output says TLS", async () => {
    const r = await renderEdited("prod", (c) => (c["dockyard:certificateArn"] = CERT));
    const listeners = r.resources.filter((x) => x.type === "aws:lb/listener:Listener");
    expect(listeners.length).toBeGreaterThan(0);
    for (const l of listeners) expect(l.inputs).toMatchObject({ protocol: "TLS", certificateArn: CERT, sslPolicy: TLS_POLICY });
    for (const tg of r.resources.filter((x) => x.type === "aws:lb/targetGroup:TargetGroup")) expect(tg.inputs.protocol).toBe("TCP");
    expect((r.outputs.frontDoor as Record<string, { protocol: string }>).app.protocol).toBe("TLS");
  }, 300_000);

  it("refuses a certificate knob that is no ACM ARN, or an ACM certificate of another region, naming the key", async () => {
    await expect(renderEdited("prod", (c) => (c["dockyard:certificateArn"] = "arn:aws:iam::123456789012:server-certificate/x"))).rejects.toThrow(/dockyard:certificateArn.*must be an ACM certificate ARN/s);
    await expect(renderEdited("prod", (c) => (c["dockyard:certificateArn"] = CERT.replace("eu-west-1", "us-east-1")))).rejects.toThrow(/dockyard:certificateArn: the certificate is in us-east-1, but the stack's load balancer is in eu-west-1/);
  }, 300_000);

  it("a stack of local hosts has no front door and no alarms (no EC2 there)", async () => {
    const r = await renderStack("local");
    expect(r.resources.filter((x) => x.type.startsWith("aws:lb/") || x.type === "dockyard:index:FrontDoor" || x.type === "aws:cloudwatch/metricAlarm:MetricAlarm")).toEqual([]);
    expect(r.outputs.frontDoor).toEqual({});
    expect(r.outputs.alarmTopicArn).toBeUndefined();
  }, 300_000);
});
