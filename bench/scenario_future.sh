# bench/scenario_future.sh — hooks for the scenarios whose opsbackup side
# does not exist yet: E (S3).  (B and D, once hooks here, are in
# scenario_physical.sh and scenario_wal.sh.)
# Sourced by bench/run.sh.  Each scenario_X records "not yet available"
# until it is filled in; the plan for each is written here so the work is
# a matter of adding rows with `measure` (lib.sh) the way scenarios A and C
# do.  Reuse pg.sh: pg_start / pg_load / pg_mutate 2 (locality) /
# pg_fingerprint, and record every restore's verification.

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
