/*
 * progress.h — one status line on stderr, redrawn in place, for long
 * operations on a terminal.  The CLI decides whether to show it
 * (cli_progress_enabled); the sources only report numbers.
 */
#ifndef OB_PROGRESS_H
#define OB_PROGRESS_H

#include <time.h>

#include "sources/files.h"

typedef struct cli_progress {
    const char *verb;           /* "backup", "restore" */
    struct timespec start;
    int drawn;
} cli_progress;

void cli_progress_init(cli_progress *p, const char *verb);
/* files_progress_cb; ud is a cli_progress. */
void cli_progress_files(const files_progress *fp, int final, void *ud);

#endif
