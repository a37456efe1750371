/*
 * test_srv_invoke.c - the Invoke API face's request checks (server/face_invoke.h): invocation and
 * log types, X-Amz-Client-Context, FunctionName with ?Qualifier=, AWS's error bodies, the path
 * and query re-encoding, and the inbound SigV4 check against requests signed by the project's
 * own signer the way an SDK signs them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "face_invoke.h"

#define NOW ((time_t)1700000000) /* 2023-11-14T22:13:20Z */
#define REGION "us-east-1"
#define ACCOUNT "000000000000"
#define KEY_ID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

/* ---- invocation type, log type ---- */

static void test_invocation_type(void **state)
{
    enum lgw_invoke_type t;
    struct lgw_error e;

    (void)state;
    lgw_error_init(&e);
    assert_int_equal(lgw_invoke_parse_type(NULL, &t, &e), LGW_OK);
    assert_int_equal(t, LGW_INVOKE_SYNC);
    assert_int_equal(lgw_invoke_parse_type("RequestResponse", &t, &e), LGW_OK);
    assert_int_equal(t, LGW_INVOKE_SYNC);
    assert_int_equal(lgw_invoke_parse_type("Event", &t, &e), LGW_OK);
    assert_int_equal(t, LGW_INVOKE_EVENT);
    assert_int_equal(lgw_invoke_parse_type("DryRun", &t, &e), LGW_OK);
    assert_int_equal(t, LGW_INVOKE_DRYRUN);
    /* Case matters to AWS: "event" is not a member of the enum. */
    assert_int_equal(lgw_invoke_parse_type("event", &t, &e), LGW_EBADREQUEST);
    assert_int_equal(e.aws_status, 400);
    assert_string_equal(e.aws_type, "ValidationException");
    assert_string_equal(e.message,
                        "1 validation error detected: Value 'event' at 'invocationType' failed "
                        "to satisfy constraint: Member must satisfy enum value set: [DryRun, "
                        "RequestResponse, Event]");
    lgw_error_release(&e);
}

static void test_log_type(void **state)
{
    struct lgw_error e;
    bool tail = true;

    (void)state;
    lgw_error_init(&e);
    assert_int_equal(lgw_invoke_parse_log_type(NULL, &tail, &e), LGW_OK);
    assert_false(tail);
    assert_int_equal(lgw_invoke_parse_log_type("None", &tail, &e), LGW_OK);
    assert_false(tail);
    assert_int_equal(lgw_invoke_parse_log_type("Tail", &tail, &e), LGW_OK);
    assert_true(tail);
    assert_int_equal(lgw_invoke_parse_log_type("tail", &tail, &e), LGW_EBADREQUEST);
    assert_string_equal(e.aws_type, "ValidationException");
    assert_non_null(strstr(e.message, "at 'logType'"));
    lgw_error_release(&e);
}

/* ---- client context ---- */

static void test_client_context(void **state)
{
    struct lgw_error e;
    char *json = NULL;
    char big[LGW_CLIENT_CONTEXT_MAX + 8];

    (void)state;
    lgw_error_init(&e);
    /* {"custom":{"k":"v"}} padded and unpadded */
    assert_int_equal(lgw_invoke_client_context("eyJjdXN0b20iOnsiayI6InYifX0=", &json, &e), LGW_OK);
    assert_string_equal(json, "{\"custom\":{\"k\":\"v\"}}");
    free(json);
    assert_int_equal(lgw_invoke_client_context("eyJjdXN0b20iOnsiayI6InYifX0", &json, &e), LGW_OK);
    assert_string_equal(json, "{\"custom\":{\"k\":\"v\"}}");
    free(json);
    /* absent or empty: nothing */
    assert_int_equal(lgw_invoke_client_context(NULL, &json, &e), LGW_OK);
    assert_null(json);
    assert_int_equal(lgw_invoke_client_context("", &json, &e), LGW_OK);
    assert_null(json);
    /* not base64 */
    assert_int_equal(lgw_invoke_client_context("not base64!", &json, &e), LGW_EBADREQUEST);
    assert_null(json);
    assert_int_equal(e.aws_status, 400);
    assert_string_equal(e.aws_type, "InvalidRequestContentException");
    assert_string_equal(e.message, "Client context must be a valid Base64-encoded JSON object.");
    /* base64 of "hello" (not JSON), of "[1]" (JSON but not an object), a lone trailing char */
    assert_int_equal(lgw_invoke_client_context("aGVsbG8=", &json, &e), LGW_EBADREQUEST);
    assert_int_equal(lgw_invoke_client_context("WzFd", &json, &e), LGW_EBADREQUEST);
    assert_int_equal(lgw_invoke_client_context("e30=e", &json, &e), LGW_EBADREQUEST);
    assert_int_equal(lgw_invoke_client_context("e30", &json, &e), LGW_OK); /* {} */
    assert_string_equal(json, "{}");
    free(json);
    /* over the limit, even though it would decode */
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[LGW_CLIENT_CONTEXT_MAX + 1] = '\0';
    assert_int_equal(lgw_invoke_client_context(big, &json, &e), LGW_EBADREQUEST);
    assert_null(json);
    assert_string_equal(e.aws_type, "InvalidRequestContentException");
    assert_non_null(strstr(e.message, "3583"));
    lgw_error_release(&e);
}

/* ---- FunctionName and Qualifier ---- */

static void test_function_ref(void **state)
{
    struct lgw_function_ref ref;
    struct lgw_error e;

    (void)state;
    lgw_error_init(&e);
    assert_int_equal(lgw_invoke_function_ref("echo", NULL, REGION, ACCOUNT, &ref, &e), LGW_OK);
    assert_string_equal(ref.name, "echo");
    assert_string_equal(ref.qualifier, "");
    assert_int_equal(lgw_invoke_function_ref("echo:live", NULL, REGION, ACCOUNT, &ref, &e), LGW_OK);
    assert_string_equal(ref.qualifier, "live");
    assert_int_equal(lgw_invoke_function_ref("echo", "live", REGION, ACCOUNT, &ref, &e), LGW_OK);
    assert_string_equal(ref.qualifier, "live");
    assert_int_equal(lgw_invoke_function_ref("echo:live", "live", REGION, ACCOUNT, &ref, &e),
                     LGW_OK);
    assert_int_equal(lgw_invoke_function_ref("arn:aws:lambda:us-east-1:000000000000:function:"
                                             "echo:$LATEST",
                                             NULL, REGION, ACCOUNT, &ref, &e),
                     LGW_OK);
    assert_string_equal(ref.name, "echo");
    assert_string_equal(ref.qualifier, "$LATEST");
    assert_int_equal(
        lgw_invoke_function_ref("000000000000:function:echo", NULL, REGION, ACCOUNT, &ref, &e),
        LGW_OK);
    assert_string_equal(ref.name, "echo");

    /* the conflict AWS answers with InvalidParameterValueException */
    assert_int_equal(lgw_invoke_function_ref("echo:live", "prod", REGION, ACCOUNT, &ref, &e),
                     LGW_EBADREQUEST);
    assert_int_equal(e.aws_status, 400);
    assert_string_equal(e.aws_type, "InvalidParameterValueException");
    assert_string_equal(e.message, "The derived qualifier from the function name does not match "
                                   "the specified qualifier.");
    /* a bad ?Qualifier= */
    assert_int_equal(lgw_invoke_function_ref("echo", "a b", REGION, ACCOUNT, &ref, &e),
                     LGW_EBADREQUEST);
    assert_string_equal(e.aws_type, "ValidationException");
    assert_non_null(strstr(e.message, "at 'qualifier'"));
    assert_int_equal(lgw_invoke_function_ref("echo", "", REGION, ACCOUNT, &ref, &e),
                     LGW_EBADREQUEST);
    assert_non_null(strstr(e.message, "greater than or equal to 1"));
    /* a bad name */
    assert_int_equal(lgw_invoke_function_ref("bad name", NULL, REGION, ACCOUNT, &ref, &e),
                     LGW_EBADREQUEST);
    assert_string_equal(e.aws_type, "ValidationException");
    assert_non_null(strstr(e.message, "at 'functionName'"));
    /* another region, another account */
    assert_int_equal(lgw_invoke_function_ref("arn:aws:lambda:eu-west-1:000000000000:function:echo",
                                             NULL, REGION, ACCOUNT, &ref, &e),
                     LGW_ENOTFOUND);
    assert_int_equal(e.aws_status, 404);
    assert_string_equal(e.aws_type, "ResourceNotFoundException");
    assert_string_equal(
        e.message, "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')");
    assert_int_equal(
        lgw_invoke_function_ref("111111111111:function:echo", "live", REGION, ACCOUNT, &ref, &e),
        LGW_ENOTFOUND);
    assert_string_equal(
        e.message, "Function not found: arn:aws:lambda:us-east-1:111111111111:function:echo:live");
    lgw_error_release(&e);
}

/* ---- error bodies ---- */

static void check_body(struct lgw_error *e, const char *expect)
{
    size_t len = 0;
    char *body = lgw_invoke_error_body(e, &len);

    assert_non_null(body);
    assert_string_equal(body, expect);
    assert_int_equal(len, strlen(expect));
    free(body);
}

static void test_error_bodies(void **state)
{
    struct lgw_error e;

    (void)state;
    lgw_error_init(&e);
    lgw_error_set(&e, LGW_ENOTFOUND, "Function not found: x");
    check_body(&e, "{\"Type\":\"User\",\"Message\":\"Function not found: x\"}");
    lgw_error_set(&e, LGW_EBADREQUEST, "Could not parse request body into json: y");
    check_body(&e, "{\"Type\":\"User\",\"message\":\"Could not parse request body into json: y\"}");
    lgw_error_set(&e, LGW_ETHROTTLED, "Rate Exceeded.");
    snprintf(e.reason, sizeof(e.reason), "ReservedFunctionConcurrentInvocationLimitExceeded");
    check_body(&e, "{\"Type\":\"User\",\"message\":\"Rate Exceeded.\",\"Reason\":"
                   "\"ReservedFunctionConcurrentInvocationLimitExceeded\"}");
    lgw_error_set(&e, LGW_EINTERNAL, "boom");
    check_body(&e, "{\"Type\":\"Service\",\"Message\":\"boom\"}");
    lgw_error_set(&e, LGW_ETOOLARGE, "Request must be smaller than 6291456 bytes");
    check_body(&e,
               "{\"Type\":\"User\",\"message\":\"Request must be smaller than 6291456 bytes\"}");
    lgw_error_set(&e, LGW_EBADREQUEST, "1 validation error detected");
    snprintf(e.aws_type, sizeof(e.aws_type), "ValidationException");
    check_body(&e, "{\"message\":\"1 validation error detected\"}");
    lgw_error_release(&e);
}

/* ---- path and query encoding ---- */

static void test_encoding(void **state)
{
    char out[256];
    char tiny[8];
    size_t len = 0;

    (void)state;
    assert_int_equal(lgw_invoke_encode_path("/2015-03-31/functions/arn:aws:x:$LATEST/invocations",
                                            LGW_INVOKE_PATH_SDK, out, sizeof(out)),
                     strlen("/2015-03-31/functions/arn%3Aaws%3Ax%3A%24LATEST/invocations"));
    assert_string_equal(out, "/2015-03-31/functions/arn%3Aaws%3Ax%3A%24LATEST/invocations");
    assert_true(lgw_invoke_encode_path("/f/a:b$c d~e", LGW_INVOKE_PATH_MINIMAL, out, sizeof(out)) >
                0);
    assert_string_equal(out, "/f/a:b$c%20d~e");
    assert_int_equal(lgw_invoke_encode_path("/abcdefgh", LGW_INVOKE_PATH_SDK, tiny, sizeof(tiny)),
                     -1);

    assert_int_equal(lgw_invoke_query_append(out, sizeof(out), &len, "Qualifier", 9, "$LATEST", 7),
                     0);
    assert_int_equal(lgw_invoke_query_append(out, sizeof(out), &len, "a b", 3, NULL, 0), 0);
    assert_string_equal(out, "Qualifier=%24LATEST&a%20b");
    assert_int_equal(len, strlen(out));
    len = 0;
    assert_int_equal(lgw_invoke_query_append(tiny, sizeof(tiny), &len, "Qualifier", 9, "x", 1), -1);
}

/* ---- the SigV4 check ---- */

static const struct lgw_access_key keys[] = {
    {"AKIDOTHER", "another-secret"},
    {KEY_ID, SECRET},
};

struct signed_req {
    struct lgw_sigv4_result res;
    struct lgw_sigv4_header headers[8];
    size_t nheaders;
    size_t authz; /* index of the Authorization header */
    char *cookie;
};

/* Signs POST wire_path?wire_query with body as an SDK would, at `when`, with secret. */
static void sign(struct signed_req *s, const char *key_id, const char *secret, const char *region,
                 const char *wire_path, const char *wire_query, const char *body, time_t when)
{
    struct lgw_sigv4_header to_sign[] = {
        {"Host", "127.0.0.1:8080"},
        {"Content-Type", "application/json"},
        {"X-Amz-Invocation-Type", "RequestResponse"},
    };
    struct lgw_sigv4_config cfg = {
        .creds = {key_id, secret, NULL},
        .region = region,
        .service = "lambda",
        .opts = lgw_sigv4_options_default(),
    };
    struct lgw_sigv4_request req = {
        .method = "POST",
        .path = wire_path,
        .query = wire_query,
        .headers = to_sign,
        .header_count = 3,
        .body = body,
        .body_len = strlen(body),
    };
    struct lgw_error e;

    lgw_error_init(&e);
    memset(s, 0, sizeof(*s));
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, when, &s->res, NULL, &e), LGW_OK);
    for (size_t i = 0; i < 3; i++)
        s->headers[s->nheaders++] = to_sign[i];
    for (size_t i = 0; i < s->res.add_count; i++)
        s->headers[s->nheaders++] =
            (struct lgw_sigv4_header){s->res.add[i].name, s->res.add[i].value};
    s->authz = s->nheaders;
    s->headers[s->nheaders++] = (struct lgw_sigv4_header){"Authorization", s->res.authorization};
    /* An unsigned header over the signer's own bound: the check must not look at it. */
    s->cookie = malloc(LGW_SIGV4_HEADER_VALUE_MAX + 100);
    assert_non_null(s->cookie);
    memset(s->cookie, 'c', LGW_SIGV4_HEADER_VALUE_MAX + 99);
    s->cookie[LGW_SIGV4_HEADER_VALUE_MAX + 99] = '\0';
    s->headers[s->nheaders++] = (struct lgw_sigv4_header){"Cookie", s->cookie};
    lgw_error_release(&e);
}

static enum lgw_errc check_wire(struct signed_req *s, const char *wire_path, const char *path,
                                const char *query, const char *body, time_t now,
                                struct lgw_error *e)
{
    struct lgw_invoke_signed_request rq = {
        .method = "POST",
        .wire_path = wire_path,
        .path = path,
        .query = query,
        .headers = s->headers,
        .header_count = s->nheaders,
        .body = body,
        .body_len = strlen(body),
    };

    return lgw_invoke_check_signature(&rq, keys, 2, REGION, now, e);
}

/* As the server checks when it has only the decoded path. */
static enum lgw_errc check(struct signed_req *s, const char *path, const char *query,
                           const char *body, time_t now, struct lgw_error *e)
{
    return check_wire(s, NULL, path, query, body, now, e);
}

#define ARN_DECODED                                                                                \
    "/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:echo/invocations"
#define ARN_SDK                                                                                    \
    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho/"       \
    "invocations"

static void test_signature_accepted(void **state)
{
    struct signed_req s;
    struct lgw_error e;

    (void)state;
    lgw_error_init(&e);
    /* an ARN in the path, encoded as the SDKs encode it, and a query */
    sign(&s, KEY_ID, SECRET, REGION, ARN_SDK, "Qualifier=%24LATEST", "{\"a\":1}", NOW);
    assert_int_equal(check(&s, ARN_DECODED, "Qualifier=%24LATEST", "{\"a\":1}", NOW, &e), LGW_OK);
    /* the clock may be off by up to five minutes either way */
    assert_int_equal(check(&s, ARN_DECODED, "Qualifier=%24LATEST", "{\"a\":1}", NOW + 299, &e),
                     LGW_OK);
    assert_int_equal(check(&s, ARN_DECODED, "Qualifier=%24LATEST", "{\"a\":1}", NOW - 299, &e),
                     LGW_OK);
    free(s.cookie);
    /* a client that sent ':' raw (curl) */
    sign(&s, KEY_ID, SECRET, REGION, ARN_DECODED, NULL, "{}", NOW);
    assert_int_equal(check(&s, ARN_DECODED, NULL, "{}", NOW, &e), LGW_OK);
    free(s.cookie);
    /* with the path as sent, that path is what is checked, however it decodes: a lower-case
     * escape signs as itself, and the decoded path plays no part */
    sign(&s, KEY_ID, SECRET, REGION, "/2015-03-31/functions/echo%3alive/invocations", NULL, "{}",
         NOW);
    assert_int_equal(check_wire(&s, "/2015-03-31/functions/echo%3alive/invocations", "/ignored",
                                NULL, "{}", NOW, &e),
                     LGW_OK);
    assert_int_equal(check_wire(&s, "/2015-03-31/functions/echo%3Alive/invocations", "/ignored",
                                NULL, "{}", NOW, &e),
                     LGW_EDENIED);
    assert_string_equal(e.aws_type, "InvalidSignatureException");
    free(s.cookie);
    lgw_error_release(&e);
}

static void expect_denied(enum lgw_errc ec, struct lgw_error *e, int status, const char *type,
                          const char *message_start)
{
    assert_int_equal(ec, LGW_EDENIED);
    assert_int_equal(e->aws_status, status);
    assert_string_equal(e->aws_type, type);
    assert_memory_equal(e->message, message_start, strlen(message_start));
}

static void test_signature_refused(void **state)
{
    struct signed_req s;
    struct lgw_error e;
    const char *body = "{\"a\":1}";

    (void)state;
    lgw_error_init(&e);
    /* wrong secret */
    sign(&s, KEY_ID, "not-the-secret", REGION, ARN_SDK, NULL, body, NOW);
    expect_denied(check(&s, ARN_DECODED, NULL, body, NOW, &e), &e, 403, "InvalidSignatureException",
                  "The request signature we calculated does not match the signature you provided. "
                  "Check your AWS Secret Access Key and signing method.");
    free(s.cookie);
    /* unknown key */
    sign(&s, "AKIDUNKNOWN", SECRET, REGION, ARN_SDK, NULL, body, NOW);
    expect_denied(check(&s, ARN_DECODED, NULL, body, NOW, &e), &e, 403,
                  "UnrecognizedClientException",
                  "The security token included in the request is invalid.");
    free(s.cookie);
    /* right key, but the body, the path or the query changed on the way */
    sign(&s, KEY_ID, SECRET, REGION, ARN_SDK, NULL, body, NOW);
    expect_denied(check(&s, ARN_DECODED, NULL, "{\"a\":2}", NOW, &e), &e, 403,
                  "InvalidSignatureException", "The request signature we calculated");
    expect_denied(check(&s, "/2015-03-31/functions/other/invocations", NULL, body, NOW, &e), &e,
                  403, "InvalidSignatureException", "The request signature we calculated");
    expect_denied(check(&s, ARN_DECODED, "Qualifier=live", body, NOW, &e), &e, 403,
                  "InvalidSignatureException", "The request signature we calculated");
    /* skew */
    expect_denied(check(&s, ARN_DECODED, NULL, body, NOW + 301, &e), &e, 403,
                  "InvalidSignatureException",
                  "Signature expired: 20231114T221320Z is now earlier than 20231114T221321Z "
                  "(20231114T221821Z - 5 min.)");
    expect_denied(check(&s, ARN_DECODED, NULL, body, NOW - 301, &e), &e, 403,
                  "InvalidSignatureException",
                  "Signature not yet current: 20231114T221320Z is still later than "
                  "20231114T221319Z (20231114T220819Z + 5 min.)");
    /* no Authorization at all */
    s.headers[s.authz].name = "X-Not-Authorization";
    expect_denied(check(&s, ARN_DECODED, NULL, body, NOW, &e), &e, 403,
                  "MissingAuthenticationTokenException", "Missing Authentication Token");
    /* a malformed one */
    s.headers[s.authz] = (struct lgw_sigv4_header){"Authorization", "Bearer abc"};
    expect_denied(check(&s, ARN_DECODED, NULL, body, NOW, &e), &e, 400,
                  "IncompleteSignatureException", "Authorization header");
    free(s.cookie);
    /* another region's scope */
    sign(&s, KEY_ID, SECRET, "eu-west-1", ARN_SDK, NULL, body, NOW);
    expect_denied(check(&s, ARN_DECODED, NULL, body, NOW, &e), &e, 403, "InvalidSignatureException",
                  "Credential should be scoped to a valid region.");
    free(s.cookie);
    lgw_error_release(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invocation_type),    cmocka_unit_test(test_log_type),
        cmocka_unit_test(test_client_context),     cmocka_unit_test(test_function_ref),
        cmocka_unit_test(test_error_bodies),       cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_signature_accepted), cmocka_unit_test(test_signature_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
