/**
 * The SSM agent every shipped stack installs (issue 24 item 1): one pinned version from the
 * region's versioned path, and a check that no expiring key can fail. When an architecture
 * has no pinned sha256 (components/engine.ts SSM_AGENT_SHA256), its hosts still depend on
 * the signing key in components/engine/keys/amazon-ssm-agent.asc: then that key must be
 * valid for 60 more days, read from the key itself by GnuPG (`--show-keys --with-colons`,
 * field 7 of the `pub` line: expiry, seconds since the epoch; doc/DETAILS in gnupg).
 *
 * The key shipped is AWS's current one (aws/eks-hybrid internal/ssm/source.go, aws/amazon-ecs-ami
 * files/amazon-ssm-agent.gpg; expires 2027-11-25): this test fails from 2027-09-26 unless
 * both architectures' sha256 are pinned or a newer key and version are shipped.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { OS_FAMILIES, loadStackSpec, type EnvironmentSpec } from "../../../stacks";
import { ENGINE_FILES_DIR, SSM_AGENT_KEY_FINGERPRINT, SSM_AGENT_SHA256, SSM_AGENT_VERSION, renderEnvironment, ssmAgentSource, type DebArch } from "../../../components/engine";

const DAY = 86_400;
const ARCHS = { x86_64: "amd64", arm64: "arm64" } as const;
function osFor(architecture: "x86_64" | "arm64"): EnvironmentSpec["os"] {
  const info = OS_FAMILIES["debian-12"];
  return { family: "debian-12", architecture, info, sshUser: info.sshUser };
}

/** The `pub` and `fpr` facts of an armored key, from GnuPG itself. */
function keyFacts(file: string): { fingerprint: string; expires: number | undefined } {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-keyfacts-"));
  try {
    const out = execFileSync("gpg", ["--homedir", home, "--batch", "--show-keys", "--with-colons", file], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const pub = out.split("\n").find((l) => l.startsWith("pub:"))!.split(":");
    const fpr = out.split("\n").find((l) => l.startsWith("fpr:"))!.split(":")[9];
    return { fingerprint: fpr, expires: pub[6] ? Number(pub[6]) : undefined };
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

describe("the SSM agent pin (issue 24 item 1)", () => {
  it("every host, whatever its stack, downloads the one pinned version from its region's versioned path, never latest/", () => {
    for (const region of ["eu-west-1", "us-east-2"]) {
      for (const [architecture, deb] of Object.entries(ARCHS) as ["x86_64" | "arm64", DebArch][]) {
        const s = ssmAgentSource({ stack: "prod", os: osFor(architecture), hostKey: { region } });
        expect(s.url).toBe(`https://s3.${region}.amazonaws.com/amazon-ssm-${region}/${SSM_AGENT_VERSION}/debian_${deb}`);
        expect(s.version).toBe(SSM_AGENT_VERSION);
        expect(s.sha256).toBe(SSM_AGENT_SHA256[deb]);
      }
    }
  });

  it("a pinned sha256 replaces the key: the env carries it and no key or fingerprint", () => {
    const spec = loadStackSpec("prod");
    const sha = "0".repeat(64);
    const env = renderEnvironment({
      stack: "prod", hostName: "prod-app-1", os: spec.os, engine: spec.engine, dataMount: "/var/lib/dockyard", dataDevice: "/dev/xvdf",
      hostKey: { ssmParameter: "/dockyard/prod/hosts/prod-app-1/ssh-host-key", region: spec.region },
      ssmAgent: { url: "https://mirror.example.invalid/ssm", publicKey: "", keyFingerprint: SSM_AGENT_KEY_FINGERPRINT, sha256: sha },
    });
    expect(env).toContain(`SSM_AGENT_SHA256='${sha}'\nSSM_AGENT_KEY=''\nSSM_AGENT_KEY_FINGERPRINT=''\n`);
    expect(() => ssmAgentSource({ stack: "prod", os: spec.os, hostKey: { region: spec.region }, ssmAgent: { url: "https://m.example.invalid", publicKey: "", keyFingerprint: SSM_AGENT_KEY_FINGERPRINT, sha256: "ABC" } })).toThrow(/stack "prod": ssmAgent.sha256 must be 64 lowercase hex digits/);
  });

  it("the shipped key is the one the fingerprint names", () => {
    expect(keyFacts(path.join(ENGINE_FILES_DIR, "keys/amazon-ssm-agent.asc")).fingerprint).toBe(SSM_AGENT_KEY_FINGERPRINT);
  });

  it("no architecture depends on a signing key that is expired or expires within 60 days", () => {
    const { expires } = keyFacts(path.join(ENGINE_FILES_DIR, "keys/amazon-ssm-agent.asc"));
    const now = Math.floor(Date.now() / 1000);
    const unpinned = (["amd64", "arm64"] as DebArch[]).filter((a) => SSM_AGENT_SHA256[a] === undefined);
    const days = expires === undefined ? Infinity : Math.floor((expires - now) / DAY);
    // Empty when every architecture has its sha256 pinned, or the key has 60 days left.
    expect(days >= 60 ? [] : unpinned.map((a) => `${a}: no sha256 pinned for ${SSM_AGENT_VERSION}, and the key ${SSM_AGENT_KEY_FINGERPRINT} ${days < 0 ? `expired ${-days} days ago` : `expires in ${days} days`}`)).toEqual([]);
  });
});
