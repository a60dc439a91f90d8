#ifndef MAILBOX_MIGRATE_UID_RULE_H
#define MAILBOX_MIGRATE_UID_RULE_H

/* The UID rule of every pass (SPEC, "The cutover"): where a source message
   the destination doesn't have yet goes. Pure logic, no storage. */

enum mailbox_migrate_uid_decision {
	/* Saved with its own UID. */
	MAILBOX_MIGRATE_UID_KEEP,
	/* Saved with a new UID at the top; the destination's message at the
	   UID (if any) stays: a client was shown it and not the source's. */
	MAILBOX_MIGRATE_UID_TOP,
	/* Both the source's message and the destination's different
	   message at that UID get new UIDs at the top. */
	MAILBOX_MIGRATE_UID_TOP_BOTH,
};

struct mailbox_migrate_uid_rule_input {
	uint32_t uid;
	/* The destination holds a different message at uid. */
	bool dst_has_other;
	/* The destination mailbox's UIDNEXT, and both sides' seen UIDNEXT
	   (0 when no client was ever shown the mailbox). */
	uint32_t dst_uidnext;
	uint32_t src_seen_uidnext, dst_seen_uidnext;
};

enum mailbox_migrate_uid_decision
mailbox_migrate_uid_rule(const struct mailbox_migrate_uid_rule_input *in);

/* The first UID a pass may give at the top: above everything either side
   has used or shown. */
uint32_t mailbox_migrate_uid_rule_top(uint32_t src_uidnext,
				      uint32_t dst_uidnext,
				      uint32_t src_seen_uidnext,
				      uint32_t dst_seen_uidnext);

const char *
mailbox_migrate_uid_decision_name(enum mailbox_migrate_uid_decision d);

#endif
