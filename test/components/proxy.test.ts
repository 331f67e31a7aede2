import { describe, it, expect } from "vitest";
import { renderHaproxyConfig, serverSlots, MIN_SERVER_SLOTS, REPLAYABLE_METHODS, MONITOR_PATH } from "../../components/proxy";
import { proxyRoutes } from "../../components/fleet";
import { loadStackSpec, type ServiceSpec } from "../../stacks";

const web = { service: "web", publishPort: 80, containerPort: 8080, healthPath: "/healthz", replicas: 2 };

describe("renderHaproxyConfig", () => {
  it("discovers replicas through Docker's DNS and health-checks each one", () => {
    const cfg = renderHaproxyConfig([web]);
    expect(cfg).toContain("nameserver dns 127.0.0.11:53");
    expect(cfg).toContain("bind :80");
    expect(cfg).toContain("http-check send meth GET uri /healthz");
    expect(cfg).toContain("http-check expect rstatus ^2");
    expect(cfg).toMatch(/server-template web 10 web:8080 check inter 1s .*fall 2 rise 2/);
    expect(cfg).toContain("default-server init-addr none resolvers docker");
    // A dead replica costs a request at most 500 ms once, then is out (swarm host test: 12-26 requests waited 2-4 s before).
    expect(cfg).toContain("timeout connect 500ms");
    expect(cfg).toMatch(/default-server .* observe layer4 error-limit 1 on-error mark-down/);
    expect(cfg).toContain("retry-on all-retryable-errors");
    expect(cfg).toContain("option redispatch");
  });

  it("replays a request that reached a replica only for safe methods (issue 8; proven in proxy.int.test.ts)", () => {
    const backend = renderHaproxyConfig([web]).split("\nbackend web\n")[1];
    expect(backend).toMatch(/^ {4}http-request disable-l7-retry unless \{ method GET HEAD OPTIONS TRACE \}$/m);
    expect(REPLAYABLE_METHODS).not.toContain("POST");
  });

  it("answers the load balancer's monitor path on each service frontend: 503 when that service has no usable server (issue 13; proven in proxy.int.test.ts)", () => {
    const frontend = renderHaproxyConfig([web]).split("\nfrontend web\n")[1].split("\n\n")[0];
    expect(frontend).toContain(`    monitor-uri ${MONITOR_PATH}`);
    expect(frontend).toContain("    monitor fail if { nbsrv(web) lt 1 }");
  });

  it("is deterministic and independent of route order", () => {
    const api = { service: "api", publishPort: 8443, containerPort: 9000, healthPath: "/ready", replicas: 1 };
    expect(renderHaproxyConfig([web, api])).toBe(renderHaproxyConfig([api, web]));
  });

  // The proxy container is replaced when its inputs change (fleet.ts), and the only one that
  // depends on the services is this config (uploads, and its hash as a label), rendered from
  // proxyRoutes: the host's published services, their ports, health paths and replica counts.
  describe("what replaces the proxy: the config a host's routes render", () => {
    const prodWeb = loadStackSpec("prod").services.find((s) => s.name === "web")!;
    const configFor = (s: ServiceSpec, onHost: number) => renderHaproxyConfig(proxyRoutes([s], { [s.name]: { h: onHost } }, "h"));
    const ABOVE = 6; // replicas on the host whose slots exceed MIN_SERVER_SLOTS

    it("does not change with what a deploy changes (digest, env, limits, health timing)", () => {
      expect(serverSlots(ABOVE)).toBeGreaterThan(MIN_SERVER_SLOTS);
      const deployed: ServiceSpec = {
        ...prodWeb,
        digest: `sha256:${"d".repeat(64)}`,
        env: { ...prodWeb.env, FEATURE: "on" },
        memoryMb: prodWeb.memoryMb * 2,
        health: { ...prodWeb.health, interval: "30s", retries: 7 },
      };
      expect(configFor(deployed, ABOVE)).toBe(configFor(prodWeb, ABOVE));
    });

    it("changes exactly when the host's server slots change: any replica change above the minimum", () => {
      for (let a = 1; a <= 12; a++) {
        for (let b = a + 1; b <= 12; b++) {
          expect(configFor(prodWeb, a) === configFor(prodWeb, b), `${a} vs ${b} replicas on the host`).toBe(serverSlots(a) === serverSlots(b));
        }
      }
      expect(configFor(prodWeb, 1)).toBe(configFor(prodWeb, 4));
      expect(configFor(prodWeb, ABOVE)).not.toBe(configFor(prodWeb, ABOVE + 1));
    });

    it("changes with the published port, the replicas' port and the health path", () => {
      const base = configFor(prodWeb, ABOVE);
      expect(configFor({ ...prodWeb, publishPort: prodWeb.publishPort! + 1 }, ABOVE)).not.toBe(base);
      expect(configFor({ ...prodWeb, containerPort: prodWeb.containerPort + 1 }, ABOVE)).not.toBe(base);
      expect(configFor({ ...prodWeb, health: { ...prodWeb.health, path: "/ready" } }, ABOVE)).not.toBe(base);
    });
  });

  it("sizes server slots for a rollout (old and new replicas at once)", () => {
    expect(serverSlots(1)).toBe(MIN_SERVER_SLOTS);
    expect(serverSlots(8)).toBe(18);
  });
});
