/*
 * chunker_bench.c — single-core throughput of chunker_next on random data.
 *
 * Not a test: it prints MB/s (10^6 bytes per second) for each parameter
 * preset over 512 MiB of in-memory pseudo-random data.  Random data is the
 * usual case to measure: every byte past min_size is hashed.  The figure is
 * input bytes per second, so it includes the first min_size bytes of each
 * chunk that FastCDC skips (~40% of the input with the files preset, ~22%
 * with "small"); that is the rate a backup pipeline sees.
 *
 * On a shared VM the result swings with neighbours' load; take the best of
 * several runs when comparing builds.
 *
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Isrc bench/chunker_bench.c \
 *       src/repo/chunker.c src/core/crypto.c src/core/err.c src/core/buf.c \
 *       -lcrypto -o /tmp/chunker_bench && /tmp/chunker_bench [MiB]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/buf.h"
#include "repo/chunker.h"

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run(const char *name, const chunker_params *p, const uint8_t *data, size_t len)
{
    static const uint8_t seed[32] = {1, 2, 3, 4, 5, 6, 7, 8};
    chunker *c = chunker_new(p, seed);
    if (!c) {
        fprintf(stderr, "bad params for %s\n", name);
        exit(1);
    }
    double best = 0;
    size_t nchunks = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        size_t off = 0;
        nchunks = 0;
        while (off < len) {
            size_t n = chunker_next(c, data + off, len - off, 1);
            off += n;
            nchunks++;
        }
        double mbs = (double)len / (now() - t0) / 1e6;
        if (mbs > best)
            best = mbs;
    }
    printf("%-6s min=%u avg=%u max=%u: %zu chunks, mean %.0f bytes, best of 3: %.0f MB/s\n",
           name, p->min_size, p->avg_size, p->max_size, nchunks, (double)len / (double)nchunks,
           best);
    chunker_free(c);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
    size_t len = mib << 20;
    uint8_t *data = ob_xmalloc(len);
    uint64_t s = 42;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t v = splitmix64(&s);
        ob_le64(data + i, v);
    }

    chunker_params files = {CHUNKER_FILES_MIN, CHUNKER_FILES_AVG, CHUNKER_FILES_MAX};
    chunker_params db = {CHUNKER_DB_MIN, CHUNKER_DB_AVG, CHUNKER_DB_MAX};
    chunker_params small = {2048, 8192, 65536};
    run("files", &files, data, len);
    run("db", &db, data, len);
    run("small", &small, data, len);
    free(data);
    return 0;
}
