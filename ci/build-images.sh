#!/usr/bin/env bash
# deploy-test's build job (issue 24 item 8): puts every image a stack runs into its ECR
# registry and writes their digests as JSON ({"<name>": "sha256:..."}), for
# scripts/lib/stackfile.ts setImageDigests (the proxy's name, haproxy, is dockyard:proxyImage).
#
#   ci/build-images.sh IMAGES DIGESTS_JSON
#
# IMAGES: the lines of `npx tsx ci/images.ts <stack>` ("<name> <repository>"): every service of
# stacks/environment.yaml, digest or not, and haproxy. Run from the repository root.
#  - a service is built by stacks/services/<name>/build.sh and tagged src-<git tree hash of
#    that directory>; a tag already in the repository is reused, nothing built;
#  - haproxy is copied from HAPROXY_SOURCE (`<image>@sha256:<64 hex>`, pinned by digest) with
#    all its platforms (skopeo copy --all, so the digest is the source's), tagged
#    mirror-<source digest hex>.
# Each digest is read back from ECR (describe-images of the tag). A repository that does not
# exist yet fails with its name: the stack's first `pulumi up` creates it (README "The first
# deploy of a new stack"; up-test runs before this job). Exit 2: bad input, 1: a build or copy failed.
set -euo pipefail

images=${1:?usage: ci/build-images.sh IMAGES DIGESTS_JSON}
out=${2:?usage: ci/build-images.sh IMAGES DIGESTS_JSON}
: "${HAPROXY_SOURCE:=}"

if grep -q '^haproxy ' "$images" && ! [[ "$HAPROXY_SOURCE" =~ ^[a-z0-9][a-z0-9./:_-]*@sha256:[0-9a-f]{64}$ ]]; then
  echo "HAPROXY_SOURCE (repository variable HAPROXY_SOURCE_IMAGE): \"$HAPROXY_SOURCE\" is not an image pinned by digest; allowed: <image>@sha256:<64 hex>, e.g. docker.io/library/haproxy:<version>@sha256:<digest> (README \"One-time set-up\")" >&2
  exit 2
fi

declare -A logged_in=()
login() { # $1 registry host, $2 region
  [ -n "${logged_in[$1]:-}" ] && return 0
  aws ecr get-login-password --region "$2" | docker login --username AWS --password-stdin "$1" >/dev/null
  aws ecr get-login-password --region "$2" | skopeo login --username AWS --password-stdin "$1" >/dev/null
  logged_in[$1]=1
}

digest_of() { # $1 region, $2 repository name, $3 tag: the tag's digest, or nothing
  aws ecr describe-images --region "$1" --repository-name "$2" --image-ids "imageTag=$3" \
    --query 'imageDetails[0].imageDigest' --output text 2>/dev/null || true
}

echo '{}' >"$out"
while read -r name repo; do
  [ -n "$name" ] || continue
  registry=${repo%%/*}
  repo_name=${repo#*/}
  region=$(cut -d. -f4 <<<"$registry")
  if ! aws ecr describe-repositories --region "$region" --repository-names "$repo_name" >/dev/null 2>&1; then
    echo "$name: ECR repository $repo_name does not exist in $region yet; the stack's first pulumi up creates it (README \"The first deploy of a new stack\"), then run this again" >&2
    exit 1
  fi
  if [ "$name" = haproxy ]; then
    tag="mirror-${HAPROXY_SOURCE##*@sha256:}"
  else
    [ -x "stacks/services/$name/build.sh" ] || { echo "$name: no executable stacks/services/$name/build.sh; every service of stacks/environment.yaml is built from there" >&2; exit 2; }
    tag="src-$(git rev-parse "HEAD:stacks/services/$name")"
  fi
  digest=$(digest_of "$region" "$repo_name" "$tag")
  if [[ "$digest" != sha256:* ]]; then
    login "$registry" "$region"
    if [ "$name" = haproxy ]; then
      skopeo copy --all "docker://$HAPROXY_SOURCE" "docker://$repo:$tag"
    else
      "stacks/services/$name/build.sh" "$repo:$tag"
      docker push "$repo:$tag"
    fi
    digest=$(digest_of "$region" "$repo_name" "$tag")
    [[ "$digest" == sha256:* ]] || { echo "$name: pushed $repo:$tag but ECR reports no digest for it" >&2; exit 1; }
  fi
  echo "$name: $repo@$digest ($tag)"
  jq --arg s "$name" --arg d "$digest" '.[$s] = $d' "$out" >"$out.tmp"
  mv "$out.tmp" "$out"
done <"$images"
