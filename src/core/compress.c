#include "core/compress.h"

#include <pthread.h>
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

/*
 * One decompression context per thread, kept until the thread exits.
 * ZSTD_decompress makes and frees a context on every call, and making one
 * runs CPUID twice (zstd's BMI2 detection), which on a virtual machine traps
 * to the hypervisor.  A physical restore decompresses one 8 KiB block per
 * call (~85,000 for the bench cluster): perf put 21 % of its CPU on those
 * two instructions.  ob_decompress is called from many threads (restore
 * workers, check, copy) through pack_open_blob, so the context lives in
 * thread-specific data rather than in every caller.  NULL (out of memory)
 * falls back to ZSTD_decompress, which makes its own.
 */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static int dctx_key_ok;

static void dctx_free(void *p)
{
    ZSTD_freeDCtx(p);
}

static void dctx_key_make(void)
{
    dctx_key_ok = pthread_key_create(&dctx_key, dctx_free) == 0;
}

static ZSTD_DCtx *thread_dctx(void)
{
    pthread_once(&dctx_once, dctx_key_make);
    if (!dctx_key_ok)
        return NULL;
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (!d) {
        d = ZSTD_createDCtx();
        if (d && pthread_setspecific(dctx_key, d) != 0) {
            ZSTD_freeDCtx(d);
            d = NULL;
        }
    }
    return d;
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
    ZSTD_DCtx *d = thread_dctx();
    size_t n = d ? ZSTD_decompressDCtx(d, out->data, raw_len, in, len)
                 : ZSTD_decompress(out->data, raw_len, in, len);
    if (ZSTD_isError(n))
        return ob_err_set(err, OB_ECORRUPT, "zstd: %s", ZSTD_getErrorName(n));
    if (n != raw_len)
        return ob_err_set(err, OB_ECORRUPT, "decompressed %zu bytes, expected %zu", n, raw_len);
    out->len = n;
    return 0;
}
