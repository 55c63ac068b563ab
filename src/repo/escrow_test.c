/*
 * escrow_test.c — printable master-key shares: round trips, the checksum
 * catching every single-character typo, hostile input, and the errors of
 * combining the wrong shares.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "repo/escrow.h"
#include "repo/repo.h"
#include "repo/writer.h"
#include "storage/storage.h"

static const char test_rid[] = "fc4f1a2b9c0d11223344556677889900aabbccddeeff00112233445566778899";

/* body + "-" + its checksum (base32 of the first 5 bytes of SHA-256),
 * computed independently of escrow.c so crafted shares pass the checksum. */
static char *with_checksum(const char *body)
{
    static const char a[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t h[32];
    ob_sha256(body, strlen(body), h);
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = (v << 8) | h[i];
    char c[9];
    for (int i = 0; i < 8; i++)
        c[i] = a[(v >> (35 - 5 * i)) & 31];
    c[8] = 0;
    return ob_xasprintf("%s-%s", body, c);
}

static char *payload_of(const char *share) /* the base32 part, copied */
{
    const char *p = share;
    for (int i = 0; i < 5; i++)
        p = strchr(p, '-') + 1;
    return ob_xstrndup(p, (size_t)(strchr(p, '-') - p));
}

static int parse_fails_with(const char *text, const char *needle)
{
    escrow_share s;
    ob_err e = OB_ERR_INIT;
    int rc = escrow_share_parse(text, &s, &e);
    int ok = rc < 0 && e.code == OB_ECORRUPT && strstr(ob_err_msg(&e), needle);
    if (!ok)
        print_error("parse of \"%s\": rc %d, message \"%s\", wanted \"%s\"\n", text, rc,
                    ob_err_msg(&e), needle);
    ob_err_clear(&e);
    return ok;
}

static void test_roundtrip(void **state)
{
    (void)state;
    uint8_t master[64], out[64];
    assert_int_equal(ob_random(master, sizeof master, NULL), 0);
    char **v;
    char set[ESCROW_SET_LEN + 1];
    assert_int_equal(escrow_split(master, test_rid, 3, 5, &v, set, NULL), 0);
    escrow_share s[5];
    for (int i = 0; i < 5; i++) {
        /* obk1-fc4f1a2b-SSSS-3-X-<103>-<8>: 135 characters, no spaces */
        assert_int_equal(strlen(v[i]), 135);
        assert_null(strchr(v[i], ' '));
        assert_int_equal(strncmp(v[i], "obk1-fc4f1a2b-", 14), 0);
        assert_int_equal(escrow_share_parse(v[i], &s[i], NULL), 0);
        assert_int_equal(s[i].k, 3);
        assert_int_equal(s[i].x, (unsigned)i + 1);
        assert_string_equal(s[i].repo, "fc4f1a2b");
        assert_string_equal(s[i].set, set);
        char *again = escrow_share_encode(&s[i]);
        assert_string_equal(again, v[i]);
        escrow_free_str(again);
    }
    /* Every 3 of 5 (in any order) give the master key back. */
    int subsets = 0;
    for (int a = 0; a < 5; a++)
        for (int b = a + 1; b < 5; b++)
            for (int c = b + 1; c < 5; c++) {
                escrow_share t[3] = {s[c], s[a], s[b]};
                assert_int_equal(escrow_combine(t, 3, test_rid, out, NULL), 0);
                assert_memory_equal(out, master, 64);
                subsets++;
            }
    assert_int_equal(subsets, 10);
    /* All five are consistent too; the repository may be unknown. */
    assert_int_equal(escrow_combine(s, 5, NULL, out, NULL), 0);
    assert_memory_equal(out, master, 64);

    /* Upper case (as read off paper) parses to the same share. */
    char *up = ob_xstrdup(v[0]);
    for (char *p = up; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    escrow_share u;
    assert_int_equal(escrow_share_parse(up, &u, NULL), 0);
    assert_memory_equal(&u, &s[0], sizeof u);
    free(up);
    escrow_free_strv(v, 5);
}

/* Changing any one character after "obk1-" is caught. */
static void test_every_typo_caught(void **state)
{
    (void)state;
    uint8_t master[64] = {0};
    char **v;
    assert_int_equal(escrow_split(master, test_rid, 2, 2, &v, NULL, NULL), 0);
    const char *alts = "a7z2k0";
    size_t len = strlen(v[0]), tried = 0;
    for (size_t i = 5; i < len; i++) {
        if (v[0][i] == '-')
            continue;
        char *t = ob_xstrdup(v[0]);
        t[i] = alts[0] == v[0][i] ? alts[1] : alts[0];
        assert_true(parse_fails_with(t, "checksum mismatch"));
        t[i] = alts[4] == v[0][i] ? alts[5] : alts[4];
        assert_true(parse_fails_with(t, "checksum mismatch"));
        free(t);
        tried++;
    }
    assert_true(tried > 120);
    /* Two characters swapped. */
    char *t = ob_xstrdup(v[0]);
    size_t i = 30;
    while (t[i] == t[i + 1])
        i++;
    char c = t[i];
    t[i] = t[i + 1];
    t[i + 1] = c;
    assert_true(parse_fails_with(t, "checksum mismatch"));
    free(t);
    escrow_free_strv(v, 2);
}

static void test_hostile_text(void **state)
{
    (void)state;
    uint8_t master[64] = {1};
    char **v;
    assert_int_equal(escrow_split(master, test_rid, 2, 3, &v, NULL, NULL), 0);
    char *pay = payload_of(v[0]);

    assert_true(parse_fails_with("", "empty"));
    char *longs = malloc(5000);
    memset(longs, 'a', 4999);
    longs[4999] = 0;
    assert_true(parse_fails_with(longs, "too long"));
    free(longs);
    assert_true(parse_fails_with("hello", "not an opsbackup key share"));
    assert_true(parse_fails_with("obk1-fc4f1a2b 1234", "cannot be part"));
    assert_true(parse_fails_with("obk1-\xc3\xa9", "byte 0xc3"));
    assert_true(parse_fails_with("obk2-fc4f1a2b-1234-2-1-aaaa-aaaaaaaa", "not supported"));
    assert_true(parse_fails_with("obk1-fc4f1a2b-1234-2-1", "parts"));
    assert_true(parse_fails_with("obk1-------------", "parts"));
    assert_true(parse_fails_with("-", "not an opsbackup"));
    /* Cut short: the last characters lost. */
    char *cut = ob_xstrndup(v[0], strlen(v[0]) - 3);
    assert_true(parse_fails_with(cut, "checksum"));
    free(cut);

    /* Crafted with a valid checksum but invalid fields. */
    const char *bodies[] = {
        "obk1-fc4f1a2b-1234-0-1-%s",   /* k = 0 */
        "obk1-fc4f1a2b-1234-02-1-%s",  /* leading zero */
        "obk1-fc4f1a2b-1234-2-256-%s", /* x > 255 */
        "obk1-fc4f1a2b-1234-2-0-%s",   /* x = 0 */
        "obk1-fc4f1a2-1234-2-1-%s",    /* short repository prefix */
        "obk1-fc4f1a2g-1234-2-1-%s",   /* not hex */
        "obk1-fc4f1a2b-123-2-1-%s",    /* short export ID */
        "obk1-fc4f1a2b-1234-2-1-%sa",  /* payload too long */
        "obk1-fc4f1a2b-1234-2-1-%.102s", /* payload too short */
        "obk1-fc4f1a2b-1234--1-%s",    /* empty k */
        "obk1-fc4f1a2b-1234-9999-1-%s", /* huge k */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        char *body = ob_xasprintf(bodies[i], pay);
        char *s = with_checksum(body);
        assert_true(parse_fails_with(s, "a field is invalid"));
        free(s);
        free(body);
    }
    /* The last payload character carries 2 bits; the other 3 must be 0. */
    char *bad = ob_xstrdup(pay);
    char *last = bad + strlen(bad) - 1;
    *last = *last == 'b' ? 'c' : 'b'; /* 'b' = 1 and 'c' = 2: low bits set */
    char *body = ob_xasprintf("obk1-fc4f1a2b-1234-2-1-%s", bad);
    char *s = with_checksum(body);
    assert_true(parse_fails_with(s, "a field is invalid"));
    free(s);
    free(body);
    free(bad);
    /* A well-formed crafted share parses. */
    body = ob_xasprintf("obk1-fc4f1a2b-1234-2-7-%s", pay);
    s = with_checksum(body);
    escrow_share sh;
    assert_int_equal(escrow_share_parse(s, &sh, NULL), 0);
    assert_int_equal(sh.x, 7);
    free(s);
    free(body);
    free(pay);
    escrow_free_strv(v, 3);
}

static int combine_fails_with(const escrow_share *v, size_t n, const char *rid,
                              const char *needle)
{
    uint8_t out[64];
    ob_err e = OB_ERR_INIT;
    int rc = escrow_combine(v, n, rid, out, &e);
    int ok = rc < 0 && strstr(ob_err_msg(&e), needle);
    if (!ok)
        print_error("combine: rc %d, message \"%s\", wanted \"%s\"\n", rc, ob_err_msg(&e), needle);
    ob_err_clear(&e);
    return ok;
}

static void parse_all(char **v, size_t n, escrow_share *out)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(escrow_share_parse(v[i], &out[i], NULL), 0);
}

static void test_combine_errors(void **state)
{
    (void)state;
    uint8_t master[64], out[64];
    assert_int_equal(ob_random(master, sizeof master, NULL), 0);
    char **a, **b, **c, **d;
    escrow_share sa[5], sb[5], sc[5], sd[4];
    static const char other_id[] =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_int_equal(escrow_split(master, test_rid, 3, 5, &a, NULL, NULL), 0);
    assert_int_equal(escrow_split(master, test_rid, 3, 5, &b, NULL, NULL), 0); /* 2nd export */
    assert_int_equal(escrow_split(master, other_id, 3, 5, &c, NULL, NULL), 0);
    assert_int_equal(escrow_split(master, test_rid, 2, 4, &d, NULL, NULL), 0);
    parse_all(a, 5, sa);
    parse_all(b, 5, sb);
    parse_all(c, 5, sc);
    parse_all(d, 4, sd);

    assert_true(combine_fails_with(sa, 0, test_rid, "no key shares"));
    assert_true(combine_fails_with(sa, 2, test_rid, "2 of the 3 shares needed"));
    assert_true(combine_fails_with(sa, 1, test_rid, "1 of the 3 shares needed"));
    /* another repository: named by position */
    escrow_share t[3] = {sa[0], sc[1], sa[2]};
    assert_true(combine_fails_with(t, 3, test_rid, "share 2 belongs to repository 01234567"));
    assert_true(combine_fails_with(sc, 3, test_rid, "share 1 belongs to repository 01234567"));
    assert_true(combine_fails_with(t, 3, NULL, "cannot be combined"));
    /* mixed thresholds */
    t[1] = sd[1];
    assert_true(combine_fails_with(t, 3, test_rid, "mixed thresholds"));
    /* mixed exports (same repository and threshold) */
    t[1] = sb[1];
    assert_true(combine_fails_with(t, 3, test_rid, "another `key export`"));
    /* duplicates */
    escrow_share u[3] = {sa[0], sa[3], sa[0]};
    assert_true(combine_fails_with(u, 3, test_rid, "share 3 is the same as share 1"));
    /* same number, different bytes */
    u[2] = sa[3];
    u[2].x = 1;
    assert_true(combine_fails_with(u, 3, test_rid, "not genuine"));
    /* a tampered extra share (checksum recomputed by the forger) */
    escrow_share w[4] = {sa[0], sa[1], sa[2], sa[3]};
    w[3].y[5] ^= 1;
    assert_true(combine_fails_with(w, 4, test_rid, "do not agree"));
    /* and four good ones work */
    w[3] = sa[3];
    assert_int_equal(escrow_combine(w, 4, test_rid, out, NULL), 0);
    assert_memory_equal(out, master, 64);
    /* upper-case repository ID is the same repository */
    char *up = ob_xstrdup(test_rid);
    for (char *p = up; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(escrow_combine(sa, 3, up, out, NULL), 0);
    free(up);

    escrow_free_strv(a, 5);
    escrow_free_strv(b, 5);
    escrow_free_strv(c, 5);
    escrow_free_strv(d, 4);
}

static void test_split_params(void **state)
{
    (void)state;
    uint8_t master[64] = {0};
    char **v;
    ob_err e = OB_ERR_INIT;
    assert_int_equal(escrow_split(master, test_rid, 4, 3, &v, NULL, &e), -1);
    assert_int_equal(e.code, OB_EUSAGE);
    ob_err_clear(&e);
    assert_int_equal(escrow_split(master, test_rid, 0, 3, &v, NULL, &e), -1);
    ob_err_clear(&e);
    assert_int_equal(escrow_split(master, test_rid, 2, 256, &v, NULL, &e), -1);
    ob_err_clear(&e);
    assert_int_equal(escrow_split(master, "abc", 2, 3, &v, NULL, &e), -1);
    ob_err_clear(&e);
    /* 255 shares, threshold 255 and threshold 1 */
    uint8_t out[64];
    escrow_share *s = calloc(255, sizeof *s);
    master[0] = 42;
    for (unsigned k = 1; k <= 255; k += 254) {
        assert_int_equal(escrow_split(master, test_rid, k, 255, &v, NULL, NULL), 0);
        parse_all(v, 255, s);
        assert_int_equal(s[254].x, 255);
        assert_int_equal(escrow_combine(s, 255, test_rid, out, NULL), 0);
        assert_memory_equal(out, master, 64);
        /* 155 shares: enough for k = 1, not for k = 255 */
        assert_int_equal(escrow_combine(s + 100, k == 1 ? 1 : 155, test_rid, out, NULL),
                         k == 1 ? 0 : -1);
        escrow_free_strv(v, 255);
    }
    free(s);
}


/* The whole path through a real repository: split its master key, rebuild
 * it from 3 shares, open the repository with it, add a password. */
static void test_open_with_master_key(void **state)
{
    (void)state;
    static const repo_kdf_params kdf = {1024, 8, 1};
    char dir[] = "/tmp/ob-escrow-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *root = ob_xasprintf("%s/repo", dir);
    storage *st;
    repo *r;
    char *id;
    ob_err e = OB_ERR_INIT;
    assert_int_equal(storage_posix_open(root, 1, &st, &e), 0);
    assert_int_equal(repo_init(st, "old password", &kdf, &id, &e), 0);
    assert_int_equal(repo_open(st, "old password", &r, &e), 0);
    uint8_t master[64], out[64];
    repo_master_key(r, master);
    repo_close(r);

    char rid[OB_HEX_ID_LEN + 1];
    assert_int_equal(repo_key_slot_repository(st, rid, &e), 0);
    assert_string_equal(rid, id);

    char **v;
    escrow_share s[3];
    assert_int_equal(escrow_split(master, id, 2, 3, &v, NULL, &e), 0);
    parse_all(v + 1, 2, s);
    assert_int_equal(escrow_combine(s, 2, rid, out, &e), 0);
    assert_int_equal(repo_open_with_master_key(st, out, &r, &e), 0);
    assert_string_equal(repo_id(r), id);
    assert_null(repo_key_id(r));
    char *kid = NULL;
    assert_int_equal(repo_key_add(r, "new password", &kdf, &kid, &e), 0);
    repo_close(r);
    assert_int_equal(repo_open(st, "new password", &r, &e), 0);
    assert_string_equal(repo_key_id(r), kid);
    repo_close(r);

    /* A wrong key is refused as not this repository's: one bit of the
     * encryption half fails the config ... */
    out[0] ^= 0x80;
    assert_int_equal(repo_open_with_master_key(st, out, &r, &e), -1);
    assert_int_equal(e.code, OB_EAUTH);
    assert_non_null(strstr(ob_err_msg(&e), "not this repository's master key"));
    ob_err_clear(&e);
    out[0] ^= 0x80;
    /* ... and one bit of the MAC half fails on the stored data (with no
     * blob stored yet there is nothing to check it against). */
    out[63] ^= 0x80;
    assert_int_equal(repo_open_with_master_key(st, out, &r, &e), 0);
    repo_close(r);
    assert_int_equal(repo_open(st, "new password", &r, &e), 0);
    repo_writer *w;
    uint8_t bid[OB_ID_LEN];
    assert_int_equal(repo_writer_new(r, 1, &w, &e), 0);
    assert_int_equal(repo_writer_add(w, REPO_BLOB_DATA, "some data", 9, bid, NULL, &e), 0);
    assert_int_equal(repo_writer_flush(w, &e), 0);
    repo_writer_free(w);
    repo_close(r);
    assert_int_equal(repo_open_with_master_key(st, out, &r, &e), -1);
    assert_int_equal(e.code, OB_EAUTH);
    assert_non_null(strstr(ob_err_msg(&e), "does not verify its stored data"));
    ob_err_clear(&e);
    out[63] ^= 0x80;
    assert_int_equal(repo_open_with_master_key(st, out, &r, &e), 0);
    repo_close(r);
    /* Fewer than K shares give a key that does not open it either. */
    s[0].k = 1;
    assert_int_equal(escrow_combine(s, 1, rid, out, &e), 0);
    assert_int_equal(repo_open_with_master_key(st, out, &r, &e), -1);
    assert_int_equal(e.code, OB_EAUTH);
    ob_err_clear(&e);

    escrow_free_strv(v, 3);
    free(kid);
    free(id);
    storage_close(st);
    char *cmd = ob_xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_every_typo_caught),
        cmocka_unit_test(test_hostile_text),
        cmocka_unit_test(test_combine_errors),
        cmocka_unit_test(test_split_params),
        cmocka_unit_test(test_open_with_master_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
