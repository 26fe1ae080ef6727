#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_table.h"

void bench_table_init(struct bench_table *t, const char *ours_name, const char *base_name)
{
	memset(t, 0, sizeof(*t));
	t->ours_name = ours_name;
	t->base_name = base_name;
}

static struct bench_row *new_row(struct bench_table *t, const char *metric, double ours,
                                 double base)
{
	if (t->n == BENCH_TABLE_ROWS) {
		fprintf(stderr, "bench: more than %d table rows\n", BENCH_TABLE_ROWS);
		exit(1);
	}
	struct bench_row *r = &t->rows[t->n++];
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	if (base > 0)
		snprintf(r->ratio, BENCH_CELL, "%.3f", ours / base);
	else
		snprintf(r->ratio, BENCH_CELL, "-");
	return r;
}

static void fmt_num(char out[BENCH_CELL], int decimals, const char *unit, double v)
{
	snprintf(out, BENCH_CELL, "%.*f%s%s", decimals, v, unit[0] ? " " : "", unit);
}

void bench_table_add(struct bench_table *t, const char *metric, int decimals, const char *unit,
                     double scale, double ours, double base)
{
	struct bench_row *r = new_row(t, metric, ours, base);
	fmt_num(r->ours, decimals, unit, ours * scale);
	fmt_num(r->base, decimals, unit, base * scale);
}

static void fmt_time(char out[BENCH_CELL], double s)
{
	if (s < 1e-6)
		fmt_num(out, 0, "ns", s * 1e9);
	else if (s < 1e-3)
		fmt_num(out, 2, "us", s * 1e6);
	else if (s < 1)
		fmt_num(out, 2, "ms", s * 1e3);
	else
		fmt_num(out, 2, "s", s);
}

void bench_table_add_time(struct bench_table *t, const char *metric, double ours_s, double base_s)
{
	struct bench_row *r = new_row(t, metric, ours_s, base_s);
	fmt_time(r->ours, ours_s);
	fmt_time(r->base, base_s);
}

static void fmt_bytes(char out[BENCH_CELL], double b)
{
	if (b < 1024)
		fmt_num(out, 0, "B", b);
	else if (b < 1024 * 1024)
		fmt_num(out, 1, "KiB", b / 1024);
	else
		fmt_num(out, 1, "MiB", b / (1024 * 1024));
}

void bench_table_add_bytes(struct bench_table *t, const char *metric, double ours, double base)
{
	struct bench_row *r = new_row(t, metric, ours, base);
	fmt_bytes(r->ours, ours);
	fmt_bytes(r->base, base);
}

static int widest(int w, const char *s)
{
	int l = (int)strlen(s);
	return l > w ? l : w;
}

void bench_table_print(const struct bench_table *t)
{
	int wm = widest(0, "metric"), wo = widest(0, t->ours_name), wb = widest(0, t->base_name),
	    wr = widest(0, "ratio");
	for (size_t i = 0; i < t->n; i++) {
		wm = widest(wm, t->rows[i].metric);
		wo = widest(wo, t->rows[i].ours);
		wb = widest(wb, t->rows[i].base);
		wr = widest(wr, t->rows[i].ratio);
	}
	static const char dashes[] = "------------------------------------------------------------"
	                             "------------------------------------------------------------";
	printf("| %-*s | %*s | %*s | %*s |\n", wm, "metric", wo, t->ours_name, wb, t->base_name, wr,
	       "ratio");
	printf("|-%.*s-|-%.*s:|-%.*s:|-%.*s:|\n", wm, dashes, wo, dashes, wb, dashes, wr, dashes);
	for (size_t i = 0; i < t->n; i++)
		printf("| %-*s | %*s | %*s | %*s |\n", wm, t->rows[i].metric, wo, t->rows[i].ours,
		       wb, t->rows[i].base, wr, t->rows[i].ratio);
}
