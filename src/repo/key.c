/*
 * key.c — key slots: the master key wrapped by passphrase-derived keys.
 *
 * A key slot is a small plaintext JSON object under keys/.  It holds the
 * scrypt parameters and salt, and the 64-byte master key sealed with
 * AES-256-GCM under scrypt(password, salt).  Because each wrap uses a fresh
 * random salt, each wrapping key is used exactly once and the nonce can be
 * fixed.  The repository ID is authenticated as AAD so a slot copied from
 * another repository does not open this one.
 */
#include <jansson.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "repo/repo_internal.h"

static const char key_aad_label[] = "opsbackup-v1 key slot";

static void kdf_aad(const char *repo_id, ob_buf *aad)
{
    ob_buf_append(aad, key_aad_label, sizeof key_aad_label);
    ob_buf_append(aad, repo_id, strlen(repo_id));
}


int repo_key_wrap(const char *repo_id, const uint8_t master[REPO_MASTER_LEN],
                  const char *password, const repo_kdf_params *kdf, ob_buf *json_out,
                  ob_err *err)
{
    uint8_t salt[32], wrap[OB_KEY_LEN], nonce[OB_NONCE_LEN] = {0};
    uint8_t sealed[REPO_MASTER_LEN + OB_TAG_LEN];
    char salt_hex[65], sealed_hex[2 * sizeof sealed + 1];
    if (ob_random(salt, sizeof salt, err) < 0)
        return -1;
    if (ob_scrypt(password, strlen(password), salt, sizeof salt, kdf->n, kdf->r, kdf->p, wrap,
                  sizeof wrap, err) < 0)
        return -1;
    ob_buf aad = OB_BUF_INIT;
    kdf_aad(repo_id, &aad);
    int rc = ob_aead_seal(wrap, nonce, aad.data, aad.len, master, REPO_MASTER_LEN, sealed, err);
    ob_buf_free(&aad);
    ob_wipe(wrap, sizeof wrap);
    if (rc < 0)
        return -1;
    ob_hex(salt, sizeof salt, salt_hex);
    ob_hex(sealed, sizeof sealed, sealed_hex);

    char *host = ob_hostname(), *user = ob_username();
    int64_t now;
    ob_time_now(&now, NULL);
    char *created = ob_time_rfc3339(now, 0);
    json_t *o = json_pack("{s:i, s:s, s:s, s:I, s:i, s:i, s:s, s:s, s:s, s:s, s:s}", "version",
                          REPO_FORMAT_VERSION, "repository", repo_id, "kdf", "scrypt", "n",
                          (json_int_t)kdf->n, "r", (int)kdf->r, "p", (int)kdf->p, "salt",
                          salt_hex, "master", sealed_hex, "created", created, "host", host,
                          "user", user);
    free(created);
    free(host);
    free(user);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!s)
        return ob_err_set(err, OB_EFAIL, "cannot encode key slot");
    ob_buf_reset(json_out);
    ob_buf_append(json_out, s, strlen(s));
    ob_buf_putc(json_out, '\n');
    free(s);
    return 0;
}

uint64_t repo_key_cost(const uint8_t *json, size_t len)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)json, len, 0, &je);
    json_int_t n = json_integer_value(json_object_get(o, "n"));
    json_int_t r = json_integer_value(json_object_get(o, "r"));
    json_int_t p = json_integer_value(json_object_get(o, "p"));
    json_decref(o);
    if (n <= 0 || r <= 0 || p <= 0 || n > (1 << 20) || r > 64 || p > 64)
        return UINT64_MAX; /* unwrap will say what is wrong with it */
    return (uint64_t)n * (uint64_t)r * (uint64_t)p;
}

int repo_key_unwrap(const uint8_t *json, size_t len, const char *password,
                    uint8_t master[REPO_MASTER_LEN], char repo_id[OB_HEX_ID_LEN + 1],
                    ob_err *err)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)json, len, 0, &jerr);
    if (!o)
        return ob_err_set(err, OB_ECORRUPT, "key slot is not valid JSON (%s)", jerr.text);
    const char *rid = NULL, *kdfname = NULL, *salt_hex = NULL, *sealed_hex = NULL;
    json_int_t n = 0, r = 0, p = 0, version = 0;
    int rc = -1;
    if (json_unpack(o, "{s:I, s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "version", &version,
                    "repository", &rid, "kdf", &kdfname, "n", &n, "r", &r, "p", &p, "salt",
                    &salt_hex, "master", &sealed_hex) != 0) {
        ob_err_set(err, OB_ECORRUPT, "key slot lacks required fields");
        goto out;
    }
    uint8_t salt[32], sealed[REPO_MASTER_LEN + OB_TAG_LEN];
    if (version != REPO_FORMAT_VERSION || strcmp(kdfname, "scrypt") != 0 ||
        strlen(rid) != OB_HEX_ID_LEN || ob_unhex(salt_hex, salt, sizeof salt) < 0 ||
        ob_unhex(sealed_hex, sealed, sizeof sealed) < 0) {
        ob_err_set(err, OB_ECORRUPT, "key slot has an unsupported version or bad encoding");
        goto out;
    }
    /* Refuse parameters a hostile slot could use to exhaust memory or time
     * on every open: at most 1 GiB (128 * N * r), p <= 16, and no more
     * passes in all (N * p) than N = 2^20 with p = 4. */
    if (n < 2 || (n & (n - 1)) || n > (1 << 20) || r < 1 || r > 8 || p < 1 || p > 16 ||
        (uint64_t)n * (uint64_t)p > ((uint64_t)4 << 20)) {
        ob_err_set(err, OB_ECORRUPT, "key slot has out-of-range scrypt parameters");
        goto out;
    }
    uint8_t wrap[OB_KEY_LEN], nonce[OB_NONCE_LEN] = {0};
    if (ob_scrypt(password, strlen(password), salt, sizeof salt, (uint64_t)n, (uint32_t)r,
                  (uint32_t)p, wrap, sizeof wrap, err) < 0)
        goto out;
    ob_buf aad = OB_BUF_INIT;
    kdf_aad(rid, &aad);
    ob_err e2 = OB_ERR_INIT;
    rc = ob_aead_open(wrap, nonce, aad.data, aad.len, sealed, sizeof sealed, master, &e2);
    ob_buf_free(&aad);
    ob_wipe(wrap, sizeof wrap);
    if (rc < 0) {
        ob_err_clear(&e2);
        ob_err_set(err, OB_EAUTH, "wrong password for this key slot");
        goto out;
    }
    memcpy(repo_id, rid, OB_HEX_ID_LEN + 1);
    rc = 0;
out:
    json_decref(o);
    return rc;
}

int repo_key_store(storage *st, const ob_buf *json, char **id_out, ob_err *err)
{
    uint8_t h[OB_ID_LEN];
    char hex[OB_HEX_ID_LEN + 1];
    ob_sha256(json->data, json->len, h);
    ob_hex(h, sizeof h, hex);
    char *name = ob_xasprintf("keys/%s", hex);
    int rc = storage_put(st, name, json->data, json->len, STORAGE_PUT_CREATE, err);
    free(name);
    if (rc < 0)
        return ob_err_prefix(err, "storing key slot");
    if (id_out)
        *id_out = ob_xstrdup(hex);
    return 0;
}

typedef struct key_names {
    char **v;
    size_t n, cap;
} key_names;

static int collect_name(const char *name, uint64_t size, void *ud)
{
    (void)size;
    key_names *k = ud;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 8;
        k->v = ob_xrealloc(k->v, k->cap * sizeof *k->v);
    }
    k->v[k->n++] = ob_xstrdup(name);
    return 0;
}

static void key_names_free(key_names *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
}

int repo_key_list(repo *r, repo_key_info **out, size_t *nout, ob_err *err)
{
    key_names names = {0};
    *out = NULL;
    *nout = 0;
    if (storage_list(r->st, "keys/", collect_name, &names, err) < 0)
        return -1;
    repo_key_info *v = ob_xcalloc(names.n, sizeof *v);
    size_t n = 0;
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < names.n; i++) {
        ob_err e = OB_ERR_INIT;
        if (storage_get(r->st, names.v[i], 0, 0, &b, &e) < 0) {
            ob_warn("%s", ob_err_msg(&e));
            ob_err_clear(&e);
            continue;
        }
        json_t *o = json_loadb((const char *)b.data, b.len, 0, NULL);
        const char *created = "", *host = "", *user = "";
        json_int_t kn = 0, kr = 0, kp = 0;
        if (o) {
            json_unpack(o, "{s?:s, s?:s, s?:s}", "created", &created, "host", &host, "user",
                        &user);
            if (json_unpack(o, "{s:I, s:I, s:I}", "n", &kn, "r", &kr, "p", &kp) < 0 || kn < 0 ||
                kr < 0 || kr > UINT32_MAX || kp < 0 || kp > UINT32_MAX)
                kn = kr = kp = 0;
        }
        v[n].kdf.n = (uint64_t)kn;
        v[n].kdf.r = (uint32_t)kr;
        v[n].kdf.p = (uint32_t)kp;
        const char *base = strrchr(names.v[i], '/');
        v[n].id = ob_xstrdup(base ? base + 1 : names.v[i]);
        v[n].created = ob_xstrdup(created);
        v[n].host = ob_xstrdup(host);
        v[n].user = ob_xstrdup(user);
        v[n].current = r->key_id && strcmp(v[n].id, r->key_id) == 0;
        n++;
        json_decref(o);
    }
    ob_buf_free(&b);
    key_names_free(&names);
    *out = v;
    *nout = n;
    return 0;
}

void repo_key_info_free(repo_key_info *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(k[i].id);
        free(k[i].created);
        free(k[i].host);
        free(k[i].user);
    }
    free(k);
}

int repo_key_add(repo *r, const char *password, const repo_kdf_params *kdf, char **id_out,
                 ob_err *err)
{
    uint8_t master[REPO_MASTER_LEN];
    repo_master_key(r, master);
    ob_buf json = OB_BUF_INIT;
    int rc = repo_key_wrap(r->id, master, password, kdf, &json, err);
    ob_wipe(master, sizeof master);
    if (rc == 0)
        rc = repo_key_store(r->st, &json, id_out, err);
    ob_buf_free(&json);
    return rc;
}

int repo_key_remove(repo *r, const char *prefix, ob_err *err)
{
    repo_key_info *keys;
    size_t n;
    if (repo_key_list(r, &keys, &n, err) < 0)
        return -1;
    int rc = -1;
    size_t match = n, hits = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(keys[i].id, prefix, strlen(prefix)) == 0) {
            match = i;
            hits++;
        }
    if (hits == 0)
        ob_err_set(err, OB_ENOTFOUND, "no key slot with ID %s (see `opsbackup key list`)",
                   prefix);
    else if (hits > 1)
        ob_err_set(err, OB_EUSAGE, "key ID prefix %s is ambiguous; give more digits", prefix);
    else if (keys[match].current)
        ob_err_set(err, OB_EUSAGE,
                   "refusing to remove key slot %s: it is the one this command opened the "
                   "repository with; use another password to remove it",
                   keys[match].id);
    else if (n < 2)
        ob_err_set(err, OB_EUSAGE, "refusing to remove the last key slot");
    else {
        char *name = ob_xasprintf("keys/%s", keys[match].id);
        rc = storage_delete(r->st, name, err);
        free(name);
    }
    repo_key_info_free(keys, n);
    return rc;
}

int repo_key_slot_repository(storage *st, char id[OB_HEX_ID_LEN + 1], ob_err *err)
{
    key_names names = {0};
    if (storage_list(st, "keys/", collect_name, &names, err) < 0)
        return ob_err_prefix(err, "listing key slots");
    ob_buf b = OB_BUF_INIT;
    int found = 0;
    for (size_t i = 0; i < names.n && !found; i++) {
        ob_err e = OB_ERR_INIT;
        if (storage_get(st, names.v[i], 0, 0, &b, &e) < 0) {
            ob_err_clear(&e);
            continue;
        }
        json_t *o = json_loadb((const char *)b.data, b.len, 0, NULL);
        const char *rid = o ? json_string_value(json_object_get(o, "repository")) : NULL;
        uint8_t raw[OB_ID_LEN];
        if (rid && strlen(rid) == OB_HEX_ID_LEN && ob_unhex(rid, raw, sizeof raw) == 0) {
            memcpy(id, rid, OB_HEX_ID_LEN + 1);
            found = 1;
        }
        json_decref(o);
    }
    ob_buf_free(&b);
    key_names_free(&names);
    if (!found)
        return ob_err_set(err, OB_ENOTFOUND, "%s has no readable key slot", st->url);
    return 0;
}
