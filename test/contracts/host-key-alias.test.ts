/**
 * Contract (issue 24 item 5, follow-up): every SecureString SSM parameter names its KMS key
 * by the ALIAS of its stack's own host-key key, the form the provider reads back, so an
 * unchanged program previews no change.
 *
 * Why: terraform-provider-aws internal/service/ssm/parameter.go declares key_id Optional +
 * Computed with no DiffSuppressFunc, and resourceParameterRead sets it from DescribeParameters
 * (findParameterMetadataByName: d.Set(names.AttrKeyID, detail.KeyId)), whose ParameterMetadata
 * KeyId is "the alias of the AWS KMS key used to encrypt the parameter" (SSM API reference).
 * The provider's own acceptance test round-trips exactly that form:
 * internal/service/ssm/parameter_test.go TestAccSSMParameter_Secure_key configures
 * (testAccParameterConfig_secureKey) key_id = "alias/<name>" with depends_on the aws_kms_alias
 * whose target_key_id is the key's id, and asserts the state's key_id is "alias/<name>" after
 * the read; with no key_id (testAccParameterConfig_secure) the read gives "alias/aws/ssm". A
 * bare key id in the program against an alias in the state is a diff on every preview
 * (resourceParameterUpdate: d.HasChange(key_id) -> PutParameter Overwrite), so deploy-prod's
 * `--expect-no-changes` and the drift check would fail on every run.
 *
 * Under the mock runtime a resource's id is `computed(<name>.id)` (scripts/lib/mocks.ts), and
 * the KMS provider's id of a key is its KeyId (internal/service/kms/key.go resourceKeyCreate).
 */
import { describe, expect, it } from "vitest";
import { STACKS } from "../../stacks";
import { computed } from "../../scripts/lib/mocks";
import type { RenderedResource } from "../../scripts/lib/render";
import { contractRender } from "./stacks";

const PARAM = "aws:ssm/parameter:Parameter";
const KEY = "aws:kms/key:Key";
const ALIAS = "aws:kms/alias:Alias";

describe.each([...STACKS])("stack %s: host-key parameters name their key by its alias", (stack) => {
  it("each SecureString parameter's keyId is the name of an alias of this stack whose targetKeyId is the stack's host-key key", async () => {
    const r = await contractRender(stack);
    const of = (type: string) => r.resources.filter((x) => x.type === type);
    const keys = of(KEY).filter((k) => k.name === `${stack}-host-keys`);
    expect(keys.map((k) => k.name), `${stack}: its host-key KMS key`).toEqual([`${stack}-host-keys`]);
    const keyId = computed(keys[0].name, "id");
    const aliases = new Map<string, RenderedResource>(of(ALIAS).map((a) => [String(a.inputs.name), a]));
    const params = of(PARAM).filter((p) => p.inputs.type === "SecureString");
    expect(params.length, `${stack}: SecureString parameters`).toBeGreaterThan(0);
    for (const p of params) {
      const named = p.inputs.keyId;
      expect(typeof named, `${p.name}: keyId is a known name at preview`).toBe("string");
      expect(named as string, `${p.name}: keyId is an alias name (what DescribeParameters reports and the provider reads back)`).toMatch(/^alias\//);
      expect(named as string, `${p.name}: not an AWS managed key`).not.toMatch(/^alias\/aws\//);
      const alias = aliases.get(named as string);
      expect(alias?.name, `${p.name}: keyId ${String(named)} is the name of an aws:kms/alias:Alias of stack ${stack}`).toBeDefined();
      expect(alias!.inputs.targetKeyId, `${alias!.name}: targets ${stack}'s host-key key`).toBe(keyId);
    }
  });
});
