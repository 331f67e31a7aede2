/**
 * The fleet in swarm mode (environment.yaml `fleet.mode: swarm`, issue 14): the stack's hosts
 * form one Docker Swarm, and the services are swarm services that the engine places,
 * reschedules and rolls. The pure parts (commands, service specs) are in components/swarm.ts.
 *
 * What it declares, in order:
 * - on the first manager, over the one SSH way in: `swarm init` (advertising its private
 *   address), then the join tokens, read by a command whose stdout is a Pulumi secret and is
 *   never logged;
 * - on every other host: `swarm join` as a manager (up to 3, one per zone first) or a
 *   worker, its token on stdin (a secret input, so encrypted in state);
 * - on every host of a service's group: `docker pull` of its image by digest with the host's
 *   docker CLI (ECR credential helper, instance role), so tasks find it locally and no
 *   registry credential goes into a service spec or into state;
 * - through a Docker provider on the first manager: per service an overlay network, its
 *   secrets as swarm secrets, the service; per group with published ports the proxy, a global
 *   service publishing in host mode, its configuration a swarm config;
 * - per swarm service (the proxies too), on the first manager once the provider created or
 *   updated it: its update gate (components/swarm/update-gate.sh), which waits until swarm
 *   completed the update and every running task runs the new image, and fails with swarm's
 *   message on a rollback or pause. The provider's own convergence wait can report a bad
 *   update complete (the script says why); the outputs `services` and `proxyImage` resolve
 *   only after the gates, so a rolled-back update fails the `up` and keeps the old outputs.
 *
 * Not done in swarm mode, and why:
 * - PIDs limits (CIS 5.29): pulumi-docker 5.2's Service has no such input (its
 *   ServiceTaskSpecResourcesLimits has memoryBytes and nanoCpus only), and setting it outside
 *   the provider (`docker service update --limit-pids`) would be reset by the provider's next
 *   update of the spec, each time rolling every task twice. README says so.
 * - Serving gates per host: swarm replaces tasks itself; a host's turn in a machine rollout
 *   ends with its init or join (SwarmFleetArgs.rollout).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { dockerPlatform } from "../stacks/os";
import { dockerProviderArgs, hostCommandArgs, type HostConnection } from "./connection";
import { imageRef, serviceLabels, type FleetArgs, type ServiceOutput } from "./fleet";
import { renderHaproxyConfig } from "./proxy";
import {
  JOIN_TOKENS_COMMAND,
  joinToken,
  monitorSeconds,
  pickManagers,
  SWARM_PORTS,
  proxyServiceName,
  swarmInitCommand,
  swarmJoinCommand,
  swarmProxyArgs,
  swarmProxyRoutes,
  swarmServiceArgs,
  staticLeftoversCommand,
  nodePlacement,
  swarmNetworkName,
  swarmObjectResourceName,
} from "./swarm";

/**
 * The stack's swarm security group (EC2 hosts in swarm mode): every host is in it, and it
 * admits the swarm's ports from its own members only (`self`: "the security group itself
 * will be added as a source to this ingress rule", terraform-provider-aws
 * aws_security_group). One group for the whole stack, as the swarm spans every group; its
 * 4 rules add to no host group's own count.
 */
export function swarmSecurityGroup(name: string, args: { stack: string; project: string; region: string }): aws.ec2.SecurityGroup {
  const vpc = aws.ec2.getVpcOutput({ default: true, region: args.region });
  return new aws.ec2.SecurityGroup(name, {
    region: args.region,
    vpcId: vpc.id,
    description: `Dockyard stack ${args.stack}: swarm ports between the hosts of the stack only`,
    ingress: SWARM_PORTS.map((p) => ({ description: `swarm ${p.port}/${p.protocol}: ${p.purpose}`, protocol: p.protocol, fromPort: p.port, toPort: p.port, self: true })),
    tags: { Name: name, "dockyard:stack": args.stack, "dockyard:project": args.project },
  });
}

/** swarmkit api/validation/secrets.go MaxSecretSize (secrets; configs may hold 1000 KiB). */
export const MAX_SECRET_BYTES = 500 * 1024;

/** One host as the swarm sees it. */
export interface SwarmHost {
  /** Host name; unique in the stack. */
  name: string;
  /** Host group. */
  group: string;
  /** Where the host is placed, as far as the program knows before the cloud answers: its ordinal in its group (components/host.ts pickSubnet puts ordinals 1..N in N zones when the VPC has N subnets or more). */
  zone: string;
  /** The address the other hosts reach it at (EC2: its private address). */
  address: pulumi.Input<string>;
  /** How to reach the host (DockerHost's `connection`). */
  connection: HostConnection;
  /** Engine readiness. */
  ready: pulumi.Resource;
  /** Changes whenever the engine readiness ran again (a new machine): the join runs again (a no-op when the kept state rejoined). */
  readyId?: pulumi.Input<string>;
}

/**
 * FleetArgs over every host of the stack, in stack order. `rollout`: in swarm mode a host's
 * turn ends with its init or join (the engine is in the swarm again, and swarm starts its
 * tasks), not with a serving gate on its containers, which would depend on the services,
 * which depend on every host's join: a cycle with the next batch's machines.
 */
export type SwarmFleetArgs = FleetArgs<SwarmHost>;

/** Seconds a proxy service has to converge (its one task: started, then healthy). */
const PROXY_CONVERGE_SECONDS = 150;

/**
 * What runs a service's update gate again: the service's id (a replaced service), its image
 * and its task spec as the provider returned it (anything else that rolls its tasks).
 * pulumi-command marks triggers replaceOnChanges (provider/pkg/provider/common/inputs.go): a
 * change replaces the gate, whose create runs it; a failed gate keeps its old triggers in
 * state, so the next `up` runs it again (components/rollout.ts, the same for serving gates).
 */
function updateGateTriggers(service: docker.Service, image: string): pulumi.Input<unknown>[] {
  // The task spec itself, not a hash of it: `dockyard diff` then compares it like the service's
  // own input, stack names normalized, and two stacks that are the same environment stay equal
  // (a hash of the names inside differs from stack to stack).
  return [service.id, image, service.taskSpec];
}

let gateScript: string | undefined;
/** The update gate's script (components/swarm/update-gate.sh), sent as the command's stdin. */
export function updateGateScript(): string {
  gateScript ??= fs.readFileSync(path.join(__dirname, "swarm", "update-gate.sh"), "utf8");
  return gateScript;
}

/** The update gate's command line on the first manager: bash reads the script from stdin; the service's name and image single-quoted. */
export function updateGateCommand(timeoutSeconds: number, service: string, image: string): string {
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1) throw new Error(`update gate: ${timeoutSeconds} is not a whole number of seconds`);
  for (const v of [service, image]) if (v === "" || v.includes("'")) throw new Error(`update gate: ${JSON.stringify(v)} is not a service name or image reference`);
  return `bash -s -- ${timeoutSeconds} '${service}' '${image}'`;
}

/** What runs a host's command again: another address, or a new machine (its engine readiness ran again). */
const newMachineTriggers = (h: SwarmHost) => [h.connection.target, ...(h.readyId !== undefined ? [h.readyId] : [])];

export class SwarmFleet extends pulumi.ComponentResource {
  /** Service name -> digest, image, replicas and the hosts of its group (stack output `services`); resolves once every service converged. */
  public readonly services: pulumi.Output<Record<string, ServiceOutput>>;
  /** The proxy image every group's proxy service runs, once they converged; undefined without one. */
  public readonly proxyImage: pulumi.Output<string | undefined>;
  /** The managers, the first one first (it made the swarm; Pulumi's Docker provider for the swarm talks to it). */
  public readonly managers: string[];
  /** The Docker provider of the swarm (the first manager's engine). */
  public readonly provider: docker.Provider;

  constructor(name: string, args: SwarmFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:SwarmFleet", name, {}, opts);
    const { stack, hosts, services, logging } = args;
    if (hosts.length === 0) throw new Error(`stack "${stack}": swarm mode needs at least one host`);
    const platform = dockerPlatform(args.architecture);
    this.managers = pickManagers(hosts);
    const first = hosts.find((h) => h.name === this.managers[0])!;

    // The swarm: init on the first manager, the tokens (secret, unlogged), every other host joins.
    const init = new command.local.Command(
      `${name}-${first.name}-init`,
      hostCommandArgs(first.connection, {
        create: pulumi.output(first.address).apply(swarmInitCommand),
        triggers: newMachineTriggers(first),
      }),
      { parent: this, dependsOn: [first.ready] },
    );
    const tokens = new command.local.Command(
      `${name}-join-tokens`,
      { ...hostCommandArgs(first.connection, { create: JOIN_TOKENS_COMMAND, triggers: [init.id] }), logging: "none" },
      { parent: this, dependsOn: [init], additionalSecretOutputs: ["stdout"] },
    );
    const joins = hosts
      .filter((h) => h !== first)
      .map((h) => {
        const role = this.managers.includes(h.name) ? "manager" : "worker";
        return new command.local.Command(
          `${name}-${h.name}-join`,
          hostCommandArgs(h.connection, {
            create: pulumi.all([first.address, h.address]).apply(([m, own]) => swarmJoinCommand(m, own, role)),
            stdin: pulumi.secret(tokens.stdout.apply((out) => `${joinToken(out, role)}\n`)),
            triggers: newMachineTriggers(h),
          }),
          { parent: this, dependsOn: [h.ready, tokens] },
        );
      });
    // Each host's way into the swarm: its init or its join; it ends the host's rollout turn.
    const entered = new Map<string, command.local.Command>([[first.name, init], ...hosts.filter((h) => h !== first).map((h, i) => [h.name, joins[i]] as const)]);
    for (const [host, step] of entered) args.rollout?.gate(host, [step]);
    this.provider = new docker.Provider(`${name}-managers`, dockerProviderArgs(first.connection), { parent: this, dependsOn: [init] });
    const onSwarm = { parent: this, provider: this.provider, dependsOn: [init, ...joins] };

    // Images by digest on every host of their group, pulled by the host's CLI.
    const pulls = (group: string, ref: string, what: string) =>
      hosts
        .filter((h) => h.group === group)
        .map(
          (h) =>
            new command.local.Command(
              `${name}-${h.name}-${what}-pull`,
              hostCommandArgs(h.connection, { create: `docker pull --quiet --platform ${platform} ${ref}`, triggers: newMachineTriggers(h) }),
              { parent: this, dependsOn: [h.ready] },
            ),
        );

    // Per swarm service, once the provider created or updated it: its update gate on the first
    // manager (components/swarm/update-gate.sh says why); the outputs wait for it.
    const gates: Record<string, command.local.Command> = {};
    const updateGate = (service: docker.Service, serviceName: string, image: string, timeoutSeconds: number) =>
      new command.local.Command(
        `${name}-${serviceName}-update-gate`,
        hostCommandArgs(first.connection, {
          create: updateGateCommand(timeoutSeconds, serviceName, image),
          stdin: updateGateScript(),
          triggers: updateGateTriggers(service, image),
        }),
        { parent: this, dependsOn: [service], customTimeouts: { create: `${timeoutSeconds + 60}s`, update: `${timeoutSeconds + 60}s` } },
      );

    const networks: Record<string, docker.Network> = {};
    const made: Record<string, docker.Service> = {};
    for (const svc of services) {
      networks[svc.name] = new docker.Network(
        `${name}-${svc.name}-net`,
        { name: swarmNetworkName(stack, svc.name), driver: "overlay", attachable: false, labels: serviceLabels(stack, svc.name) },
        onSwarm,
      );
      const secrets = Object.entries(svc.secrets).map(([envName, secretName]) => {
        // swarmkit api/validation/secrets.go: "secret data must be larger than 0 and less than 512000 bytes".
        const size = Buffer.byteLength(args.secrets[secretName] ?? "");
        if (size < 1 || size >= MAX_SECRET_BYTES) throw new Error(`stack "${stack}": secret ${secretName} (service ${svc.name}) is ${size} bytes; a swarm secret holds 1 to ${MAX_SECRET_BYTES - 1} bytes`);
        // Auto-named by Pulumi (`<resource>-<random>`): a new value is a new swarm secret
        // (swarm secrets are immutable), created before the service moves to it.
        const secret = new docker.Secret(
          swarmObjectResourceName(`${name}-${svc.name}-${envName.toLowerCase().replace(/_/g, "-")}`),
          { data: pulumi.secret(Buffer.from(args.secrets[secretName] ?? "").toString("base64")), labels: serviceLabels(stack, svc.name) },
          onSwarm,
        );
        return { envName, id: secret.id, name: secret.name };
      });
      const convergeSeconds = svc.replicas * (monitorSeconds(svc) + 60) + 60;
      made[svc.name] = new docker.Service(
        `${name}-${svc.name}`,
        {
          ...swarmServiceArgs(stack, svc, logging, { network: networks[svc.name].id, secrets }),
          // The provider waits until the service converged, and fails the update when swarm
          // rolled it back (resource_docker_service_funcs.go): one task after the other, each
          // started and then watched for its monitor window.
          convergeConfig: { delay: "5s", timeout: `${convergeSeconds}s` },
        },
        // A service's name is unique in the swarm and the provider replaces a service on a
        // new network or sysctls (ForceNew, resource_docker_service.go): the old one must go first.
        { ...onSwarm, deleteBeforeReplace: true, dependsOn: [...onSwarm.dependsOn, networks[svc.name], ...pulls(svc.group, imageRef(svc), svc.name)] },
      );
      gates[svc.name] = updateGate(made[svc.name], svc.name, imageRef(svc), convergeSeconds);
    }

    // On every host, once its group's services converged: what a static fleet of the stack
    // left there (a stack moved in place from static mode), before its group's proxy takes the ports.
    const leftovers = hosts.map(
      (h) =>
        new command.local.Command(
          `${name}-${h.name}-static-leftovers`,
          hostCommandArgs(h.connection, { create: staticLeftoversCommand(stack), triggers: newMachineTriggers(h) }),
          { parent: this, dependsOn: [entered.get(h.name)!, ...services.filter((svc) => svc.group === h.group).flatMap((svc) => [made[svc.name], gates[svc.name]])] },
        ),
    );

    // Per group with published ports: one proxy service per host (swarmProxyArgs says why),
    // each pinned to its host's node, publishing in host mode, and each waiting for the
    // previous host's: a change that replaces them (a new published service's network) takes
    // one host's proxy at a time, while the front door drains that host.
    const proxies: docker.Service[] = [];
    const proxyGates: command.local.Command[] = [];
    const groups = [...new Set(hosts.map((h) => h.group))];
    for (const group of args.proxyImage ? groups : []) {
      const routes = swarmProxyRoutes(services, group);
      if (routes.length === 0) continue;
      const config = new docker.ServiceConfig(
        swarmObjectResourceName(`${name}-proxy-${group}-config`),
        { data: Buffer.from(renderHaproxyConfig(routes)).toString("base64"), labels: serviceLabels(stack, `proxy-${group}`) },
        onSwarm,
      );
      const networkIds = Object.fromEntries(routes.map((r) => [r.service, networks[r.service].id]));
      const pulled = pulls(group, args.proxyImage!, "proxy");
      let previous: { proxy: docker.Service; gate: command.local.Command } | undefined;
      hosts.forEach((h, i) => {
        if (h.group !== group) return;
        const proxy = new docker.Service(
          `${name}-${proxyServiceName(h.name)}`,
          {
            ...swarmProxyArgs(stack, { name: h.name, group, placement: entered.get(h.name)!.stdout.apply(nodePlacement) }, routes, args.proxyImage!, { id: config.id, name: config.name }, networkIds, logging, args.proxy),
            // The provider waits for its one task (replicated mode: resource_docker_service_funcs.go),
            // deletes a new one that never converged, and fails the update swarm rolled back.
            convergeConfig: { delay: "5s", timeout: `${PROXY_CONVERGE_SECONDS}s` },
          },
          {
            ...onSwarm,
            // The group's first proxy was the group's one global service (issue 24 item 18): Pulumi replaces that one (another name, mode: ForceNew) delete-first, which frees the host ports for the others.
            ...(previous === undefined ? { aliases: [{ name: `${name}-proxy-${group}` }] } : {}),
            deleteBeforeReplace: true,
            // The previous host's proxy and its update gate: a host's proxy moves only once the previous one runs the new image.
            dependsOn: [...onSwarm.dependsOn, config, ...routes.map((r) => networks[r.service]), ...pulled, leftovers[i], ...(previous ? [previous.proxy, previous.gate] : [])],
          },
        );
        const gate = updateGate(proxy, proxyServiceName(h.name), args.proxyImage!, PROXY_CONVERGE_SECONDS);
        proxies.push(proxy);
        proxyGates.push(gate);
        previous = { proxy, gate };
      });
    }

    const summary: Record<string, pulumi.Output<ServiceOutput>> = {};
    for (const s of services) {
      const entry: ServiceOutput = { digest: s.digest, image: imageRef(s), replicas: s.replicas, hosts: hosts.filter((h) => h.group === s.group).map((h) => h.name) };
      // Once the service's update gate passed: a rolled-back update rejects it, and the stack keeps its old outputs (components/rollout.ts says how).
      summary[s.name] = pulumi.all([made[s.name].id, gates[s.name].id]).apply(() => entry);
    }
    this.services = pulumi.output(summary);
    const proxyRef = proxies.length > 0 ? args.proxyImage : undefined;
    this.proxyImage = pulumi.all([...proxies.map((p) => p.id), ...proxyGates.map((g) => g.id)]).apply(() => proxyRef);
    this.registerOutputs({ services: this.services, proxyImage: this.proxyImage });
  }
}
