/*
 * pg_conn_test.c — pg_client_program: which pg_dump a logical backup runs.
 * A fake root of installed versions and a fake PATH, so the choice is
 * checked without depending on what this machine has installed.
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

#include "core/buf.h"
#include "sources/pg_conn.h"

typedef struct fixture {
    char *dir, *root, *wrapper_bin, *own_bin, *empty_bin;
} fixture;

static void touch_exe(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    assert_true(fd >= 0);
    close(fd);
}

static void install(const fixture *f, const char *major, const char *prog)
{
    char *d = ob_xasprintf("%s/%s", f->root, major);
    mkdir(d, 0755);
    char *bin = ob_xasprintf("%s/bin", d);
    mkdir(bin, 0755);
    char *p = ob_xasprintf("%s/%s", bin, prog);
    touch_exe(p);
    free(p);
    free(bin);
    free(d);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/ob-pgconn-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    f->dir = strdup(tmpl);
    f->root = ob_xasprintf("%s/lib-postgresql", f->dir);
    f->wrapper_bin = ob_xasprintf("%s/debian-bin", f->dir);
    f->own_bin = ob_xasprintf("%s/own-bin", f->dir);
    f->empty_bin = ob_xasprintf("%s/empty-bin", f->dir);
    mkdir(f->root, 0755);
    mkdir(f->wrapper_bin, 0755);
    mkdir(f->own_bin, 0755);
    mkdir(f->empty_bin, 0755);
    /* Debian's layout: /usr/bin/pg_dump -> ../share/postgresql-common/pg_wrapper */
    char *wrapper = ob_xasprintf("%s/pg_wrapper", f->dir);
    touch_exe(wrapper);
    char *link = ob_xasprintf("%s/pg_dump", f->wrapper_bin);
    assert_int_equal(symlink(wrapper, link), 0);
    free(link);
    free(wrapper);
    char *own = ob_xasprintf("%s/pg_dump", f->own_bin);
    touch_exe(own);
    free(own);
    install(f, "13", "pg_dump");
    install(f, "15", "pg_dump");
    install(f, "16", "pg_dump");
    install(f, "17", "pg_dumpall"); /* 17 without pg_dump: not a candidate */
    char *junk = ob_xasprintf("%s/not-a-version", f->root);
    mkdir(junk, 0755);
    free(junk);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char *cmd = ob_xasprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f->dir);
    free(f->root);
    free(f->wrapper_bin);
    free(f->own_bin);
    free(f->empty_bin);
    free(f);
    return 0;
}

static void expect_program(const fixture *f, int version, const char *path_env,
                           const char *want_rel)
{
    char *got = pg_client_program("pg_dump", version, path_env, f->root);
    if (want_rel[0] == '/') {
        char *want = ob_xasprintf("%s%s", f->root, want_rel);
        assert_string_equal(got, want);
        free(want);
    } else {
        assert_string_equal(got, want_rel);
    }
    free(got);
}

/* Behind Debian's wrapper: the server's own major when installed. */
static void test_wrapper_same_major(void **state)
{
    fixture *f = *state;
    char *path = ob_xasprintf("%s:%s", f->empty_bin, f->wrapper_bin);
    expect_program(f, 150018, path, "/15/bin/pg_dump");
    expect_program(f, 130002, path, "/13/bin/pg_dump");
    free(path);
}

/* Not installed: the newest installed major above it (16, not 17 which has
 * no pg_dump); never an older one. */
static void test_wrapper_newer_major(void **state)
{
    fixture *f = *state;
    expect_program(f, 140011, f->wrapper_bin, "/16/bin/pg_dump");
    /* Newer than anything installed: leave it to PATH (the wrapper), which
     * then reports the mismatch in its own words. */
    expect_program(f, 180000, f->wrapper_bin, "pg_dump");
}

/* pg_dump absent from PATH: the installed binaries are still found. */
static void test_absent_from_path(void **state)
{
    fixture *f = *state;
    expect_program(f, 150018, f->empty_bin, "/15/bin/pg_dump");
    expect_program(f, 150018, "", "/15/bin/pg_dump");
}

/* A pg_dump of the user's own on PATH, before the wrapper: it is theirs to
 * choose, so it is used as is; pre-10 version numbers too. */
static void test_own_pg_dump_wins(void **state)
{
    fixture *f = *state;
    char *path = ob_xasprintf("%s:%s", f->own_bin, f->wrapper_bin);
    expect_program(f, 150018, path, "pg_dump");
    free(path);
    expect_program(f, 90624, f->wrapper_bin, "pg_dump");
}

/* A bare word is a database name (as psql -d takes it); a URI or any
 * string with '=' is a connection string and passes unchanged. */
static void test_conninfo_from_arg(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"opscore", "dbname='opscore'"},
        {"it's\\x", "dbname='it\\'s\\\\x'"},
        {"", "dbname=''"},
        {"host=/tmp dbname=x", "host=/tmp dbname=x"},
        {"postgresql://u@localhost/db", "postgresql://u@localhost/db"},
        {"postgres://localhost", "postgres://localhost"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = pg_conninfo_from_arg(cases[i].in);
        assert_string_equal(s, cases[i].out);
        free(s);
    }
}

/* words (space-separated) -> pg_dumpall_words joined with spaces, or NULL. */
static char *dumpall(const char *cmd)
{
    char *copy = strdup(cmd), *save = NULL, *words[32];
    size_t n = 0;
    for (char *w = strtok_r(copy, " ", &save); w && n < 32; w = strtok_r(NULL, " ", &save))
        words[n++] = w;
    char **out = pg_dumpall_words(words, n);
    free(copy);
    if (!out)
        return NULL;
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; out[i]; i++) {
        ob_buf_printf(&b, "%s%s", i ? " " : "", out[i]);
        free(out[i]);
    }
    free(out);
    return (char *)ob_buf_steal(&b, NULL);
}

static void check_dumpall(const char *cmd, const char *want)
{
    char *got = dumpall(cmd);
    if (!want) {
        if (got)
            fail_msg("%s: got '%s', expected none", cmd, got);
        return;
    }
    if (!got || strcmp(got, want) != 0)
        fail_msg("%s: got '%s', expected '%s'", cmd, got ? got : "(none)", want);
    free(got);
}

static void test_dumpall_words(void **state)
{
    (void)state;
    check_dumpall("pg_dump", "pg_dumpall");
    check_dumpall("/usr/lib/postgresql/15/bin/pg_dump", "/usr/lib/postgresql/15/bin/pg_dumpall");
    /* OPERATIONS.md's Docker example: the role option after pg_dump stays
     * (the globals were skipped while the last word had to be pg_dump). */
    check_dumpall("docker compose -f /srv/c.yaml exec -T postgres pg_dump -U opscore",
                  "docker compose -f /srv/c.yaml exec -T postgres pg_dumpall -U opscore");
    check_dumpall("pg_dump -Uapp --host=db -p 5433 -w --role r",
                  "pg_dumpall -Uapp --host=db -p 5433 -w --role r");
    check_dumpall("pg_dump --username app --port=1 --no-password",
                  "pg_dumpall --username app --port=1 --no-password");
    /* As getopt reads them: short options together, long ones shortened. */
    check_dumpall("pg_dump -vU app -wh db -xOp5433", "pg_dumpall -U app -w -h db -p5433");
    check_dumpall("pg_dump -wUapp --user bob --ho=h --no-pass",
                  "pg_dumpall -w -Uapp --user bob --ho=h --no-pass");
    /* -W would make pg_dumpall prompt beside pg_dump. */
    check_dumpall("pg_dump -W --password -U a", "pg_dumpall -U a");
    /* pg_dump's own options go, with their arguments however written. */
    check_dumpall("pg_dump --exclude-table-data=logs -T gone -t x -n s -Z 0 -U app",
                  "pg_dumpall -U app");
    check_dumpall("pg_dump --exclude-table-data logs --no-owner -v mydb --table t -h h",
                  "pg_dumpall -h h");
    check_dumpall("pg_dump -vt tbl -Tx --exclude-table-data-and-children y --filter f -U u",
                  "pg_dumpall -U u");
    check_dumpall("pg_dump -d appdb --dbname=x -j 2", "pg_dumpall");
    /* The last pg_dump word; the one before it is a prefix's argument. */
    check_dumpall("run-as pg_dump /opt/pg/bin/pg_dump -U a",
                  "run-as pg_dump /opt/pg/bin/pg_dumpall -U a");
    /* An option at the end missing its argument is dropped: kept, it would
     * take the --globals-only that follows as its argument. */
    check_dumpall("pg_dump -t", "pg_dumpall");
    check_dumpall("pg_dump -U", "pg_dumpall");
    check_dumpall("pg_dump -vU", "pg_dumpall");
    check_dumpall("pg_dump -h h --username", "pg_dumpall -h h");
    /* A wrapper ending in pg_dump as the last word: its sibling, as before. */
    check_dumpall("/usr/local/bin/my_pg_dump", "/usr/local/bin/my_pg_dumpall");
    /* No word named pg_dump: a wrapper script. */
    check_dumpall("/usr/local/bin/mydump -U app", NULL);
    check_dumpall("my_pg_dump -U app", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conninfo_from_arg),
        cmocka_unit_test(test_wrapper_same_major),
        cmocka_unit_test(test_wrapper_newer_major),
        cmocka_unit_test(test_absent_from_path),
        cmocka_unit_test(test_own_pg_dump_wins),
        cmocka_unit_test(test_dumpall_words),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
