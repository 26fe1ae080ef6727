/*
 * proto/hours.h — a site's opening hours, as `citypass-admin site add --hours` takes them,
 * device.conf carries them and the gate applies them (issue 14: one grammar, here, where
 * it used to be checked by the CLI and parsed again, a little differently, by the gate).
 *
 *   always                                      no window: open at all hours
 *   Mon-Fri 09:00-12:00,14:00-19:00;Sat 10:00-18:00
 *
 * Rules separated by ';', each DAYS (Mon..Sun, or a range such as Mon-Fri) and its
 * windows HH:MM-HH:MM separated by ',', in order and not overlapping; 24:00 closes a day.
 * At most PROTO_HOURS_WINDOWS windows in all (a night opening is two).
 */
#ifndef PROTO_HOURS_H
#define PROTO_HOURS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_HOURS_WINDOWS  32
#define PROTO_HOURS_TEXT_MAX 2048 /* the longest text read */

struct proto_hours_window {
	uint8_t days;   /* bit 0 Monday .. bit 6 Sunday */
	uint16_t open;  /* minutes since local midnight */
	uint16_t close; /* open < close <= 1440 */
};

struct proto_hours {
	struct proto_hours_window windows[PROTO_HOURS_WINDOWS];
	size_t count; /* 0: always open */
};

/* Parse text into *out. 0, or -1 with one sentence in err (may be NULL) naming the text
 * and the grammar; *out holds no window then. */
int proto_hours_parse(const char *text, struct proto_hours *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_HOURS_H */
