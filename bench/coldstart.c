/*
 * coldstart.c - cold start of the gateway: the time from fork+exec to the first successful
 * (200) answer of POST /invoke/echo, over many runs (the cold start scenario of bench/run.sh).
 *
 * Usage: coldstart [-n RUNS] -- GATEWAY [ARGS...]
 *
 * Each run starts GATEWAY ARGS (which must include --listen 127.0.0.1:0), reads the port from its
 * first stdout line ("... listening on http://127.0.0.1:PORT ..."), sends the request (again
 * at once whenever the connection is refused or the answer is not 200), then stops the gateway
 * with SIGTERM and reaps it. The clock starts before fork(), so the figure includes fork, exec,
 * dynamic linking, start-up and one request. Prints one line "COLDSTART {json}" (milliseconds).
 * Each run is bounded by 5 seconds; exit status 0 when every run succeeded.
 */
#define _DEFAULT_SOURCE /* usleep */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_LIMIT_S 5.0
#define RUNS_MAX 10000

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of sorted v[n], nearest rank. */
static double quantile(const double *v, int n, double q)
{
    int i = (int)(q * n + 0.5) - 1;

    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return v[i];
}

/* Reads the first line of fd into buf before the deadline; returns 0 on success. */
static int read_line(int fd, char *buf, size_t cap, double deadline)
{
    size_t got = 0;

    while (got + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        double left = deadline - now_ms();
        ssize_t r;

        if (left <= 0 || poll(&p, 1, (int)left + 1) <= 0)
            return -1;
        r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = '\0';
        if (memchr(buf, '\n', got))
            return 0;
    }
    return -1;
}

/* One POST /invoke/echo; returns the status code, or -1 when it could not be sent or read. */
static int post_echo(int port, double deadline)
{
    static const char body[] = "{\"orderId\":7}";
    char req[256], resp[1024];
    struct sockaddr_in sa;
    size_t got = 0;
    int fd, n, status = -1;

    n = snprintf(req, sizeof(req),
                 "POST /invoke/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 port, sizeof(body) - 1, body);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto out;
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    while (got < 12) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        double left = deadline - now_ms();
        ssize_t r;

        if (left <= 0 || poll(&p, 1, (int)left + 1) <= 0)
            goto out;
        r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    resp[got] = '\0';
    if (strncmp(resp, "HTTP/1.1 ", 9) == 0)
        status = atoi(resp + 9);
out:
    close(fd);
    return status;
}

/* One cold start; returns 0 and the times in ms (to the port line, to the first 200). */
static int one_run(char **argv, double *to_port, double *to_ok, int *attempts)
{
    int pipefd[2], port = 0, rc = -1, status;
    double t0, deadline;
    char line[512];
    const char *at;
    pid_t pid;

    if (pipe(pipefd) < 0)
        return -1;
    t0 = now_ms();
    deadline = t0 + RUN_LIMIT_S * 1e3;
    pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(pipefd[1], STDOUT_FILENO);
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    if (read_line(pipefd[0], line, sizeof(line), deadline) < 0) {
        fprintf(stderr, "coldstart: no start-up line from %s\n", argv[0]);
        goto out;
    }
    *to_port = now_ms() - t0;
    at = strstr(line, "http://");
    at = at ? strchr(at + 7, ' ') : NULL;
    while (at && at > line && at[-1] != ':')
        at--;
    port = at ? atoi(at) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "coldstart: no port in: %s", line);
        goto out;
    }
    *attempts = 0;
    while (now_ms() < deadline) {
        (*attempts)++;
        if (post_echo(port, deadline) == 200) {
            *to_ok = now_ms() - t0;
            rc = 0;
            break;
        }
    }
    if (rc < 0)
        fprintf(stderr, "coldstart: no 200 from /invoke/echo within %.0f s\n", RUN_LIMIT_S);
out:
    close(pipefd[0]);
    kill(pid, SIGTERM);
    for (double until = now_ms() + RUN_LIMIT_S * 1e3;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            break;
        if (now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            rc = -1;
            break;
        }
        usleep(1000);
    }
    return rc;
}

int main(int argc, char **argv)
{
    static double ok_ms[RUNS_MAX], port_ms[RUNS_MAX];
    int runs = 50, opt, done = 0, failed = 0, max_attempts = 0;

    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt == 'n') {
            runs = atoi(optarg);
        } else {
            fprintf(stderr, "usage: coldstart [-n RUNS] -- GATEWAY [ARGS...]\n");
            return 2;
        }
    }
    if (optind >= argc || runs < 1 || runs > RUNS_MAX) {
        fprintf(stderr, "usage: coldstart [-n RUNS] -- GATEWAY [ARGS...]\n");
        return 2;
    }
    for (int i = 0; i < runs; i++) {
        int attempts = 0;
        if (one_run(argv + optind, &port_ms[done], &ok_ms[done], &attempts) == 0) {
            done++;
            if (attempts > max_attempts)
                max_attempts = attempts;
        } else {
            failed++;
        }
    }
    if (done == 0) {
        printf("COLDSTART {\"runs\":%d,\"ok\":0,\"failed\":%d}\n", runs, failed);
        return 1;
    }
    qsort(ok_ms, (size_t)done, sizeof(double), cmp_double);
    qsort(port_ms, (size_t)done, sizeof(double), cmp_double);
    printf("COLDSTART {\"runs\":%d,\"ok\":%d,\"failed\":%d,\"median_ms\":%.3f,\"p10_ms\":%.3f,"
           "\"p90_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f,\"median_to_port_line_ms\":%.3f,"
           "\"max_attempts\":%d}\n",
           runs, done, failed, quantile(ok_ms, done, 0.5), quantile(ok_ms, done, 0.1),
           quantile(ok_ms, done, 0.9), ok_ms[0], ok_ms[done - 1], quantile(port_ms, done, 0.5),
           max_attempts);
    return failed ? 1 : 0;
}
