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
 * old container is deleted. Each host keeps its old replicas until the update ends. The next
 * `up` keeps that container (Pulumi only updates a resource whose create failed after it got
 * its id, without the wait), so its host's serving gate checks every container's health
 * itself and fails that `up` too (components/rollout.ts).
 *
 * Hosts roll in batches (components/rollout.ts): a host's replicas and proxy wait for the
 * serving gates of the previous batch of its group, and each host's turn ends with its own
 * gate (its containers healthy, its proxy's monitor answers 200 on every published port,
 * then the front door's admit time). So new containers reach one batch at a time, a version that never becomes
 * healthy stops the update in the first batch, and the proxy, which holds the host ports
 * and is replaced delete-first, is down on one batch at a time, never on all hosts.
 *
 * Every image reaches its host the same way (pulledImage): `docker pull` on the host,
 * then a RemoteImage the provider finds locally. The stack outputs `services` and
 * `proxyImage` resolve only after the containers that run them were created and their
 * hosts' serving gates passed: `promote` treats them as "deployed".
 */
import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import * as command from "@pulumi/command";
import type { DaemonSettings, ProxySettings, ServiceSpec } from "../stacks/schema";
import { dockerPlatform, type Architecture } from "../stacks/os";
import { dockerProviderArgs, hostCommandArgs, type HostConnection } from "./connection";
import { placeReplicas, replicaSlots, hostsWithReplicas, type Placement } from "./placement";
import { PROXY_CONFIG_PATH, proxyConfigDir, renderHaproxyConfig, type ProxyRoute } from "./proxy";
import { RolloutOrder, SERVING_GATE_TIMEOUT_SECONDS, servingGateCommand, servingGateScript, withTurn } from "./rollout";

/** A host the fleet deploys to, as the host and engine components describe it. */
export interface FleetHost {
  /** Host name, e.g. "dev-app-1"; unique in the stack. */
  name: string;
  /** Host group the host belongs to. */
  group: string;
  /**
   * Where the host mounts its kept data volume (its group's `dataMount`; Docker's data-root
   * is under it). Every host file a container mounts lives under it (proxyConfigDir), so it
   * outlives a replacement of the host's root disk, as the containers that mount it do.
   */
  dataMount: string;
  /**
   * How to reach the host (DockerHost's `connection`): the ssh target (instance id through
   * Session Manager, or Elastic IP), the SSH user (in the docker group there) and its
   * pinned host key, the only key SSH accepts. The Docker provider and every command on
   * the host (hostCommandArgs) run the same ssh with the same options.
   */
  connection: HostConnection;
  /** Engine readiness; every Docker resource on the host depends on it. */
  ready: pulumi.Resource;
  /**
   * Something that changes whenever the engine readiness ran again (DockerEngine.readyId: a
   * new machine, a new engine): the host's serving gate runs again then, although none of
   * its containers changed (the new machine restarted them from its data volume).
   */
  readyId?: pulumi.Input<string>;
  /**
   * Seconds a load balancer in front of the host needs, once the host's proxy answers its
   * monitor again, to send it traffic (components/front-door.ts frontDoorAdmitSeconds);
   * 0 or unset: no load balancer. The host's serving gate waits this long.
   */
  admitSeconds?: number;
}

/** What both fleet modes take (ContainerFleet: static placement; SwarmFleet: swarm mode), over their kind of host. */
export interface FleetArgs<Host> {
  /** Stack name; becomes the `dockyard.stack` label and part of Docker object names. */
  stack: string;
  /** Hosts, in group order (static placement gives extra replicas to the first hosts). */
  hosts: Host[];
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
   * The proxy's limits and user (environment.yaml `proxy:`; defaults 0.5 CPUs, 128 MiB,
   * 128 PIDs, user "99:99", the official haproxy image's haproxy user). `user` must be able
   * to read the image's haproxy binary and libraries; it binds the published ports, below
   * 1024 too, through the container's ip_unprivileged_port_start sysctl. Unused without
   * `proxyImage`.
   */
  proxy: ProxySettings;
  /**
   * The order hosts roll in (components/rollout.ts), shared with the hosts' machines; the
   * fleet gives each host's turn its end (static: the serving gate; swarm: the init or join).
   * Unset: one host at a time per group, the fleet's own.
   */
  rollout?: RolloutOrder;
}

export type ContainerFleetArgs = FleetArgs<FleetHost>;

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

/** `<repository>@<digest>`: how every image is referenced. */
export function imageRef(service: Pick<ServiceSpec, "repository" | "digest">): string {
  return `${service.repository}@${service.digest}`;
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

/** A service's health check as Docker takes it, for its containers and (swarm mode) its service's tasks alike. */
export function serviceHealthcheck(svc: Pick<ServiceSpec, "containerPort" | "health">): { tests: string[]; interval: string; timeout: string; retries: number; startPeriod: string } {
  const h = svc.health;
  return { tests: healthcheckTests(svc.containerPort, h.path), interval: h.interval, timeout: h.timeout, retries: h.retries, startPeriod: h.startPeriod };
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

/** A Docker label, as networks, volumes and containers take them. */
export interface DockerLabel {
  label: string;
  value: string;
}

/** Labels of every Docker object that belongs to a service (its network, volumes and replicas). */
export function serviceLabels(stack: string, service: string): DockerLabel[] {
  return [
    { label: "dockyard.stack", value: stack },
    { label: "dockyard.service", value: service },
  ];
}

/** Labels of one replica: its service's, plus the digest it runs, its slot and its spec hash. */
export function replicaLabels(stack: string, service: Pick<ServiceSpec, "name" | "digest">, slot: number, hash: string): DockerLabel[] {
  return [
    ...serviceLabels(stack, service.name),
    { label: "dockyard.digest", value: service.digest },
    { label: "dockyard.slot", value: String(slot) },
    { label: "dockyard.spec", value: hash },
  ];
}

/** Labels of a host's proxy: its role and a short hash of the configuration it runs. */
export function proxyLabels(stack: string, config: string): DockerLabel[] {
  return [
    { label: "dockyard.stack", value: stack },
    { label: "dockyard.role", value: "proxy" },
    { label: "dockyard.config", value: configHash(config) },
  ];
}

function configHash(config: string): string {
  return crypto.createHash("sha256").update(config).digest("hex").slice(0, 12);
}

/**
 * The proxy configuration command's trigger: a value that changes with the configuration.
 * Spelled as the file path of the root-disk layout (`/etc/dockyard/proxy/haproxy-<hash>.cfg`),
 * the value every command deployed before the file moved to the data volume holds: so the first
 * `up` after the move UPDATES those commands in place (pulumi-command runs the new create, on
 * the host as it is now) instead of replacing them, which would run the old state's delete
 * with the old state's interpreter (pulumi-command local/commandController.go Delete uses
 * req.State): after a host replacement on Session Manager, a dial to the old, stopped
 * instance, failing that `up` and every later one.
 */
export function proxyConfigTrigger(config: string): string {
  return `/etc/dockyard/proxy/haproxy-${configHash(config)}.cfg`;
}

/**
 * The host file a proxy configuration is written to, on the host's data volume (`dataMount`,
 * proxyConfigDir): named by its hash, so a new configuration is a new file.
 */
export function proxyConfigFile(config: string, dataMount: string): string {
  return `${proxyConfigDir(dataMount)}/haproxy-${configHash(config)}.cfg`;
}

/**
 * The shell command that writes a proxy configuration (its stdin) to its host file: via a
 * temporary file and a rename, so the proxy never mounts half a file (0644: the proxy reads it
 * as its non-root user). Then it removes every other configuration file of the directory that
 * no container mounts (moby daemon/list.go: the `volume` filter matches a bind mount's source;
 * a failing `docker ps` stops it before anything is removed): the previous configuration's file
 * goes at the next write once its proxy is gone. Here and not in a delete command: a command's
 * delete runs with the old state's interpreter (pulumi-command local/commandController.go
 * Delete uses req.State), i.e. it dials the host as it was; after a host replacement on
 * Session Manager that is the old, stopped instance, and the delete, and the `up`, would fail.
 */
export function writeConfigCommand(file: string): string {
  const dir = file.slice(0, file.lastIndexOf("/"));
  return `set -e; umask 022; cat > '${file}.tmp'; mv -f '${file}.tmp' '${file}'; for o in '${dir}'/haproxy-*.cfg; do [ "$o" = '${file}' ] && continue; m=$(docker ps -aq --filter "volume=$o"); [ -n "$m" ] || rm -f "$o"; done`;
}

/**
 * `docker update --pids-limit` for a container already created (CIS 5.29). pulumi-docker
 * 5.2's Container has no pids-limit input (kreuzwerker/terraform-provider-docker's
 * docker_container neither), and dockerd has no daemon-wide default. `docker update` stores
 * it in the container's hostconfig (moby daemon/update.go: UpdateContainer, then
 * CheckpointTo writes it to disk), so it holds across restarts, engine restarts and reboots.
 */
export function pidsLimitCommand(limit: number, id: string): string {
  return `docker update --pids-limit ${limit} ${id} >/dev/null`;
}

/** Engine log settings, as every container sets them explicitly. */
export type FleetLogging = Pick<DaemonSettings, "logDriver" | "logMaxSize" | "logMaxFile">;

/** A container's log driver and rotation: the engine's, set explicitly. */
export function containerLogging(logging: FleetLogging): { logDriver: string; logOpts: Record<string, string> } {
  return { logDriver: logging.logDriver, logOpts: { "max-size": logging.logMaxSize, "max-file": String(logging.logMaxFile) } };
}

/**
 * A service's environment, `NAME=value` lines: its plain env, then its secrets' values
 * (`secrets`: secret name -> value, every name the service uses is set: the schema checks it).
 * `secret` is true when any line carries a secret value; the caller marks them secret.
 */
export function serviceEnv(service: Pick<ServiceSpec, "env" | "secrets">, secrets: Record<string, string>): { lines: string[]; secret: boolean } {
  const plain = Object.entries(service.env).map(([k, v]) => `${k}=${v}`);
  const secret = Object.entries(service.secrets).map(([envName, secretName]) => `${envName}=${secrets[secretName]}`);
  return { lines: [...plain, ...secret], secret: secret.length > 0 };
}

/** What a replica's container takes from resources: its image id, env and service network. */
export interface ReplicaInputs {
  /** The image id of the pulled image (pulumi-docker#1431: not the repo digest). */
  image: pulumi.Input<string>;
  /** `NAME=value` lines (a secret when any value is). */
  envs: pulumi.Input<pulumi.Input<string>[]>;
  /** Name of the service network. */
  network: pulumi.Input<string>;
  /** The replica's slot on its host. */
  slot: number;
  /** specHash of the service. */
  hash: string;
}

/** The container arguments of one replica of a service. */
export function replicaContainerArgs(stack: string, svc: ServiceSpec, logging: FleetLogging, r: ReplicaInputs): docker.ContainerArgs {
  return {
    // pulumi-docker#1431: the image id, not the repo digest, or every deploy replaces.
    image: r.image,
    envs: r.envs,
    restart: svc.restart,
    user: svc.user,
    readOnly: svc.readOnlyRootFilesystem,
    tmpfs: svc.readOnlyRootFilesystem ? { "/tmp": "rw,noexec,nosuid,size=64m" } : undefined,
    memory: svc.memoryMb,
    memorySwap: svc.memoryMb,
    cpus: String(svc.cpus),
    // No pids-limit input in the provider: see pidsLimitCommand.
    capabilities: { drops: ["ALL"] },
    securityOpts: ["no-new-privileges:true"],
    ...containerLogging(logging),
    healthcheck: serviceHealthcheck(svc),
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
    networksAdvanced: [{ name: r.network, aliases: [svc.name] }],
    mounts: Object.entries(svc.volumes).map(([vol, target]) => ({ type: "volume", source: serviceVolumeName(stack, svc.name, vol), target })),
    labels: replicaLabels(stack, svc, r.slot, r.hash),
  };
}

/**
 * The container arguments of a host's proxy: `image` its pulled image id, `config` the
 * rendered HAProxy configuration (mounted from its host file, proxyConfigFile), `networks`
 * service name -> network name, for each route, `settings` its limits and user.
 */
export function proxyContainerArgs(
  stack: string,
  routes: readonly ProxyRoute[],
  config: string,
  dataMount: string,
  logging: FleetLogging,
  image: pulumi.Input<string>,
  networks: Record<string, pulumi.Input<string>>,
  settings: ProxySettings,
): docker.ContainerArgs {
  return {
    image,
    restart: "unless-stopped",
    // CIS 5.13: a read-only root. The configuration is a read-only bind mount of its host
    // file (Docker refuses `uploads` into a read-only rootfs: "container rootfs is marked
    // read-only", found by fleet.int.test.ts).
    readOnly: true,
    tmpfs: { "/tmp": "rw,noexec,nosuid,size=16m" },
    // The host file is on the data volume (proxyConfigFile), so a replaced host's dockerd finds
    // it when it restores this container (restart unless-stopped).
    mounts: [{ type: "bind", source: proxyConfigFile(config, dataMount), target: PROXY_CONFIG_PATH, readOnly: true }],
    // CIS 4.1: never root; it binds the published ports (< 1024 too) through this sysctl,
    // which the engine also sets on its own for a private network namespace (moby
    // daemon/oci_linux.go withCommonOptions): explicit here, so it does not rest on that.
    user: settings.user,
    sysctls: { "net.ipv4.ip_unprivileged_port_start": "0" },
    capabilities: { drops: ["ALL"] },
    securityOpts: ["no-new-privileges:true"],
    memory: settings.memoryMb,
    memorySwap: settings.memoryMb,
    // CIS 5.12.
    cpus: String(settings.cpus),
    ...containerLogging(logging),
    healthcheck: { tests: proxyHealthcheckTests(), ...PROXY_HEALTH },
    wait: true,
    waitTimeout: healthWaitSeconds(PROXY_HEALTH),
    destroyGraceSeconds: STOP_GRACE_SECONDS,
    stopTimeout: STOP_GRACE_SECONDS,
    ports: routes.map((r) => ({ internal: r.publishPort, external: r.publishPort, protocol: "tcp" })),
    networksAdvanced: routes.map((r) => ({ name: networks[r.service] })),
    labels: proxyLabels(stack, config),
  };
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
  /** The gates of the previous batch of the host's group (components/rollout.ts): its replicas and proxy wait for them. */
  after: Promise<pulumi.Resource[]>;
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
  const pull = new command.local.Command(
    `${resourceName}-pull`,
    hostCommandArgs(host.connection, {
      create: `docker pull --quiet --platform ${on.platform} ${ref}`,
      triggers: [host.connection.target],
    }),
    { parent: on.parent, dependsOn: [host.ready] },
  );
  return new docker.RemoteImage(
    `${resourceName}-image`,
    { name: ref, platform: on.platform, keepLocally: false },
    { parent: on.parent, provider: on.provider, dependsOn: [host.ready, pull] },
  );
}

/** A service's objects on one host that its replicas (and the proxy) depend on. */
interface ServiceOnHost {
  network: docker.Network;
  volumes: docker.Volume[];
  image: docker.RemoteImage;
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
  public readonly providers: Record<string, docker.Provider> = {};

  private readonly name: string;
  private readonly args: ContainerFleetArgs;
  private readonly platform: string;
  private readonly placed: Record<string, Placement>;
  /** Service name -> its containers on every host. */
  private readonly containersOf: Record<string, docker.Container[]>;
  /** The proxies, in host order. */
  private readonly proxies: docker.Container[] = [];
  /** The hosts that run a proxy, in host order. */
  private readonly proxyHosts: string[] = [];
  /** Host name -> its serving gate (the end of its turn in a rollout). */
  public readonly gates: Record<string, command.local.Command> = {};

  constructor(name: string, args: ContainerFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:ContainerFleet", name, {}, opts);
    const { stack, hosts, services } = args;
    this.name = name;
    this.args = args;
    this.placed = placeFleet(stack, services, hosts);
    this.platform = dockerPlatform(args.architecture);
    this.containersOf = Object.fromEntries(services.map((s) => [s.name, []]));

    const groups = [...new Set(hosts.map((h) => h.group))];
    const rollout = args.rollout ?? new RolloutOrder(groups.map((g) => ({ name: g, hosts: hosts.filter((h) => h.group === g).map((h) => h.name), maxUnavailable: 1 })));
    for (const host of hosts) {
      const on: OnHost = { host, provider: this.hostProvider(host), parent: this, platform: this.platform, after: rollout.after(host.name) };
      const networks: Record<string, docker.Network> = {};
      const containers: docker.Container[] = [];
      for (const svc of services.filter((s) => (this.placed[s.name]?.[host.name] ?? 0) > 0)) {
        const objects = this.serviceObjects(on, svc);
        networks[svc.name] = objects.network;
        for (const replica of this.replicas(on, svc, objects)) {
          this.limitPids(on, replica, svc.pidsLimit);
          containers.push(replica);
        }
      }
      const spec = hostProxy(args.proxyImage, services, this.placed, host.name);
      if (spec) {
        const proxy = this.proxy(on, networks, spec);
        this.limitPids(on, proxy, args.proxy.pidsLimit);
        containers.push(proxy);
      }
      const ports = spec ? spec.routes.map((r) => r.publishPort) : [];
      this.gates[host.name] = this.servingGate(on, containers, ports);
      rollout.gate(host.name, [this.gates[host.name]]);
    }
    if (!args.rollout) rollout.close(() => []);

    // Outputs resolve only once the containers they describe were created and the serving
    // gates of their hosts passed (each container healthy, the proxy serving): on a second
    // `up` after a failed health wait the container's update succeeds without waiting, and
    // only its host's gate says it is unhealthy (components/rollout.ts).
    const gatesOf = (names: readonly string[]) => names.map((h) => this.gates[h].id);
    const summary: Record<string, pulumi.Output<ServiceOutput>> = {};
    for (const s of services) {
      const entry: ServiceOutput = { digest: s.digest, image: imageRef(s), replicas: s.replicas, hosts: hostsWithReplicas(this.placed[s.name]) };
      summary[s.name] = pulumi.all([...this.containersOf[s.name].map((c) => c.id), ...gatesOf(entry.hosts)]).apply(() => entry);
    }
    this.services = pulumi.output(summary);
    const proxyRef = this.proxies.length > 0 ? args.proxyImage : undefined;
    this.proxyImage = pulumi.all([...this.proxies.map((p) => p.id), ...gatesOf(this.proxyHosts)]).apply(() => proxyRef);
    this.placements = pulumi.output(this.placed);
    this.registerOutputs({ services: this.services, proxyImage: this.proxyImage, placements: this.placements });
  }

  /** Docker over SSH, accepting only the host key the program generated (never StrictHostKeyChecking=no). */
  private hostProvider(host: FleetHost): docker.Provider {
    const provider = new docker.Provider(`${this.name}-${host.name}`, dockerProviderArgs(host.connection), { parent: this, dependsOn: [host.ready] });
    this.providers[host.name] = provider;
    return provider;
  }

  /** A service's network, volumes and image on one host. */
  private serviceObjects(on: OnHost, svc: ServiceSpec): ServiceOnHost {
    const { stack } = this.args;
    const prefix = `${this.name}-${on.host.name}-${svc.name}`;
    const opts = { parent: this, provider: on.provider, dependsOn: [on.host.ready] };
    // The service network: replicas and the proxy meet here; Docker's DNS resolves the service name.
    const network = new docker.Network(
      `${prefix}-net`,
      { name: serviceNetworkName(stack, svc.name), driver: "bridge", labels: serviceLabels(stack, svc.name) },
      opts,
    );
    // Named volumes under Docker's data-root, which lives on the host's data volume.
    const volumes = Object.keys(svc.volumes).map(
      (vol) =>
        new docker.Volume(
          `${prefix}-${vol}`,
          { name: serviceVolumeName(stack, svc.name, vol), labels: serviceLabels(stack, svc.name) },
          { ...opts, retainOnDelete: true },
        ),
    );
    // The image by digest, pulled on the host (instance role), then found locally by the provider.
    const image = pulledImage(prefix, imageRef(svc), on);
    return { network, volumes, image };
  }

  /**
   * The service's replicas on one host. Named by spec hash: a new digest or spec is a new
   * container, created and health-waited before the old one is deleted at the end of the update.
   */
  private replicas(on: OnHost, svc: ServiceSpec, objects: ServiceOnHost): docker.Container[] {
    const { stack, logging, secrets } = this.args;
    const { host } = on;
    const hash = specHash(svc, { logging, platform: this.platform });
    const env = serviceEnv(svc, secrets);
    const envs = env.secret ? pulumi.secret(env.lines) : env.lines;
    const made: docker.Container[] = [];
    for (const { slot } of replicaSlots(svc.name, { [host.name]: this.placed[svc.name][host.name] })) {
      const container = new docker.Container(
        `${this.name}-${host.name}-${svc.name}-${slot}-${hash}`,
        replicaContainerArgs(stack, svc, logging, { image: objects.image.imageId, envs, network: objects.network.name, slot, hash }),
        {
          parent: this,
          provider: on.provider,
          dependsOn: withTurn([host.ready, objects.image, objects.network, ...objects.volumes], on.after),
          additionalSecretOutputs: ["envs"],
          deleteBeforeReplace: false,
        },
      );
      this.containersOf[svc.name].push(container);
      made.push(container);
    }
    return made;
  }

  /**
   * The host's one entry point (`spec`: hostProxy's, when the host runs one): publishes the
   * service ports, routes to healthy replicas. It holds the host ports, so a config change
   * replaces it delete-first: a gap on this host's batch only (components/rollout.ts).
   */
  private proxy(on: OnHost, networks: Record<string, docker.Network>, spec: { image: string; routes: ProxyRoute[] }): docker.Container {
    const { host } = on;
    const { routes } = spec;
    const config = renderHaproxyConfig(routes);
    // The configuration's host file, which the proxy mounts read-only. A new configuration is
    // a new file (and a new proxy, as the mount source changed). pulumi-command 1.x runs a
    // changed create on update, so a new path (a new configuration or data mount) is written
    // either way; the trigger (proxyConfigTrigger) replaces the command on a new configuration,
    // and keeps deployed commands from being replaced when the file moved. No delete command
    // (it would dial the host as it was): the next write removes the files no container mounts.
    //
    // The file is on the data volume (proxyConfigFile), so a replaced host still has it when its
    // dockerd restores the proxy, and this command need not run again for it (no readyId trigger).
    const file = proxyConfigFile(config, host.dataMount);
    const configFile = new command.local.Command(
      `${this.name}-${host.name}-proxy-config`,
      hostCommandArgs(host.connection, {
        create: writeConfigCommand(file),
        stdin: config,
        triggers: [proxyConfigTrigger(config)],
      }),
      { parent: this, dependsOn: [host.ready] },
    );
    // Pulled on the host like service images: a RemoteImage alone would pull anonymously.
    const image = pulledImage(`${this.name}-${host.name}-proxy`, spec.image, on);
    const networkNames = Object.fromEntries(routes.map((r) => [r.service, networks[r.service].name]));
    const proxy = new docker.Container(
      `${this.name}-${host.name}-proxy`,
      proxyContainerArgs(this.args.stack, routes, config, host.dataMount, this.args.logging, image.imageId, networkNames, this.args.proxy),
      {
        parent: this,
        provider: on.provider,
        // `on.after`: the serving gates of the previous batch (components/rollout.ts); the
        // engine registers this proxy, and so deletes the old one, only once those finished.
        // They are dependsOn edges only, no input comes from them, so replacing one batch's
        // proxies never replaces the next's: a delete-before-replace only takes along
        // dependents whose INPUTS depend on it (pkg/resource/deploy/step_generator.go,
        // calculateDependentReplacements: "the edge from B to A may be a simple dependsOn
        // edge ... neither B nor D would need to be deleted").
        dependsOn: withTurn([host.ready, image, configFile, ...routes.map((r) => networks[r.service])], on.after),
        deleteBeforeReplace: true,
      },
    );
    this.proxies.push(proxy);
    this.proxyHosts.push(host.name);
    return proxy;
  }

  /**
   * The end of a host's turn in a rollout (components/rollout.ts): after its containers were
   * created, each of them must run and be healthy, the proxy's monitor must answer 200 on
   * every published port, then the front door gets its admit time. Triggered by every
   * container's id and the engine readiness: it runs again whenever any of them was replaced,
   * and on the `up` after a container's failed health wait (the engine then updates that
   * container without a wait; the gate, a replacement since its triggers changed, fails
   * until the container is healthy: rollout.ts, "A second up after a failed health wait").
   */
  private servingGate(on: OnHost, containers: docker.Container[], ports: number[]): command.local.Command {
    const { host } = on;
    // A host that publishes no port is no target the front door checks: nothing to be admitted to.
    const admit = ports.length > 0 ? (host.admitSeconds ?? 0) : 0;
    const bound = SERVING_GATE_TIMEOUT_SECONDS + admit + 600;
    return new command.local.Command(
      `${this.name}-${host.name}-serving`,
      hostCommandArgs(host.connection, {
        create: pulumi.all(containers.map((c) => c.id)).apply((ids) => servingGateCommand(ports, admit, SERVING_GATE_TIMEOUT_SECONDS, ids)),
        stdin: servingGateScript(),
        triggers: [...(host.readyId !== undefined ? [host.readyId] : []), ...containers.map((c) => c.id)],
      }),
      { parent: this, dependsOn: [host.ready, ...containers], customTimeouts: { create: `${bound}s`, update: `${bound}s` } },
    );
  }

  /**
   * A container's PIDs limit (CIS 5.29), set on the host right after the container was
   * created (pidsLimitCommand: the provider cannot set it at create). Triggered by the
   * container id, so a replaced container (a new id) gets it again.
   *
   * The window: from its start until this runs - its create and health wait (`wait`), a few
   * seconds - the container has the engine's default of no PIDs limit. A container that
   * fails its wait never gets the limit; Pulumi replaces it on the next update. Not at
   * create instead: the only create-time knobs are an `nproc` ulimit (counts every process
   * of the uid on the host, not the container's) or a `cgroupParent` made beforehand with
   * pids.max (dockerd then reports no PidsLimit, which CIS audits read, and that cgroup must
   * exist again, limited, before dockerd restarts the container after a reboot).
   */
  private limitPids(on: OnHost, container: docker.Container, limit: number): void {
    new command.local.Command(
      `${pulumi.resourceName(container)}-pids-limit`,
      hostCommandArgs(on.host.connection, {
        create: container.id.apply((id) => pidsLimitCommand(limit, id)),
        triggers: [container.id],
      }),
      { parent: this, dependsOn: [on.host.ready, container] },
    );
  }
}
