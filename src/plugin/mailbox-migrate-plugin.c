/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "ioloop.h"
#include "hash.h"
#include "guid.h"
#include "mail-storage-private.h"
#include "mail-storage-hooks.h"
#include "mail-index-private.h"
#include "mail-transaction-log-private.h"
#include "mail-index-modseq.h"
#include "notify-plugin.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal.h"
#include "mailbox-migrate-journal-log.h"
#include "mailbox-migrate-index-ext.h"
#include "mailbox-migrate-plugin.h"

struct event_category event_category_mailbox_migrate = {
	.name = "mailbox-migrate",
};

const char *mailbox_migrate_plugin_dependencies[] = { "notify", NULL };
const char *mailbox_migrate_plugin_version = DOVECOT_ABI_VERSION;

struct mailbox_migrate_user_module mailbox_migrate_user_module =
	MODULE_CONTEXT_INIT(&mail_user_module_register);

/* notify keeps one registry per process; this is our entry in it */
static struct notify_context *mailbox_migrate_notify_ctx;

struct mailbox_migrate_user *
mailbox_migrate_user_get(struct mail_user *user)
{
	struct mailbox_migrate_user *muser =
		MAILBOX_MIGRATE_USER_CONTEXT(user);

	if (muser == NULL || user->dsyncing)
		return NULL;
	return muser;
}

void mailbox_migrate_user_failed(struct mailbox_migrate_user *muser,
				 const char *reason, const char *error)
{
	if (muser->gap_reason == NULL)
		muser->gap_reason = p_strdup(muser->user->pool, reason);
	if (!muser->failure_logged) {
		e_error(muser->event, "%s - journal marked incomplete, the "
			"next pass compares in full", error);
		muser->failure_logged = TRUE;
	}
}

static enum mailbox_migrate_db_open_flags
mailbox_migrate_user_db_flags(struct mailbox_migrate_user *muser)
{
	/* the session folds its journal log only when it must (see
	   mailbox_migrate_user_deinit()) */
	return MAILBOX_MIGRATE_DB_OPEN_FLAG_NO_FOLD |
		(muser->set->db_fsync ? MAILBOX_MIGRATE_DB_OPEN_FLAG_FSYNC : 0);
}

static int mailbox_migrate_user_get_db_path(struct mailbox_migrate_user *muser)
{
	const char *path, *error;

	if (muser->db_path != NULL)
		return 0;
	if (mailbox_migrate_settings_get_db_path(muser->user, &path,
						 &error) < 0) {
		mailbox_migrate_user_failed(muser,
			"state file location unknown", error);
		return -1;
	}
	muser->db_path = p_strdup(muser->user->pool, path);
	return 0;
}

int mailbox_migrate_user_open_db(struct mailbox_migrate_user *muser)
{
	enum mailbox_migrate_db_error code;
	enum mailbox_migrate_db_open_flags flags =
		mailbox_migrate_user_db_flags(muser);
	const char *path, *error, *moved_path, *move_error;
	int ret;

	if (muser->db != NULL)
		return 0;
	if (mailbox_migrate_user_get_db_path(muser) < 0)
		return -1;
	path = muser->db_path;
	muser->db = mailbox_migrate_db_cache_take(path, flags);
	if (muser->db != NULL)
		return 0;
	ret = mailbox_migrate_db_open(path, flags,
				      muser->set->lock_timeout_msecs,
				      muser->set->journal_max_entries,
				      &muser->db, &code, &error);
	if (ret < 0 && code == MAILBOX_MIGRATE_DB_ERROR_CORRUPT) {
		/* What it held is lost either way; a fresh file that starts
		   with a gap entry keeps the journal working. */
		if (mailbox_migrate_db_move_aside(path, &moved_path,
						  &move_error) < 0) {
			error = t_strdup_printf("%s; %s", error, move_error);
		} else {
			mailbox_migrate_user_failed(muser, t_strdup_printf(
				"state file was corrupt, moved to %s",
				moved_path), t_strdup_printf(
				"State file %s is corrupt (%s): moved to %s, "
				"starting a new journal",
				path, error, moved_path));
			if (hash_table_is_created(muser->mailbox_cache))
				hash_table_clear(muser->mailbox_cache, TRUE);
			ret = mailbox_migrate_db_open(path, flags,
				muser->set->lock_timeout_msecs,
				muser->set->journal_max_entries,
				&muser->db, &code, &error);
		}
	}
	if (ret < 0) {
		mailbox_migrate_user_failed(muser, t_strdup_printf(
			"state file not writable (%s)",
			mailbox_migrate_db_error_name(code)), error);
		return -1;
	}
	return 0;
}

struct mailbox_migrate_db *
mailbox_migrate_user_write_begin(struct mailbox_migrate_user *muser)
{
	struct mailbox_migrate_journal_entry gap;
	const char *error;

	if (mailbox_migrate_user_open_db(muser) < 0)
		return NULL;
	if (mailbox_migrate_db_begin(muser->db, &error) < 0) {
		mailbox_migrate_user_failed(muser, t_strdup_printf(
			"state file write failed (%s)",
			mailbox_migrate_db_error_name(
				mailbox_migrate_db_get_error(muser->db))),
			error);
		return NULL;
	}
	if (muser->gap_reason != NULL) {
		mailbox_migrate_journal_gap_init(&gap, ioloop_time,
			muser->gap_reason, muser->user->service);
		if (mailbox_migrate_journal_append(muser->db, &gap,
						   &error) < 0) {
			mailbox_migrate_db_rollback(muser->db);
			mailbox_migrate_user_failed(muser, muser->gap_reason,
						    error);
			return NULL;
		}
		/* cleared for good only when the commit succeeds */
	}
	return muser->db;
}

int mailbox_migrate_user_write_end(struct mailbox_migrate_user *muser,
				   bool success, const char *error)
{
	const char *commit_error;
	enum mailbox_migrate_db_error code;

	if (success) {
		if (mailbox_migrate_db_commit(muser->db, &commit_error) == 0) {
			muser->gap_reason = NULL;
			return 0;
		}
		error = commit_error;
	} else {
		mailbox_migrate_db_rollback(muser->db);
	}
	if (hash_table_is_created(muser->mailbox_cache))
		hash_table_clear(muser->mailbox_cache, TRUE);
	code = mailbox_migrate_db_get_error(muser->db);
	mailbox_migrate_user_failed(muser, t_strdup_printf(
		"state file write failed (%s)",
		mailbox_migrate_db_error_name(code)), error);
	if (code == MAILBOX_MIGRATE_DB_ERROR_CORRUPT) {
		/* reopened (and recovered) at the next write */
		mailbox_migrate_db_close(&muser->db);
	}
	return -1;
}

void mailbox_migrate_mailbox_lost(struct mailbox_migrate_user *muser,
				  struct mailbox *box)
{
	const char *error;

	if (mailbox_migrate_index_ext_add_lost(box, ioloop_time, &error) < 0) {
		e_error(muser->event, "Mailbox %s: can't mark the journal "
			"incomplete in its index: %s",
			mailbox_get_vname(box), error);
	}
}

void mailbox_migrate_user_update_mailbox(struct mailbox_migrate_user *muser,
					 buffer_t *buf,
					 const char *mailbox_guid,
					 const char *name, uint32_t uidvalidity,
					 uint64_t witness_modseq,
					 bool witness_at_last_seq)
{
	struct mailbox_migrate_mailbox_record *known;
	char *orig_key;

	if (name == NULL)
		name = "";
	if (!hash_table_is_created(muser->mailbox_cache)) {
		hash_table_create(&muser->mailbox_cache, muser->user->pool, 0,
				  str_hash, strcmp);
	}
	known = hash_table_lookup(muser->mailbox_cache, mailbox_guid);
	if (witness_modseq == 0 && !witness_at_last_seq && known != NULL &&
	    known->uidvalidity == uidvalidity && strcmp(known->name, name) == 0)
		return;
	mailbox_migrate_journal_log_add_mailbox(buf, mailbox_guid, name,
						uidvalidity, witness_modseq,
						witness_at_last_seq);
	/* forgotten again if the append fails */
	if (!hash_table_lookup_full(muser->mailbox_cache, mailbox_guid,
				    &orig_key, &known)) {
		orig_key = p_strdup(muser->user->pool, mailbox_guid);
		known = p_new(muser->user->pool,
			      struct mailbox_migrate_mailbox_record, 1);
		hash_table_insert(muser->mailbox_cache, orig_key, known);
	}
	known->uidvalidity = uidvalidity;
	if (known->name == NULL || strcmp(known->name, name) != 0)
		known->name = p_strdup(muser->user->pool, name);
}

buffer_t *mailbox_migrate_user_log_begin(struct mailbox_migrate_user *muser)
{
	struct mailbox_migrate_journal_entry gap;
	buffer_t *buf = t_buffer_create(512);

	if (muser->gap_reason != NULL) {
		mailbox_migrate_journal_gap_init(&gap, ioloop_time,
			muser->gap_reason, muser->user->service);
		mailbox_migrate_journal_log_add_entry(buf, &gap);
	}
	return buf;
}

/* Fold the journal log into the state file. A failure loses nothing (the
   log keeps the records for the next fold), so it is only logged, once. At
   the end of a session (for the logout hook) the fold doesn't wait: a
   process holding the state file or the log is folding, or reads it and
   folds next. */
static void mailbox_migrate_user_log_fold(struct mailbox_migrate_user *muser,
					  bool session_end)
{
	enum mailbox_migrate_db_error code;
	const char *error, *moved_path, *move_error;
	unsigned int i;
	bool replaced;

	for (i = 0; i < 2; i++) {
		if (mailbox_migrate_user_open_db(muser) < 0) {
			/* logged (once) and a gap remembered */
			muser->fold_failed = TRUE;
			return;
		}
		if (muser->gap_reason != NULL &&
		    mailbox_migrate_user_write_begin(muser) != NULL) {
			/* e.g. the open found the file corrupt and started a
			   new one: the gap goes before what the log holds */
			(void)mailbox_migrate_user_write_end(muser, TRUE, NULL);
		}
		if (mailbox_migrate_journal_log_fold(muser->db,
				muser->set->journal_max_entries,
				session_end ? 0 : muser->set->lock_timeout_msecs,
				&code, &error) >= 0) {
			return;
		}
		if (code == MAILBOX_MIGRATE_DB_ERROR_LOCKED && session_end)
			return;
		if (code != MAILBOX_MIGRATE_DB_ERROR_CORRUPT || muser->db == NULL)
			break;
		/* corrupt, or moved aside as such by another process: go on
		   with a new file at the path (the log keeps its records) */
		replaced = !mailbox_migrate_db_is_at_path(muser->db);
		mailbox_migrate_db_close(&muser->db);
		if (hash_table_is_created(muser->mailbox_cache))
			hash_table_clear(muser->mailbox_cache, TRUE);
		if (replaced)
			continue;
		if (mailbox_migrate_db_move_aside(muser->db_path, &moved_path,
						  &move_error) < 0) {
			error = t_strdup_printf("%s; %s", error, move_error);
			break;
		}
		mailbox_migrate_user_failed(muser, t_strdup_printf(
			"state file was corrupt, moved to %s", moved_path),
			t_strdup_printf("State file %s is corrupt (%s): moved "
					"to %s, starting a new journal",
					muser->db_path, error, moved_path));
	}
	/* no more tries inside this session (but the logout hook's) */
	muser->fold_failed = TRUE;
	if (!muser->fold_failure_logged) {
		e_error(muser->event, "Can't fold the journal log into the "
			"state file (the next fold retries): %s", error);
		muser->fold_failure_logged = TRUE;
	}
}

int mailbox_migrate_user_log_end(struct mailbox_migrate_user *muser,
				 buffer_t *buf)
{
	enum mailbox_migrate_db_error code;
	const char *error;
	uoff_t size;

	if (buf->used == 0)
		return 0;
	if (muser->log == NULL) {
		if (mailbox_migrate_user_get_db_path(muser) < 0)
			goto failed;
		muser->log = mailbox_migrate_journal_log_init(muser->db_path,
							muser->set->db_fsync);
	}
	if (mailbox_migrate_journal_log_append(muser->log, buf,
			muser->set->lock_timeout_msecs, &size,
			&code, &error) < 0) {
		mailbox_migrate_user_failed(muser, t_strdup_printf(
			"journal log write failed (%s)",
			mailbox_migrate_db_error_name(code)), error);
		goto failed;
	}
	muser->gap_reason = NULL;
	if (size >= MAILBOX_MIGRATE_JOURNAL_LOG_FOLD_SIZE && !muser->fold_failed)
		mailbox_migrate_user_log_fold(muser, FALSE);
	return 0;
failed:
	if (hash_table_is_created(muser->mailbox_cache))
		hash_table_clear(muser->mailbox_cache, TRUE);
	return -1;
}

bool mailbox_migrate_get_mailbox_guid_128(struct mailbox *box,
					  guid_128_t guid_r)
{
	struct mailbox_migrate_mailbox *mbox = MAILBOX_MIGRATE_CONTEXT(box);
	struct mailbox_metadata metadata;

	if (mbox != NULL && mbox->guid[0] != '\0') {
		guid_128_copy(guid_r, mbox->guid_128);
		return TRUE;
	}
	if (!mailbox_migrate_is_maildir(box) ||
	    !mailbox_migrate_maildir_read_mailbox_guid(box, guid_r)) {
		if (mailbox_get_metadata(box, MAILBOX_METADATA_GUID,
					 &metadata) < 0 ||
		    guid_128_is_empty(metadata.guid))
			return FALSE;
		guid_128_copy(guid_r, metadata.guid);
	}
	if (mbox != NULL) {
		guid_128_copy(mbox->guid_128, guid_r);
		/* 32 hex digits always fit */
		(void)i_strocpy(mbox->guid, guid_128_to_string(guid_r),
				sizeof(mbox->guid));
	}
	return TRUE;
}

const char *mailbox_migrate_get_mailbox_guid(struct mailbox *box)
{
	struct mailbox_migrate_mailbox *mbox = MAILBOX_MIGRATE_CONTEXT(box);
	guid_128_t guid;

	if (!mailbox_migrate_get_mailbox_guid_128(box, guid))
		return NULL;
	return mbox != NULL ? mbox->guid : guid_128_to_string(guid);
}

uint64_t mailbox_migrate_get_index_modseq(struct mailbox *box)
{
	/* The log head's modseq is updated by our own append under the log
	   lock, so right after our commit it covers every change made up to
	   and including it. */
	if (box->index == NULL || box->index->log == NULL ||
	    box->index->log->head == NULL)
		return 0;
	return box->index->log->head->sync_highest_modseq;
}

int mailbox_migrate_get_index_state(struct mailbox *box,
				    uint32_t *uidvalidity_r,
				    uint64_t *modseq_r)
{
	struct mail_index_view *view;

	*uidvalidity_r = 0;
	*modseq_r = 0;
	if (mailbox_open(box) < 0)
		return -1;
	(void)mail_index_refresh(box->index);
	view = mail_index_view_open(box->index);
	*uidvalidity_r = mail_index_get_header(view)->uid_validity;
	*modseq_r = mail_index_modseq_get_highest(view);
	mail_index_view_close(&view);
	return 0;
}

static void mailbox_migrate_user_deinit(struct mail_user *user)
{
	struct mailbox_migrate_user *muser =
		MAILBOX_MIGRATE_USER_CONTEXT_REQUIRE(user);
	struct mailbox_migrate_db *db;

	if (muser->gap_reason != NULL) T_BEGIN {
		/* last chance in this session to record the gap */
		(void)mailbox_migrate_user_log_end(muser,
			mailbox_migrate_user_log_begin(muser));
	} T_END;
	if (muser->gap_reason != NULL) {
		db = mailbox_migrate_user_write_begin(muser);
		if (db != NULL)
			(void)mailbox_migrate_user_write_end(muser, TRUE, NULL);
	}
	/* Readers fold the journal log: every doveadm pass and command
	   as it opens the state file, a session whose appends take the log
	   past MAILBOX_MIGRATE_JOURNAL_LOG_FOLD_SIZE, and the logout hook,
	   which compares the journal with its destinations. A session
	   doesn't fold its own appends at its end: that would cost every
	   change a row insert on the hot path, where the append alone costs
	   a fraction of it. */
	if (mailbox_migrate_logout_wanted(muser)) T_BEGIN {
		mailbox_migrate_user_log_fold(muser, TRUE);
	} T_END;
	if (muser->log != NULL)
		mailbox_migrate_journal_log_deinit(&muser->log);
	mailbox_migrate_logout(muser);
	mailbox_migrate_db_cache_put(&muser->db,
				     mailbox_migrate_user_db_flags(muser));
	if (hash_table_is_created(muser->seen_cache))
		hash_table_destroy(&muser->seen_cache);
	if (hash_table_is_created(muser->mailbox_cache))
		hash_table_destroy(&muser->mailbox_cache);
	event_unref(&muser->event);
	muser->module_ctx.super.deinit(user);
	/* after the namespaces' deinit, which rolls back what is still open */
	if (muser->txn_pool != NULL)
		pool_unref(&muser->txn_pool);
}

static void mailbox_migrate_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct mailbox_migrate_user *muser;
	const struct mailbox_migrate_settings *set;
	const char *error;

	if (user->autocreated) {
		/* raw user of LMTP/LDA or a shared namespace owner */
		return;
	}
	if (mailbox_migrate_settings_read(user, &set, &error) < 0) {
		/* G6: never fail the session, but say why nothing is
		   recorded */
		e_error(user->event, "mailbox-migrate: %s - "
			"nothing is recorded for this user", error);
		return;
	}

	muser = p_new(user->pool, struct mailbox_migrate_user, 1);
	muser->user = user;
	muser->set = set;
	muser->event = event_create(user->event);
	event_add_category(muser->event, &event_category_mailbox_migrate);
	event_set_append_log_prefix(muser->event, "mailbox-migrate: ");
	muser->track_seen = user->service != NULL &&
		(strcmp(user->service, "imap") == 0 ||
		 strcmp(user->service, "pop3") == 0);
	e_debug(muser->event, "seen UIDNEXT %s", muser->track_seen ? "tracked" :
		t_strdup_printf("not tracked for service %s", user->service));

	muser->module_ctx.super = *v;
	user->vlast = &muser->module_ctx.super;
	v->deinit = mailbox_migrate_user_deinit;
	MODULE_CONTEXT_SET(user, mailbox_migrate_user_module, muser);
}

static void
mailbox_migrate_mail_namespaces_created(struct mail_namespace *namespaces)
{
	struct mailbox_migrate_user *muser =
		mailbox_migrate_user_get(namespaces->user);

	if (muser != NULL)
		mailbox_migrate_session_hold(muser);
}

static struct mail_storage_hooks mailbox_migrate_mail_storage_hooks = {
	.mail_user_created = mailbox_migrate_mail_user_created,
	.mail_namespaces_created = mailbox_migrate_mail_namespaces_created,
	.mailbox_allocated = mailbox_migrate_mailbox_allocated,
};

void mailbox_migrate_plugin_init(struct module *module)
{
	mailbox_migrate_notify_ctx =
		notify_register(&mailbox_migrate_notify_vfuncs);
	mail_storage_hooks_add(module, &mailbox_migrate_mail_storage_hooks);
}

void mailbox_migrate_plugin_deinit(void)
{
	mail_storage_hooks_remove(&mailbox_migrate_mail_storage_hooks);
	notify_unregister(mailbox_migrate_notify_ctx);
	mailbox_migrate_db_cache_deinit();
}
