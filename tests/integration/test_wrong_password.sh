#!/usr/bin/env bash
# A wrong password opens nothing and changes nothing; password sources are
# used in the CLI.md order: --password-file, OPSBACKUP_PASSWORD_FILE,
# OPSBACKUP_PASSWORD_COMMAND, OPSBACKUP_PASSWORD (first found wins, even
# when it is wrong); a failing password command is a clear error.
. "$(dirname "$0")/lib.sh"

src="$T/src"
mkdir -p "$src"
echo "some data" >"$src/file.txt"
init_repo
ob --json backup files "$src" >"$T/b1.json"
s1=$(json_get "$T/b1.json" 'j["id"]')

good="$OPSBACKUP_PASSWORD_FILE"
right=$(cat "$good")
printf 'Tr0ub4dor&3\n' >"$T/wrong"
wrong=$(cat "$T/wrong")

info "wrong password in OPSBACKUP_PASSWORD_FILE"
repo_fingerprint >"$T/fp.before"
export OPSBACKUP_PASSWORD_FILE="$T/wrong"
for cmd in "snapshots" "backup files $src" "restore files $s1 --target $T/dst" "ls $s1" "check"; do
    # shellcheck disable=SC2086
    run_rc ob $cmd
    [ "$RC" = 1 ] || problem "'$cmd' with a wrong password exited $RC, expected 1"
    grep -qi "wrong password" "$T/err" || { cat "$T/err"; problem "'$cmd': no 'wrong password' in the message"; }
done
[ ! -e "$T/dst" ] || problem "restore with a wrong password created the target directory"
repo_fingerprint >"$T/fp.after"
cmp -s "$T/fp.before" "$T/fp.after" || { diff "$T/fp.before" "$T/fp.after" || true; problem "the repository changed after wrong-password attempts"; }
[ -z "$(repo_objects locks)" ] || problem "a wrong-password attempt left a lock behind"
export OPSBACKUP_PASSWORD_FILE="$good"
ob snapshots >/dev/null || fail "the right password no longer opens the repository"

# opens WHAT: run `snapshots` with the password sources set up by the caller
# and require success (right) or "wrong password" (wrong).
opens() {
    local want=$1 what=$2
    run_rc ob snapshots
    if [ "$want" = yes ]; then
        [ "$RC" = 0 ] || { cat "$T/err"; problem "$what: expected to open, got exit $RC"; }
    else
        [ "$RC" = 1 ] && grep -qi "wrong password" "$T/err" ||
            { cat "$T/err"; problem "$what: expected 'wrong password' (exit 1), got exit $RC"; }
    fi
}

printf '#!/bin/sh\necho "%s"\n' "$right" >"$T/pw-right.sh"
printf '#!/bin/sh\necho "%s"\n' "$wrong" >"$T/pw-wrong.sh"
chmod +x "$T/pw-right.sh" "$T/pw-wrong.sh"

info "--password-file beats every environment variable"
(
    export OPSBACKUP_PASSWORD_FILE="$T/wrong" OPSBACKUP_PASSWORD_COMMAND="$T/pw-wrong.sh" OPSBACKUP_PASSWORD="$wrong"
    ob() { "$OPSBACKUP" -r "$REPO" --password-file "$good" "$@"; }
    opens yes "--password-file right, all env wrong"
    ob() { "$OPSBACKUP" -r "$REPO" --password-file "$T/wrong" "$@"; }
    export OPSBACKUP_PASSWORD_FILE="$good" OPSBACKUP_PASSWORD_COMMAND="$T/pw-right.sh" OPSBACKUP_PASSWORD="$right"
    opens no "--password-file wrong, all env right"
    # also after the command name
    ob() { "$OPSBACKUP" -r "$REPO" "$@"; }
    export OPSBACKUP_PASSWORD_FILE="$T/wrong"
    run_rc "$OPSBACKUP" -r "$REPO" snapshots --password-file "$good"
    [ "$RC" = 0 ] || problem "--password-file after the command name is not used (exit $RC)"
    [ ${#PROBLEMS[@]} -eq 0 ] || exit 1
) || problem "password-file precedence"

info "OPSBACKUP_PASSWORD_FILE beats OPSBACKUP_PASSWORD_COMMAND and OPSBACKUP_PASSWORD"
(
    export OPSBACKUP_PASSWORD_FILE="$good" OPSBACKUP_PASSWORD_COMMAND="$T/pw-wrong.sh" OPSBACKUP_PASSWORD="$wrong"
    opens yes "PASSWORD_FILE right, COMMAND and PASSWORD wrong"
    export OPSBACKUP_PASSWORD_FILE="$T/wrong" OPSBACKUP_PASSWORD_COMMAND="$T/pw-right.sh" OPSBACKUP_PASSWORD="$right"
    opens no "PASSWORD_FILE wrong, COMMAND and PASSWORD right"
    [ ${#PROBLEMS[@]} -eq 0 ] || exit 1
) || problem "OPSBACKUP_PASSWORD_FILE precedence"

info "OPSBACKUP_PASSWORD_COMMAND beats OPSBACKUP_PASSWORD"
(
    unset OPSBACKUP_PASSWORD_FILE
    export OPSBACKUP_PASSWORD_COMMAND="$T/pw-right.sh" OPSBACKUP_PASSWORD="$wrong"
    opens yes "COMMAND right, PASSWORD wrong"
    export OPSBACKUP_PASSWORD_COMMAND="$T/pw-wrong.sh" OPSBACKUP_PASSWORD="$right"
    opens no "COMMAND wrong, PASSWORD right"
    # a shell command line, not just a program
    export OPSBACKUP_PASSWORD_COMMAND="cat '$good' | head -n 1"
    opens yes "COMMAND as a shell pipeline"
    [ ${#PROBLEMS[@]} -eq 0 ] || exit 1
) || problem "OPSBACKUP_PASSWORD_COMMAND precedence"

info "OPSBACKUP_PASSWORD alone"
(
    unset OPSBACKUP_PASSWORD_FILE OPSBACKUP_PASSWORD_COMMAND
    export OPSBACKUP_PASSWORD="$right"
    opens yes "PASSWORD right"
    export OPSBACKUP_PASSWORD="$wrong"
    opens no "PASSWORD wrong"
    # an empty variable counts as unset: the next source is used
    export OPSBACKUP_PASSWORD_FILE="" OPSBACKUP_PASSWORD_COMMAND="" OPSBACKUP_PASSWORD="$right"
    opens yes "empty PASSWORD_FILE and COMMAND, PASSWORD right"
    [ ${#PROBLEMS[@]} -eq 0 ] || exit 1
) || problem "OPSBACKUP_PASSWORD"

info "a failing OPSBACKUP_PASSWORD_COMMAND is an error, even if it printed the right password"
(
    unset OPSBACKUP_PASSWORD_FILE
    export OPSBACKUP_PASSWORD="$right"   # must not be fallen back to
    for c in "false" "echo '$right'; exit 3" "/nonexistent/pw-helper" "true"; do
        export OPSBACKUP_PASSWORD_COMMAND="$c"
        run_rc ob snapshots
        [ "$RC" != 0 ] || problem "OPSBACKUP_PASSWORD_COMMAND='$c' succeeded"
        grep -q "OPSBACKUP_PASSWORD_COMMAND" "$T/err" ||
            { cat "$T/err"; problem "OPSBACKUP_PASSWORD_COMMAND='$c': the error does not name OPSBACKUP_PASSWORD_COMMAND"; }
        grep -qi "wrong password" "$T/err" && problem "OPSBACKUP_PASSWORD_COMMAND='$c' reported as a wrong password"
    done
    [ ${#PROBLEMS[@]} -eq 0 ] || exit 1
) || problem "failing OPSBACKUP_PASSWORD_COMMAND"

info "missing password file"
(
    export OPSBACKUP_PASSWORD_FILE="$T/no-such-file"
    run_rc ob snapshots
    [ "$RC" != 0 ] || problem "a missing password file was accepted"
    grep -q "no-such-file" "$T/err" || { cat "$T/err"; problem "the error does not name the missing password file"; }
    [ ${#PROBLEMS[@]} -eq 0 ] || exit 1
) || problem "missing password file"

repo_fingerprint >"$T/fp.after2"
# Only lock objects may have come and gone: compare everything else.
grep -v ' ./locks/' "$T/fp.before" >"$T/fp1" || true
grep -v ' ./locks/' "$T/fp.after2" >"$T/fp2" || true
cmp -s "$T/fp1" "$T/fp2" || problem "the repository changed during the password tests"

finish
