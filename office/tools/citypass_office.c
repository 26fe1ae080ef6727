/*
 * citypass_office.c — citypass-office: `serve` runs the agents' web back office;
 * `account add|list|disable|enable|unlock|password` manages who may log in (docs/office.md). DESIGN
 * §8's conventions:
 * --help everywhere, exit 0 / 1 refused / 2 bad usage, errors naming the bad value.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "office/accounts.h"
#include "office/office.h"
#include "server/passes.h"

#ifndef CITYPASS_VERSION
#define CITYPASS_VERSION "0"
#endif

#define EXIT_REFUSED 1
#define EXIT_USAGE   2

/* GNU-style, as the other daemons': its man page citypass-office(8) is generated from it by
 * help2man (scripts/manpages.sh), which reads "Usage:"/"or:" lines and indented options */
static const char help[] =
        "Usage: citypass-office serve --data DIR --cert FILE --key FILE [options]\n"
        "  or:  citypass-office account add --data DIR --login LOGIN --role ROLE [options]\n"
        "  or:  citypass-office account list --data DIR\n"
        "  or:  citypass-office account disable|enable|unlock|password --data DIR --login LOGIN\n"
        "\n"
        "The agents' web back office of citypass, in French, over HTTPS (docs/office.md),\n"
        "and the accounts that may log in to it.\n"
        "\n"
        "Commands:\n"
        "  serve         serve the back office until SIGTERM or SIGINT\n"
        "  account add   create an account; its password (10 to 256 characters) is the\n"
        "                first line of stdin, never an argument\n"
        "  account list  the accounts, their roles and sectors\n"
        "  account disable\n"
        "                the account logs in no more and its sessions end at once (the\n"
        "                last enabled administrator cannot be disabled)\n"
        "  account enable\n"
        "                a disabled account may log in again\n"
        "  account unlock\n"
        "                lift a lock-out after wrong passwords before its 15 minutes\n"
        "  account password\n"
        "                a new password, the first line of stdin; the account's sessions end\n"
        "\n"
        "Options:\n"
        "      --data DIR                the deployment's data directory, where office.db\n"
        "                                is kept (or $CITYPASS_DATA)\n"
        "      --cert FILE               serve: the PEM certificate chain it presents\n"
        "      --key FILE                serve: the certificate's private key (PEM)\n"
        "      --listen HOST:PORT        serve: its address (default 127.0.0.1:8443; port 0:\n"
        "                                any free port, written to --port-file)\n"
        "      --port-file FILE          serve: where the port is written once listening\n"
        "      --reader DESK=CONNSTRING  serve: a desk's card reader, by its libnfc\n"
        "                                connection string (repeatable)\n"
        "      --login-rate N            serve: login attempts per client address per\n"
        "                                minute (default 30)\n"
        "      --login LOGIN             account add, disable, enable, unlock, password:\n"
        "                                the account's login\n"
        "      --role admin|agent        account add: an administrator works for every\n"
        "                                sector, an agent for the sectors named\n"
        "      --sector NAME             account add: a sector of an agent (at least one;\n"
        "                                repeatable)\n"
        "  -h, --help                    this help\n"
        "      --version                 the version\n"
        "\n"
        "Exit status: 0 done (serve: stopped by SIGTERM/SIGINT), 1 refused or could not\n"
        "start, 2 bad usage.\n";

__attribute__((format(printf, 1, 2))) static int usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "citypass-office: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(citypass-office --help)\n");
	return EXIT_USAGE;
}

static int parse_listen(const char *s, struct office_config *c, char *host, size_t cap)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= cap)
		return -1;
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || p > 65535)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	c->host = host;
	c->port = (uint16_t)p;
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"data", required_argument, NULL, 'd'},
	        {"cert", required_argument, NULL, 'c'},
	        {"key", required_argument, NULL, 'k'},
	        {"listen", required_argument, NULL, 'l'},
	        {"port-file", required_argument, NULL, 'p'},
	        {"reader", required_argument, NULL, 'r'},
	        {"login-rate", required_argument, NULL, 'R'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct office_config c;
	char host[256];
	memset(&c, 0, sizeof(c));
	c.data = getenv("CITYPASS_DATA");
	c.host = "127.0.0.1";
	c.port = 8443;
	c.login_per_min = 30;
	int o;
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			c.data = optarg;
			break;
		case 'c':
			c.cert = optarg;
			break;
		case 'k':
			c.key = optarg;
			break;
		case 'l':
			if (parse_listen(optarg, &c, host, sizeof(host)) != 0)
				return usage("--listen '%s': expected HOST:PORT", optarg);
			break;
		case 'p':
			c.port_file = optarg;
			break;
		case 'r': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg || !eq[1])
				return usage("--reader '%s': expected DESK=CONNSTRING", optarg);
			if (c.n_readers == OFFICE_READERS_MAX)
				return usage("--reader '%s': too many desks", optarg);
			*eq = 0;
			c.readers[c.n_readers].desk = optarg;
			c.readers[c.n_readers++].connstring = eq + 1;
			break;
		}
		case 'R': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v == 0 || v > 100000)
				return usage("--login-rate '%s': expected a number, 1 or more",
				             optarg);
			c.login_per_min = (unsigned)v;
			break;
		}
		case 'h':
			fputs(help, stdout);
			return 0;
		default:
			return usage("serve: option '%s' is not known or lacks its value",
			             argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage("serve: unexpected argument '%s'", argv[optind]);
	if (!c.data)
		return usage("serve: %s", "missing --data DIR");
	if (!c.cert || !c.key)
		return usage("serve: %s", "missing --cert FILE and --key FILE (HTTPS only)");
	struct server_why why;
	if (office_serve(&c, &why) != 0) {
		fprintf(stderr, "citypass-office: %s\n", why.text);
		return EXIT_REFUSED;
	}
	return 0;
}

static int read_password(char *pw, size_t cap)
{
	if (!fgets(pw, (int)cap, stdin))
		return -1;
	size_t n = strlen(pw);
	if (n && pw[n - 1] == '\n')
		pw[--n] = 0;
	else if (n == cap - 1)
		return -1; /* longer than the buffer: refused, not cut */
	if (n && pw[n - 1] == '\r')
		pw[--n] = 0;
	return 0;
}

static int cmd_account_add(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"data", required_argument, NULL, 'd'}, {"login", required_argument, NULL, 'l'},
	        {"role", required_argument, NULL, 'r'}, {"sector", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	const char *data = getenv("CITYPASS_DATA"), *login = NULL, *role_s = NULL;
	const char *sectors[OFFICE_SECTORS_MAX];
	size_t ns = 0;
	int o;
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			data = optarg;
			break;
		case 'l':
			login = optarg;
			break;
		case 'r':
			role_s = optarg;
			break;
		case 's':
			if (ns == OFFICE_SECTORS_MAX)
				return usage("--sector '%s': too many sectors", optarg);
			sectors[ns++] = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return 0;
		default:
			return usage("account add: option '%s' is not known or lacks its value",
			             argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage("account add: unexpected argument '%s'", argv[optind]);
	if (!data || !login || !role_s)
		return usage("account add: %s", "needs --data DIR, --login LOGIN and --role");
	int role = office_role_parse(role_s);
	if (role < 0)
		return usage("--role '%s': expected admin or agent", role_s);
	if (role == OFFICE_ROLE_ADMIN && ns)
		return usage("--sector '%s': an administrator works for every sector", sectors[0]);
	if (role == OFFICE_ROLE_AGENT && !ns)
		return usage("account add: %s", "an agent needs at least one --sector NAME");
	struct server_store st;
	struct server_why why;
	if (server_store_open(&st, data, 0, &why) != 0) {
		fprintf(stderr, "citypass-office: no deployment in '%s': %s\n", data, why.text);
		return EXIT_REFUSED;
	}
	uint16_t nums[OFFICE_SECTORS_MAX];
	for (size_t i = 0; i < ns; i++) {
		struct server_sector s;
		if (server_sector_find(&st, sectors[i], &s) != 0) {
			server_store_close(&st);
			return usage("--sector '%s': no such sector in this deployment",
			             sectors[i]);
		}
		nums[i] = s.number;
	}
	server_store_close(&st);
	char pw[OFFICE_PASSWORD_MAX + 2];
	if (read_password(pw, sizeof(pw)) != 0) {
		fprintf(stderr,
		        "citypass-office: no password on stdin (one line, at most %d "
		        "characters)\n",
		        OFFICE_PASSWORD_MAX);
		return EXIT_USAGE;
	}
	struct office_db *db;
	if (office_db_open(&db, data, &why) != 0) {
		fprintf(stderr, "citypass-office: %s\n", why.text);
		return EXIT_REFUSED;
	}
	int rc = office_account_add(db, login, pw, role, nums, ns, (int64_t)time(NULL), &why);
	memset(pw, 0, sizeof(pw));
	if (rc == 0)
		office_audit(db, (int64_t)time(NULL), "(console)", "compte créé", 0, "", 1, login);
	office_db_close(db);
	if (rc) {
		fprintf(stderr, "citypass-office: %s\n", why.text);
		return rc == SERVER_ERR_INVALID ? EXIT_USAGE : EXIT_REFUSED;
	}
	printf("account %s (%s) created\n", login, office_role_name(role));
	return 0;
}

static int cmd_account_change(const char *what, int argc, char **argv)
{
	static const struct {
		const char *name, *audit, *done;
		int change;
	} changes[] = {
	        {"disable", "compte désactivé", "disabled", OFFICE_ACCOUNT_DISABLE},
	        {"enable", "compte réactivé", "enabled", OFFICE_ACCOUNT_ENABLE},
	        {"unlock", "compte débloqué", "unlocked", OFFICE_ACCOUNT_UNLOCK},
	        {"password", "mot de passe changé", "has a new password", 0},
	};
	size_t k = 0;
	while (k < sizeof(changes) / sizeof(changes[0]) && strcmp(changes[k].name, what) != 0)
		k++;
	const char *data = getenv("CITYPASS_DATA"), *login = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
			data = argv[++i];
		else if (strcmp(argv[i], "--login") == 0 && i + 1 < argc)
			login = argv[++i];
		else if (strcmp(argv[i], "--help") == 0)
			return fputs(help, stdout), 0;
		else
			return usage("account %s: unexpected argument '%s'", what, argv[i]);
	}
	if (!data || !login)
		return usage("account %s: %s", what, "needs --data DIR and --login LOGIN");
	char pw[OFFICE_PASSWORD_MAX + 2];
	if (!changes[k].change && read_password(pw, sizeof(pw)) != 0) {
		fprintf(stderr,
		        "citypass-office: no password on stdin (one line, at most %d "
		        "characters)\n",
		        OFFICE_PASSWORD_MAX);
		return EXIT_USAGE;
	}
	struct office_db *db;
	struct server_why why;
	if (office_db_open(&db, data, &why) != 0) {
		fprintf(stderr, "citypass-office: %s\n", why.text);
		return EXIT_REFUSED;
	}
	int rc = changes[k].change ? office_account_change(db, login, changes[k].change, &why)
	                           : office_account_password(db, login, pw, &why);
	memset(pw, 0, sizeof(pw));
	office_audit(db, (int64_t)time(NULL), "(console)", changes[k].audit, 0, "", rc == 0,
	             rc == 0 ? login : why.text);
	office_db_close(db);
	if (rc) {
		fprintf(stderr, "citypass-office: %s\n", why.text);
		return rc == SERVER_ERR_INVALID ? EXIT_USAGE : EXIT_REFUSED;
	}
	printf("account %s %s\n", login, changes[k].done);
	return 0;
}

static int print_account(void *arg, const struct office_account *a)
{
	(void)arg;
	printf("%-20s %-6s", a->login, office_role_name(a->role));
	for (size_t i = 0; i < a->n_sectors; i++)
		printf("%s%u", i ? "," : " sectors ", a->sectors[i]);
	printf("%s%s\n", a->locked_until > time(NULL) ? " (locked)" : "",
	       a->disabled ? " (disabled)" : "");
	return 0;
}

static int cmd_account_list(int argc, char **argv)
{
	const char *data = getenv("CITYPASS_DATA");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
			data = argv[++i];
		else if (strcmp(argv[i], "--help") == 0)
			return fputs(help, stdout), 0;
		else
			return usage("account list: unexpected argument '%s'", argv[i]);
	}
	if (!data)
		return usage("account list: %s", "missing --data DIR");
	struct office_db *db;
	struct server_why why;
	if (office_db_open(&db, data, &why) != 0) {
		fprintf(stderr, "citypass-office: %s\n", why.text);
		return EXIT_REFUSED;
	}
	office_account_each(db, print_account, NULL);
	office_db_close(db);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage("%s", "missing a command: serve, account add, account list");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(help, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("citypass-office %s\n", CITYPASS_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "account") == 0 && argc >= 3) {
		if (strcmp(argv[2], "add") == 0)
			return cmd_account_add(argc - 2, argv + 2);
		if (strcmp(argv[2], "list") == 0)
			return cmd_account_list(argc - 2, argv + 2);
		static const char *const changes[] = {"disable", "enable", "unlock", "password"};
		for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++)
			if (strcmp(argv[2], changes[i]) == 0)
				return cmd_account_change(changes[i], argc - 2, argv + 2);
		return usage("account '%s': expected add, list, disable, enable, unlock or "
		             "password",
		             argv[2]);
	}
	return usage("unknown command '%s': expected serve or account "
	             "add|list|disable|enable|unlock|password",
	             argv[1]);
}
