/*
 * The list-signing keys a gate trusts (controller/list_keys.h). The chain file is the
 * protobuf KeyChain the server sends, holding only the statements this gate followed,
 * oldest first: reading it back is following it again from the root.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "citypass.pb-c.h"
#include "controller/error.h"
#include "controller/list_keys.h"
#include "proto/error.h"

/* A chain file is at most PROTO_KEY_CHAIN_MAX statements of < 700 bytes each. */
#define CHAIN_FILE_MAX (PROTO_KEY_CHAIN_MAX * 1024u)

struct controller_list_keys {
	struct proto_key_chain *chain;
	char path[PATH_MAX];
	struct proto_keyring *all;
	/* the ring given out by _for, and the one before it (still held by the store until
	 * the caller gives it the new one) */
	struct proto_keyring *ring, *previous;
	uint8_t ring_held[PROTO_KEY_ID_LEN];
	int ring_has_held, ring_chain_len;
};

/* A ring keeps its own copy of each key's public half (proto/sign.h). */
static int ring_add(struct proto_keyring *r, const struct proto_key *k)
{
	return proto_keyring_add(r, k);
}

static int rebuild_all(struct controller_list_keys *k)
{
	struct proto_keyring *r = proto_keyring_new();
	if (!r)
		return CONTROLLER_ERR_NOMEM;
	/* a ring holds 16 keys: the newest 16 of the chain are what any list can be under */
	const size_t n = proto_key_chain_length(k->chain);
	for (size_t i = n > 16 ? n - 16 : 0; i < n; i++)
		if (ring_add(r, proto_key_chain_key(k->chain, i)) != 0) {
			proto_keyring_free(r);
			return CONTROLLER_ERR_NOMEM;
		}
	proto_keyring_free(k->all);
	k->all = r;
	return 0;
}

/* Parse a chain file's bytes into statements pointing into msg. */
static int statements_of(const Citypass__KeyChain *msg, struct proto_rotation_signed *s)
{
	for (size_t i = 0; i < msg->n_statements; i++) {
		const Citypass__KeyStatement *st = msg->statements[i];
		s[i] = (struct proto_rotation_signed){
		        st->text.data,         st->text.len,           st->old_signature.data,
		        st->old_signature.len, st->new_signature.data, st->new_signature.len};
	}
	return 0;
}

static int read_file(const char *path, uint8_t **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : CONTROLLER_ERR_IO;
	uint8_t *buf = malloc(CHAIN_FILE_MAX + 1);
	size_t n = 0;
	int rc = buf ? 0 : CONTROLLER_ERR_NOMEM;
	while (rc == 0) {
		ssize_t r = read(fd, buf + n, CHAIN_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = CONTROLLER_ERR_IO;
		else if (r == 0)
			break;
		else if ((n += (size_t)r) > CHAIN_FILE_MAX)
			rc = PROTO_ERR_ROTATION_FORMAT;
	}
	close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	*data = buf;
	*len = n;
	return 0;
}

static int follow_bytes(struct proto_key_chain *c, const uint8_t *data, size_t len)
{
	Citypass__KeyChain *msg = citypass__key_chain__unpack(NULL, len, data);
	if (!msg)
		return PROTO_ERR_ROTATION_FORMAT;
	int rc = PROTO_ERR_ROTATION_FORMAT;
	struct proto_rotation_signed *s = NULL;
	if (msg->n_statements <= PROTO_KEY_CHAIN_MAX &&
	    (s = calloc(msg->n_statements ? msg->n_statements : 1, sizeof(*s))) != NULL) {
		statements_of(msg, s);
		rc = proto_key_chain_follow(c, s, msg->n_statements, NULL);
	}
	free(s);
	citypass__key_chain__free_unpacked(msg, NULL);
	return rc;
}

int controller_list_keys_open(struct controller_list_keys **out, const char *root_path,
                              const char *state_dir, char *err, size_t errlen)
{
	struct proto_key *root = NULL;
	if (!out || !root_path || !state_dir)
		return CONTROLLER_ERR_ARG;
	int rc = proto_key_load_public(&root, root_path);
	if (rc) {
		snprintf(err, errlen, "list-public-key %s: %s", root_path, proto_strerror(rc));
		return rc;
	}
	struct controller_list_keys *k = calloc(1, sizeof(*k));
	if (!k) {
		proto_key_free(root);
		return CONTROLLER_ERR_NOMEM;
	}
	if (snprintf(k->path, sizeof(k->path), "%s/list-keys.chain", state_dir) >=
	            (int)sizeof(k->path) ||
	    proto_key_chain_new(&k->chain, root) != 0) {
		free(k);
		return CONTROLLER_ERR_ARG;
	}
	uint8_t *data = NULL;
	size_t len = 0;
	rc = read_file(k->path, &data, &len);
	if (rc == 0) {
		rc = follow_bytes(k->chain, data, len);
		free(data);
		if (rc) {
			/* not believed, not lost: kept aside for whoever investigates; the server
			 * sends the chain again at the next session */
			char aside[PATH_MAX + 16];
			snprintf(aside, sizeof(aside), "%s.refused", k->path);
			(void)rename(k->path, aside);
			snprintf(err, errlen,
			         "%s: %s (moved to %s; starting from the bundle's key)", k->path,
			         proto_strerror(rc), aside);
			/* start again from the root alone: what was followed may be half */
			proto_key_chain_free(k->chain);
			k->chain = NULL;
			struct proto_key *again = NULL;
			if (proto_key_load_public(&again, root_path) != 0 ||
			    proto_key_chain_new(&k->chain, again) != 0) {
				controller_list_keys_close(k);
				return CONTROLLER_ERR_IO;
			}
		}
	} else if (rc < 0) {
		snprintf(err, errlen, "%s: cannot read it", k->path);
	}
	if (rebuild_all(k) != 0) {
		controller_list_keys_close(k);
		return CONTROLLER_ERR_NOMEM;
	}
	*out = k;
	return 0;
}

void controller_list_keys_close(struct controller_list_keys *k)
{
	if (!k)
		return;
	proto_key_chain_free(k->chain);
	proto_keyring_free(k->all);
	proto_keyring_free(k->ring);
	proto_keyring_free(k->previous);
	free(k);
}

const struct proto_keyring *controller_list_keys_all(struct controller_list_keys *k)
{
	return k ? k->all : NULL;
}

void controller_list_keys_newest(const struct controller_list_keys *k, uint8_t id[PROTO_KEY_ID_LEN])
{
	proto_key_id(proto_key_chain_key(k->chain, proto_key_chain_length(k->chain) - 1), id);
}

size_t controller_list_keys_count(const struct controller_list_keys *k)
{
	return k ? proto_key_chain_length(k->chain) : 0;
}

const struct proto_keyring *controller_list_keys_for(struct controller_list_keys *k,
                                                     const uint8_t *held)
{
	if (!k)
		return NULL;
	const size_t n = proto_key_chain_length(k->chain);
	const struct proto_key *newest = proto_key_chain_key(k->chain, n - 1);
	uint8_t newest_id[PROTO_KEY_ID_LEN];
	proto_key_id(newest, newest_id);
	/* the held key counts only when it is an older key of this chain */
	const struct proto_key *older = NULL;
	if (held && memcmp(held, newest_id, PROTO_KEY_ID_LEN) != 0)
		older = proto_keyring_find(k->all, held);
	if (k->ring && k->ring_chain_len == (int)n && k->ring_has_held == (older != NULL) &&
	    (!older || memcmp(k->ring_held, held, PROTO_KEY_ID_LEN) == 0))
		return k->ring;
	struct proto_keyring *r = proto_keyring_new();
	if (!r || ring_add(r, newest) != 0 || (older && ring_add(r, older) != 0)) {
		proto_keyring_free(r);
		return k->ring ? k->ring : k->all; /* out of memory: keep what was trusted */
	}
	proto_keyring_free(k->previous);
	k->previous = k->ring;
	k->ring = r;
	k->ring_chain_len = (int)n;
	k->ring_has_held = older != NULL;
	if (older)
		memcpy(k->ring_held, held, PROTO_KEY_ID_LEN);
	return r;
}

/* Write the chain's statements (all followed, oldest first) through a temp file. */
static int save(struct controller_list_keys *k)
{
	const size_t n = proto_key_chain_length(k->chain) - 1;
	Citypass__KeyChain msg = CITYPASS__KEY_CHAIN__INIT;
	Citypass__KeyStatement *st = calloc(n ? n : 1, sizeof(*st));
	Citypass__KeyStatement **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	uint8_t *buf = NULL;
	int rc = st && ptrs ? 0 : CONTROLLER_ERR_NOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct proto_rotation_signed *s = proto_key_chain_statement(k->chain, i + 1);
		citypass__key_statement__init(&st[i]);
		st[i].text.data = (uint8_t *)s->text;
		st[i].text.len = s->text_len;
		st[i].old_signature.data = (uint8_t *)s->old_sig;
		st[i].old_signature.len = s->old_sig_len;
		st[i].new_signature.data = (uint8_t *)s->new_sig;
		st[i].new_signature.len = s->new_sig_len;
		ptrs[i] = &st[i];
	}
	msg.n_statements = n;
	msg.statements = ptrs;
	size_t len = 0;
	if (rc == 0) {
		len = citypass__key_chain__get_packed_size(&msg);
		buf = malloc(len ? len : 1);
		rc = buf ? 0 : CONTROLLER_ERR_NOMEM;
	}
	if (rc == 0)
		citypass__key_chain__pack(&msg, buf);
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", k->path);
	int fd = rc == 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	if (rc == 0 && fd < 0)
		rc = CONTROLLER_ERR_IO;
	for (size_t off = 0; rc == 0 && off < len;) {
		ssize_t w = write(fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = CONTROLLER_ERR_IO;
		else
			off += (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = CONTROLLER_ERR_IO;
	if (fd >= 0 && close(fd) != 0 && rc == 0)
		rc = CONTROLLER_ERR_IO;
	if (rc == 0 && rename(tmp, k->path) != 0)
		rc = CONTROLLER_ERR_IO;
	if (rc == 0) {
		/* the rename itself must outlive a power cut */
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", k->path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	} else if (fd >= 0) {
		unlink(tmp);
	}
	free(buf);
	free(st);
	free(ptrs);
	return rc;
}

int controller_list_keys_follow(struct controller_list_keys *k,
                                const struct proto_rotation_signed *s, size_t n, size_t *added)
{
	size_t got = 0;
	if (added)
		*added = 0;
	if (!k)
		return CONTROLLER_ERR_ARG;
	const int rc = proto_key_chain_follow(k->chain, s, n, &got);
	if (got) {
		/* kept before anything is installed under the new key: a restart must still
		 * trust what the store will hold */
		int wrc = save(k);
		if (wrc == 0)
			wrc = rebuild_all(k);
		if (wrc)
			return wrc;
	}
	if (added)
		*added = got;
	return rc;
}
