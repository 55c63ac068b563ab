#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, then build with
# -Werror and run every test; then again under AddressSanitizer and
# UndefinedBehaviorSanitizer; then a short run of every fuzz target.
# Prints one summary line "N passed, N failed"
# at the end and exits non-zero if anything failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" || exit 1
# CI must test S3: a missing S3 test server is a failure, not a skip.
export OB_REQUIRE_S3=1
total_pass=0
total_fail=0
run() {
    local log
    log=$(mktemp)
    "$top/tests/run" "$@" 2>&1 | tee "$log"
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    rm -f "$log"
    if [ -z "$line" ]; then
        total_fail=$((total_fail + 1))
        return
    fi
    total_pass=$((total_pass + $(echo "$line" | cut -d' ' -f1)))
    total_fail=$((total_fail + $(echo "$line" | cut -d' ' -f3)))
}
echo "== build with -Werror, run the suite"
run --build "$top/build-ci" --werror
echo "== build with ASan + UBSan, run the suite"
run --build "$top/build-asan" --werror --asan
echo "== fuzz every parser of untrusted bytes briefly (docs/RELIABILITY.md)"
if "$top/scripts/fuzz.sh" --seconds "${OB_FUZZ_SECONDS:-12}"; then
    total_pass=$((total_pass + 1)); echo "PASS fuzz"
else
    total_fail=$((total_fail + 1)); echo "FAIL fuzz"
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
