/* test_json.c - JSON output: shortest round-trip numbers, escapes, order, depth limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static void roundtrip(const char *in, const char *want)
{
    json_t *v = json_loads(in, JSON_DECODE_ANY, NULL);
    size_t len = 0;
    char *s;

    assert_non_null(v);
    s = lgw_json_dumps(v, &len);
    assert_non_null(s);
    assert_string_equal(s, want);
    assert_int_equal(len, strlen(want));
    free(s);
    json_decref(v);
}

static void test_numbers(void **state)
{
    (void)state;
    roundtrip("[0.1,1.5,3.14159,1e300,-2.5e-8,1.0,100.0,123456789012345678]",
              "[0.1,1.5,3.14159,1e+300,-2.5e-08,1.0,100.0,123456789012345678]");
    roundtrip("0.30000000000000004", "0.30000000000000004");
    roundtrip("-0.0", "-0.0");
    roundtrip("[1e16,1e-5,123456789.123,0.0001]", "[1e+16,1e-05,123456789.123,0.0001]");
}

static void test_strings_and_order(void **state)
{
    (void)state;
    roundtrip("{\"z\":1,\"a\":\"q\\\"b\\\\s\\n\\t\\u0001\\u00e9\",\"m\":[true,false,null]}",
              "{\"z\":1,\"a\":\"q\\\"b\\\\s\\n\\t\\u0001\xc3\xa9\",\"m\":[true,false,null]}");
    roundtrip("\"\"", "\"\"");
    roundtrip("{}", "{}");
    roundtrip("[]", "[]");
}

static void test_embedded_nul(void **state)
{
    json_t *v = json_stringn("a\0b", 3);
    char *s = lgw_json_dumps(v, NULL);

    (void)state;
    assert_string_equal(s, "\"a\\u0000b\"");
    free(s);
    json_decref(v);
}

static void test_depth_limit(void **state)
{
    json_t *root = json_array(), *cur = root;
    char *s;

    (void)state;
    for (int i = 0; i < LGW_JSON_MAX_DEPTH + 5; i++) {
        json_t *n = json_array();
        json_array_append_new(cur, n);
        cur = n;
    }
    s = lgw_json_dumps(root, NULL);
    assert_null(s); /* refused, never a stack overflow */
    json_decref(root);
    assert_null(lgw_json_dumps(NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings_and_order),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_depth_limit),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
