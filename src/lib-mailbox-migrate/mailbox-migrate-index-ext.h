#ifndef MAILBOX_MIGRATE_INDEX_EXT_H
#define MAILBOX_MIGRATE_INDEX_EXT_H

/* A small header extension in each mailbox's own Dovecot index, counting
   the changes the plugin could not journal. It lives next to the change
   itself, so it survives when the state file can't be written at all (G6),
   and a reader compares it with the count it has acknowledged. */

struct mailbox;

#define MAILBOX_MIGRATE_INDEX_EXT_NAME "mailbox-migrate"

struct mailbox_migrate_index_ext_header {
	/* Commits whose journal entries were lost. */
	uint32_t lost_count;
	/* UNIX time of the last such commit. */
	uint32_t last_lost_time;
};

/* Read the header from the mailbox's current view (open, synced); zeroes
   if the mailbox has none. */
void mailbox_migrate_index_ext_get(struct mailbox *box,
				   struct mailbox_migrate_index_ext_header *hdr_r);
/* Count one more lost commit. Returns 0, or -1 if the index can't be
   written. */
int mailbox_migrate_index_ext_add_lost(struct mailbox *box, time_t now,
				       const char **error_r);

#endif
