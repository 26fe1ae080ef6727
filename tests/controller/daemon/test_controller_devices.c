/*
 * test_controller_devices — the device policy of a gate's configuration (issue 15,
 * controller/devices.h, docs/operations.md "Device access"): each libnfc driver family
 * gives the node its connection string names (a speed after it dropped), a libusb driver
 * the USB class alone, pcscd nothing, a path outside /dev no DeviceAllow; the scanner and
 * the GPIO chip follow; a driver whose device cannot be told is refused, naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "controller/devices.h"

static struct controller_config cfg;
static char text[4096], err[CONTROLLER_ERROR_MAX];

/* The policy of a configuration with this reader (no scanner, the bench's gate). */
static int policy(const char *reader)
{
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.config_path, sizeof(cfg.config_path), "/etc/citypass/controller/g.conf");
	snprintf(cfg.reader, sizeof(cfg.reader), "%s", reader);
	cfg.gate_kind = CONTROLLER_GATE_BENCH;
	err[0] = '\0';
	return controller_device_policy(&cfg, text, sizeof(text), err, sizeof(err));
}

/* The DeviceAllow= values, in order, space separated. */
static const char *allowed(void)
{
	static char out[1024];
	out[0] = '\0';
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "DeviceAllow=", 12) != 0)
			continue;
		size_t n = strcspn(l + 12, "\n");
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%.*s", out[0] ? "|" : "",
		         (int)n, l + 12);
	}
	return out;
}

static void test_node_drivers(void **state)
{
	(void)state;
	static const struct {
		const char *reader, *allowed;
	} cases[] = {
	        {"pn532_uart:/dev/ttyUSB0", "/dev/ttyUSB0 rw"},
	        {"pn532_uart:/dev/ttyAMA0:115200", "/dev/ttyAMA0 rw"},
	        {"pn532_spi:/dev/spidev0.0:500000", "/dev/spidev0.0 rw"},
	        {"pn532_i2c:/dev/i2c-1", "/dev/i2c-1 rw"},
	        {"arygon:/dev/ttyS1", "/dev/ttyS1 rw"},
	        {"acr122s:/dev/serial/by-id/usb-x-port0:9600", "/dev/serial/by-id/usb-x-port0 rw"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(policy(cases[i].reader), 0);
		assert_string_equal(allowed(), cases[i].allowed);
		assert_non_null(strstr(text, "[Service]\n"));
	}
}

static void test_usb_class_pcsc_nothing_bench_comment(void **state)
{
	(void)state;
	assert_int_equal(policy("pn53x_usb:001:004"), 0);
	assert_string_equal(allowed(), "char-usb_device rw");
	assert_int_equal(policy("acr122_usb:"), 0);
	assert_string_equal(allowed(), "char-usb_device rw");
	assert_int_equal(policy("acr122_pcsc:ACS ACR122U"), 0);
	assert_string_equal(allowed(), "");
	/* the bench's reader: a path the service manager cannot allow, said in a comment */
	assert_int_equal(policy("pn532_uart:/tmp/bench/readers/pool-1"), 0);
	assert_string_equal(allowed(), "");
	assert_non_null(strstr(text, "# reader /tmp/bench/readers/pool-1: not under /dev"));
}

static void test_scanner_and_gpio_chip(void **state)
{
	(void)state;
	static const struct {
		const char *chip, *node;
	} chips[] = {{"gpiochip3", "/dev/gpiochip3"},
	             {"/dev/gpiochip1", "/dev/gpiochip1"},
	             {"2", "/dev/gpiochip2"}};
	for (size_t i = 0; i < sizeof(chips) / sizeof(chips[0]); i++) {
		memset(&cfg, 0, sizeof(cfg));
		snprintf(cfg.reader, sizeof(cfg.reader), "pn532_uart:/dev/ttyUSB0");
		snprintf(cfg.qr_scanner, sizeof(cfg.qr_scanner), "/dev/ttyACM0");
		cfg.gate_kind = CONTROLLER_GATE_GPIO;
		snprintf(cfg.gpio.chip, sizeof(cfg.gpio.chip), "%s", chips[i].chip);
		assert_int_equal(
		        controller_device_policy(&cfg, text, sizeof(text), err, sizeof(err)), 0);
		char want[128];
		snprintf(want, sizeof(want), "/dev/ttyUSB0 rw|/dev/ttyACM0 rw|%s rw",
		         chips[i].node);
		assert_string_equal(allowed(), want);
	}
}

static void test_refusals(void **state)
{
	(void)state;
	assert_int_equal(policy("pn71xx:/dev/whatever"), -1);
	assert_non_null(strstr(err, "reader 'pn71xx:/dev/whatever': cannot tell which device"));
	assert_int_equal(policy("pn532_uart:"), -1);
	/* a label of no chip on this machine names no node */
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.reader, sizeof(cfg.reader), "pn532_i2c:/dev/i2c-1");
	cfg.gate_kind = CONTROLLER_GATE_GPIO;
	snprintf(cfg.gpio.chip, sizeof(cfg.gpio.chip), "no-such-label-citypass");
	assert_int_equal(controller_device_policy(&cfg, text, sizeof(text), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "gpio-chip 'no-such-label-citypass'"));
	/* a line with a space or newline could add a directive: never written as a node */
	assert_int_equal(policy("pn532_uart:/dev/tty USB0"), 0);
	assert_string_equal(allowed(), "");
	/* too small a buffer is an error, not a cut policy */
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.reader, sizeof(cfg.reader), "pn532_uart:/dev/ttyUSB0");
	assert_int_equal(controller_device_policy(&cfg, text, 40, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_node_drivers),
	        cmocka_unit_test(test_usb_class_pcsc_nothing_bench_comment),
	        cmocka_unit_test(test_scanner_and_gpio_chip),
	        cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
