/*
 * http1.h - an incremental parser for one HTTP/1.1 response (status line, headers, body).
 *
 * Lambda mode speaks HTTP/1.1 to plain-HTTP endpoints itself (dispatch/lambda.c): libcurl opens
 * the connection, and the request and its answer go over the socket directly. This parser reads
 * the answer as it arrives, in pieces of any size, with no I/O of its own:
 *   - the status line, and the header lines (each handed over once complete, without its CRLF;
 *     an interim 1xx answer's lines too, so a caller can reset what it read at each status line);
 *   - the body framed by Transfer-Encoding: chunked, Content-Length, or the end of the connection
 *     (then lgw_http1_eof() ends it), and no body for 1xx, 204 and 304;
 *   - whether the connection may carry another request afterwards.
 * Anything else is an error with a message: not an HTTP/1.x status line, a header line with no
 * colon or with a CR inside (a line may end in CRLF or a bare LF), a header section over
 * LGW_HTTP1_HEADERS_MAX bytes, a bad Content-Length or chunk size, two framings at once, a
 * transfer coding other than chunked.
 * The caller keeps one parser per answer; it holds no memory between calls except the pending
 * part of a header line (freed by lgw_http1_release, or once the headers are done).
 */
#ifndef LGW_HTTP1_H
#define LGW_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The whole header section (status line included) may not be longer than this (curl allows a
 * header line up to 100 KiB; Lambda's longest, X-Amz-Log-Result, is about 8 KiB). */
#define LGW_HTTP1_HEADERS_MAX (100 * 1024)

/* Each returns 0 to go on, anything else to stop the parse (lgw_http1_feed then answers
 * LGW_HTTP1_STOPPED). */
typedef int (*lgw_http1_header_fn)(void *arg, const char *line, size_t len);
typedef int (*lgw_http1_body_fn)(void *arg, const char *data, size_t len);

enum lgw_http1_status {
    LGW_HTTP1_MORE,    /* everything given was used; the answer goes on */
    LGW_HTTP1_DONE,    /* the answer is complete (*used says how much of the input it took) */
    LGW_HTTP1_ERROR,   /* not a valid answer: see p->error */
    LGW_HTTP1_STOPPED, /* a callback asked to stop */
};

struct lgw_http1_parser {
    int state;
    int status;      /* of the final answer, once its status line was read */
    bool keep_alive; /* at DONE: the connection may carry another request */
    bool chunked, has_length, http10, conn_close;
    bool got_any;        /* a byte of the answer was given */
    uint64_t remaining;  /* bytes of the body (Content-Length) or of the chunk left */
    uint64_t chunk_line; /* bytes of a chunk-size / trailer line so far */
    size_t header_bytes; /* of the current header section, for the limit */
    char *line;          /* a header line split across pieces */
    size_t line_len, line_cap;
    const char *error; /* static text, set on LGW_HTTP1_ERROR */
    lgw_http1_header_fn on_header;
    lgw_http1_body_fn on_body;
    void *arg;
};

void lgw_http1_init(struct lgw_http1_parser *p, lgw_http1_header_fn on_header,
                    lgw_http1_body_fn on_body, void *arg);
void lgw_http1_release(struct lgw_http1_parser *p);

/* Parses the next len bytes of the answer. *used is set to how many it took: all of them for
 * MORE, up to the answer's end for DONE (what follows is not the answer's); after ERROR or
 * STOPPED it means nothing (the connection cannot be used on). */
enum lgw_http1_status lgw_http1_feed(struct lgw_http1_parser *p, const char *data, size_t len,
                                     size_t *used);

/* The connection ended: DONE when the body runs to the end of the connection and the headers
 * were complete, else ERROR (the answer was cut short; p->error says where). */
enum lgw_http1_status lgw_http1_eof(struct lgw_http1_parser *p);

/* True once any byte of the answer was given. */
bool lgw_http1_started(const struct lgw_http1_parser *p);

#endif
