/*
 * cmd_wal.c — `archive-push` and `archive-get`: PostgreSQL's
 * archive_command and restore_command (sources/pg_wal.h).
 *
 * PostgreSQL treats any non-zero exit as "try again later" (push) or "not
 * there" (get), and an exit above 125 or a signal as fatal.  A push's
 * failure is a plain exit 1 with one line on stderr, which PostgreSQL
 * copies into its log: it tries again.  A get exits 1 only when the file
 * is not in the archive.  Any other failure (a damaged object, a
 * repository that cannot be reached or opened, a wrong option) exits
 * CLI_WAL_GET_FATAL: exit 1 there would read as the end of the archive,
 * and PostgreSQL would end recovery early and promote, silently leaving
 * out every later transaction; above 125 it stops instead, and the
 * restore can be run again once the cause is fixed.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sources/pg_wal.h"

typedef struct wal_args {
    const cli_command *cmd;
    int batch, threads, prefetch;
    cli_ctx *ctx;
    cli_repos repos;
} wal_args;

static int wal_number(const cli_command *cmd, const char *opt, const char *arg, int max, int *out)
{
    char *end;
    long v = strtol(arg, &end, 10);
    if (*end || v < 0 || v > max) {
        cli_usage(cmd, "%s wants a number from 0 to %d", opt, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int wal_opt(int opt, const char *arg, void *ud)
{
    wal_args *a = ud;
    switch (opt) {
    case 'B': return wal_number(a->cmd, "--batch", arg, 256, &a->batch);
    case 'T': return wal_number(a->cmd, "--threads", arg, 64, &a->threads);
    case 'P': return wal_number(a->cmd, "--prefetch", arg, 256, &a->prefetch);
    default: return -1;
    }
}

static const struct option wal_opts[] = {
    {"batch", required_argument, NULL, 'B'},
    {"threads", required_argument, NULL, 'T'},
    {"prefetch", required_argument, NULL, 'P'},
    {0, 0, 0, 0},
};

static int wal_open(void *ud, repo ***repos, size_t *n, ob_err *err)
{
    wal_args *a = ud;
    if (!a->repos.n && cli_repos_open(a->ctx, &a->repos, err) < 0)
        return -1;
    *repos = a->repos.r;
    *n = a->repos.n;
    return 0;
}

int cmd_archive_push(cli_ctx *ctx, int argc, char **argv)
{
    wal_args a = {.cmd = cli_find_command("archive-push"), .batch = 16, .ctx = ctx};
    ctx->multi_repo_ok = 1;
    int i = cli_parse(ctx, a.cmd, argc, argv, wal_opts, "", wal_opt, &a);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i != 1)
        return cli_usage(a.cmd, "archive-push takes one PATH (PostgreSQL's %%p)");
    ob_err err = OB_ERR_INIT;
    pg_wal_push_opts o = {a.batch, a.threads, ctx->quiet};
    int rc = CLI_OK;
    if (pg_wal_archive_push(argv[i], &o, wal_open, &a, &err) < 0) {
        ob_err_prefix(&err, "archive-push %s", argv[i]);
        rc = cli_fail(ctx, &err) == CLI_USAGE ? CLI_USAGE : CLI_FAIL;
    }
    cli_repos_close(&a.repos);
    cli_close_repo(ctx);
    return rc;
}

/* archive-get's exit for every failure but "not in the archive". */
#define CLI_WAL_GET_FATAL 126

int cmd_archive_get(cli_ctx *ctx, int argc, char **argv)
{
    wal_args a = {.cmd = cli_find_command("archive-get"), .prefetch = 8, .ctx = ctx};
    ctx->multi_repo_ok = 1; /* tried in order */
    int i = cli_parse(ctx, a.cmd, argc, argv, wal_opts, "", wal_opt, &a);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_WAL_GET_FATAL;
    if (argc - i != 2) {
        cli_usage(a.cmd, "archive-get takes NAME DEST (PostgreSQL's %%f and %%p)");
        return CLI_WAL_GET_FATAL;
    }
    ob_err err = OB_ERR_INIT;
    pg_wal_get_opts o = {a.prefetch};
    int rc = CLI_OK;
    if (pg_wal_archive_get(argv[i], argv[i + 1], &o, wal_open, &a, &err) < 0) {
        /* The exit status is the kind of failure alone; -v only picks the
         * message.  PostgreSQL probes for files that do not exist (the
         * next timeline's history, the end of the archive): say so
         * briefly. */
        rc = err.code == OB_ENOTFOUND ? CLI_FAIL : CLI_WAL_GET_FATAL;
        if (err.code == OB_ENOTFOUND && !ctx->verbose) {
            if (!ctx->quiet)
                fprintf(stderr, "opsbackup: %s: not in the archive\n", argv[i]);
            ob_err_clear(&err);
        } else {
            ob_err_prefix(&err, "archive-get %s", argv[i]);
            cli_fail(ctx, &err);
        }
    }
    cli_repos_close(&a.repos);
    cli_close_repo(ctx);
    return rc;
}
