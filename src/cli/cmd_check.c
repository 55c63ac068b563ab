#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "core/log.h"
#include "sources/pg_wal.h"
#include "repo/check.h"
#include "repo/lock.h"

typedef struct check_args {
    const cli_command *cmd;
    int read_data;
    double pct;
    json_t *problems;
    int quiet;
    cli_progress *prog;     /* --read-data on a terminal, else NULL */
} check_args;

static int check_opt(int opt, const char *arg, void *ud)
{
    check_args *a = ud;
    if (opt == 'R') {
        a->read_data = 1;
    } else if (opt == 'P') {
        char *end;
        double p = strtod(arg, &end);
        if (*end == '%')
            end++;
        if (*end || p <= 0 || p > 100)
            return cli_usage(a->cmd, "--read-data-subset wants a percentage in (0, 100]") ? -1 : -1;
        a->read_data = 1;
        a->pct = p;
    }
    return 0;
}

static void check_report(int sev, const char *msg, void *ud)
{
    check_args *a = ud;
    static const char *const names[] = {"error", "warning", "info"};
    if (a->problems)
        json_array_append_new(a->problems,
                              json_pack("{s:s, s:s}", "severity", names[sev], "message", msg));
    else if (sev == CHECK_ERROR || !a->quiet) {
        if (a->prog && a->prog->drawn) /* the finding on a line of its own */
            fputs("\r\033[K", stderr);
        fprintf(sev == CHECK_ERROR ? stderr : stdout, "%s: %s\n", names[sev], msg);
    }
}

static void check_progress(uint64_t bytes, uint64_t total, uint64_t packs, void *ud)
{
    check_args *a = ud;
    if (!a->prog)
        return;
    a->prog->total_bytes = total;
    cli_progress_update(a->prog, bytes, packs, "packs", 0);
}

static int check_one(cli_ctx *ctx, check_args a);

static json_t *affected_json(const check_result *res)
{
    json_t *v = json_array();
    for (size_t i = 0; i < res->naffected; i++) {
        const check_affected *x = &res->affected[i];
        json_t *o = json_pack("{s:s, s:s#, s:I, s:b, s:I}", "id", x->id, "short_id", x->id, 8,
                              "damaged", (json_int_t)x->damaged, "unreadable", x->unreadable,
                              "wal_missing", (json_int_t)x->wal_missing);
        if (x->time)
            json_object_set_new(o, "time", json_string(x->time));
        if (x->kind)
            json_object_set_new(o, "kind", json_string(x->kind));
        if (x->paths)
            json_object_set_new(o, "paths", json_string(x->paths));
        json_array_append_new(v, o);
    }
    return v;
}

/* The summary a user acts on: which snapshots cannot be restored in full
 * (to forget, or to restore around), and by elimination which can. */
static void print_affected(const check_result *res)
{
    if (!res->naffected)
        return;
    printf("%zu snapshot%s cannot be restored in full:\n", res->naffected,
           res->naffected == 1 ? "" : "s");
    for (size_t i = 0; i < res->naffected; i++) {
        const check_affected *x = &res->affected[i];
        if (!x->time)
            printf("  %.8s  (the snapshot object itself is damaged)\n", x->id);
        else if (x->wal_missing && !x->damaged && !x->unreadable)
            printf("  %.8s  %s  %s  %s  (%llu WAL segment%s missing from the archive)\n", x->id,
                   x->time, x->kind, x->paths, (unsigned long long)x->wal_missing,
                   x->wal_missing == 1 ? "" : "s");
        else
            printf("  %.8s  %s  %s  %s  (%s%llu file%s or director%s lost data%s)\n", x->id,
                   x->time, x->kind, x->paths, x->unreadable ? "root tree unreadable; " : "",
                   (unsigned long long)x->damaged, x->damaged == 1 ? "" : "s",
                   x->damaged == 1 ? "y" : "ies",
                   x->wal_missing ? "; WAL segments missing from the archive" : "");
    }
    printf("every other snapshot restores in full; see docs/RELIABILITY.md, \"Corruption and "
           "repair\"\n");
}

/* check [-r A -r B...]: each repository in turn; the worst result wins. */
int cmd_check(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("check");
    check_args a = {cmd, 0, 100, NULL, 0, NULL};
    static const struct option opts[] = {
        {"read-data", no_argument, NULL, 'R'},
        {"read-data-subset", required_argument, NULL, 'P'},
        {0, 0, 0, 0},
    };
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", check_opt, &a);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i != argc)
        return cli_usage(cmd, "check takes no operands");
    if (!ctx->nmore_repos)
        return check_one(ctx, a);
    size_t n = 1 + ctx->nmore_repos;
    const char **names = ob_xcalloc(n, sizeof *names);
    names[0] = ctx->repo;
    for (size_t k = 1; k < n; k++)
        names[k] = ctx->more_repos[k - 1];
    size_t nmore = ctx->nmore_repos;
    int worst = CLI_OK;
    for (size_t k = 0; k < n; k++) {
        ctx->repo = names[k];
        ctx->nmore_repos = 0;
        if (!ctx->json)
            printf("repository %s:\n", names[k]);
        fflush(stdout);
        int rc = check_one(ctx, a);
        if (rc == CLI_USAGE || worst == CLI_USAGE)
            worst = CLI_USAGE;
        else if (rc > worst)
            worst = rc;
    }
    ctx->repo = names[0];
    ctx->nmore_repos = nmore;
    free(names);
    return worst;
}

/* check only reads, but takes a shared lock so prune (exclusive) waits for
 * it.  On read-only media (a write-protected mount, a snapshot of the
 * backup disk) no lock can be written; the check is still worth having,
 * so it goes on without one.  The driver's message ends with strerror
 * (ob_err_errno), the one place the cause survives. */
static int check_lock(cli_ctx *ctx, repo_lock **lock, ob_err *err)
{
    if (repo_lock_acquire(ctx->r, 0, lock, err) == 0)
        return 0;
    const char *msg = ob_err_msg(err), *ro = strerror(EROFS);
    size_t ml = strlen(msg), rl = strlen(ro);
    if (ml < rl || strcmp(msg + ml - rl, ro) != 0)
        return -1;
    ob_warn("%s; checking without a lock (if another host prunes this repository meanwhile, "
            "check may report false problems: run it again)",
            msg);
    ob_err_clear(err);
    *lock = NULL;
    return 0;
}

static int check_one(cli_ctx *ctx, check_args a)
{
    a.quiet = ctx->quiet;
    if (ctx->json)
        a.problems = json_array();
    ob_err err = OB_ERR_INIT;
    repo_lock *lock = NULL;
    check_result res;
    memset(&res, 0, sizeof res);
    cli_progress prog;
    cli_progress_init(&prog, "check");
    if (a.read_data && cli_progress_enabled(ctx))
        a.prog = &prog;
    check_opts o = {a.read_data, a.pct, check_report, &a, check_progress};
    int rc;
    pg_wal_check_result wal;
    int crc = cli_open_repo(ctx, &err) < 0 || check_lock(ctx, &lock, &err) < 0 ||
                      repo_check(ctx->r, &o, &res, &err) < 0
                  ? -1
                  : 0;
    if (prog.drawn) /* the summary below replaces the progress line */
        fputs("\r\033[K", stderr);
    a.prog = NULL;
    if (crc < 0 || pg_wal_check(ctx->r, a.read_data, check_report, &a, &res, &wal, &err) < 0) {
        rc = cli_fail(ctx, &err);
        json_decref(a.problems);
    } else {
        res.errors += wal.errors;
        res.warnings += wal.warnings;
        rc = res.errors ? CLI_PROBLEM : CLI_OK;
        if (ctx->json) {
            cli_print_json(json_pack(
                "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "ok",
                res.errors == 0,
                "errors", (json_int_t)res.errors, "warnings", (json_int_t)res.warnings,
                "snapshots", (json_int_t)res.snapshots, "trees", (json_int_t)res.trees, "packs",
                (json_int_t)res.packs, "blobs", (json_int_t)res.blobs, "packs_read",
                (json_int_t)res.packs_read, "blobs_read", (json_int_t)res.blobs_read, "wal_files",
                (json_int_t)wal.files, "affected_snapshots", affected_json(&res), "problems",
                a.problems));
        } else if (!ctx->quiet || res.errors) {
            printf("checked %llu snapshots, %llu trees, %llu packs, %llu blobs",
                   (unsigned long long)res.snapshots, (unsigned long long)res.trees,
                   (unsigned long long)res.packs, (unsigned long long)res.blobs);
            if (wal.files)
                printf(", %llu WAL files", (unsigned long long)wal.files);
            if (a.read_data)
                printf("; read %llu packs, %llu blobs%s verified",
                       (unsigned long long)res.packs_read, (unsigned long long)res.blobs_read,
                       wal.files_read ? " and the WAL files" : "");
            printf("\n");
            print_affected(&res);
            printf("%s: %llu errors, %llu warnings\n",
                   res.errors ? "repository has problems" : "no errors found",
                   (unsigned long long)res.errors, (unsigned long long)res.warnings);
        }
    }
    check_result_free(&res);
    repo_lock_release(lock);
    cli_close_repo(ctx);
    return rc;
}

int cmd_unlock(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("unlock");
    int i = cli_parse(ctx, cmd, argc, argv, NULL, "", NULL, NULL);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i != argc)
        return cli_usage(cmd, "unlock takes no operands");
    ob_err err = OB_ERR_INIT;
    int removed = 0, rc = CLI_OK;
    if (cli_open_repo(ctx, &err) < 0 || repo_lock_remove_stale(ctx->r, &removed, &err) < 0)
        rc = cli_fail(ctx, &err);
    else if (!ctx->quiet)
        printf("removed %d stale lock%s\n", removed, removed == 1 ? "" : "s");
    cli_close_repo(ctx);
    return rc;
}
