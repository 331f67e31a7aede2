/**
 * ci/awaiting-images.sh (issue 24 item 8): up-test smoke-tests and records test's tested commit
 * only when nothing awaits an image. Fed the outputs the real program exports (index.ts
 * awaitingImage, rendered on the mock runtime by scripts/lib/render.ts renderStack): a new
 * stack's first up (no digest anywhere), a new service (its digest missing), and test as shipped.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { renderStack } from "../../scripts/lib/render";

const ROOT = path.resolve(__dirname, "../..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "h5-awaiting-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The outputs of test's stack file with `edit` applied, rendered by the real program. */
async function outputsOf(name: string, edit: (config: Record<string, unknown>) => void): Promise<string> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  const doc = YAML.parse(fs.readFileSync(path.join(ROOT, "stacks/Pulumi.test.yaml"), "utf8"));
  edit(doc.config);
  fs.writeFileSync(path.join(dir, "Pulumi.test.yaml"), YAML.stringify(doc));
  const rendered = await renderStack("test", { stacksDir: dir });
  const file = path.join(dir, "outputs.json");
  fs.writeFileSync(file, JSON.stringify(rendered.outputs));
  return file;
}

function run(file: string) {
  const summary = path.join(path.dirname(file), "summary");
  fs.writeFileSync(summary, "");
  const r = spawnSync("bash", [path.join(ROOT, "ci/awaiting-images.sh"), file], { encoding: "utf8", env: { PATH: process.env.PATH, GITHUB_STEP_SUMMARY: summary } });
  return { ...r, summary: fs.readFileSync(summary, "utf8") };
}

describe("ci/awaiting-images.sh over the program's real outputs", () => {
  it("a new stack's first up (no digest at all): awaiting=true, naming the service and the proxy", async () => {
    const r = run(
      await outputsOf("first", (c) => {
        delete c["dockyard:images"];
        delete c["dockyard:proxyImage"];
      }),
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("awaiting=true\n");
    expect(r.summary).toMatch(/^awaiting images: web, haproxy \(the proxy\)\. Their repositories exist now; the build job pushes the images/);
  }, 180_000);

  it("a new service without its digest: awaiting=true; test as shipped: awaiting=false", async () => {
    const missing = run(await outputsOf("new-service", (c) => void delete (c["dockyard:images"] as Record<string, string>).web));
    expect(missing.stdout).toBe("awaiting=true\n");
    expect(missing.summary).toMatch(/^awaiting images: web\./);
    const shipped = run(await outputsOf("shipped", () => {}));
    expect(shipped.status).toBe(0);
    expect(shipped.stdout).toBe("awaiting=false\n");
  }, 180_000);

  it("outputs without awaitingImage (not this program's): exit 2 naming the file", () => {
    const file = path.join(tmp, "other.json");
    fs.writeFileSync(file, JSON.stringify({ hosts: [] }));
    const r = run(file);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`${file}: no stack output awaitingImage { services: [...], proxy: true|false } (index.ts exports it)\n`);
  });
});
