#ifndef MAILBOX_MIGRATE_BACKUP_INDEX_H
#define MAILBOX_MIGRATE_BACKUP_INDEX_H

#include "mail-types.h"
#include "seq-range-array.h"
#include "hash.h"
#include "mailbox-migrate-db.h"

struct mailbox_migrate_backup_line;

/* A backup store's index: an SQLite file (the same db layer as the state
   file, another schema) that says where each body lies in the data file
   and which mailboxes, messages, subscriptions and special-use flags
   each pass saw. Rows have a lifetime in
   passes: [from_pass, until_pass), until_pass NULL while current; a flag
   change ends a message row and starts another, so that the state at any
   pass can be read back. All SQL of the index is in
   mailbox-migrate-backup-index.c. */

extern const struct mailbox_migrate_db_schema mailbox_migrate_backup_index_schema;

struct mailbox_migrate_backup_body {
	const char *hash;
	uoff_t size;
	/* the member holding the body, and where in its uncompressed
	   content the body's bytes start */
	uoff_t member_offset, member_size, entry_offset;
};

struct mailbox_migrate_backup_mailbox {
	const char *guid;
	uint32_t uidvalidity;
	const char *name;
};

struct mailbox_migrate_backup_message {
	uint32_t uid;
	const char *guid;
	const char *hash;
	uoff_t size;
	enum mail_flags flags;
	const char *keywords; /* space-separated */
	time_t received, saved;
	const char *pop3_uidl;
	uint32_t pop3_order;
	uint32_t from_pass;
};
ARRAY_DEFINE_TYPE(mailbox_migrate_backup_message,
		  struct mailbox_migrate_backup_message);
ARRAY_DEFINE_TYPE(mailbox_migrate_backup_mailbox,
		  struct mailbox_migrate_backup_mailbox);

/* Apply one line of pass pass_id's state record (a pass record's lines, or
   a snapshot's rows after mailbox_migrate_backup_index_reset()). Must be
   called inside a transaction. */
int mailbox_migrate_backup_index_apply(struct mailbox_migrate_db *db,
				       uint32_t pass_id,
				       const struct mailbox_migrate_backup_line *line,
				       const char **error_r);
/* Remove all passes, mailboxes and messages (not bodies): a snapshot
   follows. */
int mailbox_migrate_backup_index_reset(struct mailbox_migrate_db *db,
				       const char **error_r);
/* Record a pass (its record's place in the data file; 0/0 for a pass known
   only from a snapshot). */
int mailbox_migrate_backup_index_pass_add(struct mailbox_migrate_db *db,
					  uint32_t pass_id, time_t time,
					  uoff_t record_offset,
					  uoff_t record_size,
					  const char **error_r);
/* The last pass: returns 1 with its id and time, 0 if there is none. */
int mailbox_migrate_backup_index_last_pass(struct mailbox_migrate_db *db,
					   uint32_t *pass_id_r, time_t *time_r,
					   const char **error_r);
/* The last pass at or before t: 1 found, 0 none. */
int mailbox_migrate_backup_index_pass_at(struct mailbox_migrate_db *db,
					 time_t t, uint32_t *pass_id_r,
					 time_t *time_r, const char **error_r);

int mailbox_migrate_backup_index_body_add(struct mailbox_migrate_db *db,
		const struct mailbox_migrate_backup_body *body,
		const char **error_r);
/* 1 and *body_r if the store has the body, 0 if not. */
int mailbox_migrate_backup_index_body_get(struct mailbox_migrate_db *db,
		const char *hash, struct mailbox_migrate_backup_body *body_r,
		const char **error_r);

/* The mailbox as of pass_id (0: now). 1 found, 0 not. */
int mailbox_migrate_backup_index_mailbox_get(struct mailbox_migrate_db *db,
		const char *guid, uint32_t pass_id,
		struct mailbox_migrate_backup_mailbox *box_r,
		const char **error_r);
/* All mailboxes as of pass_id (0: now), by name. */
int mailbox_migrate_backup_index_mailboxes(struct mailbox_migrate_db *db,
		uint32_t pass_id, pool_t pool,
		ARRAY_TYPE(mailbox_migrate_backup_mailbox) *boxes,
		const char **error_r);
/* The names subscribed as of pass_id (0: now), sorted. */
int mailbox_migrate_backup_index_subscriptions(struct mailbox_migrate_db *db,
		uint32_t pass_id, pool_t pool, ARRAY_TYPE(const_string) *names,
		const char **error_r);
/* The mailbox's special-use flags as of pass_id (0: now), space-separated;
   "" if it had none. Returns 0 or -1. */
int mailbox_migrate_backup_index_special_use(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t pass_id,
		const char **special_use_r, const char **error_r);
/* The messages of a mailbox as of pass_id (0: now) by UID: all, or only
   the given UIDs (uids != NULL, a seq_range array). */
int mailbox_migrate_backup_index_messages(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t pass_id,
		const ARRAY_TYPE(seq_range) *uids, pool_t pool,
		ARRAY_TYPE(mailbox_migrate_backup_message) *messages,
		const char **error_r);

struct mailbox_migrate_backup_index_stats {
	unsigned int passes, mailboxes, messages, bodies;
	uoff_t body_bytes;
	/* bodies that no message row kept after keep_since needs */
	unsigned int dead_bodies;
	uoff_t dead_bytes;
};
/* Counts for status, verify and compact; dead_* counts bodies whose every
   message row ended at a pass at or before keep_since (0: none dead). */
int mailbox_migrate_backup_index_stats(struct mailbox_migrate_db *db,
		time_t keep_since,
		struct mailbox_migrate_backup_index_stats *stats_r,
		const char **error_r);

/* Iterate rows for verify, compact and reindex checks. callback returns
   0 to go on, -1 to stop (its error). */
typedef int mailbox_migrate_backup_body_callback_t(
		const struct mailbox_migrate_backup_body *body, void *context);
int mailbox_migrate_backup_index_bodies(struct mailbox_migrate_db *db,
		mailbox_migrate_backup_body_callback_t *callback,
		void *context, const char **error_r);
/* Message rows whose hash has no body row: returns their count. */
int mailbox_migrate_backup_index_missing_bodies(struct mailbox_migrate_db *db,
		unsigned int *count_r, const char **first_hash_r,
		const char **error_r);

/* Compaction: write the history kept (passes, and the mailbox and message
   rows current or ended by a pass after keep_since) as
   snapshot lines into dest; the bodies they need are those for which
   in the set mailbox_migrate_backup_index_needed_bodies() fills. */
int mailbox_migrate_backup_index_snapshot(struct mailbox_migrate_db *db,
		time_t keep_since, uint32_t snapshot_pass, time_t now,
		string_t *dest, const char **error_r);
HASH_TABLE_DEFINE_TYPE(mailbox_migrate_backup_hashes, const char *, void *);
int mailbox_migrate_backup_index_needed_bodies(struct mailbox_migrate_db *db,
		time_t keep_since, pool_t pool,
		HASH_TABLE_TYPE(mailbox_migrate_backup_hashes) *hashes,
		const char **error_r);
/* Drop all body rows (compaction adds the rewritten ones). */
int mailbox_migrate_backup_index_bodies_clear(struct mailbox_migrate_db *db,
					      const char **error_r);

#endif
