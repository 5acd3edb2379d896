#!/usr/bin/env bash
# Sets everything up, builds, and runs MicroCare end to end on its embedded defaults: a real
# FHIR server (Medplum's FHIR router, from the npm registry) plays the EHR with the sample
# patients of config/examples, `microcare serve` runs with the default rule pack and config,
# microneedling encounters arrive the way an EHR sends them ($process-message and Subscription
# notifications), and what landed on the EHR is printed with where the logs are; then the same
# EHR is polled instead (a `poll` section, deploy/demo/poll-scenario.mjs), and its booked
# appointments screened before the visit (`poll.appointments`, deploy/demo/previsit-scenario.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh >/dev/null
build_dir="${MICROCARE_BUILD_DIR:-build}"
(cd tests/ehr && { [ -d node_modules/@medplum/fhir-router ] || npm ci --no-audit --no-fund --loglevel=error; })
"$build_dir/microcare" rules check config/rules/microneedling.json
echo
node deploy/demo/scenario.mjs --binary "$build_dir/microcare" --work var/demo
echo
# The same EHR pulled instead of pushed: MicroCare polls its search API (`poll` section).
node deploy/demo/poll-scenario.mjs --binary "$build_dir/microcare" --work var/demo-poll
echo
# Before the visit: booked microneedling appointments screened (`poll.appointments`).
node deploy/demo/previsit-scenario.mjs --binary "$build_dir/microcare" --work var/demo-previsit
