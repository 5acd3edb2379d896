#!/usr/bin/env bash
# The test suite again on a Release build (-O3), in a build dir of its own: the optimiser warns
# and can misbehave differently from the default build (RelWithDebInfo, -O2). Then that build is
# installed under a scratch DESTDIR, and the installed binary, run from another directory, must
# read the rule pack installed beside it.
# deploy/test.sh runs it after the main suite, with the test-time tools set up and
# MICROCARE_R4_EXAMPLES and MICROCARE_VALIDATOR exported; run alone, it needs the same.
#
# Environment:
#   MICROCARE_RELEASE_BUILD_DIR  build dir of the Release build (build-release)
# Detailed output goes to log files in the build dir; the console gets one line per step.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${MICROCARE_RELEASE_BUILD_DIR:-build-release}"
elapsed() { echo $(($(date +%s) - $1)); }

start=$(date +%s)
mkdir -p "$dir"
# Configured the way a package is (prefix /usr: /usr/share/microcare, /etc/microcare), so that the
# install below has the packaged layout. ctest runs no benchmark and no load driver: not built.
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DMICROCARE_BUILD_BENCHMARKS=OFF >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log"; exit 1; }
if ! cmake --build "$dir" -j2 --target microcare_tests >"$dir/build.log" 2>&1; then
    tail -n 60 "$dir/build.log"
    echo "release: the build in $dir failed (log: $dir/build.log)" >&2
    exit 1
fi
echo "release: built in $(elapsed "$start") s"

test_start=$(date +%s)
status=0
(cd "$dir" && ctest --output-on-failure -j2) >"$dir/ctest.log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    grep -E 'Failed|\*\*\*' "$dir/ctest.log" | head -n 40
fi
echo "release: $(grep -E 'tests passed|tests failed' "$dir/ctest.log" | tail -n 1) (ctest took" \
    "$(elapsed "$test_start") s; log: $dir/ctest.log)"
[ "$status" -eq 0 ] || exit "$status"

# The install, staged. Its pack gets a marked version, which every resource written names: the
# output shows that the staged pack was read, not the source tree's (the build-dir fallback).
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage" cmake --install "$dir" >"$dir/install.log" 2>&1 ||
    { cat "$dir/install.log"; exit 1; }
for f in usr/bin/microcare usr/share/microcare/rules/microneedling.json \
    usr/share/microcare/microcare.json etc/microcare/microcare.json \
    usr/lib/systemd/system/microcare.service; do
    [ -f "$stage/$f" ] || { echo "release: the install lacks /$f" >&2; exit 1; }
done
sed -i '0,/"version": *"/s//&staged-/' "$stage/usr/share/microcare/rules/microneedling.json"
if ! (cd / && env -u MICROCARE_RULES "$stage/usr/bin/microcare" evaluate \
    --now 2026-11-24T12:00:00Z "$stage/usr/share/microcare/examples/absolute-isotretinoin.json") \
    >"$dir/install-evaluate.json" 2>"$dir/install-evaluate.log" ||
    ! grep -q '"staged-1\.0\.0"' "$dir/install-evaluate.json"; then
    cat "$dir/install-evaluate.log"
    echo "release: the installed binary did not use its installed rule pack" >&2
    exit 1
fi
echo "release: installed under DESTDIR, and the installed binary reads its installed pack"
