# bench/scenario_future.sh — hooks for the scenarios whose opsbackup side
# does not exist yet: B (physical), D (WAL archiving), E (S3).
# Sourced by bench/run.sh.  Each scenario_X records "not yet available"
# until it is filled in; the plan for each is written here so the work is
# a matter of adding rows with `measure` (lib.sh) the way scenarios A and C
# do.  Reuse pg.sh: pg_start / pg_load / pg_mutate 2 (locality) /
# pg_fingerprint, and record every restore's verification.

ob_has_command() { # name: is NAME an opsbackup command?
    local cmds
    cmds=$("$OB" --help 2>/dev/null | awk '/^Commands:/ { on = 1; next }
        on && NF == 0 { on = 0 } on { print $1 }') || true
    printf '%s\n' "$cmds" | grep -qx -- "$1"
}

# B — physical backups, restore and start.
#   steps  full, incr (after `pg_mutate 2`, the locality mutation), restore
#   tools  guide  `pg_basebackup -Ft -z -X fetch -D DIR`
#          peer   pgBackRest, repo-cipher-type=aes-256-cbc, process-max=2,
#                 compress-type=zst and =gz as two tools (stanza in
#                 $WORK/pgbackrest.conf, archive_command pointing at it)
#          opsbackup `backup db-physical` (name to be confirmed when it lands)
#   verify restore into $WORK/pg/restore-TOOL, start it on another private
#          port/socket, compare pg_fingerprint with the source, stop it.
#   targets full wall <= 1.0x pgBackRest zst, stored size <= it; incr bytes
#          added <= 0.5x pgBackRest incr; restore wall <= 0.8x pgBackRest.
scenario_B() {
    if ob_has_backup_kind db-physical; then
        log "scenario B: opsbackup has physical backups, but bench/scenario_future.sh" \
            "has no rows for them yet: fill in scenario_B"
    fi
    record_unavailable B full opsbackup opsbackup "physical backups not in opsbackup yet; hook: scenario_B"
}

# D — WAL archiving while pgbench runs.
#   setup  archive_mode=on, archive_command per tool, `pgbench -T 120 -c 4`
#          with a small wal_segment_size-forcing load (or pg_switch_wal)
#   tools  guide `cp %p DIR/%f`, `gzip -c %p > DIR/%f.gz`; peer
#          `pgbackrest archive-push %p` (zst); opsbackup `archive-push %p`
#   measure mean time per segment (wrap each archive_command in
#          /usr/bin/time appending to a file), segments not yet archived when
#          pgbench stops (pg_stat_archiver vs pg_current_wal_lsn), and the
#          catch-up time until the lag is 0.
#   targets mean per segment <= pgBackRest archive-push (zst); lag <= 2
#          segments at the end.
scenario_D() {
    if ob_has_command archive-push; then
        log "scenario D: opsbackup has archive-push, but bench/scenario_future.sh" \
            "has no rows for it yet: fill in scenario_D"
    fi
    record_unavailable D archive opsbackup opsbackup "WAL archiving not in opsbackup yet; hook: scenario_D"
}

# E — scenarios A-C again against an S3-compatible server on 127.0.0.1
#   (MinIO or similar, started by the harness on a private port, never an
#   address outside 127.0.0.0/8): restic s3:http://127.0.0.1:PORT/bucket,
#   pgBackRest repo-type=s3, opsbackup s3:// URL.  Borg has no S3 backend and
#   is left out.  Implement by parameterising the repository URL of
#   scenario_A / scenario_C (their init_repo and tool calls) rather than
#   copying them.
scenario_E() {
    record_unavailable E all opsbackup opsbackup "S3 storage not in opsbackup yet; hook: scenario_E"
}
