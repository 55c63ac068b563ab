# bench/scenario_logical.sh — scenario A: logical dumps of the database.
# Sourced by bench/run.sh.
#
# Steps, on the cluster and data set of pg.sh:
#   initial   first dump into an empty repository
#   mutation  dump after mutation 1 (1% of accounts updated, 2k documents)
#             (both: the reference and opsbackup again in BENCH_REPEAT rounds,
#             a_dump_rounds)
#   restore   restore of the latest dump into a new database, verified by
#             comparing per-table row counts and row checksums with the
#             source (pg_fingerprint)
# Tools:
#   pg_dump-Z0-null  reference: `pg_dump -Fc -Z0 > /dev/null`, the floor any
#                    tool reading pg_dump's output stands on
#   pg_dump-Z9       the seed guide: `pg_dump --format=custom --compress=9 -f`
#   restic, borg     `pg_dump -Fc -Z0 | restic backup --stdin` / `borg create -`
#   opsbackup        `opsbackup backup db --dbname CONNINFO`, restore with
#                    `opsbackup restore db latest --target-db NAME`; run only
#                    once this build has `backup db`.
# Pipelines run under `bash -c 'set -o pipefail; ...'`, so wall and CPU
# include pg_dump for every tool (opsbackup runs pg_dump as its child).
# Scenario E runs the same steps (a_run) with the reference, restic and
# opsbackup, their repositories on the S3 server (scenario_s3.sh).

A_TOOLS="pg_dump-Z0-null pg_dump-Z9 restic borg opsbackup"

# a_run sets these; scenario E (scenario_s3.sh) runs the same steps with
# other values and REPO_STORE=s3:
#   A_SCEN  the scenario column of the rows (A, or E)
#   A_STEP  prefix of the step names ("", or "db-" in E)
#   A_NAME  prefix of the repository names (A-TOOL, or E-db-TOOL)
A_SCEN=A A_STEP="" A_NAME=A

a_dump() { # tool n step
    local tool=$1 n=$2 step=$A_STEP$3 r=- p=- pgd="$PGBIN/pg_dump"
    if [ "$tool" != pg_dump-Z0-null ]; then # the reference keeps nothing
        r=$(repo_url "$tool" "$A_NAME-$tool")
        p=$(repo_path "$A_NAME-$tool")
    fi
    case $tool in
    pg_dump-Z0-null)
        measure "$A_SCEN" "$step" "$tool" reference - - -- \
            bash -c 'set -o pipefail; "$1" -Fc -Z0 -d "$2" >/dev/null' _ "$pgd" "$PG_DB" ;;
    pg_dump-Z9)
        measure "$A_SCEN" "$step" "$tool" guide "$p" - -- \
            "$pgd" --format=custom --compress=9 -d "$PG_DB" -f "$r/bench_$n.dump" ;;
    restic)
        measure "$A_SCEN" "$step" restic peer "$p" - -- \
            bash -c 'set -o pipefail; "$1" -Fc -Z0 -d "$2" |
                restic -r "$3" backup --host bench --stdin --stdin-filename bench.dump' \
            _ "$pgd" "$PG_DB" "$r" ;;
    borg)
        measure "$A_SCEN" "$step" borg peer "$p" - -- \
            bash -c 'set -o pipefail; "$1" -Fc -Z0 -d "$2" |
                borg create --compression zstd,3 --stdin-name bench.dump "$3::a$4" -' \
            _ "$pgd" "$PG_DB" "$r" "$n" ;;
    opsbackup)
        if [ "$A_OB" = 1 ]; then
            measure "$A_SCEN" "$step" opsbackup opsbackup "$p" - -- \
                "$OB" --no-progress -r "$r" backup db --dbname "$PG_CONNINFO"
        else
            record_unavailable "$A_SCEN" "$step" opsbackup opsbackup "this build has no \`backup db\`"
        fi ;;
    esac
}

a_restore() { # tool
    local tool=$1 r db step=${A_STEP}restore
    [ "$tool" != pg_dump-Z0-null ] || return 0 # nothing was kept
    r=$(repo_url "$tool" "$A_NAME-$tool")
    db=$(printf 'restore_%s_%s' "$A_NAME" "$tool" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9' '_')
    local verify="pg_verify_restore $db" pgr="$PGBIN/pg_restore" cdb="$PGBIN/createdb"
    "$PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1 || true
    case $tool in
    pg_dump-Z9)
        measure "$A_SCEN" "$step" "$tool" guide - "$verify" -- \
            bash -c '"$1" -T template0 "$3" && "$2" --exit-on-error -d "$3" "$4"' \
            _ "$cdb" "$pgr" "$db" "$r/bench_2.dump" ;;
    restic)
        measure "$A_SCEN" "$step" restic peer - "$verify" -- \
            bash -c 'set -o pipefail; "$1" -T template0 "$3" &&
                restic -r "$4" dump latest /bench.dump | "$2" --exit-on-error -d "$3"' \
            _ "$cdb" "$pgr" "$db" "$r" ;;
    borg)
        measure "$A_SCEN" "$step" borg peer - "$verify" -- \
            bash -c 'set -o pipefail; "$1" -T template0 "$3" &&
                borg extract --stdout "$4::a2" | "$2" --exit-on-error -d "$3"' \
            _ "$cdb" "$pgr" "$db" "$r" ;;
    opsbackup)
        if [ "$A_OB" = 1 ]; then
            measure "$A_SCEN" "$step" opsbackup opsbackup - "$verify" -- \
                "$OB" --no-progress -r "$r" restore db latest --target-db "$db"
        else
            record_unavailable "$A_SCEN" "$step" opsbackup opsbackup "this build has no \`restore db\`"
        fi ;;
    esac
}

# a_dump_rounds N STEP TOOLS: every tool's dump, then the rounds after the
# first (extra_rounds) of the two whose wall times the targets compare: the
# reference and opsbackup, which starts each round from the repository it
# had before round 1.  The peers' and the guide's rows are one run each.
a_dump_rounds() { # n step tools
    local n=$1 step=$2 tools=$3 tool round ob=0
    case " $tools " in *" opsbackup "*) [ "$A_OB" = 1 ] && ob=1 ;; esac
    [ "$ob" = 0 ] || [ "$REPO_STORE" = s3 ] || repo_save "$A_NAME-opsbackup"
    for tool in $tools; do
        sync
        a_dump "$tool" "$n" "$step"
    done
    for round in $(extra_rounds); do
        for tool in $tools; do
            case $tool in
            pg_dump-Z0-null) ;;
            opsbackup) [ "$ob" = 1 ] || continue; repo_reset "$A_NAME-opsbackup" ;;
            *) continue ;;
            esac
            sync
            a_dump "$tool" "$n" "$step"
        done
        log "$A_SCEN/$A_STEP$step: round $round done"
    done
}

# a_run SCEN STEP_PREFIX NAME_PREFIX TOOLS: the whole scenario on a fresh
# cluster, with the repositories wherever repo_url puts them (REPO_STORE).
a_run() {
    A_SCEN=$1 A_STEP=$2 A_NAME=$3
    local tools=$4
    log "scenario $A_SCEN (logical dump), scale $BENCH_SCALE, seed $BENCH_SEED, repositories: $REPO_STORE"
    A_OB=0
    if ob_has_backup_kind db; then A_OB=1; fi
    pg_start
    pg_load
    local tool
    for tool in $tools; do
        case $tool in
        pg_dump-Z0-null) ;;
        opsbackup) if [ "$A_OB" = 1 ]; then init_repo opsbackup "$A_NAME-$tool"; fi ;;
        pg_dump-Z9) init_repo dir "$A_NAME-$tool" ;;
        *) init_repo "$tool" "$A_NAME-$tool" ;;
        esac
    done

    a_dump_rounds 1 initial "$tools"

    pg_mutate 1
    pg_fingerprint "$PG_DB" >"$WORK/pg/fingerprint" || die "fingerprint of $PG_DB failed"

    a_dump_rounds 2 mutation "$tools"

    for tool in $tools; do
        sync
        a_restore "$tool"
    done
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        for tool in $tools; do
            [ "$tool" = pg_dump-Z0-null ] || repo_remove "$A_NAME-$tool"
        done
        pg_stop
    fi
}

scenario_A() {
    a_run A "" A "$A_TOOLS"
}
