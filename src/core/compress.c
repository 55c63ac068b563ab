#include "core/compress.h"

#include <stdlib.h>

#include <zstd.h>

struct ob_compressor {
    ZSTD_CCtx *cctx;
    int level;
};

ob_compressor *ob_compressor_new(int level)
{
    ob_compressor *c = ob_xcalloc(1, sizeof *c);
    c->cctx = ZSTD_createCCtx();
    c->level = level;
    if (!c->cctx) {
        free(c);
        return NULL;
    }
    return c;
}

void ob_compressor_free(ob_compressor *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->cctx);
    free(c);
}

int ob_compress(ob_compressor *c, const uint8_t *in, size_t len, ob_buf *out)
{
    ob_buf_reset(out);
    if (len < 64)
        return OB_COMP_NONE;
    /* Only accept output that saves >= 1/32; bounding the destination to
     * that size also lets zstd give up early on incompressible input. */
    size_t limit = len - len / 32;
    ob_buf_reserve(out, limit);
    size_t n = ZSTD_compressCCtx(c->cctx, out->data, limit, in, len, c->level);
    if (ZSTD_isError(n) || n >= limit)
        return OB_COMP_NONE;
    out->len = n;
    return OB_COMP_ZSTD;
}

int ob_decompress(int method, const uint8_t *in, size_t len, size_t raw_len, ob_buf *out,
                  ob_err *err)
{
    ob_buf_reset(out);
    if (method == OB_COMP_NONE) {
        if (len != raw_len)
            return ob_err_set(err, OB_ECORRUPT, "stored length %zu differs from recorded %zu",
                              len, raw_len);
        ob_buf_append(out, in, len);
        return 0;
    }
    if (method != OB_COMP_ZSTD)
        return ob_err_set(err, OB_ECORRUPT, "unknown compression method %d", method);
    ob_buf_reserve(out, raw_len);
    size_t n = ZSTD_decompress(out->data, raw_len, in, len);
    if (ZSTD_isError(n))
        return ob_err_set(err, OB_ECORRUPT, "zstd: %s", ZSTD_getErrorName(n));
    if (n != raw_len)
        return ob_err_set(err, OB_ECORRUPT, "decompressed %zu bytes, expected %zu", n, raw_len);
    out->len = n;
    return 0;
}
