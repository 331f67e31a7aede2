/**
 * test/infra/up.sh (the first half of `npm test`) on a machine it cannot set up: without
 * root or without Debian's apt it stops before any step, with one line that says what it
 * needs and the command that works without them (issue 15).
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

const UP = path.resolve(__dirname, "up.sh");
const up = (env: NodeJS.ProcessEnv) => spawnSync("/bin/bash", [UP], { env, encoding: "utf8", timeout: 30_000 });
const root = process.getuid?.() === 0;

describe("test/infra/up.sh without what it needs", () => {
  it("without apt-get and dpkg on PATH: exit 2, one line naming what is missing and `npm run test:unit`, no step run", () => {
    const r = up({ PATH: "/nonexistent" });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe(""); // no "==> test/infra/NN-..." step started
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^npm test needs root and Debian's apt .*; missing here: .*Debian's apt \(no apt-get\/dpkg-query on PATH\)\. Without them, run the unit tests: npm run test:unit$/);
    expect(lines[0].includes("root (this is uid")).toBe(!root);
  });

  it.runIf(!root)("as a user (not root), with apt on PATH: the same one line, naming root", () => {
    const r = up({ PATH: process.env.PATH });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`npm test needs root and Debian's apt (it installs and starts Docker Engine, registries and test tools); missing here: root (this is uid ${process.getuid?.()}). Without them, run the unit tests: npm run test:unit\n`);
  });
});
