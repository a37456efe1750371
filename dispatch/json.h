/*
 * json.h - JSON text out of a jansson value, with numbers written as the shortest text that reads
 * back to the same double (0.1 stays 0.1), as Lambda's runtimes (Python's json, JavaScript's
 * JSON.stringify) write them. jansson 2.14 writes 17 significant digits (0.10000000000000001),
 * which a caller comparing local and Lambda answers would notice.
 */
#ifndef LGW_JSON_H
#define LGW_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Compact JSON text of any value, malloc'd and NUL-terminated; *len gets its length (may be
 * NULL). NULL when out of memory or nesting deeper than LGW_JSON_MAX_DEPTH. */
#define LGW_JSON_MAX_DEPTH 512
char *lgw_json_dumps(const json_t *v, size_t *len);

#endif
