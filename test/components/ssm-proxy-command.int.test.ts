/**
 * The ProxyCommand of `access: ssm` (components/connection.ts ssmProxyCommand) run for real
 * (issue 24 items 11 and 12): the system's OpenSSH client dials with exactly the options
 * every connection uses (sshOptions, so ssh itself expands %h, %p and %% in the command,
 * readconf.c percent_expand), a real ssh-agent holds the keys, and a stand-in `aws` first
 * on PATH answers as the AWS CLI does: SendSSHPublicKey errors as botocore's ClientError
 * prints them ("An error occurred (<code>) when calling the SendSSHPublicKey operation...",
 * botocore exceptions.py; codes from data/ec2-instance-connect/2018-04-02/service-2.json),
 * exit 254 as CLI v2 does; `ssm start-session` records its arguments and ends the session.
 *
 * An integration test (*.int.test.ts): it needs the system's OpenSSH and, for its last case, the
 * AWS CLI on PATH (root's, on this machine), which `npm run test:unit` as a newcomer does not have.
 *
 * What this cannot show: AWS itself (the real push and Session Manager); ssh then ends with
 * 255 because the stand-in session carries no SSH server.
 */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EIC_PUSH_ATTEMPTS, EIC_REUSE_SECONDS, sshArgv, ssmProxyCommand } from "../../components/connection";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dockyard-host";
const INSTANCE = "i-0123456789abcdef0";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-ssm-proxy-"));
const bin = path.join(dir, "bin");

function keygen(name: string, type: string): string {
  const f = path.join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", name, "-f", f]);
  return fs.readFileSync(`${f}.pub`, "utf8").trim();
}
/** Loads these keys, in this order, into the agent on this socket. */
function load(sock: string, keys: string[]): void {
  const env = { ...process.env, SSH_AUTH_SOCK: sock };
  for (const k of keys) execFileSync("ssh-add", ["-q", path.join(dir, k)], { env, stdio: "ignore" });
}

let ed25519 = "";
let ecdsaSock = "";
let mixedSock = "";
let emptySock = "";

beforeAll(() => {
  fs.mkdirSync(bin);
  // One ssh-agent per socket, started here and stopped by its pid at the end.
  ed25519 = keygen("id_ed25519", "ed25519");
  keygen("id_ecdsa", "ecdsa");
  // An OpenSSH certificate of the ed25519 key (ssh-add adds key and certificate).
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "ca")]);
  execFileSync("ssh-keygen", ["-q", "-s", path.join(dir, "ca"), "-I", "deployer", "-n", "admin", path.join(dir, "id_ed25519.pub")]);
  for (const [name, keys] of [["ecdsa", ["id_ecdsa"]], ["mixed", ["id_ecdsa", "id_ed25519"]], ["empty", []]] as [string, string[]][]) {
    const sock = path.join(dir, `${name}.sock`);
    const out = execFileSync("ssh-agent", ["-s", "-a", sock], { encoding: "utf8" });
    agentPids.push(Number(/SSH_AGENT_PID=(\d+)/.exec(out)![1]));
    load(sock, keys);
  }
  ecdsaSock = path.join(dir, "ecdsa.sock");
  mixedSock = path.join(dir, "mixed.sock");
  emptySock = path.join(dir, "empty.sock");
});
const agentPids: number[] = [];
afterAll(() => {
  for (const pid of agentPids) {
    try {
      process.kill(pid);
    } catch {
      // already gone
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A stand-in aws: SendSSHPublicKey fails `fails` times with `code`, then succeeds (after `delay` s); every call is logged. */
function standIn(run: string, o: { fails: number; code?: string; delay?: number }): void {
  fs.writeFileSync(
    path.join(bin, "aws"),
    `#!/bin/sh
log=${run}/calls
case "$1 $2" in
"ec2-instance-connect send-ssh-public-key")
  echo "push $*" >>"$log"
  n=$(grep -c '^push ' "$log")
  if [ "$n" -le ${o.fails} ]; then
    printf '\\nAn error occurred (${o.code ?? "ThrottlingException"}) when calling the SendSSHPublicKey operation (reached max retries: 2): Rate exceeded\\n' >&2
    exit 254
  fi
  sleep ${o.delay ?? 0}
  printf '%s\\t%s\\n' 00000000-0000-0000-0000-000000000000 True ;;
"ssm start-session") echo "session $*" >>"$log" ;;
*) echo "unexpected aws call: $*" >&2; exit 2 ;;
esac
`,
    { mode: 0o755 },
  );
}

/** One real ssh dial through the ProxyCommand; resolves with its status, stderr and the time it took. */
function dial(run: string, sock: string, extraEnv: Record<string, string> = {}, path_ = `${bin}:${process.env.PATH}`): Promise<{ rc: number; err: string; seconds: number }> {
  const argv = sshArgv({ target: INSTANCE, user: "admin", hostPublicKey: HOST_KEY, proxyCommand: ssmProxyCommand("eu-west-1", "admin") });
  const started = Date.now();
  return new Promise((resolve) => {
    const p = spawn(argv[0], ["-F", "/dev/null", ...argv.slice(1), "true"], {
      env: { PATH: path_, HOME: run, SSH_AUTH_SOCK: sock, XDG_RUNTIME_DIR: run, SHELL: "/bin/sh", ...extraEnv },
    });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    p.on("close", (rc) => resolve({ rc: rc ?? -1, err, seconds: (Date.now() - started) / 1000 }));
  });
}

const calls = (run: string) => (fs.existsSync(path.join(run, "calls")) ? fs.readFileSync(path.join(run, "calls"), "utf8").trim().split("\n") : []);
const pushes = (run: string) => calls(run).filter((c) => c.startsWith("push "));
const sessions = (run: string) => calls(run).filter((c) => c.startsWith("session "));
const newRun = () => fs.mkdtempSync(path.join(dir, "run-"));

describe("ssmProxyCommand: which key it offers (issue 24 item 11)", () => {
  it("pushes the agent's first ssh-ed25519/ssh-rsa key, not an ecdsa key before it nor a certificate", async () => {
    const run = newRun();
    standIn(run, { fails: 0 });
    // ssh-add added id_ed25519-cert.pub along with id_ed25519.
    const sock = mixedSock;
    const listed = execFileSync("ssh-add", ["-L"], { env: { ...process.env, SSH_AUTH_SOCK: sock }, encoding: "utf8" });
    expect(listed.split("\n")[0]).toMatch(/^ecdsa-sha2-nistp256 /);
    expect(listed).toMatch(/^ssh-ed25519-cert-v01@openssh\.com /m);
    const r = await dial(run, sock);
    expect(pushes(run)).toHaveLength(1);
    expect(pushes(run)[0]).toContain(`--ssh-public-key ${ed25519}`);
    expect(pushes(run)[0]).toContain(`--instance-id ${INSTANCE} --instance-os-user admin`);
    expect(sessions(run)).toEqual([`session ssm start-session --region eu-west-1 --target ${INSTANCE} --document-name AWS-StartSSHSession --parameters portNumber=22`]);
    expect(r.rc).toBe(255); // the stand-in session carries no SSH server
  });

  it("an agent with only keys EC2 Instance Connect drops: a clear message naming what it holds, no AWS call", async () => {
    const run = newRun();
    standIn(run, { fails: 0 });
    const r = await dial(run, ecdsaSock);
    expect(r.err).toContain("dockyard: no key in ssh-agent (SSH_AUTH_SOCK) that EC2 Instance Connect takes (ssh-ed25519 or ssh-rsa); it holds: ecdsa-sha2-nistp256 ; load one with ssh-add; see README Access to hosts");
    expect(calls(run)).toEqual([]);
    const none = await dial(run, emptySock);
    expect(none.err).toContain("it holds: nothing; load one with ssh-add");
    expect(none.rc).toBe(255);
  });
});

describe("ssmProxyCommand: pushes, retried and reused (issue 24 item 12)", () => {
  it(`throttled twice, then pushed: 3 calls, the session starts, within ssh's 30 s`, async () => {
    const run = newRun();
    standIn(run, { fails: 2 });
    const r = await dial(run, mixedSock);
    expect(pushes(run)).toHaveLength(3);
    expect(r.err).toMatch(/SendSSHPublicKey for i-0123456789abcdef0 throttled or unavailable \(attempt 1 of 4\); retrying in 1\.\d s/);
    expect(r.err).toMatch(/\(attempt 2 of 4\); retrying in 2\.\d s/);
    expect(sessions(run)).toHaveLength(1);
    expect(r.seconds).toBeLessThan(30);
  }, 60_000);

  it(`always throttled: ${EIC_PUSH_ATTEMPTS} calls, the CLI's message, no session, ssh fails well inside its ConnectTimeout`, async () => {
    const run = newRun();
    standIn(run, { fails: 99 });
    const r = await dial(run, mixedSock);
    expect(pushes(run)).toHaveLength(EIC_PUSH_ATTEMPTS);
    expect(r.err).toContain("An error occurred (ThrottlingException) when calling the SendSSHPublicKey operation");
    expect(r.err).toContain(`dockyard: EC2 Instance Connect did not take the key for ${INSTANCE} (attempt ${EIC_PUSH_ATTEMPTS} of ${EIC_PUSH_ATTEMPTS})`);
    expect(sessions(run)).toEqual([]);
    expect(r.rc).toBe(255);
    expect(r.seconds).toBeLessThan(15);
  }, 60_000);

  it("an error that is not transient (AuthException) is not retried", async () => {
    const run = newRun();
    standIn(run, { fails: 99, code: "AuthException" });
    const r = await dial(run, mixedSock);
    expect(pushes(run)).toHaveLength(1);
    expect(r.err).toContain("An error occurred (AuthException)");
    expect(sessions(run)).toEqual([]);
  });

  it(`a key pushed ${EIC_REUSE_SECONDS} s ago or less is reused; an older one is pushed again`, async () => {
    const run = newRun();
    standIn(run, { fails: 0 });
    await dial(run, mixedSock);
    await dial(run, mixedSock);
    expect(pushes(run)).toHaveLength(1);
    expect(sessions(run)).toHaveLength(2);
    // The stamp says when: make it older than the reuse window.
    const stampDir = fs.readdirSync(run).find((f) => f.startsWith("dockyard-eic-"))!;
    expect(fs.statSync(path.join(run, stampDir)).mode & 0o777).toBe(0o700);
    const [stamp] = fs.readdirSync(path.join(run, stampDir));
    expect(stamp).toMatch(new RegExp(`^${INSTANCE}-admin-\\d+$`));
    fs.writeFileSync(path.join(run, stampDir, stamp), `${Math.floor(Date.now() / 1000) - EIC_REUSE_SECONDS - 1}\n`);
    await dial(run, mixedSock);
    expect(pushes(run)).toHaveLength(2);
  }, 60_000);

  it("six dials to one host at once push the key once", async () => {
    const run = newRun();
    standIn(run, { fails: 0, delay: 1 });
    const rs = await Promise.all(Array.from({ length: 6 }, () => dial(run, mixedSock)));
    expect(pushes(run)).toHaveLength(1);
    expect(sessions(run)).toHaveLength(6);
    for (const r of rs) expect(r.seconds).toBeLessThan(15);
  }, 60_000);
});

describe("ssmProxyCommand with the real AWS CLI against a loopback stand-in of the service (issue 24 item 12)", () => {
  // The CLI on PATH (not the stand-in), sent to a loopback HTTP server by AWS_ENDPOINT_URL
  // (botocore configprovider.py), so the error text the retry matches is the CLI's own. The
  // server answers SendSSHPublicKey as the JSON 1.1 service does (X-Amz-Target
  // AWSEC2InstanceConnectService.SendSSHPublicKey; an error is a 400 with its __type), throttling
  // twice. AWS_MAX_ATTEMPTS=1 turns the CLI's own retries off, to see the ProxyCommand's.
  it("throttled twice by the service, then the key is taken: 3 requests, the session is asked for", async () => {
    const targets: string[] = [];
    const server = http.createServer((req, res) => {
      const target = String(req.headers["x-amz-target"] ?? "");
      targets.push(target);
      req.resume();
      req.on("end", () => {
        const pushes = targets.filter((t) => t.endsWith(".SendSSHPublicKey")).length;
        if (target.endsWith(".SendSSHPublicKey") && pushes <= 2) {
          res.writeHead(400, { "content-type": "application/x-amz-json-1.1", "x-amzn-errortype": "ThrottlingException" });
          res.end(JSON.stringify({ __type: "ThrottlingException", Message: "Rate exceeded" }));
        } else if (target.endsWith(".SendSSHPublicKey")) {
          res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
          res.end(JSON.stringify({ RequestId: "00000000-0000-0000-0000-000000000000", Success: true }));
        } else {
          res.writeHead(400, { "content-type": "application/x-amz-json-1.1", "x-amzn-errortype": "AccessDeniedException" });
          res.end(JSON.stringify({ __type: "AccessDeniedException", Message: "stand-in: no sessions" }));
        }
      });
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    try {
      const port = (server.address() as AddressInfo).port;
      const run = newRun();
      const r = await dial(
        run,
        mixedSock,
        {
          AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
          AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
          AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
          AWS_CONFIG_FILE: "/dev/null",
          AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
          AWS_EC2_METADATA_DISABLED: "true",
          AWS_MAX_ATTEMPTS: "1",
        },
        process.env.PATH,
      );
      expect(targets.filter((t) => t.endsWith(".SendSSHPublicKey"))).toHaveLength(3);
      expect(r.err).toMatch(/attempt 2 of 4\); retrying in 2\.\d s/);
      expect(targets.filter((t) => t.endsWith(".StartSession"))).toHaveLength(1);
      expect(r.rc).toBe(255);
    } finally {
      server.close();
    }
  }, 90_000);
});
