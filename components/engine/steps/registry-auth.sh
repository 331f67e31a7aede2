#!/bin/bash
# Dockyard: docker pulls from the stack's ECR registry authenticate with the instance role
# Part of components/engine/ (written as it is; the values come from the env file); safe to run again.
set -euo pipefail
# shellcheck source=components/engine/lib.sh
. /usr/local/lib/dockyard/lib.sh
# No registry password anywhere (not in user-data, Pulumi state or provider config; a
# 12-hour ECR token in state breaks later previews, pulumi-docker#952/#459): the docker CLI
# asks docker-credential-ecr-login, which gets a token with the instance role each time.

need_cmd "docker-credential-$ECR_CRED_HELPER" "$ECR_CRED_HELPER_PACKAGE" "$ECR_CRED_HELPER_PACKAGE"
# JSON is merged with python3 (set-cred-helper.py), not sed/jq: cloud-init, which runs this script, is itself a
# Python 3 program, so python3 is on every host this user-data reaches (jq often is not).
need_cmd python3 python3 python3

# Sets credHelpers[REGISTRY] = HELPER in USER's ~/.docker/config.json, keeping every other
# setting (auths, credsStore, other helpers); replaced atomically, owned by USER, mode 0600.
# A file that is not a JSON object is left as it is and the step fails.
set_cred_helper() {
  local user=$1 home group dir file tmp
  home=$(getent passwd "$user" | cut -d: -f6)
  if [ -z "$home" ] || [ ! -d "$home" ]; then die "home directory of $user not found"; fi
  group=$(id -gn "$user")
  dir=$home/.docker
  file=$dir/config.json
  if [ -L "$dir" ] || [ -L "$file" ]; then die "$file or its directory is a symlink; refusing to write through it"; fi
  install -d -m 0700 -o "$user" -g "$group" "$dir"
  tmp=$(mktemp "$dir/.config.json.XXXXXX")
  if ! python3 "$DOCKYARD_LIB/set-cred-helper.py" "$file" "$REGISTRY_HOST" "$ECR_CRED_HELPER" >"$tmp"; then
    rm -f "$tmp"
    die "cannot add the $ECR_CRED_HELPER credential helper to $file (not valid JSON?); left it unchanged"
  fi
  chmod 0600 "$tmp"
  chown "$user:$group" "$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file" && [ "$(stat -c '%a %U' "$file")" = "600 $user" ]; then
    rm -f "$tmp"
    log "$file already uses $ECR_CRED_HELPER for $REGISTRY_HOST"
    return 0
  fi
  mv -f "$tmp" "$file"
  log "$file: $REGISTRY_HOST uses the $ECR_CRED_HELPER credential helper"
}

# The fleet pulls as the SSH user; root's config serves operators using sudo docker.
set_cred_helper "$SSH_USER"
set_cred_helper root
