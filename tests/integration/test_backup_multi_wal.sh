#!/usr/bin/env bash
# backup db --physical -r a -r b: the copy into b includes the WAL the
# snapshot needs, copied before the snapshot is saved there, so a copy
# whose WAL part fails leaves no snapshot in b that looks complete but
# cannot be restored.  WAL is archived into a only (archive-push -r a).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

PGPW="$T/pgpw"
install -o postgres -m 0600 "$OPSBACKUP_PASSWORD_FILE" "$PGPW"
chmod 0711 "$T"
REPO_A="$T/repo_a"
REPO_B="$T/repo_b"
install -d -o postgres -m 0700 "$REPO_A" "$REPO_B"
ob_pg() { runuser -u postgres -- "$OPSBACKUP" --password-file "$PGPW" "$@"; }
PG_EXTRA_CONF="archive_mode = on
archive_command = '$OPSBACKUP -r $REPO_A --password-file $PGPW archive-push %p'
wal_level = replica"
ob_pg -r "$REPO_A" init --kdf-n 1024 >/dev/null
ob_pg -r "$REPO_B" init --kdf-n 1024 >/dev/null
pg_start
snaps_b() { ob_pg -r "$REPO_B" --json snapshots --kind db-physical | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

info "b cannot take WAL: the copy fails and b gets no snapshot"
# b's wal/ exists but cannot be written (the runs are the postgres user).
install -d -o postgres -m 0500 "$REPO_B/wal"
expect_code 1 ob_pg -r "$REPO_A" -r "$REPO_B" --json backup db --physical --pgdata "$PGDATA_DIR"
[ "$(json_get "$T/out" '[c["ok"] for c in j["copies"]]')" = "[False]" ] \
    || problem "the copy to b did not fail: $(cat "$T/out")"
[ "$(snaps_b)" = 0 ] || problem "b holds a physical snapshot whose WAL was not copied"

info "b can take WAL: snapshot and WAL both copied"
chmod 0700 "$REPO_B/wal"
expect_code 0 ob_pg -r "$REPO_A" -r "$REPO_B" --json backup db --physical --pgdata "$PGDATA_DIR"
[ "$(snaps_b)" = 1 ] || problem "b has $(snaps_b) physical snapshots, want 1"
[ -n "$(find "$REPO_B/wal" -type f ! -name '.tmp-*' | head -1)" ] || problem "no WAL was copied into b"
finish
