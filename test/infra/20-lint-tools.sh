#!/usr/bin/env bash
# Tools the engine's integration tests run on rendered user-data: cloud-init (its
# `cloud-init schema`, Debian's 22.4) and shellcheck. Also openssh-client (ssh-keygen)
# and gpg, which the rendered scripts use. Installing cloud-init here does not run it:
# nothing on this machine boots through it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_packages cloud-init shellcheck openssh-client gpg
cloud-init --version
shellcheck --version | sed -n 2p
