/*
 * test_http1.c - the incremental HTTP/1.1 response parser: status and header lines handed over
 * without their line ends, bodies framed by Content-Length, chunked coding or the end of the
 * connection, interim 1xx answers, keep-alive, the bytes that follow an answer left unused, the
 * same result for every way the input can be cut into pieces, each error with its message, the
 * bounds, callbacks that stop the parse, and the memory of a pending line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http1.h"

/* What the callbacks saw: header lines joined by '\n', body bytes as given. */
struct rec {
    char *hdrs;
    size_t hdrs_len, hdrs_cap;
    char *body;
    size_t body_len, body_cap;
    int nheaders, nbody;
    int stop_at_header; /* 1-based call that answers nonzero; 0: never */
    int stop_at_body;
};

/* The result of one run of the parser over an input cut into pieces. */
struct run {
    enum lgw_http1_status st;
    const char *error;
    int status;
    bool keep_alive;
    bool started;
    size_t consumed; /* of the whole input, when the parse ended (DONE, ERROR, STOPPED) */
    size_t pieces;   /* pieces fed */
    struct rec rec;
};

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64;
        char *b;
        while (c < *len + n + 1)
            c *= 2;
        b = realloc(*buf, c);
        assert_non_null(b);
        *buf = b;
        *cap = c;
    }
    if (n)
        memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static int on_header(void *arg, const char *line, size_t len)
{
    struct rec *r = arg;

    /* a line is handed over whole, without its CR LF */
    assert_null(memchr(line, '\n', len));
    assert_null(memchr(line, '\r', len));
    append(&r->hdrs, &r->hdrs_len, &r->hdrs_cap, line, len);
    append(&r->hdrs, &r->hdrs_len, &r->hdrs_cap, "\n", 1);
    r->nheaders++;
    return r->nheaders == r->stop_at_header ? 1 : 0;
}

static int on_body(void *arg, const char *data, size_t len)
{
    struct rec *r = arg;

    assert_true(len > 0);
    r->nbody++;
    if (r->nbody == r->stop_at_body)
        return -1;
    append(&r->body, &r->body_len, &r->body_cap, data, len);
    return 0;
}

static void rec_free(struct rec *r)
{
    free(r->hdrs);
    free(r->body);
}

static void run_free(struct run *r)
{
    rec_free(&r->rec);
}

/*
 * Feeds data[0..len) to a new parser in pieces ending at cuts[0..ncuts) (ascending, each <= len)
 * and at len; pieces may be empty. Every piece but the one that ends the parse must be used
 * whole. With eof, a parse still going on after the last piece is ended by lgw_http1_eof.
 */
static void run_cuts(const char *data, size_t len, const size_t *cuts, size_t ncuts, bool eof,
                     int stop_at_header, int stop_at_body, struct run *out)
{
    struct lgw_http1_parser p;
    size_t start = 0;

    memset(out, 0, sizeof(*out));
    out->rec.stop_at_header = stop_at_header;
    out->rec.stop_at_body = stop_at_body;
    lgw_http1_init(&p, on_header, on_body, &out->rec);
    out->st = LGW_HTTP1_MORE;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len, used = (size_t)-1;
        assert_true(end >= start && end <= len);
        out->st = lgw_http1_feed(&p, data + start, end - start, &used);
        out->pieces++;
        assert_true(used <= end - start);
        if (out->st != LGW_HTTP1_MORE) {
            out->consumed = start + used;
            break;
        }
        assert_int_equal(used, end - start);
        start = end;
        out->consumed = end;
    }
    if (out->st == LGW_HTTP1_MORE && eof)
        out->st = lgw_http1_eof(&p);
    if (out->st == LGW_HTTP1_ERROR)
        assert_non_null(p.error);
    out->error = p.error;
    out->status = p.status;
    out->keep_alive = p.keep_alive;
    out->started = lgw_http1_started(&p);
    lgw_http1_release(&p);
}

static void run_whole(const char *data, size_t len, bool eof, struct run *out)
{
    run_cuts(data, len, NULL, 0, eof, 0, 0, out);
}

static void run_bytes(const char *data, size_t len, bool eof, struct run *out)
{
    size_t *cuts = malloc(len ? len * sizeof(*cuts) : 1);

    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    run_cuts(data, len, cuts, len, eof, 0, 0, out);
    free(cuts);
}

static void assert_same(const struct run *a, const struct run *b)
{
    assert_int_equal(a->st, b->st);
    if (a->error || b->error) {
        assert_non_null(a->error);
        assert_non_null(b->error);
        assert_string_equal(a->error, b->error);
    }
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->started, b->started);
    assert_int_equal(a->consumed, b->consumed);
    assert_int_equal(a->rec.nheaders, b->rec.nheaders);
    assert_int_equal(a->rec.hdrs_len, b->rec.hdrs_len);
    if (a->rec.hdrs_len)
        assert_memory_equal(a->rec.hdrs, b->rec.hdrs, a->rec.hdrs_len);
    assert_int_equal(a->rec.body_len, b->rec.body_len);
    if (a->rec.body_len)
        assert_memory_equal(a->rec.body, b->rec.body, a->rec.body_len);
}

/* Every one-cut and two-cut split and the byte-by-byte feed give the same result as one piece. */
static void assert_every_split(const char *data, size_t len, bool eof, const struct run *whole)
{
    struct run r;

    for (size_t i = 0; i <= len; i++) {
        size_t cut[1] = {i};
        run_cuts(data, len, cut, 1, eof, 0, 0, &r);
        assert_same(whole, &r);
        run_free(&r);
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            run_cuts(data, len, cuts, 2, eof, 0, 0, &r);
            assert_same(whole, &r);
            run_free(&r);
        }
    }
    run_bytes(data, len, eof, &r);
    assert_same(whole, &r);
    assert_true(r.pieces > 1 || len <= 1);
    run_free(&r);
}

static void assert_headers(const struct run *r, const char *want)
{
    assert_non_null(r->rec.hdrs);
    assert_string_equal(r->rec.hdrs, want);
}

static void assert_body(const struct run *r, const char *want)
{
    assert_int_equal(r->rec.body_len, strlen(want));
    if (*want)
        assert_memory_equal(r->rec.body, want, strlen(want));
}

#define SIMPLE_ANSWER                                                                              \
    "HTTP/1.1 200 OK\r\n"                                                                          \
    "Content-Type: application/json\r\n"                                                           \
    "Content-Length: 13\r\n"                                                                       \
    "X-Amz-Executed-Version: $LATEST\r\n"                                                          \
    "\r\n"                                                                                         \
    "{\"ok\":\"yes\"}\n"
/* What follows the answer on a pipelined connection: never the parser's to take. */
#define JUNK "HTTP/1.1 500 Junk\r\nContent-Length: 3\r\n\r\nbad"

static void test_simple(void **state)
{
    const char *in = SIMPLE_ANSWER JUNK;
    struct run r;

    (void)state;
    run_whole(in, strlen(in), false, &r);
    assert_int_equal(r.st, LGW_HTTP1_DONE);
    assert_null(r.error);
    assert_int_equal(r.status, 200);
    assert_true(r.keep_alive);
    assert_true(r.started);
    assert_int_equal(r.consumed, strlen(SIMPLE_ANSWER));
    assert_int_equal(r.rec.nheaders, 4);
    assert_headers(&r, "HTTP/1.1 200 OK\n"
                       "Content-Type: application/json\n"
                       "Content-Length: 13\n"
                       "X-Amz-Executed-Version: $LATEST\n");
    assert_body(&r, "{\"ok\":\"yes\"}\n");
    run_free(&r);

    /* feeding a finished parser takes nothing */
    {
        struct lgw_http1_parser p;
        struct rec rec;
        size_t used = 99;

        memset(&rec, 0, sizeof(rec));
        lgw_http1_init(&p, on_header, on_body, &rec);
        assert_int_equal(lgw_http1_feed(&p, in, strlen(in), &used), LGW_HTTP1_DONE);
        assert_int_equal(used, strlen(SIMPLE_ANSWER));
        assert_int_equal(lgw_http1_feed(&p, in + used, strlen(in) - used, &used), LGW_HTTP1_DONE);
        assert_int_equal(used, 0);
        assert_int_equal(rec.nheaders, 4);
        lgw_http1_release(&p);
        rec_free(&rec);
    }
}

static void test_simple_every_split(void **state)
{
    const char *in = SIMPLE_ANSWER JUNK;
    struct run whole;

    (void)state;
    run_whole(in, strlen(in), false, &whole);
    assert_int_equal(whole.st, LGW_HTTP1_DONE);
    assert_every_split(in, strlen(in), false, &whole);
    run_free(&whole);
}

#define CHUNKED_ANSWER                                                                             \
    "HTTP/1.1 200 OK\r\n"                                                                          \
    "transfer-encoding:  Chunked \r\n"                                                             \
    "Content-Type: text/plain\r\n"                                                                 \
    "\r\n"                                                                                         \
    "5;x=y\r\n"                                                                                    \
    "hello\r\n"                                                                                    \
    "b ; name=\"quoted\"\n"                                                                        \
    " big world!\n"                                                                                \
    "1a\r\n"                                                                                       \
    "abcdefghijklmnopqrstuvwxyz\r\n"                                                               \
    "1F\r\n"                                                                                       \
    "0123456789012345678901234567890\r\n"                                                          \
    "f\r\n"                                                                                        \
    "-fifteen bytes-\r\n"                                                                          \
    "0;last\r\n"                                                                                   \
    "X-Trailer: t\r\n"                                                                             \
    "X-Other: u\n"                                                                                 \
    "\r\n"

static void test_chunked(void **state)
{
    const char *in = CHUNKED_ANSWER JUNK;
    struct run r;

    (void)state;
    run_whole(in, strlen(in), false, &r);
    assert_int_equal(r.st, LGW_HTTP1_DONE);
    assert_null(r.error);
    assert_int_equal(r.status, 200);
    assert_true(r.keep_alive);
    assert_int_equal(r.consumed, strlen(CHUNKED_ANSWER));
    /* trailers are read and dropped: the header callback sees only the header section */
    assert_headers(&r, "HTTP/1.1 200 OK\n"
                       "transfer-encoding:  Chunked \n"
                       "Content-Type: text/plain\n");
    assert_body(&r, "hello big world!abcdefghijklmnopqrstuvwxyz0123456789012345678901234567890"
                    "-fifteen bytes-");
    assert_every_split(in, strlen(in), false, &r);
    run_free(&r);
}

static void test_interim_100(void **state)
{
    const char *answer = "HTTP/1.1 100 Continue\r\n"
                         "X-Interim: 1\r\n"
                         "\r\n"
                         "HTTP/1.1 103 Early Hints\r\n"
                         "\r\n"
                         "HTTP/1.1 200 OK\r\n"
                         "Content-Length: 2\r\n"
                         "\r\n"
                         "hi";
    char in[256];
    struct run r;

    (void)state;
    snprintf(in, sizeof(in), "%s%s", answer, JUNK);
    run_whole(in, strlen(in), false, &r);
    assert_int_equal(r.st, LGW_HTTP1_DONE);
    assert_int_equal(r.status, 200);
    assert_true(r.keep_alive);
    assert_int_equal(r.consumed, strlen(answer));
    assert_headers(&r, "HTTP/1.1 100 Continue\n"
                       "X-Interim: 1\n"
                       "HTTP/1.1 103 Early Hints\n"
                       "HTTP/1.1 200 OK\n"
                       "Content-Length: 2\n");
    assert_body(&r, "hi");
    assert_every_split(in, strlen(in), false, &r);
    run_free(&r);

    /* an interim answer's framing headers do not carry over to the final one */
    {
        const char *in2 = "HTTP/1.1 100 Continue\r\n"
                          "Content-Length: 7\r\n"
                          "\r\n"
                          "HTTP/1.1 200 OK\r\n"
                          "Transfer-Encoding: chunked\r\n"
                          "\r\n"
                          "0\r\n\r\n";
        run_whole(in2, strlen(in2), false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.consumed, strlen(in2));
        assert_body(&r, "");
        run_free(&r);
    }
}

/* Answers with no body are DONE right after their header section. */
static void test_no_body(void **state)
{
    static const struct {
        const char *head;
        int status;
    } cases[] = {
        {"HTTP/1.1 204 No Content\r\n\r\n", 204},
        /* a 204 or 304 has no body whatever its headers say */
        {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 204},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n", 304},
        {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 304},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200},
        {"HTTP/1.1 500 Internal Server Error\r\ncontent-length:0\r\n\r\n", 500},
    };
    char in[256];
    struct run r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(in, sizeof(in), "%s%s", cases[i].head, JUNK);
        run_whole(in, strlen(in), false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_int_equal(r.status, cases[i].status);
        assert_true(r.keep_alive);
        assert_int_equal(r.consumed, strlen(cases[i].head));
        assert_int_equal(r.rec.nbody, 0);
        run_free(&r);

        /* with nothing after it: DONE as soon as the blank line is in, not at eof */
        run_bytes(cases[i].head, strlen(cases[i].head), false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_int_equal(r.consumed, strlen(cases[i].head));
        run_free(&r);
    }
}

static void test_close_delimited(void **state)
{
    const char *in = "HTTP/1.1 200 OK\r\n"
                     "Content-Type: text/plain\r\n"
                     "\r\n"
                     "all of this is the body\r\n\r\nHTTP/1.1 200 OK\r\n";
    struct lgw_http1_parser p;
    struct rec rec;
    struct run r;
    size_t used;

    (void)state;
    memset(&rec, 0, sizeof(rec));
    lgw_http1_init(&p, on_header, on_body, &rec);
    assert_int_equal(lgw_http1_feed(&p, in, strlen(in), &used), LGW_HTTP1_MORE);
    assert_int_equal(used, strlen(in));
    assert_int_equal(lgw_http1_feed(&p, "more", 4, &used), LGW_HTTP1_MORE);
    assert_int_equal(used, 4);
    assert_int_equal(lgw_http1_eof(&p), LGW_HTTP1_DONE);
    assert_false(p.keep_alive);
    assert_int_equal(p.status, 200);
    assert_int_equal(rec.body_len,
                     strlen("all of this is the body\r\n\r\nHTTP/1.1 200 OK\r\n") + 4);
    assert_memory_equal(rec.body, "all of this is the body\r\n\r\nHTTP/1.1 200 OK\r\nmore",
                        rec.body_len);
    lgw_http1_release(&p);
    rec_free(&rec);

    run_whole(in, strlen(in), true, &r);
    assert_int_equal(r.st, LGW_HTTP1_DONE);
    assert_false(r.keep_alive);
    assert_every_split(in, strlen(in), true, &r);
    run_free(&r);

    /* a close-delimited answer with an empty body */
    run_whole("HTTP/1.1 200 OK\r\n\r\n", 19, true, &r);
    assert_int_equal(r.st, LGW_HTTP1_DONE);
    assert_false(r.keep_alive);
    assert_int_equal(r.rec.nbody, 0);
    run_free(&r);
}

static void test_keep_alive(void **state)
{
    static const struct {
        const char *in;
        bool keep_alive;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", true},
        {"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", true},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", false},
        {"HTTP/1.1 200 OK\r\nconnection: Keep-Alive , CLOSE\r\nContent-Length: 1\r\n\r\nx", false},
        {"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 1\r\n\r\nx", true},
        {"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         false},
        {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", false},
        {"HTTP/1.0 204 No Content\r\n\r\n", false},
    };
    struct run r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_whole(cases[i].in, strlen(cases[i].in), false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_int_equal(r.consumed, strlen(cases[i].in));
        if (r.keep_alive != cases[i].keep_alive)
            fail_msg("keep_alive %d, want %d: %s", r.keep_alive, cases[i].keep_alive, cases[i].in);
        run_free(&r);
    }
}

/* The input gives ERROR with a message holding want, in one piece and byte by byte. */
static void assert_error(const char *in, size_t len, const char *want)
{
    struct run whole, bytes;

    run_whole(in, len, false, &whole);
    if (whole.st != LGW_HTTP1_ERROR)
        fail_msg("status %d, want ERROR, for: %.200s", whole.st, in);
    assert_non_null(whole.error);
    if (!strstr(whole.error, want))
        fail_msg("error \"%s\", want \"%s\", for: %.200s", whole.error, want, in);
    run_bytes(in, len, false, &bytes);
    assert_int_equal(bytes.st, LGW_HTTP1_ERROR);
    assert_string_equal(bytes.error, whole.error);
    run_free(&whole);
    run_free(&bytes);
}

static void assert_error_str(const char *in, const char *want)
{
    assert_error(in, strlen(in), want);
}

static void test_errors(void **state)
{
    struct lgw_http1_parser p;
    size_t used;

    (void)state;
    assert_error_str("GARBAGE GARBAGE\r\n\r\n", "not an HTTP/1.x status line");
    assert_error_str("HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line");
    assert_error_str("HTTP/1.1 20 OK\r\n\r\n", "not an HTTP/1.x status line");
    assert_error_str("HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line");
    assert_error_str("\r\n", "not an HTTP/1.x status line");
    assert_error_str("HTTP/1.1 099 Low\r\n\r\n", "below 100");
    assert_error_str("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "(101)");
    assert_error_str("HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", "no name and colon");
    assert_error_str("HTTP/1.1 200 OK\r\n: no name\r\n\r\n", "no name and colon");
    assert_error_str("HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", "header name with a blank");
    assert_error_str("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\r\n", "folded");
    assert_error_str("HTTP/1.1 200 OK\r\nX-A: one\r\n\ttwo\r\n\r\n", "folded");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", "Content-Length");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "Content-Length");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length:   \r\n\r\n", "Content-Length");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", "Content-Length");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n", "Content-Length");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                     "Content-Length");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello",
                     "two different Content-Length");
    assert_error_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n0\r\n\r\n",
                     "both Content-Length and Transfer-Encoding");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                     "5\r\nhello\r\n0\r\n\r\n",
                     "both Content-Length and Transfer-Encoding");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "other than chunked");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                     "other than chunked");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     "not hexadecimal");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n",
                     "not hexadecimal");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
                     "not hexadecimal");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "10000000000000000\r\n",
                     "too large");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n",
                     "not followed by CRLF");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\rX",
                     "not followed by CRLF");
    /* a CR inside a line (a line ends in CR LF or a bare LF, nothing else) */
    assert_error_str("HTTP/1.1 200 OK\r\r\n\r\n", "a CR inside a header line");
    assert_error_str("HTTP/1.1 200 OK\r\nX-A: 1\r\r\n\r\n", "a CR inside a header line");
    assert_error_str("HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", "a CR inside a header line");
    assert_error_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\r\nhello\r\n",
                     "a CR inside a chunk-size line");

    /* two equal Content-Length values are one */
    {
        const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length:5\r\n\r\nhello";
        struct run r;
        run_whole(in, strlen(in), false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_body(&r, "hello");
        run_free(&r);
    }

    /* an error sticks: more input takes nothing, eof says ERROR, the message stays */
    lgw_http1_init(&p, NULL, NULL, NULL);
    assert_int_equal(lgw_http1_feed(&p, "HTTP/2 200\r\n", 12, &used), LGW_HTTP1_ERROR);
    assert_non_null(p.error);
    assert_int_equal(lgw_http1_feed(&p, "HTTP/1.1 200 OK\r\n", 17, &used), LGW_HTTP1_ERROR);
    assert_int_equal(used, 0);
    assert_int_equal(lgw_http1_eof(&p), LGW_HTTP1_ERROR);
    assert_non_null(strstr(p.error, "not an HTTP/1.x status line"));
    lgw_http1_release(&p);
}

/* A header section of exactly LGW_HTTP1_HEADERS_MAX bytes (status line and blank line included)
 * is read; one byte more is an error, in one piece or byte by byte. */
static void test_headers_max(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ";
    size_t total = LGW_HTTP1_HEADERS_MAX + 1 + 2;
    char *in = malloc(total + 1);
    struct run r;
    size_t n;

    (void)state;
    assert_non_null(in);
    for (int extra = 0; extra <= 1; extra++) {
        size_t section = LGW_HTTP1_HEADERS_MAX + (size_t)extra, fill;
        fill = section - (sizeof(head) - 1) - 4; /* the X-Big line's CRLF and the blank line */
        memcpy(in, head, sizeof(head) - 1);
        memset(in + sizeof(head) - 1, 'a', fill);
        n = sizeof(head) - 1 + fill;
        memcpy(in + n, "\r\n\r\nok", 6);
        n += 6;
        assert_int_equal(n, section + 2);
        if (extra) {
            assert_error(in, n, "header section longer than");
            continue;
        }
        run_whole(in, n, false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_int_equal(r.consumed, n);
        assert_int_equal(r.rec.nheaders, 3);
        /* status line, Content-Length line, and the big line without its CRLF */
        assert_int_equal(r.rec.hdrs_len, 16 + 18 + (7 + fill + 1));
        assert_body(&r, "ok");
        run_free(&r);
        run_bytes(in, n, false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_int_equal(r.consumed, n);
        assert_body(&r, "ok");
        run_free(&r);
    }

    /* the limit is per header section: a 100 Continue does not use up the final answer's */
    {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        size_t fill = LGW_HTTP1_HEADERS_MAX - (sizeof(head) - 1) - 4;
        char *in2 = malloc(sizeof(cont) - 1 + LGW_HTTP1_HEADERS_MAX + 2);
        assert_non_null(in2);
        memcpy(in2, cont, sizeof(cont) - 1);
        n = sizeof(cont) - 1;
        memcpy(in2 + n, head, sizeof(head) - 1);
        n += sizeof(head) - 1;
        memset(in2 + n, 'b', fill);
        n += fill;
        memcpy(in2 + n, "\r\n\r\nok", 6);
        n += 6;
        run_whole(in2, n, false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_body(&r, "ok");
        run_free(&r);
        free(in2);
    }
    free(in);
}

/* A chunk-size line (extensions and CRLF included) may be 4096 bytes long, not 4097. */
static void test_chunk_line_max(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=";
    char in[8192];
    struct run r;

    (void)state;
    for (int extra = 0; extra <= 1; extra++) {
        size_t fill = 4096 - 4 - 2 + (size_t)extra, n = sizeof(head) - 1;
        memcpy(in, head, n);
        memset(in + n, 'v', fill);
        n += fill;
        memcpy(in + n, "\r\nabc\r\n0\r\n\r\n", 12);
        n += 12;
        if (extra) {
            assert_error(in, n, "chunk-size line longer than 4096");
            continue;
        }
        run_whole(in, n, false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_int_equal(r.consumed, n);
        assert_body(&r, "abc");
        run_free(&r);
        run_bytes(in, n, false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_body(&r, "abc");
        run_free(&r);
    }

    /* the bound is per line: many chunks together far over 4096 bytes are fine */
    {
        char *big = malloc(64 * 1024);
        size_t n = sizeof(head) - 1 - 4;
        assert_non_null(big);
        memcpy(big, head, n);
        for (int i = 0; i < 2000; i++) {
            memcpy(big + n, "1;e=f\r\nz\r\n", 10);
            n += 10;
        }
        memcpy(big + n, "0\r\n\r\n", 5);
        n += 5;
        run_bytes(big, n, false, &r);
        assert_int_equal(r.st, LGW_HTTP1_DONE);
        assert_int_equal(r.rec.body_len, 2000);
        run_free(&r);
        free(big);
    }
}

static void test_eof(void **state)
{
    struct lgw_http1_parser p;
    size_t used;
    static const char *cut_short[] = {
        "HTTP/1.1 200 OK\r\nContent-Le",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n",
        "HTTP/1.1 20",
        "HTTP/1.1 100 Continue\r\n\r\n",
    };

    (void)state;
    /* nothing at all: not started (a caller may retry), and ERROR */
    lgw_http1_init(&p, on_header, on_body, NULL);
    assert_false(lgw_http1_started(&p));
    assert_int_equal(lgw_http1_feed(&p, "", 0, &used), LGW_HTTP1_MORE);
    assert_int_equal(used, 0);
    assert_false(lgw_http1_started(&p));
    assert_int_equal(lgw_http1_eof(&p), LGW_HTTP1_ERROR);
    assert_non_null(p.error);
    assert_non_null(strstr(p.error, "before the answer's headers ended"));
    lgw_http1_release(&p);

    /* in the middle of the headers */
    for (size_t i = 0; i < sizeof(cut_short) / sizeof(cut_short[0]); i++) {
        struct rec rec;
        memset(&rec, 0, sizeof(rec));
        lgw_http1_init(&p, on_header, on_body, &rec);
        assert_int_equal(lgw_http1_feed(&p, cut_short[i], strlen(cut_short[i]), &used),
                         LGW_HTTP1_MORE);
        assert_true(lgw_http1_started(&p));
        assert_int_equal(lgw_http1_eof(&p), LGW_HTTP1_ERROR);
        assert_non_null(p.error);
        assert_non_null(strstr(p.error, "before the answer's headers ended"));
        lgw_http1_release(&p);
        rec_free(&rec);
    }

    /* in the middle of a Content-Length body, and of a chunked one */
    {
        static const char *body_short[] = {
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
        };
        for (size_t i = 0; i < sizeof(body_short) / sizeof(body_short[0]); i++) {
            struct rec rec;
            memset(&rec, 0, sizeof(rec));
            lgw_http1_init(&p, on_header, on_body, &rec);
            assert_int_equal(lgw_http1_feed(&p, body_short[i], strlen(body_short[i]), &used),
                             LGW_HTTP1_MORE);
            assert_int_equal(lgw_http1_eof(&p), LGW_HTTP1_ERROR);
            assert_non_null(p.error);
            assert_non_null(strstr(p.error, "before the answer's body ended"));
            lgw_http1_release(&p);
            rec_free(&rec);
        }
    }

    /* after a complete answer, the end of the connection changes nothing but keep-alive */
    lgw_http1_init(&p, NULL, NULL, NULL);
    assert_int_equal(lgw_http1_feed(&p, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38, &used),
                     LGW_HTTP1_DONE);
    assert_true(p.keep_alive);
    assert_int_equal(lgw_http1_eof(&p), LGW_HTTP1_DONE);
    assert_false(p.keep_alive);
    lgw_http1_release(&p);
}

static void test_stop(void **state)
{
    const char *in = SIMPLE_ANSWER;
    const char *chunked = CHUNKED_ANSWER;
    struct run r;

    (void)state;
    /* at the status line */
    run_cuts(in, strlen(in), NULL, 0, false, 1, 0, &r);
    assert_int_equal(r.st, LGW_HTTP1_STOPPED);
    assert_int_equal(r.rec.nheaders, 1);
    assert_int_equal(r.rec.nbody, 0);
    run_free(&r);

    /* at the third header line: no later line or body is handed over */
    run_cuts(in, strlen(in), NULL, 0, false, 3, 0, &r);
    assert_int_equal(r.st, LGW_HTTP1_STOPPED);
    assert_null(r.error);
    assert_int_equal(r.rec.nheaders, 3);
    assert_int_equal(r.rec.nbody, 0);
    assert_true(r.consumed < strlen(in));
    run_free(&r);

    /* at the body, Content-Length and chunked, and close-delimited */
    run_cuts(in, strlen(in), NULL, 0, false, 0, 1, &r);
    assert_int_equal(r.st, LGW_HTTP1_STOPPED);
    assert_int_equal(r.rec.nheaders, 4);
    assert_int_equal(r.rec.nbody, 1);
    run_free(&r);

    run_cuts(chunked, strlen(chunked), NULL, 0, false, 0, 2, &r);
    assert_int_equal(r.st, LGW_HTTP1_STOPPED);
    assert_int_equal(r.rec.nbody, 2);
    assert_body(&r, "hello");
    run_free(&r);

    {
        const char *eof_body = "HTTP/1.1 200 OK\r\n\r\nbody";
        run_cuts(eof_body, strlen(eof_body), NULL, 0, true, 0, 1, &r);
        assert_int_equal(r.st, LGW_HTTP1_STOPPED);
        assert_int_equal(r.rec.nbody, 1);
        run_free(&r);
    }

    /* byte by byte, the stop comes at the same callback */
    {
        size_t cuts[200];
        size_t n = strlen(in);
        assert_true(n <= 200);
        for (size_t i = 0; i < n; i++)
            cuts[i] = i + 1;
        run_cuts(in, n, cuts, n, false, 2, 0, &r);
        assert_int_equal(r.st, LGW_HTTP1_STOPPED);
        assert_int_equal(r.rec.nheaders, 2);
        run_free(&r);
        run_cuts(in, n, cuts, n, false, 0, 3, &r);
        assert_int_equal(r.st, LGW_HTTP1_STOPPED);
        assert_int_equal(r.rec.nbody, 3);
        assert_body(&r, "{\"");
        run_free(&r);
    }
}

/* A parser with no callbacks reads the same answers. */
static void test_no_callbacks(void **state)
{
    const char *in = CHUNKED_ANSWER JUNK;
    struct lgw_http1_parser p;
    size_t used;

    (void)state;
    lgw_http1_init(&p, NULL, NULL, NULL);
    assert_int_equal(lgw_http1_feed(&p, in, strlen(in), &used), LGW_HTTP1_DONE);
    assert_int_equal(used, strlen(CHUNKED_ANSWER));
    assert_int_equal(p.status, 200);
    lgw_http1_release(&p);
}

/* The pending part of a line is held between calls and freed by lgw_http1_release (ASan's leak
 * check sees it if not), which is safe to call again and on a parser that never allocated. */
static void test_release(void **state)
{
    struct lgw_http1_parser p;
    struct rec rec;
    size_t used;
    static const char part[] = "HTTP/1.1 200 OK\r\nX-Partial: abc";

    (void)state;
    lgw_http1_init(&p, NULL, NULL, NULL);
    lgw_http1_release(&p);
    lgw_http1_release(&p);

    memset(&rec, 0, sizeof(rec));
    lgw_http1_init(&p, on_header, on_body, &rec);
    assert_int_equal(lgw_http1_feed(&p, part, sizeof(part) - 1, &used), LGW_HTTP1_MORE);
    assert_int_equal(used, sizeof(part) - 1);
    assert_int_equal(rec.nheaders, 1);
    assert_non_null(p.line); /* "X-Partial: abc" waits for its line end */
    assert_int_equal(p.line_len, strlen("X-Partial: abc"));
    lgw_http1_release(&p);
    assert_null(p.line);
    assert_int_equal(p.line_len, 0);
    lgw_http1_release(&p);
    rec_free(&rec);

    /* an error with a line pending: release frees it */
    lgw_http1_init(&p, NULL, NULL, NULL);
    assert_int_equal(lgw_http1_feed(&p, "HTTP/1.1 200 OK\r\nX-A: 1", 23, &used), LGW_HTTP1_MORE);
    assert_int_equal(lgw_http1_feed(&p, "\r\nbad line\r\n", 12, &used), LGW_HTTP1_ERROR);
    lgw_http1_release(&p);
    assert_null(p.line);

    /* the pending line is freed once the headers end, while the body is still to come */
    lgw_http1_init(&p, NULL, NULL, NULL);
    assert_int_equal(lgw_http1_feed(&p, "HTTP/1.1 200 OK\r\nContent-Length: 3\r", 35, &used),
                     LGW_HTTP1_MORE);
    assert_non_null(p.line);
    assert_int_equal(lgw_http1_feed(&p, "\n\r\nab", 5, &used), LGW_HTTP1_MORE);
    assert_null(p.line);
    assert_int_equal(lgw_http1_feed(&p, "c", 1, &used), LGW_HTTP1_DONE);

    /* a DONE answer holds nothing, whatever way it was cut (no release here: ASan checks) */
    lgw_http1_init(&p, NULL, NULL, NULL);
    assert_int_equal(lgw_http1_feed(&p, "HTTP/1.1 200 OK\r\nContent-Le", 27, &used),
                     LGW_HTTP1_MORE);
    assert_int_equal(lgw_http1_feed(&p, "ngth: 1\r\n\r\nx", 12, &used), LGW_HTTP1_DONE);
    assert_null(p.line);
}

/* Nor does a close-delimited answer ended by lgw_http1_eof: http1.h says the pending line is
 * freed "once the headers are done", so a caller need not release a parser that reached DONE. */
static void test_eof_done_holds_nothing(void **state)
{
    struct lgw_http1_parser p;
    size_t used;

    (void)state;
    lgw_http1_init(&p, NULL, NULL, NULL);
    assert_int_equal(lgw_http1_feed(&p, "HTTP/1.1 200 OK\r\nX-", 19, &used), LGW_HTTP1_MORE);
    assert_int_equal(lgw_http1_feed(&p, "A: 1\r\n\r\nbody", 12, &used), LGW_HTTP1_MORE);
    assert_int_equal(lgw_http1_eof(&p), LGW_HTTP1_DONE);
    assert_null(p.line);
}

/* "True once any byte of the answer was given": a connection that closed before sending
 * anything (a stale keep-alive connection, which a caller may retry) stays not started after
 * lgw_http1_eof said so. */
static void test_not_started_after_eof(void **state)
{
    struct lgw_http1_parser p;

    (void)state;
    lgw_http1_init(&p, NULL, NULL, NULL);
    assert_false(lgw_http1_started(&p));
    assert_int_equal(lgw_http1_eof(&p), LGW_HTTP1_ERROR);
    assert_non_null(p.error);
    assert_false(lgw_http1_started(&p));
    lgw_http1_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_simple_every_split),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_interim_100),
        cmocka_unit_test(test_no_body),
        cmocka_unit_test(test_close_delimited),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_headers_max),
        cmocka_unit_test(test_chunk_line_max),
        cmocka_unit_test(test_eof),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_no_callbacks),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_eof_done_holds_nothing),
        cmocka_unit_test(test_not_started_after_eof),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
