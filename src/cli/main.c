/*
 * main.c — opsbackup's entry point: global options, then one command.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"

const cli_command cli_commands[] = {
    {"init", cmd_init, "create an encrypted repository",
     "init [-r REPO] [--new-password-file FILE] [--kdf-n N]"},
    {"key", cmd_key, "manage key slots (passwords) of a repository",
     "key list | add | passwd | remove ID  [--new-password-file FILE] [--kdf-n N]"},
    {"backup", cmd_backup, "back up files, config files or a PostgreSQL database",
     "backup files|config [--set NAME] [--tag K=V]... [--exclude PATTERN]... [--time TIME] "
     "[--force] PATH...\n"
     "       opsbackup backup db [--logical] [--set NAME] [--tag K=V]... [--dbname CONNINFO]\n"
     "                           [--dump-command 'CMD'] [--time TIME]"},
    {"snapshots", cmd_snapshots, "list snapshots",
     "snapshots [--set NAME] [--kind files|db|db-physical|config] [--json]"},
    {"ls", cmd_ls, "list the entries of a snapshot", "ls [-l] [--json] SNAPSHOT [PATH]"},
    {"diff", cmd_diff, "show what changed between two snapshots",
     "diff [--json] SNAPSHOT1 SNAPSHOT2"},
    {"restore", cmd_restore, "restore files, config files or a database",
     "restore files|config SNAPSHOT --target DIR [--set NAME] [--include PATTERN]... "
     "[--delete] [--dry-run]\n"
     "       opsbackup restore db SNAPSHOT [--set NAME] [--dbname CONNINFO]\n"
     "                            (--target-db NAME | --replace) [--jobs N] [--roles]\n"
     "                            [--restore-command 'CMD']"},
    {"verify", cmd_verify, "prove a backup restorable",
     "verify db [SNAPSHOT] [--set NAME] [--dbname CONNINFO] [--check-sql SQL]... [--json]\n"
     "       opsbackup verify files [SNAPSHOT] [--set NAME] [--json]"},
    {"check", cmd_check, "verify the repository",
     "check [--read-data | --read-data-subset PCT] [--json]"},
    {"unlock", cmd_unlock, "remove stale locks left by crashed processes", "unlock"},
    {NULL, NULL, NULL, NULL},
};

const cli_command *cli_find_command(const char *name)
{
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: opsbackup [global options] COMMAND [options] [args]\n\n"
            "Back up and restore a PostgreSQL-backed application: database, files, config.\n\n"
            "Commands:\n");
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\nGlobal options:\n"
               "  -c, --config FILE      config file (default $OPSBACKUP_CONFIG)\n"
               "  -r, --repo URL         repository: /abs/path, file:///abs/path,\n"
               "                         s3://bucket/prefix or a [repo.NAME] of the config\n"
               "                         (default $OPSBACKUP_REPOSITORY)\n"
               "  --password-file FILE   read the repository password from FILE; also\n"
               "                         $OPSBACKUP_PASSWORD_FILE, $OPSBACKUP_PASSWORD_COMMAND,\n"
               "                         $OPSBACKUP_PASSWORD, or a prompt on the terminal\n"
               "  --json                 machine-readable output\n"
               "  -q, --quiet / -v, --verbose\n"
               "  --no-progress          never draw progress (only shown on a terminal)\n"
               "  --version, --help, COMMAND --help\n\n"
               "Exit codes: 0 success, 1 failure, 2 usage or config error, 3 a check found a "
               "problem.\n");
}

int main(int argc, char **argv)
{
    /* Chunks are 0.5-8 MiB: above glibc's default mmap threshold each one
     * would be a fresh mmap, page-faulted in and unmapped again.  Keep them
     * in the heap instead. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    cli_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.prog = argv[0];
    ctx.config = getenv("OPSBACKUP_CONFIG");
    /* Global options before the command. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0) {
            printf("opsbackup %s\n", OPSBACKUP_VERSION);
            return CLI_OK;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            ctx.json = 1;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            ctx.quiet = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            ctx.verbose++;
        } else if (strcmp(a, "--no-progress") == 0) {
            ctx.no_progress = 1;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            ctx.config = argv[++i];
        } else if ((strcmp(a, "-r") == 0 || strcmp(a, "--repo") == 0) && i + 1 < argc) {
            ctx.repo = argv[++i];
        } else if (strcmp(a, "--password-file") == 0 && i + 1 < argc) {
            ctx.password_file = argv[++i];
        } else if (strncmp(a, "--repo=", 7) == 0) {
            ctx.repo = a + 7;
        } else if (strncmp(a, "--config=", 9) == 0) {
            ctx.config = a + 9;
        } else if (strncmp(a, "--password-file=", 16) == 0) {
            ctx.password_file = a + 16;
        } else {
            fprintf(stderr, "opsbackup: unknown global option %s\n", a);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        const cli_command *c = i + 1 < argc ? cli_find_command(argv[i + 1]) : NULL;
        if (c)
            printf("usage: opsbackup %s\n", c->usage);
        else
            usage(stdout);
        return CLI_OK;
    }
    const cli_command *cmd = cli_find_command(argv[i]);
    if (!cmd) {
        fprintf(stderr, "opsbackup: unknown command '%s'\n", argv[i]);
        usage(stderr);
        return CLI_USAGE;
    }
    if (ctx.verbose)
        ob_log_set_level(ctx.verbose > 1 ? OB_LOG_DEBUG : OB_LOG_INFO);
    if (ctx.quiet)
        ob_log_set_level(OB_LOG_ERROR);
    /* Before any thread: the HTTP library of the S3 driver. */
    ob_err err = OB_ERR_INIT;
    if (storage_global_init(&err) < 0)
        return cli_fail(&ctx, &err);
    int rc = cmd->run(&ctx, argc - i, argv + i);
    storage_global_cleanup();
    return rc;
}
