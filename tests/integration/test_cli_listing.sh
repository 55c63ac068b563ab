#!/usr/bin/env bash
# The listing side of the CLI contract (CLI.md): snapshots --json fields and
# filters, --tag / --exclude / --time recorded by backup, ls (plain, -l,
# PATH, --json), diff's + - M lines, exit code 2 for usage errors, and
# `COMMAND --help` for every command.
. "$(dirname "$0")/lib.sh"
export TZ=UTC

src="$T/src"
mkdir -p "$src/docs" "$src/cache" "$src/empty"
printf 'alpha\n' >"$src/docs/a.txt"
printf 'bravo bravo\n' >"$src/docs/b.txt"
printf 'charlie\n' >"$src/docs/c.txt"
printf 'object code\n' >"$src/cache/tmp.o"
printf 'log line\n' >"$src/keep.log"
printf 'do not back me up\n' >"$src/skip.me"
ln -s docs/a.txt "$src/link"
chmod 0644 "$src"/docs/*.txt "$src/cache/tmp.o" "$src/keep.log" "$src/skip.me"
chmod 0755 "$src" "$src/docs" "$src/cache" "$src/empty"
init_repo

info "backups: files with --set/--tag/--exclude/--time, config, files with an offset time"
ob --json backup files --set web --tag env=prod --tag owner=ops --exclude '*.o' \
    --exclude "$src/skip.me" --time '2026-01-02 03:04:05' "$src" >"$T/b1.json"
s1=$(json_get "$T/b1.json" 'j["id"]')
ob --json backup config --set etc "$src/docs" >"$T/b2.json"
s2=$(json_get "$T/b2.json" 'j["id"]')
ob --json backup files --set tz --time '2026-01-02T03:04:05+09:00' "$src/keep.log" >"$T/b3.json"
s3=$(json_get "$T/b3.json" 'j["id"]')

info "snapshots --json"
ob --json snapshots >"$T/snaps.json"
python3 - "$T/snaps.json" "$s1" "$s2" "$s3" "$src" "$(uname -n)" >"$T/snapcheck" <<'EOF'
import json, re, sys
path, s1, s2, s3, src, host = sys.argv[1:]
j = json.load(open(path))
bad = []
if not isinstance(j, list):
    print("snapshots --json is not an array"); sys.exit()
if len(j) != 3:
    bad.append("expected 3 snapshots, got %d" % len(j))
rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
by_id = {}
for e in j:
    for k in ("id", "short_id", "time", "kind", "set", "host", "paths", "tags", "stats"):
        if k not in e:
            bad.append("snapshot %s lacks field '%s'" % (e.get("id", "?")[:8], k))
    for k in ("files", "bytes", "bytes_added"):
        if not isinstance(e.get("stats", {}).get(k), int):
            bad.append("snapshot %s: stats.%s missing or not an integer" % (e.get("id", "?")[:8], k))
    i = e.get("id", "")
    if not re.fullmatch(r"[0-9a-f]{64}", i):
        bad.append("id %r is not 64 hex digits" % i)
    if e.get("short_id") != i[:8]:
        bad.append("short_id %r is not the first 8 digits of %s" % (e.get("short_id"), i))
    if not rfc3339.match(str(e.get("time", ""))):
        bad.append("time %r is not RFC 3339" % e.get("time"))
    if not isinstance(e.get("paths"), list) or not isinstance(e.get("tags"), list):
        bad.append("paths/tags of %s are not arrays" % i[:8])
    if e.get("host") != host:
        bad.append("host of %s is %r, expected %r" % (i[:8], e.get("host"), host))
    by_id[i] = e
e1, e2, e3 = by_id.get(s1, {}), by_id.get(s2, {}), by_id.get(s3, {})
if e1.get("time") != "2026-01-02T03:04:05Z":
    bad.append("--time '2026-01-02 03:04:05' (TZ=UTC) recorded as %r" % e1.get("time"))
if e3.get("time") != "2026-01-01T18:04:05Z":
    bad.append("--time '2026-01-02T03:04:05+09:00' recorded as %r" % e3.get("time"))
if sorted(e1.get("tags", [])) != ["env=prod", "owner=ops"]:
    bad.append("tags of s1 are %r" % e1.get("tags"))
if (e1.get("kind"), e1.get("set"), e1.get("paths")) != ("files", "web", [src]):
    bad.append("s1 kind/set/paths are %r" % ((e1.get("kind"), e1.get("set"), e1.get("paths")),))
if (e2.get("kind"), e2.get("set"), e2.get("paths")) != ("config", "etc", [src + "/docs"]):
    bad.append("s2 kind/set/paths are %r" % ((e2.get("kind"), e2.get("set"), e2.get("paths")),))
st = e1.get("stats", {})
# a.txt b.txt c.txt keep.log (skip.me and tmp.o excluded; link is not a file)
want_bytes = 6 + 12 + 8 + 9
if st.get("files") != 4:
    bad.append("s1 stats.files = %r, expected 4" % st.get("files"))
if st.get("bytes") != want_bytes:
    bad.append("s1 stats.bytes = %r, expected %d" % (st.get("bytes"), want_bytes))
if not (isinstance(st.get("bytes_added"), int) and st["bytes_added"] >= want_bytes):
    bad.append("s1 stats.bytes_added = %r, expected at least %d" % (st.get("bytes_added"), want_bytes))
for b in bad:
    print(b)
EOF
while IFS= read -r line; do problem "snapshots --json: $line"; done <"$T/snapcheck"

info "snapshots filters"
count() { ob --json snapshots "$@" >"$T/f.json" && json_get "$T/f.json" 'len(j)'; }
[ "$(count --set web)" = 1 ] || problem "--set web did not give 1 snapshot"
[ "$(json_get "$T/f.json" 'j[0]["id"]')" = "$s1" ] || problem "--set web gave the wrong snapshot"
[ "$(count --set nosuchset)" = 0 ] || problem "--set nosuchset is not empty"
[ "$(count --kind config)" = 1 ] || problem "--kind config did not give 1 snapshot"
[ "$(json_get "$T/f.json" 'j[0]["id"]')" = "$s2" ] || problem "--kind config gave the wrong snapshot"
[ "$(count --kind files)" = 2 ] || problem "--kind files did not give 2 snapshots"
[ "$(count --kind files --set tz)" = 1 ] || problem "--kind files --set tz did not give 1 snapshot"
run_rc ob snapshots --kind bogus
[ "$RC" = 2 ] || problem "snapshots --kind bogus exited $RC, expected 2"
ob snapshots >"$T/snaps.txt"
for s in "$s1" "$s2" "$s3"; do
    grep -q "${s:0:8}" "$T/snaps.txt" || problem "plain snapshots does not show ${s:0:8}"
done
grep -q "env=prod" "$T/snaps.txt" || problem "plain snapshots does not show the tags"

info "ls lists every path, without excluded ones"
ob ls "$s1" >"$T/ls1"
python3 - "$src" >"$T/ls.want" <<'EOF'
import os, sys
src = sys.argv[1]
out = []
p = src
while p != "/":                   # ancestors of the backed-up PATH
    out.append(p)
    p = os.path.dirname(p)
for dp, dns, fns in os.walk(src):
    for n in dns + fns:
        full = os.path.join(dp, n)
        if n.endswith(".o") or full == src + "/skip.me":
            continue
        out.append(full)
print("\n".join(sorted(out)))
EOF
sort "$T/ls1" >"$T/ls.got"
diff "$T/ls.want" "$T/ls.got" >"$T/ls.diff" || { cat "$T/ls.diff"; problem "ls does not list exactly the snapshot's paths"; }
grep -q 'tmp\.o' "$T/ls1" && problem "--exclude '*.o' did not exclude cache/tmp.o"
grep -q 'skip\.me' "$T/ls1" && problem "--exclude $src/skip.me did not exclude it"
grep -qx "$src/cache" "$T/ls1" || problem "excluding cache/tmp.o dropped the directory cache itself"

info "ls -l"
ob ls -l "$s1" >"$T/ls-l"
grep -E "^-rw-r--r-- .* 12 .*$src/docs/b\.txt\$" "$T/ls-l" >/dev/null ||
    { grep b.txt "$T/ls-l"; problem "ls -l does not show b.txt as -rw-r--r-- of 12 bytes"; }
grep -E "^l.* $src/link -> docs/a\.txt\$" "$T/ls-l" >/dev/null ||
    { grep link "$T/ls-l"; problem "ls -l does not show the symlink and its target"; }
grep -E "^d.* $src/docs\$" "$T/ls-l" >/dev/null || problem "ls -l does not show docs as a directory"
[ "$(wc -l <"$T/ls-l")" = "$(wc -l <"$T/ls1")" ] || problem "ls -l and ls list different numbers of entries"

info "ls SNAPSHOT PATH restricts the listing"
ob ls "$s1" "$src/docs" | sort >"$T/ls-docs"
printf '%s\n' "$src/docs" "$src/docs/a.txt" "$src/docs/b.txt" "$src/docs/c.txt" >"$T/ls-docs.want"
diff "$T/ls-docs.want" "$T/ls-docs" || problem "ls SNAPSHOT $src/docs lists something else"
ob ls "$s1" "$src/docs/" | sort >"$T/ls-docs2"
diff "$T/ls-docs.want" "$T/ls-docs2" || problem "ls SNAPSHOT $src/docs/ (trailing slash) lists something else"
ob ls "$s1" "$src/do" >"$T/ls-do"
[ ! -s "$T/ls-do" ] || { cat "$T/ls-do"; problem "ls SNAPSHOT $src/do matches $src/docs as a string prefix"; }
ob --json ls "$s1" "$src/docs" >"$T/ls.json"
[ "$(json_get "$T/ls.json" 'sorted(e["path"] for e in j)' )" = "$(python3 -c "print(sorted(open('$T/ls-docs.want').read().split()))")" ] ||
    problem "ls --json PATH lists something else"
[ "$(json_get "$T/ls.json" '[e["type"] for e in j if e["path"].endswith("/a.txt")][0]')" = file ] ||
    problem "ls --json: a.txt is not type file"
ob ls "${s1:0:10}" >/dev/null || problem "ls by ID prefix fails"

info "diff shows + - M"
printf 'alpha, changed\n' >"$src/docs/a.txt"
rm "$src/docs/b.txt"
printf 'delta\n' >"$src/docs/d.txt"
rm "$src/keep.log" && ln -s docs/c.txt "$src/keep.log"       # type change: T
chmod 0600 "$src/docs/c.txt"                                  # metadata only: U
ob --json backup files --set web --exclude '*.o' --exclude "$src/skip.me" "$src" >"$T/b4.json"
s4=$(json_get "$T/b4.json" 'j["id"]')
ob diff "$s1" "$s4" >"$T/diff"
cat "$T/diff"
grep -Eq "^\+ +$src/docs/d\.txt\$" "$T/diff" || problem "diff does not show + for the added d.txt"
grep -Eq "^- +$src/docs/b\.txt\$" "$T/diff" || problem "diff does not show - for the removed b.txt"
grep -Eq "^M +$src/docs/a\.txt\$" "$T/diff" || problem "diff does not show M for the modified a.txt"
grep -Eq "^T +$src/keep\.log\$" "$T/diff" || problem "diff does not show T for keep.log, now a symlink"
grep -Eq "^U +$src/docs/c\.txt\$" "$T/diff" || problem "diff does not show U for c.txt (mode change only)"
grep -Eq "^[-+MTU] +$src/link\$" "$T/diff" && problem "diff reports the unchanged symlink"
grep -Eq "^[-+MTU] +$src/cache/" "$T/diff" && problem "diff reports something in the unchanged cache/"
ob --json diff "$s1" "$s4" >"$T/diff.json"
[ "$(json_get "$T/diff.json" 'sorted((c["change"], c["path"].rsplit("/",1)[1]) for c in j["changes"] if c["change"] in "+-M")')" = \
  "[('+', 'd.txt'), ('-', 'b.txt'), ('M', 'a.txt')]" ] || problem "diff --json changes are wrong: $(cat "$T/diff.json")"
ob diff "$s4" "$s4" >"$T/diff0"
grep -Eq "^[-+MTU] " "$T/diff0" && problem "diff of a snapshot with itself reports changes"

info "usage errors exit 2"
usage2() {
    run_rc "$@"
    [ "$RC" = 2 ] || { cat "$T/err"; problem "exit $RC, expected 2 (usage): ${*#"$OPSBACKUP"}"; }
}
usage2 "$OPSBACKUP"
usage2 "$OPSBACKUP" --bogus-global
usage2 "$OPSBACKUP" nosuchcommand
usage2 ob snapshots --bogus
usage2 ob snapshots extra-operand
usage2 ob ls
usage2 ob ls "$s1" /a /b
usage2 ob diff "$s1"
usage2 ob backup
usage2 ob backup files
usage2 ob backup tarballs "$src"
usage2 ob backup files --tag novalue "$src"
usage2 ob backup files --time 'not a time' "$src"
usage2 ob backup files --set
usage2 ob restore files
usage2 ob restore files "$s1"
usage2 ob restore files "$s1" --target
usage2 ob restore files "$s1" --target "$T/x" --bogus
usage2 ob check extra
usage2 ob check --read-data-subset 0
usage2 ob check --read-data-subset 101
usage2 ob key
usage2 ob unlock extra
usage2 ob init --kdf-n 1000
[ ! -e "$T/x" ] || problem "a usage error created the restore target"
# A relative repository name without a config file: the message says what
# to give instead (the absolute path it probably meant).  Only where the
# default config file does not exist.
if [ ! -e /etc/opsbackup/opsbackup.conf ]; then
    (cd "$T" && env -u OPSBACKUP_CONFIG "$OPSBACKUP" -r relrepo snapshots) \
        >"$T/out" 2>"$T/err" && problem "a relative repository without a config was accepted"
    grep -q "no config file was found to name it: give an absolute path (-r $T/relrepo)" "$T/err" \
        || { cat "$T/err"; problem "relative repository without a config: unclear message"; }
fi

info "every command has --help (exit 0)"
"$OPSBACKUP" --help >"$T/help"
"$OPSBACKUP" --version | grep -q '^opsbackup ' || problem "--version does not print 'opsbackup VERSION'"
cmds=$(awk '/^Commands:/{on=1; next} on && /^$/{exit} on {print $1}' "$T/help")
[ -n "$cmds" ] || fail "opsbackup --help lists no commands"
for c in $cmds; do
    run_rc "$OPSBACKUP" "$c" --help
    [ "$RC" = 0 ] || problem "opsbackup $c --help exited $RC"
    grep -q "usage: opsbackup $c" "$T/out" || { cat "$T/out"; problem "opsbackup $c --help shows no usage line"; }
    run_rc "$OPSBACKUP" help "$c"
    [ "$RC" = 0 ] || problem "opsbackup help $c exited $RC"
done
echo "commands: $cmds"

finish
