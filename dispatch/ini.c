/*
 * ini.c - the AWS shared-file reader (see ini.h for the accepted format).
 *
 * The parsed file is a flat list of (section, key, sub-key, value) rows searched from the end,
 * so a later duplicate wins without any merging step. Shared files are small (a few profiles),
 * so linear lookups cost nothing worth an index.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "ini.h"

struct ini_row {
    char *section;
    char *key;   /* NULL: a row that only records that the section exists */
    char *sub;   /* NULL unless a nested sub-key */
    char *value; /* NULL only for section rows */
};

struct lgw_ini {
    struct ini_row *rows;
    size_t n, cap;
};

static void wipe_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void lgw_ini_free(struct lgw_ini *ini)
{
    if (!ini)
        return;
    for (size_t i = 0; i < ini->n; i++) {
        wipe_free(ini->rows[i].section);
        wipe_free(ini->rows[i].key);
        wipe_free(ini->rows[i].sub);
        wipe_free(ini->rows[i].value);
    }
    if (ini->rows)
        OPENSSL_cleanse(ini->rows, ini->cap * sizeof(*ini->rows));
    free(ini->rows);
    free(ini);
}

/* A copy of [s, s+len), or NULL when out of memory. */
static char *dup_range(const char *s, size_t len)
{
    char *d = malloc(len + 1);

    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)(*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* Adds a row; copies every string. Returns false when out of memory (the ini is unchanged). */
static bool add_row(struct lgw_ini *ini, const char *section, const char *key, size_t key_len,
                    const char *sub, size_t sub_len, const char *value, size_t value_len)
{
    struct ini_row r = {0};

    if (ini->n == ini->cap) {
        size_t ncap = ini->cap ? ini->cap * 2 : 16;
        struct ini_row *nrows = calloc(ncap, sizeof(*nrows));

        if (!nrows)
            return false;
        if (ini->n) {
            memcpy(nrows, ini->rows, ini->n * sizeof(*nrows));
            OPENSSL_cleanse(ini->rows, ini->cap * sizeof(*ini->rows));
        }
        free(ini->rows);
        ini->rows = nrows;
        ini->cap = ncap;
    }
    r.section = dup_range(section, strlen(section));
    if (!r.section)
        goto fail;
    if (key) {
        r.key = dup_range(key, key_len);
        r.value = dup_range(value, value_len);
        if (!r.key || !r.value)
            goto fail;
        for (char *p = r.key; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    if (sub) {
        r.sub = dup_range(sub, sub_len);
        if (!r.sub)
            goto fail;
        for (char *p = r.sub; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    ini->rows[ini->n++] = r;
    return true;
fail:
    wipe_free(r.section);
    wipe_free(r.key);
    wipe_free(r.sub);
    wipe_free(r.value);
    return false;
}

/* Splits "key = value" / "key: value" at the first delimiter; false when there is none. */
static bool split_kv(const char *s, size_t len, const char **k, size_t *klen, const char **v,
                     size_t *vlen)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (s[i] == '=' || s[i] == ':')
            break;
    if (i == len)
        return false;
    *k = s;
    *klen = i;
    trim(k, klen);
    *v = s + i + 1;
    *vlen = len - i - 1;
    trim(v, vlen);
    return *klen > 0;
}

/* "[ profile   dev ]" -> "profile dev": whitespace runs collapse, as botocore splits on them. */
static char *section_name(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t o = 0;
    bool space = false;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (isspace((unsigned char)s[i])) {
            space = o > 0;
            continue;
        }
        if (space)
            out[o++] = ' ';
        space = false;
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

enum lgw_errc lgw_ini_parse(const char *text, size_t len, const char *name, struct lgw_ini **out,
                            struct lgw_error *err)
{
    struct lgw_ini *ini = NULL;
    char *section = NULL;
    const char *parent = NULL; /* the last top-level key of the section, for nested sub-keys */
    size_t parent_len = 0;
    size_t parent_indent = 0;
    bool parent_nested = false; /* its value was empty: indented lines are sub-keys */
    size_t lineno = 0;
    size_t pos = 0;
    enum lgw_errc rc = LGW_OK;

    *out = NULL;
    if (!name)
        name = "(config text)";
    if (len > LGW_INI_MAX_BYTES) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: larger than %u bytes", name, LGW_INI_MAX_BYTES);
        goto fail;
    }
    ini = calloc(1, sizeof(*ini));
    if (!ini)
        goto oom;

    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        size_t indent = 0;
        const char *s;
        size_t slen;

        pos += line_len + (nl ? 1 : 0);
        lineno++;
        if (memchr(line, '\0', line_len)) {
            rc = lgw_error_set(err, LGW_EINTERNAL, "%s: line %zu: NUL byte", name, lineno);
            goto fail;
        }
        while (indent < line_len && (line[indent] == ' ' || line[indent] == '\t'))
            indent++;
        s = line;
        slen = line_len;
        trim(&s, &slen);
        if (slen == 0 || s[0] == '#' || s[0] == ';')
            continue;

        if (parent && indent > parent_indent) {
            const char *k, *v;
            size_t klen, vlen;

            /* A continuation of a non-empty value is a RawConfigParser multi-line value: no
             * setting this project reads uses one, so it is skipped rather than rejected. */
            if (!parent_nested)
                continue;
            if (!split_kv(s, slen, &k, &klen, &v, &vlen)) {
                rc = lgw_error_set(err, LGW_EINTERNAL,
                                   "%s: line %zu: expected 'name = value' in a nested section",
                                   name, lineno);
                goto fail;
            }
            if (!add_row(ini, section, parent, parent_len, k, klen, v, vlen))
                goto oom;
            continue;
        }

        if (s[0] == '[') {
            if (slen < 3 || s[slen - 1] != ']') {
                rc = lgw_error_set(err, LGW_EINTERNAL, "%s: line %zu: bad section header", name,
                                   lineno);
                goto fail;
            }
            free(section);
            section = section_name(s + 1, slen - 2);
            if (!section)
                goto oom;
            if (section[0] == '\0') {
                rc = lgw_error_set(err, LGW_EINTERNAL, "%s: line %zu: empty section name", name,
                                   lineno);
                goto fail;
            }
            if (!add_row(ini, section, NULL, 0, NULL, 0, NULL, 0))
                goto oom;
            parent = NULL;
            continue;
        }

        {
            const char *k, *v;
            size_t klen, vlen;

            if (!section) {
                rc = lgw_error_set(err, LGW_EINTERNAL,
                                   "%s: line %zu: setting before any [section] header", name,
                                   lineno);
                goto fail;
            }
            if (!split_kv(s, slen, &k, &klen, &v, &vlen)) {
                rc = lgw_error_set(err, LGW_EINTERNAL, "%s: line %zu: expected 'name = value'",
                                   name, lineno);
                goto fail;
            }
            if (!add_row(ini, section, k, klen, NULL, 0, v, vlen))
                goto oom;
            /* The row's key is lower-cased; sub-keys must attach to that spelling. */
            parent = ini->rows[ini->n - 1].key;
            parent_len = strlen(parent);
            parent_indent = indent;
            parent_nested = vlen == 0;
        }
    }
    free(section);
    *out = ini;
    return LGW_OK;

oom:
    rc = lgw_error_set(err, LGW_EINTERNAL, "%s: out of memory", name);
fail:
    free(section);
    lgw_ini_free(ini);
    return rc;
}

enum lgw_errc lgw_ini_load(const char *path, struct lgw_ini **out, struct lgw_error *err)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    enum lgw_errc rc = LGW_OK;

    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            goto done; /* a missing file is an empty source, not an error */
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: not a regular file", path);
        goto done;
    }
    if ((unsigned long long)st.st_size > LGW_INI_MAX_BYTES) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: larger than %u bytes", path, LGW_INI_MAX_BYTES);
        goto done;
    }
    /* One byte more than the limit tells a file that grew since fstat from one that fits. */
    buf = malloc(LGW_INI_MAX_BYTES + 1);
    if (!buf) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: out of memory", path);
        goto done;
    }
    len = fread(buf, 1, LGW_INI_MAX_BYTES + 1, f);
    if (ferror(f)) {
        rc = lgw_error_set(err, LGW_EINTERNAL, "%s: read error", path);
        goto done;
    }
    rc = lgw_ini_parse(buf, len, path, out, err);
done:
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    if (f)
        fclose(f);
    return rc;
}

/* The last row matching, so later duplicates win. */
static const struct ini_row *find(const struct lgw_ini *ini, const char *section, const char *key,
                                  const char *sub)
{
    if (!ini)
        return NULL;
    for (size_t i = ini->n; i-- > 0;) {
        const struct ini_row *r = &ini->rows[i];

        if (strcmp(r->section, section) != 0)
            continue;
        if (!key)
            return r;
        if (!r->key || strcasecmp(r->key, key) != 0)
            continue;
        if (!sub && !r->sub)
            return r;
        if (sub && r->sub && strcasecmp(r->sub, sub) == 0)
            return r;
    }
    return NULL;
}

bool lgw_ini_has_section(const struct lgw_ini *ini, const char *section)
{
    return find(ini, section, NULL, NULL) != NULL;
}

const char *lgw_ini_get(const struct lgw_ini *ini, const char *section, const char *key)
{
    const struct ini_row *r = find(ini, section, key, NULL);

    return r ? r->value : NULL;
}

const char *lgw_ini_get_sub(const struct lgw_ini *ini, const char *section, const char *key,
                            const char *sub)
{
    const struct ini_row *r = find(ini, section, key, sub);

    return r ? r->value : NULL;
}
