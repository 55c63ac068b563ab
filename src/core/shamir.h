/*
 * shamir.h — Shamir's secret sharing over GF(2^8), byte by byte.
 *
 * A secret of L bytes is split into N shares of L bytes each, such that any
 * K of them give the secret back and K - 1 or fewer say nothing about it.
 * Byte i of the secret is the constant term of a random polynomial of
 * degree K - 1 over GF(2^8) (the AES field, reduction polynomial
 * x^8 + x^4 + x^3 + x + 1 = 0x11b); share number x (1 ... N) holds the
 * polynomial's values at x.  The random coefficients come from the OS CSPRNG
 * (ob_random).
 *
 * The field arithmetic on secret bytes is constant-time: multiplication is
 * a fixed 8-round shift-and-add with masks, never a log/exp table lookup
 * indexed by a secret byte (a cache-timing side channel); see
 * docs/DECISIONS.md.  The x coordinates are public.
 *
 * What shares mean to opsbackup (the master key, the printable form) is the
 * job of repo/escrow.h; this module only does the arithmetic.  All buffers
 * belong to the caller; nothing is kept between calls.
 */
#ifndef OB_SHAMIR_H
#define OB_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SHAMIR_MAX_SHARES 255 /* x = 1 ... 255: every non-zero field element */

/* Split secret (len bytes) into n shares with threshold k
 * (1 <= k <= n <= 255, len >= 1).  shares receives n * len bytes: share j
 * (x = j + 1) is shares[j * len ... (j + 1) * len).  OB_EUSAGE for bad
 * parameters. */
int shamir_split(const uint8_t *secret, size_t len, unsigned k, unsigned n, uint8_t *shares,
                 ob_err *err);

/* The same with caller-supplied coefficients (known-answer tests):
 * coeffs holds (k - 1) * len bytes, coefficient of x^d (d = 1 ... k - 1)
 * for secret byte i at coeffs[(d - 1) * len + i]. */
int shamir_split_with(const uint8_t *secret, size_t len, unsigned k, unsigned n,
                      const uint8_t *coeffs, uint8_t *shares, ob_err *err);

/* Interpolate at 0 from count shares: xs[j] is share j's x (1 ... 255, all
 * different), ys[j] its len bytes.  With at least k shares of one split the
 * result is the secret; with fewer it is a meaningless value (the caller
 * must check the threshold: the arithmetic cannot tell).  OB_EUSAGE for a
 * zero or repeated x. */
int shamir_combine(const uint8_t *xs, const uint8_t *const *ys, unsigned count, size_t len,
                   uint8_t *secret, ob_err *err);

/* Field operations, exposed for the tests.  Both are constant-time. */
uint8_t shamir_gf_mul(uint8_t a, uint8_t b);
uint8_t shamir_gf_inv(uint8_t a); /* a^254; 0 maps to 0 */

#endif
