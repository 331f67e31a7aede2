/**
 * Dockyard's policy pack: the security invariants of policy/checks.ts, each a mandatory
 * stack policy, for `pulumi preview --policy-pack policy` (and `pulumi up`, whose preview
 * runs it first). The same check functions run in `npm test` over every stack's render
 * (test/policy/checks.test.ts); this file only adapts what the engine hands a policy.
 */
import { PolicyPack, type StackValidationPolicy } from "@pulumi/policy";
import { CHECKS, fromPolicyResource, stackOfUrn, type Check } from "./checks";

/**
 * One check as a stack policy: it sees every resource at once (a secret known to one
 * resource must not appear in another; the Docker provider and the stack's outputs are
 * among them), after the engine computed the stack's new state. A stack policy runs at
 * the end of a preview or update: the preview is the gate.
 */
export function stackPolicy(check: Check): StackValidationPolicy {
  return {
    name: `dockyard-${check.id}`,
    description: check.description,
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
      if (args.resources.length === 0) return;
      const stack = stackOfUrn(args.resources[0].urn);
      for (const message of check.check(args.resources.map(fromPolicyResource), stack)) reportViolation(message);
    },
  };
}

export const policies = CHECKS.map(stackPolicy);

new PolicyPack("dockyard", {
  description: "Dockyard's security invariants: IMDSv2, encrypted volumes, no Docker API on TCP, no public SSH in prod, images by digest, no plaintext secrets, host keys checked, detailed monitoring in prod",
  enforcementLevel: "mandatory",
  policies,
});
