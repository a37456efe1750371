/*
 * face_ops.c - operations endpoints: GET /healthz, GET /metrics (Prometheus text format), and the
 * API's own description: GET /openapi.json, /openapi.yaml and the reference page GET /docs with
 * its files, served from the table that the build embeds (assets.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assets.h"
#include "http.h"

/*
 * The page may load only what the gateway serves: no inline script, no other origin. Swagger UI
 * sets style attributes and draws its icons from data: URIs, hence those two allowances.
 */
#define DOCS_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                    \
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "           \
    "form-action 'self'; frame-ancestors 'self'"

static size_t no_body(const struct lgw_req *r)
{
    (void)r;
    return 0;
}

static double uptime_s(const struct lgw_server *s)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - s->started.tv_sec) +
           (double)(now.tv_nsec - s->started.tv_nsec) / 1e9;
}

static void healthz(struct lgw_req *r)
{
    struct lgw_server *s = r->srv;
    bool draining = atomic_load(&s->draining);
    json_t *fns = lgw_dispatcher_functions(s->disp);

    lgw_req_send_json(r, draining ? 503 : 200,
                      json_pack("{s:s,s:s,s:o,s:f}", "status", draining ? "draining" : "ok", "mode",
                                s->disp->ops->name, "functions", fns ? fns : json_array(),
                                "uptimeSeconds", uptime_s(s)));
}

static const char *const face_names[] = {"other", "gateway", "invoke_api", "routes", "ops"};

static void metrics(struct lgw_req *r)
{
    struct lgw_metrics *m = &r->srv->metrics;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);

    if (!buf) {
        lgw_req_queue(r, 500, NULL);
        return;
    }
#define OUT(...) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__)
    OUT("# HELP lgw_http_requests_total HTTP requests answered, by face and status class.\n"
        "# TYPE lgw_http_requests_total counter\n");
    for (int f = 0; f < 5; f++)
        for (int c = 1; c <= 5; c++)
            OUT("lgw_http_requests_total{face=\"%s\",code=\"%dxx\"} %lu\n", face_names[f], c,
                atomic_load(&m->requests[f][c]));
    OUT("# HELP lgw_http_requests_in_flight Requests received and not yet completed.\n"
        "# TYPE lgw_http_requests_in_flight gauge\n"
        "lgw_http_requests_in_flight %ld\n",
        atomic_load(&m->inflight));
    OUT("# HELP lgw_http_request_bytes_total Request body bytes received.\n"
        "# TYPE lgw_http_request_bytes_total counter\n"
        "lgw_http_request_bytes_total %lu\n",
        atomic_load(&m->bytes_in));
    OUT("# HELP lgw_uptime_seconds Seconds since start.\n"
        "# TYPE lgw_uptime_seconds gauge\n"
        "lgw_uptime_seconds %.3f\n",
        uptime_s(r->srv));
#undef OUT
    if (n >= cap) {
        free(buf);
        lgw_req_queue(r, 500, NULL);
        return;
    }
    lgw_req_queue(r, 200, lgw_response_new(buf, n, "text/plain; version=0.0.4"));
}

static const struct lgw_asset *asset_find(const char *path)
{
    for (size_t i = 0; i < lgw_asset_count; i++)
        if (strcmp(lgw_assets[i].path, path) == 0)
            return &lgw_assets[i];
    return NULL;
}

/* Whether an If-None-Match value ("*", or a list of entity tags, weak or strong) names etag.
 * RFC 9110 compares them weakly here, so W/"x" matches "x". */
static bool etag_listed(const char *list, const char *etag)
{
    size_t n = strlen(etag);
    const char *p = list;

    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, n) == 0 &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

/* GET /openapi.json, /openapi.yaml, /docs, /docs/ASSET: from memory, with an ETag so a browser
 * revalidates (304) instead of downloading the page's 2 MB again. */
static void serve_asset(struct lgw_req *r)
{
    const struct lgw_asset *a = asset_find(r->path);
    const char *inm = lgw_req_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    struct MHD_Response *resp;
    int status = 200;

    if (!a) {
        lgw_req_send_simple_error(r, 404, "NotFound", "no endpoint %s %.200s", r->method, r->path);
        return;
    }
    if (inm && etag_listed(inm, a->etag)) {
        status = 304;
        resp = lgw_response_new(NULL, 0, NULL);
    } else {
        /* PERSISTENT: libmicrohttpd neither copies, writes nor frees the static data. */
        resp = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    }
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        if (r->route.kind == LGW_ROUTE_DOCS)
            MHD_add_response_header(resp, "Content-Security-Policy", DOCS_CSP);
        else /* the document is public: let other origins' tools (editors, UIs) read it */
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    }
    lgw_req_queue(r, status, resp);
}

static void start(struct lgw_req *r)
{
    switch (r->route.kind) {
    case LGW_ROUTE_METRICS:
        metrics(r);
        break;
    case LGW_ROUTE_OPENAPI:
    case LGW_ROUTE_DOCS:
        serve_asset(r);
        break;
    default:
        healthz(r);
        break;
    }
}

const struct lgw_face lgw_face_ops = {
    .name = "ops",
    .body_limit = no_body,
    .start = start,
};
