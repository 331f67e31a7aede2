/**
 * How many SSH dials one `up` of prod makes (issue 24 item 12), counted from the real
 * program's render. Every dial runs the ProxyCommand of `access: ssm` once, and before it
 * pushed the key with SendSSHPublicKey every time (components/connection.ts
 * ssmProxyCommand now reuses a key pushed <= 40 s ago).
 *
 * What dials:
 *  - each command:local:Command whose interpreter is the ssh command line (hostCommandArgs;
 *    the engine's ready check through the retry wrapper): its `create` once on the first up
 *    (pulumi-command local/commandOutputs.go run: interpreter + command), its `delete` once
 *    when it is deleted; the ready check dials again every 30 s while the host boots;
 *  - each Docker provider with an ssh:// host: the Terraform provider pings the daemon when
 *    it first makes its client (kreuzwerker/terraform-provider-docker internal/provider
 *    config.go, clientCache + Ping), and docker's connhelper starts one `ssh ... docker
 *    system dial-stdio` per HTTP connection, which Go's transport keeps alive between
 *    requests: at least one dial per provider, one more per concurrent request.
 *
 * The counts are held to a formula of the stack's hosts and what runs on them, so a new
 * command per container (or per host) shows here and in README "Access to hosts".
 */
import { describe, expect, it } from "vitest";
import type { Rendered, RenderedResource } from "../../scripts/lib/render";
import { contractRender, SWARM_STACK } from "./stacks";

/** The ssh destination (`user@target`) a resource dials, if it does. */
function destination(r: RenderedResource): string | undefined {
  if (r.type === "command:local:Command") {
    const argv = r.inputs.interpreter;
    if (!Array.isArray(argv) || !argv.includes("ssh")) return undefined;
    return argv[argv.lastIndexOf("--") + 1] as string;
  }
  if (r.type === "pulumi:providers:docker" && typeof r.inputs.host === "string" && r.inputs.host.startsWith("ssh://")) return r.inputs.host.slice("ssh://".length);
  return undefined;
}

interface HostDials {
  commands: string[];
  providers: string[];
  /** Docker resources through this host's provider, by type. */
  docker: Record<string, string[]>;
}

function dialsByHost(r: Rendered): Map<string, HostDials> {
  const out = new Map<string, HostDials>();
  const at = (d: string) => out.get(d) ?? (out.set(d, { commands: [], providers: [], docker: {} }), out.get(d)!);
  const providerHost = new Map<string, string>();
  for (const x of r.resources) {
    const d = destination(x);
    if (d === undefined) continue;
    if (x.type === "pulumi:providers:docker") {
      at(d).providers.push(x.name);
      providerHost.set(`${x.type}::${x.name}`, d);
    } else at(d).commands.push(x.name);
  }
  for (const x of r.resources) {
    const d = x.type.startsWith("docker:") && x.options?.provider ? providerHost.get(x.options.provider) : undefined;
    if (d !== undefined) (at(d).docker[x.type] ??= []).push(x.name);
  }
  return out;
}

const total = (m: Map<string, HostDials>, k: "commands" | "providers") => [...m.values()].reduce((n, h) => n + h[k].length, 0);

describe("SSH dials of one up (issue 24 item 12)", () => {
  it("prod, static fleet: per host 1 ready check + 1 pull per image + 1 PIDs limit per container + proxy config and serving gate; 21 commands and 3 provider connections", async () => {
    const hosts = dialsByHost(await contractRender("prod"));
    expect(hosts.size).toBe(3);
    for (const [dest, h] of hosts) {
      const images = h.docker["docker:index/remoteImage:RemoteImage"]?.length ?? 0;
      const containers = h.docker["docker:index/container:Container"] ?? [];
      const proxy = containers.some((c) => /-proxy$/.test(c)) ? 1 : 0;
      expect(h.commands.length, `${dest}: ${h.commands.join(", ")}`).toBe(1 + images + containers.length + 2 * proxy);
      expect(h.providers, dest).toHaveLength(1);
    }
    // The figure README "Access to hosts" gives: 3 hosts x (1 + 2 images + 2 containers + 2) = 21, plus 3 providers.
    expect([total(hosts, "commands"), total(hosts, "providers")]).toEqual([21, 3]);
  });

  it("prod in swarm mode: per host 1 ready check + 1 pull per image + init or join + leftovers, the join tokens once, and on the first manager one update gate per swarm service and per host's proxy; 20 commands and 1 provider connection", async () => {
    const rendered = await contractRender(SWARM_STACK);
    const hosts = dialsByHost(rendered);
    expect(hosts.size).toBe(3);
    const images = 2; // web and the proxy, pulled on every host
    for (const [dest, h] of hosts) expect(h.commands.filter((c) => c.endsWith("-pull")), dest).toHaveLength(images);
    const services = 1; // web; each host's proxy service has its own gate too (components/swarm-fleet.ts)
    expect(total(hosts, "commands")).toBe(hosts.size * (1 + images + 2) + 1 + services + hosts.size);
    expect([total(hosts, "commands"), total(hosts, "providers")]).toEqual([20, 1]);
  });
});
