#define _DEFAULT_SOURCE /* readlink */
/* test_registry.c - handler tables, plugin loading (the seed's InvalidFunctionTypeError cases)
 * and the host-independent parts of the execution context. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "context.h"
#include "registry.h"

static char plugin_dir[PATH_MAX];

static const char *plugin(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/lib%s.so", plugin_dir, name);
    return path;
}

static json_t *h(struct lgw_exec_ctx *ctx)
{
    return json_incref(lgw_event(ctx));
}

static void test_builtins(void **state)
{
    struct lgw_registry *r = lgw_registry_new();
    char err[256];
    static const char *const names[] = {"echo", "hello", "fail", "sleep", "config"};

    (void)state;
    assert_int_equal(lgw_registry_add_table(r, lgw_builtin_handlers, "b", err, sizeof(err)), 0);
    assert_int_equal(lgw_registry_count(r), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_non_null(lgw_registry_find(r, names[i]));
        assert_string_equal(lgw_registry_at(r, i)->name, names[i]);
    }
    assert_null(lgw_registry_find(r, "nope"));
    assert_null(lgw_registry_at(r, 5));
    lgw_registry_free(r);
}

static void test_bad_tables(void **state)
{
    struct lgw_registry *r = lgw_registry_new();
    char err[256];
    const struct lgw_handler_def bad_name[] = {{LGW_HANDLER_ABI, "has space", h, NULL, 0}, {0}};
    const struct lgw_handler_def no_fn[] = {{LGW_HANDLER_ABI, "x", NULL, NULL, 0}, {0}};
    const struct lgw_handler_def bad_abi[] = {{7, "x", h, NULL, 0}, {0}};
    const struct lgw_handler_def empty[] = {{0}};
    const struct lgw_handler_def one_bad[] = {
        {LGW_HANDLER_ABI, "good", h, NULL, 0}, {LGW_HANDLER_ABI, "", h, NULL, 0}, {0}};

    (void)state;
    assert_int_equal(lgw_registry_add_table(r, bad_name, "t", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "InvalidFunctionTypeError"));
    assert_int_equal(lgw_registry_add_table(r, no_fn, "t", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not callable"));
    assert_int_equal(lgw_registry_add_table(r, bad_abi, "t", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ABI"));
    assert_int_equal(lgw_registry_add_table(r, empty, "t", err, sizeof(err)), -1);
    /* a table with one bad entry adds nothing */
    assert_int_equal(lgw_registry_add_table(r, one_bad, "t", err, sizeof(err)), -1);
    assert_null(lgw_registry_find(r, "good"));
    assert_int_equal(lgw_registry_count(r), 0);
    lgw_registry_free(r);
}

static void test_plugin_loads_and_overrides(void **state)
{
    struct lgw_registry *r = lgw_registry_new();
    char err[512];
    const struct lgw_handler_def *echo_before;

    (void)state;
    assert_int_equal(lgw_registry_add_table(r, lgw_builtin_handlers, "b", err, sizeof(err)), 0);
    echo_before = lgw_registry_find(r, "echo");
    assert_int_equal(lgw_registry_load_plugin(r, plugin("testplugin"), err, sizeof(err)), 0);
    assert_non_null(lgw_registry_find(r, "shout"));
    assert_non_null(lgw_registry_find(r, "whoami"));
    assert_ptr_not_equal(lgw_registry_find(r, "echo"), echo_before);
    assert_int_equal(lgw_registry_count(r), 8); /* 5 built-ins + shout, whoami, record */
    lgw_registry_free(r);
}

static void test_bad_plugins_refused(void **state)
{
    struct lgw_registry *r = lgw_registry_new();
    char err[512];

    (void)state;
    assert_int_equal(lgw_registry_load_plugin(r, plugin("badabi"), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ABI"));
    assert_int_equal(lgw_registry_load_plugin(r, plugin("nullfn"), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not callable"));
    assert_int_equal(lgw_registry_load_plugin(r, plugin("notable"), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exports no 'lgw_handlers'"));
    assert_int_equal(lgw_registry_load_plugin(r, "/nonexistent/libx.so", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot load"));
    assert_int_equal(lgw_registry_load_plugin(r, "libx.so", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "must be a path"));
    assert_int_equal(lgw_registry_count(r), 0);
    lgw_registry_free(r);
}

/* A test host for the execution context interface. */
struct notices {
    int count;
    char last[256];
};

static const char *t_config(struct lgw_exec_ctx *ctx, const char *key)
{
    (void)ctx;
    return strcmp(key, "A") == 0 ? "from-host" : NULL;
}

static char last_log[256];

static void t_log(struct lgw_exec_ctx *ctx, const char *line, size_t len)
{
    (void)ctx;
    snprintf(last_log, sizeof(last_log), "%.*s", (int)len, line);
}

static void sink(const struct lgw_notice *n, void *arg)
{
    struct notices *ns = arg;
    ns->count++;
    snprintf(ns->last, sizeof(ns->last), "%s|%s|%s", n->error_type, n->message,
             n->function ? n->function : "-");
}

static void test_exec_context(void **state)
{
    static const struct lgw_exec_ctx_ops ops = {.config_get = t_config, .log = t_log};
    struct lgw_exec_ctx ctx;
    struct notices ns = {0};
    json_t *ev = json_object();

    (void)state;
    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &ops;
    ctx.event = ev;
    ctx.context.function_name = "fn";
    ctx.context.deadline_ms = lgw_now_ms() + 1000;
    setenv("LGW_REG_TEST_B", "from-process", 1);
    assert_string_equal(lgw_config_get(&ctx, "A", "d"), "from-host");
    assert_string_equal(lgw_config_get(&ctx, "LGW_REG_TEST_B", "d"), "from-process");
    assert_string_equal(lgw_config_get(&ctx, "LGW_REG_TEST_NONE", "d"), "d");
    assert_null(lgw_config_get(&ctx, "LGW_REG_TEST_NONE", NULL));
    unsetenv("LGW_REG_TEST_B");
    assert_true(lgw_remaining_ms(&ctx) > 0 && lgw_remaining_ms(&ctx) <= 1000);
    assert_ptr_equal(lgw_event(&ctx), ev);

    lgw_log(&ctx, "n=%d", 42);
    assert_string_equal(last_log, "n=42");

    /* no notify op: the pluggable sink gets it */
    lgw_notice_sink_set(sink, &ns);
    lgw_notify(&ctx, "KeyError", "missing %s", "k");
    lgw_notice_sink_set(NULL, NULL);
    assert_int_equal(ns.count, 1);
    assert_string_equal(ns.last, "KeyError|missing k|fn");

    assert_null(lgw_raise(&ctx, "ValueError", "bad %d", 1));
    assert_null(lgw_raise(&ctx, NULL, "second wins"));
    assert_true(ctx.raised);
    assert_string_equal(ctx.error_type, "Error");
    assert_string_equal(ctx.error_message, "second wins");
    lgw_exec_ctx_release(&ctx);
    assert_false(ctx.raised);
    json_decref(ev);
}

static json_t *run(const char *handler, const char *event, struct lgw_exec_ctx *ctx)
{
    struct lgw_registry *r = lgw_registry_new();
    char err[128];
    json_t *ev = json_loads(event, 0, NULL), *res;

    lgw_registry_add_table(r, lgw_builtin_handlers, "b", err, sizeof(err));
    memset(ctx, 0, sizeof(*ctx));
    ctx->event = ev;
    ctx->context.deadline_ms = lgw_now_ms() + 3000;
    res = lgw_registry_find(r, handler)->fn(ctx);
    json_decref(ev);
    lgw_registry_free(r);
    return res;
}

static void test_example_handlers(void **state)
{
    struct lgw_exec_ctx ctx;
    json_t *res;

    (void)state;
    res = run("hello", "{\"pathParameters\":{\"name\":\"Ann\"},\"name\":\"x\"}", &ctx);
    assert_int_equal(json_integer_value(json_object_get(res, "statusCode")), 200);
    assert_string_equal(json_string_value(json_object_get(res, "body")),
                        "{\"message\":\"Hello, Ann!\"}");
    json_decref(res);
    res = run("hello", "{\"queryStringParameters\":{\"name\":\"Q\"},\"name\":\"x\"}", &ctx);
    assert_string_equal(json_string_value(json_object_get(res, "body")),
                        "{\"message\":\"Hello, Q!\"}");
    json_decref(res);
    res = run("hello", "{\"name\":\"E\"}", &ctx);
    assert_string_equal(json_string_value(json_object_get(res, "body")),
                        "{\"message\":\"Hello, E!\"}");
    json_decref(res);
    res = run("hello", "{}", &ctx);
    assert_string_equal(json_string_value(json_object_get(res, "body")),
                        "{\"message\":\"Hello, world!\"}");
    json_decref(res);

    assert_null(run("fail", "{\"message\":\"m\",\"type\":\"KeyError\"}", &ctx));
    assert_string_equal(ctx.error_type, "KeyError");
    assert_string_equal(ctx.error_message, "m");
    lgw_exec_ctx_release(&ctx);

    assert_null(run("sleep", "{\"ms\":-1}", &ctx));
    assert_string_equal(ctx.error_type, "ValueError");
    lgw_exec_ctx_release(&ctx);
    assert_null(run("sleep", "{\"ms\":\"5\"}", &ctx));
    lgw_exec_ctx_release(&ctx);

    assert_null(run("config", "{}", &ctx));
    assert_string_equal(ctx.error_type, "KeyError");
    lgw_exec_ctx_release(&ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins),
        cmocka_unit_test(test_bad_tables),
        cmocka_unit_test(test_plugin_loads_and_overrides),
        cmocka_unit_test(test_bad_plugins_refused),
        cmocka_unit_test(test_exec_context),
        cmocka_unit_test(test_example_handlers),
    };
    const char *dir = getenv("LGW_PLUGIN_DIR");

    /* Plugins are built next to the tests: build[/san]/plugins beside build[/san]/tests. */
    if (dir) {
        snprintf(plugin_dir, sizeof(plugin_dir), "%s", dir);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;
        (void)argc;
        (void)argv;
        self[n > 0 ? n : 0] = '\0';
        slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        if (strlen(self) + sizeof("/plugins") > sizeof(plugin_dir))
            return 1;
        memcpy(plugin_dir, self, strlen(self));
        memcpy(plugin_dir + strlen(self), "/plugins", sizeof("/plugins"));
    }
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
