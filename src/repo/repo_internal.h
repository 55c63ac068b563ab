/*
 * repo_internal.h — the repo struct, shared by repo.c and key.c only.
 * Nothing outside src/repo/repo*.c and key.c may include this.
 */
#ifndef OB_REPO_INTERNAL_H
#define OB_REPO_INTERNAL_H

#include <pthread.h>

#include "repo/repo.h"

#define REPO_MASTER_LEN 64 /* 32 encryption + 32 MAC */

struct repo {
    storage *st;
    char id[OB_HEX_ID_LEN + 1];
    char *key_id;
    uint8_t enc_key[OB_KEY_LEN];
    uint8_t mac_key[OB_KEY_LEN];
    uint8_t tree_mac_key[OB_KEY_LEN]; /* ob_kdf(mac_key, "opsbackup-v1 tree id") */
    pthread_mutex_t index_mu;         /* guards the lazy index load */
    chunker *chunkers[2];
    int compression_level;
    uint32_t pack_size;
    repo_index *index;
    /* Read-ahead (repo.c, window_get): on a remote storage, a read that
     * continues a recent one in the same pack fetches the READ_BLOCK-aligned
     * blocks around it, kept in the slots below (LRU), with the packs'
     * sizes.  A slot being fetched is LOADING; readers that need it wait on
     * window_cv instead of fetching it a second time. */
    pthread_mutex_t window_mu;
    pthread_cond_t window_cv;
    int window_on;                    /* storage_remote() at open */
    uint64_t window_tick;
    struct repo_window {
        uint8_t pack[OB_ID_LEN];
        uint64_t block;               /* offset in the pack / READ_BLOCK */
        int state;                    /* WINDOW_EMPTY, _LOADING, _LOADED */
        ob_buf data;                  /* the block's bytes (short at the pack's end) */
        uint64_t used;                /* window_tick of the last hit */
    } windows[20];                    /* 2 readers x (2 end blocks + 7 ahead), and room */
    struct repo_recent {              /* the last reads, for the sequence test */
        uint8_t pack[OB_ID_LEN];
        uint64_t start, end;          /* end == 0: slot unused */
        uint64_t used;                /* window_tick when noted */
    } recent[16];                     /* two a pack at most (window_note_locked) */
    struct repo_pack_size {
        uint8_t pack[OB_ID_LEN];
        uint64_t size;                /* 0: slot unused */
    } pack_sizes[64];
    unsigned pack_sizes_next;         /* round-robin replacement */
};

/* Wrap / unwrap the master key with a password (key.c). */
int repo_key_wrap(const char *repo_id, const uint8_t master[REPO_MASTER_LEN],
                  const char *password, const repo_kdf_params *kdf, ob_buf *json_out,
                  ob_err *err);
/* Returns 0 and fills master/repo_id on success; OB_EAUTH when the password
 * does not open this slot; OB_ECORRUPT when the slot is unreadable. */
/* Work factor of a key slot's scrypt (N * r * p), UINT64_MAX if unreadable:
 * repo_open tries the cheapest slots first. */
uint64_t repo_key_cost(const uint8_t *json, size_t len);
int repo_key_unwrap(const uint8_t *json, size_t len, const char *password,
                    uint8_t master[REPO_MASTER_LEN], char repo_id[OB_HEX_ID_LEN + 1],
                    ob_err *err);
/* Store a wrapped key slot; returns its ID (hex, caller frees). */
int repo_key_store(storage *st, const ob_buf *json, char **id_out, ob_err *err);

#endif
