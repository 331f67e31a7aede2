// Dockyard: one program for every stack. Load the spec, build the components, export outputs.
import { loadSpecFromPulumi, parseEcrRegistry, registryHost, PROXY_REPOSITORY } from "./stacks";
import { DockerHost, hostKeysKey, hostZone, stackHosts } from "./components/host";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { DockerEngine, renderUserData, type HostKeySource } from "./components/engine";
import { LocalHost, hostImageTag } from "./components/local-host";
import { ContainerFleet } from "./components/fleet";
import { ImageRegistry } from "./components/registry";
import { DEREGISTRATION_DELAY_SECONDS, FrontDoor, frontDoorAdmitSeconds, frontDoorBaseName } from "./components/front-door";
import { RolloutOrder } from "./components/rollout";
import { StatusAlarms } from "./components/alarms";
import { SwarmFleet, swarmSecurityGroup } from "./components/swarm-fleet";
import { SWARM_PORTS, swarmDaemonSettings, swarmEngineLabels } from "./components/swarm";

const spec = loadSpecFromPulumi();
// environment.yaml fleet.mode (issue 14): swarm mode renders live-restore off (dockerd refuses
// a swarm with it on), labels each engine with its zone and group, and lets dockerd listen
// on the swarm's TCP ports, which only the stack's hosts may reach.
const swarm = spec.fleetMode === "swarm";
const engineSpec = swarm ? { ...spec.engine, daemon: swarmDaemonSettings(spec.engine.daemon) } : spec.engine;
// The stack's registry when it is ECR: hosts may pull from its namespace (in its account and region) only.
const ecr = parseEcrRegistry(spec.registry);

// One host per host of each group, each with the engine installed by its user-data: an EC2
// VM (DockerHost), or on `platform: local` a machine container on the deployer's own Docker
// Engine (LocalHost), booted from the same user-data.
const anyLocal = spec.hostGroups.some((g) => g.platform === "local" && g.count > 0);
// The deployer's own Docker Engine (DOCKER_HOST, else the local socket), where local hosts run.
// (No resource name starts with "local": `diff` reads a stack's name in resource names as the stack.)
const localEngine = anyLocal ? new docker.Provider("deployer-engine", {}) : undefined;
const localImage = localEngine
  ? // The local host image in that engine (components/local-host/build-image.sh builds it); kept when the stack goes.
    new docker.RemoteImage("machine-image", { name: hostImageTag(), keepLocally: true }, { provider: localEngine })
  : undefined;
// Per host group of EC2 hosts that publishes ports, the front door clients use (issue 13):
// made before its hosts, whose service ports admit its security group only.
const frontDoors = new Map(
  spec.hostGroups
    .filter((g) => g.platform !== "local" && g.count > 0)
    .map((g) => [g, [...new Set([...spec.services, ...spec.awaitingImage].filter((s) => s.group === g.name && s.publishPort !== undefined).map((s) => s.publishPort as number))]] as [typeof g, number[]])
    .filter(([, ports]) => ports.length > 0)
    .map(([g, ports]) => [
      g.name,
      new FrontDoor(frontDoorBaseName(spec.stack, g.name), { stack: spec.stack, project: spec.project, group: g.name, region: spec.region, ports, ingressCidrs: spec.access.ingressCidrs, certificateArn: spec.certificateArn }),
    ]),
);
// The order hosts roll in (components/rollout.ts): per group, batches of maxUnavailable hosts;
// a host's machine, replicas and proxy wait until every host of the batch before serves again.
const stackHostList = stackHosts(spec);
// Swarm mode on EC2: one security group of the stack's hosts, open to itself on the swarm's ports.
const swarmGroup = swarm && spec.hostGroups.some((g) => g.platform !== "local" && g.count > 0) ? swarmSecurityGroup(`${spec.stack}-swarm`, { stack: spec.stack, project: spec.project, region: spec.region }) : undefined;
// The stack's own KMS key for its EC2 hosts' SSH host keys in SSM (issue 24 item 5): a host
// may decrypt its own parameter with it, no host of this or any other stack another's.
const hostKeys = spec.hostGroups.some((g) => g.platform !== "local" && g.count > 0) ? hostKeysKey(`${spec.stack}-host-keys`, { stack: spec.stack, project: spec.project, region: spec.region }) : undefined;
const rollout = new RolloutOrder(
  spec.hostGroups.map((g) => ({ name: g.name, hosts: stackHostList.filter((h) => h.group.name === g.name).map((h) => h.name), maxUnavailable: g.maxUnavailable })),
);
const hosts = stackHostList.map(({ name, group, ordinal }) => {
  // Every declared service's port, with a digest yet or not, so the first images change no security group.
  const servicePorts = [...spec.services, ...spec.awaitingImage]
    .filter((s) => s.group === group.name && s.publishPort !== undefined)
    .map((s) => s.publishPort as number);
  const userData = (ctx: { hostName: string; dataDevice: string; hostKey: HostKeySource; zone: string }) =>
    renderUserData({
      stack: spec.stack,
      hostName: ctx.hostName,
      os: spec.os,
      engine: engineSpec,
      ...(swarm ? { engineLabels: swarmEngineLabels(ctx.zone, group.name), engineListenPorts: [...new Set(SWARM_PORTS.filter((p) => p.protocol === "tcp").map((p) => p.port))] } : {}),
      dataMount: group.dataMount,
      dataDevice: ctx.dataDevice,
      hostKey: ctx.hostKey,
      // Host part of dockyard:registry: an ECR host gets the credential helper (pulls use the instance role).
      registryHost: registryHost(spec.registry),
    });
  if (group.platform === "local" && localImage && localEngine) {
    const host = new LocalHost(name, {
      stack: spec.stack,
      group,
      ordinal,
      os: spec.os,
      servicePorts,
      engine: localEngine,
      image: localImage.imageId,
      registryHost: registryHost(spec.registry),
      userData: (ctx) => userData({ hostName: ctx.hostName, dataDevice: ctx.dataDevice, hostKey: { file: ctx.hostKeyFile }, zone: `local-${ordinal}` }),
      after: rollout.after(name),
    });
    const engine = new DockerEngine(`${name}-engine`, {
      hostName: name,
      connection: host.connection,
      engine: engineSpec,
      hostId: host.cloudInitInstanceId,
      machineId: host.instanceId,
    });
    return { group, ordinal, zone: `local-${ordinal}`, host, engine, endpoints: host.endpoints, sshTarget: host.connection.target };
  }
  // The host's zone as the stack file names it (issue 24 item 6): a new or removed default
  // subnet never moves a host off its data volume; only a dockyard:zones change does.
  const zone = hostZone(spec.zones, ordinal, `stack "${spec.stack}": stacks/Pulumi.${spec.stack}.yaml: config.dockyard:zones`);
  const host = new DockerHost(name, {
    stack: spec.stack,
    project: spec.project,
    group,
    ordinal,
    availabilityZone: zone,
    region: spec.region,
    os: spec.os,
    access: spec.access,
    servicePorts,
    frontDoorSecurityGroupId: frontDoors.get(group.name)?.securityGroupId,
    extraSecurityGroupIds: swarmGroup ? [swarmGroup.id] : undefined,
    after: rollout.after(name),
    // Registered with the front door by the host, so a replaced instance is drained before it is stopped.
    frontDoor: frontDoors.has(group.name) ? { register: (instanceId) => frontDoors.get(group.name)!.attach({ name, instanceId }), drainSeconds: DEREGISTRATION_DELAY_SECONDS } : undefined,
    ecr,
    hostKeysKey: hostKeys!,
    userData: (ctx) =>
      pulumi.all([ctx.dataDevice, ctx.availabilityZone]).apply(([dataDevice, zone]) => userData({ hostName: ctx.hostName, dataDevice, hostKey: { ssmParameter: ctx.hostKeyParameter, region: spec.region }, zone })),
  });
  const engine = new DockerEngine(`${name}-engine`, {
    hostName: name,
    connection: host.connection,
    engine: engineSpec,
    // The address and the instance it must reach both come from the EIP association.
    hostId: host.addressInstanceId,
  });
  const endpoints = host.publicIp.apply((ip) => Object.fromEntries([...new Set(servicePorts)].sort((a, b) => a - b).map((p) => [String(p), `${ip}:${p}`])));
  return { group, ordinal, zone, host, engine, endpoints, sshTarget: host.connection.target };
});

// EC2 status-check alarms of every EC2 host, to one topic per stack (hosts keep EC2's simplified automatic recovery).
const awsHosts = hosts.filter(({ group }) => group.platform !== "local");
const alarms = awsHosts.length > 0 ? new StatusAlarms(`${spec.stack}-host-alarms`, { stack: spec.stack, project: spec.project, region: spec.region, hosts: awsHosts.map(({ host }) => ({ name: host.hostName, instanceId: host.instanceId })) }) : undefined;

// This environment's image repositories (ECR), one per service plus the proxy's. Another
// registry is not Dockyard's to manage: its repositories exist already, and hosts pull from
// it without credentials (README "Registries"), as Dockyard holds no registry password.
// A stack that shares another's registry (dockyard:createRepositories false) only pulls.
const registry = ecr && spec.createRepositories
  ? new ImageRegistry("registry", {
      stack: spec.stack,
      registry: spec.registry,
      // Every declared service's repository, with a digest yet or not: a new stack's first
      // `up` creates them, so its first images can be pushed (README "The first deploy").
      services: [...spec.services, ...spec.awaitingImage],
      extraRepositories: spec.proxyImage || spec.proxyAwaitingImage ? [PROXY_REPOSITORY] : [],
    })
  : undefined;

// The containers: images by digest, replicas spread over the hosts, a proxy per host
// (static); or a swarm of the stack's hosts running the services and a proxy per group (swarm).
const fleetArgs = {
  stack: spec.stack,
  services: spec.services,
  secrets: spec.secrets,
  architecture: spec.os.architecture,
  logging: spec.engine.daemon,
  proxyImage: spec.proxyImage,
  /** The proxy's CPU, memory and PIDs limits and its non-root user (CIS 5.12, 5.29, 4.1). */
  proxy: spec.proxy,
  rollout,
};
const fleet = swarm
  ? new SwarmFleet("swarm", {
      ...fleetArgs,
      // Each host's zone as dockyard:zones places it (components/host.ts hostZone); managers
      // are picked one per zone first.
      hosts: hosts.map(({ group, zone, host, engine: e }) => ({ name: host.hostName, group: group.name, zone, address: host.privateIp, connection: host.connection, ready: e, readyId: e.readyId })),
    })
  : new ContainerFleet("fleet", {
      ...fleetArgs,
      hosts: hosts.map(({ group, host, engine: e }) => ({
        name: host.hostName,
        group: group.name,
        // Host files its containers mount (the proxy's configuration) live on the data volume.
        dataMount: group.dataMount,
        connection: host.connection,
        ready: e,
        readyId: e.readyId,
        // The front door re-admits a host after its healthy threshold x interval; local hosts have none.
        admitSeconds: frontDoors.has(group.name) ? frontDoorAdmitSeconds() : 0,
      })),
    });
// The fleet gave every host its gate (static: its serving gate; swarm: its init or join); a
// host it placed nothing on ends its turn once its engine is ready.
rollout.close((name) => hosts.filter(({ host }) => host.hostName === name).map(({ engine: e }) => e));

export const stack = spec.stack;
export const region = spec.region;
/** The engine every host runs; liveRestore is off in swarm mode (dockerd refuses a swarm with it on). */
export const engine = { channel: engineSpec.channel, version: engineSpec.version ?? "distribution default", liveRestore: engineSpec.daemon.liveRestore };
/** Every host with its addresses, data volume and the engine version it reported when ready. */
export const hostsByName = Object.fromEntries(
  hosts.map(({ group, host, engine: e, endpoints, sshTarget }) => [
    host.hostName,
    {
      group: group.name,
      /** aws (an EC2 VM) or local (a machine container on the deployer's Docker Engine). */
      platform: group.platform,
      instanceId: host.instanceId,
      publicIp: host.publicIp,
      privateIp: host.privateIp,
      dataVolumeId: host.dataVolumeId,
      sshUser: host.sshUser,
      /** What `ssh <sshUser>@<sshTarget>` dials: the instance id (hostAccess ssm, through Session Manager) or the address. */
      sshTarget,
      /** Each published service port -> `<address>:<port>` where clients reach it on this host. */
      endpoints,
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
/**
 * Per host group with published ports on EC2: the load balancer clients use (its DNS name),
 * the ports it listens on, TCP or TLS (dockyard:certificateArn), and per port the target
 * group its hosts are registered with (`dockyard smoke --front-door health` asks the load
 * balancer's view of them). README "Front door".
 */
export const frontDoor = Object.fromEntries([...frontDoors].map(([group, fd]) => [group, { dnsName: fd.dnsName, ports: fd.ports, protocol: fd.protocol, targetGroupArns: fd.targetGroupArns }]));
/** Swarm mode: the fleet mode and the managers (the first made the swarm; `docker service ps` runs there). Static: just the mode. */
export const fleetMode = swarm ? { mode: "swarm", managers: (fleet as SwarmFleet).managers } : { mode: "static" };
/** The SNS topic every host's EC2 status-check alarm notifies; subscribe to it. Undefined without EC2 hosts. */
export const alarmTopicArn = alarms?.topicArn;
