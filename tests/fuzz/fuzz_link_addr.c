/*
 * fuzz_link_addr.c — the one "HOST:PORT" reader (link/addr.h) on hostile text: what it
 * accepts is in range, written back the way docs/admin.md writes addresses it reads again
 * unchanged, and a refusal leaves nothing half-parsed. The first byte picks the flags.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "link/addr.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_link_addr: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned flags = data[0] & (LINK_ADDR_NUMERIC | LINK_ADDR_ANY_PORT);
	char *text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	struct link_addr a, again;
	int rc = link_addr_parse(text, flags, &a);
	/* issue 16: the same text as a list of servers: every item one address that reads
	 * back alone, no two alike, a refusal leaving nothing behind */
	struct link_addr list[4];
	size_t n = 0, bad = 0;
	if (link_addr_list_parse(text, flags, list, 4, &n, &bad) == 0) {
		if (n < 1 || n > 4 || bad != 0)
			fail("a list accepted with a count out of range");
		for (size_t i = 0; i < n; i++) {
			char item[LINK_ADDR_TEXT_MAX + 1];
			snprintf(item, sizeof(item),
			         list[i].family == AF_INET6 ? "[%s]:%u" : "%s:%u", list[i].host,
			         (unsigned)list[i].port);
			if (link_addr_parse(item, flags, &again) != 0 ||
			    memcmp(&list[i], &again, sizeof(again)) != 0)
				fail("a list item does not read back alone");
			for (size_t j = 0; j < i; j++)
				if (list[j].port == list[i].port &&
				    strcasecmp(list[j].host, list[i].host) == 0)
					fail("a list accepted with one address twice");
		}
		if (n == 1 && rc != 0 && !strchr(text, ' '))
			fail("one address accepted as a list, refused alone");
	} else {
		static const struct link_addr zero[4];
		if (n != 0 || memcmp(list, zero, sizeof(list)) != 0)
			fail("a refused list left something behind");
	}
	free(text);
	if (rc != 0) {
		static const struct link_addr zero;
		if (memcmp(&a, &zero, sizeof(a)) != 0)
			fail("a refused address left something behind");
		return 0;
	}
	size_t hl = strnlen(a.host, sizeof(a.host));
	if (hl == 0 || hl >= sizeof(a.host))
		fail("an accepted host empty or unterminated");
	if ((a.port == 0 && !(flags & LINK_ADDR_ANY_PORT)) ||
	    (a.family == AF_UNSPEC && (flags & LINK_ADDR_NUMERIC)))
		fail("an accepted address the flags refuse");
	if (a.family != AF_INET6 && strchr(a.host, ':'))
		fail("a colon in a host that is not IPv6");
	char back[LINK_ADDR_TEXT_MAX + 1];
	snprintf(back, sizeof(back), a.family == AF_INET6 ? "[%s]:%u" : "%s:%u", a.host,
	         (unsigned)a.port);
	if (link_addr_parse(back, flags, &again) != 0 || memcmp(&a, &again, sizeof(a)) != 0)
		fail("an accepted address does not read back the same");
	struct sockaddr_storage ss;
	socklen_t len;
	if ((a.family != AF_UNSPEC) != (link_addr_sockaddr(&a, &ss, &len) == 0))
		fail("an address that is not a socket address, or a name that is");
	return 0;
}

static void emit_text(fuzz_emit_fn emit, void *ctx, uint8_t flags, const char *text)
{
	uint8_t buf[300];
	size_t n = strlen(text);
	buf[0] = flags;
	memcpy(buf + 1, text, n);
	emit(buf, n + 1, ctx);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	emit_text(emit, ctx, 0, "127.0.0.1:7443");
	emit_text(emit, ctx, 0, "[2001:db8::1]:7443");
	emit_text(emit, ctx, 0, "sync.example.org:7443");
	emit_text(emit, ctx, LINK_ADDR_NUMERIC | LINK_ADDR_ANY_PORT, "[::1]:0");
	emit_text(emit, ctx, LINK_ADDR_NUMERIC, "[::ffff:192.0.2.1]:65535");
	emit_text(emit, ctx, 0, "a.example:7443, [2001:db8::1]:7443,b:1");
}
