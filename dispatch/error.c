/*
 * error.c - the error table: one row per enum lgw_errc, giving the seed's exception type, the
 * gateway face status, and the Invoke API face status and AWS error type (DESIGN.md's tables).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

struct errc_row {
    const char *name;
    const char *type;     /* seed exception / gateway error type */
    int status;           /* gateway face */
    int aws_status;       /* Invoke API face */
    const char *aws_type; /* x-amzn-ErrorType */
};

static const struct errc_row errc_table[LGW_ERRC_COUNT] = {
    [LGW_OK] = {"OK", "OK", 200, 200, ""},
    [LGW_EBADREQUEST] = {"EBADREQUEST", "BadRequest", 400, 400, "InvalidRequestContentException"},
    [LGW_ETOOLARGE] = {"ETOOLARGE", "RequestTooLarge", 413, 413, "RequestEntityTooLargeException"},
    [LGW_ENOTFOUND] = {"ENOTFOUND", "LambdaClientError", 404, 404, "ResourceNotFoundException"},
    [LGW_EDENIED] = {"EDENIED", "LambdaClientError", 403, 403, "AccessDeniedException"},
    [LGW_ETHROTTLED] = {"ETHROTTLED", "LambdaClientError", 429, 429, "TooManyRequestsException"},
    /* A function error is an answer on the Invoke API face: 200 + X-Amz-Function-Error. */
    [LGW_EEXECUTE] = {"EEXECUTE", "LambdaExecuteError", 502, 200, ""},
    [LGW_ETIMEDOUT] = {"ETIMEDOUT", "LambdaExecuteError", 504, 200, ""},
    [LGW_ECLIENT] = {"ECLIENT", "LambdaClientError", 502, 500, "ServiceException"},
    [LGW_ECLIENT_TIMEOUT] = {"ECLIENT_TIMEOUT", "LambdaClientError", 504, 500, "ServiceException"},
    [LGW_EINVALID_FUNCTION] = {"EINVALID_FUNCTION", "InvalidFunctionTypeError", 500, 500,
                               "ServiceException"},
    [LGW_ESHUTDOWN] = {"ESHUTDOWN", "ServiceUnavailable", 503, 503, "ServiceException"},
    [LGW_EINTERNAL] = {"EINTERNAL", "InternalError", 500, 500, "ServiceException"},
};

static const struct errc_row *row(enum lgw_errc code)
{
    if ((unsigned)code >= LGW_ERRC_COUNT)
        code = LGW_EINTERNAL;
    return &errc_table[code];
}

const char *lgw_errc_type(enum lgw_errc code)
{
    return row(code)->type;
}

const char *lgw_errc_name(enum lgw_errc code)
{
    return row(code)->name;
}

int lgw_errc_status(enum lgw_errc code)
{
    return row(code)->status;
}

void lgw_error_init(struct lgw_error *e)
{
    memset(e, 0, sizeof(*e));
    e->status = 200;
    e->aws_status = 200;
}

void lgw_error_release(struct lgw_error *e)
{
    if (!e)
        return;
    free(e->payload);
    lgw_error_init(e);
}

enum lgw_errc lgw_error_setv(struct lgw_error *e, enum lgw_errc code, const char *fmt, va_list ap)
{
    const struct errc_row *r = row(code);

    free(e->payload);
    e->payload = NULL;
    e->payload_len = 0;
    e->code = code;
    e->status = r->status;
    e->aws_status = r->aws_status;
    snprintf(e->aws_type, sizeof(e->aws_type), "%s", r->aws_type);
    e->reason[0] = '\0';
    e->retry_after = code == LGW_ETHROTTLED ? 1 : 0;
    if (fmt)
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
    else
        e->message[0] = '\0';
    return code;
}

enum lgw_errc lgw_error_set(struct lgw_error *e, enum lgw_errc code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    lgw_error_setv(e, code, fmt, ap);
    va_end(ap);
    return code;
}

void lgw_error_take_payload(struct lgw_error *e, char *payload, size_t len)
{
    free(e->payload);
    e->payload = payload;
    e->payload_len = len;
}

void lgw_error_move(struct lgw_error *dst, struct lgw_error *src)
{
    lgw_error_release(dst);
    *dst = *src;
    lgw_error_init(src);
}

struct status_row {
    int status;
    const char *reason;
};

static const struct status_row status_table[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Payload Too Large"},
    {415, "Unsupported Media Type"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *lgw_http_reason(int status)
{
    for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
        if (status_table[i].status == status)
            return status_table[i].reason;
    return "Unknown";
}
