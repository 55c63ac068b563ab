/*
 * util_test.c — ob_access_as: the permission walk a root restore uses to
 * check that the data directory's owner can read what restore_command
 * needs and reach the data directory.  The owner cases need root (to
 * create files for another user); without it they are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

/* nobody: any unprivileged uid that is not the file's owner will do. */
static const uid_t OTHER = 65534;
static const gid_t OTHER_GID = 65534;

static char *mkpath(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static int access_as(const char *path, uid_t uid, gid_t gid, int want, char **why)
{
    ob_err err = OB_ERR_INIT;
    int rc = ob_access_as(path, uid, gid, want, why, &err);
    ob_err_clear(&err);
    return rc;
}

static void test_modes(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char tmpl[] = "/tmp/ob_util_test.XXXXXX";
    char *top = mkdtemp(tmpl);
    assert_non_null(top);
    assert_int_equal(chmod(top, 0711), 0);
    char *sub = mkpath(top, "sub");
    assert_int_equal(mkdir(sub, 0700), 0);
    char *inner = mkpath(sub, "f");
    char *open_file = mkpath(top, "open");
    char *closed = mkpath(top, "closed");
    char *mine = mkpath(top, "mine");
    char *grp = mkpath(top, "group");
    const char *files[] = {inner, open_file, closed, mine, grp};
    for (size_t i = 0; i < 5; i++) {
        int fd = open(files[i], O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    assert_int_equal(chmod(open_file, 0644), 0);
    assert_int_equal(chmod(inner, 0644), 0);
    assert_int_equal(chown(mine, OTHER, 0), 0);
    assert_int_equal(chown(grp, 0, OTHER_GID), 0);
    assert_int_equal(chmod(grp, 0640), 0);

    char *why = NULL;
    assert_int_equal(access_as(open_file, OTHER, OTHER_GID, R_OK, &why), 1);
    assert_null(why);
    assert_int_equal(access_as(open_file, OTHER, OTHER_GID, W_OK, &why), 0);
    free(why);
    /* 0600 root: named, with its mode and owner */
    assert_int_equal(access_as(closed, OTHER, OTHER_GID, R_OK, &why), 0);
    assert_non_null(why);
    assert_non_null(strstr(why, "closed is mode 0600, owner root"));
    free(why);
    /* readable file in a directory the user cannot search */
    assert_int_equal(access_as(inner, OTHER, OTHER_GID, R_OK, &why), 0);
    assert_non_null(strstr(why, "sub is mode 0700"));
    free(why);
    /* owner bits, group bits */
    assert_int_equal(access_as(mine, OTHER, OTHER_GID, R_OK | W_OK, &why), 1);
    assert_int_equal(access_as(grp, OTHER, OTHER_GID, R_OK, &why), 1);
    assert_int_equal(access_as(grp, OTHER, OTHER_GID, W_OK, &why), 0);
    free(why);
    /* directories: search permission */
    assert_int_equal(access_as(top, OTHER, OTHER_GID, X_OK, &why), 1);
    assert_int_equal(access_as(top, OTHER, OTHER_GID, R_OK | X_OK, &why), 0);
    free(why);
    /* root may do anything; a missing path is an error, not a "no" */
    assert_int_equal(access_as(closed, 0, 0, R_OK | W_OK, &why), 1);
    char *missing = mkpath(top, "missing");
    assert_int_equal(access_as(missing, OTHER, OTHER_GID, R_OK, &why), -1);

    for (size_t i = 0; i < 5; i++)
        unlink(files[i]);
    rmdir(sub);
    rmdir(top);
    free(inner);
    free(open_file);
    free(closed);
    free(mine);
    free(grp);
    free(sub);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
