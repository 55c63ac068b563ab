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
    const char *saved = ctx->repo;
    int rc = 0;
    out->r = ob_xcalloc(n, sizeof *out->r);
    out->st = ob_xcalloc(n, sizeof *out->st);
    for (size_t i = 0; i < n && rc == 0; i++) {
        ctx->repo = names[i];
        if (cli_open_storage(ctx, 0, err) < 0) {
            rc = -1;
            break;
        }
        char *pw = cli_password(ctx, "repository password", err);
        if (!pw || repo_open(ctx->st, pw, &out->r[i], err) < 0) {
            rc = -1;
            ob_err_prefix(err, "repository %s", names[i] ? names[i] : ctx->st->url);
        }
        cli_password_free(pw);
        out->st[i] = ctx->st;
        ctx->st = NULL;
        out->n = i + 1;
    }
    ctx->repo = saved;
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
