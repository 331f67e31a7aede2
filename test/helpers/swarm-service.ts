/**
 * Plays pulumi-docker's `docker.Service` against a real swarm manager: the resource's
 * inputs (a `docker.ServiceArgs` of plain values) become the Engine API's ServiceSpec the
 * way the bridged Terraform provider builds it, and are sent the way it sends them.
 *
 * pulumi-docker 5.x bridges kreuzwerker/terraform-provider-docker; each field below names
 * the function of internal/provider/resource_docker_service_structures.go (createServiceSpec
 * and the functions it calls) that sets it, and the schema default
 * (internal/provider/resource_docker_service.go) the provider fills in where the Pulumi
 * input leaves a field out. The calls are those of resource_docker_service_funcs.go:
 * resourceDockerServiceCreate (ServiceCreate with QueryRegistry and the marshalled registry
 * auth) and resourceDockerServiceUpdate (inspect for the version, then ServiceUpdate with
 * the auth, no registry query), through moby's client/service_create.go and
 * service_update.go.
 *
 * Networks and configs likewise: resource_docker_network_funcs.go resourceDockerNetworkCreate,
 * resource_docker_config.go resourceDockerConfigCreate.
 *
 * Around the calls, as resource_docker_service_funcs.go does: with `convergeConfig`, create
 * waits for every replica to run (resourceDockerServiceCreateRefreshFunc) and on a timeout
 * deletes the service it made and fails (DidNotConvergeError), and update waits for swarm's
 * update status (resourceDockerServiceUpdateRefreshFunc: completed, or fails on a rollback
 * or pause). Inputs the provider's schema refuses (ConflictsWith: test/contracts/rules.ts
 * DOCKER_SCHEMA_RULES) are refused, and so is every input this file does not translate, at
 * every level, so a rendered input is never dropped silently.
 *
 * Not played: reading the service back into state, and terraform's Set ordering of mounts,
 * networks, secrets, configs, constraints and prefs (the engine does not care).
 */
import type * as docker from "@pulumi/docker";
import { sh } from "../host/harness";
import { DOCKER_SCHEMA_RULES, T, schemaProblems } from "../contracts/rules";

/** Engine API version of Debian's dockerd 20.10, what the hosts run. */
export const API_VERSION = "v1.41";

/** A Go duration string (time.ParseDuration: ns, us, ms, s, m, h, combined) in nanoseconds. */
export function goDuration(s: string): number {
  if (s === "0") return 0;
  const unit: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * unit[m[2]];
    at = re.lastIndex;
  }
  if (at !== s.length || s.length === 0) throw new Error(`not a Go duration: ${JSON.stringify(s)}`);
  return Math.round(total);
}

/** Fails on anything that is not a plain value (an Output or a promise): the tests pass plain inputs only. */
function plain<T>(v: T | undefined, what: string): T | undefined {
  if (v !== null && typeof v === "object" && ("then" in (v as object) || "apply" in (v as object))) {
    throw new Error(`${what} is an Output or a promise; pass plain values`);
  }
  return v;
}

type Obj = Record<string, unknown>;

/** Refuses an input this file does not translate: `where` names it, the way the rendered input spells it. */
function only(v: unknown, known: readonly string[], where: string): void {
  if (v === undefined || v === null) return;
  const extra = Object.keys(v as Obj).filter((k) => !known.includes(k) && (v as Obj)[k] !== undefined);
  if (extra.length > 0) throw new Error(`${extra.map((k) => `${where}.${k}`).join(", ")}: not translated by test/helpers/swarm-service.ts`);
}
const list = <T>(v: unknown, what: string): T[] => (plain(v as T[] | undefined, what) ?? []) as T[];

/** labelSetToMap: `[{label, value}]` -> map. */
function labelMap(v: unknown, what: string): Record<string, string> | undefined {
  const l = list<{ label: string; value: string }>(v, what);
  return l.length ? Object.fromEntries(l.map((x) => [x.label, x.value])) : undefined;
}

/** createUpdateOrRollbackConfig, with the schema's defaults (parallelism 1, delay 0s, failure_action pause, monitor 5s, max_failure_ratio 0.0, order stop-first). */
function updateOrRollbackConfig(c: docker.types.input.ServiceUpdateConfig | undefined): Obj | undefined {
  if (!c) return undefined;
  only(c, ["parallelism", "delay", "failureAction", "monitor", "maxFailureRatio", "order"], "updateConfig/rollbackConfig");
  return {
    Parallelism: (c.parallelism as number | undefined) ?? 1,
    Delay: goDuration((c.delay as string | undefined) ?? "0s"),
    FailureAction: (c.failureAction as string | undefined) ?? "pause",
    Monitor: goDuration((c.monitor as string | undefined) ?? "5s"),
    MaxFailureRatio: parseFloat((c.maxFailureRatio as string | undefined) ?? "0.0"),
    Order: (c.order as string | undefined) ?? "stop-first",
  };
}

/** A secret's or config's reference fields (`$`: secret or config). */
const FILE_REF = ["$Id", "$Name", "fileName", "fileUid", "fileGid", "fileMode"];

/** createContainerSpec. */
function containerSpec(c: docker.types.input.ServiceTaskSpecContainerSpec): Obj {
  const out: Obj = {};
  only(c, ["image", "labels", "commands", "args", "env", "user", "readOnly", "mounts", "stopSignal", "stopGracePeriod", "healthcheck", "secrets", "configs", "sysctl", "capAdds", "capDrops"], "taskSpec.containerSpec");
  // image: taken as is (the client's imageWithTagString leaves a digest reference alone).
  out.Image = plain(c.image, "image");
  // labels: labelSetToMap.
  const labels = labelMap(c.labels, "containerSpec.labels");
  if (labels) out.Labels = labels;
  // command, args: stringListToStringSlice.
  if (c.commands !== undefined) out.Command = list<string>(c.commands, "commands");
  if (c.args !== undefined) out.Args = list<string>(c.args, "args");
  // env: mapTypeMapValsToStringSlice, `k=v`.
  if (c.env !== undefined) out.Env = Object.entries(plain(c.env as Record<string, string>, "env") ?? {}).map(([k, v]) => `${k}=${v}`);
  // user.
  if (c.user !== undefined) out.User = plain(c.user, "user");
  // read_only.
  if (c.readOnly !== undefined) out.ReadOnly = plain(c.readOnly, "readOnly");
  // mounts: type, target, source, read_only; tmpfs_options size_bytes and mode (os.FileMode
  // of the number: 0o1777 is sent as 1023 and the daemon formats it with %o back to 1777);
  // volume_options no_copy, labels (labelSetToMap), driver_name/driver_options (DriverConfig);
  // bind_options propagation (schema default rprivate).
  if (c.mounts !== undefined) {
    out.Mounts = list<docker.types.input.ServiceTaskSpecContainerSpecMount>(c.mounts, "mounts").map((m) => {
      only(m, ["type", "target", "source", "readOnly", "bindOptions", "volumeOptions", "tmpfsOptions"], "containerSpec.mounts[]");
      only(m.bindOptions, ["propagation"], "containerSpec.mounts[].bindOptions");
      only(m.volumeOptions, ["noCopy", "labels", "driverName", "driverOptions"], "containerSpec.mounts[].volumeOptions");
      only(m.tmpfsOptions, ["sizeBytes", "mode"], "containerSpec.mounts[].tmpfsOptions");
      const mount: Obj = { Type: m.type, Target: m.target, Source: (m.source as string | undefined) ?? "", ReadOnly: (m.readOnly as boolean | undefined) ?? false };
      const b = m.bindOptions as docker.types.input.ServiceTaskSpecContainerSpecMountBindOptions | undefined;
      if (b) mount.BindOptions = { Propagation: (b.propagation as string | undefined) ?? "rprivate" };
      const v = m.volumeOptions as docker.types.input.ServiceTaskSpecContainerSpecMountVolumeOptions | undefined;
      if (v) {
        const vo: Obj = { NoCopy: (v.noCopy as boolean | undefined) ?? false };
        const vl = labelMap(v.labels, "volumeOptions.labels");
        if (vl) vo.Labels = vl;
        if (v.driverName !== undefined || v.driverOptions !== undefined) vo.DriverConfig = { Name: v.driverName ?? "", Options: v.driverOptions };
        mount.VolumeOptions = vo;
      }
      const t = m.tmpfsOptions as docker.types.input.ServiceTaskSpecContainerSpecMountTmpfsOptions | undefined;
      if (t) mount.TmpfsOptions = { SizeBytes: (t.sizeBytes as number | undefined) ?? 0, Mode: (t.mode as number | undefined) ?? 0 };
      return mount;
    });
  }
  // stop_signal.
  if (c.stopSignal !== undefined) out.StopSignal = c.stopSignal;
  // stop_grace_period: time.ParseDuration.
  if (c.stopGracePeriod !== undefined) out.StopGracePeriod = goDuration(c.stopGracePeriod as string);
  // healthcheck: test, and interval/timeout/start_period/retries with the schema's defaults (0s, 0).
  if (c.healthcheck !== undefined) {
    const hc = c.healthcheck as docker.types.input.ServiceTaskSpecContainerSpecHealthcheck;
    only(hc, ["tests", "interval", "timeout", "startPeriod", "retries"], "containerSpec.healthcheck");
    out.Healthcheck = {
      Test: list<string>(hc.tests, "healthcheck.tests"),
      Interval: goDuration((hc.interval as string | undefined) ?? "0s"),
      Timeout: goDuration((hc.timeout as string | undefined) ?? "0s"),
      StartPeriod: goDuration((hc.startPeriod as string | undefined) ?? "0s"),
      Retries: (hc.retries as number | undefined) ?? 0,
    };
  }
  // secrets: SecretReference{SecretID, SecretName, File{Name, UID, GID, Mode}}, defaults uid/gid "0", mode 0o444.
  if (c.secrets !== undefined) {
    out.Secrets = list<docker.types.input.ServiceTaskSpecContainerSpecSecret>(c.secrets, "secrets").map((s) => (only(s, FILE_REF.map((k) => k.replace("$", "secret")), "containerSpec.secrets[]"), {
      SecretID: s.secretId,
      ...(s.secretName !== undefined ? { SecretName: s.secretName } : {}),
      File: { Name: s.fileName, UID: s.fileUid ?? "0", GID: s.fileGid ?? "0", Mode: (s.fileMode as number | undefined) ?? 0o444 },
    }));
  }
  // configs: ConfigReference{ConfigID, ConfigName, File{...}}, the same defaults.
  if (c.configs !== undefined) {
    out.Configs = list<docker.types.input.ServiceTaskSpecContainerSpecConfig>(c.configs, "configs").map((s) => (only(s, FILE_REF.map((k) => k.replace("$", "config")), "containerSpec.configs[]"), {
      ConfigID: s.configId,
      ...(s.configName !== undefined ? { ConfigName: s.configName } : {}),
      File: { Name: s.fileName, UID: s.fileUid ?? "0", GID: s.fileGid ?? "0", Mode: (s.fileMode as number | undefined) ?? 0o444 },
    }));
  }
  // sysctl: mapTypeMapValsToString.
  if (c.sysctl !== undefined) out.Sysctls = plain(c.sysctl as Record<string, string>, "sysctl");
  // cap_add, cap_drop: appended one by one (CapabilityAdd/CapabilityDrop, API 1.41).
  if (c.capAdds !== undefined) out.CapabilityAdd = list<string>(c.capAdds, "capAdds");
  if (c.capDrops !== undefined) out.CapabilityDrop = list<string>(c.capDrops, "capDrops");
  return out;
}

/** createServiceSpec: the ServiceSpec the provider sends for these inputs. */
export function serviceSpec(args: docker.ServiceArgs): Obj {
  // convergeConfig is no part of the spec: the provider's wait after the call (createService, updateService). auth is not played.
  only(args, ["name", "labels", "mode", "taskSpec", "updateConfig", "rollbackConfig", "endpointSpec", "convergeConfig"], "service");
  const refused = schemaProblems({ type: T.service, name: String(args.name), custom: true, inputs: args as unknown as Obj }, DOCKER_SCHEMA_RULES[T.service]);
  if (refused.length > 0) throw new Error(`the provider refuses these inputs: ${refused.join("; ")}`);
  only(args.convergeConfig, ["delay", "timeout"], "convergeConfig");
  const t = plain(args.taskSpec, "taskSpec") as docker.types.input.ServiceTaskSpec;
  only(t, ["containerSpec", "resources", "restartPolicy", "placement", "forceUpdate", "runtime", "networksAdvanceds", "logDriver"], "taskSpec");
  const spec: Obj = {
    // Annotations.Name.
    Name: plain(args.name, "name"),
  };
  // createServiceLabels: labelSetToMap.
  const labels = labelMap(args.labels, "labels");
  if (labels) spec.Labels = labels;

  // createServiceTaskSpec.
  const task: Obj = {};
  // container_spec: createContainerSpec.
  task.ContainerSpec = containerSpec(plain(t.containerSpec, "containerSpec") as docker.types.input.ServiceTaskSpecContainerSpec);
  // resources: createResources (limits nano_cpus, memory_bytes; reservation likewise).
  if (t.resources !== undefined) {
    const r = t.resources as docker.types.input.ServiceTaskSpecResources;
    only(r, ["limits", "reservation"], "taskSpec.resources");
    only(r.limits, ["nanoCpus", "memoryBytes"], "taskSpec.resources.limits");
    only(r.reservation, ["nanoCpus", "memoryBytes"], "taskSpec.resources.reservation");
    const res: Obj = {};
    const l = r.limits as docker.types.input.ServiceTaskSpecResourcesLimits | undefined;
    if (l) res.Limits = { NanoCPUs: (l.nanoCpus as number | undefined) ?? 0, MemoryBytes: (l.memoryBytes as number | undefined) ?? 0 };
    const rv = r.reservation as docker.types.input.ServiceTaskSpecResourcesReservation | undefined;
    if (rv) {
      res.Reservations = { NanoCPUs: (rv.nanoCpus as number | undefined) ?? 0, MemoryBytes: (rv.memoryBytes as number | undefined) ?? 0 };
    }
    task.Resources = res;
  }
  // restart_policy: createRestartPolicy (condition; delay and window time.ParseDuration; max_attempts).
  if (t.restartPolicy !== undefined) {
    const r = t.restartPolicy as docker.types.input.ServiceTaskSpecRestartPolicy;
    only(r, ["condition", "delay", "maxAttempts", "window"], "taskSpec.restartPolicy");
    const rp: Obj = {};
    if (r.condition !== undefined) rp.Condition = r.condition;
    if (r.delay !== undefined) rp.Delay = goDuration(r.delay as string);
    if (r.maxAttempts !== undefined) rp.MaxAttempts = r.maxAttempts;
    if (r.window !== undefined) rp.Window = goDuration(r.window as string);
    task.RestartPolicy = rp;
  }
  // placement: createPlacement (constraints as is; prefs: stringSetToPlacementPrefs, each
  // string the SpreadDescriptor; platforms: mapSetToPlacementPlatforms; max_replicas).
  if (t.placement !== undefined) {
    const p = t.placement as docker.types.input.ServiceTaskSpecPlacement;
    only(p, ["constraints", "prefs", "platforms", "maxReplicas"], "taskSpec.placement");
    const pl: Obj = {};
    if (p.constraints !== undefined) pl.Constraints = list<string>(p.constraints, "constraints");
    if (p.prefs !== undefined) pl.Preferences = list<string>(p.prefs, "prefs").map((d) => ({ Spread: { SpreadDescriptor: d } }));
    if (p.platforms !== undefined) pl.Platforms = list<{ architecture: string; os: string }>(p.platforms, "platforms").map((x) => ({ Architecture: x.architecture, OS: x.os }));
    if (p.maxReplicas !== undefined) pl.MaxReplicas = p.maxReplicas;
    task.Placement = pl;
  }
  // force_update, runtime.
  if (t.forceUpdate !== undefined) task.ForceUpdate = t.forceUpdate;
  if (t.runtime !== undefined) task.Runtime = t.runtime;
  // networks_advanced: createServiceAdvancedNetworks (Target: id, else name; aliases; driver_opts).
  if (t.networksAdvanceds !== undefined) {
    task.Networks = list<docker.types.input.ServiceTaskSpecNetworksAdvanced>(t.networksAdvanceds, "networksAdvanceds").map((n) => {
      only(n, ["id", "name", "aliases", "driverOpts"], "taskSpec.networksAdvanceds[]");
      const target = (n.id as string | undefined) || (n.name as string | undefined);
      if (!target) throw new Error("network 'name' or 'id' must be specified");
      const net: Obj = { Target: target, Aliases: list<string>(n.aliases, "aliases") };
      if (n.driverOpts !== undefined) net.DriverOpts = Object.fromEntries(list<string>(n.driverOpts, "driverOpts").map((o) => [o.split("=")[0], o.split("=").slice(1).join("=")]));
      return net;
    });
  }
  // log_driver: createLogDriver.
  if (t.logDriver !== undefined) {
    const l = t.logDriver as docker.types.input.ServiceTaskSpecLogDriver;
    only(l, ["name", "options"], "taskSpec.logDriver");
    task.LogDriver = { Name: l.name, ...(l.options !== undefined ? { Options: l.options } : {}) };
  }
  spec.TaskTemplate = task;

  // createServiceMode: replicated (replicas, schema default 1) or global.
  const mode = plain(args.mode, "mode") as docker.types.input.ServiceMode | undefined;
  only(mode, ["global", "replicated"], "mode");
  only(mode?.replicated, ["replicas"], "mode.replicated");
  if (mode?.global) spec.Mode = { Global: {} };
  else if (mode?.replicated !== undefined) spec.Mode = { Replicated: { Replicas: ((mode.replicated as docker.types.input.ServiceModeReplicated).replicas as number | undefined) ?? 1 } };
  else spec.Mode = {};
  // createServiceUpdateConfig / createServiceRollbackConfig: createUpdateOrRollbackConfig.
  const update = updateOrRollbackConfig(plain(args.updateConfig, "updateConfig") as docker.types.input.ServiceUpdateConfig | undefined);
  if (update) spec.UpdateConfig = update;
  const rollback = updateOrRollbackConfig(plain(args.rollbackConfig, "rollbackConfig") as docker.types.input.ServiceRollbackConfig | undefined);
  if (rollback) spec.RollbackConfig = rollback;
  // createServiceEndpointSpec: mode; ports via portSetToServicePorts (protocol default tcp, publish_mode default ingress).
  const ep = plain(args.endpointSpec, "endpointSpec") as docker.types.input.ServiceEndpointSpec | undefined;
  only(ep, ["mode", "ports"], "endpointSpec");
  for (const port of list<Obj>(ep?.ports, "ports")) only(port, ["name", "protocol", "targetPort", "publishedPort", "publishMode"], "endpointSpec.ports[]");
  const endpoint: Obj = {};
  if (ep?.mode !== undefined) endpoint.Mode = ep.mode;
  if (ep?.ports !== undefined) {
    endpoint.Ports = list<docker.types.input.ServiceEndpointSpecPort>(ep.ports, "ports").map((p) => ({
      ...(p.name !== undefined ? { Name: p.name } : {}),
      Protocol: p.protocol ?? "tcp",
      TargetPort: p.targetPort,
      ...(p.publishedPort !== undefined ? { PublishedPort: p.publishedPort } : {}),
      PublishMode: p.publishMode ?? "ingress",
    }));
  }
  spec.EndpointSpec = endpoint;
  return spec;
}

/** An Engine API answer: status and parsed body. */
export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
}

/**
 * One Engine API call on a host's own socket, through `docker exec` and the host's curl
 * (the harness's hosts are containers; the provider reaches a real host over SSH, which
 * carries the same HTTP). `headers`: extra request headers. Rejects on a status >= 300
 * unless `allowError`.
 */
export async function hostApi<T = unknown>(
  container: string,
  method: string,
  path: string,
  body?: unknown,
  opts: { headers?: Record<string, string>; allowError?: boolean; timeoutMs?: number } = {},
): Promise<ApiAnswer<T>> {
  const args = ["exec", ...(body !== undefined ? ["-i"] : []), container, "curl", "-sS", "--max-time", String(Math.ceil((opts.timeoutMs ?? 30_000) / 1000)), "--unix-socket", "/var/run/docker.sock", "-X", method, "-w", "\n%{http_code}"];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push("-H", `${k}: ${v}`);
  if (body !== undefined) args.push("-H", "Content-Type: application/json", "--data-binary", "@-");
  args.push(`http://localhost/${API_VERSION}${path}`);
  const out = await sh("docker", args, { input: body !== undefined ? JSON.stringify(body) : undefined, timeoutMs: (opts.timeoutMs ?? 30_000) + 10_000 });
  const nl = out.lastIndexOf("\n");
  const status = Number(out.slice(nl + 1).trim());
  const text = out.slice(0, nl);
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  if (status >= 300 && !opts.allowError) throw new Error(`${method} ${path} on ${container}: ${status} ${text.trim()}`);
  return { status, body: parsed as T };
}

/**
 * retrieveAndMarshalAuth with no `auth` input and no provider registry auth: an empty
 * registry.AuthConfig, JSON `{}`, base64url-encoded into X-Registry-Auth. The services
 * carry no registry credential (components/swarm.ts: every host pulls for itself).
 */
export const EMPTY_REGISTRY_AUTH = Buffer.from("{}").toString("base64url");

/**
 * resourceDockerServiceCreate: ServiceCreate with QueryRegistry (the client asks the
 * manager's GET /distribution/<image>/json; on success the image keeps its digest and
 * Placement.Platforms gets the image's os/arch, on failure it only warns), then POST
 * /services/create. Returns the service id and the warnings.
 */
export async function createService(container: string, args: docker.ServiceArgs, poll: ConvergePoll = {}): Promise<{ id: string; spec: Obj; warnings: string[] }> {
  const spec = serviceSpec(args);
  const warnings: string[] = [];
  const task = spec.TaskTemplate as Obj;
  const image = String((task.ContainerSpec as Obj).Image);
  // client/service_create.go resolveContainerSpecImage -> imageDigestAndPlatforms.
  const dist = await hostApi<{ Descriptor: { digest: string }; Platforms?: { os: string; architecture: string }[] }>(container, "GET", `/distribution/${image}/json`, undefined, {
    headers: { "X-Registry-Auth": EMPTY_REGISTRY_AUTH },
    allowError: true,
  });
  if (dist.status === 200) {
    const platforms = (dist.body.Platforms ?? []).filter((p) => p.os !== "unknown" && p.architecture !== "unknown").map((p) => ({ Architecture: p.architecture === "arm" ? "" : p.architecture, OS: p.os }));
    const unique = platforms.filter((p, i) => platforms.findIndex((q) => q.OS === p.OS && q.Architecture === p.Architecture) === i);
    if (unique.length > 0) task.Placement = { ...((task.Placement as Obj | undefined) ?? {}), Platforms: unique };
  } else {
    warnings.push(`image ${image} could not be accessed on a registry to record its digest`);
  }
  const r = await hostApi<{ ID: string; Warnings?: string[] }>(container, "POST", "/services/create", spec, { headers: { "X-Registry-Auth": EMPTY_REGISTRY_AUTH } });
  const converge = args.convergeConfig as docker.types.input.ServiceConvergeConfig | undefined;
  if (converge) {
    // resourceDockerServiceCreate: wait (Delay first, then every MinTimeout 5 s at least) until
    // every replica runs; on a timeout the service is deleted and the create fails (no id in state).
    const timeout = goDuration((converge.timeout as string | undefined) ?? "3m");
    const converged = await waitConverged(container, r.body.ID, goDuration((converge.delay as string | undefined) ?? "7s"), timeout, poll, async () => (await replicasRunning(container, r.body.ID)) ? "done" : undefined);
    if (!converged) {
      await deleteService(container, r.body.ID, args);
      throw new DidNotConvergeError(r.body.ID, timeout);
    }
  }
  return { id: r.body.ID, spec, warnings: [...warnings, ...(r.body.Warnings ?? [])] };
}

/**
 * resourceDockerServiceUpdate: inspect the service for its version, then POST
 * /services/<id>/update?version=<n> with the spec built anew from the inputs and the auth
 * header (no registry query on update).
 */
export async function updateService(container: string, id: string, args: docker.ServiceArgs, poll: ConvergePoll = {}): Promise<{ spec: Obj; warnings: string[] }> {
  const current = await hostApi<{ Version: { Index: number } }>(container, "GET", `/services/${id}`);
  const spec = serviceSpec(args);
  const r = await hostApi<{ Warnings?: string[] | null }>(container, "POST", `/services/${id}/update?version=${current.body.Version.Index}`, spec, { headers: { "X-Registry-Auth": EMPTY_REGISTRY_AUTH } });
  const converge = args.convergeConfig as docker.types.input.ServiceConvergeConfig | undefined;
  if (converge) {
    // resourceDockerServiceUpdate: Delay 7 s (fixed), then resourceDockerServiceUpdateRefreshFunc:
    // the update status decides (completed; a rollback or a pause fails the update), and
    // without one, every replica running does. A timeout fails it; nothing is deleted.
    const timeout = goDuration((converge.timeout as string | undefined) ?? "3m");
    const done = await waitConverged(container, id, 7e9, timeout, poll, async () => {
      const svc = (await hostApi<{ UpdateStatus?: { State: string; Message?: string } }>(container, "GET", `/services/${id}`)).body;
      const st = svc.UpdateStatus;
      if (st?.State === "completed") return "done";
      if (st?.State === "rollback_completed") throw new Error(`service rollback completed: ${st.Message ?? ""}`);
      if (st?.State === "paused") throw new Error(`service update paused: ${st.Message ?? ""}`);
      if (st?.State === "rollback_paused") throw new Error(`service rollback paused: ${st.Message ?? ""}`);
      if (await replicasRunning(container, id)) {
        if (st?.State === "rollback_started") throw new Error(`service rollback completed: ${st.Message ?? ""}`);
        return "done";
      }
      return undefined;
    });
    if (!done) throw new DidNotConvergeError(id, timeout);
  }
  return { spec, warnings: r.body?.Warnings ?? [] };
}

/** How the converge waits poll; the provider's own timings unless a test shortens them (its bounds stay the rendered ones). */
export interface ConvergePoll {
  /** Between two looks: the provider's MinTimeout, 5 s. */
  intervalMs?: number;
}

/** The provider's DidNotConvergeError message. */
export class DidNotConvergeError extends Error {
  constructor(id: string, timeoutNs: number) {
    super(`Service with ID (${id}) did not converge after ${timeoutNs / 1e9}s`);
  }
}

/** retry.StateChangeConf: wait `delayNs`, then look until `look` says done or `timeoutNs` passed (false). */
async function waitConverged(container: string, id: string, delayNs: number, timeoutNs: number, poll: ConvergePoll, look: () => Promise<"done" | undefined>): Promise<boolean> {
  const end = Date.now() + timeoutNs / 1e6;
  await new Promise((r) => setTimeout(r, Math.min(delayNs / 1e6, timeoutNs / 1e6)));
  for (;;) {
    if ((await look()) === "done") return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, Math.min(poll.intervalMs ?? 5000, Math.max(0, end - Date.now()))));
  }
}

/** The swarm task states in their order (resource_docker_service_funcs.go numberedStates). */
const TASK_ORDER = ["new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running", "complete", "shutdown", "failed", "rejected"];
const order = (st: string) => TASK_ORDER.indexOf(st) + 1;

/**
 * replicatedConsoleLogUpdater.update over the tasks with desired state running: per slot the
 * task of the lowest desired state (then observed state), on an active (not down) node;
 * done when as many run as the spec has replicas. A service without a replica count (global)
 * is an error there ("no replica count").
 */
async function replicasRunning(container: string, id: string): Promise<boolean> {
  const svc = (await hostApi<{ Spec: { Mode: { Replicated?: { Replicas?: number } } } }>(container, "GET", `/services/${id}`)).body;
  const replicas = svc.Spec.Mode.Replicated?.Replicas;
  if (replicas === undefined) throw new Error("no replica count");
  const filters = encodeURIComponent(JSON.stringify({ service: [id], "desired-state": ["running"] }));
  const tasks = (await hostApi<{ Slot: number; NodeID?: string; DesiredState: string; Status: { State: string } }[]>(container, "GET", `/tasks?filters=${filters}`)).body;
  const nodes = (await hostApi<{ ID: string; Status: { State: string } }[]>(container, "GET", "/nodes")).body;
  const active = new Set(nodes.filter((n) => n.Status.State !== "down").map((n) => n.ID));
  const bySlot = new Map<number, (typeof tasks)[number]>();
  for (const t of tasks) {
    if (order(t.DesiredState) === 0 || order(t.Status.State) === 0) continue;
    const had = bySlot.get(t.Slot);
    if (had && (order(had.DesiredState) < order(t.DesiredState) || (order(had.DesiredState) === order(t.DesiredState) && order(had.Status.State) <= order(t.Status.State)))) continue;
    if (t.NodeID && !active.has(t.NodeID)) continue;
    bySlot.set(t.Slot, t);
  }
  const running = [...bySlot.values()].filter((t) => order(t.DesiredState) <= order("running") && t.Status.State === "running").length;
  return running === replicas;
}

/**
 * deleteService: with a stop_grace_period other than 0s, the containers of the service's tasks
 * not shut down yet are noted, the service is removed, then each container is waited for
 * (condition removed, at most the grace period) and removed with its volumes, force.
 */
export async function deleteService(container: string, id: string, args: docker.ServiceArgs): Promise<void> {
  const grace = (args.taskSpec as docker.types.input.ServiceTaskSpec | undefined)?.containerSpec as docker.types.input.ServiceTaskSpecContainerSpec | undefined;
  const period = grace?.stopGracePeriod as string | undefined;
  const containers: string[] = [];
  if (period !== undefined && period !== "0s") {
    const filters = encodeURIComponent(JSON.stringify({ service: [String(args.name)] }));
    for (const t of (await hostApi<{ Status: { State: string; ContainerStatus?: { ContainerID?: string } } }[]>(container, "GET", `/tasks?filters=${filters}`)).body) {
      const cid = t.Status.ContainerStatus?.ContainerID?.trim() ?? "";
      if (cid !== "" && t.Status.State !== "shutdown") containers.push(cid);
    }
  }
  await hostApi(container, "DELETE", `/services/${id}`);
  for (const cid of containers) {
    // The task's container is on its own node; through this manager's socket only its own are seen ("No such container" is ignored, as the provider does).
    // The provider's wait fails on anything but "No such container" (its context's deadline too).
    const wait = await hostApi<{ message?: string }>(container, "POST", `/containers/${cid}/wait?condition=removed`, undefined, { allowError: true, timeoutMs: goDuration(period!) / 1e6 });
    if (wait.status >= 300 && !/No such container/.test(String(wait.body?.message ?? wait.body))) throw new Error(`failed to wait for container with ID '${cid}': ${JSON.stringify(wait.body)}`);
    await hostApi(container, "DELETE", `/containers/${cid}?v=true&force=true`, undefined, { allowError: true });
  }
}

/**
 * resourceDockerNetworkCreate: NetworkCreate(name, {Labels: labelSetToMap, Driver, Options,
 * Internal, Attachable, Ingress, EnableIPv6 when set}); IPAM settings are not translated here.
 */
export async function createNetwork(container: string, args: docker.NetworkArgs): Promise<string> {
  const a = args as unknown as Obj;
  const known = new Set(["name", "labels", "driver", "options", "internal", "attachable", "ingress", "ipv6"]);
  const unknown = Object.keys(a).filter((k) => !known.has(k) && a[k] !== undefined);
  if (unknown.length > 0) throw new Error(`network inputs not translated by test/helpers/swarm-service.ts: ${unknown.join(", ")}`);
  const body: Obj = { Name: plain(args.name, "name") };
  const labels = labelMap(args.labels, "labels");
  if (labels) body.Labels = labels;
  // d.GetOk: a false or empty value counts as unset.
  if (args.driver) body.Driver = args.driver;
  if (args.options) body.Options = args.options;
  if (args.internal) body.Internal = true;
  if (args.attachable) body.Attachable = true;
  if (args.ingress) body.Ingress = true;
  if (args.ipv6) body.EnableIPv6 = true;
  return (await hostApi<{ Id: string }>(container, "POST", "/networks/create", body)).body.Id;
}

/**
 * resourceDockerConfigCreate: ConfigSpec{Annotations{Name}, Data: the decoded `data`, Labels}
 * (Data is []byte, so base64 again on the wire: the same string). `name` is what the
 * bridge's autonaming gives when the input leaves it out (`<resource name>-<7 random hex>`).
 */
export async function createConfig(container: string, args: docker.ServiceConfigArgs & { name: string }): Promise<string> {
  const a = args as unknown as Obj;
  const unknown = Object.keys(a).filter((k) => !["name", "data", "labels"].includes(k) && a[k] !== undefined);
  if (unknown.length > 0) throw new Error(`config inputs not translated by test/helpers/swarm-service.ts: ${unknown.join(", ")}`);
  const body: Obj = { Name: args.name, Data: Buffer.from(String(plain(args.data, "data")), "base64").toString("base64") };
  const labels = labelMap(args.labels, "labels");
  if (labels) body.Labels = labels;
  return (await hostApi<{ ID: string }>(container, "POST", "/configs/create", body)).body.ID;
}

/**
 * POST /secrets/create as the provider's resourceDockerSecretCreate (resource_docker_secret.go)
 * makes it: name, labels, and `data` base64-decoded into the spec's bytes (the provider ignores
 * a decoding error; a Dockyard render always holds valid base64).
 */
export async function createSecret(container: string, args: { name: string; data: string; labels?: unknown }): Promise<string> {
  const a = args as unknown as Obj;
  const unknown = Object.keys(a).filter((k) => !["name", "data", "labels"].includes(k) && a[k] !== undefined);
  if (unknown.length > 0) throw new Error(`secret inputs not translated by test/helpers/swarm-service.ts: ${unknown.join(", ")}`);
  const body: Obj = { Name: args.name, Data: Buffer.from(args.data, "base64").toString("base64") };
  const labels = labelMap(args.labels, "labels");
  if (labels) body.Labels = labels;
  return (await hostApi<{ ID: string }>(container, "POST", "/secrets/create", body)).body.ID;
}
