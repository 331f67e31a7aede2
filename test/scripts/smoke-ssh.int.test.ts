/**
 * `dockyard smoke` over a real ssh to a real sshd: the per-host check goes the whole access
 * path. The outputs are the REAL program's for the `local` stack (index.ts under the mock
 * runtime), with what a deploy fills in given here: the machine container's name
 * (sshTarget), its real host key (hostPublicKey) and the port the engine published its
 * proxy on (endpoints). The "host" is a container of the local host image (dockyard/host,
 * test/infra) with its own ed25519 host key, the SSH user and, on its 127.0.0.1:80, a
 * python3 http.server standing in for its proxy. smoke runs the system ssh with the host's
 * pinned key and the local ProxyCommand (components/connection.ts localProxyCommand: the
 * key from a real ssh-agent is pushed with `docker exec`, then `docker exec -i <host>
 * /usr/sbin/sshd -i`), and bash on the host runs scripts/lib/host-request.sh unmodified.
 * Not booted with systemd and cloud-init (test/host/local-platform.int.test.ts does that):
 * what is under test is the connection and the command, not the boot.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { renderStack } from "../../scripts/lib/render";
import type { SmokeReport } from "../../scripts/smoke";
import { HOST_IMAGE, LABEL, PID_LABEL, sh } from "../host/harness";
import { cli } from "./cli";
import { deployed } from "./smoke-fixtures";

const HOST = "local-app-1";
const NAME = `dockyard-smoke-ssh-${process.pid}`;
let dir: string;
let agent: ChildProcess | undefined;
let sock: string;
let endpoint: http.Server;
let outputs: Record<string, any>;
let hostKey: string;

const inHost = (script: string) => sh("docker", ["exec", NAME, "bash", "-euo", "pipefail", "-c", script]);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-smoke-ssh-"));
  const rendered = renderStack("local");
  // The host: the local host image, sshd's own ed25519 key, the SSH user, a proxy on 127.0.0.1:80.
  await sh("docker", ["rm", "-f", NAME]).catch(() => undefined);
  await sh("docker", ["run", "-d", "--name", NAME, "--label", LABEL, "--label", `${PID_LABEL}=${process.pid}`, "--entrypoint", "sleep", HOST_IMAGE, "infinity"]);
  hostKey = (
    await inHost(`useradd -m -s /bin/bash admin
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd /srv/www && echo ok > /srv/www/healthz
cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub`)
  ).trim();
  await sh("docker", ["exec", "-d", NAME, "bash", "-c", "exec python3 -m http.server 80 --bind 127.0.0.1 --directory /srv/www 2>>/srv/access.log"]);
  // The deployer's ssh-agent with one key, as `pulumi up` needs it.
  sock = path.join(dir, "agent.sock");
  agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
  for (let i = 0; i < 50 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "id")]);
  execFileSync("ssh-add", [path.join(dir, "id")], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: "pipe" });
  // The engine's published port of the proxy on the deployer's machine: a loopback server stands in.
  endpoint = http.createServer((_req, res) => res.end("ok")).listen(0, "127.0.0.1");
  await new Promise((r) => endpoint.once("listening", r));
  const out = deployed((await rendered).outputs) as Record<string, any>;
  out.hostsByName[HOST] = { ...out.hostsByName[HOST], sshTarget: NAME, hostPublicKey: hostKey, endpoints: { "80": `127.0.0.1:${(endpoint.address() as AddressInfo).port}` } };
  outputs = out;
  // No proxy answers 200 within the wait for 127.0.0.1:80 before python is up.
  for (let i = 0; i < 50; i++) {
    if ((await inHost("exec 3<>/dev/tcp/127.0.0.1/80 && echo up").catch(() => "")).trim() === "up") break;
    await new Promise((r) => setTimeout(r, 200));
  }
}, 180_000);

afterAll(async () => {
  agent?.kill();
  endpoint?.close();
  await sh("docker", ["rm", "-f", NAME]).catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function smoke(o: Record<string, any>, extra: string[] = []) {
  const file = path.join(dir, `outputs-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify(o));
  const r = await cli(["smoke", "local", "--outputs", file, "--json", "--interval", "0.5", ...extra], { SSH_AUTH_SOCK: sock });
  return { ...r, report: r.stdout ? (JSON.parse(r.stdout) as SmokeReport) : undefined };
}

describe("smoke over a real ssh to a real sshd (local ProxyCommand, pinned host key)", () => {
  it("the host's proxy answers on the host: ok over ssh, and the endpoint clients use: ok, exit 0", async () => {
    expect(outputs.frontDoor).toEqual({});
    const r = await smoke(outputs);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.results.map((x) => [x.host, x.via, x.url, x.outcome, x.status])).toEqual([
      [`${HOST} endpoint`, "client", `${outputs.hostsByName[HOST].endpoints["80"].replace(/^/, "http://")}/healthz`, "ok", 200],
      [HOST, "ssh", "http://127.0.0.1:80/healthz", "ok", 200],
    ]);
    // The request reached the host's own 127.0.0.1:80 from the host, as host-request.sh sends it (HTTP/1.0).
    expect(await inHost("cat /srv/access.log")).toMatch(/^127\.0\.0\.1 - - \[[^\]]+\] "GET \/healthz HTTP\/1\.0" 200 -$/m);
  }, 120_000);

  it("a health path the host's proxy does not serve is its status over ssh (HTTP 404): exit 1", async () => {
    await inHost("mv /srv/www/healthz /srv/www/healthz.off");
    try {
      const r = await smoke(outputs, ["--timeout", "3"]);
      expect(r.code).toBe(1);
      expect(r.report!.results.find((x) => x.via === "ssh")).toMatchObject({ outcome: "failed", status: 404 });
    } finally {
      await inHost("mv /srv/www/healthz.off /srv/www/healthz");
    }
  }, 120_000);

  it("another host key than the pinned one: ssh refuses the host, reported with ssh's words: exit 1", async () => {
    const other = execFileSync("ssh-keygen", ["-y", "-f", path.join(dir, "id")], { encoding: "utf8" }).trim().split(" ").slice(0, 2).join(" ");
    const o = structuredClone(outputs);
    o.hostsByName[HOST].hostPublicKey = other;
    const r = await smoke(o, ["--timeout", "3"]);
    expect(r.code).toBe(1);
    const error = r.report!.results.find((x) => x.via === "ssh")!.error;
    expect(error).toBe("ssh: Host key verification failed.");
  }, 120_000);
});
