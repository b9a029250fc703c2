#!/bin/sh
# run.sh SECONDS TARGET... — for each target, replays the inputs of past
# findings in fuzz/regressions/TARGET, then runs build/fuzz/fuzz_TARGET for
# SECONDS on a scratch copy of fuzz/corpus/TARGET (new inputs land under
# build/, so the committed corpus does not churn), and prints how many inputs
# each target executed. Exits 1 if any target crashed, leaked, timed out or
# made an oversized allocation; the input is then in build/fuzz/artifacts/TARGET/.
set -u
seconds=$1
shift
# A header claiming a huge size that the reader then allocates is a finding
# (-malloc_limit_mb), not a slow pass. A smaller ASan quarantine keeps long
# runs under the RSS limit.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64
export UBSAN_OPTIONS=print_stacktrace=1
limits="-timeout=10 -rss_limit_mb=512 -malloc_limit_mb=256"
failed=""
summary=""
for t in "$@"; do
    bin=build/fuzz/fuzz_$t
    work=build/fuzz/work/$t
    art=build/fuzz/artifacts/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$art"
    cp fuzz/corpus/"$t"/* "$work/corpus/"
    if [ -d "fuzz/regressions/$t" ]; then
        echo "== fuzz_$t: replaying fuzz/regressions/$t"
        if ! "$bin" $limits -artifact_prefix="$art/" fuzz/regressions/"$t"/* >"$work/replay.log" 2>&1; then
            tail -n 40 "$work/replay.log"
            failed="$failed $t"
            summary="$summary
  fuzz_$t: FAILED replaying fuzz/regressions/$t (see $work/replay.log)"
            continue
        fi
    fi
    dict=""
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    echo "== fuzz_$t: $seconds s (log: $work/log)"
    "$bin" -max_total_time="$seconds" -print_final_stats=1 $limits $dict \
        -artifact_prefix="$art/" "$work/corpus" >"$work/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        failed="$failed $t"
        tail -n 40 "$work/log"
        summary="$summary
  fuzz_$t: FAILED after ${execs:-?} executions (exit $rc; see $work/log and $art/)"
    else
        summary="$summary
  fuzz_$t: ${execs:-?} executions in $seconds s, no findings"
    fi
done
echo "== fuzz summary:$summary"
[ -z "$failed" ] || exit 1
