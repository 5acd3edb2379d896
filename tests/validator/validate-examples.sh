#!/usr/bin/env bash
# Runs `microcare evaluate` on every sample record and validates each transaction Bundle it
# prints (and every resource in it) with Medplum's FHIR R4 validator.
#   validate-examples.sh MICROCARE_BINARY EXAMPLES_DIR OUT_DIR
set -euo pipefail
binary="$1"; examples="$2"; out="$3"
here="$(cd "$(dirname "$0")" && pwd)"
[ -d "$here/node_modules/@medplum/core" ] || {
  echo "validate-examples: run 'npm ci' in tests/validator first (deploy/test.sh does)" >&2; exit 1; }
mkdir -p "$out"
outputs=()
for record in "$examples"/*.json; do
  name="$(basename "$record")"
  [ "$name" = expected.json ] && continue
  "$binary" evaluate --rules "$examples/../rules/microneedling.json" --now 2026-11-24T12:00:00Z \
    "$record" >"$out/$name" 2>"$out/$name.summary"
  outputs+=("$out/$name")
done
[ "${#outputs[@]}" -ge 8 ] || { echo "validate-examples: only ${#outputs[@]} outputs" >&2; exit 1; }
node "$here/validate.mjs" "${outputs[@]}"
