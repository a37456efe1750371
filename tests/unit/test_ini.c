/*
 * test_ini.c - the AWS shared-file reader: sections, comments, nested sub-keys, duplicates,
 * errors that never echo the (secret) line text, and loading from disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ini.h"

static struct lgw_ini *parse_ok(const char *text)
{
    struct lgw_ini *ini = NULL;
    struct lgw_error err;

    lgw_error_init(&err);
    assert_int_equal(lgw_ini_parse(text, strlen(text), "t", &ini, &err), LGW_OK);
    assert_non_null(ini);
    lgw_error_release(&err);
    return ini;
}

static void parse_fails(const char *text, const char *want_in_message, const char *secret)
{
    struct lgw_ini *ini = (struct lgw_ini *)1;
    struct lgw_error err;

    lgw_error_init(&err);
    assert_int_equal(lgw_ini_parse(text, strlen(text), "f.ini", &ini, &err), LGW_EINTERNAL);
    assert_null(ini);
    assert_non_null(strstr(err.message, want_in_message));
    assert_non_null(strstr(err.message, "f.ini"));
    if (secret)
        assert_null(strstr(err.message, secret));
    lgw_error_release(&err);
}

static void test_basic(void **state)
{
    struct lgw_ini *ini = parse_ok("# leading comment\n"
                                   "[default]\n"
                                   "aws_access_key_id = AKID\n"
                                   "  ; indented comment\n"
                                   "Region: eu-west-1\n"
                                   "empty =\n"
                                   "\n"
                                   "[  profile    dev  ]\r\n"
                                   "endpoint_url = http://localhost:4566/x#frag\r\n"
                                   "[empty-section]\n");

    (void)state;
    assert_string_equal(lgw_ini_get(ini, "default", "aws_access_key_id"), "AKID");
    /* keys are lower-cased on read and matched case-insensitively */
    assert_string_equal(lgw_ini_get(ini, "default", "region"), "eu-west-1");
    assert_string_equal(lgw_ini_get(ini, "default", "REGION"), "eu-west-1");
    assert_string_equal(lgw_ini_get(ini, "default", "empty"), "");
    /* section whitespace collapses; '#' inside a value is not a comment; CR is dropped */
    assert_string_equal(lgw_ini_get(ini, "profile dev", "endpoint_url"),
                        "http://localhost:4566/x#frag");
    assert_true(lgw_ini_has_section(ini, "empty-section"));
    assert_false(lgw_ini_has_section(ini, "missing"));
    assert_null(lgw_ini_get(ini, "default", "missing"));
    assert_null(lgw_ini_get(ini, "missing", "region"));
    /* section names keep their case */
    assert_false(lgw_ini_has_section(ini, "DEFAULT"));
    lgw_ini_free(ini);
}

static void test_nested_and_duplicates(void **state)
{
    struct lgw_ini *ini = parse_ok("[profile a]\n"
                                   "services = local\n"
                                   "region = us-east-1\n"
                                   "[services local]\n"
                                   "lambda =\n"
                                   "  endpoint_url = http://127.0.0.1:9000\n"
                                   "\tother = x\n"
                                   "s3 =\n"
                                   "  endpoint_url = http://s3.local\n"
                                   "[profile a]\n"
                                   "region = eu-central-1\n"
                                   "multi = first\n"
                                   "  continuation ignored\n");

    (void)state;
    assert_string_equal(lgw_ini_get_sub(ini, "services local", "lambda", "endpoint_url"),
                        "http://127.0.0.1:9000");
    assert_string_equal(lgw_ini_get_sub(ini, "services local", "lambda", "other"), "x");
    assert_string_equal(lgw_ini_get_sub(ini, "services local", "s3", "endpoint_url"),
                        "http://s3.local");
    assert_null(lgw_ini_get_sub(ini, "services local", "lambda", "missing"));
    /* a sub-key is not a top-level key */
    assert_null(lgw_ini_get(ini, "services local", "endpoint_url"));
    assert_string_equal(lgw_ini_get(ini, "services local", "lambda"), "");
    /* a repeated section merges, the later value wins */
    assert_string_equal(lgw_ini_get(ini, "profile a", "region"), "eu-central-1");
    assert_string_equal(lgw_ini_get(ini, "profile a", "services"), "local");
    assert_string_equal(lgw_ini_get(ini, "profile a", "multi"), "first");
    lgw_ini_free(ini);
}

static void test_errors(void **state)
{
    (void)state;
    parse_fails("aws_secret_access_key = SECRETVALUE\n", "line 1", "SECRETVALUE");
    parse_fails("[default]\nSECRETVALUE\n", "line 2", "SECRETVALUE");
    parse_fails("[default]\n[bad\n", "line 2", NULL);
    parse_fails("[]\n", "line 1", NULL);
    parse_fails("[a]\nk =\n  SECRETVALUE\n", "line 3", "SECRETVALUE");
    {
        static const char nul[] = "[a]\nk = v\0x\n";
        struct lgw_ini *ini = NULL;
        struct lgw_error err;

        lgw_error_init(&err);
        assert_int_equal(lgw_ini_parse(nul, sizeof(nul) - 1, NULL, &ini, &err), LGW_EINTERNAL);
        assert_non_null(strstr(err.message, "NUL"));
        lgw_error_release(&err);
    }
    /* an empty text is a valid, empty file */
    {
        struct lgw_ini *ini = parse_ok("");

        assert_false(lgw_ini_has_section(ini, "default"));
        lgw_ini_free(ini);
    }
    lgw_ini_free(NULL);
}

static void test_load(void **state)
{
    char dir[] = "/tmp/lgw-ini-XXXXXX";
    char path[256], big[256];
    struct lgw_ini *ini = (struct lgw_ini *)1;
    struct lgw_error err;
    FILE *f;

    (void)state;
    lgw_error_init(&err);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config", dir);
    snprintf(big, sizeof(big), "%s/big", dir);

    /* a missing file is an empty source */
    assert_int_equal(lgw_ini_load(path, &ini, &err), LGW_OK);
    assert_null(ini);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[default]\nregion = ap-south-1\n", f);
    fclose(f);
    assert_int_equal(lgw_ini_load(path, &ini, &err), LGW_OK);
    assert_string_equal(lgw_ini_get(ini, "default", "region"), "ap-south-1");
    lgw_ini_free(ini);

    f = fopen(big, "w");
    assert_non_null(f);
    for (unsigned i = 0; i <= LGW_INI_MAX_BYTES / 16; i++)
        fputs("# padding line.\n", f);
    fclose(f);
    assert_int_equal(lgw_ini_load(big, &ini, &err), LGW_EINTERNAL);
    assert_null(ini);
    assert_non_null(strstr(err.message, "larger than"));

    /* a directory is not a config file */
    assert_int_equal(lgw_ini_load(dir, &ini, &err), LGW_EINTERNAL);
    assert_null(ini);

    unlink(path);
    unlink(big);
    rmdir(dir);
    lgw_error_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_nested_and_duplicates),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
