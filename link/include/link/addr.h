/*
 * link/addr.h — the one reader of "HOST:PORT" addresses (issue 14): where a gate reaches
 * its sync server (device.conf's `server`, `citypass-admin device add --server`), where the
 * sync server listens (--listen) and where a service publishes its metrics (`metrics`).
 *
 *   127.0.0.1:7443            an IPv4 address
 *   [2001:db8::1]:7443        an IPv6 address: always in brackets, the only place they go
 *   sync.example.org:7443     a host name (letters, digits, '-', '.'), resolved when used
 *
 * An IPv6 address without brackets is refused ("::1:7443" is ambiguous). The text is
 * untrusted (configuration files, command lines): every byte is checked, nothing is read
 * past its NUL, and a refusal says which part is wrong (link_addr_strerror).
 */
#ifndef LINK_ADDR_H
#define LINK_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LINK_ADDR_HOST_MAX 254 /* a DNS name's 253 characters, and the NUL */
/* the longest text accepted: a bracketed host and ":65535" */
#define LINK_ADDR_TEXT_MAX (LINK_ADDR_HOST_MAX - 1 + 2 + 6)

enum link_addr_flags {
	LINK_ADDR_NUMERIC = 1 << 0,  /* the host must be an IP address: something to bind */
	LINK_ADDR_ANY_PORT = 1 << 1, /* port 0 allowed: "any free port" (listeners) */
};

enum link_addr_error {
	LINK_ADDR_ERR_ARG = -1,         /* NULL text or out */
	LINK_ADDR_ERR_LONG = -2,        /* longer than LINK_ADDR_TEXT_MAX */
	LINK_ADDR_ERR_NO_PORT = -3,     /* no ':PORT' */
	LINK_ADDR_ERR_PORT = -4,        /* the port is not a number in range */
	LINK_ADDR_ERR_HOST = -5,        /* empty host, or a character no host name has */
	LINK_ADDR_ERR_BRACKETS = -6,    /* brackets not around an IPv6 address, or v6 without */
	LINK_ADDR_ERR_NUMERIC = -7,     /* a host name where LINK_ADDR_NUMERIC wants an address */
	LINK_ADDR_ERR_LIST_EMPTY = -8,  /* a list with an empty item ("a:1,,b:2", "a:1,") */
	LINK_ADDR_ERR_LIST_MANY = -9,   /* more addresses than the caller takes */
	LINK_ADDR_ERR_LIST_TWICE = -10, /* one address given twice */
};

struct link_addr {
	char host[LINK_ADDR_HOST_MAX]; /* without the brackets */
	uint16_t port;
	int family; /* AF_INET, AF_INET6, or AF_UNSPEC for a host name */
};

/* Parse text into *out (zeroed first). 0, or a LINK_ADDR_ERR_* value. */
int link_addr_parse(const char *text, unsigned flags, struct link_addr *out);

/*
 * A list of addresses (issue 16: a gate's servers, tried in order): "a:7443, b:7443" —
 * one to max items separated by commas, spaces around an item ignored, each read by
 * link_addr_parse with flags (no address holds a comma, brackets included). The same
 * address twice (host compared without case, and port) is refused: a typo, not a second
 * chance. 0 with *n set, or a LINK_ADDR_ERR_* value with *bad (may be NULL) the refused
 * item's position from 1 (0: the list as a whole); out[] is zeroed on refusal.
 */
int link_addr_list_parse(const char *text, unsigned flags, struct link_addr *out, size_t max,
                         size_t *n, size_t *bad);

/* What was wrong, as the end of a sentence: "the port must be a number from 1 to 65535". */
const char *link_addr_strerror(int err);

/* An IP address (family AF_INET or AF_INET6) as a socket address. 0, or -1 for a name. */
int link_addr_sockaddr(const struct link_addr *a, struct sockaddr_storage *ss, socklen_t *len);

#ifdef __cplusplus
}
#endif

#endif /* LINK_ADDR_H */
