/*
 * cmd_forget.c — `opsbackup forget` (retention policy over snapshots) and
 * `opsbackup prune` (remove data no snapshot uses).
 *
 * The decisions live in src/repo/retention.c and src/repo/prune.c; this
 * file parses options, takes the right lock, prints, and deletes snapshot
 * objects.
 *
 * Locks: forget alone only deletes snapshot objects, which no running
 * backup depends on (a backup reads its parent's trees, which stay until a
 * prune, and prune defers while a backup runs), so it takes a shared lock
 * and works beside backups.  prune (and forget --prune) asks for the
 * exclusive lock; if backups hold shared leases it falls back to a shared
 * lock and deferred mode (prune.h): nothing is deleted that a backup might
 * still reference, and the user is told to run prune again later.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "sources/pg_wal.h"
#include "core/log.h"
#include "core/util.h"
#include "repo/lock.h"
#include "repo/prune.h"
#include "repo/retention.h"
#include "repo/snapshot.h"

enum {
    OPT_SET = 300,
    OPT_KIND,
    OPT_KEEP_LAST,
    OPT_KEEP_HOURLY,
    OPT_KEEP_DAILY,
    OPT_KEEP_WEEKLY,
    OPT_KEEP_MONTHLY,
    OPT_KEEP_YEARLY,
    OPT_KEEP_WITHIN,
    OPT_KEEP_TAG,
    OPT_PRUNE,
    OPT_DRY_RUN,
    OPT_MAX_UNUSED,
};

typedef struct forget_args {
    const cli_command *cmd;
    const char *set, *kind;
    retention_policy policy;
    int prune, dry_run;
    double max_unused;
} forget_args;

static int parse_max_unused(const cli_command *cmd, const char *arg, double *out)
{
    char *end;
    double p = strtod(arg, &end);
    if (end != arg && *end == '%')
        end++;
    if (end == arg || *end || p < 0 || p > 100)
        return cli_usage(cmd, "--max-unused wants a percentage from 0 to 100, got '%s'", arg)
                   ? -1
                   : -1;
    *out = p;
    return 0;
}

static int forget_opt(int opt, const char *arg, void *ud)
{
    forget_args *a = ud;
    const char *key = NULL;
    switch (opt) {
    case OPT_SET: a->set = arg; return 0;
    case OPT_KIND:
        if (strcmp(arg, "files") && strcmp(arg, "db") && strcmp(arg, "db-physical") &&
            strcmp(arg, "config"))
            return cli_usage(a->cmd, "--kind must be files, db, db-physical or config") ? -1 : -1;
        a->kind = arg;
        return 0;
    case OPT_PRUNE: a->prune = 1; return 0;
    case OPT_DRY_RUN: a->dry_run = 1; return 0;
    case OPT_MAX_UNUSED: return parse_max_unused(a->cmd, arg, &a->max_unused);
    case OPT_KEEP_LAST: key = "keep-last"; break;
    case OPT_KEEP_HOURLY: key = "keep-hourly"; break;
    case OPT_KEEP_DAILY: key = "keep-daily"; break;
    case OPT_KEEP_WEEKLY: key = "keep-weekly"; break;
    case OPT_KEEP_MONTHLY: key = "keep-monthly"; break;
    case OPT_KEEP_YEARLY: key = "keep-yearly"; break;
    case OPT_KEEP_WITHIN: key = "keep-within"; break;
    case OPT_KEEP_TAG: key = "keep-tag"; break;
    default: return -1;
    }
    /* The options are the config keys of a job's retention (CLI.md), so
     * one parser serves both. */
    ob_err e = OB_ERR_INIT;
    if (retention_policy_set(&a->policy, key, arg, &e) < 0) {
        cli_usage(a->cmd, "--%s", ob_err_msg(&e));
        ob_err_clear(&e);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- prune */

/* Take the lock prune needs: exclusive if possible; if only backups (shared
 * leases) stand in the way, a shared lock and deferred mode.  *why gets the
 * reason for deferring (caller frees).  dry_run needs only a shared lock. */
static int prune_lock(cli_ctx *ctx, int dry_run, repo_lock **lock, int *deferred, char **why,
                      ob_err *err)
{
    *deferred = 0;
    *why = NULL;
    if (dry_run)
        return repo_lock_acquire(ctx->r, 0, lock, err);
    if (repo_lock_acquire(ctx->r, 1, lock, err) == 0)
        return 0;
    if (err->code != OB_ELOCKED)
        return -1;
    char *first = ob_xstrdup(ob_err_msg(err));
    ob_err_clear(err);
    if (repo_lock_acquire(ctx->r, 0, lock, err) < 0) {
        free(first);
        /* An exclusive holder: another prune.  Its message says who. */
        return ob_err_prefix(err, "cannot prune now");
    }
    *deferred = 1;
    *why = first;
    return 0;
}

static json_t *prune_json(const prune_stats *s, int dry_run, const char *why)
{
    json_t *o = json_pack(
        "{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "dry_run", dry_run, "deferred", s->deferred, "snapshots", (json_int_t)s->snapshots,
        "trees", (json_int_t)s->trees, "blobs_total", (json_int_t)s->blobs_total, "blobs_used",
        (json_int_t)s->blobs_used, "packs_total", (json_int_t)s->packs_total, "bytes_total",
        (json_int_t)s->bytes_total, "packs_deleted", (json_int_t)s->packs_deleted,
        "bytes_deleted", (json_int_t)s->bytes_deleted, "packs_repacked",
        (json_int_t)s->packs_repacked, "bytes_repacked", (json_int_t)s->bytes_repacked,
        "blobs_repacked", (json_int_t)s->blobs_repacked, "packs_written",
        (json_int_t)s->packs_written, "bytes_written", (json_int_t)s->bytes_written,
        "packs_unindexed", (json_int_t)s->packs_unindexed, "bytes_unindexed",
        (json_int_t)s->bytes_unindexed, "index_files_old", (json_int_t)s->index_old,
        "index_files_new", (json_int_t)s->index_new, "tmp_removed", (json_int_t)s->tmp_removed,
        "tmp_bytes", (json_int_t)s->tmp_bytes, "bytes_freed", (json_int_t)s->bytes_freed,
        "bytes_unused_kept", (json_int_t)s->bytes_unused_kept);
    if (why)
        json_object_set_new(o, "deferred_reason", json_string(why));
    return o;
}

static void prune_print(const prune_stats *s, int dry_run, const char *why)
{
    char *total = ob_human_bytes(s->bytes_total);
    printf("prune: %llu snapshots use %llu trees and %llu of %llu indexed blobs; %llu packs "
           "(%s) stored\n",
           (unsigned long long)s->snapshots, (unsigned long long)s->trees,
           (unsigned long long)s->blobs_used, (unsigned long long)s->blobs_total,
           (unsigned long long)s->packs_total, total);
    free(total);
    const char *verb = dry_run || s->deferred ? "would " : "";
    char *del = ob_human_bytes(s->bytes_deleted), *rep = ob_human_bytes(s->bytes_repacked),
         *unx = ob_human_bytes(s->bytes_unindexed), *wr = ob_human_bytes(s->bytes_written),
         *kept = ob_human_bytes(s->bytes_unused_kept);
    printf("  %sdelete %llu unused packs (%s)\n", verb, (unsigned long long)s->packs_deleted, del);
    printf("  %srepack %llu packs (%s, %llu blobs still used)", verb,
           (unsigned long long)s->packs_repacked, rep, (unsigned long long)s->blobs_repacked);
    if (!dry_run && !s->deferred && s->packs_repacked)
        printf(" into %llu new packs (%s)", (unsigned long long)s->packs_written, wr);
    printf("\n");
    if (s->packs_unindexed)
        printf("  %sdelete %llu packs no index file names (%s; left by interrupted writers)\n",
               s->deferred ? "leave " : verb, (unsigned long long)s->packs_unindexed, unx);
    if (!dry_run && !s->deferred)
        printf("  replaced %llu index files by %llu\n", (unsigned long long)s->index_old,
               (unsigned long long)s->index_new);
    if (s->tmp_removed) {
        char *t = ob_human_bytes(s->tmp_bytes);
        printf("  removed %llu old temporary files (%s)\n", (unsigned long long)s->tmp_removed, t);
        free(t);
    }
    printf("  %s unused in packs that stay (below --max-unused)\n", kept);
    char *freed = ob_human_bytes(s->bytes_freed > 0 ? (uint64_t)s->bytes_freed : 0);
    if (s->deferred)
        printf("deferred: %s\nnothing was deleted that a running backup may use; run prune "
               "again when no backup runs to free about %s\n",
               why ? why : "another process holds a lease on the repository", freed);
    else if (dry_run)
        printf("dry run: would free about %s\n", freed);
    else
        printf("freed %s\n", freed);
    free(freed);
    free(del);
    free(rep);
    free(unx);
    free(wr);
    free(kept);
}

static void prune_progress(const char *msg, void *ud) { cli_progress_phase(ud, msg, 0); }

/* Run prune with the lock already held; prints or fills *json. */
static int run_prune(cli_ctx *ctx, repo_lock *lock, int dry_run, int deferred, const char *why,
                     double max_unused, const char *const *ignore, json_t **json, ob_err *err)
{
    cli_progress prog;
    cli_progress_init(&prog, "prune");
    prune_opts o = {
        .dry_run = dry_run,
        .deferred = deferred,
        .max_unused_pct = max_unused,
        .tmp_max_age = PRUNE_TMP_MAX_AGE,
        .lock = lock,
        .ignore = ignore,
        .progress = cli_progress_enabled(ctx) ? prune_progress : NULL,
        .progress_ud = &prog,
    };
    prune_stats st;
    int rc = repo_prune(ctx->r, &o, &st, err);
    if (prog.drawn) /* the summary replaces the phase line */
        fputs("\r\033[K", stderr);
    if (rc < 0)
        return ob_err_prefix(err, "prune");
    if (json)
        *json = prune_json(&st, dry_run, why);
    else if (!ctx->quiet)
        prune_print(&st, dry_run, why);
    return 0;
}

int cmd_prune(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("prune");
    forget_args a = {.cmd = cmd, .max_unused = PRUNE_MAX_UNUSED_DEFAULT};
    static const struct option opts[] = {
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"max-unused", required_argument, NULL, OPT_MAX_UNUSED},
        {0, 0, 0, 0},
    };
    retention_policy_init(&a.policy);
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", forget_opt, &a);
    retention_policy_free(&a.policy);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i != argc)
        return cli_usage(cmd, "prune takes no operands");
    ob_err err = OB_ERR_INIT;
    repo_lock *lock = NULL;
    int deferred = 0, rc = CLI_OK;
    char *why = NULL;
    json_t *j = NULL;
    if (cli_open_repo(ctx, &err) < 0 || prune_lock(ctx, a.dry_run, &lock, &deferred, &why, &err) < 0 ||
        run_prune(ctx, lock, a.dry_run, deferred, why, a.max_unused, NULL, ctx->json ? &j : NULL,
                  &err) < 0)
        rc = cli_fail(ctx, &err);
    else if (j)
        cli_print_json(j);
    free(why);
    repo_lock_release(lock);
    cli_close_repo(ctx);
    return rc;
}

/* ------------------------------------------------------------ forget */

static json_t *snap_ref_json(const snapshot *s, const retention_decision *d)
{
    char *t = ob_time_rfc3339(s->time_sec, s->time_nsec);
    json_t *o = json_pack("{s:s, s:s#, s:s}", "id", s->id, "short_id", s->id, 8, "time", t);
    free(t);
    if (d->keep) {
        json_t *r = json_array();
        for (size_t k = 0; k < d->nreasons; k++)
            json_array_append_new(r, json_string(d->reasons[k]));
        json_object_set_new(o, "reasons", r);
    }
    return o;
}

static void print_group(const retention_group *g, snapshot **v, const retention_result *res)
{
    printf("set %s, kind %s", *g->set ? g->set : "(none)", g->kind);
    if (g->host) {
        printf(", host %s", *g->host ? g->host : "(none)");
        for (size_t k = 0; k < g->npaths; k++)
            printf("%s %s", k ? "" : ",", g->paths[k]);
        if (g->origin)
            printf(", system identifier %s", *g->origin ? g->origin : "(not recorded)");
    }
    printf(": keeping %zu of %zu snapshot%s\n", g->nkeep, g->n, g->n == 1 ? "" : "s");
    for (size_t k = 0; k < g->n; k++) {
        const snapshot *s = v[g->items[k]];
        const retention_decision *d = &res->d[g->items[k]];
        char *t = ob_time_local(s->time_sec);
        printf("  %-6s  %.8s  %s", d->keep ? "keep" : "remove", s->id, t);
        free(t);
        for (size_t r = 0; r < d->nreasons; r++)
            printf("%s%s", r ? ", " : "  ", d->reasons[r]);
        putchar('\n');
    }
}

/* forget SNAPSHOT...: remove the named snapshots, whatever a policy would
 * say (the recovery path for snapshots that lost data: docs/RELIABILITY.md).
 * A full 64-digit ID whose object is damaged is removed by name too: it
 * cannot be loaded, and prune refuses to run while it is there. */
static int forget_ids(cli_ctx *ctx, const forget_args *a, char **ids, size_t nids)
{
    ob_err err = OB_ERR_INIT;
    repo_lock *lock = NULL;
    int deferred = 0, rc = CLI_OK;
    char *why = NULL;
    json_t *out = ctx->json ? json_array() : NULL, *prune_out = NULL;
    char **full = ob_xcalloc(nids + 1, sizeof *full);
    size_t n = 0;
    if (cli_open_repo(ctx, &err) < 0 ||
        (a->prune ? prune_lock(ctx, a->dry_run, &lock, &deferred, &why, &err)
                  : repo_lock_acquire(ctx->r, 0, &lock, &err)) < 0)
        goto fail;
    /* Resolve every operand before removing anything: a typo removes
     * nothing. */
    for (size_t k = 0; k < nids; k++) {
        snapshot *s = NULL;
        if (snapshot_find(ctx->r, ids[k], a->set, a->kind, &s, &err) == 0) {
            full[n++] = ob_xstrdup(s->id);
            snapshot_free(s);
            continue;
        }
        uint8_t bin[OB_ID_LEN];
        char *name = ob_xasprintf("snapshots/%s", ids[k]);
        uint64_t size;
        ob_err e = OB_ERR_INIT;
        int exists = strlen(ids[k]) == OB_HEX_ID_LEN && ob_unhex(ids[k], bin, OB_ID_LEN) == 0 &&
                     storage_stat(repo_storage(ctx->r), name, &size, &e) == 0;
        ob_err_clear(&e);
        free(name);
        if (!exists)
            goto fail;
        ob_err_clear(&err);
        full[n++] = ob_xstrdup(ids[k]); /* damaged: removed by name */
    }
    for (size_t k = 0; k < n; k++) {
        if (!a->dry_run) {
            if (repo_lock_lost(lock, &err))
                goto fail;
            char *name = ob_xasprintf("snapshots/%s", full[k]);
            int drc = storage_delete(repo_storage(ctx->r), name, &err);
            free(name);
            if (drc < 0 && err.code != OB_ENOTFOUND) {
                ob_err_prefix(&err, "removing snapshot %.8s", full[k]);
                goto fail;
            }
            ob_err_clear(&err);
        }
        if (out)
            json_array_append_new(out, json_pack("{s:s, s:s#}", "id", full[k], "short_id",
                                                 full[k], 8));
        else if (!ctx->quiet)
            printf("%s snapshot %.8s\n", a->dry_run ? "would remove" : "removed", full[k]);
    }
    if (a->prune && run_prune(ctx, lock, a->dry_run, deferred, why, a->max_unused,
                              a->dry_run ? (const char *const *)full : NULL,
                              ctx->json ? &prune_out : NULL, &err) < 0)
        goto fail;
    if (out) {
        json_t *o = json_pack("{s:b, s:I, s:o}", "dry_run", a->dry_run, "removed", (json_int_t)n,
                              "snapshots", out);
        out = NULL;
        if (prune_out)
            json_object_set_new(o, "prune", prune_out);
        prune_out = NULL;
        cli_print_json(o);
    }
    goto done;
fail:
    rc = cli_fail(ctx, &err);
done:
    json_decref(out);
    json_decref(prune_out);
    for (size_t k = 0; k < n; k++)
        free(full[k]);
    free(full);
    free(why);
    repo_lock_release(lock);
    cli_close_repo(ctx);
    return rc;
}

/* How many objects under snapshots/ are neither among `all` (what
 * snapshot_list could read) nor removed by this run, and cannot be read
 * now either: snapshots skipped as unreadable.  One saved since (backups
 * run beside forget) reads, and starts after every kept one: it does not
 * count.  WAL expiry must not judge by the others. */
static int unread_snapshots(repo *r, snapshot **all, size_t nall, const char **removed,
                            size_t nremoved, size_t *unknown, ob_err *err)
{
    storage_names names = {0};
    *unknown = 0;
    if (storage_list(repo_storage(r), "snapshots/", storage_names_collect, &names, err) < 0)
        return ob_err_prefix(err, "listing snapshots again");
    for (size_t i = 0; i < names.n; i++) {
        const char *id = names.v[i] + strlen("snapshots/");
        int known = 0;
        for (size_t k = 0; k < nall && !known; k++)
            known = strcmp(all[k]->id, id) == 0;
        for (size_t m = 0; m < nremoved && !known; m++)
            known = strcmp(removed[m], id) == 0;
        if (known || strncmp(names.v[i], "snapshots/", 10) != 0 || strchr(id, '/') ||
            id[0] == '.')
            continue;
        snapshot *s = NULL;
        ob_err e = OB_ERR_INIT;
        if (snapshot_load(r, id, &s, &e) < 0)
            (*unknown)++;
        else
            snapshot_free(s);
        ob_err_clear(&e);
    }
    storage_names_free(&names);
    return 0;
}

int cmd_forget(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("forget");
    forget_args a = {.cmd = cmd, .max_unused = PRUNE_MAX_UNUSED_DEFAULT};
    static const struct option opts[] = {
        {"set", required_argument, NULL, OPT_SET},
        {"kind", required_argument, NULL, OPT_KIND},
        {"keep-last", required_argument, NULL, OPT_KEEP_LAST},
        {"keep-hourly", required_argument, NULL, OPT_KEEP_HOURLY},
        {"keep-daily", required_argument, NULL, OPT_KEEP_DAILY},
        {"keep-weekly", required_argument, NULL, OPT_KEEP_WEEKLY},
        {"keep-monthly", required_argument, NULL, OPT_KEEP_MONTHLY},
        {"keep-yearly", required_argument, NULL, OPT_KEEP_YEARLY},
        {"keep-within", required_argument, NULL, OPT_KEEP_WITHIN},
        {"keep-tag", required_argument, NULL, OPT_KEEP_TAG},
        {"prune", no_argument, NULL, OPT_PRUNE},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"max-unused", required_argument, NULL, OPT_MAX_UNUSED},
        {0, 0, 0, 0},
    };
    retention_policy_init(&a.policy);
    int rc = CLI_OK;
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", forget_opt, &a);
    if (i < 0) {
        retention_policy_free(&a.policy);
        return i == -2 ? CLI_OK : CLI_USAGE;
    }
    if (i != argc) {
        int empty = retention_policy_empty(&a.policy);
        retention_policy_free(&a.policy);
        if (!empty)
            return cli_usage(cmd, "forget takes either --keep-* rules or SNAPSHOT IDs, not both");
        return forget_ids(ctx, &a, argv + i, (size_t)(argc - i));
    }
    if (retention_policy_empty(&a.policy)) {
        retention_policy_free(&a.policy);
        return cli_usage(cmd, "no --keep-* rule given: refusing to remove every snapshot");
    }

    ob_err err = OB_ERR_INIT;
    repo_lock *lock = NULL;
    int deferred = 0;
    char *why = NULL;
    snapshot **all = NULL, **v = NULL;
    size_t nall = 0, n = 0;
    retention_item *items = NULL;
    retention_result res = {0};
    json_t *out = NULL, *prune_out = NULL;
    const char **removed_ids = NULL;
    size_t nremoved = 0, nkept = 0;

    if (cli_open_repo(ctx, &err) < 0)
        goto fail;
    if (a.prune ? prune_lock(ctx, a.dry_run, &lock, &deferred, &why, &err) < 0
                : repo_lock_acquire(ctx->r, 0, &lock, &err) < 0)
        goto fail;
    if (snapshot_list(ctx->r, &all, &nall, &err) < 0)
        goto fail;
    v = ob_xcalloc(nall ? nall : 1, sizeof *v);
    items = ob_xcalloc(nall ? nall : 1, sizeof *items);
    for (size_t k = 0; k < nall; k++) {
        snapshot *s = all[k];
        if ((a.set && strcmp(s->set, a.set)) || (a.kind && strcmp(s->kind, a.kind)))
            continue;
        v[n] = s;
        items[n] = (retention_item){.time = s->time_sec, .id = s->id, .set = s->set,
                                    .kind = s->kind, .host = s->hostname, .tags = s->tags,
                                    .ntags = s->ntags, .paths = s->paths, .npaths = s->npaths,
                                    .origin = json_string_value(
                                        json_object_get(s->extra, "system_identifier"))};
        n++;
    }
    if (retention_apply(&a.policy, items, n, &res, &err) < 0)
        goto fail;

    if (ctx->json) {
        out = json_object();
        json_t *groups = json_array();
        for (size_t g = 0; g < res.ngroups; g++) {
            const retention_group *gr = &res.groups[g];
            json_t *keep = json_array(), *remove = json_array();
            for (size_t k = 0; k < gr->n; k++) {
                const retention_decision *d = &res.d[gr->items[k]];
                json_array_append_new(d->keep ? keep : remove,
                                      snap_ref_json(v[gr->items[k]], d));
            }
            json_t *o = json_pack("{s:s, s:s, s:o, s:o}", "set", gr->set, "kind", gr->kind,
                                  "keep", keep, "remove", remove);
            if (gr->host) { /* the unnamed set: grouped by host and paths too */
                json_t *paths = json_array();
                for (size_t k = 0; k < gr->npaths; k++)
                    json_array_append_new(paths, json_string(gr->paths[k]));
                json_object_set_new(o, "host", json_string(gr->host));
                json_object_set_new(o, "paths", paths);
                if (gr->origin) /* and split by server */
                    json_object_set_new(o, "system_identifier",
                                        *gr->origin ? json_string(gr->origin) : json_null());
            }
            json_array_append_new(groups, o);
        }
        json_object_set_new(out, "groups", groups);
    } else if (!ctx->quiet) {
        if (a.dry_run)
            printf("dry run: nothing is removed\n");
        for (size_t g = 0; g < res.ngroups; g++)
            print_group(&res.groups[g], v, &res);
    }

    /* Remove, newest decisions first does not matter: each object is one
     * delete, and a crash midway leaves a subset removed — running forget
     * again removes the rest. */
    removed_ids = ob_xcalloc(n + 1, sizeof *removed_ids);
    for (size_t k = 0; k < n; k++) {
        if (res.d[k].keep) {
            nkept++;
            continue;
        }
        if (!a.dry_run) {
            if (repo_lock_lost(lock, &err))
                goto fail;
            char *name = ob_xasprintf("snapshots/%s", v[k]->id);
            int drc = storage_delete(repo_storage(ctx->r), name, &err);
            free(name);
            if (drc < 0) {
                ob_err_prefix(&err, "removing snapshot %.8s", v[k]->id);
                goto fail;
            }
        }
        removed_ids[nremoved++] = v[k]->id;
    }
    /* WAL retention: once physical backups were decided on, WAL older
     * than the start of the oldest physical backup still kept (of any set)
     * can never be replayed from any backup, so it goes. */
    uint64_t wal_removed = 0, wal_bytes = 0;
    int wal_done = 0;
    for (size_t g = 0; g < res.ngroups && !wal_done; g++)
        if (strcmp(res.groups[g].kind, "db-physical") == 0)
            wal_done = 1;
    if (wal_done) {
        uint64_t keep_from = UINT64_MAX, segsize = 0;
        for (size_t k = 0; k < nall; k++) {
            snapshot *s = all[k];
            int gone = 0;
            for (size_t m = 0; m < nremoved && !gone; m++)
                gone = strcmp(removed_ids[m], s->id) == 0;
            const char *start, *stop;
            uint64_t size;
            if (gone || strcmp(s->kind, "db-physical") != 0 ||
                pg_wal_snapshot_range(s, &start, &stop, &size) < 0)
                continue;
            segsize = size;
            uint64_t no = pg_wal_segno(start, segsize);
            if (no < keep_from)
                keep_from = no;
        }
        size_t unknown = 0;
        if (keep_from != UINT64_MAX &&
            unread_snapshots(ctx->r, all, nall, removed_ids, nremoved, &unknown, &err) < 0)
            goto fail;
        if (unknown) {
            /* A snapshot that could not be read may be a physical backup
             * older than every one read: its WAL must not go. */
            wal_done = 0;
            ob_warn("%zu snapshot%s could not be read (see above; `opsbackup check`), so no "
                    "WAL is removed: one of them may be a physical backup that needs it",
                    unknown, unknown == 1 ? "" : "s");
        } else if (keep_from == UINT64_MAX) {
            wal_done = 0; /* no physical backup left: keep the WAL, say so */
            if (!ctx->quiet && !ctx->json)
                printf("no physical backup is kept: the WAL archive is left as it is\n");
        } else if (pg_wal_expire(ctx->r, keep_from, segsize, a.dry_run, &wal_removed,
                                 &wal_bytes, &err) < 0) {
            goto fail;
        } else if (!ctx->quiet && !ctx->json) {
            char *b = ob_human_bytes(wal_bytes);
            printf("%s %llu WAL file%s (%s) older than the oldest kept physical backup\n",
                   a.dry_run ? "would remove" : "removed", (unsigned long long)wal_removed,
                   wal_removed == 1 ? "" : "s", b);
            free(b);
        }
    }
    if (!ctx->quiet && !ctx->json)
        printf("%s %zu snapshot%s, kept %zu\n", a.dry_run ? "would remove" : "removed", nremoved,
               nremoved == 1 ? "" : "s", nkept);

    if (a.prune) {
        /* A dry run has removed nothing: tell prune which snapshots to
         * treat as gone, so its numbers are what a real run would do. */
        if (run_prune(ctx, lock, a.dry_run, deferred, why, a.max_unused,
                      a.dry_run ? removed_ids : NULL, ctx->json ? &prune_out : NULL, &err) < 0)
            goto fail;
    }
    if (out) {
        json_object_set_new(out, "dry_run", json_boolean(a.dry_run));
        json_object_set_new(out, "kept", json_integer((json_int_t)nkept));
        json_object_set_new(out, "removed", json_integer((json_int_t)nremoved));
        if (wal_done)
            json_object_set_new(out, "wal", json_pack("{s:I, s:I}", "removed",
                                                      (json_int_t)wal_removed, "bytes",
                                                      (json_int_t)wal_bytes));
        if (prune_out)
            json_object_set_new(out, "prune", prune_out);
        prune_out = NULL;
        cli_print_json(out);
        out = NULL;
    }
    goto done;
fail:
    rc = cli_fail(ctx, &err);
done:
    json_decref(out);
    json_decref(prune_out);
    free(removed_ids);
    retention_result_free(&res);
    free(items);
    free(v);
    snapshot_list_free(all, nall);
    free(why);
    retention_policy_free(&a.policy);
    repo_lock_release(lock);
    cli_close_repo(ctx);
    return rc;
}
