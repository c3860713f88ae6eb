/* ocsp_test: ocsp_parse_response on responses made by the openssl CLI (a CA
 * acting as its own responder, as `openssl ocsp -index` does), on truncated
 * and error responses, and GeneralizedTime parsing.
 *
 * The group setup runs a small shell script in a temporary directory: a CA,
 * two leaves (one revoked) and one OCSP response for each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ocsp.h"

static char dir[256];

static const char script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "mkdir issued\n"
    ": > index.txt\n"
    "echo 0A1B2C3D4E5F60718293 > serial\n"
    "cat > ca.cnf <<EOF\n"
    "[ca]\n"
    "default_ca = d\n"
    "[d]\n"
    "database = index.txt\n"
    "new_certs_dir = issued\n"
    "certificate = ca.pem\n"
    "private_key = ca.key\n"
    "serial = serial\n"
    "default_md = sha256\n"
    "policy = p\n"
    "[p]\n"
    "commonName = supplied\n"
    "EOF\n"
    "openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key\n"
    "openssl req -new -x509 -days 30 -key ca.key -subj /CN=ocsp-test-ca -out ca.pem\n"
    "for leaf in good revoked; do\n"
    "  openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $leaf.key\n"
    "  openssl req -new -key $leaf.key -subj /CN=$leaf -out $leaf.csr\n"
    "  openssl ca -batch -notext -config ca.cnf -days 10 -in $leaf.csr -out $leaf.pem\n"
    "  openssl x509 -in $leaf.pem -noout -serial | cut -d= -f2 > $leaf.serial\n"
    "done\n"
    "openssl ca -config ca.cnf -revoke revoked.pem\n"
    "for leaf in good revoked; do\n"
    "  openssl ocsp -no_nonce -issuer ca.pem -cert $leaf.pem -reqout $leaf.req\n"
    "  openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin "
    "$leaf.req -respout $leaf.der -ndays 7\n"
    "done\n";

static int group_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    char command[1024];
    FILE *file;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/ocsp_test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(command, sizeof(command), "%s/make.sh", dir);
    file = fopen(command, "w");
    if (file == NULL || fputs(script, file) < 0 || fclose(file) != 0)
        return -1;
    snprintf(command, sizeof(command), "sh %s/make.sh %s >%s/make.log 2>&1", dir, dir, dir);
    return system(command) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    char command[512];

    (void)state;
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    return system(command) == 0 ? 0 : -1;
}

/* read_file returns the contents of |name| in the test directory. */
static uint8_t *read_file(const char *name, size_t *out_len)
{
    char path[512];
    uint8_t *buf = malloc(65536);
    FILE *file;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    file = fopen(path, "rb");
    assert_non_null(file);
    assert_non_null(buf);
    *out_len = fread(buf, 1, 65536, file);
    fclose(file);
    return buf;
}

/* expect_serial checks |response|'s serial against the hex `openssl x509
 * -serial` printed into |name|. */
static void expect_serial(const struct ocsp_response *response, const char *name)
{
    size_t len;
    char *hex = (char *)read_file(name, &len);
    char got[128] = "";

    for (size_t i = 0; i < response->serial_len; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%02X", response->serial[i]);
    while (len > 0 && (hex[len - 1] == '\n' || hex[len - 1] == '\r'))
        len--;
    hex[len] = '\0';
    /* DER adds a 00 byte before a serial whose top bit is set. */
    assert_string_equal(strncmp(got, "00", 2) == 0 && strlen(got) == len + 2 ? got + 2 : got,
                        hex);
    free(hex);
}

static void test_good_response(void **state)
{
    struct ocsp_response response;
    const char *error = "unset";
    size_t len;
    uint8_t *der = read_file("good.der", &len);
    int64_t now = (int64_t)time(NULL);

    (void)state;
    assert_int_equal(ocsp_parse_response(der, len, &response, &error), 0);
    assert_null(error);
    assert_int_equal(response.cert_status, OCSP_CERT_GOOD);
    expect_serial(&response, "good.serial");
    assert_true(response.this_update <= now + 5 && response.this_update > now - 300);
    assert_true(response.has_next_update);
    assert_true(response.next_update - response.this_update == 7 * 86400);
    free(der);
}

static void test_revoked_response(void **state)
{
    struct ocsp_response response;
    const char *error;
    size_t len;
    uint8_t *der = read_file("revoked.der", &len);

    (void)state;
    assert_int_equal(ocsp_parse_response(der, len, &response, &error), 0);
    assert_int_equal(response.cert_status, OCSP_CERT_REVOKED);
    expect_serial(&response, "revoked.serial");
    assert_true(response.has_next_update);
    free(der);
}

static void test_truncated_and_trailing(void **state)
{
    struct ocsp_response response;
    const char *error;
    size_t len;
    uint8_t *der = read_file("good.der", &len);

    (void)state;
    for (size_t cut = 0; cut < len; cut += 7) {
        error = NULL;
        assert_int_equal(ocsp_parse_response(der, cut, &response, &error), -1);
        assert_non_null(error);
    }
    der[len] = 0; /* one byte after the response */
    assert_int_equal(ocsp_parse_response(der, len + 1, &response, &error), -1);
    assert_string_equal(error, "not a DER OCSP response");
    free(der);
}

static void test_error_statuses(void **state)
{
    /* OCSPResponse { responseStatus } without responseBytes. */
    uint8_t der[] = {0x30, 0x03, 0x0a, 0x01, 0x03};
    struct ocsp_response response;
    const char *error;

    (void)state;
    assert_int_equal(ocsp_parse_response(der, sizeof(der), &response, &error), -1);
    assert_string_equal(error, "the response status is 'tryLater'");
    der[4] = 6;
    assert_int_equal(ocsp_parse_response(der, sizeof(der), &response, &error), -1);
    assert_string_equal(error, "the response status is 'unauthorized'");
    der[4] = 4; /* unused by RFC 6960 */
    assert_int_equal(ocsp_parse_response(der, sizeof(der), &response, &error), -1);
    assert_string_equal(error, "the response status is not 'successful'");
    der[4] = 0; /* successful, but nothing in it */
    assert_int_equal(ocsp_parse_response(der, sizeof(der), &response, &error), -1);
    assert_string_equal(error, "not a DER OCSP response");
}

static void test_generalized_time(void **state)
{
    static const struct {
        const char *text;
        int result;
        int64_t time;
    } cases[] = {
        {"19700101000000Z", 0, 0},
        {"20200102030405Z", 0, 1577934245},
        {"20200102030405.123Z", 0, 1577934245},
        {"20991231235959Z", 0, 4102444799},
        {"20200102030405", -1, 0},
        {"20200102030405.Z", -1, 0},
        {"2020010203040Z", -1, 0},
        {"20201302030405Z", -1, 0},
        {"20200100030405Z", -1, 0},
        {"20200102240000Z", -1, 0},
        {"20200102030405+0100", -1, 0},
        {"2020O102030405Z", -1, 0},
        {"", -1, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t time = -12345;
        int result = ocsp_parse_generalized_time((const uint8_t *)cases[i].text,
                                                 strlen(cases[i].text), &time);
        if (result != cases[i].result)
            fail_msg("ocsp_parse_generalized_time(\"%s\") returned %d", cases[i].text, result);
        if (result == 0 && time != cases[i].time)
            fail_msg("\"%s\" is %lld, expected %lld", cases[i].text, (long long)time,
                     (long long)cases[i].time);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_response),          cmocka_unit_test(test_revoked_response),
        cmocka_unit_test(test_truncated_and_trailing), cmocka_unit_test(test_error_statuses),
        cmocka_unit_test(test_generalized_time),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
