/*
 * scrypt.h — scrypt (RFC 7914) whose p lanes run on several threads.
 *
 * ob_scrypt (crypto.h) is the entry point everything uses; it picks the
 * number of threads.  This header exposes the variant with an explicit
 * thread count so the tests can hold every path to OpenSSL's result.
 * Why we compute the lanes ourselves: docs/DECISIONS.md D68.
 */
#ifndef OB_SCRYPT_H
#define OB_SCRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* scrypt with the lanes spread over `threads` threads (>= 1; fewer are
 * used if p is smaller, and a thread that cannot be started leaves its
 * lanes to the caller's thread).  N must be a power of two >= 2, r and p
 * >= 1.  Each thread holds 128 * r * N bytes while it runs.  The result is
 * the same as OpenSSL's EVP_PBE_scrypt for every thread count. */
int ob_scrypt_threads(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                      uint64_t N, uint32_t r, uint32_t p, int threads, uint8_t *out,
                      size_t outlen, ob_err *err);

#endif
