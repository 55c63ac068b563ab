#!/usr/bin/env bash
# backup files on awkward inputs that used to lose data without a word
# (session 12, found in a review of the walk):
#   - overlapping PATHs whose strcmp order puts a sibling between a path
#     and the one inside it made a snapshot with two entries of one name,
#     which nothing could list or restore;
#   - a file cut short while it was read kept the size stat gave first, and
#     restored padded with zeros (a version that never existed); now it is
#     stored as read, with a warning;
#   - a directory listing that failed part way (EIO) passed for complete;
#     now the backup says what is missing and exits 1 (incomplete);
#   - --exclude "DIR/*/cache" excluded caches at any depth ('*' crossed '/').
# Session 13 (a review of the walk):
#   - one EIO from pread aborted the whole backup; now the file is left out
#     with a warning, the rest is saved, and the snapshot is incomplete;
#   - a directory swapped for a symlink between its lstat and its listing
#     was followed, backing up the link's target as if it were in the tree;
#     now the walk holds directories open and never follows one it did not
#     mean to;
#   - entries whose full path exceeds PATH_MAX were skipped ("File name too
#     long"); now they are reached relative to their directory.
# Session 19: a PATH that does not exist or cannot be opened failed the
# whole backup; now it is left out like any unreadable entry.
# The faults come from tests/tools/faultfs.c (LD_PRELOAD).
. "$(dirname "$0")/lib.sh"
init_repo

info "overlapping paths: /x/app, /x/app-extra, /x/app/conf.d"
S="$T/x"
mkdir -p "$S/app/conf.d" "$S/app-extra"
echo a >"$S/app/a.conf"
echo b >"$S/app/conf.d/b.conf"
echo c >"$S/app-extra/c.conf"
expect_code 0 ob --json backup files "$S/app" "$S/app-extra" "$S/app/conf.d"
id=$(json_get "$T/out" 'j["id"]')
expect_code 0 ob ls "$id"
expect_code 0 ob restore files "$id" --target "$T/r1"
diff -r "$S" "$T/r1$S" >/dev/null || problem "overlapping paths do not restore identical"

info "--exclude with a slash: '*' does not cross directory levels"
mkdir -p "$T/ex/t1/cache" "$T/ex/t1/uploads/invoices/cache"
echo x >"$T/ex/t1/cache/x"
echo invoice >"$T/ex/t1/uploads/invoices/cache/inv-42.pdf"
expect_code 0 ob --json backup files --exclude "$T/ex/*/cache" "$T/ex"
id=$(json_get "$T/out" 'j["id"]')
expect_code 0 ob restore files "$id" --target "$T/r0"
[ -e "$T/r0$T/ex/t1/cache/x" ] && problem "--exclude $T/ex/*/cache did not exclude t1/cache"
[ -e "$T/r0$T/ex/t1/uploads/invoices/cache/inv-42.pdf" ] \
    || problem "--exclude $T/ex/*/cache also excluded a cache three levels down"

${CC:-cc} -shared -fPIC -o "$T/faultfs.so" "$TOOLS/faultfs.c" -ldl || fail "cannot build faultfs.so"
faulty() { ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/faultfs.so" "$@"; }

info "a file cut short while it is read is stored as read"
mkdir -p "$T/logs"
head -c 8388608 /dev/urandom >"$T/logs/app.log"
head -c 1048576 "$T/logs/app.log" >"$T/want"
run_rc faulty env FAULTFS_TRUNC="$T/logs/app.log" FAULTFS_TRUNC_AT=1048576 \
    "$OPSBACKUP" -r "$REPO" --json backup files "$T/logs"
[ "$RC" = 0 ] || problem "backup of a shrinking file exited $RC"
assert_grep "shrank while being read" "$T/err"
[ "$(stat -c %s "$T/logs/app.log")" = 1048576 ] || fail "test setup: the shim did not truncate"
id=$(json_get "$T/out" 'j["id"]')
expect_code 0 ob restore files "$id" --target "$T/r2"
got=$(stat -c %s "$T/r2$T/logs/app.log")
# What was read before the cut: 2 MiB (two reads) of the old content, or
# less; never the old 8 MiB with zeros after the data.
[ "$got" -lt 8388608 ] || problem "the shrunk file restored at its old size ($got bytes)"
cmp -s -n 1048576 "$T/r2$T/logs/app.log" "$T/want" || problem "the shrunk file's first MiB differs"

info "a directory listing that fails part way is reported, not taken for complete"
mkdir -p "$T/many"
for i in 1 2 3 4 5 6 7 8; do echo "$i" >"$T/many/f$i"; done
run_rc faulty env FAULTFS_READDIR="$T/many" "$OPSBACKUP" -r "$REPO" --json backup files "$T/many"
[ "$RC" = 1 ] || problem "backup with a failing listing exited $RC, not 1 (incomplete)"
assert_grep "reading the directory" "$T/err"
assert_grep "Input/output error" "$T/err"

info "backup config after an incomplete one that read the same: a new, complete snapshot"
# The listing of cfg/sub fails after its third entry (".", ".." and c1),
# its last, so the incomplete snapshot holds everything there is, and the
# next run reads the same tree.  Handed back as "unchanged", that
# incomplete snapshot made every later run report the backup incomplete (a
# job's alert) until something changed.
mkdir -p "$T/cfg/sub"
echo 1 >"$T/cfg/sub/c1"
run_rc faulty env FAULTFS_READDIR="$T/cfg/sub" "$OPSBACKUP" -r "$REPO" --json backup config "$T/cfg"
[ "$RC" = 1 ] || problem "config backup with a failing listing exited $RC, not 1 (incomplete)"
inc=$(json_get "$T/out" 'j["id"]')
[ "$(json_get "$T/out" 'j["stats"]["errors"]')" = 1 ] || problem "the first config backup is not incomplete: $(cat "$T/out")"
expect_code 0 ob ls "${inc:0:8}"
assert_grep "$T/cfg/sub/c1" "$T/out"
expect_code 0 ob --json backup config "$T/cfg"
[ "$(json_get "$T/out" 'j["unchanged"]')" = False ] ||
    problem "a complete run after an incomplete one was taken for unchanged"
[ "$(json_get "$T/out" 'j["stats"]["errors"]')" = 0 ] ||
    problem "the config backup after the incomplete one reports $(json_get "$T/out" 'j["stats"]["errors"]') errors"
[ "$(json_get "$T/out" 'j["id"]')" != "$inc" ] || problem "no new snapshot after the incomplete one"
expect_code 0 ob --json backup config "$T/cfg"
[ "$(json_get "$T/out" 'j["unchanged"]')" = True ] || problem "a third, identical config backup was not unchanged"

info "a file swapped for a FIFO while the backup opens it does not hang it"
mkdir -p "$T/sw"
echo "plain file" >"$T/sw/swapme.txt"
${CC:-cc} -shared -fPIC -o "$T/pauselist.so" "$TOOLS/pauselist.c" -ldl || fail "cannot build pauselist.so"
ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/pauselist.so" \
    PAUSELIST_SUFFIX=/sw/swapme.txt PAUSELIST_MARK="$T/paused" PAUSELIST_GO="$T/go" \
    timeout 60 "$OPSBACKUP" -r "$REPO" backup files "$T/sw" >"$T/sw.out" 2>"$T/sw.err" &
bpid=$!
for _ in $(seq 1 200); do [ -e "$T/paused" ] && break; kill -0 $bpid 2>/dev/null || break; sleep 0.05; done
[ -e "$T/paused" ] || { touch "$T/go"; wait $bpid || true; cat "$T/sw.err"; fail "the backup never opened swapme.txt"; }
rm "$T/sw/swapme.txt"
mkfifo "$T/sw/swapme.txt"
touch "$T/go"
brc=0; wait $bpid || brc=$?
[ "$brc" = 124 ] && problem "the backup hung on a FIFO swapped in for a file"
[ "$brc" = 1 ] || problem "the backup of a file swapped for a FIFO exited $brc, not 1 (incomplete)"
grep -q "changed type" "$T/sw.err" || problem "the swap is not reported: $(cat "$T/sw.err")"

info "a file whose read fails (EIO) is left out and reported; the rest is saved"
mkdir -p "$T/eio/sub"
head -c 3145728 /dev/urandom >"$T/eio/bad.bin"
head -c 200000 /dev/urandom >"$T/eio/a-good.bin"
echo "in a subdirectory" >"$T/eio/sub/good.txt"
head -c 2000000 /dev/urandom >"$T/eio/z-after.bin"
run_rc faulty env FAULTFS_EIO="$T/eio/bad.bin" FAULTFS_EIO_AT=1048576 \
    "$OPSBACKUP" -r "$REPO" --json backup files --set eio "$T/eio"
[ "$RC" = 1 ] || problem "backup with a file failing EIO exited $RC, not 1 (incomplete)"
grep -q "bad.bin: .*Input/output error" "$T/err" || problem "the EIO is not reported: $(cat "$T/err")"
# What `run` reads to skip retention for an incomplete backup (cmd_run.c).
[ "$(json_get "$T/out" 'j["stats"]["errors"]' 2>/dev/null)" = 1 ] \
    || problem "backup --json does not report the unreadable file in stats.errors: $(cat "$T/out")"
# The summary counts what the snapshot holds: three files, not the one left out.
[ "$(json_get "$T/out" '(j["stats"]["files"], j["stats"]["bytes"])' 2>/dev/null)" = "(3, 2200018)" ] \
    || problem "the summary counts the file left out: $(json_get "$T/out" 'j["stats"]' 2>/dev/null)"
expect_code 0 ob --json snapshots --set eio
n_eio=$(json_get "$T/out" 'len(j)')
if [ "$n_eio" != 1 ]; then
    problem "no snapshot saved after a file failed with EIO ($n_eio)"
else
    [ "$(json_get "$T/out" 'j[0]["stats"]["errors"]')" = 1 ] \
        || problem "the snapshot with an unreadable file is not marked incomplete: $(cat "$T/out")"
    expect_code 0 ob restore files latest --set eio --target "$T/r3"
    [ -e "$T/r3$T/eio/bad.bin" ] && problem "the unreadable file was stored ($(stat -c %s "$T/r3$T/eio/bad.bin") bytes)"
    for f in a-good.bin sub/good.txt z-after.bin; do
        cmp -s "$T/eio/$f" "$T/r3$T/eio/$f" || problem "$f does not restore identical after an EIO elsewhere"
    done
fi

info "a directory swapped for a symlink while the walk reaches it is not followed"
mkdir -p "$T/race/tree/sub" "$T/outside"
echo "not part of the tree" >"$T/outside/secret.txt"
echo a >"$T/race/tree/a.txt"
echo s >"$T/race/tree/sub/s.txt"
run_rc faulty env FAULTFS_SWAP="$T/race/tree/sub" FAULTFS_SWAP_TO="$T/outside" \
    "$OPSBACKUP" -r "$REPO" --json backup files --set race "$T/race/tree"
[ -L "$T/race/tree/sub" ] || fail "test setup: the shim did not swap sub for a symlink"
cp "$T/err" "$T/race.err"
race_rc=$RC
expect_code 0 ob --json snapshots --set race
expect_code 0 ob ls "$(json_get "$T/out" 'j[-1]["id"]')"
grep -q "secret.txt" "$T/out" && problem "the walk followed a directory swapped for a symlink: $(cat "$T/out")"
grep -q "/race/tree/a.txt" "$T/out" || problem "a.txt missing beside the swapped directory: $(cat "$T/out")"
[ "$race_rc" = 1 ] || problem "backup with a directory swapped under it exited $race_rc, not 1 (incomplete)"
grep -q "sub: .*not followed" "$T/race.err" || problem "the swap is not reported: $(cat "$T/race.err")"

info "a tree whose full paths exceed PATH_MAX is backed up whole"
# 20 levels of 250-byte names: the leaf's path is over 5000 bytes, so it
# can only be reached relative to a directory descriptor.
python3 - "$T/deep" <<'PY'
import os, sys
os.mkdir(sys.argv[1])
fd = os.open(sys.argv[1], os.O_RDONLY)
for i in range(20):
    name = ("%02d" % i) + "d" * 248
    os.mkdir(name, dir_fd=fd)
    nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
w = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.write(w, b"at the bottom\n")
os.close(w)
PY
run_rc "$OPSBACKUP" -r "$REPO" --json backup files --set deep "$T/deep"
[ "$RC" = 0 ] || problem "backup of a tree deeper than PATH_MAX exited $RC: $(tail -c 300 "$T/err")"
expect_code 0 ob --json snapshots --set deep
deep_id=$(json_get "$T/out" 'j[-1]["id"]')
expect_code 0 ob ls "$deep_id"
grep -q "/leaf.txt$" "$T/out" || problem "the file below PATH_MAX depth is missing from the snapshot"
# The restore goes through directory descriptors too (D10): it comes back.
expect_code 0 ob restore files "$deep_id" --target "$T/r4"
python3 - "$T/deep" "$T/r4$T/deep" <<'PY' || problem "the tree deeper than PATH_MAX does not restore identical"
import os, sys
def leaf(top):
    fd = os.open(top, os.O_RDONLY)
    while True:
        subdirs = [n for n in os.listdir(fd) if n != "leaf.txt"]
        if not subdirs:
            break
        nfd = os.open(subdirs[0], os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    r = os.open("leaf.txt", os.O_RDONLY, dir_fd=fd)
    return os.read(r, 100)
sys.exit(0 if leaf(sys.argv[1]) == leaf(sys.argv[2]) == b"at the bottom\n" else 1)
PY

info "a PATH deeper than a snapshot may hold is refused, not saved unrestorable"
deep_path="$T/deeppath$(printf '/d%.0s' $(seq 515))"
mkdir -p "$deep_path"
echo x >"$deep_path/f"
run_rc "$OPSBACKUP" -r "$REPO" backup files --set deeppath "$deep_path"
[ "$RC" = 2 ] || problem "backup of a PATH 515 directories deep exited $RC, expected 2"
assert_grep "more than the 512 a snapshot may hold" "$T/err"
expect_code 0 ob --json snapshots --set deeppath
[ "$(json_get "$T/out" 'len(j)')" = 0 ] || problem "a snapshot was saved for a PATH deeper than 512"

info "without /proc (a chroot, a minimal container) every entry is still backed up"
# Extended attributes of entries are read through /proc/self/fd/N/NAME; a
# /proc that is not there made every entry look removed, and the backup
# saved an empty snapshot with exit 0.  faultfs makes that route fail as it
# does without /proc (unmounting /proc for real also blinds ASan).
mkdir -p "$T/noproc/sub"
echo one >"$T/noproc/a"
echo two >"$T/noproc/sub/b"
FAULTFS_NOPROC=1 run_rc faulty "$OPSBACKUP" -r "$REPO" backup files --set noproc "$T/noproc"
[ "$RC" = 0 ] || problem "backup without /proc exited $RC: $(cat "$T/err")"
expect_code 0 ob restore files latest --set noproc --target "$T/r5"
treecmp "$T/noproc" "$T/r5$T/noproc" || problem "a backup taken without /proc does not restore identical"


info "a PATH that cannot be read is left out and reported; the other PATHs are saved"
# (Session 19.)  It failed the whole backup: one directory of a job's
# `paths` renamed or unmounted, and nothing of the others was saved.
mkdir -p "$T/tops/keep/sub" "$T/tops/exists"
echo "kept" >"$T/tops/keep/sub/k.txt"
echo "not a directory" >"$T/tops/afile"
ln -s "$T/tops/nowhere" "$T/tops/dangling"
run_rc ob --json backup files --set tops "$T/tops/keep" "$T/tops/missing" \
    "$T/tops/gone/deeper/x" "$T/tops/afile/below" "$T/tops/dangling/below" "$T/tops/exists/none"
[ "$RC" = 1 ] || problem "backup with five unreadable PATHs exited $RC, not 1 (incomplete): $(cat "$T/err")"
for p in "$T/tops/missing" "$T/tops/gone" "$T/tops/afile" "$T/tops/dangling" "$T/tops/exists/none"; do
    grep -q "$p: " "$T/err" || problem "the unreadable PATH under $p is not named in a warning: $(cat "$T/err")"
done
[ "$(json_get "$T/out" 'j["stats"]["errors"]' 2>/dev/null)" = 5 ] \
    || problem "backup --json does not count the five PATHs left out: $(cat "$T/out")"
expect_code 0 ob restore files latest --set tops --target "$T/r6"
cmp -s "$T/tops/keep/sub/k.txt" "$T/r6$T/tops/keep/sub/k.txt" ||
    problem "the readable PATH does not restore identical when others could not be read"
# Nothing is made up for the PATHs left out: no empty ancestors of them
# (exists is a directory, but nothing below it was stored).
for p in missing gone afile dangling exists; do
    [ -e "$T/r6$T/tops/$p" ] && problem "the restore made $p, which the backup could not read"
done
# When no PATH can be read there is nothing to save.
run_rc ob backup files --set tops2 "$T/tops/missing" "$T/tops/gone/x"
[ "$RC" = 1 ] || problem "backup of only missing PATHs exited $RC, not 1"
grep -q "none of the 2 PATHs could be backed up" "$T/err" || problem "no clear error when no PATH can be read: $(cat "$T/err")"
run_rc ob backup files --set tops2 "$T/tops/missing"
[ "$RC" = 1 ] || problem "backup of one missing PATH exited $RC, not 1"
grep -q "$T/tops/missing could not be backed up" "$T/err" || problem "no clear error when the one PATH cannot be read: $(cat "$T/err")"
grep -q "marked incomplete" "$T/err" && problem "the warning promises a snapshot that is not saved: $(cat "$T/err")"
expect_code 0 ob --json snapshots --set tops2
[ "$(json_get "$T/out" 'len(j)')" = 0 ] || problem "a snapshot was saved though no PATH could be read"

info "an ancestor of a PATH that goes while it is read leaves only its PATHs out"
# (Session 20.)  A failed read of an ancestor's attributes (it was renamed
# or removed after its lstat) failed the whole backup.  An ancestor with
# nothing below it is left out of the tree without writing an empty tree
# for it (an unreferenced blob until prune): a fresh repository shows it.
mkdir -p "$T/tops/racing/sub" "$T/tops/broken/sub"
echo r >"$T/tops/racing/sub/r.txt"
echo b >"$T/tops/broken/sub/b.txt"
R2="$T/repo-tops"
"$OPSBACKUP" -r "$R2" init --kdf-n 1024 >/dev/null || problem "init of $R2 failed"
run_rc faulty env FAULTFS_XATTR="$T/tops/racing" "$OPSBACKUP" -r "$R2" --json backup files \
    "$T/tops/keep" "$T/tops/racing/sub" "$T/tops/exists/none"
[ "$RC" = 1 ] || problem "backup with an ancestor gone mid-read exited $RC, not 1: $(cat "$T/err")"
grep -q "$T/tops/racing: was removed while being backed up" "$T/err" \
    || problem "the ancestor that went is not named: $(cat "$T/err")"
SNAP_RACING=$(json_get "$T/out" 'j["id"]')
run_rc faulty env FAULTFS_XATTR="$T/tops/broken" FAULTFS_XATTR_ERRNO=5 "$OPSBACKUP" -r "$R2" \
    --json backup files "$T/tops/keep" "$T/tops/broken/sub"
[ "$RC" = 1 ] || problem "backup with an ancestor whose attributes fail exited $RC, not 1: $(cat "$T/err")"
grep "$T/tops/broken" "$T/err" | grep -q "Input/output error" \
    || problem "the ancestor whose attributes cannot be read is not named with its error: $(cat "$T/err")"
for s in "$SNAP_RACING" latest; do
    rm -rf "$T/r7"
    expect_code 0 "$OPSBACKUP" -r "$R2" restore files "$s" --target "$T/r7"
    cmp -s "$T/tops/keep/sub/k.txt" "$T/r7$T/tops/keep/sub/k.txt" ||
        problem "the readable PATH of $s does not restore identical beside an ancestor that went"
    for p in racing broken exists; do
        [ -e "$T/r7$T/tops/$p" ] && problem "the restore of $s made $p, which the backup left out"
    done
done
expect_code 0 "$OPSBACKUP" -r "$R2" --json prune --dry-run
[ "$(json_get "$T/out" 'j["blobs_total"] - j["blobs_used"]')" = 0 ] \
    || problem "the backups left unreferenced blobs (an empty tree for a left-out ancestor?): $(cat "$T/out")"

finish
