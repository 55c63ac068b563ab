/*
 * dynlib_test.c — dynlib_load: symbols resolved into typed pointers that
 * work, a missing library or symbol reported by name with the hint, and
 * the first attempt's result kept; and the binary's optional libraries
 * (libpq, libcurl, libmicrohttpd) are not loaded until first use (D57).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/dynlib.h"
#include "sources/pq_lib.h"
#include "storage/curl_lib.h"

static __typeof__(ZSTD_versionNumber) *my_version;
static __typeof__(ZSTD_compressBound) *my_bound;

static void test_resolves(void **state)
{
    (void)state;
    static const dynlib_sym syms[] = {{"ZSTD_versionNumber", (void **)&my_version},
                                      {"ZSTD_compressBound", (void **)&my_bound}};
    static dynlib d = DYNLIB_INIT("libzstd.so.1", "install libzstd1", syms, NULL);
    ob_err err = OB_ERR_INIT;
    assert_int_equal(dynlib_load(&d, &err), 0);
    /* The pointers are the library's functions: same answers as direct calls. */
    assert_int_equal(my_version(), ZSTD_versionNumber());
    assert_int_equal(my_bound(1000000), ZSTD_compressBound(1000000));
    assert_int_equal(dynlib_load(&d, &err), 0); /* again: the same, no reload */
}

static void test_missing_library(void **state)
{
    (void)state;
    static void *unused;
    static const dynlib_sym syms[] = {{"nothing", &unused}};
    static dynlib d =
        DYNLIB_INIT("libopsbackup-no-such.so.9", "install the no-such package", syms, NULL);
    for (int i = 0; i < 2; i++) { /* the second call repeats the first answer */
        ob_err err = OB_ERR_INIT;
        assert_int_equal(dynlib_load(&d, &err), -1);
        const char *m = ob_err_msg(&err);
        if (!strstr(m, "libopsbackup-no-such.so.9") ||
            !strstr(m, "install the no-such package"))
            fail_msg("message does not name the library and the hint: %s", m);
        ob_err_clear(&err);
    }
    assert_null(unused);
}

static void test_missing_symbol(void **state)
{
    (void)state;
    static void *a, *b;
    static const dynlib_sym syms[] = {{"ZSTD_versionNumber", &a},
                                      {"opsbackup_no_such_symbol", &b}};
    static dynlib d = DYNLIB_INIT("libzstd.so.1", "a newer zstd", syms, NULL);
    ob_err err = OB_ERR_INIT;
    assert_int_equal(dynlib_load(&d, &err), -1);
    const char *m = ob_err_msg(&err);
    if (!strstr(m, "opsbackup_no_such_symbol") || !strstr(m, "a newer zstd"))
        fail_msg("message does not name the symbol and the hint: %s", m);
    ob_err_clear(&err);
}

static int after_calls;
static int after_fails(ob_err *err)
{
    after_calls++;
    return ob_err_set(err, OB_EFAIL, "initialising the test library failed");
}

static void test_after_runs_once(void **state)
{
    (void)state;
    static void *a;
    static const dynlib_sym syms[] = {{"ZSTD_versionNumber", &a}};
    static dynlib d = DYNLIB_INIT("libzstd.so.1", "", syms, after_fails);
    for (int i = 0; i < 3; i++) {
        ob_err err = OB_ERR_INIT;
        assert_int_equal(dynlib_load(&d, &err), -1);
        assert_non_null(strstr(ob_err_msg(&err), "initialising the test library failed"));
        ob_err_clear(&err);
    }
    assert_int_equal(after_calls, 1);
}

/* Is a library whose file name starts with name mapped into this process? */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        const char *slash = strrchr(line, '/');
        found = slash && strncmp(slash + 1, name, strlen(name)) == 0;
    }
    fclose(f);
    return found;
}

static void test_optional_libraries_load_on_demand(void **state)
{
    (void)state;
    assert_false(mapped("libpq.so"));
    assert_false(mapped("libcurl.so"));
    assert_false(mapped("libmicrohttpd.so"));
    ob_err err = OB_ERR_INIT;
    assert_int_equal(pq_lib_load(&err), 0);
    assert_true(mapped("libpq.so"));
    assert_int_equal(curl_lib_load(&err), 0);
    assert_true(mapped("libcurl.so"));
    assert_false(mapped("libmicrohttpd.so"));
    /* The table works: a connection string parses through it. */
    char *msg = NULL;
    PQconninfoOption *o = PQconninfoParse("host=/tmp dbname=x", &msg);
    assert_non_null(o);
    PQconninfoFree(o);
    assert_non_null(strstr(curl_easy_strerror(CURLE_OK), "No error"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, before anything in this process has opened them. */
        cmocka_unit_test(test_optional_libraries_load_on_demand),
        cmocka_unit_test(test_resolves),
        cmocka_unit_test(test_missing_library),
        cmocka_unit_test(test_missing_symbol),
        cmocka_unit_test(test_after_runs_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
