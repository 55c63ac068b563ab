#!/usr/bin/env bash
# Progress lines (issue #12): on a terminal, backup, restore, verify and
# check --read-data draw a status line (counts, bytes, rate; a bar and a
# percentage when the total is known) and end with their one-line summary;
# without a terminal, or with --json or --quiet, there is no progress line
# at all (cron mail stays clean).  The terminal is a pty from script(1).
. "$(dirname "$0")/lib.sh"

command -v script >/dev/null || fail "script(1) (bsdutils) is needed to give opsbackup a terminal"
mkdir -p "$T/src/d"
for i in $(seq 1 30); do head -c 300000 /dev/urandom >"$T/src/d/f$i"; done
init_repo

# on_tty CMD...: run CMD with stdin/stdout/stderr on a pty; everything it
# wrote in $T/tty (CR and escape sequences kept).
on_tty() {
    local q
    q=$(printf '%q ' "$@")
    script -qefc "$q" /dev/null </dev/null >"$T/tty" 2>&1
}
has_progress() { grep -q $'\r\\[[0-9]*:[0-9][0-9]\\] '"$1" "$T/tty"; }

info "backup on a terminal"
on_tty "$OPSBACKUP" -r "$REPO" backup files "$T/src" || { cat "$T/tty"; fail "backup failed"; }
has_progress "backup: [0-9]* files" || { cat -v "$T/tty"; problem "no backup progress line"; }
grep -q "snapshot .* saved" "$T/tty" || problem "no final summary after the backup progress"

info "restore on a terminal: a bar and a percentage"
on_tty "$OPSBACKUP" -r "$REPO" restore files latest --target "$T/r1" || { cat "$T/tty"; fail "restore failed"; }
has_progress 'restore \[[#-]*\] *100%' || { cat -v "$T/tty"; problem "no restore bar reaching 100%"; }
grep -q "restored snapshot" "$T/tty" || problem "no final summary after the restore progress"
diff -r "$T/src" "$T/r1$T/src" >/dev/null || problem "restored tree differs"

info "verify files and check --read-data on a terminal"
on_tty "$OPSBACKUP" -r "$REPO" verify files latest || { cat "$T/tty"; fail "verify failed"; }
has_progress 'verify \[[#-]*\] *100%' || { cat -v "$T/tty"; problem "no verify progress"; }
on_tty "$OPSBACKUP" -r "$REPO" check --read-data || { cat "$T/tty"; fail "check failed"; }
grep -q $'\rcheck \\[\\|\\] check \\[' "$T/tty" || has_progress 'check \[' \
    || { cat -v "$T/tty"; problem "no check --read-data progress"; }
grep -q "no errors found" "$T/tty" || problem "no final summary after check"

info "copy and prune on a terminal"
"$OPSBACKUP" -r "$T/repo2" init --kdf-n 1024 >/dev/null
on_tty "$OPSBACKUP" copy --from "$REPO" --to "$T/repo2" || { cat "$T/tty"; fail "copy failed"; }
has_progress 'copy \[[#-]*\] *100%' || { cat -v "$T/tty"; problem "no copy progress"; }
echo more >"$T/src/d/new"
"$OPSBACKUP" -r "$REPO" backup files "$T/src" >/dev/null
on_tty "$OPSBACKUP" -r "$REPO" forget --keep-last 1 --prune || { cat "$T/tty"; fail "forget --prune failed"; }
has_progress 'prune: marking what' || { cat -v "$T/tty"; problem "no prune phase line"; }

info "no terminal, --json, --quiet: no progress line"
"$OPSBACKUP" -r "$REPO" restore files latest --target "$T/r2" >"$T/out" 2>"$T/err"
if grep -q $'\r' "$T/err" "$T/out"; then problem "progress drawn without a terminal"; fi
on_tty "$OPSBACKUP" -r "$REPO" --json restore files latest --target "$T/r3"
if grep -q $'\r\\[' "$T/tty"; then problem "progress drawn under --json"; fi
on_tty "$OPSBACKUP" -r "$REPO" -q restore files latest --target "$T/r4"
if grep -q $'\r\\[' "$T/tty"; then problem "progress drawn under --quiet"; fi
on_tty "$OPSBACKUP" -r "$REPO" --no-progress restore files latest --target "$T/r5"
if grep -q $'\r\\[' "$T/tty"; then problem "progress drawn under --no-progress"; fi

finish
