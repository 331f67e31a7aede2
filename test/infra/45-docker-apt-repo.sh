#!/usr/bin/env bash
# A local stand-in for Docker's apt repository (https://download.docker.com/linux/debian),
# so the shipped engine channel (docker-ce, the exact version pinned in
# stacks/environment.yaml, Signed-By a key checked against a fingerprint) boots for real
# in test/host/engine.int.test.ts. download.docker.com is not reachable from here.
#
# Laid out and signed like Docker's: <url>/dists/bookworm/stable/binary-<arch>/, an
# InRelease signed by a test key (generated here, no passphrase), and the armored public
# key at <url>/gpg. Served over HTTPS (a test CA and a server certificate with an IP SAN
# for the docker0 gateway, where the host containers reach this machine) by a small
# python3 server that keeps running after this script exits.
#
# WHAT THE PACKAGES REALLY ARE: nothing can be downloaded from Docker, so they are
# repackaged from Debian. The engine inside "docker-ce" is DEBIAN'S docker.io (dockerd
# 20.10.24+dfsg1 from bookworm), NOT Docker's 28.5.1; only the package name and version
# string are Docker's. Debian's docker.io declares Conflicts: docker-ce, docker-ce-cli, so
# a docker-ce that merely depends on docker.io cannot be installed; instead:
#   docker-ce      <pinned version>  docker.io's files (dockerd, units, maintainer scripts)
#                                    minus the CLI; Depends: docker.io's own dependencies
#                                    (containerd, runc, iptables, tini... from Debian's
#                                    mirror on the host), containerd.io, docker-ce-cli
#   docker-ce-cli  <pinned version>  docker.io's /usr/bin/docker and its completions
#   containerd.io  CONTAINERD_IO_VERSION, empty; Depends: containerd, runc (Debian's)
# So the test proves the repository, key check, pin, hold and install path of the
# user-data, not Docker's 28.5.1 binaries.
#
# Writes $DOCKYARD_TEST_STATE/docker-apt-repo/repo.json for the tests: url, the test key's
# fingerprint, the test CA and a CA bundle (the host image's bundle plus the test CA).
# Idempotent: the key and CA are made once; the repository is rebuilt only when its
# inputs change; a server already serving the current files and certificate is left alone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)

need_packages reprepro gnupg gpgv openssl python3 curl iproute2

dir="$DOCKYARD_TEST_STATE/docker-apt-repo"
port=3443
# The distribution and component of Docker's Debian repository for bookworm.
codename=bookworm
component=stable
CONTAINERD_IO_VERSION="1.6.20-0dockyard.test~debian.12~bookworm"
arch=$(dpkg --print-architecture)
mkdir -p "$dir"
chmod 0700 "$dir"

# --- the pinned version ------------------------------------------------------------------
# engine.version in the environment definition (the one place it is written).
version=$(awk '/^engine:/ { e = 1; next } /^[^[:space:]#]/ { e = 0 }
  e && $1 == "version:" { v = $2; gsub(/["\047]/, "", v); print v; exit }' "$root/stacks/environment.yaml")
[[ "$version" =~ ^[0-9]+:[0-9][A-Za-z0-9.+~-]*$ ]] || {
  echo "cannot read engine.version from stacks/environment.yaml (got '$version')" >&2
  exit 1
}

# --- the docker0 gateway: the address host containers reach this machine at ----------------
gw=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')
if [ -z "$gw" ]; then
  # Debian's dockerd 20.10 leaves Gateway out of the default bridge's IPAM config.
  br=$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}')
  gw=$(ip -4 -o addr show dev "${br:-docker0}" | awk '{ split($4, a, "/"); print a[1]; exit }')
fi
[[ "$gw" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "cannot find docker0's gateway address (got '$gw')" >&2; exit 1; }
url="https://$gw:$port/linux/debian"

# --- the signing key (made once) ----------------------------------------------------------
export GNUPGHOME="$dir/gnupg"
if [ ! -s "$dir/key-fingerprint" ]; then
  rm -rf "$GNUPGHOME"
  install -d -m 0700 "$GNUPGHOME"
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "Dockyard test apt repository (NOT Docker) <apt-test@dockyard.invalid>" rsa4096 sign never
  gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }' >"$dir/key-fingerprint.tmp"
  mv "$dir/key-fingerprint.tmp" "$dir/key-fingerprint"
fi
fpr=$(cat "$dir/key-fingerprint")
[[ "$fpr" =~ ^[0-9A-F]{40}$ ]] || { echo "bad test key fingerprint '$fpr' in $dir/key-fingerprint" >&2; exit 1; }

# --- test CA and server certificate --------------------------------------------------------
if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=Dockyard test CA (apt repository)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  rm -f "$dir/server.pem"
fi
cert_ok() {
  [ -s "$dir/server.pem" ] && [ -s "$dir/server.key" ] \
    && openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" >/dev/null 2>&1 \
    && openssl x509 -in "$dir/server.pem" -noout -checkend 86400 >/dev/null \
    && openssl x509 -in "$dir/server.pem" -noout -ext subjectAltName | grep -q "IP Address:$gw\(,\|$\)"
}
if ! cert_ok; then
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$gw" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:$gw,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" >"$dir/server.ext"
  openssl x509 -req -sha256 -days 825 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
  cert_ok || { echo "the new server certificate does not verify" >&2; exit 1; }
  echo "issued a test server certificate for $gw"
fi
# What the hosts trust: their own image's bundle plus the test CA (bind-mounted over
# /etc/ssl/certs/ca-certificates.crt by test/host/harness.ts; curl and apt read it).
if docker image inspect dockyard/host:latest >/dev/null 2>&1; then
  docker run --rm --entrypoint cat dockyard/host:latest /etc/ssl/certs/ca-certificates.crt >"$dir/ca-bundle.crt.tmp"
else
  cat /etc/ssl/certs/ca-certificates.crt >"$dir/ca-bundle.crt.tmp"
fi
cat "$dir/ca.pem" >>"$dir/ca-bundle.crt.tmp"
chmod 0644 "$dir/ca-bundle.crt.tmp"
mv "$dir/ca-bundle.crt.tmp" "$dir/ca-bundle.crt"

# --- the packages and the repository (rebuilt when an input changes) -----------------------
debs="$dir/debian"
mkdir -p "$debs"
# Debian's docker.io, the version apt offers this (bookworm) machine.
docker_io_version=$(apt-cache policy docker.io | awk '/Candidate:/ { print $2 }')
if [ -z "$docker_io_version" ] || [ "$docker_io_version" = "(none)" ]; then echo "apt offers no docker.io" >&2; exit 1; fi
docker_io_deb="$debs/docker.io_${docker_io_version//:/%3a}_$arch.deb"
if [ ! -s "$docker_io_deb" ]; then
  rm -f "$debs"/docker.io_*.deb
  # Checked by the file it leaves, below (apt warns that _apt cannot write to $debs).
  (cd "$debs" && { apt-get download -q "docker.io=$docker_io_version" 2>&1 | grep -v "couldn't be accessed by user '_apt'" || true; })
  [ -s "$docker_io_deb" ] || { echo "apt-get download docker.io=$docker_io_version did not produce $docker_io_deb" >&2; exit 1; }
fi

www="$dir/www"
repo="$www/linux/debian"
inputs=$(printf '%s\n' "$(sha256sum "$0")" "$version" "$CONTAINERD_IO_VERSION" "$arch" "$fpr" "$(sha256sum "$docker_io_deb")" | sha256sum | cut -c1-16)
if [ "$(cat "$repo/.inputs" 2>/dev/null || true)" = "$inputs" ]; then
  echo "docker-ce test repository already built ($version)"
else
  work=$(mktemp -d "$dir/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  export SOURCE_DATE_EPOCH=1700000000
  maintainer="Dockyard tests <apt-test@dockyard.invalid>"
  note="TEST PACKAGE for Dockyard's host tests, NOT Docker's: the engine is Debian's docker.io $docker_io_version"

  # docker.io unpacked, split into the daemon (docker-ce) and the CLI (docker-ce-cli).
  dpkg-deb -R "$docker_io_deb" "$work/ce"
  mkdir -p "$work/cli/DEBIAN"
  for f in usr/bin/docker usr/share/bash-completion/completions/docker usr/share/fish/vendor_completions.d/docker.fish usr/share/zsh/vendor-completions/_docker; do
    [ -e "$work/ce/$f" ] || continue
    mkdir -p "$(dirname "$work/cli/$f")"
    mv "$work/ce/$f" "$work/cli/$f"
  done
  [ -x "$work/cli/usr/bin/docker" ] || { echo "docker.io has no /usr/bin/docker" >&2; exit 1; }
  rm -f "$work/ce/DEBIAN/md5sums"
  depends=$(awk -F': ' '$1 == "Depends" { print $2 }' "$work/ce/DEBIAN/control")
  predepends=$(awk -F': ' '$1 == "Pre-Depends" { print $2 }' "$work/ce/DEBIAN/control")
  # The maintainer scripts and conffiles stay docker.io's own (docker group, units enabled).
  cat >"$work/ce/DEBIAN/control" <<EOF
Package: docker-ce
Version: $version
Architecture: $arch
Maintainer: $maintainer
Pre-Depends: $predepends
Depends: $depends, containerd.io, docker-ce-cli
Conflicts: docker.io, docker-engine
Section: admin
Priority: optional
Description: Docker daemon (test repackaging of Debian's docker.io)
 $note.
 Only the package name and version imitate Docker's docker-ce.
EOF
  cat >"$work/cli/DEBIAN/control" <<EOF
Package: docker-ce-cli
Version: $version
Architecture: $arch
Maintainer: $maintainer
Depends: libc6
Conflicts: docker.io
Section: admin
Priority: optional
Description: Docker CLI (test repackaging of Debian's docker.io client)
 $note.
EOF
  mkdir -p "$work/containerd/DEBIAN"
  cat >"$work/containerd/DEBIAN/control" <<EOF
Package: containerd.io
Version: $CONTAINERD_IO_VERSION
Architecture: $arch
Maintainer: $maintainer
Depends: containerd, runc
Section: admin
Priority: optional
Description: containerd runtime (test stand-in: depends on Debian's containerd and runc)
 TEST PACKAGE for Dockyard's host tests, NOT Docker's containerd.io: it ships no files;
 the runtime is Debian's containerd and runc, installed as its dependencies.
EOF
  mkdir -p "$work/out"
  for p in ce cli containerd; do
    dpkg-deb --root-owner-group -Zgzip -z1 -b "$work/$p" "$work/out" >/dev/null
  done

  # reprepro: dists/bookworm/stable/binary-<arch>, InRelease and Release.gpg signed by the test key.
  mkdir -p "$work/repo/conf"
  cat >"$work/repo/conf/distributions" <<EOF
Origin: Dockyard test
Label: Dockyard test mirror of Docker's repository layout
Codename: $codename
Architectures: $arch
Components: $component
Description: Test packages repackaged from Debian (NOT Docker's)
SignWith: $fpr
EOF
  reprepro -b "$work/repo" --silent includedeb "$codename" "$work"/out/*.deb
  rm -rf "$work/repo/conf" "$work/repo/db"
  gpg --batch --armor --export "$fpr" >"$work/repo/gpg"
  echo "$inputs" >"$work/repo/.inputs"

  # Swap the new tree in (the server serves whatever is on disk under $www).
  mkdir -p "$www/linux"
  if [ -d "$repo" ]; then mv "$repo" "$work/old"; fi
  mv "$work/repo" "$repo"
  echo "built docker-ce test repository: docker-ce/docker-ce-cli $version, containerd.io $CONTAINERD_IO_VERSION (engine: Debian's docker.io $docker_io_version)"
fi

# --- a stand-in for AWS's SSM agent package (issue 11) ---------------------------------------
# Laid out like AWS's bucket (<url>/amazon-ssm-agent.deb and .deb.sig, a detached GnuPG
# signature) and signed by the same test key, so the user-data's ssm-agent step downloads,
# checks the signature against a pinned fingerprint and installs it for real. The package
# is NOT AWS's agent: it only installs amazon-ssm-agent.service, which sleeps. A tampered
# copy (one byte appended, the original signature) must be refused.
ssm="$www/amazon-ssm/latest/debian_$arch"
ssm_inputs=$(printf '%s\n' "$(sha256sum "$0")" "$fpr" "$arch" | sha256sum | cut -c1-16)
if [ "$(cat "$ssm/.inputs" 2>/dev/null || true)" != "$ssm_inputs" ]; then
  sw=$(mktemp -d "$dir/ssm.XXXXXX")
  mkdir -p "$sw/pkg/DEBIAN" "$sw/pkg/lib/systemd/system"
  printf '%s\n' "Package: amazon-ssm-agent" "Version: 3.3.0.0-0dockyard.test" "Architecture: $arch" \
    "Maintainer: Dockyard tests <apt-test@dockyard.invalid>" "Section: admin" "Priority: optional" \
    "Description: TEST STAND-IN for the AWS SSM agent (NOT AWS's): a unit that sleeps" >"$sw/pkg/DEBIAN/control"
  printf '%s\n' "[Unit]" "Description=TEST STAND-IN for amazon-ssm-agent (Dockyard host tests; NOT AWS's agent)" \
    "[Service]" "ExecStart=/bin/sleep infinity" "[Install]" "WantedBy=multi-user.target" >"$sw/pkg/lib/systemd/system/amazon-ssm-agent.service"
  mkdir -p "$sw/out/ok" "$sw/out/tampered"
  SOURCE_DATE_EPOCH=1700000000 dpkg-deb --root-owner-group -Zgzip -z1 -b "$sw/pkg" "$sw/out/ok/amazon-ssm-agent.deb" >/dev/null
  gpg --batch --yes --local-user "$fpr" --detach-sign -o "$sw/out/ok/amazon-ssm-agent.deb.sig" "$sw/out/ok/amazon-ssm-agent.deb"
  cp "$sw/out/ok/amazon-ssm-agent.deb" "$sw/out/ok/amazon-ssm-agent.deb.sig" "$sw/out/tampered/"
  printf 'x' >>"$sw/out/tampered/amazon-ssm-agent.deb"
  gpg --batch --armor --export "$fpr" >"$sw/out/ok/signing-key.asc"
  echo "$ssm_inputs" >"$sw/out/ok/.inputs"
  rm -rf "$ssm" "$www/amazon-ssm-tampered"
  mkdir -p "$(dirname "$ssm")" "$www/amazon-ssm-tampered/latest"
  mv "$sw/out/tampered" "$www/amazon-ssm-tampered/latest/debian_$arch"
  mv "$sw/out/ok" "$ssm"
  rm -rf "$sw"
  echo "built the SSM agent stand-in (signed by the test key)"
fi
ssm_url="https://$gw:$port/amazon-ssm/latest/debian_$arch"

# --- the HTTPS server ----------------------------------------------------------------------
cat >"$dir/serve.py" <<'PY'
# Serves a directory over HTTPS (test apt repository). Each connection's TLS handshake
# happens in its own thread, so a stalled client cannot block the others.
import functools, http.server, ssl, sys
addr, port, root, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def finish_request(self, request, client_address):
        request.settimeout(60)
        with ctx.wrap_socket(request, server_side=True) as tls:
            self.RequestHandlerClass(tls, client_address, self)

Server((addr, port), functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)).serve_forever()
PY
# The server's identity: a restart is needed when the address, files root or certificate change.
server_id=$(printf '%s\n' "$gw:$port" "$www" "$(sha256sum "$dir/server.pem" "$dir/serve.py")" | sha256sum | cut -c1-16)
serving() {
  curl -fsS --max-time 10 --cacert "$dir/ca.pem" "$url/gpg" 2>/dev/null | cmp -s - "$repo/gpg"
}
running() { [ -f "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; }
if running && [ "$(cat "$dir/server.id" 2>/dev/null || true)" = "$server_id" ] && serving; then
  echo "docker-ce test repository already served at $url"
else
  if running; then kill "$(cat "$dir/server.pid")"; wait_for 10 bash -c "! kill -0 $(cat "$dir/server.pid")"; fi
  # setsid + nohup: keeps serving after this script (and npm test's shell) exits.
  setsid nohup /usr/bin/python3 "$dir/serve.py" "$gw" "$port" "$www" "$dir/server.pem" "$dir/server.key" \
    >"$dir/server.log" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"
  echo "$server_id" >"$dir/server.id"
  wait_for 30 serving || { tail -20 "$dir/server.log" >&2; exit 1; }
  echo "docker-ce test repository served at $url"
fi

# apt's view of it, as a host will see it: signed, the pinned versions present.
check=$(mktemp -d)
trap 'rm -rf "$check" "${work:-}"' EXIT
curl -fsS --cacert "$dir/ca.pem" "$url/dists/$codename/InRelease" >"$check/InRelease"
gpg --batch --dearmor <"$repo/gpg" >"$check/k.gpg"
gpgv --keyring "$check/k.gpg" "$check/InRelease" 2>/dev/null || { echo "InRelease does not verify with $url/gpg" >&2; exit 1; }
curl -fsS --cacert "$dir/ca.pem" "$url/dists/$codename/$component/binary-$arch/Packages" \
  | grep -qx "Version: $version" || { echo "$url has no packages at version $version" >&2; exit 1; }

cat >"$dir/repo.json.tmp" <<EOF
{
  "url": "$url",
  "keyFingerprint": "$fpr",
  "version": "$version",
  "engineFrom": "Debian docker.io $docker_io_version",
  "caCert": "$dir/ca.pem",
  "caBundle": "$dir/ca-bundle.crt",
  "ssmAgentUrl": "$ssm_url",
  "ssmAgentTamperedUrl": "https://$gw:$port/amazon-ssm-tampered/latest/debian_$arch",
  "ssmAgentKey": "$ssm/signing-key.asc"
}
EOF
mv "$dir/repo.json.tmp" "$dir/repo.json"
echo "test key fingerprint $fpr (in $dir/repo.json)"
