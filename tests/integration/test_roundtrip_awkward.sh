#!/usr/bin/env bash
# Back up an awkward tree (every kind of entry and metadata), restore it and
# compare every byte and every metadata field.  A second backup of the
# unchanged tree must read no file contents; a changed file stores only its
# changed chunks.
. "$(dirname "$0")/lib.sh"

src="$T/src"
python3 "$TOOLS/mktree.py" "$src" --seed 7 --small-files 10000 --big-mb 20
mkdir "$T/dated"
head -c 100000 /dev/urandom >"$T/dated/f1"
echo hello >"$T/dated/f2"
init_repo
# A file is reused from the parent only if it was last changed (mtime and
# ctime) more than a second before the parent backup started; the tree was
# made just now, so let that second pass before the first backup.
sleep 2

info "first backup"
ob --json backup files "$src" >"$T/b1.json"
[ "$(json_get "$T/b1.json" 'j["stats"]["errors"]')" = 0 ] || fail "backup reported errors"

info "restore and compare"
ob restore files latest --target "$T/dst" >/dev/null
# Access times are not kept (docs/DECISIONS.md): compare everything else.
python3 "$TOOLS/treecmp.py" --ignore-atime "$src" "$T/dst$src" || fail "restored tree differs"

info "second backup of the unchanged tree reads nothing"
ob --json backup files "$src" >"$T/b2.json"
[ "$(json_get "$T/b2.json" 'j["extra"]["bytes_read"]')" = 0 ] || fail "unchanged backup read file contents"
[ "$(json_get "$T/b2.json" 'j["parent"] == json.load(open("'"$T/b1.json"'"))["id"]')" = True ] \
    || fail "second snapshot does not name the first as parent"
# Only new tree blobs for the ancestors of $src whose times changed (restore
# above created $T/dst): far less than one data chunk.
added=$(json_get "$T/b2.json" 'j["stats"]["bytes_added"]')
[ "$added" -lt 65536 ] || fail "unchanged backup added $added bytes"

info "one changed byte in the big file stores about one chunk"
big=$(find "$src" -name 'big*' -type f -size +10M | head -1)
printf 'X' | dd of="$big" bs=1 seek=12345678 conv=notrunc status=none
ob --json backup files "$src" >"$T/b3.json"
added=$(json_get "$T/b3.json" 'j["stats"]["bytes_added"]')
read_bytes=$(json_get "$T/b3.json" 'j["extra"]["bytes_read"]')
size=$(stat -c %s "$big")
[ "$read_bytes" -eq "$size" ] || fail "expected to read only the changed file ($size), read $read_bytes"
[ "$added" -lt $((9 * 1024 * 1024)) ] || fail "a one-byte change added $added bytes"

info "a parent backdated with --time: the next backup reuses by the parent's real start"
ob --json backup files --time "2020-01-01 00:00:00" "$T/dated" >"$T/b4.json"
ob --json backup files "$T/dated" >"$T/b5.json"
[ "$(json_get "$T/b5.json" 'j["parent"] == json.load(open("'"$T/b4.json"'"))["id"]')" = True ] \
    || fail "the backup after the backdated one does not name it as parent"
read_bytes=$(json_get "$T/b5.json" 'j["extra"]["bytes_read"]')
[ "$read_bytes" = 0 ] || fail "after a parent backdated to 2020 the unchanged files were read again ($read_bytes bytes)"

info "the repository verifies"
ob check --read-data >/dev/null
