#ifndef MAILBOX_MIGRATE_BACKUP_STORE_H
#define MAILBOX_MIGRATE_BACKUP_STORE_H

#include "mailbox-migrate-backup-member.h"
#include "mailbox-migrate-backup-index.h"

struct mailbox_migrate_backup_line;

/* One user's backup store: a directory holding
     index.db              the index (mailbox-migrate-backup-index.h)
     data-<N>.tar.gz|.zst  the data file: members of one compressed tar
                           stream, appended to by each pass and rewritten
                           (N+1) by compaction
     lock                  flock()ed by every process using the store
   The index says how many bytes of the data file are committed: anything
   after them is an unfinished pass, cut when the store is next opened for
   writing. A pass appends its new bodies, then its state record, syncs
   the data file, and only then commits the index: the index never points
   at bytes that aren't durably there. */

#define MAILBOX_MIGRATE_BACKUP_INDEX_NAME "index.db"
#define MAILBOX_MIGRATE_BACKUP_LOCK_NAME "lock"
/* a member is closed once it holds this much (uncompressed) */
#define MAILBOX_MIGRATE_BACKUP_MEMBER_SIZE (1024 * 1024)

enum mailbox_migrate_backup_open_flags {
	/* make the store if it doesn't exist */
	MAILBOX_MIGRATE_BACKUP_OPEN_CREATE = 0x01,
	/* read only: shared lock, nothing cut or cleaned */
	MAILBOX_MIGRATE_BACKUP_OPEN_READONLY = 0x02,
	/* open even without a usable index (reindex) */
	MAILBOX_MIGRATE_BACKUP_OPEN_NO_INDEX = 0x04,
};

struct mailbox_migrate_backup_store {
	pool_t pool;
	const char *dir;
	struct mailbox_migrate_db *index;
	enum mailbox_migrate_backup_compression compression;
	unsigned int generation;
	const char *data_path;
	int data_fd;
	/* committed bytes of the data file */
	uoff_t data_size;
	/* bytes of an unfinished pass cut at open */
	uoff_t cut_bytes;
	/* restore --at before this time is refused: compacted away */
	time_t history_since;

	int lock_fd;
	bool readonly;
	/* the data file was made by this open: its directory entry must be
	   synced too */
	bool data_created;

	/* a pass being appended */
	struct mailbox_migrate_backup_append *append;
	/* the last member read */
	uoff_t cached_offset;
	buffer_t *cached_member;
};

/* Open the store at dir (with CREATE, making it with compression if it
   doesn't exist). Waits up to lock_timeout_secs for another process'
   lock. Returns 1, 0 if there is no store (without CREATE), -1 with
   *error_r. */
int mailbox_migrate_backup_store_open(const char *dir,
		enum mailbox_migrate_backup_open_flags flags,
		enum mailbox_migrate_backup_compression compression,
		unsigned int lock_timeout_secs,
		struct mailbox_migrate_backup_store **store_r,
		const char **error_r);
void mailbox_migrate_backup_store_close(struct mailbox_migrate_backup_store **store);

/* What the store's files are now: the data file data_name (a name in dir,
   e.g. the base name of store->data_path), the index and its WAL, each by
   inode, size and mtime. A fingerprint equal to one taken after a pass
   means nobody has written to (or replaced) the store since. NULL if a
   file can't be stat()ed. */
const char *
mailbox_migrate_backup_store_fingerprint(const char *dir,
					 const char *data_name);

/* TRUE if the store's files are what fingerprint (an earlier
   mailbox_migrate_backup_store_fingerprint()) says they were. */
bool mailbox_migrate_backup_store_fingerprint_matches(const char *dir,
						      const char *fingerprint);

/* Path of data file generation gen. */
const char *
mailbox_migrate_backup_store_data_path(struct mailbox_migrate_backup_store *store,
				       unsigned int gen);

/* SHA-256 of data, as the store names bodies. */
const char *mailbox_migrate_backup_hash(const void *data, size_t size);

/* A pass: begin, add bodies and lines, commit (or abort, which cuts what
   was appended). */
void mailbox_migrate_backup_store_pass_begin(struct mailbox_migrate_backup_store *store,
					     time_t now);
/* 1 if the store (or this pass) has the body, 0 if not, -1 on error. */
int mailbox_migrate_backup_store_has_body(struct mailbox_migrate_backup_store *store,
					  const char *hash,
					  const char **error_r);
void mailbox_migrate_backup_store_add_body(struct mailbox_migrate_backup_store *store,
					   const char *hash,
					   const void *data, size_t size);
void mailbox_migrate_backup_store_add_line(struct mailbox_migrate_backup_store *store,
		const struct mailbox_migrate_backup_line *line);
/* Number of lines added to the current pass. */
unsigned int mailbox_migrate_backup_store_pass_lines(struct mailbox_migrate_backup_store *store);
/* Write the pass' record, sync, commit the index. A pass with no lines
   writes nothing. Returns 0, or -1 (the appended bytes cut again). */
int mailbox_migrate_backup_store_pass_commit(struct mailbox_migrate_backup_store *store,
					     const char **error_r);
void mailbox_migrate_backup_store_pass_abort(struct mailbox_migrate_backup_store *store);

/* Low level: appends body entries and, at the end, a record entry to a
   data file from offset (passes and compaction). Bodies are grouped into
   members of about MAILBOX_MIGRATE_BACKUP_MEMBER_SIZE; the record gets a
   member of its own. */
struct mailbox_migrate_backup_append *
mailbox_migrate_backup_append_init(int fd, uoff_t offset,
		enum mailbox_migrate_backup_compression compression,
		time_t mtime);
void mailbox_migrate_backup_append_deinit(struct mailbox_migrate_backup_append **append);
/* Has this append written the body? */
bool mailbox_migrate_backup_append_has_body(struct mailbox_migrate_backup_append *append,
					    const char *hash);
/* Append a body (once per hash). */
void mailbox_migrate_backup_append_body(struct mailbox_migrate_backup_append *append,
					const char *hash,
					const void *data, size_t size);
/* End the open member, append the record entry in a member of its own.
   After this the bodies' places are known. Returns 0 or -1. */
int mailbox_migrate_backup_append_finish(struct mailbox_migrate_backup_append *append,
					 const char *record_name,
					 const string_t *record,
					 uoff_t *record_offset_r,
					 uoff_t *record_size_r,
					 const char **error_r);
ARRAY_DEFINE_TYPE(mailbox_migrate_backup_body,
		  struct mailbox_migrate_backup_body);
const ARRAY_TYPE(mailbox_migrate_backup_body) *
mailbox_migrate_backup_append_bodies(struct mailbox_migrate_backup_append *append);

/* Parse a record's text and apply it to the index as pass pass_id
   (inside the caller's transaction). A snapshot record resets the index
   first. Returns 0 or -1. */
int mailbox_migrate_backup_store_apply_record(struct mailbox_migrate_db *index,
					      const char *text, size_t size,
					      uint32_t *pass_id_r,
					      time_t *time_r,
					      const char **error_r);

/* Read a body: *data_r points to size bytes valid until the next read.
   The tar header and the SHA-256 are checked. Returns 0, or -1 with
   *error_r naming the problem and its offset. */
int mailbox_migrate_backup_store_read_body(struct mailbox_migrate_backup_store *store,
		const struct mailbox_migrate_backup_body *body,
		const unsigned char **data_r, const char **error_r);

/* Walk the data file up to limit: one call per tar entry (data is its
   content), and one per member that can't be read (entry_name NULL,
   error set); after such a member the walk goes on at the next offset
   where a member starts. callback returns 0 to go on, -1 to stop. */
struct mailbox_migrate_backup_entry {
	uoff_t member_offset, member_size, entry_offset;
	const char *name;
	const unsigned char *data;
	uoff_t size;
	/* a member that couldn't be read */
	const char *error;
};
typedef int mailbox_migrate_backup_scan_callback_t(
		const struct mailbox_migrate_backup_entry *entry,
		void *context);
/* Returns 0 (the walk reached limit or a callback stopped it), or -1 if
   reading failed (I/O). *end_r is the end of the last member read whole. */
int mailbox_migrate_backup_store_scan(struct mailbox_migrate_backup_store *store,
		uoff_t limit, mailbox_migrate_backup_scan_callback_t *callback,
		void *context, uoff_t *end_r, const char **error_r);

/* Make the data file (fd != -1) and the store's directory (dir != NULL)
   durable. */
int mailbox_migrate_backup_store_sync(int fd, const char *dir,
				      const char **error_r);

#endif
