/*
 * fuzz_pg_archive.c — the row counter over a pg_dump custom archive
 * (sources/pg_archive.c), which reads whatever a --dump-command writes.
 *
 * The input is fed whole and again in pieces whose sizes come from the
 * input itself; the two runs must agree exactly (same counts, large
 * objects and tables, or both refuse), since a parser that depends on how
 * the pipe splits its reads would record wrong counts only sometimes.
 * Every table key (made by pg_sql_table_key from the archive's names)
 * must split back into parts that make the same key.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sources/pg_archive.h"
#include "sources/pg_sql.h"

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
        json_t *tables = pg_archive_counter_tables(c);
        const char *key;
        json_t *v;
        json_object_foreach(tables, key, v)
        {
            char *ns, *rel;
            if (pg_sql_table_key_split(key, &ns, &rel) < 0)
                __builtin_trap();
            char *again = pg_sql_table_key(ns, rel);
            if (strcmp(again, key) != 0)
                __builtin_trap();
            free(again);
            free(ns);
            free(rel);
        }
        json_t *all = json_pack("{s:o, s:o, s:I}", "counts", counts, "tables", tables,
                                "large_objects",
                                (json_int_t)pg_archive_counter_large_objects(c));
        out = json_dumps(all, JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(all);
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
