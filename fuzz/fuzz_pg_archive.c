/*
 * fuzz_pg_archive.c — the row counter over a pg_dump custom archive
 * (sources/pg_archive.c), which reads whatever a --dump-command writes.
 *
 * The input is fed whole and again in pieces whose sizes come from the
 * input itself; the two runs must agree exactly (same counts, or both
 * refuse), since a parser that depends on how the pipe splits its reads
 * would record wrong counts only sometimes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sources/pg_archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *run(const uint8_t *data, size_t size, int split)
{
    pg_archive_counter *c = pg_archive_counter_new();
    size_t off = 0, i = 0;
    while (off < size) {
        size_t n = size - off;
        if (split) {
            size_t k = 1 + data[i++ % size] % 67u;
            n = k < n ? k : n;
        }
        pg_archive_counter_feed(c, data + off, n);
        off += n;
    }
    json_t *counts = NULL;
    char *why = NULL;
    char *out;
    if (pg_archive_counter_finish(c, &counts, &why) == 0) {
        if (!counts || why)
            __builtin_trap();
        out = json_dumps(counts, JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(counts);
    } else {
        if (counts || !why)
            __builtin_trap();
        out = strdup("refused");
        free(why);
    }
    pg_archive_counter_free(c);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    char *a = run(data, size, 0), *b = run(data, size, 1);
    if (!a || !b || strcmp(a, b) != 0)
        __builtin_trap();
    free(a);
    free(b);
    return 0;
}
