/**
 * The CI roles that run `dockyard smoke <stack> --front-door health` after their `pulumi up`
 * (deploy-test.yml up-test: dockyard-ci-test; deploy-prod.yml up-prod: dockyard-ci-prod) may
 * call what it calls: elasticloadbalancing:DescribeTargetHealth on the stack's target group
 * (scripts/lib/aws.ts describeTargetHealthArgv). Decided by the offline IAM policy simulator
 * (@cloud-copilot/iam-simulate) over the real documents ci/iam/policies.ts renders.
 * DescribeTargetHealth takes no resource-level scope in AWS's Service Authorization
 * Reference, so the grant is on "*" (ci/iam/resource-actions.ts, the TargetGroupAttachment's
 * read); the preview role has it too, which is harmless: it only reads.
 */
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { describe, expect, it } from "vitest";
import { ciPolicies, type PolicyDocument } from "../../ci/iam/policies";
import { describeTargetHealthArgv } from "../../scripts/lib/aws";

const ACCOUNT = "123456789012";
const REGION = "eu-west-1";
const policies = ciPolicies({ account: ACCOUNT, region: REGION, bucket: "dockyard-pulumi-state" });

async function decide(role: string, policy: PolicyDocument, action: string, resource: string): Promise<string> {
  const r = await runSimulation(
    {
      identityPolicies: [{ name: role, policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      request: { action, principal: `arn:aws:sts::${ACCOUNT}:assumed-role/${role}/GitHubActions`, resource: { accountId: ACCOUNT, resource }, contextVariables: {} },
    } as Parameters<typeof runSimulation>[0],
    {},
  );
  return r.resultType === "error" ? `error: ${JSON.stringify(r.errors)}` : r.overallResult;
}

describe("smoke --front-door health under the CI roles' IAM", () => {
  it.each([
    ["dockyard-ci-test", "test"],
    ["dockyard-ci-prod", "prod"],
  ])("%s may DescribeTargetHealth of its stack's target group", async (role, stack) => {
    const arn = `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:targetgroup/${stack}-app-80/0123456789abcdef`;
    // The one call smoke makes for it: `aws elbv2 describe-target-health` (API DescribeTargetHealth).
    expect(describeTargetHealthArgv(REGION, arn)).toEqual(["aws", "elbv2", "describe-target-health", "--region", REGION, "--target-group-arn", arn, "--output", "json"]);
    // No resource-level scope (the simulator refuses an ARN for it: must.use.wildcard): asked on "*".
    expect(await decide(role, policies[role], "elasticloadbalancing:DescribeTargetHealth", "*")).toBe("Allowed");
    // The role is no wider for it: another stack's target groups stay out of reach for writes.
    expect(await decide(role, policies[role], "elasticloadbalancing:DeregisterTargets", `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:targetgroup/other-app-80/0123456789abcdef`)).toBe("ImplicitlyDenied");
  });
});
