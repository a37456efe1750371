/*
 * face_invoke.h - the Lambda Invoke API face's request checks, kept free of libmicrohttpd so the
 * unit tests can drive them (tests/unit/test_srv_invoke.c). The face itself is
 * lgw_face_invoke_api (http.h); everything here is what it does before and after a dispatch.
 *
 * Every check returns LGW_OK, or an error code with `err` filled the way the Invoke API answers
 * it: err->aws_status is the HTTP status and err->aws_type the x-amzn-ErrorType, overriding the
 * error table where AWS is more specific (ValidationException, InvalidParameterValueException,
 * the signature errors). Nothing here allocates unless it says so.
 */
#ifndef LGW_FACE_INVOKE_H
#define LGW_FACE_INVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "dispatcher.h"
#include "sigv4.h"

#define LGW_CLIENT_CONTEXT_MAX 3583u /* X-Amz-Client-Context: bytes of base64 */
#define LGW_INVOKE_MAX_SKEW 300u     /* SigV4: seconds of clock skew AWS tolerates */
#define LGW_INVOKE_SERVICE "lambda"  /* the SigV4 service name of the Invoke API */

/* X-Amz-Invocation-Type; NULL (absent) is RequestResponse. Bad: 400 ValidationException. */
enum lgw_errc lgw_invoke_parse_type(const char *value, enum lgw_invoke_type *out,
                                    struct lgw_error *err);

/* X-Amz-Log-Type; NULL is None. Bad: 400 ValidationException. */
enum lgw_errc lgw_invoke_parse_log_type(const char *value, bool *tail, struct lgw_error *err);

/*
 * X-Amz-Client-Context: at most LGW_CLIENT_CONTEXT_MAX bytes of base64 (padding optional)
 * holding a JSON object. On success *json is the decoded JSON text, malloc'd and NUL-terminated,
 * owned by the caller (NULL when value is NULL or empty). Bad: 400
 * InvalidRequestContentException with AWS's message.
 */
enum lgw_errc lgw_invoke_client_context(const char *value, char **json, struct lgw_error *err);

/*
 * The function the request names: the {FunctionName} path segment (decoded) in any of its forms
 * and the ?Qualifier= value (NULL when absent). A qualifier in both that differs is AWS's 400
 * InvalidParameterValueException; an ARN naming another region or account is a 404, as that
 * function cannot exist here. region and account are the gateway's (config).
 */
enum lgw_errc lgw_invoke_function_ref(const char *name, const char *qualifier, const char *region,
                                      const char *account, struct lgw_function_ref *ref,
                                      struct lgw_error *err);

/*
 * The JSON body of a service error as AWS writes it: {"Type":"User","message":"..."}, with
 * "Message" for the exceptions whose model spells it so, "Type":"Service" for 5xx, "Reason" for
 * 429, and no "Type" for the validation and signature errors (AWS's front door answers those).
 * Returns malloc'd text the caller frees (len may be NULL), or NULL when out of memory.
 */
char *lgw_invoke_error_body(const struct lgw_error *e, size_t *len);

/*
 * Percent-encodes a decoded path for the canonical request. LGW_INVOKE_PATH_SDK encodes every
 * byte but the RFC 3986 unreserved ones and '/', as every AWS SDK encodes a URI label;
 * LGW_INVOKE_PATH_MINIMAL also leaves the sub-delimiters, ':' and '@' raw, as a hand-written
 * client (curl) may send them. Returns the length written (NUL-terminated), or -1 if cap is
 * too small.
 */
enum lgw_invoke_path_style { LGW_INVOKE_PATH_SDK, LGW_INVOKE_PATH_MINIMAL };
long lgw_invoke_encode_path(const char *path, enum lgw_invoke_path_style style, char *out,
                            size_t cap);

/* Appends one query parameter, SDK-encoded, to a query string of at most cap bytes in out (at
 * *len so far). Returns 0, or -1 when it would not fit. value NULL writes "key" alone. */
int lgw_invoke_query_append(char *out, size_t cap, size_t *len, const char *key, size_t klen,
                            const char *value, size_t vlen);

/* A request as the SigV4 check sees it. Everything borrowed. */
struct lgw_invoke_signed_request {
    const char *method;
    /* The path exactly as sent (still percent-encoded), or NULL when the server does not have
     * it: then the decoded path is re-encoded (see lgw_invoke_encode_path). */
    const char *wire_path;
    const char *path;  /* decoded, as the HTTP server hands it over */
    const char *query; /* as sent, or re-encoded with lgw_invoke_query_append; NULL for none */
    const struct lgw_sigv4_header *headers; /* every request header, in arrival order */
    size_t header_count;
    const void *body;
    size_t body_len;
};

/*
 * The inbound SigV4 check: the Authorization header must be an AWS4-HMAC-SHA256 signature by
 * one of keys, scoped to region and "lambda", dated within LGW_INVOKE_MAX_SKEW of now, over this
 * request. Comparisons run in constant time. Errors are AWS's: 403
 * MissingAuthenticationTokenException, 400 IncompleteSignatureException, 403
 * UnrecognizedClientException, 403 InvalidSignatureException (bad signature, scope, or
 * "Signature expired").
 */
enum lgw_errc lgw_invoke_check_signature(const struct lgw_invoke_signed_request *rq,
                                         const struct lgw_access_key *keys, size_t nkeys,
                                         const char *region, time_t now, struct lgw_error *err);

#endif
