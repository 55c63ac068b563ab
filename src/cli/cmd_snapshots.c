#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"
#include "repo/snapshot.h"

typedef struct snap_args {
    const cli_command *cmd;
    const char *set, *kind;
} snap_args;

static int snap_opt(int opt, const char *arg, void *ud)
{
    snap_args *a = ud;
    if (opt == 'S')
        a->set = arg;
    else if (opt == 'K') {
        if (strcmp(arg, "files") && strcmp(arg, "db") && strcmp(arg, "db-physical") &&
            strcmp(arg, "config"))
            return cli_usage(a->cmd, "--kind must be files, db, db-physical or config") ? -1 : -1;
        a->kind = arg;
    }
    return 0;
}

int cmd_snapshots(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("snapshots");
    snap_args a = {cmd, NULL, NULL};
    static const struct option opts[] = {
        {"set", required_argument, NULL, 'S'},
        {"kind", required_argument, NULL, 'K'},
        {0, 0, 0, 0},
    };
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", snap_opt, &a);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i != argc)
        return cli_usage(cmd, "snapshots takes no operands");
    ob_err err = OB_ERR_INIT;
    snapshot **v = NULL;
    size_t n = 0;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_list(ctx->r, &v, &n, &err) < 0) {
        int rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        return rc;
    }
    if (ctx->json) {
        json_t *arr = json_array();
        for (size_t k = 0; k < n; k++) {
            if ((a.set && strcmp(v[k]->set, a.set)) || (a.kind && strcmp(v[k]->kind, a.kind)))
                continue;
            json_array_append_new(arr, snapshot_to_json(v[k]));
        }
        cli_print_json(arr);
    } else {
        printf("%-8s  %-19s  %-6s  %-12s  %-12s  %10s  %s\n", "ID", "Time", "Kind", "Set", "Host",
               "Size", "Paths");
        size_t shown = 0;
        for (size_t k = 0; k < n; k++) {
            snapshot *s = v[k];
            if ((a.set && strcmp(s->set, a.set)) || (a.kind && strcmp(s->kind, a.kind)))
                continue;
            char *t = ob_time_local(s->time_sec);
            char *size = ob_human_bytes(s->stats.bytes);
            printf("%.8s  %-19s  %-6s  %-12s  %-12s  %10s  ", s->id, t, s->kind,
                   *s->set ? s->set : "-", s->hostname, size);
            for (size_t p = 0; p < s->npaths; p++)
                printf("%s%s", p ? ", " : "", s->paths[p]);
            if (s->ntags) {
                printf("  [");
                for (size_t p = 0; p < s->ntags; p++)
                    printf("%s%s", p ? " " : "", s->tags[p]);
                printf("]");
            }
            putchar('\n');
            free(t);
            free(size);
            shown++;
        }
        printf("%zu snapshot%s\n", shown, shown == 1 ? "" : "s");
    }
    snapshot_list_free(v, n);
    cli_close_repo(ctx);
    return CLI_OK;
}
