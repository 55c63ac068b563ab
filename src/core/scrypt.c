/*
 * scrypt.c — scrypt (RFC 7914) with its p lanes on several threads.
 *
 * scrypt(P, S, N, r, p) is PBKDF2-HMAC-SHA256(P, S, 1, p * 128r) cut into p
 * lanes of 128r bytes, each lane replaced by ROMix(lane) (N BlockMix
 * steps to fill a table of N lanes, then N steps reading it at indexes the
 * data picks), and PBKDF2-HMAC-SHA256(P, lanes, 1, dkLen) of the result.
 * The lanes never look at each other, so they can run at the same time;
 * OpenSSL's EVP_PBE_scrypt runs them one after the other.  A new key slot
 * has p = 10 (D51), and every command derives a key before it can read the
 * repository (and a dump's chunker cannot start until then, with pg_dump
 * blocked on a full pipe): on two CPUs two threads halve that wait (D68).
 *
 * The PBKDF2 steps are OpenSSL's; only ROMix (BlockMix, Salsa20/8) is
 * here, written from RFC 7914.  test_scrypt holds every thread count to
 * EVP_PBE_scrypt's output.
 */
#include "core/scrypt.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "core/crypto.h"

/* What the tables of one derivation's threads may take together: two
 * tables of a default slot (8 MiB each, D51, which cut the table for the
 * backups' memory), and one thread for a slot whose table is 16 MiB or
 * more.  So a derivation never holds more than max(one table, 16 MiB),
 * however many CPUs there are. */
#define SCRYPT_PARALLEL_BYTES (16u << 20)

static uint32_t rotl(uint32_t a, int b)
{
    return (a << b) | (a >> (32 - b));
}

/* The Salsa20/8 core of RFC 7914 section 3, on 16 host-order words. */
static void salsa20_8(uint32_t b[16])
{
    uint32_t x[16];
    memcpy(x, b, sizeof x);
    for (int i = 0; i < 8; i += 2) {
        /* columns */
        x[4] ^= rotl(x[0] + x[12], 7);
        x[8] ^= rotl(x[4] + x[0], 9);
        x[12] ^= rotl(x[8] + x[4], 13);
        x[0] ^= rotl(x[12] + x[8], 18);
        x[9] ^= rotl(x[5] + x[1], 7);
        x[13] ^= rotl(x[9] + x[5], 9);
        x[1] ^= rotl(x[13] + x[9], 13);
        x[5] ^= rotl(x[1] + x[13], 18);
        x[14] ^= rotl(x[10] + x[6], 7);
        x[2] ^= rotl(x[14] + x[10], 9);
        x[6] ^= rotl(x[2] + x[14], 13);
        x[10] ^= rotl(x[6] + x[2], 18);
        x[3] ^= rotl(x[15] + x[11], 7);
        x[7] ^= rotl(x[3] + x[15], 9);
        x[11] ^= rotl(x[7] + x[3], 13);
        x[15] ^= rotl(x[11] + x[7], 18);
        /* rows */
        x[1] ^= rotl(x[0] + x[3], 7);
        x[2] ^= rotl(x[1] + x[0], 9);
        x[3] ^= rotl(x[2] + x[1], 13);
        x[0] ^= rotl(x[3] + x[2], 18);
        x[6] ^= rotl(x[5] + x[4], 7);
        x[7] ^= rotl(x[6] + x[5], 9);
        x[4] ^= rotl(x[7] + x[6], 13);
        x[5] ^= rotl(x[4] + x[7], 18);
        x[11] ^= rotl(x[10] + x[9], 7);
        x[8] ^= rotl(x[11] + x[10], 9);
        x[9] ^= rotl(x[8] + x[11], 13);
        x[10] ^= rotl(x[9] + x[8], 18);
        x[12] ^= rotl(x[15] + x[14], 7);
        x[13] ^= rotl(x[12] + x[15], 9);
        x[14] ^= rotl(x[13] + x[12], 13);
        x[15] ^= rotl(x[14] + x[13], 18);
    }
    for (int i = 0; i < 16; i++)
        b[i] += x[i];
}

/* BlockMix (section 4) of the 2r 64-byte blocks in, into out (not in):
 * the even-numbered outputs first, then the odd ones. */
static void blockmix(const uint32_t *in, uint32_t *out, uint32_t r)
{
    uint32_t x[16];
    memcpy(x, &in[(2 * (size_t)r - 1) * 16], sizeof x);
    for (size_t i = 0; i < 2 * (size_t)r; i++) {
        for (int k = 0; k < 16; k++)
            x[k] ^= in[i * 16 + k];
        salsa20_8(x);
        memcpy(&out[((i & 1) * r + i / 2) * 16], x, sizeof x);
    }
}

/* ROMix (section 5) of one lane of 128r bytes, in place.  v holds N * 32r
 * words, xy 64r words. */
static void romix(uint8_t *lane, uint32_t r, uint64_t N, uint32_t *v, uint32_t *xy)
{
    const size_t w = 32 * (size_t)r; /* words in a lane */
    uint32_t *x = xy, *y = xy + w, *t;
    for (size_t k = 0; k < w; k++) /* RFC 7914 integers are little-endian */
        x[k] = (uint32_t)lane[4 * k] | (uint32_t)lane[4 * k + 1] << 8 |
               (uint32_t)lane[4 * k + 2] << 16 | (uint32_t)lane[4 * k + 3] << 24;
    for (uint64_t i = 0; i < N; i++) {
        memcpy(&v[i * w], x, w * sizeof *x);
        blockmix(x, y, r);
        t = x, x = y, y = t;
    }
    for (uint64_t i = 0; i < N; i++) {
        /* Integerify: the last block's first 64 bits, mod N. */
        const uint32_t *last = &x[w - 16];
        uint64_t j = ((uint64_t)last[1] << 32 | last[0]) & (N - 1);
        for (size_t k = 0; k < w; k++)
            x[k] ^= v[j * w + k];
        blockmix(x, y, r);
        t = x, x = y, y = t;
    }
    for (size_t k = 0; k < w; k++) {
        lane[4 * k] = (uint8_t)x[k];
        lane[4 * k + 1] = (uint8_t)(x[k] >> 8);
        lane[4 * k + 2] = (uint8_t)(x[k] >> 16);
        lane[4 * k + 3] = (uint8_t)(x[k] >> 24);
    }
}

typedef struct lanes_job {
    uint8_t *b; /* all p lanes */
    uint32_t r, p;
    uint64_t N;
    uint32_t first, step; /* this job's lanes: first, first + step, ... */
    int failed;           /* no memory for the table */
} lanes_job;

static void *lanes_run(void *arg)
{
    lanes_job *j = arg;
    const size_t w = 32 * (size_t)j->r;
    size_t vbytes = (size_t)j->N * w * sizeof(uint32_t), xybytes = 2 * w * sizeof(uint32_t);
    uint32_t *v = malloc(vbytes), *xy = malloc(xybytes);
    if (!v || !xy) {
        j->failed = 1;
    } else {
        for (uint32_t i = j->first; i < j->p; i += j->step)
            romix(j->b + (size_t)i * 128 * j->r, j->r, j->N, v, xy);
    }
    /* The tables are derived from the password. */
    if (v)
        OPENSSL_cleanse(v, vbytes);
    if (xy)
        OPENSSL_cleanse(xy, xybytes);
    free(v);
    free(xy);
    return NULL;
}

int ob_scrypt_threads(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                      uint64_t N, uint32_t r, uint32_t p, int threads, uint8_t *out,
                      size_t outlen, ob_err *err)
{
    /* OpenSSL's PBKDF2 takes int lengths. */
    if (N < 2 || (N & (N - 1)) || r < 1 || p < 1 || threads < 1 || outlen == 0 ||
        outlen > INT_MAX || passlen > INT_MAX || saltlen > INT_MAX ||
        N > SIZE_MAX / 128 / r || (uint64_t)p * 128 * r > INT_MAX)
        return ob_err_set(err, OB_EFAIL, "scrypt parameters out of range (N=%llu r=%u p=%u)",
                          (unsigned long long)N, r, p);
    if ((uint32_t)threads > p)
        threads = (int)p;
    size_t blen = (size_t)p * 128 * r;
    uint8_t *b = malloc(blen);
    lanes_job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    int *started = calloc((size_t)threads, sizeof *started);
    int rc = -1;
    if (!b || !jobs || !tids || !started) {
        ob_err_set(err, OB_EFAIL, "scrypt key derivation: out of memory");
        goto out;
    }
    if (PKCS5_PBKDF2_HMAC(pass, (int)passlen, salt, (int)saltlen, 1, EVP_sha256(), (int)blen,
                          b) != 1)
        goto ossl_fail;
    for (int t = 0; t < threads; t++)
        jobs[t] = (lanes_job){b, r, p, N, (uint32_t)t, (uint32_t)threads, 0};
    /* Job 0 runs here; a thread that does not start leaves its job to us. */
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&tids[t], NULL, lanes_run, &jobs[t]) == 0;
    lanes_run(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            lanes_run(&jobs[t]);
    }
    for (int t = 0; t < threads; t++) {
        if (jobs[t].failed) {
            ob_err_set(err, OB_EFAIL,
                       "scrypt key derivation failed (N=%llu r=%u p=%u; not enough memory?)",
                       (unsigned long long)N, r, p);
            goto out;
        }
    }
    if (PKCS5_PBKDF2_HMAC(pass, (int)passlen, b, (int)blen, 1, EVP_sha256(), (int)outlen,
                          out) != 1)
        goto ossl_fail;
    rc = 0;
    goto out;
ossl_fail:
    ERR_clear_error();
    ob_err_set(err, OB_EFAIL, "scrypt key derivation failed (PBKDF2)");
out:
    if (b)
        OPENSSL_cleanse(b, blen);
    free(b);
    free(jobs);
    free(tids);
    free(started);
    return rc;
}

int ob_scrypt(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint64_t N,
              uint32_t r, uint32_t p, uint8_t *out, size_t outlen, ob_err *err)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t table = 128ull * r * N;
    uint64_t fit = table && table < SCRYPT_PARALLEL_BYTES ? SCRYPT_PARALLEL_BYTES / table : 1;
    uint64_t threads = cpus > 1 ? (uint64_t)cpus : 1;
    if (threads > p)
        threads = p;
    if (threads > fit)
        threads = fit;
    if (threads > 1)
        return ob_scrypt_threads(pass, passlen, salt, saltlen, N, r, p, (int)threads, out,
                                 outlen, err);
    /* One lane at a time: OpenSSL's.  Allow up to 4x the nominal memory
     * (128 * N * r) so OpenSSL does not refuse parameters we wrote
     * ourselves. */
    uint64_t maxmem = table * 4 + (1u << 20);
    if (EVP_PBE_scrypt(pass, passlen, salt, saltlen, N, r, p, maxmem, out, outlen) != 1) {
        ERR_clear_error();
        return ob_err_set(err, OB_EFAIL,
                          "scrypt key derivation failed (N=%llu r=%u p=%u; not enough memory?)",
                          (unsigned long long)N, r, p);
    }
    return 0;
}
