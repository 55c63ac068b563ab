#include "repo/treeio.h"

int treeio_load(repo *r, const uint8_t id[OB_ID_LEN], tree *out, ob_err *err)
{
    ob_buf b = OB_BUF_INIT;
    tree_free(out);
    tree_init(out);
    int rc = repo_read_blob(r, id, REPO_BLOB_TREE, &b, err);
    if (rc == 0)
        rc = tree_decode(b.data, b.len, out, err);
    if (rc < 0) {
        char hex[OB_HEX_ID_LEN + 1];
        ob_hex(id, OB_ID_LEN, hex);
        ob_err_prefix(err, "tree %.16s", hex);
    }
    ob_buf_free(&b);
    return rc;
}

int treeio_save(repo_writer *w, tree *t, uint8_t id[OB_ID_LEN], ob_err *err)
{
    ob_buf b = OB_BUF_INIT;
    tree_sort(t);
    tree_encode(t, &b);
    int rc = repo_writer_add(w, REPO_BLOB_TREE, b.data, b.len, id, NULL, err);
    ob_buf_free(&b);
    return rc;
}
