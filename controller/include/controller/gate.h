/*
 * controller/gate.h — what the controller drives once it has decided: relay, LEDs,
 * display. Backends sit behind an ops struct, like cardlib's reader ops:
 *   bench  reports every change to citypass-hil's control socket
 *          (`gate READER relay=open led=green display=...`, docs/hil.md), where the
 *          scenario runner reads it back with `citypass-hil ctl outputs READER`;
 *   gpio   a relay and two LEDs on GPIO lines through libgpiod 1.6 (the display text
 *          then only goes to the log).
 * Calls come from the reader or the scanner thread, one at a time (the reader loop's
 * panel, src/panel.c). The journal append comes before any call that opens (DESIGN.md
 * s.5).
 */
#ifndef CONTROLLER_GATE_H
#define CONTROLLER_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "controller/config.h"

#ifdef __cplusplus
extern "C" {
#endif

enum controller_led {
	CONTROLLER_LED_OFF = 0,
	CONTROLLER_LED_GREEN = 1,
	CONTROLLER_LED_RED = 2,
	CONTROLLER_LED_AMBER = 3, /* waiting: no valid list, reader trouble */
};

struct controller_gate_state {
	bool relay_open;
	enum controller_led led;
	const char *display; /* UTF-8, one line; NULL leaves it unchanged */
};

struct controller_gate_ops {
	/* Drive the outputs. 0, or -1 with errno-style trouble logged by the backend (the
	 * caller logs and carries on: a gate that cannot report must not stop deciding). */
	int (*set)(void *ctx, const struct controller_gate_state *st);
	void (*destroy)(void *ctx);
};

struct controller_gate {
	const struct controller_gate_ops *ops;
	void *ctx;
	char name[16];
};

/* Open the backend the configuration names. 0, or -1 with one sentence in err. */
int controller_gate_open(struct controller_gate **out, const struct controller_config *cfg,
                         char *err, size_t errlen);
int controller_gate_set(struct controller_gate *g, const struct controller_gate_state *st);
void controller_gate_close(struct controller_gate *g);

/* The backends (controller_gate_open picks one). */
int controller_gate_bench_open(struct controller_gate **out, const char *run_dir,
                               const char *reader, char *err, size_t errlen);
/* Issue 15: the device node of a gpio-chip setting, as the gpio backend would open it
 * (libgpiod's lookup: name, path, number or label); a chip not on this machine is told by
 * its name, path or number only. 0, or -1 (a label of no chip present). */
int controller_gate_gpio_chip_node(const char *chip, char *path, size_t cap);
int controller_gate_gpio_open(struct controller_gate **out,
                              const struct controller_gpio_config *gpio, char *err, size_t errlen);

const char *controller_led_name(enum controller_led led);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_GATE_H */
