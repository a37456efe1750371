#define _DEFAULT_SOURCE /* mkstemp */
/* test_srv_config.c - configuration: defaults, the JSON file, LGW_* variables, flags, their
 * precedence, and one clear error line for every bad or unknown setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char err[1024];

static int parse(struct lgw_config *c, const char *json)
{
    return lgw_config_parse_json(c, json, strlen(json), "cfg.json", err, sizeof(err));
}

static void bad(const char *json, const char *needle)
{
    struct lgw_config *c = lgw_config_new();

    err[0] = '\0';
    assert_int_equal(parse(c, json), -1);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not name '%s'", err, needle);
    assert_null(strchr(err, '\n')); /* one line */
    lgw_config_free(c);
}

static void test_defaults(void **state)
{
    struct lgw_config *c = lgw_config_new();
    char *argv[] = {"lgw", NULL};
    char *envp[] = {NULL};

    (void)state;
    assert_int_equal(lgw_config_load(c, 1, argv, envp, err, sizeof(err)), 0);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->mode, LGW_MODE_LOCAL);
    assert_int_equal(c->max_workers, 64);
    assert_string_equal(c->region, "us-east-1");
    assert_string_equal(c->account_id, "000000000000");
    assert_true(c->serve_all_handlers);
    lgw_config_free(c);
}

static void test_full_file(void **state)
{
    struct lgw_config *c = lgw_config_new();
    const struct lgw_function_config *f;

    (void)state;
    assert_int_equal(
        parse(c, "{\"listen\":\"0.0.0.0:9000\",\"mode\":\"lambda\",\"region\":\"eu-west-1\","
                 "\"account_id\":\"123456789012\",\"handlers\":[\"./a.so\",\"./b.so\"],"
                 "\"limits\":{\"max_workers\":8,\"async_queue\":5,\"sync_queue\":7,"
                 "\"http_threads\":1,\"max_connections\":100,\"connection_timeout\":10,"
                 "\"connection_memory\":16384},"
                 "\"access_log\":false,\"function_logs\":false,\"serve_all_handlers\":false,"
                 "\"allow\":[\"orders\",\"billing-*\"],"
                 "\"functions\":{\"orders\":{\"handler\":\"echo\",\"timeout\":1.5,"
                 "\"memory\":256,\"concurrency\":3,\"aliases\":[\"live\"],\"inline\":false,"
                 "\"environment\":{\"K\":\"V\"},"
                 "\"target\":\"arn:aws:lambda:us-east-1:123456789012:function:orders:live\"}},"
                 "\"routes\":[{\"method\":\"GET\",\"path\":\"/o/{id}\",\"function\":\"orders\","
                 "\"payload\":\"1.0\"}],"
                 "\"access_keys\":{\"AKID\":\"secret\"}}"),
        0);
    assert_string_equal(c->listen_host, "0.0.0.0");
    assert_int_equal(c->listen_port, 9000);
    assert_int_equal(c->mode, LGW_MODE_LAMBDA);
    assert_string_equal(c->region, "eu-west-1");
    assert_int_equal(c->nhandler_libs, 2);
    assert_int_equal(c->max_workers, 8);
    assert_int_equal(c->async_queue_max, 5);
    assert_int_equal(c->sync_queue_max, 7);
    assert_int_equal(c->connection_memory, 16384);
    assert_false(c->access_log);
    assert_false(c->serve_all_handlers);
    assert_int_equal(c->nallow, 2);
    assert_string_equal(c->allow[1], "billing-*");
    f = lgw_config_function(c, "orders");
    assert_non_null(f);
    assert_string_equal(f->handler, "echo");
    assert_int_equal(f->timeout_ms, 1500);
    assert_int_equal(f->memory_mb, 256);
    assert_int_equal(f->concurrency, 3);
    assert_int_equal(f->run_inline, 0);
    assert_int_equal(f->naliases, 1);
    assert_string_equal(f->aliases[0], "live");
    assert_string_equal(json_string_value(json_object_get(f->environment, "K")), "V");
    assert_non_null(strstr(f->target, "function:orders:live"));
    assert_int_equal(c->nroutes, 1);
    assert_int_equal(c->routes[0].payload_version, 1);
    assert_true(c->routes_configured);
    assert_int_equal(c->nkeys, 1);
    assert_string_equal(c->keys[0].id, "AKID");
    assert_null(lgw_config_function(c, "nope"));
    lgw_config_free(c);
}

static void test_bad_files(void **state)
{
    (void)state;
    bad("{", "invalid JSON");
    bad("[]", "must be a JSON object");
    bad("{\"lisen\":\"x\"}", "unknown key 'lisen'");
    bad("{\"listen\":\"nope\"}", "listen");
    bad("{\"listen\":\"1.2.3.4:99999\"}", "listen");
    bad("{\"mode\":\"cloud\"}", "mode");
    bad("{\"account_id\":\"12\"}", "account_id");
    bad("{\"limits\":{\"max_workers\":0}}", "limits.max_workers");
    bad("{\"limits\":{\"workers\":1}}", "unknown key 'workers'");
    bad("{\"limits\":{\"connection_memory\":1024}}", "limits.connection_memory");
    bad("{\"functions\":{\"bad name\":{}}}", "functions.bad name");
    bad("{\"functions\":{\"f\":{\"timeout\":0}}}", "functions.f.timeout");
    bad("{\"functions\":{\"f\":{\"timeout\":901}}}", "functions.f.timeout");
    bad("{\"functions\":{\"f\":{\"timout\":3}}}", "unknown key 'timout'");
    bad("{\"functions\":{\"f\":{\"memory\":64}}}", "functions.f.memory");
    bad("{\"functions\":{\"f\":{\"inline\":1}}}", "functions.f.inline");
    bad("{\"functions\":{\"f\":{\"environment\":{\"A\":1}}}}", "functions.f.environment.A");
    bad("{\"functions\":{\"f\":{\"aliases\":[\"a.b\"]}}}", "functions.f.aliases[0]");
    bad("{\"functions\":{\"f\":{\"handler\":\"x y\"}}}", "functions.f.handler");
    bad("{\"functions\":[]}", "functions");
    bad("{\"routes\":[{\"method\":\"FETCH\",\"path\":\"/x\",\"function\":\"f\"}]}",
        "routes[0].method");
    bad("{\"routes\":[{\"path\":\"x\",\"function\":\"f\"}]}", "routes[0].path");
    bad("{\"routes\":[{\"path\":\"/x\",\"function\":\"f\",\"payload\":\"3.0\"}]}",
        "routes[0].payload");
    bad("{\"allow\":[\"a b\"]}", "allow[0]");
    bad("{\"access_keys\":{\"AK\":\"\"}}", "access_keys");
    bad("{\"access_log\":\"yes\"}", "access_log");
    bad("{\"a\":1,\"a\":2}", "invalid JSON"); /* duplicate keys are refused */
}

static void test_precedence(void **state)
{
    char path[] = "/tmp/lgw-config-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "{\"listen\":\"127.0.0.1:1111\",\"region\":\"file-region\","
                       "\"limits\":{\"max_workers\":5}}";
    struct lgw_config *c = lgw_config_new();
    char *argv[] = {"lgw", "--config", path, "--listen", "127.0.0.1:3333", NULL};
    char env1[] = "LGW_LISTEN=127.0.0.1:2222";
    char env2[] = "LGW_REGION=env-region";
    char *envp[] = {env1, env2, NULL};

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(lgw_config_load(c, 5, argv, envp, err, sizeof(err)), 0);
    assert_int_equal(c->listen_port, 3333);       /* flag beats env and file */
    assert_string_equal(c->region, "env-region"); /* env beats file */
    assert_int_equal(c->max_workers, 5);          /* file beats default */
    assert_string_equal(c->config_file, path);
    lgw_config_free(c);

    /* LGW_CONFIG names the file too */
    c = lgw_config_new();
    {
        char e[64 + sizeof(path)];
        char *envp2[] = {e, NULL};
        char *argv2[] = {"lgw", NULL};
        snprintf(e, sizeof(e), "LGW_CONFIG=%s", path);
        assert_int_equal(lgw_config_load(c, 1, argv2, envp2, err, sizeof(err)), 0);
        assert_int_equal(c->listen_port, 1111);
    }
    lgw_config_free(c);
    unlink(path);
}

static void load_bad(int argc, char **argv, char **envp, const char *needle)
{
    struct lgw_config *c = lgw_config_new();

    err[0] = '\0';
    assert_int_equal(lgw_config_load(c, argc, argv, envp, err, sizeof(err)), -1);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not name '%s'", err, needle);
    lgw_config_free(c);
}

static void test_bad_flags_and_env(void **state)
{
    char *none[] = {NULL};
    char *a1[] = {"lgw", "--bogus", NULL};
    char *a2[] = {"lgw", "--listen", NULL};
    char *a3[] = {"lgw", "--mode", "cloud", NULL};
    char *a4[] = {"lgw", "--config", "/nonexistent/cfg.json", NULL};
    char *a5[] = {"lgw", "--listen=[::1]:0", "--handlers=./x.so", "--allow-any-function", NULL};
    char *a0[] = {"lgw", NULL};
    char e1[] = "LGW_MAX_WORKERS=lots";
    char e2[] = "LGW_ACCESS_LOG=maybe";
    char e3[] = "LGW_LISTEN=8080";
    char *env1[] = {e1, NULL}, *env2[] = {e2, NULL}, *env3[] = {e3, NULL};
    struct lgw_config *c;

    (void)state;
    load_bad(2, a1, none, "unknown option '--bogus'");
    load_bad(2, a2, none, "--listen");
    load_bad(3, a3, none, "--mode cloud");
    load_bad(3, a4, none, "/nonexistent/cfg.json");
    load_bad(1, a0, env1, "LGW_MAX_WORKERS=lots");
    load_bad(1, a0, env2, "LGW_ACCESS_LOG=maybe");
    load_bad(1, a0, env3, "LGW_LISTEN=8080");
    c = lgw_config_new();
    assert_int_equal(lgw_config_load(c, 4, a5, none, err, sizeof(err)), 0);
    assert_string_equal(c->listen_host, "::1");
    assert_int_equal(c->listen_port, 0);
    assert_int_equal(c->nhandler_libs, 1);
    assert_true(c->allow_any_function);
    lgw_config_free(c);
}

static void test_listen_parse(void **state)
{
    char host[64];
    unsigned port;

    (void)state;
    assert_int_equal(lgw_config_parse_listen("localhost:80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 80);
    assert_int_equal(lgw_config_parse_listen(":9", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(lgw_config_parse_listen("[::]:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::");
    assert_int_equal(lgw_config_parse_listen("::1:80", host, sizeof(host), &port), -1);
    assert_int_equal(lgw_config_parse_listen("h:", host, sizeof(host), &port), -1);
    assert_int_equal(lgw_config_parse_listen("h:-1", host, sizeof(host), &port), -1);
    assert_int_equal(lgw_config_parse_listen("h:1x", host, sizeof(host), &port), -1);
    assert_int_equal(lgw_config_parse_listen("", host, sizeof(host), &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),          cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_bad_files),         cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_bad_flags_and_env), cmocka_unit_test(test_listen_parse),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
