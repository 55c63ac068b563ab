#include "cli/progress.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"

void cli_progress_init(cli_progress *p, const char *verb)
{
    p->verb = verb;
    p->drawn = 0;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
}

void cli_progress_files(const files_progress *fp, int final, void *ud)
{
    cli_progress *p = ud;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double secs = (double)(now.tv_sec - p->start.tv_sec) + (now.tv_nsec - p->start.tv_nsec) / 1e9;
    uint64_t moved = fp->bytes_read ? fp->bytes_read : fp->bytes;
    char *done = ob_human_bytes(fp->bytes);
    char *rate = ob_human_bytes(secs > 0.5 ? (uint64_t)((double)moved / secs) : 0);
    char *added = ob_human_bytes(fp->bytes_added);
    /* \033[K clears what a longer previous line left behind. */
    fprintf(stderr, "\r[%d:%02d] %s: %llu files, %llu dirs, %s, %s/s, %s added\033[K",
            (int)secs / 60, (int)secs % 60, p->verb, (unsigned long long)fp->files,
            (unsigned long long)fp->dirs, done, rate, added);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    p->drawn = !final;
    free(done);
    free(rate);
    free(added);
}
