/*
 * fuzz_driver.c — runs a fuzz target without a fuzzing engine.
 *
 *   TARGET [--runs N] [--seed S]      seeds, then N deterministic mutations of them
 *   TARGET --write-seeds DIR          write the seeds as files (libFuzzer corpus)
 *   TARGET FILE...                    run each file once (reproduce a crash)
 *
 * The mutations (bit flips, byte overwrites with boundary values, truncation, extension,
 * splices of two seeds) are cheap and reproducible from the seed, so a fuzz-smoke failure
 * in CI can be replayed exactly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAX_INPUT (1u << 20)

struct seedset {
	uint8_t **data;
	size_t *len;
	size_t n, cap;
};

static void collect(const uint8_t *data, size_t len, void *ctx)
{
	struct seedset *s = ctx;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->data = realloc(s->data, s->cap * sizeof(*s->data));
		s->len = realloc(s->len, s->cap * sizeof(*s->len));
		if (!s->data || !s->len) {
			fprintf(stderr, "fuzz: out of memory\n");
			exit(2);
		}
	}
	s->data[s->n] = malloc(len ? len : 1);
	if (!s->data[s->n]) {
		fprintf(stderr, "fuzz: out of memory\n");
		exit(2);
	}
	memcpy(s->data[s->n], data, len);
	s->len[s->n] = len;
	s->n++;
}

static void free_seeds(struct seedset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->data[i]);
	free(s->data);
	free(s->len);
	memset(s, 0, sizeof(*s));
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: tiny, and the same sequence on every machine */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t mutate(uint8_t *buf, size_t len, const struct seedset *s)
{
	static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x40};
	int steps = 1 + (int)(rnd() % 4);
	while (steps--) {
		switch (rnd() % 6) {
		case 0: /* flip a bit */
			if (len)
				buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1: /* boundary byte */
			if (len)
				buf[rnd() % len] = interesting[rnd() % sizeof(interesting)];
			break;
		case 2: /* truncate */
			if (len)
				len = (size_t)(rnd() % len);
			break;
		case 3: { /* extend with random bytes */
			size_t add = (size_t)(rnd() % 64);
			if (len + add > MAX_INPUT)
				add = MAX_INPUT - len;
			for (size_t i = 0; i < add; i++)
				buf[len + i] = (uint8_t)rnd();
			len += add;
			break;
		}
		case 4: /* random 32-bit word, often a length or count field */
			if (len >= 4) {
				size_t at = (size_t)(rnd() % (len - 3));
				uint32_t v = (uint32_t)rnd();
				memcpy(buf + at, &v, 4);
			}
			break;
		case 5: { /* splice: tail of another seed */
			const size_t k = (size_t)(rnd() % s->n);
			size_t at = len ? (size_t)(rnd() % len) : 0;
			size_t from = s->len[k] ? (size_t)(rnd() % s->len[k]) : 0;
			size_t take = s->len[k] - from;
			if (at + take > MAX_INPUT)
				take = MAX_INPUT - at;
			memcpy(buf + at, s->data[k] + from, take);
			len = at + take;
			break;
		}
		}
	}
	return len;
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
		return 2;
	}
	uint8_t *buf = malloc(MAX_INPUT);
	size_t n = buf ? fread(buf, 1, MAX_INPUT, f) : 0;
	fclose(f);
	if (!buf)
		return 2;
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	printf("fuzz: %s: %zu bytes, ok\n", path, n);
	return 0;
}

static int write_seeds(const struct seedset *s, const char *dir)
{
	for (size_t i = 0; i < s->n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/seed-%03zu", dir, i);
		FILE *f = fopen(path, "wb");
		if (!f || fwrite(s->data[i], 1, s->len[i], f) != s->len[i]) {
			fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
			if (f)
				fclose(f);
			return 2;
		}
		fclose(f);
	}
	printf("fuzz: wrote %zu seeds to %s\n", s->n, dir);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long runs = 10000;
	unsigned long long seed = 1;
	struct seedset s = {0};
	int files = 0;

	fuzz_seeds(collect, &s);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			seed = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--write-seeds") && i + 1 < argc) {
			int rc = write_seeds(&s, argv[++i]);
			free_seeds(&s);
			return rc;
		} else if (argv[i][0] == '-') {
			fprintf(stderr,
			        "usage: %s [--runs N] [--seed S] | --write-seeds DIR | FILE...\n",
			        argv[0]);
			return 2;
		} else {
			files = 1;
			if (run_file(argv[i])) {
				free_seeds(&s);
				return 2;
			}
		}
	}
	if (files) {
		free_seeds(&s);
		return 0;
	}
	if (s.n == 0) {
		fprintf(stderr, "fuzz: target gave no seeds\n");
		return 2;
	}

	for (size_t i = 0; i < s.n; i++)
		LLVMFuzzerTestOneInput(s.data[i], s.len[i]);

	uint8_t *buf = malloc(MAX_INPUT);
	if (!buf)
		return 2;
	rng_state = seed;
	for (unsigned long r = 0; r < runs; r++) {
		const size_t k = (size_t)(rnd() % s.n);
		memcpy(buf, s.data[k], s.len[k]);
		size_t len = mutate(buf, s.len[k], &s);
		LLVMFuzzerTestOneInput(buf, len);
	}
	free(buf);
	printf("fuzz: %zu seeds and %lu mutated inputs, no crash\n", s.n, runs);
	free_seeds(&s);
	return 0;
}
