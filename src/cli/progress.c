/*
 * progress.c — the terminal status line (progress.h).
 */
#include "cli/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void cli_progress_init(cli_progress *p, const char *verb)
{
    memset(p, 0, sizeof *p);
    p->verb = verb;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
}

static double since(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Draw now?  Always for the final line; otherwise at most every 0.1 s, so
 * a restore of a million small files does not spend its time on stderr. */
static int due(cli_progress *p, int final, struct timespec *now, double *secs)
{
    clock_gettime(CLOCK_MONOTONIC, now);
    *secs = since(&p->start, now);
    if (!final && p->drawn && since(&p->last, now) < 0.1)
        return 0;
    p->last = *now;
    return 1;
}

static void draw(cli_progress *p, double secs, uint64_t bytes, uint64_t moved,
                 const char *counts, const char *extra, int final)
{
    char *done = ob_human_bytes(bytes);
    char *rate = ob_human_bytes(secs > 0.5 ? (uint64_t)((double)moved / secs) : 0);
    fprintf(stderr, "\r[%d:%02d] %s", (int)secs / 60, (int)secs % 60, p->verb);
    if (p->total_bytes) {
        double frac = (double)bytes / (double)p->total_bytes;
        if (frac > 1)
            frac = 1;
        char bar[21];
        int fill = (int)(frac * 20 + 0.5);
        for (int i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[20] = '\0';
        char *total = ob_human_bytes(p->total_bytes);
        fprintf(stderr, " [%s] %3d%%  %s / %s, %s, %s/s", bar, (int)(frac * 100), done, total,
                counts, rate);
        if (!final && secs > 1 && frac > 0.01) {
            int eta = (int)(secs / frac - secs + 0.5);
            fprintf(stderr, ", ETA %d:%02d", eta / 60, eta % 60);
        }
        free(total);
    } else {
        fprintf(stderr, ": %s, %s, %s/s", counts, done, rate);
    }
    if (extra)
        fprintf(stderr, ", %s", extra);
    /* \033[K clears what a longer previous line left behind. */
    fputs("\033[K", stderr);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    p->drawn = !final;
    free(done);
    free(rate);
}

void cli_progress_files(const files_progress *fp, int final, void *ud)
{
    cli_progress *p = ud;
    struct timespec now;
    double secs;
    if (!due(p, final, &now, &secs))
        return;
    char counts[96];
    snprintf(counts, sizeof counts, "%llu files, %llu dirs", (unsigned long long)fp->files,
             (unsigned long long)fp->dirs);
    char *added = fp->bytes_added ? ob_human_bytes(fp->bytes_added) : NULL;
    char *extra = added ? ob_xasprintf("%s added", added) : NULL;
    draw(p, secs, fp->bytes, fp->bytes_read ? fp->bytes_read : fp->bytes, counts, extra, final);
    free(added);
    free(extra);
}

void cli_progress_update(cli_progress *p, uint64_t bytes, uint64_t items, const char *unit,
                         int final)
{
    struct timespec now;
    double secs;
    if (!due(p, final, &now, &secs))
        return;
    char counts[96];
    snprintf(counts, sizeof counts, "%llu %s", (unsigned long long)items, unit);
    draw(p, secs, bytes, bytes, counts, NULL, final);
}

void cli_progress_phase(cli_progress *p, const char *msg, int final)
{
    struct timespec now;
    double secs;
    if (!due(p, 1, &now, &secs)) /* phases are few: always drawn */
        return;
    fprintf(stderr, "\r[%d:%02d] %s: %s\033[K", (int)secs / 60, (int)secs % 60, p->verb, msg);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    p->drawn = !final;
}
