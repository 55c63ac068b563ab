#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "core/util.h"
#include "repo/lock.h"
#include "sources/files.h"

typedef struct backup_args {
    const cli_command *cmd;
    const char *set;
    char **tags, **excludes;
    size_t ntags, nexcludes;
    const char *time;
    int force;
} backup_args;

static int backup_opt(int opt, const char *arg, void *ud)
{
    backup_args *a = ud;
    switch (opt) {
    case 'S': a->set = arg; break;
    case 'T': return cli_add_tag(a->cmd, &a->tags, &a->ntags, arg);
    case 'e': cli_strv_push(&a->excludes, &a->nexcludes, arg); break;
    case 't': a->time = arg; break;
    case 'f': a->force = 1; break;
    default: return -1;
    }
    return 0;
}

static const struct option backup_opts[] = {
    {"set", required_argument, NULL, 'S'},
    {"tag", required_argument, NULL, 'T'},
    {"exclude", required_argument, NULL, 'e'},
    {"time", required_argument, NULL, 't'},
    {"force", no_argument, NULL, 'f'},
    {0, 0, 0, 0},
};

int cmd_backup(cli_ctx *ctx, int argc, char **argv)
{
    const struct option *tables[] = {backup_opts, cli_db_opts, NULL};
    if (cli_kind_is(argc, argv, "db", tables))
        return cmd_backup_db(ctx, argc, argv);
    const cli_command *cmd = cli_find_command("backup");
    backup_args a = {.cmd = cmd};
    int i = cli_parse(ctx, cmd, argc, argv, backup_opts, "e:", backup_opt, &a);
    int rc = CLI_OK;
    if (i < 0) {
        rc = i == -2 ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if (i >= argc) {
        rc = cli_usage(cmd, "backup needs a kind: files, config or db");
        goto out;
    }
    const char *kind = argv[i++];
    if (strcmp(kind, "files") != 0 && strcmp(kind, "config") != 0) {
        rc = cli_usage(cmd, "unknown backup kind '%s' (files, config or db)", kind);
        goto out;
    }
    if (i >= argc) {
        rc = cli_usage(cmd, "backup %s needs at least one PATH", kind);
        goto out;
    }
    int64_t when = 0;
    if ((rc = cli_time_option(cmd, a.time, &when)) != 0)
        goto out;

    ob_err err = OB_ERR_INIT;
    repo_lock *lock = NULL;
    ctx->multi_repo_ok = 1;
    if ((rc = cli_open_repo_locked(ctx, 0, &lock)) != 0)
        goto out;
    cli_progress prog;
    cli_progress_init(&prog, "backup");
    files_backup_opts o = {
        .kind = kind,
        .set = a.set,
        .tags = a.tags,
        .ntags = a.ntags,
        .excludes = a.excludes,
        .nexcludes = a.nexcludes,
        .time_sec = when,
        .no_parent = a.force,
        .skip_if_unchanged = strcmp(kind, "config") == 0,
        .progress = cli_progress_enabled(ctx) ? cli_progress_files : NULL,
        .progress_ud = &prog,
        .lock = lock,
    };
    snapshot *s = NULL;
    int unchanged = 0;
    int brc = files_backup(ctx->r, argv + i, (size_t)(argc - i), &o, &s, &unchanged, &err);
    repo_lock_release(lock);
    json_t *j = NULL;
    if (s && ctx->json) {
        j = snapshot_to_json(s);
        json_object_set_new(j, "unchanged", json_boolean(unchanged));
    }
    if (s) {
        if (!ctx->json && !ctx->quiet) {
            if (unchanged) {
                printf("unchanged: nothing differs from snapshot %.8s; no new snapshot\n", s->id);
            } else {
                char *total = ob_human_bytes(s->stats.bytes);
                char *added = ob_human_bytes(s->stats.bytes_added);
                char *stored = ob_human_bytes(s->stats.bytes_stored);
                printf("snapshot %.8s saved: %llu files, %llu dirs, %s; added %s (%s stored) "
                       "in %.1fs\n",
                       s->id, (unsigned long long)s->stats.files,
                       (unsigned long long)s->stats.dirs, total, added, stored,
                       s->stats.duration);
                free(total);
                free(added);
                free(stored);
            }
        }
    }
    /* The other --repo: a copy of this very snapshot, so every repository
     * holds the same backup (and the source is read once). */
    size_t failed = s && ctx->nmore_repos ? cli_replicate(ctx, s, j) : 0;
    if (j)
        cli_print_json(j);
    if (brc < 0)
        rc = cli_fail(ctx, &err);
    else if (failed)
        rc = CLI_FAIL;
    snapshot_free(s);
    cli_close_repo(ctx);
out:
    free(a.tags);
    free(a.excludes);
    return rc;
}
