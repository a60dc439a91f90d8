/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-sql.h"
#include "mailbox-migrate-seen.h"

int mailbox_migrate_seen_get(struct mailbox_migrate_db *db,
			     const char *mailbox_guid, uint32_t uidvalidity,
			     struct mailbox_migrate_seen_record *record_r,
			     const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(record_r);
	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_seen_get,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, uidvalidity);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret <= 0)
		return ret;
	record_r->seen_uidnext = (uint32_t)sqlite3_column_int64(stmt, 0);
	record_r->seen_at = (time_t)sqlite3_column_int64(stmt, 1);
	record_r->seen_by = t_strdup((const char *)sqlite3_column_text(stmt, 2));
	(void)sqlite3_reset(stmt);
	return 1;
}

int mailbox_migrate_seen_raise(struct mailbox_migrate_db *db,
			       const char *mailbox_guid, uint32_t uidvalidity,
			       uint32_t uidnext, time_t now,
			       const char *service, const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_seen_raise,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, uidvalidity);
	(void)sqlite3_bind_int64(stmt, 3, uidnext);
	(void)sqlite3_bind_int64(stmt, 4, now);
	(void)sqlite3_bind_text(stmt, 5, service, -1, SQLITE_STATIC);
	if (mailbox_migrate_db_exec_stmt(db, stmt, error_r) < 0)
		return -1;
	return sqlite3_changes(sqlite3_db_handle(stmt)) > 0 ? 1 : 0;
}
