/*
 * test_sigv4.c - the SigV4 signer and checker against AWS's official test vectors (read at run
 * time from the shared sigv4-test-suite folder, never copied into the repo), a Lambda Invoke
 * example, botocore-computed values for the cases the vectors do not cover (an ARN in the path,
 * a session token), the key cache, the Authorization parser and the bounds.
 *
 * The suite is found through $LGW_SIGV4_SUITE, else ../shared/sigv4-test-suite from the current
 * directory, else the same beside any ancestor of the test binary. Not finding it is a failure,
 * not a skip: a test that cannot fail is a defect.
 */
#define _DEFAULT_SOURCE /* strndup, realpath on older libcs, d_type */

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sigv4.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define VECTOR_TIME ((time_t)1440938160) /* 2015-08-30T12:36:00Z */
#define FILE_MAX (1 << 20)
#define PREQ_HEADERS_MAX 32

/*
 * Vectors that do not apply, with the reason. Every header-signing case of both folders runs
 * and must pass; the count of cases found is checked too, so a case cannot silently vanish.
 */
static const struct {
    const char *what;
    const char *why;
} not_applicable[] = {
    {"aws-c-auth-v4/*/query-*.txt (all 38 cases)",
     "presigned URLs (signature in the query string) are not built: the gateway signs only "
     "with the Authorization header, and the Invoke API face only accepts that form"},
    {"aws4_testsuite/*/*.sreq, aws-c-auth-v4/*/header-signed-request.txt (whole-file compare)",
     "header placement differs between the two suites (see the suite README); the Authorization "
     "value and the headers the signer adds are checked instead"},
};

#define CLASSIC_CASES 34
#define CRT_CASES 38

/* ---- helpers: files and the suite ---- */

static char suite_dir[PATH_MAX + 64];
static struct lgw_sigv4_key_cache *shared_cache; /* the classic run goes through the cache */

/* snprintf for file paths: a truncated path is a test failure, not a wrong file. */
static void pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void pathf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    assert_true(r >= 0 && (size_t)r < n);
}

static int is_dir(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int find_suite(void)
{
    const char *env = getenv("LGW_SIGV4_SUITE");
    char exe[PATH_MAX], cand[PATH_MAX + 64];
    ssize_t n;

    if (env && *env && is_dir(env)) {
        pathf(suite_dir, sizeof(suite_dir), "%s", env);
        return 1;
    }
    if (is_dir("../shared/sigv4-test-suite")) {
        pathf(suite_dir, sizeof(suite_dir), "%s", "../shared/sigv4-test-suite");
        return 1;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    /* build/tests/test_sigv4, build/san/tests/test_sigv4: walk up until ../shared is found. */
    for (char *slash = strrchr(exe, '/'); slash; slash = strrchr(exe, '/')) {
        *slash = '\0';
        pathf(cand, sizeof(cand), "%s/../shared/sigv4-test-suite", exe);
        if (is_dir(cand)) {
            pathf(suite_dir, sizeof(suite_dir), "%s", cand);
            return 1;
        }
    }
    return 0;
}

/* Reads a whole file (at most FILE_MAX bytes); NULL when missing. Caller frees. */
static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len;

    if (!f)
        return NULL;
    buf = malloc(FILE_MAX + 1);
    assert_non_null(buf);
    len = fread(buf, 1, FILE_MAX + 1, f);
    fclose(f);
    assert_true(len <= FILE_MAX);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

/* Expected files mostly lack a final newline, a few have one: compare without it. */
static char *read_expected(const char *path)
{
    size_t len = 0;
    char *s = read_file(path, &len);

    while (s && len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        s[--len] = '\0';
    return s;
}

/* ---- a raw HTTP request as the vectors write it ---- */

struct preq {
    char *method, *path, *query;
    char *names[PREQ_HEADERS_MAX];
    char *values[PREQ_HEADERS_MAX];
    size_t nh;
    char *body;
    size_t body_len;
};

static void preq_free(struct preq *r)
{
    free(r->method);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->nh; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Removes header `name` (first match); returns its value (caller frees) or NULL. */
static char *preq_take(struct preq *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++) {
        if (strcasecmp(r->names[i], name) == 0) {
            char *v = r->values[i];

            free(r->names[i]);
            memmove(&r->names[i], &r->names[i + 1], (r->nh - i - 1) * sizeof(char *));
            memmove(&r->values[i], &r->values[i + 1], (r->nh - i - 1) * sizeof(char *));
            r->nh--;
            return v;
        }
    }
    return NULL;
}

/*
 * Parses "METHOD target HTTP/1.1", header lines, a blank line and a body. The target may hold a
 * space (get-space) so the version is split at the last space. A line starting with a space or
 * tab continues the previous header (obsolete folding): it is kept with its newline, for the
 * signer to collapse.
 */
static void preq_parse(const char *text, size_t len, struct preq *r)
{
    const char *p = text, *end = text + len, *eol, *sp1, *sp2, *q;

    memset(r, 0, sizeof(*r));
    eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
        eol = end;
    sp1 = memchr(p, ' ', (size_t)(eol - p));
    assert_non_null(sp1);
    for (sp2 = eol - 1; sp2 > sp1 && *sp2 != ' '; sp2--)
        ;
    assert_true(sp2 > sp1);
    r->method = strndup(p, (size_t)(sp1 - p));
    q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
    if (q) {
        r->path = strndup(sp1 + 1, (size_t)(q - sp1 - 1));
        r->query = strndup(q + 1, (size_t)(sp2 - q - 1));
    } else {
        r->path = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    }
    p = eol < end ? eol + 1 : end;
    while (p < end) {
        const char *colon;
        size_t l;

        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        l = (size_t)(eol - p);
        if (l > 0 && p[l - 1] == '\r')
            l--;
        if (l == 0) { /* the blank line: the body follows */
            p = eol < end ? eol + 1 : end;
            r->body_len = (size_t)(end - p);
            r->body = strndup(p, r->body_len);
            return;
        }
        if (*p == ' ' || *p == '\t') {
            char *prev, *nv;
            size_t plen;

            assert_true(r->nh > 0);
            prev = r->values[r->nh - 1];
            plen = strlen(prev);
            nv = malloc(plen + 1 + l + 1);
            assert_non_null(nv);
            memcpy(nv, prev, plen);
            nv[plen] = '\n';
            memcpy(nv + plen + 1, p, l);
            nv[plen + 1 + l] = '\0';
            free(prev);
            r->values[r->nh - 1] = nv;
        } else {
            colon = memchr(p, ':', l);
            assert_non_null(colon);
            assert_true(r->nh < PREQ_HEADERS_MAX);
            r->names[r->nh] = strndup(p, (size_t)(colon - p));
            r->values[r->nh] = strndup(colon + 1, (size_t)(p + l - colon - 1));
            r->nh++;
        }
        p = eol < end ? eol + 1 : end;
    }
    r->body = strdup("");
}

/* ---- running one vector ---- */

struct expected {
    const char *creq, *sts, *authz, *sig; /* authz or sig may be NULL */
    const char *token_after;              /* header-after: the token the caller must add */
};

static int differs(const char *label, const char *what, const char *want, const char *got)
{
    if (want && (!got || strcmp(want, got) != 0)) {
        print_error("%s: %s differs\n--- want\n%s\n--- got\n%s\n", label, what, want,
                    got ? got : "(null)");
        return 1;
    }
    return 0;
}

/*
 * Signs the request, compares with the expected files, then feeds the signed request back to
 * the checker (which must accept it) and a tampered copy (which must not). Returns the number
 * of mismatches.
 */
static int run_vector(const char *label, const struct lgw_sigv4_config *cfg, const struct preq *r,
                      time_t when, const struct expected *x)
{
    struct lgw_sigv4_header h[PREQ_HEADERS_MAX + 3];
    struct lgw_sigv4_request req = {0};
    struct lgw_sigv4_result res;
    struct lgw_sigv4_debug dbg = {0};
    struct lgw_sigv4_auth auth;
    struct lgw_error err;
    const char *amz_date = NULL, *tok = NULL;
    size_t nh = 0;
    int bad = 0;
    enum lgw_errc ec;

    lgw_error_init(&err);
    for (size_t i = 0; i < r->nh; i++)
        h[nh++] = (struct lgw_sigv4_header){r->names[i], r->values[i]};
    req.method = r->method;
    req.path = r->path;
    req.query = r->query;
    req.headers = h;
    req.header_count = nh;
    req.body = r->body;
    req.body_len = r->body_len;

    ec = lgw_sigv4_sign(cfg, &req, when, &res, &dbg, &err);
    if (ec != LGW_OK) {
        print_error("%s: sign failed: %s\n", label, err.message);
        lgw_error_release(&err);
        return 1;
    }
    bad += differs(label, "canonical request", x->creq, dbg.canonical_request);
    bad += differs(label, "string to sign", x->sts, dbg.string_to_sign);
    bad += differs(label, "Authorization", x->authz, res.authorization);
    bad += differs(label, "signature", x->sig, res.signature);
    for (size_t i = 0; i < res.add_count; i++) {
        if (strcmp(res.add[i].name, "X-Amz-Date") == 0)
            amz_date = res.add[i].value;
        if (strcmp(res.add[i].name, "X-Amz-Security-Token") == 0)
            tok = res.add[i].value;
    }
    bad += differs(label, "X-Amz-Date to add", "20150830T123600Z", amz_date);
    if (x->token_after)
        bad += differs(label, "token header to add", x->token_after, tok);

    /* The checker must accept what the signer produced, with all the added headers present. */
    for (size_t i = 0; i < res.add_count; i++)
        h[nh++] = (struct lgw_sigv4_header){res.add[i].name, res.add[i].value};
    req.header_count = nh;
    if (cfg->opts.sign_body)
        req.payload_hash = res.payload_hash;
    ec = lgw_sigv4_parse_authorization(res.authorization, strlen(res.authorization), &auth, &err);
    if (ec == LGW_OK)
        ec = lgw_sigv4_verify(&req, &cfg->opts, &auth, res.amz_date, SECRET, "us-east-1", "service",
                              when + 10, 300, cfg->cache, &err);
    if (ec != LGW_OK) {
        print_error("%s: verify of own signature failed: %s\n", label, err.message);
        bad++;
    }
    /* One changed byte of the body must be caught. */
    if (!cfg->opts.sign_body) {
        req.body = "tampered";
        req.body_len = 8;
        if (lgw_sigv4_verify(&req, &cfg->opts, &auth, res.amz_date, SECRET, "us-east-1", "service",
                             when, 300, NULL, &err) != LGW_EDENIED) {
            print_error("%s: tampered body was accepted\n", label);
            bad++;
        }
    }
    lgw_sigv4_debug_release(&dbg);
    lgw_error_release(&err);
    return bad;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the subfolders of dir. Caller frees each and the array. */
static size_t list_dirs(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL, path[PATH_MAX * 2];
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        pathf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (!is_dir(path))
            continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        assert_non_null(names);
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_str);
    *out = names;
    return n;
}

static void free_list(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ---- the classic suite (botocore's copy of aws4_testsuite) ---- */

/* The value of "name:" in a file's lines, or NULL. Caller frees. */
static char *line_value(const char *text, const char *name)
{
    size_t nl = strlen(name);

    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t l = eol ? (size_t)(eol - p) : strlen(p);

        if (l > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;

            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(p + l - v));
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

/* name: the case folder relative to dir ("normalize-path/get-slash"); leaf: its last part. */
static int run_classic_case(const char *dir, const char *name, const char *leaf)
{
    char base[PATH_MAX * 2 + 64], path[PATH_MAX * 3];
    struct lgw_sigv4_config cfg = {0};
    struct expected x = {0};
    struct preq r;
    char *text, *creq, *sts, *authz, *sreq, *date, *token;
    char *creq_tok, *sreq_tok;
    time_t when = 0;
    size_t len = 0;
    int bad;

    pathf(base, sizeof(base), "%s/%s/%s", dir, name, leaf);
    pathf(path, sizeof(path), "%s.req", base);
    text = read_file(path, &len);
    assert_non_null(text);
    preq_parse(text, len, &r);
    pathf(path, sizeof(path), "%s.creq", base);
    creq = read_expected(path);
    pathf(path, sizeof(path), "%s.sts", base);
    sts = read_expected(path);
    pathf(path, sizeof(path), "%s.authz", base);
    authz = read_expected(path);
    pathf(path, sizeof(path), "%s.sreq", base);
    sreq = read_expected(path);
    assert_non_null(creq);
    assert_non_null(sts);
    assert_non_null(authz);
    assert_non_null(sreq);

    /* The .req carries X-Amz-Date (the signer adds its own from the time) and, in
     * header-before, the token (a credential here, not a header the caller adds). */
    date = preq_take(&r, "X-Amz-Date");
    assert_non_null(date);
    assert_int_equal(lgw_sigv4_parse_amz_date(date, &when, NULL), LGW_OK);
    assert_true(when == VECTOR_TIME);
    token = preq_take(&r, "X-Amz-Security-Token");
    creq_tok = line_value(creq, "x-amz-security-token");
    sreq_tok = line_value(sreq, "X-Amz-Security-Token");
    cfg.opts = lgw_sigv4_options_default();
    if (!token && creq_tok) {
        /* get-vanilla-with-session-token: signed token not in the .req (botocore's harness
         * reads it from the .creq too). */
        token = strdup(creq_tok);
    } else if (!token && sreq_tok) {
        /* post-sts-header-after: the token is sent but not signed. */
        token = strdup(sreq_tok);
        cfg.opts.token_mode = LGW_SIGV4_TOKEN_AFTER;
        x.token_after = token;
    }
    cfg.creds = (struct lgw_sigv4_credentials){"AKIDEXAMPLE", SECRET, token};
    cfg.region = "us-east-1";
    cfg.service = "service";
    cfg.cache = shared_cache;
    x.creq = creq;
    x.sts = sts;
    x.authz = authz;
    bad = run_vector(name, &cfg, &r, when, &x);

    /* The expected Authorization, parsed and checked against the request, must pass too. */
    if (!bad) {
        struct lgw_sigv4_header h[PREQ_HEADERS_MAX + 2];
        struct lgw_sigv4_request req = {0};
        struct lgw_sigv4_auth auth;
        size_t nh = 0;

        for (size_t i = 0; i < r.nh; i++)
            h[nh++] = (struct lgw_sigv4_header){r.names[i], r.values[i]};
        h[nh++] = (struct lgw_sigv4_header){"X-Amz-Date", date};
        if (token)
            h[nh++] = (struct lgw_sigv4_header){"X-Amz-Security-Token", token};
        req =
            (struct lgw_sigv4_request){r.method, r.path, r.query, h, nh, r.body, r.body_len, NULL};
        assert_int_equal(lgw_sigv4_parse_authorization(authz, strlen(authz), &auth, NULL), LGW_OK);
        if (lgw_sigv4_verify(&req, &cfg.opts, &auth, date, SECRET, "us-east-1", "service", when,
                             300, shared_cache, NULL) != LGW_OK) {
            print_error("%s: verify of the expected .authz failed\n", name);
            bad++;
        }
    }
    preq_free(&r);
    free(text);
    free(creq);
    free(sts);
    free(authz);
    free(sreq);
    free(date);
    free(token);
    free(creq_tok);
    free(sreq_tok);
    return bad;
}

static void test_classic_suite(void **state)
{
    char dir[PATH_MAX + 32], sub[PATH_MAX * 2], name[PATH_MAX];
    char **top = NULL;
    size_t ntop, cases = 0;
    int bad = 0;

    (void)state;
    pathf(dir, sizeof(dir), "%s/aws4_testsuite", suite_dir);
    ntop = list_dirs(dir, &top);
    for (size_t i = 0; i < ntop; i++) {
        char **inner = NULL;
        size_t ninner;

        /* A case folder holds NAME.req; normalize-path/ and post-sts-token/ group cases. */
        pathf(sub, sizeof(sub), "%s/%s/%s.req", dir, top[i], top[i]);
        if (access(sub, R_OK) == 0) {
            bad += run_classic_case(dir, top[i], top[i]);
            cases++;
            continue;
        }
        pathf(sub, sizeof(sub), "%s/%s", dir, top[i]);
        ninner = list_dirs(sub, &inner);
        for (size_t k = 0; k < ninner; k++) {
            pathf(name, sizeof(name), "%s/%s", top[i], inner[k]);
            bad += run_classic_case(dir, name, inner[k]);
            cases++;
        }
        free_list(inner, ninner);
    }
    free_list(top, ntop);
    print_message("classic suite: %zu cases, %d mismatches\n", cases, bad);
    assert_int_equal(cases, CLASSIC_CASES);
    assert_int_equal(bad, 0);
}

/* ---- the aws-c-auth suite ---- */

static int run_crt_case(const char *dir, const char *name)
{
    char path[PATH_MAX * 3];
    struct lgw_sigv4_config cfg = {0};
    struct expected x = {0};
    struct preq r;
    json_t *ctx, *creds, *v;
    json_error_t jerr;
    char *text, *creq, *sts, *sig, *signed_req, *authz;
    char amz_date[LGW_SIGV4_AMZ_DATE_LEN + 1];
    const char *ts, *token = NULL;
    time_t when = 0;
    size_t len = 0;
    int bad;

    pathf(path, sizeof(path), "%s/%s/context.json", dir, name);
    ctx = json_load_file(path, 0, &jerr);
    assert_non_null(ctx);
    pathf(path, sizeof(path), "%s/%s/request.txt", dir, name);
    text = read_file(path, &len);
    assert_non_null(text);
    preq_parse(text, len, &r);
    pathf(path, sizeof(path), "%s/%s/header-canonical-request.txt", dir, name);
    creq = read_expected(path);
    pathf(path, sizeof(path), "%s/%s/header-string-to-sign.txt", dir, name);
    sts = read_expected(path);
    pathf(path, sizeof(path), "%s/%s/header-signature.txt", dir, name);
    sig = read_expected(path);
    pathf(path, sizeof(path), "%s/%s/header-signed-request.txt", dir, name);
    signed_req = read_expected(path);
    assert_non_null(creq);
    assert_non_null(sts);
    assert_non_null(sig);
    assert_non_null(signed_req);
    authz = line_value(signed_req, "Authorization");
    assert_non_null(authz);

    /* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
    ts = json_string_value(json_object_get(ctx, "timestamp"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 20);
    snprintf(amz_date, sizeof(amz_date), "%.4s%.2s%.2sT%.2s%.2s%.2sZ", ts, ts + 5, ts + 8, ts + 11,
             ts + 14, ts + 17);
    assert_int_equal(lgw_sigv4_parse_amz_date(amz_date, &when, NULL), LGW_OK);

    creds = json_object_get(ctx, "credentials");
    assert_string_equal(json_string_value(json_object_get(creds, "secret_access_key")), SECRET);
    token = json_string_value(json_object_get(creds, "token"));
    cfg.creds = (struct lgw_sigv4_credentials){
        json_string_value(json_object_get(creds, "access_key_id")), SECRET, token};
    cfg.region = json_string_value(json_object_get(ctx, "region"));
    cfg.service = json_string_value(json_object_get(ctx, "service"));
    cfg.opts = lgw_sigv4_options_default();
    cfg.opts.normalize_path = json_is_true(json_object_get(ctx, "normalize"));
    cfg.opts.sign_body = json_is_true(json_object_get(ctx, "sign_body"));
    v = json_object_get(ctx, "omit_session_token");
    if (json_is_true(v)) {
        cfg.opts.token_mode = LGW_SIGV4_TOKEN_AFTER;
        x.token_after = token;
    }
    x.creq = creq;
    x.sts = sts;
    x.sig = sig;
    x.authz = authz;
    bad = run_vector(name, &cfg, &r, when, &x);

    preq_free(&r);
    json_decref(ctx);
    free(text);
    free(creq);
    free(sts);
    free(sig);
    free(signed_req);
    free(authz);
    return bad;
}

static void test_crt_suite(void **state)
{
    char dir[PATH_MAX + 32];
    char **names = NULL;
    size_t n;
    int bad = 0;

    (void)state;
    pathf(dir, sizeof(dir), "%s/aws-c-auth-v4", suite_dir);
    n = list_dirs(dir, &names);
    for (size_t i = 0; i < n; i++)
        bad += run_crt_case(dir, names[i]);
    free_list(names, n);
    print_message("aws-c-auth suite: %zu cases, %d mismatches\n", n, bad);
    assert_int_equal(n, CRT_CASES);
    assert_int_equal(bad, 0);
}

/* ---- Lambda: the README's derived example, an ARN in the path, a session token ---- */

static const struct lgw_sigv4_header lambda_host[] = {{"Host", "lambda.us-east-1.amazonaws.com"}};

static struct lgw_sigv4_config lambda_cfg(const char *token, struct lgw_sigv4_key_cache *cache)
{
    struct lgw_sigv4_config cfg = {
        {"AKIDEXAMPLE", SECRET, token}, "us-east-1", "lambda", lgw_sigv4_options_default(), cache};
    return cfg;
}

static void test_lambda_readme_example(void **state)
{
    struct lgw_sigv4_config cfg = lambda_cfg(NULL, NULL);
    struct lgw_sigv4_request req = {
        "POST", "/2015-03-31/functions/my-fn/invocations", NULL, lambda_host, 1, "{\"a\":1}", 7,
        NULL};
    struct lgw_sigv4_result res;
    struct lgw_sigv4_debug dbg;

    (void)state;
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, &dbg, NULL), LGW_OK);
    assert_string_equal(dbg.canonical_request,
                        "POST\n/2015-03-31/functions/my-fn/invocations\n\n"
                        "host:lambda.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                        "host;x-amz-date\n"
                        "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862");
    assert_string_equal(dbg.string_to_sign,
                        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/lambda/"
                        "aws4_request\n"
                        "e9d08e249b889b4210790c619e7a66c24b56e652f44641b18c90dbc75b47d34c");
    assert_string_equal(
        res.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/"
        "aws4_request, SignedHeaders=host;x-amz-date, "
        "Signature=c462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f7");
    assert_int_equal(res.add_count, 1);
    assert_string_equal(res.add[0].name, "X-Amz-Date");
    assert_string_equal(res.add[0].value, "20150830T123600Z");
    lgw_sigv4_debug_release(&dbg);
}

/*
 * The expected signatures below were computed once with botocore 1.29.27 (/usr/bin/python3):
 *   creds = Credentials('AKIDEXAMPLE', SECRET, token)
 *   req = AWSRequest(method='POST', url=URL, data=b'{"a":1}')
 *   with mock.patch('botocore.auth.datetime') as dt:
 *       dt.datetime.utcnow.return_value = datetime.datetime(2015, 8, 30, 12, 36, 0)
 *       SigV4Auth(creds, 'lambda', 'us-east-1').add_auth(req)
 * and req.headers['Authorization'] read off. The ARN case used URL
 * https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A
 * 123456789012%3Afunction%3Amy-fn/invocations?Qualifier=prod (no token); the token case the
 * README's my-fn URL with token 'FQoGZXIvYXdzEXAMPLETOKEN//+='.
 */
static void test_lambda_arn_double_encoded(void **state)
{
    struct lgw_sigv4_config cfg = lambda_cfg(NULL, NULL);
    struct lgw_sigv4_request req = {"POST",
                                    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A"
                                    "123456789012%3Afunction%3Amy-fn/invocations",
                                    "Qualifier=prod",
                                    lambda_host,
                                    1,
                                    "{\"a\":1}",
                                    7,
                                    NULL};
    struct lgw_sigv4_result res;
    struct lgw_sigv4_debug dbg;

    (void)state;
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, &dbg, NULL), LGW_OK);
    assert_non_null(strstr(dbg.canonical_request,
                           "\n/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A"
                           "123456789012%253Afunction%253Amy-fn/invocations\nQualifier=prod\n"));
    assert_string_equal(res.signature,
                        "d636772cdcbae72d76df68caf0ff25a6c37972c7eedc11da675b99d2e1ee5275");
    lgw_sigv4_debug_release(&dbg);

    /* The checker accepts botocore's request as an SDK would send it (raw wire path). */
    {
        const char *authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/"
                            "aws4_request, SignedHeaders=host;x-amz-date, Signature="
                            "d636772cdcbae72d76df68caf0ff25a6c37972c7eedc11da675b99d2e1ee5275";
        struct lgw_sigv4_header in[] = {{"Host", "lambda.us-east-1.amazonaws.com"},
                                        {"X-Amz-Date", "20150830T123600Z"},
                                        {"Content-Length", "7"}};
        struct lgw_sigv4_request inreq = req;
        struct lgw_sigv4_auth auth;

        inreq.headers = in;
        inreq.header_count = 3;
        assert_int_equal(lgw_sigv4_parse_authorization(authz, strlen(authz), &auth, NULL), LGW_OK);
        assert_int_equal(lgw_sigv4_verify(&inreq, &cfg.opts, &auth, "20150830T123600Z", SECRET,
                                          "us-east-1", "lambda", VECTOR_TIME, 300, NULL, NULL),
                         LGW_OK);
        /* A server that percent-decoded the path first would reject it: keep the raw path. */
        inreq.path = "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:my-fn/"
                     "invocations";
        assert_int_equal(lgw_sigv4_verify(&inreq, &cfg.opts, &auth, "20150830T123600Z", SECRET,
                                          "us-east-1", "lambda", VECTOR_TIME, 300, NULL, NULL),
                         LGW_EDENIED);
    }

    /* Without double encoding (S3 style) the signature must differ: the option is live. */
    cfg.opts.double_encode_path = false;
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, &dbg, NULL), LGW_OK);
    assert_non_null(strstr(dbg.canonical_request, "/functions/arn%3Aaws%3Alambda%3A"));
    assert_string_not_equal(res.signature,
                            "d636772cdcbae72d76df68caf0ff25a6c37972c7eedc11da675b99d2e1ee5275");
    lgw_sigv4_debug_release(&dbg);
}

static void test_lambda_session_token_signed(void **state)
{
    const char *tok = "FQoGZXIvYXdzEXAMPLETOKEN//+=";
    struct lgw_sigv4_config cfg = lambda_cfg(tok, NULL);
    struct lgw_sigv4_request req = {
        "POST", "/2015-03-31/functions/my-fn/invocations", NULL, lambda_host, 1, "{\"a\":1}", 7,
        NULL};
    struct lgw_sigv4_result res;

    (void)state;
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, NULL), LGW_OK);
    assert_string_equal(
        res.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/"
        "aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=e8aa1b294b42d5a7583d6b03cb260ca1b54bdad89562da7e89eb202b52234030");
    assert_int_equal(res.add_count, 2);
    assert_string_equal(res.add[1].name, "X-Amz-Security-Token");
    assert_ptr_equal(res.add[1].value, tok);

    /* sign_body adds x-amz-content-sha256 with the body's hash, and signs it. */
    cfg.opts.sign_body = true;
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, NULL), LGW_OK);
    assert_int_equal(res.add_count, 3);
    assert_string_equal(res.add[2].name, "x-amz-content-sha256");
    assert_string_equal(res.add[2].value,
                        "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862");
    assert_non_null(strstr(res.authorization, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                                              "x-amz-security-token,"));
}

/* ---- inbound verification ---- */

static void test_verify(void **state)
{
    struct lgw_sigv4_config cfg = lambda_cfg(NULL, NULL);
    struct lgw_sigv4_header h[4] = {{"Host", "lambda.us-east-1.amazonaws.com"},
                                    {"Content-Type", "application/json"}};
    struct lgw_sigv4_request req = {
        "POST", "/2015-03-31/functions/my-fn/invocations", NULL, h, 2, "{\"a\":1}", 7, NULL};
    struct lgw_sigv4_options o = lgw_sigv4_options_default();
    struct lgw_sigv4_result res;
    struct lgw_sigv4_auth auth;
    struct lgw_error err;
    char hex[LGW_SIGV4_HEX_LEN + 1];

    (void)state;
    lgw_error_init(&err);
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, NULL), LGW_OK);
    h[2] = (struct lgw_sigv4_header){"X-Amz-Date", res.amz_date};
    h[3] = (struct lgw_sigv4_header){"User-Agent", "not signed, may change"};
    req.header_count = 4;
    assert_int_equal(
        lgw_sigv4_parse_authorization(res.authorization, strlen(res.authorization), &auth, &err),
        LGW_OK);
    assert_string_equal(auth.signed_headers, "content-type;host;x-amz-date");
    assert_int_equal(
        lgw_sigv4_expected_signature(&req, &o, &auth, res.amz_date, SECRET, NULL, hex, NULL, &err),
        LGW_OK);
    assert_string_equal(hex, res.signature);
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, res.amz_date, SECRET, "us-east-1", "lambda",
                                      VECTOR_TIME + 299, 300, NULL, &err),
                     LGW_OK);

    /* Clock skew past the limit, either way. */
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, res.amz_date, SECRET, "us-east-1", "lambda",
                                      VECTOR_TIME + 301, 300, NULL, &err),
                     LGW_EDENIED);
    assert_string_equal(err.aws_type, "InvalidSignatureException");
    assert_int_equal(err.aws_status, 403);
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, res.amz_date, SECRET, "us-east-1", "lambda",
                                      VECTOR_TIME - 301, 300, NULL, &err),
                     LGW_EDENIED);
    /* Wrong scope, wrong secret, changed signed header, missing signed header. */
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, res.amz_date, SECRET, "eu-west-1", "lambda",
                                      VECTOR_TIME, 300, NULL, &err),
                     LGW_EDENIED);
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, res.amz_date, "other-secret", "us-east-1",
                                      "lambda", VECTOR_TIME, 300, NULL, &err),
                     LGW_EDENIED);
    assert_string_equal(err.aws_type, "InvalidSignatureException");
    h[1].value = "text/plain";
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, res.amz_date, SECRET, "us-east-1", "lambda",
                                      VECTOR_TIME, 300, NULL, &err),
                     LGW_EDENIED);
    h[1].value = "application/json";
    req.header_count = 1; /* Content-Type gone */
    h[1] = h[2];
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, res.amz_date, SECRET, "us-east-1", "lambda",
                                      VECTOR_TIME, 300, NULL, &err),
                     LGW_EDENIED);
    /* Credential date that does not match X-Amz-Date. */
    memcpy(auth.date, "20150831", 8);
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, res.amz_date, SECRET, "us-east-1", "lambda",
                                      VECTOR_TIME, 300, NULL, &err),
                     LGW_EDENIED);
    /* Malformed X-Amz-Date. */
    assert_int_equal(lgw_sigv4_verify(&req, &o, &auth, "20150230T123600Z", SECRET, "us-east-1",
                                      "lambda", VECTOR_TIME, 300, NULL, &err),
                     LGW_EBADREQUEST);
    lgw_error_release(&err);
}

/* ---- the key cache ---- */

static void test_key_cache(void **state)
{
    struct lgw_sigv4_key_cache *c = lgw_sigv4_key_cache_new(2);
    unsigned char k1[32], k2[32], k3[32], want[32];
    uint64_t hits, misses;

    (void)state;
    assert_non_null(c);
    /* AWS's published example of a derived key (IAM, 20120215). */
    static const unsigned char iam[32] = {0xf4, 0x78, 0x0e, 0x2d, 0x9f, 0x65, 0xfa, 0x89,
                                          0x5f, 0x9c, 0x67, 0xb3, 0x2c, 0xe1, 0xba, 0xf0,
                                          0xb0, 0xd8, 0xa4, 0x35, 0x05, 0xa0, 0x00, 0xa1,
                                          0xa9, 0xe0, 0x90, 0xd4, 0x14, 0xdb, 0x40, 0x4d};
    assert_int_equal(lgw_sigv4_derive_key(SECRET, "20120215", "us-east-1", "iam", want, NULL),
                     LGW_OK);
    assert_memory_equal(want, iam, 32);

    assert_int_equal(lgw_sigv4_key_cache_get(c, SECRET, "20120215", "us-east-1", "iam", k1, NULL),
                     LGW_OK);
    assert_int_equal(lgw_sigv4_key_cache_get(c, SECRET, "20120215", "us-east-1", "iam", k2, NULL),
                     LGW_OK);
    assert_memory_equal(k1, iam, 32);
    assert_memory_equal(k2, iam, 32);
    lgw_sigv4_key_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);

    /* Another date: another key, a miss. */
    assert_int_equal(lgw_sigv4_key_cache_get(c, SECRET, "20120216", "us-east-1", "iam", k3, NULL),
                     LGW_OK);
    assert_memory_not_equal(k3, k1, 32);
    lgw_sigv4_key_cache_stats(c, &hits, &misses);
    assert_int_equal(misses, 2);

    /* Another secret with the same scope: another key (the secret is part of the cache key). */
    assert_int_equal(
        lgw_sigv4_key_cache_get(c, "another", "20120215", "us-east-1", "iam", k3, NULL), LGW_OK);
    assert_memory_not_equal(k3, k1, 32);
    /* Capacity 2: the least recently used (20120215 + SECRET was used before 20120216) went. */
    assert_int_equal(lgw_sigv4_key_cache_get(c, SECRET, "20120216", "us-east-1", "iam", k3, NULL),
                     LGW_OK);
    lgw_sigv4_key_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 2);
    assert_int_equal(misses, 3);
    assert_int_equal(lgw_sigv4_key_cache_get(c, SECRET, "20120215", "us-east-1", "iam", k1, NULL),
                     LGW_OK);
    lgw_sigv4_key_cache_stats(c, &hits, &misses);
    assert_int_equal(misses, 4);
    assert_memory_equal(k1, iam, 32);

    /* Bad scope is refused, not cached. */
    assert_int_equal(lgw_sigv4_key_cache_get(c, SECRET, "2012021", "us-east-1", "iam", k1, NULL),
                     LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_key_cache_get(c, SECRET, "20120215", "us/east", "iam", k1, NULL),
                     LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_key_cache_get(c, "", "20120215", "us-east-1", "iam", k1, NULL),
                     LGW_EBADREQUEST);
    assert_null(lgw_sigv4_key_cache_new(100000));
    lgw_sigv4_key_cache_free(c);
    lgw_sigv4_key_cache_free(NULL);
}

#define THREADS 4
#define ROUNDS 2000

struct thread_arg {
    struct lgw_sigv4_key_cache *cache;
    int failures;
};

static void *sign_loop(void *p)
{
    struct thread_arg *a = p;
    struct lgw_sigv4_config cfg = lambda_cfg(NULL, a->cache);
    struct lgw_sigv4_request req = {
        "POST", "/2015-03-31/functions/my-fn/invocations", NULL, lambda_host, 1, "{\"a\":1}", 7,
        NULL};
    struct lgw_sigv4_result res;

    for (int i = 0; i < ROUNDS; i++) {
        /* Two days alternate so entries are replaced while other threads read them. */
        time_t when = VECTOR_TIME + (i % 2) * 86400;

        if (lgw_sigv4_sign(&cfg, &req, when, &res, NULL, NULL) != LGW_OK ||
            (i % 2 == 0 &&
             strcmp(res.signature,
                    "c462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f7") != 0))
            a->failures++;
    }
    return NULL;
}

static void test_key_cache_threads(void **state)
{
    struct lgw_sigv4_key_cache *c = lgw_sigv4_key_cache_new(1); /* 1: constant replacement */
    struct thread_arg args[THREADS];
    pthread_t t[THREADS];
    uint64_t hits, misses;

    (void)state;
    assert_non_null(c);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct thread_arg){c, 0};
        assert_int_equal(pthread_create(&t[i], NULL, sign_loop, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    lgw_sigv4_key_cache_stats(c, &hits, &misses);
    assert_int_equal(hits + misses, THREADS * ROUNDS);
    lgw_sigv4_key_cache_free(c);
}

/* ---- the Authorization parser ---- */

static void test_parse_authorization_good(void **state)
{
    const char *v = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/"
                    "aws4_request, SignedHeaders=host;x-amz-date, "
                    "Signature=c462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f7";
    /* Other order, no spaces after commas, trailing spaces: what some clients send. */
    const char *v2 = "AWS4-HMAC-SHA256 "
                     "Signature=c462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f7,"
                     "SignedHeaders=host;x-amz-date ,  Credential=AKIDEXAMPLE/20150830/us-east-1/"
                     "lambda/aws4_request  ";
    struct lgw_sigv4_auth a, b;

    (void)state;
    assert_int_equal(lgw_sigv4_parse_authorization(v, strlen(v), &a, NULL), LGW_OK);
    assert_string_equal(a.access_key, "AKIDEXAMPLE");
    assert_string_equal(a.date, "20150830");
    assert_string_equal(a.region, "us-east-1");
    assert_string_equal(a.service, "lambda");
    assert_string_equal(a.signed_headers, "host;x-amz-date");
    assert_string_equal(a.signature,
                        "c462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f7");
    assert_int_equal(lgw_sigv4_parse_authorization(v2, strlen(v2), &b, NULL), LGW_OK);
    assert_memory_equal(&a, &b, sizeof(a));
    /* Not NUL-terminated: only len bytes are read. */
    {
        char copy[512];
        size_t n = strlen(v);

        memcpy(copy, v, n);
        memset(copy + n, 'X', sizeof(copy) - n);
        assert_int_equal(lgw_sigv4_parse_authorization(copy, n, &b, NULL), LGW_OK);
        assert_memory_equal(&a, &b, sizeof(a));
    }
}

static void test_parse_authorization_bad(void **state)
{
#define CRED "Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request"
#define SH "SignedHeaders=host;x-amz-date"
#define SIG "Signature=c462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f7"
    static const char *const bad[] = {
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA1 " CRED ", " SH ", " SIG,
        "aws4-hmac-sha256 " CRED ", " SH ", " SIG,
        "AWS4-HMAC-SHA256 " CRED ", " SH,                      /* no signature */
        "AWS4-HMAC-SHA256 " CRED ", " SIG,                     /* no signed headers */
        "AWS4-HMAC-SHA256 " SH ", " SIG,                       /* no credential */
        "AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG ", " SIG,    /* repeated */
        "AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG ", Foo=bar", /* unknown part */
        "AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG ",",         /* trailing comma */
        "AWS4-HMAC-SHA256 " CRED " " SH ", " SIG,              /* missing comma */
        "AWS4-HMAC-SHA256 Credential=, " SH ", " SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda, " SH ", " SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request/x, " SH
        ", " SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015083/us-east-1/lambda/aws4_request, " SH
        ", " SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015083x/us-east-1/lambda/aws4_request, " SH
        ", " SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws5_request, " SH
        ", " SIG,
        "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/lambda/aws4_request, " SH ", " SIG,
        "AWS4-HMAC-SHA256 Credential=AKID EXAMPLE/20150830/us-east-1/lambda/aws4_request, " SH
        ", " SIG,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1-way-too-long-for-a-region-"
        "name/lambda/aws4_request, " SH ", " SIG,
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=x-amz-date;host, " SIG,  /* unsorted */
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=Host;x-amz-date, " SIG,  /* upper case */
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host;;x-amz-date, " SIG, /* empty name */
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host;host, " SIG,        /* repeated */
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=, " SIG,
        "AWS4-HMAC-SHA256 " CRED ", " SH
        ", Signature=C462456E35214AE9D534C6FB2E2B289D27380034402E2E505790B735525D05F7",
        "AWS4-HMAC-SHA256 " CRED ", " SH
        ", Signature=c462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f",
        "AWS4-HMAC-SHA256 " CRED ", " SH
        ", Signature=c462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f7a",
        "AWS4-HMAC-SHA256 " CRED ", " SH
        ", Signature=g462456e35214ae9d534c6fb2e2b289d27380034402e2e505790b735525d05f7",
    };
    struct lgw_sigv4_auth a;
    struct lgw_error err;
    char *big;
    size_t n;

    (void)state;
    lgw_error_init(&err);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lgw_sigv4_parse_authorization(bad[i], strlen(bad[i]), &a, &err) != LGW_EBADREQUEST)
            fail_msg("accepted malformed Authorization #%zu: %s", i, bad[i]);
        assert_int_equal(err.code, LGW_EBADREQUEST);
        assert_int_equal(a.signature[0], '\0'); /* nothing half-filled */
    }
    assert_int_equal(lgw_sigv4_parse_authorization(NULL, 0, &a, &err), LGW_EBADREQUEST);
    /* An embedded NUL within len is malformed, not a terminator. */
    {
        const char v[] = "AWS4-HMAC-SHA256 " CRED ", " SH "\0x, " SIG;

        assert_int_equal(lgw_sigv4_parse_authorization(v, sizeof(v) - 1, &a, NULL),
                         LGW_EBADREQUEST);
    }
    /* Oversize: a valid prefix padded past the bound. */
    n = LGW_SIGV4_AUTHZ_HEADER_MAX + 1;
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG,
           strlen("AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG));
    big[n] = '\0';
    assert_int_equal(lgw_sigv4_parse_authorization(big, n, &a, &err), LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_parse_authorization(big, n - 1, &a, &err), LGW_OK);
    free(big);
    lgw_error_release(&err);
#undef CRED
#undef SH
#undef SIG
}

/* ---- canonical forms the vectors do not show ---- */

static char *canonical_of(const char *path, const char *query, bool normalize, bool dbl)
{
    struct lgw_sigv4_config cfg = lambda_cfg(NULL, NULL);
    struct lgw_sigv4_request req = {"GET", path, query, lambda_host, 1, NULL, 0, NULL};
    struct lgw_sigv4_result res;
    struct lgw_sigv4_debug dbg;
    char *line, *nl;

    cfg.opts.normalize_path = normalize;
    cfg.opts.double_encode_path = dbl;
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, &dbg, NULL), LGW_OK);
    /* the URI and query lines */
    line = strdup(strchr(dbg.canonical_request, '\n') + 1);
    nl = strchr(line, '\n');
    nl = strchr(nl + 1, '\n');
    *nl = '\0';
    lgw_sigv4_debug_release(&dbg);
    return line;
}

static void check_canonical(const char *path, const char *query, bool normalize, bool dbl,
                            const char *want)
{
    char *got = canonical_of(path, query, normalize, dbl);

    if (strcmp(got, want) != 0)
        fail_msg("path %s query %s: want\n%s\ngot\n%s", path, query ? query : "(null)", want, got);
    free(got);
}

static void test_canonical_forms(void **state)
{
    (void)state;
    /* Paths (botocore's remove_dot_segments, then one more encoding). */
    check_canonical("", NULL, true, true, "/\n");
    check_canonical("/a/./b/../c//", NULL, true, true, "/a/c/\n");
    check_canonical("/a/b/../../..", NULL, true, true, "/\n");
    check_canonical("/a/.", NULL, true, true, "/a\n");
    check_canonical("/a%2Fb/c d", NULL, true, true, "/a%252Fb/c%20d\n");
    /* S3 style: verbatim, existing escapes kept, raw bytes encoded. */
    check_canonical("//a/./b%20c d//", NULL, false, false, "//a/./b%20c%20d//\n");
    /* Queries: decoded then re-encoded, sorted by key then value, in byte order. */
    check_canonical("/", "b=2&a=1&a=0&A=3", true, true, "/\nA=3&a=0&a=1&b=2");
    check_canonical("/", "k=%7e%7E~&x=a+b&e", true, true, "/\ne=&k=~~~&x=a%2Bb");
    check_canonical("/", "a=%2f/&&b=c=d&", true, true, "/\na=%2F%2F&b=c%3Dd");
    check_canonical("/", "%E1%88%B4=1&Param=2", true, true, "/\n%E1%88%B4=1&Param=2");

    /* Every byte value through the path encoder, both modes, against the rule spelled out. */
    for (int pct_kept = 0; pct_kept < 2; pct_kept++) {
        char path[257], want[3 * 256 + 8], *got;
        size_t w = 0;

        for (int c = 1; c < 256; c++)
            path[c - 1] = (char)c;
        path[0] = '/'; /* byte 1 replaced: the path must start with '/' */
        path[255] = '\0';
        for (int i = 0; i < 255; i++) {
            unsigned char c = (unsigned char)path[i];

            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.' || c == '~' || c == '/' || (pct_kept && c == '%'))
                want[w++] = (char)c;
            else
                w += (size_t)snprintf(want + w, 4, "%%%02X", c);
        }
        want[w++] = '\n';
        want[w] = '\0';
        got = canonical_of(path, NULL, false, !pct_kept);
        assert_string_equal(got, want);
        free(got);
    }
}

/* ---- bounds and refusals ---- */

static enum lgw_errc sign_with(const struct lgw_sigv4_request *req, struct lgw_error *err)
{
    struct lgw_sigv4_config cfg = lambda_cfg(NULL, NULL);
    struct lgw_sigv4_result res;

    return lgw_sigv4_sign(&cfg, req, VECTOR_TIME, &res, NULL, err);
}

static void test_bounds_and_refusals(void **state)
{
    struct lgw_sigv4_header h[LGW_SIGV4_HEADERS_MAX + 1];
    struct lgw_sigv4_request req = {"POST", "/", NULL, lambda_host, 1, NULL, 0, NULL};
    struct lgw_sigv4_config cfg = lambda_cfg(NULL, NULL);
    struct lgw_sigv4_result res;
    struct lgw_error err;
    char *big = malloc(LGW_SIGV4_HEADER_VALUE_MAX + 2);
    char names[LGW_SIGV4_HEADERS_MAX][40];

    (void)state;
    assert_non_null(big);
    lgw_error_init(&err);
    assert_int_equal(sign_with(&req, &err), LGW_OK);

    /* Path and query over their bounds. */
    memset(big, 'a', LGW_SIGV4_HEADER_VALUE_MAX + 1);
    big[0] = '/';
    big[LGW_SIGV4_PATH_MAX + 1] = '\0';
    req.path = big;
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    big[LGW_SIGV4_PATH_MAX] = '\0';
    assert_int_equal(sign_with(&req, &err), LGW_OK);
    req.path = "/";
    memset(big, 'a', LGW_SIGV4_HEADER_VALUE_MAX + 1);
    big[LGW_SIGV4_QUERY_MAX + 1] = '\0';
    req.query = big;
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    /* Too many parameters, each short. */
    for (int i = 0; i < 2 * (LGW_SIGV4_QUERY_PARAMS_MAX + 1); i += 2) {
        big[i] = 'a';
        big[i + 1] = '&';
    }
    big[2 * (LGW_SIGV4_QUERY_PARAMS_MAX + 1)] = '\0';
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    big[2 * LGW_SIGV4_QUERY_PARAMS_MAX] = '\0';
    assert_int_equal(sign_with(&req, &err), LGW_OK);
    req.query = "a=%zz";
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    req.query = "a=%4";
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    req.query = NULL;
    req.path = "relative";
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    req.path = "/";

    /* Headers: too many, value too long, name too long or invalid, no host, signer's own. */
    h[0] = lambda_host[0];
    for (int i = 1; i <= LGW_SIGV4_HEADERS_MAX; i++) {
        snprintf(names[i - 1], sizeof(names[0]), "x-h%03d", i);
        h[i] = (struct lgw_sigv4_header){names[i - 1], "v"};
    }
    req.headers = h;
    req.header_count = LGW_SIGV4_HEADERS_MAX + 1;
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    req.header_count = LGW_SIGV4_HEADERS_MAX;
    assert_int_equal(sign_with(&req, &err), LGW_OK);
    memset(big, 'v', LGW_SIGV4_HEADER_VALUE_MAX + 1);
    big[LGW_SIGV4_HEADER_VALUE_MAX + 1] = '\0';
    h[1].value = big;
    req.header_count = 2;
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    big[LGW_SIGV4_HEADER_VALUE_MAX] = '\0';
    assert_int_equal(sign_with(&req, &err), LGW_OK);
    /* Many maximal values: the canonical request itself goes over its bound. */
    for (int i = 1; i < LGW_SIGV4_HEADERS_MAX; i++)
        h[i].value = big;
    req.header_count = LGW_SIGV4_HEADERS_MAX;
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    assert_non_null(strstr(err.message, "canonical request too long"));
    /* Long names: the SignedHeaders list goes over its bound. */
    {
        static char longnames[LGW_SIGV4_HEADERS_MAX][LGW_SIGV4_HEADER_NAME_MAX + 2];

        for (int i = 1; i < LGW_SIGV4_HEADERS_MAX; i++) {
            memset(longnames[i], 'n', LGW_SIGV4_HEADER_NAME_MAX);
            snprintf(longnames[i], 8, "x%03d", i);
            longnames[i][4] = 'n';
            longnames[i][LGW_SIGV4_HEADER_NAME_MAX] = '\0';
            h[i] = (struct lgw_sigv4_header){longnames[i], "v"};
        }
        assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
        assert_non_null(strstr(err.message, "signed header list"));
        longnames[1][LGW_SIGV4_HEADER_NAME_MAX] = 'n';
        longnames[1][LGW_SIGV4_HEADER_NAME_MAX + 1] = '\0';
        req.header_count = 2;
        assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    }
    h[1] = (struct lgw_sigv4_header){"Bad Name", "v"};
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    h[1] = (struct lgw_sigv4_header){"", "v"};
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    h[1] = (struct lgw_sigv4_header){"X-Amz-Date", "20150830T123600Z"};
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    h[1] = (struct lgw_sigv4_header){"x-amz-security-token", "t"};
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    h[1] = (struct lgw_sigv4_header){"Authorization", "x"};
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    h[0] = (struct lgw_sigv4_header){"Content-Type", "application/json"};
    req.header_count = 1;
    assert_int_equal(sign_with(&req, &err), LGW_EBADREQUEST);
    assert_non_null(strstr(err.message, "Host"));
    req.headers = lambda_host;

    /* Credentials and scope. */
    cfg.region = "us-east-1/x";
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_EBADREQUEST);
    cfg.region = "us-east-1";
    cfg.service = "";
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_EBADREQUEST);
    cfg.service = "lambda";
    cfg.creds.secret_key = big; /* 16 KiB secret */
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_EBADREQUEST);
    assert_null(strstr(err.message, "vvvv")); /* a secret never reaches a message */
    cfg.creds.secret_key = SECRET;
    cfg.creds.session_token = "has space";
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_EBADREQUEST);
    cfg.creds.session_token = big;
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_OK);
    big[LGW_SIGV4_HEADER_VALUE_MAX] = 'v';
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_EBADREQUEST);
    assert_string_equal(res.authorization, ""); /* zeroed on error */
    cfg.creds.session_token = NULL;
    req.payload_hash = "ABC";
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_EBADREQUEST);
    req.payload_hash = LGW_SIGV4_UNSIGNED_PAYLOAD;
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_OK);
    assert_string_equal(res.payload_hash, "UNSIGNED-PAYLOAD");
    req.payload_hash = NULL;
    req.method = "PO ST";
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_EBADREQUEST);
    req.method = "POST";
    req.body_len = 5; /* and no body */
    assert_int_equal(lgw_sigv4_sign(&cfg, &req, VECTOR_TIME, &res, NULL, &err), LGW_EBADREQUEST);
    free(big);
    lgw_error_release(&err);
}

static void test_amz_date(void **state)
{
    char s[LGW_SIGV4_AMZ_DATE_LEN + 1];
    time_t t;

    (void)state;
    assert_int_equal(lgw_sigv4_format_amz_date(VECTOR_TIME, s, NULL), LGW_OK);
    assert_string_equal(s, "20150830T123600Z");
    assert_int_equal(lgw_sigv4_parse_amz_date("20150830T123600Z", &t, NULL), LGW_OK);
    assert_true(t == VECTOR_TIME);
    assert_int_equal(lgw_sigv4_parse_amz_date("20160229T000000Z", &t, NULL), LGW_OK);
    assert_int_equal(lgw_sigv4_parse_amz_date("20150229T000000Z", &t, NULL), LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_parse_amz_date("20150830T123660Z", &t, NULL), LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_parse_amz_date("20150830T123600", &t, NULL), LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_parse_amz_date("20150830 123600Z", &t, NULL), LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_parse_amz_date("2015083OT123600Z", &t, NULL), LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_parse_amz_date("20150830T123600Z0", &t, NULL), LGW_EBADREQUEST);
    assert_int_equal(lgw_sigv4_parse_amz_date(NULL, &t, NULL), LGW_EBADREQUEST);
}

/* ---- main ---- */

static int group_setup(void **state)
{
    (void)state;
    if (!find_suite()) {
        print_error("sigv4-test-suite not found: set LGW_SIGV4_SUITE or put shared/ beside the "
                    "repo\n");
        return -1;
    }
    shared_cache = lgw_sigv4_key_cache_new(4);
    for (size_t i = 0; i < sizeof(not_applicable) / sizeof(not_applicable[0]); i++)
        print_message("not run: %s: %s\n", not_applicable[i].what, not_applicable[i].why);
    return shared_cache ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    lgw_sigv4_key_cache_free(shared_cache);
    shared_cache = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classic_suite),
        cmocka_unit_test(test_crt_suite),
        cmocka_unit_test(test_lambda_readme_example),
        cmocka_unit_test(test_lambda_arn_double_encoded),
        cmocka_unit_test(test_lambda_session_token_signed),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_key_cache),
        cmocka_unit_test(test_key_cache_threads),
        cmocka_unit_test(test_parse_authorization_good),
        cmocka_unit_test(test_parse_authorization_bad),
        cmocka_unit_test(test_canonical_forms),
        cmocka_unit_test(test_bounds_and_refusals),
        cmocka_unit_test(test_amz_date),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
