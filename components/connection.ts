// How Pulumi reaches a host: one HostConnection value per host, built once by DockerHost
// and handed to every consumer (the engine's ready check, the image pulls, the Docker
// provider), each of which takes its form of it from a function here.
import * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import type * as docker from "@pulumi/docker";
import { sshKeyLine } from "../stacks/ssh";

/** SSH to one host, with its host key pinned. */
export interface HostConnection {
  /** Address of the host (its Elastic IP). */
  host: pulumi.Input<string>;
  /** SSH user (the OS family's default user, a member of the docker group). */
  user: string;
  /** The host's SSH public key, `<type> <base64>`; every connection accepts this key and no other. */
  hostPublicKey: pulumi.Input<string>;
  /** Private key for the user, as a Pulumi secret. Default: the deployer's SSH agent. */
  privateKey?: pulumi.Input<string>;
}

/** Dial retries for a host that is still booting (its pinned key is installed early by cloud-init). */
export interface DialRetry {
  /** How many failed dials before giving up. */
  dialErrorLimit: number;
  /** Seconds per dial. */
  perDialTimeout: number;
}

/** The Docker daemon address of a host, over SSH. */
export function dockerHostUrl(user: string, address: string): string {
  return `ssh://${user}@${address}`;
}

/** One known_hosts line for a host: `<address> <type> <base64>` (comment dropped). */
export function knownHostsLine(address: string, hostPublicKey: string): string {
  if (!/^[0-9A-Za-z.:[\]-]+$/.test(address)) throw new Error(`host address ${JSON.stringify(address)} is not an IP address or host name`);
  return `${address} ${sshKeyLine(hostPublicKey, "host public key")}`;
}

/**
 * ssh(1) options that make the Docker provider's ssh:// connection accept exactly this
 * host key and nothing else: no known_hosts file is read or written; the key comes from
 * KnownHostsCommand (OpenSSH >= 8.5; run without a shell, so the key is a plain
 * argument); StrictHostKeyChecking=yes fails on any other key; only the key's algorithm
 * is negotiated. `%H` is ssh's own name for the host in known_hosts terms (it adds the
 * `[addr]:port` form itself), so the line always matches the host ssh dialed.
 */
export function sshOptions(hostPublicKey: string): string[] {
  const [type, key] = sshKeyLine(hostPublicKey, "host public key").split(" ");
  return [
    "-o", "StrictHostKeyChecking=yes",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", `KnownHostsCommand=/bin/echo %H ${type} ${key}`,
    "-o", `HostKeyAlgorithms=${type}`,
    "-o", "CheckHostIP=no",
    "-o", "UpdateHostKeys=no",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=20",
    "-o", "ServerAliveInterval=15",
  ];
}

/**
 * The connection @pulumi/command's remote.Command dials (it speaks SSH itself, from
 * wherever Pulumi runs): the pinned host key in authorized_keys form, the private key
 * as a secret or else the SSH agent, and dial retries where the host may still be booting.
 */
export function commandConnection(c: HostConnection, opts: { port?: number; retry?: DialRetry } = {}): command.types.input.remote.ConnectionArgs {
  return {
    host: c.host,
    user: c.user,
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    hostKey: pulumi.output(c.hostPublicKey).apply((k) => sshKeyLine(k, "connection.hostPublicKey")),
    ...(opts.retry ?? {}),
    ...(c.privateKey !== undefined ? { privateKey: pulumi.secret(c.privateKey) } : {}),
  };
}

/** The Docker provider's arguments for a host: the daemon over ssh://, with ssh options that pin the host key. */
export function dockerProviderArgs(c: HostConnection): docker.ProviderArgs {
  return {
    host: pulumi.output(c.host).apply((address) => dockerHostUrl(c.user, address)),
    sshOpts: pulumi.output(c.hostPublicKey).apply(sshOptions),
  };
}
