# bench/scenario_physical.sh — scenario B: physical backups, restore and start.
# Sourced by bench/run.sh.
#
# Steps, on the cluster and data set of pg.sh (archive_mode = on):
#   full      first physical backup into an empty repository
#   incr      backup after mutation 2 (locality: the most recent 1 % of
#             accounts updated, 2k documents appended): pgBackRest
#             --type=incr, opsbackup a second backup (it always stores only
#             changed 8 KiB blocks), pg_basebackup a full backup again
#   restore   restore of the latest backup into a fresh directory, start it
#             on a private port and socket (archive_mode=off, so a restored
#             cluster never archives into the repositories), wait until
#             recovery has ended; verified (not timed) by comparing
#             pg_fingerprint with the source, then stopped and removed;
#             pgBackRest and opsbackup again in BENCH_REPEAT rounds (lib.sh)
# Tools:
#   pg_basebackup   the guide: `pg_basebackup -Ft -z -X fetch -c fast`, WAL
#                   inside the tarball; restore = tar -xzf + pg_ctl start
#   pgbackrest-zst  pgBackRest 2.45, repo-cipher-type=aes-256-cbc (same
#   pgbackrest-gz   password), process-max=2, start-fast=y, compress-type
#                   zst / gz (default levels 3 / 6); restore --type=immediate
#   opsbackup       `backup db --physical --checkpoint fast`; restore
#                   `restore db --physical latest --target-immediate --start`.
#                   As docs/OPERATIONS.md recommends, archive_command and
#                   the restored server's restore_command (archive-get, via
#                   --archive-get-command) use the archiver's key slot (a
#                   random password, kdf-n 1024: pg_archiver_password_file);
#                   backup and restore use the user's password (default KDF).
# Every command runs as the postgres user, as on a server.
#
# Fairness.  archive_command must name one tool, so each tool's step runs
# with its own archive_command (ALTER SYSTEM + pg_reload_conf, after the
# previous one archived everything: pg_set_archive_command): pgBackRest's
# `archive-push`, opsbackup's `archive-push`, and `true` for pg_basebackup
# (-X fetch puts the WAL into the tarball).  The tools run one after the
# other on the same data: autovacuum is off and nothing writes between the
# backups of one step except each backup's own checkpoint and WAL; the
# mutation's WAL is archived into every repository (a fan-out command,
# not measured), so bytes added in "incr" are the backup and its own WAL.
# A backup waits until its WAL is archived (pgBackRest archive-check,
# opsbackup by design), so the archiving of that WAL is in its wall time.

B_TOOLS="pg_basebackup pgbackrest-zst pgbackrest-gz opsbackup"

# b_run sets these; scenario E (scenario_s3.sh) runs the same steps with
# other values and REPO_STORE=s3:
#   B_SCEN  the scenario column of the rows (B, or E)
#   B_STEP  prefix of the step names ("", or "phys-" in E)
#   B_NAME  prefix of the repository, configuration and restore names
#           (B-TOOL, or E-phys-TOOL)
# With REPO_STORE=s3 the repositories are prefixes in the bucket of the
# HTTPS S3 server scenario E started (S3_ENDPOINT, S3_PORT, S3_CA_FILE).
# pgBackRest's configuration and opsbackup's config file ([repo.bench])
# carry the endpoint, the CA and the key pair, because archive_command and
# restore_command run in the PostgreSQL server's environment, not ours.
B_SCEN=B B_STEP="" B_NAME=B

b_role() {
    case $1 in
    opsbackup) echo opsbackup ;;
    pg_basebackup) echo guide ;;
    *) echo peer ;;
    esac
}

# What measure's REPO argument and cache_prepare take for TOOL.
b_repo() { # tool
    if [ "$1" = pg_basebackup ]; then
        echo "$WORK/repos/$B_NAME-$1"
    else
        repo_path "$B_NAME-$1"
    fi
}

b_pgbr_conf() { echo "$WORK/pg/$B_NAME-$1.conf"; }

# opsbackup's repository arguments, as words (the array B_OB_REPO) and as
# one shell-quoted string for archive_command (B_OB_REPO_Q).
b_ob_repo_set() {
    ob_repo_args "$B_NAME-opsbackup"
    B_OB_REPO=("${OB_REPO_ARGS[@]}")
    B_OB_REPO_Q=$OB_REPO_ARGS_Q
}

b_archive_command() { # tool | all:TOOLS
    case $1 in
    pg_basebackup) echo "true" ;;
    pgbackrest-*) echo "pgbackrest --config=$(b_pgbr_conf "$1") --stanza=bench archive-push %p" ;;
    opsbackup) echo "$OB ${B_OB_REPO_Q}--password-file $B_ARCH_PW archive-push %p" ;;
    all:*)
        local t c=""
        for t in ${1#all:}; do
            [ "$t" = pg_basebackup ] && continue
            [ -n "$c" ] && c="$c && "
            c="$c$(b_archive_command "$t")"
        done
        echo "${c:-true}" ;;
    esac
}

b_backup() { # tool n step
    local tool=$1 n=$2 step=$B_STEP$3 r role
    r=$(b_repo "$tool")
    role=$(b_role "$tool")
    pg_set_archive_command "$(b_archive_command "$tool")"
    sync
    case $tool in
    pg_basebackup)
        measure "$B_SCEN" "$step" "$tool" "$role" "$r" - -- \
            runuser -u postgres -- "$PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres \
            -Ft -z -X fetch -c fast -D "$r/base_$n" ;;
    pgbackrest-*)
        local type=full
        [ "$n" -gt 1 ] && type=incr
        measure "$B_SCEN" "$step" "$tool" "$role" "$r" - -- \
            runuser -u postgres -- pgbackrest --config="$(b_pgbr_conf "$tool")" --stanza=bench \
            --type=$type backup ;;
    opsbackup)
        measure "$B_SCEN" "$step" "$tool" "$role" "$r" - -- \
            runuser -u postgres -- "$OB" --no-progress "${B_OB_REPO[@]}" --password-file "$B_PW" \
            backup db --physical --pgdata "$WORK/pg/data" --dbname "$PG_CONNINFO" --checkpoint fast ;;
    esac
}

# Start a restored data directory on the private port and wait until
# recovery has ended (the pg_basebackup and pgBackRest rows; opsbackup's
# --start does the same).  A script, so that measure can time it.
b_write_start_script() {
    cat >"$WORK/pg/start-restored.sh" <<EOF
#!/bin/bash
# start-restored.sh DIR: start on port \$B_PORT, socket DIR.sock; wait for promotion.
set -e
d=\$1
runuser -u postgres -- "$PGBIN/pg_ctl" -D "\$d" -l "\$d.sock/log" -w -t 3600 \\
    -o "-p $B_PORT -c unix_socket_directories=\$d.sock -c archive_mode=off" start
for _ in \$(seq 1 36000); do
    [ "\$("$PGBIN/psql" -XAtq -h "\$d.sock" -p $B_PORT -U postgres -d postgres \\
        -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && exit 0
    sleep 0.1
done
echo "recovery did not end" >&2
exit 1
EOF
    chmod 755 "$WORK/pg/start-restored.sh"
}

# Verification of a restored, started cluster (not timed): same
# fingerprint as the source; then stop it.
b_verify_restore() { # dir
    local d=$1 want got rc=0
    want=$(cat "$WORK/pg/fingerprint")
    got=$(PGHOST="$d.sock" PGPORT=$B_PORT pg_fingerprint "$PG_DB") || rc=1
    if [ "$rc" = 0 ] && [ "$want" = "$got" ]; then
        echo "fingerprint ok: $(echo "$got" | tr '\n' ' ')"
    else
        echo "fingerprint mismatch"
        echo "want: $want"
        echo "got:  $got"
        rc=1
    fi
    return $rc
}

b_stop_restored() { # dir
    if [ -f "$1/postmaster.pid" ]; then
        (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1" -m immediate -w stop) >/dev/null 2>&1 || true
    fi
}

b_restore() { # tool
    local tool=$1 r d="$WORK/restore/$B_NAME-$1" role step=${B_STEP}restore
    r=$(b_repo "$tool")
    role=$(b_role "$tool")
    b_stop_restored "$d"
    rm -rf "$d" "$d.sock"
    install -d -o postgres -m 0700 "$d" "$d.sock"
    local verify="b_verify_restore '$d'"
    case $tool in
    pg_basebackup)
        measure "$B_SCEN" "$step" "$tool" "$role" - "$verify" -- \
            bash -c 'runuser -u postgres -- tar -xzf "$1/base.tar.gz" -C "$2" && exec "$3" "$2"' \
            _ "$r/base_2" "$d" "$WORK/pg/start-restored.sh" ;;
    pgbackrest-*)
        measure "$B_SCEN" "$step" "$tool" "$role" - "$verify" -- \
            bash -c 'runuser -u postgres -- pgbackrest --config="$1" --stanza=bench --pg1-path="$2" \
                --type=immediate --target-action=promote restore && exec "$3" "$2"' \
            _ "$(b_pgbr_conf "$tool")" "$d" "$WORK/pg/start-restored.sh" ;;
    opsbackup)
        measure "$B_SCEN" "$step" "$tool" "$role" - "$verify" -- \
            runuser -u postgres -- "$OB" --no-progress "${B_OB_REPO[@]}" --password-file "$B_PW" \
            restore db --physical latest --pgdata "$d" --target-immediate --start \
            --archive-get-command "$OB ${B_OB_REPO_Q}--password-file $B_ARCH_PW archive-get %f \"%p\"" \
            --start-options "-p $B_PORT -c unix_socket_directories=$d.sock -c archive_mode=off" ;;
    esac
    b_stop_restored "$d"
    [ "${BENCH_KEEP:-0}" = 1 ] || retire "$d" "$d.sock"
}

# An empty repository for TOOL (not timed).
b_init() { # tool
    local tool=$1 path="$WORK/repos/$B_NAME-$1" s3=()
    if [ "$REPO_STORE" = s3 ]; then
        [ "$tool" = pg_basebackup ] && die "pg_basebackup has no S3 repository in this harness"
        repo_remove "$B_NAME-$tool"
        path="/$B_NAME-$tool" # pgBackRest's repo1-path: a prefix in the bucket
        pgbr_s3_opts
        s3=("${PGBR_S3[@]}")
    else
        rm -rf "$path"
        install -d -o postgres -m 0700 "$path"
    fi
    case $tool in
    pgbackrest-zst) pgbr_conf "$(b_pgbr_conf "$tool")" "$path" zst "${s3[@]}" ;;
    pgbackrest-gz) pgbr_conf "$(b_pgbr_conf "$tool")" "$path" gz "${s3[@]}" ;;
    opsbackup)
        runuser -u postgres -- "$OB" --no-progress "${B_OB_REPO[@]}" --password-file "$B_PW" \
            init >"$LOGS/init-$B_NAME-$tool.log" 2>&1 ||
            die "opsbackup init failed, see $LOGS/init-$B_NAME-$tool.log"
        ob_add_archiver_slot "$B_PW" "$B_ARCH_PW" "$LOGS/key-add-$B_NAME-$tool.log" \
            "${B_OB_REPO[@]}" ;;
    esac
}

b_run() { # scenario step-prefix name-prefix tools
    B_SCEN=$1 B_STEP=$2 B_NAME=$3
    local tools=$4 tool
    log "scenario $B_SCEN (physical), scale $BENCH_SCALE, seed $BENCH_SEED, repositories: $REPO_STORE"
    B_PORT=$((BENCH_PGPORT + 1))
    PG_EXTRA_CONF="archive_mode = on
archive_command = 'true'
autovacuum = off" pg_start
    pg_load
    B_PW=$(pg_password_file)
    B_ARCH_PW=$(pg_archiver_password_file)
    b_write_start_script
    b_ob_repo_set
    mkdir -p "$WORK/repos" "$WORK/restore"
    for tool in $tools; do
        b_init "$tool"
    done

    for tool in $tools; do
        b_backup "$tool" 1 full
    done

    pg_set_archive_command "$(b_archive_command "all:$tools")"
    pg_mutate 2
    pg_fingerprint "$PG_DB" >"$WORK/pg/fingerprint" || die "fingerprint of $PG_DB failed"
    pg_psql -d "$PG_DB" -c CHECKPOINT || die "CHECKPOINT failed"

    for tool in $tools; do
        b_backup "$tool" 2 incr
    done

    local round
    for round in 1 $(extra_rounds); do
        for tool in $tools; do
            # Rounds 2...: pgBackRest and opsbackup (what the target compares).
            case $round:$tool in 1:* | *:pgbackrest-* | *:opsbackup) ;; *) continue ;; esac
            cache_prepare "$(b_repo "$tool")"
            b_restore "$tool"
        done
    done
    retired_remove
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        pg_stop
        for tool in $tools; do
            if [ "$tool" = pg_basebackup ]; then
                rm -rf "$WORK/repos/$B_NAME-$tool"
            else
                repo_remove "$B_NAME-$tool"
            fi
        done
    fi
}

scenario_B() {
    if ! ob_has_command archive-push; then
        record_unavailable B full opsbackup opsbackup "this build has no archive-push / physical backups"
        return 0
    fi
    b_run B "" B "$B_TOOLS"
}
