/**
 * ci/stack-file.ts with DOCKYARD_STACKS_DIR pointing at another checkout's stacks/ (issue 24
 * item 4: deploy-prod checks test's tested commit, in program/, with the workflow's own ci/):
 * the stack file is read with THAT checkout's environment.yaml, not this one's.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "../..");
const run = (dir: string) => spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "ci/stack-file.ts"), "prod"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, DOCKYARD_STACKS_DIR: dir } });

describe("ci/stack-file.ts on another checkout's stacks/", () => {
  it("reads that checkout's environment.yaml beside its stack file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "h5b-stackfile-"));
    try {
      // As the one-time set-up leaves it: with its committed encryptedkey.
      const file = fs.readFileSync(path.join(ROOT, "stacks/Pulumi.prod.yaml"), "utf8").replace(/^encryptedkey:.*\n/m, "").replace(/^secretsprovider: .*$/m, (l) => `${l}\nencryptedkey: AQICAHh0ZXN0`);
      fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), file);
      fs.copyFileSync(path.join(ROOT, "stacks/environment.yaml"), path.join(dir, "environment.yaml"));
      const good = run(dir);
      expect(good.stderr).toBe("");
      expect(good.status).toBe(0);
      // That checkout's environment declares no such group: the check must see it (this checkout's would pass).
      const env = fs.readFileSync(path.join(dir, "environment.yaml"), "utf8");
      fs.writeFileSync(path.join(dir, "environment.yaml"), `${env}\nnotAKey: 1\n`);
      const bad = run(dir);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/notAKey/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
