/**
 * ImageRegistry: one ECR repository per service per environment, tags immutable, and a
 * lifecycle policy whose ONLY rule expires UNTAGGED images older than `untaggedExpiryDays`.
 * No rule ever selects a tagged image: a rule on tagged images could match an image that
 * also carries a pin tag, and ECR would expire it. What keeps a pinned digest is its pin
 * tag: see pinTag in stacks/schema.ts, the one home of that story.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { ServiceSpec } from "../stacks/schema";
import { parseEcrRegistry } from "../stacks/ecr";

/** ECR repository name (path after the host) of a service's full repository reference. */
export function repositoryName(repository: string): string {
  const slash = repository.indexOf("/");
  if (slash < 0) throw new Error(`repository ${JSON.stringify(repository)} has no registry host`);
  return repository.slice(slash + 1);
}

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

export interface ImageRegistryArgs {
  /** Stack name; tags every repository. */
  stack: string;
  /** The stack's registry prefix `<ECR host>/<namespace>` (stacks/ecr's grammar, FIPS and other partitions included); must be ECR. */
  registry: string;
  /** Services whose repositories to create (their `repository` lies under `registry`, as the schema makes it). */
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
          `ImageRegistry needs '<12-digit account>.dkr.ecr[-fips].<region>.amazonaws.com/<namespace>'`,
      );
    }
    this.registryHost = ecr.host;
    const policy = lifecyclePolicy(args.untaggedExpiryDays ?? 14);
    const entries: { key: string; repoName: string }[] = [
      // The schema puts every service's repository under the registry (`<registry>/<repository>`).
      ...args.services.map((s) => ({ key: s.name, repoName: repositoryName(s.repository) })),
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
      // Only untagged images expire; pinned digests carry a pin- tag (pinTag, stacks/schema).
      new aws.ecr.LifecyclePolicy(`${name}-${key}-lifecycle`, { region: ecr.region, repository: repo.name, policy }, { parent: this });
      out[key] = pulumi.all([repo.name, repo.repositoryUrl, repo.arn]).apply(([n, url, arn]) => ({ name: n, url, arn }));
    }
    this.repositories = pulumi.all(out) as pulumi.Output<Record<string, RepositoryOutput>>;
    this.registerOutputs({ repositories: this.repositories, registryHost: this.registryHost });
  }
}
