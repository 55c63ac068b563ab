/*
 * cli_repos.c — opening every repository a command writes to.
 *
 * archive-push must make a segment durable in every repository of the
 * config (3-2-1), and archive-get falls back from one to the next.  -r
 * names one; without it, every [repo.NAME] of the config file is used, in
 * file order, or $OPSBACKUP_REPOSITORY.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_repo_open_one(cli_ctx *ctx, const char *name, const char *password_file, storage **st,
                      repo **r, ob_err *err)
{
    *st = NULL;
    *r = NULL;
    if (cli_load_config(ctx, err) < 0)
        return -1;
    const char *saved_repo = ctx->repo, *saved_pw = ctx->password_file;
    ctx->repo = name;
    if (password_file)
        ctx->password_file = password_file;
    int rc = cli_open_storage(ctx, 0, err);
    if (rc == 0) {
        char *pw = cli_password(ctx, "repository password", err);
        if (!pw || repo_open(ctx->st, pw, r, err) < 0) {
            rc = -1;
            ob_err_prefix(err, "repository %s", name ? name : ctx->st->url);
        }
        cli_password_free(pw);
    }
    *st = ctx->st;
    ctx->st = NULL;
    ctx->repo = saved_repo;
    ctx->password_file = saved_pw;
    if (rc < 0) {
        repo_close(*r);
        *r = NULL;
        if (*st)
            storage_close(*st);
        *st = NULL;
    }
    return rc;
}

int cli_repos_open(cli_ctx *ctx, cli_repos *out, ob_err *err)
{
    memset(out, 0, sizeof *out);
    if (cli_load_config(ctx, err) < 0)
        return -1;
    const char **names = NULL;
    size_t n = 0;
    if (!ctx->repo && !getenv("OPSBACKUP_REPOSITORY") && ctx->cfg) {
        for (size_t i = 0; i < ctx->cfg->n; i++)
            if (strncmp(ctx->cfg->sections[i].name, "repo.", 5) == 0) {
                names = ob_xrealloc(names, (n + 1) * sizeof *names);
                names[n++] = ctx->cfg->sections[i].name + 5;
            }
    }
    if (n == 0) {
        names = ob_xrealloc(names, sizeof *names);
        names[n++] = ctx->repo; /* NULL: cli_open_storage's own default */
    }
    int rc = 0;
    out->r = ob_xcalloc(n, sizeof *out->r);
    out->st = ob_xcalloc(n, sizeof *out->st);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = cli_repo_open_one(ctx, names[i], NULL, &out->st[i], &out->r[i], err);
        out->n = i + 1;
    }
    free(names);
    if (rc < 0)
        cli_repos_close(out);
    return rc;
}

void cli_repos_close(cli_repos *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        repo_close(rs->r[i]);
        if (rs->st[i])
            storage_close(rs->st[i]);
    }
    free(rs->r);
    free(rs->st);
    memset(rs, 0, sizeof *rs);
}
