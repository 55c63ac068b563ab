/*
 * config.h — the INI configuration file (CLI.md "Config file").
 *
 *   [repo.local]
 *   url = /backup/opsbackup
 *   ; comment         # comment
 *   key = value       ; trailing comments after whitespace are dropped
 *
 * Parsing keeps every section and key with its line number so errors can
 * say file:line.  This module only reads the file; what the keys mean is
 * decided by the commands that use them.
 *
 * Ownership: config_load returns a config the caller frees with
 * config_free; strings returned by lookups belong to the config.
 */
#ifndef OB_CONFIG_H
#define OB_CONFIG_H

#include <stddef.h>

#include "core/err.h"

typedef struct config_entry {
    char *key, *value;
    int line;
} config_entry;

typedef struct config_section {
    char *name;          /* "repo.local", "notify" */
    int line;
    config_entry *entries;
    size_t n;
} config_section;

typedef struct config {
    char *path;
    config_section *sections;
    size_t n;
} config;

/* Parse a file.  Syntax errors fail with OB_EUSAGE and "FILE:LINE: why". */
int config_load(const char *path, config **out, ob_err *err);
void config_free(config *c);

const config_section *config_section_get(const config *c, const char *name);
/* Last value of key in section, or NULL. */
const char *config_get(const config_section *s, const char *key);
const config_entry *config_entry_get(const config_section *s, const char *key);

#endif
