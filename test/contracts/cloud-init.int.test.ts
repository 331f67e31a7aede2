/**
 * Contract: cloud-init accepts the user-data each stack's instances are given. The
 * instance's userDataBase64 is decoded and gunzipped exactly as cloud-init does
 * (cloudinit/user_data.py decomp_gzip), and the text is checked by Debian's own
 * `cloud-init schema` (installed by test/infra/20-lint-tools.sh). The boot itself is in
 * test/host/engine.int.test.ts.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { CONTRACT_STACKS, contractRender } from "./stacks";
import { T } from "./rules";

describe.each([...CONTRACT_STACKS])("stack %s", (stack) => {
  it("every instance's user-data passes `cloud-init schema`", async () => {
    const r = await contractRender(stack);
    // One instance per host group: the hosts of a group differ only in names and ids (cloud-init
    // schema takes ~1.5 s a document on 2 cores, and the large stack has 15 hosts).
    const perGroup = new Map<string, (typeof r.resources)[number]>();
    for (const x of r.resources.filter((y) => y.type === T.instance)) {
      const group = x.name.replace(/-\d+-instance$/, "");
      if (!perGroup.has(group)) perGroup.set(group, x);
    }
    const instances = [...perGroup.values()];
    expect(instances.length).toBeGreaterThan(0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-cloud-init-"));
    try {
      for (const i of instances) {
        const file = path.join(dir, `${i.name}.yaml`);
        fs.writeFileSync(file, gunzipSync(Buffer.from(i.inputs.userDataBase64 as string, "base64")));
        const res = spawnSync("cloud-init", ["schema", "--config-file", file], { encoding: "utf8" });
        expect(res.status, `${i.name}: ${res.stdout}${res.stderr}`).toBe(0);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000); // the large stack's render alone may take minutes on 2 busy cores (test/contracts/stacks.ts)
});

it("cloud-init schema refuses a broken document (the check can fail)", () => {
  const file = path.join(os.tmpdir(), `dockyard-bad-${process.pid}.yaml`);
  fs.writeFileSync(file, "#cloud-config\nruncmd: 42\nwrite_files: nope\n");
  try {
    expect(() => execFileSync("cloud-init", ["schema", "--config-file", file], { stdio: "pipe" })).toThrow();
  } finally {
    fs.rmSync(file, { force: true });
  }
});
