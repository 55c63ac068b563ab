/*
 * cmd_status.c — `status` and `metrics`: what monitor.h collects, as a
 * table (or --json) with a Nagios-style exit code, and as Prometheus text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/monitor.h"
#include "cli/report.h"
#include "core/util.h"
#include <string.h>

static int collect(cli_ctx *ctx, const char *name, int argc, char **argv, json_t **doc)
{
    const cli_command *cmd = cli_find_command(name);
    int i = cli_parse(ctx, cmd, argc, argv, NULL, "", NULL, NULL);
    if (i < 0)
        return i == -2 ? -CLI_OK - 1 : CLI_USAGE;
    if (i != argc)
        return cli_usage(cmd, "%s takes no arguments", name);
    ob_err err = OB_ERR_INIT;
    if (monitor_collect(ctx, time(NULL), 1, doc, &err) < 0)
        return cli_fail(ctx, &err);
    return CLI_OK;
}

int cmd_status(cli_ctx *ctx, int argc, char **argv)
{
    json_t *doc = NULL;
    int rc = collect(ctx, "status", argc, argv, &doc);
    if (rc < 0)
        return CLI_OK; /* --help */
    if (rc != CLI_OK)
        return rc;
    int ok = json_is_true(json_object_get(doc, "ok"));
    if (ctx->json)
        cli_print_json(doc);
    else {
        monitor_print_status(stdout, doc);
        json_decref(doc);
    }
    return ok ? CLI_OK : CLI_PROBLEM;
}

int cmd_metrics(cli_ctx *ctx, int argc, char **argv)
{
    json_t *doc = NULL;
    int rc = collect(ctx, "metrics", argc, argv, &doc);
    if (rc < 0)
        return CLI_OK;
    if (rc != CLI_OK)
        return rc;
    char *text = monitor_metrics_text(doc);
    fputs(text, stdout);
    free(text);
    json_decref(doc);
    return CLI_OK;
}

enum { OPT_HTML = 256 };

static int report_opt(int opt, const char *arg, void *ud)
{
    if (opt != OPT_HTML)
        return -1;
    *(const char **)ud = arg;
    return 0;
}

int cmd_report(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"html", required_argument, NULL, OPT_HTML},
                                         {0, 0, 0, 0}};
    const cli_command *cmd = cli_find_command("report");
    const char *file = NULL;
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", report_opt, &file);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i != argc || !file)
        return cli_usage(cmd, "report needs --html FILE (- for standard output)");
    ob_err err = OB_ERR_INIT;
    json_t *doc;
    if (monitor_collect(ctx, time(NULL), 1, &doc, &err) < 0)
        return cli_fail(ctx, &err);
    char *html = report_html(doc);
    int ok = json_is_true(json_object_get(doc, "ok"));
    json_decref(doc);
    int rc = CLI_OK;
    if (strcmp(file, "-") == 0) {
        fputs(html, stdout);
    } else if (ob_write_file_atomic(file, html, strlen(html), 0, NULL, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else if (!ctx->quiet) {
        printf("wrote %s (%s)\n", file, ok ? "all jobs healthy" : "problems found");
    }
    free(html);
    return rc;
}
