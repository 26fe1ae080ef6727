/*
 * card_image.c — the virtual DESFire card's persistent state and its text image file.
 *
 * The image is line-oriented text, one record per line, so that an operator can read a
 * card with `cat` and a test failure shows what the card holds:
 *
 *   citypass-desfire-image 2
 *   uid 04a1b2c3d4e5f6
 *   random-id 0
 *   picc settings=0f key-type=des key=00000000000000000000000000000000 key-version=00
 *   app aid=f0e1d2 settings=0b keys=2 key-type=aes
 *   key no=0 value=00000000000000000000000000000000 version=00
 *   key no=1 value=00112233445566778899aabbccddeeff version=01
 *   file no=1 type=std comm=3 access=1230 size=4 data=01020304
 *   file no=2 type=value comm=0 access=1230 lower=0 upper=1000 value=10 limited=0 limited-value=0
 *   end
 *
 * The full grammar is in docs/hil-desfire-card.md. The reader is strict: an unknown record
 * or field, a missing one, or an inconsistent value makes the whole image invalid, because
 * a half-understood card would silently become another card.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hil/desfire.h"

#include "card_image.h"

#define IMAGE_MAGIC   "citypass-desfire-image"
#define IMAGE_VERSION 2 /* written; version 1 (AES applications only) is still read */
#define MAX_FIELDS    14

/* ---- the model ------------------------------------------------------------------------ */

void hil_df_file_clear(struct hil_df_file *file)
{
	free(file->data);
	memset(file, 0, sizeof(*file));
}

static void app_clear(struct hil_df_app *app)
{
	for (size_t i = 0; i < HIL_DF_MAX_FILES; i++)
		hil_df_file_clear(&app->files[i]);
	memset(app, 0, sizeof(*app));
}

void hil_df_picc_format(struct hil_df_picc *picc)
{
	for (size_t i = 0; i < picc->napps; i++)
		app_clear(&picc->apps[i]);
	picc->napps = 0;
}

void hil_df_picc_free(struct hil_df_picc *picc)
{
	hil_df_picc_format(picc);
	memset(picc, 0, sizeof(*picc));
}

void hil_df_picc_factory(struct hil_df_picc *picc, const uint8_t uid[HIL_DF_UID_LEN], int random_id,
                         int aes_key)
{
	memset(picc, 0, sizeof(*picc));
	memcpy(picc->uid, uid, HIL_DF_UID_LEN);
	picc->random_id = random_id ? 1 : 0;
	picc->settings = 0x0F;
	picc->key_type = aes_key ? HIL_DF_KEY_AES : HIL_DF_KEY_DES;
}

uint32_t hil_df_file_footprint(const struct hil_df_file *file)
{
	if (!file->present)
		return 0;
	uint32_t bytes = 4; /* a value file */
	if (file->type == HIL_DF_FILE_STD)
		bytes = file->size;
	else if (file->type == HIL_DF_FILE_BACKUP)
		bytes = 2 * file->size; /* the committed data and its mirror */
	else if (file->type == HIL_DF_FILE_LINEAR || file->type == HIL_DF_FILE_CYCLIC)
		bytes = file->record_size * file->max_records;
	return (bytes + HIL_DF_BLOCK - 1) / HIL_DF_BLOCK * HIL_DF_BLOCK;
}

uint32_t hil_df_picc_used(const struct hil_df_picc *picc)
{
	uint32_t used = 0;
	for (size_t a = 0; a < picc->napps; a++)
		for (size_t f = 0; f < HIL_DF_MAX_FILES; f++)
			used += hil_df_file_footprint(&picc->apps[a].files[f]);
	return used;
}

/* ---- writing -------------------------------------------------------------------------- */

static void put_hex(FILE *f, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x", data[i]);
}

static const char *key_type_name(uint8_t type)
{
	return type == HIL_DF_KEY_AES ? "aes" : type == HIL_DF_KEY_3K3DES ? "3k3des" : "des";
}

static void put_key(FILE *f, const char *prefix, const struct hil_df_key *key, uint8_t type)
{
	fprintf(f, "%s", prefix);
	put_hex(f, key->value, type == HIL_DF_KEY_3K3DES ? 24 : 16);
}

static const char *const file_type_names[] = {"std", "backup", "value", "linear", "cyclic"};

static void write_image(FILE *f, const struct hil_df_picc *picc)
{
	fprintf(f, "%s %d\n", IMAGE_MAGIC, IMAGE_VERSION);
	fprintf(f, "uid ");
	put_hex(f, picc->uid, HIL_DF_UID_LEN);
	fprintf(f, "\nrandom-id %u\n", picc->random_id);
	fprintf(f, "picc settings=%02x key-type=%s", picc->settings, key_type_name(picc->key_type));
	put_key(f, " key=", &picc->key, picc->key_type);
	fprintf(f, " key-version=%02x", picc->key.version);
	if (picc->ats_len) {
		fprintf(f, " ats=");
		put_hex(f, picc->ats, picc->ats_len);
	}
	fprintf(f, " default-key=");
	put_hex(f, picc->default_key.value, HIL_DF_KEY_MAX);
	fprintf(f, " default-key-version=%02x\n", picc->default_key.version);
	for (size_t a = 0; a < picc->napps; a++) {
		const struct hil_df_app *app = &picc->apps[a];
		fprintf(f, "app aid=%06x settings=%02x keys=%u key-type=%s", (unsigned)app->aid,
		        app->settings, app->nkeys, key_type_name(app->key_type));
		if (app->has_fid)
			fprintf(f, " fid=%04x", app->fid);
		if (app->df_name_len) {
			fprintf(f, " dfname=");
			put_hex(f, app->df_name, app->df_name_len);
		}
		fputc('\n', f);
		for (unsigned k = 0; k < app->nkeys; k++) {
			fprintf(f, "key no=%u", k);
			put_key(f, " value=", &app->keys[k], app->key_type);
			fprintf(f, " version=%02x\n", app->keys[k].version);
		}
		for (unsigned n = 0; n < HIL_DF_MAX_FILES; n++) {
			const struct hil_df_file *file = &app->files[n];
			if (!file->present)
				continue;
			fprintf(f, "file no=%u type=%s comm=%u access=%04x", n,
			        file_type_names[file->type], file->comm, file->access);
			if (file->has_fid)
				fprintf(f, " fid=%04x", file->fid);
			if (file->type == HIL_DF_FILE_STD || file->type == HIL_DF_FILE_BACKUP) {
				fprintf(f, " size=%u data=", (unsigned)file->size);
				put_hex(f, file->data, file->size);
			} else if (file->type != HIL_DF_FILE_VALUE) {
				fprintf(f, " record-size=%u max-records=%u records=%u data=",
				        (unsigned)file->record_size, (unsigned)file->max_records,
				        (unsigned)file->nrecords);
				put_hex(f, file->data, file->record_size * file->nrecords);
			} else {
				fprintf(f,
				        " lower=%d upper=%d value=%d limited=%u limited-value=%d",
				        (int)file->lower, (int)file->upper, (int)file->value,
				        file->limited, (int)file->limited_value);
			}
			fputc('\n', f);
		}
	}
	fprintf(f, "end\n");
}

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return HIL_DESFIRE_ENOMEM;
	char *slash = strrchr(copy, '/');
	const char *dir = ".";
	if (slash == copy)
		dir = "/";
	else if (slash) {
		*slash = '\0';
		dir = copy;
	}
	int rc = 0;
	const int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fsync(fd) != 0)
		rc = HIL_DESFIRE_EIO;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

int hil_df_image_save(const char *path, const struct hil_df_picc *picc)
{
	const size_t len = strlen(path);
	char *tmp = malloc(len + sizeof(".tmp.XXXXXX"));
	if (!tmp)
		return HIL_DESFIRE_ENOMEM;
	memcpy(tmp, path, len);
	memcpy(tmp + len, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
	/* mkstemp creates the file 0600: the image holds the card's keys */
	const int fd = mkstemp(tmp);
	if (fd < 0) {
		free(tmp);
		return HIL_DESFIRE_EIO;
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		free(tmp);
		return HIL_DESFIRE_EIO;
	}
	write_image(f, picc);
	int ok = fflush(f) == 0 && !ferror(f) && fsync(fd) == 0;
	ok = (fclose(f) == 0) && ok;
	if (ok)
		ok = rename(tmp, path) == 0;
	if (!ok) {
		const int saved = errno;
		unlink(tmp);
		free(tmp);
		errno = saved;
		return HIL_DESFIRE_EIO;
	}
	free(tmp);
	return fsync_dir_of(path);
}

/* ---- reading -------------------------------------------------------------------------- */

struct record {
	char *kind;
	size_t n;
	char *name[MAX_FIELDS];
	char *value[MAX_FIELDS];
	unsigned used; /* bit per field, to refuse unknown ones */
};

/* Splits "kind a=1 b=2" in place. Returns 0, or -1 on a malformed line. */
static int record_split(char *line, struct record *rec)
{
	memset(rec, 0, sizeof(*rec));
	char *save = NULL;
	rec->kind = strtok_r(line, " \t\r\n", &save);
	if (!rec->kind)
		return -1;
	char *tok;
	while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
		if (rec->n == MAX_FIELDS)
			return -1;
		char *eq = strchr(tok, '=');
		if (eq) {
			*eq = '\0';
			rec->name[rec->n] = tok;
			rec->value[rec->n] = eq + 1;
		} else {
			rec->name[rec->n] = NULL; /* a bare word: "uid 04...", "random-id 0" */
			rec->value[rec->n] = tok;
		}
		rec->n++;
	}
	return 0;
}

static const char *record_get(struct record *rec, const char *name)
{
	for (size_t i = 0; i < rec->n; i++) {
		const int match =
		        name ? rec->name[i] && !strcmp(rec->name[i], name) : !rec->name[i];
		if (match) {
			if (rec->used & (1u << i))
				return NULL; /* a second bare word */
			rec->used |= 1u << i;
			return rec->value[i];
		}
	}
	return NULL;
}

/* Every field was consumed exactly once, and names are not repeated. */
static int record_complete(const struct record *rec)
{
	if (rec->used != (rec->n ? (1u << rec->n) - 1 : 0))
		return 0;
	for (size_t i = 0; i < rec->n; i++)
		for (size_t j = i + 1; j < rec->n; j++)
			if (rec->name[i] && rec->name[j] && !strcmp(rec->name[i], rec->name[j]))
				return 0;
	return 1;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_hex_bytes(const char *s, uint8_t *out, size_t len)
{
	if (!s || strlen(s) != 2 * len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		const int hi = hex_nibble(s[2 * i]), lo = hex_nibble(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Unsigned hex of exactly `digits` digits. */
static int parse_hex_u32(const char *s, size_t digits, uint32_t *out)
{
	if (!s || strlen(s) != digits)
		return -1;
	uint32_t v = 0;
	for (size_t i = 0; i < digits; i++) {
		const int d = hex_nibble(s[i]);
		if (d < 0)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

static int parse_dec(const char *s, long min, long max, long *out)
{
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	const long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_u8_hex(const char *s, uint8_t *out)
{
	uint32_t v;
	if (parse_hex_u32(s, 2, &v))
		return -1;
	*out = (uint8_t)v;
	return 0;
}

static int parse_key_type(const char *s, uint8_t *out)
{
	if (s && !strcmp(s, "des"))
		*out = HIL_DF_KEY_DES;
	else if (s && !strcmp(s, "3k3des"))
		*out = HIL_DF_KEY_3K3DES;
	else if (s && !strcmp(s, "aes"))
		*out = HIL_DF_KEY_AES;
	else
		return -1;
	return 0;
}

static int parse_key_value(const char *s, uint8_t type, struct hil_df_key *key)
{
	return parse_hex_bytes(s, key->value, type == HIL_DF_KEY_3K3DES ? 24 : 16);
}

/* Optional hex bytes, 1 to max of them: 0 (absent: *len = 0), or -1. */
static int parse_opt_hex(const char *s, uint8_t *out, size_t max, uint8_t *len)
{
	*len = 0;
	if (!s)
		return 0;
	const size_t n = strlen(s) / 2;
	if (n == 0 || n > max || parse_hex_bytes(s, out, n))
		return -1;
	*len = (uint8_t)n;
	return 0;
}

static int parse_opt_fid(const char *s, uint16_t *fid, uint8_t *has)
{
	uint32_t v;
	*has = 0;
	if (!s)
		return 0;
	if (parse_hex_u32(s, 4, &v))
		return -1;
	*fid = (uint16_t)v;
	*has = 1;
	return 0;
}

static int parse_picc(struct record *rec, struct hil_df_picc *picc)
{
	if (parse_u8_hex(record_get(rec, "settings"), &picc->settings) ||
	    parse_key_type(record_get(rec, "key-type"), &picc->key_type) ||
	    parse_key_value(record_get(rec, "key"), picc->key_type, &picc->key) ||
	    parse_u8_hex(record_get(rec, "key-version"), &picc->key.version) ||
	    parse_opt_hex(record_get(rec, "ats"), picc->ats, HIL_DF_ATS_MAX, &picc->ats_len) ||
	    (picc->ats_len && picc->ats[0] != picc->ats_len))
		return -1;
	const char *dk = record_get(rec, "default-key"),
	           *dv = record_get(rec, "default-key-version");
	if (!dk != !dv)
		return -1;
	if (dk && (parse_hex_bytes(dk, picc->default_key.value, HIL_DF_KEY_MAX) ||
	           parse_u8_hex(dv, &picc->default_key.version)))
		return -1;
	return 0;
}

static int parse_app(struct record *rec, struct hil_df_picc *picc, struct hil_df_app **out,
                     long version)
{
	uint32_t aid;
	long keys;
	uint8_t key_type;
	if (picc->napps == HIL_DF_MAX_APPS)
		return -1;
	struct hil_df_app *app = &picc->apps[picc->napps];
	if (parse_hex_u32(record_get(rec, "aid"), 6, &aid) || aid == 0 ||
	    parse_u8_hex(record_get(rec, "settings"), &app->settings) ||
	    parse_dec(record_get(rec, "keys"), 1, HIL_DF_MAX_KEYS, &keys) ||
	    parse_key_type(record_get(rec, "key-type"), &key_type) ||
	    parse_opt_fid(record_get(rec, "fid"), &app->fid, &app->has_fid) ||
	    parse_opt_hex(record_get(rec, "dfname"), app->df_name, HIL_DF_DFNAME_MAX,
	                  &app->df_name_len) ||
	    (version == 1 && key_type != HIL_DF_KEY_AES) || (app->df_name_len && !app->has_fid))
		return -1;
	for (size_t i = 0; i < picc->napps; i++)
		if (picc->apps[i].aid == aid)
			return -1;
	app->aid = aid;
	app->nkeys = (uint8_t)keys;
	app->key_type = key_type;
	picc->napps++;
	*out = app;
	return 0;
}

static int parse_key(struct record *rec, struct hil_df_app *app, unsigned expected)
{
	long no;
	if (!app || expected >= app->nkeys ||
	    parse_dec(record_get(rec, "no"), 0, HIL_DF_MAX_KEYS - 1, &no) ||
	    (unsigned long)no != expected ||
	    parse_key_value(record_get(rec, "value"), app->key_type, &app->keys[no]) ||
	    parse_u8_hex(record_get(rec, "version"), &app->keys[no].version))
		return -1;
	return 0;
}

static int parse_file(struct record *rec, struct hil_df_app *app)
{
	long no, comm, lower, upper, value, limited, limited_value, size, rsize, rmax, rn;
	uint32_t access;
	const char *type = record_get(rec, "type");
	if (!app || !type || parse_dec(record_get(rec, "no"), 0, HIL_DF_MAX_FILES - 1, &no) ||
	    app->files[no].present || parse_dec(record_get(rec, "comm"), 0, 3, &comm) ||
	    parse_hex_u32(record_get(rec, "access"), 4, &access))
		return -1;
	struct hil_df_file *file = &app->files[no];
	file->comm = (uint8_t)comm;
	file->access = (uint16_t)access;
	if (parse_opt_fid(record_get(rec, "fid"), &file->fid, &file->has_fid))
		return -1;
	if (!strcmp(type, "linear") || !strcmp(type, "cyclic")) {
		if (parse_dec(record_get(rec, "record-size"), 1, HIL_DF_CAPACITY, &rsize) ||
		    parse_dec(record_get(rec, "max-records"), 1, HIL_DF_CAPACITY, &rmax) ||
		    parse_dec(record_get(rec, "records"), 0, rmax, &rn) ||
		    rsize * rmax > (long)HIL_DF_CAPACITY)
			return -1;
		file->type = type[0] == 'l' ? HIL_DF_FILE_LINEAR : HIL_DF_FILE_CYCLIC;
		file->record_size = (uint32_t)rsize;
		file->max_records = (uint32_t)rmax;
		file->nrecords = (uint32_t)rn;
		file->data = calloc(1, (size_t)(rsize * rmax));
		if (!file->data)
			return HIL_DESFIRE_ENOMEM;
		file->present = 1;
		const char *d = record_get(rec, "data");
		if (rn == 0 ? (d && *d) : parse_hex_bytes(d, file->data, (size_t)(rsize * rn)))
			return -1;
	} else if (!strcmp(type, "std") || !strcmp(type, "backup")) {
		if (parse_dec(record_get(rec, "size"), 1, HIL_DF_CAPACITY, &size))
			return -1;
		file->type = type[0] == 's' ? HIL_DF_FILE_STD : HIL_DF_FILE_BACKUP;
		file->size = (uint32_t)size;
		file->data = malloc(file->size);
		if (!file->data)
			return HIL_DESFIRE_ENOMEM;
		file->present = 1;
		if (parse_hex_bytes(record_get(rec, "data"), file->data, file->size))
			return -1;
	} else if (!strcmp(type, "value")) {
		if (parse_dec(record_get(rec, "lower"), INT32_MIN, INT32_MAX, &lower) ||
		    parse_dec(record_get(rec, "upper"), INT32_MIN, INT32_MAX, &upper) ||
		    parse_dec(record_get(rec, "value"), INT32_MIN, INT32_MAX, &value) ||
		    parse_dec(record_get(rec, "limited"), 0, 0xFF, &limited) ||
		    parse_dec(record_get(rec, "limited-value"), 0, INT32_MAX, &limited_value) ||
		    lower > upper || value < lower || value > upper)
			return -1;
		file->type = HIL_DF_FILE_VALUE;
		file->lower = (int32_t)lower;
		file->upper = (int32_t)upper;
		file->value = (int32_t)value;
		file->limited = (uint8_t)limited;
		file->limited_value = (int32_t)limited_value;
		file->present = 1;
	} else {
		return -1;
	}
	return 0;
}

/* What the next line may be. */
enum load_state { WANT_MAGIC, WANT_UID, WANT_RANDOM_ID, WANT_PICC, IN_BODY, DONE };

static int load_line(char *line, enum load_state *state, struct hil_df_picc *picc,
                     struct hil_df_app **app, unsigned *next_key, long *version)
{
	struct record rec;
	long v;
	if (record_split(line, &rec))
		return -1;
	switch (*state) {
	case WANT_MAGIC:
		if (strcmp(rec.kind, IMAGE_MAGIC) || parse_dec(record_get(&rec, NULL), 0, 999, &v))
			return -1;
		if (v != IMAGE_VERSION && v != 1)
			return HIL_DESFIRE_EFORMAT;
		*version = v;
		*state = WANT_UID;
		break;
	case WANT_UID:
		if (strcmp(rec.kind, "uid") ||
		    parse_hex_bytes(record_get(&rec, NULL), picc->uid, HIL_DF_UID_LEN))
			return -1;
		*state = WANT_RANDOM_ID;
		break;
	case WANT_RANDOM_ID:
		if (strcmp(rec.kind, "random-id") || parse_dec(record_get(&rec, NULL), 0, 1, &v))
			return -1;
		picc->random_id = (uint8_t)v;
		*state = WANT_PICC;
		break;
	case WANT_PICC:
		if (strcmp(rec.kind, "picc") || parse_picc(&rec, picc))
			return -1;
		*state = IN_BODY;
		break;
	case IN_BODY: {
		int rc;
		if (!strcmp(rec.kind, "app")) {
			if (*app && *next_key != (*app)->nkeys)
				return -1;
			rc = parse_app(&rec, picc, app, *version);
			*next_key = 0;
		} else if (!strcmp(rec.kind, "key")) {
			rc = parse_key(&rec, *app, *next_key);
			(*next_key)++;
		} else if (!strcmp(rec.kind, "file")) {
			if (!*app || *next_key != (*app)->nkeys)
				return -1;
			rc = parse_file(&rec, *app);
		} else if (!strcmp(rec.kind, "end")) {
			if (*app && *next_key != (*app)->nkeys)
				return -1;
			*state = DONE;
			rc = 0;
		} else {
			rc = -1;
		}
		if (rc)
			return rc;
		break;
	}
	case DONE:
		return -1; /* nothing after "end" */
	}
	return record_complete(&rec) ? 0 : -1;
}

int hil_df_image_load(const char *path, struct hil_df_picc *picc)
{
	memset(picc, 0, sizeof(*picc));
	FILE *f = fopen(path, "r");
	if (!f)
		return HIL_DESFIRE_EIO;
	char *line = NULL;
	size_t cap = 0;
	enum load_state state = WANT_MAGIC;
	struct hil_df_app *app = NULL;
	unsigned next_key = 0;
	long version = 0;
	int rc = 0;
	errno = 0;
	while (getline(&line, &cap, f) >= 0) {
		if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0')
			continue; /* comments and blank lines */
		rc = load_line(line, &state, picc, &app, &next_key, &version);
		if (rc)
			break;
	}
	if (rc == 0 && ferror(f))
		rc = HIL_DESFIRE_EIO;
	free(line);
	fclose(f);
	if (rc == 0 && state != DONE)
		rc = -1; /* truncated */
	if (rc == 0 && hil_df_picc_used(picc) > HIL_DF_CAPACITY)
		rc = -1;
	if (rc == -1)
		rc = HIL_DESFIRE_EIMAGE;
	if (rc)
		hil_df_picc_free(picc);
	return rc;
}
