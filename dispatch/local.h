/*
 * local.h - the local dispatcher: runs registered C handlers in-process, on a pool of worker
 * threads that grows on demand, with Lambda's per-function timeout and reserved concurrency, and
 * a bounded queue for Event (async) invocations that is drained, not dropped, on shutdown.
 */
#ifndef LGW_LOCAL_H
#define LGW_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

#include "dispatcher.h"
#include "functions.h"
#include "registry.h"

#define LGW_DEFAULT_MAX_WORKERS 64u
#define LGW_DEFAULT_SYNC_QUEUE_MAX 1024u
#define LGW_DEFAULT_ASYNC_QUEUE_MAX 1000u
#define LGW_DEFAULT_REGION "us-east-1"
#define LGW_DEFAULT_ACCOUNT_ID "000000000000"

struct lgw_local_options {
    unsigned max_workers;     /* 0 = LGW_DEFAULT_MAX_WORKERS */
    unsigned sync_queue_max;  /* calls waiting for a worker; past it 429. 0 = default */
    unsigned async_queue_max; /* Event invocations waiting; past it 429. 0 = default */
    const char *region;       /* in ARNs and messages; NULL = LGW_DEFAULT_REGION */
    const char *account_id;   /* likewise; NULL = LGW_DEFAULT_ACCOUNT_ID */
    bool serve_all_handlers;  /* also serve every registry handler not configured, by its name */
    bool function_logs;       /* copy function log lines to stderr */
};

/*
 * Creates a local dispatcher serving the configured functions (copied) and, when
 * serve_all_handlers is set, every other handler of the registry under its own name. The
 * registry is borrowed and must outlive the dispatcher. A configured function whose handler is
 * not in the registry is LGW_EINVALID_FUNCTION (the seed's InvalidFunctionTypeError) and NULL is
 * returned.
 */
struct lgw_dispatcher *lgw_local_new(const struct lgw_registry *reg,
                                     const struct lgw_function_config *fns, size_t nfns,
                                     const struct lgw_local_options *opt, struct lgw_error *err);

#endif
