# Shared helpers for integration tests (sourced).  Each test runs in its own
# scratch directory, removed on success and kept on failure for inspection.
set -euo pipefail

: "${OPSBACKUP:?run through tests/run, which sets OPSBACKUP}"
TOOLS="$OPSBACKUP_TOP/tests/tools"
T=$(mktemp -d "${TMPDIR:-/tmp}/obtest.XXXXXX")
REPO="$T/repo"
export OPSBACKUP_PASSWORD_FILE="$T/password"
printf 'correct horse battery staple\n' >"$OPSBACKUP_PASSWORD_FILE"
unset OPSBACKUP_PASSWORD OPSBACKUP_PASSWORD_COMMAND OPSBACKUP_REPOSITORY
cleanup() {
    local rc=$?
    if [ $rc -eq 0 ]; then rm -rf "$T"; else echo "scratch kept in $T" >&2; fi
}
trap cleanup EXIT

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
repo_fingerprint() { (cd "$REPO" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

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

# treecmp A B [options]: atimes are not kept by backups (restore sets
# atime = mtime), so they are never compared.
treecmp() { python3 "$TOOLS/treecmp.py" --ignore-atime "$@"; }
