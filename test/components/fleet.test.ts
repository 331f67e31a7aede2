import { sshArgv } from "../../components/connection";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it, expect, beforeAll } from "vitest";
import * as pulumi from "@pulumi/pulumi";
import { promisify, settle } from "../helpers/pulumi";
import { DockyardMocks } from "../../scripts/lib/mocks";
import { loadStackSpec, STACKS, type ServiceSpec } from "../../stacks";
import { DockerEngine } from "../../components/engine";
import { renderHaproxyConfig } from "../../components/proxy";
import {
  ContainerFleet,
  specHash,
  healthWaitSeconds,
  hostProxy,
  proxyRoutes,
  placeFleet,
  replicaContainerArgs,
  proxyContainerArgs,
  replicaLabels,
  proxyLabels,
  proxyConfigFile,
  pidsLimitCommand,
  writeConfigCommand,
  proxyConfigTrigger,
  serviceEnv,
  STOP_GRACE_SECONDS,
} from "../../components/fleet";
import { RolloutOrder, rolloutBatches, servingGateCommand, servingGateScript } from "../../components/rollout";

/**
 * The shared mock runtime, plus one failure the real provider has: a container whose
 * create fails (as when `wait` times out on a container that never becomes healthy,
 * errContainerFailedToBeInHealthyState in the provider's resource_docker_container_funcs.go).
 * Containers whose name starts with a prefix in `failingContainers` fail to be created.
 */
class FleetMocks extends DockyardMocks {
  readonly failingContainers = new Set<string>();
  /** Commands (by exact name) whose create exits 1, as a serving gate does on an unhealthy container. */
  readonly failingCommands = new Set<string>();
  override newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
    if (args.type === "docker:index/container:Container" && [...this.failingContainers].some((p) => args.name.startsWith(p))) {
      throw new Error(`container ${args.name} failed to be in healthy state`);
    }
    if (args.type === "command:local:Command" && this.failingCommands.has(args.name)) {
      throw new Error(`command ${args.name} failed: exit status 1`);
    }
    return super.newResource(args);
  }
}
const mocks = new FleetMocks();
pulumi.runtime.setAllConfig({}, []);
pulumi.runtime.setMocks(mocks, "dockyard", "dev", false);

// The mock monitor's registerResource request carries what MockResourceArgs does not:
// explicit dependencies, the provider reference, secret markers, resource options.
interface Registration {
  type: string;
  name: string;
  urn?: string;
  dependencies: string[];
  provider: string;
  deleteBeforeReplace: boolean;
  additionalSecretOutputs: string[];
  /** URNs per input property (what the engine's dependent-replacement check looks at). */
  propertyDependencies: Record<string, string[]>;
  raw: Record<string, unknown>;
}
const registrations: Registration[] = [];
const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource: (req: any, cb: any) => Promise<void> };
const original = monitor.registerResource.bind(monitor);
monitor.registerResource = async (req: any, cb: any) => {
  const reg: Registration = {
    type: req.getType(),
    name: req.getName(),
    dependencies: req.getDependenciesList(),
    provider: req.getProvider(),
    deleteBeforeReplace: req.getDeletebeforereplace(),
    additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
    propertyDependencies: Object.fromEntries(
      req.getPropertydependenciesMap().toArray().map(([k, v]: [string, any]) => [k, Array.isArray(v) ? v[0] : v.getUrnsList()]),
    ),
    raw: req.getObject()?.toJavaScript() ?? {},
  };
  registrations.push(reg);
  return original(req, (err: unknown, res: any) => {
    if (res) reg.urn = res.getUrn();
    cb(err, res);
  });
};
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const isSecretValue = (v: unknown) => !!v && typeof v === "object" && Object.values(v as object).includes(SECRET_SIG);


const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dockyard-host";
/** The key as the command provider pins it: `<type> <base64>`, comment dropped. */
const HOST_KEY_LINE = HOST_KEY.split(" ").slice(0, 2).join(" ");
const DIGEST_A = "sha256:" + "a".repeat(64);
const DIGEST_B = "sha256:" + "b".repeat(64);

const DEV = loadStackSpec("dev");

/** Hosts as index.ts wires them: `ready` is the host's DockerEngine component (its readiness check is a child). */
function makeHosts(prefix: string, n: number, group = "app", dataMount = DEV.hostGroups[0].dataMount) {
  return Array.from({ length: n }, (_, i) => {
    const name = `${prefix}-${group}-${i + 1}`;
    const address = `203.0.113.${10 + i}`;
    const ready = new DockerEngine(`${name}-engine`, {
      hostName: name,
      connection: { target: address, user: "admin", hostPublicKey: HOST_KEY },
      engine: DEV.engine,
      hostId: `i-${prefix}${i}`,
    });
    return { name, group, dataMount, connection: { target: address, user: "admin", hostPublicKey: HOST_KEY }, ready, readyId: ready.readyId };
  });
}

/**
 * Runs `fn` while collecting unhandled rejections instead of failing the run: a failed
 * registration rejects every output of the resource, as `pulumi up` reports its error.
 * Returns the messages of those rejections.
 */
async function collectingFailures(fn: () => Promise<void>): Promise<string[]> {
  const saved = process.listeners("unhandledRejection");
  const seen: string[] = [];
  const collect = (e: unknown) => void seen.push(String((e as Error)?.message ?? e));
  process.removeAllListeners("unhandledRejection");
  process.on("unhandledRejection", collect);
  try {
    await fn();
  } finally {
    await settle(50);
    process.off("unhandledRejection", collect);
    for (const l of saved) process.on("unhandledRejection", l as (...a: unknown[]) => void);
  }
  return seen;
}

/** What became of an Output: resolved, rejected, or still pending after the program settled. */
async function outcome(o: pulumi.Output<unknown>): Promise<"resolved" | "rejected" | "pending"> {
  const p = (o as unknown as { promise(): Promise<unknown> }).promise().then(() => "resolved" as const, () => "rejected" as const);
  await settle(50);
  return Promise.race([p, new Promise<"pending">((r) => setTimeout(() => r("pending"), 200))]);
}

function service(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name: "web",
    group: "app",
    repository: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev/web",
    digest: DIGEST_A,
    replicas: 2,
    containerPort: 8080,
    publishPort: 80,
    health: { path: "/healthz", interval: "5s", timeout: "2s", retries: 3, startPeriod: "5s" },
    env: { LOG_LEVEL: "info" },
    secrets: { API_TOKEN: "api-token" },
    volumes: { uploads: "/srv/uploads" },
    restart: "unless-stopped",
    memoryMb: 128,
    cpus: 0.5,
    user: "65534:65534",
    readOnlyRootFilesystem: true,
    pidsLimit: 512,
    ...over,
  };
}

const LOGGING = { logDriver: "local" as const, logMaxSize: "10m", logMaxFile: 5 };
const PROXY_SETTINGS = { cpus: 0.5, memoryMb: 128, pidsLimit: 128, user: "99:99" };
const PROXY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev/haproxy@sha256:" + "c".repeat(64);

function fleet(name: string, hosts: ReturnType<typeof makeHosts>, services: ServiceSpec[], secrets: Record<string, string> = { "api-token": "s3cr3t-token-value" }) {
  return new ContainerFleet(name, { stack: "dev", hosts, services, secrets, architecture: "x86_64", logging: LOGGING, proxyImage: PROXY, proxy: PROXY_SETTINGS });
}

const byPrefix = (type: string, prefix: string) => mocks.ofType(type).filter((r) => r.name.startsWith(prefix));
const reg = (name: string) => {
  const r = registrations.find((x) => x.name === name);
  if (!r) throw new Error(`no registration ${name}`);
  return r;
};

describe("ContainerFleet on the mock runtime", () => {
  let main: InstanceType<typeof ContainerFleet>;
  let hosts: ReturnType<typeof makeHosts>;
  beforeAll(async () => {
    hosts = makeHosts("f1", 2);
    main = fleet("f1", hosts, [service()]);
    await settle(50);
  });

  it("makes one docker provider per host over ssh:// with strict host-key checking", () => {
    const providers = byPrefix("pulumi:providers:docker", "f1-");
    expect(providers.map((p) => p.name).sort()).toEqual(["f1-f1-app-1", "f1-f1-app-2"]);
    const p1 = mocks.get("pulumi:providers:docker", "f1-f1-app-1");
    expect(p1.inputs.host).toBe("ssh://admin@203.0.113.10");
    const opts = JSON.parse(String(p1.inputs.sshOpts)) as string[];
    expect(opts).toContain("StrictHostKeyChecking=yes");
    expect(opts).toContain("UserKnownHostsFile=/dev/null");
    expect(opts).toContain(`KnownHostsCommand=/bin/echo %H ${HOST_KEY.split(" ").slice(0, 2).join(" ")}`);
    expect(opts).toContain("HostKeyAlgorithms=ssh-ed25519");
    expect(opts.join(" ")).not.toMatch(/StrictHostKeyChecking=(no|accept-new|off)/);
  });

  it("gates every docker resource and the provider on its host's engine readiness", () => {
    for (const h of hosts) {
      // The DockerEngine component's readiness check (cloud-init done, `docker info` answers):
      // dependsOn a component waits for its children, so this URN is what each resource waits on.
      const readyUrn = reg(`${h.name}-engine-ready`).urn!;
      expect(readyUrn).toBeTruthy();
      const mine = registrations.filter((r) => r.name.startsWith(`f1-${h.name}`) && (r.type.startsWith("docker:") || r.type === "pulumi:providers:docker" || r.type === "command:local:Command"));
      // provider, network, volume, pull, image, 1 container, proxy pull, proxy image, proxy
      expect(mine.map((r) => r.name.slice(`f1-${h.name}`.length).replace(/^-web-0-[0-9a-f]{8}/, "-web-0-<spec>")).sort()).toEqual(
        ["", "-proxy", "-proxy-config", "-proxy-image", "-proxy-pids-limit", "-proxy-pull", "-serving", "-web-0-<spec>", "-web-0-<spec>-pids-limit", "-web-image", "-web-net", "-web-pull", "-web-uploads"],
      );
      for (const r of mine) expect(r.dependencies, `${r.name} depends on ${h.name}-engine-ready`).toContain(readyUrn);
      // Docker resources go through this host's provider, not the default one.
      const providerUrn = reg(`f1-${h.name}`).urn!;
      for (const r of mine.filter((x) => x.type.startsWith("docker:"))) expect(r.provider.startsWith(providerUrn)).toBe(true);
    }
  });

  it("writes each proxy's configuration to its host file first (stdin, via a rename; older unmounted files removed by the next write, no delete command), and the proxy mounts that file", () => {
    const proxy = mocks.get("docker:index/container:Container", "f1-f1-app-1-proxy");
    const cmd = mocks.get("command:local:Command", "f1-f1-app-1-proxy-config");
    const mount = (proxy.inputs.mounts as { source: string }[])[0];
    expect(cmd.inputs.create).toBe(writeConfigCommand(mount.source));
    expect(String(cmd.inputs.create)).toMatch(/^set -e; umask 022; cat > '\/var\/lib\/dockyard\/proxy\/haproxy-[0-9a-f]{12}\.cfg\.tmp'; mv -f /);
    // No delete: pulumi-command runs a delete with the old state's interpreter (local/
    // commandController.go Delete, req.State), which after a host replacement dials the old machine.
    expect(cmd.inputs.delete).toBeUndefined();
    // A new configuration replaces the command; its trigger is the value deployed commands hold
    // (the root-disk path of the same hash), so moving the file updated them in place instead.
    expect(cmd.inputs.triggers).toEqual([mount.source.replace("/var/lib/dockyard/proxy/", "/etc/dockyard/proxy/")]);
    expect(cmd.inputs.triggers).toEqual([proxyConfigTrigger(cmd.inputs.stdin as string)]);
    expect(mount.source).toBe(proxyConfigFile(cmd.inputs.stdin as string, "/var/lib/dockyard"));
    expect(cmd.inputs.stdin).toMatch(/^global/m);
    expect(reg("f1-f1-app-1-proxy").dependencies).toContain(reg("f1-f1-app-1-proxy-config").urn);
  });

  it("sets the PIDs limit (CIS 5.29) of each container right after it exists, by a docker update triggered by its id", () => {
    const replica = byPrefix("docker:index/container:Container", "f1-f1-app-1-web-")[0];
    for (const [container, limit] of [[replica.name, service().pidsLimit], ["f1-f1-app-1-proxy", PROXY_SETTINGS.pidsLimit]] as const) {
      const cmd = mocks.get("command:local:Command", `${container}-pids-limit`);
      expect(cmd.inputs.create).toBe(`docker update --pids-limit ${limit} computed(${container}.id) >/dev/null`);
      // A replaced container (a new id) replaces the command, which sets the limit again.
      expect(cmd.inputs.triggers).toEqual([`computed(${container}.id)`]);
      expect(cmd.inputs.delete).toBeUndefined();
      expect(reg(`${container}-pids-limit`).dependencies).toContain(reg(container).urn);
    }
    expect(service().pidsLimit).not.toBe(PROXY_SETTINGS.pidsLimit);
    // One per container: two hosts, one replica and one proxy each.
    expect(byPrefix("command:local:Command", "f1-").filter((c) => c.name.endsWith("-pids-limit"))).toHaveLength(4);
  });

  it("pulls on the host by digest with the platform pinned, and the container takes the image id", () => {
    const image = mocks.get("docker:index/remoteImage:RemoteImage", "f1-f1-app-1-web-image");
    expect(image.inputs.name).toBe(`${service().repository}@${DIGEST_A}`);
    expect(image.inputs.platform).toBe("linux/amd64");
    const pull = mocks.get("command:local:Command", "f1-f1-app-1-web-pull");
    expect(pull.inputs.create).toBe(`docker pull --quiet --platform linux/amd64 ${service().repository}@${DIGEST_A}`);
    // The host's one ssh command line (no private key anywhere: the deployer's agent authenticates).
    expect(pull.inputs.interpreter).toEqual(sshArgv({ target: "203.0.113.10", user: "admin", hostPublicKey: HOST_KEY_LINE }));
    expect(reg("f1-f1-app-1-web-image").dependencies).toContain(reg("f1-f1-app-1-web-pull").urn);
    const containers = byPrefix("docker:index/container:Container", "f1-f1-app-1-web-");
    expect(containers).toHaveLength(1);
    expect(containers[0].inputs.image).toBe("computed(f1-f1-app-1-web-image.imageId)");
  });

  it("marks secret env as secret in the request and in the outputs, and never puts it in a name or label", () => {
    const c = byPrefix("docker:index/container:Container", "f1-f1-app-1-web-")[0];
    const r = reg(c.name);
    expect(isSecretValue(r.raw.envs)).toBe(true);
    expect(r.additionalSecretOutputs).toContain("envs");
    expect(JSON.stringify(r.raw.labels)).not.toContain("s3cr3t");
    expect(c.name).not.toContain("s3cr3t");
    expect(isSecretValue(c.inputs.envs)).toBe(true);
    expect((c.inputs.envs as { value: string[] }).value).toEqual(["LOG_LEVEL=info", "API_TOKEN=s3cr3t-token-value"]);
  });

  it("sets health check, wait, restart, limits, logs, labels, network alias and volumes", () => {
    const c = byPrefix("docker:index/container:Container", "f1-f1-app-2-web-")[0];
    const i = c.inputs as Record<string, any>;
    expect(i.healthcheck.tests).toEqual(["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]);
    expect(i.healthcheck).toMatchObject({ interval: "5s", timeout: "2s", retries: 3, startPeriod: "5s" });
    expect(i.wait).toBe(true);
    expect(i.waitTimeout).toBe(healthWaitSeconds(service().health));
    expect(i.restart).toBe("unless-stopped");
    expect(i.memory).toBe(128);
    expect(i.cpus).toBe("0.5");
    expect(i.user).toBe("65534:65534");
    expect(i.readOnly).toBe(true);
    expect(i.tmpfs).toHaveProperty("/tmp");
    expect(i.logDriver).toBe("local");
    expect(i.logOpts).toEqual({ "max-size": "10m", "max-file": "5" });
    const labels = Object.fromEntries((i.labels as { label: string; value: string }[]).map((l) => [l.label, l.value]));
    expect(labels).toMatchObject({ "dockyard.stack": "dev", "dockyard.service": "web", "dockyard.digest": DIGEST_A });
    expect(i.networksAdvanced).toEqual([{ name: "dev-web", aliases: ["web"] }]);
    expect(i.mounts).toEqual([{ type: "volume", source: "dev-web-uploads", target: "/srv/uploads" }]);
    expect(mocks.get("docker:index/volume:Volume", "f1-f1-app-2-web-uploads").inputs.name).toBe("dev-web-uploads");
    expect(reg(c.name).deleteBeforeReplace).toBe(false);
  });

  it("runs one proxy per host publishing the service port, configured for the service network", () => {
    const p = mocks.get("docker:index/container:Container", "f1-f1-app-1-proxy");
    const i = p.inputs as Record<string, any>;
    expect(i.image).toBe("computed(f1-f1-app-1-proxy-image.imageId)");
    expect(i.ports).toEqual([{ internal: 80, external: 80, protocol: "tcp" }]);
    expect(i.networksAdvanced).toEqual([{ name: "dev-web" }]);
    const config = mocks.get("command:local:Command", "f1-f1-app-1-proxy-config").inputs.stdin as string;
    expect(i.mounts).toEqual([{ type: "bind", source: proxyConfigFile(config, "/var/lib/dockyard"), target: "/usr/local/etc/haproxy/haproxy.cfg", readOnly: true }]);
    expect(config).toContain("server-template web 10 web:8080 check");
    expect(reg("f1-f1-app-1-proxy").deleteBeforeReplace).toBe(true);
    // CIS 5.13: read-only root; the configuration is mounted.
    expect(i.readOnly).toBe(true);
    expect(i.sysctls).toEqual({ "net.ipv4.ip_unprivileged_port_start": "0" });
    expect(mocks.get("docker:index/remoteImage:RemoteImage", "f1-f1-app-1-proxy-image").inputs.name).toBe(PROXY);
  });

  it("pulls the proxy image on the host the way service images are pulled; the provider then finds it locally", () => {
    for (const [i, h] of hosts.entries()) {
      const pull = mocks.get("command:local:Command", `f1-${h.name}-proxy-pull`);
      expect(pull.inputs.create).toBe(`docker pull --quiet --platform linux/amd64 ${PROXY}`);
      expect(pull.inputs.interpreter).toEqual(sshArgv({ target: `203.0.113.${10 + i}`, user: "admin", hostPublicKey: HOST_KEY_LINE }));
      expect(reg(`f1-${h.name}-proxy-image`).dependencies).toContain(reg(`f1-${h.name}-proxy-pull`).urn);
      const image = mocks.get("docker:index/remoteImage:RemoteImage", `f1-${h.name}-proxy-image`);
      const svcImage = mocks.get("docker:index/remoteImage:RemoteImage", `f1-${h.name}-web-image`);
      expect(image.inputs).toEqual({ ...svcImage.inputs, name: PROXY });
      expect(pull.inputs.triggers).toEqual(mocks.get("command:local:Command", `f1-${h.name}-web-pull`).inputs.triggers);
    }
  });

  it("removes an image once no container of the fleet uses it (keepLocally false, never forced)", () => {
    const images = byPrefix("docker:index/remoteImage:RemoteImage", "f1-");
    expect(images).toHaveLength(4);
    for (const image of images) {
      expect(image.inputs.keepLocally).toBe(false);
      expect(image.inputs.forceRemove ?? false).toBe(false);
    }
    // Pulumi deletes a resource only after those that depend on it: every container depends on its image.
    for (const c of byPrefix("docker:index/container:Container", "f1-")) {
      const image = String(c.inputs.image).replace(/^computed\((.*)\.imageId\)$/, "$1");
      expect(reg(c.name).dependencies).toContain(reg(image).urn);
    }
  });

  it("gives every container a stop grace longer than the proxy lets a request or a drain last", () => {
    const cfg = renderHaproxyConfig([{ service: "web", publishPort: 80, containerPort: 8080, healthPath: "/healthz", replicas: 1 }]);
    const bounds = [...cfg.matchAll(/^\s+(?:timeout server|hard-stop-after) (\d+)s$/gm)].map((m) => Number(m[1]));
    expect(bounds).toHaveLength(2);
    expect(STOP_GRACE_SECONDS).toBeGreaterThan(Math.max(...bounds));
    const containers = byPrefix("docker:index/container:Container", "f1-");
    expect(containers).toHaveLength(4);
    for (const c of containers) {
      expect(c.inputs.destroyGraceSeconds, c.name).toBe(STOP_GRACE_SECONDS);
      expect(c.inputs.stopTimeout, c.name).toBe(STOP_GRACE_SECONDS);
      // The image's STOPSIGNAL (SIGUSR1, soft stop, for haproxy) is kept.
      expect(c.inputs.stopSignal, c.name).toBeUndefined();
      // Services run under docker-init, so the stop signal reaches them (the proxy, haproxy -W, handles its own).
      expect(c.inputs.init, c.name).toBe(c.name.endsWith("-proxy") ? undefined : true);
    }
  });

  it("rolls one host at a time by default: host 2's replicas and proxy wait for host 1's serving gate, which waits for host 1's containers; dependsOn only", () => {
    const gate1 = reg("f1-f1-app-1-serving");
    const gate2 = reg("f1-f1-app-2-serving");
    const mine = (h: string) => registrations.filter((r) => r.type === "docker:index/container:Container" && r.name.startsWith(`f1-${h}-`));
    expect(mine("f1-app-1").map((r) => r.name).sort()).toEqual(["f1-f1-app-1-proxy", expect.stringMatching(/^f1-f1-app-1-web-0-[0-9a-f]{8}$/)]);
    for (const c of mine("f1-app-1")) {
      expect(gate1.dependencies, `host 1's gate waits for ${c.name}`).toContain(c.urn);
      expect(c.dependencies, `${c.name} (first batch) waits for no gate`).not.toContain(gate2.urn);
    }
    for (const c of mine("f1-app-2")) {
      expect(c.dependencies, `${c.name} waits for host 1's gate`).toContain(gate1.urn);
      expect(gate2.dependencies).toContain(c.urn);
      // The engine replaces a dependent of a delete-before-replace resource only when one of
      // its INPUTS depends on it (step_generator.go, calculateDependentReplacements).
      expect(Object.keys(c.propertyDependencies).length).toBeGreaterThan(0);
      for (const [k, urns] of Object.entries(c.propertyDependencies)) expect(urns, k).not.toContain(gate1.urn);
    }
    // The proxy, which holds the host ports, is replaced delete-first, so host by host.
    expect(reg("f1-f1-app-2-proxy").deleteBeforeReplace).toBe(true);
    // And a proxy counts as created only once its health check passed.
    for (const name of ["f1-f1-app-1-proxy", "f1-f1-app-2-proxy"]) {
      const i = mocks.get("docker:index/container:Container", name).inputs as Record<string, any>;
      expect(i.healthcheck.tests).toEqual(["CMD", "haproxy", "-c", "-q", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]);
      expect(i.wait).toBe(true);
      expect(i.waitTimeout).toBeGreaterThanOrEqual(30);
    }
  });

  it("each host's serving gate runs the gate script on the host for its published ports, again whenever a container or the engine readiness is replaced", () => {
    const gate = mocks.get("command:local:Command", "f1-f1-app-1-serving").inputs as Record<string, any>;
    // The containers after `--`, in the order of the triggers (after the engine readiness id).
    expect(gate.create).toBe(servingGateCommand([80], 0, 180, gate.triggers.slice(1)));
    expect(gate.create).toMatch(/^bash -s -- 180 0 '\/\.dockyard\/health' 80 -- 'computed\(f1-f1-app-1-/);
    expect(gate.stdin).toBe(servingGateScript());
    expect(gate.interpreter.slice(0, 1)).toEqual(["ssh"]);
    // The engine readiness id, then the proxy's and the replica's ids.
    expect(gate.triggers).toHaveLength(3);
  });

  it("each host's serving gate checks every container of its host by id (issue 24 item 16: the up after a failed health wait updates the container without waiting)", () => {
    for (const h of ["f1-app-1", "f1-app-2"]) {
      const gate = mocks.get("command:local:Command", `f1-${h}-serving`).inputs as Record<string, any>;
      const containers = byPrefix("docker:index/container:Container", `f1-${h}-`).map((c) => c.name);
      expect(containers).toHaveLength(2);
      // The mock ids of the host's replica and proxy, the same ones as in its triggers.
      const ids = containers.map((n) => `computed(${n}.id)`).sort();
      expect(String(gate.create).split(" -- ")[1]).toBe(`180 0 '/.dockyard/health' 80`);
      expect(String(gate.create).split(" -- ")[2].split(" ").map((x: string) => x.replace(/'/g, "")).sort()).toEqual(ids);
      expect(gate.triggers.slice(1).sort()).toEqual(ids);
    }
  });

  it("exports the proxy image once every proxy container was created", async () => {
    expect(await promisify(main.proxyImage)).toBe(PROXY);
  });

  it("exports each service with digest, image, replicas and hosts", async () => {
    expect(await promisify(main.services)).toEqual({
      web: { digest: DIGEST_A, image: `${service().repository}@${DIGEST_A}`, replicas: 2, hosts: ["f1-app-1", "f1-app-2"] },
    });
  });
});

describe("the outputs promote trusts wait for the containers", () => {
  it("a service one of whose containers failed to be created is never reported", async () => {
    mocks.failingContainers.add("x1-x1-app-2-web-");
    let result = "";
    const failures = await collectingFailures(async () => {
      const f = fleet("x1", makeHosts("x1", 2), [service()]);
      result = await outcome(f.services);
    });
    expect(failures.join("\n")).toMatch(/x1-x1-app-2-web-0-[0-9a-f]{8} failed to be in healthy state/);
    expect(result).not.toBe("resolved");
  });

  it("the proxy image is never reported while a proxy container failed to be created", async () => {
    mocks.failingContainers.add("x2-x2-app-2-proxy");
    let result = "";
    let services = "";
    const failures = await collectingFailures(async () => {
      const f = fleet("x2", makeHosts("x2", 2), [service()]);
      result = await outcome(f.proxyImage);
      services = await outcome(f.services);
    });
    expect(failures.join("\n")).toMatch(/x2-x2-app-2-proxy failed to be in healthy state/);
    expect(result).not.toBe("resolved");
    // Host 2's turn did not end (its gate waits for its proxy): the service counts as deployed
    // only once every host carrying it passed its gate.
    expect(services).not.toBe("resolved");
  });

  it("the second up after a failed health wait: the container's update succeeds without waiting, its host's gate fails, and neither output is reported (issue 24 item 16)", async () => {
    // Every container is created (as the engine's update of a container with an init error
    // succeeds: resourceDockerContainerUpdate waits for nothing); host 2's gate exits 1 (its
    // replica is unhealthy: serving-gate.sh). Today's outputs waited for the containers only.
    mocks.failingCommands.add("x4-x4-app-2-serving");
    let services = "";
    let proxy = "";
    const failures = await collectingFailures(async () => {
      const f = fleet("x4", makeHosts("x4", 2), [service()]);
      services = await outcome(f.services);
      proxy = await outcome(f.proxyImage);
    });
    expect(failures.join("\n")).toMatch(/x4-x4-app-2-serving failed/);
    expect(services).not.toBe("resolved");
    expect(proxy).not.toBe("resolved");
  });

  it("a fleet without proxy image reports none", async () => {
    const f = new ContainerFleet("x3", { stack: "dev", hosts: makeHosts("x3", 1), services: [service({ publishPort: undefined })], secrets: { "api-token": "v" }, architecture: "x86_64", logging: LOGGING, proxy: PROXY_SETTINGS });
    expect(await outcome(f.proxyImage)).toBe("resolved");
    expect(await promisify(f.proxyImage)).toBeUndefined();
  });
});

describe("rollout batches of maxUnavailable (components/rollout.ts)", () => {
  it("5 hosts, maxUnavailable 2: hosts 1-2 wait for nobody, 3-4 for the gates of 1 and 2, 5 for those of 3 and 4; the hosts' machines get the same promise", async () => {
    const hs = makeHosts("b1", 5);
    const order = new RolloutOrder([{ name: "app", hosts: hs.map((h) => h.name), maxUnavailable: 2 }]);
    // What a host's machine waits for (index.ts passes it to DockerHost/LocalHost as `after`).
    const machineAfter = hs.map((h) => order.after(h.name));
    new ContainerFleet("b1", { stack: "dev", hosts: hs, services: [service({ replicas: 5 })], secrets: {}, architecture: "x86_64", logging: LOGGING, proxyImage: PROXY, proxy: PROXY_SETTINGS, rollout: order });
    await settle(80);
    const gateUrn = (i: number) => reg(`b1-b1-app-${i}-serving`).urn!;
    const waitsFor: Record<number, number[]> = { 1: [], 2: [], 3: [1, 2], 4: [1, 2], 5: [3, 4] };
    for (let i = 1; i <= 5; i++) {
      const containers = registrations.filter((r) => r.type === "docker:index/container:Container" && r.name.startsWith(`b1-b1-app-${i}-`));
      expect(containers.length, `host ${i}: a replica and the proxy`).toBe(2);
      for (const c of containers) {
        for (let j = 1; j <= 5; j++) {
          if (waitsFor[i].includes(j)) expect(c.dependencies, `${c.name} waits for host ${j}'s gate`).toContain(gateUrn(j));
          else expect(c.dependencies, `${c.name} does not wait for host ${j}'s gate`).not.toContain(gateUrn(j));
        }
      }
      const machine = await machineAfter[i - 1];
      expect(machine.map((r) => pulumi.resourceName(r)).sort()).toEqual(waitsFor[i].map((j) => `b1-b1-app-${j}-serving`));
    }
  });

  it("RolloutOrder: unknown hosts and a second gate are refused; close() gives the hosts without a gate their fallback", async () => {
    const order = new RolloutOrder([{ name: "app", hosts: ["h1", "h2", "h3"], maxUnavailable: 1 }]);
    expect(() => order.after("nope")).toThrow(/unknown host nope/);
    expect(order.waitsFor("h3")).toEqual(["h2"]);
    const a = { name: "gate-h1" } as unknown as pulumi.Resource;
    const b = { name: "engine-h2" } as unknown as pulumi.Resource;
    order.gate("h1", [a]);
    expect(() => order.gate("h1", [a])).toThrow(/already set/);
    order.close((h) => (h === "h2" ? [b] : []));
    expect(await order.after("h2")).toEqual([a]);
    expect(await order.after("h3")).toEqual([b]);
    expect(await order.after("h1")).toEqual([]);
    expect(() => new RolloutOrder([{ name: "a", hosts: ["x"], maxUnavailable: 1 }, { name: "b", hosts: ["x"], maxUnavailable: 1 }])).toThrow(/in two groups/);
  });

  it("rolloutBatches and servingGateCommand", () => {
    expect(rolloutBatches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(rolloutBatches(["a"], 3)).toEqual([["a"]]);
    expect(() => rolloutBatches([1], 0)).toThrow(/at least 1/);
    expect(servingGateCommand([443, 80, 80], 20)).toBe("bash -s -- 180 20 '/.dockyard/health' 80 443");
    expect(servingGateCommand([], 0)).toBe("bash -s -- 180 0 '/.dockyard/health'");
    expect(servingGateCommand([80], 0, 60, ["0123abcd", "4567ef"])).toBe("bash -s -- 60 0 '/.dockyard/health' 80 -- '0123abcd' '4567ef'");
    expect(() => servingGateCommand([80], 0, 60, ["a'b"])).toThrow(/not a container id/);
    expect(() => servingGateCommand([80], -1)).toThrow(/not a whole number/);
  });
});

describe("container names follow the spec", () => {
  const names = async (prefix: string, svc: ServiceSpec, secrets?: Record<string, string>) => {
    fleet(prefix, makeHosts(prefix, 2), [svc], secrets);
    await settle(50);
    return byPrefix("docker:index/container:Container", `${prefix}-`)
      .filter((c) => !c.name.endsWith("-proxy"))
      .map((c) => c.name.slice(prefix.length + 1 + prefix.length))
      .sort();
  };

  it("a new digest or env is a new resource; a replica count or secret value change is not", async () => {
    const base = await names("n1", service());
    expect(base).toEqual([`-app-1-web-0-${specHash(service(), { logging: LOGGING, platform: "linux/amd64" })}`, `-app-2-web-0-${specHash(service(), { logging: LOGGING, platform: "linux/amd64" })}`]);
    const newDigest = await names("n2", service({ digest: DIGEST_B }));
    expect(newDigest.filter((n) => base.includes(n))).toEqual([]);
    const newEnv = await names("n3", service({ env: { LOG_LEVEL: "debug" } }));
    expect(newEnv.filter((n) => base.includes(n))).toEqual([]);
    const moreReplicas = await names("n4", service({ replicas: 3 }));
    expect(moreReplicas).toEqual(expect.arrayContaining(base));
    expect(moreReplicas).toHaveLength(3);
    const otherSecret = await names("n5", service(), { "api-token": "another-value" });
    expect(otherSecret).toEqual(base);
  });
});

describe("pure helpers", () => {
  it("a replica's env is its plain env, then its secrets' values, and says when a value is secret", () => {
    expect(serviceEnv(service(), { "api-token": "t" })).toEqual({ lines: ["LOG_LEVEL=info", "API_TOKEN=t"], secret: true });
    expect(serviceEnv(service({ secrets: {} }), {})).toEqual({ lines: ["LOG_LEVEL=info"], secret: false });
  });

  it("labels a replica with its stack, service, digest, slot and spec; a proxy with its role and config hash", () => {
    expect(replicaLabels("dev", service(), 1, "abcd1234")).toEqual([
      { label: "dockyard.stack", value: "dev" },
      { label: "dockyard.service", value: "web" },
      { label: "dockyard.digest", value: DIGEST_A },
      { label: "dockyard.slot", value: "1" },
      { label: "dockyard.spec", value: "abcd1234" },
    ]);
    const a = proxyLabels("dev", "config a");
    expect(a.map((l) => l.label)).toEqual(["dockyard.stack", "dockyard.role", "dockyard.config"]);
    expect(a[2].value).toMatch(/^[0-9a-f]{12}$/);
    expect(proxyLabels("dev", "config b")[2].value).not.toBe(a[2].value);
  });

  it("builds a replica's container arguments from its spec alone", () => {
    const args = replicaContainerArgs("dev", service({ readOnlyRootFilesystem: false }), LOGGING, { image: "sha256:img", envs: ["A=1"], network: "dev-web", slot: 0, hash: "h" });
    expect(args).toMatchObject({
      image: "sha256:img",
      envs: ["A=1"],
      readOnly: false,
      tmpfs: undefined,
      memory: 128,
      memorySwap: 128,
      cpus: "0.5",
      logDriver: "local",
      logOpts: { "max-size": "10m", "max-file": "5" },
      init: true,
      networksAdvanced: [{ name: "dev-web", aliases: ["web"] }],
      mounts: [{ type: "volume", source: "dev-web-uploads", target: "/srv/uploads" }],
    });
  });

  it("builds a proxy's container arguments: one published port and one network per route", () => {
    const routes = [
      { service: "web", publishPort: 80, containerPort: 8080, healthPath: "/healthz", replicas: 1 },
      { service: "api", publishPort: 8443, containerPort: 9000, healthPath: "/", replicas: 2 },
    ];
    const args = proxyContainerArgs("dev", routes, "cfg", "/var/lib/dockyard", LOGGING, "sha256:p", { web: "dev-web", api: "dev-api" }, PROXY_SETTINGS);
    expect(args.ports).toEqual([
      { internal: 80, external: 80, protocol: "tcp" },
      { internal: 8443, external: 8443, protocol: "tcp" },
    ]);
    expect(args.networksAdvanced).toEqual([{ name: "dev-web" }, { name: "dev-api" }]);
    expect(args.labels).toEqual(proxyLabels("dev", "cfg"));
  });

  it("hardens the proxy (CIS 4.1, 5.12, 5.13): read-only root with the configuration mounted read-only from its host file, non-root, CPU and memory limits", () => {
    const routes = [{ service: "web", publishPort: 80, containerPort: 8080, healthPath: "/healthz", replicas: 1 }];
    const args = proxyContainerArgs("dev", routes, "cfg-a", "/srv/data", LOGGING, "sha256:p", { web: "dev-web" }, PROXY_SETTINGS);
    expect(args.uploads).toBeUndefined();
    expect(args.readOnly).toBe(true);
    expect(args.mounts).toEqual([{ type: "bind", source: proxyConfigFile("cfg-a", "/srv/data"), target: "/usr/local/etc/haproxy/haproxy.cfg", readOnly: true }]);
    // On the data volume, not the root disk: a replaced host's dockerd restores the proxy with it.
    expect(proxyConfigFile("cfg-a", "/srv/data")).toMatch(/^\/srv\/data\/proxy\/haproxy-[0-9a-f]{12}\.cfg$/);
    expect(proxyConfigFile("cfg-b", "/srv/data")).not.toBe(proxyConfigFile("cfg-a", "/srv/data"));
    expect([args.user, args.cpus, args.memory, args.memorySwap]).toEqual(["99:99", "0.5", 128, 128]);
    expect(args.healthcheck).toBeDefined();
  });

  it("writeConfigCommand, run by sh: writes its stdin by a rename, removes older files no container mounts, keeps a mounted one, removes nothing when docker cannot answer", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dy-proxy-dir-"));
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "dy-proxy-bin-"));
    try {
      const [fresh, stale, mounted] = ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"].map((h) => `${dir}/haproxy-${h}.cfg`);
      for (const f of [fresh, stale, mounted]) fs.writeFileSync(f, "old\n");
      fs.writeFileSync(`${dir}/notes.txt`, "not a configuration\n");
      // A stand-in docker: `ps -aq --filter volume=<path>` names a container only for the mounted file.
      fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\n[ -n "$DOCKER_FAILS" ] && exit 1\ncase "$*" in *"volume=${mounted}"*) echo c0ffee ;; esac\n`, { mode: 0o755 });
      const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
      // Docker cannot answer: the file is written, nothing is removed, the command fails.
      const failed = spawnSync("sh", ["-c", writeConfigCommand(fresh)], { input: "new\n", env: { ...env, DOCKER_FAILS: "1" } });
      expect(failed.status).not.toBe(0);
      expect([fresh, stale, mounted].map((f) => fs.existsSync(f))).toEqual([true, true, true]);
      execFileSync("sh", ["-c", writeConfigCommand(fresh)], { input: "new\n", env });
      expect(fs.readFileSync(fresh, "utf8")).toBe("new\n");
      expect(fs.existsSync(stale)).toBe(false);
      expect(fs.readFileSync(mounted, "utf8")).toBe("old\n");
      expect(fs.readdirSync(dir).sort()).toEqual([path.basename(fresh), path.basename(mounted), "notes.txt"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it("pidsLimitCommand: docker update of one container", () => {
    expect(pidsLimitCommand(256, "a1")).toBe("docker update --pids-limit 256 a1 >/dev/null");
  });

  it("health wait covers start period plus every retry, at least 60s", () => {
    expect(healthWaitSeconds({ interval: "5s", timeout: "2s", retries: 3, startPeriod: "5s" })).toBe(63);
    expect(healthWaitSeconds({ interval: "1m", timeout: "10s", retries: 5, startPeriod: "30s" })).toBe(30 + 70 * 6 + 30);
  });

  it("proxy routes only the published services with replicas on the host", () => {
    const svcs = [service(), service({ name: "worker", publishPort: undefined }), service({ name: "api", publishPort: 8443, replicas: 1 })];
    const placements = placeFleet("dev", svcs, [{ name: "h1", group: "app" }, { name: "h2", group: "app" }]);
    expect(proxyRoutes(svcs, placements, "h1").map((r) => r.service)).toEqual(["web", "api"]);
    expect(proxyRoutes(svcs, placements, "h2").map((r) => r.service)).toEqual(["web"]);
    // A host runs a proxy only with a proxy image and at least one route there.
    expect(hostProxy("r/haproxy@sha256:x", svcs, placements, "h2")).toEqual({ image: "r/haproxy@sha256:x", routes: proxyRoutes(svcs, placements, "h2") });
    expect(hostProxy(undefined, svcs, placements, "h1")).toBeUndefined();
    expect(hostProxy("r/haproxy@sha256:x", [svcs[1]], placeFleet("dev", [svcs[1]], [{ name: "h1", group: "app" }]), "h1")).toBeUndefined();
  });

  it("zero hosts in the group is a clear error naming the stack and key", () => {
    expect(() => placeFleet("prod", [service()], [])).toThrow(/stack "prod": service "web".*hostGroups\.app\.count/);
  });
});

describe("every shipped stack places its fleet", () => {
  for (const stack of STACKS) {
    it(`${stack}: each service gets its replicas, spread, on its group's hosts`, async () => {
      const spec = loadStackSpec(stack);
      const hosts = spec.hostGroups.flatMap((g) => Array.from({ length: g.count }, (_, i) => ({ name: `${stack}-${g.name}-${i + 1}`, group: g.name })));
      const placements = placeFleet(stack, spec.services, hosts);
      for (const s of spec.services) {
        const counts = Object.values(placements[s.name]);
        expect(counts.reduce((a, b) => a + b, 0)).toBe(s.replicas);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }
      const real = makeHosts(`w${stack}`, hosts.length).map((h, i) => ({ ...h, name: hosts[i].name, group: hosts[i].group }));
      const f = new ContainerFleet(`w${stack}`, { stack, hosts: real, services: spec.services, secrets: spec.secrets, architecture: spec.os.architecture, logging: spec.engine.daemon, proxyImage: PROXY, proxy: spec.proxy });
      await settle(50);
      const out = await promisify(f.services);
      for (const s of spec.services) {
        expect(out[s.name].image).toBe(`${s.repository}@${s.digest}`);
        const containers = byPrefix("docker:index/container:Container", `w${stack}-`).filter((c) => c.name.includes(`-${s.name}-`));
        expect(containers).toHaveLength(s.replicas);
      }
    });
  }
});
