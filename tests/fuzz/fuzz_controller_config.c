/*
 * Fuzz target: the controller's configuration parsers — its own file, the provisioning
 * bundle's device.conf, and the opening-hours grammar — on hostile text. A bad file must
 * be one sentence of error, never a crash, a hang or a read past a buffer.
 *
 * The first byte picks the parser: 0 the controller file, 1 device.conf (behind a fixed,
 * valid controller file), 2 the hours grammar alone. Files go to a private directory under
 * /dev/shm (or /tmp), made once per process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller/config.h"
#include "fuzz.h"

static char dir[64];

/* The files this process wrote, removed at exit: a test leaves nothing behind. */
static void remove_dir(void)
{
	static const char *const files[] = {"controller.conf", "bundle/device.conf", "bundle"};
	char path[128];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		(void)remove(path);
	}
	(void)rmdir(dir);
}

static void init_dir(void)
{
	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/dev/shm/fuzz-config-XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "/tmp/fuzz-config-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/bundle", dir);
	mkdir(path, 0700);
	atexit(remove_dir);
}

static void write_file(const char *name, const uint8_t *data, size_t len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (len && fwrite(data, 1, len, f) != len)
		abort();
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	init_dir();
	char err[256], path[128];
	const uint8_t kind = data[0] % 3;
	data++;
	size--;
	if (kind == 2) {
		char *text = malloc(size + 1);
		if (!text)
			return 0;
		memcpy(text, data, size);
		text[size] = '\0';
		struct controller_site_policy policy;
		memset(&policy, 0, sizeof(policy));
		(void)controller_config_parse_hours(text, &policy, err, sizeof(err));
		free(text);
		return 0;
	}
	if (kind == 0) {
		write_file("controller.conf", data, size);
	} else {
		static const char conf[] =
		        "bundle = bundle\nreader = pn532_uart:/dev/null\n"
		        "state-dir = state\ngate = bench\nbench-dir = /nonexistent\n"
		        "bench-reader = r1\n";
		write_file("controller.conf", (const uint8_t *)conf, sizeof(conf) - 1);
		write_file("bundle/device.conf", data, size);
	}
	snprintf(path, sizeof(path), "%s/controller.conf", dir);
	struct controller_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return 0;
	if (controller_config_load(path, cfg, err, sizeof(err)) == 0)
		controller_config_wipe(cfg);
	free(cfg);
	return 0;
}

static void emit_with(fuzz_emit_fn emit, void *ctx, uint8_t kind, const char *text)
{
	size_t n = strlen(text);
	uint8_t *buf = malloc(n + 1);
	if (!buf)
		abort();
	buf[0] = kind;
	memcpy(buf + 1, text, n);
	emit(buf, n + 1, ctx);
	free(buf);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	emit_with(emit, ctx, 0,
	          "# a gate\nbundle = bundle\nreader = pn532_uart:/dev/ttyUSB0\n"
	          "qr-scanner = /dev/ttyACM0\nstate-dir = state\ngate = gpio\n"
	          "gpio-chip = gpiochip0\ngpio-relay-line = 17\ngpio-green-line = 27\n"
	          "open-ms = 3000\nlog = syslog\nretention-days = 90\n");
	emit_with(emit, ctx, 1,
	          "device-id = pool-east\ngate = 1\nsite = 1\nsector = 1\n"
	          "server = 127.0.0.1:7443\ntz = Europe/Paris\n"
	          "hours = Mon-Fri 09:00-12:00,14:00-19:00;Sat 10:00-18:00\n"
	          "antipassback-minutes = 20\nexpiry-policy = grace:2\n"
	          "certificate = device.crt\nprivate-key = device.key\nca = ca.crt\n"
	          "list-public-key = list.pub.pem\nissuer-public-key = issuer.pub.pem\n"
	          "card-key = card-sector.key\n");
	emit_with(emit, ctx, 2, "Mon-Fri 09:00-12:00,14:00-19:00;Sat 10:00-18:00");
	emit_with(emit, ctx, 2, "always");
	emit_with(emit, ctx, 2, "Sun 00:00-24:00;Mon 23:59-24:00");
}
