/*
 * lambda.c - the lambda dispatcher (see lambda.h for what it sends and how answers map).
 *
 * Threads: callers (the HTTP threads) validate, map the name, build the URL and hash the body,
 * then sign the call and start it themselves, on the lane (see struct lane) their thread keeps
 * to: under the lane's lock they take a kept-alive connection of the lane's and write the
 * request on it at once (or have curl open one: see "connections" below).
 * The lane's driver (its own thread, or in the server the HTTP thread's event loop: `driven`)
 * waits in epoll for the lane's sockets, curl's timer (connecting) and the deadlines and retry
 * timers; it reads the answers, schedules retries and signs them, and calls `done`. `done` always
 * runs with no lane lock held. Admission (the in-flight count and the draining flag) is lock-free
 * but for the count's last step to 0, which drain waits for.
 *
 * Memory: a call borrows the request (inv->payload, the event) from the caller, who keeps it
 * valid until done; it owns the URL, the serialized event when there was no payload, and the
 * answer being read, all freed when done has returned.
 *
 * Expired credentials: with threads of their own (not driven), signing waits for one refresh
 * attempt (lgw_credentials_get), bounded by the provider's HTTP timeouts. Driven by an HTTP
 * thread's event loop it never waits (lgw_credentials_get_nowait): the call fails at once with a
 * message saying why, and a refresh is started.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http1.h"
#include "json.h"
#include "lambda.h"
#include "sigv4.h"

#ifndef LGW_VERSION
#define LGW_VERSION "0.0.0"
#endif

#define API_PATH "/2015-03-31/functions/"
#define API_SUFFIX "/invocations"
#define FNAME_ENC_MAX (LGW_TARGET_MAX * 3)        /* every byte of a target percent-encoded */
#define QUALIFIER_ENC_MAX (LGW_QUALIFIER_MAX * 3) /* "$" -> "%24" */
#define PATH_CAP (LGW_AWS_ENDPOINT_MAX + sizeof(API_PATH) + FNAME_ENC_MAX + sizeof(API_SUFFIX))
#define QUERY_CAP (sizeof("Qualifier=") + QUALIFIER_ENC_MAX)
#define CLIENT_CONTEXT_B64_MAX 3583 /* Lambda's limit on X-Amz-Client-Context */
#define FUNCTION_ERROR_MAX 64
#define POLL_MAX_MS 1000    /* a lane wakes at least this often (a safety net, not a need) */
#define CALL_HEADERS_MAX 12 /* 5 of ours, 3 from the signer, Authorization, Accept */
#define LANES_MAX 256
#define READ_CHUNK 16384 /* what a lane reads from a connection at once */

/* ---- endpoints and targets ---- */

struct endpoint {
    char region[LGW_AWS_REGION_MAX + 1];
    char base[LGW_AWS_ENDPOINT_MAX + 1]; /* scheme://authority[/prefix], no trailing '/' */
    char host[LGW_AWS_ENDPOINT_MAX + 1]; /* the authority: the Host header */
    size_t prefix_at;                    /* offset of the path prefix in base ("" or "/x") */
    bool tls;                            /* https:// */
    char connect_url[LGW_AWS_ENDPOINT_MAX + 16]; /* http://host:port/ : what curl connects to */
    char tls_name[LGW_AWS_ENDPOINT_MAX + 1];     /* the host the certificate must name */
    bool tls_ip;                                 /* ... an IP address, not a DNS name */
};

struct target {
    char name[LGW_FUNCTION_NAME_MAX + 1];  /* the gateway name */
    char fname_enc[FNAME_ENC_MAX + 1];     /* the Lambda FunctionName, encoded, no qualifier */
    char qualifier[LGW_QUALIFIER_MAX + 1]; /* pinned by the target; "" = the caller's */
    size_t ep;                             /* index into eps */
    unsigned timeout_ms;                   /* 0 = not configured */
};

/* ---- calls ---- */

struct answer {
    char *body; /* NUL-terminated when not NULL */
    size_t len, cap;
    bool too_large;
    const char *bad_header; /* a static description of a malformed header, or NULL */
    char error_type[LGW_AWS_TYPE_MAX];
    char function_error[FUNCTION_ERROR_MAX];
    char executed_version[LGW_QUALIFIER_MAX + 1];
    char request_id[LGW_REQUEST_ID_LEN + 1];
    char *log_result;
    long retry_after; /* seconds; -1 = none */
};

struct lambda;
struct lane;
struct conn;

struct call {
    struct call *next; /* in a lane's timer list or finished list */
    struct lambda *d;
    struct lane *lane;
    enum lgw_invoke_type type;
    struct lgw_invocation *inv;
    lgw_done_fn done;
    void *done_arg;
    const struct endpoint *ep;
    char function[LGW_FUNCTION_NAME_MAX + 1]; /* for log lines */
    char path[PATH_CAP];
    char query[QUERY_CAP];
    const char *body; /* borrowed (inv->payload) or owned_body */
    size_t body_len;
    char *owned_body;
    char payload_hash[LGW_SIGV4_HEX_LEN + 1];
    char *client_context; /* base64, owned; NULL = none */
    bool log_tail;
    long attempt_timeout_ms;
    unsigned attempts;
    int64_t start_ms; /* monotonic, when the first attempt started */
    int64_t wake_ms;  /* monotonic, when the scheduled retry is due */
    CURL *easy;
    /* Plain-HTTP endpoints: the connection the attempt is on (or being opened for: easy is
     * then curl's connect-only transfer), its place in the lane's deadline list, and whether a
     * reused connection that closed before answering was already replaced once. */
    struct conn *conn;
    bool connecting, in_deadlines, stale_retried;
    int64_t deadline_us;         /* in the deadline list: the attempt's, or the handshake's */
    int64_t attempt_deadline_us; /* the attempt's, kept while a TLS handshake runs */
    struct call *dprev, *dnext;
    /* The request headers of the current attempt: one buffer of "Name: value" lines (it holds
     * the signature and the session token: wiped before it is freed) and the list nodes that
     * link them (conn_start writes them out), so an attempt costs one allocation. */
    char *hbuf;
    size_t hbuf_len;
    struct curl_slist hnodes[CALL_HEADERS_MAX]; /* (curl's list type, for its lines) */
    char errbuf[CURL_ERROR_SIZE];
    struct answer ans;
};

/*
 * A lane: its connections, one epoll set for them, a curl multi handle (driven with
 * curl_multi_socket_action() over the same set) that opens new ones, and one thread that waits
 * for its sockets (unless an HTTP loop drives it). The calling thread (an HTTP thread) signs its
 * call and starts it itself under the lane's lock, so the request is on the wire before the
 * call returns; the lane's driver only wakes for answers, connects, deadlines and retries. There
 * is one lane per CPU by default and each caller thread keeps to one lane, so callers on
 * different CPUs never share a lock or a connection pool.
 */
struct fdstate;

struct lane {
    struct lambda *d;
    pthread_mutex_t lock; /* guards every field below and all use of multi */
    CURLM *multi;
    int epfd, evfd;
    pthread_t thread;
    bool started;
    bool stop;
    bool sleeping;          /* the thread waits in epoll_wait until sleep_until */
    int64_t sleep_until_us; /* INT64_MAX: no timeout */
    int64_t curl_due_us;    /* curl's timer (monotonic); -1: none */
    struct call *timers;    /* waiting for a retry, by wake_ms */
    struct call *fin;       /* answered; done runs once the lock is released */
    unsigned running;       /* attempts under way (connecting or on a conn) */
    struct fdstate *fds;    /* by socket number: see on_socket */
    size_t nfds;
    uint64_t rng;
    struct conn **idle;             /* per endpoint: kept-alive connections, last used first */
    struct conn **idle_tail;        /* ... and the one idle longest */
    struct call *dl_head, *dl_tail; /* attempts on connections, by deadline_us */
    char rbuf[READ_CHUNK];
};

struct lambda {
    struct lgw_dispatcher base;
    struct lgw_lambda_options opt; /* tuning only: the pointers are cleared */
    struct lgw_credentials_provider *creds;
    bool own_creds;
    SSL_CTX *tls; /* when an endpoint is https:// */
    bool curl_inited;
    struct lgw_sigv4_key_cache *keys;
    struct endpoint *eps;
    size_t neps;
    struct target *targets;
    size_t ntargets;
    char **allow;
    size_t nallow;
    bool allow_any;
    struct lane *lanes;
    size_t nlanes;

    /* Admission: inflight counts calls accepted and not yet answered. It is changed without a
     * lock except when it may reach 0, which happens under `lock` so that drain (waiting on
     * `idle`) cannot miss it. */
    atomic_uint_fast64_t inflight;
    atomic_bool draining;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    bool drained;

    atomic_uint_fast64_t n_calls, n_attempts, n_retries, n_denied, n_connections, n_idle;
};

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    return mono_us() / 1000;
}

/* ---- small helpers ---- */

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* Percent-encodes len bytes of s into out (cap bytes); false when it does not fit. */
static bool pct_encode(const char *s, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            if (o + 1 >= cap)
                return false;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= cap)
                return false;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= cap)
        return false;
    out[o] = '\0';
    return true;
}

static void sha256_hex(const void *data, size_t len, char out[LGW_SIGV4_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        out[0] = '\0';
        return;
    }
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[LGW_SIGV4_HEX_LEN] = '\0';
}

/* Appends a JSON-escaped copy of s to a log line (printable ASCII only; others become '?'). */
static void log_str(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fputc('?', f);
        else
            fputc(c, f);
    }
}

/* ---- the allow-list ---- */

/* '*' matches any run of characters, everything else itself. Iterative, no recursion. */
static bool glob_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;

    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

bool lgw_lambda_pattern_match(const char *pattern, const char *name, const char *qualifier)
{
    char full[LGW_FUNCTION_NAME_MAX + LGW_QUALIFIER_MAX + 2];

    if (!pattern || !name)
        return false;
    if (!strchr(pattern, ':'))
        return glob_match(pattern, name);
    if (!qualifier || !*qualifier)
        return false;
    if ((size_t)snprintf(full, sizeof(full), "%s:%s", name, qualifier) >= sizeof(full))
        return false;
    return glob_match(pattern, full);
}

static bool pattern_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    const char *colon;

    if (n == 0 || n > 256 ||
        strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789-_:*") != n)
        return false;
    colon = strchr(p, ':');
    return !colon || (colon != p && colon[1] && !strchr(colon + 1, ':'));
}

static bool allowed(const struct lambda *d, const char *name, const char *qualifier)
{
    if (d->allow_any)
        return true;
    for (size_t i = 0; i < d->nallow; i++)
        if (lgw_lambda_pattern_match(d->allow[i], name, qualifier))
            return true;
    return false;
}

/* ---- set-up: endpoints, targets ---- */

static enum lgw_errc endpoint_parse(struct endpoint *ep, const char *url, const char *what,
                                    struct lgw_error *err)
{
    const char *auth, *slash;
    size_t n = strlen(url), alen;

    if (strncmp(url, "http://", 7) == 0)
        auth = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        auth = url + 8;
    else
        return lgw_error_set(err, LGW_EINTERNAL, "%s: '%.200s' is not an http(s) URL", what, url);
    while (n > (size_t)(auth - url) && url[n - 1] == '/')
        n--;
    if (n > LGW_AWS_ENDPOINT_MAX)
        return lgw_error_set(err, LGW_EINTERNAL, "%s: longer than %d bytes", what,
                             LGW_AWS_ENDPOINT_MAX);
    slash = memchr(auth, '/', n - (size_t)(auth - url));
    alen = slash ? (size_t)(slash - auth) : n - (size_t)(auth - url);
    if (strchr(url, '@')) /* user info may hold a password: not repeated in the message */
        return lgw_error_set(err, LGW_EINTERNAL, "%s: user info in the URL is not supported", what);
    if (alen == 0 || strcspn(url, "?# \t\r\n") < n)
        return lgw_error_set(err, LGW_EINTERNAL,
                             "%s: '%.200s' needs a host and no query or fragment", what, url);
    memcpy(ep->base, url, n);
    ep->base[n] = '\0';
    memcpy(ep->host, auth, alen);
    ep->host[alen] = '\0';
    ep->prefix_at = (size_t)(auth - url) + alen;
    ep->tls = auth == url + 8;
    {
        /* The name without brackets or port, and where curl connects: the endpoint's port,
         * or HTTPS's; the TLS over it is ours (conn_handshake). */
        const char *h = ep->host, *end, *port;
        unsigned char ip[16];
        if (h[0] == '[') {
            h++;
            end = strchr(h, ']');
            port = end && end[1] == ':' ? end + 1 : NULL;
        } else {
            end = strchr(h, ':');
            port = end;
        }
        if (!end)
            end = h + strlen(h);
        snprintf(ep->tls_name, sizeof(ep->tls_name), "%.*s", (int)(end - h), h);
        ep->tls_ip =
            inet_pton(AF_INET, ep->tls_name, ip) == 1 || inet_pton(AF_INET6, ep->tls_name, ip) == 1;
        snprintf(ep->connect_url, sizeof(ep->connect_url), "http://%s%s/", ep->host,
                 port || !ep->tls ? "" : ":443");
    }
    return LGW_OK;
}

/* Finds or adds the endpoint for region; returns its index or (size_t)-1 with err set. */
static size_t endpoint_for(struct lambda *d, const struct lgw_aws_env *env, const char *region,
                           const char *fixed, struct lgw_error *err)
{
    char url[LGW_AWS_ENDPOINT_MAX + 1];
    struct endpoint *ep;

    for (size_t i = 0; i < d->neps; i++)
        if (strcmp(d->eps[i].region, region) == 0)
            return i;
    ep = &d->eps[d->neps];
    memset(ep, 0, sizeof(*ep));
    snprintf(ep->region, sizeof(ep->region), "%s", region);
    if (fixed) {
        if (endpoint_parse(ep, fixed, "lambda endpoint", err))
            return (size_t)-1;
    } else {
        if (lgw_aws_endpoint_resolve(env, region, url, sizeof(url), err))
            return (size_t)-1;
        if (endpoint_parse(ep, url, "lambda endpoint", err))
            return (size_t)-1;
    }
    return d->neps++;
}

static bool region_valid(const char *r)
{
    size_t n = strlen(r);

    return n > 0 && n <= LGW_AWS_REGION_MAX && r[0] >= 'a' && r[0] <= 'z' &&
           strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

struct setup {
    const struct lgw_aws_env *env;
    const char *region;   /* the default region */
    const char *endpoint; /* fixed endpoint, or NULL */
};

static enum lgw_errc add_target(struct lambda *d, const struct lgw_function_config *c,
                                const struct setup *su, struct lgw_error *err)
{
    struct target *t = &d->targets[d->ntargets];
    struct lgw_function_ref ref;
    struct lgw_error perr;
    const char *target = c->target[0] ? c->target : c->name;
    const char *region;
    size_t tlen = strlen(target);

    lgw_error_init(&perr);
    if (!lgw_function_name_valid(c->name))
        return lgw_error_set(err, LGW_EINVALID_FUNCTION,
                             "function '%.64s': the name must be 1-64 of [A-Za-z0-9_-]", c->name);
    for (size_t i = 0; i < d->ntargets; i++)
        if (strcmp(d->targets[i].name, c->name) == 0)
            return lgw_error_set(err, LGW_EINVALID_FUNCTION, "function '%s' is configured twice",
                                 c->name);
    if (lgw_function_name_parse(target, &ref, &perr) != LGW_OK) {
        lgw_error_set(err, LGW_EINVALID_FUNCTION,
                      "function '%s': target '%.256s' is not a Lambda function name or ARN: %s",
                      c->name, target, perr.message);
        lgw_error_release(&perr);
        return LGW_EINVALID_FUNCTION;
    }
    region = ref.region[0] ? ref.region : su->region;
    if (!region_valid(region))
        return lgw_error_set(err, LGW_EINVALID_FUNCTION,
                             "function '%s': target '%.256s': '%s' is not an AWS region", c->name,
                             target, region);
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", c->name);
    snprintf(t->qualifier, sizeof(t->qualifier), "%s", ref.qualifier);
    if (ref.qualifier[0])
        tlen -= strlen(ref.qualifier) + 1; /* the qualifier is sent in the query */
    if (!pct_encode(target, tlen, t->fname_enc, sizeof(t->fname_enc)))
        return lgw_error_set(err, LGW_EINVALID_FUNCTION, "function '%s': target too long", c->name);
    t->ep = endpoint_for(d, su->env, region, su->endpoint, err);
    if (t->ep == (size_t)-1)
        return err->code;
    t->timeout_ms = c->timeout_ms;
    d->ntargets++;
    return LGW_OK;
}

static const struct target *find_target(const struct lambda *d, const char *name)
{
    for (size_t i = 0; i < d->ntargets; i++)
        if (strcmp(d->targets[i].name, name) == 0)
            return &d->targets[i];
    return NULL;
}

/* ---- request headers: secrets wiped before free ---- */

struct hdr {
    const char *name, *value; /* value NULL: name is the whole line ("Expect:") */
};

static void headers_free(struct call *c)
{
    if (c->hbuf) {
        OPENSSL_cleanse(c->hbuf, c->hbuf_len);
        free(c->hbuf);
    }
    c->hbuf = NULL;
    c->hbuf_len = 0;
}

/* Builds the attempt's header lines into c->hbuf and links c->hnodes through them. */
static int headers_build(struct call *c, const struct hdr *h, size_t n)
{
    size_t len = 0;
    char *p;

    if (n > CALL_HEADERS_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        len += strlen(h[i].name) + (h[i].value ? 2 + strlen(h[i].value) : 0) + 1;
    if (!(c->hbuf = malloc(len)))
        return -1;
    c->hbuf_len = len;
    p = c->hbuf;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(h[i].name);
        c->hnodes[i].data = p;
        c->hnodes[i].next = i + 1 < n ? &c->hnodes[i + 1] : NULL;
        memcpy(p, h[i].name, nl);
        p += nl;
        if (h[i].value) {
            size_t vl = strlen(h[i].value);
            *p++ = ':';
            *p++ = ' ';
            memcpy(p, h[i].value, vl);
            p += vl;
        }
        *p++ = '\0';
    }
    return 0;
}

/* ---- answers: what the parser hands over ---- */

static void answer_reset(struct answer *a)
{
    free(a->body);
    free(a->log_result);
    memset(a, 0, sizeof(*a));
    a->retry_after = -1;
}

/* Appends a piece of the answer's body; false when it is too large or memory ran out. */
static bool body_add(struct answer *a, const char *p, size_t len)
{
    if (len > LGW_LAMBDA_ANSWER_MAX - a->len) {
        a->too_large = true;
        return false;
    }
    if (a->len + len + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        char *b;
        while (cap < a->len + len + 1)
            cap *= 2;
        if (cap > LGW_LAMBDA_ANSWER_MAX + 1)
            cap = LGW_LAMBDA_ANSWER_MAX + 1;
        if (!(b = realloc(a->body, cap)))
            return false;
        a->body = b;
        a->cap = cap;
    }
    memcpy(a->body + a->len, p, len);
    a->len += len;
    a->body[a->len] = '\0';
    return true;
}

static bool header_is(const char *line, size_t nlen, const char *name)
{
    return strlen(name) == nlen && strncasecmp(line, name, nlen) == 0;
}

static bool all_of(const char *s, const char *set)
{
    return strspn(s, set) == strlen(s);
}

#define B64_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

/* Reads one header line of the answer (a status line starts a new answer). */
static void header_add(struct answer *a, const char *line, size_t len)
{
    size_t nlen, vlen;
    const char *colon, *v;
    char val[LGW_LAMBDA_LOG_RESULT_MAX + 1];

    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        /* A new status line (after a 100 Continue): only the last answer's headers count. */
        free(a->log_result);
        a->log_result = NULL;
        a->bad_header = NULL;
        a->error_type[0] = a->function_error[0] = a->executed_version[0] = '\0';
        a->request_id[0] = '\0';
        a->retry_after = -1;
        return;
    }
    colon = memchr(line, ':', len);
    if (!colon)
        return;
    nlen = (size_t)(colon - line);
    v = colon + 1;
    vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
                    v[vlen - 1] == '\t'))
        vlen--;
    if (vlen > LGW_LAMBDA_LOG_RESULT_MAX) {
        if (header_is(line, nlen, "X-Amz-Log-Result"))
            a->bad_header = "X-Amz-Log-Result longer than 8192 bytes";
        return; /* no other header we read may be that long */
    }
    memcpy(val, v, vlen);
    val[vlen] = '\0';
    if (memchr(val, '\0', vlen)) {
        a->bad_header = "a header value with a NUL byte";
        return;
    }
    if (header_is(line, nlen, "x-amzn-ErrorType")) {
        /* "NameException:http://internal.amazon.com/..." : the SDKs keep what is before ':'. */
        val[strcspn(val, ":")] = '\0';
        if (strlen(val) >= sizeof(a->error_type) || !all_of(val, "abcdefghijklmnopqrstuvwxyz"
                                                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                 "0123456789._-"))
            a->bad_header = "x-amzn-ErrorType is not an error type name";
        else
            memcpy(a->error_type, val, strlen(val) + 1);
    } else if (header_is(line, nlen, "X-Amz-Function-Error")) {
        if (!vlen || vlen >= sizeof(a->function_error) ||
            !all_of(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"))
            a->bad_header = "X-Amz-Function-Error is not Unhandled/Handled";
        else
            memcpy(a->function_error, val, vlen + 1);
    } else if (header_is(line, nlen, "X-Amz-Executed-Version")) {
        if (vlen >= sizeof(a->executed_version) || !lgw_qualifier_valid(val))
            a->bad_header = "X-Amz-Executed-Version is not a version";
        else
            memcpy(a->executed_version, val, vlen + 1);
    } else if (header_is(line, nlen, "X-Amz-Log-Result")) {
        char *copy;
        if (!all_of(val, B64_CHARS)) {
            a->bad_header = "X-Amz-Log-Result is not base64";
        } else if ((copy = strdup(val))) {
            free(a->log_result);
            a->log_result = copy;
        }
    } else if (header_is(line, nlen, "x-amzn-RequestId")) {
        /* Only a UUID-shaped id replaces ours; anything else is ignored, not an error. */
        if (vlen && vlen <= LGW_REQUEST_ID_LEN && all_of(val, "0123456789abcdefABCDEF-"))
            memcpy(a->request_id, val, vlen + 1);
    } else if (header_is(line, nlen, "Retry-After")) {
        /* Seconds; the HTTP-date form is not used by AWS and is ignored. */
        if (vlen && vlen <= 6 && all_of(val, "0123456789"))
            a->retry_after = strtol(val, NULL, 10);
    }
    return;
}

/* ---- calls ---- */

static void call_free(struct call *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    headers_free(c);
    answer_reset(&c->ans);
    free(c->ans.body);
    free(c->owned_body);
    free(c->client_context);
    free(c);
}

/* One call fewer in flight; the last one is counted down under the lock, for drain. After it
 * the dispatcher may be gone: nothing may touch d afterwards. */
static void inflight_put(struct lambda *d)
{
    uint_fast64_t v = atomic_load(&d->inflight);

    while (v > 1)
        if (atomic_compare_exchange_weak(&d->inflight, &v, v - 1))
            return;
    pthread_mutex_lock(&d->lock);
    if (atomic_fetch_sub(&d->inflight, 1) == 1)
        pthread_cond_broadcast(&d->idle);
    pthread_mutex_unlock(&d->lock);
}

/* Answers the call and forgets it; never with a lane's lock held (done may take others). */
static void call_done(struct lambda *d, struct call *c)
{
    c->done(c->inv, c->done_arg);
    call_free(c);
    inflight_put(d);
}

/* With the lane's lock held: the call is answered once the lock is released (lane_unlock). */
static void call_finish(struct lane *l, struct call *c)
{
    c->next = l->fin;
    l->fin = c;
}

static const char *invocation_type(enum lgw_invoke_type t)
{
    return t == LGW_INVOKE_EVENT ? "Event" : t == LGW_INVOKE_DRYRUN ? "DryRun" : "RequestResponse";
}

static void log_retry(struct lambda *d, struct call *c, long wait_ms, const char *why)
{
    if (!d->opt.log)
        return;
    flockfile(stderr);
    fprintf(stderr, "{\"level\":\"warn\",\"event\":\"lambda_retry\",\"function\":\"");
    log_str(stderr, c->function);
    fprintf(stderr, "\",\"attempt\":%u,\"waitMs\":%ld,\"reason\":\"", c->attempts + 1, wait_ms);
    log_str(stderr, why);
    fprintf(stderr, "\",\"requestId\":\"");
    log_str(stderr, c->inv->request_id);
    fprintf(stderr, "\"}\n");
    funlockfile(stderr);
}

static uint64_t rng_next(struct lane *l)
{
    /* xorshift64*: drawn under the lane's lock, and jitter needs no cryptographic quality */
    l->rng ^= l->rng >> 12;
    l->rng ^= l->rng << 25;
    l->rng ^= l->rng >> 27;
    return l->rng * 2685821657736338717ULL;
}

static void timer_insert(struct lane *l, struct call *c)
{
    struct call **pp = &l->timers;

    while (*pp && (*pp)->wake_ms <= c->wake_ms)
        pp = &(*pp)->next;
    c->next = *pp;
    *pp = c;
}

/*
 * Schedules another attempt if the bounds allow it: fewer than max_attempts so far, and the
 * retry starts within retry_budget_ms of the first attempt. retry_after_s (-1 = none) is a floor
 * on the wait. Returns false when the caller must answer with what it has. Lane lock held.
 */
static bool retry_later(struct lane *l, struct call *c, long retry_after_s, const char *why)
{
    struct lambda *d = l->d;
    int64_t now = mono_ms();
    uint64_t cap, wait;

    if (c->attempts >= d->opt.max_attempts)
        return false;
    cap = (uint64_t)d->opt.retry_base_ms << (c->attempts - 1 < 20 ? c->attempts - 1 : 20);
    if (cap > d->opt.retry_cap_ms)
        cap = d->opt.retry_cap_ms;
    wait = rng_next(l) % (cap + 1);
    if (retry_after_s > 0 && (uint64_t)retry_after_s * 1000 > wait)
        wait = (uint64_t)retry_after_s * 1000;
    if (now + (int64_t)wait - c->start_ms > (int64_t)d->opt.retry_budget_ms)
        return false;
    log_retry(d, c, (long)wait, why);
    c->wake_ms = now + (int64_t)wait;
    timer_insert(l, c);
    return true;
}

/*
 * Signs one attempt: credentials, signature, the header lines. Runs without any lock (on the
 * caller's thread for a first attempt, on the lane thread for a retry). On failure sets the
 * call's error and returns false.
 */
static bool attempt_sign(struct lambda *d, struct call *c)
{
    struct lgw_aws_credentials cr;
    struct lgw_sigv4_result sig;
    struct lgw_sigv4_header sh[5];
    struct hdr h[CALL_HEADERS_MAX];
    struct lgw_sigv4_config cfg;
    struct lgw_sigv4_request req;
    struct lgw_error e;
    const char *itype = invocation_type(c->type);
    size_t nsh = 0, nh = 0;
    bool ok = false;

    lgw_error_init(&e);
    cr.access_key_id[0] = cr.secret_access_key[0] = cr.session_token[0] = '\0';
    sig.authorization[0] = sig.signature[0] = '\0';
    memset(&cfg, 0, sizeof(cfg));
    answer_reset(&c->ans);
    c->errbuf[0] = '\0';
    c->stale_retried = false;
    if (c->attempts == 0)
        c->start_ms = mono_ms();
    else
        atomic_fetch_add(&d->n_retries, 1);
    c->attempts++;
    atomic_fetch_add(&d->n_attempts, 1);

    /* An event loop (driven lanes) must not wait for a refresh: the call fails at once. */
    if ((d->opt.driven ? lgw_credentials_get_nowait(d->creds, &cr, &e)
                       : lgw_credentials_get(d->creds, &cr, &e)) != LGW_OK) {
        lgw_error_set(&c->inv->err, LGW_ECLIENT, "no AWS credentials to call Lambda with: %s",
                      e.message);
        goto out;
    }
    sh[nsh++] = (struct lgw_sigv4_header){"Host", c->ep->host};
    sh[nsh++] = (struct lgw_sigv4_header){"Content-Type", "application/json"};
    sh[nsh++] = (struct lgw_sigv4_header){"X-Amz-Invocation-Type", itype};
    if (c->log_tail)
        sh[nsh++] = (struct lgw_sigv4_header){"X-Amz-Log-Type", "Tail"};
    if (c->client_context)
        sh[nsh++] = (struct lgw_sigv4_header){"X-Amz-Client-Context", c->client_context};
    cfg = (struct lgw_sigv4_config){
        .creds = {cr.access_key_id, cr.secret_access_key, cr.session_token},
        .region = c->ep->region,
        .service = "lambda",
        .opts = lgw_sigv4_options_default(),
        .cache = d->keys,
    };
    req = (struct lgw_sigv4_request){
        .method = "POST",
        .path = c->path,
        .query = c->query,
        .headers = sh,
        .header_count = nsh,
        .body = c->body,
        .body_len = c->body_len,
        .payload_hash = c->payload_hash,
    };
    if (lgw_sigv4_sign(&cfg, &req, time(NULL), &sig, NULL, &e) != LGW_OK) {
        lgw_error_set(&c->inv->err, LGW_ECLIENT, "cannot sign the call to Lambda: %s", e.message);
        goto out;
    }
    for (size_t i = 0; i < nsh; i++)
        h[nh++] = (struct hdr){sh[i].name, sh[i].value};
    for (size_t i = 0; i < sig.add_count; i++)
        h[nh++] = (struct hdr){sig.add[i].name, sig.add[i].value};
    h[nh++] = (struct hdr){"Authorization", sig.authorization};
    h[nh++] = (struct hdr){"Accept", "application/json"};
    if (headers_build(c, h, nh) < 0) {
        lgw_error_set(&c->inv->err, LGW_EINTERNAL, "out of memory starting the call to Lambda");
        goto out;
    }
    ok = true;
out:
    lgw_aws_credentials_release_strings(&cr); /* only lgw_credentials_get filled it */
    OPENSSL_cleanse(sig.authorization, strnlen(sig.authorization, sizeof(sig.authorization)));
    OPENSSL_cleanse(sig.signature, sizeof(sig.signature));
    OPENSSL_cleanse(&cfg, sizeof(cfg));
    lgw_error_release(&e);
    return ok;
}

static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a);
static int on_close(void *clientp, curl_socket_t s);

static void conn_submit(struct lane *l, struct call *c);

/* Starts a signed attempt. Lane lock held. On failure answers the call. */
static void attempt_submit(struct lane *l, struct call *c)
{
    conn_submit(l, c);
}

/* ---- answers: mapping ---- */

static void malformed(struct call *c, const char *what)
{
    lgw_error_set(&c->inv->err, LGW_ECLIENT, "malformed answer from Lambda: %s", what);
}

/* 200 + X-Amz-Function-Error: the function ran and failed; its payload is the answer. */
static void function_error(struct call *c)
{
    struct answer *a = &c->ans;
    struct lgw_error *e = &c->inv->err;
    json_t *p = a->body ? json_loadb(a->body, a->len, JSON_DECODE_ANY, NULL) : NULL;
    const char *type, *msg;

    if (!p) {
        malformed(c, "X-Amz-Function-Error with a payload that is not JSON");
        return;
    }
    type = json_string_value(json_object_get(p, "errorType"));
    msg = json_string_value(json_object_get(p, "errorMessage"));
    if (type && strcmp(type, "Sandbox.Timedout") == 0)
        lgw_error_set(e, LGW_ETIMEDOUT, "%s", msg ? msg : "Task timed out");
    else
        lgw_error_set(e, LGW_EEXECUTE, "%s: %s", type ? type : a->function_error, msg ? msg : "");
    json_decref(p);
    lgw_error_take_payload(e, a->body, a->len);
    a->body = NULL;
    a->len = a->cap = 0;
}

static const struct {
    const char *type;
    enum lgw_errc code;
} aws_types[] = {
    {"ResourceNotFoundException", LGW_ENOTFOUND},
    {"TooManyRequestsException", LGW_ETHROTTLED},
    {"AccessDeniedException", LGW_EDENIED},
    {"InvalidRequestContentException", LGW_EBADREQUEST},
    {"RequestTooLargeException", LGW_ETOOLARGE},
    {"RequestEntityTooLargeException", LGW_ETOOLARGE},
};

static enum lgw_errc code_for(const char *type, long status)
{
    for (size_t i = 0; i < sizeof(aws_types) / sizeof(aws_types[0]); i++)
        if (strcmp(type, aws_types[i].type) == 0)
            return aws_types[i].code;
    return status == 429 ? LGW_ETHROTTLED : LGW_ECLIENT;
}

/* Copies a JSON string member into out (cap bytes), if there is one. */
static void json_take(json_t *o, const char *key, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(o, key));

    if (s && !out[0])
        snprintf(out, cap, "%s", s);
}

/*
 * A 4xx/5xx answer. Returns true when a retry was scheduled (the call lives on), false when the
 * error was put into the invocation.
 */
static bool service_error(struct lane *l, struct call *c, long status)
{
    struct answer *a = &c->ans;
    struct lgw_error *e = &c->inv->err;
    char type[LGW_AWS_TYPE_MAX], msg[LGW_ERROR_MESSAGE_MAX] = "", reason[64] = "";
    json_t *body = a->body ? json_loadb(a->body, a->len, 0, NULL) : NULL;
    bool ran = a->function_error[0] || a->executed_version[0];
    enum lgw_errc code;

    snprintf(type, sizeof(type), "%s", a->error_type);
    if (json_is_object(body)) {
        json_take(body, "message", msg, sizeof(msg));
        json_take(body, "Message", msg, sizeof(msg));
        json_take(body, "Reason", reason, sizeof(reason));
        if (!type[0]) {
            /* Some services put "prefix#NameException" in __type instead of the header. */
            const char *t = json_string_value(json_object_get(body, "__type"));
            if (t) {
                snprintf(type, sizeof(type), "%s", strchr(t, '#') ? strchr(t, '#') + 1 : t);
                type[strcspn(type, ":")] = '\0';
            }
        }
    }
    json_decref(body);
    if (status == 429 || (status >= 500 && !ran)) {
        char why[LGW_AWS_TYPE_MAX + 32];
        snprintf(why, sizeof(why), "HTTP %ld%s%s", status, type[0] ? " " : "", type);
        if (retry_later(l, c, a->retry_after, why))
            return true;
    }
    code = code_for(type, status);
    if (!msg[0])
        snprintf(msg, sizeof(msg), "Lambda answered HTTP %ld%s%s", status, type[0] ? " " : "",
                 type);
    if (code == LGW_ECLIENT && status >= 500 && c->attempts > 1)
        lgw_error_set(e, code, "%s (gave up after %u attempts)", msg, c->attempts);
    else
        lgw_error_set(e, code, "%s", msg);
    e->aws_status = (int)status;
    if (type[0])
        snprintf(e->aws_type, sizeof(e->aws_type), "%s", type);
    if (code == LGW_ETHROTTLED) {
        snprintf(e->reason, sizeof(e->reason), "%s", reason);
        e->retry_after = a->retry_after > 0 ? (unsigned)a->retry_after : 1;
    }
    return false;
}

/* An HTTP answer arrived. */
static void answer_http(struct lane *l, struct call *c, long status)
{
    struct answer *a = &c->ans;
    struct lgw_invocation *inv = c->inv;
    long want = c->type == LGW_INVOKE_SYNC ? 200 : c->type == LGW_INVOKE_EVENT ? 202 : 204;
    char what[96];

    if (a->bad_header) {
        malformed(c, a->bad_header);
    } else if (status >= 200 && status < 300) {
        if (status != want) {
            snprintf(what, sizeof(what), "HTTP %ld to a %s invocation (expected %ld)", status,
                     invocation_type(c->type), want);
            malformed(c, what);
            goto done;
        }
        snprintf(inv->executed_version, sizeof(inv->executed_version), "%s",
                 a->executed_version[0] ? a->executed_version : "$LATEST");
        if (c->type != LGW_INVOKE_SYNC)
            goto done;
        if (a->function_error[0]) {
            function_error(c);
        } else {
            inv->result = a->body ? a->body : strdup("");
            inv->result_len = a->len;
            a->body = NULL;
            a->len = a->cap = 0;
            if (!inv->result)
                lgw_error_set(&inv->err, LGW_EINTERNAL, "out of memory");
        }
        if (c->log_tail && a->log_result) {
            inv->log_tail_b64 = a->log_result;
            a->log_result = NULL;
        }
    } else if (status >= 400 && status < 600) {
        if (service_error(l, c, status))
            return;
    } else {
        snprintf(what, sizeof(what), "unexpected HTTP %ld", status);
        malformed(c, what);
    }
done:
    /* The id the function ran under, as local mode answers with (and error payloads name). */
    if (a->request_id[0])
        memcpy(inv->request_id, a->request_id, sizeof(a->request_id));
    call_finish(l, c);
}

/* The transfer failed before a complete HTTP answer. sent: the request went (at least partly)
 * out on the wire. */
static void answer_transport(struct lane *l, struct call *c, CURLcode rc, bool sent)
{
    struct lambda *d = l->d;
    struct lgw_error *e = &c->inv->err;
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    bool retry = false;

    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_ERROR: /* the request did not get out whole: the function cannot have run */
        retry = true;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        if (!sent) {
            retry = true;
            break;
        }
        lgw_error_set(e, LGW_ECLIENT_TIMEOUT,
                      "Lambda did not answer within %ld ms (the function's timeout plus %u ms); "
                      "the function may still be running",
                      c->attempt_timeout_ms, d->opt.timeout_margin_ms);
        goto done;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        if (!sent) {
            retry = true;
            break;
        }
        lgw_error_set(e, LGW_ECLIENT,
                      "the connection to Lambda broke before an answer (%s); not retried: the "
                      "function may have run",
                      detail);
        goto done;
    case CURLE_WRITE_ERROR:
        if (c->ans.too_large) {
            char what[64];
            snprintf(what, sizeof(what), "larger than %u bytes", LGW_LAMBDA_ANSWER_MAX);
            malformed(c, what);
        } else {
            lgw_error_set(e, LGW_EINTERNAL, "out of memory reading Lambda's answer");
        }
        goto done;
    case CURLE_OUT_OF_MEMORY:
        lgw_error_set(e, LGW_EINTERNAL, "out of memory calling Lambda");
        goto done;
    case CURLE_WEIRD_SERVER_REPLY: /* http1.c refused the answer */
    case CURLE_PARTIAL_FILE:       /* it ended early */
        malformed(c, detail);
        goto done;
    default:
        lgw_error_set(e, LGW_ECLIENT, "the call to Lambda failed: %s", detail);
        goto done;
    }
    if (retry && retry_later(l, c, -1, detail))
        return;
    lgw_error_set(e, LGW_ECLIENT, "Lambda is unreachable at %s: %s (gave up after %u attempt%s)",
                  c->ep->host, detail, c->attempts, c->attempts == 1 ? "" : "s");
done:
    call_finish(l, c);
}

static void conn_connected(struct lane *l, CURL *e, struct call *c, CURLcode rc);

/* curl finished a transfer: always a connect-only one (conn_connect). */
static void on_complete(struct lane *l, CURL *easy, CURLcode rc)
{
    char *priv = NULL;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    conn_connected(l, easy, (struct call *)(void *)priv, rc);
}

/* ---- lanes ---- */

/*
 * The lane's epoll set holds the conns' sockets (FD_CONN, see "connections" below) and the
 * sockets curl waits for while it opens a connection, kept in step with what curl asks at the
 * fewest system calls: a socket curl stops wanting stays in the set (only noted) until an event
 * on it or its close takes it out.
 * Only sockets curl opened through on_open (its connections) are handled so; any other socket
 * curl waits for (the threaded resolver's socket pair, closed behind our back) is added and
 * removed as curl says. on_open resets the state of the socket's number, and connections are
 * closed through on_close, so a number reused after a close never carries stale state.
 */
enum { FD_IN_SET = 1, FD_WANTED = 2, FD_OURS = 4, FD_TAKEN = 8, FD_CONN = 16 };

/* FD_TAKEN: curl's socket being handed over (conn_connected); FD_CONN: a conn's socket. */
struct fdstate {
    uint32_t events; /* the epoll mask registered, when FD_IN_SET */
    uint8_t flags;
    struct conn *conn; /* when FD_CONN */
};

static struct fdstate *fd_state(struct lane *l, curl_socket_t s)
{
    if (s < 0)
        return NULL;
    if ((size_t)s >= l->nfds) {
        size_t n = l->nfds ? l->nfds : 64;
        struct fdstate *t;
        while (n <= (size_t)s)
            n *= 2;
        if (!(t = realloc(l->fds, n * sizeof(*t))))
            return NULL;
        memset(t + l->nfds, 0, (n - l->nfds) * sizeof(*t));
        l->fds = t;
        l->nfds = n;
    }
    return &l->fds[s];
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct lane *l = userp;
    struct fdstate *st = fd_state(l, s);
    struct epoll_event ev = {.data.fd = s};

    (void)easy;
    (void)socketp;
    if (!st)
        return -1;
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    if (!(st->flags & FD_OURS)) {
        if (what == CURL_POLL_REMOVE)
            return epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL) < 0 && errno != ENOENT ? -1 : 0;
        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) < 0 &&
            (errno != ENOENT || epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) < 0))
            return -1;
        return 0;
    }
    if (what == CURL_POLL_REMOVE) {
        st->flags &= (uint8_t)~FD_WANTED;
        return 0;
    }
    st->flags |= FD_WANTED;
    if ((st->flags & FD_IN_SET) && st->events == ev.events)
        return 0;
    if (epoll_ctl(l->epfd, st->flags & FD_IN_SET ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) < 0)
        return -1;
    st->flags |= FD_IN_SET;
    st->events = ev.events;
    return 0;
}

static void conn_event(struct lane *l, struct conn *k, uint32_t events);

/* An event on a socket: a conn's, curl's if it waits for it, else the socket leaves the set. */
static void on_event(struct lane *l, int fd, uint32_t events)
{
    struct fdstate *st = fd_state(l, fd);
    int flags = 0, running = 0;

    if (st && (st->flags & FD_CONN)) {
        conn_event(l, st->conn, events);
        return;
    }
    if (st && (st->flags & FD_OURS) && !(st->flags & FD_WANTED)) {
        if (st->flags & FD_IN_SET)
            epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        st->flags &= (uint8_t)~FD_IN_SET;
        return;
    }
    flags |= events & EPOLLIN ? CURL_CSELECT_IN : 0;
    flags |= events & EPOLLOUT ? CURL_CSELECT_OUT : 0;
    flags |= events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0;
    curl_multi_socket_action(l->multi, fd, flags, &running);
}

/* curl opens its connections' sockets through here (CURLOPT_OPENSOCKETFUNCTION). */
static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct lane *l = clientp;
    struct fdstate *st;
    curl_socket_t s;

    (void)purpose;
    s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s < 0)
        return CURL_SOCKET_BAD;
    if (!(st = fd_state(l, s))) {
        close(s);
        return CURL_SOCKET_BAD;
    }
    st->flags = FD_OURS;
    st->conn = NULL;
    return s;
}

/* ... and closes them through here (CURLOPT_CLOSESOCKETFUNCTION). */
static int on_close(void *clientp, curl_socket_t s)
{
    struct lane *l = clientp;
    struct fdstate *st = s >= 0 && (size_t)s < l->nfds ? &l->fds[s] : NULL;

    if (st && (st->flags & FD_IN_SET))
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
    if (st && (st->flags & FD_TAKEN)) {
        st->flags = 0;
        return 0; /* handed over to a conn: left open */
    }
    if (st)
        st->flags = 0;
    return close(s);
}

/* ---- connections: HTTP/1.1 (and TLS) spoken by the lane itself ----
 *
 * The lane does not run a curl transfer per call: curl only opens each connection (name lookup,
 * connect timeout, a proxy tunnel when the environment names one, through a connect-only
 * transfer to http://host:port/) and hands its socket over; the lane then runs TLS over it for
 * an https:// endpoint (OpenSSL, tls_setup), writes the request and reads the answer
 * (dispatch/http1.c) itself. A connection is kept after an answer that allows it, in the lane's
 * idle list for its endpoint, and taken again by the next call to that endpoint, last used
 * first. A kept connection that the server closed meanwhile is noticed by its event and closed;
 * one that closes as a call starts on it, before any byte of the answer, is replaced by a fresh
 * one once (as curl does), since the server dropped it idle.
 * Every attempt has a deadline in the lane's deadline list (sorted; attempts mostly share a
 * timeout, so an insertion walks back from the tail a step or two).
 */
struct conn {
    int fd;
    size_t ep;
    struct call *c;           /* the attempt on it; NULL while idle */
    struct conn *prev, *next; /* in the lane's idle list for ep, while idle */
    bool reused;              /* it carried an answer before this attempt */
    int64_t idle_since_us;    /* when it went idle (monotonic) */
    bool idle;                /* in the lane's idle list */
    bool sent_any;            /* some of this attempt's request went out */
    bool want_out;            /* EPOLLOUT is registered: the request did not fit at once */
    int write_err;            /* errno of a failed write: an answer may still be read */
    SSL *ssl;                 /* https:// endpoints */
    bool handshaking;         /* the TLS handshake is under way (the attempt waits) */
    const char *body;         /* the part of the request after head (a large body, borrowed) */
    size_t body_len;
    char tls_err[160]; /* OpenSSL's reason for the last TLS failure */
    char *head; /* the request line and headers, and a small body (signature included: wiped) */
    size_t head_len, head_cap, off;
    struct lgw_http1_parser p;
};

static void deadline_insert(struct lane *l, struct call *c)
{
    struct call *p = l->dl_tail;

    while (p && p->deadline_us > c->deadline_us)
        p = p->dprev;
    c->dprev = p;
    c->dnext = p ? p->dnext : l->dl_head;
    if (c->dnext)
        c->dnext->dprev = c;
    else
        l->dl_tail = c;
    if (p)
        p->dnext = c;
    else
        l->dl_head = c;
    c->in_deadlines = true;
}

static void deadline_remove(struct lane *l, struct call *c)
{
    if (!c->in_deadlines)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        l->dl_head = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        l->dl_tail = c->dprev;
    c->dprev = c->dnext = NULL;
    c->in_deadlines = false;
}

static void idle_unlink(struct lane *l, struct conn *k)
{
    if (!k->idle)
        return;
    k->idle = false;
    if (k->prev)
        k->prev->next = k->next;
    else if (l->idle[k->ep] == k)
        l->idle[k->ep] = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else if (l->idle_tail[k->ep] == k)
        l->idle_tail[k->ep] = k->prev;
    k->prev = k->next = NULL;
    atomic_fetch_sub(&l->d->n_idle, 1);
}

static void idle_push(struct lane *l, struct conn *k)
{
    k->idle_since_us = mono_us();
    k->idle = true;
    k->prev = NULL;
    k->next = l->idle[k->ep];
    if (k->next)
        k->next->prev = k;
    else
        l->idle_tail[k->ep] = k;
    l->idle[k->ep] = k;
    atomic_fetch_add(&l->d->n_idle, 1);
}

static void conn_close(struct lane *l, struct conn *k);

/* Lane lock held: closes the kept connections unused for idle_ms (libcurl's rule before). */
static void idle_reap(struct lane *l, int64_t now_us)
{
    int64_t age = (int64_t)l->d->opt.idle_ms * 1000;

    for (size_t ep = 0; ep < l->d->neps; ep++) {
        struct conn *k;
        while ((k = l->idle_tail[ep]) && k->idle_since_us + age <= now_us)
            conn_close(l, k);
    }
}

static void conn_close(struct lane *l, struct conn *k)
{
    struct fdstate *st = fd_state(l, k->fd);

    idle_unlink(l, k); /* if it is idle */
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, k->fd, NULL);
    if (st) {
        st->flags = 0;
        st->conn = NULL;
    }
    if (k->ssl)
        SSL_free(k->ssl); /* no close_notify: the connection ends with its answer or failure */
    close(k->fd);
    lgw_http1_release(&k->p);
    if (k->head) {
        OPENSSL_cleanse(k->head, k->head_cap);
        free(k->head);
    }
    free(k);
}

/* Ends the attempt on k (k stays open, the caller decides its fate). */
static struct call *conn_detach(struct lane *l, struct conn *k)
{
    struct call *c = k->c;

    k->c = NULL;
    c->conn = NULL;
    deadline_remove(l, c);
    headers_free(c);
    l->running--;
    if (k->head)
        OPENSSL_cleanse(k->head, k->head_len);
    return c;
}

/* The attempt on k failed: k is closed, the call answered as curl's rc would be. */
static void conn_fail(struct lane *l, struct conn *k, CURLcode rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conn_fail(struct lane *l, struct conn *k, CURLcode rc, const char *fmt, ...)
{
    bool sent = k->sent_any;
    struct call *c = conn_detach(l, k);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->errbuf, sizeof(c->errbuf), fmt, ap);
    va_end(ap);
    conn_close(l, k);
    answer_transport(l, c, rc, sent);
}

static int conn_header(void *arg, const char *line, size_t len)
{
    header_add(&((struct call *)arg)->ans, line, len);
    return 0;
}

static int conn_body(void *arg, const char *data, size_t len)
{
    return body_add(&((struct call *)arg)->ans, data, len) ? 0 : -1;
}

static void conn_connect(struct lane *l, struct call *c);

/* A reused connection closed before any byte of the answer: the server had dropped it while
 * idle. The attempt goes on over a fresh connection, once. */
static bool conn_stale(struct lane *l, struct conn *k)
{
    struct call *c = k->c;

    if (!k->reused || c->stale_retried || lgw_http1_started(&k->p))
        return false;
    c->stale_retried = true;
    k->c = NULL;
    c->conn = NULL;
    conn_close(l, k);
    conn_connect(l, c);
    return true;
}

/* Writes what is left of the request. False when k is gone (the attempt failed or moved). */
static void conn_read(struct lane *l, struct conn *k);

static bool conn_written(const struct conn *k)
{
    return k->off == k->head_len + k->body_len;
}

/* A TLS call that did not succeed, as a socket call's result: -1 with errno (EAGAIN: wait
 * for the socket; EPROTO: see k->tls_err), or 0 for the end of the connection. */
static ssize_t tls_result(struct conn *k, int r)
{
    int e = SSL_get_error(k->ssl, r);
    unsigned long code;

    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0)
            return errno ? -1 : 0;
        break;
    default:
        break;
    }
    code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, k->tls_err, sizeof(k->tls_err));
    else
        snprintf(k->tls_err, sizeof(k->tls_err), "TLS error %d", e);
    ERR_clear_error();
    errno = EPROTO;
    return -1;
}

static const char *conn_strerror(const struct conn *k, int e)
{
    return e == EPROTO && k->tls_err[0] ? k->tls_err : strerror(e);
}

/* Sends from the first of n pieces on (TLS: the first only); as sendmsg. */
static ssize_t conn_send(struct conn *k, struct iovec *iov, size_t n)
{
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};
    size_t done = 0;
    int r;

    if (!k->ssl)
        return sendmsg(k->fd, &mh, MSG_NOSIGNAL);
    ERR_clear_error();
    errno = 0;
    r = SSL_write_ex(k->ssl, iov[0].iov_base, iov[0].iov_len, &done);
    return r == 1 ? (ssize_t)done : tls_result(k, r);
}

/* As recv. */
static ssize_t conn_recv(struct conn *k, char *buf, size_t len)
{
    size_t got = 0;
    int r;

    if (!k->ssl)
        return recv(k->fd, buf, len, 0);
    ERR_clear_error();
    errno = 0;
    r = SSL_read_ex(k->ssl, buf, len, &got);
    return r == 1 ? (ssize_t)got : tls_result(k, r);
}

/* Registers whether k waits to write as well as to read. */
static void conn_want_out(struct lane *l, struct conn *k, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.fd = k->fd};

    if (k->want_out != out && epoll_ctl(l->epfd, EPOLL_CTL_MOD, k->fd, &ev) == 0)
        k->want_out = out;
}

static bool conn_write(struct lane *l, struct conn *k)
{
    size_t total = k->head_len + k->body_len;

    while (k->off < total) {
        struct iovec iov[2];
        size_t niov = 0;
        ssize_t n;

        if (k->off < k->head_len) {
            iov[niov++] = (struct iovec){k->head + k->off, k->head_len - k->off};
            if (k->body_len)
                iov[niov++] = (struct iovec){(void *)k->body, k->body_len};
        } else {
            iov[niov++] =
                (struct iovec){(void *)(k->body + (k->off - k->head_len)), total - k->off};
        }
        n = conn_send(k, iov, niov);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_want_out(l, k, true);
            return true;
        }
        if (n <= 0) {
            /* The server may have answered before it read the whole request (and closed):
             * what it sent is read first; the call fails only without an answer, and a kept
             * connection is replaced (conn_read's end paths) only if nothing came back. */
            k->write_err = n < 0 ? errno : EPIPE;
            conn_want_out(l, k, false);
            conn_read(l, k);
            return false;
        }
        k->off += (size_t)n;
        k->sent_any = true;
    }
    OPENSSL_cleanse(k->head, k->head_len);
    conn_want_out(l, k, false);
    return true;
}

/* Starts c's attempt on k: the request head is built from the signed headers and sent. */
static void conn_start(struct lane *l, struct conn *k, struct call *c)
{
    /* A small body goes in the same buffer: one write (one TLS record) for the request. */
    bool merge = c->body_len <= READ_CHUNK;
    size_t need = sizeof("POST  HTTP/1.1\r\n") + strlen(c->path) + 1 + strlen(c->query) +
                  sizeof("User-Agent: lambda-gateway/" LGW_VERSION "\r\n") +
                  sizeof("Content-Length: 18446744073709551615\r\n\r\n") +
                  (merge ? c->body_len : 0);
    size_t n;

    for (const struct curl_slist *h = c->hnodes; h; h = h->next)
        need += strlen(h->data) + 2;
    if (need > k->head_cap) {
        char *b = malloc(need);
        if (!b) {
            k->c = c;
            c->conn = k;
            conn_fail(l, k, CURLE_OUT_OF_MEMORY, "out of memory");
            return;
        }
        if (k->head) {
            OPENSSL_cleanse(k->head, k->head_cap);
            free(k->head);
        }
        k->head = b;
        k->head_cap = need;
    }
    n = (size_t)snprintf(k->head, k->head_cap, "POST %s%s%s HTTP/1.1\r\n", c->path,
                         c->query[0] ? "?" : "", c->query);
    for (const struct curl_slist *h = c->hnodes; h; h = h->next) {
        size_t hl = strlen(h->data);
        memcpy(k->head + n, h->data, hl);
        memcpy(k->head + n + hl, "\r\n", 2);
        n += hl + 2;
    }
    n += (size_t)snprintf(k->head + n, k->head_cap - n,
                          "User-Agent: lambda-gateway/" LGW_VERSION "\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          c->body_len);
    k->body = c->body;
    k->body_len = c->body_len;
    if (merge && c->body_len) {
        memcpy(k->head + n, c->body, c->body_len);
        n += c->body_len;
        k->body_len = 0;
    }
    k->head_len = n;
    k->off = 0;
    k->sent_any = false;
    k->write_err = 0;
    k->c = c;
    c->conn = k;
    lgw_http1_release(&k->p);
    lgw_http1_init(&k->p, conn_header, conn_body, c);
    (void)conn_write(l, k);
}

/* Runs k's TLS handshake on; when it is done the attempt's request goes. */
static void conn_handshake(struct lane *l, struct conn *k)
{
    const struct endpoint *ep = &l->d->eps[k->ep];
    int r, e;
    long v;

    ERR_clear_error();
    errno = 0;
    r = SSL_connect(k->ssl);
    if (r == 1) {
        struct call *c = k->c;
        k->handshaking = false;
        if (c->deadline_us != c->attempt_deadline_us) {
            deadline_remove(l, c);
            c->deadline_us = c->attempt_deadline_us;
            deadline_insert(l, c);
        }
        conn_want_out(l, k, false);
        conn_start(l, k, k->c);
        return;
    }
    e = SSL_get_error(k->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        conn_want_out(l, k, e == SSL_ERROR_WANT_WRITE);
        return;
    }
    if ((v = SSL_get_verify_result(k->ssl)) != X509_V_OK) {
        ERR_clear_error();
        conn_fail(l, k, CURLE_PEER_FAILED_VERIFICATION,
                  "TLS: the certificate of %s was not accepted: %s", ep->tls_name,
                  X509_verify_cert_error_string(v));
        return;
    }
    (void)tls_result(k, r);
    conn_fail(l, k, CURLE_SSL_CONNECT_ERROR, "TLS handshake with %s failed: %s", ep->tls_name,
              k->tls_err[0] ? k->tls_err
              : errno       ? strerror(errno)
                            : "the connection closed");
}

/* The answer on k is complete. */
static void conn_answered(struct lane *l, struct conn *k, bool keep)
{
    long status = k->p.status;
    struct call *c;

    keep = keep && conn_written(k) && !k->write_err; /* else the server's state is unknown */
    c = conn_detach(l, k);

    if (keep && k->p.keep_alive) {
        k->reused = true;
        idle_push(l, k);
    } else {
        conn_close(l, k);
    }
    answer_http(l, c, status);
}

/* The connection failed before a whole answer: a request not sent whole is a send error (the
 * function cannot have run), else the answer broke. */
static void conn_broke(struct lane *l, struct conn *k, CURLcode rc, const char *what, int e)
{
    if (k->write_err || !conn_written(k))
        conn_fail(l, k, CURLE_SEND_ERROR, "Failed sending the request: %s",
                  conn_strerror(k, k->write_err ? k->write_err
                                   : e          ? e
                                                : EPIPE));
    else if (e)
        conn_fail(l, k, rc, "%s: %s", what, conn_strerror(k, e));
    else
        conn_fail(l, k, rc, "%s", what);
}

/* Reads what arrived on k (an event on its socket). */
static void conn_read(struct lane *l, struct conn *k)
{
    for (;;) {
        ssize_t n = conn_recv(k, l->rbuf, sizeof(l->rbuf));
        enum lgw_http1_status st;
        size_t used = 0;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            int e = errno;
            if (!conn_stale(l, k))
                conn_broke(l, k, CURLE_RECV_ERROR, "Failure when receiving the answer", e);
            return;
        }
        if (n == 0) {
            if (conn_stale(l, k))
                return;
            if (!lgw_http1_started(&k->p))
                conn_broke(l, k, CURLE_GOT_NOTHING, "Empty reply from server", 0);
            else if (lgw_http1_eof(&k->p) == LGW_HTTP1_DONE)
                conn_answered(l, k, false);
            else
                conn_fail(l, k, CURLE_PARTIAL_FILE, "%s", k->p.error);
            return;
        }
        st = lgw_http1_feed(&k->p, l->rbuf, (size_t)n, &used);
        if (st == LGW_HTTP1_DONE) {
            /* Bytes after the answer were never asked for: the connection is not reused. */
            conn_answered(l, k, used == (size_t)n);
            return;
        }
        if (st == LGW_HTTP1_ERROR) {
            conn_fail(l, k, CURLE_WEIRD_SERVER_REPLY, "%s", k->p.error);
            return;
        }
        if (st == LGW_HTTP1_STOPPED) {
            conn_fail(l, k, CURLE_WRITE_ERROR, "the answer could not be kept");
            return;
        }
        if ((size_t)n < sizeof(l->rbuf) && !(k->ssl && SSL_has_pending(k->ssl)))
            return; /* the rest comes with a later event */
    }
}

/* An event on a connection's socket. */
static void conn_event(struct lane *l, struct conn *k, uint32_t events)
{
    if (!k->c) { /* idle: the server closed it, or sent what nobody asked for */
        conn_close(l, k);
        return;
    }
    if (k->handshaking) {
        conn_handshake(l, k);
        return;
    }
    /* An answer is read even while the request is still going out (it may come early). */
    if ((events & EPOLLOUT) && !k->write_err && !conn_written(k) && !conn_write(l, k))
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(l, k);
}

/* Opens a connection for c through curl (connect only); conn_connected takes it over. */
static void conn_connect(struct lane *l, struct call *c)
{
    CURL *e = curl_easy_init();

    if (!e)
        goto nomem;
    curl_easy_setopt(e, CURLOPT_URL, c->ep->connect_url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    if (c->ep->tls) {
        /* curl sees http://host:443/ (the TLS is ours): the proxy is the one for https, as
         * curl would have chosen for the https URL. */
        const char *px = getenv("https_proxy");
        if (!px || !px[0])
            px = getenv("HTTPS_PROXY");
        curl_easy_setopt(e, CURLOPT_PROXY, px ? px : "");
    }
    curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L); /* a proxy, if any, carries raw bytes */
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)l->d->opt.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, l);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, l);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    if (curl_multi_add_handle(l->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        goto nomem;
    }
    c->easy = e;
    c->connecting = true;
    return;
nomem:
    deadline_remove(l, c);
    headers_free(c);
    l->running--;
    lgw_error_set(&c->inv->err, LGW_EINTERNAL, "out of memory starting the call to Lambda");
    call_finish(l, c);
}

/* curl's connect-only transfer for c ended: on success its socket becomes a conn. */
static void conn_connected(struct lane *l, CURL *e, struct call *c, CURLcode rc)
{
    curl_socket_t s = CURL_SOCKET_BAD;
    struct fdstate *st;
    struct conn *k = NULL;
    int fd = -1;

    c->easy = NULL;
    c->connecting = false;
    if (rc == CURLE_OK && curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK &&
        s != CURL_SOCKET_BAD && (st = fd_state(l, s)))
        st->flags |= FD_TAKEN; /* on_close leaves it open: the socket is ours from here */
    curl_multi_remove_handle(l->multi, e); /* curl lets go of a connect-only connection */
    curl_easy_cleanup(e);
    if (s != CURL_SOCKET_BAD && (st = fd_state(l, s)) && (st->flags & FD_TAKEN)) {
        /* curl did not close it: keep a descriptor of our own, curl closes its own later */
        st->flags &= (uint8_t)~FD_TAKEN;
        fd = fcntl(s, F_DUPFD_CLOEXEC, 0);
    } else if (s != CURL_SOCKET_BAD) {
        fd = s;
    }
    if (rc != CURLE_OK || fd < 0) {
        deadline_remove(l, c);
        headers_free(c);
        l->running--;
        if (rc == CURLE_OK)
            snprintf(c->errbuf, sizeof(c->errbuf), "the connection could not be taken over");
        answer_transport(l, c, rc == CURLE_OK ? CURLE_COULDNT_CONNECT : rc, false);
        return;
    }
    atomic_fetch_add(&l->d->n_connections, 1);
    if (!(k = calloc(1, sizeof(*k))) || !(st = fd_state(l, fd))) {
        free(k);
        close(fd);
        deadline_remove(l, c);
        headers_free(c);
        l->running--;
        lgw_error_set(&c->inv->err, LGW_EINTERNAL, "out of memory calling Lambda");
        call_finish(l, c);
        return;
    }
    k->fd = fd;
    k->ep = (size_t)(c->ep - l->d->eps);
    st->flags = FD_CONN;
    st->conn = k;
    {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    lgw_http1_init(&k->p, NULL, NULL, NULL);
    if (!c->ep->tls) {
        conn_start(l, k, c);
        return;
    }
    k->c = c;
    c->conn = k;
    if (!(k->ssl = SSL_new(l->d->tls)) || SSL_set_fd(k->ssl, fd) != 1 ||
        (c->ep->tls_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl), c->ep->tls_name)
                       : SSL_set_tlsext_host_name(k->ssl, c->ep->tls_name) &&
                             SSL_set1_host(k->ssl, c->ep->tls_name)) != 1) {
        ERR_clear_error();
        conn_fail(l, k, CURLE_OUT_OF_MEMORY, "out of memory");
        return;
    }
    SSL_set_connect_state(k->ssl);
    k->handshaking = true;
    /* The handshake is part of connecting: it gets the connect timeout (as it had when curl
     * ran it), within the attempt's deadline. */
    c->attempt_deadline_us = c->deadline_us;
    if (mono_us() + (int64_t)l->d->opt.connect_timeout_ms * 1000 < c->deadline_us) {
        deadline_remove(l, c);
        c->deadline_us = mono_us() + (int64_t)l->d->opt.connect_timeout_ms * 1000;
        deadline_insert(l, c);
    }
    conn_handshake(l, k);
}

/* Starts a signed attempt to a plain-HTTP endpoint. Lane lock held. */
static void conn_submit(struct lane *l, struct call *c)
{
    struct conn *k = l->idle[(size_t)(c->ep - l->d->eps)];

    c->deadline_us = mono_us() + (int64_t)c->attempt_timeout_ms * 1000;
    deadline_insert(l, c);
    l->running++;
    if (k) {
        idle_unlink(l, k);
        conn_start(l, k, c);
    } else {
        conn_connect(l, c);
    }
}

/* Lane lock held: fails the attempts on connections whose deadline passed. */
static void conn_expire(struct lane *l, int64_t now_us)
{
    struct call *c;

    while ((c = l->dl_head) && c->deadline_us <= now_us) {
        if (c->conn && c->conn->handshaking) {
            conn_fail(l, c->conn, CURLE_OPERATION_TIMEDOUT,
                      "the TLS handshake did not finish within %u ms",
                      l->d->opt.connect_timeout_ms);
        } else if (c->conn) {
            conn_fail(l, c->conn, CURLE_OPERATION_TIMEDOUT,
                      "Operation timed out after %ld milliseconds", c->attempt_timeout_ms);
        } else {
            /* still connecting */
            curl_multi_remove_handle(l->multi, c->easy);
            curl_easy_cleanup(c->easy);
            c->easy = NULL;
            c->connecting = false;
            deadline_remove(l, c);
            headers_free(c);
            l->running--;
            snprintf(c->errbuf, sizeof(c->errbuf), "Connection timed out after %ld milliseconds",
                     c->attempt_timeout_ms);
            answer_transport(l, c, CURLE_OPERATION_TIMEDOUT, false);
        }
    }
}

/* curl's timer callback: only notes when curl wants to be called (it may not be re-entered). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct lane *l = userp;

    (void)multi;
    l->curl_due_us = timeout_ms < 0 ? -1 : mono_us() + (int64_t)timeout_ms * 1000;
    return 0;
}

/* Lane lock held: answers what curl finished. */
static void lane_reap(struct lane *l)
{
    CURLMsg *m;
    int left = 0;

    while ((m = curl_multi_info_read(l->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            on_complete(l, m->easy_handle, m->data.result);
}

/* Lane lock held: runs curl's timer when it is due (at once after a handle was added). */
static void lane_timers(struct lane *l)
{
    int running = 0;

    /* Bounded: curl may ask for "now" again after a run; the lane thread sees to the rest. */
    for (int i = 0; i < 4 && l->curl_due_us >= 0 && l->curl_due_us <= mono_us(); i++) {
        l->curl_due_us = -1;
        curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    lane_reap(l);
}

/* The earliest moment the lane thread must run (monotonic µs), or INT64_MAX. Lock held. */
static int64_t lane_due_us(const struct lane *l)
{
    int64_t due = l->curl_due_us >= 0 ? l->curl_due_us : INT64_MAX;

    if (l->timers && l->timers->wake_ms * 1000 < due)
        due = l->timers->wake_ms * 1000;
    if (l->dl_head && l->dl_head->deadline_us < due)
        due = l->dl_head->deadline_us;
    for (size_t ep = 0; ep < l->d->neps; ep++)
        if (l->idle_tail[ep] &&
            l->idle_tail[ep]->idle_since_us + (int64_t)l->d->opt.idle_ms * 1000 < due)
            due = l->idle_tail[ep]->idle_since_us + (int64_t)l->d->opt.idle_ms * 1000;
    return due;
}

/*
 * Releases the lane's lock: wakes the lane thread if it sleeps past what is now due, then
 * answers the calls that finished meanwhile (done runs with no lane lock held).
 */
static unsigned lane_unlock(struct lane *l)
{
    struct lambda *d = l->d;
    struct call *fin = l->fin;
    bool wake = l->sleeping && lane_due_us(l) < l->sleep_until_us;
    unsigned answered = 0;

    l->fin = NULL;
    if (wake)
        l->sleeping = false; /* one wake is enough */
    pthread_mutex_unlock(&l->lock);
    if (wake)
        eventfd_write(l->evfd, 1);
    /* Every call on fin still counts in flight, so d lives until the last call_done. */
    while (fin) {
        struct call *next = fin->next;
        call_done(d, fin);
        fin = next;
        answered++;
    }
    return answered;
}

/* Signs and starts an attempt, from any thread that does not hold the lane's lock. */
static unsigned lane_start(struct lane *l, struct call *c)
{
    bool signed_ok = attempt_sign(l->d, c);

    pthread_mutex_lock(&l->lock);
    if (signed_ok)
        attempt_submit(l, c);
    else
        call_finish(l, c);
    lane_timers(l); /* a new connection's connect-only transfer asked for an immediate run */
    return lane_unlock(l);
}

/*
 * Lane lock held on entry and on return: hands the ready sockets to curl, runs curl's timer and
 * starts the retries that are due (signed with the lock released). Returns the calls answered
 * while the lock was released.
 */
static unsigned lane_work(struct lane *l, const struct epoll_event *evs, int n)
{
    struct call *due = NULL, **tail = &due, *c;
    int64_t now_us;
    unsigned answered = 0;

    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == l->evfd) {
            eventfd_t v;
            eventfd_read(l->evfd, &v);
            continue;
        }
        on_event(l, fd, evs[i].events);
    }
    lane_timers(l);
    now_us = mono_us();
    conn_expire(l, now_us);
    idle_reap(l, now_us);
    while ((c = l->timers) && c->wake_ms * 1000 <= now_us) {
        l->timers = c->next;
        c->next = NULL;
        *tail = c;
        tail = &c->next;
    }
    if (due) {
        answered += lane_unlock(l);
        while ((c = due)) {
            due = c->next;
            c->next = NULL;
            answered += lane_start(l, c);
        }
        pthread_mutex_lock(&l->lock);
    }
    return answered;
}

/* Lane lock held: how long the lane's driver may wait (ms, at most max_ms; -1 = no limit),
 * and the note that it now waits, so that a caller moving a deadline earlier wakes it. */
static int lane_sleep(struct lane *l, int max_ms)
{
    int64_t until = lane_due_us(l), now_us = mono_us();
    int timeout;

    if (until == INT64_MAX || (max_ms >= 0 && until - now_us > (int64_t)max_ms * 1000)) {
        timeout = max_ms;
        until = max_ms < 0 ? INT64_MAX : now_us + (int64_t)max_ms * 1000;
    } else {
        timeout = until <= now_us ? 0 : (int)((until - now_us + 999) / 1000);
    }
    /* A wake is owed only for a deadline before the one planned for (lane_unlock). */
    l->sleeping = true;
    l->sleep_until_us = until;
    return timeout;
}

/* The lane's own thread, when no HTTP loop drives it (see lgw_lambda_options.driven). */
static void *lane_main(void *arg)
{
    struct lane *l = arg;
    struct epoll_event evs[64];
    int n = 0;

    pthread_mutex_lock(&l->lock);
    for (;;) {
        int timeout;

        lane_work(l, evs, n);
        if (l->stop && !l->running && !l->timers)
            break;
        timeout = lane_sleep(l, POLL_MAX_MS);
        lane_unlock(l);
        n = epoll_wait(l->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
        if (n < 0)
            n = 0; /* EINTR */
        pthread_mutex_lock(&l->lock);
        l->sleeping = false;
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static int lane_init(struct lambda *d, struct lane *l)
{
    struct epoll_event ev = {.events = EPOLLIN};

    l->d = d;
    l->epfd = l->evfd = -1;
    l->curl_due_us = -1;
    pthread_mutex_init(&l->lock, NULL);
    if (!(l->idle = calloc(d->neps ? d->neps : 1, sizeof(*l->idle))) ||
        !(l->idle_tail = calloc(d->neps ? d->neps : 1, sizeof(*l->idle_tail))))
        return -1;
    if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || !(l->multi = curl_multi_init()))
        return -1;
    ev.data.fd = l->evfd;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0)
        return -1;
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    /* Keep every connection that was needed at the busiest moment: curl's default (4 per easy
     * handle in the multi at the time) closes most of them whenever the load dips, and opening
     * them again costs a connect and its timers on every burst. */
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)d->opt.max_inflight);
    if (RAND_bytes((unsigned char *)&l->rng, sizeof(l->rng)) != 1 || l->rng == 0)
        l->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)l;
    if (d->opt.driven)
        return 0; /* an HTTP loop runs it: lambda_loop_attach() */
    if (pthread_create(&l->thread, NULL, lane_main, l) != 0)
        return -1;
    l->started = true;
    return 0;
}

/* Stops the lane's thread (nothing may be in flight) and frees what the lane holds. */
static void lane_fini(struct lane *l)
{
    if (l->started) {
        pthread_mutex_lock(&l->lock);
        l->stop = true;
        pthread_mutex_unlock(&l->lock);
        eventfd_write(l->evfd, 1);
        pthread_join(l->thread, NULL);
    }
    for (size_t fd = 0; fd < l->nfds; fd++)
        if ((l->fds[fd].flags & FD_CONN) && !l->fds[fd].conn->c)
            conn_close(l, l->fds[fd].conn);
    free(l->idle);
    free(l->idle_tail);
    if (l->multi)
        curl_multi_cleanup(l->multi); /* closes the kept connections through on_close */
    free(l->fds);
    if (l->evfd >= 0)
        close(l->evfd);
    if (l->epfd >= 0)
        close(l->epfd);
    pthread_mutex_destroy(&l->lock);
}

/* The lane a thread drives (lambda_loop_attach), and whose dispatcher it is. */
static _Thread_local struct lambda *bound_d;
static _Thread_local struct lane *bound_lane;

/* The lane of the calling thread: the one it drives, else one it keeps to, spread over the
 * lanes in turn. */
static struct lane *lane_pick(struct lambda *d)
{
    static atomic_uint next;
    static _Thread_local unsigned mine = UINT_MAX;

    if (bound_d == d)
        return bound_lane;
    if (mine == UINT_MAX)
        mine = atomic_fetch_add(&next, 1) & (UINT_MAX >> 1);
    return &d->lanes[mine % d->nlanes];
}

/* ---- driven by the HTTP loops (dispatcher.h: loop_attach, loop_timeout, loop_run) ---- */

static int lambda_loop_attach(struct lgw_dispatcher *base, unsigned idx)
{
    struct lambda *d = (struct lambda *)base;

    if (!d->opt.driven)
        return -1;
    bound_d = d;
    bound_lane = &d->lanes[idx % d->nlanes];
    return bound_lane->epfd;
}

static int lambda_loop_timeout(struct lgw_dispatcher *base)
{
    struct lane *l = bound_lane;
    int timeout;

    (void)base;
    pthread_mutex_lock(&l->lock);
    timeout = lane_sleep(l, -1);
    lane_unlock(l);
    return timeout;
}

static unsigned lambda_loop_run(struct lgw_dispatcher *base, bool ready)
{
    struct lane *l = bound_lane;
    struct epoll_event evs[64];
    int n = 0;
    unsigned answered;

    (void)base;
    if (ready && (n = epoll_wait(l->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), 0)) < 0)
        n = 0;
    pthread_mutex_lock(&l->lock);
    l->sleeping = false;
    answered = lane_work(l, evs, n);
    return answered + lane_unlock(l);
}

/* ---- the dispatcher operations ---- */

/* Validates and maps inv into a new call; on refusal sets inv->err and returns NULL. */
static struct call *prepare(struct lambda *d, struct lgw_invocation *inv, enum lgw_invoke_type type)
{
    const char *name = inv->function;
    const char *q = inv->qualifier && *inv->qualifier ? inv->qualifier : "";
    const struct target *t;
    char fname[FNAME_ENC_MAX + 1], qenc[QUALIFIER_ENC_MAX + 1];
    struct call *c = NULL;
    size_t limit = type == LGW_INVOKE_EVENT ? LGW_ASYNC_PAYLOAD_MAX : LGW_SYNC_PAYLOAD_MAX;

    if (!lgw_function_name_valid(name)) {
        lgw_error_set(&inv->err, LGW_EBADREQUEST,
                      "the function name must be 1-64 of [A-Za-z0-9_-]");
        return NULL;
    }
    if (*q && !lgw_qualifier_valid(q)) {
        lgw_error_set(&inv->err, LGW_EBADREQUEST,
                      "the qualifier must be $LATEST or 1-128 of [A-Za-z0-9_-]");
        return NULL;
    }
    t = find_target(d, name);
    if (t && t->qualifier[0]) {
        if (*q && strcmp(q, t->qualifier) != 0) {
            atomic_fetch_add(&d->n_denied, 1);
            lgw_error_set(&inv->err, LGW_EDENIED,
                          "function '%s' is mapped to qualifier '%s' by the gateway; '%s' may "
                          "not be called through it",
                          name, t->qualifier, q);
            return NULL;
        }
        q = t->qualifier;
    }
    if (!allowed(d, name, q)) {
        atomic_fetch_add(&d->n_denied, 1);
        lgw_error_set(&inv->err, LGW_EDENIED,
                      "function '%s%s%s' is not in the gateway's allow-list", name, *q ? ":" : "",
                      q);
        return NULL;
    }
    if (type != LGW_INVOKE_DRYRUN && inv->payload && inv->payload_len > limit) {
        lgw_error_set(&inv->err, LGW_ETOOLARGE,
                      "Request must be smaller than %zu bytes for the InvokeFunction operation",
                      limit);
        return NULL;
    }
    if (!(c = calloc(1, sizeof(*c))))
        goto nomem;
    c->d = d;
    c->type = type;
    c->inv = inv;
    c->ans.retry_after = -1;
    snprintf(c->function, sizeof(c->function), "%s", name);
    c->ep = &d->eps[t ? t->ep : 0];
    if (!t && !pct_encode(name, strlen(name), fname, sizeof(fname)))
        goto nomem; /* cannot happen: a valid name is 64 bytes */
    if (*q) {
        if (!pct_encode(q, strlen(q), qenc, sizeof(qenc)))
            goto nomem;
        snprintf(c->query, sizeof(c->query), "Qualifier=%s", qenc);
    }
    snprintf(c->path, sizeof(c->path), "%s" API_PATH "%s" API_SUFFIX,
             c->ep->base + c->ep->prefix_at, t ? t->fname_enc : fname);
    if (type != LGW_INVOKE_DRYRUN) {
        if (inv->payload) {
            c->body = inv->payload;
            c->body_len = inv->payload_len;
        } else {
            json_t *empty = inv->event ? NULL : json_object();
            c->owned_body = lgw_json_dumps(inv->event ? inv->event : empty, &c->body_len);
            json_decref(empty);
            if (!c->owned_body)
                goto nomem;
            c->body = c->owned_body;
            if (c->body_len > limit) {
                lgw_error_set(&inv->err, LGW_ETOOLARGE,
                              "Request must be smaller than %zu bytes for the InvokeFunction "
                              "operation",
                              limit);
                goto fail;
            }
        }
        if (inv->client_context) {
            size_t n = strlen(inv->client_context);
            if (4 * ((n + 2) / 3) > CLIENT_CONTEXT_B64_MAX) {
                lgw_error_set(&inv->err, LGW_EBADREQUEST,
                              "the client context must be at most %d bytes of base64",
                              CLIENT_CONTEXT_B64_MAX);
                goto fail;
            }
            if (!(c->client_context = malloc(4 * ((n + 2) / 3) + 1)))
                goto nomem;
            EVP_EncodeBlock((unsigned char *)c->client_context,
                            (const unsigned char *)inv->client_context, (int)n);
        }
    }
    c->log_tail = inv->log_tail && type == LGW_INVOKE_SYNC;
    /* Hashing up to 6 MiB is the costliest step of signing: done here, on the caller's thread
     * and once per call, rather than at every attempt. */
    sha256_hex(c->body, c->body_len, c->payload_hash);
    if (!c->payload_hash[0])
        goto nomem;
    c->attempt_timeout_ms = (long)(t && t->timeout_ms ? t->timeout_ms : d->opt.default_timeout_ms) +
                            (long)d->opt.timeout_margin_ms;
    return c;
nomem:
    lgw_error_set(&inv->err, LGW_EINTERNAL, "out of memory");
fail:
    call_free(c);
    return NULL;
}

static void start(struct lambda *d, struct lgw_invocation *inv, enum lgw_invoke_type type,
                  lgw_done_fn done, void *arg)
{
    struct call *c = prepare(d, inv, type);

    if (!c)
        goto refuse;
    c->done = done;
    c->done_arg = arg;
    /* Counted in flight before draining is read: drain sets draining before it reads the
     * count, so one of the two sees the other (both are sequentially consistent). */
    if (atomic_fetch_add(&d->inflight, 1) >= d->opt.max_inflight) {
        inflight_put(d);
        call_free(c);
        lgw_error_set(&inv->err, LGW_ETHROTTLED, "Rate Exceeded.");
        snprintf(inv->err.reason, sizeof(inv->err.reason), "ConcurrentInvocationLimitExceeded");
        goto refuse;
    }
    if (atomic_load(&d->draining)) {
        inflight_put(d);
        call_free(c);
        lgw_error_set(&inv->err, LGW_ESHUTDOWN, "the gateway is shutting down");
        goto refuse;
    }
    atomic_fetch_add(&d->n_calls, 1);
    c->lane = lane_pick(d);
    lane_start(c->lane, c);
    return;
refuse:
    done(inv, arg);
}

static void lambda_dispatch(struct lgw_dispatcher *base, struct lgw_invocation *inv,
                            lgw_done_fn done, void *arg)
{
    start((struct lambda *)base, inv, LGW_INVOKE_SYNC, done, arg);
}

static void lambda_dispatch_async(struct lgw_dispatcher *base, struct lgw_invocation *inv,
                                  lgw_done_fn done, void *arg)
{
    start((struct lambda *)base, inv, LGW_INVOKE_EVENT, done, arg);
}

static void lambda_check(struct lgw_dispatcher *base, struct lgw_invocation *inv, lgw_done_fn done,
                         void *arg)
{
    start((struct lambda *)base, inv, LGW_INVOKE_DRYRUN, done, arg);
}

static bool json_array_has(json_t *a, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(a, i, v)
    {
        if (strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

static json_t *lambda_functions(struct lgw_dispatcher *base)
{
    struct lambda *d = (struct lambda *)base;
    json_t *a = json_array();

    for (size_t i = 0; a && i < d->ntargets; i++)
        json_array_append_new(a, json_string(d->targets[i].name));
    /* Exact allow-list names are callable too; globs name no function. */
    for (size_t i = 0; a && i < d->nallow; i++)
        if (!strpbrk(d->allow[i], "*:") && !json_array_has(a, d->allow[i]))
            json_array_append_new(a, json_string(d->allow[i]));
    return a;
}

static void lambda_drain(struct lgw_dispatcher *base)
{
    struct lambda *d = (struct lambda *)base;

    atomic_store(&d->draining, true);
    pthread_mutex_lock(&d->lock);
    while (atomic_load(&d->inflight))
        pthread_cond_wait(&d->idle, &d->lock);
    d->drained = true;
    pthread_mutex_unlock(&d->lock);
}

static void lambda_destroy(struct lgw_dispatcher *base)
{
    struct lambda *d = (struct lambda *)base;

    if (!d->drained)
        lambda_drain(base);
    for (size_t i = 0; d->lanes && i < d->nlanes; i++)
        lane_fini(&d->lanes[i]);
    free(d->lanes);
    if (d->own_creds)
        lgw_credentials_provider_free(d->creds);
    lgw_sigv4_key_cache_free(d->keys);
    SSL_CTX_free(d->tls);
    for (size_t i = 0; i < d->nallow; i++)
        free(d->allow[i]);
    free(d->allow);
    free(d->targets);
    free(d->eps);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->lock);
    if (d->curl_inited)
        curl_global_cleanup();
    free(d);
}

static const struct lgw_dispatcher_ops lambda_ops = {
    .name = "lambda",
    .dispatch = lambda_dispatch,
    .dispatch_async = lambda_dispatch_async,
    .check = lambda_check,
    .functions = lambda_functions,
    .drain = lambda_drain,
    .destroy = lambda_destroy,
    .loop_attach = lambda_loop_attach,
    .loop_timeout = lambda_loop_timeout,
    .loop_run = lambda_loop_run,
};

int lgw_lambda_stats(struct lgw_dispatcher *base, struct lgw_lambda_stats *out)
{
    struct lambda *d = (struct lambda *)base;

    memset(out, 0, sizeof(*out));
    if (!base || base->ops != &lambda_ops)
        return -1;
    out->calls = atomic_load(&d->n_calls);
    out->attempts = atomic_load(&d->n_attempts);
    out->retries = atomic_load(&d->n_retries);
    out->denied = atomic_load(&d->n_denied);
    out->connections = atomic_load(&d->n_connections);
    out->idle_connections = atomic_load(&d->n_idle);
    out->inflight = atomic_load(&d->inflight);
    return 0;
}

/* ---- creation ---- */

static void warn(const struct lambda *d, const char *msg, const char *name)
{
    if (!d->opt.log)
        return;
    flockfile(stderr);
    fprintf(stderr, "{\"level\":\"warn\",\"event\":\"lambda_config\",\"function\":\"");
    log_str(stderr, name);
    fprintf(stderr, "\",\"message\":\"");
    log_str(stderr, msg);
    fprintf(stderr, "\"}\n");
    funlockfile(stderr);
}

static enum lgw_errc apply_options(struct lambda *d, const struct lgw_lambda_options *opt,
                                   struct lgw_error *err)
{
    struct lgw_lambda_options *o = &d->opt;

    *o = opt ? *opt : (struct lgw_lambda_options){0};
    o->env = NULL;
    o->credentials = NULL;
    o->region = o->endpoint = NULL;
    o->allow = NULL;
    o->nallow = 0;
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = LGW_LAMBDA_DEFAULT_CONNECT_TIMEOUT_MS;
    if (!o->default_timeout_ms)
        o->default_timeout_ms = LGW_LAMBDA_DEFAULT_TIMEOUT_MS;
    if (!o->timeout_margin_ms)
        o->timeout_margin_ms = LGW_LAMBDA_DEFAULT_MARGIN_MS;
    if (!o->max_attempts)
        o->max_attempts = LGW_LAMBDA_DEFAULT_MAX_ATTEMPTS;
    if (!o->retry_base_ms)
        o->retry_base_ms = LGW_LAMBDA_DEFAULT_RETRY_BASE_MS;
    if (!o->retry_cap_ms)
        o->retry_cap_ms = LGW_LAMBDA_DEFAULT_RETRY_CAP_MS;
    if (!o->retry_budget_ms)
        o->retry_budget_ms = LGW_LAMBDA_DEFAULT_RETRY_BUDGET_MS;
    if (!o->max_inflight)
        o->max_inflight = LGW_LAMBDA_DEFAULT_MAX_INFLIGHT;
    if (!o->idle_ms)
        o->idle_ms = LGW_LAMBDA_DEFAULT_IDLE_MS;
    if (!o->lanes) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->lanes = n < 1 ? 1u : n > LANES_MAX ? LANES_MAX : (unsigned)n;
    }
    if (o->lanes > LANES_MAX)
        return lgw_error_set(err, LGW_EINTERNAL, "lambda: lanes must be 1 to %u", LANES_MAX);
    if (o->max_attempts > LGW_LAMBDA_MAX_ATTEMPTS)
        return lgw_error_set(err, LGW_EINTERNAL, "lambda: max_attempts must be 1 to %u",
                             LGW_LAMBDA_MAX_ATTEMPTS);
    if (o->default_timeout_ms > LGW_MAX_TIMEOUT_MS)
        return lgw_error_set(err, LGW_EINTERNAL, "lambda: default timeout over %u ms",
                             LGW_MAX_TIMEOUT_MS);
    return LGW_OK;
}

static enum lgw_errc copy_allow(struct lambda *d, const struct lgw_lambda_options *opt,
                                struct lgw_error *err)
{
    d->allow_any = opt && opt->allow_any;
    if (!opt || !opt->nallow) {
        if (!d->allow_any)
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "lambda mode needs an allow-list of the functions callers may "
                                 "reach (\"allow\": names or * globs), or --allow-any-function "
                                 "to allow every function the credentials can invoke");
        return LGW_OK;
    }
    if (!(d->allow = calloc(opt->nallow, sizeof(*d->allow))))
        return lgw_error_set(err, LGW_EINTERNAL, "out of memory");
    for (size_t i = 0; i < opt->nallow; i++) {
        if (!pattern_valid(opt->allow[i]))
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "allow[%zu]: '%.256s' must be a name or NAME:QUALIFIER of "
                                 "[A-Za-z0-9_-] and * globs",
                                 i, opt->allow[i] ? opt->allow[i] : "");
        if (!(d->allow[i] = strdup(opt->allow[i])))
            return lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        d->nallow++;
    }
    return LGW_OK;
}

/* The TLS settings every https:// connection shares: TLS 1.2 or later, the peer verified
 * against AWS_CA_BUNDLE / the profile's ca_bundle, else the system's CA store. */
static enum lgw_errc tls_setup(struct lambda *d, const struct lgw_aws_env *env,
                               struct lgw_error *err)
{
    char ca[4096];
    static const unsigned char alpn[] = "\x08http/1.1";

    if (lgw_aws_ca_bundle_resolve(env, ca, sizeof(ca), err) != LGW_OK)
        return err ? err->code : LGW_EINTERNAL;
    if (!(d->tls = SSL_CTX_new(TLS_client_method())))
        return lgw_error_set(err, LGW_EINTERNAL, "cannot set up TLS");
    SSL_CTX_set_min_proto_version(d->tls, TLS1_2_VERSION);
    /* RELEASE_BUFFERS: an idle connection holds no 34 KB of record buffers */
    SSL_CTX_set_mode(d->tls, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(d->tls, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(d->tls, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(d->tls, alpn, sizeof(alpn) - 1);
    if (ca[0] ? SSL_CTX_load_verify_locations(d->tls, ca, NULL) != 1
              : SSL_CTX_set_default_verify_paths(d->tls) != 1) {
        char why[160] = "";
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        ERR_clear_error();
        if (ca[0])
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "cannot read CA certificates from '%.200s' (AWS_CA_BUNDLE or "
                                 "ca_bundle): %s",
                                 ca, why);
        return lgw_error_set(err, LGW_EINTERNAL, "cannot load the system's CA certificates: %s",
                             why);
    }
    return LGW_OK;
}

struct lgw_dispatcher *lgw_lambda_new(const struct lgw_function_config *fns, size_t nfns,
                                      const struct lgw_lambda_options *opt, struct lgw_error *err)
{
    struct lambda *d = calloc(1, sizeof(*d));
    struct lgw_credentials_options copts;
    char region[LGW_AWS_REGION_MAX + 1];
    struct setup su;

    if (!d) {
        lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        return NULL;
    }
    d->base.ops = &lambda_ops;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->idle, NULL);
    if (apply_options(d, opt, err) || copy_allow(d, opt, err))
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lgw_error_set(err, LGW_EINTERNAL, "cannot initialise libcurl");
        goto fail;
    }
    d->curl_inited = true;
    su.env = opt ? opt->env : NULL;
    su.endpoint = opt ? opt->endpoint : NULL;
    if (opt && opt->region) {
        if (!region_valid(opt->region)) {
            lgw_error_set(err, LGW_EINTERNAL, "region '%.40s' is not an AWS region", opt->region);
            goto fail;
        }
        snprintf(region, sizeof(region), "%s", opt->region);
    } else if (lgw_aws_region_resolve(su.env, NULL, region, sizeof(region), err) != LGW_OK) {
        goto fail;
    }
    su.region = region;
    d->eps = calloc(nfns + 1, sizeof(*d->eps));
    d->targets = calloc(nfns ? nfns : 1, sizeof(*d->targets));
    if (!d->eps || !d->targets) {
        lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto fail;
    }
    /* eps[0] is the default region's: unconfigured functions use it. */
    if (endpoint_for(d, su.env, region, su.endpoint, err) == (size_t)-1)
        goto fail;
    for (size_t i = 0; i < nfns; i++) {
        if (add_target(d, &fns[i], &su, err) != LGW_OK)
            goto fail;
        if (!allowed(d, fns[i].name, d->targets[d->ntargets - 1].qualifier))
            warn(d, "configured but not in the allow-list: calls to it are denied", fns[i].name);
    }
    for (size_t i = 0; i < d->neps; i++)
        if (d->eps[i].tls && !d->tls && tls_setup(d, su.env, err) != LGW_OK)
            goto fail;
    if (opt && opt->credentials) {
        d->creds = opt->credentials;
    } else {
        memset(&copts, 0, sizeof(copts));
        copts.env = su.env;
        if (lgw_credentials_provider_new(&copts, &d->creds, err) != LGW_OK)
            goto fail;
        d->own_creds = true;
    }
    if (!(d->keys = lgw_sigv4_key_cache_new(0))) {
        lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto fail;
    }
    d->nlanes = d->opt.lanes;
    if (!(d->lanes = calloc(d->nlanes, sizeof(*d->lanes)))) {
        lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < d->nlanes; i++) {
        if (lane_init(d, &d->lanes[i]) < 0) {
            lgw_error_set(err, LGW_EINTERNAL, "cannot start a transport lane: %s", strerror(errno));
            d->nlanes = i + 1; /* lane_fini() copes with a half-made one */
            goto fail;
        }
    }
    return &d->base;
fail:
    lambda_destroy(&d->base);
    return NULL;
}
