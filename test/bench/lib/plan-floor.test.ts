/**
 * `npm run bench -- plan --floor` (test/bench/plan.ts, lib/sdk-floor-worker.ts): the SDK-floor
 * worker finds the SDK class of every resource type the program registers, in every stack,
 * and registers each resource again. What this proves: the floor the bench reports replays
 * the render's resources with their real classes (a class the SDK moved or renamed fails
 * here, not silently as a bare resource). It does not check the floor's timing.
 */
import { describe, expect, it } from "vitest";
import { renderStack } from "../../../scripts/lib/render";
import { floor } from "../plan";

describe("bench plan --floor", () => {
  it.each(["prod", "local"])("replays every resource of %s with its SDK class and bare", async (stack) => {
    const { resources } = await renderStack(stack);
    const classes = await floor(resources, "classes");
    expect(classes).toMatchObject({ mode: "classes", resources: resources.length });
    expect(classes.registerSeconds).toBeGreaterThan(0);
    const bare = await floor(resources, "bare");
    expect(bare).toMatchObject({ mode: "bare", resources: resources.length });
  });

  it("fails loudly on a resource type no SDK package has", async () => {
    await expect(floor([{ type: "docker:index/nothing:Nothing", name: "x", custom: true, inputs: {}, options: {} }], "classes")).rejects.toThrow(/no SDK class for resource type docker:index\/nothing:Nothing/);
  });
});
