#include "cli/cli.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "repo/lock.h"
#include "sources/pg_conn.h"
#include "sources/pq_lib.h"

enum {
    GOPT_CONFIG = 1000,
    GOPT_REPO,
    GOPT_JSON,
    GOPT_QUIET,
    GOPT_VERBOSE,
    GOPT_NO_PROGRESS,
    GOPT_PASSWORD_FILE,
    GOPT_KDF_N,
    GOPT_HELP,
};

static const struct option global_opts[] = {
    {"config", required_argument, NULL, GOPT_CONFIG},
    {"repo", required_argument, NULL, GOPT_REPO},
    {"json", no_argument, NULL, GOPT_JSON},
    {"quiet", no_argument, NULL, GOPT_QUIET},
    {"verbose", no_argument, NULL, GOPT_VERBOSE},
    {"no-progress", no_argument, NULL, GOPT_NO_PROGRESS},
    {"password-file", required_argument, NULL, GOPT_PASSWORD_FILE},
    {"kdf-n", required_argument, NULL, GOPT_KDF_N},
    {"help", no_argument, NULL, GOPT_HELP},
    {0, 0, 0, 0},
};
#define NGLOBAL (sizeof global_opts / sizeof global_opts[0]) /* with its terminator */

int cli_usage(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("opsbackup: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "usage: opsbackup %s\n(see `opsbackup %s --help`)\n", cmd->usage,
                cmd->name);
    return CLI_USAGE;
}

int cli_parse(cli_ctx *ctx, const cli_command *cmd, int argc, char **argv,
              const struct option *cmd_opts, const char *cmd_short,
              int (*on_opt)(int opt, const char *arg, void *ud), void *ud)
{
    size_t ncmd = 0;
    while (cmd_opts && cmd_opts[ncmd].name) {
        /* A command option must not reuse a global short letter: getopt
         * would hand it to the global handler below. */
        if (strchr("crqvh", cmd_opts[ncmd].val) && !strchr(cmd_short ? cmd_short : "", cmd_opts[ncmd].val)) {
            fprintf(stderr, "opsbackup: internal error: option --%s clashes with a global option\n",
                    cmd_opts[ncmd].name);
            return -1;
        }
        ncmd++;
    }
    struct option *all = calloc(ncmd + NGLOBAL + 1, sizeof *all);
    if (!all)
        return -1;
    if (ncmd)
        memcpy(all, cmd_opts, ncmd * sizeof *all);
    memcpy(all + ncmd, global_opts, sizeof global_opts);
    char *shortopts = ob_xasprintf(":c:r:qvh%s", cmd_short ? cmd_short : "");
    optind = 1;
    opterr = 0;
    int rc = 0, c;
    while (rc == 0 && (c = getopt_long(argc, argv, shortopts, all, NULL)) != -1) {
        switch (c) {
        case 'c':
        case GOPT_CONFIG: ctx->config = optarg; break;
        case 'r':
        case GOPT_REPO: cli_add_repo(ctx, optarg); break;
        case GOPT_JSON: ctx->json = 1; break;
        case 'q':
        case GOPT_QUIET: ctx->quiet = 1; break;
        case 'v':
        case GOPT_VERBOSE: ctx->verbose++; break;
        case GOPT_NO_PROGRESS: ctx->no_progress = 1; break;
        case GOPT_PASSWORD_FILE: ctx->password_file = optarg; break;
        case GOPT_KDF_N: {
            char *end;
            long long n = strtoll(optarg, &end, 10);
            if (*end || n < 1024 || n > (1 << 20) || (n & (n - 1))) {
                cli_usage(cmd, "--kdf-n must be a power of two between 1024 and 1048576");
                rc = -1;
            } else {
                ctx->kdf_n = n;
            }
            break;
        }
        case 'h':
        case GOPT_HELP:
            printf("usage: opsbackup %s\n", cmd->usage);
            rc = -2;
            break;
        case ':':
            cli_usage(cmd, "option %s needs a value", argv[optind - 1]);
            rc = -1;
            break;
        case '?':
            cli_usage(cmd, "unknown option %s", argv[optind - 1]);
            rc = -1;
            break;
        default:
            if (!on_opt || on_opt(c, optarg, ud) < 0)
                rc = -1;
        }
    }
    free(all);
    free(shortopts);
    if (ctx->verbose)
        ob_log_set_level(ctx->verbose > 1 ? OB_LOG_DEBUG : OB_LOG_INFO);
    if (ctx->quiet)
        ob_log_set_level(OB_LOG_ERROR);
    return rc < 0 ? rc : optind;
}

int cli_load_config(cli_ctx *ctx, ob_err *err)
{
    if (ctx->cfg)
        return 0;
    const char *path = ctx->config;
    int explicit = path != NULL;
    if (!path)
        path = "/etc/opsbackup/opsbackup.conf";
    if (!explicit && access(path, F_OK) != 0)
        return 0; /* the default config file is optional */
    return config_load(path, &ctx->cfg, err);
}

/*
 * The storage settings of a [repo.NAME] section (CLI.md): endpoint, region,
 * path-style, access-key-id, secret-access-key, session-token, ca-file.
 * The strings stay the config's.  Unset keys are left for the driver to
 * take from the URL or the environment.  A secret in a file others can
 * read is refused: anyone on the machine could use the bucket.
 */
static int cli_storage_opts(const config *cfg, const config_section *s, storage_opts *o,
                            ob_err *err)
{
    o->endpoint = config_get(s, "endpoint");
    o->region = config_get(s, "region");
    o->access_key_id = config_get(s, "access-key-id");
    o->secret_access_key = config_get(s, "secret-access-key");
    o->session_token = config_get(s, "session-token");
    o->ca_file = config_get(s, "ca-file");
    const config_entry *ps = config_entry_get(s, "path-style");
    if (ps) {
        if (strcmp(ps->value, "true") == 0)
            o->path_style = 1;
        else if (strcmp(ps->value, "false") == 0)
            o->path_style = 0;
        else
            return ob_err_set(err, OB_EUSAGE, "%s:%d: path-style must be true or false, not '%s'",
                              cfg->path, ps->line, ps->value);
    }
    if (o->secret_access_key || o->session_token) {
        /* The rule `config check` applies too (config_check.c). */
        struct stat st;
        if (stat(cfg->path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
            return ob_err_set(err, OB_EUSAGE,
                              "%s holds S3 credentials ([%s]) but is readable by %s: "
                              "chmod 600 %s",
                              cfg->path, s->name,
                              st.st_mode & S_IRWXO ? "everyone (world-readable)" : "its group",
                              cfg->path);
    }
    return 0;
}

const config_section *cli_default_repo_section(const cli_ctx *ctx)
{
    const config_section *only = NULL;
    int nrepos = 0;
    for (size_t i = 0; ctx->cfg && i < ctx->cfg->n; i++)
        if (strncmp(ctx->cfg->sections[i].name, "repo.", 5) == 0) {
            only = &ctx->cfg->sections[i];
            nrepos++;
        }
    return nrepos == 1 ? only : NULL;
}

int cli_open_storage(cli_ctx *ctx, int create, ob_err *err)
{
    const char *url = ctx->repo ? ctx->repo : getenv("OPSBACKUP_REPOSITORY");
    if (cli_load_config(ctx, err) < 0)
        return -1;
    if (!url || !*url) {
        const config_section *only = cli_default_repo_section(ctx);
        if (only)
            url = only->name + 5;
        else
            return ob_err_set(err, OB_EUSAGE,
                              "no repository given: use -r /path/to/repo (or a [repo.NAME] of "
                              "the config file), or set OPSBACKUP_REPOSITORY");
    }
    if (url[0] != '/' && !strstr(url, "://")) {
        char *sec = ob_xasprintf("repo.%s", url);
        const config_section *s = config_section_get(ctx->cfg, sec);
        free(sec);
        if (!s && ctx->cfg)
            return ob_err_set(err, OB_EUSAGE,
                              "repository '%s' is neither an absolute path nor a URL, and %s "
                              "has no [repo.%s] section",
                              url, ctx->cfg->path, url);
        if (!s) {
            char *cwd = getcwd(NULL, 0);
            ob_err_set(err, OB_EUSAGE,
                       "repository '%s' is neither an absolute path nor a URL, and no config "
                       "file was found to name it: give an absolute path (-r %s/%s) or a "
                       "[repo.%s] section in the config",
                       url, cwd ? cwd : ".", url, url);
            free(cwd);
            return -1;
        }
        const config_entry *e = config_entry_get(s, "url");
        if (!e)
            return ob_err_set(err, OB_EUSAGE, "%s:%d: [%s] has no url", ctx->cfg->path, s->line,
                              s->name);
        url = e->value;
        storage_opts opts = STORAGE_OPTS_INIT;
        if (cli_storage_opts(ctx->cfg, s, &opts, err) < 0)
            return -1;
        return storage_open_opts(url, &opts, create, &ctx->st, err);
    }
    return storage_open(url, create, &ctx->st, err);
}

int cli_open_repo(cli_ctx *ctx, ob_err *err)
{
    if (cli_one_repo(ctx, err) < 0)
        return -1;
    if (cli_open_storage(ctx, 0, err) < 0)
        return -1;
    char *pw = cli_password(ctx, "repository password", err);
    if (!pw)
        return -1;
    int rc = repo_open(ctx->st, pw, &ctx->r, err);
    cli_password_free(pw);
    return rc;
}

void cli_close_repo(cli_ctx *ctx)
{
    config_free(ctx->cfg);
    ctx->cfg = NULL;
    repo_close(ctx->r);
    ctx->r = NULL;
    if (ctx->st)
        storage_close(ctx->st);
    ctx->st = NULL;
}

void cli_kdf(const cli_ctx *ctx, repo_kdf_params *kdf)
{
    repo_kdf_default(kdf);
    if (!ctx->kdf_n)
        return;
    /* At or above the default N, p keeps the default's cost N * p: OWASP's
     * equivalents (2^14 p=5, 2^15 p=3, 2^16 p=2, 2^17 p=1).  Below it the
     * slot is meant to be cheap (a long random password, such as the WAL
     * archiver's, needs no stretching): p = 1. */
    uint64_t cost = kdf->n * kdf->p;
    uint64_t n = (uint64_t)ctx->kdf_n;
    kdf->p = n >= kdf->n ? (uint32_t)((cost + n - 1) / n) : 1;
    kdf->n = n;
}

int cli_fail(cli_ctx *ctx, ob_err *err)
{
    (void)ctx;
    ob_error("%s", ob_err_msg(err));
    int rc = err->code == OB_EUSAGE ? CLI_USAGE : CLI_FAIL;
    ob_err_clear(err);
    return rc;
}

int cli_progress_enabled(const cli_ctx *ctx)
{
    return !ctx->quiet && !ctx->json && !ctx->no_progress && isatty(STDERR_FILENO);
}

void cli_print_json(void *json)
{
    json_t *j = json;
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

void cli_strv_push(char ***v, size_t *n, const char *s)
{
    *v = ob_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = (char *)s;
}

int cli_add_tag(const cli_command *cmd, char ***tags, size_t *ntags, const char *arg)
{
    if (!strchr(arg, '=') || arg[0] == '=') {
        cli_usage(cmd, "--tag wants KEY=VALUE, got '%s'", arg);
        return -1;
    }
    cli_strv_push(tags, ntags, arg);
    return 0;
}

char *cli_scrub_conninfo(char *arg)
{
    char *copy = pg_conninfo_from_arg(arg);
    /* Without libpq the command fails as soon as it connects, with the
     * reason; until then there is nothing to parse the string with. */
    ob_err lerr = OB_ERR_INIT;
    if (pq_lib_load(&lerr) < 0) {
        ob_err_clear(&lerr);
        return copy;
    }
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(copy, &msg);
    PQfreemem(msg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "password") != 0 || !o->val || !*o->val)
            continue;
        /* The password appears verbatim (or percent-encoded in a URI, in
         * which case its encoded form is what we find and blank). */
        size_t n = strlen(o->val);
        for (char *p = strstr(arg, o->val); p; p = strstr(p + n, o->val))
            memset(p, 'x', n);
        for (char *p = strstr(arg, "password="); p; p = strstr(p + 9, "password=")) {
            char *v = p + 9;
            while (*v && *v != ' ' && *v != '&')
                *v++ = 'x';
        }
        char *at = strchr(arg, '@'), *colon = NULL;
        if (at && strstr(arg, "://")) {
            for (char *q = strstr(arg, "://") + 3; q < at; q++)
                if (*q == ':')
                    colon = q;
            for (char *q = colon ? colon + 1 : at; q < at; q++)
                *q = 'x';
        }
    }
    PQconninfoFree(opts);
    return copy;
}

int cli_open_repo_locked(cli_ctx *ctx, int exclusive, struct repo_lock **lock)
{
    ob_err err = OB_ERR_INIT;
    *lock = NULL;
    if (cli_open_repo(ctx, &err) < 0 || repo_lock_acquire(ctx->r, exclusive, lock, &err) < 0) {
        int rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        return rc;
    }
    return 0;
}

int cli_time_option(const cli_command *cmd, const char *value, int64_t *out)
{
    *out = 0;
    if (value && ob_time_parse(value, out, NULL) < 0)
        return cli_usage(cmd, "--time '%s' is not 'YYYY-MM-DD HH:MM:SS' or RFC 3339", value);
    return 0;
}

/* Does option argument `a` (e.g. "--set", "-e") take a separate value? */
static int takes_value(const char *a, const struct option *const *tables)
{
    if (strchr(a, '='))
        return 0;
    for (size_t t = 0; tables[t]; t++)
        for (const struct option *o = tables[t]; o->name; o++) {
            int long_hit = a[1] == '-' && strcmp(a + 2, o->name) == 0;
            int short_hit = a[1] != '-' && a[2] == '\0' && a[1] == o->val;
            if ((long_hit || short_hit) && o->has_arg == required_argument)
                return 1;
        }
    return 0;
}

int cli_kind_is(int argc, char **argv, const char *word, const struct option *const *tables)
{
    const struct option *const globals[] = {global_opts, NULL};
    static const struct option global_short[] = {
        {"c", required_argument, NULL, 'c'}, {"r", required_argument, NULL, 'r'}, {0, 0, 0, 0}};
    const struct option *const gshort[] = {global_short, NULL};
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        if (strcmp(a, "--") == 0)
            return k + 1 < argc && strcmp(argv[k + 1], word) == 0;
        if (a[0] != '-' || a[1] == '\0')
            return strcmp(a, word) == 0;
        if (takes_value(a, tables) || takes_value(a, globals) || takes_value(a, gshort))
            k++;
    }
    return 0;
}
