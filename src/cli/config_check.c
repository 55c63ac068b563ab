/*
 * config_check.c — validate a parsed config against the rules of CLI.md
 * and issue #7 (config_check.h).  Each rule adds problems to a list; no
 * rule stops the others.
 */
#include "cli/config_check.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/cron.h"
#include "core/proc.h"
#include "core/util.h"
#include "repo/retention.h"

/* Allowed keys per section type: what CLI.md documents plus what the code
 * already reads (cli.c for repositories). */
static const char *const repo_keys[] = {
    "url", "endpoint", "region", "path-style", "access-key-id", "secret-access-key",
    "session-token", "ca-file", "password-file", NULL};
static const char *const job_keys[] = {
    "kind", "dbname", "paths", "pgdata", "set", "schedule", "timezone", "keep-last",
    "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly", "keep-within",
    "keep-tag", "keep", "repos", "verify", "verify-sql", "dump-command", "exclude", "tags",
    "rpo", "archive-get-command", "full-every", NULL};
static const char *const notify_keys[] = {
    "on", "slack-webhook", "webhook", "email-to", "email-from", "smtp-url", "smtp-user",
    "smtp-password-file", "size-limit", NULL};
static const char *const dr_keys[] = {
    "rto", "rpo", "jobs", "before", "after", "health-url", "check-sql", "timeout",
    "hook-timeout", "shell", "health-retries", "health-interval", "health-timeout", NULL};
/* Keys that may be given more than once (each adds a value). */
static const char *const repeatable_keys[] = {"keep-tag", "exclude", "verify-sql", "check-sql",
                                              NULL};

typedef struct checker {
    const config *c;
    config_check_result *r;
} checker;

static void problem(checker *k, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(checker *k, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = ob_xstrdup("out of memory while describing a problem");
    va_end(ap);
    config_check_result *r = k->r;
    r->problems = ob_xrealloc(r->problems, (r->n + 1) * sizeof *r->problems);
    r->problems[r->n].line = line;
    r->problems[r->n].message = msg;
    r->n++;
}

static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

static char *join(const char *const *list)
{
    ob_buf b = {0};
    for (size_t i = 0; list[i]; i++) {
        if (i)
            ob_buf_append(&b, ", ", 2);
        ob_buf_append(&b, list[i], strlen(list[i]));
    }
    ob_buf_append(&b, "", 1);
    return (char *)b.data;
}

/* Split "a, b,c" into trimmed items (heap strings; empty items kept as ""
 * so they can be reported). */
static size_t split_list(const char *s, char ***out)
{
    size_t n = 0;
    char **v = NULL;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *a = s, *b = s + len;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        v = ob_xrealloc(v, (n + 1) * sizeof *v);
        v[n++] = ob_xstrndup(a, (size_t)(b - a));
        if (!e)
            break;
        s = e + 1;
    }
    *out = v;
    return n;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int is_http_url(const char *v)
{
    return (strncmp(v, "http://", 7) == 0 && v[7]) || (strncmp(v, "https://", 8) == 0 && v[8]);
}

static int is_bool(const char *v)
{
    return strcmp(v, "true") == 0 || strcmp(v, "false") == 0 || strcmp(v, "yes") == 0 ||
           strcmp(v, "no") == 0;
}

int config_parse_size(const char *s, unsigned long long *bytes)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {
        {"", 1},        {"B", 1},
        {"KB", 1e3},    {"MB", 1e6},    {"GB", 1e9},    {"TB", 1e12},   {"PB", 1e15},
        {"K", 1e3},     {"M", 1e6},     {"G", 1e9},     {"T", 1e12},    {"P", 1e15},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
        {"TiB", 1099511627776.0}, {"PiB", 1125899906842624.0},
    };
    if (!isdigit((unsigned char)*s))
        return -1;
    char *end;
    double v = strtod(s, &end);
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(end, units[i].unit) == 0) {
            double b = v * units[i].mult;
            if (!(b >= 1) || b > 1.8e19)
                return -1;
            *bytes = (unsigned long long)b;
            return 0;
        }
    return -1;
}

/* Keys of a section: unknown ones and repeats. */
static void check_keys(checker *k, const config_section *s, const char *const *allowed,
                       const char *what)
{
    for (size_t i = 0; i < s->n; i++) {
        const config_entry *e = &s->entries[i];
        if (!in_list(allowed, e->key)) {
            char *list = join(allowed);
            problem(k, e->line, "unknown key '%s' in [%s] (a %s section takes: %s)", e->key,
                    s->name, what, list);
            free(list);
            continue;
        }
        if (in_list(repeatable_keys, e->key))
            continue;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->entries[j].key, e->key) == 0) {
                problem(k, e->line, "'%s' is given twice in [%s] (first on line %d)", e->key,
                        s->name, s->entries[j].line);
                break;
            }
    }
}

static void require(checker *k, const config_section *s, const char *key, const char *why)
{
    const config_entry *e = config_entry_get(s, key);
    if (!e)
        problem(k, s->line, "[%s] has no '%s'%s", s->name, key, why);
    else if (!*e->value)
        problem(k, e->line, "'%s' in [%s] is empty%s", key, s->name, why);
}

static void check_repo(checker *k, const config_section *s)
{
    check_keys(k, s, repo_keys, "repository");
    require(k, s, "url", " (a path like /backup/opsbackup or s3://bucket/prefix)");
    const config_entry *e = config_entry_get(s, "url");
    if (e && *e->value && e->value[0] != '/' && strncmp(e->value, "file:///", 8) != 0 &&
        !(strncmp(e->value, "s3://", 5) == 0 && e->value[5] && e->value[5] != '/'))
        problem(k, e->line,
                "url '%s' is not a repository: use /abs/path, file:///abs/path or "
                "s3://bucket/prefix",
                e->value);
    if ((e = config_entry_get(s, "path-style")) && strcmp(e->value, "true") != 0 &&
        strcmp(e->value, "false") != 0)
        problem(k, e->line, "path-style must be true or false, not '%s'", e->value);
    if ((e = config_entry_get(s, "endpoint")) && !is_http_url(e->value))
        problem(k, e->line, "endpoint '%s' must start with http:// or https://", e->value);
}

static void check_names(checker *k, const config_entry *e, const char *prefix, const char *what)
{
    char **v;
    size_t n = split_list(e->value, &v);
    for (size_t i = 0; i < n; i++) {
        if (!*v[i]) {
            problem(k, e->line, "%s: empty name in the list '%s'", e->key, e->value);
            continue;
        }
        char *sec = ob_xasprintf("%s.%s", prefix, v[i]);
        if (!config_section_get(k->c, sec))
            problem(k, e->line, "%s names %s '%s' but there is no [%s]", e->key, what, v[i],
                    sec);
        free(sec);
    }
    free_list(v, n);
}

/* Keys whose value is a positive duration (4h, 30m, 1d, 1h30m). */
static void check_durations(checker *k, const config_section *s, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++) {
        const config_entry *e = config_entry_get(s, keys[i]);
        int64_t secs;
        if (e && (ob_parse_duration(e->value, &secs) < 0 || secs <= 0))
            problem(k, e->line, "%s '%s' is not a duration such as 4h, 30m, 1d or 1h30m", e->key,
                    e->value);
    }
}

/* Job and repository names become file names (the job's state and lock,
 * reports) and labels: letters, digits, '.', '_' and '-' only. */
static void check_name(checker *k, const config_section *s, const char *name)
{
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
            strlen(name) ||
        name[0] == '.' || name[0] == '-')
        problem(k, s->line, "[%s]: the name '%s' may only use letters, digits, '.', '_' and "
                "'-' (not first)", s->name, name);
}

static void check_job(checker *k, const config_section *s)
{
    check_keys(k, s, job_keys, "job");
    require(k, s, "kind", " (db, db-physical, files or config)");
    const config_entry *e = config_entry_get(s, "kind");
    const char *kind = e ? e->value : NULL;
    if (kind && *kind) {
        if (strcmp(kind, "files") == 0 || strcmp(kind, "config") == 0)
            require(k, s, "paths", " (a files or config job backs up paths = /a, /b)");
        else if (strcmp(kind, "db-physical") == 0)
            require(k, s, "pgdata", " (a db-physical job needs the data directory)");
        else if (strcmp(kind, "db") != 0)
            problem(k, e->line, "kind '%s' is not one of db, db-physical, files, config", kind);
    }
    const config_entry *sched = config_entry_get(s, "schedule");
    if (sched) {
        cron c;
        ob_err err = OB_ERR_INIT;
        if (cron_parse(sched->value, &c, &err) < 0)
            problem(k, sched->line, "schedule '%s': %s", sched->value, ob_err_msg(&err));
        ob_err_clear(&err);
    }
    if ((e = config_entry_get(s, "timezone"))) {
        ob_err err = OB_ERR_INIT;
        if (cron_tz_check(e->value, &err) < 0)
            problem(k, e->line, "%s", ob_err_msg(&err));
        ob_err_clear(&err);
    }
    retention_policy p;
    retention_policy_init(&p);
    for (size_t i = 0; i < s->n; i++) {
        const config_entry *r = &s->entries[i];
        if (strncmp(r->key, "keep", 4) != 0 || !in_list(job_keys, r->key))
            continue;
        ob_err err = OB_ERR_INIT;
        if (retention_policy_set(&p, r->key, r->value, &err) < 0)
            problem(k, r->line, "%s", ob_err_msg(&err));
        ob_err_clear(&err);
    }
    const char *unsafe = retention_policy_job_problem(&p);
    if (unsafe)
        problem(k, s->line, "%s", unsafe);
    retention_policy_free(&p);
    if ((e = config_entry_get(s, "repos")))
        check_names(k, e, "repo", "repository");
    static const char *const durations[] = {"rpo", "full-every", NULL};
    check_durations(k, s, durations);
    if ((e = config_entry_get(s, "full-every")) && kind && strcmp(kind, "db-physical") != 0)
        problem(k, e->line, "full-every is for db-physical jobs (a logical dump and a files "
                "backup read everything, or use ctime)");
    if ((e = config_entry_get(s, "verify")) && !is_bool(e->value))
        problem(k, e->line, "verify must be true or false, not '%s'", e->value);
    if ((e = config_entry_get(s, "paths"))) {
        char **v;
        size_t n = split_list(e->value, &v);
        for (size_t i = 0; i < n; i++)
            if (v[i][0] != '/')
                problem(k, e->line, "paths: '%s' is not an absolute path", v[i]);
        free_list(v, n);
    }
    if ((e = config_entry_get(s, "archive-get-command")) && kind &&
        strcmp(kind, "db-physical") != 0)
        problem(k, e->line, "archive-get-command is for db-physical jobs (the restore_command "
                "of a restored server)");
    else if (e && !strstr(e->value, "%p"))
        problem(k, e->line, "archive-get-command '%s' has no %%p: PostgreSQL passes the file "
                "to write as %%p (e.g. 'opsbackup -c /etc/opsbackup/archive.conf archive-get "
                "%%f \"%%p\"')", e->value);
    if ((e = config_entry_get(s, "pgdata")) && e->value[0] != '/')
        problem(k, e->line, "pgdata '%s' is not an absolute path", e->value);
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].key, "tags") == 0) {
            char **v;
            size_t n = split_list(s->entries[i].value, &v);
            for (size_t j = 0; j < n; j++)
                if (!strchr(v[j], '=') || v[j][0] == '=')
                    problem(k, s->entries[i].line, "tags: '%s' is not KEY=VALUE", v[j]);
            free_list(v, n);
        }
}

static void check_notify(checker *k, const config_section *s)
{
    check_keys(k, s, notify_keys, "notify");
    const config_entry *e;
    if ((e = config_entry_get(s, "on")) && strcmp(e->value, "failure") != 0 &&
        strcmp(e->value, "always") != 0)
        problem(k, e->line, "on must be failure or always, not '%s'", e->value);
    /* The value is not quoted: a webhook URL carries its token. */
    static const char *const hooks[] = {"slack-webhook", "webhook"};
    for (size_t i = 0; i < 2; i++)
        if ((e = config_entry_get(s, hooks[i])) && !is_http_url(e->value))
            problem(k, e->line, "%s must be an http:// or https:// URL", e->key);
    if ((e = config_entry_get(s, "smtp-url")) && strncmp(e->value, "smtp://", 7) != 0 &&
        strncmp(e->value, "smtps://", 8) != 0)
        problem(k, e->line, "smtp-url '%s' must start with smtp:// or smtps://", e->value);
    static const char *const mails[] = {"email-to", "email-from"};
    for (size_t i = 0; i < 2; i++)
        if ((e = config_entry_get(s, mails[i]))) {
            char **v;
            size_t n = split_list(e->value, &v);
            for (size_t j = 0; j < n; j++)
                if (!strchr(v[j], '@'))
                    problem(k, e->line, "%s: '%s' is not an email address", e->key, v[j]);
            free_list(v, n);
        }
    if (config_get(s, "email-to") && !config_get(s, "smtp-url"))
        problem(k, config_entry_get(s, "email-to")->line,
                "email-to is set but smtp-url is not (e.g. smtps://smtp.example.com:465)");
    unsigned long long bytes;
    if ((e = config_entry_get(s, "size-limit")) && config_parse_size(e->value, &bytes) < 0)
        problem(k, e->line, "size-limit '%s' is not a size such as 100GB, 500MB or 1TiB",
                e->value);
}

static void check_dr(checker *k, const config_section *s)
{
    check_keys(k, s, dr_keys, "dr");
    static const char *const durations[] = {"rto", "rpo", "timeout", "hook-timeout",
                                            "health-interval", "health-timeout", NULL};
    check_durations(k, s, durations);
    const config_entry *e;
    if ((e = config_entry_get(s, "shell")) && !is_bool(e->value))
        problem(k, e->line, "shell must be true or false, not '%s'", e->value);
    if ((e = config_entry_get(s, "health-retries"))) {
        char *end;
        long n = strtol(e->value, &end, 10);
        if (end == e->value || *end || n < 1 || n > 10000)
            problem(k, e->line, "health-retries '%s' is not a number of attempts from 1 to 10000",
                    e->value);
    }
    /* A hook is one command line; an empty one would fail only in the
     * middle of a recovery. */
    static const char *const hooks[] = {"before", "after"};
    for (size_t i = 0; i < 2; i++)
        if ((e = config_entry_get(s, hooks[i]))) {
            char **argv;
            ob_err err = OB_ERR_INIT;
            if (proc_split(e->value, &argv, NULL, &err) < 0)
                problem(k, e->line, "%s: %s", e->key, ob_err_msg(&err));
            else
                proc_argv_free(argv);
            ob_err_clear(&err);
        }
    if ((e = config_entry_get(s, "jobs")))
        check_names(k, e, "job", "job");
    if ((e = config_entry_get(s, "health-url")) && !is_http_url(e->value))
        problem(k, e->line, "health-url '%s' must be an http:// or https:// URL", e->value);
}

/* A key whose value is itself a secret (not a path to one). */
static int is_secret_key(const char *key)
{
    size_t n = strlen(key);
    /* Webhook URLs are bearer tokens: whoever reads one can post as us. */
    if (strcmp(key, "secret-access-key") == 0 || strcmp(key, "session-token") == 0 ||
        strcmp(key, "slack-webhook") == 0 || strcmp(key, "webhook") == 0)
        return 1;
    return strstr(key, "password") && !(n >= 5 && strcmp(key + n - 5, "-file") == 0);
}

/* Issue #7: a config holding secrets must not be readable by group or
 * others, or anyone on the machine can use the bucket / mailbox. */
static void check_secrets(checker *k)
{
    struct stat st;
    if (stat(k->c->path, &st) < 0 || !(st.st_mode & (S_IRWXG | S_IRWXO)))
        return;
    for (size_t i = 0; i < k->c->n; i++) {
        const config_section *s = &k->c->sections[i];
        for (size_t j = 0; j < s->n; j++)
            if (is_secret_key(s->entries[j].key) && *s->entries[j].value) {
                problem(k, s->entries[j].line,
                        "'%s' in [%s] is a secret, but the file is readable by %s (mode %04o): "
                        "run chmod 600 %s (or keep the secret in a file or the environment)",
                        s->entries[j].key, s->name,
                        (st.st_mode & S_IRWXO) ? "others" : "its group",
                        (unsigned)(st.st_mode & 07777), k->c->path);
                return; /* one is enough: the fix is the same */
            }
    }
}

static int by_line(const void *a, const void *b)
{
    const config_problem *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

void config_check(const config *c, config_check_result *out)
{
    memset(out, 0, sizeof *out);
    checker k = {c, out};
    for (size_t i = 0; i < c->n; i++) {
        const config_section *s = &c->sections[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->sections[j].name, s->name) == 0) {
                problem(&k, s->line, "section [%s] appears twice (first on line %d)", s->name,
                        c->sections[j].line);
                break;
            }
        if (strncmp(s->name, "repo.", 5) == 0 && s->name[5]) {
            out->nrepos++;
            check_name(&k, s, s->name + 5);
            check_repo(&k, s);
        } else if (strncmp(s->name, "job.", 4) == 0 && s->name[4]) {
            out->njobs++;
            check_name(&k, s, s->name + 4);
            check_job(&k, s);
        } else if (strcmp(s->name, "notify") == 0) {
            check_notify(&k, s);
        } else if (strcmp(s->name, "dr") == 0) {
            check_dr(&k, s);
        } else {
            problem(&k, s->line,
                    "unknown section [%s]: expected [repo.NAME], [job.NAME], [notify] or [dr]",
                    s->name);
        }
    }
    check_secrets(&k);
    /* stable: problems on one line keep the order they were found in */
    for (size_t i = 1; i < out->n; i++)
        for (size_t j = i; j > 0 && by_line(&out->problems[j - 1], &out->problems[j]) > 0; j--) {
            config_problem t = out->problems[j];
            out->problems[j] = out->problems[j - 1];
            out->problems[j - 1] = t;
        }
}

void config_check_free(config_check_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->problems[i].message);
    free(r->problems);
    memset(r, 0, sizeof *r);
}
