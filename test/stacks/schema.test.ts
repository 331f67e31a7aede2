import { describe, expect, it } from "vitest";
import { ConfigError, loadStackSpec, STACKS } from "../../stacks";

describe("shipped stacks", () => {
  it.each(STACKS)("%s parses into a spec", (stack) => {
    const spec = loadStackSpec(stack);
    expect(spec.stack).toBe(stack);
    expect(spec.hostGroups.length).toBeGreaterThan(0);
    for (const s of spec.services) expect(s.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
  });

  it("a missing stack file is a ConfigError naming the stack", () => {
    expect(() => loadStackSpec("nosuchstack")).toThrow(ConfigError);
    expect(() => loadStackSpec("nosuchstack")).toThrow(/nosuchstack/);
  });
});
