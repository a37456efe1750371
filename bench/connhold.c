/*
 * connhold.c - holds many keep-alive connections to a server at once, keeps every one of them
 * busy with requests for a while, and samples the server's resident memory meanwhile (the
 * memory scenario of bench/run.sh; wrk cannot say whether every connection was served).
 *
 * Usage: connhold -p PORT [-c CONNS] [-s SECONDS] [-P SERVER_PID] [-u PATH] [-b BODY]
 *
 * One thread, one epoll set: each connection sends a POST, reads the whole answer (Content-Length
 * framing), and sends the next one on the same connection until the time is up. It prints one
 * line "CONNHOLD {json}" with the counts and the memory samples (KiB, from /proc/PID/status):
 * before, once every connection has been answered, the peak while all are busy, and after the
 * busy part while all are held open, idle, for a second. Exit status 0 when every connection
 * opened, every answer was 200, and every connection was still open at the end.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define RESP_MAX 8192 /* the echo answers are a few hundred bytes; more is an error */
#define REQ_MAX 1024

enum phase { P_CONNECTING, P_SENDING, P_READING, P_IDLE, P_DEAD };

struct conn {
    int fd;
    enum phase phase;
    size_t sent;
    size_t got;
    unsigned long served;
    char buf[RESP_MAX];
};

struct stats {
    unsigned long requests, ok, throttled, bad_status, conn_errors, closed, connect_failed;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS of pid in KiB, or -1. */
static long rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* Returns the length of a complete answer at the start of c->buf, 0 if more is needed, or -1 if
 * it is malformed. *status gets the status code. */
static long answer_len(const struct conn *c, int *status)
{
    const char *end, *cl;
    long hdr, body;

    if (c->got < 12)
        return 0;
    end = memmem(c->buf, c->got, "\r\n\r\n", 4);
    if (!end)
        return c->got >= sizeof(c->buf) ? -1 : 0;
    hdr = (long)(end - c->buf) + 4;
    if (strncmp(c->buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    *status = atoi(c->buf + 9);
    cl = memmem(c->buf, (size_t)hdr, "\r\nContent-Length: ", 18);
    if (!cl)
        return -1;
    body = strtol(cl + 18, NULL, 10);
    if (body < 0 || hdr + body > (long)sizeof(c->buf))
        return -1;
    return c->got >= (size_t)(hdr + body) ? hdr + body : 0;
}

static int want(int ep, struct conn *c, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void kill_conn(int ep, struct conn *c, unsigned long *counter, unsigned *alive)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->phase = P_DEAD;
    (*counter)++;
    (*alive)--;
}

static void usage(void)
{
    fprintf(stderr, "usage: connhold -p PORT [-c CONNS] [-s SECONDS] [-P SERVER_PID] [-u PATH] "
                    "[-b BODY]\n");
}

int main(int argc, char **argv)
{
    const char *path = "/invoke/echo", *body = "{\"orderId\":7,\"item\":\"book\"}";
    unsigned nconns = 10000, alive = 0;
    double seconds = 5, t_start, t_all_served = -1, t_end, t_deadline;
    long pid = 0, rss_before, rss_all = -1, rss_peak = -1, rss_after, rss_idle;
    int port = 0, ep = -1, rc = 2, opt, reqlen;
    char req[REQ_MAX];
    struct conn *conns = NULL;
    struct epoll_event *evs = NULL;
    struct stats st = {0};
    struct sockaddr_in sa;
    struct rlimit rl;
    unsigned served_once = 0;
    unsigned long min_served = 0;
    double next_sample;
    bool stopping = false;

    while ((opt = getopt(argc, argv, "p:c:s:P:u:b:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            nconns = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            seconds = strtod(optarg, NULL);
            break;
        case 'P':
            pid = strtol(optarg, NULL, 10);
            break;
        case 'u':
            path = optarg;
            break;
        case 'b':
            body = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || nconns == 0 || nconns > 100000 || seconds <= 0) {
        usage();
        return 2;
    }
    reqlen = snprintf(req, sizeof(req),
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                      "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      path, port, strlen(body), body);
    if (reqlen <= 0 || (size_t)reqlen >= sizeof(req)) {
        fprintf(stderr, "connhold: request too long\n");
        return 2;
    }
    /* Each connection is one descriptor here. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nconns + 16) {
        fprintf(stderr, "connhold: the file limit (%lu) is below %u connections\n",
                (unsigned long)rl.rlim_cur, nconns);
        return 2;
    }
    conns = calloc(nconns, sizeof(*conns));
    evs = calloc(1024, sizeof(*evs));
    ep = epoll_create1(0);
    if (!conns || !evs || ep < 0) {
        fprintf(stderr, "connhold: out of memory or epoll: %s\n", strerror(errno));
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    rss_before = rss_kib(pid);
    t_start = now_s();
    for (unsigned i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        int one = 1;

        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (c->fd < 0) {
            c->phase = P_DEAD;
            st.connect_failed++;
            continue;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
            close(c->fd);
            c->fd = -1;
            c->phase = P_DEAD;
            st.connect_failed++;
            continue;
        }
        c->phase = P_CONNECTING;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        alive++;
    }
    /* The whole run, including opening every connection, is bounded: connecting gets at most 30
     * seconds more than the steady part. */
    t_deadline = t_start + 30 + seconds;
    t_end = -1;
    next_sample = now_s();
    while (alive > 0) {
        double t = now_s();
        int n;

        if (t >= next_sample) {
            long kib = rss_kib(pid);
            if (kib > rss_peak)
                rss_peak = kib;
            next_sample = t + 0.05;
        }
        if (t_end < 0 && served_once == nconns - st.connect_failed) {
            /* Every connection is open and has been answered: the steady part starts now. */
            t_all_served = t;
            rss_all = rss_kib(pid);
            t_end = t + seconds;
        }
        if (!stopping && (t >= t_deadline || (t_end > 0 && t >= t_end)))
            stopping = true; /* finish the requests in flight, send no more */
        if (stopping) {
            bool busy = false;
            for (unsigned i = 0; i < nconns && !busy; i++)
                busy = conns[i].phase == P_READING || conns[i].phase == P_SENDING;
            if (!busy || t >= t_deadline + 5)
                break;
        }
        n = epoll_wait(ep, evs, 1024, 50);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;

            if (c->phase == P_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    kill_conn(ep, c, &st.connect_failed, &alive);
                    continue;
                }
                c->phase = P_SENDING;
                c->sent = 0;
            }
            if (c->phase == P_SENDING) {
                ssize_t w = send(c->fd, req + c->sent, (size_t)reqlen - c->sent, MSG_NOSIGNAL);
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    continue;
                if (w <= 0) {
                    kill_conn(ep, c, &st.conn_errors, &alive);
                    continue;
                }
                c->sent += (size_t)w;
                if (c->sent == (size_t)reqlen) {
                    c->phase = P_READING;
                    c->got = 0;
                    want(ep, c, EPOLLIN);
                }
                continue;
            }
            if (c->phase == P_READING) {
                ssize_t r = recv(c->fd, c->buf + c->got, sizeof(c->buf) - c->got, 0);
                long alen;
                int status = 0;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    continue;
                if (r <= 0) {
                    kill_conn(ep, c, r == 0 ? &st.closed : &st.conn_errors, &alive);
                    continue;
                }
                c->got += (size_t)r;
                alen = answer_len(c, &status);
                if (alen == 0)
                    continue;
                if (alen < 0) {
                    kill_conn(ep, c, &st.conn_errors, &alive);
                    continue;
                }
                st.requests++;
                if (status == 200) {
                    st.ok++;
                    if (c->served++ == 0)
                        served_once++;
                } else if (status == 429) {
                    st.throttled++;
                } else {
                    st.bad_status++;
                }
                if (stopping) {
                    /* Parked, still open, until the end. */
                    c->phase = P_IDLE;
                    want(ep, c, 0);
                    continue;
                }
                c->phase = P_SENDING;
                c->sent = 0;
                want(ep, c, EPOLLOUT);
            }
        }
    }
    rss_after = rss_kib(pid);
    {
        double t = now_s();
        double steady = t_all_served > 0 ? t - t_all_served : 0;
        unsigned open_now = 0;
        struct timespec pause = {1, 0};

        /* Then every connection is held open, idle, for a second: still open afterwards? */
        nanosleep(&pause, NULL);
        rss_idle = rss_kib(pid);
        min_served = (unsigned long)-1;
        for (unsigned i = 0; i < nconns; i++) {
            char b;
            if (conns[i].served < min_served)
                min_served = conns[i].served;
            if (conns[i].phase != P_DEAD && recv(conns[i].fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
                (errno == EAGAIN || errno == EWOULDBLOCK))
                open_now++;
        }
        printf("CONNHOLD {\"connections\":%u,\"opened\":%lu,\"served_once\":%u,\"open_at_end\":%u,"
               "\"min_served_per_connection\":%lu,\"requests\":%lu,\"ok\":%lu,"
               "\"throttled_429\":%lu,\"bad_status\":%lu,\"connect_failed\":%lu,"
               "\"conn_errors\":%lu,\"closed\":%lu,"
               "\"seconds_to_all_served\":%.3f,\"steady_seconds\":%.3f,\"rps\":%.1f,"
               "\"rss_kib_before\":%ld,\"rss_kib_all_served\":%ld,\"rss_kib_peak\":%ld,"
               "\"rss_kib_after\":%ld,\"rss_kib_idle_held\":%ld}\n",
               nconns, (unsigned long)nconns - st.connect_failed, served_once, open_now, min_served,
               st.requests, st.ok, st.throttled, st.bad_status, st.connect_failed, st.conn_errors,
               st.closed, t_all_served > 0 ? t_all_served - t_start : -1.0, steady,
               t - t_start > 0 ? (double)st.requests / (t - t_start) : 0.0, rss_before, rss_all,
               rss_peak, rss_after, rss_idle);
        fflush(stdout);
        rc = served_once == nconns && st.ok == st.requests && st.conn_errors == 0 &&
                     st.closed == 0 && open_now == nconns
                 ? 0
                 : 1;
    }
out:
    for (unsigned i = 0; conns && i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    if (ep >= 0)
        close(ep);
    free(conns);
    free(evs);
    return rc;
}
