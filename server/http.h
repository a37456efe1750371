/*
 * http.h - the HTTP server: the libmicrohttpd daemon, per-request state, and the small API the
 * faces (gateway, Invoke API, handler routes, operations) use to answer.
 *
 * Life of a request: the first callback allocates a struct lgw_req and routes it (early answers
 * for unknown routes, wrong methods and oversized Content-Length); the body is gathered up to the
 * route's limit; then the face's start function either answers at once or calls lgw_req_dispatch,
 * which suspends the connection until the dispatcher's done callback resumes it and the face's
 * finish function answers. The completed notification frees the state.
 */
#ifndef LGW_HTTP_H
#define LGW_HTTP_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dispatcher.h"
#include "router.h"

struct lgw_server;
struct lgw_req;

typedef void (*lgw_req_fn)(struct lgw_req *r);

/* What a face does with a request whose body has arrived. */
struct lgw_face {
    const char *name;
    size_t (*body_limit)(const struct lgw_req *r); /* max body bytes; over it: 413 */
    lgw_req_fn start;                              /* answer, or lgw_req_dispatch() */
    void (*too_large)(struct lgw_req *r, size_t limit);
};

enum lgw_req_phase { LGW_PHASE_READING, LGW_PHASE_DISPATCHED, LGW_PHASE_SUSPENDED, LGW_PHASE_DONE };

struct lgw_req {
    struct lgw_server *srv;
    struct lgw_loop *loop; /* the HTTP thread whose daemon holds the connection */
    struct MHD_Connection *conn;
    const struct lgw_face *face;
    struct lgw_route_match route;
    int route_index; /* handler route index, or -1 */
    char method[16];
    char *path; /* owned copy of the decoded path */
    char *body; /* owned; NUL-terminated */
    size_t len, cap, limit;
    size_t expect_len; /* Content-Length when given (at most limit), else 0 */
    bool too_large;
    bool responded;
    _Atomic int phase;
    lgw_req_fn finish;
    struct timespec t0;
    int status; /* as answered, for the access log */
    /* the invocation, shared by the faces */
    struct lgw_invocation inv;
    json_t *event; /* owned reference */
    char function[LGW_FUNCTION_NAME_MAX + 1];
    char qualifier[LGW_QUALIFIER_MAX + 1];
    char *client_context; /* owned decoded JSON text */
    void *face_state;     /* owned by the face; freed with face_free */
    void (*face_free)(void *state);

    /* The request-target as sent (path and query, undecoded; owned, may be NULL) and the
     * protocol ("HTTP/1.1"): the handler routes face puts them in its events. */
    char *raw_target;
    char protocol[16];
};

struct lgw_metrics {
    atomic_ulong requests[8][6]; /* by face index, by status class 1xx..5xx (index 1..5) */
    atomic_ulong invocations_ok, invocations_error, throttled, timeouts;
    atomic_long inflight;
    atomic_ulong bytes_in, bytes_out;
};

struct lgw_server;

/* One HTTP thread: its daemon and its event loop (http.c). */
struct lgw_loop {
    struct lgw_server *s;
    struct MHD_Daemon *mhd;
    unsigned idx;
    int epfd, ctlfd;
    pthread_t thread;
    bool started;
    bool resumed; /* run the daemon again at once (a resume on this thread, a close) */
};

struct lgw_server {
    struct lgw_config *cfg;
    struct lgw_dispatcher *disp;
    struct lgw_routes *routes; /* compiled handler routes, owned (routes.c) */
    struct lgw_loop *loops;
    unsigned nloops;
    int listen_fd; /* shared by every loop's daemon; -1 once closed */
    atomic_bool loops_quiesce, loops_stop;
    pthread_mutex_t loops_lock; /* with loops_cond: loops_quiesced counts the acks */
    pthread_cond_t loops_cond;
    unsigned loops_quiesced;
    unsigned port;
    struct lgw_metrics metrics;
    struct timespec started;
    atomic_bool draining;
};

/* The number of HTTP threads the server runs for cfg (http_threads, or one per CPU). */
unsigned lgw_server_threads(const struct lgw_config *cfg);
/* Starts the daemon on cfg->listen_host:listen_port. Returns 0 or -1 with err set. */
int lgw_server_start(struct lgw_server *s, struct lgw_config *cfg, struct lgw_dispatcher *disp,
                     char *err, size_t errlen);
/* Stops taking new connections (answers already accepted ones). */
void lgw_server_quiesce(struct lgw_server *s);
/* Waits up to timeout_ms for requests in flight to finish; returns how many are left. */
long lgw_server_wait_idle(struct lgw_server *s, int timeout_ms);
/* Stops the daemon; every dispatch must have completed (drain the dispatcher first). */
void lgw_server_stop(struct lgw_server *s);

/* ---- for the faces ---- */

/* A response with body (taken over, malloc'd; may be NULL for empty). */
struct MHD_Response *lgw_response_new(char *body, size_t len, const char *content_type);
/* Adds the common headers (X-Request-Id, ...), queues with status, destroys resp, logs. */
void lgw_req_queue(struct lgw_req *r, int status, struct MHD_Response *resp);
/* Answers status with the JSON value (reference stolen). */
void lgw_req_send_json(struct lgw_req *r, int status, json_t *body);
/* The gateway face's error body: {"error":{"type","message","function","requestId",...}}. */
void lgw_req_send_error(struct lgw_req *r, const struct lgw_error *e);
/* A gateway-style error from a code and message (request-level: no function yet). */
void lgw_req_send_simple_error(struct lgw_req *r, int status, const char *type, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));

enum lgw_dispatch_kind { LGW_DISPATCH_SYNC, LGW_DISPATCH_ASYNC, LGW_DISPATCH_CHECK };
/* Starts r->inv on the dispatcher; finish is called (on an HTTP thread) once it is done. */
void lgw_req_dispatch(struct lgw_req *r, enum lgw_dispatch_kind kind, lgw_req_fn finish);

/* Parses r->body as JSON into r->event ({} when empty). 0, or -1 with err set (400). */
int lgw_req_parse_event(struct lgw_req *r, struct lgw_error *err);

/* A request header (case-insensitive), or NULL. */
const char *lgw_req_header(struct lgw_req *r, const char *name);

/* The faces. */
extern const struct lgw_face lgw_face_gateway;
extern const struct lgw_face lgw_face_ops;
extern const struct lgw_face lgw_face_invoke_api;
extern const struct lgw_face lgw_face_routes;

#endif
