/**
 * The fleet's per-host proxy and rollout order against the real Docker Engine.
 * Images come from test/infra/20-fleet-images.sh (built locally, nothing pulled):
 * dockyard-test/web:local (the example service) and dockyard-test/haproxy:local.
 * The proxy runs with exactly the configuration renderHaproxyConfig() produces; the
 * replicas run with the health check and network alias ContainerFleet gives them.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { renderHaproxyConfig, PROXY_CONFIG_PATH } from "../../components/proxy";
import { healthcheckTests, sshOptions } from "../../components/fleet";

const WEB = "dockyard-test/web:local";
const PROXY = "dockyard-test/haproxy:local";
const RUN = `dyit${process.pid}`;
const NET = `${RUN}-web`;
const HEALTH = { interval: "1s", timeout: "1s", retries: 2, startPeriod: "1s" };

const docker = (...args: string[]) => execFileSync("docker", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const created: string[] = [];

/** Starts a replica the way ContainerFleet does: service network, alias, health check, read-only root. */
function startReplica(name: string, version: string, opts: { unhealthy?: boolean } = {}): string {
  const [, ...test] = healthcheckTests(8080, "/healthz");
  const id = docker(
    "run", "-d", "--name", `${RUN}-${name}`, "--network", NET, "--network-alias", "web",
    "--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,size=8m", "--user", "65534:65534", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges:true",
    "--health-cmd", test.join(" "), "--health-interval", HEALTH.interval, "--health-timeout", HEALTH.timeout,
    "--health-retries", String(HEALTH.retries), "--health-start-period", HEALTH.startPeriod,
    "-e", `WEB_VERSION=${version}`, ...(opts.unhealthy ? ["-e", "WEB_UNHEALTHY=1"] : []),
    WEB,
  );
  created.push(`${RUN}-${name}`);
  return id.slice(0, 12);
}

/** Pulumi's `wait`: poll Docker's health status until healthy, or fail after `timeoutMs`. */
async function waitHealthy(name: string, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const status = docker("inspect", "-f", "{{.State.Health.Status}}", `${RUN}-${name}`);
    if (status === "healthy") return true;
    await sleep(200);
  }
  return false;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, agent: false, timeout: 10_000 }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: 0, body: String(e) }));
  });
}

/** Sends requests one after another until stopped (bounded by maxRequests); records every answer. */
function client(port: number, maxRequests: number) {
  const answers: { status: number; body: string; at: number }[] = [];
  let stop = false;
  const done = (async () => {
    for (let i = 0; i < maxRequests && !stop; i++) {
      const r = await get(port, "/cgi-bin/whoami");
      answers.push({ ...r, at: Date.now() });
      await sleep(10);
    }
  })();
  return { answers, stop: async () => { stop = true; await done; } };
}

let port: number;

beforeAll(async () => {
  for (const image of [WEB, PROXY]) {
    try {
      docker("image", "inspect", image);
    } catch {
      throw new Error(`image ${image} is missing: run bash test/infra/up.sh (test/infra/20-fleet-images.sh builds it)`);
    }
  }
  docker("network", "create", "--label", `dockyard.test=${RUN}`, NET);
  port = await freePort();
  // The proxy exactly as rendered for one host; published on loopback only.
  const cfg = renderHaproxyConfig([{ service: "web", publishPort: 8000, containerPort: 8080, healthPath: "/healthz", replicas: 1 }]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dyit-"));
  fs.writeFileSync(path.join(dir, "haproxy.cfg"), cfg);
  docker(
    "create", "--name", `${RUN}-proxy`, "--network", NET, "-p", `127.0.0.1:${port}:8000`,
    // As ContainerFleet creates it: config uploaded before start, so not --read-only.
    "--tmpfs", "/tmp", "--cap-drop", "ALL", "--sysctl", "net.ipv4.ip_unprivileged_port_start=0", PROXY,
  );
  created.push(`${RUN}-proxy`);
  docker("cp", path.join(dir, "haproxy.cfg"), `${RUN}-proxy:${PROXY_CONFIG_PATH}`);
  fs.rmSync(dir, { recursive: true, force: true });
  docker("start", `${RUN}-proxy`);
});

afterAll(() => {
  for (const c of created) {
    try { docker("rm", "-f", c); } catch { /* already gone */ }
  }
  try { docker("network", "rm", NET); } catch { /* in use or gone */ }
});

describe("per-host proxy against the real engine", () => {
  it("routes to the healthy replica and never to an unhealthy one", async () => {
    const good = startReplica("good", "v1");
    const bad = startReplica("bad", "v1", { unhealthy: true });
    const turning = startReplica("turning", "v1");
    expect(await waitHealthy("good", 20_000)).toBe(true);
    expect(await waitHealthy("turning", 20_000)).toBe(true);
    // The unhealthy replica does serve requests: only the proxy's check keeps traffic away.
    expect(docker("exec", `${RUN}-bad`, "wget", "-qO-", "http://127.0.0.1:8080/cgi-bin/whoami")).toBe(`${bad} v1`);
    // This one becomes unhealthy while running.
    docker("exec", `${RUN}-turning`, "rm", "/tmp/healthz");
    await sleep(4000); // > fall x inter of the proxy's checks, plus DNS hold
    const seen = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const r = await get(port, "/cgi-bin/whoami");
      expect(r.status).toBe(200);
      const who = r.body.split(" ")[0];
      seen.set(who, (seen.get(who) ?? 0) + 1);
    }
    expect([...seen.keys()]).toEqual([good]);
    expect(seen.has(bad)).toBe(false);
    expect(seen.has(turning)).toBe(false);
    docker("rm", "-f", `${RUN}-bad`, `${RUN}-turning`);
  });

  it("Pulumi's order (new started and healthy, then old removed) loses no request", async () => {
    // State before: one old replica (v1) serving, as after the previous test.
    const old = docker("ps", "-q", "--filter", `name=${RUN}-good`).slice(0, 12);
    expect(old).not.toBe("");
    const c = client(port, 3000);
    await sleep(1000);
    // 1. create the replacement (new name: the spec hash changed) and wait until healthy.
    const fresh = startReplica("v2", "v2");
    expect(await waitHealthy("v2", 30_000)).toBe(true);
    await sleep(1500);
    // 2. end of the update: delete the old container (the provider force-removes it).
    docker("rm", "-f", `${RUN}-good`);
    await sleep(4000);
    await c.stop();
    const failed = c.answers.filter((a) => a.status !== 200);
    expect(c.answers.length).toBeGreaterThan(100);
    expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
    const versions = c.answers.map((a) => a.body.split(" ")[1]);
    expect(versions[0]).toBe("v1");
    expect(versions[versions.length - 1]).toBe("v2");
    expect(c.answers.some((a) => a.body.startsWith(old))).toBe(true);
    expect(c.answers.slice(-20).every((a) => a.body.startsWith(fresh))).toBe(true);
  });

  it("an unhealthy new version fails the wait, the old one keeps serving, and no request fails", async () => {
    const c = client(port, 3000);
    await sleep(500);
    startReplica("v3", "v3", { unhealthy: true });
    // Pulumi's wait times out: the update fails and the old container is never deleted.
    expect(await waitHealthy("v3", 8_000)).toBe(false);
    await sleep(1000);
    await c.stop();
    const failed = c.answers.filter((a) => a.status !== 200);
    expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
    // Once the proxy's checks have run, only the old version answers.
    const settled = c.answers.filter((a) => a.at > c.answers[0].at + 4000);
    expect(settled.length).toBeGreaterThan(20);
    expect(settled.every((a) => a.body.endsWith(" v2"))).toBe(true);
    const early = c.answers.filter((a) => a.body.endsWith(" v3")).length;
    // Before its first failed checks the new replica may take a few requests (it answers them).
    console.log(`unhealthy new version answered ${early} of ${c.answers.length} requests before the proxy took it out`);
  });
});

describe("sshOptions with the real OpenSSH client", () => {
  // sshd from the test host image (test/infra/40-host-image.sh), published on loopback.
  const HOST_IMAGE = "dockyard/host:latest";
  let dir: string;
  let sshPort: number;
  beforeAll(async () => {
    try {
      docker("image", "inspect", HOST_IMAGE);
    } catch {
      throw new Error(`image ${HOST_IMAGE} is missing: run bash test/infra/up.sh (test/infra/40-host-image.sh builds it)`);
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "dyit-ssh-"));
    for (const k of ["host", "other", "client"]) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", k, "-f", path.join(dir, k)]);
    fs.copyFileSync(path.join(dir, "client.pub"), path.join(dir, "authorized_keys"));
    fs.chmodSync(path.join(dir, "authorized_keys"), 0o644);
    sshPort = await freePort();
    docker(
      "run", "-d", "--name", `${RUN}-sshd`, "-p", `127.0.0.1:${sshPort}:22`,
      "-v", `${path.join(dir, "host")}:/etc/ssh/pinned_host_key:ro`, "-v", `${path.join(dir, "authorized_keys")}:/root/.ssh/authorized_keys:ro`,
      "--entrypoint", "/bin/sh", HOST_IMAGE, "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -h /etc/ssh/pinned_host_key",
    );
    created.push(`${RUN}-sshd`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const ssh = (pinned: string) => {
    const args = [...sshOptions(fs.readFileSync(path.join(dir, pinned), "utf8")), "-i", path.join(dir, "client"), "-p", String(sshPort), "root@127.0.0.1", "echo pinned-ok"];
    // HOME points at the temp dir, so no user known_hosts or config takes part.
    return execFileSync("ssh", args, { encoding: "utf8", env: { ...process.env, HOME: dir }, stdio: ["ignore", "pipe", "pipe"] }).trim();
  };

  it("connects when the host presents the pinned key, and writes no known_hosts", async () => {
    let out = "";
    for (let i = 0; i < 40 && out !== "pinned-ok"; i++) {
      try { out = ssh("host.pub"); } catch { await sleep(250); }
    }
    expect(out).toBe("pinned-ok");
    expect(fs.existsSync(path.join(dir, ".ssh", "known_hosts"))).toBe(false);
  });

  it("refuses a host presenting any other key", () => {
    let err = "";
    try { ssh("other.pub"); } catch (e) { err = String((e as { stderr?: string }).stderr ?? e); }
    expect(err).toMatch(/Host key verification failed/);
  });
});
