/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "sleep.h"
#include "time-util.h"
#include "mkdir-parents.h"
#include "guid.h"
#include "mailbox-migrate-sql.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal-log.h"

#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

struct mailbox_migrate_db_stmt {
	const char *sql;
	sqlite3_stmt *stmt;
};

struct mailbox_migrate_db {
	sqlite3 *sqlite;
	char *path;
	const struct mailbox_migrate_db_schema *schema;
	ARRAY(struct mailbox_migrate_db_stmt) stmts;
	enum mailbox_migrate_db_error error;
	unsigned int lock_timeout_msecs;
	/* the file's schema version once opened (read-only opens don't
	   upgrade) */
	int version;
	/* the file opened (another may be at the path later, after a move
	   aside) */
	dev_t dev;
	ino_t ino;
	bool in_transaction:1;
};

static enum mailbox_migrate_db_error
mailbox_migrate_db_error_from_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return MAILBOX_MIGRATE_DB_ERROR_NONE;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return MAILBOX_MIGRATE_DB_ERROR_LOCKED;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_FORMAT:
		return MAILBOX_MIGRATE_DB_ERROR_CORRUPT;
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return MAILBOX_MIGRATE_DB_ERROR_NOACCESS;
	case SQLITE_FULL:
		return MAILBOX_MIGRATE_DB_ERROR_FULL;
	default:
		return MAILBOX_MIGRATE_DB_ERROR_OTHER;
	}
}

const char *mailbox_migrate_db_error_name(enum mailbox_migrate_db_error error)
{
	switch (error) {
	case MAILBOX_MIGRATE_DB_ERROR_NONE:
		return "none";
	case MAILBOX_MIGRATE_DB_ERROR_LOCKED:
		return "locked";
	case MAILBOX_MIGRATE_DB_ERROR_CORRUPT:
		return "corrupt";
	case MAILBOX_MIGRATE_DB_ERROR_NOACCESS:
		return "no access";
	case MAILBOX_MIGRATE_DB_ERROR_FULL:
		return "disk full";
	case MAILBOX_MIGRATE_DB_ERROR_VERSION:
		return "unknown version";
	case MAILBOX_MIGRATE_DB_ERROR_OTHER:
		return "error";
	}
	i_unreached();
}

static int
mailbox_migrate_db_set_error(struct mailbox_migrate_db *db, int rc,
			     const char *func, const char **error_r)
{
	db->error = mailbox_migrate_db_error_from_sqlite(rc);
	if (db->error == MAILBOX_MIGRATE_DB_ERROR_NONE)
		db->error = MAILBOX_MIGRATE_DB_ERROR_OTHER;
	*error_r = t_strdup_printf("%s(%s) failed: %s", func, db->path,
				   sqlite3_errmsg(db->sqlite));
	return -1;
}

int mailbox_migrate_mkdir_parent(const char *path, const char **error_r)
{
	const char *p = strrchr(path, '/');

	if (p != NULL && p != path &&
	    mkdir_parents(t_strdup_until(path, p), 0700) < 0 &&
	    errno != EEXIST) {
		*error_r = t_strdup_printf("mkdir_parents(%s) failed: %m",
					   t_strdup_until(path, p));
		return -1;
	}
	return 0;
}

static int
mailbox_migrate_db_create_file(const char *path, const char **error_r)
{
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd == -1 && errno == ENOENT) {
		if (mailbox_migrate_mkdir_parent(path, error_r) < 0)
			return -1;
		fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	}
	if (fd == -1) {
		if (errno == EEXIST)
			return 0;
		*error_r = t_strdup_printf("open(%s) failed: %m", path);
		return -1;
	}
	i_close_fd(&fd);
	return 0;
}

enum mailbox_migrate_db_error mailbox_migrate_db_errno_kind(int err)
{
	switch (err) {
	case EACCES:
	case EPERM:
	case EROFS:
		return MAILBOX_MIGRATE_DB_ERROR_NOACCESS;
	case ENOSPC:
	case EDQUOT:
		return MAILBOX_MIGRATE_DB_ERROR_FULL;
	case EWOULDBLOCK:
		return MAILBOX_MIGRATE_DB_ERROR_LOCKED;
	default:
		return MAILBOX_MIGRATE_DB_ERROR_OTHER;
	}
}

static int
mailbox_migrate_db_get_version(struct mailbox_migrate_db *db, int *version_r,
			       const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	rc = sqlite3_prepare_v2(db->sqlite, "PRAGMA user_version", -1,
				&stmt, NULL);
	if (rc != SQLITE_OK)
		return mailbox_migrate_db_set_error(db, rc, "sqlite3_prepare",
						    error_r);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		(void)sqlite3_finalize(stmt);
		return mailbox_migrate_db_set_error(db, rc, "sqlite3_step",
						    error_r);
	}
	*version_r = sqlite3_column_int(stmt, 0);
	(void)sqlite3_finalize(stmt);
	return 0;
}

static int
mailbox_migrate_db_upgrade(struct mailbox_migrate_db *db, const char **error_r)
{
	guid_128_t journal_id;
	int version;
	bool new_file;

	if (mailbox_migrate_db_begin(db, error_r) < 0)
		return -1;
	/* another process may have done it while we waited for the lock */
	if (mailbox_migrate_db_get_version(db, &version, error_r) < 0) {
		mailbox_migrate_db_rollback(db);
		return -1;
	}
	new_file = version == 0;
	for (; version < db->schema->version; version++) {
		if (mailbox_migrate_db_exec(db, db->schema->upgrades[version],
				error_r) < 0) {
			mailbox_migrate_db_rollback(db);
			return -1;
		}
	}
	guid_128_generate(journal_id);
	/* journal_id names this journal: a reader's checkpoint from another
	   journal (one that was lost and made anew) is worthless here */
	if (mailbox_migrate_db_exec(db, t_strdup_printf(
			"PRAGMA user_version = %d", db->schema->version),
			error_r) < 0 ||
	    (new_file &&
	     (mailbox_migrate_db_meta_set(db, "created",
			dec2str(ioloop_time), error_r) < 0 ||
	      (db->schema->journal_id &&
	       mailbox_migrate_db_meta_set(db, "journal_id",
			guid_128_to_string(journal_id), error_r) < 0)))) {
		mailbox_migrate_db_rollback(db);
		return -1;
	}
	return mailbox_migrate_db_commit(db, error_r);
}

const struct mailbox_migrate_db_schema mailbox_migrate_db_state_schema = {
	.name = "state file",
	.upgrades = mailbox_migrate_sql_upgrades,
	.version = MAILBOX_MIGRATE_SQL_SCHEMA_VERSION,
	.journal_id = TRUE,
	/* a commit writes each page it changed to the WAL: small pages
	   make the journal append of every delivery and flag change
	   cheaper (about 15% of the plugin's cost per IMAP STORE) */
	.page_size = 1024,
};

int mailbox_migrate_db_open(const char *path,
			    enum mailbox_migrate_db_open_flags flags,
			    unsigned int lock_timeout_msecs,
			    unsigned int journal_max_entries,
			    struct mailbox_migrate_db **db_r,
			    enum mailbox_migrate_db_error *error_code_r,
			    const char **error_r)
{
	bool readonly = (flags & MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY) != 0;
	struct mailbox_migrate_db *db;
	int ret;

	ret = mailbox_migrate_db_open_schema(path,
			&mailbox_migrate_db_state_schema, flags,
			lock_timeout_msecs, db_r, error_code_r, error_r);
	if (ret < 0 || (flags & MAILBOX_MIGRATE_DB_OPEN_FLAG_NO_FOLD) != 0)
		return ret;
	db = *db_r;
	if (!readonly) {
		/* the fold looks whether there is anything to fold */
		if (mailbox_migrate_journal_log_fold(db, journal_max_entries,
						     lock_timeout_msecs,
						     error_code_r,
						     error_r) < 0) {
			mailbox_migrate_db_close(db_r);
			return -1;
		}
		return 1;
	}
	if (!mailbox_migrate_journal_log_may_have_records(path))
		return ret;
	if (db != NULL) {
		ret = mailbox_migrate_journal_log_need_fold(db, error_r);
		if (ret <= 0) {
			if (ret < 0) {
				*error_code_r = db->error !=
					MAILBOX_MIGRATE_DB_ERROR_NONE ?
					db->error : MAILBOX_MIGRATE_DB_ERROR_OTHER;
				mailbox_migrate_db_close(db_r);
			}
			return ret < 0 ? -1 : 1;
		}
		mailbox_migrate_db_close(db_r);
	}
	/* The log holds what the journal doesn't yet: fold it, then open as
	   asked. The log is part of the state, so this changes nothing a
	   reader sees, but for the size bound's pruning. */
	if (mailbox_migrate_db_open(path,
			flags & ENUM_NEGATE(MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY),
			lock_timeout_msecs, journal_max_entries, &db,
			error_code_r, error_r) < 0)
		return -1;
	mailbox_migrate_db_close(&db);
	return mailbox_migrate_db_open_schema(path,
			&mailbox_migrate_db_state_schema, flags,
			lock_timeout_msecs, db_r, error_code_r, error_r);
}

/* Switch the file to WAL (a no-op once it is). Two processes opening a new
   file at once (a session and a pass, two workers) both switch it, and
   each first reads it: SQLite answers one of them "busy" at once rather
   than wait, as either waiting for the other would never end. The loser
   tries again, within the lock timeout, and finds the file switched. */
static int mailbox_migrate_db_set_wal(struct mailbox_migrate_db *db,
				      const char **error_r)
{
	struct timeval start, now;
	unsigned int sleep_msecs = 1;
	int rc;

	i_gettimeofday(&start);
	for (;;) {
		rc = sqlite3_exec(db->sqlite, "PRAGMA journal_mode = WAL",
				  NULL, NULL, NULL);
		if ((rc & 0xff) != SQLITE_BUSY)
			break;
		i_gettimeofday(&now);
		if (timeval_diff_msecs(&now, &start) >=
		    (long long)db->lock_timeout_msecs)
			break;
		i_sleep_msecs(sleep_msecs);
		sleep_msecs = I_MIN(sleep_msecs * 2, 50);
	}
	if (rc != SQLITE_OK) {
		return mailbox_migrate_db_set_error(db, rc, "sqlite3_exec",
						    error_r);
	}
	return 0;
}

int mailbox_migrate_db_open_schema(const char *path,
				   const struct mailbox_migrate_db_schema *schema,
				   enum mailbox_migrate_db_open_flags flags,
				   unsigned int lock_timeout_msecs,
				   struct mailbox_migrate_db **db_r,
				   enum mailbox_migrate_db_error *error_code_r,
				   const char **error_r)
{
	struct mailbox_migrate_db *db;
	bool readonly = (flags & MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY) != 0;
	int rc, version, sqlite_flags;

	*db_r = NULL;
	*error_code_r = MAILBOX_MIGRATE_DB_ERROR_NONE;
	if (readonly) {
		struct stat st;

		if (stat(path, &st) < 0) {
			if (errno == ENOENT)
				return 0;
			*error_code_r = mailbox_migrate_db_errno_kind(errno);
			*error_r = t_strdup_printf("stat(%s) failed: %m", path);
			return -1;
		}
		sqlite_flags = SQLITE_OPEN_READONLY;
	} else {
		if (mailbox_migrate_db_create_file(path, error_r) < 0) {
			*error_code_r = mailbox_migrate_db_errno_kind(errno);
			return -1;
		}
		sqlite_flags = SQLITE_OPEN_READWRITE;
	}

	db = i_new(struct mailbox_migrate_db, 1);
	db->path = i_strdup(path);
	db->schema = schema;
	i_array_init(&db->stmts, 16);
	rc = sqlite3_open_v2(path, &db->sqlite,
			     sqlite_flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		(void)mailbox_migrate_db_set_error(db, rc, "sqlite3_open",
						   error_r);
		goto failed;
	}
	(void)sqlite3_extended_result_codes(db->sqlite, 1);
	db->lock_timeout_msecs = lock_timeout_msecs;
	(void)sqlite3_busy_timeout(db->sqlite, (int)lock_timeout_msecs);

	if (mailbox_migrate_db_get_version(db, &version, error_r) < 0)
		goto failed;
	if (version > schema->version) {
		db->error = MAILBOX_MIGRATE_DB_ERROR_VERSION;
		*error_r = t_strdup_printf("%s has schema version %d, "
			"this mailbox-migrate knows only up to %d", path,
			version, schema->version);
		goto failed;
	}
	if (readonly) {
		if (version == 0) {
			/* created but never initialized: no state yet */
			mailbox_migrate_db_close(&db);
			return 0;
		}
	} else {
		/* Every session of the user opens the file and writes a
		   little at each commit. WAL makes a commit a few appends;
		   not checkpointing when a session closes, and checkpointing
		   every 100 pages instead, keeps a short session (one LMTP
		   delivery) from paying a whole checkpoint, and the WAL a
		   new session must read small. Without fsync a process crash
		   loses nothing; a power loss may lose the last writes or
		   (rarely) corrupt the file, which the plugin detects and
		   turns into a gap, as it does when Dovecot's own (not
		   fsynced) index loses changes. */
		if (!schema->checkpoint_on_close) {
			(void)sqlite3_db_config(db->sqlite,
					SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
					NULL);
		}
		/* takes effect only while the file is empty, so before
		   journal_mode writes its first page */
		if (version == 0 && schema->page_size != 0 &&
		    mailbox_migrate_db_exec(db, t_strdup_printf(
				"PRAGMA page_size = %u", schema->page_size),
				error_r) < 0)
			goto failed;
		if (mailbox_migrate_db_set_wal(db, error_r) < 0 ||
		    mailbox_migrate_db_exec(db,
				(flags & MAILBOX_MIGRATE_DB_OPEN_FLAG_FSYNC) != 0 ?
				"PRAGMA synchronous = FULL; "
				"PRAGMA wal_autocheckpoint = 100" :
				"PRAGMA synchronous = OFF; "
				"PRAGMA wal_autocheckpoint = 100", error_r) < 0)
			goto failed;
		if (version < schema->version &&
		    mailbox_migrate_db_upgrade(db, error_r) < 0)
			goto failed;
		version = schema->version;
		/* never truncates the WAL: freeing its blocks is, with online
		   discard, a synchronous discard */
		if ((flags & MAILBOX_MIGRATE_DB_OPEN_FLAG_CHECKPOINT) != 0 &&
		    (flags & MAILBOX_MIGRATE_DB_OPEN_FLAG_FSYNC) == 0) {
			(void)sqlite3_wal_checkpoint_v2(db->sqlite, NULL,
					SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		}
	}
	db->version = version;
	{
		struct stat st;

		if (stat(path, &st) == 0) {
			db->dev = st.st_dev;
			db->ino = st.st_ino;
		}
	}
	*db_r = db;
	return 1;

failed:
	*error_code_r = db->error;
	mailbox_migrate_db_close(&db);
	return -1;
}

void mailbox_migrate_db_close(struct mailbox_migrate_db **_db)
{
	struct mailbox_migrate_db *db = *_db;
	struct mailbox_migrate_db_stmt *s;

	if (db == NULL)
		return;
	*_db = NULL;

	array_foreach_modifiable(&db->stmts, s)
		(void)sqlite3_finalize(s->stmt);
	array_free(&db->stmts);
	if (db->sqlite != NULL && db->schema->checkpoint_on_close &&
	    sqlite3_total_changes(db->sqlite) == 0) {
		/* nothing written through this handle: a checkpoint would
		   only remove and remake the (empty) WAL */
		(void)sqlite3_db_config(db->sqlite,
					SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
					NULL);
	}
	if (db->sqlite != NULL)
		(void)sqlite3_close(db->sqlite);
	i_free(db->path);
	i_free(db);
}

int mailbox_migrate_db_get_schema_version(struct mailbox_migrate_db *db)
{
	return db->version;
}

bool mailbox_migrate_db_is_at_path(struct mailbox_migrate_db *db)
{
	struct stat st;

	return stat(db->path, &st) == 0 && st.st_dev == db->dev &&
		st.st_ino == db->ino;
}

void mailbox_migrate_db_set_lock_timeout(struct mailbox_migrate_db *db,
					 unsigned int msecs)
{
	(void)sqlite3_busy_timeout(db->sqlite, (int)msecs);
}

void mailbox_migrate_db_reset_lock_timeout(struct mailbox_migrate_db *db)
{
	(void)sqlite3_busy_timeout(db->sqlite, (int)db->lock_timeout_msecs);
}

const char *mailbox_migrate_db_get_path(struct mailbox_migrate_db *db)
{
	return db->path;
}

enum mailbox_migrate_db_error
mailbox_migrate_db_get_error(struct mailbox_migrate_db *db)
{
	return db->error;
}

int mailbox_migrate_db_prepare(struct mailbox_migrate_db *db, const char *sql,
			       sqlite3_stmt **stmt_r, const char **error_r)
{
	struct mailbox_migrate_db_stmt *s, new_stmt;
	int rc;

	array_foreach_modifiable(&db->stmts, s) {
		if (s->sql == sql) {
			(void)sqlite3_reset(s->stmt);
			(void)sqlite3_clear_bindings(s->stmt);
			*stmt_r = s->stmt;
			return 0;
		}
	}
	i_zero(&new_stmt);
	new_stmt.sql = sql;
	rc = sqlite3_prepare_v3(db->sqlite, sql, -1, SQLITE_PREPARE_PERSISTENT,
				&new_stmt.stmt, NULL);
	if (rc != SQLITE_OK)
		return mailbox_migrate_db_set_error(db, rc, "sqlite3_prepare",
						    error_r);
	array_push_back(&db->stmts, &new_stmt);
	*stmt_r = new_stmt.stmt;
	return 0;
}

int mailbox_migrate_db_step(struct mailbox_migrate_db *db, sqlite3_stmt *stmt,
			    const char **error_r)
{
	int rc;

	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	(void)mailbox_migrate_db_set_error(db, rc, "sqlite3_step", error_r);
	(void)sqlite3_reset(stmt);
	return -1;
}

int mailbox_migrate_db_exec_stmt(struct mailbox_migrate_db *db,
				 sqlite3_stmt *stmt, const char **error_r)
{
	int ret;

	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) ;
	if (ret == 0)
		(void)sqlite3_reset(stmt);
	return ret;
}

int mailbox_migrate_db_exec(struct mailbox_migrate_db *db, const char *sql,
			    const char **error_r)
{
	int rc;

	rc = sqlite3_exec(db->sqlite, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return mailbox_migrate_db_set_error(db, rc, "sqlite3_exec",
						    error_r);
	return 0;
}

/* BEGIN and COMMIT run at every change the user makes: prepared once per
   connection instead of parsed each time. */
static const char mailbox_migrate_db_sql_begin[] = "BEGIN IMMEDIATE";
static const char mailbox_migrate_db_sql_commit[] = "COMMIT";

int mailbox_migrate_db_begin(struct mailbox_migrate_db *db,
			     const char **error_r)
{
	sqlite3_stmt *stmt;

	i_assert(!db->in_transaction);

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_db_sql_begin,
				       &stmt, error_r) < 0 ||
	    mailbox_migrate_db_exec_stmt(db, stmt, error_r) < 0)
		return -1;
	db->in_transaction = TRUE;
	return 0;
}

int mailbox_migrate_db_commit(struct mailbox_migrate_db *db,
			      const char **error_r)
{
	sqlite3_stmt *stmt;

	i_assert(db->in_transaction);

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_db_sql_commit,
				       &stmt, error_r) < 0 ||
	    mailbox_migrate_db_exec_stmt(db, stmt, error_r) < 0) {
		mailbox_migrate_db_rollback(db);
		return -1;
	}
	db->in_transaction = FALSE;
	return 0;
}

void mailbox_migrate_db_rollback(struct mailbox_migrate_db *db)
{
	i_assert(db->in_transaction);

	/* fails harmlessly if SQLite already rolled back by itself */
	(void)sqlite3_exec(db->sqlite, "ROLLBACK", NULL, NULL, NULL);
	db->in_transaction = FALSE;
}

int mailbox_migrate_db_meta_get(struct mailbox_migrate_db *db, const char *key,
				const char **value_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_meta_get,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret > 0) {
		*value_r = t_strdup((const char *)sqlite3_column_text(stmt, 0));
		(void)sqlite3_reset(stmt);
	}
	return ret;
}

int mailbox_migrate_db_meta_set(struct mailbox_migrate_db *db, const char *key,
				const char *value, const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_meta_set,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 2, value, -1, SQLITE_STATIC);
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

int mailbox_migrate_db_move_aside(const char *path, const char **new_path_r,
				  const char **error_r)
{
	static const char *const suffixes[] = { "-journal", "-wal", "-shm" };
	const char *new_path;
	unsigned int i;

	new_path = t_strdup_printf("%s.corrupt-%ld", path, (long)ioloop_time);
	if (rename(path, new_path) < 0 && errno != ENOENT) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   path, new_path);
		return -1;
	}
	for (i = 0; i < N_ELEMENTS(suffixes); i++) {
		const char *from = t_strconcat(path, suffixes[i], NULL);
		const char *to = t_strconcat(new_path, suffixes[i], NULL);

		if (rename(from, to) < 0 && errno != ENOENT) {
			*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
						   from, to);
			return -1;
		}
	}
	*new_path_r = new_path;
	return 0;
}
