/*
 * routes_plugin.c - handlers for the handler-route tests (tests/integration/test_routes.py):
 *
 *   answer      returns the JSON document in the request body as its result, so a test can
 *               make the function give any proxy answer (statusCode, headers, cookies, a bare
 *               string, a malformed one...). A body that is not JSON raises ValueError.
 *   binary      returns the request body unchanged as a binary answer: base64 in `body` with
 *               isBase64Encoded true (the body arrives base64 already when the request was
 *               binary; a text body is encoded here).
 *   echo_proxy  answers 200 with the event it was given as a JSON body: how a payload 1.0 route
 *               (which needs a statusCode) shows its event.
 *   nap         sleeps queryStringParameters.ms milliseconds (at most 60000), giving up at its
 *               deadline as a stopped sandbox would; for timeouts and throttling.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lgw_handler.h"

static json_t *answer(struct lgw_exec_ctx *ctx)
{
    json_t *body = json_object_get(lgw_event(ctx), "body");
    json_t *res;

    if (!json_is_string(body))
        return lgw_raise(ctx, "ValueError", "the request has no text body");
    res = json_loadb(json_string_value(body), json_string_length(body), JSON_DECODE_ANY, NULL);
    if (!res)
        return lgw_raise(ctx, "ValueError", "the request body is not JSON");
    return res;
}

static char *b64(const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static json_t *binary(struct lgw_exec_ctx *ctx)
{
    json_t *ev = lgw_event(ctx);
    json_t *body = json_object_get(ev, "body");
    char *enc = NULL;
    json_t *res;

    if (!json_is_string(body))
        return json_pack("{s:i,s:{s:s},s:s,s:b}", "statusCode", 200, "headers", "content-type",
                         "application/octet-stream", "body", "", "isBase64Encoded", 1);
    if (!json_is_true(json_object_get(ev, "isBase64Encoded"))) {
        enc = b64((const unsigned char *)json_string_value(body), json_string_length(body));
        if (!enc)
            return lgw_raise(ctx, "MemoryError", "out of memory");
    }
    res = json_pack("{s:i,s:{s:s},s:s,s:b}", "statusCode", 200, "headers", "content-type",
                    "application/octet-stream", "body", enc ? enc : json_string_value(body),
                    "isBase64Encoded", 1);
    free(enc);
    return res;
}

static json_t *echo_proxy(struct lgw_exec_ctx *ctx)
{
    char *text = json_dumps(lgw_event(ctx), JSON_COMPACT);
    json_t *res;

    if (!text)
        return lgw_raise(ctx, "MemoryError", "out of memory");
    res = json_pack("{s:i,s:{s:s},s:s}", "statusCode", 200, "headers", "Content-Type",
                    "application/json", "body", text);
    free(text);
    return res;
}

static json_t *nap(struct lgw_exec_ctx *ctx)
{
    json_t *qs = json_object_get(lgw_event(ctx), "queryStringParameters");
    const char *ms = json_string_value(json_object_get(qs, "ms"));
    long left = ms ? strtol(ms, NULL, 10) : 0;

    if (left < 0 || left > 60000)
        return lgw_raise(ctx, "ValueError", "ms must be from 0 to 60000");
    while (left > 0) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
        if (lgw_remaining_ms(ctx) <= 0)
            return lgw_raise(ctx, "TimeoutError", "deadline passed while napping");
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        left -= 10;
    }
    return json_pack("{s:i,s:s}", "statusCode", 200, "body", "rested");
}

const struct lgw_handler_def lgw_handlers[] = {
    {LGW_HANDLER_ABI, "answer", answer, "returns the request body's JSON as its result", 0},
    {LGW_HANDLER_ABI, "binary", binary, "returns the request body as a binary answer", 0},
    {LGW_HANDLER_ABI, "echo_proxy", echo_proxy, "answers 200 with its event as the body", 0},
    {LGW_HANDLER_ABI, "nap", nap, "sleeps queryStringParameters.ms milliseconds", 0},
    {0, NULL, NULL, NULL, 0},
};
