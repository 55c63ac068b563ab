/*
 * log.h — leveled logging to stderr.
 *
 * The only global mutable state in opsbackup (DESIGN.md): the level, set
 * once by the CLI before any thread starts.  Messages are single lines
 * written with one fputs so concurrent threads do not interleave inside a
 * line.
 */
#ifndef OB_LOG_H
#define OB_LOG_H

enum ob_log_level { OB_LOG_ERROR = 0, OB_LOG_WARN = 1, OB_LOG_INFO = 2, OB_LOG_DEBUG = 3 };

void ob_log_set_level(int level);
int ob_log_get_level(void);
void ob_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ob_error(...) ob_log(OB_LOG_ERROR, __VA_ARGS__)
#define ob_warn(...) ob_log(OB_LOG_WARN, __VA_ARGS__)
#define ob_info(...) ob_log(OB_LOG_INFO, __VA_ARGS__)
#define ob_debug(...) ob_log(OB_LOG_DEBUG, __VA_ARGS__)

#endif
