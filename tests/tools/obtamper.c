/*
 * obtamper.c — rewrite a db snapshot with a wrong recorded row count, for
 * the integration test of `verify db` (test_db_verify.sh).
 *
 *   obtamper REPO PASSWORD_FILE SNAPSHOT TABLE DELTA
 *
 * Opens REPO with the password in PASSWORD_FILE (first line), loads
 * SNAPSHOT (a full ID, a unique prefix or "latest"), adds DELTA to
 * extra["tables"][TABLE], saves the result as a new snapshot (which gets a
 * new ID, the hash of its bytes), deletes the original snapshot object
 * "snapshots/<old id>" and prints the new ID on stdout.
 *
 *   obtamper REPO PASSWORD_FILE SNAPSHOT extra KEY STRING
 *
 * The same, setting extra[KEY] to the string STRING instead (a recorded
 * locale the restoring server lacks, for test_db_restore_edges.sh).
 *
 *   obtamper REPO PASSWORD_FILE tree SNAPSHOT
 *
 * Prints where SNAPSHOT's root tree blob is stored, "PACK OFFSET LENGTH"
 * (the pack's object name, the byte offset and sealed length of the blob
 * in it), so test_corruption.sh can damage exactly that tree.
 *
 * Exit status: 0 success, 1 failure, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "repo/index.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "repo/snapshot.h"
#include "storage/storage.h"
#include "tool_password.h"

static void usage(void)
{
    fprintf(stderr, "usage: obtamper REPO PASSWORD_FILE SNAPSHOT TABLE DELTA\n"
                    "       obtamper REPO PASSWORD_FILE SNAPSHOT extra KEY STRING\n"
                    "       obtamper REPO PASSWORD_FILE tree SNAPSHOT\n");
}

static int locate_tree(repo *r, const char *ref, ob_err *err)
{
    snapshot *s = NULL;
    if (snapshot_find(r, ref, NULL, NULL, &s, err) < 0 || repo_load_index(r, err) < 0) {
        snapshot_free(s);
        return -1;
    }
    const index_entry *e = repo_index_lookup(repo_get_index(r), s->tree);
    snapshot_free(s);
    if (!e)
        return ob_err_set(err, OB_ENOTFOUND, "the root tree is not in the index");
    char *name = pack_object_name(repo_index_pack(repo_get_index(r), e->pack)->id);
    printf("%s %u %u\n", name, e->offset, e->length);
    free(name);
    return 0;
}

/* Change snapshot ref: with key, extra[key] = value; else add delta to
 * extra["tables"][table].  Saved as a new snapshot; the old one goes. */
static int tamper(repo *r, const char *ref, const char *table, long long delta,
                  const char *key, const char *value, ob_err *err)
{
    snapshot *s = NULL;
    if (snapshot_find(r, ref, NULL, NULL, &s, err) < 0)
        return -1;
    char old_id[OB_HEX_ID_LEN + 1];
    memcpy(old_id, s->id, sizeof old_id);

    if (key) {
        if (!s->extra || json_object_set_new(s->extra, key, json_string(value)) < 0) {
            snapshot_free(s);
            return ob_err_set(err, OB_EFAIL, "cannot set extra.%s of snapshot %.8s", key,
                              old_id);
        }
    } else {
        json_t *tables = s->extra ? json_object_get(s->extra, "tables") : NULL;
        json_t *count = json_is_object(tables) ? json_object_get(tables, table) : NULL;
        if (!json_is_integer(count)) {
            snapshot_free(s);
            return ob_err_set(err, OB_ENOTFOUND,
                              "snapshot %.8s records no row count for table %s", old_id, table);
        }
        json_int_t n = json_integer_value(count) + (json_int_t)delta;
        if (json_object_set_new(tables, table, json_integer(n)) < 0) {
            snapshot_free(s);
            return ob_err_set(err, OB_EFAIL, "cannot update the row count of %s", table);
        }
    }
    if (snapshot_save(r, s, err) < 0) {
        snapshot_free(s);
        return -1;
    }
    if (strcmp(s->id, old_id) == 0) {
        snapshot_free(s);
        return ob_err_set(err, OB_EFAIL, "the rewritten snapshot has the same ID (delta 0?)");
    }
    char name[sizeof "snapshots/" + OB_HEX_ID_LEN];
    snprintf(name, sizeof name, "snapshots/%s", old_id);
    if (storage_delete(repo_storage(r), name, err) < 0) {
        snapshot_free(s);
        return ob_err_prefix(err, "deleting %s", name);
    }
    printf("%s\n", s->id);
    snapshot_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    int tree_mode = argc == 5 && strcmp(argv[3], "tree") == 0;
    int extra_mode = argc == 7 && strcmp(argv[4], "extra") == 0;
    if (argc != 6 && !tree_mode && !extra_mode) {
        usage();
        return 2;
    }
    const char *url = argv[1], *pwfile = argv[2], *ref = argv[3], *table = argv[4];
    char *end = NULL;
    errno = 0;
    long long delta = tree_mode || extra_mode ? 0 : strtoll(argv[5], &end, 10);
    if (!tree_mode && !extra_mode && (errno || end == argv[5] || *end)) {
        usage();
        return 2;
    }
    char *pw = tool_read_password(pwfile);
    if (!pw) {
        fprintf(stderr, "obtamper: cannot read a password from %s\n", pwfile);
        return 1;
    }
    ob_err err = OB_ERR_INIT;
    storage *st = NULL;
    repo *r = NULL;
    int rc = 0;
    if (storage_open(url, 0, &st, &err) < 0 || repo_open(st, pw, &r, &err) < 0)
        rc = -1;
    else if (tree_mode)
        rc = locate_tree(r, argv[4], &err);
    else
        rc = tamper(r, ref, table, delta, extra_mode ? argv[5] : NULL,
                    extra_mode ? argv[6] : NULL, &err);
    free(pw);
    if (r)
        repo_close(r);
    if (st)
        storage_close(st);
    if (rc < 0) {
        fprintf(stderr, "obtamper: %s\n", ob_err_msg(&err));
        int code = err.code == OB_EUSAGE ? 2 : 1;
        ob_err_clear(&err);
        return code;
    }
    return 0;
}
