/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "mailbox-migrate-uid-rule.h"

enum mailbox_migrate_uid_decision
mailbox_migrate_uid_rule(const struct mailbox_migrate_uid_rule_input *in)
{
	bool src_seen, dst_seen;

	if (in->dst_has_other) {
		/* Two different messages at one UID. The one a client was
		   shown keeps it; the source's never can, as it lies below
		   the destination's UIDNEXT and Dovecot can't assign it
		   again. So: only the destination's, if only it was seen;
		   otherwise both move, lest a client that saw the source's
		   find the destination's there. */
		src_seen = in->uid < in->src_seen_uidnext;
		dst_seen = in->uid < in->dst_seen_uidnext;
		return dst_seen && !src_seen ? MAILBOX_MIGRATE_UID_TOP :
			MAILBOX_MIGRATE_UID_TOP_BOTH;
	}
	/* A free UID that a destination client may have been shown not to
	   exist, or that Dovecot can't assign any more, is not reused. */
	if (in->uid >= in->dst_uidnext && in->uid >= in->dst_seen_uidnext)
		return MAILBOX_MIGRATE_UID_KEEP;
	return MAILBOX_MIGRATE_UID_TOP;
}

uint32_t mailbox_migrate_uid_rule_top(uint32_t src_uidnext,
				      uint32_t dst_uidnext,
				      uint32_t src_seen_uidnext,
				      uint32_t dst_seen_uidnext)
{
	return I_MAX(I_MAX(src_uidnext, dst_uidnext),
		     I_MAX(src_seen_uidnext, dst_seen_uidnext));
}

const char *
mailbox_migrate_uid_decision_name(enum mailbox_migrate_uid_decision d)
{
	switch (d) {
	case MAILBOX_MIGRATE_UID_KEEP:
		return "keep";
	case MAILBOX_MIGRATE_UID_TOP:
		return "top";
	case MAILBOX_MIGRATE_UID_TOP_BOTH:
		return "top-both";
	}
	i_unreached();
}
