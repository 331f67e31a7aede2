/**
 * The schema refuses, before any resource, stacks that a real system would refuse at
 * `pulumi up` (the rules and their sources are in test/contracts/rules.ts): host names
 * too long for the IAM role autoname, and more inbound security group rules than EC2 allows.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, HOST_NAME_MAX_LENGTH, parseEnvironment, readEnvironmentFile, readStackFile } from "../../stacks";

const env = () => structuredClone(readEnvironmentFile("dev")) as Record<string, any>;
const config = () => structuredClone(readStackFile("dev").config) as Record<string, any>;
function problems(stack: string, c: Record<string, unknown>, e: unknown = env()): string[] {
  try {
    parseEnvironment(stack, e, { config: c });
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
}

describe("host name length", () => {
  it("allows host names of exactly HOST_NAME_MAX_LENGTH characters and refuses one more", () => {
    const c = config();
    c["dockyard:hostGroups"].app.count = 10;
    // <stack>-app-10: stack + 7 characters.
    const fits = "s".repeat(HOST_NAME_MAX_LENGTH - 7);
    expect(problems(fits, c)).toEqual([]);
    const over = `${fits}x`;
    expect(problems(over, c)).toEqual([
      `stack "${over}": stacks/Pulumi.${over}.yaml: config.dockyard:hostGroups.app: host names '<stack>-<group>-<n>' reach 52 characters ("${over}-app-10"); at most 51 are allowed (each host's IAM role is '<host>-role' plus Pulumi's 8-character random suffix, and IAM role names end at 64): use a shorter stack or group name`,
    ]);
  });
});

describe("security group rules", () => {
  // Each security group on its own: the front door's (ports x ingressCidrs) and each host's
  // (sshCidrs + one rule per port whose source is the front door's group).
  it("refuses more than 60 inbound rules on the front door's security group (each CIDR counts), naming the key and the arithmetic", () => {
    const c = config();
    c["dockyard:sshCidrs"] = ["198.51.100.0/24"];
    c["dockyard:ingressCidrs"] = Array.from({ length: 61 }, (_, i) => `10.${i}.0.0/16`);
    expect(problems("dev", c)).toEqual([
      'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:ingressCidrs: the front door of host group "app" would need 61 inbound security group rules (1 published ports x 61 ingressCidrs); EC2 allows at most 60: use fewer or wider CIDRs',
    ]);
    // 60 CIDRs fit: they are on the front door's group, not on the hosts' (which has SSH too).
    c["dockyard:ingressCidrs"] = c["dockyard:ingressCidrs"].slice(0, 60);
    expect(problems("dev", c)).toEqual([]);
  });

  it("refuses more than 60 inbound rules on a host's security group: sshCidrs plus one per published port", () => {
    const c = config();
    c["dockyard:ingressCidrs"] = ["0.0.0.0/0"];
    c["dockyard:sshCidrs"] = Array.from({ length: 60 }, (_, i) => `10.${i}.0.0/16`);
    expect(problems("dev", c)).toEqual([
      'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:sshCidrs: each host of group "app" would need 61 inbound security group rules (60 sshCidrs + 1 published ports from the front door); EC2 allows at most 60: use fewer or wider CIDRs',
    ]);
    c["dockyard:sshCidrs"] = c["dockyard:sshCidrs"].slice(0, 59);
    expect(problems("dev", c)).toEqual([]);
  });

  it("counts no security group rules for a local group (it has none)", () => {
    const c = config();
    c["dockyard:ingressCidrs"] = Array.from({ length: 61 }, (_, i) => `10.${i}.0.0/16`);
    c["dockyard:hostGroups"].app.platform = "local";
    expect(problems("dev", c).filter((m) => /security group rules/.test(m))).toEqual([]);
  });
});

describe("instance type architecture", () => {
  it("knows Graviton families by name", async () => {
    const { instanceArchitecture } = await import("../../stacks");
    for (const t of ["c7g.medium", "m6gd.large", "t4g.small", "c6gn.xlarge", "im4gn.large", "is4gen.medium", "a1.large", "x2gd.xlarge", "g5g.xlarge", "c8g.large"]) expect(instanceArchitecture(t), t).toBe("arm64");
    for (const t of ["t3.small", "m6i.large", "c7i.large", "g4dn.xlarge", "m7i-flex.large", "r7iz.large", "m6a.large", "p5.48xlarge", "inf2.xlarge"]) expect(instanceArchitecture(t), t).toBe("x86_64");
  });

  it("refuses an instance type of the other architecture than the environment's OS image", () => {
    const c = config();
    c["dockyard:hostGroups"].app.instanceType = "t4g.small";
    expect(problems("dev", c)).toEqual([
      'stack "dev": stacks/Pulumi.dev.yaml: config.dockyard:hostGroups.app.instanceType: t4g.small is an arm64 instance type, but stacks/environment.yaml os.architecture is x86_64 (EC2 refuses an AMI of the other architecture); allowed: an x86_64 type (not a Graviton type such as c7g or t4g)',
    ]);
    const e = env();
    e.os.architecture = "arm64";
    expect(problems("dev", c, e)).toEqual([]);
  });
});

describe("repositories", () => {
  it("refuses two services sharing one repository", () => {
    const e = env();
    e.services.api = { ...structuredClone(e.services.web), publishPort: 81, repository: "web" };
    const c = config();
    c["dockyard:images"].api = c["dockyard:images"].web;
    expect(problems("dev", c, e)).toEqual(['stack "dev": stacks/environment.yaml: services.api.repository: "web" is already service "web"\'s repository; each service has its own']);
    e.services.api.repository = "api";
    expect(problems("dev", c, e)).toEqual([]);
  });
});

describe("security group names", () => {
  it("refuses a stack whose host names (and so security group names) begin with sg-", () => {
    expect(problems("sg", config())).toEqual([
      'stack "sg": stacks/Pulumi.sg.yaml: config.dockyard:hostGroups.app: host names begin with "sg-", and so would each host\'s security group name, which EC2 refuses (CreateSecurityGroup: names cannot start with sg-): use another stack name',
    ]);
    expect(problems("sgx", config())).toEqual([]);
  });
});
