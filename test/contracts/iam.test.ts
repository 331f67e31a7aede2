/**
 * Issue 24 item 5: no host can read another host's SSH host private key, in its stack or any
 * other. Proved with an IAM policy simulator (@cloud-copilot/iam-simulate) over the REAL
 * policy documents: every identity policy of each host's role and each KMS key policy as the
 * program renders them for dev, test and prod (mock runtime), plus the AWS managed policy the
 * roles attach, stored as data (test/fixtures/iam/AmazonSSMManagedInstanceCore.json: it
 * allows ssm:GetParameter and ssm:GetParameters on "*").
 *
 * The rules simulated are AWS's:
 * - A SecureString's value is decrypted with kms:Decrypt on its key, by whoever calls
 *   GetParameter WithDecryption, through SSM (kms:ViaService ssm.<region>.amazonaws.com), with
 *   the encryption context PARAMETER_ARN = the parameter's ARN (AWS KMS developer guide, "How
 *   AWS Systems Manager Parameter Store uses AWS KMS"; Systems Manager user guide,
 *   ps-restrict-decryption: aws/ssm "grants Decrypt permission to all IAM principals in the
 *   account", so a per-stack customer managed key is what restricts decryption).
 * - Restricting kms:Decrypt does not hide the parameter itself (ps-restrict-decryption): a
 *   Parameter Store action deny does, here on the parameter's aws:ResourceTag/dockyard:host.
 * Values only the cloud knows (ARNs, the account) are filled in as AWS forms them:
 * parameter ARN arn:aws:ssm:<region>:<account>:parameter<name>, key ARN
 * arn:aws:kms:<region>:<account>:key/<key id>.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { runSimulation, runUnsafeSimulation, type Simulation } from "@cloud-copilot/iam-simulate";
// iam-simulate's own policy library: a key policy handed over with its name (the unsafe
// engine reads a resource policy's name only from a validated policy).
import { createValidatedPolicy, validateResourcePolicy } from "@cloud-copilot/iam-policy";
import { renderStack, type Rendered, type RenderedResource } from "../../scripts/lib/render";

const ACCOUNT = "123456789012";
const REGION = "eu-west-1";
const MANAGED = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "fixtures", "iam", "AmazonSSMManagedInstanceCore.json"), "utf8")) as { arn: string; document: unknown };
const MANAGED_POLICIES: Record<string, unknown> = { [MANAGED.arn]: MANAGED.document };

const T = {
  role: "aws:iam/role:Role",
  attachment: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
  inline: "aws:iam/rolePolicy:RolePolicy",
  param: "aws:ssm/parameter:Parameter",
  key: "aws:kms/key:Key",
  alias: "aws:kms/alias:Alias",
};

/** A key id as KMS makes them (a UUID), stable per stack and resource name. */
const keyIdOf = (stack: string, name: string) => {
  const h = crypto.createHash("sha256").update(`${stack}/${name}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

/** One stack as the cloud would hold it: each computed value the policies use, filled in. */
interface Estate {
  stack: string;
  resources: RenderedResource[];
  fill: (v: string) => string;
}

function estate(r: Rendered): Estate {
  const known = new Map<string, string>([["computed(caller.accountId)", ACCOUNT]]);
  for (const x of r.resources) {
    if (x.type === T.param) known.set(`computed(${x.name}.arn)`, `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${x.inputs.name as string}`);
    if (x.type === T.key) {
      const id = keyIdOf(r.stack, x.name);
      known.set(`computed(${x.name}.arn)`, `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`);
      known.set(`computed(${x.name}.keyId)`, id);
      known.set(`computed(${x.name}.id)`, id);
    }
    if (x.type === T.role) known.set(`computed(${x.name}.name)`, x.name);
  }
  const fill = (v: string) => v.replace(/computed\([^()]*\)/g, (m) => known.get(m) ?? m);
  return { stack: r.stack, resources: r.resources, fill };
}

const renders = new Map<string, Promise<Estate>>();
const load = (stack: string) => {
  if (!renders.has(stack)) renders.set(stack, renderStack(stack).then(estate));
  return renders.get(stack)!;
};

/** The identity policies of a host's role: the managed ones it attaches (from the fixture) and its inline ones, as rendered. */
function hostPolicies(e: Estate, host: string): { name: string; policy: unknown }[] {
  const role = `${host}-role`;
  const ofRole = (x: RenderedResource) => e.fill(String(x.inputs.role)) === role;
  const managed = e.resources
    .filter((x) => x.type === T.attachment && ofRole(x))
    .map((x) => {
      const arn = e.fill(String(x.inputs.policyArn));
      if (!(arn in MANAGED_POLICIES)) throw new Error(`${x.name} attaches ${arn}; store its document in test/fixtures/iam/ to simulate it`);
      return { name: arn.split("/").pop()!, policy: MANAGED_POLICIES[arn] };
    });
  const inline = e.resources.filter((x) => x.type === T.inline && ofRole(x)).map((x) => ({ name: x.name, policy: JSON.parse(e.fill(String(x.inputs.policy))) }));
  expect(managed.length + inline.length, `${host}: policies of its role`).toBeGreaterThan(0);
  return [...managed, ...inline];
}

/** A host's key parameter as the cloud holds it: its ARN and tags. */
function hostKeyParameter(e: Estate, host: string): { name: string; arn: string; tags: Record<string, string>; keyId?: string } {
  const p = e.resources.find((x) => x.type === T.param && x.name === `${host}-host-key-param`);
  if (!p) throw new Error(`${e.stack}: no host-key parameter of ${host}`);
  return { name: p.name, arn: e.fill(`computed(${p.name}.arn)`), tags: p.inputs.tags as Record<string, string>, keyId: p.inputs.keyId === undefined ? undefined : e.fill(String(p.inputs.keyId)) };
}

/**
 * The KMS key (ARN and key policy) that encrypts a host's key parameter. The parameter names it
 * by an alias (what SSM reports as its KeyId and the provider reads back: terraform-provider-aws
 * internal/service/ssm/parameter.go resourceParameterRead), so the key is the alias's target;
 * kms:Decrypt is then authorized against that key's ARN (KMS resolves the alias first).
 */
function parameterKey(e: Estate, host: string): { arn: string; policy: unknown } {
  const p = hostKeyParameter(e, host);
  const alias = e.resources.find((x) => x.type === T.alias && x.inputs.name === p.keyId);
  const target = alias ? e.fill(String(alias.inputs.targetKeyId)) : undefined;
  const key = e.resources.find((x) => x.type === T.key && keyIdOf(e.stack, x.name) === target);
  if (!key) {
    throw new Error(
      `${p.name}: keyId ${p.keyId ?? "unset"} is not an alias of a key of stack ${e.stack}: with aws/ssm (the default) every principal of the account that may call GetParameter decrypts it (Systems Manager user guide, ps-restrict-decryption)`,
    );
  }
  return { arn: e.fill(`computed(${key.name}.arn)`), policy: JSON.parse(e.fill(String(key.inputs.policy))) };
}

type Decision = "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";

/**
 * The simulator's decision. runSimulation validates the policies, the action, the resource's
 * type and each context key against the Service Authorization Reference data. Its 0.1.173
 * drops a kms:EncryptionContext:<key> from the request even though kms:Decrypt lists
 * kms:EncryptionContext:${EncryptionContextKey} (it matches such templated keys only at a
 * '/', simulationEngine.js listHasVariableKeyMatch), so a statement conditioned on it could
 * never match. When that key is the only one dropped, the validated simulation is evaluated
 * again with the request's context as given (runUnsafeSimulation, same engine, no key
 * filtering); any other dropped key fails the case.
 */
async function decide(s: Simulation): Promise<Decision> {
  const r = await runSimulation(s, {});
  if (r.resultType === "error") throw new Error(`simulation refused: ${JSON.stringify(r.errors)}`);
  if (r.resultType !== "single") throw new Error(`one resource per case, got ${r.resultType}`);
  const ignored = r.result.ignoredContextKeys ?? [];
  expect(ignored.filter((k) => !/^kms:EncryptionContext:[A-Za-z0-9_]+$/.test(k)), "context keys the simulator does not know for this action").toEqual([]);
  return (ignored.length === 0 ? r.overallResult : runUnsafeSimulation(s, {})) as Decision;
}

/** One request of a role with these identity policies (and the resource's policy, if it has one). */
function request(principal: string, policies: { name: string; policy: unknown }[], action: string, resource: string, context: Record<string, string>, resourcePolicy?: { name: string; policy: unknown }): Promise<Decision> {
  return decide({
    request: { principal, action, resource: { resource, accountId: ACCOUNT }, contextVariables: context },
    identityPolicies: policies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(resourcePolicy ? { resourcePolicy: createValidatedPolicy(resourcePolicy.policy, validateResourcePolicy, { name: resourcePolicy.name }) } : {}),
  });
}

const roleArn = (host: string) => `arn:aws:iam::${ACCOUNT}:role/${host}-role`;

/** The host role reads a parameter: ssm:GetParameter on its ARN (AWS evaluates the parameter's tags as aws:ResourceTag/<key>). */
function getParameter(principal: string, policies: { name: string; policy: unknown }[], target: { e: Estate; host: string }): Promise<Decision> {
  const p = hostKeyParameter(target.e, target.host);
  return request(principal, policies, "ssm:GetParameter", p.arn, Object.fromEntries(Object.entries(p.tags).map(([k, v]) => [`aws:ResourceTag/${k}`, v])));
}

/** SSM decrypts the parameter's value for the role: kms:Decrypt on the parameter's key, via SSM, with its PARAMETER_ARN context, under the key's policy. */
function decryptParameter(principal: string, policies: { name: string; policy: unknown }[], target: { e: Estate; host: string }): Promise<Decision> {
  const p = hostKeyParameter(target.e, target.host);
  const key = parameterKey(target.e, target.host);
  const context = { "kms:EncryptionContext:PARAMETER_ARN": p.arn, "kms:ViaService": `ssm.${REGION}.amazonaws.com`, "kms:CallerAccount": ACCOUNT };
  return request(principal, policies, "kms:Decrypt", key.arn, context, { name: `${target.host} key policy`, policy: key.policy });
}

describe("host roles and the SSH host keys in SSM (issue 24 item 5), simulated over the rendered policies", () => {
  const at = async (stack: string, host: string) => ({ e: await load(stack), host });

  it.each([
    // [principal's host, parameter's host, action, expected decision]
    ["prod-app-1", "prod-app-1", "ssm:GetParameter", "Allowed"],
    ["prod-app-1", "prod-app-1", "kms:Decrypt", "Allowed"],
    ["prod-app-1", "prod-app-2", "ssm:GetParameter", "ExplicitlyDenied"],
    ["prod-app-1", "prod-app-2", "kms:Decrypt", "ImplicitlyDenied"],
    ["dev-app-1", "prod-app-1", "ssm:GetParameter", "ExplicitlyDenied"],
    ["dev-app-1", "prod-app-1", "kms:Decrypt", "ImplicitlyDenied"],
    ["test-app-1", "prod-app-3", "ssm:GetParameter", "ExplicitlyDenied"],
    ["test-app-1", "prod-app-3", "kms:Decrypt", "ImplicitlyDenied"],
    ["prod-app-2", "dev-app-1", "ssm:GetParameter", "ExplicitlyDenied"],
    ["prod-app-2", "dev-app-1", "kms:Decrypt", "ImplicitlyDenied"],
    ["dev-app-1", "dev-app-1", "ssm:GetParameter", "Allowed"],
    ["dev-app-1", "dev-app-1", "kms:Decrypt", "Allowed"],
  ] as const)("%s on %s's host key: %s is %s", async (from, target, action, expected) => {
    const stackOf = (h: string) => h.split("-")[0];
    const f = await load(stackOf(from));
    const t = await at(stackOf(target), target);
    const policies = hostPolicies(f, from);
    expect(await (action === "ssm:GetParameter" ? getParameter : decryptParameter)(roleArn(from), policies, t)).toBe(expected);
  });

  it("another instance of the account with only AmazonSSMManagedInstanceCore may fetch prod's parameter but not decrypt it (the stack's key, not aws/ssm)", async () => {
    const t = await at("prod", "prod-app-1");
    const other = `arn:aws:iam::${ACCOUNT}:role/some-other-instance`;
    const managed = [{ name: "AmazonSSMManagedInstanceCore", policy: MANAGED.document }];
    // The managed policy's ssm:GetParameter on "*" (no Dockyard deny on this role): only the ciphertext comes back.
    expect(await getParameter(other, managed, t)).toBe("Allowed");
    expect(await decryptParameter(other, managed, t)).toBe("ImplicitlyDenied");
  });

  it("a host role may not list its stack's parameters by path (ssm:GetParametersByPath /dockyard/prod is denied)", async () => {
    const e = await load("prod");
    // Even with a grant for it: the deny wins.
    const broad = { name: "broad", policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "ssm:GetParametersByPath", Resource: "*" }] } };
    const decision = await request(roleArn("prod-app-1"), [...hostPolicies(e, "prod-app-1"), broad], "ssm:GetParametersByPath", `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/dockyard/prod`, {});
    expect(decision).toBe("ExplicitlyDenied");
  });

  it("each stack's host keys are encrypted with that stack's own key, whose policy leaves its use to IAM (no principal outside the account)", async () => {
    for (const stack of ["dev", "test", "prod"]) {
      const e = await load(stack);
      const keys = e.resources.filter((x) => x.type === T.key);
      expect(keys.map((k) => k.name), stack).toEqual([`${stack}-host-keys`]);
      const params = e.resources.filter((x) => x.type === T.param);
      expect(params.length).toBeGreaterThan(0);
      // By the alias's name (what SSM reports back; test/contracts/host-key-alias.test.ts), which targets the key.
      for (const p of params) expect(p.inputs.keyId, p.name).toBe(`alias/dockyard/${stack}/host-keys`);
      // Each host role's kms:Decrypt (conditioned on its PARAMETER_ARN) names the KEY's ARN: KMS
      // authorizes Decrypt against the key an alias resolves to, not against an alias ARN.
      const keyArn = e.fill(`computed(${keys[0].name}.arn)`);
      const reads = e.resources.filter((x) => x.type === T.inline && x.name.endsWith("-host-key-read"));
      expect(reads.length, stack).toBe(params.length);
      for (const r of reads) {
        const decrypt = (JSON.parse(e.fill(String(r.inputs.policy))) as { Statement: { Action: unknown; Resource: unknown; Condition?: Record<string, Record<string, string>> }[] }).Statement.filter((st) => st.Action === "kms:Decrypt");
        expect(decrypt.map((st) => [st.Resource, Object.keys(st.Condition?.StringEquals ?? {}).sort()]), r.name).toEqual([[keyArn, ["kms:EncryptionContext:PARAMETER_ARN", "kms:ViaService"]]]);
      }
      const policy = JSON.parse(e.fill(String(keys[0].inputs.policy))) as { Statement: { Principal: unknown }[] };
      expect(policy.Statement.map((s) => s.Principal)).toEqual([{ AWS: `arn:aws:iam::${ACCOUNT}:root` }]);
      expect(keys[0].inputs).toMatchObject({ enableKeyRotation: true, deletionWindowInDays: 30, region: REGION });
      const aliases = e.resources.filter((x) => x.type === "aws:kms/alias:Alias");
      expect(aliases.map((a) => [a.inputs.name, e.fill(String(a.inputs.targetKeyId))])).toEqual([[`alias/dockyard/${stack}/host-keys`, keyIdOf(stack, `${stack}-host-keys`)]]);
    }
  });
});
