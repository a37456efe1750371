/*
 * context.h - host-side helpers around the execution context: the notification sink that
 * notify(error) reports to (pluggable; the default writes one JSON line to stderr).
 */
#ifndef LGW_CONTEXT_H
#define LGW_CONTEXT_H

#include "lgw_handler.h"

/* A log line or notice longer than this is cut. */
#define LGW_LOG_LINE_MAX 4096

struct lgw_notice {
    const char *error_type;
    const char *message;
    const char *function;   /* may be NULL */
    const char *request_id; /* may be NULL */
};

typedef void (*lgw_notice_sink_fn)(const struct lgw_notice *notice, void *arg);

/* Replaces the process-wide sink; NULL restores the default. The sink may be called from many
 * threads at once and must not call lgw_notice_sink_set itself. */
void lgw_notice_sink_set(lgw_notice_sink_fn fn, void *arg);
/* Sends a notice to the current sink. */
void lgw_notice_emit(const struct lgw_notice *notice);

#endif
