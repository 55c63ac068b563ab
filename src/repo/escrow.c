/*
 * escrow.c — printable Shamir shares of the master key (see escrow.h and
 * docs/FORMAT.md §20).
 *
 * Parsing order matters for the messages users see: first the shape (only
 * [a-z0-9-], 7 parts, version), then the checksum over the whole text, and
 * only then the meaning of each part.  A typo therefore reads "checksum
 * mismatch" rather than some confusing complaint about the field it hit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/shamir.h"
#include "repo/escrow.h"

#define PAYLOAD_CHARS 103 /* ceil(64 * 8 / 5) */
#define CHECK_BYTES 5
#define CHECK_CHARS 8     /* 5 bytes = 40 bits = 8 base32 characters */
#define NPARTS 7

static const char b32_alpha[] = "abcdefghijklmnopqrstuvwxyz234567";

static void b32_encode(const uint8_t *in, size_t n, ob_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            ob_buf_putc(out, (uint8_t)b32_alpha[(acc >> bits) & 31]);
        }
    }
    if (bits > 0)
        ob_buf_putc(out, (uint8_t)b32_alpha[(acc << (5 - bits)) & 31]);
}

static int b32_value(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

/* Decode exactly n bytes from len characters; the unused low bits of the
 * last character must be zero (one text per value). */
static int b32_decode(const char *s, size_t len, uint8_t *out, size_t n)
{
    if (len != (n * 8 + 4) / 5)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b32_value(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    int tail_ok = (acc & ((1u << bits) - 1)) == 0;
    ob_wipe(&acc, sizeof acc);
    return o == n && tail_ok ? 0 : -1;
}

static void checksum(const char *text, size_t len, ob_buf *out)
{
    uint8_t h[OB_ID_LEN];
    ob_sha256(text, len, h);
    b32_encode(h, CHECK_BYTES, out);
}

char *escrow_share_encode(const escrow_share *s)
{
    ob_buf b = OB_BUF_INIT;
    ob_buf_printf(&b, "obk1-%s-%s-%u-%u-", s->repo, s->set, s->k, s->x);
    b32_encode(s->y, sizeof s->y, &b);
    size_t body = b.len;
    ob_buf_putc(&b, '-');
    checksum((const char *)b.data, body, &b);
    ob_buf_putc(&b, 0);
    return (char *)ob_buf_steal(&b, NULL);
}

int escrow_split(const uint8_t master[ESCROW_SECRET_LEN], const char *repo_id, unsigned k,
                 unsigned n, char ***out, char *set_out, ob_err *err)
{
    *out = NULL;
    if (strlen(repo_id) < ESCROW_REPO_PREFIX_LEN)
        return ob_err_set(err, OB_EUSAGE, "key escrow: bad repository ID");
    if (k < 1 || n < 1 || n > SHAMIR_MAX_SHARES || k > n)
        return ob_err_set(err, OB_EUSAGE,
                          "key escrow: need 1 <= threshold <= shares <= %d (got threshold %u, "
                          "%u shares)",
                          SHAMIR_MAX_SHARES, k, n);
    uint8_t setraw[ESCROW_SET_LEN / 2];
    if (ob_random(setraw, sizeof setraw, err) < 0)
        return -1;
    uint8_t *ys = ob_xmalloc((size_t)n * ESCROW_SECRET_LEN);
    if (shamir_split(master, ESCROW_SECRET_LEN, k, n, ys, err) < 0) {
        free(ys);
        return -1;
    }
    escrow_share s;
    memcpy(s.repo, repo_id, ESCROW_REPO_PREFIX_LEN);
    s.repo[ESCROW_REPO_PREFIX_LEN] = 0;
    for (size_t i = 0; i < ESCROW_REPO_PREFIX_LEN; i++)
        if (s.repo[i] >= 'A' && s.repo[i] <= 'F')
            s.repo[i] = (char)(s.repo[i] - 'A' + 'a');
    ob_hex(setraw, sizeof setraw, s.set);
    s.k = k;
    char **v = ob_xcalloc(n, sizeof *v);
    for (unsigned j = 0; j < n; j++) {
        s.x = j + 1;
        memcpy(s.y, ys + (size_t)j * ESCROW_SECRET_LEN, ESCROW_SECRET_LEN);
        v[j] = escrow_share_encode(&s);
    }
    if (set_out)
        memcpy(set_out, s.set, ESCROW_SET_LEN + 1);
    escrow_share_wipe(&s);
    ob_wipe(ys, (size_t)n * ESCROW_SECRET_LEN);
    free(ys);
    *out = v;
    return 0;
}

/* A decimal 1 ... 255 without leading zeros. */
static int parse_small(const char *s, size_t len, unsigned *out)
{
    if (len < 1 || len > 3 || s[0] == '0')
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 255)
        return -1;
    *out = v;
    return 0;
}

static int is_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int escrow_share_parse(const char *text, escrow_share *out, ob_err *err)
{
    memset(out, 0, sizeof *out);
    size_t len = strnlen(text, ESCROW_MAX_TEXT + 1);
    if (len == 0)
        return ob_err_set(err, OB_ECORRUPT, "empty share");
    if (len > ESCROW_MAX_TEXT)
        return ob_err_set(err, OB_ECORRUPT, "too long to be a key share (%d characters at most)",
                          ESCROW_MAX_TEXT);
    /* Canonical form: lower case.  Anything outside [a-z0-9-] cannot be
     * part of a share (spaces, punctuation, non-ASCII). */
    char *t = ob_xstrndup(text, len);
    int rc = -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 'A' && c <= 'Z')
            t[i] = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            ob_err_set(err, OB_ECORRUPT,
                       "character %zu (byte 0x%02x) cannot be part of a key share: shares are "
                       "letters, digits and '-'",
                       i + 1, c);
            goto out;
        }
    }
    if (strncmp(t, "obk", 3) != 0) {
        ob_err_set(err, OB_ECORRUPT, "not an opsbackup key share (shares start with \"obk1-\")");
        goto out;
    }
    const char *part[NPARTS];
    size_t plen[NPARTS], np = 0;
    for (const char *p = t;; p++) {
        const char *dash = strchr(p, '-');
        size_t l = dash ? (size_t)(dash - p) : strlen(p);
        if (np < NPARTS) {
            part[np] = p;
            plen[np] = l;
        }
        np++;
        if (!dash)
            break;
        p = dash;
    }
    if (plen[0] != 4 || strncmp(part[0], "obk1", 4) != 0) {
        ob_err_set(err, OB_ECORRUPT,
                   "key share format \"%.*s\" is not supported by this opsbackup (it reads "
                   "obk1); a newer opsbackup may read it",
                   (int)(plen[0] > 8 ? 8 : plen[0]), part[0]);
        goto out;
    }
    if (np != NPARTS) {
        ob_err_set(err, OB_ECORRUPT,
                   "malformed key share: it has %zu parts separated by '-', a share has %d (is a "
                   "'-' missing or extra, or the share cut short?)",
                   np, NPARTS);
        goto out;
    }
    ob_buf want = OB_BUF_INIT;
    size_t body = (size_t)(part[6] - t) - 1;
    checksum(t, body, &want);
    int ok = plen[6] == CHECK_CHARS && memcmp(want.data, part[6], CHECK_CHARS) == 0;
    ob_buf_free(&want);
    if (!ok) {
        ob_err_set(err, OB_ECORRUPT,
                   "checksum mismatch: the share was mistyped or damaged (compare it with the "
                   "paper character by character)");
        goto out;
    }
    /* The checksum matched, so what follows only fails for a share that
     * was made wrongly on purpose; still refuse it precisely. */
    if (plen[1] != ESCROW_REPO_PREFIX_LEN || !is_hex(part[1], plen[1]) ||
        plen[2] != ESCROW_SET_LEN || !is_hex(part[2], plen[2]) ||
        parse_small(part[3], plen[3], &out->k) < 0 || parse_small(part[4], plen[4], &out->x) < 0 ||
        b32_decode(part[5], plen[5], out->y, sizeof out->y) < 0) {
        escrow_share_wipe(out);
        ob_err_set(err, OB_ECORRUPT, "malformed key share (its checksum matches, but a field is "
                                     "invalid)");
        goto out;
    }
    memcpy(out->repo, part[1], ESCROW_REPO_PREFIX_LEN);
    memcpy(out->set, part[2], ESCROW_SET_LEN);
    rc = 0;
out:
    ob_wipe(t, len);
    free(t);
    return rc;
}

int escrow_combine(const escrow_share *v, size_t n, const char *repo_id,
                   uint8_t master[ESCROW_SECRET_LEN], ob_err *err)
{
    if (n == 0)
        return ob_err_set(err, OB_EUSAGE, "no key shares given");
    char want[ESCROW_REPO_PREFIX_LEN + 1] = {0};
    if (repo_id) {
        for (size_t i = 0; i < ESCROW_REPO_PREFIX_LEN && repo_id[i]; i++)
            want[i] = (char)(repo_id[i] >= 'A' && repo_id[i] <= 'F' ? repo_id[i] - 'A' + 'a'
                                                                     : repo_id[i]);
        want[ESCROW_REPO_PREFIX_LEN] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (repo_id && strcmp(v[i].repo, want) != 0)
            return ob_err_set(err, OB_EFAIL,
                              "share %zu belongs to repository %s..., not to this one (%s...): "
                              "use the shares exported from this repository",
                              i + 1, v[i].repo, want);
        if (strcmp(v[i].repo, v[0].repo) != 0)
            return ob_err_set(err, OB_EFAIL,
                              "share %zu belongs to repository %s..., share 1 to %s...: shares "
                              "of different repositories cannot be combined",
                              i + 1, v[i].repo, v[0].repo);
        if (v[i].k != v[0].k)
            return ob_err_set(err, OB_EFAIL,
                              "mixed thresholds: share %zu is one of a set that needs %u, share "
                              "1 of a set that needs %u; use shares of one `key export`",
                              i + 1, v[i].k, v[0].k);
        if (strcmp(v[i].set, v[0].set) != 0)
            return ob_err_set(err, OB_EFAIL,
                              "share %zu comes from another `key export` (export %s) than share "
                              "1 (export %s): shares of different exports cannot be combined",
                              i + 1, v[i].set, v[0].set);
        for (size_t j = 0; j < i; j++)
            if (v[j].x == v[i].x)
                return ob_err_set(err, OB_EFAIL,
                                  ob_memcmp_ct(v[j].y, v[i].y, ESCROW_SECRET_LEN) == 0
                                      ? "share %zu is the same as share %zu (both are share "
                                        "number %u): give different shares"
                                      : "shares %zu and %zu both claim to be share number %u "
                                        "but differ: one of them is not genuine",
                                  i + 1, j + 1, v[i].x);
    }
    unsigned k = v[0].k;
    if (k < 1 || k > SHAMIR_MAX_SHARES)
        return ob_err_set(err, OB_EUSAGE, "key share with an invalid threshold %u", k);
    if (n < k)
        return ob_err_set(err, OB_EFAIL,
                          "%zu of the %u shares needed: give %zu more share%s of this export "
                          "(any %u different shares rebuild the key; fewer reveal nothing)",
                          n, k, k - n, k - n == 1 ? "" : "s", k);
    /* k shares determine the polynomial.  With more, the last k must give
     * the same key, or some share is not what it claims to be. */
    uint8_t other[ESCROW_SECRET_LEN];
    int rc = 0;
    for (size_t pass = 0; pass < (n > k ? 2u : 1u) && rc == 0; pass++) {
        uint8_t xs[SHAMIR_MAX_SHARES] = {0};
        const uint8_t *ys[SHAMIR_MAX_SHARES] = {0};
        size_t first = pass ? n - k : 0;
        for (size_t i = 0; i < k; i++) {
            xs[i] = (uint8_t)v[first + i].x;
            ys[i] = v[first + i].y;
        }
        rc = shamir_combine(xs, ys, k, ESCROW_SECRET_LEN, pass ? other : master, err);
    }
    if (rc == 0 && n > k && ob_memcmp_ct(master, other, ESCROW_SECRET_LEN) != 0) {
        ob_wipe(master, ESCROW_SECRET_LEN);
        rc = ob_err_set(err, OB_EFAIL,
                        "the %zu shares do not agree (the first %u and the last %u rebuild "
                        "different keys): one of them is not genuine; try other combinations "
                        "of %u",
                        n, k, k, k);
    }
    ob_wipe(other, sizeof other);
    return rc;
}

void escrow_share_wipe(escrow_share *s) { ob_wipe(s, sizeof *s); }

void escrow_free_str(char *s)
{
    if (!s)
        return;
    ob_wipe(s, strlen(s));
    free(s);
}

void escrow_free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        escrow_free_str(v[i]);
    free(v);
}
