/**
 * components/swarm/update-gate.sh as the command provider runs it on the first manager (the
 * rendered command line, the script on stdin), with bash against a stand-in `docker` that
 * answers `docker service inspect` and `docker service ps` poll by poll
 * (fixtures/update-gate-docker-standin.sh). `sleep` is stubbed: polls take no real seconds.
 *
 * The race the gate closes (kreuzwerker/terraform-provider-docker 5074970c,
 * internal/provider/resource_docker_service_funcs.go resourceDockerServiceUpdateRefreshFunc
 * and replicatedConsoleLogUpdater.update): while UpdateStatus is `updating`, the provider
 * counts tasks whose desired state is running, by slot; once the new task failed, and before
 * swarm starts the rollback, the old tasks fill every slot and it reports the update complete.
 * The gate waits while swarm says `updating`, whatever the tasks, and fails on the states the
 * provider fails on (rollback_completed, paused, rollback_paused) and on rollback_started.
 * The formats are docker/cli's: cli/command/task/formatter.go (Image keeps the digest with
 * --no-trunc; CurrentState is PrettyPrint(state) + " <n> ago").
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { updateGateCommand, updateGateScript } from "../../../components/swarm-fleet";

const STANDIN = path.join(__dirname, "fixtures", "update-gate-docker-standin.sh");
const NEW = "registry.example/dockyard/web@sha256:" + "b".repeat(64);
const OLD = "registry.example/dockyard/web@sha256:" + "a".repeat(64);
const running = (image: string, n: number) => Array.from({ length: n }, () => `${image} Running 3 seconds ago`).join("\n");

/** Runs `line` (a command line reading the script on stdin) with the stand-in docker: `inspect`, one line per poll; `ps`, the tasks per poll (1-based). */
function gate(line: string, inspect: string[], ps: Record<number, string>): { code: number; stderr: string; stdout: string; inspects: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-update-gate-"));
  try {
    fs.writeFileSync(path.join(dir, "inspect"), inspect.join("\n") + "\n");
    for (const [n, text] of Object.entries(ps)) fs.writeFileSync(path.join(dir, `ps-${n}`), text + "\n");
    fs.writeFileSync(path.join(dir, "docker"), fs.readFileSync(STANDIN, "utf8"), { mode: 0o755 });
    fs.writeFileSync(path.join(dir, "sleep"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const r = spawnSync("bash", ["-c", line], { input: updateGateScript(), env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, STANDIN_DIR: dir }, encoding: "utf8", timeout: 20_000 });
    const calls = fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n");
    return { code: r.status ?? -1, stderr: r.stderr, stdout: r.stdout, inspects: calls.filter((c) => c.startsWith("service inspect")).length };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
const line = updateGateCommand(600, "web", NEW);

describe("the swarm update gate, as bash runs it", () => {
  it("asks about the service by name and passes its image, each single-quoted", () => {
    expect(line).toBe(`bash -s -- 600 'web' '${NEW}'`);
    expect(() => updateGateCommand(0, "web", NEW)).toThrow(/whole number of seconds/);
    expect(() => updateGateCommand(60, "we'b", NEW)).toThrow(/not a service name/);
  });

  it("passes at once when swarm completed the update and every running task runs the new image", () => {
    const r = gate(line, ["completed|3|update completed"], { 1: running(NEW, 3) });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.inspects).toBe(1);
    expect(r.stdout).toContain(`3 running task(s) of ${NEW}`);
  });

  it("passes for a service swarm never updated (no UpdateStatus) once its tasks run the image", () => {
    expect(gate(line, ["|3|"], { 1: running(NEW, 3) }).code).toBe(0);
  });

  it("waits while swarm says updating, although the old tasks fill every slot (the provider's race), and passes once completed", () => {
    const r = gate(line, ["updating|3|update in progress", "updating|3|update in progress", "completed|3|update completed"], { 1: running(OLD, 3), 3: running(NEW, 3) });
    expect(r.code).toBe(0);
    expect(r.inspects).toBe(3);
  });

  it("fails with swarm's message on rollback_started, without waiting for the rollback to end", () => {
    const msg = "update rolled back due to failure or early termination of task x0f5; waiting for rollback";
    const r = gate(line, ["updating|3|update in progress", `rollback_started|3|${msg}`, "rollback_completed|3|rollback completed"], { 1: running(OLD, 3) });
    expect(r.code).toBe(1);
    expect(r.inspects).toBe(2);
    expect(r.stderr).toContain(`dockyard: service web: swarm's update status is rollback_started: ${msg}`);
  });

  it.each(["rollback_completed", "paused", "rollback_paused"])("fails on %s, naming it and swarm's message", (state) => {
    const r = gate(line, [`${state}|3|swarm says ${state}`], { 1: running(OLD, 3) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`swarm's update status is ${state}: swarm says ${state}`);
  });

  it("waits while a task of the old image still runs after swarm completed, and while fewer than the replicas run", () => {
    const r = gate(line, ["completed|3|update completed"], { 1: running(NEW, 2) + "\n" + running(OLD, 1), 2: running(NEW, 2), 4: running(NEW, 3) });
    expect(r.code).toBe(0);
    expect(r.inspects).toBe(4);
  });

  it("asks again when a query fails (a manager without a leader for a moment), until the timeout", () => {
    const noLeader = "FAIL Error response from daemon: rpc error: code = Unknown desc = The swarm does not have a leader.";
    expect(gate(line, [noLeader, noLeader, "completed|3|update completed"], { 1: running(NEW, 3) }).code).toBe(0);
    const r = gate(`bash -s -- 0 'web' '${NEW}'`, [noLeader], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("docker service inspect failed within 0s: Error response from daemon: rpc error: code = Unknown desc = The swarm does not have a leader.");
  });

  it("fails once its time is up, saying what it saw (tasks that are not running do not count)", () => {
    const r = gate(`bash -s -- 0 'web' '${NEW}'`, ["completed|3|update completed"], { 1: `${running(NEW, 2)}\n${OLD} Running 9 seconds ago\n${NEW} Starting 1 second ago` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`running tasks: 2 of ${NEW} (want 3), 1 of another image`);
  });
});
