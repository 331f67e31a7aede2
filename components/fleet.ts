/**
 * ContainerFleet: images pinned by digest, service networks and volumes, containers
 * placed across hosts, and one reverse proxy per host, over one Docker provider per host.
 *
 * Rollout (no downtime): a container resource's NAME carries a short hash of everything
 * that defines it (digest, env, limits, health check...). A new digest or spec is
 * therefore a NEW resource: Pulumi creates it, the provider waits until Docker reports it
 * healthy (`wait`/`waitTimeout`), and only at the end of the update deletes the old one
 * (deletes always run after creates). The host's proxy finds replicas by DNS and routes
 * only to those passing its own health check, so traffic moves over without a reload.
 * If a new container never becomes healthy, its create fails, the update stops, and no
 * old container is deleted. Pulumi creates on all hosts in parallel (bounded by
 * `--parallel`); each host keeps its old replicas until the update ends.
 *
 * The proxy holds the host ports, so it is replaced delete-first; the proxies are chained
 * (each `dependsOn` the previous host's), so that happens one host at a time, each only
 * after the previous host's new proxy passed its health check. See the proxy below.
 *
 * Every image reaches its host the same way (pulledImage): `docker pull` on the host,
 * then a RemoteImage the provider finds locally. The stack outputs `services` and
 * `proxyImage` resolve only after the containers that run them were created (and, with
 * `wait`, became healthy): `promote` treats them as "deployed".
 */
import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import * as command from "@pulumi/command";
import type { DaemonSettings, ServiceSpec } from "../stacks/schema";
import type { Architecture } from "../stacks/os";
import { placeReplicas, replicaSlots, hostsWithReplicas, type Placement } from "./placement";
import { PROXY_CONFIG_PATH, renderHaproxyConfig, type ProxyRoute } from "./proxy";

/** A host the fleet deploys to, as the host and engine components describe it. */
export interface FleetHost {
  /** Host name, e.g. "dev-app-1"; unique in the stack. */
  name: string;
  /** Host group the host belongs to. */
  group: string;
  /** Public IP (Elastic IP) the Docker provider reaches over SSH. */
  address: pulumi.Input<string>;
  /** SSH login user (in the docker group on the host). */
  sshUser: string;
  /** The host's OpenSSH public host key, "ssh-ed25519 AAAA..."; the only key SSH accepts. */
  hostPublicKey: pulumi.Input<string>;
  /** Engine readiness; every Docker resource on the host depends on it. */
  ready: pulumi.Resource;
}

export interface ContainerFleetArgs {
  /** Stack name; becomes the `dockyard.stack` label and part of Docker object names. */
  stack: string;
  /** Hosts, in group order (placement gives extra replicas to the first hosts). */
  hosts: FleetHost[];
  /** Services to run, from the stack's EnvironmentSpec. */
  services: ServiceSpec[];
  /** Secret name -> value (plain strings from the spec); wrapped as Pulumi secrets here. */
  secrets: Record<string, string>;
  /** Host CPU architecture; pins the platform images are pulled for. */
  architecture: Architecture;
  /** Engine log settings; containers get the same driver and rotation explicitly. */
  logging: Pick<DaemonSettings, "logDriver" | "logMaxSize" | "logMaxFile">;
  /**
   * Proxy image as `<repository>@sha256:<digest>` (HAProxy >= 2.6 with its config at
   * PROXY_CONFIG_PATH, e.g. the official haproxy image mirrored into the stack's registry).
   * Unset: no proxy is created and no service port is published.
   */
  proxyImage?: string;
  /**
   * SSH private key for the host-side image pulls (`docker pull` on the host, where the
   * ECR credential helper uses the instance role). Unset: the SSH agent is used, as the
   * Docker provider's ssh:// connection does.
   */
  sshPrivateKey?: pulumi.Input<string>;
}

/** What the promote command reads from the stack output `services`. */
export interface ServiceOutput {
  digest: string;
  /** `<repository>@<digest>`. */
  image: string;
  replicas: number;
  /** Hosts carrying at least one replica, in group order. */
  hosts: string[];
}

// ---------------------------------------------------------------------------------
// Pure helpers (unit-tested without Pulumi)
// ---------------------------------------------------------------------------------

/** OCI platform string for a host architecture. */
export function platformFor(arch: Architecture): string {
  return arch === "arm64" ? "linux/arm64" : "linux/amd64";
}

/** `<repository>@<digest>`: how every image is referenced. */
export function imageRef(service: Pick<ServiceSpec, "repository" | "digest">): string {
  return `${service.repository}@${service.digest}`;
}

/** The Docker daemon address of a host, over SSH. */
export function dockerHostUrl(sshUser: string, address: string): string {
  return `ssh://${sshUser}@${address}`;
}

/** Splits an OpenSSH public key "type base64 [comment]" into type and key; throws on anything else. */
export function parseHostKey(hostPublicKey: string): { type: string; key: string } {
  const m = /^(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) ([A-Za-z0-9+/]+={0,3})(?: .*)?$/.exec(hostPublicKey.trim());
  if (!m) throw new Error(`host public key must be an OpenSSH public key "ssh-ed25519 AAAA..." (got ${JSON.stringify(hostPublicKey.slice(0, 40))})`);
  return { type: m[1], key: m[2] };
}

/** One known_hosts line for a host: `<address> <type> <base64>` (comment dropped). */
export function knownHostsLine(address: string, hostPublicKey: string): string {
  if (!/^[0-9A-Za-z.:[\]-]+$/.test(address)) throw new Error(`host address ${JSON.stringify(address)} is not an IP address or host name`);
  const { type, key } = parseHostKey(hostPublicKey);
  return `${address} ${type} ${key}`;
}

/**
 * ssh(1) options that make the Docker provider's ssh:// connection accept exactly this
 * host key and nothing else: no known_hosts file is read or written; the key comes from
 * KnownHostsCommand (OpenSSH >= 8.5; run without a shell, so the key is a plain
 * argument); StrictHostKeyChecking=yes fails on any other key; only the key's algorithm
 * is negotiated. `%H` is ssh's own name for the host in known_hosts terms (it adds the
 * `[addr]:port` form itself), so the line always matches the host ssh dialed.
 */
export function sshOptions(hostPublicKey: string): string[] {
  const { type, key } = parseHostKey(hostPublicKey);
  return [
    "-o", "StrictHostKeyChecking=yes",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", `KnownHostsCommand=/bin/echo %H ${type} ${key}`,
    "-o", `HostKeyAlgorithms=${type}`,
    "-o", "CheckHostIP=no",
    "-o", "UpdateHostKeys=no",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=20",
    "-o", "ServerAliveInterval=15",
  ];
}

/** Parses a duration like 500ms, 10s, 2m, 1h into seconds. */
export function durationSeconds(d: string): number {
  const m = /^([1-9][0-9]*)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`duration ${JSON.stringify(d)} must look like 500ms, 10s, 2m or 1h`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "s" ? n : m[2] === "m" ? n * 60 : n * 3600;
}

/** Seconds to wait for a new container to become healthy before the update fails. */
export function healthWaitSeconds(h: Pick<ServiceSpec["health"], "interval" | "timeout" | "retries" | "startPeriod">): number {
  const worst = durationSeconds(h.startPeriod) + (durationSeconds(h.interval) + durationSeconds(h.timeout)) * (h.retries + 1);
  return Math.max(60, Math.ceil(worst + 30));
}

/**
 * Seconds a container gets between its stop signal and SIGKILL, when Pulumi deletes it
 * (`destroyGraceSeconds`) and when Docker stops it otherwise (`stopTimeout`: `docker stop`,
 * the daemon shutting down with its host). It covers the requests in flight: the proxy
 * gives up on a replica's answer after `timeout server 30s`, and drains itself on its
 * soft-stop signal for at most `hard-stop-after 30s` (both in proxy.ts); 5 s more for the
 * process to exit. A container that exits sooner is removed sooner.
 *
 * The provider's delete (resource_docker_container_funcs.go, resourceDockerContainerDelete)
 * calls ContainerStop with Timeout = destroy_grace_seconds, and 0 when unset: the stop
 * signal, then SIGKILL at once, whatever the container's own stopTimeout says. The stop
 * signal itself is the image's STOPSIGNAL (SIGUSR1, soft stop, in the haproxy images)
 * unless `stopSignal` is set, which the fleet leaves alone.
 */
export const STOP_GRACE_SECONDS = 35;

/**
 * The proxy's health check. Its images have no HTTP client (the official haproxy image has
 * neither curl nor wget; the test image is FROM scratch with only haproxy), so the check is
 * haproxy itself validating the configuration it runs with. What it proves: Docker runs a
 * check only inside a RUNNING container, and haproxy is the container's process, so a
 * passing check means haproxy is up, and its configuration (as uploaded) is valid. What it
 * does not prove: that the frontends accept connections, or that any replica behind them
 * is up (the proxy checks replicas itself). It is what lets `wait` hold the next host's
 * proxy until this one runs: without a health check the provider's `wait` fails ("the
 * container does not have a healthcheck defined"), and without `wait` the create returns
 * right after ContainerStart, even if haproxy exits a moment later.
 */
export const PROXY_HEALTH = { interval: "2s", timeout: "2s", retries: 3, startPeriod: "2s" } as const;

/** The proxy's health check command (see PROXY_HEALTH); `haproxy` is on the image's PATH. */
export function proxyHealthcheckTests(): string[] {
  return ["CMD", "haproxy", "-c", "-q", "-f", PROXY_CONFIG_PATH];
}

/** Docker health check command: the image must have `wget` (busybox or GNU). */
export function healthcheckTests(port: number, path: string): string[] {
  return ["CMD", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${port}${path}`];
}

/**
 * Short hash of everything that defines a service's containers, except secret VALUES
 * (a hash of a secret in a resource name would leak it). A secret value change still
 * replaces the containers, create-before-delete, because their env changes.
 */
export function specHash(service: ServiceSpec, extra: Record<string, unknown> = {}): string {
  const { name, group, replicas, publishPort, ...defining } = service;
  void replicas;
  void publishPort;
  const canonical = JSON.stringify(sortKeys({ name, group, ...defining, extra }));
  return crypto.createHash("sha256").update(canonical).digest("hex").slice(0, 8);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => [k, sortKeys(x)]));
  }
  return v;
}

/** Docker network of a service on every host; replicas carry the service name as alias. */
export function serviceNetworkName(stack: string, service: string): string {
  return `${stack}-${service}`;
}

/** Docker named volume of a service on every host. */
export function serviceVolumeName(stack: string, service: string, volume: string): string {
  return `${stack}-${service}-${volume}`;
}

/** The proxy routes of one host: services with a publish port and a replica there. */
export function proxyRoutes(services: readonly ServiceSpec[], placements: Record<string, Placement>, host: string): ProxyRoute[] {
  return services
    .filter((s) => s.publishPort !== undefined && (placements[s.name]?.[host] ?? 0) > 0)
    .map((s) => ({ service: s.name, publishPort: s.publishPort!, containerPort: s.containerPort, healthPath: s.health.path, replicas: placements[s.name][host] }));
}

/**
 * The proxy a host runs: the proxy image and its routes, or undefined when the host runs
 * none (no proxy image, or no published service with a replica on the host).
 */
export function hostProxy(proxyImage: string | undefined, services: readonly ServiceSpec[], placements: Record<string, Placement>, host: string): { image: string; routes: ProxyRoute[] } | undefined {
  if (!proxyImage) return undefined;
  const routes = proxyRoutes(services, placements, host);
  return routes.length > 0 ? { image: proxyImage, routes } : undefined;
}

/** Places every service on the hosts of its group. Throws PlacementError naming the stack. */
export function placeFleet(stack: string, services: readonly ServiceSpec[], hosts: readonly Pick<FleetHost, "name" | "group">[]): Record<string, Placement> {
  const out: Record<string, Placement> = {};
  for (const s of services) {
    const groupHosts = hosts.filter((h) => h.group === s.group).map((h) => h.name);
    out[s.name] = placeReplicas(s.name, s.replicas, groupHosts, { stack, group: s.group });
  }
  return out;
}

// ---------------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------------

/** One host as the fleet's resources on it see it. */
interface OnHost {
  host: FleetHost;
  provider: docker.Provider;
  parent: pulumi.Resource;
  platform: string;
  sshPrivateKey?: pulumi.Input<string>;
}

/**
 * An image on a host, for every image a container runs (services and proxy): `docker
 * pull` on the host over SSH, then a RemoteImage that the provider finds locally.
 *
 * Why the pull is not left to RemoteImage: the provider (pulumi-docker embeds
 * kreuzwerker/terraform-provider-docker; internal/provider/resource_docker_image_funcs.go)
 * creates a RemoteImage with findImage(), which first looks the name up in the daemon's
 * local images (searchLocalImages: ImageInspect) and returns it if present, and only
 * otherwise calls pullImage(). pullImage sends as X-Registry-Auth the entry of the
 * provider's `registry_auth` for that registry host, and an empty AuthConfig when there
 * is none (provider.go: without registry_auth, AuthConfigs stays empty; docker's
 * credential helpers are never consulted, and dockerd does not read the CLI's
 * credHelpers). ECR refuses that anonymous pull ("no basic auth credentials"). The host's
 * docker CLI does use the ECR credential helper with the instance role, so the pull runs
 * there, and no registry token is ever in Pulumi state (pulumi-docker#952, #459).
 *
 * `keepLocally: false`: when the RemoteImage is deleted (its digest was replaced, after the
 * containers that depend on it were deleted), the provider removes it from the host
 * (removeImage: ImageRemove by name, force_remove false). Docker refuses to remove the
 * only reference of an image a container still uses, running or stopped (moby
 * daemon/images/image_delete.go, daemon/containerd/image_delete.go: "conflict: unable to
 * remove repository reference ... (must force)"), so an image in use is never removed:
 * that delete fails loudly instead, and the next `pulumi up` retries it.
 */
function pulledImage(resourceName: string, ref: string, on: OnHost): docker.RemoteImage {
  const { host } = on;
  const pull = new command.remote.Command(
    `${resourceName}-pull`,
    {
      connection: {
        host: host.address,
        user: host.sshUser,
        hostKey: host.hostPublicKey,
        ...(on.sshPrivateKey ? { privateKey: on.sshPrivateKey } : {}),
      },
      create: `docker pull --quiet --platform ${on.platform} ${ref}`,
      triggers: [host.address],
    },
    { parent: on.parent, dependsOn: [host.ready] },
  );
  return new docker.RemoteImage(
    `${resourceName}-image`,
    { name: ref, platform: on.platform, keepLocally: false },
    { parent: on.parent, provider: on.provider, dependsOn: [host.ready, pull] },
  );
}

export class ContainerFleet extends pulumi.ComponentResource {
  /**
   * Service name -> digest, image reference, replicas and hosts (stack output `services`).
   * Resolves only after every container of every service was created (healthy, as `wait`
   * requires): a failed rollout never shows up here.
   */
  public readonly services: pulumi.Output<Record<string, ServiceOutput>>;
  /**
   * The proxy image every host's proxy runs, `<repository>@<digest>` (stack output
   * `proxyImage`). Resolves only after every proxy container was created (healthy);
   * undefined when no proxy runs (no `proxyImage`, or no published service).
   */
  public readonly proxyImage: pulumi.Output<string | undefined>;
  /** Service name -> host name -> replicas there. */
  public readonly placements: pulumi.Output<Record<string, Placement>>;
  /** Host name -> Docker provider reaching that host over SSH. */
  public readonly providers: Record<string, docker.Provider>;

  constructor(name: string, args: ContainerFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:ContainerFleet", name, {}, opts);
    const { stack, hosts, services } = args;
    const placements = placeFleet(stack, services, hosts);
    const platform = platformFor(args.architecture);
    this.providers = {};
    const containersOf: Record<string, docker.Container[]> = Object.fromEntries(services.map((s) => [s.name, []]));
    const proxies: docker.Container[] = [];

    for (const host of hosts) {
      const ready = { dependsOn: [host.ready] };
      // Docker over SSH, accepting only the host key the program generated (never StrictHostKeyChecking=no).
      const provider = new docker.Provider(
        `${name}-${host.name}`,
        {
          host: pulumi.interpolate`ssh://${host.sshUser}@${host.address}`,
          sshOpts: pulumi.output(host.hostPublicKey).apply(sshOptions),
        },
        { parent: this, ...ready },
      );
      this.providers[host.name] = provider;
      const on = { parent: this, provider, ...ready };
      const onHost: OnHost = { host, provider, parent: this, platform, sshPrivateKey: args.sshPrivateKey };

      const hostServices = services.filter((s) => (placements[s.name]?.[host.name] ?? 0) > 0);
      const networks: Record<string, docker.Network> = {};
      for (const svc of hostServices) {
        // The service network: replicas and the proxy meet here; Docker's DNS resolves the service name.
        networks[svc.name] = new docker.Network(
          `${name}-${host.name}-${svc.name}-net`,
          {
            name: serviceNetworkName(stack, svc.name),
            driver: "bridge",
            labels: [
              { label: "dockyard.stack", value: stack },
              { label: "dockyard.service", value: svc.name },
            ],
          },
          on,
        );
        const volumes: docker.Volume[] = [];
        for (const vol of Object.keys(svc.volumes)) {
          // Named volume under Docker's data-root, which lives on the host's data volume.
          volumes.push(
            new docker.Volume(
              `${name}-${host.name}-${svc.name}-${vol}`,
              {
                name: serviceVolumeName(stack, svc.name, vol),
                labels: [
                  { label: "dockyard.stack", value: stack },
                  { label: "dockyard.service", value: svc.name },
                ],
              },
              { ...on, retainOnDelete: true },
            ),
          );
        }

        // The image by digest, pulled on the host (instance role), then found locally by the provider.
        const image = pulledImage(`${name}-${host.name}-${svc.name}`, imageRef(svc), onHost);

        const hash = specHash(svc, { logging: args.logging, platform });
        const secretEnv = Object.entries(svc.secrets).map(([envName, secretName]) => {
          const value = args.secrets[secretName];
          if (value === undefined) throw new Error(`stack "${stack}": service "${svc.name}": secret "${secretName}" (for ${envName}) has no value in config.dockyard:secrets`);
          return `${envName}=${value}`;
        });
        const plainEnv = Object.entries(svc.env).map(([k, v]) => `${k}=${v}`);
        const envs = secretEnv.length > 0 ? pulumi.secret([...plainEnv, ...secretEnv]) : plainEnv;

        for (const { slot } of replicaSlots(svc.name, { [host.name]: placements[svc.name][host.name] })) {
          // Named by spec hash: a new digest or spec is a new container, created and
          // health-waited before the old one is deleted at the end of the update.
          const container = new docker.Container(
            `${name}-${host.name}-${svc.name}-${slot}-${hash}`,
            {
              // pulumi-docker#1431: the image id, not the repo digest, or every deploy replaces.
              image: image.imageId,
              envs,
              restart: svc.restart,
              user: svc.user,
              readOnly: svc.readOnlyRootFilesystem,
              tmpfs: svc.readOnlyRootFilesystem ? { "/tmp": "rw,noexec,nosuid,size=64m" } : undefined,
              memory: svc.memoryMb,
              memorySwap: svc.memoryMb,
              cpus: String(svc.cpus),
              capabilities: { drops: ["ALL"] },
              securityOpts: ["no-new-privileges:true"],
              logDriver: args.logging.logDriver,
              logOpts: { "max-size": args.logging.logMaxSize, "max-file": String(args.logging.logMaxFile) },
              healthcheck: {
                tests: healthcheckTests(svc.containerPort, svc.health.path),
                interval: svc.health.interval,
                timeout: svc.health.timeout,
                retries: svc.health.retries,
                startPeriod: svc.health.startPeriod,
              },
              wait: true,
              waitTimeout: healthWaitSeconds(svc.health),
              destroyGraceSeconds: STOP_GRACE_SECONDS,
              stopTimeout: STOP_GRACE_SECONDS,
              // docker-init (tini) as PID 1: it forwards the stop signal to the service and reaps
              // zombies. A service running as PID 1 itself gets no default signal handling from
              // the kernel, so one without its own SIGTERM handler (the example busybox httpd)
              // would sit out the whole grace and be killed. Debian's docker.io depends on tini
              // (/usr/bin/docker-init); docker-ce ships docker-init.
              init: true,
              networksAdvanced: [{ name: networks[svc.name].name, aliases: [svc.name] }],
              mounts: Object.entries(svc.volumes).map(([vol, target]) => ({ type: "volume", source: serviceVolumeName(stack, svc.name, vol), target })),
              labels: [
                { label: "dockyard.stack", value: stack },
                { label: "dockyard.service", value: svc.name },
                { label: "dockyard.digest", value: svc.digest },
                { label: "dockyard.slot", value: String(slot) },
                { label: "dockyard.spec", value: hash },
              ],
            },
            {
              ...on,
              dependsOn: [host.ready, image, networks[svc.name], ...volumes],
              additionalSecretOutputs: ["envs"],
              deleteBeforeReplace: false,
            },
          );
          containersOf[svc.name].push(container);
        }
      }

      const hostProxySpec = hostProxy(args.proxyImage, services, placements, host.name);
      if (hostProxySpec) {
        const { routes } = hostProxySpec;
        const config = renderHaproxyConfig(routes);
        // Pulled on the host like service images: a RemoteImage alone would pull anonymously.
        const proxyImage = pulledImage(`${name}-${host.name}-proxy`, hostProxySpec.image, onHost);
        // The host's one entry point: publishes the service ports, routes to healthy replicas.
        // It holds the host ports, so a config change replaces it delete-first: a gap on this
        // host only, because the proxies are replaced one host at a time (dependsOn below).
        const previous = proxies.at(-1);
        const proxy = new docker.Container(
          `${name}-${host.name}-proxy`,
          {
            image: proxyImage.imageId,
            restart: "unless-stopped",
            // Not read-only: Docker refuses `uploads` (the config) into a read-only rootfs
            // ("container rootfs is marked read-only"), found by fleet.int.test.ts.
            readOnly: false,
            tmpfs: { "/tmp": "rw,noexec,nosuid,size=16m" },
            sysctls: { "net.ipv4.ip_unprivileged_port_start": "0" },
            capabilities: { drops: ["ALL"] },
            securityOpts: ["no-new-privileges:true"],
            memory: 128,
            logDriver: args.logging.logDriver,
            logOpts: { "max-size": args.logging.logMaxSize, "max-file": String(args.logging.logMaxFile) },
            uploads: [{ file: PROXY_CONFIG_PATH, content: config }],
            healthcheck: { tests: proxyHealthcheckTests(), ...PROXY_HEALTH },
            wait: true,
            waitTimeout: healthWaitSeconds(PROXY_HEALTH),
            destroyGraceSeconds: STOP_GRACE_SECONDS,
            stopTimeout: STOP_GRACE_SECONDS,
            ports: routes.map((r) => ({ internal: r.publishPort, external: r.publishPort, protocol: "tcp" })),
            networksAdvanced: routes.map((r) => ({ name: networks[r.service].name })),
            labels: [
              { label: "dockyard.stack", value: stack },
              { label: "dockyard.role", value: "proxy" },
              { label: "dockyard.config", value: crypto.createHash("sha256").update(config).digest("hex").slice(0, 12) },
            ],
          },
          {
            ...on,
            // `previous`: the engine registers this proxy only once the previous host's proxy
            // registration finished, i.e. its delete+create (and health wait) completed:
            // ResourceMonitor.RegisterResource answers after the step is done (pulumi
            // pkg/resource/deploy/source_eval.go, "block waiting for the operation to finish"),
            // and the Node SDK awaits the URNs of `dependsOn` (sdk/nodejs/runtime/resource.ts,
            // prepareResource). It is a dependsOn edge only, no input comes from `previous`, so
            // replacing one proxy never replaces the next: a delete-before-replace only takes
            // along dependents whose INPUTS depend on it (pkg/resource/deploy/step_generator.go,
            // calculateDependentReplacements: "the edge from B to A may be a simple dependsOn
            // edge ... neither B nor D would need to be deleted").
            dependsOn: [host.ready, proxyImage, ...routes.map((r) => networks[r.service]), ...(previous ? [previous] : [])],
            deleteBeforeReplace: true,
          },
        );
        proxies.push(proxy);
      }
    }

    // Outputs resolve only once the containers they describe were created (and healthy).
    const summary: Record<string, pulumi.Output<ServiceOutput>> = {};
    for (const s of services) {
      const entry: ServiceOutput = { digest: s.digest, image: imageRef(s), replicas: s.replicas, hosts: hostsWithReplicas(placements[s.name]) };
      summary[s.name] = pulumi.all(containersOf[s.name].map((c) => c.id)).apply(() => entry);
    }
    this.services = pulumi.output(summary);
    const proxyRef = proxies.length > 0 ? args.proxyImage : undefined;
    this.proxyImage = pulumi.all(proxies.map((p) => p.id)).apply(() => proxyRef);
    this.placements = pulumi.output(placements);
    this.registerOutputs({ services: this.services, proxyImage: this.proxyImage, placements: this.placements });
  }
}
