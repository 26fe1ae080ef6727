/*
 * server_probe — what a gate and the sync server would do with citypass-admin's output,
 * for tests/server/admin_check.sh. Uses only public headers (proto, cardlib, server).
 *
 *   server_probe lookup MANIFEST KEYHEX          status/profile/used of one list key
 *   server_probe delta-apply BASE_MANIFEST DELTA SIG PUB OUTDIR   apply a delta as a gate
 *                                                (writes the files it changed to OUTDIR)
 *   server_probe card-read CONNSTRING BUNDLE     read a card with a device bundle's sector
 *                                                key: prints id, list-key, value, and the
 *                                                key version that opened it
 *   server_probe ingest DATA DEVICE stats SEQ N SITE GATE SECTOR PRODUCT OUTCOME QH [REASON]
 *   server_probe ingest DATA DEVICE consumption SEQ SECTOR KEYHEX PRODUCT COUNT PERIOD
 *   server_probe acked DATA DEVICE stats|consumption
 *   server_probe device DATA DEVICE              the sync backend's device lookup
 *   server_probe hold-lock DATA SECONDS          hold the database's write lock that long
 *                                                (PostgreSQL: the usage tables locked
 *                                                against every writer, issue 16)
 *   server_probe qr-verify ISSUER_PUB SECTOR LINE  a gate's QR check: prints list-key
 * Exit 0 done, 1 refused (message on stderr), 2 bad usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cardlib/error.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "proto/clist.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "server/keys.h"
#include "server/store.h"
#include "server/sync_backend.h"

#include <libpq-fe.h>
#include <sqlite3.h>

static int usage(void)
{
	fprintf(stderr, "server_probe: bad usage (see the source)\n");
	return 2;
}

static int hexdec(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static void hexprint(const char *label, const uint8_t *b, size_t n)
{
	printf("%s ", label);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

static int lookup(const char *manifest, const char *hex)
{
	struct proto_clist_dir d;
	uint8_t key[PROTO_LIST_KEY_LEN];
	if (hexdec(hex, key, sizeof(key)))
		return usage();
	int rc = proto_clist_dir_open(&d, manifest, NULL);
	if (rc) {
		fprintf(stderr, "open %s: %s\n", manifest, proto_strerror(rc));
		return 1;
	}
	struct proto_list_entry e;
	struct proto_rights_profile p;
	rc = proto_clist_dir_lookup(&d, key, &e, &p);
	if (rc == 0)
		printf("status %u profile %u used %u period %u household %u limit %u "
		       "period-kind %u scope %u flags %u\n",
		       e.status, e.profile, e.used, e.used_period, e.household, p.limit, p.period,
		       p.scope, p.flags);
	else
		printf("absent\n");
	proto_clist_dir_close(&d);
	return rc == 0 ? 0 : 1;
}

static int read_all(const char *path, uint8_t **buf, size_t *len)
{
	return server_file_read(path, buf, len) == 0 ? 0 : -1;
}

static int read_base(void *ctx, uint32_t chunk, uint8_t **dat, uint32_t *n, const uint8_t **idx,
                     size_t *idx_len)
{
	(void)idx; /* every leaf hashed again */
	(void)idx_len;
	size_t len = 0;
	int rc = proto_clist_dir_file(ctx, chunk, 0, dat, &len);
	*n = (uint32_t)(len / PROTO_CLIST_ENTRY_SIZE);
	return rc;
}

static int put(const char *dir, const char *name, const uint8_t *b, size_t n)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return server_file_create(path, b, n, 0644);
}

/* Apply a delta to the version in BASE's directory as a gate would, and write what a gate
 * would then hold that the base did not (the new manifest, signature, head and chunks). */
static int delta_apply(char **argv)
{
	uint8_t *delta = NULL, *sig = NULL;
	size_t delta_len, sig_len;
	struct proto_clist_dir base;
	struct proto_key *pub = NULL;
	struct proto_keyring *ring = proto_keyring_new();
	struct proto_clist_applied ap;
	int ret = 1, opened = 0;
	memset(&ap, 0, sizeof(ap));
	if (read_all(argv[1], &delta, &delta_len) || read_all(argv[2], &sig, &sig_len) ||
	    proto_key_load_public(&pub, argv[3]) != 0 ||
	    proto_clist_dir_open(&base, argv[0], NULL) != 0) {
		fprintf(stderr, "cannot read the inputs\n");
		goto out;
	}
	opened = 1;
	proto_keyring_add(ring, pub);
	uint8_t base_hash[PROTO_HASH_LEN];
	proto_sha256(base.manifest, base.manifest_len, base_hash);
	struct proto_list_policy pol = {base.h.sector, base.h.version, base.h.issued_at, ring};
	int rc = proto_clist_delta_apply(&base.m, base_hash, read_base, &base, delta, delta_len,
	                                 sig, sig_len, &pol, &ap);
	if (rc) {
		fprintf(stderr, "delta refused: %s\n", proto_strerror(rc));
		goto out;
	}
	char name[PROTO_CLIST_NAME_MAX];
	uint64_t v = ap.head.version;
	mkdir(argv[4], 0755);
	proto_clist_name_manifest(name, v);
	rc = put(argv[4], name, ap.manifest_bytes, ap.manifest_len);
	proto_clist_name_sig(name, v);
	rc = rc ? rc : put(argv[4], name, sig, sig_len);
	proto_clist_name_head(name, v);
	rc = rc ? rc : put(argv[4], name, ap.head_bytes, ap.head_len);
	for (uint32_t i = 0; rc == 0 && i < ap.n_changed; i++) {
		proto_clist_name_chunk(name, ap.changed[i], v, 0);
		rc = put(argv[4], name, ap.chunks[i].dat,
		         (size_t)ap.chunks[i].n * PROTO_CLIST_ENTRY_SIZE);
		proto_clist_name_chunk(name, ap.changed[i], v, 1);
		rc = rc ? rc : put(argv[4], name, ap.chunks[i].idx, ap.chunks[i].idx_len);
	}
	if (rc) {
		fprintf(stderr, "cannot write %s\n", argv[4]);
		goto out;
	}
	printf("applied: version %" PRIu64 ", %" PRIu32 " chunk(s) changed\n", v, ap.n_changed);
	ret = 0;
out:
	proto_clist_applied_free(&ap);
	if (opened)
		proto_clist_dir_close(&base);
	proto_keyring_free(ring);
	proto_key_free(pub);
	free(delta);
	free(sig);
	return ret;
}

static int card_read(const char *conn, const char *bundle)
{
	char path[4096], line[256];
	snprintf(path, sizeof(path), "%s/card-sector.key", bundle);
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		return 1;
	}
	struct cardlib_sector_key k;
	memset(&k, 0, sizeof(k));
	k.sys.aid = CARDLIB_LAYOUT_AID;
	k.auth = CARDLIB_AUTH_EV2;
	unsigned sector = 0, v;
	char hex[80];
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "system-id %64s", hex) == 1) {
			k.sys.sys_id_len = strlen(hex) / 2;
			hexdec(hex, k.sys.sys_id, k.sys.sys_id_len);
		} else if (sscanf(line, "sector %u", &v) == 1) {
			sector = v;
		} else if (sscanf(line, "slot %u", &v) == 1) {
			k.slot = (uint8_t)v;
		} else if (sscanf(line, "master %64s", hex) == 1) {
			hexdec(hex, k.master, sizeof(k.master));
		} else if (sscanf(line, "key-version %u", &v) == 1) {
			k.version = (uint8_t)v;
		} else if (sscanf(line, "previous-master %64s", hex) == 1) {
			hexdec(hex, k.previous, sizeof(k.previous));
			k.has_previous = 1;
		} else if (sscanf(line, "previous-key-version %u", &v) == 1) {
			k.previous_version = (uint8_t)v;
		} else if (sscanf(line, "reads-value %u", &v) == 1) {
			k.reads_value = (int)v;
		}
	}
	fclose(f);
	struct cardlib_reader *r = NULL;
	struct cardlib_card_read rd;
	memset(&rd, 0, sizeof(rd));
	int rc = cardlib_nfc_open(&r, conn);
	if (rc == 0)
		rc = cardlib_card_read_sector(r, &k, &rd);
	cardlib_reader_free(r);
	if (rc) {
		fprintf(stderr, "refused: error=%d (%s)\n", rc, cardlib_strerror(rc));
		return 1;
	}
	uint8_t key[PROTO_LIST_KEY_LEN];
	proto_list_key((uint16_t)sector, rd.id, sizeof(rd.id), key);
	hexprint("id", rd.id, sizeof(rd.id));
	hexprint("list-key", key, sizeof(key));
	if (rd.has_value)
		printf("value %d\n", (int)rd.value);
	printf("key-version %u%s\n", rd.key_version, rd.previous_key ? " previous" : "");
	return 0;
}

static uint64_t num(const char *s)
{
	return strtoull(s, NULL, 0);
}

static int ingest(int argc, char **argv)
{
	struct server_sync_backend b;
	if (argc < 4)
		return usage();
	int rc = server_sync_backend_open(&b, argv[0], 0, NULL);
	if (rc) {
		fprintf(stderr, "backend: %s\n", server_strerror(rc));
		return 1;
	}
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	Citypass__StatEvent *st = NULL, **stp = NULL;
	Citypass__ConsumptionEvent ce = CITYPASS__CONSUMPTION_EVENT__INIT, *cep = &ce;
	uint8_t key[8];
	if (strcmp(argv[2], "stats") == 0 && (argc == 11 || argc == 12)) {
		size_t n = num(argv[4]);
		st = calloc(n, sizeof(*st));
		stp = calloc(n, sizeof(*stp));
		for (size_t i = 0; i < n; i++) {
			citypass__stat_event__init(&st[i]);
			st[i].seq = num(argv[3]) + i;
			st[i].site = (uint32_t)num(argv[5]);
			st[i].gate = (uint32_t)num(argv[6]);
			st[i].sector = (uint32_t)num(argv[7]);
			st[i].product = (uint32_t)num(argv[8]);
			st[i].outcome = (Citypass__Outcome)num(argv[9]);
			st[i].quarter_hour = (int64_t)num(argv[10]);
			st[i].reason = argc == 12 ? (uint32_t)num(argv[11]) : 0;
			stp[i] = &st[i];
		}
		batch.stream = CITYPASS__STREAM__STATISTICS;
		batch.n_stats = n;
		batch.stats = stp;
	} else if (strcmp(argv[2], "consumption") == 0 && argc == 9) {
		if (hexdec(argv[5], key, sizeof(key)))
			return usage();
		ce.seq = num(argv[3]);
		ce.sector = (uint32_t)num(argv[4]);
		ce.pseudonym.data = key;
		ce.pseudonym.len = sizeof(key);
		ce.product = (uint32_t)num(argv[6]);
		ce.count = (uint32_t)num(argv[7]);
		ce.period = (uint32_t)num(argv[8]);
		batch.stream = CITYPASS__STREAM__CONSUMPTION;
		batch.n_consumption = 1;
		batch.consumption = &cep;
	} else {
		b.ops->destroy(b.ctx);
		return usage();
	}
	uint64_t acked = 0;
	rc = b.ops->ingest(b.ctx, argv[1], &batch, &acked);
	b.ops->destroy(b.ctx);
	free(st);
	free(stp);
	if (rc) {
		fprintf(stderr, "ingest: %s\n", server_strerror(rc));
		return 1;
	}
	printf("acked %" PRIu64 "\n", acked);
	return 0;
}

static int acked(char **argv)
{
	struct server_sync_backend b;
	int rc = server_sync_backend_open(&b, argv[0], 0, NULL);
	if (rc)
		return 1;
	uint64_t seq = 0;
	rc = b.ops->acked(b.ctx, argv[1],
	                  strcmp(argv[2], "stats") == 0 ? CITYPASS__STREAM__STATISTICS
	                                                : CITYPASS__STREAM__CONSUMPTION,
	                  &seq);
	b.ops->destroy(b.ctx);
	if (rc)
		return 1;
	printf("acked %" PRIu64 "\n", seq);
	return 0;
}

static int device(char **argv)
{
	struct server_sync_backend b;
	int rc = server_sync_backend_open(&b, argv[0], 0, NULL);
	if (rc)
		return 1;
	struct server_device_info d;
	uint64_t latest = 0;
	rc = b.ops->device_lookup(b.ctx, argv[1], &d);
	if (rc == 0)
		rc = b.ops->list_latest(b.ctx, d.sector, &latest);
	if (rc == 0) {
		struct server_blob blob = {0};
		uint8_t sig[SERVER_SIG_MAX];
		size_t sig_len;
		rc = b.ops->list_snapshot(b.ctx, d.sector, latest, &blob, sig, &sig_len);
		free(blob.data);
	}
	b.ops->destroy(b.ctx);
	if (rc) {
		fprintf(stderr, "device: %s\n", server_strerror(rc));
		return 1;
	}
	printf("device %s site %u sector %u revoked %d latest %" PRIu64 "\n", d.id, d.site,
	       d.sector, d.revoked, latest);
	return 0;
}

static int qr_verify(char **argv)
{
	struct proto_key *issuer = NULL;
	struct proto_keyring *ring = NULL;
	uint8_t id[CARDLIB_TOKEN_ID_LEN], key[PROTO_LIST_KEY_LEN];
	uint16_t sector = (uint16_t)num(argv[1]);
	int rc = proto_key_load(&issuer, argv[0]);
	if (rc == 0 && !(ring = proto_keyring_new()))
		rc = PROTO_ERR_NOMEM;
	if (rc == 0)
		rc = proto_keyring_add(ring, issuer);
	if (rc == 0)
		rc = cardlib_qr_verify(argv[2], strlen(argv[2]), ring, sector, (int64_t)time(NULL),
		                       NULL, id, NULL);
	proto_keyring_free(ring);
	proto_key_free(issuer);
	if (rc) {
		fprintf(stderr, "refused: error=%d (%s)\n", rc, cardlib_strerror(rc));
		return 1;
	}
	proto_list_key(sector, id, sizeof(id), key);
	hexprint("list-key", key, sizeof(key));
	return 0;
}

/* Hold the database's write lock for SECONDS, as a long writer would (a publish of old, an
 * import in one transaction): what the sync server must ride out without failing a gate. */
/* PostgreSQL has no database-wide write lock: the nearest an agent's command could come is
 * a transaction holding the usage tables against every writer (reads go on), longer than
 * the store's lock_timeout (10 s). */
static int hold_lock_pg(const char *uri, const char *seconds)
{
	PGconn *c = PQconnectdb(uri);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "cannot connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return 1;
	}
	PGresult *r = PQexec(c, "BEGIN; LOCK TABLE stats, consumption, acks IN EXCLUSIVE MODE");
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok) {
		fprintf(stderr, "cannot lock: %s", PQerrorMessage(c));
		PQfinish(c);
		return 1;
	}
	printf("locked\n");
	fflush(stdout);
	sleep((unsigned)atoi(seconds));
	r = PQexec(c, "COMMIT");
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	PQfinish(c);
	printf("released\n");
	return ok ? 0 : 1;
}

static int hold_lock(const char *data, const char *seconds)
{
	char path[4096];
	char uri[SERVER_STORE_URI_MAX];
	if (server_store_uri(data, uri, sizeof(uri)) == 0)
		return hold_lock_pg(uri, seconds);
	snprintf(path, sizeof(path), "%s/%s", data, SERVER_DB_FILE);
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "cannot open %s\n", path);
		sqlite3_close(db);
		return 1;
	}
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE; UPDATE meta SET value = value WHERE key = 'tz'",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "cannot lock: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	printf("locked\n");
	fflush(stdout);
	sleep((unsigned)atoi(seconds));
	int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	printf("released\n");
	return rc == SQLITE_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *c = argv[1];
	if (strcmp(c, "lookup") == 0 && argc == 4)
		return lookup(argv[2], argv[3]);
	if (strcmp(c, "delta-apply") == 0 && argc == 7)
		return delta_apply(argv + 2);
	if (strcmp(c, "card-read") == 0 && argc == 4)
		return card_read(argv[2], argv[3]);
	if (strcmp(c, "ingest") == 0)
		return ingest(argc - 2, argv + 2);
	if (strcmp(c, "acked") == 0 && argc == 5)
		return acked(argv + 2);
	if (strcmp(c, "qr-verify") == 0 && argc == 5)
		return qr_verify(argv + 2);
	if (strcmp(c, "device") == 0 && argc == 4)
		return device(argv + 2);
	if (strcmp(c, "hold-lock") == 0 && argc == 4)
		return hold_lock(argv[2], argv[3]);
	return usage();
}
