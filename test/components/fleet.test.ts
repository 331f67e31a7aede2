import { describe, it, expect, beforeAll } from "vitest";
import * as pulumi from "@pulumi/pulumi";
import { useMocks, promisify, settle } from "../helpers/pulumi";
import * as command from "@pulumi/command";
import { loadStackSpec, STACKS, type ServiceSpec } from "../../stacks";
import { ContainerFleet, sshOptions, knownHostsLine, specHash, healthWaitSeconds, proxyRoutes, placeFleet } from "../../components/fleet";

const mocks = useMocks("dev");

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
const DIGEST_A = "sha256:" + "a".repeat(64);
const DIGEST_B = "sha256:" + "b".repeat(64);

function makeHosts(prefix: string, n: number, group = "app") {
  return Array.from({ length: n }, (_, i) => {
    const name = `${prefix}-${group}-${i + 1}`;
    const ready = new command.remote.Command(`${name}-ready`, { connection: { host: `203.0.113.${10 + i}` }, create: "cloud-init status --wait && docker info" });
    return { name, group, address: `203.0.113.${10 + i}`, sshUser: "admin", hostPublicKey: HOST_KEY, ready };
  });
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
    ...over,
  };
}

const LOGGING = { logDriver: "local" as const, logMaxSize: "10m", logMaxFile: 5 };
const PROXY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev/haproxy@sha256:" + "c".repeat(64);

function fleet(name: string, hosts: ReturnType<typeof makeHosts>, services: ServiceSpec[], secrets: Record<string, string> = { "api-token": "s3cr3t-token-value" }) {
  return new ContainerFleet(name, { stack: "dev", hosts, services, secrets, architecture: "x86_64", logging: LOGGING, proxyImage: PROXY });
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
      const readyUrn = reg(`${h.name}-ready`).urn!;
      expect(readyUrn).toBeTruthy();
      const mine = registrations.filter((r) => r.name.startsWith(`f1-${h.name}`) && (r.type.startsWith("docker:") || r.type === "pulumi:providers:docker" || r.type === "command:remote:Command"));
      expect(mine.length).toBeGreaterThanOrEqual(7); // provider, network, volume, pull, image, 1 container, proxy image, proxy
      for (const r of mine) expect(r.dependencies, `${r.name} depends on ${h.name}-ready`).toContain(readyUrn);
      // Docker resources go through this host's provider, not the default one.
      const providerUrn = reg(`f1-${h.name}`).urn!;
      for (const r of mine.filter((x) => x.type.startsWith("docker:"))) expect(r.provider.startsWith(providerUrn)).toBe(true);
    }
  });

  it("pulls on the host by digest with the platform pinned, and the container takes the image id", () => {
    const image = mocks.get("docker:index/remoteImage:RemoteImage", "f1-f1-app-1-web-image");
    expect(image.inputs.name).toBe(`${service().repository}@${DIGEST_A}`);
    expect(image.inputs.platform).toBe("linux/amd64");
    const pull = mocks.get("command:remote:Command", "f1-f1-app-1-web-pull");
    expect(pull.inputs.create).toBe(`docker pull --quiet --platform linux/amd64 ${service().repository}@${DIGEST_A}`);
    expect(isSecretValue(pull.inputs.connection)).toBe(true);
    expect((pull.inputs.connection as { value: Record<string, unknown> }).value).toMatchObject({ host: "203.0.113.10", user: "admin", hostKey: HOST_KEY });
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
    expect(i.uploads[0].file).toBe("/usr/local/etc/haproxy/haproxy.cfg");
    expect(i.uploads[0].content).toContain("server-template web 10 web:8080 check");
    expect(reg("f1-f1-app-1-proxy").deleteBeforeReplace).toBe(true);
    // Docker refuses uploads into a read-only rootfs (see fleet.int.test.ts).
    expect(i.readOnly).toBe(false);
    expect(i.sysctls).toEqual({ "net.ipv4.ip_unprivileged_port_start": "0" });
    expect(mocks.get("docker:index/remoteImage:RemoteImage", "f1-f1-app-1-proxy-image").inputs.name).toBe(PROXY);
  });

  it("exports each service with digest, image, replicas and hosts", async () => {
    expect(await promisify(main.services)).toEqual({
      web: { digest: DIGEST_A, image: `${service().repository}@${DIGEST_A}`, replicas: 2, hosts: ["f1-app-1", "f1-app-2"] },
    });
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
  it("knownHostsLine drops the comment and rejects a non-key", () => {
    expect(knownHostsLine("203.0.113.10", HOST_KEY)).toBe(`203.0.113.10 ${HOST_KEY.split(" ").slice(0, 2).join(" ")}`);
    expect(() => knownHostsLine("203.0.113.10", "not a key")).toThrow(/OpenSSH public key/);
    expect(() => knownHostsLine("a b", HOST_KEY)).toThrow(/not an IP address/);
  });

  it("sshOptions are flag/value pairs ssh(1) accepts as separate argv entries", () => {
    const opts = sshOptions(HOST_KEY);
    expect(opts.length % 2).toBe(0);
    for (let i = 0; i < opts.length; i += 2) expect(opts[i]).toBe("-o");
    expect(() => sshOptions("ssh-ed25519")).toThrow();
  });

  it("health wait covers start period plus every retry, at least 60s", () => {
    expect(healthWaitSeconds({ path: "/", interval: "5s", timeout: "2s", retries: 3, startPeriod: "5s" })).toBe(63);
    expect(healthWaitSeconds({ path: "/", interval: "1m", timeout: "10s", retries: 5, startPeriod: "30s" })).toBe(30 + 70 * 6 + 30);
  });

  it("proxy routes only the published services with replicas on the host", () => {
    const svcs = [service(), service({ name: "worker", publishPort: undefined }), service({ name: "api", publishPort: 8443, replicas: 1 })];
    const placements = placeFleet("dev", svcs, [{ name: "h1", group: "app" }, { name: "h2", group: "app" }]);
    expect(proxyRoutes(svcs, placements, "h1").map((r) => r.service)).toEqual(["web", "api"]);
    expect(proxyRoutes(svcs, placements, "h2").map((r) => r.service)).toEqual(["web"]);
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
      const f = new ContainerFleet(`w${stack}`, { stack, hosts: real, services: spec.services, secrets: spec.secrets, architecture: spec.os.architecture, logging: spec.engine.daemon, proxyImage: PROXY });
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
