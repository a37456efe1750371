/*
 * testplugin.c - a handler library for the plugin-loading tests: what a user's own .so looks
 * like. `shout` upper-cases event.text; `whoami` returns the Lambda context it was given;
 * `echo` overrides the built-in echo (to show a plugin may replace a built-in).
 */
#include <ctype.h>
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

static json_t *plugin_echo(struct lgw_exec_ctx *ctx)
{
    return json_pack("{s:s,s:O}", "from", "plugin", "event", lgw_event(ctx));
}

const struct lgw_handler_def lgw_handlers[] = {
    {LGW_HANDLER_ABI, "shout", shout, "upper-cases event.text"},
    {LGW_HANDLER_ABI, "whoami", whoami, "returns its Lambda context"},
    {LGW_HANDLER_ABI, "echo", plugin_echo, "overrides the built-in echo"},
    {0, NULL, NULL, NULL},
};
