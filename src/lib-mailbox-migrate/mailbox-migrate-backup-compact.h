#ifndef MAILBOX_MIGRATE_BACKUP_COMPACT_H
#define MAILBOX_MIGRATE_BACKUP_COMPACT_H

struct mailbox_migrate_backup_store;

struct mailbox_migrate_backup_compact_result {
	/* share of body bytes no longer needed, in percent */
	unsigned int dirty_percent;
	unsigned int dead_bodies;
	uoff_t dead_bytes;
	/* data file size before and after */
	uoff_t old_size, new_size;
	bool compacted;
};

/* Compact the store (opened for writing) when the bodies no message row
   needs (rows current, or ended by a pass after keep_since) are at
   least dirty_percent of all body bytes: write the needed bodies and a
   snapshot record of the history kept into data-<N+1>, sync it, switch
   the index to it in one transaction, remove the old file. A crash at
   any point leaves either the old store or the new one. Returns 0 (see
   result->compacted), or -1 with *error_r. */
int mailbox_migrate_backup_compact(struct mailbox_migrate_backup_store *store,
				   time_t keep_since,
				   unsigned int dirty_percent,
				   struct mailbox_migrate_backup_compact_result *result_r,
				   const char **error_r);

#endif
