/*
 * fuzz_snapshot.c — snapshot objects (FORMAT.md §13): the input is the JSON
 * inside a snapshot object.  It is sealed with the fixture key under
 * snapshots/<id> and read back by snapshot_load, the path `snapshots`,
 * `restore` and `forget` take; a loaded snapshot is then turned into its
 * `--json` form, and the snapshots are listed, as those commands do.
 */
#include <jansson.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "repo/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SNAP_ID "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static storage *st;
    static repo *r;
    if (!r) {
        st = fuzz_memstore_new();
        r = fuzz_repo_over(st);
    }
    fuzz_memstore_clear(st);
    ob_buf sealed = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    if (repo_seal_object(r, REPO_OBJ_SNAPSHOT, data, size, &sealed, &err) < 0 ||
        storage_put(st, "snapshots/" SNAP_ID, sealed.data, sealed.len, 0, &err) < 0)
        __builtin_trap();
    ob_buf_free(&sealed);

    snapshot *s = NULL;
    if (snapshot_load(r, SNAP_ID, &s, &err) == 0) {
        json_t *j = snapshot_to_json(s);
        char *text = json_dumps(j, JSON_SORT_KEYS);
        free(text);
        json_decref(j);
        snapshot_free(s);
    }
    ob_err_clear(&err);
    snapshot **v = NULL;
    size_t n = 0;
    if (snapshot_list(r, &v, &n, &err) == 0)
        snapshot_list_free(v, n);
    ob_err_clear(&err);
    return 0;
}
