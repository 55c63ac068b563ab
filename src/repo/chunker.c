/*
 * chunker.c — FastCDC content-defined chunking with normalized chunking.
 *
 * The algorithm (Xia et al., "FastCDC", USENIX ATC 2016 and IEEE TPDS 2020):
 *
 *   - A "gear" hash: h = (h << 1) + gear[byte].  Because of the shift, a byte
 *     that entered the hash 64 steps ago has been shifted out completely, so
 *     the hash is a rolling hash over the last 64 bytes without any explicit
 *     "remove the old byte" step.  That makes it roughly twice as fast as
 *     Rabin or buzhash: one table load, one shift-and-add (a single LEA on
 *     x86-64), one test and one branch per byte.
 *
 *   - Cut-point skipping: no cut may happen before min_size, so the first
 *     min_size bytes of a chunk are not hashed at all.  With the default
 *     parameters that alone skips about 40% of the input.
 *
 *   - Normalized chunking: up to avg_size bytes the cut condition uses a mask
 *     with two more bits than log2(avg) (cut probability 1/(4*avg) per byte);
 *     past avg_size it uses two fewer bits (1/(avg/4) per byte).  This pulls
 *     the chunk size distribution tightly around avg instead of the long
 *     exponential tail of plain CDC, which both improves deduplication and
 *     makes max_size cuts (which do not resynchronise after an insertion)
 *     rare.
 *
 *   - max_size is a hard cut, so a run of identical bytes (whose hash becomes
 *     constant) still produces bounded chunks.
 *
 * Which bits the mask tests.  The paper spreads the mask bits over the whole
 * 64-bit word because bit k of a gear hash depends only on the last k + 1
 * bytes: a mask of low bits would make the cut decision depend on only a
 * dozen bytes of context, so small local patterns would cut far too often.
 * We use the TOP bits instead: bit 63 depends on the last 64 bytes and bit
 * 64 - n on the last 65 - n, so the decision always sees at least ~40 bytes
 * of context (n <= 27 here), which is as good as the spread mask, and the
 * mask needs no magic table.
 *
 * The gear table is keyed: 256 pseudo-random 64-bit values derived from the
 * repository's secret chunker seed with HMAC-SHA-256 (see derive_gear).  The
 * derivation is part of the repository format — changing it moves every
 * chunk boundary, so new backups would no longer deduplicate against old
 * ones.  chunker_test.c pins it with a known-answer test.
 *
 * We do not use the FastCDC 2020 "roll two bytes per iteration" variant: it
 * changes which positions are tested (so it is a different chunker, not a
 * faster implementation of this one) and the plain loop already runs at
 * well over 1 GB/s because the hash update is a single-cycle dependency.
 */
#include "repo/chunker.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crypto.h"

#define CHUNKER_MIN_MIN 64u

struct chunker {
    chunker_params p;
    uint64_t mask_s; /* strict mask, for chunk lengths up to avg_size */
    uint64_t mask_l; /* loose mask, for chunk lengths past avg_size */
    uint64_t gear[256];
    int fixed;       /* chunker_new_fixed: every chunk is max_size bytes */
};

/* A mask of the top `bits` bits of a 64-bit word (1 <= bits <= 63). */
static uint64_t top_mask(unsigned bits)
{
    return ~(uint64_t)0 << (64 - bits);
}

static unsigned log2_u32(uint32_t v)
{
    unsigned n = 0;
    while (v >>= 1)
        n++;
    return n;
}

/*
 * gear[4k .. 4k+3] are the four little-endian 64-bit words of
 * HMAC-SHA-256(seed, "opsbackup-v1 gear" || 0x00 || le32(k)), k = 0..63.
 * HMAC is a PRF, so the table is indistinguishable from random to anyone
 * without the seed, and the fixed-endian counter makes it identical on every
 * platform.  Returns -1 if the HMAC failed (ob_hmac_sha256 then yields zeros;
 * a zero table would cut every chunk at min_size + 1 regardless of the data,
 * silently destroying deduplication, so we refuse instead).
 */
static int derive_gear(uint64_t gear[256], const uint8_t seed[32])
{
    static const uint8_t zero[OB_KEY_LEN];
    uint8_t block[OB_KEY_LEN], ctr[4];
    int ok = 1;

    for (uint32_t k = 0; k < 64; k++) {
        ob_le32(ctr, k);
        ob_kdf(seed, "opsbackup-v1 gear", ctr, sizeof ctr, block);
        if (memcmp(block, zero, sizeof block) == 0)
            ok = 0;
        for (unsigned j = 0; j < 4; j++) {
            const uint8_t *b = block + 8 * j;
            gear[4 * k + j] = (uint64_t)ob_get_le32(b) | (uint64_t)ob_get_le32(b + 4) << 32;
        }
    }
    ob_wipe(block, sizeof block);
    return ok ? 0 : -1;
}

static int params_valid(const chunker_params *p)
{
    if (p->min_size < CHUNKER_MIN_MIN || p->max_size > CHUNKER_MAX_MAX)
        return 0;
    if (p->avg_size == 0 || (p->avg_size & (p->avg_size - 1)) != 0)
        return 0;
    return p->min_size < p->avg_size && p->avg_size < p->max_size;
}

chunker *chunker_new(const chunker_params *params, const uint8_t seed[32])
{
    if (!params || !seed || !params_valid(params))
        return NULL;

    chunker *c = ob_xcalloc(1, sizeof *c);
    c->p = *params;
    /* avg is in [128, 32 MiB], so bits is in [7, 25] and both masks have
     * between 5 and 27 bits: always a valid shift for top_mask. */
    unsigned bits = log2_u32(params->avg_size);
    c->mask_s = top_mask(bits + 2);
    c->mask_l = top_mask(bits - 2);
    if (derive_gear(c->gear, seed) < 0) {
        chunker_free(c);
        return NULL;
    }
    return c;
}

chunker *chunker_new_fixed(uint32_t size)
{
    if (size < CHUNKER_MIN_MIN || size > CHUNKER_MAX_MAX)
        return NULL;
    chunker *c = ob_xcalloc(1, sizeof *c);
    c->p.min_size = c->p.avg_size = c->p.max_size = size;
    c->fixed = 1;
    return c;
}

void chunker_free(chunker *c)
{
    if (!c)
        return;
    /* The table is derived from the repository secret: do not leave it in
     * freed memory. */
    ob_wipe(c->gear, sizeof c->gear);
    free(c);
}

const chunker_params *chunker_get_params(const chunker *c)
{
    return &c->p;
}

size_t chunker_next(const chunker *c, const uint8_t *data, size_t len, int eof)
{
    return chunker_next_from(c, data, len, eof, 0);
}

size_t chunker_next_from(const chunker *c, const uint8_t *data, size_t len, int eof,
                         size_t scanned)
{
    const size_t min = c->p.min_size, avg = c->p.avg_size, max = c->p.max_size;

    if (len == 0)
        return 0;
    if (c->fixed)
        return len >= max ? max : eof ? len : 0;

    /* Only data[0 .. n) can hold the cut.  The cut decision at byte i looks
     * at data[min .. i] only, so whatever we find here is the same cut a
     * later call with more data would find: the chunker needs no state
     * between calls. */
    size_t n = len < max ? len : max;
    if (n > min) {
        /* Locals, not c->..., so the compiler keeps everything in registers
         * without having to prove that data does not alias *c. */
        const uint64_t *gear = c->gear;
        const uint64_t mask_s = c->mask_s, mask_l = c->mask_l;
        uint64_t h = 0;
        size_t i = min;
        size_t mid = n < avg ? n : avg;

        /* Resuming: positions before `scanned` were tested by an earlier
         * call and held no cut.  The hash at a position depends on the 64
         * bytes before it at most (each byte is shifted out after 64
         * steps), so rebuilding it over those is the same as having run
         * from min. */
        if (scanned > n)
            scanned = n;
        if (scanned > min) {
            for (i = scanned - min > 64 ? scanned - 64 : min; i < scanned; i++)
                h = (h << 1) + gear[data[i]];
        }

        /* A cut "at i" ends the chunk after data[i], so a chunk's end depends
         * only on its own bytes. */
        for (; i < mid; i++) {
            h = (h << 1) + gear[data[i]];
            if (!(h & mask_s))
                return i + 1;
        }
        for (; i < n; i++) {
            h = (h << 1) + gear[data[i]];
            if (!(h & mask_l))
                return i + 1;
        }
    }

    if (len >= max)
        return max;
    return eof ? len : 0;
}
