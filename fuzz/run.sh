#!/bin/sh
# run.sh SECONDS TARGET... — runs build/fuzz/fuzz_TARGET for SECONDS each on a
# scratch copy of fuzz/corpus/TARGET (new inputs land under build/, so the
# committed corpus does not churn), then prints each target's executions.
# Exits 1 if any target found a crash, leak, timeout or oversized allocation;
# the input is then in build/fuzz/artifacts/TARGET/.
set -u
seconds=$1
shift
failed=""
summary=""
for t in "$@"; do
    bin=build/fuzz/fuzz_$t
    work=build/fuzz/work/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "build/fuzz/artifacts/$t"
    cp fuzz/corpus/"$t"/* "$work/corpus/"
    dict=""
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    echo "== fuzz_$t: $seconds s (log: $work/log)"
    # -rss_limit_mb / -malloc_limit_mb: a header claiming a huge size that the
    # reader then allocates is a finding, not a slow pass.
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=512 -malloc_limit_mb=256 $dict \
        -artifact_prefix="build/fuzz/artifacts/$t/" "$work/corpus" >"$work/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        failed="$failed $t"
        tail -n 40 "$work/log"
        summary="$summary
  fuzz_$t: FAILED after ${execs:-?} executions (exit $rc; see $work/log, build/fuzz/artifacts/$t/)"
    else
        summary="$summary
  fuzz_$t: ${execs:-?} executions in $seconds s, no findings"
    fi
done
echo "== fuzz summary:$summary"
[ -z "$failed" ] || exit 1
