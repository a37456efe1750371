/*
 * test_lambda.c - the lambda dispatcher against a fake Lambda upstream on 127.0.0.1.
 *
 * The upstream is tests/fake/fake_lambda.py (started once for the group, /usr/bin/python3): it
 * checks the SigV4 signature of every request with botocore's signer (not ours), scripts AWS's
 * answers by function name and counts what it received, which the tests read back from its
 * /_stats endpoint to assert how many attempts were made. Run from the repository root (the
 * Makefile's runner does), or set LGW_FAKE_LAMBDA to the script's path.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "lambda.h"

#define AK "AKIDLAMBDATEST"
#define SK "lambdaTestSecretKey/with+chars"
#define TOKEN "FwoGZXIvYXdzEtestSessionToken//+=="

static pid_t fake_pid = -1;
static int fake_stdin = -1;
static int fake_port;
static char endpoint[64];
static struct lgw_credentials_provider *creds;
static struct lgw_dispatcher *D; /* the shared dispatcher */
static json_t *empty_event;

/* ---- the fake upstream ---- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int start_fake(void)
{
    const char *script = getenv("LGW_FAKE_LAMBDA");
    int in[2], out[2];
    char line[64] = "";
    size_t n = 0;
    int64_t deadline;

    if (!script)
        script = "tests/fake/fake_lambda.py";
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "test_lambda: %s not found (run from the repository root)\n", script);
        return -1;
    }
    if (pipe(in) < 0 || pipe(out) < 0)
        return -1;
    fake_pid = fork();
    if (fake_pid < 0)
        return -1;
    if (fake_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl("/usr/bin/python3", "python3", script, "--access-key", AK, "--secret", SK, "--token",
              TOKEN, "--region", "us-east-1", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    fake_stdin = in[1];
    /* "PORT n\n", within 20 s (botocore's import is the slow part). */
    deadline = now_ms() + 20000;
    while (n < sizeof(line) - 1 && !strchr(line, '\n')) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        ssize_t k;
        if (poll(&p, 1, (int)(deadline - now_ms())) <= 0)
            break;
        k = read(out[0], line + n, sizeof(line) - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        line[n] = '\0';
    }
    close(out[0]);
    if (sscanf(line, "PORT %d", &fake_port) != 1) {
        fprintf(stderr, "test_lambda: the fake upstream did not start: '%s'\n", line);
        return -1;
    }
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", fake_port);
    return 0;
}

static void stop_fake(void)
{
    if (fake_pid > 0) {
        kill(fake_pid, SIGTERM);
        waitpid(fake_pid, NULL, 0);
        fake_pid = -1;
    }
    if (fake_stdin >= 0)
        close(fake_stdin);
    fake_stdin = -1;
}

struct sbuf {
    char *p;
    size_t n;
};

static size_t sbuf_write(char *p, size_t size, size_t n, void *arg)
{
    struct sbuf *b = arg;
    char *q = realloc(b->p, b->n + size * n + 1);

    if (!q)
        return 0;
    memcpy(q + b->n, p, size * n);
    b->n += size * n;
    q[b->n] = '\0';
    b->p = q;
    return size * n;
}

/* A control request to the fake; returns its JSON answer (new reference). */
static json_t *fake_control(const char *method, const char *path)
{
    char url[128];
    struct sbuf b = {0};
    CURL *e = curl_easy_init();
    json_t *j;

    snprintf(url, sizeof(url), "%s%s", endpoint, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sbuf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    j = json_loads(b.p, 0, NULL);
    free(b.p);
    assert_non_null(j);
    return j;
}

static long stat_int(const char *key)
{
    json_t *s = fake_control("GET", "/_stats");
    long v = (long)json_integer_value(json_object_get(s, key));

    json_decref(s);
    return v;
}

static long fake_requests(const char *name)
{
    json_t *s = fake_control("GET", "/_stats");
    long v = (long)json_integer_value(json_object_get(json_object_get(s, "requests"), name));

    json_decref(s);
    return v;
}

/* The fake's record of the last request to name: a new reference. */
static json_t *fake_last(const char *name)
{
    json_t *s = fake_control("GET", "/_stats");
    json_t *v = json_incref(json_object_get(json_object_get(s, "last"), name));

    json_decref(s);
    assert_non_null(v);
    return v;
}

static void fake_reset(void)
{
    json_decref(fake_control("POST", "/_reset"));
}

/* A port nothing listens on: bound by the kernel, then closed. */
static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---- dispatchers ---- */

static const char *const allow_list[] = {
    "echo",   "inspect",     "missing", "throttle-*",    "flaky500", "down500",     "ran502",
    "fn*",    "slow",        "sleepy",  "badjson-error", "garbage",  "wrongstatus", "badheader",
    "huge",   "longversion", "denied",  "badcontent",    "toolarge", "conflict",    "typeinbody",
    "orders", "partial",     "pinned",  "versioned:7",   "h1-*",
};

static struct lgw_lambda_options base_options(void)
{
    struct lgw_lambda_options o = {
        .credentials = creds,
        .region = "us-east-1",
        .endpoint = endpoint,
        .allow = allow_list,
        .nallow = sizeof(allow_list) / sizeof(allow_list[0]),
        .connect_timeout_ms = 1000,
        .timeout_margin_ms = 200,
        .retry_base_ms = 50,
        .retry_cap_ms = 200,
        .retry_budget_ms = 3000,
    };
    return o;
}

/* ---- driven mode: the lanes run by loops of the test's own, as the server's HTTP threads do ---
 */

/* When set, every dispatcher a test makes is created with driven lanes and gets DRIVERS loop
 * threads (the suite runs once each way). Calls then come from threads that drive no lane,
 * which is allowed: they go to some lane, and its loop reads the answer. */
static bool driven;
enum { DRIVERS = 2 };

struct driver {
    struct lgw_dispatcher *d;
    unsigned idx;
    int stopfd;
    pthread_t thread;
};

static struct {
    struct lgw_dispatcher *d;
    struct driver drv[DRIVERS];
} loops[8];

static void *drive(void *arg)
{
    struct driver *dr = arg;
    struct epoll_event ev = {.events = EPOLLIN}, evs[4];
    int ep = epoll_create1(EPOLL_CLOEXEC), fd = lgw_dispatcher_loop_attach(dr->d, dr->idx);

    assert_true(ep >= 0 && fd >= 0);
    ev.data.u32 = 1;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    ev.data.u32 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, dr->stopfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 4, lgw_dispatcher_loop_timeout(dr->d));
        bool ready = false, stop = false;
        for (int i = 0; i < n; i++) {
            ready |= evs[i].data.u32 == 1;
            stop |= evs[i].data.u32 == 2;
        }
        if (stop)
            break;
        lgw_dispatcher_loop_run(dr->d, ready);
    }
    close(ep);
    return NULL;
}

static struct lgw_dispatcher *lambda_new(const struct lgw_function_config *fns, size_t n,
                                         struct lgw_lambda_options *o, struct lgw_error *e)
{
    struct lgw_dispatcher *d;
    size_t slot = 0;

    if (driven) {
        o->lanes = DRIVERS;
        o->driven = true;
    }
    d = lgw_lambda_new(fns, n, o, e);
    if (!d || !driven)
        return d;
    while (loops[slot].d)
        slot++;
    assert_true(slot < sizeof(loops) / sizeof(loops[0]));
    loops[slot].d = d;
    for (unsigned i = 0; i < DRIVERS; i++) {
        struct driver *dr = &loops[slot].drv[i];
        dr->d = d;
        dr->idx = i;
        dr->stopfd = eventfd(0, EFD_CLOEXEC);
        assert_int_equal(pthread_create(&dr->thread, NULL, drive, dr), 0);
    }
    return d;
}

/* Drains while the loops still run (they read the answers), then stops them and frees. */
static void lambda_free(struct lgw_dispatcher *d)
{
    for (size_t slot = 0; d && driven && slot < sizeof(loops) / sizeof(loops[0]); slot++) {
        if (loops[slot].d != d)
            continue;
        lgw_dispatcher_drain(d);
        for (unsigned i = 0; i < DRIVERS; i++) {
            eventfd_write(loops[slot].drv[i].stopfd, 1);
            pthread_join(loops[slot].drv[i].thread, NULL);
            close(loops[slot].drv[i].stopfd);
        }
        loops[slot].d = NULL;
    }
    lgw_dispatcher_free(d);
}

static struct lgw_function_config fn(const char *name, const char *target, unsigned timeout_ms)
{
    struct lgw_function_config c;

    lgw_function_config_init(&c);
    snprintf(c.name, sizeof(c.name), "%s", name);
    snprintf(c.target, sizeof(c.target), "%s", target ? target : "");
    c.timeout_ms = timeout_ms;
    return c;
}

static struct lgw_dispatcher *make_shared(void)
{
    struct lgw_function_config fns[] = {
        fn("slow", NULL, 300),
        fn("orders", "arn:aws:lambda:eu-west-1:123456789012:function:inspect:live", 0),
        fn("partial", "123456789012:function:inspect", 0),
        fn("pinned", "inspect:blue", 0),
        fn("unlisted", "echo", 0), /* configured, but not in the allow-list */
    };
    struct lgw_lambda_options o = base_options();
    struct lgw_error e;
    struct lgw_dispatcher *d;

    lgw_error_init(&e);
    d = lambda_new(fns, sizeof(fns) / sizeof(fns[0]), &o, &e);
    if (!d)
        fprintf(stderr, "lgw_lambda_new: %s\n", e.message);
    return d;
}

static int group_setup(void **state)
{
    struct lgw_error e;

    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    lgw_error_init(&e);
    if (start_fake() < 0)
        return -1;
    if (lgw_credentials_provider_new_static(AK, SK, TOKEN, &creds, &e) != LGW_OK)
        return -1;
    empty_event = json_object();
    D = make_shared();
    return D ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    lambda_free(D);
    lgw_credentials_provider_free(creds);
    json_decref(empty_event);
    stop_fake();
    curl_global_cleanup();
    return 0;
}

/* Starts a test with clean counters at the fake. */
static int reset_fake(void **state)
{
    (void)state;
    fake_reset();
    return 0;
}

/* After every test: nothing the fake received failed botocore's signature check. */
static int check_signatures(void **state)
{
    json_t *s = fake_control("GET", "/_stats");
    long bad = (long)json_integer_value(json_object_get(s, "bad_signatures"));

    (void)state;
    if (bad) {
        char *text = json_dumps(json_object_get(s, "bad"), JSON_INDENT(1));
        fprintf(stderr, "signature failures: %s\n", text);
        free(text);
    }
    json_decref(s);
    assert_int_equal(bad, 0);
    return 0;
}

/* ---- calling ---- */

static void inv_setup(struct lgw_invocation *inv, const char *function, const char *payload)
{
    lgw_invocation_init(inv);
    inv->function = function;
    inv->event = empty_event;
    inv->payload = payload;
    inv->payload_len = payload ? strlen(payload) : 0;
}

static enum lgw_errc call_on(struct lgw_dispatcher *d, struct lgw_invocation *inv,
                             const char *function, const char *payload)
{
    inv_setup(inv, function, payload);
    return lgw_dispatch_wait(d, inv);
}

static enum lgw_errc call(struct lgw_invocation *inv, const char *function, const char *payload)
{
    return call_on(D, inv, function, payload);
}

static void assert_no_secret(const char *s)
{
    if (!s)
        return;
    assert_null(strstr(s, SK));
    assert_null(strstr(s, TOKEN));
    assert_null(strstr(s, "Signature="));
}

static void assert_error(struct lgw_invocation *inv, enum lgw_errc code, int status, int aws_status,
                         const char *aws_type)
{
    if (inv->err.code != code)
        fprintf(stderr, "got %s: %s\n", lgw_errc_name(inv->err.code), inv->err.message);
    assert_int_equal(inv->err.code, code);
    assert_int_equal(inv->err.status, status);
    assert_int_equal(inv->err.aws_status, aws_status);
    if (aws_type)
        assert_string_equal(inv->err.aws_type, aws_type);
    assert_no_secret(inv->err.message);
}

/* ---- tests: answers ---- */

static void test_success_passes_payload_through(void **state)
{
    struct lgw_invocation inv;
    const char *payload = "{\"orderId\": 7, \"x\": [1.5, \"\\u00e9\"]}";
    char before[LGW_REQUEST_ID_LEN + 1];
    json_t *last;

    (void)state;
    inv_setup(&inv, "echo", payload);
    memcpy(before, inv.request_id, sizeof(before));
    assert_int_equal(lgw_dispatch_wait(D, &inv), LGW_OK);
    /* The body comes back byte for byte, as Lambda returns the function's payload. */
    assert_int_equal(inv.result_len, strlen(payload));
    assert_memory_equal(inv.result, payload, strlen(payload));
    assert_string_equal(inv.executed_version, "$LATEST");
    assert_null(inv.log_tail_b64); /* not asked for */
    /* The caller now holds the request id the function ran under (x-amzn-RequestId). */
    last = fake_last("echo");
    assert_string_equal(inv.request_id, json_string_value(json_object_get(last, "requestId")));
    assert_string_not_equal(inv.request_id, before);
    assert_string_equal(json_string_value(json_object_get(last, "invocationType")),
                        "RequestResponse");
    json_decref(last);
    assert_int_equal(fake_requests("echo"), 1);
    lgw_invocation_release(&inv);
}

static void test_request_headers_and_body(void **state)
{
    struct lgw_invocation inv;
    json_t *ev = json_pack("{s:i,s:s}", "n", 1, "s", "x y");
    json_t *got, *cc;

    (void)state;
    lgw_invocation_init(&inv);
    inv.function = "inspect";
    inv.qualifier = "$LATEST";
    inv.event = ev; /* no raw payload: the event is serialized */
    inv.log_tail = true;
    inv.client_context = "{\"custom\":{\"k\":\"v\"}}";
    assert_int_equal(lgw_dispatch_wait(D, &inv), LGW_OK);
    got = json_loadb(inv.result, inv.result_len, 0, NULL);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "invocationType")),
                        "RequestResponse");
    assert_string_equal(json_string_value(json_object_get(got, "logType")), "Tail");
    assert_string_equal(json_string_value(json_object_get(got, "contentType")), "application/json");
    assert_string_equal(json_string_value(json_object_get(got, "qualifier")), "$LATEST");
    assert_string_equal(json_string_value(json_object_get(got, "rawPath")),
                        "/2015-03-31/functions/inspect/invocations?Qualifier=%24LATEST");
    assert_string_equal(json_string_value(json_object_get(got, "body")), "{\"n\":1,\"s\":\"x y\"}");
    assert_true(json_is_true(json_object_get(got, "token")));
    assert_true(json_is_null(json_object_get(got, "expect")));
    cc = json_object_get(got, "clientContext");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cc, "custom"), "k")),
                        "v");
    /* The executed version and the log tail come back from the headers. */
    assert_string_equal(inv.executed_version, "$LATEST");
    assert_non_null(inv.log_tail_b64);
    {
        unsigned char log[512];
        int n = EVP_DecodeBlock(log, (const unsigned char *)inv.log_tail_b64,
                                (int)strlen(inv.log_tail_b64));
        assert_true(n > 0);
        log[n] = '\0';
        assert_non_null(strstr((char *)log, "START RequestId: "));
    }
    json_decref(got);
    json_decref(ev);
    lgw_invocation_release(&inv);
}

static void test_event_is_accepted_with_202(void **state)
{
    struct lgw_invocation inv;
    json_t *last;

    (void)state;
    inv_setup(&inv, "echo", "{\"async\":true}");
    inv.log_tail = true; /* ignored for Event, as in local mode */
    assert_int_equal(lgw_dispatch_async_wait(D, &inv), LGW_OK);
    assert_null(inv.result);
    assert_null(inv.log_tail_b64);
    assert_string_equal(inv.executed_version, "$LATEST");
    last = fake_last("echo");
    assert_string_equal(json_string_value(json_object_get(last, "invocationType")), "Event");
    assert_int_equal(json_integer_value(json_object_get(last, "bodyLength")), 14);
    assert_string_equal(inv.request_id, json_string_value(json_object_get(last, "requestId")));
    json_decref(last);
    lgw_invocation_release(&inv);
}

static void test_arn_target_region_and_qualifier(void **state)
{
    struct lgw_invocation inv;
    json_t *got;

    (void)state;
    /* orders -> arn:aws:lambda:eu-west-1:...:function:inspect:live: signed for eu-west-1 (the
     * fake checks the scope), the ARN percent-encoded in the path and double-encoded in the
     * canonical URI (botocore checks that too), the pinned qualifier in the query. */
    assert_int_equal(call(&inv, "orders", "{}"), LGW_OK);
    got = json_loadb(inv.result, inv.result_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(got, "rawPath")),
                        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012"
                        "%3Afunction%3Ainspect/invocations?Qualifier=live");
    assert_string_equal(json_string_value(json_object_get(got, "region")), "eu-west-1");
    assert_string_equal(inv.executed_version, "live");
    json_decref(got);
    lgw_invocation_release(&inv);

    /* The same qualifier named by the caller is fine; another one is refused, unsent. */
    inv_setup(&inv, "orders", "{}");
    inv.qualifier = "live";
    assert_int_equal(lgw_dispatch_wait(D, &inv), LGW_OK);
    lgw_invocation_release(&inv);
    inv_setup(&inv, "orders", "{}");
    inv.qualifier = "v2";
    assert_int_equal(lgw_dispatch_wait(D, &inv), LGW_EDENIED);
    assert_int_equal(inv.err.status, 403);
    assert_string_equal(inv.err.aws_type, "AccessDeniedException");
    lgw_invocation_release(&inv);
    assert_int_equal(fake_requests("inspect"), 2);

    /* A partial ARN uses the default region. */
    assert_int_equal(call(&inv, "partial", "{}"), LGW_OK);
    got = json_loadb(inv.result, inv.result_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(got, "rawPath")),
                        "/2015-03-31/functions/123456789012%3Afunction%3Ainspect/invocations");
    assert_string_equal(json_string_value(json_object_get(got, "region")), "us-east-1");
    json_decref(got);
    lgw_invocation_release(&inv);
}

static void test_not_found(void **state)
{
    struct lgw_invocation inv;

    (void)state;
    assert_int_equal(call(&inv, "missing", "{}"), LGW_ENOTFOUND);
    /* AWS's type has its ":http://internal..." suffix cut, as the SDKs do. */
    assert_error(&inv, LGW_ENOTFOUND, 404, 404, "ResourceNotFoundException");
    assert_string_equal(inv.err.message,
                        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:"
                        "missing");
    lgw_invocation_release(&inv);
    assert_int_equal(fake_requests("missing"), 1);

    /* The type may come in the body's __type instead, and the message as "Message". */
    assert_int_equal(call(&inv, "typeinbody", "{}"), LGW_ENOTFOUND);
    assert_error(&inv, LGW_ENOTFOUND, 404, 404, "ResourceNotFoundException");
    assert_string_equal(inv.err.message, "no such");
    lgw_invocation_release(&inv);
}

static void test_throttled_then_success(void **state)
{
    struct lgw_invocation inv;
    int64_t t0 = now_ms(), ms;

    (void)state;
    assert_int_equal(call(&inv, "throttle-once", "{\"a\":1}"), LGW_OK);
    ms = now_ms() - t0;
    assert_string_equal(inv.result, "{\"a\":1}");
    assert_int_equal(fake_requests("throttle-once"), 2);
    /* Retry-After: 1 was honoured, and the wait was a timer, not an extra attempt. */
    assert_true(ms >= 1000);
    assert_true(ms < 4000);
    lgw_invocation_release(&inv);
}

static void test_throttled_beyond_budget_answers_at_once(void **state)
{
    struct lgw_invocation inv;
    int64_t t0 = now_ms();

    (void)state;
    /* Retry-After: 60 is past the 3 s retry budget: passed to the caller straight away. */
    assert_int_equal(call(&inv, "throttle-long", "{}"), LGW_ETHROTTLED);
    assert_true(now_ms() - t0 < 2000);
    assert_error(&inv, LGW_ETHROTTLED, 429, 429, "TooManyRequestsException");
    assert_string_equal(inv.err.message, "Rate Exceeded.");
    assert_string_equal(inv.err.reason, "CallerRateLimitExceeded");
    assert_int_equal(inv.err.retry_after, 60);
    assert_int_equal(fake_requests("throttle-long"), 1);
    lgw_invocation_release(&inv);

    /* Throttled every time, no Retry-After: max_attempts attempts, then the 429. */
    assert_int_equal(call(&inv, "throttle-always", "{}"), LGW_ETHROTTLED);
    assert_int_equal(fake_requests("throttle-always"), LGW_LAMBDA_DEFAULT_MAX_ATTEMPTS);
    assert_string_equal(inv.err.reason, "ConcurrentInvocationLimitExceeded");
    assert_int_equal(inv.err.retry_after, 1);
    lgw_invocation_release(&inv);
}

static void test_500_then_success(void **state)
{
    struct lgw_invocation inv;

    (void)state;
    assert_int_equal(call(&inv, "flaky500", "[1,2]"), LGW_OK);
    assert_string_equal(inv.result, "[1,2]");
    assert_int_equal(fake_requests("flaky500"), 2);
    lgw_invocation_release(&inv);
}

static void test_500_gives_up_after_bounded_attempts(void **state)
{
    struct lgw_invocation inv;
    struct lgw_lambda_stats before, after;
    int64_t t0 = now_ms(), ms;

    (void)state;
    lgw_lambda_stats(D, &before);
    assert_int_equal(call(&inv, "down500", "{}"), LGW_ECLIENT);
    ms = now_ms() - t0;
    lgw_lambda_stats(D, &after);
    assert_error(&inv, LGW_ECLIENT, 502, 500, "ServiceException");
    assert_non_null(strstr(inv.err.message, "Internal error, please retry"));
    assert_non_null(strstr(inv.err.message, "after 4 attempts"));
    assert_int_equal(fake_requests("down500"), 4);
    assert_int_equal(after.attempts - before.attempts, 4);
    assert_int_equal(after.retries - before.retries, 3);
    /* Waits are at most 50, 100, 200 ms (cap 200): well under a second in all (the bound is
     * loose for loaded machines). */
    assert_true(ms < 3000);
    lgw_invocation_release(&inv);
}

static void test_5xx_after_the_function_ran_is_not_retried(void **state)
{
    struct lgw_invocation inv;

    (void)state;
    assert_int_equal(call(&inv, "ran502", "{}"), LGW_ECLIENT);
    assert_error(&inv, LGW_ECLIENT, 502, 502, "ServiceException");
    assert_int_equal(fake_requests("ran502"), 1);
    lgw_invocation_release(&inv);
}

static void test_function_error(void **state)
{
    struct lgw_invocation inv;
    json_t *p;

    (void)state;
    assert_int_equal(call(&inv, "fnerror", "{}"), LGW_EEXECUTE);
    assert_error(&inv, LGW_EEXECUTE, 502, 200, "");
    assert_string_equal(inv.err.message, "ValueError: boom");
    p = json_loadb(inv.err.payload, inv.err.payload_len, 0, NULL);
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "errorType")), "ValueError");
    /* The payload names the request id, and so does the invocation now. */
    assert_string_equal(json_string_value(json_object_get(p, "requestId")), inv.request_id);
    json_decref(p);
    assert_null(inv.result);
    assert_int_equal(fake_requests("fnerror"), 1); /* an answer: never retried */
    lgw_invocation_release(&inv);

    assert_int_equal(call(&inv, "fntimeout", "{}"), LGW_ETIMEDOUT);
    assert_error(&inv, LGW_ETIMEDOUT, 504, 200, "");
    assert_non_null(strstr(inv.err.message, "Task timed out after 1.00 seconds"));
    assert_non_null(strstr(inv.err.payload, "Sandbox.Timedout"));
    lgw_invocation_release(&inv);
}

static void test_slow_answer_past_the_timeout(void **state)
{
    struct lgw_invocation inv;
    int64_t t0 = now_ms(), ms;

    (void)state;
    /* slow is configured with a 300 ms timeout; the margin is 200 ms; the fake takes 2 s. */
    assert_int_equal(call(&inv, "slow", "{}"), LGW_ECLIENT_TIMEOUT);
    ms = now_ms() - t0;
    assert_error(&inv, LGW_ECLIENT_TIMEOUT, 504, 500, NULL);
    assert_non_null(strstr(inv.err.message, "did not answer within 500 ms"));
    assert_true(ms >= 450);
    assert_true(ms < 1900); /* not the fake's 2 s */
    /* The request was sent: the function may be running, so no retry. */
    assert_int_equal(fake_requests("slow"), 1);
    lgw_invocation_release(&inv);
}

/* A name for this machine that resolves to 127.0.0.1 through the system's resolver (curl
 * answers "localhost" itself, without one): the host name, as /etc/hosts usually has it. */
static bool loopback_host_name(char *name, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    bool ok = false;

    if (gethostname(name, cap) != 0 || !name[0] || strcmp(name, "localhost") == 0 ||
        getaddrinfo(name, NULL, &hints, &res) != 0)
        return false;
    for (struct addrinfo *a = res; a && !ok; a = a->ai_next)
        ok = ((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    freeaddrinfo(res);
    return ok;
}

/* An endpoint by host name: curl's threaded resolver then has sockets of its own that the lane
 * waits on beside the connections' (and closes them behind curl's socket callbacks; a lane that
 * kept their state once made the next connection on the same number fail). */
static void test_endpoint_by_host_name(void **state)
{
    struct lgw_lambda_options o = base_options();
    struct lgw_lambda_stats st;
    struct lgw_invocation inv;
    struct lgw_error e;
    struct lgw_dispatcher *d;
    char ep[128], host[64];

    (void)state;
    if (!loopback_host_name(host, sizeof(host))) {
        fprintf(stderr, "skipped: this machine's host name does not resolve to 127.0.0.1 "
                        "(make docker-test covers a resolved endpoint)\n");
        skip();
    }
    snprintf(ep, sizeof(ep), "http://%s:%d", host, fake_port);
    o.endpoint = ep;
    lgw_error_init(&e);
    d = lambda_new(NULL, 0, &o, &e);
    assert_non_null(d);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(call_on(d, &inv, "echo", "{\"n\":1}"), LGW_OK);
        assert_string_equal(inv.result, "{\"n\":1}");
        lgw_invocation_release(&inv);
    }
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.attempts, 6);
    lambda_free(d);
}

static void test_connection_refused(void **state)
{
    struct lgw_lambda_options o = base_options();
    struct lgw_lambda_stats st;
    struct lgw_invocation inv;
    struct lgw_error e;
    struct lgw_dispatcher *d;
    char ep[64];
    int64_t t0, ms;

    (void)state;
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", closed_port());
    o.endpoint = ep;
    lgw_error_init(&e);
    d = lambda_new(NULL, 0, &o, &e);
    assert_non_null(d);
    t0 = now_ms();
    assert_int_equal(call_on(d, &inv, "echo", "{}"), LGW_ECLIENT);
    ms = now_ms() - t0;
    assert_error(&inv, LGW_ECLIENT, 502, 500, NULL);
    assert_non_null(strstr(inv.err.message, "unreachable"));
    assert_non_null(strstr(inv.err.message, "after 4 attempts"));
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.attempts, 4);
    assert_int_equal(st.retries, 3);
    assert_true(ms < 3000);
    lgw_invocation_release(&inv);
    lambda_free(d);
}

/* A TLS endpoint whose server takes the connection and never answers the ClientHello: opening
 * the connection includes its TLS handshake (curl's connect timeout covered it when curl ran
 * the TLS), so the attempt fails after connect_timeout_ms, not after the function's timeout. */
static void test_tls_handshake_within_the_connect_timeout(void **state)
{
    struct lgw_lambda_options o = base_options();
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    struct lgw_invocation inv;
    struct lgw_error e;
    struct lgw_dispatcher *d;
    char ep[64];
    int64_t t0, ms;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    (void)state;
    /* Listening, never accepting: the kernel completes the TCP handshake, nobody speaks. */
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    snprintf(ep, sizeof(ep), "https://127.0.0.1:%d", ntohs(a.sin_port));
    o.endpoint = ep;
    o.connect_timeout_ms = 500;
    o.default_timeout_ms = 4000;
    o.max_attempts = 1;
    lgw_error_init(&e);
    d = lambda_new(NULL, 0, &o, &e);
    if (!d)
        fprintf(stderr, "lgw_lambda_new: %s\n", e.message);
    assert_non_null(d);
    t0 = now_ms();
    assert_int_equal(call_on(d, &inv, "echo", "{}"), LGW_ECLIENT);
    ms = now_ms() - t0;
    if (ms >= 2000)
        fprintf(stderr, "the handshake was given %lld ms: %s\n", (long long)ms, inv.err.message);
    assert_true(ms < 2000);
    lgw_invocation_release(&inv);
    lambda_free(d);
    close(lfd);
}

static void test_malformed_answers(void **state)
{
    static const char *const names[] = {"badjson-error", "garbage",     "wrongstatus",
                                        "badheader",     "longversion", "huge"};
    struct lgw_invocation inv;

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(call(&inv, names[i], "{}"), LGW_ECLIENT);
        assert_error(&inv, LGW_ECLIENT, 502, 500, NULL);
        assert_non_null(strstr(inv.err.message, "malformed answer from Lambda"));
        assert_null(inv.result);
        /* The request went out and something came back: never retried. */
        assert_int_equal(fake_requests(names[i]), 1);
        lgw_invocation_release(&inv);
    }
}

static void test_service_errors_map_to_codes(void **state)
{
    static const struct {
        const char *fn;
        enum lgw_errc code;
        int status, aws_status;
        const char *type;
    } cases[] = {
        {"denied", LGW_EDENIED, 403, 403, "AccessDeniedException"},
        {"badcontent", LGW_EBADREQUEST, 400, 400, "InvalidRequestContentException"},
        {"toolarge", LGW_ETOOLARGE, 413, 413, "RequestTooLargeException"},
        {"conflict", LGW_ECLIENT, 502, 409, "ResourceConflictException"},
    };
    struct lgw_invocation inv;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(call(&inv, cases[i].fn, "{}"), cases[i].code);
        assert_error(&inv, cases[i].code, cases[i].status, cases[i].aws_status, cases[i].type);
        assert_true(inv.err.message[0] != '\0');
        assert_int_equal(fake_requests(cases[i].fn), 1); /* 4xx: not retried */
        lgw_invocation_release(&inv);
    }
}

/* ---- tests: the allow-list, names, check ---- */

static void test_allow_list_denies_without_calling(void **state)
{
    static const char *const denied[] = {"secret", "unlisted", "throttle", "Echo"};
    struct lgw_invocation inv;
    struct lgw_lambda_stats before, after;

    (void)state;
    lgw_lambda_stats(D, &before);
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        assert_int_equal(call(&inv, denied[i], "{}"), LGW_EDENIED);
        assert_error(&inv, LGW_EDENIED, 403, 403, "AccessDeniedException");
        assert_non_null(strstr(inv.err.message, "allow-list"));
        lgw_invocation_release(&inv);
        inv_setup(&inv, denied[i], NULL);
        assert_int_equal(lgw_dispatch_async_wait(D, &inv), LGW_EDENIED);
        lgw_invocation_release(&inv);
    }
    /* "versioned:7" allows only that qualifier of versioned. */
    inv_setup(&inv, "versioned", "{}");
    inv.qualifier = "8";
    assert_int_equal(lgw_dispatch_wait(D, &inv), LGW_EDENIED);
    lgw_invocation_release(&inv);
    inv_setup(&inv, "versioned", "{}");
    assert_int_equal(lgw_dispatch_wait(D, &inv), LGW_EDENIED);
    lgw_invocation_release(&inv);
    lgw_lambda_stats(D, &after);
    assert_int_equal(after.denied - before.denied, 10);
    assert_int_equal(after.attempts, before.attempts);
    assert_int_equal(stat_int("total"), 0);

    /* The allowed qualifier goes through (the fake answers 404 for an unknown name). */
    inv_setup(&inv, "versioned", "{}");
    inv.qualifier = "7";
    assert_int_equal(lgw_dispatch_wait(D, &inv), LGW_ENOTFOUND);
    lgw_invocation_release(&inv);
    assert_int_equal(stat_int("total"), 1);
}

static void test_pattern_match(void **state)
{
    (void)state;
    assert_true(lgw_lambda_pattern_match("orders", "orders", NULL));
    assert_true(lgw_lambda_pattern_match("orders", "orders", "live"));
    assert_false(lgw_lambda_pattern_match("orders", "orders2", NULL));
    assert_false(lgw_lambda_pattern_match("orders", "Orders", NULL));
    assert_true(lgw_lambda_pattern_match("team-*", "team-a", NULL));
    assert_true(lgw_lambda_pattern_match("team-*", "team-", NULL));
    assert_false(lgw_lambda_pattern_match("team-*", "team", NULL));
    assert_true(lgw_lambda_pattern_match("*", "anything", "q"));
    assert_true(lgw_lambda_pattern_match("a*b*c", "axxbyyc", NULL));
    assert_true(lgw_lambda_pattern_match("a*b*c", "abcbc", NULL));
    assert_false(lgw_lambda_pattern_match("a*b*c", "abcbd", NULL));
    assert_true(lgw_lambda_pattern_match("*-prod", "orders-prod", NULL));
    assert_true(lgw_lambda_pattern_match("orders:live", "orders", "live"));
    assert_false(lgw_lambda_pattern_match("orders:live", "orders", NULL));
    assert_false(lgw_lambda_pattern_match("orders:live", "orders", "dev"));
    assert_true(lgw_lambda_pattern_match("orders:*", "orders", "$LATEST"));
    assert_false(lgw_lambda_pattern_match("orders:*", "orders", ""));
    assert_true(lgw_lambda_pattern_match("*:live", "billing", "live"));
}

static void test_bad_names_never_reach_the_url(void **state)
{
    static const char *const bad[] = {
        "../../x", "a/b",
        "a?b=c",   "a b",
        "a%2Fb",   "",
        "x#y",     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    struct lgw_invocation inv;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(call(&inv, bad[i], "{}"), LGW_EBADREQUEST);
        assert_int_equal(inv.err.status, 400);
        lgw_invocation_release(&inv);
    }
    inv_setup(&inv, "echo", "{}");
    inv.qualifier = "live/../../x";
    assert_int_equal(lgw_dispatch_wait(D, &inv), LGW_EBADREQUEST);
    lgw_invocation_release(&inv);
    assert_int_equal(stat_int("total"), 0);
}

/* A blocking check(): dispatcher.h has wait helpers only for dispatch and dispatch_async. */
struct waiter {
    pthread_mutex_t m;
    pthread_cond_t c;
    int done;
};

static void waiter_done(struct lgw_invocation *inv, void *arg)
{
    struct waiter *w = arg;

    (void)inv;
    pthread_mutex_lock(&w->m);
    w->done++;
    pthread_cond_broadcast(&w->c);
    pthread_mutex_unlock(&w->m);
}

static void waiter_wait(struct waiter *w, int n)
{
    pthread_mutex_lock(&w->m);
    while (w->done < n)
        pthread_cond_wait(&w->c, &w->m);
    pthread_mutex_unlock(&w->m);
}

static enum lgw_errc check_wait(struct lgw_dispatcher *d, struct lgw_invocation *inv)
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

    lgw_dispatch_check(d, inv, waiter_done, &w);
    waiter_wait(&w, 1);
    return inv->err.code;
}

static void test_check_sends_dry_run_only_when_allowed(void **state)
{
    struct lgw_invocation inv;
    json_t *last;

    (void)state;
    inv_setup(&inv, "echo", "{\"not\":\"sent\"}");
    assert_int_equal(check_wait(D, &inv), LGW_OK);
    assert_string_equal(inv.executed_version, "$LATEST");
    lgw_invocation_release(&inv);
    last = fake_last("echo");
    assert_string_equal(json_string_value(json_object_get(last, "invocationType")), "DryRun");
    assert_int_equal(json_integer_value(json_object_get(last, "bodyLength")), 0);
    json_decref(last);

    inv_setup(&inv, "missing", NULL);
    assert_int_equal(check_wait(D, &inv), LGW_ENOTFOUND);
    lgw_invocation_release(&inv);

    inv_setup(&inv, "secret", NULL);
    assert_int_equal(check_wait(D, &inv), LGW_EDENIED);
    assert_int_equal(inv.err.status, 403);
    lgw_invocation_release(&inv);
    assert_int_equal(stat_int("total"), 2);
}

static void test_payload_limits(void **state)
{
    struct lgw_invocation inv;
    size_t big = LGW_ASYNC_PAYLOAD_MAX + 1;
    char *p = malloc(big + 1);

    (void)state;
    memset(p, ' ', big);
    p[0] = '[';
    p[big - 1] = ']';
    p[big] = '\0';
    inv_setup(&inv, "echo", p);
    assert_int_equal(lgw_dispatch_async_wait(D, &inv), LGW_ETOOLARGE);
    assert_int_equal(inv.err.status, 413);
    lgw_invocation_release(&inv);
    assert_int_equal(stat_int("total"), 0);
    /* The same body is fine for a sync call (6 MiB). */
    assert_int_equal(call(&inv, "echo", p), LGW_OK);
    assert_int_equal(inv.result_len, big);
    lgw_invocation_release(&inv);
    free(p);
}

/* ---- tests: transport ---- */

static void test_keep_alive_reuses_connections(void **state)
{
    struct lgw_invocation inv;
    struct lgw_lambda_stats before, after;

    (void)state;
    assert_int_equal(call(&inv, "echo", "{}"), LGW_OK); /* one open connection to start from */
    lgw_invocation_release(&inv);
    lgw_lambda_stats(D, &before);
    fake_reset();
    for (int i = 0; i < 20; i++) {
        assert_int_equal(call(&inv, "echo", "{}"), LGW_OK);
        lgw_invocation_release(&inv);
    }
    lgw_lambda_stats(D, &after);
    assert_int_equal(fake_requests("echo"), 20);
    assert_true(after.connections - before.connections <= 1);
    assert_true(stat_int("connections") <= 1);
}

static void test_concurrent_calls_do_not_queue(void **state)
{
    enum { N = 40 };
    struct lgw_invocation *inv = calloc(N, sizeof(*inv));
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int64_t t0 = now_ms(), ms;

    (void)state;
    /* Each answer takes 300 ms at the fake; one thread, no thread per call, no blocking: all
     * 40 together take about as long as one. */
    for (int i = 0; i < N; i++) {
        inv_setup(&inv[i], "sleepy", "{}");
        lgw_dispatch(D, &inv[i], waiter_done, &w);
    }
    assert_true(now_ms() - t0 < 1000); /* dispatch never waits on the network */
    waiter_wait(&w, N);
    ms = now_ms() - t0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(inv[i].err.code, LGW_OK);
        lgw_invocation_release(&inv[i]);
    }
    assert_int_equal(fake_requests("sleepy"), N);
    assert_true(ms >= 300);
    assert_true(ms < 8000); /* one after the other would be 12 s (loose: sanitizers, load) */
    free(inv);
}

static void test_drain_waits_then_refuses(void **state)
{
    enum { N = 5 };
    struct lgw_lambda_options o = base_options();
    struct lgw_invocation inv[N], late;
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct lgw_lambda_stats st;
    struct lgw_error e;
    struct lgw_dispatcher *d;

    (void)state;
    lgw_error_init(&e);
    d = lambda_new(NULL, 0, &o, &e);
    assert_non_null(d);
    for (int i = 0; i < N; i++) {
        inv_setup(&inv[i], "sleepy", "{}");
        lgw_dispatch(d, &inv[i], waiter_done, &w);
    }
    lgw_dispatcher_drain(d);
    /* Every accepted call has been answered and its done has returned. */
    pthread_mutex_lock(&w.m);
    assert_int_equal(w.done, N);
    pthread_mutex_unlock(&w.m);
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.inflight, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(inv[i].err.code, LGW_OK);
        lgw_invocation_release(&inv[i]);
    }
    assert_int_equal(call_on(d, &late, "echo", "{}"), LGW_ESHUTDOWN);
    assert_int_equal(late.err.status, 503);
    lgw_invocation_release(&late);
    lambda_free(d);
}

/* ---- tests: HTTP/1.1 spoken by the lane (plain-HTTP endpoints) ----
 *
 * The h1-* scenarios of the fake write their answers on the socket themselves, in pieces with
 * pauses between them, so the lane's own HTTP/1.1 client reads them over real connections as
 * they come. Each test makes a dispatcher of its own: its connections are all new, so the fake's
 * connection count and the dispatcher's are exact. */

/* One lane (when the lanes are driven there are DRIVERS of them, but the calls of one thread
 * keep to one lane), and a default timeout of 5 s, so an answer the client never finishes
 * reading fails the test instead of stalling it for Lambda's 15 minutes. */
static struct lgw_dispatcher *h1_new(void)
{
    struct lgw_lambda_options o = base_options();
    struct lgw_error e;
    struct lgw_dispatcher *d;

    o.lanes = 1;
    o.default_timeout_ms = 5000;
    lgw_error_init(&e);
    d = lambda_new(NULL, 0, &o, &e);
    if (!d)
        fprintf(stderr, "lgw_lambda_new: %s\n", e.message);
    assert_non_null(d);
    return d;
}

/* A JSON string of len bytes (len >= 4) whose text varies all along (a shifted or dropped
 * piece shows), NUL-terminated: the caller frees it. */
static char *json_text(size_t len, unsigned seed)
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.";
    char *p = malloc(len + 1);
    uint32_t x = seed * 2654435761u + 1;

    assert_non_null(p);
    p[0] = '[';
    p[1] = '"';
    for (size_t i = 2; i < len - 2; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = set[(x >> 16) % (sizeof(set) - 1)];
    }
    p[len - 2] = '"';
    p[len - 1] = ']';
    p[len] = '\0';
    return p;
}

/* Calls function on d with payload and asserts that the answer is that payload, byte for byte,
 * from the version the fake names. */
static void assert_echoed(struct lgw_dispatcher *d, const char *function, const char *payload)
{
    struct lgw_invocation inv;
    size_t len = strlen(payload);

    if (call_on(d, &inv, function, payload) != LGW_OK)
        fprintf(stderr, "%s: got %s: %s\n", function, lgw_errc_name(inv.err.code), inv.err.message);
    assert_int_equal(inv.err.code, LGW_OK);
    assert_non_null(inv.result);
    assert_int_equal(inv.result_len, len);
    assert_memory_equal(inv.result, payload, len);
    assert_string_equal(inv.executed_version, "$LATEST");
    lgw_invocation_release(&inv);
}

static void test_h1_chunked_answer(void **state)
{
    struct lgw_dispatcher *d = h1_new();
    struct lgw_lambda_stats st;
    char *big = json_text(100 * 1024 + 17, 1);
    json_t *last;
    struct lgw_invocation inv;

    (void)state;
    /* 100 KiB back in chunks of 1 byte to over 32 KiB, size lines, data and CRLFs sent apart with
     * pauses, one size with an extension, a trailer at the end. */
    assert_echoed(d, "h1-chunked", big);
    /* The request id comes from the answer's headers. */
    assert_int_equal(call_on(d, &inv, "h1-chunked", "{\"n\":2}"), LGW_OK);
    assert_string_equal(inv.result, "{\"n\":2}");
    last = fake_last("h1-chunked");
    assert_string_equal(inv.request_id, json_string_value(json_object_get(last, "requestId")));
    json_decref(last);
    lgw_invocation_release(&inv);
    /* A chunked answer ends where its last chunk and trailers say: the connection carried the
     * second call too. */
    assert_int_equal(fake_requests("h1-chunked"), 2);
    assert_int_equal(stat_int("connections"), 1);
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.connections, 1);
    lambda_free(d);
    free(big);
}

static void test_h1_answer_delimited_by_the_close(void **state)
{
    struct lgw_dispatcher *d = h1_new();
    struct lgw_lambda_stats st;
    char *body = json_text(40000, 2);

    (void)state;
    /* HTTP/1.1 with neither Content-Length nor chunked: the body is all that comes before the
     * close, in two sends. */
    assert_echoed(d, "h1-eof", body);
    assert_int_equal(stat_int("connections"), 1);
    /* That connection is gone: the next call opens another and works. */
    assert_echoed(d, "echo", "{\"after\":\"close\"}");
    assert_int_equal(stat_int("connections"), 2);
    assert_echoed(d, "h1-eof", "{\"again\":true}");
    assert_int_equal(stat_int("connections"), 2); /* the echo's connection was kept */
    assert_echoed(d, "echo", "{}");
    assert_int_equal(stat_int("connections"), 3);
    assert_int_equal(fake_requests("h1-eof"), 2);
    assert_int_equal(fake_requests("echo"), 2);
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.attempts, 4);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.connections, 3);
    lambda_free(d);
    free(body);
}

static void test_h1_answer_in_tiny_pieces(void **state)
{
    struct lgw_dispatcher *d = h1_new();
    char *body = json_text(301, 3);

    (void)state;
    /* Status line, headers and body one byte per send (Content-Length), then a chunked answer
     * in sends of 1 to 3 bytes (size lines and CRLFs split), on the same connection. */
    assert_echoed(d, "h1-trickle", body);
    assert_echoed(d, "h1-trickle-chunked", body);
    assert_echoed(d, "h1-trickle", "{}");
    assert_int_equal(fake_requests("h1-trickle"), 2);
    assert_int_equal(fake_requests("h1-trickle-chunked"), 1);
    assert_int_equal(stat_int("connections"), 1);
    lambda_free(d);
    free(body);
}

static void test_h1_interim_answers(void **state)
{
    struct lgw_dispatcher *d = h1_new();

    (void)state;
    /* 100 Continue (carrying X-Amz-Function-Error and another version, which must not count),
     * 103 Early Hints, then the 200: the result is the 200's, a success, at $LATEST. */
    assert_echoed(d, "h1-continue", "{\"interim\":[100,103]}");
    assert_echoed(d, "h1-continue", "{}");
    assert_int_equal(fake_requests("h1-continue"), 2);
    assert_int_equal(stat_int("connections"), 1);
    lambda_free(d);
}

static void test_h1_stale_kept_connection(void **state)
{
    static const struct {
        const char *fn;
        int pause_ms; /* between the two calls */
    } cases[] = {
        /* closed right after the answer: noticed while idle, or as the next call starts */
        {"h1-stale-close", 0},
        {"h1-stale-close", 200},
        /* closed as the next request arrives: it meets the end of the connection (FIN) */
        {"h1-stale-fin", 0},
        /* reset as the next request arrives, the request unread (RST) */
        {"h1-stale-rst", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct lgw_dispatcher *d = h1_new();
        struct lgw_lambda_stats st;

        fake_reset();
        /* A normal answer, no Connection: close: the client keeps the connection. */
        assert_echoed(d, cases[i].fn, "{\"first\":1}");
        if (cases[i].pause_ms)
            nanosleep(&(struct timespec){0, cases[i].pause_ms * 1000000L}, NULL);
        /* The next call on the same lane gets a working connection, with no error, and the
         * function ran once. */
        assert_echoed(d, "echo", "{\"second\":2}");
        if (fake_requests("echo") != 1)
            fprintf(stderr, "%s (pause %d ms): echo ran %ld times\n", cases[i].fn,
                    cases[i].pause_ms, fake_requests("echo"));
        assert_int_equal(fake_requests("echo"), 1);
        assert_int_equal(fake_requests(cases[i].fn), 1);
        assert_int_equal(stat_int("connections"), 2);
        lgw_lambda_stats(d, &st);
        assert_int_equal(st.attempts, 2); /* the replacement of a dropped one is no attempt */
        assert_int_equal(st.retries, 0);
        assert_int_equal(st.connections, 2);
        lambda_free(d);
    }
}

static void test_h1_no_answer_at_all(void **state)
{
    struct lgw_dispatcher *d = h1_new();
    struct lgw_lambda_stats st;
    struct lgw_invocation inv;

    (void)state;
    /* On a fresh connection the server reads the request and closes without a byte: the
     * function may have run, so the call fails at once. */
    assert_int_equal(call_on(d, &inv, "h1-hangup", "{}"), LGW_ECLIENT);
    assert_error(&inv, LGW_ECLIENT, 502, 500, NULL);
    assert_non_null(strstr(inv.err.message, "broke before an answer"));
    assert_non_null(strstr(inv.err.message, "not retried"));
    assert_null(inv.result);
    lgw_invocation_release(&inv);
    assert_int_equal(fake_requests("h1-hangup"), 1);
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.connections, 1);

    /* On a kept connection the same close looks like the server dropping it idle: the request
     * goes once more over a fresh connection (as curl does), and no more than once. */
    assert_echoed(d, "echo", "{}");
    assert_int_equal(call_on(d, &inv, "h1-hangup", "{}"), LGW_ECLIENT);
    assert_non_null(strstr(inv.err.message, "broke before an answer"));
    lgw_invocation_release(&inv);
    assert_int_equal(fake_requests("h1-hangup"), 3);
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(st.connections, 3);
    lambda_free(d);
}

static void test_h1_answer_cut_short(void **state)
{
    static const struct {
        const char *fn, *where;
    } cases[] = {
        {"h1-short", "body"},         /* Content-Length: 100, 10 bytes, the close */
        {"h1-short-chunked", "body"}, /* a chunk of 0x64 bytes, 10 of them, the close */
        {"h1-short-head", "headers"}, /* the close in the middle of a header line */
    };
    struct lgw_dispatcher *d = h1_new();
    struct lgw_invocation inv;
    char what[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(call_on(d, &inv, cases[i].fn, "{}"), LGW_ECLIENT);
        assert_error(&inv, LGW_ECLIENT, 502, 500, NULL);
        assert_non_null(strstr(inv.err.message, "malformed answer from Lambda"));
        snprintf(what, sizeof(what), "before the answer's %s ended", cases[i].where);
        assert_non_null(strstr(inv.err.message, what));
        assert_null(inv.result);
        lgw_invocation_release(&inv);
        /* Part of an answer came: the function ran, never sent again. */
        assert_int_equal(fake_requests(cases[i].fn), 1);
    }
    lambda_free(d);
}

/* A kept connection unused for idle_ms is closed by the lane itself (its timer, with no call
 * and no event to wake it), and the next call opens a fresh one. */
static void test_idle_connections_are_closed(void **state)
{
    struct lgw_lambda_options o = base_options();
    struct lgw_lambda_stats st;
    struct lgw_invocation inv;
    struct lgw_dispatcher *d;
    struct lgw_error e;
    int64_t t0;

    (void)state;
    o.lanes = 1;
    o.idle_ms = 300;
    lgw_error_init(&e);
    d = lambda_new(NULL, 0, &o, &e);
    assert_non_null(d);
    assert_int_equal(call_on(d, &inv, "echo", "{}"), LGW_OK);
    lgw_invocation_release(&inv);
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.connections, 1);
    assert_int_equal(st.idle_connections, 1);
    t0 = now_ms();
    while (lgw_lambda_stats(d, &st) == 0 && st.idle_connections && now_ms() - t0 < 3000)
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    assert_int_equal(st.idle_connections, 0);
    assert_true(now_ms() - t0 >= 250); /* not before its time */
    assert_int_equal(call_on(d, &inv, "echo", "{}"), LGW_OK);
    lgw_invocation_release(&inv);
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.connections, 2);
    assert_int_equal(stat_int("connections"), 2);
    lambda_free(d);
}

/* idle_connections counts the kept connections only: a connection closed while it carried a
 * call (an answer delimited by the close, a failure, a kept one the server dropped as the next
 * call started on it) was never idle, and its close must not count one down. */
static void test_idle_count_after_closes(void **state)
{
    struct lgw_dispatcher *d = h1_new();
    struct lgw_lambda_stats st;
    struct lgw_invocation inv;

    (void)state;
    /* Closed with its answer: no idle connection, and none counted. */
    assert_echoed(d, "h1-eof", "{\"n\":1}");
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.idle_connections, 0);
    /* A kept one: one idle. */
    assert_echoed(d, "echo", "{}");
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.idle_connections, 1);
    /* Taken by a call that fails on it (the server hangs up: replaced once, then failed on
     * the fresh connection): both closed, none idle. */
    assert_int_equal(call_on(d, &inv, "h1-hangup", "{}"), LGW_ECLIENT);
    lgw_invocation_release(&inv);
    lgw_lambda_stats(d, &st);
    assert_int_equal(st.idle_connections, 0);
    lambda_free(d);
}

static void test_h1_large_request_body(void **state)
{
    struct lgw_dispatcher *d = h1_new();
    size_t len = LGW_SYNC_PAYLOAD_MAX - 1000;
    char *body = json_text(len, 4);
    json_t *last;

    (void)state;
    /* Far more than the sockets hold: the request goes out in many writes, the lane waiting
     * for room between them; the echo shows every byte arrived in order. */
    assert_echoed(d, "echo", body);
    last = fake_last("echo");
    assert_int_equal(json_integer_value(json_object_get(last, "bodyLength")), len);
    json_decref(last);
    /* The same, read by the fake 16 KiB at a time with pauses: the writes wait on it often. */
    body[len / 2] = 'X';
    assert_echoed(d, "h1-slowread", body);
    assert_int_equal(fake_requests("echo"), 1);
    assert_int_equal(fake_requests("h1-slowread"), 1);
    assert_int_equal(stat_int("connections"), 1);
    lambda_free(d);
    free(body);
}

static void test_h1_answer_before_the_request_ended(void **state)
{
    struct lgw_dispatcher *d = h1_new();
    size_t len = LGW_SYNC_PAYLOAD_MAX - 1000;
    char *body = json_text(len, 5);
    struct lgw_invocation inv;

    (void)state;
    /* The fake answers 413 as soon as it has the headers, before reading a byte of the 6 MiB
     * body (more than the sockets hold, so the lane is still writing it), keeps the connection
     * and reads the body after a pause. The answer is the call's; the rest of that request
     * must not be taken for the start of the next one: the next call works. */
    assert_int_equal(call_on(d, &inv, "h1-early", body), LGW_ETOOLARGE);
    assert_error(&inv, LGW_ETOOLARGE, 413, 413, "RequestTooLargeException");
    lgw_invocation_release(&inv);
    assert_echoed(d, "echo", "{\"next\":true}");
    assert_int_equal(fake_requests("h1-early"), 1);
    assert_int_equal(fake_requests("echo"), 1);
    lambda_free(d);
    free(body);
}

/* The same early answer on a kept connection, but the server then resets it with the rest of
 * the request unread: the lane's next write fails while the answer waits in its socket. The
 * answer is read and is the call's; the request must not go again over a fresh connection (a
 * kept connection that "closed before answering" is only replaced when nothing came back). */
static void test_h1_early_answer_then_reset_on_a_kept_connection(void **state)
{
    size_t len = LGW_SYNC_PAYLOAD_MAX - 1000;
    char *body = json_text(len, 6);

    (void)state;
    for (int i = 0; i < 3; i++) {
        struct lgw_dispatcher *d = h1_new();
        struct lgw_invocation inv;

        fake_reset();
        assert_echoed(d, "echo", "{}"); /* a kept connection for the next call */
        if (call_on(d, &inv, "h1-early-rst", body) != LGW_ETOOLARGE)
            fprintf(stderr, "round %d: %s: %s (the request went %ld times)\n", i,
                    lgw_errc_name(inv.err.code), inv.err.message, fake_requests("h1-early-rst"));
        assert_int_equal(inv.err.code, LGW_ETOOLARGE);
        assert_error(&inv, LGW_ETOOLARGE, 413, 413, "RequestTooLargeException");
        lgw_invocation_release(&inv);
        if (fake_requests("h1-early-rst") != 1)
            fprintf(stderr, "round %d: the request went %ld times\n", i,
                    fake_requests("h1-early-rst"));
        assert_int_equal(fake_requests("h1-early-rst"), 1);
        lambda_free(d);
    }
    free(body);
}

/* ---- tests: configuration, signatures, secrets ---- */

static void test_no_allow_list_is_refused(void **state)
{
    struct lgw_lambda_options o = base_options();
    struct lgw_invocation inv;
    struct lgw_error e;
    struct lgw_dispatcher *d;
    json_t *names;

    (void)state;
    lgw_error_init(&e);
    o.allow = NULL;
    o.nallow = 0;
    assert_null(lambda_new(NULL, 0, &o, &e));
    assert_non_null(strstr(e.message, "allow-list"));
    assert_non_null(strstr(e.message, "--allow-any-function"));
    lgw_error_release(&e);

    o.allow_any = true;
    d = lambda_new(NULL, 0, &o, &e);
    assert_non_null(d);
    assert_int_equal(call_on(d, &inv, "anything-at-all", "{}"), LGW_ENOTFOUND);
    lgw_invocation_release(&inv);
    names = lgw_dispatcher_functions(d);
    assert_int_equal(json_array_size(names), 0);
    json_decref(names);
    lambda_free(d);
}

static void test_bad_configuration_is_refused(void **state)
{
    static const char *const bad_patterns[] = {"a/b", "", "a:b:c", ":x", "x:", "a?"};
    struct lgw_lambda_options o = base_options();
    struct lgw_function_config f;
    struct lgw_error e;

    (void)state;
    lgw_error_init(&e);
    f = fn("orders", "arn:aws:lambda:us-east-1:12:function:orders", 0);
    assert_null(lambda_new(&f, 1, &o, &e));
    assert_int_equal(e.code, LGW_EINVALID_FUNCTION);
    assert_non_null(strstr(e.message, "orders"));
    lgw_error_release(&e);
    f = fn("orders", "bad/name", 0);
    assert_null(lambda_new(&f, 1, &o, &e));
    lgw_error_release(&e);
    for (size_t i = 0; i < sizeof(bad_patterns) / sizeof(bad_patterns[0]); i++) {
        const char *one[1] = {bad_patterns[i]};
        o.allow = one;
        o.nallow = 1;
        assert_null(lambda_new(NULL, 0, &o, &e));
        assert_non_null(strstr(e.message, "allow[0]"));
        lgw_error_release(&e);
    }
    o = base_options();
    o.endpoint = "ftp://example.com";
    assert_null(lambda_new(NULL, 0, &o, &e));
    lgw_error_release(&e);
    o.endpoint = "http://user:pw@example.com";
    assert_null(lambda_new(NULL, 0, &o, &e));
    assert_null(strstr(e.message, "pw@")); /* never echo user info back */
    lgw_error_release(&e);
    o = base_options();
    o.region = "Not A Region";
    assert_null(lambda_new(NULL, 0, &o, &e));
    lgw_error_release(&e);
}

static void test_functions_list(void **state)
{
    json_t *names = lgw_dispatcher_functions(D);
    char *text;

    (void)state;
    text = json_dumps(names, JSON_COMPACT);
    /* Configured names, then exact allow-list names; globs and NAME:QUALIFIER name nothing. */
    assert_string_equal(
        text, "[\"slow\",\"orders\",\"partial\",\"pinned\",\"unlisted\",\"echo\","
              "\"inspect\",\"missing\",\"flaky500\",\"down500\",\"ran502\","
              "\"sleepy\",\"badjson-error\",\"garbage\",\"wrongstatus\","
              "\"badheader\",\"huge\",\"longversion\",\"denied\",\"badcontent\",\"toolarge\","
              "\"conflict\",\"typeinbody\"]");
    free(text);
    json_decref(names);
}

static void test_wrong_secret_fails_the_independent_check(void **state)
{
    struct lgw_lambda_options o = base_options();
    struct lgw_credentials_provider *wrong = NULL;
    struct lgw_invocation inv;
    struct lgw_error e;
    struct lgw_dispatcher *d;

    (void)state;
    /* Proof that the fake's check can fail: the same request signed with another secret. */
    lgw_error_init(&e);
    assert_int_equal(lgw_credentials_provider_new_static(AK, "not-the-secret", TOKEN, &wrong, &e),
                     LGW_OK);
    o.credentials = wrong;
    d = lambda_new(NULL, 0, &o, &e);
    assert_non_null(d);
    assert_int_equal(call_on(d, &inv, "echo", "{}"), LGW_ECLIENT);
    assert_error(&inv, LGW_ECLIENT, 502, 403, "InvalidSignatureException");
    assert_no_secret(inv.err.message);
    lgw_invocation_release(&inv);
    lambda_free(d);
    lgw_credentials_provider_free(wrong);
    assert_int_equal(stat_int("bad_signatures"), 1);
    fake_reset(); /* so the after-test check passes */
}

static void test_logs_carry_no_secret(void **state)
{
    struct lgw_lambda_options o = base_options();
    struct lgw_invocation inv;
    struct lgw_error e;
    struct lgw_dispatcher *d;
    char path[] = "/tmp/lgw-lambda-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    char buf[8192];
    ssize_t n;

    (void)state;
    assert_true(fd >= 0);
    o.log = true;
    lgw_error_init(&e);
    fflush(stderr);
    dup2(fd, 2);
    d = lambda_new(NULL, 0, &o, &e);
    if (d) {
        call_on(d, &inv, "down500", "{\"password\":1}");
        lgw_invocation_release(&inv);
        lambda_free(d);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_non_null(d);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"event\":\"lambda_retry\""));
    assert_non_null(strstr(buf, "\"function\":\"down500\""));
    assert_no_secret(buf);
    assert_null(strstr(buf, AK));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, reset_fake, check_signatures)
        T(test_success_passes_payload_through),
        T(test_request_headers_and_body),
        T(test_event_is_accepted_with_202),
        T(test_arn_target_region_and_qualifier),
        T(test_not_found),
        T(test_throttled_then_success),
        T(test_throttled_beyond_budget_answers_at_once),
        T(test_500_then_success),
        T(test_500_gives_up_after_bounded_attempts),
        T(test_5xx_after_the_function_ran_is_not_retried),
        T(test_function_error),
        T(test_slow_answer_past_the_timeout),
        T(test_endpoint_by_host_name),
        T(test_connection_refused),
        T(test_tls_handshake_within_the_connect_timeout),
        T(test_malformed_answers),
        T(test_service_errors_map_to_codes),
        T(test_allow_list_denies_without_calling),
        T(test_pattern_match),
        T(test_bad_names_never_reach_the_url),
        T(test_check_sends_dry_run_only_when_allowed),
        T(test_payload_limits),
        T(test_keep_alive_reuses_connections),
        T(test_concurrent_calls_do_not_queue),
        T(test_drain_waits_then_refuses),
        T(test_h1_chunked_answer),
        T(test_h1_answer_delimited_by_the_close),
        T(test_h1_answer_in_tiny_pieces),
        T(test_h1_interim_answers),
        T(test_h1_stale_kept_connection),
        T(test_h1_no_answer_at_all),
        T(test_h1_answer_cut_short),
        T(test_h1_large_request_body),
        T(test_idle_connections_are_closed),
        T(test_idle_count_after_closes),
        T(test_h1_answer_before_the_request_ended),
        T(test_h1_early_answer_then_reset_on_a_kept_connection),
        T(test_no_allow_list_is_refused),
        T(test_bad_configuration_is_refused),
        T(test_functions_list),
        T(test_wrong_secret_fails_the_independent_check),
        T(test_logs_carry_no_secret),
#undef T
    };

    int failed = cmocka_run_group_tests_name("lambda", tests, group_setup, group_teardown);

    /* Again, with the lanes driven by loops of the test's own, as the server runs them. */
    driven = true;
    failed += cmocka_run_group_tests_name("lambda, lanes driven by loops", tests, group_setup,
                                          group_teardown);
    return failed;
}
