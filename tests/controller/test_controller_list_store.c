/*
 * test_controller_list_store.c — the gate's list on disk (controller/list_store.h):
 *
 *   installing: every refusal leaves the store unchanged; deltas chain and rewrite only the
 *   chunks they change; a failed write leaves nothing staged; a snapshot of more files than
 *   are staged at once; the swap waits for the reader, the install does not;
 *   after install: a file edited in place, truncated, or removed is caught at the lookup
 *   that reads it (never decided from, never a SIGBUS), and a snapshot repairs it; a forged
 *   index, a forged manifest, or a manifest CURRENT does not name is refused at open; an
 *   older version's files put back are refused at open (the floor);
 *   format 1: a gate holding it decides from it and upgrades to format 2 by a snapshot;
 *   the stale policy turns an expiry into fresh / stale / expired.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "controller/error.h"
#include "controller/list_store.h"
#include "list_fixture.h"
#include "proto/error.h"

#define PASSES 3000 /* 4 chunks of ~750 passes: 12 leaves each */
#define BITS   2
#define NOW    (FIXTURE_ISSUED + 60)

struct env {
	struct list_fixture fx;
	char root[64], dir[96];
	struct proto_list_entry entries[PASSES];
	struct v2list v[4]; /* v[1..3]: a chain of consecutive versions */
	uint8_t *delta[4];  /* delta[i]: v[i-1] -> v[i] */
	size_t delta_len[4];
	uint8_t revoked_key[PROTO_LIST_KEY_LEN]; /* a pass revoked in every version */
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	fixture_init(&e->fx);
	snprintf(e->root, sizeof(e->root), "/tmp/ctl-store-XXXXXX");
	assert_non_null(mkdtemp(e->root));
	snprintf(e->dir, sizeof(e->dir), "%s/lists", e->root);
	fixture_entries(e->entries, PASSES, 1);
	fixture_v2_build(&e->fx, FIXTURE_SECTOR, 1, BITS, e->entries, PASSES, &e->v[1]);
	/* fixture_entries revokes every 17th pass; entries are sorted now: find one */
	for (size_t i = 0; i < PASSES; i++)
		if (e->entries[i].status == PROTO_STATUS_REVOKED) {
			memcpy(e->revoked_key, e->entries[i].key, PROTO_LIST_KEY_LEN);
			break;
		}
	for (int ver = 2; ver <= 3; ver++) {
		/* each version counts a use for one pass, as a day of use would */
		struct v2change c = {PROTO_CLIST_OP_CHANGE, e->entries[ver * 101]};
		c.e.used++;
		e->entries[ver * 101].used++;
		fixture_v2_next(&e->fx, &e->v[ver - 1], &c, 1, &e->v[ver], &e->delta[ver],
		                &e->delta_len[ver]);
	}
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
	assert_int_equal(system(cmd), 0);
	for (int i = 1; i <= 3; i++) {
		fixture_v2_free(&e->v[i]);
		free(e->delta[i]);
	}
	fixture_free(&e->fx);
	free(e);
	return 0;
}

static struct controller_list_store *open_store(struct env *e)
{
	struct controller_list_store *s = NULL;
	assert_int_equal(controller_list_store_open(&s, e->dir, FIXTURE_SECTOR, e->fx.ring, NOW),
	                 0);
	return s;
}

static int install(struct controller_list_store *s, const struct v2list *l)
{
	return controller_list_store_install_snapshot(s, l->stream, l->stream_len, l->sig,
	                                              l->sig_len, NOW);
}

static int apply(struct env *e, struct controller_list_store *s, int to)
{
	return controller_list_store_apply_delta(s, e->delta[to], e->delta_len[to], e->v[to].sig,
	                                         e->v[to].sig_len, NOW);
}

static void path_in(struct env *e, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", e->dir, name);
}

static int lookup_status(struct controller_list_store *s, const uint8_t *key, int *status)
{
	struct controller_pass p;
	int rc = controller_list_store_lookup(s, key, &p);
	*status = p.found ? p.entry.status : -1;
	return rc;
}

/* The chunk file of `key` in the version held on disk, and the offset of its entry. */
static void entry_place(struct env *e, const struct v2list *l, const uint8_t *key, char *path,
                        size_t cap, off_t *off, uint32_t *chunk)
{
	uint32_t j = proto_clist_chunk_of(key, BITS);
	const struct proto_clist_chunk_data *c = &l->chunks[j];
	char name[PROTO_CLIST_NAME_MAX];
	proto_clist_name_chunk(name, j, l->m.chunks[j].since, 0);
	path_in(e, name, path, cap);
	for (uint32_t i = 0; i < c->n; i++)
		if (memcmp(c->dat + (size_t)i * PROTO_CLIST_ENTRY_SIZE, key, PROTO_LIST_KEY_LEN) ==
		    0) {
			*off = (off_t)i * PROTO_CLIST_ENTRY_SIZE;
			*chunk = j;
			return;
		}
	fail_msg("key not in its chunk");
}

/* The status bits live in the high bits of byte 8 of an entry. */
static void set_status_on_disk(const char *path, off_t off, uint8_t status)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, off + 8), 1);
	b = (uint8_t)((b & 0x3f) | (status << 6));
	assert_int_equal(pwrite(fd, &b, 1, off + 8), 1);
	close(fd);
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* --- installing ------------------------------------------------------------------------ */

static void test_empty_store_holds_nothing(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	struct controller_list_info i;
	controller_list_store_info(s, &i);
	assert_false(i.held);
	assert_int_equal(controller_list_store_version(s), 0);
	assert_false(controller_list_store_fell_back(s));
	struct controller_pass p;
	assert_int_equal(controller_list_store_lookup(s, e->revoked_key, &p),
	                 CONTROLLER_ERR_NO_LIST);
	struct controller_stale_policy pol = {CONTROLLER_STALE_ACCEPT_KNOWN, 24};
	assert_int_equal(controller_list_state_at(&i, &pol, NOW), CONTROLLER_LIST_EXPIRED);
	controller_list_store_close(s);
}

static void test_snapshot_installs_and_survives_restart(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	assert_int_equal(controller_list_store_version(s), 1);
	int st;
	assert_int_equal(lookup_status(s, e->revoked_key, &st), 0);
	assert_int_equal(st, PROTO_STATUS_REVOKED);
	controller_list_store_close(s);

	s = open_store(e);
	struct controller_list_info i;
	controller_list_store_info(s, &i);
	assert_true(i.held);
	assert_int_equal(i.format, 2);
	assert_int_equal(i.version, 1);
	assert_int_equal(i.entries, PASSES);
	assert_int_equal(i.expires_at, FIXTURE_EXPIRES);
	assert_false(i.damaged);
	assert_int_equal(lookup_status(s, e->revoked_key, &st), 0);
	assert_int_equal(st, PROTO_STATUS_REVOKED);
	/* every pass is found, from every chunk */
	for (size_t k = 0; k < PASSES; k += 97) {
		struct controller_pass p;
		assert_int_equal(controller_list_store_lookup(s, e->entries[k].key, &p), 0);
		assert_true(p.found);
	}
	/* the files are the published ones: the manifest CURRENT names is byte for byte it */
	char p[256], *buf = malloc(e->v[1].manifest_len + 1);
	path_in(e, "v1.manifest", p, sizeof(p));
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, e->v[1].manifest_len + 1, f), e->v[1].manifest_len);
	fclose(f);
	assert_memory_equal(buf, e->v[1].manifest, e->v[1].manifest_len);
	free(buf);
	controller_list_store_close(s);
}

static void test_refusals_leave_the_store_unchanged(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[2]), 0);

	/* another sector's list */
	struct v2list other;
	struct proto_list_entry few[8];
	fixture_entries(few, 8, 9);
	fixture_v2_build(&e->fx, FIXTURE_SECTOR + 1, 5, 0, few, 8, &other);
	assert_int_equal(install(s, &other), PROTO_ERR_LIST_SECTOR);
	fixture_v2_free(&other);
	/* signed by a key the gate does not trust */
	struct list_fixture stranger;
	fixture_init(&stranger);
	fixture_v2_build(&stranger, FIXTURE_SECTOR, 5, 0, few, 8, &other);
	assert_int_equal(install(s, &other), PROTO_ERR_LIST_UNKNOWN_KEY);
	fixture_v2_free(&other);
	fixture_free(&stranger);
	/* a signature of another manifest */
	assert_int_equal(controller_list_store_install_snapshot(s, e->v[3].stream,
	                                                        e->v[3].stream_len, e->v[1].sig,
	                                                        e->v[1].sig_len, NOW),
	                 PROTO_ERR_LIST_SIGNATURE);
	/* one byte of a chunk changed in transit */
	uint8_t *bad = malloc(e->v[3].stream_len);
	memcpy(bad, e->v[3].stream, e->v[3].stream_len);
	bad[e->v[3].stream_len - 20] ^= 0x40;
	assert_int_equal(controller_list_store_install_snapshot(s, bad, e->v[3].stream_len,
	                                                        e->v[3].sig, e->v[3].sig_len, NOW),
	                 PROTO_ERR_LIST_HASH);
	free(bad);
	/* expired, and older */
	assert_int_equal(controller_list_store_install_snapshot(s, e->v[3].stream,
	                                                        e->v[3].stream_len, e->v[3].sig,
	                                                        e->v[3].sig_len, FIXTURE_EXPIRES),
	                 PROTO_ERR_LIST_EXPIRED);
	assert_int_equal(install(s, &e->v[1]), PROTO_ERR_LIST_ROLLBACK);
	assert_int_equal(install(s, &e->v[2]), PROTO_ERR_LIST_ROLLBACK);

	assert_int_equal(controller_list_store_version(s), 2);
	controller_list_store_close(s);
	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 2);
	assert_false(controller_list_store_fell_back(s));
	controller_list_store_close(s);
}

static void test_delta_base_must_be_held(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(apply(e, s, 2), CONTROLLER_ERR_NO_LIST);
	assert_int_equal(install(s, &e->v[1]), 0);
	assert_int_equal(apply(e, s, 3), PROTO_ERR_DELTA_BASE);
	/* the delta's result is not what the signature covers (another version's signature) */
	assert_int_equal(controller_list_store_apply_delta(s, e->delta[2], e->delta_len[2],
	                                                   e->v[3].sig, e->v[3].sig_len, NOW),
	                 PROTO_ERR_DELTA_RESULT);
	assert_int_equal(controller_list_store_version(s), 1);
	controller_list_store_close(s);
}

static void test_a_delta_rewrites_what_it_changes(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	struct controller_list_store_stats st;
	controller_list_store_stats(s, &st);
	assert_int_equal(st.chunks_reused, 0);
	uint64_t snapshot_bytes = st.bytes_written;

	assert_int_equal(apply(e, s, 2), 0);
	/* what v1 used and v2 does not is gone at once, not at the next open: the changed
	 * chunk's two files and v1's head, manifest and signature (4 chunks x 2 + 4 left) */
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	         "test $(ls '%s' | wc -l) = %d && ! ls '%s' | grep -q -e '^v1[.]' -e '[.]tmp$'",
	         e->dir, 2 * (1 << BITS) + 4, e->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(apply(e, s, 3), 0);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(controller_list_store_version(s), 3);
	controller_list_store_stats(s, &st);
	/* one pass changed: one chunk of four rewritten, the others kept as they were */
	assert_int_equal(st.chunks_reused, (1u << BITS) - 1);
	print_message("snapshot install wrote %llu bytes, a one-pass delta %llu\n",
	              (unsigned long long)snapshot_bytes, (unsigned long long)st.bytes_written);
	assert_true(st.bytes_written * 3 < snapshot_bytes);
	struct controller_pass p;
	assert_int_equal(controller_list_store_lookup(s, e->entries[303].key, &p), 0);
	assert_true(p.found);
	assert_int_equal(p.entry.used, e->entries[303].used);
	controller_list_store_close(s);

	/* what the delta made is exactly what was published: v3's files verify at open */
	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 3);
	assert_false(controller_list_store_fell_back(s));
	struct controller_list_info i;
	controller_list_store_info(s, &i);
	assert_false(i.damaged);
	/* and only one version's files are left: 4 chunks x 2 + head, manifest, signature */
	assert_int_equal(system(cmd), 0);
	controller_list_store_close(s);
}

/* An install that cannot write its commit leaves the version held, and nothing of its own:
 * the staged files are closed and removed (CURRENT.tmp made a directory: its open fails
 * after the delta's files were staged). */
static void test_a_failed_install_leaves_nothing_staged(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	char blocker[160], cmd[400];
	path_in(e, "CURRENT.tmp", blocker, sizeof(blocker));
	assert_int_equal(mkdir(blocker, 0700), 0);
	assert_int_not_equal(apply(e, s, 2), 0);
	assert_int_equal(controller_list_store_version(s), 1);
	int status;
	assert_int_equal(lookup_status(s, e->entries[202].key, &status), 0);
	assert_int_equal(status, e->entries[202].status);
	/* nothing but v1's files and the blocker: no temp file, no file of v2 */
	snprintf(cmd, sizeof(cmd), "test $(ls '%s' | grep -v '^CURRENT.tmp$' | wc -l) = %d", e->dir,
	         2 * (1 << BITS) + 4);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd),
	         "! ls '%s' | grep -v '^CURRENT.tmp$' | grep -q -e 'v2' -e '[.]tmp$'", e->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(rmdir(blocker), 0);
	/* the same delta goes in once the disk lets it, and holds at the next open */
	assert_int_equal(apply(e, s, 2), 0);
	controller_list_store_close(s);
	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 2);
	assert_false(controller_list_store_fell_back(s));
	controller_list_store_close(s);
}

/* A snapshot of more chunks than the store stages at once (64 files) is made durable in
 * groups, and every chunk is there at the next open. */
static void test_a_snapshot_of_many_chunks(void **state)
{
	struct env *e = *state;
	struct v2list many;
	fixture_v2_build(&e->fx, FIXTURE_SECTOR, 1, 6, e->entries, PASSES, &many);
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &many), 0);
	controller_list_store_close(s);
	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 1);
	assert_false(controller_list_store_fell_back(s));
	struct controller_list_info i;
	controller_list_store_info(s, &i);
	assert_false(i.damaged);
	for (size_t k = 0; k < PASSES; k += 97) {
		int status;
		assert_int_equal(lookup_status(s, e->entries[k].key, &status), 0);
		assert_int_equal(status, e->entries[k].status);
	}
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test $(ls '%s' | wc -l) = %d", e->dir, 2 * (1 << 6) + 4);
	assert_int_equal(system(cmd), 0);
	controller_list_store_close(s);
	fixture_v2_free(&many);
}

/* The reader's lock is taken for writing only for the swap: an install prepares and
 * commits while a tap holds the lock for reading, and waits only to swap. */
struct installer {
	struct env *e;
	struct controller_list_store *s;
	int rc;
	volatile int done;
};

static void *install_thread(void *arg)
{
	struct installer *in = arg;
	in->rc = apply(in->e, in->s, 2);
	in->done = 1;
	return NULL;
}

static void test_an_install_never_blocks_a_tap(void **state)
{
	struct env *e = *state;
	pthread_rwlock_t lock;
	assert_int_equal(pthread_rwlock_init(&lock, NULL), 0);
	struct controller_list_store *s = open_store(e);
	controller_list_store_set_lock(s, &lock);
	assert_int_equal(install(s, &e->v[1]), 0);

	pthread_rwlock_rdlock(&lock); /* a tap in progress */
	struct installer in = {e, s, -1, 0};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, install_thread, &in), 0);
	/* the new version gets committed on disk while the tap still holds the lock */
	char p[256];
	path_in(e, "CURRENT", p, sizeof(p));
	int committed = 0;
	for (int i = 0; i < 500 && !committed; i++) {
		FILE *f = fopen(p, "r");
		char text[256] = "";
		if (f) {
			size_t n = fread(text, 1, sizeof(text) - 1, f);
			text[n] = '\0';
			fclose(f);
		}
		committed = strstr(text, "version 2\n") != NULL;
		if (!committed)
			usleep(10000);
	}
	assert_true(committed);
	/* ... and the tap decides from the old version meanwhile */
	assert_int_equal(controller_list_store_version(s), 1);
	assert_false(in.done);
	pthread_rwlock_unlock(&lock);
	pthread_join(t, NULL);
	assert_int_equal(in.rc, 0);
	assert_int_equal(controller_list_store_version(s), 2);
	controller_list_store_close(s);
	pthread_rwlock_destroy(&lock);
}

/* --- after install: nothing on disk is trusted ----------------------------------------- */

/* Issue 10: editing the list file in place flipped "revoked" to "active". */
static void test_an_edit_in_place_is_never_decided_from(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	char path[256];
	off_t off;
	uint32_t chunk;
	entry_place(e, &e->v[1], e->revoked_key, path, sizeof(path), &off, &chunk);
	set_status_on_disk(path, off, PROTO_STATUS_ACTIVE);

	int st;
	assert_int_equal(lookup_status(s, e->revoked_key, &st), CONTROLLER_ERR_LIST_DAMAGED);
	assert_int_not_equal(st, PROTO_STATUS_ACTIVE);
	/* the rest of the list still serves; the store now asks for a snapshot */
	for (size_t k = 0; k < PASSES; k += 50)
		if (proto_clist_chunk_of(e->entries[k].key, BITS) != chunk) {
			assert_int_equal(lookup_status(s, e->entries[k].key, &st), 0);
			assert_true(st >= 0);
		}
	uint64_t hv;
	unsigned hf;
	controller_list_store_hello(s, &hv, &hf);
	assert_int_equal(hv, 0);
	controller_list_store_close(s);

	/* after a restart too: the leaf is checked at every lookup, not at install only */
	s = open_store(e);
	assert_int_equal(lookup_status(s, e->revoked_key, &st), CONTROLLER_ERR_LIST_DAMAGED);
	/* the snapshot the server then sends, of the same version, repairs it */
	assert_int_equal(install(s, &e->v[1]), 0);
	assert_int_equal(lookup_status(s, e->revoked_key, &st), 0);
	assert_int_equal(st, PROTO_STATUS_REVOKED);
	controller_list_store_hello(s, &hv, &hf);
	assert_int_equal(hv, 1);
	assert_int_equal(hf, 2);
	controller_list_store_close(s);
}

/* Issue 10: truncating the list file crashed the controller with SIGBUS. */
static void test_a_truncated_file_never_crashes(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	char path[256];
	off_t off;
	uint32_t chunk;
	entry_place(e, &e->v[1], e->revoked_key, path, sizeof(path), &off, &chunk);
	assert_int_equal(truncate(path, 0), 0);
	int st;
	/* every pass of that chunk: refused, never a crash */
	for (size_t k = 0; k < PASSES; k++)
		if (proto_clist_chunk_of(e->entries[k].key, BITS) == chunk)
			assert_int_equal(lookup_status(s, e->entries[k].key, &st),
			                 CONTROLLER_ERR_LIST_DAMAGED);
	controller_list_store_close(s);
	/* at the next start the size is wrong: that chunk is known damaged at open */
	s = open_store(e);
	struct controller_list_info i;
	controller_list_store_info(s, &i);
	assert_true(i.held);
	assert_true(i.damaged);
	assert_int_equal(lookup_status(s, e->revoked_key, &st), CONTROLLER_ERR_LIST_DAMAGED);
	/* a removed file: the same */
	assert_int_equal(unlink(path), 0);
	controller_list_store_close(s);
	s = open_store(e);
	assert_int_equal(lookup_status(s, e->revoked_key, &st), CONTROLLER_ERR_LIST_DAMAGED);
	controller_list_store_close(s);
}

/* A forger who rewrites the entry and its leaf hash in the index: the index no longer
 * matches the signed manifest, which open checks. */
static void test_a_forged_index_is_refused_at_open(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	controller_list_store_close(s);
	char dat[256], idx[256], name[PROTO_CLIST_NAME_MAX];
	off_t off;
	uint32_t chunk;
	entry_place(e, &e->v[1], e->revoked_key, dat, sizeof(dat), &off, &chunk);
	set_status_on_disk(dat, off, PROTO_STATUS_ACTIVE);
	/* the index rebuilt over the altered entries: leaf checks alone would pass */
	struct proto_clist_chunk_data *c = &e->v[1].chunks[chunk];
	uint8_t *altered = malloc((size_t)c->n * PROTO_CLIST_ENTRY_SIZE), *nidx = NULL;
	size_t nidx_len = 0;
	memcpy(altered, c->dat, (size_t)c->n * PROTO_CLIST_ENTRY_SIZE);
	altered[off + 8] = (uint8_t)(altered[off + 8] & 0x3f);
	assert_int_equal(proto_clist_idx_build(chunk, altered, c->n, &nidx, &nidx_len), 0);
	proto_clist_name_chunk(name, chunk, e->v[1].m.chunks[chunk].since, 1);
	path_in(e, name, idx, sizeof(idx));
	write_file(idx, nidx, nidx_len);
	free(nidx);
	free(altered);

	s = open_store(e);
	int st;
	assert_int_equal(lookup_status(s, e->revoked_key, &st), CONTROLLER_ERR_LIST_DAMAGED);
	assert_int_not_equal(st, PROTO_STATUS_ACTIVE);
	controller_list_store_close(s);
}

/* ... who also rewrites the manifest's hashes and CURRENT: the signature does not verify. */
static void test_a_forged_manifest_is_refused_at_open(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	controller_list_store_close(s);
	/* a whole other version 1 (the pass active), signed by someone else, over the files */
	struct list_fixture forger;
	fixture_init(&forger);
	struct v2list forged;
	struct proto_list_entry copy[PASSES];
	memcpy(copy, e->entries, sizeof(copy));
	for (size_t i = 0; i < PASSES; i++)
		copy[i].status = PROTO_STATUS_ACTIVE;
	fixture_v2_build(&forger, FIXTURE_SECTOR, 1, BITS, copy, PASSES, &forged);
	/* keep the key id the gate trusts, so that only the signature can tell */
	struct proto_clist_head h;
	assert_int_equal(proto_clist_head_parse(forged.head, forged.head_len, &h), 0);
	proto_key_id(e->fx.signer, h.key_id);
	free(forged.head);
	assert_int_equal(proto_clist_head_encode(&h, &forged.head, &forged.head_len), 0);
	proto_clist_head_free(&h);
	proto_sha256(forged.head, forged.head_len, forged.m.head_hash);
	free(forged.manifest);
	assert_int_equal(
	        proto_clist_manifest_encode(&forged.m, &forged.manifest, &forged.manifest_len), 0);
	char p[256], name[PROTO_CLIST_NAME_MAX];
	path_in(e, "v1.manifest", p, sizeof(p));
	write_file(p, forged.manifest, forged.manifest_len);
	path_in(e, "v1.head", p, sizeof(p));
	write_file(p, forged.head, forged.head_len);
	for (uint32_t j = 0; j < forged.m.n_chunks; j++) {
		proto_clist_name_chunk(name, j, 1, 0);
		path_in(e, name, p, sizeof(p));
		write_file(p, forged.chunks[j].dat,
		           (size_t)forged.chunks[j].n * PROTO_CLIST_ENTRY_SIZE);
		proto_clist_name_chunk(name, j, 1, 1);
		path_in(e, name, p, sizeof(p));
		write_file(p, forged.chunks[j].idx, forged.chunks[j].idx_len);
	}
	uint8_t mh[PROTO_HASH_LEN];
	char text[256], hexs[65];
	proto_sha256(forged.manifest, forged.manifest_len, mh);
	for (int i = 0; i < PROTO_HASH_LEN; i++)
		snprintf(hexs + 2 * i, 3, "%02x", mh[i]);
	int n = snprintf(text, sizeof(text), "citypass list store 2\nversion 1\nmanifest %s\n",
	                 hexs);
	path_in(e, "CURRENT", p, sizeof(p));
	write_file(p, (const uint8_t *)text, (size_t)n);

	s = open_store(e);
	struct controller_list_info i;
	controller_list_store_info(s, &i);
	assert_false(i.held);
	assert_true(controller_list_store_fell_back(s));
	assert_int_equal(controller_list_store_open_error(s), PROTO_ERR_LIST_SIGNATURE);
	int st;
	assert_int_equal(lookup_status(s, e->revoked_key, &st), CONTROLLER_ERR_NO_LIST);
	controller_list_store_close(s);
	fixture_v2_free(&forged);
	fixture_free(&forger);
}

/* CURRENT names a manifest by its hash: another validly signed manifest of the same
 * version (a server that republished it, files half replaced by a repair) is not used. */
static void test_open_uses_only_the_manifest_current_names(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	controller_list_store_close(s);
	struct v2list other;
	struct proto_list_entry copy[PASSES];
	memcpy(copy, e->entries, sizeof(copy));
	for (size_t i = 0; i < PASSES; i++)
		copy[i].status = PROTO_STATUS_ACTIVE;
	fixture_v2_build(&e->fx, FIXTURE_SECTOR, 1, BITS, copy, PASSES, &other);
	char p[256], name[PROTO_CLIST_NAME_MAX];
	path_in(e, "v1.manifest", p, sizeof(p));
	write_file(p, other.manifest, other.manifest_len);
	path_in(e, "v1.manifest.sig", p, sizeof(p));
	write_file(p, other.sig, other.sig_len);
	path_in(e, "v1.head", p, sizeof(p));
	write_file(p, other.head, other.head_len);
	for (uint32_t j = 0; j < other.m.n_chunks; j++) {
		proto_clist_name_chunk(name, j, 1, 0);
		path_in(e, name, p, sizeof(p));
		write_file(p, other.chunks[j].dat,
		           (size_t)other.chunks[j].n * PROTO_CLIST_ENTRY_SIZE);
		proto_clist_name_chunk(name, j, 1, 1);
		path_in(e, name, p, sizeof(p));
		write_file(p, other.chunks[j].idx, other.chunks[j].idx_len);
	}
	s = open_store(e);
	assert_int_equal(controller_list_store_open_error(s), PROTO_ERR_LIST_HASH);
	int st;
	assert_int_equal(lookup_status(s, e->revoked_key, &st), CONTROLLER_ERR_NO_LIST);
	controller_list_store_close(s);
	fixture_v2_free(&other);
}

/* Issue 10: a rollback through the state dir (an older version's files put back). */
static void test_an_older_version_put_back_is_refused_at_open(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	controller_list_store_close(s);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s/saved'", e->dir, e->root);
	assert_int_equal(system(cmd), 0);
	s = open_store(e);
	assert_int_equal(apply(e, s, 2), 0);
	controller_list_store_close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mv '%s/saved' '%s'", e->dir, e->root, e->dir);
	assert_int_equal(system(cmd), 0);

	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 0);
	assert_int_equal(controller_list_store_open_error(s), PROTO_ERR_LIST_ROLLBACK);
	/* nothing older than what was held is installed either; the next version is */
	assert_int_equal(install(s, &e->v[1]), PROTO_ERR_LIST_ROLLBACK);
	assert_int_equal(install(s, &e->v[2]), 0);
	assert_int_equal(controller_list_store_version(s), 2);
	/* the store opened empty, so what the directory held was not known: it was read, and
	 * the old version's files put back are gone at once (4 chunks x 2 + 4 left) */
	snprintf(cmd, sizeof(cmd), "test $(ls '%s' | wc -l) = %d && ! ls '%s' | grep -q '^v1[.]'",
	         e->dir, 2 * (1 << BITS) + 4, e->dir);
	assert_int_equal(system(cmd), 0);
	controller_list_store_close(s);
}

static void test_expired_list_is_kept_at_open(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	controller_list_store_close(s);
	assert_int_equal(controller_list_store_open(&s, e->dir, FIXTURE_SECTOR, e->fx.ring,
	                                            FIXTURE_EXPIRES + 3600),
	                 0);
	assert_int_equal(controller_list_store_version(s), 1);
	controller_list_store_close(s);
}

static void test_lookup_for_the_engine(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	for (size_t k = 0; k < 30; k++) {
		struct controller_pass p;
		const struct proto_list_entry *want = &e->entries[k];
		assert_int_equal(controller_list_store_lookup(s, want->key, &p), 0);
		assert_true(p.found);
		assert_int_equal(p.entry.profile, want->profile);
		assert_int_equal(p.entry.household, want->household);
		assert_int_equal(p.entry.used, want->used);
		assert_int_equal(p.entry.used_period, want->used_period);
		assert_int_equal(p.entry.status, want->status);
		assert_int_equal(p.profile.product, fixture_profiles[want->profile].product);
		assert_int_equal(p.profile.limit, fixture_profiles[want->profile].limit);
	}
	uint8_t absent[PROTO_LIST_KEY_LEN];
	proto_list_key(FIXTURE_SECTOR, (const uint8_t *)"nobody", 6, absent);
	struct controller_pass p;
	assert_int_equal(controller_list_store_lookup(s, absent, &p), 0);
	assert_false(p.found);
	controller_list_store_close(s);
}

/* --- format 1: what gates held before --------------------------------------------------- */

static void test_format1_is_decided_from_then_upgraded(void **state)
{
	struct env *e = *state;
	struct built_list old;
	struct proto_list_entry copy[PASSES];
	memcpy(copy, e->entries, sizeof(copy));
	fixture_build(&e->fx, 1, NULL, copy, PASSES, &old);
	struct controller_list_store *s = open_store(e);
	assert_int_equal(controller_list_store_install_snapshot(s, old.buf, old.len, old.sig,
	                                                        old.sig_len, NOW),
	                 0);
	controller_list_store_close(s);

	/* a new controller started on those files */
	s = open_store(e);
	struct controller_list_info i;
	controller_list_store_info(s, &i);
	assert_true(i.held);
	assert_int_equal(i.format, 1);
	assert_int_equal(i.version, 1);
	int st;
	assert_int_equal(lookup_status(s, e->revoked_key, &st), 0);
	assert_int_equal(st, PROTO_STATUS_REVOKED);
	uint64_t hv;
	unsigned hf;
	controller_list_store_hello(s, &hv, &hf);
	assert_int_equal(hv, 1);
	assert_int_equal(hf, 1);
	/* the server answers a format 1 Hello with a format 2 snapshot, of that very version */
	assert_int_equal(install(s, &e->v[1]), 0);
	controller_list_store_info(s, &i);
	assert_int_equal(i.format, 2);
	assert_int_equal(lookup_status(s, e->revoked_key, &st), 0);
	assert_int_equal(st, PROTO_STATUS_REVOKED);
	/* then deltas, and no format 1 file is left */
	assert_int_equal(apply(e, s, 2), 0);
	char p[256];
	path_in(e, "v1.cpl", p, sizeof(p));
	assert_int_not_equal(access(p, F_OK), 0);
	controller_list_store_close(s);
	free(old.buf);
}

/* --- the stale policy -------------------------------------------------------------------- */

static void test_stale_policy(void **state)
{
	(void)state;
	const int64_t exp = FIXTURE_EXPIRES;
	struct controller_list_info i = {
	        .held = true, .format = 2, .version = 1, .expires_at = exp};
	struct controller_stale_policy refuse = {CONTROLLER_STALE_REFUSE_ALL, 0};
	struct controller_stale_policy grace = {CONTROLLER_STALE_ACCEPT_KNOWN, 6};
	assert_int_equal(controller_list_state_at(&i, &refuse, exp - 1), CONTROLLER_LIST_FRESH);
	assert_int_equal(controller_list_state_at(&i, &refuse, exp), CONTROLLER_LIST_EXPIRED);
	assert_int_equal(controller_list_state_at(&i, &grace, exp - 1), CONTROLLER_LIST_FRESH);
	assert_int_equal(controller_list_state_at(&i, &grace, exp), CONTROLLER_LIST_STALE);
	assert_int_equal(controller_list_state_at(&i, &grace, exp + 6 * 3600 - 1),
	                 CONTROLLER_LIST_STALE);
	assert_int_equal(controller_list_state_at(&i, &grace, exp + 6 * 3600),
	                 CONTROLLER_LIST_EXPIRED);
	assert_int_equal(controller_list_state_at(&i, NULL, exp), CONTROLLER_LIST_EXPIRED);
	i.held = false;
	assert_int_equal(controller_list_state_at(&i, &grace, exp - 1), CONTROLLER_LIST_EXPIRED);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	        T(test_empty_store_holds_nothing),
	        T(test_snapshot_installs_and_survives_restart),
	        T(test_refusals_leave_the_store_unchanged),
	        T(test_delta_base_must_be_held),
	        T(test_a_delta_rewrites_what_it_changes),
	        T(test_a_failed_install_leaves_nothing_staged),
	        T(test_a_snapshot_of_many_chunks),
	        T(test_an_install_never_blocks_a_tap),
	        T(test_an_edit_in_place_is_never_decided_from),
	        T(test_a_truncated_file_never_crashes),
	        T(test_a_forged_index_is_refused_at_open),
	        T(test_a_forged_manifest_is_refused_at_open),
	        T(test_open_uses_only_the_manifest_current_names),
	        T(test_an_older_version_put_back_is_refused_at_open),
	        T(test_expired_list_is_kept_at_open),
	        T(test_lookup_for_the_engine),
	        T(test_format1_is_decided_from_then_upgraded),
	        cmocka_unit_test(test_stale_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
