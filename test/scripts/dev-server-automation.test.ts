/**
 * The real DevServerBackend (scripts/lib/automation.ts): Pulumi's own Automation API
 * (LocalWorkspace and Stack from @pulumi/pulumi/automation) runs a stand-in `pulumi` put
 * first on PATH, which logs every command line and answers as the CLI does (output shapes
 * from pulumi/pulumi: `stack ls --json` stackSummaryJSON in pkg/cmd/pulumi/stack/stack_list.go,
 * `stack tag ls --json` a name -> value map, "no stack named '<s>' found" from
 * pkg/backend/backenderr, the DIY lock message from pkg/backend/diy/lock.go checkForLock).
 *
 * What this proves: the exact `pulumi` command lines and working directory the adapter
 * makes the Automation API send (stack select/init with the secrets provider, config
 * set-all --json and --path --secret, tag set/ls, up with --replace, export, destroy,
 * stack rm), that it passes the CLI's version check, streams up's output, and maps the
 * CLI's lock and missing-stack errors to ours; and `dev-server up` end to end through it.
 * The backend is a file:// directory holding each stand-in stack's checkpoint: the adapter
 * lists dev servers from its keys (scripts/lib/stack-keys.ts), and the stand-in's `stack ls`
 * reads every checkpoint as pkg/backend/diy/backend.go ListStacks does, so a prod checkpoint
 * nobody can read (a directory) fails it, as AccessDenied on prod.json fails the reaper's.
 * What it does not prove: that the real CLI accepts these arguments with this meaning (read
 * in its source, not run: the Pulumi CLI cannot be downloaded here), that it copies config
 * into stacks/ (stackConfigDir) as described, or anything a real backend or update does.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runList, runReap, runRecreate, runUp } from "../../scripts/dev-server";
import { NoDeploymentError, StackLockedError, StackMissingError, automationBackend, type DevServerBackend } from "../../scripts/lib/automation";
import { STACKS_DIR } from "../../stacks";
import { ROOT } from "./cli";

/** The stand-in CLI: state in $FAKE_PULUMI_STATE, one JSON line per call in $FAKE_PULUMI_LOG. */
const STAND_IN = `#!/usr/bin/env node
const fs = require("fs");
const argv = process.argv.slice(2);
const statePath = process.env.FAKE_PULUMI_STATE;
const state = JSON.parse(fs.readFileSync(statePath, "utf8"));
fs.appendFileSync(process.env.FAKE_PULUMI_LOG, JSON.stringify({ argv, cwd: process.cwd(), automation: process.env.PULUMI_AUTOMATION_API, fallback: process.env.PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER }) + "\\n");
const save = () => fs.writeFileSync(statePath, JSON.stringify(state));
const flag = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const stack = flag("--stack");
const fail = (msg, code = 255) => { process.stderr.write(msg + "\\n"); process.exit(code); };
const has = (s) => s in state.stacks;
const cmd = argv.filter((a) => !a.startsWith("-")).slice(0, 2).join(" ");
if (argv[0] === "version") { process.stdout.write("v3.265.0\\n"); process.exit(0); }
if (cmd.startsWith("stack select")) { if (!has(stack)) fail("error: no stack named '" + stack + "' found"); process.exit(0); }
// A file:// backend's checkpoints: <dir>/.pulumi/stacks/dockyard/<stack>.json (pkg/backend/diy/store.go).
const url = process.env.PULUMI_BACKEND_URL || "";
const stacksDir = url.startsWith("file://") ? require("path").join(url.slice(7), ".pulumi", "stacks", "dockyard") : undefined;
const checkpoint = (s) => require("path").join(stacksDir, s + ".json");
if (cmd.startsWith("stack init")) { state.stacks[argv[2]] = { tags: {}, secretsProvider: flag("--secrets-provider") || null }; save(); if (stacksDir) fs.writeFileSync(checkpoint(argv[2]), "{}"); process.exit(0); }
if (cmd === "stack ls") {
  // pkg/backend/diy/backend.go ListStacks: every key under .pulumi/stacks (getStacks), then getCheckpoint of EACH stack,
  // only a missing checkpoint tolerated: one the caller cannot read fails the whole list.
  if (stacksDir) for (const f of fs.readdirSync(stacksDir)) { try { fs.readFileSync(require("path").join(stacksDir, f)); } catch (e) { fail("error: could not get checkpoint: " + e.message); } }
  process.stdout.write(JSON.stringify(Object.keys(state.stacks).map((name) => ({ name, current: false, lastUpdate: "2026-03-01T08:05:00.000Z", updateInProgress: false, resourceCount: 3 })))); process.exit(0);
}
if (argv[0] === "whoami") { process.stdout.write(JSON.stringify({ user: "alice", url: process.env.FAKE_PULUMI_LOGGED_IN })); process.exit(0); }
if (cmd === "stack tag") {
  if (argv[2] === "set") { state.stacks[stack].tags[argv[3]] = argv[4]; save(); process.exit(0); }
  if (argv[2] === "ls") { process.stdout.write(JSON.stringify(state.stacks[stack].tags)); process.exit(0); }
}
if (argv[0] === "config" && argv[1] === undefined) fail("unexpected");
// pkg/cmd/pulumi/config/config.go newConfigRefreshCmd: "getting latest configuration: %w" of backenderr.ErrNoPreviousDeployment.
if (argv[0] === "config" && argv[1] === "refresh" && state.stacks[stack] && state.stacks[stack].neverDeployed) fail("error: getting latest configuration: no previous deployment");
if (argv[0] === "config" && argv.includes("--show-secrets")) { process.stdout.write(JSON.stringify(state.config[stack] || {})); process.exit(0); }
if (argv[0] === "config") process.exit(0);
if (argv[0] === "up" || argv[0] === "destroy") {
  if (state.lockedBy) fail("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with \`pulumi cancel\`.\\n  file:///state/.pulumi/locks/organization/dockyard/" + stack + "/x.json: created by " + state.lockedBy + " (pid 7) at 2026-03-01T11:58:00Z");
  process.stdout.write((argv[0] === "up" ? "Updating" : "Destroying") + " (" + stack + ")\\n");
  if (state.failUp && argv[0] === "up") fail("error: update failed", 1);
  process.exit(0);
}
if (cmd === "stack output") { process.stdout.write(JSON.stringify(state.outputs)); process.exit(0); }
if (cmd === "stack history") { process.stdout.write("[]"); process.exit(0); }
if (cmd === "stack export") { process.stdout.write(JSON.stringify({ version: 3, deployment: { resources: state.resources } })); process.exit(0); }
if (cmd.startsWith("stack rm")) { const s = argv.filter((a) => !a.startsWith("-"))[2]; delete state.stacks[s]; save(); if (stacksDir) fs.rmSync(checkpoint(s), { force: true }); process.exit(0); }
fail("stand-in pulumi: unexpected command " + JSON.stringify(argv), 2);
`;

let bin: string;
let logFile: string;
let stateFile: string;
const savedPath = process.env.PATH;

interface State {
  stacks: Record<string, { tags: Record<string, string>; secretsProvider: string | null; neverDeployed?: boolean }>;
  config: Record<string, unknown>;
  outputs: Record<string, unknown>;
  resources: unknown[];
  lockedBy?: string;
  failUp?: boolean;
}
/** The file:// backend the adapter is given: each stack of the stand-in's state has its checkpoint there. */
let stateDir: string;
const checkpointsDir = () => path.join(stateDir, ".pulumi", "stacks", "dockyard");
const writeState = (s: Partial<State>) => {
  fs.writeFileSync(stateFile, JSON.stringify({ stacks: {}, config: {}, outputs: {}, resources: [], ...s }));
  fs.rmSync(stateDir, { recursive: true, force: true });
  fs.mkdirSync(checkpointsDir(), { recursive: true });
  for (const name of Object.keys(s.stacks ?? {})) fs.writeFileSync(path.join(checkpointsDir(), `${name}.json`), "{}");
};
const readState = () => JSON.parse(fs.readFileSync(stateFile, "utf8")) as State;
/** The logged command lines, without `version` (the Automation API's once-per-workspace check). */
const calls = () =>
  fs
    .readFileSync(logFile, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { argv: string[]; cwd: string; automation: string; fallback?: string });
const argvs = () => calls().map((c) => c.argv).filter((a) => a[0] !== "version");

beforeAll(() => {
  bin = fs.mkdtempSync(path.join(os.tmpdir(), "stand-in-pulumi-"));
  fs.writeFileSync(path.join(bin, "pulumi"), STAND_IN, { mode: 0o755 });
  process.env.PATH = `${bin}${path.delimiter}${savedPath}`;
  logFile = path.join(bin, "log.jsonl");
  stateFile = path.join(bin, "state.json");
  stateDir = path.join(bin, "backend");
  process.env.FAKE_PULUMI_LOG = logFile;
  process.env.FAKE_PULUMI_STATE = stateFile;
});
afterAll(() => {
  process.env.PATH = savedPath;
});
beforeEach(() => {
  fs.writeFileSync(logFile, "");
  writeState({});
});

let backend: DevServerBackend;
beforeEach(async () => {
  backend = await automationBackend(ROOT, { ...process.env, PULUMI_BACKEND_URL: `file://${stateDir}` });
});
/** The adapter on Pulumi Cloud (no DIY keys to list: `pulumi stack ls` answers from the service). */
const cloudBackend = () => automationBackend(ROOT, { ...process.env, PULUMI_BACKEND_URL: "https://api.pulumi.com" });

describe("the Automation API adapter's command lines (stand-in pulumi on PATH)", () => {
  it("checks the CLI version first, runs in the repository root, as the Automation API", async () => {
    const cloud = await cloudBackend();
    await cloud.listStacks("dev-");
    const [first, ...rest] = calls();
    expect(first.argv).toEqual(["version"]);
    expect(rest[0].argv).toEqual(["stack", "ls", "--json", "--non-interactive"]);
    expect(rest[0].cwd).toBe(ROOT);
    expect(rest[0].automation).toBe("true");
    expect(cloud.location).toBe("backend https://api.pulumi.com");
    expect(backend.location).toBe(`backend file://${stateDir}`);
  });

  it("selectOrCreate: select, and on 'no stack named' init with the secrets provider", async () => {
    expect(await backend.selectOrCreate("dev-alice", { secretsProvider: "awskms://alias/dockyard-dev?region=eu-west-1" })).toEqual({ created: true });
    expect(await backend.selectOrCreate("dev-alice", {})).toEqual({ created: false });
    expect(argvs()).toEqual([
      ["stack", "select", "--stack", "dev-alice", "--non-interactive"],
      ["stack", "init", "dev-alice", "--secrets-provider", "awskms://alias/dockyard-dev?region=eu-west-1", "--non-interactive"],
      ["stack", "select", "--stack", "dev-alice", "--non-interactive"],
    ]);
    expect(readState().stacks["dev-alice"].secretsProvider).toBe("awskms://alias/dockyard-dev?region=eu-west-1");
  });

  it("without a secrets provider, stack init gets none (the backend's default: a passphrase on a DIY backend)", async () => {
    await backend.selectOrCreate("dev-bob", {});
    expect(argvs()[1]).toEqual(["stack", "init", "dev-bob", "--non-interactive"]);
  });

  it("config: set-all --json with whole values, set-all --path with --secret/--plaintext, rm-all, refresh, decrypted read", async () => {
    writeState({ stacks: { "dev-alice": { tags: {}, secretsProvider: null } }, config: { dev: { "dockyard:secrets": { value: '{"k":"v"}', objectValue: { k: "v" }, secret: false } } } });
    await backend.setConfigJson("dev-alice", { "dockyard:hostGroups": { value: '{"app":{"count":1}}', objectValue: { app: { count: 1 } }, secret: false } });
    await backend.setConfigPaths("dev-alice", { "dockyard:secrets.k": { value: "v", secret: true }, "dockyard:hostGroups.app.platform": { value: "local", secret: false } });
    await backend.removeConfig("dev-alice", ["dockyard:old"]);
    await backend.refreshConfig("dev-alice");
    expect(await backend.getAllConfig("dev")).toEqual({ "dockyard:secrets": { value: '{"k":"v"}', objectValue: { k: "v" }, secret: false } });
    expect(argvs()).toEqual([
      ["config", "set-all", "--stack", "dev-alice", "--json", JSON.stringify({ "dockyard:hostGroups": { value: '{"app":{"count":1}}', objectValue: { app: { count: 1 } }, secret: false } }), "--non-interactive"],
      ["config", "set-all", "--stack", "dev-alice", "--path", "--secret", "dockyard:secrets.k=v", "--plaintext", "dockyard:hostGroups.app.platform=local", "--non-interactive"],
      ["config", "rm-all", "--stack", "dev-alice", "dockyard:old", "--non-interactive"],
      ["config", "refresh", "--force", "--stack", "dev-alice", "--non-interactive"],
      // The Automation API's refreshConfig reads the refreshed config back (so it decrypts, as destroy will).
      ["config", "--show-secrets", "--json", "--stack", "dev-alice", "--non-interactive"],
      ["config", "--show-secrets", "--json", "--stack", "dev", "--non-interactive"],
    ]);
  });

  it("tags: one stack tag set per tag, read back with stack tag ls --json; on Pulumi Cloud stack ls gives short names and last update, filtered by prefix", async () => {
    writeState({ stacks: { "dev-alice": { tags: {}, secretsProvider: null }, dev: { tags: {}, secretsProvider: null } } });
    await backend.setTags("dev-alice", { "dockyard:owner": "alice", "dockyard:expires": "2026-03-01T20:00:00Z" });
    expect(await backend.getTags("dev-alice")).toEqual({ "dockyard:owner": "alice", "dockyard:expires": "2026-03-01T20:00:00Z" });
    expect(await (await cloudBackend()).listStacks("dev-")).toEqual([{ name: "dev-alice", lastUpdate: "2026-03-01T08:05:00.000Z", updateInProgress: false, resourceCount: 3 }]);
    expect(argvs().slice(0, 3)).toEqual([
      ["stack", "tag", "set", "dockyard:owner", "alice", "--stack", "dev-alice", "--non-interactive"],
      ["stack", "tag", "set", "dockyard:expires", "2026-03-01T20:00:00Z", "--stack", "dev-alice", "--non-interactive"],
      ["stack", "tag", "ls", "--json", "--stack", "dev-alice", "--non-interactive"],
    ]);
  });

  it("up with --replace per URN and streamed output; export; destroy; stack rm", async () => {
    const urn = "urn:pulumi:dev-alice::dockyard::dockyard:index:DockerHost$aws:ec2/instance:Instance::dev-alice-app-1-instance";
    writeState({ stacks: { "dev-alice": { tags: {}, secretsProvider: null } }, resources: [{ urn, type: "aws:ec2/instance:Instance", parent: "urn:p", id: "i-0123456789abcdef0", provider: "urn:aws::0d8e", dependencies: ["urn:v"], inputs: {} }], outputs: { stack: "dev-alice" } });
    let streamed = "";
    await backend.up("dev-alice", { replace: [urn], onOutput: (t) => (streamed += t) });
    expect(streamed).toBe("Updating (dev-alice)\n");
    // provider and dependencies as the export records them: recreate --wipe-data finds what lived in a host's engine by them.
    expect(await backend.resources("dev-alice")).toEqual([{ urn, type: "aws:ec2/instance:Instance", parent: "urn:p", id: "i-0123456789abcdef0", provider: "urn:aws::0d8e", dependencies: ["urn:v"] }]);
    expect(await backend.outputs("dev-alice")).toEqual({ stack: "dev-alice" });
    await backend.destroy("dev-alice", { onOutput: () => undefined });
    await backend.remove("dev-alice");
    const a = argvs();
    expect(a[0]).toEqual(["stack", "select", "--stack", "dev-alice", "--non-interactive"]);
    // The policy pack gates this up as every CI up and `npm run up` (scripts/up.ts): the SDK's UpOptions.policyPacks
    // becomes --policy-pack (node_modules/@pulumi/pulumi/automation/stack.js, Stack.up).
    expect(a[1]).toEqual(["up", "--yes", "--skip-preview", "--replace", urn, "--policy-pack", path.join(ROOT, "policy"), "--exec-kind", "auto.local", "--stack", "dev-alice", "--non-interactive"]);
    // After up the Automation API reads the outputs and the last update itself.
    expect(a.slice(2, 5)).toEqual([
      ["stack", "output", "--json", "--stack", "dev-alice", "--non-interactive"],
      ["stack", "output", "--json", "--show-secrets", "--stack", "dev-alice", "--non-interactive"],
      ["stack", "history", "--json", "--show-secrets", "--page-size", "1", "--page", "1", "--stack", "dev-alice", "--non-interactive"],
    ]);
    expect(a).toContainEqual(["stack", "export", "--show-secrets", "--stack", "dev-alice", "--non-interactive"]);
    expect(a).toContainEqual(["destroy", "--yes", "--skip-preview", "--exec-kind", "auto.local", "--stack", "dev-alice", "--non-interactive"]);
    expect(a.at(-1)).toEqual(["stack", "rm", "--yes", "dev-alice", "--non-interactive"]);
  });

  it("every up runs with the repository's policy pack, replace or not (issue 24: dev-server up was the one ungated up)", async () => {
    writeState({ stacks: { "dev-alice": { tags: {}, secretsProvider: null } } });
    await backend.up("dev-alice", { onOutput: () => undefined });
    const up = argvs().find((x) => x[0] === "up")!;
    expect(up.slice(up.indexOf("--policy-pack"), up.indexOf("--policy-pack") + 2)).toEqual(["--policy-pack", path.join(ROOT, "policy")]);
    expect(up).not.toContain("--replace");
    // The pack the flag names is the one CI passes (`--policy-pack policy` from the repository root).
    expect(fs.existsSync(path.join(ROOT, "policy", "PulumiPolicy.yaml"))).toBe(true);
  });

  it("every call falls back to the secrets provider the stack's state records when the stack file names none (issue 24 item 9)", async () => {
    writeState({ stacks: { "dev-alice": { tags: {}, secretsProvider: null } } });
    await backend.setConfigJson("dev-alice", { "aws:region": { value: "eu-west-1", secret: false } });
    await backend.up("dev-alice", { onOutput: () => undefined });
    // pkg/cmd/pulumi/stack/secrets.go: without it, a file with no secretsprovider gets the DIY backend's passphrase.
    const stackCalls = calls().filter((c) => c.argv[0] !== "version");
    expect(stackCalls.map((c) => c.fallback)).toEqual(stackCalls.map(() => "true"));
    expect(stackCalls.length).toBeGreaterThan(3);
  });

  it("config refresh of a stack never deployed ('no previous deployment') is NoDeploymentError", async () => {
    writeState({ stacks: { "dev-alice": { tags: {}, secretsProvider: "awskms://alias/dockyard-dev?region=eu-west-1", neverDeployed: true } } });
    const e = await backend.refreshConfig("dev-alice").catch((x) => x);
    expect(e).toBeInstanceOf(NoDeploymentError);
    expect(e.message).toContain("no previous deployment");
  });

  it("maps the DIY backend's lock message to StackLockedError (holder kept) and a missing stack to StackMissingError", async () => {
    writeState({ stacks: { "dev-alice": { tags: {}, secretsProvider: null } }, lockedBy: "bob@laptop" });
    const locked = await backend.up("dev-alice", { onOutput: () => undefined }).catch((e) => e);
    expect(locked).toBeInstanceOf(StackLockedError);
    expect(locked.message).toContain("created by bob@laptop (pid 7)");
    const missing = await backend.destroy("dev-nobody", { onOutput: () => undefined }).catch((e) => e);
    expect(missing).toBeInstanceOf(StackMissingError);
  });
});

describe("dev-server up end to end through the real adapter", () => {
  it("the whole sequence of command lines for a new aws server", async () => {
    writeState({ outputs: { hostsByName: {}, services: {} } });
    let out = "";
    let err = "";
    const code = await runUp(
      { owner: "alice", ttl: "8h", lockWait: "1m" },
      { backend: async () => backend, now: () => new Date("2026-03-01T12:00:00Z"), sleep: async () => undefined, out: (s) => void (out += s), err: (s) => void (err += s), env: {} },
    );
    expect(code, err).toBe(0);
    const ops = argvs().map((a) => a.slice(0, a[0] === "stack" || a[0] === "config" ? 3 : 1).join(" "));
    expect(ops).toEqual([
      // No `stack ls`: on this file:// backend the dev-* stacks are read from its keys (scripts/lib/stack-keys.ts).
      "stack select --stack",
      "stack init dev-alice",
      "config set-all --stack",
      ...Array(6).fill("stack tag set"),
      "stack select --stack",
      "up",
      "stack output --json",
      "stack output --json",
      "stack history --json",
      "stack output --json",
      "stack output --json",
    ]);
    expect(readState().stacks["dev-alice"]).toEqual({
      secretsProvider: "awskms://alias/dockyard-dev?region=eu-west-1",
      tags: { "dockyard:owner": "alice", "dockyard:platform": "aws", "dockyard:from": "dev", "dockyard:created": "2026-03-01T12:00:00Z", "dockyard:expires": "2026-03-01T20:00:00Z", "dockyard:ttl": "8h" },
    });
    expect(err).toContain("Updating (dev-alice)");
    expect(out).toContain("Dev server dev-alice is up");
  });

  it("recreate --wipe-data: what the export says lived in the host's engine is replaced in the same up, the RemoteImage is not", async () => {
    // Entries as `pulumi stack export` writes them (apitype ResourceV3: provider "<urn>::<id>", dependencies).
    const u = (chain: string, name: string) => `urn:pulumi:dev-alice::dockyard::${chain}::${name}`;
    const host = u("dockyard:index:DockerHost", "dev-alice-app-1");
    const aws = u("pulumi:providers:aws", "default_7_4_0");
    const data = u("dockyard:index:DockerHost$aws:ebs/volume:Volume", "dev-alice-app-1-data");
    const machine = u("dockyard:index:DockerHost$aws:ec2/instance:Instance", "dev-alice-app-1-instance");
    const ready = u("dockyard:index:DockerEngine$command:local:Command", "dev-alice-app-1-engine-ready");
    const fleetDocker = u("dockyard:index:ContainerFleet$pulumi:providers:docker", "fleet-dev-alice-app-1");
    const pull = u("dockyard:index:ContainerFleet$command:local:Command", "fleet-dev-alice-app-1-web-pull");
    const image = u("dockyard:index:ContainerFleet$docker:index/remoteImage:RemoteImage", "fleet-dev-alice-app-1-web-image");
    const replica = u("dockyard:index:ContainerFleet$docker:index/container:Container", "fleet-dev-alice-app-1-web-1-0a1b2c3d");
    const resources = [
      { urn: aws, custom: true, id: "0d8e", type: "pulumi:providers:aws", inputs: {} },
      { urn: host, custom: false, type: "dockyard:index:DockerHost" },
      { urn: data, custom: true, id: "vol-0a1b2c3d4e5f60718", type: "aws:ebs/volume:Volume", parent: host, provider: `${aws}::0d8e` },
      { urn: machine, custom: true, id: "i-0123456789abcdef0", type: "aws:ec2/instance:Instance", parent: host, provider: `${aws}::0d8e` },
      { urn: ready, custom: true, id: "ready-1", type: "command:local:Command", dependencies: [machine], propertyDependencies: { interpreter: [machine] } },
      { urn: fleetDocker, custom: true, id: "3c2b", type: "pulumi:providers:docker", dependencies: [ready] },
      { urn: pull, custom: true, id: "pull-1", type: "command:local:Command", dependencies: [ready, machine] },
      { urn: image, custom: true, id: "sha256:2222", type: "docker:index/remoteImage:RemoteImage", provider: `${fleetDocker}::3c2b`, dependencies: [ready, pull] },
      { urn: replica, custom: true, id: "c0ffee02", type: "docker:index/container:Container", provider: `${fleetDocker}::3c2b`, dependencies: [ready, image] },
    ];
    writeState({ stacks: { "dev-alice": { tags: { "dockyard:platform": "aws" }, secretsProvider: "awskms://alias/dockyard-dev?region=eu-west-1" } }, resources });
    const stacksDir = fs.mkdtempSync(path.join(os.tmpdir(), "dev-server-stacks-"));
    let err = "";
    const code = await runRecreate(
      { owner: "alice", wipeData: true, lockWait: "1m" },
      { backend: async () => backend, now: () => new Date("2026-03-01T12:00:00Z"), sleep: async () => undefined, out: () => undefined, err: (s) => void (err += s), env: {}, stacksDir },
    );
    expect(code, err).toBe(0);
    const up = argvs().find((a) => a[0] === "up")!;
    const replaced = up.flatMap((a, i) => (up[i - 1] === "--replace" ? [a] : []));
    expect(replaced).toEqual([data, machine, ready, pull, replica]);
    expect(up).toContain("--policy-pack");
  });

  it("an existing server with no stack file on this machine: config refresh first, then the config (issue 24 item 9)", async () => {
    writeState({ stacks: { "dev-alice": { tags: { "dockyard:platform": "aws" }, secretsProvider: "awskms://alias/dockyard-dev?region=eu-west-1" } }, outputs: { hostsByName: {}, services: {} } });
    // The shipped stack files without any Pulumi.dev-alice.yaml (this machine never had it).
    const stacksDir = fs.mkdtempSync(path.join(os.tmpdir(), "dev-server-stacks-"));
    for (const f of fs.readdirSync(STACKS_DIR).filter((f) => /^Pulumi\.(dev|test|prod|local)\.yaml$/.test(f))) fs.copyFileSync(path.join(STACKS_DIR, f), path.join(stacksDir, f));
    let err = "";
    const code = await runUp(
      { owner: "alice", ttl: "8h", lockWait: "1m" },
      { backend: async () => backend, now: () => new Date("2026-03-01T12:00:00Z"), sleep: async () => undefined, out: () => undefined, err: (s) => void (err += s), env: {}, stacksDir },
    );
    expect(code, err).toBe(0);
    const ops = argvs().map((a) => a.slice(0, a[0] === "stack" || a[0] === "config" ? 3 : 1).join(" "));
    expect(ops.slice(0, 4)).toEqual(["stack tag ls", "config refresh --force", "config --show-secrets --json", "stack select --stack"]);
    expect(ops.indexOf("config refresh --force")).toBeLessThan(ops.indexOf("config set-all --stack"));
    expect(ops).not.toContain("stack init dev-alice");
  });
});

describe("listing dev servers where the caller may read only dev-* state (the reaper's role, ci/iam/policies.ts devServerPolicy)", () => {
  // pkg/backend/diy/backend.go ListStacks (what `pulumi stack ls` runs on a DIY backend) reads every stack's checkpoint
  // and tolerates only a missing one: with s3:GetObject on dev-* alone it stops at prod.json (AccessDenied), so the hourly
  // reap never reaped. Here prod.json is a directory: whoever reads it fails (EISDIR), root included.
  const tags = { "dockyard:owner": "alice", "dockyard:platform": "aws", "dockyard:expires": "2026-03-01T11:00:00Z" };
  beforeEach(() => {
    writeState({
      stacks: {
        "dev-alice": { tags, secretsProvider: "awskms://alias/dockyard-dev?region=eu-west-1" },
        dev: { tags: {}, secretsProvider: null },
        test: { tags: {}, secretsProvider: null },
      },
    });
    fs.mkdirSync(path.join(checkpointsDir(), "prod.json"));
  });
  const deps = (sink: { out: string; err: string }) => ({
    backend: async () => backend,
    now: () => new Date("2026-03-01T12:00:00Z"),
    sleep: async () => undefined,
    out: (t: string) => void (sink.out += t),
    err: (t: string) => void (sink.err += t),
    env: {},
    stacksDir: fs.mkdtempSync(path.join(os.tmpdir(), "dev-server-stacks-")),
  });

  it("reap destroys the expired dev server from the dev-* keys alone: no `stack ls`, prod's checkpoint never read", async () => {
    const sink = { out: "", err: "" };
    const code = await runReap({ dryRun: false, lockWait: "1m", platform: "aws" }, deps(sink));
    expect(code, sink.out + sink.err).toBe(0);
    expect(sink.out).toContain("destroyed dev-alice (owner alice, expired 1h ago)");
    const a = argvs();
    expect(a.filter((x) => x[0] === "stack" && x[1] === "ls")).toEqual([]);
    expect(a).toContainEqual(["destroy", "--yes", "--skip-preview", "--exec-kind", "auto.local", "--stack", "dev-alice", "--non-interactive"]);
    // Every stack the reap named on the command line is dev-alice.
    expect([...new Set(a.flatMap((x) => (x.includes("--stack") ? [x[x.indexOf("--stack") + 1]] : [])))]).toEqual(["dev-alice"]);
    expect(fs.existsSync(path.join(checkpointsDir(), "dev-alice.json"))).toBe(false);
  });

  it("list names the dev servers (not dev, test or prod) with the checkpoint's last write as last update", async () => {
    const when = new Date("2026-03-01T08:05:00.000Z");
    fs.utimesSync(path.join(checkpointsDir(), "dev-alice.json"), when, when);
    const sink = { out: "", err: "" };
    expect(await runList({ json: true }, deps(sink)), sink.err).toBe(0);
    const servers = JSON.parse(sink.out) as Array<{ stack: string; lastUpdate?: string }>;
    expect(servers.map((s) => [s.stack, s.lastUpdate])).toEqual([["dev-alice", "2026-03-01T08:05:00.000Z"]]);
    expect(argvs().filter((x) => x[0] === "stack" && x[1] === "ls")).toEqual([]);
  });

  it("without PULUMI_BACKEND_URL the logged-in backend's URL (`pulumi whoami --json`) is the one listed", async () => {
    process.env.FAKE_PULUMI_LOGGED_IN = `file://${stateDir}`;
    const env = { ...process.env };
    delete env.PULUMI_BACKEND_URL;
    const loggedIn = await automationBackend(ROOT, env);
    expect((await loggedIn.listStacks("dev-")).map((s) => s.name)).toEqual(["dev-alice"]);
    expect(argvs()).toEqual([["whoami", "--json", "--non-interactive"]]);
  });
});
