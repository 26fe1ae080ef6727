/*
 * bench_table.h — the table every benchmark prints: one row per metric, our figure beside
 * a baseline measured in the same run, and their ratio (ours / baseline).
 */
#ifndef CITYPASS_BENCH_TABLE_H
#define CITYPASS_BENCH_TABLE_H

#include <stddef.h>

#define BENCH_TABLE_ROWS 32
#define BENCH_CELL       32

struct bench_row {
	char metric[64];
	char ours[BENCH_CELL];
	char base[BENCH_CELL];
	char ratio[BENCH_CELL];
};

struct bench_table {
	const char *ours_name; /* column headings */
	const char *base_name;
	size_t n;
	struct bench_row rows[BENCH_TABLE_ROWS];
};

void bench_table_init(struct bench_table *t, const char *ours_name, const char *base_name);
/* Both values times `scale`, printed with `decimals` decimals and `unit` (may be ""). */
void bench_table_add(struct bench_table *t, const char *metric, int decimals, const char *unit,
                     double scale, double ours, double base);
/* Seconds, printed in ns, us, ms or s as they come. */
void bench_table_add_time(struct bench_table *t, const char *metric, double ours_s, double base_s);
/* Bytes, printed in B, KiB or MiB as they come. */
void bench_table_add_bytes(struct bench_table *t, const char *metric, double ours, double base);
void bench_table_print(const struct bench_table *t);

#endif
