/*
 * proc.h — child processes (pg_dump, pg_restore, hooks) with pipes.
 *
 * A child's stdout and/or stdin can be pipes to us; its stderr always goes
 * to an anonymous in-memory file (memfd) so we can quote the child's own
 * error text in ours without a reader thread and without deadlocking when
 * it writes a lot.  Secrets go to children through the environment
 * (env_add), never through argv, which every user can read in /proc.
 *
 * Ownership: proc_start returns a proc the caller frees with proc_free
 * (which kills and reaps a child still running).
 */
#ifndef OB_PROC_H
#define OB_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

typedef struct proc proc;

typedef struct proc_opts {
    char *const *argv;       /* argv[0] is looked up in PATH */
    char *const *env_add;    /* "K=V" entries added to our environment; may be NULL */
    int pipe_stdin;          /* give us a pipe to the child's stdin (else /dev/null) */
    int pipe_stdout;         /* give us a pipe from the child's stdout (else it joins the captured stderr) */
    int stdin_fd;            /* > 0 and no pipe_stdin: the child's stdin is this file of ours
                              * (it stays ours; 0, our own stdin, is never handed on) */
} proc_opts;

int proc_start(const proc_opts *o, proc **out, ob_err *err);
pid_t proc_pid(const proc *p);
int proc_stdin(const proc *p);    /* -1 if not piped or closed */
int proc_stdout(const proc *p);   /* -1 if not piped */
void proc_close_stdin(proc *p);   /* signal EOF to the child */
/* Wait for exit.  *code: exit status, or 128 + signal number. */
int proc_wait(proc *p, int *code, ob_err *err);
/* Wait until the child has exited, without reaping it: its pid stays its
 * own (no other process can get it) until proc_wait, so whoever may still
 * signal it can stop doing so first.  Closes its stdin. */
void proc_wait_exited(proc *p);
/* Wait, and fail unless the child exited 0: the error says
 * "WHAT failed (exit status N): <its stderr>". */
int proc_wait_ok(proc *p, const char *what, ob_err *err);
/* What the child wrote to stderr (last 64 KiB, trimmed); "" if nothing.
 * Valid after proc_wait until proc_free. */
const char *proc_stderr(proc *p);
void proc_free(proc *p);

/* Split a command line into words like a shell would for quoting ('…',
 * "…", backslash) but without any expansion.  *argv is NULL-terminated;
 * free with proc_argv_free. */
int proc_split(const char *cmd, char ***argv, size_t *argc, ob_err *err);
void proc_argv_free(char **argv);

/* Run a command to completion, feeding nothing; its stdout joins the
 * captured stderr.  *code and *stderr_text (caller frees) may be NULL. */
int proc_run(char *const *argv, char *const *env_add, int *code, char **stderr_text,
             ob_err *err);
/* proc_run that fails unless the command exits 0 (see proc_wait_ok). */
int proc_run_ok(char *const *argv, char *const *env_add, const char *what, ob_err *err);

#endif
