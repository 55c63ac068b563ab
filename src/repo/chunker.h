/*
 * chunker.h — content-defined chunking (FastCDC with normalized chunking).
 *
 * Cut points depend only on the bytes, so an insertion near the start of a
 * file shifts at most a chunk or two and the rest deduplicates.  The gear
 * table is derived from a per-repository secret, so chunk boundaries (and so
 * chunk sizes visible in the repository) do not reveal which known file was
 * stored.
 *
 * The chunker is stateless between calls: the caller keeps a buffer of at
 * least max_size bytes (or whatever remains of the stream), asks where the
 * next chunk ends, consumes that many bytes and asks again.  A chunker is
 * immutable after chunker_new and may be shared by threads.
 */
#ifndef OB_CHUNKER_H
#define OB_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct chunker_params {
    uint32_t min_size; /* no cut before this many bytes */
    uint32_t avg_size; /* power of two: the normalization point */
    uint32_t max_size; /* always cut here */
} chunker_params;

/* Defaults per kind of data (stored in the repository config at init). */
#define CHUNKER_FILES_MIN (512u * 1024)
#define CHUNKER_FILES_AVG (1024u * 1024)
#define CHUNKER_FILES_MAX (8u * 1024 * 1024)
#define CHUNKER_DB_MIN (64u * 1024)
#define CHUNKER_DB_AVG (128u * 1024)
#define CHUNKER_DB_MAX (1024u * 1024)
/* The largest chunk, so the largest data blob, the format allows (any
 * repository's max_size; FORMAT.md 8.1).  Readers bound by it what a tree
 * says about a chunk's length before acting on it. */
#define CHUNKER_MAX_MAX (64u * 1024 * 1024)

typedef struct chunker chunker;

/* Returns NULL if params are invalid (min < 64, avg not a power of two,
 * not min < avg < max, max > 64 MiB).  seed: 32 secret bytes. */
chunker *chunker_new(const chunker_params *params, const uint8_t seed[32]);
/* Fixed-size blocks (PostgreSQL relation files: a changed page changes
 * exactly the block that holds it, and blocks stay page aligned).  All
 * three params equal size.  NULL if size is out of range. */
chunker *chunker_new_fixed(uint32_t size);
void chunker_free(chunker *c);
const chunker_params *chunker_get_params(const chunker *c);

/* Length of the chunk that starts at data[0].
 * - If a cut point is found within data[0..len), returns its length (>= 1).
 * - If len >= max_size, returns max_size at most (always a cut).
 * - If no cut point is found and eof is set, returns len (the final chunk).
 * - If no cut point is found, len < max_size and eof is not set, returns 0:
 *   the caller must supply more bytes and ask again from the same start.
 * len == 0 returns 0. */
size_t chunker_next(const chunker *c, const uint8_t *data, size_t len, int eof);
/* The same answer as chunker_next, for a caller that asked before about
 * data[0 .. scanned) (the same bytes, scanned < max_size) and got 0: the
 * search resumes near `scanned` instead of starting over, so a stream fed
 * in small pieces is hashed about once rather than once per piece.
 * scanned == 0 is chunker_next. */
size_t chunker_next_from(const chunker *c, const uint8_t *data, size_t len, int eof,
                         size_t scanned);

#endif
