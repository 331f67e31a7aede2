// OpenSSH public keys: the one parser for every key Dockyard reads (the deployer's key
// in a stack file, each host's generated host key).

/** Key types Dockyard accepts (what `ssh-keygen -t ed25519|rsa|ecdsa` writes). */
export const SSH_KEY_TYPES = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

/** A parsed OpenSSH public key (authorized_keys form: `<type> <base64> [comment]`). */
export interface SshPublicKey {
  type: SshKeyType;
  /** The key blob, base64. */
  key: string;
  /** The comment after the key, if any. */
  comment?: string;
}

// One line: the comment may not hold a newline (a second key would ride along in it) or any other control character.
const KEY_RE = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?:[ \t]+([^\x00-\x1f\x7f]*))?$/;

/** Parses an OpenSSH public key line; undefined for anything else (leading/trailing space ignored). */
export function parseSshPublicKey(line: string): SshPublicKey | undefined {
  const m = KEY_RE.exec(line.trim());
  if (!m || !(SSH_KEY_TYPES as readonly string[]).includes(m[1])) return undefined;
  return m[3] ? { type: m[1] as SshKeyType, key: m[2], comment: m[3] } : { type: m[1] as SshKeyType, key: m[2] };
}

/** What an error says is allowed. */
export const SSH_KEY_ALLOWED = `an OpenSSH public key "<type> <base64> [comment]" with type ${SSH_KEY_TYPES.join(", ")}`;

/**
 * `<type> <base64>`, the key without comment or newline (as tls.PrivateKey's
 * publicKeyOpenssh gives it, and as the command provider pins it); throws on a non-key.
 */
export function sshKeyLine(line: string, where = "public key"): string {
  const k = parseSshPublicKey(line);
  if (!k) throw new Error(`${where} must be ${SSH_KEY_ALLOWED} (got ${JSON.stringify(line.slice(0, 40))})`);
  return `${k.type} ${k.key}`;
}
