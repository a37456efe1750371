/*
 * sigv4.h - AWS Signature Version 4 (AWS4-HMAC-SHA256): signing outbound requests (the lambda
 * dispatcher) and checking inbound ones (the Invoke API face), with a thread-safe cache of
 * derived signing keys.
 *
 * The signer never sends anything: it takes a description of the request and hands back the
 * Authorization value plus the headers the caller must add. It keeps no state between calls
 * except the optional key cache, so any number of threads can sign at once. Buffers live on the
 * stack (under 16 KiB) and spill to the heap only for big requests.
 *
 * Inbound checks need the path and query exactly as they came off the wire: libmicrohttpd
 * percent-decodes the URL it hands to the access handler by default, and a decoded
 * "arn:aws:lambda:..." canonicalises differently from the "arn%3Aaws%3Alambda..." the client
 * signed. The server must keep the raw request target (MHD_OPTION_URI_LOG_CALLBACK sees it).
 *
 * Errors: every function returns LGW_OK or an enum lgw_errc and, when `err` is not NULL, fills
 * it through lgw_error_set(). Bad input (malformed, over a bound) is LGW_EBADREQUEST; out of
 * memory is LGW_EINTERNAL; an inbound signature that does not check out is LGW_EDENIED with
 * aws_type "InvalidSignatureException". No secret, derived key or signature of a secret is ever
 * put in an error message.
 */
#ifndef LGW_SIGV4_H
#define LGW_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

/* Bounds. Input over any of them is refused with LGW_EBADREQUEST, never truncated. */
#define LGW_SIGV4_PATH_MAX 4096           /* request path bytes, as on the wire */
#define LGW_SIGV4_QUERY_MAX 8192          /* query string bytes, as on the wire */
#define LGW_SIGV4_QUERY_PARAMS_MAX 128    /* '&'-separated query parameters */
#define LGW_SIGV4_HEADERS_MAX 64          /* header entries passed in (repeats count) */
#define LGW_SIGV4_HEADER_NAME_MAX 128     /* one header name */
#define LGW_SIGV4_HEADER_VALUE_MAX 16384  /* one header value (session tokens can be long) */
#define LGW_SIGV4_CANONICAL_MAX 131072    /* the whole canonical request */
#define LGW_SIGV4_SIGNED_HEADERS_MAX 1024 /* "host;x-amz-date;..." */
#define LGW_SIGV4_ACCESS_KEY_MAX 128
#define LGW_SIGV4_SECRET_MAX 128
#define LGW_SIGV4_REGION_MAX 32
#define LGW_SIGV4_SERVICE_MAX 32
#define LGW_SIGV4_AUTHZ_HEADER_MAX 2048 /* an inbound Authorization value */

#define LGW_SIGV4_HEX_LEN 64      /* a SHA-256 / HMAC-SHA256 in lowercase hex */
#define LGW_SIGV4_KEY_LEN 32      /* a derived signing key */
#define LGW_SIGV4_AMZ_DATE_LEN 16 /* 20150830T123600Z */
#define LGW_SIGV4_DATE_LEN 8      /* 20150830 */
/* "AWS4-HMAC-SHA256 Credential=K/D/R/S/aws4_request, SignedHeaders=H, Signature=X" */
#define LGW_SIGV4_AUTHORIZATION_MAX                                                                \
    (sizeof("AWS4-HMAC-SHA256 Credential=////aws4_request, SignedHeaders=, Signature=") +          \
     LGW_SIGV4_ACCESS_KEY_MAX + LGW_SIGV4_DATE_LEN + LGW_SIGV4_REGION_MAX +                        \
     LGW_SIGV4_SERVICE_MAX + LGW_SIGV4_SIGNED_HEADERS_MAX + LGW_SIGV4_HEX_LEN)

/* The literal payload hash for requests whose body is not signed (S3 style). */
#define LGW_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* One header, NUL-terminated name and value. Names are matched case-insensitively. */
struct lgw_sigv4_header {
    const char *name;
    const char *value;
};

/*
 * The request to sign or check. Everything is borrowed and only read during the call.
 */
struct lgw_sigv4_request {
    const char *method; /* "POST" (sent as given: callers use upper case) */
    /* The path exactly as sent on the wire, already percent-encoded ("/2015-03-31/functions/
     * arn%3Aaws%3A.../invocations"). "" or NULL means "/". Must start with '/' otherwise. */
    const char *path;
    /* The query string as on the wire, without '?'; NULL or "" for none. Parameters are
     * percent-decoded and re-encoded the AWS way before sorting, so "%7e" and "~" sign alike;
     * a malformed escape ("%zz") is refused. */
    const char *query;
    /* The headers to sign, in arrival order; repeats are joined with ',' in this order. Must
     * include Host. When signing, must NOT include X-Amz-Date or X-Amz-Security-Token (nor
     * x-amz-content-sha256 with sign_body): the signer adds those. */
    const struct lgw_sigv4_header *headers;
    size_t header_count;
    /* The body, hashed with SHA-256 unless payload_hash is set. body may be NULL when
     * body_len is 0. */
    const void *body;
    size_t body_len;
    /* A precomputed payload hash (64 lowercase hex) or LGW_SIGV4_UNSIGNED_PAYLOAD; NULL to
     * hash the body. */
    const char *payload_hash;
};

enum lgw_sigv4_token_mode {
    /* X-Amz-Security-Token is added and signed: what every AWS SDK does. Use this. */
    LGW_SIGV4_TOKEN_SIGNED = 0,
    /* The token header is added after signing and left out of SignedHeaders. Only the
     * test suite's post-sts-header-after case wants this; real services refuse it. */
    LGW_SIGV4_TOKEN_AFTER,
};

struct lgw_sigv4_options {
    /* Remove "." and ".." segments and merge repeated slashes. True for every service but S3. */
    bool normalize_path;
    /* URI-encode the (already encoded) path once more: "arn%3Aaws" signs as "arn%253Aaws",
     * as botocore does. True for every service but S3. */
    bool double_encode_path;
    /* Add and sign x-amz-content-sha256 (the payload hash). */
    bool sign_body;
    enum lgw_sigv4_token_mode token_mode;
};

/* The options every service except S3 uses (Lambda included). */
static inline struct lgw_sigv4_options lgw_sigv4_options_default(void)
{
    struct lgw_sigv4_options o = {true, true, false, LGW_SIGV4_TOKEN_SIGNED};
    return o;
}

/* Credentials, borrowed. session_token NULL or "" for long-term keys. */
struct lgw_sigv4_credentials {
    const char *access_key;
    const char *secret_key;
    const char *session_token;
};

struct lgw_sigv4_key_cache;

/* Everything about who signs and for where; borrowed for the duration of a call. */
struct lgw_sigv4_config {
    struct lgw_sigv4_credentials creds;
    const char *region;  /* "us-east-1" */
    const char *service; /* "lambda" */
    struct lgw_sigv4_options opts;
    struct lgw_sigv4_key_cache *cache; /* NULL: derive the key on every call */
};

/* A header the caller must add to the request before sending it. */
struct lgw_sigv4_out_header {
    const char *name;  /* static string */
    const char *value; /* points into the result, or at creds.session_token (borrowed) */
};

/*
 * What signing produced. Caller-owned (a stack variable is fine, about 1.5 KiB); the strings
 * are NUL-terminated arrays inside it. `add` points into this struct and at the credentials'
 * session token, so it is valid while both are.
 */
struct lgw_sigv4_result {
    char authorization[LGW_SIGV4_AUTHORIZATION_MAX]; /* the Authorization header's value */
    char amz_date[LGW_SIGV4_AMZ_DATE_LEN + 1];       /* the X-Amz-Date value */
    char payload_hash[LGW_SIGV4_HEX_LEN + 1];        /* or "UNSIGNED-PAYLOAD" */
    char signature[LGW_SIGV4_HEX_LEN + 1];
    /* X-Amz-Date, then X-Amz-Security-Token (with a token), then x-amz-content-sha256
     * (with sign_body). Authorization itself is not in this list. */
    struct lgw_sigv4_out_header add[3];
    size_t add_count;
};

/*
 * Optional out-parameter for tests and debugging: copies of the canonical request and the string
 * to sign. Both are malloc'd by the call and owned by the caller: free them with
 * lgw_sigv4_debug_release(). They hold no secret (the session token, if signed, is in the
 * canonical request: do not log them in production).
 */
struct lgw_sigv4_debug {
    char *canonical_request;
    char *string_to_sign;
};
void lgw_sigv4_debug_release(struct lgw_sigv4_debug *dbg); /* accepts NULL; frees and zeroes */

/*
 * Signs req at time `when` (UTC seconds). Fills *out; dbg may be NULL.
 * On error *out is zeroed and err (if not NULL) says what was wrong.
 */
enum lgw_errc lgw_sigv4_sign(const struct lgw_sigv4_config *cfg,
                             const struct lgw_sigv4_request *req, time_t when,
                             struct lgw_sigv4_result *out, struct lgw_sigv4_debug *dbg,
                             struct lgw_error *err);

/* Formats `when` as X-Amz-Date ("20150830T123600Z"). out has LGW_SIGV4_AMZ_DATE_LEN + 1 bytes. */
enum lgw_errc lgw_sigv4_format_amz_date(time_t when, char *out, struct lgw_error *err);
/* Parses an X-Amz-Date value (exactly "YYYYMMDDTHHMMSSZ", a real date) into UTC seconds. */
enum lgw_errc lgw_sigv4_parse_amz_date(const char *amz_date, time_t *when, struct lgw_error *err);

/* ---- inbound checks (Invoke API face) ---- */

/* An Authorization header value taken apart. All fields NUL-terminated copies. */
struct lgw_sigv4_auth {
    char access_key[LGW_SIGV4_ACCESS_KEY_MAX + 1];
    char date[LGW_SIGV4_DATE_LEN + 1]; /* YYYYMMDD from the credential scope */
    char region[LGW_SIGV4_REGION_MAX + 1];
    char service[LGW_SIGV4_SERVICE_MAX + 1];
    char signed_headers[LGW_SIGV4_SIGNED_HEADERS_MAX + 1]; /* "host;x-amz-date", as sent */
    char signature[LGW_SIGV4_HEX_LEN + 1];                 /* lowercase hex, as sent */
};

/*
 * Parses "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
 * SignedHeaders=a;b, Signature=hex". The three parts may come in any order, separated by ','
 * and optional spaces; each must appear exactly once. SignedHeaders must be lowercase names in
 * strictly ascending order, Signature exactly 64 lowercase hex digits. Anything else, or a part
 * over its bound, is LGW_EBADREQUEST. The header value need not be NUL-terminated: len bytes are
 * read (at most LGW_SIGV4_AUTHZ_HEADER_MAX).
 */
enum lgw_errc lgw_sigv4_parse_authorization(const char *value, size_t len,
                                            struct lgw_sigv4_auth *out, struct lgw_error *err);

/*
 * Computes the signature an inbound request should carry, for the caller to compare in constant
 * time (CRYPTO_memcmp). req->headers are all the request's headers: only those named in
 * auth->signed_headers are used, and each of them must be there (host must be signed).
 * amz_date is the request's X-Amz-Date; its date must equal auth->date. The scope (region,
 * service) comes from auth: the caller checks it is the one it expects. opts->sign_body and
 * token_mode are ignored (what is signed is what SignedHeaders says). out_hex gets 64 hex
 * digits and a NUL. cache may be NULL; dbg may be NULL.
 */
enum lgw_errc lgw_sigv4_expected_signature(const struct lgw_sigv4_request *req,
                                           const struct lgw_sigv4_options *opts,
                                           const struct lgw_sigv4_auth *auth, const char *amz_date,
                                           const char *secret_key,
                                           struct lgw_sigv4_key_cache *cache,
                                           char out_hex[LGW_SIGV4_HEX_LEN + 1],
                                           struct lgw_sigv4_debug *dbg, struct lgw_error *err);

/*
 * The whole inbound check: region and service must match (NULL accepts any), X-Amz-Date must
 * be within max_skew seconds of now (AWS uses 300), and the signature must match, compared in
 * constant time. LGW_OK or LGW_EDENIED (aws_type InvalidSignatureException) or the errors above.
 */
enum lgw_errc lgw_sigv4_verify(const struct lgw_sigv4_request *req,
                               const struct lgw_sigv4_options *opts,
                               const struct lgw_sigv4_auth *auth, const char *amz_date,
                               const char *secret_key, const char *region, const char *service,
                               time_t now, unsigned max_skew, struct lgw_sigv4_key_cache *cache,
                               struct lgw_error *err);

/* ---- signing keys ---- */

/*
 * Derives kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
 * "aws4_request"). date is "YYYYMMDD". out gets LGW_SIGV4_KEY_LEN bytes: secret material, wipe
 * it with OPENSSL_cleanse when done.
 */
enum lgw_errc lgw_sigv4_derive_key(const char *secret_key, const char *date, const char *region,
                                   const char *service, unsigned char out[LGW_SIGV4_KEY_LEN],
                                   struct lgw_error *err);

/*
 * A cache of derived keys per (secret, date, region, service): the four HMACs are done once a
 * day per scope rather than once per request. Thread-safe (one mutex, held only for a lookup
 * and a 32-byte copy). `capacity` entries (1..1024; 0 means 16), the least recently used one is
 * replaced. Entries hold a copy of the secret and the key; both are wiped with OPENSSL_cleanse
 * when replaced and on free. Returns NULL when out of memory.
 */
struct lgw_sigv4_key_cache *lgw_sigv4_key_cache_new(size_t capacity);
/* Wipes and frees. Accepts NULL. No call may be using the cache. */
void lgw_sigv4_key_cache_free(struct lgw_sigv4_key_cache *cache);
/* Looks the key up, deriving and storing it on a miss. cache may be NULL (always derives). */
enum lgw_errc lgw_sigv4_key_cache_get(struct lgw_sigv4_key_cache *cache, const char *secret_key,
                                      const char *date, const char *region, const char *service,
                                      unsigned char out[LGW_SIGV4_KEY_LEN], struct lgw_error *err);
/* Counters since creation, for tests and /metrics. Either pointer may be NULL. */
void lgw_sigv4_key_cache_stats(struct lgw_sigv4_key_cache *cache, uint64_t *hits, uint64_t *misses);

#endif
