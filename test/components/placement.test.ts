import { describe, it, expect } from "vitest";
import { placeReplicas, movedReplicas, replicaSlots, hostsWithReplicas, PlacementError } from "../../components/placement";

const hosts = (n: number) => Array.from({ length: n }, (_, i) => `dev-app-${i + 1}`);
const total = (p: Record<string, number>) => Object.values(p).reduce((a, b) => a + b, 0);
const spread = (p: Record<string, number>) => Math.max(...Object.values(p)) - Math.min(...Object.values(p));

describe("placeReplicas", () => {
  it("spreads: no host has two while another has none", () => {
    for (let n = 1; n <= 6; n++) {
      for (let r = 0; r <= 14; r++) {
        const p = placeReplicas("web", r, hosts(n));
        expect(total(p)).toBe(r);
        expect(spread(p)).toBeLessThanOrEqual(1);
        expect(Object.keys(p)).toEqual(hosts(n));
      }
    }
  });

  it("fewer replicas than hosts: one each on the first hosts", () => {
    expect(placeReplicas("web", 2, hosts(3))).toEqual({ "dev-app-1": 1, "dev-app-2": 1, "dev-app-3": 0 });
  });

  it("more replicas than hosts: balanced, extras on the first hosts", () => {
    expect(placeReplicas("web", 5, hosts(2))).toEqual({ "dev-app-1": 3, "dev-app-2": 2 });
    expect(placeReplicas("web", 7, hosts(3))).toEqual({ "dev-app-1": 3, "dev-app-2": 2, "dev-app-3": 2 });
  });

  it("adding or removing the last host moves only what that host carries (the minimum)", () => {
    for (let n = 1; n <= 6; n++) {
      for (let r = 0; r <= 20; r++) {
        const before = placeReplicas("web", r, hosts(n));
        const after = placeReplicas("web", r, hosts(n + 1));
        const newHost = `dev-app-${n + 1}`;
        // Adding: only the new host's replicas start anywhere new, and it gets the minimum floor(r/(n+1)).
        expect(movedReplicas(before, after)).toBe(after[newHost]);
        expect(after[newHost]).toBe(Math.floor(r / (n + 1)));
        // No existing host gains a replica when a host is added.
        for (const h of hosts(n)) expect(after[h]).toBeLessThanOrEqual(before[h]);
        // Removing it again: exactly its replicas move.
        const back = placeReplicas("web", r, hosts(n));
        expect(movedReplicas(after, back)).toBe(after[newHost]);
      }
    }
  });

  it("with a previous placement, a host removed from the middle moves only its replicas", () => {
    const before = placeReplicas("web", 5, hosts(3)); // 2,2,1
    const remaining = ["dev-app-1", "dev-app-3"];
    const after = placeReplicas("web", 5, remaining, { previous: before });
    expect(total(after)).toBe(5);
    expect(spread(after)).toBeLessThanOrEqual(1);
    expect(movedReplicas(before, after)).toBe(before["dev-app-2"]);
    // Without the previous placement the order rule still spreads, possibly moving more.
    const plain = placeReplicas("web", 5, remaining);
    expect(movedReplicas(before, plain)).toBeGreaterThanOrEqual(movedReplicas(before, after));
  });

  it("with a previous placement, the result moves as few replicas as any balanced placement", () => {
    // Brute force: every balanced placement of r on n hosts, compare the minimum movement.
    const prev = { a: 3, b: 0, c: 2, d: 1 };
    for (let r = 0; r <= 9; r++) {
      const hs = ["a", "b", "c", "d"];
      const got = placeReplicas("web", r, hs, { previous: prev });
      let best = Infinity;
      const q = Math.floor(r / 4);
      for (let mask = 0; mask < 16; mask++) {
        const extras = hs.filter((_, i) => mask & (1 << i));
        if (extras.length !== r % 4) continue;
        const cand = Object.fromEntries(hs.map((h) => [h, q + (extras.includes(h) ? 1 : 0)]));
        best = Math.min(best, movedReplicas(prev, cand));
      }
      expect(movedReplicas(prev, got)).toBe(best);
    }
  });

  it("zero hosts with replicas is a clear error naming stack, group and keys", () => {
    expect(() => placeReplicas("web", 2, [], { stack: "prod", group: "app" })).toThrow(PlacementError);
    expect(() => placeReplicas("web", 2, [], { stack: "prod", group: "app" })).toThrow(
      /stack "prod": service "web": needs 2 replica\(s\) but host group "app" has no hosts; set config\.dockyard:hostGroups\.app\.count to at least 1, or config\.dockyard:replicas\.web to 0/,
    );
    expect(placeReplicas("web", 0, [])).toEqual({});
  });

  it("rejects duplicate hosts and bad counts", () => {
    expect(() => placeReplicas("web", 1, ["h", "h"], { group: "app" })).toThrow(/listed twice/);
    expect(() => placeReplicas("web", -1, ["h"])).toThrow(/integer >= 0/);
    expect(() => placeReplicas("web", 1.5, ["h"])).toThrow(/integer >= 0/);
  });
});

describe("slots", () => {
  it("expands a placement into per-host slots and lists hosts carrying replicas", () => {
    const p = { h1: 2, h2: 0, h3: 1 };
    expect(replicaSlots("web", p)).toEqual([
      { service: "web", host: "h1", slot: 0 },
      { service: "web", host: "h1", slot: 1 },
      { service: "web", host: "h3", slot: 0 },
    ]);
    expect(hostsWithReplicas(p)).toEqual(["h1", "h3"]);
  });
});
