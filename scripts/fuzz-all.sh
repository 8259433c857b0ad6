#!/usr/bin/env bash
# fuzz-all.sh [seconds] -- runs every cargo-fuzz target under crates/*/fuzz for N seconds each
# (default 60), one after another, and exits non-zero if any target crashed, timed out, ran out of
# memory or failed to build.
#
# Needs a nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`, `cargo install
# cargo-fuzz`). Corpora grow in crates/<crate>/fuzz/corpus/<target>, crashing inputs land in
# crates/<crate>/fuzz/artifacts/<target>; both are git-ignored. Builds go to $CARGO_TARGET_DIR/fuzz
# when CARGO_TARGET_DIR is set. Only these targets' names: FUZZ_TARGETS="line pickle" fuzz-all.sh 30.
set -uo pipefail
secs=${1:-60}
here=$(cd "$(dirname "$0")/.." && pwd)
target_dir=()
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    target_dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi
logs=$(mktemp -d)
failed=()
summary=()
for dir in "$here"/crates/*/fuzz; do
    crate=$(basename "$(dirname "$dir")")
    cd "$dir" || exit 1
    if ! targets=$(cargo +nightly fuzz list); then
        failed+=("$crate (list)")
        continue
    fi
    for t in $targets; do
        if [[ -n "${FUZZ_TARGETS:-}" && " $FUZZ_TARGETS " != *" $t "* ]]; then
            continue
        fi
        log="$logs/$crate-$t.log"
        echo "== $crate/$t for ${secs}s (log: $log)"
        mkdir -p "corpus/$t"
        cargo +nightly fuzz run "${target_dir[@]}" "$t" -- \
            -max_total_time="$secs" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 >"$log" 2>&1
        rc=$?
        runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
        if [[ $rc -ne 0 ]]; then
            grep -E 'ERROR: libFuzzer|panicked at|SUMMARY|Test unit written|^Failing input' "$log" | head -8
            failed+=("$crate/$t")
            summary+=("$crate/$t: FAILED (exit $rc) after ${runs:-?} runs")
        else
            summary+=("$crate/$t: ok, ${runs:-?} runs")
        fi
    done
done
echo "== summary"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed: ${failed[*]} (logs in $logs)" >&2
    exit 1
fi
