/*
 * pack.h — pack files: many encrypted blobs in one immutable object.
 *
 * Layout (docs/FORMAT.md): a 40-byte header (magic, version, salt), the
 * blobs each sealed with AES-256-GCM under a key derived from the salt and
 * a nonce equal to its sequence number, then an encrypted directory of the
 * blobs and its length.  A fresh random salt per pack gives a fresh key per
 * pack, and sequence numbers never repeat inside a pack, so no (key, nonce)
 * pair is ever used twice — by construction, not by luck of a random nonce.
 * The directory lets `repair index` rebuild the index from packs alone.
 *
 * Packs are named by a random 256-bit ID chosen when the pack is started
 * (not by a hash of their bytes), so the writer can index a blob the moment
 * it is sealed, before the pack is complete; every byte is authenticated
 * by the blob tags and the directory tag instead.
 *
 * A pack_builder writes its pack to the repository's storage as blobs are
 * added (storage_write: on posix straight into the temporary file that is
 * renamed into place), so building a pack holds one 256 KiB piece in
 * memory rather than the whole pack.  It is owned by one thread at a time
 * (each repo_writer worker has its own).  pack_read_* functions parse
 * untrusted bytes.
 */
#ifndef OB_PACK_H
#define OB_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "repo/index.h"
#include "repo/repo.h"
#include "storage/storage.h"

#define PACK_HEADER_LEN 40
#define PACK_MAGIC "OBP1"

typedef struct pack_blob {
    uint8_t id[OB_ID_LEN];
    uint8_t type, comp;
    uint32_t offset, length, raw_len;
} pack_blob;

typedef struct pack_builder {
    storage_write *out;      /* the pack object being written; NULL once stored */
    uint8_t header[PACK_HEADER_LEN]; /* the directory's AAD */
    uint64_t size;           /* bytes written so far */
    pack_blob *blobs;
    size_t nblobs, cap;
    uint8_t id[OB_ID_LEN];   /* the pack's name, random */
    uint8_t salt[32];
    uint8_t key[OB_KEY_LEN];
} pack_builder;

/* Start a pack with a fresh random ID and salt, writing to r's storage
 * under pack_object_name(id) (nothing is visible there until
 * pack_builder_store). */
int pack_builder_init(pack_builder *b, const repo *r, ob_err *err);
/* Seal one blob's (possibly compressed) bytes into the pack. */
int pack_builder_add(pack_builder *b, const uint8_t id[OB_ID_LEN], int type, int comp,
                     const uint8_t *stored, size_t stored_len, size_t raw_len, ob_err *err);
uint64_t pack_builder_size(const pack_builder *b);
/* Append the directory and store the pack (atomic and durable, as
 * storage_put).  The blob list stays for the caller to index; free the
 * builder afterwards either way. */
int pack_builder_store(pack_builder *b, ob_err *err);
/* Free; a pack not stored is abandoned (a temporary at most remains). */
void pack_builder_free(pack_builder *b);

/* Object name of a pack: "data/ab/ab…" (caller frees). */
char *pack_object_name(const uint8_t id[OB_ID_LEN]);

/* AAD binding a sealed blob to its ID, type, compression and length. */
void pack_blob_aad(const uint8_t id[OB_ID_LEN], int type, int comp, uint32_t raw_len,
                   uint8_t aad[38]);
void pack_blob_nonce(uint32_t seq, uint8_t nonce[OB_NONCE_LEN]);

/* Open one sealed blob read from a pack (ct = length bytes) and return the
 * plaintext (decompressed) in out, verifying the blob ID. */
int pack_open_blob(const repo *r, const uint8_t salt[32], const index_entry *e,
                   const uint8_t *ct, size_t ctlen, ob_buf *out, ob_err *err);

/* Parse a whole pack: header, directory; on success *blobs (malloc'd) lists
 * its blobs in sequence order and salt receives the pack salt. */
int pack_read_directory(const repo *r, const uint8_t *data, size_t len, uint8_t salt[32],
                        pack_blob **blobs, size_t *nblobs, ob_err *err);

#endif
