/*
 * face_invoke.c - the Lambda Invoke API face (the emulator): POST
 * /2015-03-31/functions/{FunctionName}/invocations and the legacy POST
 * /2014-11-13/functions/{FunctionName}/invoke-async/, answered as AWS answers them so the AWS
 * CLI and SDKs work unchanged (DESIGN.md, "Wire facts"; botocore's lambda service model for the
 * error shapes).
 *
 * The face is a thin translation: headers and path into one struct lgw_invocation, one
 * dispatch, and the answer back as status, X-Amz-* headers and body. A function error is an
 * answer here (200 + X-Amz-Function-Error), not a service error. The optional inbound SigV4
 * check runs before anything else is looked at, as AWS authenticates first.
 */
#define _DEFAULT_SOURCE /* strcasecmp, strncasecmp */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "face_invoke.h"
#include "http.h"
#include "json.h"

#define NAME_SEGMENT_MAX 256 /* FunctionName, all forms (DESIGN.md) */
#define AUTH_HEADERS_MAX 256 /* request headers looked at by the SigV4 check */

/* ---- validation helpers (face_invoke.h) ---- */

/* Marks err as an error AWS's request validation layer answers: 400 ValidationException. */
static enum lgw_errc validation(struct lgw_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum lgw_errc validation(struct lgw_error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    lgw_error_setv(err, LGW_EBADREQUEST, fmt, ap);
    va_end(ap);
    snprintf(err->aws_type, sizeof(err->aws_type), "ValidationException");
    return LGW_EBADREQUEST;
}

enum lgw_errc lgw_invoke_parse_type(const char *value, enum lgw_invoke_type *out,
                                    struct lgw_error *err)
{
    *out = LGW_INVOKE_SYNC;
    /* An empty header is no value (HTTP trims values; an SDK never sends one empty). */
    if (!value || !*value || strcmp(value, "RequestResponse") == 0)
        return LGW_OK;
    if (strcmp(value, "Event") == 0) {
        *out = LGW_INVOKE_EVENT;
        return LGW_OK;
    }
    if (strcmp(value, "DryRun") == 0) {
        *out = LGW_INVOKE_DRYRUN;
        return LGW_OK;
    }
    /* The enum order is the one AWS printed in a recorded answer (ex_aws PR #442). */
    return validation(err,
                      "1 validation error detected: Value '%.100s' at 'invocationType' failed to "
                      "satisfy constraint: Member must satisfy enum value set: [DryRun, "
                      "RequestResponse, Event]",
                      value);
}

enum lgw_errc lgw_invoke_parse_log_type(const char *value, bool *tail, struct lgw_error *err)
{
    *tail = false;
    if (!value || !*value || strcmp(value, "None") == 0)
        return LGW_OK;
    if (strcmp(value, "Tail") == 0) {
        *tail = true;
        return LGW_OK;
    }
    return validation(err,
                      "1 validation error detected: Value '%.100s' at 'logType' failed to satisfy "
                      "constraint: Member must satisfy enum value set: [None, Tail]",
                      value);
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict base64 (standard alphabet, '=' padding optional but only at the end). Writes at most
 * 3 * len / 4 bytes to out; returns the count or -1. */
static long b64_decode(const char *in, size_t len, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0;
    long n = 0;

    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

enum lgw_errc lgw_invoke_client_context(const char *value, char **json, struct lgw_error *err)
{
    static const char bad[] = "Client context must be a valid Base64-encoded JSON object.";
    size_t len = value ? strlen(value) : 0;
    unsigned char *text = NULL;
    json_t *obj = NULL;
    enum lgw_errc ec = LGW_OK;
    long n;

    *json = NULL;
    if (len == 0)
        goto out;
    if (len > LGW_CLIENT_CONTEXT_MAX) {
        ec = lgw_error_set(err, LGW_EBADREQUEST,
                           "Client context must be at most %u bytes of base64, got %zu.",
                           LGW_CLIENT_CONTEXT_MAX, len);
        goto out;
    }
    text = malloc(len + 1); /* decoding only shrinks */
    if (!text) {
        ec = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto out;
    }
    n = b64_decode(value, len, text);
    if (n < 0) {
        ec = lgw_error_set(err, LGW_EBADREQUEST, "%s", bad);
        goto out;
    }
    text[n] = '\0';
    obj = json_loadb((const char *)text, (size_t)n, 0, NULL);
    if (!json_is_object(obj)) {
        ec = lgw_error_set(err, LGW_EBADREQUEST, "%s", bad);
        goto out;
    }
    *json = (char *)text;
    text = NULL;
out:
    json_decref(obj);
    free(text);
    return ec;
}

static bool qualifier_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '$' ||
           c == '_' || c == '-';
}

/* ?Qualifier= as the model constrains it: 1-128 of [a-zA-Z0-9$_-]. */
static enum lgw_errc check_query_qualifier(const char *q, struct lgw_error *err)
{
    size_t len = strlen(q);
    static const char head[] =
        "1 validation error detected: Value '%.140s' at 'qualifier' failed to satisfy "
        "constraint: Member must %s";

    if (len == 0)
        return validation(err, head, q, "have length greater than or equal to 1");
    if (len > LGW_QUALIFIER_MAX)
        return validation(err, head, q, "have length less than or equal to 128");
    for (size_t i = 0; i < len; i++)
        if (!qualifier_char(q[i]))
            return validation(err, head, q,
                              "satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)");
    return LGW_OK;
}

enum lgw_errc lgw_invoke_function_ref(const char *name, const char *qualifier, const char *region,
                                      const char *account, struct lgw_function_ref *ref,
                                      struct lgw_error *err)
{
    enum lgw_errc ec = lgw_function_name_parse(name, ref, err);

    if (ec != LGW_OK)
        return ec;
    if (qualifier) {
        if ((ec = check_query_qualifier(qualifier, err)) != LGW_OK)
            return ec;
        if (ref->qualifier[0] && strcmp(ref->qualifier, qualifier) != 0) {
            lgw_error_set(err, LGW_EBADREQUEST,
                          "The derived qualifier from the function name "
                          "does not match the specified qualifier.");
            snprintf(err->aws_type, sizeof(err->aws_type), "InvalidParameterValueException");
            return LGW_EBADREQUEST;
        }
        snprintf(ref->qualifier, sizeof(ref->qualifier), "%s", qualifier);
    }
    if (ref->region[0] && strcmp(ref->region, region) != 0)
        return lgw_error_set(err, LGW_ENOTFOUND,
                             "Functions from '%s' are not reachable in this region ('%s')",
                             ref->region, region);
    if (ref->account[0] && strcmp(ref->account, account) != 0) {
        /* Another account's function: none is served here, so it is not found. */
        if (ref->qualifier[0])
            return lgw_error_set(err, LGW_ENOTFOUND,
                                 "Function not found: arn:aws:lambda:%s:%s:function:%s:%s", region,
                                 ref->account, ref->name, ref->qualifier);
        return lgw_error_set(err, LGW_ENOTFOUND,
                             "Function not found: arn:aws:lambda:%s:%s:function:%s", region,
                             ref->account, ref->name);
    }
    return LGW_OK;
}

/* How AWS spells an error body: the message member's case, and whether "Type" is there. */
struct error_shape {
    const char *aws_type;
    const char *message_key;
    bool has_type;
};

/* From botocore's lambda model (member "Message" vs "message") and recorded AWS answers (the
 * validation and authentication layers send {"message":...} alone). Others: "message" + Type. */
static const struct error_shape error_shapes[] = {
    {"ResourceNotFoundException", "Message", true},
    {"ServiceException", "Message", true},
    {"AccessDeniedException", "Message", false},
    {"ValidationException", "message", false},
    {"MissingAuthenticationTokenException", "message", false},
    {"IncompleteSignatureException", "message", false},
    {"UnrecognizedClientException", "message", false},
    {"InvalidSignatureException", "message", false},
};

char *lgw_invoke_error_body(const struct lgw_error *e, size_t *len)
{
    const char *key = "message";
    bool has_type = true;
    json_t *o = json_object();
    char *text = NULL;

    for (size_t i = 0; i < sizeof(error_shapes) / sizeof(error_shapes[0]); i++) {
        if (strcmp(error_shapes[i].aws_type, e->aws_type) == 0) {
            key = error_shapes[i].message_key;
            has_type = error_shapes[i].has_type;
            break;
        }
    }
    if (!o)
        goto out;
    if (has_type &&
        json_object_set_new(o, "Type", json_string(e->aws_status >= 500 ? "Service" : "User")))
        goto out;
    if (json_object_set_new(o, key, json_string(e->message)))
        goto out;
    if (e->code == LGW_ETHROTTLED && e->reason[0] &&
        json_object_set_new(o, "Reason", json_string(e->reason)))
        goto out;
    text = lgw_json_dumps(o, len);
out:
    json_decref(o);
    return text;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* pchar of RFC 3986 beyond the unreserved: sub-delims, ':' and '@'. */
static bool path_raw_ok(unsigned char c)
{
    return strchr("!$&'()*+,;=:@", c) != NULL && c != '\0';
}

/* Appends n bytes of s percent-encoded (keep '/' if keep_slash) to out. 0 or -1 (no room). */
static int encode_into(char *out, size_t cap, size_t *at, const char *s, size_t n, bool keep_slash,
                       bool minimal)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/') || (minimal && path_raw_ok(c))) {
            if (*at + 1 >= cap)
                return -1;
            out[(*at)++] = (char)c;
        } else {
            if (*at + 3 >= cap)
                return -1;
            out[(*at)++] = '%';
            out[(*at)++] = hex[c >> 4];
            out[(*at)++] = hex[c & 15];
        }
    }
    out[*at] = '\0';
    return 0;
}

long lgw_invoke_encode_path(const char *path, enum lgw_invoke_path_style style, char *out,
                            size_t cap)
{
    size_t at = 0;

    if (cap == 0)
        return -1;
    out[0] = '\0';
    if (encode_into(out, cap, &at, path, strlen(path), true, style == LGW_INVOKE_PATH_MINIMAL))
        return -1;
    return (long)at;
}

int lgw_invoke_query_append(char *out, size_t cap, size_t *len, const char *key, size_t klen,
                            const char *value, size_t vlen)
{
    size_t at = *len;

    if (at > 0) {
        if (at + 1 >= cap)
            return -1;
        out[at++] = '&';
    }
    if (encode_into(out, cap, &at, key, klen, false, false))
        return -1;
    if (value) {
        if (at + 1 >= cap)
            return -1;
        out[at++] = '=';
        if (encode_into(out, cap, &at, value, vlen, false, false))
            return -1;
    }
    out[at] = '\0';
    *len = at;
    return 0;
}

/* ---- the inbound SigV4 check ---- */

/* An authentication failure: code EDENIED, with the status and type AWS's front door uses. */
static enum lgw_errc auth_fail(struct lgw_error *err, int status, const char *type, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));

static enum lgw_errc auth_fail(struct lgw_error *err, int status, const char *type, const char *fmt,
                               ...)
{
    va_list ap;

    va_start(ap, fmt);
    lgw_error_setv(err, LGW_EDENIED, fmt, ap);
    va_end(ap);
    err->aws_status = status;
    snprintf(err->aws_type, sizeof(err->aws_type), "%s", type);
    return LGW_EDENIED;
}

static const char *find_header(const struct lgw_invoke_signed_request *rq, const char *name)
{
    for (size_t i = 0; i < rq->header_count; i++)
        if (strcasecmp(rq->headers[i].name, name) == 0)
            return rq->headers[i].value;
    return NULL;
}

/* Whether name (any case) is one of the ';'-separated lower-case names in list. */
static bool in_signed_list(const char *list, const char *name)
{
    size_t nlen = strlen(name);

    for (const char *p = list; *p;) {
        const char *end = strchr(p, ';');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == nlen && strncasecmp(p, name, l) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

/* The configured key whose id matches, scanning every key with a constant-time compare so the
 * time taken says nothing about which ids exist. */
static const struct lgw_access_key *find_key(const struct lgw_access_key *keys, size_t nkeys,
                                             const char *id)
{
    char want[sizeof(keys[0].id)];
    const struct lgw_access_key *found = NULL;
    size_t idlen = strlen(id);

    if (idlen >= sizeof(want))
        return NULL;
    memset(want, 0, sizeof(want));
    memcpy(want, id, idlen);
    for (size_t i = 0; i < nkeys; i++) {
        /* Zero-padded copies: whatever follows an id's NUL cannot matter. */
        char have[sizeof(keys[0].id)];
        size_t hl = strnlen(keys[i].id, sizeof(have) - 1);
        memset(have, 0, sizeof(have));
        memcpy(have, keys[i].id, hl);
        if (CRYPTO_memcmp(have, want, sizeof(want)) == 0 && !found)
            found = &keys[i];
    }
    return found;
}

static enum lgw_errc check_skew(const char *amz_date, time_t when, time_t now,
                                struct lgw_error *err)
{
    char now_s[LGW_SIGV4_AMZ_DATE_LEN + 1], edge[LGW_SIGV4_AMZ_DATE_LEN + 1];

    if (when + (time_t)LGW_INVOKE_MAX_SKEW < now) {
        lgw_sigv4_format_amz_date(now, now_s, NULL);
        lgw_sigv4_format_amz_date(now - (time_t)LGW_INVOKE_MAX_SKEW, edge, NULL);
        return auth_fail(err, 403, "InvalidSignatureException",
                         "Signature expired: %s is now earlier than %s (%s - 5 min.)", amz_date,
                         edge, now_s);
    }
    if (when > now + (time_t)LGW_INVOKE_MAX_SKEW) {
        lgw_sigv4_format_amz_date(now, now_s, NULL);
        lgw_sigv4_format_amz_date(now + (time_t)LGW_INVOKE_MAX_SKEW, edge, NULL);
        return auth_fail(err, 403, "InvalidSignatureException",
                         "Signature not yet current: %s is still later than %s (%s + 5 min.)",
                         amz_date, edge, now_s);
    }
    return LGW_OK;
}

/* Scratch for one check: the signed headers and the candidate canonical paths. */
struct auth_scratch {
    struct lgw_sigv4_header signed_headers[LGW_SIGV4_HEADERS_MAX];
    char path_sdk[LGW_SIGV4_PATH_MAX + 1];
    char path_min[LGW_SIGV4_PATH_MAX + 1];
    struct lgw_sigv4_auth auth;
};

enum lgw_errc lgw_invoke_check_signature(const struct lgw_invoke_signed_request *rq,
                                         const struct lgw_access_key *keys, size_t nkeys,
                                         const char *region, time_t now, struct lgw_error *err)
{
    static const char mismatch[] =
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details.";
    struct lgw_sigv4_options opts = lgw_sigv4_options_default();
    struct auth_scratch *s = NULL;
    struct lgw_sigv4_request req;
    const struct lgw_access_key *key;
    const char *authz, *amz_date;
    struct lgw_error e;
    const char *paths[2];
    size_t nsigned = 0, npaths = 0;
    enum lgw_errc ec = LGW_OK;
    time_t when;

    lgw_error_init(&e);
    authz = find_header(rq, "Authorization");
    if (!authz || !*authz) {
        ec = auth_fail(err, 403, "MissingAuthenticationTokenException",
                       "Missing Authentication Token");
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        ec = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto out;
    }
    if (lgw_sigv4_parse_authorization(authz, strlen(authz), &s->auth, &e) != LGW_OK) {
        /* The parser's reason, without its module prefix. */
        const char *why = strncmp(e.message, "sigv4: ", 7) == 0 ? e.message + 7 : e.message;
        ec = auth_fail(err, 400, "IncompleteSignatureException",
                       "Authorization header is not a valid AWS4-HMAC-SHA256 signature "
                       "(Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders, "
                       "Signature): %s",
                       why);
        goto out;
    }
    key = find_key(keys, nkeys, s->auth.access_key);
    if (!key) {
        ec = auth_fail(err, 403, "UnrecognizedClientException",
                       "The security token included in the request is invalid.");
        goto out;
    }
    amz_date = find_header(rq, "X-Amz-Date");
    if (!amz_date) {
        ec = auth_fail(err, 400, "IncompleteSignatureException",
                       "Authorization header requires existence of either a 'X-Amz-Date' or a "
                       "'Date' header.");
        goto out;
    }
    if (lgw_sigv4_parse_amz_date(amz_date, &when, NULL) != LGW_OK) {
        ec = auth_fail(err, 400, "IncompleteSignatureException",
                       "Date must be in ISO-8601 'basic format'. Got '%.40s'.", amz_date);
        goto out;
    }
    if ((ec = check_skew(amz_date, when, now, err)) != LGW_OK)
        goto out;
    if (strncmp(s->auth.date, amz_date, LGW_SIGV4_DATE_LEN) != 0) {
        ec = auth_fail(err, 403, "InvalidSignatureException",
                       "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                       "of date from HTTP: '%s' != '%.8s', from '%s'.",
                       s->auth.date, amz_date, amz_date);
        goto out;
    }
    if (strcmp(s->auth.region, region) != 0) {
        ec = auth_fail(err, 403, "InvalidSignatureException",
                       "Credential should be scoped to a valid region. ");
        goto out;
    }
    if (strcmp(s->auth.service, LGW_INVOKE_SERVICE) != 0) {
        ec =
            auth_fail(err, 403, "InvalidSignatureException",
                      "Credential should be scoped to correct service: '%s'. ", LGW_INVOKE_SERVICE);
        goto out;
    }
    /* Only the signed headers go to the canonical request: others (a long cookie, say) must
     * not make the check fail on a bound they have nothing to do with. */
    for (size_t i = 0; i < rq->header_count; i++) {
        if (!in_signed_list(s->auth.signed_headers, rq->headers[i].name))
            continue;
        if (nsigned == LGW_SIGV4_HEADERS_MAX) {
            ec = auth_fail(err, 400, "IncompleteSignatureException",
                           "more than %d signed header lines", LGW_SIGV4_HEADERS_MAX);
            goto out;
        }
        s->signed_headers[nsigned++] = rq->headers[i];
    }
    /*
     * The canonical URI is built from the path exactly as the client sent it: the server keeps
     * the request-target from libmicrohttpd's URI log callback, before any decoding. Without
     * it only the decoded path is known; re-encoding that the way every AWS SDK encodes a URI
     * label (all but the unreserved bytes: ':' becomes %3A) gives back what botocore, the AWS
     * CLI and the JavaScript SDK sent, and a hand-written client may leave ':' and the other
     * pchar delimiters raw, so that spelling is tried too. Both spellings decode to the same
     * path, so accepting a signature over either grants nothing more.
     */
    if (rq->wire_path) {
        paths[npaths++] = rq->wire_path;
    } else {
        if (lgw_invoke_encode_path(rq->path, LGW_INVOKE_PATH_SDK, s->path_sdk,
                                   sizeof(s->path_sdk)) >= 0)
            paths[npaths++] = s->path_sdk;
        if (lgw_invoke_encode_path(rq->path, LGW_INVOKE_PATH_MINIMAL, s->path_min,
                                   sizeof(s->path_min)) >= 0 &&
            (npaths == 0 || strcmp(s->path_min, s->path_sdk) != 0))
            paths[npaths++] = s->path_min;
    }
    if (npaths == 0) {
        ec = auth_fail(err, 400, "IncompleteSignatureException", "the request path is too long");
        goto out;
    }
    memset(&req, 0, sizeof(req));
    req.method = rq->method;
    req.query = rq->query;
    req.headers = s->signed_headers;
    req.header_count = nsigned;
    req.body = rq->body;
    req.body_len = rq->body_len;
    /* The body is always hashed: a client's x-amz-content-sha256 is a signed header like any
     * other, and trusting its value would leave the body itself unauthenticated. */
    req.payload_hash = NULL;
    ec = LGW_EDENIED;
    for (size_t i = 0; i < npaths && ec != LGW_OK; i++) {
        req.path = paths[i];
        lgw_error_release(&e);
        ec = lgw_sigv4_verify(&req, &opts, &s->auth, amz_date, key->secret, region,
                              LGW_INVOKE_SERVICE, now, LGW_INVOKE_MAX_SKEW, NULL, &e);
        if (ec == LGW_EINTERNAL) {
            lgw_error_move(err, &e);
            goto out;
        }
    }
    if (ec != LGW_OK)
        ec = auth_fail(err, 403, "InvalidSignatureException", "%s", mismatch);
out:
    lgw_error_release(&e);
    if (s)
        OPENSSL_cleanse(s, sizeof(*s));
    free(s);
    return ec;
}

/* ---- answers ---- */

static bool is_legacy(const struct lgw_req *r)
{
    return r->route.kind == LGW_ROUTE_LAMBDA_ASYNC_LEGACY;
}

/* A response carrying the headers every Invoke API answer has. body: malloc'd or NULL. */
static struct MHD_Response *invoke_response(struct lgw_req *r, char *body, size_t len)
{
    struct MHD_Response *resp = lgw_response_new(body, len, "application/json");
    const char *version = r->inv.executed_version[0] ? r->inv.executed_version : "$LATEST";

    if (!resp)
        return NULL;
    MHD_add_response_header(resp, "x-amzn-RequestId", r->inv.request_id);
    MHD_add_response_header(resp, "X-Amz-Executed-Version", version);
    if (r->inv.log_tail_b64)
        MHD_add_response_header(resp, "X-Amz-Log-Result", r->inv.log_tail_b64);
    return resp;
}

/* A function error (raised, timed out, response too large): 200 with the error payload. */
static void send_function_error(struct lgw_req *r, struct lgw_error *e)
{
    struct MHD_Response *resp;
    char *body = e->payload;
    size_t len = e->payload_len;

    if (body) {
        e->payload = NULL; /* the response owns it now */
        e->payload_len = 0;
    } else {
        json_t *o = json_pack("{s:s,s:s}", "errorMessage", e->message, "errorType",
                              e->code == LGW_ETIMEDOUT ? "Sandbox.Timedout" : "Unhandled");
        body = o ? lgw_json_dumps(o, &len) : NULL;
        json_decref(o);
    }
    resp = body ? invoke_response(r, body, len) : NULL;
    if (resp)
        MHD_add_response_header(resp, "X-Amz-Function-Error", "Unhandled");
    lgw_req_queue(r, 200, resp);
}

/* A service error: its status, x-amzn-ErrorType, and AWS's JSON body. */
static void send_error(struct lgw_req *r, struct lgw_error *e)
{
    struct MHD_Response *resp;
    char ra[16];
    size_t len = 0;
    char *body;
    int status = e->aws_status;

    if (e->code == LGW_EEXECUTE || e->code == LGW_ETIMEDOUT) {
        send_function_error(r, e);
        return;
    }
    if (status < 400 || !e->aws_type[0]) {
        /* An error the table gives no AWS form: answer as Lambda's internal error. */
        status = status >= 400 ? status : 500;
        snprintf(e->aws_type, sizeof(e->aws_type), "ServiceException");
        e->aws_status = status;
    }
    body = lgw_invoke_error_body(e, &len);
    resp = body ? invoke_response(r, body, len) : NULL;
    if (resp) {
        MHD_add_response_header(resp, "x-amzn-ErrorType", e->aws_type);
        if (e->code == LGW_ETHROTTLED) {
            snprintf(ra, sizeof(ra), "%u", e->retry_after ? e->retry_after : 1);
            MHD_add_response_header(resp, "Retry-After", ra);
        }
    }
    lgw_req_queue(r, status, resp);
}

static void finish_sync(struct lgw_req *r)
{
    struct lgw_invocation *inv = &r->inv;
    struct MHD_Response *resp;

    if (inv->err.code != LGW_OK) {
        send_error(r, &inv->err);
        return;
    }
    resp = invoke_response(r, inv->result, inv->result_len);
    inv->result = NULL; /* the response owns it now (or freed it on failure) */
    inv->result_len = 0;
    lgw_req_queue(r, 200, resp);
}

static void finish_event(struct lgw_req *r)
{
    if (r->inv.err.code != LGW_OK) {
        send_error(r, &r->inv.err);
        return;
    }
    lgw_req_queue(r, 202, invoke_response(r, NULL, 0));
}

static void finish_dryrun(struct lgw_req *r)
{
    if (r->inv.err.code != LGW_OK) {
        send_error(r, &r->inv.err);
        return;
    }
    lgw_req_queue(r, 204, invoke_response(r, NULL, 0));
}

static void finish_legacy(struct lgw_req *r)
{
    static const char accepted[] = "{\"Status\":202}";
    char *body;

    if (r->inv.err.code != LGW_OK) {
        send_error(r, &r->inv.err);
        return;
    }
    body = strdup(accepted);
    lgw_req_queue(r, 202, body ? invoke_response(r, body, sizeof(accepted) - 1) : NULL);
}

/* ---- the request ---- */

static bool is_event(const struct lgw_req *r)
{
    const char *t;

    if (is_legacy(r))
        return true;
    t = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Amz-Invocation-Type");
    return t && strcmp(t, "Event") == 0;
}

static size_t invoke_limit(const struct lgw_req *r)
{
    return is_event(r) ? LGW_ASYNC_PAYLOAD_MAX : LGW_SYNC_PAYLOAD_MAX;
}

static void too_large(struct lgw_req *r, size_t limit)
{
    const char *cl = lgw_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long n = 0;
    struct lgw_error e;

    if (cl) {
        char *end;
        errno = 0;
        n = strtoull(cl, &end, 10);
        if (errno || end == cl || *end)
            n = 0;
    }
    lgw_error_init(&e);
    /* Lambda's front door refuses anything over the sync limit; an Event under that but over
     * its own limit is refused by the Event path, which names the size (as AWS words it). */
    if (limit < LGW_SYNC_PAYLOAD_MAX && n > limit && n <= LGW_SYNC_PAYLOAD_MAX)
        lgw_error_set(&e, LGW_ETOOLARGE,
                      "%llu byte payload is too large for the Event invocation type (limit %zu "
                      "bytes)",
                      n, limit);
    else
        lgw_error_set(&e, LGW_ETOOLARGE,
                      "Request must be smaller than %zu bytes for the InvokeFunction operation",
                      n > LGW_SYNC_PAYLOAD_MAX ? (size_t)LGW_SYNC_PAYLOAD_MAX : limit);
    send_error(r, &e);
    lgw_error_release(&e);
}

struct header_list {
    struct lgw_sigv4_header h[AUTH_HEADERS_MAX];
    size_t n;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct header_list *l = cls;

    (void)kind;
    /* Past the bound the rest is dropped: a signed header among them then fails the check. */
    if (l->n < AUTH_HEADERS_MAX && key) {
        l->h[l->n].name = key;
        l->h[l->n].value = value ? value : "";
        l->n++;
    }
    return MHD_YES;
}

struct query_text {
    char s[LGW_SIGV4_QUERY_MAX + 1];
    size_t len;
    bool overflow;
};

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size)
{
    struct query_text *q = cls;

    (void)kind;
    if (!q->overflow &&
        lgw_invoke_query_append(q->s, sizeof(q->s), &q->len, key, key_size, value, value_size))
        q->overflow = true;
    return MHD_YES;
}

/* Runs the SigV4 check on r when access keys are configured. */
static enum lgw_errc authenticate(struct lgw_req *r, struct lgw_error *err)
{
    const struct lgw_config *cfg = r->srv->cfg;
    struct header_list *hl = NULL;
    struct query_text *qt = NULL;
    char *wire_path = NULL;
    const char *query = NULL;
    struct lgw_invoke_signed_request rq;
    enum lgw_errc ec;

    if (cfg->nkeys == 0)
        return LGW_OK;
    hl = calloc(1, sizeof(*hl));
    qt = calloc(1, sizeof(*qt));
    if (!hl || !qt) {
        ec = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto out;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_header, hl);
    if (r->raw_target && r->raw_target[0] == '/') {
        /* origin-form "/path?query" as sent: split it rather than rebuild it */
        const char *q = strchr(r->raw_target, '?');
        size_t plen = q ? (size_t)(q - r->raw_target) : strlen(r->raw_target);
        if (!(wire_path = strndup(r->raw_target, plen))) {
            ec = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
            goto out;
        }
        query = q && q[1] ? q + 1 : NULL;
    } else {
        MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, collect_query, qt);
        if (qt->overflow) {
            ec = auth_fail(err, 400, "IncompleteSignatureException",
                           "the query string is longer than %d bytes", LGW_SIGV4_QUERY_MAX);
            goto out;
        }
        query = qt->len ? qt->s : NULL;
    }
    rq = (struct lgw_invoke_signed_request){
        .method = r->method,
        .wire_path = wire_path,
        .path = r->path,
        .query = query,
        .headers = hl->h,
        .header_count = hl->n,
        .body = r->body,
        .body_len = r->len,
    };
    ec = lgw_invoke_check_signature(&rq, cfg->keys, cfg->nkeys, cfg->region, time(NULL), err);
out:
    free(wire_path);
    free(hl);
    free(qt);
    return ec;
}

/* Fills r->function/qualifier from the path's FunctionName and ?Qualifier=. */
static enum lgw_errc take_function(struct lgw_req *r, struct lgw_error *err)
{
    const struct lgw_config *cfg = r->srv->cfg;
    char name[NAME_SEGMENT_MAX + 1];
    struct lgw_function_ref ref;
    const char *qual = NULL;
    enum lgw_errc ec;

    if (r->route.name_len > NAME_SEGMENT_MAX)
        return validation(err,
                          "1 validation error detected: Value '%.80s...' at 'functionName' "
                          "failed to satisfy constraint: Member must have length less than or "
                          "equal to %d",
                          r->route.name, NAME_SEGMENT_MAX);
    memcpy(name, r->route.name, r->route.name_len);
    name[r->route.name_len] = '\0';
    if (!is_legacy(r))
        qual = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "Qualifier");
    ec = lgw_invoke_function_ref(name, qual, cfg->region, cfg->account_id, &ref, err);
    if (ec != LGW_OK)
        return ec;
    memcpy(r->function, ref.name, sizeof(r->function));
    memcpy(r->qualifier, ref.qualifier, sizeof(r->qualifier));
    return LGW_OK;
}

static void start(struct lgw_req *r)
{
    enum lgw_invoke_type type = LGW_INVOKE_EVENT;
    struct lgw_error err;
    char *context = NULL;
    bool tail = false;

    lgw_error_init(&err);
    if (authenticate(r, &err) != LGW_OK)
        goto fail;
    if (!is_legacy(r)) {
        if (lgw_invoke_parse_type(lgw_req_header(r, "X-Amz-Invocation-Type"), &type, &err) ||
            lgw_invoke_parse_log_type(lgw_req_header(r, "X-Amz-Log-Type"), &tail, &err))
            goto fail;
    }
    if (take_function(r, &err) != LGW_OK)
        goto fail;
    if (!is_legacy(r) &&
        lgw_invoke_client_context(lgw_req_header(r, "X-Amz-Client-Context"), &context, &err))
        goto fail;
    if (lgw_req_parse_event(r, &err) < 0)
        goto fail;
    /* The body is the event: lambda mode forwards these bytes unchanged. */
    r->inv.payload = r->len ? r->body : NULL;
    r->inv.payload_len = r->len;
    if (type == LGW_INVOKE_SYNC) {
        /* Lambda gives the client context and the log tail to synchronous calls only. */
        r->client_context = context;
        context = NULL;
        r->inv.log_tail = tail;
        lgw_req_dispatch(r, LGW_DISPATCH_SYNC, finish_sync);
    } else if (type == LGW_INVOKE_DRYRUN) {
        lgw_req_dispatch(r, LGW_DISPATCH_CHECK, finish_dryrun);
    } else {
        lgw_req_dispatch(r, LGW_DISPATCH_ASYNC, is_legacy(r) ? finish_legacy : finish_event);
    }
    free(context);
    return;
fail:
    free(context);
    if (err.code == LGW_OK)
        lgw_error_set(&err, LGW_EINTERNAL, "out of memory");
    send_error(r, &err);
    lgw_error_release(&err);
}

const struct lgw_face lgw_face_invoke_api = {
    .name = "invoke_api",
    .body_limit = invoke_limit,
    .start = start,
    .too_large = too_large,
};
