/*
 * http1.c - an incremental parser for one HTTP/1.1 response: see http1.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1.h"

#define CHUNK_LINE_MAX 4096 /* a chunk-size line, extensions included */

enum {
    S_STATUS,
    S_HEADER,
    S_BODY_LEN,
    S_BODY_EOF,
    S_CHUNK_SIZE,
    S_CHUNK_DATA,
    S_CHUNK_CR,
    S_CHUNK_LF,
    S_TRAILER,
    S_DONE,
    S_FAILED,
};

void lgw_http1_init(struct lgw_http1_parser *p, lgw_http1_header_fn on_header,
                    lgw_http1_body_fn on_body, void *arg)
{
    memset(p, 0, sizeof(*p));
    p->state = S_STATUS;
    p->on_header = on_header;
    p->on_body = on_body;
    p->arg = arg;
}

void lgw_http1_release(struct lgw_http1_parser *p)
{
    free(p->line);
    p->line = NULL;
    p->line_len = p->line_cap = 0;
}

bool lgw_http1_started(const struct lgw_http1_parser *p)
{
    return p->got_any;
}

static enum lgw_http1_status fail(struct lgw_http1_parser *p, const char *why)
{
    p->state = S_FAILED;
    p->error = why;
    return LGW_HTTP1_ERROR;
}

/*
 * Takes bytes up to the end of a line from data[*i..len). Returns 1 with *line and *n set to the
 * whole line (no CR LF) once it is complete, 0 when all the bytes were taken and the line goes
 * on, -1 when it would pass max (the bytes the section may still take), -2 when memory ran
 * out.
 */
static int take_line(struct lgw_http1_parser *p, const char *data, size_t len, size_t *i,
                     size_t max, const char **line, size_t *n)
{
    const char *s = data + *i, *nl = memchr(s, '\n', len - *i);
    size_t seg = nl ? (size_t)(nl - s) + 1 : len - *i;

    if (seg > max)
        return -1;
    *i += seg;
    if (nl && p->line_len == 0) {
        *line = s; /* the usual case: the line came whole */
        *n = seg;
    } else {
        if (p->line_len + seg > p->line_cap) {
            size_t cap = p->line_cap ? p->line_cap * 2 : 256;
            char *b;
            while (cap < p->line_len + seg)
                cap *= 2;
            if (!(b = realloc(p->line, cap)))
                return -2;
            p->line = b;
            p->line_cap = cap;
        }
        memcpy(p->line + p->line_len, s, seg);
        p->line_len += seg;
        if (!nl)
            return 0;
        *line = p->line;
        *n = p->line_len;
        p->line_len = 0;
    }
    (*n)--; /* the LF */
    if (*n && (*line)[*n - 1] == '\r')
        (*n)--;
    return 1;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static enum lgw_http1_status status_line(struct lgw_http1_parser *p, const char *s, size_t n)
{
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || !is_digit(s[7]) || s[8] != ' ' ||
        !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || (n > 12 && s[12] != ' '))
        return fail(p, "not an HTTP/1.x status line");
    p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (p->status < 100)
        return fail(p, "a status code below 100");
    if (p->status == 101)
        return fail(p, "an unrequested protocol switch (101)");
    p->http10 = s[7] == '0';
    p->chunked = p->has_length = p->conn_close = false;
    p->remaining = 0;
    if (p->on_header && p->on_header(p->arg, s, n) != 0)
        return LGW_HTTP1_STOPPED;
    p->state = S_HEADER;
    return LGW_HTTP1_MORE;
}

/* The value of a header line: after the colon, without surrounding blanks. */
static void value_of(const char *s, size_t n, const char *colon, const char **v, size_t *vn)
{
    const char *b = colon + 1, *e = s + n;

    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *v = b;
    *vn = (size_t)(e - b);
}

/* Whether the comma-separated list v holds token (any case). */
static bool list_has(const char *v, size_t vn, const char *token)
{
    size_t tn = strlen(token), i = 0;

    while (i < vn) {
        size_t b, e;
        while (i < vn && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        b = i;
        while (i < vn && v[i] != ',')
            i++;
        e = i;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - b == tn && strncasecmp(v + b, token, tn) == 0)
            return true;
    }
    return false;
}

static enum lgw_http1_status framing_header(struct lgw_http1_parser *p, const char *s, size_t n,
                                            const char *colon)
{
    size_t nl = (size_t)(colon - s), vn;
    const char *v;

    value_of(s, n, colon, &v, &vn);
    if (nl == 14 && strncasecmp(s, "Content-Length", 14) == 0) {
        uint64_t x = 0;
        if (vn == 0 || vn > 18)
            return fail(p, "a Content-Length that is not a number");
        for (size_t i = 0; i < vn; i++) {
            if (!is_digit(v[i]))
                return fail(p, "a Content-Length that is not a number");
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if (p->has_length && x != p->remaining)
            return fail(p, "two different Content-Length values");
        p->has_length = true;
        p->remaining = x;
    } else if (nl == 17 && strncasecmp(s, "Transfer-Encoding", 17) == 0) {
        /* Only chunked is understood; it must be the last coding, and no other may precede
         * it (we asked for no compression). */
        if (!(vn == 7 && strncasecmp(v, "chunked", 7) == 0))
            return fail(p, "a transfer coding other than chunked");
        p->chunked = true;
    } else if (nl == 10 && strncasecmp(s, "Connection", 10) == 0) {
        if (list_has(v, vn, "close"))
            p->conn_close = true;
    }
    return LGW_HTTP1_MORE;
}

static enum lgw_http1_status header_line(struct lgw_http1_parser *p, const char *s, size_t n)
{
    const char *colon;
    enum lgw_http1_status st;

    if (n == 0) { /* the end of the header section */
        p->header_bytes = 0;
        if (p->status < 200) { /* an interim answer (100 Continue): the real one follows */
            p->state = S_STATUS;
            return LGW_HTTP1_MORE;
        }
        if (p->chunked && p->has_length)
            return fail(p, "both Content-Length and Transfer-Encoding");
        lgw_http1_release(p); /* the headers are done (s is not read again) */
        p->keep_alive = !p->http10 && !p->conn_close;
        if (p->status == 204 || p->status == 304) {
            p->state = S_DONE;
        } else if (p->chunked) {
            p->state = S_CHUNK_SIZE;
        } else if (p->has_length) {
            p->state = p->remaining ? S_BODY_LEN : S_DONE;
        } else {
            p->keep_alive = false; /* the body runs to the end of the connection */
            p->state = S_BODY_EOF;
        }
        return LGW_HTTP1_MORE;
    }
    if (s[0] == ' ' || s[0] == '\t')
        return fail(p, "a folded header line");
    colon = memchr(s, ':', n);
    if (!colon || colon == s)
        return fail(p, "a header line with no name and colon");
    for (const char *c = s; c < colon; c++)
        if (*c == ' ' || *c == '\t' || (unsigned char)*c < 0x21 || (unsigned char)*c == 0x7f)
            return fail(p, "a header name with a blank or a control character");
    if ((st = framing_header(p, s, n, colon)) != LGW_HTTP1_MORE)
        return st;
    if (p->on_header && p->on_header(p->arg, s, n) != 0)
        return LGW_HTTP1_STOPPED;
    return LGW_HTTP1_MORE;
}

static enum lgw_http1_status chunk_size(struct lgw_http1_parser *p, const char *s, size_t n)
{
    uint64_t x = 0;
    size_t i = 0;

    for (; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        if (x >> 56)
            return fail(p, "a chunk size too large");
        x = x * 16 + (uint64_t)d;
    }
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == 0 || (i < n && s[i] != ';'))
        return fail(p, "a chunk size that is not hexadecimal");
    p->remaining = x;
    p->state = x ? S_CHUNK_DATA : S_TRAILER;
    return LGW_HTTP1_MORE;
}

enum lgw_http1_status lgw_http1_feed(struct lgw_http1_parser *p, const char *data, size_t len,
                                     size_t *used)
{
    size_t i = 0;
    enum lgw_http1_status st = LGW_HTTP1_MORE;

    if (len && p->state != S_DONE && p->state != S_FAILED)
        p->got_any = true;
    while (st == LGW_HTTP1_MORE && p->state != S_DONE && p->state != S_FAILED && i < len) {
        const char *line;
        size_t n, before = i, take;
        int r;

        switch (p->state) {
        case S_STATUS:
        case S_HEADER:
        case S_TRAILER:
            r = take_line(p, data, len, &i, LGW_HTTP1_HEADERS_MAX - p->header_bytes, &line, &n);
            p->header_bytes += i - before;
            if (r == -2) {
                st = fail(p, "no memory for a header line");
            } else if (r < 0) {
                st = fail(p, "a header section longer than 100 KiB");
            } else if (r > 0 && memchr(line, '\r', n)) {
                st = fail(p, "a CR inside a header line");
            } else if (r > 0) {
                if (p->state == S_STATUS)
                    st = status_line(p, line, n);
                else if (p->state == S_HEADER)
                    st = header_line(p, line, n);
                else if (n == 0)
                    p->state = S_DONE; /* the trailers (ignored) end */
            }
            break;
        case S_CHUNK_SIZE:
            r = take_line(p, data, len, &i, CHUNK_LINE_MAX - p->chunk_line, &line, &n);
            p->chunk_line += i - before;
            if (r == -2) {
                st = fail(p, "no memory for a chunk-size line");
            } else if (r < 0) {
                st = fail(p, "a chunk-size line longer than 4096 bytes");
            } else if (r > 0 && memchr(line, '\r', n)) {
                st = fail(p, "a CR inside a chunk-size line");
            } else if (r > 0) {
                p->chunk_line = 0;
                st = chunk_size(p, line, n);
            }
            break;
        case S_BODY_LEN:
        case S_CHUNK_DATA:
        case S_BODY_EOF:
            take = len - i;
            if (p->state != S_BODY_EOF && take > p->remaining)
                take = (size_t)p->remaining;
            if (p->on_body && p->on_body(p->arg, data + i, take) != 0) {
                st = LGW_HTTP1_STOPPED;
                break;
            }
            i += take;
            if (p->state == S_BODY_EOF)
                break;
            p->remaining -= take;
            if (p->remaining == 0)
                p->state = p->state == S_BODY_LEN ? S_DONE : S_CHUNK_CR;
            break;
        case S_CHUNK_CR:
            if (data[i] == '\r') {
                p->state = S_CHUNK_LF;
                i++;
                break;
            }
            __attribute__((fallthrough)); /* a bare LF is accepted */
        case S_CHUNK_LF:
            if (data[i] != '\n') {
                st = fail(p, "a chunk not followed by CRLF");
                break;
            }
            i++;
            p->state = S_CHUNK_SIZE;
            break;
        }
    }
    *used = i;
    if (st != LGW_HTTP1_MORE)
        return st;
    if (p->state == S_FAILED)
        return LGW_HTTP1_ERROR;
    if (p->state == S_DONE) {
        lgw_http1_release(p);
        return LGW_HTTP1_DONE;
    }
    return LGW_HTTP1_MORE;
}

enum lgw_http1_status lgw_http1_eof(struct lgw_http1_parser *p)
{
    switch (p->state) {
    case S_DONE:
    case S_BODY_EOF:
        p->state = S_DONE;
        p->keep_alive = false;
        lgw_http1_release(p);
        return LGW_HTTP1_DONE;
    case S_FAILED:
        return LGW_HTTP1_ERROR;
    case S_STATUS:
    case S_HEADER:
        return fail(p, "the connection closed before the answer's headers ended");
    default:
        return fail(p, "the connection closed before the answer's body ended");
    }
}
