/*
 * progress.h — one status line on stderr, redrawn in place, for long
 * operations on a terminal:
 *
 *   [0:12] restore [########------------]  41%  110 MiB / 266 MiB, 812 files, 35 MiB/s, ETA 0:04
 *   [0:05] backup: 1204 files, 31 dirs, 220 MiB, 48 MiB/s, 3.1 MiB added
 *
 * With a known total (restore, verify, check --read-data) it draws a bar,
 * the percentage and an ETA; without one (a backup reads what it finds) it
 * shows counts and the rate.  The CLI decides whether to show it at all
 * (cli_progress_enabled: a TTY, not --quiet/--json/--no-progress); the
 * sources only report numbers.  Redraws are limited to ten a second.
 */
#ifndef OB_PROGRESS_H
#define OB_PROGRESS_H

#include <stdint.h>
#include <time.h>

#include "sources/files.h"

typedef struct cli_progress {
    const char *verb;           /* "backup", "restore" */
    struct timespec start, last;
    int drawn;
    uint64_t total_bytes;       /* 0: unknown */
    uint64_t total_files;       /* 0: unknown */
} cli_progress;

void cli_progress_init(cli_progress *p, const char *verb);
/* files_progress_cb; ud is a cli_progress. */
void cli_progress_files(const files_progress *fp, int final, void *ud);
/* The same line for callers counting bytes and items themselves. */
void cli_progress_update(cli_progress *p, uint64_t bytes, uint64_t items, const char *unit,
                         int final);

/* A phase of an operation without byte counts ("prune: repacking 3
 * packs"): the same line, with the elapsed time. */
void cli_progress_phase(cli_progress *p, const char *msg, int final);

#endif
