import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { dockerHostUrl, knownHostsLine, localProxyCommand, LOCAL_PROXY_SCRIPT, RETRY_SCRIPT, sshArgv, sshOptions, ssmProxyCommand, SSM_PROXY_SCRIPT } from "../../components/connection";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dockyard-host";

describe("host connection forms", () => {
  it("dockerHostUrl is the daemon over ssh://", () => {
    expect(dockerHostUrl("admin", "203.0.113.10")).toBe("ssh://admin@203.0.113.10");
  });

  it("knownHostsLine drops the comment and rejects a non-key", () => {
    expect(knownHostsLine("203.0.113.10", HOST_KEY)).toBe(`203.0.113.10 ${HOST_KEY.split(" ").slice(0, 2).join(" ")}`);
    expect(() => knownHostsLine("203.0.113.10", "not a key")).toThrow(/OpenSSH public key/);
    expect(() => knownHostsLine("a b", HOST_KEY)).toThrow(/not an IP address/);
  });

  it("sshOptions are flag/value pairs ssh(1) accepts as separate argv entries", () => {
    const opts = sshOptions(HOST_KEY);
    expect(opts.length % 2).toBe(0);
    for (let i = 0; i < opts.length; i += 2) expect(opts[i]).toBe("-o");
    expect(() => sshOptions("ssh-ed25519")).toThrow();
  });
});

describe("the Session Manager ProxyCommand and the retry wrapper (issue 11)", () => {
  it("ssmProxyCommand passes target and port as arguments, never in the script's text, for the stack's region and user", () => {
    const pc = ssmProxyCommand("eu-west-1", "admin");
    expect(pc).toBe(`sh -c '${SSM_PROXY_SCRIPT.replace(/@REGION@/g, "eu-west-1").replace(/@USER@/g, "admin")}' dockyard-ssm %h %p`);
    expect(SSM_PROXY_SCRIPT).not.toContain("'");
    expect(SSM_PROXY_SCRIPT).not.toMatch(/%[hp]/);
    expect(pc).toContain("--instance-os-user admin");
    expect(pc).toContain("--document-name AWS-StartSSHSession");
    expect(() => ssmProxyCommand("eu-west-1; rm -rf /", "admin")).toThrow(/not an AWS region/);
    expect(() => ssmProxyCommand("eu-west-1", "ad'min")).toThrow(/not a login name/);
  });

  it("localProxyCommand (issue 12) passes the container as an argument, with no quote and no %-sequence ssh would expand", () => {
    const pc = localProxyCommand("admin");
    expect(pc).toBe(`sh -c '${LOCAL_PROXY_SCRIPT.replace(/@USER@/g, "admin")}' dockyard-local %h %p`);
    expect(LOCAL_PROXY_SCRIPT).not.toContain("'");
    // ssh expands every %-sequence of a ProxyCommand (readconf.c percent_expand): only %h and %p may be there.
    expect(pc.match(/%./g)).toEqual(["%h", "%p"]);
    expect(pc).toContain('docker exec -i "$1" /usr/sbin/sshd -i');
    expect(() => localProxyCommand("ad'min")).toThrow(/not a login name/);
  });

  it("the scripts pass shellcheck as POSIX sh (the ProxyCommand runs under the user's shell, the wrapper under /bin/sh)", () => {
    for (const [name, body] of [
      ["ssm-proxy", SSM_PROXY_SCRIPT.replace(/@REGION@/g, "eu-west-1").replace(/@USER@/g, "admin")],
      ["local-proxy", LOCAL_PROXY_SCRIPT.replace(/@USER@/g, "admin")],
      ["retry", RETRY_SCRIPT],
    ]) {
      const r = spawnSync("shellcheck", ["--shell=sh", "-"], { input: `${body}\n`, encoding: "utf8" });
      expect(r.error, "shellcheck is installed by test/infra/20-lint-tools.sh").toBeUndefined();
      expect(`${name}: ${r.stdout}`).toBe(`${name}: `);
    }
  });

  it("sshArgv ends at the destination, after `--`, and refuses a target that could be read as an option", () => {
    const argv = sshArgv({ target: "i-0123456789abcdef0", user: "admin", hostPublicKey: HOST_KEY, proxyCommand: "true" });
    expect(argv[0]).toBe("ssh");
    expect(argv.slice(-2)).toEqual(["--", "admin@i-0123456789abcdef0"]);
    expect(argv).toContain("ProxyCommand=true");
    expect(() => sshArgv({ target: "-oProxyCommand=evil", user: "admin", hostPublicKey: HOST_KEY })).toThrow(/not an instance id/);
    expect(() => sshArgv({ target: "a b", user: "admin", hostPublicKey: HOST_KEY })).toThrow(/not an instance id/);
  });
});
