/*
 * dispatcher.c - what every dispatcher shares: invocation set-up and release, the blocking
 * wrappers over the completion-callback interface, and function-name parsing.
 */
#include <pthread.h>
#include <sys/random.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "functions.h"

/* Random bytes for request ids from the kernel, a block at a time per thread: one getrandom()
 * per 16 ids, and no OpenSSL start-up cost (local mode never needs OpenSSL otherwise). */
#define ID_POOL 256
static _Thread_local unsigned char id_pool[ID_POOL];
static _Thread_local size_t id_pool_left;
static unsigned long id_fallback;

static void random16(unsigned char out[16])
{
    if (id_pool_left < 16) {
        ssize_t n = getrandom(id_pool, sizeof(id_pool), 0);
        if (n != (ssize_t)sizeof(id_pool)) {
            /* No entropy to be had (never on Linux >= 3.17 once booted): ids must still differ. */
            unsigned long c = __atomic_add_fetch(&id_fallback, 1, __ATOMIC_RELAXED);
            memset(out, 0, 16);
            memcpy(out, &c, sizeof(c));
            return;
        }
        id_pool_left = sizeof(id_pool);
    }
    memcpy(out, id_pool + sizeof(id_pool) - id_pool_left, 16);
    id_pool_left -= 16;
}

/* Fills out (37 bytes) with a random version-4 UUID, lower case, as Lambda's request ids. */
static void make_request_id(char out[LGW_REQUEST_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t o = 0;

    random16(b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void lgw_invocation_init(struct lgw_invocation *inv)
{
    memset(inv, 0, sizeof(*inv));
    lgw_error_init(&inv->err);
    make_request_id(inv->request_id);
}

void lgw_invocation_release(struct lgw_invocation *inv)
{
    if (!inv)
        return;
    free(inv->result);
    inv->result = NULL;
    inv->result_len = 0;
    free(inv->log_tail_b64);
    inv->log_tail_b64 = NULL;
    lgw_error_release(&inv->err);
}

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
};

static void waiter_done(struct lgw_invocation *inv, void *arg)
{
    struct waiter *w = arg;

    (void)inv;
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

typedef void (*start_fn)(struct lgw_dispatcher *, struct lgw_invocation *, lgw_done_fn, void *);

static enum lgw_errc wait_for(struct lgw_dispatcher *d, struct lgw_invocation *inv, start_fn start)
{
    struct waiter w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

    start(d, inv, waiter_done, &w);
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return inv->err.code;
}

enum lgw_errc lgw_dispatch_wait(struct lgw_dispatcher *d, struct lgw_invocation *inv)
{
    return wait_for(d, inv, d->ops->dispatch);
}

enum lgw_errc lgw_dispatch_async_wait(struct lgw_dispatcher *d, struct lgw_invocation *inv)
{
    return wait_for(d, inv, d->ops->dispatch_async);
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static bool span_valid(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char(s[i]))
            return false;
    return true;
}

bool lgw_function_name_valid(const char *name)
{
    return name && span_valid(name, strlen(name), LGW_FUNCTION_NAME_MAX);
}

bool lgw_qualifier_valid(const char *q)
{
    if (!q)
        return false;
    if (strcmp(q, "$LATEST") == 0)
        return true;
    return span_valid(q, strlen(q), LGW_QUALIFIER_MAX);
}

#define NAME_PATTERN                                                                               \
    "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?"      \
    "([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"

static enum lgw_errc bad_name(struct lgw_error *err, const char *s, const char *why)
{
    /* AWS answers a malformed FunctionName with a ValidationException naming the pattern. */
    lgw_error_set(err, LGW_EBADREQUEST,
                  "1 validation error detected: Value '%.80s%s' at 'functionName' failed to "
                  "satisfy constraint: %s",
                  s, strlen(s) > 80 ? "..." : "", why);
    snprintf(err->aws_type, sizeof(err->aws_type), "ValidationException");
    return LGW_EBADREQUEST;
}

static bool all_digits(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool copy_span(char *dst, size_t cap, const char *s, size_t len)
{
    if (len >= cap)
        return false;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

enum lgw_errc lgw_function_name_parse(const char *s, struct lgw_function_ref *ref,
                                      struct lgw_error *err)
{
    const char *part[9];
    size_t plen[9];
    size_t n = 0, len;
    const char *p, *name, *qual = NULL;
    size_t name_len, qual_len = 0;

    memset(ref, 0, sizeof(*ref));
    if (!s || !*s)
        return bad_name(err, s ? s : "", "Member must have length greater than or equal to 1");
    len = strlen(s);
    if (len > 256)
        return bad_name(err, s, "Member must have length less than or equal to 256");
    for (p = s;;) {
        const char *c = strchr(p, ':');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (n == 9)
            return bad_name(err, s,
                            "Member must satisfy regular expression pattern: " NAME_PATTERN);
        part[n] = p;
        plen[n++] = l;
        if (!c)
            break;
        p = c + 1;
    }
    if (plen[0] == 3 && memcmp(part[0], "arn", 3) == 0) {
        /* arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] */
        if ((n != 7 && n != 8) || plen[1] < 3 || memcmp(part[1], "aws", 3) != 0 || plen[2] != 6 ||
            memcmp(part[2], "lambda", 6) != 0 || plen[5] != 8 ||
            memcmp(part[5], "function", 8) != 0 || !all_digits(part[4], plen[4]) || plen[4] != 12 ||
            plen[3] == 0 || !copy_span(ref->region, sizeof(ref->region), part[3], plen[3]))
            return bad_name(err, s,
                            "Member must satisfy regular expression pattern: " NAME_PATTERN);
        copy_span(ref->account, sizeof(ref->account), part[4], plen[4]);
        name = part[6];
        name_len = plen[6];
        if (n == 8) {
            qual = part[7];
            qual_len = plen[7];
        }
    } else if (n >= 3 && plen[1] == 8 && memcmp(part[1], "function", 8) == 0) {
        /* ACCOUNT:function:NAME[:QUALIFIER] */
        if (n > 4 || plen[0] != 12 || !all_digits(part[0], plen[0]))
            return bad_name(err, s,
                            "Member must satisfy regular expression pattern: " NAME_PATTERN);
        copy_span(ref->account, sizeof(ref->account), part[0], plen[0]);
        name = part[2];
        name_len = plen[2];
        if (n == 4) {
            qual = part[3];
            qual_len = plen[3];
        }
    } else if (n <= 2) {
        name = part[0];
        name_len = plen[0];
        if (n == 2) {
            qual = part[1];
            qual_len = plen[1];
        }
    } else {
        return bad_name(err, s, "Member must satisfy regular expression pattern: " NAME_PATTERN);
    }
    if (!span_valid(name, name_len, LGW_FUNCTION_NAME_MAX))
        return bad_name(err, s, "Member must satisfy regular expression pattern: " NAME_PATTERN);
    copy_span(ref->name, sizeof(ref->name), name, name_len);
    if (qual) {
        if (!(qual_len == 7 && memcmp(qual, "$LATEST", 7) == 0) &&
            !span_valid(qual, qual_len, LGW_QUALIFIER_MAX))
            return bad_name(err, s,
                            "Member must satisfy regular expression pattern: " NAME_PATTERN);
        copy_span(ref->qualifier, sizeof(ref->qualifier), qual, qual_len);
    }
    return LGW_OK;
}

void lgw_function_config_init(struct lgw_function_config *c)
{
    memset(c, 0, sizeof(*c));
    c->run_inline = -1;
}

void lgw_function_config_release(struct lgw_function_config *c)
{
    if (!c)
        return;
    json_decref(c->environment);
    c->environment = NULL;
}

void lgw_function_config_copy(struct lgw_function_config *dst,
                              const struct lgw_function_config *src)
{
    *dst = *src;
    json_incref(dst->environment);
}
