/*
 * registry.h - the handlers a gateway can run, by name: the built-in examples and those loaded
 * from plugins (shared objects exporting `lgw_handlers`, see lgw_handler.h).
 *
 * A registry is filled at start-up on one thread and only read afterwards, so lookups take no
 * lock. It knows nothing of HTTP or dispatch.
 */
#ifndef LGW_REGISTRY_H
#define LGW_REGISTRY_H

#include <stddef.h>

#include "lgw_handler.h"

struct lgw_registry;

/* The built-in examples (echo, hello, fail, sleep, config), ended by an all-zero entry. */
extern const struct lgw_handler_def lgw_builtin_handlers[];

struct lgw_registry *lgw_registry_new(void);
/* Frees the registry and closes its plugins. Accepts NULL. */
void lgw_registry_free(struct lgw_registry *r);

/*
 * Adds every entry of a table ended by an all-zero entry. A later entry with a name already
 * present replaces it (a plugin may override a built-in). Each entry is checked first: ABI
 * version, a valid function name, a non-NULL function. On a bad entry nothing is added, -1 is
 * returned and errbuf says which entry of `origin` is wrong and why (the seed's
 * InvalidFunctionTypeError). The table must outlive the registry.
 */
int lgw_registry_add_table(struct lgw_registry *r, const struct lgw_handler_def *defs,
                           const char *origin, char *errbuf, size_t errlen);

/* dlopen()s path and adds its `lgw_handlers` table; -1 with errbuf set when the file cannot be
 * loaded, exports no table or has a bad entry. */
int lgw_registry_load_plugin(struct lgw_registry *r, const char *path, char *errbuf, size_t errlen);

/* The handler named name, or NULL. Borrowed. */
const struct lgw_handler_def *lgw_registry_find(const struct lgw_registry *r, const char *name);

size_t lgw_registry_count(const struct lgw_registry *r);
/* The i-th handler (0 <= i < count), in order of registration. */
const struct lgw_handler_def *lgw_registry_at(const struct lgw_registry *r, size_t i);

#endif
