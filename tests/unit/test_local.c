/* test_local.c - the local dispatcher: sync and async dispatch, errors, timeout, reserved
 * concurrency, queue limits, drain, Tail logs, config and context. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "local.h"
#include "registry.h"

/* ---- test handlers ---- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open;
static int gate_waiting;
static int ran;

static json_t *gate(struct lgw_exec_ctx *ctx)
{
    pthread_mutex_lock(&gate_lock);
    gate_waiting++;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    gate_waiting--;
    ran++;
    pthread_mutex_unlock(&gate_lock);
    return json_incref(lgw_event(ctx));
}

static void gate_reset(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = 0;
    ran = 0;
    pthread_mutex_unlock(&gate_lock);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static void gate_wait_for(int n)
{
    pthread_mutex_lock(&gate_lock);
    while (gate_waiting < n)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static json_t *counter(struct lgw_exec_ctx *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&gate_lock);
    ran++;
    pthread_mutex_unlock(&gate_lock);
    return json_null();
}

static json_t *big(struct lgw_exec_ctx *ctx)
{
    json_int_t n = json_integer_value(json_object_get(lgw_event(ctx), "n"));
    char *s = malloc((size_t)n + 1);
    json_t *r;

    memset(s, 'x', (size_t)n);
    s[n] = '\0';
    r = json_string(s);
    free(s);
    return r;
}

static json_t *context_of(struct lgw_exec_ctx *ctx)
{
    const struct lgw_lambda_context *c = lgw_context(ctx);

    lgw_log(ctx, "hello from %s", c->function_name);
    lgw_notify(ctx, "Warning", "just telling");
    return json_pack("{s:s,s:s,s:s,s:s,s:i,s:b,s:O?,s:s?,s:s?}", "requestId", c->request_id,
                     "function", c->function_name, "version", c->function_version, "arn",
                     c->invoked_arn, "memory", (int)c->memory_mb, "timeLeft",
                     /* the deadline is rounded up to the next ms */
                     lgw_remaining_ms(ctx) > 0 && lgw_remaining_ms(ctx) <= 3001, "cc",
                     c->client_context, "fromEnv", lgw_config_get(ctx, "FROM_ENV", NULL),
                     "fromProcess", lgw_config_get(ctx, "LGW_TEST_PROCESS_VAR", "dflt"));
}

/* Returns success just after its deadline: Lambda would have stopped it. */
static json_t *overrun(struct lgw_exec_ctx *ctx)
{
    while (lgw_remaining_ms(ctx) > 0)
        nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
    return json_string("finished late");
}

static json_t *returns_nothing(struct lgw_exec_ctx *ctx)
{
    (void)ctx;
    return NULL;
}

static json_t *nap20(struct lgw_exec_ctx *ctx)
{
    nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    return json_incref(lgw_event(ctx));
}

static const struct lgw_handler_def test_handlers[] = {
    {LGW_HANDLER_ABI, "gate", gate, NULL, 0},
    {LGW_HANDLER_ABI, "counter", counter, NULL, 0},
    {LGW_HANDLER_ABI, "big", big, NULL, 0},
    {LGW_HANDLER_ABI, "ctx", context_of, NULL, 0},
    {LGW_HANDLER_ABI, "nothing", returns_nothing, NULL, 0},
    {LGW_HANDLER_ABI, "overrun", overrun, NULL, 0},
    {LGW_HANDLER_ABI, "nap20", nap20, NULL, 0},
    {LGW_HANDLER_ABI, "nap20i", nap20, NULL, LGW_HANDLER_INLINE},
    {0, NULL, NULL, NULL, 0},
};

/* ---- fixture ---- */

struct fx {
    struct lgw_registry *reg;
    struct lgw_dispatcher *d;
};

static struct lgw_dispatcher *make(struct fx *f, struct lgw_function_config *fns, size_t n,
                                   const struct lgw_local_options *opt)
{
    struct lgw_error e;

    lgw_error_init(&e);
    f->d = lgw_local_new(f->reg, fns, n, opt, &e);
    assert_non_null(f->d);
    return f->d;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];

    f->reg = lgw_registry_new();
    assert_int_equal(
        lgw_registry_add_table(f->reg, lgw_builtin_handlers, "builtin", err, sizeof(err)), 0);
    assert_int_equal(lgw_registry_add_table(f->reg, test_handlers, "test", err, sizeof(err)), 0);
    gate_reset();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    gate_release();
    lgw_dispatcher_free(f->d);
    lgw_registry_free(f->reg);
    free(f);
    return 0;
}

static const struct lgw_local_options all = {.serve_all_handlers = true};

/* Runs fn synchronously with the event text; returns the code, result in inv. */
static enum lgw_errc call(struct lgw_dispatcher *d, struct lgw_invocation *inv, const char *fn,
                          const char *event)
{
    json_t *ev = json_loads(event, JSON_DECODE_ANY, NULL);
    enum lgw_errc rc;

    lgw_invocation_init(inv);
    inv->function = fn;
    inv->event = ev;
    rc = lgw_dispatch_wait(d, inv);
    json_decref(ev);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- tests ---- */

static void test_echo_sync(void **state)
{
    struct fx *f = *state;
    struct lgw_invocation inv;

    make(f, NULL, 0, &all);
    assert_int_equal(call(f->d, &inv, "echo", "{\"a\":[1,0.1,\"x\"]}"), LGW_OK);
    assert_string_equal(inv.result, "{\"a\":[1,0.1,\"x\"]}");
    assert_int_equal(inv.result_len, strlen(inv.result));
    assert_string_equal(inv.executed_version, "$LATEST");
    lgw_invocation_release(&inv);
    /* any JSON value is an event, as in Lambda */
    assert_int_equal(call(f->d, &inv, "echo", "\"text\""), LGW_OK);
    assert_string_equal(inv.result, "\"text\"");
    lgw_invocation_release(&inv);
}

static void test_not_found_and_qualifiers(void **state)
{
    struct fx *f = *state;
    struct lgw_function_config c;
    struct lgw_invocation inv;
    json_t *ev = json_object();

    lgw_function_config_init(&c);
    strcpy(c.name, "orders");
    strcpy(c.handler, "echo");
    strcpy(c.aliases[0], "live");
    c.naliases = 1;
    make(f, &c, 1,
         &(struct lgw_local_options){.region = "eu-west-1", .account_id = "123456789012"});
    assert_int_equal(call(f->d, &inv, "nope", "{}"), LGW_ENOTFOUND);
    assert_int_equal(inv.err.status, 404);
    assert_string_equal(inv.err.message,
                        "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:nope");
    lgw_invocation_release(&inv);
    /* without serve_all_handlers only configured functions are served */
    assert_int_equal(call(f->d, &inv, "echo", "{}"), LGW_ENOTFOUND);
    lgw_invocation_release(&inv);

    lgw_invocation_init(&inv);
    inv.function = "orders";
    inv.qualifier = "live";
    inv.event = ev;
    assert_int_equal(lgw_dispatch_wait(f->d, &inv), LGW_OK);
    lgw_invocation_release(&inv);
    lgw_invocation_init(&inv);
    inv.function = "orders";
    inv.qualifier = "dev";
    inv.event = ev;
    assert_int_equal(lgw_dispatch_wait(f->d, &inv), LGW_ENOTFOUND);
    assert_string_equal(
        inv.err.message,
        "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:orders:dev");
    lgw_invocation_release(&inv);
    json_decref(ev);
}

static void test_function_error_payload(void **state)
{
    struct fx *f = *state;
    struct lgw_invocation inv;
    json_t *p;

    make(f, NULL, 0, &all);
    assert_int_equal(call(f->d, &inv, "fail", "{\"message\":\"bad order\"}"), LGW_EEXECUTE);
    assert_int_equal(inv.err.status, 502);
    assert_null(inv.result);
    p = json_loads(inv.err.payload, 0, NULL);
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "errorType")), "ValueError");
    assert_string_equal(json_string_value(json_object_get(p, "errorMessage")), "bad order");
    assert_string_equal(json_string_value(json_object_get(p, "requestId")), inv.request_id);
    assert_true(json_is_array(json_object_get(p, "stackTrace")));
    json_decref(p);
    lgw_invocation_release(&inv);

    assert_int_equal(call(f->d, &inv, "nothing", "{}"), LGW_EEXECUTE);
    assert_non_null(strstr(inv.err.payload, "Runtime.InvalidResponse"));
    lgw_invocation_release(&inv);
}

static void test_timeout(void **state)
{
    struct fx *f = *state;
    struct lgw_function_config c;
    struct lgw_invocation inv;
    double t0;

    lgw_function_config_init(&c);
    strcpy(c.name, "slow");
    strcpy(c.handler, "sleep");
    c.timeout_ms = 200;
    make(f, &c, 1, NULL);
    t0 = now_s();
    assert_int_equal(call(f->d, &inv, "slow", "{\"ms\":5000}"), LGW_ETIMEDOUT);
    /* answered at the deadline, not when the handler gives up */
    assert_true(now_s() - t0 < 2.0);
    assert_int_equal(inv.err.status, 504);
    assert_non_null(strstr(inv.err.payload, "\"errorType\":\"Sandbox.Timedout\""));
    assert_non_null(strstr(inv.err.payload, "Task timed out after 0.20 seconds"));
    assert_non_null(strstr(inv.err.payload, inv.request_id));
    lgw_invocation_release(&inv);
    /* a call under the limit still works */
    assert_int_equal(call(f->d, &inv, "slow", "{\"ms\":10}"), LGW_OK);
    assert_string_equal(inv.result, "{\"slept\":10}");
    lgw_invocation_release(&inv);
}

struct bg {
    struct lgw_dispatcher *d;
    struct lgw_invocation inv;
    json_t *ev;
    const char *fn;
    pthread_t t;
};

static void *bg_main(void *arg)
{
    struct bg *b = arg;
    lgw_dispatch_wait(b->d, &b->inv);
    return NULL;
}

static void bg_start(struct bg *b, struct lgw_dispatcher *d, const char *fn)
{
    b->d = d;
    b->fn = fn;
    b->ev = json_object();
    lgw_invocation_init(&b->inv);
    b->inv.function = fn;
    b->inv.event = b->ev;
    pthread_create(&b->t, NULL, bg_main, b);
}

static void bg_join(struct bg *b)
{
    pthread_join(b->t, NULL);
    json_decref(b->ev);
    lgw_invocation_release(&b->inv);
}

static void flag_done(struct lgw_invocation *inv, void *arg)
{
    (void)inv;
    __atomic_store_n((int *)arg, 1, __ATOMIC_SEQ_CST);
}

static void test_deadlines_out_of_order(void **state)
{
    struct fx *f = *state;
    struct lgw_function_config c[2];
    struct lgw_invocation inv, first;
    json_t *ev = json_pack("{s:i}", "ms", 3000);
    int done = 0;
    double t0;

    for (int i = 0; i < 2; i++) {
        lgw_function_config_init(&c[i]);
        strcpy(c[i].handler, "sleep");
    }
    strcpy(c[0].name, "long");
    c[0].timeout_ms = 1500;
    strcpy(c[1].name, "short");
    c[1].timeout_ms = 100;
    make(f, c, 2, NULL);
    /* the later call has the earlier deadline: it must not wait behind the first one's */
    lgw_invocation_init(&first);
    first.function = "long";
    first.event = ev;
    lgw_dispatch(f->d, &first, flag_done, &done);
    nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    t0 = now_s();
    lgw_invocation_init(&inv);
    inv.function = "short";
    inv.event = ev;
    assert_int_equal(lgw_dispatch_wait(f->d, &inv), LGW_ETIMEDOUT);
    assert_true(now_s() - t0 < 1.0);
    lgw_invocation_release(&inv);
    while (!__atomic_load_n(&done, __ATOMIC_SEQ_CST))
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    assert_int_equal(first.err.code, LGW_ETIMEDOUT);
    lgw_invocation_release(&first);
    json_decref(ev);
}

static void test_late_success_is_still_a_timeout(void **state)
{
    struct fx *f = *state;
    struct lgw_function_config c;
    struct lgw_invocation inv;

    lgw_function_config_init(&c);
    strcpy(c.name, "late");
    strcpy(c.handler, "overrun");
    c.timeout_ms = 50;
    make(f, &c, 1, NULL);
    /* whichever notices first, the timer or the returning worker, the answer is the timeout */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(call(f->d, &inv, "late", "{}"), LGW_ETIMEDOUT);
        assert_null(inv.result);
        lgw_invocation_release(&inv);
    }
}

static int dispatch_completes_before_return(struct lgw_dispatcher *d, const char *fn,
                                            size_t event_size)
{
    struct lgw_invocation inv;
    json_t *ev = json_object();
    int done = 0, at_return;

    lgw_invocation_init(&inv);
    inv.function = fn;
    inv.event = ev;
    inv.event_size = event_size;
    lgw_dispatch(d, &inv, flag_done, &done);
    at_return = __atomic_load_n(&done, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&done, __ATOMIC_SEQ_CST))
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    assert_int_equal(inv.err.code, LGW_OK);
    assert_string_equal(inv.result, "{}");
    lgw_invocation_release(&inv);
    json_decref(ev);
    return at_return;
}

static void test_inline_handlers_run_on_the_caller(void **state)
{
    struct fx *f = *state;
    struct lgw_function_config c[3];

    for (int i = 0; i < 3; i++)
        lgw_function_config_init(&c[i]);
    strcpy(c[0].name, "napin");
    strcpy(c[0].handler, "nap20");
    c[0].run_inline = 1; /* the function's setting beats the handler's (absent) flag */
    strcpy(c[1].name, "napout");
    strcpy(c[1].handler, "nap20i");
    c[1].run_inline = 0; /* and the other way round (20 ms: still running when dispatch returns) */
    strcpy(c[2].name, "echo");
    make(f, c, 3, NULL);
    /* echo carries LGW_HANDLER_INLINE: answered before lgw_dispatch returns */
    assert_true(dispatch_completes_before_return(f->d, "echo", 100));
    assert_true(dispatch_completes_before_return(f->d, "napin", 100));
    /* a large event goes to the pool even for an inline handler */
    assert_false(dispatch_completes_before_return(f->d, "napin", LGW_INLINE_EVENT_MAX + 1));
    assert_false(dispatch_completes_before_return(f->d, "napout", 100));
}

static void test_reserved_concurrency(void **state)
{
    struct fx *f = *state;
    struct lgw_function_config c;
    struct lgw_invocation inv;
    struct bg b[2];

    lgw_function_config_init(&c);
    strcpy(c.name, "gated");
    strcpy(c.handler, "gate");
    c.concurrency = 2;
    make(f, &c, 1, NULL);
    bg_start(&b[0], f->d, "gated");
    bg_start(&b[1], f->d, "gated");
    gate_wait_for(2);
    assert_int_equal(call(f->d, &inv, "gated", "{}"), LGW_ETHROTTLED);
    assert_int_equal(inv.err.status, 429);
    assert_string_equal(inv.err.aws_type, "TooManyRequestsException");
    assert_string_equal(inv.err.reason, "ReservedFunctionConcurrentInvocationLimitExceeded");
    assert_true(inv.err.retry_after >= 1);
    lgw_invocation_release(&inv);
    gate_release();
    bg_join(&b[0]);
    bg_join(&b[1]);
    assert_int_equal(b[0].inv.err.code, LGW_OK);
    /* room again once they finished */
    assert_int_equal(call(f->d, &inv, "gated", "{}"), LGW_OK);
    lgw_invocation_release(&inv);
}

static void test_pool_runs_calls_concurrently(void **state)
{
    struct fx *f = *state;
    struct bg b[16];

    make(f, NULL, 0, &all);
    for (int i = 0; i < 16; i++)
        bg_start(&b[i], f->d, "gate");
    /* all 16 are inside the handler at once: the pool grew to run them together */
    gate_wait_for(16);
    gate_release();
    for (int i = 0; i < 16; i++) {
        bg_join(&b[i]);
    }
    assert_int_equal(ran, 16);
}

static void test_sync_queue_limit(void **state)
{
    struct fx *f = *state;
    struct bg b[3];
    struct lgw_invocation inv;
    json_t *ev = json_object();
    int done = 0;

    make(f, NULL, 0,
         &(struct lgw_local_options){
             .serve_all_handlers = true, .max_workers = 1, .sync_queue_max = 2});
    bg_start(&b[0], f->d, "gate");
    gate_wait_for(1); /* the one worker is busy */
    bg_start(&b[1], f->d, "gate");
    bg_start(&b[2], f->d, "gate");
    /* give both time to be queued behind it */
    nanosleep(&(struct timespec){.tv_nsec = 300000000}, NULL);
    lgw_invocation_init(&inv);
    inv.function = "gate";
    inv.event = ev;
    lgw_dispatch(f->d, &inv, flag_done, &done);
    /* refused at once, without waiting for a worker */
    assert_int_equal(done, 1);
    assert_int_equal(inv.err.code, LGW_ETHROTTLED);
    assert_string_equal(inv.err.reason, "ConcurrentInvocationLimitExceeded");
    lgw_invocation_release(&inv);
    gate_release();
    for (int i = 0; i < 3; i++) {
        bg_join(&b[i]);
    }
    json_decref(ev);
}

static void test_async_runs_and_drain_waits(void **state)
{
    struct fx *f = *state;
    struct lgw_invocation inv;
    json_t *ev = json_object();

    make(f, NULL, 0, &all);
    for (int i = 0; i < 50; i++) {
        lgw_invocation_init(&inv);
        inv.function = "counter";
        inv.event = ev;
        assert_int_equal(lgw_dispatch_async_wait(f->d, &inv), LGW_OK);
        lgw_invocation_release(&inv);
    }
    lgw_dispatcher_drain(f->d);
    assert_int_equal(ran, 50); /* drain returned only after every accepted event ran */
    lgw_invocation_init(&inv);
    inv.function = "counter";
    inv.event = ev;
    assert_int_equal(lgw_dispatch_async_wait(f->d, &inv), LGW_ESHUTDOWN);
    assert_int_equal(inv.err.status, 503);
    lgw_invocation_release(&inv);
    assert_int_equal(call(f->d, &inv, "echo", "{}"), LGW_ESHUTDOWN);
    lgw_invocation_release(&inv);
    json_decref(ev);
}

static void test_async_queue_full(void **state)
{
    struct fx *f = *state;
    struct lgw_invocation inv;
    json_t *ev = json_object();
    int accepted = 0, refused = 0;

    make(f, NULL, 0,
         &(struct lgw_local_options){
             .serve_all_handlers = true, .max_workers = 1, .async_queue_max = 3});
    for (int i = 0; i < 10; i++) {
        lgw_invocation_init(&inv);
        inv.function = "gate";
        inv.event = ev;
        if (lgw_dispatch_async_wait(f->d, &inv) == LGW_OK) {
            accepted++;
        } else {
            assert_int_equal(inv.err.code, LGW_ETHROTTLED);
            assert_string_equal(inv.err.reason, "EventQueueFull");
            refused++;
        }
        lgw_invocation_release(&inv);
        if (i == 0)
            gate_wait_for(1); /* the first one occupies the only worker */
    }
    assert_int_equal(accepted, 4); /* one running + three queued */
    assert_int_equal(refused, 6);
    gate_release();
    lgw_dispatcher_drain(f->d);
    assert_int_equal(ran, 4);
    json_decref(ev);
}

static void test_async_unknown_function(void **state)
{
    struct fx *f = *state;
    struct lgw_invocation inv;
    json_t *ev = json_object();

    make(f, NULL, 0, &all);
    lgw_invocation_init(&inv);
    inv.function = "missing";
    inv.event = ev;
    assert_int_equal(lgw_dispatch_async_wait(f->d, &inv), LGW_ENOTFOUND);
    lgw_invocation_release(&inv);
    json_decref(ev);
}

static void test_context_config_and_tail(void **state)
{
    struct fx *f = *state;
    struct lgw_function_config c;
    struct lgw_invocation inv;
    json_t *ev = json_object(), *res;
    unsigned char decoded[8192];
    int n;

    setenv("LGW_TEST_PROCESS_VAR", "from-process", 1);
    lgw_function_config_init(&c);
    strcpy(c.name, "ctx");
    c.memory_mb = 512;
    c.environment = json_pack("{s:s}", "FROM_ENV", "configured");
    make(f, &c, 1, NULL);
    lgw_function_config_release(&c);
    lgw_invocation_init(&inv);
    inv.function = "ctx";
    inv.event = ev;
    inv.log_tail = true;
    inv.client_context = "{\"custom\":{\"k\":\"v\"}}";
    assert_int_equal(lgw_dispatch_wait(f->d, &inv), LGW_OK);
    res = json_loads(inv.result, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(res, "requestId")), inv.request_id);
    assert_string_equal(json_string_value(json_object_get(res, "function")), "ctx");
    assert_string_equal(json_string_value(json_object_get(res, "version")), "$LATEST");
    assert_string_equal(json_string_value(json_object_get(res, "arn")),
                        "arn:aws:lambda:us-east-1:000000000000:function:ctx");
    assert_int_equal(json_integer_value(json_object_get(res, "memory")), 512);
    assert_true(json_is_true(json_object_get(res, "timeLeft")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(res, "cc"), "custom"), "k")),
                        "v");
    assert_string_equal(json_string_value(json_object_get(res, "fromEnv")), "configured");
    assert_string_equal(json_string_value(json_object_get(res, "fromProcess")), "from-process");
    json_decref(res);
    assert_non_null(inv.log_tail_b64);
    n = EVP_DecodeBlock(decoded, (const unsigned char *)inv.log_tail_b64,
                        (int)strlen(inv.log_tail_b64));
    assert_true(n > 0);
    decoded[n] = '\0';
    assert_non_null(strstr((char *)decoded, "START RequestId: "));
    assert_non_null(strstr((char *)decoded, "hello from ctx"));
    assert_non_null(strstr((char *)decoded, "notify Warning: just telling"));
    assert_non_null(strstr((char *)decoded, "END RequestId: "));
    assert_non_null(strstr((char *)decoded, "REPORT RequestId: "));
    assert_non_null(strstr((char *)decoded, "Memory Size: 512 MB"));
    lgw_invocation_release(&inv);
    unsetenv("LGW_TEST_PROCESS_VAR");
    json_decref(ev);
}

static void test_response_too_large(void **state)
{
    struct fx *f = *state;
    struct lgw_invocation inv;
    char ev[64];
    struct lgw_function_config c;

    /* building and encoding 6 MiB is slow under sanitizers: no timeout in the way */
    lgw_function_config_init(&c);
    strcpy(c.name, "big");
    c.timeout_ms = 120000;
    make(f, &c, 1, NULL);
    snprintf(ev, sizeof(ev), "{\"n\":%u}", LGW_RESPONSE_MAX); /* + 2 quotes: over */
    assert_int_equal(call(f->d, &inv, "big", ev), LGW_EEXECUTE);
    assert_non_null(strstr(inv.err.payload, "Function.ResponseSizeTooLarge"));
    lgw_invocation_release(&inv);
    snprintf(ev, sizeof(ev), "{\"n\":%u}", LGW_RESPONSE_MAX - 2); /* exactly at the limit */
    assert_int_equal(call(f->d, &inv, "big", ev), LGW_OK);
    assert_int_equal(inv.result_len, LGW_RESPONSE_MAX);
    lgw_invocation_release(&inv);
}

static void test_missing_handler_is_invalid_function(void **state)
{
    struct fx *f = *state;
    struct lgw_function_config c;
    struct lgw_error e;

    lgw_function_config_init(&c);
    strcpy(c.name, "orders");
    strcpy(c.handler, "no_such_handler");
    lgw_error_init(&e);
    assert_null(lgw_local_new(f->reg, &c, 1, NULL, &e));
    assert_int_equal(e.code, LGW_EINVALID_FUNCTION);
    assert_string_equal(lgw_errc_type(e.code), "InvalidFunctionTypeError");
    assert_non_null(strstr(e.message, "no_such_handler"));
}

static void test_functions_list(void **state)
{
    struct fx *f = *state;
    json_t *a;

    make(f, NULL, 0, &all);
    a = lgw_dispatcher_functions(f->d);
    assert_true(json_array_size(a) >= 5);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "echo");
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_qualifiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_error_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadlines_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_success_is_still_a_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_handlers_run_on_the_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserved_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_runs_calls_concurrently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_queue_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_runs_and_drain_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_unknown_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_config_and_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_handler_is_invalid_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_functions_list, setup, teardown),
    };
    return cmocka_run_group_tests_name("local", tests, NULL, NULL);
}
