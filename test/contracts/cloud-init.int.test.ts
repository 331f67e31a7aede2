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
import { LOCAL_ENGINE, T } from "./rules";
import { NOCLOUD_SEED } from "../../components/local-host";

describe.each([...CONTRACT_STACKS])("stack %s", (stack) => {
  it("every instance's user-data passes `cloud-init schema`", async () => {
    const r = await contractRender(stack);
    // One instance per host group: the hosts of a group differ only in names and ids (cloud-init
    // schema takes ~1.5 s a document on 2 cores, and the large stack has 15 hosts).
    // An EC2 host's user-data is the instance's userDataBase64; a local host's (issue 12) is the
    // NoCloud seed its machine container gets as an upload.
    const perGroup = new Map<string, { name: string; userData: string }>();
    for (const x of r.resources.filter((y) => y.type === T.instance)) {
      const group = x.name.replace(/-\d+-instance$/, "");
      if (!perGroup.has(group)) perGroup.set(group, { name: x.name, userData: x.inputs.userDataBase64 as string });
    }
    for (const x of r.resources.filter((y) => y.type === T.container && y.options?.provider === LOCAL_ENGINE)) {
      const group = x.name.replace(/-\d+-machine$/, "");
      const uploads = (x.inputs.uploads as { value?: unknown }).value as { file: string; contentBase64?: string }[];
      const seed = uploads.find((u) => u.file === `${NOCLOUD_SEED}/user-data`);
      if (!perGroup.has(group) && seed?.contentBase64) perGroup.set(group, { name: x.name, userData: seed.contentBase64 });
    }
    const instances = [...perGroup.values()];
    expect(instances.length).toBeGreaterThan(0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-cloud-init-"));
    try {
      for (const i of instances) {
        const file = path.join(dir, `${i.name}.yaml`);
        fs.writeFileSync(file, gunzipSync(Buffer.from(i.userData, "base64")));
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
