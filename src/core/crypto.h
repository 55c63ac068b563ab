/*
 * crypto.h — the few cryptographic primitives opsbackup uses, over OpenSSL's
 * libcrypto: HMAC-SHA-256 (blob IDs, key derivation), SHA-256 (names of
 * index, snapshot and key objects), AES-256-GCM (every stored byte),
 * scrypt (passphrase -> key), and the OS random generator.
 *
 * Why these: Debian 12 ships OpenSSL 3.0, whose AES-GCM and SHA-256 use the
 * AES-NI / SHA-NI instructions of current CPUs; Argon2 arrives only in
 * OpenSSL 3.2, so passphrases use scrypt rather than a second crypto
 * library for one function (see docs/DECISIONS.md).
 *
 * Nothing here keeps state between calls; buffers belong to the caller.
 */
#ifndef OB_CRYPTO_H
#define OB_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define OB_KEY_LEN 32    /* AES-256 and HMAC keys */
#define OB_ID_LEN 32     /* blob and object IDs (HMAC-SHA-256 / SHA-256) */
#define OB_HEX_ID_LEN 64
#define OB_NONCE_LEN 12  /* AES-GCM nonce */
#define OB_TAG_LEN 16    /* AES-GCM tag */

/* Fill out with n bytes from the OS CSPRNG.  Returns -1 only if the kernel
 * refuses, which is fatal for any operation that needs keys or salts. */
int ob_random(void *out, size_t n, ob_err *err);

void ob_sha256(const void *data, size_t len, uint8_t out[OB_ID_LEN]);

/* Streaming SHA-256 (digests over many pieces). */
typedef struct ob_sha256_ctx ob_sha256_ctx;
ob_sha256_ctx *ob_sha256_new(void);
void ob_sha256_update(ob_sha256_ctx *c, const void *data, size_t len);
void ob_sha256_final(ob_sha256_ctx *c, uint8_t out[OB_ID_LEN]); /* also frees c */

void ob_hmac_sha256(const uint8_t key[OB_KEY_LEN], const void *data, size_t len,
                    uint8_t out[OB_ID_LEN]);
/* HMAC over label || data, for deriving sub-keys with domain separation. */
void ob_kdf(const uint8_t key[OB_KEY_LEN], const char *label, const void *data, size_t len,
            uint8_t out[OB_KEY_LEN]);

/* AES-256-GCM.  seal writes len + OB_TAG_LEN bytes to out; open reads
 * ctlen bytes (ciphertext followed by tag) and writes ctlen - OB_TAG_LEN
 * bytes.  open returns -1 with OB_ECORRUPT when authentication fails; out
 * is then zeroed and must not be used.  out may equal the input. */
int ob_aead_seal(const uint8_t key[OB_KEY_LEN], const uint8_t nonce[OB_NONCE_LEN],
                 const void *aad, size_t aadlen, const void *pt, size_t len, uint8_t *out,
                 ob_err *err);
/* ob_aead_seal that hands the ciphertext, then the tag, to sink in pieces
 * (at most 256 KiB + OB_TAG_LEN each) instead of one output buffer, so a
 * large blob is sealed into a file without a second copy of it in memory.
 * A sink that fails ends the call with its error. */
typedef int (*ob_aead_sink)(const void *data, size_t len, void *ud, ob_err *err);
int ob_aead_seal_to(const uint8_t key[OB_KEY_LEN], const uint8_t nonce[OB_NONCE_LEN],
                    const void *aad, size_t aadlen, const void *pt, size_t len,
                    ob_aead_sink sink, void *ud, ob_err *err);
int ob_aead_open(const uint8_t key[OB_KEY_LEN], const uint8_t nonce[OB_NONCE_LEN],
                 const void *aad, size_t aadlen, const void *ct, size_t ctlen, uint8_t *out,
                 ob_err *err);

/* scrypt with explicit parameters (N a power of two); the lanes (p) run on
 * up to one thread per CPU (scrypt.c, D68). */
int ob_scrypt(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint64_t N,
              uint32_t r, uint32_t p, uint8_t *out, size_t outlen, ob_err *err);

/* Lower-case hex; out must hold 2n + 1 bytes. */
void ob_hex(const uint8_t *in, size_t n, char *out);
/* Parse exactly 2n hex digits; returns -1 on anything else. */
int ob_unhex(const char *s, uint8_t *out, size_t n);

/* Erase key material (not optimised away). */
void ob_wipe(void *p, size_t n);

/* Constant-time comparison; 0 when equal. */
int ob_memcmp_ct(const void *a, const void *b, size_t n);

#endif
