/* controller/src/gate.c — choose a gate backend; the common wrappers. */
#include <stdio.h>
#include <stdlib.h>

#include "controller/gate.h"

const char *controller_led_name(enum controller_led led)
{
	switch (led) {
	case CONTROLLER_LED_GREEN:
		return "green";
	case CONTROLLER_LED_RED:
		return "red";
	case CONTROLLER_LED_AMBER:
		return "amber";
	default:
		return "off";
	}
}

int controller_gate_open(struct controller_gate **out, const struct controller_config *cfg,
                         char *err, size_t errlen)
{
	switch (cfg->gate_kind) {
	case CONTROLLER_GATE_BENCH:
		return controller_gate_bench_open(out, cfg->bench_dir, cfg->bench_reader, err,
		                                  errlen);
	case CONTROLLER_GATE_GPIO:
		return controller_gate_gpio_open(out, &cfg->gpio, err, errlen);
	}
	snprintf(err, errlen, "unknown gate backend");
	return -1;
}

int controller_gate_set(struct controller_gate *g, const struct controller_gate_state *st)
{
	return g ? g->ops->set(g->ctx, st) : -1;
}

void controller_gate_close(struct controller_gate *g)
{
	if (!g)
		return;
	g->ops->destroy(g->ctx);
	free(g);
}
