/*
 * pack.c — building and reading pack files (layout in pack.h / FORMAT.md).
 *
 * Pack directory (encrypted, nonce = 12 bytes of 0xFF, AAD = pack header):
 *   "OBD1" | count u32 | per blob: id[32] type u8 comp u8 offset u32 length u32 raw_len u32
 * followed in clear by the directory's sealed length (u32 LE) as the last
 * 4 bytes of the pack.
 */
#include "repo/pack.h"

#include <stdlib.h>
#include <string.h>

#include "core/compress.h"

#define DIR_MAGIC "OBD1"
#define DIR_ENTRY_LEN (32 + 1 + 1 + 4 + 4 + 4)

void pack_blob_aad(const uint8_t id[OB_ID_LEN], int type, int comp, uint32_t raw_len,
                   uint8_t aad[38])
{
    memcpy(aad, id, OB_ID_LEN);
    aad[32] = (uint8_t)type;
    aad[33] = (uint8_t)comp;
    ob_le32(aad + 34, raw_len);
}

void pack_blob_nonce(uint32_t seq, uint8_t nonce[OB_NONCE_LEN])
{
    memset(nonce, 0, OB_NONCE_LEN);
    ob_le32(nonce, seq);
}

static void dir_nonce(uint8_t nonce[OB_NONCE_LEN])
{
    memset(nonce, 0xFF, OB_NONCE_LEN);
}

char *pack_object_name(const uint8_t id[OB_ID_LEN])
{
    char hex[OB_HEX_ID_LEN + 1];
    ob_hex(id, OB_ID_LEN, hex);
    return ob_xasprintf("data/%.2s/%s", hex, hex);
}

int pack_builder_init(pack_builder *b, const repo *r, ob_err *err)
{
    memset(b, 0, sizeof *b);
    if (ob_random(b->id, sizeof b->id, err) < 0 || ob_random(b->salt, sizeof b->salt, err) < 0)
        return -1;
    char *name = pack_object_name(b->id);
    int rc = storage_write_open(repo_storage(r), name, &b->out, err);
    free(name);
    if (rc < 0)
        return -1;
    repo_pack_key(r, b->salt, b->key);
    memcpy(b->header, PACK_MAGIC, 4);
    b->header[4] = REPO_FORMAT_VERSION;
    memcpy(b->header + 8, b->salt, 32);
    if (storage_write_append(b->out, b->header, sizeof b->header, err) < 0) {
        pack_builder_free(b);
        return -1;
    }
    b->size = sizeof b->header;
    return 0;
}

static int pack_builder_sink(const void *data, size_t len, void *ud, ob_err *err)
{
    pack_builder *b = ud;
    if (storage_write_append(b->out, data, len, err) < 0)
        return -1;
    b->size += len;
    return 0;
}

int pack_builder_add(pack_builder *b, const uint8_t id[OB_ID_LEN], int type, int comp,
                     const uint8_t *stored, size_t stored_len, size_t raw_len, ob_err *err)
{
    if (!b->out)
        return ob_err_set(err, OB_EUSAGE, "pack is already stored (internal error)");
    if (b->nblobs >= INDEX_MAX_SEQ || b->size + stored_len + OB_TAG_LEN > UINT32_MAX ||
        raw_len > UINT32_MAX)
        return ob_err_set(err, OB_EFAIL, "pack is full (internal limit)");
    if (b->nblobs == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->blobs = ob_xrealloc(b->blobs, b->cap * sizeof *b->blobs);
    }
    uint8_t aad[38], nonce[OB_NONCE_LEN];
    pack_blob_aad(id, type, comp, (uint32_t)raw_len, aad);
    pack_blob_nonce((uint32_t)b->nblobs, nonce);
    uint64_t offset = b->size;
    /* A failed append leaves the pack unusable (a partial blob in it): the
     * caller abandons the whole pack. */
    if (ob_aead_seal_to(b->key, nonce, aad, sizeof aad, stored, stored_len, pack_builder_sink, b,
                        err) < 0)
        return -1;
    pack_blob *pb = &b->blobs[b->nblobs++];
    memcpy(pb->id, id, OB_ID_LEN);
    pb->type = (uint8_t)type;
    pb->comp = (uint8_t)comp;
    pb->offset = (uint32_t)offset;
    pb->length = (uint32_t)(stored_len + OB_TAG_LEN);
    pb->raw_len = (uint32_t)raw_len;
    return 0;
}

uint64_t pack_builder_size(const pack_builder *b) { return b->size; }

int pack_builder_store(pack_builder *b, ob_err *err)
{
    if (!b->out)
        return ob_err_set(err, OB_EUSAGE, "pack is already stored (internal error)");
    ob_buf dir = OB_BUF_INIT;
    ob_buf_append(&dir, DIR_MAGIC, 4);
    ob_buf_put_u32(&dir, (uint32_t)b->nblobs);
    for (size_t i = 0; i < b->nblobs; i++) {
        const pack_blob *pb = &b->blobs[i];
        ob_buf_append(&dir, pb->id, OB_ID_LEN);
        ob_buf_putc(&dir, pb->type);
        ob_buf_putc(&dir, pb->comp);
        ob_buf_put_u32(&dir, pb->offset);
        ob_buf_put_u32(&dir, pb->length);
        ob_buf_put_u32(&dir, pb->raw_len);
    }
    uint8_t nonce[OB_NONCE_LEN];
    dir_nonce(nonce);
    size_t sealed = dir.len + OB_TAG_LEN;
    ob_buf_reserve(&dir, OB_TAG_LEN + 4);
    /* Sealed in place (ob_aead_seal allows it), then its length in clear. */
    int rc = ob_aead_seal(b->key, nonce, b->header, sizeof b->header, dir.data, dir.len,
                          dir.data, err);
    if (rc == 0) {
        dir.len = sealed;
        ob_buf_put_u32(&dir, (uint32_t)sealed);
        rc = pack_builder_sink(dir.data, dir.len, b, err);
    }
    ob_buf_free(&dir);
    storage_write *out = b->out;
    b->out = NULL;
    if (rc < 0) {
        storage_write_abort(out);
        return -1;
    }
    return storage_write_commit(out, 0, err);
}

void pack_builder_free(pack_builder *b)
{
    storage_write_abort(b->out);
    free(b->blobs);
    ob_wipe(b->key, sizeof b->key);
    memset(b, 0, sizeof *b);
}

int pack_open_blob(const repo *r, const uint8_t salt[32], const index_entry *e,
                   const uint8_t *ct, size_t ctlen, ob_buf *out, ob_err *err)
{
    uint8_t key[OB_KEY_LEN], aad[38], nonce[OB_NONCE_LEN];
    if (ctlen != e->length || ctlen < OB_TAG_LEN)
        return ob_err_set(err, OB_ECORRUPT, "blob is %zu bytes, index says %u", ctlen,
                          e->length);
    repo_pack_key(r, salt, key);
    pack_blob_aad(e->id, (int)INDEX_TYPE(e->meta), (int)INDEX_COMP(e->meta), e->raw_len, aad);
    pack_blob_nonce(INDEX_SEQ(e->meta), nonce);
    int rc;
    if (INDEX_COMP(e->meta) == OB_COMP_NONE) {
        /* Stored as is: decrypt straight into out, no second buffer of the
         * blob's size (restores of incompressible files hold one per
         * worker). */
        ob_buf_reset(out);
        if (ctlen - OB_TAG_LEN != e->raw_len) {
            rc = ob_err_set(err, OB_ECORRUPT, "stored length %zu differs from recorded %u",
                            ctlen - OB_TAG_LEN, e->raw_len);
        } else {
            ob_buf_reserve(out, ctlen);
            rc = ob_aead_open(key, nonce, aad, sizeof aad, ct, ctlen, out->data, err);
            if (rc == 0)
                out->len = ctlen - OB_TAG_LEN;
        }
    } else {
        ob_buf plain = OB_BUF_INIT;
        ob_buf_reserve(&plain, ctlen);
        rc = ob_aead_open(key, nonce, aad, sizeof aad, ct, ctlen, plain.data, err);
        if (rc == 0)
            rc = ob_decompress((int)INDEX_COMP(e->meta), plain.data, ctlen - OB_TAG_LEN,
                               e->raw_len, out, err);
        ob_buf_free(&plain);
    }
    ob_wipe(key, sizeof key);
    if (rc == 0) {
        uint8_t id[OB_ID_LEN];
        repo_blob_id(r, (int)INDEX_TYPE(e->meta), out->data, out->len, id);
        if (memcmp(id, e->id, OB_ID_LEN) != 0)
            rc = ob_err_set(err, OB_ECORRUPT, "content does not match its blob ID");
    }
    return rc;
}

int pack_read_directory(const repo *r, const uint8_t *data, size_t len, uint8_t salt[32],
                        pack_blob **blobs, size_t *nblobs, ob_err *err)
{
    *blobs = NULL;
    *nblobs = 0;
    if (len < PACK_HEADER_LEN + OB_TAG_LEN + 4 || memcmp(data, PACK_MAGIC, 4) != 0)
        return ob_err_set(err, OB_ECORRUPT, "not a pack (bad header or truncated)");
    if (data[4] != REPO_FORMAT_VERSION)
        return ob_err_set(err, OB_ECORRUPT, "pack format version %u not supported", data[4]);
    uint32_t dlen = ob_get_le32(data + len - 4);
    if (dlen < OB_TAG_LEN + 8 || dlen > len - PACK_HEADER_LEN - 4)
        return ob_err_set(err, OB_ECORRUPT, "pack directory length %u is impossible", dlen);
    memcpy(salt, data + 8, 32);
    uint8_t key[OB_KEY_LEN], nonce[OB_NONCE_LEN];
    repo_pack_key(r, salt, key);
    dir_nonce(nonce);
    const uint8_t *dct = data + len - 4 - dlen;
    ob_buf dir = OB_BUF_INIT;
    ob_buf_reserve(&dir, dlen);
    int rc = ob_aead_open(key, nonce, data, PACK_HEADER_LEN, dct, dlen, dir.data, err);
    ob_wipe(key, sizeof key);
    if (rc < 0) {
        ob_buf_free(&dir);
        return ob_err_prefix(err, "pack directory");
    }
    dir.len = dlen - OB_TAG_LEN;
    ob_rd rd = ob_rd_init(dir.data, dir.len);
    const uint8_t *m = ob_rd_take(&rd, 4);
    uint32_t n = ob_rd_u32(&rd);
    if (!m || memcmp(m, DIR_MAGIC, 4) != 0 || (uint64_t)n * DIR_ENTRY_LEN != rd.left) {
        ob_buf_free(&dir);
        return ob_err_set(err, OB_ECORRUPT, "pack directory is malformed");
    }
    pack_blob *v = ob_xcalloc(n ? n : 1, sizeof *v);
    uint64_t limit = (uint64_t)(dct - data);
    for (uint32_t i = 0; i < n; i++) {
        ob_rd_copy(&rd, v[i].id, OB_ID_LEN);
        v[i].type = ob_rd_u8(&rd);
        v[i].comp = ob_rd_u8(&rd);
        v[i].offset = ob_rd_u32(&rd);
        v[i].length = ob_rd_u32(&rd);
        v[i].raw_len = ob_rd_u32(&rd);
        if (v[i].offset < PACK_HEADER_LEN || (uint64_t)v[i].offset + v[i].length > limit ||
            v[i].length < OB_TAG_LEN) {
            free(v);
            ob_buf_free(&dir);
            return ob_err_set(err, OB_ECORRUPT, "pack directory entry %u points outside the pack",
                              i);
        }
    }
    ob_buf_free(&dir);
    *blobs = v;
    *nblobs = n;
    return 0;
}
