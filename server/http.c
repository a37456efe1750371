/*
 * http.c - the libmicrohttpd daemon and the request life cycle (see http.h).
 *
 * Threads: libmicrohttpd runs an epoll loop per HTTP thread. No face ever blocks in it: a
 * dispatch suspends the connection, and the dispatcher's done callback (on a worker thread)
 * resumes it. The phase field settles the race between a done callback that fires before the
 * connection was suspended and one that fires after.
 */
#define _DEFAULT_SOURCE /* strcasecmp, getaddrinfo flags */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "json.h"
#include "routes.h"

#define INITIAL_BODY_CAP 4096

static const struct lgw_face *face_for(enum lgw_route_kind k)
{
    switch (k) {
    case LGW_ROUTE_INVOKE:
    case LGW_ROUTE_INVOKE_ASYNC:
        return &lgw_face_gateway;
    case LGW_ROUTE_HEALTHZ:
    case LGW_ROUTE_METRICS:
    case LGW_ROUTE_OPENAPI:
    case LGW_ROUTE_DOCS:
        return &lgw_face_ops;
    case LGW_ROUTE_LAMBDA_INVOKE:
    case LGW_ROUTE_LAMBDA_ASYNC_LEGACY:
        return &lgw_face_invoke_api;
    case LGW_ROUTE_NONE:
        break;
    }
    return NULL;
}

static int face_index(const struct lgw_face *f)
{
    if (f == &lgw_face_gateway)
        return 1;
    if (f == &lgw_face_invoke_api)
        return 2;
    if (f == &lgw_face_routes)
        return 3;
    if (f == &lgw_face_ops)
        return 4;
    return 0;
}

/* ---- responses ---- */

struct MHD_Response *lgw_response_new(char *body, size_t len, const char *content_type)
{
    struct MHD_Response *resp;

    if (body)
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return NULL;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return resp;
}

/* Appends s to a JSON string being built in buf, escaped; bounded by cap. */
static size_t json_escape(char *buf, size_t at, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; s && *s && at + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[at++] = '\\';
            buf[at++] = 'u';
            buf[at++] = '0';
            buf[at++] = '0';
            buf[at++] = hex[c >> 4];
            buf[at++] = hex[c & 15];
        } else {
            buf[at++] = (char)c;
        }
    }
    return at;
}

/* The "YYYY-MM-DDTHH:MM:SS" part of the access log's time, formatted once a second per thread:
 * gmtime_r and strftime per request were a visible share of an echo's cost. */
static _Thread_local time_t log_second = -1;
static _Thread_local char log_stamp[24];

static void access_log(struct lgw_req *r)
{
    char line[2048];
    struct timespec now, wall;
    size_t n = 0;
    int k;
    double ms;

    if (!r->srv->cfg->access_log)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    clock_gettime(CLOCK_REALTIME, &wall);
    if (wall.tv_sec != log_second) {
        struct tm tm;
        gmtime_r(&wall.tv_sec, &tm);
        strftime(log_stamp, sizeof(log_stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        log_second = wall.tv_sec;
    }
    ms = (double)(now.tv_sec - r->t0.tv_sec) * 1e3 + (double)(now.tv_nsec - r->t0.tv_nsec) / 1e6;
    n += (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s.%03dZ\",\"method\":\"", log_stamp,
                          (int)(wall.tv_nsec / 1000000));
    n = json_escape(line, n, sizeof(line) - 200, r->method);
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"path\":\"");
    n = json_escape(line, n, sizeof(line) - 200, r->path);
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"function\":");
    if (r->function[0]) {
        line[n++] = '"';
        n = json_escape(line, n, sizeof(line) - 160, r->function);
        line[n++] = '"';
    } else {
        n += (size_t)snprintf(line + n, sizeof(line) - n, "null");
    }
    k = snprintf(line + n, sizeof(line) - n,
                 ",\"status\":%d,\"durationMs\":%.3f,\"requestId\":\"%s\"}\n", r->status, ms,
                 r->inv.request_id);
    if (k > 0)
        n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
    /* One write(2) per line, under PIPE_BUF: lines from several threads never interleave, and
     * stdio's lock is not needed. A failed log write is not worth failing a request over. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

void lgw_req_queue(struct lgw_req *r, int status, struct MHD_Response *resp)
{
    int cls = status / 100;

    if (r->responded) {
        if (resp)
            MHD_destroy_response(resp);
        return;
    }
    r->responded = true;
    r->status = status;
    if (!resp) {
        /* Out of memory: nothing can be sent; let MHD close the connection. */
        r->status = 500;
        access_log(r);
        return;
    }
    MHD_add_response_header(resp, "X-Request-Id", r->inv.request_id);
    MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (cls >= 1 && cls <= 5)
        atomic_fetch_add(&r->srv->metrics.requests[face_index(r->face)][cls], 1);
    access_log(r);
}

void lgw_req_send_json(struct lgw_req *r, int status, json_t *body)
{
    size_t len = 0;
    char *text = body ? lgw_json_dumps(body, &len) : NULL;

    json_decref(body);
    lgw_req_queue(r, status, text ? lgw_response_new(text, len, "application/json") : NULL);
}

void lgw_req_send_error(struct lgw_req *r, const struct lgw_error *e)
{
    json_t *err =
        json_pack("{s:s,s:s,s:s?,s:s}", "type", lgw_errc_type(e->code), "message", e->message,
                  "function", r->function[0] ? r->function : NULL, "requestId", r->inv.request_id);
    struct MHD_Response *resp;
    char *text;
    char ra[16];

    if (err && e->aws_type[0] && e->code != LGW_EBADREQUEST && e->code != LGW_ETOOLARGE)
        json_object_set_new(err, "awsErrorType", json_string(e->aws_type));
    if (err && e->reason[0])
        json_object_set_new(err, "reason", json_string(e->reason));
    if (err && e->payload) {
        json_t *p = json_loadb(e->payload, e->payload_len, JSON_DECODE_ANY, NULL);
        if (p)
            json_object_set_new(err, "payload", p);
    }
    if (err && e->code == LGW_ETIMEDOUT)
        json_object_set_new(err, "awsErrorType", json_string("Sandbox.Timedout"));
    {
        /* "o" steals err into the wrapper, even on failure. */
        json_t *wrap = err ? json_pack("{s:o}", "error", err) : NULL;
        text = wrap ? lgw_json_dumps(wrap, NULL) : NULL;
        json_decref(wrap);
    }
    resp = text ? lgw_response_new(text, strlen(text), "application/json") : NULL;
    if (resp && e->code == LGW_ETHROTTLED) {
        snprintf(ra, sizeof(ra), "%u", e->retry_after ? e->retry_after : 1);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    lgw_req_queue(r, e->status, resp);
}

void lgw_req_send_simple_error(struct lgw_req *r, int status, const char *type, const char *fmt,
                               ...)
{
    char msg[LGW_ERROR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lgw_req_send_json(r, status,
                      json_pack("{s:{s:s,s:s,s:s}}", "error", "type", type, "message", msg,
                                "requestId", r->inv.request_id));
}

const char *lgw_req_header(struct lgw_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int lgw_req_parse_event(struct lgw_req *r, struct lgw_error *err)
{
    json_error_t jerr;
    size_t i = 0;

    while (i < r->len &&
           (r->body[i] == ' ' || r->body[i] == '\t' || r->body[i] == '\r' || r->body[i] == '\n'))
        i++;
    if (i == r->len) {
        /* Lambda treats an empty payload as {}. */
        r->event = json_object();
        return r->event ? 0 : -1;
    }
    r->event = json_loadb(r->body, r->len, JSON_DECODE_ANY, &jerr);
    if (!r->event) {
        lgw_error_set(err, LGW_EBADREQUEST,
                      "Could not parse request body into json: %s (line %d, column %d)", jerr.text,
                      jerr.line, jerr.column);
        return -1;
    }
    return 0;
}

/* ---- dispatch with suspend/resume ---- */

static void on_dispatch_done(struct lgw_invocation *inv, void *arg)
{
    struct lgw_req *r = arg;
    int prev;

    (void)inv;
    prev = atomic_exchange(&r->phase, LGW_PHASE_DONE);
    if (prev == LGW_PHASE_SUSPENDED)
        MHD_resume_connection(r->conn);
}

void lgw_req_dispatch(struct lgw_req *r, enum lgw_dispatch_kind kind, lgw_req_fn finish)
{
    int expect = LGW_PHASE_DISPATCHED;

    r->finish = finish;
    r->inv.event = r->event;
    if (!r->inv.function)
        r->inv.function = r->function;
    if (!r->inv.qualifier && r->qualifier[0])
        r->inv.qualifier = r->qualifier;
    r->inv.client_context = r->client_context;
    r->inv.event_size = r->len;
    atomic_store(&r->phase, LGW_PHASE_DISPATCHED);
    if (kind == LGW_DISPATCH_SYNC)
        lgw_dispatch(r->srv->disp, &r->inv, on_dispatch_done, r);
    else if (kind == LGW_DISPATCH_ASYNC)
        lgw_dispatch_async(r->srv->disp, &r->inv, on_dispatch_done, r);
    else
        lgw_dispatch_check(r->srv->disp, &r->inv, on_dispatch_done, r);
    if (atomic_load(&r->phase) == LGW_PHASE_DONE) {
        finish(r);
        return;
    }
    MHD_suspend_connection(r->conn);
    if (!atomic_compare_exchange_strong(&r->phase, &expect, LGW_PHASE_SUSPENDED)) {
        /* done ran between the check and the suspend: undo the suspend. */
        MHD_resume_connection(r->conn);
    }
}

/* ---- the request life cycle ---- */

static void req_free(struct lgw_req *r)
{
    if (!r)
        return;
    if (r->face_free)
        r->face_free(r->face_state);
    lgw_invocation_release(&r->inv);
    json_decref(r->event);
    free(r->client_context);
    free(r->body);
    free(r->path);
    free(r->raw_target);
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct lgw_req *r = *con_cls;
    struct lgw_server *s = cls;

    (void)c;
    (void)toe;
    if (!r)
        return;
    *con_cls = NULL;
    atomic_fetch_sub(&s->metrics.inflight, 1);
    req_free(r);
}

/* raw_target may be NULL; method and path are set by on_request. */
static struct lgw_req *req_new(struct lgw_server *s, struct MHD_Connection *c,
                               const char *raw_target)
{
    struct lgw_req *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->srv = s;
    r->conn = c;
    r->route_index = -1;
    lgw_invocation_init(&r->inv);
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    if (raw_target && !(r->raw_target = strdup(raw_target))) {
        req_free(r);
        return NULL;
    }
    atomic_fetch_add(&s->metrics.inflight, 1);
    return r;
}

/* MHD's URI log callback: the request-target before libmicrohttpd decodes it (handler routes
 * need the query string as sent). The request state it returns becomes *con_cls; it is freed by
 * on_completed even when on_request never runs. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    return req_new(cls, c, uri);
}

static void send_too_large(struct lgw_req *r, size_t limit)
{
    struct lgw_error e;

    if (r->face->too_large) {
        r->face->too_large(r, limit);
        return;
    }
    lgw_error_init(&e);
    lgw_error_set(&e, LGW_ETOOLARGE, "Request must be smaller than %zu bytes for the %s operation",
                  limit, "InvokeFunction");
    lgw_req_send_error(r, &e);
}

/* First call: route, pick the face, check Content-Length. Returns false if already answered. */
static bool req_route(struct lgw_req *r)
{
    struct lgw_server *s = r->srv;
    const char *cl;

    lgw_route(r->method, r->path, &r->route);
    r->face = face_for(r->route.kind);
    if (!r->face && !r->route.allow) {
        int idx = lgw_routes_match(s, r->method, r->path, NULL);
        if (idx >= 0) {
            r->route_index = idx;
            r->face = &lgw_face_routes;
        } else if (idx == LGW_ROUTES_WRONG_METHOD) {
            r->route.allow = lgw_routes_allow(s, r->path);
        }
    }
    if (!r->face) {
        r->face = &lgw_face_ops; /* for the metrics bucket */
        if (r->route.allow) {
            struct MHD_Response *resp;
            char *text = NULL;
            json_t *b = json_pack("{s:{s:s,s:s,s:s}}", "error", "type", "MethodNotAllowed",
                                  "message", "method not allowed here; see the Allow header",
                                  "requestId", r->inv.request_id);
            text = b ? lgw_json_dumps(b, NULL) : NULL;
            json_decref(b);
            resp = text ? lgw_response_new(text, strlen(text), "application/json") : NULL;
            if (resp)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->route.allow);
            lgw_req_queue(r, 405, resp);
        } else {
            lgw_req_send_simple_error(r, 404, "NotFound", "no endpoint %s %.200s", r->method,
                                      r->path);
        }
        return false;
    }
    r->limit = r->face->body_limit ? r->face->body_limit(r) : 0;
    cl = lgw_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long n;
        errno = 0;
        n = strtoull(cl, &end, 10);
        if (!errno && end != cl && *end == '\0' && n > r->limit) {
            send_too_large(r, r->limit);
            return false;
        }
        /* Size the body buffer once, exactly: most bodies are small and arrive whole. */
        if (!errno && end != cl && *end == '\0')
            r->expect_len = (size_t)n;
    }
    return true;
}

static int body_append(struct lgw_req *r, const char *data, size_t n)
{
    if (r->too_large || r->len + n > r->limit) {
        r->too_large = true; /* keep reading (and dropping) so the answer can be sent */
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : r->expect_len >= n ? r->expect_len + 1 : INITIAL_BODY_CAP;
        char *nb;
        while (cap < r->len + n + 1)
            cap *= 2;
        if (cap > r->limit + 1)
            cap = r->limit + 1;
        nb = realloc(r->body, cap);
        if (!nb)
            return -1;
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct lgw_server *s = cls;
    struct lgw_req *r = *con_cls;

    if (!r || !r->path) {
        if (!r && !(r = req_new(s, c, NULL)))
            return MHD_NO;
        *con_cls = r;
        snprintf(r->method, sizeof(r->method), "%s", method);
        snprintf(r->protocol, sizeof(r->protocol), "%s", version);
        if (!(r->path = strdup(url)))
            return MHD_NO;
        req_route(r);
        return MHD_YES;
    }
    if (r->responded)
        return MHD_YES; /* an early answer is queued; MHD drops the rest of the body */
    if (*upload_size) {
        if (body_append(r, upload_data, *upload_size) < 0)
            return MHD_NO;
        atomic_fetch_add(&s->metrics.bytes_in, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    switch (atomic_load(&r->phase)) {
    case LGW_PHASE_READING:
        if (r->too_large) {
            send_too_large(r, r->limit);
            return MHD_YES;
        }
        if (!r->body && !(r->body = calloc(1, 1)))
            return MHD_NO;
        r->face->start(r);
        return MHD_YES;
    case LGW_PHASE_DONE:
        r->finish(r);
        return MHD_YES;
    default:
        return MHD_YES;
    }
}

static int resolve_listen(const char *host, unsigned port, struct sockaddr_storage *ss,
                          socklen_t *len, bool *v6)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[8];

    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

int lgw_server_start(struct lgw_server *s, struct lgw_config *cfg, struct lgw_dispatcher *disp,
                     char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    bool v6 = false;
    unsigned threads = cfg->http_threads;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO;
    const union MHD_DaemonInfo *info;

    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->disp = disp;
    clock_gettime(CLOCK_MONOTONIC, &s->started);
    if (lgw_routes_compile(s, err, errlen) < 0)
        return -1;
    if (resolve_listen(cfg->listen_host, cfg->listen_port, &ss, &sslen, &v6) < 0) {
        snprintf(err, errlen, "--listen %s:%u: cannot resolve the host", cfg->listen_host,
                 cfg->listen_port);
        lgw_routes_free(s);
        return -1;
    }
    if (v6)
        flags |= MHD_USE_IPv6;
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 && n < 64 ? (unsigned)n : 2;
    }
    s->mhd = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        cfg->connection_timeout_s, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->connection_memory, MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "--listen %s:%u: cannot listen (%s)", cfg->listen_host,
                 cfg->listen_port, strerror(errno ? errno : EADDRINUSE));
        lgw_routes_free(s);
        return -1;
    }
    info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->listen_port;
    return 0;
}

void lgw_server_quiesce(struct lgw_server *s)
{
    MHD_socket fd;

    atomic_store(&s->draining, true);
    fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

long lgw_server_wait_idle(struct lgw_server *s, int timeout_ms)
{
    long left;

    for (int waited = 0;; waited += 10) {
        left = atomic_load(&s->metrics.inflight);
        if (left <= 0 || waited >= timeout_ms)
            break;
        usleep(10000);
    }
    return left;
}

void lgw_server_stop(struct lgw_server *s)
{
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    lgw_routes_free(s);
}
