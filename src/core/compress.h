/*
 * compress.h — zstd compression of blobs, skipped when it does not pay.
 *
 * Images, already-compressed archives and encrypted files do not shrink; we
 * store them raw rather than spend a decompression on every restore for a
 * gain of a few bytes.  The threshold is deliberately simple: keep the
 * compressed form only if it saves at least 1/32 of the input.
 */
#ifndef OB_COMPRESS_H
#define OB_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum ob_compression { OB_COMP_NONE = 0, OB_COMP_ZSTD = 1 };

/* A per-thread compression context (zstd contexts are expensive to make). */
typedef struct ob_compressor ob_compressor;
ob_compressor *ob_compressor_new(int level);
void ob_compressor_free(ob_compressor *c);

/* Compress in[0..len) into out (replacing its contents) if worthwhile.
 * Returns OB_COMP_ZSTD when out holds the compressed bytes, OB_COMP_NONE
 * when the caller should store the input as is (out is then empty). */
int ob_compress(ob_compressor *c, const uint8_t *in, size_t len, ob_buf *out);

/* Decompress exactly raw_len bytes; anything else is corruption. */
int ob_decompress(int method, const uint8_t *in, size_t len, size_t raw_len, ob_buf *out,
                  ob_err *err);

#endif
