import { describe, it, expect } from "vitest";
import { dockerHostUrl, knownHostsLine, sshOptions } from "../../components/connection";

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
