/*
 * registry.c - handler tables by name, and plugin loading with dlopen.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

/* Bounds on what a registry holds: a plugin with more is refused rather than grown without end. */
#define REGISTRY_MAX_HANDLERS 4096
#define REGISTRY_MAX_PLUGINS 64
#define HANDLER_NAME_MAX 64

struct lgw_registry {
    const struct lgw_handler_def **defs;
    size_t count, cap;
    void *plugins[REGISTRY_MAX_PLUGINS];
    size_t nplugins;
};

struct lgw_registry *lgw_registry_new(void)
{
    return calloc(1, sizeof(struct lgw_registry));
}

void lgw_registry_free(struct lgw_registry *r)
{
    if (!r)
        return;
    free(r->defs);
    for (size_t i = 0; i < r->nplugins; i++)
        dlclose(r->plugins[i]);
    free(r);
}

static int name_ok(const char *name)
{
    size_t n = 0;

    if (!name)
        return 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        if (n >= HANDLER_NAME_MAX)
            return 0;
    }
    return n > 0;
}

static int check_entry(const struct lgw_handler_def *d, size_t i, const char *origin, char *errbuf,
                       size_t errlen)
{
    if (d->abi != LGW_HANDLER_ABI) {
        snprintf(errbuf, errlen,
                 "InvalidFunctionTypeError: %s: entry %zu has ABI 0x%x, this gateway needs 0x%x "
                 "(rebuild it against this lgw_handler.h)",
                 origin, i, (unsigned)d->abi, (unsigned)LGW_HANDLER_ABI);
        return -1;
    }
    if (!name_ok(d->name)) {
        snprintf(errbuf, errlen,
                 "InvalidFunctionTypeError: %s: entry %zu has an invalid name (1-64 of "
                 "[A-Za-z0-9_-])",
                 origin, i);
        return -1;
    }
    if (!d->fn) {
        snprintf(errbuf, errlen,
                 "InvalidFunctionTypeError: %s: handler '%s' has no function (not callable)",
                 origin, d->name);
        return -1;
    }
    return 0;
}

static int put(struct lgw_registry *r, const struct lgw_handler_def *d)
{
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->defs[i]->name, d->name) == 0) {
            r->defs[i] = d;
            return 0;
        }
    }
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        const struct lgw_handler_def **n = realloc(r->defs, cap * sizeof(*n));
        if (!n)
            return -1;
        r->defs = n;
        r->cap = cap;
    }
    r->defs[r->count++] = d;
    return 0;
}

int lgw_registry_add_table(struct lgw_registry *r, const struct lgw_handler_def *defs,
                           const char *origin, char *errbuf, size_t errlen)
{
    size_t n = 0;

    for (; defs[n].abi || defs[n].name || defs[n].fn; n++) {
        if (n >= REGISTRY_MAX_HANDLERS) {
            snprintf(errbuf, errlen,
                     "InvalidFunctionTypeError: %s: more than %d handlers, or the table is not "
                     "ended by an all-zero entry",
                     origin, REGISTRY_MAX_HANDLERS);
            return -1;
        }
        if (check_entry(&defs[n], n, origin, errbuf, errlen) < 0)
            return -1;
    }
    if (n == 0) {
        snprintf(errbuf, errlen, "InvalidFunctionTypeError: %s: the handler table is empty",
                 origin);
        return -1;
    }
    if (r->count + n > REGISTRY_MAX_HANDLERS) {
        snprintf(errbuf, errlen, "%s: more than %d handlers in all", origin, REGISTRY_MAX_HANDLERS);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (put(r, &defs[i]) < 0) {
            snprintf(errbuf, errlen, "%s: out of memory", origin);
            return -1;
        }
    }
    return 0;
}

int lgw_registry_load_plugin(struct lgw_registry *r, const char *path, char *errbuf, size_t errlen)
{
    void *h = NULL;
    const struct lgw_handler_def *defs;
    int rc = -1;

    if (r->nplugins == REGISTRY_MAX_PLUGINS) {
        snprintf(errbuf, errlen, "%s: more than %d plugins", path, REGISTRY_MAX_PLUGINS);
        goto out;
    }
    /* A bare file name would make dlopen search the library path; users mean the file. */
    if (!strchr(path, '/')) {
        snprintf(errbuf, errlen,
                 "InvalidFunctionTypeError: handler library '%s' must be a path (write ./%s)", path,
                 path);
        goto out;
    }
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(errbuf, errlen, "InvalidFunctionTypeError: cannot load handler library: %s",
                 dlerror());
        goto out;
    }
    defs = dlsym(h, "lgw_handlers");
    if (!defs) {
        snprintf(errbuf, errlen,
                 "InvalidFunctionTypeError: %s exports no 'lgw_handlers' table (see "
                 "handlers/lgw_handler.h)",
                 path);
        goto out;
    }
    if (lgw_registry_add_table(r, defs, path, errbuf, errlen) < 0)
        goto out;
    r->plugins[r->nplugins++] = h;
    h = NULL;
    rc = 0;
out:
    if (h)
        dlclose(h);
    return rc;
}

const struct lgw_handler_def *lgw_registry_find(const struct lgw_registry *r, const char *name)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->defs[i]->name, name) == 0)
            return r->defs[i];
    return NULL;
}

size_t lgw_registry_count(const struct lgw_registry *r)
{
    return r->count;
}

const struct lgw_handler_def *lgw_registry_at(const struct lgw_registry *r, size_t i)
{
    return i < r->count ? r->defs[i] : NULL;
}
