#include <jansson.h>
#include <stdlib.h>

#include "cli/cli.h"

static int init_opt(int opt, const char *arg, void *ud)
{
    (void)arg;
    if (opt == 'N')
        *(const char **)ud = arg;
    return 0;
}

int cmd_init(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("init");
    const char *newpw_file = NULL;
    static const struct option opts[] = {
        {"new-password-file", required_argument, NULL, 'N'},
        {0, 0, 0, 0},
    };
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", init_opt, &newpw_file);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i != argc)
        return cli_usage(cmd, "init takes no operands");
    ob_err err = OB_ERR_INIT;
    if (cli_open_storage(ctx, 1, &err) < 0)
        return cli_fail(ctx, &err);
    char *pw = cli_new_password(ctx, newpw_file, 1, &err);
    if (!pw) {
        cli_close_repo(ctx);
        return cli_fail(ctx, &err);
    }
    repo_kdf_params kdf;
    cli_kdf(ctx, &kdf);
    char *id = NULL;
    int rc = repo_init(ctx->st, pw, &kdf, &id, &err);
    cli_password_free(pw);
    if (rc < 0) {
        cli_close_repo(ctx);
        return cli_fail(ctx, &err);
    }
    if (ctx->json)
        cli_print_json(json_pack("{s:s, s:s}", "id", id, "url", ctx->st->url));
    else if (!ctx->quiet)
        printf("created opsbackup repository %.8s at %s\n\n"
               "Keep the password safe: without it (or key escrow shares, `opsbackup key "
               "export`), the data in this repository cannot be recovered by anyone.\n",
               id, ctx->st->url);
    free(id);
    cli_close_repo(ctx);
    return CLI_OK;
}
