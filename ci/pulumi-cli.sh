#!/usr/bin/env bash
# Makes the Pulumi CLI that package-lock.json pins the `pulumi` every later step runs, the
# pulumi/actions action included (issue 24 item 13). Run from the repository root after
# `npm ci`, in a GitHub Actions step.
#
# Why: the npm package `pulumi` is a wrapper (node_modules/pulumi/run.js, lib/resolve.js)
# that downloads its CLI into $PULUMI_HOME/versions/<version>/bin on first use, running
# get.pulumi.com's install.sh with stdio inherited, whose progress lines go to stdout
# (install.sh say_green: printf). pulumi/actions (src/libs/pulumi-cli.ts at v7.0.0, getVersion
# and downloadCli) runs `pulumi version` and takes the pulumi on PATH only when it exits 0 and
# its stdout starts with `v`; otherwise it downloads the newest CLI matching `pulumi-version`
# (default ^3) and puts it first on PATH. So the wrapper's first run would hand the action
# another CLI than the pinned one.
#
# What this does: runs the wrapper once (the download happens here, its output shown), checks
# that the downloaded binary says exactly v<pinned>, and puts node_modules/.bin and then that
# binary's directory on PATH (GITHUB_PATH: a later line comes first, actions/runner
# Handler.cs AddPrependPathToEnvironment joins PrependPath reversed), so `pulumi version`
# prints only `v<pinned>` from the first call on. Writes `version=<pinned>` to GITHUB_OUTPUT,
# for the action's `pulumi-version:` input: with it, even a failed check downloads exactly the
# pinned version, never another.
set -euo pipefail

: "${GITHUB_PATH:?run inside GitHub Actions (GITHUB_PATH)}"
: "${GITHUB_OUTPUT:?run inside GitHub Actions (GITHUB_OUTPUT)}"

pinned=$(node -p 'require("./node_modules/pulumi/package.json").version')
locked=$(node -p 'require("./package-lock.json").packages["node_modules/pulumi"].version')
if [ "$pinned" != "$locked" ]; then
  echo "ci/pulumi-cli.sh: node_modules/pulumi is $pinned but package-lock.json pins $locked: run npm ci" >&2
  exit 1
fi

# First use: the wrapper installs the CLI (its own and install.sh's output go to this log).
echo "pulumi $pinned: first run of node_modules/.bin/pulumi (downloads the CLI if not cached)"
node_modules/.bin/pulumi version

bin="${PULUMI_HOME:-$HOME/.pulumi}/versions/$pinned/bin"
if [ ! -x "$bin/pulumi" ]; then
  echo "ci/pulumi-cli.sh: no executable $bin/pulumi after the wrapper's first run" >&2
  exit 1
fi
said=$("$bin/pulumi" version)
if [ "$said" != "v$pinned" ]; then
  echo "ci/pulumi-cli.sh: $bin/pulumi version says \"$said\", not v$pinned (package-lock.json)" >&2
  exit 1
fi

echo "$PWD/node_modules/.bin" >>"$GITHUB_PATH"
echo "$bin" >>"$GITHUB_PATH"
echo "version=$pinned" >>"$GITHUB_OUTPUT"
echo "pulumi v$pinned at $bin, first on PATH for the next steps"
