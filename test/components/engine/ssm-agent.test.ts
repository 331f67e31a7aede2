/**
 * components/engine/steps/ssm-agent.sh run for real by bash (issue 24 item 1): the step as
 * the user-data writes it, with only its `. /usr/local/lib/dockyard/lib.sh` line pointed at
 * the real lib.sh in a temporary directory (which sources an env file rendered by
 * renderEnvironment's keys), real curl fetching a package from a file:// directory laid
 * out like AWS's bucket, real sha256sum and real GnuPG. Stand-ins on PATH only for what
 * would change this machine: dpkg (records the install), dpkg-query (answers the version)
 * and systemctl (no unit present; enable succeeds).
 *
 * What this cannot show: AWS's real package and its real signature (no AWS here); the host
 * harness (test/host/engine.int.test.ts) installs a stand-in package on a booted host.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENGINE_FILES_DIR, LIB_PATH, shq } from "../../../components/engine";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-ssm-agent-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const bucket = path.join(dir, "bucket");
const pkg = path.join(bucket, "amazon-ssm-agent.deb");
const gnupg = path.join(dir, "signer");
let fingerprint = "";
let otherFingerprint = "";

function gpg(args: string[], home = gnupg): string {
  return execFileSync("gpg", ["--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}
function fpr(uid: string): string {
  return gpg(["--with-colons", "--fingerprint", uid]).split("\n").find((l) => l.startsWith("fpr:"))!.split(":")[9];
}

beforeAll(() => {
  fs.mkdirSync(bucket, { recursive: true });
  fs.mkdirSync(gnupg, { mode: 0o700 });
  fs.writeFileSync(pkg, "not AWS's agent: bytes that stand for amazon-ssm-agent.deb\n");
  // A signing key made (and used) in 2020 that expired a day later, as AWS's 2023 key has
  // expired since the pinned version was signed: its old signature must still count.
  gpg(["--faked-system-time", "20200101T000000!", "--quick-gen-key", "Signer <signer@example.invalid>", "ed25519", "sign", "1d"]);
  fingerprint = fpr("signer@example.invalid");
  gpg(["--faked-system-time", "20200101T000100!", "--local-user", fingerprint, "--detach-sign", "-o", `${pkg}.sig`, pkg]);
  gpg(["--quick-gen-key", "Other <other@example.invalid>", "ed25519", "sign", "1y"]);
  otherFingerprint = fpr("other@example.invalid");
  fs.writeFileSync(path.join(dir, "signer.asc"), gpg(["--armor", "--export", fingerprint]));
  fs.writeFileSync(path.join(dir, "other.asc"), gpg(["--armor", "--export", otherFingerprint]));
});

const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/** Runs the step with these env values; returns its exit status, stderr and what the stand-ins recorded. */
function step(env: Record<string, string>, installed = "3.3.5226.0-1"): { rc: number; err: string; dpkg: string } {
  const run = fs.mkdtempSync(path.join(dir, "run-"));
  const bin = path.join(run, "bin");
  fs.mkdirSync(bin);
  const stand = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  stand("dpkg", `echo "$*" >> ${run}/dpkg.log`);
  stand("dpkg-query", `[ -e ${run}/dpkg.log ] && echo "install ok installed ${installed}"; exit 0`);
  stand("systemctl", "exit 0");
  fs.writeFileSync(path.join(run, "env"), `${Object.entries(env).map(([k, v]) => `${k}=${shq(v)}`).join("\n")}\n`);
  // lib.sh as written to the host, sourcing this run's env instead of /usr/local/lib/dockyard/env;
  // it puts the system's directories first on PATH, so the stand-ins go back in front after it.
  const lib = fs.readFileSync(path.join(ENGINE_FILES_DIR, "lib.sh"), "utf8").replace("/usr/local/lib/dockyard/env", `${run}/env`);
  fs.writeFileSync(path.join(run, "lib.sh"), `${lib}PATH=${bin}:$PATH\n`);
  const script = fs.readFileSync(path.join(ENGINE_FILES_DIR, "steps/ssm-agent.sh"), "utf8");
  expect(script).toContain(`\n. ${LIB_PATH}\n`);
  fs.writeFileSync(path.join(run, "ssm-agent.sh"), script.replace(`\n. ${LIB_PATH}\n`, `\n. ${run}/lib.sh\n`));
  const r = spawnSync("bash", [path.join(run, "ssm-agent.sh")], {
    encoding: "utf8",
    timeout: 60_000,
    env: { PATH: `${bin}:${process.env.PATH}`, HOME: run, BASH_ENV: "" },
  });
  const dpkg = fs.existsSync(path.join(run, "dpkg.log")) ? fs.readFileSync(path.join(run, "dpkg.log"), "utf8") : "";
  return { rc: r.status ?? -1, err: r.stderr, dpkg };
}

const base = () => ({ SSM_AGENT_URL: `file://${bucket}`, SSM_AGENT_VERSION: "3.3.5226.0", SSM_AGENT_KEY: path.join(dir, "signer.asc"), SSM_AGENT_KEY_FINGERPRINT: fingerprint });

describe("ssm-agent.sh: the pinned package, checked before it is installed (issue 24 item 1)", () => {
  it("with a pinned sha256 that matches: installed, no signature fetched or checked", () => {
    // The key and fingerprint are wrong on purpose: with a sha256 pinned no key takes part.
    const r = step({ ...base(), SSM_AGENT_SHA256: sha256(pkg), SSM_AGENT_KEY: "/nonexistent", SSM_AGENT_KEY_FINGERPRINT: "" });
    expect(r.err).toContain(`amazon-ssm-agent.deb: sha256 ${sha256(pkg)} as pinned`);
    expect(r.rc).toBe(0);
    expect(r.dpkg).toMatch(/^-i \S+\/amazon-ssm-agent\.deb\n$/);
  });

  it("with a pinned sha256 that does not match: refused, exit 1, dpkg never runs", () => {
    const wrong = createHash("sha256").update("another package").digest("hex");
    const r = step({ ...base(), SSM_AGENT_SHA256: wrong });
    expect(r.rc).toBe(1);
    expect(r.err).toContain(`has sha256 ${sha256(pkg)}, pinned ${wrong}; not installed`);
    expect(r.dpkg).toBe("");
  });

  it("no sha256 pinned: a signature made while the pinned key was valid verifies after the key expired (gpg VALIDSIG with EXPKEYSIG)", () => {
    const r = step({ ...base(), SSM_AGENT_SHA256: "" });
    expect(r.err).toContain(`signature valid (key ${fingerprint})`);
    expect(r.rc).toBe(0);
    expect(r.dpkg).not.toBe("");
  });

  it("no sha256 pinned: a key with another fingerprint is refused, and so is a package the key did not sign", () => {
    const other = step({ ...base(), SSM_AGENT_SHA256: "", SSM_AGENT_KEY: path.join(dir, "other.asc") });
    expect(other.rc).toBe(1);
    expect(other.err).toContain(`has fingerprint '${otherFingerprint}', expected ${fingerprint}`);
    const wrongKey = step({ ...base(), SSM_AGENT_SHA256: "", SSM_AGENT_KEY: path.join(dir, "other.asc"), SSM_AGENT_KEY_FINGERPRINT: otherFingerprint });
    expect(wrongKey.rc).toBe(1);
    expect(wrongKey.err).toContain("its signature does not verify");
    expect(wrongKey.dpkg).toBe("");
  });

  it("a package that installs another version than the pinned one stops the boot", () => {
    const r = step({ ...base(), SSM_AGENT_SHA256: sha256(pkg) }, "3.3.9999.0-1");
    expect(r.rc).toBe(1);
    expect(r.err).toContain("installed amazon-ssm-agent 3.3.9999.0-1, pinned 3.3.5226.0");
  });
});
