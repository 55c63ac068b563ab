/*
 * pg_sql_test.c — splitting and classifying the SQL of pg_dumpall
 * --globals-only (the text below is real pg_dumpall 15.18 output, with
 * quoting cases added) for restore db --roles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sources/pg_sql.h"

static const char globals[] =
    "--\n-- PostgreSQL database cluster dump\n--\n\n"
    "\\restrict TN8CXl1mpA28IEsn5nEYIElas9Bq5f\n\n"
    "SET default_transaction_read_only = off;\n\n"
    "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\n"
    "--\n-- Roles\n--\n\n"
    "CREATE ROLE \"Weird \"\"r\";\n"
    "ALTER ROLE \"Weird \"\"r\" WITH NOSUPERUSER LOGIN CONNECTION LIMIT 3 PASSWORD "
    "'SCRAM-SHA-256$4096:6fak;BLva';\n"
    "CREATE ROLE grp;\n"
    "COMMENT ON ROLE grp IS 'a '';'' comment\ntwo lines';\n"
    "ALTER ROLE Postgres WITH SUPERUSER;\n"
    "SECURITY LABEL FOR dummy ON ROLE grp IS E'x\\';y';\n"
    "/* a /* nested */ comment; */\n"
    "ALTER ROLE grp SET search_path TO $q$a;b$q$;\n"
    "GRANT grp, \"Other\" TO \"Weird \"\"r\", bob WITH ADMIN OPTION GRANTED BY postgres;\n"
    "GRANT SET ON PARAMETER work_mem TO grp;\n"
    "CREATE TABLESPACE ts OWNER postgres LOCATION '/srv/ts';\n"
    "GRANT ALL ON TABLESPACE ts TO grp;\n"
    "COMMENT ON TABLESPACE ts IS 'tsc';\n"
    "CREATE EXTENSION hstore;\n"
    "\\unrestrict TN8CXl1mpA28IEsn5nEYIElas9Bq5f\n\n"
    "--\n-- PostgreSQL database cluster dump complete\n--\n\n";

static char **split_all(size_t *n)
{
    char **v = NULL, *s;
    size_t pos = 0;
    *n = 0;
    while (pg_sql_next(globals, strlen(globals), &pos, &s)) {
        v = realloc(v, (*n + 1) * sizeof *v);
        v[(*n)++] = s;
    }
    return v;
}

static void test_split(void **state)
{
    (void)state;
    size_t n;
    char **v = split_all(&n);
    assert_int_equal(n, 16);
    assert_string_equal(v[0], "SET default_transaction_read_only = off");
    assert_string_equal(v[3], "CREATE ROLE \"Weird \"\"r\"");
    /* A ';' inside a string does not end the statement. */
    assert_non_null(strstr(v[4], "6fak;BLva'"));
    assert_string_equal(v[6], "COMMENT ON ROLE grp IS 'a '';'' comment\ntwo lines'");
    assert_string_equal(v[8], "SECURITY LABEL FOR dummy ON ROLE grp IS E'x\\';y'");
    /* Leading comments are not part of a statement; dollar quotes hold ';'. */
    assert_string_equal(v[9], "ALTER ROLE grp SET search_path TO $q$a;b$q$");
    assert_string_equal(v[15], "CREATE EXTENSION hstore");
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void test_classify(void **state)
{
    (void)state;
    size_t n;
    char **v = split_all(&n);
    static const struct {
        pg_sql_global_kind kind;
        const char *object;
        const char *label;
    } want[] = {
        {PG_SQL_G_SESSION, NULL, NULL},
        {PG_SQL_G_SESSION, NULL, NULL},
        {PG_SQL_G_SESSION, NULL, NULL},
        {PG_SQL_G_ROLE_CREATE, "Weird \"r", "CREATE ROLE \"Weird \"\"r\""},
        {PG_SQL_G_ROLE, "Weird \"r", "ALTER ROLE \"Weird \"\"r\""},
        {PG_SQL_G_ROLE_CREATE, "grp", NULL},
        {PG_SQL_G_ROLE, "grp", "COMMENT ON ROLE grp"},
        {PG_SQL_G_ROLE, "postgres", NULL}, /* a bare name is folded */
        {PG_SQL_G_ROLE, "grp", "SECURITY LABEL FOR dummy ON ROLE grp"},
        {PG_SQL_G_ROLE, "grp", NULL},
        {PG_SQL_G_MEMBERSHIP, "grp, Other", "GRANT grp, \"Other\" TO \"Weird \"\"r\", bob"},
        {PG_SQL_G_GRANT, NULL, NULL},
        {PG_SQL_G_TABLESPACE_CREATE, "ts", "CREATE TABLESPACE ts"},
        {PG_SQL_G_TABLESPACE, "ts", "GRANT ALL ON TABLESPACE ts"},
        {PG_SQL_G_TABLESPACE, "ts", NULL},
        {PG_SQL_G_OTHER, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        pg_sql_global g;
        pg_sql_global_classify(v[i], &g);
        assert_int_equal(g.kind, want[i].kind);
        if (want[i].object)
            assert_string_equal(g.object, want[i].object);
        if (want[i].label)
            assert_string_equal(g.label, want[i].label);
        /* Never a password in a label. */
        assert_null(strstr(g.label, "SCRAM"));
        if (g.kind == PG_SQL_G_MEMBERSHIP) {
            assert_int_equal(g.nnames, 2);
            assert_string_equal(g.names[0], "Weird \"r");
            assert_string_equal(g.names[1], "bob");
        }
        if (g.kind == PG_SQL_G_GRANT) {
            assert_int_equal(g.nnames, 1);
            assert_string_equal(g.names[0], "grp");
        }
        pg_sql_global_free(&g);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void test_quote_ident(void **state)
{
    (void)state;
    char *q = pg_sql_quote_ident("Weird \"r");
    assert_string_equal(q, "\"Weird \"\"r\"");
    free(q);
    q = pg_sql_quote_ident("user");
    assert_string_equal(q, "\"user\"");
    free(q);
}

/* key(schema, table) then split(key) gives back schema and table. */
static void check_key(const char *schema, const char *table, const char *want)
{
    char *k = pg_sql_table_key(schema, table), *ns = NULL, *rel = NULL;
    assert_string_equal(k, want);
    assert_int_equal(pg_sql_table_key_split(k, &ns, &rel), 0);
    assert_string_equal(ns, schema);
    assert_string_equal(rel, table);
    free(k);
    free(ns);
    free(rel);
}

static void test_table_key(void **state)
{
    (void)state;
    /* Ordinary names: the plain form every earlier snapshot has. */
    check_key("public", "accounts", "public.accounts");
    check_key("Audit Log", "顧客 一覧", "Audit Log.顧客 一覧");
    /* The pair that collided as "a.b.c" before quoting. */
    check_key("a.b", "c", "\"a.b\".c");
    check_key("a", "b.c", "a.\"b.c\"");
    check_key("we\"ird", "t\".x", "\"we\"\"ird\".\"t\"\".x\"");
    check_key("s", "", "s.\"\"");
    check_key("s", "\"", "s.\"\"\"\"");
    /* Nothing pg_sql_table_key does not write: bare parts holding '.' or
     * '"', an empty bare part, an unclosed or a stray quote.  (Keys of
     * snapshots written before quoting are split by pg_logical.c.) */
    static const char *const bad[] = {"nodot", "public.my.table", "public.\"x", "\"a\"b.c",
                                      "a.b\"c", ".t", "s.", "\"a\"", "\"a\".\"b\"c",
                                      "\"a\".\"b", NULL};
    for (size_t i = 0; bad[i]; i++) {
        char *ns = NULL, *rel = NULL;
        if (pg_sql_table_key_split(bad[i], &ns, &rel) != -1)
            fail_msg("'%s' split as '%s' '%s'", bad[i], ns, rel);
        assert_null(ns);
        assert_null(rel);
    }
}

static void test_unterminated(void **state)
{
    (void)state;
    const char *s = "ALTER ROLE x PASSWORD 'abc;\nCREATE ROLE y;";
    size_t pos = 0;
    char *st;
    assert_int_equal(pg_sql_next(s, strlen(s), &pos, &st), 1);
    assert_string_equal(st, s); /* the open quote runs to the end */
    free(st);
    assert_int_equal(pg_sql_next(s, strlen(s), &pos, &st), 0);
    pg_sql_tok *t;
    size_t n;
    pg_sql_tokens("\"ab", &t, &n);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].type, PG_SQL_QIDENT);
    pg_sql_tokens_free(t, n);
}

static void test_db_property(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        pg_sql_db_kind kind;
        const char *out;
    } cases[] = {
        {"COMMENT ON DATABASE \"app db\" IS 'app db''s comment'", PG_SQL_DB_PROPERTY,
         "COMMENT ON DATABASE \"new\"\"db\" IS 'app db''s comment'"},
        {"ALTER DATABASE appdb CONNECTION LIMIT = 11", PG_SQL_DB_PROPERTY,
         "ALTER DATABASE \"new\"\"db\" CONNECTION LIMIT = 11"},
        {"ALTER DATABASE appdb SET search_path TO 'appdb', 'public'", PG_SQL_DB_PROPERTY,
         "ALTER DATABASE \"new\"\"db\" SET search_path TO 'appdb', 'public'"},
        /* A role named like the database keeps its name. */
        {"ALTER ROLE appdb IN DATABASE appdb SET work_mem TO '9MB'", PG_SQL_DB_PROPERTY,
         "ALTER ROLE appdb IN DATABASE \"new\"\"db\" SET work_mem TO '9MB'"},
        {"REVOKE CONNECT,TEMPORARY ON DATABASE appdb FROM PUBLIC", PG_SQL_DB_PROPERTY,
         "REVOKE CONNECT,TEMPORARY ON DATABASE \"new\"\"db\" FROM PUBLIC"},
        {"GRANT CONNECT ON DATABASE appdb TO appdb", PG_SQL_DB_PROPERTY,
         "GRANT CONNECT ON DATABASE \"new\"\"db\" TO appdb"},
        {"SECURITY LABEL FOR p ON DATABASE appdb IS 'x'", PG_SQL_DB_PROPERTY,
         "SECURITY LABEL FOR p ON DATABASE \"new\"\"db\" IS 'x'"},
        {"SET standard_conforming_strings = on", PG_SQL_DB_SESSION, NULL},
        {"SELECT pg_catalog.set_config('search_path', '', false)", PG_SQL_DB_SESSION, NULL},
        {"CREATE DATABASE appdb WITH TEMPLATE = template0", PG_SQL_DB_OTHER, NULL},
        {"ALTER DATABASE appdb OWNER TO opscore", PG_SQL_DB_OTHER, NULL},
        {"ALTER DATABASE appdb IS_TEMPLATE = true", PG_SQL_DB_OTHER, NULL},
        {"GRANT SELECT ON TABLE public.database TO app_reader", PG_SQL_DB_OTHER, NULL},
        {"COMMENT ON TABLE public.t IS 'ON DATABASE appdb'", PG_SQL_DB_OTHER, NULL},
        {"CREATE TABLE t (i int)", PG_SQL_DB_OTHER, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        assert_int_equal(pg_sql_db_property(cases[i].in, "new\"db", &out), cases[i].kind);
        if (cases[i].out)
            assert_string_equal(out, cases[i].out);
        else
            assert_null(out);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_quote_ident),
        cmocka_unit_test(test_table_key),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_db_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
