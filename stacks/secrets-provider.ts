/**
 * Which secrets provider a stack's file must name (README "State and secrets").
 *
 * dev, test and prod, and every developer's dev-<owner> stack, encrypt their secrets with
 * a data key wrapped by the environment's AWS KMS key (`awskms://alias/dockyard-<env>`, in
 * the stack's region), never with a passphrase: who may decrypt a stack's secrets is then
 * who IAM allows kms:Decrypt on that key, and CI needs no passphrase secret. Pulumi writes
 * `encryptedkey` (the wrapped data key) into the stack file the first time it encrypts a
 * value (pkg/secrets/cloud/manager.go NewCloudSecretsManager: no key yet -> KMS
 * GenerateDataKey); `encryptionsalt` belongs to the passphrase provider only and is dropped
 * when a cloud provider takes over (same function), so its presence means a passphrase.
 */

/** The environment whose KMS key a stack uses: dev-<owner> stacks use dev's. */
export function kmsEnvironment(stack: string): string | undefined {
  if (stack === "dev" || stack === "test" || stack === "prod") return stack;
  if (/^dev-[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(stack)) return "dev";
  return undefined;
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

/** What is wrong with a stack file's encryption settings, each naming the stack, the file and the key. */
export function secretsProviderProblems(stack: string, file: string, region: string, f: StackFileEncryption): string[] {
  const want = requiredSecretsProvider(stack, region);
  if (!want) return [];
  const at = `stack "${stack}": ${file}`;
  const p: string[] = [];
  if (f.secretsprovider !== want) {
    p.push(`${at}: secretsprovider: is ${f.secretsprovider === undefined ? "missing (the passphrase provider)" : JSON.stringify(f.secretsprovider)}; allowed: ${want}`);
  }
  if (f.encryptionsalt !== undefined) {
    p.push(`${at}: encryptionsalt: a passphrase-encrypted key; allowed: none (secrets are wrapped by KMS; remove it and re-encrypt with \`pulumi stack change-secrets-provider --stack ${stack} "${want}"\`)`);
  }
  if (f.encryptedkey !== undefined && (typeof f.encryptedkey !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(f.encryptedkey))) {
    p.push(`${at}: encryptedkey: not a base64 KMS-wrapped data key; allowed: what pulumi writes there`);
  }
  return p;
}
