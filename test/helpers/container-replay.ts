/**
 * Replays rendered docker.Container, docker.RemoteImage, docker.Network and docker.Volume
 * inputs as Engine API calls, the way the Docker provider makes them: pulumi-docker 5.2
 * embeds kreuzwerker/terraform-provider-docker at v4.5.0 (commit 5074970c, pulumi-docker's
 * `upstream` submodule), internal/provider/:
 *  - RemoteImage create (resource_docker_image_funcs.go findImage): the image is looked up
 *    in the engine's local images by its name first (searchLocalImages, ImageInspect) and
 *    its id becomes `imageId`. Here the rendered name (a digest that is not on this machine)
 *    has a local stand-in the test names; its real id is what the containers get;
 *  - Container create (resource_docker_container_funcs.go resourceDockerContainerCreate):
 *    findImage of the container's `image` (the RemoteImage's imageId, pulumi-docker#1431: a
 *    container input naming anything else is refused here), ContainerCreate, d.SetId at once,
 *    then: disconnect from "bridge" and NetworkConnect each `networksAdvanced` with its
 *    aliases, each `upload` copied in (a one-file tar at "/", mode from `permissions`,
 *    0744 when `executable`, else 0644), ContainerStart; with `wait`, ContainerInspect once a
 *    second until State.Health.Status is "healthy", failing with "container failed to be in
 *    healthy state" after `waitTimeout` (default 60) seconds, or at once when there is no
 *    health check. The id is known before the wait: a failed wait still leaves a container,
 *    which is what Pulumi then keeps with an initialization error (`ReplayError.id`);
 *  - Container delete (resourceDockerContainerDelete): ContainerStop with Timeout =
 *    destroyGraceSeconds (0 when unset), ContainerRemove with Force and RemoveVolumes =
 *    `removeVolumes` (schema default true: moby removes the container's anonymous volumes
 *    only, never a named one, daemon/mounts.go removeMountPoints), then ContainerWait
 *    not-running ("No such container" ignored);
 *  - Network create (resource_docker_network_funcs.go): NetworkCreate with the name, driver,
 *    labels; delete: NetworkRemove, retried while it "has active endpoints";
 *  - Volume create (resource_docker_volume.go): VolumeCreate with the name and labels;
 *    delete: VolumeRemove, retried while the "volume is in use".
 * Every input, and every key of a nested block, that this file does not translate is refused
 * (`refuseUntranslated`): a new input of the program cannot be silently left out of a test.
 *
 * What this does NOT prove: the provider's own code does not run here (the translation is
 * ours, read from its source); the RemoteImage's pull is not exercised (a local stand-in).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { dockerApi } from "./docker-api";

/** What a rendered input may hold: "leaf" (a scalar, a list of scalars or a map of strings) or the keys of a nested block (or list of blocks). */
export type Shape = "leaf" | { readonly [key: string]: Shape };

/** docker.Container inputs this file translates into the provider's calls. */
export const CONTAINER_SHAPE: Shape = {
  name: "leaf", hostname: "leaf", image: "leaf", envs: "leaf", restart: "leaf", user: "leaf", readOnly: "leaf", tmpfs: "leaf",
  memory: "leaf", memorySwap: "leaf", cpus: "leaf", capabilities: { adds: "leaf", drops: "leaf" }, securityOpts: "leaf",
  deviceCgroupRules: "leaf", sysctls: "leaf", logDriver: "leaf", logOpts: "leaf",
  healthcheck: { tests: "leaf", interval: "leaf", timeout: "leaf", retries: "leaf", startPeriod: "leaf" },
  wait: "leaf", waitTimeout: "leaf", destroyGraceSeconds: "leaf", removeVolumes: "leaf", stopTimeout: "leaf", stopSignal: "leaf", init: "leaf",
  networksAdvanced: { name: "leaf", aliases: "leaf" },
  mounts: { type: "leaf", source: "leaf", target: "leaf", readOnly: "leaf" },
  labels: { label: "leaf", value: "leaf" },
  uploads: { file: "leaf", content: "leaf", contentBase64: "leaf", permissions: "leaf", executable: "leaf" },
  ports: { internal: "leaf", external: "leaf", protocol: "leaf", ip: "leaf" },
  volumes: { hostPath: "leaf", volumeName: "leaf", containerPath: "leaf", readOnly: "leaf" },
  hosts: { host: "leaf", ip: "leaf" },
};
export const REMOTE_IMAGE_SHAPE: Shape = { name: "leaf", platform: "leaf", keepLocally: "leaf" };
export const NETWORK_SHAPE: Shape = { name: "leaf", driver: "leaf", labels: { label: "leaf", value: "leaf" } };
export const VOLUME_SHAPE: Shape = { name: "leaf", labels: { label: "leaf", value: "leaf" } };

/** Every path in `value` that `shape` does not translate, e.g. `healthcheck.startInterval`, `ports[0].ip`. */
export function untranslated(raw: unknown, shape: Shape, at = ""): string[] {
  const value = plain(raw);
  if (shape === "leaf" || value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => untranslated(v, shape, `${at}[${i}]`));
  if (typeof value !== "object") return [`${at} (a ${typeof value}, where a block is translated)`];
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => {
    const p = at ? `${at}.${k}` : k;
    return k in shape ? untranslated(v, shape[k], p) : [p];
  });
}

/** Throws, naming the resource and every input path the replay does not translate. */
export function refuseUntranslated(what: string, inputs: Record<string, unknown>, shape: Shape): void {
  const missing = untranslated(inputs, shape);
  if (missing.length > 0) throw new Error(`${what}: inputs the replay does not translate yet: ${missing.join(", ")}`);
}

const SECRET_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
/** A value as the mock runtime records it, with every secret wrapper taken off. */
export function plain<T>(v: T): T {
  if (Array.isArray(v)) return v.map(plain) as T;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (o[SECRET_KEY] === SECRET_SIG && "value" in o) return plain(o.value) as T;
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, plain(x)])) as T;
  }
  return v;
}

/** A failed create that left the object behind (the provider set its id first): Pulumi keeps it with an initialization error. */
export class ReplayError extends Error {
  constructor(message: string, readonly id: string) {
    super(message);
  }
}

const labelMap = (ls: { label: string; value: string }[] = []) => Object.fromEntries(ls.map((l) => [l.label, l.value]));
/** time.ParseDuration as the provider uses it, for the units the schema allows (ms|s|m|h), in nanoseconds. */
export function goDuration(d: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`duration ${JSON.stringify(d)} is not one the replay parses`);
  return Number(m[1]) * { ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }[m[2] as "ms" | "s" | "m" | "h"];
}

export interface ContainerOptions {
  /** Deviation from the render: bind every published port on this address (the rendered ports bind their `ip`, 0.0.0.0 by default). */
  hostIp?: string;
  /** Deviation from the render: where a bind mount's or bind volume's host path is on this machine. */
  hostPath?: (p: string) => string;
  /** Deviation from the render: the upload contents the test substitutes (a real key for a mock one), by file. */
  uploads?: Record<string, { content?: string; contentBase64?: string }>;
  /** Test-only additions to the request (labels for cleanup, the test platform's binds). */
  extra?: { labels?: Record<string, string>; binds?: string[] };
  /** Deviation from the render: the health wait's bound in seconds, when the test cuts a failing wait short. */
  waitTimeout?: number;
}

/** One replayed engine: the RemoteImages it created (their mock imageId -> real image id) and the API it speaks. */
export class EngineReplay {
  private readonly imageIds = new Map<string, string>();
  constructor(readonly api: typeof dockerApi = dockerApi) {}

  /**
   * A RemoteImage as findImage creates it: the local image `standIn` (for the rendered name)
   * looked up by ImageInspect; `imageIdRef` is how containers reference its imageId in the
   * render (under the mock runtime, `computed(<name>.imageId)`). Returns the real id.
   */
  async createRemoteImage(what: string, inputs: Record<string, unknown>, imageIdRef: string, standIn: string): Promise<string> {
    refuseUntranslated(what, inputs, REMOTE_IMAGE_SHAPE);
    const { Id } = await this.api<{ Id: string }>("GET", `/images/${encodeURIComponent(standIn)}/json`);
    this.imageIds.set(imageIdRef, Id);
    return Id;
  }

  /** The image a container's `image` input resolves to: the imageId of a RemoteImage created here, nothing else (pulumi-docker#1431). */
  imageOf(what: string, image: unknown): string {
    const id = typeof image === "string" ? this.imageIds.get(image) : undefined;
    if (!id) throw new Error(`${what}: image ${JSON.stringify(image)} is no RemoteImage's imageId created in this replay (pulumi-docker#1431: containers take the pulled image's id)`);
    return id;
  }

  /** ContainerCreate's body for a container's rendered inputs (resourceDockerContainerCreate's mapping). */
  createRequest(what: string, raw: Record<string, unknown>, opts: ContainerOptions = {}): Record<string, unknown> {
    refuseUntranslated(what, raw, CONTAINER_SHAPE);
    const i = plain(raw) as Record<string, any>;
    const hostPath = opts.hostPath ?? ((p: string) => p);
    const hc = i.healthcheck;
    const ports = (i.ports ?? []) as { internal: number; external?: number; protocol?: string; ip?: string }[];
    const key = (p: (typeof ports)[number]) => `${p.internal}/${p.protocol ?? "tcp"}`;
    const opts_ = (i.securityOpts ?? []) as string[];
    const unconfined = opts_.includes("systempaths=unconfined");
    const binds = ((i.volumes ?? []) as { hostPath?: string; volumeName?: string; containerPath: string; readOnly?: boolean }[]).map(
      (v) => `${v.hostPath !== undefined ? hostPath(v.hostPath) : v.volumeName}:${v.containerPath}${v.readOnly ? ":ro" : ""}`,
    );
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of ports) (bindings[key(p)] ??= []).push({ HostIp: opts.hostIp ?? p.ip ?? "0.0.0.0", HostPort: p.external !== undefined ? String(p.external) : "" });
    return {
      Image: this.imageOf(what, i.image),
      Hostname: i.hostname ?? "",
      Env: i.envs ?? [],
      User: i.user ?? "",
      Labels: { ...labelMap(i.labels), ...(opts.extra?.labels ?? {}) },
      StopSignal: i.stopSignal ?? "",
      StopTimeout: i.stopTimeout,
      Healthcheck: hc ? { Test: hc.tests, Interval: goDuration(hc.interval ?? "0s"), Timeout: goDuration(hc.timeout ?? "0s"), StartPeriod: goDuration(hc.startPeriod ?? "0s"), Retries: hc.retries ?? 0 } : undefined,
      ExposedPorts: Object.fromEntries(ports.map((p) => [key(p), {}])),
      HostConfig: {
        RestartPolicy: { Name: i.restart ?? "no" },
        Init: i.init ?? false,
        ReadonlyRootfs: i.readOnly ?? false,
        Tmpfs: i.tmpfs,
        Memory: i.memory ? i.memory * 1024 * 1024 : 0,
        MemorySwap: i.memorySwap ? (i.memorySwap > 0 ? i.memorySwap * 1024 * 1024 : i.memorySwap) : 0,
        NanoCpus: i.cpus ? Math.round(Number(i.cpus) * 1e9) : 0,
        CapAdd: i.capabilities?.adds,
        CapDrop: i.capabilities?.drops,
        // parseSystemPaths: systempaths=unconfined is no security option, it empties the masked and read-only paths.
        SecurityOpt: opts_.filter((o) => o !== "systempaths=unconfined"),
        ...(unconfined ? { MaskedPaths: [], ReadonlyPaths: [] } : {}),
        DeviceCgroupRules: i.deviceCgroupRules,
        Sysctls: i.sysctls,
        LogConfig: { Type: i.logDriver ?? "", Config: i.logOpts ?? {} },
        PortBindings: bindings,
        // extraHostsSetToContainerExtraHosts: "<host>:<ip>" each; dockerd resolves host-gateway.
        ExtraHosts: ((i.hosts ?? []) as { host: string; ip: string }[]).map((x) => `${x.host}:${x.ip}`),
        Binds: [...binds, ...(opts.extra?.binds ?? [])],
        Mounts: ((i.mounts ?? []) as { type: string; source: string; target: string; readOnly?: boolean }[]).map((m) => ({
          Type: m.type,
          Source: m.type === "bind" ? hostPath(m.source) : m.source,
          Target: m.target,
          ReadOnly: m.readOnly ?? false,
        })),
      },
    };
  }

  /**
   * A container created as the provider creates it, named `name`; resolves with its id once
   * created (and healthy, with `wait`); rejects with a ReplayError carrying the id when the
   * wait fails (the container stays, as the provider leaves it).
   */
  async createContainer(name: string, what: string, raw: Record<string, unknown>, opts: ContainerOptions = {}): Promise<string> {
    const body = this.createRequest(what, raw, opts);
    const i = plain(raw) as Record<string, any>;
    // findImage: the image (an id) is found among the local images.
    await this.api("GET", `/images/${encodeURIComponent(String(body.Image))}/json`);
    const { Id: id } = await this.api<{ Id: string }>("POST", `/containers/create?name=${encodeURIComponent(name)}`, body);
    if ((i.networksAdvanced ?? []).length > 0) {
      await this.api("POST", "/networks/bridge/disconnect", { Container: id, Force: false }).catch((e: Error) => {
        if (!/is not connected to the network bridge/.test(e.message)) throw e;
      });
      for (const n of i.networksAdvanced) await this.api("POST", `/networks/${encodeURIComponent(n.name)}/connect`, { Container: id, EndpointConfig: { Aliases: n.aliases ?? [] } });
    }
    for (const u of (i.uploads ?? []) as { file: string; content?: string; contentBase64?: string; permissions?: string; executable?: boolean }[]) {
      const sub = opts.uploads?.[u.file];
      const content = sub ? (sub.contentBase64 !== undefined ? Buffer.from(sub.contentBase64, "base64") : Buffer.from(sub.content ?? "")) : u.contentBase64 !== undefined ? Buffer.from(u.contentBase64, "base64") : Buffer.from(u.content ?? "");
      copyFileIn(id, u.file, content, u.permissions ? parseInt(u.permissions, 8) : u.executable ? 0o744 : 0o644);
    }
    await this.api("POST", `/containers/${id}/start`);
    if (i.wait) {
      const end = Date.now() + (opts.waitTimeout ?? i.waitTimeout ?? 60) * 1000;
      for (;;) {
        const info = await this.api<{ State: { Health?: { Status: string } } }>("GET", `/containers/${id}/json`);
        if (!info.State.Health) throw new ReplayError("you have supplied a 'wait' argument, but the container does not have a healthcheck defined", id);
        if (info.State.Health.Status === "healthy") break;
        if (Date.now() > end) throw new ReplayError(`container ${what}: container failed to be in healthy state`, id);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    return id;
  }

  /** A container deleted as the provider deletes it: stop with its grace, remove (force, RemoveVolumes), wait until not running. */
  async deleteContainer(id: string, raw: Record<string, unknown>): Promise<void> {
    const i = plain(raw) as { destroyGraceSeconds?: number; removeVolumes?: boolean };
    await this.api("POST", `/containers/${id}/stop?t=${i.destroyGraceSeconds ?? 0}`).catch((e: Error) => {
      if (!/ 304|No such container/.test(e.message)) throw e;
    });
    await this.api("DELETE", `/containers/${id}?force=true&v=${i.removeVolumes ?? true}`).catch((e: Error) => {
      if (!/No such container|is already in progress/.test(e.message)) throw e;
    });
    await this.api("POST", `/containers/${id}/wait?condition=not-running`).catch((e: Error) => {
      if (!/No such container|is already in progress/.test(e.message)) throw e;
    });
  }

  /** A network as the provider creates it (test labels added); returns its id. */
  async createNetwork(what: string, raw: Record<string, unknown>, extraLabels: Record<string, string> = {}): Promise<string> {
    refuseUntranslated(what, raw, NETWORK_SHAPE);
    const i = plain(raw) as { name: string; driver?: string; labels?: { label: string; value: string }[] };
    const { Id } = await this.api<{ Id: string }>("POST", "/networks/create", { Name: i.name, Driver: i.driver ?? "bridge", Labels: { ...labelMap(i.labels), ...extraLabels }, CheckDuplicate: true });
    return Id;
  }

  /** A network deleted as the provider deletes it: NetworkRemove, again while it has active endpoints (bounded). */
  async deleteNetwork(id: string, timeoutMs = 30_000): Promise<void> {
    await this.retryWhile(() => this.api("DELETE", `/networks/${id}`), /has active endpoints/, /No such network|not found/, timeoutMs);
  }

  /** A volume as the provider creates it (test labels added); returns its name. */
  async createVolume(what: string, raw: Record<string, unknown>, extraLabels: Record<string, string> = {}): Promise<string> {
    refuseUntranslated(what, raw, VOLUME_SHAPE);
    const i = plain(raw) as { name: string; labels?: { label: string; value: string }[] };
    const { Name } = await this.api<{ Name: string }>("POST", "/volumes/create", { Name: i.name, Labels: { ...labelMap(i.labels), ...extraLabels } });
    return Name;
  }

  /** A volume deleted as the provider deletes it: VolumeRemove, again while in use (bounded). */
  async deleteVolume(name: string, timeoutMs = 30_000): Promise<void> {
    await this.retryWhile(() => this.api("DELETE", `/volumes/${encodeURIComponent(name)}`), /volume is in use/, /no such volume/i, timeoutMs);
  }

  private async retryWhile(f: () => Promise<unknown>, pending: RegExp, gone: RegExp, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        await f();
        return;
      } catch (e) {
        const m = (e as Error).message;
        if (gone.test(m)) return;
        if (!pending.test(m) || Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}

/** One upload as the provider copies it: a tar holding the one file (owner 0, its mode), extracted at "/". */
function copyFileIn(container: string, file: string, content: Buffer, mode: number): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dy-upload-"));
  try {
    const staged = path.join(dir, file);
    fs.mkdirSync(path.dirname(staged), { recursive: true });
    fs.writeFileSync(staged, content);
    fs.chmodSync(staged, mode);
    const tar = execFileSync("tar", ["-C", dir, "--owner=0", "--group=0", "--no-recursion", "-c", file.replace(/^\//, "")]);
    execFileSync("docker", ["cp", "-", `${container}:/`], { input: tar });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
