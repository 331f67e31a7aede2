/**
 * `npx tsx ci/images.ts <stack>`: every image CI puts into a stack's registry (issue 24 item 8),
 * one line `<name> <repository>` each: every service of stacks/environment.yaml, with a digest
 * in the stack file or not yet (a new stack, a new service: spec.awaitingImage), and the
 * per-host proxy `haproxy <registry>/haproxy` when a service publishes a port. ci/build-images.sh
 * reads these lines: it builds each service from stacks/services/<name> and mirrors HAProxy.
 * Bad input (unknown stack, a stack file that does not parse): its problems on stderr, exit 2.
 */
import { ConfigError, PROXY_REPOSITORY, loadStackSpec, proxyRepository, type EnvironmentSpec } from "../stacks";

export function ciImages(spec: EnvironmentSpec): { name: string; repository: string }[] {
  const services = [...spec.services, ...spec.awaitingImage].map(({ name, repository }) => ({ name, repository }));
  const proxy = spec.proxyImage !== undefined || spec.proxyAwaitingImage ? [{ name: PROXY_REPOSITORY, repository: proxyRepository(spec.registry) }] : [];
  return [...services.sort((a, b) => a.name.localeCompare(b.name)), ...proxy];
}

if (require.main === module) {
  const [stack, ...rest] = process.argv.slice(2);
  if (!stack || rest.length > 0) {
    process.stderr.write("usage: npx tsx ci/images.ts <stack>\n");
    process.exit(2);
  }
  try {
    const spec = loadStackSpec(stack, process.env.DOCKYARD_STACKS_DIR ? { dir: process.env.DOCKYARD_STACKS_DIR } : {});
    process.stdout.write(ciImages(spec).map((i) => `${i.name} ${i.repository}\n`).join(""));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(e.problems.map((p) => `${p}\n`).join(""));
    process.exit(2);
  }
}
