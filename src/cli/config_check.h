/*
 * config_check.h — the rules a config file must follow (CLI.md "Config
 * file", issue #7), in one place: `config check` reports them, and `run`
 * and `daemon` are meant to refuse a config that breaks them.
 *
 * config_check never stops at the first problem: it collects every one,
 * each with the file and line it is about, so an operator fixes a config
 * in one pass.  It reads nothing but the config and the file's mode (for
 * the secrets rule); it does not contact repositories or databases.
 *
 * Ownership: the result owns its problem strings (config_check_free); the
 * config stays the caller's.
 */
#ifndef OB_CONFIG_CHECK_H
#define OB_CONFIG_CHECK_H

#include <stddef.h>

#include "core/config.h"

typedef struct config_problem {
    int line;       /* 0 when about the whole file */
    char *message;  /* without the "FILE:LINE: " prefix */
} config_problem;

typedef struct config_check_result {
    config_problem *problems;  /* sorted by line */
    size_t n;
    size_t nrepos, njobs;
} config_check_result;

/* Check every rule; never fails (a problem list, possibly empty). */
void config_check(const config *c, config_check_result *out);
void config_check_free(config_check_result *r);

/* "100GB", "1.5TiB", "500MB", "1024" (bytes): decimal units are powers of
 * 1000, binary (KiB...) of 1024.  -1 on bad input. */
int config_parse_size(const char *s, unsigned long long *bytes);

#endif
