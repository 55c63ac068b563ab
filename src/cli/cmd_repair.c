/*
 * cmd_repair.c — `opsbackup repair index`: rebuild the index from the
 * packs (src/repo/repair.h has the rules and the crash-safe order).
 *
 * Locks: the exclusive lock, because the old index files are deleted once
 * the new ones are stored and a backup running meanwhile could have added
 * one this repair never saw.  --dry-run writes nothing and takes a shared
 * lock, so it can look at a repository a backup is using.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "repo/lock.h"
#include "repo/repair.h"

enum { OPT_DRY_RUN = 300 };

typedef struct repair_args {
    int dry_run;
    json_t *problems; /* --json */
    int quiet;
} repair_args;

static int repair_opt(int opt, const char *arg, void *ud)
{
    (void)arg;
    repair_args *a = ud;
    if (opt == OPT_DRY_RUN)
        a->dry_run = 1;
    return 0;
}

static void repair_report(const char *msg, void *ud)
{
    repair_args *a = ud;
    if (a->problems)
        json_array_append_new(a->problems, json_string(msg));
    else
        fprintf(stderr, "warning: %s\n", msg);
}

static void print_stats(const repair_args *a, const repair_stats *s)
{
    printf("read %llu packs (%llu bytes): %llu whole, %llu salvaged through the old index, "
           "%llu damaged\n",
           (unsigned long long)s->packs, (unsigned long long)s->bytes_read,
           (unsigned long long)s->packs_ok, (unsigned long long)s->packs_salvaged,
           (unsigned long long)s->packs_damaged);
    printf("old index: %llu files (%llu damaged); %llu packs it named are missing "
           "(%llu entries dropped); %llu packs were in no readable index file\n",
           (unsigned long long)s->index_old, (unsigned long long)s->index_old_damaged,
           (unsigned long long)s->packs_missing, (unsigned long long)s->entries_dropped,
           (unsigned long long)s->packs_unindexed);
    printf("%s %llu index files with %llu blobs (%llu damaged blobs left out), %s %llu old "
           "index files\n",
           a->dry_run ? "would write" : "wrote", (unsigned long long)s->index_new,
           (unsigned long long)s->blobs, (unsigned long long)s->blobs_bad,
           a->dry_run ? "would delete" : "deleted",
           (unsigned long long)(a->dry_run ? s->index_old : s->index_deleted));
    if (s->packs_damaged || s->packs_missing || s->blobs_bad)
        printf("data was lost: run `opsbackup check` to see which snapshots and files are "
               "affected (docs/RELIABILITY.md, \"Corruption and repair\")\n");
}

static json_t *stats_json(const repair_args *a, const repair_stats *s)
{
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                     "s:I, s:b, s:O}",
                     "dry_run", a->dry_run, "packs", (json_int_t)s->packs, "packs_ok",
                     (json_int_t)s->packs_ok, "packs_salvaged", (json_int_t)s->packs_salvaged,
                     "packs_damaged", (json_int_t)s->packs_damaged, "packs_unindexed",
                     (json_int_t)s->packs_unindexed, "packs_missing",
                     (json_int_t)s->packs_missing, "blobs", (json_int_t)s->blobs, "blobs_bad",
                     (json_int_t)s->blobs_bad, "entries_dropped", (json_int_t)s->entries_dropped,
                     "index_files_old", (json_int_t)s->index_old, "index_files_old_damaged",
                     (json_int_t)s->index_old_damaged, "index_files_new",
                     (json_int_t)s->index_new, "index_files_deleted",
                     (json_int_t)s->index_deleted, "bytes_read", (json_int_t)s->bytes_read,
                     "data_lost", s->packs_damaged || s->packs_missing || s->blobs_bad,
                     "problems", a->problems);
}

int cmd_repair(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("repair");
    repair_args a = {0, NULL, 0};
    static const struct option opts[] = {
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {0, 0, 0, 0},
    };
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", repair_opt, &a);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i == argc)
        return cli_usage(cmd, "repair needs what to repair: `repair index`");
    if (strcmp(argv[i], "index") != 0)
        return cli_usage(cmd, "repair: unknown object '%s' (only `repair index` exists)",
                         argv[i]);
    if (i + 1 != argc)
        return cli_usage(cmd, "repair index takes no operands");
    a.quiet = ctx->quiet;
    repo_lock *lock = NULL;
    int rc = cli_open_repo_locked(ctx, !a.dry_run, &lock);
    if (rc)
        return rc;
    if (ctx->json)
        a.problems = json_array();
    repair_opts o = {a.dry_run, lock, repair_report, &a};
    repair_stats st;
    ob_err err = OB_ERR_INIT;
    if (repo_repair_index(ctx->r, &o, &st, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else if (ctx->json) {
        cli_print_json(stats_json(&a, &st));
    } else if (!ctx->quiet) {
        print_stats(&a, &st);
    }
    json_decref(a.problems);
    repo_lock_release(lock);
    cli_close_repo(ctx);
    return rc;
}
