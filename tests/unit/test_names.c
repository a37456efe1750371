/* test_names.c - function names as Lambda accepts them: names, NAME:QUAL, partial and full ARNs,
 * and the ones it rejects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "dispatcher.h"

static void parse_ok(const char *s, const char *name, const char *qual, const char *region,
                     const char *account)
{
    struct lgw_function_ref ref;
    struct lgw_error e;

    lgw_error_init(&e);
    assert_int_equal(lgw_function_name_parse(s, &ref, &e), LGW_OK);
    assert_string_equal(ref.name, name);
    assert_string_equal(ref.qualifier, qual);
    assert_string_equal(ref.region, region);
    assert_string_equal(ref.account, account);
}

static void parse_bad(const char *s)
{
    struct lgw_function_ref ref;
    struct lgw_error e;

    lgw_error_init(&e);
    assert_int_equal(lgw_function_name_parse(s, &ref, &e), LGW_EBADREQUEST);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.aws_type, "ValidationException");
    assert_non_null(strstr(e.message, "functionName"));
}

static void test_good_names(void **state)
{
    (void)state;
    parse_ok("echo", "echo", "", "", "");
    parse_ok("my-fn_2", "my-fn_2", "", "", "");
    parse_ok("echo:live", "echo", "live", "", "");
    parse_ok("echo:$LATEST", "echo", "$LATEST", "", "");
    parse_ok("123456789012:function:echo", "echo", "", "", "123456789012");
    parse_ok("123456789012:function:echo:7", "echo", "7", "", "123456789012");
    parse_ok("arn:aws:lambda:eu-west-1:123456789012:function:orders", "orders", "", "eu-west-1",
             "123456789012");
    parse_ok("arn:aws:lambda:us-east-1:123456789012:function:orders:live", "orders", "live",
             "us-east-1", "123456789012");
    parse_ok("arn:aws-cn:lambda:cn-north-1:123456789012:function:o", "o", "", "cn-north-1",
             "123456789012");
}

static void test_bad_names(void **state)
{
    char long_name[300];

    (void)state;
    parse_bad("");
    parse_bad("has space");
    parse_bad("dot.name");
    parse_bad("a/b");
    parse_bad("echo:");
    parse_bad("echo:bad.qual");
    parse_bad("a:b:c");
    parse_bad("arn:aws:s3:us-east-1:123456789012:function:x");
    parse_bad("arn:aws:lambda:us-east-1:12345:function:x");
    parse_bad("arn:aws:lambda:us-east-1:123456789012:layer:x");
    parse_bad("12345678901x:function:echo");
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    parse_bad(long_name); /* 65 characters: over Lambda's 64 */
    memset(long_name, 'a', 257);
    long_name[257] = '\0';
    parse_bad(long_name);
    long_name[64] = '\0';
    parse_ok(long_name, long_name, "", "", "");
}

static void test_validators(void **state)
{
    (void)state;
    assert_true(lgw_function_name_valid("Echo-1_x"));
    assert_false(lgw_function_name_valid(""));
    assert_false(lgw_function_name_valid(NULL));
    assert_false(lgw_function_name_valid("x y"));
    assert_true(lgw_qualifier_valid("$LATEST"));
    assert_true(lgw_qualifier_valid("live"));
    assert_false(lgw_qualifier_valid("$OTHER"));
}

static void test_request_ids_are_uuids_and_differ(void **state)
{
    struct lgw_invocation a, b;

    (void)state;
    lgw_invocation_init(&a);
    lgw_invocation_init(&b);
    assert_int_equal(strlen(a.request_id), 36);
    assert_int_equal(a.request_id[8], '-');
    assert_int_equal(a.request_id[14], '4'); /* version 4 */
    assert_string_not_equal(a.request_id, b.request_id);
    lgw_invocation_release(&a);
    lgw_invocation_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_names),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_validators),
        cmocka_unit_test(test_request_ids_are_uuids_and_differ),
    };
    return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
