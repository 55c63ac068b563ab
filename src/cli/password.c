/*
 * password.c — where repository passwords come from (CLI.md): the first
 * of --password-file, $OPSBACKUP_PASSWORD_FILE, $OPSBACKUP_PASSWORD_COMMAND,
 * $OPSBACKUP_PASSWORD, or a prompt on the controlling terminal.  Never from
 * a command-line argument, so it does not show in `ps`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/buf.h"
#include "core/crypto.h"

/* Read all of fd; the password is the first line. */
static char *first_line_of_fd(int fd, ob_err *err, const char *what)
{
    ob_buf b = OB_BUF_INIT;
    char tmp[4096];
    for (;;) {
        ssize_t k = read(fd, tmp, sizeof tmp);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            ob_err_errno(err, errno, "reading %s", what);
            ob_wipe(b.data, b.cap);
            ob_buf_free(&b);
            ob_wipe(tmp, sizeof tmp);
            return NULL;
        }
        if (k == 0)
            break;
        ob_buf_append(&b, tmp, (size_t)k);
    }
    ob_wipe(tmp, sizeof tmp);
    char *s = (char *)ob_buf_steal(&b, NULL);
    s[strcspn(s, "\r\n")] = '\0';
    if (!*s) {
        free(s);
        ob_err_set(err, OB_EUSAGE, "%s is empty: no password", what);
        return NULL;
    }
    return s;
}

static char *from_file(const char *path, ob_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ob_err_errno(err, errno, "password file %s", path);
        err->code = OB_EUSAGE;
        return NULL;
    }
    /* Warned, not refused (existing setups keep working): anyone who can
     * read this file can read every backup. */
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IRWXG | S_IRWXO)))
        ob_warn("password file %s is readable by %s (mode %04o): chmod 600 %s", path,
                st.st_mode & S_IRWXO ? "others" : "its group", (unsigned)(st.st_mode & 07777),
                path);
    char *what = ob_xasprintf("password file %s", path);
    char *s = first_line_of_fd(fd, err, what);
    free(what);
    close(fd);
    return s;
}

static char *from_command(const char *cmd, ob_err *err)
{
    int p[2];
    if (pipe(p) < 0) {
        ob_err_errno(err, errno, "running OPSBACKUP_PASSWORD_COMMAND");
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        ob_err_errno(err, errno, "running OPSBACKUP_PASSWORD_COMMAND");
        return NULL;
    }
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char *s = first_line_of_fd(p[0], err, "the output of OPSBACKUP_PASSWORD_COMMAND");
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        cli_password_free(s);
        ob_err_set(err, OB_EUSAGE, "OPSBACKUP_PASSWORD_COMMAND failed (exit status %d)",
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return NULL;
    }
    return s;
}

static char *prompt_tty(const char *prompt, ob_err *err)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ob_err_set(err, OB_EUSAGE,
                   "no password: give --password-file, or set OPSBACKUP_PASSWORD_FILE, "
                   "OPSBACKUP_PASSWORD_COMMAND or OPSBACKUP_PASSWORD (no terminal to ask on)");
        return NULL;
    }
    struct termios old, noecho;
    int have_tc = tcgetattr(fd, &old) == 0;
    if (have_tc) {
        noecho = old;
        noecho.c_lflag &= ~(tcflag_t)ECHO;
        noecho.c_lflag |= ECHONL;
        tcsetattr(fd, TCSAFLUSH, &noecho);
    }
    if (write(fd, prompt, strlen(prompt)) < 0) { /* best effort */
    }
    ob_buf b = OB_BUF_INIT;
    char ch;
    for (;;) {
        ssize_t k = read(fd, &ch, 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || ch == '\n' || ch == '\r')
            break;
        ob_buf_putc(&b, (uint8_t)ch);
    }
    if (have_tc)
        tcsetattr(fd, TCSAFLUSH, &old);
    close(fd);
    char *s = (char *)ob_buf_steal(&b, NULL);
    if (!*s) {
        free(s);
        ob_err_set(err, OB_EUSAGE, "empty password");
        return NULL;
    }
    return s;
}

/* `password-file` of the [repo.NAME] that -r names, if any: repositories
 * of one config (a local one and an offsite copy) usually have different
 * passwords. */
const char *cli_repo_password_file(const cli_ctx *ctx)
{
    if (!ctx->cfg)
        return NULL;
    const char *env = getenv("OPSBACKUP_REPOSITORY");
    if (!ctx->repo && !(env && *env)) {
        /* The config's only repository is the default (cli_open_storage):
         * its password file too. */
        const config_section *only = cli_default_repo_section(ctx);
        return only ? config_get(only, "password-file") : NULL;
    }
    if (!ctx->repo || ctx->repo[0] == '/' || strstr(ctx->repo, "://"))
        return NULL;
    char *sec = ob_xasprintf("repo.%s", ctx->repo);
    const config_section *cs = config_section_get(ctx->cfg, sec);
    free(sec);
    return cs ? config_get(cs, "password-file") : NULL;
}

char *cli_password(cli_ctx *ctx, const char *purpose, ob_err *err)
{
    const char *v;
    if (ctx->password_file)
        return from_file(ctx->password_file, err);
    if ((v = cli_repo_password_file(ctx)))
        return from_file(v, err);
    if ((v = getenv("OPSBACKUP_PASSWORD_FILE")) && *v)
        return from_file(v, err);
    if ((v = getenv("OPSBACKUP_PASSWORD_COMMAND")) && *v)
        return from_command(v, err);
    if ((v = getenv("OPSBACKUP_PASSWORD")) && *v)
        return ob_xstrdup(v);
    char *prompt = ob_xasprintf("Enter %s: ", purpose);
    char *s = prompt_tty(prompt, err);
    free(prompt);
    return s;
}

char *cli_new_password(cli_ctx *ctx, const char *new_password_file, int use_primary, ob_err *err)
{
    const char *v;
    if (new_password_file)
        return from_file(new_password_file, err);
    if ((v = getenv("OPSBACKUP_NEW_PASSWORD_FILE")) && *v)
        return from_file(v, err);
    if (use_primary && (ctx->password_file || cli_repo_password_file(ctx) ||
                        ((v = getenv("OPSBACKUP_PASSWORD_FILE")) && *v) ||
                        ((v = getenv("OPSBACKUP_PASSWORD_COMMAND")) && *v) ||
                        ((v = getenv("OPSBACKUP_PASSWORD")) && *v)))
        return cli_password(ctx, "password", err);
    char *a = prompt_tty("Enter new repository password: ", err);
    if (!a)
        return NULL;
    char *b = prompt_tty("Enter it again: ", err);
    if (!b) {
        cli_password_free(a);
        return NULL;
    }
    if (strcmp(a, b) != 0) {
        cli_password_free(a);
        cli_password_free(b);
        ob_err_set(err, OB_EUSAGE, "the two passwords differ; nothing was changed");
        return NULL;
    }
    cli_password_free(b);
    return a;
}

void cli_password_free(char *pw)
{
    if (!pw)
        return;
    ob_wipe(pw, strlen(pw));
    free(pw);
}
