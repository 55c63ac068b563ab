/*
 * fuzz_tree.c — tree blobs (FORMAT.md §12): tree_decode on the plaintext of
 * a tree blob.  Trees are where a hostile repository would hide "..",
 * names with '/', duplicate or unsorted entries and overlapping extents, so
 * besides "no crash" the target checks what restore relies on:
 *
 * - every decoded name passes tree_name_is_safe;
 * - the encoding is canonical: encode(decode(x)) decodes again and
 *   re-encodes to the same bytes.
 */
#include <string.h>

#include "fuzz_common.h"
#include "repo/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tree t;
    ob_err err = OB_ERR_INIT;
    if (tree_decode(data, size, &t, &err) < 0) {
        if (t.n != 0 || t.nodes != NULL) /* "left empty" on failure (tree.h) */
            __builtin_trap();
        ob_err_clear(&err);
        return 0;
    }
    for (size_t i = 0; i < t.n; i++) {
        if (!tree_name_is_safe(t.nodes[i].name, t.nodes[i].name_len))
            __builtin_trap();
        if (tree_find(&t, t.nodes[i].name, t.nodes[i].name_len) != &t.nodes[i])
            __builtin_trap();
    }
    ob_buf a = OB_BUF_INIT, b = OB_BUF_INIT;
    tree_encode(&t, &a);
    tree t2;
    if (tree_decode(a.data, a.len, &t2, &err) < 0)
        __builtin_trap();
    tree_encode(&t2, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        __builtin_trap();
    tree_free(&t2);
    tree_free(&t);
    ob_buf_free(&a);
    ob_buf_free(&b);
    return 0;
}
