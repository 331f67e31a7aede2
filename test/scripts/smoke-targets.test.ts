/**
 * What `dockyard smoke` asks, derived from the outputs of the REAL program (index.ts) for
 * test and prod, rendered under the mock runtime (scripts/lib/render.ts) with the cloud's
 * values filled in (smoke-fixtures.ts deployed): not from a hand-written object. index.ts
 * exports `frontDoor` keyed by host group ({ app: { dnsName, ports, protocol } }); the hosts'
 * security groups admit the service ports from the front door's group only
 * (components/host.ts hostIngressRules), so each host is asked on the host itself, over the
 * connection Pulumi uses: the ssh command line of the host's rendered serving-gate command
 * (components/connection.ts hostCommandInterpreter), whose ProxyCommand with hostAccess ssm
 * pushes a key with EC2 Instance Connect and opens a Session Manager session.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { sshArgv } from "../../components/connection";
import { loadStackSpec, STACKS_DIR } from "../../stacks";
import { hostRequestCommand } from "../../scripts/lib/remote";
import { renderStack, type Rendered } from "../../scripts/lib/render";
import { smokeTargets, type SmokeTarget } from "../../scripts/smoke";
import { deployed } from "./smoke-fixtures";

const CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0b3c6f0e-8a4e-4d4b-9c7a-5f0e2d1c3b4a";
let dir: string;
const rendered: Record<string, Rendered> = {};

beforeAll(async () => {
  // prod as shipped, plus dockyard:certificateArn: its listeners are TLS (components/front-door.ts).
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-smoke-targets-"));
  for (const s of ["test", "prod"]) fs.copyFileSync(path.join(STACKS_DIR, `Pulumi.${s}.yaml`), path.join(dir, `Pulumi.${s}.yaml`));
  const prod = YAML.parse(fs.readFileSync(path.join(dir, "Pulumi.prod.yaml"), "utf8"));
  prod.config["dockyard:certificateArn"] = CERT;
  fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), YAML.stringify(prod));
  const [test, prodTls] = await Promise.all([renderStack("test", { stacksDir: dir }), renderStack("prod", { stacksDir: dir })]);
  rendered.test = test;
  rendered.prod = prodTls;
}, 120_000);

/** The targets smoke derives from a stack's deployed outputs, as [where, how, URL]. */
function derive(stack: string, opts: { tlsName?: string } = {}): SmokeTarget[] {
  const spec = loadStackSpec(stack, { dir });
  return smokeTargets(spec, deployed(rendered[stack].outputs), `${stack}-outputs.json`, opts).targets;
}

/** The ssh command line Pulumi runs a host's serving gate with (the rendered interpreter, cloud values filled in). */
function pulumiSsh(stack: string, host: string): string[] {
  const gate = rendered[stack].resources.find((r) => r.type === "command:local:Command" && r.name === `fleet-${host}-serving`);
  expect(gate, `fleet-${host}-serving in the render of ${stack}`).toBeDefined();
  return deployed(gate!.inputs.interpreter as string[]);
}

describe("smoke's targets from the real program's outputs", () => {
  it("test: the group's front door over http on the published port, and each host on the host itself", () => {
    const out = deployed(rendered.test.outputs) as Record<string, any>;
    // The shape index.ts exports: per group, not flat.
    expect(Object.keys(out.frontDoor)).toEqual(["app"]);
    expect(out.frontDoor.app).toMatchObject({ ports: [80], protocol: "TCP" });
    const dns = out.frontDoor.app.dnsName as string;
    expect(dns).toMatch(/^test-app-nlb-[0-9a-f]{16}\.elb\.eu-west-1\.amazonaws\.com$/);
    const targets = derive("test");
    expect(targets.map((t) => [t.service, t.host, t.via, t.url])).toEqual([
      ["web", "frontDoor.app", "client", `http://${dns}:80/healthz`],
      ["web", "test-app-1", "ssh", "http://127.0.0.1:80/healthz"],
      ["web", "test-app-2", "ssh", "http://127.0.0.1:80/healthz"],
    ]);
    // No request goes to a host's public address: its service port admits the front door only.
    for (const h of Object.values(out.hostsByName) as { publicIp: string }[]) expect(targets.some((t) => t.url.includes(h.publicIp))).toBe(false);
  });

  it("each host is reached by the ssh command line Pulumi itself uses for that host (pinned key, Session Manager ProxyCommand)", () => {
    for (const [stack, hosts] of [["test", ["test-app-1", "test-app-2"]], ["prod", ["prod-app-1", "prod-app-2", "prod-app-3"]]] as const) {
      const byHost = new Map(derive(stack).filter((t) => t.via === "ssh").map((t) => [t.host, t]));
      expect([...byHost.keys()]).toEqual(hosts);
      for (const h of hosts) {
        const argv = sshArgv(byHost.get(h)!.access!);
        expect(argv).toEqual(pulumiSsh(stack, h));
        expect(argv.join(" ")).toContain("aws ssm start-session --region eu-west-1");
        expect(argv[argv.length - 1]).toMatch(/^admin@i-0[0-9a-f]{16}$/);
      }
    }
  });

  it("prod with dockyard:certificateArn: the front door's listener is TLS, so it is asked over https, for --tls-name when given", () => {
    const out = deployed(rendered.prod.outputs) as Record<string, any>;
    expect(out.frontDoor.app).toMatchObject({ ports: [80], protocol: "TLS" });
    const fd = derive("prod").filter((t) => t.via === "client");
    expect(fd).toEqual([{ service: "web", host: "frontDoor.app", via: "client", url: `https://${out.frontDoor.app.dnsName}:80/healthz` }]);
    expect(derive("prod", { tlsName: "app.example.com" }).find((t) => t.via === "client")!.tlsName).toBe("app.example.com");
    // test has no certificate: --tls-name changes nothing there (http).
    expect(derive("test", { tlsName: "app.example.com" }).find((t) => t.via === "client")!.tlsName).toBeUndefined();
  });

  it("--front-door health: per published port the target group its listener forwards to, with every instance the program registers there that runs the service", () => {
    for (const stack of ["test", "prod"]) {
      const r = rendered[stack];
      const listener = r.resources.find((x) => x.type === "aws:lb/listener:Listener" && x.inputs.port === 80)!;
      const forwardsTo = deployed((listener.inputs.defaultActions as { targetGroupArn: string }[])[0].targetGroupArn);
      const registered = deployed(r.resources.filter((x) => x.type === "aws:lb/targetGroupAttachment:TargetGroupAttachment" && x.inputs.port === 80).map((x) => x.inputs.targetId as string)).sort();
      const targets = smokeTargets(loadStackSpec(stack, { dir }), deployed(r.outputs), `${stack}-outputs.json`, { frontDoor: "health" }).targets;
      const elb = targets.filter((t) => t.via === "elb");
      expect(elb).toHaveLength(1);
      expect(elb[0]).toMatchObject({ service: "web", host: "frontDoor.app", url: forwardsTo, targetHealth: { region: "eu-west-1", targetGroupArn: forwardsTo } });
      expect(forwardsTo).toMatch(/^arn:aws:elasticloadbalancing:eu-west-1:\d{12}:targetgroup\/[a-z0-9-]+-80\/[0-9a-f]{16}$/);
      expect(elb[0].targetHealth!.expected.map((e) => e.instanceId).sort()).toEqual(registered);
      // No request to the front door; the hosts are still asked on the hosts.
      expect(targets.filter((t) => t.via === "client")).toEqual([]);
      expect(targets.filter((t) => t.via === "ssh").map((t) => t.host)).toEqual(elb[0].targetHealth!.expected.map((e) => e.host));
    }
  });

  it("the command run on each host: bash reads scripts/lib/host-request.sh and asks its proxy on 127.0.0.1", () => {
    const c = hostRequestCommand(80, "/healthz", 5);
    expect(c.command).toBe("bash -s -- 80 '/healthz' 5.0");
    expect(c.stdin).toBe(fs.readFileSync(path.join(__dirname, "../../scripts/lib/host-request.sh"), "utf8"));
    expect(c.stdin).toContain("/dev/tcp/127.0.0.1/$port");
    // A path with shell characters reaches the script as one argument, as the host's login shell splits the line.
    const line = hostRequestCommand(8080, "/h?x=1&y='2'", 1).command;
    expect(execFileSync("sh", ["-c", line.replace(/^bash -s --/, "printf '%s\\n'")], { encoding: "utf8" }).split("\n")).toEqual(["8080", "/h?x=1&y='2'", "1.0", ""]);
  });

  it("outputs that lack a front door for an EC2 group are bad input, naming the key (its hosts cannot be asked from outside)", () => {
    const out = deployed(rendered.test.outputs) as Record<string, unknown>;
    const spec = loadStackSpec("test", { dir });
    expect(() => smokeTargets(spec, { ...out, frontDoor: {} }, "f.json")).toThrow(/^f\.json: frontDoor\.app: missing, but web publishes port 80 on EC2 hosts of group app, which admit it from the front door only/);
    // The flat shape the old unit test fed is not the program's: refused too.
    expect(() => smokeTargets(spec, { ...out, frontDoor: { dnsName: "x.example.com" } }, "f.json")).toThrow(/^f\.json: frontDoor\.app: missing/);
    // The values a preview leaves unknown are no address.
    expect(() => smokeTargets(spec, rendered.test.outputs, "f.json")).toThrow(/^f\.json: frontDoor\.app\.dnsName: "computed\(test-app-nlb\.dnsName\)" is not a DNS name/);
  });
});
