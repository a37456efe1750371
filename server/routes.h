/*
 * routes.h - configured API Gateway-style handler routes (METHOD /path/{param}, {proxy+}).
 */
#ifndef LGW_ROUTES_H
#define LGW_ROUTES_H

#include <stddef.h>

struct lgw_server;

#define LGW_ROUTES_NONE (-1)
#define LGW_ROUTES_WRONG_METHOD (-2)

/* Prepares the configured routes (and the default /hello/{name} in local mode). */
int lgw_routes_compile(struct lgw_server *s, char *err, size_t errlen);
void lgw_routes_free(struct lgw_server *s);
/* The index of the route matching method and path, or LGW_ROUTES_NONE /
 * LGW_ROUTES_WRONG_METHOD. params (may be NULL) receives the path parameters. */
int lgw_routes_match(struct lgw_server *s, const char *method, const char *path, void *params);
/* The Allow header value for a path that matched with another method. */
const char *lgw_routes_allow(struct lgw_server *s, const char *path);

#endif
