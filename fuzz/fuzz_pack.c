/*
 * fuzz_pack.c — packs (FORMAT.md §10) and the blob bytes inside them.
 *
 * The first byte picks what the rest is:
 *   0: a whole pack as a hostile bucket could hold it: magic, version,
 *      header, the directory length in the last 4 bytes.  The fuzzer cannot
 *      forge the directory's tag, so this covers the header and trailer
 *      arithmetic of pack_read_directory.
 *   1: the plaintext of a pack directory.  The target builds a pack around
 *      it (header with a fixed salt, the directory sealed with the fixture
 *      key exactly as §10.3 says) so the directory parser and its bounds
 *      checks against the pack run.
 *   2: a stored blob after decryption: u8 method, u32 raw length, then the
 *      bytes, through ob_decompress (zstd frames from the key holder).
 *      The raw length is capped at 1 MiB here: ob_decompress reserves it
 *      up front (blobs reach the chunker's 8 MiB maximum, but the parsing
 *      does not depend on the size, and big reservations slow ASan down).
 */
#include <stdlib.h>
#include <string.h>

#include "core/compress.h"
#include "core/crypto.h"
#include "fuzz_common.h"
#include "repo/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_dir(const repo *r, const uint8_t *p, size_t n)
{
    uint8_t salt[32];
    pack_blob *blobs = NULL;
    size_t nblobs = 0;
    ob_err err = OB_ERR_INIT;
    if (pack_read_directory(r, p, n, salt, &blobs, &nblobs, &err) == 0) {
        /* What `check` and `repair index` trust afterwards. */
        for (size_t i = 0; i < nblobs; i++)
            if (blobs[i].offset < PACK_HEADER_LEN ||
                (uint64_t)blobs[i].offset + blobs[i].length > n)
                __builtin_trap();
    }
    ob_err_clear(&err);
    free(blobs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    repo *fx = fuzz_repo();
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        read_dir(fx, p, n);
        break;
    case 1: {
        /* header | 64 bytes standing for blobs | sealed dir | LE32(sealed len) */
        uint8_t hdr[PACK_HEADER_LEN] = {0}, key[OB_KEY_LEN], nonce[OB_NONCE_LEN];
        memcpy(hdr, PACK_MAGIC, 4);
        hdr[4] = REPO_FORMAT_VERSION;
        memset(hdr + 8, 0x5a, 32);
        repo_pack_key(fx, hdr + 8, key);
        memset(nonce, 0xff, sizeof nonce);
        ob_buf pack = OB_BUF_INIT;
        ob_buf_append(&pack, hdr, sizeof hdr);
        for (int i = 0; i < 64; i++)
            ob_buf_putc(&pack, (uint8_t)i);
        size_t at = pack.len;
        ob_buf_reserve(&pack, n + OB_TAG_LEN + 4);
        ob_err err = OB_ERR_INIT;
        if (ob_aead_seal(key, nonce, hdr, sizeof hdr, p, n, pack.data + at, &err) == 0) {
            pack.len = at + n + OB_TAG_LEN;
            ob_buf_put_u32(&pack, (uint32_t)(n + OB_TAG_LEN));
            read_dir(fx, pack.data, pack.len);
        }
        ob_err_clear(&err);
        ob_buf_free(&pack);
        break;
    }
    case 2: {
        if (n < 5)
            return 0;
        uint32_t raw = ob_get_le32(p + 1) & ((1u << 20) - 1);
        ob_buf out = OB_BUF_INIT;
        ob_err err = OB_ERR_INIT;
        if (ob_decompress(p[0], p + 5, n - 5, raw, &out, &err) == 0 && out.len != raw)
            __builtin_trap();
        ob_err_clear(&err);
        ob_buf_free(&out);
        break;
    }
    }
    return 0;
}
