/*
 * link/addr.h: the one reader of "HOST:PORT" — the gate's server, the sync server's
 * listener, the metrics endpoints and `citypass-admin device add --server` all read
 * addresses through it. IPv6 only in brackets, ports 1 to 65535 (0 where asked), hosts of
 * the DNS's characters, nothing read past the text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "link/addr.h"

static void accepted(const char *text, unsigned flags, const char *host, unsigned port, int family)
{
	struct link_addr a;
	print_message("accepted? %s\n", text);
	assert_int_equal(link_addr_parse(text, flags, &a), 0);
	assert_string_equal(a.host, host);
	assert_int_equal(a.port, port);
	assert_int_equal(a.family, family);
}

static void refused(const char *text, unsigned flags, int want)
{
	struct link_addr a;
	memset(&a, 0x5A, sizeof(a));
	print_message("refused? %s\n", text);
	assert_int_equal(link_addr_parse(text, flags, &a), want);
	static const struct link_addr zero;
	assert_memory_equal(&a, &zero, sizeof(a)); /* nothing half-parsed left */
	assert_true(strlen(link_addr_strerror(want)) > 10);
}

static void test_accepted(void **state)
{
	(void)state;
	accepted("127.0.0.1:7443", 0, "127.0.0.1", 7443, AF_INET);
	accepted("[::1]:7443", 0, "::1", 7443, AF_INET6);
	accepted("[2001:db8::1]:1", LINK_ADDR_NUMERIC, "2001:db8::1", 1, AF_INET6);
	accepted("sync.example.org:65535", 0, "sync.example.org", 65535, AF_UNSPEC);
	accepted("localhost:7443", 0, "localhost", 7443, AF_UNSPEC);
	accepted("a-b.c-d:00080", 0, "a-b.c-d", 80, AF_UNSPEC);
	/* port 0, "any free port", only for listeners */
	accepted("127.0.0.1:0", LINK_ADDR_NUMERIC | LINK_ADDR_ANY_PORT, "127.0.0.1", 0, AF_INET);
	accepted("[::]:0", LINK_ADDR_ANY_PORT, "::", 0, AF_INET6);
}

static void test_refused(void **state)
{
	(void)state;
	refused(NULL, 0, LINK_ADDR_ERR_ARG);
	refused("localhost", 0, LINK_ADDR_ERR_NO_PORT);
	refused("", 0, LINK_ADDR_ERR_NO_PORT);
	refused("localhost:", 0, LINK_ADDR_ERR_PORT);
	refused("localhost:0", 0, LINK_ADDR_ERR_PORT);
	refused("localhost:65536", 0, LINK_ADDR_ERR_PORT);
	refused("localhost:100000", LINK_ADDR_ANY_PORT, LINK_ADDR_ERR_PORT);
	refused("localhost:+80", 0, LINK_ADDR_ERR_PORT);
	/* 2^64 + 1: digits past five would wrap to port 1 */
	refused("localhost:18446744073709551617", 0, LINK_ADDR_ERR_PORT);
	refused("localhost:000080", 0, LINK_ADDR_ERR_PORT);
	refused("localhost: 80", 0, LINK_ADDR_ERR_PORT);
	refused("localhost:80 ", 0, LINK_ADDR_ERR_PORT);
	refused("localhost:8a", 0, LINK_ADDR_ERR_PORT);
	refused(":7443", 0, LINK_ADDR_ERR_HOST);
	refused("ex ample:7443", 0, LINK_ADDR_ERR_HOST);
	refused("ex_ample:7443", 0, LINK_ADDR_ERR_HOST);
	refused("h\nost:7443", 0, LINK_ADDR_ERR_HOST);
	refused("host#:7443", 0, LINK_ADDR_ERR_HOST);
	/* IPv6: in brackets, and only it */
	refused("::1:7443", 0, LINK_ADDR_ERR_BRACKETS);
	refused("[::1:7443", 0, LINK_ADDR_ERR_BRACKETS);
	refused("::1]:7443", 0, LINK_ADDR_ERR_BRACKETS);
	refused("[]:7443", 0, LINK_ADDR_ERR_BRACKETS);
	refused("[127.0.0.1]:7443", 0, LINK_ADDR_ERR_BRACKETS);
	refused("[localhost]:7443", 0, LINK_ADDR_ERR_BRACKETS);
	refused("[::1]x:7443", 0, LINK_ADDR_ERR_BRACKETS);
	refused("[::1]]:7443", 0, LINK_ADDR_ERR_BRACKETS);
	/* a name where something to bind is wanted */
	refused("localhost:9464", LINK_ADDR_NUMERIC | LINK_ADDR_ANY_PORT, LINK_ADDR_ERR_NUMERIC);
	refused("999.0.0.1:9464", LINK_ADDR_NUMERIC, LINK_ADDR_ERR_NUMERIC);
}

/* A DNS name is at most 253 characters: that passes, one more does not, and text far past
 * any limit is refused without being read to its end. */
static void test_lengths(void **state)
{
	(void)state;
	char text[LINK_ADDR_TEXT_MAX + 64], host[LINK_ADDR_HOST_MAX + 1];
	memset(host, 'a', 253);
	host[253] = '\0';
	snprintf(text, sizeof(text), "%s:7443", host);
	accepted(text, 0, host, 7443, AF_UNSPEC);
	snprintf(text, sizeof(text), "a%s:7443", host);
	refused(text, 0, LINK_ADDR_ERR_LONG);
	static char huge[100000];
	memset(huge, 'a', sizeof(huge) - 1);
	refused(huge, 0, LINK_ADDR_ERR_LONG);
	assert_true(strlen("[") + 253 + strlen("]:65535") >= LINK_ADDR_TEXT_MAX);
}

static void test_sockaddr(void **state)
{
	(void)state;
	struct link_addr a;
	struct sockaddr_storage ss;
	socklen_t len = 0;
	assert_int_equal(link_addr_parse("192.0.2.7:443", 0, &a), 0);
	assert_int_equal(link_addr_sockaddr(&a, &ss, &len), 0);
	const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
	assert_int_equal(len, sizeof(*in));
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(ntohs(in->sin_port), 443);
	assert_int_equal(ntohl(in->sin_addr.s_addr), 0xC0000207);
	assert_int_equal(link_addr_parse("[2001:db8::2]:7443", 0, &a), 0);
	assert_int_equal(link_addr_sockaddr(&a, &ss, &len), 0);
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
	assert_int_equal(len, sizeof(*in6));
	assert_int_equal(in6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(in6->sin6_port), 7443);
	assert_int_equal(in6->sin6_addr.s6_addr[0], 0x20);
	assert_int_equal(in6->sin6_addr.s6_addr[15], 0x02);
	assert_int_equal(link_addr_parse("localhost:7443", 0, &a), 0);
	assert_int_equal(link_addr_sockaddr(&a, &ss, &len), -1); /* a name: resolved elsewhere */
}

/* issue 16: a gate's servers, "a:1, b:2", tried in order */
static void list_refused(const char *text, int want, size_t want_bad)
{
	struct link_addr a[3];
	size_t n = 99, bad = 99;
	memset(a, 0x5A, sizeof(a));
	print_message("list refused? %s\n", text);
	assert_int_equal(link_addr_list_parse(text, 0, a, 3, &n, &bad), want);
	assert_int_equal(n, 0);
	assert_int_equal(bad, want_bad);
	static const struct link_addr zero[3];
	assert_memory_equal(a, zero, sizeof(a));
	assert_true(strlen(link_addr_strerror(want)) > 10);
}

static void test_list(void **state)
{
	(void)state;
	struct link_addr a[3];
	size_t n = 0, bad = 99;
	assert_int_equal(link_addr_list_parse("127.0.0.1:7443", 0, a, 3, &n, &bad), 0);
	assert_int_equal(n, 1);
	assert_int_equal(bad, 0);
	assert_string_equal(a[0].host, "127.0.0.1");
	assert_int_equal(
	        link_addr_list_parse(" a.example:1 ,[2001:db8::1]:2,  b:3 ", 0, a, 3, &n, &bad), 0);
	assert_int_equal(n, 3);
	assert_string_equal(a[0].host, "a.example");
	assert_int_equal(a[0].port, 1);
	assert_string_equal(a[1].host, "2001:db8::1");
	assert_int_equal(a[1].family, AF_INET6);
	assert_string_equal(a[2].host, "b");
	assert_int_equal(a[2].port, 3);
	/* the same host on another port is another server (two instances on one machine) */
	assert_int_equal(link_addr_list_parse("h:1,h:2", 0, a, 3, &n, &bad), 0);
	assert_int_equal(n, 2);

	list_refused("", LINK_ADDR_ERR_ARG, 0);
	list_refused("   ", LINK_ADDR_ERR_ARG, 0);
	list_refused("a:1,,b:2", LINK_ADDR_ERR_LIST_EMPTY, 2);
	list_refused("a:1,", LINK_ADDR_ERR_LIST_EMPTY, 2);
	list_refused(",a:1", LINK_ADDR_ERR_LIST_EMPTY, 1);
	list_refused("a:1, b:0", LINK_ADDR_ERR_PORT, 2);
	list_refused("a:1 b:2", LINK_ADDR_ERR_BRACKETS, 1);
	list_refused("a:1,b:2,c:3,d:4", LINK_ADDR_ERR_LIST_MANY, 4);
	list_refused("A.example:1, a.EXAMPLE:1", LINK_ADDR_ERR_LIST_TWICE, 2);
	list_refused("[::1]:1,[::1]:1", LINK_ADDR_ERR_LIST_TWICE, 2);
	list_refused("a:1;b:2", LINK_ADDR_ERR_BRACKETS, 1);
	assert_int_equal(link_addr_list_parse(NULL, 0, a, 3, &n, &bad), LINK_ADDR_ERR_ARG);
	assert_int_equal(link_addr_list_parse("a:1", 0, a, 0, &n, &bad), LINK_ADDR_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_accepted), cmocka_unit_test(test_refused),
	        cmocka_unit_test(test_lengths),  cmocka_unit_test(test_sockaddr),
	        cmocka_unit_test(test_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
