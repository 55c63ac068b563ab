/*
 * fuzz_wal.c — the WAL archive (pg_wal.c): object names under wal/ as a
 * listing returns them (a hostile bucket chooses those) and the payload of
 * a WAL object after decryption (u8 method | u64 raw length | bytes).
 *
 * Input: the first line is an object name below "wal/", the rest is the
 * payload.  The payload is sealed with the fixture key under that name in
 * an emptied storage, then the archive is checked with --read-data
 * (pg_wal_check), expired in a dry run (pg_wal_expire), copied to a second
 * repository (pg_wal_copy) and, when the name is well formed, fetched by
 * file name (pg_wal_get) — every reader of WAL objects there is.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sources/pg_wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void report(int severity, const char *msg, void *ud)
{
    (void)severity;
    (void)msg;
    (void)ud;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || memchr(data, '\0', (size_t)(nl - data)))
        return 0;
    char *rest = fuzz_strndup(data, (size_t)(nl - data));
    char *obj = ob_xasprintf("wal/%s", rest);
    free(rest);
    size_t plen = size - (size_t)(nl + 1 - data);
    /* The recorded raw length (bytes 1..8) is capped below 1 MiB:
     * ob_decompress reserves it up front, and read_object accepts up to
     * 4 GiB, a bound only the key holder can reach (the payload is
     * sealed); 2 GiB reservations would only trip libFuzzer's memory
     * limit, not find a bug. */
    uint8_t *payload = ob_xmalloc(plen ? plen : 1);
    memcpy(payload, nl + 1, plen);
    if (plen >= 9) {
        payload[3] &= 0x0f;
        memset(payload + 4, 0, 5);
    }

    static storage *st, *st2;
    static repo *r, *dst;
    if (!r) {
        st = fuzz_memstore_new();
        st2 = fuzz_memstore_new();
        r = fuzz_repo_over(st);
        dst = fuzz_repo_over(st2);
    }
    fuzz_memstore_clear(st);
    fuzz_memstore_clear(st2);
    ob_err err = OB_ERR_INIT;
    ob_buf sealed = OB_BUF_INIT, out = OB_BUF_INIT;
    if (repo_seal_object(r, REPO_OBJ_WAL, payload, plen, &sealed, &err) < 0 ||
        storage_put(st, obj, sealed.data, sealed.len, 0, &err) < 0)
        __builtin_trap();

    pg_wal_check_result res;
    if (pg_wal_check(r, 1, report, NULL, NULL, &res, &err) == 0 && res.files_read > 1)
        __builtin_trap();
    ob_err_clear(&err);
    uint64_t removed, bytes;
    pg_wal_expire(r, 3, 16u << 20, 1, &removed, &bytes, &err);
    ob_err_clear(&err);
    uint64_t copied;
    pg_wal_copy(r, dst, &copied, &err);
    ob_err_clear(&err);

    /* "wal/TLI/NAME-ID": fetch NAME the way archive-get does. */
    const char *slash = strrchr(obj, '/'), *dash = strrchr(obj, '-');
    if (slash && dash && dash > slash) {
        char *name = ob_xstrndup(slash + 1, (size_t)(dash - slash - 1));
        if (pg_wal_name_valid(name)) {
            pg_wal_get(r, name, &out, &err);
            ob_err_clear(&err);
            if (pg_wal_is_segment(name)) {
                char next[25];
                pg_wal_next_segment(name, 16u << 20, next);
                (void)pg_wal_segno(name, 16u << 20);
            }
        }
        free(name);
    }
    ob_buf_free(&out);
    ob_buf_free(&sealed);
    free(payload);
    free(obj);
    return 0;
}
