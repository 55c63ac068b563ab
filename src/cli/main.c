/*
 * main.c — opsbackup's entry point: global options, then one command.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"

const cli_command cli_commands[] = {
    {"init", cmd_init, "create an encrypted repository",
     "init [-r REPO] [--new-password-file FILE] [--kdf-n N]"},
    {"key", cmd_key, "manage key slots (passwords) of a repository",
     "key list | add | passwd | remove ID  [--new-password-file FILE] [--kdf-n N]\n"
     "       opsbackup key export --shares N --threshold K [--json]\n"
     "       opsbackup key recover [--new-password-file FILE] [--kdf-n N] [SHARE... | -]\n"
     "         export splits the master key into N shares (Shamir, one printable token\n"
     "         each; every other line starts with '#'); any K of them rebuild it.\n"
     "         recover takes at least K shares (arguments, or one per line on standard\n"
     "         input, '#' lines ignored; shares are numbered in that order in messages),\n"
     "         proves the key on the repository and adds a key slot with a new password."},
    {"backup", cmd_backup, "back up files, config files or a PostgreSQL database",
     "backup files|config [--set NAME] [--tag K=V]... [--exclude PATTERN]... [--time TIME] "
     "[--force] PATH...\n"
     "       opsbackup backup db [--logical] [--set NAME] [--tag K=V]... [--dbname CONNINFO]\n"
     "                           [--dump-command 'CMD'] [--time TIME]\n"
     "       opsbackup backup db --physical --pgdata DIR [--dbname CONNINFO] [--set NAME]\n"
     "                           [--checkpoint fast|spread] [--archive-timeout DURATION]\n"
     "                           [--force | --full-every DURATION]"},
    {"snapshots", cmd_snapshots, "list snapshots",
     "snapshots [--set NAME] [--kind files|db|db-physical|config] [--json]\n"
     "       opsbackup -r A -r B... snapshots   which backup (original or copy) is in which\n"
     "                                          repository"},
    {"ls", cmd_ls, "list the entries of a snapshot", "ls [-l|--long] [--json] SNAPSHOT [PATH]"},
    {"diff", cmd_diff, "show what changed between two snapshots",
     "diff [--json] [--content [--show-values]] SNAPSHOT1 SNAPSHOT2\n"
     "         --content: for changed files under 1 MiB, which keys changed (KEY=VALUE,\n"
     "         key: value, INI [section] key = value) and which other lines, without\n"
     "         values; --show-values prints the values too (they may be secrets)."},
    {"restore", cmd_restore, "restore files, config files or a database",
     "restore files|config SNAPSHOT --target DIR [--set NAME] [--include PATTERN]... "
     "[--delete] [--dry-run]\n"
     "       opsbackup restore db SNAPSHOT [--set NAME] [--dbname CONNINFO]\n"
     "                            (--target-db NAME | --replace) [--jobs N] [--roles]\n"
     "                            [--restore-command 'CMD']\n"
     "       opsbackup restore db [SNAPSHOT] --physical --pgdata DIR [--delta]\n"
     "                 [--target-time 'YYYY-MM-DD HH:MM:SS[+TZ]' | --target-lsn LSN |\n"
     "                  --target-xid XID | --target-name NAME | --target-immediate]\n"
     "                 [--target-action promote|pause|shutdown] [--target-timeline TLI]\n"
     "                 [--start [--start-options 'PG_CTL -o OPTIONS']]\n"
     "                 [--tablespace-map OID=DIR]... [--archive-get-command 'CMD']\n"
     "                 [--archive-mode off|preserve]   (off: a test restore never archives\n"
     "                  into the production repository)\n"
     "         Without SNAPSHOT: the newest physical backup that ended before --target-time,\n"
     "         or the latest.  --target-action defaults to promote.  Tablespaces go back\n"
     "         where they were unless --tablespace-map; the directory must be empty."},
    {"verify", cmd_verify, "prove a backup restorable",
     "verify db [SNAPSHOT] [--set NAME] [--dbname CONNINFO] [--check-sql SQL]... [--json]\n"
     "       opsbackup verify files|config [SNAPSHOT] [--set NAME] [--json]\n"
     "         db: restores into a throwaway database, compares every table's rows with the\n"
     "         counts recorded at backup time, runs the checks (exit 3 on a mismatch);\n"
     "         files/config: reads back and authenticates every byte of the snapshot."},
    {"check", cmd_check, "verify the repository",
     "check [--read-data | --read-data-subset PCT] [--json]\n"
     "\n"
     "Reports every problem as an error or warning naming the object (index file,\n"
     "pack, snapshot, tree, file and chunk, key slot, WAL file) and does not stop at\n"
     "the first.  A file whose data is in a missing, truncated or (with --read-data)\n"
     "damaged pack, or not in the index, is named once; then every snapshot that\n"
     "cannot be restored in full is listed with how many files and directories in it\n"
     "lost data: all other snapshots restore in full.  Recovery: docs/RELIABILITY.md,\n"
     "\"Corruption and repair\" (`repair index`, then `forget SNAPSHOT...` or restore).\n"
     "Exit 3 if an error was found.\n"
     "--json prints {ok, errors, warnings, snapshots, trees, packs, blobs, packs_read,\n"
     "blobs_read, wal_files, affected_snapshots: [{id, short_id, time, kind, paths,\n"
     "damaged, unreadable}], problems: [{severity, message}]}."},
    {"copy", cmd_copy, "copy snapshots (and the WAL archive) to another repository",
     "copy --from REPO --to REPO [--from-password-file F] [--to-password-file F]\n"
     "            [--set NAME] [--kind KIND] [--json] [SNAPSHOT...]\n"
     "       Copies every snapshot (or those given) that REPO (--to) does not have yet,\n"
     "       writing only data it lacks; passwords may differ ([repo.NAME] password-file)."},
    {"archive-push", cmd_archive_push, "archive a WAL file (PostgreSQL's archive_command)",
     "archive-push [--batch N] [--threads N] PATH\n"
     "       archive_command = 'opsbackup archive-push %p'\n"
     "       Stores PATH in every repository of the config (or -r).  Also pushes up to\n"
     "       --batch (16) other files waiting in archive_status, in parallel."},
    {"archive-get", cmd_archive_get, "fetch a WAL file (PostgreSQL's restore_command)",
     "archive-get [--prefetch N] NAME DEST\n"
     "       restore_command = 'opsbackup archive-get %f \"%p\"'\n"
     "       Exits 1 when NAME is not archived.  Fetches the next --prefetch (8)\n"
     "       segments ahead in the background."},
    {"unlock", cmd_unlock, "remove stale locks left by crashed processes", "unlock"},
    {"forget", cmd_forget, "remove snapshots by a retention policy",
     "forget [--set NAME] [--kind files|db|db-physical|config] [--keep-last N]\n"
     "                        [--keep-hourly N] [--keep-daily N] [--keep-weekly N]\n"
     "                        [--keep-monthly N] [--keep-yearly N] [--keep-within DURATION]\n"
     "                        [--keep-tag K=V]... [--prune [--max-unused PCT]] [--dry-run] [--json]\n"
     "       opsbackup forget [--prune [--max-unused PCT]] [--dry-run] [--json] SNAPSHOT...\n"
     "\n"
     "With SNAPSHOT operands (IDs or unique prefixes; no --keep-* rule), exactly those\n"
     "snapshots are removed; a full ID whose object is damaged is removed by name.  All\n"
     "are resolved before any is removed.  --json then prints {\"dry_run\", \"removed\",\n"
     "\"snapshots\": [{\"id\", \"short_id\"}], \"prune\"}.\n"
     "\n"
     "Snapshots are grouped by set and kind, those with no set also by host and paths\n"
     "(two databases backed up without --set are two groups); in each group the rules\n"
     "keep:\n"
     "  --keep-last N       the N newest snapshots\n"
     "  --keep-hourly N     the newest snapshot of each of the N newest hours that have one\n"
     "  --keep-daily/--keep-weekly/--keep-monthly/--keep-yearly N: the same per day, ISO\n"
     "                      week, month, year (local time; TZ applies).  N may be\n"
     "                      'unlimited'.  If a rule has buckets left when the oldest\n"
     "                      snapshot is reached, the oldest is kept too.\n"
     "  --keep-within D     snapshots newer than (newest in the group - D); D is like\n"
     "                      90d, 12h, 2w, 1m (months), 1y, or 1y6m\n"
     "  --keep-tag K=V      snapshots with that tag (repeatable)\n"
     "A snapshot any rule keeps is kept; at least one rule is required.\n"
     "Reasons shown: 'last 3' (3rd newest), 'daily 2' (newest of the 2nd newest day),\n"
     "'oldest daily', 'within 30d', 'tag K=V'.  Only snapshot objects are removed;\n"
     "--prune then removes the data no snapshot uses (see `opsbackup prune --help`).\n"
     "\n"
     "--json prints one object:\n"
     "  {\"dry_run\": BOOL, \"kept\": N, \"removed\": N,\n"
     "   \"groups\": [{\"set\": S, \"kind\": K,\n"
     "               \"keep\":   [{\"id\", \"short_id\", \"time\" (RFC 3339), \"reasons\": [S...]}],\n"
     "               \"remove\": [{\"id\", \"short_id\", \"time\"}]}],\n"
     "   \"prune\": {as `prune --json`, only with --prune}}\n"
     "Groups are sorted by set then kind, snapshots newest first."},
    {"prune", cmd_prune, "remove data that no snapshot uses",
     "prune [--dry-run] [--max-unused PCT] [--json]\n"
     "\n"
     "Marks every blob the snapshots use, deletes packs with no used blob, repacks\n"
     "packs whose unused share is above --max-unused (default 10%), deletes packs\n"
     "no index names and temporary files of killed writers older than an hour, and\n"
     "rewrites the index.  Safe to interrupt: run it again to finish.  While a backup\n"
     "holds a lease on the repository, prune deletes nothing (deferred) and says so.\n"
     "\n"
     "--json prints one object: dry_run, deferred (BOOL), deferred_reason (when\n"
     "deferred), snapshots, trees, blobs_total, blobs_used, packs_total, bytes_total,\n"
     "packs_deleted, bytes_deleted, packs_repacked, bytes_repacked, blobs_repacked,\n"
     "packs_written, bytes_written, packs_unindexed, bytes_unindexed, index_files_old,\n"
     "index_files_new, tmp_removed, tmp_bytes, bytes_unused_kept, bytes_freed (net;\n"
     "planned under dry_run or deferred)."},
    {"repair", cmd_repair, "rebuild the index from the packs",
     "repair index [--dry-run] [--json]\n"
     "\n"
     "Reads every pack in full, authenticates its directory and every blob in it,\n"
     "and writes a new index of the blobs that authenticate; only then deletes the\n"
     "old index files (a crash leaves both: run it again).  Use it when index files\n"
     "are damaged or lost (`check` reports them, or packs in no index), or to drop a\n"
     "lost pack's blobs from the index.  A pack whose directory is damaged is\n"
     "salvaged through the old index entries for it when they are readable.  Index\n"
     "entries of packs that are missing are dropped: `check` then names the snapshots\n"
     "and files that lost data (docs/RELIABILITY.md, \"Corruption and repair\").\n"
     "Takes the exclusive lock; --dry-run writes nothing and takes a shared one.\n"
     "\n"
     "--json prints one object: dry_run, packs, packs_ok, packs_salvaged, packs_damaged,\n"
     "packs_unindexed, packs_missing, blobs, blobs_bad, entries_dropped, index_files_old,\n"
     "index_files_old_damaged, index_files_new, index_files_deleted, bytes_read,\n"
     "data_lost (BOOL), problems: [MESSAGE...]."},
    {"config", cmd_config, "check the config file",
     "config check [--json]\n"
     "\n"
     "Loads the config (-c FILE, $OPSBACKUP_CONFIG, /etc/opsbackup/opsbackup.conf) and\n"
     "reports every problem as FILE:LINE: message: unknown sections and keys, missing\n"
     "required keys, bad values (kind, schedule, keep-*, durations, URLs, size-limit),\n"
     "repos/jobs naming sections that do not exist, and secrets in a file that group\n"
     "or others can read.  Exits 2 if there is any problem, else prints\n"
     "'config OK: N repositories, M jobs' and exits 0.\n"
     "--json prints {\"file\", \"ok\", \"repositories\", \"jobs\",\n"
     "               \"problems\": [{\"file\", \"line\", \"message\"}]}."},
    {"run", cmd_run, "run one configured job: backup, copy, retention, verify, notify",
     "run [--json] JOB\n"
     "\n"
     "Runs [job.JOB] of the config file: backup to the job's first repository, copied to\n"
     "its other repositories (repos =, default every [repo.NAME]); then, on each repository\n"
     "that got the backup, forget --prune by the job's keep-* rules (none, or keep =\n"
     "forever: nothing is removed); then verify (verify = true or verify-sql: a restore\n"
     "into a scratch database for db jobs, a full read-back otherwise); then each\n"
     "repository's size against [notify] size-limit.  A failed backup stops the job:\n"
     "old backups are never removed after a failed one.  Records the outcome for\n"
     "status/metrics ($OPSBACKUP_STATE_DIR, default /var/lib/opsbackup as root, else\n"
     "~/.local/state/opsbackup) and notifies per [notify].  Two runs of one job never\n"
     "overlap (the second exits 1).  SIGTERM: no further step starts.\n"
     "Exit: 0 ok, 1 a step failed, 2 config error, 3 only findings (verify mismatch,\n"
     "repository over size-limit).\n"
     "--json prints {job, kind, set, host, ok, exit_code, started, finished,\n"
     "duration_seconds, snapshot, bytes_added, bytes_total, files, failed_step, error,\n"
     "steps: [{step, repository, ok, exit_code, seconds, error, result}], verify,\n"
     "repositories: [{name, bytes, size_limit, over_limit}]}."},
    {"status", cmd_status, "the state of every job and repository (a Nagios-style check)",
     "status [--json]\n"
     "\n"
     "Per job of the config: the last success and its age against the job's limit\n"
     "(rpo = DURATION, else twice the longest gap of its schedule), the last run and\n"
     "verify; per repository: its size against [notify] size-limit.  Only runs of\n"
     "`opsbackup run` (or the daemon) count.  Exit 0 when all is well, 3 when a job is\n"
     "stale or never succeeded, its last run or verify failed, or a repository is over\n"
     "its size-limit or unreachable (each PROBLEM line says which).\n"
     "--json prints {time, host, config, ok, problems: [S], jobs: [{name, kind, set,\n"
     "schedule, next_run, last_run, last_success, age_seconds, max_age_seconds, stale,\n"
     "last_verify, runs_total, failures_total, consecutive_failures, history, problems}],\n"
     "repositories: [{name, url, bytes, size_limit, over_limit, error}]}."},
    {"metrics", cmd_metrics, "job and repository metrics in Prometheus text format",
     "metrics\n"
     "\n"
     "Prints what `status` knows as Prometheus gauges and counters with a job or\n"
     "repository label: opsbackup_job_last_success_timestamp_seconds,\n"
     "opsbackup_job_last_run_{timestamp_seconds,success,duration_seconds,bytes_added,\n"
     "bytes_total}, opsbackup_job_{runs,failures}_total, opsbackup_job_consecutive_failures,\n"
     "opsbackup_job_{age,max_age}_seconds, opsbackup_job_stale,\n"
     "opsbackup_job_last_verify_{success,timestamp_seconds}, opsbackup_repository_up,\n"
     "opsbackup_repository_size_bytes, opsbackup_repository_size_limit_bytes,\n"
     "opsbackup_problems.  For node_exporter's textfile collector, or `daemon --listen`."},
    {"daemon", cmd_daemon, "run every configured job on its schedule",
     "daemon [--listen ADDR:PORT [--token-file FILE]] [--stop-timeout DURATION]\n"
     "       opsbackup daemon --print-crontab\n"
     "\n"
     "Runs each [job.NAME] with a schedule (5-field cron: lists, ranges, steps, names,\n"
     "@daily...; timezone = Area/City) as `opsbackup run NAME`, logging to stderr (the\n"
     "journal under systemd; see contrib/systemd/opsbackup.service).\n"
     "  - A job still running when due again is not started twice (logged).\n"
     "  - Runs missed while the machine slept (or the clock jumped) run once on waking,\n"
     "    and the log says how many were missed; runs missed while the daemon was\n"
     "    stopped are not made up (status shows the job as stale).\n"
     "  - SIGHUP reloads the config (refused, old schedule kept, if it has problems;\n"
     "    each run reads the file when it starts, so fix it: runs refuse a broken one).\n"
     "  - [notify] hears of failed runs (from the run), of runs that died or refused\n"
     "    to start, and once of a job whose last success is older than its limit.\n"
     "  - SIGTERM: no new job starts; running jobs finish their current step, and after\n"
     "    --stop-timeout (60s) are abandoned (the repository stays consistent).\n"
     "--listen ADDR:PORT serves GET / (the status dashboard, as `report --html`),\n"
     "/metrics (Prometheus) and /health (200 when all is well, 503 and the problems\n"
     "otherwise); ADDR defaults to 127.0.0.1.  --token-file FILE (mode 0600) makes\n"
     "every request need 'Authorization: Bearer TOKEN' or ?token=TOKEN; an address\n"
     "other than 127.x requires it.\n"
     "--print-crontab prints crontab lines that run the same jobs, and exits."},
    {"notify", cmd_notify, "send a test notification to every channel of [notify]",
     "notify test [--json]\n"
     "\n"
     "Loads the config (-c FILE, $OPSBACKUP_CONFIG, /etc/opsbackup/opsbackup.conf) and\n"
     "sends a test event (job 'test', succeeded) to every channel of its [notify]\n"
     "section, whatever 'on' says: slack-webhook, webhook, and email-to over smtp-url.\n"
     "Prints one line per channel, 'CHANNEL (HOST[:PORT]): ok' or\n"
     "'CHANNEL (HOST[:PORT]): failed: CAUSE'; webhook URLs are never shown in full\n"
     "(a Slack webhook URL is a secret).  The SMTP password comes from\n"
     "smtp-password-file (mode 600) or $OPSBACKUP_SMTP_PASSWORD.\n"
     "Exits 0 when every channel took the message, 1 when any failed, 2 when the\n"
     "config is missing or bad or names no channel.\n"
     "--json prints {\"channels\": [{\"channel\", \"target\", \"ok\", \"error\" (if failed)}],\n"
     "               \"attempted\", \"failed\"}."},
    {"report", cmd_report, "the status dashboard as one self-contained HTML page",
     "report --html FILE\n"
     "\n"
     "Writes what `status` knows as a page with no external assets and no script (to\n"
     "mail or publish): every job with its last run, result, age against its limit,\n"
     "last verify and next run, charts (inline SVG) of backup size, data added and\n"
     "duration over the recorded runs, repository sizes against size-limit, the\n"
     "problems, and the latest DR run.  FILE - writes to standard output.  The same\n"
     "page is served at / by `daemon --listen`."},
    {"dr", cmd_dr, "the disaster-recovery runbook of [dr]: plan, run, report",
     "dr plan [--target-time TIME] [--rehearsal --target DIR [--target-db NAME]] [--json]\n"
     "       opsbackup dr run [--yes] [--target-time TIME] [--report-dir DIR] [--delta]\n"
     "                        [--rehearsal --target DIR [--target-db NAME] [--keep]\n"
     "                         [--with-hooks] [--pg-port PORT]] [--json]\n"
     "\n"
     "Restores the jobs of the config's [dr] section (jobs = db, attachments, config;\n"
     "default every [job.NAME]) in that order, each from the newest snapshot in the\n"
     "job's first repository that can be read and has one (else the next, and so on).\n"
     "  plan  changes nothing.  Shows each job's snapshot and repository (and every\n"
     "        repository skipped, with why), the time its data is of and so the data\n"
     "        lost (RPO) against rpo =, the restore time estimated from the job's last\n"
     "        verify (else the last dr run; 'unknown' when neither timed it) against\n"
     "        rto =, and the numbered steps.  Exit 3 when RPO or the RTO estimate is\n"
     "        over its target or a job has nothing to restore, else 0.\n"
     "  run   shows the plan, asks to type 'yes' (on a terminal; without one it\n"
     "        refuses unless --yes), then runs the steps and stops at the first that\n"
     "        fails, saying what is done and what is not:\n"
     "          before hook -> restore each job (db: restore db ID --replace, or\n"
     "          --target-db NAME when the database is gone, with --roles; db-physical:\n"
     "          restore db ID --physical --pgdata PGDATA [--target-time] --start;\n"
     "          files/config: restore files|config ID --target /) -> check each\n"
     "          restored database (every table's rows against the counts the snapshot\n"
     "          recorded; check-sql, else the job's verify-sql) -> after hook ->\n"
     "          GET health-url until it answers 2xx.\n"
     "        Writes a report, dr-TIME.md and dr-TIME.json, to --report-dir (default\n"
     "        the state directory: $OPSBACKUP_STATE_DIR, /var/lib/opsbackup as root,\n"
     "        else ~/.local/state/opsbackup) and STATE_DIR/dr-last.json: each step's\n"
     "        time, the achieved RTO (the run's wall time) and RPO (the run's start, or\n"
     "        --target-time, minus the oldest restored data's time) against the\n"
     "        targets, and what was verified.  Notifies [notify] as job 'dr'.\n"
     "        Exit 0 recovered, 1 a step failed (or cancelled), 2 config/usage error.\n"
     "--target-time TIME  restore as of TIME: physical jobs replay WAL up to it, the\n"
     "        others take their newest snapshot from before it.\n"
     "--rehearsal --target DIR  a restore test that leaves production alone: files\n"
     "        under DIR, logical databases into a scratch database (--target-db NAME,\n"
     "        default DB_dr_rehearsal_TIME; dropped after its check unless --keep),\n"
     "        physical ones into DIR/pgdata-JOB with --archive-mode off (started on\n"
     "        --pg-port PORT if given).  Hooks and the health check are skipped unless\n"
     "        --with-hooks.  Schedule it (e.g. monthly) as one command.\n"
     "--delta  physical restores rewrite only what differs in a non-empty PGDATA.\n"
     "[dr] keys: rto, rpo, jobs, before, after (one command each, run without a shell\n"
     "unless shell = true; time limit hook-timeout, default 10m; `timeout` is an older\n"
     "name), health-url, health-retries (30), health-interval (2s), health-timeout\n"
     "(10s per request), check-sql (repeatable).\n"
     "--json: plan prints {mode, reference_time, jobs: [{job, kind, set, repository,\n"
     "fallbacks: [{repository, error}], snapshot: {id, short_id, time}, data_time,\n"
     "data_time_basis, data_loss_seconds, rpo_ok, estimate_seconds, estimate_source,\n"
     "database, target, error}], rpo: {target_seconds, worst_seconds, worst_job, ok},\n"
     "rto: {target_seconds, estimate_seconds, known_seconds, complete, ok}, steps: [{n,\n"
     "step, job, command, skipped, reason}], ok, problems}; run prints the report:\n"
     "{mode, ok, exit_code, started, finished, duration_seconds, jobs, achieved:\n"
     "{rto_seconds, rto_target_seconds, rto_ok, rpo_seconds, rpo_target_seconds,\n"
     "rpo_ok, rpo_basis, rpo_reference_time}, steps: [{n, step, job, command, status\n"
     "(ok, failed, skipped, not run), seconds, error, result}], verification:\n"
     "{databases, files, health}, done, not_done, failed_step, error, report_json,\n"
     "report_markdown}."},
    {NULL, NULL, NULL, NULL},
};

const cli_command *cli_find_command(const char *name)
{
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: opsbackup [global options] COMMAND [options] [args]\n\n"
            "Back up and restore a PostgreSQL-backed application: database, files, config.\n\n"
            "Commands:\n");
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
    fprintf(f, "\nGlobal options:\n"
               "  -c, --config FILE      config file (default $OPSBACKUP_CONFIG, then\n"
               "                         /etc/opsbackup/opsbackup.conf if it exists)\n"
               "  -r, --repo NAME|URL    a [repo.NAME] of the config, or /abs/path,\n"
               "                         file:///abs/path, s3://bucket/prefix (default\n"
               "                         $OPSBACKUP_REPOSITORY, or the config's only repository)\n"
               "  --password-file FILE   read the repository password from FILE; also\n"
               "                         $OPSBACKUP_PASSWORD_FILE, $OPSBACKUP_PASSWORD_COMMAND,\n"
               "                         $OPSBACKUP_PASSWORD, or a prompt on the terminal\n"
               "  --json                 machine-readable output\n"
               "  -q, --quiet / -v, --verbose\n"
               "  --no-progress          never draw progress (only shown on a terminal)\n"
               "  --kdf-n N              scrypt N for new key slots (init, key add; 2^10..2^20)\n"
               "  --version, -h, --help, COMMAND --help, help COMMAND\n\n"
               "Exit codes: 0 success, 1 failure, 2 usage or config error, 3 a check found a "
               "problem.\n");
}

int main(int argc, char **argv)
{
    /* Chunks are 0.5-8 MiB: above glibc's default mmap threshold each one
     * would be a fresh mmap, page-faulted in and unmapped again.  Keep them
     * in the heap instead. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    cli_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.prog = argv[0];
    ctx.config = getenv("OPSBACKUP_CONFIG");
    /* Global options before the command. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0) {
            printf("opsbackup %s\n", OPSBACKUP_VERSION);
            return CLI_OK;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            ctx.json = 1;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            ctx.quiet = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            ctx.verbose++;
        } else if (strcmp(a, "--no-progress") == 0) {
            ctx.no_progress = 1;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            ctx.config = argv[++i];
        } else if ((strcmp(a, "-r") == 0 || strcmp(a, "--repo") == 0) && i + 1 < argc) {
            cli_add_repo(&ctx, argv[++i]);
        } else if (strcmp(a, "--password-file") == 0 && i + 1 < argc) {
            ctx.password_file = argv[++i];
        } else if (strncmp(a, "--repo=", 7) == 0) {
            cli_add_repo(&ctx, a + 7);
        } else if (strncmp(a, "--config=", 9) == 0) {
            ctx.config = a + 9;
        } else if (strncmp(a, "--password-file=", 16) == 0) {
            ctx.password_file = a + 16;
        } else {
            fprintf(stderr, "opsbackup: unknown global option %s\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        const cli_command *c = i + 1 < argc ? cli_find_command(argv[i + 1]) : NULL;
        if (c)
            printf("usage: opsbackup %s\n", c->usage);
        else
            usage(stdout);
        return CLI_OK;
    }
    const cli_command *cmd = cli_find_command(argv[i]);
    if (!cmd) {
        fprintf(stderr, "opsbackup: unknown command '%s'\n", argv[i]);
        usage(stderr);
        return CLI_USAGE;
    }
    if (ctx.verbose)
        ob_log_set_level(ctx.verbose > 1 ? OB_LOG_DEBUG : OB_LOG_INFO);
    if (ctx.quiet)
        ob_log_set_level(OB_LOG_ERROR);
    int rc = cmd->run(&ctx, argc - i, argv + i);
    config_free(ctx.cfg); /* commands that loaded it without cli_close_repo */
    free(ctx.more_repos);
    return rc;
}
