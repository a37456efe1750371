/*
 * face_ops.c - operations endpoints: GET /healthz and GET /metrics (Prometheus text format).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

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

static void start(struct lgw_req *r)
{
    if (r->route.kind == LGW_ROUTE_METRICS)
        metrics(r);
    else
        healthz(r);
}

const struct lgw_face lgw_face_ops = {
    .name = "ops",
    .body_limit = no_body,
    .start = start,
};
