/*
 * storage_s3.c — a repository in an S3-compatible bucket (AWS S3, MinIO,
 * Ceph RGW, …) over libcurl, every request signed with our own Signature
 * Version 4 (docs/DECISIONS.md D24).
 *
 * Object "data/ab/ab12…" of the storage s3://bucket/prefix is the key
 * "prefix/data/ab/ab12…" of the bucket.  Mapping of the storage contract
 * (storage.h) onto S3:
 *
 * - put: a single PUT with Content-MD5 (the server refuses a body damaged
 *   in transit), then the ETag is compared with our MD5 before success is
 *   reported.  Objects above S3_MULTIPART_THRESHOLD go up as a multipart
 *   upload whose parts are sent by a few threads at once; the result is
 *   checked by a HEAD of its size.  An S3 PUT is atomic: readers see the old
 *   object or the new one, never a mix.
 * - STORAGE_PUT_CREATE: HEAD, then PUT only if the HEAD said 404.  This is
 *   NOT atomic: two writers can both see 404 and both PUT, the second
 *   replacing the first (conditional If-None-Match PUTs exist on AWS since
 *   2024 but not on every S3-compatible server, so we cannot rely on them).
 *   In our format that race is benign: objects are immutable and named by
 *   their content (indexes, snapshots, keys) or by 256 random bits (packs,
 *   locks), so two writers of one name write the same bytes, or the name
 *   never collides.  The CREATE check still catches a logic error that
 *   would overwrite an existing object.
 * - get: a ranged GET (Range: bytes=a-b; never the suffix form bytes=-N,
 *   which some servers get wrong).  Fewer bytes than asked for means a
 *   truncated object: OB_ECORRUPT naming it.  404 is OB_ENOTFOUND.
 * - list: ListObjectsV2, following continuation tokens (1000 keys a page).
 *   The XML is read by a small hand parser that never reads outside the
 *   body it was given.
 * - delete: DELETE (404 is success); del_many: POST ?delete with up to
 *   1000 keys a request.
 * - stat: HEAD.
 *
 * Failures of the network and of the server (connection refused or reset,
 * timeouts, HTTP 5xx, 429, 503 SlowDown, answers cut short) are retried
 * with exponential backoff and jitter for a bounded time from the first
 * failure (S3_RETRY_SECONDS_DEFAULT, or OPSBACKUP_S3_RETRY_SECONDS; D27,
 * D78); after that the error names the object, the
 * operation, the last HTTP status and the S3 error code and message.
 *
 * Thread safety: the handle is immutable after open except for a small
 * pool of idle curl easy handles (kept so connections are reused), which a
 * mutex guards; a request takes a handle from the pool (or makes one),
 * uses it alone and gives it back.  libcurl is opened and initialised once,
 * by the first storage_s3_open (curl_lib_load).
 *
 * Secrets: the secret access key is only used to derive signing keys; it
 * never appears in a message, a log line or a header.  Session tokens go
 * in x-amz-security-token, which is never logged either.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif

#include "storage/storage_s3.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "storage/curl_lib.h"
#include "storage/storage.h"

/* Objects up to this size go up in one PUT; above, multipart.  Packs are
 * 16 MiB by default (a little more with the last blob), so ordinary packs
 * stay single requests with an MD5-checked ETag; only big custom pack
 * sizes and huge config objects use multipart. */
#define S3_MULTIPART_THRESHOLD ((size_t)32 << 20)
/* Part size: 16 MiB, grown for objects that would need more than
 * S3_MAX_PARTS parts (S3's limit). Every part but the last must be at
 * least 5 MiB on AWS. */
#define S3_PART_SIZE ((size_t)16 << 20)
#define S3_MAX_PARTS 10000
/* Parts of one upload in flight at once.  The writer already uploads
 * several packs in parallel, so a few threads per object are enough to keep
 * a single big object from being a serial bottleneck. */
#define S3_UPLOAD_THREADS 4
/* S3's limit of keys per DeleteObjects request. */
#define S3_DELETE_BATCH 1000
#define S3_RETRY_SECONDS_DEFAULT 60.0
#define S3_BACKOFF_FIRST 0.25 /* seconds */
#define S3_BACKOFF_MAX 4.0
/* Idle curl handles kept for reuse (each keeps its connections open). */
#define S3_HANDLE_POOL 16
#define S3_CONNECT_TIMEOUT 15L /* seconds */
/* A transfer slower than 1 byte/s for this long is dead (a hung server, a
 * connection a NAT forgot); OPSBACKUP_S3_LOW_SPEED_SECONDS overrides it. */
#define S3_LOW_SPEED_SECONDS_DEFAULT 60L
/* Largest body we accept for a request that is not an object GET (error
 * documents, listings: a page of 1000 keys is ~300 KiB). */
#define S3_SMALL_BODY_MAX ((size_t)16 << 20)

typedef struct storage_s3 {
    storage base;     /* first, so storage * and storage_s3 * convert */
    char *bucket;
    char *prefix;     /* "" or "some/prefix/" (always ends with '/') */
    char *endpoint;   /* as configured, for messages: "http://127.0.0.1:9000" */
    char *origin;     /* scheme://host[:port] requests go to */
    char *host;       /* Host header (and signed host) */
    char *base_path;  /* path before the key: endpoint path + "/bucket" (path style) */
    char *region;
    char *akid;       /* access key ID (not secret; shown in auth errors) */
    char *secret;     /* never shown */
    char *token;      /* session token or NULL; never shown */
    char *ca_file;    /* or NULL */
    double retry_seconds;
    long low_speed_seconds;
    pthread_mutex_t pool_lock;
    CURL *pool[S3_HANDLE_POOL];
    size_t npool;
} storage_s3;

static const storage_ops storage_s3_ops;

/* ------------------------------------------------------------ XML parsing */

static int s3_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void s3_put_utf8(ob_buf *b, uint32_t cp)
{
    if (cp < 0x80) {
        ob_buf_putc(b, (uint8_t)cp);
    } else if (cp < 0x800) {
        ob_buf_putc(b, (uint8_t)(0xC0 | cp >> 6));
        ob_buf_putc(b, (uint8_t)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        ob_buf_putc(b, (uint8_t)(0xE0 | cp >> 12));
        ob_buf_putc(b, (uint8_t)(0x80 | (cp >> 6 & 0x3F)));
        ob_buf_putc(b, (uint8_t)(0x80 | (cp & 0x3F)));
    } else {
        ob_buf_putc(b, (uint8_t)(0xF0 | cp >> 18));
        ob_buf_putc(b, (uint8_t)(0x80 | (cp >> 12 & 0x3F)));
        ob_buf_putc(b, (uint8_t)(0x80 | (cp >> 6 & 0x3F)));
        ob_buf_putc(b, (uint8_t)(0x80 | (cp & 0x3F)));
    }
}

int storage_s3_xml_decode(const char *in, size_t len, ob_buf *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    ob_buf_reset(out);
    ob_buf_reserve(out, len);
    out->data[0] = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\0')
            return -1;
        if (in[i] != '&') {
            ob_buf_putc(out, (uint8_t)in[i]);
            continue;
        }
        const char *semi = memchr(in + i, ';', len - i);
        /* The longest entity we accept is "&#x10FFFF;" / "&#1114111;". */
        if (!semi || semi - (in + i) > 10)
            return -1;
        const char *ent = in + i + 1;
        size_t elen = (size_t)(semi - ent);
        int found = 0;
        for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
            if (strlen(named[k].name) == elen && memcmp(ent, named[k].name, elen) == 0) {
                ob_buf_putc(out, (uint8_t)named[k].c);
                found = 1;
            }
        if (!found) {
            if (elen < 2 || ent[0] != '#')
                return -1;
            int hex = ent[1] == 'x' || ent[1] == 'X';
            size_t d0 = hex ? 2 : 1;
            if (d0 >= elen)
                return -1;
            uint32_t cp = 0;
            for (size_t k = d0; k < elen; k++) {
                int v = hex ? s3_hexval((unsigned char)ent[k])
                            : (ent[k] >= '0' && ent[k] <= '9' ? ent[k] - '0' : -1);
                if (v < 0)
                    return -1;
                cp = cp * (hex ? 16u : 10u) + (uint32_t)v;
                if (cp > 0x10FFFF)
                    return -1;
            }
            if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                return -1;
            s3_put_utf8(out, cp);
        }
        i = (size_t)(semi - in);
    }
    return 0;
}

/* Find the raw text of the first <tag>…</tag> in xml[0..len): *start and
 * *tlen receive it, *after the position just past the closing tag.
 * Returns 0 if found. */
static int s3_xml_find(const char *xml, size_t len, const char *tag, const char **start,
                       size_t *tlen, const char **after)
{
    size_t tl = strlen(tag);
    char *open = ob_xasprintf("<%s>", tag);
    char *close = ob_xasprintf("</%s>", tag);
    int rc = -1;
    const char *o = memmem(xml, len, open, tl + 2);
    if (o) {
        const char *body = o + tl + 2;
        size_t left = len - (size_t)(body - xml);
        const char *c = memmem(body, left, close, tl + 3);
        if (c) {
            *start = body;
            *tlen = (size_t)(c - body);
            if (after)
                *after = c + tl + 3;
            rc = 0;
        }
    }
    free(open);
    free(close);
    return rc;
}

char *storage_s3_xml_text(const char *xml, size_t len, const char *tag)
{
    const char *t;
    size_t tl;
    if (!xml || s3_xml_find(xml, len, tag, &t, &tl, NULL) < 0)
        return NULL;
    ob_buf b = OB_BUF_INIT;
    if (storage_s3_xml_decode(t, tl, &b) < 0) {
        ob_buf_free(&b);
        return NULL;
    }
    return (char *)ob_buf_steal(&b, NULL);
}

void storage_s3_list_page_free(storage_s3_list_page *page)
{
    for (size_t i = 0; i < page->n; i++)
        free(page->keys[i]);
    free(page->keys);
    free(page->sizes);
    free(page->next_token);
    memset(page, 0, sizeof *page);
}

static int s3_parse_u64(const char *s, size_t n, uint64_t *out)
{
    /* Servers do not pad, but trimming surrounding whitespace costs nothing. */
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0 || n > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int storage_s3_parse_list(const char *xml, size_t len, storage_s3_list_page *page, ob_err *err)
{
    memset(page, 0, sizeof *page);
    if (!xml || !memmem(xml, len, "<ListBucketResult", 17))
        return ob_err_set(err, OB_ECORRUPT,
                          "the server's answer to a listing is not a ListBucketResult");
    size_t cap = 0;
    const char *p = xml, *end = xml + len;
    ob_buf dec = OB_BUF_INIT;
    for (;;) {
        const char *c;
        size_t clen;
        const char *after;
        if (s3_xml_find(p, (size_t)(end - p), "Contents", &c, &clen, &after) < 0)
            break;
        const char *k, *sz;
        size_t klen, szlen;
        uint64_t size;
        if (s3_xml_find(c, clen, "Key", &k, &klen, NULL) < 0 ||
            storage_s3_xml_decode(k, klen, &dec) < 0 || dec.len == 0) {
            ob_buf_free(&dec);
            storage_s3_list_page_free(page);
            return ob_err_set(err, OB_ECORRUPT,
                              "the server's listing has an entry without a valid <Key>");
        }
        if (s3_xml_find(c, clen, "Size", &sz, &szlen, NULL) < 0 ||
            s3_parse_u64(sz, szlen, &size) < 0) {
            ob_buf_free(&dec);
            storage_s3_list_page_free(page);
            return ob_err_set(err, OB_ECORRUPT,
                              "the server's listing has an entry without a valid <Size>");
        }
        if (page->n == cap) {
            cap = cap ? cap * 2 : 64;
            page->keys = ob_xrealloc(page->keys, cap * sizeof *page->keys);
            page->sizes = ob_xrealloc(page->sizes, cap * sizeof *page->sizes);
        }
        page->keys[page->n] = ob_xstrndup((const char *)dec.data, dec.len);
        page->sizes[page->n] = size;
        page->n++;
        p = after;
    }
    ob_buf_free(&dec);
    /* A listing cut short must not pass for a complete one: a 200 body that
     * ends early (a connection closed mid-body, without a length to check
     * against) would hide the objects after the cut, and prune deletes
     * what the snapshots it did not see use.  So: the document must end,
     * every <Contents> opened must have been read, and <KeyCount>, when
     * the server sends it, must agree (no delimiter is ever sent, so it
     * counts keys only). */
    size_t opened = 0;
    for (const char *q = xml; (q = memmem(q, (size_t)(end - q), "<Contents>", 10)); q += 10)
        opened++;
    char *kc = storage_s3_xml_text(xml, len, "KeyCount");
    uint64_t keycount = 0;
    int bad_kc = kc && (s3_parse_u64(kc, strlen(kc), &keycount) < 0 || keycount != page->n);
    free(kc);
    if (!memmem(p, (size_t)(end - p), "</ListBucketResult>", 19) || opened != page->n ||
        bad_kc) {
        storage_s3_list_page_free(page);
        return ob_err_set(err, OB_EIO,
                          "the server's listing is incomplete (cut off, or %zu entries of %zu "
                          "read): not using it",
                          page->n, opened);
    }
    char *trunc = storage_s3_xml_text(xml, len, "IsTruncated");
    page->truncated = trunc && strcmp(trunc, "true") == 0;
    free(trunc);
    page->next_token = storage_s3_xml_text(xml, len, "NextContinuationToken");
    return 0;
}

/* ------------------------------------------------------------- encodings */

void storage_s3_uri_encode(ob_buf *b, const char *s, int keep_slash)
{
    static const char hexdig[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
            (keep_slash && *p == '/')) {
            ob_buf_putc(b, *p);
        } else {
            ob_buf_putc(b, '%');
            ob_buf_putc(b, (uint8_t)hexdig[*p >> 4]);
            ob_buf_putc(b, (uint8_t)hexdig[*p & 15]);
        }
    }
    if (!b->data)
        ob_buf_reserve(b, 0);
}

static void s3_xml_escape(ob_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': ob_buf_printf(b, "&amp;"); break;
        case '<': ob_buf_printf(b, "&lt;"); break;
        case '>': ob_buf_printf(b, "&gt;"); break;
        case '"': ob_buf_printf(b, "&quot;"); break;
        case '\'': ob_buf_printf(b, "&apos;"); break;
        default: ob_buf_putc(b, (uint8_t)*s);
        }
    }
}

static void s3_md5(const void *data, size_t len, uint8_t out[16])
{
    unsigned int n = 16;
    /* MD5 is what S3 speaks for Content-MD5 and ETags; it checks transfer
     * integrity here, not authenticity (every object is AES-GCM sealed). */
    if (EVP_Digest(data, len, out, &n, EVP_md5(), NULL) != 1)
        abort(); /* only fails when out of memory */
}

static void s3_base64(const uint8_t *in, size_t n, char *out /* 4*ceil(n/3)+1 */)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void s3_hmac(const void *key, size_t keylen, const char *msg, uint8_t out[32])
{
    unsigned int n = 32;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &n))
        abort();
}

static double s3_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* -------------------------------------------------------------- requests */

typedef struct s3_request {
    const char *method;  /* GET PUT HEAD DELETE POST */
    const char *key;     /* full key (prefix included) or NULL for the bucket */
    const char *query;   /* canonical query string (sorted, encoded) or NULL */
    const void *body;    /* PUT / POST body */
    size_t body_len;
    const int *body_fd;  /* non-NULL: a PUT's body is this file's first body_len
                          * bytes instead (a staged write, see s3_write_*) */
    const char *payload_sha256; /* hex SHA-256 of the body, or NULL: computed here */
    const char *range;   /* "bytes=a-b" or NULL */
    const char *content_md5;  /* base64, or NULL */
    const char *content_type; /* or NULL */
    const char *what;    /* subject for messages: "object data/ab/…" */
    ob_buf *sink;        /* where a 2xx body goes (else the response's own) */
    size_t body_max;     /* refuse larger bodies; 0 = S3_SMALL_BODY_MAX */
    const struct iovec *iov; /* or: a 2xx body's bytes from iov_from on go */
    size_t iovn;             /* here, in order (storage_getv) */
    uint64_t iov_from;
    const char *answer_end;  /* a 200's body must hold this closing tag (e.g.
                              * "</DeleteResult>"), else it was cut or is an
                              * error document: asked again (s3_answer_incomplete) */
} s3_request;

typedef struct s3_response {
    long status;         /* 0 when no HTTP answer came */
    ob_buf body;         /* the body (errors always land here) */
    ob_buf *sink;        /* where the body is being written */
    size_t body_max;
    int overflow;        /* the body exceeded body_max */
    char *etag;          /* ETag header, quotes stripped */
    int sse_kms;         /* x-amz-server-side-encryption: aws:kms…, or SSE-C: the
                          * ETag is not the MD5 of the body (S3 docs) */
    int64_t content_length; /* -1 unknown */
    int64_t range_start; /* first byte of "Content-Range: bytes a-b/n", -1 if none */
    int64_t range_end;   /* its last byte b, -1 if none */
    int framed;          /* the protocol marks the body's end (chunked, HTTP/2+), so
                          * curl fails a cut one itself */
    int read_errno;      /* an upload's staged file could not be read back */
    /* Scatter (s3_request.iov): where the body starts in the object, how
     * much of it came, how much went into iov, the cursor there, and
     * whether the answer cannot be placed (a 206 with no usable
     * Content-Range). */
    const struct iovec *iov;
    size_t iovn, iov_i, iov_off;
    uint64_t iov_from, body_start, body_seen, delivered;
    int iov_bad;
    const uint8_t *up;   /* upload cursor (memory body) */
    size_t up_left;
    int up_fd;           /* >= 0: read the body from this file at up_off */
    uint64_t up_off;
} s3_response;

static void s3_response_reset(s3_response *r)
{
    r->status = 0;
    ob_buf_reset(&r->body);
    if (r->sink)
        ob_buf_reset(r->sink);
    r->overflow = 0;
    free(r->etag);
    r->etag = NULL;
    r->content_length = -1;
    r->range_start = r->range_end = -1;
    r->framed = 0;
    r->read_errno = 0;
    r->iov_i = r->iov_off = 0;
    r->body_start = r->body_seen = r->delivered = 0;
    r->iov_bad = 0;
}

static void s3_response_free(s3_response *r)
{
    ob_buf_free(&r->body);
    free(r->etag);
    r->etag = NULL;
}

/* Copy body bytes p[0..n) into the scatter buffers, those of them that
 * fall in [iov_from + delivered, the end of iov). */
static void s3_scatter(s3_response *r, const char *p, size_t n)
{
    uint64_t at = r->body_start + r->body_seen; /* object offset of p[0] */
    uint64_t want = r->iov_from + r->delivered;
    if (at + n <= want)
        return;
    if (at > want) { /* a gap: cannot happen with a body in order */
        r->iov_bad = 1;
        return;
    }
    p += want - at;
    n -= (size_t)(want - at);
    while (n && r->iov_i < r->iovn) {
        const struct iovec *v = &r->iov[r->iov_i];
        size_t k = v->iov_len - r->iov_off < n ? v->iov_len - r->iov_off : n;
        memcpy((char *)v->iov_base + r->iov_off, p, k);
        p += k;
        n -= k;
        r->iov_off += k;
        r->delivered += k;
        if (r->iov_off == v->iov_len) {
            r->iov_i++;
            r->iov_off = 0;
        }
    }
}

static size_t s3_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    s3_response *r = ud;
    size_t n = size * nmemb;
    if (r->iov && r->status >= 200 && r->status < 300) {
        if (r->body_seen == 0 && r->status == 206) {
            if (r->range_start < 0 || (uint64_t)r->range_start > r->iov_from)
                r->iov_bad = 1;
            else
                r->body_start = (uint64_t)r->range_start;
        }
        if (!r->iov_bad)
            s3_scatter(r, ptr, n);
        r->body_seen += n;
        return n;
    }
    /* The status line has been parsed by the time the body arrives. */
    ob_buf *b = r->sink && r->status >= 200 && r->status < 300 ? r->sink : &r->body;
    if (b->len + n > r->body_max) {
        r->overflow = 1;
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    ob_buf_append(b, ptr, n);
    return n;
}

static size_t s3_header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    s3_response *r = ud;
    size_t n = size * nitems;
    if (n > 8 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new status line (after a 100 Continue or a redirect): parse the
         * status so the write callback knows where the body goes. */
        const char *sp = memchr(buf, ' ', n);
        if (sp && (size_t)(sp - buf) + 4 <= n)
            r->status = strtol(sp + 1, NULL, 10);
        /* HTTP/2 and later end every body with a frame flag. */
        r->framed = buf[5] >= '2' && buf[5] <= '9';
        r->range_start = r->range_end = -1;
        free(r->etag);
        r->etag = NULL;
        r->sse_kms = 0;
    } else if ((n >= 37 && strncasecmp(buf, "x-amz-server-side-encryption: aws:kms", 37) == 0) ||
               (n >= 48 && strncasecmp(buf, "x-amz-server-side-encryption-customer-algorithm:",
                                      48) == 0)) {
        r->sse_kms = 1;
    } else if (n > 5 && strncasecmp(buf, "ETag:", 5) == 0) {
        const char *v = buf + 5, *e = buf + n;
        while (v < e && (*v == ' ' || *v == '\t' || *v == '"'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '"'))
            e--;
        free(r->etag);
        r->etag = ob_xstrndup(v, (size_t)(e - v));
    } else if (n > 20 && strncasecmp(buf, "Content-Range:", 14) == 0) {
        char *line = ob_xstrndup(buf + 14, n - 14);
        unsigned long long a, b;
        int k = sscanf(line, " bytes %llu-%llu", &a, &b);
        if (k >= 1 && a <= INT64_MAX)
            r->range_start = (int64_t)a;
        if (k == 2 && b >= a && b <= INT64_MAX)
            r->range_end = (int64_t)b;
        free(line);
    } else if (n > 18 && strncasecmp(buf, "Transfer-Encoding:", 18) == 0) {
        char *line = ob_xstrndup(buf + 18, n - 18);
        if (strcasestr(line, "chunked"))
            r->framed = 1;
        free(line);
    }
    return n;
}

static size_t s3_read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    s3_response *r = ud;
    size_t n = size * nitems;
    if (n > r->up_left)
        n = r->up_left;
    if (n && r->up_fd >= 0) {
        ssize_t k;
        do
            k = pread(r->up_fd, buf, n, (off_t)r->up_off);
        while (k < 0 && errno == EINTR);
        if (k <= 0) { /* the staged file cannot be read back */
            r->read_errno = k < 0 ? errno : EIO;
            return CURL_READFUNC_ABORT;
        }
        n = (size_t)k;
        r->up_off += n;
    } else if (n) {
        memcpy(buf, r->up, n);
        r->up += n;
    }
    r->up_left -= n;
    return n;
}

static CURL *s3_handle_get(storage_s3 *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->pool_lock);
    if (s->npool)
        h = s->pool[--s->npool];
    pthread_mutex_unlock(&s->pool_lock);
    if (h)
        curl_easy_reset(h); /* keeps its open connections */
    else
        h = curl_easy_init();
    return h;
}

static void s3_handle_put(storage_s3 *s, CURL *h)
{
    pthread_mutex_lock(&s->pool_lock);
    if (s->npool < S3_HANDLE_POOL) {
        s->pool[s->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (h)
        curl_easy_cleanup(h);
}

/* The path of a request, exactly as sent and as signed. */
static char *s3_path(const storage_s3 *s, const char *key)
{
    ob_buf b = OB_BUF_INIT;
    storage_s3_uri_encode(&b, s->base_path, 1);
    if (key) {
        ob_buf_putc(&b, '/');
        storage_s3_uri_encode(&b, key, 1);
    } else if (b.len == 0) {
        ob_buf_putc(&b, '/');
    }
    return (char *)ob_buf_steal(&b, NULL);
}

char *storage_s3_sigv4(const char *akid, const char *secret, const char *region,
                       const char *method, const char *path, const char *query,
                       const char *canon_headers, const char *signed_headers,
                       const char *payload_hash, const char *amz_date)
{
    /* AWS General Reference, "Create a signed AWS API request". */
    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    char *creq = ob_xasprintf("%s\n%s\n%s\n%s\n%s\n%s", method, path, query ? query : "",
                              canon_headers, signed_headers, payload_hash);
    uint8_t h[32];
    char hhex[65];
    ob_sha256(creq, strlen(creq), h);
    ob_hex(h, 32, hhex);
    free(creq);
    char *scope = ob_xasprintf("%s/%s/s3/aws4_request", date, region);
    char *sts = ob_xasprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, hhex);

    char *k0 = ob_xasprintf("AWS4%s", secret);
    uint8_t k1[32], k2[32], k3[32], k4[32], sig[32];
    s3_hmac(k0, strlen(k0), date, k1);
    ob_wipe(k0, strlen(k0));
    free(k0);
    s3_hmac(k1, 32, region, k2);
    s3_hmac(k2, 32, "s3", k3);
    s3_hmac(k3, 32, "aws4_request", k4);
    s3_hmac(k4, 32, sts, sig);
    ob_wipe(k1, 32);
    ob_wipe(k2, 32);
    ob_wipe(k3, 32);
    ob_wipe(k4, 32);
    char sighex[65];
    ob_hex(sig, 32, sighex);
    char *auth = ob_xasprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                              akid, scope, signed_headers, sighex);
    free(scope);
    free(sts);
    return auth;
}

static struct curl_slist *s3_add_header(struct curl_slist *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct curl_slist *s3_add_header(struct curl_slist *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *h = NULL;
    if (vasprintf(&h, fmt, ap) < 0)
        abort();
    va_end(ap);
    struct curl_slist *n = curl_slist_append(l, h);
    free(h);
    if (!n)
        abort();
    return n;
}

/* curl calls this about once a second while a request waits, and after
 * each piece of data: a non-zero return abandons the request
 * (CURLE_ABORTED_BY_CALLBACK).  A GET held by a stalled server would
 * otherwise keep a stopping restore for s->low_speed_seconds. */
static int s3_xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return storage_stop_wanted(ud);
}

/* One attempt.  Returns the curl result; resp->status is the HTTP status
 * when one arrived.  curl_msg receives curl's explanation on failure. */
static CURLcode s3_perform_once(storage_s3 *s, const s3_request *rq, s3_response *resp,
                                char curl_msg[CURL_ERROR_SIZE])
{
    s3_response_reset(resp);
    curl_msg[0] = '\0';
    CURL *h = s3_handle_get(s);
    if (!h) {
        snprintf(curl_msg, CURL_ERROR_SIZE, "cannot create an HTTP handle");
        return CURLE_OUT_OF_MEMORY;
    }

    char *path = s3_path(s, rq->key);
    char *url = ob_xasprintf("%s%s%s%s", s->origin, path, rq->query ? "?" : "",
                             rq->query ? rq->query : "");
    char payload_hash[65];
    if (rq->payload_sha256) {
        snprintf(payload_hash, sizeof payload_hash, "%s", rq->payload_sha256);
    } else {
        uint8_t ph[32];
        ob_sha256(rq->body ? rq->body : "", rq->body_len, ph);
        ob_hex(ph, 32, payload_hash);
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char amz_date[17];
    strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);

    /* Canonical headers, sorted by name. */
    ob_buf ch = OB_BUF_INIT, sh = OB_BUF_INIT;
    if (rq->content_md5) {
        ob_buf_printf(&ch, "content-md5:%s\n", rq->content_md5);
        ob_buf_printf(&sh, "content-md5;");
    }
    ob_buf_printf(&ch, "host:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n", s->host,
                  payload_hash, amz_date);
    ob_buf_printf(&sh, "host;x-amz-content-sha256;x-amz-date");
    if (s->token) {
        ob_buf_printf(&ch, "x-amz-security-token:%s\n", s->token);
        ob_buf_printf(&sh, ";x-amz-security-token");
    }
    char *auth = storage_s3_sigv4(s->akid, s->secret, s->region, rq->method, path, rq->query,
                                  (const char *)ch.data, (const char *)sh.data, payload_hash,
                                  amz_date);
    ob_buf_free(&ch);
    ob_buf_free(&sh);

    struct curl_slist *hl = NULL;
    hl = s3_add_header(hl, "Host: %s", s->host);
    hl = s3_add_header(hl, "x-amz-date: %s", amz_date);
    hl = s3_add_header(hl, "x-amz-content-sha256: %s", payload_hash);
    if (s->token)
        hl = s3_add_header(hl, "x-amz-security-token: %s", s->token);
    if (rq->content_md5)
        hl = s3_add_header(hl, "Content-MD5: %s", rq->content_md5);
    if (rq->range)
        hl = s3_add_header(hl, "Range: %s", rq->range);
    hl = s3_add_header(hl, "Authorization: %s", auth);
    /* No "Expect: 100-continue" round trip: the body is in memory and
     * small enough to resend if the server refuses. */
    hl = s3_add_header(hl, "Expect:");
    if (rq->content_type)
        hl = s3_add_header(hl, "Content-Type: %s", rq->content_type);
    else if (rq->body)
        hl = s3_add_header(hl, "Content-Type:"); /* no form encoding for POST */
    free(auth);

    resp->sink = rq->sink;
    resp->iov = rq->iov;
    resp->iovn = rq->iovn;
    resp->iov_from = rq->iov_from;
    resp->body_max = rq->body_max ? rq->body_max : S3_SMALL_BODY_MAX;
    resp->up = rq->body;
    resp->up_left = rq->body_len;
    resp->up_fd = rq->body_fd ? *rq->body_fd : -1;
    resp->up_off = 0;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Keys like "a/../b" must reach the server as written (and be signed
     * as written); curl would otherwise squash the dots. */
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, S3_CONNECT_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->low_speed_seconds);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (s->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
    /* Handles are reused: set both ways. */
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, s->base.stop ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, s->base.stop ? s3_xferinfo_cb : NULL);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, s->base.stop ? &s->base : NULL);
    if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(rq->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, s3_read_cb);
        curl_easy_setopt(h, CURLOPT_READDATA, resp);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
    } else if (strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    } else if (strcmp(rq->method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }

    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status)
        resp->status = status;
    curl_off_t cl = -1;
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
        resp->content_length = cl;
    if (cc == CURLE_WRITE_ERROR && resp->overflow)
        snprintf(curl_msg, CURL_ERROR_SIZE, "the server sent a larger answer than expected");
    else if (cc != CURLE_OK && !curl_msg[0])
        snprintf(curl_msg, CURL_ERROR_SIZE, "%s", curl_easy_strerror(cc));
    /* The handle's options point at our locals; unhook them. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    s3_handle_put(s, h);
    curl_slist_free_all(hl);
    free(url);
    free(path);
    return cc;
}

/* Curl failures worth another attempt: everything that can be a flaky
 * network or a restarting server.  Not: a certificate that does not
 * verify, a bad URL or option, or our own refusal of an oversized body. */
static int s3_curl_retryable(CURLcode cc)
{
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return 0;
    default:
        return 1;
    }
}

static int s3_status_retryable(const s3_response *r)
{
    if (r->status >= 500 || r->status == 429 || r->status == 408)
        return 1;
    if (r->status == 400) {
        /* An idle upload timed out on the server side. */
        char *code = storage_s3_xml_text((const char *)r->body.data, r->body.len, "Code");
        int rt = code && strcmp(code, "RequestTimeout") == 0;
        free(code);
        return rt;
    }
    return 0;
}

/* "HTTP 503 SlowDown: Please reduce your request rate" from a response. */
static char *s3_describe_status(const s3_response *r)
{
    char *code = storage_s3_xml_text((const char *)r->body.data, r->body.len, "Code");
    char *msg = storage_s3_xml_text((const char *)r->body.data, r->body.len, "Message");
    /* Never echo control characters from the server into a terminal. */
    for (char *p = msg; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    for (char *p = code; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    char *d;
    if (code && msg)
        d = ob_xasprintf("HTTP %ld %s: %s", r->status, code, msg);
    else if (code)
        d = ob_xasprintf("HTTP %ld %s", r->status, code);
    else
        d = ob_xasprintf("HTTP %ld", r->status);
    free(code);
    free(msg);
    return d;
}

/* S3 error codes a 200 answer can carry that mean "try again" (AWS's
 * CompleteMultipartUpload documentation). */
static int s3_code_transient(const char *code)
{
    return strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 ||
           strcmp(code, "ServiceUnavailable") == 0 || strcmp(code, "RequestTimeout") == 0;
}

/* Does the body's root element, named by its closing tag end_tag
 * ("</DeleteResult>"), close itself (<DeleteResult xmlns="…"/>)?  An empty
 * root may be written either way. */
static int s3_root_self_closed(const char *b, size_t len, const char *end_tag)
{
    size_t n = strlen(end_tag) - 3; /* the name between "</" and ">" */
    for (const char *p = b; p && (size_t)(p - b) + n + 2 <= len;) {
        p = memchr(p, '<', len - (size_t)(p - b));
        if (!p || (size_t)(p - b) + n + 2 > len)
            return 0;
        const char after = p[1 + n];
        if (memcmp(p + 1, end_tag + 2, n) == 0 &&
            (after == ' ' || after == '/' || after == '>' || after == '\t' || after == '\n' ||
             after == '\r')) {
            const char *gt = memchr(p, '>', len - (size_t)(p - b));
            return gt && gt[-1] == '/';
        }
        p++;
    }
    return 0;
}

/*
 * Why a 2xx answer cannot be used as it came, as a message (the caller
 * frees it), or NULL when it is whole.  Such an answer is asked for again
 * like a network error: the next attempt usually comes whole.
 *
 * - An object's body is whole when it has as many bytes as its
 *   Content-Length says, or else as its Content-Range says; a body whose
 *   end the protocol marks (chunked, HTTP/2) is checked by curl itself.  A
 *   200 with none of these (to a whole-object or a ranged request) ended
 *   when the connection closed, which a connection dying mid-body does
 *   too: nothing tells them apart, so it is not used (D26).
 * - A 200 that must hold a closing tag (rq->answer_end), or a root that
 *   closes itself, and does not was cut, or is an error document: S3 may answer 200 and put InternalError
 *   or SlowDown in the body.  An error document with another code is a
 *   final answer; the caller reports it.
 */
static char *s3_answer_incomplete(const s3_request *rq, const s3_response *r)
{
    if (rq->answer_end && r->status == 200) {
        const char *b = r->body.data ? (const char *)r->body.data : "";
        if (memmem(b, r->body.len, rq->answer_end, strlen(rq->answer_end)) ||
            s3_root_self_closed(b, r->body.len, rq->answer_end))
            return NULL;
        char *code = storage_s3_xml_text(b, r->body.len, "Code");
        char *why = NULL;
        if (!code)
            why = ob_xasprintf("the answer was cut short (%zu bytes, without %s)", r->body.len,
                               rq->answer_end);
        else if (s3_code_transient(code))
            why = s3_describe_status(r);
        free(code);
        return why;
    }
    if (!(rq->sink || rq->iov) || (r->status != 200 && r->status != 206))
        return NULL;
    uint64_t got = rq->iov ? r->body_seen : rq->sink->len;
    if (r->content_length >= 0) {
        if (got == (uint64_t)r->content_length)
            return NULL;
        return ob_xasprintf("the answer was cut short: %" PRIu64 " bytes of the %" PRId64
                            " its Content-Length announced",
                            got, r->content_length);
    }
    if (r->framed)
        return NULL;
    if (r->status == 206 && r->range_start >= 0 && r->range_end >= r->range_start) {
        uint64_t want = (uint64_t)(r->range_end - r->range_start) + 1;
        if (got >= want)
            return NULL;
        return ob_xasprintf("the answer was cut short: %" PRIu64 " bytes of the %" PRIu64
                            " its Content-Range announced",
                            got, want);
    }
    if (r->status == 206)
        return NULL; /* no usable Content-Range: the caller refuses it */
    return ob_xasprintf("the answer was %" PRIu64 " bytes, its length unknown and its end "
                        "that of the connection: cut short or not, it cannot be told",
                        got);
}

/*
 * Perform a request, retrying transient failures with exponential backoff
 * and jitter until s->retry_seconds have passed since the first failure.
 * The window starts when the first attempt has failed, not when it
 * started: an attempt abandoned after S3_LOW_SPEED_SECONDS_DEFAULT (a
 * connection that went dead) would otherwise use up the whole default
 * window and never be tried again.
 * Returns 0 when the server gave a final answer (any status: the caller
 * decides what it means), -1 with err filled when the network or a
 * transient server error lasted past the retry window.
 */
static int s3_perform(storage_s3 *s, const s3_request *rq, s3_response *resp, ob_err *err)
{
    char curl_msg[CURL_ERROR_SIZE]; /* curl's API wants exactly this buffer */
    double start = s3_now(), first_failure = 0, delay = S3_BACKOFF_FIRST;
    for (int attempt = 1;; attempt++) {
        CURLcode cc = storage_stop_wanted(&s->base) ? CURLE_ABORTED_BY_CALLBACK
                                                     : s3_perform_once(s, rq, resp, curl_msg);
        char *incomplete = cc == CURLE_OK ? s3_answer_incomplete(rq, resp) : NULL;
        int again = cc != CURLE_OK ? s3_curl_retryable(cc)
                    : incomplete   ? 1
                                   : s3_status_retryable(resp);
        if (!again && cc == CURLE_OK)
            return 0;
        if (cc == CURLE_ABORTED_BY_CALLBACK && resp->read_errno)
            return ob_err_set(err, OB_EIO,
                              "%s: %s: cannot read back the upload staged in the temporary "
                              "directory (%s): %s",
                              rq->what, rq->method, ob_tmpdir(), strerror(resp->read_errno));
        /* Once a stop is wanted, any failure is reported as the stop: the
         * caller is ending anyway, and a retry would only delay it. */
        if (cc == CURLE_ABORTED_BY_CALLBACK || storage_stop_wanted(&s->base)) {
            free(incomplete);
            return ob_err_set(err, OB_EFAIL, "%s: %s stopped: opsbackup is being stopped",
                              rq->what, rq->method);
        }
        char *why = incomplete           ? incomplete
                    : cc != CURLE_OK     ? ob_xasprintf("%s", curl_msg)
                                         : s3_describe_status(resp);
        if (attempt == 1)
            first_failure = s3_now();
        double elapsed = s3_now() - first_failure;
        /* Full jitter in [delay/2, delay): spreads the retries of many
         * parallel uploads hitting one overloaded server. */
        uint32_t rnd = 0;
        ob_random(&rnd, sizeof rnd, NULL);
        double sleep_s = delay * (0.5 + 0.5 * ((double)rnd / 4294967296.0));
        if (!again || elapsed + sleep_s > s->retry_seconds) {
            int code = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE
                           ? OB_EUSAGE
                           : OB_EIO;
            if (!again)
                ob_err_set(err, code, "%s: %s %s failed: %s%s", rq->what, rq->method,
                           s->endpoint, why,
                           code == OB_EUSAGE ? " (is ca-file set for a private CA?)" : "");
            else
                ob_err_set(err, OB_EIO,
                           "%s: %s failed after %d attempt(s) over %.0f s: %s (server %s; "
                           "retry window %.0f s, OPSBACKUP_S3_RETRY_SECONDS)",
                           rq->what, rq->method, attempt, s3_now() - start, why, s->endpoint,
                           s->retry_seconds);
            free(why);
            return -1;
        }
        ob_info("%s: %s attempt %d failed (%s); retrying in %.1f s", rq->what, rq->method,
                attempt, why, sleep_s);
        free(why);
        /* In slices, so a stop is seen during a long backoff too. */
        double until = s3_now() + sleep_s;
        for (double left = sleep_s; left > 0 && !storage_stop_wanted(&s->base);
             left = until - s3_now()) {
            double slice = left < 0.1 ? left : 0.1;
            struct timespec ts = {0, (long)(slice * 1e9)};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
            }
        }
        delay = delay * 2 > S3_BACKOFF_MAX ? S3_BACKOFF_MAX : delay * 2;
    }
}

/* Turn a final non-success answer into an error that says what to do. */
static int s3_http_err(storage_s3 *s, const s3_request *rq, const s3_response *r, ob_err *err)
{
    char *code = storage_s3_xml_text((const char *)r->body.data, r->body.len, "Code");
    char *d = s3_describe_status(r);
    int rc;
    if (code && strcmp(code, "NoSuchBucket") == 0) {
        rc = ob_err_set(err, OB_ENOTFOUND,
                        "%s: bucket \"%s\" does not exist at %s (%s): create it first; "
                        "opsbackup never creates buckets",
                        rq->what, s->bucket, s->endpoint, d);
    } else if ((r->status == 403 &&
                (!code || strcmp(code, "SignatureDoesNotMatch") == 0 ||
                 strcmp(code, "InvalidAccessKeyId") == 0)) ||
               (code && (strcmp(code, "InvalidToken") == 0 || strcmp(code, "ExpiredToken") == 0 ||
                         strcmp(code, "TokenRefreshRequired") == 0))) {
        /* A session token that expired comes back as 400 from some
         * services, 403 from others: both are the credentials. */
        rc = ob_err_set(err, OB_EAUTH,
                        "%s: %s: the S3 credentials were rejected by %s (%s, access key ID "
                        "%s): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / "
                        "AWS_SESSION_TOKEN or access-key-id / secret-access-key / "
                        "session-token in the [repo.NAME] section",
                        rq->what, rq->method, s->endpoint, d, s->akid);
    } else if (r->status == 403) {
        rc = ob_err_set(err, OB_EAUTH,
                        "%s: %s: access denied by %s (%s): the credentials (access key ID %s) "
                        "lack permission on bucket \"%s\"",
                        rq->what, rq->method, s->endpoint, d, s->akid, s->bucket);
    } else if (code && strcmp(code, "RequestTimeTooSkewed") == 0) {
        rc = ob_err_set(err, OB_EIO, "%s: %s: %s: this machine's clock is wrong; fix it (NTP)",
                        rq->what, rq->method, d);
    } else if (r->status == 301 || r->status == 307 ||
               (code && strcmp(code, "PermanentRedirect") == 0)) {
        rc = ob_err_set(err, OB_EUSAGE,
                        "%s: %s: %s: the bucket is in another region or needs another "
                        "endpoint; set region (and endpoint) for it",
                        rq->what, rq->method, d);
    } else {
        rc = ob_err_set(err, r->status == 404 ? OB_ENOTFOUND : OB_EIO, "%s: %s failed: %s",
                        rq->what, rq->method, d);
    }
    free(code);
    free(d);
    return rc;
}

/* ------------------------------------------------------------ the driver */

/* A number of seconds from the environment variable `name`, min to 86400;
 * *out is left as it is when the variable is unset or empty. */
static int s3_env_seconds(const char *name, double min, double *out, ob_err *err)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d >= min && d <= 86400))
        return ob_err_set(err, OB_EUSAGE, "%s=%s is not a number of seconds (%g to 86400)",
                          name, v, min);
    *out = d;
    return 0;
}

static int s3_check_name(const char *name, ob_err *err)
{
    if (!*name)
        return ob_err_set(err, OB_EUSAGE, "object: empty object name");
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return ob_err_set(err, OB_EUSAGE, "invalid object name: contains a control character");
    if (name[0] == '/')
        return ob_err_set(err, OB_EUSAGE, "object %s: invalid name: absolute path", name);
    return 0;
}

static char *s3_key(const storage_s3 *s, const char *name)
{
    return ob_xasprintf("%s%s", s->prefix, name);
}

/* HEAD an object: 0 with *size, or -1 (OB_ENOTFOUND if missing). */
static int s3_head(storage_s3 *s, const char *name, uint64_t *size, ob_err *err)
{
    char *key = s3_key(s, name);
    char *what = ob_xasprintf("object %s", name);
    s3_request rq = {.method = "HEAD", .key = key, .what = what};
    s3_response r = {0};
    int rc = s3_perform(s, &rq, &r, err);
    if (rc == 0) {
        if (r.status == 200 && r.content_length >= 0) {
            *size = (uint64_t)r.content_length;
        } else if (r.status == 200) {
            rc = ob_err_set(err, OB_EIO, "object %s: HEAD answer has no Content-Length", name);
        } else if (r.status == 404) {
            rc = ob_err_set(err, OB_ENOTFOUND, "object %s does not exist", name);
        } else {
            rc = s3_http_err(s, &rq, &r, err);
        }
    }
    s3_response_free(&r);
    free(what);
    free(key);
    return rc;
}

static int s3_is_md5_hex(const char *etag)
{
    if (!etag || strlen(etag) != 32)
        return 0;
    for (const char *p = etag; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return 0;
    return 1;
}

/* A HEAD after an upload whose ETag cannot prove the content (multipart,
 * or servers with encryption that do not use MD5 ETags): the size must
 * match. */
static int s3_verify_size(storage_s3 *s, const char *name, size_t len, ob_err *err)
{
    uint64_t got = 0;
    if (s3_head(s, name, &got, err) < 0)
        return ob_err_prefix(err, "object %s: checking the upload", name);
    if (got != (uint64_t)len)
        return ob_err_set(err, OB_EIO,
                          "object %s: upload verification failed: the server stores %" PRIu64
                          " bytes, %zu were sent",
                          name, got, len);
    return 0;
}

/* One PUT of len bytes: data in memory, or (fd non-NULL) the first len
 * bytes of the staged file *fd, whose MD5 and SHA-256 (hex) the caller
 * computed while writing it. */
static int s3_put_one(storage_s3 *s, const char *name, const void *data, const int *fd,
                      size_t len, const uint8_t md5[16], const char *sha256_hex, ob_err *err)
{
    char md5b64[25], md5hex[33];
    s3_base64(md5, 16, md5b64);
    ob_hex(md5, 16, md5hex);
    char *key = s3_key(s, name);
    char *what = ob_xasprintf("object %s", name);
    s3_request rq = {.method = "PUT", .key = key, .what = what, .body = data, .body_len = len,
                     .body_fd = fd, .payload_sha256 = sha256_hex, .content_md5 = md5b64,
                     .content_type = "application/octet-stream"};
    s3_response r = {0};
    int rc = s3_perform(s, &rq, &r, err);
    if (rc == 0 && r.status != 200)
        rc = s3_http_err(s, &rq, &r, err);
    if (rc == 0) {
        /* With SSE-KMS or SSE-C the ETag is not the MD5 (the server has
         * checked Content-MD5 itself): the size check instead. */
        if (s3_is_md5_hex(r.etag) && !r.sse_kms) {
            if (strcasecmp(r.etag, md5hex) != 0)
                rc = ob_err_set(err, OB_EIO,
                                "object %s: upload verification failed: the server's ETag %s "
                                "is not the MD5 %s of the %zu bytes sent",
                                name, r.etag, md5hex, len);
        } else {
            rc = s3_verify_size(s, name, len, err);
        }
    }
    s3_response_free(&r);
    free(what);
    free(key);
    return rc;
}

static int s3_put_single(storage_s3 *s, const char *name, const void *data, size_t len,
                         ob_err *err)
{
    uint8_t md5[16];
    s3_md5(data, len, md5);
    return s3_put_one(s, name, data, NULL, len, md5, NULL, err);
}

/* ----------------------------------------------------------- multipart */

typedef struct s3_multipart {
    storage_s3 *s;
    const char *name;
    const char *key;
    const char *upload_id;
    const uint8_t *data;
    size_t len, part_size, nparts;
    char **etags;          /* per part, filled by the workers */
    pthread_mutex_t lock;  /* guards next, failed, err */
    size_t next;
    int failed;
    ob_err err;            /* the first failure */
} s3_multipart;

static int s3_upload_part(s3_multipart *m, size_t i, ob_err *err)
{
    size_t off = i * m->part_size;
    size_t n = m->len - off < m->part_size ? m->len - off : m->part_size;
    uint8_t md5[16];
    char md5b64[25], md5hex[33];
    s3_md5(m->data + off, n, md5);
    s3_base64(md5, 16, md5b64);
    ob_hex(md5, 16, md5hex);
    ob_buf q = OB_BUF_INIT;
    ob_buf_printf(&q, "partNumber=%zu&uploadId=", i + 1);
    storage_s3_uri_encode(&q, m->upload_id, 0);
    char *what = ob_xasprintf("object %s (part %zu of %zu)", m->name, i + 1, m->nparts);
    s3_request rq = {.method = "PUT", .key = m->key, .query = (const char *)q.data, .what = what,
                     .body = m->data + off, .body_len = n, .content_md5 = md5b64,
                     .content_type = "application/octet-stream"};
    s3_response r = {0};
    int rc = s3_perform(m->s, &rq, &r, err);
    if (rc == 0 && r.status != 200)
        rc = s3_http_err(m->s, &rq, &r, err);
    if (rc == 0 && !r.etag)
        rc = ob_err_set(err, OB_EIO, "%s: the server returned no ETag", what);
    if (rc == 0 && s3_is_md5_hex(r.etag) && !r.sse_kms && strcasecmp(r.etag, md5hex) != 0)
        rc = ob_err_set(err, OB_EIO,
                        "%s: upload verification failed: ETag %s is not the MD5 %s of the part",
                        what, r.etag, md5hex);
    if (rc == 0) {
        m->etags[i] = r.etag;
        r.etag = NULL;
    }
    s3_response_free(&r);
    free(what);
    ob_buf_free(&q);
    return rc;
}

static void *s3_part_worker(void *arg)
{
    s3_multipart *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->lock);
        size_t i = m->next++;
        int stop = m->failed || i >= m->nparts;
        pthread_mutex_unlock(&m->lock);
        if (stop)
            return NULL;
        ob_err e = OB_ERR_INIT;
        if (s3_upload_part(m, i, &e) < 0) {
            pthread_mutex_lock(&m->lock);
            if (!m->failed) {
                m->failed = 1;
                ob_err_move(&m->err, &e);
            }
            pthread_mutex_unlock(&m->lock);
            ob_err_clear(&e);
            return NULL;
        }
    }
}

/* Best effort: an upload that is neither completed nor aborted keeps its
 * parts (and costs storage) until a bucket lifecycle rule removes it, so we
 * try; but the error the caller sees is the one that made us abort. */
static void s3_abort_upload(storage_s3 *s, const char *name, const char *key, const char *id)
{
    ob_buf q = OB_BUF_INIT;
    ob_buf_printf(&q, "uploadId=");
    storage_s3_uri_encode(&q, id, 0);
    char *what = ob_xasprintf("object %s (aborting its multipart upload)", name);
    s3_request rq = {.method = "DELETE", .key = key, .query = (const char *)q.data, .what = what};
    s3_response r = {0};
    ob_err e = OB_ERR_INIT;
    if (s3_perform(s, &rq, &r, &e) < 0 || (r.status != 204 && r.status != 200 && r.status != 404))
        ob_info("%s: ignored: %s", what, e.code ? ob_err_msg(&e) : "the server refused");
    ob_err_clear(&e);
    s3_response_free(&r);
    free(what);
    ob_buf_free(&q);
}

static int s3_put_multipart(storage_s3 *s, const char *name, const void *data, size_t len,
                            ob_err *err)
{
    char *key = s3_key(s, name);
    char *what = ob_xasprintf("object %s (starting a multipart upload)", name);
    s3_request rq = {.method = "POST", .key = key, .query = "uploads=", .what = what,
                     .content_type = "application/octet-stream"};
    s3_response r = {0};
    char *upload_id = NULL;
    int rc = s3_perform(s, &rq, &r, err);
    if (rc == 0 && r.status != 200)
        rc = s3_http_err(s, &rq, &r, err);
    if (rc == 0) {
        upload_id = storage_s3_xml_text((const char *)r.body.data, r.body.len, "UploadId");
        if (!upload_id || !*upload_id)
            rc = ob_err_set(err, OB_EIO, "%s: the server's answer has no UploadId", what);
    }
    s3_response_free(&r);
    free(what);
    if (rc < 0) {
        free(upload_id);
        free(key);
        return -1;
    }

    s3_multipart m = {.s = s, .name = name, .key = key, .upload_id = upload_id, .data = data,
                      .len = len, .part_size = S3_PART_SIZE};
    if (len / m.part_size >= S3_MAX_PARTS)
        m.part_size = len / (S3_MAX_PARTS - 1) + 1;
    m.nparts = (len + m.part_size - 1) / m.part_size;
    m.etags = ob_xcalloc(m.nparts, sizeof *m.etags);
    pthread_mutex_init(&m.lock, NULL);
    size_t nthreads = m.nparts < S3_UPLOAD_THREADS ? m.nparts : S3_UPLOAD_THREADS;
    pthread_t tids[S3_UPLOAD_THREADS];
    size_t started = 0;
    for (; started < nthreads; started++)
        if (pthread_create(&tids[started], NULL, s3_part_worker, &m) != 0)
            break;
    if (started == 0)
        s3_part_worker(&m); /* no thread could start: do it here */
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&m.lock);

    if (m.failed) {
        ob_err_move(err, &m.err);
        rc = -1;
    } else {
        /* Complete.  Only ever with every part present: S3 rejects a list
         * with gaps, and at least one test server crashes on it. */
        ob_buf body = OB_BUF_INIT;
        ob_buf_printf(&body, "<CompleteMultipartUpload>");
        for (size_t i = 0; i < m.nparts; i++) {
            ob_buf_printf(&body, "<Part><PartNumber>%zu</PartNumber><ETag>\"", i + 1);
            s3_xml_escape(&body, m.etags[i]);
            ob_buf_printf(&body, "\"</ETag></Part>");
        }
        ob_buf_printf(&body, "</CompleteMultipartUpload>");
        ob_buf q = OB_BUF_INIT;
        ob_buf_printf(&q, "uploadId=");
        storage_s3_uri_encode(&q, upload_id, 0);
        what = ob_xasprintf("object %s (completing its multipart upload)", name);
        s3_request cq = {.method = "POST", .key = key, .query = (const char *)q.data,
                         .what = what, .body = body.data, .body_len = body.len,
                         .content_type = "application/xml",
                         .answer_end = "</CompleteMultipartUploadResult>"};
        s3_response cr = {0};
        rc = s3_perform(s, &cq, &cr, err);
        char *code = rc == 0 && cr.status == 404
                         ? storage_s3_xml_text((const char *)cr.body.data, cr.body.len, "Code")
                         : NULL;
        /* A retried completion whose first attempt succeeded but whose
         * answer was lost finds the upload gone because it is done: the
         * size check below decides. */
        int gone = code && strcmp(code, "NoSuchUpload") == 0;
        free(code);
        if (rc == 0 && !gone && cr.status != 200)
            rc = s3_http_err(s, &cq, &cr, err);
        /* S3 may answer 200 and still fail: the error is then in the body. */
        const char *cbody = cr.body.data ? (const char *)cr.body.data : "";
        if (rc == 0 && !gone && memmem(cbody, cr.body.len, "<Error>", 7))
            rc = s3_http_err(s, &cq, &cr, err); /* a final one: s3_perform retried the others */
        s3_response_free(&cr);
        free(what);
        ob_buf_free(&q);
        ob_buf_free(&body);
        if (rc == 0)
            rc = s3_verify_size(s, name, len, err);
    }
    if (rc < 0)
        s3_abort_upload(s, name, key, upload_id);
    for (size_t i = 0; i < m.nparts; i++)
        free(m.etags[i]);
    free(m.etags);
    free(upload_id);
    free(key);
    return rc;
}

/* STORAGE_PUT_CREATE: OB_EEXIST if the object is there.  HEAD then PUT is
 * not atomic (see the header comment for why the race is benign in our
 * format). */
static int s3_refuse_existing(storage_s3 *s, const char *name, int flags, ob_err *err)
{
    if (!(flags & STORAGE_PUT_CREATE))
        return 0;
    uint64_t size;
    ob_err e = OB_ERR_INIT;
    if (s3_head(s, name, &size, &e) == 0)
        return ob_err_set(err, OB_EEXIST, "object %s already exists", name);
    if (e.code != OB_ENOTFOUND) {
        ob_err_move(err, &e);
        return -1;
    }
    ob_err_clear(&e);
    return 0;
}

static int storage_s3_put(storage *st, const char *name, const void *data, size_t len,
                          int flags, ob_err *err)
{
    storage_s3 *s = (storage_s3 *)st;
    if (s3_check_name(name, err) < 0 || s3_refuse_existing(s, name, flags, err) < 0)
        return -1;
    if (len > S3_MULTIPART_THRESHOLD)
        return s3_put_multipart(s, name, data, len, err);
    return s3_put_single(s, name, data, len, err);
}

/* ------------------------------------------------------- staged writes
 *
 * An object written piece by piece (a pack, storage_write_*) is staged in
 * an unlinked temporary file under $TMPDIR (default /tmp) and uploaded
 * from it, as restic does, so a writer thread holds no 16 MiB pack in
 * memory.  Its MD5 (Content-MD5, the ETag check) and SHA-256 (the SigV4
 * payload hash) are computed as the pieces arrive; a retried PUT rereads
 * the file.  Objects above the multipart threshold (none of ours: packs
 * are at most the pack size plus one blob) are read back and sent in parts.
 */
typedef struct s3_write {
    char *name;
    char *dir;       /* where it is staged, for messages */
    int fd;
    uint64_t len;
    EVP_MD_CTX *md5, *sha256;
} s3_write;

static void s3_write_free(s3_write *w)
{
    if (w->fd >= 0)
        close(w->fd);
    EVP_MD_CTX_free(w->md5);
    EVP_MD_CTX_free(w->sha256);
    free(w->dir);
    free(w->name);
    free(w);
}

static int s3_write_open(storage *st, const char *name, void **state, ob_err *err)
{
    (void)st;
    *state = NULL;
    if (s3_check_name(name, err) < 0)
        return -1;
    s3_write *w = ob_xcalloc(1, sizeof *w);
    w->name = ob_xstrdup(name);
    w->dir = ob_xstrdup(ob_tmpdir());
    w->fd = ob_tmpfile(w->dir); /* no name: nothing is left behind if we are killed */
    if (w->fd < 0) {
        int e = errno;
        ob_err_errno(err, e,
                     "object %s: creating a temporary file in %s to stage the upload (TMPDIR "
                     "sets the directory)",
                     name, w->dir);
        s3_write_free(w);
        return -1;
    }
    w->md5 = EVP_MD_CTX_new();
    w->sha256 = EVP_MD_CTX_new();
    if (!w->md5 || !w->sha256 || EVP_DigestInit_ex(w->md5, EVP_md5(), NULL) != 1 ||
        EVP_DigestInit_ex(w->sha256, EVP_sha256(), NULL) != 1) {
        s3_write_free(w);
        return ob_err_set(err, OB_EFAIL, "object %s: cannot set up the upload checksums", name);
    }
    *state = w;
    return 0;
}

static int s3_write_append(storage *st, void *state, const void *data, size_t len, ob_err *err)
{
    (void)st;
    s3_write *w = state;
    const uint8_t *p = data;
    for (size_t left = len; left > 0;) {
        ssize_t k = write(w->fd, p, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return ob_err_errno(err, k < 0 ? errno : EIO,
                                "object %s: writing the staged upload in %s", w->name, w->dir);
        p += k;
        left -= (size_t)k;
    }
    if (EVP_DigestUpdate(w->md5, data, len) != 1 || EVP_DigestUpdate(w->sha256, data, len) != 1)
        return ob_err_set(err, OB_EFAIL, "object %s: checksum update failed", w->name);
    w->len += len;
    return 0;
}

static void s3_write_abort(storage *st, void *state)
{
    (void)st;
    if (state)
        s3_write_free(state);
}

static int s3_write_commit(storage *st, void *state, int flags, ob_err *err)
{
    storage_s3 *s = (storage_s3 *)st;
    s3_write *w = state;
    int rc = -1;
    uint8_t md5[16], sha[32];
    unsigned int n5 = sizeof md5, n2 = sizeof sha;
    char sha_hex[65];
    if (s3_refuse_existing(s, w->name, flags, err) < 0)
        goto out;
    if (EVP_DigestFinal_ex(w->md5, md5, &n5) != 1 || EVP_DigestFinal_ex(w->sha256, sha, &n2) != 1) {
        ob_err_set(err, OB_EFAIL, "object %s: checksum failed", w->name);
        goto out;
    }
    ob_hex(sha, sizeof sha, sha_hex);
    if (w->len > S3_MULTIPART_THRESHOLD) {
        /* The parts' Content-MD5 is computed from what is read back, so
         * the server's checks cannot see a staged file damaged on the
         * local disk: compare it with the MD5 taken as the pieces came. */
        ob_buf b = OB_BUF_INIT;
        ob_buf_reserve(&b, (size_t)w->len);
        size_t got = 0;
        while (got < (size_t)w->len) {
            ssize_t k = pread(w->fd, b.data + got, (size_t)w->len - got, (off_t)got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                ob_err_errno(err, k < 0 ? errno : EIO,
                             "object %s: reading back the staged upload", w->name);
                break;
            }
            got += (size_t)k;
        }
        uint8_t again[16];
        if (got == (size_t)w->len) {
            s3_md5(b.data, got, again);
            if (memcmp(again, md5, sizeof md5) != 0)
                ob_err_set(err, OB_EIO,
                           "object %s: the staged upload in %s changed on disk before it was "
                           "sent; nothing was uploaded",
                           w->name, w->dir);
            else
                rc = s3_put_multipart(s, w->name, b.data, (size_t)w->len, err);
        }
        ob_buf_free(&b);
    } else {
        rc = s3_put_one(s, w->name, NULL, &w->fd, (size_t)w->len, md5, sha_hex, err);
    }
out:
    s3_write_free(w);
    return rc;
}

static int s3_truncated(const char *name, uint64_t size, uint64_t offset, uint64_t len,
                        ob_err *err)
{
    if (len == 0)
        return ob_err_set(err, OB_ECORRUPT,
                          "object %s is %" PRIu64 " bytes, wanted [%" PRIu64 ",end): truncated",
                          name, size, offset);
    return ob_err_set(err, OB_ECORRUPT,
                      "object %s is %" PRIu64 " bytes, wanted [%" PRIu64 ",%" PRIu64
                      "): truncated",
                      name, size, offset, offset + len);
}

/* Total size from "Content-Range: bytes a-b/TOTAL" is not kept by the
 * header callback; when a range comes back short we ask with a HEAD for
 * the message. */
static uint64_t s3_size_for_message(storage_s3 *s, const char *name)
{
    uint64_t size = 0;
    ob_err e = OB_ERR_INIT;
    s3_head(s, name, &size, &e);
    ob_err_clear(&e);
    return size;
}

/* A ranged GET of [offset, offset + len) (len 0: to the end) answered
 * with neither 200 nor 206: its error, or 0 for the empty read exactly at
 * the end of the object. */
static int s3_get_not_ok(storage_s3 *s, const s3_request *rq, const s3_response *r,
                         const char *name, uint64_t offset, uint64_t len, ob_err *err)
{
    if (r->status == 404) {
        char *code = storage_s3_xml_text((const char *)r->body.data, r->body.len, "Code");
        int rc = code && strcmp(code, "NoSuchBucket") == 0
                     ? s3_http_err(s, rq, r, err)
                     : ob_err_set(err, OB_ENOTFOUND, "object %s does not exist", name);
        free(code);
        return rc;
    }
    if (r->status == 416) {
        /* The range starts at or past the end.  Exactly at the end with
         * "to the end" is an empty read, as in the posix driver. */
        uint64_t size = 0;
        ob_err e = OB_ERR_INIT;
        if (s3_head(s, name, &size, &e) < 0) {
            ob_err_move(err, &e);
            return -1;
        }
        if (len == 0 && size == offset)
            return 0;
        return s3_truncated(name, size, offset, len, err);
    }
    return s3_http_err(s, rq, r, err);
}

static int storage_s3_get(storage *st, const char *name, uint64_t offset, uint64_t len,
                          ob_buf *out, ob_err *err)
{
    storage_s3 *s = (storage_s3 *)st;
    ob_buf_reset(out);
    if (s3_check_name(name, err) < 0)
        return -1;
    if (len && offset > UINT64_MAX - len)
        return ob_err_set(err, OB_EUSAGE, "object %s: range overflows", name);
    if (len > SIZE_MAX - 1)
        return ob_err_set(err, OB_EFAIL, "object %s: %" PRIu64 " bytes do not fit in memory",
                          name, len);
    char range[64] = "";
    /* Always a first-last or first- range: the suffix form "bytes=-N" is
     * mishandled by some servers and never needed here. */
    if (len)
        snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
    else if (offset)
        snprintf(range, sizeof range, "bytes=%" PRIu64 "-", offset);
    char *key = s3_key(s, name);
    char *what = ob_xasprintf("object %s", name);
    /* No size limit on the body: a server may answer a range with more
     * than was asked (the whole object as 200, or a wider 206), which
     * HTTP allows; the wanted bytes are cut out below. */
    s3_request rq = {.method = "GET", .key = key, .what = what, .range = range[0] ? range : NULL,
                     .sink = out, .body_max = SIZE_MAX - 1};
    if (len)
        ob_buf_reserve(out, (size_t)len);
    s3_response r = {0};
    int rc = s3_perform(s, &rq, &r, err);
    if (rc == 0) {
        /* s3_perform has made sure the body is whole (s3_answer_incomplete). */
        if (r.status == 200 || r.status == 206) {
            /* Where the body starts in the object: 0 for a 200 (the whole
             * object), the Content-Range start for a 206. */
            uint64_t from = 0;
            if (r.status == 206) {
                if (r.range_start < 0)
                    rc = ob_err_set(err, OB_EIO,
                                    "object %s: partial answer without a Content-Range", name);
                else if ((uint64_t)r.range_start > offset)
                    rc = ob_err_set(err, OB_EIO,
                                    "object %s: asked for bytes from %" PRIu64
                                    ", the server sent from %" PRId64,
                                    name, offset, r.range_start);
                else
                    from = (uint64_t)r.range_start;
            }
            uint64_t skip = offset - from;
            if (rc == 0 && (skip > out->len || (len && out->len - skip < len))) {
                uint64_t size = r.status == 200 ? out->len : s3_size_for_message(s, name);
                rc = s3_truncated(name, size, offset, len, err);
            } else if (rc == 0 && (skip || (len && out->len != len))) {
                size_t n = len ? (size_t)len : out->len - (size_t)skip;
                memmove(out->data, out->data + skip, n);
                out->len = n;
                out->data[n] = 0;
            }
        } else {
            rc = s3_get_not_ok(s, &rq, &r, name, offset, len, err);
        }
    }
    if (rc < 0)
        ob_buf_reset(out);
    s3_response_free(&r);
    free(what);
    free(key);
    return rc;
}

static int storage_s3_getv(storage *st, const char *name, uint64_t offset,
                           const struct iovec *iov, size_t n, ob_err *err)
{
    storage_s3 *s = (storage_s3 *)st;
    if (s3_check_name(name, err) < 0)
        return -1;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0 || offset > UINT64_MAX - total)
        return ob_err_set(err, OB_EUSAGE, "object %s: bad range", name);
    char range[64];
    snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, offset, offset + total - 1);
    char *key = s3_key(s, name);
    char *what = ob_xasprintf("object %s", name);
    s3_request rq = {.method = "GET", .key = key, .what = what, .range = range, .iov = iov,
                     .iovn = n, .iov_from = offset};
    s3_response r = {0};
    int rc = s3_perform(s, &rq, &r, err);
    if (rc == 0 && (r.status == 200 || r.status == 206)) {
        if (r.iov_bad)
            rc = ob_err_set(err, OB_EIO,
                            "object %s: partial answer without a Content-Range covering "
                            "bytes from %" PRIu64,
                            name, offset);
        else if (r.delivered < total)
            rc = s3_truncated(name, r.status == 200 ? r.body_seen : s3_size_for_message(s, name),
                              offset, total, err);
    } else if (rc == 0) {
        rc = s3_get_not_ok(s, &rq, &r, name, offset, total, err);
    }
    s3_response_free(&r);
    free(what);
    free(key);
    return rc;
}

static int storage_s3_list(storage *st, const char *prefix, storage_list_cb cb, void *ud,
                           ob_err *err)
{
    storage_s3 *s = (storage_s3 *)st;
    for (const char *p = prefix; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return ob_err_set(err, OB_EUSAGE,
                              "invalid listing prefix: contains a control character");
    char *full = s3_key(s, prefix);
    size_t plen = strlen(s->prefix);
    char *what = ob_xasprintf("listing \"%s\"", prefix);
    char *token = NULL;
    int rc = 0, stopped = 0;
    while (rc == 0 && !stopped) {
        ob_buf q = OB_BUF_INIT;
        if (token) {
            ob_buf_printf(&q, "continuation-token=");
            storage_s3_uri_encode(&q, token, 0);
            ob_buf_putc(&q, '&');
        }
        ob_buf_printf(&q, "list-type=2&prefix=");
        storage_s3_uri_encode(&q, full, 0);
        s3_request rq = {.method = "GET", .query = (const char *)q.data, .what = what};
        s3_response r = {0};
        storage_s3_list_page page = {0};
        /* A page cut short (OB_EIO from the parser) is asked for again, as
         * a transport error is (s3_perform retries those itself). */
        for (int attempt = 0;; attempt++) {
            rc = s3_perform(s, &rq, &r, err);
            if (rc == 0 && r.status != 200)
                rc = s3_http_err(s, &rq, &r, err);
            int parsed = rc == 0;
            if (rc == 0 &&
                storage_s3_parse_list((const char *)r.body.data, r.body.len, &page, err) < 0)
                rc = ob_err_prefix(err, "%s", what);
            if (rc == 0 || !parsed || err->code != OB_EIO || attempt == 2)
                break;
            ob_warn("%s; asking again", ob_err_msg(err));
            ob_err_clear(err);
            s3_response_free(&r);
            memset(&r, 0, sizeof r);
        }
        for (size_t i = 0; rc == 0 && i < page.n && !stopped; i++) {
            const char *k = page.keys[i];
            /* Only our own objects: a server that ignores prefix must not
             * make another tenant's keys ours. */
            if (strncmp(k, full, strlen(full)) != 0 || !k[plen])
                continue;
            if (cb(k + plen, page.sizes[i], ud))
                stopped = 1;
        }
        if (rc == 0 && !stopped) {
            if (!page.truncated) {
                stopped = 1;
            } else if (!page.next_token || !*page.next_token ||
                       (token && strcmp(token, page.next_token) == 0)) {
                /* Asking again would loop forever. */
                rc = ob_err_set(err, OB_EIO,
                                "%s: the server says the listing is truncated but gives no "
                                "new continuation token",
                                what);
            } else {
                free(token);
                token = page.next_token;
                page.next_token = NULL;
            }
        }
        storage_s3_list_page_free(&page);
        s3_response_free(&r);
        ob_buf_free(&q);
    }
    free(token);
    free(what);
    free(full);
    return rc;
}

static int storage_s3_del(storage *st, const char *name, ob_err *err)
{
    storage_s3 *s = (storage_s3 *)st;
    if (s3_check_name(name, err) < 0)
        return -1;
    char *key = s3_key(s, name);
    char *what = ob_xasprintf("object %s", name);
    s3_request rq = {.method = "DELETE", .key = key, .what = what};
    s3_response r = {0};
    int rc = s3_perform(s, &rq, &r, err);
    /* 404: already gone, which is what the caller wanted. */
    if (rc == 0 && r.status != 204 && r.status != 200 && r.status != 404)
        rc = s3_http_err(s, &rq, &r, err);
    s3_response_free(&r);
    free(what);
    free(key);
    return rc;
}

/* One DeleteObjects request for names[0..n), n <= S3_DELETE_BATCH. */
static int s3_delete_batch(storage_s3 *s, const char *const *names, size_t n, ob_err *err)
{
    ob_buf body = OB_BUF_INIT;
    ob_buf_printf(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                         "<Delete><Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++) {
        char *key = s3_key(s, names[i]);
        ob_buf_printf(&body, "<Object><Key>");
        s3_xml_escape(&body, key);
        ob_buf_printf(&body, "</Key></Object>");
        free(key);
    }
    ob_buf_printf(&body, "</Delete>");
    uint8_t md5[16];
    char md5b64[25];
    s3_md5(body.data, body.len, md5);
    s3_base64(md5, 16, md5b64);
    char *what = ob_xasprintf("deleting %zu objects (%s…)", n, names[0]);
    s3_request rq = {.method = "POST", .query = "delete=", .what = what, .body = body.data,
                     .body_len = body.len, .content_md5 = md5b64,
                     .content_type = "application/xml", .answer_end = "</DeleteResult>"};
    s3_response r = {0};
    int rc = s3_perform(s, &rq, &r, err);
    if (rc == 0 && r.status != 200)
        rc = s3_http_err(s, &rq, &r, err);
    if (rc == 0) {
        /* Quiet mode: only failures are listed, each as an <Error>. */
        const char *e;
        size_t elen;
        if (s3_xml_find((const char *)r.body.data, r.body.len, "Error", &e, &elen, NULL) == 0) {
            char *k = storage_s3_xml_text(e, elen, "Key");
            char *code = storage_s3_xml_text(e, elen, "Code");
            char *msg = storage_s3_xml_text(e, elen, "Message");
            const char *name = k && strncmp(k, s->prefix, strlen(s->prefix)) == 0
                                   ? k + strlen(s->prefix)
                                   : (k ? k : "(unnamed)");
            for (char *p = (char *)name; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    *p = '?';
            rc = ob_err_set(err, code && strcmp(code, "AccessDenied") == 0 ? OB_EAUTH : OB_EIO,
                            "object %s: delete failed: %s%s%s", name, code ? code : "error",
                            msg ? ": " : "", msg ? msg : "");
            free(k);
            free(code);
            free(msg);
        }
    }
    s3_response_free(&r);
    free(what);
    ob_buf_free(&body);
    return rc;
}

static int storage_s3_del_many(storage *st, const char *const *names, size_t n, ob_err *err)
{
    storage_s3 *s = (storage_s3 *)st;
    for (size_t i = 0; i < n; i++)
        if (s3_check_name(names[i], err) < 0)
            return -1;
    for (size_t i = 0; i < n; i += S3_DELETE_BATCH) {
        size_t k = n - i < S3_DELETE_BATCH ? n - i : S3_DELETE_BATCH;
        if (s3_delete_batch(s, names + i, k, err) < 0)
            return -1;
    }
    return 0;
}

static int storage_s3_stat(storage *st, const char *name, uint64_t *size, ob_err *err)
{
    storage_s3 *s = (storage_s3 *)st;
    if (s3_check_name(name, err) < 0)
        return -1;
    return s3_head(s, name, size, err);
}

static void storage_s3_close(storage *st)
{
    storage_s3 *s = (storage_s3 *)st;
    for (size_t i = 0; i < s->npool; i++)
        curl_easy_cleanup(s->pool[i]);
    pthread_mutex_destroy(&s->pool_lock);
    free(s->bucket);
    free(s->prefix);
    free(s->endpoint);
    free(s->origin);
    free(s->host);
    free(s->base_path);
    free(s->region);
    free(s->akid);
    if (s->secret) {
        ob_wipe(s->secret, strlen(s->secret));
        free(s->secret);
    }
    if (s->token) {
        ob_wipe(s->token, strlen(s->token));
        free(s->token);
    }
    free(s->ca_file);
    free(s->base.url);
    free(s);
}

static const storage_ops storage_s3_ops = {
    .scheme = "s3",
    .put = storage_s3_put,
    .get = storage_s3_get,
    .getv = storage_s3_getv,
    .list = storage_s3_list,
    .del = storage_s3_del,
    .del_many = storage_s3_del_many,
    .stat = storage_s3_stat,
    .close = storage_s3_close,
    .write_open = s3_write_open,
    .write_append = s3_write_append,
    .write_commit = s3_write_commit,
    .write_abort = s3_write_abort,
};

/* ------------------------------------------------------------- opening */

/* The URL query's settings, percent-decoded. */
typedef struct s3_query {
    char *endpoint, *region, *path_style;
} s3_query;

static void s3_query_free(s3_query *q)
{
    free(q->endpoint);
    free(q->region);
    free(q->path_style);
}

/* Percent-decoding of a query value ('+' is a space, as in forms). */
static char *s3_pct_decode(const char *s, size_t n, int *bad)
{
    ob_buf b = OB_BUF_INIT;
    ob_buf_reserve(&b, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            ob_buf_putc(&b, (uint8_t)(s[i] == '+' ? ' ' : s[i]));
            continue;
        }
        /* Both hex digits must be inside the value. */
        int hi = i + 2 < n ? s3_hexval((unsigned char)s[i + 1]) : -1;
        int lo = hi >= 0 ? s3_hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            *bad = 1;
            break;
        }
        ob_buf_putc(&b, (uint8_t)(hi << 4 | lo));
        i += 2;
    }
    return (char *)ob_buf_steal(&b, NULL);
}

static int s3_parse_query(const char *url, const char *query, s3_query *q, ob_err *err)
{
    memset(q, 0, sizeof *q);
    if (!query)
        return 0;
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        int bad = 0;
        char *val = eq ? s3_pct_decode(eq + 1, n - klen - 1, &bad) : ob_xstrdup("");
        char **slot = NULL;
        if (klen == 8 && strncmp(p, "endpoint", 8) == 0)
            slot = &q->endpoint;
        else if (klen == 6 && strncmp(p, "region", 6) == 0)
            slot = &q->region;
        else if (klen == 10 && strncmp(p, "path-style", 10) == 0)
            slot = &q->path_style;
        if (bad) {
            free(val);
            s3_query_free(q);
            return ob_err_set(err, OB_EUSAGE, "storage URL %s: malformed %%-escape in the query",
                              url);
        }
        if (!slot) {
            free(val);
            s3_query_free(q);
            char *name = ob_xstrndup(p, klen > 64 ? 64 : klen);
            int secret = strstr(name, "secret") || strstr(name, "key") || strstr(name, "token");
            int rc = ob_err_set(err, OB_EUSAGE,
                                "storage URL: unknown setting \"%s\" in the query of an s3:// "
                                "URL (known: endpoint, region, path-style)%s",
                                name,
                                secret ? "; credentials never go in a URL: use the "
                                         "environment (AWS_ACCESS_KEY_ID, "
                                         "AWS_SECRET_ACCESS_KEY) or the config file"
                                       : "");
            free(name);
            return rc;
        }
        free(*slot);
        *slot = val;
        p += n;
        if (*p == '&')
            p++;
    }
    return 0;
}

static int s3_parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1") ||
        !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
             !strcasecmp(v, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

static const char *s3_first(const char *a, const char *b, const char *c)
{
    if (a && *a)
        return a;
    if (b && *b)
        return b;
    if (c && *c)
        return c;
    return NULL;
}

/* Bucket names as S3 allows them for new buckets (3-63 of a-z 0-9 . -);
 * legacy names with upper case or '_' work only path style. */
static int s3_check_bucket(const char *url, const char *bucket, int path_style, ob_err *err)
{
    size_t n = strlen(bucket);
    if (n == 0)
        return ob_err_set(err, OB_EUSAGE,
                          "storage URL %s: no bucket name (write s3://BUCKET/prefix)", url);
    int dns = n >= 3 && n <= 63;
    for (const char *p = bucket; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (islower(c) || isdigit(c) || c == '-' || c == '.')
            continue;
        if (isupper(c) || c == '_') {
            dns = 0;
            continue;
        }
        return ob_err_set(err, OB_EUSAGE,
                          "storage URL %s: \"%s\" is not a valid bucket name (letters, digits, "
                          "'.', '-')",
                          url, bucket);
    }
    if (!path_style && !dns)
        return ob_err_set(err, OB_EUSAGE,
                          "storage URL %s: bucket \"%s\" cannot be addressed as a host name "
                          "(virtual-hosted style); set path-style = true",
                          url, bucket);
    return 0;
}

/* "https://host[:port][/path]" → origin "https://host[:port]", host
 * "host[:port]", path "/path" (no trailing '/'). */
static int s3_parse_endpoint(const char *ep, char **origin, char **host, char **path,
                             ob_err *err)
{
    const char *rest;
    const char *scheme;
    if (strncasecmp(ep, "https://", 8) == 0) {
        scheme = "https";
        rest = ep + 8;
    } else if (strncasecmp(ep, "http://", 7) == 0) {
        scheme = "http";
        rest = ep + 7;
    } else if (strstr(ep, "://")) {
        return ob_err_set(err, OB_EUSAGE,
                          "S3 endpoint %s: only http:// and https:// endpoints are supported", ep);
    } else {
        scheme = "https"; /* "s3.example.com" */
        rest = ep;
    }
    size_t hl = strcspn(rest, "/?#");
    if (hl == 0)
        return ob_err_set(err, OB_EUSAGE, "S3 endpoint %s: no host name", ep);
    if (memchr(rest, '@', hl))
        return ob_err_set(err, OB_EUSAGE,
                          "S3 endpoint %s: user names or passwords do not belong in the "
                          "endpoint; use access-key-id / secret-access-key",
                          ep);
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)rest[i] <= ' ' || rest[i] == 0x7f)
            return ob_err_set(err, OB_EUSAGE, "S3 endpoint %s: invalid host name", ep);
    const char *p = rest + hl;
    if (*p == '?' || *p == '#')
        return ob_err_set(err, OB_EUSAGE, "S3 endpoint %s: a query or fragment is not allowed",
                          ep);
    size_t pl = strlen(p);
    while (pl && p[pl - 1] == '/')
        pl--;
    *host = ob_xstrndup(rest, hl);
    *origin = ob_xasprintf("%s://%s", scheme, *host);
    *path = ob_xstrndup(p, pl);
    return 0;
}

int storage_s3_open(const char *url, const char *bucket, const char *prefix, const char *query,
                    const storage_opts *opts, int create, storage **out, ob_err *err)
{
    (void)create; /* the bucket must exist either way; the probe below checks it */
    *out = NULL;
    storage_opts none = STORAGE_OPTS_INIT;
    if (!opts)
        opts = &none;
    if (curl_lib_load(err) < 0)
        return -1;
    s3_query q;
    if (s3_parse_query(url, query, &q, err) < 0)
        return -1;

    int path_style = opts->path_style;
    if (path_style < 0 && q.path_style) {
        if (s3_parse_bool(q.path_style, &path_style) < 0) {
            s3_query_free(&q);
            return ob_err_set(err, OB_EUSAGE, "storage URL %s: path-style must be true or false",
                              url);
        }
    }
    const char *region =
        s3_first(opts->region, q.region, s3_first(getenv("AWS_REGION"),
                                                  getenv("AWS_DEFAULT_REGION"), "us-east-1"));
    const char *ep_given = s3_first(opts->endpoint, q.endpoint, NULL);
    /* MinIO & co. are usually path style.  On AWS, virtual-hosted style,
     * except for bucket names with dots: "a.b.s3.amazonaws.com" does not
     * match the "*.s3.amazonaws.com" certificate (what the AWS SDKs do). */
    if (path_style < 0)
        path_style = ep_given || strchr(bucket, '.') ? 1 : 0;
    for (const char *r = region; *r; r++)
        if (!isalnum((unsigned char)*r) && *r != '-') {
            s3_query_free(&q);
            return ob_err_set(err, OB_EUSAGE, "S3 region \"%s\" is not a region name", region);
        }
    if (s3_check_bucket(url, bucket, path_style, err) < 0) {
        s3_query_free(&q);
        return -1;
    }

    /* Prefix: no leading or trailing '/', no empty, "." or ".." parts (a
     * server or proxy could normalise them away and mix repositories). */
    const char *pb = prefix;
    while (*pb == '/')
        pb++;
    size_t pl = strlen(pb);
    while (pl && pb[pl - 1] == '/')
        pl--;
    for (size_t i = 0; i < pl;) {
        size_t j = i;
        while (j < pl && pb[j] != '/')
            j++;
        if (j == i || (j - i == 1 && pb[i] == '.') ||
            (j - i == 2 && pb[i] == '.' && pb[i + 1] == '.')) {
            s3_query_free(&q);
            return ob_err_set(err, OB_EUSAGE,
                              "storage URL %s: the prefix has an empty, \".\" or \"..\" part",
                              url);
        }
        for (size_t k = i; k < j; k++)
            if ((unsigned char)pb[k] < 0x20 || pb[k] == 0x7f) {
                s3_query_free(&q);
                return ob_err_set(err, OB_EUSAGE,
                                  "storage URL: the prefix contains a control character");
            }
        i = j + 1;
    }

    const char *akid = s3_first(opts->access_key_id, getenv("AWS_ACCESS_KEY_ID"), NULL);
    const char *secret = s3_first(opts->secret_access_key, getenv("AWS_SECRET_ACCESS_KEY"), NULL);
    const char *token = s3_first(opts->session_token, getenv("AWS_SESSION_TOKEN"), NULL);
    if (!akid || !secret) {
        s3_query_free(&q);
        return ob_err_set(err, OB_EUSAGE,
                          "storage %s: no S3 credentials: set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY in the environment (and AWS_SESSION_TOKEN "
                          "for temporary credentials), or access-key-id and secret-access-key "
                          "in the repository's [repo.NAME] section",
                          url);
    }

    storage_s3 *s = ob_xcalloc(1, sizeof *s);
    s->base.ops = &storage_s3_ops;
    s->base.url = ob_xstrdup(url);
    pthread_mutex_init(&s->pool_lock, NULL);
    s->bucket = ob_xstrdup(bucket);
    s->prefix = pl ? ob_xasprintf("%.*s/", (int)pl, pb) : ob_xstrdup("");
    s->region = ob_xstrdup(region);
    s->akid = ob_xstrdup(akid);
    s->secret = ob_xstrdup(secret);
    s->token = token ? ob_xstrdup(token) : NULL;
    s->ca_file = opts->ca_file && *opts->ca_file ? ob_xstrdup(opts->ca_file) : NULL;
    s->endpoint = ep_given ? ob_xstrdup(ep_given) : ob_xasprintf("https://s3.%s.amazonaws.com",
                                                                 region);
    s3_query_free(&q);

    char *origin = NULL, *host = NULL, *epath = NULL;
    if (s3_parse_endpoint(s->endpoint, &origin, &host, &epath, err) < 0) {
        storage_s3_close(&s->base);
        return -1;
    }
    if (path_style) {
        s->origin = origin;
        s->host = host;
        s->base_path = ob_xasprintf("%s/%s", epath, bucket);
    } else {
        const char *scheme_end = strstr(origin, "://") + 3;
        s->origin = ob_xasprintf("%.*s%s.%s", (int)(scheme_end - origin), origin, bucket, host);
        s->host = ob_xasprintf("%s.%s", bucket, host);
        s->base_path = ob_xstrdup(epath);
        free(origin);
        free(host);
    }
    free(epath);

    s->retry_seconds = S3_RETRY_SECONDS_DEFAULT;
    double low = (double)S3_LOW_SPEED_SECONDS_DEFAULT;
    if (s3_env_seconds("OPSBACKUP_S3_LOW_SPEED_SECONDS", 1, &low, err) < 0 ||
        s3_env_seconds("OPSBACKUP_S3_RETRY_SECONDS", 0, &s->retry_seconds, err) < 0) {
        storage_s3_close(&s->base);
        return -1;
    }
    s->low_speed_seconds = (long)low;

    /* Probe: one small listing proves the endpoint answers, the bucket
     * exists and the credentials are accepted, so every later failure is
     * not the first sign of a typo in the config. */
    ob_buf pq = OB_BUF_INIT;
    ob_buf_printf(&pq, "list-type=2&max-keys=1&prefix=");
    storage_s3_uri_encode(&pq, s->prefix, 0);
    char *what = ob_xasprintf("bucket %s", bucket);
    s3_request rq = {.method = "GET", .query = (const char *)pq.data, .what = what};
    s3_response r = {0};
    int rc = s3_perform(s, &rq, &r, err);
    if (rc == 0 && r.status == 404) {
        char *code = storage_s3_xml_text((const char *)r.body.data, r.body.len, "Code");
        rc = ob_err_set(err, OB_ENOTFOUND,
                        "bucket \"%s\" does not exist at %s (HTTP 404%s%s): create it first; "
                        "opsbackup never creates buckets",
                        bucket, s->endpoint, code ? " " : "", code ? code : "");
        free(code);
    } else if (rc == 0 && r.status != 200) {
        rc = s3_http_err(s, &rq, &r, err);
    }
    s3_response_free(&r);
    free(what);
    ob_buf_free(&pq);
    if (rc < 0) {
        storage_s3_close(&s->base);
        return -1;
    }
    ob_debug("storage %s: bucket %s at %s, %s style, region %s, prefix \"%s\"", url, bucket,
             s->origin, path_style ? "path" : "virtual-hosted", s->region, s->prefix);
    *out = &s->base;
    return 0;
}
