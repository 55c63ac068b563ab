# bench/scenario_wal.sh — scenario D: WAL archiving while pgbench writes.
# Sourced by bench/run.sh.
#
# For each tool in turn, on the same pgbench database (scale 30 x
# BENCH_SCALE, no documents): set its archive_command (pg_set_archive_command:
# the previous tool's archiving finished first), CHECKPOINT (every run starts
# with the same full-page-write burst), then `pgbench -n -T $D_SECONDS -c 4
# -j 2` (default 60 s) while the archiver runs the tool.  Every
# archive_command is wrapped in `/usr/bin/time -a -o FILE sh -c '...'`
# (bench/work/pg/d-archive.sh), so each call's wall, CPU and RSS are logged.
# Tools:
#   cp              guide: `test ! -f DIR/%f && cp %p DIR/%f`
#   gzip            guide: `gzip -c %p > DIR/%f.gz`
#   pgbackrest-zst  `pgbackrest archive-push %p`, compress-type=zst,
#                   aes-256-cbc (synchronous: archive-async is off)
#   opsbackup       `opsbackup archive-push %p` (it also pushes the other
#                   waiting segments in parallel, leaving markers, so the
#                   archiver's later calls for those return at once), with
#                   the archiver's key slot that docs/OPERATIONS.md
#                   recommends: a random password, kdf-n 1024
#                   (pg_archiver_password_file; archive-get too)
# Rows, per tool:
#   segment   wall / user / sys / CPU = the sum over all archive_command calls
#             of the run divided by the number of segments archived (mean
#             cost per segment); max RSS = the largest call; added = bytes
#             the archive grew by; note = segments, calls, pgbench tps.
#             Verified: the last archived segment, fetched back with the
#             tool (cp / zcat / archive-get), equals the file in pg_wal.
#   catch-up  wall = seconds from pgbench's exit until no segment waits
#             (.ready files in pg_wal/archive_status = 0); the note gives how
#             many segments waited when pgbench stopped and the most that
#             waited at any moment (sampled every 0.5 s).
#   backlog   with archive_command = '' (nothing archived), bulk inserts of
#             random text until $D_BACKLOG (default 32) segments wait; then
#             the tool's archive_command: wall = seconds until none waits,
#             CPU = the sum over its calls, RSS = the largest call, added =
#             bytes the archive grew by.  This is where opsbackup's parallel
#             push of waiting segments should count.

#
# d_run_all SCEN STEP NAME TOOLS runs all of it; scenario E (scenario_s3.sh)
# runs it again with REPO_STORE=s3 (wal-segment, wal-catch-up, wal-backlog:
# pgBackRest and opsbackup archive-push into the bucket of the HTTPS S3
# server, with the repository arguments of B over S3).  These set:
#   D_SCEN  the scenario column (D, or E)
#   D_STEP  prefix of the step names ("", or "wal-" in E)
#   D_NAME  prefix of the repository and configuration names (D, E-wal)

D_TOOLS="cp gzip pgbackrest-zst opsbackup"
: "${D_SECONDS:=60}" "${D_BACKLOG:=32}"
D_SCEN=D D_STEP="" D_NAME=D

d_role() {
    case $1 in
    opsbackup) echo opsbackup ;;
    cp | gzip) echo guide ;;
    *) echo peer ;;
    esac
}

d_repo() { # tool -> its local directory, or (REPO_STORE=s3) repo_path's form
    case $1 in
    cp | gzip) echo "$WORK/repos/$D_NAME-$1" ;;
    *) repo_path "$D_NAME-$1" ;;
    esac
}

d_pgbr_conf() { echo "$WORK/pg/$D_NAME-$1.conf"; }

d_command() { # tool -> archive_command proper (before wrapping)
    local r="$WORK/repos/$D_NAME-$1"
    case $1 in
    cp) echo "test ! -f $r/%f && cp %p $r/%f" ;;
    gzip) echo "gzip -c %p > $r/%f.gz" ;;
    pgbackrest-zst) echo "pgbackrest --config=$(d_pgbr_conf "$1") --stanza=bench archive-push %p" ;;
    opsbackup) echo "$OB ${D_OB_REPO_Q}--password-file $D_ARCH_PW archive-push %p" ;;
    esac
}

# Fetch SEG back from TOOL's archive and compare it with pg_wal/SEG.
d_verify() { # tool seg
    local tool=$1 seg=$2 r="$WORK/repos/$D_NAME-$1" tmp="$WORK/pg/d-verify"
    local src="$WORK/pg/data/pg_wal/$seg"
    rm -rf "$tmp"
    install -d -o postgres -m 0700 "$tmp"
    [ -f "$src" ] || { echo "$seg is no longer in pg_wal"; return 1; }
    case $tool in
    cp) cp "$r/$seg" "$tmp/$seg" ;;
    gzip) zcat "$r/$seg.gz" >"$tmp/$seg" ;;
    pgbackrest-zst) pg_as pgbackrest --config="$(d_pgbr_conf "$tool")" --stanza=bench \
        archive-get "$seg" "$tmp/$seg" ;;
    opsbackup) pg_as "$OB" "${D_OB_REPO[@]}" --password-file "$D_ARCH_PW" archive-get "$seg" "$tmp/$seg" ;;
    esac || { echo "fetching $seg back failed"; return 1; }
    cmp "$src" "$tmp/$seg" && echo "$seg fetched back from the archive: identical"
    local rc=$?
    rm -rf "$tmp"
    return $rc
}

d_run() { # tool
    local tool=$1 role r times="$WORK/pg/d-times-$1"
    local logf="$LOGS/$D_NAME-archive-$1.log"
    r=$(d_repo "$tool")
    role=$(d_role "$tool")
    pg_set_archive_command "$WORK/pg/d-archive.sh $times \"$(d_command "$tool")\""
    pg_psql -d "$PG_DB" -c CHECKPOINT || die "CHECKPOINT failed"
    rm -f "$times"
    local before after
    before=$(repo_bytes "$r")
    log "$D_NAME/archive/$tool: pgbench -T $D_SECONDS -c 4 with archive_command $(d_command "$tool")"
    echo "# $(date -Is) archive_command: $(d_command "$tool")" >"$logf"
    "$PGBIN/pgbench" -n -T "$D_SECONDS" -c 4 -j 2 "$PG_DB" >>"$logf" 2>&1 &
    local pgb=$! maxready=0 n
    while kill -0 $pgb 2>/dev/null; do
        n=$(pg_ready_count)
        [ "$n" -gt "$maxready" ] && maxready=$n
        sleep 0.5
    done
    local pgrc=0
    wait $pgb || pgrc=$?
    local t0 waiting
    t0=$(date +%s.%N)
    waiting=$(pg_ready_count)
    [ "$waiting" -gt "$maxready" ] && maxready=$waiting
    pg_wait_archived 1800
    local catchup
    catchup=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    after=$(repo_bytes "$r")
    local tps
    tps=$(awk '/^tps = / { printf "%.0f", $3 }' "$logf")
    local seg
    seg=$(pg_psql -d postgres -At -c "SELECT last_archived_wal FROM pg_stat_archiver")
    # Calls: one "wall user sys rss" line each; failed calls also leave a
    # "Command exited with non-zero status" line.
    local stats
    stats=$(awk '/non-zero status/ { f++; next }
        NF == 4 { c++; w += $1; u += $2; s += $3; if ($4 > m) m = $4 }
        END { ok = c - f; d = (ok > 0 ? ok : 1)
              printf "%d %d %d %.4f %.4f %.4f %.4f %d\n", c, f, ok, w / d, u / d, s / d, (u + s) / d, m }' \
        "$times" 2>/dev/null)
    local calls fails segs mwall muser msys mcpu mrss
    read -r calls fails segs mwall muser msys mcpu mrss <<<"$stats"
    cat "$times" >>"$logf" 2>/dev/null || true
    local status=ok vstatus=ok note
    {
        echo "# pgbench exit $pgrc; $segs segments archived in $calls calls ($fails failed);"
        echo "# waiting at pgbench end: $waiting; max waiting: $maxready; catch-up ${catchup}s"
        echo "# verify: the last archived segment $seg"
    } >>"$logf"
    if ! d_verify "$tool" "$seg" >>"$logf" 2>&1; then vstatus=FAILED; fi
    note="$segs segments, $calls calls, $fails failed; pgbench $tps tps"
    if [ "$pgrc" -ne 0 ] || [ "${segs:-0}" -le 0 ] || [ "$vstatus" != ok ]; then
        status=FAILED
        note="$note; see logs/$(basename "$logf")"
    fi
    tsv_row "$D_SCEN" "${D_STEP}segment" "$tool" "$role" "$status" "$mwall" "$muser" "$msys" "$mcpu" "$mrss" \
        "$((after - before))" "$after" "$vstatus" "$note"
    tsv_row "$D_SCEN" "${D_STEP}catch-up" "$tool" "$role" "$status" "$catchup" - - - - - - - \
        "waiting at pgbench end: $waiting segments; max waiting: $maxready"
    log "$D_NAME/archive/$tool: $status $segs segments, mean ${mwall}s wall ${mcpu}s CPU per segment," \
        "waiting at end $waiting (max $maxready), catch-up ${catchup}s, pgbench $tps tps, verify $vstatus"
}

d_backlog() { # tool
    local tool=$1 role r times="$WORK/pg/d-backlog-times-$1"
    local logf="$LOGS/$D_NAME-backlog-$1.log"
    r=$(d_repo "$tool")
    role=$(d_role "$tool")
    pg_set_archive_command ""
    pg_psql -d "$PG_DB" -c "CREATE TABLE IF NOT EXISTS d_fill (x text)" || die "CREATE TABLE d_fill failed"
    while [ "$(pg_ready_count)" -lt "$D_BACKLOG" ]; do
        pg_psql -d "$PG_DB" -c "INSERT INTO d_fill SELECT repeat(md5(random()::text), 4)
            FROM generate_series(1, 50000)" || die "filling WAL failed"
    done
    pg_psql -d "$PG_DB" -c "TRUNCATE d_fill" || die "TRUNCATE d_fill failed"
    local have before after t0
    have=$(pg_ready_count)
    before=$(repo_bytes "$r")
    rm -f "$times"
    log "$D_NAME/backlog/$tool: $have segments waiting, archive_command $(d_command "$tool")"
    echo "# $(date -Is) $have segments waiting; archive_command: $(d_command "$tool")" >"$logf"
    t0=$(date +%s.%N)
    pg_set_archive_command "$WORK/pg/d-archive.sh $times \"$(d_command "$tool")\"" nowait
    pg_wait_archived 1800
    local drain
    drain=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    after=$(repo_bytes "$r")
    cat "$times" >>"$logf" 2>/dev/null || true
    local calls fails user sys cpu rss
    read -r calls fails user sys cpu rss < <(awk '/non-zero status/ { f++; next }
        NF == 4 { c++; u += $2; s += $3; if ($4 > m) m = $4 }
        END { printf "%d %d %.2f %.2f %.2f %d\n", c, f, u, s, u + s, m }' "$times" 2>/dev/null)
    local per
    per=$(awk -v d="$drain" -v n="$have" 'BEGIN { printf "%.3f", d / n }')
    echo "# drained in ${drain}s ($per s/segment), $calls calls ($fails failed)" >>"$logf"
    tsv_row "$D_SCEN" "${D_STEP}backlog" "$tool" "$role" ok "$drain" "$user" "$sys" "$cpu" "$rss" \
        "$((after - before))" "$after" - "$have segments ($per s each), $calls calls, $fails failed"
    log "$D_NAME/backlog/$tool: $have segments drained in ${drain}s ($per s/segment), CPU ${cpu}s, $calls calls"
}

d_run_all() { # scenario step-prefix name-prefix tools
    D_SCEN=$1 D_STEP=$2 D_NAME=$3
    local tools=$4 tool
    log "scenario $D_SCEN (WAL archiving under pgbench), scale $BENCH_SCALE, ${D_SECONDS}s per tool," \
        "repositories: $REPO_STORE"
    PG_EXTRA_CONF="archive_mode = on
archive_command = 'true'" pg_start
    PG_SCALE=$(awk -v s="$BENCH_SCALE" 'BEGIN { n = int(30 * s + 0.5); print (n < 1 ? 1 : n) }')
    "$PGBIN/createdb" "$PG_DB" || die "createdb $PG_DB failed"
    "$PGBIN/pgbench" -i -q -s "$PG_SCALE" "$PG_DB" >"$LOGS/$D_NAME-pgbench-init.log" 2>&1 ||
        die "pgbench -i failed, see $LOGS/$D_NAME-pgbench-init.log"
    log "database: pgbench scale $PG_SCALE"
    D_PW=$(pg_password_file)
    D_ARCH_PW=$(pg_archiver_password_file)
    ob_repo_args "$D_NAME-opsbackup"
    D_OB_REPO=("${OB_REPO_ARGS[@]}")
    D_OB_REPO_Q=$OB_REPO_ARGS_Q
    cat >"$WORK/pg/d-archive.sh" <<'EOF'
#!/bin/sh
# d-archive.sh TIMES 'COMMAND': run COMMAND as archive_command would (sh -c),
# appending its wall, user, sys and max RSS to TIMES.
t=$1
shift
exec /usr/bin/time -f '%e %U %S %M' -a -o "$t" sh -c "$1"
EOF
    chmod 755 "$WORK/pg/d-archive.sh"
    mkdir -p "$WORK/repos"
    for tool in $tools; do
        local path="$WORK/repos/$D_NAME-$tool" s3=()
        if [ "$REPO_STORE" = s3 ]; then
            case $tool in cp | gzip) die "$tool has no S3 repository in this harness" ;; esac
            repo_remove "$D_NAME-$tool"
            path="/$D_NAME-$tool" # pgBackRest's repo1-path: a prefix in the bucket
            pgbr_s3_opts
            s3=("${PGBR_S3[@]}")
        else
            rm -rf "$path"
            install -d -o postgres -m 0700 "$path"
        fi
        case $tool in
        pgbackrest-zst) pgbr_conf "$(d_pgbr_conf "$tool")" "$path" zst "${s3[@]}" ;;
        opsbackup)
            runuser -u postgres -- "$OB" --no-progress "${D_OB_REPO[@]}" --password-file "$D_PW" \
                init >"$LOGS/init-$D_NAME-$tool.log" 2>&1 ||
                die "opsbackup init failed, see $LOGS/init-$D_NAME-$tool.log"
            ob_add_archiver_slot "$D_PW" "$D_ARCH_PW" "$LOGS/key-add-$D_NAME-$tool.log" \
                "${D_OB_REPO[@]}" ;;
        esac
    done
    for tool in $tools; do
        d_run "$tool"
        d_backlog "$tool"
    done
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        pg_stop
        for tool in $tools; do
            case $tool in
            cp | gzip) rm -rf "$WORK/repos/$D_NAME-$tool" ;;
            *) repo_remove "$D_NAME-$tool" ;;
            esac
        done
    fi
}

scenario_D() {
    if ! ob_has_command archive-push; then
        record_unavailable D segment opsbackup opsbackup "this build has no archive-push"
        return 0
    fi
    d_run_all D "" D "$D_TOOLS"
}
