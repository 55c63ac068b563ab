# Shared helpers for integration tests (sourced).  Each test runs in its own
# scratch directory, removed on success and kept on failure for inspection.
set -euo pipefail

: "${OPSBACKUP:?run through tests/run, which sets OPSBACKUP}"
TOOLS="$OPSBACKUP_TOP/tests/tools"
T=$(mktemp -d "${TMPDIR:-/tmp}/obtest.XXXXXX")
REPO="$T/repo"
export OPSBACKUP_PASSWORD_FILE="$T/password"
printf 'correct horse battery staple\n' >"$OPSBACKUP_PASSWORD_FILE"
chmod 600 "$OPSBACKUP_PASSWORD_FILE"
unset OPSBACKUP_PASSWORD OPSBACKUP_PASSWORD_COMMAND OPSBACKUP_REPOSITORY
# Functions to run at exit before the scratch directory goes (stopping
# servers a test started): add with `on_exit FUNC`.
EXIT_HOOKS=()
on_exit() { EXIT_HOOKS+=("$1"); }
cleanup() {
    local rc=$? h
    for h in "${EXIT_HOOKS[@]}"; do "$h" || true; done
    # 77: the test could not run here (SKIP): nothing to inspect either.
    if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$T"; else echo "scratch kept in $T" >&2; fi
}
trap cleanup EXIT

# Storage under test: a directory (default) or, with OB_TEST_STORAGE=s3, a
# bucket on a private S3 test server started for this test (s3_lib.sh).
# REPO is then an s3:// URL; tests that look at repository files go
# through repo_objects / repo_fingerprint, or skip that part when
# $S3_MODE = 1.
S3_MODE=0
. "$(dirname "${BASH_SOURCE[0]}")/s3_lib.sh"
if [ "${OB_TEST_STORAGE:-posix}" = s3 ]; then
    S3_MODE=1
    s3_available || { echo "FAIL: OB_TEST_STORAGE=s3 but the S3 test server is not installed (scripts/deps.sh)" >&2; exit 1; }
    on_exit s3_stop
    s3_start "$T/s3" || exit 1
    s3_env
    REPO=$(s3_url repo)
fi
# The directory that holds the repository's objects: the repository itself,
# or where the S3 test server keeps them (files named NAME._S3rver_object).
repo_dir() { if [ "$S3_MODE" = 1 ]; then s3_object_dir repo; else echo "$REPO"; fi; }
# repo_objects DIR: names of the objects directly under DIR/ (e.g. locks).
repo_objects() {
    local d
    d="$(repo_dir)/$1"
    [ -d "$d" ] || return 0
    if [ "$S3_MODE" = 1 ]; then
        (cd "$d" && find . -maxdepth 1 -name '*._S3rver_object' -printf '%f\n' | sed 's/\._S3rver_object$//')
    else
        ls "$d"
    fi
}

# ob ARGS...: run opsbackup on the test repository.  --kdf-n keeps key
# derivation cheap; it is harmless for commands that do not derive keys.
ob() { "$OPSBACKUP" -r "$REPO" "$@"; }

fail() { echo "FAIL: $*" >&2; exit 1; }
info() { echo "--- $*"; }

# expect_code N CMD...: run CMD, require exit status N, keep its output in
# $T/out and $T/err.
expect_code() {
    local want=$1; shift
    set +e
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    set -e
    if [ "$got" -ne "$want" ]; then
        echo "stdout:"; cat "$T/out"; echo "stderr:"; cat "$T/err"
        fail "expected exit $want, got $got: $*"
    fi
}

# assert_grep PATTERN FILE
assert_grep() { grep -q -- "$1" "$2" || { cat "$2"; fail "'$1' not found in $2"; }; }

init_repo() { ob init --kdf-n 1024 >/dev/null; }

# json_get FILE EXPR: evaluate a Python expression on the parsed JSON `j`.
json_get() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# Checksums of every file in the repository (to prove it was not touched).
# (In S3 mode: the server's files, whose metadata changes on every write.)
repo_fingerprint() { (cd "$(repo_dir)" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# Soft assertions: `problem MSG` records a failure and lets the test go on,
# so one run reports every broken behaviour; `finish` exits 1 if any was
# recorded.  Use for independent checks; use `fail` when later steps depend
# on the failed one.
PROBLEMS=()
problem() { echo "PROBLEM: $*" >&2; PROBLEMS+=("$*"); }
finish() {
    if [ ${#PROBLEMS[@]} -gt 0 ]; then
        echo "${#PROBLEMS[@]} problem(s):" >&2
        printf '  - %s\n' "${PROBLEMS[@]}" >&2
        exit 1
    fi
    echo "all checks passed"
}

# report_problems PREFIX < <(CMD): turn each line CMD prints into a
# `problem` call.  (Not in a pipeline: that would run it in a subshell.)
report_problems() {
    local line
    while IFS= read -r line; do problem "$1: $line"; done
}

# run_rc CMD...: run CMD with its output in $T/out and $T/err and its exit
# status in $RC; a status >= 128 (killed by a signal: a crash) fails the test.
run_rc() {
    set +e
    "$@" >"$T/out" 2>"$T/err"
    RC=$?
    set -e
    if [ "$RC" -ge 128 ]; then
        echo "stdout:"; cat "$T/out"; echo "stderr:"; cat "$T/err"
        fail "crashed (exit $RC): $*"
    fi
}

# wait_ready FILE PID: wait until FILE has a line starting with "ready"
# (the test tools print it once listening), at most 30 s (a loaded CI
# machine can take seconds to start Python), or until PID has exited.
wait_ready() {
    local i
    for i in $(seq 300); do
        grep -q '^ready' "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^ready' "$1" 2>/dev/null
}

# flip_middle FILE: change the byte in the middle of FILE (a second call
# puts it back), to damage a pack or object where it has data.
flip_middle() {
    python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x5A
open(p, "wb").write(bytes(b))
PY
}

# treecmp A B [options]: atimes are not kept by backups (restore sets
# atime = mtime), so they are never compared.
treecmp() { python3 "$TOOLS/treecmp.py" --ignore-atime "$@"; }
