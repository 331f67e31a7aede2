/**
 * Issue 14: "promotion, pin, rollback and the parity check work unchanged on swarm stacks".
 * Each command runs as shipped, on a stacks directory whose environment definition says
 * `fleet.mode: swarm`, against two real registries on loopback (Debian docker-registry,
 * test/infra/30-registries.sh) and the real program rendered in swarm mode (mock runtime):
 *
 *   test rendered in swarm mode -> its outputs (what `pulumi stack output --json` would print)
 *   -> promote test to prod with those outputs -> prod rendered: its docker.Service and its
 *   pulls run the promoted digests -> pin --check -> smoke's targets from prod's outputs ->
 *   the parity check (test vs prod) -> rollback prod -> prod rendered: the old digests again.
 *
 * What it proves: the swarm render's outputs carry what these commands read (services.<svc>.
 * digest, proxyImage, hostsByName, services.<svc>.hosts), and the digest a command writes
 * into a stack file is the one the swarm services and their pulls are rendered with.
 * What it does not: that the swarm then rolls to it (test/host/swarm.int.test.ts updates a
 * service by digest on three real engines; pulumi-docker's own update is not run here).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLedger } from "../../scripts/lib/ledger";
import { renderStack, type Rendered } from "../../scripts/lib/render";
import { checkParity } from "../../scripts/diff";
import { pin, pinExitCode } from "../../scripts/pin";
import { promote } from "../../scripts/promote";
import { rollback } from "../../scripts/rollback";
import { smokeTargets } from "../../scripts/smoke";
import { deployed } from "./smoke-fixtures";
import { loadStackSpec, PROXY_REPOSITORY } from "../../stacks";
import { assertRegistriesUp, buildAndPush, makeStacksDir, randomBytes, REGISTRY_A, REGISTRY_B, uniqueNamespace, type StacksDir } from "./registry-fixtures";

const ns = uniqueNamespace("s");
const srcRepo = `${REGISTRY_A}/${ns}src/web`;
const srcProxy = `${REGISTRY_A}/${ns}src/${PROXY_REPOSITORY}`;
const prodRepo = `${REGISTRY_B}/${ns}prod/web`;
const prodProxy = `${REGISTRY_B}/${ns}prod/${PROXY_REPOSITORY}`;
let web: string; // what test runs and prod gets
let webOld: string; // what prod ran before
let proxy: string;
let proxyOld: string;
let s: StacksDir;

const copy = (from: string, to: string) =>
  execFileSync("skopeo", ["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", `docker://${from}`, `docker://${to}`], { stdio: "pipe" });

const render = (stack: "test" | "prod") => renderStack(stack, { stacksDir: s.dir, environmentFile: path.join(s.dir, "environment.yaml") });
const service = (r: Rendered, name: string) => {
  const found = r.resources.filter((x) => x.type === "docker:index/service:Service" && x.inputs.name === name);
  expect(found, `one docker.Service named ${name}`).toHaveLength(1);
  return found[0];
};
const serviceImage = (r: Rendered, name: string) => (service(r, name).inputs.taskSpec as { containerSpec: { image: string } }).containerSpec.image;
/** The image of every host's proxy service (one per host since issue 24 item 18, named by proxyServiceName); at least one. */
const proxyImages = (r: Rendered) => {
  const found = r.resources.filter((x) => x.type === "docker:index/service:Service" && String(x.inputs.name).startsWith("proxy-"));
  expect(found.length, "a proxy service per host").toBeGreaterThan(0);
  return [...new Set(found.map((x) => (x.inputs.taskSpec as { containerSpec: { image: string } }).containerSpec.image))];
};
/** Every host's pull command of `what` (web or proxy), as rendered. */
const pulls = (r: Rendered, what: string) => r.resources.filter((x) => x.type === "command:local:Command" && x.name.endsWith(`-${what}-pull`)).map((x) => String(x.inputs.create));

beforeAll(async () => {
  await assertRegistriesUp();
  web = buildAndPush(srcRepo, "new", { "app.bin": randomBytes(128 << 10), "version.txt": `new ${ns}\n` }).digest;
  webOld = buildAndPush(srcRepo, "old", { "version.txt": `old ${ns}\n` }).digest;
  proxy = buildAndPush(srcProxy, "new", { "haproxy.cfg": `new ${ns}\n` }).digest;
  proxyOld = buildAndPush(srcProxy, "old", { "haproxy.cfg": `old ${ns}\n` }).digest;
  copy(`${srcRepo}@${webOld}`, `${prodRepo}:old`);
  copy(`${srcProxy}@${proxyOld}`, `${prodProxy}:old`);
  s = makeStacksDir({ test: { registry: `${REGISTRY_A}/${ns}src`, web, proxy }, prod: { registry: `${REGISTRY_B}/${ns}prod`, web: webOld, proxy: proxyOld } });
  // The one line a team changes to move to swarm mode; test gets a third host, as the schema
  // asks of every swarm stack but dev (3 managers over zones).
  const envFile = path.join(s.dir, "environment.yaml");
  fs.writeFileSync(envFile, YAML.stringify({ ...YAML.parse(fs.readFileSync(envFile, "utf8")), fleet: { mode: "swarm" } }));
  const testFile = fs.readFileSync(s.file("test"), "utf8");
  expect(testFile).toMatch(/^(\s+count:) 2$/m);
  fs.writeFileSync(s.file("test"), testFile.replace(/^(\s+count:) 2$/m, "$1 3"));
}, 300_000);

afterAll(() => {
  if (s) fs.rmSync(s.dir, { recursive: true, force: true });
});

describe("promotion, pin, smoke, parity and rollback on swarm stacks", () => {
  let testOutputs: string;

  it("test, rendered in swarm mode, runs its pinned digests as swarm services, and its outputs say so", async () => {
    const r = await render("test");
    expect(r.outputs.fleetMode).toMatchObject({ mode: "swarm" });
    expect(r.resources.filter((x) => x.type === "docker:index/container:Container")).toEqual([]);
    expect(serviceImage(r, "web")).toBe(`${srcRepo}@${web}`);
    expect(proxyImages(r)).toEqual([`${srcProxy}@${proxy}`]);
    expect(r.outputs.services).toMatchObject({ web: { digest: web } });
    expect(r.outputs.proxyImage).toBe(`${srcProxy}@${proxy}`);
    testOutputs = path.join(s.dir, "test.outputs.json");
    fs.writeFileSync(testOutputs, JSON.stringify(r.outputs));
  }, 120_000);

  it("promote --from test --to prod takes test's swarm outputs as proof of deployment, copies both images and rewrites prod's digests", async () => {
    const r = await promote({ from: "test", to: "prod", stacksDir: s.dir, sourceOutputs: testOutputs });
    expect(r.items.map((i) => [i.service, i.digest]).sort()).toEqual([
      [PROXY_REPOSITORY, proxy],
      ["web", web],
    ]);
    const prod = YAML.parse(fs.readFileSync(s.file("prod"), "utf8")).config;
    expect(prod["dockyard:images"].web).toBe(web);
    expect(prod["dockyard:proxyImage"]).toBe(proxy);
    expect(readLedger(s.ledger).map((l) => [l.service, l.oldDigest, l.newDigest]).sort()).toEqual([
      [PROXY_REPOSITORY, proxyOld, proxy],
      ["web", webOld, web],
    ]);
  }, 120_000);

  it("prod, rendered after the promotion, runs the promoted digests: its services and every host's pulls", async () => {
    const r = await render("prod");
    expect(serviceImage(r, "web")).toBe(`${prodRepo}@${web}`);
    expect(proxyImages(r)).toEqual([`${prodProxy}@${proxy}`]);
    const webPulls = pulls(r, "web");
    expect(webPulls.length).toBeGreaterThanOrEqual(3);
    for (const p of webPulls) expect(p).toMatch(new RegExp(`docker pull .* ${prodRepo}@${web}$`));
    for (const p of pulls(r, "proxy")) expect(p).toMatch(new RegExp(`docker pull .* ${prodProxy}@${proxy}$`));

    // smoke reads prod's swarm outputs: the group's front door, and the web service on every
    // host of its group (each host's proxy, a global service, reaches every replica), asked on
    // the host over its connection. The mock runtime computes no DNS names or instance ids:
    // deployed() (smoke-fixtures.ts) gives them the form a deployment would.
    const out = deployed(r.outputs) as Record<string, any>;
    const hosts = Object.keys(out.hostsByName).sort();
    expect(hosts).toHaveLength(3);
    const spec = loadStackSpec("prod", { dir: s.dir, environmentFile: path.join(s.dir, "environment.yaml") });
    const { targets } = smokeTargets(spec, out, "prod outputs");
    const svc = spec.services.find((x) => x.name === "web")!;
    expect(targets.filter((t) => t.service === "web").map((t) => [t.host, t.via, t.url])).toEqual([
      ["frontDoor.app", "client", `http://${out.frontDoor.app.dnsName}:${svc.publishPort}${svc.health.path}`],
      ...hosts.map((h) => [h, "ssh", `http://127.0.0.1:${svc.publishPort}${svc.health.path}`]),
    ]);
  }, 120_000);

  it("pin tags the promoted digests in prod's registry, and --check then finds every digest of both swarm stacks pinned", async () => {
    expect(pinExitCode(await pin({ stacksDir: s.dir }))).toBe(0);
    const check = await pin({ stacksDir: s.dir, check: true });
    expect(check.items.map((i) => i.outcome).filter((o) => o !== "present")).toEqual([]);
    expect(check.items.some((i) => i.repository === prodRepo && i.digest === web)).toBe(true);
    expect(pinExitCode(check)).toBe(0);
  }, 120_000);

  it("the parity check finds test and prod identical apart from their knobs, both in swarm mode", async () => {
    const report = await checkParity("test", "prod", { stacksDir: s.dir, environment: path.join(s.dir, "environment.yaml") });
    expect(report.real).toEqual([]);
    expect(report.identical).toBe(true);
  }, 180_000);

  it("rollback prod puts the previous digests back, and prod renders its services with them", async () => {
    const r = await rollback({ stack: "prod", stacksDir: s.dir });
    expect(r.items.map((i) => [i.service, i.digest]).sort()).toEqual([
      [PROXY_REPOSITORY, proxyOld],
      ["web", webOld],
    ]);
    const rendered = await render("prod");
    expect(serviceImage(rendered, "web")).toBe(`${prodRepo}@${webOld}`);
    expect(proxyImages(rendered)).toEqual([`${prodProxy}@${proxyOld}`]);
  }, 120_000);
});
