/*
 * cmd_notify.c — `opsbackup notify test [--json]`: send a test event to
 * every channel of the config's [notify] section, whatever its `on` says,
 * and print one line per channel, so an operator can check the setup
 * before a real failure depends on it.
 *
 * Exit codes: 0 every channel took the message, 1 at least one failed,
 * 2 no config, a bad [notify] section, or no channel in it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"
#include "jobs/notify.h"

typedef struct notify_test_out {
    cli_ctx *ctx;
    json_t *channels; /* --json: the per-channel results */
} notify_test_out;

static void notify_test_report(const char *channel, const char *target, const ob_err *err,
                               void *ud)
{
    notify_test_out *o = ud;
    if (o->ctx->json) {
        json_t *c = json_pack("{s:s, s:s, s:b}", "channel", channel, "target", target, "ok",
                              err == NULL);
        if (c && err)
            json_object_set_new(c, "error", json_string(ob_err_msg(err)));
        json_array_append_new(o->channels, c);
    } else if (err) {
        printf("%s (%s): failed: %s\n", channel, target, ob_err_msg(err));
    } else if (!o->ctx->quiet) {
        printf("%s (%s): ok\n", channel, target);
    }
    fflush(stdout);
}

int cmd_notify(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("notify");
    int i = cli_parse(ctx, cmd, argc, argv, NULL, "", NULL, NULL);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i >= argc || strcmp(argv[i], "test") != 0)
        return cli_usage(cmd, "the only notify subcommand is 'test'");
    if (i + 1 != argc)
        return cli_usage(cmd, "notify test takes no operands");

    ob_err err = OB_ERR_INIT;
    if (cli_load_config(ctx, &err) < 0) {
        /* A missing or unparsable config is a configuration error (2),
         * whatever errno said. */
        err.code = OB_EUSAGE;
        return cli_fail(ctx, &err);
    }
    if (!ctx->cfg) {
        fprintf(stderr, "opsbackup: no config file: give -c FILE or set OPSBACKUP_CONFIG "
                        "(or create /etc/opsbackup/opsbackup.conf) with a [notify] section\n");
        return CLI_USAGE;
    }
    notifier *n = NULL;
    if (notifier_from_config(ctx->cfg, &n, &err) < 0) {
        cli_close_repo(ctx); /* frees the config */
        return cli_fail(ctx, &err);
    }
    if (!n) {
        fprintf(stderr,
                "opsbackup: %s has no notification channel: set slack-webhook, webhook, or "
                "email-to and smtp-url in its [notify] section\n",
                ctx->cfg->path);
        cli_close_repo(ctx);
        return CLI_USAGE;
    }

    int64_t now;
    uint32_t ns;
    ob_time_now(&now, &ns);
    char *host = ob_hostname();
    char *summary = ob_xasprintf("This is a test notification sent by `opsbackup notify test` "
                                 "on %s.\nIf you can read it, this channel works.",
                                 host);
    json_t *details = json_pack("{s:b}", "test", 1);
    notify_event ev = {
        .job = "test",
        .host = host,
        .ok = 1,
        .summary = summary,
        .details = details,
        .started = now,
        .finished = now,
    };
    notify_test_out o = {ctx, ctx->json ? json_array() : NULL};
    size_t attempted = 0;
    size_t failed = notifier_send_report(n, &ev, notify_test_report, &o, &attempted);
    if (ctx->json)
        cli_print_json(json_pack("{s:o, s:I, s:I}", "channels", o.channels, "attempted",
                                 (json_int_t)attempted, "failed", (json_int_t)failed));
    else if (failed)
        fprintf(stderr, "opsbackup: %zu of %zu notification channel%s failed\n", failed,
                attempted, attempted == 1 ? "" : "s");
    json_decref(details);
    free(summary);
    free(host);
    notifier_free(n);
    cli_close_repo(ctx);
    return failed ? CLI_FAIL : CLI_OK;
}
