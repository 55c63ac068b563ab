/*
 * repo.c — opening and creating repositories, the encrypted object
 * envelope, and blob reads.
 *
 * Envelope of every encrypted object (config, index, snapshot, lock):
 *
 *   "OBO1" | type u8 | version u8 | 0 u16 | salt[32] | ciphertext | tag[16]
 *
 * The first 40 bytes are authenticated as AAD.  The object key is
 * HMAC(enc_key, "opsbackup-v1 object" || salt) with a fresh random salt per
 * object, so each key seals exactly one message and the nonce is all zeros.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "repo/index.h"
#include "repo/pack.h"
#include "repo/repo_internal.h"

#define OBJ_MAGIC "OBO1"
#define OBJ_HEADER_LEN 40

void repo_kdf_default(repo_kdf_params *p)
{
    /* OWASP's scrypt equivalents trade memory for sequential passes:
     * N=2^17,p=1 ... N=2^13,p=10 cost an attacker the same by its
     * reckoning.  We take the 8 MiB one so opening a repository does not
     * dominate the memory of every command (docs/DECISIONS.md D2, D51). */
    p->n = 1u << 13;
    p->r = 8;
    p->p = 10;
}

storage *repo_storage(const repo *r) { return r->st; }
const char *repo_id(const repo *r) { return r->id; }
const char *repo_key_id(const repo *r) { return r->key_id; }
int repo_compression_level(const repo *r) { return r->compression_level; }
uint32_t repo_pack_size(const repo *r) { return r->pack_size; }
const chunker *repo_chunker(const repo *r, int kind)
{
    return r->chunkers[kind == REPO_CHUNK_DB ? 1 : 0];
}

void repo_master_key(const repo *r, uint8_t out[64])
{
    memcpy(out, r->enc_key, 32);
    memcpy(out + 32, r->mac_key, 32);
}

void repo_blob_id(const repo *r, int type, const void *data, size_t len, uint8_t id[OB_ID_LEN])
{
    ob_hmac_sha256(type == REPO_BLOB_TREE ? r->tree_mac_key : r->mac_key, data, len, id);
}

static void repo_set_master(repo *r, const uint8_t master[REPO_MASTER_LEN])
{
    memcpy(r->enc_key, master, 32);
    memcpy(r->mac_key, master + 32, 32);
    ob_kdf(r->mac_key, "opsbackup-v1 tree id", NULL, 0, r->tree_mac_key);
}

void repo_pack_key(const repo *r, const uint8_t salt[32], uint8_t key[OB_KEY_LEN])
{
    ob_kdf(r->enc_key, "opsbackup-v1 pack", salt, 32, key);
}

int repo_seal_object(const repo *r, int type, const void *data, size_t len, ob_buf *out,
                     ob_err *err)
{
    uint8_t hdr[OBJ_HEADER_LEN] = {0}, key[OB_KEY_LEN], nonce[OB_NONCE_LEN] = {0};
    memcpy(hdr, OBJ_MAGIC, 4);
    hdr[4] = (uint8_t)type;
    hdr[5] = REPO_FORMAT_VERSION;
    if (ob_random(hdr + 8, 32, err) < 0)
        return -1;
    ob_kdf(r->enc_key, "opsbackup-v1 object", hdr + 8, 32, key);
    ob_buf_reset(out);
    ob_buf_reserve(out, OBJ_HEADER_LEN + len + OB_TAG_LEN);
    ob_buf_append(out, hdr, sizeof hdr);
    int rc = ob_aead_seal(key, nonce, hdr, sizeof hdr, data, len, out->data + OBJ_HEADER_LEN, err);
    ob_wipe(key, sizeof key);
    if (rc < 0)
        return -1;
    out->len = OBJ_HEADER_LEN + len + OB_TAG_LEN;
    return 0;
}

int repo_open_object(const repo *r, int type, const uint8_t *data, size_t len, ob_buf *out,
                     ob_err *err)
{
    if (len < OBJ_HEADER_LEN + OB_TAG_LEN || memcmp(data, OBJ_MAGIC, 4) != 0)
        return ob_err_set(err, OB_ECORRUPT, "not an opsbackup object (bad header or truncated)");
    if (data[5] != REPO_FORMAT_VERSION)
        return ob_err_set(err, OB_ECORRUPT, "object format version %u is not supported",
                          data[5]);
    if (data[4] != type)
        return ob_err_set(err, OB_ECORRUPT, "object has type %u, expected %d", data[4], type);
    uint8_t key[OB_KEY_LEN], nonce[OB_NONCE_LEN] = {0};
    ob_kdf(r->enc_key, "opsbackup-v1 object", data + 8, 32, key);
    ob_buf_reset(out);
    size_t n = len - OBJ_HEADER_LEN - OB_TAG_LEN;
    ob_buf_reserve(out, n);
    int rc = ob_aead_open(key, nonce, data, OBJ_HEADER_LEN, data + OBJ_HEADER_LEN,
                          len - OBJ_HEADER_LEN, out->data, err);
    ob_wipe(key, sizeof key);
    if (rc < 0)
        return -1;
    out->len = n;
    out->data[n] = 0;
    return 0;
}

int repo_put_object_named(repo *r, const char *name, int type, const void *data, size_t len,
                          int flags, ob_err *err)
{
    ob_buf sealed = OB_BUF_INIT;
    int rc = repo_seal_object(r, type, data, len, &sealed, err);
    if (rc == 0)
        rc = storage_put(r->st, name, sealed.data, sealed.len, flags, err);
    ob_buf_free(&sealed);
    return rc;
}

int repo_put_object(repo *r, const char *dir, int type, const void *data, size_t len,
                    char id_hex[OB_HEX_ID_LEN + 1], ob_err *err)
{
    ob_buf sealed = OB_BUF_INIT;
    if (repo_seal_object(r, type, data, len, &sealed, err) < 0) {
        ob_buf_free(&sealed);
        return -1;
    }
    uint8_t h[OB_ID_LEN];
    char hex[OB_HEX_ID_LEN + 1];
    ob_sha256(sealed.data, sealed.len, h);
    ob_hex(h, sizeof h, hex);
    char *name = ob_xasprintf("%s/%s", dir, hex);
    int rc = storage_put(r->st, name, sealed.data, sealed.len, STORAGE_PUT_CREATE, err);
    free(name);
    ob_buf_free(&sealed);
    if (rc == 0 && id_hex)
        memcpy(id_hex, hex, sizeof hex);
    return rc;
}

int repo_get_object(repo *r, const char *name, int type, ob_buf *out, ob_err *err)
{
    ob_buf raw = OB_BUF_INIT;
    int rc = storage_get(r->st, name, 0, 0, &raw, err);
    if (rc == 0) {
        rc = repo_open_object(r, type, raw.data, raw.len, out, err);
        if (rc < 0)
            ob_err_prefix(err, "object %s", name);
    }
    ob_buf_free(&raw);
    return rc;
}

/* ---- config ---------------------------------------------------------- */

static json_t *chunker_json(const chunker_params *p)
{
    return json_pack("{s:i, s:i, s:i}", "min", (int)p->min_size, "avg", (int)p->avg_size, "max",
                     (int)p->max_size);
}

static int config_encode(const char *id, const uint8_t seed[32], ob_buf *out)
{
    char seed_hex[65];
    ob_hex(seed, 32, seed_hex);
    chunker_params files = {CHUNKER_FILES_MIN, CHUNKER_FILES_AVG, CHUNKER_FILES_MAX};
    chunker_params db = {CHUNKER_DB_MIN, CHUNKER_DB_AVG, CHUNKER_DB_MAX};
    json_t *o = json_pack("{s:i, s:s, s:{s:s, s:o, s:o}, s:{s:s, s:i}, s:i}", "version",
                          REPO_FORMAT_VERSION, "id", id, "chunker", "seed", seed_hex, "files",
                          chunker_json(&files), "db", chunker_json(&db), "compression",
                          "method", "zstd", "level", REPO_COMPRESSION_LEVEL_DEFAULT, "pack_size",
                          (int)REPO_PACK_SIZE_DEFAULT);
    char *s = json_dumps(o, JSON_SORT_KEYS);
    json_decref(o);
    ob_buf_reset(out);
    ob_buf_append(out, s, strlen(s));
    free(s);
    return 0;
}

static int chunker_from_json(json_t *o, const uint8_t seed[32], chunker **out, ob_err *err)
{
    json_int_t mn = 0, avg = 0, mx = 0;
    if (json_unpack(o, "{s:I, s:I, s:I}", "min", &mn, "avg", &avg, "max", &mx) != 0)
        return ob_err_set(err, OB_ECORRUPT, "repository config: bad chunker parameters");
    chunker_params p = {(uint32_t)mn, (uint32_t)avg, (uint32_t)mx};
    *out = chunker_new(&p, seed);
    if (!*out)
        return ob_err_set(err, OB_ECORRUPT, "repository config: invalid chunker parameters");
    return 0;
}

static int config_decode(repo *r, const uint8_t *data, size_t len, ob_err *err)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)data, len, 0, &jerr);
    if (!o)
        return ob_err_set(err, OB_ECORRUPT, "repository config is not valid JSON: %s", jerr.text);
    json_int_t version = 0, level = 3, pack_size = 0;
    const char *id = NULL, *seed_hex = NULL;
    json_t *files = NULL, *db = NULL;
    int rc = -1;
    uint8_t seed[32];
    if (json_unpack(o, "{s:I, s:s, s:{s:s, s:o, s:o}, s:{s:I}, s:I}", "version", &version, "id",
                    &id, "chunker", "seed", &seed_hex, "files", &files, "db", &db,
                    "compression", "level", &level, "pack_size", &pack_size) != 0) {
        ob_err_set(err, OB_ECORRUPT, "repository config lacks required fields");
        goto out;
    }
    if (version != REPO_FORMAT_VERSION) {
        ob_err_set(err, OB_ECORRUPT,
                   "repository format version %lld is not supported by this opsbackup "
                   "(supports %d); upgrade opsbackup",
                   (long long)version, REPO_FORMAT_VERSION);
        goto out;
    }
    if (strcmp(id, r->id) != 0 || ob_unhex(seed_hex, seed, 32) < 0) {
        ob_err_set(err, OB_ECORRUPT, "repository config does not match its key slot");
        goto out;
    }
    if (pack_size < (1 << 20) || pack_size > (1 << 30) || level < 1 || level > 19) {
        ob_err_set(err, OB_ECORRUPT, "repository config has out-of-range values");
        goto out;
    }
    if (chunker_from_json(files, seed, &r->chunkers[0], err) < 0 ||
        chunker_from_json(db, seed, &r->chunkers[1], err) < 0)
        goto out;
    r->compression_level = (int)level;
    r->pack_size = (uint32_t)pack_size;
    rc = 0;
out:
    ob_wipe(seed, sizeof seed);
    json_decref(o);
    return rc;
}

/* ---- init / open ----------------------------------------------------- */

static repo *repo_alloc(storage *st)
{
    repo *r = ob_xcalloc(1, sizeof *r);
    r->st = st;
    pthread_mutex_init(&r->index_mu, NULL);
    pthread_mutex_init(&r->window_mu, NULL);
    pthread_cond_init(&r->window_cv, NULL);
    r->window_on = storage_remote(st);
    return r;
}

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static int name_list_add(const char *name, uint64_t size, void *ud)
{
    (void)size;
    name_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = ob_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = ob_xstrdup(name);
    return 0;
}

static void name_list_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

int repo_init(storage *st, const char *password, const repo_kdf_params *kdf, char **repo_id_out,
              ob_err *err)
{
    uint64_t sz;
    ob_err e = OB_ERR_INIT;
    if (storage_stat(st, "config", &sz, &e) == 0) {
        return ob_err_set(err, OB_EEXIST,
                          "a repository already exists at %s; refusing to overwrite it",
                          st->url);
    } else if (e.code != OB_ENOTFOUND) {
        ob_err_move(err, &e);
        return -1;
    }
    ob_err_clear(&e);
    name_list leftovers = {0};
    if (storage_list(st, "keys/", name_list_add, &leftovers, err) < 0)
        return -1;
    size_t nleft = leftovers.n;
    name_list_free(&leftovers);
    if (nleft)
        return ob_err_set(err, OB_EEXIST,
                          "%s has key slots but no config: an earlier init was interrupted. "
                          "Nothing is stored there yet; remove its keys/ directory and run "
                          "init again",
                          st->url);

    uint8_t idraw[32], master[REPO_MASTER_LEN], seed[32];
    if (ob_random(idraw, sizeof idraw, err) < 0 || ob_random(master, sizeof master, err) < 0 ||
        ob_random(seed, sizeof seed, err) < 0)
        return -1;
    repo *r = repo_alloc(st);
    ob_hex(idraw, sizeof idraw, r->id);
    repo_set_master(r, master);

    int rc = -1;
    ob_buf key = OB_BUF_INIT, cfg = OB_BUF_INIT;
    if (repo_key_wrap(r->id, master, password, kdf, &key, err) < 0)
        goto out;
    config_encode(r->id, seed, &cfg);
    /* Key slot first: a config without a key would be an unopenable repo,
     * a key without a config is just an unfinished init that can be redone. */
    if (repo_key_store(st, &key, NULL, err) < 0)
        goto out;
    if (repo_put_object_named(r, "config", REPO_OBJ_CONFIG, cfg.data, cfg.len,
                              STORAGE_PUT_CREATE, err) < 0)
        goto out;
    if (repo_id_out)
        *repo_id_out = ob_xstrdup(r->id);
    rc = 0;
out:
    ob_wipe(master, sizeof master);
    ob_wipe(seed, sizeof seed);
    ob_buf_free(&key);
    ob_buf_free(&cfg);
    repo_close(r);
    return rc;
}

int repo_key_name_ok(const char *name, const ob_buf *b, ob_err *err)
{
    /* A slot is named by the SHA-256 of its bytes (FORMAT.md §2), which is
     * the only way to tell a damaged slot from a wrong password: its tag
     * fails either way. */
    uint8_t h[OB_ID_LEN];
    char hex[OB_HEX_ID_LEN + 1];
    ob_sha256(b->data, b->len, h);
    ob_hex(h, sizeof h, hex);
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strcmp(base, hex) != 0)
        return ob_err_set(err, OB_ECORRUPT,
                          "damaged: its content (%zu bytes) does not match its name (SHA-256)",
                          b->len);
    return 0;
}

int repo_open(storage *st, const char *password, repo **out, ob_err *err)
{
    *out = NULL;
    name_list keys = {0};
    if (storage_list(st, "keys/", name_list_add, &keys, err) < 0)
        return ob_err_prefix(err, "listing key slots");
    if (keys.n == 0) {
        name_list_free(&keys);
        uint64_t sz;
        ob_err e = OB_ERR_INIT;
        int has_config = storage_stat(st, "config", &sz, &e) == 0;
        ob_err_clear(&e);
        return ob_err_set(err, OB_ENOTFOUND,
                          has_config ? "repository %s has no key slots: it cannot be opened"
                                     : "no repository at %s (create one with `opsbackup init`)",
                          st->url);
    }
    repo *r = repo_alloc(st);
    uint8_t master[REPO_MASTER_LEN];
    int opened = 0, corrupt = 0, foreign = 0;
    ob_buf b = OB_BUF_INIT, cfg = OB_BUF_INIT;
    ob_err cfg_err = OB_ERR_INIT;
    /* Cheapest slots first: a slot made for a long random password (the
     * WAL archiver's, say: `key add --kdf-n 1024`) then opens in
     * milliseconds, and a wrong guess against it costs little more.  The
     * slots read to learn their cost are kept for the attempt itself (one
     * GET per slot on S3, not two). */
    size_t *order = ob_xcalloc(keys.n, sizeof *order);
    uint64_t *cost = ob_xcalloc(keys.n, sizeof *cost);
    ob_buf *slot = ob_xcalloc(keys.n, sizeof *slot);
    int *slot_ok = ob_xcalloc(keys.n, sizeof *slot_ok);
    for (size_t i = 0; i < keys.n; i++) {
        ob_err e = OB_ERR_INIT;
        order[i] = i;
        slot_ok[i] = storage_get(st, keys.v[i], 0, 0, &slot[i], &e) == 0;
        cost[i] = slot_ok[i] ? repo_key_cost(slot[i].data, slot[i].len) : UINT64_MAX;
        ob_err_clear(&e);
    }
    for (size_t i = 1; i < keys.n; i++) /* insertion sort: a handful of slots */
        for (size_t j = i; j > 0 && cost[order[j]] < cost[order[j - 1]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    free(cost);
    char *damage = NULL; /* the first damaged slot, for the final message */
    for (size_t k = 0; k < keys.n && !opened; k++) {
        size_t i = order[k];
        ob_err e = OB_ERR_INIT;
        /* A slot that could not be read is read again, for its error. */
        const ob_buf *sb = slot_ok[i] ? &slot[i] : &b;
        if ((!slot_ok[i] && storage_get(st, keys.v[i], 0, 0, &b, &e) < 0) ||
            repo_key_name_ok(keys.v[i], sb, &e) < 0 ||
            repo_key_unwrap(sb->data, sb->len, password, master, r->id, &e) < 0) {
            if (e.code != OB_EAUTH) {
                ob_warn("key slot %s: %s", keys.v[i], ob_err_msg(&e));
                if (!damage)
                    damage = ob_xasprintf("key slot %s: %s", keys.v[i], ob_err_msg(&e));
                corrupt++;
            }
            ob_err_clear(&e);
            continue;
        }
        /* A slot that opens must also open this repository's config: a
         * slot copied from another repository with the same password
         * does not, and the next slot may. */
        repo_set_master(r, master);
        ob_wipe(master, sizeof master);
        ob_err_clear(&cfg_err);
        if (repo_get_object(r, "config", REPO_OBJ_CONFIG, &cfg, &cfg_err) < 0 ||
            config_decode(r, cfg.data, cfg.len, &cfg_err) < 0) {
            if (cfg_err.code != OB_ECORRUPT)
                break; /* storage trouble: report it */
            foreign++;
            continue;
        }
        const char *base = strrchr(keys.v[i], '/');
        r->key_id = ob_xstrdup(base ? base + 1 : keys.v[i]);
        opened = 1;
    }
    ob_buf_free(&b);
    ob_buf_free(&cfg);
    for (size_t i = 0; i < keys.n; i++)
        ob_buf_free(&slot[i]);
    free(slot);
    free(slot_ok);
    size_t nkeys = keys.n;
    free(order);
    name_list_free(&keys);
    if (!opened) {
        repo_close(r);
        if (cfg_err.code != OB_OK && cfg_err.code != OB_ECORRUPT) {
            ob_err_move(err, &cfg_err);
            return ob_err_prefix(err, "reading repository config");
        }
        if (foreign && cfg_err.code == OB_ECORRUPT && (size_t)foreign == nkeys - (size_t)corrupt) {
            int rc = ob_err_set(err, OB_ECORRUPT,
                                "the password opens a key slot of %s, but not its config: the "
                                "config is damaged or the slot belongs to another repository (%s)",
                                st->url, ob_err_msg(&cfg_err));
            ob_err_clear(&cfg_err);
            return rc;
        }
        ob_err_clear(&cfg_err);
        int rc;
        if (corrupt == (int)nkeys)
            rc = ob_err_set(err, OB_ECORRUPT,
                            "no key slot of %s could be read (%s); open it with another "
                            "password's slot or `key recover` from escrow shares",
                            st->url, damage);
        else
            rc = ob_err_set(err, OB_EAUTH,
                            "wrong password%s%s: none of the %zu key slot(s) of %s opens with it",
                            damage ? "; also damaged: " : "", damage ? damage : "", nkeys,
                            st->url);
        free(damage);
        return rc;
    }
    free(damage);
    ob_err_clear(&cfg_err);
    *out = r;
    return 0;
}

typedef struct sample_ids {
    uint8_t id[4][OB_ID_LEN];
    int type[4];
    int n;
} sample_ids;

static int sample_blob(const index_entry *e, void *ud)
{
    sample_ids *s = ud;
    memcpy(s->id[s->n], e->id, OB_ID_LEN);
    s->type[s->n] = (int)INDEX_TYPE(e->meta);
    return ++s->n == 4;
}

/* The config proves only the encryption half of a master key.  The MAC
 * half is proved by reading a stored blob: repo_read_blob recomputes its
 * ID with it.  One good blob of the first four is enough (a damaged pack
 * must not block a recovery); a repository with no blobs has nothing the
 * MAC key could disagree with. */
static int verify_mac_key(repo *r, ob_err *err)
{
    if (repo_load_index(r, err) < 0)
        return ob_err_prefix(err, "loading the index to verify the key");
    sample_ids s = {.n = 0};
    repo_index_foreach(r->index, sample_blob, &s);
    if (s.n == 0)
        return 0;
    ob_buf b = OB_BUF_INIT;
    ob_err last = OB_ERR_INIT;
    int ok = 0;
    for (int i = 0; i < s.n && !ok; i++) {
        ob_err_clear(&last);
        ok = repo_read_blob(r, s.id[i], s.type[i], &b, &last) == 0;
    }
    ob_wipe(b.data, b.len);
    ob_buf_free(&b);
    if (ok)
        return 0;
    int rc = ob_err_set(err, OB_EAUTH,
                        "the key opens the config of %s but does not verify its stored data: it "
                        "is not this repository's master key (%s)",
                        r->st->url, ob_err_msg(&last));
    ob_err_clear(&last);
    return rc;
}

int repo_open_with_master_key(storage *st, const uint8_t master[64], repo **out, ob_err *err)
{
    *out = NULL;
    repo *r = repo_alloc(st);
    repo_set_master(r, master);
    ob_buf cfg = OB_BUF_INIT;
    ob_err e = OB_ERR_INIT;
    int rc = -1;
    if (repo_get_object(r, "config", REPO_OBJ_CONFIG, &cfg, &e) < 0) {
        if (e.code == OB_ECORRUPT) {
            /* A failed tag: with the right key the config would open. */
            ob_err_set(err, OB_EAUTH,
                       "the key does not open the config of %s: it is not this repository's "
                       "master key (or the config is damaged: %s)",
                       st->url, ob_err_msg(&e));
            ob_err_clear(&e);
        } else {
            ob_err_move(err, &e);
            ob_err_prefix(err, "reading repository config");
        }
        goto out;
    }
    /* The config names its repository; with no key slot to take the ID
     * from, it is the authority (it is authenticated by the key). */
    json_t *o = json_loadb((const char *)cfg.data, cfg.len, 0, NULL);
    const char *id = o ? json_string_value(json_object_get(o, "id")) : NULL;
    if (!id || strlen(id) != OB_HEX_ID_LEN) {
        json_decref(o);
        ob_err_set(err, OB_ECORRUPT, "repository config of %s has no valid id", st->url);
        goto out;
    }
    memcpy(r->id, id, OB_HEX_ID_LEN + 1);
    json_decref(o);
    if (config_decode(r, cfg.data, cfg.len, err) < 0 || verify_mac_key(r, err) < 0)
        goto out;
    *out = r;
    r = NULL;
    rc = 0;
out:
    ob_buf_free(&cfg);
    repo_close(r);
    return rc;
}

void repo_close(repo *r)
{
    if (!r)
        return;
    ob_wipe(r->enc_key, sizeof r->enc_key);
    ob_wipe(r->mac_key, sizeof r->mac_key);
    ob_wipe(r->tree_mac_key, sizeof r->tree_mac_key);
    pthread_mutex_destroy(&r->index_mu);
    pthread_mutex_destroy(&r->window_mu);
    pthread_cond_destroy(&r->window_cv);
    for (size_t i = 0; i < sizeof r->windows / sizeof r->windows[0]; i++)
        ob_buf_free(&r->windows[i].data);
    chunker_free(r->chunkers[0]);
    chunker_free(r->chunkers[1]);
    repo_index_free(r->index);
    free(r->key_id);
    free(r);
}

/* ---- index and blobs ------------------------------------------------- */

static int load_index_locked(repo *r, ob_err *err);

int repo_load_index(repo *r, ob_err *err)
{
    pthread_mutex_lock(&r->index_mu);
    int rc = r->index ? 0 : load_index_locked(r, err);
    pthread_mutex_unlock(&r->index_mu);
    return rc;
}

static int load_index_locked(repo *r, ob_err *err)
{
    name_list names = {0};
    if (storage_list(r->st, "index/", name_list_add, &names, err) < 0)
        return ob_err_prefix(err, "listing index files");
    repo_index *ix = repo_index_new();
    ob_buf b = OB_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        if (repo_get_object(r, names.v[i], REPO_OBJ_INDEX, &b, err) < 0 ||
            repo_index_decode(ix, b.data, b.len, err) < 0) {
            ob_err_prefix(err,
                          "index file %s is damaged (run `opsbackup check`; `opsbackup repair "
                          "index` rebuilds the index from the packs)",
                          names.v[i]);
            rc = -1;
        }
    }
    ob_buf_free(&b);
    name_list_free(&names);
    if (rc < 0) {
        repo_index_free(ix);
        return -1;
    }
    repo_index_merge(ix);
    r->index = ix;
    return 0;
}

repo_index *repo_get_index(repo *r)
{
    if (!r->index)
        r->index = repo_index_new();
    return r->index;
}

void repo_set_index(repo *r, repo_index *ix)
{
    if (r->index != ix)
        repo_index_free(r->index);
    r->index = ix;
}

/*
 * Read-ahead (remote storages only).  Every blob read is a ranged GET of
 * its pack; over S3 each request costs a round trip and the server's fixed
 * per-request work whatever its size.  Bench E (S3rver on 127.0.0.1,
 * bench/results.md) counted one GET per blob: 3122 serial GETs of ~26 KiB
 * to restore a 511 MiB dump (server busy 22.7 s; restic: 272 GETs, 1.7 s).
 * A stream's chunks sit one after the other in a pack (two packs, with two
 * writer threads), and so do a directory's small files, so a read that
 * continues a recent read of the same pack — starts at most READ_GAP after
 * where it ended, or ends at most READ_GAP before where it started (a
 * depth-first walk reads trees in the reverse of the order they were
 * written) — or that needs a block already held, fetches the READ_BLOCK-
 * aligned blocks it lies in, kept in a few LRU slots, and the next reads
 * come from memory.  Any other read fetches exactly its blob: an
 * unconditional read-ahead around every read was tried first and made
 * things worse where blobs are scattered (the trees of a file backup sit
 * among file data, so a backup's walk of its parent's 417 trees downloaded
 * 353 MiB).
 *
 * Blocks are aligned so that two never overlap: the first version fetched
 * READ_BLOCK bytes from wherever a sequence continued, and a blob that ran
 * past a window's end, a blob of a MiB or more read directly between its
 * neighbours' windows, or two restore threads reading neighbouring files
 * at once, fetched the same bytes again (bench E: a restore of 736 MB of
 * packs downloaded 1.19 GB in 1,600 GETs; now 754 MB in 1,190).  A block being fetched is marked
 * LOADING and a reader that needs it waits for it rather than fetching it a
 * second time; a reader never waits while it holds a reservation itself.
 *
 * What is served is the same ciphertext a direct ranged read returns,
 * authenticated and checked against the blob ID as always, so a damaged
 * pack fails the same way.  A posix storage reads as before (a local pread
 * costs nothing to repeat).  Memory: at most 20 slots x READ_BLOCK.
 */
#define READ_BLOCK ((uint64_t)1 << 20)
#define READ_GAP ((uint64_t)64 << 10)
#define READ_AHEAD_EXTRA 7
enum { WINDOW_EMPTY = 0, WINDOW_LOADING, WINDOW_LOADED };
#define WINDOW_SLOTS (sizeof(((repo *)0)->windows) / sizeof(((repo *)0)->windows[0]))

/* How far blocks of pack p may extend: where its last indexed blob ends
 * (every read here is of an indexed blob, so nothing past it is ever
 * needed), else the pack's size from the small cache, else a stat (one HEAD
 * per pack on S3: 62 of a restore's 472 requests before the index knew);
 * 0 if unknown. */
static uint64_t window_pack_size(repo *r, const index_pack *p, const char *pname)
{
    if (p->end)
        return p->end;
    const uint8_t *pack = p->id;
    uint64_t size = 0;
    const size_t nps = sizeof r->pack_sizes / sizeof r->pack_sizes[0];
    pthread_mutex_lock(&r->window_mu);
    for (size_t i = 0; i < nps && !size; i++)
        if (r->pack_sizes[i].size && memcmp(r->pack_sizes[i].pack, pack, OB_ID_LEN) == 0)
            size = r->pack_sizes[i].size;
    pthread_mutex_unlock(&r->window_mu);
    if (size)
        return size;
    ob_err e = OB_ERR_INIT;
    if (storage_stat(r->st, pname, &size, &e) < 0) {
        ob_err_clear(&e); /* the direct read will report it */
        return 0;
    }
    pthread_mutex_lock(&r->window_mu);
    struct repo_pack_size *ps = &r->pack_sizes[r->pack_sizes_next++ % nps];
    memcpy(ps->pack, pack, OB_ID_LEN);
    ps->size = size;
    pthread_mutex_unlock(&r->window_mu);
    return size;
}

/* Remember a read (called with window_mu held).  A pack keeps at most its
 * last two reads, so that a sequence in one pack is still seen when many
 * reads of other packs come between its steps: a restore reads a
 * directory's tree, then that directory's files, then the next tree, which
 * sits next to the first in a tree pack (writer.c). */
static void window_note_locked(repo *r, const uint8_t pack[OB_ID_LEN], uint64_t offset,
                               uint64_t len)
{
    const size_t nr = sizeof r->recent / sizeof r->recent[0];
    struct repo_recent *oldest = NULL, *oldest_mine = NULL;
    int mine = 0;
    for (size_t i = 0; i < nr; i++) {
        struct repo_recent *rc = &r->recent[i];
        if (rc->end && memcmp(rc->pack, pack, OB_ID_LEN) == 0) {
            mine++;
            if (!oldest_mine || rc->used < oldest_mine->used)
                oldest_mine = rc;
        } else if (!oldest || (oldest->end && (!rc->end || rc->used < oldest->used))) {
            oldest = rc;
        }
    }
    struct repo_recent *rc = mine >= 2 || !oldest ? oldest_mine : oldest;
    memcpy(rc->pack, pack, OB_ID_LEN);
    rc->start = offset;
    rc->end = offset + len;
    rc->used = ++r->window_tick;
}

/* Does [offset, offset + len) continue a recent read of pack (forwards or
 * backwards)?  Called with window_mu held. */
static int window_sequence_locked(const repo *r, const uint8_t pack[OB_ID_LEN], uint64_t offset,
                                  uint64_t len)
{
    const size_t nr = sizeof r->recent / sizeof r->recent[0];
    for (size_t i = 0; i < nr; i++) {
        const struct repo_recent *rc = &r->recent[i];
        if (!rc->end || memcmp(rc->pack, pack, OB_ID_LEN) != 0)
            continue;
        if (offset >= rc->end && offset - rc->end <= READ_GAP)
            return 1;
        if (offset + len <= rc->start && rc->start - (offset + len) <= READ_GAP)
            return 1;
    }
    return 0;
}

/* The slot of block b of pack, loaded or loading, or NULL (window_mu held). */
static struct repo_window *window_find_locked(repo *r, const uint8_t pack[OB_ID_LEN], uint64_t b)
{
    for (size_t i = 0; i < WINDOW_SLOTS; i++) {
        struct repo_window *w = &r->windows[i];
        if (w->state != WINDOW_EMPTY && w->block == b && memcmp(w->pack, pack, OB_ID_LEN) == 0)
            return w;
    }
    return NULL;
}

/* Reserve the least recently used slot that is not loading and not keep for
 * block b of pack (window_mu held); NULL if every slot is busy. */
static struct repo_window *window_reserve_locked(repo *r, const uint8_t pack[OB_ID_LEN],
                                                 uint64_t b, const struct repo_window *keep)
{
    struct repo_window *v = NULL;
    for (size_t i = 0; i < WINDOW_SLOTS; i++) {
        struct repo_window *w = &r->windows[i];
        if (w->state == WINDOW_LOADING || w == keep)
            continue;
        if (!v || w->state == WINDOW_EMPTY || (v->state != WINDOW_EMPTY && w->used < v->used))
            v = w;
        if (v->state == WINDOW_EMPTY)
            break;
    }
    if (v) {
        memcpy(v->pack, pack, OB_ID_LEN);
        v->block = b;
        v->state = WINDOW_LOADING;
        ob_buf_reset(&v->data); /* keeps the allocation for the next block */
    }
    return v;
}

/* Copy [offset, offset + len) out of the loaded blocks w0 and w1 (the same
 * slot when the range lies in one block); -1 if they do not hold it all.
 * Called with window_mu held. */
static int window_copy_locked(repo *r, struct repo_window *w0, struct repo_window *w1,
                              uint64_t offset, uint64_t len, ob_buf *out)
{
    uint64_t s0 = w0->block * READ_BLOCK;
    if (offset < s0 || offset - s0 > w0->data.len)
        return -1;
    uint64_t n0 = s0 + w0->data.len - offset;
    if (n0 > len)
        n0 = len;
    if (n0 < len && (w1 == w0 || w1->block * READ_BLOCK != offset + n0 ||
                     w1->data.len < len - n0))
        return -1;
    ob_buf_reset(out);
    ob_buf_append(out, w0->data.data + (offset - s0), (size_t)n0);
    if (n0 < len)
        ob_buf_append(out, w1->data.data, (size_t)(len - n0));
    w0->used = w1->used = ++r->window_tick;
    return 0;
}

/* A read at offset in block b of pack: if it continues a recent read
 * forwards, blocks two or more before b are behind every reader of this
 * part of the pack (two restore threads read neighbouring files) and are
 * made the first to be reused, before blocks fetched ahead that nobody has
 * read yet.  Restoring 1 GB over S3rver: 241 GETs instead of 267.  (A walk
 * of trees goes backwards; nothing is demoted for it.)  window_mu held. */
static void window_passed_locked(repo *r, const uint8_t pack[OB_ID_LEN], uint64_t offset,
                                 uint64_t b)
{
    int fwd = 0;
    for (size_t i = 0; i < sizeof r->recent / sizeof r->recent[0] && !fwd; i++) {
        const struct repo_recent *rc = &r->recent[i];
        fwd = rc->end && offset >= rc->end && offset - rc->end <= READ_GAP &&
              memcmp(rc->pack, pack, OB_ID_LEN) == 0;
    }
    for (size_t i = 0; fwd && i < WINDOW_SLOTS; i++) {
        struct repo_window *w = &r->windows[i];
        if (w->state == WINDOW_LOADED && w->block + 2 <= b && w->used &&
            memcmp(w->pack, pack, OB_ID_LEN) == 0)
            w->used = 0;
    }
}

/* Bytes [offset, offset + len) of pack pname (p), through the read-ahead.
 * The range lies in blocks b0..b1.  Blocks held are not fetched again; the
 * rest, b0 (or the block after it) to b1 (or the block before it), comes in
 * one ranged get scattered into the slots of the end blocks and straight
 * into out for the blocks between (storage_getv).  Only the two end blocks
 * are kept: they are the ones a neighbouring blob shares, and a blob of
 * several MiB does not evict everything else. */
static int window_get(repo *r, const index_pack *p, const char *pname, uint64_t offset,
                      uint64_t len, ob_buf *out, ob_err *err)
{
    const uint8_t *pack = p->id;
    if (len == 0)
        return storage_get(r->st, pname, offset, len, out, err);
    const uint64_t b0 = offset / READ_BLOCK, b1 = (offset + len - 1) / READ_BLOCK;
    pthread_mutex_lock(&r->window_mu);
    window_passed_locked(r, pack, offset, b0);
    struct repo_window *w0 = window_find_locked(r, pack, b0);
    struct repo_window *w1 = b1 == b0 ? w0 : window_find_locked(r, pack, b1);
    if (b1 - b0 <= 1 && w0 && w1 && w0->state == WINDOW_LOADED &&
        w1->state == WINDOW_LOADED && window_copy_locked(r, w0, w1, offset, len, out) == 0) {
        window_note_locked(r, pack, offset, len);
        pthread_mutex_unlock(&r->window_mu);
        return 0;
    }
    int seq = w0 || w1 || window_sequence_locked(r, pack, offset, len);
    window_note_locked(r, pack, offset, len);
    pthread_mutex_unlock(&r->window_mu);
    uint64_t size = seq ? window_pack_size(r, p, pname) : 0;
    if (offset + len > size) /* not a sequence, or past the end (unknown size) */
        return storage_get(r->st, pname, offset, len, out, err);

    pthread_mutex_lock(&r->window_mu);
    for (;;) {
        w0 = window_find_locked(r, pack, b0);
        w1 = b1 == b0 ? w0 : window_find_locked(r, pack, b1);
        if ((w0 && w0->state == WINDOW_LOADING) || (w1 && w1->state == WINDOW_LOADING)) {
            pthread_cond_wait(&r->window_cv, &r->window_mu); /* another reader fetches it */
            continue;
        }
        if (b1 - b0 <= 1 && w0 && w1) {
            int rc = window_copy_locked(r, w0, w1, offset, len, out);
            pthread_mutex_unlock(&r->window_mu);
            return rc == 0 ? 0 : storage_get(r->st, pname, offset, len, out, err);
        }
        /* Reserve the missing end blocks (never wait while holding one). */
        struct repo_window *m0 = w0 ? NULL : window_reserve_locked(r, pack, b0, w1);
        struct repo_window *m1 = w1 || b1 == b0 ? NULL : window_reserve_locked(r, pack, b1, w0);
        const uint64_t end = offset + len, head_end = end < (b0 + 1) * READ_BLOCK
                                                         ? end
                                                         : (b0 + 1) * READ_BLOCK;
        if ((!w0 && !m0) || (b1 != b0 && !w1 && !m1) ||
            (w0 && w0->data.len < head_end - b0 * READ_BLOCK) ||
            (w1 && b1 != b0 && w1->data.len < end - b1 * READ_BLOCK)) {
            /* every slot busy, or a held block too short (the pack
             * changed size?): read directly */
            if (m0)
                m0->state = WINDOW_EMPTY;
            if (m1)
                m1->state = WINDOW_EMPTY;
            pthread_cond_broadcast(&r->window_cv);
            break;
        }
        uint64_t from = (w0 ? b0 + 1 : b0) * READ_BLOCK;
        uint64_t to = w1 && b1 != b0 ? b1 * READ_BLOCK : (b1 + 1) * READ_BLOCK;
        /* Streaming through the pack (the block before the first one to
         * fetch is held): the same GET brings up to READ_AHEAD_EXTRA
         * blocks after b1 as well, each into a slot of its own. */
        struct repo_window *ex[READ_AHEAD_EXTRA];
        size_t nex = 0;
        if (to == (b1 + 1) * READ_BLOCK && from >= READ_BLOCK &&
            window_find_locked(r, pack, from / READ_BLOCK - 1)) {
            for (uint64_t b = b1 + 1; nex < READ_AHEAD_EXTRA && b * READ_BLOCK < size; b++) {
                if (window_find_locked(r, pack, b))
                    break;
                struct repo_window *x = window_reserve_locked(r, pack, b, w0);
                if (!x)
                    break;
                ex[nex++] = x;
            }
            to = (b1 + 1 + nex) * READ_BLOCK;
        }
        if (to > size)
            to = size;
        /* What the held blocks have of the caller's range is copied now,
         * while they are held; the GET puts block b0 and b1 into their
         * slots, the blocks between straight into out (a blob of several
         * MiB is not kept), and the blocks ahead into theirs: no buffer
         * as large as the GET, no second copy. */
        ob_buf_reset(out);
        ob_buf_reserve(out, (size_t)len);
        if (w0) {
            memcpy(out->data, w0->data.data + (offset - b0 * READ_BLOCK),
                   (size_t)(head_end - offset));
            w0->used = ++r->window_tick;
        }
        if (w1 && b1 != b0) {
            memcpy(out->data + (b1 * READ_BLOCK - offset), w1->data.data,
                   (size_t)(end - b1 * READ_BLOCK));
            w1->used = ++r->window_tick;
        }
        struct iovec iov[3 + READ_AHEAD_EXTRA];
        size_t niov = 0;
        /* m0, the middle, m1 and the blocks ahead: all four can be there
         * (a blob of three blocks or more, neither end held, read after the
         * block before it). */
        struct repo_window *fill[3 + READ_AHEAD_EXTRA];
        size_t nfill = 0;
        if (m0)
            fill[nfill++] = m0;
        if (b1 > b0 + 1)
            fill[nfill++] = NULL; /* the middle: into out */
        if (m1)
            fill[nfill++] = m1;
        for (size_t i = 0; i < nex; i++)
            fill[nfill++] = ex[i];
        for (size_t i = 0; i < nfill; i++) {
            if (!fill[i]) {
                iov[niov++] = (struct iovec){out->data + ((b0 + 1) * READ_BLOCK - offset),
                                             (size_t)((b1 - b0 - 1) * READ_BLOCK)};
                continue;
            }
            uint64_t s0 = fill[i]->block * READ_BLOCK;
            size_t n = (size_t)((s0 + READ_BLOCK < to ? s0 + READ_BLOCK : to) - s0);
            ob_buf_reset(&fill[i]->data);
            ob_buf_reserve(&fill[i]->data, n);
            iov[niov++] = (struct iovec){fill[i]->data.data, n};
        }
        pthread_mutex_unlock(&r->window_mu);
        int rc = storage_getv(r->st, pname, from, iov, niov, err);
        pthread_mutex_lock(&r->window_mu);
        for (size_t i = 0; i < nfill; i++) { /* one iov each, in order */
            struct repo_window *x = fill[i];
            if (!x)
                continue;
            x->data.len = rc == 0 ? iov[i].iov_len : 0;
            x->state = rc == 0 ? WINDOW_LOADED : WINDOW_EMPTY;
            x->used = ++r->window_tick;
        }
        pthread_cond_broadcast(&r->window_cv);
        if (rc < 0) {
            /* The blocks around the range could not be read: perhaps the
             * pack is shorter than the index says (truncated after this
             * blob), which must not fail a blob that is intact.  Read just
             * the range; its error, if any, is about this blob. */
            pthread_mutex_unlock(&r->window_mu);
            ob_err_clear(err);
            return storage_get(r->st, pname, offset, len, out, err);
        }
        if (m0)
            memcpy(out->data, m0->data.data + (offset - b0 * READ_BLOCK),
                   (size_t)(head_end - offset));
        if (m1)
            memcpy(out->data + (b1 * READ_BLOCK - offset), m1->data.data,
                   (size_t)(end - b1 * READ_BLOCK));
        out->len = (size_t)len;
        pthread_mutex_unlock(&r->window_mu);
        return 0;
    }
    pthread_mutex_unlock(&r->window_mu);
    return storage_get(r->st, pname, offset, len, out, err);
}

/* The index entry of blob id, or NULL with err set (repo_read_blob's
 * messages). */
static const index_entry *blob_entry(repo *r, const uint8_t id[OB_ID_LEN], int type,
                                     ob_err *err)
{
    char hex[OB_HEX_ID_LEN + 1];
    if (repo_load_index(r, err) < 0)
        return NULL;
    const index_entry *e = repo_index_lookup(r->index, id);
    const char *fmt = NULL;
    int code = OB_ENOTFOUND;
    if (!e)
        fmt = "blob %.16s is not in any index: the repository is missing data "
              "(run `opsbackup check`)";
    else if (e->pack == INDEX_PACK_PENDING)
        fmt = "blob %.16s is not stored yet";
    if (fmt || (int)INDEX_TYPE(e->meta) != type) {
        ob_hex(id, OB_ID_LEN, hex);
        if (fmt)
            ob_err_set(err, code, fmt, hex);
        else
            ob_err_set(err, OB_ECORRUPT, "blob %.16s has type %u in the index, expected %d",
                       hex, INDEX_TYPE(e->meta), type);
        return NULL;
    }
    return e;
}

/* Bytes [offset, offset + len) of pack p. */
static int pack_range(repo *r, const index_pack *p, const char *pname, uint64_t offset,
                      uint64_t len, ob_buf *out, ob_err *err)
{
    return r->window_on ? window_get(r, p, pname, offset, len, out, err)
                        : storage_get(r->st, pname, offset, len, out, err);
}

static void blob_err_prefix(ob_err *err, const index_entry *e, const char *pname)
{
    char hex[OB_HEX_ID_LEN + 1];
    ob_hex(e->id, OB_ID_LEN, hex);
    ob_err_prefix(err, "blob %.16s in pack %s at offset %u", hex, pname, e->offset);
}

int repo_blob_raw_len(repo *r, const uint8_t id[OB_ID_LEN], int type, uint32_t *raw_len,
                      ob_err *err)
{
    const index_entry *e = blob_entry(r, id, type, err);
    if (!e)
        return -1;
    *raw_len = e->raw_len;
    return 0;
}

int repo_read_blob(repo *r, const uint8_t id[OB_ID_LEN], int type, ob_buf *out, ob_err *err)
{
    const index_entry *e = blob_entry(r, id, type, err);
    if (!e)
        return -1;
    const index_pack *p = repo_index_pack(r->index, e->pack);
    char *pname = pack_object_name(p->id);
    ob_buf ct = OB_BUF_INIT;
    int rc = pack_range(r, p, pname, e->offset, e->length, &ct, err);
    if (rc == 0)
        rc = pack_open_blob(r, p->salt, e, ct.data, ct.len, out, err);
    if (rc < 0)
        blob_err_prefix(err, e, pname);
    ob_buf_free(&ct);
    free(pname);
    return rc;
}

/*
 * A physical restore reads a relation file's blocks in order, and a backup
 * stored them in order, so most of a file's blobs lie back to back in a
 * pack (bench cluster, when blocks were 8 KiB: 85,978 blocks in 18,252 such
 * runs).  Reading each run with one ranged get instead of one per blob
 * saves most of the system calls (a pread, and the fstat of storage_posix's
 * kept descriptor) and, on S3, most of the requests.  Every blob is still opened from its
 * own bytes by pack_open_blob, authenticated and checked against its ID,
 * with the same errors; a run is cut at REPO_RUN_BYTES, at a gap or at
 * another pack.
 */
#define REPO_RUN_BLOBS 256

int repo_read_blobs(repo *r, const uint8_t *const ids[], size_t n, int type, ob_buf *ct,
                    ob_buf *out, repo_blob_fn fn, void *ud, ob_err *err)
{
    int rc = 0;
    size_t i = 0;
    while (rc == 0 && i < n) {
        const index_entry *first = blob_entry(r, ids[i], type, err);
        if (!first) {
            rc = -1;
            break;
        }
        /* The run: ids[i..k) back to back in first's pack.  A blob that is
         * not found ends the run; reading it alone reports it. */
        const index_entry *run[REPO_RUN_BLOBS];
        run[0] = first;
        size_t k = i + 1;
        uint64_t end = (uint64_t)first->offset + first->length;
        while (k < n && k - i < REPO_RUN_BLOBS) {
            ob_err ignore = OB_ERR_INIT;
            const index_entry *e = blob_entry(r, ids[k], type, &ignore);
            ob_err_clear(&ignore);
            if (!e || e->pack != first->pack || e->offset != end ||
                end + e->length - first->offset > REPO_RUN_BYTES)
                break;
            end += e->length;
            run[k++ - i] = e;
        }
        const index_pack *p = repo_index_pack(r->index, first->pack);
        char *pname = pack_object_name(p->id);
        int got = pack_range(r, p, pname, first->offset, end - first->offset, ct, err);
        if (got < 0 && k - i > 1) {
            /* A damaged (say truncated) pack: read this blob alone, so that
             * the error names the blob it is about and the blobs before it
             * still come through, as with repo_read_blob. */
            ob_err_clear(err);
            k = i + 1;
            got = pack_range(r, p, pname, first->offset, first->length, ct, err);
        }
        if (got < 0) {
            blob_err_prefix(err, first, pname);
            rc = -1;
        }
        for (size_t j = i; rc == 0 && i < k; i++) {
            const index_entry *e = run[i - j];
            if (pack_open_blob(r, p->salt, e, ct->data + (e->offset - first->offset),
                               e->length, out, err) < 0) {
                blob_err_prefix(err, e, pname);
                rc = -1;
            } else if (fn(ud, i, out->data, out->len, err) < 0) {
                rc = -2;
            }
        }
        free(pname);
    }
    return rc;
}
