/*
 * writer.c — see writer.h.
 *
 * One mutex protects the queue, the index and the stats.  Each worker owns
 * two packs of its own, one for trees and one for everything else: it
 * takes a job, compresses it and seals it into the pack for its type
 * without the lock (so compression and encryption both run on every core),
 * then takes the lock only to fill in the blob's index entry.  A worker
 * whose pack is full uploads it without the lock, so several uploads can be
 * in flight.  On flush, each worker stores its partly filled packs.
 */
#include "repo/writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/compress.h"
#include "core/log.h"
#include "repo/index.h"
#include "repo/pack.h"

/* Write an index file after this many packs, so a crash in a long backup
 * loses little (see writer.h). */
#define WRITER_INDEX_EVERY 32
/* ... or after this many blobs, whichever comes first.  Opening a
 * repository holds one index file's ciphertext and plaintext (50 bytes a
 * blob each) next to the loaded entries, so an index file must stay small
 * however tiny the blobs are: 32 packs of 16-byte blobs would make one
 * index file of 20 million entries (1 GB) and double the memory of opening
 * the repository (bench/results_scale.md).  A file holds at most this many
 * entries plus one pack's. */
#define WRITER_INDEX_MAX_BLOBS 200000 /* as PRUNE_INDEX_BATCH, REPAIR_INDEX_BATCH */
/* Store a pack when it holds this many blobs even if it is smaller than
 * the pack size.  A pack being filled keeps ~50 bytes of directory per blob
 * (pack_blob, then the encoded directory) and each worker has one open: 16
 * MiB of 16-byte files is ~500k blobs, ~50 MB per worker, so a backup of
 * many tiny files grew by ~100 bytes per file until its packs filled
 * (bench/results_scale.md).  It also bounds an index file (a pack's blobs
 * go into one) to WRITER_INDEX_MAX_BLOBS + this. */
#define WRITER_PACK_MAX_BLOBS 65536
/* Bytes of queued chunks per worker thread (see repo_writer_new). */
#define WRITER_QUEUE_PER_THREAD (2u * CHUNKER_FILES_AVG)

typedef struct job {
    struct job *next;
    int type;
    uint8_t id[OB_ID_LEN];
    size_t len;
    uint8_t data[];
} job;

struct repo_writer {
    repo *r;
    repo_lock *lock;         /* borrowed; NULL: no lease to check */
    int level;               /* zstd level of new blobs */
    repo_index *ix;          /* the repository index (shared with repo) */
    repo_index *unrecorded;  /* stored packs not yet in an index file */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;  /* a job was queued, or stop */
    pthread_cond_t cv_space; /* queue space freed, or a job finished */
    job *head, *tail;
    size_t queued_bytes, max_queue_bytes;
    int busy;                /* jobs being processed + uploads in flight */
    int stop;
    ob_err err;              /* first failure, sticky */
    int flush_req;           /* workers: store your open packs once idle */
    int open_packs;          /* non-empty open packs (two a worker at most) */
    pthread_t *threads;
    int nthreads;
    int dirty;               /* entries added since the last successful flush */
    repo_writer_stats stats;
    char **index_names;      /* index files written, "index/<hex>" */
    size_t nindex_names;
};

static int fail_locked(repo_writer *w, ob_err *e)
{
    if (w->err.code == OB_OK)
        ob_err_move(&w->err, e);
    else
        ob_err_clear(e);
    pthread_cond_broadcast(&w->cv_space);
    return -1;
}

/* Is the lease still held?  Asked right before every pack and index put,
 * without w->mu (repo_lock_lost takes the lock's own mutex only).  A
 * process stopped past the stale time fails here, on its CLOCK_BOOTTIME
 * test, before its renewer has even woken up: a prune may meanwhile have
 * deleted this writer's packs as unindexed, and an index file naming them
 * would be a dangling entry the next backup deduplicates against. */
static int lease_check(repo_lock *lease, ob_err *e)
{
    if (!lease || !repo_lock_lost(lease, e))
        return 0;
    char *why = ob_xstrdup(ob_err_msg(e));
    ob_err_set(e, OB_ELOCKED, "%s; nothing more is written", why);
    free(why);
    return -1;
}

/* Write the index file of packs stored so far.  Called with the lock held;
 * drops it for the upload. */
static int record_index_locked(repo_writer *w)
{
    if (repo_index_pack_count(w->unrecorded) == 0)
        return 0;
    repo_index *done = w->unrecorded;
    w->unrecorded = repo_index_new();
    w->busy++;
    repo_lock *lease = w->lock;
    pthread_mutex_unlock(&w->mu);

    ob_buf payload = OB_BUF_INIT;
    repo_index_encode(done, &payload);
    repo_index_free(done);
    ob_err e = OB_ERR_INIT;
    char hex[OB_HEX_ID_LEN + 1];
    int rc = lease_check(lease, &e);
    if (rc == 0) {
        rc = repo_put_object(w->r, "index", REPO_OBJ_INDEX, payload.data, payload.len, hex, &e);
        if (rc < 0)
            ob_err_prefix(&e, "writing index file");
    }
    ob_buf_free(&payload);

    pthread_mutex_lock(&w->mu);
    w->busy--;
    pthread_cond_broadcast(&w->cv_space);
    if (rc < 0)
        return fail_locked(w, &e);
    w->index_names = ob_xrealloc(w->index_names, (w->nindex_names + 1) * sizeof *w->index_names);
    w->index_names[w->nindex_names++] = ob_xasprintf("index/%s", hex);
    return 0;
}

/* Seal and upload a full pack; lock held on entry and exit. */
static int store_pack_locked(repo_writer *w, pack_builder *pb)
{
    w->busy++;
    repo_lock *lease = w->lock;
    pthread_mutex_unlock(&w->mu);
    ob_err e = OB_ERR_INIT;
    /* A pack alone references nothing, but stored under a lost lease it is
     * work a prune may be deleting, and the writer should stop at once
     * rather than run to the end of a long backup. */
    int rc = lease_check(lease, &e);
    if (rc < 0)
        goto done;
    rc = pack_builder_store(pb, &e);
    if (rc < 0) {
        char *name = pack_object_name(pb->id);
        ob_err_prefix(&e, "storing pack %s", name);
        free(name);
    }
done:
    pthread_mutex_lock(&w->mu);
    w->busy--;
    pthread_cond_broadcast(&w->cv_space);
    if (rc < 0) {
        pack_builder_free(pb);
        return fail_locked(w, &e);
    }
    uint32_t pos = repo_index_add_pack(w->unrecorded, pb->id, pb->salt);
    for (size_t i = 0; i < pb->nblobs; i++) {
        const pack_blob *b = &pb->blobs[i];
        index_entry ie;
        memcpy(ie.id, b->id, OB_ID_LEN);
        ie.pack = pos;
        ie.offset = b->offset;
        ie.length = b->length;
        ie.raw_len = b->raw_len;
        ie.meta = INDEX_META(i, b->comp, b->type);
        repo_index_add(w->unrecorded, &ie);
    }
    w->stats.packs++;
    w->stats.bytes_stored += pack_builder_size(pb);
    pack_builder_free(pb);
    if (repo_index_pack_count(w->unrecorded) >= WRITER_INDEX_EVERY ||
        repo_index_count(w->unrecorded) >= WRITER_INDEX_MAX_BLOBS)
        return record_index_locked(w);
    return 0;
}

/* Fill in the placeholder entry repo_writer_add made for blob seq of
 * pack pb; lock held. */
static void index_sealed_locked(repo_writer *w, const pack_builder *pb, uint32_t seq)
{
    const pack_blob *b = &pb->blobs[seq];
    index_entry *ie = repo_index_lookup_mut(w->ix, b->id);
    if (ie) {
        ie->pack = repo_index_add_pack(w->ix, pb->id, pb->salt);
        ie->offset = b->offset;
        ie->length = b->length;
        ie->raw_len = b->raw_len;
        ie->meta = INDEX_META(seq, b->comp, b->type);
        repo_index_pack_extend(w->ix, ie->pack, (uint64_t)b->offset + b->length);
    }
}

/* A worker fills two packs: trees in one, everything else in the other.
 * Reading a snapshot's trees (a restore's walk, a backup's walk of its
 * parent, ls) then finds them next to each other in a few small packs
 * instead of one between every few MiB of file data, which over a remote
 * storage is one ranged GET per directory (D43); restic separates them
 * for the same reason. */
enum { WORKER_PACK_DATA = 0, WORKER_PACK_TREE = 1 };

static void *worker_main(void *arg)
{
    repo_writer *w = arg;
    ob_compressor *cz = ob_compressor_new(w->level);
    ob_buf out = OB_BUF_INIT;
    pack_builder packs[2];
    int open[2] = {0, 0};
    memset(packs, 0, sizeof packs);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop &&
               !((open[0] || open[1]) && (w->flush_req || w->err.code != OB_OK)))
            pthread_cond_wait(&w->cv_work, &w->mu);
        if (!w->head) {
            if (open[0] || open[1]) {
                /* Flush (store the partial packs), or abandon them on error
                 * or stop: nothing references an unflushed writer's blobs. */
                for (int k = 0; k < 2; k++) {
                    if (!open[k])
                        continue;
                    if (w->flush_req && !w->stop && w->err.code == OB_OK)
                        store_pack_locked(w, &packs[k]);
                    else
                        pack_builder_free(&packs[k]);
                    open[k] = 0;
                    w->open_packs--;
                }
                pthread_cond_broadcast(&w->cv_space);
                continue;
            }
            if (w->stop)
                break;
            continue;
        }
        job *j = w->head;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        w->busy++;
        int failed = w->err.code != OB_OK;
        pthread_mutex_unlock(&w->mu);

        const int k = j->type == REPO_BLOB_TREE ? WORKER_PACK_TREE : WORKER_PACK_DATA;
        pack_builder *pack = &packs[k];
        ob_err e = OB_ERR_INIT;
        int rc = 0;
        uint32_t seq = 0;
        if (!failed) {
            int comp = cz ? ob_compress(cz, j->data, j->len, &out) : OB_COMP_NONE;
            if (!open[k] && (rc = pack_builder_init(pack, w->r, &e)) == 0)
                open[k] = 2; /* opened now: counted below, under the lock */
            seq = (uint32_t)pack->nblobs;
            if (rc == 0)
                rc = comp == OB_COMP_ZSTD
                         ? pack_builder_add(pack, j->id, j->type, comp, out.data, out.len, j->len, &e)
                         : pack_builder_add(pack, j->id, j->type, comp, j->data, j->len, j->len, &e);
            if (rc < 0)
                ob_err_prefix(&e, "writing a pack");
        }

        pthread_mutex_lock(&w->mu);
        if (open[k] == 2) {
            open[k] = 1;
            w->open_packs++;
        }
        if (rc < 0)
            fail_locked(w, &e);
        else if (!failed)
            index_sealed_locked(w, pack, seq);
        w->queued_bytes -= j->len;
        w->busy--;
        free(j);
        if (open[k] && rc == 0 && !failed &&
            (pack_builder_size(pack) >= repo_pack_size(w->r) ||
             pack->nblobs >= WRITER_PACK_MAX_BLOBS)) {
            store_pack_locked(w, pack); /* frees it; drops the lock meanwhile */
            open[k] = 0;
            w->open_packs--;
        }
        pthread_cond_broadcast(&w->cv_space);
    }
    pthread_mutex_unlock(&w->mu);
    for (int k = 0; k < 2; k++)
        if (open[k])
            pack_builder_free(&packs[k]);
    ob_buf_free(&out);
    ob_compressor_free(cz);
    return NULL;
}

int repo_writer_new(repo *r, int nthreads, repo_writer **out, ob_err *err)
{
    return repo_writer_new_level(r, nthreads, repo_compression_level(r), out, err);
}

int repo_writer_new_level(repo *r, int nthreads, int level, repo_writer **out, ob_err *err)
{
    *out = NULL;
    if (repo_load_index(r, err) < 0)
        return -1;
    if (nthreads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int)n : 1;
    }
    repo_writer *w = ob_xcalloc(1, sizeof *w);
    w->r = r;
    w->level = level;
    w->ix = repo_get_index(r);
    w->unrecorded = repo_index_new();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_work, NULL);
    pthread_cond_init(&w->cv_space, NULL);
    /* Enough queued work to keep every worker busy while the caller reads
     * (two average file chunks, sixteen database ones per worker), and no
     * more: queued chunks are copies, so this is memory the backup holds
     * on top of what it reads.  A chunk larger than the bound still goes
     * in when the queue is empty. */
    w->max_queue_bytes = (size_t)nthreads * WRITER_QUEUE_PER_THREAD;
    w->threads = ob_xcalloc((size_t)nthreads, sizeof *w->threads);
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
            ob_err_set(err, OB_EFAIL, "cannot start worker threads");
            w->nthreads = i;
            repo_writer_free(w);
            return -1;
        }
    }
    w->nthreads = nthreads;
    *out = w;
    return 0;
}

void repo_writer_set_lock(repo_writer *w, repo_lock *lock)
{
    pthread_mutex_lock(&w->mu);
    w->lock = lock;
    pthread_mutex_unlock(&w->mu);
}

int repo_writer_has(repo_writer *w, const uint8_t id[OB_ID_LEN])
{
    pthread_mutex_lock(&w->mu);
    int has = repo_index_lookup(w->ix, id) != NULL;
    pthread_mutex_unlock(&w->mu);
    return has;
}

int repo_writer_add(repo_writer *w, int type, const void *data, size_t len,
                    uint8_t id[OB_ID_LEN], int *added, ob_err *err)
{
    repo_blob_id(w->r, type, data, len, id);
    if (added)
        *added = 0;
    pthread_mutex_lock(&w->mu);
    w->stats.blobs_seen++;
    w->stats.bytes_seen += len;
    if (w->err.code != OB_OK) {
        ob_err_set(err, w->err.code, "%s", ob_err_msg(&w->err));
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    /* A blob already indexed, or already queued by this writer, is not
     * stored again.  Queued blobs are in the index as placeholders (pack =
     * INDEX_PACK_PENDING) until a worker seals them. */
    if (repo_index_lookup(w->ix, id)) {
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    index_entry ph;
    memset(&ph, 0, sizeof ph);
    memcpy(ph.id, id, OB_ID_LEN);
    ph.pack = INDEX_PACK_PENDING;
    ph.meta = INDEX_META(0, 0, type);
    repo_index_add(w->ix, &ph);
    w->dirty = 1;
    while (w->queued_bytes > 0 && w->queued_bytes + len > w->max_queue_bytes &&
           w->err.code == OB_OK)
        pthread_cond_wait(&w->cv_space, &w->mu);
    pthread_mutex_unlock(&w->mu);

    job *j = ob_xmalloc(sizeof *j + len);
    j->next = NULL;
    j->type = type;
    j->len = len;
    memcpy(j->id, id, OB_ID_LEN);
    memcpy(j->data, data, len);

    pthread_mutex_lock(&w->mu);
    if (w->err.code != OB_OK) {
        ob_err_set(err, w->err.code, "%s", ob_err_msg(&w->err));
        pthread_mutex_unlock(&w->mu);
        free(j);
        return -1;
    }
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->queued_bytes += len;
    w->stats.blobs_added++;
    w->stats.bytes_added += len;
    pthread_cond_signal(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
    if (added)
        *added = 1;
    return 0;
}

int repo_writer_flush(repo_writer *w, ob_err *err)
{
    pthread_mutex_lock(&w->mu);
    /* Every worker stores its open pack once the queue is empty. */
    w->flush_req = 1;
    pthread_cond_broadcast(&w->cv_work);
    while ((w->head || w->busy || w->open_packs) && w->err.code == OB_OK)
        pthread_cond_wait(&w->cv_space, &w->mu);
    w->flush_req = 0;
    if (w->err.code == OB_OK)
        record_index_locked(w);
    /* Wait for uploads started by other threads to settle. */
    while (w->busy && w->err.code == OB_OK)
        pthread_cond_wait(&w->cv_space, &w->mu);
    int rc = 0;
    if (w->err.code != OB_OK) {
        ob_err_set(err, w->err.code, "%s", ob_err_msg(&w->err));
        rc = -1;
    } else {
        /* Everything is sealed and recorded: fold the session's entries
         * into the compact sorted array (index.h). */
        repo_index_merge(w->ix);
        w->dirty = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

const char *const *repo_writer_index_names(repo_writer *w, size_t *n)
{
    pthread_mutex_lock(&w->mu);
    *n = w->nindex_names;
    const char *const *v = (const char *const *)w->index_names;
    pthread_mutex_unlock(&w->mu);
    return v;
}

void repo_writer_get_stats(repo_writer *w, repo_writer_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    pthread_mutex_unlock(&w->mu);
}

void repo_writer_free(repo_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    /* Abandon queued jobs: nothing references them yet. */
    while (w->head) {
        job *j = w->head;
        w->head = j->next;
        free(j);
    }
    w->tail = NULL;
    pthread_cond_broadcast(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    free(w->threads);
    repo_index_free(w->unrecorded);
    for (size_t i = 0; i < w->nindex_names; i++)
        free(w->index_names[i]);
    free(w->index_names);
    /* Entries of blobs that were never durably recorded must not make a
     * later writer on the same repo believe they are stored: drop the
     * in-memory index so it reloads from what is really there. */
    if (w->dirty)
        repo_set_index(w->r, NULL);
    ob_err_clear(&w->err);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv_work);
    pthread_cond_destroy(&w->cv_space);
    free(w);
}
