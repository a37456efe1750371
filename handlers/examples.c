/*
 * examples.c - the built-in example handlers, served in local mode without any configuration:
 *
 *   echo    returns its event unchanged.
 *   hello   API Gateway-style greeting to pathParameters.name, else queryStringParameters.name,
 *           else event.name, else "world": {"statusCode":200,"headers":{...},"body":"..."}.
 *   fail    raises an error: errorType from event.type (default "ValueError"), errorMessage from
 *           event.message (default "fail was asked to fail").
 *   sleep   sleeps event.ms milliseconds (0..900000), for timeouts and load; returns
 *           {"slept":ms}. Like a Lambda sandbox that is stopped at its timeout, it gives up at
 *           the deadline instead of holding its thread.
 *   config  returns {"key":K,"value":V}: config.get(event.key), null when unset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry.h"

static json_t *echo(struct lgw_exec_ctx *ctx)
{
    return json_incref(lgw_event(ctx));
}

static const char *string_at(json_t *obj, const char *key, const char *sub)
{
    json_t *v = json_object_get(obj, key);

    if (sub)
        v = json_object_get(v, sub);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

static json_t *hello(struct lgw_exec_ctx *ctx)
{
    json_t *ev = lgw_event(ctx);
    const char *name = string_at(ev, "pathParameters", "name");
    json_t *body, *res;
    char *text;

    if (!name)
        name = string_at(ev, "queryStringParameters", "name");
    if (!name)
        name = string_at(ev, "name", NULL);
    if (!name)
        name = "world";
    body = json_pack("{s:s++}", "message", "Hello, ", name, "!");
    if (!body)
        return lgw_raise(ctx, "MemoryError", "out of memory");
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return lgw_raise(ctx, "MemoryError", "out of memory");
    res = json_pack("{s:i,s:{s:s},s:s}", "statusCode", 200, "headers", "content-type",
                    "application/json", "body", text);
    free(text);
    return res;
}

static json_t *fail(struct lgw_exec_ctx *ctx)
{
    const char *type = string_at(lgw_event(ctx), "type", NULL);
    const char *msg = string_at(lgw_event(ctx), "message", NULL);

    return lgw_raise(ctx, type ? type : "ValueError", "%s", msg ? msg : "fail was asked to fail");
}

#define SLEEP_MAX_MS 900000 /* Lambda's longest timeout, 15 minutes */

static json_t *sleep_handler(struct lgw_exec_ctx *ctx)
{
    json_t *ms = json_object_get(lgw_event(ctx), "ms");
    json_int_t want, left;

    if (!ms)
        want = 0;
    else if (!json_is_integer(ms) || json_integer_value(ms) < 0 ||
             json_integer_value(ms) > SLEEP_MAX_MS)
        return lgw_raise(ctx, "ValueError", "ms must be an integer from 0 to %d", SLEEP_MAX_MS);
    else
        want = json_integer_value(ms);
    lgw_log(ctx, "sleeping %lld ms", (long long)want);
    for (left = want; left > 0;) {
        /* Sleep in slices so a call past its deadline frees its worker soon after. */
        json_int_t slice = left < 50 ? left : 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};
        if (lgw_remaining_ms(ctx) <= 0)
            return lgw_raise(ctx, "TimeoutError", "deadline passed while sleeping");
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        left -= slice;
    }
    return json_pack("{s:I}", "slept", want);
}

static json_t *config(struct lgw_exec_ctx *ctx)
{
    const char *key = string_at(lgw_event(ctx), "key", NULL);
    const char *value;

    if (!key)
        return lgw_raise(ctx, "KeyError", "event.key must be a non-empty string");
    value = lgw_config_get(ctx, key, NULL);
    return json_pack("{s:s,s:s*}", "key", key, "value", value);
}

const struct lgw_handler_def lgw_builtin_handlers[] = {
    {LGW_HANDLER_ABI, "echo", echo, "returns its event", LGW_HANDLER_INLINE},
    {LGW_HANDLER_ABI, "hello", hello, "API Gateway-style greeting", LGW_HANDLER_INLINE},
    {LGW_HANDLER_ABI, "fail", fail, "raises ValueError with event.message", LGW_HANDLER_INLINE},
    {LGW_HANDLER_ABI, "sleep", sleep_handler, "sleeps event.ms milliseconds", 0},
    {LGW_HANDLER_ABI, "config", config, "returns config.get(event.key)", LGW_HANDLER_INLINE},
    {0, NULL, NULL, NULL, 0},
};
