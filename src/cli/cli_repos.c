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
#include "core/log.h"
#include "core/util.h"
#include "repo/copy.h"
#include "repo/lock.h"
#include "repo/snapshot.h"
#include "sources/pg_wal.h"

int cli_repo_open_one(cli_ctx *ctx, const char *name, const char *password_file, storage **st,
                      repo **r, ob_err *err)
{
    *st = NULL;
    *r = NULL;
    if (cli_load_config(ctx, err) < 0)
        return -1;
    const char *saved_repo = ctx->repo, *saved_pw = ctx->password_file;
    storage *saved_st = ctx->st; /* the command's own repository, if open */
    ctx->st = NULL;
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
    ctx->st = saved_st;
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
    if (ctx->repo) {
        names = ob_xcalloc(1 + ctx->nmore_repos, sizeof *names);
        names[n++] = ctx->repo;
        for (size_t i = 0; i < ctx->nmore_repos; i++)
            names[n++] = ctx->more_repos[i];
    } else if (!getenv("OPSBACKUP_REPOSITORY") && ctx->cfg) {
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

void cli_add_repo(cli_ctx *ctx, const char *repo)
{
    if (!ctx->repo) {
        ctx->repo = repo;
        return;
    }
    ctx->more_repos = ob_xrealloc(ctx->more_repos, (ctx->nmore_repos + 1) * sizeof(char *));
    ctx->more_repos[ctx->nmore_repos++] = repo;
}

int cli_one_repo(cli_ctx *ctx, ob_err *err)
{
    if (ctx->nmore_repos && !ctx->multi_repo_ok)
        return ob_err_set(err, OB_EUSAGE,
                          "this command works on one repository; only backup and "
                          "archive-push take several --repo (use copy to fill the others)");
    return 0;
}

/* Copy s from the open primary repository into repository `name`; *id_out
 * is its ID there, *already_out whether it was there before. */
static int replicate_one(cli_ctx *ctx, const snapshot *s, const char *name, char **id_out,
                         int *already_out, uint64_t *added, ob_err *err)
{
    storage *st = NULL;
    repo *dst = NULL;
    repo_lock *lock = NULL;
    repo_writer *w = NULL;
    repo_copier *cp = NULL;
    snapshot **have = NULL, *d = NULL;
    size_t nhave = 0;
    int rc = -1;
    if (cli_repo_open_one(ctx, name, NULL, &st, &dst, err) < 0 ||
        repo_lock_acquire(dst, 0, &lock, err) < 0 || snapshot_list(dst, &have, &nhave, err) < 0 ||
        repo_load_index(dst, err) < 0 || repo_writer_new(dst, 0, &w, err) < 0)
        goto out;
    repo_writer_set_lock(w, lock);
    if (strcmp(repo_id(dst), repo_id(ctx->r)) == 0) {
        ob_err_set(err, OB_EUSAGE, "it is the same repository as %s", ctx->repo);
        goto out;
    }
    cp = repo_copier_new(ctx->r, dst, w);
    /* Already there: its ID there is reported all the same, so that a job
     * can verify that copy too (an unchanged config snapshot is "already
     * there" on every later run, and its copy must not go unchecked). */
    const snapshot *there = repo_copy_find(cp, s, have, nhave);
    int already = there != NULL;
    *already_out = already;
    if (!already && (repo_copier_copy(cp, s, &d, err) < 0 || repo_writer_flush(w, err) < 0))
        goto out;
    /* A physical backup is restorable only with its WAL.  Copied before
     * the snapshot is saved (as `copy` does), so a copy that dies in
     * between leaves no snapshot that looks complete without its WAL; and
     * also when the snapshot is already there, because what put it there
     * (a copy that died after saving it, before this order) may not have
     * copied the WAL. */
    uint64_t wal = 0;
    if (strcmp(s->kind, "db-physical") == 0 && pg_wal_copy(ctx->r, dst, &wal, err) < 0)
        goto out;
    if (already) {
        *id_out = ob_xstrdup(there->id);
        rc = 0;
        goto out;
    }
    if (repo_lock_lost(lock, err) || snapshot_save(dst, d, err) < 0)
        goto out;
    repo_writer_stats ws;
    repo_writer_get_stats(w, &ws);
    *added = ws.bytes_added;
    *id_out = ob_xstrdup(d->id);
    rc = 0;
out:
    snapshot_free(d);
    repo_copier_free(cp);
    repo_writer_free(w);
    snapshot_list_free(have, nhave);
    repo_lock_release(lock);
    repo_close(dst);
    if (st)
        storage_close(st);
    return rc;
}

size_t cli_replicate(cli_ctx *ctx, const snapshot *s, json_t *json)
{
    size_t failed = 0;
    json_t *copies = json ? json_array() : NULL;
    for (size_t i = 0; i < ctx->nmore_repos; i++) {
        const char *name = ctx->more_repos[i];
        ob_err err = OB_ERR_INIT;
        char *id = NULL;
        uint64_t added = 0;
        int already = 0;
        if (replicate_one(ctx, s, name, &id, &already, &added, &err) < 0) {
            failed++;
            ob_error("repository %s: snapshot %.8s was not copied: %s",
                    name, s->id, ob_err_msg(&err));
            if (copies)
                json_array_append_new(copies, json_pack("{s:s, s:b, s:s}", "repository", name,
                                                        "ok", 0, "error", ob_err_msg(&err)));
        } else {
            if (copies)
                json_array_append_new(copies, json_pack("{s:s, s:b, s:s, s:b, s:I}", "repository",
                                                        name, "ok", 1, "snapshot", id, "already",
                                                        already, "bytes_added",
                                                        (json_int_t)added));
            else if (already && !ctx->quiet)
                printf("repository %s: snapshot %.8s is already there as %.8s\n", name, s->id,
                       id);
            else if (!ctx->quiet) {
                char *b = ob_human_bytes(added);
                printf("repository %s: snapshot %.8s copied as %.8s (added %s)\n", name, s->id,
                       id, b);
                free(b);
            }
        }
        ob_err_clear(&err);
        free(id);
    }
    if (json)
        json_object_set_new(json, "copies", copies);
    return failed;
}

static int size_add(const char *name, uint64_t size, void *ud)
{
    (void)name;
    *(uint64_t *)ud += size;
    return 0;
}

int cli_repo_size(cli_ctx *ctx, const char *name, uint64_t *bytes, ob_err *err)
{
    *bytes = 0;
    if (cli_load_config(ctx, err) < 0)
        return -1;
    const char *saved_repo = ctx->repo;
    storage *saved_st = ctx->st;
    ctx->st = NULL;
    ctx->repo = name;
    int rc = cli_open_storage(ctx, 0, err);
    if (rc == 0)
        rc = storage_list(ctx->st, "", size_add, bytes, err);
    if (rc < 0)
        ob_err_prefix(err, "measuring repository %s", name);
    if (ctx->st)
        storage_close(ctx->st);
    ctx->st = saved_st;
    ctx->repo = saved_repo;
    return rc;
}
