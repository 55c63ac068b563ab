#!/usr/bin/env bash
# valgrind memcheck over the core commands (issue #11): init, backup files
# (an awkward small tree), snapshots, ls, diff, restore, verify, check
# --read-data, key add/list, copy, forget --prune, config check, run and
# status — each must exit as usual with no invalid access, no use of
# uninitialised memory and no definite leak.  Complements the ASan/UBSan
# build (which valgrind cannot run: that build is reported as SKIP).
. "$(dirname "$0")/lib.sh"

command -v valgrind >/dev/null || fail "valgrind is not installed (scripts/deps.sh installs it)"
if ldd "$OPSBACKUP" | grep -q 'libasan\|libubsan'; then
    echo "the binary is built with ASan/UBSan, which valgrind cannot run; the plain build runs this test"
    exit 77
fi
VG=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --track-origins=yes --child-silent-after-fork=yes
    --trace-children=no)
# vg CMD...: run opsbackup under memcheck; a memcheck finding is exit 99.
vg() {
    set +e
    "${VG[@]}" "$OPSBACKUP" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    set -e
    if [ $rc = 99 ] || grep -q '^==[0-9]*== ' "$T/err"; then
        cat "$T/err"
        problem "memcheck found errors in: opsbackup $*"
    elif [ $rc != 0 ]; then
        cat "$T/out" "$T/err"
        fail "opsbackup $* exited $rc under valgrind"
    fi
}

python3 "$TOOLS/mktree.py" "$T/src" --small-files 150 --big-mb 1 --big-count 1 2>/dev/null
info "repository commands"
vg -r "$REPO" init --kdf-n 1024
vg -r "$REPO" backup files "$T/src"
echo changed >"$T/src/new-file"
vg -r "$REPO" backup files "$T/src"
vg -r "$REPO" snapshots
vg -r "$REPO" --json snapshots
ids=$(python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(open(sys.argv[1]))))' "$T/out")
vg -r "$REPO" ls -l latest
vg -r "$REPO" diff $ids
vg -r "$REPO" restore files latest --target "$T/r"
vg -r "$REPO" verify files latest
vg -r "$REPO" check --read-data
printf 'second password\n' >"$T/pw2"
chmod 600 "$T/pw2"
vg -r "$REPO" key add --kdf-n 1024 --new-password-file "$T/pw2"
vg -r "$REPO" key list
"$OPSBACKUP" -r "$T/repo2" init --kdf-n 1024 >/dev/null
vg copy --from "$REPO" --to "$T/repo2"
vg -r "$REPO" forget --keep-last 1 --prune

info "jobs from a config"
export OPSBACKUP_STATE_DIR="$T/state"
cat >"$T/cfg" <<EOF
[repo.local]
url = $REPO
password-file = $OPSBACKUP_PASSWORD_FILE

[job.files]
kind = files
paths = $T/src/files
schedule = 0 3 * * *
keep-last = 2
verify = true
EOF
chmod 600 "$T/cfg"
vg -c "$T/cfg" config check
vg -c "$T/cfg" run files
vg -c "$T/cfg" status
vg -c "$T/cfg" report --html "$T/report.html"

finish
