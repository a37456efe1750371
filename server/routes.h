/*
 * routes.h - handler routes, API Gateway style: configured `METHOD /path/{param}` routes (ANY, a
 * greedy `{proxy+}` last segment, literal segments) that call a function with an API Gateway
 * proxy event (HTTP API payload 2.0 by default, REST 1.0 on request) and turn its
 * {"statusCode","headers","body",...} answer into the HTTP response (the face lgw_face_routes,
 * declared in http.h).
 *
 * Matching, as API Gateway selects a route: only routes whose method is the request's (or ANY)
 * take part; a route without a greedy {proxy+} beats one with it; then, segment by segment from
 * the left, a literal beats a {param}, which beats {proxy+}; last, a route's own method beats
 * ANY. A path that some route matches with another method only is LGW_ROUTES_WRONG_METHOD (the
 * server answers 405 with lgw_routes_allow() as the Allow header; API Gateway would answer 404).
 * The server's fixed endpoints (/invoke..., /healthz, /metrics, the Invoke API) are matched
 * before these routes, so a route can never shadow them.
 *
 * Paths are matched as libmicrohttpd decoded them: an encoded slash (%2F) separates segments.
 */
#ifndef LGW_ROUTES_H
#define LGW_ROUTES_H

#include <stddef.h>

#include "config.h"

struct lgw_server;
struct lgw_routes;

#define LGW_ROUTES_NONE (-1)
#define LGW_ROUTES_WRONG_METHOD (-2)

#define LGW_ROUTE_SEGMENTS_MAX 64 /* segments of a route's path */
#define LGW_ROUTE_PARAMS_MAX 16   /* {param}s of one route, {proxy+} included */
#define LGW_ROUTE_PARAM_NAME_MAX 64

/* One path parameter of a match. */
struct lgw_route_param {
    const char *name;  /* borrowed from the compiled route, NUL-terminated */
    const char *value; /* points into the path given to lgw_routes_match(); not NUL-terminated */
    size_t len;
};

struct lgw_route_params {
    size_t n;
    struct lgw_route_param p[LGW_ROUTE_PARAMS_MAX];
};

/*
 * Compiles the configured routes into s->routes; in local mode a configuration without a
 * "routes" key gets the default `GET /hello/{name}` -> hello (payload 2.0). A bad pattern or two
 * routes that would catch the same requests stop start-up: -1 with one line in err naming the
 * route and the problem, and nothing left allocated. Free with lgw_routes_free().
 */
int lgw_routes_compile(struct lgw_server *s, char *err, size_t errlen);
/* Frees s->routes and sets it to NULL. Safe to call twice. */
void lgw_routes_free(struct lgw_server *s);
/* How many routes are compiled. */
size_t lgw_routes_count(const struct lgw_server *s);

/*
 * The index of the route matching method and path (decoded, starting with "/"), or
 * LGW_ROUTES_NONE / LGW_ROUTES_WRONG_METHOD. params (may be NULL) receives the path parameters
 * of the match; its pointers are valid while path and the routes are.
 */
int lgw_routes_match(struct lgw_server *s, const char *method, const char *path,
                     struct lgw_route_params *params);
/* The Allow header value ("GET, POST") for a path that routes match with other methods only,
 * or NULL. Borrowed: valid until lgw_routes_free(). */
const char *lgw_routes_allow(struct lgw_server *s, const char *path);

/* The configuration of route idx (0 <= idx < count); borrowed. */
const struct lgw_route_config *lgw_routes_config(const struct lgw_server *s, int idx);
/* API Gateway's routeKey of route idx: "GET /hello/{name}". Borrowed. */
const char *lgw_routes_key(const struct lgw_server *s, int idx);

#endif
