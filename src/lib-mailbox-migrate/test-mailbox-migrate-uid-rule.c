/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "test-common.h"
#include "mailbox-migrate-uid-rule.h"

static const struct {
	struct mailbox_migrate_uid_rule_input in;
	enum mailbox_migrate_uid_decision want;
} uid_rule_cases[] = {
	/* first pass into an empty destination: every UID kept */
	{ { 1, FALSE, 1, 0, 0 }, MAILBOX_MIGRATE_UID_KEEP },
	{ { 57, FALSE, 1, 60, 0 }, MAILBOX_MIGRATE_UID_KEEP },
	/* above the destination's UIDNEXT and seen UIDNEXT */
	{ { 123, FALSE, 123, 124, 120 }, MAILBOX_MIGRATE_UID_KEEP },
	/* below UIDNEXT (the destination expunged or skipped it) */
	{ { 122, FALSE, 123, 0, 0 }, MAILBOX_MIGRATE_UID_TOP },
	/* free, but a destination client was shown UIDNEXT above it */
	{ { 123, FALSE, 123, 0, 124 }, MAILBOX_MIGRATE_UID_TOP },
	/* clash: only the destination's was shown: it stays */
	{ { 123, TRUE, 124, 123, 124 }, MAILBOX_MIGRATE_UID_TOP },
	/* clash: only the source's was shown: both move */
	{ { 123, TRUE, 124, 124, 123 }, MAILBOX_MIGRATE_UID_TOP_BOTH },
	/* clash: both shown: both move */
	{ { 123, TRUE, 124, 124, 124 }, MAILBOX_MIGRATE_UID_TOP_BOTH },
	/* clash: neither shown: both move */
	{ { 123, TRUE, 124, 0, 0 }, MAILBOX_MIGRATE_UID_TOP_BOTH },
};

static void test_uid_rule(void)
{
	enum mailbox_migrate_uid_decision got;
	unsigned int i;

	test_begin("uid rule");
	for (i = 0; i < N_ELEMENTS(uid_rule_cases); i++) {
		got = mailbox_migrate_uid_rule(&uid_rule_cases[i].in);
		test_assert_idx(got == uid_rule_cases[i].want, i);
	}
	test_end();
}

static void test_uid_rule_top(void)
{
	test_begin("uid rule top");
	test_assert(mailbox_migrate_uid_rule_top(10, 5, 0, 0) == 10);
	test_assert(mailbox_migrate_uid_rule_top(10, 12, 0, 0) == 12);
	test_assert(mailbox_migrate_uid_rule_top(10, 12, 15, 0) == 15);
	test_assert(mailbox_migrate_uid_rule_top(10, 12, 15, 20) == 20);
	test_assert(mailbox_migrate_uid_rule_top(1, 1, 0, 0) == 1);
	test_assert(strcmp(mailbox_migrate_uid_decision_name(
		MAILBOX_MIGRATE_UID_TOP_BOTH), "top-both") == 0);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_uid_rule,
		test_uid_rule_top,
		NULL
	};
	return test_run(test_functions);
}
