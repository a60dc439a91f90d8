/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "seq-range-array.h"
#include "hash.h"
#include "mailbox-migrate-backup-record.h"
#include "mailbox-migrate-backup-index.h"

static const char *const backup_index_upgrades[] = {
	/* 0 -> 1 */
	"CREATE TABLE meta (\n"
	"  key TEXT PRIMARY KEY NOT NULL,\n"
	"  value TEXT NOT NULL\n"
	");\n"
	"CREATE TABLE pass (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  time INTEGER NOT NULL,\n"
	"  record_offset INTEGER NOT NULL,\n"
	"  record_size INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE body (\n"
	"  hash TEXT PRIMARY KEY NOT NULL,\n"
	"  size INTEGER NOT NULL,\n"
	"  member_offset INTEGER NOT NULL,\n"
	"  member_size INTEGER NOT NULL,\n"
	"  entry_offset INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE mailbox (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  guid TEXT NOT NULL,\n"
	"  uidvalidity INTEGER NOT NULL,\n"
	"  name TEXT NOT NULL,\n"
	"  from_pass INTEGER NOT NULL,\n"
	"  until_pass INTEGER\n"
	");\n"
	"CREATE INDEX mailbox_guid ON mailbox (guid);\n"
	"CREATE TABLE message (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  mailbox_guid TEXT NOT NULL,\n"
	"  uid INTEGER NOT NULL,\n"
	"  guid TEXT NOT NULL,\n"
	"  hash TEXT NOT NULL,\n"
	"  size INTEGER NOT NULL,\n"
	"  flags INTEGER NOT NULL,\n"
	"  keywords TEXT NOT NULL,\n"
	"  received INTEGER NOT NULL,\n"
	"  saved INTEGER NOT NULL,\n"
	"  pop3_uidl TEXT NOT NULL,\n"
	"  pop3_order INTEGER NOT NULL,\n"
	"  from_pass INTEGER NOT NULL,\n"
	"  until_pass INTEGER\n"
	");\n"
	"CREATE INDEX message_box ON message (mailbox_guid, uid);\n",
	/* 1 -> 2 */
	"CREATE TABLE list_state (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  kind TEXT NOT NULL,\n"
	"  key TEXT NOT NULL,\n"
	"  value TEXT NOT NULL,\n"
	"  from_pass INTEGER NOT NULL,\n"
	"  until_pass INTEGER\n"
	");\n"
	"CREATE INDEX list_state_key ON list_state (kind, key);\n",
};

/* list_state kinds: a subscribed name (value ""), a mailbox GUID's
   special-use flags */
#define STATE_SUBSCRIBED "subscribed"
#define STATE_SPECIAL_USE "special_use"
/* the schema version that has list_state: a read-only open doesn't
   upgrade an older index, which then has none of it */
#define BACKUP_INDEX_VERSION_LIST_STATE 2

const struct mailbox_migrate_db_schema mailbox_migrate_backup_index_schema = {
	.name = "backup index",
	.upgrades = backup_index_upgrades,
	.version = N_ELEMENTS(backup_index_upgrades),
	.journal_id = FALSE,
	.checkpoint_on_close = TRUE,
};

/* a row as of pass ?P, or current with ?P = 0 */
#define AT_PASS(p) \
	"((" p " = 0 AND until_pass IS NULL) OR " \
	"(" p " > 0 AND from_pass <= " p " AND " \
	"(until_pass IS NULL OR until_pass > " p ")))"

static const char sql_pass_add[] =
	"INSERT OR REPLACE INTO pass (id, time, record_offset, record_size) "
	"VALUES (?1, ?2, ?3, ?4)";
static const char sql_last_pass[] =
	"SELECT id, time FROM pass ORDER BY id DESC LIMIT 1";
static const char sql_pass_at[] =
	"SELECT id, time FROM pass WHERE time <= ?1 ORDER BY id DESC LIMIT 1";
static const char sql_body_add[] =
	"INSERT OR REPLACE INTO body "
	"(hash, size, member_offset, member_size, entry_offset) "
	"VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_body_get[] =
	"SELECT size, member_offset, member_size, entry_offset "
	"FROM body WHERE hash = ?1";
static const char sql_bodies[] =
	"SELECT hash, size, member_offset, member_size, entry_offset "
	"FROM body ORDER BY member_offset, entry_offset";
static const char sql_bodies_clear[] = "DELETE FROM body";
static const char sql_mailbox_live[] =
	"SELECT id, uidvalidity, name FROM mailbox "
	"WHERE guid = ?1 AND until_pass IS NULL";
static const char sql_mailbox_end[] =
	"UPDATE mailbox SET until_pass = ?2 WHERE id = ?1";
static const char sql_mailbox_insert[] =
	"INSERT INTO mailbox (guid, uidvalidity, name, from_pass, until_pass) "
	"VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_mailbox_get[] =
	"SELECT uidvalidity, name FROM mailbox WHERE guid = ?1 AND "
	AT_PASS("?2") " ORDER BY id DESC LIMIT 1";
static const char sql_mailboxes[] =
	"SELECT guid, uidvalidity, name FROM mailbox WHERE "
	AT_PASS("?1") " ORDER BY name";
static const char sql_messages_end_box[] =
	"UPDATE message SET until_pass = ?2 "
	"WHERE mailbox_guid = ?1 AND until_pass IS NULL";
static const char sql_messages_drop_box[] =
	"DELETE FROM message "
	"WHERE mailbox_guid = ?1 AND until_pass IS NULL AND from_pass = ?2";
static const char sql_message_live[] =
	"SELECT id, from_pass FROM message "
	"WHERE mailbox_guid = ?1 AND uid = ?2 AND until_pass IS NULL";
static const char sql_message_end[] =
	"UPDATE message SET until_pass = ?2 WHERE id = ?1";
static const char sql_message_delete[] =
	"DELETE FROM message WHERE id = ?1";
static const char sql_message_insert[] =
	"INSERT INTO message (mailbox_guid, uid, guid, hash, size, flags, "
	"keywords, received, saved, pop3_uidl, pop3_order, from_pass, "
	"until_pass) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
	"?12, ?13)";
static const char sql_message_set_flags[] =
	"UPDATE message SET flags = ?2, keywords = ?3 WHERE id = ?1";
static const char sql_message_copy_flags[] =
	"INSERT INTO message (mailbox_guid, uid, guid, hash, size, flags, "
	"keywords, received, saved, pop3_uidl, pop3_order, from_pass) "
	"SELECT mailbox_guid, uid, guid, hash, size, ?2, ?3, received, saved, "
	"pop3_uidl, pop3_order, ?4 FROM message WHERE id = ?1";
#define MESSAGE_COLUMNS "uid, guid, hash, size, flags, keywords, received, " \
	"saved, pop3_uidl, pop3_order, from_pass"
static const char sql_messages[] =
	"SELECT " MESSAGE_COLUMNS " FROM message "
	"WHERE mailbox_guid = ?1 AND " AT_PASS("?2") " ORDER BY uid";
static const char sql_message_uid[] =
	"SELECT " MESSAGE_COLUMNS " FROM message "
	"WHERE mailbox_guid = ?1 AND uid = ?3 AND " AT_PASS("?2");
static const char sql_state_live[] =
	"SELECT id, value FROM list_state "
	"WHERE kind = ?1 AND key = ?2 AND until_pass IS NULL";
static const char sql_state_end[] =
	"UPDATE list_state SET until_pass = ?2 WHERE id = ?1";
static const char sql_state_insert[] =
	"INSERT INTO list_state (kind, key, value, from_pass, until_pass) "
	"VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_state_get[] =
	"SELECT value FROM list_state WHERE kind = ?1 AND key = ?2 AND "
	AT_PASS("?3") " ORDER BY id DESC LIMIT 1";
static const char sql_state_list[] =
	"SELECT key FROM list_state WHERE kind = ?1 AND " AT_PASS("?2")
	" ORDER BY key";
static const char sql_reset[] =
	"DELETE FROM message; DELETE FROM mailbox; DELETE FROM pass; "
	"DELETE FROM list_state";
static const char sql_stats_passes[] = "SELECT count(*) FROM pass";
static const char sql_stats_mailboxes[] =
	"SELECT count(*) FROM mailbox WHERE until_pass IS NULL";
static const char sql_stats_messages[] =
	"SELECT count(*) FROM message WHERE until_pass IS NULL";
static const char sql_stats_bodies[] =
	"SELECT count(*), coalesce(sum(size), 0) FROM body";
/* kept: a message row current, or ended by a pass after ?1 */
#define ROW_KEPT(alias) \
	"(" alias "until_pass IS NULL OR " alias "until_pass IN " \
	"(SELECT id FROM pass WHERE time > ?1))"
/* no index on message.hash (it would cost every message row as much
   again): compaction's queries build their set once */
static const char sql_stats_dead[] =
	"SELECT count(*), coalesce(sum(size), 0) FROM body WHERE hash NOT IN "
	"(SELECT hash FROM message WHERE " ROW_KEPT("") ")";
static const char sql_needed_bodies[] =
	"SELECT DISTINCT hash FROM message WHERE " ROW_KEPT("");
static const char sql_missing_bodies[] =
	"SELECT count(*), min(hash) FROM message m WHERE NOT EXISTS "
	"(SELECT 1 FROM body b WHERE b.hash = m.hash)";
static const char sql_snapshot_passes[] =
	"SELECT id, time FROM pass ORDER BY id";
static const char sql_snapshot_mailboxes[] =
	"SELECT guid, uidvalidity, name, from_pass, coalesce(until_pass, 0) "
	"FROM mailbox WHERE " ROW_KEPT("") " ORDER BY id";
static const char sql_snapshot_state[] =
	"SELECT kind, key, value, from_pass, coalesce(until_pass, 0) "
	"FROM list_state WHERE " ROW_KEPT("") " ORDER BY id";
static const char sql_snapshot_messages[] =
	"SELECT mailbox_guid, uid, guid, hash, size, flags, keywords, "
	"received, saved, pop3_uidl, pop3_order, from_pass, "
	"coalesce(until_pass, 0) FROM message WHERE " ROW_KEPT("")
	" ORDER BY id";

static const char *col_str(sqlite3_stmt *stmt, int col)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);

	return text == NULL ? "" : t_strdup((const char *)text);
}

static int exec_done(struct mailbox_migrate_db *db, sqlite3_stmt *stmt,
		     const char **error_r)
{
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

int mailbox_migrate_backup_index_pass_add(struct mailbox_migrate_db *db,
					  uint32_t pass_id, time_t time,
					  uoff_t record_offset,
					  uoff_t record_size,
					  const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, sql_pass_add, &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, pass_id);
	(void)sqlite3_bind_int64(stmt, 2, time);
	(void)sqlite3_bind_int64(stmt, 3, record_offset);
	(void)sqlite3_bind_int64(stmt, 4, record_size);
	return exec_done(db, stmt, error_r);
}

static int pass_query(struct mailbox_migrate_db *db, const char *sql,
		      time_t t, bool bind, uint32_t *pass_id_r,
		      time_t *time_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql, &stmt, error_r) < 0)
		return -1;
	if (bind)
		(void)sqlite3_bind_int64(stmt, 1, t);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret > 0) {
		*pass_id_r = sqlite3_column_int64(stmt, 0);
		*time_r = sqlite3_column_int64(stmt, 1);
		(void)sqlite3_reset(stmt);
	}
	return ret;
}

int mailbox_migrate_backup_index_last_pass(struct mailbox_migrate_db *db,
					   uint32_t *pass_id_r, time_t *time_r,
					   const char **error_r)
{
	return pass_query(db, sql_last_pass, 0, FALSE, pass_id_r, time_r,
			  error_r);
}

int mailbox_migrate_backup_index_pass_at(struct mailbox_migrate_db *db,
					 time_t t, uint32_t *pass_id_r,
					 time_t *time_r, const char **error_r)
{
	return pass_query(db, sql_pass_at, t, TRUE, pass_id_r, time_r,
			  error_r);
}

int mailbox_migrate_backup_index_body_add(struct mailbox_migrate_db *db,
		const struct mailbox_migrate_backup_body *body,
		const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, sql_body_add, &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, body->hash, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, body->size);
	(void)sqlite3_bind_int64(stmt, 3, body->member_offset);
	(void)sqlite3_bind_int64(stmt, 4, body->member_size);
	(void)sqlite3_bind_int64(stmt, 5, body->entry_offset);
	return exec_done(db, stmt, error_r);
}

int mailbox_migrate_backup_index_body_get(struct mailbox_migrate_db *db,
		const char *hash, struct mailbox_migrate_backup_body *body_r,
		const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql_body_get, &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, hash, -1, SQLITE_STATIC);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret > 0) {
		body_r->hash = t_strdup(hash);
		body_r->size = sqlite3_column_int64(stmt, 0);
		body_r->member_offset = sqlite3_column_int64(stmt, 1);
		body_r->member_size = sqlite3_column_int64(stmt, 2);
		body_r->entry_offset = sqlite3_column_int64(stmt, 3);
		(void)sqlite3_reset(stmt);
	}
	return ret;
}

int mailbox_migrate_backup_index_bodies(struct mailbox_migrate_db *db,
		mailbox_migrate_backup_body_callback_t *callback,
		void *context, const char **error_r)
{
	struct mailbox_migrate_backup_body body;
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql_bodies, &stmt, error_r) < 0)
		return -1;
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) {
		T_BEGIN {
			body.hash = col_str(stmt, 0);
			body.size = sqlite3_column_int64(stmt, 1);
			body.member_offset = sqlite3_column_int64(stmt, 2);
			body.member_size = sqlite3_column_int64(stmt, 3);
			body.entry_offset = sqlite3_column_int64(stmt, 4);
			ret = callback(&body, context);
		} T_END;
		if (ret < 0) {
			(void)sqlite3_reset(stmt);
			*error_r = "stopped";
			return -1;
		}
	}
	return ret;
}

int mailbox_migrate_backup_index_bodies_clear(struct mailbox_migrate_db *db,
					      const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, sql_bodies_clear, &stmt,
				       error_r) < 0)
		return -1;
	return exec_done(db, stmt, error_r);
}

static bool backup_index_has_list_state(struct mailbox_migrate_db *db)
{
	return mailbox_migrate_db_get_schema_version(db) >=
		BACKUP_INDEX_VERSION_LIST_STATE;
}

int mailbox_migrate_backup_index_reset(struct mailbox_migrate_db *db,
				       const char **error_r)
{
	return mailbox_migrate_db_exec(db, sql_reset, error_r);
}

static int backup_index_row_end(struct mailbox_migrate_db *db,
				const char *sql, int64_t id, uint32_t pass_id,
				const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, sql, &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, id);
	if (sql != sql_message_delete)
		(void)sqlite3_bind_int64(stmt, 2, pass_id);
	return exec_done(db, stmt, error_r);
}

/* until_pass 0: the row is current (NULL) */
static void
bind_until_pass(sqlite3_stmt *stmt, int col, uint32_t until_pass)
{
	if (until_pass == 0)
		(void)sqlite3_bind_null(stmt, col);
	else
		(void)sqlite3_bind_int64(stmt, col, until_pass);
}

static int backup_index_state_insert(struct mailbox_migrate_db *db,
				     const char *kind, const char *key,
				     const char *value, uint32_t from_pass,
				     uint32_t until_pass, const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, sql_state_insert, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 3, value, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 4, from_pass);
	bind_until_pass(stmt, 5, until_pass);
	return exec_done(db, stmt, error_r);
}

/* Make key's current value of kind value (NULL: none) as of pass_id. */
static int backup_index_state_set(struct mailbox_migrate_db *db,
				  uint32_t pass_id, const char *kind,
				  const char *key, const char *value,
				  const char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t id = 0;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql_state_live, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0) {
		id = sqlite3_column_int64(stmt, 0);
		if (value != NULL && strcmp(value, (const char *)
					    sqlite3_column_text(stmt, 1)) == 0)
			ret = 0;
		(void)sqlite3_reset(stmt);
		if (ret == 0)
			return 0;
		if (backup_index_row_end(db, sql_state_end, id, pass_id,
					 error_r) < 0)
			return -1;
	}
	if (value == NULL)
		return 0;
	return backup_index_state_insert(db, kind, key, value, pass_id, 0,
					 error_r);
}

static const char *
backup_index_state_kind(enum mailbox_migrate_backup_line_type type)
{
	return type == MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE ?
		STATE_SPECIAL_USE : STATE_SUBSCRIBED;
}

static int backup_index_apply_state(struct mailbox_migrate_db *db,
		uint32_t pass_id, const struct mailbox_migrate_backup_line *line,
		const char **error_r)
{
	const char *kind = backup_index_state_kind(line->type);
	const char *key, *value;

	if (line->type == MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE) {
		key = line->mailbox_guid;
		value = *line->special_use == '\0' ? NULL : line->special_use;
	} else {
		key = line->name;
		value = line->type == MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE ?
			NULL : "";
	}
	if (line->snapshot_row) {
		return backup_index_state_insert(db, kind, key,
				value == NULL ? "" : value, line->from_pass,
				line->until_pass, error_r);
	}
	return backup_index_state_set(db, pass_id, kind, key, value, error_r);
}

static int backup_index_end_box_messages(struct mailbox_migrate_db *db,
					 const char *guid, uint32_t pass_id,
					 const char **error_r)
{
	sqlite3_stmt *stmt;

	/* rows made in this pass never existed at a pass' end */
	if (mailbox_migrate_db_prepare(db, sql_messages_drop_box, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, pass_id);
	if (exec_done(db, stmt, error_r) < 0)
		return -1;
	if (mailbox_migrate_db_prepare(db, sql_messages_end_box, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, pass_id);
	return exec_done(db, stmt, error_r);
}

static int backup_index_mailbox_insert(struct mailbox_migrate_db *db,
		const struct mailbox_migrate_backup_line *line,
		uint32_t from_pass, uint32_t until_pass, const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, sql_mailbox_insert, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, line->mailbox_guid, -1,
				SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, line->uidvalidity);
	(void)sqlite3_bind_text(stmt, 3, line->name, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 4, from_pass);
	bind_until_pass(stmt, 5, until_pass);
	return exec_done(db, stmt, error_r);
}

/* The mailbox's current row: 1 with its id, uidvalidity and name. */
static int backup_index_mailbox_live(struct mailbox_migrate_db *db,
				     const char *guid, int64_t *id_r,
				     uint32_t *uidvalidity_r,
				     const char **name_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql_mailbox_live, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, guid, -1, SQLITE_STATIC);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret > 0) {
		*id_r = sqlite3_column_int64(stmt, 0);
		*uidvalidity_r = sqlite3_column_int64(stmt, 1);
		*name_r = col_str(stmt, 2);
		(void)sqlite3_reset(stmt);
	}
	return ret;
}

static int backup_index_apply_mailbox(struct mailbox_migrate_db *db,
		uint32_t pass_id, const struct mailbox_migrate_backup_line *line,
		const char **error_r)
{
	const char *name;
	uint32_t uidvalidity;
	int64_t id;
	int ret;

	if (line->snapshot_row) {
		return backup_index_mailbox_insert(db, line, line->from_pass,
						   line->until_pass, error_r);
	}
	ret = backup_index_mailbox_live(db, line->mailbox_guid, &id,
					&uidvalidity, &name, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0) {
		if (uidvalidity == line->uidvalidity &&
		    strcmp(name, line->name) == 0)
			return 0;
		if (backup_index_row_end(db, sql_mailbox_end, id, pass_id,
					 error_r) < 0)
			return -1;
		if (uidvalidity != line->uidvalidity &&
		    backup_index_end_box_messages(db, line->mailbox_guid,
						  pass_id, error_r) < 0)
			return -1;
	}
	return backup_index_mailbox_insert(db, line, pass_id, 0, error_r);
}

static int backup_index_apply_delete(struct mailbox_migrate_db *db,
		uint32_t pass_id, const struct mailbox_migrate_backup_line *line,
		const char **error_r)
{
	const char *name;
	uint32_t uidvalidity;
	int64_t id;
	int ret;

	ret = backup_index_mailbox_live(db, line->mailbox_guid, &id,
					&uidvalidity, &name, error_r);
	if (ret <= 0)
		return ret;
	if (backup_index_row_end(db, sql_mailbox_end, id, pass_id,
				 error_r) < 0 ||
	    backup_index_state_set(db, pass_id, STATE_SPECIAL_USE,
				   line->mailbox_guid, NULL, error_r) < 0)
		return -1;
	return backup_index_end_box_messages(db, line->mailbox_guid, pass_id,
					     error_r);
}

static int backup_index_message_live(struct mailbox_migrate_db *db,
				     const char *mailbox_guid, uint32_t uid,
				     int64_t *id_r, uint32_t *from_pass_r,
				     const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql_message_live, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, uid);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret > 0) {
		*id_r = sqlite3_column_int64(stmt, 0);
		*from_pass_r = sqlite3_column_int64(stmt, 1);
		(void)sqlite3_reset(stmt);
	}
	return ret;
}

/* End the message's current row (remove it if this pass made it). */
static int backup_index_message_end(struct mailbox_migrate_db *db,
				    const char *mailbox_guid, uint32_t uid,
				    uint32_t pass_id, const char **error_r)
{
	uint32_t from_pass;
	int64_t id;
	int ret;

	ret = backup_index_message_live(db, mailbox_guid, uid, &id,
					&from_pass, error_r);
	if (ret <= 0)
		return ret;
	return backup_index_row_end(db, from_pass == pass_id ?
				    sql_message_delete : sql_message_end,
				    id, pass_id, error_r);
}

static int backup_index_apply_add(struct mailbox_migrate_db *db,
		uint32_t pass_id, const struct mailbox_migrate_backup_line *line,
		const char **error_r)
{
	sqlite3_stmt *stmt;
	uint32_t from_pass = pass_id, until_pass = 0;

	if (line->snapshot_row) {
		from_pass = line->from_pass;
		until_pass = line->until_pass;
	} else if (backup_index_message_end(db, line->mailbox_guid, line->uid,
					    pass_id, error_r) < 0)
		return -1;
	if (mailbox_migrate_db_prepare(db, sql_message_insert, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, line->mailbox_guid, -1,
				SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, line->uid);
	(void)sqlite3_bind_text(stmt, 3, line->guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 4, line->hash, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 5, line->size);
	(void)sqlite3_bind_int64(stmt, 6, line->flags);
	(void)sqlite3_bind_text(stmt, 7, t_strarray_join(line->keywords, " "),
				-1, SQLITE_TRANSIENT);
	(void)sqlite3_bind_int64(stmt, 8, line->received);
	(void)sqlite3_bind_int64(stmt, 9, line->saved);
	(void)sqlite3_bind_text(stmt, 10, line->pop3_uidl == NULL ? "" :
				line->pop3_uidl, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 11, line->pop3_order);
	(void)sqlite3_bind_int64(stmt, 12, from_pass);
	bind_until_pass(stmt, 13, until_pass);
	return exec_done(db, stmt, error_r);
}

static int backup_index_apply_flags(struct mailbox_migrate_db *db,
		uint32_t pass_id, const struct mailbox_migrate_backup_line *line,
		const char **error_r)
{
	const char *keywords = t_strarray_join(line->keywords, " ");
	sqlite3_stmt *stmt;
	uint32_t from_pass;
	int64_t id;
	int ret;

	ret = backup_index_message_live(db, line->mailbox_guid, line->uid,
					&id, &from_pass, error_r);
	if (ret <= 0)
		return ret;
	if (from_pass == pass_id) {
		if (mailbox_migrate_db_prepare(db, sql_message_set_flags,
					       &stmt, error_r) < 0)
			return -1;
		(void)sqlite3_bind_int64(stmt, 1, id);
		(void)sqlite3_bind_int64(stmt, 2, line->flags);
		(void)sqlite3_bind_text(stmt, 3, keywords, -1, SQLITE_STATIC);
		return exec_done(db, stmt, error_r);
	}
	if (mailbox_migrate_db_prepare(db, sql_message_copy_flags, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, id);
	(void)sqlite3_bind_int64(stmt, 2, line->flags);
	(void)sqlite3_bind_text(stmt, 3, keywords, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 4, pass_id);
	if (exec_done(db, stmt, error_r) < 0)
		return -1;
	return backup_index_row_end(db, sql_message_end, id, pass_id, error_r);
}

int mailbox_migrate_backup_index_apply(struct mailbox_migrate_db *db,
				       uint32_t pass_id,
				       const struct mailbox_migrate_backup_line *line,
				       const char **error_r)
{
	switch (line->type) {
	case MAILBOX_MIGRATE_BACKUP_LINE_PASS:
	case MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT:
		/* the caller records the pass itself */
		return 0;
	case MAILBOX_MIGRATE_BACKUP_LINE_PASSINFO:
		return mailbox_migrate_backup_index_pass_add(db, line->pass_id,
			line->time, 0, 0, error_r);
	case MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX:
		return backup_index_apply_mailbox(db, pass_id, line, error_r);
	case MAILBOX_MIGRATE_BACKUP_LINE_DELETE:
		return backup_index_apply_delete(db, pass_id, line, error_r);
	case MAILBOX_MIGRATE_BACKUP_LINE_ADD:
		return backup_index_apply_add(db, pass_id, line, error_r);
	case MAILBOX_MIGRATE_BACKUP_LINE_FLAGS:
		return backup_index_apply_flags(db, pass_id, line, error_r);
	case MAILBOX_MIGRATE_BACKUP_LINE_EXPUNGE:
		return backup_index_message_end(db, line->mailbox_guid,
						line->uid, pass_id, error_r);
	case MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE:
	case MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE:
	case MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE:
		return backup_index_apply_state(db, pass_id, line, error_r);
	case MAILBOX_MIGRATE_BACKUP_LINE_COUNT:
		break;
	}
	i_unreached();
}

int mailbox_migrate_backup_index_mailbox_get(struct mailbox_migrate_db *db,
		const char *guid, uint32_t pass_id,
		struct mailbox_migrate_backup_mailbox *box_r,
		const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql_mailbox_get, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, pass_id);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret > 0) {
		box_r->guid = t_strdup(guid);
		box_r->uidvalidity = sqlite3_column_int64(stmt, 0);
		box_r->name = col_str(stmt, 1);
		(void)sqlite3_reset(stmt);
	}
	return ret;
}

int mailbox_migrate_backup_index_mailboxes(struct mailbox_migrate_db *db,
		uint32_t pass_id, pool_t pool,
		ARRAY_TYPE(mailbox_migrate_backup_mailbox) *boxes,
		const char **error_r)
{
	struct mailbox_migrate_backup_mailbox *box;
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql_mailboxes, &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, pass_id);
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) {
		box = array_append_space(boxes);
		box->guid = p_strdup(pool, (const char *)
				     sqlite3_column_text(stmt, 0));
		box->uidvalidity = sqlite3_column_int64(stmt, 1);
		box->name = p_strdup(pool, (const char *)
				     sqlite3_column_text(stmt, 2));
	}
	return ret;
}

int mailbox_migrate_backup_index_subscriptions(struct mailbox_migrate_db *db,
		uint32_t pass_id, pool_t pool, ARRAY_TYPE(const_string) *names,
		const char **error_r)
{
	sqlite3_stmt *stmt;
	const char *name;
	int ret;

	if (!backup_index_has_list_state(db))
		return 0;
	if (mailbox_migrate_db_prepare(db, sql_state_list, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, STATE_SUBSCRIBED, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, pass_id);
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) {
		name = p_strdup(pool, (const char *)
				sqlite3_column_text(stmt, 0));
		array_push_back(names, &name);
	}
	return ret;
}

int mailbox_migrate_backup_index_special_use(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t pass_id,
		const char **special_use_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	*special_use_r = "";
	if (!backup_index_has_list_state(db))
		return 0;
	if (mailbox_migrate_db_prepare(db, sql_state_get, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, STATE_SPECIAL_USE, -1,
				SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 2, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 3, pass_id);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret > 0) {
		*special_use_r = col_str(stmt, 0);
		(void)sqlite3_reset(stmt);
	}
	return ret < 0 ? -1 : 0;
}

static void message_read(sqlite3_stmt *stmt, pool_t pool,
			 struct mailbox_migrate_backup_message *msg)
{
	msg->uid = sqlite3_column_int64(stmt, 0);
	msg->guid = p_strdup(pool, (const char *)sqlite3_column_text(stmt, 1));
	msg->hash = p_strdup(pool, (const char *)sqlite3_column_text(stmt, 2));
	msg->size = sqlite3_column_int64(stmt, 3);
	msg->flags = sqlite3_column_int64(stmt, 4);
	msg->keywords = p_strdup(pool, (const char *)
				 sqlite3_column_text(stmt, 5));
	msg->received = sqlite3_column_int64(stmt, 6);
	msg->saved = sqlite3_column_int64(stmt, 7);
	msg->pop3_uidl = p_strdup(pool, (const char *)
				  sqlite3_column_text(stmt, 8));
	msg->pop3_order = sqlite3_column_int64(stmt, 9);
	msg->from_pass = sqlite3_column_int64(stmt, 10);
}

int mailbox_migrate_backup_index_messages(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t pass_id,
		const ARRAY_TYPE(seq_range) *uids, pool_t pool,
		ARRAY_TYPE(mailbox_migrate_backup_message) *messages,
		const char **error_r)
{
	struct seq_range_iter iter;
	sqlite3_stmt *stmt;
	unsigned int n = 0;
	uint32_t uid;
	int ret;

	if (uids == NULL) {
		if (mailbox_migrate_db_prepare(db, sql_messages, &stmt,
					       error_r) < 0)
			return -1;
		(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1,
					SQLITE_STATIC);
		(void)sqlite3_bind_int64(stmt, 2, pass_id);
		while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0)
			message_read(stmt, pool, array_append_space(messages));
		return ret;
	}
	if (mailbox_migrate_db_prepare(db, sql_message_uid, &stmt,
				       error_r) < 0)
		return -1;
	seq_range_array_iter_init(&iter, uids);
	while (seq_range_array_iter_nth(&iter, n++, &uid)) {
		(void)sqlite3_reset(stmt);
		(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1,
					SQLITE_STATIC);
		(void)sqlite3_bind_int64(stmt, 2, pass_id);
		(void)sqlite3_bind_int64(stmt, 3, uid);
		ret = mailbox_migrate_db_step(db, stmt, error_r);
		if (ret < 0)
			return -1;
		if (ret > 0) {
			message_read(stmt, pool, array_append_space(messages));
			(void)sqlite3_reset(stmt);
		}
	}
	return 0;
}

static int count_query(struct mailbox_migrate_db *db, const char *sql,
		       bool bind_time, time_t t, unsigned int *count_r,
		       uoff_t *sum_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql, &stmt, error_r) < 0)
		return -1;
	if (bind_time)
		(void)sqlite3_bind_int64(stmt, 1, t);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret <= 0)
		return ret < 0 ? -1 : 0;
	*count_r = sqlite3_column_int64(stmt, 0);
	if (sum_r != NULL)
		*sum_r = sqlite3_column_int64(stmt, 1);
	(void)sqlite3_reset(stmt);
	return 0;
}

int mailbox_migrate_backup_index_stats(struct mailbox_migrate_db *db,
		time_t keep_since,
		struct mailbox_migrate_backup_index_stats *stats_r,
		const char **error_r)
{
	i_zero(stats_r);
	if (count_query(db, sql_stats_passes, FALSE, 0, &stats_r->passes,
			NULL, error_r) < 0 ||
	    count_query(db, sql_stats_mailboxes, FALSE, 0,
			&stats_r->mailboxes, NULL, error_r) < 0 ||
	    count_query(db, sql_stats_messages, FALSE, 0, &stats_r->messages,
			NULL, error_r) < 0 ||
	    count_query(db, sql_stats_bodies, FALSE, 0, &stats_r->bodies,
			&stats_r->body_bytes, error_r) < 0)
		return -1;
	if (keep_since == 0)
		return 0;
	return count_query(db, sql_stats_dead, TRUE, keep_since,
			   &stats_r->dead_bodies, &stats_r->dead_bytes,
			   error_r);
}

int mailbox_migrate_backup_index_missing_bodies(struct mailbox_migrate_db *db,
		unsigned int *count_r, const char **first_hash_r,
		const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	*count_r = 0;
	*first_hash_r = NULL;
	if (mailbox_migrate_db_prepare(db, sql_missing_bodies, &stmt,
				       error_r) < 0)
		return -1;
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret <= 0)
		return ret < 0 ? -1 : 0;
	*count_r = sqlite3_column_int64(stmt, 0);
	if (*count_r > 0)
		*first_hash_r = col_str(stmt, 1);
	(void)sqlite3_reset(stmt);
	return 0;
}

int mailbox_migrate_backup_index_needed_bodies(struct mailbox_migrate_db *db,
		time_t keep_since, pool_t pool,
		HASH_TABLE_TYPE(mailbox_migrate_backup_hashes) *hashes,
		const char **error_r)
{
	sqlite3_stmt *stmt;
	const char *hash;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql_needed_bodies, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, keep_since);
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) {
		hash = p_strdup(pool, (const char *)sqlite3_column_text(stmt, 0));
		hash_table_update(*hashes, hash, POINTER_CAST(1));
	}
	return ret;
}

int mailbox_migrate_backup_index_snapshot(struct mailbox_migrate_db *db,
		time_t keep_since, uint32_t snapshot_pass, time_t now,
		string_t *dest, const char **error_r)
{
	struct mailbox_migrate_backup_line line;
	sqlite3_stmt *stmt;
	int ret;

	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT;
	line.pass_id = snapshot_pass;
	line.time = now;
	mailbox_migrate_backup_line_write(dest, &line);

	if (mailbox_migrate_db_prepare(db, sql_snapshot_passes, &stmt,
				       error_r) < 0)
		return -1;
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) {
		i_zero(&line);
		line.type = MAILBOX_MIGRATE_BACKUP_LINE_PASSINFO;
		line.pass_id = sqlite3_column_int64(stmt, 0);
		line.time = sqlite3_column_int64(stmt, 1);
		mailbox_migrate_backup_line_write(dest, &line);
	}
	if (ret < 0)
		return -1;

	if (mailbox_migrate_db_prepare(db, sql_snapshot_mailboxes, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, keep_since);
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) T_BEGIN {
		i_zero(&line);
		line.type = MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX;
		line.snapshot_row = TRUE;
		line.mailbox_guid = col_str(stmt, 0);
		line.uidvalidity = sqlite3_column_int64(stmt, 1);
		line.name = col_str(stmt, 2);
		line.from_pass = sqlite3_column_int64(stmt, 3);
		line.until_pass = sqlite3_column_int64(stmt, 4);
		mailbox_migrate_backup_line_write(dest, &line);
	} T_END;
	if (ret < 0)
		return -1;

	if (mailbox_migrate_db_prepare(db, sql_snapshot_state, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, keep_since);
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) T_BEGIN {
		const char *kind = col_str(stmt, 0);

		i_zero(&line);
		line.snapshot_row = TRUE;
		if (strcmp(kind, STATE_SPECIAL_USE) == 0) {
			line.type = MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE;
			line.mailbox_guid = col_str(stmt, 1);
			line.special_use = col_str(stmt, 2);
		} else {
			line.type = MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE;
			line.name = col_str(stmt, 1);
		}
		line.from_pass = sqlite3_column_int64(stmt, 3);
		line.until_pass = sqlite3_column_int64(stmt, 4);
		mailbox_migrate_backup_line_write(dest, &line);
	} T_END;
	if (ret < 0)
		return -1;

	if (mailbox_migrate_db_prepare(db, sql_snapshot_messages, &stmt,
				       error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, keep_since);
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) T_BEGIN {
		const char *keywords = col_str(stmt, 6);

		i_zero(&line);
		line.type = MAILBOX_MIGRATE_BACKUP_LINE_ADD;
		line.snapshot_row = TRUE;
		line.mailbox_guid = col_str(stmt, 0);
		line.uid = sqlite3_column_int64(stmt, 1);
		line.guid = col_str(stmt, 2);
		line.hash = col_str(stmt, 3);
		line.size = sqlite3_column_int64(stmt, 4);
		line.flags = sqlite3_column_int64(stmt, 5);
		line.keywords = *keywords == '\0' ? t_new(const char *, 1) :
			(const char *const *)t_strsplit_spaces(keywords, " ");
		line.received = sqlite3_column_int64(stmt, 7);
		line.saved = sqlite3_column_int64(stmt, 8);
		line.pop3_uidl = col_str(stmt, 9);
		line.pop3_order = sqlite3_column_int64(stmt, 10);
		line.from_pass = sqlite3_column_int64(stmt, 11);
		line.until_pass = sqlite3_column_int64(stmt, 12);
		mailbox_migrate_backup_line_write(dest, &line);
	} T_END;
	return ret < 0 ? -1 : 0;
}
