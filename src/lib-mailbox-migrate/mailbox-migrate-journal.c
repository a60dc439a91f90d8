/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-sql.h"
#include "mailbox-migrate-journal.h"

struct mailbox_migrate_journal_iter {
	pool_t pool;
	struct mailbox_migrate_db *db;
	sqlite3_stmt *stmt;
	struct mailbox_migrate_journal_entry entry;
	const char *error;
	bool done;
};

static const char *const mailbox_migrate_journal_type_names[] = {
	"save", "copy", "expunge", "flags", "keywords", "create", "delete",
	"rename", "subscribe", "unsubscribe", "update", "gap",
};

const char *
mailbox_migrate_journal_type_name(enum mailbox_migrate_journal_type type)
{
	i_assert(type < MAILBOX_MIGRATE_JOURNAL_TYPE_COUNT);
	return mailbox_migrate_journal_type_names[type];
}

bool mailbox_migrate_journal_type_parse(const char *name,
				enum mailbox_migrate_journal_type *type_r)
{
	unsigned int i;

	for (i = 0; i < MAILBOX_MIGRATE_JOURNAL_TYPE_COUNT; i++) {
		if (strcmp(mailbox_migrate_journal_type_names[i], name) == 0) {
			*type_r = i;
			return TRUE;
		}
	}
	return FALSE;
}

static void
mailbox_migrate_bind_text_or_null(sqlite3_stmt *stmt, int idx,
				  const char *value)
{
	if (value == NULL)
		(void)sqlite3_bind_null(stmt, idx);
	else
		(void)sqlite3_bind_text(stmt, idx, value, -1, SQLITE_STATIC);
}

static bool
mailbox_migrate_journal_type_has_flags(enum mailbox_migrate_journal_type type)
{
	return type == MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE ||
		type == MAILBOX_MIGRATE_JOURNAL_TYPE_COPY ||
		type == MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS;
}

void mailbox_migrate_journal_gap_init(
	struct mailbox_migrate_journal_entry *entry, time_t now,
	const char *reason, const char *service)
{
	i_zero(entry);
	entry->time = now;
	entry->type = MAILBOX_MIGRATE_JOURNAL_TYPE_GAP;
	entry->mailbox_guid = "";
	entry->name = reason;
	entry->service = service;
}

int mailbox_migrate_journal_append(struct mailbox_migrate_db *db,
				   struct mailbox_migrate_journal_entry *entry,
				   const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_journal_insert,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, entry->time);
	(void)sqlite3_bind_text(stmt, 2,
		mailbox_migrate_journal_type_name(entry->type), -1,
		SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 3, entry->mailbox_guid, -1,
				SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 4, entry->uidvalidity);
	(void)sqlite3_bind_int64(stmt, 5, entry->uid);
	mailbox_migrate_bind_text_or_null(stmt, 6, entry->message_guid);
	if (mailbox_migrate_journal_type_has_flags(entry->type))
		(void)sqlite3_bind_int(stmt, 7, entry->flags & ~MAIL_RECENT);
	else
		(void)sqlite3_bind_null(stmt, 7);
	mailbox_migrate_bind_text_or_null(stmt, 8, entry->keywords);
	mailbox_migrate_bind_text_or_null(stmt, 9, entry->name);
	mailbox_migrate_bind_text_or_null(stmt, 10, entry->old_name);
	mailbox_migrate_bind_text_or_null(stmt, 11, entry->service);
	(void)sqlite3_bind_int64(stmt, 12, (sqlite3_int64)entry->modseq);
	if (mailbox_migrate_db_exec_stmt(db, stmt, error_r) < 0)
		return -1;
	entry->seq = (uint64_t)sqlite3_last_insert_rowid(
		sqlite3_db_handle(stmt));
	return 0;
}

int mailbox_migrate_journal_update_mailbox(struct mailbox_migrate_db *db,
					   const char *mailbox_guid,
					   const char *name,
					   uint32_t uidvalidity,
					   uint64_t witness_modseq,
					   uint64_t witness_seq,
					   const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_mailbox_upsert,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(stmt, 2, name == NULL ? "" : name, -1,
				SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 3, uidvalidity);
	(void)sqlite3_bind_int64(stmt, 4, (sqlite3_int64)witness_modseq);
	(void)sqlite3_bind_int64(stmt, 5, (sqlite3_int64)witness_seq);
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

int mailbox_migrate_journal_mark_deleted(struct mailbox_migrate_db *db,
					 const char *mailbox_guid,
					 const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_mailbox_deleted,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

int mailbox_migrate_journal_get_mailbox(struct mailbox_migrate_db *db,
				const char *mailbox_guid,
				struct mailbox_migrate_journal_mailbox *mbox_r,
				const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(mbox_r);
	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_mailbox_get,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret <= 0)
		return ret;
	mbox_r->guid = t_strdup(mailbox_guid);
	mbox_r->name = t_strdup((const char *)sqlite3_column_text(stmt, 0));
	mbox_r->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 1);
	mbox_r->witness_modseq = (uint64_t)sqlite3_column_int64(stmt, 2);
	mbox_r->witness_seq = (uint64_t)sqlite3_column_int64(stmt, 3);
	mbox_r->deleted = sqlite3_column_int(stmt, 4) != 0;
	mbox_r->lost_acked = (uint32_t)sqlite3_column_int64(stmt, 5);
	(void)sqlite3_reset(stmt);

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_journal_witness,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, (sqlite3_int64)mbox_r->witness_seq);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0 && sqlite3_column_type(stmt, 0) != SQLITE_NULL &&
	    (uint64_t)sqlite3_column_int64(stmt, 0) > mbox_r->witness_modseq) {
		mbox_r->witness_modseq = (uint64_t)sqlite3_column_int64(stmt, 0);
		mbox_r->witness_seq = (uint64_t)sqlite3_column_int64(stmt, 1);
	}
	if (ret > 0)
		(void)sqlite3_reset(stmt);
	return 1;
}

int mailbox_migrate_journal_get_range(struct mailbox_migrate_db *db,
				      const char *mailbox_guid,
				      struct mailbox_migrate_journal_range *range_r,
				      const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(range_r);
	if (mailbox_migrate_db_prepare(db, mailbox_guid == NULL ?
			mailbox_migrate_sql_journal_range :
			mailbox_migrate_sql_journal_mailbox_range,
			&stmt, error_r) < 0)
		return -1;
	if (mailbox_guid != NULL) {
		(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1,
					SQLITE_STATIC);
	}
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0) {
		range_r->first_seq = (uint64_t)sqlite3_column_int64(stmt, 0);
		range_r->last_seq = (uint64_t)sqlite3_column_int64(stmt, 1);
		range_r->entries = (uint64_t)sqlite3_column_int64(stmt, 2);
		(void)sqlite3_reset(stmt);
	}
	return 0;
}

/* Run a query returning one integer (bound to seq when seq_param),
   *value_r = 0 when it returns no row. */
static int
mailbox_migrate_journal_query_uint64(struct mailbox_migrate_db *db,
				     const char *sql, bool seq_param,
				     uint64_t seq, uint64_t *value_r,
				     const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	*value_r = 0;
	if (mailbox_migrate_db_prepare(db, sql, &stmt, error_r) < 0)
		return -1;
	if (seq_param)
		(void)sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0) {
		*value_r = (uint64_t)sqlite3_column_int64(stmt, 0);
		(void)sqlite3_reset(stmt);
	}
	return 0;
}

int mailbox_migrate_journal_get_last_seq(struct mailbox_migrate_db *db,
					 uint64_t *seq_r, const char **error_r)
{
	return mailbox_migrate_journal_query_uint64(db,
			mailbox_migrate_sql_journal_max_seq, FALSE, 0,
			seq_r, error_r);
}

int mailbox_migrate_journal_count_after(struct mailbox_migrate_db *db,
					uint64_t seq, uint64_t *count_r,
					const char **error_r)
{
	return mailbox_migrate_journal_query_uint64(db,
			mailbox_migrate_sql_journal_count_after, TRUE, seq,
			count_r, error_r);
}

/* Entries written between two prunes at most (one transaction may write
   more, so the bound is not exact). */
static unsigned int
mailbox_migrate_journal_prune_interval(unsigned int max_entries)
{
	return I_MAX(1U, I_MIN(256U, max_entries / 10));
}

bool mailbox_migrate_journal_prune_due_between(uint64_t first_seq,
					       uint64_t last_seq,
					       unsigned int max_entries)
{
	unsigned int interval =
		mailbox_migrate_journal_prune_interval(max_entries);

	return last_seq / interval != first_seq / interval;
}

static int
mailbox_migrate_journal_delete_upto(struct mailbox_migrate_db *db,
				    uint64_t seq, const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_mailbox_fold_witness,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
	if (mailbox_migrate_db_exec_stmt(db, stmt, error_r) < 0)
		return -1;

	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_journal_prune,
				       &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

int mailbox_migrate_journal_prune(struct mailbox_migrate_db *db,
				  unsigned int max_entries,
				  const char **error_r)
{
	sqlite3_stmt *stmt;
	uint64_t first_seq, last_seq, entries, cut;
	int ret;

	/* MIN/MAX read two index ends, COUNT would read the whole table;
	   seq - first + 1 is an upper bound of the count */
	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_journal_bounds,
				       &stmt, error_r) < 0)
		return -1;
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret <= 0)
		return ret;
	if (sqlite3_column_type(stmt, 0) == SQLITE_NULL) {
		(void)sqlite3_reset(stmt);
		return 0;
	}
	first_seq = (uint64_t)sqlite3_column_int64(stmt, 0);
	last_seq = (uint64_t)sqlite3_column_int64(stmt, 1);
	(void)sqlite3_reset(stmt);

	/* what every registered destination has taken */
	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_destination_min_checkpoint,
			&stmt, error_r) < 0)
		return -1;
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0 && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
		cut = (uint64_t)sqlite3_column_int64(stmt, 0);
		(void)sqlite3_reset(stmt);
		if (cut >= first_seq) {
			if (mailbox_migrate_journal_delete_upto(db, cut,
								error_r) < 0)
				return -1;
			first_seq = cut + 1;
		}
	} else if (ret > 0) {
		(void)sqlite3_reset(stmt);
	}

	entries = last_seq >= first_seq ? last_seq - first_seq + 1 : 0;
	if (entries + mailbox_migrate_journal_prune_interval(max_entries) <=
	    max_entries)
		return 0;
	/* lossy: leave room for the writes until the next prune */
	cut = last_seq - (max_entries -
		mailbox_migrate_journal_prune_interval(max_entries));
	if (mailbox_migrate_journal_delete_upto(db, cut, error_r) < 0)
		return -1;
	return mailbox_migrate_db_meta_set(db, "pruned_seq", dec2str(cut),
					   error_r);
}

int mailbox_migrate_journal_check(struct mailbox_migrate_db *db,
			struct mailbox_migrate_journal_completeness *result_r,
			const char **error_r)
{
	sqlite3_stmt *stmt;
	const char *value;
	uint64_t pruned_seq;
	int ret;

	i_zero(result_r);
	if (mailbox_migrate_db_prepare(db, mailbox_migrate_sql_journal_last_gap,
				       &stmt, error_r) < 0)
		return -1;
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0) {
		result_r->incomplete_since =
			(uint64_t)sqlite3_column_int64(stmt, 0);
		result_r->reason = t_strdup_printf("gap: %s",
			(const char *)sqlite3_column_text(stmt, 1));
		(void)sqlite3_reset(stmt);
	}

	ret = mailbox_migrate_db_meta_get(db, "pruned_seq", &value, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0 && str_to_uint64(value, &pruned_seq) == 0 &&
	    pruned_seq > result_r->incomplete_since) {
		result_r->incomplete_since = pruned_seq;
		result_r->reason = t_strdup_printf(
			"entries up to %s dropped by the size bound", value);
	}
	return 0;
}

enum mailbox_migrate_journal_index_check
mailbox_migrate_journal_check_index(
	const struct mailbox_migrate_journal_mailbox *known,
	uint32_t index_uidvalidity, uint64_t index_highest_modseq,
	const char **reason_r)
{
	*reason_r = NULL;
	if (known == NULL) {
		/* An empty new mailbox has modseq 1; anything above means
		   changes were made that the journal never recorded. */
		if (index_highest_modseq <= 1)
			return MAILBOX_MIGRATE_JOURNAL_INDEX_COMPLETE;
		*reason_r = "the journal never saw this mailbox";
		return MAILBOX_MIGRATE_JOURNAL_INDEX_INCOMPLETE;
	}
	if (known->uidvalidity != 0 &&
	    known->uidvalidity != index_uidvalidity) {
		*reason_r = t_strdup_printf("UIDVALIDITY changed from %u to %u "
			"outside the journal", known->uidvalidity,
			index_uidvalidity);
		return MAILBOX_MIGRATE_JOURNAL_INDEX_INCOMPLETE;
	}
	if (index_highest_modseq <= known->witness_modseq ||
	    index_highest_modseq <= 1)
		return MAILBOX_MIGRATE_JOURNAL_INDEX_COMPLETE;
	return MAILBOX_MIGRATE_JOURNAL_INDEX_CHECK_CHANGES;
}

void mailbox_migrate_journal_set_incomplete(
	struct mailbox_migrate_journal_completeness *result,
	uint64_t last_seq, const char *reason)
{
	if (result->incomplete_since <= last_seq) {
		result->incomplete_since = last_seq + 1;
		result->reason = reason;
	}
}

int mailbox_migrate_journal_has_expunge(struct mailbox_migrate_db *db,
					const char *mailbox_guid,
					uint32_t uidvalidity, uint32_t uid,
					const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_journal_has_expunge,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, uid);
	(void)sqlite3_bind_int64(stmt, 3, uidvalidity);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret > 0)
		(void)sqlite3_reset(stmt);
	return ret;
}

static int
journal_get_changed_uids(struct mailbox_migrate_db *db, const char *sql,
			 const char *mailbox_guid, uint32_t uidvalidity,
			 uint64_t seq, uint64_t modseq,
			 ARRAY_TYPE(seq_range) *uids, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db, sql, &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
	(void)sqlite3_bind_text(stmt, 2, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 3, uidvalidity);
	if (sqlite3_bind_parameter_count(stmt) >= 4)
		(void)sqlite3_bind_int64(stmt, 4, (sqlite3_int64)modseq);
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) {
		seq_range_array_add(uids,
			(uint32_t)sqlite3_column_int64(stmt, 0));
	}
	if (ret == 0)
		(void)sqlite3_reset(stmt);
	return ret;
}

int mailbox_migrate_journal_get_changed_uids(struct mailbox_migrate_db *db,
					     const char *mailbox_guid,
					     uint32_t uidvalidity, uint64_t seq,
					     ARRAY_TYPE(seq_range) *uids,
					     const char **error_r)
{
	return journal_get_changed_uids(db,
		mailbox_migrate_sql_journal_changed_uids, mailbox_guid,
		uidvalidity, seq, 0, uids, error_r);
}

int mailbox_migrate_journal_get_changed_uids_upto(struct mailbox_migrate_db *db,
					const char *mailbox_guid,
					uint32_t uidvalidity, uint64_t seq,
					uint64_t modseq,
					ARRAY_TYPE(seq_range) *uids,
					const char **error_r)
{
	return journal_get_changed_uids(db,
		mailbox_migrate_sql_journal_changed_uids_upto, mailbox_guid,
		uidvalidity, seq, modseq, uids, error_r);
}

int mailbox_migrate_journal_get_uid_modseqs(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t uidvalidity, uint64_t seq,
		uint64_t last_seq,
		ARRAY_TYPE(mailbox_migrate_journal_uid_modseq) *uids,
		const char **error_r)
{
	struct mailbox_migrate_journal_uid_modseq *um;
	sqlite3_stmt *stmt;
	int ret;

	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_journal_uid_modseqs,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
	(void)sqlite3_bind_text(stmt, 2, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 3, uidvalidity);
	(void)sqlite3_bind_int64(stmt, 4, (sqlite3_int64)I_MIN(last_seq,
							(uint64_t)INT64_MAX));
	while ((ret = mailbox_migrate_db_step(db, stmt, error_r)) > 0) {
		um = array_append_space(uids);
		um->uid = (uint32_t)sqlite3_column_int64(stmt, 0);
		um->modseq = (uint64_t)sqlite3_column_int64(stmt, 1);
	}
	if (ret == 0)
		(void)sqlite3_reset(stmt);
	return ret;
}

int mailbox_migrate_journal_get_first_modseq(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t uidvalidity,
		uint64_t *modseq_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	*modseq_r = 0;
	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_journal_first_modseq,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, uidvalidity);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0) {
		*modseq_r = (uint64_t)sqlite3_column_int64(stmt, 0);
		(void)sqlite3_reset(stmt);
	}
	return 0;
}

int mailbox_migrate_journal_get_proof(struct mailbox_migrate_db *db,
		const char *mailbox_guid,
		struct mailbox_migrate_journal_proof *proof_r,
		const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(proof_r);
	/* a read-only open doesn't upgrade an older file */
	if (mailbox_migrate_db_get_schema_version(db) < 4)
		return 0;
	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_mailbox_proof_get,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	ret = mailbox_migrate_db_step(db, stmt, error_r);
	if (ret <= 0)
		return ret;
	proof_r->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 0);
	proof_r->modseq = (uint64_t)sqlite3_column_int64(stmt, 1);
	proof_r->seq = (uint64_t)sqlite3_column_int64(stmt, 2);
	if (sqlite3_column_type(stmt, 3) != SQLITE_NULL) {
		proof_r->uids = t_strdup(
			(const char *)sqlite3_column_text(stmt, 3));
	}
	(void)sqlite3_reset(stmt);
	return 1;
}

int mailbox_migrate_journal_set_proof(struct mailbox_migrate_db *db,
		const char *mailbox_guid,
		const struct mailbox_migrate_journal_proof *proof,
		const char **error_r)
{
	sqlite3_stmt *stmt;

	if (mailbox_migrate_db_prepare(db,
			mailbox_migrate_sql_mailbox_proof_set,
			&stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_text(stmt, 1, mailbox_guid, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(stmt, 2, proof->uidvalidity);
	(void)sqlite3_bind_int64(stmt, 3, (sqlite3_int64)proof->modseq);
	(void)sqlite3_bind_int64(stmt, 4, (sqlite3_int64)proof->seq);
	if (proof->uids == NULL)
		(void)sqlite3_bind_null(stmt, 5);
	else {
		(void)sqlite3_bind_text(stmt, 5, proof->uids, -1,
					SQLITE_STATIC);
	}
	return mailbox_migrate_db_exec_stmt(db, stmt, error_r);
}

struct mailbox_migrate_journal_iter *
mailbox_migrate_journal_iter_init(struct mailbox_migrate_db *db,
				  uint64_t since_seq, const char *mailbox_guid)
{
	struct mailbox_migrate_journal_iter *iter;
	pool_t pool;
	const char *error;

	pool = pool_alloconly_create("mailbox-migrate journal iter", 1024);
	iter = p_new(pool, struct mailbox_migrate_journal_iter, 1);
	iter->pool = pool;
	iter->db = db;
	if (mailbox_migrate_db_prepare(db, mailbox_guid == NULL ?
			mailbox_migrate_sql_journal_iter :
			mailbox_migrate_sql_journal_iter_mailbox,
			&iter->stmt, &error) < 0) {
		iter->error = p_strdup(pool, error);
		iter->done = TRUE;
		return iter;
	}
	(void)sqlite3_bind_int64(iter->stmt, 1, (sqlite3_int64)since_seq);
	if (mailbox_guid != NULL) {
		(void)sqlite3_bind_text(iter->stmt, 2,
					p_strdup(pool, mailbox_guid), -1,
					SQLITE_STATIC);
	}
	return iter;
}

static const char *
mailbox_migrate_column_text(sqlite3_stmt *stmt, int idx)
{
	if (sqlite3_column_type(stmt, idx) == SQLITE_NULL)
		return NULL;
	return (const char *)sqlite3_column_text(stmt, idx);
}

bool mailbox_migrate_journal_iter_next(struct mailbox_migrate_journal_iter *iter,
			const struct mailbox_migrate_journal_entry **entry_r)
{
	struct mailbox_migrate_journal_entry *e = &iter->entry;
	const char *error;
	int ret, flags;

	if (iter->done)
		return FALSE;
	ret = mailbox_migrate_db_step(iter->db, iter->stmt, &error);
	if (ret <= 0) {
		if (ret < 0)
			iter->error = p_strdup(iter->pool, error);
		iter->done = TRUE;
		return FALSE;
	}
	i_zero(e);
	e->seq = (uint64_t)sqlite3_column_int64(iter->stmt, 0);
	e->time = (time_t)sqlite3_column_int64(iter->stmt, 1);
	if (!mailbox_migrate_journal_type_parse(
			(const char *)sqlite3_column_text(iter->stmt, 2),
			&e->type)) {
		iter->error = p_strdup_printf(iter->pool,
			"Journal entry %llu has unknown type '%s'",
			(unsigned long long)e->seq,
			sqlite3_column_text(iter->stmt, 2));
		iter->done = TRUE;
		return FALSE;
	}
	e->mailbox_guid = (const char *)sqlite3_column_text(iter->stmt, 3);
	e->uidvalidity = (uint32_t)sqlite3_column_int64(iter->stmt, 4);
	e->uid = (uint32_t)sqlite3_column_int64(iter->stmt, 5);
	e->message_guid = mailbox_migrate_column_text(iter->stmt, 6);
	flags = sqlite3_column_int(iter->stmt, 7);
	e->flags = flags;
	e->keywords = mailbox_migrate_column_text(iter->stmt, 8);
	e->name = mailbox_migrate_column_text(iter->stmt, 9);
	e->old_name = mailbox_migrate_column_text(iter->stmt, 10);
	e->service = mailbox_migrate_column_text(iter->stmt, 11);
	e->modseq = (uint64_t)sqlite3_column_int64(iter->stmt, 12);
	*entry_r = e;
	return TRUE;
}

int mailbox_migrate_journal_iter_deinit(
	struct mailbox_migrate_journal_iter **_iter, const char **error_r)
{
	struct mailbox_migrate_journal_iter *iter = *_iter;
	int ret = 0;

	*_iter = NULL;
	if (iter->stmt != NULL)
		(void)sqlite3_reset(iter->stmt);
	if (iter->error != NULL) {
		*error_r = t_strdup(iter->error);
		ret = -1;
	}
	pool_unref(&iter->pool);
	return ret;
}

const char *
mailbox_migrate_journal_keywords_join(const char *const *keywords)
{
	if (keywords == NULL || keywords[0] == NULL)
		return "";
	return t_strarray_join(keywords, " ");
}
