/*
 * credentials.h - AWS credentials, region and Lambda endpoint for lambda mode.
 *
 * Credentials come from the chain AWS SDKs use; the first source that has them wins:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
 *   2. shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials), [NAME];
 *   3. config file (AWS_CONFIG_FILE or ~/.aws/config), [profile NAME] ([default] for default);
 *      the profile is AWS_PROFILE, else "default". As in botocore the credentials file wins over
 *      the config file for the same profile, and a profile named explicitly (AWS_PROFILE or the
 *      options) that is in neither file is an error rather than a fall-through;
 *   4. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on 169.254.170.2) or
 *      AWS_CONTAINER_CREDENTIALS_FULL_URI, with an Authorization header from
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read at each fetch: it rotates) or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN;
 *   5. EC2 instance metadata, IMDSv2 (token PUT, then role name, then role credentials), unless
 *      AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT moves it.
 * Profiles that need assume-role, SSO, credential_process or web identity are not supported and
 * say so. HTTP sources use short timeouts (1 s to connect) so a machine without them fails fast.
 *
 * Credentials with an expiration (container, IMDS) are refreshed on a background thread ahead of
 * expiry: 5 minutes before, or halfway through a shorter lifetime. Callers keep getting the
 * current credentials meanwhile: they only ever take a mutex long enough to copy them out. A
 * failed refresh keeps the old credentials until they really expire and retries with backoff;
 * a caller that finds them expired waits for one fresh attempt (bounded by the HTTP timeouts).
 *
 * Errors: enum lgw_errc plus struct lgw_error (error.h). LGW_EINTERNAL is a local configuration
 * problem (a bad variable or file, no credentials or region configured anywhere, out of memory);
 * LGW_ECLIENT is a remote credentials source that failed (unreachable, HTTP error, malformed
 * answer, expired credentials that could not be refreshed). Messages name variables, files and
 * URLs but never a secret: not a key, token or the body of a credentials answer.
 *
 * Thread safety: lgw_credentials_get() and lgw_credentials_get_nowait() may be called from any
 * number of threads at once. The
 * environment is read when a provider is created (or when region/endpoint are resolved), not
 * later, so setenv() after that has no effect on the provider.
 */
#ifndef LGW_CREDENTIALS_H
#define LGW_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Bounds on what a source may hand us; a longer value is an error, never truncated. */
#define LGW_AWS_ACCESS_KEY_ID_MAX 128
#define LGW_AWS_SECRET_ACCESS_KEY_MAX 128
#define LGW_AWS_SESSION_TOKEN_MAX 8192 /* STS tokens run 1-2 KB; session tags make them longer */
#define LGW_AWS_REGION_MAX 32
#define LGW_AWS_ENDPOINT_MAX 512
#define LGW_AWS_PROFILE_MAX 128

/*
 * Where AWS settings come from. getenv returns the value of name or NULL; the string must stay
 * valid until the call that asked for it returns (it is copied). A NULL env, or a NULL getenv,
 * means the process environment. An empty value counts as unset, as in the AWS SDKs.
 */
typedef const char *(*lgw_aws_getenv_fn)(void *arg, const char *name);

struct lgw_aws_env {
    lgw_aws_getenv_fn getenv;
    void *arg;
    const char *profile; /* overrides AWS_PROFILE when non-NULL and non-empty */
};

/*
 * A set of credentials. The caller owns the struct (usually on its stack) and must call
 * lgw_aws_credentials_release() when done, which wipes the secrets with OPENSSL_cleanse.
 */
struct lgw_aws_credentials {
    char access_key_id[LGW_AWS_ACCESS_KEY_ID_MAX + 1];
    char secret_access_key[LGW_AWS_SECRET_ACCESS_KEY_MAX + 1];
    char session_token[LGW_AWS_SESSION_TOKEN_MAX + 1]; /* "" when none */
    int64_t expiration_ms; /* Unix time in milliseconds; 0 = does not expire */
    const char *source;    /* static string for logs: "environment", "shared-credentials-file",
                            * "config-file", "container", "imds" or "static" */
};

/* Wipes every field. Accepts NULL. */
void lgw_aws_credentials_release(struct lgw_aws_credentials *c);

/* Wipes the three strings up to their NUL (a struct that only lgw_credentials_get() filled holds
 * no secret byte past them): the cheap release for a call's stack copy. Accepts NULL. */
void lgw_aws_credentials_release_strings(struct lgw_aws_credentials *c);

/* Tuning, mostly for tests; zero fields take the defaults shown. */
struct lgw_credentials_options {
    const struct lgw_aws_env *env; /* NULL: the process environment */
    long connect_timeout_ms;       /* 1000 */
    long timeout_ms;               /* 2000: whole HTTP request to a credentials endpoint */
    long refresh_window_ms;        /* 300000: refresh this long before expiry (at most halfway) */
    long retry_min_ms;             /* 1000: first backoff after a failed refresh, then doubled */
    long retry_max_ms;             /* 60000 */
    /* Base of AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, "http://169.254.170.2" by default. No
     * standard variable moves it, so tests set this to their loopback server. */
    const char *container_base_url;
};

struct lgw_credentials_provider;

/*
 * Resolves credentials through the chain now, so a gateway without credentials fails at
 * start-up with a message listing every source tried. On success *out is a new provider the
 * caller frees with lgw_credentials_provider_free(); if the credentials expire, a refresh thread
 * runs until then. opts may be NULL.
 */
enum lgw_errc lgw_credentials_provider_new(const struct lgw_credentials_options *opts,
                                           struct lgw_credentials_provider **out,
                                           struct lgw_error *err);

/* A provider that always hands out the given (non-expiring) credentials; for tests and for
 * programs that hold their own. session_token may be NULL. */
enum lgw_errc lgw_credentials_provider_new_static(const char *access_key_id,
                                                  const char *secret_access_key,
                                                  const char *session_token,
                                                  struct lgw_credentials_provider **out,
                                                  struct lgw_error *err);

/*
 * Copies the current credentials into *out (release it with lgw_aws_credentials_release()).
 * Never waits on a refresh while the current credentials are valid. When they have expired it
 * waits for one refresh attempt and returns LGW_ECLIENT if that fails. On error *out is wiped.
 */
enum lgw_errc lgw_credentials_get(struct lgw_credentials_provider *p,
                                  struct lgw_aws_credentials *out, struct lgw_error *err);
/*
 * The same, for threads that must never wait (an event loop): when the credentials have
 * expired it starts a refresh (unless one is under way or the backoff after a failure forbids
 * it) and returns LGW_ECLIENT at once, saying so.
 */
enum lgw_errc lgw_credentials_get_nowait(struct lgw_credentials_provider *p,
                                         struct lgw_aws_credentials *out, struct lgw_error *err);

/* Which source the provider's credentials came from (a static string, see above). */
const char *lgw_credentials_source(const struct lgw_credentials_provider *p);

/* Stops the refresh thread (aborting a fetch in progress), wipes and frees. Accepts NULL. */
void lgw_credentials_provider_free(struct lgw_credentials_provider *p);

/*
 * The region: arn_region when non-NULL and non-empty (a function ARN's region wins for that
 * function), else AWS_REGION, else AWS_DEFAULT_REGION, else `region` of the profile in the
 * config file. Writes it to out (at least LGW_AWS_REGION_MAX + 1 bytes). No region anywhere,
 * or one that is not [a-z0-9-], is LGW_EINTERNAL naming where it came from.
 */
enum lgw_errc lgw_aws_region_resolve(const struct lgw_aws_env *env, const char *arn_region,
                                     char *out, size_t out_size, struct lgw_error *err);

/*
 * The Lambda endpoint, without a trailing '/': AWS_ENDPOINT_URL_LAMBDA, else AWS_ENDPOINT_URL,
 * else the config file's profile `services = NAME` -> [services NAME] `lambda = / endpoint_url`,
 * else the profile's `endpoint_url`, else https://lambda.REGION.amazonaws.com (.com.cn for cn-
 * regions). AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true skips all but the default. A value that is
 * not an http(s) URL with a host (or has a query, fragment or user info) is LGW_EINTERNAL naming
 * the variable or file. out must hold at least LGW_AWS_ENDPOINT_MAX + 1 bytes.
 */
enum lgw_errc lgw_aws_endpoint_resolve(const struct lgw_aws_env *env, const char *region, char *out,
                                       size_t out_size, struct lgw_error *err);

/*
 * The file of CA certificates to verify AWS's TLS certificate with, as the AWS CLI and SDKs
 * take it: AWS_CA_BUNDLE, else the config file profile's `ca_bundle`; "" when neither is set
 * (the system's store is used). Only the path is resolved here: the dispatcher loads it. A path
 * of PATH_MAX bytes or more is LGW_EINTERNAL naming where it came from.
 */
enum lgw_errc lgw_aws_ca_bundle_resolve(const struct lgw_aws_env *env, char *out, size_t out_size,
                                        struct lgw_error *err);

#endif
