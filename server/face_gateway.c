/*
 * face_gateway.c - the gateway face: POST /invoke (envelope {"function","event"}),
 * POST /invoke/NAME (body = event), and their -async forms. Answers 200 with the function's
 * result, 202 {"status":202,"requestId"} for async, and the error table of DESIGN.md.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"

static bool is_async(const struct lgw_req *r)
{
    return r->route.kind == LGW_ROUTE_INVOKE_ASYNC;
}

static size_t gateway_limit(const struct lgw_req *r)
{
    return is_async(r) ? LGW_ASYNC_PAYLOAD_MAX : LGW_SYNC_PAYLOAD_MAX;
}

static void finish(struct lgw_req *r)
{
    struct lgw_invocation *inv = &r->inv;

    if (inv->err.code != LGW_OK) {
        lgw_req_send_error(r, &inv->err);
        return;
    }
    if (is_async(r)) {
        lgw_req_send_json(r, 202,
                          json_pack("{s:i,s:s}", "status", 202, "requestId", inv->request_id));
        return;
    }
    lgw_req_queue(r, 200, lgw_response_new(inv->result, inv->result_len, "application/json"));
    inv->result = NULL; /* the response owns it now */
    inv->result_len = 0;
}

/* Sets r->function/qualifier from a name as callers may write it (NAME, NAME:QUAL, ARN). */
static int take_name(struct lgw_req *r, const char *s, struct lgw_error *err)
{
    struct lgw_function_ref ref;

    if (lgw_function_name_parse(s, &ref, err) != LGW_OK)
        return -1;
    memcpy(r->function, ref.name, sizeof(r->function));
    memcpy(r->qualifier, ref.qualifier, sizeof(r->qualifier));
    return 0;
}

static int parse_envelope(struct lgw_req *r, struct lgw_error *err)
{
    static const char *const keys[] = {"function", "event", "qualifier", NULL};
    json_t *env = r->event, *fn, *ev, *q;
    const char *key;
    json_t *v;

    if (!json_is_object(env)) {
        lgw_error_set(err, LGW_EBADREQUEST,
                      "the body must be a JSON object {\"function\": NAME, \"event\": {...}}");
        return -1;
    }
    json_object_foreach(env, key, v)
    {
        size_t i;
        for (i = 0; keys[i] && strcmp(keys[i], key); i++)
            ;
        if (!keys[i]) {
            lgw_error_set(err, LGW_EBADREQUEST,
                          "unknown key '%.64s' in the envelope (expected function, event, "
                          "qualifier)",
                          key);
            return -1;
        }
    }
    fn = json_object_get(env, "function");
    if (!fn) {
        lgw_error_set(err, LGW_EBADREQUEST, "missing 'function' in the envelope");
        return -1;
    }
    if (!json_is_string(fn)) {
        lgw_error_set(err, LGW_EBADREQUEST, "'function' must be a string");
        return -1;
    }
    if (take_name(r, json_string_value(fn), err) < 0)
        return -1;
    q = json_object_get(env, "qualifier");
    if (q) {
        if (!json_is_string(q) || !lgw_qualifier_valid(json_string_value(q))) {
            lgw_error_set(err, LGW_EBADREQUEST,
                          "'qualifier' must be $LATEST or 1-128 of [A-Za-z0-9_-]");
            return -1;
        }
        if (r->qualifier[0] && strcmp(r->qualifier, json_string_value(q)) != 0) {
            lgw_error_set(err, LGW_EBADREQUEST,
                          "the qualifier in 'function' and 'qualifier' differ");
            return -1;
        }
        snprintf(r->qualifier, sizeof(r->qualifier), "%s", json_string_value(q));
    }
    ev = json_object_get(env, "event");
    ev = ev ? json_incref(ev) : json_object();
    json_decref(r->event);
    r->event = ev;
    return ev ? 0 : -1;
}

static void start(struct lgw_req *r)
{
    struct lgw_error err;

    lgw_error_init(&err);
    if (lgw_req_parse_event(r, &err) < 0)
        goto fail;
    if (r->route.name) {
        char name[300];
        if (r->route.name_len >= sizeof(name)) {
            lgw_error_set(&err, LGW_EBADREQUEST, "function name longer than 256 characters");
            goto fail;
        }
        memcpy(name, r->route.name, r->route.name_len);
        name[r->route.name_len] = '\0';
        if (take_name(r, name, &err) < 0)
            goto fail;
        /* The body is the event: lambda mode forwards these bytes unchanged. */
        r->inv.payload = r->len ? r->body : NULL;
        r->inv.payload_len = r->len;
    } else if (parse_envelope(r, &err) < 0) {
        goto fail;
    }
    lgw_req_dispatch(r, is_async(r) ? LGW_DISPATCH_ASYNC : LGW_DISPATCH_SYNC, finish);
    return;
fail:
    if (err.code == LGW_OK)
        lgw_error_set(&err, LGW_EINTERNAL, "out of memory");
    lgw_req_send_error(r, &err);
    lgw_error_release(&err);
}

const struct lgw_face lgw_face_gateway = {
    .name = "gateway",
    .body_limit = gateway_limit,
    .start = start,
};
