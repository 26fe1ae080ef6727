/*
 * admin_list.c — citypass-admin list publish|export: the next version of a sector's list, and a
 * published version written out for an auditor (docs/list-format.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "admin.h"
#include "server/keys.h"
#include "proto/calendar.h"
#include "proto/clist.h"
#include "server/publish.h"

/* --- lists ------------------------------------------------------------------------------- */

const char admin_list_help[] =
        "usage: citypass-admin list publish [--sector S] [--full]\n"
        "       citypass-admin list export --sector S --out DIR [--version N]\n"
        "publish: the next version of every sector's list (or one sector's), from the changes\n"
        "logged since the last one; --full rebuilds every chunk (gates then take a snapshot).\n"
        "export: writes every file of the version (newest unless --version) to\n"
        "DIR/sector-NUM-vVERSION/ with list.pub.pem, so that anyone can check it there with\n"
        "  openssl dgst -sha256 -verify list.pub.pem -signature vV.manifest.sig vV.manifest\n"
        "  sha256sum -c vV.manifest\n"
        "and the delta from the previous version when kept (vV.delta).\n";

int admin_list_publish(struct admin *a, int argc, char **argv)
{
	const char *sector = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(admin_list_help, stdout);
			return 0;
		} else if (strcmp(argv[i], "--sector") == 0 && i + 1 < argc) {
			sector = argv[++i];
		} else if (strcmp(argv[i], "--full") == 0) {
			a->full_publish = 1;
		} else {
			return admin_usage("list publish ", "unexpected argument '%s'", argv[i]);
		}
	}
	a->no_publish = 0; /* publishing is the point of this command */
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_sector one, *v = NULL;
	size_t n = 0;
	if (sector) {
		if (server_sector_find(&a->st, sector, &one) != 0) {
			char names[256];
			admin_sector_names(a, names, sizeof(names));
			return admin_usage("list publish ",
			                   "--sector '%s': no such sector "
			                   "(expected one of: %s)",
			                   sector, names);
		}
		v = &one;
		n = 1;
	} else if (a->st.ops->sector_list(a->st.ctx, &v, &n) != 0) {
		return admin_refuse("cannot read the sectors");
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t ver;
		rc = admin_publish(a, v[i].number, &ver);
		if (rc == 0)
			printf("sector %s list version %" PRIu64 "\n", v[i].name, ver);
	}
	if (v != &one)
		free(v);
	return rc;
}

static int write_out(const char *dir, const char *name, const uint8_t *b, size_t n)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return SERVER_ERR_ARG; /* --out too long for a file name under it */
	return server_file_create(path, b, n, 0644);
}

/* Every file of a published version into dir (made here, so that a failure removes it). */
static int export_version(struct admin *a, uint16_t sector, const struct server_list_version *v,
                          const char *dir)
{
	struct proto_clist_manifest m;
	char name[PROTO_CLIST_NAME_MAX];
	if (proto_clist_manifest_parse(v->manifest, v->manifest_len, &m) != 0)
		return SERVER_ERR_IO;
	proto_clist_name_manifest(name, v->version);
	int rc = write_out(dir, name, v->manifest, v->manifest_len);
	if (rc == 0) {
		proto_clist_name_sig(name, v->version);
		rc = write_out(dir, name, v->sig, v->sig_len);
	}
	if (rc == 0) {
		proto_clist_name_head(name, v->version);
		rc = write_out(dir, name, v->head, v->head_len);
	}
	for (uint32_t j = 0; rc == 0 && j < m.n_chunks; j++) {
		for (int idx = 0; rc == 0 && idx < 2; idx++) {
			uint8_t *data = NULL;
			size_t len = 0;
			rc = a->st.ops->list_file_get(a->st.ctx, sector, j, m.chunks[j].since, idx,
			                              &data, &len);
			proto_clist_name_chunk(name, j, m.chunks[j].since, idx);
			if (rc == 0)
				rc = write_out(dir, name, data, len);
			free(data);
		}
	}
	proto_clist_manifest_free(&m);
	return rc;
}

int admin_list_export(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"sector", required_argument, NULL, 's'},
	        {"out", required_argument, NULL, 'o'},
	        {"version", required_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *sector = NULL, *out = NULL;
	uint64_t version = 0;
	int c;
	admin_getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sector = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'v':
			if (admin_parse_u64(optarg, INT64_MAX, &version) || version == 0)
				return admin_usage("list export ",
				                   "--version '%s': expected a list "
				                   "version, 1 or more",
				                   optarg);
			break;
		case 'h':
			fputs(admin_list_help, stdout);
			return 0;
		default:
			return admin_bad_option("list export ", argv);
		}
	}
	if (optind < argc)
		return admin_usage("list export ", "unexpected argument '%s'", argv[optind]);
	if (!sector)
		return admin_usage("list export ", "missing --sector");
	if (!out)
		return admin_usage("list export ", "missing --out DIR");
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_sector sec;
	if (server_sector_find(&a->st, sector, &sec) != 0) {
		char names[256];
		admin_sector_names(a, names, sizeof(names));
		return admin_usage("list export ",
		                   "--sector '%s': no such sector (expected one "
		                   "of: %s)",
		                   sector, names);
	}
	struct server_list_version v;
	struct server_stored_list d = {0};
	rc = a->st.ops->list_version_get(a->st.ctx, sec.number, version, &v);
	if (rc == SERVER_ERR_NOT_FOUND && version == 0)
		return admin_refuse("sector %s has no published list yet (run 'list publish')",
		                    sec.name);
	if (rc == SERVER_ERR_NOT_FOUND)
		return admin_refuse("sector %s has no list version %" PRIu64 " (not published, or "
		                    "no longer kept)",
		                    sec.name, version);
	if (rc)
		return admin_refuse("cannot read the list: %s", server_strerror(rc));
	version = v.version;
	int has_delta =
	        version > 1 && a->st.ops->delta_get(a->st.ctx, sec.number, version - 1, &d) == 0;
	char dir[PATH_MAX], name[96];
	if (mkdir(out, 0755) != 0 && errno != EEXIST) {
		server_list_version_free(&v);
		server_stored_list_free(&d);
		return admin_refuse("cannot create --out '%s': %s", out, strerror(errno));
	}
	snprintf(dir, sizeof(dir), "%s/sector-%u-v%" PRIu64, out, sec.number, version);
	if (mkdir(dir, 0755) != 0) {
		rc = errno == EEXIST ? SERVER_ERR_EXISTS : SERVER_ERR_IO;
		server_list_version_free(&v);
		server_stored_list_free(&d);
		return admin_refuse("cannot export to '%s': %s", dir,
		                    rc == SERVER_ERR_EXISTS ? "it exists already"
		                                            : strerror(errno));
	}
	rc = export_version(a, sec.number, &v, dir);
	if (rc == 0 && has_delta) {
		snprintf(name, sizeof(name), "v%" PRIu64 ".delta", version);
		rc = write_out(dir, name, d.data, d.len);
	}
	if (rc == 0)
		rc = admin_copy_key_file(a->data, "list.pub.pem", dir, "list.pub.pem");
	server_list_version_free(&v);
	server_stored_list_free(&d);
	if (rc) {
		admin_remove_tree(dir);
		return admin_refuse("cannot export to '%s': %s", dir, server_strerror(rc));
	}
	/* what an auditor runs, with nothing of ours (docs/list-format.md) */
	printf("%s\n", dir);
	printf("  cd %s && openssl dgst -sha256 -verify list.pub.pem -signature v%" PRIu64
	       ".manifest.sig v%" PRIu64 ".manifest && sha256sum -c --quiet v%" PRIu64
	       ".manifest\n",
	       dir, version, version, version);
	return 0;
}
