/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "test-common.h"
#include "test-mailbox-migrate-dir.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-seen.h"

#define GUID_A "0123456789abcdef0123456789abcdef"


static void test_seen_raise_only(void)
{
	struct mailbox_migrate_db *db;
	struct mailbox_migrate_seen_record rec;
	enum mailbox_migrate_db_error code;
	const char *error;

	test_begin("seen uidnext only rises");
	test_assert(mailbox_migrate_db_open(t_strconcat(test_dir, "/s.db",
							NULL),
			0, 100, 0, &db, &code, &error) == 1);
	test_assert(mailbox_migrate_seen_get(db, GUID_A, 7, &rec,
					     &error) == 0);
	test_assert(mailbox_migrate_seen_raise(db, GUID_A, 7, 124, 1000,
					       "imap", &error) == 1);
	/* same or lower: no write */
	test_assert(mailbox_migrate_seen_raise(db, GUID_A, 7, 124, 1001,
					       "pop3", &error) == 0);
	test_assert(mailbox_migrate_seen_raise(db, GUID_A, 7, 100, 1002,
					       "pop3", &error) == 0);
	test_assert(mailbox_migrate_seen_get(db, GUID_A, 7, &rec,
					     &error) == 1);
	test_assert(rec.seen_uidnext == 124 && rec.seen_at == 1000);
	test_assert_strcmp(rec.seen_by, "imap");
	test_assert(mailbox_migrate_seen_raise(db, GUID_A, 7, 130, 1003,
					       "pop3", &error) == 1);
	test_assert(mailbox_migrate_seen_get(db, GUID_A, 7, &rec,
					     &error) == 1);
	test_assert(rec.seen_uidnext == 130 && rec.seen_at == 1003);
	test_assert_strcmp(rec.seen_by, "pop3");

	/* a new UIDVALIDITY starts over */
	test_assert(mailbox_migrate_seen_get(db, GUID_A, 8, &rec,
					     &error) == 0);
	test_assert(mailbox_migrate_seen_raise(db, GUID_A, 8, 2, 1004,
					       "imap", &error) == 1);
	test_assert(mailbox_migrate_seen_get(db, GUID_A, 8, &rec,
					     &error) == 1);
	test_assert(rec.seen_uidnext == 2);
	test_assert(mailbox_migrate_seen_get(db, GUID_A, 7, &rec,
					     &error) == 1);
	test_assert(rec.seen_uidnext == 130);
	mailbox_migrate_db_close(&db);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_seen_raise_only,
		NULL
	};
	return test_run_in_dir("mailbox-migrate-seen", test_functions);
}
