/*
 * confdiff_test.c — key-level config diffs: .env, INI sections, YAML
 * nesting, duplicates, other lines, binary detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "sources/confdiff.h"

/* Each change as one line: "~ KEY old->new" or "+ line N new". */
static int collect(const confdiff_change *c, void *ud)
{
    ob_buf *b = ud;
    if (c->key)
        ob_buf_printf(b, "%c %s %s->%s\n", c->change, c->key, c->old_val ? c->old_val : "",
                      c->new_val ? c->new_val : "");
    else
        ob_buf_printf(b, "%c line %zu %s->%s\n", c->change, c->line, c->old_val ? c->old_val : "",
                      c->new_val ? c->new_val : "");
    return 0;
}

static void check(const char *a, const char *b, const char *want)
{
    ob_buf out = OB_BUF_INIT;
    assert_int_equal(confdiff_text((const uint8_t *)a, strlen(a), (const uint8_t *)b, strlen(b),
                                   collect, &out),
                     0);
    ob_buf_putc(&out, 0);
    if (strcmp((char *)out.data, want) != 0)
        print_error("got:\n%s\nwanted:\n%s\n", (char *)out.data, want);
    assert_string_equal((char *)out.data, want);
    ob_buf_free(&out);
}

static void test_env(void **state)
{
    (void)state;
    check("# settings\nAPP_ENV=production\nDB_PASSWORD=old\nOLD_KEY=1\nexport TOKEN=\"t\"\n",
          "# settings\nAPP_ENV=production\r\nDB_PASSWORD=new\nNEW_KEY = 2\nexport TOKEN=\"t\"\n\n",
          "~ DB_PASSWORD old->new\n"
          "+ NEW_KEY ->2\n"
          "- OLD_KEY 1->\n");
    /* identical, and only whitespace / blank lines differ */
    check("A=1\nB=2\n", "A=1\n\n  B=2  \n", "");
    /* a value with '=' and ':' inside */
    check("URL=postgres://u:p@h/db?x=1\n", "URL=postgres://u:q@h/db?x=1\n",
          "~ URL postgres://u:p@h/db?x=1->postgres://u:q@h/db?x=1\n");
}

static void test_ini_sections(void **state)
{
    (void)state;
    check("[database]\nuser = a\npassword = p1\n[cache]\nttl = 60\npassword = c\n",
          "[database]\nuser = a\npassword = p2\n[cache]\nttl = 60\npassword = c\n",
          "~ database.password p1->p2\n");
    /* a section renamed: its keys move, the header line changes */
    check("[a]\nk = 1\n", "[b]\nk = 1\n", "+ b.k ->1\n- a.k 1->\n~ line 1 [a]->[b]\n");
}

static void test_yaml_nesting(void **state)
{
    (void)state;
    check("server:\n  port: 8080\n  tls:\n    key: k1\ndb:\n  port: 5432\n",
          "server:\n  port: 8081\n  tls:\n    key: k1\ndb:\n  port: 5432\n",
          "~ server.port 8080->8081\n");
    check("server:\n  tls:\n    key: k1\n  name: x\n",
          "server:\n  tls:\n    key: k2\n  name: y\n",
          "~ server.tls.key k1->k2\n~ server.name x->y\n");
    /* URLs and list items are not keys */
    check("- item one\nhttp://example.com/a\n", "- item two\nhttp://example.com/a\n",
          "~ line 1 - item one->- item two\n");
}

static void test_duplicates_and_lines(void **state)
{
    (void)state;
    /* the second occurrence is "user#2" */
    check("user=a\nuser=b\n", "user=a\nuser=c\n", "~ user#2 b->c\n");
    check("user=a\n", "user=a\nuser=z\n", "+ user#2 ->z\n");
    /* free text: moved lines are not changes; added/removed are counted */
    check("one\ntwo\nthree\n", "three\none\ntwo\n", "");
    check("one\ntwo\n", "one\n2\nextra\n", "~ line 2 two->2\n+ line 3 ->extra\n");
    check("one\ntwo\nthree\n", "one\n", "- line 2 two->\n- line 3 three->\n");
    /* no trailing newline, empty files */
    check("", "A=1", "+ A ->1\n");
    check("A=1", "", "- A 1->\n");
    check("", "", "");
}

static void test_binary(void **state)
{
    (void)state;
    const uint8_t bin[] = {'k', '=', 0, 1, 2};
    assert_true(confdiff_is_binary(bin, sizeof bin));
    assert_false(confdiff_is_binary((const uint8_t *)"A=1\n", 4));
    /* even when handed binary data, it does not crash or read past it */
    ob_buf out = OB_BUF_INIT;
    assert_int_equal(confdiff_text(bin, sizeof bin, bin, 2, collect, &out), 0);
    ob_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_ini_sections),
        cmocka_unit_test(test_yaml_nesting),
        cmocka_unit_test(test_duplicates_and_lines),
        cmocka_unit_test(test_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
