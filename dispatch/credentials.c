/*
 * credentials.c - the AWS credentials chain, its refresh thread, and region/endpoint resolution
 * (see credentials.h for the rules).
 *
 * Concurrency: the provider's current credentials sit behind one mutex that is never held across
 * I/O. The refresh thread fetches with the mutex released and swaps the result in, so a caller
 * copying credentials out waits at most for another memcpy. A condition variable wakes the
 * refresher (stop, or a caller that found the credentials expired) and wakes such callers when
 * an attempt completes.
 *
 * Secrets (keys, tokens, HTTP bodies that carry them, the Authorization header) are wiped with
 * OPENSSL_cleanse before their memory is freed or leaves scope. One gap: jansson keeps its own
 * copies of the JSON strings while parsing and frees them without wiping; only a process-wide
 * json_set_alloc_funcs() could change that, which is not this module's call to make.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "credentials.h"
#include "ini.h"

#define HTTP_BODY_MAX 65536    /* a credentials answer is ~1.5 KB */
#define AUTH_TOKEN_MAX 16384   /* container Authorization token (EKS pod identity: a JWT) */
#define IMDS_TOKEN_MAX 1024    /* IMDSv2 session tokens are ~56 characters */
#define IMDS_ROLE_MAX 128      /* IAM role names are at most 64 */
#define IMDS_TOKEN_TTL "21600" /* 6 hours, the SDKs' value */
#define PATH_CAP 4096
#define URL_CAP 2048
#define MIN_RESCHEDULE_MS 100 /* never spin on credentials with a near-zero lifetime */

#define DEFAULT_CONTAINER_BASE "http://169.254.170.2"
#define DEFAULT_IMDS_ENDPOINT "http://169.254.169.254"
#define DEFAULT_IMDS_ENDPOINT_V6 "http://[fd00:ec2::254]"

enum source {
    SRC_NONE = 0,
    SRC_STATIC,
    SRC_ENV,
    SRC_CRED_FILE,
    SRC_CONFIG_FILE,
    SRC_CONTAINER,
    SRC_IMDS,
};

static const char *const source_names[] = {
    [SRC_NONE] = "none",
    [SRC_STATIC] = "static",
    [SRC_ENV] = "environment",
    [SRC_CRED_FILE] = "shared-credentials-file",
    [SRC_CONFIG_FILE] = "config-file",
    [SRC_CONTAINER] = "container",
    [SRC_IMDS] = "imds",
};

/* What the refreshable sources need, copied from the environment once at creation. */
struct settings {
    char *container_url;        /* NULL: no container source */
    const char *container_var;  /* the variable it came from, for messages */
    char *container_token;      /* secret; NULL when none */
    char *container_token_file; /* NULL when none; read at each fetch */
    char *imds_endpoint;        /* no trailing '/' */
    bool imds_disabled;
    bool imds_v1_disabled;
    long connect_timeout_ms;
    long timeout_ms;
};

struct lgw_credentials_provider {
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* Under mu. */
    struct lgw_aws_credentials cur;
    int64_t next_attempt_ms; /* when the refresher acts next; 0 = never */
    long backoff_ms;         /* 0 after a success */
    bool refreshing;         /* an attempt is in flight (mu released meanwhile) */
    bool force;              /* a caller wants an attempt now */
    bool stopping;
    uint64_t attempts; /* completed attempts, so waiters can tell one finished */
    bool last_failed;
    int64_t last_fail_ms;
    struct lgw_error last_err;

    /* Set at creation, read-only after. */
    enum source src;
    struct settings set;
    long refresh_window_ms, retry_min_ms, retry_max_ms;
    bool thread_started;
    pthread_t thread;
    bool curl_inited;

    atomic_bool stop_flag; /* read by curl's progress callback to abort a fetch on free */
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void wipe_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value of name, or NULL when unset or empty (the SDKs treat both alike). */
static const char *env_get(const struct lgw_aws_env *env, const char *name)
{
    const char *v;

    if (env && env->getenv)
        v = env->getenv(env->arg, name);
    else
        v = getenv(name);
    return v && v[0] ? v : NULL;
}

static bool env_true(const struct lgw_aws_env *env, const char *name)
{
    const char *v = env_get(env, name);

    return v && strcasecmp(v, "true") == 0;
}

/* Copies src into dst[cap]; false (dst emptied) when it does not fit. */
static bool copy_bounded(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);

    if (n >= cap) {
        dst[0] = '\0';
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

/* Appends to a bounded note list ("a; b; c"); silently stops when full (it is a message). */
static void note_add(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_add(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;

    if (len + 3 >= cap)
        return;
    if (len) {
        memcpy(buf + len, "; ", 3);
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

void lgw_aws_credentials_release(struct lgw_aws_credentials *c)
{
    if (!c)
        return;
    OPENSSL_cleanse(c, sizeof(*c));
}

void lgw_aws_credentials_release_strings(struct lgw_aws_credentials *c)
{
    if (!c)
        return;
    OPENSSL_cleanse(c->access_key_id, strnlen(c->access_key_id, sizeof(c->access_key_id)));
    OPENSSL_cleanse(c->secret_access_key,
                    strnlen(c->secret_access_key, sizeof(c->secret_access_key)));
    OPENSSL_cleanse(c->session_token, strnlen(c->session_token, sizeof(c->session_token)));
}

static enum lgw_errc set_creds(struct lgw_aws_credentials *c, const char *what, const char *akid,
                               const char *secret, const char *token, struct lgw_error *err)
{
    lgw_aws_credentials_release(c);
    if (!copy_bounded(c->access_key_id, sizeof(c->access_key_id), akid))
        return lgw_error_set(err, LGW_EINTERNAL, "%s: access key id longer than %d characters",
                             what, LGW_AWS_ACCESS_KEY_ID_MAX);
    if (!copy_bounded(c->secret_access_key, sizeof(c->secret_access_key), secret)) {
        lgw_aws_credentials_release(c);
        return lgw_error_set(err, LGW_EINTERNAL, "%s: secret access key longer than %d characters",
                             what, LGW_AWS_SECRET_ACCESS_KEY_MAX);
    }
    if (token && !copy_bounded(c->session_token, sizeof(c->session_token), token)) {
        lgw_aws_credentials_release(c);
        return lgw_error_set(err, LGW_EINTERNAL, "%s: session token longer than %d characters",
                             what, LGW_AWS_SESSION_TOKEN_MAX);
    }
    return LGW_OK;
}

/* ---- time ------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool take_digits(const char **s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return false;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return true;
}

static bool take_char(const char **s, char c)
{
    if (**s != c)
        return false;
    (*s)++;
    return true;
}

/*
 * ISO 8601 / RFC 3339 as credential endpoints write it: 2024-05-01T12:34:56Z, with optional
 * fractional seconds and a Z or +hh:mm / -hh:mm / +hhmm offset. Converted without timegm() so
 * the file needs no _DEFAULT_SOURCE.
 */
static bool parse_iso8601_ms(const char *s, int64_t *out)
{
    int Y, M, D, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;

    if (!take_digits(&s, 4, &Y) || !take_char(&s, '-') || !take_digits(&s, 2, &M) ||
        !take_char(&s, '-') || !take_digits(&s, 2, &D))
        return false;
    if (*s != 'T' && *s != 't' && *s != ' ')
        return false;
    s++;
    if (!take_digits(&s, 2, &h) || !take_char(&s, ':') || !take_digits(&s, 2, &mi) ||
        !take_char(&s, ':') || !take_digits(&s, 2, &sec))
        return false;
    if (*s == '.') {
        int scale = 100;

        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        for (; isdigit((unsigned char)*s); s++) {
            ms += (*s - '0') * scale;
            scale /= 10;
        }
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s == '+' ? 1 : -1;
        s++;
        if (!take_digits(&s, 2, &oh))
            return false;
        take_char(&s, ':');
        if (!take_digits(&s, 2, &om))
            return false;
    } else {
        return false;
    }
    if (*s || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60 || oh > 23 ||
        om > 59)
        return false;
    *out = ((days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + sec) -
            sign * (oh * 3600 + om * 60)) *
               1000 +
           ms;
    return true;
}

static void format_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (!gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, cap, "(time %lld)", (long long)ms);
}

/* ---- URLs ------------------------------------------------------------------------------- */

/*
 * Checks that v is an http(s) URL with a host and no user info, query or fragment. On success
 * and when host_out is not NULL, copies the host (IPv6 in brackets, as curl gives it).
 * `what` names the variable or file for the message; the value itself is not echoed because a
 * URL can carry credentials in its user info.
 */
static enum lgw_errc check_http_url(const char *what, const char *v, bool *is_https, char *host_out,
                                    size_t host_cap, struct lgw_error *err)
{
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL, *part = NULL;
    enum lgw_errc rc = LGW_OK;

    if (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: not an http:// or https:// URL", what);
        goto out;
    }
    if (strlen(v) > LGW_AWS_ENDPOINT_MAX) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: URL longer than %d characters", what,
                           LGW_AWS_ENDPOINT_MAX);
        goto out;
    }
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            rc = lgw_error_set(err, LGW_EINTERNAL, "%s: URL contains spaces or control characters",
                               what);
            goto out;
        }
    }
    u = curl_url();
    if (!u) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: out of memory", what);
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, v, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: not a valid URL", what);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
        rc = lgw_error_set(err, LGW_EINTERNAL,
                           "%s: URL must not have user info, a query or a fragment", what);
        goto out;
    }
    if (is_https)
        *is_https = strcmp(scheme, "https") == 0;
    if (host_out && !copy_bounded(host_out, host_cap, host))
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: host name too long", what);
out:
    curl_free(part);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/*
 * Plain http to a full container URI is only safe to hosts that cannot be on the network path:
 * loopback and the ECS/EKS link-local agents (the rule botocore applies too).
 */
static bool container_host_allowed(const char *host)
{
    unsigned char a4[4];

    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0 ||
        strcasecmp(host, "[fd00:ec2::23]") == 0)
        return true;
    return inet_pton(AF_INET, host, a4) == 1 && a4[0] == 127;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

struct body {
    char *data; /* HTTP_BODY_MAX + 1 bytes */
    size_t len;
    bool too_big;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct body *b = arg;
    size_t n = size * nmemb;

    if (n > HTTP_BODY_MAX - b->len) {
        b->too_big = true;
        return 0; /* makes curl fail the transfer */
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    atomic_bool *stop = arg;

    (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load(stop) ? 1 : 0;
}

/* Frees a header list after wiping it: the Authorization and IMDS token headers are secrets. */
static void slist_free_wipe(struct curl_slist *l)
{
    for (struct curl_slist *i = l; i; i = i->next)
        if (i->data)
            OPENSSL_cleanse(i->data, strlen(i->data));
    curl_slist_free_all(l);
}

/*
 * One HTTP request to a credentials endpoint. On LGW_OK, *status is the HTTP status and b holds
 * the body (NUL-terminated; the caller wipes it). *unreachable tells "nothing listens there"
 * (connect or resolve failure, connect timeout) from other failures, so IMDS on a machine that
 * is not EC2 counts as an absent source. Proxies are disabled: these endpoints are link-local or
 * loopback, and a proxy would see the credentials.
 */
static enum lgw_errc http_call(struct lgw_credentials_provider *p, const char *what,
                               const char *method, const char *url, struct curl_slist *headers,
                               long *status, struct body *b, bool *unreachable,
                               struct lgw_error *err)
{
    CURL *c = NULL;
    CURLcode cc;
    char ebuf[CURL_ERROR_SIZE] = "";
    enum lgw_errc rc = LGW_OK;

    *status = 0;
    if (unreachable)
        *unreachable = false;
    b->len = 0;
    b->too_big = false;
    b->data[0] = '\0';
    c = curl_easy_init();
    if (!c) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: cannot create an HTTP handle", what);
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, p->set.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, p->set.timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &p->stop_flag);
    if (headers)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        if (b->too_big) {
            rc = lgw_error_set(err, LGW_ECLIENT, "%s: answer larger than %d bytes", what,
                               HTTP_BODY_MAX);
            goto out;
        }
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            rc = lgw_error_set(err, LGW_ECLIENT, "%s: stopped (provider freed)", what);
            goto out;
        }
        if (unreachable)
            *unreachable = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                           (cc == CURLE_OPERATION_TIMEDOUT && !b->len);
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: %s", what,
                           ebuf[0] ? ebuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
out:
    curl_easy_cleanup(c);
    return rc;
}

/*
 * Parses a credentials answer (container and IMDS share the shape). Messages name fields and
 * JSON positions but never echo the body: it holds the secret.
 */
static enum lgw_errc parse_creds_json(const char *what, const struct body *b,
                                      struct lgw_aws_credentials *out, struct lgw_error *err)
{
    json_t *root = NULL;
    json_error_t jerr;
    const char *akid, *secret, *token = NULL, *exp = NULL, *code;
    json_t *v;
    enum lgw_errc rc = LGW_OK;

    root = json_loadb(b->data, b->len, 0, &jerr);
    if (!root) {
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: answer is not valid JSON (line %d, column %d)",
                           what, jerr.line, jerr.column);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: answer is not a JSON object", what);
        goto out;
    }
    code = json_string_value(json_object_get(root, "Code"));
    if (code && strcmp(code, "Success") != 0) {
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: answer has Code \"%.64s\"", what, code);
        goto out;
    }
    akid = json_string_value(json_object_get(root, "AccessKeyId"));
    secret = json_string_value(json_object_get(root, "SecretAccessKey"));
    if (!akid || !akid[0] || !secret || !secret[0]) {
        rc = lgw_error_set(err, LGW_ECLIENT,
                           "%s: answer lacks string AccessKeyId and SecretAccessKey", what);
        goto out;
    }
    v = json_object_get(root, "Token");
    if (v && !json_is_null(v)) {
        token = json_string_value(v);
        if (!token) {
            rc = lgw_error_set(err, LGW_ECLIENT, "%s: Token is not a string", what);
            goto out;
        }
    }
    v = json_object_get(root, "Expiration");
    if (v && !json_is_null(v)) {
        exp = json_string_value(v);
        if (!exp) {
            rc = lgw_error_set(err, LGW_ECLIENT, "%s: Expiration is not a string", what);
            goto out;
        }
    }
    rc = set_creds(out, what, akid, secret, token, err);
    if (rc)
        goto out;
    if (exp && !parse_iso8601_ms(exp, &out->expiration_ms)) {
        lgw_aws_credentials_release(out);
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: Expiration is not an ISO 8601 time", what);
        goto out;
    }
out:
    json_decref(root);
    return rc;
}

/* ---- container credentials -------------------------------------------------------------- */

/* Reads a token file (trailing whitespace dropped). The caller wipe_free()s *out. */
static enum lgw_errc read_token_file(const char *path, char **out, struct lgw_error *err)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t n = 0;
    enum lgw_errc rc = LGW_OK;

    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %s: %s",
                           path, strerror(errno));
        goto out;
    }
    buf = malloc(AUTH_TOKEN_MAX + 2);
    if (!buf) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto out;
    }
    n = fread(buf, 1, AUTH_TOKEN_MAX + 1, f);
    if (ferror(f) || n > AUTH_TOKEN_MAX) {
        rc = lgw_error_set(err, LGW_EINTERNAL,
                           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %s: unreadable or larger "
                           "than %d bytes",
                           path, AUTH_TOKEN_MAX);
        goto out;
    }
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
out:
    if (buf) {
        OPENSSL_cleanse(buf, AUTH_TOKEN_MAX + 2);
        free(buf);
    }
    if (f)
        fclose(f);
    return rc;
}

/* A header value must not smuggle a second header in. */
static bool header_value_ok(const char *v)
{
    for (; *v; v++)
        if (*v == '\r' || *v == '\n')
            return false;
    return true;
}

static enum lgw_errc fetch_container(struct lgw_credentials_provider *p,
                                     struct lgw_aws_credentials *out, struct lgw_error *err)
{
    const struct settings *s = &p->set;
    char what[URL_CAP + 64];
    struct curl_slist *headers = NULL, *nh;
    char *token = NULL, *hdr = NULL;
    const char *tok = s->container_token;
    struct body b = {0};
    long status;
    size_t hlen;
    enum lgw_errc rc = LGW_OK;

    snprintf(what, sizeof(what), "container credentials %s (from %s)", s->container_url,
             s->container_var);
    /* The file wins over the variable (as in botocore) and is re-read each time: EKS rotates
     * it while the pod runs. */
    if (s->container_token_file) {
        rc = read_token_file(s->container_token_file, &token, err);
        if (rc)
            goto out;
        tok = token;
    }
    if (tok && tok[0]) {
        if (!header_value_ok(tok)) {
            rc = lgw_error_set(err, LGW_EINTERNAL,
                               "container authorization token contains a line break");
            goto out;
        }
        hlen = strlen("Authorization: ") + strlen(tok) + 1;
        hdr = malloc(hlen);
        if (!hdr) {
            rc = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
            goto out;
        }
        snprintf(hdr, hlen, "Authorization: %s", tok);
        nh = curl_slist_append(headers, hdr);
        if (!nh) {
            rc = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
            goto out;
        }
        headers = nh;
    }
    nh = curl_slist_append(headers, "Accept: application/json");
    if (!nh) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto out;
    }
    headers = nh;
    b.data = malloc(HTTP_BODY_MAX + 1);
    if (!b.data) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto out;
    }
    rc = http_call(p, what, "GET", s->container_url, headers, &status, &b, NULL, err);
    if (rc)
        goto out;
    if (status != 200) {
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: answered HTTP %ld", what, status);
        goto out;
    }
    rc = parse_creds_json(what, &b, out, err);
out:
    if (b.data) {
        OPENSSL_cleanse(b.data, HTTP_BODY_MAX + 1);
        free(b.data);
    }
    wipe_free(hdr);
    wipe_free(token);
    slist_free_wipe(headers);
    return rc;
}

/* ---- EC2 instance metadata (IMDSv2) ----------------------------------------------------- */

static bool role_name_ok(const char *r)
{
    if (!r[0])
        return false;
    for (; *r; r++)
        if (!isalnum((unsigned char)*r) && !strchr("+=,.@_-", *r))
            return false;
    return true;
}

/*
 * *absent is set when the metadata service is not there at all (not EC2) or the instance has
 * no role: the chain then reports "no credentials" rather than a failure.
 */
static enum lgw_errc fetch_imds(struct lgw_credentials_provider *p, struct lgw_aws_credentials *out,
                                bool *absent, struct lgw_error *err)
{
    const struct settings *s = &p->set;
    char what[URL_CAP + 64];
    char url[URL_CAP];
    char role[IMDS_ROLE_MAX + 1];
    char tokhdr[IMDS_TOKEN_MAX + 64] = "";
    struct curl_slist *headers = NULL;
    struct body b = {0};
    long status;
    bool unreachable = false;
    char *nl;
    enum lgw_errc rc = LGW_OK;

    *absent = false;
    snprintf(what, sizeof(what), "EC2 instance metadata %s", s->imds_endpoint);
    b.data = malloc(HTTP_BODY_MAX + 1);
    if (!b.data) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto out;
    }

    snprintf(url, sizeof(url), "%s/latest/api/token", s->imds_endpoint);
    headers = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL);
    if (!headers) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        goto out;
    }
    rc = http_call(p, what, "PUT", url, headers, &status, &b, &unreachable, err);
    slist_free_wipe(headers);
    headers = NULL;
    if (rc) {
        *absent = unreachable;
        goto out;
    }
    if (status == 200) {
        while (b.len > 0 && isspace((unsigned char)b.data[b.len - 1]))
            b.data[--b.len] = '\0';
        if (b.len == 0 || b.len > IMDS_TOKEN_MAX || !header_value_ok(b.data)) {
            rc = lgw_error_set(err, LGW_ECLIENT, "%s: malformed session token", what);
            goto out;
        }
        snprintf(tokhdr, sizeof(tokhdr), "X-aws-ec2-metadata-token: %s", b.data);
    } else if ((status == 403 || status == 404 || status == 405) && !s->imds_v1_disabled) {
        /* The SDKs fall back to IMDSv1 when the token API is missing or refused. */
        tokhdr[0] = '\0';
    } else {
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: token request answered HTTP %ld%s", what, status,
                           s->imds_v1_disabled ? " (and AWS_EC2_METADATA_V1_DISABLED)" : "");
        goto out;
    }
    if (tokhdr[0]) {
        headers = curl_slist_append(NULL, tokhdr);
        if (!headers) {
            rc = lgw_error_set(err, LGW_EINTERNAL, "out of memory");
            goto out;
        }
    }

    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", s->imds_endpoint);
    rc = http_call(p, what, "GET", url, headers, &status, &b, NULL, err);
    if (rc)
        goto out;
    if (status == 404) {
        *absent = true;
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: no IAM role attached to the instance", what);
        goto out;
    }
    if (status != 200) {
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: role name request answered HTTP %ld", what,
                           status);
        goto out;
    }
    nl = strpbrk(b.data, "\r\n");
    if (nl)
        *nl = '\0';
    if (!copy_bounded(role, sizeof(role), b.data) || !role_name_ok(role)) {
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: malformed role name", what);
        goto out;
    }

    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", s->imds_endpoint,
             role);
    rc = http_call(p, what, "GET", url, headers, &status, &b, NULL, err);
    if (rc)
        goto out;
    if (status != 200) {
        rc = lgw_error_set(err, LGW_ECLIENT, "%s: credentials of role %s answered HTTP %ld", what,
                           role, status);
        goto out;
    }
    rc = parse_creds_json(what, &b, out, err);
out:
    OPENSSL_cleanse(tokhdr, sizeof(tokhdr));
    slist_free_wipe(headers);
    if (b.data) {
        OPENSSL_cleanse(b.data, HTTP_BODY_MAX + 1);
        free(b.data);
    }
    return rc;
}

/* Fetches again from the provider's (refreshable) source. */
static enum lgw_errc fetch_source(struct lgw_credentials_provider *p,
                                  struct lgw_aws_credentials *out, struct lgw_error *err)
{
    bool absent;
    enum lgw_errc rc;

    if (p->src == SRC_CONTAINER)
        rc = fetch_container(p, out, err);
    else if (p->src == SRC_IMDS)
        rc = fetch_imds(p, out, &absent, err);
    else
        rc = lgw_error_set(err, LGW_EINTERNAL, "credentials from %s cannot be refreshed",
                           source_names[p->src]);
    if (rc == LGW_OK)
        out->source = source_names[p->src];
    return rc;
}

/* ---- shared files ----------------------------------------------------------------------- */

struct shared_files {
    char cred_path[PATH_CAP]; /* "" when there is no such file to read (no HOME) */
    char config_path[PATH_CAP];
    struct lgw_ini *cred, *config;
    char profile[LGW_AWS_PROFILE_MAX + 1];
    const char *profile_from; /* "AWS_PROFILE", "the options" or NULL for the default */
    char config_section[LGW_AWS_PROFILE_MAX + 16]; /* "" when the config lacks the profile */
};

/* var's value ("~/" expanded) or HOME/def_rel. out is "" when neither can be known. */
static enum lgw_errc shared_path(const struct lgw_aws_env *env, const char *var,
                                 const char *def_rel, char *out, size_t cap, struct lgw_error *err)
{
    const char *v = env_get(env, var);
    const char *home = env_get(env, "HOME");
    int n;

    out[0] = '\0';
    if (v && strncmp(v, "~/", 2) != 0)
        n = snprintf(out, cap, "%s", v);
    else if (!home)
        return LGW_OK;
    else if (v)
        n = snprintf(out, cap, "%s/%s", home, v + 2);
    else
        n = snprintf(out, cap, "%s/%s", home, def_rel);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
        return lgw_error_set(err, LGW_EINTERNAL, "%s: path longer than %zu bytes", var, cap - 1);
    }
    return LGW_OK;
}

static void shared_files_release(struct shared_files *sf)
{
    lgw_ini_free(sf->cred);
    lgw_ini_free(sf->config);
    sf->cred = sf->config = NULL;
}

/* Loads the config file (and the credentials file when want_cred) and picks the profile. */
static enum lgw_errc shared_files_load(const struct lgw_aws_env *env, bool want_cred,
                                       struct shared_files *sf, struct lgw_error *err)
{
    const char *prof = NULL;
    char sect[sizeof(sf->config_section)];
    enum lgw_errc rc;

    memset(sf, 0, sizeof(*sf));
    if (env && env->profile && env->profile[0]) {
        prof = env->profile;
        sf->profile_from = "the options";
    } else if ((prof = env_get(env, "AWS_PROFILE")) != NULL) {
        sf->profile_from = "AWS_PROFILE";
    } else {
        prof = "default";
    }
    if (!copy_bounded(sf->profile, sizeof(sf->profile), prof) || strpbrk(prof, "[]\r\n"))
        return lgw_error_set(err, LGW_EINTERNAL, "AWS profile name from %s is not valid",
                             sf->profile_from ? sf->profile_from : "default");

    rc = shared_path(env, "AWS_CONFIG_FILE", ".aws/config", sf->config_path,
                     sizeof(sf->config_path), err);
    if (rc)
        return rc;
    if (sf->config_path[0]) {
        rc = lgw_ini_load(sf->config_path, &sf->config, err);
        if (rc)
            return rc;
    }
    if (want_cred) {
        rc = shared_path(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", sf->cred_path,
                         sizeof(sf->cred_path), err);
        if (rc)
            goto fail;
        if (sf->cred_path[0]) {
            rc = lgw_ini_load(sf->cred_path, &sf->cred, err);
            if (rc)
                goto fail;
        }
    }
    /* The config file names profiles [profile NAME]; the default one may also be [default]. */
    snprintf(sect, sizeof(sect), "profile %s", sf->profile);
    if (lgw_ini_has_section(sf->config, sect))
        snprintf(sf->config_section, sizeof(sf->config_section), "%s", sect);
    else if (strcmp(sf->profile, "default") == 0 && lgw_ini_has_section(sf->config, "default"))
        snprintf(sf->config_section, sizeof(sf->config_section), "default");
    return LGW_OK;
fail:
    shared_files_release(sf);
    return rc;
}

/* Keys that mean the profile gets its credentials some way this module does not implement. */
static const char *const unsupported_keys[] = {
    "role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file",
};

/*
 * Credentials of the profile in one parsed file. *found: the file had usable keys. A profile
 * with half a key pair, or one that needs an unsupported mechanism, is an error (a silent fall
 * through to IMDS would hide the mistake).
 */
static enum lgw_errc profile_creds(const struct lgw_ini *ini, const char *section, const char *path,
                                   const char *profile, struct lgw_aws_credentials *out,
                                   bool *found, struct lgw_error *err)
{
    const char *akid = lgw_ini_get(ini, section, "aws_access_key_id");
    const char *secret = lgw_ini_get(ini, section, "aws_secret_access_key");
    const char *token = lgw_ini_get(ini, section, "aws_session_token");
    char what[PATH_CAP + LGW_AWS_PROFILE_MAX + 32];

    *found = false;
    snprintf(what, sizeof(what), "%s, profile '%s'", path, profile);
    if (!token || !token[0])
        token = lgw_ini_get(ini, section, "aws_security_token"); /* the legacy name */
    if (akid && !akid[0])
        akid = NULL;
    if (secret && !secret[0])
        secret = NULL;
    if (akid && secret) {
        *found = true;
        return set_creds(out, what, akid, secret, token, err);
    }
    if (akid || secret)
        return lgw_error_set(err, LGW_EINTERNAL, "%s: has %s but not %s", what,
                             akid ? "aws_access_key_id" : "aws_secret_access_key",
                             akid ? "aws_secret_access_key" : "aws_access_key_id");
    for (size_t i = 0; i < sizeof(unsupported_keys) / sizeof(unsupported_keys[0]); i++)
        if (lgw_ini_get(ini, section, unsupported_keys[i]))
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "%s: uses %s, which lambda-gateway does not support; give the "
                                 "profile aws_access_key_id and aws_secret_access_key or use "
                                 "another credentials source",
                                 what, unsupported_keys[i]);
    return LGW_OK;
}

/* ---- the chain -------------------------------------------------------------------------- */

static enum lgw_errc settings_init(struct lgw_credentials_provider *p,
                                   const struct lgw_credentials_options *o,
                                   const struct lgw_aws_env *env, struct lgw_error *err)
{
    struct settings *s = &p->set;
    const char *rel = env_get(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env_get(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *v;
    char host[256];
    bool https;
    size_t len;
    enum lgw_errc rc;

    s->connect_timeout_ms = o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 1000;
    s->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : 2000;

    /* The relative URI wins over the full one when both are set, as in the SDKs. */
    if (rel) {
        const char *base =
            o && o->container_base_url ? o->container_base_url : DEFAULT_CONTAINER_BASE;

        if (rel[0] != '/')
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: must start with '/'");
        len = strlen(base) + strlen(rel) + 1;
        if (len > URL_CAP)
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: too long");
        s->container_url = malloc(len);
        if (!s->container_url)
            return lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        snprintf(s->container_url, len, "%s%s", base, rel);
        s->container_var = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    } else if (full) {
        /* A full URI may carry a query (the check is for endpoints), so only the scheme and
         * host are checked here. */
        if (strncasecmp(full, "https://", 8) != 0 && strncasecmp(full, "http://", 7) != 0)
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "AWS_CONTAINER_CREDENTIALS_FULL_URI: not an http:// or "
                                 "https:// URL");
        {
            CURLU *u = curl_url();
            char *h = NULL;
            bool ok = u && curl_url_set(u, CURLUPART_URL, full, 0) == CURLUE_OK &&
                      curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
                      copy_bounded(host, sizeof(host), h);

            curl_free(h);
            curl_url_cleanup(u);
            if (!ok || strlen(full) >= URL_CAP)
                return lgw_error_set(err, LGW_EINTERNAL,
                                     "AWS_CONTAINER_CREDENTIALS_FULL_URI: not a valid URL");
        }
        https = strncasecmp(full, "https://", 8) == 0;
        if (!https && !container_host_allowed(host))
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http is only allowed "
                                 "to loopback or the ECS/EKS agent addresses; use https");
        s->container_url = strdup(full);
        if (!s->container_url)
            return lgw_error_set(err, LGW_EINTERNAL, "out of memory");
        s->container_var = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    }
    if ((v = env_get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) != NULL &&
        !(s->container_token_file = strdup(v)))
        return lgw_error_set(err, LGW_EINTERNAL, "out of memory");
    if ((v = env_get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) != NULL) {
        if (strlen(v) > AUTH_TOKEN_MAX || !header_value_ok(v))
            return lgw_error_set(err, LGW_EINTERNAL,
                                 "AWS_CONTAINER_AUTHORIZATION_TOKEN: longer than %d bytes or "
                                 "contains a line break",
                                 AUTH_TOKEN_MAX);
        if (!(s->container_token = strdup(v)))
            return lgw_error_set(err, LGW_EINTERNAL, "out of memory");
    }

    s->imds_disabled = env_true(env, "AWS_EC2_METADATA_DISABLED");
    s->imds_v1_disabled = env_true(env, "AWS_EC2_METADATA_V1_DISABLED");
    v = env_get(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (v) {
        rc = check_http_url("AWS_EC2_METADATA_SERVICE_ENDPOINT", v, &https, NULL, 0, err);
        if (rc)
            return rc;
    } else {
        const char *mode = env_get(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");

        v = mode && strcasecmp(mode, "ipv6") == 0 ? DEFAULT_IMDS_ENDPOINT_V6
                                                  : DEFAULT_IMDS_ENDPOINT;
    }
    s->imds_endpoint = strdup(v);
    if (!s->imds_endpoint)
        return lgw_error_set(err, LGW_EINTERNAL, "out of memory");
    len = strlen(s->imds_endpoint);
    while (len > 0 && s->imds_endpoint[len - 1] == '/')
        s->imds_endpoint[--len] = '\0';
    return LGW_OK;
}

static void settings_release(struct settings *s)
{
    free(s->container_url);
    wipe_free(s->container_token);
    free(s->container_token_file);
    free(s->imds_endpoint);
    memset(s, 0, sizeof(*s));
}

/*
 * Walks the chain. Sets p->src and fills out. "Not configured here" moves on to the next
 * source; a source that is configured but broken stops the walk with its own error.
 */
static enum lgw_errc resolve_chain(struct lgw_credentials_provider *p,
                                   const struct lgw_aws_env *env, struct lgw_aws_credentials *out,
                                   struct lgw_error *err)
{
    char tried[LGW_ERROR_MESSAGE_MAX] = "";
    struct shared_files sf;
    const char *akid = env_get(env, "AWS_ACCESS_KEY_ID");
    const char *secret = env_get(env, "AWS_SECRET_ACCESS_KEY");
    bool found = false, absent = false, files_loaded = false;
    enum lgw_errc rc = LGW_OK;

    /* 1. environment */
    if (akid && secret) {
        rc = set_creds(out, "environment", akid, secret, env_get(env, "AWS_SESSION_TOKEN"), err);
        if (rc == LGW_OK)
            p->src = SRC_ENV;
        goto out;
    }
    if (akid || secret) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s is set but %s is not",
                           akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                           akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        goto out;
    }
    note_add(tried, sizeof(tried), "environment (AWS_ACCESS_KEY_ID not set)");

    /* 2-3. shared credentials file, then config file */
    rc = shared_files_load(env, true, &sf, err);
    if (rc)
        goto out;
    files_loaded = true;
    if (lgw_ini_has_section(sf.cred, sf.profile)) {
        rc = profile_creds(sf.cred, sf.profile, sf.cred_path, sf.profile, out, &found, err);
        if (rc)
            goto out;
        if (found) {
            p->src = SRC_CRED_FILE;
            goto out;
        }
    }
    note_add(tried, sizeof(tried), "%s (%s)", sf.cred_path[0] ? sf.cred_path : "credentials file",
             !sf.cred_path[0] ? "HOME not set"
             : !sf.cred       ? "not found"
                              : "no keys for the profile");
    if (sf.config_section[0]) {
        rc = profile_creds(sf.config, sf.config_section, sf.config_path, sf.profile, out, &found,
                           err);
        if (rc)
            goto out;
        if (found) {
            p->src = SRC_CONFIG_FILE;
            goto out;
        }
    }
    note_add(tried, sizeof(tried), "%s (%s)", sf.config_path[0] ? sf.config_path : "config file",
             !sf.config_path[0] ? "HOME not set"
             : !sf.config       ? "not found"
                                : "no keys for the profile");
    /* A profile asked for by name that exists nowhere is a typo, not "use the instance role". */
    if (sf.profile_from && !lgw_ini_has_section(sf.cred, sf.profile) && !sf.config_section[0]) {
        rc =
            lgw_error_set(err, LGW_EINTERNAL, "AWS profile '%s' (from %s) not found in %s or %s",
                          sf.profile, sf.profile_from, sf.cred_path[0] ? sf.cred_path : "(no HOME)",
                          sf.config_path[0] ? sf.config_path : "(no HOME)");
        goto out;
    }

    /* 4. container */
    if (p->set.container_url) {
        p->src = SRC_CONTAINER;
        rc = fetch_container(p, out, err);
        goto out;
    }
    note_add(tried, sizeof(tried),
             "container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not set)");

    /* 5. instance metadata */
    if (p->set.imds_disabled) {
        note_add(tried, sizeof(tried), "EC2 instance metadata (AWS_EC2_METADATA_DISABLED)");
    } else {
        struct lgw_error ie;

        lgw_error_init(&ie);
        p->src = SRC_IMDS;
        rc = fetch_imds(p, out, &absent, &ie);
        if (rc && !absent) {
            lgw_error_move(err, &ie);
            goto out;
        }
        if (rc)
            note_add(tried, sizeof(tried), "%s", ie.message);
        lgw_error_release(&ie);
        if (rc == LGW_OK)
            goto out;
    }
    p->src = SRC_NONE;
    rc = lgw_error_set(err, LGW_EINTERNAL, "no AWS credentials found; tried: %s", tried);
out:
    if (rc == LGW_OK)
        out->source = source_names[p->src];
    else
        p->src = SRC_NONE;
    if (files_loaded)
        shared_files_release(&sf);
    return rc;
}

/* ---- the provider and its refresh thread ------------------------------------------------ */

/* mu held. Plans the next refresh after new credentials arrived at `now`. */
static void schedule_after_success(struct lgw_credentials_provider *p, int64_t now)
{
    int64_t exp = p->cur.expiration_ms, lead, next;

    p->backoff_ms = 0;
    if (exp == 0) {
        p->next_attempt_ms = 0;
        return;
    }
    /* Five minutes ahead for the usual 1-6 hour credentials; halfway for short-lived ones, so
     * the refresh neither lags nor runs continuously. */
    lead = (exp - now) / 2;
    if (lead > p->refresh_window_ms)
        lead = p->refresh_window_ms;
    next = exp - lead;
    if (next < now + MIN_RESCHEDULE_MS)
        next = now + MIN_RESCHEDULE_MS;
    p->next_attempt_ms = next;
}

/* mu held. Plans a retry after a failed attempt at `now`. */
static void schedule_after_failure(struct lgw_credentials_provider *p, int64_t now)
{
    int64_t exp = p->cur.expiration_ms, delay;

    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : p->retry_min_ms;
    if (p->backoff_ms > p->retry_max_ms)
        p->backoff_ms = p->retry_max_ms;
    delay = p->backoff_ms;
    /* While the old credentials still hold, retry often enough to replace them in time. */
    if (exp > now) {
        int64_t half = (exp - now) / 2;

        if (half < MIN_RESCHEDULE_MS)
            half = MIN_RESCHEDULE_MS;
        if (delay > half)
            delay = half;
    }
    p->next_attempt_ms = now + delay;
}

static void *refresher_main(void *arg)
{
    struct lgw_credentials_provider *p = arg;

    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        struct lgw_aws_credentials fresh;
        struct lgw_error e;
        enum lgw_errc rc;
        int64_t now = now_ms();

        if (!p->force && (p->next_attempt_ms == 0 || now < p->next_attempt_ms)) {
            if (p->next_attempt_ms == 0) {
                pthread_cond_wait(&p->cv, &p->mu);
            } else {
                struct timespec ts = {.tv_sec = (time_t)(p->next_attempt_ms / 1000),
                                      .tv_nsec = (long)(p->next_attempt_ms % 1000) * 1000000};

                pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            }
            continue;
        }
        p->force = false;
        p->refreshing = true;
        pthread_mutex_unlock(&p->mu);

        memset(&fresh, 0, sizeof(fresh));
        lgw_error_init(&e);
        rc = fetch_source(p, &fresh, &e);

        pthread_mutex_lock(&p->mu);
        p->refreshing = false;
        p->attempts++;
        now = now_ms();
        if (rc == LGW_OK) {
            lgw_aws_credentials_release(&p->cur);
            p->cur = fresh;
            p->last_failed = false;
            lgw_error_release(&p->last_err);
            schedule_after_success(p, now);
        } else {
            lgw_error_move(&p->last_err, &e);
            p->last_failed = true;
            p->last_fail_ms = now;
            schedule_after_failure(p, now);
        }
        lgw_aws_credentials_release(&fresh);
        lgw_error_release(&e);
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static enum lgw_errc provider_alloc(struct lgw_credentials_provider **out, struct lgw_error *err)
{
    struct lgw_credentials_provider *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (!p)
        return lgw_error_set(err, LGW_EINTERNAL, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->stop_flag, false);
    lgw_error_init(&p->last_err);
    *out = p;
    return LGW_OK;
}

enum lgw_errc lgw_credentials_provider_new(const struct lgw_credentials_options *opts,
                                           struct lgw_credentials_provider **out,
                                           struct lgw_error *err)
{
    struct lgw_credentials_provider *p = NULL;
    const struct lgw_aws_env *env = opts ? opts->env : NULL;
    struct lgw_error scratch;
    enum lgw_errc rc;
    int64_t now;

    lgw_error_init(&scratch);
    if (!err)
        err = &scratch;
    *out = NULL;
    rc = provider_alloc(&p, err);
    if (rc)
        goto fail;
    /* Reference-counted by curl, so it pairs with the cleanup in _free even if other modules
     * init curl too; done here because the refresh thread must not be the first to init it. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "cannot initialise libcurl");
        goto fail;
    }
    p->curl_inited = true;
    p->refresh_window_ms = opts && opts->refresh_window_ms > 0 ? opts->refresh_window_ms : 300000;
    p->retry_min_ms = opts && opts->retry_min_ms > 0 ? opts->retry_min_ms : 1000;
    p->retry_max_ms = opts && opts->retry_max_ms > 0 ? opts->retry_max_ms : 60000;
    if (p->retry_max_ms < p->retry_min_ms)
        p->retry_max_ms = p->retry_min_ms;
    rc = settings_init(p, opts, env, err);
    if (rc)
        goto fail;
    rc = resolve_chain(p, env, &p->cur, err);
    if (rc)
        goto fail;
    now = now_ms();
    if (p->cur.expiration_ms) {
        char when[40];

        if (p->cur.expiration_ms <= now) {
            format_time(p->cur.expiration_ms, when, sizeof(when));
            rc = lgw_error_set(err, LGW_ECLIENT, "AWS credentials from %s already expired at %s",
                               source_names[p->src], when);
            goto fail;
        }
        schedule_after_success(p, now);
        if (pthread_create(&p->thread, NULL, refresher_main, p) != 0) {
            rc = lgw_error_set(err, LGW_EINTERNAL, "cannot start the credentials refresh thread");
            goto fail;
        }
        p->thread_started = true;
    }
    *out = p;
    lgw_error_release(&scratch);
    return LGW_OK;
fail:
    lgw_credentials_provider_free(p);
    lgw_error_release(&scratch);
    return rc;
}

enum lgw_errc lgw_credentials_provider_new_static(const char *access_key_id,
                                                  const char *secret_access_key,
                                                  const char *session_token,
                                                  struct lgw_credentials_provider **out,
                                                  struct lgw_error *err)
{
    struct lgw_credentials_provider *p = NULL;
    struct lgw_error scratch;
    enum lgw_errc rc;

    lgw_error_init(&scratch);
    if (!err)
        err = &scratch;
    *out = NULL;
    if (!access_key_id || !access_key_id[0] || !secret_access_key || !secret_access_key[0]) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "static credentials need a key id and a secret");
        goto out;
    }
    rc = provider_alloc(&p, err);
    if (rc)
        goto out;
    rc = set_creds(&p->cur, "static credentials", access_key_id, secret_access_key, session_token,
                   err);
    if (rc) {
        lgw_credentials_provider_free(p);
        goto out;
    }
    p->src = SRC_STATIC;
    p->cur.source = source_names[SRC_STATIC];
    *out = p;
out:
    lgw_error_release(&scratch);
    return rc;
}

/* Copies the strings (and what they end at) and the other fields: the bytes after each string's
 * NUL are not touched, so a copy costs what the credentials are long, not the struct's 8 KB. */
static void creds_copy(struct lgw_aws_credentials *out, const struct lgw_aws_credentials *in)
{
    memcpy(out->access_key_id, in->access_key_id, strlen(in->access_key_id) + 1);
    memcpy(out->secret_access_key, in->secret_access_key, strlen(in->secret_access_key) + 1);
    memcpy(out->session_token, in->session_token, strlen(in->session_token) + 1);
    out->expiration_ms = in->expiration_ms;
    out->source = in->source;
}

static enum lgw_errc get_creds(struct lgw_credentials_provider *p, struct lgw_aws_credentials *out,
                               struct lgw_error *err, bool wait)
{
    struct lgw_error scratch;
    bool waited = false;
    enum lgw_errc rc = LGW_OK;
    char when[40];

    lgw_error_init(&scratch);
    if (!err)
        err = &scratch;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int64_t now = now_ms();
        uint64_t target;
        bool backing_off =
            !p->refreshing && p->last_failed && now - p->last_fail_ms < p->retry_min_ms;

        if (p->cur.access_key_id[0] && (p->cur.expiration_ms == 0 || now < p->cur.expiration_ms)) {
            creds_copy(out, &p->cur);
            break;
        }
        format_time(p->cur.expiration_ms, when, sizeof(when));
        if (p->stopping || !p->thread_started) {
            rc = lgw_error_set(err, LGW_ECLIENT, "AWS credentials from %s expired at %s",
                               source_names[p->src], when);
            break;
        }
        if (!wait) {
            /* Start a refresh if none is under way (and the backoff allows), but answer now. */
            if (!p->refreshing && !backing_off) {
                p->force = true;
                pthread_cond_broadcast(&p->cv);
            }
            if (p->last_failed)
                rc = lgw_error_set(err, LGW_ECLIENT,
                                   "AWS credentials from %s expired at %s and refreshing them "
                                   "failed: %s",
                                   source_names[p->src], when, p->last_err.message);
            else
                rc = lgw_error_set(err, LGW_ECLIENT,
                                   "AWS credentials from %s expired at %s; refreshing them",
                                   source_names[p->src], when);
            break;
        }
        /* One fresh attempt per caller at most, and none sooner than the first backoff after
         * a failure: a dead endpoint must not make every request wait for its timeout. */
        if (waited || backing_off) {
            rc = lgw_error_set(err, LGW_ECLIENT,
                               "AWS credentials from %s expired at %s and refreshing them "
                               "failed: %s",
                               source_names[p->src], when,
                               p->last_failed ? p->last_err.message : "no answer yet");
            break;
        }
        target = p->attempts + 1;
        if (!p->refreshing)
            p->force = true;
        pthread_cond_broadcast(&p->cv);
        while (p->attempts < target && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        waited = true;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc)
        lgw_aws_credentials_release(out);
    lgw_error_release(&scratch);
    return rc;
}

enum lgw_errc lgw_credentials_get(struct lgw_credentials_provider *p,
                                  struct lgw_aws_credentials *out, struct lgw_error *err)
{
    return get_creds(p, out, err, true);
}

enum lgw_errc lgw_credentials_get_nowait(struct lgw_credentials_provider *p,
                                         struct lgw_aws_credentials *out, struct lgw_error *err)
{
    return get_creds(p, out, err, false);
}

const char *lgw_credentials_source(const struct lgw_credentials_provider *p)
{
    return source_names[p->src];
}

void lgw_credentials_provider_free(struct lgw_credentials_provider *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    atomic_store(&p->stop_flag, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->thread_started)
        pthread_join(p->thread, NULL);
    settings_release(&p->set);
    lgw_aws_credentials_release(&p->cur);
    lgw_error_release(&p->last_err);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    if (p->curl_inited)
        curl_global_cleanup();
    OPENSSL_cleanse(p, sizeof(*p));
    free(p);
}

/* ---- region and endpoint ---------------------------------------------------------------- */

static bool region_ok(const char *r)
{
    size_t n = strlen(r);

    if (n == 0 || n > LGW_AWS_REGION_MAX || !islower((unsigned char)r[0]))
        return false;
    for (; *r; r++)
        if (!islower((unsigned char)*r) && !isdigit((unsigned char)*r) && *r != '-')
            return false;
    return true;
}

static enum lgw_errc region_take(const char *what, const char *v, char *out, size_t cap,
                                 struct lgw_error *err)
{
    if (!region_ok(v))
        return lgw_error_set(err, LGW_EINTERNAL,
                             "%s: '%.40s' is not an AWS region (like eu-west-1)", what, v);
    if (!copy_bounded(out, cap, v))
        return lgw_error_set(err, LGW_EINTERNAL, "region buffer too small");
    return LGW_OK;
}

enum lgw_errc lgw_aws_region_resolve(const struct lgw_aws_env *env, const char *arn_region,
                                     char *out, size_t out_size, struct lgw_error *err)
{
    struct shared_files sf;
    struct lgw_error scratch;
    const char *v;
    char what[PATH_CAP + LGW_AWS_PROFILE_MAX + 32];
    enum lgw_errc rc;

    lgw_error_init(&scratch);
    if (!err)
        err = &scratch;
    if (out_size)
        out[0] = '\0';
    if (arn_region && arn_region[0]) {
        rc = region_take("function ARN", arn_region, out, out_size, err);
        goto done;
    }
    if ((v = env_get(env, "AWS_REGION")) != NULL) {
        rc = region_take("AWS_REGION", v, out, out_size, err);
        goto done;
    }
    if ((v = env_get(env, "AWS_DEFAULT_REGION")) != NULL) {
        rc = region_take("AWS_DEFAULT_REGION", v, out, out_size, err);
        goto done;
    }
    rc = shared_files_load(env, false, &sf, err);
    if (rc)
        goto done;
    v = sf.config_section[0] ? lgw_ini_get(sf.config, sf.config_section, "region") : NULL;
    if (v && v[0]) {
        snprintf(what, sizeof(what), "%s, profile '%s', region", sf.config_path, sf.profile);
        rc = region_take(what, v, out, out_size, err);
    } else {
        rc = lgw_error_set(err, LGW_EINTERNAL,
                           "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION, or 'region' for "
                           "profile '%s' in %s",
                           sf.profile, sf.config_path[0] ? sf.config_path : "~/.aws/config");
    }
    shared_files_release(&sf);
done:
    lgw_error_release(&scratch);
    return rc;
}

static enum lgw_errc endpoint_take(const char *what, const char *v, char *out, size_t cap,
                                   struct lgw_error *err)
{
    size_t n;
    enum lgw_errc rc = check_http_url(what, v, NULL, NULL, 0, err);

    if (rc)
        return rc;
    if (!copy_bounded(out, cap, v))
        return lgw_error_set(err, LGW_EINTERNAL, "endpoint buffer too small");
    /* The dispatcher appends "/2015-03-31/..." itself. */
    n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    return LGW_OK;
}

enum lgw_errc lgw_aws_endpoint_resolve(const struct lgw_aws_env *env, const char *region, char *out,
                                       size_t out_size, struct lgw_error *err)
{
    struct shared_files sf;
    bool sf_loaded = false;
    struct lgw_error scratch;
    const char *v;
    char what[PATH_CAP + LGW_AWS_PROFILE_MAX + 96];
    int n;
    enum lgw_errc rc = LGW_OK;

    lgw_error_init(&scratch);
    if (!err)
        err = &scratch;
    if (out_size)
        out[0] = '\0';
    if (!env_true(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
        if ((v = env_get(env, "AWS_ENDPOINT_URL_LAMBDA")) != NULL) {
            rc = endpoint_take("AWS_ENDPOINT_URL_LAMBDA", v, out, out_size, err);
            goto done;
        }
        if ((v = env_get(env, "AWS_ENDPOINT_URL")) != NULL) {
            rc = endpoint_take("AWS_ENDPOINT_URL", v, out, out_size, err);
            goto done;
        }
        rc = shared_files_load(env, false, &sf, err);
        if (rc)
            goto done;
        sf_loaded = true;
        if (sf.config_section[0]) {
            const char *svc = lgw_ini_get(sf.config, sf.config_section, "services");

            if (svc && svc[0]) {
                char sect[LGW_AWS_PROFILE_MAX + 16];

                snprintf(sect, sizeof(sect), "services %s", svc);
                v = lgw_ini_get_sub(sf.config, sect, "lambda", "endpoint_url");
                if (v && v[0]) {
                    snprintf(what, sizeof(what), "%s, [services %.64s] lambda endpoint_url",
                             sf.config_path, svc);
                    rc = endpoint_take(what, v, out, out_size, err);
                    goto done;
                }
            }
            v = lgw_ini_get(sf.config, sf.config_section, "endpoint_url");
            if (v && v[0]) {
                snprintf(what, sizeof(what), "%s, profile '%s', endpoint_url", sf.config_path,
                         sf.profile);
                rc = endpoint_take(what, v, out, out_size, err);
                goto done;
            }
        }
    }
    if (!region || !region_ok(region)) {
        rc = lgw_error_set(err, LGW_EINTERNAL,
                           "no Lambda endpoint: a valid region is needed for the default one");
        goto done;
    }
    /* China regions live in their own partition and DNS suffix. */
    n = snprintf(out, out_size, "https://lambda.%s.amazonaws.com%s", region,
                 strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
    if (n < 0 || (size_t)n >= out_size) {
        if (out_size)
            out[0] = '\0';
        rc = lgw_error_set(err, LGW_EINTERNAL, "endpoint buffer too small");
    }
done:
    if (sf_loaded)
        shared_files_release(&sf);
    lgw_error_release(&scratch);
    return rc;
}

enum lgw_errc lgw_aws_ca_bundle_resolve(const struct lgw_aws_env *env, char *out, size_t out_size,
                                        struct lgw_error *err)
{
    struct shared_files sf;
    const char *v = env_get(env, "AWS_CA_BUNDLE"), *from = "AWS_CA_BUNDLE";
    enum lgw_errc rc = LGW_OK;
    bool loaded = false;

    if (out_size)
        out[0] = '\0';
    if (!v || !v[0]) {
        if ((rc = shared_files_load(env, false, &sf, err)) != LGW_OK)
            return rc;
        loaded = true;
        v = sf.config_section[0] ? lgw_ini_get(sf.config, sf.config_section, "ca_bundle") : NULL;
        from = "the config file's ca_bundle";
    }
    if (v && v[0] && !copy_bounded(out, out_size, v))
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: a path longer than %zu bytes", from,
                           out_size ? out_size - 1 : 0);
    if (loaded)
        shared_files_release(&sf);
    return rc;
}
