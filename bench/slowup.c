/*
 * slowup.c - a minimal Lambda-compatible upstream for the slow-functions scenario of
 * bench/run.sh: it answers POST /2015-03-31/functions/NAME/invocations after the number of
 * milliseconds in the event's "ms" field (0 if none) with {"slept":MS}, as the gateway's sleep
 * example does, but with one thread, one epoll set and a timer heap instead of a thread per call.
 * It shows what lambda mode itself can do when the upstream is not the limit.
 *
 * Usage: slowup [-p PORT] [-s SECONDS]   (port 0 = any; it stops by itself after SECONDS,
 * default 600). Its first stdout line is "slowup listening on http://127.0.0.1:PORT ".
 * Keep-alive HTTP/1.1 with Content-Length bodies only (what libcurl sends); anything else closes
 * the connection.
 */
#define _GNU_SOURCE /* memmem, accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX 16384 /* a request (headers and body) must fit; the bench sends ~1 KiB */
#define MS_MAX 900000

struct conn {
    int fd;
    size_t got;
    size_t heap_at; /* index + 1 in the timer heap, 0 = not waiting */
    double due;     /* when the pending answer is due (monotonic seconds) */
    long ms;
    char buf[BUF_MAX];
};

static struct conn **heap; /* min-heap of waiting connections by due time */
static size_t nheap, capheap;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void heap_swap(size_t a, size_t b)
{
    struct conn *t = heap[a];

    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap_at = a + 1;
    heap[b]->heap_at = b + 1;
}

static int heap_push(struct conn *c)
{
    size_t i;

    if (nheap == capheap) {
        size_t cap = capheap ? capheap * 2 : 1024;
        struct conn **h = realloc(heap, cap * sizeof(*h));
        if (!h)
            return -1;
        heap = h;
        capheap = cap;
    }
    i = nheap++;
    heap[i] = c;
    c->heap_at = i + 1;
    while (i > 0 && heap[(i - 1) / 2]->due > heap[i]->due) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static struct conn *heap_pop(void)
{
    struct conn *top = heap[0];
    size_t i = 0;

    heap_swap(0, --nheap);
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < nheap && heap[l]->due < heap[m]->due)
            m = l;
        if (r < nheap && heap[r]->due < heap[m]->due)
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
    top->heap_at = 0;
    return top;
}

static void conn_close(int ep, struct conn *c)
{
    if (c->heap_at) {
        /* Rare (a caller gave up): close now, free when its time comes. */
        c->fd = -c->fd - 1;
        epoll_ctl(ep, EPOLL_CTL_DEL, -c->fd - 1, NULL);
        close(-c->fd - 1);
        return;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Returns the length of a complete request at the start of c->buf, 0 if more is needed, -1 if
 * it cannot be served. Sets c->ms from the body. */
static long request_len(struct conn *c)
{
    const char *end = memmem(c->buf, c->got, "\r\n\r\n", 4), *cl, *ms;
    long hdr, body;

    if (!end)
        return c->got >= sizeof(c->buf) ? -1 : 0;
    hdr = (long)(end - c->buf) + 4;
    if (strncmp(c->buf, "POST /2015-03-31/functions/", 27) != 0)
        return -1;
    cl = memmem(c->buf, (size_t)hdr, "\r\nContent-Length:", 17);
    if (!cl)
        cl = memmem(c->buf, (size_t)hdr, "\r\ncontent-length:", 17);
    body = cl ? strtol(cl + 17, NULL, 10) : 0;
    if (body < 0 || hdr + body > (long)sizeof(c->buf))
        return -1;
    if (c->got < (size_t)(hdr + body))
        return 0;
    c->ms = 0;
    ms = memmem(c->buf + hdr, (size_t)body, "\"ms\":", 5);
    if (ms) {
        c->ms = strtol(ms + 5, NULL, 10);
        if (c->ms < 0 || c->ms > MS_MAX)
            c->ms = 0;
    }
    return hdr + body;
}

static int schedule(int ep, struct conn *c);

static void answer(int ep, struct conn *c)
{
    static unsigned long id;
    char out[512], body[64];
    int bl = snprintf(body, sizeof(body), "{\"slept\":%ld}", c->ms);
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "X-Amz-Executed-Version: $LATEST\r\n"
                     "x-amzn-RequestId: 00000000-0000-4000-8000-%012lu\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     ++id % 1000000000000UL, bl, body);

    /* The answer is small: one send, or the connection is dropped. */
    if (send(c->fd, out, (size_t)n, MSG_NOSIGNAL) != n) {
        conn_close(ep, c);
        return;
    }
    if (c->got)
        schedule(ep, c); /* a request that came while this one waited */
}

/* Schedules the answer to the request at the start of c->buf, if it is complete. */
static int schedule(int ep, struct conn *c)
{
    long len = request_len(c);

    if (len < 0) {
        conn_close(ep, c);
        return -1;
    }
    if (len > 0) {
        memmove(c->buf, c->buf + len, c->got - (size_t)len);
        c->got -= (size_t)len;
        c->due = now_s() + (double)c->ms / 1e3;
        if (heap_push(c) < 0) {
            conn_close(ep, c);
            return -1;
        }
    }
    return 0;
}

/* Reads what is there; schedules an answer per complete request (one at a time). */
static void on_readable(int ep, struct conn *c)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->got, sizeof(c->buf) - c->got, 0);

        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            conn_close(ep, c);
            return;
        }
        c->got += (size_t)r;
        if (c->heap_at)
            continue; /* pipelined: read now, parse after the answer */
        if (schedule(ep, c) < 0)
            return;
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    struct epoll_event evs[256], ev;
    struct rlimit rl;
    double seconds = 600, stop_at;
    int port = 0, opt, lfd, ep, one = 1;

    while ((opt = getopt(argc, argv, "p:s:")) != -1) {
        if (opt == 'p') {
            port = atoi(optarg);
        } else if (opt == 's') {
            seconds = strtod(optarg, NULL);
        } else {
            fprintf(stderr, "usage: slowup [-p PORT] [-s SECONDS]\n");
            return 2;
        }
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ep = epoll_create1(0);
    if (lfd < 0 || ep < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
        fprintf(stderr, "slowup: cannot listen: %s\n", strerror(errno));
        return 1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("slowup listening on http://127.0.0.1:%d (one thread)\n", ntohs(sa.sin_port));
    fflush(stdout);
    stop_at = now_s() + seconds;
    for (;;) {
        double t = now_s();
        int wait_ms = 1000, n;

        while (nheap && heap[0]->due <= t) {
            struct conn *c = heap_pop();
            if (c->fd < 0) {
                free(c); /* closed while waiting */
                continue;
            }
            answer(ep, c);
        }
        if (t >= stop_at)
            break;
        if (nheap) {
            double d = (heap[0]->due - t) * 1e3;
            wait_ms = d < 0 ? 0 : (int)d + 1;
        }
        n = epoll_wait(ep, evs, 256, wait_ms);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct conn *nc = calloc(1, sizeof(*nc));
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    nc->fd = fd;
                    ev.events = EPOLLIN;
                    ev.data.ptr = nc;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            on_readable(ep, c);
        }
    }
    return 0;
}
