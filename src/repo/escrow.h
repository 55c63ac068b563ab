/*
 * escrow.h — paper escrow of a repository's master key: the master key
 * split with Shamir's secret sharing (core/shamir.h) into N printable
 * shares, any K of which rebuild it.  `key export` and `key recover` use it.
 *
 * A share is one token without spaces (docs/FORMAT.md §20):
 *
 *   obk1-RRRRRRRR-SSSS-K-X-PAYLOAD-CCCCCCCC
 *
 * format version 1; the first 8 hex digits of the repository ID; a random
 * 4-hex-digit ID of this export (shares of two exports never combine); the
 * threshold K; the share number X; the 64 share bytes in base32 (RFC 4648
 * alphabet, lower case, no padding: 103 characters); and a checksum, the
 * first 5 bytes of SHA-256 of everything before the last '-', in base32.
 * One mistyped character anywhere fails the checksum.
 *
 * The checksum and the repository prefix catch mistakes, not attacks: a
 * share is not authenticated.  Whoever recovers must still prove the key by
 * opening the repository with it (repo_open_with_master_key).
 *
 * Strings returned here hold key material: free them with escrow_free_str
 * (which wipes) and wipe escrow_share values with escrow_share_wipe.
 */
#ifndef OB_ESCROW_H
#define OB_ESCROW_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define ESCROW_SECRET_LEN 64     /* the master key */
#define ESCROW_REPO_PREFIX_LEN 8 /* hex digits of the repository ID in a share */
#define ESCROW_SET_LEN 4         /* hex digits of the export ID */
#define ESCROW_MAX_TEXT 256      /* longer input is refused before parsing */

typedef struct escrow_share {
    char repo[ESCROW_REPO_PREFIX_LEN + 1]; /* lower-case hex */
    char set[ESCROW_SET_LEN + 1];          /* lower-case hex */
    unsigned k, x;                         /* threshold, share number (1 ... 255) */
    uint8_t y[ESCROW_SECRET_LEN];
} escrow_share;

/* Split master into n shares (threshold k) for the repository repo_id (64
 * hex digits) and encode them.  *out receives an array of n strings
 * (share x = i + 1 at index i); free with escrow_free_strv(*out, n).
 * set_out (ESCROW_SET_LEN + 1 bytes) receives the export ID; may be NULL. */
int escrow_split(const uint8_t master[ESCROW_SECRET_LEN], const char *repo_id, unsigned k,
                 unsigned n, char ***out, char *set_out, ob_err *err);

/* Encode one share; the caller frees with escrow_free_str. */
char *escrow_share_encode(const escrow_share *s);

/* Parse one share (upper or lower case; no surrounding spaces).  Hostile
 * input is safe: anything malformed is OB_ECORRUPT with a reason, and a
 * checksum failure says so ("checksum mismatch"). */
int escrow_share_parse(const char *text, escrow_share *out, ob_err *err);

/* Combine parsed shares into the master key.  repo_id (64 hex digits) is
 * the repository they must belong to, or NULL when unknown.  Errors name
 * the shares by their position (1-based) in v: another repository, mixed
 * thresholds or exports, duplicates, fewer than K ("2 of the 3 shares
 * needed").  The result is only as good as the shares: verify it. */
int escrow_combine(const escrow_share *v, size_t n, const char *repo_id,
                   uint8_t master[ESCROW_SECRET_LEN], ob_err *err);

void escrow_share_wipe(escrow_share *s);
void escrow_free_str(char *s);
void escrow_free_strv(char **v, size_t n);

#endif
