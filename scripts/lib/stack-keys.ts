/**
 * The stacks of a DIY backend (file://, s3://) whose names start with a prefix, found from
 * the backend's object keys alone: no other stack's checkpoint or tags are opened.
 *
 * Why not `pulumi stack ls`: on a DIY backend it is ListStacks (pulumi/pulumi
 * pkg/backend/diy/backend.go ListStacks), which lists every key under `.pulumi/stacks/`
 * (getStacks -> store.go projectReferenceStore.ListReferences) and then reads EVERY stack's
 * checkpoint (getCheckpoint per stack, tolerating only a missing one). A caller that may read
 * only `dev-*` state (the dev-server role of ci/iam/policies.ts devServerPolicy) fails on
 * prod's checkpoint. Its flags do not help: `--project` filters by the key's project
 * directory only; `--tag` first reads every stack's `.pulumi-tags` (stack_tags.go
 * loadStackTags), skipping one it cannot read with only a verbose log line, then the
 * checkpoint of each match: it would pass prod only by swallowing AccessDenied, and would
 * drop a dev-* stack without the tag, which reap must name. So this reads the same keys
 * ListReferences reads, restricted to `.pulumi/stacks/<project>/<prefix>` (s3:ListBucket
 * with that prefix; a directory listing for file://), and applies its rules.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { StackListing } from "./automation";

/** Where a DIY backend keeps its state, from its URL; undefined for any other backend (Pulumi Cloud, gs://, azblob://). */
export type DiyLocation =
  | { kind: "file"; dir: string }
  | { kind: "s3"; bucket: string; path: string; region?: string; profile?: string; endpoint?: string };

/**
 * The state location of a backend URL: file:// (`~` is the home directory, as
 * pkg/backend/diy/backend.go massageBlobPath resolves it; the query is Pulumi's, not a path)
 * and s3://bucket[/path][?region=&profile=&endpoint=] (gocloud s3blob's URL parameters).
 */
export function diyLocation(url: string, home: string = os.homedir()): DiyLocation | undefined {
  if (url.startsWith("file://")) {
    let p = url.slice("file://".length).split("?")[0];
    if (p === "~") p = home;
    else if (p.startsWith("~/")) p = path.join(home, p.slice(2));
    return { kind: "file", dir: path.resolve(p) };
  }
  if (url.startsWith("s3://")) {
    const u = new URL(url);
    const q = (k: string) => u.searchParams.get(k) || undefined;
    const region = q("region");
    const profile = q("profile");
    const endpoint = q("endpoint");
    return { kind: "s3", bucket: u.hostname, path: decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, ""), ...(region ? { region } : {}), ...(profile ? { profile } : {}), ...(endpoint ? { endpoint } : {}) };
  }
  return undefined;
}

/** One object of the backend: its key under `.pulumi/stacks/` (`<project>/<file>`) and when it was last written. */
export interface StateObject {
  key: string;
  lastModified?: string;
}

/** Checkpoint extensions (sdk/go/common/encoding/marshal.go Exts) and the compressions ListReferences accepts. */
const CHECKPOINT_EXT = /^(.+)\.(json|yaml|yml)(\.gz|\.zst)?$/;

/**
 * The stacks of `project` whose names start with `prefix`, from keys relative to
 * `.pulumi/stacks/`, by ListReferences' rules: exactly `<project>/<file>`, the file a
 * checkpoint (`.json`, `.yaml`, `.yml`, optionally `.gz`/`.zst`; `.bak`, `.pulumi-tags` and
 * the like are not). lastUpdate: when the checkpoint object was last written (Pulumi's own
 * is the checkpoint's manifest time, set as it writes it); the newest when a stack has both
 * a plain and a compressed checkpoint.
 */
export function stacksFromKeys(objects: readonly StateObject[], project: string, prefix: string): StackListing[] {
  const byName = new Map<string, StackListing>();
  for (const o of objects) {
    const parts = o.key.split("/");
    if (parts.length !== 2 || parts[0] !== project) continue;
    const m = CHECKPOINT_EXT.exec(parts[1]);
    if (!m || !m[1].startsWith(prefix)) continue;
    const name = m[1];
    const seen = byName.get(name);
    if (seen && (seen.lastUpdate ?? "") >= (o.lastModified ?? "")) continue;
    byName.set(name, { name, ...(o.lastModified ? { lastUpdate: o.lastModified } : {}) });
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** The stacks directory of a project inside the backend (`.pulumi/stacks/<project>`). */
const stacksDir = (project: string) => `.pulumi/stacks/${project}`;

/** file://: the files of `<dir>/.pulumi/stacks/<project>/` whose names start with prefix (only those are stat'ed; directories skipped, as ListReferences skips them). */
function fileObjects(dir: string, project: string, prefix: string): StateObject[] {
  const where = path.join(dir, stacksDir(project));
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(where, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  return entries
    .filter((e) => e.isFile() && e.name.startsWith(prefix))
    .map((e) => ({ key: `${project}/${e.name}`, lastModified: fs.statSync(path.join(where, e.name)).mtime.toISOString() }));
}

/** Listing the backend's keys failed; the message names the command and what it said (its last line). */
export class StateListError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StateListError";
  }
}

/** Runs a command and gives its stdout; rejects with a StateListError. */
export type Run = (cmd: string, args: string[]) => Promise<string>;

const run: Run = (cmd, args) =>
  new Promise((resolve, reject) => {
    // AWS_PAGER empty: AWS CLI v2 would otherwise hand its output to a pager (v1 ignores it).
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, AWS_PAGER: "" } }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? `no \`${cmd}\` on PATH (the AWS CLI lists an s3:// backend's stacks)` : (stderr || err.message).trim().split("\n").pop();
      reject(new StateListError(`${cmd} ${args.slice(0, 6).join(" ")} failed: ${why}`));
    });
  });

/**
 * The `aws` CLI's command line for the keys of `.pulumi/stacks/<project>/<prefix>`
 * (s3api list-objects-v2: it follows NextContinuationToken itself, botocore
 * data/s3/2006-03-01/paginators-1.json ListObjectsV2). The caller needs s3:ListBucket on
 * the bucket (ci/iam/policies.ts StateList), nothing on any object.
 */
export function listObjectsArgs(loc: Extract<DiyLocation, { kind: "s3" }>, project: string, prefix: string): string[] {
  const key = [loc.path, stacksDir(project), prefix].filter(Boolean).join("/");
  return [
    "s3api",
    "list-objects-v2",
    "--bucket",
    loc.bucket,
    "--prefix",
    key,
    "--output",
    "json",
    ...(loc.region ? ["--region", loc.region] : []),
    ...(loc.profile ? ["--profile", loc.profile] : []),
    ...(loc.endpoint ? ["--endpoint-url", loc.endpoint] : []),
  ];
}

async function s3Objects(loc: Extract<DiyLocation, { kind: "s3" }>, project: string, prefix: string, exec: Run): Promise<StateObject[]> {
  const out = (await exec("aws", listObjectsArgs(loc, project, prefix))).trim();
  // No matching key: AWS CLI v1 prints nothing, v2 an object without Contents.
  const contents = out ? ((JSON.parse(out) as { Contents?: Array<{ Key: string; LastModified?: string }> | null }).Contents ?? []) : [];
  const base = [loc.path, ".pulumi/stacks"].filter(Boolean).join("/") + "/";
  return contents.filter((c) => c.Key.startsWith(base)).map((c) => ({ key: c.Key.slice(base.length), ...(c.LastModified ? { lastModified: new Date(c.LastModified).toISOString() } : {}) }));
}

/** The stacks of `project` at `loc` whose names start with `prefix`, reading only keys that start with it. */
export async function listStacksByKeys(loc: DiyLocation, project: string, prefix: string, exec: Run = run): Promise<StackListing[]> {
  const objects = loc.kind === "file" ? fileObjects(loc.dir, project, prefix) : await s3Objects(loc, project, prefix, exec);
  return stacksFromKeys(objects, project, prefix);
}
