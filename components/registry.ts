/**
 * ImageRegistry: one ECR repository per service per environment.
 *
 * Why images pinned by a stack file never expire. An ECR lifecycle rule can select by
 * tag status, tag prefix/pattern, age and count, never by digest, so "keep what the
 * stack files pin" has to be expressed with tags:
 *  - the ONLY rule expires UNTAGGED images older than `untaggedExpiryDays`; no rule ever
 *    selects a tagged image (a rule on tagged images could match an image that also
 *    carries a pin tag, and ECR would expire it);
 *  - every digest a stack file pins carries the immutable tag `pinTag(digest)`
 *    ("pin-sha256-<hex>"; an index's child manifests each get their own, since a child
 *    of a tagged index is itself untagged), put there by `promote` and `rollback` for the digests they
 *    write, and by `dockyard pin` for every digest ANY stack file pins (the manifest's
 *    own bytes PUT under the tag: nothing re-uploaded); `dockyard pin --check` fails
 *    while one is missing;
 *  - tags are IMMUTABLE, so a pin tag always names the digest it was made from.
 * A CI build pushed by digest and never pinned is untagged and expires; anything pinned
 * (and so tagged) stays until a human deletes its tag.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { pinTag, type EnvironmentSpec, type ServiceSpec } from "../stacks/schema";

/** An ECR registry prefix `<account>.dkr.ecr.<region>.amazonaws.com/<namespace>`, parsed. */
export interface EcrRegistry {
  accountId: string;
  region: string;
  /** Registry host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com. */
  host: string;
  /** Repository namespace, e.g. dockyard-dev. */
  namespace: string;
}

/** Parses an ECR registry prefix; undefined if the prefix is not ECR (e.g. a local registry). */
export function parseEcrRegistry(prefix: string): EcrRegistry | undefined {
  const m = /^([0-9]{12})\.dkr\.ecr\.([a-z]{2}(?:-gov)?-[a-z]+-[0-9])\.amazonaws\.com\/(.+)$/.exec(prefix);
  if (!m) return undefined;
  return { accountId: m[1], region: m[2], host: `${m[1]}.dkr.ecr.${m[2]}.amazonaws.com`, namespace: m[3] };
}

/** ECR repository name (path after the host) of a service's full repository reference. */
export function repositoryName(repository: string): string {
  const slash = repository.indexOf("/");
  if (slash < 0) throw new Error(`repository ${JSON.stringify(repository)} has no registry host`);
  return repository.slice(slash + 1);
}

/** The immutable tag that protects a pinned digest from the lifecycle policy (defined with the schema, used by the scripts too). */
export { pinTag };

/** The lifecycle policy document: expire untagged images older than `days`; nothing else. */
export function lifecyclePolicy(untaggedExpiryDays: number): string {
  if (!Number.isInteger(untaggedExpiryDays) || untaggedExpiryDays < 1 || untaggedExpiryDays > 3650) {
    throw new Error(`untaggedExpiryDays must be an integer from 1 to 3650 (got ${untaggedExpiryDays})`);
  }
  return JSON.stringify({
    rules: [
      {
        rulePriority: 1,
        description: `Expire untagged images after ${untaggedExpiryDays} days; pinned digests carry a pin- tag and are never selected`,
        selection: { tagStatus: "untagged", countType: "sinceImagePushed", countUnit: "days", countNumber: untaggedExpiryDays },
        action: { type: "expire" },
      },
    ],
  });
}

/**
 * Every digest any of `specs` pins, per full repository reference (deduplicated, sorted).
 * Pass the specs of ALL stack files (shipped and developers'), so one environment's
 * cleanup never removes what another still runs.
 */
export function pinnedDigests(specs: readonly Pick<EnvironmentSpec, "services">[]): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const spec of specs) for (const s of spec.services) (out[s.repository] ??= new Set()).add(s.digest);
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)).map(([r, d]) => [r, [...d].sort()]));
}

export interface ImageRegistryArgs {
  /** Stack name; tags every repository. */
  stack: string;
  /** The stack's registry prefix `<account>.dkr.ecr.<region>.amazonaws.com/<namespace>`; must be ECR. */
  registry: string;
  /** Services whose repositories to create (their `repository` lies under `registry`). */
  services: Pick<ServiceSpec, "name" | "repository">[];
  /** Extra repository names under the namespace (e.g. "haproxy" for the proxy mirror). Default none. */
  extraRepositories?: string[];
  /** Days after which untagged images expire. Default 14. */
  untaggedExpiryDays?: number;
}

/** One repository as the fleet and the promote command use it. */
export interface RepositoryOutput {
  /** ECR repository name, e.g. dockyard-dev/web. */
  name: string;
  /** `<host>/<name>`, what images are referenced by (with @digest). */
  url: string;
  arn: string;
}

export class ImageRegistry extends pulumi.ComponentResource {
  /** Repository name (service or extra) -> name, url, arn. */
  public readonly repositories: pulumi.Output<Record<string, RepositoryOutput>>;
  /** Registry host the hosts' ECR credential helper is configured for. */
  public readonly registryHost: string;

  constructor(name: string, args: ImageRegistryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:ImageRegistry", name, {}, opts);
    const ecr = parseEcrRegistry(args.registry);
    if (!ecr) {
      throw new Error(
        `stack "${args.stack}": config.dockyard:registry: "${args.registry}" is not an ECR registry; ` +
          `ImageRegistry needs '<12-digit account>.dkr.ecr.<region>.amazonaws.com/<namespace>'`,
      );
    }
    this.registryHost = ecr.host;
    const policy = lifecyclePolicy(args.untaggedExpiryDays ?? 14);
    const entries: { key: string; repoName: string }[] = [
      ...args.services.map((s) => {
        if (!s.repository.startsWith(`${args.registry}/`)) {
          throw new Error(`stack "${args.stack}": service "${s.name}": repository ${s.repository} is not under config.dockyard:registry ${args.registry}`);
        }
        return { key: s.name, repoName: repositoryName(s.repository) };
      }),
      ...(args.extraRepositories ?? []).map((r) => ({ key: r, repoName: `${ecr.namespace}/${r}` })),
    ];
    const out: Record<string, pulumi.Output<RepositoryOutput>> = {};
    for (const { key, repoName } of entries) {
      // One repository per service per environment: scanned on push, tags immutable.
      // In the registry's own region (the host name says which), not the stack's default region.
      const repo = new aws.ecr.Repository(
        `${name}-${key}`,
        {
          region: ecr.region,
          name: repoName,
          imageTagMutability: "IMMUTABLE",
          imageScanningConfiguration: { scanOnPush: true },
          encryptionConfigurations: [{ encryptionType: "AES256" }],
          forceDelete: false,
          tags: { "dockyard:stack": args.stack, "dockyard:repository": key },
        },
        { parent: this },
      );
      // Only untagged images expire; pinned digests carry a pin- tag (see the file comment).
      new aws.ecr.LifecyclePolicy(`${name}-${key}-lifecycle`, { region: ecr.region, repository: repo.name, policy }, { parent: this });
      out[key] = pulumi.all([repo.name, repo.repositoryUrl, repo.arn]).apply(([n, url, arn]) => ({ name: n, url, arn }));
    }
    this.repositories = pulumi.all(out) as pulumi.Output<Record<string, RepositoryOutput>>;
    this.registerOutputs({ repositories: this.repositories, registryHost: this.registryHost });
  }
}
