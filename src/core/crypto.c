#include "core/crypto.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

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

/*
 * Algorithms fetched once, and an HMAC context per thread.
 *
 * OpenSSL 3 looks an algorithm up in its provider store (a read-write lock,
 * a property match, reference counts) every time one is named: EVP_Q_mac
 * fetches HMAC and then SHA-256 on every call, and EVP_aes_256_gcm() makes
 * EVP_CipherInit_ex fetch AES-256-GCM.  A restore of a physical backup
 * opens ~85,000 8 KiB blobs, each with two HMACs (the pack key, the blob ID
 * check) and one decryption, and perf put about a fifth of its CPU in that
 * machinery rather than in the hashing and decryption themselves.  So the
 * cipher and the MAC are fetched once per process, and each thread keeps
 * one HMAC-SHA-256 context that is re-keyed per call (EVP_MAC_init with a
 * key and no parameters keeps the digest, so nothing is fetched).
 *
 * The kept context holds the keyed state of the last MAC computed on that
 * thread until the next call or the thread's exit; the keys it derives from
 * (repo.enc_key / mac_key) are in memory for the process's lifetime anyway.
 * Any failure here falls back to the one-shot calls, so results never
 * depend on it.
 */
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_MAC *alg_hmac;          /* NULL: use EVP_Q_mac */
static EVP_CIPHER *alg_gcm;        /* NULL: use EVP_aes_256_gcm() */
static pthread_key_t hmac_key;
static int hmac_key_ok;

static void hmac_ctx_free(void *p)
{
    EVP_MAC_CTX_free(p);
}

static void algs_fetch(void)
{
    alg_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    alg_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    hmac_key_ok = alg_hmac && pthread_key_create(&hmac_key, hmac_ctx_free) == 0;
    ERR_clear_error();
}

/* This thread's HMAC-SHA-256 context, made on first use; NULL if none. */
static EVP_MAC_CTX *thread_hmac(void)
{
    pthread_once(&algs_once, algs_fetch);
    if (!hmac_key_ok)
        return NULL;
    EVP_MAC_CTX *c = pthread_getspecific(hmac_key);
    if (c)
        return c;
    c = EVP_MAC_CTX_new(alg_hmac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    if (!c || !EVP_MAC_CTX_set_params(c, params) || pthread_setspecific(hmac_key, c) != 0) {
        EVP_MAC_CTX_free(c);
        ERR_clear_error();
        return NULL;
    }
    return c;
}

void ob_hmac_sha256(const uint8_t key[OB_KEY_LEN], const void *data, size_t len,
                    uint8_t out[OB_ID_LEN])
{
    size_t outl = 0;
    EVP_MAC_CTX *c = thread_hmac();
    if (c && EVP_MAC_init(c, key, OB_KEY_LEN, NULL) && EVP_MAC_update(c, data, len) &&
        EVP_MAC_final(c, out, &outl, OB_ID_LEN) && outl == OB_ID_LEN)
        return;
    ERR_clear_error();
    /* EVP_Q_mac is OpenSSL 3's one-shot MAC (HMAC() is deprecated). */
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

/* A GCM context keyed, with its nonce and AAD absorbed; NULL on failure. */
static EVP_CIPHER_CTX *aead_begin(int enc, const uint8_t key[OB_KEY_LEN],
                                  const uint8_t nonce[OB_NONCE_LEN], const void *aad,
                                  size_t aadlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0;
    if (!c)
        return NULL;
    pthread_once(&algs_once, algs_fetch);
    if (EVP_CipherInit_ex(c, alg_gcm ? alg_gcm : EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, OB_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1 ||
        (aadlen && EVP_CipherUpdate(c, NULL, &outl, aad, (int)aadlen) != 1)) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

static int aead(int enc, const uint8_t key[OB_KEY_LEN], const uint8_t nonce[OB_NONCE_LEN],
                const void *aad, size_t aadlen, const uint8_t *in, size_t len, uint8_t *out,
                uint8_t *tag, ob_err *err)
{
    EVP_CIPHER_CTX *c = aead_begin(enc, key, nonce, aad, aadlen);
    int ok = 0, outl = 0;
    if (!c)
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

int ob_aead_seal_to(const uint8_t key[OB_KEY_LEN], const uint8_t nonce[OB_NONCE_LEN],
                    const void *aad, size_t aadlen, const void *pt, size_t len,
                    ob_aead_sink sink, void *ud, ob_err *err)
{
    /* 256 KiB: large enough that the sink (a write()) is called rarely,
     * small enough to stay in cache between encrypting and writing. */
    enum { PIECE = 256 * 1024 };
    EVP_CIPHER_CTX *c = aead_begin(1, key, nonce, aad, aadlen);
    uint8_t *buf = c ? malloc((len < PIECE ? len : PIECE) + OB_TAG_LEN) : NULL;
    int rc = -1, outl = 0;
    if (!buf) {
        ob_err_set(err, OB_EFAIL, "encryption failed inside OpenSSL");
        goto done;
    }
    for (size_t off = 0; off < len;) {
        size_t n = len - off < PIECE ? len - off : PIECE;
        if (EVP_CipherUpdate(c, buf, &outl, (const uint8_t *)pt + off, (int)n) != 1) {
            ob_err_set(err, OB_EFAIL, "encryption failed inside OpenSSL");
            goto done;
        }
        /* GCM is a stream mode: every byte in is a byte out. */
        if (sink(buf, (size_t)outl, ud, err) < 0)
            goto done;
        off += n;
    }
    if (EVP_CipherFinal_ex(c, buf, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, OB_TAG_LEN, buf + outl) != 1) {
        ob_err_set(err, OB_EFAIL, "encryption failed inside OpenSSL");
        goto done;
    }
    rc = sink(buf, (size_t)outl + OB_TAG_LEN, ud, err);
done:
    EVP_CIPHER_CTX_free(c);
    ERR_clear_error();
    free(buf);
    return rc;
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
