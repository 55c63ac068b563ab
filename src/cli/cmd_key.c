/*
 * cmd_key.c — `key list | add | passwd | remove` (key slots) and
 * `key export | recover` (paper escrow of the master key, repo/escrow.h).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/util.h"
#include "repo/escrow.h"

typedef struct key_opts {
    const char *newpw_file;
    const char *shares, *threshold; /* export: N and K as given */
} key_opts;

static int key_opt(int opt, const char *arg, void *ud)
{
    key_opts *o = ud;
    if (opt == 'N')
        o->newpw_file = arg;
    else if (opt == 'S')
        o->shares = arg;
    else if (opt == 'T')
        o->threshold = arg;
    return 0;
}

/* A decimal 1 ... 255 (option values of key export). */
static int parse_count(const char *s, unsigned *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v < 1 || v > 255)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int key_export(cli_ctx *ctx, const cli_command *cmd, const key_opts *o)
{
    unsigned n, k;
    if (!o->shares || !o->threshold)
        return cli_usage(cmd, "key export needs --shares N and --threshold K (e.g. --shares 5 "
                              "--threshold 3)");
    if (parse_count(o->shares, &n) < 0)
        return cli_usage(cmd, "--shares must be a number from 1 to 255, not '%s'", o->shares);
    if (parse_count(o->threshold, &k) < 0)
        return cli_usage(cmd, "--threshold must be a number from 1 to 255, not '%s'",
                         o->threshold);
    if (k > n)
        return cli_usage(cmd, "--threshold %u is more than --shares %u: the shares could never "
                              "be combined", k, n);
    ob_err err = OB_ERR_INIT;
    if (cli_open_repo(ctx, &err) < 0) {
        cli_close_repo(ctx);
        return cli_fail(ctx, &err);
    }
    uint8_t master[ESCROW_SECRET_LEN];
    repo_master_key(ctx->r, master);
    char **v = NULL;
    char set[ESCROW_SET_LEN + 1];
    int rc = escrow_split(master, repo_id(ctx->r), k, n, &v, set, &err);
    ob_wipe(master, sizeof master);
    if (rc < 0) {
        cli_close_repo(ctx);
        return cli_fail(ctx, &err);
    }
    int64_t now;
    ob_time_now(&now, NULL);
    char *date = ob_time_rfc3339(now, 0);
    if (ctx->json) {
        json_t *a = json_array();
        for (unsigned j = 0; j < n; j++)
            json_array_append_new(a, json_string(v[j]));
        cli_print_json(json_pack("{s:s, s:s, s:s, s:i, s:i, s:o}", "repository",
                                 repo_id(ctx->r), "export", set, "created", date, "threshold",
                                 (int)k, "shares_total", (int)n, "shares", a));
    } else {
        /* Every line but the shares starts with '#' (CLI.md), so the output
         * can be fed back to `key recover` as it is. */
        printf("# opsbackup master key escrow: any %u of these %u shares rebuild the master key\n"
               "# of repository %s\n"
               "# export %s, created %s.\n"
               "#\n"
               "# Keep each share in a different place (a safe, a bank deposit box, a trusted\n"
               "# person): any %u together give full access to every backup of this\n"
               "# repository; fewer reveal nothing about it.  They stay valid when passwords\n"
               "# change, for as long as the repository exists.\n"
               "# To regain access: opsbackup -r REPO key recover SHARE SHARE ... (or one\n"
               "# share per line on standard input); it adds a key slot with a new password.\n",
               k, n, repo_id(ctx->r), set, date, k);
        if (k == 1)
            printf("# WARNING: threshold 1: each share alone is the master key.\n");
        else if (k == n)
            printf("# WARNING: threshold = shares: losing any one share makes the escrow useless.\n");
        for (unsigned j = 0; j < n; j++)
            printf("#\n# share %u of %u\n%s\n", j + 1, n, v[j]);
    }
    fflush(stdout);
    free(date);
    escrow_free_strv(v, n);
    cli_close_repo(ctx);
    return CLI_OK;
}

/* One share as given: its text and where it came from (for messages). */
typedef struct share_in {
    char *text;
    char *where;
} share_in;

static void share_push(share_in **v, size_t *n, const char *text, size_t len, char *where)
{
    *v = ob_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[*n].text = ob_xstrndup(text, len);
    (*v)[*n].where = where;
    (*n)++;
}

/* Shares from standard input: one per line; blank lines and lines starting
 * with '#' (the comments key export prints) are skipped. */
static int read_stdin_shares(share_in **v, size_t *n, ob_err *err)
{
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "Type or paste the shares, one per line; end with Ctrl-D.\n");
    ob_buf b = OB_BUF_INIT;
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, stdin)) > 0)
        ob_buf_append(&b, tmp, k);
    ob_wipe(tmp, sizeof tmp);
    if (ferror(stdin)) {
        ob_wipe(b.data, b.len);
        ob_buf_free(&b);
        return ob_err_set(err, OB_EIO, "reading shares from standard input failed");
    }
    size_t line = 0;
    for (size_t pos = 0; pos < b.len;) {
        const char *s = (const char *)b.data + pos;
        const char *nl = memchr(s, '\n', b.len - pos);
        size_t len = nl ? (size_t)(nl - s) : b.len - pos;
        pos += len + (nl ? 1 : 0);
        line++;
        while (len && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
            len--;
        if (len == 0 || *s == '#')
            continue;
        share_push(v, n, s, len, ob_xasprintf("standard input line %zu", line));
    }
    ob_wipe(b.data, b.len);
    ob_buf_free(&b);
    return 0;
}

static int key_recover(cli_ctx *ctx, const key_opts *o, int argc, char **argv, int i)
{
    ob_err err = OB_ERR_INIT;
    share_in *in = NULL;
    size_t nin = 0;
    int rc = CLI_OK, used_stdin = 0;
    for (int a = i; a < argc; a++) {
        if (strcmp(argv[a], "-") == 0) {
            if (!used_stdin && read_stdin_shares(&in, &nin, &err) < 0)
                rc = cli_fail(ctx, &err);
            used_stdin = 1;
        } else {
            size_t len = strlen(argv[a]);
            share_push(&in, &nin, argv[a], len, ob_xasprintf("argument %d", a - i + 1));
            /* K shares are the master key: blank them in argv so that
             * /proc/PID/cmdline (ps) stops showing them.  Standard input
             * is the better way to hand them over (README). */
            if (len > 14)
                memset(argv[a] + 14, 'x', len - 14);
        }
    }
    if (rc == CLI_OK && i == argc) {
        used_stdin = 1;
        if (read_stdin_shares(&in, &nin, &err) < 0)
            rc = cli_fail(ctx, &err);
    }
    if (rc == CLI_OK && nin == 0)
        rc = cli_usage(cli_find_command("key"),
                       "key recover needs shares: as arguments, or one per line on standard "
                       "input");
    escrow_share *sh = ob_xcalloc(nin ? nin : 1, sizeof *sh);
    for (size_t j = 0; j < nin && rc == CLI_OK; j++) {
        if (escrow_share_parse(in[j].text, &sh[j], &err) < 0) {
            ob_err_prefix(&err, "share %zu (%s)", j + 1, in[j].where);
            rc = cli_fail(ctx, &err);
        }
    }
    uint8_t master[ESCROW_SECRET_LEN];
    char *pw = NULL, *kid = NULL;
    if (rc == CLI_OK && cli_open_storage(ctx, 0, &err) < 0)
        rc = cli_fail(ctx, &err);
    if (rc == CLI_OK) {
        /* The slots (plaintext) say which repository this is, so a share
         * of another one is named before anything is combined.  With no
         * readable slot, the config checks the rebuilt key instead. */
        char rid[OB_HEX_ID_LEN + 1];
        ob_err e = OB_ERR_INIT;
        int have_id = repo_key_slot_repository(ctx->st, rid, &e) == 0;
        ob_err_clear(&e);
        if (escrow_combine(sh, nin, have_id ? rid : NULL, master, &err) < 0) {
            rc = cli_fail(ctx, &err);
        } else if (repo_open_with_master_key(ctx->st, master, &ctx->r, &err) < 0) {
            if (err.code == OB_EAUTH)
                ob_err_prefix(&err, "the %zu shares do not rebuild this repository's key; are "
                                    "they all from the same `key export` of it?",
                              nin);
            rc = cli_fail(ctx, &err);
        }
        ob_wipe(master, sizeof master);
    }
    if (rc == CLI_OK) {
        /* The new password comes from --new-password-file, the
         * environment or /dev/tty (asked twice), never from stdin, which
         * may be the shares. */
        repo_kdf_params kdf;
        cli_kdf(ctx, &kdf);
        pw = cli_new_password(ctx, o->newpw_file, 0, &err);
        if (!pw || repo_key_add(ctx->r, pw, &kdf, &kid, &err) < 0) {
            ob_err_prefix(&err, "the shares are good, but adding the new key slot failed");
            rc = cli_fail(ctx, &err);
        } else if (ctx->json) {
            cli_print_json(json_pack("{s:s, s:s, s:i}", "repository", repo_id(ctx->r), "key_id",
                                     kid, "shares_used", (int)nin));
        } else if (!ctx->quiet) {
            printf("recovered the master key of repository %.8s from %zu shares\n"
                   "added key slot %.8s: the repository opens with the new password\n",
                   repo_id(ctx->r), nin, kid);
        }
    }
    cli_password_free(pw);
    free(kid);
    for (size_t j = 0; j < nin; j++) {
        escrow_free_str(in[j].text);
        free(in[j].where);
        escrow_share_wipe(&sh[j]);
    }
    free(in);
    free(sh);
    cli_close_repo(ctx);
    return rc;
}

int cmd_key(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("key");
    key_opts ko = {0};
    static const struct option opts[] = {
        {"new-password-file", required_argument, NULL, 'N'},
        {"shares", required_argument, NULL, 'S'},
        {"threshold", required_argument, NULL, 'T'},
        {0, 0, 0, 0},
    };
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", key_opt, &ko);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i >= argc)
        return cli_usage(cmd, "key needs a subcommand: list, add, passwd, remove, export or "
                              "recover");
    const char *sub = argv[i++];
    if (strcmp(sub, "export") == 0) {
        if (i != argc)
            return cli_usage(cmd, "key export takes no operands (--shares N --threshold K)");
        return key_export(ctx, cmd, &ko);
    }
    if (strcmp(sub, "recover") == 0)
        return key_recover(ctx, &ko, argc, argv, i);
    if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "passwd") && strcmp(sub, "remove"))
        return cli_usage(cmd, "unknown key subcommand '%s'", sub);
    if (strcmp(sub, "remove") == 0 ? i + 1 != argc : i != argc)
        return cli_usage(cmd, "wrong number of operands for key %s", sub);

    ob_err err = OB_ERR_INIT;
    if (cli_open_repo(ctx, &err) < 0) {
        cli_close_repo(ctx);
        return cli_fail(ctx, &err);
    }
    int rc = CLI_OK;
    if (strcmp(sub, "list") == 0) {
        repo_key_info *keys;
        size_t n;
        if (repo_key_list(ctx->r, &keys, &n, &err) < 0) {
            rc = cli_fail(ctx, &err);
        } else if (ctx->json) {
            json_t *a = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(
                    a, json_pack("{s:s, s:b, s:s, s:s, s:s, s:{s:I, s:I, s:I}}", "id",
                                 keys[k].id, "current", keys[k].current, "created",
                                 keys[k].created, "host", keys[k].host, "user", keys[k].user,
                                 "scrypt", "n", (json_int_t)keys[k].kdf.n, "r",
                                 (json_int_t)keys[k].kdf.r, "p", (json_int_t)keys[k].kdf.p));
            cli_print_json(a);
        } else {
            printf(" %-10s %-20s %-10s %s\n", "ID", "Created", "User", "Host");
            for (size_t k = 0; k < n; k++)
                printf("%s%-10.8s %-20s %-10s %s\n", keys[k].current ? "*" : " ", keys[k].id,
                       keys[k].created, keys[k].user, keys[k].host);
        }
        if (rc == CLI_OK)
            repo_key_info_free(keys, n);
    } else if (strcmp(sub, "remove") == 0) {
        if (repo_key_remove(ctx->r, argv[i], &err) < 0)
            rc = cli_fail(ctx, &err);
        else if (!ctx->quiet)
            printf("removed key slot %s\n", argv[i]);
    } else {
        char *pw = cli_new_password(ctx, ko.newpw_file, 0, &err);
        char *id = NULL;
        repo_kdf_params kdf;
        cli_kdf(ctx, &kdf);
        if (!pw || repo_key_add(ctx->r, pw, &kdf, &id, &err) < 0) {
            rc = cli_fail(ctx, &err);
        } else if (strcmp(sub, "passwd") == 0) {
            /* The new slot is durable before the old one goes: a crash in
             * between leaves two working passwords, never none. */
            char *old = ob_xstrdup(repo_key_id(ctx->r));
            char *name = ob_xasprintf("keys/%s", old);
            if (storage_delete(ctx->st, name, &err) < 0)
                rc = cli_fail(ctx, &err);
            else if (!ctx->quiet)
                printf("password changed: key slot %.8s replaces %.8s\n", id, old);
            free(name);
            free(old);
        } else if (!ctx->quiet) {
            printf("added key slot %.8s\n", id);
        }
        free(id);
        cli_password_free(pw);
    }
    cli_close_repo(ctx);
    return rc;
}
