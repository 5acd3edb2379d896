#!/usr/bin/env bash
# Puts the official HL7 FHIR R4 examples (npm package hl7.fhir.r4.examples 4.0.1: about 5,300
# JSON files, one resource each, plus the package's own package.json) into a
# directory, for the tests that parse every official example.
#
#   tests/r4examples/fetch.sh [DIR]      # DIR defaults to build/r4examples
#
# The package's files end up directly in DIR (DIR/Patient-example.json, ...). The run is
# idempotent: when DIR already holds a complete copy (a marker file written last, after the
# count was checked), nothing is downloaded. The tarball comes from the npm registry with
# `npm pack`, which checks it against the registry's sha512 integrity; its sha512 is checked
# again here against the value pinned below. On success the script prints DIR; on any failure
# it prints a message to stderr, leaves DIR as it was, and exits non-zero.
set -euo pipefail

readonly PACKAGE="hl7.fhir.r4.examples"
readonly VERSION="4.0.1"
readonly INTEGRITY="sha512-DXBdIZOeQaSKIgCU7w6HOC7sw/6BzylmipLkBW4f//pT+Bc94x+8LImwTdvaNThPJoOzpBzvxAzNqjeu3X/zLw=="
readonly MIN_JSON_FILES=5000

dest="${1:-build/r4examples}"
marker="${dest}/.microcare-fetched"
expected_marker="${PACKAGE}@${VERSION} ${INTEGRITY}"

die() {
    echo "r4examples/fetch.sh: $*" >&2
    exit 1
}

if [[ -f "$marker" && "$(cat "$marker")" == "$expected_marker" ]]; then
    echo "$dest"
    exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is not installed (needed to download ${PACKAGE}@${VERSION})"
command -v tar >/dev/null 2>&1 || die "tar is not installed"

parent="$(dirname -- "$dest")"
mkdir -p -- "$parent" || die "cannot create ${parent}"
work="$(mktemp -d "${parent}/.r4examples-fetch.XXXXXX")" || die "cannot create a temporary directory in ${parent}"
trap 'rm -rf -- "$work"' EXIT

# npm pack writes <name>-<version>.tgz and reports it (with its integrity) as JSON.
if ! (cd "$work" && npm pack "${PACKAGE}@${VERSION}" --json --loglevel=error >pack.json 2>npm-pack.log); then
    cat "$work/npm-pack.log" >&2 || true
    die "npm pack ${PACKAGE}@${VERSION} failed (is the npm registry reachable? see the npm output above)"
fi
tarball="${work}/${PACKAGE}-${VERSION}.tgz"
[[ -s "$tarball" ]] || die "npm pack did not produce ${tarball##*/}"

actual="sha512-$(openssl dgst -sha512 -binary "$tarball" 2>/dev/null | base64 -w0)" \
    || die "cannot compute the sha512 of ${tarball##*/} (openssl missing?)"
[[ "$actual" == "$INTEGRITY" ]] || die "integrity mismatch for ${tarball##*/}: got ${actual}, expected ${INTEGRITY}"

mkdir "${work}/x"
tar -xzf "$tarball" -C "${work}/x" || die "cannot extract ${tarball##*/}"
[[ -d "${work}/x/package" ]] || die "unexpected tarball layout: no package/ folder in ${tarball##*/}"

count="$(find "${work}/x/package" -type f -name '*.json' | wc -l)"
((count >= MIN_JSON_FILES)) || die "only ${count} JSON files in ${tarball##*/}, expected at least ${MIN_JSON_FILES}"

# Replace DIR in one step so that a half-extracted copy is never left behind.
printf '%s\n' "$expected_marker" >"${work}/x/package/.microcare-fetched"
if [[ -e "$dest" ]]; then
    mv -- "$dest" "${work}/old" || die "cannot move the old ${dest} aside"
fi
mv -- "${work}/x/package" "$dest" || die "cannot move the examples into ${dest}"

echo "$dest"
