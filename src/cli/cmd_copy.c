/*
 * cmd_copy.c — `copy --from A --to B [SNAPSHOT...]`: copy snapshots (and
 * the WAL archive) between repositories (repo/copy.h).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "core/log.h"
#include "core/util.h"
#include "repo/copy.h"
#include "repo/lock.h"
#include "sources/pg_wal.h"

typedef struct copy_args {
    const cli_command *cmd;
    const char *from, *to, *from_pw, *to_pw, *set, *kind;
} copy_args;

enum { OPT_FROM = 256, OPT_TO, OPT_FROM_PW, OPT_TO_PW, OPT_SET, OPT_KIND };

static int copy_opt(int opt, const char *arg, void *ud)
{
    copy_args *a = ud;
    switch (opt) {
    case OPT_FROM: a->from = arg; break;
    case OPT_TO: a->to = arg; break;
    case OPT_FROM_PW: a->from_pw = arg; break;
    case OPT_TO_PW: a->to_pw = arg; break;
    case OPT_SET: a->set = arg; break;
    case OPT_KIND: a->kind = arg; break;
    default: return -1;
    }
    return 0;
}

static int wanted(const copy_args *a, const snapshot *s)
{
    return (!a->set || strcmp(s->set, a->set) == 0) && (!a->kind || strcmp(s->kind, a->kind) == 0);
}

int cmd_copy(cli_ctx *ctx, int argc, char **argv)
{
    copy_args a = {.cmd = cli_find_command("copy")};
    static const struct option opts[] = {
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"from-password-file", required_argument, NULL, OPT_FROM_PW},
        {"to-password-file", required_argument, NULL, OPT_TO_PW},
        {"set", required_argument, NULL, OPT_SET},
        {"kind", required_argument, NULL, OPT_KIND},
        {0, 0, 0, 0},
    };
    int i = cli_parse(ctx, a.cmd, argc, argv, opts, "", copy_opt, &a);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (!a.from || !a.to)
        return cli_usage(a.cmd, "copy needs --from REPO and --to REPO");
    if (strcmp(a.from, a.to) == 0)
        return cli_usage(a.cmd, "--from and --to name the same repository");

    ob_err err = OB_ERR_INIT;
    storage *sst = NULL, *dst_st = NULL;
    repo *src = NULL, *dst = NULL;
    repo_lock *slock = NULL, *dlock = NULL;
    snapshot **ssnaps = NULL, **dsnaps = NULL, **pending = NULL, **made = NULL;
    size_t ns = 0, nd = 0, npending = 0, nmade = 0;
    repo_writer *w = NULL;
    repo_copier *cp = NULL;
    json_t *out = ctx->json ? json_array() : NULL;
    int rc = CLI_OK;
    if (cli_repo_open_one(ctx, a.from, a.from_pw, &sst, &src, &err) < 0 ||
        cli_repo_open_one(ctx, a.to, a.to_pw, &dst_st, &dst, &err) < 0 ||
        repo_lock_acquire(src, 0, &slock, &err) < 0 ||
        repo_lock_acquire(dst, 0, &dlock, &err) < 0 || snapshot_list(src, &ssnaps, &ns, &err) < 0 ||
        snapshot_list(dst, &dsnaps, &nd, &err) < 0)
        goto fail;
    if (strcmp(repo_id(src), repo_id(dst)) == 0) {
        ob_err_set(&err, OB_EUSAGE, "--from and --to are the same repository (ID %.8s)",
                   repo_id(src));
        goto fail;
    }
    pending = ob_xcalloc(ns + (size_t)argc + 1, sizeof *pending);
    if (i < argc) {
        for (int k = i; k < argc; k++) {
            snapshot *s = NULL;
            if (snapshot_find(src, argv[k], a.set, a.kind, &s, &err) < 0)
                goto fail;
            pending[npending++] = s;
        }
    } else {
        for (size_t k = 0; k < ns; k++)
            if (wanted(&a, ssnaps[k])) {
                pending[npending++] = ssnaps[k];
                ssnaps[k] = NULL; /* moved */
            }
    }
    if (repo_load_index(dst, &err) < 0 || repo_load_index(src, &err) < 0 ||
        repo_writer_new(dst, 0, &w, &err) < 0)
        goto fail;
    repo_writer_set_lock(w, dlock);
    cp = repo_copier_new(src, dst, w);
    made = ob_xcalloc(npending + 1, sizeof *made);
    size_t already = 0;
    cli_progress prog;
    cli_progress_init(&prog, "copy");
    int show = cli_progress_enabled(ctx);
    uint64_t done_bytes = 0;
    for (size_t k = 0; k < npending; k++)
        prog.total_bytes += pending[k]->stats.bytes;
    for (size_t k = 0; k < npending; k++) {
        done_bytes += pending[k]->stats.bytes;
        if (repo_copy_already(cp, pending[k], dsnaps, nd)) {
            already++;
            if (!ctx->quiet && !ctx->json)
                printf("%ssnapshot %.8s is already in %s\n", prog.drawn ? "\r\033[K" : "",
                       pending[k]->id, a.to);
            prog.drawn = 0;
            continue;
        }
        snapshot *d = NULL;
        if (repo_copier_copy(cp, pending[k], &d, &err) < 0)
            goto fail;
        made[nmade++] = d;
        if (show)
            cli_progress_update(&prog, done_bytes, k + 1, "snapshots", k + 1 == npending);
    }
    if (prog.drawn)
        fputs("\r\033[K", stderr);
    /* Every blob and tree durable before any snapshot names them; and the
     * WAL archive before them too: a copied physical backup is only
     * restorable with its WAL, and a copy that dies in between must not
     * leave snapshots without it (check reports such a snapshot since
     * session 14, but only when someone runs it). */
    if (repo_writer_flush(w, &err) < 0)
        goto fail;
    uint64_t wal = 0;
    if (pg_wal_copy(src, dst, &wal, &err) < 0)
        goto fail;
    for (size_t k = 0; k < nmade; k++) {
        if (repo_lock_lost(dlock, &err) || snapshot_save(dst, made[k], &err) < 0)
            goto fail;
        json_t *from = json_object_get(made[k]->extra, "copied_from");
        const char *sid = json_string_value(json_object_get(from, "snapshot"));
        if (out)
            json_array_append_new(out, json_pack("{s:s, s:s}", "from", sid, "to", made[k]->id));
        else if (!ctx->quiet)
            printf("copied snapshot %.8s to %s as %.8s\n", sid, a.to, made[k]->id);
    }
    repo_writer_stats ws;
    repo_writer_get_stats(w, &ws);
    if (out) {
        cli_print_json(json_pack("{s:o, s:I, s:I, s:I}", "copied", out, "already",
                                 (json_int_t)already, "bytes_added", (json_int_t)ws.bytes_added,
                                 "wal_files", (json_int_t)wal));
        out = NULL;
    } else if (!ctx->quiet) {
        char *b = ob_human_bytes(ws.bytes_added);
        printf("%zu snapshot%s copied, %zu already there; %s of new data, %llu WAL files\n",
               nmade, nmade == 1 ? "" : "s", already, b, (unsigned long long)wal);
        free(b);
    }
    goto out;
fail:
    rc = cli_fail(ctx, &err);
out:
    json_decref(out);
    repo_copier_free(cp);
    repo_writer_free(w);
    for (size_t k = 0; k < nmade; k++)
        snapshot_free(made[k]);
    free(made);
    for (size_t k = 0; k < npending; k++)
        snapshot_free(pending[k]);
    free(pending);
    snapshot_list_free(ssnaps, ns);
    snapshot_list_free(dsnaps, nd);
    repo_lock_release(slock);
    repo_lock_release(dlock);
    repo_close(src);
    repo_close(dst);
    if (sst)
        storage_close(sst);
    if (dst_st)
        storage_close(dst_st);
    cli_close_repo(ctx);
    return rc;
}
