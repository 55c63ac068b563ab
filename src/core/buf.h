/*
 * buf.h — a growable byte buffer and little-endian encode/decode helpers.
 *
 * An ob_buf owns its memory (data); ob_buf_free releases it.  Allocation
 * failure aborts the process: a backup tool that cannot allocate a few
 * megabytes cannot do anything useful, and checking every append would
 * bury the real error paths.
 *
 * ob_rd is a bounds-checked reader over borrowed bytes used by every parser
 * of untrusted data (packs, indexes, trees): each getter fails once the input
 * is exhausted and the reader stays failed, so a parser checks `r.bad` once.
 */
#ifndef OB_BUF_H
#define OB_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ob_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} ob_buf;

#define OB_BUF_INIT {0, 0, 0}

void ob_buf_reserve(ob_buf *b, size_t extra);   /* ensure cap >= len + extra */
void ob_buf_append(ob_buf *b, const void *p, size_t n);
void ob_buf_putc(ob_buf *b, uint8_t c);
void ob_buf_put_u16(ob_buf *b, uint16_t v);      /* little-endian */
void ob_buf_put_u32(ob_buf *b, uint32_t v);
void ob_buf_put_u64(ob_buf *b, uint64_t v);
void ob_buf_put_bytes(ob_buf *b, const void *p, size_t n); /* u32 length + bytes */
void ob_buf_printf(ob_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ob_buf_reset(ob_buf *b);                    /* len = 0, keep memory */
void ob_buf_free(ob_buf *b);
/* Hand the bytes to the caller (NUL-terminated, so text is usable as a C
 * string); the buffer becomes empty. */
uint8_t *ob_buf_steal(ob_buf *b, size_t *len);

void *ob_xmalloc(size_t n);
void *ob_xcalloc(size_t n, size_t m);
void *ob_xrealloc(void *p, size_t n);
char *ob_xstrdup(const char *s);
char *ob_xstrndup(const char *s, size_t n);
char *ob_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void ob_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t ob_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void ob_le64(uint8_t *p, uint64_t v)
{
    ob_le32(p, (uint32_t)v);
    ob_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t ob_get_le64(const uint8_t *p)
{
    return (uint64_t)ob_get_le32(p) | (uint64_t)ob_get_le32(p + 4) << 32;
}

typedef struct ob_rd {
    const uint8_t *p;
    size_t left;
    int bad;         /* set once any read ran past the end */
} ob_rd;

static inline ob_rd ob_rd_init(const void *p, size_t n) { ob_rd r = {(const uint8_t *)p, n, 0}; return r; }
uint8_t ob_rd_u8(ob_rd *r);
uint16_t ob_rd_u16(ob_rd *r);
uint32_t ob_rd_u32(ob_rd *r);
uint64_t ob_rd_u64(ob_rd *r);
/* Copy n bytes into out (zeroed on failure). */
void ob_rd_copy(ob_rd *r, void *out, size_t n);
/* Borrow n bytes; NULL on failure. */
const uint8_t *ob_rd_take(ob_rd *r, size_t n);
/* u32 length + bytes, borrowed; *len receives the length.  Lengths larger
 * than what remains fail instead of allocating. */
const uint8_t *ob_rd_bytes(ob_rd *r, uint32_t *len);

#endif
