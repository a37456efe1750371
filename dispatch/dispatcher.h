/*
 * dispatcher.h - the dispatcher interface: the seed's dispatch(func, event) and
 * dispatch_async(func, event), with one implementation per mode (local.c, lambda.c).
 *
 * The interface is asynchronous: an operation starts an invocation and calls `done` exactly once,
 * either before it returns (an early refusal) or later on another thread. The server suspends the
 * HTTP connection meanwhile, so no server thread ever waits on a function. lgw_dispatch_wait()
 * and lgw_dispatch_async_wait() are blocking wrappers for C programs and tests.
 *
 * Both modes answer through the same struct lgw_invocation, so the faces cannot tell them apart.
 */
#ifndef LGW_DISPATCHER_H
#define LGW_DISPATCHER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define LGW_REQUEST_ID_LEN 36 /* a UUID, as Lambda's request ids */
#define LGW_FUNCTION_NAME_MAX 64
#define LGW_QUALIFIER_MAX 128
#define LGW_SYNC_PAYLOAD_MAX 6291456u  /* Lambda's request limit, RequestResponse */
#define LGW_ASYNC_PAYLOAD_MAX 1048576u /* Lambda's request limit, Event (since Oct 2025) */
#define LGW_RESPONSE_MAX 6291556u      /* over this a response is Function.ResponseSizeTooLarge */
#define LGW_LOG_TAIL_MAX 4096u         /* X-Amz-Log-Result holds the last 4 KB */

enum lgw_invoke_type {
    LGW_INVOKE_SYNC = 0, /* RequestResponse */
    LGW_INVOKE_EVENT,    /* Event: accepted, runs later */
    LGW_INVOKE_DRYRUN,   /* DryRun: checks the function exists and may be called */
};

/*
 * One invocation: the request (filled by the caller) and the answer (filled by the dispatcher).
 * The caller owns the struct and everything the request fields point to, and keeps them valid
 * until `done` has been called. Release the answer with lgw_invocation_release().
 */
struct lgw_invocation {
    /* request */
    const char *function;  /* the name callers use: validated, at most 64 chars */
    const char *qualifier; /* version or alias, or NULL for $LATEST */
    json_t *event;         /* borrowed: the parsed event (never NULL: {} for an empty body) */
    const char *payload;   /* the event as raw JSON text, or NULL: lambda mode sends it as is */
    size_t payload_len;
    const char *client_context; /* decoded X-Amz-Client-Context JSON text, or NULL */
    bool log_tail;              /* X-Amz-Log-Type: Tail */
    size_t event_size; /* bytes of the body the event came from: a scheduling hint (0 = small) */
    char request_id[LGW_REQUEST_ID_LEN + 1]; /* set by lgw_invocation_init */

    /* answer */
    char *result; /* owned: the function's result as JSON text (success only) */
    size_t result_len;
    char *log_tail_b64; /* owned: base64 of the last 4 KB of the log, if asked */
    char executed_version[LGW_QUALIFIER_MAX + 1];
    struct lgw_error err; /* LGW_OK on success */
};

/* Zeroes inv and gives it a fresh request id. */
void lgw_invocation_init(struct lgw_invocation *inv);
/* Frees the answer fields; the request fields are the caller's. Accepts NULL. */
void lgw_invocation_release(struct lgw_invocation *inv);

typedef void (*lgw_done_fn)(struct lgw_invocation *inv, void *arg);

struct lgw_dispatcher;

struct lgw_dispatcher_ops {
    const char *name; /* "local" or "lambda" */
    /* Runs the function and calls done with its result or error. */
    void (*dispatch)(struct lgw_dispatcher *d, struct lgw_invocation *inv, lgw_done_fn done,
                     void *arg);
    /* Hands the event over to run later and calls done once it is accepted (err LGW_OK) or
     * refused. The dispatcher copies what it needs: the request may be freed after done. */
    void (*dispatch_async)(struct lgw_dispatcher *d, struct lgw_invocation *inv, lgw_done_fn done,
                           void *arg);
    /* DryRun: calls done with LGW_OK when the function exists and may be invoked. */
    void (*check)(struct lgw_dispatcher *d, struct lgw_invocation *inv, lgw_done_fn done,
                  void *arg);
    /* Lists the function names served, as a new JSON array reference. */
    json_t *(*functions)(struct lgw_dispatcher *d);
    /* Stops taking work (new calls get LGW_ESHUTDOWN) and waits until everything accepted,
     * queued async events included, has run and its done has returned. */
    void (*drain)(struct lgw_dispatcher *d);
    /* Frees the dispatcher; drains first if that was not done. Accepts NULL via the wrapper. */
    void (*destroy)(struct lgw_dispatcher *d);

    /*
     * Optional (NULL when the dispatcher has no I/O of its own to wait for, as in local mode):
     * lets each HTTP thread drive the dispatcher's I/O from its own event loop, so that a call
     * is sent, answered and replied to on the thread that took the request, with no hand-off
     * between threads.
     * - loop_attach: called once on each loop thread (idx counts from 0) before it serves;
     *   returns a descriptor that turns readable when loop_run has work, or -1 when this
     *   dispatcher runs its own threads (the loop then makes no other call).
     * - loop_timeout: called just before the thread waits; milliseconds until loop_run is due
     *   by itself, -1 for no such moment.
     * - loop_run: does what is ready without blocking (ready: the descriptor was reported
     *   readable) and returns how many calls it answered, i.e. how many done callbacks ran.
     */
    int (*loop_attach)(struct lgw_dispatcher *d, unsigned idx);
    int (*loop_timeout)(struct lgw_dispatcher *d);
    unsigned (*loop_run)(struct lgw_dispatcher *d, bool ready);
};

struct lgw_dispatcher {
    const struct lgw_dispatcher_ops *ops;
};

static inline void lgw_dispatch(struct lgw_dispatcher *d, struct lgw_invocation *inv,
                                lgw_done_fn done, void *arg)
{
    d->ops->dispatch(d, inv, done, arg);
}

static inline void lgw_dispatch_async(struct lgw_dispatcher *d, struct lgw_invocation *inv,
                                      lgw_done_fn done, void *arg)
{
    d->ops->dispatch_async(d, inv, done, arg);
}

static inline void lgw_dispatch_check(struct lgw_dispatcher *d, struct lgw_invocation *inv,
                                      lgw_done_fn done, void *arg)
{
    d->ops->check(d, inv, done, arg);
}

static inline json_t *lgw_dispatcher_functions(struct lgw_dispatcher *d)
{
    return d->ops->functions(d);
}

static inline void lgw_dispatcher_drain(struct lgw_dispatcher *d)
{
    d->ops->drain(d);
}

static inline int lgw_dispatcher_loop_attach(struct lgw_dispatcher *d, unsigned idx)
{
    return d->ops->loop_attach ? d->ops->loop_attach(d, idx) : -1;
}

static inline int lgw_dispatcher_loop_timeout(struct lgw_dispatcher *d)
{
    return d->ops->loop_timeout(d);
}

static inline unsigned lgw_dispatcher_loop_run(struct lgw_dispatcher *d, bool ready)
{
    return d->ops->loop_run(d, ready);
}

static inline void lgw_dispatcher_free(struct lgw_dispatcher *d)
{
    if (d)
        d->ops->destroy(d);
}

/* Blocking forms for C programs: return inv->err.code once done has run. */
enum lgw_errc lgw_dispatch_wait(struct lgw_dispatcher *d, struct lgw_invocation *inv);
enum lgw_errc lgw_dispatch_async_wait(struct lgw_dispatcher *d, struct lgw_invocation *inv);

/*
 * Function names (DESIGN.md, wire facts). lgw_function_name_parse() accepts a name, NAME:QUAL,
 * a partial ARN ACCOUNT:function:NAME[:QUAL] or a full ARN
 * arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUAL] (256 chars at most) and splits it into the
 * bare name (at most 64 of [A-Za-z0-9_-]) and the qualifier. A bad name is LGW_EBADREQUEST with
 * a message saying why.
 */
struct lgw_function_ref {
    char name[LGW_FUNCTION_NAME_MAX + 1];
    char qualifier[LGW_QUALIFIER_MAX + 1]; /* "" when none */
    char region[32];                       /* "" unless a full ARN gave one */
    char account[16];                      /* "" unless an ARN gave one */
};
enum lgw_errc lgw_function_name_parse(const char *s, struct lgw_function_ref *ref,
                                      struct lgw_error *err);
bool lgw_function_name_valid(const char *name);
bool lgw_qualifier_valid(const char *q);

#endif
