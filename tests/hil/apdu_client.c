/*
 * apdu_client — a plain libnfc client, independent of cardlib: select the ISO 14443-A
 * target on a reader, send APDUs, print the answers and the time each exchange took.
 *
 *   apdu_client CONNSTRING [--repeat N] HEX...
 *
 * Prints "uid HEX", then per exchange "resp HEX us=N" (or "error MESSAGE"). Exit 0 when every
 * exchange got an answer, 1 when a selection or exchange failed, 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nfc/nfc.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int parse_hex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(s);
	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: apdu_client CONNSTRING [--repeat N] HEX...\n");
		return 2;
	}
	int first = 2;
	long repeat = 1;
	if (argc > 4 && strcmp(argv[2], "--repeat") == 0) {
		repeat = atol(argv[3]);
		first = 4;
	}
	nfc_context *ctx = NULL;
	nfc_init(&ctx);
	if (!ctx) {
		fprintf(stderr, "apdu_client: nfc_init failed\n");
		return 1;
	}
	nfc_device *dev = nfc_open(ctx, argv[1]);
	if (!dev || nfc_initiator_init(dev) < 0) {
		fprintf(stderr, "apdu_client: cannot open %s\n", argv[1]);
		if (dev)
			nfc_close(dev);
		nfc_exit(ctx);
		return 1;
	}
	int status = 0;
	const nfc_modulation mod = {.nmt = NMT_ISO14443A, .nbr = NBR_106};
	nfc_target t;
	if (nfc_initiator_select_passive_target(dev, mod, NULL, 0, &t) <= 0) {
		printf("error no target\n");
		status = 1;
		goto out;
	}
	printf("uid ");
	for (size_t i = 0; i < t.nti.nai.szUidLen; i++)
		printf("%02x", t.nti.nai.abtUid[i]);
	printf("\n");
	for (long r = 0; r < repeat && status == 0; r++) {
		for (int i = first; i < argc; i++) {
			uint8_t tx[512], rx[512];
			size_t tx_len;
			if (parse_hex(argv[i], tx, sizeof(tx), &tx_len) != 0) {
				fprintf(stderr, "apdu_client: '%s' is not hex\n", argv[i]);
				status = 2;
				break;
			}
			long long t0 = now_us();
			int n = nfc_initiator_transceive_bytes(dev, tx, tx_len, rx, sizeof(rx),
			                                       2000);
			long long dt = now_us() - t0;
			if (n < 0) {
				printf("error %s us=%lld\n", nfc_strerror(dev), dt);
				status = 1;
				break;
			}
			printf("resp ");
			for (int k = 0; k < n; k++)
				printf("%02x", rx[k]);
			printf(" us=%lld\n", dt);
		}
	}
out:
	nfc_close(dev);
	nfc_exit(ctx);
	return status;
}
