/*
 * office/office.h — citypass-office, the agents' web back office (DESIGN §12, issue 18;
 * docs/office.md): server-rendered French pages over HTTPS, on the same pass-lifecycle
 * library as citypass-admin (server/passes.h). One libevent loop; TLS by the daemon itself
 * (OpenSSL through libevent's bufferevent_openssl, docs/office.md says why).
 */
#ifndef OFFICE_OFFICE_H
#define OFFICE_OFFICE_H

#include <stddef.h>
#include <stdint.h>

#include "server/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OFFICE_READERS_MAX 8

/* A desk reader: the libnfc connection string of the reader on a desk, by the desk's name. */
struct office_desk_reader {
	const char *desk, *connstring;
};

struct office_config {
	const char *data;       /* the deployment's data directory (and office.db) */
	const char *host;       /* listening address (127.0.0.1 by default) */
	uint16_t port;          /* 0: any free port (written to port_file) */
	const char *cert, *key; /* PEM certificate chain and private key */
	const char *port_file;  /* written once listening (tests), or NULL */
	unsigned login_per_min; /* login attempts per client address per minute */
	size_t n_readers;
	struct office_desk_reader readers[OFFICE_READERS_MAX];
};

/* Serve until SIGTERM or SIGINT: 0, or an error with a sentence in *why. */
int office_serve(const struct office_config *c, struct server_why *why);

#ifdef __cplusplus
}
#endif

#endif /* OFFICE_OFFICE_H */
