/**
 * The swarm replay helper (test/helpers/swarm-service.ts) refuses what it does not translate
 * (issue 24 item 17: it ignored convergeConfig, which is how the proxy's global mode with a
 * converge wait, refused by the provider, stayed hidden), at every level, and what the
 * provider's schema refuses (kreuzwerker resource_docker_service.go ConflictsWith). Its
 * converge wait and delete-on-timeout run against a real swarm in test/host/swarm.int.test.ts.
 */
import { describe, expect, it } from "vitest";
import type * as docker from "@pulumi/docker";
import { renderStack } from "../../scripts/lib/render";
import { writeSwarmStack } from "../contracts/stacks";
import { serviceSpec } from "./swarm-service";

const rendered = renderStack("prod", writeSwarmStack("prod"));
const services = async () => (await rendered).resources.filter((x) => x.type === "docker:index/service:Service").map((x) => x.inputs as unknown as docker.ServiceArgs);
const web = async () => (await services()).find((s) => s.name === "web")!;
const nested = (args: docker.ServiceArgs, path: string[], value: unknown): docker.ServiceArgs => {
  const copy = structuredClone(args) as Record<string, any>;
  let at = copy;
  for (const k of path.slice(0, -1)) at = Array.isArray(at[k]) ? at[k][0] : (at[k] ??= {});
  at[path[path.length - 1]] = value;
  return copy as docker.ServiceArgs;
};

describe("the swarm replay helper", () => {
  it("translates every input of every rendered service (prod in swarm mode)", async () => {
    const all = await services();
    expect(all.length).toBeGreaterThan(1);
    for (const s of all) expect(() => serviceSpec(s)).not.toThrow();
  }, 120_000);
  it.each([
    [["taskSpec", "containerSpec", "dnsConfig"], { nameservers: ["1.1.1.1"] }, /taskSpec\.containerSpec\.dnsConfig: not translated/],
    [["taskSpec", "containerSpec", "healthcheck", "startInterval"], "1s", /containerSpec\.healthcheck\.startInterval: not translated/],
    [["taskSpec", "containerSpec", "mounts", "volumeOptions"], { subpath: "x" }, /mounts\[\]\.volumeOptions\.subpath: not translated/],
    [["taskSpec", "networksAdvanceds", "ipv4Address"], "10.0.0.9", /taskSpec\.networksAdvanceds\[\]\.ipv4Address: not translated/],
    [["taskSpec", "resources", "reservation"], { genericResources: { discreteResourcesSpecs: ["gpu=1"] } }, /taskSpec\.resources\.reservation\.genericResources: not translated/],
    [["taskSpec", "networks"], ["x"], /taskSpec\.networks: not translated/],
    [["auth"], { serverAddress: "r" }, /service\.auth: not translated/],
    [["convergeConfig", "interval"], "1s", /convergeConfig\.interval: not translated/],
  ] as const)("refuses %j", async (path, value, message) => {
    const args = nested(await web(), [...path], value);
    expect(() => serviceSpec(args)).toThrow(message);
  }, 120_000);
  it("refuses what the provider refuses: a global service with convergeConfig (the proxy before issue 24 item 3)", async () => {
    const global = { ...(await web()), mode: { global: true } } as docker.ServiceArgs;
    const once = { ...global, convergeConfig: undefined };
    expect(() => serviceSpec(global)).toThrow(/the provider refuses these inputs: .*mode\.0\.global: ConflictsWith convergeConfig/);
    expect(() => serviceSpec(once)).not.toThrow();
  }, 120_000);
});
