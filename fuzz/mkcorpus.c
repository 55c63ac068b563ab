/*
 * mkcorpus.c — write seed inputs for the fuzz targets from a real
 * repository: the plaintext inside its sealed objects, in the input layout
 * each target expects (see the comment at the top of each fuzz_*.c).
 *
 *   build-fuzz/fuzz/mkcorpus REPO PASSWORD_FILE OUTDIR
 *
 * Writes OUTDIR/TARGET/real-*.  Used once to make fuzz/corpus/ (the
 * repository came from `opsbackup init --kdf-n 1024`, a small file and
 * config backup and two archive-push calls; see docs/RELIABILITY.md).
 * Not a test: it trusts the repository it reads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/compress.h"
#include "repo/escrow.h"
#include "repo/pack.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "storage/storage.h"

static const char *outdir;
static int counter;

static void emit(const char *target, int prefix, const char *head, const void *p, size_t n)
{
    char *dir = ob_xasprintf("%s/%s", outdir, target);
    mkdir(dir, 0755);
    char *path = ob_xasprintf("%s/real-%03d", dir, counter++);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (prefix >= 0)
        fputc(prefix, f);
    if (head)
        fputs(head, f);
    fwrite(p, 1, n, f);
    fclose(f);
    free(path);
    free(dir);
}

static void die(const char *what, ob_err *err)
{
    fprintf(stderr, "mkcorpus: %s: %s\n", what, ob_err_msg(err));
    exit(1);
}

static void dump_tree(repo *r, const uint8_t id[OB_ID_LEN], int depth)
{
    ob_buf b = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    if (repo_read_blob(r, id, REPO_BLOB_TREE, &b, &err) < 0)
        die("tree", &err);
    emit("tree", -1, NULL, b.data, b.len);
    tree t;
    if (tree_decode(b.data, b.len, &t, &err) < 0)
        die("tree decode", &err);
    for (size_t i = 0; i < t.n && depth < 8; i++)
        if (t.nodes[i].type == TREE_DIR)
            dump_tree(r, t.nodes[i].subtree, depth + 1);
    tree_free(&t);
    ob_buf_free(&b);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mkcorpus REPO PASSWORD_FILE OUTDIR\n");
        return 2;
    }
    outdir = argv[3];
    mkdir(outdir, 0755);
    char pw[256] = "";
    FILE *pf = fopen(argv[2], "r");
    if (!pf || !fgets(pw, sizeof pw, pf))
        return perror(argv[2]), 1;
    fclose(pf);
    pw[strcspn(pw, "\r\n")] = 0;
    ob_err err = OB_ERR_INIT;
    storage *st;
    repo *r;
    if (storage_open(argv[1], 0, &st, &err) < 0 || repo_open(st, pw, &r, &err) < 0)
        die("open", &err);
    storage_names names = {0};
    if (storage_list(st, "", storage_names_collect, &names, &err) < 0)
        die("list", &err);
    ob_buf raw = OB_BUF_INIT, plain = OB_BUF_INIT;
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i];
        if (storage_get(st, name, 0, 0, &raw, &err) < 0)
            die(name, &err);
        if (strncmp(name, "keys/", 5) == 0) {
            emit("keyslot", -1, NULL, raw.data, raw.len);
        } else if (strcmp(name, "config") == 0) {
            emit("object", 0, NULL, raw.data, raw.len);
            if (repo_open_object(r, REPO_OBJ_CONFIG, raw.data, raw.len, &plain, &err) < 0)
                die(name, &err);
            emit("object", 1, NULL, plain.data, plain.len);
        } else if (strncmp(name, "index/", 6) == 0) {
            if (repo_open_object(r, REPO_OBJ_INDEX, raw.data, raw.len, &plain, &err) < 0)
                die(name, &err);
            emit("index", -1, NULL, plain.data, plain.len);
        } else if (strncmp(name, "snapshots/", 10) == 0) {
            emit("object", 0, NULL, raw.data, raw.len);
            if (repo_open_object(r, REPO_OBJ_SNAPSHOT, raw.data, raw.len, &plain, &err) < 0)
                die(name, &err);
            emit("snapshot", -1, NULL, plain.data, plain.len);
            snapshot *s;
            if (snapshot_load(r, name + 10, &s, &err) < 0)
                die(name, &err);
            dump_tree(r, s->tree, 0);
            snapshot_free(s);
        } else if (strncmp(name, "wal/", 4) == 0) {
            if (repo_open_object(r, REPO_OBJ_WAL, raw.data, raw.len, &plain, &err) < 0)
                die(name, &err);
            char *head = ob_xasprintf("%s\n", name + 4);
            emit("wal", -1, head, plain.data, plain.len);
            free(head);
        } else if (strncmp(name, "data/", 5) == 0) {
            emit("pack", 0, NULL, raw.data, raw.len);
            uint8_t salt[32];
            pack_blob *v;
            size_t n;
            if (pack_read_directory(r, raw.data, raw.len, salt, &v, &n, &err) < 0)
                die(name, &err);
            /* The directory plaintext (FORMAT.md §10.3), rebuilt. */
            ob_buf d = OB_BUF_INIT;
            ob_buf_append(&d, "OBD1", 4);
            ob_buf_put_u32(&d, (uint32_t)n);
            for (size_t k = 0; k < n; k++) {
                ob_buf_append(&d, v[k].id, 32);
                ob_buf_putc(&d, v[k].type);
                ob_buf_putc(&d, v[k].comp);
                ob_buf_put_u32(&d, v[k].offset);
                ob_buf_put_u32(&d, v[k].length);
                ob_buf_put_u32(&d, v[k].raw_len);
            }
            emit("pack", 1, NULL, d.data, d.len);
            ob_buf_free(&d);
            free(v);
        }
    }
    /* Blob payloads for the decompressor: one zstd, one stored. */
    ob_compressor *cz = ob_compressor_new(3);
    const char text[] = "DB_PASSWORD=secret DB_PASSWORD=secret DB_PASSWORD=secret "
                        "DB_PASSWORD=secret DB_PASSWORD=secret";
    ob_buf z = OB_BUF_INIT, blob = OB_BUF_INIT;
    int m = ob_compress(cz, (const uint8_t *)text, sizeof text, &z);
    ob_buf_putc(&blob, (uint8_t)m);
    ob_buf_put_u32(&blob, sizeof text);
    ob_buf_append(&blob, m ? z.data : (const uint8_t *)text, m ? z.len : sizeof text);
    emit("pack", 2, NULL, blob.data, blob.len);
    ob_buf_reset(&blob);
    ob_buf_putc(&blob, 0);
    ob_buf_put_u32(&blob, 5);
    ob_buf_append(&blob, "hello", 5);
    emit("pack", 2, NULL, blob.data, blob.len);
    ob_compressor_free(cz);
    ob_buf_free(&z);
    ob_buf_free(&blob);
    /* Escrow: a real 2-of-3 export, all three lines. */
    uint8_t master[64];
    repo_master_key(r, master);
    char **shares;
    if (escrow_split(master, repo_id(r), 2, 3, &shares, NULL, &err) < 0)
        die("escrow", &err);
    char *lines = ob_xasprintf("%s\n%s\n%s\n", shares[0], shares[1], shares[2]);
    emit("escrow", 0, NULL, lines, strlen(lines));
    emit("escrow", 2, NULL, lines, strlen(lines));
    escrow_free_str(lines);
    escrow_free_strv(shares, 3);
    ob_buf_free(&raw);
    ob_buf_free(&plain);
    storage_names_free(&names);
    repo_close(r);
    storage_close(st);
    return 0;
}
