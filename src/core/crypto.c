#include "core/crypto.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

struct ob_sha256_ctx {
    EVP_MD_CTX *md;
};

int ob_random(void *out, size_t n, ob_err *err)
{
    uint8_t *p = out;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ob_err_errno(err, errno, "reading the system random generator");
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

void ob_sha256(const void *data, size_t len, uint8_t out[OB_ID_LEN])
{
    unsigned int olen = OB_ID_LEN;
    EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL);
}

ob_sha256_ctx *ob_sha256_new(void)
{
    ob_sha256_ctx *c = OPENSSL_malloc(sizeof *c);
    if (!c)
        return NULL;
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c->md);
        OPENSSL_free(c);
        return NULL;
    }
    return c;
}

void ob_sha256_update(ob_sha256_ctx *c, const void *data, size_t len)
{
    EVP_DigestUpdate(c->md, data, len);
}

void ob_sha256_final(ob_sha256_ctx *c, uint8_t out[OB_ID_LEN])
{
    unsigned int olen = OB_ID_LEN;
    EVP_DigestFinal_ex(c->md, out, &olen);
    EVP_MD_CTX_free(c->md);
    OPENSSL_free(c);
}

void ob_hmac_sha256(const uint8_t key[OB_KEY_LEN], const void *data, size_t len,
                    uint8_t out[OB_ID_LEN])
{
    /* EVP_Q_mac is OpenSSL 3's one-shot MAC (HMAC() is deprecated). */
    size_t outl = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, OB_KEY_LEN, data, len, out,
                   OB_ID_LEN, &outl))
        memset(out, 0, OB_ID_LEN);
}

void ob_kdf(const uint8_t key[OB_KEY_LEN], const char *label, const void *data, size_t len,
            uint8_t out[OB_KEY_LEN])
{
    size_t ll = strlen(label);
    uint8_t *tmp = OPENSSL_malloc(ll + 1 + len);
    memcpy(tmp, label, ll);
    tmp[ll] = 0; /* separator: labels never contain NUL */
    if (len)
        memcpy(tmp + ll + 1, data, len);
    ob_hmac_sha256(key, tmp, ll + 1 + len, out);
    OPENSSL_clear_free(tmp, ll + 1 + len);
}

static int aead(int enc, const uint8_t key[OB_KEY_LEN], const uint8_t nonce[OB_NONCE_LEN],
                const void *aad, size_t aadlen, const uint8_t *in, size_t len, uint8_t *out,
                uint8_t *tag, ob_err *err)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = 0, outl = 0;
    if (!c)
        return ob_err_set(err, OB_EFAIL, "cannot allocate a cipher context");
    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, OB_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1)
        goto done;
    if (aadlen && EVP_CipherUpdate(c, NULL, &outl, aad, (int)aadlen) != 1)
        goto done;
    /* EVP takes int lengths: feed large inputs in slices. */
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (n > (1u << 30))
            n = 1u << 30;
        if (EVP_CipherUpdate(c, out + off, &outl, in + off, (int)n) != 1)
            goto done;
        off += n;
    }
    if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, OB_TAG_LEN, tag) != 1)
        goto done;
    if (EVP_CipherFinal_ex(c, out + off, &outl) != 1)
        goto done;
    if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, OB_TAG_LEN, tag) != 1)
        goto done;
    ok = 1;
done:
    EVP_CIPHER_CTX_free(c);
    ERR_clear_error();
    if (!ok) {
        if (!enc) {
            OPENSSL_cleanse(out, len);
            return ob_err_set(err, OB_ECORRUPT,
                              "authentication failed (data corrupted, truncated or not ours)");
        }
        return ob_err_set(err, OB_EFAIL, "encryption failed inside OpenSSL");
    }
    return 0;
}

int ob_aead_seal(const uint8_t key[OB_KEY_LEN], const uint8_t nonce[OB_NONCE_LEN],
                 const void *aad, size_t aadlen, const void *pt, size_t len, uint8_t *out,
                 ob_err *err)
{
    return aead(1, key, nonce, aad, aadlen, pt, len, out, out + len, err);
}

int ob_aead_open(const uint8_t key[OB_KEY_LEN], const uint8_t nonce[OB_NONCE_LEN],
                 const void *aad, size_t aadlen, const void *ct, size_t ctlen, uint8_t *out,
                 ob_err *err)
{
    if (ctlen < OB_TAG_LEN)
        return ob_err_set(err, OB_ECORRUPT, "encrypted data shorter than its tag (truncated)");
    uint8_t tag[OB_TAG_LEN];
    memcpy(tag, (const uint8_t *)ct + ctlen - OB_TAG_LEN, OB_TAG_LEN);
    return aead(0, key, nonce, aad, aadlen, ct, ctlen - OB_TAG_LEN, out, tag, err);
}

int ob_scrypt(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint64_t N,
              uint32_t r, uint32_t p, uint8_t *out, size_t outlen, ob_err *err)
{
    /* Allow up to 4x the nominal memory (128 * N * r) so OpenSSL does not
     * refuse parameters we wrote ourselves. */
    uint64_t maxmem = 128ull * N * r * 4 + (1u << 20);
    if (EVP_PBE_scrypt(pass, passlen, salt, saltlen, N, r, p, maxmem, out, outlen) != 1) {
        ERR_clear_error();
        return ob_err_set(err, OB_EFAIL,
                          "scrypt key derivation failed (N=%llu r=%u p=%u; not enough memory?)",
                          (unsigned long long)N, r, p);
    }
    return 0;
}

void ob_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ob_unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]);
        if (hi < 0)
            return -1;
        int lo = hexval(s[2 * i + 1]);
        if (lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return s[2 * n] == '\0' ? 0 : -1;
}

void ob_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

int ob_memcmp_ct(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n);
}
