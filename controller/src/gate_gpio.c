/*
 * controller/src/gate_gpio.c — a relay and two LEDs on GPIO lines, libgpiod 1.6 (Debian
 * 12's libgpiod-dev). Each line is requested as an output at open and driven low or high
 * (inverted with gpio-active-low). Amber is both LEDs on. The display text goes to the
 * log only: a real display would be one more backend.
 */
#include <errno.h>
#include <gpiod.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/gate.h"
#include "controller/log.h"

struct gpio_gate {
	struct gpiod_chip *chip;
	struct gpiod_line *relay, *green, *red;
	bool active_low;
};

static struct gpiod_line *request_line(struct gpio_gate *g, int offset, const char *what, char *err,
                                       size_t errlen)
{
	if (offset < 0)
		return NULL;
	struct gpiod_line *l = gpiod_chip_get_line(g->chip, (unsigned)offset);
	if (!l) {
		snprintf(err, errlen, "gate gpio: %s line %d: no such line on %s (%s)", what,
		         offset, gpiod_chip_name(g->chip), strerror(errno));
		return NULL;
	}
	int flags = g->active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
	if (gpiod_line_request_output_flags(l, "citypass-controller", flags, 0) != 0) {
		snprintf(err, errlen, "gate gpio: %s line %d: cannot request it as an output (%s)",
		         what, offset, strerror(errno));
		return NULL;
	}
	return l;
}

static void gpio_destroy(void *ctx)
{
	struct gpio_gate *g = ctx;
	/* closing the chip releases the lines: the kernel leaves them as they were, so
	 * switch the relay off first */
	if (g->relay)
		(void)gpiod_line_set_value(g->relay, 0);
	if (g->chip)
		gpiod_chip_close(g->chip);
	free(g);
}

static int gpio_set(void *ctx, const struct controller_gate_state *st)
{
	struct gpio_gate *g = ctx;
	int rc = 0;
	if (g->relay && gpiod_line_set_value(g->relay, st->relay_open ? 1 : 0) != 0)
		rc = -1;
	int green = st->led == CONTROLLER_LED_GREEN || st->led == CONTROLLER_LED_AMBER;
	int red = st->led == CONTROLLER_LED_RED || st->led == CONTROLLER_LED_AMBER;
	if (g->green && gpiod_line_set_value(g->green, green) != 0)
		rc = -1;
	if (g->red && gpiod_line_set_value(g->red, red) != 0)
		rc = -1;
	if (rc)
		controller_log(LOG_WARNING, "gate gpio: cannot drive a line: %s", strerror(errno));
	if (st->display)
		controller_log(LOG_INFO, "display: %s", st->display);
	return rc;
}

static const struct controller_gate_ops gpio_ops = {
        .set = gpio_set,
        .destroy = gpio_destroy,
};

int controller_gate_gpio_chip_node(const char *chip, char *path, size_t cap)
{
	struct gpiod_chip *c = gpiod_chip_open_lookup(chip);
	int n = -1;
	if (c) {
		n = snprintf(path, cap, "/dev/%s", gpiod_chip_name(c));
		gpiod_chip_close(c);
	} else if (strncmp(chip, "/dev/", 5) == 0) {
		n = snprintf(path, cap, "%s", chip);
	} else if (strncmp(chip, "gpiochip", 8) == 0 && chip[8] &&
	           strspn(chip + 8, "0123456789") == strlen(chip + 8)) {
		n = snprintf(path, cap, "/dev/%s", chip);
	} else if (chip[0] && strspn(chip, "0123456789") == strlen(chip)) {
		n = snprintf(path, cap, "/dev/gpiochip%s", chip);
	}
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int controller_gate_gpio_open(struct controller_gate **out,
                              const struct controller_gpio_config *cfg, char *err, size_t errlen)
{
	if (!cfg->chip[0] || cfg->relay_line < 0) {
		snprintf(err, errlen, "gate gpio: needs gpio-chip and gpio-relay-line");
		return -1;
	}
	struct controller_gate *gate = calloc(1, sizeof(*gate));
	struct gpio_gate *g = calloc(1, sizeof(*g));
	if (!gate || !g) {
		free(gate);
		free(g);
		snprintf(err, errlen, "gate gpio: out of memory");
		return -1;
	}
	g->active_low = cfg->active_low;
	g->chip = gpiod_chip_open_lookup(cfg->chip);
	if (!g->chip) {
		snprintf(err, errlen,
		         "gate gpio: gpio-chip '%s': cannot open it (%s): expected a chip name "
		         "(gpiochip0), path, number or label present on this machine",
		         cfg->chip, strerror(errno));
		free(gate);
		free(g);
		return -1;
	}
	err[0] = '\0';
	g->relay = request_line(g, cfg->relay_line, "relay", err, errlen);
	if (g->relay && cfg->green_line >= 0)
		g->green = request_line(g, cfg->green_line, "green LED", err, errlen);
	if (g->relay && (cfg->green_line < 0 || g->green) && cfg->red_line >= 0)
		g->red = request_line(g, cfg->red_line, "red LED", err, errlen);
	if (err[0]) {
		gpio_destroy(g);
		free(gate);
		return -1;
	}
	gate->ops = &gpio_ops;
	gate->ctx = g;
	snprintf(gate->name, sizeof(gate->name), "gpio");
	*out = gate;
	return 0;
}
