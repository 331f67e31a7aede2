import { defineConfig } from "vitest/config";

// Unit tests (*.test.ts) need nothing but Node; integration tests (*.int.test.ts) talk
// to the real Docker Engine, registries and host image that test/infra/up.sh starts.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 600_000,
    pool: "forks",
    // Integration tests share one dockerd; keep file-level parallelism modest on 2 cores.
    maxWorkers: 2,
  },
});
