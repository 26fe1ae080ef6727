/*
 * mem_backend.c — see mem_backend.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mem_backend.h"

#define MEM_MAX_DEVICES  2048
#define MEM_MAX_SECTORS  8
#define MEM_MAX_VERSIONS 256

struct mem_stream {
	uint64_t *seqs; /* sorted */
	size_t n, cap;
};

struct mem_device {
	struct server_device_info info;
	struct mem_stream streams[2];
};

struct mem_version {
	size_t snapshot_len;
	size_t delta_len; /* from version - 1; 0 for the first */
	int delta_dropped;
};

struct mem_sector {
	uint16_t sector;
	uint64_t latest;
	struct mem_version versions[MEM_MAX_VERSIONS + 1];
};

struct mem_backend {
	pthread_mutex_t lock;
	struct mem_device *devices;
	size_t n_devices;
	struct mem_sector sectors[MEM_MAX_SECTORS];
	size_t n_sectors;
	unsigned list_reads;
	int fail_ingest;
};

static uint8_t pattern_byte(uint16_t sector, int is_delta, uint64_t version, size_t i)
{
	return (uint8_t)(sector * 31u + (unsigned)is_delta * 101u + version * 7u + i * 13u +
	                 (i >> 8));
}

int mem_blob_matches(uint16_t sector, int is_delta, uint64_t version, const uint8_t *buf,
                     size_t len, size_t expected_len)
{
	if (len != expected_len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern_byte(sector, is_delta, version, i))
			return 0;
	return 1;
}

static uint8_t *pattern_blob(uint16_t sector, int is_delta, uint64_t version, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	if (!b)
		return NULL;
	for (size_t i = 0; i < len; i++)
		b[i] = pattern_byte(sector, is_delta, version, i);
	return b;
}

static void fake_sig(uint64_t version, uint8_t sig[SERVER_SIG_MAX], size_t *sig_len)
{
	/* the server does not verify signatures, it carries them */
	memset(sig, 0x30 + (int)(version % 16), 70);
	*sig_len = 70;
}

static struct mem_device *find_device(struct mem_backend *m, const char *id)
{
	for (size_t i = 0; i < m->n_devices; i++)
		if (strcmp(m->devices[i].info.id, id) == 0)
			return &m->devices[i];
	return NULL;
}

static struct mem_sector *find_sector(struct mem_backend *m, uint16_t sector, int create)
{
	for (size_t i = 0; i < m->n_sectors; i++)
		if (m->sectors[i].sector == sector)
			return &m->sectors[i];
	if (!create || m->n_sectors == MEM_MAX_SECTORS)
		return NULL;
	struct mem_sector *s = &m->sectors[m->n_sectors++];
	memset(s, 0, sizeof(*s));
	s->sector = sector;
	return s;
}

static int op_device_lookup(void *ctx, const char *id, struct server_device_info *out)
{
	struct mem_backend *m = ctx;
	int rc = SERVER_ERR_NOT_FOUND;
	pthread_mutex_lock(&m->lock);
	struct mem_device *d = find_device(m, id);
	if (d) {
		*out = d->info;
		rc = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int op_list_latest(void *ctx, uint16_t sector, uint64_t *version)
{
	struct mem_backend *m = ctx;
	pthread_mutex_lock(&m->lock);
	struct mem_sector *s = find_sector(m, sector, 0);
	*version = s ? s->latest : 0;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int op_list_snapshot(void *ctx, uint16_t sector, uint64_t version, struct server_blob *list,
                            uint8_t sig[SERVER_SIG_MAX], size_t *sig_len)
{
	struct mem_backend *m = ctx;
	int rc = SERVER_ERR_NOT_FOUND;
	pthread_mutex_lock(&m->lock);
	m->list_reads++;
	struct mem_sector *s = find_sector(m, sector, 0);
	if (s && version >= 1 && version <= s->latest) {
		size_t len = s->versions[version].snapshot_len;
		list->data = pattern_blob(sector, 0, version, len);
		list->len = len;
		fake_sig(version, sig, sig_len);
		rc = list->data ? 0 : SERVER_ERR_NOMEM;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int op_list_delta(void *ctx, uint16_t sector, uint64_t base, struct server_blob *delta,
                         uint8_t sig[SERVER_SIG_MAX], size_t *sig_len)
{
	struct mem_backend *m = ctx;
	int rc = SERVER_ERR_NOT_FOUND;
	pthread_mutex_lock(&m->lock);
	m->list_reads++;
	struct mem_sector *s = find_sector(m, sector, 0);
	if (s && base >= 1 && base < s->latest && !s->versions[base + 1].delta_dropped) {
		size_t len = s->versions[base + 1].delta_len;
		delta->data = pattern_blob(sector, 1, base + 1, len);
		delta->len = len;
		fake_sig(base + 1, sig, sig_len);
		rc = delta->data ? 0 : SERVER_ERR_NOMEM;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int stream_index(Citypass__Stream stream)
{
	return stream == CITYPASS__STREAM__CONSUMPTION ? 1 : 0;
}

/* Insert seq unless present: the (device, stream, seq) uniqueness of the real store. */
static int stream_add(struct mem_stream *st, uint64_t seq)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (st->seqs[mid] == seq)
			return 0;
		if (st->seqs[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 1024;
		uint64_t *g = realloc(st->seqs, cap * sizeof(*g));
		if (!g)
			return SERVER_ERR_NOMEM;
		st->seqs = g;
		st->cap = cap;
	}
	memmove(&st->seqs[lo + 1], &st->seqs[lo], (st->n - lo) * sizeof(*st->seqs));
	st->seqs[lo] = seq;
	st->n++;
	return 0;
}

static int op_ingest(void *ctx, const char *device_id, const Citypass__EventBatch *batch,
                     uint64_t *acked_seq)
{
	struct mem_backend *m = ctx;
	int rc = 0;
	pthread_mutex_lock(&m->lock);
	struct mem_device *d = find_device(m, device_id);
	if (!d) {
		rc = SERVER_ERR_NOT_FOUND;
	} else if (m->fail_ingest) {
		rc = SERVER_ERR_IO;
	} else {
		struct mem_stream *st = &d->streams[stream_index(batch->stream)];
		for (size_t i = 0; rc == 0 && i < batch->n_stats; i++)
			rc = stream_add(st, batch->stats[i]->seq);
		for (size_t i = 0; rc == 0 && i < batch->n_consumption; i++)
			rc = stream_add(st, batch->consumption[i]->seq);
		*acked_seq = st->n ? st->seqs[st->n - 1] : 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int op_acked(void *ctx, const char *device_id, Citypass__Stream stream, uint64_t *seq)
{
	struct mem_backend *m = ctx;
	pthread_mutex_lock(&m->lock);
	struct mem_device *d = find_device(m, device_id);
	const struct mem_stream *st = d ? &d->streams[stream_index(stream)] : NULL;
	*seq = st && st->n ? st->seqs[st->n - 1] : 0;
	pthread_mutex_unlock(&m->lock);
	return d ? 0 : SERVER_ERR_NOT_FOUND;
}

static void op_destroy(void *ctx)
{
	(void)ctx;
}

static const struct server_sync_backend_ops mem_ops = {
        .device_lookup = op_device_lookup,
        .list_latest = op_list_latest,
        .list_snapshot = op_list_snapshot,
        .list_delta = op_list_delta,
        .ingest = op_ingest,
        .acked = op_acked,
        .destroy = op_destroy,
};

struct mem_backend *mem_backend_new(void)
{
	struct mem_backend *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->devices = calloc(MEM_MAX_DEVICES, sizeof(*m->devices));
	if (!m->devices) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void mem_backend_free(struct mem_backend *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_devices; i++)
		for (int s = 0; s < 2; s++)
			free(m->devices[i].streams[s].seqs);
	free(m->devices);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void mem_backend_ops(struct mem_backend *m, struct server_sync_backend *out)
{
	out->ops = &mem_ops;
	out->ctx = m;
}

void mem_backend_add_device(struct mem_backend *m, const char *id, uint32_t site, uint16_t sector)
{
	pthread_mutex_lock(&m->lock);
	struct mem_device *d = find_device(m, id);
	if (!d && m->n_devices < MEM_MAX_DEVICES)
		d = &m->devices[m->n_devices++];
	if (d) {
		memset(&d->info, 0, sizeof(d->info));
		strncpy(d->info.id, id, sizeof(d->info.id) - 1);
		d->info.site = site;
		d->info.sector = sector;
	}
	pthread_mutex_unlock(&m->lock);
}

void mem_backend_revoke_device(struct mem_backend *m, const char *id)
{
	pthread_mutex_lock(&m->lock);
	struct mem_device *d = find_device(m, id);
	if (d)
		d->info.revoked = 1;
	pthread_mutex_unlock(&m->lock);
}

uint64_t mem_backend_publish(struct mem_backend *m, uint16_t sector, size_t snapshot_len,
                             size_t delta_len)
{
	uint64_t v = 0;
	pthread_mutex_lock(&m->lock);
	struct mem_sector *s = find_sector(m, sector, 1);
	if (s && s->latest < MEM_MAX_VERSIONS) {
		v = ++s->latest;
		s->versions[v].snapshot_len = snapshot_len;
		s->versions[v].delta_len = v > 1 ? delta_len : 0;
		s->versions[v].delta_dropped = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return v;
}

void mem_backend_drop_delta(struct mem_backend *m, uint16_t sector, uint64_t base)
{
	pthread_mutex_lock(&m->lock);
	struct mem_sector *s = find_sector(m, sector, 0);
	if (s && base + 1 <= s->latest)
		s->versions[base + 1].delta_dropped = 1;
	pthread_mutex_unlock(&m->lock);
}

uint64_t mem_backend_rows(struct mem_backend *m, const char *device, Citypass__Stream stream)
{
	uint64_t n = 0;
	pthread_mutex_lock(&m->lock);
	struct mem_device *d = find_device(m, device);
	if (d)
		n = d->streams[stream_index(stream)].n;
	pthread_mutex_unlock(&m->lock);
	return n;
}

unsigned mem_backend_list_reads(struct mem_backend *m)
{
	pthread_mutex_lock(&m->lock);
	unsigned n = m->list_reads;
	pthread_mutex_unlock(&m->lock);
	return n;
}

void mem_backend_fail_ingest(struct mem_backend *m, int fail)
{
	pthread_mutex_lock(&m->lock);
	m->fail_ingest = fail;
	pthread_mutex_unlock(&m->lock);
}

size_t mem_backend_blob_len(struct mem_backend *m, uint16_t sector, int is_delta, uint64_t version)
{
	size_t len = 0;
	pthread_mutex_lock(&m->lock);
	struct mem_sector *s = find_sector(m, sector, 0);
	if (s && version >= 1 && version <= s->latest)
		len = is_delta ? s->versions[version].delta_len : s->versions[version].snapshot_len;
	pthread_mutex_unlock(&m->lock);
	return len;
}
