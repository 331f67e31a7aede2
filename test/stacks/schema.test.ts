import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { READY_MARKER } from "../../components/engine";
import {
  ConfigError,
  dockerCeOffered,
  ENGINE_READY_MARKER,
  isCidr,
  OS_FAMILIES,
  SSH_KEY_ALLOWED,
  SYSTEM_DIRECTORIES,
  KNOB_KEYS,
  loadStackSpec,
  parseEnvironment,
  pinnedImages,
  readEnvironmentFile,
  readStackFile,
  SECRET_PLACEHOLDER,
  splitImageRef,
  STACKS,
  type RawStackFile,
} from "../../stacks";

const DIGEST = `sha256:${"a".repeat(64)}`;
const env = () => structuredClone(readEnvironmentFile("dev")) as Record<string, any>;
const validConfig = (): Record<string, any> => structuredClone(readStackFile("dev").config) as Record<string, any>;

/** The problems parseEnvironment reports for a config, or [] if it parses. */
function problems(config: Record<string, unknown>, envDoc: unknown = env(), stack = "dev"): string[] {
  try {
    parseEnvironment(stack, envDoc, { config });
    return [];
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
}

describe("shipped stacks", () => {
  it.each(STACKS)("%s parses into a full spec", (stack) => {
    const spec = loadStackSpec(stack);
    expect(spec.stack).toBe(stack);
    expect(spec.project).toBe("dockyard");
    expect(spec.hostGroups.map((g) => g.name)).toEqual(["app"]);
    expect(spec.services.map((s) => s.name)).toEqual(["web"]);
    const web = spec.services[0];
    expect(web.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(web.repository).toBe(`123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-${stack}/web`);
    expect(web.health.path).toBe("/healthz");
    expect(spec.engine.channel).toBe("docker-ce");
    expect(spec.os.sshUser).toBe("admin");
  });

  // Each stack's spec is set against the files it comes from (environment.yaml for what is
  // shared, the stack's own Pulumi.<stack>.yaml for its knobs), not against another spec
  // parsed from the same environment.yaml, which would be equal by construction.
  it.each(STACKS)("%s: the environment's settings come from environment.yaml, the knobs from its own stack file", (stack) => {
    const envDoc = readEnvironmentFile(stack) as Record<string, any>;
    const raw = readStackFile(stack).config as Record<string, any>;
    const spec = loadStackSpec(stack);
    expect(Object.keys(raw).filter((k) => !(KNOB_KEYS as string[]).includes(k))).toEqual([]);

    expect(spec.os.family).toBe(envDoc.os.family);
    expect(spec.engine.channel).toBe(envDoc.engine.channel);
    expect(spec.engine.version).toBe(envDoc.engine.version);
    expect(spec.engine.daemon).toMatchObject(envDoc.engine.daemon);
    for (const svc of spec.services) {
      const def = envDoc.services[svc.name];
      // Every setting the file writes, as written (settings it leaves out take the schema's defaults).
      const { group, repository, replicas, ...written } = def;
      expect(svc).toMatchObject({ ...written, group });
      expect(Object.keys(written).length).toBeGreaterThan(5);
      expect(svc.digest).toBe(raw["dockyard:images"][svc.name]);
      expect(svc.replicas).toBe(raw["dockyard:replicas"]?.[svc.name] ?? def.replicas);
      expect(svc.repository).toBe(`${raw["dockyard:registry"]}/${def.repository ?? svc.name}`);
    }
    for (const g of spec.hostGroups) {
      expect(g.role).toBe(envDoc.hostGroups[g.name].role);
      const { instanceType, count, rootVolumeGb, dataVolumeGb } = g;
      expect({ instanceType, count, rootVolumeGb, dataVolumeGb }).toEqual(raw["dockyard:hostGroups"][g.name]);
    }
    // Knobs a file leaves out take Pulumi.yaml's default (hostAccess ssm, no sshCidrs).
    expect([spec.region, spec.registry, spec.access.mode, spec.access.sshCidrs, spec.access.ingressCidrs]).toEqual([
      raw["aws:region"], raw["dockyard:registry"], raw["dockyard:hostAccess"] ?? "ssm", raw["dockyard:sshCidrs"] ?? [], raw["dockyard:ingressCidrs"],
    ]);
  });

  it("no shipped stack opens SSH to the network or leaves Session Manager, except dev's office CIDR", () => {
    const [dev, test, prod] = STACKS.map((s) => loadStackSpec(s));
    for (const s of [dev, test, prod]) expect(s.access.mode).toBe("ssm");
    expect(prod.access.sshCidrs).toEqual([]);
    expect(test.access.sshCidrs).toEqual([]);
    expect(dev.access.sshCidrs).toEqual(["198.51.100.0/24"]);
  });

  it("the three stack files are distinct: their knobs differ where the stacks are meant to", () => {
    const [dev, test, prod] = STACKS.map((s) => loadStackSpec(s));
    expect([dev, test, prod].map((s) => s.hostGroups[0].count)).toEqual([1, 2, 3]);
    expect(new Set([dev, test, prod].map((s) => s.registry)).size).toBe(3);
    expect(prod.hostGroups[0].instanceType).not.toBe(dev.hostGroups[0].instanceType);
    expect(prod.access.ingressCidrs).not.toEqual(dev.access.ingressCidrs);
  });

  it("a missing stack file is a ConfigError naming the stack and the file", () => {
    expect(() => loadStackSpec("nosuchstack")).toThrow(ConfigError);
    expect(() => loadStackSpec("nosuchstack")).toThrow(/stack "nosuchstack".*Pulumi\.nosuchstack\.yaml/s);
  });
});

describe("bad stack input: each class is reported with stack, file, key path and what is allowed", () => {
  it("wrong type", () => {
    const c = validConfig();
    c["dockyard:hostGroups"].app.count = "three";
    expect(problems(c)).toEqual([
      'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:hostGroups.app.count: must be an integer from 0 to 50',
    ]);
  });

  it("negative count", () => {
    const c = validConfig();
    c["dockyard:hostGroups"].app.count = -1;
    expect(problems(c)).toContain(
      'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:hostGroups.app.count: must be an integer from 0 to 50 (got -1)',
    );
  });

  it("unknown host group in the stack file", () => {
    const c = validConfig();
    c["dockyard:hostGroups"].db = { instanceType: "t3.small", count: 1 };
    expect(problems(c)).toEqual([
      'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:hostGroups.db: unknown host group; declared groups: app',
    ]);
  });

  it("unknown host group referenced by a service", () => {
    const e = env();
    e.services.web.group = "workers";
    expect(problems(validConfig(), e)).toEqual([
      'stack "dev": stacks/environment.yaml: services.web.group: unknown host group "workers"; declared groups: app',
    ]);
  });

  it("malformed CIDR and a CIDR with host bits", () => {
    const c = validConfig();
    c["dockyard:sshCidrs"] = ["10.0.0.0/33", "10.0.0.1/8"];
    const p = problems(c);
    expect(p).toHaveLength(2);
    expect(p[0]).toMatch(/config\.dockyard:sshCidrs\.0: must be an IPv4 CIDR like 203\.0\.113\.0\/24.*"10\.0\.0\.0\/33"/);
    expect(p[1]).toMatch(/config\.dockyard:sshCidrs\.1: .*"10\.0\.0\.1\/8"/);
  });

  it("a digest that is not sha256:<64 hex> (a tag, short hex, uppercase)", () => {
    for (const bad of ["latest", "sha256:abc", `sha256:${"A".repeat(64)}`, `web@${DIGEST}`]) {
      const c = validConfig();
      c["dockyard:images"].web = bad;
      expect(problems(c)).toEqual([
        "stack \"dev\": stacks/Pulumi.dev.yaml: config.dockyard:images.web: must be an image digest 'sha256:<64 lowercase hex>' (tags are not allowed)",
      ]);
    }
  });

  it("unknown key at the top of config, naming what is allowed", () => {
    const c = validConfig();
    c["dockyard:engineVersion"] = "27.0.0";
    const p = problems(c);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^stack "dev": stacks\/Pulumi\.dev\.yaml: config: unknown key "dockyard:engineVersion"; allowed: aws:region, dockyard:registry/);
  });

  it("an environment setting (health check) smuggled into a stack file is rejected", () => {
    const c = validConfig();
    c["dockyard:hostGroups"].app.health = { path: "/" };
    expect(problems(c)[0]).toMatch(/config\.dockyard:hostGroups\.app: unknown key "health"; allowed: platform, instanceType, count, rootVolumeGb, dataVolumeGb/);
  });

  it("unknown top-level key in the stack file", () => {
    expect(() => parseEnvironment("dev", env(), { config: validConfig(), other: { services: {} } } as RawStackFile)).toThrow(
      /stacks\/Pulumi\.dev\.yaml: services: unknown top-level key/,
    );
  });

  it("an image for an undeclared service is refused; a service without a digest awaits its first image (issue 11)", () => {
    const c = validConfig();
    c["dockyard:images"] = { api: DIGEST };
    expect(problems(c)).toEqual(['stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:images.api: unknown service; declared services: web']);
    const fresh = validConfig();
    delete fresh["dockyard:images"];
    expect(problems(fresh)).toEqual([]);
  });

  it("a missing required key says it is required", () => {
    const c = validConfig();
    delete c["aws:region"];
    expect(problems(c)).toEqual(['stack "dev": stacks/Pulumi.dev.yaml: config.aws:region: missing; required (expected string)']);
  });

  it("ONE error lists every problem at once, across both files", () => {
    const c = validConfig();
    c["dockyard:hostGroups"].app.count = -2;
    c["dockyard:hostGroups"].nope = { instanceType: "t3.small", count: 1 };
    c["dockyard:ingressCidrs"] = ["everywhere"];
    c["dockyard:images"].web = "latest";
    c["dockyard:colour"] = "blue";
    const e = env();
    e.services.web.containerPort = 70000;
    let err: ConfigError | undefined;
    try {
      parseEnvironment("prod", e, { config: c });
    } catch (x) {
      err = x as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toHaveLength(6);
    expect(err!.message).toMatch(/^Invalid configuration for stack "prod" \(6 problems\):/);
    for (const key of ["app.count", "ingressCidrs.0", "images.web", '"dockyard:colour"', "hostGroups.nope", "services.web.containerPort"]) {
      expect(err!.message).toContain(key);
    }
    for (const line of err!.problems) expect(line).toMatch(/^stack "prod": stacks\/(environment|Pulumi\.prod)\.yaml: /);
  });

  it("a stack without the proxy image digest is valid and says the proxy awaits its image (issue 11: a new stack)", () => {
    const c = validConfig();
    delete c["dockyard:proxyImage"];
    expect(problems(c)).toEqual([]);
    expect(loadStackSpec("dev").proxyAwaitingImage).toBe(false);
    expect(loadStackSpec("dev").proxyImage).toMatch(/^123456789012\.dkr\.ecr\.eu-west-1\.amazonaws\.com\/dockyard-dev\/haproxy@sha256:[a-f0-9]{64}$/);
  });

  it("the proxy's name and repository (haproxy) are not a service's: promote, rollback, pin and the ledger call the proxy so", () => {
    const e = env();
    e.services.haproxy = structuredClone(e.services.web);
    delete e.services.haproxy.publishPort;
    delete e.services.haproxy.repository; // its own name, not web's repository
    e.services.api = { ...structuredClone(e.services.web), repository: "haproxy", publishPort: undefined };
    delete e.services.api.publishPort;
    const c = validConfig();
    c["dockyard:images"] = { ...c["dockyard:images"], haproxy: DIGEST, api: DIGEST };
    expect(problems(c, e)).toEqual([
      'stack "dev": stacks/environment.yaml: services.haproxy: "haproxy" names the per-host proxy (dockyard:proxyImage, in <registry>/haproxy); give the service another name',
      'stack "dev": stacks/environment.yaml: services.api.repository: "haproxy" is the per-host proxy\'s repository (dockyard:proxyImage); use another repository',
    ]);
    const spec = loadStackSpec("dev");
    expect(pinnedImages(spec).map((i) => [i.name, i.repository, i.proxy])).toEqual([
      ["web", `${spec.registry}/web`, false],
      ["haproxy", `${spec.registry}/haproxy`, true],
    ]);
    expect(`${pinnedImages(spec)[1].repository}@${pinnedImages(spec)[1].digest}`).toBe(spec.proxyImage);
    expect(splitImageRef(`r/x@${DIGEST}`)).toEqual({ repository: "r/x", digest: DIGEST });
    expect(splitImageRef("r/x:latest")).toBeUndefined();
  });

  it("a count of 0 for a group that runs replicas", () => {
    const c = validConfig();
    c["dockyard:hostGroups"].app.count = 0;
    expect(problems(c)).toEqual([
      'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:hostGroups.app.count: is 0 but service "web" needs 1 replica(s) on that group',
    ]);
  });
});

describe("environment definition rules", () => {
  // The proxy (components/proxy.ts) trusts these two; its own re-checks were removed in issue 9.
  it("one publish port per host group: a second service on the same port is refused", () => {
    const e = env();
    e.services.api = { ...structuredClone(e.services.web), repository: "api" };
    const c = validConfig() as Record<string, any>;
    c["dockyard:images"] = { ...c["dockyard:images"], api: c["dockyard:images"].web };
    expect(problems(c, e)).toContain(
      `stack "dev": stacks/environment.yaml: services.api.publishPort: ${e.services.web.publishPort} is already published by service "web" in group "${e.services.web.group}"`,
    );
  });

  it("a health check path is an HTTP path: no spaces, starts with /", () => {
    for (const bad of ["/health z", "healthz", "/a\tb"]) {
      const e = env();
      e.services.web.health.path = bad;
      expect(problems(validConfig(), e).join("\n"), bad).toMatch(/services\.web\.health\.path: must be an HTTP path starting with \//);
    }
  });

  it("never publishes the Docker API ports", () => {
    const e = env();
    e.services.web.publishPort = 2375;
    expect(problems(validConfig(), e)).toEqual([
      'stack "dev": stacks/environment.yaml: services.web.publishPort: 2375/2376 are Docker API ports and are never published',
    ]);
  });

  it("docker-ce needs an exact version built for the OS codename", () => {
    const e = env();
    delete e.engine.version;
    expect(problems(validConfig(), e)[0]).toMatch(/engine\.version: required for channel docker-ce/);
    e.engine.version = "5:28.5.1-1~ubuntu.24.04~noble";
    expect(problems(validConfig(), e)[0]).toMatch(/engine\.version: .* is not a bookworm build/);
  });

  it("docker-ce is not offered on Amazon Linux", () => {
    const e = env();
    e.os.family = "amazon-linux-2023";
    e.engine.version = "25.0.8-1.amzn2023.0.1";
    expect(problems(validConfig(), e)).toContain(
      'stack "dev": stacks/environment.yaml: engine.channel: docker-ce is not offered for amazon-linux-2023; use "distro"',
    );
    e.engine.channel = "distro";
    expect(problems(validConfig(), e)).toEqual([]);
  });

  it("defaults daemon settings that the file leaves out", () => {
    const e = env();
    delete e.engine.daemon;
    const spec = parseEnvironment("dev", e, { config: validConfig() });
    expect(spec.engine.daemon).toEqual({
      logDriver: "local", logMaxSize: "10m", logMaxFile: 5, liveRestore: true, metricsPort: 9323, icc: false, userlandProxy: false, noNewPrivileges: true,
      defaultUlimits: { nofile: { soft: 16384, hard: 16384 } }, userNamespaceRemap: false,
    });
  });

  it("defaults the CIS hardening settings the file leaves out: audit, AppArmor, pids limits, the proxy's limits and user", () => {
    const e = env();
    delete e.engine.audit;
    delete e.engine.apparmor;
    delete e.proxy;
    for (const s of Object.values(e.services) as Record<string, unknown>[]) delete s.pidsLimit;
    const spec = parseEnvironment("dev", e, { config: validConfig() });
    expect([spec.engine.audit, spec.engine.apparmor]).toEqual([true, true]);
    expect(spec.services.map((s) => s.pidsLimit)).toEqual(spec.services.map(() => 512));
    expect(spec.proxy).toEqual({ cpus: 0.5, memoryMb: 128, pidsLimit: 128, user: "99:99" });
  });

  it("refuses a root proxy user, an unknown ulimit and a soft limit above the hard one", () => {
    const e = env();
    e.proxy = { user: "0:0" };
    e.engine.daemon = { defaultUlimits: { nofiles: { soft: 1, hard: 2 }, nproc: { soft: 10, hard: 5 } } };
    expect(problems(validConfig(), e)).toEqual(expect.arrayContaining([
      expect.stringMatching(/environment\.yaml: proxy\.user: must be a numeric uid:gid other than root/),
      expect.stringMatching(/engine\.daemon\.defaultUlimits: unknown key "nofiles"; allowed: core, cpu/),
      expect.stringMatching(/engine\.daemon\.defaultUlimits\.nproc: soft must not exceed hard/),
    ]));
  });
});

// components/engine.ts renders user-data from the spec without checking it again: each rule
// it relies on is the schema's, with its own test here.
describe("rules the components trust", () => {
  const withMount = (dataMount: unknown) => {
    const e = env();
    e.hostGroups.app.dataMount = dataMount;
    return e;
  };
  const mountKey = 'stack "dev": stacks/environment.yaml: hostGroups.app.dataMount: ';

  it("dataMount: an absolute path other than /, without empty, '.' or '..' segments", () => {
    for (const bad of ["/", "//", "var/lib/dockyard", "", "/srv/da ta", "/srv/../etc", "/srv/./data", "/srv//data", "/srv/.."]) {
      const p = problems(validConfig(), withMount(bad));
      expect(p, bad).toHaveLength(1);
      expect(p[0].startsWith(`${mountKey}"${bad}" `), p[0]).toBe(true);
      expect(p[0]).toMatch(/allowed: a dedicated absolute directory such as \/var\/lib\/dockyard$/);
    }
    expect(problems(validConfig(), withMount(42))[0]).toMatch(/hostGroups\.app\.dataMount: must be an absolute path/);
  });

  it("dataMount: neither a system directory nor above one", () => {
    for (const dir of SYSTEM_DIRECTORIES) {
      expect(problems(validConfig(), withMount(dir))).toEqual([
        `${mountKey}"${dir}" would shadow the system directory ${dir}; allowed: a dedicated absolute directory such as /var/lib/dockyard, not one of ${SYSTEM_DIRECTORIES.join(", ")} or above them`,
      ]);
    }
    expect(problems(validConfig(), withMount("/var/")).join()).toMatch(/would shadow the system directory \/var;/);
    expect(problems(validConfig(), withMount("/srv/data"))).toEqual([]);
    expect(problems(validConfig(), withMount("/usr/local/dockyard"))).toEqual([]);
  });

  it("dataMount: never over the engine's readiness marker (the same path as components/engine.ts READY_MARKER)", () => {
    expect(ENGINE_READY_MARKER).toBe(READY_MARKER);
    for (const bad of ["/var/lib/cloud", ENGINE_READY_MARKER, `${ENGINE_READY_MARKER}/x`]) {
      expect(problems(validConfig(), withMount(bad))).toEqual([
        `${mountKey}"${bad}" would hide the engine's readiness marker ${ENGINE_READY_MARKER}; allowed: a dedicated absolute directory such as /var/lib/dockyard`,
      ]);
    }
  });

  it("dataMount is normalised: trailing slashes trimmed, so components use it as is", () => {
    expect(parseEnvironment("dev", withMount("/var/lib/dockyard/"), { config: validConfig() }).hostGroups[0].dataMount).toBe("/var/lib/dockyard");
    expect(parseEnvironment("dev", withMount("/srv/data//"), { config: validConfig() }).hostGroups[0].dataMount).toBe("/srv/data");
    const e = env();
    delete e.hostGroups.app.dataMount;
    expect(parseEnvironment("dev", e, { config: validConfig() }).hostGroups[0].dataMount).toBe("/var/lib/dockyard");
  });

  it("engine.version: a package version string", () => {
    for (const bad of ["latest", "v28.5.1", "28.5.1 && reboot", "5:28.5.1$(id)"]) {
      const e = env();
      e.engine.version = bad;
      expect(problems(validConfig(), e)[0]).toBe(
        `stack "dev": stacks/environment.yaml: engine.version: ${JSON.stringify(bad)} is not a package version string; allowed: a digit, then letters, digits and . : + ~ _ - (e.g. 5:28.5.1-1~debian.12~bookworm)`,
      );
    }
  });

  it("docker-ce: offered only for a family with Docker's apt repository, apt and a codename", () => {
    expect(Object.entries(OS_FAMILIES).filter(([, i]) => dockerCeOffered(i)).map(([f]) => f)).toEqual(["debian-12", "ubuntu-24.04"]);
    const debian = OS_FAMILIES["debian-12"];
    expect(dockerCeOffered({ ...debian, codename: undefined })).toBe(false);
    expect(dockerCeOffered({ ...debian, packageManager: "dnf" })).toBe(false);
    expect(dockerCeOffered({ ...debian, dockerCeRepo: undefined })).toBe(false);
  });

  it("os: every family's SSH user (from the catalog, not the stack) is a POSIX user name", () => {
    for (const info of Object.values(OS_FAMILIES)) expect(info.sshUser).toMatch(/^[a-z_][a-z0-9_-]*$/);
  });

  const withRegistry = (registry: string) => ({ ...validConfig(), "dockyard:registry": registry });
  const registryKey = 'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:registry: ';

  it("registry: a DNS name or IPv4 host with an optional port from 1 to 65535, then a namespace", () => {
    for (const ok of ["127.0.0.1:5000/dockyard", "registry.example.com/team/app", "localhost:65535/a", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev"]) {
      expect(problems(withRegistry(ok)), ok).toEqual([]);
    }
    for (const bad of ["-bad.example/ns", "a..b/ns", "Registry.example/ns", "reg_istry/ns", "registry:0/ns", "registry:65536/ns", "registry:/ns"]) {
      const p = problems(withRegistry(bad));
      expect(p, bad).toHaveLength(1);
      expect(p[0]).toMatch(new RegExp(`^${registryKey.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}".*" is not a registry host \\(a lower-case DNS name or IPv4 address with an optional :port from 1 to 65535\\); must be '<registry host>\\[:port\\]/<namespace>'`));
    }
    for (const bad of ["registry.example.com", "registry.example.com/", "registry.example.com/Team", "registry.example.com/a//b"]) {
      expect(problems(withRegistry(bad))[0], bad).toMatch(/has no valid namespace after the host; must be '<registry host>\[:port\]\/<namespace>'/);
    }
  });

  it("registry: a host that looks like ECR but is not one the hosts' credential helper serves is refused", () => {
    expect(problems(withRegistry("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/dockyard"))).toEqual([]);
    for (const bad of [
      "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443/dockyard", // a port: the helper does not match it
      "12345.dkr.ecr.eu-west-1.amazonaws.com/dockyard", // not a 12-digit account
      "123456789012.dkr.ecr.eu-west-1.example.com/dockyard",
      "public.ecr.aws.amazonaws.com/dockyard",
    ]) {
      const host = bad.slice(0, bad.indexOf("/"));
      expect(problems(withRegistry(bad)), bad).toEqual([
        `${registryKey}"${host}" looks like ECR but is not an ECR registry host '<12-digit account>.dkr.ecr[-fips].<region>.amazonaws.com' (no port), so hosts would get no ECR credential helper; must be '<registry host>[:port]/<namespace>', e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev or 127.0.0.1:5000/dockyard`,
      ]);
    }
  });

  it("registry: an ECR host must name an AWS region (its repositories are created there)", () => {
    expect(problems(withRegistry("123456789012.dkr.ecr.mars.amazonaws.com/dockyard"))).toEqual([
      `${registryKey}"123456789012.dkr.ecr.mars.amazonaws.com" names the region "mars", which is not an AWS region like eu-west-1; must be '<registry host>[:port]/<namespace>', e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev or 127.0.0.1:5000/dockyard`,
    ]);
    expect(problems(withRegistry("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/dockyard"))).toEqual([]);
  });

  it("sshPublicKey: an OpenSSH public key as stacks/ssh.ts parses it; empty means unset", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2Uta2V5 me@laptop";
    expect(parseEnvironment("dev", env(), { config: { ...validConfig(), "dockyard:sshPublicKey": key } }).access.sshPublicKey).toBe(key);
    expect(parseEnvironment("dev", env(), { config: { ...validConfig(), "dockyard:sshPublicKey": "" } }).access.sshPublicKey).toBeUndefined();
    for (const bad of ["ssh-dss AAAAB3NzaC1kc3M=", "ssh-ed25519", "ssh-ed25519 not*base64", "-----BEGIN OPENSSH PRIVATE KEY-----"]) {
      expect(problems({ ...validConfig(), "dockyard:sshPublicKey": bad }), bad).toEqual([
        `stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:sshPublicKey: must be ${SSH_KEY_ALLOWED}`,
      ]);
    }
  });

  it("host names '<stack>-<group>-<n>' are DNS labels: a stack name with upper case or '_' is refused", () => {
    for (const stack of ["Dev", "my_stack"]) {
      expect(problems(validConfig(), env(), stack)).toEqual([expect.stringMatching(new RegExp(`^stack "${stack}": the stack name is not allowed; allowed: a-z, 0-9 and '-'`))]);
    }
  });
});

describe("secrets", () => {
  const withSecret = () => {
    const e = env();
    e.services.web.secrets = { SESSION_KEY: "web-session-key" };
    return e;
  };

  it("a secret a service needs must be set in the stack, with the command to set it", () => {
    expect(problems(validConfig(), withSecret())[0]).toMatch(
      /config\.dockyard:secrets\.web-session-key: missing; service "web" needs it for SESSION_KEY \(set it with: npx pulumi config set --secret/,
    );
  });

  it("secure values read from the file stand as a placeholder; decrypted values pass through", () => {
    const c = validConfig();
    c["dockyard:secrets"] = { "web-session-key": { secure: "v1:abcdef" } };
    expect(parseEnvironment("dev", withSecret(), { config: c }).secrets["web-session-key"]).toBe(SECRET_PLACEHOLDER);
    c["dockyard:secrets"] = { "web-session-key": "decrypted-by-pulumi" };
    expect(parseEnvironment("dev", withSecret(), { config: c, decrypted: true }).secrets["web-session-key"]).toBe("decrypted-by-pulumi");
    // The same plaintext read from the committed file is refused (test/stacks/hostile-input.test.ts has the message).
    expect(() => parseEnvironment("dev", withSecret(), { config: c })).toThrow(/secrets\.web-session-key: is plaintext/);
    // From the engine, the committed file is what is checked.
    expect(() => parseEnvironment("dev", withSecret(), { config: c, decrypted: true, committed: c })).toThrow(/is plaintext/);
  });

  it("secure values anywhere but dockyard:secrets are rejected", () => {
    const c = validConfig();
    c["dockyard:registry"] = { secure: "v1:abc" };
    expect(problems(c).join("\n")).toMatch(/config\.dockyard:registry: only dockyard:secrets may hold secure values/);
  });

  it("an unused secret is reported", () => {
    const c = validConfig();
    c["dockyard:secrets"] = { stray: { secure: "v1:abc" } };
    expect(problems(c)).toEqual(['stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:secrets.stray: not used by any service']);
  });
});

describe("files", () => {
  it("YAML syntax errors name the file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-schema-"));
    fs.writeFileSync(path.join(dir, "Pulumi.broken.yaml"), "config:\n  aws:region: [unclosed\n");
    expect(() => loadStackSpec("broken", { dir })).toThrow(/Pulumi\.broken\.yaml: YAML syntax/);
  });
});

describe("isCidr", () => {
  it.each([
    ["0.0.0.0/0", true], ["203.0.113.0/24", true], ["10.1.2.3/32", true],
    ["10.1.2.3/24", false], ["256.0.0.0/8", false], ["10.0.0.0/33", false], ["10.0.0.0", false], ["::/0", false],
  ])("%s -> %s", (s, ok) => expect(isCidr(s)).toBe(ok));
});

describe("dockyard:zones (issue 24 item 6: a host's zone is named, never derived from today's subnets)", () => {
  const at = 'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:zones';
  it("every shipped stack with EC2 hosts names its zones; the spec carries them in order", () => {
    for (const stack of STACKS) {
      const spec = loadStackSpec(stack);
      const ec2 = spec.hostGroups.some((g) => g.platform === "aws" && g.count > 0);
      if (ec2) expect(spec.zones, stack).toEqual(["eu-west-1a", "eu-west-1b", "eu-west-1c"]);
    }
  });
  it("is required with EC2 hosts, and says what to set to keep hosts where they are", () => {
    const c = validConfig();
    delete c["dockyard:zones"];
    const p = problems(c);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(new RegExp(`^${at.replace(/[.]/g, "\\.")}: missing; .*allowed: availability zones of eu-west-1, e\\.g\\. \\[eu-west-1a, eu-west-1b, eu-west-1c\\].*alphabetical order`));
  });
  it("is not needed when every group is local or has no hosts", () => {
    const c = validConfig();
    delete c["dockyard:zones"];
    c["dockyard:hostGroups"].app.platform = "local";
    expect(problems(c)).toEqual([]);
  });
  it("refuses a zone of another region, a malformed zone and a zone listed twice", () => {
    const c = validConfig();
    c["dockyard:zones"] = ["eu-west-1a", "us-east-1a", "eu-west-1a"];
    expect(problems(c)).toEqual([
      `${at}.1: us-east-1a is not an availability zone of the stack's region eu-west-1; allowed: eu-west-1 and one letter, e.g. eu-west-1a`,
      `${at}.2: eu-west-1a is listed twice; allowed: each zone once`,
    ]);
    c["dockyard:zones"] = ["eu-west-1"];
    expect(problems(c)).toEqual([`${at}.0: must be an availability zone name like eu-west-1a`]);
  });
});
