/*
 * storage_s3.h — internals of the S3 driver that its unit tests reach
 * directly: the parsers of what an S3 server sends back and the key
 * encoding.  The repository never uses these; it opens an s3:// URL through
 * storage_open_opts (storage.h) like any other storage.
 *
 * Everything here is a pure function over caller-owned bytes; the results
 * are heap-owned by the caller (free them with the matching *_free).
 */
#ifndef OB_STORAGE_S3_H
#define OB_STORAGE_S3_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* One page of a ListObjectsV2 answer. */
typedef struct storage_s3_list_page {
    char **keys;      /* decoded keys, as the server sent them (prefix included) */
    uint64_t *sizes;
    size_t n;
    int truncated;    /* <IsTruncated>true</IsTruncated> */
    char *next_token; /* <NextContinuationToken>, NULL if absent */
} storage_s3_list_page;

/* Parse a ListObjectsV2 body (len bytes, need not be NUL-terminated and may
 * contain anything: the parser never reads outside it).  Fails with
 * OB_ECORRUPT on a body that is not a listing or has a malformed entry. */
int storage_s3_parse_list(const char *xml, size_t len, storage_s3_list_page *page, ob_err *err);
void storage_s3_list_page_free(storage_s3_list_page *page);

/* The decoded text of the first <tag>…</tag> in xml[0..len), or NULL if
 * there is none or its text is malformed (bad entity, NUL). */
char *storage_s3_xml_text(const char *xml, size_t len, const char *tag);

/* Decode the five XML entities and numeric character references (&#65;
 * &#x41;) of in[0..len) into out (replacing its contents, NUL-terminated).
 * Returns -1 on an unknown or malformed entity, or one that decodes to NUL
 * or to a code point that is not Unicode. */
int storage_s3_xml_decode(const char *in, size_t len, ob_buf *out);

/* Append s percent-encoded the way SigV4 canonical URIs want it: the
 * unreserved characters A-Z a-z 0-9 - _ . ~ as they are, '/' kept when
 * keep_slash (paths) and encoded otherwise (query values), every other byte
 * as %XX with upper-case hex. */
void storage_s3_uri_encode(ob_buf *b, const char *s, int keep_slash);

/* The SigV4 Authorization header value ("AWS4-HMAC-SHA256 Credential=…,
 * SignedHeaders=…, Signature=…") of one S3 request.  path and query are
 * exactly as sent (already encoded; query sorted); canon_headers is the
 * canonical header block ("name:value\n" each, sorted by name) and
 * signed_headers its names joined by ';'; payload_hash is the hex SHA-256
 * of the body; amz_date is "YYYYMMDDTHHMMSSZ".  Heap-owned result. */
char *storage_s3_sigv4(const char *akid, const char *secret, const char *region,
                       const char *method, const char *path, const char *query,
                       const char *canon_headers, const char *signed_headers,
                       const char *payload_hash, const char *amz_date);

#endif
