/**
 * The provider replay (container-replay.ts) itself, without an engine: what it refuses, and
 * the calls it makes, checked against the calls resourceDockerContainerCreate/Delete make
 * (kreuzwerker/terraform-provider-docker v4.5.0, internal/provider/resource_docker_container_funcs.go).
 */
import { describe, it, expect, beforeAll } from "vitest";
import { renderStack, type Rendered } from "../../scripts/lib/render";
import { CONTAINER_SHAPE, EngineReplay, NETWORK_SHAPE, REMOTE_IMAGE_SHAPE, VOLUME_SHAPE, refuseUntranslated, untranslated, type Shape } from "./container-replay";

const SHAPES: Record<string, Shape> = {
  "docker:index/container:Container": CONTAINER_SHAPE,
  "docker:index/remoteImage:RemoteImage": REMOTE_IMAGE_SHAPE,
  "docker:index/network:Network": NETWORK_SHAPE,
  "docker:index/volume:Volume": VOLUME_SHAPE,
};

/** An engine that records the calls and answers an image lookup with a fixed id. */
function recordingEngine() {
  const calls: string[] = [];
  const bodies: unknown[] = [];
  const api = (async (method: string, p: string, body?: unknown) => {
    calls.push(`${method} ${p}`);
    bodies.push(body);
    if (p.startsWith("/images/")) return { Id: "sha256:" + "1".repeat(64) };
    if (p.startsWith("/containers/create")) return { Id: "c".repeat(64) };
    if (p.endsWith("/json")) return { State: { Health: { Status: "healthy" } } };
    return undefined;
  }) as ConstructorParameters<typeof EngineReplay>[0];
  return { calls, bodies, replay: new EngineReplay(api) };
}

describe("the provider replay", () => {
  let prod: Rendered;
  let local: Rendered;
  beforeAll(async () => {
    prod = await renderStack("prod");
    local = await renderStack("local");
  }, 120_000);

  it("translates every input of every container, image, network and volume the shipped prod and local stacks render, nested blocks included", () => {
    let n = 0;
    for (const r of [...prod.resources, ...local.resources]) {
      const shape = SHAPES[r.type];
      if (!shape) continue;
      n++;
      expect(untranslated(r.inputs, shape), `${r.type} ${r.name}`).toEqual([]);
    }
    expect(n).toBeGreaterThan(10);
  });

  it("refuses an input it does not translate, at the top and in nested blocks, naming each path", () => {
    const replica = prod.resources.find((r) => r.type === "docker:index/container:Container" && !r.name.endsWith("-proxy"))!;
    const planted = {
      ...replica.inputs,
      command: ["sh"],
      healthcheck: { ...(replica.inputs.healthcheck as object), startInterval: "1s" },
      networksAdvanced: [{ ...(replica.inputs.networksAdvanced as object[])[0], ipv4Address: "10.0.0.5" }],
      mounts: [{ type: "volume", source: "x", target: "/x", volumeOptions: { noCopy: true } }],
    };
    expect(() => refuseUntranslated(replica.name, planted, CONTAINER_SHAPE)).toThrow(
      `${replica.name}: inputs the replay does not translate yet: healthcheck.startInterval, mounts[0].volumeOptions, networksAdvanced[0].ipv4Address, command`,
    );
    expect(untranslated({ name: "n", driver: "bridge", options: { "com.docker.network.bridge.name": "x" }, internal: true }, NETWORK_SHAPE)).toEqual(["options", "internal"]);
    expect(untranslated({ name: "v", driver: "local", driverOpts: {} }, VOLUME_SHAPE)).toEqual(["driver", "driverOpts"]);
    expect(untranslated({ name: "i", pullTriggers: ["x"] }, REMOTE_IMAGE_SHAPE)).toEqual(["pullTriggers"]);
  });

  it("creates a container only from a RemoteImage's id (pulumi-docker#1431), looked up first as findImage does", async () => {
    const { calls, bodies, replay } = recordingEngine();
    const replica = prod.resources.find((r) => r.type === "docker:index/container:Container" && !r.name.endsWith("-proxy"))!;
    const image = prod.resources.find((r) => r.type === "docker:index/remoteImage:RemoteImage" && replica.inputs.image === `computed(${r.name}.imageId)`)!;
    expect(image, "the replica's image is a RemoteImage's imageId").toBeDefined();
    await expect(replay.createContainer("x", replica.name, replica.inputs)).rejects.toThrow(/is no RemoteImage's imageId created in this replay/);
    expect(calls).toEqual([]);
    await replay.createRemoteImage(image.name, image.inputs, String(replica.inputs.image), "stand-in:local");
    await replay.createContainer("x", replica.name, replica.inputs);
    const id = "sha256:" + "1".repeat(64);
    expect(calls.slice(0, 4)).toEqual([
      "GET /images/stand-in%3Alocal/json",
      `GET /images/${encodeURIComponent(id)}/json`,
      "POST /containers/create?name=x",
      "POST /networks/bridge/disconnect",
    ]);
    expect(calls.slice(-2)).toEqual([`POST /containers/${"c".repeat(64)}/start`, `GET /containers/${"c".repeat(64)}/json`]);
    const body = bodies[2] as { Image: string; Healthcheck: { Interval: number }; HostConfig: { Memory: number; PortBindings: object } };
    expect(body.Image).toBe(id);
    // time.ParseDuration of the rendered interval, in nanoseconds; memory in MiB as bytes.
    expect(body.Healthcheck.Interval).toBe(Number(/^(\d+)s$/.exec((replica.inputs.healthcheck as { interval: string }).interval)![1]) * 1e9);
    expect(body.HostConfig.Memory).toBe((replica.inputs.memory as number) * 1024 * 1024);
  });

  it("deletes as resourceDockerContainerDelete does: stop with destroyGraceSeconds, remove with Force and RemoveVolumes (default true), then wait until not running", async () => {
    const { calls, replay } = recordingEngine();
    await replay.deleteContainer("abc", { destroyGraceSeconds: 35 });
    expect(calls).toEqual(["POST /containers/abc/stop?t=35", "DELETE /containers/abc?force=true&v=true", "POST /containers/abc/wait?condition=not-running"]);
    calls.length = 0;
    await replay.deleteContainer("abc", { removeVolumes: false });
    expect(calls).toEqual(["POST /containers/abc/stop?t=0", "DELETE /containers/abc?force=true&v=false", "POST /containers/abc/wait?condition=not-running"]);
  });
});
