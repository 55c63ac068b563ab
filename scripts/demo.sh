#!/usr/bin/env bash
# End-to-end demo of opsbackup's main job on a local repository: install the
# build dependencies, build, create an encrypted repository, back up a
# sample application tree (attachments, .env, config, an encryption key),
# list, change something, back up again (only the change is stored), restore
# and compare, and verify every byte in the repository.
#
# Safe to re-run: everything lives under ${DEMO_DIR:-/tmp/opsbackup-demo}.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" --no-s3
if [ ! -f "$top/build/build.ninja" ]; then
    meson setup "$top/build" "$top" >/dev/null
fi
ninja -C "$top/build" >/dev/null
ob="$top/build/opsbackup"

demo=${DEMO_DIR:-/tmp/opsbackup-demo}
rm -rf "$demo"
mkdir -p "$demo"
app="$demo/app"
export OPSBACKUP_REPOSITORY="$demo/repo"
export OPSBACKUP_PASSWORD_FILE="$demo/password"
head -c 24 /dev/urandom | base64 >"$OPSBACKUP_PASSWORD_FILE"
chmod 600 "$OPSBACKUP_PASSWORD_FILE"

echo "== a sample OpsCore-like application in $app"
mkdir -p "$app/storage/evidence/2026-11" "$app/config" "$app/keys"
for i in $(seq 1 40); do
    head -c $((200000 + i * 1000)) /dev/urandom >"$app/storage/evidence/2026-11/screenshot-$i.png"
    printf 'work log %d\n%.0s' "$i" $(seq 1 500) >"$app/storage/evidence/2026-11/log-$i.txt"
done
printf 'DATABASE_URL=postgres://opscore@localhost/opscore\nSECRET_KEY=%s\n' \
    "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >"$app/.env"
chmod 600 "$app/.env"
printf '[server]\nport = 8080\n' >"$app/config/app.ini"
head -c 32 /dev/urandom >"$app/keys/token-encryption.key"
chmod 400 "$app/keys/token-encryption.key"
ln -s storage/evidence "$app/evidence-link"

echo "== opsbackup init"
"$ob" init
echo "== opsbackup backup files (attachments) and backup config (.env, config, key)"
"$ob" backup files --set attachments --tag env=demo "$app/storage"
"$ob" backup config --set config "$app/.env" "$app/config" "$app/keys"
echo "== a second config backup with nothing changed makes no snapshot"
"$ob" backup config --set config "$app/.env" "$app/config" "$app/keys"
echo "== one more attachment, then a second files backup stores only that"
head -c 300000 /dev/urandom >"$app/storage/evidence/2026-11/screenshot-new.png"
"$ob" backup files --set attachments --tag env=demo "$app/storage"
echo "== opsbackup snapshots"
"$ob" snapshots
echo "== opsbackup diff (previous -> latest attachments)"
ids=$("$ob" --json snapshots --set attachments | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')
"$ob" diff $ids
echo "== opsbackup restore files latest + restore config latest into $demo/restore"
"$ob" restore files latest --set attachments --target "$demo/restore"
"$ob" restore config latest --set config --target "$demo/restore"
echo "== compare restored with original"
diff -r --no-dereference "$app/storage" "$demo/restore$app/storage"
cmp "$app/.env" "$demo/restore$app/.env"
cmp "$app/keys/token-encryption.key" "$demo/restore$app/keys/token-encryption.key"
[ "$(stat -c %a "$demo/restore$app/keys/token-encryption.key")" = 400 ]
echo "restored files are identical (content, links and permissions)"
echo "== opsbackup check --read-data"
"$ob" check --read-data
echo
echo "demo finished: repository $OPSBACKUP_REPOSITORY, restore in $demo/restore"
