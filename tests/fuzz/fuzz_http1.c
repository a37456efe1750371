/*
 * fuzz_http1.c - a libFuzzer target for the HTTP/1.1 response parser (dispatch/http1.c), which
 * reads bytes from the network. Built and run by `make fuzz` (not part of `make test`).
 *
 * Input: byte 0 holds, in its low 4 bits, how many piece sizes follow (0: the answer is fed one
 * byte at a time, the hardest case), in its high 4 bits a callback number at which a third run
 * stops the parse (0: no such run). Then the piece sizes, one byte each (0 feeds an empty piece),
 * used in turn; the rest is the answer.
 *
 * Each input is parsed three ways: in one piece; cut into the pieces the prefix says, each copied
 * into a buffer of its own so that ASan sees a read past a piece's end (the fuzzer's buffer would
 * hide it: the next piece follows); and, when asked, with a callback that stops the parse. Every
 * run checks what http1.h promises (used <= len, MORE uses everything, DONE takes nothing more,
 * ERROR has a message, eof() agrees with the last answer) and the first two must see the same
 * thing: status, keep-alive, header lines, body bytes, error message, bytes used. Any difference
 * aborts with both results printed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* What one run saw. Lines and body are hashed, not kept: the fuzzer runs millions of inputs. */
struct seen {
    uint64_t header_hash, body_hash;
    size_t header_lines, body_bytes;
    unsigned calls;   /* callbacks so far, both kinds */
    unsigned stop_at; /* the callback (1-based) that answers nonzero; 0: none */
    bool stopped;     /* a callback answered nonzero */
};

struct result {
    enum lgw_http1_status st;  /* the last answer of lgw_http1_feed that ended the parse, or MORE */
    enum lgw_http1_status eof; /* lgw_http1_eof() afterwards (not called after STOPPED) */
    const char *error;
    int status;
    bool keep_alive; /* when feed answered DONE, before eof() */
    bool started;
    size_t used; /* bytes of the answer taken in all */
    struct seen seen;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= FNV_PRIME;
    }
    return h;
}

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_http1: broken promise: %s\n", what);
        abort();
    }
}

static int stop_here(struct seen *s)
{
    s->calls++;
    if (s->stop_at && s->calls == s->stop_at) {
        s->stopped = true;
        return 1;
    }
    return 0;
}

static int on_header(void *arg, const char *line, size_t len)
{
    struct seen *s = arg;
    uint64_t n = len;

    /* http1.h: each line handed over once complete, without its CRLF. A line is cut at its
     * first LF, so none can hold one; a status line or a "name:" line, or it was an error. */
    check(memchr(line, '\n', len) == NULL, "a header line holds a LF");
    check(!(len >= 2 && line[len - 2] == '\r' && line[len - 1] == '\n'),
          "a header line ends with CRLF");
    check((len >= 7 && memcmp(line, "HTTP/1.", 7) == 0) ||
              (len > 0 && line[0] != ':' && memchr(line, ':', len) != NULL),
          "a header line that is neither a status line nor has a name and a colon");
    s->header_lines++;
    s->header_hash = fnv(s->header_hash, &n, sizeof(n)); /* so that "ab","c" != "a","bc" */
    s->header_hash = fnv(s->header_hash, line, len);     /* reads every byte: ASan checks it */
    return stop_here(s);
}

static int on_body(void *arg, const char *data, size_t len)
{
    struct seen *s = arg;

    /* Not written in http1.h, but the code never hands over an empty piece of body; a caller
     * that counts calls would be surprised if it did. */
    check(len > 0, "an empty body piece");
    s->body_bytes += len;
    s->body_hash = fnv(s->body_hash, data, len);
    return stop_here(s);
}

/* Feeds msg[0..n) in pieces of the sizes cuts[0..ncuts) in turn (ncuts 0: the whole of it at
 * once; a size 0: an empty piece). Stops feeding at the first answer other than MORE, then feeds
 * the rest once more to see that DONE and ERROR take nothing. */
static void run(const uint8_t *msg, size_t n, const uint8_t *cuts, size_t ncuts, unsigned stop_at,
                struct result *r)
{
    struct lgw_http1_parser p;
    size_t off = 0, k = 0, given = 0;
    bool any_cut = false;

    memset(r, 0, sizeof(*r));
    r->seen.header_hash = r->seen.body_hash = FNV_OFFSET;
    r->seen.stop_at = stop_at;
    r->st = LGW_HTTP1_MORE;
    for (size_t i = 0; i < ncuts; i++)
        any_cut |= cuts[i] != 0;
    lgw_http1_init(&p, on_header, on_body, &r->seen);
    check(!lgw_http1_started(&p), "started before any byte");

    while (r->st == LGW_HTTP1_MORE && off < n) {
        size_t len = !ncuts ? n : any_cut ? cuts[k++ % ncuts] : 1, used = (size_t)-1;
        char *piece;
        enum lgw_http1_status st;

        if (len > n - off)
            len = n - off;
        /* A buffer of its own, exactly len bytes (1 when empty, so that malloc says no NULL). */
        piece = malloc(len ? len : 1);
        if (!piece)
            abort();
        memcpy(piece, msg + off, len);
        st = lgw_http1_feed(&p, piece, len, &used);
        free(piece);
        given += len;

        check(used <= len, "used > len");
        check(lgw_http1_started(&p) == (given > 0), "started() disagrees with the bytes given");
        if (st == LGW_HTTP1_MORE)
            check(used == len, "MORE but not every byte used");
        if (st == LGW_HTTP1_ERROR)
            check(p.error != NULL, "ERROR without a message");
        if (st == LGW_HTTP1_STOPPED)
            check(r->seen.stopped, "STOPPED though no callback asked");
        else
            check(!r->seen.stopped, "a callback asked to stop, but the parse went on");
        if (st == LGW_HTTP1_DONE) {
            check(p.status >= 200, "DONE with an interim or no status");
            check(p.line == NULL, "DONE but still holding a line");
            if (p.status == 204 || p.status == 304)
                check(r->seen.body_bytes == 0, "a body for 204 or 304");
            r->keep_alive = p.keep_alive;
        }
        r->st = st;
        r->used += used;
        off += len;
    }

    if (r->st == LGW_HTTP1_DONE || r->st == LGW_HTTP1_ERROR) {
        /* What follows the answer: DONE takes none of it; after ERROR only no crash is asked. */
        const uint8_t *rest = msg + r->used;
        size_t rest_len = n - r->used, used = (size_t)-1;
        char *piece = malloc(rest_len ? rest_len : 1);
        unsigned calls = r->seen.calls;
        enum lgw_http1_status st;

        if (!piece)
            abort();
        memcpy(piece, rest, rest_len);
        st = lgw_http1_feed(&p, piece, rest_len, &used);
        free(piece);
        check(used <= rest_len, "used > len after the end");
        if (r->st == LGW_HTTP1_DONE)
            check(st == LGW_HTTP1_DONE && used == 0 && r->seen.calls == calls,
                  "feeding after DONE took bytes");
    }

    r->error = p.error;
    r->status = p.status;
    r->started = lgw_http1_started(&p);
    if (r->st != LGW_HTTP1_STOPPED) {
        r->eof = lgw_http1_eof(&p);
        check(r->eof == LGW_HTTP1_DONE || r->eof == LGW_HTTP1_ERROR,
              "eof() neither DONE nor ERROR");
        if (r->st == LGW_HTTP1_DONE)
            check(r->eof == LGW_HTTP1_DONE, "eof() after DONE is not DONE");
        if (r->st == LGW_HTTP1_ERROR)
            check(r->eof == LGW_HTTP1_ERROR && p.error == r->error, "eof() after ERROR changed it");
        if (r->eof == LGW_HTTP1_ERROR)
            check(p.error != NULL, "eof() ERROR without a message");
        if (r->eof == LGW_HTTP1_DONE) {
            check(p.status >= 200 && !p.keep_alive,
                  "eof() DONE with no final status or kept alive");
            check(p.line == NULL, "eof() DONE but still holding a line");
        }
        r->error = p.error;
    }
    lgw_http1_release(&p);
    check(p.line == NULL, "release left a line");
    lgw_http1_release(&p); /* twice is harmless */
}

static void print_result(const char *name, const struct result *r)
{
    fprintf(stderr,
            "  %s: st=%d eof=%d error=%s status=%d keep_alive=%d started=%d used=%zu "
            "header_lines=%zu header_hash=%016llx body_bytes=%zu body_hash=%016llx\n",
            name, (int)r->st, (int)r->eof, r->error ? r->error : "(none)", r->status,
            (int)r->keep_alive, (int)r->started, r->used, r->seen.header_lines,
            (unsigned long long)r->seen.header_hash, r->seen.body_bytes,
            (unsigned long long)r->seen.body_hash);
}

/* Bytes used count only when the answer is DONE (where the next one starts) or MORE (all of
 * them). After ERROR they say where the parse gave up, which for the length limits depends on the
 * cut: a line over the limit is refused whole when it comes in one piece, but its earlier pieces
 * were taken when it comes in several; the connection is dropped then anyway. */
static bool same(const struct result *a, const struct result *b)
{
    bool same_error =
        (!a->error && !b->error) || (a->error && b->error && strcmp(a->error, b->error) == 0);

    return a->st == b->st && a->eof == b->eof && same_error && a->status == b->status &&
           a->keep_alive == b->keep_alive && a->started == b->started &&
           (a->st == LGW_HTTP1_ERROR || a->used == b->used) &&
           a->seen.header_lines == b->seen.header_lines &&
           a->seen.header_hash == b->seen.header_hash && a->seen.body_bytes == b->seen.body_bytes &&
           a->seen.body_hash == b->seen.body_hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct result whole, cut, stopped;
    size_t ncuts;
    unsigned stop_at;

    if (size < 1)
        return 0;
    ncuts = data[0] & 0x0f;
    stop_at = data[0] >> 4;
    if (size < 1 + ncuts)
        return 0;

    run(data + 1 + ncuts, size - 1 - ncuts, NULL, 0, 0, &whole);
    /* ncuts 0 means one byte at a time: pass a single cut of size 0, which run() turns to 1. */
    run(data + 1 + ncuts, size - 1 - ncuts, ncuts ? data + 1 : (const uint8_t *)"",
        ncuts ? ncuts : 1, 0, &cut);
    if (!same(&whole, &cut)) {
        fprintf(stderr, "fuzz_http1: one piece and pieces differ\n");
        print_result("one piece", &whole);
        print_result("pieces   ", &cut);
        abort();
    }
    if (stop_at) {
        run(data + 1 + ncuts, size - 1 - ncuts, ncuts ? data + 1 : (const uint8_t *)"",
            ncuts ? ncuts : 1, stop_at, &stopped);
        /* A callback answering nonzero stops the parse right there; one never reached changes
         * nothing. */
        if (stopped.seen.stopped)
            check(stopped.st == LGW_HTTP1_STOPPED && stopped.seen.calls == stop_at,
                  "stopping did not stop at the callback asked");
        else
            check(stopped.st == cut.st && stopped.seen.calls == cut.seen.calls,
                  "a callback that never stopped changed the parse");
    }
    return 0;
}
