/*
 * router.c - the fixed endpoints, as a table of path patterns. A pattern is literal text with at
 * most one "*" standing for one non-empty path segment (the function name).
 */
#include <string.h>

#include "router.h"

struct route {
    const char *method;
    const char *pattern;
    enum lgw_route_kind kind;
};

static const struct route routes[] = {
    {"POST", "/invoke", LGW_ROUTE_INVOKE},
    {"POST", "/invoke/*", LGW_ROUTE_INVOKE},
    {"POST", "/invoke-async", LGW_ROUTE_INVOKE_ASYNC},
    {"POST", "/invoke-async/*", LGW_ROUTE_INVOKE_ASYNC},
    {"GET", "/healthz", LGW_ROUTE_HEALTHZ},
    {"GET", "/metrics", LGW_ROUTE_METRICS},
    {"POST", "/2015-03-31/functions/*/invocations", LGW_ROUTE_LAMBDA_INVOKE},
    {"POST", "/2014-11-13/functions/*/invoke-async/", LGW_ROUTE_LAMBDA_ASYNC_LEGACY},
    {"POST", "/2014-11-13/functions/*/invoke-async", LGW_ROUTE_LAMBDA_ASYNC_LEGACY},
    {"GET", "/openapi.json", LGW_ROUTE_OPENAPI},
    {"GET", "/openapi.yaml", LGW_ROUTE_OPENAPI},
    {"GET", "/docs", LGW_ROUTE_DOCS},
    {"GET", "/docs/*", LGW_ROUTE_DOCS},
};

/* Matches path against pattern; on success sets the captured segment. */
static int match(const char *pattern, const char *path, const char **cap, size_t *cap_len)
{
    const char *star = strchr(pattern, '*');
    size_t pre, post, plen = strlen(path), seg;

    *cap = NULL;
    *cap_len = 0;
    if (!star)
        return strcmp(pattern, path) == 0;
    pre = (size_t)(star - pattern);
    post = strlen(star + 1);
    if (plen < pre + post + 1 || strncmp(path, pattern, pre) != 0 ||
        strcmp(path + plen - post, star + 1) != 0)
        return 0;
    seg = plen - pre - post;
    if (memchr(path + pre, '/', seg))
        return 0;
    *cap = path + pre;
    *cap_len = seg;
    return 1;
}

enum lgw_route_kind lgw_route(const char *method, const char *path, struct lgw_route_match *m)
{
    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const char *cap;
        size_t cap_len;
        if (!match(routes[i].pattern, path, &cap, &cap_len))
            continue;
        if (strcmp(method, routes[i].method) != 0 &&
            !(strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
            m->allow = strcmp(routes[i].method, "GET") == 0 ? "GET, HEAD" : routes[i].method;
            return LGW_ROUTE_NONE;
        }
        m->kind = routes[i].kind;
        m->name = cap;
        m->name_len = cap_len;
        m->allow = NULL;
        return m->kind;
    }
    return LGW_ROUTE_NONE;
}
