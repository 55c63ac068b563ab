/*
 * cmd_ls.c — `ls SNAPSHOT [PATH]` and `diff SNAPSHOT1 SNAPSHOT2` (with
 * --content: which keys/lines of changed files differ, sources/confdiff.h).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/util.h"
#include "repo/snapshot.h"
#include "sources/confdiff.h"
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
        if (files_walk(ctx->r, s->tree, ls_visit, &c, &err) < 0) {
            ob_err_prefix(&err, "snapshot %.8s", s->id);
            rc = cli_fail(ctx, &err);
        }
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
    repo *r;
    int content, show_values;   /* --content, --show-values */
    ob_err err;                 /* a failure inside the callback */
} diff_ctx;

/* For --content: print (or add to JSON) what changed inside one file,
 * without values unless --show-values. */
typedef struct content_ctx {
    const diff_ctx *d;
    json_t *arr;
} content_ctx;

static void print_value(const char *v)
{
    char *d = files_path_display(v);
    fputs(d, stdout);
    free(d);
}

static int content_change(const confdiff_change *c, void *ud)
{
    content_ctx *cc = ud;
    int show = cc->d->show_values;
    if (cc->arr) {
        json_t *o = json_pack("{s:s#}", "change", &c->change, 1);
        if (c->key)
            json_object_set_new(o, "key", json_string(c->key));
        json_object_set_new(o, "line", json_integer((json_int_t)c->line));
        if (show && c->old_val) {
            char *d = files_path_display(c->old_val);
            json_object_set_new(o, "old", json_string(d));
            free(d);
        }
        if (show && c->new_val) {
            char *d = files_path_display(c->new_val);
            json_object_set_new(o, "new", json_string(d));
            free(d);
        }
        json_array_append_new(cc->arr, o);
        return 0;
    }
    printf("       %c ", c->change);
    if (c->key) {
        char *k = files_path_display(c->key);
        fputs(k, stdout);
        free(k);
        if (!show) {
            puts(c->change == '~' ? " (value changed)" : "");
        } else if (c->change == '~') {
            fputs(": ", stdout);
            print_value(c->old_val);
            fputs(" -> ", stdout);
            print_value(c->new_val);
            putchar('\n');
        } else {
            fputs(" = ", stdout);
            print_value(c->change == '+' ? c->new_val : c->old_val);
            putchar('\n');
        }
    } else if (!show) {
        printf("line %zu %s\n", c->line,
               c->change == '~' ? "changed" : c->change == '+' ? "added" : "removed (old file)");
    } else {
        printf("line %zu: ", c->line);
        if (c->change != '+')
            print_value(c->old_val);
        if (c->change == '~')
            fputs(" -> ", stdout);
        if (c->change != '-')
            print_value(c->new_val);
        putchar('\n');
    }
    return 0;
}

/* Compare the content of a modified file; returns a note for files that
 * are not compared line by line (NULL if they were), or -1 on error. */
static int diff_content(diff_ctx *c, const tree_node *a, const tree_node *b, json_t *jo)
{
    const char *note = NULL;
    if (a->type != TREE_FILE || b->type != TREE_FILE)
        return 0;
    if (a->size > CONFDIFF_MAX_SIZE || b->size > CONFDIFF_MAX_SIZE)
        note = "larger than 1 MiB: content not compared";
    ob_buf x = OB_BUF_INIT, y = OB_BUF_INIT;
    int rc = 0;
    if (!note && (confdiff_read(c->r, a, CONFDIFF_MAX_SIZE, &x, &c->err) < 0 ||
                  confdiff_read(c->r, b, CONFDIFF_MAX_SIZE, &y, &c->err) < 0))
        rc = -1;
    char *binnote = NULL;
    if (rc == 0 && !note && (confdiff_is_binary(x.data, x.len) || confdiff_is_binary(y.data, y.len))) {
        size_t diffs = 0;
        for (size_t i = 0; i < x.len && i < y.len; i++)
            diffs += x.data[i] != y.data[i];
        binnote = ob_xasprintf("binary content changed: %zu -> %zu bytes, %zu byte(s) differ%s",
                               x.len, y.len, diffs, x.len != y.len ? " in the common part" : "");
        note = binnote;
    }
    if (rc == 0 && note) {
        if (jo)
            json_object_set_new(jo, "content_note", json_string(note));
        else
            printf("       %s\n", note);
    } else if (rc == 0) {
        content_ctx cc = {c, jo ? json_array() : NULL};
        confdiff_text(x.data, x.len, y.data, y.len, content_change, &cc);
        if (jo)
            json_object_set_new(jo, "content", cc.arr);
    }
    free(binnote);
    ob_wipe(x.data, x.len);
    ob_wipe(y.data, y.len);
    ob_buf_free(&x);
    ob_buf_free(&y);
    return rc;
}

static int diff_visit(char change, const char *path, const tree_node *a, const tree_node *b,
                      void *ud)
{
    diff_ctx *c = ud;
    const char *kinds = "+-MTU";
    const char *k = strchr(kinds, change);
    if (k)
        c->counts[k - kinds]++;
    char *disp = files_path_display(path);
    json_t *jo = NULL;
    if (c->json) {
        jo = json_pack("{s:s#, s:s}", "change", &change, 1, "path", disp);
        json_array_append_new(c->arr, jo);
    } else {
        printf("%c    %s\n", change, disp);
    }
    free(disp);
    if (c->content && change == 'M')
        return diff_content(c, a, b, jo);
    return 0;
}

static int diff_opt(int opt, const char *arg, void *ud)
{
    (void)arg;
    diff_ctx *c = ud;
    if (opt == 'C')
        c->content = 1;
    else if (opt == 'V')
        c->content = c->show_values = 1;
    return 0;
}

int cmd_diff(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("diff");
    diff_ctx c = {ctx->json, NULL, {0}, NULL, 0, 0, OB_ERR_INIT};
    static const struct option opts[] = {
        {"content", no_argument, NULL, 'C'},
        {"show-values", no_argument, NULL, 'V'},
        {0, 0, 0, 0},
    };
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", diff_opt, &c);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i != 2)
        return cli_usage(cmd, "diff needs two snapshots");
    ob_err err = OB_ERR_INIT;
    snapshot *s1 = NULL, *s2 = NULL;
    int rc = CLI_OK;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_find(ctx->r, argv[i], NULL, NULL, &s1, &err) < 0 ||
        snapshot_find(ctx->r, argv[i + 1], NULL, NULL, &s2, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        c.r = ctx->r;
        if (c.json)
            c.arr = json_array();
        if (files_diff(ctx->r, s1->tree, s2->tree, diff_visit, &c, &err) < 0) {
            if (c.err.code != OB_OK)
                ob_err_move(&err, &c.err);
            else
                ob_err_prefix(&err, "comparing snapshots %.8s and %.8s", s1->id, s2->id);
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
