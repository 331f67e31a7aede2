// Dockyard: one program for every stack. Load the spec, build the components, export outputs.
import { loadSpecFromPulumi, parseEcrRegistry, registryHost, PROXY_REPOSITORY } from "./stacks";
import { DockerHost, stackHosts } from "./components/host";
import { DockerEngine, renderUserData } from "./components/engine";
import { ContainerFleet } from "./components/fleet";
import { ImageRegistry } from "./components/registry";

const spec = loadSpecFromPulumi();
// The stack's registry when it is ECR: hosts may pull from its namespace (in its account and region) only.
const ecr = parseEcrRegistry(spec.registry);

// One DockerHost per host of each group, each with the engine installed by its user-data.
const hosts = stackHosts(spec).map(({ name, group, ordinal }) => {
  // Every declared service's port, with a digest yet or not, so the first images change no security group.
  const servicePorts = [...spec.services, ...spec.awaitingImage]
    .filter((s) => s.group === group.name && s.publishPort !== undefined)
    .map((s) => s.publishPort as number);
  const host = new DockerHost(name, {
    stack: spec.stack,
    project: spec.project,
    group,
    ordinal,
    region: spec.region,
    os: spec.os,
    access: spec.access,
    servicePorts,
    ecr,
    userData: (ctx) =>
      ctx.dataDevice.apply((dataDevice) =>
        renderUserData({
          stack: spec.stack,
          hostName: ctx.hostName,
          os: spec.os,
          engine: spec.engine,
          dataMount: group.dataMount,
          dataDevice,
          hostKey: { ssmParameter: ctx.hostKeyParameter, region: spec.region },
          // Host part of dockyard:registry: an ECR host gets the credential helper (pulls use the instance role).
          registryHost: registryHost(spec.registry),
        }),
      ),
  });
  const engine = new DockerEngine(`${name}-engine`, {
    hostName: name,
    connection: host.connection,
    engine: spec.engine,
    // The address and the instance it must reach both come from the EIP association.
    hostId: host.addressInstanceId,
  });
  return { group, host, engine };
});

// This environment's image repositories (ECR), one per service plus the proxy's. Another
// registry is not Dockyard's to manage: its repositories exist already, and hosts pull from
// it without credentials (README "Registries"), as Dockyard holds no registry password.
const registry = ecr
  ? new ImageRegistry("registry", {
      stack: spec.stack,
      registry: spec.registry,
      // Every declared service's repository, with a digest yet or not: a new stack's first
      // `up` creates them, so its first images can be pushed (README "The first deploy").
      services: [...spec.services, ...spec.awaitingImage],
      extraRepositories: spec.proxyImage || spec.proxyAwaitingImage ? [PROXY_REPOSITORY] : [],
    })
  : undefined;

// The containers: images by digest, replicas spread over the hosts, a proxy per host.
const fleet = new ContainerFleet("fleet", {
  stack: spec.stack,
  hosts: hosts.map(({ group, host, engine: e }) => ({
    name: host.hostName,
    group: group.name,
    connection: host.connection,
    ready: e,
  })),
  services: spec.services,
  secrets: spec.secrets,
  architecture: spec.os.architecture,
  logging: spec.engine.daemon,
  proxyImage: spec.proxyImage,
  /** The proxy's CPU, memory and PIDs limits and its non-root user (CIS 5.12, 5.29, 4.1). */
  proxy: spec.proxy,
});

export const stack = spec.stack;
export const region = spec.region;
export const engine = { channel: spec.engine.channel, version: spec.engine.version ?? "distribution default" };
/** Every host with its addresses, data volume and the engine version it reported when ready. */
export const hostsByName = Object.fromEntries(
  hosts.map(({ group, host, engine: e }) => [
    host.hostName,
    {
      group: group.name,
      instanceId: host.instanceId,
      publicIp: host.publicIp,
      privateIp: host.privateIp,
      dataVolumeId: host.dataVolumeId,
      sshUser: host.sshUser,
      /** What `ssh <sshUser>@<sshTarget>` dials: the instance id (hostAccess ssm, through Session Manager) or the address. */
      sshTarget: host.connection.target,
      hostPublicKey: host.hostPublicKey,
      engineVersion: e.ready,
    },
  ]),
);
/** Each service with the digest it runs, its replica count and the hosts that run it (read by `promote`). */
export const services = fleet.services;
/** The proxy image every host's proxy runs, `<repo>@<digest>`, once every proxy was created; undefined without proxy. */
export const proxyImage = fleet.proxyImage;
/**
 * What this stack does not run yet because it has no digest for it (a new stack before its
 * first images): those services run no container, and without the proxy's digest no host
 * serves a published port. Empty lists and false once every digest is set.
 */
export const awaitingImage = { services: spec.awaitingImage.map((s) => s.name), proxy: spec.proxyAwaitingImage };
/** The image repositories of this environment (ECR; none when the registry is another one). */
export const repositories = registry?.repositories ?? {};
