#!/usr/bin/env bash
# The README's no-root promise, checked as a newcomer meets it (issue 15): a user who is
# not root makes a fresh clone, installs its npm packages (`npm ci`) and runs
# `npm run test:unit`, which must pass with nothing else: it runs in its own network
# namespace, where loopback is up but no dockerd, registry or other service listens.
# Then `npm test` as that user must stop at once with test/infra/up.sh's one line.
# Runs as root (it creates the user if missing); .ci/run calls it after `npm test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
user=${DOCKYARD_NEWCOMER:-dockyard-newcomer}
fail() { echo "newcomer check: $*" >&2; exit 1; }
[ "$EUID" -eq 0 ] || { echo "newcomer check: run as root (it creates the user $user)" >&2; exit 2; }
command -v ip >/dev/null || fail "needs ip (iproute2) to bring up loopback in the test's network namespace"

id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
home=$(getent passwd "$user" | cut -d: -f6)
work=$(mktemp -d /tmp/dockyard-newcomer.XXXXXX)
trap 'rm -rf "$work"' EXIT
# What this checkout has committed, as a fresh clone, owned by the user.
git -c advice.detachedHead=false clone --quiet --no-local "$root" "$work/repo"
chown -R "$user:" "$work"

# A command as the user, in the clone, with a plain environment (no root's variables or PATH).
as_user() {
  runuser -u "$user" -- env -i HOME="$home" USER="$user" LANG=C.UTF-8 \
    PATH="$(dirname "$(command -v node)"):/usr/local/bin:/usr/bin:/bin" NPM_CONFIG_UPDATE_NOTIFIER=false CI=true \
    bash -c "cd '$work/repo' && $1"
}

echo "==> as $user (uid $(id -u "$user")): npm ci"
as_user "npm ci --no-audit --no-fund --loglevel=error"

echo "==> as $user, no services reachable: npm run test:unit"
export -f as_user
export user home work
unshare --net bash -c 'ip link set lo up && as_user "npm run test:unit"' \
  || fail "npm run test:unit failed for $user (not root) on a fresh clone; the README promises it needs no root"

echo "==> as $user: npm test must stop at once, saying what it needs"
set +e
out=$(as_user "npm test 2>&1")
code=$?
set -e
printf '%s\n' "$out" | sed 's/^/    /'
[ "$code" -ne 0 ] || fail "npm test as $user exited 0; expected it to refuse"
! grep -q '^==> test/infra/' <<<"$out" || fail "npm test as $user started test/infra steps instead of stopping first"
grep -qx "npm test needs root and Debian's apt .*missing here: root (this is uid [0-9]*)\. Without them, run the unit tests: npm run test:unit" <<<"$out" \
  || fail "npm test as $user did not print up.sh's one line naming root and npm run test:unit"
echo "newcomer check: npm run test:unit passes as $user; npm test stops with one line (exit $code)"
