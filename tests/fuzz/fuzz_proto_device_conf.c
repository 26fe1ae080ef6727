/*
 * fuzz_proto_device_conf.c — device.conf's reader (proto/device_conf.h) on hostile text.
 * Beyond "no crash, no read past the text": what it accepts is in range and every text
 * value is one line the format can carry; a refusal says why and leaves nothing half-read;
 * and a file holding every key survives the trip through the one writer and back unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/device_conf.h"
#include "proto/error.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_proto_device_conf: %s\n", what);
	abort();
}

static void check_text(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	if (n == cap)
		fail("an accepted value without its NUL");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == '#' || s[i] == 0x7F)
			fail("an accepted value the line format cannot carry");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_device_conf c, again;
	static char text[PROTO_DEVICE_CONF_TEXT_MAX];
	unsigned lines[PROTO_DEVICE_KEYS], line = 0;
	char err[300] = "";
	int rc = proto_device_conf_parse((const char *)data, size, &c, lines, err, sizeof(err),
	                                 &line);
	if (rc != 0) {
		static const struct proto_device_conf zero;
		if (rc != PROTO_ERR_BUNDLE || err[0] == '\0')
			fail("a refusal without its sentence");
		if (memcmp(&c, &zero, sizeof(c)) != 0)
			fail("a refused file left values behind");
		return 0;
	}
	if (c.format < 1 || c.format > PROTO_DEVICE_CONF_FORMAT || c.gate == 0 || c.site == 0 ||
	    c.sector == 0 || c.antipassback_minutes > 1440 || c.refused_fares > 15 ||
	    (c.expiry == PROTO_EXPIRY_GRACE && (c.grace_hours < 1 || c.grace_hours > 720)) ||
	    (c.expiry != PROTO_EXPIRY_GRACE && c.expiry != PROTO_EXPIRY_REFUSE))
		fail("an accepted file out of range");
	if (!c.device_id[0] || !c.server[0] || !c.tz[0])
		fail("an accepted file without a mandatory value");
	const char *texts[] = {c.device_id,   c.site_name, c.sector_name,
	                       c.server_name, c.tz,        c.period_tz};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		check_text(texts[i], i == 0 ? PROTO_DEVICE_ID_MAX : PROTO_DEVICE_TEXT_MAX);
	check_text(c.hours, sizeof(c.hours));
	check_text(c.server, sizeof(c.server));
	if (c.format < 3 && strchr(c.server, ','))
		fail("several servers accepted before format 3");
	for (unsigned i = 0; i < PROTO_DEVICE_FILES; i++) {
		check_text(c.file[i], sizeof(c.file[i]));
		/* the gate certificate is optional (format 3, issue 17) */
		if (!c.file[i][0] && i != PROTO_DEVICE_GATE_CERT)
			fail("an accepted file without one of its files");
	}
	if (c.format < 3 && c.file[PROTO_DEVICE_GATE_CERT][0])
		fail("a gate certificate accepted before format 3");
	/* a format-1 file may lack what the writer always writes: only whole ones go back */
	for (unsigned k = PROTO_DEVICE_KEY_DEVICE_ID; k < PROTO_DEVICE_KEYS; k++)
		if (!lines[k] && k != PROTO_DEVICE_KEY_REFUSED_FARES &&
		    k != PROTO_DEVICE_KEY_GATE_CERT)
			return 0;
	int n = proto_device_conf_write(&c, text, sizeof(text), err, sizeof(err));
	if (n <= 0)
		fail("an accepted file does not write back");
	if (proto_device_conf_parse(text, (size_t)n, &again, NULL, err, sizeof(err), &line) != 0)
		fail("what the writer wrote does not read");
	/* the writer writes the oldest format that carries the file (issues 16 and 17) */
	c.format = strchr(c.server, ',') || c.file[PROTO_DEVICE_GATE_CERT][0] ? 3 : 2;
	if (memcmp(&c, &again, sizeof(c)) != 0)
		fail("the trip through the writer changed a value");
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static const char v2[] =
	        "# citypass controller provisioning (docs/admin.md)\n"
	        "format = 2\ndevice-id = g1\ngate = 1\nsite = 1\n"
	        "site-name = pool-n\nsector = 1\nsector-name = pool\n"
	        "server = [::1]:7443\nserver-name = localhost\ntz = Europe/Paris\n"
	        "period-tz = UTC\nhours = Mon-Fri 09:00-12:00;Sat 10:00-18:00\n"
	        "antipassback-minutes = 30\nrefused-fares = 3\n"
	        "expiry-policy = grace:48\ncertificate = device.crt\n"
	        "private-key = device.key\nca = ca.crt\n"
	        "list-public-key = list.pub.pem\nissuer-public-key = issuer.pub.pem\n"
	        "card-key = card-sector.key\n";
	emit((const uint8_t *)v2, sizeof(v2) - 1, ctx);
	/* format 3: a gate certificate (issue 17) */
	static const char v3_gate[] =
	        "# citypass controller provisioning (docs/admin.md)\n"
	        "format = 3\ndevice-id = g1\ngate = 1\nsite = 1\n"
	        "site-name = pool-n\nsector = 1\nsector-name = pool\n"
	        "server = [::1]:7443\nserver-name = localhost\ntz = Europe/Paris\n"
	        "period-tz = UTC\nhours = always\n"
	        "antipassback-minutes = 30\n"
	        "expiry-policy = refuse\ncertificate = device.crt\n"
	        "private-key = device.key\nca = ca.crt\n"
	        "list-public-key = list.pub.pem\nissuer-public-key = issuer.pub.pem\n"
	        "card-key = card-sector.key\ngate-certificate = gate.cert\n";
	emit((const uint8_t *)v3_gate, sizeof(v3_gate) - 1, ctx);
	/* format 1, as the previous release wrote it, with a comment after a value */
	static const char v1[] =
	        "device-id = pool-east\ngate = 1\nsite = 1\nsector = 1\n"
	        "server = 127.0.0.1:7443 # town hall\ntz = Europe/Paris\n"
	        "expiry-policy = refuse\n"
	        "certificate = device.crt\nprivate-key = device.key\nca = ca.crt\n"
	        "list-public-key = list.pub.pem\nissuer-public-key = issuer.pub.pem\n"
	        "card-key = card-sector.key\n";
	emit((const uint8_t *)v1, sizeof(v1) - 1, ctx);
	/* format 3: several servers (issue 16) */
	static const char v3[] =
	        "format = 3\ndevice-id = g1\ngate = 1\nsite = 1\n"
	        "site-name = pool-n\nsector = 1\nsector-name = pool\n"
	        "server = sync-a.example:7443, [::1]:7443,127.0.0.1:7444\n"
	        "server-name = localhost\ntz = Europe/Paris\n"
	        "period-tz = UTC\nhours = always\nantipassback-minutes = 0\n"
	        "expiry-policy = refuse\ncertificate = device.crt\n"
	        "private-key = device.key\nca = ca.crt\n"
	        "list-public-key = list.pub.pem\nissuer-public-key = issuer.pub.pem\n"
	        "card-key = card-sector.key\n";
	emit((const uint8_t *)v3, sizeof(v3) - 1, ctx);
}
