/*
 * test_hil_desfire.c — the virtual DESFire EV2 card (hil/desfire.h), driven through its
 * hil_target ops with command frames computed here.
 *
 * The reader side in this file is written independently of the card and as plainly as
 * possible (its own CMAC with IV, CRCs and session handling, on raw mbedTLS AES/DES); the
 * arbiter for both is the set of published vectors at the top:
 *   - RFC 4493 §4 (AES-CMAC examples 1-4), NIST SP 800-38A F.2.1 (CBC-AES128);
 *   - the CRC catalogue check values for "123456789" (CRC-32 and CRC-16/ISO-IEC-14443-3-A);
 *   - NXP AN12196 "NTAG 424 DNA and NTAG 424 DNA TagTamper features and hints" (rev. 2.0
 *     §5.6 Table 14, §5.8.2 Table 17, §5.9 Table 18, §5.10 Table 19, §5.14 Table 23,
 *     §5.16 Tables 25 and 26, §6.3 Table 28), whose EV2 secure messaging is DESFire EV2's;
 *   - NXP AN12343 "MIFARE DESFire Light features and hints", Table 40 (ChangeKey).
 * The EV2 handshakes of Tables 14, 19 and 23 and the ChangeKey commands of Tables 25 and 26
 * are replayed byte for byte against the card (its random source scripted to the
 * published RndB and TI): the card must give the published answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <mbedtls/aes.h>
#include <mbedtls/cipher.h>
#include <mbedtls/cmac.h>
#include <mbedtls/des.h>

#include "hil/desfire.h"

#include "desfire_crypto.h"

/* ---- hex ------------------------------------------------------------------------------- */

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;
	while (*s) {
		if (*s == ' ') {
			s++;
			continue;
		}
		unsigned v;
		assert_true(s[1] != '\0');
		assert_int_equal(sscanf(s, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static void assert_hex(const uint8_t *got, size_t len, const char *want)
{
	uint8_t w[512];
	const size_t n = unhex(want, w);
	assert_int_equal(len, n);
	assert_memory_equal(got, w, n);
}

/* ---- published vectors ----------------------------------------------------------------- */

static const char rfc4493_key[] = "2b7e151628aed2a6abf7158809cf4f3c";
static const char rfc4493_msg[] =
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
static const struct {
	size_t len;
	const char *mac;
} rfc4493[] = {
        {0, "bb1d6929e95937287fa37d129b756746"},  /* RFC 4493 §4 example 1 */
        {16, "070a16b46b4d4144f79bdd9dd04a287c"}, /* example 2 */
        {40, "dfa66747de9ae63030ca32611497c827"}, /* example 3 */
        {64, "51f0bebf7e3b9d92fc49741779363cfe"}, /* example 4 */
};

/* NIST SP 800-38A F.2.1 CBC-AES128.Encrypt */
static const char sp800_38a_iv[] = "000102030405060708090a0b0c0d0e0f";
static const char sp800_38a_ct[] =
        "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
        "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7";

struct ev2_handshake {
	const char *source;
	uint8_t key_no;
	const char *enc_rnd_b, *rnd_b, *rnd_a, *part2, *part2_resp, *ti, *sv1, *enc, *mac;
};

static const struct ev2_handshake ev2_handshakes[] = {
        {"AN12196 rev 2.0 §5.6 Table 14 (AuthenticateEV2First, key 0)", 0,
         "A04C124213C186F22399D33AC2A30215", "B9E2FC789B64BF237CCCAA20EC7E6E48",
         "13C5DB8A5930439FC3DEF9A4C675360F",
         "35C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D",
         "3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663", "9D00C4DF",
         "A55A0001008013C56268A548D8FBBF237CCCAA20EC7E6E48C3DEF9A4C675360F",
         "1309C877509E5A215007FF0ED19CA564", "4C6626F5E72EA694202139295C7A7FC7"},
        {"AN12196 rev 2.0 §5.10 Table 19 (AuthenticateEV2First, key 3)", 3,
         "B875CEB0E66A6C5CD00898DC371F92D1", "91517975190DCEA6104948EFA3085C1B",
         "B98F4C50CF1C2E084FD150E33992B048",
         "FF0306E47DFBC50087C4D8A78E88E62DE1E8BE457AA477C707E2F0874916A8B1",
         "0CC9A8094A8EEA683ECAAC5C7BF20584206D0608D477110FC6B3D5D3F65C3A6A", "7614281A",
         "A55A00010080B98FDD01B6693705CEA6104948EFA3085C1B4FD150E33992B048",
         "7A93D6571E4B180FCA6AC90C9A7488D4", "FC4AF159B62E549B5812394CAB1918CC"},
        {"AN12196 rev 2.0 §5.14 Table 23 (AuthenticateEV2NonFirst, key 0)", 0,
         "A6A2B3C572D06C097BB8DB70463E22DC", "6924E8D09722659A2E7DEC68E66312B8",
         "60BE759EDA560250AC57CDDC11743CF6",
         "BE7D45753F2CAB85F34BC60CE58B940763FE969658A532DF6D95EA2773F6E991", NULL, NULL,
         "A55A0001008060BE1CBA32869572659A2E7DEC68E66312B8AC57CDDC11743CF6",
         "4CF3CB41A22583A61E89B158D252FC53", "5529860B2FC5FB6154B7F28361D30BF9"},
};

/* CommMode.Full commands: IV, ciphertext and MACt, and the answer's MACt (if any). */
struct ev2_full_command {
	const char *source;
	const char *enc, *mac, *ti;
	uint8_t cmd;
	uint16_t ctr;
	const char *header, *plain, *iv, *cipher, *mact, *resp_mact;
};

static const struct ev2_full_command ev2_commands[] = {
        {"AN12196 rev 2.0 §5.8.2 Table 17 (WriteData)", "1309C877509E5A215007FF0ED19CA564",
         "4C6626F5E72EA694202139295C7A7FC7", "9D00C4DF", 0x8D, 0, "02000000800000",
         "0051D1014D550463686F6F73652E75726C2E636F6D2F6E7461673432343F653D"
         "3030303030303030303030303030303030303030303030303030303030303030"
         "26633D3030303030303030303030303030303000000000000000000000000000"
         "0000000000000000000000000000000000000000000000000000000000000000",
         "D2CB7277A17841A06654A48188C1F8F5",
         "421C73A27D827658AF481FDFF20A5025B559D0E3AA21E58D347F343CFFC768BF"
         "E596C706BC00F2176781D4B0242642A0FF5A42C461AAF894D9A1284B8C76BCFA"
         "658ACD40555D362E08DB15CF421B51283F9064BCBE20E96CAE545B407C9D651A"
         "3315B27373772E5DA2367D2064AE054AF996C6F1F669170FA88CE8C4E3A4A7BB"
         "BEF0FD971FF532C3A802AF745660F2B4",
         "D1D9A8499661EBF3", "FC222E5F7A542452"},
        {"AN12196 rev 2.0 §5.9 Table 18 (ChangeFileSettings)", "1309C877509E5A215007FF0ED19CA564",
         "4C6626F5E72EA694202139295C7A7FC7", "9D00C4DF", 0x5F, 1, "02",
         "4000E0C1F121200000430000430000", "3E27082AB2ACC1EF55C57547934E9962",
         "61B6D97903566E84C3AE5274467E89EA", "D799B7C1A0EF7A04", "57BFF87B1241E93D"},
        {"AN12196 rev 2.0 §5.16 Table 25 (ChangeKey, other key)",
         "4CF3CB41A22583A61E89B158D252FC53", "5529860B2FC5FB6154B7F28361D30BF9", "7614281A", 0xC4,
         2, "02", "F3847D627727ED3BC9C4CC050489B96601789DFADC", "307EDE1814707F30CFE603DD6CA62353",
         "2CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC7", "5D0CE20BCD1D06E6",
         "203BB55D1089D587"},
        {"AN12196 rev 2.0 §5.16 Table 26 (ChangeKey, same key)", "4CF3CB41A22583A61E89B158D252FC53",
         "5529860B2FC5FB6154B7F28361D30BF9", "7614281A", 0xC4, 3, "00",
         "5004BF991F408672B1EF00F08F9E864701", "01602D579423B2797BE8B478B0B4D27B",
         "C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FD", "A6610234BDED6432",
         NULL},
        {"AN12343 Table 40 (ChangeKey, same key)", "E156C8522F7C8DC82B0C99BA847DE723",
         "45D50C1570000D2F173DF949288E3CAD", "94297F4D", 0xC4, 0, "00",
         "0123456789012345678901234567890100", "BF4A2FB89311ED58E9DCBE56FC17794C",
         "BF5400DC97A1FBD65BE870716D6F11F8161BB4CA472856DB94AB94B2EC1A13E6", "27CE07CF56C11091",
         NULL},
};

/* AN12196 rev 2.0 §6.3 Table 28: GetCardUID in CommMode.Full, the one published answer that
 * carries enciphered data. */
static const char t28_mac[] = "379D32130CE61705DD5FD8C36B95D764";
static const char t28_enc[] = "2B4D963C014DC36F24F69A50A394F875";
static const char t28_ti[] = "DF055522";
static const char t28_cmd_mact[] = "8E2C155ADDA99BE3";
static const char t28_resp[] = "70756055688505B52A5E26E59E329CD6595F672298EA41B7";
static const char t28_resp_cmac[] = "F4593D5FAB671F225798C4EA894195B7";
static const char t28_iv_resp[] = "7F6BB0B278EA054CBD238C5D9E9E342B";
static const char t28_uid[] = "04958CAA5C5E80";

/* ---- the reader side, written for the tests -------------------------------------------- */

static void t_aes(const uint8_t key[16], int encrypt, const uint8_t in[16], uint8_t out[16])
{
	mbedtls_aes_context ctx;
	mbedtls_aes_init(&ctx);
	if (encrypt)
		assert_int_equal(mbedtls_aes_setkey_enc(&ctx, key, 128), 0);
	else
		assert_int_equal(mbedtls_aes_setkey_dec(&ctx, key, 128), 0);
	assert_int_equal(mbedtls_aes_crypt_ecb(&ctx,
	                                       encrypt ? MBEDTLS_AES_ENCRYPT : MBEDTLS_AES_DECRYPT,
	                                       in, out),
	                 0);
	mbedtls_aes_free(&ctx);
}

/* CBC, block by block; iv becomes the last ciphertext block. */
static void t_cbc(const uint8_t key[16], uint8_t iv[16], int encrypt, uint8_t *buf, size_t len)
{
	assert_int_equal(len % 16, 0);
	for (size_t off = 0; off < len; off += 16) {
		uint8_t c[16];
		if (encrypt) {
			for (int i = 0; i < 16; i++)
				buf[off + i] ^= iv[i];
			t_aes(key, 1, buf + off, buf + off);
			memcpy(iv, buf + off, 16);
		} else {
			memcpy(c, buf + off, 16);
			t_aes(key, 0, buf + off, buf + off);
			for (int i = 0; i < 16; i++)
				buf[off + i] ^= iv[i];
			memcpy(iv, c, 16);
		}
	}
}

/* CMAC (RFC 4493 §2.4) with the CBC chain starting at iv; iv becomes the MAC. */
static void t_cmac(const uint8_t key[16], uint8_t iv[16], const uint8_t *msg, size_t len)
{
	uint8_t l[16] = {0}, k1[16], k2[16], last[16] = {0};
	t_aes(key, 1, l, l);
	for (int i = 0; i < 16; i++)
		k1[i] = (uint8_t)(l[i] << 1 | (i < 15 ? l[i + 1] >> 7 : 0));
	if (l[0] & 0x80)
		k1[15] ^= 0x87;
	for (int i = 0; i < 16; i++)
		k2[i] = (uint8_t)(k1[i] << 1 | (i < 15 ? k1[i + 1] >> 7 : 0));
	if (k1[0] & 0x80)
		k2[15] ^= 0x87;
	const size_t n = len ? (len + 15) / 16 : 1;
	const size_t rest = len - 16 * (n - 1);
	memcpy(last, msg + 16 * (n - 1), rest);
	if (rest == 16) {
		for (int i = 0; i < 16; i++)
			last[i] ^= k1[i];
	} else {
		last[rest] = 0x80;
		for (int i = 0; i < 16; i++)
			last[i] ^= k2[i];
	}
	for (size_t b = 0; b < n; b++) {
		const uint8_t *blk = b + 1 < n ? msg + 16 * b : last;
		for (int i = 0; i < 16; i++)
			iv[i] ^= blk[i];
		t_aes(key, 1, iv, iv);
	}
}

/* The standard CMAC, by mbedTLS, as a second opinion on t_cmac. */
static void t_cmac_mbedtls(const uint8_t key[16], const uint8_t *msg, size_t len, uint8_t out[16])
{
	const mbedtls_cipher_info_t *info =
	        mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_ECB);
	assert_non_null(info);
	assert_int_equal(mbedtls_cipher_cmac(info, key, 128, msg, len, out), 0);
}

static uint32_t t_crc32(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
	}
	return crc; /* DESFire: no final complement */
}

static uint16_t t_crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0x6363;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (uint16_t)((crc >> 1) ^ 0x8408) : (uint16_t)(crc >> 1);
	}
	return crc;
}

static void t_des(const uint8_t key[16], int encrypt, uint8_t *block)
{
	mbedtls_des3_context ctx;
	mbedtls_des3_init(&ctx);
	if (encrypt)
		assert_int_equal(mbedtls_des3_set2key_enc(&ctx, key), 0);
	else
		assert_int_equal(mbedtls_des3_set2key_dec(&ctx, key), 0);
	assert_int_equal(mbedtls_des3_crypt_ecb(&ctx, block, block), 0);
	mbedtls_des3_free(&ctx);
}

static void rotl(const uint8_t *in, uint8_t *out, size_t n)
{
	memmove(out, in + 1, n - 1);
	out[n - 1] = in[0];
}

/* ---- fixture --------------------------------------------------------------------------- */

enum sm { SM_NONE, SM_EV1, SM_EV2 };
enum tmode { T_PLAIN, T_MAC, T_ENC };

struct tctx {
	char dir[64];
	char path[128];
	struct hil_desfire_card *card;
	struct hil_target tg;
	/* scripted randomness for the card: these bytes first, then a counter */
	uint8_t script[64];
	size_t script_len, script_pos;
	uint8_t counter;
	/* the reader's session */
	enum sm sm;
	uint8_t key_no;
	uint8_t ses[16], mac[16], iv[16], ti[4];
	uint16_t ctr;
};

static int scripted_random(void *ctx, uint8_t *buf, size_t len)
{
	struct tctx *t = ctx;
	for (size_t i = 0; i < len; i++)
		buf[i] = t->script_pos < t->script_len ? t->script[t->script_pos++] : ++t->counter;
	return 0;
}

static void script(struct tctx *t, const char *hex)
{
	t->script_len = unhex(hex, t->script);
	t->script_pos = 0;
}

static const uint8_t uid_real[7] = {0x04, 0x5A, 0x11, 0x22, 0x33, 0x44, 0x80};

static void open_card(struct tctx *t, const struct hil_desfire_config *cfg)
{
	assert_int_equal(hil_desfire_card_open(&t->card, t->path, cfg), 0);
	hil_desfire_card_set_random(t->card, scripted_random, t);
	t->tg = hil_desfire_card_target(t->card);
	t->tg.ops->activate(t->tg.ctx);
	t->sm = SM_NONE;
}

static void close_card(struct tctx *t)
{
	if (t->card)
		t->tg.ops->destroy(t->tg.ctx);
	t->card = NULL;
}

static int setup_with(void **state, int aes_picc, int random_id)
{
	struct tctx *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	strcpy(t->dir, "/tmp/test_hil_desfire.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/card.img", t->dir);
	struct hil_desfire_config cfg = {.random_id = random_id, .picc_key_aes = aes_picc};
	memcpy(cfg.uid, uid_real, 7);
	open_card(t, &cfg);
	*state = t;
	return 0;
}

static int setup_aes(void **state)
{
	return setup_with(state, 1, 0);
}

static int setup_factory(void **state)
{
	return setup_with(state, 0, 0);
}

static int setup_random_id(void **state)
{
	return setup_with(state, 1, 1);
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	close_card(t);
	unlink(t->path);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* ---- exchanges ------------------------------------------------------------------------- */

/* One native frame; returns the status, the data after it in resp. */
static uint8_t xchg(struct tctx *t, const uint8_t *frame, size_t len, uint8_t *resp, size_t *rlen)
{
	uint8_t out[HIL_APDU_MAX];
	const int n = t->tg.ops->transceive(t->tg.ctx, frame, len, out, sizeof(out));
	assert_true(n >= 1);
	assert_true(n <= 60); /* one DESFire frame: at most 59 data bytes and the status */
	*rlen = (size_t)n - 1;
	memcpy(resp, out + 1, *rlen);
	return out[0];
}

/* A command, then AF for as long as the card has more to say. */
static uint8_t xchg_all(struct tctx *t, const uint8_t *frame, size_t len, uint8_t *resp,
                        size_t *rlen)
{
	size_t n, total;
	uint8_t st = xchg(t, frame, len, resp, &total);
	while (st == 0xAF) {
		static const uint8_t af = 0xAF;
		st = xchg(t, &af, 1, resp + total, &n);
		total += n;
	}
	*rlen = total;
	return st;
}

static uint8_t status_of(struct tctx *t, const char *hex)
{
	uint8_t frame[300], resp[8192];
	size_t rlen;
	return xchg_all(t, frame, unhex(hex, frame), resp, &rlen);
}

/* A command secured as the session requires. cm: how the parameters after `hdr` bytes are
 * sent; rm: how the answer comes back; enc_len: the plain length of an enciphered answer. */
static uint8_t send_cmd(struct tctx *t, const uint8_t *frame, size_t len, enum tmode cm, size_t hdr,
                        enum tmode rm, size_t enc_len, uint8_t *resp, size_t *rlen)
{
	uint8_t buf[8192];
	size_t blen = len;
	memcpy(buf, frame, len);
	if (t->sm == SM_EV1) {
		if (cm == T_PLAIN) {
			t_cmac(t->ses, t->iv, frame, len);
		} else if (cm == T_MAC) {
			t_cmac(t->ses, t->iv, frame, len);
			memcpy(buf + len, t->iv, 8);
			blen += 8;
		} else {
			const uint32_t crc = t_crc32(frame, len);
			for (int i = 0; i < 4; i++)
				buf[blen++] = (uint8_t)(crc >> (8 * i));
			while ((blen - 1 - hdr) % 16)
				buf[blen++] = 0;
			t_cbc(t->ses, t->iv, 1, buf + 1 + hdr, blen - 1 - hdr);
		}
	} else if (t->sm == SM_EV2 && cm != T_PLAIN) {
		if (cm == T_ENC) {
			uint8_t iv[16] = {0xA5, 0x5A};
			memcpy(iv + 2, t->ti, 4);
			iv[6] = (uint8_t)t->ctr;
			iv[7] = (uint8_t)(t->ctr >> 8);
			t_aes(t->ses, 1, iv, iv);
			buf[blen++] = 0x80;
			while ((blen - 1 - hdr) % 16)
				buf[blen++] = 0;
			t_cbc(t->ses, iv, 1, buf + 1 + hdr, blen - 1 - hdr);
		}
		uint8_t m[8192], full[16];
		m[0] = buf[0];
		m[1] = (uint8_t)t->ctr;
		m[2] = (uint8_t)(t->ctr >> 8);
		memcpy(m + 3, t->ti, 4);
		memcpy(m + 7, buf + 1, blen - 1);
		t_cmac_mbedtls(t->mac, m, blen + 6, full);
		for (int i = 0; i < 8; i++)
			buf[blen++] = full[2 * i + 1];
	}
	size_t n;
	const uint8_t st = xchg_all(t, buf, blen, resp, &n);
	*rlen = n;
	if (st != 0x00)
		return st;
	if (t->sm == SM_EV1) {
		if (rm == T_ENC) {
			/* E(data || CRC32(data || 00) || 00..) */
			assert_int_equal(n % 16, 0);
			t_cbc(t->ses, t->iv, 0, resp, n);
			uint8_t chk[8192];
			memcpy(chk, resp, enc_len);
			chk[enc_len] = 0x00;
			const uint32_t crc = t_crc32(chk, enc_len + 1);
			for (int i = 0; i < 4; i++)
				assert_int_equal(resp[enc_len + i], (uint8_t)(crc >> (8 * i)));
			*rlen = enc_len;
		} else {
			assert_true(n >= 8);
			uint8_t chk[8192];
			memcpy(chk, resp, n - 8);
			chk[n - 8] = 0x00;
			t_cmac(t->ses, t->iv, chk, n - 7);
			assert_memory_equal(resp + n - 8, t->iv, 8);
			*rlen = n - 8;
		}
	} else if (t->sm == SM_EV2) {
		t->ctr++;
		if (rm != T_PLAIN) {
			assert_true(n >= 8);
			uint8_t m[8192], full[16];
			m[0] = 0x00;
			m[1] = (uint8_t)t->ctr;
			m[2] = (uint8_t)(t->ctr >> 8);
			memcpy(m + 3, t->ti, 4);
			memcpy(m + 7, resp, n - 8);
			t_cmac_mbedtls(t->mac, m, n - 1, full);
			for (int i = 0; i < 8; i++)
				assert_int_equal(resp[n - 8 + i], full[2 * i + 1]);
			*rlen = n - 8;
			if (rm == T_ENC && *rlen) {
				uint8_t iv[16] = {0x5A, 0xA5};
				memcpy(iv + 2, t->ti, 4);
				iv[6] = (uint8_t)t->ctr;
				iv[7] = (uint8_t)(t->ctr >> 8);
				t_aes(t->ses, 1, iv, iv);
				t_cbc(t->ses, iv, 0, resp, *rlen);
				size_t end = *rlen;
				while (end && resp[end - 1] == 0)
					end--;
				assert_true(end > 0 && resp[end - 1] == 0x80);
				*rlen = end - 1;
			}
		}
	}
	return st;
}

static uint8_t send_hex(struct tctx *t, const char *hex, enum tmode cm, size_t hdr, enum tmode rm,
                        size_t enc_len, uint8_t *resp, size_t *rlen)
{
	uint8_t frame[300];
	return send_cmd(t, frame, unhex(hex, frame), cm, hdr, rm, enc_len, resp, rlen);
}

/* Management command: plain with the session's MAC. */
static uint8_t mgmt(struct tctx *t, const char *hex, uint8_t *resp, size_t *rlen)
{
	return send_hex(t, hex, t->sm == SM_EV2 ? T_MAC : T_PLAIN, 0, T_MAC, 0, resp, rlen);
}

static uint8_t mgmt_status(struct tctx *t, const char *hex)
{
	uint8_t resp[8192];
	size_t n;
	return mgmt(t, hex, resp, &n);
}

/* ---- authentication, reader side ------------------------------------------------------- */

static const uint8_t zero_key[16];

static uint8_t auth_ev1(struct tctx *t, uint8_t key_no, const uint8_t key[16])
{
	uint8_t frame[40] = {0xAA, key_no}, resp[64], rnd_b[16], rnd_a[16], iv[16] = {0};
	size_t n;
	t->sm = SM_NONE;
	uint8_t st = xchg(t, frame, 2, resp, &n);
	if (st != 0xAF)
		return st;
	assert_int_equal(n, 16);
	memcpy(rnd_b, resp, 16);
	t_cbc(key, iv, 0, rnd_b, 16);
	for (int i = 0; i < 16; i++)
		rnd_a[i] = (uint8_t)(0x30 + i * 7);
	frame[0] = 0xAF;
	memcpy(frame + 1, rnd_a, 16);
	rotl(rnd_b, frame + 17, 16);
	t_cbc(key, iv, 1, frame + 1, 32);
	st = xchg(t, frame, 33, resp, &n);
	if (st != 0x00)
		return st;
	assert_int_equal(n, 16);
	t_cbc(key, iv, 0, resp, 16);
	uint8_t want[16];
	rotl(rnd_a, want, 16);
	assert_memory_equal(resp, want, 16);
	memcpy(t->ses, rnd_a, 4);
	memcpy(t->ses + 4, rnd_b, 4);
	memcpy(t->ses + 8, rnd_a + 12, 4);
	memcpy(t->ses + 12, rnd_b + 12, 4);
	memset(t->iv, 0, 16);
	t->sm = SM_EV1;
	t->key_no = key_no;
	return st;
}

static void ev2_session_keys(const uint8_t key[16], const uint8_t a[16], const uint8_t b[16],
                             uint8_t enc[16], uint8_t mac[16])
{
	uint8_t sv[32] = {0xA5, 0x5A, 0x00, 0x01, 0x00, 0x80};
	memcpy(sv + 6, a, 2);
	for (int i = 0; i < 6; i++)
		sv[8 + i] = a[2 + i] ^ b[i];
	memcpy(sv + 14, b + 6, 10);
	memcpy(sv + 24, a + 8, 8);
	t_cmac_mbedtls(key, sv, 32, enc);
	sv[0] = 0x5A;
	sv[1] = 0xA5;
	t_cmac_mbedtls(key, sv, 32, mac);
}

static uint8_t auth_ev2(struct tctx *t, uint8_t key_no, const uint8_t key[16], int first)
{
	uint8_t frame[40] = {first ? 0x71 : 0x77, key_no, 0x00}, resp[64], rnd_b[16], rnd_a[16];
	uint8_t iv[16] = {0};
	size_t n;
	uint8_t st = xchg(t, frame, first ? 3 : 2, resp, &n);
	if (st != 0xAF)
		return st;
	assert_int_equal(n, 16);
	memcpy(rnd_b, resp, 16);
	t_cbc(key, iv, 0, rnd_b, 16);
	for (int i = 0; i < 16; i++)
		rnd_a[i] = (uint8_t)(0x91 ^ (i * 13));
	frame[0] = 0xAF;
	memcpy(frame + 1, rnd_a, 16);
	rotl(rnd_b, frame + 17, 16);
	memset(iv, 0, 16);
	t_cbc(key, iv, 1, frame + 1, 32);
	st = xchg(t, frame, 33, resp, &n);
	if (st != 0x00)
		return st;
	assert_int_equal(n, first ? 32 : 16);
	memset(iv, 0, 16);
	t_cbc(key, iv, 0, resp, n);
	uint8_t want[16];
	rotl(rnd_a, want, 16);
	assert_memory_equal(resp + (first ? 4 : 0), want, 16);
	if (first) {
		memcpy(t->ti, resp, 4);
		t->ctr = 0;
	}
	ev2_session_keys(key, rnd_a, rnd_b, t->ses, t->mac);
	t->sm = SM_EV2;
	t->key_no = key_no;
	return st;
}

/* ---- crypto against published vectors -------------------------------------------------- */

static void test_cmac_rfc4493(void **state)
{
	(void)state;
	uint8_t key[16], msg[64], want[16], mac[16];
	unhex(rfc4493_key, key);
	unhex(rfc4493_msg, msg);
	for (size_t i = 0; i < sizeof(rfc4493) / sizeof(rfc4493[0]); i++) {
		unhex(rfc4493[i].mac, want);
		memset(mac, 0, 16);
		assert_int_equal(hil_df_aes_cmac(key, mac, msg, rfc4493[i].len), 0);
		assert_memory_equal(mac, want, 16);
		/* the test's own CMAC and mbedTLS's agree on the same examples */
		memset(mac, 0, 16);
		t_cmac(key, mac, msg, rfc4493[i].len);
		assert_memory_equal(mac, want, 16);
		t_cmac_mbedtls(key, msg, rfc4493[i].len, mac);
		assert_memory_equal(mac, want, 16);
	}
}

static void test_cbc_sp800_38a(void **state)
{
	(void)state;
	uint8_t key[16], iv[16], buf[64], want[64];
	unhex(rfc4493_key, key);
	unhex(sp800_38a_iv, iv);
	unhex(rfc4493_msg, buf);
	unhex(sp800_38a_ct, want);
	assert_int_equal(hil_df_aes_cbc_encrypt(key, iv, buf, buf, 64), 0);
	assert_memory_equal(buf, want, 64);
	assert_memory_equal(iv, want + 48, 16); /* the IV moves on to the last block */
	unhex(sp800_38a_iv, iv);
	assert_int_equal(hil_df_aes_cbc_decrypt(key, iv, buf, buf, 64), 0);
	unhex(rfc4493_msg, want);
	assert_memory_equal(buf, want, 64);
}

static void test_crc_check_values(void **state)
{
	(void)state;
	const uint8_t check[] = "123456789";
	/* CRC-32 check value CBF43926, without the final complement */
	assert_int_equal(hil_df_crc32(check, 9), 0x340BC6D9u);
	assert_int_equal(t_crc32(check, 9), 0x340BC6D9u);
	/* CRC-16/ISO-IEC-14443-3-A check value */
	assert_int_equal(hil_df_crc16(check, 9), 0xBF05);
	assert_int_equal(t_crc16(check, 9), 0xBF05);
	/* AN12196 Table 25 step 7: CRC32 of the new key F3847D62..B966 is 789DFADC */
	uint8_t key[16], crc[4];
	unhex("F3847D627727ED3BC9C4CC050489B966", key);
	hil_df_crc32_le(key, 16, crc);
	assert_hex(crc, 4, "789DFADC");
}

static void test_ev2_session_keys_an12196(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ev2_handshakes) / sizeof(ev2_handshakes[0]); i++) {
		const struct ev2_handshake *h = &ev2_handshakes[i];
		uint8_t a[16], b[16], sv[32], enc[16], mac[16];
		print_message("%s\n", h->source);
		unhex(h->rnd_a, a);
		unhex(h->rnd_b, b);
		hil_df_ev2_session_vector(0, a, b, sv);
		assert_hex(sv, 32, h->sv1);
		hil_df_ev2_session_vector(1, a, b, sv);
		assert_int_equal(sv[0], 0x5A);
		assert_int_equal(sv[1], 0xA5);
		assert_int_equal(hil_df_ev2_session_keys(zero_key, a, b, enc, mac), 0);
		assert_hex(enc, 16, h->enc);
		assert_hex(mac, 16, h->mac);
		/* and the reader side of this file derives the same keys */
		ev2_session_keys(zero_key, a, b, enc, mac);
		assert_hex(enc, 16, h->enc);
		assert_hex(mac, 16, h->mac);
	}
}

static void test_ev2_full_commands_published(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ev2_commands) / sizeof(ev2_commands[0]); i++) {
		const struct ev2_full_command *v = &ev2_commands[i];
		uint8_t enc[16], mac[16], ti[4], hdr[8], buf[256], iv[16], mact[8], msg[300];
		print_message("%s\n", v->source);
		unhex(v->enc, enc);
		unhex(v->mac, mac);
		unhex(v->ti, ti);
		const size_t hlen = unhex(v->header, hdr);
		size_t n = unhex(v->plain, buf);
		assert_int_equal(hil_df_ev2_iv(enc, 0, ti, v->ctr, iv), 0);
		assert_hex(iv, 16, v->iv);
		buf[n++] = 0x80; /* ISO/IEC 9797-1 method 2, a whole block if need be */
		while (n % 16)
			buf[n++] = 0x00;
		assert_int_equal(hil_df_aes_cbc_encrypt(enc, iv, buf, buf, n), 0);
		assert_hex(buf, n, v->cipher);
		memcpy(msg, hdr, hlen);
		memcpy(msg + hlen, buf, n);
		assert_int_equal(hil_df_ev2_mact(mac, v->cmd, v->ctr, ti, msg, hlen + n, mact), 0);
		assert_hex(mact, 8, v->mact);
		if (v->resp_mact) {
			/* the answer: RC 00 || CmdCtr+1 || TI, no data */
			assert_int_equal(hil_df_ev2_mact(mac, 0x00, (uint16_t)(v->ctr + 1), ti,
			                                 NULL, 0, mact),
			                 0);
			assert_hex(mact, 8, v->resp_mact);
		}
	}
	/* Table 26 step 15 prints the untruncated CMAC: the odd bytes are kept */
	uint8_t full[16], mact[8];
	unhex("B7A60161F202EC3489BD4BEDEF64BB32", full);
	hil_df_ev2_truncate(full, mact);
	assert_hex(mact, 8, "A6610234BDED6432");
}

static void test_ev2_get_card_uid_table28(void **state)
{
	(void)state;
	uint8_t enc[16], mac[16], ti[4], mact[8], resp[24], iv[16], full[16], m[32];
	unhex(t28_enc, enc);
	unhex(t28_mac, mac);
	unhex(t28_ti, ti);
	assert_int_equal(hil_df_ev2_mact(mac, 0x51, 0, ti, NULL, 0, mact), 0);
	assert_hex(mact, 8, t28_cmd_mact);
	unhex(t28_resp, resp);
	/* the full response CMAC: 00 || 0100 || TI || E(RespData) */
	m[0] = 0x00;
	m[1] = 0x01;
	m[2] = 0x00;
	memcpy(m + 3, ti, 4);
	memcpy(m + 7, resp, 16);
	memset(full, 0, 16);
	assert_int_equal(hil_df_aes_cmac(mac, full, m, 23), 0);
	assert_hex(full, 16, t28_resp_cmac);
	assert_int_equal(hil_df_ev2_mact(mac, 0x00, 1, ti, resp, 16, mact), 0);
	assert_memory_equal(mact, resp + 16, 8);
	assert_int_equal(hil_df_ev2_iv(enc, 1, ti, 1, iv), 0);
	assert_hex(iv, 16, t28_iv_resp);
	assert_int_equal(hil_df_aes_cbc_decrypt(enc, iv, resp, resp, 16), 0);
	assert_hex(resp, 7, t28_uid);
	assert_hex(resp + 7, 9, "800000000000000000");
}

/* ---- the card: EV2 handshakes and ChangeKey replayed from the documents ---------------- */

static void replay_handshake(struct tctx *t, const struct ev2_handshake *h, int first)
{
	uint8_t frame[40], resp[64], want[64];
	size_t n;
	script(t, h->rnd_b);
	frame[0] = first ? 0x71 : 0x77;
	frame[1] = h->key_no;
	frame[2] = 0x00; /* LenCap */
	assert_int_equal(xchg(t, frame, first ? 3 : 2, resp, &n), 0xAF);
	assert_hex(resp, n, h->enc_rnd_b);
	if (first)
		script(t, h->ti);
	frame[0] = 0xAF;
	assert_int_equal(unhex(h->part2, frame + 1), 32);
	assert_int_equal(xchg(t, frame, 33, resp, &n), 0x00);
	if (h->part2_resp) {
		assert_hex(resp, n, h->part2_resp);
	} else {
		/* NonFirst answers E(Kx, RndA') only; the document prints no value for it */
		uint8_t a[16], iv[16] = {0};
		unhex(h->rnd_a, a);
		rotl(a, want, 16);
		assert_int_equal(n, 16);
		t_cbc(zero_key, iv, 0, resp, 16);
		assert_memory_equal(resp, want, 16);
	}
	/* from now on the reader of this file uses the published session keys */
	unhex(h->enc, t->ses);
	unhex(h->mac, t->mac);
	if (first) {
		unhex(h->ti, t->ti);
		t->ctr = 0;
	}
	t->sm = SM_EV2;
	t->key_no = h->key_no;
}

static void test_card_ev2_first_table14(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[64];
	size_t n;
	replay_handshake(t, &ev2_handshakes[0], 1);
	/* a MACed command under the published keys */
	assert_int_equal(mgmt(t, "45", resp, &n), 0x00);
	assert_hex(resp, n, "0F81");
	assert_int_equal(t->ctr, 1);
	assert_int_equal(mgmt(t, "6E", resp, &n), 0x00);
	assert_hex(resp, n, "001F00");
	/* GetCardUID in CommMode.Full */
	assert_int_equal(send_hex(t, "51", T_MAC, 0, T_ENC, 0, resp, &n), 0x00);
	assert_memory_equal(resp, uid_real, 7);
	assert_int_equal(n, 7);
}

static void test_card_changekey_tables_19_23_25_26(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[64];
	size_t n;
	/* an application of 4 AES keys (all zero), key 0 changes the others, all changeable;
	 * the factory PICC settings (0F) let anyone create it */
	assert_int_equal(status_of(t, "CA 030201 0F 84"), 0x00);
	assert_int_equal(status_of(t, "5A 030201"), 0x00);
	replay_handshake(t, &ev2_handshakes[1], 1); /* Table 19: key 3, TI 7614281A */
	replay_handshake(t, &ev2_handshakes[2], 0); /* Table 23: NonFirst with key 0 */
	assert_int_equal(t->ctr, 0);
	/* two MACed commands bring CmdCtr to 0002, where Table 25 starts */
	assert_int_equal(mgmt(t, "6402", resp, &n), 0x00);
	assert_hex(resp, n, "00");
	assert_int_equal(mgmt(t, "45", resp, &n), 0x00);
	assert_int_equal(t->ctr, 2);
	/* Table 25 step 17: the C-APDU, byte for byte, and step 20: the R-APDU */
	uint8_t apdu[64], out[64];
	size_t len = unhex("90C4000029"
	                   "02"
	                   "2CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC7"
	                   "5D0CE20BCD1D06E6"
	                   "00",
	                   apdu);
	int got = t->tg.ops->transceive(t->tg.ctx, apdu, len, out, sizeof(out));
	assert_hex(out, (size_t)got, "203BB55D1089D5879100");
	/* Table 26 step 17 at CmdCtr 0003: key 0 changed by itself, answered 9100 only */
	len = unhex("90C4000029"
	            "00"
	            "C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FD"
	            "A6610234BDED6432"
	            "00",
	            apdu);
	got = t->tg.ops->transceive(t->tg.ctx, apdu, len, out, sizeof(out));
	assert_hex(out, (size_t)got, "9100");
	/* the session ended with its key; the new keys and versions are in place */
	t->sm = SM_NONE;
	uint8_t k0[16], k2[16];
	unhex("5004BF991F408672B1EF00F08F9E8647", k0);
	unhex("F3847D627727ED3BC9C4CC050489B966", k2);
	assert_int_equal(status_of(t, "6402"), 0x00);
	assert_int_equal(xchg(t, (const uint8_t *)"\x64\x00", 2, resp, &n), 0x00);
	assert_hex(resp, n, "01");
	assert_int_equal(auth_ev2(t, 0, k0, 1), 0x00);
	assert_int_equal(auth_ev2(t, 2, k2, 1), 0x00);
	assert_int_equal(auth_ev2(t, 2, zero_key, 1), 0xAE);
}

/* ---- factory state and framing --------------------------------------------------------- */

static void test_factory_state(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[128];
	size_t n;
	struct hil_target_info info;
	t->tg.ops->info(t->tg.ctx, &info);
	assert_hex(info.atqa, 2, "0344");
	assert_int_equal(info.sak, 0x20);
	assert_int_equal(info.uid_len, 7);
	assert_memory_equal(info.uid, uid_real, 7);
	assert_hex(info.ats, info.ats_len, "067577810280");

	/* GetVersion: three frames, 7 + 7 + 14 bytes */
	assert_int_equal(xchg(t, (const uint8_t *)"\x60", 1, resp, &n), 0xAF);
	assert_hex(resp, n, "04010112001A05");
	assert_int_equal(xchg(t, (const uint8_t *)"\xAF", 1, resp, &n), 0xAF);
	assert_hex(resp, n, "04010102011A05");
	assert_int_equal(xchg(t, (const uint8_t *)"\xAF", 1, resp, &n), 0x00);
	assert_int_equal(n, 14);
	assert_memory_equal(resp, uid_real, 7);

	assert_int_equal(xchg(t, (const uint8_t *)"\x45", 1, resp, &n), 0x00);
	assert_hex(resp, n, "0F01"); /* settings 0F, one DES key */
	assert_int_equal(xchg(t, (const uint8_t *)"\x6A", 1, resp, &n), 0x00);
	assert_int_equal(n, 0);
	assert_int_equal(xchg(t, (const uint8_t *)"\x6E", 1, resp, &n), 0x00);
	assert_hex(resp, n, "001F00"); /* 7936 bytes */
	assert_int_equal(xchg(t, (const uint8_t *)"\x64\x00", 2, resp, &n), 0x00);
	assert_hex(resp, n, "00");
	/* GetCardUID needs an authentication */
	assert_int_equal(status_of(t, "51"), 0xAE);
	/* the factory key is DES: AES authentication is refused */
	assert_int_equal(status_of(t, "AA00"), 0xAE);
	assert_int_equal(status_of(t, "AA01"), 0x40);
	/* and the image exists from the start */
	struct stat st;
	assert_int_equal(stat(t->path, &st), 0);
}

static void test_iso_wrapping(void **state)
{
	struct tctx *t = *state;
	uint8_t out[HIL_APDU_MAX], in[64];
	int n;
	size_t len = unhex("9060000000", in);
	n = t->tg.ops->transceive(t->tg.ctx, in, len, out, sizeof(out));
	assert_hex(out, (size_t)n, "04010112001A0591AF");
	len = unhex("90AF000000", in);
	n = t->tg.ops->transceive(t->tg.ctx, in, len, out, sizeof(out));
	assert_hex(out, (size_t)n, "04010102011A0591AF");
	n = t->tg.ops->transceive(t->tg.ctx, in, len, out, sizeof(out));
	assert_int_equal(n, 16);
	assert_hex(out + 14, 2, "9100");
	/* with data and Le, then without Le */
	len = unhex("906400000100 00", in);
	n = t->tg.ops->transceive(t->tg.ctx, in, len, out, sizeof(out));
	assert_hex(out, (size_t)n, "009100");
	len = unhex("9064000001 00", in);
	n = t->tg.ops->transceive(t->tg.ctx, in, len, out, sizeof(out));
	assert_hex(out, (size_t)n, "009100");
	/* errors of the wrapping itself are ISO status words */
	len = unhex("9064000003 00 00", in);
	n = t->tg.ops->transceive(t->tg.ctx, in, len, out, sizeof(out));
	assert_hex(out, (size_t)n, "6700");
	len = unhex("9064010001 00 00", in);
	n = t->tg.ops->transceive(t->tg.ctx, in, len, out, sizeof(out));
	assert_hex(out, (size_t)n, "6A86");
	/* DESFire errors come as 91 xx */
	len = unhex("900B000000", in);
	n = t->tg.ops->transceive(t->tg.ctx, in, len, out, sizeof(out));
	assert_hex(out, (size_t)n, "911C");
}

static void test_chaining_errors(void **state)
{
	struct tctx *t = *state;
	/* AF with nothing going on */
	assert_int_equal(status_of(t, "AF"), 0x1C);
	/* GetVersion interrupted by another command */
	uint8_t resp[64];
	size_t n;
	assert_int_equal(xchg(t, (const uint8_t *)"\x60", 1, resp, &n), 0xAF);
	assert_int_equal(xchg(t, (const uint8_t *)"\x6A", 1, resp, &n), 0xCA);
	assert_int_equal(xchg(t, (const uint8_t *)"\xAF", 1, resp, &n), 0x1C);
	/* an authentication interrupted by another authentication simply restarts */
	assert_int_equal(xchg(t, (const uint8_t *)"\xAA\x00", 2, resp, &n), 0xAF);
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	/* unknown command, empty frame */
	assert_int_equal(status_of(t, "0B"), 0x1C);
	uint8_t out[8];
	assert_int_equal(t->tg.ops->transceive(t->tg.ctx, out, 0, out, sizeof(out)), 1);
	assert_int_equal(out[0], 0x7E);
}

/* ---- legacy DES authentication of a factory card ---------------------------------------- */

static void test_factory_des_to_aes(void **state)
{
	struct tctx *t = *state;
	uint8_t frame[64], resp[64], rnd_b[8], rnd_a[8], ses[16], prev[8] = {0};
	size_t n;
	assert_int_equal(xchg(t, (const uint8_t *)"\x0A\x00", 2, resp, &n), 0xAF);
	assert_int_equal(n, 8);
	memcpy(rnd_b, resp, 8);
	t_des(zero_key, 0, rnd_b);
	for (int i = 0; i < 8; i++)
		rnd_a[i] = (uint8_t)(0xA0 + i);
	/* the reader's legacy "send mode": c = D(p XOR previous c) */
	frame[0] = 0xAF;
	memcpy(frame + 1, rnd_a, 8);
	rotl(rnd_b, frame + 9, 8);
	for (int b = 0; b < 2; b++) {
		for (int i = 0; i < 8; i++)
			frame[1 + 8 * b + i] ^= prev[i];
		t_des(zero_key, 0, frame + 1 + 8 * b);
		memcpy(prev, frame + 1 + 8 * b, 8);
	}
	assert_int_equal(xchg(t, frame, 17, resp, &n), 0x00);
	t_des(zero_key, 0, resp);
	uint8_t want[8];
	rotl(rnd_a, want, 8);
	assert_memory_equal(resp, want, 8);
	/* single-DES session key: RndA[0..3] || RndB[0..3], twice */
	memcpy(ses, rnd_a, 4);
	memcpy(ses + 4, rnd_b, 4);
	memcpy(ses + 8, ses, 8);

	/* plain commands under a legacy session */
	assert_int_equal(status_of(t, "FC"), 0x00);

	/* ChangeKey to AES: C4 80 || send-mode(new key || version || CRC16 || 00..) */
	assert_int_equal(auth_ev1(t, 0, zero_key), 0xAE); /* still DES */
	t->sm = SM_NONE;
	/* authenticate again (FormatPICC ended the session) */
	assert_int_equal(xchg(t, (const uint8_t *)"\x0A\x00", 2, resp, &n), 0xAF);
	memcpy(rnd_b, resp, 8);
	t_des(zero_key, 0, rnd_b);
	memset(prev, 0, 8);
	memcpy(frame + 1, rnd_a, 8);
	rotl(rnd_b, frame + 9, 8);
	for (int b = 0; b < 2; b++) {
		for (int i = 0; i < 8; i++)
			frame[1 + 8 * b + i] ^= prev[i];
		t_des(zero_key, 0, frame + 1 + 8 * b);
		memcpy(prev, frame + 1 + 8 * b, 8);
	}
	assert_int_equal(xchg(t, frame, 17, resp, &n), 0x00);
	memcpy(ses, rnd_a, 4);
	memcpy(ses + 4, rnd_b, 4);
	memcpy(ses + 8, ses, 8);

	uint8_t new_key[16];
	for (int i = 0; i < 16; i++)
		new_key[i] = (uint8_t)(0x10 * i + 1);
	frame[0] = 0xC4;
	frame[1] = 0x80;
	memcpy(frame + 2, new_key, 16);
	frame[18] = 0x05; /* key version */
	const uint16_t crc = t_crc16(frame + 2, 17);
	frame[19] = (uint8_t)crc;
	frame[20] = (uint8_t)(crc >> 8);
	memset(frame + 21, 0, 5);
	memset(prev, 0, 8);
	for (int b = 0; b < 3; b++) {
		for (int i = 0; i < 8; i++)
			frame[2 + 8 * b + i] ^= prev[i];
		t_des(ses, 0, frame + 2 + 8 * b);
		memcpy(prev, frame + 2 + 8 * b, 8);
	}
	assert_int_equal(xchg(t, frame, 26, resp, &n), 0x00);
	assert_int_equal(n, 0); /* no MAC: the session ended with its key */
	t->sm = SM_NONE;
	assert_int_equal(auth_ev1(t, 0, new_key), 0x00);
	assert_int_equal(mgmt(t, "45", resp, &n), 0x00);
	assert_hex(resp, n, "0F81");
	assert_int_equal(mgmt(t, "6400", resp, &n), 0x00);
	assert_hex(resp, n, "05");
}

/* ---- EV1 AES: applications, keys, files ------------------------------------------------ */

static const uint8_t k1[16] = {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4};
static const uint8_t k2[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

/* Application 010203: keys 0..2, key 0 changes keys; files
 *   1 std 64 bytes enciphered, R=2 W=1 RW=1 C=0
 *   2 std 32 bytes MACed,      R=2 W=1 RW=1 C=0
 *   3 std 16 bytes plain,      R=E W=1 RW=F C=0
 *   4 value enciphered [-10, 100] = 20, R=2 W=1 RW=1
 *   5 value plain [0, 10] = 0, R=E W=F RW=F, limited credit enabled
 *   6 std 8 bytes, never (F) for everything but change */
static void personalise(struct tctx *t)
{
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	assert_int_equal(mgmt_status(t, "CA 030201 0B 83"), 0x00);
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 030201"), 0x00);
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	uint8_t frame[64], resp[64];
	size_t n;
	/* ChangeKey 1 and 2 (other key): (new ^ old) || ver || CRC32(cmd..) || CRC32(new) */
	for (int k = 1; k <= 2; k++) {
		const uint8_t *key = k == 1 ? k1 : k2;
		frame[0] = 0xC4;
		frame[1] = (uint8_t)k;
		memcpy(frame + 2, key, 16);
		frame[18] = (uint8_t)(0x10 + k);
		uint32_t crc = t_crc32(frame, 19);
		for (int i = 0; i < 4; i++)
			frame[19 + i] = (uint8_t)(crc >> (8 * i));
		crc = t_crc32(key, 16);
		for (int i = 0; i < 4; i++)
			frame[23 + i] = (uint8_t)(crc >> (8 * i));
		memset(frame + 27, 0, 7);
		t_cbc(t->ses, t->iv, 1, frame + 2, 32);
		uint8_t st = xchg(t, frame, 34, resp, &n);
		assert_int_equal(st, 0x00);
		assert_int_equal(n, 8);
		uint8_t s = 0x00;
		t_cmac(t->ses, t->iv, &s, 1);
		assert_memory_equal(resp, t->iv, 8);
	}
	assert_int_equal(mgmt_status(t, "CD 01 03 1021 400000"), 0x00);
	assert_int_equal(mgmt_status(t, "CD 02 01 1021 200000"), 0x00);
	assert_int_equal(mgmt_status(t, "CD 03 00 F0E1 100000"), 0x00);
	assert_int_equal(mgmt_status(t, "CC 04 03 1021 F6FFFFFF 64000000 14000000 00"), 0x00);
	assert_int_equal(mgmt_status(t, "CC 05 00 F0EF 00000000 0A000000 00000000 01"), 0x00);
	assert_int_equal(mgmt_status(t, "CD 06 00 F0FF 080000"), 0x00);
}

static void test_ev1_personalise_and_use(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[8192], data[64];
	size_t n;
	personalise(t);
	assert_int_equal(mgmt(t, "6F", resp, &n), 0x00);
	assert_hex(resp, n, "010203040506");
	assert_int_equal(mgmt(t, "F5 04", resp, &n), 0x00);
	assert_hex(resp, n, "0203 1021 F6FFFFFF 64000000 00000000 00");
	assert_int_equal(mgmt(t, "F5 01", resp, &n), 0x00);
	assert_hex(resp, n, "0003 1021 400000");
	assert_int_equal(mgmt(t, "45", resp, &n), 0x00);
	assert_hex(resp, n, "0B83");
	/* GetVersion: one CMAC over the three frames */
	assert_int_equal(mgmt(t, "60", resp, &n), 0x00);
	assert_int_equal(n, 28);
	assert_memory_equal(resp + 14, uid_real, 7);
	assert_int_equal(mgmt(t, "6401", resp, &n), 0x00);
	assert_hex(resp, n, "11");
	/* files of 64, 32, 16, value, value, 8 bytes: 7 blocks of 32 */
	assert_int_equal(mgmt(t, "6E", resp, &n), 0x00);
	assert_hex(resp, n, "201E00");

	/* enciphered write by key 1 (W), enciphered read by key 2 (R) */
	assert_int_equal(auth_ev1(t, 1, k1), 0x00);
	for (int i = 0; i < 64; i++)
		data[i] = (uint8_t)(i * 3 + 1);
	uint8_t frame[128] = {0x3D, 0x01, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00};
	memcpy(frame + 8, data, 64);
	assert_int_equal(send_cmd(t, frame, 72, T_ENC, 7, T_MAC, 0, resp, &n), 0x00);
	/* MACed write */
	frame[1] = 0x02;
	frame[5] = 0x20;
	assert_int_equal(send_cmd(t, frame, 40, T_MAC, 7, T_MAC, 0, resp, &n), 0x00);
	/* plain file, written with key 1 */
	frame[1] = 0x03;
	frame[5] = 0x10;
	assert_int_equal(send_cmd(t, frame, 24, T_PLAIN, 7, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(auth_ev1(t, 2, k2), 0x00);
	assert_int_equal(send_hex(t, "BD 01 000000 000000", T_PLAIN, 7, T_ENC, 64, resp, &n), 0x00);
	assert_memory_equal(resp, data, 64);
	assert_int_equal(send_hex(t, "BD 01 050000 0A0000", T_PLAIN, 7, T_ENC, 10, resp, &n), 0x00);
	assert_memory_equal(resp, data + 5, 10);
	assert_int_equal(send_hex(t, "BD 02 000000 200000", T_PLAIN, 7, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(n, 32);
	assert_memory_equal(resp, data, 32);
	/* free read of file 3: plain, still CMACed in an EV1 session */
	assert_int_equal(send_hex(t, "BD 03 000000 000000", T_PLAIN, 7, T_MAC, 0, resp, &n), 0x00);
	assert_memory_equal(resp, data, 16);
	/* GetCardUID: enciphered */
	assert_int_equal(send_hex(t, "51", T_PLAIN, 0, T_ENC, 7, resp, &n), 0x00);
	assert_memory_equal(resp, uid_real, 7);
	/* a wrong CMAC on a MACed command: integrity error, session over */
	assert_int_equal(auth_ev1(t, 1, k1), 0x00);
	uint8_t bad[] = {0x3D, 0x02, 0, 0, 0, 1, 0, 0, 0x55, 1, 2, 3, 4, 5, 6, 7, 8};
	size_t bl;
	assert_int_equal(xchg(t, bad, sizeof(bad), resp, &bl), 0x1E);
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "BD 02 000000 010000"), 0xAE);
}

static void test_access_refusals(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[256];
	size_t n;
	personalise(t);
	/* not authenticated */
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 030201"), 0x00);
	assert_int_equal(status_of(t, "BD 01 000000 010000"), 0xAE);
	assert_int_equal(status_of(t, "6C 04"), 0xAE);
	assert_int_equal(status_of(t, "6F"), 0x00);                   /* 0B: free listing */
	assert_int_equal(status_of(t, "CD 07 00 EEEE 100000"), 0xAE); /* no free create */
	assert_int_equal(status_of(t, "BD 03 000000 010000"), 0x00);  /* read free */
	assert_int_equal(status_of(t, "3D 03 000000 010000 00"), 0xAE);
	assert_int_equal(status_of(t, "BD 06 000000 010000"), 0x9D); /* never */
	assert_int_equal(status_of(t, "6C 05"), 0x00);
	assert_int_equal(status_of(t, "0C 05 01000000"), 0x9D); /* credit: RW only, never */
	assert_int_equal(status_of(t, "DC 05 01000000"), 0xBE); /* debit is free, limit 0 */

	/* authenticated with the read key: a right naming another key is AUTHENTICATION_ERROR,
	 * as NXP's NT4H2421Gx lists for ReadData/WriteData (not PERMISSION_DENIED, which is
	 * for rights set to "never"), and the error ends the session */
	assert_int_equal(auth_ev1(t, 2, k2), 0x00);
	assert_int_equal(send_hex(t, "3D 01 000000 010000 00", T_PLAIN, 7, T_MAC, 0, resp, &n),
	                 0xAE); /* write needs key 1 */
	t->sm = SM_NONE;
	assert_int_equal(auth_ev1(t, 2, k2), 0x00);
	assert_int_equal(send_hex(t, "0C 04 01000000", T_PLAIN, 1, T_MAC, 0, resp, &n), 0xAE);
	t->sm = SM_NONE;
	assert_int_equal(auth_ev1(t, 2, k2), 0x00);
	assert_int_equal(send_hex(t, "0C 05 01000000", T_PLAIN, 1, T_MAC, 0, resp, &n),
	                 0x9D); /* credit of file 5: its read&write right is "never" */
	assert_int_equal(mgmt_status(t, "CD 07 00 EEEE 100000"), 0x9D); /* master key only */
	assert_int_equal(mgmt_status(t, "54 0F"), 0x7E); /* the settings must come enciphered */
	assert_int_equal(auth_ev1(t, 2, k2), 0x00);
	assert_int_equal(send_hex(t, "54 0F", T_ENC, 0, T_MAC, 0, resp, &n), 0x9D);
	assert_int_equal(auth_ev1(t, 2, k2), 0x00);
	/* ChangeKey of key 1 by key 2: the application says key 0 changes keys */
	uint8_t frame[40] = {0xC4, 0x01};
	assert_int_equal(send_cmd(t, frame, 34, T_PLAIN, 0, T_MAC, 0, resp, &n), 0x9D);
	/* the refusals kept the session and its IV in step */
	assert_int_equal(send_hex(t, "BD 01 000000 040000", T_PLAIN, 7, T_ENC, 4, resp, &n), 0x00);

	/* the master key */
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	assert_int_equal(mgmt_status(t, "DF 09"), 0xF0);
	assert_int_equal(mgmt_status(t, "CD 01 00 EEEE 100000"), 0xDE);
	assert_int_equal(mgmt_status(t, "CD 20 00 EEEE 100000"), 0x9E);
	assert_int_equal(mgmt_status(t, "CD 07 00 EEEE 001F00"), 0x0E); /* 7936 > free */
	assert_int_equal(mgmt_status(t, "6403"), 0x40);
	/* without free listing, listing needs the master key */
	assert_int_equal(send_hex(t, "54 09", T_ENC, 0, T_MAC, 0, resp, &n), 0x00);
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 030201"), 0x00); /* ends the session */
	assert_int_equal(status_of(t, "6F"), 0xAE);
	assert_int_equal(status_of(t, "45"), 0xAE);
	assert_int_equal(status_of(t, "F5 01"), 0xAE);
	assert_int_equal(auth_ev1(t, 1, k1), 0x00);
	assert_int_equal(mgmt_status(t, "6F"), 0x9D);
	/* frozen configuration, master key not changeable */
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	assert_int_equal(send_hex(t, "54 02", T_ENC, 0, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(mgmt(t, "45", resp, &n), 0x00);
	assert_hex(resp, n, "0283");
	assert_int_equal(send_hex(t, "54 0F", T_ENC, 0, T_MAC, 0, resp, &n), 0x9D);
	frame[1] = 0x00;
	assert_int_equal(send_cmd(t, frame, 34, T_PLAIN, 0, T_MAC, 0, resp, &n), 0x9D);

	/* PICC level */
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 000000"), 0x00);
	assert_int_equal(status_of(t, "5A 999999"), 0xA0);
	assert_int_equal(status_of(t, "DA 999999"), 0xA0);
	assert_int_equal(status_of(t, "DA 030201"), 0xAE);
	assert_int_equal(status_of(t, "FC"), 0xAE);
	assert_int_equal(status_of(t, "CA 030201 0F 81"), 0xDE);
	assert_int_equal(status_of(t, "CA 040201 0F C1"), 0x9E); /* crypto bits 11: none */
	assert_int_equal(status_of(t, "CA 040201 0F 8F"), 0x9E); /* 15 keys */
	assert_int_equal(status_of(t, "CA 0402"), 0x7E);
	assert_int_equal(status_of(t, "BD 01 000000 010000"), 0x9D); /* no file at PICC level */
	assert_int_equal(status_of(t, "64 01"), 0x40);
	/* PICC settings without free create: CreateApplication needs the master key */
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	assert_int_equal(send_hex(t, "54 09", T_ENC, 0, T_MAC, 0, resp, &n), 0x00);
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 000000"), 0x00);
	assert_int_equal(status_of(t, "CA 040201 0F 81"), 0xAE);
	assert_int_equal(status_of(t, "6A"), 0xAE);
	/* 28 applications at most */
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	for (int i = 0; i < 27; i++) {
		char cmd[32];
		snprintf(cmd, sizeof(cmd), "CA %02X0010 0F 81", i + 1);
		assert_int_equal(mgmt_status(t, cmd), 0x00);
	}
	assert_int_equal(mgmt_status(t, "CA FF0010 0F 81"), 0xCE);
	assert_int_equal(mgmt(t, "6A", resp, &n), 0x00);
	assert_int_equal(n, 28 * 3); /* chained over two frames */
}

static void test_value_limits_and_transactions(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[256];
	size_t n;
	personalise(t);
	assert_int_equal(auth_ev1(t, 1, k1), 0x00); /* RW of file 4 */
	/* value 20 in [-10, 100] */
	assert_int_equal(send_hex(t, "6C 04", T_PLAIN, 1, T_ENC, 4, resp, &n), 0x00);
	assert_hex(resp, 4, "14000000");
	assert_int_equal(send_hex(t, "0C 04 51000000", T_ENC, 1, T_MAC, 0, resp, &n),
	                 0xBE); /* 101 */
	assert_int_equal(send_hex(t, "0C 04 50000000", T_ENC, 1, T_MAC, 0, resp, &n),
	                 0x00); /* 100 */
	assert_int_equal(send_hex(t, "0C 04 01000000", T_ENC, 1, T_MAC, 0, resp, &n), 0xBE);
	assert_int_equal(send_hex(t, "0C 04 FFFFFFFF", T_ENC, 1, T_MAC, 0, resp, &n), 0x9E);
	/* not committed yet */
	assert_int_equal(send_hex(t, "6C 04", T_PLAIN, 1, T_ENC, 4, resp, &n), 0x00);
	assert_hex(resp, 4, "14000000");
	assert_int_equal(mgmt_status(t, "C7"), 0x00);
	assert_int_equal(send_hex(t, "6C 04", T_PLAIN, 1, T_ENC, 4, resp, &n), 0x00);
	assert_hex(resp, 4, "64000000");
	/* debit down to the lower limit, not below */
	assert_int_equal(send_hex(t, "DC 04 6E000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "DC 04 01000000", T_ENC, 1, T_MAC, 0, resp, &n), 0xBE);
	/* abort discards */
	assert_int_equal(mgmt_status(t, "A7"), 0x00);
	assert_int_equal(mgmt_status(t, "C7"), 0x00);
	assert_int_equal(send_hex(t, "6C 04", T_PLAIN, 1, T_ENC, 4, resp, &n), 0x00);
	assert_hex(resp, 4, "64000000");
	/* leaving the field discards */
	assert_int_equal(send_hex(t, "DC 04 0A000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	t->tg.ops->deactivate(t->tg.ctx);
	t->tg.ops->activate(t->tg.ctx);
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 030201"), 0x00);
	assert_int_equal(auth_ev1(t, 1, k1), 0x00);
	assert_int_equal(send_hex(t, "6C 04", T_PLAIN, 1, T_ENC, 4, resp, &n), 0x00);
	assert_hex(resp, 4, "64000000");
	/* so does selecting an application */
	assert_int_equal(send_hex(t, "DC 04 0A000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 030201"), 0x00);
	assert_int_equal(status_of(t, "C7"), 0x00);
	assert_int_equal(auth_ev1(t, 1, k1), 0x00);
	assert_int_equal(send_hex(t, "6C 04", T_PLAIN, 1, T_ENC, 4, resp, &n), 0x00);
	assert_hex(resp, 4, "64000000");
	/* several changes in one transaction */
	assert_int_equal(send_hex(t, "DC 04 1E000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "0C 04 05000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "DC 04 01000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(mgmt_status(t, "C7"), 0x00);
	assert_int_equal(send_hex(t, "6C 04", T_PLAIN, 1, T_ENC, 4, resp, &n), 0x00);
	assert_hex(resp, 4, "4A000000"); /* 100 - 30 + 5 - 1 */
	/* free value file 5: debit then limited credit of what was debited */
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 030201"), 0x00);
	assert_int_equal(status_of(t, "1C 05 01000000"), 0x9D); /* W is never */
	/* the committed value survives a reopen (see test_persistence for the rest) */
}

static void test_multi_frame_transfers(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[1024], frame[512];
	size_t n;
	/* a free 300-byte file, written in frames the way libfreefare splits them */
	assert_int_equal(status_of(t, "CA 112233 0F 81"), 0x00);
	assert_int_equal(status_of(t, "5A 112233"), 0x00);
	assert_int_equal(status_of(t, "CD 01 00 EEEE 2C0100"), 0x00);
	frame[0] = 0x3D;
	frame[1] = 0x01;
	memset(frame + 2, 0, 3);
	frame[5] = 0x2C;
	frame[6] = 0x01;
	frame[7] = 0x00;
	for (int i = 0; i < 300; i++)
		frame[8 + i] = (uint8_t)(i ^ 0x5A);
	size_t sent = 0, total = 308;
	size_t chunk = 47;
	uint8_t st = xchg(t, frame, chunk, resp, &n);
	sent = chunk;
	while (st == 0xAF) {
		uint8_t af[60] = {0xAF};
		const size_t k = total - sent < 52 ? total - sent : 52;
		memcpy(af + 1, frame + sent, k);
		sent += k;
		st = xchg(t, af, k + 1, resp, &n);
	}
	assert_int_equal(st, 0x00);
	assert_int_equal(sent, total);
	/* too much data in the last frame */
	uint8_t two[] = {0x3D, 0x01, 0, 0, 0, 2, 0, 0, 1, 2, 3};
	assert_int_equal(xchg(t, two, sizeof(two), resp, &n), 0x7E);
	/* read back in 59-byte frames: 5 full ones and 5 bytes */
	int frames = 1;
	size_t got = 0;
	st = xchg(t, (const uint8_t *)"\xBD\x01\x00\x00\x00\x00\x00\x00", 8, resp, &n);
	got = n;
	while (st == 0xAF) {
		assert_int_equal(n, 59);
		st = xchg(t, (const uint8_t *)"\xAF", 1, resp + got, &n);
		got += n;
		frames++;
	}
	assert_int_equal(st, 0x00);
	assert_int_equal(frames, 6);
	n = got;
	assert_int_equal(n, 300);
	assert_memory_equal(resp, frame + 8, 300);
	assert_int_equal(status_of(t, "BD 01 2C0100 000000"), 0xBE);
	assert_int_equal(status_of(t, "BD 01 2B0100 020000"), 0xBE);
	assert_int_equal(status_of(t, "BD 01"), 0x7E);
	assert_int_equal(status_of(t, "BD 09 000000 010000"), 0xF0);
}

/* ---- EV2 secure messaging end to end ---------------------------------------------------- */

static void test_ev2_secure_messaging(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[1024], frame[300];
	size_t n;
	/* application with 2 keys; file 1 Full, file 2 MAC, file 3 plain, value file 4 Full */
	assert_int_equal(auth_ev2(t, 0, zero_key, 1), 0x00);
	assert_int_equal(mgmt_status(t, "CA A1A2A3 0B 82"), 0x00);
	assert_int_equal(mgmt(t, "6A", resp, &n), 0x00);
	assert_hex(resp, n, "A1A2A3");
	assert_int_equal(status_of(t, "5A A1A2A3"), 0x00);
	t->sm = SM_NONE;
	assert_int_equal(auth_ev2(t, 0, zero_key, 1), 0x00);
	assert_int_equal(mgmt_status(t, "CD 01 03 1010 500000"), 0x00);
	assert_int_equal(mgmt_status(t, "CD 02 01 1010 100000"), 0x00);
	assert_int_equal(mgmt_status(t, "CD 03 00 1010 100000"), 0x00);
	assert_int_equal(mgmt_status(t, "CC 04 03 1010 00000000 E8030000 0A000000 00"), 0x00);
	/* ChangeKey 1 (other key) in CommMode.Full: (new ^ old) || ver || CRC32(new) */
	frame[0] = 0xC4;
	frame[1] = 0x01;
	memcpy(frame + 2, k1, 16);
	frame[18] = 0x21;
	const uint32_t crc = t_crc32(k1, 16);
	for (int i = 0; i < 4; i++)
		frame[19 + i] = (uint8_t)(crc >> (8 * i));
	assert_int_equal(send_cmd(t, frame, 23, T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(mgmt(t, "6401", resp, &n), 0x00);
	assert_hex(resp, n, "21");

	assert_int_equal(auth_ev2(t, 1, k1, 1), 0x00);
	uint8_t data[80];
	for (int i = 0; i < 80; i++)
		data[i] = (uint8_t)(0xC0 ^ i);
	uint8_t w[100] = {0x3D, 0x01, 0, 0, 0, 80, 0, 0};
	memcpy(w + 8, data, 80);
	assert_int_equal(send_cmd(t, w, 88, T_ENC, 7, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "BD 01 000000 000000", T_MAC, 7, T_ENC, 0, resp, &n), 0x00);
	assert_int_equal(n, 80);
	assert_memory_equal(resp, data, 80);
	w[1] = 0x02;
	w[5] = 16;
	assert_int_equal(send_cmd(t, w, 24, T_MAC, 7, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "BD 02 000000 100000", T_MAC, 7, T_MAC, 0, resp, &n), 0x00);
	assert_memory_equal(resp, data, 16);
	w[1] = 0x03;
	assert_int_equal(send_cmd(t, w, 24, T_PLAIN, 7, T_PLAIN, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "BD 03 000000 100000", T_PLAIN, 7, T_PLAIN, 0, resp, &n),
	                 0x00);
	assert_memory_equal(resp, data, 16);
	/* value file in Full */
	assert_int_equal(send_hex(t, "6C 04", T_MAC, 1, T_ENC, 0, resp, &n), 0x00);
	assert_hex(resp, n, "0A000000");
	assert_int_equal(send_hex(t, "0C 04 05000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "DC 04 02000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "C7", T_MAC, 0, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "6C 04", T_MAC, 1, T_ENC, 0, resp, &n), 0x00);
	assert_hex(resp, n, "0D000000");
	/* GetVersion is MACed over its three frames */
	assert_int_equal(mgmt(t, "60", resp, &n), 0x00);
	assert_int_equal(n, 28);
	assert_memory_equal(resp + 14, uid_real, 7);
	/* an error ends the session (NT4H2421Gx §9.1.9) ... */
	assert_int_equal(send_hex(t, "BD 09 000000 100000", T_MAC, 7, T_MAC, 0, resp, &n), 0xF0);
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "BD 02 000000 100000"), 0xAE);
	/* ... and so does a wrong MAC, or a replayed command */
	assert_int_equal(auth_ev2(t, 1, k1, 1), 0x00);
	uint8_t replay[64];
	const uint16_t ctr = t->ctr;
	assert_int_equal(send_hex(t, "BD 02 000000 100000", T_MAC, 7, T_MAC, 0, resp, &n), 0x00);
	(void)ctr;
	memcpy(replay, "\xBD\x02\x00\x00\x00\x10\x00\x00", 8);
	uint8_t m[32], full[16];
	m[0] = 0xBD;
	m[1] = 0x00; /* CmdCtr 0 again */
	m[2] = 0x00;
	memcpy(m + 3, t->ti, 4);
	memcpy(m + 7, replay + 1, 7);
	t_cmac_mbedtls(t->mac, m, 14, full);
	for (int i = 0; i < 8; i++)
		replay[8 + i] = full[2 * i + 1];
	assert_int_equal(xchg(t, replay, 16, resp, &n), 0x1E);
	t->sm = SM_NONE;
	/* NonFirst needs an EV2 session */
	assert_int_equal(auth_ev2(t, 0, zero_key, 0), 0x9D);
	assert_int_equal(auth_ev2(t, 0, zero_key, 1), 0x00);
	assert_int_equal(mgmt_status(t, "6E"), 0x00);
	assert_int_equal(auth_ev2(t, 1, k1, 0), 0x00);
	assert_int_equal(t->ctr, 1); /* NonFirst keeps TI and CmdCtr */
	assert_int_equal(send_hex(t, "BD 02 000000 100000", T_MAC, 7, T_MAC, 0, resp, &n), 0x00);
	assert_memory_equal(resp, data, 16);
	/* EV2 authentication with a wrong key */
	assert_int_equal(auth_ev2(t, 1, zero_key, 1), 0xAE);
}

/* ---- persistence ----------------------------------------------------------------------- */

static void test_persistence(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[256];
	size_t n;
	personalise(t);
	assert_int_equal(auth_ev1(t, 1, k1), 0x00);
	assert_int_equal(
	        send_hex(t, "3D 03 000000 040000 DEADBEEF", T_PLAIN, 7, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "DC 04 05000000", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(mgmt_status(t, "C7"), 0x00);

	/* a second emulated reader opens the same image while the first still holds it */
	struct hil_desfire_card *other;
	assert_int_equal(hil_desfire_card_open(&other, t->path, NULL), 0);
	struct hil_target o = hil_desfire_card_target(other);
	uint8_t out[64];
	int got =
	        o.ops->transceive(o.ctx, (const uint8_t *)"\x5A\x03\x02\x01", 4, out, sizeof(out));
	assert_int_equal(got, 1);
	got = o.ops->transceive(o.ctx, (const uint8_t *)"\xBD\x03\x00\x00\x00\x04\x00\x00", 8, out,
	                        sizeof(out));
	assert_hex(out, (size_t)got, "00DEADBEEF");
	/* it writes; the first card sees it at its next activation */
	got = o.ops->transceive(o.ctx, (const uint8_t *)"\xDC\x05\x00\x00\x00\x00", 6, out,
	                        sizeof(out));
	assert_int_equal(out[0], 0x00);
	got = o.ops->transceive(o.ctx, (const uint8_t *)"\xC7", 1, out, sizeof(out));
	assert_int_equal(out[0], 0x00);
	o.ops->destroy(o.ctx);

	/* close and reopen: the same card */
	close_card(t);
	assert_int_equal(hil_desfire_card_open(&t->card, t->path, NULL), 0);
	t->tg = hil_desfire_card_target(t->card);
	t->tg.ops->activate(t->tg.ctx);
	t->sm = SM_NONE;
	assert_int_equal(status_of(t, "5A 030201"), 0x00);
	assert_int_equal(auth_ev1(t, 2, k2), 0x00);
	assert_int_equal(send_hex(t, "6C 04", T_PLAIN, 1, T_ENC, 4, resp, &n), 0x00);
	assert_hex(resp, 4, "0F000000");
	assert_int_equal(send_hex(t, "BD 03 000000 040000", T_PLAIN, 7, T_MAC, 0, resp, &n), 0x00);
	assert_hex(resp, n, "DEADBEEF");
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	assert_int_equal(mgmt(t, "6F", resp, &n), 0x00);
	assert_hex(resp, n, "010203040506");
	assert_int_equal(mgmt(t, "6401", resp, &n), 0x00);
	assert_hex(resp, n, "11");

	/* the image is text, starts with its format line, and is private to its owner */
	FILE *f = fopen(t->path, "r");
	assert_non_null(f);
	char line[64];
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	assert_string_equal(line, "citypass-desfire-image 2\n");
	struct stat st;
	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_image_errors(void **state)
{
	struct tctx *t = *state;
	struct hil_desfire_card *c = NULL;
	char path[160];
	snprintf(path, sizeof(path), "%s/other.img", t->dir);
	assert_int_equal(hil_desfire_card_open(&c, path, NULL), HIL_DESFIRE_EIO);
	assert_int_equal(hil_desfire_card_open(NULL, path, NULL), HIL_DESFIRE_EARG);
	static const char head[] = "citypass-desfire-image 1\nuid 04112233445566\nrandom-id 0\n"
	                           "picc settings=0f key-type=des "
	                           "key=00000000000000000000000000000000 key-version=00\n";
	char text[1024];
	snprintf(text, sizeof(text), "%send\n", head);
	write_file(path, text);
	assert_int_equal(hil_desfire_card_open(&c, path, NULL), 0);
	hil_desfire_card_close(c);
	static const char *const bad[] = {
	        "file no=1 type=std comm=0 access=eeee size=1 data=00\nend\n", /* no app */
	        "app aid=010203 settings=0f keys=1 key-type=aes\nend\n",       /* missing key */
	        "app aid=010203 settings=0f keys=1 key-type=des\n"
	        "key no=0 value=00000000000000000000000000000000 version=00\nend\n",
	        "app aid=010203 settings=0f keys=1 key-type=aes\n"
	        "key no=0 value=00000000000000000000000000000000 version=00\n"
	        "file no=1 type=std comm=0 access=eeee size=2 data=0011aa\nend\n",
	        "app aid=010203 settings=0f keys=1 key-type=aes\n"
	        "key no=0 value=00000000000000000000000000000000 version=00\n"
	        "file no=1 type=value comm=0 access=eeee lower=5 upper=1 value=3 limited=0 "
	        "limited-value=0\nend\n",
	        "app aid=010203 settings=0f keys=1 key-type=aes colour=blue\n"
	        "key no=0 value=00000000000000000000000000000000 version=00\nend\n",
	        "", /* truncated: no end */
	        "end\nend\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", head, bad[i]);
		write_file(path, text);
		assert_int_equal(hil_desfire_card_open(&c, path, NULL), HIL_DESFIRE_EIMAGE);
	}
	write_file(path, "citypass-desfire-image 3\n");
	assert_int_equal(hil_desfire_card_open(&c, path, NULL), HIL_DESFIRE_EFORMAT);
	unlink(path);
	assert_string_equal(hil_desfire_strerror(HIL_DESFIRE_EIMAGE),
	                    "the card image is malformed or inconsistent");
}

/* ---- random ID ------------------------------------------------------------------------- */

static void test_random_id(void **state)
{
	struct tctx *t = *state;
	struct hil_target_info a, b;
	uint8_t resp[64];
	size_t n;
	t->tg.ops->info(t->tg.ctx, &a);
	assert_int_equal(a.uid_len, 4);
	assert_int_equal(a.uid[0], 0x08);
	assert_hex(a.atqa, 2, "0304");
	t->tg.ops->info(t->tg.ctx, &b);
	assert_memory_equal(a.uid, b.uid, 4); /* stable while in the field */
	/* selected and deselected without a frame (libnfc listing, then reselecting by UID):
	 * the same card, the same UID */
	t->tg.ops->deactivate(t->tg.ctx);
	t->tg.ops->info(t->tg.ctx, &b);
	t->tg.ops->activate(t->tg.ctx);
	assert_memory_equal(a.uid, b.uid, 4);
	/* used, then out of the field: a new UID at each activation */
	for (int round = 0; round < 3; round++) {
		assert_int_equal(status_of(t, "6E"), 0x00);
		t->tg.ops->deactivate(t->tg.ctx);
		t->tg.ops->info(t->tg.ctx, &b);
		t->tg.ops->activate(t->tg.ctx);
		assert_int_equal(b.uid_len, 4);
		assert_int_equal(b.uid[0], 0x08);
		assert_memory_not_equal(a.uid, b.uid, 4);
		a = b;
	}
	/* GetVersion does not give the UID away */
	assert_int_equal(xchg_all(t, (const uint8_t *)"\x60", 1, resp, &n), 0x00);
	assert_hex(resp + 14, 7, "00000000000000");
	/* GetCardUID after authentication does */
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	assert_int_equal(send_hex(t, "51", T_PLAIN, 0, T_ENC, 7, resp, &n), 0x00);
	assert_memory_equal(resp, uid_real, 7);
	assert_int_equal(auth_ev2(t, 0, zero_key, 1), 0x00);
	assert_int_equal(send_hex(t, "51", T_MAC, 0, T_ENC, 0, resp, &n), 0x00);
	assert_int_equal(n, 7);
	assert_memory_equal(resp, uid_real, 7);
}

static void test_set_configuration_random_id(void **state)
{
	struct tctx *t = *state;
	uint8_t resp[64];
	size_t n;
	struct hil_target_info info;
	assert_int_equal(auth_ev1(t, 0, zero_key), 0x00);
	assert_int_equal(send_hex(t, "5C 00 02", T_ENC, 1, T_MAC, 0, resp, &n), 0x00);
	assert_int_equal(send_hex(t, "5C 00 01", T_ENC, 1, T_MAC, 0, resp, &n), 0x9E);
	t->tg.ops->deactivate(t->tg.ctx);
	t->tg.ops->info(t->tg.ctx, &info);
	assert_int_equal(info.uid_len, 4);
	assert_int_equal(info.uid[0], 0x08);
}

/* ---- the other targets ----------------------------------------------------------------- */

static void test_other_tags(void **state)
{
	(void)state;
	struct hil_target tg;
	struct hil_target_info info;
	uint8_t out[16];
	const uint8_t uid4[4] = {0xDE, 0xAD, 0xBE, 0xEF};
	assert_int_equal(hil_classic1k_target_new(&tg, uid4), 0);
	tg.ops->info(tg.ctx, &info);
	assert_hex(info.atqa, 2, "0004");
	assert_int_equal(info.sak, 0x08);
	assert_int_equal(info.uid_len, 4);
	assert_memory_equal(info.uid, uid4, 4);
	assert_int_equal(info.ats_len, 0);
	tg.ops->activate(tg.ctx);
	assert_int_equal(tg.ops->transceive(tg.ctx, (const uint8_t *)"\x60", 1, out, sizeof(out)),
	                 HIL_TARGET_SILENT);
	tg.ops->deactivate(tg.ctx);
	tg.ops->destroy(tg.ctx);

	assert_int_equal(hil_uid_only_target_new(&tg, uid_real), 0);
	tg.ops->info(tg.ctx, &info);
	assert_hex(info.atqa, 2, "0044");
	assert_int_equal(info.sak, 0x00);
	assert_int_equal(info.uid_len, 7);
	assert_memory_equal(info.uid, uid_real, 7);
	assert_int_equal(info.ats_len, 0);
	assert_int_equal(tg.ops->transceive(tg.ctx, (const uint8_t *)"\x90\x60\x00\x00\x00", 5, out,
	                                    sizeof(out)),
	                 HIL_TARGET_SILENT);
	tg.ops->destroy(tg.ctx);
	assert_int_equal(hil_uid_only_target_new(NULL, uid_real), HIL_DESFIRE_EARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cmac_rfc4493),
	        cmocka_unit_test(test_cbc_sp800_38a),
	        cmocka_unit_test(test_crc_check_values),
	        cmocka_unit_test(test_ev2_session_keys_an12196),
	        cmocka_unit_test(test_ev2_full_commands_published),
	        cmocka_unit_test(test_ev2_get_card_uid_table28),
	        cmocka_unit_test_setup_teardown(test_card_ev2_first_table14, setup_aes, teardown),
	        cmocka_unit_test_setup_teardown(test_card_changekey_tables_19_23_25_26, setup_aes,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_factory_state, setup_factory, teardown),
	        cmocka_unit_test_setup_teardown(test_iso_wrapping, setup_factory, teardown),
	        cmocka_unit_test_setup_teardown(test_chaining_errors, setup_aes, teardown),
	        cmocka_unit_test_setup_teardown(test_factory_des_to_aes, setup_factory, teardown),
	        cmocka_unit_test_setup_teardown(test_ev1_personalise_and_use, setup_aes, teardown),
	        cmocka_unit_test_setup_teardown(test_access_refusals, setup_aes, teardown),
	        cmocka_unit_test_setup_teardown(test_value_limits_and_transactions, setup_aes,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_multi_frame_transfers, setup_aes, teardown),
	        cmocka_unit_test_setup_teardown(test_ev2_secure_messaging, setup_aes, teardown),
	        cmocka_unit_test_setup_teardown(test_persistence, setup_aes, teardown),
	        cmocka_unit_test_setup_teardown(test_image_errors, setup_aes, teardown),
	        cmocka_unit_test_setup_teardown(test_random_id, setup_random_id, teardown),
	        cmocka_unit_test_setup_teardown(test_set_configuration_random_id, setup_aes,
	                                        teardown),
	        cmocka_unit_test(test_other_tags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
