/* controller/src/devices.c — the device nodes a configuration opens (controller/devices.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "controller/devices.h"
#include "controller/gate.h"

struct policy {
	char *out;
	size_t cap, len;
	int overflow;
};

static void add(struct policy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct policy *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(p->out + p->len, p->cap - p->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= p->cap - p->len)
		p->overflow = 1;
	else
		p->len += (size_t)n;
}

/* One device node: allowed when the service manager can name it (under /dev). */
static void node(struct policy *p, const char *role, const char *path)
{
	if (strncmp(path, "/dev/", 5) == 0 && !strpbrk(path, " \t\n\\"))
		add(p, "DeviceAllow=%s rw\n", path);
	else
		add(p, "# %s %s: not under /dev, no device the service manager can allow\n", role,
		    path);
}

/* libnfc 1.8's drivers (libnfc/drivers/): which open a device node named in the
 * connection string ("DRIVER:NODE[:SPEED]"), which go through libusb, which through pcscd */
static const char *const node_drivers[] = {"pn532_uart", "pn532_spi", "pn532_i2c", "arygon",
                                           "acr122s"};
static const char *const usb_drivers[] = {"pn53x_usb", "acr122_usb"};
static const char *const pcsc_drivers[] = {"acr122_pcsc", "pcsc"};

static int in(const char *driver, size_t len, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == len && strncmp(driver, names[i], len) == 0)
			return 1;
	return 0;
}

static int reader(struct policy *p, const char *connstring, char *err, size_t errlen)
{
	const char *colon = strchr(connstring, ':');
	size_t dl = colon ? (size_t)(colon - connstring) : strlen(connstring);
#define IN(list) in(connstring, dl, list, sizeof(list) / sizeof(list[0]))
	if (IN(usb_drivers)) {
		add(p,
		    "# reader %s: through libusb, whose /dev/bus/usb/BUS/DEV changes at every "
		    "replug: the class\nDeviceAllow=char-usb_device rw\n",
		    connstring);
		return 0;
	}
	if (IN(pcsc_drivers)) {
		add(p, "# reader %s: through pcscd's socket, no device\n", connstring);
		return 0;
	}
	if (!IN(node_drivers) || !colon || !colon[1]) {
		snprintf(
		        err, errlen,
		        "reader '%s': cannot tell which device it opens (expected DRIVER:/dev/NODE "
		        "with a serial, SPI or I2C driver, or a USB or PC/SC driver)",
		        connstring);
		return -1;
	}
#undef IN
	char path[CONTROLLER_PATH_MAX];
	const char *end = strchr(colon + 1, ':'); /* a speed may follow: pn532_uart:NODE:115200 */
	size_t pl = end ? (size_t)(end - colon - 1) : strlen(colon + 1);
	if (pl >= sizeof(path)) {
		snprintf(err, errlen, "reader '%s': device path too long", connstring);
		return -1;
	}
	memcpy(path, colon + 1, pl);
	path[pl] = '\0';
	node(p, "reader", path);
	return 0;
}

int controller_device_policy(const struct controller_config *cfg, char *out, size_t cap, char *err,
                             size_t errlen)
{
	struct policy p = {out, cap, 0, cap == 0};
	if (cap)
		out[0] = '\0';
	add(&p, "# the devices of %s (citypass-controller --device-policy)\n[Service]\n",
	    cfg->config_path);
	if (reader(&p, cfg->reader, err, errlen) != 0)
		return -1;
	if (cfg->qr_scanner[0])
		node(&p, "qr-scanner", cfg->qr_scanner);
	if (cfg->gate_kind == CONTROLLER_GATE_GPIO) {
		char chip[CONTROLLER_PATH_MAX];
		if (controller_gate_gpio_chip_node(cfg->gpio.chip, chip, sizeof(chip)) != 0) {
			snprintf(err, errlen,
			         "gpio-chip '%s': not on this machine, and not a name (gpiochip0), "
			         "path or number that says which node it is",
			         cfg->gpio.chip);
			return -1;
		}
		node(&p, "gpio-chip", chip);
	}
	if (p.overflow) {
		snprintf(err, errlen, "device policy: longer than %zu bytes", cap);
		return -1;
	}
	return 0;
}
