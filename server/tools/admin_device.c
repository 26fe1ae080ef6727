/*
 * admin_device.c — citypass-admin device list: every gate and how it is doing, as it last
 * reported over the sync link (GateHealth, issue 13; docs/admin.md): its reader and QR
 * scanner, the list it holds and how old it is, the decisions it has not uploaded yet, its
 * free disk, its clock's skew. A gate not heard from lately is flagged: an agent sees at a
 * glance which gate to go and look at.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "server/passes.h"

#define SILENT_DEFAULT_MIN 15 /* a connected gate reports at least every 5 minutes */

static const char list_help[] =
        "usage: citypass-admin device list [--json] [--silent-after MINUTES]\n"
        "Every gate controller enrolled: site, gate number, sector, and what it last\n"
        "reported over the sync link — reader and QR scanner (ok, DOWN, none), the list\n"
        "version it holds and its age, decisions not yet uploaded, free disk, clock skew.\n"
        "Flags: SILENT (not heard from for --silent-after minutes, default 15, or never),\n"
        "READER-DOWN, SCANNER-DOWN, REVOKED. Gates report when they connect, when a device\n"
        "comes or goes, and every 5 minutes.\n";

static const char *state_name(int s)
{
	switch (s) {
	case SERVER_DEVICE_OK:
		return "ok";
	case SERVER_DEVICE_DOWN:
		return "DOWN";
	case SERVER_DEVICE_NOT_CONFIGURED:
		return "none";
	default:
		return "?";
	}
}

/* "45s", "12m", "3h", "2d" */
static void age(int64_t seconds, char *out, size_t cap)
{
	if (seconds < 0)
		seconds = 0;
	if (seconds < 120)
		snprintf(out, cap, "%" PRId64 "s", seconds);
	else if (seconds < 2 * 3600)
		snprintf(out, cap, "%" PRId64 "m", seconds / 60);
	else if (seconds < 2 * 86400)
		snprintf(out, cap, "%" PRId64 "h", seconds / 3600);
	else
		snprintf(out, cap, "%" PRId64 "d", seconds / 86400);
}

static void bytes(uint64_t b, char *out, size_t cap)
{
	if (b >= (uint64_t)10 << 30)
		snprintf(out, cap, "%" PRIu64 "G", b >> 30);
	else if (b >= (uint64_t)10 << 20)
		snprintf(out, cap, "%" PRIu64 "M", b >> 20);
	else
		snprintf(out, cap, "%" PRIu64 "K", b >> 10);
}

/* The flags of one gate, space-separated ("" when all is well). */
static void flags_of(const struct server_device_status *d, int64_t now, int64_t silent_s, char *out,
                     size_t cap)
{
	out[0] = '\0';
	size_t n = 0;
#define FLAG(f) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? " " : "", f)
	if (d->dev.revoked)
		FLAG("REVOKED");
	if (!d->has_health || now - d->health.reported_at > silent_s)
		FLAG("SILENT");
	if (d->has_health && d->health.reader == SERVER_DEVICE_DOWN)
		FLAG("READER-DOWN");
	if (d->has_health && d->health.scanner == SERVER_DEVICE_DOWN)
		FLAG("SCANNER-DOWN");
#undef FLAG
}

static int device_list(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"silent-after", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int json = 0, c;
	uint64_t silent_min = SILENT_DEFAULT_MIN;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 's':
			if (admin_parse_u64(optarg, 525600, &silent_min) != 0 || silent_min == 0)
				return admin_usage(
				        "device list ",
				        "--silent-after '%s': expected minutes, 1 to 525600",
				        optarg);
			break;
		case 'h':
			fputs(list_help, stdout);
			return 0;
		default:
			return admin_usage("device list ", "unknown option");
		}
	}
	if (optind != argc)
		return admin_usage("device list ", "unexpected argument '%s'", argv[optind]);
	int64_t now;
	if (admin_now(&now) != 0)
		return admin_refuse("cannot read the clock");
	if (admin_open(a) != 0)
		return EXIT_REFUSED;
	struct server_device_status *d = NULL;
	size_t n = 0;
	int rc = a->st.ops->device_status_list(a->st.ctx, &d, &n);
	if (rc) {
		admin_close(a);
		return admin_refuse("cannot read the devices: %s", server_strerror(rc));
	}
	const int64_t silent_s = (int64_t)silent_min * 60;
	if (json)
		printf("[");
	else if (n)
		printf("%-16s %-12s %5s %-8s %-6s %-7s %8s %8s %8s %8s %7s %6s  %s\n", "device",
		       "site", "gate", "heard", "reader", "scanner", "list", "list age", "backlog",
		       "free", "skew", "sector", "flags");
	for (size_t i = 0; i < n; i++) {
		const struct server_device_status *s = &d[i];
		const struct server_device_health *h = &s->health;
		char flags[96], heard[24] = "never", list_age[24] = "-", free_b[24] = "-",
		                sector[SERVER_NAME_MAX];
		flags_of(s, now, silent_s, flags, sizeof(flags));
		server_sector_name(&a->st, s->dev.sector, sector, sizeof(sector));
		if (s->has_health) {
			age(now - h->reported_at, heard, sizeof(heard));
			if (h->list_issued_at)
				age(now - h->list_issued_at, list_age, sizeof(list_age));
			bytes(h->free_disk_bytes, free_b, sizeof(free_b));
		}
		if (json) {
			printf("%s\n {\"device\":", i ? "," : "");
			admin_json_string(stdout, s->dev.id);
			printf(",\"site\":");
			admin_json_string(stdout, s->site_name);
			printf(",\"gate\":%u,\"sector\":", (unsigned)s->dev.gate);
			admin_json_string(stdout, sector);
			printf(",\"revoked\":%s,\"flags\":[", s->dev.revoked ? "true" : "false");
			char *save = NULL;
			int first = 1;
			for (char *f = strtok_r(flags, " ", &save); f;
			     f = strtok_r(NULL, " ", &save)) {
				printf("%s\"%s\"", first ? "" : ",", f);
				first = 0;
			}
			printf("],\"health\":");
			if (!s->has_health) {
				printf("null}");
				continue;
			}
			printf("{\"reported_at\":%" PRId64 ",\"reader\":\"%s\",\"scanner\":\"%s\","
			       "\"list_version\":%" PRIu64 ",\"list_issued_at\":%" PRId64
			       ",\"journal_backlog\":%" PRIu64 ",\"free_disk_bytes\":%" PRIu64
			       ",\"clock_skew_s\":%" PRId64 "}}",
			       h->reported_at, state_name(h->reader), state_name(h->scanner),
			       h->list_version, h->list_issued_at, h->journal_backlog,
			       h->free_disk_bytes, h->clock_skew_s);
			continue;
		}
		char list_v[24] = "-", backlog[24] = "-", skew[24] = "-";
		if (s->has_health) {
			snprintf(list_v, sizeof(list_v), "v%" PRIu64, h->list_version);
			snprintf(backlog, sizeof(backlog), "%" PRIu64, h->journal_backlog);
			snprintf(skew, sizeof(skew), "%+" PRId64 "s", h->clock_skew_s);
		}
		printf("%-16s %-12s %5u %-8s %-6s %-7s %8s %8s %8s %8s %7s %6s  %s\n", s->dev.id,
		       s->site_name, (unsigned)s->dev.gate, heard,
		       s->has_health ? state_name(h->reader) : "-",
		       s->has_health ? state_name(h->scanner) : "-", list_v, list_age, backlog,
		       free_b, skew, sector, flags[0] ? flags : "-");
	}
	if (json)
		printf("%s]\n", n ? "\n" : "");
	else if (!n)
		printf("no device enrolled (citypass-admin device add)\n");
	free(d);
	admin_close(a);
	return 0;
}

int admin_cmd_device_list(struct admin *a, int argc, char **argv)
{
	return device_list(a, argc, argv);
}
