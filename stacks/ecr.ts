// Amazon ECR registry hosts: the one place that decides whether a registry is ECR.
// Hosts get the ECR credential helper, `promote`/`pin` get a token from the ECR API and
// the program creates repositories for exactly the hosts this module accepts.

/**
 * A private ECR registry host, as the credential helper that hosts use recognises it
 * (awslabs/amazon-ecr-credential-helper, ecr-login/api/client.go `ecrPattern`):
 * `<12-digit account>.dkr.ecr[-fips].<region>.<AWS DNS suffix>`, also the dual-stack
 * `dkr-ecr` form and the partitions' suffixes (amazonaws.com, amazonaws.com.cn,
 * amazonaws.eu, on.aws, ...). Lower case only: Docker references are lower case. Any
 * host this accepts is one `docker-credential-ecr-login` serves, and no other: a host
 * that gets a token from `promote` also gets the credential helper on the hosts.
 */
export const ECR_HOST_RE =
  /^([0-9]{12})\.dkr[.-]ecr(-fips)?\.([a-z0-9][a-z0-9_-]*)\.(amazonaws\.(?:com(?:\.cn)?|eu)|on\.(?:aws|amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$/;

/**
 * A host that looks like ECR (`.dkr.ecr.`/`.dkr-ecr.`, or any amazonaws.com host). The
 * schema refuses such a registry unless ECR_HOST_RE accepts it: hosts would get no ECR
 * credential helper for it and every pull would fail.
 */
export const ECR_LOOKALIKE_RE = /\.dkr\.ecr[.-]|\.amazonaws\.com/;

/** A parsed ECR registry host. */
export interface EcrHost {
  /** The registry host itself, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com. */
  host: string;
  accountId: string;
  region: string;
  /** True for the FIPS endpoint (`dkr.ecr-fips.`). */
  fips: boolean;
}

/** An ECR registry prefix `<ECR host>/<namespace>`, parsed. */
export interface EcrRegistry extends EcrHost {
  /** Repository namespace, e.g. dockyard-dev. */
  namespace: string;
}

/** The account and region of an ECR registry host (no port, no path); undefined when it is not ECR. */
export function parseEcrHost(host: string | undefined): EcrHost | undefined {
  const m = host === undefined ? null : ECR_HOST_RE.exec(host);
  return m ? { host: m[0], accountId: m[1], fips: m[2] !== undefined, region: m[3] } : undefined;
}

/** True when `host` is an ECR registry host. */
export function isEcrHost(host: string | undefined): host is string {
  return parseEcrHost(host) !== undefined;
}

/** Parses a registry prefix `<host>/<namespace>`; undefined when the host is not ECR (e.g. a local registry). */
export function parseEcrRegistry(prefix: string): EcrRegistry | undefined {
  const slash = prefix.indexOf("/");
  if (slash < 0) return undefined;
  const host = parseEcrHost(prefix.slice(0, slash));
  const namespace = prefix.slice(slash + 1);
  return host && namespace !== "" ? { ...host, namespace } : undefined;
}

/** The registry host of a registry prefix or repository `<host>[:port]/<path>`. */
export function registryHost(prefix: string): string {
  const slash = prefix.indexOf("/");
  return slash < 0 ? prefix : prefix.slice(0, slash);
}
