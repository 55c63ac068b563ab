/*
 * step.h — one step of a job (backup, copy, forget, verify, restore), run
 * as a child process of opsbackup itself with --json.
 *
 * Why a child and not a function call: each step is exactly the command
 * an operator could type, with its own option parsing, repository
 * locking, memory and exit code; a crash or leak in one step cannot take
 * the job runner (or the daemon) down with it; and killing a step is
 * killing a process, which the repository is built to survive.  The cost,
 * one fork+exec per step, is nothing next to a backup.
 *
 * The child's standard input is /dev/null (no prompts: passwords come from
 * password files or the environment), its stdout is parsed as JSON, its
 * stderr is kept for the error message.
 *
 * Ownership: step_result holds heap data freed by step_result_free.
 */
#ifndef OB_STEP_H
#define OB_STEP_H

#include <jansson.h>

#include "core/err.h"

typedef struct step_result {
    int code;           /* exit status, or 128 + signal number */
    double seconds;     /* wall time */
    json_t *json;       /* what it printed on stdout, or NULL if not JSON */
    char *stderr_text;  /* its messages (last 64 KiB), "" if none */
} step_result;

/* Run our own executable with args (NULL-terminated, without argv[0]) and
 * env_add ("K=V" additions, may be NULL).  Fails only when the child
 * could not be started or waited for; a child that fails is r->code != 0. */
int step_run(char *const *args, char *const *env_add, step_result *r, ob_err *err);
void step_result_free(step_result *r);

/* Building a step's arguments: append a copy of s to the NULL-terminated
 * vector *v of *n strings; free it (and its strings) with step_argv_free. */
void step_argv_push(char ***v, size_t *n, const char *s);
void step_argv_free(char **v, size_t n);

/* The line of a failed step's stderr that says why: the last line that
 * starts with "opsbackup: error: " or "error: " (without it), else the last non-empty line, else
 * "exit status N".  Caller frees. */
char *step_error(const step_result *r);

#endif
