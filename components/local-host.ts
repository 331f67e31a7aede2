/**
 * LocalHost: one host of a `platform: local` host group. Where DockerHost makes an EC2 VM,
 * this makes a systemd "machine container" on the deployer's own Docker Engine, booted from
 * the SAME user-data (components/engine.ts renderUserData) through a NoCloud seed, so the
 * engine version, daemon settings, data mount and the fleet on it are what the stack's EC2
 * hosts get. What differs is only what a platform provides:
 *  - the machine: the local host image (components/local-host/Dockerfile, a Debian 12
 *    cloud image's contents, built by build-image.sh) instead of Debian's AMI;
 *  - the data volume: a Docker volume mounted at the group's dataMount (the data-volume step
 *    finds a mount point and leaves it as it is) instead of an EBS volume; kept on removal;
 *  - the SSH host key: generated once and kept in state as on EC2, placed in the container as
 *    a file before it starts instead of read from SSM;
 *  - the way in: `docker exec` carries SSH into the container (connection.ts
 *    localProxyCommand) instead of Session Manager, the deployer's ssh-agent key pushed
 *    just before, as EC2 Instance Connect does; the pinned host key is checked the same way;
 *  - published service ports: on 127.0.0.1 of the deployer's machine, each on a port the
 *    engine picks (`endpoints`), instead of the host's Elastic IP.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import * as tls from "@pulumi/tls";
import { hostNameFor, type EnvironmentSpec, type HostGroupSpec } from "../stacks/schema";
import { localProxyCommand, type HostConnection } from "./connection";
import { userDataBase64 } from "./engine";

// ---------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------

/** The local host image's recipe: a Dockerfile and the files it copies (build-image.sh builds it). */
export const HOST_IMAGE_DIR = path.join(__dirname, "local-host");
/** Where the platform places the host's SSH host private key (hostkey step, HOSTKEY_SOURCE=file). */
export const LOCAL_HOST_KEY_FILE = "/etc/dockyard/platform/ssh_host_ed25519_key";
/** cloud-init's NoCloud seed directory (cloudinit/sources/DataSourceNoCloud.py seed_dir). */
export const NOCLOUD_SEED = "/var/lib/cloud/seed/nocloud";

/**
 * The recipe hash build-image.sh tags the image with: sha256 over `sha256sum` lines of every
 * recipe file (build-image.sh excepted), sorted by path as `LC_ALL=C sort -z` does; first 12
 * hex digits. A changed recipe is a new image tag, so local hosts are replaced, as a new AMI
 * would replace EC2 hosts.
 */
export function hostImageRecipeHash(dir = HOST_IMAGE_DIR): string {
  // Read once per process: the policy checks compare every RemoteImage of a stack with the tag.
  const known = recipeHashes.get(dir);
  if (known) return known;
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.isFile() && r !== "build-image.sh") files.push(`./${r}`);
    }
  };
  walk("");
  files.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const lines = files.map((f) => `${createHash("sha256").update(fs.readFileSync(path.join(dir, f))).digest("hex")}  ${f}\n`).join("");
  const hash = createHash("sha256").update(lines).digest("hex").slice(0, 12);
  recipeHashes.set(dir, hash);
  return hash;
}
const recipeHashes = new Map<string, string>();

/** The local host image's tag in the deployer's engine. */
export function hostImageTag(): string {
  return `dockyard/host:${hostImageRecipeHash()}`;
}

/**
 * The settings that let systemd (PID 1) and a nested dockerd run in a container without
 * `--privileged` (DESIGN.md): every capability but SYS_RESOURCE, no seccomp or AppArmor
 * confinement, /proc/sys writable (`systempaths=unconfined`: the provider turns it into empty
 * MaskedPaths and ReadonlyPaths, as the docker CLI does, terraform-provider-docker
 * resource_docker_container_funcs.go parseSystemPaths), every device allowed in its cgroup,
 * /run on tmpfs, the host's cgroup tree read-only, and systemd's own stop signal.
 */
export function machineContainerSettings(): Pick<docker.ContainerArgs, "capabilities" | "securityOpts" | "deviceCgroupRules" | "tmpfs" | "stopSignal" | "stopTimeout" | "destroyGraceSeconds"> & {
  cgroupVolume: { hostPath: string; containerPath: string; readOnly: boolean };
} {
  return {
    capabilities: { adds: ["ALL"], drops: ["SYS_RESOURCE"] },
    securityOpts: ["seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"],
    deviceCgroupRules: ["a *:* rwm"],
    tmpfs: { "/run": "", "/run/lock": "" },
    stopSignal: "SIGRTMIN+3",
    // systemd stops the engine and its containers cleanly before the container is stopped or
    // removed: the provider's delete stops it with destroyGraceSeconds (0 when unset: SIGKILL at
    // once, resource_docker_container_funcs.go resourceDockerContainerDelete), `docker stop` with stopTimeout.
    stopTimeout: 60,
    destroyGraceSeconds: 60,
    cgroupVolume: { hostPath: "/sys/fs/cgroup", containerPath: "/sys/fs/cgroup", readOnly: true },
  };
}

/**
 * cloud-init's instance id for a local host. It names the host only: a new definition
 * (user-data) replaces the container, as the provider's `upload` is ForceNew
 * (terraform-provider-docker resource_docker_container.go), and the new container's fresh
 * root file system is a new instance to cloud-init whatever its id. A hash of the user-data
 * here would also make the id differ between stacks for their host names alone, which
 * `diff` could not tell from a real difference.
 */
export function localInstanceId(hostName: string): string {
  return `local-${hostName}`;
}

/**
 * The port of a registry on the deployer's machine (`localhost:<port>` or `127.0.0.1:<port>`),
 * which a local host reaches through its registry forwarder; undefined for any other registry.
 */
export function loopbackRegistryPort(registryHost: string | undefined): number | undefined {
  const m = /^(?:localhost|127\.0\.0\.1):(\d{1,5})$/.exec(registryHost ?? "");
  return m ? Number(m[1]) : undefined;
}

/** The name the deployer's machine has inside a local host (Docker's `host-gateway`; Docker Desktop provides it too). */
export const DEPLOYER_HOST = "host.docker.internal";
const FORWARD_UNIT = "dockyard-registry-forward";

/**
 * The registry forwarder of a local host, as systemd units: 127.0.0.1:<port> inside the host
 * carried to the same port on the deployer's machine by systemd-socket-proxyd. So an image
 * `localhost:<port>/...` is pulled by the host's engine from the deployer's registry, as a
 * loopback registry (plain HTTP, no daemon setting: dockerd trusts 127.0.0.0/8 by default,
 * moby daemon/pkg/registry/config.go: "::1/128", "127.0.0.0/8") - the daemon.json stays the environment's. Enabled by a drop-in
 * of sockets.target that wants it: `systemctl enable` would make a symlink in
 * sockets.target.wants, which an upload cannot, and systemd ignores a regular file there
 * (tried on the host image's systemd 252).
 */
export function registryForwardUnits(port: number): { file: string; content: string }[] {
  const socket = `# Dockyard local host: the deployer's registry at 127.0.0.1:${port} (components/local-host.ts)
[Unit]
Description=Forward 127.0.0.1:${port} to the deployer's registry
[Socket]
ListenStream=127.0.0.1:${port}
[Install]
WantedBy=sockets.target
`;
  const service = `# Dockyard local host: the deployer's registry at 127.0.0.1:${port} (components/local-host.ts)
[Unit]
Description=Forward 127.0.0.1:${port} to ${DEPLOYER_HOST}:${port}
Requires=${FORWARD_UNIT}.socket
After=${FORWARD_UNIT}.socket
[Service]
ExecStart=/lib/systemd/systemd-socket-proxyd ${DEPLOYER_HOST}:${port}
`;
  return [
    { file: `/etc/systemd/system/${FORWARD_UNIT}.socket`, content: socket },
    { file: `/etc/systemd/system/${FORWARD_UNIT}.service`, content: service },
    { file: `/etc/systemd/system/sockets.target.d/10-${FORWARD_UNIT}.conf`, content: `[Unit]\nWants=${FORWARD_UNIT}.socket\n` },
  ];
}

/** The NoCloud meta-data of a local host. */
export function noCloudMetaData(instanceId: string, hostName: string): string {
  return `instance-id: ${instanceId}\nlocal-hostname: ${hostName}\n`;
}

// ---------------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------------

/** What the host's boot script needs to know about a local host. */
export interface LocalHostBootContext {
  hostName: string;
  /** Not a device: a local host's data volume is mounted by Docker, so the data-volume step finds a mount point. */
  dataDevice: string;
  /** Where the platform places the SSH host private key. */
  hostKeyFile: string;
}

export interface LocalHostArgs {
  /** Stack name; part of the host name and the labels. */
  stack: string;
  /** The host group: dataMount and role (instanceType and volume sizes are EC2's and do not apply). */
  group: HostGroupSpec;
  /** 1-based index of this host within its group. */
  ordinal: number;
  /** OS family of the environment: the SSH user (the local host image is Debian 12's). */
  os: EnvironmentSpec["os"];
  /** Ports the per-host proxy publishes on this group: each is published on 127.0.0.1 of the deployer's machine. */
  servicePorts: number[];
  /** The Docker provider of the deployer's own engine, where the machine container and its volume are made. */
  engine: docker.Provider;
  /** The local host image's id in that engine (a docker.RemoteImage of hostImageTag()). */
  image: pulumi.Input<string>;
  /**
   * Host part of the stack's registry. A registry on the deployer's machine
   * (`localhost:<port>`) is reached from the host through its registry forwarder
   * (registryForwardUnits); any other is pulled from directly.
   */
  registryHost?: string;
  /** Renders the user-data (the #cloud-config text), as for an EC2 host. */
  userData: (ctx: LocalHostBootContext) => string;
  /**
   * What the machine waits for before it is created or replaced: the serving gates of the
   * previous rollout batch of its group (components/rollout.ts RolloutOrder.after), so a new
   * engine or user-data replaces one batch of hosts at a time.
   */
  after?: Promise<pulumi.Resource[]>;
}

/** One local host: a machine container, its data volume and its SSH host key. */
export class LocalHost extends pulumi.ComponentResource {
  /** `${stack}-${group}-${ordinal}`; also the container's name. */
  public readonly hostName: string;
  /** The machine container's id (changes when the host is replaced). */
  public readonly instanceId: pulumi.Output<string>;
  /** cloud-init's instance id (localInstanceId), once the container exists: what the engine's ready check insists on meeting. */
  public readonly cloudInitInstanceId: pulumi.Output<string>;
  /** Where its published ports are reached: 127.0.0.1 of the deployer's machine. */
  public readonly publicIp: pulumi.Output<string>;
  /** Its address on Docker's network (reachable from the deployer's machine on Linux). */
  public readonly privateIp: pulumi.Output<string>;
  /** The Docker volume holding the data mount (kept when the host is removed). */
  public readonly dataVolumeId: pulumi.Output<string>;
  /** The host's SSH host public key, `ssh-ed25519 AAAA...`. */
  public readonly hostPublicKey: pulumi.Output<string>;
  /** Login user of the OS image. */
  public readonly sshUser: string;
  /** How Pulumi reaches this host: the container's name through `docker exec` (localProxyCommand), host key pinned. */
  public readonly connection: HostConnection;
  /** Each published service port -> `127.0.0.1:<port>` where the deployer's machine reaches it. */
  public readonly endpoints: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: LocalHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:LocalHost", name, {}, opts);
    const host = hostNameFor(args.stack, args.group.name, args.ordinal);
    const labels = Object.entries({ "dockyard.stack": args.stack, "dockyard.group": args.group.name, "dockyard.role": args.group.role, "dockyard.host": host }).map(([label, value]) => ({ label, value }));

    // Generated once and kept in state (a secret), like an EC2 host's: a replaced container presents the same key.
    const hostKey = new tls.PrivateKey(`${name}-host-key`, { algorithm: "ED25519" }, { parent: this });
    // The data volume outlives the container, as the EBS volume outlives the instance (retainOnDelete: see DockerHost).
    const data = new docker.Volume(`${name}-data`, { name: `${host}-data`, labels }, { parent: this, provider: args.engine, retainOnDelete: true });

    const userData = args.userData({ hostName: host, dataDevice: `docker-volume:${host}-data`, hostKeyFile: LOCAL_HOST_KEY_FILE });
    const instanceId = localInstanceId(host);
    const { cgroupVolume, ...settings } = machineContainerSettings();
    const ports = [...new Set(args.servicePorts)].sort((a, b) => a - b);
    const registryPort = loopbackRegistryPort(args.registryHost);
    const forward = registryPort !== undefined ? registryForwardUnits(registryPort).map((u) => ({ ...u, permissions: "0644" })) : [];
    const machine = new docker.Container(
      `${name}-machine`,
      {
        name: host,
        hostname: host,
        image: args.image,
        ...settings,
        restart: "unless-stopped",
        volumes: [cgroupVolume, { volumeName: data.name, containerPath: args.group.dataMount }],
        ports: ports.map((p) => ({ internal: p, ip: "127.0.0.1", protocol: "tcp" })),
        uploads: [
          // The bytes EC2 would receive: the gzip-compressed cloud-config (cloud-init decompresses it).
          { file: `${NOCLOUD_SEED}/user-data`, contentBase64: userDataBase64(userData, `stack "${args.stack}": host ${host}: user-data`), permissions: "0600" },
          { file: `${NOCLOUD_SEED}/meta-data`, content: noCloudMetaData(instanceId, host), permissions: "0644" },
          { file: LOCAL_HOST_KEY_FILE, content: pulumi.secret(hostKey.privateKeyOpenssh), permissions: "0600" },
          ...forward,
        ],
        // The deployer's machine by name (Docker resolves host-gateway to its bridge's gateway).
        hosts: registryPort !== undefined ? [{ host: DEPLOYER_HOST, ip: "host-gateway" }] : [],
        labels,
      },
      // The uploads carry the host's private key: kept encrypted in state whatever the provider echoes back.
      { parent: this, provider: args.engine, additionalSecretOutputs: ["uploads"], ...(args.after !== undefined ? { dependsOn: args.after } : {}) },
    );

    this.hostName = host;
    this.instanceId = machine.id;
    this.cloudInitInstanceId = machine.id.apply(() => instanceId);
    this.publicIp = pulumi.output("127.0.0.1");
    this.privateIp = machine.networkDatas.apply((n) => n?.[0]?.ipAddress ?? "");
    this.dataVolumeId = data.name;
    this.hostPublicKey = hostKey.publicKeyOpenssh.apply((k) => k.trim());
    this.sshUser = args.os.sshUser;
    // The container's name, read from the container: a consumer connects only once it exists.
    this.connection = { target: machine.name, user: this.sshUser, hostPublicKey: this.hostPublicKey, proxyCommand: localProxyCommand(this.sshUser) };
    this.endpoints = machine.ports.apply((ps) =>
      Object.fromEntries((ps ?? []).filter((p) => p.external !== undefined).map((p) => [String(p.internal), `127.0.0.1:${p.external}`])),
    );
    this.registerOutputs({
      hostName: this.hostName,
      instanceId: this.instanceId,
      publicIp: this.publicIp,
      privateIp: this.privateIp,
      dataVolumeId: this.dataVolumeId,
      hostPublicKey: this.hostPublicKey,
      sshUser: this.sshUser,
      endpoints: this.endpoints,
    });
  }
}
