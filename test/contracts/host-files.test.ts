/**
 * Contract: every host file a container bind-mounts lives on the host's data volume (its
 * group's dataMount), in a directory the host's user-data makes, written there by a command
 * whose create names it (so it runs again when the path changes) and that has no delete.
 *
 * Why: the root disk does not survive a replacement. components/host.ts deletes it with the
 * instance (rootBlockDevice deleteOnTermination; a new user-data, engine version or daemon
 * setting replaces the instance), and a local host's root filesystem is its machine
 * container's. The data volume is kept and Docker's data-root is on it, so the new machine's
 * dockerd restores every container, once: moby daemon/daemon.go Daemon.restore starts each
 * container whose restart policy asks for it (containerStart, a failure only logged, no
 * retry), and a bind mount made with the Mounts API is not created when its source is missing
 * (daemon/volume/mounts/mounts.go MountPoint.Setup with SkipMountpointCreation; validate.go
 * "bind source path does not exist"). A bind source on the root disk is gone then, the
 * container stays exited, and nothing in Pulumi starts it again (no input changed).
 *
 * What this does not prove: that dockerd really restores the container (test/host/
 * engine.int.test.ts replaces a host's root on the real harness for that).
 */
import { describe, expect, it } from "vitest";
import { gunzipSync } from "node:zlib";
import type { Rendered, RenderedResource } from "../../scripts/lib/render";
import { CONTRACT_STACKS, contractRender } from "./stacks";
import { LOCAL_ENGINE, T } from "./rules";

const COMMAND = "command:local:Command";

/** The text of a rendered input that may be a Pulumi secret ({ <sig>: ..., value }) or gzip+base64. */
function text(v: unknown): string {
  const inner = v && typeof v === "object" && "value" in (v as object) ? (v as { value: unknown }).value : v;
  return typeof inner === "string" ? inner : JSON.stringify(inner ?? "");
}
function maybeGunzip(b64: string): string {
  try {
    return gunzipSync(Buffer.from(b64, "base64")).toString();
  } catch {
    return Buffer.from(b64, "base64").toString();
  }
}

/** Every host of a render (EC2 and local alike): each has its DockerEngine, `<host>-engine`. */
function hostNames(r: Rendered): string[] {
  return r.resources.filter((x) => x.type === "dockyard:index:DockerEngine").map((x) => x.name.replace(/-engine$/, ""));
}

/**
 * Host name -> the DATA_MOUNT its own user-data mounts the data volume at (components/engine.ts
 * renderEnvironment): an EC2 instance's userDataBase64, a local machine container's uploads.
 */
export function hostDataMounts(r: Rendered): Map<string, string> {
  return new Map([...hostUserData(r)].flatMap(([h, t]) => {
    const m = /^\s*DATA_MOUNT='([^']+)'$/m.exec(t);
    return m ? [[h, m[1]] as [string, string]] : [];
  }));
}

/** Host name -> the text of its user-data (an EC2 instance's userDataBase64, a local machine container's uploads). */
function hostUserData(r: Rendered): Map<string, string> {
  const out = new Map<string, string>();
  const hosts = hostNames(r);
  const fromText = (host: string, t: string) => void out.set(host, (out.get(host) ?? "") + t);
  for (const x of r.resources) {
    if (x.type === T.instance) {
      const host = hosts.find((h) => x.name === `${h}-instance`);
      if (host && typeof x.inputs.userDataBase64 === "string") fromText(host, maybeGunzip(x.inputs.userDataBase64));
    }
    if (x.type === T.container && x.options?.provider === LOCAL_ENGINE) {
      const host = hosts.find((h) => x.name === `${h}-machine`);
      const uploads = JSON.parse(text(x.inputs.uploads) || "[]") as { content?: string; contentBase64?: string }[];
      for (const u of host ? uploads : []) fromText(host!, u.content ?? maybeGunzip(u.contentBase64 ?? ""));
    }
  }
  return out;
}

/** The host a resource on a host belongs to: the host whose name ends its provider's (Docker) or its own name (commands), longest first. */
function hostOf(name: string, hosts: readonly string[]): string | undefined {
  return [...hosts].sort((a, b) => b.length - a.length).find((h) => name.endsWith(`-${h}`) || name.includes(`-${h}-`));
}

/** A container's host-file mounts: `mounts` of type bind and `volumes` with a hostPath. */
function bindSources(c: RenderedResource): string[] {
  const mounts = (c.inputs.mounts ?? []) as { type?: string; source?: string }[];
  const volumes = (c.inputs.volumes ?? []) as { hostPath?: string }[];
  return [...mounts.filter((m) => m.type === "bind").map((m) => String(m.source)), ...volumes.filter((v) => v.hostPath !== undefined).map((v) => String(v.hostPath))];
}

/** What breaks the rule in one render (empty: none). */
export function hostFileProblems(r: Rendered): string[] {
  const p: string[] = [];
  const mounts = hostDataMounts(r);
  const userData = hostUserData(r);
  const hosts = [...mounts.keys()];
  const commands = r.resources.filter((x) => x.type === COMMAND);
  for (const c of r.resources.filter((x) => x.type === T.container && x.options?.provider && x.options.provider !== LOCAL_ENGINE)) {
    const host = hostOf(c.options!.provider!, hosts);
    for (const source of bindSources(c)) {
      if (!host) {
        p.push(`${c.name}: bind-mounts ${source} on a host whose data mount no user-data names`);
        continue;
      }
      const data = mounts.get(host)!;
      if (!source.startsWith(`${data}/`)) p.push(`${c.name}: bind-mounts ${source}, which is not on ${host}'s data volume (${data}/): a replacement's new root disk does not have it`);
      // The SSH user writes the file (the commands run as it), into a directory the host's
      // user-data made for it: one of its environment values (components/engine.ts renderEnvironment).
      const dir = source.slice(0, source.lastIndexOf("/"));
      if (!new RegExp(`^\\s*[A-Z_]+='${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}'$`, "m").test(userData.get(host) ?? "")) p.push(`${c.name}: bind-mounts ${source}, but ${host}'s user-data makes no directory ${dir} for it`);
      const writers = commands.filter((x) => hostOf(x.name, hosts) === host && text(x.inputs.create).includes(source));
      if (writers.length === 0) p.push(`${c.name}: bind-mounts ${source}, which no command on ${host} writes`);
      // pulumi-command runs a changed create on update (local/commandController.go Update), so
      // a writer whose create names the path writes it again whenever the path changes. A delete
      // runs with the old state's interpreter (Delete uses req.State): after a host replacement
      // it dials the old machine, so a writer has none.
      for (const w of writers) if (w.inputs.delete !== undefined) p.push(`${w.name}: writes ${source} and has a delete command, which Pulumi runs over the old host's connection`);
    }
  }
  return p;
}

describe.each([...CONTRACT_STACKS])("stack %s", (stack) => {
  it("every bind-mounted host file is on its host's data volume, in a directory its user-data makes, written by a command that names it and has no delete", async () => {
    const r = await contractRender(stack);
    // Every host's data mount is known (so a container cannot pass by its host being unknown).
    const hosts = hostNames(r);
    expect(hosts.length).toBeGreaterThan(0);
    expect([...hostDataMounts(r).keys()].sort()).toEqual([...hosts].sort());
    expect(hostFileProblems(r)).toEqual([]);
  }, 600_000);
});

describe("the rule catches", () => {
  const withProxy = async () => {
    const r = structuredClone(await contractRender("dev"));
    const proxy = r.resources.find((x) => x.type === T.container && /-proxy$/.test(x.name))!;
    return { r, proxy };
  };
  it("a bind source on the root disk", async () => {
    const { r, proxy } = await withProxy();
    proxy.inputs.mounts = [{ type: "bind", source: "/etc/dockyard/proxy/haproxy-0.cfg", target: "/x", readOnly: true }];
    expect(hostFileProblems(r).join("\n")).toMatch(/bind-mounts \/etc\/dockyard\/proxy\/haproxy-0\.cfg, which is not on dev-app-1's data volume \(\/var\/lib\/dockyard\/\)/);
  }, 600_000);
  it("a hostPath volume nobody writes", async () => {
    const { r, proxy } = await withProxy();
    proxy.inputs.volumes = [{ hostPath: "/var/lib/dockyard/other.cfg", containerPath: "/y" }];
    expect(hostFileProblems(r).join("\n")).toMatch(/bind-mounts \/var\/lib\/dockyard\/other\.cfg, which no command on dev-app-1 writes/);
  }, 600_000);
  it("a directory the user-data does not make", async () => {
    const { r, proxy } = await withProxy();
    const mount = (proxy.inputs.mounts as { source: string }[])[0];
    const moved = mount.source.replace(/\/proxy\//, "/elsewhere/");
    mount.source = moved;
    for (const c of r.resources.filter((x) => x.type === COMMAND && /-proxy-config$/.test(x.name))) c.inputs.create = moved;
    expect(hostFileProblems(r)).toEqual([`fleet-dev-app-1-proxy: bind-mounts ${moved}, but dev-app-1's user-data makes no directory /var/lib/dockyard/elsewhere for it`]);
  }, 600_000);
  it("a writer with a delete command", async () => {
    const { r } = await withProxy();
    const writer = r.resources.find((x) => x.type === COMMAND && /-proxy-config$/.test(x.name))!;
    writer.inputs.delete = "rm -f x";
    expect(hostFileProblems(r).join("\n")).toMatch(/proxy-config: writes \S+ and has a delete command, which Pulumi runs over the old host's connection/);
  }, 600_000);
});
