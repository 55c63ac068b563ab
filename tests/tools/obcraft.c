/*
 * obcraft.c — write hostile snapshots straight into a repository, for the
 * integration tests of restore's safety rules (test_hostile_repo.sh).
 *
 *   obcraft REPO PASSWORD_FILE MODE [ARG]
 *
 * It opens REPO with the password in PASSWORD_FILE (first line) and stores
 * a snapshot whose root tree (the tree restore starts from, directly below
 * --target) holds a crafted entry.  tree_encode does not validate names,
 * so these trees are exactly what a malicious or corrupted repository
 * could contain.  Prints the new snapshot's ID on stdout (one per line
 * when a mode writes several).
 *
 * MODE:
 *   dotdot         a file named ".."
 *   slash          a file named "../../escape"
 *   dot            a file named "."
 *   dup            two files named "twin" (different contents)
 *   nested-dotdot  a directory "sub" holding a directory ".." holding a
 *                  file "escape" (the unsafe name one level down)
 *   abs-symlink ARG   a symlink "link" -> ARG (an absolute directory)
 *   dir-link       a directory "link" holding a file "planted"
 *   abs-symlink-then-dir ARG   both of the above, as two snapshots, the
 *                  symlink one first (two IDs, in that order)
 *   deep N         N directories "d" nested inside each other, a file at
 *                  the bottom (legal, but deep: recursion must not crash)
 *   hardlink-mismatch  files "a", "b" and "c" recorded as one hard-link
 *                  group (same dev and inode, nlink 3); a and b have the
 *                  same content, c other content (an inconsistent tree:
 *                  c must not be linked to a)
 *   ok             a harmless file "ok.txt" (control case)
 *
 * Exit status: 0 success, 1 failure, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "repo/repo.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "repo/treeio.h"
#include "repo/writer.h"
#include "storage/storage.h"
#include "tool_password.h"

static const int64_t FIXED_TIME = 1700000000; /* 2023-11-14, any fixed value */

static void usage(void)
{
    fprintf(stderr,
            "usage: obcraft REPO PASSWORD_FILE MODE [ARG]\n"
            "modes: dotdot slash dot dup nested-dotdot abs-symlink DIR dir-link\n"
            "       abs-symlink-then-dir DIR deep N hardlink-mismatch ok\n");
}

static void node_common(tree_node *n, const char *name, int type, uint32_t mode)
{
    tree_node_set_name(n, name, strlen(name));
    n->type = (uint8_t)type;
    n->mode = mode;
    n->uid = (uint32_t)getuid();
    n->gid = (uint32_t)getgid();
    n->mtime_sec = n->atime_sec = n->ctime_sec = FIXED_TIME;
    n->nlink = 1;
}

/* A regular file node whose content is stored through w. */
static int add_file(repo_writer *w, tree *t, const char *name, const char *content, ob_err *err)
{
    uint8_t id[OB_ID_LEN];
    size_t len = strlen(content);
    if (repo_writer_add(w, REPO_BLOB_DATA, content, len, id, NULL, err) < 0)
        return -1;
    tree_node *n = tree_add(t);
    node_common(n, name, TREE_FILE, 0644);
    n->size = len;
    n->extents = calloc(1, sizeof *n->extents);
    n->nextents = 1;
    n->extents[0].offset = 0;
    n->extents[0].len = (uint32_t)len;
    memcpy(n->extents[0].id, id, OB_ID_LEN);
    return 0;
}

static void add_dir(tree *t, const char *name, const uint8_t subtree[OB_ID_LEN])
{
    tree_node *n = tree_add(t);
    node_common(n, name, TREE_DIR, 0755);
    memcpy(n->subtree, subtree, OB_ID_LEN);
}

static void add_symlink(tree *t, const char *name, const char *target)
{
    tree_node *n = tree_add(t);
    node_common(n, name, TREE_SYMLINK, 0777);
    n->link_len = strlen(target);
    n->link_target = (uint8_t *)strdup(target);
    n->size = n->link_len;
}

/* Store a tree without validating it (treeio_save sorts and encodes). */
static int save_tree(repo_writer *w, tree *t, uint8_t id[OB_ID_LEN], ob_err *err)
{
    return treeio_save(w, t, id, err);
}

/* Build the root tree for one mode. */
static int build(repo_writer *w, const char *mode, const char *arg, uint8_t root[OB_ID_LEN],
                 ob_err *err)
{
    tree t;
    tree_init(&t);
    int rc = 0;
    if (strcmp(mode, "dotdot") == 0) {
        rc = add_file(w, &t, "..", "written through a dot-dot name\n", err);
    } else if (strcmp(mode, "slash") == 0) {
        rc = add_file(w, &t, "../../escape", "escaped through a slash name\n", err);
    } else if (strcmp(mode, "dot") == 0) {
        rc = add_file(w, &t, ".", "written through a dot name\n", err);
    } else if (strcmp(mode, "dup") == 0) {
        rc = add_file(w, &t, "twin", "first twin\n", err);
        if (rc == 0)
            rc = add_file(w, &t, "twin", "second twin, different\n", err);
    } else if (strcmp(mode, "nested-dotdot") == 0) {
        tree inner, mid;
        tree_init(&inner);
        tree_init(&mid);
        uint8_t inner_id[OB_ID_LEN], mid_id[OB_ID_LEN];
        rc = add_file(w, &inner, "escape", "escaped through a nested dot-dot dir\n", err);
        if (rc == 0)
            rc = save_tree(w, &inner, inner_id, err);
        if (rc == 0) {
            add_dir(&mid, "..", inner_id);
            rc = save_tree(w, &mid, mid_id, err);
        }
        if (rc == 0)
            add_dir(&t, "sub", mid_id);
        tree_free(&inner);
        tree_free(&mid);
    } else if (strcmp(mode, "abs-symlink") == 0) {
        add_symlink(&t, "link", arg);
    } else if (strcmp(mode, "dir-link") == 0) {
        tree inner;
        tree_init(&inner);
        uint8_t inner_id[OB_ID_LEN];
        rc = add_file(w, &inner, "planted", "written through a symlink\n", err);
        if (rc == 0)
            rc = save_tree(w, &inner, inner_id, err);
        if (rc == 0)
            add_dir(&t, "link", inner_id);
        tree_free(&inner);
    } else if (strcmp(mode, "deep") == 0) {
        /* ARG directories "d" nested inside each other, a file at the
         * bottom: legal, but deeper than any recursion should go. */
        long depth = strtol(arg, NULL, 10);
        tree level;
        tree_init(&level);
        uint8_t id[OB_ID_LEN];
        rc = add_file(w, &level, "bottom.txt", "the bottom\n", err);
        for (long i = 0; rc == 0 && i < depth; i++) {
            rc = save_tree(w, &level, id, err);
            tree_free(&level);
            tree_init(&level);
            if (rc == 0)
                add_dir(&level, "d", id);
        }
        if (rc == 0) {
            tree_free(&t);
            t = level;
        } else {
            tree_free(&level);
        }
    } else if (strcmp(mode, "hardlink-mismatch") == 0) {
        const char *names[] = {"a", "b", "c"};
        const char *contents[] = {"the group's content\n", "the group's content\n",
                                  "other content, same inode\n"};
        for (int i = 0; rc == 0 && i < 3; i++) {
            rc = add_file(w, &t, names[i], contents[i], err);
            if (rc == 0) {
                tree_node *n = &t.nodes[t.n - 1];
                n->dev = 42;
                n->inode = 4242;
                n->nlink = 3;
            }
        }
    } else if (strcmp(mode, "ok") == 0) {
        rc = add_file(w, &t, "ok.txt", "harmless\n", err);
    } else {
        tree_free(&t);
        return ob_err_set(err, OB_EUSAGE, "unknown mode %s", mode);
    }
    if (rc == 0)
        rc = save_tree(w, &t, root, err);
    tree_free(&t);
    return rc;
}

static int craft(repo *r, const char *mode, const char *arg, ob_err *err)
{
    repo_writer *w = NULL;
    uint8_t root[OB_ID_LEN];
    if (repo_writer_new(r, 1, &w, err) < 0)
        return -1;
    int rc = build(w, mode, arg, root, err);
    if (rc == 0)
        rc = repo_writer_flush(w, err);
    repo_writer_free(w);
    if (rc < 0)
        return -1;
    snapshot *s = snapshot_new("files");
    snapshot_add_path(s, "/crafted");
    snapshot_add_tag(s, "crafted=1");
    char *tag = NULL;
    if (asprintf(&tag, "mode=%s", mode) > 0) {
        snapshot_add_tag(s, tag);
        free(tag);
    }
    memcpy(s->tree, root, OB_ID_LEN);
    rc = snapshot_save(r, s, err);
    if (rc == 0)
        printf("%s\n", s->id);
    snapshot_free(s);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        usage();
        return 2;
    }
    const char *url = argv[1], *pwfile = argv[2], *mode = argv[3];
    const char *arg = argc > 4 ? argv[4] : NULL;
    int needs_arg = strcmp(mode, "abs-symlink") == 0 || strcmp(mode, "abs-symlink-then-dir") == 0 ||
                    strcmp(mode, "deep") == 0;
    if (needs_arg != (arg != NULL)) {
        usage();
        return 2;
    }
    char *pw = tool_read_password(pwfile);
    if (!pw) {
        fprintf(stderr, "obcraft: cannot read a password from %s\n", pwfile);
        return 1;
    }
    ob_err err = OB_ERR_INIT;
    storage *st = NULL;
    repo *r = NULL;
    int rc = 0;
    if (storage_open(url, 0, &st, &err) < 0 || repo_open(st, pw, &r, &err) < 0) {
        rc = -1;
    } else if (strcmp(mode, "abs-symlink-then-dir") == 0) {
        rc = craft(r, "abs-symlink", arg, &err);
        if (rc == 0)
            rc = craft(r, "dir-link", NULL, &err);
    } else {
        rc = craft(r, mode, arg, &err);
    }
    free(pw);
    repo_close(r);
    if (st)
        storage_close(st);
    if (rc < 0) {
        fprintf(stderr, "obcraft: %s\n", ob_err_msg(&err));
        int code = err.code == OB_EUSAGE ? 2 : 1;
        ob_err_clear(&err);
        return code;
    }
    return 0;
}
