/**
 * Pulumi mock runtime for unit tests. Call `useMocks()` at the top of a test file,
 * before importing any module that creates resources, then `await import(...)` them.
 */
import * as pulumi from "@pulumi/pulumi";
import { DockyardMocks, type CallHandler, DEFAULT_CALLS } from "../../scripts/lib/mocks";

export { promisify, isSecretOutput, computed, isComputed } from "../../scripts/lib/mocks";

/** Installs fresh mocks for the real project name and the given stack; returns the recorder. */
export function useMocks(stack = "dev", opts: { calls?: Record<string, CallHandler>; config?: Record<string, string>; secretKeys?: string[] } = {}): DockyardMocks {
  const mocks = new DockyardMocks({ ...DEFAULT_CALLS, ...(opts.calls ?? {}) });
  pulumi.runtime.setAllConfig(opts.config ?? {}, opts.secretKeys ?? []);
  pulumi.runtime.setMocks(mocks, "dockyard", stack, false);
  return mocks;
}

/** Lets pending registrations (including those made inside apply callbacks) finish. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
