# shellcheck shell=sh
# Dockyard: DockerEngine's ready check, run over SSH as the SSH user (POSIX sh, any login
# shell). renderReadyCommand puts the values first: TIMEOUT, INSTANCE_ID (empty: not
# checked), FINGERPRINT, READY_MARKER, CLOUD_INIT_INSTANCE_ID. Prints the engine's
# version as the only line on stdout.
set -eu
# cloud-init's exit code is not the verdict (newer releases exit 2 on mere warnings);
# the marker is: the bootstrap writes it only after every step succeeded.
rc=0
timeout "$TIMEOUT" cloud-init status --wait >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 124 ] || { echo "dockyard: cloud-init still running on $(hostname) after ${TIMEOUT}s" >&2; exit 1; }
# A replaced host keeps its address and host key: only the instance id tells them apart.
if [ -n "$INSTANCE_ID" ]; then
  got=$(cat "$CLOUD_INIT_INSTANCE_ID" 2>/dev/null || true)
  [ "$got" = "$INSTANCE_ID" ] || { echo "dockyard: the address reached $(hostname), instance '$got', not $INSTANCE_ID: it still points at another instance" >&2; exit 1; }
fi
i=0
until [ -f "$READY_MARKER" ]; do
  i=$((i + 1))
  [ "$i" -le 12 ] || { cloud-init status --long >&2 || true; echo "dockyard: $READY_MARKER missing on $(hostname): provisioning failed, see /var/log/cloud-init-output.log" >&2; exit 1; }
  sleep 5
done
grep -qx "fingerprint=$FINGERPRINT" "$READY_MARKER" || { echo "dockyard: $(hostname) was provisioned for another engine configuration (want fingerprint $FINGERPRINT); the host must be replaced" >&2; exit 1; }
i=0
# sg: this login may predate the user's docker group membership.
until v=$(sg docker -c "docker version --format '{{.Server.Version}}'" 2>/dev/null) && [ -n "$v" ]; do
  i=$((i + 1))
  [ "$i" -le 30 ] || { echo "dockyard: docker does not answer on $(hostname)" >&2; exit 1; }
  sleep 2
done
echo "$v"
