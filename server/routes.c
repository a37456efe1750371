/*
 * routes.c - handler routes (see routes.h): the route table (patterns compiled at start-up,
 * matched per request), the API Gateway proxy event built from a request (payload 2.0 and 1.0),
 * and the function's answer mapped back to HTTP as API Gateway maps it.
 *
 * What API Gateway does and where we follow it (the AWS developer guide, "Working with AWS
 * Lambda proxy integrations for HTTP APIs" and "Set up Lambda proxy integrations"):
 *   - 2.0: header names lower-case, repeated headers and query keys joined by commas, the Cookie
 *     header moved to `cookies`, rawPath as decoded (HTTP APIs decode it; only rawQueryString
 *     keeps the bytes as sent), body absent when empty.
 *   - 1.0 (REST): header names as sent, `headers`/`queryStringParameters` hold the last value and
 *     the multiValue* forms all of them, `path` keeps its percent-encoding, missing parts null.
 *   - Bodies that are not text (by Content-Type, or not valid UTF-8) go base64-encoded.
 *   - The answer: statusCode/headers/multiValueHeaders (1.0)/cookies (2.0)/body/isBase64Encoded;
 *     with 2.0 a result that is not an object with statusCode is a 200 JSON body. A function
 *     error or an answer we cannot map is 502 {"message":"Internal Server Error"}.
 */
#define _DEFAULT_SOURCE /* strcasecmp, strncasecmp */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "http.h"
#include "json.h"
#include "routes.h"

/* ---- the route table ---- */

enum seg_kind { SEG_LITERAL = 0, SEG_PARAM = 1, SEG_GREEDY = 2 }; /* by falling specificity */

struct seg {
    enum seg_kind kind;
    const char *text; /* literal text or parameter name, NUL-terminated, in route->buf */
    size_t len;
};

/* The methods a route may name besides ANY, in the order an Allow header lists them. */
static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))
#define ALLOW_TEXT_MAX 64

struct route {
    struct lgw_route_config cfg;
    char key[sizeof(((struct lgw_route_config *)0)->method) + LGW_PATH_MAX + 1]; /* routeKey */
    char buf[LGW_PATH_MAX];                                                      /* segments */
    struct seg segs[LGW_ROUTE_SEGMENTS_MAX];
    size_t nseg;     /* 0 for the root path "/" */
    unsigned method; /* bit of methods[], 0 for ANY */
    bool greedy;     /* ends with {name+} */
};

struct lgw_routes {
    size_t n;
    struct route *r;
    char allow[1u << NMETHODS][ALLOW_TEXT_MAX]; /* Allow header text by method bit set */
};

static unsigned method_bit(const char *m)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcmp(m, methods[i]) == 0)
            return 1u << i;
    return 0;
}

static bool param_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* Splits rt->cfg.path into segments. 0, or -1 with why set. */
static int compile_path(struct route *rt, char *why, size_t whylen)
{
    char *p = rt->buf;
    size_t nparams = 0;

    snprintf(rt->buf, sizeof(rt->buf), "%s", rt->cfg.path);
    if (p[0] != '/') {
        snprintf(why, whylen, "must start with /");
        return -1;
    }
    if (strcmp(p, "/") == 0)
        return 0;
    p++;
    for (;;) {
        char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        struct seg *sg;

        if (len == 0) {
            snprintf(why, whylen, "empty path segment (\"//\" or a trailing \"/\")");
            return -1;
        }
        if (rt->greedy) {
            snprintf(why, whylen, "a greedy {%s+} must be the last segment",
                     rt->segs[rt->nseg - 1].text);
            return -1;
        }
        if (rt->nseg == LGW_ROUTE_SEGMENTS_MAX) {
            snprintf(why, whylen, "more than %d segments", LGW_ROUTE_SEGMENTS_MAX);
            return -1;
        }
        if (slash)
            *slash = '\0';
        sg = &rt->segs[rt->nseg];
        if (p[0] == '{') {
            size_t nlen = len - 2;
            if (len < 2 || p[len - 1] != '}') {
                snprintf(why, whylen, "segment '%.64s': a {parameter} must be a whole segment", p);
                return -1;
            }
            p[len - 1] = '\0';
            sg->kind = SEG_PARAM;
            if (nlen > 0 && p[len - 2] == '+') {
                sg->kind = SEG_GREEDY;
                p[len - 2] = '\0';
                nlen--;
                rt->greedy = true;
            }
            sg->text = p + 1;
            sg->len = nlen;
            if (nlen == 0 || nlen > LGW_ROUTE_PARAM_NAME_MAX) {
                snprintf(why, whylen, "a parameter name must have 1 to %d characters",
                         LGW_ROUTE_PARAM_NAME_MAX);
                return -1;
            }
            for (size_t i = 0; i < nlen; i++) {
                if (!param_name_char(sg->text[i])) {
                    snprintf(why, whylen,
                             "parameter {%.64s}: names are letters, digits, '_', '-' and '.'",
                             sg->text);
                    return -1;
                }
            }
            for (size_t i = 0; i < rt->nseg; i++) {
                if (rt->segs[i].kind != SEG_LITERAL && strcmp(rt->segs[i].text, sg->text) == 0) {
                    snprintf(why, whylen, "parameter {%.64s} appears twice", sg->text);
                    return -1;
                }
            }
            if (++nparams > LGW_ROUTE_PARAMS_MAX) {
                snprintf(why, whylen, "more than %d parameters", LGW_ROUTE_PARAMS_MAX);
                return -1;
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)p[i];
                if (c == '{' || c == '}') {
                    snprintf(why, whylen, "segment '%.64s': a {parameter} must be a whole segment",
                             p);
                    return -1;
                }
                if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') {
                    snprintf(why, whylen,
                             "segment '%.64s': no spaces, control characters, '?' or '#'", p);
                    return -1;
                }
            }
            sg->kind = SEG_LITERAL;
            sg->text = p;
            sg->len = len;
        }
        rt->nseg++;
        if (!slash)
            return 0;
        p = slash + 1;
    }
}

/* Whether a and b catch the same paths (same shape, same literals). */
static bool same_shape(const struct route *a, const struct route *b)
{
    if (a->nseg != b->nseg)
        return false;
    for (size_t i = 0; i < a->nseg; i++) {
        if (a->segs[i].kind != b->segs[i].kind)
            return false;
        if (a->segs[i].kind == SEG_LITERAL && strcmp(a->segs[i].text, b->segs[i].text) != 0)
            return false;
    }
    return true;
}

/* A route made only of literals that a fixed endpoint answers could never be reached. */
static bool shadowed(const struct route *rt)
{
    struct lgw_route_match m;

    for (size_t i = 0; i < rt->nseg; i++)
        if (rt->segs[i].kind != SEG_LITERAL)
            return false;
    if (rt->method)
        return lgw_route(rt->cfg.method, rt->cfg.path, &m) != LGW_ROUTE_NONE;
    for (size_t i = 0; i < NMETHODS; i++)
        if (lgw_route(methods[i], rt->cfg.path, &m) != LGW_ROUTE_NONE)
            return true;
    return false;
}

static int add_route(struct lgw_routes *t, const struct lgw_route_config *rc, size_t idx, char *err,
                     size_t errlen)
{
    struct route *rt = &t->r[t->n];
    char why[160];

    rt->cfg = *rc;
    snprintf(rt->key, sizeof(rt->key), "%s %s", rc->method, rc->path);
    rt->method = strcmp(rc->method, "ANY") == 0 ? 0 : method_bit(rc->method);
    if (strcmp(rc->method, "ANY") != 0 && !rt->method) {
        snprintf(err, errlen,
                 "routes[%zu].method: %.15s is not one of GET POST PUT DELETE PATCH "
                 "OPTIONS HEAD ANY",
                 idx, rc->method);
        return -1;
    }
    if (compile_path(rt, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "routes[%zu].path %.200s: %s", idx, rc->path, why);
        return -1;
    }
    if (shadowed(rt)) {
        snprintf(err, errlen,
                 "routes[%zu]: %.200s is one of the gateway's own endpoints, which are matched "
                 "before handler routes",
                 idx, rt->key);
        return -1;
    }
    for (size_t j = 0; j < t->n; j++) {
        if (t->r[j].method == rt->method && same_shape(&t->r[j], rt)) {
            snprintf(err, errlen,
                     "routes[%zu]: %.200s catches the same requests as routes[%zu] "
                     "(%.200s)",
                     idx, rt->key, j, t->r[j].key);
            return -1;
        }
    }
    t->n++;
    return 0;
}

static void fill_allow(struct lgw_routes *t)
{
    for (unsigned mask = 1; mask < (1u << NMETHODS); mask++) {
        char *out = t->allow[mask];
        size_t at = 0;
        for (size_t i = 0; i < NMETHODS; i++)
            if (mask & (1u << i))
                at += (size_t)snprintf(out + at, ALLOW_TEXT_MAX - at, "%s%s", at ? ", " : "",
                                       methods[i]);
    }
}

int lgw_routes_compile(struct lgw_server *s, char *err, size_t errlen)
{
    const struct lgw_config *cfg = s->cfg;
    static const struct lgw_route_config hello = {
        .method = "GET", .path = "/hello/{name}", .function = "hello", .payload_version = 2};
    bool use_default = cfg->mode == LGW_MODE_LOCAL && !cfg->routes_configured;
    size_t want = use_default ? 1 : cfg->nroutes;
    struct lgw_routes *t;

    lgw_routes_free(s);
    if (!want)
        return 0;
    t = calloc(1, sizeof(*t));
    if (t)
        t->r = calloc(want, sizeof(*t->r));
    if (!t || !t->r) {
        free(t);
        snprintf(err, errlen, "routes: out of memory");
        return -1;
    }
    s->routes = t;
    fill_allow(t);
    for (size_t i = 0; i < want; i++) {
        if (add_route(t, use_default ? &hello : &cfg->routes[i], i, err, errlen) < 0) {
            lgw_routes_free(s);
            return -1;
        }
    }
    return 0;
}

void lgw_routes_free(struct lgw_server *s)
{
    if (!s || !s->routes)
        return;
    free(s->routes->r);
    free(s->routes);
    s->routes = NULL;
}

size_t lgw_routes_count(const struct lgw_server *s)
{
    return s->routes ? s->routes->n : 0;
}

const struct lgw_route_config *lgw_routes_config(const struct lgw_server *s, int idx)
{
    return &s->routes->r[idx].cfg;
}

const char *lgw_routes_key(const struct lgw_server *s, int idx)
{
    return s->routes->r[idx].key;
}

/* Matches path against rt, filling params when given. */
static bool route_matches(const struct route *rt, const char *path, struct lgw_route_params *pp)
{
    const char *p = path;

    if (pp)
        pp->n = 0;
    if (rt->nseg == 0)
        return strcmp(path, "/") == 0;
    for (size_t i = 0; i < rt->nseg; i++) {
        const struct seg *sg = &rt->segs[i];
        const char *end;
        size_t len;

        if (*p != '/')
            return false;
        p++;
        if (sg->kind == SEG_GREEDY) {
            len = strlen(p);
            if (!len)
                return false;
            end = p + len;
        } else {
            end = strchr(p, '/');
            if (!end)
                end = p + strlen(p);
            len = (size_t)(end - p);
            if (!len)
                return false;
            if (sg->kind == SEG_LITERAL && (len != sg->len || memcmp(p, sg->text, len) != 0))
                return false;
        }
        if (pp && sg->kind != SEG_LITERAL) {
            pp->p[pp->n].name = sg->text;
            pp->p[pp->n].value = p;
            pp->p[pp->n].len = len;
            pp->n++;
        }
        p = end;
    }
    return *p == '\0';
}

/* < 0 when a is the more specific of two routes matching the same path. */
static int compare(const struct route *a, const struct route *b)
{
    size_t n = a->nseg < b->nseg ? a->nseg : b->nseg;

    if (a->greedy != b->greedy)
        return a->greedy ? 1 : -1;
    for (size_t i = 0; i < n; i++)
        if (a->segs[i].kind != b->segs[i].kind)
            return (int)a->segs[i].kind - (int)b->segs[i].kind;
    if (a->nseg != b->nseg)
        return a->nseg > b->nseg ? -1 : 1;
    if ((a->method == 0) != (b->method == 0))
        return a->method == 0 ? 1 : -1;
    return 0;
}

int lgw_routes_match(struct lgw_server *s, const char *method, const char *path,
                     struct lgw_route_params *params)
{
    const struct lgw_routes *t = s->routes;
    bool path_matched = false;
    int best = LGW_ROUTES_NONE;

    if (params)
        params->n = 0;
    if (!t || !path || path[0] != '/')
        return LGW_ROUTES_NONE;
    for (size_t i = 0; i < t->n; i++) {
        const struct route *rt = &t->r[i];
        if (!route_matches(rt, path, NULL))
            continue;
        path_matched = true;
        if (rt->method && strcmp(rt->cfg.method, method) != 0)
            continue;
        if (best < 0 || compare(rt, &t->r[best]) < 0)
            best = (int)i;
    }
    if (best >= 0) {
        if (params)
            route_matches(&t->r[best], path, params);
        return best;
    }
    return path_matched ? LGW_ROUTES_WRONG_METHOD : LGW_ROUTES_NONE;
}

const char *lgw_routes_allow(struct lgw_server *s, const char *path)
{
    const struct lgw_routes *t = s->routes;
    unsigned mask = 0;

    if (!t || !path || path[0] != '/')
        return NULL;
    for (size_t i = 0; i < t->n; i++) {
        if (!route_matches(&t->r[i], path, NULL))
            continue;
        if (!t->r[i].method)
            return NULL; /* ANY: no method is wrong here */
        mask |= t->r[i].method;
    }
    return mask ? t->allow[mask] : NULL;
}

/* ---- text helpers ---- */

/* Whether s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF: what jansson accepts). */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i], need, cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= need)
            return false;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

/* A malloc'd NUL-terminated UTF-8 copy of s[0..len): as is when valid, else each byte read as
 * ISO-8859-1 (HTTP's obs-text), so a stray byte never loses a header. *outlen may be NULL. */
static char *utf8_dup(const char *s, size_t len, size_t *outlen)
{
    char *out;
    size_t n = 0;

    if (utf8_valid((const unsigned char *)s, len)) {
        out = malloc(len + 1);
        if (out) {
            memcpy(out, s, len);
            out[len] = '\0';
            n = len;
        }
    } else {
        out = malloc(2 * len + 1);
        for (size_t i = 0; out && i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x80) {
                out[n++] = (char)c;
            } else {
                out[n++] = (char)(0xc0 | (c >> 6));
                out[n++] = (char)(0x80 | (c & 0x3f));
            }
        }
        if (out)
            out[n] = '\0';
    }
    if (outlen)
        *outlen = n;
    return out;
}

/* A JSON string of s[0..len) (see utf8_dup). New reference, or NULL when out of memory. */
static json_t *text_json(const char *s, size_t len)
{
    size_t n;
    char *u = utf8_dup(s, len, &n);
    json_t *v = u ? json_stringn_nocheck(u, n) : NULL;

    free(u);
    return v;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX (and '+' as a space) from src[0..len) into dst (room for len bytes); a malformed
 * escape is kept as it is. Returns the decoded length. */
static size_t query_decode(char *dst, const char *src, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (src[i] == '+') {
            dst[n++] = ' ';
        } else if (src[i] == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 &&
                   hexval(src[i + 2]) >= 0) {
            dst[n++] = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        } else {
            dst[n++] = src[i];
        }
    }
    return n;
}

/* a + "," + b as a new JSON string. */
static json_t *join_comma(json_t *a, json_t *b)
{
    size_t la = json_string_length(a), lb = json_string_length(b);
    char *buf = malloc(la + lb + 2);
    json_t *v = NULL;

    if (buf) {
        memcpy(buf, json_string_value(a), la);
        buf[la] = ',';
        memcpy(buf + la + 1, json_string_value(b), lb);
        v = json_stringn_nocheck(buf, la + lb + 1);
        free(buf);
    }
    return v;
}

/* Appends value (reference stolen) to the array at obj[key], creating it. 0 or -1. */
static int append_multi(json_t *obj, const char *key, json_t *value)
{
    json_t *arr = json_object_get(obj, key);

    if (!value)
        return -1;
    if (!arr) {
        arr = json_array();
        if (!arr || json_object_set_new(obj, key, arr) < 0) {
            json_decref(value);
            return -1;
        }
    }
    return json_array_append_new(arr, value);
}

/* ---- the event ---- */

struct event_ctx {
    int version;
    json_t *headers; /* 2.0: lower-case name -> joined values; 1.0: name as sent -> last */
    json_t *multi;   /* 1.0: name as sent -> [values] */
    json_t *names;   /* 1.0: lower-case name -> the first spelling seen */
    json_t *cookies; /* 2.0: [cookie] */
    bool failed;
};

static int add_cookies(struct event_ctx *x, const char *v)
{
    while (*v) {
        const char *semi = strchr(v, ';');
        const char *end = semi ? semi : v + strlen(v);
        const char *b = v, *e = end;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b && json_array_append_new(x->cookies, text_json(b, (size_t)(e - b))) < 0)
            return -1;
        v = semi ? semi + 1 : end;
    }
    return 0;
}

static enum MHD_Result header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct event_ctx *x = cls;
    char *lc = key ? utf8_dup(key, strlen(key), NULL) : NULL;
    json_t *v = NULL, *old;
    int rc = -1;

    (void)kind;
    if (!value)
        value = "";
    if (!lc)
        goto out;
    for (char *c = lc; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    if (x->version == 2) {
        if (strcmp(lc, "cookie") == 0) {
            rc = add_cookies(x, value);
            goto out;
        }
        v = text_json(value, strlen(value));
        old = json_object_get(x->headers, lc);
        if (v && old) {
            json_t *joined = join_comma(old, v);
            json_decref(v);
            v = joined;
        }
        rc = v ? json_object_set_new(x->headers, lc, v) : -1;
    } else {
        json_t *name = json_object_get(x->names, lc);
        char *as_sent = NULL;
        const char *k;
        if (!name) {
            as_sent = utf8_dup(key, strlen(key), NULL);
            name = as_sent ? json_string(as_sent) : NULL;
            free(as_sent);
            if (!name || json_object_set_new(x->names, lc, name) < 0)
                goto out;
        }
        k = json_string_value(name);
        if (json_object_set_new(x->headers, k, text_json(value, strlen(value))) < 0)
            goto out;
        rc = append_multi(x->multi, k, text_json(value, strlen(value)));
    }
out:
    free(lc);
    if (rc < 0)
        x->failed = true;
    return MHD_YES;
}

/* The query parameters of raw query text q (as sent). 2.0: {k: "v1,v2"}; 1.0: {k: last} and
 * multi {k: [v1, v2]}. 0, or -1 when out of memory. */
static int parse_query(const char *q, int version, json_t *single, json_t *multi)
{
    size_t qlen = strlen(q);
    char *kbuf = malloc(qlen + 1), *vbuf = malloc(qlen + 1);
    int rc = -1;

    if (!kbuf || !vbuf)
        goto out;
    while (*q) {
        const char *amp = strchr(q, '&');
        const char *end = amp ? amp : q + strlen(q);
        if (end > q) {
            const char *eq = memchr(q, '=', (size_t)(end - q));
            const char *kend = eq ? eq : end;
            size_t kl = query_decode(kbuf, q, (size_t)(kend - q));
            size_t vl = eq ? query_decode(vbuf, eq + 1, (size_t)(end - eq - 1)) : 0;
            char *key = utf8_dup(kbuf, kl, NULL); /* a decoded NUL ends the key */
            json_t *v = text_json(vbuf, vl);
            json_t *old = key ? json_object_get(single, key) : NULL;
            int r;

            if (!key || !v) {
                free(key);
                json_decref(v);
                goto out;
            }
            if (version == 2) {
                if (old) {
                    json_t *joined = join_comma(old, v);
                    json_decref(v);
                    v = joined;
                }
                r = v ? json_object_set_new(single, key, v) : -1;
            } else {
                r = json_object_set(single, key, v);
                if (r == 0)
                    r = append_multi(multi, key, json_incref(v));
                json_decref(v);
            }
            free(key);
            if (r < 0)
                goto out;
        }
        q = amp ? amp + 1 : end;
    }
    rc = 0;
out:
    free(kbuf);
    free(vbuf);
    return rc;
}

/* Whether a Content-Type names text (the body then goes as a string if it is valid UTF-8). A
 * missing Content-Type is judged by the bytes alone. */
static bool text_type(const char *ct)
{
    static const char *const exact[] = {"application/json",
                                        "application/javascript",
                                        "application/xml",
                                        "application/yaml",
                                        "application/x-yaml",
                                        "application/graphql",
                                        NULL};
    char mt[128];
    size_t n = 0;

    if (!ct)
        return true;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    while (ct[n] && ct[n] != ';' && ct[n] != ' ' && n < sizeof(mt) - 1) {
        mt[n] = (char)(ct[n] >= 'A' && ct[n] <= 'Z' ? ct[n] - 'A' + 'a' : ct[n]);
        n++;
    }
    mt[n] = '\0';
    if (strncmp(mt, "text/", 5) == 0)
        return true;
    for (size_t i = 0; exact[i]; i++)
        if (strcmp(mt, exact[i]) == 0)
            return true;
    return (n > 5 && strcmp(mt + n - 5, "+json") == 0) ||
           (n > 4 && strcmp(mt + n - 4, "+xml") == 0);
}

/* Sets "body" and "isBase64Encoded" of ev from the request body. 0 or -1. */
static int set_body(struct lgw_req *r, json_t *ev, int version)
{
    const char *ct = lgw_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    bool b64 = false;
    json_t *body;

    if (r->len == 0) {
        body = version == 1 ? json_null() : NULL;
    } else if (text_type(ct) && utf8_valid((const unsigned char *)r->body, r->len)) {
        body = json_stringn_nocheck(r->body, r->len);
        if (!body)
            return -1;
    } else {
        size_t cap = 4 * ((r->len + 2) / 3) + 1;
        unsigned char *out = malloc(cap);
        int n;
        if (!out)
            return -1;
        n = EVP_EncodeBlock(out, (const unsigned char *)r->body, (int)r->len);
        body = n >= 0 ? json_stringn_nocheck((const char *)out, (size_t)n) : NULL;
        free(out);
        if (!body)
            return -1;
        b64 = true;
    }
    if (body && json_object_set_new(ev, "body", body) < 0)
        return -1;
    return json_object_set_new(ev, "isBase64Encoded", json_boolean(b64));
}

static void source_ip(struct lgw_req *r, char *out, size_t outlen)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(out, outlen, "%s", "");
    if (sa && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outlen);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, a->s6_addr + 12, out, (socklen_t)outlen);
        else
            inet_ntop(AF_INET6, a, out, (socklen_t)outlen);
    }
}

/* The request-target's path as sent and its query text (both into the raw target, or the
 * decoded path and "" when libmicrohttpd gave us no raw target). */
static void raw_parts(struct lgw_req *r, const char **path, size_t *path_len, const char **query)
{
    const char *t = r->raw_target;
    const char *qm;

    if (!t || t[0] != '/') {
        *path = r->path;
        *path_len = strlen(r->path);
        *query = "";
        return;
    }
    qm = strchr(t, '?');
    *path = t;
    *path_len = qm ? (size_t)(qm - t) : strlen(t);
    *query = qm ? qm + 1 : "";
}

#define APIGW_API_ID "local"

/* Builds the proxy event for route idx. New reference, or NULL when out of memory. */
static json_t *build_event(struct lgw_req *r, int idx, const struct lgw_route_params *pp)
{
    const struct lgw_route_config *rc = lgw_routes_config(r->srv, idx);
    const char *route_key = lgw_routes_key(r->srv, idx);
    const struct lgw_config *cfg = r->srv->cfg;
    int version = rc->payload_version == 1 ? 1 : 2;
    struct event_ctx x = {.version = version};
    const char *host = lgw_req_header(r, MHD_HTTP_HEADER_HOST);
    const char *ua = lgw_req_header(r, MHD_HTTP_HEADER_USER_AGENT);
    const char *raw_path, *raw_query;
    size_t raw_path_len, prefix_len;
    json_t *ev = json_object(), *qs = json_object(), *mqs = json_object();
    json_t *params = NULL, *ctx = NULL, *result = NULL;
    char ip[INET6_ADDRSTRLEN], when[64];
    struct timespec now;
    struct tm tm;
    long long epoch_ms;

    x.headers = json_object();
    x.multi = json_object();
    x.names = json_object();
    x.cookies = json_array();
    if (!ev || !qs || !mqs || !x.headers || !x.multi || !x.names || !x.cookies)
        goto out;
    if (!host)
        host = "localhost";
    if (!ua)
        ua = "";
    prefix_len = strcspn(host, ".:");
    source_ip(r, ip, sizeof(ip));
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    epoch_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    raw_parts(r, &raw_path, &raw_path_len, &raw_query);

    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, header_cb, &x);
    if (x.failed || parse_query(raw_query, version, qs, mqs) < 0)
        goto out;
    if (pp->n) {
        params = json_object();
        for (size_t i = 0; params && i < pp->n; i++)
            if (json_object_set_new(params, pp->p[i].name,
                                    text_json(pp->p[i].value, pp->p[i].len)) < 0)
                goto out;
        if (!params)
            goto out;
    }
    if (version == 2) {
        ctx = json_pack("{s:s,s:s,s:s,s:s%,s:{s:s,s:o,s:s,s:s,s:s},s:s,s:s,s:s,s:s,s:I}",
                        "accountId", cfg->account_id, "apiId", APIGW_API_ID, "domainName", host,
                        "domainPrefix", host, prefix_len, "http", "method", r->method, "path",
                        text_json(r->path, strlen(r->path)), "protocol",
                        r->protocol[0] ? r->protocol : "HTTP/1.1", "sourceIp", ip, "userAgent", ua,
                        "requestId", r->inv.request_id, "routeKey", route_key, "stage", "$default",
                        "time", when, "timeEpoch", (json_int_t)epoch_ms);
        if (!ctx)
            goto out;
        if (json_object_set_new(ev, "version", json_string("2.0")) < 0 ||
            json_object_set_new(ev, "routeKey", json_string(route_key)) < 0 ||
            json_object_set_new(ev, "rawPath", text_json(r->path, strlen(r->path))) < 0 ||
            json_object_set_new(ev, "rawQueryString", text_json(raw_query, strlen(raw_query))) <
                0 ||
            (json_array_size(x.cookies) && json_object_set(ev, "cookies", x.cookies) < 0) ||
            json_object_set(ev, "headers", x.headers) < 0 ||
            (json_object_size(qs) && json_object_set(ev, "queryStringParameters", qs) < 0) ||
            (params && json_object_set(ev, "pathParameters", params) < 0) ||
            json_object_set(ev, "requestContext", ctx) < 0)
            goto out;
    } else {
        json_t *none = json_null();
        ctx = json_pack(
            "{s:s,s:s,s:s,s:s%,s:s,s:s,s:{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:o,s:s,s:o},"
            "s:o,s:s,s:s,s:s,s:I,s:o,s:s,s:s}",
            "accountId", cfg->account_id, "apiId", APIGW_API_ID, "domainName", host, "domainPrefix",
            host, prefix_len, "extendedRequestId", r->inv.request_id, "httpMethod", r->method,
            "identity", "accessKey", none, "accountId", none, "caller", none,
            "cognitoAuthenticationProvider", none, "cognitoAuthenticationType", none,
            "cognitoIdentityId", none, "cognitoIdentityPoolId", none, "principalOrgId", none,
            "sourceIp", ip, "user", none, "userAgent", ua, "userArn", none, "path",
            text_json(raw_path, raw_path_len), "protocol",
            r->protocol[0] ? r->protocol : "HTTP/1.1", "requestId", r->inv.request_id,
            "requestTime", when, "requestTimeEpoch", (json_int_t)epoch_ms, "resourceId", none,
            "resourcePath", rc->path, "stage", "$default");
        if (!ctx)
            goto out;
        if (json_object_set_new(ev, "version", json_string("1.0")) < 0 ||
            json_object_set_new(ev, "resource", json_string(rc->path)) < 0 ||
            json_object_set_new(ev, "path", text_json(raw_path, raw_path_len)) < 0 ||
            json_object_set_new(ev, "httpMethod", json_string(r->method)) < 0 ||
            json_object_set(ev, "headers", json_object_size(x.headers) ? x.headers : none) < 0 ||
            json_object_set(ev, "multiValueHeaders", json_object_size(x.multi) ? x.multi : none) <
                0 ||
            json_object_set(ev, "queryStringParameters", json_object_size(qs) ? qs : none) < 0 ||
            json_object_set(ev, "multiValueQueryStringParameters",
                            json_object_size(mqs) ? mqs : none) < 0 ||
            json_object_set(ev, "pathParameters", params ? params : none) < 0 ||
            json_object_set(ev, "stageVariables", none) < 0 ||
            json_object_set(ev, "requestContext", ctx) < 0)
            goto out;
    }
    if (set_body(r, ev, version) < 0)
        goto out;
    result = ev;
    ev = NULL;
out:
    json_decref(ev);
    json_decref(qs);
    json_decref(mqs);
    json_decref(params);
    json_decref(ctx);
    json_decref(x.headers);
    json_decref(x.multi);
    json_decref(x.names);
    json_decref(x.cookies);
    return result;
}

/* ---- answers ---- */

static void add_request_id(struct lgw_req *r, struct MHD_Response *resp)
{
    if (resp)
        MHD_add_response_header(resp, "apigw-requestid", r->inv.request_id);
}

/* API Gateway's own answers: {"message": "..."}. */
static void send_message(struct lgw_req *r, int status, const char *message)
{
    json_t *b = json_pack("{s:s}", "message", message);
    size_t len = 0;
    char *text = b ? lgw_json_dumps(b, &len) : NULL;
    struct MHD_Response *resp;

    json_decref(b);
    resp = text ? lgw_response_new(text, len, "application/json") : NULL;
    add_request_id(r, resp);
    lgw_req_queue(r, status, resp);
}

/* One line on stderr for what a developer must fix (the client only sees a 5xx). */
static void warn(struct lgw_req *r, const char *what, const char *detail)
{
    json_t *line =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "level", "warn", "event", what, "route",
                  r->route_index >= 0 ? lgw_routes_key(r->srv, r->route_index) : "", "function",
                  r->function, "requestId", r->inv.request_id, "message", detail);
    char *text = line ? lgw_json_dumps(line, NULL) : NULL;

    if (text)
        fprintf(stderr, "%s\n", text);
    free(text);
    json_decref(line);
}

static void send_failure(struct lgw_req *r, const struct lgw_error *e, int version)
{
    switch (e->code) {
    case LGW_ETHROTTLED:
        send_message(r, 429, "Too Many Requests");
        return;
    case LGW_EEXECUTE:
    case LGW_ETIMEDOUT:
        /* The function failed: its own log says why. */
        send_message(r, 502, "Internal Server Error");
        return;
    case LGW_ECLIENT:
        warn(r, "route_error", e->message);
        send_message(r, 502, "Internal Server Error");
        return;
    case LGW_ECLIENT_TIMEOUT:
        warn(r, "route_error", e->message);
        if (version == 1)
            send_message(r, 504, "Endpoint request timed out");
        else
            send_message(r, 503, "Service Unavailable");
        return;
    case LGW_ESHUTDOWN:
        send_message(r, 503, "Service Unavailable");
        return;
    case LGW_ETOOLARGE:
        send_message(r, 413, "Request Entity Too Large");
        return;
    default:
        /* Unknown function, not allowed, not a handler: API Gateway's answer to an integration
         * it cannot call. */
        warn(r, "route_error", e->message);
        send_message(r, 500, "Internal Server Error");
        return;
    }
}

static bool token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Headers the HTTP layer owns (framing, connection) or the gateway sets itself. */
static bool reserved_header(const char *name)
{
    static const char *const names[] = {
        "content-length", "transfer-encoding", "connection",      "keep-alive", "upgrade", "te",
        "trailer",        "x-request-id",      "apigw-requestid", NULL};
    for (size_t i = 0; names[i]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

/* Adds one header from the function's answer. 0; -1 with why set when it cannot be sent. */
static int add_header(struct MHD_Response *resp, const char *name, json_t *v, bool *has_ct,
                      const char **why)
{
    char num[64];
    const char *text;
    char *dumped = NULL;
    int rc = -1;

    if (!*name) {
        *why = "a header name is empty";
        return -1;
    }
    for (const char *c = name; *c; c++) {
        if (!token_char((unsigned char)*c)) {
            *why = "a header name is not an HTTP token";
            return -1;
        }
    }
    if (json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        text = json_string_value(v);
        if (strlen(text) != json_string_length(v)) {
            *why = "a header value contains NUL";
            return -1;
        }
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        text = num;
    } else if (json_is_real(v)) {
        text = dumped = lgw_json_dumps(v, NULL);
        if (!text) {
            *why = "out of memory";
            return -1;
        }
    } else if (json_is_boolean(v)) {
        text = json_is_true(v) ? "true" : "false";
    } else {
        *why = "a header value is not a string, number or boolean";
        return -1;
    }
    if (strpbrk(text, "\r\n")) {
        *why = "a header value contains CR or LF";
        goto out;
    }
    if (reserved_header(name)) {
        rc = 0;
        goto out;
    }
    if (strcasecmp(name, "content-type") == 0)
        *has_ct = true;
    if (MHD_add_response_header(resp, name, text) != MHD_YES) {
        *why = "libmicrohttpd refused a header";
        goto out;
    }
    rc = 0;
out:
    free(dumped);
    return rc;
}

/* Strict base64 (standard alphabet; padding optional) into a malloc'd buffer. 0 or -1. */
static int base64_decode(const char *s, size_t len, char **out, size_t *outlen)
{
    unsigned char *o;
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;

    while (len && s[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    o = malloc(len / 4 * 3 + 3);
    if (!o)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else {
            free(o);
            return -1;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out = (char *)o;
    *outlen = n;
    return 0;
}

/* A 2.0 result that is not an object with statusCode: a 200 JSON body of the result (a string
 * is the body itself). */
static int send_inferred(struct lgw_req *r, json_t *res)
{
    const char *src = json_is_string(res) ? json_string_value(res) : r->inv.result;
    size_t len = json_is_string(res) ? json_string_length(res) : r->inv.result_len;
    char *copy = malloc(len + 1);
    struct MHD_Response *resp;

    if (!copy)
        return -1;
    memcpy(copy, src, len);
    copy[len] = '\0';
    resp = lgw_response_new(copy, len, "application/json");
    add_request_id(r, resp);
    lgw_req_queue(r, 200, resp);
    return 0;
}

/* Maps the function's proxy answer to the response. 0, or -1 with why set (502). */
static int send_answer(struct lgw_req *r, int version, const char **why)
{
    json_t *res, *status, *headers, *multi, *cookies, *body, *b64, *v;
    struct MHD_Response *resp = NULL;
    json_int_t code;
    bool has_ct = false;
    char *bytes = NULL;
    size_t nbytes = 0;
    const char *name;
    int rc = -1;

    res = r->inv.result
              ? json_loadb(r->inv.result, r->inv.result_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)
              : json_null();
    if (!res) {
        *why = "the answer is not JSON";
        return -1;
    }
    status = json_object_get(res, "statusCode");
    if (version == 2 && !status) {
        rc = send_inferred(r, res);
        if (rc < 0)
            *why = "out of memory";
        goto out;
    }
    if (!json_is_object(res) || !status) {
        *why = "the answer is not an object with statusCode";
        goto out;
    }
    code = 0;
    if (json_is_integer(status)) {
        code = json_integer_value(status);
    } else if (json_is_real(status)) {
        double d = json_real_value(status);
        if (d >= 200 && d <= 599 && d == (double)(json_int_t)d)
            code = (json_int_t)d;
    }
    if (code < 200 || code > 599) {
        *why = "statusCode is not a number from 200 to 599";
        goto out;
    }
    headers = json_object_get(res, "headers");
    multi = version == 1 ? json_object_get(res, "multiValueHeaders") : NULL;
    cookies = version == 2 ? json_object_get(res, "cookies") : NULL;
    body = json_object_get(res, "body");
    b64 = json_object_get(res, "isBase64Encoded");
    if ((headers && !json_is_object(headers) && !json_is_null(headers)) ||
        (multi && !json_is_object(multi) && !json_is_null(multi)) ||
        (cookies && !json_is_array(cookies) && !json_is_null(cookies))) {
        *why = "headers/multiValueHeaders must be objects and cookies an array";
        goto out;
    }
    if (body && !json_is_string(body) && !json_is_null(body)) {
        *why = "body is not a string";
        goto out;
    }
    if (b64 && !json_is_boolean(b64) && !json_is_null(b64)) {
        *why = "isBase64Encoded is not a boolean";
        goto out;
    }
    if (json_is_string(body)) {
        const char *s = json_string_value(body);
        size_t len = json_string_length(body);
        if (json_is_true(b64)) {
            if (base64_decode(s, len, &bytes, &nbytes) < 0) {
                *why = "body is not valid base64 although isBase64Encoded is true";
                goto out;
            }
        } else if ((bytes = malloc(len + 1))) {
            memcpy(bytes, s, len);
            nbytes = len;
        }
        if (!bytes) {
            *why = "out of memory";
            goto out;
        }
    }
    resp = lgw_response_new(bytes, nbytes, NULL);
    bytes = NULL; /* the response owns it, even on failure */
    if (!resp) {
        *why = "out of memory";
        goto out;
    }
    /* 1.0: multiValueHeaders first; a name in both keeps only the multi-value list. */
    if (json_is_object(multi)) {
        json_object_foreach(multi, name, v)
        {
            json_t *item;
            size_t i;
            if (!json_is_array(v)) {
                if (add_header(resp, name, v, &has_ct, why) < 0)
                    goto out;
                continue;
            }
            json_array_foreach(v, i, item)
            {
                if (add_header(resp, name, item, &has_ct, why) < 0)
                    goto out;
            }
        }
    }
    if (json_is_object(headers)) {
        json_object_foreach(headers, name, v)
        {
            bool in_multi = false;
            const char *mk;
            json_t *mv;
            if (json_is_object(multi)) {
                json_object_foreach(multi, mk, mv)
                {
                    if (strcasecmp(mk, name) == 0)
                        in_multi = true;
                }
            }
            if (!in_multi && add_header(resp, name, v, &has_ct, why) < 0)
                goto out;
        }
    }
    if (json_is_array(cookies)) {
        size_t i;
        json_array_foreach(cookies, i, v)
        {
            if (!json_is_string(v)) {
                *why = "cookies holds something other than strings";
                goto out;
            }
            if (add_header(resp, "Set-Cookie", v, &has_ct, why) < 0)
                goto out;
        }
    }
    if (!has_ct)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    add_request_id(r, resp);
    lgw_req_queue(r, (int)code, resp);
    resp = NULL;
    rc = 0;
out:
    if (resp)
        MHD_destroy_response(resp);
    free(bytes);
    json_decref(res);
    return rc;
}

/* ---- the face ---- */

static int route_version(const struct lgw_req *r)
{
    return lgw_routes_config(r->srv, r->route_index)->payload_version == 1 ? 1 : 2;
}

static size_t routes_limit(const struct lgw_req *r)
{
    (void)r;
    return LGW_SYNC_PAYLOAD_MAX;
}

static void too_large(struct lgw_req *r, size_t limit)
{
    (void)limit;
    send_message(r, 413, "Request Entity Too Large");
}

static void finish(struct lgw_req *r)
{
    int version = route_version(r);
    const char *why = NULL;

    if (r->inv.err.code != LGW_OK) {
        send_failure(r, &r->inv.err, version);
        return;
    }
    if (send_answer(r, version, &why) < 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "malformed Lambda proxy response: %s", why ? why : "?");
        warn(r, "route_bad_answer", msg);
        send_message(r, 502, "Internal Server Error");
    }
}

static void start(struct lgw_req *r)
{
    struct lgw_route_params params;
    int idx = lgw_routes_match(r->srv, r->method, r->path, &params);

    if (idx < 0) {
        send_message(r, 404, "Not Found"); /* http.c matched it a moment ago */
        return;
    }
    r->route_index = idx;
    snprintf(r->function, sizeof(r->function), "%s", lgw_routes_config(r->srv, idx)->function);
    r->event = build_event(r, idx, &params);
    if (!r->event) {
        send_message(r, 500, "Internal Server Error");
        return;
    }
    /* No payload text: lambda mode serializes the event. */
    r->inv.payload = NULL;
    r->inv.payload_len = 0;
    lgw_req_dispatch(r, LGW_DISPATCH_SYNC, finish);
}

const struct lgw_face lgw_face_routes = {
    .name = "routes",
    .body_limit = routes_limit,
    .start = start,
    .too_large = too_large,
};
