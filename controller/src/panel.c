/*
 * controller/src/panel.c — the gate's outputs, shared by the reader and the scanner threads
 * (reader_internal.h). A decision is shown for open_ms; between decisions the display says
 * whether the gate can read: "Hors service" (amber) while the reader is gone, so nobody
 * waits in front of a gate that cannot see their card (issue 13; docs/controller.md,
 * "Devices come and go").
 */
#include <stdio.h>
#include <string.h>

#include "controller/gate.h"
#include "controller/log.h"
#include "reader_internal.h"

#define MSG_IDLE_NO_QR  "Présentez votre carte (QR hors service)"
#define MSG_OUT_QR_ONLY "Hors service – présentez un code QR"

/* The tap's gate ops: a decision, held open_ms like panel_show's. */
static int decision_set(void *ctx, const struct controller_gate_state *st)
{
	panel_show(ctx, st->relay_open, st->led, st->display);
	return 0;
}

static const struct controller_gate_ops decision_ops = {.set = decision_set, .destroy = NULL};

void panel_init(struct panel *p, struct controller_gate *gate, unsigned open_ms,
                bool scanner_configured)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->gate = gate;
	p->open_ms = open_ms;
	p->reader_up = true; /* until the reader thread says otherwise */
	p->scanner_configured = scanner_configured;
	p->scanner_up = true;
	p->decisions.ops = &decision_ops;
	p->decisions.ctx = p;
	snprintf(p->decisions.name, sizeof(p->decisions.name), "panel");
}

void panel_destroy(struct panel *p)
{
	pthread_mutex_destroy(&p->lock);
}

/* Caller holds the lock. What the gate shows when nobody is being answered. */
static void idle_locked(struct panel *p, bool force)
{
	const bool scanner = p->scanner_configured && p->scanner_up;
	struct controller_gate_state st = {false, CONTROLLER_LED_OFF, MSG_IDLE};
	if (!p->reader_up) {
		st.led = CONTROLLER_LED_AMBER;
		st.display = scanner ? MSG_OUT_QR_ONLY : MSG_OUT_OF_ORDER;
	} else if (p->scanner_configured && !p->scanner_up) {
		st.display = MSG_IDLE_NO_QR;
	}
	if (!force && strcmp(p->idle_shown, st.display) == 0)
		return;
	(void)controller_gate_set(p->gate, &st);
	snprintf(p->idle_shown, sizeof(p->idle_shown), "%s", st.display);
}

void panel_show(struct panel *p, bool open, enum controller_led led, const char *text)
{
	struct controller_gate_state st = {open, led, text};
	pthread_mutex_lock(&p->lock);
	(void)controller_gate_set(p->gate, &st);
	p->decision_until_ms = reader_mono_ms() + p->open_ms;
	p->idle_shown[0] = '\0';
	pthread_mutex_unlock(&p->lock);
}

int64_t panel_tick(struct panel *p)
{
	int64_t left = -1;
	pthread_mutex_lock(&p->lock);
	if (p->decision_until_ms) {
		left = p->decision_until_ms - reader_mono_ms();
		if (left <= 0) {
			p->decision_until_ms = 0;
			idle_locked(p, true);
			left = -1;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return left;
}

static void device(struct panel *p, bool *state, bool up)
{
	pthread_mutex_lock(&p->lock);
	const bool changed = *state != up;
	if (changed) {
		*state = up;
		if (!p->decision_until_ms)
			idle_locked(p, false);
	}
	pthread_mutex_unlock(&p->lock);
	if (changed && p->changed) /* the office hears of it (issue 13, item 2) */
		p->changed(p->ctx);
}

void panel_reader(struct panel *p, bool up)
{
	device(p, &p->reader_up, up);
}

void panel_scanner(struct panel *p, bool up)
{
	device(p, &p->scanner_up, up);
}

void panel_idle(struct panel *p)
{
	pthread_mutex_lock(&p->lock);
	p->decision_until_ms = 0;
	idle_locked(p, true);
	pthread_mutex_unlock(&p->lock);
}

void panel_devices(struct panel *p, bool *reader, bool *scanner_configured, bool *scanner)
{
	pthread_mutex_lock(&p->lock);
	*reader = p->reader_up;
	*scanner_configured = p->scanner_configured;
	*scanner = p->scanner_up;
	pthread_mutex_unlock(&p->lock);
}

void panel_off(struct panel *p)
{
	struct controller_gate_state st = {false, CONTROLLER_LED_OFF, NULL};
	pthread_mutex_lock(&p->lock);
	(void)controller_gate_set(p->gate, &st);
	pthread_mutex_unlock(&p->lock);
}
