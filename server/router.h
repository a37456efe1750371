/*
 * router.h - maps a method and a path to one of the server's fixed endpoints. Handler routes
 * (configured API Gateway-style routes) are matched separately, after these.
 */
#ifndef LGW_ROUTER_H
#define LGW_ROUTER_H

#include <stddef.h>

enum lgw_route_kind {
    LGW_ROUTE_NONE = 0,
    LGW_ROUTE_INVOKE,              /* POST /invoke, /invoke/NAME */
    LGW_ROUTE_INVOKE_ASYNC,        /* POST /invoke-async, /invoke-async/NAME */
    LGW_ROUTE_HEALTHZ,             /* GET /healthz */
    LGW_ROUTE_METRICS,             /* GET /metrics */
    LGW_ROUTE_LAMBDA_INVOKE,       /* POST /2015-03-31/functions/NAME/invocations */
    LGW_ROUTE_LAMBDA_ASYNC_LEGACY, /* POST /2014-11-13/functions/NAME/invoke-async/ */
    LGW_ROUTE_OPENAPI,             /* GET /openapi.json, /openapi.yaml */
    LGW_ROUTE_DOCS                 /* GET /docs, /docs/ASSET */
};

struct lgw_route_match {
    enum lgw_route_kind kind; /* NONE when nothing matched, or the method is wrong */
    const char *name;         /* the NAME segment inside path, or NULL */
    size_t name_len;
    const char *allow; /* when the path matched but the method did not: the Allow header */
};

/* Matches method and path (already percent-decoded). Returns m->kind. */
enum lgw_route_kind lgw_route(const char *method, const char *path, struct lgw_route_match *m);

#endif
