/*
 * lambda.h - the lambda dispatcher: forwards every call to AWS Lambda's Invoke API, signed with
 * SigV4, and answers through struct lgw_invocation exactly as the local dispatcher does, so the
 * faces cannot tell the modes apart.
 *
 * Transport: lanes, each an epoll set with its own pool of kept-alive connections (one lane per
 * CPU by default, or one per HTTP thread in the server). libcurl opens the connections (a
 * connect-only transfer on the lane's multi handle); HTTP/1.1 and, for https://, TLS (OpenSSL,
 * verified against AWS_CA_BUNDLE / the profile's ca_bundle, else the system's store) are the
 * lane's own. dispatch()/dispatch_async()/check() validate, build and sign the request and
 * start it on the calling thread's lane, which writes it out at once;
 * they never wait on the network. The answer is read by whoever drives the lane: its own thread,
 * or with `driven` the caller's event loop through the loop_* operations (dispatcher.h). `done`
 * is called there, or before the operation returns (a refusal made without calling AWS, or an
 * answer already in), with no lock of the dispatcher's held, and must not block.
 *
 * Requests: POST {endpoint}/2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q] with
 * X-Amz-Invocation-Type (RequestResponse, Event, or DryRun for check()), X-Amz-Log-Type: Tail
 * when inv->log_tail, X-Amz-Client-Context (base64 of inv->client_context) and
 * Content-Type: application/json. The body is inv->payload as is, else inv->event serialized.
 * Every header sent except User-Agent/Accept/Content-Length is signed, the session token
 * included.
 *
 * Function mapping: a configured function's `target` (a Lambda name, NAME:QUALIFIER, a partial
 * ARN or a full ARN, "" = the gateway name) is what is called; a full ARN's region picks the
 * region (and the default endpoint) for that function. A qualifier in the target pins it:
 * callers may name that qualifier or none, any other is LGW_EDENIED. Functions that are not
 * configured are called by the gateway name, with the caller's qualifier.
 *
 * Allow-list: patterns of exact names and '*' globs ('*' matches any run of characters) over
 * the name callers use (the gateway name, not the target). A pattern without ':' matches the
 * name whatever the qualifier; a pattern with ':' matches "NAME:QUALIFIER" and only when the
 * call has a qualifier (the caller's, or the one the target pins). The allow-list alone decides:
 * a configured function it does not match is denied too (and a warning says so at start-up).
 * A denied call is LGW_EDENIED (403 AccessDeniedException) and never reaches AWS. With no
 * pattern at all, lgw_lambda_new() refuses unless allow_any is set.
 *
 * Timeouts: connect_timeout_ms to connect, and as much again for the TLS handshake; each attempt
 * may take the function's timeout (its configured `timeout`, else default_timeout_ms, Lambda's
 * 15-minute maximum, so the gateway never cuts off a function AWS lets run) plus timeout_margin_ms
 * (AWS's own overhead: init up to 10 s, queueing). An attempt that times out after its request was
 * sent is LGW_ECLIENT_TIMEOUT (504) and is not retried: the function may still be running.
 *
 * Retries: throttling (429, waiting at least its Retry-After), 5xx answers that show the
 * function did not run (no X-Amz-Function-Error, no X-Amz-Executed-Version), and failures to
 * connect or to send the request. At most max_attempts attempts; the wait before retry n is a
 * random time in [0, min(retry_cap_ms, retry_base_ms * 2^(n-1))] (full jitter), raised to the
 * Retry-After; a retry is only started if it starts within retry_budget_ms of the first attempt
 * (so a Retry-After beyond the budget is passed to the caller at once). Waits are timers of the
 * lane's, never sleeps. Nothing is retried once the function may have run: a function
 * error (200 + X-Amz-Function-Error) is an answer.
 *
 * Answers, as the local dispatcher gives them:
 *   200 -> inv->result (the body, unchanged), executed_version from X-Amz-Executed-Version,
 *          X-Amz-Log-Result -> inv->log_tail_b64;
 *   200 + X-Amz-Function-Error -> LGW_EEXECUTE ("TYPE: MESSAGE") with the payload, or
 *          LGW_ETIMEDOUT when errorType is Sandbox.Timedout (message = its errorMessage);
 *   202 (Event) and 204 (DryRun) -> LGW_OK, executed_version "$LATEST" unless AWS names one;
 *   an AWS service error -> ResourceNotFoundException LGW_ENOTFOUND, TooManyRequestsException
 *          (or any 429) LGW_ETHROTTLED with reason and retry_after, AccessDeniedException
 *          LGW_EDENIED, InvalidRequestContentException LGW_EBADREQUEST,
 *          RequestTooLargeException/RequestEntityTooLargeException LGW_ETOOLARGE, anything else
 *          LGW_ECLIENT; err.aws_type, err.aws_status and err.message keep what AWS said;
 *   unreachable, or 5xx after the retries -> LGW_ECLIENT (502); an answer that is not one of
 *          the above (wrong status for the invocation type, bad header, error payload that is
 *          not JSON, not HTTP at all, over LGW_LAMBDA_ANSWER_MAX) -> LGW_ECLIENT saying so.
 * When AWS's answer carries x-amzn-RequestId, it replaces inv->request_id: the caller then sees
 * the id the function ran under, as in local mode (error payloads name it too).
 *
 * Secrets: credentials are fetched from the provider at each attempt (it refreshes them in the
 * background) into a stack buffer that is wiped after signing; the header strings holding the
 * token and signature are wiped before they are freed. No key, token or signature is ever put
 * in a log line or an error message; the request buffer that held them is wiped once it is
 * written.
 */
#ifndef LGW_LAMBDA_H
#define LGW_LAMBDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "credentials.h"
#include "dispatcher.h"
#include "functions.h"

#define LGW_LAMBDA_DEFAULT_CONNECT_TIMEOUT_MS 3000u
#define LGW_LAMBDA_DEFAULT_TIMEOUT_MS LGW_MAX_TIMEOUT_MS /* unconfigured: Lambda's maximum */
#define LGW_LAMBDA_DEFAULT_MARGIN_MS 10000u              /* Lambda's init phase limit */
#define LGW_LAMBDA_DEFAULT_MAX_ATTEMPTS 4u               /* the first and 3 retries */
#define LGW_LAMBDA_DEFAULT_RETRY_BASE_MS 100u
#define LGW_LAMBDA_DEFAULT_RETRY_CAP_MS 2000u
#define LGW_LAMBDA_DEFAULT_RETRY_BUDGET_MS 10000u
#define LGW_LAMBDA_DEFAULT_MAX_INFLIGHT 10000u
#define LGW_LAMBDA_DEFAULT_IDLE_MS 118000u /* libcurl's age limit for reusing a connection */
#define LGW_LAMBDA_MAX_ATTEMPTS 10u
/* The largest answer body read from AWS: a response payload (LGW_RESPONSE_MAX) plus room for
 * the JSON of an error; over it the call is LGW_ECLIENT. */
#define LGW_LAMBDA_ANSWER_MAX (LGW_RESPONSE_MAX + 65536u)
#define LGW_LAMBDA_LOG_RESULT_MAX 8192u /* base64 of 4 KB is 5464 bytes */

struct lgw_lambda_options {
    /* Where AWS settings are read (region, endpoint, credentials chain); NULL: the process
     * environment. Read in lgw_lambda_new() only. */
    const struct lgw_aws_env *env;
    /* Borrowed, must outlive the dispatcher; NULL: lgw_lambda_new() resolves the credentials
     * chain (failing when there are none) and owns the provider. */
    struct lgw_credentials_provider *credentials;
    /* The default region (functions without a full ARN); NULL: AWS_REGION, AWS_DEFAULT_REGION,
     * then the profile's region. */
    const char *region;
    /* The endpoint for every function; NULL: lgw_aws_endpoint_resolve() per region
     * (AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL, config file, https://lambda.REGION...). */
    const char *endpoint;
    /* Allow-list patterns (copied), see above. */
    const char *const *allow;
    size_t nallow;
    bool allow_any; /* allow every valid name (--allow-any-function) */
    /* Tuning; 0 takes the LGW_LAMBDA_DEFAULT_* value. */
    unsigned connect_timeout_ms;
    unsigned default_timeout_ms;
    unsigned timeout_margin_ms;
    unsigned max_attempts; /* 1..LGW_LAMBDA_MAX_ATTEMPTS */
    unsigned retry_base_ms;
    unsigned retry_cap_ms;
    unsigned retry_budget_ms;
    unsigned max_inflight; /* calls accepted and not answered; past it LGW_ETHROTTLED */
    unsigned idle_ms;      /* a kept-alive connection unused this long is closed */
    unsigned lanes;        /* transport lanes (each with its own connections), 1..256;
                            * 0: one per online CPU */
    /* true: the lanes get no threads of their own; the caller's event loops drive them
     * through the dispatcher's loop_* operations (dispatcher.h), one loop per lane. A call
     * from a thread that drives a lane goes on that lane; one from any other thread goes on
     * some lane, whose loop then reads the answer. The server sets this; C programs and tests
     * leave it false. */
    bool driven;
    bool log; /* JSON lines on stderr: start-up warnings, retries */
};

/*
 * Creates a lambda dispatcher for the configured functions (copied) and options. Checks every
 * target, pattern, region and endpoint now; on any problem, or when neither an allow-list nor
 * allow_any is given, returns NULL with err saying what (a configuration error, not a secret).
 * Free with lgw_dispatcher_free(), which drains first.
 */
struct lgw_dispatcher *lgw_lambda_new(const struct lgw_function_config *fns, size_t nfns,
                                      const struct lgw_lambda_options *opt, struct lgw_error *err);

/* Counters since creation, for tests and /metrics. */
struct lgw_lambda_stats {
    uint64_t calls;            /* accepted calls (dispatch, dispatch_async, check) */
    uint64_t attempts;         /* HTTP requests started */
    uint64_t retries;          /* attempts after the first */
    uint64_t denied;           /* refused by the allow-list, never sent */
    uint64_t inflight;         /* accepted and not yet answered */
    uint64_t connections;      /* new connections opened (the rest reused a kept-alive one) */
    uint64_t idle_connections; /* kept-alive connections open and unused now */
};

/* Fills *out. d must be a lambda dispatcher (returns -1 and zeroes *out otherwise). */
int lgw_lambda_stats(struct lgw_dispatcher *d, struct lgw_lambda_stats *out);

/*
 * The allow-list rule for one pattern: true when pattern matches the call of name with
 * qualifier (NULL or "" for none), as described above.
 */
bool lgw_lambda_pattern_match(const char *pattern, const char *name, const char *qualifier);

#endif
