#ifndef MAILBOX_MIGRATE_JOURNAL_LOG_H
#define MAILBOX_MIGRATE_JOURNAL_LOG_H

#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal.h"

/* The journal's hot path. A commit's journal entries (and the mailbox
   record and seen UIDNEXT that go with them) are appended to a log beside
   the state file, <state file>.log, with one write() under a shared
   flock(); no SQLite transaction per IMAP command. The log is folded into
   the state file's journal, where the entries get their seqs in log order,
   by the first open of the state file that finds it unfolded
   (mailbox_migrate_db_open(): every doveadm command and pass), by the
   logout hook, and by a session whose appends take the log past
   MAILBOX_MIGRATE_JOURNAL_LOG_FOLD_SIZE; not by every session at its end,
   which would put the fold's SQLite work on the hot path.

   A fold runs inside the state file's write transaction under an exclusive
   flock() of the log, and stores how far it got (log id and offset) in that
   same transaction, so that a crash at any point folds nothing twice. A log
   that has grown is replaced by an empty one afterwards (rename), after
   the fold has sealed it (overwritten its first byte): a writer, holding
   its shared lock, reads that byte before each append and reopens the log
   when it finds the seal. Once a second it also checks that the path is
   still its file's (a log deleted or replaced by hand).

   Records: "MJ" type(1) size(4, LE) crc32(4, LE) payload(size), the payload
   tab-separated escaped fields, the checksum over type, size and payload.
   A record that is cut short or fails its checksum ends the fold there
   with a gap entry (the journal is then incomplete before that point and
   the next pass compares in full). */

/* A log of at least this size is replaced by an empty one after a fold. */
#define MAILBOX_MIGRATE_JOURNAL_LOG_ROTATE_SIZE (64 * 1024)
/* The plugin folds its log when an append leaves it at least this big
   (some 4,000 to 8,000 changes that no reader has folded yet). */
#define MAILBOX_MIGRATE_JOURNAL_LOG_FOLD_SIZE (1024 * 1024)
/* Appends fail (and the journal gets a gap) once the log is this big:
   nothing has folded it for long (a broken state file?). */
#define MAILBOX_MIGRATE_JOURNAL_LOG_MAX_SIZE (64 * 1024 * 1024)

enum mailbox_migrate_journal_log_record_type {
	/* First record of every log: its random id. */
	MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_HEADER = 'H',
	/* A journal entry; its seq is assigned by the fold. */
	MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_ENTRY = 'E',
	/* The mailbox record: name, UIDVALIDITY and the witness modseq, and
	   whether its witness seq is the last seq folded before this record
	   (else 0). */
	MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_MAILBOX = 'M',
	/* The mailbox was deleted. */
	MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_DELETED = 'D',
	/* A client was shown UIDs up to uidnext-1. */
	MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_SEEN = 'S',
};

struct mailbox_migrate_journal_log_record {
	enum mailbox_migrate_journal_log_record_type type;
	/* ENTRY: all of it. MAILBOX: mailbox_guid, name, uidvalidity,
	   modseq (the witness, 0 for none), uid (1 if the witness seq is the
	   last seq folded). DELETED: mailbox_guid. SEEN:
	   mailbox_guid, uidvalidity, uid (the UIDNEXT), time, service.
	   HEADER: name (the log id). */
	struct mailbox_migrate_journal_entry entry;
};

/* Path of the log of the state file at db_path. */
const char *mailbox_migrate_journal_log_path(const char *db_path);

/* Append one record to buf (what one append writes). */
void mailbox_migrate_journal_log_add_entry(
	buffer_t *buf, const struct mailbox_migrate_journal_entry *entry);
void mailbox_migrate_journal_log_add_mailbox(buffer_t *buf,
					     const char *mailbox_guid,
					     const char *name,
					     uint32_t uidvalidity,
					     uint64_t witness_modseq,
					     bool witness_at_last_seq);
void mailbox_migrate_journal_log_add_deleted(buffer_t *buf,
					     const char *mailbox_guid);
void mailbox_migrate_journal_log_add_seen(buffer_t *buf,
					  const char *mailbox_guid,
					  uint32_t uidvalidity,
					  uint32_t uidnext, time_t now,
					  const char *service);

/* Parse the record at data[*pos]. Returns 1 and advances *pos, 0 at the
   end of data, -1 (with the reason) if the record is damaged or cut short.
   Strings of the record point into the data stack. */
int mailbox_migrate_journal_log_parse(const unsigned char *data, size_t size,
				      size_t *pos,
				      struct mailbox_migrate_journal_log_record *rec_r,
				      const char **error_r);

/* A process's handle on a log, opened at the first append. */
struct mailbox_migrate_journal_log *
mailbox_migrate_journal_log_init(const char *db_path, bool fsync);
void mailbox_migrate_journal_log_deinit(struct mailbox_migrate_journal_log **log);

/* Append buf with one write(), creating the log if needed. Waits for a
   running fold at most lock_timeout_msecs. Returns 0 and the log's size
   after the write, or -1 with the error and its kind. A write that failed
   part way may leave a partial record, which the fold treats as damage. */
int mailbox_migrate_journal_log_append(struct mailbox_migrate_journal_log *log,
				       const buffer_t *buf,
				       unsigned int lock_timeout_msecs,
				       uoff_t *size_r,
				       enum mailbox_migrate_db_error *error_code_r,
				       const char **error_r);

/* Fold the log of db (if any) into its journal. Runs its own write
   transaction, waiting for locks at most lock_timeout_msecs (0: not at
   all). With max_entries set, prunes the journal if the fold crossed a
   prune interval (mailbox_migrate_journal_prune()). Returns the number of
   records folded, or -1 with the error and its kind (LOCKED: another
   process holds the state file or the log; CORRUPT: also when the file at
   db's path is no longer db's). Nothing was folded after a failure. */
int mailbox_migrate_journal_log_fold(struct mailbox_migrate_db *db,
				     unsigned int max_entries,
				     unsigned int lock_timeout_msecs,
				     enum mailbox_migrate_db_error *error_code_r,
				     const char **error_r);

/* TRUE if the log of the state file at db_path may hold records that are
   not folded yet (one stat(), no read). */
bool mailbox_migrate_journal_log_may_have_records(const char *db_path);
/* Returns 1 if db's log has records not folded into db (or needs replacing
   after a fold), 0 if not, -1 on error. Reads only: works on a read-only
   db. */
int mailbox_migrate_journal_log_need_fold(struct mailbox_migrate_db *db,
					  const char **error_r);

#endif
