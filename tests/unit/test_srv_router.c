/* test_srv_router.c - the fixed endpoints: matching, captured names, 405 Allow values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"

static void expect(const char *method, const char *path, enum lgw_route_kind kind, const char *name,
                   const char *allow)
{
    struct lgw_route_match m;

    assert_int_equal(lgw_route(method, path, &m), kind);
    assert_int_equal(m.kind, kind);
    if (name) {
        assert_non_null(m.name);
        assert_int_equal(m.name_len, strlen(name));
        assert_memory_equal(m.name, name, m.name_len);
    } else {
        assert_null(m.name);
    }
    if (allow)
        assert_string_equal(m.allow, allow);
    else
        assert_null(m.allow);
}

static void test_routes(void **state)
{
    (void)state;
    expect("POST", "/invoke", LGW_ROUTE_INVOKE, NULL, NULL);
    expect("POST", "/invoke/echo", LGW_ROUTE_INVOKE, "echo", NULL);
    expect("POST", "/invoke-async", LGW_ROUTE_INVOKE_ASYNC, NULL, NULL);
    expect("POST", "/invoke-async/sleep", LGW_ROUTE_INVOKE_ASYNC, "sleep", NULL);
    expect("GET", "/healthz", LGW_ROUTE_HEALTHZ, NULL, NULL);
    expect("HEAD", "/healthz", LGW_ROUTE_HEALTHZ, NULL, NULL);
    expect("GET", "/metrics", LGW_ROUTE_METRICS, NULL, NULL);
    expect("POST", "/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:f/invocations",
           LGW_ROUTE_LAMBDA_INVOKE, "arn:aws:lambda:us-east-1:1:function:f", NULL);
    expect("POST", "/2014-11-13/functions/f/invoke-async/", LGW_ROUTE_LAMBDA_ASYNC_LEGACY, "f",
           NULL);
}

static void test_wrong_method_and_misses(void **state)
{
    (void)state;
    expect("GET", "/invoke/echo", LGW_ROUTE_NONE, NULL, "POST");
    expect("DELETE", "/invoke", LGW_ROUTE_NONE, NULL, "POST");
    expect("POST", "/healthz", LGW_ROUTE_NONE, NULL, "GET, HEAD");
    expect("POST", "/invoke/", LGW_ROUTE_NONE, NULL, NULL);    /* empty name */
    expect("POST", "/invoke/a/b", LGW_ROUTE_NONE, NULL, NULL); /* two segments */
    expect("POST", "/invokex", LGW_ROUTE_NONE, NULL, NULL);
    expect("POST", "/2015-03-31/functions//invocations", LGW_ROUTE_NONE, NULL, NULL);
    expect("GET", "/", LGW_ROUTE_NONE, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_wrong_method_and_misses),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
