/*
 * routes.c - handler routes. Not built yet: a configuration that lists routes is refused.
 */
#include <stdio.h>

#include "http.h"
#include "routes.h"

int lgw_routes_compile(struct lgw_server *s, char *err, size_t errlen)
{
    if (s->cfg->nroutes) {
        snprintf(err, errlen, "routes: handler routes are not supported by this build");
        return -1;
    }
    return 0;
}

void lgw_routes_free(struct lgw_server *s)
{
    (void)s;
}

int lgw_routes_match(struct lgw_server *s, const char *method, const char *path, void *params)
{
    (void)s;
    (void)method;
    (void)path;
    (void)params;
    return LGW_ROUTES_NONE;
}

const char *lgw_routes_allow(struct lgw_server *s, const char *path)
{
    (void)s;
    (void)path;
    return NULL;
}

const struct lgw_face lgw_face_routes = {.name = "routes"};
