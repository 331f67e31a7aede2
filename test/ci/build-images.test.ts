/**
 * deploy-test's build (issue 24 item 8): ci/images.ts lists every service of
 * stacks/environment.yaml whether or not the stack file has its digest yet (a new stack, a
 * new service: EnvironmentSpec.awaitingImage, which the former `pinnedImages` loop never saw)
 * and the proxy; ci/build-images.sh builds each service, mirrors HAProxy from a source pinned
 * by digest, and its digests JSON is what scripts/lib/stackfile.ts setImageDigests writes into
 * the stack file (dockyard:images.<name>, dockyard:proxyImage for haproxy).
 *
 * aws, docker and skopeo are stand-ins on PATH over a directory standing for ECR
 * (<repository>/<tag> holding the digest); each logs its command line. Not run here: real ECR,
 * Docker Hub (the HAProxy source) and a real push.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { setImageDigests } from "../../scripts/lib/stackfile";
import { loadStackSpec, pinnedImages } from "../../stacks";

const ROOT = path.resolve(__dirname, "../..");
const REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const SOURCE = `docker.io/library/haproxy:3.0@sha256:${"ab".repeat(32)}`;

const AWS = `#!/bin/sh
echo "aws $*" >>"$FAKE_LOG"
arg() { prev=""; for a in "$@"; do [ "$prev" = "$KEY" ] && { echo "$a"; return; }; prev=$a; done; }
case "$2" in
  get-login-password) echo token ;;
  describe-repositories) KEY=--repository-names; r=$(arg "$@"); [ -d "$FAKE_ECR/$r" ] || { echo "RepositoryNotFoundException" >&2; exit 254; } ;;
  describe-images) KEY=--repository-name; r=$(arg "$@"); KEY=--image-ids; t=$(arg "$@"); t=\${t#imageTag=}
    [ -f "$FAKE_ECR/$r/$t" ] || { echo "ImageNotFoundException" >&2; exit 254; }; cat "$FAKE_ECR/$r/$t" ;;
  *) echo "stand-in aws: unexpected $*" >&2; exit 2 ;;
esac
`;
/** docker push and skopeo copy store a digest made from the destination (a push of the same tag gives the same digest). */
const PUSH = (tool: string, dest: string) => `#!/bin/sh
echo "${tool} $*" >>"$FAKE_LOG"
case "$1" in
  login) cat >/dev/null ;;
  ${tool === "docker" ? "push" : "copy"}) ref=${dest}; repo=\${ref#*/}; tag=\${repo##*:}; repo=\${repo%:*}
    mkdir -p "$FAKE_ECR/$repo"; printf 'sha256:%s\\n' "$(printf %s "$ref" | sha256sum | cut -c1-64)" >"$FAKE_ECR/$repo/$tag" ;;
esac
`;

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A checkout of the repository's stacks (test's stack file without any digest: a new stack), stand-ins, an ECR with the repositories. */
function setup(repositories = ["dockyard-test/web", "dockyard-test/haproxy"]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "h5-build-"));
  dirs.push(dir);
  const work = path.join(dir, "work");
  fs.mkdirSync(path.join(work, "stacks/services/web"), { recursive: true });
  fs.writeFileSync(path.join(work, "stacks/services/web/build.sh"), `#!/bin/sh\necho "build.sh $*" >>"$FAKE_LOG"\n`, { mode: 0o755 });
  const stackFile = path.join(work, "stacks/Pulumi.test.yaml");
  const doc = YAML.parseDocument(fs.readFileSync(path.join(ROOT, "stacks/Pulumi.test.yaml"), "utf8"));
  doc.deleteIn(["config", "dockyard:images"]);
  doc.deleteIn(["config", "dockyard:proxyImage"]);
  fs.writeFileSync(stackFile, doc.toString());
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", "init", "-q"], { cwd: work });
  execFileSync("git", ["add", "."], { cwd: work });
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"], { cwd: work });
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, "aws"), AWS, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "docker"), PUSH("docker", '"$2"'), { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "skopeo"), PUSH("skopeo", '"${4#docker://}"'), { mode: 0o755 });
  const ecr = path.join(dir, "ecr");
  for (const r of repositories) fs.mkdirSync(path.join(ecr, r), { recursive: true });
  const env = { PATH: `${bin}:${process.env.PATH}`, HOME: dir, FAKE_LOG: path.join(dir, "log"), FAKE_ECR: ecr, HAPROXY_SOURCE: SOURCE };
  fs.writeFileSync(env.FAKE_LOG, "");
  return { dir, work, stackFile, env };
}

function images(work: string): string {
  return execFileSync(process.execPath, ["--import", "tsx", path.join(ROOT, "ci/images.ts"), "test"], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, DOCKYARD_STACKS_DIR: path.join(work, "stacks") },
  });
}

function build(s: ReturnType<typeof setup>, list: string, env: Record<string, string> = {}) {
  fs.writeFileSync(path.join(s.dir, "images"), list);
  const r = spawnSync("bash", [path.join(ROOT, "ci/build-images.sh"), path.join(s.dir, "images"), path.join(s.dir, "digests.json")], { cwd: s.work, env: { ...s.env, ...env }, encoding: "utf8" });
  return { ...r, log: fs.readFileSync(s.env.FAKE_LOG, "utf8") };
}

describe("deploy-test's build: every service and the proxy, for a new stack too", () => {
  it("ci/images.ts lists a service the stack file has no digest for, and haproxy (the former loop listed only services with a digest)", () => {
    const s = setup();
    expect(images(s.work)).toBe(`web ${REGISTRY}/dockyard-test/web\nhaproxy ${REGISTRY}/dockyard-test/haproxy\n`);
    // What deploy-test's build looped over before: pinnedImages, which holds only images with a digest.
    expect(pinnedImages(loadStackSpec("test", { dir: path.join(s.work, "stacks") })).map((i) => i.name)).toEqual([]);
  });

  it("builds web, mirrors HAProxy by digest with all platforms, and its JSON sets dockyard:images.web and dockyard:proxyImage", () => {
    const s = setup();
    const r = build(s, images(s.work));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const tree = execFileSync("git", ["rev-parse", "HEAD:stacks/services/web"], { cwd: s.work, encoding: "utf8" }).trim();
    expect(r.log).toContain(`build.sh ${REGISTRY}/dockyard-test/web:src-${tree}\n`);
    expect(r.log).toContain(`docker push ${REGISTRY}/dockyard-test/web:src-${tree}\n`);
    expect(r.log).toContain(`skopeo copy --all docker://${SOURCE} docker://${REGISTRY}/dockyard-test/haproxy:mirror-${"ab".repeat(32)}\n`);
    expect(r.log).not.toMatch(/password-stdin \S+ token|--password token/); // the token only on stdin
    const digests = JSON.parse(fs.readFileSync(path.join(s.dir, "digests.json"), "utf8"));
    expect(Object.keys(digests).sort()).toEqual(["haproxy", "web"]);
    for (const d of Object.values(digests)) expect(d).toMatch(/^sha256:[0-9a-f]{64}$/);
    setImageDigests(s.stackFile, digests);
    const written = YAML.parse(fs.readFileSync(s.stackFile, "utf8")).config;
    expect(written["dockyard:images"]).toEqual({ web: digests.web });
    expect(written["dockyard:proxyImage"]).toBe(digests.haproxy);
    // The next run finds both tags: nothing is built, copied or pushed, the same digests.
    fs.writeFileSync(s.env.FAKE_LOG, "");
    const again = build(s, images(s.work));
    expect(again.status).toBe(0);
    expect(again.log).not.toMatch(/build\.sh|docker push|skopeo copy/);
    expect(JSON.parse(fs.readFileSync(path.join(s.dir, "digests.json"), "utf8"))).toEqual(digests);
  });

  it("refuses a HAProxy source not pinned by digest (exit 2, nothing called)", () => {
    const s = setup();
    const r = build(s, images(s.work), { HAPROXY_SOURCE: "haproxy:3.0" });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('HAPROXY_SOURCE (repository variable HAPROXY_SOURCE_IMAGE): "haproxy:3.0" is not an image pinned by digest; allowed: <image>@sha256:<64 hex>, e.g. docker.io/library/haproxy:<version>@sha256:<digest> (README "One-time set-up")\n');
    expect(r.log).toBe("");
  });

  it("a repository the stack's first up has not created yet: exit 1 naming it, nothing pushed", () => {
    const s = setup(["dockyard-test/haproxy"]);
    const r = build(s, images(s.work));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('web: ECR repository dockyard-test/web does not exist in eu-west-1 yet; the stack\'s first pulumi up creates it (README "The first deploy of a new stack")');
    expect(r.log).not.toMatch(/build\.sh|push|copy/);
  });
});
