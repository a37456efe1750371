/*
 * config.c - configuration from a JSON file, LGW_* variables and flags (see config.h).
 */
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char usage[] =
    "usage: lambda-gateway [options]\n"
    "\n"
    "  --listen HOST:PORT     where to listen (default 127.0.0.1:8080; port 0 = any free)\n"
    "  --mode local|lambda    run handlers in-process (default) or forward to AWS Lambda\n"
    "  --config FILE          JSON configuration file\n"
    "  --handlers LIB.so      load handlers from a shared object (repeatable)\n"
    "  --allow-any-function   lambda mode: allow every function (no allow-list)\n"
    "  --help, --version\n"
    "\n"
    "Environment: LGW_LISTEN, LGW_MODE, LGW_CONFIG, LGW_HANDLERS (colon-separated),\n"
    "LGW_REGION, LGW_ACCOUNT_ID, LGW_MAX_WORKERS, LGW_ASYNC_QUEUE_MAX, LGW_SYNC_QUEUE_MAX,\n"
    "LGW_HTTP_THREADS, LGW_MAX_CONNECTIONS, LGW_CONNECTION_MEMORY, LGW_ACCESS_LOG (0/1),\n"
    "LGW_FUNCTION_LOGS (0/1).\n"
    "Precedence: defaults < config file < environment < flags.\n";

const char *lgw_config_usage(void)
{
    return usage;
}

struct lgw_config *lgw_config_new(void)
{
    struct lgw_config *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
    c->listen_port = 8080;
    c->mode = LGW_MODE_LOCAL;
    snprintf(c->region, sizeof(c->region), "%s", "us-east-1");
    snprintf(c->account_id, sizeof(c->account_id), "%s", "000000000000");
    c->max_workers = 64;
    c->sync_queue_max = 1024;
    c->async_queue_max = 1000;
    c->max_connections = 16384;
    c->connection_timeout_s = 75;
    c->connection_memory = 6144;
    c->access_log = true;
    c->function_logs = true;
    c->serve_all_handlers = true;
    return c;
}

void lgw_config_free(struct lgw_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nfunctions; i++)
        lgw_function_config_release(&c->functions[i]);
    for (size_t i = 0; i < c->nallow; i++)
        free(c->allow[i]);
    OPENSSL_cleanse(c->keys, sizeof(c->keys));
    free(c);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

int lgw_config_parse_listen(const char *s, char *host, size_t hostlen, unsigned *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    char *end;
    unsigned long p;

    if (!s || !*s)
        return -1;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl))
            return -1; /* a bare IPv6 address needs brackets */
    }
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p > 65535)
        return -1;
    if (hl >= hostlen)
        return -1;
    if (hl == 0) {
        snprintf(host, hostlen, "%s", "127.0.0.1");
    } else {
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    *port = (unsigned)p;
    return 0;
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
    char *end;
    unsigned long v;

    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
        *out = true;
    else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

static int set_mode(struct lgw_config *c, const char *v)
{
    if (!strcmp(v, "local"))
        c->mode = LGW_MODE_LOCAL;
    else if (!strcmp(v, "lambda"))
        c->mode = LGW_MODE_LAMBDA;
    else
        return -1;
    return 0;
}

static int add_handler_lib(struct lgw_config *c, const char *path, const char *origin, char *err,
                           size_t errlen)
{
    if (!*path)
        FAIL("%s: empty handler library path", origin);
    if (strlen(path) >= LGW_PATH_MAX)
        FAIL("%s: handler library path longer than %d bytes", origin, LGW_PATH_MAX - 1);
    for (size_t i = 0; i < c->nhandler_libs; i++)
        if (!strcmp(c->handler_libs[i], path))
            return 0;
    if (c->nhandler_libs == LGW_CONFIG_MAX_HANDLER_LIBS)
        FAIL("%s: more than %d handler libraries", origin, LGW_CONFIG_MAX_HANDLER_LIBS);
    snprintf(c->handler_libs[c->nhandler_libs++], LGW_PATH_MAX, "%s", path);
    return 0;
}

/* ---- the JSON file ---- */

/* Checks that every key of obj is one of the NULL-terminated allowed list. */
static int only_keys(json_t *obj, const char *const *allowed, const char *where, char *err,
                     size_t errlen)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        size_t i;
        for (i = 0; allowed[i]; i++)
            if (!strcmp(key, allowed[i]))
                break;
        if (!allowed[i])
            FAIL("%s: unknown key '%s'", where, key);
    }
    return 0;
}

static int get_uint(json_t *obj, const char *key, unsigned long min, unsigned long max,
                    unsigned *out, const char *where, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
        json_integer_value(v) > (json_int_t)max)
        FAIL("%s.%s: must be an integer from %lu to %lu", where, key, min, max);
    *out = (unsigned)json_integer_value(v);
    return 0;
}

static int get_bool(json_t *obj, const char *key, bool *out, const char *where, char *err,
                    size_t errlen)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_boolean(v))
        FAIL("%s.%s: must be true or false", where, key);
    *out = json_is_true(v);
    return 0;
}

static int get_str(json_t *obj, const char *key, char *out, size_t cap, const char *where,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        FAIL("%s.%s: must be a non-empty string", where, key);
    if (json_string_length(v) >= cap)
        FAIL("%s.%s: longer than %zu characters", where, key, cap - 1);
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

static int parse_function(struct lgw_config *c, const char *name, json_t *f, const char *origin,
                          char *err, size_t errlen)
{
    static const char *const keys[] = {"handler", "target",      "timeout", "memory", "concurrency",
                                       "aliases", "environment", "inline",  NULL};
    struct lgw_function_config *fc;
    char where[LGW_FUNCTION_NAME_MAX + 64];
    json_t *v;
    size_t i;

    snprintf(where, sizeof(where), "%s: functions.%.64s", origin, name);
    if (!lgw_function_name_valid(name))
        FAIL("%s: function name must be 1-64 of [A-Za-z0-9_-]", where);
    if (!json_is_object(f))
        FAIL("%s: must be an object", where);
    if (only_keys(f, keys, where, err, errlen) < 0)
        return -1;
    for (i = 0; i < c->nfunctions; i++)
        if (!strcmp(c->functions[i].name, name))
            break;
    if (i == c->nfunctions) {
        if (c->nfunctions == LGW_CONFIG_MAX_FUNCTIONS)
            FAIL("%s: more than %d functions", origin, LGW_CONFIG_MAX_FUNCTIONS);
        lgw_function_config_init(&c->functions[c->nfunctions++]);
    }
    fc = &c->functions[i];
    snprintf(fc->name, sizeof(fc->name), "%s", name);
    if (get_str(f, "handler", fc->handler, sizeof(fc->handler), where, err, errlen) < 0 ||
        get_str(f, "target", fc->target, sizeof(fc->target), where, err, errlen) < 0 ||
        get_uint(f, "memory", 128, 10240, &fc->memory_mb, where, err, errlen) < 0 ||
        get_uint(f, "concurrency", 0, 100000, &fc->concurrency, where, err, errlen) < 0)
        return -1;
    if ((v = json_object_get(f, "inline"))) {
        if (!json_is_boolean(v))
            FAIL("%s.inline: must be true or false", where);
        fc->run_inline = json_is_true(v);
    }
    if (fc->handler[0] && !lgw_function_name_valid(fc->handler))
        FAIL("%s.handler: must be 1-64 of [A-Za-z0-9_-]", where);
    if ((v = json_object_get(f, "timeout"))) {
        /* Lambda's Timeout is in seconds (1-900); fractions are allowed here for tests. */
        double s = json_is_number(v) ? json_number_value(v) : -1;
        if (s < 0.001 || s > 900)
            FAIL("%s.timeout: must be a number of seconds from 0.001 to 900", where);
        fc->timeout_ms = (unsigned)(s * 1000 + 0.5);
    }
    if ((v = json_object_get(f, "aliases"))) {
        json_t *a;
        size_t k;
        if (!json_is_array(v) || json_array_size(v) > LGW_MAX_ALIASES)
            FAIL("%s.aliases: must be an array of at most %d names", where, LGW_MAX_ALIASES);
        fc->naliases = 0;
        json_array_foreach(v, k, a)
        {
            if (!json_is_string(a) || !lgw_qualifier_valid(json_string_value(a)) ||
                !strcmp(json_string_value(a), "$LATEST"))
                FAIL("%s.aliases[%zu]: must be 1-128 of [A-Za-z0-9_-]", where, k);
            snprintf(fc->aliases[fc->naliases++], sizeof(fc->aliases[0]), "%s",
                     json_string_value(a));
        }
    }
    if ((v = json_object_get(f, "environment"))) {
        const char *k;
        json_t *e;
        if (!json_is_object(v))
            FAIL("%s.environment: must be an object of strings", where);
        json_object_foreach(v, k, e)
        {
            if (!json_is_string(e))
                FAIL("%s.environment.%s: must be a string", where, k);
        }
        json_decref(fc->environment);
        fc->environment = json_incref(v);
    }
    return 0;
}

static int parse_route(struct lgw_config *c, json_t *r, size_t idx, const char *origin, char *err,
                       size_t errlen)
{
    static const char *const keys[] = {"method", "path", "function", "payload", NULL};
    static const char *const methods[] = {"GET",     "POST", "PUT", "DELETE", "PATCH",
                                          "OPTIONS", "HEAD", "ANY", NULL};
    struct lgw_route_config *rc;
    char where[96];
    json_t *v;
    size_t i;

    snprintf(where, sizeof(where), "%s: routes[%zu]", origin, idx);
    if (!json_is_object(r))
        FAIL("%s: must be an object", where);
    if (only_keys(r, keys, where, err, errlen) < 0)
        return -1;
    if (c->nroutes == LGW_CONFIG_MAX_ROUTES)
        FAIL("%s: more than %d routes", origin, LGW_CONFIG_MAX_ROUTES);
    rc = &c->routes[c->nroutes];
    memset(rc, 0, sizeof(*rc));
    snprintf(rc->method, sizeof(rc->method), "ANY");
    rc->payload_version = 2;
    if (get_str(r, "method", rc->method, sizeof(rc->method), where, err, errlen) < 0 ||
        get_str(r, "path", rc->path, sizeof(rc->path), where, err, errlen) < 0 ||
        get_str(r, "function", rc->function, sizeof(rc->function), where, err, errlen) < 0)
        return -1;
    for (i = 0; methods[i]; i++)
        if (!strcmp(rc->method, methods[i]))
            break;
    if (!methods[i])
        FAIL("%s.method: must be one of GET POST PUT DELETE PATCH OPTIONS HEAD ANY", where);
    if (rc->path[0] != '/')
        FAIL("%s.path: must start with /", where);
    if (!lgw_function_name_valid(rc->function))
        FAIL("%s.function: must be a function name", where);
    if ((v = json_object_get(r, "payload"))) {
        if (json_is_string(v) && !strcmp(json_string_value(v), "1.0"))
            rc->payload_version = 1;
        else if (json_is_string(v) && !strcmp(json_string_value(v), "2.0"))
            rc->payload_version = 2;
        else
            FAIL("%s.payload: must be \"1.0\" or \"2.0\"", where);
    }
    c->nroutes++;
    return 0;
}

int lgw_config_parse_json(struct lgw_config *c, const char *text, size_t len, const char *origin,
                          char *err, size_t errlen)
{
    static const char *const keys[] = {"listen",
                                       "mode",
                                       "handlers",
                                       "region",
                                       "account_id",
                                       "functions",
                                       "routes",
                                       "allow",
                                       "limits",
                                       "access_log",
                                       "function_logs",
                                       "serve_all_handlers",
                                       "allow_any_function",
                                       "access_keys",
                                       NULL};
    static const char *const limit_keys[] = {
        "max_workers",     "sync_queue",         "async_queue",       "http_threads",
        "max_connections", "connection_timeout", "connection_memory", NULL};
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *v;
    int rc = -1;

    if (!root) {
        snprintf(err, errlen, "%s: invalid JSON at line %d, column %d: %s", origin, jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: the configuration must be a JSON object", origin);
        goto out;
    }
    if (only_keys(root, keys, origin, err, errlen) < 0)
        goto out;
    if ((v = json_object_get(root, "listen"))) {
        if (!json_is_string(v) ||
            lgw_config_parse_listen(json_string_value(v), c->listen_host, sizeof(c->listen_host),
                                    &c->listen_port) < 0) {
            snprintf(err, errlen, "%s: listen: must be \"HOST:PORT\"", origin);
            goto out;
        }
    }
    if ((v = json_object_get(root, "mode")) &&
        (!json_is_string(v) || set_mode(c, json_string_value(v)) < 0)) {
        snprintf(err, errlen, "%s: mode: must be \"local\" or \"lambda\"", origin);
        goto out;
    }
    if ((v = json_object_get(root, "handlers"))) {
        json_t *h;
        size_t i;
        if (!json_is_array(v)) {
            snprintf(err, errlen, "%s: handlers: must be an array of paths", origin);
            goto out;
        }
        json_array_foreach(v, i, h)
        {
            if (!json_is_string(h)) {
                snprintf(err, errlen, "%s: handlers[%zu]: must be a path", origin, i);
                goto out;
            }
            if (add_handler_lib(c, json_string_value(h), origin, err, errlen) < 0)
                goto out;
        }
    }
    if (get_str(root, "region", c->region, sizeof(c->region), origin, err, errlen) < 0)
        goto out;
    if (json_object_get(root, "region"))
        c->region_set = true;
    if ((v = json_object_get(root, "account_id"))) {
        const char *s = json_string_value(v);
        if (!s || strlen(s) != 12 || strspn(s, "0123456789") != 12) {
            snprintf(err, errlen, "%s: account_id: must be 12 digits", origin);
            goto out;
        }
        snprintf(c->account_id, sizeof(c->account_id), "%s", s);
    }
    if (get_bool(root, "access_log", &c->access_log, origin, err, errlen) < 0 ||
        get_bool(root, "function_logs", &c->function_logs, origin, err, errlen) < 0 ||
        get_bool(root, "serve_all_handlers", &c->serve_all_handlers, origin, err, errlen) < 0 ||
        get_bool(root, "allow_any_function", &c->allow_any_function, origin, err, errlen) < 0)
        goto out;
    if ((v = json_object_get(root, "limits"))) {
        char where[LGW_PATH_MAX + 16];
        snprintf(where, sizeof(where), "%s: limits", origin);
        if (!json_is_object(v)) {
            snprintf(err, errlen, "%s: must be an object", where);
            goto out;
        }
        if (only_keys(v, limit_keys, where, err, errlen) < 0 ||
            get_uint(v, "max_workers", 1, 4096, &c->max_workers, where, err, errlen) < 0 ||
            get_uint(v, "sync_queue", 1, 1000000, &c->sync_queue_max, where, err, errlen) < 0 ||
            get_uint(v, "async_queue", 1, 1000000, &c->async_queue_max, where, err, errlen) < 0 ||
            get_uint(v, "http_threads", 1, 256, &c->http_threads, where, err, errlen) < 0 ||
            get_uint(v, "max_connections", 1, 1000000, &c->max_connections, where, err, errlen) <
                0 ||
            get_uint(v, "connection_timeout", 1, 3600, &c->connection_timeout_s, where, err,
                     errlen) < 0 ||
            get_uint(v, "connection_memory", 4096, 1048576, &c->connection_memory, where, err,
                     errlen) < 0)
            goto out;
    }
    if ((v = json_object_get(root, "functions"))) {
        const char *name;
        json_t *f;
        if (!json_is_object(v)) {
            snprintf(err, errlen, "%s: functions: must be an object of name -> settings", origin);
            goto out;
        }
        json_object_foreach(v, name, f)
        {
            if (parse_function(c, name, f, origin, err, errlen) < 0)
                goto out;
        }
    }
    if ((v = json_object_get(root, "routes"))) {
        json_t *r;
        size_t i;
        if (!json_is_array(v)) {
            snprintf(err, errlen, "%s: routes: must be an array", origin);
            goto out;
        }
        c->routes_configured = true;
        json_array_foreach(v, i, r)
        {
            if (parse_route(c, r, i, origin, err, errlen) < 0)
                goto out;
        }
    }
    if ((v = json_object_get(root, "allow"))) {
        json_t *a;
        size_t i;
        if (!json_is_array(v)) {
            snprintf(err, errlen, "%s: allow: must be an array of names or * globs", origin);
            goto out;
        }
        json_array_foreach(v, i, a)
        {
            const char *s = json_string_value(a);
            if (!s || !*s || strlen(s) > 256 ||
                strspn(s, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789-_:*") != strlen(s)) {
                snprintf(err, errlen,
                         "%s: allow[%zu]: must be a function name or a glob of [A-Za-z0-9_-:*]",
                         origin, i);
                goto out;
            }
            if (c->nallow == LGW_CONFIG_MAX_FUNCTIONS) {
                snprintf(err, errlen, "%s: allow: more than %d entries", origin,
                         LGW_CONFIG_MAX_FUNCTIONS);
                goto out;
            }
            if (!(c->allow[c->nallow] = strdup(s))) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            c->nallow++;
        }
    }
    if ((v = json_object_get(root, "access_keys"))) {
        const char *id;
        json_t *secret;
        if (!json_is_object(v)) {
            snprintf(err, errlen, "%s: access_keys: must be an object of key id -> secret", origin);
            goto out;
        }
        json_object_foreach(v, id, secret)
        {
            if (c->nkeys == LGW_CONFIG_MAX_KEYS) {
                snprintf(err, errlen, "%s: access_keys: more than %d keys", origin,
                         LGW_CONFIG_MAX_KEYS);
                goto out;
            }
            if (!*id || strlen(id) >= sizeof(c->keys[0].id) || !json_is_string(secret) ||
                json_string_length(secret) == 0 ||
                json_string_length(secret) >= sizeof(c->keys[0].secret)) {
                snprintf(err, errlen,
                         "%s: access_keys: each key id (1-128 chars) needs a secret string "
                         "(1-128 chars)",
                         origin);
                goto out;
            }
            snprintf(c->keys[c->nkeys].id, sizeof(c->keys[0].id), "%s", id);
            snprintf(c->keys[c->nkeys].secret, sizeof(c->keys[0].secret), "%s",
                     json_string_value(secret));
            c->nkeys++;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static int load_file(struct lgw_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    int rc = -1;

    if (!f) {
        snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(LGW_CONFIG_FILE_MAX + 1);
    if (!buf) {
        snprintf(err, errlen, "--config %s: out of memory", path);
        goto out;
    }
    n = fread(buf, 1, LGW_CONFIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "--config %s: read error", path);
        goto out;
    }
    if (n > LGW_CONFIG_FILE_MAX) {
        snprintf(err, errlen, "--config %s: larger than %d bytes", path, LGW_CONFIG_FILE_MAX);
        goto out;
    }
    rc = lgw_config_parse_json(c, buf, n, path, err, errlen);
out:
    free(buf);
    fclose(f);
    return rc;
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);

    for (; envp && *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

static int apply_env(struct lgw_config *c, char **envp, char *err, size_t errlen)
{
    const char *v;

    if ((v = env_get(envp, "LGW_LISTEN")) &&
        lgw_config_parse_listen(v, c->listen_host, sizeof(c->listen_host), &c->listen_port) < 0)
        FAIL("LGW_LISTEN=%.100s: must be HOST:PORT", v);
    if ((v = env_get(envp, "LGW_MODE")) && set_mode(c, v) < 0)
        FAIL("LGW_MODE=%.100s: must be local or lambda", v);
    if ((v = env_get(envp, "LGW_HANDLERS"))) {
        char buf[LGW_PATH_MAX * 4];
        char *save = NULL, *tok;
        if (strlen(v) >= sizeof(buf))
            FAIL("LGW_HANDLERS: longer than %zu bytes", sizeof(buf) - 1);
        snprintf(buf, sizeof(buf), "%s", v);
        for (tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
            if (add_handler_lib(c, tok, "LGW_HANDLERS", err, errlen) < 0)
                return -1;
    }
    if ((v = env_get(envp, "LGW_REGION"))) {
        if (!*v || strlen(v) >= sizeof(c->region))
            FAIL("LGW_REGION=%.100s: must be a region name", v);
        snprintf(c->region, sizeof(c->region), "%s", v);
        c->region_set = true;
    }
    if ((v = env_get(envp, "LGW_ACCOUNT_ID"))) {
        if (strlen(v) != 12 || strspn(v, "0123456789") != 12)
            FAIL("LGW_ACCOUNT_ID=%.100s: must be 12 digits", v);
        snprintf(c->account_id, sizeof(c->account_id), "%s", v);
    }
    if ((v = env_get(envp, "LGW_MAX_WORKERS")) && parse_uint(v, 1, 4096, &c->max_workers) < 0)
        FAIL("LGW_MAX_WORKERS=%.100s: must be an integer from 1 to 4096", v);
    if ((v = env_get(envp, "LGW_SYNC_QUEUE_MAX")) &&
        parse_uint(v, 1, 1000000, &c->sync_queue_max) < 0)
        FAIL("LGW_SYNC_QUEUE_MAX=%.100s: must be an integer from 1 to 1000000", v);
    if ((v = env_get(envp, "LGW_ASYNC_QUEUE_MAX")) &&
        parse_uint(v, 1, 1000000, &c->async_queue_max) < 0)
        FAIL("LGW_ASYNC_QUEUE_MAX=%.100s: must be an integer from 1 to 1000000", v);
    if ((v = env_get(envp, "LGW_HTTP_THREADS")) && parse_uint(v, 1, 256, &c->http_threads) < 0)
        FAIL("LGW_HTTP_THREADS=%.100s: must be an integer from 1 to 256", v);
    if ((v = env_get(envp, "LGW_MAX_CONNECTIONS")) &&
        parse_uint(v, 1, 1000000, &c->max_connections) < 0)
        FAIL("LGW_MAX_CONNECTIONS=%.100s: must be an integer from 1 to 1000000", v);
    if ((v = env_get(envp, "LGW_CONNECTION_MEMORY")) &&
        parse_uint(v, 4096, 1048576, &c->connection_memory) < 0)
        FAIL("LGW_CONNECTION_MEMORY=%.100s: must be an integer from 4096 to 1048576", v);
    if ((v = env_get(envp, "LGW_ACCESS_LOG")) && parse_bool(v, &c->access_log) < 0)
        FAIL("LGW_ACCESS_LOG=%.100s: must be 0 or 1", v);
    if ((v = env_get(envp, "LGW_FUNCTION_LOGS")) && parse_bool(v, &c->function_logs) < 0)
        FAIL("LGW_FUNCTION_LOGS=%.100s: must be 0 or 1", v);
    return 0;
}

/* Returns the value of --name VALUE or --name=VALUE at argv[*i], advancing *i; NULL if argv[*i]
 * is not that flag. *missing is set when the flag has no value. */
static const char *flag_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

int lgw_config_load(struct lgw_config *c, int argc, char **argv, char **envp, char *err,
                    size_t errlen)
{
    const char *cfg = env_get(envp, "LGW_CONFIG");
    bool missing = false;
    int i;

    /* The file comes first in precedence but is named by a flag or LGW_CONFIG: find it. */
    for (i = 1; i < argc; i++) {
        const char *v = flag_value(argc, argv, &i, "--config", &missing);
        if (missing)
            FAIL("--config: needs a FILE");
        if (v)
            cfg = v;
    }
    if (cfg) {
        if (strlen(cfg) >= sizeof(c->config_file))
            FAIL("--config: path too long");
        snprintf(c->config_file, sizeof(c->config_file), "%s", cfg);
        if (load_file(c, cfg, err, errlen) < 0)
            return -1;
    }
    if (apply_env(c, envp, err, errlen) < 0)
        return -1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c->show_help = true;
        } else if (!strcmp(a, "--version")) {
            c->show_version = true;
        } else if (!strcmp(a, "--allow-any-function")) {
            c->allow_any_function = true;
        } else if ((v = flag_value(argc, argv, &i, "--config", &missing))) {
            continue; /* already loaded */
        } else if ((v = flag_value(argc, argv, &i, "--listen", &missing))) {
            if (lgw_config_parse_listen(v, c->listen_host, sizeof(c->listen_host),
                                        &c->listen_port) < 0)
                FAIL("--listen %.100s: must be HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080)", v);
        } else if ((v = flag_value(argc, argv, &i, "--mode", &missing))) {
            if (set_mode(c, v) < 0)
                FAIL("--mode %.100s: must be local or lambda", v);
        } else if ((v = flag_value(argc, argv, &i, "--handlers", &missing))) {
            if (add_handler_lib(c, v, "--handlers", err, errlen) < 0)
                return -1;
        } else if (missing) {
            FAIL("%s: needs a value", a);
        } else {
            FAIL("unknown option '%.100s' (see --help)", a);
        }
        if (missing)
            FAIL("%s: needs a value", a);
    }
    return 0;
}

const struct lgw_function_config *lgw_config_function(const struct lgw_config *c, const char *name)
{
    for (size_t i = 0; i < c->nfunctions; i++)
        if (!strcmp(c->functions[i].name, name))
            return &c->functions[i];
    return NULL;
}
