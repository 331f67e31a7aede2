/**
 * How to reach a stack's hosts and services, from its outputs (`hostsByName`, `services`):
 * shared by `dockyard up` and `dockyard dev-server up`.
 */
import { localProxyCommand, sshArgv, ssmProxyCommand } from "../../components/connection";
import { shq } from "../../components/engine";
import type { EnvironmentSpec } from "../../stacks";
import type { HostPlatform } from "../../stacks/secrets-provider";

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** How to reach one host: the fields of components/connection.ts HostConnection, resolved. */
export interface HostAccess {
  target: string;
  user: string;
  hostPublicKey: string;
  proxyCommand?: string;
}

/**
 * How to reach one host from its entry in the outputs' hostsByName (`sshUser`, `sshTarget`,
 * `hostPublicKey`, `platform`), the way Pulumi itself reaches it (components/host.ts and
 * local-host.ts build the same): docker exec (local), Session Manager (aws, hostAccess
 * ssm) or the address itself (aws, hostAccess public). Undefined when the entry has no ssh
 * address yet. `platform` is the stack's, for an entry that does not name its own.
 */
export function hostAccess(spec: Pick<EnvironmentSpec, "region" | "access">, platform: HostPlatform, h: unknown): HostAccess | undefined {
  if (!isObject(h) || typeof h.sshUser !== "string" || typeof h.sshTarget !== "string" || typeof h.hostPublicKey !== "string") return undefined;
  const hostPlatform = h.platform === "local" || h.platform === "aws" ? h.platform : platform;
  const proxyCommand = hostPlatform === "local" ? localProxyCommand(h.sshUser) : spec.access.mode === "ssm" ? ssmProxyCommand(spec.region, h.sshUser) : undefined;
  return { target: h.sshTarget, user: h.sshUser, hostPublicKey: h.hostPublicKey, ...(proxyCommand !== undefined ? { proxyCommand } : {}) };
}

/**
 * How to reach a stack's hosts, from its outputs: per host the ssh command line Pulumi itself
 * uses (host key pinned; through Session Manager with hostAccess ssm on aws), per service
 * with a publishPort a URL on each host that runs it.
 */
export function accessLines(spec: Pick<EnvironmentSpec, "region" | "access" | "services">, platform: HostPlatform, outputs: Record<string, unknown>): string[] {
  const lines: string[] = [];
  const hosts = isObject(outputs.hostsByName) ? outputs.hostsByName : {};
  lines.push("Hosts:");
  for (const [name, h] of Object.entries(hosts)) {
    const access = hostAccess(spec, platform, h);
    if (!access) {
      lines.push(`  ${name}: (no ssh address in the outputs yet)`);
      continue;
    }
    const argv = sshArgv(access);
    lines.push(`  ${name}:`, `    ${argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : shq(a))).join(" ")}`);
  }
  if (Object.keys(hosts).length === 0) lines.push("  (none in the stack outputs)");
  const services = isObject(outputs.services) ? outputs.services : {};
  lines.push("Services:");
  for (const svc of spec.services) {
    const out = services[svc.name];
    if (svc.publishPort === undefined) {
      lines.push(`  ${svc.name}: no publishPort (reachable from the host only)`);
      continue;
    }
    const on = isObject(out) && Array.isArray(out.hosts) ? (out.hosts as unknown[]).filter((x): x is string => typeof x === "string") : [];
    if (on.length === 0) lines.push(`  ${svc.name}: not running yet (no replica in the outputs; see awaitingImage)`);
    for (const host of on) {
      const h = isObject(hosts[host]) ? (hosts[host] as Record<string, unknown>) : {};
      // endpoints: where the port is reached on that host (a local host's is a port the engine picked on 127.0.0.1).
      const endpoint = isObject(h.endpoints) ? h.endpoints[String(svc.publishPort)] : undefined;
      const ip = h.publicIp;
      const url = typeof endpoint === "string" ? `http://${endpoint}/` : typeof ip === "string" ? `http://${ip.includes(":") ? `[${ip}]` : ip}:${svc.publishPort}/` : "(no address yet)";
      lines.push(`  ${svc.name}: ${url}  (${host})`);
    }
  }
  return lines;
}
