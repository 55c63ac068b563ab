#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int log_level = OB_LOG_WARN;

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
    if (asprintf(&line, "opsbackup: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], msg) >= 0) {
        fputs(line, stderr);
        free(line);
    }
    free(msg);
}
