// How Pulumi reaches a host: one HostConnection value per host, built once by DockerHost
// and handed to every consumer (the engine's ready check, the image pulls, the proxy's
// configuration, the PIDs limits and the Docker provider). Every one of them runs the
// system's OpenSSH client with the same options (sshOptions), so there is one path to a
// host, whatever it is: SSM Session Manager or public SSH.
//
// Why the system ssh and not @pulumi/command's remote connection: that connection speaks
// SSH itself (golang.org/x/crypto/ssh in pulumi-command provider/pkg/provider/remote/
// connection.go) and can only dial TCP or hop through another SSH server (`proxy`); it has
// no ProxyCommand, so it cannot go through Session Manager. The Docker provider already
// runs the system ssh for ssh:// hosts (docker's connhelper: `ssh <sshOpts> -- <host>
// docker system dial-stdio`). So the commands are command:local:Command whose
// `interpreter` is that same ssh, and whose `create`/`delete` is the script the host runs.
import * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import type * as docker from "@pulumi/docker";
import { sshKeyLine } from "../stacks/ssh";

/**
 * SSH to one host, with its host key pinned.
 *
 * Authentication is always the deployer's ssh-agent (no private key is ever in the
 * program, its state or the provider configuration). With `access: ssm` the agent's first
 * key is pushed to the host for 60 seconds with EC2 Instance Connect by the ProxyCommand,
 * right before each connection (README "Access to hosts").
 */
export interface HostConnection {
  /** What ssh dials: the instance id (access ssm, through the ProxyCommand) or the host's Elastic IP (access public). */
  target: pulumi.Input<string>;
  /** SSH user (the OS family's default user, a member of the docker group). */
  user: string;
  /** The host's SSH public key, `<type> <base64>`; every connection accepts this key and no other. */
  hostPublicKey: pulumi.Input<string>;
  /** ssh(1) ProxyCommand (with ssh's %h and %p), or undefined: ssh dials the target directly on port 22. */
  proxyCommand?: string;
}

/** Dial retries for a host that is still booting (its pinned key is installed early by cloud-init). */
export interface DialRetry {
  /** How many failed dials before giving up. */
  attempts: number;
  /** Seconds between two dials. */
  intervalSeconds: number;
}

/** The Docker daemon address of a host, over SSH. */
export function dockerHostUrl(user: string, target: string): string {
  return `ssh://${user}@${target}`;
}

/**
 * What may follow `user@` on ssh's command line: an instance id or an address from EC2,
 * never an option (a leading "-") or anything with blanks, quotes or a shell's characters.
 */
function checkTarget(target: string): string {
  if (!/^[0-9A-Za-z][0-9A-Za-z.:()_-]*$/.test(target)) throw new Error(`host connection target ${JSON.stringify(target)} is not an instance id, IP address or host name`);
  return target;
}

/** One known_hosts line for a host: `<address> <type> <base64>` (comment dropped). */
export function knownHostsLine(address: string, hostPublicKey: string): string {
  if (!/^[0-9A-Za-z.:[\]-]+$/.test(address)) throw new Error(`host address ${JSON.stringify(address)} is not an IP address or host name`);
  return `${address} ${sshKeyLine(hostPublicKey, "host public key")}`;
}

/**
 * ssh(1) options that make a connection accept exactly this host key and nothing else:
 * no known_hosts file is read or written; the key comes from KnownHostsCommand (OpenSSH
 * >= 8.5; run without a shell, so the key is a plain argument); StrictHostKeyChecking=yes
 * fails on any other key; only the key's algorithm is negotiated. `%H` is ssh's own name
 * for the host in known_hosts terms (it adds the `[addr]:port` form itself), so the line
 * always matches the host ssh dialed - an instance id through the ProxyCommand included.
 * With a ProxyCommand, ssh runs it with the user's shell (`exec <command>`, sshconnect.c
 * ssh_proxy_connect) after expanding %h (the target) and %p (22).
 */
export function sshOptions(hostPublicKey: string, proxyCommand?: string): string[] {
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
    "-o", "ConnectTimeout=30",
    "-o", "ServerAliveInterval=15",
    ...(proxyCommand !== undefined ? ["-o", `ProxyCommand=${proxyCommand}`] : []),
  ];
}

/**
 * The ProxyCommand of `access: ssm`: push a key of the deployer's ssh-agent to the instance
 * with EC2 Instance Connect (valid 60 s, for this OS user only), then carry the SSH
 * connection over an SSM Session Manager session to the instance's port 22 (document
 * AWS-StartSSHSession). Both calls are authorised by IAM: who may push a key to which
 * instance and user (ec2-instance-connect:SendSSHPublicKey, condition ec2:osuser), who may
 * start a session (ssm:StartSession). Needs the aws CLI and the Session Manager plugin where
 * Pulumi runs (README "Access to hosts").
 *
 * Which key: the agent's first ssh-ed25519 or ssh-rsa key (EIC_KEY_TYPES). No other type
 * reaches the OS user on every family: AWS's own AuthorizedKeysCommand (ec2-instance-connect
 * on Amazon Linux and Ubuntu; aws-ec2-instance-connect-config src/bin/eic_parse_authorized_keys)
 * keeps a key line only if it starts with "ssh", so ecdsa-* and sk-* keys are dropped there,
 * and a certificate (ssh-ed25519-cert-v01@openssh.com) is no key EC2 takes. With none, the
 * command says which types the agent holds and exits 1.
 *
 * Pushes, bounded: SendSSHPublicKey is throttled (ThrottlingException) and may fail
 * transiently (ServiceException, EC2InstanceUnavailableException: botocore's model of the
 * service, data/ec2-instance-connect/2018-04-02/service-2.json; the CLI prints "An error
 * occurred (<code>) when calling the SendSSHPublicKey operation...", botocore
 * exceptions.py ClientError). Those are retried up to EIC_PUSH_ATTEMPTS times, 1, 2, 4 s
 * apart plus a jitter of under a second, so the push and the session fit in ssh's
 * ConnectTimeout (30 s), which counts from the ProxyCommand's start to the server's banner
 * (OpenSSH sshconnect.c ssh_login: kex_exchange_identification(ssh, timeout_ms)). Any other
 * error ends it at once with the CLI's message.
 *
 * Pushes, not needed: a key pushed less than EIC_REUSE_SECONDS (40 s) ago for the same
 * instance, user and key is still on the instance for 20 s more, enough for the session and
 * the authentication, so it is not pushed again (a stamp per instance, user and key in a
 * directory only this user owns: $XDG_RUNTIME_DIR, else $TMPDIR, else /tmp). Concurrent dials
 * to one host wait for the first one's push (a lock directory, taken over when older than the
 * push can take), so an `up` pushes about once per host per 40 s, not once per command.
 *
 * `sh -c '...' dockyard-ssm %h %p`: the target and port reach the script as "$1" "$2",
 * never spliced into its text. `--region` is the stack's: the instance lives there. ssh
 * expands %-sequences in the whole command (readconf.c percent_expand): the script writes
 * `%%` where the shell must see `%`.
 */
export function ssmProxyCommand(region: string, user: string): string {
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) throw new Error(`region ${JSON.stringify(region)} is not an AWS region`);
  if (!/^[a-z_][a-z0-9_-]*$/.test(user)) throw new Error(`SSH user ${JSON.stringify(user)} is not a login name`);
  return `sh -c '${SSM_PROXY_SCRIPT.replace(/@REGION@/g, region).replace(/@USER@/g, user)}' dockyard-ssm %h %p`;
}

/** The key types EC2 Instance Connect delivers to the OS user on every OS family (see ssmProxyCommand). */
export const EIC_KEY_TYPES = ["ssh-ed25519", "ssh-rsa"] as const;
/** How many SendSSHPublicKey calls one dial makes at most when they are throttled or fail transiently. */
export const EIC_PUSH_ATTEMPTS = 4;
/** A key pushed this many seconds ago or less is reused (EC2 Instance Connect keeps it 60 s). */
export const EIC_REUSE_SECONDS = 40;
/** The SendSSHPublicKey errors worth another try (botocore's service model; the CLI's message names the code). */
export const EIC_RETRYABLE = ["ThrottlingException", "ServiceException", "EC2InstanceUnavailableException"] as const;

/** The body of ssmProxyCommand (no single quote inside: it is wrapped in one). */
export const SSM_PROXY_SCRIPT = [
  // The agent's first key of an accepted type (a certificate's type has a suffix, so it never matches).
  `k=$(ssh-add -L 2>/dev/null | grep -E -m 1 "^(${EIC_KEY_TYPES.join("|")}) ")`,
  `if [ -z "$k" ]; then t=$(ssh-add -L 2>/dev/null | grep -E "^[^ ]+ AAAA" | cut -d" " -f1 | sort -u | tr "\\n" " "); echo "dockyard: no key in ssh-agent (SSH_AUTH_SOCK) that EC2 Instance Connect takes (${EIC_KEY_TYPES.join(" or ")}); it holds: \${t:-nothing}; load one with ssh-add; see README Access to hosts" >&2; exit 1; fi`,
  // The stamps live in a directory only this user owns, or there are none (every dial pushes).
  `d=\${XDG_RUNTIME_DIR:-\${TMPDIR:-/tmp}}/dockyard-eic-$(id -u); mkdir -m 0700 "$d" 2>/dev/null; if [ -d "$d" ] && [ -O "$d" ] && [ -w "$d" ]; then s=$d/$1-@USER@-$(echo "$k" | cksum | cut -d" " -f1); else s=""; fi`,
  // Seconds since the time a file holds (seconds since the epoch; none: since 1970).
  `age() { t=$(cat "$1" 2>/dev/null); case "$t" in "" | *[!0-9]*) t=0 ;; esac; echo $(($(date +%%s) - t)); }`,
  `fresh() { [ -n "$s" ] && [ "$(age "$s")" -le ${EIC_REUSE_SECONDS} ]; }`,
  `push() { n=1; w=1; j=$(echo $$ | tail -c 2); e=$(mktemp); while :; do if aws ec2-instance-connect send-ssh-public-key --region @REGION@ --instance-id "$1" --instance-os-user @USER@ --ssh-public-key "$k" --output text >/dev/null 2>"$e"; then rm -f "$e"; [ -z "$s" ] || { date +%%s >"$s.$$" && mv -f "$s.$$" "$s"; }; return 0; fi; if [ "$n" -ge ${EIC_PUSH_ATTEMPTS} ] || ! grep -Eq "[(](${EIC_RETRYABLE.join("|")})[)]|Could not connect to the endpoint URL" "$e"; then cat "$e" >&2; rm -f "$e"; echo "dockyard: EC2 Instance Connect did not take the key for $1 (attempt $n of ${EIC_PUSH_ATTEMPTS}); see README Access to hosts" >&2; return 1; fi; echo "dockyard: SendSSHPublicKey for $1 throttled or unavailable (attempt $n of ${EIC_PUSH_ATTEMPTS}); retrying in $w.$j s" >&2; sleep "$w.$j"; n=$((n + 1)); w=$((w * 2)); done; }`,
  // One push per instance, user and key at a time: the others wait (at most 10 s) for its stamp; a lock
  // whose time is older than 20 s is a dead dial's. Stamps and lock times are renamed into place, never
  // read half-written.
  `if ! fresh; then if [ -z "$s" ]; then push "$1" || exit 1; else i=0; h=""; while ! fresh; do if mkdir "$s.lock" 2>/dev/null; then h=1; break; fi; if [ "$i" -ge 20 ] || { [ -f "$s.lock/t" ] && [ "$(age "$s.lock/t")" -gt 20 ]; }; then rm -rf "$s.lock"; fi; i=$((i + 1)); sleep 0.5; done; if [ -n "$h" ]; then date +%%s >"$s.lock/t.$$" && mv -f "$s.lock/t.$$" "$s.lock/t"; if fresh || push "$1"; then rm -rf "$s.lock"; else rm -rf "$s.lock"; exit 1; fi; fi; fi; fi`,
  `exec aws ssm start-session --region @REGION@ --target "$1" --document-name AWS-StartSSHSession --parameters "portNumber=$2"`,
].join("; ");

/** The ssh command line of a connection, up to the destination; the remote command follows it. */
export function sshArgv(c: { target: string; user: string; hostPublicKey: string; proxyCommand?: string }): string[] {
  return ["ssh", ...sshOptions(c.hostPublicKey, c.proxyCommand), "--", `${c.user}@${checkTarget(c.target)}`];
}

/**
 * A retrying form of an ssh command line, for a host that is still booting: ssh exits 255
 * when it cannot connect or authenticate (ssh(1) EXIT STATUS), so 255 is retried after
 * `intervalSeconds`, up to `attempts` dials; any other status is the remote command's and ends it.
 */
export const RETRY_SCRIPT = [
  `attempts=$1; interval=$2; shift 2; n=1`,
  `while :; do "$@"; rc=$?; if [ "$rc" -ne 255 ] || [ "$n" -ge "$attempts" ]; then exit "$rc"; fi`,
  `echo "dockyard: ssh could not reach the host yet (attempt $n of $attempts); retrying in \${interval}s" >&2; n=$((n + 1)); sleep "$interval"; done`,
].join("; ");

/**
 * What a command:local:Command needs to run a script on a host: the ssh command line as
 * its `interpreter`, to which the provider appends the command (`create`, `update` or
 * `delete`) as one more argument (pulumi-command local/commandOutputs.go run: args =
 * interpreter + command, no shell). ssh sends that argument to the host, whose login shell
 * runs it, as the remote connection's session.Run did; stdin goes along. The provider
 * runs it with its own environment (os.Environ), so SSH_AUTH_SOCK and AWS credentials
 * reach ssh and the ProxyCommand.
 */
export function hostCommandInterpreter(c: HostConnection, retry?: DialRetry): pulumi.Output<string[]> {
  // One Output per connection (and retry): a host has one command per container, and each
  // Output costs the SDK a promise chain; the value is the same for all of them.
  const key = retry ? `${retry.attempts}/${retry.intervalSeconds}` : "";
  const cached = interpreters.get(c)?.get(key);
  if (cached) return cached;
  const out = pulumi.all([c.target, c.hostPublicKey]).apply(([target, hostPublicKey]) => {
    const argv = sshArgv({ target, user: c.user, hostPublicKey, proxyCommand: c.proxyCommand });
    return retry ? ["/bin/sh", "-c", RETRY_SCRIPT, "dockyard-ssh-retry", String(retry.attempts), String(retry.intervalSeconds), ...argv] : argv;
  });
  if (!interpreters.has(c)) interpreters.set(c, new Map());
  interpreters.get(c)!.set(key, out);
  return out;
}
const interpreters = new WeakMap<HostConnection, Map<string, pulumi.Output<string[]>>>();

/** The parts of a command:local:Command that run a script on a host. */
export function hostCommandArgs(c: HostConnection, script: Pick<command.local.CommandArgs, "create" | "delete" | "stdin" | "triggers">, retry?: DialRetry): command.local.CommandArgs {
  return {
    interpreter: hostCommandInterpreter(c, retry),
    ...script,
    // The previous run's stdout/stderr must not be sent along in the environment of the next.
    addPreviousOutputInEnv: false,
  };
}

/** The Docker provider's arguments for a host: the daemon over ssh://, with the same ssh options as every command. */
export function dockerProviderArgs(c: HostConnection): docker.ProviderArgs {
  return {
    host: pulumi.output(c.target).apply((target) => dockerHostUrl(c.user, checkTarget(target))),
    sshOpts: pulumi.output(c.hostPublicKey).apply((k) => sshOptions(k, c.proxyCommand)),
  };
}

/**
 * The ProxyCommand of a local host (components/local-host.ts): the same two moves as
 * ssmProxyCommand, with the deployer's Docker Engine in place of AWS. It pushes the first key
 * of the deployer's ssh-agent as the SSH user's only authorized key (written to a temporary
 * file and renamed, so a concurrent dial never reads half a file), then carries the SSH
 * connection into the machine container with `docker exec -i`, where sshd serves it in inetd
 * mode (`sshd -i`: one session on stdin/stdout, the host's own sshd_config and pinned host
 * key). Nothing listens on a port of the deployer's machine, and it works wherever the
 * docker CLI reaches the engine (Docker Desktop included). `%h` is the container's name.
 */
export function localProxyCommand(user: string): string {
  if (!/^[a-z_][a-z0-9_-]*$/.test(user)) throw new Error(`SSH user ${JSON.stringify(user)} is not a login name`);
  return `sh -c '${LOCAL_PROXY_SCRIPT.replace(/@USER@/g, user)}' dockyard-local %h %p`;
}

/** The body of localProxyCommand (no single quote inside: it is wrapped in one). */
export const LOCAL_PROXY_SCRIPT = [
  `key=$(ssh-add -L 2>/dev/null | head -n 1)`,
  `case "$key" in ssh-*|ecdsa-*|sk-*) ;; *) echo "dockyard: no key in ssh-agent (SSH_AUTH_SOCK): load one with ssh-add; see README Run it on your laptop" >&2; exit 1;; esac`,
  // echo, not printf: ssh expands %-sequences in a ProxyCommand (%h, %p, ...), a key has no backslash.
  `echo "$key" | docker exec -i "$1" sh -c "d=~@USER@/.ssh && install -d -m 0700 -o @USER@ -g @USER@ \\$d && t=\\$(mktemp \\$d/.dockyard-key.XXXXXX) && cat >\\$t && chown @USER@:@USER@ \\$t && chmod 0600 \\$t && mv -f \\$t \\$d/authorized_keys" || exit 1`,
  `exec docker exec -i "$1" /usr/sbin/sshd -i`,
].join("; ");
