/*
 * json.c - compact JSON encoding with shortest round-trip numbers (see json.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct out {
    char *buf;
    size_t len, cap;
    int failed;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        char *nb;
        while (cap < o->len + n + 1)
            cap *= 2;
        nb = realloc(o->buf, cap);
        if (!nb) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void put_string(struct out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen = 2;
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        put(o, s + i - run, run);
        run = 0;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        put(o, esc, elen);
    }
    put(o, s + n - run, run);
    put(o, "\"", 1);
}

/* Writes d as Python's repr() does: the fewest significant digits that read back to d, in
 * fixed notation when the exponent is from -4 to 15 (always with a fraction: 100.0), else in
 * exponent notation (1e+300, 2.5e-08). */
static void put_real(struct out *o, double d)
{
    char b[48];
    int n = 0, p, exp;

    if (!isfinite(d)) {
        put(o, "null", 4); /* jansson never holds these; be safe anyway */
        return;
    }
    for (p = 1; p <= 17; p++) {
        n = snprintf(b, sizeof(b), "%.*e", p - 1, d);
        if (strtod(b, NULL) == d)
            break;
    }
    if (p > 17)
        p = 17;
    exp = atoi(strchr(b, 'e') + 1);
    if (exp >= -4 && exp < 16) {
        int decimals = p - 1 - exp;
        n = snprintf(b, sizeof(b), "%.*f", decimals > 0 ? decimals : 0, d);
        if (decimals <= 0) {
            b[n++] = '.';
            b[n++] = '0';
            b[n] = '\0';
        }
    }
    put(o, b, (size_t)n);
}

static void enc(struct out *o, const json_t *v, int depth)
{
    char num[32];
    int n;

    if (depth > LGW_JSON_MAX_DEPTH) {
        o->failed = 1;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        put(o, "{", 1);
        json_object_foreach((json_t *)v, key, val)
        {
            if (!first)
                put(o, ",", 1);
            first = 0;
            put_string(o, key, strlen(key));
            put(o, ":", 1);
            enc(o, val, depth + 1);
        }
        put(o, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        put(o, "[", 1);
        json_array_foreach((json_t *)v, i, val)
        {
            if (i)
                put(o, ",", 1);
            enc(o, val, depth + 1);
        }
        put(o, "]", 1);
        break;
    }
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        put(o, num, (size_t)n);
        break;
    case JSON_REAL:
        put_real(o, json_real_value(v));
        break;
    case JSON_TRUE:
        put(o, "true", 4);
        break;
    case JSON_FALSE:
        put(o, "false", 5);
        break;
    case JSON_NULL:
        put(o, "null", 4);
        break;
    }
}

char *lgw_json_dumps(const json_t *v, size_t *len)
{
    struct out o = {0};

    if (!v)
        return NULL;
    enc(&o, v, 0);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    if (len)
        *len = o.len;
    return o.buf;
}
