/**
 * The whole program, for every shipped stack: index.ts runs under the mock runtime
 * (as `plan` runs it) without errors, registers a well-formed resource tree, exports
 * what the stack spec says, and every stack is identical to prod up to its knobs.
 */
import { describe, expect, it } from "vitest";
import { STACKS, loadStackSpec } from "../stacks";
import { buildPlan, resourceKey, renderStack, type Rendered } from "../scripts/lib/render";
import { checkParity } from "../scripts/diff";

const renders = new Map<string, Promise<Rendered>>();
const render = (stack: string) => {
  if (!renders.has(stack)) renders.set(stack, renderStack(stack));
  return renders.get(stack)!;
};

describe.each([...STACKS])("the program for stack %s", (stack) => {
  it("runs under the mock runtime and exports the stack and engine of its spec", async () => {
    const spec = loadStackSpec(stack);
    const r = await render(stack);
    expect(r.stack).toBe(stack);
    expect(r.outputs.stack).toBe(stack);
    expect(r.outputs.engine).toMatchObject({ channel: spec.engine.channel });
    if (spec.engine.version) expect((r.outputs.engine as { version: string }).version).toBe(spec.engine.version);
  });

  it("registers a well-formed tree: unique names per type, every parent registered, cloud resources present", async () => {
    const r = await render(stack);
    const keys = r.resources.map(resourceKey);
    expect(new Set(keys).size).toBe(keys.length);
    for (const res of r.resources) if (res.parent) expect(keys).toContain(res.parent);
    expect(r.resources.filter((x) => x.custom).length).toBeGreaterThan(0);
    const plan = buildPlan(r);
    const count = (nodes: typeof plan.resources): number => nodes.reduce((n, x) => n + 1 + count(x.children), 0);
    expect(count(plan.resources)).toBe(r.resources.length);
  });

  it("grows with the stack's host count: more hosts, more resources (count is a knob)", async () => {
    const spec = loadStackSpec(stack);
    const dev = loadStackSpec("dev");
    const hosts = (s: typeof spec) => s.hostGroups.reduce((n, g) => n + g.count, 0);
    const [r, rDev] = await Promise.all([render(stack), render("dev")]);
    if (hosts(spec) > hosts(dev)) expect(r.resources.length).toBeGreaterThan(rDev.resources.length);
    else expect(r.resources.length).toBe(rDev.resources.length);
  });
});

describe.each(STACKS.filter((s) => s !== "prod"))("stack %s against prod", (stack) => {
  it("is identical apart from the per-stack knobs (which do differ)", async () => {
    const report = await checkParity(stack, "prod");
    expect(report.real).toEqual([]);
    expect(report.identical).toBe(true);
    expect(report.allowed.length).toBeGreaterThan(0);
  });
});
