/*
 * error.h - the one error model of lambda-gateway.
 *
 * Every failure that reaches a caller is an enum lgw_errc plus a message. One table (error.c)
 * gives each code its seed exception type (LambdaClientError, LambdaExecuteError,
 * InvalidFunctionTypeError, or the gateway's own BadRequest/RequestTooLarge), its HTTP status on
 * the gateway face, and its AWS error type and status on the Invoke API face. Only server/ turns
 * a struct lgw_error into an HTTP answer.
 */
#ifndef LGW_ERROR_H
#define LGW_ERROR_H

#include <stdarg.h>
#include <stddef.h>

enum lgw_errc {
    LGW_OK = 0,
    LGW_EBADREQUEST,       /* malformed JSON, bad envelope, bad function name: 400 */
    LGW_ETOOLARGE,         /* request body over the limit: 413 */
    LGW_ENOTFOUND,         /* unknown function or qualifier: 404 */
    LGW_EDENIED,           /* not allowed by the allow-list: 403 */
    LGW_ETHROTTLED,        /* concurrency limit, queue full, AWS 429: 429 + Retry-After */
    LGW_EEXECUTE,          /* the function ran and raised: 502, payload = its error */
    LGW_ETIMEDOUT,         /* the function timed out (Sandbox.Timedout): 504 */
    LGW_ECLIENT,           /* Lambda refused or was unreachable, 5xx after retries: 502 */
    LGW_ECLIENT_TIMEOUT,   /* the call to Lambda timed out: 504 */
    LGW_EINVALID_FUNCTION, /* configured handler missing or not a handler (start-up) */
    LGW_ESHUTDOWN,         /* the gateway is draining and takes no new work: 503 */
    LGW_EINTERNAL,         /* out of memory or a bug: 500 */
    LGW_ERRC_COUNT
};

#define LGW_ERROR_MESSAGE_MAX 512
#define LGW_AWS_TYPE_MAX 96

/*
 * An error as the caller sees it. _init it (or zero it); lgw_error_release() frees the payload.
 * `status`/`aws_status`/`aws_type` start from the table and may be overridden when an upstream
 * (AWS) said something more precise.
 */
struct lgw_error {
    enum lgw_errc code;
    int status;                      /* gateway face HTTP status */
    int aws_status;                  /* Invoke API face HTTP status (200 for function errors) */
    char aws_type[LGW_AWS_TYPE_MAX]; /* x-amzn-ErrorType / awsErrorType; "" when none */
    char message[LGW_ERROR_MESSAGE_MAX];
    char reason[64]; /* 429 "Reason" (e.g. ReservedFunctionConcurrentInvocationLimitExceeded) */
    unsigned retry_after; /* seconds, for 429; 0 = none */
    char *payload;        /* LGW_EEXECUTE/LGW_ETIMEDOUT: the function's error JSON text, owned */
    size_t payload_len;
};

void lgw_error_init(struct lgw_error *e);
/* Frees the payload and resets to LGW_OK. Accepts NULL. */
void lgw_error_release(struct lgw_error *e);

/* Sets code, the table's statuses and AWS type, and a printf-style message. Returns code. */
enum lgw_errc lgw_error_set(struct lgw_error *e, enum lgw_errc code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum lgw_errc lgw_error_setv(struct lgw_error *e, enum lgw_errc code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Takes ownership of payload (malloc'd JSON text) as the function's error payload. */
void lgw_error_take_payload(struct lgw_error *e, char *payload, size_t len);

/* Moves src into dst (dst released first); src is left as LGW_OK. */
void lgw_error_move(struct lgw_error *dst, struct lgw_error *src);

/* The seed's exception name for a code: "LambdaClientError", "BadRequest", ... */
const char *lgw_errc_type(enum lgw_errc code);
/* A short stable name for logs and tests: "ENOTFOUND". */
const char *lgw_errc_name(enum lgw_errc code);
int lgw_errc_status(enum lgw_errc code);

/* The HTTP reason phrase for a status ("Not Found"); "Unknown" for others. */
const char *lgw_http_reason(int status);

#endif
