import { describe, it, expect } from "vitest";
import { useMocks, promisify, settle } from "../helpers/pulumi";
import { loadStackSpec, pinTag } from "../../stacks";
import { ImageRegistry, lifecyclePolicy, repositoryName } from "../../components/registry";

const mocks = useMocks("dev");

const D1 = "sha256:" + "1".repeat(64);

describe("pure registry helpers", () => {
  it("names a repository by its path after the registry host", () => {
    expect(repositoryName("123456789012.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev/web")).toBe("dockyard-dev/web");
  });

  it("the lifecycle policy only ever selects untagged images", () => {
    const policy = JSON.parse(lifecyclePolicy(14));
    expect(policy.rules).toHaveLength(1);
    for (const rule of policy.rules) {
      expect(rule.selection.tagStatus).toBe("untagged");
      expect(rule.selection).not.toHaveProperty("tagPrefixList");
      expect(rule.selection).not.toHaveProperty("tagPatternList");
    }
    expect(policy.rules[0].selection).toMatchObject({ countType: "sinceImagePushed", countUnit: "days", countNumber: 14 });
    expect(() => lifecyclePolicy(0)).toThrow(/1 to 3650/);
  });

  it("pin tags are derived from the digest and rejected for tags", () => {
    expect(pinTag(D1)).toBe(`pin-sha256-${"1".repeat(64)}`);
    expect(pinTag(D1).length).toBeLessThanOrEqual(128);
    expect(() => pinTag("latest")).toThrow(/not a digest/);
  });
});

describe("ImageRegistry on the mock runtime", () => {
  it("creates one scanned, immutable repository per service with the lifecycle policy", async () => {
    const spec = loadStackSpec("prod");
    const reg = new ImageRegistry("registry", { stack: "prod", registry: spec.registry, services: spec.services, extraRepositories: ["haproxy"] });
    await settle(30);
    const repos = mocks.ofType("aws:ecr/repository:Repository");
    expect(repos.map((r) => r.inputs.name).sort()).toEqual(["dockyard-prod/haproxy", "dockyard-prod/web"]);
    for (const r of repos) {
      expect(r.inputs.imageTagMutability).toBe("IMMUTABLE");
      expect(r.inputs.imageScanningConfiguration).toEqual({ scanOnPush: true });
      expect(r.inputs.forceDelete).toBe(false);
    }
    const policies = mocks.ofType("aws:ecr/lifecyclePolicy:LifecyclePolicy");
    expect(policies).toHaveLength(2);
    expect(JSON.parse(String(policies[0].inputs.policy)).rules[0].selection.tagStatus).toBe("untagged");
    const out = await promisify(reg.repositories);
    expect(out.web.name).toBe("dockyard-prod/web");
    expect(reg.registryHost).toBe("123456789012.dkr.ecr.eu-west-1.amazonaws.com");
  });

  it("creates FIPS-endpoint repositories in the region the registry host names", async () => {
    const reg = new ImageRegistry("fips", {
      stack: "gov",
      registry: "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/dockyard-gov",
      services: [{ name: "web", repository: "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/dockyard-gov/web" }],
    });
    await settle(30);
    const repo = mocks.ofType("aws:ecr/repository:Repository").find((r) => r.name === "fips-web")!;
    expect(repo.inputs).toMatchObject({ region: "us-gov-west-1", name: "dockyard-gov/web" });
    expect(reg.registryHost).toBe("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com");
  });

  it("refuses a registry that is not ECR, naming the stack and key", () => {
    expect(() => new ImageRegistry("bad", { stack: "local", registry: "127.0.0.1:5001/dockyard", services: [] })).toThrow(
      /stack "local": config\.dockyard:registry: "127\.0\.0\.1:5001\/dockyard" is not an ECR registry/,
    );
  });
});
