/*
 * cli.h — what the command implementations share: global options, opening
 * the repository, passwords, output helpers and exit codes.
 *
 * Exit codes (documented in the man page): 0 success, 1 failure, 2 usage
 * or configuration error, 3 a check found a problem.
 */
#ifndef OB_CLI_H
#define OB_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

#include "core/config.h"
#include "core/err.h"
#include "repo/repo.h"
#include "storage/storage.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_PROBLEM = 3 };

typedef struct cli_ctx {
    const char *prog;
    const char *config;
    const char *repo;           /* -r: name or URL (the first -r) */
    const char **more_repos;    /* further -r (backup and archive-push only) */
    size_t nmore_repos;
    const char *password_file;
    int json, quiet, verbose, no_progress;
    int64_t kdf_n;              /* --kdf-n: scrypt N for new key slots (0 = default) */
    int multi_repo_ok;          /* this command accepts several -r */
    config *cfg;                /* loaded on first use (cli_load_config) */
    /* opened by cli_open_repo, closed by cli_close_repo */
    storage *st;
    repo *r;
} cli_ctx;

typedef struct cli_command {
    const char *name;
    int (*run)(cli_ctx *ctx, int argc, char **argv);
    const char *summary;
    const char *usage;          /* full --help text after "usage: opsbackup " */
} cli_command;

/* Parse options of a command: cmd_opts (may be NULL) plus the global ones,
 * which are accepted after the command name too.  on_opt gets each
 * command option (its `val`) and returns 0, or -1 for a usage error (after
 * printing why).  Returns the index of the first operand, or -1 on a usage
 * error (message printed), or -2 when --help was shown. */
int cli_parse(cli_ctx *ctx, const cli_command *cmd, int argc, char **argv,
              const struct option *cmd_opts, const char *cmd_short,
              int (*on_opt)(int opt, const char *arg, void *ud), void *ud);

/* Load -c FILE, or $OPSBACKUP_CONFIG, or /etc/opsbackup/opsbackup.conf if
 * it exists (only that default may be missing). */
int cli_load_config(cli_ctx *ctx, ob_err *err);

/* Open the storage and repository named by -r (or $OPSBACKUP_REPOSITORY),
 * asking for the password. */
int cli_open_repo(cli_ctx *ctx, ob_err *err);
int cli_open_storage(cli_ctx *ctx, int create, ob_err *err);
void cli_close_repo(cli_ctx *ctx);
/* cli_open_repo, then take a lock (shared unless exclusive).  On failure
 * the error is reported, the repository closed, and the exit code returned;
 * 0 on success. */
struct repo_lock;
int cli_open_repo_locked(cli_ctx *ctx, int exclusive, struct repo_lock **lock);
/* --time VALUE -> seconds (0 when value is NULL); usage error code if bad. */
int cli_time_option(const cli_command *cmd, const char *value, int64_t *out);

/* The repository password from the first source that has one (CLI.md);
 * purpose is shown in a TTY prompt.  Caller frees with cli_password_free. */
char *cli_password(cli_ctx *ctx, const char *purpose, ob_err *err);
/* A new password (init, key add/passwd): --new-password-file, then
 * $OPSBACKUP_NEW_PASSWORD_FILE, then a TTY prompt asked twice.  For init
 * the ordinary password sources are used first. */
char *cli_new_password(cli_ctx *ctx, const char *new_password_file, int use_primary, ob_err *err);
void cli_password_free(char *pw);
/* The config's only [repo.NAME] (the default repository without -r and
 * $OPSBACKUP_REPOSITORY), or NULL when it has none or several. */
const config_section *cli_default_repo_section(const cli_ctx *ctx);
/* The password-file key of the [repo.NAME] that -r names (or of the
 * default one), or NULL. */
const char *cli_repo_password_file(const cli_ctx *ctx);

void cli_kdf(const cli_ctx *ctx, repo_kdf_params *kdf);

/* Print an error for the user, map it to an exit code, and clear it. */
int cli_fail(cli_ctx *ctx, ob_err *err);
int cli_usage(const cli_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Progress shown on stderr only when it is a TTY and not --quiet/--json/--no-progress. */
int cli_progress_enabled(const cli_ctx *ctx);

/* Dump JSON (a jansson json_t*, stolen) to stdout with a newline. */
void cli_print_json(void *json);

/* Commands. */
int cmd_init(cli_ctx *, int, char **);
int cmd_key(cli_ctx *, int, char **);
int cmd_backup(cli_ctx *, int, char **);
int cmd_snapshots(cli_ctx *, int, char **);
int cmd_ls(cli_ctx *, int, char **);
int cmd_diff(cli_ctx *, int, char **);
int cmd_restore(cli_ctx *, int, char **);
int cmd_check(cli_ctx *, int, char **);
int cmd_unlock(cli_ctx *, int, char **);
int cmd_verify(cli_ctx *, int, char **);
int cmd_backup_db(cli_ctx *, int, char **);
int cmd_restore_db(cli_ctx *, int, char **);
int cmd_archive_push(cli_ctx *, int, char **);
int cmd_archive_get(cli_ctx *, int, char **);
int cmd_copy(cli_ctx *, int, char **);
int cmd_forget(cli_ctx *, int, char **);
int cmd_prune(cli_ctx *, int, char **);
int cmd_repair(cli_ctx *, int, char **);
int cmd_config(cli_ctx *, int, char **);
int cmd_run(cli_ctx *, int, char **);
int cmd_status(cli_ctx *, int, char **);
int cmd_metrics(cli_ctx *, int, char **);
int cmd_daemon(cli_ctx *, int, char **);
int cmd_report(cli_ctx *, int, char **);
int cmd_notify(cli_ctx *, int, char **);
int cmd_dr(cli_ctx *, int, char **);

/* Append a borrowed string to a growing argv-style array. */
void cli_strv_push(char ***v, size_t *n, const char *s);
/* --tag K=V: check the form and append; -1 (after a usage message) if bad. */
int cli_add_tag(const cli_command *cmd, char ***tags, size_t *ntags, const char *arg);

/* A conninfo/URI or a bare database name given on our command line: return
 * it as a connection string (pg_conninfo_from_arg), and overwrite
 * any password in the original (argv) so /proc/PID/cmdline stops showing
 * it.  Passwords belong in PGPASSWORD or ~/.pgpass; this limits the damage. */
char *cli_scrub_conninfo(char *arg);

/* Is the kind operand (the first non-option argument) `word`?  tables
 * (NULL-terminated) are the command's option tables, consulted with the
 * global ones to know which options consume the next argument. */
int cli_kind_is(int argc, char **argv, const char *word, const struct option *const *tables);
extern const struct option cli_db_opts[]; /* options of backup/restore/verify db */

extern const cli_command cli_commands[];
const cli_command *cli_find_command(const char *name);

/* Every repository the command works on (cli_repos.c): -r, else each
 * [repo.NAME] of the config in file order, else $OPSBACKUP_REPOSITORY. */
typedef struct cli_repos {
    repo **r;
    storage **st;
    size_t n;
} cli_repos;
int cli_repos_open(cli_ctx *ctx, cli_repos *out, ob_err *err);
/* After a backup saved snapshot s in the first repository: copy it (and,
 * for physical backups, the WAL archive) to every further -r repository,
 * printing one line per repository (or adding "copies" to json).  Returns
 * the number of repositories that failed (each reported). */
struct snapshot;
size_t cli_replicate(cli_ctx *ctx, const struct snapshot *s, json_t *json);
/* -r NAME|URL: the first is ctx->repo, later ones more_repos. */
void cli_add_repo(cli_ctx *ctx, const char *repo);
/* Refuse several -r for commands that work on one repository. */
int cli_one_repo(cli_ctx *ctx, ob_err *err);
/* One repository by name or URL (NULL: the default), with its password
 * from password_file if given, else as cli_password finds it (which
 * includes the [repo.NAME] password-file key).  Leaves ctx->st / ctx->r
 * alone. */
int cli_repo_open_one(cli_ctx *ctx, const char *name, const char *password_file, storage **st,
                      repo **r, ob_err *err);
void cli_repos_close(cli_repos *rs);
/* Bytes stored in repository `name` (a [repo.NAME] or URL): the sum of its
 * object sizes, by listing; needs no password. */
int cli_repo_size(cli_ctx *ctx, const char *name, uint64_t *bytes, ob_err *err);

#endif
