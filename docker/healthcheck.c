/*
 * healthcheck.c - lgw-healthcheck: the Docker HEALTHCHECK probe of the gateway image.
 *
 * Asks GET /healthz of the gateway in the same container and exits 0 on a 200 answer, 1
 * otherwise (Docker's "healthy" / "unhealthy"), with the reason on stderr, which Docker keeps in
 * the health log. Why a probe of our own rather than curl: it needs no package in the runtime
 * image, and it reads LGW_LISTEN, so the check follows the port the gateway was told to use.
 *
 * Usage: lgw-healthcheck [HOST:PORT]   (default: $LGW_LISTEN, else 127.0.0.1:8080). A wildcard
 * host (0.0.0.0, [::] or empty) is probed on the loopback address of its family.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define PROBE_TIMEOUT_S 2
#define ADDR_MAX 256

static const char request[] = "GET /healthz HTTP/1.0\r\nHost: localhost\r\nUser-Agent: "
                              "lgw-healthcheck\r\nConnection: close\r\n\r\n";

/* Splits HOST:PORT or [V6]:PORT into host and port (both in buf); 0 on success. */
static int split_listen(char *buf, const char **host, const char **port)
{
    char *colon = strrchr(buf, ':');

    if (!colon || colon[1] == '\0')
        return -1;
    *colon = '\0';
    *port = colon + 1;
    *host = buf;
    if (buf[0] == '[') {
        size_t n = strlen(buf);

        if (n < 2 || buf[n - 1] != ']')
            return -1;
        buf[n - 1] = '\0';
        *host = buf + 1;
        if (strcmp(*host, "::") == 0)
            *host = "::1";
    } else if (**host == '\0' || strcmp(*host, "0.0.0.0") == 0) {
        *host = "127.0.0.1";
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *target = argc > 1 ? argv[1] : getenv("LGW_LISTEN");
    struct timeval tv = {.tv_sec = PROBE_TIMEOUT_S};
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char buf[ADDR_MAX], line[64];
    const char *host, *port;
    size_t got = 0;
    ssize_t n;
    int fd = -1, rc = 1, gai;

    if (!target || !*target)
        target = "127.0.0.1:8080";
    if (snprintf(buf, sizeof(buf), "%s", target) >= (int)sizeof(buf) ||
        split_listen(buf, &host, &port) < 0) {
        fprintf(stderr, "lgw-healthcheck: %.100s: must be HOST:PORT\n", target);
        return 1;
    }
    gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "lgw-healthcheck: %s:%s: %s\n", host, port, gai_strerror(gai));
        return 1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    /* On Linux SO_SNDTIMEO bounds connect() too, so no step can hang past the timeout. */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(request) - 1) {
        perror("lgw-healthcheck: connect/send");
        goto out;
    }
    /* Only the status line matters: "HTTP/1.x 200 ...". */
    while (got < sizeof(line) - 1 && (n = recv(fd, line + got, sizeof(line) - 1 - got, 0)) > 0)
        got += (size_t)n;
    line[got] = '\0';
    if (strncmp(line, "HTTP/1.", 7) == 0 && strncmp(line + 8, " 200", 4) == 0 &&
        (line[12] == ' ' || line[12] == '\r')) {
        printf("healthy\n");
        rc = 0;
    } else {
        line[strcspn(line, "\r\n")] = '\0';
        fprintf(stderr, "lgw-healthcheck: GET /healthz on %s:%s answered \"%s\"\n", host, port,
                line);
    }
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}
