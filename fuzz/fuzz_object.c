/*
 * fuzz_object.c — the encrypted object envelope and the repository config.
 *
 * First byte even: the input is a stored object as a hostile bucket could
 * hold it (magic, type, version, salt, ciphertext, tag); repo_open_object
 * must refuse it cleanly for every expected type.  Only the header checks
 * and the length arithmetic are reachable: the fuzzer cannot forge a tag.
 *
 * First byte odd: the rest is the plaintext of a `config` object.  It is
 * sealed with the fixture's key into a fresh storage, and the repository is
 * opened from it with the master key (repo_open_with_master_key), which
 * reads the id, decodes the config (chunker sizes, pack size, level) and
 * loads the (empty) index.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    repo *fx = fuzz_repo();
    ob_buf out = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    if ((data[0] & 1) == 0) {
        for (int type = REPO_OBJ_CONFIG; type <= REPO_OBJ_WAL; type++) {
            repo_open_object(fx, type, data + 1, size - 1, &out, &err);
            ob_err_clear(&err);
        }
        ob_buf_free(&out);
        return 0;
    }
    storage *st = fuzz_memstore_new();
    if (repo_seal_object(fx, REPO_OBJ_CONFIG, data + 1, size - 1, &out, &err) == 0 &&
        storage_put(st, "config", out.data, out.len, 0, &err) == 0) {
        uint8_t master[64];
        repo_master_key(fx, master);
        repo *r = NULL;
        if (repo_open_with_master_key(st, master, &r, &err) == 0) {
            /* What a command then asks of an opened repository. */
            (void)repo_chunker(r, REPO_CHUNK_FILES);
            (void)repo_chunker(r, REPO_CHUNK_DB);
            (void)repo_pack_size(r);
            repo_close(r);
        }
    }
    ob_err_clear(&err);
    ob_buf_free(&out);
    storage_close(st);
    return 0;
}
