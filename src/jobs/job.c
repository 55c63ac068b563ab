/*
 * job.c — typed jobs from the config file (job.h).
 */
#include "jobs/job.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "repo/retention.h"
#include "sources/pg_conn.h"

size_t job_split_list(const char *s, char ***out)
{
    size_t n = 0;
    char **v = NULL;
    while (s && *s) {
        const char *e = strchr(s, ',');
        const char *a = s, *b = e ? e : s + strlen(s);
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            v = ob_xrealloc(v, (n + 1) * sizeof *v);
            v[n++] = ob_xstrndup(a, (size_t)(b - a));
        }
        if (!e)
            break;
        s = e + 1;
    }
    *out = v;
    return n;
}

void job_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void strv_add(char ***v, size_t *n, const char *s)
{
    *v = ob_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = ob_xstrdup(s);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? ob_xstrdup(s) : NULL;
}

static int is_true(const char *v)
{
    return strcmp(v, "true") == 0 || strcmp(v, "yes") == 0;
}

static int bad(ob_err *err, const config *c, const config_entry *e, const char *section,
               const char *why)
{
    return ob_err_set(err, OB_EUSAGE, "%s:%d: [%s] %s = %s: %s (run `opsbackup config check`)",
                      c->path, e->line, section, e->key, e->value, why);
}

static int parse(const config *c, const config_section *s, job *j, ob_err *err)
{
    const config_entry *e = config_entry_get(s, "kind");
    if (!e)
        return ob_err_set(err, OB_EUSAGE, "%s:%d: [%s] has no kind (db, db-physical, files or "
                          "config)", c->path, s->line, s->name);
    static const struct {
        const char *name;
        job_kind kind;
    } kinds[] = {{"db", JOB_DB}, {"db-physical", JOB_DB_PHYSICAL}, {"files", JOB_FILES},
                 {"config", JOB_CONFIG}};
    j->kind_name = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(e->value, kinds[i].name) == 0) {
            j->kind = kinds[i].kind;
            j->kind_name = kinds[i].name;
        }
    if (!j->kind_name)
        return bad(err, c, e, s->name, "not one of db, db-physical, files, config");

    const char *set = config_get(s, "set");
    j->set = ob_xstrdup(set && *set ? set : j->name);
    const char *dbname = config_get(s, "dbname");
    j->dbname = dbname ? pg_conninfo_from_arg(dbname) : NULL;
    j->pgdata = dup_or_null(config_get(s, "pgdata"));
    j->archive_get_command = dup_or_null(config_get(s, "archive-get-command"));
    j->dump_command = dup_or_null(config_get(s, "dump-command"));
    j->timezone = dup_or_null(config_get(s, "timezone"));
    if ((e = config_entry_get(s, "paths")))
        j->npaths = job_split_list(e->value, &j->paths);
    if ((j->kind == JOB_FILES || j->kind == JOB_CONFIG) && j->npaths == 0)
        return ob_err_set(err, OB_EUSAGE, "%s:%d: [%s] is a %s job but has no paths", c->path,
                          s->line, s->name, j->kind_name);
    if (j->kind == JOB_DB_PHYSICAL && !j->pgdata)
        return ob_err_set(err, OB_EUSAGE, "%s:%d: [%s] is a db-physical job but has no pgdata",
                          c->path, s->line, s->name);

    for (size_t i = 0; i < s->n; i++) {
        const config_entry *x = &s->entries[i];
        if (strcmp(x->key, "exclude") == 0)
            strv_add(&j->excludes, &j->nexcludes, x->value);
        else if (strcmp(x->key, "verify-sql") == 0 && *x->value)
            strv_add(&j->verify_sql, &j->nverify_sql, x->value);
        else if (strcmp(x->key, "tags") == 0) {
            char **v;
            size_t n = job_split_list(x->value, &v);
            for (size_t k = 0; k < n; k++)
                strv_add(&j->tags, &j->ntags, v[k]);
            job_strv_free(v, n);
        } else if (strncmp(x->key, "keep-", 5) == 0) {
            /* keep-tag may repeat; the others are checked unique by config check. */
            char *opt = ob_xasprintf("--%s", x->key);
            strv_add(&j->keep_args, &j->nkeep_args, opt);
            strv_add(&j->keep_args, &j->nkeep_args, x->value);
            free(opt);
        } else if (strcmp(x->key, "keep") == 0) {
            if (strcmp(x->value, "forever") != 0)
                return bad(err, c, x, s->name, "the only value of keep is 'forever'");
            j->keep_forever = 1;
        }
    }
    if (j->keep_forever) { /* forever wins over any keep-* rule, as in forget */
        job_strv_free(j->keep_args, j->nkeep_args);
        j->keep_args = NULL;
        j->nkeep_args = 0;
    }
    /* The values were checked by config check; here only what makes a
     * policy unfit for a job (retention_policy_job_problem). */
    retention_policy pol;
    retention_policy_init(&pol);
    for (size_t i = 0; i < j->nkeep_args; i += 2) {
        ob_err ignore = OB_ERR_INIT;
        (void)retention_policy_set(&pol, j->keep_args[i] + 2, j->keep_args[i + 1], &ignore);
        ob_err_clear(&ignore);
    }
    const char *unsafe = retention_policy_job_problem(&pol);
    retention_policy_free(&pol);
    if (unsafe)
        return ob_err_set(err, OB_EUSAGE, "%s:%d: [%s] %s", c->path, s->line, s->name, unsafe);
    if ((e = config_entry_get(s, "verify")))
        j->verify = is_true(e->value);
    else
        j->verify = j->nverify_sql > 0;

    if ((e = config_entry_get(s, "repos")))
        j->nrepos = job_split_list(e->value, &j->repos);
    else
        for (size_t i = 0; i < c->n; i++)
            if (strncmp(c->sections[i].name, "repo.", 5) == 0 && c->sections[i].name[5])
                strv_add(&j->repos, &j->nrepos, c->sections[i].name + 5);
    for (size_t i = 0; i < j->nrepos; i++) {
        char *sec = ob_xasprintf("repo.%s", j->repos[i]);
        int found = config_section_get(c, sec) != NULL;
        free(sec);
        if (!found)
            return ob_err_set(err, OB_EUSAGE, "%s: [%s] names repository '%s' but there is no "
                              "[repo.%s]", c->path, s->name, j->repos[i], j->repos[i]);
    }
    if (j->nrepos == 0)
        return ob_err_set(err, OB_EUSAGE, "%s:%d: [%s]: no repository to back up to (add a "
                          "[repo.NAME] section, or repos = NAME)", c->path, s->line, s->name);

    if ((e = config_entry_get(s, "schedule"))) {
        if (cron_parse(e->value, &j->schedule, err) < 0)
            return ob_err_prefix(err, "%s:%d: [%s] schedule", c->path, e->line, s->name);
        j->has_schedule = 1;
        j->schedule_text = ob_xstrdup(e->value);
    }
    if (j->timezone && cron_tz_check(j->timezone, err) < 0)
        return ob_err_prefix(err, "%s: [%s]", c->path, s->name);
    if ((e = config_entry_get(s, "rpo")) && (ob_parse_duration(e->value, &j->rpo) < 0 || j->rpo <= 0))
        return bad(err, c, e, s->name, "not a duration such as 1h, 26h or 2d");
    if ((e = config_entry_get(s, "full-every")) &&
        (ob_parse_duration(e->value, &j->full_every) < 0 || j->full_every <= 0))
        return bad(err, c, e, s->name, "not a duration such as 7d");
    return 0;
}

int job_load(const config *c, const char *name, job **out, ob_err *err)
{
    *out = NULL;
    char *secname = ob_xasprintf("job.%s", name);
    const config_section *s = c ? config_section_get(c, secname) : NULL;
    free(secname);
    if (!s) {
        ob_buf names = OB_BUF_INIT;
        for (size_t i = 0; c && i < c->n; i++)
            if (strncmp(c->sections[i].name, "job.", 4) == 0) {
                if (names.len)
                    ob_buf_append(&names, ", ", 2);
                ob_buf_append(&names, c->sections[i].name + 4, strlen(c->sections[i].name + 4));
            }
        ob_buf_append(&names, "", 1);
        int rc = ob_err_set(err, OB_ENOTFOUND, "no job '%s' in %s (%s%s)", name,
                            c ? c->path : "the config (no config file was found)",
                            names.len > 1 ? "jobs: " : "it has no [job.NAME] section",
                            names.len > 1 ? (char *)names.data : "");
        ob_buf_free(&names);
        return rc;
    }
    job *j = ob_xcalloc(1, sizeof *j);
    j->name = ob_xstrdup(name);
    if (parse(c, s, j, err) < 0) {
        job_free(j);
        return -1;
    }
    *out = j;
    return 0;
}

int job_load_all(const config *c, job ***out, size_t *n, ob_err *err)
{
    *out = NULL;
    *n = 0;
    for (size_t i = 0; c && i < c->n; i++) {
        if (strncmp(c->sections[i].name, "job.", 4) != 0 || !c->sections[i].name[4])
            continue;
        job *j;
        if (job_load(c, c->sections[i].name + 4, &j, err) < 0) {
            job_free_all(*out, *n);
            *out = NULL;
            *n = 0;
            return -1;
        }
        *out = ob_xrealloc(*out, (*n + 1) * sizeof **out);
        (*out)[(*n)++] = j;
    }
    return 0;
}

void job_free(job *j)
{
    if (!j)
        return;
    free(j->name);
    free(j->set);
    free(j->dbname);
    free(j->pgdata);
    free(j->archive_get_command);
    free(j->dump_command);
    job_strv_free(j->paths, j->npaths);
    job_strv_free(j->excludes, j->nexcludes);
    job_strv_free(j->tags, j->ntags);
    job_strv_free(j->repos, j->nrepos);
    free(j->schedule_text);
    free(j->timezone);
    job_strv_free(j->keep_args, j->nkeep_args);
    job_strv_free(j->verify_sql, j->nverify_sql);
    free(j);
}

void job_free_all(job **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        job_free(v[i]);
    free(v);
}

int64_t job_max_age(const job *j, time_t now)
{
    if (j->rpo > 0)
        return j->rpo;
    if (!j->has_schedule)
        return 0;
    /* The longest gap among the next 64 runs, looking at most ~5 weeks
     * ahead: enough to see a weekend or a monthly gap without walking
     * through a year of every-minute schedules. */
    time_t t = now, prev = 0;
    int64_t longest = 0;
    for (int i = 0; i < 64; i++) {
        time_t next;
        ob_err e = OB_ERR_INIT;
        if (cron_next(&j->schedule, t, j->timezone, &next, &e) < 0) {
            ob_err_clear(&e);
            break;
        }
        if (prev && next - prev > longest)
            longest = next - prev;
        prev = t = next;
        if (i >= 1 && t - now > 35 * 86400)
            break;
    }
    return 2 * longest;
}
