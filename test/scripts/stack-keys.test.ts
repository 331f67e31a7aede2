/**
 * scripts/lib/stack-keys.ts: the dev-* stacks of a DIY backend from its object keys, by the
 * rules of pulumi/pulumi pkg/backend/diy/store.go projectReferenceStore.ListReferences (keys
 * `<project>/<stack>.json[.gz|.zst]`, .yaml/.yml too: sdk/go/common/encoding/marshal.go
 * Exts), reading no key outside `.pulumi/stacks/dockyard/<prefix>`. The s3:// path runs a
 * stand-in `aws` on PATH and checks its exact command line (the real one is not reachable
 * here: no AWS); its output shape is the S3 ListObjectsV2 response as the CLI prints it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devServerPolicy } from "../../ci/iam/policies";
import { runList } from "../../scripts/dev-server";
import { automationBackend } from "../../scripts/lib/automation";
import { diyLocation, listObjectsArgs, listStacksByKeys, stacksFromKeys } from "../../scripts/lib/stack-keys";
import { ROOT } from "./cli";

describe("stacksFromKeys (ListReferences' rules, one prefix)", () => {
  it("keeps <project>/<prefix...>.json, .yaml, .yml and their .gz/.zst; not .bak, tags, other projects, deeper keys, other prefixes", () => {
    const keys = [
      "dockyard/dev-alice.json",
      "dockyard/dev-alice.json.bak",
      "dockyard/dev-alice.pulumi-tags",
      "dockyard/dev-bob.json.gz",
      "dockyard/dev-carol.yaml",
      "dockyard/dev-dan.json.zst",
      "dockyard/dev.json",
      "dockyard/prod.json",
      "other/dev-eve.json",
      "dockyard/sub/dev-fay.json",
    ].map((key) => ({ key }));
    expect(stacksFromKeys(keys, "dockyard", "dev-").map((s) => s.name)).toEqual(["dev-alice", "dev-bob", "dev-carol", "dev-dan"]);
  });

  it("a stack with a plain and a compressed checkpoint is listed once, with the newer write", () => {
    const s = stacksFromKeys(
      [
        { key: "dockyard/dev-alice.json", lastModified: "2026-03-01T08:00:00.000Z" },
        { key: "dockyard/dev-alice.json.gz", lastModified: "2026-03-01T09:00:00.000Z" },
      ],
      "dockyard",
      "dev-",
    );
    expect(s).toEqual([{ name: "dev-alice", lastUpdate: "2026-03-01T09:00:00.000Z" }]);
  });
});

describe("diyLocation", () => {
  it("file:// with ~ and a query; s3:// with a path and gocloud's region, profile, endpoint; none for Pulumi Cloud or gs://", () => {
    expect(diyLocation("file://~/.dockyard-state?no_tmp_dir=true", "/home/alice")).toEqual({ kind: "file", dir: "/home/alice/.dockyard-state" });
    expect(diyLocation("file:///srv/state")).toEqual({ kind: "file", dir: "/srv/state" });
    expect(diyLocation("s3://acme-state/team?region=eu-west-1&profile=ops")).toEqual({ kind: "s3", bucket: "acme-state", path: "team", region: "eu-west-1", profile: "ops" });
    expect(diyLocation("s3://acme-state")).toEqual({ kind: "s3", bucket: "acme-state", path: "" });
    expect(diyLocation("https://api.pulumi.com")).toBeUndefined();
    expect(diyLocation("gs://acme-state")).toBeUndefined();
  });
});

describe("file:// listing", () => {
  it("reads the directory, skips subdirectories, and never opens another stack's checkpoint (prod.json a directory: reading it would throw)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stack-keys-"));
    const stacks = path.join(dir, ".pulumi", "stacks", "dockyard");
    fs.mkdirSync(path.join(stacks, "prod.json"), { recursive: true });
    fs.mkdirSync(path.join(stacks, "dev-dir.json"));
    fs.writeFileSync(path.join(stacks, "dev-alice.json"), "{}");
    expect((await listStacksByKeys({ kind: "file", dir }, "dockyard", "dev-")).map((s) => s.name)).toEqual(["dev-alice"]);
    expect(await listStacksByKeys({ kind: "file", dir: path.join(dir, "empty") }, "dockyard", "dev-")).toEqual([]);
  });
});

describe("s3:// listing through the aws CLI (stand-in on PATH)", () => {
  const savedPath = process.env.PATH;
  let bin: string;
  let log: string;
  beforeAll(() => {
    bin = fs.mkdtempSync(path.join(os.tmpdir(), "stand-in-aws-"));
    log = path.join(bin, "log.jsonl");
    // ListObjectsV2 as `aws s3api list-objects-v2 --output json` prints it (Contents: Key, LastModified, ...).
    fs.writeFileSync(
      path.join(bin, "aws"),
      `#!/usr/bin/env node
const fs = require("fs");
const argv = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(argv) + "\\n");
if (process.env.AWS_PAGER !== "") { process.stderr.write("a pager would take the output"); process.exit(3); }
const prefix = argv[argv.indexOf("--prefix") + 1];
if (argv[argv.indexOf("--bucket") + 1] === "denied") { process.stderr.write("\\nAn error occurred (AccessDenied) when calling the ListObjectsV2 operation: User is not authorized to perform: s3:ListBucket\\n"); process.exit(254); }
const keys = ["team/.pulumi/stacks/dockyard/dev-alice.json", "team/.pulumi/stacks/dockyard/dev-alice.json.bak", "team/.pulumi/stacks/dockyard/dev-bob.json.gz"].filter((k) => k.startsWith(prefix));
process.stdout.write(keys.length ? JSON.stringify({ Contents: keys.map((Key) => ({ Key, LastModified: "2026-03-01T08:05:00+00:00", Size: 10 })) }) : JSON.stringify({ RequestCharged: null, Prefix: prefix }));
`,
      { mode: 0o755 },
    );
    process.env.PATH = `${bin}${path.delimiter}${savedPath}`;
  });
  afterAll(() => {
    process.env.PATH = savedPath;
  });

  it("asks for the keys under <path>/.pulumi/stacks/dockyard/dev- only, with the URL's region", () => {
    expect(listObjectsArgs({ kind: "s3", bucket: "acme-state", path: "team", region: "eu-west-1" }, "dockyard", "dev-")).toEqual([
      "s3api",
      "list-objects-v2",
      "--bucket",
      "acme-state",
      "--prefix",
      "team/.pulumi/stacks/dockyard/dev-",
      "--output",
      "json",
      "--region",
      "eu-west-1",
    ]);
    expect(listObjectsArgs({ kind: "s3", bucket: "acme-state", path: "" }, "dockyard", "dev-")).toContain(".pulumi/stacks/dockyard/dev-");
  });

  it("the adapter on an s3:// backend lists through aws (no `pulumi stack ls`) and names the dev servers with their last write", async () => {
    fs.writeFileSync(log, "");
    const backend = await automationBackend(ROOT, { ...process.env, PULUMI_BACKEND_URL: "s3://acme-state/team?region=eu-west-1" });
    expect(await backend.listStacks("dev-")).toEqual([
      { name: "dev-alice", lastUpdate: "2026-03-01T08:05:00.000Z" },
      { name: "dev-bob", lastUpdate: "2026-03-01T08:05:00.000Z" },
    ]);
    const calls = fs.readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l) as string[]);
    expect(calls).toEqual([["s3api", "list-objects-v2", "--bucket", "acme-state", "--prefix", "team/.pulumi/stacks/dockyard/dev-", "--output", "json", "--region", "eu-west-1"]]);
  });

  it("a listing the caller may not make: dev-server list exits 1 with the command and AWS's words, no stack trace", async () => {
    let err = "";
    const env = { PULUMI_BACKEND_URL: "s3://denied" };
    const code = await runList({ json: false }, { backend: () => automationBackend(ROOT, { ...process.env, ...env }), now: () => new Date(), sleep: async () => undefined, out: () => undefined, err: (t) => void (err += t), env });
    expect(code).toBe(1);
    expect(err).toBe(
      "listing the dev-* stacks failed: aws s3api list-objects-v2 --bucket denied --prefix .pulumi/stacks/dockyard/dev- failed: An error occurred (AccessDenied) when calling the ListObjectsV2 operation: User is not authorized to perform: s3:ListBucket (backend: s3://denied)\n",
    );
  });

  it("no dev server: an empty listing (CLI v2 prints no Contents)", async () => {
    expect(await listStacksByKeys({ kind: "s3", bucket: "acme-state", path: "elsewhere" }, "dockyard", "dev-")).toEqual([]);
  });
});

describe("what the s3:// listing needs is within the dev-server role (ci/iam/policies.ts devServerPolicy, @cloud-copilot/iam-simulate)", () => {
  const t = { account: "123456789012", region: "eu-west-1", bucket: "acme-state" };
  const decide = async (action: string, resource: string, context: Record<string, string>) => {
    const r = await runSimulation(
      {
        identityPolicies: [{ name: "role", policy: devServerPolicy(t) }],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        request: { action, principal: `arn:aws:sts::${t.account}:assumed-role/dockyard-dev-server/GitHubActions`, resource: { accountId: t.account, resource }, contextVariables: context },
      } as Parameters<typeof runSimulation>[0],
      {},
    );
    return r.resultType === "error" ? `error: ${JSON.stringify(r.errors)}` : r.overallResult;
  };

  it("ListObjectsV2 with the listing's prefix (s3:ListBucket, s3:prefix) is allowed; it reads no object, and prod's checkpoint stays denied", async () => {
    const args = listObjectsArgs({ kind: "s3", bucket: t.bucket, path: "" }, "dockyard", "dev-");
    const prefix = args[args.indexOf("--prefix") + 1];
    expect(await decide("s3:ListBucket", `arn:aws:s3:::${t.bucket}`, { "s3:prefix": prefix })).toBe("Allowed");
    expect(await decide("s3:GetObject", `arn:aws:s3:::${t.bucket}/.pulumi/stacks/dockyard/prod.json`, {})).toBe("ImplicitlyDenied");
    // What the reap then opens of each dev server it found: its checkpoint and tags.
    expect(await decide("s3:GetObject", `arn:aws:s3:::${t.bucket}/.pulumi/stacks/dockyard/dev-alice.json`, {})).toBe("Allowed");
    expect(await decide("s3:GetObject", `arn:aws:s3:::${t.bucket}/.pulumi/stacks/dockyard/dev-alice.pulumi-tags`, {})).toBe("Allowed");
  });
});
