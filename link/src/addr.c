/*
 * link/src/addr.c — "HOST:PORT" (link/addr.h): the one parser the gate, the sync server,
 * the metrics endpoints and citypass-admin share, so an address one accepts the others do.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "link/addr.h"

/* 1 to 5 digits, nothing else (no sign, no space: strtoul would take both). */
static int parse_port(const char *s, unsigned flags, uint16_t *port)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5)
		return LINK_ADDR_ERR_PORT;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return LINK_ADDR_ERR_PORT;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535 || (v == 0 && !(flags & LINK_ADDR_ANY_PORT)))
		return LINK_ADDR_ERR_PORT;
	*port = (uint16_t)v;
	return 0;
}

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.';
}

int link_addr_parse(const char *text, unsigned flags, struct link_addr *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!text || !out)
		return LINK_ADDR_ERR_ARG;
	size_t len = strnlen(text, LINK_ADDR_TEXT_MAX + 1);
	if (len > LINK_ADDR_TEXT_MAX)
		return LINK_ADDR_ERR_LONG;
	const char *colon = strrchr(text, ':');
	if (!colon)
		return LINK_ADDR_ERR_NO_PORT;
	int rc = parse_port(colon + 1, flags, &out->port);
	if (rc)
		return rc;
	const char *h = text;
	size_t hl = (size_t)(colon - text);
	int bracketed = hl > 0 && text[0] == '[';
	if (bracketed) {
		/* "[2001:db8::1]:7443": the brackets only delimit the address from its port */
		if (hl < 3 || text[hl - 1] != ']') {
			rc = LINK_ADDR_ERR_BRACKETS;
			goto done;
		}
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(out->host)) {
		rc = hl == 0 ? LINK_ADDR_ERR_HOST : LINK_ADDR_ERR_LONG;
		goto done;
	}
	memcpy(out->host, h, hl);
	out->host[hl] = '\0';
	struct in6_addr a;
	if (bracketed) {
		rc = inet_pton(AF_INET6, out->host, &a) == 1 ? 0 : LINK_ADDR_ERR_BRACKETS;
		out->family = AF_INET6;
		goto done;
	}
	for (size_t i = 0; rc == 0 && i < hl; i++) {
		if (out->host[i] == ':' || out->host[i] == '[' || out->host[i] == ']')
			rc = LINK_ADDR_ERR_BRACKETS;
		else if (!name_char(out->host[i]))
			rc = LINK_ADDR_ERR_HOST;
	}
	if (rc == 0 && inet_pton(AF_INET, out->host, &a) == 1)
		out->family = AF_INET;
	else if (rc == 0 && (flags & LINK_ADDR_NUMERIC))
		rc = LINK_ADDR_ERR_NUMERIC;
	else
		out->family = AF_UNSPEC;
done:
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

int link_addr_list_parse(const char *text, unsigned flags, struct link_addr *out, size_t max,
                         size_t *n, size_t *bad)
{
	size_t count = 0, pos = 0;
	int rc = 0;
	if (n)
		*n = 0;
	if (bad)
		*bad = 0;
	if (!text || !out || !n || max == 0)
		return LINK_ADDR_ERR_ARG;
	memset(out, 0, max * sizeof(*out));
	const char *p = text;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char item[LINK_ADDR_TEXT_MAX + 1];
		pos++;
		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0) {
			rc = pos == 1 && !end ? LINK_ADDR_ERR_ARG : LINK_ADDR_ERR_LIST_EMPTY;
			break;
		}
		if (len > LINK_ADDR_TEXT_MAX) {
			rc = LINK_ADDR_ERR_LONG;
			break;
		}
		if (count == max) {
			rc = LINK_ADDR_ERR_LIST_MANY;
			break;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if ((rc = link_addr_parse(item, flags, &out[count])) != 0)
			break;
		for (size_t i = 0; i < count && rc == 0; i++)
			if (out[i].port == out[count].port &&
			    strcasecmp(out[i].host, out[count].host) == 0)
				rc = LINK_ADDR_ERR_LIST_TWICE;
		if (rc)
			break;
		count++;
		if (!end)
			break;
		p = end + 1;
	}
	if (rc) {
		memset(out, 0, max * sizeof(*out));
		if (bad)
			*bad = rc == LINK_ADDR_ERR_ARG ? 0 : pos;
		return rc;
	}
	*n = count;
	return 0;
}

const char *link_addr_strerror(int err)
{
	switch (err) {
	case 0:
		return "no error";
	case LINK_ADDR_ERR_ARG:
		return "no address given";
	case LINK_ADDR_ERR_LONG:
		return "longer than a host name and a port can be";
	case LINK_ADDR_ERR_NO_PORT:
		return "no ':PORT' at its end";
	case LINK_ADDR_ERR_PORT:
		return "the port must be a number from 1 to 65535";
	case LINK_ADDR_ERR_HOST:
		return "the host must be an address or a name of letters, digits, '-' and '.'";
	case LINK_ADDR_ERR_BRACKETS:
		return "an IPv6 address goes in brackets ([2001:db8::1]:7443), and only it";
	case LINK_ADDR_ERR_NUMERIC:
		return "the host must be an IP address, not a name";
	case LINK_ADDR_ERR_LIST_EMPTY:
		return "an empty place in the list: addresses are separated by single commas";
	case LINK_ADDR_ERR_LIST_MANY:
		return "more addresses than allowed";
	case LINK_ADDR_ERR_LIST_TWICE:
		return "the same address given twice";
	default:
		return "not an address";
	}
}

int link_addr_sockaddr(const struct link_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (a->family == AF_INET && inet_pton(AF_INET, a->host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		*len = sizeof(*in);
		return 0;
	}
	if (a->family == AF_INET6 && inet_pton(AF_INET6, a->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(a->port);
		*len = sizeof(*in6);
		return 0;
	}
	return -1;
}
