#!/usr/bin/env bash
# Issue 8: config files, secrets and key escrow.
#  - backup config: unchanged -> "unchanged" and no new snapshot; one changed
#    byte (or a mode change) -> a new snapshot; restore config is byte- and
#    mode-identical, including an application key file (0400, awkward bytes).
#  - diff --content names changed keys without their values; --show-values
#    shows them.
#  - Shamir escrow: key export --shares 5 --threshold 3; every 3 of 5
#    recover, every 2 fail, a mistyped share fails its checksum, a share of
#    another repository or export is refused; then the drill: the password
#    is lost, access is rebuilt from 3 shares, a snapshot restores.
. "$(dirname "$0")/lib.sh"

app="$T/app"
mkdir -p "$app/config" "$app/keys"
cat >"$app/.env" <<'EOF'
# application settings
APP_ENV=production
DB_HOST=db.internal
DB_PASSWORD=s3cr3t-old-value
export MAIL_TOKEN="tok-123"
EOF
cat >"$app/config/app.ini" <<'EOF'
[database]
user = opscore
password = ini-secret-1

[cache]
ttl = 60
EOF
cat >"$app/config/settings.yaml" <<'EOF'
server:
  port: 8080
  api_key: yaml-secret-1
free text line one
EOF
# The application's encryption key: binary, NULs, newlines, high bytes.
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) + b"\0\n\r\xff key \n")' >"$app/keys/app.key"
chmod 0400 "$app/keys/app.key"
chmod 0600 "$app/.env"
init_repo

nsnap() { ob --json snapshots --kind config >"$T/snaps.json" && json_get "$T/snaps.json" 'len(j)'; }
backup_config() { ob --json backup config --set config "$app/.env" "$app/config" "$app/keys" >"$T/bc.json"; }

info "backup config: first snapshot"
backup_config || fail "first backup config failed"
[ "$(nsnap)" = 1 ] || fail "expected 1 config snapshot"
snap1=$(json_get "$T/bc.json" 'j["id"]')

info "unchanged: no new snapshot"
expect_code 0 ob backup config --set config "$app/.env" "$app/config" "$app/keys"
assert_grep unchanged "$T/out"
[ "$(nsnap)" = 1 ] || problem "an unchanged backup config made a new snapshot"

info "one changed byte: a new snapshot"
sed -i 's/s3cr3t-old-value/s3cr3t-new-value/' "$app/.env"
sed -i 's/^ttl = 60$/ttl = 61/' "$app/config/app.ini"
backup_config || fail "backup config after a change failed"
[ "$(json_get "$T/bc.json" 'j.get("unchanged", False)')" = False ] || problem "a changed byte reported unchanged"
[ "$(nsnap)" = 2 ] || problem "a changed byte did not make a new snapshot"
snap2=$(json_get "$T/bc.json" 'j["id"]')

info "a mode change alone: a new snapshot"
chmod 0640 "$app/config/settings.yaml"
backup_config || fail "backup config after chmod failed"
[ "$(nsnap)" = 3 ] || problem "a mode change did not make a new snapshot"
# and then unchanged again
expect_code 0 ob backup config --set config "$app/.env" "$app/config" "$app/keys"
assert_grep unchanged "$T/out"
[ "$(nsnap)" = 3 ] || problem "unchanged after chmod made a snapshot"

info "restore config: byte- and mode-identical"
expect_code 0 ob restore config latest --set config --target "$T/r"
treecmp "$app" "$T/r$app" --ignore-root-meta >"$T/cmp" || { cat "$T/cmp"; problem "restored config differs"; }
[ "$(stat -c %a "$T/r$app/keys/app.key")" = 400 ] || problem "app.key mode is not 0400 after restore"
cmp -s "$app/keys/app.key" "$T/r$app/keys/app.key" || problem "app.key bytes differ after restore"

info "diff --content: key names, no values"
expect_code 0 ob diff --content "$snap1" "$snap2"
cp "$T/out" "$T/diff.txt"
assert_grep '\.env' "$T/diff.txt"
assert_grep 'DB_PASSWORD (value changed)' "$T/diff.txt"
assert_grep 'cache.ttl (value changed)' "$T/diff.txt"
grep -q 's3cr3t' "$T/diff.txt" && problem "diff --content printed a secret value"
grep -q 'APP_ENV' "$T/diff.txt" && problem "diff --content listed an unchanged key"
grep -q 'MAIL_TOKEN' "$T/diff.txt" && problem "diff --content listed an unchanged exported key"
expect_code 0 ob diff --content --show-values "$snap1" "$snap2"
assert_grep 's3cr3t-old-value' "$T/out"
assert_grep 's3cr3t-new-value' "$T/out"
expect_code 0 ob --json diff --content "$snap1" "$snap2"
python3 - "$T/out" <<'EOF' || problem "diff --content --json is wrong"
import json, sys
j = json.load(open(sys.argv[1]))
env = [c for c in j["changes"] if c["path"].endswith("/.env")][0]
keys = {c["key"]: c for c in env["content"] if "key" in c}
assert keys["DB_PASSWORD"]["change"] == "~", keys
assert "old" not in keys["DB_PASSWORD"] and "new" not in keys["DB_PASSWORD"]
assert "s3cr3t" not in open(sys.argv[1]).read()
EOF
# the binary key file is never shown as text
chmod u+w "$app/keys/app.key"
printf 'X' | dd of="$app/keys/app.key" bs=1 seek=10 conv=notrunc 2>/dev/null
chmod 0400 "$app/keys/app.key"
backup_config || fail "backup config after changing app.key failed"
snap4=$(json_get "$T/bc.json" 'j["id"]')
expect_code 0 ob diff --content --show-values "$snap2" "$snap4"
assert_grep 'app.key' "$T/out"
assert_grep 'binary' "$T/out"

info "key export --shares 5 --threshold 3"
expect_code 2 ob key export --shares 5
expect_code 2 ob key export --shares 3 --threshold 4
expect_code 2 ob key export --shares 0 --threshold 0
expect_code 0 ob key export --shares 5 --threshold 3
cp "$T/out" "$T/export.txt"
grep -v '^#' "$T/export.txt" >"$T/shares"
[ "$(wc -l <"$T/shares")" = 5 ] || fail "expected 5 share lines, got: $(cat "$T/export.txt")"
grep -q ' ' "$T/shares" && problem "a share line contains a space"
grep -qv '^obk1-' "$T/shares" && problem "a non-comment line is not a share"
grep -Eq '^# of repository [0-9a-f]{64}$' "$T/export.txt" || problem "export does not name the repository ID"
grep -Eq '^# .*created 20[0-9]{2}-' "$T/export.txt" || problem "export does not carry a date"
grep -q '3 of these 5' "$T/export.txt" || problem "export does not say 3 of 5"
grep -qi 'different place' "$T/export.txt" || problem "export does not say to keep each share in a different place"
mapfile -t S <"$T/shares"

# recover_with PWFILE SHARE...: key recover adding a slot for PWFILE.
recover_with() { local pw=$1; shift; ob key recover --kdf-n 1024 --new-password-file "$pw" "$@"; }
opens() { OPSBACKUP_PASSWORD_FILE="$1" "$OPSBACKUP" -r "$REPO" snapshots >/dev/null 2>&1; }

info "every 3 of 5 shares recover (10 combinations)"
n=0
for a in 0 1 2 3 4; do for b in 0 1 2 3 4; do for c in 0 1 2 3 4; do
    [ $a -lt $b ] && [ $b -lt $c ] || continue
    printf 'pw-%d%d%d\n' $a $b $c >"$T/pw$a$b$c"
    run_rc recover_with "$T/pw$a$b$c" "${S[$c]}" "${S[$a]}" "${S[$b]}"
    if [ "$RC" != 0 ]; then cat "$T/err"; problem "shares $a $b $c did not recover (exit $RC)"; continue; fi
    grep -q 'added key slot' "$T/out" || problem "recover $a $b $c did not print the new key ID"
    opens "$T/pw$a$b$c" || problem "the password set by recovering from $a $b $c does not open"
    n=$((n + 1))
done; done; done
[ $n = 10 ] || problem "$n of 10 combinations recovered"

info "every 2 of 5 shares fail"
before=$(ob --json key list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
for a in 0 1 2 3 4; do for b in 0 1 2 3 4; do
    [ $a -lt $b ] || continue
    run_rc recover_with "$T/pw-none" "${S[$a]}" "${S[$b]}"
    [ "$RC" = 1 ] || problem "2 shares ($a $b) gave exit $RC, expected 1"
    grep -q '2 of the 3 shares needed' "$T/err" || { cat "$T/err"; problem "2 shares: no clear message"; }
done; done
after=$(ob --json key list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$before" = "$after" ] || problem "failed recovers changed the key slots ($before -> $after)"

info "a share with one changed character fails its checksum"
bad=${S[1]}
pos=40
ch=${bad:$pos:1}
[ "$ch" = a ] && new=b || new=a
bad="${bad:0:$pos}$new${bad:$((pos + 1))}"
run_rc recover_with "$T/pw-none" "${S[0]}" "$bad" "${S[2]}"
[ "$RC" = 1 ] || problem "a mistyped share gave exit $RC"
grep -q 'share 2' "$T/err" || { cat "$T/err"; problem "the mistyped share is not named"; }
grep -qi 'checksum' "$T/err" || { cat "$T/err"; problem "the mistyped share does not fail its checksum"; }

info "duplicates, mixed exports, shares from stdin"
run_rc recover_with "$T/pw-none" "${S[0]}" "${S[1]}" "${S[0]}"
[ "$RC" = 1 ] && grep -q 'same as share 1' "$T/err" || { cat "$T/err"; problem "a duplicate share is not refused clearly"; }
ob key export --shares 3 --threshold 2 | grep -v '^#' >"$T/shares-b"
run_rc recover_with "$T/pw-none" "${S[0]}" "$(sed -n 1p "$T/shares-b")" "${S[2]}"
[ "$RC" = 1 ] && grep -qi 'threshold' "$T/err" || { cat "$T/err"; problem "mixed thresholds are not refused clearly"; }
ob key export --shares 5 --threshold 3 | grep -v '^#' >"$T/shares-c"
run_rc recover_with "$T/pw-none" "${S[0]}" "$(sed -n 2p "$T/shares-c")" "${S[2]}"
[ "$RC" = 1 ] && grep -q 'another `key export`' "$T/err" || { cat "$T/err"; problem "shares of two exports are not refused clearly"; }
printf 'pw-stdin\n' >"$T/pw-stdin"
# the export output as it is: '#' lines and blank lines are skipped
{ head -n 14 "$T/export.txt"; echo; printf '  %s  \r\n' "${S[3]}" "${S[4]}"; } >"$T/stdin-shares"
run_rc recover_with "$T/pw-stdin" <"$T/stdin-shares"
[ "$RC" = 0 ] || { cat "$T/err"; problem "shares on stdin (with comments) did not recover"; }
opens "$T/pw-stdin" || problem "the stdin-recovered password does not open"
run_rc recover_with "$T/pw-none" </dev/null
[ "$RC" = 2 ] || problem "key recover without shares gave exit $RC, expected 2"

info "a share of another repository is rejected"
REPO2="$T/repo2"
"$OPSBACKUP" -r "$REPO2" init --kdf-n 1024 >/dev/null
"$OPSBACKUP" -r "$REPO2" key export --shares 5 --threshold 3 | grep -v '^#' >"$T/shares2"
run_rc recover_with "$T/pw-none" "${S[0]}" "$(sed -n 2p "$T/shares2")" "${S[2]}"
[ "$RC" = 1 ] || problem "a foreign share gave exit $RC"
grep -q 'share 2 belongs to repository' "$T/err" || { cat "$T/err"; problem "the foreign share is not named"; }
# three shares of repository 2 are refused by repository 1 too
run_rc recover_with "$T/pw-none" $(head -n 3 "$T/shares2")
[ "$RC" = 1 ] && grep -q 'belongs to repository' "$T/err" || problem "shares of repository 2 opened repository 1"

info "drill: the password is lost; recover from 3 shares; restore"
# A repository whose only password is gone: its key slot deleted, the
# password file shredded.  Only the escrow shares remain.
REPO3="$T/repo3"
printf 'the only password\n' >"$T/pw3"
with3() { OPSBACKUP_PASSWORD_FILE="$1" "$OPSBACKUP" -r "$REPO3" "${@:2}"; }
with3 "$T/pw3" init --kdf-n 1024 >/dev/null
with3 "$T/pw3" backup config --set config "$app/.env" "$app/config" "$app/keys" >/dev/null
with3 "$T/pw3" key export --shares 5 --threshold 3 >"$T/export3.txt"
rm -f "$REPO3"/keys/*
rm -f "$T/pw3"
printf 'old guess\n' >"$T/pw3-guess"
run_rc with3 "$T/pw3-guess" snapshots
[ "$RC" != 0 ] || fail "the repository opens without any key slot"
printf 'brand new password\n' >"$T/pw3-new"
grep -v '^#' "$T/export3.txt" | sed -n '2p;4p;5p' >"$T/drill-shares"
run_rc with3 "$T/pw3-guess" key recover --kdf-n 1024 --new-password-file "$T/pw3-new" - <"$T/drill-shares"
[ "$RC" = 0 ] || { cat "$T/err"; fail "the drill recover failed"; }
expect_code 0 with3 "$T/pw3-new" restore config latest --set config --target "$T/r3"
treecmp "$app" "$T/r3$app" --ignore-root-meta >"$T/cmp3" || { cat "$T/cmp3"; problem "drill restore differs"; }
expect_code 0 with3 "$T/pw3-new" check --read-data
# the new slot works for new backups too, and they deduplicate with the old
echo "NEW_AFTER_DRILL=1" >>"$app/.env"
expect_code 0 with3 "$T/pw3-new" backup config --set config "$app/.env" "$app/config" "$app/keys"
expect_code 0 with3 "$T/pw3-new" check --read-data

finish
