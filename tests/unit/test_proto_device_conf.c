/*
 * device.conf, the bundle's provisioning file (proto/device_conf.h): the one writer writes
 * the text below (written here by hand, not by the writer), the one reader reads it back
 * unchanged; files the previous release wrote (no format line) still read; a newer format,
 * every malformed value and every value the line format cannot carry is refused with one
 * sentence and its line — by the writer too, before a bundle is made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/device_conf.h"
#include "proto/error.h"

static const struct proto_device_conf sample = {
        .format = 3, /* a gate certificate (issue 17): format 3 */
        .device_id = "pool-east_1.b",
        .gate = 4294967295u,
        .site = 12,
        .site_name = "Piscine de l'Est = été",
        .sector = 65535,
        .sector_name = "pool",
        .server = "[2001:db8::1]:7443",
        .server_name = "sync_1.example.org",
        .tz = "Europe/Paris",
        .period_tz = "America/New_York",
        .hours = "Mon-Fri 09:00-12:00,14:00-19:00;Sat 10:00-18:00",
        .antipassback_minutes = 1440,
        .refused_fares = 5,
        .expiry = PROTO_EXPIRY_GRACE,
        .grace_hours = 720,
        .file = {"device.crt", "/etc/citypass/device key.pem", "ca.crt", "list.pub.pem",
                 "issuer.pub.pem", "card-sector.key", "gate.cert"},
};

/* What the writer must write for sample: docs/admin.md's order, one key a line. */
static const char sample_text[] = "# citypass controller provisioning (docs/admin.md)\n"
                                  "format = 3\n"
                                  "device-id = pool-east_1.b\n"
                                  "gate = 4294967295\n"
                                  "site = 12\n"
                                  "site-name = Piscine de l'Est = été\n"
                                  "sector = 65535\n"
                                  "sector-name = pool\n"
                                  "server = [2001:db8::1]:7443\n"
                                  "server-name = sync_1.example.org\n"
                                  "tz = Europe/Paris\n"
                                  "period-tz = America/New_York\n"
                                  "hours = Mon-Fri 09:00-12:00,14:00-19:00;Sat 10:00-18:00\n"
                                  "antipassback-minutes = 1440\n"
                                  "refused-fares = 5\n"
                                  "expiry-policy = grace:720\n"
                                  "certificate = device.crt\n"
                                  "private-key = /etc/citypass/device key.pem\n"
                                  "ca = ca.crt\n"
                                  "list-public-key = list.pub.pem\n"
                                  "issuer-public-key = issuer.pub.pem\n"
                                  "card-key = card-sector.key\n"
                                  "gate-certificate = gate.cert\n";

/* A bundle as the previous release wrote it (tests/upgrade/PREVIOUS_RELEASE): no format. */
static const char v1_text[] = "# citypass controller provisioning (docs/admin.md)\n"
                              "device-id = g1\ngate = 1\nsite = 1\nsite-name = pool-n\n"
                              "sector = 1\nsector-name = pool\nserver = localhost:7443\n"
                              "server-name = localhost\ntz = Europe/Paris\n"
                              "period-tz = Europe/Paris\nhours = always\n"
                              "antipassback-minutes = 30\nexpiry-policy = refuse\n"
                              "certificate = device.crt\nprivate-key = device.key\n"
                              "ca = ca.crt\nlist-public-key = list.pub.pem\n"
                              "issuer-public-key = issuer.pub.pem\n"
                              "card-key = card-sector.key\n";

static int parse(const char *text, struct proto_device_conf *c, unsigned *lines, char *err,
                 unsigned *line)
{
	return proto_device_conf_parse(text, strlen(text), c, lines, err, 300, line);
}

static void test_writer_text(void **state)
{
	(void)state;
	char text[PROTO_DEVICE_CONF_TEXT_MAX], err[300] = "";
	int n = proto_device_conf_write(&sample, text, sizeof(text), err, sizeof(err));
	print_message("%s", err);
	assert_int_equal(n, (int)strlen(sample_text));
	assert_string_equal(text, sample_text);
	/* without refused-fares (0) and with refuse, as device add writes today */
	struct proto_device_conf c = sample;
	c.refused_fares = 0;
	c.expiry = PROTO_EXPIRY_REFUSE;
	c.grace_hours = 0;
	assert_true(proto_device_conf_write(&c, text, sizeof(text), err, sizeof(err)) > 0);
	assert_null(strstr(text, "refused-fares"));
	assert_non_null(strstr(text, "\nexpiry-policy = refuse\ncertificate = device.crt\n"));
	/* too small a buffer: refused, nothing half-written left */
	char small[100];
	assert_int_equal(proto_device_conf_write(&sample, small, sizeof(small), NULL, 0),
	                 PROTO_ERR_BUFSIZE);
	assert_int_equal(small[0], 0);
	assert_int_equal(proto_device_conf_write(NULL, text, sizeof(text), NULL, 0), PROTO_ERR_ARG);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct proto_device_conf c;
	unsigned lines[PROTO_DEVICE_KEYS], line = 99;
	char err[300] = "";
	assert_int_equal(parse(sample_text, &c, lines, err, &line), 0);
	assert_memory_equal(&c, &sample, sizeof(c));
	assert_int_equal(line, 0);
	assert_int_equal(lines[PROTO_DEVICE_KEY_FORMAT], 2);
	assert_int_equal(lines[PROTO_DEVICE_KEY_HOURS], 13);
	assert_int_equal(lines[PROTO_DEVICE_KEY_CARD_KEY], 22);
	assert_string_equal(proto_device_key_name(PROTO_DEVICE_KEY_CARD_KEY), "card-key");
	assert_null(proto_device_key_name(PROTO_DEVICE_KEYS));
	/* what the writer writes of what it read is the same text */
	char text[PROTO_DEVICE_CONF_TEXT_MAX];
	assert_int_equal(proto_device_conf_write(&c, text, sizeof(text), err, sizeof(err)),
	                 (int)strlen(sample_text));
	assert_string_equal(text, sample_text);
}

/* Bundles made before the format line (format 1) read as they always did; their optional
 * keys keep their defaults when absent, and a comment may follow a value. */
static void test_format_1(void **state)
{
	(void)state;
	struct proto_device_conf c;
	unsigned lines[PROTO_DEVICE_KEYS], line;
	char err[300] = "";
	assert_int_equal(parse(v1_text, &c, lines, err, &line), 0);
	assert_int_equal(c.format, 1);
	assert_string_equal(c.device_id, "g1");
	assert_string_equal(c.server, "localhost:7443");
	assert_string_equal(c.hours, "always");
	assert_int_equal(c.antipassback_minutes, 30);
	assert_int_equal(c.expiry, PROTO_EXPIRY_REFUSE);
	assert_string_equal(c.file[PROTO_DEVICE_CARD_KEY], "card-sector.key");
	assert_int_equal(lines[PROTO_DEVICE_KEY_FORMAT], 0);
	static const char minimal[] =
	        "device-id = g2\ngate = 2\nsite = 3\nsector = 4\n"
	        "server = 192.0.2.1:7443   # the town hall\n\t tz = UTC \r\n"
	        "certificate = c\nprivate-key = k\nca = a\nlist-public-key = l\n"
	        "issuer-public-key = i\ncard-key = s";
	assert_int_equal(parse(minimal, &c, lines, err, &line), 0);
	assert_string_equal(c.server, "192.0.2.1:7443");
	assert_string_equal(c.tz, "UTC");
	assert_string_equal(c.server_name, "");
	assert_string_equal(c.period_tz, "");
	assert_string_equal(c.hours, "");
	assert_int_equal(c.expiry, PROTO_EXPIRY_REFUSE);
	assert_string_equal(c.file[PROTO_DEVICE_CARD_KEY], "s");
	assert_int_equal(lines[PROTO_DEVICE_KEY_SITE_NAME], 0);
	assert_int_equal(lines[PROTO_DEVICE_KEY_TZ], 6);
}

static void refused(const char *text, unsigned want_line, const char *want)
{
	struct proto_device_conf c;
	unsigned lines[PROTO_DEVICE_KEYS], line = 99;
	char err[300] = "";
	memset(&c, 0x5A, sizeof(c));
	assert_int_equal(parse(text, &c, lines, err, &line), PROTO_ERR_BUNDLE);
	print_message("refused: line %u: %s\n", line, err);
	assert_non_null(strstr(err, want));
	assert_int_equal(line, want_line);
	static const struct proto_device_conf zero;
	assert_memory_equal(&c, &zero, sizeof(c)); /* nothing half-read left */
}

/* v1_text with line `n` (1-based, the comment is line 1) replaced by `with`; as format 2
 * (its comment line replaced by the format line) when format2. */
static const char *variant_of(int format2, unsigned n, const char *with)
{
	static char buf[4096];
	const char *p = v1_text;
	size_t o = 0;
	for (unsigned i = 1; *p; i++) {
		const char *nl = strchr(p, '\n');
		size_t len = (size_t)(nl - p) + 1;
		if (i == n)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s\n", with);
		else if (i == 1 && format2)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "format = 2\n");
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%.*s", (int)len, p);
		p += len;
	}
	return buf;
}

static const char *variant(unsigned n, const char *with)
{
	return variant_of(0, n, with);
}

static const char *variant2(unsigned n, const char *with)
{
	return variant_of(1, n, with);
}

static void test_refusals(void **state)
{
	(void)state;
	refused("format = 4\n", 1, "format 4: newer than this reader (3)");
	refused("format = 0\n", 1, "format '0': expected a number from 1 to 255");
	refused("device-id = g1\nformat = 2\n", 2, "format: must come before every other key");
	/* format 2 holds every key the writer writes; format 1 did not need them */
	struct proto_device_conf c;
	char err[300];
	unsigned line;
	assert_int_equal(parse(variant2(0, ""), &c, NULL, err, &line), 0);
	assert_int_equal(c.format, 2);
	assert_string_equal(c.file[PROTO_DEVICE_GATE_CERT], ""); /* before issue 17 */
	/* format 3 adds the gate certificate phones check (issue 17) */
	{
		char v3[4096];
		snprintf(v3, sizeof(v3), "%s", sample_text);
		memcpy(strstr(v3, "refused-fares = 5"), "# refused-fares ", 16);
		assert_int_equal(parse(v3, &c, NULL, err, &line), 0);
		assert_int_equal(c.format, 3);
		assert_string_equal(c.file[PROTO_DEVICE_GATE_CERT], "gate.cert");
		/* optional: a format-3 file without it reads (its gate serves no phone) */
		*strstr(v3, "gate-certificate") = '#';
		assert_int_equal(parse(v3, &c, NULL, err, &line), 0);
		assert_string_equal(c.file[PROTO_DEVICE_GATE_CERT], "");
		/* a gate of format 2 knows no gate certificate: the file must say format 3 */
		*strstr(v3, "#ate-certificate") = 'g';
		memcpy(strstr(v3, "format = 3"), "format = 2", 10);
		refused(v3, 23,
		        "gate-certificate 'gate.cert': needs format = 3 (this file is format 2)");
		/* the writer writes the oldest format that carries it: 2 without a gate
		 * certificate (and one server), 3 with it */
		struct proto_device_conf w = sample;
		char text[PROTO_DEVICE_CONF_TEXT_MAX];
		w.file[PROTO_DEVICE_GATE_CERT][0] = '\0';
		assert_true(proto_device_conf_write(&w, text, sizeof(text), err, sizeof(err)) > 0);
		assert_non_null(strstr(text, "\nformat = 2\n"));
		assert_null(strstr(text, "gate-certificate"));
	}
	refused(variant2(5, "# site-name"), 0, "missing key 'site-name'");
	refused(variant2(7, "# sector-name"), 0, "missing key 'sector-name'");
	refused(variant2(9, "# server-name"), 0, "missing key 'server-name'");
	refused(variant2(11, "# period-tz"), 0, "missing key 'period-tz'");
	refused(variant2(12, "# hours"), 0, "missing key 'hours'");
	refused(variant2(13, "# antipassback"), 0, "missing key 'antipassback-minutes'");
	refused(variant2(14, "# expiry"), 0, "missing key 'expiry-policy'");
	assert_int_equal(parse(variant(14, "# expiry"), &c, NULL, err, &line), 0);
	refused(variant(6, "# sector"), 0, "missing key 'sector'");
	refused(variant(15, "# certificate"), 0, "missing key 'certificate'");
	refused("", 0, "missing key 'device-id'");
	refused(variant(3, "gate = 0"), 3, "gate '0': expected a number from 1 to 4294967295");
	refused(variant(3, "gate = 4294967296"), 3, "gate '4294967296'");
	refused(variant(3, "gate = -1"), 3, "gate '-1'");
	refused(variant(4, "site = 1x"), 4, "site '1x'");
	refused(variant(6, "sector = 65536"), 6, "sector '65536'");
	refused(variant(13, "antipassback-minutes = 1441"), 13, "antipassback-minutes '1441'");
	refused(variant(13, "refused-fares = 16"), 13, "refused-fares '16'");
	refused(variant(14, "expiry-policy = grace:0"), 14,
	        "expiry-policy 'grace:0': expected refuse or grace:HOURS (1 to 720)");
	refused(variant(14, "expiry-policy = grace:721"), 14, "expiry-policy 'grace:721'");
	refused(variant(14, "expiry-policy = later"), 14, "expiry-policy 'later'");
	refused(variant(12, "hours = Mon-Fri 9h-12h"), 12,
	        "hours 'Mon-Fri 9h-12h': expected always or 'DAYS HH:MM-HH:MM[,...]'");
	refused(variant(12, "hours = Sun 10:00-12:00,11:00-13:00"), 12, "hours 'Sun 10:00-12:00");
	refused(variant(8, "server = localhost"), 8, "server 'localhost': expected HOST:PORT");
	refused(variant(8, "server = ::1:7443"), 8, "server '::1:7443': expected HOST:PORT");
	refused(variant(8, "server = localhost:0"), 8, "server 'localhost:0'");
	refused(variant(9, "server-name = sync/1"), 9,
	        "server-name 'sync/1': expected a host name");
	refused(variant(2, "device-id = g/1"), 2, "device-id 'g/1': expected 1 to 63 letters");
	refused(variant(2, "device-id = "
	                   "a123456789012345678901234567890123456789012345678901234567890123"),
	        2, "longer than 63 characters");
	refused(variant(5, "site-name = pool\x01n"), 5,
	        "site-name: a control character or '#' at character 5");
	refused(variant(5, "site-name ="), 5, "site-name: empty value: expected a value");
	refused(variant(5, "site-name = # nothing"), 5, "site-name: empty value");
	refused(variant(15, "certificate = "), 15, "certificate: empty value: expected a path");
	refused(variant(5, "site-name = pool\nsite-name = pool"), 6,
	        "site-name: given twice (line 5 and line 6)");
	refused(variant(5, "colour = blue"), 5, "unknown key 'colour'");
	refused(variant(5, "site-name pool"), 5, "'site-name pool': expected key = value");
	char text[4096];
	snprintf(text, sizeof(text), "site-name = %0128d\n", 0);
	refused(text, 1, "longer than 127 characters");
	snprintf(text, sizeof(text), "certificate = %01024d\n", 0);
	refused(text, 1, "path too long (1023 characters at most)");
	snprintf(text, sizeof(text), "hours = %02040d\n", 0);
	refused(text, 1, "longer than 2047 characters");
	char nul[] = "device-id = g1\ngate = 1\0\n";
	assert_int_equal(
	        proto_device_conf_parse(nul, sizeof(nul) - 1, &c, NULL, err, sizeof(err), &line),
	        PROTO_ERR_BUNDLE);
	assert_non_null(strstr(err, "NUL"));
	assert_int_equal(line, 2);
}

/* The writer refuses what the line format cannot carry, with the reader's sentence. */
static void writer_refuses(const struct proto_device_conf *c, const char *want)
{
	char text[PROTO_DEVICE_CONF_TEXT_MAX], err[300] = "";
	memset(text, 'x', sizeof(text));
	assert_int_equal(proto_device_conf_write(c, text, sizeof(text), err, sizeof(err)),
	                 PROTO_ERR_BUNDLE);
	print_message("writer refused: %s\n", err);
	assert_non_null(strstr(err, want));
	assert_int_equal(text[0], 0); /* nothing of a file left to save */
}

static void test_writer_refusals(void **state)
{
	(void)state;
	struct proto_device_conf c = sample;
	snprintf(c.site_name, sizeof(c.site_name), "pool\nserver = evil:1");
	writer_refuses(&c, "site-name: a control character or '#' at character 5");
	c = sample;
	snprintf(c.sector_name, sizeof(c.sector_name), "pool # east");
	writer_refuses(&c, "sector-name: a control character or '#' at character 6");
	c = sample;
	snprintf(c.site_name, sizeof(c.site_name), " pool");
	writer_refuses(&c, "site-name ' pool': spaces at either end would be lost");
	c = sample;
	snprintf(c.hours, sizeof(c.hours), "always\r");
	writer_refuses(&c, "hours: a control character");
	c = sample;
	c.site_name[0] = '\0';
	writer_refuses(&c, "site-name: empty value");
	c = sample;
	memset(c.device_id, 'a', sizeof(c.device_id)); /* no NUL: read as one too long */
	writer_refuses(&c, "longer than 63 characters");
	c = sample;
	c.gate = 0;
	writer_refuses(&c, "gate '0'");
	c = sample;
	c.antipassback_minutes = 1441;
	writer_refuses(&c, "antipassback-minutes '1441'");
	c = sample;
	c.refused_fares = 16;
	writer_refuses(&c, "refused-fares '16'");
	c = sample;
	c.grace_hours = 0;
	writer_refuses(&c, "expiry-policy 'grace:0'");
	c = sample;
	c.expiry = (enum proto_expiry_mode)7;
	writer_refuses(&c, "expiry-policy 'mode 7'");
	c = sample;
	snprintf(c.hours, sizeof(c.hours), "Mon-Fri 14:00-12:00");
	writer_refuses(&c, "hours 'Mon-Fri 14:00-12:00': expected always");
	c = sample;
	snprintf(c.server, sizeof(c.server), "sync.example.org");
	writer_refuses(&c, "server 'sync.example.org': expected HOST:PORT");
	c = sample;
	snprintf(c.file[PROTO_DEVICE_CA], sizeof(c.file[0]), "ca\n.crt");
	writer_refuses(&c, "ca: a control character");
}

/* Issue 16: several servers, tried in order by the gate: format 3, written only when
 * needed (a gate of format 2 reads one server); a list in an older format is refused. */
static void test_servers(void **state)
{
	(void)state;
	struct proto_device_conf c = sample, back;
	char text[PROTO_DEVICE_CONF_TEXT_MAX], err[300] = "";
	unsigned lines[PROTO_DEVICE_KEYS], line = 99;
	snprintf(c.server, sizeof(c.server),
	         "sync-a.example.org:7443, [2001:db8::2]:7443,10.0.0.3:1");
	int n = proto_device_conf_write(&c, text, sizeof(text), err, sizeof(err));
	print_message("%s", err);
	assert_true(n > 0);
	assert_non_null(strstr(text, "\nformat = 3\n"));
	assert_non_null(strstr(
	        text, "\nserver = sync-a.example.org:7443, [2001:db8::2]:7443,10.0.0.3:1\n"));
	assert_int_equal(parse(text, &back, lines, err, &line), 0);
	assert_int_equal(back.format, 3);
	assert_string_equal(back.server, c.server);
	c.format = 3;
	assert_memory_equal(&back, &c, sizeof(c));
	/* one server in a format-3 file reads too */
	static char v3[4096];
	snprintf(v3, sizeof(v3), "format = 3\n%s", strchr(variant(8, "server = a:1"), '\n') + 1);
	assert_int_equal(parse(v3, &back, NULL, err, &line), 0);
	assert_int_equal(back.format, 3);
	assert_string_equal(back.server, "a:1");

	/* a list needs format 3: an older gate would read it as one bad address */
	refused(variant(8, "server = a:1,b:2"), 8,
	        "several servers need format = 3 (this file is format 1)");
	refused(variant2(8, "server = a:1,b:2"), 8,
	        "several servers need format = 3 (this file is format 2)");
	/* every address checked, the bad one named */
	snprintf(v3, sizeof(v3), "format = 3\n%s",
	         strchr(variant(8, "server = a:1,b:0"), '\n') + 1);
	refused(v3, 8, "server 'a:1,b:0': address 2: expected HOST:PORT");
	snprintf(v3, sizeof(v3), "format = 3\n%s",
	         strchr(variant(8, "server = a:1,,b:2"), '\n') + 1);
	refused(v3, 8, "address 2");
	snprintf(v3, sizeof(v3), "format = 3\n%s",
	         strchr(variant(8, "server = a:1,A:1"), '\n') + 1);
	refused(v3, 8, "the same address given twice");
	snprintf(v3, sizeof(v3), "format = 3\n%s",
	         strchr(variant(8, "server = a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9"), '\n') + 1);
	refused(v3, 8, "at most 8");
	/* the writer refuses a bad list with the reader's sentence */
	c = sample;
	snprintf(c.server, sizeof(c.server), "a:1,");
	writer_refuses(&c, "server 'a:1,': address 2");
}

static void test_expiry_parse(void **state)
{
	(void)state;
	enum proto_expiry_mode m;
	uint16_t h = 99;
	assert_int_equal(proto_expiry_parse("refuse", &m, &h), 0);
	assert_int_equal(m, PROTO_EXPIRY_REFUSE);
	assert_int_equal(h, 0);
	assert_int_equal(proto_expiry_parse("grace:1", &m, &h), 0);
	assert_int_equal(m, PROTO_EXPIRY_GRACE);
	assert_int_equal(h, 1);
	assert_int_equal(proto_expiry_parse("grace:720", &m, &h), 0);
	assert_int_equal(h, 720);
	static const char *const bad[] = {"",         "Refuse",   "refuse ",   "grace",
	                                  "grace:",   "grace:0",  "grace:721", "grace:1000",
	                                  "grace:+1", "grace:1h", "grace: 1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(proto_expiry_parse(bad[i], &m, &h), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_writer_text),     cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_format_1),        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_writer_refusals), cmocka_unit_test(test_expiry_parse),
	        cmocka_unit_test(test_servers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
