/**
 * components/engine/eic-keys.sh, sshd's AuthorizedKeysCommand for EC2 Instance Connect,
 * run for real by /bin/sh with a stand-in `curl` first on PATH (sshd runs the command with
 * its own PATH; the script calls curl through it) that answers as the instance metadata
 * service would: an IMDSv2 token for a PUT, the instance id, and the active keys in the
 * block format EC2 Instance Connect uses (aws-ec2-instance-connect-config
 * eic_parse_authorized_keys: #Timestamp = expiry, #Instance, #Caller, #Request, the key,
 * signature lines, a blank line). What this cannot show: the real metadata service, and
 * sshd calling the command (the host harness checks `sshd -T` names it).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ENGINE_FILES_DIR } from "../../components/engine";

const SCRIPT = path.join(ENGINE_FILES_DIR, "eic-keys.sh");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-eic-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const INSTANCE = "i-0123456789abcdef0";
const now = () => Math.floor(Date.now() / 1000);
const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci-run-1";
const KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkq0sJm2cX4l9gJz3wq8sOe0x6y6m5Yc3o3z0m0kQ2y old";
const KEY_C = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEXAMPLE other-instance";
const block = (key: string, expiry: number, instance = INSTANCE) =>
  [`#Timestamp=${expiry}`, `#Instance=${instance}`, "#Caller=arn:aws:sts::123456789012:assumed-role/dockyard-deploy-test/run", "#Request=abc-123", key, "c2lnbmF0dXJlLWxpbmUtMQ==", "c2lnbmF0dXJlLWxpbmUtMg==", ""].join("\n");

/** Runs the script as sshd would (`%u` as its argument), with the metadata answers given. */
function run(user: string, md: { token?: boolean; instance?: string; keys?: string | null }): { out: string; calls: string } {
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(dir, "keys"), md.keys ?? "");
  fs.writeFileSync(path.join(dir, "calls"), "");
  fs.writeFileSync(
    path.join(bin, "curl"),
    `#!/bin/sh
printf '%s\\n' "$*" >> "${dir}/calls"
for a; do url=$a; done
case "$*" in *"-X PUT"*) ${md.token === false ? "exit 7" : 'echo TOKEN; exit 0'} ;; esac
case "$*" in *"X-aws-ec2-metadata-token: TOKEN"*) ;; *) exit 22 ;; esac
case "$url" in
  http://169.254.169.254/latest/meta-data/instance-id) printf '%s' "${md.instance ?? INSTANCE}" ;;
  http://169.254.169.254/latest/meta-data/managed-ssh-keys/active-keys/*/) ${md.keys === null ? "exit 22" : `cat "${dir}/keys"`} ;;
  *) exit 22 ;;
esac
`,
    { mode: 0o755 },
  );
  const out = execFileSync("/bin/sh", [SCRIPT, user], { encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin` } });
  return { out, calls: fs.readFileSync(path.join(dir, "calls"), "utf8") };
}

describe("eic-keys.sh (sshd AuthorizedKeysCommand for EC2 Instance Connect)", () => {
  it("prints the keys pushed for this instance that have not expired, nothing else", () => {
    const keys = [block(KEY_A, now() + 50), block(KEY_B, now() - 5), block(KEY_C, now() + 50, "i-0fedcba9876543210")].join("\n");
    const { out, calls } = run("admin", { keys });
    expect(out).toBe(`${KEY_A}\n`);
    expect(calls).toContain("http://169.254.169.254/latest/meta-data/managed-ssh-keys/active-keys/admin/");
    expect(calls).toContain("-X PUT");
  });

  it("prints nothing when the metadata service has no token, no keys, or another answer", () => {
    expect(run("admin", { token: false, keys: block(KEY_A, now() + 50) }).out).toBe("");
    expect(run("admin", { keys: null }).out).toBe("");
    expect(run("admin", { instance: "not-an-instance", keys: block(KEY_A, now() + 50) }).out).toBe("");
  });

  it("never asks for a user name that is not a plain login name", () => {
    for (const user of ["", "../admin", "admin/../../x", "a b", "Admin"]) {
      const { out, calls } = run(user, { keys: block(KEY_A, now() + 50) });
      expect(out, user).toBe("");
      expect(calls, user).toBe("");
    }
  });
});
