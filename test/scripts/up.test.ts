/**
 * `dockyard up` (scripts/up.ts) against stand-ins put first on PATH, each logging its command
 * line: `pulumi` (answers as the CLI does, like test/scripts/dev-server-automation.test.ts:
 * `whoami --json` from pkg/cmd/pulumi/whoami, "no stack named" from backenderr), `docker`
 * (info, image inspect/pull/build) and `ssh-add`. The image build is the real
 * components/local-host/build-image.sh, run against the stand-in docker.
 *
 * What this proves: every precondition's failure (exit 2, its one line, and that pulumi was
 * never called - only `pulumi version` and `whoami` where being logged in is the check);
 * the default file backend of an all-local stack (directory created, said on stderr, handed
 * to every pulumi call); the image build called with the program's tag before pulumi, and a
 * failed build stopping it (exit 1); the exact pulumi command lines, from the Automation API
 * (stack select/init, whoami, outputs) and the CLI itself (up/preview with the terminal); a
 * failed up (exit 1); the ssh and URL lines printed from hostsByName; and `tsx
 * scripts/dockyard.ts up` as a user runs it.
 * What it does not prove: that the real pulumi CLI deploys anything with these arguments
 * (it cannot be downloaded here, no network), that Pulumi's interactive prompt appears on a
 * real terminal (read in its source: pkg/cmd/pulumi/operations/up.go, pkg/backend/apply.go),
 * that a real Docker Engine builds the image (test/host/local-platform.int.test.ts boots it),
 * or what a real ssh-agent holds.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hostImageTag } from "../../components/local-host";
import { automationBackend } from "../../scripts/lib/automation";
import { runChild, runUp, type UpArgs } from "../../scripts/up";
import { ROOT, cli } from "./cli";

const PULUMI = `#!/usr/bin/env node
const fs = require("fs");
const argv = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(process.env.FAKE_STATE, "utf8"));
fs.appendFileSync(process.env.FAKE_LOG, JSON.stringify({ tool: "pulumi", argv, backend: process.env.PULUMI_BACKEND_URL || null }) + "\\n");
const save = () => fs.writeFileSync(process.env.FAKE_STATE, JSON.stringify(state));
const flag = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const fail = (msg, code = 255) => { process.stderr.write(msg + "\\n"); process.exit(code); };
const cmd = argv.filter((a) => !a.startsWith("-")).slice(0, 2).join(" ");
if (argv[0] === "version") { process.stdout.write("v3.265.0\\n"); process.exit(0); }
if (argv[0] === "whoami") {
  if (!state.loggedIn) fail("error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions");
  process.stdout.write(JSON.stringify({ user: "alice", url: "https://api.pulumi.com", organizations: ["alice"] })); process.exit(0);
}
if (cmd.startsWith("stack select") && state.selectError) fail(state.selectError);
if (cmd.startsWith("stack select")) { if (!state.stacks.includes(flag("--stack"))) fail("error: no stack named '" + flag("--stack") + "' found"); process.exit(0); }
if (cmd.startsWith("stack init")) { state.stacks.push(argv[2]); save(); process.exit(0); }
if (argv[0] === "up" || argv[0] === "preview") {
  process.stdout.write((argv[0] === "up" ? "Updating" : "Previewing update") + " (" + flag("--stack") + ")\\n");
  if (state.failUp) fail("error: update failed", 1);
  process.exit(0);
}
if (cmd === "stack output") { process.stdout.write(JSON.stringify(state.outputs)); process.exit(0); }
fail("stand-in pulumi: unexpected command " + JSON.stringify(argv), 2);
`;

/** docker: FAKE_DOCKER=down (no engine), FAKE_IMAGE=present|missing, FAKE_BUILD=fail. */
const DOCKER = `#!/bin/sh
printf '{"tool":"docker","argv":[%s]}\\n' "$(for a in "$@"; do printf '"%s",' "$a"; done | sed 's/,$//')" >>"$FAKE_LOG"
case "$1" in
  info) [ "$FAKE_DOCKER" = down ] && { echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1; }; echo 27.5.1 ;;
  image) [ "$FAKE_IMAGE" = present ] || { echo "Error: No such image: $3" >&2; exit 1; } ;;
  pull) ;;
  build) [ "$FAKE_BUILD" = fail ] && { echo "ERROR: failed to solve: process \\"/bin/sh -c apt-get install\\" did not complete successfully: exit code: 100" >&2; exit 1; }; echo sha256:0123 ;;
esac
exit 0
`;

/** ssh-add -L: FAKE_AGENT=key|empty|none, with ssh-add's own messages and exit codes (1: no identities, 2: no agent). */
const SSH_ADD = `#!/bin/sh
printf '{"tool":"ssh-add","argv":["%s"]}\\n' "$*" >>"$FAKE_LOG"
case "$FAKE_AGENT" in
  empty) echo "The agent has no identities."; exit 1 ;;
  none) echo "Could not open a connection to your authentication agent." >&2; exit 2 ;;
esac
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBk alice@laptop"
`;

/** Every up and preview runs the policy pack (issue 24 item 10: README "Smoke test and policy"; pulumi's --policy-pack, pkg/cmd/pulumi/operations/up.go). */
const POLICY = path.join(ROOT, "policy");
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey";
/** What the program outputs for the local stack (index.ts hostsByName, services). */
const LOCAL_OUTPUTS = {
  hostsByName: { "local-app-1": { platform: "local", sshUser: "admin", sshTarget: "local-app-1", hostPublicKey: HOST_KEY, endpoints: { "80": "127.0.0.1:49153" } } },
  services: { web: { hosts: ["local-app-1"] } },
};

let dir: string;
let bin: string;
let home: string;
let logFile: string;
let stateFile: string;
const saved = { ...process.env };

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-up-"));
  bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, "pulumi"), PULUMI, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "docker"), DOCKER, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "ssh-add"), SSH_ADD, { mode: 0o755 });
  fs.symlinkSync(process.execPath, path.join(bin, "node"));
  logFile = path.join(dir, "log.jsonl");
  stateFile = path.join(dir, "state.json");
  // The Automation API runs the pulumi of process.env's PATH, and no backend or passphrase of the machine running the tests.
  process.env.PATH = `${bin}${path.delimiter}${saved.PATH}`;
  for (const k of ["PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN"]) delete process.env[k];
  process.env.FAKE_LOG = logFile;
  process.env.FAKE_STATE = stateFile;
});
afterAll(() => {
  process.env = saved;
});
beforeEach(() => {
  fs.writeFileSync(logFile, "");
  writeState({});
  home = fs.mkdtempSync(path.join(dir, "home-"));
});

interface State {
  stacks: string[];
  outputs: unknown;
  loggedIn?: boolean;
  failUp?: boolean;
  selectError?: string;
}
const writeState = (s: Partial<State>) => fs.writeFileSync(stateFile, JSON.stringify({ stacks: [], outputs: LOCAL_OUTPUTS, ...s }));
const log = () =>
  fs
    .readFileSync(logFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { tool: string; argv: string[]; backend?: string | null });
const argvsOf = (tool: string) => log().filter((c) => c.tool === tool).map((c) => c.argv);

/**
 * A user's environment: the stand-ins first, then the system's tools (not /usr/local/bin, where a real docker
 * may be), a fresh $HOME, a passphrase, a key in the agent, Docker running, the host image not yet built.
 */
function userEnv(over: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: [bin, "/usr/bin", "/bin"].join(path.delimiter),
    HOME: home,
    FAKE_LOG: logFile,
    FAKE_STATE: stateFile,
    PULUMI_CONFIG_PASSPHRASE: "correct horse",
    FAKE_AGENT: "key",
    FAKE_DOCKER: "up",
    FAKE_IMAGE: "missing",
    ...over,
  };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env;
}

async function up(args: Partial<UpArgs> & { stack: string }, env = userEnv(), interactive = true) {
  let out = "";
  let err = "";
  const code = await runUp(
    { yes: false, preview: false, ...args },
    {
      env,
      backend: (e) => automationBackend(ROOT, e),
      interactive,
      out: (s) => void (out += s),
      err: (s) => void (err += s),
      // The build's and pulumi's output come here captured (inherited stdio would go to the test runner's terminal).
      run: (cmd, a, opts) => runChild(cmd, a, { ...opts, inherit: false, onOutput: opts.onOutput ?? (opts.inherit ? (s) => void (err += s) : undefined) }),
    },
  );
  return { code, out, err };
}

const stateDir = () => path.join(home, ".dockyard-state");

describe("preconditions: exit 2, one line naming the stack and the fix, pulumi never called", () => {
  it("the stack's files must parse: an unknown stack is a ConfigError naming it and the stacks there are", async () => {
    const r = await up({ stack: "nosuch" });
    expect(r.code).toBe(2);
    expect(r.err).toContain('stack "nosuch": stacks/Pulumi.nosuch.yaml: no such stack file; stacks: dev, local, prod, test');
    expect(log()).toEqual([]);
  });

  it("without a terminal, --yes or --preview is needed (Pulumi could not ask)", async () => {
    const r = await up({ stack: "local" }, userEnv(), false);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe("stack local: no terminal to confirm the update on (stdin or stdout is not a terminal): run npm run up -- local --yes to deploy without asking, or --preview to see the changes only");
    expect(log()).toEqual([]);
  });

  it("local hosts: no docker command at all", async () => {
    fs.mkdirSync(path.join(dir, "nodocker"), { recursive: true });
    for (const t of ["pulumi", "ssh-add", "node"]) if (!fs.existsSync(path.join(dir, "nodocker", t))) fs.symlinkSync(path.join(bin, t), path.join(dir, "nodocker", t));
    const r = await up({ stack: "local", yes: true }, userEnv({ PATH: path.join(dir, "nodocker") }));
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe("stack local: host group app runs on the local platform, which needs Docker, but there is no docker command: install Docker Engine (or Docker Desktop) and check that `docker info` works");
    expect(argvsOf("pulumi")).toEqual([]);
  });

  it("local hosts: docker reaches no engine (docker info's own words)", async () => {
    const r = await up({ stack: "local", yes: true }, userEnv({ FAKE_DOCKER: "down" }));
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(
      "stack local: host group app runs on the local platform, but the docker CLI reaches no Docker Engine (docker info: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?): start Docker, and check that `docker info` works without sudo",
    );
    expect(log().map((c) => c.tool)).toEqual(["docker"]);
    expect(fs.existsSync(stateDir())).toBe(false);
  });

  it("the passphrase: local's secrets use it on the default file backend; the message says to keep it", async () => {
    const r = await up({ stack: "local", yes: true }, userEnv({ PULUMI_CONFIG_PASSPHRASE: undefined }));
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(
      "stack local: its secrets are encrypted with a passphrase (stacks/Pulumi.local.yaml names no secretsprovider) and neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE is set: export PULUMI_CONFIG_PASSPHRASE='<a passphrase you choose>' and keep it: every later up and destroy of local needs the same one",
    );
    expect(argvsOf("pulumi")).toEqual([]);
    expect(fs.existsSync(stateDir())).toBe(false);
  });

  it("PULUMI_CONFIG_PASSPHRASE_FILE is as good as PULUMI_CONFIG_PASSPHRASE", async () => {
    const r = await up({ stack: "local", yes: true }, userEnv({ PULUMI_CONFIG_PASSPHRASE: undefined, PULUMI_CONFIG_PASSPHRASE_FILE: "/dev/null", FAKE_AGENT: "none" }));
    expect(r.err).not.toContain("passphrase");
    expect(r.err).toContain("no ssh-agent");
  });

  it.each([
    ["none", "no ssh-agent is reachable (SSH_AUTH_SOCK)"],
    ["empty", "your ssh-agent holds no key"],
  ])("an ssh-agent with a key (agent: %s)", async (agent, why) => {
    const r = await up({ stack: "local", yes: true }, userEnv({ FAKE_AGENT: agent }));
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(`stack local: ${why}; Pulumi reaches every host with your agent's key (README "Access to hosts"): run eval "$(ssh-agent -s)" && ssh-add`);
    expect(argvsOf("pulumi")).toEqual([]);
    expect(argvsOf("ssh-add")).toEqual([["-L"]]);
  });

  it("aws hosts, no PULUMI_BACKEND_URL, not logged in: refused with README \"State and secrets\"; only `pulumi whoami` ran", async () => {
    const r = await up({ stack: "dev", yes: true });
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(
      'stack dev: no backend for its state: PULUMI_BACKEND_URL is not set and `pulumi whoami` finds no login (it said: error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions); its hosts run on aws, so its state belongs in the team\'s backend: set PULUMI_BACKEND_URL as README "State and secrets" says, or pulumi login',
    );
    // aws hosts need no Docker; the Automation API checks the CLI's version once, then whoami.
    expect(argvsOf("docker")).toEqual([]);
    expect(argvsOf("pulumi")).toEqual([["version"], ["whoami", "--json", "--non-interactive"]]);
  });
});

describe("up and preview: the command lines sent", () => {
  it("local, nothing set but the passphrase: default file backend, image built, stack created, up with the terminal, hosts and URLs printed", async () => {
    const r = await up({ stack: "local" });
    expect(r.code, r.err).toBe(0);
    const url = `file://${stateDir()}`;
    expect(fs.statSync(stateDir()).isDirectory()).toBe(true);
    expect(r.err).toContain(`PULUMI_BACKEND_URL is not set: keeping local's state in ${url} (every host is local).`);
    // The real build-image.sh, looking for the program's tag, then building it.
    const tag = hostImageTag();
    expect(argvsOf("docker")).toEqual([
      ["info", "--format", "{{.ServerVersion}}"],
      ["image", "inspect", tag],
      ["image", "inspect", "debian:bookworm"],
      ["pull", "-q", "debian:bookworm"],
      ["build", "-q", "--build-arg", "BASE=debian:bookworm", "--label", `dockyard.recipe=${tag.split(":")[1]}`, "-t", tag, path.join(ROOT, "components", "local-host")],
    ]);
    expect(r.err).toContain(`build-image.sh: building ${tag} from debian:bookworm`);
    // Every pulumi call on the default backend (but the Automation API's version check, which needs none); the image before any of them.
    const calls = log();
    expect(calls.findIndex((c) => c.tool === "pulumi")).toBeGreaterThan(calls.findIndex((c) => c.argv[0] === "build"));
    expect(calls.filter((c) => c.tool === "pulumi" && c.argv[0] !== "version").map((c) => c.backend)).toEqual(Array(5).fill(url));
    expect(argvsOf("pulumi")).toEqual([
      ["version"],
      ["stack", "select", "--stack", "local", "--non-interactive"],
      // No --secrets-provider: the backend's default, the passphrase on a file backend.
      ["stack", "init", "local", "--non-interactive"],
      // The CLI itself, not the Automation API: no --non-interactive, so Pulumi shows the changes and asks.
      ["up", "--stack", "local", "--policy-pack", POLICY],
      ["stack", "output", "--json", "--stack", "local", "--non-interactive"],
      ["stack", "output", "--json", "--show-secrets", "--stack", "local", "--non-interactive"],
    ]);
    expect(r.err).toContain("Updating (local)");
    expect(r.err).toContain(`Created stack local in ${url}.`);
    expect(r.out).toContain("Stack local is up");
    expect(r.out).toMatch(/local-app-1:\n {4}ssh .*ProxyCommand=.*docker exec.* admin@local-app-1\n/);
    expect(r.out).toContain("web: http://127.0.0.1:49153/  (local-app-1)");
  });

  it("--yes; an existing stack is selected; a host image already built is not built again; PULUMI_BACKEND_URL wins", async () => {
    writeState({ stacks: ["local"] });
    const r = await up({ stack: "local", yes: true }, userEnv({ PULUMI_BACKEND_URL: "s3://team-state", FAKE_IMAGE: "present" }));
    expect(r.code, r.err).toBe(0);
    expect(argvsOf("docker")).toEqual([["info", "--format", "{{.ServerVersion}}"], ["image", "inspect", hostImageTag()]]);
    expect(argvsOf("pulumi").slice(1, 3)).toEqual([["stack", "select", "--stack", "local", "--non-interactive"], ["up", "--stack", "local", "--policy-pack", POLICY, "--yes"]]);
    expect(log().filter((c) => c.tool === "pulumi" && c.argv[0] !== "version").every((c) => c.backend === "s3://team-state")).toBe(true);
    expect(fs.existsSync(stateDir())).toBe(false);
    expect(r.err).not.toContain("PULUMI_BACKEND_URL is not set");
  });

  it("--preview: pulumi preview, no --yes, no outputs read", async () => {
    writeState({ stacks: ["local"] });
    const r = await up({ stack: "local", preview: true, yes: true }, userEnv({ FAKE_IMAGE: "present" }), false);
    expect(r.code, r.err).toBe(0);
    expect(argvsOf("pulumi").slice(1)).toEqual([["stack", "select", "--stack", "local", "--non-interactive"], ["preview", "--stack", "local", "--policy-pack", POLICY]]);
    expect(r.out).toBe("Preview of local done; nothing was changed. Deploy it: npm run up -- local\n");
  });

  it("aws hosts while logged in: that backend; the stack created with the secrets provider its file names; no Docker", async () => {
    writeState({ loggedIn: true, outputs: { hostsByName: {}, services: {} } });
    const r = await up({ stack: "dev", yes: true });
    expect(r.code, r.err).toBe(0);
    expect(argvsOf("docker")).toEqual([]);
    expect(argvsOf("pulumi").slice(0, 6)).toEqual([
      ["version"],
      ["whoami", "--json", "--non-interactive"],
      ["stack", "select", "--stack", "dev", "--non-interactive"],
      // The seam's workspace for this secrets provider checks the CLI's version once more.
      ["version"],
      // pulumi stack init would otherwise pick the backend's default (createSecretsManagerForNewStack), not the file's.
      ["stack", "init", "dev", "--secrets-provider", "awskms://alias/dockyard-dev?region=eu-west-1", "--non-interactive"],
      ["up", "--stack", "dev", "--policy-pack", POLICY, "--yes"],
    ]);
    expect(r.err).toContain("Created stack dev in https://api.pulumi.com.");
  });

  it("a failed image build stops before pulumi (exit 1)", async () => {
    const r = await up({ stack: "local", yes: true }, userEnv({ FAKE_BUILD: "fail" }));
    expect(r.code).toBe(1);
    expect(r.err).toContain("stack local: building the local host image failed (ERROR: failed to solve");
    expect(r.err).toContain("run npm run up -- local again");
    expect(argvsOf("pulumi")).toEqual([]);
  });

  it("a failed pulumi up is exit 1 with one line after Pulumi's own output; no outputs read", async () => {
    writeState({ stacks: ["local"], failUp: true });
    const r = await up({ stack: "local", yes: true }, userEnv({ FAKE_IMAGE: "present" }));
    expect(r.code).toBe(1);
    expect(r.err).toContain("error: update failed");
    expect(r.err.trim().split("\n").pop()).toBe(
      "stack local: pulumi up did not complete (exit code 1; its output above says why, or that the update was declined); run npm run up -- local again once fixed",
    );
    expect(argvsOf("pulumi").at(-1)).toEqual(["up", "--stack", "local", "--policy-pack", POLICY, "--yes"]);
  });

  it("a pulumi call that fails before up (the backend unreadable) is one line naming the stack, exit 1, no stack trace", async () => {
    writeState({ selectError: "error: could not query backend for stacks: open /state/.pulumi/meta.yaml: permission denied" });
    const r = await up({ stack: "local", yes: true }, userEnv({ FAKE_IMAGE: "present", PULUMI_BACKEND_URL: "file:///state" }));
    expect(r.code).toBe(1);
    expect(r.err.trim().split("\n").pop()).toBe(
      "stack local: pulumi failed: error: could not query backend for stacks: open /state/.pulumi/meta.yaml: permission denied (the pulumi CLI on PATH, else node_modules/.bin/pulumi; backend file:///state)",
    );
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(argvsOf("pulumi").map((a) => a[0])).toEqual(["version", "stack"]);
  });
});

describe("as a user runs it: tsx scripts/dockyard.ts up", () => {
  it("up local --yes: Pulumi's output on stdout, then the hosts; exit 0", async () => {
    const r = await cli(["up", "local", "--yes"], userEnv({ FAKE_IMAGE: "present" }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Updating \(local\)\nStack local is up \(state: file:\/\/.*\)\.\nHosts:\n {2}local-app-1:\n/);
    expect(r.stderr).toContain(`Running: pulumi up --stack local --policy-pack ${POLICY} --yes`);
    expect(argvsOf("pulumi").map((a) => a[0])).toEqual(["version", "stack", "stack", "up", "stack", "stack"]);
  });

  it("up local with no terminal and no --yes: exit 2, nothing run", async () => {
    const r = await cli(["up", "local"], userEnv());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("stack local: no terminal to confirm the update on");
    expect(log()).toEqual([]);
  });

  it("--help reads for a newcomer", async () => {
    const r = await cli(["up", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("dockyard up <stack>");
    expect(r.stdout).toContain("an ssh-agent holding your key");
    expect(r.stdout).toContain("Exit codes: 0 done, 1 the image build or pulumi failed (or you answered no), 2 something above is missing.");
  });
});
