/*
 * fuzz_escrow.c — key escrow shares (FORMAT.md §20, repo/escrow.c) and the
 * Shamir arithmetic under them (core/shamir.c).  Shares are typed in from
 * paper by a person under stress, so the parser sees every kind of
 * mistake; `key recover` reads them from stdin one per line.
 *
 * Input: first byte = mode, then lines.  Each line is parsed with
 * escrow_share_parse.  With bit 0 of the mode set, the harness first
 * rewrites a line's checksum (the last 8 characters after the last '-')
 * to the right value, so the fuzzer gets past the 40-bit checksum to the
 * fields behind it.  Parsed shares are re-encoded (encode then parse must
 * give the same share) and all of them are combined with escrow_combine.
 * With bit 1 set, the raw bytes also go straight to shamir_combine as
 * (x, 8-byte y) pairs.
 */
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/shamir.h"
#include "fuzz_common.h"
#include "repo/escrow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SHARES 16

/* The checksum of FORMAT.md §20.2, written from the spec: the first 5
 * bytes of SHA-256 of the lower-cased text before the last '-', in base32
 * (RFC 4648 alphabet, lower case). */
static void fix_checksum(char *line)
{
    for (char *p = line; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    char *dash = strrchr(line, '-');
    if (!dash || strlen(dash + 1) != 8)
        return;
    uint8_t h[OB_ID_LEN];
    ob_sha256(line, (size_t)(dash - line), h);
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | h[i];
    for (int i = 0; i < 8; i++)
        dash[1 + i] = alpha[(v >> (35 - 5 * i)) & 31];
}

static void shamir_raw(const uint8_t *p, size_t n)
{
    enum { LEN = 8 };
    uint8_t xs[MAX_SHARES];
    const uint8_t *ys[MAX_SHARES];
    unsigned count = 0;
    while (n >= 1 + LEN && count < MAX_SHARES) {
        xs[count] = p[0];
        ys[count] = p + 1;
        count++;
        p += 1 + LEN;
        n -= 1 + LEN;
    }
    uint8_t secret[LEN];
    ob_err err = OB_ERR_INIT;
    shamir_combine(xs, ys, count, LEN, secret, &err);
    ob_err_clear(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    int mode = data[0];
    if (mode & 2)
        shamir_raw(data + 1, size - 1);
    char *text = fuzz_strndup(data + 1, size - 1);
    escrow_share *v = ob_xcalloc(MAX_SHARES, sizeof *v);
    size_t n = 0;
    ob_err err = OB_ERR_INIT;
    for (char *line = text, *next; line && n < MAX_SHARES; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (mode & 1)
            fix_checksum(line);
        if (escrow_share_parse(line, &v[n], &err) < 0) {
            ob_err_clear(&err);
            continue;
        }
        char *enc = escrow_share_encode(&v[n]);
        escrow_share back;
        if (escrow_share_parse(enc, &back, &err) < 0 || strcmp(back.repo, v[n].repo) != 0 ||
            strcmp(back.set, v[n].set) != 0 || back.k != v[n].k || back.x != v[n].x ||
            memcmp(back.y, v[n].y, sizeof back.y) != 0)
            __builtin_trap();
        escrow_share_wipe(&back);
        escrow_free_str(enc);
        n++;
    }
    uint8_t master[ESCROW_SECRET_LEN];
    escrow_combine(v, n, NULL, master, &err);
    ob_err_clear(&err);
    if (n)
        escrow_combine(v, n, v[0].repo, master, &err); /* named: only 8 digits compared */
    ob_err_clear(&err);
    for (size_t i = 0; i < n; i++)
        escrow_share_wipe(&v[i]);
    free(v);
    free(text);
    return 0;
}
