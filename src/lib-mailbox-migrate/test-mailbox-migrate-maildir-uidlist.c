/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "test-common.h"
#include "mailbox-migrate-maildir-uidlist.h"

#define GUID_A "0123456789abcdef0123456789abcdef"

static void test_maildir_uidlist_header(void)
{
	static const char *const bad_lines[] = {
		/* no or a zero UIDVALIDITY, a zero GUID */
		"3 N42 G"GUID_A,
		"3 V0 N42 G"GUID_A,
		"3 V5 G00000000000000000000000000000000",
		/* fields not well formed */
		"3 V17x N42 G"GUID_A,
		"3 V-1 N42 G"GUID_A,
		"3 V17 N42 G0123",
		"3 V17 N42 G"GUID_A"00",
		/* other versions (1 and 2 have no GUID), garbage, nothing */
		"1 1700000000 42",
		"4 V1700000000 N42 G"GUID_A,
		"3V1700000000 G"GUID_A,
		"1 :1700000000.M1P1.host",
		"",
		"3",
	};
	guid_128_t guid, expected;
	uint32_t uidvalidity;
	unsigned int i;

	test_begin("maildir uidlist header: UIDVALIDITY and mailbox GUID");
	test_assert(guid_128_from_string(GUID_A, expected) == 0);

	/* as Dovecot 2.3 writes it, and with fields in another order, more
	   spaces and fields it doesn't know */
	test_assert(mailbox_migrate_maildir_uidlist_header_parse(
		"3 V1700000000 N42 G"GUID_A, &uidvalidity, guid));
	test_assert(uidvalidity == 1700000000);
	test_assert(guid_128_equals(guid, expected));
	test_assert(mailbox_migrate_maildir_uidlist_header_parse(
		"3 G"GUID_A"  Pfoo N7 V9 ", &uidvalidity, guid));
	test_assert(uidvalidity == 9);
	test_assert(guid_128_equals(guid, expected));

	/* no GUID yet: Dovecot adds one when asked for it */
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3 V1700000000 N42", &uidvalidity, guid));
	test_assert(guid_128_is_empty(guid));
	for (i = 0; i < N_ELEMENTS(bad_lines); i++) {
		test_assert_idx(!mailbox_migrate_maildir_uidlist_header_parse(
			bad_lines[i], &uidvalidity, guid), i);
	}
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_maildir_uidlist_header,
		NULL
	};
	return test_run(test_functions);
}
