#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int log_level = OB_LOG_WARN;

/* Under systemd, stderr is the journal: a "<N>" prefix (sd-daemon(3))
 * gives each line its priority, so `journalctl -p err` finds failures.
 * Detected once: $JOURNAL_STREAM names the device:inode of that stream,
 * and only a stderr that is still it gets the prefixes (not a child whose
 * stderr was redirected to a file). */
static int journal_prefix(void)
{
    static int journal = -1; /* racing first calls compute the same value */
    if (journal < 0) {
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
                  fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
                  (unsigned long long)st.st_ino == ino;
    }
    return journal;
}

void ob_log_set_level(int level) { log_level = level; }
int ob_log_get_level(void) { return log_level; }

void ob_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *line = NULL;
    static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"};
    int l = level < 0 ? 0 : level > 3 ? 3 : level;
    if (asprintf(&line, "%sopsbackup: %s: %s\n", journal_prefix() ? prio[l] : "", names[l], msg) >=
        0) {
        fputs(line, stderr);
        free(line);
    }
    /* The test suite collects every error message to check that each one
     * names its object and cause (tests/tools/check_errors.py). */
    const char *collect = level == OB_LOG_ERROR ? getenv("OPSBACKUP_ERROR_LOG") : NULL;
    if (collect && *collect) {
        FILE *f = fopen(collect, "ae");
        if (f) {
            fprintf(f, "%s\n", msg);
            fclose(f);
        }
    }
    free(msg);
}
