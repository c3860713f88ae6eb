/* route_test: first-match routing by SNI and by host and path (route.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

/* Stand-ins for backend groups: only their addresses are compared. */
static struct cfg_backend *const API = (struct cfg_backend *)(uintptr_t)0x10;
static struct cfg_backend *const WEB = (struct cfg_backend *)(uintptr_t)0x20;
static struct cfg_backend *const OPS = (struct cfg_backend *)(uintptr_t)0x30;
static struct cfg_backend *const STATIC = (struct cfg_backend *)(uintptr_t)0x40;
static struct cfg_backend *const DEFAULT = (struct cfg_backend *)(uintptr_t)0x50;

static bool matches(const char *pattern, const char *name)
{
    return route_name_matches(pattern, name, strlen(name));
}

static void test_name_matches(void **state)
{
    assert_true(matches("api.example.com", "api.example.com"));
    assert_true(matches("api.example.com", "API.Example.COM"));
    assert_true(matches("api.example.com", "api.example.com."));
    assert_false(matches("api.example.com", "api.example.co"));
    assert_false(matches("api.example.com", "xapi.example.com"));
    assert_false(matches("api.example.com", ""));
    assert_true(matches("*.example.com", "a.example.com"));
    assert_true(matches("*.example.com", "a.b.example.com"));
    assert_true(matches("*.example.com", "A.EXAMPLE.com."));
    assert_false(matches("*.example.com", "example.com"));
    assert_false(matches("*.example.com", ".example.com"));
    assert_false(matches("*.example.com", "aexample.com"));
    assert_false(matches("*.example.com", "a.example.org"));
}

static void test_for_sni(void **state)
{
    const struct cfg_route routes[] = {
        {.kind = ROUTE_SNI, .sni = "api.example.com", .backend = API},
        {.kind = ROUTE_SNI, .sni = "*.example.com", .backend = WEB},
    };
    assert_ptr_equal(route_for_sni(routes, 2, "api.example.com", DEFAULT), API);
    assert_ptr_equal(route_for_sni(routes, 2, "www.example.com", DEFAULT), WEB);
    /* First match wins: the wildcard also matches api, but comes later. */
    assert_ptr_equal(route_for_sni(routes + 1, 1, "api.example.com", DEFAULT), WEB);
    assert_ptr_equal(route_for_sni(routes, 2, "example.org", DEFAULT), DEFAULT);
    assert_ptr_equal(route_for_sni(routes, 2, NULL, DEFAULT), DEFAULT);
    assert_ptr_equal(route_for_sni(routes, 0, "api.example.com", DEFAULT), DEFAULT);
}

static void test_authority_host(void **state)
{
    size_t len;
    const char *host = route_authority_host("example.com:8443", &len);
    assert_int_equal(len, 11);
    assert_memory_equal(host, "example.com", len);
    host = route_authority_host("example.com", &len);
    assert_int_equal(len, 11);
    host = route_authority_host("[2001:db8::1]:443", &len);
    assert_int_equal(len, 11);
    assert_memory_equal(host, "2001:db8::1", len);
    host = route_authority_host("[::1]", &len);
    assert_int_equal(len, 3);
    assert_memory_equal(host, "::1", len);
}

static void test_for_request(void **state)
{
    const struct cfg_route routes[] = {
        {.kind = ROUTE_HTTP,
         .host = "admin.example.com",
         .path_prefix = "/ops/",
         .backend = OPS},
        {.kind = ROUTE_HTTP, .path_prefix = "/static/", .backend = STATIC},
        {.kind = ROUTE_HTTP, .host = "*.example.com", .backend = WEB},
    };
    const size_t n = 3;
    assert_ptr_equal(route_for_request(routes, n, "admin.example.com", "/ops/x", DEFAULT), OPS);
    assert_ptr_equal(
        route_for_request(routes, n, "ADMIN.example.com:443", "/ops/?q=1", DEFAULT), OPS);
    /* The prefix is bytes of the path: "/ops" is not under "/ops/", and the
     * query does not count. */
    assert_ptr_equal(route_for_request(routes, n, "admin.example.com", "/ops", DEFAULT), WEB);
    assert_ptr_equal(route_for_request(routes, n, "admin.example.com", "/x?/ops/", DEFAULT),
                     WEB);
    assert_ptr_equal(route_for_request(routes, n, "other.org", "/static/a.css", DEFAULT),
                     STATIC);
    assert_ptr_equal(route_for_request(routes, n, NULL, "/static/a.css", DEFAULT), STATIC);
    assert_ptr_equal(route_for_request(routes, n, "www.example.com", "/", DEFAULT), WEB);
    assert_ptr_equal(route_for_request(routes, n, NULL, "/", DEFAULT), DEFAULT);
    assert_ptr_equal(route_for_request(routes, n, "example.org", "*", DEFAULT), DEFAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_matches),
        cmocka_unit_test(test_for_sni),
        cmocka_unit_test(test_authority_host),
        cmocka_unit_test(test_for_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
