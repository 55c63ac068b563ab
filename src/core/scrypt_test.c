/*
 * scrypt_test.c — ob_scrypt_threads gives OpenSSL's EVP_PBE_scrypt result
 * for every thread count (RFC 7914's test vectors, the default key slot's
 * parameters, random inputs), and ob_scrypt agrees with both; parameters
 * scrypt does not define are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/crypto.h"
#include "core/scrypt.h"

static void openssl_scrypt(const char *pass, size_t passlen, const uint8_t *salt,
                           size_t saltlen, uint64_t N, uint32_t r, uint32_t p, uint8_t *out,
                           size_t outlen)
{
    assert_int_equal(EVP_PBE_scrypt(pass, passlen, salt, saltlen, N, r, p, 1ull << 30, out,
                                    outlen),
                     1);
}

/* Every thread count from 1 to p + 1 (more threads than lanes), and
 * ob_scrypt's own choice, against OpenSSL. */
static void check_all(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                      uint64_t N, uint32_t r, uint32_t p, size_t outlen)
{
    uint8_t *want = malloc(outlen), *got = malloc(outlen);
    openssl_scrypt(pass, passlen, salt, saltlen, N, r, p, want, outlen);
    ob_err err = OB_ERR_INIT;
    for (int t = 1; t <= (int)p + 1; t++) {
        memset(got, 0, outlen);
        assert_int_equal(
            ob_scrypt_threads(pass, passlen, salt, saltlen, N, r, p, t, got, outlen, &err), 0);
        assert_memory_equal(got, want, outlen);
    }
    memset(got, 0, outlen);
    assert_int_equal(ob_scrypt(pass, passlen, salt, saltlen, N, r, p, got, outlen, &err), 0);
    assert_memory_equal(got, want, outlen);
    free(want);
    free(got);
}

static void test_rfc7914_vectors(void **state)
{
    (void)state;
    static const uint8_t v1[64] = {
        0x77, 0xd6, 0x57, 0x62, 0x38, 0x65, 0x7b, 0x20, 0x3b, 0x19, 0xca, 0x42, 0xc1,
        0x8a, 0x04, 0x97, 0xf1, 0x6b, 0x48, 0x44, 0xe3, 0x07, 0x4a, 0xe8, 0xdf, 0xdf,
        0xfa, 0x3f, 0xed, 0xe2, 0x14, 0x42, 0xfc, 0xd0, 0x06, 0x9d, 0xed, 0x09, 0x48,
        0xf8, 0x32, 0x6a, 0x75, 0x3a, 0x0f, 0xc8, 0x1f, 0x17, 0xe8, 0xd3, 0xe0, 0xfb,
        0x2e, 0x0d, 0x36, 0x28, 0xcf, 0x35, 0xe2, 0x0c, 0x38, 0xd1, 0x89, 0x06};
    static const uint8_t v2[64] = {
        0xfd, 0xba, 0xbe, 0x1c, 0x9d, 0x34, 0x72, 0x00, 0x78, 0x56, 0xe7, 0x19, 0x0d,
        0x01, 0xe9, 0xfe, 0x7c, 0x6a, 0xd7, 0xcb, 0xc8, 0x23, 0x78, 0x30, 0xe7, 0x73,
        0x76, 0x63, 0x4b, 0x37, 0x31, 0x62, 0x2e, 0xaf, 0x30, 0xd9, 0x2e, 0x22, 0xa3,
        0x88, 0x6f, 0xf1, 0x09, 0x27, 0x9d, 0x98, 0x30, 0xda, 0xc7, 0x27, 0xaf, 0xb9,
        0x4a, 0x83, 0xee, 0x6d, 0x83, 0x60, 0xcb, 0xdf, 0xa2, 0xcc, 0x06, 0x40};
    uint8_t out[64];
    ob_err err = OB_ERR_INIT;
    assert_int_equal(ob_scrypt_threads("", 0, (const uint8_t *)"", 0, 16, 1, 1, 1, out, 64, &err),
                     0);
    assert_memory_equal(out, v1, 64);
    for (int t = 1; t <= 3; t++) {
        memset(out, 0, sizeof out);
        assert_int_equal(ob_scrypt_threads("password", 8, (const uint8_t *)"NaCl", 4, 1024, 8,
                                           16, t, out, 64, &err),
                         0);
        assert_memory_equal(out, v2, 64);
    }
    check_all("password", 8, (const uint8_t *)"NaCl", 4, 1024, 8, 16, 64);
}

/* What `init` writes into a new key slot (D51): N = 2^13, r = 8, p = 10,
 * a 32-byte salt, a 32-byte wrapping key. */
static void test_default_slot_parameters(void **state)
{
    (void)state;
    uint8_t salt[32];
    for (int i = 0; i < 32; i++)
        salt[i] = (uint8_t)(i * 37 + 1);
    check_all("correct horse battery staple", 28, salt, sizeof salt, 1 << 13, 8, 10, 32);
}

static void test_random_parameters(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 12; round++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        char pass[40];
        uint8_t salt[40];
        size_t passlen = (size_t)(seed >> 59), saltlen = (size_t)(seed >> 20) % 41;
        for (size_t i = 0; i < sizeof pass; i++)
            pass[i] = (char)(seed >> (i % 56));
        for (size_t i = 0; i < sizeof salt; i++)
            salt[i] = (uint8_t)(seed >> ((i + 3) % 56));
        uint64_t N = 2ull << ((seed >> 8) % 9); /* 2 ... 512 */
        uint32_t r = 1 + (uint32_t)((seed >> 16) % 4);
        uint32_t p = 1 + (uint32_t)((seed >> 24) % 5);
        size_t outlen = 1 + (size_t)((seed >> 32) % 80);
        check_all(pass, passlen, salt, saltlen, N, r, p, outlen);
    }
}

static void test_bad_parameters(void **state)
{
    (void)state;
    uint8_t out[32];
    ob_err err = OB_ERR_INIT;
    const uint8_t *s = (const uint8_t *)"salt";
    assert_int_equal(ob_scrypt_threads("pw", 2, s, 4, 1000, 8, 1, 1, out, 32, &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "out of range"));
    ob_err_clear(&err);
    assert_int_equal(ob_scrypt_threads("pw", 2, s, 4, 1, 8, 1, 1, out, 32, &err), -1);
    ob_err_clear(&err);
    assert_int_equal(ob_scrypt_threads("pw", 2, s, 4, 16, 0, 1, 1, out, 32, &err), -1);
    ob_err_clear(&err);
    assert_int_equal(ob_scrypt_threads("pw", 2, s, 4, 16, 1, 0, 1, out, 32, &err), -1);
    ob_err_clear(&err);
    assert_int_equal(ob_scrypt_threads("pw", 2, s, 4, 16, 1, 1, 0, out, 32, &err), -1);
    ob_err_clear(&err);
    /* More lane bytes than OpenSSL's PBKDF2 takes (an int). */
    assert_int_equal(ob_scrypt_threads("pw", 2, s, 4, 16, 8, 1u << 22, 1, out, 32, &err), -1);
    ob_err_clear(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7914_vectors),
        cmocka_unit_test(test_default_slot_parameters),
        cmocka_unit_test(test_random_parameters),
        cmocka_unit_test(test_bad_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
