#ifndef MAILBOX_MIGRATE_BACKUP_REINDEX_H
#define MAILBOX_MIGRATE_BACKUP_REINDEX_H

struct mailbox_migrate_backup_store;

struct mailbox_migrate_backup_reindex_result {
	const char *data_path;
	unsigned int passes, bodies, messages;
	/* members that couldn't be read (skipped) */
	unsigned int bad_members;
	/* state records that couldn't be applied (skipped whole) */
	unsigned int bad_records;
	/* bytes after the last complete record: an unfinished pass, cut */
	uoff_t cut_bytes;
};

/* Rebuild the index of the store at dir from its newest data file alone:
   replay every state record, index every intact body. The new index is
   written beside the old one and renamed over it. Takes the store's
   lock. Returns 0, or -1 with *error_r (the old index is then kept). */
int mailbox_migrate_backup_reindex(const char *dir,
				   unsigned int lock_timeout_secs,
				   struct mailbox_migrate_backup_reindex_result *result_r,
				   const char **error_r);

#endif
