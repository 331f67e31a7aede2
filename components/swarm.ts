/**
 * Swarm mode (environment.yaml `fleet.mode: swarm`, issue 14): the stack's hosts form one
 * Docker Swarm and the engine keeps the declared state: it reschedules a dead host's
 * replicas, rolls updates health-gated and rolls a bad one back by itself.
 *
 * This file holds the pure parts (what runs on a host, what a service's spec is), so the
 * host harness (test/host/swarm.int.test.ts) runs exactly what the program renders, and the
 * component (SwarmFleet, components/swarm-fleet.ts) that declares them.
 *
 * Provider facts this rests on, read in their sources:
 * - dockerd refuses `swarm init`/`join` while live-restore is on (moby
 *   daemon/config/config_linux.go IsSwarmCompatible: "--live-restore daemon configuration is
 *   incompatible with swarm mode"): swarm mode renders it off (swarmDaemonSettings).
 * - A task whose image is referenced by digest and present on the node is not pulled again
 *   (moby daemon/cluster/executor/container/adapter.go pullImage: "Skip pulling if the image is
 *   referenced by digest and already exists locally"). So every host of a service's group
 *   pulls the image itself with the docker CLI and its ECR credential helper (instance role),
 *   as in static mode, and the service carries no registry credential: no token in state.
 * - Placement preferences: kreuzwerker/terraform-provider-docker stringSetToPlacementPrefs
 *   (internal/provider/resource_docker_service_structures.go) passes each `prefs` string as
 *   the SpreadDescriptor, and swarmkit's scheduler (manager/scheduler/nodeset.go) spreads by
 *   `node.labels.<k>` or `engine.labels.<k>`: the zone and group are engine labels
 *   (daemon.json `labels`), known from the node's first heartbeat, with no manager round trip.
 * - With `converge_config`, the provider waits for the update and fails the deployment when
 *   swarm rolled it back ("service rollback completed", resource_docker_service_funcs.go
 *   resourceDockerServiceUpdateRefreshFunc): a bad release stops `pulumi up` loudly while
 *   the previous tasks keep serving.
 */
import * as crypto from "node:crypto";
import type * as docker from "@pulumi/docker";
import { MAX_MANAGERS, type DaemonSettings, type ProxySettings, type ServiceSpec } from "../stacks/schema";
import { PROXY_HEALTH, containerLogging, durationSeconds, imageRef, proxyHealthcheckTests, serviceHealthcheck, serviceLabels, serviceNetworkName, serviceVolumeName, type FleetLogging } from "./fleet";
import { shq } from "./engine";
import { PROXY_CONFIG_PATH, type ProxyRoute } from "./proxy";

/** The ports swarm mode needs between the stack's hosts, and only between them (docs.docker.com/engine/swarm/swarm-tutorial). */
export const SWARM_PORTS: readonly { port: number; protocol: "tcp" | "udp"; purpose: string }[] = [
  { port: 2377, protocol: "tcp", purpose: "cluster management (Raft, joins) to managers" },
  { port: 7946, protocol: "tcp", purpose: "node discovery (gossip)" },
  { port: 7946, protocol: "udp", purpose: "node discovery (gossip)" },
  { port: 4789, protocol: "udp", purpose: "overlay network traffic (VXLAN)" },
];

/** Engine labels every swarm host carries (daemon.json `labels`): placement reads them. */
export const ZONE_LABEL = "dockyard.zone";
export const GROUP_LABEL = "dockyard.group";


/**
 * How many of `hosts` hosts are managers: an odd number (Raft needs a majority), 3 when
 * there are 3 hosts or more, else 1. The schema refuses 1 outside dev and local hosts (a lost manager loses
 * the swarm's control plane).
 */
export function managerCount(hosts: number): number {
  return hosts >= MAX_MANAGERS ? MAX_MANAGERS : Math.min(1, hosts);
}

/**
 * The managers among `hosts` (in stack order, each with its zone): one per zone first, in
 * host order, then the next hosts, until managerCount. The first is the one that inits the
 * swarm and that Pulumi's Docker provider for the swarm talks to.
 */
export function pickManagers(hosts: readonly { name: string; zone: string }[]): string[] {
  const want = managerCount(hosts.length);
  const picked: string[] = [];
  const zones = new Set<string>();
  for (const h of hosts) if (picked.length < want && !zones.has(h.zone)) (picked.push(h.name), zones.add(h.zone));
  for (const h of hosts) if (picked.length < want && !picked.includes(h.name)) picked.push(h.name);
  return picked;
}

/** The daemon settings of a swarm host: live-restore off (dockerd refuses swarm with it on). */
export function swarmDaemonSettings(d: DaemonSettings): DaemonSettings {
  return { ...d, liveRestore: false };
}

/** The engine labels of a swarm host (daemon.json `labels`, `key=value`). */
export function swarmEngineLabels(zone: string, group: string): string[] {
  return [`${ZONE_LABEL}=${zone}`, `${GROUP_LABEL}=${group}`];
}

/**
 * The engine's swarm state once it settled: right after a boot with kept swarm state it is
 * `pending` for a moment while the node reconnects; joining then would fail ("This node is
 * already part of a swarm"); so is an engine that does not answer yet. Waits up to 2 minutes.
 */
const SETTLED_STATE = [
  "for _ in $(seq 60); do",
  // An engine that does not answer yet (dockerd restarting) is waited for too, not a failure.
  `  state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null) || state=unreachable`,
  `  [ "$state" != pending ] && [ "$state" != unreachable ] && break`,
  "  sleep 2",
  "done",
];
/** Active: nothing to do but say which node this is; inactive: go on; anything else (pending too long, error, locked): stop and say so. */
const UNLESS_ACTIVE = [
  `if [ "$state" = active ]; then docker info --format '{{.Swarm.NodeID}}'; exit 0; fi`,
  `if [ "$state" != inactive ]; then echo "the engine's swarm state is $state; expected active or inactive" >&2; exit 1; fi`,
];
/** The managers this node knows (dials), one `<node id> <address:port>` a line (moby daemon/cluster/swarm.go Info: swarmNode.Remotes()). */
const REMOTE_MANAGERS = `docker info --format '{{range .Swarm.RemoteManagers}}{{.NodeID}} {{.Addr}}{{"\\n"}}{{end}}'`;
/** The last line of init and join: this node's id (the stdout the host's proxy service is pinned by: swarmProxyArgs). */
const PRINT_NODE_ID = `docker info --format '{{.Swarm.NodeID}}'`;

/**
 * A replaced machine keeps its data volume, and on it the swarm state with the address it
 * advertised (moby daemon/cluster/noderunner.go loadPersistentState reads AdvertiseAddr back
 * from docker-state.json), while the new machine has another private address: the swarm
 * would go on sending gossip, overlay traffic and Raft to a dead address. When the kept
 * state's NodeAddr is not this host's address: note the old node id in `old`, run
 * `beforeLeave`, and leave (`--force`: a manager's leave without it is refused; moby
 * daemon/cluster/swarm.go Leave stops the node and drops its local state, but the other
 * managers keep its Raft membership), so the caller joins again with the right address and
 * then removes the old node (REMOVE_OLD_NODE).
 */
function leaveIfMoved(advertiseAddr: string, beforeLeave: string[] = []): string[] {
  return [
    "old=''",
    `if [ "$state" != inactive ] && [ "$state" != unreachable ]; then`,
    `  addr=$(docker info --format '{{.Swarm.NodeAddr}}' 2>/dev/null) || addr=''`,
    `  if [ -n "$addr" ] && [ "$addr" != ${advertiseAddr} ]; then`,
    `    old=$(docker info --format '{{.Swarm.NodeID}}')`,
    `    echo "the kept swarm state advertises $addr, a former address of this host (now ${advertiseAddr})" >&2`,
    ...beforeLeave.map((l) => `    ${l}`),
    `    echo "node $old leaves the swarm to join again" >&2`,
    "    docker swarm leave --force >/dev/null",
    "    state=inactive",
    "  fi",
    "fi",
  ];
}

/**
 * After a moved host joined again as a manager: its former node is demoted, which removes
 * its Raft member (swarmkit manager/role_manager.go: a demoted manager is removed from the
 * Raft cluster, raft.go CanRemoveMember checks the quorum), then removed (controlapi/node.go
 * RemoveNode refuses a manager). Left in, every replaced manager adds an unreachable Raft
 * member: with 3 managers, the second replacement would leave 2 of 4 members reachable, no
 * quorum. Right after the join the node may not be a reachable manager yet (ControlAvailable
 * is moby's IsActiveManager: the control socket swarmkit opens once its manager runs,
 * daemon/cluster/noderunner.go handleControlSocketChange): it waits for that, up to 2
 * minutes, and retries the removal for a minute; if either never comes, it fails saying what
 * is left to do (a later run would not find the former node again: the kept state is gone).
 * A worker's former node stays listed as down (a worker cannot remove nodes); the swarm
 * schedules nothing on it.
 */
const REMOVE_OLD_NODE = [
  `if [ -n "$old" ]; then`,
  `  left="the former node $old is still in the swarm (a manager's is an unreachable Raft member: one more lost manager of 3 loses quorum); on a manager run: docker node demote $old && docker node rm --force $old"`,
  "  control=''",
  "  for _ in $(seq 60); do",
  `    if [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ]; then control=yes; break; fi`,
  "    sleep 2",
  "  done",
  `  if [ -z "$control" ]; then echo "this node joined again but is not a reachable manager after 2 minutes; $left" >&2; exit 1; fi`,
  "  removed=''",
  "  for _ in $(seq 20); do",
  `    docker node demote "$old" >/dev/null 2>&1 || true`,
  `    if docker node rm --force "$old" >/dev/null 2>&1; then removed=yes; echo "removed the former node $old" >&2; break; fi`,
  "    sleep 3",
  "  done",
  `  if [ -z "$removed" ]; then echo "could not remove it in a minute; $left" >&2; exit 1; fi`,
  "fi",
];

/**
 * Before the first manager leaves: whether it is the swarm's only manager, asked of the
 * control plane, which fails loudly when it cannot answer (moby daemon/cluster/nodes.go
 * GetNodes: lockedManagerAction refuses without an active manager; swarmkit
 * api/control.pb.go raftProxyControlServer.ListNodes forwards to the leader, raft.go
 * LeaderConn: ErrNoClusterLeader or errLostQuorum). Not `docker info`'s Managers: moby
 * daemon/cluster/swarm.go Info counts them only when the node is an active manager and
 * ListNodes answers, else leaves 0 (the error in Swarm.Error) and still succeeds: a first
 * manager of 3 back at a new address without a leader would read 0 and fork the swarm from
 * stale Raft data with `init --force-new-cluster`. `{{.ID}}` is the bare id (docker/cli
 * cli/command/node/formatter.go: the self marker is `.Self`). Alone (it lists only itself): makes the
 * swarm anew at the new address. Not answering for a minute: stops, saying why and what the
 * operator does. Else: takes the manager token while it still is one, and another manager's
 * address (one of its RemoteManagers) to join again through.
 */
function aloneOrPeer(listen: string, advertiseAddr: string): string[] {
  return [
    "listed=''",
    "for _ in $(seq 30); do",
    `  if managers=$(docker node ls --filter role=manager --format '{{.ID}}' 2>&1); then listed=yes; break; fi`,
    "  sleep 2",
    "done",
    `if [ -z "$listed" ]; then`,
    `  echo "node $old cannot tell whether other managers remain: the swarm's control plane does not answer here (docker node ls: $managers). It does not make a new swarm from its kept state: with other managers alive that would split the swarm. Bring back enough managers for a leader and run the update again; only if every other manager is lost for good, run on this host: docker swarm init --force-new-cluster --advertise-addr ${advertiseAddr}" >&2`,
    "  exit 1",
    "fi",
    `if [ "$managers" = "$old" ]; then`,
    `  echo "node $old is the swarm's only manager: it makes the swarm anew from its kept state at ${advertiseAddr} (init --force-new-cluster)" >&2`,
    `  docker swarm init --force-new-cluster ${listen} >/dev/null`,
    `  ${PRINT_NODE_ID}`,
    "  exit 0",
    "fi",
    "managerToken=$(docker swarm join-token -q manager)",
    `peer=$(${REMOTE_MANAGERS} | awk -v self="$old" '$1 != self && $2 != "" { print $2; exit }')`,
    `if [ -z "$peer" ]; then echo "no other manager to join again through" >&2; exit 1; fi`,
  ];
}

/**
 * Run on the first manager: makes the swarm, unless this engine is in one already (a
 * replaced host keeps its swarm state on its data volume, under the data-root). A replaced
 * first manager with a new address (leaveIfMoved): alone in the swarm, it makes the swarm
 * anew from its kept state with the new address (`init --force-new-cluster`: services,
 * secrets and configs kept; moby daemon/cluster/swarm.go Init stops the running node first);
 * with other managers, it leaves, joins again through another manager, then removes its
 * former node; when it cannot tell, it stops (aloneOrPeer). Prints the node id.
 */
export function swarmInitCommand(advertiseAddr: string): string {
  const listen = `--advertise-addr ${advertiseAddr} --listen-addr 0.0.0.0:2377`;
  return [
    "set -eu",
    ...SETTLED_STATE,
    ...leaveIfMoved(advertiseAddr, aloneOrPeer(listen, advertiseAddr)),
    `if [ -n "$old" ]; then`,
    `  docker swarm join --token "$managerToken" --advertise-addr ${advertiseAddr} "$peer" >/dev/null`,
    ...REMOVE_OLD_NODE.map((l) => `  ${l}`),
    `  ${PRINT_NODE_ID}`,
    "  exit 0",
    "fi",
    ...UNLESS_ACTIVE,
    `docker swarm init ${listen} >/dev/null`,
    PRINT_NODE_ID,
  ].join("\n");
}

/**
 * Run on the first manager: prints the worker's join token, then the manager's, one per
 * line. Its stdout is a Pulumi secret and is not logged (the Command's
 * additionalSecretOutputs and `logging: none`).
 */
export const JOIN_TOKENS_COMMAND = "set -eu\ndocker swarm join-token -q worker\ndocker swarm join-token -q manager";

/**
 * The overlay network of a service in swarm mode. Not the static fleet's bridge network name
 * (fleet.ts serviceNetworkName: service names have no `_`, so the two never meet): a host moved
 * in place from static mode still has that network until its static leftovers are removed,
 * and dockerd refuses a second network of one name, on the manager that creates the overlay
 * and on each node a task attaches to it (moby libnetwork controller.go NewNetwork:
 * NetworkNameError; API postNetworkCreate validates with the local controller first).
 */
export function swarmNetworkName(stack: string, service: string): string {
  return `${fitName(serviceNetworkName(stack, service), MAX_SWARM_NAME - "_swarm".length)}_swarm`;
}

/** swarmkit controlapi/common.go validateAnnotations: a network's or service's name is a DNS name component (isValidDNSName) of 63 characters or fewer. */
export const MAX_SWARM_NAME = 63;
/** swarmkit controlapi/common.go validateConfigOrSecretAnnotations: a secret's or config's name has 64 characters or fewer (of [a-zA-Z0-9-_.]). */
export const MAX_SWARM_OBJECT_NAME = 64;
/** What Pulumi's autonaming adds to a resource name: "-" and 7 random characters (pulumi-docker resources.go SetAutonaming(255, "-"), the bridge's default random length). */
export const AUTONAME_SUFFIX = 8;

/** `text`, or when longer than `max`: its start and "-" and 8 hex of its sha256, `max` characters in all (distinct texts stay distinct). */
export function fitName(text: string, max: number): string {
  if (text.length <= max) return text;
  const hash = crypto.createHash("sha256").update(text).digest("hex").slice(0, 8);
  return `${text.slice(0, max - hash.length - 1)}-${hash}`;
}

/** The resource name of a swarm secret or config: Pulumi autonames it (a new value is a new object), and the autoname must fit swarm's 64 characters. */
export function swarmObjectResourceName(name: string): string {
  return fitName(name, MAX_SWARM_OBJECT_NAME - AUTONAME_SUFFIX);
}

/**
 * Run on every host once its group's services converged, before its group's proxy service:
 * removes what a static fleet of the stack left there. A stack moved in place from `fleet.mode:
 * static` keeps its data volumes, so each new machine's dockerd starts the static replicas
 * and proxy again (restart policy), and the static proxy's ports are the ones the swarm's
 * proxy publishes: its global service would never converge, and Pulumi deletes the static
 * containers only at the end of the update. Removes the stack's containers that swarm did not
 * start (no com.docker.swarm.task.id label), then the stack's local-scope networks; prints
 * what it removed; does nothing on a host that has none. Pulumi's later deletes of those
 * containers and networks find them gone, which the provider accepts (kreuzwerker
 * resource_docker_container_funcs.go ignores "No such container"; the network's delete
 * treats a network it cannot inspect as removed). Named volumes stay (the swarm's tasks
 * mount the same ones: serviceVolumeName).
 */
export function staticLeftoversCommand(stack: string): string {
  return [
    "set -eu",
    `stack=${shq(stack)}`,
    `for id in $(docker ps -aq --filter "label=dockyard.stack=$stack"); do`,
    `  task=$(docker inspect -f '{{index .Config.Labels "com.docker.swarm.task.id"}}' "$id")`,
    `  if [ -n "$task" ]; then continue; fi`,
    `  docker rm -f "$id" >/dev/null`,
    `  echo "removed container $id (left by the static fleet)"`,
    "done",
    `for id in $(docker network ls -q --filter "label=dockyard.stack=$stack" --filter scope=local); do`,
    `  docker network rm "$id" >/dev/null`,
    `  echo "removed network $id (left by the static fleet)"`,
    "done",
  ].join("\n");
}

/**
 * A worker whose own address did not move but whose kept managers do not include the first
 * manager's address: a single manager replaced made the swarm anew at its new address
 * (swarmInitCommand), and the worker dials the managers kept in its state.json (swarmkit
 * node/node.go newPersistentRemotes) at their former address, for ever. A connected worker's
 * list is the managers its session reports (agent/agent.go handleSessionMessage observes
 * them and prunes the rest), so it waits a minute for the address to appear (a manager that
 * just joined again is reported soon), then leaves to join again. Active or still pending
 * (a rebooted worker that reaches no manager stays pending: moby noderunner.go State).
 */
function leaveIfManagersMoved(managerAddr: string): string[] {
  return [
    `if [ "$state" = active ] || [ "$state" = pending ]; then`,
    "  known=''",
    "  for _ in $(seq 30); do",
    `    remotes=$(${REMOTE_MANAGERS})`,
    `    if printf '%s\\n' "$remotes" | awk -v want=${managerAddr}:2377 '$2 == want { found = 1 } END { exit !found }'; then known=yes; break; fi`,
    "    sleep 2",
    "  done",
    `  if [ -z "$known" ]; then`,
    `    echo "this worker's swarm state knows its managers at $(printf '%s' "$remotes" | awk '{ print $2 }' | paste -sd ' ' -), not the first manager's address ${managerAddr}:2377 (a replaced single manager made the swarm anew there): node $(docker info --format '{{.Swarm.NodeID}}') leaves the swarm to join again" >&2`,
    "    docker swarm leave --force >/dev/null",
    "    state=inactive",
    "  fi",
    "fi",
  ];
}

/**
 * Run on a host that joins as `role`: the token comes on stdin (a secret input: never on a
 * command line Pulumi logs, never in user-data). Nothing to do when the engine is in the swarm
 * already (a rebooted or re-attached host rejoins by itself with its kept state), unless that
 * state advertises a former address (a replaced machine, leaveIfMoved) or, on a worker, knows
 * the managers only at former addresses (leaveIfManagersMoved): then it leaves, joins again
 * with its own address and, as a manager, removes its former node (REMOVE_OLD_NODE).
 * Prints the node id.
 */
export function swarmJoinCommand(managerAddr: string, advertiseAddr: string, role: "manager" | "worker"): string {
  return [
    "set -eu",
    ...SETTLED_STATE,
    ...leaveIfMoved(advertiseAddr),
    ...(role === "worker" ? leaveIfManagersMoved(managerAddr) : []),
    ...UNLESS_ACTIVE,
    "IFS= read -r token || true",
    `case "$token" in SWMTKN-1-*) ;; *) echo "no swarm join token on stdin (the first manager's join-tokens command answered none)" >&2; exit 1 ;; esac`,
    `docker swarm join --token "$token" --advertise-addr ${advertiseAddr} ${managerAddr}:2377 >/dev/null`,
    ...(role === "manager" ? REMOVE_OLD_NODE : []),
    PRINT_NODE_ID,
  ].join("\n");
}

/** The node id a host's init or join printed: its last line (under a render: the unknown value as it is). */
export function nodeIdOf(stdout: string): string {
  return stdout.trim().split("\n").pop()!.trim();
}

/**
 * The join token of a role from JOIN_TOKENS_COMMAND's stdout (its line; the join command
 * checks its shape on the host, so a render, where the answer is not known yet, never fails here).
 */
export function joinToken(stdout: string, role: "worker" | "manager"): string {
  return (stdout.trim().split("\n")[role === "worker" ? 0 : 1] ?? "").trim();
}

/** Swarm's update policy for a service's replicas: start-first, one at a time, rolled back on failure. */
export function replicaUpdateConfig(svc: Pick<ServiceSpec, "health">): docker.types.input.ServiceUpdateConfig {
  return {
    parallelism: 1,
    order: "start-first",
    failureAction: "rollback",
    // A new task must stay healthy this long before the next one starts: enough for its
    // health check to fail `retries` times.
    monitor: `${monitorSeconds(svc)}s`,
    maxFailureRatio: "0",
    delay: "0s",
  };
}

/** Swarm's policy for rolling a service back: the same order, all at once is not needed. */
export function replicaRollbackConfig(svc: Pick<ServiceSpec, "health">): docker.types.input.ServiceRollbackConfig {
  return { parallelism: 1, order: "start-first", failureAction: "pause", monitor: `${monitorSeconds(svc)}s`, maxFailureRatio: "0", delay: "0s" };
}

/** Seconds a task must stay healthy: its start period plus retries failed checks, and a margin. */
export function monitorSeconds(svc: Pick<ServiceSpec, "health">): number {
  const h = svc.health;
  return Math.ceil(durationSeconds(h.startPeriod) + (h.retries + 1) * (durationSeconds(h.interval) + durationSeconds(h.timeout)));
}

/** The name of a swarm secret: its service, its name and a hash of the value (swarm secrets are immutable). */
export function swarmSecretName(stack: string, service: string, secret: string, value: string): string {
  return `${stack}-${service}-${secret}-${crypto.createHash("sha256").update(value).digest("hex").slice(0, 12)}`;
}

/** Where a service's secret is mounted, and the env var that names the file (`<NAME>_FILE`). */
export function secretFile(envName: string): string {
  return `/run/secrets/${envName}`;
}

/** What a service's spec takes from resources: its network's id and its secrets' ids by env name. */
export interface SwarmServiceInputs {
  /** The network's id: the provider's `name` attribute is deprecated and forces a replacement on every update (resource_docker_service.go networks_advanced). */
  network: docker.types.input.ServiceTaskSpecNetworksAdvanced["id"];
  secrets: { envName: string; id: docker.types.input.ServiceTaskSpecContainerSpecSecret["secretId"]; name: docker.types.input.ServiceTaskSpecContainerSpecSecret["secretName"] }[];
}

/**
 * A service as a swarm service: its replicas spread over the zones of its group's hosts,
 * the same limits, user, read-only root, capabilities, health check and logs as a static
 * replica, start-first updates rolled back on failure, reached by DNS round robin
 * (`tasks.<name>`: no virtual IP, so no IPVS).
 */
export function swarmServiceArgs(stack: string, svc: ServiceSpec, logging: FleetLogging, r: SwarmServiceInputs): docker.ServiceArgs {
  const { logDriver, logOpts } = containerLogging(logging);
  // The secret files belong to the service's user, readable by it only, when that user is
  // numeric (swarm takes file owners as numbers); else root's, readable by all in the task.
  const [uid, gid] = (svc.user ?? "").split(":");
  const numeric = /^[0-9]+$/.test(uid ?? "") && (gid === undefined || /^[0-9]+$/.test(gid));
  const owner = numeric ? { fileUid: uid, fileGid: gid ?? "0", fileMode: 0o400 } : { fileUid: "0", fileGid: "0", fileMode: 0o444 };
  return {
    name: svc.name,
    labels: serviceLabels(stack, svc.name),
    mode: { replicated: { replicas: svc.replicas } },
    taskSpec: {
      containerSpec: {
        image: imageRef(svc),
        env: { ...svc.env, ...Object.fromEntries(r.secrets.map((s) => [`${s.envName}_FILE`, secretFile(s.envName)])) },
        user: svc.user,
        readOnly: svc.readOnlyRootFilesystem,
        capDrops: ["ALL"],
        healthcheck: serviceHealthcheck(svc),
        mounts: [
          ...Object.entries(svc.volumes).map(([vol, target]) => ({ type: "volume", source: serviceVolumeName(stack, svc.name, vol), target })),
          ...(svc.readOnlyRootFilesystem ? [{ type: "tmpfs", target: "/tmp", tmpfsOptions: { sizeBytes: 64 * 1024 * 1024, mode: 0o1777 } }] : []),
        ],
        secrets: r.secrets.map((s) => ({ secretId: s.id, secretName: s.name, fileName: secretFile(s.envName), ...owner })),
        stopGracePeriod: "10s",
      },
      resources: { limits: { memoryBytes: svc.memoryMb * 1024 * 1024, nanoCpus: Math.round(svc.cpus * 1e9) } },
      restartPolicy: { condition: "any", delay: "2s" },
      placement: { constraints: [`engine.labels.${GROUP_LABEL}==${svc.group}`], prefs: [`engine.labels.${ZONE_LABEL}`] },
      logDriver: { name: logDriver, options: logOpts },
      networksAdvanceds: [{ id: r.network, aliases: [svc.name] }],
    },
    updateConfig: replicaUpdateConfig(svc),
    rollbackConfig: replicaRollbackConfig(svc),
    endpointSpec: { mode: "dnsrr" },
  };
}

/** The proxy routes of a group in swarm mode: every published service of the group, found through `tasks.<service>`. */
export function swarmProxyRoutes(services: readonly ServiceSpec[], group: string): ProxyRoute[] {
  return services
    .filter((s) => s.group === group && s.publishPort !== undefined)
    .map((s) => ({ service: s.name, address: `tasks.${s.name}`, publishPort: s.publishPort!, containerPort: s.containerPort, healthPath: s.health.path, replicas: s.replicas }));
}

/** The name of a host's proxy service (a DNS name component of 63 characters or fewer). */
export function proxyServiceName(host: string): string {
  return fitName(`proxy-${host}`, MAX_SWARM_NAME);
}

/** The placement that pins a task to one node (swarmkit constraint `node.id`), from the node id init or join printed. */
export function nodePlacement(stdout: string): string[] {
  return [`node.id==${nodeIdOf(stdout)}`];
}

/**
 * The proxy of one host: a service of one task pinned to the host's node, publishing the
 * group's ports in host mode (no ingress routing mesh, no IPVS), its configuration a swarm
 * config; one such service per host of the group, not one global service, because
 * - the provider waits for a service to converge only in replicated mode: `mode.0.global`
 *   ConflictsWith `converge_config` (resource_docker_service.go), and its waiter needs a
 *   replica count (resource_docker_service_funcs.go replicatedConsoleLogUpdater.update: "no
 *   replica count"); without the wait, `pulumi up` goes on while no proxy serves;
 * - a new published service adds a network, and `networks_advanced` is ForceNew: the proxy
 *   is replaced, delete-first (its name is unique in the swarm, and a host port binds once,
 *   so a new one could not start beside it). One global service would be deleted on every
 *   host at once; one service per host, each waiting for the previous host's (SwarmFleet),
 *   is replaced one host at a time while the front door drains that host.
 * Host ports cannot be bound twice, so it updates stop-first.
 */
export function swarmProxyArgs(
  stack: string,
  host: { name: string; group: string; placement: docker.types.input.ServiceTaskSpecPlacement["constraints"] },
  routes: readonly ProxyRoute[],
  image: string,
  config: { id: docker.types.input.ServiceTaskSpecContainerSpecConfig["configId"]; name: docker.types.input.ServiceTaskSpecContainerSpecConfig["configName"] },
  networks: Record<string, docker.types.input.ServiceTaskSpecNetworksAdvanced["id"]>,
  logging: FleetLogging,
  settings: ProxySettings,
): docker.ServiceArgs {
  const { logDriver, logOpts } = containerLogging(logging);
  const [uid, gid] = settings.user.split(":");
  return {
    name: proxyServiceName(host.name),
    labels: [...serviceLabels(stack, proxyServiceName(host.name)), { label: GROUP_LABEL, value: host.group }],
    mode: { replicated: { replicas: 1 } },
    taskSpec: {
      containerSpec: {
        image,
        user: settings.user,
        readOnly: true,
        capDrops: ["ALL"],
        sysctl: { "net.ipv4.ip_unprivileged_port_start": "0" },
        configs: [{ configId: config.id, configName: config.name, fileName: PROXY_CONFIG_PATH, fileUid: uid, fileGid: gid ?? "0", fileMode: 0o444 }],
        mounts: [{ type: "tmpfs", target: "/tmp", tmpfsOptions: { sizeBytes: 16 * 1024 * 1024, mode: 0o1777 } }],
        healthcheck: { tests: proxyHealthcheckTests(), ...PROXY_HEALTH },
        stopGracePeriod: "10s",
      },
      resources: { limits: { memoryBytes: settings.memoryMb * 1024 * 1024, nanoCpus: Math.round(settings.cpus * 1e9) } },
      restartPolicy: { condition: "any", delay: "2s" },
      placement: { constraints: host.placement },
      logDriver: { name: logDriver, options: logOpts },
      networksAdvanceds: routes.map((r) => ({ id: networks[r.service] })),
    },
    updateConfig: { parallelism: 1, order: "stop-first", failureAction: "rollback", monitor: "20s", maxFailureRatio: "0", delay: "10s" },
    rollbackConfig: { parallelism: 1, order: "stop-first", failureAction: "pause", monitor: "20s", maxFailureRatio: "0", delay: "10s" },
    endpointSpec: { mode: "dnsrr", ports: routes.map((r) => ({ targetPort: r.publishPort, publishedPort: r.publishPort, publishMode: "host", protocol: "tcp" })) },
  };
}
