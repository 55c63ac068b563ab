#!/usr/bin/env bash
# restore files options: --include, --dry-run, --delete, `latest` with
# --set, restoring over older versions, snapshot ID prefixes (unique,
# ambiguous, unknown), and an in-place restore (`--target /`) simulated with
# a fake root that already holds the tree.
. "$(dirname "$0")/lib.sh"

src="$T/src"
mkdir -p "$src/app/sub" "$src/data"
printf 'a version 1\n' >"$src/app/a.txt"
printf 'b version 1, rather longer than the next one\n' >"$src/app/b.txt"
printf 'c is a file in version 1\n' >"$src/app/sub/c.txt"
printf 'log\n' >"$src/app/sub/d.log"
printf 'top\n' >"$src/top.txt"
python3 -c "import random,sys; sys.stdout.buffer.write(random.Random(5).randbytes(300000))" >"$src/data/x.bin"
ln -s app/a.txt "$src/data/link"
chmod 0640 "$src/app/b.txt"
touch -d '2020-05-06 07:08:09' "$src/app/a.txt" "$src/app/sub" "$src/app"
init_repo

ob --json backup files --set web "$src" >"$T/s1.json"
s1=$(json_get "$T/s1.json" 'j["id"]')
cp -a "$src" "$T/v1"            # the tree as s1 holds it, metadata included

# no_entry PATH WHY: PATH must not exist
no_entry() { [ ! -e "$1" ] && [ ! -L "$1" ] || problem "$2: $1 exists"; }
# only_paths DIR LIST...: DIR holds exactly these relative paths (files,
# links and directories, ancestors included)
only_paths() {
    local dir=$1; shift
    (cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | sort) >"$T/have"
    printf '%s\n' "$@" | sort >"$T/want"
    diff "$T/want" "$T/have" >/dev/null || { diff "$T/want" "$T/have" || true; return 1; }
}
# ancestors of $src relative to /, e.g. tmp tmp/obtest.X tmp/obtest.X/src
anc=()
p=${src#/}
while [ -n "$p" ]; do anc+=("$p"); [ "$p" = "${p%/*}" ] && break; p=${p%/*}; done
rs=${src#/}

info "--include a directory: it and everything below, plus its ancestors"
ob restore files "$s1" --target "$T/i1" --include "$src/app" >/dev/null
only_paths "$T/i1" "${anc[@]}" "$rs/app" "$rs/app/a.txt" "$rs/app/b.txt" "$rs/app/sub" \
    "$rs/app/sub/c.txt" "$rs/app/sub/d.log" || problem "--include $src/app restored other paths"
treecmp "$src/app" "$T/i1$src/app" || problem "--include $src/app: the subtree differs"
[ "$(stat -c %Y "$T/i1$src")" = "$(stat -c %Y "$src")" ] || problem "--include: ancestor $src did not get its mtime"

info "--include a directory with a trailing slash (as a shell completes it) takes the same"
ob restore files "$s1" --target "$T/i1s" --include "$src/app/" >/dev/null
only_paths "$T/i1s" "${anc[@]}" "$rs/app" "$rs/app/a.txt" "$rs/app/b.txt" "$rs/app/sub" \
    "$rs/app/sub/c.txt" "$rs/app/sub/d.log" || problem "--include $src/app/ restored other paths"

info "--include a glob and a single file"
ob restore files "$s1" --target "$T/i2" --include '*.log' --include "$src/top.txt" >/dev/null
only_paths "$T/i2" "${anc[@]}" "$rs/app" "$rs/app/sub" "$rs/app/sub/d.log" "$rs/top.txt" ||
    problem "--include '*.log' --include $src/top.txt restored other paths"
cmp -s "$src/app/sub/d.log" "$T/i2$src/app/sub/d.log" || problem "--include '*.log': d.log differs"
cmp -s "$src/top.txt" "$T/i2$src/top.txt" || problem "--include top.txt: it differs"

info "--include that matches nothing: exit 1, naming the pattern and the snapshot"
run_rc ob restore files "$s1" --target "$T/i3" --include "$src/nothing-here"
[ "$RC" = 1 ] || problem "--include of an absent path: exit $RC, expected 1"
grep -q -- "--include pattern '$src/nothing-here' matched nothing in snapshot ${s1:0:8}" "$T/err" ||
    { cat "$T/err"; problem "--include of an absent path: no message naming the pattern and snapshot"; }
[ -z "$(ls -A "$T/i3" 2>/dev/null)" ] || { find "$T/i3"; problem "--include of an absent path restored something"; }
run_rc ob restore files "$s1" --target "$T/i3" --include "$src/nothing-here" --dry-run
[ "$RC" = 1 ] || problem "--dry-run --include of an absent path: exit $RC, expected 1"
# Several patterns: each one that matched nothing is named; what the others
# matched is restored.
run_rc ob restore files "$s1" --target "$T/i4" --include '*.nope' --include "$src/top.txt" \
    --include "$src/app/absent"
[ "$RC" = 1 ] || problem "--include with two patterns matching nothing: exit $RC, expected 1"
grep -q -- "--include patterns '\*.nope', '$src/app/absent' matched nothing in snapshot ${s1:0:8}" "$T/err" ||
    { cat "$T/err"; problem "--include: the patterns that matched nothing are not all named"; }
grep -q "top.txt'" "$T/err" && problem "--include: a pattern that matched is reported as matching nothing"
cmp -s "$src/top.txt" "$T/i4$src/top.txt" || problem "--include: what the matching pattern took was not restored"
# A pattern that matches only through a directory it takes counts too.
run_rc ob restore files "$s1" --target "$T/i5" --include "$src/app" --include '*.log'
[ "$RC" = 0 ] || { cat "$T/err"; problem "--include $src/app --include '*.log': exit $RC"; }

info "--dry-run writes nothing"
ob restore files "$s1" --target "$T/dry" --dry-run >"$T/dry.out"
no_entry "$T/dry" "--dry-run created the target"
grep -q "$src/app/sub/c.txt" "$T/dry.out" || { cat "$T/dry.out"; problem "--dry-run does not list what it would restore"; }
ob restore files "$s1" --target "$T/dry" --dry-run --include '*.log' >"$T/dry2.out"
grep -q "d.log" "$T/dry2.out" || problem "--dry-run --include does not list the included file"
grep -q "a.txt" "$T/dry2.out" && problem "--dry-run --include lists an excluded file"
no_entry "$T/dry" "--dry-run --include created the target"

info "--delete removes what the snapshot lacks, keeps the snapshot's content"
ob restore files "$s1" --target "$T/d" >/dev/null
treecmp "$src" "$T/d$src" || fail "plain restore differs"
echo extra >"$T/d$src/app/extra.txt"
mkdir -p "$T/d$src/newdir/deeper" && echo x >"$T/d$src/newdir/deeper/f"
mkdir -p "$T/outside" && echo keep >"$T/outside/keep.txt"
ln -s "$T/outside" "$T/d$src/app/sub/extra-link"
echo "changed" >"$T/d$src/app/a.txt"
(cd "$T/d" && find . | sort) >"$T/d.before"
ob restore files "$s1" --target "$T/d" --delete --dry-run >"$T/dd.out"
(cd "$T/d" && find . | sort) >"$T/d.after"
cmp -s "$T/d.before" "$T/d.after" || problem "--delete --dry-run changed the target"
[ "$(cat "$T/d$src/app/a.txt")" = changed ] || problem "--delete --dry-run rewrote a file"
grep -q "extra.txt" "$T/dd.out" && grep -q "newdir" "$T/dd.out" ||
    { cat "$T/dd.out"; problem "--delete --dry-run does not list what it would delete (extra.txt, newdir)"; }
ob restore files "$s1" --target "$T/d" --delete >/dev/null
treecmp "$src" "$T/d$src" || problem "after --delete the target differs from the snapshot"
[ "$(cat "$T/outside/keep.txt" 2>/dev/null)" = keep ] || fail "--delete followed a symlink out of the target"
no_entry "$T/d$src/app/sub/extra-link" "--delete kept an extra symlink"

info "latest and --set"
src2="$T/other"
mkdir -p "$src2" && echo "other set" >"$src2/o.txt"
ob --json backup files --set db "$src2" >"$T/s2.json"
s2=$(json_get "$T/s2.json" 'j["id"]')
ob restore files latest --set web --target "$T/lw" >/dev/null || problem "restore latest --set web failed"
treecmp "$src" "$T/lw$src" || problem "latest --set web is not the web snapshot"
no_entry "$T/lw$src2" "latest --set web restored the db snapshot"
ob restore files latest --target "$T/la" >/dev/null
cmp -s "$src2/o.txt" "$T/la$src2/o.txt" || problem "latest (no --set) is not the newest snapshot"
no_entry "$T/la$src" "latest restored the older snapshot"
run_rc ob restore files latest --set nosuchset --target "$T/ln"
[ "$RC" != 0 ] || problem "latest --set nosuchset succeeded"
grep -q "nosuchset" "$T/err" || { cat "$T/err"; problem "latest --set nosuchset: the error does not name the set"; }
no_entry "$T/ln" "a failed snapshot lookup created the target"

info "restoring over older versions"
ob restore files "$s1" --target "$T/o" >/dev/null
printf 'a version 2 is longer than version one was\n' >"$src/app/a.txt"
printf 'b v2\n' >"$src/app/b.txt"
chmod 0600 "$src/app/b.txt"
rm "$src/app/sub/d.log" && ln -s ../a.txt "$src/app/sub/d.log"          # file -> symlink
rm "$src/data/link" && printf 'link is a file now\n' >"$src/data/link"   # symlink -> file
python3 -c "import random,sys; sys.stdout.buffer.write(random.Random(6).randbytes(100000))" >"$src/data/x.bin"
echo new >"$src/app/new.txt"
ob --json backup files --set web "$src" >"$T/s3.json"
s3=$(json_get "$T/s3.json" 'j["id"]')
ob restore files "$s3" --target "$T/o" >/dev/null || problem "restore of v2 over v1 failed"
treecmp "$src" "$T/o$src" || problem "v2 restored over v1 differs from v2"
info "  and back to v1 (with --delete)"
ob restore files "$s1" --target "$T/o" --delete >/dev/null || problem "restore of v1 over v2 failed"
treecmp "$T/v1" "$T/o$src" || problem "v1 restored over v2 differs from v1"

info "  a file that became a directory"
rm "$src/app/sub/c.txt" && mkdir "$src/app/sub/c.txt" && echo inside >"$src/app/sub/c.txt/f"
ob --json backup files --set web "$src" >"$T/s4.json"
s4=$(json_get "$T/s4.json" 'j["id"]')
run_rc ob restore files "$s4" --target "$T/o"     # the target holds c.txt as a file (v1)
[ "$RC" = 0 ] || { cat "$T/err"; problem "restore over an older version where a file became a directory fails (exit $RC)"; }
[ -f "$T/o$src/app/sub/c.txt/f" ] || problem "the directory that replaced a file was not restored"
info "  a directory that became a file"
ob restore files "$s1" --target "$T/o" >/dev/null || problem "restore of v1 over a directory that was a file failed"
[ -f "$T/o$src/app/sub/c.txt" ] && cmp -s "$T/v1/app/sub/c.txt" "$T/o$src/app/sub/c.txt" ||
    problem "a directory in the target was not replaced by the snapshot's file"

info "snapshot IDs: prefix, unknown, ambiguous"
ob restore files "${s1:0:8}" --target "$T/p" >/dev/null || problem "restore by an 8-digit prefix failed"
treecmp "$T/v1" "$T/p$src" || problem "restore by prefix gave a different tree"
run_rc ob restore files 0123456789abcdef0123 --target "$T/u"
grep -q "0123456789abcdef0123" "$T/err" && [ "$RC" != 0 ] ||
    { cat "$T/err"; problem "unknown ID: exit $RC, or the message does not name it"; }
no_entry "$T/u" "an unknown snapshot created the target"
run_rc ob restore files not-hex-at-all --target "$T/u"
[ "$RC" != 0 ] || problem "a non-hex snapshot ID succeeded"
# make two snapshots share a first hex digit (at most 17 are needed)
for i in $(seq 1 17); do
    first=$(ob --json snapshots | python3 -c 'import json,sys,collections; c=collections.Counter(s["id"][0] for s in json.load(sys.stdin)); print(next((k for k,v in c.items() if v>1), ""))')
    [ -n "$first" ] && break
    ob backup files --set pad --tag n=$i "$src2" >/dev/null
done
[ -n "$first" ] || fail "could not make two snapshot IDs share a first digit"
run_rc ob restore files "$first" --target "$T/amb"
[ "$RC" != 0 ] || problem "an ambiguous prefix '$first' succeeded"
grep -qi "ambiguous" "$T/err" || { cat "$T/err"; problem "ambiguous prefix: the message does not say so"; }
no_entry "$T/amb" "an ambiguous prefix created the target"
run_rc ob restore files "" --target "$T/amb"
[ "$RC" != 0 ] || problem "an empty snapshot ID succeeded"

info "in place (--target /) simulated with a fake root holding the tree"
F="$T/fakeroot"
mkdir -p "$F$T" "$F/etc"
cp -a "$T/v1" "$F$src"
echo "root:x:0:0::/root:/bin/sh" >"$F/etc/passwd"
echo "next to the backed-up path" >"$F$T/sibling.txt"
echo "also outside the backup" >"$F/top-level.txt"
echo "damaged" >"$F$src/app/a.txt"
rm "$F$src/app/b.txt"
echo "extra" >"$F$src/app/extra.txt"
ob restore files "$s1" --target "$F" >/dev/null || problem "in-place restore failed"
cmp -s "$T/v1/app/a.txt" "$F$src/app/a.txt" || problem "in place: a.txt not repaired"
cmp -s "$T/v1/app/b.txt" "$F$src/app/b.txt" || problem "in place: b.txt not brought back"
[ -e "$F$src/app/extra.txt" ] || problem "in place without --delete removed an extra file"
ob restore files "$s1" --target "$F" --delete >/dev/null || problem "in-place restore with --delete failed"
treecmp "$T/v1" "$F$src" || problem "in place with --delete: the backed-up tree differs from the snapshot"
# --delete is about the backed-up PATHs: it must not wipe everything else
# below the target (with --target / that would be the whole system).
[ -e "$F/etc/passwd" ] || problem "in place --delete removed $F/etc/passwd, outside the backed-up path $src"
[ -e "$F/top-level.txt" ] || problem "in place --delete removed $F/top-level.txt, outside the backed-up path"
[ -e "$F$T/sibling.txt" ] || problem "in place --delete removed $F$T/sibling.txt, a sibling of the backed-up path"

info "--delete with an --include that matches nothing deletes nothing"
# The target holds a path the snapshot lacks that the (mistyped) pattern
# covers: a restore must not delete it and then report the typo.
D="$T/typo"
ob restore files "$s1" --target "$D" >/dev/null || fail "restore into $D failed"
echo "mine" >"$D$src/app/notes.txt"
cp -a "$D" "$T/typo.before"
expect_code 1 ob restore files "$s1" --target "$D" --delete --include "$src/app/notes*" \
    --include "$src/app/a.txt" 2>"$T/err"
grep -q -- "--include pattern '$src/app/notes\*' matched nothing in snapshot ${s1:0:8}.*nothing was restored or deleted" "$T/err" ||
    { cat "$T/err"; problem "--delete with an unmatched --include: no clear error"; }
[ "$(cat "$D$src/app/notes.txt" 2>/dev/null)" = mine ] ||
    problem "--delete with an unmatched --include deleted $src/app/notes.txt"
diff -r --no-dereference "$T/typo.before" "$D" >/dev/null || problem "--delete with an unmatched --include changed the target"
# With every pattern matching, --delete does its work under them.
echo "changed" >"$D$src/app/a.txt"
ob restore files "$s1" --target "$D" --delete --include "$src/app" >/dev/null ||
    problem "--delete --include $src/app failed"
no_entry "$D$src/app/notes.txt" "--delete --include $src/app kept a file the snapshot lacks"
cmp -s "$T/v1/app/a.txt" "$D$src/app/a.txt" || problem "--delete --include $src/app did not restore a.txt"

info "many hard links: each later name is linked to its inode's first"
# 150 inodes with three names each, in two directories: the restore's
# hard-link table grows several times (64 slots at first).
H="$T/hl"
mkdir -p "$H/a" "$H/b"
for i in $(seq 1 150); do
    echo "content $i" >"$H/a/f$i"
    ln "$H/a/f$i" "$H/b/g$i"
    ln "$H/a/f$i" "$H/a/h$i"
done
ob --json backup files --set hl "$H" >"$T/hl.json"
ob restore files latest --set hl --target "$T/hlr" >/dev/null || problem "restore of 450 hard-linked names failed"
treecmp "$H" "$T/hlr$H" >"$T/hl.cmp" || { cat "$T/hl.cmp"; problem "hard links: the restored tree differs (treecmp checks which names share an inode)"; }
[ "$(stat -c %h "$T/hlr$H/b/g77")" = 3 ] || problem "hard links: g77 has $(stat -c %h "$T/hlr$H/b/g77") links, not 3"

info "a directory to be replaced that nests too deep is left alone with an error"
# The snapshot has a file where the target has a directory 4,200 levels
# deep: removing it would take a descriptor (and a stack frame) per level.
N="$T/deep"
ob restore files "$s1" --target "$N" >/dev/null || fail "restore into $N failed"
rm "$N$src/top.txt"
python3 - "$N$src/top.txt" <<'PY'
import os, sys
os.mkdir(sys.argv[1])
fd = os.open(sys.argv[1], os.O_RDONLY)
for _ in range(4200):
    os.mkdir("d", dir_fd=fd)
    nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
os.close(fd)
PY
expect_code 1 ob restore files "$s1" --target "$N"
grep -q "not removing $src/top.txt: directories nest more than 4096 levels deep below it" "$T/err" ||
    { cat "$T/err"; problem "a too deep directory to replace: no clear error"; }
[ -d "$N$src/top.txt/d/d/d" ] || problem "the too deep directory was partly removed"
rm -rf "$N"

finish
