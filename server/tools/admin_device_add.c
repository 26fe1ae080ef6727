/*
 * admin_device_add.c — citypass-admin device add|revoke|show: enrolling a gate controller (its
 * provisioning bundle) and revoking it. `device list` (the gates' health) is admin_device.c's.
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
#include "cardlib/token.h"
#include "link/addr.h"
#include "server/keys.h"
#include "proto/calendar.h"
#include "proto/clist.h"
#include "proto/device_conf.h"
#include "proto/error.h"
#include "proto/sign.h"
#include "server/publish.h"

/* --- devices ----------------------------------------------------------------------------- */

const char admin_device_help[] =
        "usage: citypass-admin device add NAME --site SITE --server HOST:PORT[,HOST:PORT...]\n"
        "                                  --out DIR\n"
        "       citypass-admin device revoke NAME [--discard-usage]\n"
        "       citypass-admin device show NAME\n"
        "       citypass-admin device list [--json] [--silent-after MINUTES]\n"
        "Enrol a gate controller: writes its provisioning bundle DIR (certificate and key, the\n"
        "gate certificate phones check, the device CA, the list and issuer public keys, its\n"
        "sector's card key only, device.conf).\n"
        "DIR must not exist. NAME becomes the certificate CN and the device id.\n"
        "Several servers (instances sharing one PostgreSQL database): the gate tries them\n"
        "in that order and moves to the next when one fails (docs/postgresql.md).\n"
        "revoke: the sync server refuses the device from then on; --discard-usage also\n"
        "forgets every use it reported (a stolen gate's reports stop counting against\n"
        "quotas and entries) and publishes its sector's list.\n";

int admin_copy_key_file(const char *data, const char *name, const char *dir, const char *as)
{
	char from[PATH_MAX], to[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	server_key_path(from, sizeof(from), data, name);
	snprintf(to, sizeof(to), "%s/%s", dir, as);
	int rc = server_file_read(from, &buf, &len);
	if (rc == 0)
		rc = server_file_create(to, buf, len, 0644);
	free(buf);
	return rc;
}

/* What the gate's device.conf says (proto/device_conf.h): 0, or -1 with why. */
static int device_conf_of(const struct server_device *d, const struct server_site *site,
                          const struct server_sector *sec, const char *server,
                          const char *server_name, struct proto_device_conf *conf, char *why,
                          size_t whylen)
{
	/* quota periods are numbered in this zone, the server's (proto/calendar.h); a TZ that
	 * names no zone file leaves the gate counting in its site's, as before period-tz */
	char period_tz[SERVER_NAME_MAX];
	if (proto_zone_process_name(period_tz, sizeof(period_tz)) != 0)
		snprintf(period_tz, sizeof(period_tz), "%s", site->tz);
	snprintf(conf->device_id, sizeof(conf->device_id), "%s", d->id);
	conf->gate = d->gate;
	conf->site = site->id;
	snprintf(conf->site_name, sizeof(conf->site_name), "%s", site->name);
	conf->sector = sec->number;
	snprintf(conf->sector_name, sizeof(conf->sector_name), "%s", sec->name);
	snprintf(conf->server, sizeof(conf->server), "%s", server);
	snprintf(conf->server_name, sizeof(conf->server_name), "%s", server_name);
	snprintf(conf->tz, sizeof(conf->tz), "%s", site->tz);
	snprintf(conf->period_tz, sizeof(conf->period_tz), "%s", period_tz);
	snprintf(conf->hours, sizeof(conf->hours), "%s", site->hours);
	conf->antipassback_minutes = (uint16_t)site->antipassback_min;
	static const char *const files[PROTO_DEVICE_FILES] = {
	        [PROTO_DEVICE_CERTIFICATE] = "device.crt",
	        [PROTO_DEVICE_PRIVATE_KEY] = "device.key",
	        [PROTO_DEVICE_CA] = "ca.crt",
	        [PROTO_DEVICE_LIST_KEY] = "list.pub.pem",
	        [PROTO_DEVICE_ISSUER_KEY] = "issuer.pub.pem",
	        [PROTO_DEVICE_CARD_KEY] = "card-sector.key",
	        [PROTO_DEVICE_GATE_CERT] = "gate.cert",
	};
	for (unsigned i = 0; i < PROTO_DEVICE_FILES; i++)
		snprintf(conf->file[i], sizeof(conf->file[i]), "%s", files[i]);
	if (site->antipassback_min > UINT16_MAX ||
	    proto_expiry_parse(site->expiry_policy, &conf->expiry, &conf->grace_hours) != 0) {
		snprintf(why, whylen,
		         "site '%s': expiry policy '%s' or anti-passback %u out of range",
		         site->name, site->expiry_policy, site->antipassback_min);
		return -1;
	}
	return 0;
}

/*
 * The gate certificate phones check before they answer (issue 17, docs/phone-tokens.md
 * s.3.1): the device CA's statement, over the device key just made, that it is gate
 * `gate id` of this sector, for as long as the device's X.509 certificate.
 */
static int write_gate_cert(struct admin *a, const struct server_device *d, uint16_t sector,
                           int days, const char *dir)
{
	char path[PATH_MAX];
	struct proto_key *ca = NULL, *key = NULL;
	uint8_t cert[CARDLIB_GATE_CERT_MAX], gate_id[CARDLIB_TOKEN_GATE_ID_LEN];
	int rc = server_key_path(path, sizeof(path), a->data, "ca.key");
	if (rc == 0 && proto_key_load_private(&ca, path) != PROTO_OK)
		rc = SERVER_ERR_CRYPTO;
	snprintf(path, sizeof(path), "%s/device.key", dir);
	if (rc == 0 && proto_key_load_private(&key, path) != PROTO_OK)
		rc = SERVER_ERR_CRYPTO;
	cardlib_gate_id(d->id, gate_id);
	const int64_t now = (int64_t)time(NULL);
	int n = rc == 0 ? cardlib_gate_cert_issue(ca, sector, gate_id, key, now - 3600,
	                                          now + (int64_t)days * 86400, cert, sizeof(cert))
	                : -1;
	proto_key_free(ca);
	proto_key_free(key);
	if (rc == 0 && n < 0)
		rc = SERVER_ERR_CRYPTO;
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/gate.cert", dir);
	return server_file_create(path, cert, (size_t)n, 0644);
}

static int write_bundle(struct admin *a, const struct server_device *d,
                        const struct server_site *site, const struct server_sector *sec,
                        const char *server, const char *dir, char *why, size_t whylen)
{
	char key[PATH_MAX], crt[PATH_MAX], text[2048];
	struct server_card_keys ck;
	snprintf(key, sizeof(key), "%s/device.key", dir);
	snprintf(crt, sizeof(crt), "%s/device.crt", dir);
	int rc = server_cert_issue(a->data, d->id, SERVER_CERT_DEVICE, 5 * 365, key, crt);
	if (rc == 0)
		rc = write_gate_cert(a, d, sec->number, 5 * 365, dir);
	if (rc == 0)
		rc = admin_copy_key_file(a->data, "ca.crt", dir, "ca.crt");
	if (rc == 0)
		rc = admin_copy_key_file(a->data, "list.pub.pem", dir, "list.pub.pem");
	if (rc == 0)
		rc = admin_copy_key_file(a->data, "issuer.pub.pem", dir, "issuer.pub.pem");
	if (rc == 0)
		rc = server_card_keys_load(a->data, &ck);
	if (rc)
		return rc;
	char vs[16] = "", server_name[SERVER_NAME_MAX] = "";
	a->st.ops->meta_get(a->st.ctx, "value_sector", vs, sizeof(vs));
	/* The server's identity, pinned in the bundle: the gate checks the server
	 * certificate's CN against it however `server` addresses it (issue 10). */
	if (a->st.ops->meta_get(a->st.ctx, "server_name", server_name, sizeof(server_name)) != 0)
		return SERVER_ERR_INVALID;
	/* only this sector's master (and the previous one during a rotation): never the
	 * application master, the issuer PICC master or another sector's key */
	int n = admin_card_sector_key_text(&ck, sec->number, sec->slot,
	                                   vs[0] && (uint16_t)atoi(vs) == sec->number, text,
	                                   sizeof(text));
	mbedtls_platform_zeroize(&ck, sizeof(ck));
	snprintf(key, sizeof(key), "%s/card-sector.key", dir);
	rc = n < 0 ? SERVER_ERR_INVALID : server_file_create(key, text, (size_t)n, 0600);
	mbedtls_platform_zeroize(text, sizeof(text));
	if (rc)
		return rc;
	struct proto_device_conf *conf = calloc(1, sizeof(*conf));
	if (!conf)
		return SERVER_ERR_NOMEM;
	rc = device_conf_of(d, site, sec, server, server_name, conf, why, whylen);
	if (rc == 0)
		n = proto_device_conf_write(conf, text, sizeof(text), why, whylen);
	free(conf);
	/* a value the site's record holds but device.conf cannot carry: refused here, not
	 * at the gate */
	if (rc || n < 0)
		return SERVER_ERR_INVALID;
	snprintf(key, sizeof(key), "%s/device.conf", dir);
	return server_file_create(key, text, (size_t)n, 0644);
}

int admin_device_add(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"site", required_argument, NULL, 's'}, {"server", required_argument, NULL, 'S'},
	        {"out", required_argument, NULL, 'o'},  {"name", required_argument, NULL, 'n'},
	        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	const char *site = NULL, *server = NULL, *out = NULL, *name = NULL;
	int c;
	admin_getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			site = optarg;
			break;
		case 'S':
			server = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			fputs(admin_device_help, stdout);
			return 0;
		default:
			return admin_bad_option("device add ", argv);
		}
	}
	if (!name && optind < argc)
		name = argv[optind++];
	if (optind < argc)
		return admin_usage("device add ", "unexpected argument '%s'", argv[optind]);
	if (!name)
		return admin_usage("device add ", "missing the device NAME");
	if (!server_name_ok(name))
		return admin_usage("device add ",
		                   "device name '%s': expected 1 to 63 letters, "
		                   "digits, '-', '_' or '.'",
		                   name);
	if (!site)
		return admin_usage("device add ", "missing --site");
	if (!server)
		return admin_usage("device add ", "missing --server HOST:PORT");
	/* issue 16: several servers (instances on one PostgreSQL), tried in that order */
	struct link_addr addr[PROTO_DEVICE_SERVERS_MAX];
	size_t n_addr = 0, at = 0;
	int bad = link_addr_list_parse(server, 0, addr, PROTO_DEVICE_SERVERS_MAX, &n_addr, &at);
	if (bad)
		return admin_usage("device add ",
		                   "--server '%s': expected HOST:PORT with a port "
		                   "from 1 to 65535, or up to %d of them separated by commas "
		                   "(address %zu: %s)",
		                   server, PROTO_DEVICE_SERVERS_MAX, at ? at : 1,
		                   link_addr_strerror(bad));
	if (!out)
		return admin_usage("device add ", "missing --out DIR");
	struct stat sb;
	if (stat(out, &sb) == 0)
		return admin_refuse("--out '%s' already exists: refusing to overwrite a bundle",
		                    out);
	int rc = admin_open(a);
	if (rc)
		return rc;
	char server_name[SERVER_NAME_MAX] = "";
	if (a->st.ops->meta_get(a->st.ctx, "server_name", server_name, sizeof(server_name)) == 0 &&
	    strcasecmp(server_name, name) == 0)
		return admin_refuse("device name '%s' is the sync server's name: a gate's "
		                    "certificate must never bear it",
		                    name);
	struct server_site s;
	if (a->st.ops->site_find(a->st.ctx, site, &s) != 0)
		return admin_refuse("--site '%s': no such site (see 'citypass-admin site list')",
		                    site);
	struct server_sector sec;
	char num[8];
	snprintf(num, sizeof(num), "%u", s.sector);
	if (server_sector_find(&a->st, num, &sec) != 0)
		return admin_refuse("site '%s' names a missing sector %u", site, s.sector);
	struct server_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", name);
	d.site = s.id;
	d.sector = s.sector;
	admin_now(&d.created);
	if ((rc = admin_begin(a)) != 0)
		return rc;
	rc = a->st.ops->device_add(a->st.ctx, &d);
	if (rc) {
		admin_rollback(a);
		if (rc == SERVER_ERR_EXISTS)
			return admin_refuse("device '%s' already exists", name);
		return admin_refuse("cannot add device '%s': %s", name, server_strerror(rc));
	}
	if (mkdir(out, 0700) != 0) {
		admin_rollback(a);
		return admin_refuse("cannot create --out '%s': %s", out, strerror(errno));
	}
	char why[300] = "";
	rc = write_bundle(a, &d, &s, &sec, server, out, why, sizeof(why));
	if (rc == 0)
		rc = a->st.ops->commit(a->st.ctx);
	if (rc) {
		admin_rollback(a);
		admin_remove_tree(out);
		return admin_refuse("cannot enrol device '%s': %s%s%s; nothing was written", name,
		                    server_strerror(rc), why[0] ? ": device.conf: " : "", why);
	}
	printf("device %s (gate %u) at site %s, sector %s: bundle in %s\n", d.id, d.gate, s.name,
	       sec.name, out);
	return 0;
}

static int device_revoke_or_show(struct admin *a, int argc, char **argv, int show)
{
	const char *cmd = show ? "device show " : "device revoke ";
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(admin_device_help, stdout);
		return 0;
	}
	int discard = 0;
	if (!show && argc > 2 && strcmp(argv[2], "--discard-usage") == 0) {
		discard = 1;
		argc--;
	}
	if (argc < 2)
		return admin_usage(cmd, "missing the device NAME");
	if (argc > 2)
		return admin_usage(cmd, "unexpected argument '%s'", argv[2]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_device d;
	rc = a->st.ops->device_find(a->st.ctx, argv[1], &d);
	if (rc == SERVER_ERR_NOT_FOUND)
		return admin_refuse("device '%s': no such device", argv[1]);
	if (rc)
		return admin_refuse("cannot read device '%s': %s", argv[1], server_strerror(rc));
	if (show) {
		printf("device %s gate %u site %u sector %u %s\n", d.id, d.gate, d.site, d.sector,
		       d.revoked ? "revoked" : "active");
		return 0;
	}
	if (d.revoked)
		return admin_refuse("device '%s' is already revoked", argv[1]);
	if ((rc = admin_begin(a)) != 0)
		return rc;
	rc = a->st.ops->device_revoke(a->st.ctx, argv[1]);
	uint64_t discarded = 0;
	if (rc == 0 && discard)
		rc = a->st.ops->consumption_discard(a->st.ctx, argv[1], &discarded);
	if (rc) {
		admin_rollback(a);
		return admin_refuse("cannot revoke device '%s': %s", argv[1], server_strerror(rc));
	}
	if ((rc = admin_commit(a)) != 0)
		return rc;
	printf("device %s revoked: the sync server refuses it from its next connection\n", argv[1]);
	if (discard)
		printf("device %s: %" PRIu64 " reported use(s) discarded\n", argv[1], discarded);
	/* the discarded uses change the counts the sector's list shows (the change log has
	 * their keys): published once the revocation is committed */
	return discard ? admin_publish(a, d.sector, NULL) : 0;
}

int admin_device_revoke(struct admin *a, int argc, char **argv)
{
	return device_revoke_or_show(a, argc, argv, 0);
}

int admin_device_show(struct admin *a, int argc, char **argv)
{
	return device_revoke_or_show(a, argc, argv, 1);
}
