#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/crypto.h"
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

/* One backup as it exists in several repositories: the original and its
 * copies (found through extra.copied_from). */
typedef struct where_row {
    char origin_repo[OB_HEX_ID_LEN + 1], origin[OB_HEX_ID_LEN + 1];
    const snapshot *s;        /* any one of its instances, for time/kind/set */
    const char **ids;         /* per repository, NULL if absent */
} where_row;

static int row_cmp(const void *a, const void *b)
{
    const where_row *x = a, *y = b;
    /* Oldest first, to the nanosecond as snapshot_list sorts: two backups
     * within one second (a fast machine) must not fall back on the order
     * of their random IDs. */
    if (x->s->time_sec != y->s->time_sec)
        return x->s->time_sec < y->s->time_sec ? -1 : 1;
    if (x->s->time_nsec != y->s->time_nsec)
        return x->s->time_nsec < y->s->time_nsec ? -1 : 1;
    return strcmp(x->origin, y->origin);
}

/* snapshots -r A -r B: which backup is in which repository. */
static int snapshots_where(cli_ctx *ctx, const snap_args *a)
{
    ob_err err = OB_ERR_INIT;
    cli_repos rs;
    if (cli_repos_open(ctx, &rs, &err) < 0)
        return cli_fail(ctx, &err);
    snapshot ***lists = ob_xcalloc(rs.n, sizeof *lists);
    size_t *counts = ob_xcalloc(rs.n, sizeof *counts);
    where_row *rows = NULL;
    size_t nrows = 0;
    int rc = CLI_OK;
    const char **names = ob_xcalloc(rs.n, sizeof *names);
    for (size_t i = 0; i < rs.n; i++) {
        names[i] = i == 0 ? ctx->repo : ctx->more_repos[i - 1];
        if (snapshot_list(rs.r[i], &lists[i], &counts[i], &err) < 0) {
            ob_err_prefix(&err, "repository %s", names[i]);
            rc = cli_fail(ctx, &err);
            goto out;
        }
        for (size_t k = 0; k < counts[i]; k++) {
            const snapshot *s = lists[i][k];
            if ((a->set && strcmp(s->set, a->set)) || (a->kind && strcmp(s->kind, a->kind)))
                continue;
            json_t *from = s->extra ? json_object_get(s->extra, "copied_from") : NULL;
            const char *orepo = json_string_value(json_object_get(from, "repository"));
            const char *oid = json_string_value(json_object_get(from, "snapshot"));
            if (!orepo || !oid) {
                orepo = repo_id(rs.r[i]);
                oid = s->id;
            }
            where_row *row = NULL;
            for (size_t r = 0; r < nrows && !row; r++)
                if (strcmp(rows[r].origin, oid) == 0 && strcmp(rows[r].origin_repo, orepo) == 0)
                    row = &rows[r];
            if (!row) {
                rows = ob_xrealloc(rows, (nrows + 1) * sizeof *rows);
                row = &rows[nrows++];
                memset(row, 0, sizeof *row);
                snprintf(row->origin_repo, sizeof row->origin_repo, "%s", orepo);
                snprintf(row->origin, sizeof row->origin, "%s", oid);
                row->s = s;
                row->ids = ob_xcalloc(rs.n, sizeof *row->ids);
            }
            row->ids[i] = s->id;
        }
    }
    if (nrows > 1)
        qsort(rows, nrows, sizeof *rows, row_cmp);
    if (ctx->json) {
        json_t *arr = json_array();
        for (size_t r = 0; r < nrows; r++) {
            json_t *where = json_object();
            for (size_t i = 0; i < rs.n; i++)
                json_object_set_new(where, names[i],
                                    rows[r].ids[i] ? json_string(rows[r].ids[i]) : json_null());
            char *t = ob_time_rfc3339(rows[r].s->time_sec, rows[r].s->time_nsec);
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:o}", "origin",
                                                 rows[r].origin, "time", t, "kind",
                                                 rows[r].s->kind, "set", rows[r].s->set,
                                                 "repositories", where));
            free(t);
        }
        cli_print_json(arr);
    } else {
        printf("%-19s  %-11s  %-12s", "Time", "Kind", "Set");
        for (size_t i = 0; i < rs.n; i++)
            printf("  %-10.10s", names[i]);
        putchar('\n');
        for (size_t r = 0; r < nrows; r++) {
            char *t = ob_time_local(rows[r].s->time_sec);
            printf("%-19s  %-11s  %-12s", t, rows[r].s->kind,
                   *rows[r].s->set ? rows[r].s->set : "-");
            for (size_t i = 0; i < rs.n; i++)
                printf("  %-10.8s", rows[r].ids[i] ? rows[r].ids[i] : "-");
            putchar('\n');
            free(t);
        }
        printf("%zu backup%s in %zu repositories\n", nrows, nrows == 1 ? "" : "s", rs.n);
    }
out:
    for (size_t r = 0; r < nrows; r++)
        free(rows[r].ids);
    free(rows);
    for (size_t i = 0; i < rs.n; i++)
        snapshot_list_free(lists[i], counts[i]);
    free(lists);
    free(counts);
    free(names);
    cli_repos_close(&rs);
    cli_close_repo(ctx);
    return rc;
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
    if (ctx->nmore_repos)
        return snapshots_where(ctx, &a);
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
            /* One database name may be dumped from several servers into
             * one set (D77): the address tells the dumps apart here. */
            const char *server = s->extra ? json_string_value(json_object_get(s->extra, "server"))
                                          : NULL;
            if (server)
                printf(" on %s", server);
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
