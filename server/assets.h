/*
 * assets.h - the files the gateway serves from memory: the OpenAPI document (GET /openapi.json,
 * /openapi.yaml) and the API reference page (GET /docs, /docs/{asset}). The table is generated
 * at build time by openapi/gen.py (build/gen/lgw_assets.c) from openapi/openapi.yaml, the page's
 * own files in openapi/ui/ and the swagger-ui-dist npm package, so nothing is read from disk or
 * the network at run time, and the document is written once, in YAML.
 */
#ifndef LGW_ASSETS_H
#define LGW_ASSETS_H

#include <stddef.h>

struct lgw_asset {
    const char *path;         /* "/openapi.json", "/docs", "/docs/swagger-ui.css", ... */
    const char *content_type; /* the Content-Type header */
    const unsigned char *data;
    size_t len;
    const char *etag; /* a strong ETag, quotes included: a hash of data */
};

/* Static data: never freed, never written. */
extern const struct lgw_asset lgw_assets[];
extern const size_t lgw_asset_count;

#endif
