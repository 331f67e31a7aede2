/**
 * The per-host reverse proxy's configuration: pure rendering, no Pulumi.
 *
 * One HAProxy per host publishes every service port that has replicas on that host.
 * It finds the replicas through Docker's embedded DNS (127.0.0.11) on each service's
 * network, where every replica carries the service name as a network alias, and it
 * health-checks each one itself. So:
 *  - a deploy never touches the proxy: new containers appear in DNS when they start,
 *    take traffic once HAProxy's own check passes, and vanish from DNS when removed;
 *  - the proxy needs no Docker socket and no reload;
 *  - a replica that fails its check gets no traffic. A request whose connection to a
 *    replica fails is retried on another replica (no byte of it reached a server); a
 *    request that did reach one and got a 5xx, no answer or a timeout is retried only if
 *    its method is safe to replay (REPLAYABLE_METHODS): a POST that a replica answered
 *    503 may already have written something, so the client gets that 503.
 */

/** Where the rendered configuration is mounted (read-only) inside the proxy container. */
export const PROXY_CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg";
/**
 * The directory under a host's data mount (its group's `dataMount`, where the kept data volume
 * is mounted) holding each proxy configuration, `haproxy-<hash>.cfg`, bind-mounted read-only
 * into the proxy (its root filesystem is read-only: CIS Docker Benchmark 5.13). On the data
 * volume, not the root disk: a replaced host (a new instance or machine container on the same
 * data volume) gets its containers back from Docker's data-root there, and dockerd restores
 * the proxy once at start (moby daemon/daemon.go Daemon.restore); a bind source missing then
 * (daemon/volumes.go registerMountPoints: a Mounts-API bind is SkipMountpointCreation) leaves
 * it exited for good. The host's user-data creates it, owned by the SSH user, who writes the files.
 */
export function proxyConfigDir(dataMount: string): string {
  return `${dataMount}/proxy`;
}
/** Docker's embedded DNS server, reachable from containers on user-defined networks. */
export const DOCKER_DNS = "127.0.0.11:53";
/**
 * Methods HAProxy may send again after a replica received the request (layer-7 retries:
 * 5xx, empty or junk answer, response timeout): RFC 9110's safe methods, which a server
 * must not change state for. Every other method (POST, PUT, PATCH, DELETE, ...) is
 * retried only on a connection failure.
 */
export const REPLAYABLE_METHODS = ["GET", "HEAD", "OPTIONS", "TRACE"] as const;
/**
 * The path every published service frontend answers itself, for the load balancer's target
 * health check (components/front-door.ts): 200 while the host has at least one healthy
 * replica of that service, 503 when it has none. A dead host or a dead engine does not
 * answer at all. HAProxy 2.6 configuration.txt, monitor-uri: the request is answered by
 * HAProxy, "not forward[ed] nor log[ged]", with "HTTP/1.0 200 OK" or "HTTP/1.0 503 Service
 * unavailable"; monitor fail: "HAProxy will return 503 instead of 200" when the condition
 * holds. Under /.dockyard/ so it cannot hide a path of a service.
 */
export const MONITOR_PATH = "/.dockyard/health";
/** Minimum server slots per service; a rollout briefly doubles the replicas on a host. */
export const MIN_SERVER_SLOTS = 10;

/** One service the proxy publishes on this host. */
export interface ProxyRoute {
  /** Service name; also the DNS alias of its replicas on the service network. */
  service: string;
  /** The DNS name its replicas are found by; default `service` (swarm mode: `tasks.<service>`, components/swarm.ts). */
  address?: string;
  /** Port published on the host (and bound by the proxy inside its container). */
  publishPort: number;
  /** Port the replicas listen on. */
  containerPort: number;
  /** HTTP path answering 2xx when a replica is healthy. */
  healthPath: string;
  /** Replicas this host runs; sizes the server slots (2x, for rollouts). */
  replicas: number;
}

export interface ProxyOptions {
  /** Seconds between health checks of each replica. Default 1. */
  checkIntervalSeconds?: number;
  /** Failed checks before a replica is taken out. Default 2. */
  fall?: number;
  /** Passed checks before a replica takes traffic. Default 2. */
  rise?: number;
  /** DNS server to discover replicas with. Default Docker's embedded DNS. */
  dns?: string;
}

/** Server slots for a service: room for old and new replicas during a rollout. */
export function serverSlots(replicas: number): number {
  return Math.max(MIN_SERVER_SLOTS, 2 * replicas + 2);
}

/**
 * Renders haproxy.cfg for one host. Deterministic: same routes, same text. The routes come
 * from the parsed spec, whose schema makes every service name a plain name (a-z, 0-9, '-'),
 * every health path an HTTP path without spaces, and each publish port unique in its group.
 */
export function renderHaproxyConfig(routes: readonly ProxyRoute[], opts: ProxyOptions = {}): string {
  const inter = opts.checkIntervalSeconds ?? 1;
  const fall = opts.fall ?? 2;
  const rise = opts.rise ?? 2;
  const dns = opts.dns ?? DOCKER_DNS;
  const lines: string[] = [
    "# Rendered by components/proxy.ts; do not edit on the host.",
    "global",
    "    log stdout format raw local0 notice",
    "    # Replicas are found by DNS at runtime, not at startup.",
    "    hard-stop-after 30s",
    "",
    "resolvers docker",
    `    nameserver dns ${dns}`,
    "    accepted_payload_size 8192",
    "    resolve_retries 3",
    "    timeout resolve 1s",
    "    timeout retry 1s",
    "    hold valid 1s",
    "    hold other 1s",
    "    hold refused 1s",
    "    hold nx 1s",
    "    hold timeout 1s",
    "    hold obsolete 1s",
    "",
    "defaults",
    "    mode http",
    "    log global",
    "    option httplog",
    "    option dontlognull",
    "    # Replicas are on this host or (swarm mode) a few ms away: a connect that takes longer",
    "    # is to a replica that died; give up soon and replay the request on another one.",
    "    timeout connect 500ms",
    "    timeout client 30s",
    "    timeout server 30s",
    "    timeout http-request 10s",
    "    # A request that meets a replica going away is replayed on another one; each",
    "    # backend limits this to connection failures for methods unsafe to replay.",
    "    retries 3",
    "    option redispatch 1",
    "    retry-on all-retryable-errors",
    "    # A connection error in live traffic takes the replica out at once, not after its",
    "    # checks fail (HAProxy 2.6 configuration.txt, observe / on-error mark-down): the",
    "    # requests right after a replica dies meet it once, not once per request until then.",
    "    default-server init-addr none resolvers docker resolve-prefer ipv4 observe layer4 error-limit 1 on-error mark-down",
  ];
  for (const r of [...routes].sort((a, b) => a.service.localeCompare(b.service))) {
    lines.push(
      "",
      `frontend ${r.service}`,
      `    bind :${r.publishPort}`,
      // The load balancer's health check (MONITOR_PATH): 503 once no replica of this
      // service on this host passes HAProxy's own check (nbsrv counts usable servers).
      `    monitor-uri ${MONITOR_PATH}`,
      `    monitor fail if { nbsrv(${r.service}) lt 1 }`,
      `    default_backend ${r.service}`,
      "",
      `backend ${r.service}`,
      "    balance roundrobin",
      // HAProxy 2.6 configuration.txt, http-request disable-l7-retry: "disables any attempt
      // to retry the request if it fails for any other reason than a connection failure".
      `    http-request disable-l7-retry unless { method ${REPLAYABLE_METHODS.join(" ")} }`,
      "    option httpchk",
      `    http-check send meth GET uri ${r.healthPath} ver HTTP/1.1 hdr Host ${r.service}`,
      "    http-check expect rstatus ^2",
      `    server-template ${r.service} ${serverSlots(r.replicas)} ${r.address ?? r.service}:${r.containerPort} check inter ${inter}s fastinter ${inter}s downinter ${inter}s fall ${fall} rise ${rise}`,
    );
  }
  return lines.join("\n") + "\n";
}
