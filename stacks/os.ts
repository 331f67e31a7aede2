/**
 * The operating-system image families Dockyard can run hosts on. An environment names
 * one family; everything that depends on the distribution (AMI lookup, SSH user, the
 * package that ships Docker, Docker's apt repository) is derived from this catalog so
 * that no stack can drift from it.
 */

/** An OS image family key as written in stacks/environment.yaml. */
export type OsFamily = "debian-12" | "ubuntu-24.04" | "amazon-linux-2023";
/** CPU architecture of the hosts; selects the AMI and the image platform to pull. */
export type Architecture = "x86_64" | "arm64";

export interface OsFamilyInfo {
  /** Distribution id as in /etc/os-release ID. */
  distro: "debian" | "ubuntu" | "amzn";
  /** Release codename used by Docker's apt repository (apt distributions only). */
  codename?: string;
  /** Package manager that installs the engine. */
  packageManager: "apt" | "dnf";
  /** Default login user of the cloud image. */
  sshUser: string;
  /** AWS account that publishes the official images. */
  amiOwner: string;
  /** AMI name filter per architecture (official naming scheme of the publisher). */
  amiNamePattern: Record<Architecture, string>;
  /** The distribution's own Docker package, for the `distro` engine channel. */
  distroPackage: string;
  /** Docker's apt repository base URL, for the `docker-ce` channel (undefined: not offered). */
  dockerCeRepo?: string;
}

export const OS_FAMILIES: Record<OsFamily, OsFamilyInfo> = {
  "debian-12": {
    distro: "debian",
    codename: "bookworm",
    packageManager: "apt",
    sshUser: "admin",
    amiOwner: "136693071363",
    amiNamePattern: { x86_64: "debian-12-amd64-*", arm64: "debian-12-arm64-*" },
    distroPackage: "docker.io",
    dockerCeRepo: "https://download.docker.com/linux/debian",
  },
  "ubuntu-24.04": {
    distro: "ubuntu",
    codename: "noble",
    packageManager: "apt",
    sshUser: "ubuntu",
    amiOwner: "099720109477",
    amiNamePattern: {
      x86_64: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
      arm64: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*",
    },
    distroPackage: "docker.io",
    dockerCeRepo: "https://download.docker.com/linux/ubuntu",
  },
  "amazon-linux-2023": {
    distro: "amzn",
    packageManager: "dnf",
    sshUser: "ec2-user",
    amiOwner: "137112412989",
    amiNamePattern: { x86_64: "al2023-ami-2023.*-x86_64", arm64: "al2023-ami-2023.*-arm64" },
    distroPackage: "docker",
  },
};

/**
 * True when the `docker-ce` channel can install on this family: Docker's apt repository is
 * offered for it, it installs with apt, and it has the release codename the repository is
 * laid out by.
 */
export function dockerCeOffered(info: OsFamilyInfo): info is OsFamilyInfo & { dockerCeRepo: string; codename: string; packageManager: "apt" } {
  return info.dockerCeRepo !== undefined && info.packageManager === "apt" && info.codename !== undefined;
}

/** Docker/OCI platform string for an architecture, e.g. `linux/amd64`. */
export function dockerPlatform(arch: Architecture): string {
  return arch === "arm64" ? "linux/arm64" : "linux/amd64";
}

/**
 * The CPU architecture an EC2 instance type runs, from its name: AWS Graviton families
 * carry a `g` right after the generation digit (c7g, m6gd, t4g, c6gn, im4gn, is4gen, g5g,
 * x2gd...), and `a1` is the first Graviton; everything else offered for Linux AMIs here
 * is x86_64 (EC2 Instance Types guide, "Amazon EC2 instance type naming conventions":
 * processor family g = AWS Graviton). RunInstances refuses an AMI of the other
 * architecture ("The architecture 'x86_64' of the specified instance type does not match
 * the architecture 'arm64' of the specified AMI").
 */
export function instanceArchitecture(instanceType: string): Architecture {
  const family = instanceType.split(".")[0];
  return family === "a1" || /^[a-z]+[0-9]+g[a-z0-9-]*$/.test(family) ? "arm64" : "x86_64";
}
