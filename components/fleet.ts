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
export function healthWaitSeconds(h: ServiceSpec["health"]): number {
  const worst = durationSeconds(h.startPeriod) + (durationSeconds(h.interval) + durationSeconds(h.timeout)) * (h.retries + 1);
  return Math.max(60, Math.ceil(worst + 30));
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

export class ContainerFleet extends pulumi.ComponentResource {
  /** Service name -> digest, image reference, replicas and hosts (stack output `services`). */
  public readonly services: pulumi.Output<Record<string, ServiceOutput>>;
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

        const ref = imageRef(svc);
        // Pull on the host with the host's docker CLI: the ECR credential helper there uses
        // the instance role, so no registry token is ever in Pulumi state (pulumi-docker#952, #459).
        const pull = new command.remote.Command(
          `${name}-${host.name}-${svc.name}-pull`,
          {
            connection: {
              host: host.address,
              user: host.sshUser,
              hostKey: host.hostPublicKey,
              ...(args.sshPrivateKey ? { privateKey: args.sshPrivateKey } : {}),
            },
            create: `docker pull --quiet --platform ${platform} ${ref}`,
            triggers: [host.address],
          },
          { parent: this, ...ready },
        );
        // The image by digest; found locally after the pull above, so the provider needs no registry auth.
        const image = new docker.RemoteImage(
          `${name}-${host.name}-${svc.name}-image`,
          { name: ref, platform, keepLocally: true },
          { ...on, dependsOn: [host.ready, pull] },
        );

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
          new docker.Container(
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
        }
      }

      const routes = proxyRoutes(services, placements, host.name);
      if (args.proxyImage && routes.length > 0) {
        const config = renderHaproxyConfig(routes);
        const proxyImage = new docker.RemoteImage(`${name}-${host.name}-proxy-image`, { name: args.proxyImage, platform, keepLocally: true }, on);
        // The host's one entry point: publishes the service ports, routes to healthy replicas.
        // It holds the host ports, so a config change replaces it delete-first (brief gap on this host only).
        new docker.Container(
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
            ports: routes.map((r) => ({ internal: r.publishPort, external: r.publishPort, protocol: "tcp" })),
            networksAdvanced: routes.map((r) => ({ name: networks[r.service].name })),
            labels: [
              { label: "dockyard.stack", value: stack },
              { label: "dockyard.role", value: "proxy" },
              { label: "dockyard.config", value: crypto.createHash("sha256").update(config).digest("hex").slice(0, 12) },
            ],
          },
          { ...on, dependsOn: [host.ready, proxyImage, ...routes.map((r) => networks[r.service])], deleteBeforeReplace: true },
        );
      }
    }

    const summary: Record<string, ServiceOutput> = {};
    for (const s of services) {
      summary[s.name] = { digest: s.digest, image: imageRef(s), replicas: s.replicas, hosts: hostsWithReplicas(placements[s.name]) };
    }
    this.services = pulumi.output(summary);
    this.placements = pulumi.output(placements);
    this.registerOutputs({ services: this.services, placements: this.placements });
  }
}
