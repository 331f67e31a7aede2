/**
 * The program (index.ts) as `pulumi up` runs it, on bad configuration: it stops before
 * declaring anything, with a pulumi.RunError (which the Pulumi CLI prints without a stack
 * trace) naming the stack, the file and the key. Config comes the way the engine hands it
 * to a program: every value a string, structured ones as JSON, secrets decrypted.
 */
import * as pulumi from "@pulumi/pulumi";
import { expect, it } from "vitest";
import { readStackFile } from "../../stacks";
import { useMocks } from "../helpers/pulumi";

/** dev's stack file as the engine's config strings, with `edit` applied to the values. */
function engineConfig(edit: (c: Record<string, unknown>) => void): Record<string, string> {
  const c = structuredClone(readStackFile("dev").config) as Record<string, unknown>;
  edit(c);
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
}

it("a prototype key in a config map: RunError naming the key, and no resource registered", async () => {
  const config = engineConfig((c) => {
    c["dockyard:replicas"] = JSON.parse('{"web": 1, "__proto__": {"web": 7}}');
  });
  const mocks = useMocks("dev", { config });
  const run = import("../../index");
  await expect(run).rejects.toBeInstanceOf(pulumi.RunError);
  await expect(run).rejects.toThrow(/stack "dev": stacks\/Pulumi\.dev\.yaml: config\.dockyard:replicas\.__proto__: the key "__proto__" is not allowed/);
  expect(mocks.resources).toEqual([]);
});
