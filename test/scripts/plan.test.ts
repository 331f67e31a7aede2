/**
 * `dockyard plan`: the pure presentation (tree, key properties, (computed)), the
 * config hand-over to the program, and the command end to end on the real program
 * and on a fixture program that registers representative resources.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRET_PLACEHOLDER, STACKS_DIR, loadStackSpec } from "../../stacks";
import { FIXTURE, cli } from "./cli";
import { KEY_PROPERTIES, buildPlan, displayValue, formatPlan, keyProperties, renderStack, toPulumiConfig, type Rendered } from "../../scripts/lib/render";

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-plan-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of the shipped stack files with one stack file's text changed. */
function stacksCopy(name: string, stack: string, edit: (text: string) => string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(STACKS_DIR).filter((f) => f.endsWith(".yaml"))) fs.copyFileSync(path.join(STACKS_DIR, f), path.join(dir, f));
  const file = path.join(dir, `Pulumi.${stack}.yaml`);
  const before = fs.readFileSync(file, "utf8");
  const after = edit(before);
  expect(after).not.toBe(before); // the planted change really happened
  fs.writeFileSync(file, after);
  return dir;
}

describe("toPulumiConfig", () => {
  it("passes structured values as JSON strings and scalars as strings, like the Pulumi engine", () => {
    const { config, secretKeys } = toPulumiConfig({ config: { "aws:region": "eu-west-1", "dockyard:hostGroups": { app: { count: 2 } }, "dockyard:sshCidrs": ["10.0.0.0/8"], n: 3 } });
    expect(config["aws:region"]).toBe("eu-west-1");
    expect(JSON.parse(config["dockyard:hostGroups"])).toEqual({ app: { count: 2 } });
    expect(JSON.parse(config["dockyard:sshCidrs"])).toEqual(["10.0.0.0/8"]);
    expect(config.n).toBe("3");
    expect(secretKeys).toEqual([]);
  });

  it("never passes an encrypted value on: secure leaves become the placeholder and the key is secret", () => {
    const { config, secretKeys } = toPulumiConfig({ config: { "dockyard:secrets": { db: { secure: "v1:abcdef" } } } });
    expect(JSON.parse(config["dockyard:secrets"])).toEqual({ db: SECRET_PLACEHOLDER });
    expect(config["dockyard:secrets"]).not.toContain("v1:abcdef");
    expect(secretKeys).toEqual(["dockyard:secrets"]);
  });
});

describe("presentation", () => {
  const rendered: Rendered = {
    project: "dockyard",
    stack: "dev",
    resources: [
      { type: "aws:ec2/securityGroup:SecurityGroup", name: "dev-app-10-sg", parent: "dockyard:index:DockerHost::dev-app-10", custom: true, inputs: { ingress: [{ fromPort: 80 }] } },
      { type: "aws:ec2/instance:Instance", name: "dev-app-2-instance", parent: "dockyard:index:DockerHost::dev-app-2", custom: true, inputs: { instanceType: "t3.small", ami: "computed(getAmi.id)", userData: "#cloud-config" } },
      { type: "dockyard:index:DockerHost", name: "dev-app-10", custom: false, inputs: {} },
      { type: "dockyard:index:DockerHost", name: "dev-app-2", custom: false, inputs: {} },
      { type: "example:index:NotInTheTable", name: "dev-x", custom: true, inputs: { anything: 1 } },
    ],
    outputs: { ip: "computed(dev-app-2-eip.publicIp)", stack: "dev" },
  };

  it("shows cloud-only values as (computed), also inside larger strings and structures", () => {
    expect(displayValue("computed(a.id)")).toBe("(computed)");
    expect(displayValue({ x: ["arn:computed(r.arn)/x"] })).toEqual({ x: ["arn:(computed)/x"] });
    expect(displayValue(3)).toBe(3);
    // Inputs the program marked secret arrive wrapped; they are never shown.
    const wrapped = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: "hunter2" };
    expect(displayValue({ password: wrapped })).toEqual({ password: SECRET_PLACEHOLDER });
  });

  it("shows the key properties of known types and nothing for types not in the table", () => {
    expect(KEY_PROPERTIES["aws:ec2/instance:Instance"]).toContain("instanceType");
    expect(keyProperties(rendered.resources[1])).toEqual({ instanceType: "t3.small", ami: "(computed)" });
    expect(keyProperties(rendered.resources[4])).toEqual({});
  });

  it("nests resources under their parents and sorts siblings by type, then name (numbers numerically)", () => {
    const plan = buildPlan(rendered);
    expect(plan.resourceCount).toBe(5);
    expect(plan.resources.map((n) => n.name)).toEqual(["dev-app-2", "dev-app-10", "dev-x"]);
    expect(plan.resources[0].children.map((n) => n.name)).toEqual(["dev-app-2-instance"]);
    expect(plan.resources[1].children.map((n) => n.name)).toEqual(["dev-app-10-sg"]);
    expect(plan.outputs.ip).toBe("(computed)");
    // --all shows every input
    expect(buildPlan(rendered, { all: true }).resources[0].children[0].properties.userData).toBe("#cloud-config");
  });

  it("prints a tree with properties beneath each resource, then the outputs", () => {
    const text = formatPlan(buildPlan(rendered));
    const lines = text.split("\n");
    expect(lines[0]).toBe("Stack dev (project dockyard): 5 resources");
    expect(text).toContain("├─ dockyard:index:DockerHost  dev-app-2\n│  └─ aws:ec2/instance:Instance  dev-app-2-instance\n│         instanceType: t3.small\n│         ami: (computed)\n├─ dockyard:index:DockerHost  dev-app-10\n");
    expect(text).toContain("└─ example:index:NotInTheTable  dev-x");
    expect(text).toMatch(/Outputs:\n {2}ip: \(computed\)\n {2}stack: dev\n$/);
  });

  it("prints larger structures as indented YAML under the key, short lists inline", () => {
    const rules = [22, 80, 443].map((p) => ({ protocol: "tcp", fromPort: p, toPort: p, cidrBlocks: ["198.51.100.0/24"], description: `port ${p}` }));
    const text = formatPlan(buildPlan({ ...rendered, resources: [{ type: "aws:ec2/securityGroup:SecurityGroup", name: "dev-sg", custom: true, inputs: { ingress: rules } }] }));
    expect(text).toContain(
      ["└─ aws:ec2/securityGroup:SecurityGroup  dev-sg", "       ingress:", "         - protocol: tcp", "           fromPort: 22", "           toPort: 22", "           cidrBlocks: [ 198.51.100.0/24 ]", "           description: port 22", "         - protocol: tcp"].join("\n"),
    );
  });
});

describe("render (mock runtime, child process)", () => {
  it("runs the real program for dev and returns its outputs", async () => {
    const r = await renderStack("dev");
    const spec = loadStackSpec("dev");
    expect(r.stack).toBe("dev");
    expect(r.outputs.stack).toBe("dev");
    expect(r.outputs.engine).toEqual({ channel: spec.engine.channel, version: spec.engine.version ?? "distro default", liveRestore: spec.engine.daemon.liveRestore });
    for (const res of r.resources) if (res.parent) expect(r.resources.map((x) => `${x.type}::${x.name}`)).toContain(res.parent);
  });

  it("records parents, waits for resources registered inside applies, and reads ids as computed", async () => {
    const r = await renderStack("test", { program: FIXTURE });
    const names = r.resources.map((x) => x.name).sort();
    // test: 2 hosts x (component + sg + instance + eip created in an apply) + 2 web replicas
    expect(names).toEqual(["test-app-1", "test-app-1-eip", "test-app-1-instance", "test-app-1-sg", "test-app-2", "test-app-2-eip", "test-app-2-instance", "test-app-2-sg", "test-web-1", "test-web-2"]);
    const eip = r.resources.find((x) => x.name === "test-app-2-eip")!;
    expect(eip.parent).toBe("dockyard:index:DockerHost::test-app-2");
    expect(eip.inputs.instance).toBe("computed(test-app-2-instance.id)");
    expect(r.resources.find((x) => x.name === "test-web-1")!.parent).toBeUndefined();
    expect(r.outputs.hostIps).toEqual(["computed(test-app-1-instance.publicIp)", "computed(test-app-2-instance.publicIp)"]);
  });

  it("is deterministic: two renders of the same stack are identical once sorted", async () => {
    const sort = (r: Rendered) => ({ ...r, resources: [...r.resources].sort((a, b) => `${a.type}${a.name}`.localeCompare(`${b.type}${b.name}`)) });
    const [a, b] = await Promise.all([renderStack("prod", { program: FIXTURE }), renderStack("prod", { program: FIXTURE })]);
    expect(sort(a)).toEqual(sort(b));
    expect(a.resources.length).toBe(3 * 4 + 3);
  });
});

describe("dockyard plan (CLI)", () => {
  it("prints the dev stack's tree and outputs, exit 0", async () => {
    const r = await cli(["plan", "dev"]);
    expect(r.stderr).toContain("Rendering stack dev");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Stack dev \(project dockyard\): \d+ resources?\n/);
    expect(r.stdout).toContain("Outputs:\n");
    expect(r.stdout).toContain("  stack: dev\n");
    expect(r.stdout).toContain("5:28.5.1-1~debian.12~bookworm");
  });

  it("--json prints the same plan as JSON", async () => {
    const r = await cli(["plan", "prod", "--json", "--program", FIXTURE]);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.stack).toBe("prod");
    expect(plan.resourceCount).toBe(15);
    const host = plan.resources.find((n: { name: string }) => n.name === "prod-app-3");
    expect(host.type).toBe("dockyard:index:DockerHost");
    const instance = host.children.find((n: { type: string }) => n.type === "aws:ec2/instance:Instance");
    expect(instance.properties).toMatchObject({ instanceType: "m6i.large", "metadataOptions.httpTokens": "required" });
    expect(host.children.find((n: { type: string }) => n.type === "aws:ec2/eip:Eip").properties.instance).toBe("(computed)");
  });

  it("never prints a secret input, also with --all and --json", async () => {
    for (const args of [["--all"], ["--all", "--json"]]) {
      const r = await cli(["plan", "test", "--program", FIXTURE, ...args]);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain("fixture-secret");
      expect(r.stdout).toContain("[secret]");
    }
  });

  it("bad stack config: exit 2 with every problem named by stack and key, and the program never runs", async () => {
    const dir = stacksCopy("bad", "dev", (t) => t.replace("count: 1", "count: -1") + "  dockyard:engineVersion: '27.0'\n");
    const marker = path.join(tmp, "ran-bad");
    const r = await cli(["plan", "dev", "--stacks-dir", dir, "--program", FIXTURE], { DOCKYARD_FIXTURE_MARKER: marker });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain('Invalid configuration for stack "dev" (2 problems)');
    expect(r.stderr).toMatch(/stacks\/Pulumi\.dev\.yaml: config\.dockyard:hostGroups\.app\.count: must be an integer from 0 to 50 \(got -1\)/);
    expect(r.stderr).toMatch(/unknown key "dockyard:engineVersion"; allowed: aws:region, dockyard:registry/);
    expect(fs.existsSync(marker)).toBe(false);
    // The control: the same fixture with a good stack file does run.
    const ok = await cli(["plan", "dev", "--program", FIXTURE], { DOCKYARD_FIXTURE_MARKER: marker });
    expect(ok.code).toBe(0);
    expect(fs.existsSync(marker)).toBe(true);
  });

  it("prints the rollout batches read from the dependency graph: prod with 5 hosts and maxUnavailable 2 rolls 2, 2, 1; --json has them too", async () => {
    const dir = stacksCopy("rollout", "prod", (t) => t.replace("count: 3\n", "count: 5\n      maxUnavailable: 2\n"));
    const r = await cli(["plan", "prod", "--stacks-dir", dir]);
    expect(r.code, r.stderr).toBe(0);
    const section = r.stdout.slice(r.stdout.indexOf("\nRollout"));
    expect(section.split("\n").filter((l) => l.startsWith("  batch"))).toEqual([
      "  batch 1: prod-app-1",
      "  batch 1: prod-app-2",
      "  batch 2: prod-app-3  (waits for prod-app-1, prod-app-2)",
      "  batch 2: prod-app-4  (waits for prod-app-1, prod-app-2)",
      "  batch 3: prod-app-5  (waits for prod-app-3, prod-app-4)",
    ]);
    const json = await cli(["plan", "prod", "--stacks-dir", dir, "--json"]);
    expect(JSON.parse(json.stdout).rollout.map((t: { batch: number }) => t.batch)).toEqual([1, 1, 2, 2, 3]);
    // All hosts at once is refused before anything runs.
    const all = stacksCopy("rollout-all", "prod", (t) => t.replace("count: 3\n", "count: 3\n      maxUnavailable: 3\n"));
    const bad = await cli(["plan", "prod", "--stacks-dir", all]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("stacks/Pulumi.prod.yaml: config.dockyard:hostGroups.app.maxUnavailable: 3 would roll all 3 hosts of the group at once (every replica and proxy down together); allowed: 1 to 2");
  }, 300_000);

  it("usage errors exit 2: no stack, an unknown stack (naming the stacks there), an unknown option", async () => {
    const none = await cli(["plan"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("Not enough non-option arguments");
    const unknown = await cli(["plan", "staging"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('stack "staging"');
    expect(unknown.stderr).toContain("no such stack file; stacks: dev, local, prod, test");
    const opt = await cli(["plan", "dev", "--jsonn"]);
    expect(opt.code).toBe(2);
    expect(opt.stderr).toContain("Unknown argument: jsonn");
  });

  it("a program failure is exit 1 with the error", async () => {
    const broken = path.join(tmp, "broken.ts");
    fs.writeFileSync(broken, 'throw new Error("boom in the program");\n');
    const r = await cli(["plan", "dev", "--program", broken]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("boom in the program");
    const call = await cli(["plan", "dev", "--program", path.join(__dirname, "fixtures", "unexpected-call.ts")]);
    expect(call.code).toBe(1);
    expect(call.stderr).toContain("unexpected provider call aws:nothing/unknown:getUnknown");
  });
});
