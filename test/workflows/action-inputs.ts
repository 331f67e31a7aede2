/**
 * The inputs each pinned action's action.yml marks deprecated (`deprecationMessage:`), read
 * from the action.yml at the pinned commit (git show <sha>:action.yml of each repository).
 * checkDeprecatedInputs refuses a `with:` key listed here, and refuses a pinned action that
 * has no entry (a new pin is read before it is used).
 */
export interface PinnedActionInputs {
  /** The release the SHA is tagged with (git tag --points-at <sha>). */
  release: string;
  /** input name -> the action.yml's deprecationMessage. */
  deprecated: Record<string, string>;
}

export const ACTION_INPUTS: Record<string, PinnedActionInputs> = {
  // action.yml lines 11-14: app-id, deprecationMessage "Use 'client-id' instead."; client-id at line 8.
  "actions/create-github-app-token@1b10c78c7865c340bc4f6099eb2f838309f1e8c3": { release: "v3.1.1", deprecated: { "app-id": "Use 'client-id' instead." } },
  // No input of these action.yml files carries a deprecationMessage.
  "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1": { release: "v7.0.1", deprecated: {} },
  "actions/setup-node@820762786026740c76f36085b0efc47a31fe5020": { release: "v7.0.0", deprecated: {} },
  "aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c": { release: "v6.2.3", deprecated: {} },
  "pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d": { release: "v7.0.0", deprecated: {} },
};
