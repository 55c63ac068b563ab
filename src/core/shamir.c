/*
 * shamir.c — Shamir's secret sharing over GF(2^8) (see shamir.h).
 *
 * Arithmetic in GF(2^8) with the AES polynomial 0x11b: addition is XOR,
 * multiplication is carry-less multiplication reduced modulo 0x11b.  We
 * compute it with a fixed number of shifts and masked XORs so that the time
 * and the memory accesses do not depend on the operands: the usual log/exp
 * tables would index memory with secret bytes (the polynomial coefficients
 * and the share values), which leaks them through the cache on a shared
 * machine.  The cost (a few dozen instructions per product) is irrelevant
 * for 64-byte secrets.
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/shamir.h"

uint8_t shamir_gf_mul(uint8_t a, uint8_t b)
{
    unsigned r = 0, x = a, y = b;
    for (int i = 0; i < 8; i++) {
        r ^= x & (0u - (y & 1u));        /* add x if the low bit of y is set */
        y >>= 1;
        unsigned hi = 0u - ((x >> 7) & 1u); /* all ones if x overflows */
        x = ((x << 1) ^ (0x11bu & hi)) & 0xffu;
    }
    return (uint8_t)r;
}

uint8_t shamir_gf_inv(uint8_t a)
{
    /* a^254 = a^-1 in GF(2^8)* (a^255 = 1), and 0^254 = 0.  A fixed
     * addition chain: 254 = 0b11111110. */
    uint8_t a2 = shamir_gf_mul(a, a);       /* a^2 */
    uint8_t r = a2;                          /* a^2 */
    uint8_t p = a2;
    for (int i = 0; i < 6; i++) {
        p = shamir_gf_mul(p, p);             /* a^4, a^8, ..., a^128 */
        r = shamir_gf_mul(r, p);             /* a^6, a^14, ..., a^254 */
    }
    return r;
}

static int check_params(size_t len, unsigned k, unsigned n, ob_err *err)
{
    if (len == 0)
        return ob_err_set(err, OB_EUSAGE, "secret sharing: the secret is empty");
    if (k < 1 || n < 1 || n > SHAMIR_MAX_SHARES)
        return ob_err_set(err, OB_EUSAGE,
                          "secret sharing: the number of shares must be 1 ... %d and the "
                          "threshold at least 1 (got %u shares, threshold %u)",
                          SHAMIR_MAX_SHARES, n, k);
    if (k > n)
        return ob_err_set(err, OB_EUSAGE,
                          "secret sharing: the threshold (%u) cannot exceed the number of "
                          "shares (%u)",
                          k, n);
    return 0;
}

int shamir_split_with(const uint8_t *secret, size_t len, unsigned k, unsigned n,
                      const uint8_t *coeffs, uint8_t *shares, ob_err *err)
{
    if (check_params(len, k, n, err) < 0)
        return -1;
    for (unsigned j = 0; j < n; j++) {
        uint8_t x = (uint8_t)(j + 1);
        uint8_t *out = shares + (size_t)j * len;
        for (size_t i = 0; i < len; i++) {
            /* Horner: ((a_{k-1} x + a_{k-2}) x + ... + a_1) x + secret */
            uint8_t y = 0;
            for (unsigned d = k - 1; d >= 1; d--)
                y = shamir_gf_mul(y, x) ^ coeffs[(size_t)(d - 1) * len + i];
            out[i] = shamir_gf_mul(y, x) ^ secret[i];
        }
    }
    return 0;
}

int shamir_split(const uint8_t *secret, size_t len, unsigned k, unsigned n, uint8_t *shares,
                 ob_err *err)
{
    if (check_params(len, k, n, err) < 0)
        return -1;
    size_t clen = (size_t)(k - 1) * len;
    uint8_t *coeffs = ob_xmalloc(clen ? clen : 1);
    int rc = ob_random(coeffs, clen, err);
    if (rc == 0)
        rc = shamir_split_with(secret, len, k, n, coeffs, shares, err);
    /* The coefficients determine the secret from any one share: wipe. */
    ob_wipe(coeffs, clen);
    free(coeffs);
    return rc;
}

int shamir_combine(const uint8_t *xs, const uint8_t *const *ys, unsigned count, size_t len,
                   uint8_t *secret, ob_err *err)
{
    if (count < 1 || count > SHAMIR_MAX_SHARES || len == 0)
        return ob_err_set(err, OB_EUSAGE, "secret sharing: need 1 ... %d shares, got %u",
                          SHAMIR_MAX_SHARES, count);
    for (unsigned j = 0; j < count; j++) {
        if (xs[j] == 0)
            return ob_err_set(err, OB_EUSAGE, "secret sharing: share %u has index 0", j + 1);
        for (unsigned m = 0; m < j; m++)
            if (xs[m] == xs[j])
                return ob_err_set(err, OB_EUSAGE,
                                  "secret sharing: shares %u and %u have the same index %u", m + 1,
                                  j + 1, xs[j]);
    }
    memset(secret, 0, len);
    for (unsigned j = 0; j < count; j++) {
        /* Lagrange basis polynomial j at 0: prod over m != j of
         * x_m / (x_m - x_j), and subtraction is XOR. */
        uint8_t num = 1, den = 1;
        for (unsigned m = 0; m < count; m++) {
            if (m == j)
                continue;
            num = shamir_gf_mul(num, xs[m]);
            den = shamir_gf_mul(den, xs[m] ^ xs[j]);
        }
        uint8_t l = shamir_gf_mul(num, shamir_gf_inv(den));
        for (size_t i = 0; i < len; i++)
            secret[i] ^= shamir_gf_mul(l, ys[j][i]);
    }
    return 0;
}
