/*
 * mem_backend.h — an in-memory server_sync_backend for the sync server's tests and
 * benchmarks: devices, published list versions (snapshot and delta blobs with a
 * recognisable byte pattern), and event storage deduplicated on (device, stream, seq).
 * Every call takes a mutex, so a test thread can publish while the server thread serves.
 */
#ifndef TEST_MEM_BACKEND_H
#define TEST_MEM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "server/sync_backend.h"

struct mem_backend;

struct mem_backend *mem_backend_new(void);
void mem_backend_free(struct mem_backend *m);
/* The ops view (destroy is a no-op: the test frees the backend itself). */
void mem_backend_ops(struct mem_backend *m, struct server_sync_backend *out);

void mem_backend_add_device(struct mem_backend *m, const char *id, uint32_t site, uint16_t sector);
void mem_backend_revoke_device(struct mem_backend *m, const char *id);

/* Publish the next version of a sector: a snapshot of snapshot_len bytes and, from the
 * previous version, a delta of delta_len bytes. Returns the new version. */
uint64_t mem_backend_publish(struct mem_backend *m, uint16_t sector, size_t snapshot_len,
                             size_t delta_len);
/* Forget the delta base -> base + 1 (retention ran out). */
void mem_backend_drop_delta(struct mem_backend *m, uint16_t sector, uint64_t base);

/* Distinct events stored for a device's stream. */
uint64_t mem_backend_rows(struct mem_backend *m, const char *device, Citypass__Stream stream);
/* Backend calls, for cache checks. */
unsigned mem_backend_list_reads(struct mem_backend *m);
/* Make ingest fail with SERVER_ERR_IO (1) or work again (0). */
void mem_backend_fail_ingest(struct mem_backend *m, int fail);

/* The bytes a published blob carries; returns 1 when buf holds exactly those. */
int mem_blob_matches(uint16_t sector, int is_delta, uint64_t version, const uint8_t *buf,
                     size_t len, size_t expected_len);
/* Length of a published blob (0 when unknown). */
size_t mem_backend_blob_len(struct mem_backend *m, uint16_t sector, int is_delta, uint64_t version);

#endif
