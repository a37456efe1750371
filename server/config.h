/*
 * config.h - the gateway's configuration: defaults < config file (--config, JSON) < LGW_*
 * environment < command-line flags. A bad or unknown setting stops start-up with one line naming
 * the setting and the problem; nothing is silently defaulted.
 */
#ifndef LGW_CONFIG_H
#define LGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "functions.h"

#define LGW_CONFIG_MAX_FUNCTIONS 1024
#define LGW_CONFIG_MAX_HANDLER_LIBS 64
#define LGW_CONFIG_MAX_ROUTES 256
#define LGW_CONFIG_MAX_KEYS 16
#define LGW_CONFIG_FILE_MAX (1024 * 1024)
#define LGW_PATH_MAX 1024

enum lgw_mode { LGW_MODE_LOCAL = 0, LGW_MODE_LAMBDA };

/* An API Gateway-style route (handler routes face). */
struct lgw_route_config {
    char method[16]; /* GET, POST, ..., or ANY */
    char path[LGW_PATH_MAX];
    char function[LGW_FUNCTION_NAME_MAX + 1];
    int payload_version; /* 2 (HTTP API 2.0, default) or 1 (REST 1.0) */
};

/* An access key the Invoke API face accepts when the inbound SigV4 check is on. */
struct lgw_access_key {
    char id[129];
    char secret[129];
};

struct lgw_config {
    char listen_host[256];
    unsigned listen_port;
    enum lgw_mode mode;
    char config_file[LGW_PATH_MAX];
    char handler_libs[LGW_CONFIG_MAX_HANDLER_LIBS][LGW_PATH_MAX];
    size_t nhandler_libs;
    char region[32];
    bool region_set; /* region came from the file or LGW_REGION (lambda mode: wins over AWS_*) */
    char account_id[16];
    unsigned max_workers;
    unsigned sync_queue_max;
    unsigned async_queue_max;
    unsigned http_threads; /* libmicrohttpd threads; 0 = one per CPU */
    unsigned max_connections;
    unsigned connection_timeout_s;
    /* libmicrohttpd's memory per connection: request line and headers, response headers. Its
     * default, 32 KiB, is touched whole by every connection: 10,000 keep-alive connections
     * would hold 390 MiB. 6 KiB holds about 5 KB of request headers. */
    unsigned connection_memory;
    bool access_log;
    bool function_logs;
    bool serve_all_handlers;               /* serve every loaded handler under its own name */
    bool allow_any_function;               /* lambda mode without an allow-list */
    char *allow[LGW_CONFIG_MAX_FUNCTIONS]; /* allow-list patterns (exact or * globs), owned */
    size_t nallow;
    struct lgw_function_config functions[LGW_CONFIG_MAX_FUNCTIONS];
    size_t nfunctions;
    struct lgw_route_config routes[LGW_CONFIG_MAX_ROUTES];
    size_t nroutes;
    bool routes_configured; /* "routes" present (even empty): no default /hello route */
    struct lgw_access_key keys[LGW_CONFIG_MAX_KEYS];
    size_t nkeys;
    bool show_help, show_version;
};

/* Allocates a configuration with the defaults. Free with lgw_config_free(). */
struct lgw_config *lgw_config_new(void);
/* Frees c, wiping secrets. Accepts NULL. */
void lgw_config_free(struct lgw_config *c);

/*
 * Fills c from the config file, the environment (envp: NULL-terminated "K=V" strings, usually
 * `environ`) and argv, in that order of increasing precedence. Returns 0, or -1 with one line in
 * err naming the setting and the problem.
 */
int lgw_config_load(struct lgw_config *c, int argc, char **argv, char **envp, char *err,
                    size_t errlen);

/* Parses a JSON config document (the file's contents) into c; origin names it in errors. */
int lgw_config_parse_json(struct lgw_config *c, const char *text, size_t len, const char *origin,
                          char *err, size_t errlen);

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT". */
int lgw_config_parse_listen(const char *s, char *host, size_t hostlen, unsigned *port);

/* Looks a configured function up by name; NULL if absent. */
const struct lgw_function_config *lgw_config_function(const struct lgw_config *c, const char *name);

/* The --help text. */
const char *lgw_config_usage(void);

#endif
