/* test_error.c - the error table: each code's type, statuses and AWS type (DESIGN.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"

static void test_table_matches_design(void **state)
{
    static const struct {
        enum lgw_errc code;
        const char *type;
        int status, aws_status;
        const char *aws_type;
    } rows[] = {
        {LGW_EBADREQUEST, "BadRequest", 400, 400, "InvalidRequestContentException"},
        {LGW_ETOOLARGE, "RequestTooLarge", 413, 413, "RequestEntityTooLargeException"},
        {LGW_ENOTFOUND, "LambdaClientError", 404, 404, "ResourceNotFoundException"},
        {LGW_EDENIED, "LambdaClientError", 403, 403, "AccessDeniedException"},
        {LGW_ETHROTTLED, "LambdaClientError", 429, 429, "TooManyRequestsException"},
        {LGW_EEXECUTE, "LambdaExecuteError", 502, 200, ""},
        {LGW_ETIMEDOUT, "LambdaExecuteError", 504, 200, ""},
        {LGW_ECLIENT, "LambdaClientError", 502, 500, "ServiceException"},
        {LGW_ECLIENT_TIMEOUT, "LambdaClientError", 504, 500, "ServiceException"},
        {LGW_EINVALID_FUNCTION, "InvalidFunctionTypeError", 500, 500, "ServiceException"},
        {LGW_ESHUTDOWN, "ServiceUnavailable", 503, 503, "ServiceException"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct lgw_error e;
        lgw_error_init(&e);
        assert_int_equal(lgw_error_set(&e, rows[i].code, "m%d", 7), rows[i].code);
        assert_string_equal(lgw_errc_type(rows[i].code), rows[i].type);
        assert_int_equal(e.status, rows[i].status);
        assert_int_equal(lgw_errc_status(rows[i].code), rows[i].status);
        assert_int_equal(e.aws_status, rows[i].aws_status);
        assert_string_equal(e.aws_type, rows[i].aws_type);
        assert_string_equal(e.message, "m7");
        assert_int_equal(e.retry_after, rows[i].code == LGW_ETHROTTLED ? 1 : 0);
        lgw_error_release(&e);
        assert_int_equal(e.code, LGW_OK);
    }
}

static void test_out_of_range_code_is_internal(void **state)
{
    (void)state;
    assert_string_equal(lgw_errc_name((enum lgw_errc)999), "EINTERNAL");
    assert_int_equal(lgw_errc_status((enum lgw_errc) - 1), 500);
}

static void test_message_truncated_safely(void **state)
{
    struct lgw_error e;
    char big[2000];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    lgw_error_init(&e);
    lgw_error_set(&e, LGW_EBADREQUEST, "%s", big);
    assert_int_equal(strlen(e.message), LGW_ERROR_MESSAGE_MAX - 1);
}

static void test_payload_owned_and_moved(void **state)
{
    struct lgw_error a, b;

    (void)state;
    lgw_error_init(&a);
    lgw_error_init(&b);
    lgw_error_set(&a, LGW_EEXECUTE, "boom");
    lgw_error_take_payload(&a, strdup("{\"errorType\":\"X\"}"), 17);
    lgw_error_move(&b, &a);
    assert_int_equal(a.code, LGW_OK);
    assert_null(a.payload);
    assert_int_equal(b.code, LGW_EEXECUTE);
    assert_string_equal(b.payload, "{\"errorType\":\"X\"}");
    /* setting a new error frees the old payload (no leak under ASan) */
    lgw_error_set(&b, LGW_ENOTFOUND, "gone");
    assert_null(b.payload);
    lgw_error_release(&b);
    lgw_error_release(NULL);
}

static void test_http_reasons(void **state)
{
    (void)state;
    assert_string_equal(lgw_http_reason(429), "Too Many Requests");
    assert_string_equal(lgw_http_reason(504), "Gateway Timeout");
    assert_string_equal(lgw_http_reason(299), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_design),
        cmocka_unit_test(test_out_of_range_code_is_internal),
        cmocka_unit_test(test_message_truncated_safely),
        cmocka_unit_test(test_payload_owned_and_moved),
        cmocka_unit_test(test_http_reasons),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
