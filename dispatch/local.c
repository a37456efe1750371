/*
 * local.c - the local dispatcher.
 *
 * Threads: a pool of workers (grown on demand up to max_workers) runs handlers; one timer thread
 * answers calls whose handler is past its deadline with Sandbox.Timedout. A C handler cannot be
 * killed, so a timed-out handler keeps its worker until it returns and its result is dropped;
 * each job therefore owns everything the handler can touch (event reference, strings), never
 * the caller's memory, which the caller may free as soon as done has been called.
 *
 * All queues, counters and job states are guarded by one mutex: the critical sections are a few
 * pointer moves, far shorter than any handler.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD, getrusage's ru_maxrss, and clock ids */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "context.h"
#include "json.h"
#include "local.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_ANSWERED };

struct fn {
    struct lgw_function_config cfg;
    const struct lgw_handler_def *def;
    char arn[LGW_TARGET_MAX + 1]; /* unqualified ARN */
    char log_group[LGW_FUNCTION_NAME_MAX + 16];
    unsigned inflight; /* accepted sync calls plus running async ones */
    bool run_inline;   /* short, never-blocking handler: small sync calls run on the caller */
};

struct logbuf {
    char ring[LGW_LOG_TAIL_MAX];
    size_t total; /* bytes ever written; the ring holds the last min(total, size) */
};

struct local;

struct job {
    struct job *next;          /* in a queue */
    struct job *tprev, *tnext; /* in the timer list while running (sync only) */
    struct local *d;
    struct fn *fn;
    bool async;
    enum job_state state;
    unsigned refs; /* the worker's, plus the timer's while it answers a timeout (d->lock) */
    /* the caller's invocation (sync only): answered exactly once, then never touched again */
    struct lgw_invocation *inv;
    lgw_done_fn done;
    void *done_arg;
    /* what the handler sees, owned by the job */
    json_t *event;
    json_t *client_context;
    char request_id[LGW_REQUEST_ID_LEN + 1];
    char invoked_arn[LGW_TARGET_MAX + LGW_QUALIFIER_MAX + 2];
    bool log_tail;
    struct timespec deadline; /* CLOCK_MONOTONIC */
    pthread_mutex_t log_lock; /* the timer reads the log while a late handler may write it */
    struct logbuf *log;       /* allocated only when Tail is asked for */
    struct lgw_exec_ctx ctx;
};

struct queue {
    struct job *head, *tail;
    size_t len;
};

struct local {
    struct lgw_dispatcher base;
    struct lgw_local_options opt;
    char region[32];
    char account[16];
    struct fn *fns;
    size_t nfns;

    pthread_mutex_t lock;
    pthread_cond_t work;  /* a job was queued, capacity freed, or stop */
    pthread_cond_t idle;  /* a job finished: drain re-checks */
    pthread_cond_t tcond; /* the timer list changed (monotonic clock) */
    struct queue syncq, asyncq;
    struct job *timers;      /* running sync jobs, by deadline */
    struct job *timers_tail; /* the latest deadline: where new jobs almost always go */
    pthread_t *workers;
    unsigned nworkers, nidle, active;
    unsigned nwake; /* signals sent to idle workers that have not woken yet */
    pthread_t timer;
    bool timer_started;
    bool draining, stop, drained;
};

static void q_push(struct queue *q, struct job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->len++;
}

static struct job *q_pop(struct queue *q)
{
    struct job *j = q->head;

    if (j) {
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
    }
    return j;
}

/* Removes and returns the first async job whose function has room under its concurrency. */
static struct job *q_pop_ready_async(struct queue *q)
{
    struct job *prev = NULL;

    for (struct job *j = q->head; j; prev = j, j = j->next) {
        if (j->fn->cfg.concurrency && j->fn->inflight >= j->fn->cfg.concurrency)
            continue;
        if (prev)
            prev->next = j->next;
        else
            q->head = j->next;
        if (q->tail == j)
            q->tail = prev;
        q->len--;
        return j;
    }
    return NULL;
}

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? -1 : 1;
    return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

/* Deadlines are mostly set in increasing order (now + timeout), so the place for a new one is
 * searched from the tail: constant time in the common case, even with 1,000 calls running. */
static void timer_insert(struct local *d, struct job *j)
{
    struct job *after = d->timers_tail;

    while (after && ts_cmp(&after->deadline, &j->deadline) > 0)
        after = after->tprev;
    j->tprev = after;
    j->tnext = after ? after->tnext : d->timers;
    if (j->tnext)
        j->tnext->tprev = j;
    else
        d->timers_tail = j;
    if (after)
        after->tnext = j;
    else
        d->timers = j;
    if (d->timers == j)
        pthread_cond_signal(&d->tcond);
}

static void timer_remove(struct local *d, struct job *j)
{
    if (j->tprev)
        j->tprev->tnext = j->tnext;
    else if (d->timers == j)
        d->timers = j->tnext;
    else
        return; /* not in the list */
    if (j->tnext)
        j->tnext->tprev = j->tprev;
    else
        d->timers_tail = j->tprev;
    j->tprev = j->tnext = NULL;
}

static struct fn *find_fn(struct local *d, const char *name)
{
    for (size_t i = 0; i < d->nfns; i++)
        if (strcmp(d->fns[i].cfg.name, name) == 0)
            return &d->fns[i];
    return NULL;
}

static bool qualifier_known(const struct fn *f, const char *q)
{
    if (!q || !*q || strcmp(q, "$LATEST") == 0)
        return true;
    for (unsigned i = 0; i < f->cfg.naliases; i++)
        if (strcmp(f->cfg.aliases[i], q) == 0)
            return true;
    return false;
}

/* Finds the function for inv, or sets inv->err (404 with AWS's message) and returns NULL. */
static struct fn *resolve(struct local *d, struct lgw_invocation *inv)
{
    struct fn *f = find_fn(d, inv->function);

    if (f && qualifier_known(f, inv->qualifier))
        return f;
    if (inv->qualifier && *inv->qualifier)
        lgw_error_set(&inv->err, LGW_ENOTFOUND,
                      "Function not found: arn:aws:lambda:%s:%s:function:%s:%s", d->region,
                      d->account, inv->function, inv->qualifier);
    else
        lgw_error_set(&inv->err, LGW_ENOTFOUND,
                      "Function not found: arn:aws:lambda:%s:%s:function:%s", d->region, d->account,
                      inv->function);
    return NULL;
}

static void throttle(struct lgw_invocation *inv, const char *reason, const char *msg)
{
    lgw_error_set(&inv->err, LGW_ETHROTTLED, "%s", msg);
    snprintf(inv->err.reason, sizeof(inv->err.reason), "%s", reason);
    inv->err.retry_after = 1;
}

/* ---- the execution context the local host provides ---- */

static void log_write(struct logbuf *b, const char *s, size_t n)
{
    /* Only the last LGW_LOG_TAIL_MAX bytes are ever returned, so older bytes are overwritten. */
    if (n > sizeof(b->ring)) {
        s += n - sizeof(b->ring);
        b->total += n - sizeof(b->ring);
        n = sizeof(b->ring);
    }
    while (n) {
        size_t at = b->total % sizeof(b->ring);
        size_t k = sizeof(b->ring) - at < n ? sizeof(b->ring) - at : n;
        memcpy(b->ring + at, s, k);
        b->total += k;
        s += k;
        n -= k;
    }
}

static char *log_tail_b64(const struct logbuf *b)
{
    size_t n = b->total < sizeof(b->ring) ? b->total : sizeof(b->ring);
    size_t start = b->total < sizeof(b->ring) ? 0 : b->total % sizeof(b->ring);
    unsigned char lin[LGW_LOG_TAIL_MAX];
    char *out;

    for (size_t i = 0; i < n; i++)
        lin[i] = (unsigned char)b->ring[(start + i) % sizeof(b->ring)];
    out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, lin, (int)n);
    return out;
}

static void iso_time(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);

    snprintf(out + n, cap - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* Writes one log line to the invocation's log when Tail was asked for (nobody else reads it);
 * the function's own lines (echo = true) are also copied to stderr when function_logs is on. */
static void job_log_raw(struct job *j, const char *line, size_t len, bool echo)
{
    if (j->log_tail) {
        pthread_mutex_lock(&j->log_lock);
        log_write(j->log, line, len);
        log_write(j->log, "\n", 1);
        pthread_mutex_unlock(&j->log_lock);
    }
    if (echo && j->d->opt.function_logs)
        fprintf(stderr, "[%s] %.*s\n", j->fn->cfg.name, (int)len, line);
}

static struct job *job_of(struct lgw_exec_ctx *ctx)
{
    return (struct job *)((char *)ctx - offsetof(struct job, ctx));
}

static const char *ctx_config_get(struct lgw_exec_ctx *ctx, const char *key)
{
    json_t *v = json_object_get(job_of(ctx)->fn->cfg.environment, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void ctx_log(struct lgw_exec_ctx *ctx, const char *line, size_t len)
{
    struct job *j = job_of(ctx);
    char buf[LGW_LOG_LINE_MAX + 128];
    char when[32];
    int n;

    if (!j->log_tail && !j->d->opt.function_logs)
        return; /* no reader for the line */
    iso_time(when, sizeof(when));
    /* The shape Lambda's managed runtimes give a log line: time, request id, level, text. */
    n = snprintf(buf, sizeof(buf), "%s\t%s\tINFO\t%.*s", when, j->request_id, (int)len, line);
    if (n > 0)
        job_log_raw(j, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, true);
}

static void ctx_notify(struct lgw_exec_ctx *ctx, const char *type, const char *message)
{
    struct job *j = job_of(ctx);
    char buf[LGW_LOG_LINE_MAX + 128];
    int n;

    lgw_notice_emit(&(struct lgw_notice){.error_type = type,
                                         .message = message,
                                         .function = j->fn->cfg.name,
                                         .request_id = j->request_id});
    n = snprintf(buf, sizeof(buf), "%s\t%s\tERROR\tnotify %s: %s", "", j->request_id, type,
                 message);
    if (n > 0)
        job_log_raw(j, buf + 1, ((size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1) - 1, true);
}

static const struct lgw_exec_ctx_ops local_ctx_ops = {
    .config_get = ctx_config_get,
    .notify = ctx_notify,
    .log = ctx_log,
};

/* ---- jobs ---- */

static void job_free(struct job *j)
{
    if (!j)
        return;
    json_decref(j->event);
    json_decref(j->client_context);
    lgw_exec_ctx_release(&j->ctx);
    pthread_mutex_destroy(&j->log_lock);
    free(j->log);
    free(j);
}

static struct job *job_new(struct local *d, struct fn *f, struct lgw_invocation *inv, bool async)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    pthread_mutex_init(&j->log_lock, NULL);
    j->refs = 1;
    j->d = d;
    j->fn = f;
    j->async = async;
    j->event = json_incref(inv->event ? inv->event : NULL);
    if (!j->event)
        j->event = json_object();
    if (inv->client_context)
        j->client_context = json_loads(inv->client_context, JSON_DECODE_ANY, NULL);
    memcpy(j->request_id, inv->request_id, sizeof(j->request_id));
    if (inv->qualifier && *inv->qualifier)
        snprintf(j->invoked_arn, sizeof(j->invoked_arn), "%s:%s", f->arn, inv->qualifier);
    else
        snprintf(j->invoked_arn, sizeof(j->invoked_arn), "%s", f->arn);
    j->log_tail = inv->log_tail && !async;
    if (j->log_tail && !(j->log = calloc(1, sizeof(*j->log)))) {
        job_free(j);
        return NULL;
    }
    if (!async)
        j->inv = inv;
    if (!j->event) {
        job_free(j);
        return NULL;
    }
    return j;
}

static char *error_payload(const char *type, const char *message, const char *request_id,
                           size_t *len)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:[]}", "errorMessage", message ? message : "", "errorType",
                          type, "requestId", request_id, "stackTrace");
    char *s = o ? lgw_json_dumps(o, len) : NULL;

    json_decref(o);
    if (!s)
        *len = 0;
    return s;
}

/* Runs the handler of j on the calling worker and fills the answer into `out` (a scratch
 * invocation: the real one may already have been answered by the timer). */
static void job_run(struct job *j, struct lgw_invocation *out)
{
    struct fn *f = j->fn;
    char line[256];
    struct timespec t0, t1;
    struct rusage ru;
    json_t *res;
    double ms;
    int n;

    /* The handler's deadline is rounded up to the next millisecond so that, when it sees no
     * time left, the monotonic deadline the timer enforces (set just before) has passed too. */
    clock_gettime(CLOCK_REALTIME, &t0);
    j->ctx.ops = &local_ctx_ops;
    j->ctx.event = j->event;
    j->ctx.context = (struct lgw_lambda_context){
        .request_id = j->request_id,
        .function_name = f->cfg.name,
        .function_version = "$LATEST",
        .invoked_arn = j->invoked_arn,
        .log_group_name = f->log_group,
        .memory_mb = f->cfg.memory_mb,
        .deadline_ms =
            (int64_t)t0.tv_sec * 1000 + (t0.tv_nsec + 999999) / 1000000 + f->cfg.timeout_ms,
        .client_context = j->client_context,
    };
    if (j->log_tail) {
        n = snprintf(line, sizeof(line), "START RequestId: %s Version: $LATEST", j->request_id);
        job_log_raw(j, line, (size_t)n, false);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);

    res = f->def->fn(&j->ctx);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (res && !j->ctx.raised) {
        size_t slen = 0;
        char *s = lgw_json_dumps(res, &slen);
        if (!s) {
            lgw_error_set(&out->err, LGW_EINTERNAL, "out of memory encoding the result");
        } else if (slen > LGW_RESPONSE_MAX) {
            size_t len;
            char msg[128];
            snprintf(msg, sizeof(msg),
                     "Response payload size exceeded maximum allowed payload size (%u bytes).",
                     LGW_RESPONSE_MAX);
            char *p = error_payload("Function.ResponseSizeTooLarge", msg, j->request_id, &len);
            lgw_error_set(&out->err, LGW_EEXECUTE, "%s", msg);
            lgw_error_take_payload(&out->err, p, len);
            free(s);
        } else {
            out->result = s;
            out->result_len = slen;
        }
    } else {
        const char *type = j->ctx.raised ? j->ctx.error_type : "Runtime.InvalidResponse";
        const char *msg = j->ctx.raised ? (j->ctx.error_message ? j->ctx.error_message : "")
                                        : "the handler returned no result and raised nothing";
        size_t len;
        char *p = error_payload(type, msg, j->request_id, &len);
        char buf[LGW_LOG_LINE_MAX];
        int k;

        lgw_error_set(&out->err, LGW_EEXECUTE, "%s: %s", type, msg);
        lgw_error_take_payload(&out->err, p, len);
        k = snprintf(buf, sizeof(buf), "%s\tERROR\tInvoke Error\t%s", j->request_id, p ? p : type);
        if (k > 0)
            job_log_raw(j, buf, (size_t)k < sizeof(buf) ? (size_t)k : sizeof(buf) - 1, true);
    }
    json_decref(res);

    if (!j->log_tail)
        return;
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    getrusage(RUSAGE_THREAD, &ru); /* ru_maxrss is the process's either way; cheaper */
    n = snprintf(line, sizeof(line), "END RequestId: %s", j->request_id);
    job_log_raw(j, line, (size_t)n, false);
    n = snprintf(line, sizeof(line),
                 "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %lld ms\tMemory "
                 "Size: %u MB\tMax Memory Used: %ld MB\t",
                 j->request_id, ms, (long long)ms + 1, f->cfg.memory_mb, ru.ru_maxrss / 1024);
    job_log_raw(j, line, (size_t)n, false);
    out->log_tail_b64 = log_tail_b64(j->log);
}

/* Moves the answer from scratch into the caller's invocation and calls done. Called without the
 * lock, exactly once per sync job. */
static void answer(struct job *j, struct lgw_invocation *scratch)
{
    struct lgw_invocation *inv = j->inv;

    inv->result = scratch->result;
    inv->result_len = scratch->result_len;
    inv->log_tail_b64 = scratch->log_tail_b64;
    scratch->result = NULL;
    scratch->log_tail_b64 = NULL;
    snprintf(inv->executed_version, sizeof(inv->executed_version), "$LATEST");
    lgw_error_move(&inv->err, &scratch->err);
    j->done(inv, j->done_arg);
}

static void timeout_answer(struct job *j)
{
    struct lgw_invocation scratch;
    char msg[160];
    size_t len;

    memset(&scratch, 0, sizeof(scratch));
    lgw_error_init(&scratch.err);
    snprintf(msg, sizeof(msg), "RequestId: %s Error: Task timed out after %.2f seconds",
             j->request_id, j->fn->cfg.timeout_ms / 1000.0);
    lgw_error_set(&scratch.err, LGW_ETIMEDOUT, "%s", msg);
    {
        json_t *o = json_pack("{s:s,s:s}", "errorType", "Sandbox.Timedout", "errorMessage", msg);
        char *p = o ? lgw_json_dumps(o, &len) : NULL;
        json_decref(o);
        if (!p)
            len = 0;
        lgw_error_take_payload(&scratch.err, p, len);
    }
    if (j->log_tail) {
        struct logbuf copy;
        char line[200];
        int n = snprintf(line, sizeof(line), "%s Task timed out after %.2f seconds", j->request_id,
                         j->fn->cfg.timeout_ms / 1000.0);
        /* The handler is still running and may log: answer with a copy. */
        pthread_mutex_lock(&j->log_lock);
        copy = *j->log;
        pthread_mutex_unlock(&j->log_lock);
        log_write(&copy, line, (size_t)n);
        log_write(&copy, "\n", 1);
        scratch.log_tail_b64 = log_tail_b64(&copy);
    }
    answer(j, &scratch);
}

static void *timer_main(void *arg)
{
    struct local *d = arg;

    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        struct timespec now;
        struct job *j = d->timers;

        if (!j) {
            pthread_cond_wait(&d->tcond, &d->lock);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ts_cmp(&now, &j->deadline) < 0) {
            pthread_cond_timedwait(&d->tcond, &d->lock, &j->deadline);
            continue;
        }
        timer_remove(d, j);
        j->state = JOB_ANSWERED;
        /* The handler is still running on its worker, which may finish while the answer is
         * being made: whoever lets go of the job last frees it. */
        j->refs++;
        pthread_mutex_unlock(&d->lock);
        timeout_answer(j);
        pthread_mutex_lock(&d->lock);
        if (--j->refs == 0) {
            pthread_mutex_unlock(&d->lock);
            job_free(j);
            pthread_mutex_lock(&d->lock);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static void *worker_main(void *arg);

static void set_deadline(struct job *j)
{
    clock_gettime(CLOCK_MONOTONIC, &j->deadline);
    j->deadline.tv_sec += j->fn->cfg.timeout_ms / 1000;
    j->deadline.tv_nsec += (long)(j->fn->cfg.timeout_ms % 1000) * 1000000L;
    if (j->deadline.tv_nsec >= 1000000000L) {
        j->deadline.tv_sec++;
        j->deadline.tv_nsec -= 1000000000L;
    }
}

/* Runs j on the calling thread (see LGW_HANDLER_INLINE) and answers it. The caller has counted
 * it in f->inflight and d->active. */
static void run_inline(struct local *d, struct job *j)
{
    struct lgw_invocation scratch;
    struct timespec now;
    bool late;

    set_deadline(j);
    j->state = JOB_RUNNING;
    memset(&scratch, 0, sizeof(scratch));
    lgw_error_init(&scratch.err);
    job_run(j, &scratch);
    clock_gettime(CLOCK_MONOTONIC, &now);
    late = ts_cmp(&now, &j->deadline) >= 0;
    pthread_mutex_lock(&d->lock);
    j->fn->inflight--;
    j->state = JOB_ANSWERED;
    pthread_mutex_unlock(&d->lock);
    if (late)
        timeout_answer(j);
    else
        answer(j, &scratch);
    lgw_invocation_release(&scratch);
    job_free(j);
    pthread_mutex_lock(&d->lock);
    d->active--;
    if (d->draining)
        pthread_cond_broadcast(&d->idle);
    pthread_mutex_unlock(&d->lock);
}

/* Called with the lock held after queueing: wakes an idle worker or starts one. */
static void wake_worker(struct local *d)
{
    /* Count signals not yet taken up, so a burst of jobs wakes as many distinct workers (or
     * starts new ones) instead of signalling the same sleeping worker again. */
    if (d->nidle > d->nwake) {
        d->nwake++;
        pthread_cond_signal(&d->work);
        return;
    }
    if (d->nworkers < d->opt.max_workers) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        /* Handlers are ordinary C code; 512 KiB stacks keep 64+ workers cheap yet roomy. */
        pthread_attr_setstacksize(&attr, 512 * 1024);
        if (pthread_create(&d->workers[d->nworkers], &attr, worker_main, d) == 0)
            d->nworkers++;
        pthread_attr_destroy(&attr);
    }
}

static void *worker_main(void *arg)
{
    struct local *d = arg;

    pthread_mutex_lock(&d->lock);
    for (;;) {
        struct job *j = q_pop(&d->syncq);
        struct lgw_invocation scratch;

        if (!j) {
            j = q_pop_ready_async(&d->asyncq);
            if (j)
                j->fn->inflight++;
        }
        if (!j) {
            if (d->stop)
                break;
            d->nidle++;
            pthread_cond_wait(&d->work, &d->lock);
            d->nidle--;
            if (d->nwake)
                d->nwake--;
            continue;
        }
        d->active++;
        j->state = JOB_RUNNING;
        if (!j->async) {
            set_deadline(j);
            timer_insert(d, j);
        }
        pthread_mutex_unlock(&d->lock);

        memset(&scratch, 0, sizeof(scratch));
        lgw_error_init(&scratch.err);
        job_run(j, &scratch);

        pthread_mutex_lock(&d->lock);
        j->fn->inflight--;
        if (!j->async && j->state == JOB_RUNNING) {
            struct timespec now;
            bool late;
            clock_gettime(CLOCK_MONOTONIC, &now);
            /* A handler that returns at or after its deadline lost the race with the timer:
             * Lambda would have stopped it, so the answer is the timeout, whatever it returned
             * (the sleep example gives up at its deadline with an error of its own). */
            late = ts_cmp(&now, &j->deadline) >= 0;
            timer_remove(d, j);
            j->state = JOB_ANSWERED;
            pthread_mutex_unlock(&d->lock);
            if (late)
                timeout_answer(j);
            else
                answer(j, &scratch);
            pthread_mutex_lock(&d->lock);
        } else if (j->async && scratch.err.code != LGW_OK) {
            /* Nobody waits for an Event invocation: its failure goes to the notify sink, as
             * Lambda sends it to the function's logs and dead-letter destination. */
            lgw_notice_emit(&(struct lgw_notice){.error_type = "AsyncInvokeError",
                                                 .message = scratch.err.message,
                                                 .function = j->fn->cfg.name,
                                                 .request_id = j->request_id});
        }
        lgw_invocation_release(&scratch);
        if (--j->refs == 0)
            job_free(j); /* else the timer, still answering its timeout, frees it */
        d->active--;
        /* A finished job frees concurrency for queued async work (this worker looks for it
         * itself on the next turn; another one is woken only if more is waiting) and may end a
         * drain. Waking every idle worker here would make them all fight for the lock. */
        if (d->asyncq.len > 1)
            wake_worker(d);
        if (d->draining)
            pthread_cond_broadcast(&d->idle);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* ---- the dispatcher operations ---- */

/* Decides, with the lock held, whether a new call may be queued; if not, sets inv->err (503
 * while draining, 429 with Lambda's reason when a limit is reached) and returns false. */
static bool admit(struct local *d, const struct fn *f, struct lgw_invocation *inv, bool async)
{
    if (d->draining) {
        lgw_error_set(&inv->err, LGW_ESHUTDOWN, "the gateway is shutting down");
        return false;
    }
    if (async) {
        if (d->asyncq.len >= d->opt.async_queue_max) {
            throttle(inv, "EventQueueFull", "Rate Exceeded.");
            return false;
        }
        return true;
    }
    if (f->cfg.concurrency && f->inflight >= f->cfg.concurrency) {
        throttle(inv, "ReservedFunctionConcurrentInvocationLimitExceeded", "Rate Exceeded.");
        return false;
    }
    if (d->syncq.len >= d->opt.sync_queue_max) {
        throttle(inv, "ConcurrentInvocationLimitExceeded", "Rate Exceeded.");
        return false;
    }
    return true;
}

static void local_dispatch(struct lgw_dispatcher *base, struct lgw_invocation *inv,
                           lgw_done_fn done, void *arg)
{
    struct local *d = (struct local *)base;
    struct fn *f;
    struct job *j;

    if (!(f = resolve(d, inv)))
        goto refuse;
    if (!(j = job_new(d, f, inv, false))) {
        lgw_error_set(&inv->err, LGW_EINTERNAL, "out of memory");
        goto refuse;
    }
    j->done = done;
    j->done_arg = arg;
    pthread_mutex_lock(&d->lock);
    if (!admit(d, f, inv, false)) {
        pthread_mutex_unlock(&d->lock);
        job_free(j);
        goto refuse;
    }
    f->inflight++;
    if (f->run_inline && inv->event_size <= LGW_INLINE_EVENT_MAX) {
        d->active++;
        pthread_mutex_unlock(&d->lock);
        run_inline(d, j);
        return;
    }
    q_push(&d->syncq, j);
    wake_worker(d);
    pthread_mutex_unlock(&d->lock);
    return;
refuse:
    done(inv, arg);
}

static void local_dispatch_async(struct lgw_dispatcher *base, struct lgw_invocation *inv,
                                 lgw_done_fn done, void *arg)
{
    struct local *d = (struct local *)base;
    struct fn *f;
    struct job *j;

    if (!(f = resolve(d, inv)))
        goto out;
    if (!(j = job_new(d, f, inv, true))) {
        lgw_error_set(&inv->err, LGW_EINTERNAL, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&d->lock);
    if (!admit(d, f, inv, true)) {
        pthread_mutex_unlock(&d->lock);
        job_free(j);
        goto out;
    }
    q_push(&d->asyncq, j);
    wake_worker(d);
    pthread_mutex_unlock(&d->lock);
    snprintf(inv->executed_version, sizeof(inv->executed_version), "$LATEST");
out:
    done(inv, arg);
}

static void local_check(struct lgw_dispatcher *base, struct lgw_invocation *inv, lgw_done_fn done,
                        void *arg)
{
    struct local *d = (struct local *)base;

    if (resolve(d, inv))
        snprintf(inv->executed_version, sizeof(inv->executed_version), "$LATEST");
    done(inv, arg);
}

static json_t *local_functions(struct lgw_dispatcher *base)
{
    struct local *d = (struct local *)base;
    json_t *a = json_array();

    for (size_t i = 0; a && i < d->nfns; i++)
        json_array_append_new(a, json_string(d->fns[i].cfg.name));
    return a;
}

static void local_drain(struct lgw_dispatcher *base)
{
    struct local *d = (struct local *)base;

    pthread_mutex_lock(&d->lock);
    d->draining = true;
    while (d->syncq.len || d->asyncq.len || d->active) {
        /* Queued async jobs need a worker even if none has started yet. */
        if ((d->syncq.len || d->asyncq.len) && d->nworkers == 0)
            wake_worker(d);
        pthread_cond_wait(&d->idle, &d->lock);
    }
    d->drained = true;
    pthread_mutex_unlock(&d->lock);
}

static void local_destroy(struct lgw_dispatcher *base)
{
    struct local *d = (struct local *)base;

    if (!d->drained)
        local_drain(base);
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_broadcast(&d->work);
    pthread_cond_broadcast(&d->tcond);
    pthread_mutex_unlock(&d->lock);
    for (unsigned i = 0; i < d->nworkers; i++)
        pthread_join(d->workers[i], NULL);
    if (d->timer_started)
        pthread_join(d->timer, NULL);
    for (size_t i = 0; i < d->nfns; i++)
        lgw_function_config_release(&d->fns[i].cfg);
    free(d->fns);
    free(d->workers);
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->idle);
    pthread_cond_destroy(&d->tcond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static const struct lgw_dispatcher_ops local_ops = {
    .name = "local",
    .dispatch = local_dispatch,
    .dispatch_async = local_dispatch_async,
    .check = local_check,
    .functions = local_functions,
    .drain = local_drain,
    .destroy = local_destroy,
};

static int add_fn(struct local *d, const struct lgw_function_config *c,
                  const struct lgw_registry *reg, struct lgw_error *err)
{
    struct fn *f = &d->fns[d->nfns];
    const char *handler = c->handler[0] ? c->handler : c->name;

    memset(f, 0, sizeof(*f));
    f->def = lgw_registry_find(reg, handler);
    if (!f->def) {
        lgw_error_set(err, LGW_EINVALID_FUNCTION,
                      "InvalidFunctionTypeError: function '%s': no handler named '%s' (is its "
                      "library loaded with --handlers?)",
                      c->name, handler);
        return -1;
    }
    lgw_function_config_copy(&f->cfg, c);
    f->run_inline = c->run_inline < 0 ? (f->def->flags & LGW_HANDLER_INLINE) != 0 : c->run_inline;
    if (!f->cfg.timeout_ms)
        f->cfg.timeout_ms = LGW_DEFAULT_TIMEOUT_MS;
    if (!f->cfg.memory_mb)
        f->cfg.memory_mb = LGW_DEFAULT_MEMORY_MB;
    snprintf(f->arn, sizeof(f->arn), "arn:aws:lambda:%s:%s:function:%s", d->region, d->account,
             c->name);
    snprintf(f->log_group, sizeof(f->log_group), "/aws/lambda/%s", c->name);
    d->nfns++;
    return 0;
}

struct lgw_dispatcher *lgw_local_new(const struct lgw_registry *reg,
                                     const struct lgw_function_config *fns, size_t nfns,
                                     const struct lgw_local_options *opt, struct lgw_error *err)
{
    struct local *d = calloc(1, sizeof(*d));
    pthread_condattr_t ca;
    size_t cap = nfns + lgw_registry_count(reg);

    if (!d)
        goto nomem;
    d->base.ops = &local_ops;
    d->opt = opt ? *opt : (struct lgw_local_options){0};
    if (!d->opt.max_workers)
        d->opt.max_workers = LGW_DEFAULT_MAX_WORKERS;
    if (!d->opt.sync_queue_max)
        d->opt.sync_queue_max = LGW_DEFAULT_SYNC_QUEUE_MAX;
    if (!d->opt.async_queue_max)
        d->opt.async_queue_max = LGW_DEFAULT_ASYNC_QUEUE_MAX;
    snprintf(d->region, sizeof(d->region), "%s",
             d->opt.region ? d->opt.region : LGW_DEFAULT_REGION);
    snprintf(d->account, sizeof(d->account), "%s",
             d->opt.account_id ? d->opt.account_id : LGW_DEFAULT_ACCOUNT_ID);
    d->opt.region = d->opt.account_id = NULL; /* the caller's strings are not kept */
    d->fns = calloc(cap ? cap : 1, sizeof(*d->fns));
    d->workers = calloc(d->opt.max_workers, sizeof(*d->workers));
    if (!d->fns || !d->workers)
        goto nomem;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->idle, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->tcond, &ca);
    pthread_condattr_destroy(&ca);

    for (size_t i = 0; i < nfns; i++) {
        if (find_fn(d, fns[i].name)) {
            lgw_error_set(err, LGW_EINVALID_FUNCTION, "function '%s' is configured twice",
                          fns[i].name);
            goto fail;
        }
        if (add_fn(d, &fns[i], reg, err) < 0)
            goto fail;
    }
    if (d->opt.serve_all_handlers) {
        for (size_t i = 0; i < lgw_registry_count(reg); i++) {
            struct lgw_function_config c;
            const struct lgw_handler_def *def = lgw_registry_at(reg, i);
            if (find_fn(d, def->name))
                continue;
            lgw_function_config_init(&c);
            snprintf(c.name, sizeof(c.name), "%s", def->name);
            if (add_fn(d, &c, reg, err) < 0)
                goto fail;
        }
    }
    if (pthread_create(&d->timer, NULL, timer_main, d) != 0) {
        lgw_error_set(err, LGW_EINTERNAL, "cannot start the timer thread");
        goto fail;
    }
    d->timer_started = true;
    return &d->base;
nomem:
    lgw_error_set(err, LGW_EINTERNAL, "out of memory");
    if (d) {
        free(d->fns);
        free(d->workers);
        free(d);
    }
    return NULL;
fail:
    d->drained = true;
    local_destroy(&d->base);
    return NULL;
}
