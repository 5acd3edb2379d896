#!/usr/bin/env bash
# Installs what MicroCare needs to build and test on Debian 12, then configures and builds it.
# Idempotent: packages already present are not reinstalled, and the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build pkg-config
  libboost1.81-dev libboost-url1.81-dev rapidjson-dev libssl-dev libsqlite3-dev libcli11-dev
  libpq-dev                    # the PostgreSQL store (libpq5 at run time)
  postgresql-15                # tests only: tests/pg/pg-server.sh runs a throw-away server from it
  libgtest-dev libgmock-dev libbenchmark-dev openssl ca-certificates
  clang libclang-rt-14-dev
  nodejs npm
  dpkg-dev file python3-yaml   # the .deb's library dependencies (CPack runs file and dpkg-shlibdeps); the manifests' check
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # Node.js and npm may come from elsewhere than Debian; only install them when absent.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  fi
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | grep -v '^$' || true)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir="${MICROCARE_BUILD_DIR:-build}"
# Release (-O3) with the packaged prefix: the build the suite tests is the one that ships, and
# deploy/release.sh installs it as a package would (/usr/bin, /usr/share/microcare, /etc/microcare).
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" \
  -DCMAKE_INSTALL_PREFIX="${CMAKE_INSTALL_PREFIX:-/usr}" >/dev/null
cmake --build "$build_dir" -j2
echo "setup: built $build_dir/microcare"
