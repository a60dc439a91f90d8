/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-sql.h"
#include "mailbox-migrate-destination.h"

static const char *column_str(sqlite3_stmt *stmt, int col)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);

	return text == NULL ? "" : t_strdup((const char *)text);
}

int mailbox_migrate_destination_get(struct mailbox_migrate_db *db,
				    const char *name,
				    struct mailbox_migrate_destination *dest_r,
				    const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(dest_r);
	dest_r->name = name;
	dest_r->phase = MAILBOX_MIGRATE_PHASE_NONE;
	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_destination_get,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret <= 0)
		return ret;
	dest_r->checkpoint_seq = (uint64_t)sqlite3_column_int64(stmt, 0);
	dest_r->last_pass = (time_t)sqlite3_column_int64(stmt, 1);
	dest_r->phase = column_str(stmt, 2);
	(void)sqlite3_reset(stmt);
	return 1;
}

int mailbox_migrate_destination_list(struct mailbox_migrate_db *db,
		ARRAY_TYPE(mailbox_migrate_destination) *dests,
		const char **error_r)
{
	struct mailbox_migrate_destination *dest;
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_destination_list,
			&stmt, error_r) < 0)
		return -1;
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) {
		dest = array_append_space(dests);
		dest->name = column_str(stmt, 0);
		dest->checkpoint_seq = (uint64_t)sqlite3_column_int64(stmt, 1);
		dest->last_pass = (time_t)sqlite3_column_int64(stmt, 2);
		dest->phase = column_str(stmt, 3);
	}
	return ret;
}

int mailbox_migrate_destination_set(struct mailbox_migrate_db *db,
			const struct mailbox_migrate_destination *dest,
			const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_destination_set,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, dest->name, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, (sqlite3_int64)dest->checkpoint_seq);
	(void)sqlite3_bind_int64(stmt, 3, dest->last_pass);
	(void)sqlite3_bind_text(stmt, 4, dest->phase, -1, SQLITE_STATIC);
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

int mailbox_migrate_destination_mailbox_get(struct mailbox_migrate_db *db,
		const char *dest_name, const char *mailbox_guid,
		struct mailbox_migrate_destination_mailbox *rec_r,
		const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(rec_r);
	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_destination_mailbox_get,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, dest_name, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 2, mailbox_guid, -1, SQLITE_STATIC);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret <= 0)
		return ret;
	rec_r->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 0);
	rec_r->src_uidnext = (uint32_t)sqlite3_column_int64(stmt, 1);
	rec_r->src_modseq = (uint64_t)sqlite3_column_int64(stmt, 2);
	rec_r->dst_modseq = (uint64_t)sqlite3_column_int64(stmt, 3);
	rec_r->raised_uidnext = (uint32_t)sqlite3_column_int64(stmt, 4);
	rec_r->lost_count = (uint32_t)sqlite3_column_int64(stmt, 5);
	(void)sqlite3_reset(stmt);
	return 1;
}

int mailbox_migrate_destination_mailbox_set(struct mailbox_migrate_db *db,
		const char *dest_name, const char *mailbox_guid,
		const struct mailbox_migrate_destination_mailbox *rec,
		const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_destination_mailbox_set,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, dest_name, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 2, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 3, rec->uidvalidity);
	(void)sqlite3_bind_int64(stmt, 4, rec->src_uidnext);
	(void)sqlite3_bind_int64(stmt, 5, (sqlite3_int64)rec->src_modseq);
	(void)sqlite3_bind_int64(stmt, 6, (sqlite3_int64)rec->dst_modseq);
	(void)sqlite3_bind_int64(stmt, 7, rec->raised_uidnext);
	(void)sqlite3_bind_int64(stmt, 8, rec->lost_count);
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

int mailbox_migrate_destination_mailbox_delete(struct mailbox_migrate_db *db,
		const char *dest_name, const char *mailbox_guid,
		const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_destination_mailbox_delete,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, dest_name, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 2, mailbox_guid, -1, SQLITE_STATIC);
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

bool mailbox_migrate_phase_is_cutover(const char *phase)
{
	return str_begins(phase, "cutover:");
}

bool mailbox_migrate_destination_is_routine(
	const struct mailbox_migrate_destination *dest, const char **reason_r)
{
	if (dest->checkpoint_seq == 0 && dest->last_pass == 0) {
		*reason_r = "no pass to it yet (the first one is run with "
			"doveadm mailbox-migrate)";
		return FALSE;
	}
	if (strcmp(dest->phase, MAILBOX_MIGRATE_PHASE_DONE) == 0 ||
	    mailbox_migrate_phase_is_cutover(dest->phase)) {
		*reason_r = t_strdup_printf("phase %s", dest->phase);
		return FALSE;
	}
	return TRUE;
}
