/*
 * citypass-token — the reference phone wallet (DESIGN.md s.3 "Phone tokens", s.8).
 *
 * A wallet is a directory (mode 0700) holding, per service sector N:
 *   sector-N.key          the phone's private key for that sector (PEM, mode 0600)
 *   sector-N.request.pem  its public key: the credential request handed to the issuer
 *   sector-N.cred         the credential the issuer signed (binary, docs/phone-tokens.md)
 * and once:
 *   gate-ca.crt           the deployment's device CA certificate(s), PEM: the phone answers
 *                         only readers whose gate certificate one of them signed (issue 17)
 * Keys never leave the wallet; the issuer sees only the public key of one sector at a time.
 *
 * Exit status: 0 done, 1 refused (bad key, file exists, credential mismatch, I/O), 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "cardlib/error.h"
#include "cardlib/token.h"
#include "proto/error.h"
#include "proto/sign.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE   2
#define FILE_MAX     8192

static const char *prog = "citypass-token";

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* --- argument parsing ----------------------------------------------------------------- */

static int parse_sector(const char *s, uint16_t *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 65535) {
		say("--sector '%s': expected a sector number from 0 to 65535", s);
		return -1;
	}
	*out = (uint16_t)v;
	return 0;
}

static int parse_time(const char *opt, const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0) {
		say("%s '%s': expected Unix seconds (a non-negative integer)", opt, s);
		return -1;
	}
	*out = (int64_t)v;
	return 0;
}

static int parse_hex16(const char *s, uint8_t out[16])
{
	if (strlen(s) != 32)
		goto bad;
	for (int i = 0; i < 16; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1 ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i + 1]))
			goto bad;
		out[i] = (uint8_t)v;
	}
	return 0;
bad:
	say("--id '%s': expected 32 hexadecimal digits (the pass's 16-byte sector identifier)", s);
	return -1;
}

/* --- files ---------------------------------------------------------------------------- */

static int read_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		say("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	*len = fread(buf, 1, cap, f); /* callers pass one byte more than they accept */
	int too_long = !feof(f), err = ferror(f);
	fclose(f);
	if (err || too_long) {
		if (err)
			say("%s: read error", path);
		else
			say("%s: too large (at most %zu bytes expected)", path, cap - 1);
		return -1;
	}
	return 0;
}

/* Create path with mode; refuses to overwrite unless replace (then via a rename). */
static int write_file(const char *path, const void *data, size_t len, mode_t mode, int replace)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		say("%s: path too long", path);
		return -1;
	}
	const char *target = replace ? tmp : path;
	int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		say("cannot create %s: %s", target, strerror(errno));
		return -1;
	}
	ssize_t n = write(fd, data, len);
	int ok = n == (ssize_t)len && fchmod(fd, mode) == 0 && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (ok && replace && rename(tmp, path) != 0)
		ok = 0;
	if (!ok) {
		say("cannot write %s: %s", path, strerror(errno));
		unlink(target);
		return -1;
	}
	return 0;
}

static int wallet_path(char *buf, size_t cap, const char *wallet, uint16_t sector, const char *what)
{
	if (snprintf(buf, cap, "%s/sector-%u.%s", wallet, (unsigned)sector, what) >= (int)cap) {
		say("--wallet '%s': path too long", wallet);
		return -1;
	}
	return 0;
}

static struct proto_key *load_key(const char *path, int want_private)
{
	struct proto_key *k = NULL;
	int rc = proto_key_load(&k, path);
	if (rc == PROTO_ERR_IO) {
		say("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (rc != 0) {
		say("%s: not an EC P-256 key in PEM or DER", path);
		return NULL;
	}
	if (want_private && !proto_key_is_private(k)) {
		say("%s: a public key, expected a private key", path);
		proto_key_free(k);
		return NULL;
	}
	return k;
}

/* The sector's credential and key from the wallet: 0, or -1 with a message. */
static int load_sector(const char *wallet, uint16_t sector, uint8_t *cred, size_t *cred_len,
                       struct proto_key **key)
{
	char path[4096];
	struct stat st;
	if (wallet_path(path, sizeof(path), wallet, sector, "cred"))
		return -1;
	if (stat(path, &st) != 0) {
		say("wallet %s holds no credential for sector %u (%s): enrol, then install", wallet,
		    (unsigned)sector, path);
		return -1;
	}
	if (read_file(path, cred, CARDLIB_TOKEN_CRED_MAX + 1, cred_len))
		return -1;
	if (wallet_path(path, sizeof(path), wallet, sector, "key"))
		return -1;
	*key = load_key(path, 1);
	return *key ? 0 : -1;
}

/*
 * The device CA certificate(s) of a PEM file (ca.crt: the newest CA first, then the ones
 * it replaced) given to the phone: the number of CA keys added, or -1 with a message. Only
 * the public keys are used: the phone checks compact gate certificates, not X.509 chains.
 */
static int load_gate_cas(const char *path, struct cardlib_phone *p)
{
	mbedtls_x509_crt chain;
	mbedtls_x509_crt_init(&chain);
	int n = 0, rc = mbedtls_x509_crt_parse_file(&chain, path);
	if (rc != 0) {
		say("%s: not a PEM certificate file (mbedTLS error -0x%04x)", path, (unsigned)-rc);
		n = -1;
	}
	for (const mbedtls_x509_crt *c = &chain; n >= 0 && c && c->raw.len; c = c->next) {
		unsigned char der[256];
		/* mbedtls_pk_write_pubkey_der writes at the end of the buffer */
		int len =
		        mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&c->pk, der, sizeof(der));
		struct proto_key *k = NULL;
		if (len <= 0 ||
		    proto_key_parse_public(&k, der + sizeof(der) - len, (size_t)len) != 0) {
			say("%s: certificate %d does not hold an EC P-256 key", path, n + 1);
			n = -1;
			break;
		}
		rc = p ? cardlib_phone_add_gate_ca(p, k) : 0;
		proto_key_free(k);
		if (rc != 0) {
			say("%s: %s", path, cardlib_strerror(rc));
			n = -1;
			break;
		}
		n++;
	}
	mbedtls_x509_crt_free(&chain);
	if (n == 0)
		say("%s: no certificate", path);
	return n > 0 ? n : -1;
}

/* --- subcommands ---------------------------------------------------------------------- */

struct opts {
	const char *wallet, *socket, *issuer_key, *request, *out, *credential, *gate_ca, *trace;
	const char *ca_key, *gate_key, *device_id;
	uint16_t sector;
	int has_sector, has_id, has_from, has_until, has_time;
	uint8_t id[16];
	int64_t from, until, time;
};

static int need(const char *cmd, const char *name, int present)
{
	if (!present) {
		say("%s: missing %s (see %s %s --help)", cmd, name, prog, cmd);
		return -1;
	}
	return 0;
}

static int cmd_enrol(const struct opts *o)
{
	if (need("enrol", "--wallet DIR", o->wallet != NULL) ||
	    need("enrol", "--sector N", o->has_sector))
		return EXIT_USAGE;
	if (mkdir(o->wallet, 0700) != 0 && errno != EEXIST) {
		say("cannot create wallet %s: %s", o->wallet, strerror(errno));
		return EXIT_REFUSED;
	}
	char key_path[4096], req_path[4096], pem[1024];
	if (wallet_path(key_path, sizeof(key_path), o->wallet, o->sector, "key") ||
	    wallet_path(req_path, sizeof(req_path), o->wallet, o->sector, "request.pem"))
		return EXIT_USAGE;
	if (access(key_path, F_OK) == 0) {
		say("wallet %s already holds a key for sector %u (%s): not replaced", o->wallet,
		    (unsigned)o->sector, key_path);
		return EXIT_REFUSED;
	}
	struct proto_key *k = NULL;
	int rc = proto_key_generate(&k);
	if (rc != 0) {
		say("cannot generate a key: %s", proto_strerror(rc));
		return EXIT_REFUSED;
	}
	int status = EXIT_REFUSED;
	if (proto_key_private_pem(k, pem, sizeof(pem)) == 0 &&
	    write_file(key_path, pem, strlen(pem), 0600, 0) == 0) {
		if (proto_key_public_pem(k, pem, sizeof(pem)) == 0 &&
		    write_file(req_path, pem, strlen(pem), 0644, 1) == 0) {
			printf("%s\n", req_path);
			status = EXIT_SUCCESS;
		} else {
			unlink(key_path);
		}
	}
	memset(pem, 0, sizeof(pem));
	proto_key_free(k);
	return status;
}

static int cmd_issue(const struct opts *o)
{
	if (need("issue", "--issuer-key PEM", o->issuer_key != NULL) ||
	    need("issue", "--request FILE", o->request != NULL) ||
	    need("issue", "--id HEX32", o->has_id) || need("issue", "--sector N", o->has_sector) ||
	    need("issue", "--from T", o->has_from) || need("issue", "--until T", o->has_until) ||
	    need("issue", "--out FILE", o->out != NULL))
		return EXIT_USAGE;
	if (o->until <= o->from) {
		say("--until %" PRId64 ": must be after --from %" PRId64, o->until, o->from);
		return EXIT_USAGE;
	}
	struct proto_key *issuer = load_key(o->issuer_key, 1);
	if (!issuer)
		return EXIT_REFUSED;
	struct proto_key *phone = load_key(o->request, 0);
	int status = EXIT_REFUSED;
	if (phone) {
		uint8_t cred[CARDLIB_TOKEN_CRED_MAX];
		int n = cardlib_token_issue(issuer, o->sector, o->id, phone, o->from, o->until,
		                            cred, sizeof(cred));
		if (n < 0)
			say("cannot issue: %s", cardlib_strerror(n));
		else if (write_file(o->out, cred, (size_t)n, 0644, 0) == 0)
			status = EXIT_SUCCESS;
	}
	proto_key_free(phone);
	proto_key_free(issuer);
	return status;
}

static int cmd_install(const struct opts *o)
{
	if (need("install", "--wallet DIR", o->wallet != NULL) ||
	    need("install", "--credential FILE", o->credential != NULL))
		return EXIT_USAGE;
	uint8_t cred[FILE_MAX];
	size_t len;
	struct cardlib_token_credential c;
	if (read_file(o->credential, cred, sizeof(cred), &len))
		return EXIT_REFUSED;
	int rc = cardlib_token_credential_decode(&c, cred, len);
	if (rc != 0) {
		say("%s: %s", o->credential, cardlib_strerror(rc));
		return EXIT_REFUSED;
	}
	char path[4096];
	if (wallet_path(path, sizeof(path), o->wallet, c.sector, "key"))
		return EXIT_USAGE;
	struct proto_key *k = load_key(path, 1);
	if (!k)
		return EXIT_REFUSED;
	struct cardlib_phone *p = NULL;
	rc = cardlib_phone_new(&p);
	if (rc == 0)
		rc = cardlib_phone_add_sector(p, cred, len, k);
	cardlib_phone_free(p);
	proto_key_free(k);
	if (rc != 0) {
		say("%s: the credential does not bind this wallet's key for sector %u (%s)",
		    o->credential, (unsigned)c.sector, cardlib_strerror(rc));
		return EXIT_REFUSED;
	}
	/* The device CA, given with the credential (citypass-admin pass issue writes
	 * gate-ca.crt beside it): without it the phone answers no gate. */
	char ca[4096];
	const char *slash = strrchr(o->credential, '/');
	if (o->gate_ca)
		snprintf(ca, sizeof(ca), "%s", o->gate_ca);
	else
		snprintf(ca, sizeof(ca), "%.*sgate-ca.crt",
		         slash ? (int)(slash - o->credential + 1) : 0, o->credential);
	uint8_t *ca_pem = NULL;
	size_t ca_len = 0;
	int have_ca = o->gate_ca || access(ca, F_OK) == 0;
	if (have_ca) {
		if (load_gate_cas(ca, NULL) < 0)
			return EXIT_REFUSED;
		if (!(ca_pem = malloc(FILE_MAX)) || read_file(ca, ca_pem, FILE_MAX, &ca_len)) {
			free(ca_pem);
			return EXIT_REFUSED;
		}
	}
	if (wallet_path(path, sizeof(path), o->wallet, c.sector, "cred") ||
	    write_file(path, cred, len, 0644, 1)) {
		free(ca_pem);
		return EXIT_REFUSED;
	}
	printf("sector %u: credential installed, valid %" PRId64 " to %" PRId64 "\n",
	       (unsigned)c.sector, c.valid_from, c.valid_until);
	if (have_ca) {
		snprintf(path, sizeof(path), "%s/gate-ca.crt", o->wallet);
		rc = write_file(path, ca_pem, ca_len, 0644, 1);
		free(ca_pem);
		if (rc)
			return EXIT_REFUSED;
		printf("device CA installed: the phone answers this deployment's gates only\n");
	}
	return EXIT_SUCCESS;
}

static int cmd_gate_cert(const struct opts *o)
{
	if (need("gate-cert", "--ca-key PEM", o->ca_key != NULL) ||
	    need("gate-cert", "--gate-key PEM", o->gate_key != NULL) ||
	    need("gate-cert", "--sector N", o->has_sector) ||
	    need("gate-cert", "--device-id ID", o->device_id != NULL) ||
	    need("gate-cert", "--from T", o->has_from) ||
	    need("gate-cert", "--until T", o->has_until) ||
	    need("gate-cert", "--out FILE", o->out != NULL))
		return EXIT_USAGE;
	if (o->until <= o->from) {
		say("--until %" PRId64 ": must be after --from %" PRId64, o->until, o->from);
		return EXIT_USAGE;
	}
	struct proto_key *ca = load_key(o->ca_key, 1);
	struct proto_key *gate = ca ? load_key(o->gate_key, 0) : NULL;
	int status = EXIT_REFUSED;
	if (gate) {
		uint8_t cert[CARDLIB_GATE_CERT_MAX], id[CARDLIB_TOKEN_GATE_ID_LEN];
		cardlib_gate_id(o->device_id, id);
		int n = cardlib_gate_cert_issue(ca, o->sector, id, gate, o->from, o->until, cert,
		                                sizeof(cert));
		if (n < 0)
			say("cannot sign the gate certificate: %s", cardlib_strerror(n));
		else if (write_file(o->out, cert, (size_t)n, 0644, 0) == 0)
			status = EXIT_SUCCESS;
	}
	proto_key_free(gate);
	proto_key_free(ca);
	return status;
}

static int cmd_show_qr(const struct opts *o)
{
	if (need("show-qr", "--wallet DIR", o->wallet != NULL) ||
	    need("show-qr", "--sector N", o->has_sector))
		return EXIT_USAGE;
	uint8_t cred[CARDLIB_TOKEN_CRED_MAX + 1];
	size_t len;
	struct proto_key *k = NULL;
	if (load_sector(o->wallet, o->sector, cred, &len, &k))
		return EXIT_REFUSED;
	char line[CARDLIB_QR_LINE_MAX + 1];
	const int64_t now = o->has_time ? o->time : (int64_t)time(NULL);
	int n = cardlib_qr_encode(cred, len, k, now, line, sizeof(line));
	proto_key_free(k);
	if (n < 0) {
		say("sector %u: %s", (unsigned)o->sector, cardlib_strerror(n));
		return EXIT_REFUSED;
	}
	printf("%s\n", line);
	return EXIT_SUCCESS;
}

/* --- hce: the bench's external-target protocol (docs/hil.md "External targets") ------ */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int read_full(int fd, uint8_t *buf, size_t n)
{
	while (n) {
		ssize_t r = read(fd, buf, n);
		if (r < 0 && errno == EINTR && !stop_requested)
			continue;
		if (r <= 0)
			return -1;
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

static int send_msg(int fd, char type, const uint8_t *payload, size_t len)
{
	uint8_t buf[3 + 512];
	if (len > sizeof(buf) - 3)
		return -1;
	buf[0] = (uint8_t)type;
	buf[1] = (uint8_t)(len >> 8);
	buf[2] = (uint8_t)len;
	if (len)
		memcpy(buf + 3, payload, len);
	size_t off = 0, total = 3 + len;
	while (off < total) {
		ssize_t w = write(fd, buf + off, total - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

/* An ISO 14443-4 phone: ATQA 00 04, SAK 20, a random 4-byte UID starting 08 (ISO
 * 14443-3's random-ID range, as HCE phones do), and an ATS TL T0 TA TB TC. */
static int send_identity(int fd)
{
	static const uint8_t ats[] = {0x05, 0x78, 0x80, 0x70, 0x02};
	uint8_t msg[4 + 4 + 1 + sizeof(ats)] = {0x00, 0x04, 0x20, 4, 0x08};
	FILE *ur = fopen("/dev/urandom", "rb");
	if (!ur || fread(msg + 5, 1, 3, ur) != 3) {
		if (ur)
			fclose(ur);
		return -1;
	}
	fclose(ur);
	msg[8] = sizeof(ats);
	memcpy(msg + 9, ats, sizeof(ats));
	return send_msg(fd, 'I', msg, sizeof(msg));
}

/* One exchange as hex, for --trace: "> APDU" then "< ANSWER" (tests check the gate's
 * signature with openssl from it). */
static void trace_hex(FILE *t, char dir, const uint8_t *b, size_t n)
{
	if (!t)
		return;
	fprintf(t, "%c ", dir);
	for (size_t i = 0; i < n; i++)
		fprintf(t, "%02x", b[i]);
	fputc('\n', t);
	fflush(t);
}

/* Serve one bench connection until it hangs up or breaks the format. */
static void serve(int fd, struct cardlib_phone *p, int verbose, FILE *trace)
{
	uint8_t hdr[3], in[512], out[512];
	while (!stop_requested && read_full(fd, hdr, 3) == 0) {
		const size_t len = (size_t)hdr[1] << 8 | hdr[2];
		if (len > sizeof(in) || read_full(fd, in, len) != 0)
			break;
		int ok = 0;
		switch (hdr[0]) {
		case 'I':
			ok = send_identity(fd) == 0;
			break;
		case 'A':
		case 'D':
			cardlib_phone_deselect(p);
			ok = 1;
			break;
		case 'X': {
			int n = cardlib_phone_handle_apdu(p, in, len, out, 263);
			trace_hex(trace, '>', in, len);
			if (n >= 0)
				trace_hex(trace, '<', out, (size_t)n);
			if (verbose)
				fprintf(stderr, "%s: apdu %02x %02x (%zu bytes) -> %d bytes\n",
				        prog, len > 0 ? in[0] : 0, len > 1 ? in[1] : 0, len, n);
			ok = n < 0 ? send_msg(fd, 'S', NULL, 0) == 0
			           : send_msg(fd, 'X', out, (size_t)n) == 0;
			break;
		}
		default:
			say("hce: unknown message type 0x%02x, closing", hdr[0]);
		}
		if (!ok)
			break;
	}
	cardlib_phone_deselect(p);
}

/* Every sector of the wallet that has both a credential and its key. */
static int load_wallet(const char *wallet, struct cardlib_phone *p)
{
	DIR *d = opendir(wallet);
	if (!d) {
		say("cannot open wallet %s: %s", wallet, strerror(errno));
		return -1;
	}
	int loaded = 0, failed = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		unsigned sector;
		char tail[8];
		if (sscanf(e->d_name, "sector-%u.%7s", &sector, tail) != 2 ||
		    strcmp(tail, "cred") != 0 || sector > 65535)
			continue;
		uint8_t cred[CARDLIB_TOKEN_CRED_MAX + 1];
		size_t len;
		struct proto_key *k = NULL;
		if (load_sector(wallet, (uint16_t)sector, cred, &len, &k)) {
			failed = 1;
			continue;
		}
		int rc = cardlib_phone_add_sector(p, cred, len, k);
		proto_key_free(k);
		if (rc != 0) {
			say("wallet %s, sector %u: %s", wallet, sector, cardlib_strerror(rc));
			failed = 1;
			continue;
		}
		loaded++;
	}
	closedir(d);
	if (failed)
		return -1;
	if (!loaded) {
		say("wallet %s holds no installed credential", wallet);
		return -1;
	}
	return loaded;
}

static int cmd_hce(const struct opts *o, int verbose)
{
	if (need("hce", "--wallet DIR", o->wallet != NULL) ||
	    need("hce", "--socket PATH", o->socket != NULL))
		return EXIT_USAGE;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(o->socket) >= sizeof(sa.sun_path)) {
		say("--socket '%s': path too long for a Unix socket (max %zu bytes)", o->socket,
		    sizeof(sa.sun_path) - 1);
		return EXIT_USAGE;
	}
	strcpy(sa.sun_path, o->socket);
	struct cardlib_phone *p = NULL;
	if (cardlib_phone_new(&p) != 0)
		return EXIT_REFUSED;
	int n = load_wallet(o->wallet, p);
	char ca[4096];
	snprintf(ca, sizeof(ca), "%s/gate-ca.crt", o->wallet);
	if (n >= 0 && access(ca, F_OK) != 0)
		say("wallet %s holds no device CA (%s): no gate will be answered; install a "
		    "credential with its gate-ca.crt",
		    o->wallet, ca);
	else if (n >= 0 && load_gate_cas(ca, p) < 0)
		n = -1;
	FILE *trace = NULL;
	if (n >= 0 && o->trace && !(trace = fopen(o->trace, "a"))) {
		say("--trace '%s': %s", o->trace, strerror(errno));
		n = -1;
	}
	if (n < 0) {
		cardlib_phone_free(p);
		return EXIT_REFUSED;
	}
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct stat st;
	if (lstat(o->socket, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(o->socket); /* a stale socket of an earlier run */
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0) {
		say("cannot listen on %s: %s", o->socket, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		cardlib_phone_free(p);
		return EXIT_REFUSED;
	}
	struct sigaction act = {.sa_handler = on_signal};
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGTERM, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("hce: %d sector(s), listening on %s\n", n, o->socket);
	fflush(stdout);
	while (!stop_requested) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			say("accept on %s: %s", o->socket, strerror(errno));
			break;
		}
		serve(fd, p, verbose, trace);
		close(fd);
	}
	close(lfd);
	unlink(o->socket);
	if (trace)
		fclose(trace);
	cardlib_phone_free(p);
	return stop_requested ? EXIT_SUCCESS : EXIT_REFUSED;
}

/* --- main ----------------------------------------------------------------------------- */

static const char usage_main[] =
        "usage: citypass-token COMMAND [OPTIONS]   (reference phone wallet)\n"
        "\n"
        "  enrol    --wallet DIR --sector N        create the sector's key pair; prints the\n"
        "                                          credential request (public key PEM) path\n"
        "  install  --wallet DIR --credential FILE [--gate-ca FILE]\n"
        "                                          install a credential the issuer signed\n"
        "                                          and the device CA gates are checked with\n"
        "  show-qr  --wallet DIR --sector N [--time T]  print the current QR text line\n"
        "  hce      --wallet DIR --socket PATH [--verbose] [--trace FILE]\n"
        "                                          play the phone for the bench\n"
        "  issue    --issuer-key PEM --request FILE --id HEX32 --sector N --from T --until T\n"
        "           --out FILE                     sign a credential (tests and demos; the\n"
        "                                          server does this with citypass-admin)\n"
        "  gate-cert --ca-key PEM --gate-key PEM --sector N --device-id ID --from T --until T\n"
        "           --out FILE                     sign a gate certificate (tests and demos;\n"
        "                                          citypass-admin device add does it)\n"
        "\n"
        "  COMMAND --help for details; --version. Times T are Unix seconds.\n"
        "  Exit status: 0 done, 1 refused, 2 bad usage.\n";

static const struct {
	const char *name, *help;
} command_help[] = {
        {"enrol", "usage: citypass-token enrol --wallet DIR --sector N\n"
                  "Create the phone's ECDSA P-256 key pair for service sector N in the wallet\n"
                  "(DIR/sector-N.key, mode 0600; DIR created 0700) and the credential request\n"
                  "DIR/sector-N.request.pem (the public key). Prints the request's path.\n"
                  "Refuses to replace an existing key.\n"},
        {"install",
         "usage: citypass-token install --wallet DIR --credential FILE [--gate-ca FILE]\n"
         "Check that the credential is well formed and binds the wallet's key for its\n"
         "sector, then store it as DIR/sector-N.cred (replacing an older one).\n"
         "--gate-ca (default: gate-ca.crt beside the credential, when present, as\n"
         "citypass-admin pass issue writes it): the deployment's device CA\n"
         "certificate(s), stored as DIR/gate-ca.crt; the phone answers only gates\n"
         "whose gate certificate one of them signed.\n"},
        {"show-qr", "usage: citypass-token show-qr --wallet DIR --sector N [--time T]\n"
                    "Print the sector's QR code as one text line (CP1.<base64url>), valid for the\n"
                    "30-second step containing now (or T). docs/phone-tokens.md has the format.\n"},
        {"hce", "usage: citypass-token hce --wallet DIR --socket PATH [--verbose] [--trace FILE]\n"
                "Listen on the Unix socket PATH and play an HCE phone holding every installed\n"
                "credential, for `citypass-hil ctl place R external PATH` (docs/hil.md, External\n"
                "targets). It answers only readers proving they are gates of the wallet's\n"
                "deployment (DIR/gate-ca.crt). --trace: append every APDU and answer to FILE as\n"
                "hex lines ('> ' command, '< ' answer). Stops on SIGINT or SIGTERM.\n"},
        {"issue", "usage: citypass-token issue --issuer-key PEM --request FILE --id HEX32\n"
                  "                            --sector N --from T --until T --out FILE\n"
                  "Sign a credential with the issuer's private key: sector N, the pass's\n"
                  "identifier for that sector (32 hex digits), the phone public key of the\n"
                  "request, valid from T (inclusive) until T (exclusive), Unix seconds. Writes\n"
                  "FILE (refuses to overwrite). Issuers should align T to whole days, so that\n"
                  "validity does not link a pass's sectors (docs/phone-tokens.md).\n"},
        {"gate-cert",
         "usage: citypass-token gate-cert --ca-key PEM --gate-key PEM --sector N\n"
         "                                --device-id ID --from T --until T --out FILE\n"
         "Sign a gate certificate with the device CA's private key: the gate whose\n"
         "device id (certificate CN) is ID, of sector N, holds the private key of the\n"
         "gate key's public half; valid from T (inclusive) until T (exclusive).\n"
         "Writes FILE (refuses to overwrite). docs/phone-tokens.md s.3.1.\n"},
};

/* Whether a command's help names --name (then the command takes that option). */
static int help_names(const char *help, const char *name)
{
	const size_t n = strlen(name);
	for (const char *p = strstr(help, "--"); p; p = strstr(p + 2, "--")) {
		const char end = p[2 + n];
		if (!strncmp(p + 2, name, n) && end != '-' && !(end >= 'a' && end <= 'z'))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage_main, stdout);
		return EXIT_SUCCESS;
	}
	if (!strcmp(cmd, "--version")) {
		printf("citypass-token 1.0 (credential format %d)\n", CARDLIB_TOKEN_VERSION);
		return EXIT_SUCCESS;
	}
	const char *help = NULL;
	for (size_t i = 0; i < sizeof(command_help) / sizeof(command_help[0]); i++)
		if (!strcmp(cmd, command_help[i].name))
			help = command_help[i].help;
	if (!help) {
		say("unknown command '%s' (expected enrol, install, show-qr, hce, issue or "
		    "gate-cert)",
		    cmd);
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}

	enum {
		O_WALLET = 1,
		O_SECTOR,
		O_SOCKET,
		O_ISSUER,
		O_REQUEST,
		O_ID,
		O_FROM,
		O_UNTIL,
		O_OUT,
		O_CRED,
		O_TIME,
		O_VERBOSE,
		O_GATE_CA,
		O_TRACE,
		O_CA_KEY,
		O_GATE_KEY,
		O_DEVICE_ID,
		O_HELP
	};
	static const struct option longopts[] = {
	        {"wallet", required_argument, NULL, O_WALLET},
	        {"sector", required_argument, NULL, O_SECTOR},
	        {"socket", required_argument, NULL, O_SOCKET},
	        {"issuer-key", required_argument, NULL, O_ISSUER},
	        {"request", required_argument, NULL, O_REQUEST},
	        {"id", required_argument, NULL, O_ID},
	        {"from", required_argument, NULL, O_FROM},
	        {"until", required_argument, NULL, O_UNTIL},
	        {"out", required_argument, NULL, O_OUT},
	        {"credential", required_argument, NULL, O_CRED},
	        {"time", required_argument, NULL, O_TIME},
	        {"verbose", no_argument, NULL, O_VERBOSE},
	        {"gate-ca", required_argument, NULL, O_GATE_CA},
	        {"trace", required_argument, NULL, O_TRACE},
	        {"ca-key", required_argument, NULL, O_CA_KEY},
	        {"gate-key", required_argument, NULL, O_GATE_KEY},
	        {"device-id", required_argument, NULL, O_DEVICE_ID},
	        {"help", no_argument, NULL, O_HELP},
	        {NULL, 0, NULL, 0},
	};
	struct opts o = {0};
	int verbose = 0, c;
	opterr = 0;
	optind = 2;
	int at = -1;
	while ((c = getopt_long(argc, argv, "", longopts, &at)) != -1) {
		/* an option another command takes is a mistake, not something to ignore */
		if (c != '?' && c != O_HELP && at >= 0 && !help_names(help, longopts[at].name)) {
			say("%s: option '--%s' does not apply to this command", cmd,
			    longopts[at].name);
			fputs(help, stderr);
			return EXIT_USAGE;
		}
		at = -1;
		switch (c) {
		case O_WALLET:
			o.wallet = optarg;
			break;
		case O_SOCKET:
			o.socket = optarg;
			break;
		case O_ISSUER:
			o.issuer_key = optarg;
			break;
		case O_REQUEST:
			o.request = optarg;
			break;
		case O_OUT:
			o.out = optarg;
			break;
		case O_CRED:
			o.credential = optarg;
			break;
		case O_VERBOSE:
			verbose = 1;
			break;
		case O_GATE_CA:
			o.gate_ca = optarg;
			break;
		case O_TRACE:
			o.trace = optarg;
			break;
		case O_CA_KEY:
			o.ca_key = optarg;
			break;
		case O_GATE_KEY:
			o.gate_key = optarg;
			break;
		case O_DEVICE_ID:
			if (!*optarg || strlen(optarg) > 63) {
				say("--device-id '%s': expected 1 to 63 characters", optarg);
				return EXIT_USAGE;
			}
			o.device_id = optarg;
			break;
		case O_HELP:
			fputs(help, stdout);
			return EXIT_SUCCESS;
		case O_SECTOR:
			if (parse_sector(optarg, &o.sector))
				return EXIT_USAGE;
			o.has_sector = 1;
			break;
		case O_ID:
			if (parse_hex16(optarg, o.id))
				return EXIT_USAGE;
			o.has_id = 1;
			break;
		case O_FROM:
			if (parse_time("--from", optarg, &o.from))
				return EXIT_USAGE;
			o.has_from = 1;
			break;
		case O_UNTIL:
			if (parse_time("--until", optarg, &o.until))
				return EXIT_USAGE;
			o.has_until = 1;
			break;
		case O_TIME:
			if (parse_time("--time", optarg, &o.time))
				return EXIT_USAGE;
			o.has_time = 1;
			break;
		default:
			say("%s: unknown or incomplete option '%s'", cmd, argv[optind - 1]);
			fputs(help, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		say("%s: unexpected argument '%s'", cmd, argv[optind]);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "enrol"))
		return cmd_enrol(&o);
	if (!strcmp(cmd, "install"))
		return cmd_install(&o);
	if (!strcmp(cmd, "show-qr"))
		return cmd_show_qr(&o);
	if (!strcmp(cmd, "hce"))
		return cmd_hce(&o, verbose);
	if (!strcmp(cmd, "gate-cert"))
		return cmd_gate_cert(&o);
	return cmd_issue(&o);
}
