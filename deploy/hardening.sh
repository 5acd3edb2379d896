#!/usr/bin/env bash
# The hardening part of the test suite (issue 7), each in a build dir of its own:
#   fuzz  - the libFuzzer targets of tests/fuzz (clang, ASan+UBSan): every regression input is
#           replayed, then each target fuzzes from its seeds for MICROCARE_FUZZ_SECONDS.
#   asan  - the unit and integration suites built with g++ under ASan+UBSan, run by ctest.
# Usage: deploy/hardening.sh [fuzz] [asan]   (both when none is named)
#
# Environment:
#   MICROCARE_FUZZ_BUILD_DIR  build dir of the fuzzers (build-fuzz)
#   MICROCARE_ASAN_BUILD_DIR  build dir of the sanitizer build (build-asan)
#   MICROCARE_FUZZ_SECONDS    fuzzing time per target (60)
#   MICROCARE_FUZZ_JOBS       fuzzers run at the same time (2, one per core)
# Detailed output goes to log files in the build dirs; the console gets one line per step.
# A crashing input is kept in <fuzz build dir>/fuzz-artifacts/<target>/: once fixed, it goes to
# tests/fuzz/regressions/<target>/ so that every later run replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_dir="${MICROCARE_FUZZ_BUILD_DIR:-build-fuzz}"
asan_dir="${MICROCARE_ASAN_BUILD_DIR:-build-asan}"
fuzz_seconds="${MICROCARE_FUZZ_SECONDS:-40}"
fuzz_jobs="${MICROCARE_FUZZ_JOBS:-2}"
targets=(json patient_record rule_pack service_config process_message notification cds)

# UBSan stops at the first finding (the builds also pass -fno-sanitize-recover) with a stack.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

phases=("$@")
[ "${#phases[@]}" -eq 0 ] && phases=(fuzz asan)

elapsed() { echo $(($(date +%s) - $1)); }

# Builds quietly into a log; shows its end when it fails.
build() {
    local dir="$1" log="$2"
    shift 2
    if ! cmake --build "$dir" -j2 "$@" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "hardening: the build in $dir failed (log: $log)" >&2
        return 1
    fi
}

# Seeds of each target besides its own tests/fuzz/corpus/<target>/: the project's fixtures.
seed_files() {
    local target="$1"
    find "tests/fuzz/corpus/$target" -type f 2>/dev/null
    case "$target" in
        json) ls config/examples/*.json config/microcare*.json tests/fixtures/bench/*.json ;;
        patient_record) ls config/examples/*.json tests/fixtures/bench/*.json ;;
        rule_pack) ls config/rules/*.json ;;
        service_config) ls config/microcare*.json ;;
    esac
}

# One target: replay its regressions, then fuzz a scratch copy of its seeds (the repo's corpus
# is never written to). Prints one result line; returns non-zero on any crash, leak or timeout.
fuzz_one() {
    local target="$1"
    local binary="$fuzz_dir/tests/fuzz/${target}_fuzz"
    local work artifacts="$fuzz_dir/fuzz-artifacts/$target" log="$fuzz_dir/fuzz-logs/$target.log"
    work="$(mktemp -d)"
    mkdir -p "$work/corpus" "$artifacts" "$(dirname "$log")"
    : >"$log"
    local regressions=()
    if [ -d "tests/fuzz/regressions/$target" ]; then
        mapfile -t regressions < <(find "tests/fuzz/regressions/$target" -type f | sort)
    fi
    if [ "${#regressions[@]}" -gt 0 ] &&
        ! "$binary" "${regressions[@]}" >>"$log" 2>&1; then
        echo "fuzz $target: a regression input fails again (log: $log)"
        grep -E 'ERROR|runtime error|Running:' "$log" | tail -n 5
        rm -rf "$work"
        return 1
    fi
    local i=0
    while IFS= read -r seed; do
        i=$((i + 1))
        cp "$seed" "$work/corpus/seed-$i-$(basename "$seed")"
    done < <(seed_files "$target")
    for seed in "${regressions[@]}"; do cp "$seed" "$work/corpus/"; done

    local status=0
    "$binary" "$work/corpus" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
        -dict=tests/fuzz/fhir.dict -print_final_stats=1 -artifact_prefix="$artifacts/" \
        >>"$log" 2>&1 || status=$?
    rm -rf "$work"
    local runs seconds
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    seconds="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
    if [ "$status" -ne 0 ]; then
        echo "fuzz $target: FAILED (exit $status) after ${runs:-?} runs; input kept in" \
            "$artifacts, log: $log"
        grep -E '^==[0-9]+==ERROR|runtime error|SUMMARY|Test unit written' "$log" | head -n 6
        return 1
    fi
    echo "fuzz $target: ok, ${seconds:-?} s, ${runs:-?} runs, ${#regressions[@]} regression inputs"
}

run_fuzz() {
    local start
    start=$(date +%s)
    if ! command -v clang++ >/dev/null; then
        echo "hardening: clang++ is missing (deploy/setup.sh installs clang and libclang-rt-14-dev)" >&2
        return 1
    fi
    mkdir -p "$fuzz_dir"
    CC=clang CXX=clang++ cmake -S . -B "$fuzz_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DMICROCARE_FUZZ=ON >"$fuzz_dir/configure.log" 2>&1 ||
        { cat "$fuzz_dir/configure.log"; return 1; }
    build "$fuzz_dir" "$fuzz_dir/build.log" || return 1
    echo "fuzz: built ${#targets[@]} targets in $(elapsed "$start") s"

    local run_start failed=0 running=0
    run_start=$(date +%s)
    for target in "${targets[@]}"; do
        if [ "$running" -ge "$fuzz_jobs" ]; then
            wait -n || failed=1
            running=$((running - 1))
        fi
        fuzz_one "$target" &
        running=$((running + 1))
    done
    while [ "$running" -gt 0 ]; do
        wait -n || failed=1
        running=$((running - 1))
    done
    echo "fuzz: $([ "$failed" -eq 0 ] && echo ok || echo FAILED), fuzzing took" \
        "$(elapsed "$run_start") s, $(elapsed "$start") s in all"
    return "$failed"
}

run_asan() {
    local start
    start=$(date +%s)
    mkdir -p "$asan_dir"
    # -O1 -g1, as the sanitizers' documentation advises: line tables are all a report needs, and
    # full debug info at -O2 made this the longest step of CI (about 20 minutes on 2 cores).
    cmake -S . -B "$asan_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
        -DMICROCARE_SANITIZE=address,undefined -DMICROCARE_BUILD_BENCHMARKS=OFF \
        >"$asan_dir/configure.log" 2>&1 || { cat "$asan_dir/configure.log"; return 1; }
    # The program (the integration and rule-pack tests run it) and the GoogleTest suites; not the
    # load driver.
    build "$asan_dir" "$asan_dir/build.log" --target microcare_tests || return 1
    echo "asan: built in $(elapsed "$start") s"

    local test_start status=0 log="$asan_dir/ctest.log"
    test_start=$(date +%s)
    # Left out: the node-based tests (the Medplum validator and EHR run node, not our code), and
    # the accept back-off test, which uses up the process's file descriptors: the sanitizers'
    # memory probe needs a pipe, so UBSan then reports every virtual call as an "invalid vptr".
    local skip='fhir_validator_accepts_evaluate_outputs|end_to_end_against_medplum|medplum_ehr_server'
    skip+='|HttpServerAccept\.FailuresBackOffAndAreLoggedAtMostOncePerSecond'
    (cd "$asan_dir" && ctest --output-on-failure -j2 -E "^($skip)\$") >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        grep -E 'Failed|\*\*\*|ERROR: AddressSanitizer|runtime error|SUMMARY' "$log" | head -n 40
    fi
    echo "asan: $(grep -E 'tests passed|tests failed' "$log" | tail -n 1) (ctest took" \
        "$(elapsed "$test_start") s, $(elapsed "$start") s in all; log: $log)"
    return "$status"
}

failed=0
for phase in "${phases[@]}"; do
    case "$phase" in
        fuzz) run_fuzz || failed=1 ;;
        asan) run_asan || failed=1 ;;
        *) echo "usage: $0 [fuzz] [asan]" >&2; exit 2 ;;
    esac
done
exit "$failed"
