/*
 * Rotating the list-signing key (server/list_keys.h). The order on disk is what makes a
 * crash harmless: everything of statement N is written (and fsynced) before N.txt, the new
 * private key waits as list.key.next until N.txt exists, and only then replaces list.key.
 * A crash before N.txt leaves the old key current and no statement (leftovers are
 * overwritten by the next attempt); a crash after it is finished by the next rotate.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/keys.h"
#include "server/list_keys.h"

static int chain_path(char *buf, size_t cap, const char *data_dir, uint32_t n, const char *ext)
{
	int w = n ? snprintf(buf, cap, "%s/keys/list-chain/%u.%s", data_dir, (unsigned)n, ext)
	          : snprintf(buf, cap, "%s/keys/list-chain", data_dir);
	return w < 0 || (size_t)w >= cap ? SERVER_ERR_ARG : 0;
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static int read_part(const char *data_dir, uint32_t n, const char *ext, const uint8_t **data,
                     size_t *len, size_t max)
{
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	int rc = chain_path(path, sizeof(path), data_dir, n, ext);
	rc = rc ? rc : server_file_read(path, &buf, len);
	if (rc == SERVER_ERR_NOT_FOUND)
		rc = SERVER_ERR_INVALID; /* the statement exists: its signatures must too */
	if (rc == 0 && (*len == 0 || *len > max)) {
		free(buf);
		rc = SERVER_ERR_INVALID;
	}
	if (rc == 0)
		*data = buf;
	return rc;
}

int server_list_chain_load(const char *data_dir, struct server_list_chain *out)
{
	char path[PATH_MAX];
	if (!data_dir || !out)
		return SERVER_ERR_ARG;
	memset(out, 0, sizeof(*out));
	for (uint32_t n = 1; n <= PROTO_KEY_CHAIN_MAX + 1; n++) {
		int rc = chain_path(path, sizeof(path), data_dir, n, "txt");
		if (rc)
			break;
		if (access(path, F_OK) != 0) {
			/* numbers are contiguous: a later statement after a hole is damage */
			char next[PATH_MAX];
			chain_path(next, sizeof(next), data_dir, n + 1, "txt");
			if (access(next, F_OK) == 0) {
				server_list_chain_free(out);
				return SERVER_ERR_INVALID;
			}
			return 0;
		}
		if (n > PROTO_KEY_CHAIN_MAX) {
			server_list_chain_free(out);
			return SERVER_ERR_INVALID;
		}
		struct proto_rotation_signed *grown =
		        realloc(out->s, (out->n + 1) * sizeof(*grown));
		if (!grown) {
			server_list_chain_free(out);
			return SERVER_ERR_NOMEM;
		}
		out->s = grown;
		struct proto_rotation_signed *s = &out->s[out->n];
		memset(s, 0, sizeof(*s));
		out->n++;
		rc = read_part(data_dir, n, "txt", &s->text, &s->text_len, PROTO_ROTATION_TEXT_MAX);
		rc = rc ? rc
		        : read_part(data_dir, n, "old.sig", &s->old_sig, &s->old_sig_len,
		                    PROTO_SIG_MAX);
		rc = rc ? rc
		        : read_part(data_dir, n, "new.sig", &s->new_sig, &s->new_sig_len,
		                    PROTO_SIG_MAX);
		struct proto_rotation r;
		if (rc == 0 && proto_rotation_parse(s->text, s->text_len, &r) != 0)
			rc = SERVER_ERR_INVALID;
		else if (rc == 0) {
			if (r.number != n)
				rc = SERVER_ERR_INVALID;
			proto_rotation_clear(&r);
		}
		if (rc) {
			server_list_chain_free(out);
			return rc;
		}
	}
	return 0;
}

static int write_pub(const struct proto_key *k, const char *path)
{
	char pem[512];
	if (proto_key_public_pem(k, pem, sizeof(pem)) != 0)
		return SERVER_ERR_CRYPTO;
	return server_file_replace(path, pem, strlen(pem), 0644);
}

/* Statement n is committed: make its key current (list.key.next over list.key). */
static int finish(const char *data_dir, const struct proto_rotation *r)
{
	char key[PATH_MAX], next[PATH_MAX], pub[PATH_MAX], dir[PATH_MAX];
	struct proto_key *current = NULL;
	int rc = server_key_path(key, sizeof(key), data_dir, "list.key");
	rc = rc ? rc : server_key_path(next, sizeof(next), data_dir, "list.key.next");
	rc = rc ? rc : server_key_path(pub, sizeof(pub), data_dir, "list.pub.pem");
	if (rc)
		return rc;
	if (access(next, F_OK) == 0 && rename(next, key) != 0)
		return SERVER_ERR_IO;
	snprintf(dir, sizeof(dir), "%s/keys", data_dir);
	sync_dir(dir);
	if (proto_key_load_private(&current, key) != 0)
		return SERVER_ERR_CRYPTO;
	uint8_t id[PROTO_KEY_ID_LEN];
	proto_key_id(current, id);
	rc = memcmp(id, r->to, PROTO_KEY_ID_LEN) == 0 ? write_pub(current, pub)
	                                              : SERVER_ERR_INVALID;
	proto_key_free(current);
	sync_dir(dir);
	return rc;
}

static int write_sig(const char *data_dir, uint32_t n, const char *ext, const struct proto_key *k,
                     const char *text, size_t len)
{
	char path[PATH_MAX];
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len = 0;
	int rc = chain_path(path, sizeof(path), data_dir, n, ext);
	if (rc)
		return rc;
	if (proto_sign(k, (const uint8_t *)text, len, sig, &sig_len) != 0)
		return SERVER_ERR_CRYPTO;
	return server_file_replace(path, sig, sig_len, 0644);
}

int server_list_key_rotate(const char *data_dir, struct server_list_rotation *out)
{
	char dir[PATH_MAX], path[PATH_MAX], key[PATH_MAX], next[PATH_MAX];
	struct server_list_chain chain;
	struct proto_key *old_key = NULL, *new_key = NULL;
	if (!data_dir || !out)
		return SERVER_ERR_ARG;
	memset(out, 0, sizeof(*out));
	int rc = chain_path(dir, sizeof(dir), data_dir, 0, NULL);
	if (rc)
		return rc;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return SERVER_ERR_IO;
	rc = server_list_chain_load(data_dir, &chain);
	if (rc)
		return rc;
	rc = server_key_path(key, sizeof(key), data_dir, "list.key");
	rc = rc ? rc : server_key_path(next, sizeof(next), data_dir, "list.key.next");
	if (rc == 0 && proto_key_load_private(&old_key, key) != 0)
		rc = SERVER_ERR_CRYPTO;
	/* the newest statement's key must be current; if not, that rotation was interrupted
	 * after its commit point: finish it and stop there */
	if (rc == 0 && chain.n > 0) {
		struct proto_rotation last;
		const struct proto_rotation_signed *s = &chain.s[chain.n - 1];
		rc = proto_rotation_parse(s->text, s->text_len, &last) == 0 ? 0
		                                                            : SERVER_ERR_INVALID;
		uint8_t id[PROTO_KEY_ID_LEN];
		if (rc == 0) {
			proto_key_id(old_key, id);
			if (memcmp(id, last.to, PROTO_KEY_ID_LEN) != 0) {
				rc = finish(data_dir, &last);
				out->number = last.number;
				memcpy(out->from, last.from, PROTO_KEY_ID_LEN);
				memcpy(out->to, last.to, PROTO_KEY_ID_LEN);
				out->finished_interrupted = 1;
			}
		}
		proto_rotation_clear(&last);
		if (rc || out->finished_interrupted) {
			proto_key_free(old_key);
			server_list_chain_free(&chain);
			return rc;
		}
	}
	const uint32_t n = (uint32_t)chain.n + 1;
	server_list_chain_free(&chain);
	if (rc == 0 && n > PROTO_KEY_CHAIN_MAX)
		rc = SERVER_ERR_INVALID;
	if (rc == 0 && proto_key_generate(&new_key) != 0)
		rc = SERVER_ERR_CRYPTO;
	char text[PROTO_ROTATION_TEXT_MAX + 1];
	size_t len = 0;
	if (rc == 0 && proto_rotation_write(n, old_key, new_key, text, sizeof(text), &len) != 0)
		rc = SERVER_ERR_CRYPTO;
	/* the new private key first, beside the current one, then the statement's parts */
	if (rc == 0) {
		unlink(next);
		rc = proto_key_write_private_pem(new_key, next) == 0 ? 0 : SERVER_ERR_IO;
	}
	rc = rc ? rc : write_sig(data_dir, n, "old.sig", old_key, text, len);
	rc = rc ? rc : write_sig(data_dir, n, "new.sig", new_key, text, len);
	if (rc == 0 && (rc = chain_path(path, sizeof(path), data_dir, n, "old.pub.pem")) == 0)
		rc = write_pub(old_key, path);
	if (rc == 0) {
		sync_dir(dir);
		/* the commit point */
		rc = chain_path(path, sizeof(path), data_dir, n, "txt");
		rc = rc ? rc : server_file_replace(path, text, len, 0644);
		sync_dir(dir);
	}
	if (rc == 0) {
		struct proto_rotation r;
		rc = proto_rotation_parse((const uint8_t *)text, len, &r) == 0 ? 0
		                                                               : SERVER_ERR_INVALID;
		if (rc == 0) {
			out->number = n;
			memcpy(out->from, r.from, PROTO_KEY_ID_LEN);
			memcpy(out->to, r.to, PROTO_KEY_ID_LEN);
			rc = finish(data_dir, &r);
		}
		proto_rotation_clear(&r);
	} else {
		unlink(next);
	}
	proto_key_free(old_key);
	proto_key_free(new_key);
	return rc;
}
