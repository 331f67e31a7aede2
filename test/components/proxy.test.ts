import { describe, it, expect } from "vitest";
import { renderHaproxyConfig, serverSlots, MIN_SERVER_SLOTS } from "../../components/proxy";

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
    expect(cfg).toContain("retry-on all-retryable-errors");
    expect(cfg).toContain("option redispatch");
  });

  it("is deterministic and independent of route order", () => {
    const api = { service: "api", publishPort: 8443, containerPort: 9000, healthPath: "/ready", replicas: 1 };
    expect(renderHaproxyConfig([web, api])).toBe(renderHaproxyConfig([api, web]));
  });

  it("does not change with the digest or a small replica change (no proxy restart on deploys)", () => {
    expect(renderHaproxyConfig([web])).toBe(renderHaproxyConfig([{ ...web, replicas: 3 }]));
  });

  it("sizes server slots for a rollout (old and new replicas at once)", () => {
    expect(serverSlots(1)).toBe(MIN_SERVER_SLOTS);
    expect(serverSlots(8)).toBe(18);
  });

  it("rejects port clashes and unsafe names", () => {
    expect(() => renderHaproxyConfig([web, { ...web, service: "other" }])).toThrow(/port 80 is published by both "web" and "other"/);
    expect(() => renderHaproxyConfig([{ ...web, service: "web\nbad" }])).toThrow(/must match/);
    expect(() => renderHaproxyConfig([{ ...web, healthPath: "/a b" }])).toThrow(/health path/);
  });
});
