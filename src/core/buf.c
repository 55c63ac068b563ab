#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    fputs("opsbackup: out of memory\n", stderr);
    abort();
}

void *ob_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *ob_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        oom();
    return p;
}

void *ob_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *ob_xstrdup(const char *s)
{
    return ob_xstrndup(s, strlen(s));
}

char *ob_xstrndup(const char *s, size_t n)
{
    char *p = ob_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ob_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    return s;
}

void ob_buf_reserve(ob_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra + 1)
        return;
    size_t need = b->len + extra + 1; /* +1 keeps room for a NUL */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap * 2;
    b->data = ob_xrealloc(b->data, cap);
    b->cap = cap;
}

void ob_buf_append(ob_buf *b, const void *p, size_t n)
{
    ob_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void ob_buf_putc(ob_buf *b, uint8_t c) { ob_buf_append(b, &c, 1); }

void ob_buf_put_u16(ob_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    ob_buf_append(b, t, 2);
}

void ob_buf_put_u32(ob_buf *b, uint32_t v)
{
    uint8_t t[4];
    ob_le32(t, v);
    ob_buf_append(b, t, 4);
}

void ob_buf_put_u64(ob_buf *b, uint64_t v)
{
    uint8_t t[8];
    ob_le64(t, v);
    ob_buf_append(b, t, 8);
}

void ob_buf_put_bytes(ob_buf *b, const void *p, size_t n)
{
    ob_buf_put_u32(b, (uint32_t)n);
    ob_buf_append(b, p, n);
}

void ob_buf_printf(ob_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    ob_buf_append(b, s, (size_t)n);
    free(s);
}

void ob_buf_reset(ob_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void ob_buf_free(ob_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *ob_buf_steal(ob_buf *b, size_t *len)
{
    ob_buf_reserve(b, 0);
    uint8_t *p = b->data;
    p[b->len] = 0;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

const uint8_t *ob_rd_take(ob_rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        r->left = 0;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint8_t ob_rd_u8(ob_rd *r)
{
    const uint8_t *p = ob_rd_take(r, 1);
    return p ? p[0] : 0;
}

uint16_t ob_rd_u16(ob_rd *r)
{
    const uint8_t *p = ob_rd_take(r, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t ob_rd_u32(ob_rd *r)
{
    const uint8_t *p = ob_rd_take(r, 4);
    return p ? ob_get_le32(p) : 0;
}

uint64_t ob_rd_u64(ob_rd *r)
{
    const uint8_t *p = ob_rd_take(r, 8);
    return p ? ob_get_le64(p) : 0;
}

void ob_rd_copy(ob_rd *r, void *out, size_t n)
{
    const uint8_t *p = ob_rd_take(r, n);
    if (p)
        memcpy(out, p, n);
    else
        memset(out, 0, n);
}

const uint8_t *ob_rd_bytes(ob_rd *r, uint32_t *len)
{
    uint32_t n = ob_rd_u32(r);
    const uint8_t *p = ob_rd_take(r, n);
    *len = p ? n : 0;
    return p;
}
