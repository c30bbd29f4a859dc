#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (README "Quick start", second command).
#  1. installs the Debian packages the tests drive (real registry, real clients) when missing;
#  2. builds dist/docxy, the binary the integration and end-to-end tests run;
#  3. type-checks, then runs `bun test`;
#  4. ends with a plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

# package:binary pairs; the binary tells whether the package is there.
PACKAGES="docker-registry:/usr/bin/docker-registry skopeo:/usr/bin/skopeo openssl:/usr/bin/openssl
docker.io:/usr/sbin/dockerd containerd:/usr/bin/containerd podman:/usr/bin/podman buildah:/usr/bin/buildah
chromium:/usr/bin/chromium pebble:/usr/bin/pebble docker-compose:/usr/bin/docker-compose
swift-proxy:/usr/bin/swift-proxy-server swift-account:/usr/bin/swift-account-server
swift-container:/usr/bin/swift-container-server swift-object:/usr/bin/swift-object-server
memcached:/usr/bin/memcached redis-server:/usr/bin/redis-server qemu-user-static:/usr/bin/qemu-aarch64-static
tinyproxy:/usr/bin/tinyproxy dante-server:/usr/sbin/danted
binutils:/usr/bin/readelf ca-certificates:/usr/sbin/update-ca-certificates nginx:/usr/sbin/nginx"
missing=()
for pair in $PACKAGES; do [ -x "${pair#*:}" ] || missing+=("${pair%%:*}"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test dependencies: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "could not install ${missing[*]}"; echo "0 passed, 1 failed"; exit 1; }
fi

# The arm64 image and the qemu smoke test take arm64's libc from Debian's libc6:arm64 (scripts/sysroot.ts).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO dpkg --add-architecture arm64 && $SUDO apt-get update -qq || echo "could not add the arm64 architecture: the arm64 tests will say SKIPPED"
fi

[ -x node_modules/.bin/bun ] || npm ci --no-audit --no-fund || { echo "0 passed, 1 failed"; exit 1; }
bun scripts/build.ts || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

failed=0
bun check || failed=1

log=$(mktemp)
# Integration tests start real registries and real clients: 60 s per test is the floor (Bun's
# default is 5 s, and bunfig.toml cannot change it); files that need more set their own.
bun test --timeout 60000 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
failed=$((failed + $(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)))
rm -f "$log"
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1 # bun failed without counting (e.g. a crash)
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
