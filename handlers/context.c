/*
 * context.c - the parts of the execution context that do not depend on the host: config lookup
 * with its fall-back to the process environment, raise, log and notify formatting, and the
 * default notification sink (one JSON line on stderr).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"

int64_t lgw_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *lgw_config_get(struct lgw_exec_ctx *ctx, const char *key, const char *def)
{
    const char *v = NULL;

    if (!key)
        return def;
    if (ctx && ctx->ops && ctx->ops->config_get)
        v = ctx->ops->config_get(ctx, key);
    if (!v)
        v = getenv(key);
    return v ? v : def;
}

int64_t lgw_remaining_ms(const struct lgw_exec_ctx *ctx)
{
    return ctx->context.deadline_ms - lgw_now_ms();
}

json_t *lgw_raise(struct lgw_exec_ctx *ctx, const char *error_type, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && (msg = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    free(ctx->error_message);
    ctx->error_message = msg; /* NULL on allocation failure: the host reports "" */
    snprintf(ctx->error_type, sizeof(ctx->error_type), "%s",
             error_type && *error_type ? error_type : "Error");
    ctx->raised = 1;
    return NULL;
}

void lgw_exec_ctx_release(struct lgw_exec_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->error_message);
    ctx->error_message = NULL;
    ctx->raised = 0;
    ctx->error_type[0] = '\0';
}

void lgw_log(struct lgw_exec_ctx *ctx, const char *fmt, ...)
{
    char line[LGW_LOG_LINE_MAX];
    va_list ap;
    int n;

    if (!ctx->ops || !ctx->ops->log)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* Longer lines are cut at LGW_LOG_LINE_MAX - 1 bytes, as the limit in context.h says. */
    ctx->ops->log(ctx, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void lgw_notify(struct lgw_exec_ctx *ctx, const char *error_type, const char *fmt, ...)
{
    char msg[LGW_LOG_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ctx->ops && ctx->ops->notify)
        ctx->ops->notify(ctx, error_type ? error_type : "Error", msg);
    else
        lgw_notice_emit(&(struct lgw_notice){.error_type = error_type ? error_type : "Error",
                                             .message = msg,
                                             .function = ctx->context.function_name,
                                             .request_id = ctx->context.request_id});
}

static void default_sink(const struct lgw_notice *n, void *arg)
{
    json_t *o;
    char *line;

    (void)arg;
    o = json_pack("{s:I,s:s,s:s,s:s?,s:s?,s:s}", "time", (json_int_t)lgw_now_ms(), "level", "error",
                  "event", "notify", "function", n->function, "requestId", n->request_id,
                  "errorType", n->error_type);
    if (!o)
        return;
    json_object_set_new(o, "errorMessage", json_string(n->message ? n->message : ""));
    line = json_dumps(o, JSON_COMPACT);
    if (line) {
        fprintf(stderr, "%s\n", line);
        free(line);
    }
    json_decref(o);
}

static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static lgw_notice_sink_fn sink_fn = default_sink;
static void *sink_arg;

void lgw_notice_sink_set(lgw_notice_sink_fn fn, void *arg)
{
    pthread_rwlock_wrlock(&sink_lock);
    sink_fn = fn ? fn : default_sink;
    sink_arg = fn ? arg : NULL;
    pthread_rwlock_unlock(&sink_lock);
}

void lgw_notice_emit(const struct lgw_notice *n)
{
    pthread_rwlock_rdlock(&sink_lock);
    sink_fn(n, sink_arg);
    pthread_rwlock_unlock(&sink_lock);
}
