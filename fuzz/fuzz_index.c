/*
 * fuzz_index.c — index file payloads (FORMAT.md §11): repo_index_decode on
 * the plaintext of an index object, then what loading does next (merge,
 * lookups of every entry, re-encoding for a writer).
 *
 * Index objects are sealed, so this is the parser behind the tag: it runs
 * on what our own writer (or a holder of the key) produced.  A hostile
 * count must fail as "truncated" instead of allocating, and a partly
 * decoded index must stay consistent enough to free.
 */
#include <string.h>

#include "fuzz_common.h"
#include "repo/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct visit {
    const repo_index *ix;
    size_t n;
} visit;

static int visit_entry(const index_entry *e, void *ud)
{
    visit *v = ud;
    const index_entry *hit = repo_index_lookup(v->ix, e->id);
    if (!hit || memcmp(hit->id, e->id, OB_ID_LEN) != 0)
        __builtin_trap(); /* every entry the index lists must be found */
    if (e->pack >= repo_index_pack_count(v->ix))
        __builtin_trap();
    (void)repo_index_pack(v->ix, e->pack);
    v->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    repo_index *ix = repo_index_new();
    ob_err err = OB_ERR_INIT;
    int rc = repo_index_decode(ix, data, size, &err);
    ob_err_clear(&err);
    repo_index_merge(ix);
    if (rc == 0) {
        visit v = {ix, 0};
        repo_index_foreach(ix, visit_entry, &v);
        if (v.n != repo_index_count(ix))
            __builtin_trap();
        ob_buf enc = OB_BUF_INIT;
        repo_index_encode(ix, &enc);
        /* What we write, we must read back. */
        repo_index *again = repo_index_new();
        if (repo_index_decode(again, enc.data, enc.len, &err) < 0)
            __builtin_trap();
        repo_index_merge(again);
        if (repo_index_count(again) != repo_index_count(ix))
            __builtin_trap();
        repo_index_free(again);
        ob_buf_free(&enc);
    }
    repo_index_free(ix);
    return 0;
}
