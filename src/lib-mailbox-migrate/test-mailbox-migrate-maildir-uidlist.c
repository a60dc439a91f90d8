/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "test-common.h"
#include "mailbox-migrate-maildir-uidlist.h"

#define GUID_A "0123456789abcdef0123456789abcdef"

static void test_maildir_uidlist_header(void)
{
	guid_128_t guid, expected;
	uint32_t uidvalidity;

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
	/* no or a zero UIDVALIDITY, a zero GUID */
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3 N42 G"GUID_A, &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3 V0 N42 G"GUID_A, &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3 V5 G00000000000000000000000000000000", &uidvalidity, guid));
	/* fields not well formed */
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3 V17x N42 G"GUID_A, &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3 V-1 N42 G"GUID_A, &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3 V17 N42 G0123", &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3 V17 N42 G"GUID_A"00", &uidvalidity, guid));
	/* other versions (1 and 2 have no GUID), garbage, nothing */
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"1 1700000000 42", &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"4 V1700000000 N42 G"GUID_A, &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3V1700000000 G"GUID_A, &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"1 :1700000000.M1P1.host", &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"", &uidvalidity, guid));
	test_assert(!mailbox_migrate_maildir_uidlist_header_parse(
		"3", &uidvalidity, guid));
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
