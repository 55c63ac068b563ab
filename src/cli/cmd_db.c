/*
 * cmd_db.c — `backup db`, `restore db`, `verify db` and `verify files`.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/crypto.h"
#include "core/util.h"
#include "repo/lock.h"
#include "repo/snapshot.h"
#include "repo/treeio.h"
#include "sources/files.h"
#include "sources/pg_logical.h"

typedef struct db_args {
    const cli_command *cmd;
    const char *set, *dbname, *dump_command, *restore_command, *target_db, *time;
    char **tags, **checks;
    size_t ntags, nchecks;
    int replace, roles, jobs, logical;
    char *dbname_copy;          /* --dbname, kept before its password is scrubbed */
} db_args;

static int db_opt(int opt, const char *arg, void *ud)
{
    db_args *a = ud;
    switch (opt) {
    case 'S': a->set = arg; break;
    case 'd':
        free(a->dbname_copy);
        a->dbname = a->dbname_copy = cli_scrub_conninfo((char *)arg);
        break;
    case 'D': a->dump_command = arg; break;
    case 'R': a->restore_command = arg; break;
    case 'T': return cli_add_tag(a->cmd, &a->tags, &a->ntags, arg);
    case 't': a->time = arg; break;
    case 'g': a->target_db = arg; break;
    case 'x': a->replace = 1; break;
    case 'o': a->roles = 1; break;
    case 'l': a->logical = 1; break;
    case 'Q': cli_strv_push(&a->checks, &a->nchecks, arg); break;
    case 'j': {
        char *end;
        long j = strtol(arg, &end, 10);
        if (*end || j < 1 || j > 64) {
            cli_usage(a->cmd, "--jobs wants a number from 1 to 64");
            return -1;
        }
        a->jobs = (int)j;
        break;
    }
    default: return -1;
    }
    return 0;
}

const struct option cli_db_opts[] = {
    {"set", required_argument, NULL, 'S'},
    {"dbname", required_argument, NULL, 'd'},
    {"dump-command", required_argument, NULL, 'D'},
    {"restore-command", required_argument, NULL, 'R'},
    {"tag", required_argument, NULL, 'T'},
    {"time", required_argument, NULL, 't'},
    {"target-db", required_argument, NULL, 'g'},
    {"replace", no_argument, NULL, 'x'},
    {"roles", no_argument, NULL, 'o'},
    {"logical", no_argument, NULL, 'l'},
    {"check-sql", required_argument, NULL, 'Q'},
    {"jobs", required_argument, NULL, 'j'},
    {0, 0, 0, 0},
};

static void db_args_free(db_args *a)
{
    if (a->dbname_copy) {
        ob_wipe(a->dbname_copy, strlen(a->dbname_copy));
        free(a->dbname_copy);
    }
    free(a->tags);
    free(a->checks);
}

/* `backup db ...`: argv[0] is "backup". */
int cmd_backup_db(cli_ctx *ctx, int argc, char **argv)
{
    db_args a = {.cmd = cli_find_command("backup")};
    int i = cli_parse(ctx, a.cmd, argc, argv, cli_db_opts, "d:j:", db_opt, &a);
    int rc = CLI_OK;
    if (i < 0) {
        rc = i == -2 ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if (argc - i != 1) {
        rc = cli_usage(a.cmd, "backup db takes no PATH: the database comes from --dbname or "
                              "the PG* environment");
        goto out;
    }
    int64_t when = 0;
    if ((rc = cli_time_option(a.cmd, a.time, &when)) != 0)
        goto out;
    ob_err err = OB_ERR_INIT;
    repo_lock *lock = NULL;
    if ((rc = cli_open_repo_locked(ctx, 0, &lock)) != 0)
        goto out;
    pg_backup_opts o = {a.dbname, a.dump_command, a.set, a.tags, a.ntags, when, 0};
    snapshot *s = NULL;
    if (pg_logical_backup(ctx->r, &o, &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else if (ctx->json) {
        cli_print_json(snapshot_to_json(s));
    } else if (!ctx->quiet) {
        char *total = ob_human_bytes(s->stats.bytes);
        char *added = ob_human_bytes(s->stats.bytes_added);
        char *stored = ob_human_bytes(s->stats.bytes_stored);
        printf("snapshot %.8s saved: database %s, %zu tables, dump %s; added %s (%s stored) in "
               "%.1fs\n",
               s->id, json_string_value(json_object_get(s->extra, "database")),
               json_object_size(json_object_get(s->extra, "tables")), total, added, stored,
               s->stats.duration);
        free(total);
        free(added);
        free(stored);
    }
    snapshot_free(s);
    repo_lock_release(lock);
    cli_close_repo(ctx);
out:
    db_args_free(&a);
    return rc;
}

/* `restore db SNAPSHOT ...`: argv[0] is "restore". */
int cmd_restore_db(cli_ctx *ctx, int argc, char **argv)
{
    db_args a = {.cmd = cli_find_command("restore")};
    int i = cli_parse(ctx, a.cmd, argc, argv, cli_db_opts, "d:j:", db_opt, &a);
    int rc = CLI_OK;
    if (i < 0) {
        rc = i == -2 ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if (argc - i != 2) {
        rc = cli_usage(a.cmd, "restore db needs a SNAPSHOT (an ID, a prefix, or latest)");
        goto out;
    }
    if (!a.target_db == !a.replace) {
        rc = cli_usage(a.cmd, "restore db needs exactly one of --target-db NAME (a new "
                              "database) and --replace (swap with the live one)");
        goto out;
    }
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_find(ctx->r, argv[i + 1], a.set, "db", &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        goto out;
    }
    pg_restore_opts o = {a.dbname, a.target_db, a.replace, a.jobs, a.roles, a.restore_command,
                         ctx->quiet};
    pg_restore_result res;
    if (pg_logical_restore(ctx->r, s, &o, &res, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        if (ctx->json)
            cli_print_json(json_pack("{s:s, s:s, s:s?, s:f}", "snapshot", s->id, "database",
                                     res.database, "previous", res.previous, "seconds",
                                     res.seconds));
        else if (!ctx->quiet && res.previous)
            printf("restored snapshot %.8s into %s in %.1fs; the previous database is kept as "
                   "%s (drop it when you no longer need it)\n",
                   s->id, res.database, res.seconds, res.previous);
        else if (!ctx->quiet)
            printf("restored snapshot %.8s into new database %s in %.1fs\n", s->id, res.database,
                   res.seconds);
        pg_restore_result_free(&res);
    }
    snapshot_free(s);
    cli_close_repo(ctx);
out:
    db_args_free(&a);
    return rc;
}

static int verify_db(cli_ctx *ctx, int argc, char **argv)
{
    db_args a = {.cmd = cli_find_command("verify")};
    int i = cli_parse(ctx, a.cmd, argc, argv, cli_db_opts, "d:", db_opt, &a);
    int rc = CLI_OK;
    if (i < 0) {
        rc = i == -2 ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if (argc - i > 2) {
        rc = cli_usage(a.cmd, "verify db takes at most one SNAPSHOT");
        goto out;
    }
    const char *ref = argc - i == 2 ? argv[i + 1] : "latest";
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_find(ctx->r, ref, a.set, "db", &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        goto out;
    }
    pg_verify_result res;
    if (pg_logical_verify(ctx->r, s, a.dbname, a.checks, a.nchecks, &res, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        rc = res.mismatches ? CLI_PROBLEM : CLI_OK;
        if (ctx->json) {
            cli_print_json(json_pack("{s:s, s:b, s:I, s:f, s:O, s:O}", "snapshot", s->id, "ok",
                                     res.mismatches == 0, "mismatches",
                                     (json_int_t)res.mismatches, "restore_seconds",
                                     res.restore_seconds, "tables", res.tables, "checks",
                                     res.checks));
        } else {
            const char *key;
            json_t *v;
            json_object_foreach(res.tables, key, v)
            {
                int ok = json_is_true(json_object_get(v, "ok"));
                if (!ok || ctx->verbose)
                    printf("%s table %s: %lld rows, snapshot recorded %lld\n",
                           ok ? "ok      " : "MISMATCH", key,
                           (long long)json_integer_value(json_object_get(v, "actual")),
                           (long long)json_integer_value(json_object_get(v, "expected")));
            }
            size_t k;
            json_array_foreach(res.checks, k, v)
            {
                const char *sql = json_string_value(json_object_get(v, "sql"));
                if (json_is_true(json_object_get(v, "ok"))) {
                    json_t *rows = json_object_get(v, "result");
                    json_t *first = json_array_get(json_array_get(rows, 0), 0);
                    printf("check   %s => %s\n", sql,
                           json_is_string(first) ? json_string_value(first) : "(no rows)");
                } else {
                    printf("FAILED  %s: %s\n", sql,
                           json_string_value(json_object_get(v, "error")));
                }
            }
            printf("%s: snapshot %.8s restored in %.1fs, %zu tables compared, %llu problem%s\n",
                   res.mismatches ? "verify FAILED" : "verify ok", s->id, res.restore_seconds,
                   json_object_size(res.tables), (unsigned long long)res.mismatches,
                   res.mismatches == 1 ? "" : "s");
        }
        pg_verify_result_free(&res);
    }
    snapshot_free(s);
    cli_close_repo(ctx);
out:
    db_args_free(&a);
    return rc;
}

typedef struct vf_ctx {
    repo *r;
    ob_buf b;
    uint64_t files, bytes, errors;
    int quiet;
} vf_ctx;

static int vf_visit(const char *path, const tree_node *n, void *ud)
{
    vf_ctx *c = ud;
    if (n->type != TREE_FILE)
        return 0;
    c->files++;
    for (size_t i = 0; i < n->nextents; i++) {
        ob_err e = OB_ERR_INIT;
        if (repo_read_blob(c->r, n->extents[i].id, REPO_BLOB_DATA, &c->b, &e) < 0 ||
            c->b.len != n->extents[i].len) {
            char *d = files_path_display(path);
            fprintf(stderr, "error: %s: %s\n", d,
                    e.code ? ob_err_msg(&e) : "chunk length differs from the tree");
            free(d);
            c->errors++;
            ob_err_clear(&e);
            break;
        }
        c->bytes += c->b.len;
    }
    return 0;
}

/* verify files: read back every byte of a snapshot and check it. */
static int verify_files(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("verify");
    db_args a = {.cmd = cmd};
    int i = cli_parse(ctx, cmd, argc, argv, cli_db_opts, "", db_opt, &a);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i > 2)
        return cli_usage(cmd, "verify files takes at most one SNAPSHOT");
    const char *ref = argc - i == 2 ? argv[i + 1] : "latest";
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    int rc;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_find(ctx->r, ref, a.set, NULL, &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        vf_ctx c = {ctx->r, OB_BUF_INIT, 0, 0, 0, ctx->quiet};
        if (files_walk(ctx->r, s->tree, vf_visit, &c, &err) < 0) {
            rc = cli_fail(ctx, &err);
        } else {
            rc = c.errors ? CLI_PROBLEM : CLI_OK;
            if (ctx->json)
                cli_print_json(json_pack("{s:s, s:b, s:I, s:I, s:I}", "snapshot", s->id, "ok",
                                         c.errors == 0, "files", (json_int_t)c.files, "bytes",
                                         (json_int_t)c.bytes, "errors", (json_int_t)c.errors));
            else if (!ctx->quiet || c.errors) {
                char *b = ob_human_bytes(c.bytes);
                printf("%s: snapshot %.8s, %llu files, %s read and verified, %llu errors\n",
                       c.errors ? "verify FAILED" : "verify ok", s->id,
                       (unsigned long long)c.files, b, (unsigned long long)c.errors);
                free(b);
            }
        }
        ob_buf_free(&c.b);
    }
    snapshot_free(s);
    cli_close_repo(ctx);
    db_args_free(&a);
    return rc;
}

int cmd_verify(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("verify");
    const struct option *tables[] = {cli_db_opts, NULL};
    if (cli_kind_is(argc, argv, "db", tables))
        return verify_db(ctx, argc, argv);
    if (cli_kind_is(argc, argv, "files", tables) || cli_kind_is(argc, argv, "config", tables))
        return verify_files(ctx, argc, argv);
    for (int k = 1; k < argc; k++)
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
            printf("usage: opsbackup %s\n", cmd->usage);
            return CLI_OK;
        }
    return cli_usage(cmd, "verify needs a kind: db or files");
}
