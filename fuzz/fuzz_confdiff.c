/*
 * fuzz_confdiff.c — `diff --content` (sources/confdiff.c): two versions of
 * a config file from two snapshots, parsed into keys (.env, INI, YAML-like)
 * and compared.  Their content is whatever the user's files held.
 *
 * Input: u16 length of the old version (little-endian), the old version,
 * then the new version.  Every reported change must point into the files
 * (a line number no larger than the file has lines).
 */
#include <string.h>

#include "fuzz_common.h"
#include "sources/confdiff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct limits {
    size_t lines_a, lines_b;
    size_t seen;
} limits;

static size_t count_lines(const uint8_t *p, size_t n)
{
    size_t k = 1;
    for (size_t i = 0; i < n; i++)
        k += p[i] == '\n';
    return k;
}

static int on_change(const confdiff_change *c, void *ud)
{
    limits *l = ud;
    size_t max = c->change == '-' ? l->lines_a : l->lines_b;
    if (c->line < 1 || c->line > max)
        __builtin_trap();
    if ((c->change == '+' && c->old_val) || (c->change == '-' && c->new_val))
        __builtin_trap();
    if (c->key)
        (void)strlen(c->key);
    if (c->old_val)
        (void)strlen(c->old_val);
    if (c->new_val)
        (void)strlen(c->new_val);
    l->seen++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t alen = (size_t)data[0] | (size_t)data[1] << 8;
    if (alen > size - 2)
        alen = size - 2;
    const uint8_t *a = data + 2, *b = a + alen;
    size_t blen = size - 2 - alen;
    (void)confdiff_is_binary(a, alen);
    (void)confdiff_is_binary(b, blen);
    limits l = {count_lines(a, alen), count_lines(b, blen), 0};
    confdiff_text(a, alen, b, blen, on_change, &l);
    /* A file compared with itself has no changes. */
    limits same = {l.lines_b, l.lines_b, 0};
    confdiff_text(b, blen, b, blen, on_change, &same);
    if (same.seen)
        __builtin_trap();
    return 0;
}
