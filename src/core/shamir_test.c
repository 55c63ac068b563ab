/*
 * shamir_test.c — Shamir's secret sharing over GF(2^8) against answers
 * worked out by hand, and the threshold property on every subset.
 *
 * Hand-derived facts used below (all in GF(2^8) mod 0x11b, + is XOR):
 *   {57}·{83} = {c1} and {57}·{13} = {fe}   (FIPS-197 §4.2 examples)
 *   {53}^-1 = {ca}                           (FIPS-197 §5.1.1 example)
 *   {02}·{02} = {04}, {02}·{03} = {06}, {03}·{03} = {05}, {05}·{05} = {11},
 *   {04}·{04} = {10}, {57}·{03} = {57}·{02} + {57} = {ae} + {57} = {f9}.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/shamir.h"

static void test_field(void **state)
{
    (void)state;
    assert_int_equal(shamir_gf_mul(0x57, 0x83), 0xc1);
    assert_int_equal(shamir_gf_mul(0x83, 0x57), 0xc1);
    assert_int_equal(shamir_gf_mul(0x57, 0x13), 0xfe);
    assert_int_equal(shamir_gf_mul(0x03, 0x03), 0x05);
    assert_int_equal(shamir_gf_mul(0x05, 0x05), 0x11);
    assert_int_equal(shamir_gf_inv(0x53), 0xca);
    assert_int_equal(shamir_gf_inv(0x01), 0x01);
    assert_int_equal(shamir_gf_inv(0x00), 0x00);
    /* Every non-zero element times its inverse is 1; 0 and 1 behave. */
    for (unsigned a = 0; a < 256; a++) {
        assert_int_equal(shamir_gf_mul((uint8_t)a, 0), 0);
        assert_int_equal(shamir_gf_mul((uint8_t)a, 1), a);
        if (a)
            assert_int_equal(shamir_gf_mul((uint8_t)a, shamir_gf_inv((uint8_t)a)), 1);
    }
}

/* K = 2, one-byte secret {53}, a1 = {02}: y(x) = {53} + {02}·x. */
static void test_kat_k2(void **state)
{
    (void)state;
    uint8_t secret[1] = {0x53}, coeffs[1] = {0x02}, shares[3];
    assert_int_equal(shamir_split_with(secret, 1, 2, 3, coeffs, shares, NULL), 0);
    assert_int_equal(shares[0], 0x51); /* 53 + 02 */
    assert_int_equal(shares[1], 0x57); /* 53 + 04 */
    assert_int_equal(shares[2], 0x55); /* 53 + 06 */
    /* Shares 2 and 3 give the secret back. */
    uint8_t xs[2] = {2, 3}, out[1];
    const uint8_t *ys[2] = {&shares[1], &shares[2]};
    assert_int_equal(shamir_combine(xs, ys, 2, 1, out, NULL), 0);
    assert_int_equal(out[0], 0x53);
}

/* K = 3, a1 = a2 = {01}: y(x) = {53} + x + x². */
static void test_kat_k3(void **state)
{
    (void)state;
    uint8_t secret[1] = {0x53}, coeffs[2] = {0x01, 0x01}, shares[5];
    assert_int_equal(shamir_split_with(secret, 1, 3, 5, coeffs, shares, NULL), 0);
    static const uint8_t want[5] = {
        0x53, /* x=1: 53 + 01 + 01 */
        0x55, /* x=2: 53 + 02 + 04 */
        0x55, /* x=3: 53 + 03 + 05 */
        0x47, /* x=4: 53 + 04 + 10 */
        0x47, /* x=5: 53 + 05 + 11 */
    };
    assert_memory_equal(shares, want, 5);
}

/* Two bytes, K = 2: coefficients per byte are independent. */
static void test_kat_two_bytes(void **state)
{
    (void)state;
    uint8_t secret[2] = {0x53, 0xca}, coeffs[2] = {0x02, 0x57}, shares[6];
    assert_int_equal(shamir_split_with(secret, 2, 2, 3, coeffs, shares, NULL), 0);
    /* x=3: 53 + 02·03 = 55; ca + 57·03 = ca + f9 = 33 */
    assert_int_equal(shares[4], 0x55);
    assert_int_equal(shares[5], 0x33);
}

/* Every 3 of 5 shares of a 64-byte secret recover it; every 2 do not. */
static void test_every_subset_5_3(void **state)
{
    (void)state;
    uint8_t secret[64], shares[5 * 64], out[64];
    assert_int_equal(ob_random(secret, sizeof secret, NULL), 0);
    assert_int_equal(shamir_split(secret, 64, 3, 5, shares, NULL), 0);
    int threes = 0, twos = 0;
    for (unsigned mask = 0; mask < 32; mask++) {
        uint8_t xs[5];
        const uint8_t *ys[5];
        unsigned c = 0;
        for (unsigned j = 0; j < 5; j++)
            if (mask & (1u << j)) {
                xs[c] = (uint8_t)(j + 1);
                ys[c++] = shares + j * 64;
            }
        if (c < 2)
            continue;
        assert_int_equal(shamir_combine(xs, ys, c, 64, out, NULL), 0);
        if (c >= 3) {
            assert_memory_equal(out, secret, 64);
            threes += c == 3;
        } else {
            assert_memory_not_equal(out, secret, 64);
            twos++;
        }
    }
    assert_int_equal(threes, 10);
    assert_int_equal(twos, 10);
}

/* Threshold 1: every share is the secret itself. */
static void test_threshold_one(void **state)
{
    (void)state;
    uint8_t secret[64], shares[4 * 64], out[64];
    assert_int_equal(ob_random(secret, sizeof secret, NULL), 0);
    assert_int_equal(shamir_split(secret, 64, 1, 4, shares, NULL), 0);
    for (unsigned j = 0; j < 4; j++) {
        assert_memory_equal(shares + j * 64, secret, 64);
        uint8_t x = (uint8_t)(j + 1);
        const uint8_t *y = shares + j * 64;
        assert_int_equal(shamir_combine(&x, &y, 1, 64, out, NULL), 0);
        assert_memory_equal(out, secret, 64);
    }
}

/* N = 255 (the largest): first K, last K, and all 255 with K = 255. */
static void test_255(void **state)
{
    (void)state;
    enum { L = 64 };
    uint8_t secret[L], out[L];
    uint8_t *shares = malloc(255 * L);
    uint8_t xs[255];
    const uint8_t *ys[255];
    assert_int_equal(ob_random(secret, sizeof secret, NULL), 0);
    for (unsigned k = 2; k <= 255; k += 253) { /* k = 2 and k = 255 */
        assert_int_equal(shamir_split(secret, L, k, 255, shares, NULL), 0);
        for (unsigned j = 0; j < k; j++) {
            xs[j] = (uint8_t)(j + 1);
            ys[j] = shares + j * L;
        }
        assert_int_equal(shamir_combine(xs, ys, k, L, out, NULL), 0);
        assert_memory_equal(out, secret, L);
        for (unsigned j = 0; j < k; j++) {
            xs[j] = (uint8_t)(255 - j);
            ys[j] = shares + (254 - j) * L;
        }
        assert_int_equal(shamir_combine(xs, ys, k, L, out, NULL), 0);
        assert_memory_equal(out, secret, L);
        if (k == 255) { /* one short of the threshold */
            assert_int_equal(shamir_combine(xs, ys, 254, L, out, NULL), 0);
            assert_memory_not_equal(out, secret, L);
        }
    }
    free(shares);
}

static void test_invalid(void **state)
{
    (void)state;
    uint8_t secret[4] = {1, 2, 3, 4}, shares[256 * 4], out[4];
    ob_err e = OB_ERR_INIT;
    assert_int_equal(shamir_split(secret, 4, 0, 3, shares, &e), -1); /* k = 0 */
    assert_int_equal(e.code, OB_EUSAGE);
    ob_err_clear(&e);
    assert_int_equal(shamir_split(secret, 4, 4, 3, shares, &e), -1); /* k > n */
    assert_non_null(strstr(ob_err_msg(&e), "cannot exceed"));
    ob_err_clear(&e);
    assert_int_equal(shamir_split(secret, 4, 2, 256, shares, &e), -1); /* n > 255 */
    ob_err_clear(&e);
    assert_int_equal(shamir_split(secret, 4, 1, 0, shares, &e), -1); /* n = 0 */
    ob_err_clear(&e);
    assert_int_equal(shamir_split(secret, 0, 2, 3, shares, &e), -1); /* empty */
    ob_err_clear(&e);

    assert_int_equal(shamir_split(secret, 4, 2, 3, shares, NULL), 0);
    uint8_t xs[2] = {1, 1};
    const uint8_t *ys[2] = {shares, shares + 4};
    assert_int_equal(shamir_combine(xs, ys, 2, 4, out, &e), -1); /* same x twice */
    assert_non_null(strstr(ob_err_msg(&e), "same index"));
    ob_err_clear(&e);
    xs[0] = 0;
    assert_int_equal(shamir_combine(xs, ys, 2, 4, out, &e), -1); /* x = 0 is the secret */
    ob_err_clear(&e);
    assert_int_equal(shamir_combine(xs, ys, 0, 4, out, &e), -1); /* no shares */
    ob_err_clear(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field),
        cmocka_unit_test(test_kat_k2),
        cmocka_unit_test(test_kat_k3),
        cmocka_unit_test(test_kat_two_bytes),
        cmocka_unit_test(test_every_subset_5_3),
        cmocka_unit_test(test_threshold_one),
        cmocka_unit_test(test_255),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
