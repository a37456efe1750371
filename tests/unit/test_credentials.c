/*
 * test_credentials.c - the AWS credentials chain, refresh, region and endpoint resolution.
 *
 * Every test runs against a private environment table (struct tenv) with HOME in a fresh
 * mkdtemp directory, so nothing on the machine leaks in; one test checks the default path
 * through the real process environment. Container and IMDS endpoints are fake libmicrohttpd
 * servers on 127.0.0.1 (port picked by the kernel) that assert the headers they are sent.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>

#include "credentials.h"

/* ---- a private environment ----------------------------------------------------------------- */

#define TENV_MAX 48
#define TFILES_MAX 16

struct tenv {
    const char *k[TENV_MAX];
    char *v[TENV_MAX];
    int n;
    char dir[64]; /* HOME, with .aws/ inside */
    char *files[TFILES_MAX];
    int nfiles;
    struct lgw_aws_env env;
};

static const char *tenv_get(void *arg, const char *name)
{
    struct tenv *e = arg;

    for (int i = 0; i < e->n; i++)
        if (strcmp(e->k[i], name) == 0)
            return e->v[i];
    return NULL;
}

static void tset(struct tenv *e, const char *k, const char *v)
{
    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->k[i], k) == 0) {
            free(e->v[i]);
            e->v[i] = strdup(v);
            return;
        }
    }
    assert_true(e->n < TENV_MAX);
    e->k[e->n] = k;
    e->v[e->n] = strdup(v);
    e->n++;
}

/* Writes HOME-relative file rel and remembers it for cleanup; returns its full path (owned by
 * e). */
static const char *twrite(struct tenv *e, const char *rel, const char *content)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", e->dir, rel);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_true(e->nfiles < TFILES_MAX);
    e->files[e->nfiles] = strdup(path);
    return e->files[e->nfiles++];
}

/* A fresh environment: HOME in a temp dir, IMDS off (tests turn it on explicitly). */
static struct tenv *tenv_new(void)
{
    struct tenv *e = calloc(1, sizeof(*e));
    char aws[96];

    assert_non_null(e);
    snprintf(e->dir, sizeof(e->dir), "/tmp/lgw-cred-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(aws, sizeof(aws), "%s/.aws", e->dir);
    assert_int_equal(mkdir(aws, 0700), 0);
    tset(e, "HOME", e->dir);
    tset(e, "AWS_EC2_METADATA_DISABLED", "true");
    e->env.getenv = tenv_get;
    e->env.arg = e;
    return e;
}

static void tenv_free(struct tenv *e)
{
    char aws[96];

    for (int i = e->nfiles; i-- > 0;) {
        unlink(e->files[i]);
        free(e->files[i]);
    }
    snprintf(aws, sizeof(aws), "%s/.aws", e->dir);
    rmdir(aws);
    rmdir(e->dir);
    for (int i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ---- the fake container / IMDS endpoint ---------------------------------------------------- */

#define IMDS_TOKEN "fake-imds-token-123"
#define IMDS_ROLE "gateway-role"

struct fake {
    struct MHD_Daemon *d;
    unsigned short port;
    char base[64]; /* http://127.0.0.1:PORT */
    pthread_mutex_t mu;

    /* behaviour, set before use or under mu */
    const char *expect_auth; /* required Authorization value; NULL: none required */
    bool imds;               /* serve the IMDS paths */
    bool imds_no_role;       /* 404 on the role listing */
    long lifetime_ms;        /* Expiration = now + this; 0: no Expiration */
    int slow_from;           /* credentials requests from this index sleep slow_ms; -1 never */
    long slow_ms;
    int fail_from; /* credentials requests from this index answer 500; -1 never */
    const char *raw_body;

    /* observations */
    int creds_started;  /* credentials requests received */
    int creds_answered; /* credentials requests answered */
    int auth_rejects;
    int token_puts;
    int unauth_gets;
    char last_auth[256];
};

static void fmt_expiration(long lifetime_ms, char *buf, size_t cap)
{
    struct timespec ts;
    int64_t ms;
    time_t t;
    struct tm tm;
    char base[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + lifetime_ms;
    t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    /* Short lifetimes need millisecond precision; long ones use the plain form AWS sends. */
    if (lifetime_ms < 60000)
        snprintf(buf, cap, "%s.%03dZ", base, (int)(ms % 1000));
    else
        snprintf(buf, cap, "%sZ", base);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(c, status, r);

    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result serve_creds(struct fake *f, struct MHD_Connection *c)
{
    char body[1024], exp[64] = "";
    int idx;
    long delay = 0;
    bool fail;
    const char *raw;

    pthread_mutex_lock(&f->mu);
    idx = f->creds_started++;
    if (f->slow_from >= 0 && idx >= f->slow_from)
        delay = f->slow_ms;
    fail = f->fail_from >= 0 && idx >= f->fail_from;
    raw = f->raw_body;
    if (f->lifetime_ms)
        fmt_expiration(f->lifetime_ms, exp, sizeof(exp));
    pthread_mutex_unlock(&f->mu);

    if (delay)
        sleep_ms(delay);
    if (raw)
        snprintf(body, sizeof(body), "%s", raw);
    else if (exp[0])
        snprintf(body, sizeof(body),
                 "{\"Code\":\"Success\",\"AccessKeyId\":\"AKID%d\",\"SecretAccessKey\":"
                 "\"SECRET%d\",\"Token\":\"TOKEN%d\",\"Expiration\":\"%s\"}",
                 idx, idx, idx, exp);
    else
        snprintf(body, sizeof(body),
                 "{\"AccessKeyId\":\"AKID%d\",\"SecretAccessKey\":\"SECRET%d\",\"Token\":"
                 "\"TOKEN%d\"}",
                 idx, idx, idx);
    pthread_mutex_lock(&f->mu);
    f->creds_answered++;
    pthread_mutex_unlock(&f->mu);
    if (fail)
        return reply(c, 500, "{\"message\":\"internal\"}");
    return reply(c, 200, body);
}

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    static int first_call_marker;
    struct fake *f = cls;
    const char *auth, *tok;

    (void)version, (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (f->imds) {
        if (strcmp(url, "/latest/api/token") == 0) {
            if (strcmp(method, "PUT") != 0)
                return reply(c, 405, "");
            if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                             "X-aws-ec2-metadata-token-ttl-seconds"))
                return reply(c, 400, "");
            pthread_mutex_lock(&f->mu);
            f->token_puts++;
            pthread_mutex_unlock(&f->mu);
            return reply(c, 200, IMDS_TOKEN);
        }
        tok = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-aws-ec2-metadata-token");
        if (!tok || strcmp(tok, IMDS_TOKEN) != 0) {
            pthread_mutex_lock(&f->mu);
            f->unauth_gets++;
            pthread_mutex_unlock(&f->mu);
            return reply(c, 401, "");
        }
        if (strcmp(url, "/latest/meta-data/iam/security-credentials/") == 0)
            return f->imds_no_role ? reply(c, 404, "") : reply(c, 200, IMDS_ROLE "\n");
        if (strcmp(url, "/latest/meta-data/iam/security-credentials/" IMDS_ROLE) == 0)
            return serve_creds(f, c);
        return reply(c, 404, "");
    }

    auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&f->mu);
    snprintf(f->last_auth, sizeof(f->last_auth), "%s", auth ? auth : "");
    if (f->expect_auth && (!auth || strcmp(auth, f->expect_auth) != 0)) {
        f->auth_rejects++;
        pthread_mutex_unlock(&f->mu);
        return reply(c, 401, "{\"message\":\"bad token\"}");
    }
    pthread_mutex_unlock(&f->mu);
    return serve_creds(f, c);
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof(*f));
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;

    assert_non_null(f);
    pthread_mutex_init(&f->mu, NULL);
    f->slow_from = -1;
    f->fail_from = -1;
    f->lifetime_ms = 3600 * 1000L;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                            NULL, NULL, fake_handler, f, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
    assert_non_null(f->d);
    info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    f->port = info->port;
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", (unsigned)f->port);
    return f;
}

static void fake_stop(struct fake *f)
{
    if (!f)
        return;
    MHD_stop_daemon(f->d);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static int fake_get(struct fake *f, const int *field)
{
    int v;

    pthread_mutex_lock(&f->mu);
    v = *field;
    pthread_mutex_unlock(&f->mu);
    return v;
}

/* Waits until *field >= want (polling), failing the test after timeout_ms. */
static void fake_wait(struct fake *f, const int *field, int want, long timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;

    while (fake_get(f, field) < want) {
        assert_true(mono_ms() < deadline);
        sleep_ms(5);
    }
}

/* ---- helpers ------------------------------------------------------------------------------- */

struct ctx {
    struct tenv *e;
    struct lgw_credentials_options o;
    struct lgw_credentials_provider *p;
    struct lgw_aws_credentials c;
    struct lgw_error err;
};

static void ctx_init(struct ctx *x)
{
    memset(x, 0, sizeof(*x));
    x->e = tenv_new();
    x->o.env = &x->e->env;
    lgw_error_init(&x->err);
}

static void ctx_release(struct ctx *x)
{
    lgw_credentials_provider_free(x->p);
    lgw_aws_credentials_release(&x->c);
    lgw_error_release(&x->err);
    tenv_free(x->e);
}

/* Creates the provider and gets once; returns the code of whichever failed first. */
static enum lgw_errc ctx_resolve(struct ctx *x)
{
    enum lgw_errc rc = lgw_credentials_provider_new(&x->o, &x->p, &x->err);

    if (rc)
        return rc;
    return lgw_credentials_get(x->p, &x->c, &x->err);
}

static void assert_creds(const struct lgw_aws_credentials *c, const char *akid, const char *secret,
                         const char *token, const char *source)
{
    assert_string_equal(c->access_key_id, akid);
    assert_string_equal(c->secret_access_key, secret);
    assert_string_equal(c->session_token, token);
    assert_string_equal(c->source, source);
}

static void assert_all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        assert_int_equal(b[i], 0);
}

/* ---- environment and shared files ---------------------------------------------------------- */

static void test_env_only(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    tset(x.e, "AWS_ACCESS_KEY_ID", "AKIDENV");
    tset(x.e, "AWS_SECRET_ACCESS_KEY", "SECRETENV");
    tset(x.e, "AWS_SESSION_TOKEN", "TOKENENV");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDENV", "SECRETENV", "TOKENENV", "environment");
    assert_int_equal(x.c.expiration_ms, 0);
    assert_string_equal(lgw_credentials_source(x.p), "environment");

    /* the caller's copy is wiped by _release */
    lgw_aws_credentials_release(&x.c);
    assert_all_zero(&x.c, sizeof(x.c));
    lgw_aws_credentials_release(NULL);

    /* without a session token */
    lgw_credentials_provider_free(x.p);
    x.p = NULL;
    tset(x.e, "AWS_SESSION_TOKEN", "");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDENV", "SECRETENV", "", "environment");
    ctx_release(&x);
}

static void test_env_partial(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    tset(x.e, "AWS_ACCESS_KEY_ID", "AKIDENV");
    twrite(x.e, ".aws/credentials",
           "[default]\naws_access_key_id = F\naws_secret_access_key = S\n");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_null(x.p);
    assert_non_null(strstr(x.err.message, "AWS_SECRET_ACCESS_KEY is not"));
    assert_null(strstr(x.err.message, "AKIDENV"));

    /* an over-long key is refused, not truncated, and not echoed */
    {
        char longkey[LGW_AWS_ACCESS_KEY_ID_MAX + 2];

        memset(longkey, 'K', sizeof(longkey) - 1);
        longkey[sizeof(longkey) - 1] = '\0';
        tset(x.e, "AWS_ACCESS_KEY_ID", longkey);
        tset(x.e, "AWS_SECRET_ACCESS_KEY", "SECRETENV");
        assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
        assert_non_null(strstr(x.err.message, "longer than"));
        assert_null(strstr(x.err.message, "KKKK"));
    }
    ctx_release(&x);
}

static void test_credentials_file(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    twrite(x.e, ".aws/credentials",
           "# comment\n[default]\naws_access_key_id = AKIDFILE\n"
           "aws_secret_access_key = SECRETFILE\naws_session_token = TOKENFILE\n");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDFILE", "SECRETFILE", "TOKENFILE", "shared-credentials-file");
    ctx_release(&x);
}

static void test_config_file(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    /* [default] in the config file; the credentials file exists but lacks the profile */
    twrite(x.e, ".aws/credentials", "[other]\naws_access_key_id = X\naws_secret_access_key = Y\n");
    twrite(x.e, ".aws/config",
           "[default]\nregion = eu-west-1\naws_access_key_id = AKIDCFG\n"
           "aws_secret_access_key = SECRETCFG\n");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDCFG", "SECRETCFG", "", "config-file");
    ctx_release(&x);
}

static void test_profile_selection(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    twrite(x.e, ".aws/credentials",
           "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = SECRETDEF\n"
           "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = SECRETDEV\n");
    /* in the config file a named profile is [profile NAME]; a bare [ops] is not it */
    twrite(x.e, ".aws/config",
           "[ops]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n"
           "[profile ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = SECRETOPS\n");

    tset(x.e, "AWS_PROFILE", "dev");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDDEV", "SECRETDEV", "", "shared-credentials-file");
    lgw_credentials_provider_free(x.p);
    x.p = NULL;

    tset(x.e, "AWS_PROFILE", "ops");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDOPS", "SECRETOPS", "", "config-file");
    lgw_credentials_provider_free(x.p);
    x.p = NULL;

    /* the env struct's profile overrides AWS_PROFILE */
    x.e->env.profile = "default";
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDDEF", "SECRETDEF", "", "shared-credentials-file");
    ctx_release(&x);
}

static void test_credentials_file_beats_config(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    twrite(x.e, ".aws/credentials",
           "[dev]\naws_access_key_id = AKIDCRED\naws_secret_access_key = SECRETCRED\n");
    twrite(x.e, ".aws/config",
           "[profile dev]\naws_access_key_id = AKIDCFG\naws_secret_access_key = SECRETCFG\n");
    tset(x.e, "AWS_PROFILE", "dev");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDCRED", "SECRETCRED", "", "shared-credentials-file");
    ctx_release(&x);
}

static void test_custom_file_paths(void **state)
{
    struct ctx x;
    const char *cfg;

    (void)state;
    ctx_init(&x);
    /* the default locations hold decoys that must not be read */
    twrite(x.e, ".aws/credentials",
           "[default]\naws_access_key_id = D\naws_secret_access_key = D\n");
    twrite(x.e, "creds-elsewhere",
           "[default]\naws_access_key_id = AKIDALT\naws_secret_access_key = SECRETALT\n");
    cfg = twrite(x.e, "config-elsewhere",
                 "[profile p2]\naws_access_key_id = AKIDCFG2\naws_secret_access_key = S2\n");
    tset(x.e, "AWS_SHARED_CREDENTIALS_FILE", "~/creds-elsewhere"); /* ~ is HOME */
    tset(x.e, "AWS_CONFIG_FILE", cfg);
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDALT", "SECRETALT", "", "shared-credentials-file");
    lgw_credentials_provider_free(x.p);
    x.p = NULL;

    tset(x.e, "AWS_PROFILE", "p2");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDCFG2", "S2", "", "config-file");
    ctx_release(&x);
}

static void test_missing_profile(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    twrite(x.e, ".aws/credentials",
           "[default]\naws_access_key_id = A\naws_secret_access_key = S\n");
    tset(x.e, "AWS_PROFILE", "nope");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_null(x.p);
    assert_non_null(strstr(x.err.message, "profile 'nope'"));
    assert_non_null(strstr(x.err.message, "AWS_PROFILE"));
    assert_non_null(strstr(x.err.message, ".aws/credentials"));
    assert_non_null(strstr(x.err.message, ".aws/config"));
    ctx_release(&x);
}

static void test_profile_errors(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    /* half a key pair */
    twrite(x.e, ".aws/credentials", "[default]\naws_access_key_id = AKIDHALF\n");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "not aws_secret_access_key"));
    assert_null(strstr(x.err.message, "AKIDHALF"));

    /* a mechanism we do not implement says so instead of falling through */
    tset(x.e, "AWS_PROFILE", "assume");
    twrite(x.e, ".aws/config",
           "[profile assume]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "role_arn"));
    assert_non_null(strstr(x.err.message, "does not support"));

    /* a malformed credentials file names the line, never its text */
    tset(x.e, "AWS_PROFILE", "default");
    twrite(x.e, ".aws/credentials", "[default]\nSECRETLINE\n");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "line 2"));
    assert_null(strstr(x.err.message, "SECRETLINE"));
    ctx_release(&x);
}

static void test_env_beats_files_and_container(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();

    (void)state;
    ctx_init(&x);
    twrite(x.e, ".aws/credentials",
           "[default]\naws_access_key_id = F\naws_secret_access_key = F\n");
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    x.o.container_base_url = f->base;
    tset(x.e, "AWS_ACCESS_KEY_ID", "AKIDENV");
    tset(x.e, "AWS_SECRET_ACCESS_KEY", "SECRETENV");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKIDENV", "SECRETENV", "", "environment");
    lgw_credentials_provider_free(x.p);
    x.p = NULL;

    /* without the environment the files win over the container */
    tset(x.e, "AWS_ACCESS_KEY_ID", "");
    tset(x.e, "AWS_SECRET_ACCESS_KEY", "");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "F", "F", "", "shared-credentials-file");
    assert_int_equal(fake_get(f, &f->creds_started), 0);
    ctx_release(&x);
    fake_stop(f);
}

/* ---- container ------------------------------------------------------------------------------ */

static void test_container_relative(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();
    struct timespec now;

    (void)state;
    f->expect_auth = "Bearer relative-token";
    ctx_init(&x);
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc");
    tset(x.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer relative-token");
    x.o.container_base_url = f->base;
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKID0", "SECRET0", "TOKEN0", "container");
    /* an hour ahead, to the second (the long form has no fraction) */
    clock_gettime(CLOCK_REALTIME, &now);
    assert_true(x.c.expiration_ms > (int64_t)now.tv_sec * 1000 + 3590 * 1000L);
    assert_true(x.c.expiration_ms < (int64_t)now.tv_sec * 1000 + 3610 * 1000L);
    assert_int_equal(f->auth_rejects, 0);
    assert_string_equal(f->last_auth, "Bearer relative-token");
    ctx_release(&x);
    fake_stop(f);
}

static void test_container_full_uri_token_file(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();
    char url[128];
    const char *tokfile;

    (void)state;
    f->expect_auth = "file-token";
    ctx_init(&x);
    snprintf(url, sizeof(url), "%s/full/creds", f->base);
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
    tokfile = twrite(x.e, "token", "file-token\n");
    /* the file wins over the variable */
    tset(x.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "variable-token");
    tset(x.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokfile);
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKID0", "SECRET0", "TOKEN0", "container");
    assert_string_equal(f->last_auth, "file-token");
    assert_int_equal(f->auth_rejects, 0);
    lgw_credentials_provider_free(x.p);
    x.p = NULL;

    /* with only the variable, the variable is sent */
    f->expect_auth = "variable-token";
    tset(x.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "");
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_string_equal(f->last_auth, "variable-token");
    lgw_credentials_provider_free(x.p);
    x.p = NULL;

    /* a wrong token: the fake refuses, and the error does not carry the token */
    f->expect_auth = "something-else";
    assert_int_equal(ctx_resolve(&x), LGW_ECLIENT);
    assert_int_equal(f->auth_rejects, 1);
    assert_non_null(strstr(x.err.message, "HTTP 401"));
    assert_non_null(strstr(x.err.message, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    assert_null(strstr(x.err.message, "variable-token"));

    /* a missing token file is an error naming the variable */
    tset(x.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/nonexistent/lgw-token");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
    ctx_release(&x);
    fake_stop(f);
}

static void test_container_full_uri_rules(void **state)
{
    struct ctx x;

    (void)state;
    ctx_init(&x);
    /* plain http to a non-local host would send the token over the network: refused before
     * any connection is made */
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    assert_non_null(strstr(x.err.message, "https"));

    tset(x.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", "ftp://127.0.0.1/creds");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));

    tset(x.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", "");
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "no-slash");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));

    tset(x.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    tset(x.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "a\r\nX-Injected: 1");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    ctx_release(&x);
}

static void test_container_malformed(void **state)
{
    static const struct {
        const char *body;
        const char *want;
    } cases[] = {
        {"{\"AccessKeyId\":\"AKIDX\",\"SecretAccessKey\":\"SECRETLEAK", "not valid JSON"},
        {"[\"SECRETLEAK\"]", "not a JSON object"},
        {"{\"AccessKeyId\":\"AKIDX\"}", "lacks"},
        {"{\"AccessKeyId\":\"AKIDX\",\"SecretAccessKey\":\"SECRETLEAK\",\"Expiration\":"
         "\"tomorrow\"}",
         "ISO 8601"},
        {"{\"AccessKeyId\":\"AKIDX\",\"SecretAccessKey\":\"SECRETLEAK\",\"Token\":5}",
         "Token is not"},
        {"{\"Code\":\"Failed\",\"AccessKeyId\":\"AKIDX\",\"SecretAccessKey\":\"SECRETLEAK\"}",
         "Code"},
    };
    struct ctx x;
    struct fake *f = fake_start();

    (void)state;
    ctx_init(&x);
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    x.o.container_base_url = f->base;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f->raw_body = cases[i].body;
        assert_int_equal(ctx_resolve(&x), LGW_ECLIENT);
        assert_null(x.p);
        assert_non_null(strstr(x.err.message, cases[i].want));
        assert_null(strstr(x.err.message, "SECRETLEAK"));
    }
    /* an HTTP error, and credentials that are already expired */
    f->raw_body = NULL;
    f->fail_from = 0;
    assert_int_equal(ctx_resolve(&x), LGW_ECLIENT);
    assert_non_null(strstr(x.err.message, "HTTP 500"));
    f->fail_from = -1;
    f->lifetime_ms = -5000;
    assert_int_equal(ctx_resolve(&x), LGW_ECLIENT);
    assert_non_null(strstr(x.err.message, "already expired"));
    ctx_release(&x);
    fake_stop(f);
}

/* ---- instance metadata ---------------------------------------------------------------------- */

/* A GET without the session token, straight to the fake, to prove it really checks. */
static long raw_get_status(const char *url)
{
    CURL *c = curl_easy_init();
    long status = 0;
    FILE *sink = fopen("/dev/null", "w");

    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    fclose(sink);
    return status;
}

static void test_imds_v2(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();
    char url[160];

    (void)state;
    f->imds = true;
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", f->base);
    assert_int_equal(raw_get_status(url), 401);
    assert_int_equal(f->unauth_gets, 1);

    ctx_init(&x);
    tset(x.e, "AWS_EC2_METADATA_DISABLED", "false");
    tset(x.e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", f->base);
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKID0", "SECRET0", "TOKEN0", "imds");
    assert_true(x.c.expiration_ms > 0);
    assert_int_equal(f->token_puts, 1);
    assert_int_equal(f->unauth_gets, 1); /* every request of ours carried the token */
    assert_int_equal(f->creds_started, 1);
    lgw_credentials_provider_free(x.p);
    x.p = NULL;

    /* a trailing slash on the endpoint is fine */
    snprintf(url, sizeof(url), "%s/", f->base);
    tset(x.e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", url);
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_int_equal(f->token_puts, 2);
    lgw_credentials_provider_free(x.p);
    x.p = NULL;

    /* malformed JSON from a reachable IMDS is its own error, not "no credentials" */
    f->raw_body = "{\"AccessKeyId\": SECRETLEAK";
    assert_int_equal(ctx_resolve(&x), LGW_ECLIENT);
    assert_non_null(strstr(x.err.message, "EC2 instance metadata"));
    assert_non_null(strstr(x.err.message, "not valid JSON"));
    assert_null(strstr(x.err.message, "SECRETLEAK"));
    f->raw_body = NULL;

    /* an instance without a role has no credentials */
    f->imds_no_role = true;
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "no AWS credentials found"));
    assert_non_null(strstr(x.err.message, "no IAM role"));

    /* AWS_EC2_METADATA_DISABLED skips it entirely */
    f->imds_no_role = false;
    tset(x.e, "AWS_EC2_METADATA_DISABLED", "TRUE");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_int_equal(f->token_puts, 4);
    ctx_release(&x);
    fake_stop(f);
}

static void test_no_credentials(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();
    char closed[64];
    int64_t t0;

    (void)state;
    /* a port where nothing listens any more: connection refused, i.e. "not on EC2" */
    snprintf(closed, sizeof(closed), "%s", f->base);
    fake_stop(f);

    ctx_init(&x);
    twrite(x.e, ".aws/config", "[profile unrelated]\nregion = eu-west-1\n");
    tset(x.e, "AWS_EC2_METADATA_DISABLED", "");
    tset(x.e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", closed);
    t0 = mono_ms();
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_true(mono_ms() - t0 < 1500);
    assert_null(x.p);
    assert_non_null(strstr(x.err.message, "no AWS credentials found; tried:"));
    assert_non_null(strstr(x.err.message, "environment"));
    assert_non_null(strstr(x.err.message, ".aws/credentials (not found)"));
    assert_non_null(strstr(x.err.message, ".aws/config (no keys for the profile)"));
    assert_non_null(strstr(x.err.message, "container"));
    assert_non_null(strstr(x.err.message, "EC2 instance metadata"));

    tset(x.e, "AWS_EC2_METADATA_DISABLED", "true");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "AWS_EC2_METADATA_DISABLED"));

    /* a bad IMDS endpoint variable is a configuration error naming it */
    tset(x.e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", "gopher://x");
    assert_int_equal(ctx_resolve(&x), LGW_EINTERNAL);
    assert_non_null(strstr(x.err.message, "AWS_EC2_METADATA_SERVICE_ENDPOINT"));
    ctx_release(&x);
}

/* ---- refresh -------------------------------------------------------------------------------- */

struct getter {
    pthread_t t;
    struct lgw_credentials_provider *p;
    atomic_bool *stop;
    int64_t max_ms;
    int calls, errors, rotated;
};

static void *getter_main(void *arg)
{
    struct getter *g = arg;

    while (!atomic_load(g->stop)) {
        struct lgw_aws_credentials c;
        struct lgw_error err;
        int64_t t0 = mono_ms(), dt;

        lgw_error_init(&err);
        if (lgw_credentials_get(g->p, &c, &err) != LGW_OK)
            g->errors++;
        else if (strcmp(c.access_key_id, "AKID0") != 0)
            g->rotated++;
        dt = mono_ms() - t0;
        if (dt > g->max_ms)
            g->max_ms = dt;
        g->calls++;
        lgw_aws_credentials_release(&c);
        lgw_error_release(&err);
        sleep_ms(2);
    }
    return NULL;
}

static void test_refresh_rotates_without_blocking(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();
    struct getter g[4];
    atomic_bool stop;
    int64_t start, t0, dt, deadline;

    (void)state;
    /* 1.6 s credentials: refresh at halfway (0.8 s); the refresh answer takes 0.5 s */
    f->lifetime_ms = 1600;
    f->slow_from = 1;
    f->slow_ms = 500;
    ctx_init(&x);
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", f->base);
    start = mono_ms();
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKID0", "SECRET0", "TOKEN0", "container");
    lgw_aws_credentials_release(&x.c);

    atomic_init(&stop, false);
    for (int i = 0; i < 4; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        g[i].p = x.p;
        g[i].stop = &stop;
        assert_int_equal(pthread_create(&g[i].t, NULL, getter_main, &g[i]), 0);
    }

    /* the refresh has started and the slow endpoint has not answered yet */
    fake_wait(f, &f->creds_started, 2, 2000);
    t0 = mono_ms();
    assert_true(t0 - start > 650 && t0 - start < 1000); /* halfway, not at once, not late */
    assert_int_equal(lgw_credentials_get(x.p, &x.c, &x.err), LGW_OK);
    dt = mono_ms() - t0;
    assert_int_equal(fake_get(f, &f->creds_answered), 1);
    assert_true(dt < 100);
    assert_creds(&x.c, "AKID0", "SECRET0", "TOKEN0", "container");
    lgw_aws_credentials_release(&x.c);

    /* soon after, callers see the rotated credentials */
    deadline = mono_ms() + 2000;
    for (;;) {
        assert_int_equal(lgw_credentials_get(x.p, &x.c, &x.err), LGW_OK);
        if (strcmp(x.c.access_key_id, "AKID0") != 0)
            break;
        lgw_aws_credentials_release(&x.c);
        assert_true(mono_ms() < deadline);
        sleep_ms(10);
    }
    assert_creds(&x.c, "AKID1", "SECRET1", "TOKEN1", "container");

    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(g[i].t, NULL), 0);
        assert_true(g[i].calls > 10);
        assert_int_equal(g[i].errors, 0);
        /* no caller waited on the 0.5 s refresh */
        assert_true(g[i].max_ms < 100);
    }
    ctx_release(&x);
    fake_stop(f);
}

static void test_failed_refresh_keeps_old(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();
    int64_t t0;

    (void)state;
    f->lifetime_ms = 1200;
    f->fail_from = 1;
    ctx_init(&x);
    x.o.retry_min_ms = 200;
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", f->base);
    t0 = mono_ms();
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKID0", "SECRET0", "TOKEN0", "container");
    lgw_aws_credentials_release(&x.c);

    /* the refresh (at ~0.6 s) fails, and is retried with backoff (0.2 s, then 0.4 s capped at
     * half the time left: 0.2 s, ...), so two retries land before expiry; meanwhile the old
     * credentials are still handed out */
    fake_wait(f, &f->creds_answered, 4, 1100);
    assert_true(mono_ms() - t0 < 1150);
    assert_int_equal(lgw_credentials_get(x.p, &x.c, &x.err), LGW_OK);
    assert_creds(&x.c, "AKID0", "SECRET0", "TOKEN0", "container");
    lgw_aws_credentials_release(&x.c);

    /* once they really expire, a get fails clearly */
    while (mono_ms() - t0 < 1300)
        sleep_ms(10);
    assert_int_equal(lgw_credentials_get(x.p, &x.c, &x.err), LGW_ECLIENT);
    assert_non_null(strstr(x.err.message, "expired"));
    assert_non_null(strstr(x.err.message, "HTTP 500"));
    assert_null(strstr(x.err.message, "SECRET"));
    assert_string_equal(x.c.access_key_id, "");

    /* when the endpoint recovers, a get (waiting for one attempt) gets fresh ones */
    pthread_mutex_lock(&f->mu);
    f->fail_from = -1;
    f->lifetime_ms = 3600 * 1000L;
    pthread_mutex_unlock(&f->mu);
    sleep_ms(250);
    assert_int_equal(lgw_credentials_get(x.p, &x.c, &x.err), LGW_OK);
    assert_true(strcmp(x.c.access_key_id, "AKID0") != 0);
    assert_string_equal(x.c.source, "container");
    ctx_release(&x);
    fake_stop(f);
}

static void test_expired_nowait_answers_at_once(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();
    struct lgw_aws_credentials c;
    struct lgw_error e;
    int64_t t0, t;

    (void)state;
    /* 2 s credentials: the refresh starts halfway and its answer takes 1.6 s, so from 2 s to
     * about 2.6 s they have expired while a refresh is under way (the new ones, dated when the
     * fake took the request, hold until about 3 s) */
    f->lifetime_ms = 2000;
    f->slow_from = 1;
    f->slow_ms = 1600;
    ctx_init(&x);
    tset(x.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", f->base);
    t0 = mono_ms();
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    lgw_aws_credentials_release(&x.c);
    while (mono_ms() - t0 < 2100)
        sleep_ms(10);
    lgw_error_init(&e);
    memset(&c, 0, sizeof(c));
    t = mono_ms();
    assert_int_equal(lgw_credentials_get_nowait(x.p, &c, &e), LGW_ECLIENT);
    assert_true(mono_ms() - t < 200); /* lgw_credentials_get would wait ~500 ms for the refresh */
    assert_non_null(strstr(e.message, "expired"));
    assert_string_equal(c.access_key_id, "");
    lgw_error_release(&e);
    /* once the refresh has answered, fresh credentials, still without waiting */
    fake_wait(f, &f->creds_answered, 2, 2000);
    sleep_ms(50);
    lgw_error_init(&e);
    if (lgw_credentials_get_nowait(x.p, &c, &e) != LGW_OK)
        fail_msg("%s", e.message); /* the test's own timing failed: say how */
    assert_true(strcmp(c.access_key_id, "AKID0") != 0);
    lgw_aws_credentials_release(&c);
    lgw_error_release(&e);
    ctx_release(&x);
    fake_stop(f);
}

static void test_imds_refresh(void **state)
{
    struct ctx x;
    struct fake *f = fake_start();

    (void)state;
    f->imds = true;
    f->lifetime_ms = 600;
    ctx_init(&x);
    tset(x.e, "AWS_EC2_METADATA_DISABLED", "false");
    tset(x.e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", f->base);
    assert_int_equal(ctx_resolve(&x), LGW_OK);
    assert_creds(&x.c, "AKID0", "SECRET0", "TOKEN0", "imds");
    /* the refresh repeats the whole IMDSv2 flow, token first */
    fake_wait(f, &f->creds_answered, 2, 1500);
    assert_int_equal(fake_get(f, &f->token_puts), 2);
    assert_int_equal(fake_get(f, &f->unauth_gets), 0);
    ctx_release(&x);
    fake_stop(f);
}

/* ---- the process environment and static credentials --------------------------------------- */

static void test_process_environment(void **state)
{
    struct lgw_credentials_provider *p = NULL;
    struct lgw_aws_credentials c;
    struct lgw_error err;
    char region[LGW_AWS_REGION_MAX + 1];

    (void)state;
    lgw_error_init(&err);
    setenv("AWS_ACCESS_KEY_ID", "AKIDPROC", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SECRETPROC", 1);
    unsetenv("AWS_SESSION_TOKEN");
    setenv("AWS_REGION", "sa-east-1", 1);
    assert_int_equal(lgw_credentials_provider_new(NULL, &p, &err), LGW_OK);
    assert_int_equal(lgw_credentials_get(p, &c, NULL), LGW_OK);
    assert_creds(&c, "AKIDPROC", "SECRETPROC", "", "environment");
    assert_int_equal(lgw_aws_region_resolve(NULL, NULL, region, sizeof(region), NULL), LGW_OK);
    assert_string_equal(region, "sa-east-1");
    /* the environment was read at creation: later changes do not reach the provider */
    setenv("AWS_ACCESS_KEY_ID", "CHANGED", 1);
    lgw_aws_credentials_release(&c);
    assert_int_equal(lgw_credentials_get(p, &c, NULL), LGW_OK);
    assert_string_equal(c.access_key_id, "AKIDPROC");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_REGION");
    lgw_aws_credentials_release(&c);
    lgw_credentials_provider_free(p);
    lgw_error_release(&err);
}

static void test_static_provider(void **state)
{
    struct lgw_credentials_provider *p = NULL;
    struct lgw_aws_credentials c;
    struct lgw_error err;

    (void)state;
    lgw_error_init(&err);
    assert_int_equal(lgw_credentials_provider_new_static("AK", "SK", NULL, &p, &err), LGW_OK);
    assert_int_equal(lgw_credentials_get(p, &c, &err), LGW_OK);
    assert_creds(&c, "AK", "SK", "", "static");
    lgw_aws_credentials_release(&c);
    lgw_credentials_provider_free(p);
    p = NULL;
    /* A get copies only the strings (the bytes after them are left as they were), and
     * release_strings wipes exactly those. */
    assert_int_equal(lgw_credentials_provider_new_static("AKIDX", "secret/xyz", "tok+en", &p, &err),
                     LGW_OK);
    memset(&c, 'Z', sizeof(c));
    assert_int_equal(lgw_credentials_get(p, &c, &err), LGW_OK);
    assert_creds(&c, "AKIDX", "secret/xyz", "tok+en", "static");
    assert_int_equal(c.secret_access_key[11], 'Z');
    lgw_aws_credentials_release_strings(&c);
    for (size_t i = 0; i <= 10; i++)
        assert_int_equal(c.secret_access_key[i], 0);
    for (size_t i = 0; i <= 6; i++)
        assert_int_equal(c.session_token[i], 0);
    for (size_t i = 0; i <= 5; i++)
        assert_int_equal(c.access_key_id[i], 0);
    lgw_aws_credentials_release_strings(NULL);
    lgw_credentials_provider_free(p);
    p = NULL;
    assert_int_equal(lgw_credentials_provider_new_static("AK", "", NULL, &p, &err), LGW_EINTERNAL);
    assert_null(p);
    lgw_credentials_provider_free(NULL);
    lgw_error_release(&err);
}

/* ---- region and endpoint -------------------------------------------------------------------- */

static void test_region_precedence(void **state)
{
    struct tenv *e = tenv_new();
    char r[LGW_AWS_REGION_MAX + 1];
    struct lgw_error err;

    (void)state;
    lgw_error_init(&err);
    /* nothing anywhere */
    assert_int_equal(lgw_aws_region_resolve(&e->env, NULL, r, sizeof(r), &err), LGW_EINTERNAL);
    assert_non_null(strstr(err.message, "no AWS region"));
    assert_string_equal(r, "");

    twrite(e, ".aws/config",
           "[default]\nregion = eu-north-1\n[profile dev]\nregion = ap-southeast-2\n");
    assert_int_equal(lgw_aws_region_resolve(&e->env, NULL, r, sizeof(r), &err), LGW_OK);
    assert_string_equal(r, "eu-north-1");
    tset(e, "AWS_PROFILE", "dev");
    assert_int_equal(lgw_aws_region_resolve(&e->env, NULL, r, sizeof(r), &err), LGW_OK);
    assert_string_equal(r, "ap-southeast-2");
    tset(e, "AWS_DEFAULT_REGION", "us-west-2");
    assert_int_equal(lgw_aws_region_resolve(&e->env, NULL, r, sizeof(r), &err), LGW_OK);
    assert_string_equal(r, "us-west-2");
    tset(e, "AWS_REGION", "eu-west-3");
    assert_int_equal(lgw_aws_region_resolve(&e->env, NULL, r, sizeof(r), &err), LGW_OK);
    assert_string_equal(r, "eu-west-3");
    assert_int_equal(lgw_aws_region_resolve(&e->env, "", r, sizeof(r), &err), LGW_OK);
    assert_string_equal(r, "eu-west-3");
    /* the function ARN's region wins for that function */
    assert_int_equal(lgw_aws_region_resolve(&e->env, "ca-central-1", r, sizeof(r), &err), LGW_OK);
    assert_string_equal(r, "ca-central-1");

    /* bad values name their source */
    tset(e, "AWS_REGION", "EU WEST");
    assert_int_equal(lgw_aws_region_resolve(&e->env, NULL, r, sizeof(r), &err), LGW_EINTERNAL);
    assert_non_null(strstr(err.message, "AWS_REGION"));
    tset(e, "AWS_REGION", "");
    tset(e, "AWS_DEFAULT_REGION", "");
    twrite(e, ".aws/config", "[profile dev]\nregion = ../x\n");
    assert_int_equal(lgw_aws_region_resolve(&e->env, NULL, r, sizeof(r), &err), LGW_EINTERNAL);
    assert_non_null(strstr(err.message, ".aws/config"));
    assert_non_null(strstr(err.message, "'dev'"));
    assert_int_equal(lgw_aws_region_resolve(&e->env, "x/y", r, sizeof(r), &err), LGW_EINTERNAL);
    assert_non_null(strstr(err.message, "function ARN"));
    lgw_error_release(&err);
    tenv_free(e);
}

static void test_ca_bundle(void **state)
{
    struct tenv *e = tenv_new();
    char ca[64], big[300];
    struct lgw_error err;

    (void)state;
    lgw_error_init(&err);
    /* neither: the system's store ("") */
    assert_int_equal(lgw_aws_ca_bundle_resolve(&e->env, ca, sizeof(ca), &err), LGW_OK);
    assert_string_equal(ca, "");
    /* the profile's ca_bundle, then AWS_CA_BUNDLE over it */
    twrite(e, ".aws/config",
           "[default]\nca_bundle = /etc/default-ca.pem\n[profile corp]\nca_bundle = /corp.pem\n");
    assert_int_equal(lgw_aws_ca_bundle_resolve(&e->env, ca, sizeof(ca), &err), LGW_OK);
    assert_string_equal(ca, "/etc/default-ca.pem");
    tset(e, "AWS_PROFILE", "corp");
    assert_int_equal(lgw_aws_ca_bundle_resolve(&e->env, ca, sizeof(ca), &err), LGW_OK);
    assert_string_equal(ca, "/corp.pem");
    tset(e, "AWS_CA_BUNDLE", "/env.pem");
    assert_int_equal(lgw_aws_ca_bundle_resolve(&e->env, ca, sizeof(ca), &err), LGW_OK);
    assert_string_equal(ca, "/env.pem");
    /* too long for the buffer: an error naming the source, not a cut path */
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    tset(e, "AWS_CA_BUNDLE", big);
    assert_int_equal(lgw_aws_ca_bundle_resolve(&e->env, ca, sizeof(ca), &err), LGW_EINTERNAL);
    assert_non_null(strstr(err.message, "AWS_CA_BUNDLE"));
    lgw_error_release(&err);
    tenv_free(e);
}

static void test_endpoint_precedence(void **state)
{
    struct tenv *e = tenv_new();
    char u[LGW_AWS_ENDPOINT_MAX + 1];
    struct lgw_error err;

    (void)state;
    lgw_error_init(&err);
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "eu-west-1", u, sizeof(u), &err), LGW_OK);
    assert_string_equal(u, "https://lambda.eu-west-1.amazonaws.com");
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "cn-north-1", u, sizeof(u), &err), LGW_OK);
    assert_string_equal(u, "https://lambda.cn-north-1.amazonaws.com.cn");
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, NULL, u, sizeof(u), &err), LGW_EINTERNAL);
    assert_non_null(strstr(err.message, "region"));

    twrite(e, ".aws/config",
           "[default]\nendpoint_url = http://profile-level:1\nservices = local\n"
           "[services local]\nlambda =\n  endpoint_url = http://services-level:2/\n"
           "[profile plain]\nendpoint_url = https://plain.example:3\n");
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "eu-west-1", u, sizeof(u), &err), LGW_OK);
    assert_string_equal(u, "http://services-level:2");
    tset(e, "AWS_PROFILE", "plain");
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "eu-west-1", u, sizeof(u), &err), LGW_OK);
    assert_string_equal(u, "https://plain.example:3");
    tset(e, "AWS_ENDPOINT_URL", "http://127.0.0.1:4566/");
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "eu-west-1", u, sizeof(u), &err), LGW_OK);
    assert_string_equal(u, "http://127.0.0.1:4566");
    tset(e, "AWS_ENDPOINT_URL_LAMBDA", "HTTPS://lambda.local:9443/prefix");
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "eu-west-1", u, sizeof(u), &err), LGW_OK);
    assert_string_equal(u, "HTTPS://lambda.local:9443/prefix");
    /* the SDKs' switch that ignores every configured endpoint */
    tset(e, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "us-east-1", u, sizeof(u), &err), LGW_OK);
    assert_string_equal(u, "https://lambda.us-east-1.amazonaws.com");
    tset(e, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "");

    /* bad values name the variable, never echo user info */
    {
        static const char *const bad[] = {
            "ftp://lambda.local", "lambda.local:9000", "http://",       "http://user:pw@host/",
            "http://host/?q=1",   "http://host/#f",    "http://ho st/", "javascript:alert(1)",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            tset(e, "AWS_ENDPOINT_URL_LAMBDA", bad[i]);
            assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "eu-west-1", u, sizeof(u), &err),
                             LGW_EINTERNAL);
            assert_non_null(strstr(err.message, "AWS_ENDPOINT_URL_LAMBDA"));
            assert_null(strstr(err.message, "pw"));
            assert_string_equal(u, "");
        }
    }
    tset(e, "AWS_ENDPOINT_URL_LAMBDA", "");
    tset(e, "AWS_ENDPOINT_URL", "");
    twrite(e, ".aws/config", "[profile plain]\nendpoint_url = localhost:4566\n");
    assert_int_equal(lgw_aws_endpoint_resolve(&e->env, "eu-west-1", u, sizeof(u), &err),
                     LGW_EINTERNAL);
    assert_non_null(strstr(err.message, "endpoint_url"));
    assert_non_null(strstr(err.message, ".aws/config"));
    lgw_error_release(&err);
    tenv_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_only),
        cmocka_unit_test(test_env_partial),
        cmocka_unit_test(test_credentials_file),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_profile_selection),
        cmocka_unit_test(test_credentials_file_beats_config),
        cmocka_unit_test(test_custom_file_paths),
        cmocka_unit_test(test_missing_profile),
        cmocka_unit_test(test_profile_errors),
        cmocka_unit_test(test_env_beats_files_and_container),
        cmocka_unit_test(test_container_relative),
        cmocka_unit_test(test_container_full_uri_token_file),
        cmocka_unit_test(test_container_full_uri_rules),
        cmocka_unit_test(test_container_malformed),
        cmocka_unit_test(test_imds_v2),
        cmocka_unit_test(test_no_credentials),
        cmocka_unit_test(test_refresh_rotates_without_blocking),
        cmocka_unit_test(test_failed_refresh_keeps_old),
        cmocka_unit_test(test_expired_nowait_answers_at_once),
        cmocka_unit_test(test_imds_refresh),
        cmocka_unit_test(test_process_environment),
        cmocka_unit_test(test_static_provider),
        cmocka_unit_test(test_region_precedence),
        cmocka_unit_test(test_endpoint_precedence),
        cmocka_unit_test(test_ca_bundle),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
