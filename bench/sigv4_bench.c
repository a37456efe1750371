/*
 * sigv4_bench.c - signatures per second for a Lambda Invoke request with a 1 KiB body, one
 * thread, key cache on (what the lambda dispatcher does). The project target is >= 300,000/s.
 *
 * Usage: sigv4_bench [seconds]   (default 2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sigv4.h"

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    static char body[1024];
    const struct lgw_sigv4_header headers[] = {
        {"Host", "lambda.us-east-1.amazonaws.com"},
        {"Content-Type", "application/json"},
        {"X-Amz-Invocation-Type", "RequestResponse"},
    };
    struct lgw_sigv4_request req = {"POST",
                                    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A"
                                    "123456789012%3Afunction%3Aorders/invocations",
                                    NULL,
                                    headers,
                                    sizeof(headers) / sizeof(headers[0]),
                                    body,
                                    sizeof(body),
                                    NULL};
    struct lgw_sigv4_config cfg = {
        {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL},
        "us-east-1",
        "lambda",
        lgw_sigv4_options_default(),
        NULL};
    struct lgw_sigv4_result res;
    struct lgw_error err;
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    double start, elapsed;
    unsigned long n = 0;
    time_t when = time(NULL);
    int rc = 1;

    lgw_error_init(&err);
    memset(body, 'x', sizeof(body));
    body[0] = '{';
    body[sizeof(body) - 1] = '}';
    if (seconds <= 0)
        seconds = 2.0;
    cfg.cache = lgw_sigv4_key_cache_new(0);
    if (!cfg.cache) {
        fprintf(stderr, "sigv4_bench: out of memory\n");
        goto out;
    }
    start = now_seconds();
    do {
        /* Check the clock every 1024 signatures so the clock is not what is measured. */
        for (int i = 0; i < 1024; i++, n++) {
            if (lgw_sigv4_sign(&cfg, &req, when, &res, NULL, &err) != LGW_OK) {
                fprintf(stderr, "sigv4_bench: %s\n", err.message);
                goto out;
            }
        }
        elapsed = now_seconds() - start;
    } while (elapsed < seconds);
    printf("sigv4_bench: %lu signatures in %.2f s: %.0f signatures/s (1 KiB body, key cache, "
           "1 thread)\n",
           n, elapsed, (double)n / elapsed);
    rc = 0;
out:
    lgw_sigv4_key_cache_free(cfg.cache);
    lgw_error_release(&err);
    return rc;
}
