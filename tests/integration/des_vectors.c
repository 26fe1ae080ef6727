/*
 * des_vectors — prints what cardlib's DES primitives compute on random keys and messages,
 * for openssl_des_check.sh to recompute with openssl (an independent implementation):
 *
 *   cbc CIPHER KEY IV PLAINTEXT CIPHERTEXT     (CBC encryption, whole blocks)
 *   cmac CIPHER KEY MESSAGE MAC                (NIST SP 800-38B, 8-byte blocks)
 *
 * CIPHER is des-ede (2K3DES, 16-byte keys) or des-ede3 (3K3DES), openssl's names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "desfire_internal.h"

static void hex(const uint8_t *b, size_t n)
{
	putchar(' ');
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	if (n == 0)
		putchar('-');
}

int main(int argc, char **argv)
{
	const int rounds = argc > 1 ? atoi(argv[1]) : 8;
	uint8_t key[24], iv[8], iv0[8], msg[64], out[64], len_byte;
	for (int r = 0; r < rounds; r++) {
		for (int three = 0; three <= 1; three++) {
			const enum desfire_cipher cipher =
			        three ? DESFIRE_CIPHER_3K3DES : DESFIRE_CIPHER_2K3DES;
			const char *name = three ? "des-ede3" : "des-ede";
			const size_t klen = three ? 24 : 16;
			if (getrandom(key, sizeof(key), 0) != sizeof(key) ||
			    getrandom(iv, sizeof(iv), 0) != sizeof(iv) ||
			    getrandom(msg, sizeof(msg), 0) != sizeof(msg) ||
			    getrandom(&len_byte, 1, 0) != 1)
				return 1;
			const size_t blocks = 1 + len_byte % 8, mlen = len_byte % 65;
			for (int i = 0; i < 8; i++)
				iv0[i] = iv[i];
			if (desfire_cipher_cbc(cipher, key, 1, iv, msg, out, 8 * blocks))
				return 1;
			printf("cbc %s", name);
			hex(key, klen);
			hex(iv0, 8);
			hex(msg, 8 * blocks);
			hex(out, 8 * blocks);
			putchar('\n');
			if (desfire_cipher_cmac(cipher, key, NULL, msg, mlen, out))
				return 1;
			printf("cmac %s", name);
			hex(key, klen);
			hex(msg, mlen);
			hex(out, 8);
			putchar('\n');
		}
	}
	return 0;
}
