#!/usr/bin/env bash
# Sets everything up, builds, and runs MicroCare's main job on its embedded defaults: every
# sample record in config/examples is assessed with the default rule pack, and the transaction
# Bundle MicroCare would write to the EHR is saved next to a summary.
# (Until the service exists this is the offline evaluation; see README.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh >/dev/null
build_dir="${MICROCARE_BUILD_DIR:-build}"
out="$build_dir/run"
mkdir -p "$out"
"$build_dir/microcare" rules check config/rules/microneedling.json
echo
for record in config/examples/*.json; do
  name="$(basename "$record" .json)"
  [ "$name" = expected ] && continue
  echo "== $name"
  "$build_dir/microcare" evaluate --now 2026-11-24T12:00:00Z "$record" >"$out/$name.transaction.json"
  echo "   -> $out/$name.transaction.json"
done
