/*
 * scale_gen.c — fill a repository with N synthetic blobs, for the "Scale"
 * target of issue #10 (bench/scenario_scale.sh).
 *
 *   scale_gen REPO PASSWORD_FILE N [BLOBS_PER_WRITER]
 *
 * Blob i (0 <= i < N) is the 16 bytes printf("b%014llu\n", i), stored as a
 * data blob through the library's own writer (dedup, compress, encrypt,
 * pack, index), so the packs and index files are exactly what a backup
 * writes and `opsbackup check` accepts them.  A file on disk with the same
 * 16 bytes dedups against blob i, which is how the scenario makes index
 * lookups hit.  No snapshot references the blobs (a tree naming 10 million
 * blobs would be a 400 MB object and is not what is measured): they are
 * unreferenced data that `prune` would remove.
 *
 * BLOBS_PER_WRITER (default 0 = one writer for all) flushes and restarts
 * the writer every that many blobs, which gives smaller packs and index
 * files (one index file per flush) instead of the writer's natural layout
 * (an index file every 32 packs of 16 MiB).
 *
 * Prints "blobs N packs P" on stdout.  Exit 0 success, 1 failure, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "repo/repo.h"
#include "repo/writer.h"
#include "storage/storage.h"
#include "../tests/tools/tool_password.h"

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: scale_gen REPO PASSWORD_FILE N [BLOBS_PER_WRITER]\n");
        return 2;
    }
    unsigned long long n = strtoull(argv[3], NULL, 10);
    unsigned long long per = argc == 5 ? strtoull(argv[4], NULL, 10) : 0;
    if (per == 0)
        per = n ? n : 1;
    char *pw = tool_read_password(argv[2]);
    if (!pw) {
        fprintf(stderr, "scale_gen: cannot read %s\n", argv[2]);
        return 1;
    }
    ob_err err = OB_ERR_INIT;
    storage *st = NULL;
    repo *r = NULL;
    if (storage_open(argv[1], 0, &st, &err) < 0 || repo_open(st, pw, &r, &err) < 0) {
        fprintf(stderr, "scale_gen: %s\n", ob_err_msg(&err));
        return 1;
    }
    int rc = 0;
    unsigned long long packs = 0;
    for (unsigned long long i = 0; i < n && rc == 0;) {
        repo_writer *w = NULL;
        if (repo_writer_new(r, 0, &w, &err) < 0) {
            rc = -1;
            break;
        }
        unsigned long long end = i + per < n ? i + per : n;
        for (; i < end && rc == 0; i++) {
            char data[32]; /* 16 bytes used while i < 10^14 */
            snprintf(data, sizeof data, "b%014llu\n", i % 100000000000000ull);
            uint8_t id[OB_ID_LEN];
            rc = repo_writer_add(w, REPO_BLOB_DATA, data, 16, id, NULL, &err);
        }
        if (rc == 0)
            rc = repo_writer_flush(w, &err);
        repo_writer_stats s;
        repo_writer_get_stats(w, &s);
        packs += s.packs;
        repo_writer_free(w);
        if (rc == 0 && i < n && (i / per) % 10 == 0)
            fprintf(stderr, "scale_gen: %llu / %llu blobs\n", i, n);
    }
    if (rc < 0)
        fprintf(stderr, "scale_gen: %s\n", ob_err_msg(&err));
    else
        printf("blobs %llu packs %llu\n", n, packs);
    repo_close(r);
    storage_close(st);
    free(pw);
    return rc < 0 ? 1 : 0;
}
