/**
 * Commands the operator's CLI runs ON a stack's hosts, over the same SSH connection Pulumi
 * uses (components/connection.ts sshArgv: host key pinned, through the host's ProxyCommand):
 * one runner, and one builder per remote command line (as Kamal composes its commands).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sshArgv } from "../../components/connection";
import { shq } from "../../components/engine";
import type { HostAccess } from "./access";
import { lastLine, runProcess, type ProcessResult } from "./process";

/** A command line for the host's login shell, and what goes to its stdin. */
export interface RemoteCommand {
  command: string;
  stdin?: string;
}

/** How a remote command ended: ssh's exit status is the remote command's, or 255 when ssh could not connect or authenticate (ssh(1) EXIT STATUS). */
export type RemoteResult = ProcessResult;

/**
 * Runs `remote` on the host with the system ssh (the first on PATH, as Pulumi's commands and
 * the Docker provider run it) and the host's pinned key; ssh is killed at `timeoutMs`. ssh
 * inherits this process's environment: SSH_AUTH_SOCK and the AWS credentials reach it and
 * its ProxyCommand.
 */
export function runOnHost(access: HostAccess, remote: RemoteCommand, timeoutMs: number): Promise<RemoteResult> {
  const argv = [...sshArgv(access), remote.command];
  return runProcess(argv, { stdin: remote.stdin, timeoutMs, cannotRun: (code) => `cannot run ${argv[0]} (${code}); smoke reaches hosts with the system OpenSSH client, as Pulumi does` });
}

let requestScript: string | undefined;
/** scripts/lib/host-request.sh, which the host's bash reads from stdin. */
export function hostRequestScript(): string {
  requestScript ??= fs.readFileSync(path.join(__dirname, "host-request.sh"), "utf8");
  return requestScript;
}

/**
 * GET <path> from the host itself on 127.0.0.1:<port>: its proxy, the way the front door's
 * targets are reached. `waitSeconds`: how long the host waits for the status line.
 */
export function hostRequestCommand(port: number, urlPath: string, waitSeconds: number): RemoteCommand {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`host request: ${port} is not a port`);
  if (!urlPath.startsWith("/") || /[\s\0]/.test(urlPath)) throw new Error(`host request: ${JSON.stringify(urlPath)} is not an HTTP path`);
  if (!(waitSeconds > 0)) throw new Error(`host request: ${waitSeconds} is not a positive number of seconds`);
  return { command: ["bash", "-s", "--", String(port), shq(urlPath), waitSeconds.toFixed(1)].join(" "), stdin: hostRequestScript() };
}

/** What a host request found: the proxy's HTTP status, or why there was none. */
export type HostAnswer = { status: number } | { error: string; timedOut?: boolean };

/** Reads the result of hostRequestCommand: the line host-request.sh prints, else what ssh or the host's shell said. */
export function hostAnswer(r: RemoteResult, timeoutMs: number): HostAnswer {
  const said = /^dockyard-smoke: (.*)$/m.exec(r.stdout)?.[1];
  const status = said !== undefined ? /^answer HTTP\/\d(?:\.\d)? (\d{3})\b/.exec(said)?.[1] : undefined;
  if (status !== undefined) return { status: Number(status) };
  if (r.spawnError) return { error: r.spawnError };
  if (said !== undefined) return { error: said.startsWith("answer ") ? `not an HTTP answer: ${JSON.stringify(said.slice(7))}` : said };
  if (r.timedOut) return { error: `no answer over ssh within ${(timeoutMs / 1000).toFixed(1)}s`, timedOut: true };
  if (r.code === 255) return { error: `ssh: ${lastLine(r.stderr) || "could not connect (exit 255)"}` };
  return { error: `the host's shell failed (exit ${r.code ?? "by a signal"})${lastLine(r.stderr) ? `: ${lastLine(r.stderr)}` : ""}` };
}
