#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "core/util.h"
#include "repo/snapshot.h"
#include "sources/files.h"

typedef struct restore_args {
    const char *target, *set;
    char **includes;
    size_t nincludes;
    int delete_extra, dry_run;
} restore_args;

static int restore_opt(int opt, const char *arg, void *ud)
{
    restore_args *a = ud;
    switch (opt) {
    case 't': a->target = arg; break;
    case 'S': a->set = arg; break;
    case 'i': cli_strv_push(&a->includes, &a->nincludes, arg); break;
    case 'D': a->delete_extra = 1; break;
    case 'n': a->dry_run = 1; break;
    default: return -1;
    }
    return 0;
}

static const struct option restore_opts[] = {
    {"target", required_argument, NULL, 't'},
    {"set", required_argument, NULL, 'S'},
    {"include", required_argument, NULL, 'i'},
    {"delete", no_argument, NULL, 'D'},
    {"dry-run", no_argument, NULL, 'n'},
    {0, 0, 0, 0},
};

int cmd_restore(cli_ctx *ctx, int argc, char **argv)
{
    const struct option *tables[] = {restore_opts, cli_db_opts, NULL};
    if (cli_kind_is(argc, argv, "db", tables))
        return cmd_restore_db(ctx, argc, argv);
    const cli_command *cmd = cli_find_command("restore");
    restore_args a = {0};
    int i = cli_parse(ctx, cmd, argc, argv, restore_opts, "t:i:n", restore_opt, &a);
    int rc = CLI_OK;
    if (i < 0) {
        rc = i == -2 ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if (argc - i != 2) {
        rc = cli_usage(cmd, "restore needs a kind (files or config) and a SNAPSHOT");
        goto out;
    }
    const char *kind = argv[i];
    if (strcmp(kind, "files") && strcmp(kind, "config")) {
        rc = cli_usage(cmd, "unknown restore kind '%s' (files, config or db)", kind);
        goto out;
    }
    if (!a.target) {
        rc = cli_usage(cmd, "restore %s needs --target DIR (use --target / to restore in place)",
                       kind);
        goto out;
    }
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    if (cli_open_repo(ctx, &err) < 0 ||
        snapshot_find(ctx->r, argv[i + 1], a.set, kind, &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        goto out;
    }
    cli_progress prog;
    cli_progress_init(&prog, "restore");
    if (!a.nincludes) { /* the whole snapshot: its size is the total */
        prog.total_bytes = s->stats.bytes;
        prog.total_files = s->stats.files;
    }
    files_restore_opts o = {
        .target = a.target,
        .includes = a.includes,
        .nincludes = a.nincludes,
        .delete_extra = a.delete_extra,
        .dry_run = a.dry_run,
        .verbose = ctx->verbose,
        .progress = cli_progress_enabled(ctx) && !a.dry_run ? cli_progress_files : NULL,
        .progress_ud = &prog,
    };
    files_restore_stats st;
    if (files_restore(ctx->r, s, &o, &st, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else if (ctx->json) {
        cli_print_json(json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "snapshot",
                                 s->id, "target", a.target, "dry_run", a.dry_run, "files",
                                 (json_int_t)st.files, "dirs", (json_int_t)st.dirs, "others",
                                 (json_int_t)st.others, "bytes", (json_int_t)st.bytes, "deleted",
                                 (json_int_t)st.deleted, "warnings", (json_int_t)st.warnings));
    } else if (!ctx->quiet) {
        char *b = ob_human_bytes(st.bytes);
        printf("%s snapshot %.8s to %s: %llu files, %llu dirs, %llu other, %s verified%s\n",
               a.dry_run ? "would restore" : "restored", s->id, a.target,
               (unsigned long long)st.files, (unsigned long long)st.dirs,
               (unsigned long long)st.others, b, st.deleted ? "; extra entries deleted" : "");
        free(b);
    }
    snapshot_free(s);
    cli_close_repo(ctx);
out:
    free(a.includes);
    return rc;
}
