/**
 * Swarm mode (issue 14), without a swarm: the pure parts of components/swarm.ts, the shell
 * of the init and join commands run by bash against a stand-in `docker` that plays the
 * engine's swarm states, the schema's rules, and the whole program rendered in swarm mode.
 * What this does not prove: that Docker accepts these specs and forms the swarm; the host
 * harness does (test/host/swarm.int.test.ts), and the contract rule `swarm` holds the
 * provider's and dockerd's rules over the render (test/contracts).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";
import * as YAML from "yaml";
import { describe, expect, it } from "vitest";
import { DAEMON_JSON, ENV_PATH, renderDaemonJson } from "../../components/engine";
import { renderHaproxyConfig } from "../../components/proxy";
import {
  JOIN_TOKENS_COMMAND,
  joinToken,
  managerCount,
  monitorSeconds,
  pickManagers,
  swarmDaemonSettings,
  swarmEngineLabels,
  swarmInitCommand,
  swarmJoinCommand,
  swarmProxyArgs,
  swarmProxyRoutes,
  swarmServiceArgs,
  staticLeftoversCommand,
  swarmNetworkName,
  swarmObjectResourceName,
  fitName,
  nodeIdOf,
  nodePlacement,
  proxyServiceName,
} from "../../components/swarm";
import { ConfigError, loadStackSpec, parseEnvironment, readEnvironmentFile, readStackFile, type ServiceSpec } from "../../stacks";
import { isSecretValue, renderStack } from "../../scripts/lib/render";
import { serviceNetworkName } from "../../components/fleet";
import { writeSwarmStack } from "../contracts/stacks";

const spec = loadStackSpec("prod");
const web = spec.services.find((s) => s.name === "web")!;
const logging = spec.engine.daemon;

describe("managers", () => {
  it("are an odd number: 3 from 3 hosts on, else 1", () => {
    expect([1, 2, 3, 4, 10].map(managerCount)).toEqual([1, 1, 3, 3, 3]);
  });
  it("are one per zone first, in host order, then the next hosts", () => {
    const hosts = [
      { name: "a1", zone: "1" },
      { name: "a2", zone: "2" },
      { name: "b1", zone: "1" },
      { name: "b2", zone: "2" },
    ];
    expect(pickManagers(hosts)).toEqual(["a1", "a2", "b1"]);
    expect(pickManagers([...hosts, { name: "c3", zone: "3" }])).toEqual(["a1", "a2", "c3"]);
    expect(pickManagers(hosts.slice(0, 2))).toEqual(["a1"]);
  });
});

describe("the engine in swarm mode", () => {
  it("has live-restore off and every other daemon setting as the environment says", () => {
    const d = swarmDaemonSettings(spec.engine.daemon);
    expect(d.liveRestore).toBe(false);
    expect({ ...d, liveRestore: spec.engine.daemon.liveRestore }).toEqual(spec.engine.daemon);
  });
  it("carries its zone and group as engine labels in daemon.json", () => {
    const json = renderDaemonJson({ ...spec.engine, daemon: swarmDaemonSettings(spec.engine.daemon) }, "/data", swarmEngineLabels("eu-west-1b", "app"));
    expect(json.labels).toEqual(["dockyard.zone=eu-west-1b", "dockyard.group=app"]);
    expect(json["live-restore"]).toBe(false);
    expect(renderDaemonJson(spec.engine, "/data")).not.toHaveProperty("labels");
  });
});

/**
 * Runs a rendered command with bash against a stand-in docker (fixtures/swarm-engine-standin.sh):
 * `docker info` answers the node state from a script of states (one per LocalNodeState query;
 * "down": the engine does not answer), and other `--format` queries from `info` (by the field
 * asked; several lines: one per query, then the last again); `remote` is the RemoteManagers
 * listing; `files` are further answers (node-ls, node-ls-error). Every other docker call
 * succeeds silently, and is recorded.
 */
const STANDIN = path.join(__dirname, "fixtures", "swarm-engine-standin.sh");
function runWithDocker(
  script: string,
  states: string[],
  stdin = "",
  info: Record<string, string> = {},
  files: Record<string, string> = {},
): { code: number; stdout: string; stderr: string; calls: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-swarm-cmd-"));
  try {
    for (const [k, v] of Object.entries({ NodeID: "node-new", ...info, LocalNodeState: states.join("\n") })) fs.writeFileSync(path.join(dir, `info-${k}`), v + "\n");
    for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, k), v + "\n");
    fs.writeFileSync(path.join(dir, "docker"), fs.readFileSync(STANDIN, "utf8"), { mode: 0o755 });
    // `sleep` is stubbed too: the pending loop must not take real seconds here.
    fs.writeFileSync(path.join(dir, "sleep"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const r = spawnSync("bash", ["-c", script], { input: stdin, env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, STANDIN_DIR: dir }, encoding: "utf8" });
    const calls = fs.existsSync(path.join(dir, "calls")) ? fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n") : [];
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, calls };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("init and join, as bash runs them", () => {
  const token = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx";
  it("init makes the swarm once: an engine already active is left alone", () => {
    const fresh = runWithDocker(swarmInitCommand("10.0.0.5"), ["inactive"]);
    expect(fresh.code).toBe(0);
    expect(fresh.calls).toContain("swarm init --advertise-addr 10.0.0.5 --listen-addr 0.0.0.0:2377");
    const again = runWithDocker(swarmInitCommand("10.0.0.5"), ["active"]);
    expect(again.code).toBe(0);
    expect(again.calls.filter((c) => c.startsWith("swarm"))).toEqual([]);
  });
  it("join reads the token from stdin, never from its command line, and joins as told", () => {
    const script = swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager");
    expect(script).not.toMatch(/SWMTKN-1-[0-9a-z]{10}/);
    const r = runWithDocker(script, ["inactive"], `${token}\n`);
    expect(r.code).toBe(0);
    expect(r.calls).toContain(`swarm join --token ${token} --advertise-addr 10.0.1.7 10.0.0.5:2377`);
  });
  it("join waits while a rebooted engine is still pending, then leaves the rejoined one alone", () => {
    const r = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["pending", "pending", "active"], `${token}\n`);
    expect(r.code).toBe(0);
    expect(r.calls.filter((c) => c === "info --format {{.Swarm.LocalNodeState}}")).toHaveLength(3);
    expect(r.calls.filter((c) => c.startsWith("swarm"))).toEqual([]);
  });
  it("init and join wait for an engine that does not answer yet", () => {
    const r = runWithDocker(swarmInitCommand("10.0.0.5"), ["down", "down", "inactive"]);
    expect(r.code).toBe(0);
    expect(r.calls).toContain("swarm init --advertise-addr 10.0.0.5 --listen-addr 0.0.0.0:2377");
    const j = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["down", "active"], `${token}\n`);
    expect(j.code).toBe(0);
    expect(j.calls.filter((c) => c.startsWith("swarm"))).toEqual([]);
  });
  it("join stops, saying why, on an engine in error or without a token", () => {
    const bad = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["error"], `${token}\n`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/swarm state is error; expected active or inactive/);
    const none = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["inactive"], "\n");
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no swarm join token on stdin/);
    expect(none.calls.filter((c) => c.startsWith("swarm"))).toEqual([]);
  });
  it("init and join print the node's id last (the host's proxy is pinned by it), fresh or already active", () => {
    expect(runWithDocker(swarmInitCommand("10.0.0.5"), ["inactive"], "", { NodeID: "n1" }).stdout).toBe("n1\n");
    expect(runWithDocker(swarmInitCommand("10.0.0.5"), ["active"], "", { NodeID: "n1", NodeAddr: "10.0.0.5" }).stdout).toBe("n1\n");
    expect(nodeIdOf(runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["inactive"], `${token}\n`, { NodeID: "n2" }).stdout)).toBe("node-joined");
    expect(nodePlacement("warning\nabc123\n")).toEqual(["node.id==abc123"]);
  });
  // Issue 24 item 7: a replaced machine keeps the swarm state (moby daemon/cluster/noderunner.go
  // loadPersistentState: the advertise address is read back from it) but has a new address.
  describe("a replaced machine: kept swarm state that advertises a former address", () => {
    const moved = { NodeAddr: "10.0.9.9", NodeID: "node-old" };
    const swarmCalls = (calls: string[]) => calls.filter((c) => /^(swarm|node) /.test(c));
    it("a worker leaves and joins again with its own address (it cannot remove its former node)", () => {
      const r = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "worker"), ["active"], `${token}\n`, { ...moved, ControlAvailable: "false" });
      expect(r.code, r.stderr).toBe(0);
      expect(swarmCalls(r.calls)).toEqual(["swarm leave --force", `swarm join --token ${token} --advertise-addr 10.0.1.7 10.0.0.5:2377`]);
      expect(r.stderr).toMatch(/advertises 10\.0\.9\.9, a former address of this host \(now 10\.0\.1\.7\)\nnode node-old leaves the swarm to join again/);
      expect(r.stdout).toBe("node-joined\n");
    });
    it("a manager joins again, then demotes and removes its former node (its Raft member: else the second replacement of 3 loses quorum)", () => {
      const r = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["active"], `${token}\n`, { ...moved, ControlAvailable: "true" });
      expect(r.code, r.stderr).toBe(0);
      expect(swarmCalls(r.calls)).toEqual(["swarm leave --force", `swarm join --token ${token} --advertise-addr 10.0.1.7 10.0.0.5:2377`, "node demote node-old", "node rm --force node-old"]);
    });
    it("a pending manager (its kept Raft peers unreachable at the state's address) is handled the same once settled", () => {
      const r = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["pending", "error"], `${token}\n`, { ...moved, ControlAvailable: "true" });
      expect(r.code, r.stderr).toBe(0);
      expect(swarmCalls(r.calls)[0]).toBe("swarm leave --force");
    });
    it("the first manager, with other managers: takes the manager token, leaves, joins through another manager, removes its former node; no new swarm", () => {
      const remote = "node-old 10.0.9.9:2377\nnode-b 10.0.1.7:2377\nnode-c 10.0.2.8:2377";
      const r = runWithDocker(swarmInitCommand("10.0.0.5"), ["active"], "", { ...moved, Managers: "3", ControlAvailable: "true", remote }, { "node-ls": "node-old\nnode-b\nnode-c" });
      expect(r.code, r.stderr).toBe(0);
      expect(swarmCalls(r.calls)).toEqual([
        "node ls --filter role=manager --format {{.ID}}",
        "swarm join-token -q manager",
        "swarm leave --force",
        "swarm join --token SWMTKN-1-manager-token --advertise-addr 10.0.0.5 10.0.1.7:2377",
        "node demote node-old",
        "node rm --force node-old",
      ]);
      expect(r.stdout).toBe("node-joined\n");
    });
    it("the first manager alone (the control plane lists it as the only manager): makes the swarm anew from its kept state with the new address (init --force-new-cluster)", () => {
      const r = runWithDocker(swarmInitCommand("10.0.0.5"), ["active"], "", { ...moved, Managers: "1" }, { "node-ls": "node-old" });
      expect(r.code, r.stderr).toBe(0);
      expect(swarmCalls(r.calls)).toEqual(["node ls --filter role=manager --format {{.ID}}", "swarm init --force-new-cluster --advertise-addr 10.0.0.5 --listen-addr 0.0.0.0:2377"]);
    });
    // moby daemon/cluster/swarm.go Info: Managers is counted only when the node is an active
    // manager and ListNodes answers; else it stays 0, the error goes to Swarm.Error and
    // `docker info` still succeeds. A first manager of 3 back at a new address, with no leader,
    // reads Managers 0: it must not take that for "alone" and fork the swarm from stale Raft data.
    // `docker node ls` fails instead (nodes.go GetNodes: lockedManagerAction; swarmkit
    // api/control.pb.go raftProxyControlServer.ListNodes: LeaderConn, raft.go ErrNoClusterLeader / errLostQuorum).
    it("the first manager whose control plane does not answer (no leader: Managers 0, an error) stops, saying why; never --force-new-cluster, never leaves", () => {
      const noLeader = "Error response from daemon: rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online.";
      const r = runWithDocker(swarmInitCommand("10.0.0.5"), ["active"], "", { ...moved, Managers: "0", ControlAvailable: "true", Error: "raft: no elected cluster leader" }, { "node-ls-error": noLeader });
      expect(r.code).toBe(1);
      expect(r.calls.filter((c) => c.includes("--force-new-cluster") || c.startsWith("swarm leave") || c.startsWith("swarm join"))).toEqual([]);
      expect(r.calls.filter((c) => c.startsWith("node ls")).length).toBeGreaterThan(1);
      expect(r.stderr).toMatch(/cannot tell whether other managers remain/);
      expect(r.stderr).toContain("The swarm does not have a leader");
      expect(r.stderr).not.toMatch(/leaves the swarm/);
      expect(r.stderr).toMatch(/docker swarm init --force-new-cluster --advertise-addr 10\.0\.0\.5/);
      expect(r.stdout).toBe("");
    });
    it("a manager that is not a reachable manager yet right after its join waits for it, then demotes and removes its former node", () => {
      const r = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["active"], `${token}\n`, { ...moved, ControlAvailable: "false\nfalse\ntrue" });
      expect(r.code, r.stderr).toBe(0);
      expect(swarmCalls(r.calls).slice(-2)).toEqual(["node demote node-old", "node rm --force node-old"]);
    });
    it("a manager that never becomes a reachable manager, or cannot remove its former node, fails saying what is left to do; never skips it silently", () => {
      const never = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["active"], `${token}\n`, { ...moved, ControlAvailable: "false" });
      expect(never.code).toBe(1);
      expect(never.calls.filter((c) => c.startsWith("node rm"))).toEqual([]);
      expect(never.stderr).toMatch(/not a reachable manager/);
      expect(never.stderr).toContain("docker node demote node-old && docker node rm --force node-old");
      const refused = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), ["active"], `${token}\n`, { ...moved, ControlAvailable: "true" }, { "node-rm-error": "Error response from daemon: rpc error: code = FailedPrecondition" });
      expect(refused.code).toBe(1);
      expect(refused.calls.filter((c) => c.startsWith("node rm")).length).toBeGreaterThan(1);
      expect(refused.stderr).toContain("docker node demote node-old && docker node rm --force node-old");
      // The first manager's rejoin removes its former node the same way.
      const first = runWithDocker(swarmInitCommand("10.0.0.5"), ["active"], "", { ...moved, ControlAvailable: "false", remote: "node-b 10.0.1.7:2377" }, { "node-ls": "node-old\nnode-b\nnode-c" });
      expect(first.code).toBe(1);
      expect(first.stderr).toMatch(/not a reachable manager/);
    });
    // swarmkit node/node.go newPersistentRemotes: a node dials the managers kept in state.json;
    // agent/agent.go handleSessionMessage replaces them with the managers a connected session
    // reports. A single manager replaced re-inits at its new address (above): its workers keep
    // dialling the old one and never reconnect, while their own address did not move.
    it("a worker whose kept managers do not include the first manager's address leaves and joins again; one that has it is left alone", () => {
      const stale = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "worker"), ["active"], `${token}\n`, { NodeAddr: "10.0.1.7", NodeID: "node-w", remote: "node-m 10.0.9.9:2377" });
      expect(stale.code, stale.stderr).toBe(0);
      expect(swarmCalls(stale.calls)).toEqual(["swarm leave --force", `swarm join --token ${token} --advertise-addr 10.0.1.7 10.0.0.5:2377`]);
      expect(stale.stderr).toMatch(/10\.0\.9\.9:2377, not the first manager's address 10\.0\.0\.5:2377/);
      expect(stale.stdout).toBe("node-joined\n");
      // Rebooted, it reaches no manager and stays pending (moby noderunner.go State): the same.
      const pending = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "worker"), ["pending"], `${token}\n`, { NodeAddr: "10.0.1.7", NodeID: "node-w", remote: "node-m 10.0.9.9:2377" });
      expect(pending.code, pending.stderr).toBe(0);
      expect(swarmCalls(pending.calls)).toEqual(swarmCalls(stale.calls));
      const current = runWithDocker(swarmJoinCommand("10.0.0.5", "10.0.1.7", "worker"), ["active"], `${token}\n`, { NodeAddr: "10.0.1.7", NodeID: "node-w", remote: "node-m 10.0.9.9:2377\nnode-n 10.0.0.5:2377" });
      expect(current.code, current.stderr).toBe(0);
      expect(swarmCalls(current.calls)).toEqual([]);
      expect(current.stdout).toBe("node-w\n");
    });
    it("a host whose kept state advertises its own address is left alone", () => {
      for (const script of [swarmInitCommand("10.0.1.7"), swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), swarmJoinCommand("10.0.0.5", "10.0.1.7", "worker")]) {
        const r = runWithDocker(script, ["active"], `${token}\n`, { NodeAddr: "10.0.1.7", Managers: "3", ControlAvailable: "true", remote: "node-m 10.0.0.5:2377" });
        expect(r.code).toBe(0);
        expect(swarmCalls(r.calls)).toEqual([]);
      }
    });
  });
  it("pass shellcheck", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-swarm-sc-"));
    const files = [swarmInitCommand("10.0.0.5"), swarmJoinCommand("10.0.0.5", "10.0.1.7", "manager"), swarmJoinCommand("10.0.0.5", "10.0.1.7", "worker"), JOIN_TOKENS_COMMAND, staticLeftoversCommand("prod")].map((s, i) => {
      const f = path.join(dir, `c${i}.sh`);
      fs.writeFileSync(f, s);
      return f;
    });
    const r = spawnSync("shellcheck", ["-s", "bash", ...files], { encoding: "utf8" });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
  it("the tokens' answer gives each role its line", () => {
    expect(joinToken("SWMTKN-1-a-w\nSWMTKN-1-a-m\n", "worker")).toBe("SWMTKN-1-a-w");
    expect(joinToken("SWMTKN-1-a-w\nSWMTKN-1-a-m\n", "manager")).toBe("SWMTKN-1-a-m");
    expect(joinToken("", "manager")).toBe("");
  });
});

describe("a service as a swarm service", () => {
  const withSecret: ServiceSpec = { ...web, secrets: { API_TOKEN: "api-token" }, user: "65534:65534" };
  const args = swarmServiceArgs("prod", withSecret, logging, { network: "net-id", secrets: [{ envName: "API_TOKEN", id: "sec-id", name: "sec-name" }] });
  const task = args.taskSpec as any;
  it("runs the digest with the static replica's limits, user, root, capabilities, health check and logs", () => {
    expect(args.name).toBe("web");
    expect(args.mode).toEqual({ replicated: { replicas: web.replicas } });
    expect(task.containerSpec.image).toBe(`${web.repository}@${web.digest}`);
    expect(task.containerSpec.user).toBe("65534:65534");
    expect(task.containerSpec.readOnly).toBe(web.readOnlyRootFilesystem);
    expect(task.containerSpec.capDrops).toEqual(["ALL"]);
    expect(task.containerSpec.healthcheck.tests).toEqual(["CMD", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${web.containerPort}${web.health.path}`]);
    expect(task.resources.limits).toEqual({ memoryBytes: web.memoryMb * 1024 * 1024, nanoCpus: web.cpus * 1e9 });
    expect(task.logDriver).toEqual({ name: logging.logDriver, options: { "max-size": logging.logMaxSize, "max-file": String(logging.logMaxFile) } });
    expect(task.containerSpec.mounts).toContainEqual({ type: "volume", source: "prod-web-uploads", target: "/srv/uploads" });
  });
  it("is placed on its group's hosts, spread over zones (the provider passes prefs as the spread descriptor)", () => {
    expect(task.placement).toEqual({ constraints: ["engine.labels.dockyard.group==app"], prefs: ["engine.labels.dockyard.zone"] });
  });
  it("updates start-first one task at a time, watched for its health, and rolls back on failure", () => {
    expect(args.updateConfig).toMatchObject({ parallelism: 1, order: "start-first", failureAction: "rollback", maxFailureRatio: "0" });
    expect(args.rollbackConfig).toMatchObject({ parallelism: 1, order: "start-first", failureAction: "pause" });
    // startPeriod 5s + (retries 3 + 1) x (interval 5s + timeout 2s) = 33 s.
    expect(monitorSeconds(web)).toBe(33);
    expect((args.updateConfig as any).monitor).toBe("33s");
  });
  it("is found by DNS round robin, publishes nothing itself, attaches its network by id", () => {
    expect(args.endpointSpec).toEqual({ mode: "dnsrr" });
    expect(task.networksAdvanceds).toEqual([{ id: "net-id", aliases: ["web"] }]);
  });
  it("reads its secrets from swarm secret files owned by its user, named by <NAME>_FILE; never as a value", () => {
    expect(task.containerSpec.secrets).toEqual([{ secretId: "sec-id", secretName: "sec-name", fileName: "/run/secrets/API_TOKEN", fileUid: "65534", fileGid: "65534", fileMode: 0o400 }]);
    expect(task.containerSpec.env.API_TOKEN_FILE).toBe("/run/secrets/API_TOKEN");
    expect(JSON.stringify(args)).not.toContain("api-token");
  });
});

describe("the proxy of a host", () => {
  const routes = swarmProxyRoutes(spec.services, "app");
  const args = swarmProxyArgs("prod", { name: "prod-app-2", group: "app", placement: nodePlacement("node-2\n") }, routes, spec.proxyImage!, { id: "cfg-id", name: "cfg-name" }, { web: "net-id" }, logging, spec.proxy);
  it("finds the replicas of every host through tasks.<service>", () => {
    expect(routes).toEqual([{ service: "web", address: "tasks.web", publishPort: 80, containerPort: web.containerPort, healthPath: web.health.path, replicas: web.replicas }]);
    expect(renderHaproxyConfig(routes)).toMatch(/server-template web \d+ tasks\.web:8080 check/);
  });
  it("is one task pinned to its host's node (replicated: the provider's converge wait needs a replica count), publishing in host mode, updating stop-first (a host port binds once)", () => {
    expect(args.name).toBe("proxy-prod-app-2");
    expect(args.mode).toEqual({ replicated: { replicas: 1 } });
    expect((args.taskSpec as any).placement.constraints).toEqual(["node.id==node-2"]);
    expect(args.endpointSpec).toEqual({ mode: "dnsrr", ports: [{ targetPort: 80, publishedPort: 80, publishMode: "host", protocol: "tcp" }] });
    expect(args.updateConfig).toMatchObject({ order: "stop-first", parallelism: 1, failureAction: "rollback" });
  });
  it("reads its configuration from a swarm config, as its non-root user, with the static proxy's limits", () => {
    const c = (args.taskSpec as any).containerSpec;
    expect(c.configs).toEqual([{ configId: "cfg-id", configName: "cfg-name", fileName: "/usr/local/etc/haproxy/haproxy.cfg", fileUid: "99", fileGid: "99", fileMode: 0o444 }]);
    expect(c.user).toBe(spec.proxy.user);
    expect(c.readOnly).toBe(true);
    expect((args.taskSpec as any).resources.limits).toEqual({ memoryBytes: spec.proxy.memoryMb * 1024 * 1024, nanoCpus: spec.proxy.cpus * 1e9 });
  });
  it("has a name swarm takes for the longest host name (51 characters)", () => {
    expect(proxyServiceName(`h${"x".repeat(49)}z`).length).toBeLessThanOrEqual(63);
  });
});

describe("the schema", () => {
  const swarmEnv = (stack: string) => ({ ...(structuredClone(readEnvironmentFile(stack)) as Record<string, unknown>), fleet: { mode: "swarm" } });
  const problems = (stack: string, change: (c: Record<string, any>) => void = () => {}): string[] => {
    const config = structuredClone(readStackFile(stack).config) as Record<string, any>;
    change(config);
    try {
      parseEnvironment(stack, swarmEnv(stack), { config });
      return [];
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return e.problems;
    }
  };
  it("defaults to static and takes swarm", () => {
    expect(loadStackSpec("prod").fleetMode).toBe("static");
    expect(parseEnvironment("prod", swarmEnv("prod"), { config: readStackFile("prod").config }).fleetMode).toBe("swarm");
  });
  it("refuses a swarm of fewer than 3 hosts outside dev, naming the file, the key and what is allowed", () => {
    expect(problems("test")).toEqual([
      'stack "test": stacks/environment.yaml: fleet.mode: swarm needs 3 managers over availability zones, so at least 3 hosts, and this stack has 2 (stacks/Pulumi.test.yaml: config.dockyard:hostGroups.<group>.count); one manager is allowed only in dev and on local hosts; allowed: more hosts, or fleet.mode static',
    ]);
    expect(problems("test", (c) => (c["dockyard:hostGroups"].app.count = 3))).toEqual([]);
    expect(problems("dev")).toEqual([]);
    expect(problems("local")).toEqual([]);
  });
  it("refuses an unknown mode", () => {
    expect(() => parseEnvironment("prod", { ...swarmEnv("prod"), fleet: { mode: "kubernetes" } }, { config: readStackFile("prod").config })).toThrow(/fleet\.mode/);
  });
});

describe("the program in swarm mode (prod, mock runtime)", () => {
  const rendered = renderStack("prod", writeSwarmStack("prod"));
  const userData = (r: Awaited<typeof rendered>, name: string) => {
    const i = r.resources.find((x) => x.name === `${name}-instance`)!;
    return YAML.parse(gunzipSync(Buffer.from(String(i.inputs.userDataBase64), "base64")).toString("utf8")) as { write_files: { path: string; content: string }[] };
  };
  it("renders every host's engine with live-restore off, its group label and the swarm's TCP ports admitted", async () => {
    const r = await rendered;
    for (const h of ["prod-app-1", "prod-app-2", "prod-app-3"]) {
      const files = userData(r, h).write_files;
      const daemon = JSON.parse(files.find((f) => f.path === DAEMON_JSON)!.content);
      expect(daemon["live-restore"]).toBe(false);
      expect(daemon.labels).toContain("dockyard.group=app");
      expect(daemon.labels.find((l: string) => l.startsWith("dockyard.zone="))).toMatch(/^dockyard\.zone=\S+$/);
      expect(files.find((f) => f.path === ENV_PATH)!.content).toContain("ENGINE_LISTEN_PORTS='2377 7946'");
    }
    expect(r.outputs.engine).toMatchObject({ liveRestore: false });
  });
  it("makes the swarm on the first host, joins the others with the token as a secret, and runs web and the proxy as services", async () => {
    const r = await rendered;
    expect(r.outputs.fleetMode).toEqual({ mode: "swarm", managers: ["prod-app-1", "prod-app-2", "prod-app-3"] });
    const names = r.resources.map((x) => `${x.type} ${x.name}`);
    expect(names).toContain("command:local:Command swarm-prod-app-1-init");
    expect(names).toEqual(expect.arrayContaining(["command:local:Command swarm-prod-app-2-join", "command:local:Command swarm-prod-app-3-join"]));
    for (const j of r.resources.filter((x) => x.name.endsWith("-join"))) {
      expect(isSecretValue(j.inputs.stdin)).toBe(true);
      // Hosts 2 and 3 are managers: their join removes a former node, and has no worker's check.
      expect(String(j.inputs.create), j.name).toContain(`docker node rm --force "$old"`);
      expect(String(j.inputs.create), j.name).not.toContain("this worker's swarm state");
    }
    const services = r.resources.filter((x) => x.type === "docker:index/service:Service").map((x) => x.inputs.name);
    expect(services.sort()).toEqual(["proxy-prod-app-1", "proxy-prod-app-2", "proxy-prod-app-3", "web"]);
    // No container runs outside the swarm, and no pull is anonymous: every host pulls both images.
    expect(r.resources.filter((x) => x.type === "docker:index/container:Container")).toEqual([]);
    for (const h of ["prod-app-1", "prod-app-2", "prod-app-3"]) {
      expect(String(r.resources.find((x) => x.name === `swarm-${h}-web-pull`)?.inputs.create)).toBe(`docker pull --quiet --platform linux/amd64 ${web.repository}@${web.digest}`);
      expect(r.resources.find((x) => x.name === `swarm-${h}-proxy-pull`)).toBeDefined();
    }
  });
  it("names each overlay network apart from the static fleet's bridge network of the service (a host moved in place still has that one)", async () => {
    const r = await rendered;
    const nets = r.resources.filter((x) => x.type === "docker:index/network:Network");
    expect(nets.map((n) => n.inputs.name)).toEqual([swarmNetworkName("prod", "web")]);
    expect(swarmNetworkName("prod", "web")).toBe("prod-web_swarm");
    expect(swarmNetworkName("prod", "web")).not.toBe(serviceNetworkName("prod", "web"));
  });
  it("fits names to swarm's limits (controlapi/common.go): a 45-character stack's 32-character service gets a 63-character network name, hashed, distinct", () => {
    // The longest stack the schema allows with a 3-letter group: host names '<stack>-app-<n>' are at most 51 characters.
    const stack = `s${"x".repeat(43)}z`;
    const a = swarmNetworkName(stack, `a${"b".repeat(31)}`);
    const b = swarmNetworkName(stack, `a${"b".repeat(30)}c`);
    for (const n of [a, b]) {
      expect(n).toHaveLength(63);
      expect(n).toMatch(/^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/);
      expect(n.endsWith("_swarm")).toBe(true);
    }
    expect(a).not.toBe(b);
    expect(swarmNetworkName("prod", "web")).toBe("prod-web_swarm");
    expect(fitName("short", 10)).toBe("short");
    const long = swarmObjectResourceName(`swarm-${"w".repeat(32)}-${"e".repeat(30)}`);
    expect(long.length + 8).toBe(64);
    expect(swarmObjectResourceName("swarm-web-api-token")).toBe("swarm-web-api-token");
  });
  it("removes a static fleet's leftovers on every host after its group's services and before its group's proxy", async () => {
    const r = await rendered;
    const key = (x: { type: string; name: string }) => `${x.type}::${x.name}`;
    const webService = r.resources.find((x) => x.type === "docker:index/service:Service" && x.inputs.name === "web")!;
    for (const h of ["prod-app-1", "prod-app-2", "prod-app-3"]) {
      const c = r.resources.find((x) => x.name === `swarm-${h}-static-leftovers`)!;
      expect(String(c.inputs.create)).toBe(staticLeftoversCommand("prod"));
      expect(c.options?.dependsOn).toContain(key(webService));
      expect(c.options?.dependsOn).toContain(`command:local:Command::swarm-${h}-${h === "prod-app-1" ? "init" : "join"}`);
      const proxy = r.resources.find((x) => x.type === "docker:index/service:Service" && x.inputs.name === `proxy-${h}`)!;
      expect(proxy.options?.dependsOn).toContain(key(c));
    }
  });
  // Issue 24 items 3 and 18: the provider refuses convergeConfig on a global service
  // (resource_docker_service.go), and a new published service's network replaces the proxy
  // (networks_advanced ForceNew), delete-first.
  it("runs one proxy service per host, each pinned to the node its init or join printed, with the provider's converge wait, each waiting for the previous host's", async () => {
    const r = await rendered;
    const key = (x: { type: string; name: string }) => `${x.type}::${x.name}`;
    const proxies = ["prod-app-1", "prod-app-2", "prod-app-3"].map((h) => r.resources.find((x) => x.type === "docker:index/service:Service" && x.inputs.name === `proxy-${h}`)!);
    proxies.forEach((p, i) => {
      const h = `prod-app-${i + 1}`;
      expect(p.inputs.mode).toEqual({ replicated: { replicas: 1 } });
      expect(p.inputs.convergeConfig).toMatchObject({ timeout: expect.stringMatching(/^\d+s$/) });
      expect((p.inputs.taskSpec as any).placement.constraints).toEqual([`node.id==computed(swarm-${h}-${i === 0 ? "init" : "join"}.stdout)`]);
      expect(p.options?.deleteBeforeReplace).toBe(true);
      if (i > 0) expect(p.options?.dependsOn).toContain(key(proxies[i - 1]));
    });
  });
  it("still registers every host with the front door", async () => {
    const r = await rendered;
    expect(r.resources.filter((x) => x.type === "aws:lb/targetGroupAttachment:TargetGroupAttachment")).toHaveLength(3);
  });
});
