/*
 * main.c - lambda-gateway: configuration, handler loading, the dispatcher for the mode, the HTTP
 * server, and an orderly shutdown on SIGTERM/SIGINT (stop accepting, let in-flight calls and
 * every queued async invocation finish, then exit). A second signal exits at once.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "lambda.h"
#include "local.h"
#include "registry.h"

#ifndef LGW_VERSION
#define LGW_VERSION "0.0.0"
#endif

extern char **environ;

static void exit_now(int sig)
{
    _exit(128 + sig);
}

static void die(const char *msg)
{
    fprintf(stderr, "lambda-gateway: %s\n", msg);
}

/* Lets the gateway hold as many connections as the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static struct lgw_dispatcher *make_dispatcher(struct lgw_config *cfg, struct lgw_registry *reg,
                                              char *err, size_t errlen)
{
    struct lgw_error e;
    struct lgw_dispatcher *d = NULL;

    lgw_error_init(&e);
    if (cfg->mode == LGW_MODE_LAMBDA) {
        /* The gateway holds real credentials: without an allow-list it would be an open proxy
         * into the account, so that takes an explicit --allow-any-function. */
        struct lgw_lambda_options opt = {
            .region = cfg->region,
            .allow = (const char *const *)cfg->allow,
            .nallow = cfg->nallow,
            .allow_any = cfg->allow_any_function,
            .log = true,
            /* One lane per HTTP thread, driven by that thread's loop (http.c). */
            .lanes = lgw_server_threads(cfg),
            .driven = true,
        };
        if (!cfg->nallow && !cfg->allow_any_function) {
            snprintf(err, errlen,
                     "--mode lambda: no allow-list: list the functions callers may reach in "
                     "\"allow\" (names or * globs) in the config file, or pass "
                     "--allow-any-function to allow every function the credentials can invoke");
            return NULL;
        }
        /* The gateway's own region setting wins; else the AWS chain decides, and the faces
         * (ARNs in the Invoke API, messages) then use the region the calls are made in. */
        if (!cfg->region_set &&
            lgw_aws_region_resolve(NULL, NULL, cfg->region, sizeof(cfg->region), &e) != LGW_OK)
            goto out;
        if (cfg->allow_any_function)
            fprintf(stderr, "{\"level\":\"warn\",\"event\":\"lambda_config\",\"message\":"
                            "\"--allow-any-function: callers may invoke every function these "
                            "credentials can invoke\"}\n");
        d = lgw_lambda_new(cfg->functions, cfg->nfunctions, &opt, &e);
    } else {
        struct lgw_local_options opt = {
            .max_workers = cfg->max_workers,
            .sync_queue_max = cfg->sync_queue_max,
            .async_queue_max = cfg->async_queue_max,
            .region = cfg->region,
            .account_id = cfg->account_id,
            .serve_all_handlers = cfg->serve_all_handlers,
            .function_logs = cfg->function_logs,
        };
        d = lgw_local_new(reg, cfg->functions, cfg->nfunctions, &opt, &e);
    }
out:
    if (!d)
        snprintf(err, errlen, "%s%s", cfg->mode == LGW_MODE_LAMBDA ? "--mode lambda: " : "",
                 e.message);
    lgw_error_release(&e);
    return d;
}

/* Prints the one start-up line: where it listens and which functions it serves. */
static void announce(struct lgw_config *cfg, struct lgw_server *srv, struct lgw_dispatcher *d)
{
    json_t *fns = lgw_dispatcher_functions(d);
    const char *host = cfg->listen_host;
    bool v6 = strchr(host, ':') != NULL;
    size_t i;
    json_t *f;

    printf("lambda-gateway %s listening on http://%s%s%s:%u (%s mode), functions:", LGW_VERSION,
           v6 ? "[" : "", host, v6 ? "]" : "", srv->port, d->ops->name);
    json_array_foreach(fns, i, f)
    {
        printf("%s %s", i ? "," : "", json_string_value(f));
    }
    printf("\n");
    fflush(stdout);
    json_decref(fns);
}

int main(int argc, char **argv)
{
    struct lgw_config *cfg = lgw_config_new();
    struct lgw_registry *reg = NULL;
    struct lgw_dispatcher *disp = NULL;
    struct lgw_server srv;
    bool server_started = false;
    char err[1024] = "";
    sigset_t sigs;
    int sig = 0, rc = 1;
    long left;

    memset(&srv, 0, sizeof(srv));
    if (!cfg) {
        die("out of memory");
        return 1;
    }
    if (lgw_config_load(cfg, argc, argv, environ, err, sizeof(err)) < 0) {
        die(err);
        goto out;
    }
    if (cfg->show_help) {
        fputs(lgw_config_usage(), stdout);
        rc = 0;
        goto out;
    }
    if (cfg->show_version) {
        printf("lambda-gateway %s\n", LGW_VERSION);
        rc = 0;
        goto out;
    }
    reg = lgw_registry_new();
    if (!reg || lgw_registry_add_table(reg, lgw_builtin_handlers, "built-in handlers", err,
                                       sizeof(err)) < 0) {
        die(reg ? err : "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg->nhandler_libs; i++) {
        if (lgw_registry_load_plugin(reg, cfg->handler_libs[i], err, sizeof(err)) < 0) {
            die(err);
            goto out;
        }
    }
    /* Signals are taken by sigwait below; every thread started from here on inherits the
     * mask, so none of them is interrupted by SIGTERM. SIGPIPE never kills the process. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    disp = make_dispatcher(cfg, reg, err, sizeof(err));
    if (!disp) {
        die(err);
        goto out;
    }
    if (lgw_server_start(&srv, cfg, disp, err, sizeof(err)) < 0) {
        die(err);
        goto out;
    }
    server_started = true;
    announce(cfg, &srv, disp);

    sigwait(&sigs, &sig);
    fprintf(stderr,
            "{\"level\":\"info\",\"event\":\"shutdown\",\"signal\":\"%s\",\"message\":\"draining: "
            "in-flight calls and queued async invocations finish first\"}\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* A second signal means "now". A handler that exits, not SIG_DFL: as PID 1 in a container
     * the kernel ignores a default-action SIGTERM. */
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = exit_now;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);

    lgw_server_quiesce(&srv);
    lgw_dispatcher_drain(disp);
    left = lgw_server_wait_idle(&srv, 5000);
    if (left > 0)
        fprintf(stderr,
                "{\"level\":\"warn\",\"event\":\"shutdown\",\"message\":\"%ld requests still "
                "open after 5 s; closing them\"}\n",
                left);
    rc = 0;
out:
    if (server_started)
        lgw_server_stop(&srv);
    lgw_dispatcher_free(disp);
    lgw_registry_free(reg);
    lgw_config_free(cfg);
    return rc;
}
