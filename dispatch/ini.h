/*
 * ini.h - a reader for the AWS shared files (~/.aws/credentials and ~/.aws/config).
 *
 * The format is the one botocore reads with Python's RawConfigParser, plus the AWS nested
 * sub-sections:
 *
 *     [profile dev]          section headers; inner whitespace is collapsed to one space
 *     region = eu-west-1     `key = value` or `key: value`, split at the first delimiter
 *     # comment              whole-line comments start with '#' or ';' (no inline comments:
 *     ; comment              a '#' inside a value is part of it)
 *     lambda =               a key with an empty value followed by indented lines
 *       endpoint_url = ...   holds sub-keys (used by [services NAME] sections)
 *
 * Keys and sub-keys are lower-cased (as RawConfigParser does); section names keep their case.
 * A key repeated in a section, or a section repeated, merges and the later value wins.
 *
 * The credentials file holds secrets, so parse errors name the line number only and never echo
 * its text, and lgw_ini_free() wipes every string it held.
 */
#ifndef LGW_INI_H
#define LGW_INI_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Files larger than this are refused: real shared files are a few KB. */
#define LGW_INI_MAX_BYTES (1024u * 1024u)

struct lgw_ini;

/*
 * Parses len bytes of text. `name` (a file name, for messages only) may be NULL. On success
 * *out is a new parsed file the caller frees with lgw_ini_free(). On failure *out is NULL and
 * err says which line is wrong (LGW_EINTERNAL: a configuration problem).
 */
enum lgw_errc lgw_ini_parse(const char *text, size_t len, const char *name, struct lgw_ini **out,
                            struct lgw_error *err);

/*
 * Reads and parses the file at path. A file that does not exist is not an error: LGW_OK with
 * *out = NULL. Unreadable, too large or malformed files are LGW_EINTERNAL naming the path.
 * The file's bytes are wiped from memory once parsed.
 */
enum lgw_errc lgw_ini_load(const char *path, struct lgw_ini **out, struct lgw_error *err);

/* Whether the section appears (even empty). */
bool lgw_ini_has_section(const struct lgw_ini *ini, const char *section);

/*
 * The value of key in section, or NULL. The string is borrowed from ini and lives until
 * lgw_ini_free(). A key holding sub-keys has the value "".
 */
const char *lgw_ini_get(const struct lgw_ini *ini, const char *section, const char *key);

/* The value of sub-key `sub` under `key = ` in section (a nested sub-section), or NULL. */
const char *lgw_ini_get_sub(const struct lgw_ini *ini, const char *section, const char *key,
                            const char *sub);

/* Wipes and frees. Accepts NULL. */
void lgw_ini_free(struct lgw_ini *ini);

#endif
