/*
 * lgw_handler.h - the C handler API: the seed's LambdaHandler(execution_context).
 *
 * A handler is a function that receives an execution context and returns a JSON result:
 *
 *     static json_t *orders(struct lgw_exec_ctx *ctx)
 *     {
 *         json_t *id = json_object_get(lgw_event(ctx), "orderId");
 *         if (!json_is_integer(id))
 *             return lgw_raise(ctx, "ValueError", "orderId must be an integer");
 *         return json_pack("{s:I}", "orderId", json_integer_value(id));
 *     }
 *     const struct lgw_handler_def lgw_handlers[] = {
 *         {LGW_HANDLER_ABI, "orders", orders, "Looks an order up.", 0},
 *         {0},
 *     };
 *
 * The result is a *new* jansson reference that the host takes over (json_null() for "null").
 * To fail, return lgw_raise(...): the host turns the error into Lambda's
 * {"errorType","errorMessage","stackTrace"} payload. Handlers may run on several threads at once
 * (one invocation per thread, as concurrent Lambda sandboxes): keep shared state thread-safe.
 *
 * The execution context is an interface: the ops table is supplied by whoever hosts the handler
 * (the gateway's local dispatcher, a unit test, a custom runtime). The data fields are filled by
 * the host before the call and are read-only for the handler.
 *
 * This header depends only on jansson and the C library; it knows nothing of HTTP.
 */
#ifndef LGW_HANDLER_H
#define LGW_HANDLER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Bumped whenever struct lgw_handler_def or struct lgw_exec_ctx changes incompatibly. */
#define LGW_HANDLER_ABI 0x4c470002u

#define LGW_ERROR_TYPE_MAX 128

struct lgw_exec_ctx;

/* Lambda's context object (the `context` argument of a Python handler). */
struct lgw_lambda_context {
    const char *request_id;       /* aws_request_id */
    const char *function_name;    /* function_name */
    const char *function_version; /* function_version, "$LATEST" locally */
    const char *invoked_arn;      /* invoked_function_arn */
    const char *log_group_name;   /* /aws/lambda/NAME */
    unsigned memory_mb;           /* memory_limit_in_mb */
    int64_t deadline_ms;          /* wall-clock deadline, ms since the epoch */
    json_t *client_context;       /* decoded X-Amz-Client-Context, borrowed; NULL if none */
};

struct lgw_exec_ctx_ops {
    /* The configuration value for key, or NULL. Borrowed: valid for the invocation. */
    const char *(*config_get)(struct lgw_exec_ctx *ctx, const char *key);
    /* Report an error to the notification service (the seed's notify(error)). */
    void (*notify)(struct lgw_exec_ctx *ctx, const char *error_type, const char *message);
    /* One line of the function's log (no trailing newline needed). */
    void (*log)(struct lgw_exec_ctx *ctx, const char *line, size_t len);
};

struct lgw_exec_ctx {
    const struct lgw_exec_ctx_ops *ops;
    json_t *event; /* borrowed: the parsed event, never NULL ({} for an empty payload) */
    struct lgw_lambda_context context;
    /* Set by lgw_raise(); read by the host after the handler returns. */
    int raised;
    char error_type[LGW_ERROR_TYPE_MAX];
    char *error_message; /* owned by the context; the host frees it */
};

typedef json_t *(*lgw_handler_fn)(struct lgw_exec_ctx *ctx);

/* One entry of a handler table. A plugin exports `const struct lgw_handler_def lgw_handlers[]`
 * ended by an all-zero entry. */
struct lgw_handler_def {
    uint32_t abi;            /* LGW_HANDLER_ABI */
    const char *name;        /* the function name it serves by default */
    lgw_handler_fn fn;       /* never NULL in a valid entry */
    const char *description; /* one line for --help and logs; may be NULL */
    uint32_t flags;          /* LGW_HANDLER_* below; 0 for none */
};

/*
 * The handler is short and never blocks (no I/O, no sleeping, no locks held for long): the
 * local dispatcher may run it on the HTTP thread that received the call, for events up to
 * LGW_INLINE_EVENT_MAX bytes, instead of handing it to a worker thread and back. That hand-off
 * costs more than such a handler itself. Its timeout cannot interrupt it there; a result that
 * comes back after the deadline is still answered as a timeout. A function's "inline" setting
 * overrides the flag.
 */
#define LGW_HANDLER_INLINE 0x1u
#define LGW_INLINE_EVENT_MAX 65536u

/* The event (borrowed). */
static inline json_t *lgw_event(const struct lgw_exec_ctx *ctx)
{
    return ctx->event;
}

/* The Lambda context (borrowed). */
static inline const struct lgw_lambda_context *lgw_context(const struct lgw_exec_ctx *ctx)
{
    return &ctx->context;
}

/* The seed's config.get(key, default): the function's configured environment first, then the
 * process environment, else def. */
const char *lgw_config_get(struct lgw_exec_ctx *ctx, const char *key, const char *def);

/* The seed's notify(error). */
void lgw_notify(struct lgw_exec_ctx *ctx, const char *error_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes a line to the function's log (what Lambda sends to CloudWatch; Tail returns it). */
void lgw_log(struct lgw_exec_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Milliseconds left before the deadline (negative once passed): get_remaining_time_in_millis. */
int64_t lgw_remaining_ms(const struct lgw_exec_ctx *ctx);

/* Records an error (type, printf-style message) and returns NULL, so a handler can
 * `return lgw_raise(ctx, "ValueError", "...")`. The last call wins. */
json_t *lgw_raise(struct lgw_exec_ctx *ctx, const char *error_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frees what lgw_raise stored; the host calls it when it is done with the context. */
void lgw_exec_ctx_release(struct lgw_exec_ctx *ctx);

/* Wall clock in ms since the epoch (the clock deadlines use). */
int64_t lgw_now_ms(void);

#endif
