/*
 * functions.h - the configuration of one served function, shared by both dispatchers.
 */
#ifndef LGW_FUNCTIONS_H
#define LGW_FUNCTIONS_H

#include <jansson.h>

#include "dispatcher.h"

#define LGW_DEFAULT_TIMEOUT_MS 3000u /* Lambda's default timeout */
#define LGW_MAX_TIMEOUT_MS 900000u   /* Lambda's longest, 15 minutes */
#define LGW_DEFAULT_MEMORY_MB 128u
#define LGW_MAX_ALIASES 16
#define LGW_TARGET_MAX 256

struct lgw_function_config {
    char name[LGW_FUNCTION_NAME_MAX + 1];    /* the name callers use */
    char handler[LGW_FUNCTION_NAME_MAX + 1]; /* local: the handler's name ("" = name) */
    char target[LGW_TARGET_MAX + 1];         /* lambda: Lambda name or ARN ("" = name) */
    unsigned timeout_ms;                     /* 0 = LGW_DEFAULT_TIMEOUT_MS */
    unsigned memory_mb;                      /* 0 = LGW_DEFAULT_MEMORY_MB */
    unsigned concurrency;                    /* reserved concurrency; 0 = no own limit */
    json_t *environment; /* object of string values (new reference held), or NULL */
    char aliases[LGW_MAX_ALIASES][LGW_QUALIFIER_MAX + 1]; /* qualifiers besides $LATEST */
    unsigned naliases;
    int run_inline; /* -1 = as the handler's LGW_HANDLER_INLINE flag says, 0 = never, 1 = yes */
};

/* Zeroes c. */
void lgw_function_config_init(struct lgw_function_config *c);
/* Drops the environment reference. Accepts NULL. */
void lgw_function_config_release(struct lgw_function_config *c);
/* Deep copy (the environment is shared by reference). */
void lgw_function_config_copy(struct lgw_function_config *dst,
                              const struct lgw_function_config *src);

#endif
