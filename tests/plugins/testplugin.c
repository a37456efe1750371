/*
 * testplugin.c - a handler library for the plugin-loading tests: what a user's own .so looks
 * like. `shout` upper-cases event.text; `whoami` returns the Lambda context it was given;
 * `echo` overrides the built-in echo (to show a plugin may replace a built-in); `record`
 * appends a line to a file, so tests can see async invocations run.
 */
#include <ctype.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "lgw_handler.h"

static json_t *shout(struct lgw_exec_ctx *ctx)
{
    json_t *t = json_object_get(lgw_event(ctx), "text");
    char *s;
    json_t *res;

    if (!json_is_string(t))
        return lgw_raise(ctx, "TypeError", "text must be a string");
    s = strdup(json_string_value(t));
    if (!s)
        return lgw_raise(ctx, "MemoryError", "out of memory");
    for (char *p = s; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    lgw_log(ctx, "shouting %zu characters", strlen(s));
    res = json_pack("{s:s}", "text", s);
    free(s);
    return res;
}

static json_t *whoami(struct lgw_exec_ctx *ctx)
{
    const struct lgw_lambda_context *c = lgw_context(ctx);

    return json_pack("{s:s,s:s,s:s,s:s,s:i,s:b,s:O?,s:s?}", "requestId", c->request_id,
                     "functionName", c->function_name, "functionVersion", c->function_version,
                     "invokedArn", c->invoked_arn, "memoryMb", (int)c->memory_mb, "hasTime",
                     lgw_remaining_ms(ctx) > 0, "clientContext", c->client_context, "greeting",
                     lgw_config_get(ctx, "GREETING", NULL));
}

/* Appends event.text and a newline to the file event.file after sleeping event.ms: lets tests
 * see that async invocations really ran (and all of them, after a drain). */
static json_t *record(struct lgw_exec_ctx *ctx)
{
    json_t *ev = lgw_event(ctx);
    const char *file = json_string_value(json_object_get(ev, "file"));
    const char *text = json_string_value(json_object_get(ev, "text"));
    json_int_t ms = json_integer_value(json_object_get(ev, "ms"));
    FILE *f;

    if (!file || !text)
        return lgw_raise(ctx, "ValueError", "file and text are required");
    if (ms > 0) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    f = fopen(file, "a");
    if (!f)
        return lgw_raise(ctx, "IOError", "cannot open %s", file);
    fprintf(f, "%s\n", text);
    fclose(f);
    return json_pack("{s:b}", "recorded", 1);
}

static json_t *plugin_echo(struct lgw_exec_ctx *ctx)
{
    return json_pack("{s:s,s:O}", "from", "plugin", "event", lgw_event(ctx));
}

const struct lgw_handler_def lgw_handlers[] = {
    {LGW_HANDLER_ABI, "shout", shout, "upper-cases event.text", 0},
    {LGW_HANDLER_ABI, "whoami", whoami, "returns its Lambda context", 0},
    {LGW_HANDLER_ABI, "echo", plugin_echo, "overrides the built-in echo", 0},
    {LGW_HANDLER_ABI, "record", record, "appends event.text to event.file", 0},
    {0, NULL, NULL, NULL, 0},
};
