/*
 * cardlib_tool — cardlib's card layout (cardlib/layout.h) through the real libnfc driver
 * (cardlib_nfc_open), for the bench tests.
 *
 *   cardlib_tool CONNSTRING personalise       write the bench pass (below), 10 entries
 *   cardlib_tool CONNSTRING read SLOT         a gate of sector SLOT taps the card
 *   cardlib_tool CONNSTRING debit SLOT        ... and debits one entry
 *
 * The bench deployment shared with tests/hil/freefare_citypass.c: system identifier
 * "citypass-hil", application master A0..AF, sector slot s master (s+1)0..(s+1)F, slots 0
 * (entries), 1 and 3 on the card, identifier of slot s "pass0042-sector" s.
 * Prints "id ...", "value N", "random-id 0|1", "commands N" (selection + exchanges); on a
 * refusal "refused: error=CODE (sentence)" on stderr and exit 1; bad usage exits 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardlib/error.h"
#include "cardlib/issue.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"

static const int slots_on_card[] = {0, 1, 3};
#define N_SLOTS (sizeof(slots_on_card) / sizeof(slots_on_card[0]))

static void bench_keyset(struct cardlib_keyset *ks, struct cardlib_pass_ids *ids)
{
	memset(ks, 0, sizeof(*ks));
	ks->sys.aid = CARDLIB_LAYOUT_AID;
	memcpy(ks->sys.sys_id, "citypass-hil", 12);
	ks->sys.sys_id_len = 12;
	for (int i = 0; i < 16; i++)
		ks->app_master[i] = (uint8_t)(0xA0 + i);
	ks->key_version = 1;
	ks->n_sectors = N_SLOTS;
	for (size_t s = 0; s < N_SLOTS; s++) {
		int slot = slots_on_card[s];
		ks->sectors[s].slot = (uint8_t)slot;
		for (int i = 0; i < 16; i++)
			ks->sectors[s].master[i] = (uint8_t)(0x10 * (slot + 1) + i);
		memcpy(ids->id[s], "pass0042-sector", 15);
		ids->id[s][15] = (uint8_t)('0' + slot);
	}
	ks->value_slot = 0;
}

static int refused(int rc)
{
	fprintf(stderr, "refused: error=%d (%s)\n", rc, cardlib_strerror(rc));
	return 1;
}

static int tap(struct cardlib_reader *r, const struct cardlib_keyset *ks, int slot, int debit)
{
	struct cardlib_sector_key key;
	size_t index = N_SLOTS;
	for (size_t s = 0; s < N_SLOTS; s++)
		if (slots_on_card[s] == slot)
			index = s;
	if (index < N_SLOTS) {
		(void)cardlib_keyset_sector_key(ks, index, &key);
	} else { /* a sector this pass does not carry: its gate still has a master */
		(void)cardlib_keyset_sector_key(ks, 0, &key);
		key.slot = (uint8_t)slot;
		key.reads_value = 0;
	}
	struct cardlib_card *card = NULL;
	struct cardlib_card_read read;
	memset(&read, 0, sizeof(read));
	cardlib_reader_reset_stats(r);
	int rc = cardlib_card_open_sector(&card, r, &key, &read);
	int32_t remaining = read.value;
	if (rc == 0 && debit)
		rc = cardlib_card_debit_entry(card, &remaining);
	unsigned long commands = r->stats.selects + r->stats.exchanges;
	cardlib_card_close(card);
	if (rc < 0)
		return refused(rc);
	printf("id %.16s\n", (const char *)read.id);
	if (read.has_value)
		printf("value %d\n", (int)remaining);
	printf("random-id %d\ncommands %lu\n", read.random_id, commands);
	return 0;
}

int main(int argc, char **argv)
{
	int slot = -1;
	if (argc == 4 && (strcmp(argv[2], "read") == 0 || strcmp(argv[2], "debit") == 0))
		slot = atoi(argv[3]);
	if (!((argc == 3 && strcmp(argv[2], "personalise") == 0) ||
	      (argc == 4 && slot >= 0 && slot < CARDLIB_LAYOUT_SECTORS_MAX))) {
		fprintf(stderr,
		        "usage: cardlib_tool CONNSTRING personalise|read SLOT|debit SLOT\n");
		return 2;
	}
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	bench_keyset(&ks, &ids);
	struct cardlib_reader *r = NULL;
	int rc = cardlib_nfc_open(&r, argv[1]);
	if (rc < 0) {
		fprintf(stderr, "cardlib_tool: cannot open %s: %s\n", argv[1],
		        cardlib_strerror(rc));
		return 1;
	}
	int status;
	if (slot < 0) {
		rc = cardlib_card_issue(r, &ks, &ids,
		                        &(struct cardlib_issue_opts){.initial_entries = 10});
		status = rc < 0 ? refused(rc) : 0;
		if (rc == 0)
			printf("personalised\n");
	} else {
		status = tap(r, &ks, slot, strcmp(argv[2], "debit") == 0);
	}
	cardlib_reader_free(r);
	return status;
}
