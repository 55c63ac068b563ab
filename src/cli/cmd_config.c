/*
 * cmd_config.c — `opsbackup config check [--json]`: load the config file
 * and print every problem config_check finds as FILE:LINE: message.
 * Exit 0 when the config is sound, 2 (CLI_USAGE) when it is not.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/config_check.h"

static json_t *problem_json(const char *file, int line, const char *message)
{
    return json_pack("{s:s, s:i, s:s}", "file", file, "line", line, "message", message);
}

/* A load error reads "FILE:LINE: why" (config.h) or names the file alone;
 * split it back so --json gives the same three fields as other problems. */
static void report_load_error(cli_ctx *ctx, const char *path, const ob_err *err)
{
    const char *msg = ob_err_msg(err);
    int line = 0;
    const char *why = msg;
    size_t plen = strlen(path);
    if (strncmp(msg, path, plen) == 0 && msg[plen] == ':') {
        char *end;
        long v = strtol(msg + plen + 1, &end, 10);
        if (end != msg + plen + 1 && end[0] == ':' && end[1] == ' ') {
            line = (int)v;
            why = end + 2;
        }
    }
    if (ctx->json) {
        json_t *probs = json_array();
        json_array_append_new(probs, problem_json(path, line, why));
        cli_print_json(json_pack("{s:s, s:b, s:o}", "file", path, "ok", 0, "problems", probs));
    } else {
        fprintf(stderr, "%s\n", msg);
    }
}

int cmd_config(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("config");
    int i = cli_parse(ctx, cmd, argc, argv, NULL, "", NULL, NULL);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i >= argc || strcmp(argv[i], "check") != 0)
        return cli_usage(cmd, "the only config subcommand is 'check'");
    if (i + 1 != argc)
        return cli_usage(cmd, "config check takes no operands");

    const char *path = ctx->config ? ctx->config : "/etc/opsbackup/opsbackup.conf";
    ob_err err = OB_ERR_INIT;
    if (!ctx->config) {
        /* The default file is optional for other commands; here it is the
         * thing to check, so its absence is an error. */
        ctx->config = path;
    }
    if (cli_load_config(ctx, &err) < 0) {
        report_load_error(ctx, path, &err);
        ob_err_clear(&err);
        return CLI_USAGE;
    }

    config_check_result r;
    config_check(ctx->cfg, &r);
    if (ctx->json) {
        json_t *probs = json_array();
        for (size_t k = 0; k < r.n; k++)
            json_array_append_new(probs, problem_json(path, r.problems[k].line,
                                                      r.problems[k].message));
        cli_print_json(json_pack("{s:s, s:b, s:I, s:I, s:o}", "file", path, "ok", r.n == 0,
                                 "repositories", (json_int_t)r.nrepos, "jobs",
                                 (json_int_t)r.njobs, "problems", probs));
    } else if (r.n == 0) {
        if (!ctx->quiet)
            printf("config OK: %zu repositor%s, %zu job%s\n", r.nrepos,
                   r.nrepos == 1 ? "y" : "ies", r.njobs, r.njobs == 1 ? "" : "s");
    } else {
        for (size_t k = 0; k < r.n; k++)
            fprintf(stderr, "%s:%d: %s\n", path, r.problems[k].line, r.problems[k].message);
        fprintf(stderr, "%zu problem%s in %s\n", r.n, r.n == 1 ? "" : "s", path);
    }
    int rc = r.n ? CLI_USAGE : CLI_OK;
    config_check_free(&r);
    cli_close_repo(ctx); /* frees the config; no repository was opened */
    return rc;
}
