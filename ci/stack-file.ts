/**
 * `npx tsx ci/stack-file.ts <stack>`: the check every CI job runs before Pulumi opens a stack
 * (issue 24 item 4). The stack's files must parse and its stack file must name its KMS key
 * and carry the committed `encryptedkey` (stacks/secrets-provider.ts ciStackFileProblems);
 * otherwise Pulumi would wrap a new data key with kms:Encrypt, which CI's roles may not do.
 * Prints the stack file's secretsprovider on stdout (for `pulumi stack select --create
 * --secrets-provider`), exit 0; a problem is one line per problem on stderr, exit 2.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, loadStackSpec, readStackFile } from "../stacks";
import { ciStackFileProblems, type StackFileEncryption } from "../stacks/secrets-provider";

export function checkStackFile(stack: string, dir?: string): { provider: string } | { problems: string[] } {
  try {
    // Another checkout's stacks/ (deploy-prod: test's tested commit in program/) comes with its
    // own environment.yaml: the stack file is checked against that, not this checkout's.
    const environmentFile = dir && fs.existsSync(path.join(dir, "environment.yaml")) ? path.join(dir, "environment.yaml") : undefined;
    const spec = loadStackSpec(stack, dir ? { dir, ...(environmentFile ? { environmentFile } : {}) } : {});
    const other = (readStackFile(stack, dir).other ?? {}) as StackFileEncryption;
    const file = path.join("stacks", `Pulumi.${stack}.yaml`);
    const problems = ciStackFileProblems(stack, file, spec.region, other);
    return problems.length > 0 ? { problems } : { provider: String(other.secretsprovider) };
  } catch (e) {
    if (e instanceof ConfigError) return { problems: e.problems };
    throw e;
  }
}

if (require.main === module) {
  const [stack, ...rest] = process.argv.slice(2);
  if (!stack || rest.length > 0) {
    process.stderr.write("usage: npx tsx ci/stack-file.ts <stack>\n");
    process.exit(2);
  }
  const r = checkStackFile(stack, process.env.DOCKYARD_STACKS_DIR);
  if ("problems" in r) {
    process.stderr.write(r.problems.map((p) => `${p}\n`).join(""));
    process.exit(2);
  }
  process.stdout.write(`${r.provider}\n`);
}
