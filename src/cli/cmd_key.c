#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int key_opt(int opt, const char *arg, void *ud)
{
    if (opt == 'N')
        *(const char **)ud = arg;
    return 0;
}

int cmd_key(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("key");
    const char *newpw_file = NULL;
    static const struct option opts[] = {
        {"new-password-file", required_argument, NULL, 'N'},
        {0, 0, 0, 0},
    };
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", key_opt, &newpw_file);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i >= argc)
        return cli_usage(cmd, "key needs a subcommand: list, add, passwd or remove");
    const char *sub = argv[i++];
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
                json_array_append_new(a, json_pack("{s:s, s:b, s:s, s:s, s:s}", "id", keys[k].id,
                                                   "current", keys[k].current, "created",
                                                   keys[k].created, "host", keys[k].host,
                                                   "user", keys[k].user));
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
        char *pw = cli_new_password(ctx, newpw_file, 0, &err);
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
