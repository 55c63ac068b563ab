/*
 * cmd_ls.c — `ls SNAPSHOT [PATH]` and `diff SNAPSHOT1 SNAPSHOT2`.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/util.h"
#include "repo/snapshot.h"
#include "sources/files.h"

static const char *type_name(int t)
{
    switch (t) {
    case TREE_FILE: return "file";
    case TREE_DIR: return "dir";
    case TREE_SYMLINK: return "symlink";
    case TREE_FIFO: return "fifo";
    case TREE_CHARDEV: return "chardev";
    case TREE_BLOCKDEV: return "blockdev";
    case TREE_SOCKET: return "socket";
    default: return "?";
    }
}

static char type_char(int t)
{
    static const char c[] = "?-dlpcbs";
    return t >= 1 && t <= 7 ? c[t] : '?';
}

static void mode_string(const tree_node *n, char out[11])
{
    uint32_t m = n->mode;
    out[0] = type_char(n->type);
    const char *rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        out[1 + i] = (m & (1u << (8 - i))) ? rwx[i] : '-';
    if (m & S_ISUID)
        out[3] = (m & S_IXUSR) ? 's' : 'S';
    if (m & S_ISGID)
        out[6] = (m & S_IXGRP) ? 's' : 'S';
    if (m & S_ISVTX)
        out[9] = (m & S_IXOTH) ? 't' : 'T';
    out[10] = 0;
}

static json_t *node_json(const char *path, const tree_node *n)
{
    char *disp = files_path_display(path);
    char *mtime = ob_time_rfc3339(n->mtime_sec, n->mtime_nsec);
    json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:s?, s:s?, s:I, s:s}", "path", disp, "type",
                          type_name(n->type), "mode", (int)n->mode, "uid", (json_int_t)n->uid,
                          "gid", (json_int_t)n->gid, "user", n->user, "group", n->group, "size",
                          (json_int_t)n->size, "mtime", mtime);
    if (n->type == TREE_SYMLINK) {
        char *t = files_path_display((const char *)n->link_target);
        json_object_set_new(o, "target", json_string(t));
        free(t);
    }
    free(disp);
    free(mtime);
    return o;
}

typedef struct ls_ctx {
    const char *prefix;
    size_t plen;
    int json, longfmt;
    json_t *arr;
} ls_ctx;

static int ls_visit(const char *path, const tree_node *n, void *ud)
{
    ls_ctx *c = ud;
    if (c->plen > 1) {
        int inside = strncmp(path, c->prefix, c->plen) == 0 &&
                     (path[c->plen] == '\0' || path[c->plen] == '/');
        int above = strncmp(c->prefix, path, strlen(path)) == 0 && c->prefix[strlen(path)] == '/';
        if (!inside)
            return above ? 0 : 1; /* descend only towards the prefix */
    }
    if (c->json) {
        json_array_append_new(c->arr, node_json(path, n));
        return 0;
    }
    char *disp = files_path_display(path);
    if (c->longfmt) {
        char mode[11];
        mode_string(n, mode);
        char *t = ob_time_local(n->mtime_sec);
        printf("%s %8s %8s %12llu %s %s", mode, n->user ? n->user : "?", n->group ? n->group : "?",
               (unsigned long long)n->size, t, disp);
        if (n->type == TREE_SYMLINK) {
            char *target = files_path_display((const char *)n->link_target);
            printf(" -> %s", target);
            free(target);
        }
        putchar('\n');
        free(t);
    } else {
        puts(disp);
    }
    free(disp);
    return 0;
}

static int ls_opt(int opt, const char *arg, void *ud)
{
    (void)arg;
    if (opt == 'l')
        ((ls_ctx *)ud)->longfmt = 1;
    return 0;
}

int cmd_ls(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("ls");
    ls_ctx c = {0};
    static const struct option opts[] = {{"long", no_argument, NULL, 'l'}, {0, 0, 0, 0}};
    int i = cli_parse(ctx, cmd, argc, argv, opts, "l", ls_opt, &c);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i < 1 || argc - i > 2)
        return cli_usage(cmd, "ls needs a SNAPSHOT and optionally a PATH");
    c.prefix = argc - i == 2 ? argv[i + 1] : "/";
    c.plen = strlen(c.prefix);
    while (c.plen > 1 && c.prefix[c.plen - 1] == '/')
        c.plen--;
    c.json = ctx->json;
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    int rc = CLI_OK;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_find(ctx->r, argv[i], NULL, NULL, &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        if (c.json)
            c.arr = json_array();
        if (files_walk(ctx->r, s->tree, ls_visit, &c, &err) < 0)
            rc = cli_fail(ctx, &err);
        if (c.json) {
            if (rc == CLI_OK)
                cli_print_json(c.arr);
            else
                json_decref(c.arr);
        }
    }
    snapshot_free(s);
    cli_close_repo(ctx);
    return rc;
}

typedef struct diff_ctx {
    int json;
    json_t *arr;
    uint64_t counts[5];
} diff_ctx;

static int diff_visit(char change, const char *path, const tree_node *a, const tree_node *b,
                      void *ud)
{
    (void)a;
    (void)b;
    diff_ctx *c = ud;
    const char *kinds = "+-MTU";
    const char *k = strchr(kinds, change);
    if (k)
        c->counts[k - kinds]++;
    char *disp = files_path_display(path);
    if (c->json)
        json_array_append_new(c->arr, json_pack("{s:s#, s:s}", "change", &change, 1, "path", disp));
    else
        printf("%c    %s\n", change, disp);
    free(disp);
    return 0;
}

int cmd_diff(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("diff");
    int i = cli_parse(ctx, cmd, argc, argv, NULL, "", NULL, NULL);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i != 2)
        return cli_usage(cmd, "diff needs two snapshots");
    ob_err err = OB_ERR_INIT;
    snapshot *s1 = NULL, *s2 = NULL;
    diff_ctx c = {ctx->json, NULL, {0}};
    int rc = CLI_OK;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_find(ctx->r, argv[i], NULL, NULL, &s1, &err) < 0 ||
        snapshot_find(ctx->r, argv[i + 1], NULL, NULL, &s2, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        if (c.json)
            c.arr = json_array();
        if (files_diff(ctx->r, s1->tree, s2->tree, diff_visit, &c, &err) < 0) {
            rc = cli_fail(ctx, &err);
            json_decref(c.arr);
        } else if (c.json) {
            cli_print_json(json_pack("{s:s, s:s, s:o}", "from", s1->id, "to", s2->id, "changes",
                                     c.arr));
        } else if (!ctx->quiet) {
            printf("\n%llu added, %llu removed, %llu modified, %llu type changed, %llu metadata "
                   "only\n",
                   (unsigned long long)c.counts[0], (unsigned long long)c.counts[1],
                   (unsigned long long)c.counts[2], (unsigned long long)c.counts[3],
                   (unsigned long long)c.counts[4]);
        }
    }
    snapshot_free(s1);
    snapshot_free(s2);
    cli_close_repo(ctx);
    return rc;
}
