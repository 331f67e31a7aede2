/**
 * The stacks every contract runs over: the shipped dev, test and prod, and a generated
 * "large" stack that sits at the edges the schema allows (host names of exactly
 * HOST_NAME_MAX_LENGTH characters, group and service names of 32, a long registry
 * namespace, many groups, services, ports, volumes and secrets), so that a limit of a real
 * system is met there first. Each is rendered once per test file under the mock runtime.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { HOST_NAME_MAX_LENGTH, STACKS, STACKS_DIR, readEnvironmentFile } from "../../stacks";
import { renderStack, type Rendered, type RenderOptions } from "../../scripts/lib/render";

/** A name of exactly `n` characters of the schema's name alphabet, starting with `stem`. */
function nameOf(stem: string, n: number): string {
  return (stem + "-" + "x".repeat(n)).slice(0, n - 1) + "z";
}

const LARGE_HOSTS = 10;
/** 15 + 1 + 32 + 1 + 2 ("10") = 51 = HOST_NAME_MAX_LENGTH. */
export const LARGE_STACK = nameOf("contract", HOST_NAME_MAX_LENGTH - 32 - 2 - String(LARGE_HOSTS).length);
const digest = (i: number) => `sha256:${i.toString(16).padStart(2, "0").repeat(32)}`;

/** Writes the large stack's environment.yaml and Pulumi.<LARGE_STACK>.yaml into a temp dir. */
export function writeLargeStack(): RenderOptions {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-contract-"));
  const env = structuredClone(readEnvironmentFile(LARGE_STACK)) as Record<string, any>;
  const web = env.services.web;
  const groups = [nameOf("workers", 32), nameOf("edge", 32), nameOf("batch", 32)];
  env.hostGroups = Object.fromEntries(groups.map((g) => [g, { role: nameOf("role", 32), dataMount: "/var/lib/dockyard" }]));
  env.services = {};
  // As a committed stack file holds them: Pulumi's ciphertext (a plaintext one is refused).
  const secrets: Record<string, { secure: string }> = {};
  const images: Record<string, string> = {};
  const replicas: Record<string, number> = {};
  for (let i = 0; i < 12; i++) {
    const name = nameOf(`service${i}`, 32);
    const group = groups[i % 2];
    env.services[name] = {
      ...structuredClone(web),
      group,
      repository: undefined,
      publishPort: 8000 + i,
      containerPort: 8080,
      env: Object.fromEntries(Array.from({ length: 10 }, (_, k) => [`SETTING_${k}`, "x".repeat(200)])),
      secrets: { [`TOKEN_${i}`]: nameOf(`secret${i}`, 32), [`PASSWORD_${i}`]: nameOf(`password${i}`, 32) },
      volumes: { [nameOf(`data${i}`, 32)]: "/srv/data", [nameOf(`cache${i}`, 32)]: "/srv/cache" },
    };
    delete env.services[name].repository;
    secrets[nameOf(`secret${i}`, 32)] = { secure: `v1:c2VjcmV0:value-${i}` };
    secrets[nameOf(`password${i}`, 32)] = { secure: `v1:cGFzc3dk:password-${i}` };
    images[name] = digest(i + 1);
    replicas[name] = 2 * LARGE_HOSTS + 1;
  }
  // A group that publishes nothing: no proxy there.
  env.services[nameOf("worker", 32)] = { ...structuredClone(web), group: groups[2], publishPort: undefined, volumes: {}, env: {}, secrets: {} };
  delete env.services[nameOf("worker", 32)].publishPort;
  images[nameOf("worker", 32)] = digest(99);
  const namespace = `${"team-".repeat(20)}dockyard`;
  const config = {
    "aws:region": "eu-central-1",
    "dockyard:zones": ["eu-central-1a", "eu-central-1b", "eu-central-1c"],
    "dockyard:registry": `210987654321.dkr.ecr.us-east-2.amazonaws.com/${namespace}`,
    "dockyard:hostGroups": {
      [groups[0]]: { instanceType: "m6i.large", count: LARGE_HOSTS, rootVolumeGb: 30, dataVolumeGb: 16384, maxUnavailable: 3 },
      [groups[1]]: { instanceType: "t3.small", count: 3 },
      [groups[2]]: { instanceType: "c7i.large", count: 2 },
    },
    "dockyard:sshCidrs": ["198.51.100.0/24", "203.0.113.0/24"],
    "dockyard:ingressCidrs": ["0.0.0.0/0", "192.0.2.0/24"],
    "dockyard:sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq8y5mQ8qg8Y9m7v1q2w3e4r5t6y7u8i9o0p1a2s3d4 operator@example.com",
    "dockyard:proxyImage": digest(200),
    "dockyard:images": images,
    "dockyard:replicas": replicas,
    "dockyard:secrets": secrets,
  };
  const environmentFile = path.join(dir, "environment.yaml");
  fs.writeFileSync(environmentFile, YAML.stringify(env));
  fs.writeFileSync(path.join(dir, `Pulumi.${LARGE_STACK}.yaml`), YAML.stringify({ config }));
  return { stacksDir: dir, environmentFile, timeoutMs: 540_000 };
}

/** The shipped stack whose hosts run on the local platform (issue 12): same program, another platform. */
export const LOCAL_STACK = "local";
/**
 * prod as it would be in swarm mode (issue 14): its own stack file, the shipped environment
 * with `fleet.mode: swarm`. A label, not a stack name: it renders the stack "prod".
 */
export const SWARM_STACK = "prod in swarm mode";

/** Writes the shipped environment with fleet.mode swarm and a copy of prod's stack file into a temp dir. */
export function writeSwarmStack(stack = "prod"): RenderOptions {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-contract-swarm-"));
  const env = structuredClone(readEnvironmentFile(stack)) as Record<string, any>;
  env.fleet = { mode: "swarm" };
  const environmentFile = path.join(dir, "environment.yaml");
  fs.writeFileSync(environmentFile, YAML.stringify(env));
  fs.copyFileSync(path.join(STACKS_DIR, `Pulumi.${stack}.yaml`), path.join(dir, `Pulumi.${stack}.yaml`));
  return { stacksDir: dir, environmentFile };
}

/** Every stack the contracts run over: the shipped ones, prod in swarm mode and the large generated one. */
export const CONTRACT_STACKS = [...STACKS, LOCAL_STACK, SWARM_STACK, LARGE_STACK] as const;

let large: RenderOptions | undefined;
const renders = new Map<string, Promise<Rendered>>();
/** The render of one contract stack (cached per test file). */
export function contractRender(stack: string): Promise<Rendered> {
  if (!renders.has(stack)) {
    if (stack === SWARM_STACK) renders.set(stack, renderStack("prod", writeSwarmStack("prod")));
    else renders.set(stack, renderStack(stack, stack === LARGE_STACK ? (large ??= writeLargeStack()) : {}));
  }
  return renders.get(stack)!;
}
