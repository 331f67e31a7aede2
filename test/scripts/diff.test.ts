/**
 * `dockyard diff`: the comparison rules (pure), and the parity check end to end:
 * the shipped stacks are identical up to their knobs; planted differences in a copy
 * of environment.yaml used for one side (another engine version, a different health
 * check, another or an extra port) are caught and named.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENVIRONMENT_FILE, STACKS_DIR } from "../../stacks";
import { compareRendered, compareValues, environmentDifferences, formatParity, normalizeName, sameString } from "../../scripts/diff";
import { writeSwarmStack } from "../contracts/stacks";
import type { Rendered } from "../../scripts/lib/render";
import { FIXTURE, cli } from "./cli";

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-diff-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of environment.yaml with a planted change; fails if the change did not apply. */
function plantedEnvironment(name: string, edit: (text: string) => string): string {
  const before = fs.readFileSync(ENVIRONMENT_FILE, "utf8");
  const after = edit(before);
  expect(after).not.toBe(before);
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(file, after);
  return file;
}

describe("comparison rules", () => {
  it("normalizes the stack name in resource names as a token only", () => {
    expect(normalizeName("dev-app-1", "dev")).toBe("<stack>-app-1");
    expect(normalizeName("dockyard-dev", "dev")).toBe("dockyard-<stack>");
    expect(normalizeName("device-1", "dev")).toBe("device-1");
    expect(normalizeName("latest", "test")).toBe("latest");
  });

  it("treats the stack name inside values as the stack, but nothing else", () => {
    expect(sameString("dev-app-1", "prod-app-1", "dev", "prod")).toBe(true);
    expect(sameString("computed(dev-app-1-instance.id)", "computed(prod-app-1-instance.id)", "dev", "prod")).toBe(true);
    // /dev/xvdf is a device path, not the dev stack: equal when both keep it
    expect(sameString("mount /dev/xvdf for dev", "mount /dev/xvdf for prod", "dev", "prod")).toBe(true);
    expect(sameString("latest", "laprod", "test", "prod")).toBe(false);
    expect(sameString("port 80 on dev", "port 81 on prod", "dev", "prod")).toBe(false);
    expect(sameString("t3.small", "m6i.large", "dev", "prod")).toBe(false);
  });

  it("compares base64 and gzip+base64 payloads (user-data) by their text", () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const gz = (s: string) => zlib.gzipSync(Buffer.from(s)).toString("base64");
    expect(sameString(b64("#cloud-config\nhostname: dev-app-1\n"), b64("#cloud-config\nhostname: prod-app-1\n"), "dev", "prod")).toBe(true);
    expect(sameString(gz("#cloud-config\nstack: dev\n"), gz("#cloud-config\nstack: prod\n"), "dev", "prod")).toBe(true);
    expect(sameString(gz("version: 28.5.1 on dev"), gz("version: 27.0.0 on prod"), "dev", "prod")).toBe(false);
  });

  it("reports differing leaves by path, and arrays of another length as a whole", () => {
    const d = compareValues(
      { ingress: [{ fromPort: 22 }, { fromPort: 80 }], tags: { Stack: "dev" }, hc: { tests: ["/healthz"] } },
      { ingress: [{ fromPort: 22 }, { fromPort: 81 }], tags: { Stack: "prod" }, hc: { tests: ["/health"] } },
      { a: "dev", b: "prod" },
    );
    expect(d).toEqual([
      { path: "hc.tests[0]", a: "/healthz", b: "/health" },
      { path: "ingress[1].fromPort", a: 80, b: 81 },
    ]);
    expect(compareValues({ p: [1] }, { p: [1, 2] }, { a: "dev", b: "prod" })).toEqual([{ path: "p", a: [1], b: [1, 2] }]);
    expect(compareValues({ a: 1 }, { a: 1, extra: true }, { a: "x", b: "y" })).toEqual([{ path: "extra", a: undefined, b: true }]);
    // Secrets are compared but never shown.
    const secret = (value: unknown) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value });
    expect(compareValues({ s: secret("x-dev") }, { s: secret("x-prod") }, { a: "dev", b: "prod" })).toEqual([]);
    expect(compareValues({ s: secret("one") }, { s: secret("two") }, { a: "dev", b: "prod" })).toEqual([{ path: "s", a: "[secret]", b: "[secret]" }]);
  });

  it("matches resources by normalized name and type; folds added children into their parent", () => {
    const a: Rendered = {
      project: "dockyard",
      stack: "dev",
      resources: [
        { type: "t:Host", name: "dev-app-1", custom: false, inputs: {} },
        { type: "t:Vm", name: "dev-app-1-vm", parent: "t:Host::dev-app-1", custom: true, inputs: { size: "s", name: "dev-app-1" } },
        { type: "t:Odd", name: "dev-odd", custom: true, inputs: {} },
      ],
      outputs: { stack: "dev", version: "1" },
    };
    const b: Rendered = {
      project: "dockyard",
      stack: "prod",
      resources: [
        { type: "t:Host", name: "prod-app-1", custom: false, inputs: {} },
        { type: "t:Vm", name: "prod-app-1-vm", parent: "t:Host::prod-app-1", custom: true, inputs: { size: "l", name: "prod-app-1" } },
        { type: "t:Host", name: "prod-app-2", custom: false, inputs: {} },
        { type: "t:Vm", name: "prod-app-2-vm", parent: "t:Host::prod-app-2", custom: true, inputs: { size: "l" } },
        { type: "t:Other", name: "prod-odd", custom: true, inputs: {} },
      ],
      outputs: { stack: "prod", version: "2" },
    };
    expect(compareRendered(a, b)).toEqual([
      { resource: "t:Vm <stack>-app-1-vm", kind: "property", path: "size", a: "s", b: "l" },
      { resource: "<stack>-odd", kind: "type", a: "t:Odd", b: "t:Other" },
      { resource: "t:Host <stack>-app-2", kind: "added", children: 1 },
      { resource: "(outputs)", kind: "output", path: "version", a: "1", b: "2" },
    ]);
    expect(compareRendered(a, a)).toEqual([]);
  });
});

describe("environment differences", () => {
  it("name fleet.mode between a static and a swarm definition, defaults applied, and print it as a real difference", () => {
    const { environmentFile } = writeSwarmStack("prod");
    const d = environmentDifferences("prod", "prod", ENVIRONMENT_FILE, environmentFile!);
    expect(d).toEqual([{ resource: "(environment)", kind: "environment", path: "fleet.mode", a: "static", b: "swarm" }]);
    expect(environmentDifferences("prod", "prod", environmentFile!, environmentFile!)).toEqual([]);
    expect(formatParity({ a: "prod", b: "prod", identical: false, allowed: [], real: d, knobKeys: [] })).toContain("error: (environment): fleet.mode differs: prod=static prod=swarm");
  });
});

describe("dockyard diff (CLI)", () => {
  it("dev and prod, as shipped, are identical up to the per-stack knobs: exit 0", async () => {
    const r = await cli(["diff", "dev", "prod"]);
    expect(r.stderr).toContain("Rendering dev, prod");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("OK: dev and prod are identical apart from the per-stack knobs.");
  });

  it("dev and local (issue 12): the EC2 host and the machine container are both the platform knob's doing: exit 0", async () => {
    const r = await cli(["diff", "dev", "local", "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.real).toEqual([]);
    // What differs, and is allowed because dockyard:hostGroups.app.platform explains it:
    expect(report.allowed).toContainEqual({ resource: "<stack>-app-1", kind: "type", a: "dockyard:index:DockerHost", b: "dockyard:index:LocalHost" });
    expect(report.allowed).toContainEqual({ resource: "<stack>-app-1-data", kind: "type", a: "aws:ebs/volume:Volume", b: "docker:index/volume:Volume" });
    expect(report.allowed).toContainEqual(expect.objectContaining({ resource: "aws:ec2/eipAssociation:EipAssociation <stack>-app-1-eip-association", kind: "removed" }));
    expect(report.allowed).toContainEqual(expect.objectContaining({ kind: "output", path: 'hostsByName."<stack>-app-1".platform', a: "aws", b: "local" }));
  });

  it("lists the knob differences (sizes, counts, CIDRs, registry) as allowed, by provenance", async () => {
    const r = await cli(["diff", "dev", "prod", "--program", FIXTURE, "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.identical).toBe(true);
    expect(report.real).toEqual([]);
    expect(report.allowed).toContainEqual({ resource: "aws:ec2/instance:Instance <stack>-app-1-instance", kind: "property", path: "instanceType", a: "t3.small", b: "m6i.large" });
    expect(report.allowed).toContainEqual({ resource: "aws:ec2/securityGroup:SecurityGroup <stack>-app-1-sg", kind: "property", path: "ingress[1].cidrBlocks[0]", a: "198.51.100.0/24", b: "0.0.0.0/0" });
    // prod's 3 hosts vs dev's 1: the extra hosts, each with its per-host children, are allowed
    expect(report.allowed).toContainEqual({ resource: "dockyard:index:DockerHost <stack>-app-3", kind: "added", children: 3 });
    expect(report.allowed).toContainEqual({ resource: "docker:index/container:Container <stack>-web-3", kind: "added" });
    const text = await cli(["diff", "dev", "prod", "--program", FIXTURE]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/Allowed differences \(per-stack knobs: aws:region, dockyard:registry, /);
    expect(text.stdout).toMatch(/aws:ec2\/instance:Instance <stack>-app-1-instance +instanceType +t3\.small +m6i\.large/);
  });

  it("another engine version in one side's environment: exit 1, naming engine.version (real program)", async () => {
    const env = plantedEnvironment("engine", (t) => t.replace('version: "5:28.5.1-1~debian.12~bookworm"', 'version: "5:27.5.1-1~debian.12~bookworm"'));
    const r = await cli(["diff", "dev", "prod", "--b-environment", env]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("error: (outputs): engine.version differs: dev=5:28.5.1-1~debian.12~bookworm prod=5:27.5.1-1~debian.12~bookworm");
    expect(r.stdout).toMatch(/FAILED: \d+ differences? between dev and prod that no per-stack knob explains/);
  });

  it("a different health check: exit 1, naming where it shows (real program)", async () => {
    const env = plantedEnvironment("health", (t) => t.replace("path: /healthz", "path: /health"));
    const r = await cli(["diff", "test", "prod", "--b-environment", env, "--json"]);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.identical).toBe(false);
    const hits = report.real.filter((d: { a: unknown; b: unknown }) => /\/healthz\b/.test(JSON.stringify(d.a)) && /\/health(?!z)/.test(JSON.stringify(d.b)));
    expect(hits.length).toBeGreaterThan(0);
    for (const d of hits) expect(d.path).toBeTruthy();
  });

  it("the same health check planted in the fixture is named by resource and path", async () => {
    const env = plantedEnvironment("health-fixture", (t) => t.replace("path: /healthz", "path: /health"));
    const r = await cli(["diff", "test", "prod", "--b-environment", env, "--program", FIXTURE, "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).real).toContainEqual({
      resource: "docker:index/container:Container <stack>-web-1",
      kind: "property",
      path: "healthcheck.tests[4]",
      a: "http://127.0.0.1:8080/healthz",
      b: "http://127.0.0.1:8080/health",
    });
  });

  it("another published port: exit 1, each place the port shows is an error (real program)", async () => {
    const env = plantedEnvironment("port", (t) => t.replace("publishPort: 80", "publishPort: 8081"));
    const r = await cli(["diff", "dev", "prod", "--b-environment", env, "--json"]);
    expect(r.code).toBe(1);
    const real = JSON.parse(r.stdout).real as { resource: string; path?: string; a: unknown; b: unknown }[];
    const ports = real.filter((d) => d.a === 80 && d.b === 8081);
    expect(ports.length).toBeGreaterThan(0);
    // Human output names the resource and property of each.
    const text = await cli(["diff", "dev", "prod", "--b-environment", env]);
    expect(text.code).toBe(1);
    for (const d of ports) expect(text.stdout).toContain(`error: ${d.resource}: ${d.path} differs: dev=80 prod=8081`);
  });

  it("an extra port (a new published service on one side only): exit 1, naming it", async () => {
    const env = plantedEnvironment(
      "extra",
      (t) => `${t}\n  admin:\n    group: app\n    containerPort: 9000\n    publishPort: 9000\n    health:\n      path: /healthz\n`,
    );
    // Side B also pins the new service's digest, so B is valid on its own.
    const dir = path.join(tmp, "stacks-extra");
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ["Pulumi.dev.yaml", "Pulumi.prod.yaml"]) fs.copyFileSync(path.join(STACKS_DIR, f), path.join(dir, f));
    const prod = fs.readFileSync(path.join(dir, "Pulumi.prod.yaml"), "utf8");
    const planted = prod.replace(/^( +)web: (sha256:[0-9a-f]{64})$/m, `$1web: $2\n$1admin: sha256:${"a".repeat(64)}`);
    expect(planted).not.toBe(prod);
    fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), planted);
    const alone = await cli(["plan", "prod", "--environment", env, "--stacks-dir", dir, "--json"]);
    expect(alone.code).toBe(0);
    const r = await cli(["diff", "dev", "prod", "--b-environment", env, "--b-stacks-dir", dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("error: prod's knobs do not fit dev's environment");
    expect(r.stdout).toContain("config.dockyard:images.admin: unknown service");
  });

  it("bad input is exit 2: an invalid stack file, an unknown stack, a missing argument", async () => {
    const dir = path.join(tmp, "stacks-bad");
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(STACKS_DIR, "Pulumi.dev.yaml"), path.join(dir, "Pulumi.dev.yaml"));
    fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), fs.readFileSync(path.join(STACKS_DIR, "Pulumi.prod.yaml"), "utf8").replace("0.0.0.0/0", "0.0.0.1/0"));
    const bad = await cli(["diff", "dev", "prod", "--stacks-dir", dir]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toContain('Invalid configuration for stack "prod"');
    expect(bad.stderr).toContain("config.dockyard:ingressCidrs.0: must be an IPv4 CIDR");
    const unknown = await cli(["diff", "dev", "staging"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("no such stack file; stacks: dev, local, prod, test");
    const missing = await cli(["diff", "dev"]);
    expect(missing.code).toBe(2);
  });
});
