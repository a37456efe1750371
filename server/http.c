/*
 * http.c - the libmicrohttpd daemon and the request life cycle (see http.h).
 *
 * Threads: one event loop per HTTP thread, each with its own libmicrohttpd daemon (see
 * loop_main). No face ever blocks in it: a dispatch suspends the connection, and the
 * dispatcher's done callback (on a worker thread in local mode, on this same loop in lambda
 * mode) resumes it. The phase field settles the race between a done callback that fires before the
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
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

/* The loop the calling thread runs (loop_main), NULL on any other thread. */
static _Thread_local struct lgw_loop *current_loop;

static void on_dispatch_done(struct lgw_invocation *inv, void *arg)
{
    struct lgw_req *r = arg;
    struct lgw_loop *lp = r->loop;
    int prev;

    (void)inv;
    prev = atomic_exchange(&r->phase, LGW_PHASE_DONE);
    if (prev == LGW_PHASE_SUSPENDED) {
        MHD_resume_connection(r->conn);
        /* A daemon polled from outside takes a resume up only at its next run, and has no
         * channel of its own to be woken by one: its loop is told, through a flag when this
         * is the loop's own thread (lambda mode answers there), else through its eventfd. */
        if (lp == current_loop)
            lp->resumed = true;
        else
            eventfd_write(lp->ctlfd, 1);
    }
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
    r->loop = current_loop;
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

unsigned lgw_server_threads(const struct lgw_config *cfg)
{
    long n;
    unsigned t = cfg->http_threads;

    if (!t) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        t = n > 0 && n < 64 ? (unsigned)n : 2;
    }
    /* Each thread's daemon takes an equal share of the connection limit, and at least one. */
    if (cfg->max_connections && t > cfg->max_connections)
        t = cfg->max_connections;
    return t;
}

/* ---- the HTTP threads: one event loop each ---- */

/*
 * Each thread runs its own libmicrohttpd daemon in "external epoll" mode, all accepting from
 * one shared listening socket, and waits in one epoll set for: the daemon's epoll descriptor,
 * the dispatcher's descriptor for this thread (lambda mode: the lane this thread drives, see
 * dispatcher.h) and the thread's control eventfd. So in lambda mode a request is taken, sent
 * upstream, answered by Lambda and replied to on one thread, with no hand-off; local mode's
 * workers resume connections through the daemon's own inter-thread channel as before.
 */
enum { EV_MHD = 1, EV_CTL, EV_DISP };

static unsigned connections(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

    return i ? i->num_connections : 0;
}

static void *loop_main(void *arg)
{
    struct lgw_loop *lp = arg;
    struct lgw_server *s = lp->s;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(lp->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    struct epoll_event ev = {.events = EPOLLIN}, evs[8];
    bool quiesced = false;
    int dfd;

    prctl(PR_SET_NAME, "lgw-http", 0, 0, 0);
    current_loop = lp;
    ev.data.u32 = EV_MHD;
    epoll_ctl(lp->epfd, EPOLL_CTL_ADD, info->epoll_fd, &ev);
    ev.data.u32 = EV_CTL;
    epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->ctlfd, &ev);
    dfd = lgw_dispatcher_loop_attach(s->disp, lp->idx);
    ev.data.u32 = EV_DISP;
    if (dfd >= 0 && epoll_ctl(lp->epfd, EPOLL_CTL_ADD, dfd, &ev) < 0)
        dfd = -1; /* cannot happen; the lane would then need a thread of its own */
    for (;;) {
        MHD_UNSIGNED_LONG_LONG mt;
        int t = -1, n;
        bool mhd_ready = false, disp_ready = false;

        if (lp->resumed)
            t = 0;
        else if (MHD_get_timeout(lp->mhd, &mt) == MHD_YES)
            t = mt > INT_MAX ? INT_MAX : (int)mt;
        if (dfd >= 0) {
            int dt = lgw_dispatcher_loop_timeout(s->disp);
            if (dt >= 0 && (t < 0 || dt < t))
                t = dt;
        }
        n = epoll_wait(lp->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), t);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == EV_MHD) {
                mhd_ready = true;
            } else if (evs[i].data.u32 == EV_DISP) {
                disp_ready = true;
            } else {
                eventfd_t v;
                eventfd_read(lp->ctlfd, &v);
                mhd_ready = true; /* a resume, or quiesce/stop (checked below) */
            }
        }
        if (atomic_load(&s->loops_quiesce) && !quiesced) {
            MHD_quiesce_daemon(lp->mhd); /* the shared socket is closed once, by the server */
            quiesced = true;
            pthread_mutex_lock(&s->loops_lock);
            s->loops_quiesced++;
            pthread_cond_broadcast(&s->loops_cond);
            pthread_mutex_unlock(&s->loops_lock);
        }
        if (atomic_load(&s->loops_stop))
            break;
        /* Answers that came in resume their connections (setting lp->resumed): the daemon
         * then sends them. */
        if (dfd >= 0)
            lgw_dispatcher_loop_run(s->disp, disp_ready);
        if (mhd_ready || n == 0 || lp->resumed) {
            unsigned before = connections(lp->mhd);
            lp->resumed = false;
            MHD_run(lp->mhd);
            /* The daemon takes its listening socket back (after being at its connection
             * limit) only at the start of a run: one is owed when a connection closed. */
            if (connections(lp->mhd) < before)
                lp->resumed = true;
        }
    }
    return NULL;
}

static int listen_socket(const struct sockaddr_storage *ss, socklen_t len, bool v6)
{
    int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void loops_signal(struct lgw_server *s)
{
    for (unsigned i = 0; i < s->nloops; i++)
        if (s->loops[i].ctlfd >= 0)
            eventfd_write(s->loops[i].ctlfd, 1);
}

int lgw_server_start(struct lgw_server *s, struct lgw_config *cfg, struct lgw_dispatcher *disp,
                     char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    bool v6 = false;
    unsigned threads = lgw_server_threads(cfg);
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO;

    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->disp = disp;
    s->listen_fd = -1;
    pthread_mutex_init(&s->loops_lock, NULL);
    pthread_cond_init(&s->loops_cond, NULL);
    clock_gettime(CLOCK_MONOTONIC, &s->started);
    if (lgw_routes_compile(s, err, errlen) < 0)
        return -1;
    if (resolve_listen(cfg->listen_host, cfg->listen_port, &ss, &sslen, &v6) < 0) {
        snprintf(err, errlen, "--listen %s:%u: cannot resolve the host", cfg->listen_host,
                 cfg->listen_port);
        goto fail;
    }
    if (v6)
        flags |= MHD_USE_IPv6;
    if ((s->listen_fd = listen_socket(&ss, sslen, v6)) < 0) {
        snprintf(err, errlen, "--listen %s:%u: cannot listen (%s)", cfg->listen_host,
                 cfg->listen_port, strerror(errno));
        goto fail;
    }
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sslen) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    if (!(s->loops = calloc(threads, sizeof(*s->loops)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < threads; i++) {
        struct lgw_loop *lp = &s->loops[i];
        unsigned limit = cfg->max_connections / threads + (i < cfg->max_connections % threads);

        lp->s = s;
        lp->idx = i;
        lp->epfd = lp->ctlfd = -1;
        s->nloops++;
        lp->mhd = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
            MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT,
            cfg->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)cfg->connection_memory, MHD_OPTION_END);
        if (!lp->mhd || (lp->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
            (lp->ctlfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
            snprintf(err, errlen, "--listen %s:%u: cannot start HTTP thread %u (%s)",
                     cfg->listen_host, cfg->listen_port, i, strerror(errno ? errno : ENOMEM));
            goto fail;
        }
    }
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]) != 0) {
            snprintf(err, errlen, "cannot start HTTP thread %u", i);
            goto fail;
        }
        s->loops[i].started = true;
    }
    return 0;
fail:
    lgw_server_stop(s);
    return -1;
}

void lgw_server_quiesce(struct lgw_server *s)
{
    unsigned running = 0;

    atomic_store(&s->draining, true);
    for (unsigned i = 0; i < s->nloops; i++)
        running += s->loops[i].started;
    atomic_store(&s->loops_quiesce, true);
    loops_signal(s);
    pthread_mutex_lock(&s->loops_lock);
    while (s->loops_quiesced < running)
        pthread_cond_wait(&s->loops_cond, &s->loops_lock);
    pthread_mutex_unlock(&s->loops_lock);
    /* Every running daemon has let go of the socket; the others are stopped in
     * lgw_server_stop(), which quiesces them first. */
    if (running == s->nloops && s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
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
    atomic_store(&s->loops_stop, true);
    loops_signal(s);
    for (unsigned i = 0; i < s->nloops; i++)
        if (s->loops[i].started)
            pthread_join(s->loops[i].thread, NULL);
    /* No loop runs now: each daemon lets go of the shared socket (MHD_stop_daemon would close
     * it once per daemon otherwise), the socket is closed once, then the daemons stop. */
    for (unsigned i = 0; i < s->nloops; i++)
        if (s->loops[i].mhd && s->listen_fd >= 0)
            MHD_quiesce_daemon(s->loops[i].mhd);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    for (unsigned i = 0; i < s->nloops; i++) {
        struct lgw_loop *lp = &s->loops[i];
        if (lp->mhd)
            MHD_stop_daemon(lp->mhd);
        if (lp->epfd >= 0)
            close(lp->epfd);
        if (lp->ctlfd >= 0)
            close(lp->ctlfd);
    }
    free(s->loops);
    s->loops = NULL;
    s->nloops = 0;
    pthread_cond_destroy(&s->loops_cond);
    pthread_mutex_destroy(&s->loops_lock);
    lgw_routes_free(s);
}
