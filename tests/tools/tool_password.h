/*
 * tool_password.h — the first line of a password file, for the test and
 * bench tools that open repositories through the library directly
 * (obcraft, obtamper, bench/scale_gen).  The CLI's own reader
 * (src/cli/password.c) checks modes and owners; these tools run on
 * throwaway repositories and need none of that.  Header-only: each tool
 * is a single file.  Returns a malloc'd string (caller frees) or NULL.
 */
#ifndef OB_TOOL_PASSWORD_H
#define OB_TOOL_PASSWORD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline char *tool_read_password(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

#endif
