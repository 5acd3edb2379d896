#!/usr/bin/env bash
# The install of the tested build, staged: the build deploy/setup.sh made (Release, -O3, prefix
# /usr, the packaged layout) is installed under a scratch DESTDIR, and the installed binary, run
# from another directory, must read the rule pack installed beside it. The suite itself ran on
# that same build (deploy/test.sh), so the Release configuration is the one tested; a second
# build just for it would add minutes to CI and test nothing the first does not.
#
# Environment:
#   MICROCARE_BUILD_DIR  the build to install (build)
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${MICROCARE_BUILD_DIR:-build}"

# The install, staged. Its pack gets a marked version, which every resource written names: the
# output shows that the staged pack was read, not the source tree's (the build-dir fallback).
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage" cmake --install "$dir" >"$dir/install.log" 2>&1 ||
    { cat "$dir/install.log"; exit 1; }
for f in usr/bin/microcare usr/share/microcare/rules/microneedling.json \
    usr/share/microcare/microcare.json etc/microcare/microcare.json \
    usr/lib/systemd/system/microcare.service usr/share/microcare/microcare.env.example \
    usr/share/doc/microcare/README.md usr/share/doc/microcare/OPERATIONS.md; do
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
