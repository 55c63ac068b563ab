#!/usr/bin/env bash
# docs/QUICKSTART.md, executed: every ```sh block of the guide, in order, as
# one bash script (set -euo pipefail), against a throwaway PostgreSQL holding
# an OpsCore-like database and a scratch application directory.  Blocks
# marked ```sh-notest (packages, systemd, crontab) are skipped.
#
# The guide's "Settings" block (the first ```sh block) is the only place
# with site-specific values; the test replaces each of its assignments with
# a scratch value (and fails if the guide sets a variable it does not know,
# so the two cannot drift apart).  `opsbackup` is found on PATH through a
# shim that execs $OPSBACKUP.
#
# Then it asserts what the guide promises: each job ran and succeeded,
# status exits 0, the restored database equals the original, the restored
# attachments and config equal the originals, the alert channels got the
# test notification, and the repository checks clean.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/sink_lib.sh"

DOC="$OPSBACKUP_TOP/docs/QUICKSTART.md"
[ -f "$DOC" ] || fail "no $DOC"

export OPSBACKUP_STATE_DIR="$T/state"
export HOME="$T/home"
mkdir -p "$HOME"
chmod 0711 "$T"

info "a throwaway PostgreSQL with an OpsCore-like database 'opscore'"
pg_start
make_app_db opscore 5000
# The doc's own password handling must be what works: no test password.
unset OPSBACKUP_PASSWORD_FILE OPSBACKUP_PASSWORD OPSBACKUP_PASSWORD_COMMAND OPSBACKUP_CONFIG
unset OPSBACKUP_SMTP_PASSWORD OPSBACKUP_JOB OPSBACKUP_REPOSITORY

info "an OpsCore-like application in $T/app"
APP_DIR="$T/app"
mkdir -p "$APP_DIR/storage/evidence/2026-11" "$APP_DIR/storage/スクリーンショット" "$APP_DIR/config"
for i in 1 2 3 4 5 6; do
    head -c $((100000 + i * 7919)) /dev/urandom >"$APP_DIR/storage/evidence/2026-11/screenshot $i.png"
    printf 'work log %d\n%.0s' "$i" $(seq 1 300) >"$APP_DIR/storage/evidence/2026-11/log-$i.txt"
done
printf '画面\n' >"$APP_DIR/storage/スクリーンショット/作業証跡.txt"
ln -s evidence/2026-11 "$APP_DIR/storage/latest"
: >"$APP_DIR/storage/empty.txt"
printf 'DATABASE_URL=postgres://opscore@localhost/opscore\nSECRET_KEY=%s\n' \
    "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >"$APP_DIR/.env"
chmod 600 "$APP_DIR/.env"
printf '[server]\nport = 8080\n' >"$APP_DIR/config/app.ini"

info "alert sinks (Slack-style webhook and SMTP) on 127.0.0.1"
start_sink slack http_sink.py
SLACK_PORT=$SINK_PORT
start_sink smtp smtp_sink.py
SMTP_PORT=$SINK_PORT

# `opsbackup` on PATH is the binary under test.
mkdir -p "$T/bin"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$OPSBACKUP" >"$T/bin/opsbackup"
chmod 755 "$T/bin/opsbackup"
export PATH="$T/bin:$PATH"

# Scratch values for the guide's Settings block, by variable name.  The
# database is reached through PGHOST/PGPORT/PGUSER (pg_start), so the
# conninfo only names it.
declare -A SETTINGS=(
    [APP]="$APP_DIR"
    [REPO]="$T/backup/opsbackup"
    [ETC]="$T/etc/opsbackup"
    [RESTORE]="$T/srv/restore"
    [DB]="dbname=opscore"
    [SLACK_WEBHOOK]="http://127.0.0.1:$SLACK_PORT/services/T000/B000/QUICKSTARTSECRET"
    [ALERT_EMAIL]="admin@example.com"
    [SMTP_URL]="smtp://127.0.0.1:$SMTP_PORT"
)

mkdir -p "$T/work"
{
    for k in "${!SETTINGS[@]}"; do printf '%s=%s\n' "$k" "${SETTINGS[$k]}"; done
    printf '__WORKDIR=%s\n' "$T/work"
} >"$T/settings.env"

info "extracting the \`\`\`sh blocks of $DOC"
python3 - "$DOC" "$T/quickstart.sh" "$T/settings.env" <<'EOF'
import re, shlex, sys
doc, out, settings_path = sys.argv[1:4]
settings = {}
for line in open(settings_path):
    k, v = line.rstrip("\n").split("=", 1)
    settings[k] = v
blocks, cur, start, kinds = [], None, 0, set()
for n, line in enumerate(open(doc, encoding="utf-8"), 1):
    s = line.rstrip("\n")
    if cur is None:
        m = re.match(r"^```(\S*)\s*$", s)
        if m and m.group(1):
            kinds.add(m.group(1))
            cur, start, kind = [], n, m.group(1)
        elif m:
            sys.exit(f"{doc}:{n}: a code block without a language: mark it sh, sh-notest, ini...")
    elif s == "```":
        if kind == "sh":
            blocks.append((start, cur))
        cur = None
    else:
        cur.append(s)
if cur is not None:
    sys.exit(f"{doc}:{start}: unterminated code block")
if len(blocks) < 5:
    sys.exit(f"only {len(blocks)} sh blocks found")
first_line, first = blocks[0]
seen = set()
lines = ["set -euo pipefail", f"cd {shlex.quote(settings['__WORKDIR'])}"]
for start, body in blocks:
    lines.append(f"echo '=== QUICKSTART block at line {start}'")
    if start == first_line:
        for s in body:
            m = re.match(r"^([A-Z_][A-Z0-9_]*)=", s)
            if not m:
                if s.strip() and not s.strip().startswith("#"):
                    sys.exit(f"{doc}:{start}: the settings block must only assign variables: {s!r}")
                continue
            name = m.group(1)
            if name not in settings:
                sys.exit(f"{doc}:{start}: the settings block sets {name}, which the test does not know")
            seen.add(name)
            lines.append(f"{name}={shlex.quote(settings[name])}   # doc: {s.split('#')[0].strip()}")
    else:
        lines.extend(body)
missing = set(k for k in settings if not k.startswith("__")) - seen
if missing:
    sys.exit(f"the settings block no longer sets {sorted(missing)}: update the test")
open(out, "w").write("\n".join(lines) + "\n")
EOF

info "running the guide ($(grep -c '^echo .=== QUICKSTART' "$T/quickstart.sh") blocks)"
set +e
bash "$T/quickstart.sh" >"$T/quickstart.out" 2>&1
rc=$?
set -e
cat "$T/quickstart.out"
[ $rc = 0 ] || fail "the quick start failed (exit $rc) in the block above the last '=== QUICKSTART' line"

ETC="${SETTINGS[ETC]}"
RESTORE="${SETTINGS[RESTORE]}"
CFG="$ETC/opsbackup.conf"
ob_cfg() { "$OPSBACKUP" -c "$CFG" "$@"; }

info "the files the guide creates are private"
[ "$(stat -c %a "$ETC")" = 700 ] || problem "$ETC is mode $(stat -c %a "$ETC"), not 700"
for f in repo.password opsbackup.conf; do
    [ "$(stat -c %a "$ETC/$f")" = 600 ] || problem "$ETC/$f is mode $(stat -c %a "$ETC/$f"), not 600"
done

info "every job ran once and succeeded; status exits 0"
run_rc ob_cfg --json status
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "status exited $RC after the guide"; }
report_problems "status" < <(python3 - "$T/out" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
jobs = {x["name"]: x for x in j["jobs"]}
for name in ("db", "attachments", "config"):
    x = jobs.get(name)
    if not x:
        print(f"job {name} missing"); continue
    if not x.get("last_success"):
        print(f"job {name} has no last success")
    if x.get("problems"):
        print(f"job {name}: {x['problems']}")
if not j.get("ok"):
    print(f"not ok: {j.get('problems')}")
PY
)
for set in db attachments config; do
    n=$(ob_cfg -r local --json snapshots --set "$set" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" = 1 ] || problem "set $set has $n snapshots, expected 1"
done

info "the restored database equals the original"
pg_db_exists opscore_restored || fail "no database opscore_restored"
a=$(pg_checksum opscore)
b=$(pg_checksum opscore_restored)
if [ "$a" != "$b" ]; then
    pg_fingerprint_diff opscore opscore_restored
    problem "opscore_restored differs from opscore"
fi

info "the restored attachments and config equal the originals"
treecmp "$APP_DIR/storage" "$RESTORE$APP_DIR/storage" >"$T/treecmp.out" 2>&1 \
    || { cat "$T/treecmp.out"; problem "restored attachments differ"; }
cmp "$APP_DIR/.env" "$RESTORE$APP_DIR/.env" || problem "restored .env differs"
cmp "$APP_DIR/config/app.ini" "$RESTORE$APP_DIR/config/app.ini" || problem "restored config/app.ini differs"
[ "$(stat -c %a "$RESTORE$APP_DIR/.env")" = 600 ] || problem "restored .env lost its mode 600"

info "notify test reached Slack and mail; the webhook secret was never printed"
[ "$(count slack)" -ge 1 ] || problem "the Slack sink got nothing"
[ "$(count smtp)" -ge 1 ] || problem "the SMTP sink got nothing"
if grep -q QUICKSTARTSECRET "$T/quickstart.out"; then problem "the Slack webhook's secret path was printed"; fi

info "the escrow shares: 3 of them"
[ "$(grep -c '^obk1-' "$ETC/shares.txt")" = 3 ] || problem "shares.txt does not hold 3 shares"

info "the crontab lines run the three jobs with this config"
for job in db attachments config; do
    grep -q -- "-c $CFG -q run $job\$" "$T/quickstart.out" || problem "no crontab line for job $job"
done

info "the repository checks clean"
run_rc ob_cfg -r local check --read-data
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "check --read-data exited $RC"; }

info "README's quick start block, with its paths pointed at scratch ones"
python3 - "$OPSBACKUP_TOP/README.md" >"$T/readme.sh" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
section = text.split("\n## Quick start", 1)[1]
m = re.search(r"```sh\n(.*?)```", section, re.S)
print(m.group(1))
EOF
grep -q 'opsbackup init' "$T/readme.sh" || fail "README's quick start block not found"
printf 'readme quick start password\n' >"$T/readme.pw"
chmod 600 "$T/readme.pw"
sed -i -e "s|/backup/opsbackup|$T/readme-repo|g" -e "s|/etc/opsbackup/password|$T/readme.pw|g" \
    -e "s|/app/|$APP_DIR/|g" -e "s|/srv/restore|$T/readme-restore|g" "$T/readme.sh"
if grep -qE '(^| )/(app|backup|etc|srv)/' "$T/readme.sh"; then
    cat "$T/readme.sh"
    fail "README's quick start uses a path this test does not redirect"
fi
(unset OPSBACKUP_CONFIG; set -euo pipefail; . "$T/readme.sh") >"$T/readme.out" 2>&1 \
    || { cat "$T/readme.sh" "$T/readme.out"; fail "README's quick start failed"; }
treecmp "$APP_DIR/storage" "$T/readme-restore$APP_DIR/storage" >"$T/treecmp.out" 2>&1 \
    || { cat "$T/treecmp.out"; problem "README's quick start restore differs"; }
grep -q "no errors found" "$T/readme.out" || problem "README's quick start check did not report a clean repository"

finish
