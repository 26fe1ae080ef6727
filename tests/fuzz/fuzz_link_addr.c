/*
 * fuzz_link_addr.c — the one "HOST:PORT" reader (link/addr.h) on hostile text: what it
 * accepts is in range, written back the way docs/admin.md writes addresses it reads again
 * unchanged, and a refusal leaves nothing half-parsed. The first byte picks the flags.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
}
