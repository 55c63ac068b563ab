#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"

#define PROC_STDERR_KEEP (64 * 1024)

struct proc {
    pid_t pid;
    int in_fd, out_fd, err_fd;
    int reaped;
    char *err_text;
};

extern char **environ;

/* Build environ + additions (an addition replaces a same-named variable). */
static char **merged_env(char *const *add)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (add && add[k])
        k++;
    char **env = ob_xcalloc(n + k + 1, sizeof *env);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int replaced = 0;
        for (size_t j = 0; j < k && !replaced; j++) {
            size_t kl = strcspn(add[j], "=");
            replaced = strncmp(environ[i], add[j], kl) == 0 && environ[i][kl] == '=';
        }
        if (!replaced)
            env[o++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        env[o++] = add[j];
    env[o] = NULL;
    return env;
}

int proc_start(const proc_opts *o, proc **out, ob_err *err)
{
    *out = NULL;
    int in[2] = {-1, -1}, outp[2] = {-1, -1};
    int errfd = memfd_create("opsbackup-child-stderr", MFD_CLOEXEC);
    if (errfd < 0)
        return ob_err_errno(err, errno, "creating a buffer for %s's messages", o->argv[0]);
    if ((o->pipe_stdin && pipe2(in, O_CLOEXEC) < 0) ||
        (o->pipe_stdout && pipe2(outp, O_CLOEXEC) < 0)) {
        int e = errno;
        close(errfd);
        if (in[0] >= 0) {
            close(in[0]);
            close(in[1]);
        }
        return ob_err_errno(err, e, "creating pipes for %s", o->argv[0]);
    }
    /* Dumps and restores stream hundreds of MB through these pipes; with the
     * default 64 KiB each side wakes the other every 64 KiB, and those
     * context switches cost more than the copies on a 2-core VM (perf of
     * `backup db`).  1 MiB is the unprivileged limit (pipe-max-size); if the
     * kernel refuses, the default size only costs speed. */
    if (o->pipe_stdin)
        (void)fcntl(in[1], F_SETPIPE_SZ, 1 << 20);
    if (o->pipe_stdout)
        (void)fcntl(outp[0], F_SETPIPE_SZ, 1 << 20);
    char **env = merged_env(o->env_add);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(env);
        close(errfd);
        for (int i = 0; i < 2; i++) {
            if (in[i] >= 0)
                close(in[i]);
            if (outp[i] >= 0)
                close(outp[i]);
        }
        return ob_err_errno(err, e, "starting %s", o->argv[0]);
    }
    if (pid == 0) {
        /* Child: only async-signal-safe calls from here.  A program we
         * run gets the signal dispositions and mask it expects, not ours:
         * restore db blocks SIGINT/SIGTERM while pg_restore runs, and a
         * pg_restore that inherited the mask could not be stopped. */
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(o->pipe_stdin ? in[0] : o->stdin_fd > 0 ? o->stdin_fd : devnull, STDIN_FILENO);
        dup2(o->pipe_stdout ? outp[1] : errfd, STDOUT_FILENO);
        dup2(errfd, STDERR_FILENO);
        execvpe(o->argv[0], o->argv, env);
        const char msg[] = "cannot execute ";
        const char *why = strerror(errno);
        (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)!write(STDERR_FILENO, o->argv[0], strlen(o->argv[0]));
        (void)!write(STDERR_FILENO, ": ", 2);
        (void)!write(STDERR_FILENO, why, strlen(why));
        _exit(127);
    }
    free(env);
    if (in[0] >= 0)
        close(in[0]);
    if (outp[1] >= 0)
        close(outp[1]);
    proc *p = ob_xcalloc(1, sizeof *p);
    p->pid = pid;
    p->in_fd = in[1];
    p->out_fd = outp[0];
    p->err_fd = errfd;
    *out = p;
    return 0;
}

pid_t proc_pid(const proc *p) { return p->pid; }
int proc_stdin(const proc *p) { return p->in_fd; }
int proc_stdout(const proc *p) { return p->out_fd; }

void proc_close_stdin(proc *p)
{
    if (p->in_fd >= 0)
        close(p->in_fd);
    p->in_fd = -1;
}

static void read_stderr(proc *p)
{
    free(p->err_text);
    off_t size = lseek(p->err_fd, 0, SEEK_END);
    if (size < 0)
        size = 0;
    off_t from = size > PROC_STDERR_KEEP ? size - PROC_STDERR_KEEP : 0;
    size_t n = (size_t)(size - from);
    char *s = ob_xmalloc(n + 1);
    ssize_t k = pread(p->err_fd, s, n, from);
    n = k > 0 ? (size_t)k : 0;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        n--;
    s[n] = '\0';
    p->err_text = s;
}

void proc_wait_exited(proc *p)
{
    proc_close_stdin(p);
    siginfo_t info;
    while (!p->reaped && waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR)
        ;
}

int proc_wait(proc *p, int *code, ob_err *err)
{
    proc_close_stdin(p);
    int status = 0;
    while (!p->reaped) {
        if (waitpid(p->pid, &status, 0) < 0) {
            if (errno == EINTR)
                continue;
            return ob_err_errno(err, errno, "waiting for a child process");
        }
        p->reaped = 1;
    }
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    read_stderr(p);
    return 0;
}

int proc_wait_ok(proc *p, const char *what, ob_err *err)
{
    int code = 0;
    if (proc_wait(p, &code, err) < 0)
        return -1;
    if (code == 0)
        return 0;
    const char *msg = proc_stderr(p);
    return ob_err_set(err, OB_EFAIL, "%s failed (exit status %d)%s%s", what, code,
                      *msg ? ": " : "", msg);
}

const char *proc_stderr(proc *p)
{
    return p->err_text ? p->err_text : "";
}

void proc_free(proc *p)
{
    if (!p)
        return;
    proc_close_stdin(p);
    if (p->out_fd >= 0)
        close(p->out_fd);
    if (!p->reaped) {
        kill(p->pid, SIGTERM);
        int st;
        while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    close(p->err_fd);
    free(p->err_text);
    free(p);
}

int proc_split(const char *cmd, char ***argv_out, size_t *argc_out, ob_err *err)
{
    char **argv = NULL;
    size_t argc = 0;
    const char *s = cmd;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        if (!*s)
            break;
        ob_buf w = OB_BUF_INIT;
        ob_buf_reserve(&w, 16);
        while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
            if (*s == '\'') {
                const char *e = strchr(s + 1, '\'');
                if (!e)
                    goto unbalanced;
                ob_buf_append(&w, s + 1, (size_t)(e - s - 1));
                s = e + 1;
            } else if (*s == '"') {
                s++;
                while (*s && *s != '"') {
                    if (*s == '\\' && (s[1] == '"' || s[1] == '\\' || s[1] == '$' || s[1] == '`'))
                        s++;
                    ob_buf_putc(&w, (uint8_t)*s++);
                }
                if (*s != '"')
                    goto unbalanced;
                s++;
            } else if (*s == '\\' && s[1]) {
                ob_buf_putc(&w, (uint8_t)s[1]);
                s += 2;
            } else {
                ob_buf_putc(&w, (uint8_t)*s++);
            }
        }
        argv = ob_xrealloc(argv, (argc + 2) * sizeof *argv);
        argv[argc++] = (char *)ob_buf_steal(&w, NULL);
        argv[argc] = NULL;
        continue;
    unbalanced:
        ob_buf_free(&w);
        proc_argv_free(argv);
        return ob_err_set(err, OB_EUSAGE, "unbalanced quote in command: %s", cmd);
    }
    if (argc == 0)
        return ob_err_set(err, OB_EUSAGE, "empty command");
    *argv_out = argv;
    if (argc_out)
        *argc_out = argc;
    return 0;
}

void proc_argv_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

int proc_run(char *const *argv, char *const *env_add, int *code, char **stderr_text, ob_err *err)
{
    proc_opts o = {.argv = argv, .env_add = env_add};
    proc *p;
    if (proc_start(&o, &p, err) < 0)
        return -1;
    int rc = proc_wait(p, code, err);
    if (rc == 0 && stderr_text)
        *stderr_text = ob_xstrdup(proc_stderr(p));
    proc_free(p);
    return rc;
}

int proc_run_ok(char *const *argv, char *const *env_add, const char *what, ob_err *err)
{
    proc_opts o = {.argv = argv, .env_add = env_add};
    proc *p;
    if (proc_start(&o, &p, err) < 0)
        return -1;
    int rc = proc_wait_ok(p, what, err);
    proc_free(p);
    return rc;
}
