#ifndef MAILBOX_MIGRATE_DB_H
#define MAILBOX_MIGRATE_DB_H

#include <sqlite3.h>

/* The per-user state file: one SQLite database in WAL mode, shared by every
   process of the user (imap, pop3, lmtp, doveadm). All functions return -1
   with an error text on failure and never log; the caller decides. */

struct mailbox_migrate_db;

enum mailbox_migrate_db_open_flags {
	/* Open for reading only: never create, upgrade or write the file.
	   Used by the inspection commands. */
	MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY = 0x01,
	/* fsync every commit (durable across power loss, slower). */
	MAILBOX_MIGRATE_DB_OPEN_FLAG_FSYNC = 0x02,
	/* Don't fold the journal log into the state file at open (the
	   plugin folds when it chooses). */
	MAILBOX_MIGRATE_DB_OPEN_FLAG_NO_FOLD = 0x04,
	/* Copy what the WAL holds into the file at open, without waiting for
	   anybody, so that this process's first write starts the WAL over
	   and the next process to open the file reads little of it (the
	   plugin's sessions don't checkpoint when they close). For doveadm,
	   off the sessions' path. Not with FSYNC (a checkpoint then costs
	   two fsyncs; the autocheckpoint every 100 pages does it). */
	MAILBOX_MIGRATE_DB_OPEN_FLAG_CHECKPOINT = 0x08,
};

enum mailbox_migrate_db_error {
	MAILBOX_MIGRATE_DB_ERROR_NONE = 0,
	/* Another process held the lock longer than the lock timeout. */
	MAILBOX_MIGRATE_DB_ERROR_LOCKED,
	/* The file is not a valid state file. */
	MAILBOX_MIGRATE_DB_ERROR_CORRUPT,
	/* The file or its directory can't be created, opened or written
	   (permissions, read-only filesystem). */
	MAILBOX_MIGRATE_DB_ERROR_NOACCESS,
	/* No space left. */
	MAILBOX_MIGRATE_DB_ERROR_FULL,
	/* Written by a newer mailbox-migrate with an unknown schema. */
	MAILBOX_MIGRATE_DB_ERROR_VERSION,
	MAILBOX_MIGRATE_DB_ERROR_OTHER,
};

/* What a database file holds: its schema, brought up to date by upgrades
   (upgrades[v-1] takes version v-1 to v; version 0 is an empty file). */
struct mailbox_migrate_db_schema {
	const char *name;
	const char *const *upgrades;
	int version;
	/* a new file gets a random journal_id in meta */
	bool journal_id;
	/* written by one process at a time (e.g. under a lock file): the
	   last to close checkpoints and removes the WAL, so that the next
	   open needn't read a big WAL to rebuild its index */
	bool checkpoint_on_close;
	/* page size of a new file, 0 for SQLite's default */
	unsigned int page_size;
};
extern const struct mailbox_migrate_db_schema mailbox_migrate_db_state_schema;

/* Open (and with write access create with mode 0600 and upgrade) the state
   file, after folding its journal log into it (see
   mailbox-migrate-journal-log.h), which also a READONLY open does when the
   log holds anything unfolded; the fold then prunes the journal to
   journal_max_entries (0: no bound; see mailbox_migrate_journal_prune()).
   Returns 1 if opened, 0 if the file doesn't exist (only with READONLY),
   -1 on error with *error_code_r and *error_r set. */
int mailbox_migrate_db_open(const char *path,
			    enum mailbox_migrate_db_open_flags flags,
			    unsigned int lock_timeout_msecs,
			    unsigned int journal_max_entries,
			    struct mailbox_migrate_db **db_r,
			    enum mailbox_migrate_db_error *error_code_r,
			    const char **error_r);
/* The same for a database of another schema (e.g. a backup store's
   index). */
int mailbox_migrate_db_open_schema(const char *path,
				   const struct mailbox_migrate_db_schema *schema,
				   enum mailbox_migrate_db_open_flags flags,
				   unsigned int lock_timeout_msecs,
				   struct mailbox_migrate_db **db_r,
				   enum mailbox_migrate_db_error *error_code_r,
				   const char **error_r);
void mailbox_migrate_db_close(struct mailbox_migrate_db **db);

const char *mailbox_migrate_db_get_path(struct mailbox_migrate_db *db);
/* FALSE if the file at the path is no longer the one opened (another
   process moved it aside as corrupt and started a new one). */
bool mailbox_migrate_db_is_at_path(struct mailbox_migrate_db *db);
/* The opened file's schema version: the schema's, except for a read-only
   open of a file an older version made. */
int mailbox_migrate_db_get_schema_version(struct mailbox_migrate_db *db);
/* Wait at most msecs for locks from now on, or again the open's timeout. */
void mailbox_migrate_db_set_lock_timeout(struct mailbox_migrate_db *db,
					 unsigned int msecs);
void mailbox_migrate_db_reset_lock_timeout(struct mailbox_migrate_db *db);
/* Kind of the last failure of any function below. */
enum mailbox_migrate_db_error
mailbox_migrate_db_get_error(struct mailbox_migrate_db *db);

/* Return a prepared statement for sql, which must be a string constant
   (statements are cached by the pointer). The statement is reset and its
   bindings cleared. */
int mailbox_migrate_db_prepare(struct mailbox_migrate_db *db, const char *sql,
			       sqlite3_stmt **stmt_r, const char **error_r);
/* Step a statement. Returns 1 when a row is available, 0 when done, -1 on
   error (the statement is then reset). */
int mailbox_migrate_db_step(struct mailbox_migrate_db *db, sqlite3_stmt *stmt,
			    const char **error_r);
/* Step a statement that returns no rows to completion and reset it. */
int mailbox_migrate_db_exec_stmt(struct mailbox_migrate_db *db,
				 sqlite3_stmt *stmt, const char **error_r);
/* Run SQL text without parameters (may contain several statements). */
int mailbox_migrate_db_exec(struct mailbox_migrate_db *db, const char *sql,
			    const char **error_r);

/* Write transactions: BEGIN IMMEDIATE takes the write lock at once, waiting
   up to the lock timeout. */
int mailbox_migrate_db_begin(struct mailbox_migrate_db *db,
			     const char **error_r);
int mailbox_migrate_db_commit(struct mailbox_migrate_db *db,
			      const char **error_r);
void mailbox_migrate_db_rollback(struct mailbox_migrate_db *db);

/* Meta key/value store. get returns 1 found, 0 not found, -1 error. */
int mailbox_migrate_db_meta_get(struct mailbox_migrate_db *db, const char *key,
				const char **value_r, const char **error_r);
int mailbox_migrate_db_meta_set(struct mailbox_migrate_db *db, const char *key,
				const char *value, const char **error_r);

/* Create the directory path is in (and its parents, mode 0700) if it is
   missing. */
int mailbox_migrate_mkdir_parent(const char *path, const char **error_r);

/* Rename a corrupt state file (and its -wal/-shm) aside as
   <path>.corrupt-<time>, so that a new one can be created. */
int mailbox_migrate_db_move_aside(const char *path, const char **new_path_r,
				  const char **error_r);

const char *mailbox_migrate_db_error_name(enum mailbox_migrate_db_error error);
/* The kind of a failure of a file operation that set errno to err. */
enum mailbox_migrate_db_error mailbox_migrate_db_errno_kind(int err);

#endif
