/**
 * `dockyard dev-server`'s logic against a fake DevServerBackend (scripts/lib/automation.ts):
 * which stack, which config calls (knobs copied whole, secrets decrypted and set as
 * secrets, the platform knob), which tags, TTL arithmetic with a fixed clock, reap's
 * selection, recreate's URNs, waiting on a locked stack, and every error path with its
 * message and exit code. The real adapter's command lines: dev-server-automation.test.ts.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { ENVIRONMENT_FILE, STACKS_DIR, readStackFile } from "../../stacks";
import { accessLines } from "../../scripts/lib/access";
import {
  configPath,
  decryptedSecrets,
  formatDuration,
  hostNameProblem,
  ownerProblem,
  parseDuration,
  planConfigCopy,
  reapSelection,
  replaceUrns,
  runDestroy,
  runList,
  runReap,
  runRecreate,
  runUp,
  serverInfo,
  TTL_MAX_MS,
  TTL_MIN_MS,
  type DevServerDeps,
} from "../../scripts/dev-server";
import { NoDeploymentError, PulumiCommandError, StackLockedError, StackMissingError, type ConfigJsonValue, type ConfigValues, type DevServerBackend, type StackListing, type StateResource } from "../../scripts/lib/automation";
import { DockyardError } from "../../scripts/lib/cli";

const NOW = new Date("2026-03-01T12:00:00Z");
const LOCK_TEXT =
  "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n" +
  "  file:///home/bob/.dockyard-state/.pulumi/locks/organization/dockyard/dev-alice/1a2b.json: created by bob@laptop (pid 4242) at 2026-03-01T11:58:00Z";

type Call = [string, ...unknown[]];

/** A backend in memory that records every call. */
class FakeBackend implements DevServerBackend {
  location = "backend file:///tmp/state";
  calls: Call[] = [];
  stacks = new Map<string, { tags: Record<string, string>; config: Record<string, unknown>; lastUpdate?: string; resources: StateResource[]; outputs: Record<string, unknown> }>();
  /** Decrypted config of other stacks (`pulumi config --show-secrets --json`). */
  decrypted: Record<string, Record<string, ConfigJsonValue>> = {};
  /** up/destroy fail with a lock this many times first. */
  locked = 0;
  upError?: Error;
  destroyError: Record<string, Error> = {};
  outputsAfterUp: Record<string, unknown> = {};
  resourcesAfterUp: StateResource[] = [];

  add(name: string, tags: Record<string, string> = {}, extra: Partial<{ lastUpdate: string; resources: StateResource[] }> = {}) {
    this.stacks.set(name, { tags, config: {}, resources: extra.resources ?? [], outputs: {}, ...(extra.lastUpdate ? { lastUpdate: extra.lastUpdate } : {}) });
  }
  private get(name: string) {
    const s = this.stacks.get(name);
    if (!s) throw new Error(`fake: no stack ${name}`);
    return s;
  }
  async selectOrCreate(stack: string, opts: { secretsProvider?: string }) {
    this.calls.push(["selectOrCreate", stack, opts]);
    if (this.stacks.has(stack)) return { created: false };
    this.add(stack);
    return { created: true };
  }
  async getAllConfig(stack: string) {
    this.calls.push(["getAllConfig", stack]);
    return this.decrypted[stack] ?? {};
  }
  async setConfigJson(stack: string, values: Record<string, ConfigJsonValue>) {
    this.calls.push(["setConfigJson", stack, values]);
  }
  async setConfigPaths(stack: string, values: ConfigValues) {
    this.calls.push(["setConfigPaths", stack, values]);
  }
  async removeConfig(stack: string, keys: string[]) {
    this.calls.push(["removeConfig", stack, keys]);
  }
  async refreshConfig(stack: string) {
    this.calls.push(["refreshConfig", stack]);
  }
  async getTags(stack: string) {
    return { ...this.get(stack).tags };
  }
  async setTags(stack: string, tags: Record<string, string>) {
    this.calls.push(["setTags", stack, tags]);
    Object.assign(this.get(stack).tags, tags);
  }
  /** The prefixes listed: the real adapter reads only the keys that start with one (scripts/lib/stack-keys.ts). */
  listed: string[] = [];
  async listStacks(prefix: string): Promise<StackListing[]> {
    this.listed.push(prefix);
    return [...this.stacks].filter(([name]) => name.startsWith(prefix)).map(([name, s]) => ({ name, ...(s.lastUpdate ? { lastUpdate: s.lastUpdate } : {}) }));
  }
  async up(stack: string, opts: { replace?: string[]; onOutput: (t: string) => void }) {
    this.calls.push(["up", stack, opts.replace ?? []]);
    if (this.locked > 0) {
      this.locked--;
      throw new StackLockedError(LOCK_TEXT);
    }
    opts.onOutput("Updating (dev-alice):\n");
    if (this.upError) {
      this.get(stack).resources = this.resourcesAfterUp;
      throw this.upError;
    }
    this.get(stack).resources = this.resourcesAfterUp;
    this.get(stack).outputs = this.outputsAfterUp;
  }
  async outputs(stack: string) {
    return this.get(stack).outputs;
  }
  async resources(stack: string) {
    this.calls.push(["resources", stack]);
    return this.get(stack).resources;
  }
  async destroy(stack: string, opts: { onOutput: (t: string) => void }) {
    this.calls.push(["destroy", stack]);
    if (this.locked > 0) {
      this.locked--;
      throw new StackLockedError(LOCK_TEXT);
    }
    opts.onOutput("Destroying\n");
    if (this.destroyError[stack]) throw this.destroyError[stack];
  }
  async remove(stack: string) {
    this.calls.push(["remove", stack]);
    this.stacks.delete(stack);
  }
  ops() {
    return this.calls.map((c) => c[0]);
  }
  call(op: string) {
    return this.calls.find((c) => c[0] === op);
  }
}

let dir: string;
let backend: FakeBackend;
let out: string;
let err: string;
let clock: number;
let slept: number[];
let backendMade: boolean;
let environmentFile: string | undefined;

function deps(env: NodeJS.ProcessEnv = {}): DevServerDeps {
  return {
    backend: async () => {
      backendMade = true;
      return backend;
    },
    now: () => new Date(clock),
    sleep: async (ms) => {
      slept.push(ms);
      clock += ms;
    },
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    stacksDir: dir,
    environmentFile,
    env,
  };
}

/** A copy of the shipped stack files, optionally with dev's config edited. */
function stacksCopy(edit?: (config: Record<string, unknown>) => void): void {
  for (const f of fs.readdirSync(STACKS_DIR).filter((f) => /^Pulumi\..+\.yaml$/.test(f))) fs.copyFileSync(path.join(STACKS_DIR, f), path.join(dir, f));
  if (edit) {
    const file = path.join(dir, "Pulumi.dev.yaml");
    const doc = YAML.parse(fs.readFileSync(file, "utf8"));
    edit(doc.config);
    fs.writeFileSync(file, YAML.stringify(doc));
  }
}
const devConfig = () => YAML.parse(fs.readFileSync(path.join(dir, "Pulumi.dev.yaml"), "utf8")).config as Record<string, unknown>;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dev-server-"));
  backend = new FakeBackend();
  out = "";
  err = "";
  clock = NOW.getTime();
  slept = [];
  backendMade = false;
  environmentFile = undefined;
  stacksCopy();
});

const up = (args: Partial<Parameters<typeof runUp>[0]> = {}, env?: NodeJS.ProcessEnv) => runUp({ owner: "alice", ttl: "8h", lockWait: "10m", ...args }, deps(env));

describe("dev-server up", () => {
  it("creates dev-alice with dev's KMS key, copies every knob of dev as it is, tags owner/platform/expiry, runs up and prints the access", async () => {
    backend.outputsAfterUp = {
      hostsByName: { "dev-alice-app-1": { sshUser: "admin", sshTarget: "i-0123456789abcdef0", publicIp: "203.0.113.7", hostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHmN8vjV0yIXWcB5DUp0hL1z+H3y7aGIsfZz8VddUeMv host" } },
      services: { web: { digest: "sha256:4f", image: "x", replicas: 1, hosts: ["dev-alice-app-1"] } },
    };
    expect(await up()).toBe(0);
    expect(backend.call("selectOrCreate")).toEqual(["selectOrCreate", "dev-alice", { secretsProvider: "awskms://alias/dockyard-dev?region=eu-west-1" }]);
    // Every key of stacks/Pulumi.dev.yaml, objects as objects (numbers stay numbers).
    const [, stack, json] = backend.call("setConfigJson") as [string, string, Record<string, ConfigJsonValue>];
    expect(stack).toBe("dev-alice");
    const dev = devConfig();
    expect(Object.keys(json).sort()).toEqual([...Object.keys(dev), "dockyard:createRepositories"].sort());
    expect(json["aws:region"]).toEqual({ value: "eu-west-1", secret: false });
    // dev owns the repositories of the registry the server shares with it.
    expect(json["dockyard:createRepositories"]).toEqual({ value: "false", secret: false });
    expect(json["dockyard:hostGroups"].objectValue).toEqual(dev["dockyard:hostGroups"]);
    expect(JSON.parse(json["dockyard:hostGroups"].value)).toEqual(dev["dockyard:hostGroups"]);
    // dev has no secret: nothing decrypted, no path values on aws.
    expect(backend.ops()).not.toContain("getAllConfig");
    expect(backend.ops()).not.toContain("setConfigPaths");
    expect(backend.call("setTags")).toEqual([
      "setTags",
      "dev-alice",
      {
        "dockyard:owner": "alice",
        "dockyard:platform": "aws",
        "dockyard:from": "dev",
        "dockyard:created": "2026-03-01T12:00:00Z",
        "dockyard:expires": "2026-03-01T20:00:00Z",
        "dockyard:ttl": "8h",
      },
    ]);
    // Tags before the update, so a half-failed up is found by reap.
    expect(backend.ops().indexOf("setTags")).toBeLessThan(backend.ops().indexOf("up"));
    expect(backend.call("up")).toEqual(["up", "dev-alice", []]);
    expect(err).toContain("Updating (dev-alice):"); // streamed progress
    expect(out).toContain("Dev server dev-alice is up (aws, a copy of dev). Expires 2026-03-01T20:00:00Z (in 8h)");
    // The ssh line is the one Pulumi uses: host key pinned, through Session Manager (dev: hostAccess ssm).
    expect(out).toMatch(/ssh -o StrictHostKeyChecking=yes .*'ProxyCommand=sh -c .*aws ssm start-session --region eu-west-1.* -- admin@i-0123456789abcdef0/);
    expect(out).toMatch(/KnownHostsCommand=\/bin\/echo %H ssh-ed25519 AAAAC3Nz/);
    expect(out).toContain("web: http://203.0.113.7:80/  (dev-alice-app-1)");
  });

  it("copies secure values as secrets: decrypted from --from's config, set by path with --secret; the plain part whole", async () => {
    // An environment whose web service uses two secrets, and dev's file with their ciphertext.
    const env = YAML.parse(fs.readFileSync(ENVIRONMENT_FILE, "utf8"));
    env.services.web.secrets = { SESSION_KEY: "web-session-key", API_KEY: "api-key" };
    environmentFile = path.join(dir, "environment.yaml");
    fs.writeFileSync(environmentFile, YAML.stringify(env));
    stacksCopy((c) => {
      c["dockyard:secrets"] = { "web-session-key": { secure: "v1:AAABAKMS1" }, "api-key": { secure: "v1:AAABAKMS2" } };
    });
    const plain = { "web-session-key": "hunter22", "api-key": "k-123" };
    backend.decrypted.dev = { "dockyard:secrets": { value: JSON.stringify(plain), objectValue: plain, secret: false } };
    expect(await up(), err).toBe(0);
    expect(backend.call("getAllConfig")).toEqual(["getAllConfig", "dev"]);
    const json = backend.call("setConfigJson")![2] as Record<string, ConfigJsonValue>;
    expect(json["dockyard:secrets"]).toEqual({ value: "{}", objectValue: {}, secret: false });
    expect(backend.call("setConfigPaths")).toEqual([
      "setConfigPaths",
      "dev-alice",
      { "dockyard:secrets.web-session-key": { value: "hunter22", secret: true }, "dockyard:secrets.api-key": { value: "k-123", secret: true } },
    ]);
    expect(err).toContain("(2 as secrets)");
  });

  it("a secret --from cannot decrypt: exit 1 naming the key", async () => {
    expect(() => decryptedSecrets(planConfigCopy({ "x:s": { a: { secure: "v1:A" } } }), {}, "dev")).toThrow(/--from dev: x:s\.a: pulumi did not return its decrypted value/);
  });

  it("--platform local without --from copies the local stack (images from the laptop's registry), whose groups are local already", async () => {
    expect(await up({ platform: "local" }, { PULUMI_BACKEND_URL: "file://~/.dockyard-state", PULUMI_CONFIG_PASSPHRASE: "x" })).toBe(0);
    const [, , json] = backend.call("setConfigJson") as [string, string, Record<string, { value: string }>];
    expect(json["dockyard:registry"].value).toBe(readStackFile("local", dir).config["dockyard:registry"]);
    expect(backend.ops()).not.toContain("setConfigPaths");
    expect((backend.call("setTags")![2] as Record<string, string>)["dockyard:from"]).toBe("local");
  });

  it("--platform local --from dev: every host group's platform knob set by path, the backend's default secrets provider (passphrase on a file backend)", async () => {
    expect(await up({ platform: "local", from: "dev" }, { PULUMI_BACKEND_URL: "file://~/.dockyard-state", PULUMI_CONFIG_PASSPHRASE: "x" })).toBe(0);
    expect(backend.call("selectOrCreate")).toEqual(["selectOrCreate", "dev-alice", { secretsProvider: undefined }]);
    const groups = Object.keys(devConfig()["dockyard:hostGroups"] as object);
    expect(backend.call("setConfigPaths")).toEqual(["setConfigPaths", "dev-alice", Object.fromEntries(groups.map((g) => [`dockyard:hostGroups.${g}.platform`, { value: "local", secret: false }]))]);
    expect((backend.call("setTags")![2] as Record<string, string>)["dockyard:platform"]).toBe("local");
  });

  it("a second up keeps created, renews expires, keeps the platform it has, removes keys --from does not set", async () => {
    backend.add("dev-alice", { "dockyard:created": "2026-02-28T09:00:00Z", "dockyard:platform": "local", "dockyard:expires": "2026-02-28T17:00:00Z" });
    fs.writeFileSync(path.join(dir, "Pulumi.dev-alice.yaml"), YAML.stringify({ config: { ...devConfig(), "dockyard:old": "x" } }));
    expect(await up({ ttl: "2d" }, { PULUMI_CONFIG_PASSPHRASE: "x", PULUMI_BACKEND_URL: "file:///s" })).toBe(0);
    expect(backend.call("selectOrCreate")).toEqual(["selectOrCreate", "dev-alice", { secretsProvider: undefined }]);
    expect(backend.call("removeConfig")).toEqual(["removeConfig", "dev-alice", ["dockyard:old"]]);
    const tags = backend.call("setTags")![2] as Record<string, string>;
    expect(tags["dockyard:created"]).toBe("2026-02-28T09:00:00Z");
    expect(tags["dockyard:expires"]).toBe("2026-03-03T12:00:00Z");
    expect(tags["dockyard:platform"]).toBe("local");
  });

  it("waits while the stack is locked, says who holds it, then runs", async () => {
    backend.locked = 2;
    expect(await up()).toBe(0);
    expect(backend.ops().filter((o) => o === "up")).toHaveLength(3);
    expect(slept).toEqual([15_000, 15_000]);
    expect(err).toContain("Stack dev-alice is locked by another update; waiting up to 10m (--lock-wait)");
    expect(err).toContain("created by bob@laptop (pid 4242) at 2026-03-01T11:58:00Z");
  });

  it("gives up after --lock-wait with the holder and the pulumi cancel command (exit 1)", async () => {
    backend.locked = 100;
    expect(await up({ lockWait: "1m" })).toBe(1);
    expect(slept.reduce((a, b) => a + b, 0)).toBe(60_000);
    expect(err).toContain("stack dev-alice is still locked by another update after waiting 1m (--lock-wait):");
    expect(err).toContain("created by bob@laptop (pid 4242)");
    expect(err).toContain("npx pulumi cancel --stack dev-alice --yes");
  });

  it("a half-failed up reports what exists and the exact retry command (exit 1)", async () => {
    backend.upError = new PulumiCommandError("error: update failed", "...\nerror: update failed");
    backend.resourcesAfterUp = [
      { urn: "urn:pulumi:dev-alice::dockyard::pulumi:pulumi:Stack::dockyard-dev-alice", type: "pulumi:pulumi:Stack" },
      { urn: "urn:pulumi:dev-alice::dockyard::pulumi:providers:aws::default", type: "pulumi:providers:aws" },
      { urn: "urn:pulumi:dev-alice::dockyard::dockyard:index:DockerHost::dev-alice-app-1", type: "dockyard:index:DockerHost" },
      { urn: "urn:pulumi:dev-alice::dockyard::dockyard:index:DockerHost$aws:ebs/volume:Volume::dev-alice-app-1-data", type: "aws:ebs/volume:Volume" },
    ];
    expect(await up({ platform: "aws", ttl: "2d" })).toBe(1);
    expect(err).toContain("pulumi up of dev-alice failed: error: update failed\nWhat exists in dev-alice now (2 resources):\n  dockyard:index:DockerHost  dev-alice-app-1\n  aws:ebs/volume:Volume  dev-alice-app-1-data\n");
    expect(err).toContain("  npm run dev-server -- up --owner alice --ttl 2d --platform aws --from dev\n");
  });
});

/**
 * Issue 24 item 9: a server made on another machine (a laptop, or CI) has no stack file here.
 * Without one, `pulumi config set-all` starts a new file with no `secretsprovider`, and `pulumi up`
 * then takes the backend's default: a passphrase on a DIY backend (pkg/backend/diy/stack.go
 * DefaultSecretManager), since the CLI falls back to the state's provider only with
 * PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER (pkg/cmd/pulumi/stack/secrets.go GetSecretsManager).
 * `pulumi config refresh` writes the file from the last deployment, secrets provider included
 * (pkg/cmd/pulumi/config/config.go newConfigRefreshCmd: cloud.EditProjectStack).
 */
describe("dev-server up of a server made on another machine", () => {
  const KMS = "awskms://alias/dockyard-dev?region=eu-west-1";
  const file = () => path.join(dir, "Pulumi.dev-alice.yaml");
  /** The stack file as it was when Pulumi's up ran (absent: undefined). */
  let atUp: Record<string, unknown> | undefined;
  beforeEach(() => {
    atUp = undefined;
    backend.add("dev-alice", { "dockyard:owner": "alice", "dockyard:platform": "aws", "dockyard:created": "2026-03-01T08:00:00Z" });
    // What `pulumi config refresh --force` writes: the deployment's config and its secrets provider.
    backend.refreshConfig = async (stack) => {
      backend.calls.push(["refreshConfig", stack]);
      fs.writeFileSync(file(), YAML.stringify({ secretsprovider: KMS, encryptedkey: "AQICAHh0ZXN0a2V5", config: { "aws:region": "eu-west-1", "dockyard:old": "x" } }));
    };
    const realUp = backend.up.bind(backend);
    backend.up = async (stack, opts) => {
      atUp = fs.existsSync(file()) ? YAML.parse(fs.readFileSync(file(), "utf8")) : undefined;
      return realUp(stack, opts);
    };
  });

  it("restores the stack file from the last deployment before any config is written, so up runs with dev's KMS key", async () => {
    expect(await up(), err).toBe(0);
    expect(err).toContain("No stacks/Pulumi.dev-alice.yaml here: restoring it from the last deployment (pulumi config refresh).");
    const ops = backend.ops();
    expect(ops.indexOf("refreshConfig")).toBeGreaterThanOrEqual(0);
    expect(ops.indexOf("refreshConfig")).toBeLessThan(ops.indexOf("setConfigJson"));
    expect(atUp?.secretsprovider).toBe(KMS);
    // The restored file's keys that dev does not set are removed, as on any later up.
    expect(backend.call("removeConfig")).toEqual(["removeConfig", "dev-alice", ["dockyard:old"]]);
  });

  it("a server that was never deployed (config refresh: no previous deployment) goes on: Pulumi takes the provider its stack init recorded", async () => {
    backend.refreshConfig = async (stack) => {
      backend.calls.push(["refreshConfig", stack]);
      throw new NoDeploymentError("error: getting latest configuration: no previous deployment");
    };
    expect(await up(), err).toBe(0);
    expect(err).toContain("dev-alice was never deployed: no stack file to restore");
    expect(backend.ops()).toContain("up");
  });

  it("an aws server whose stack file names a passphrase: exit 2 naming the file, the key and the command that moves it to KMS; nothing changed", async () => {
    fs.writeFileSync(file(), YAML.stringify({ encryptionsalt: "v1:c2FsdA==:v1:aXY=:Y2lwaGVy", config: {} }));
    backend.stacks.get("dev-alice")!.tags["dockyard:platform"] = "local";
    expect(await up({ platform: "aws" }, { PULUMI_BACKEND_URL: "file:///s", PULUMI_CONFIG_PASSPHRASE: "x" })).toBe(2);
    expect(err).toContain(`stack "dev-alice": ${file()}: secretsprovider: is missing (the passphrase provider); allowed: ${KMS}`);
    expect(err).toContain(`npx pulumi stack change-secrets-provider --stack dev-alice "${KMS}"`);
    expect(err).not.toMatch(/\n\s+at /);
    expect(backend.ops()).toEqual([]);
  });

  it("a local server keeps its passphrase: no refusal", async () => {
    fs.writeFileSync(file(), YAML.stringify({ encryptionsalt: "v1:c2FsdA==:v1:aXY=:Y2lwaGVy", config: {} }));
    backend.stacks.get("dev-alice")!.tags["dockyard:platform"] = "local";
    expect(await up({}, { PULUMI_BACKEND_URL: "file:///s", PULUMI_CONFIG_PASSPHRASE: "x" }), err).toBe(0);
    expect(backend.ops()).not.toContain("refreshConfig");
  });
});

describe("dev-server input errors: exit 2, the flag and what is allowed, nothing run", () => {
  it.each([
    [{ owner: "Alice" }, /--owner "Alice": not allowed; allowed: lowercase letters a-z, digits and '-'/],
    [{ owner: "al_ice" }, /--owner "al_ice": not allowed/],
    [{ owner: "-x" }, /--owner "-x": not allowed/],
    // dev-a{42} is within the stack-name rule's 46 characters; its host name is not.
    [{ owner: "a".repeat(42) }, /--owner "a{42}": too long; host name "dev-a{42}-app-1" would have 52 characters, at most 51 are allowed .*use an owner of at most 41 characters \(with --from dev\)/],
    [{ ttl: "8" }, /--ttl "8": not allowed; allowed: a whole number and a unit \(m, h or d\), e.g. 30m, 8h or 2d, from 10m to 30d/],
    [{ ttl: "31d" }, /--ttl "31d": not allowed/],
    [{ ttl: "5m" }, /--ttl "5m": not allowed/],
    [{ ttl: "90s" }, /--ttl "90s": not allowed/],
    [{ lockWait: "3h" }, /--lock-wait "3h": not allowed; allowed: .*\(s, m, h or d\).* from 0s to 2h/],
    [{ from: "staging" }, /--from staging: [\s\S]*no such stack file; stacks: dev, [\s\S]*prod, test/],
  ])("%j", async (args, message) => {
    expect(await up(args)).toBe(2);
    expect(err).toMatch(message);
    expect(err).not.toMatch(/\n\s+at /); // no stack trace
    expect(backendMade).toBe(false);
  });

  it("--platform local on a file backend without a passphrase: exit 2 naming PULUMI_CONFIG_PASSPHRASE, no stack made", async () => {
    expect(await up({ platform: "local" }, { PULUMI_BACKEND_URL: "file://~/.dockyard-state" })).toBe(2);
    expect(err).toContain("set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) first");
    expect(backend.ops()).toEqual([]);
  });

  it("a pulumi CLI that fails (e.g. cannot be downloaded): exit 1, one line with what pulumi said, no stack trace", async () => {
    backend.listStacks = async () => {
      throw new PulumiCommandError("pulumi: fetch failed", "pulumi: fetch failed");
    };
    expect(await runList({ json: false }, deps())).toBe(1);
    expect(err).toBe("pulumi failed: pulumi: fetch failed (the pulumi CLI on PATH, else node_modules/.bin/pulumi; backend: the one you are logged in to)\n");
  });

  it("recreate and destroy of a server that does not exist: exit 2 naming the servers there", async () => {
    backend.add("dev-bob");
    expect(await runRecreate({ owner: "alice", wipeData: false, lockWait: "10m" }, deps())).toBe(2);
    expect(err).toContain("--owner alice: no dev server dev-alice in backend file:///tmp/state; dev servers there: dev-bob (create one with: npm run dev-server -- up --owner alice)");
    expect(await runDestroy({ owner: "alice", lockWait: "10m" }, deps())).toBe(2);
    expect(backend.ops()).toEqual([]);
  });
});

describe("owner, TTL and durations", () => {
  it("owner names: DNS label, lowercase; length from the longest host name", () => {
    expect(ownerProblem("alice")).toBeUndefined();
    expect(ownerProblem("bob-2")).toBeUndefined();
    expect(ownerProblem("9lives")).toBeUndefined();
    expect(ownerProblem("bob.smith")).toMatch(/not allowed/);
    expect(ownerProblem("")).toMatch(/not allowed/);
    // dev-<owner>-app-<count>: count 12 makes the name one character longer than count 1.
    const fits = "a".repeat(51 - "dev--app-12".length);
    expect(hostNameProblem(fits, [{ name: "app", count: 12 }])).toBeUndefined();
    expect(hostNameProblem(`${fits}a`, [{ name: "app", count: 12 }])).toMatch(/"dev-a+-app-12" would have 52 characters.*at most 40 characters/);
  });

  it("durations: units, bounds, formatting", () => {
    expect(parseDuration("30m", "--ttl", { min: TTL_MIN_MS, max: TTL_MAX_MS })).toBe(1_800_000);
    expect(parseDuration("8h", "--ttl", { min: TTL_MIN_MS, max: TTL_MAX_MS })).toBe(28_800_000);
    expect(parseDuration("30d", "--ttl", { min: TTL_MIN_MS, max: TTL_MAX_MS })).toBe(TTL_MAX_MS);
    expect(parseDuration("0s", "--lock-wait", { min: 0, max: 1e7, seconds: true })).toBe(0);
    expect(() => parseDuration("1.5h", "--ttl", { min: TTL_MIN_MS, max: TTL_MAX_MS })).toThrow(DockyardError);
    expect(formatDuration(90_061_000)).toBe("1d 1h");
    expect(formatDuration(45 * 60_000)).toBe("45m");
    expect(formatDuration(0)).toBe("0s");
  });

  it("config paths: bare names, quoted where Pulumi's path syntax needs it", () => {
    expect(configPath("dockyard:hostGroups", ["app", "platform"])).toBe("dockyard:hostGroups.app.platform");
    expect(configPath("a:b", ["x.y", 'q"t', "n[0]"])).toBe('a:b["x.y"]["q\\"t"]["n[0]"]');
  });

  it("planConfigCopy: a wholly secure value is set only as a secret; plain scalars as strings", () => {
    const copy = planConfigCopy({ "aws:region": "eu-west-1", "x:token": { secure: "AAAB" }, "dockyard:replicas": { web: 2 } });
    expect(copy.json).toEqual({ "aws:region": { value: "eu-west-1", secret: false }, "dockyard:replicas": { value: '{"web":2}', objectValue: { web: 2 }, secret: false } });
    expect(copy.secrets).toEqual([{ key: "x:token", segments: [] }]);
  });
});

describe("dev-server recreate", () => {
  const urn = (chain: string, name: string) => `urn:pulumi:dev-alice::dockyard::${chain}::${name}`;
  const awsHost = urn("dockyard:index:DockerHost", "dev-alice-app-1");
  const localHost = urn("dockyard:index:LocalHost", "dev-alice-app-2");
  const resources: StateResource[] = [
    { urn: urn("pulumi:pulumi:Stack", "dockyard-dev-alice"), type: "pulumi:pulumi:Stack" },
    { urn: awsHost, type: "dockyard:index:DockerHost" },
    { urn: urn("dockyard:index:DockerHost$aws:ec2/instance:Instance", "dev-alice-app-1-instance"), type: "aws:ec2/instance:Instance", parent: awsHost },
    { urn: urn("dockyard:index:DockerHost$aws:ebs/volume:Volume", "dev-alice-app-1-data"), type: "aws:ebs/volume:Volume", parent: awsHost },
    { urn: urn("dockyard:index:DockerHost$aws:ec2/eip:Eip", "dev-alice-app-1-eip"), type: "aws:ec2/eip:Eip", parent: awsHost },
    { urn: localHost, type: "dockyard:index:LocalHost" },
    { urn: urn("dockyard:index:LocalHost$docker:index/container:Container", "dev-alice-app-2-machine"), type: "docker:index/container:Container", parent: localHost },
    { urn: urn("dockyard:index:LocalHost$docker:index/volume:Volume", "dev-alice-app-2-data"), type: "docker:index/volume:Volume", parent: localHost },
    // The fleet's containers and volumes are not hosts: never replaced by recreate.
    { urn: urn("dockyard:index:ContainerFleet", "fleet"), type: "dockyard:index:ContainerFleet" },
    { urn: urn("dockyard:index:ContainerFleet$docker:index/container:Container", "fleet-web-1"), type: "docker:index/container:Container", parent: urn("dockyard:index:ContainerFleet", "fleet") },
    { urn: urn("dockyard:index:ContainerFleet$docker:index/volume:Volume", "fleet-web-data"), type: "docker:index/volume:Volume", parent: urn("dockyard:index:ContainerFleet", "fleet") },
  ];

  it("replaceUrns: the machines of DockerHost and LocalHost; with --wipe-data their data volumes too", () => {
    expect(replaceUrns(resources, false)).toEqual([resources[2].urn, resources[6].urn]);
    expect(replaceUrns(resources, true)).toEqual([resources[2].urn, resources[3].urn, resources[6].urn, resources[7].urn]);
  });

  /**
   * A dev server's state as `pulumi stack export` records it (one host, one service with a
   * volume and a published port, so a proxy): each resource's parent, its provider reference
   * (`<provider urn>::<id>`) and `dependencies` (the custom resources it depends on, dependsOn
   * and inputs alike; a dependsOn on the DockerEngine component is recorded as its custom
   * children: the Node SDK's getAllTransitivelyReferencedResourceURNs). Names as index.ts and
   * components/fleet.ts make them. `platform` says which host component (DockerHost: the EC2
   * instance and EBS volume; LocalHost: a container and a Docker volume on the deployer's engine).
   */
  function serverState(platform: "aws" | "local"): { resources: StateResource[]; machine: string; data: string; inEngine: string[]; kept: string[] } {
    const u = (chain: string, name: string) => `urn:pulumi:dev-alice::dockyard::${chain}::${name}`;
    const list: StateResource[] = [];
    const add = (r: StateResource) => (list.push(r), r.urn);
    const stack = add({ urn: u("pulumi:pulumi:Stack", "dockyard-dev-alice"), type: "pulumi:pulumi:Stack" });
    const cmdProvider = add({ urn: u("pulumi:providers:command", "default_1_0_1"), type: "pulumi:providers:command", id: "5f0c6f2e-command" });
    const ref = (urn: string) => `${urn}::${list.find((r) => r.urn === urn)!.id}`;
    const kept: string[] = [];
    let machine: string, data: string, reach: string;
    if (platform === "aws") {
      const aws = add({ urn: u("pulumi:providers:aws", "default_7_4_0"), type: "pulumi:providers:aws", id: "0d8e1f2a-aws" });
      const host = add({ urn: u("dockyard:index:DockerHost", "dev-alice-app-1"), type: "dockyard:index:DockerHost", parent: stack });
      const t = (type: string, name: string, id: string, dependencies: string[] = []) => add({ urn: u(`dockyard:index:DockerHost$${type}`, name), type, parent: host, id, provider: ref(aws), dependencies });
      data = t("aws:ebs/volume:Volume", "dev-alice-app-1-data", "vol-0a1b2c3d4e5f60718");
      machine = t("aws:ec2/instance:Instance", "dev-alice-app-1-instance", "i-0123456789abcdef0");
      kept.push(t("aws:ec2/volumeAttachment:VolumeAttachment", "dev-alice-app-1-data-attachment", "vai-1", [machine, data]));
      const eip = t("aws:ec2/eip:Eip", "dev-alice-app-1-eip", "eipalloc-1");
      reach = t("aws:ec2/eipAssociation:EipAssociation", "dev-alice-app-1-eip-association", "eipassoc-1", [eip, machine]);
      // The host's own drain wait (components/host.ts) runs on the deployer's machine, under the host: recreate replaces it through the instance.
      kept.push(eip, t("command:local:Command", "dev-alice-app-1-drain", "drain-1", [machine]));
      kept.push(add({ urn: u("dockyard:index:StatusAlarms$aws:cloudwatch/metricAlarm:MetricAlarm", "dev-alice-app-1-status"), type: "aws:cloudwatch/metricAlarm:MetricAlarm", id: "alarm-1", provider: ref(aws), dependencies: [machine] }));
    } else {
      const deployer = add({ urn: u("pulumi:providers:docker", "deployer-engine"), type: "pulumi:providers:docker", id: "9a8b7c6d-deployer" });
      // The host image on the deployer's engine: not in a host's engine, never replaced.
      const image = add({ urn: u("docker:index/remoteImage:RemoteImage", "machine-image"), type: "docker:index/remoteImage:RemoteImage", id: "sha256:1111", provider: ref(deployer) });
      const host = add({ urn: u("dockyard:index:LocalHost", "dev-alice-app-1"), type: "dockyard:index:LocalHost", parent: stack });
      const key = add({ urn: u("dockyard:index:LocalHost$tls:index/privateKey:PrivateKey", "dev-alice-app-1-host-key"), type: "tls:index/privateKey:PrivateKey", parent: host, id: "key-1" });
      data = add({ urn: u("dockyard:index:LocalHost$docker:index/volume:Volume", "dev-alice-app-1-data"), type: "docker:index/volume:Volume", parent: host, id: "dev-alice-app-1-data", provider: ref(deployer) });
      machine = add({ urn: u("dockyard:index:LocalHost$docker:index/container:Container", "dev-alice-app-1-machine"), type: "docker:index/container:Container", parent: host, id: "c0ffee01", provider: ref(deployer), dependencies: [data, image, key] });
      reach = machine;
      kept.push(image, key);
    }
    const engine = add({ urn: u("dockyard:index:DockerEngine", "dev-alice-app-1-engine"), type: "dockyard:index:DockerEngine", parent: stack });
    const ready = add({ urn: u("dockyard:index:DockerEngine$command:local:Command", "dev-alice-app-1-engine-ready"), type: "command:local:Command", parent: engine, id: "ready-1", provider: ref(cmdProvider), dependencies: [reach] });
    const fleet = add({ urn: u("dockyard:index:ContainerFleet", "fleet"), type: "dockyard:index:ContainerFleet", parent: stack });
    const hostDocker = add({ urn: u("dockyard:index:ContainerFleet$pulumi:providers:docker", "fleet-dev-alice-app-1"), type: "pulumi:providers:docker", parent: fleet, id: "3c2b1a09-host", dependencies: [ready] });
    kept.push(hostDocker);
    const onHost = (type: string, name: string, id: string, dependencies: string[]) =>
      add({ urn: u(`dockyard:index:ContainerFleet$${type}`, name), type, parent: fleet, id, provider: ref(type.startsWith("command:") ? cmdProvider : hostDocker), dependencies: [ready, ...dependencies] });
    const net = onHost("docker:index/network:Network", "fleet-dev-alice-app-1-web-net", "net-1", []);
    const vol = onHost("docker:index/volume:Volume", "fleet-dev-alice-app-1-web-data", "dev-alice-web-data", []);
    const pull = onHost("command:local:Command", "fleet-dev-alice-app-1-web-pull", "pull-1", [reach]);
    const image = onHost("docker:index/remoteImage:RemoteImage", "fleet-dev-alice-app-1-web-image", "sha256:2222", [pull]);
    const replica = onHost("docker:index/container:Container", "fleet-dev-alice-app-1-web-1-0a1b2c3d", "c0ffee02", [image, net, vol]);
    const pids = onHost("command:local:Command", "fleet-dev-alice-app-1-web-1-0a1b2c3d-pids-limit", "pids-1", [replica, reach]);
    const config = onHost("command:local:Command", "fleet-dev-alice-app-1-proxy-config", "cfg-1", [reach]);
    const proxyPull = onHost("command:local:Command", "fleet-dev-alice-app-1-proxy-pull", "pull-2", [reach]);
    const proxyImage = onHost("docker:index/remoteImage:RemoteImage", "fleet-dev-alice-app-1-proxy-image", "sha256:3333", [proxyPull]);
    const proxy = onHost("docker:index/container:Container", "fleet-dev-alice-app-1-proxy", "c0ffee03", [proxyImage, config, net]);
    const proxyPids = onHost("command:local:Command", "fleet-dev-alice-app-1-proxy-pids-limit", "pids-2", [proxy, reach]);
    const gate = onHost("command:local:Command", "fleet-dev-alice-app-1-serving", "gate-1", [replica, proxy, reach]);
    kept.push(image, proxyImage);
    return { resources: list, machine, data, inEngine: [ready, net, vol, pull, replica, pids, config, proxyPull, proxy, proxyPids, gate], kept };
  }

  for (const platform of ["aws", "local"] as const) {
    it(`replaceUrns with --wipe-data (${platform}): also everything in the host's engine and on its disks, found by provider and dependencies (issue 24)`, () => {
      const s = serverState(platform);
      const wiped = replaceUrns(s.resources, true);
      // pulumi pkg/cmd/pulumi/operations/up.go: --replace marks each URN for replacement in this update
      // (step_generator.go isTargetedReplace), the rest of the program updates as usual.
      expect(new Set(wiped)).toEqual(new Set([s.machine, s.data, ...s.inEngine]));
      for (const k of s.kept) expect(wiped).not.toContain(k);
      // In state order, each once.
      expect(wiped).toEqual(s.resources.map((r) => r.urn).filter((x) => wiped.includes(x)));
      // Without --wipe-data the engine's data-root (on the kept volume) still has them: only the machine.
      expect(replaceUrns(s.resources, false)).toEqual([s.machine]);
    });
  }

  it("recreate --wipe-data runs one up replacing the machine, the data volume and what lived on them", async () => {
    const s = serverState("aws");
    backend.add("dev-alice", {}, { resources: s.resources });
    expect(await runRecreate({ owner: "alice", wipeData: true, lockWait: "10m" }, deps())).toBe(0);
    expect(backend.ops()).toEqual(["refreshConfig", "resources", "up"]);
    expect(out).toContain("Recreated the hosts of dev-alice with empty data volumes");
    const [, , replace] = backend.call("up") as [string, string, string[]];
    expect(new Set(replace)).toEqual(new Set([s.machine, s.data, ...s.inEngine]));
    expect(err).toContain(`Replacing ${2 + s.inEngine.length} resources of dev-alice (machines, data volumes and what their engines held)`);
  });

  it("runs up with replace, restoring a missing stack file first", async () => {
    backend.add("dev-alice", {}, { resources });
    expect(await runRecreate({ owner: "alice", wipeData: false, lockWait: "10m" }, deps())).toBe(0);
    expect(backend.ops()).toEqual(["refreshConfig", "resources", "up"]);
    expect(backend.call("up")).toEqual(["up", "dev-alice", [resources[2].urn, resources[6].urn]]);
    expect(out).toContain("Recreated the hosts of dev-alice; their data volumes were kept");
  });

  it("recreate --wipe-data of a server with local hosts: exit 2 naming the Docker volumes, nothing run (a same-named volume is the old one)", async () => {
    // moby's VolumeCreate of an existing name returns that volume (tried here: `docker volume create` twice, one CreatedAt),
    // and the LocalHost data volume keeps its name (`<host>-data`, components/local-host.ts) and is retainOnDelete: a
    // "new" one would be the old one with its data.
    const s = serverState("local");
    backend.add("dev-alice", {}, { resources: s.resources });
    fs.writeFileSync(path.join(dir, "Pulumi.dev-alice.yaml"), "config: {}\n");
    expect(await runRecreate({ owner: "alice", wipeData: true, lockWait: "10m" }, deps())).toBe(2);
    expect(backend.ops()).not.toContain("up");
    expect(err).toContain("--wipe-data");
    expect(err).toContain("dev-alice-app-1-data");
    expect(err).toContain("npm run dev-server -- destroy --owner alice");
    expect(err).toContain("docker volume rm dev-alice-app-1-data");
    expect(err).not.toMatch(/\n\s+at /);
  });

  it("a failed recreate names what exists and the retry command", async () => {
    backend.add("dev-alice", {}, { resources });
    backend.resourcesAfterUp = resources;
    backend.upError = new PulumiCommandError("error: boom", "error: boom");
    fs.writeFileSync(path.join(dir, "Pulumi.dev-alice.yaml"), "config: {}\n");
    expect(await runRecreate({ owner: "alice", wipeData: false, lockWait: "10m" }, deps())).toBe(1);
    expect(err).toContain("pulumi up of dev-alice failed: error: boom");
    expect(err).toContain("  npm run dev-server -- recreate --owner alice\n");
  });
});

describe("dev-server list, reap, destroy", () => {
  beforeEach(() => {
    backend.add("dev", {});
    backend.add("dev-alice", { "dockyard:owner": "alice", "dockyard:platform": "aws", "dockyard:created": "2026-03-01T08:00:00Z", "dockyard:expires": "2026-03-01T16:00:00Z" }, { lastUpdate: "2026-03-01T08:05:00Z" });
    backend.add("dev-bob", { "dockyard:owner": "bob", "dockyard:platform": "local", "dockyard:created": "2026-02-27T12:00:00Z", "dockyard:expires": "2026-03-01T10:00:00Z" });
    backend.add("dev-carol", { "dockyard:owner": "carol", "dockyard:expires": "2026-03-01T11:59:59Z" });
    backend.add("dev-old", {});
  });

  it("list: every dev-* stack with owner, platform, age, expiry, last update", async () => {
    expect(await runList({ json: false }, deps())).toBe(0);
    expect(out).toBe(
      [
        "STACK      OWNER  PLATFORM  AGE  EXPIRES         LAST UPDATE",
        "dev-alice  alice  aws       4h   in 4h           2026-03-01T08:05:00Z",
        "dev-bob    bob    local     2d   expired 2h ago  never",
        "dev-carol  carol  -         -    expired 1s ago  never",
        "dev-old    -      -         -    never (no tag)  never",
        "",
      ].join("\n"),
    );
    out = "";
    await runList({ json: true }, deps());
    const json = JSON.parse(out);
    expect(json[0]).toEqual({ stack: "dev-alice", owner: "alice", platform: "aws", created: "2026-03-01T08:00:00Z", expires: "2026-03-01T16:00:00Z", ageMs: 4 * 3_600_000, expiresInMs: 4 * 3_600_000, lastUpdate: "2026-03-01T08:05:00Z" });
  });

  it("reapSelection: expired at or before now; no tag kept", () => {
    const s = (exp?: string) => serverInfo("dev-x", exp ? { "dockyard:expires": exp } : {}, NOW);
    const { expired, noExpiry } = reapSelection([s("2026-03-01T12:00:00Z"), s("2026-03-01T12:00:01Z"), s(), s("soon")]);
    expect(expired.map((x) => x.expires)).toEqual(["2026-03-01T12:00:00Z"]);
    expect(noExpiry).toHaveLength(2);
  });

  it("reap --dry-run names the expired ones and destroys nothing", async () => {
    expect(await runReap({ dryRun: true, lockWait: "10m" }, deps())).toBe(0);
    expect(out).toBe("would destroy dev-bob (owner bob, expired 2h ago)\nwould destroy dev-carol (owner carol, expired 1s ago)\n");
    expect(err).toContain("dev-old: no readable dockyard:expires tag, not reaped");
    expect(backend.ops()).toEqual([]);
  });

  it("reap destroys and removes each expired server (stack file restored first); one failure is exit 1, the others still go", async () => {
    backend.destroyError["dev-bob"] = new PulumiCommandError("error: docker unreachable", "");
    expect(await runReap({ dryRun: false, lockWait: "10m" }, deps())).toBe(1);
    expect(backend.calls).toEqual([
      ["refreshConfig", "dev-bob"],
      ["resources", "dev-bob"],
      ["destroy", "dev-bob"],
      ["refreshConfig", "dev-carol"],
      ["resources", "dev-carol"],
      ["destroy", "dev-carol"],
      ["remove", "dev-carol"],
    ]);
    expect(out).toContain("FAILED to destroy dev-bob (owner bob, expired 2h ago): error: docker unreachable");
    expect(out).toContain("destroyed dev-carol");
    expect(err).toContain("1 of 2 expired dev servers could not be destroyed: dev-bob");
  });

  it("reap --platform aws leaves local servers (CI cannot reach their Docker Engine); untagged servers count as aws", async () => {
    expect(await runReap({ dryRun: true, lockWait: "10m", platform: "aws" }, deps())).toBe(0);
    expect(out).toBe("would destroy dev-carol (owner carol, expired 1s ago)\n");
    out = "";
    expect(await runReap({ dryRun: true, lockWait: "10m", platform: "local" }, deps())).toBe(0);
    expect(out).toBe("would destroy dev-bob (owner bob, expired 2h ago)\n");
  });

  it("reap keeps a server extended since the list was read", async () => {
    const realGetTags = backend.getTags.bind(backend);
    let reads = 0;
    backend.getTags = async (stack) => {
      const tags = await realGetTags(stack);
      if (stack === "dev-bob" && ++reads > 1) tags["dockyard:expires"] = "2026-03-02T00:00:00Z";
      return tags;
    };
    expect(await runReap({ dryRun: false, lockWait: "10m" }, deps())).toBe(0);
    expect(out).toContain("kept dev-bob: extended meanwhile, expires 2026-03-02T00:00:00Z");
    expect(backend.calls).not.toContainEqual(["destroy", "dev-bob"]);
    expect(backend.calls).toContainEqual(["remove", "dev-carol"]);
  });

  it("reap: a server removed meanwhile (its owner's destroy) is gone, not a failure", async () => {
    const realGetTags = backend.getTags.bind(backend);
    let reads = 0;
    backend.getTags = async (stack) => {
      // The owner's `dev-server destroy` removed dev-bob after reap listed it: the CLI says "no stack named".
      if (stack === "dev-bob" && ++reads > 1) throw new StackMissingError("error: no stack named 'dev-bob' found");
      return realGetTags(stack);
    };
    expect(await runReap({ dryRun: false, lockWait: "10m" }, deps()), err).toBe(0);
    expect(out).toContain("gone dev-bob: removed since the list was read");
    expect(out).toContain("destroyed dev-carol");
    expect(backend.calls).not.toContainEqual(["destroy", "dev-bob"]);
  });

  it("destroy and reap name each data volume they leave in the account (retainOnDelete: Pulumi drops it from the state, the cloud keeps it)", async () => {
    const host = "urn:pulumi:dev-bob::dockyard::dockyard:index:DockerHost::dev-bob-app-1";
    backend.stacks.get("dev-bob")!.resources = [
      { urn: host, type: "dockyard:index:DockerHost" },
      { urn: `${host.replace("DockerHost::", "DockerHost$aws:ebs/volume:Volume::")}-data`, type: "aws:ebs/volume:Volume", parent: host, id: "vol-0a1b2c3d4e5f60718" },
      { urn: `${host.replace("DockerHost::", "DockerHost$aws:ec2/instance:Instance::")}-instance`, type: "aws:ec2/instance:Instance", parent: host, id: "i-0123456789abcdef0" },
    ];
    expect(await runReap({ dryRun: false, lockWait: "10m" }, deps()), err).toBe(0);
    expect(out).toContain("destroyed dev-bob (owner bob, expired 2h ago); kept in the account: data volume vol-0a1b2c3d4e5f60718 (dev-bob-app-1-data)");
    expect(out).not.toContain("i-0123456789abcdef0");
  });

  it("list, reap, up, recreate and destroy ask the backend for the dev-* stacks only (a dev-server role may read no other stack's state)", async () => {
    fs.writeFileSync(path.join(dir, "Pulumi.dev-alice.yaml"), "config: {}\n");
    await runList({ json: false }, deps());
    await runReap({ dryRun: true, lockWait: "10m" }, deps());
    await runRecreate({ owner: "alice", wipeData: false, lockWait: "10m" }, deps());
    await runDestroy({ owner: "alice", lockWait: "10m" }, deps());
    await runUp({ owner: "alice", ttl: "8h", lockWait: "10m" }, deps());
    expect(backend.listed.length).toBeGreaterThanOrEqual(5);
    expect(new Set(backend.listed)).toEqual(new Set(["dev-"]));
  });

  it("destroy: destroy then remove, waiting on a lock; says what it leaves", async () => {
    fs.writeFileSync(path.join(dir, "Pulumi.dev-alice.yaml"), "config: {}\n");
    backend.locked = 1;
    expect(await runDestroy({ owner: "alice", lockWait: "10m" }, deps())).toBe(0);
    expect(backend.calls).toEqual([["resources", "dev-alice"], ["destroy", "dev-alice"], ["destroy", "dev-alice"], ["remove", "dev-alice"]]);
    expect(err).toContain("locked by another update");
    expect(out).toContain("EBS data volumes of aws hosts are retained (retainOnDelete)");
  });
});

describe("accessLines", () => {
  const spec = { region: "eu-west-1", access: { mode: "public" as const, sshCidrs: [], ingressCidrs: [] }, services: [{ name: "web", publishPort: 8080 }, { name: "db" }] } as unknown as Parameters<typeof accessLines>[0];
  it("public access: ssh to the address with the key pinned, no ProxyCommand; a local host: through docker exec, URLs at its endpoints", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHmN8vjV0yIXWcB5DUp0hL1z+H3y7aGIsfZz8VddUeMv";
    const pub = accessLines({ ...spec, access: { ...spec.access, mode: "public" } }, "aws", {
      hostsByName: { h1: { platform: "aws", sshUser: "admin", sshTarget: "203.0.113.7", publicIp: "203.0.113.7", hostPublicKey: key } },
      services: { web: { hosts: ["h1"] } },
    }).join("\n");
    expect(pub).toMatch(/^ {4}ssh -o StrictHostKeyChecking=yes .* -- admin@203\.0\.113\.7$/m);
    expect(pub).not.toContain("ProxyCommand");
    expect(pub).toContain("web: http://203.0.113.7:8080/  (h1)");
    const local = accessLines(spec, "local", {
      hostsByName: { h1: { platform: "local", sshUser: "admin", sshTarget: "dev-alice-app-1", publicIp: "127.0.0.1", endpoints: { "8080": "127.0.0.1:49153" }, hostPublicKey: key } },
      services: { web: { hosts: ["h1"] }, db: { hosts: ["h1"] } },
    }).join("\n");
    expect(local).toContain("dockyard-local %h %p");
    expect(local).toMatch(/ -- admin@dev-alice-app-1$/m);
    expect(local).toContain("web: http://127.0.0.1:49153/  (h1)");
    expect(local).toContain("db: no publishPort (reachable from the host only)");
  });
});
