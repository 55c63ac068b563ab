/*
 * job.h — the [job.NAME] sections of the config file as typed values.
 *
 *   [job.db]
 *   kind = db                 ; db | db-physical | files | config
 *   dbname = host=localhost dbname=opscore
 *   schedule = 0 2 * * *
 *   keep-daily = 30
 *   repos = local, offsite
 *   verify-sql = SELECT COUNT(*) FROM documents
 *
 * `run JOB` and `daemon` act on these; `status` and `metrics` report on
 * them; `dr` restores them.  The section must already have passed
 * config_check (cli/config_check.h), which reports every problem with
 * file:line; job_load still refuses what it cannot use, so a caller that
 * skipped the check gets an error rather than a half-filled job.
 *
 * Ownership: job_load returns a job the caller frees with job_free; every
 * string in it is the job's own copy (the config may be freed, e.g. when
 * the daemon reloads it).
 */
#ifndef OB_JOB_H
#define OB_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/config.h"
#include "core/cron.h"
#include "core/err.h"

typedef enum job_kind { JOB_DB, JOB_DB_PHYSICAL, JOB_FILES, JOB_CONFIG } job_kind;

typedef struct job {
    char *name;            /* "db" for [job.db] */
    job_kind kind;
    const char *kind_name; /* "db", "db-physical", "files", "config" (static) */
    char *set;             /* snapshot set: `set =`, else the job's name */
    char *dbname;          /* db, db-physical: conninfo (NULL: libpq defaults) */
    char *pgdata;          /* db-physical */
    char *archive_get_command; /* db-physical: restore_command of a restored server
                                * (NULL: restore db's own default) */
    char *dump_command;    /* db: e.g. 'docker compose exec -T postgres pg_dump' */
    char **paths;          /* files, config */
    size_t npaths;
    char **excludes;
    size_t nexcludes;
    char **tags;           /* K=V */
    size_t ntags;
    char **repos;          /* repository names: `repos =`, else every [repo.NAME] */
    size_t nrepos;
    int has_schedule;
    cron schedule;
    char *schedule_text;
    char *timezone;        /* NULL: local time */
    /* Retention as forget arguments ("--keep-daily", "30", ...); none with
     * keep = forever or when no keep-* key is given (keep everything). */
    char **keep_args;
    size_t nkeep_args;
    int keep_forever;
    int verify;            /* verify = true, or implied by verify-sql */
    char **verify_sql;
    size_t nverify_sql;
    int64_t rpo;           /* rpo = DURATION; 0: 2x the schedule's longest interval */
    int64_t full_every;    /* db-physical: full-every = DURATION (--full-every); 0: none */
} job;

/* [job.NAME] of c.  OB_ENOTFOUND when there is no such section (the
 * message lists the jobs that exist), OB_EUSAGE for a value it cannot use. */
int job_load(const config *c, const char *name, job **out, ob_err *err);
/* Every [job.NAME] in file order. */
int job_load_all(const config *c, job ***out, size_t *n, ob_err *err);
void job_free(job *j);
void job_free_all(job **v, size_t n);

/* Seconds after which the job's last success is too old: its rpo, else
 * twice the longest gap between its scheduled runs in the coming weeks
 * (so a weekday-only schedule tolerates the weekend), else 0 (no
 * schedule, no rpo: never stale). */
int64_t job_max_age(const job *j, time_t now);

/* Split "a, b,c" into trimmed, non-empty items (heap strings). */
size_t job_split_list(const char *s, char ***out);
void job_strv_free(char **v, size_t n);

#endif
