/**
 * Which secrets provider a stack's file must name (README "State and secrets").
 *
 * dev, test and prod, and every developer's dev-<owner> stack on aws, encrypt their secrets with
 * a data key wrapped by the environment's AWS KMS key (`awskms://alias/dockyard-<env>`, in
 * the stack's region), never with a passphrase: who may decrypt a stack's secrets is then
 * who IAM allows kms:Decrypt on that key, and CI needs no passphrase secret. Pulumi writes
 * `encryptedkey` (the wrapped data key) into the stack file when it first opens the stack's
 * secrets manager (pkg/secrets/cloud/manager.go NewCloudSecretsManager: no key yet ->
 * generateNewDataKey, 32 random bytes made locally and wrapped with kms:Encrypt, never
 * GenerateDataKey; then kms:Decrypt unwraps it, as on every later run). A stack file without
 * one would make CI wrap a fresh key on every run, which its roles may not (ci/iam/policies.ts),
 * so CI refuses it first (ciStackFileProblems). `encryptionsalt` belongs to the passphrase
 * provider only and is dropped when a cloud provider takes over (same function), so its
 * presence means a passphrase.
 *
 * The one exception: a dev-<owner> stack whose hosts all run on the `local` platform (a
 * dev server on a laptop, `dockyard dev-server up --platform local`) may use the passphrase
 * provider instead, because its owner may have no cloud account at all; dev's KMS key is
 * still allowed there. No other stack may (passphraseAllowed).
 */
import type { HostPlatform } from "./schema";

export type { HostPlatform };

/** The environment whose KMS key a stack uses: dev-<owner> stacks use dev's. */
export function kmsEnvironment(stack: string): string | undefined {
  if (stack === "dev" || stack === "test" || stack === "prod") return stack;
  if (/^dev-[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(stack)) return "dev";
  return undefined;
}

/**
 * May this stack's secrets be encrypted with a passphrase? Only a developer's dev-<owner>
 * stack on the local platform (no cloud account needed to run it).
 */
export function passphraseAllowed(stack: string, platform: HostPlatform): boolean {
  return platform === "local" && kmsEnvironment(stack) === "dev" && stack !== "dev";
}

/** The platform of a stack file's hosts: `local` when every host group runs there, else `aws` (an AWS account is needed anyway). */
export function stackPlatform(hostGroups: unknown): HostPlatform {
  const groups = hostGroups !== null && typeof hostGroups === "object" ? Object.values(hostGroups as Record<string, { platform?: unknown } | null>) : [];
  return groups.length > 0 && groups.every((g) => g?.platform === "local") ? "local" : "aws";
}

/** `awskms://alias/dockyard-<env>?region=<region>`, or undefined for a stack with no requirement. */
export function requiredSecretsProvider(stack: string, region: string): string | undefined {
  const env = kmsEnvironment(stack);
  return env ? `awskms://alias/dockyard-${env}?region=${region}` : undefined;
}

/** The top-level keys of a stack file that say how its secrets are encrypted. */
export interface StackFileEncryption {
  secretsprovider?: unknown;
  encryptionsalt?: unknown;
  encryptedkey?: unknown;
}

/**
 * What is wrong with a stack file's encryption settings, each naming the stack, the file and
 * the key. `platform` is the stack's (stackPlatform of its dockyard:hostGroups): with
 * passphraseAllowed, the passphrase provider (no `secretsprovider`, or `passphrase`, with
 * its `encryptionsalt`) passes as well as the KMS key.
 */
export function secretsProviderProblems(stack: string, file: string, region: string, f: StackFileEncryption, platform: HostPlatform = "aws"): string[] {
  const want = requiredSecretsProvider(stack, region);
  if (!want) return [];
  if (passphraseAllowed(stack, platform) && (f.secretsprovider === undefined || f.secretsprovider === "passphrase")) return [];
  const at = `stack "${stack}": ${file}`;
  const p: string[] = [];
  if (f.secretsprovider !== want) {
    const allowed = passphraseAllowed(stack, platform) ? `${want}, or passphrase (a dev server on the local platform)` : want;
    p.push(`${at}: secretsprovider: is ${f.secretsprovider === undefined ? "missing (the passphrase provider)" : JSON.stringify(f.secretsprovider)}; allowed: ${allowed}`);
  }
  if (f.encryptionsalt !== undefined) {
    p.push(`${at}: encryptionsalt: a passphrase-encrypted key; allowed: none (secrets are wrapped by KMS; remove it and re-encrypt with \`pulumi stack change-secrets-provider --stack ${stack} "${want}"\`)`);
  }
  if (f.encryptedkey !== undefined && (typeof f.encryptedkey !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(f.encryptedkey))) {
    p.push(`${at}: encryptedkey: not a base64 KMS-wrapped data key; allowed: what pulumi writes there`);
  }
  return p;
}

/**
 * What CI refuses in a stack file before Pulumi opens it: secretsProviderProblems, and no
 * `encryptedkey` for a stack on KMS. Without one, Pulumi would make and wrap a new data key
 * with kms:Encrypt (manager.go generateNewDataKey), which CI's roles may not do; the one-time
 * set-up makes it and the stack file is committed with it (README "One-time set-up").
 */
export function ciStackFileProblems(stack: string, file: string, region: string, f: StackFileEncryption): string[] {
  const p = secretsProviderProblems(stack, file, region, f, "aws");
  const want = requiredSecretsProvider(stack, region);
  if (want && f.encryptedkey === undefined) {
    p.push(
      `stack "${stack}": ${file}: encryptedkey: missing; without it Pulumi makes a new data key and wraps it with kms:Encrypt, which CI's roles may not do; allowed: the key the one-time set-up commits (\`npx pulumi stack init ${stack} --secrets-provider '${want}'\` with the set-up's credentials, then commit ${file})`,
    );
  }
  return p;
}
