#!/usr/bin/env bash
# Run every libFuzzer target in fuzz/ for a short time (docs/RELIABILITY.md
# "Fuzzing").  Fails on any crash, leak, timeout or undefined behaviour and
# prints the reproducer.
#
#   scripts/fuzz.sh [--seconds N] [--build DIR] [TARGET...]
#
#   --seconds N   per target (default 17: 13 targets stay under 4 minutes)
#   --build DIR   the fuzz build (default build-fuzz); configured here with
#                 clang, -Dfuzz=true and ASan+UBSan if it does not exist
#   TARGET        only these (names without fuzz_, e.g. tree s3_xml)
#
# The committed corpus fuzz/corpus/NAME is read, never written: new inputs
# go to DIR/fuzz-corpus/NAME (kept between runs, so later runs start
# further along) and crash reproducers to DIR/fuzz-artifacts/.  Targets run
# one after another, each in one process (no -jobs: libFuzzer's job mode
# forks workers that log to ./fuzz-N.log and restart until the time is up):
# the CI machine has two cores and other work.  Reproduce a failure with: DIR/fuzz/fuzz_NAME REPRODUCER
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds=17
build="$root/build-fuzz"
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --build) build="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: --seconds takes a whole number" >&2; exit 2 ;; esac

if [ ! -f "$build/build.ninja" ]; then
    command -v clang >/dev/null || { echo "fuzz.sh: clang not found (scripts/deps.sh installs it)" >&2; exit 1; }
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Dtests=false -Dwerror=true \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
# A build failure must say why (CI shows only this script's output).
if ! ninja -C "$build" >"$build/ninja.log" 2>&1; then
    cat "$build/ninja.log" >&2
    echo "fuzz.sh: building the fuzz targets failed" >&2
    exit 1
fi

if [ ${#targets[@]} -eq 0 ]; then
    for f in "$root"/fuzz/fuzz_*.c; do
        t="$(basename "$f" .c)"
        [ "$t" = fuzz_common ] || targets+=("${t#fuzz_}")
    done
fi

# UBSan only prints by default; make every finding fatal so it fails the
# run and leaves a reproducer.  Leaks are checked at exit and per input.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

art="$build/fuzz-artifacts"
mkdir -p "$art"
failed=0 total=0
printf '%-10s %12s %10s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    bin="$build/fuzz/fuzz_$t"
    [ -x "$bin" ] || { echo "fuzz.sh: no target $t ($bin)" >&2; exit 2; }
    scratch="$build/fuzz-corpus/$t"
    mkdir -p "$scratch"
    seeds=()
    [ -d "$root/fuzz/corpus/$t" ] && seeds+=("$root/fuzz/corpus/$t")
    dict="$root/fuzz/dict/$t.dict"
    case "$t" in snapshot|keyslot|object) dict="$root/fuzz/dict/json.dict" ;; esac
    dictopt=()
    [ -f "$dict" ] && dictopt=(-dict="$dict")
    log="$build/fuzz-$t.log"
    # The first corpus directory is where libFuzzer writes new inputs.
    set +e
    "$bin" -max_total_time="$seconds" -detect_leaks=1 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/$t-" \
        "${dictopt[@]}" "$scratch" "${seeds[@]}" >"$log" 2>&1
    rc=$?
    set -e
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    total=$((total + ${execs:-0}))
    if [ $rc -eq 0 ] && ! grep -q 'runtime error:' "$log"; then
        printf '%-10s %12s %10s  %s\n' "$t" "${execs:-?}" "${speed:-?}" ok
    else
        failed=1
        repro="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
        printf '%-10s %12s %10s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "FAILED (exit $rc)"
        grep -E 'ERROR:|runtime error:|SUMMARY:' "$log" | head -5 | sed 's/^/    /'
        echo "    log: $log"
        echo "    reproducer: ${repro:-none written}  (run: $bin ${repro:-INPUT})"
    fi
done
echo "fuzz.sh: ${#targets[@]} targets, $total executions, ${seconds}s each: $([ $failed = 0 ] && echo ok || echo FAILED)"
exit $failed
