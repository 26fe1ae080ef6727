/*
 * clist_dir.c — a format 2 version read from a directory of its files: what the tools
 * (citypass-list, the admin's export checks, benchmarks) use to verify and search a
 * published list exactly as a gate would.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "list_internal.h"
#include "proto/clist.h"
#include "proto/error.h"

static int read_whole(const char *path, size_t max, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return PROTO_ERR_IO;
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		fclose(f);
		return PROTO_ERR_IO;
	}
	size_t n = (size_t)st.st_size;
	uint8_t *b = malloc(n ? n : 1);
	if (!b) {
		fclose(f);
		return PROTO_ERR_NOMEM;
	}
	size_t got = fread(b, 1, n, f);
	fclose(f);
	if (got != n) {
		free(b);
		return PROTO_ERR_IO;
	}
	*out = b;
	*len = n;
	return PROTO_OK;
}

static int read_in(const struct proto_clist_dir *d, const char *name, size_t max, uint8_t **out,
                   size_t *len)
{
	char p[4096 + PROTO_CLIST_NAME_MAX + 2];
	snprintf(p, sizeof(p), "%s/%s", d->path, name);
	return read_whole(p, max, out, len);
}

#define FILE_MAX ((size_t)PROTO_LIST_MAX_ENTRIES * PROTO_CLIST_ENTRY_SIZE + 64)

int proto_clist_dir_open(struct proto_clist_dir *d, const char *manifest_path, const char *sig_path)
{
	if (!d || !manifest_path)
		return PROTO_ERR_ARG;
	memset(d, 0, sizeof(*d));
	const char *slash = strrchr(manifest_path, '/');
	if (!slash)
		snprintf(d->path, sizeof(d->path), ".");
	else if (slash == manifest_path)
		snprintf(d->path, sizeof(d->path), "/");
	else
		snprintf(d->path, sizeof(d->path), "%.*s", (int)(slash - manifest_path),
		         manifest_path);
	char sp[4200];
	if (!sig_path) {
		snprintf(sp, sizeof(sp), "%s.sig", manifest_path);
		sig_path = sp;
	}
	int rc = read_whole(manifest_path, FILE_MAX, &d->manifest, &d->manifest_len);
	if (rc == 0)
		rc = read_whole(sig_path, PROTO_SIG_MAX + 1, &d->sig, &d->sig_len);
	if (rc == 0)
		rc = proto_clist_manifest_parse(d->manifest, d->manifest_len, &d->m);
	if (rc == 0) {
		char name[PROTO_CLIST_NAME_MAX];
		proto_clist_name_head(name, d->m.version);
		rc = read_in(d, name, FILE_MAX, &d->head, &d->head_len);
	}
	if (rc == 0)
		rc = proto_clist_head_parse(d->head, d->head_len, &d->h);
	if (rc)
		proto_clist_dir_close(d);
	return rc;
}

int proto_clist_dir_file(const struct proto_clist_dir *d, uint32_t chunk, int idx, uint8_t **data,
                         size_t *len)
{
	char name[PROTO_CLIST_NAME_MAX];
	if (chunk >= d->m.n_chunks)
		return PROTO_ERR_ARG;
	proto_clist_name_chunk(name, chunk, d->m.chunks[chunk].since, idx);
	return read_in(d, name, FILE_MAX, data, len);
}

int proto_clist_dir_verify(const struct proto_clist_dir *d, const struct proto_list_policy *policy,
                           int deep)
{
	struct proto_clist_manifest m;
	struct proto_clist_head h;
	int rc = proto_clist_verify(d->manifest, d->manifest_len, d->sig, d->sig_len, d->head,
	                            d->head_len, policy, &m, &h);
	if (rc) {
		proto_clist_head_free(&h); /* filled for an expired or older version */
		proto_clist_manifest_free(&m);
		return rc;
	}
	uint64_t total = 0;
	for (uint32_t j = 0; deep && rc == 0 && j < m.n_chunks; j++) {
		uint8_t *idx = NULL, *dat = NULL;
		size_t il = 0, dl = 0;
		rc = proto_clist_dir_file(d, j, 1, &idx, &il);
		if (rc == 0)
			rc = proto_clist_dir_file(d, j, 0, &dat, &dl);
		if (rc == 0)
			rc = proto_clist_chunk_verify(&m, &h, j, idx, il, dat, dl);
		total += dl / PROTO_CLIST_ENTRY_SIZE;
		free(idx);
		free(dat);
	}
	if (deep && rc == 0 && total != h.entry_count)
		rc = PROTO_ERR_LIST_COUNT;
	proto_clist_head_free(&h);
	proto_clist_manifest_free(&m);
	return rc;
}

int proto_clist_dir_lookup(const struct proto_clist_dir *d, const uint8_t key[PROTO_LIST_KEY_LEN],
                           struct proto_list_entry *e, struct proto_rights_profile *p)
{
	uint32_t j = proto_clist_chunk_of(key, d->h.bits);
	uint8_t *idx = NULL, *dat = NULL;
	size_t il = 0, dl = 0;
	struct proto_clist_idx ix;
	int rc = proto_clist_dir_file(d, j, 1, &idx, &il);
	if (rc == 0)
		rc = proto_clist_dir_file(d, j, 0, &dat, &dl);
	if (rc == 0)
		rc = proto_clist_idx_parse(idx, il, &ix);
	if (rc == 0) {
		int64_t leaf = proto_clist_idx_find(&ix, key);
		uint64_t off;
		size_t len;
		if (leaf < 0) {
			rc = PROTO_ERR_LIST_NOT_FOUND;
		} else {
			proto_clist_leaf_span(&ix, (uint32_t)leaf, &off, &len);
			rc = off + len <= dl ? proto_clist_leaf_lookup(&ix, (uint32_t)leaf,
			                                               dat + off, len, key, e)
			                     : PROTO_ERR_LIST_HASH;
		}
	}
	if (rc == 0 && e->profile >= d->h.profile_count)
		rc = PROTO_ERR_LIST_PROFILE;
	if (rc == 0 && p)
		*p = d->h.profiles[e->profile];
	free(idx);
	free(dat);
	return rc;
}

void proto_clist_dir_close(struct proto_clist_dir *d)
{
	if (!d)
		return;
	free(d->manifest);
	free(d->sig);
	free(d->head);
	proto_clist_manifest_free(&d->m);
	proto_clist_head_free(&d->h);
	d->manifest = d->sig = d->head = NULL;
}
