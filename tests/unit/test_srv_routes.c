/* test_srv_routes.c - the handler route table: pattern compilation (good and bad), matching and
 * API Gateway's precedence, parameter extraction, greedy {proxy+}, methods and Allow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "routes.h"

struct fixture {
    struct lgw_server srv;
    struct lgw_config *cfg;
    char err[512];
};

static void add(struct lgw_config *c, const char *method, const char *path, const char *fn)
{
    struct lgw_route_config *rc = &c->routes[c->nroutes++];

    memset(rc, 0, sizeof(*rc));
    snprintf(rc->method, sizeof(rc->method), "%s", method);
    snprintf(rc->path, sizeof(rc->path), "%s", path);
    snprintf(rc->function, sizeof(rc->function), "%s", fn);
    rc->payload_version = 2;
    c->routes_configured = true;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->cfg = lgw_config_new();
    assert_non_null(f->cfg);
    f->srv.cfg = f->cfg;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    lgw_routes_free(&f->srv);
    lgw_config_free(f->cfg);
    free(f);
    return 0;
}

static int compile(struct fixture *f)
{
    f->err[0] = '\0';
    return lgw_routes_compile(&f->srv, f->err, sizeof(f->err));
}

/* The function of the route method+path selects, or "405"/"404". */
static const char *pick(struct fixture *f, const char *method, const char *path)
{
    int idx = lgw_routes_match(&f->srv, method, path, NULL);

    if (idx == LGW_ROUTES_WRONG_METHOD)
        return "405";
    if (idx == LGW_ROUTES_NONE)
        return "404";
    assert_true(idx >= 0 && (size_t)idx < lgw_routes_count(&f->srv));
    return lgw_routes_config(&f->srv, idx)->function;
}

static void param_is(const struct lgw_route_params *p, size_t i, const char *name,
                     const char *value)
{
    assert_true(i < p->n);
    assert_string_equal(p->p[i].name, name);
    assert_int_equal(p->p[i].len, strlen(value));
    assert_memory_equal(p->p[i].value, value, strlen(value));
}

/* ---- compilation ---- */

static void test_default_hello_route_in_local_mode(void **state)
{
    struct fixture *f = *state;
    struct lgw_route_params p;
    int idx;

    assert_int_equal(compile(f), 0);
    assert_int_equal(lgw_routes_count(&f->srv), 1);
    idx = lgw_routes_match(&f->srv, "GET", "/hello/Ann", &p);
    assert_int_equal(idx, 0);
    assert_string_equal(lgw_routes_key(&f->srv, idx), "GET /hello/{name}");
    assert_string_equal(lgw_routes_config(&f->srv, idx)->function, "hello");
    assert_int_equal(lgw_routes_config(&f->srv, idx)->payload_version, 2);
    assert_int_equal(p.n, 1);
    param_is(&p, 0, "name", "Ann");
}

static void test_no_default_route_when_configured_or_lambda(void **state)
{
    struct fixture *f = *state;

    f->cfg->routes_configured = true; /* "routes": [] */
    assert_int_equal(compile(f), 0);
    assert_int_equal(lgw_routes_count(&f->srv), 0);
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/hello/Ann", NULL), LGW_ROUTES_NONE);
    assert_null(lgw_routes_allow(&f->srv, "/hello/Ann"));
    f->cfg->routes_configured = false;
    f->cfg->mode = LGW_MODE_LAMBDA;
    assert_int_equal(compile(f), 0);
    assert_int_equal(lgw_routes_count(&f->srv), 0);
}

static void test_good_patterns_compile(void **state)
{
    struct fixture *f = *state;
    static const char *const paths[] = {
        "/",          "/a",
        "/a/b/c",     "/{x}",
        "/{proxy+}",  "/a/{b}/c",
        "/a/{b}/{c}", "/a/{p+}",
        "/v1.2/x-y",  "/b/{b.c}/{d-e}",
        "/a/{B_9}",   "/~user/%41",
        "/a/b:c/@d",  "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h+}",
    };

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        add(f->cfg, "GET", paths[i], "echo");
    assert_int_equal(compile(f), 0);
    assert_string_equal(f->err, "");
    assert_int_equal(lgw_routes_count(&f->srv), sizeof(paths) / sizeof(paths[0]));
}

static void test_bad_patterns_are_refused(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *path, *needle;
    } bad[] = {
        {"/a/{b", "whole segment"},
        {"/a/b}", "whole segment"},
        {"/a{b}", "whole segment"},
        {"/{a}b", "whole segment"},
        {"/a/{b}{c}", "names are"},
        {"/a/{p+}/c", "last segment"},
        {"/{p+}/{q+}", "last segment"},
        {"/a//b", "empty path segment"},
        {"/a/", "empty path segment"},
        {"//", "empty path segment"},
        {"/a/{x}/{x}", "appears twice"},
        {"/{x}/{x+}", "appears twice"},
        {"/a/{}", "parameter name"},
        {"/a/{+}", "parameter name"},
        {"/a/{b c}", "names are"},
        {"/a/{b/c}", "whole segment"},
        {"/a b", "no spaces"},
        {"/a?b", "'?'"},
        {"/a#b", "'#'"},
        {"a/b", "must start with /"},
        {"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}/{q}",
         "more than 16 parameters"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->cfg->nroutes = 0;
        add(f->cfg, "GET", "/fine", "echo");
        add(f->cfg, "GET", bad[i].path, "echo");
        assert_int_equal(compile(f), -1);
        if (!strstr(f->err, bad[i].needle) || !strstr(f->err, "routes[1].path")) {
            print_error("pattern %s: %s\n", bad[i].path, f->err);
            fail();
        }
        assert_null(strchr(f->err, '\n'));
        lgw_routes_free(&f->srv);
        assert_int_equal(lgw_routes_count(&f->srv), 0);
    }
}

static void test_too_many_segments(void **state)
{
    struct fixture *f = *state;
    char path[LGW_PATH_MAX] = "";

    for (int i = 0; i <= LGW_ROUTE_SEGMENTS_MAX; i++)
        strcat(path, "/s");
    add(f->cfg, "GET", path, "echo");
    assert_int_equal(compile(f), -1);
    assert_non_null(strstr(f->err, "more than 64 segments"));
}

static void test_conflicting_routes_are_refused(void **state)
{
    struct fixture *f = *state;

    add(f->cfg, "GET", "/a/{x}/c", "echo");
    add(f->cfg, "GET", "/a/{y}/c", "hello");
    assert_int_equal(compile(f), -1);
    assert_non_null(strstr(f->err, "routes[1]: GET /a/{y}/c catches the same requests as "
                                   "routes[0] (GET /a/{x}/c)"));

    f->cfg->nroutes = 0;
    add(f->cfg, "ANY", "/p/{proxy+}", "echo");
    add(f->cfg, "ANY", "/p/{rest+}", "echo");
    assert_int_equal(compile(f), -1);
    assert_non_null(strstr(f->err, "catches the same requests"));

    /* Same shape, other methods, or other literals: fine. */
    f->cfg->nroutes = 0;
    add(f->cfg, "GET", "/a/{x}", "echo");
    add(f->cfg, "POST", "/a/{y}", "echo");
    add(f->cfg, "ANY", "/a/{z}", "echo");
    add(f->cfg, "GET", "/b/{x}", "echo");
    add(f->cfg, "GET", "/a/{x}/{y+}", "echo");
    assert_int_equal(compile(f), 0);
}

static void test_fixed_endpoints_cannot_be_routes(void **state)
{
    struct fixture *f = *state;
    static const char *const cases[][2] = {
        {"GET", "/healthz"}, {"GET", "/metrics"},       {"POST", "/invoke"},
        {"ANY", "/invoke"},  {"POST", "/invoke-async"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f->cfg->nroutes = 0;
        add(f->cfg, cases[i][0], cases[i][1], "echo");
        assert_int_equal(compile(f), -1);
        assert_non_null(strstr(f->err, "gateway's own endpoints"));
    }
    /* Another method on a fixed path, or a pattern that only overlaps, is allowed. */
    f->cfg->nroutes = 0;
    add(f->cfg, "POST", "/healthz", "echo");
    add(f->cfg, "GET", "/invoke/{fn}", "echo");
    add(f->cfg, "ANY", "/{proxy+}", "echo");
    assert_int_equal(compile(f), 0);
}

static void test_unknown_method_refused(void **state)
{
    struct fixture *f = *state;

    add(f->cfg, "TRACE", "/a", "echo");
    assert_int_equal(compile(f), -1);
    assert_non_null(strstr(f->err, "routes[0].method"));
}

/* ---- matching ---- */

static void test_literal_and_params(void **state)
{
    struct fixture *f = *state;
    struct lgw_route_params p;

    add(f->cfg, "GET", "/users/{user}/orders/{order}", "orders");
    add(f->cfg, "GET", "/", "root");
    add(f->cfg, "GET", "/users", "users");
    assert_int_equal(compile(f), 0);
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/users/u 1/orders/o-7", &p), 0);
    assert_int_equal(p.n, 2);
    param_is(&p, 0, "user", "u 1");
    param_is(&p, 1, "order", "o-7");
    assert_string_equal(pick(f, "GET", "/"), "root");
    assert_string_equal(pick(f, "GET", "/users"), "users");
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/users", &p), 2);
    assert_int_equal(p.n, 0);
    /* a parameter is one non-empty segment; literals are exact */
    assert_string_equal(pick(f, "GET", "/users/u/orders"), "404");
    assert_string_equal(pick(f, "GET", "/users/u/orders/"), "404");
    assert_string_equal(pick(f, "GET", "/users//orders/1"), "404");
    assert_string_equal(pick(f, "GET", "/users/u/orders/1/x"), "404");
    assert_string_equal(pick(f, "GET", "/Users"), "404");
    assert_string_equal(pick(f, "GET", "/users/"), "404");
    assert_string_equal(pick(f, "GET", "//"), "404");
    assert_string_equal(pick(f, "GET", ""), "404");
    assert_string_equal(pick(f, "GET", "*"), "404");
}

static void test_greedy_proxy(void **state)
{
    struct fixture *f = *state;
    struct lgw_route_params p;

    add(f->cfg, "ANY", "/files/{proxy+}", "files");
    add(f->cfg, "GET", "/{all+}", "all");
    assert_int_equal(compile(f), 0);
    assert_int_equal(lgw_routes_match(&f->srv, "PUT", "/files/a/b/c.txt", &p), 0);
    assert_int_equal(p.n, 1);
    param_is(&p, 0, "proxy", "a/b/c.txt");
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/files/x", &p), 0);
    param_is(&p, 0, "proxy", "x");
    /* the rest may hold empty segments and a trailing slash, but is never empty */
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/files/a//b/", &p), 0);
    param_is(&p, 0, "proxy", "a//b/");
    assert_string_equal(pick(f, "PUT", "/files/"), "405"); /* GET /{all+} only */
    assert_string_equal(pick(f, "PUT", "/files"), "405");
    assert_string_equal(pick(f, "GET", "/files"), "all");
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/other/x", &p), 1);
    param_is(&p, 0, "all", "other/x");
    assert_string_equal(pick(f, "GET", "/"), "404");
}

static void test_precedence_as_api_gateway(void **state)
{
    struct fixture *f = *state;
    struct lgw_route_params p;

    /* The developer guide's example, plus a few more. */
    add(f->cfg, "GET", "/pets/dog/1", "exact");
    add(f->cfg, "GET", "/pets/dog/{id}", "param");
    add(f->cfg, "GET", "/pets/{proxy+}", "pets-greedy");
    add(f->cfg, "ANY", "/{proxy+}", "any-greedy");
    add(f->cfg, "GET", "/{a}/dog/{b}", "two-params");
    add(f->cfg, "ANY", "/pets/cat/{id}", "any-cat");
    add(f->cfg, "POST", "/pets/cat/{id}", "post-cat");
    assert_int_equal(compile(f), 0);
    assert_string_equal(pick(f, "GET", "/pets/dog/1"), "exact");
    assert_string_equal(pick(f, "GET", "/pets/dog/2"), "param");
    assert_string_equal(pick(f, "GET", "/cats/dog/2"), "two-params");
    assert_string_equal(pick(f, "GET", "/pets/cat/1/x"), "pets-greedy");
    /* a route without {proxy+} beats one with it, even with fewer literals */
    assert_string_equal(pick(f, "GET", "/pets/cat/1"), "any-cat");
    /* the method filters first: only the ANY greedy route takes POST /pets/dog/1 */
    assert_string_equal(pick(f, "POST", "/pets/dog/1"), "any-greedy");
    /* own method beats ANY for the same path */
    assert_string_equal(pick(f, "POST", "/pets/cat/1"), "post-cat");
    assert_string_equal(pick(f, "DELETE", "/pets/cat/1"), "any-cat");
    /* unusual methods match ANY routes only */
    assert_string_equal(pick(f, "PROPFIND", "/pets/dog/1"), "any-greedy");
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/pets/dog/7", &p), 1);
    param_is(&p, 0, "id", "7");
}

static void test_left_most_literal_wins(void **state)
{
    struct fixture *f = *state;
    struct lgw_route_params p;

    add(f->cfg, "GET", "/{x}/b/c", "later-literal");
    add(f->cfg, "GET", "/a/{y}/{z}", "first-literal");
    add(f->cfg, "GET", "/a/{p+}", "greedy");
    add(f->cfg, "GET", "/a/b/{q+}", "longer-greedy");
    assert_int_equal(compile(f), 0);
    assert_string_equal(pick(f, "GET", "/a/b/c"), "first-literal");
    assert_string_equal(pick(f, "GET", "/z/b/c"), "later-literal");
    assert_string_equal(pick(f, "GET", "/a/b/c/d"), "longer-greedy");
    assert_string_equal(pick(f, "GET", "/a/x/c/d"), "greedy");
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/a/b/c/d", &p), 3);
    param_is(&p, 0, "q", "c/d");
}

static void test_wrong_method_and_allow(void **state)
{
    struct fixture *f = *state;
    struct lgw_route_params p;

    add(f->cfg, "DELETE", "/doc/{id}", "del");
    add(f->cfg, "PUT", "/doc/{id}", "put");
    add(f->cfg, "GET", "/doc/{id}/meta", "meta");
    add(f->cfg, "HEAD", "/doc/{id}/meta", "meta-head");
    add(f->cfg, "ANY", "/free/{x}", "free");
    add(f->cfg, "POST", "/free/{y}", "free-post");
    assert_int_equal(compile(f), 0);
    p.n = 99;
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/doc/1", &p), LGW_ROUTES_WRONG_METHOD);
    assert_int_equal(p.n, 0);
    assert_string_equal(lgw_routes_allow(&f->srv, "/doc/1"), "PUT, DELETE");
    assert_string_equal(pick(f, "PATCH", "/doc/1/meta"), "405");
    assert_string_equal(lgw_routes_allow(&f->srv, "/doc/1/meta"), "GET, HEAD");
    /* a GET route does not answer HEAD (API Gateway's routes name HEAD on their own) */
    assert_string_equal(pick(f, "HEAD", "/doc/1"), "405");
    assert_string_equal(pick(f, "HEAD", "/doc/1/meta"), "meta-head");
    /* with an ANY route on the path, no method is wrong */
    assert_string_equal(pick(f, "GET", "/free/1"), "free");
    assert_null(lgw_routes_allow(&f->srv, "/free/1"));
    assert_null(lgw_routes_allow(&f->srv, "/nowhere"));
    assert_string_equal(pick(f, "GET", "/nowhere"), "404");
}

static void test_route_keys_and_payload(void **state)
{
    struct fixture *f = *state;

    add(f->cfg, "ANY", "/v1/{proxy+}", "echo");
    f->cfg->routes[0].payload_version = 1;
    add(f->cfg, "GET", "/", "echo");
    assert_int_equal(compile(f), 0);
    assert_string_equal(lgw_routes_key(&f->srv, 0), "ANY /v1/{proxy+}");
    assert_int_equal(lgw_routes_config(&f->srv, 0)->payload_version, 1);
    assert_string_equal(lgw_routes_key(&f->srv, 1), "GET /");
}

static void test_many_routes(void **state)
{
    struct fixture *f = *state;
    char path[64], want[64];

    for (int i = 0; i < LGW_CONFIG_MAX_ROUTES; i++) {
        snprintf(path, sizeof(path), "/r%d/{id}", i);
        add(f->cfg, "GET", path, "echo");
        snprintf(f->cfg->routes[i].function, sizeof(f->cfg->routes[i].function), "f%d", i);
    }
    assert_int_equal(compile(f), 0);
    for (int i = 0; i < LGW_CONFIG_MAX_ROUTES; i += 17) {
        snprintf(path, sizeof(path), "/r%d/x", i);
        snprintf(want, sizeof(want), "f%d", i);
        assert_string_equal(pick(f, "GET", path), want);
    }
}

static void test_free_is_idempotent(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(compile(f), 0);
    lgw_routes_free(&f->srv);
    lgw_routes_free(&f->srv);
    lgw_routes_free(NULL);
    assert_int_equal(lgw_routes_count(&f->srv), 0);
    assert_int_equal(lgw_routes_match(&f->srv, "GET", "/hello/x", NULL), LGW_ROUTES_NONE);
    /* compiling again replaces the table */
    assert_int_equal(compile(f), 0);
    assert_int_equal(compile(f), 0);
    assert_int_equal(lgw_routes_count(&f->srv), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_hello_route_in_local_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_default_route_when_configured_or_lambda, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_good_patterns_compile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_patterns_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflicting_routes_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixed_endpoints_cannot_be_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_greedy_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence_as_api_gateway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_left_most_literal_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_method_and_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_keys_and_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_is_idempotent, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
