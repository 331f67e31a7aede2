/**
 * The local platform's render (issue 12): the shipped `local` stack through the whole
 * program on the mock runtime, and the pure helpers. The machine container booting for
 * real is test/host/local-platform.int.test.ts.
 */
import { describe, it, expect, beforeAll } from "vitest";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";
import * as YAML from "yaml";
import { renderStack, type Rendered, type RenderedResource } from "../../scripts/lib/render";
import {
  HOST_IMAGE_DIR,
  hostImageTag,
  LOCAL_HOST_KEY_FILE,
  localInstanceId,
  loopbackRegistryPort,
  NOCLOUD_SEED,
  registryForwardUnits,
} from "../../components/local-host";
import { AWS_ACCESS_STEPS, DAEMON_JSON, renderUserData, stepsFor, type UserDataInput } from "../../components/engine";
import { loadStackSpec } from "../../stacks";

interface Upload { file: string; content?: unknown; contentBase64?: string; permissions?: string }
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const unwrap = (v: unknown): unknown => (v && typeof v === "object" && (v as Record<string, unknown>)[SECRET_SIG] ? (v as { value: unknown }).value : v);

let r: Rendered;
let machine: RenderedResource;
let uploads: Upload[];
beforeAll(async () => {
  r = await renderStack("local");
  machine = r.resources.find((x) => x.type === "docker:index/container:Container" && x.name === "local-app-1-machine")!;
  uploads = unwrap(machine.inputs.uploads) as Upload[];
}, 120_000);

describe("the local host image's recipe", () => {
  it("the tag the program looks up is the one build-image.sh builds (same recipe hash, computed by the script itself)", () => {
    const tag = execFileSync("bash", [path.join(HOST_IMAGE_DIR, "build-image.sh"), "--print-tag"], { encoding: "utf8" }).trim();
    expect(tag).toMatch(/^dockyard\/host:[0-9a-f]{12}$/);
    expect(hostImageTag()).toBe(tag);
    const lookup = r.resources.find((x) => x.type === "docker:index/remoteImage:RemoteImage" && x.name === "machine-image")!;
    // keepLocally: destroying the stack leaves the image in the deployer's engine.
    expect(lookup.inputs).toMatchObject({ name: tag, keepLocally: true });
  });
});

describe("the local stack's host: a machine container booted from the seed", () => {
  it("is named after the host, runs the image the lookup found, and restarts with the engine", () => {
    expect(machine.inputs).toMatchObject({ name: "local-app-1", hostname: "local-app-1", restart: "unless-stopped", stopSignal: "SIGRTMIN+3" });
    expect(String(machine.inputs.image)).toMatch(/machine-image/);
    expect(machine.inputs).not.toHaveProperty("privileged");
    expect(machine.inputs.securityOpts).toEqual(["seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"]);
  });

  it("places the gzip user-data and meta-data as the NoCloud seed, and the host key as a 0600 secret file", () => {
    const byFile = new Map(uploads.map((u) => [u.file, u]));
    const seed = byFile.get(`${NOCLOUD_SEED}/user-data`)!;
    const text = gunzipSync(Buffer.from(seed.contentBase64!, "base64")).toString("utf8");
    expect(text).toMatch(/^#cloud-config\n/);
    expect(byFile.get(`${NOCLOUD_SEED}/meta-data`)!.content).toBe(`instance-id: ${localInstanceId("local-app-1")}\nlocal-hostname: local-app-1\n`);
    const key = byFile.get(LOCAL_HOST_KEY_FILE)!;
    expect(key.permissions).toBe("0600");
    // Secret in the render, and kept secret in state whatever the provider echoes back.
    expect((machine.inputs.uploads as Record<string, unknown>)[SECRET_SIG]).toBeDefined();
    expect(machine.options?.additionalSecretOutputs).toEqual(["uploads"]);
    // The env file names the platform's key file, not an SSM parameter.
    const env = (YAML.parse(text.replace(/^#cloud-config\n/, "")) as { write_files: { path: string; content: string }[] }).write_files.find((f) => f.path.endsWith("/env"))!.content;
    expect(env).toContain(`HOSTKEY_SOURCE='file'\nHOSTKEY_REGION=''\nHOSTKEY_PARAMETER=''\nHOSTKEY_FILE='${LOCAL_HOST_KEY_FILE}'`);
  });

  it("keeps its data on a retained Docker volume at the group's dataMount", () => {
    const vol = r.resources.find((x) => x.type === "docker:index/volume:Volume" && x.name === "local-app-1-data")!;
    expect(vol.options?.retainOnDelete).toBe(true);
    const mount = loadStackSpec("local").hostGroups[0].dataMount;
    expect(machine.inputs.volumes).toContainEqual({ volumeName: "local-app-1-data", containerPath: mount });
  });

  it("publishes each service port on 127.0.0.1 only, on a port the engine picks", () => {
    expect(machine.inputs.ports).toEqual([{ internal: 80, ip: "127.0.0.1", protocol: "tcp" }]);
  });

  it("reaches the deployer's registry (localhost:5000) through a forwarder to host.docker.internal", () => {
    expect(machine.inputs.hosts).toEqual([{ host: "host.docker.internal", ip: "host-gateway" }]);
    for (const u of registryForwardUnits(5000)) expect(uploads).toContainEqual({ ...u, permissions: "0644" });
    expect(loopbackRegistryPort("localhost:5000")).toBe(5000);
    expect(loopbackRegistryPort("127.0.0.1:5001")).toBe(5001);
    expect(loopbackRegistryPort("123456789012.dkr.ecr.eu-west-1.amazonaws.com")).toBeUndefined();
    expect(loopbackRegistryPort("localhost")).toBeUndefined();
  });

  it("the engine's ready check insists on cloud-init's instance id from the seed, and re-runs for a new container", () => {
    const ready = r.resources.find((x) => x.type === "command:local:Command" && x.name === "local-app-1-engine-ready")!;
    expect(String(ready.inputs.create)).toContain(`INSTANCE_ID='${localInstanceId("local-app-1")}'`);
    expect((ready.inputs.triggers as unknown[]).map(String)).toEqual(expect.arrayContaining([localInstanceId("local-app-1"), expect.stringMatching(/local-app-1-machine/)]));
    // Through docker exec, to the container's name, with the pinned key.
    const argv = (ready.inputs.interpreter as string[]).join(" ");
    expect(argv).toContain("admin@local-app-1");
    expect(argv).toContain("dockyard-local %h %p");
    expect(argv).toContain("StrictHostKeyChecking=yes");
  });

  it("outputs where the host is reached: the container's name, 127.0.0.1, the platform", () => {
    const h = (r.outputs.hostsByName as Record<string, Record<string, unknown>>)["local-app-1"];
    expect(h).toMatchObject({ platform: "local", sshTarget: "local-app-1", publicIp: "127.0.0.1", sshUser: "admin", dataVolumeId: "local-app-1-data" });
  });

  it("declares no AWS resource: the local stack needs no cloud account", () => {
    expect(r.resources.filter((x) => x.custom && /^aws:/.test(x.type)).map((x) => x.name)).toEqual([]);
  });
});

describe("a local host's user-data is an app host's, apart from how the host is reached", () => {
  const spec = loadStackSpec("dev");
  const base: Omit<UserDataInput, "hostKey"> = { stack: "dev", hostName: "dev-app-1", os: spec.os, engine: spec.engine, dataMount: "/var/lib/dockyard", dataDevice: "/dev/xvdf", registryHost: "localhost:5000" };
  const aws = YAML.parse(renderUserData({ ...base, hostKey: { ssmParameter: "/dockyard/dev/dev-app-1/ssh_host_ed25519_key", region: spec.region } }).slice(14)) as { write_files: { path: string; content: string }[] };
  const local = YAML.parse(renderUserData({ ...base, hostKey: { file: LOCAL_HOST_KEY_FILE } }).slice(14)) as { write_files: { path: string; content: string }[] };

  it("skips only the SSM agent and EC2 Instance Connect steps", () => {
    const awsSteps = stepsFor({ ...base, hostKey: { ssmParameter: "p", region: spec.region } });
    const localSteps = stepsFor({ ...base, hostKey: { file: LOCAL_HOST_KEY_FILE } });
    expect(localSteps).toEqual(awsSteps.filter((s) => !(AWS_ACCESS_STEPS as readonly string[]).includes(s)));
    expect(awsSteps).toEqual(expect.arrayContaining([...AWS_ACCESS_STEPS]));
  });

  it("writes every other file byte for byte the same (daemon.json, engine, data volume and host key scripts)", () => {
    const byPath = (d: typeof aws) => new Map(d.write_files.map((f) => [f.path, f.content]));
    const a = byPath(aws);
    const l = byPath(local);
    const onlyAws = [...a.keys()].filter((p) => !l.has(p));
    expect(onlyAws.every((p) => /ssm-agent|instance-connect|eic-keys|amazon-ssm-agent/.test(p)), onlyAws.join(", ")).toBe(true);
    expect([...l.keys()].filter((p) => !a.has(p))).toEqual([]);
    for (const [p, content] of l) if (!p.endsWith("/env")) expect(content, p).toBe(a.get(p));
    expect(l.get(DAEMON_JSON)).toBe(a.get(DAEMON_JSON));
  });
});
