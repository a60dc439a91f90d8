/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "seq-range-array.h"
#include "guid.h"
#include "mail-storage-private.h"
#include "notify-plugin.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-guid-cache.h"
#include "mailbox-migrate-journal.h"
#include "mailbox-migrate-journal-log.h"
#include "mailbox-migrate-plugin.h"

/* Journal entries of one mail transaction, appended to the journal log
   with one write after the mail transaction committed (only then are the
   UIDs known), dropped on rollback. */
struct mailbox_migrate_txn {
	pool_t pool;
	struct mailbox_migrate_user *muser;
	struct mailbox *box;
	ARRAY(struct mailbox_migrate_journal_entry) entries;
};

struct mailbox_migrate_delete_txn {
	struct mailbox_migrate_user *muser;
	char *mailbox_guid;
	char *name;
};

struct mailbox_migrate_storage_module mailbox_migrate_storage_module =
	MODULE_CONTEXT_INIT(&mail_storage_module_register);

static int
mailbox_migrate_save_begin(struct mail_save_context *ctx,
			   struct istream *input)
{
	struct mailbox_migrate_mailbox *mbox =
		MAILBOX_MIGRATE_CONTEXT_REQUIRE(ctx->transaction->box);
	guid_128_t guid;

	/* dbox makes up a GUID at save_begin() if none is set, but tells it
	   only through the save data, which is freed before notify reports
	   the save: choose it here so the journal knows it. maildir gets
	   none: its GUID is the file name, read after the commit. */
	if (ctx->data.guid == NULL &&
	    !mailbox_migrate_is_maildir(ctx->transaction->box)) {
		guid_128_generate(guid);
		mailbox_save_set_guid(ctx, guid_128_to_string(guid));
	}
	if (ctx->data.guid == NULL ||
	    i_strocpy(mbox->saving_guid, ctx->data.guid,
		      sizeof(mbox->saving_guid)) < 0)
		mbox->saving_guid[0] = '\0';
	if (mbox->module_ctx.super.save_begin(ctx, input) < 0) {
		mbox->saving_mail = NULL;
		return -1;
	}
	mbox->saving_mail = ctx->dest_mail;
	mailbox_migrate_guid_cache_saving(ctx->dest_mail, mbox->saving_guid);
	return 0;
}

void mailbox_migrate_mailbox_allocated(struct mailbox *box)
{
	struct mailbox_vfuncs *v = box->vlast;
	struct mailbox_migrate_user *muser;
	struct mailbox_migrate_mailbox *mbox;

	muser = mailbox_migrate_user_get(box->storage->user);
	if (muser == NULL)
		return;

	mbox = p_new(box->pool, struct mailbox_migrate_mailbox, 1);
	mbox->module_ctx.super = *v;
	box->vlast = &mbox->module_ctx.super;
	v->save_begin = mailbox_migrate_save_begin;
	/* Per-message modseqs let a reader prove that every change the index
	   shows is in the journal. IMAP clients get MODSEQ data only if they
	   enable CONDSTORE; SELECT shows [HIGHESTMODSEQ], as for any mailbox
	   a CONDSTORE client has used. */
	(void)mailbox_enable(box, MAILBOX_FEATURE_CONDSTORE);
	if (muser->track_seen)
		mailbox_migrate_seen_hooks_init(v);
	MODULE_CONTEXT_SET(box, mailbox_migrate_storage_module, mbox);
}

static void *
mailbox_migrate_mail_transaction_begin(struct mailbox_transaction_context *t)
{
	struct mailbox *box = mailbox_transaction_get_mailbox(t);
	struct mailbox_migrate_user *muser;
	struct mailbox_migrate_txn *txn;
	pool_t pool;

	muser = mailbox_migrate_user_get(box->storage->user);
	if (muser == NULL)
		return NULL;
	if (muser->txn_pool != NULL) {
		pool = muser->txn_pool;
		muser->txn_pool = NULL;
	} else {
		pool = pool_alloconly_create("mailbox-migrate txn", 1024);
	}
	txn = p_new(pool, struct mailbox_migrate_txn, 1);
	txn->pool = pool;
	txn->muser = muser;
	txn->box = box;
	p_array_init(&txn->entries, pool, 4);
	return txn;
}

/* GUID of a mail, also of one being saved in this transaction: backends
   can't look that up before the commit, but mailbox_migrate_save_begin()
   remembered the one the save was given (none on maildir: then NULL, and
   the commit reads it from the uidlist). */
static const char *mailbox_migrate_mail_get_guid(struct mail *mail)
{
	struct mailbox_migrate_mailbox *mbox =
		MAILBOX_MIGRATE_CONTEXT(mail->box);
	const char *guid;

	if (mail->saving) {
		if (mbox != NULL && mbox->saving_mail == mail &&
		    mbox->saving_guid[0] != '\0')
			return mbox->saving_guid;
		return NULL;
	}
	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0 ||
	    guid[0] == '\0')
		return NULL;
	return guid;
}

static struct mailbox_migrate_journal_entry *
mailbox_migrate_txn_add(struct mailbox_migrate_txn *txn,
			enum mailbox_migrate_journal_type type,
			struct mail *mail)
{
	struct mailbox_migrate_journal_entry *entry;

	entry = array_append_space(&txn->entries);
	entry->time = ioloop_time;
	entry->type = type;
	entry->uid = mail->uid;
	entry->message_guid = p_strdup(txn->pool,
				       mailbox_migrate_mail_get_guid(mail));
	return entry;
}

static void
mailbox_migrate_txn_add_state(struct mailbox_migrate_txn *txn,
			      struct mailbox_migrate_journal_entry *entry,
			      struct mail *mail)
{
	entry->flags = mail_get_flags(mail) & ~MAIL_RECENT;
	entry->keywords = p_strdup(txn->pool,
		mailbox_migrate_journal_keywords_join(
			mail_get_keywords(mail)));
}

static void mailbox_migrate_mail_save(void *_txn, struct mail *mail)
{
	struct mailbox_migrate_txn *txn = _txn;
	struct mailbox_migrate_journal_entry *entry;

	if (txn == NULL)
		return;
	/* maildir assigns UIDs at commit only when asked to */
	mail->transaction->flags |= MAILBOX_TRANSACTION_FLAG_ASSIGN_UIDS;
	entry = mailbox_migrate_txn_add(txn, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE,
					mail);
	mailbox_migrate_txn_add_state(txn, entry, mail);
}

static void
mailbox_migrate_mail_copy(void *_txn, struct mail *src, struct mail *dst)
{
	struct mailbox_migrate_txn *txn = _txn;
	struct mailbox_migrate_journal_entry *entry;

	if (txn == NULL)
		return;
	dst->transaction->flags |= MAILBOX_TRANSACTION_FLAG_ASSIGN_UIDS;
	entry = mailbox_migrate_txn_add(txn, MAILBOX_MIGRATE_JOURNAL_TYPE_COPY,
					dst);
	if (entry->message_guid == NULL) {
		/* a copy keeps the GUID */
		entry->message_guid = p_strdup(txn->pool,
			mailbox_migrate_mail_get_guid(src));
	}
	mailbox_migrate_txn_add_state(txn, entry, dst);
}

static void mailbox_migrate_mail_expunge(void *_txn, struct mail *mail)
{
	struct mailbox_migrate_txn *txn = _txn;

	if (txn != NULL) {
		(void)mailbox_migrate_txn_add(txn,
			MAILBOX_MIGRATE_JOURNAL_TYPE_EXPUNGE, mail);
	}
}

static void
mailbox_migrate_mail_update_flags(void *_txn, struct mail *mail,
				  enum mail_flags old_flags ATTR_UNUSED)
{
	struct mailbox_migrate_txn *txn = _txn;
	struct mailbox_migrate_journal_entry *entry;

	if (txn == NULL)
		return;
	entry = mailbox_migrate_txn_add(txn, MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS,
					mail);
	entry->flags = mail_get_flags(mail) & ~MAIL_RECENT;
}

static void
mailbox_migrate_mail_update_keywords(void *_txn, struct mail *mail,
				     const char *const *old_keywords ATTR_UNUSED)
{
	struct mailbox_migrate_txn *txn = _txn;
	struct mailbox_migrate_journal_entry *entry;

	if (txn == NULL)
		return;
	entry = mailbox_migrate_txn_add(txn,
		MAILBOX_MIGRATE_JOURNAL_TYPE_KEYWORDS, mail);
	entry->keywords = p_strdup(txn->pool,
		mailbox_migrate_journal_keywords_join(mail_get_keywords(mail)));
}

static void mailbox_migrate_txn_free(struct mailbox_migrate_txn **_txn)
{
	struct mailbox_migrate_txn *txn = *_txn;
	struct mailbox_migrate_user *muser = txn->muser;
	pool_t pool = txn->pool;

	*_txn = NULL;
	if (muser->txn_pool == NULL) {
		p_clear(pool);
		muser->txn_pool = pool;
	} else {
		pool_unref(&pool);
	}
}

/* Give saves and copies the UIDs the commit assigned, in save order. Returns
   FALSE if the commit assigned none. */
static bool
mailbox_migrate_txn_assign_uids(struct mailbox_migrate_txn *txn,
				struct mail_transaction_commit_changes *changes,
				uint32_t *max_uid_r)
{
	struct mailbox_migrate_journal_entry *entry;
	struct seq_range_iter iter;
	unsigned int n = 0;
	uint32_t uid;

	*max_uid_r = 0;
	seq_range_array_iter_init(&iter, &changes->saved_uids);
	array_foreach_modifiable(&txn->entries, entry) {
		if (entry->type != MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE &&
		    entry->type != MAILBOX_MIGRATE_JOURNAL_TYPE_COPY)
			continue;
		if (!seq_range_array_iter_nth(&iter, n++, &uid))
			return FALSE;
		entry->uid = uid;
		*max_uid_r = I_MAX(*max_uid_r, uid);
		if (entry->message_guid == NULL &&
		    mailbox_migrate_is_maildir(txn->box)) {
			entry->message_guid = p_strdup(txn->pool,
				mailbox_migrate_maildir_get_guid(txn->box,
								 uid));
		}
	}
	return TRUE;
}

static void
mailbox_migrate_txn_write(struct mailbox_migrate_txn *txn,
			  struct mail_transaction_commit_changes *changes)
{
	struct mailbox_migrate_user *muser = txn->muser;
	struct mailbox_migrate_journal_entry *entry;
	struct mailbox_status status;
	const char *mailbox_guid;
	uint32_t uidvalidity, max_uid;
	uint64_t modseq;
	buffer_t *buf;

	mailbox_guid = mailbox_migrate_get_mailbox_guid(txn->box);
	if (mailbox_guid == NULL) {
		mailbox_migrate_user_failed(muser, "mailbox GUID unknown",
			t_strdup_printf("Can't get GUID of mailbox %s: %s",
				mailbox_get_vname(txn->box),
				mailbox_get_last_internal_error(txn->box,
								NULL)));
		mailbox_migrate_mailbox_lost(muser, txn->box);
		return;
	}
	uidvalidity = changes->uid_validity;
	if (uidvalidity == 0) {
		mailbox_get_open_status(txn->box, STATUS_UIDVALIDITY, &status);
		uidvalidity = status.uidvalidity;
	}
	if (!mailbox_migrate_txn_assign_uids(txn, changes, &max_uid)) {
		mailbox_migrate_user_failed(muser, "UIDs of saved mail unknown",
			t_strdup_printf("Mailbox %s: the commit assigned no "
					"UIDs to saved mail",
					mailbox_get_vname(txn->box)));
		mailbox_migrate_mailbox_lost(muser, txn->box);
		return;
	}

	buf = mailbox_migrate_user_log_begin(muser);
	modseq = mailbox_migrate_get_index_modseq(txn->box);
	array_foreach_modifiable(&txn->entries, entry) {
		entry->mailbox_guid = mailbox_guid;
		entry->uidvalidity = uidvalidity;
		entry->service = muser->user->service;
		entry->modseq = modseq;
		mailbox_migrate_journal_log_add_entry(buf, entry);
	}
	mailbox_migrate_user_update_mailbox(muser, buf, mailbox_guid,
		mailbox_get_vname(txn->box), uidvalidity, 0, FALSE);
	if (muser->track_seen && max_uid > 0) {
		/* APPENDUID / COPYUID told the client these UIDs */
		mailbox_migrate_seen_note_log(muser, buf, txn->box,
					      uidvalidity, max_uid + 1);
	}
	if (mailbox_migrate_user_log_end(muser, buf) < 0)
		mailbox_migrate_mailbox_lost(muser, txn->box);
}

static void
mailbox_migrate_mail_transaction_commit(void *_txn,
		struct mail_transaction_commit_changes *changes)
{
	struct mailbox_migrate_txn *txn = _txn;

	if (txn == NULL)
		return;
	/* A commit without entries (a flag store that changed nothing, a
	   fetch that filled the cache) writes nothing. A witness of the
	   modseq it left would also cover what another process changed
	   meanwhile without the plugin, which the journal's proof must find;
	   and a mail's modseq moved without an entry is just such a change. */
	if (array_count(&txn->entries) > 0) {
		T_BEGIN {
			mailbox_migrate_txn_write(txn, changes);
		} T_END;
	}
	mailbox_migrate_txn_free(&txn);
}

static void mailbox_migrate_mail_transaction_rollback(void *_txn)
{
	struct mailbox_migrate_txn *txn = _txn;

	if (txn != NULL)
		mailbox_migrate_txn_free(&txn);
}

/* Append one mailbox-level entry to the journal log. */
static void
mailbox_migrate_write_mailbox_entry(struct mailbox_migrate_user *muser,
				    struct mailbox *box,
				    enum mailbox_migrate_journal_type type,
				    const char *mailbox_guid,
				    const char *name, const char *old_name)
{
	struct mailbox_migrate_journal_entry entry;
	uint64_t modseq = 0;
	buffer_t *buf;

	i_zero(&entry);
	entry.time = ioloop_time;
	entry.type = type;
	entry.mailbox_guid = mailbox_guid;
	entry.name = name;
	entry.old_name = old_name;
	entry.service = muser->user->service;
	if (box != NULL) {
		if (type == MAILBOX_MIGRATE_JOURNAL_TYPE_UPDATE) {
			/* A new UIDVALIDITY resets the index and the next sync
			   adds every mail again. Readers take the whole mailbox
			   anew after this entry, so the witness may cover that
			   sync: do it now. Only doveadm updates mailboxes
			   (dsync's writes aren't journaled). */
			(void)mailbox_sync(box, 0);
		}
		(void)mailbox_migrate_get_index_state(box, &entry.uidvalidity,
						      &modseq);
		entry.modseq = modseq;
	}

	buf = mailbox_migrate_user_log_begin(muser);
	mailbox_migrate_journal_log_add_entry(buf, &entry);
	if (type == MAILBOX_MIGRATE_JOURNAL_TYPE_DELETE) {
		mailbox_migrate_journal_log_add_deleted(buf, mailbox_guid);
	} else if (mailbox_guid[0] != '\0') {
		/* the witness is this entry's seq */
		mailbox_migrate_user_update_mailbox(muser, buf, mailbox_guid,
			name, entry.uidvalidity, modseq, TRUE);
	}
	if (mailbox_migrate_user_log_end(muser, buf) < 0 && box != NULL)
		mailbox_migrate_mailbox_lost(muser, box);
}

static void
mailbox_migrate_mailbox_event(struct mailbox *box,
			      enum mailbox_migrate_journal_type type,
			      const char *old_name)
{
	struct mailbox_migrate_user *muser;
	const char *guid;

	muser = mailbox_migrate_user_get(box->storage->user);
	if (muser == NULL)
		return;
	T_BEGIN {
		guid = mailbox_migrate_get_mailbox_guid(box);
		if (guid == NULL &&
		    (type == MAILBOX_MIGRATE_JOURNAL_TYPE_SUBSCRIBE ||
		     type == MAILBOX_MIGRATE_JOURNAL_TYPE_UNSUBSCRIBE)) {
			/* subscriptions may name mailboxes that don't exist */
			guid = "";
		}
		if (guid == NULL) {
			/* a \Noselect directory has no GUID and no mail */
			e_debug(muser->event, "%s %s: no mailbox GUID, "
				"not journaled",
				mailbox_migrate_journal_type_name(type),
				mailbox_get_vname(box));
		} else {
			mailbox_migrate_write_mailbox_entry(muser,
				guid[0] == '\0' ? NULL : box, type, guid,
				mailbox_get_vname(box), old_name);
		}
	} T_END;
}

static void mailbox_migrate_mailbox_create(struct mailbox *box)
{
	mailbox_migrate_mailbox_event(box, MAILBOX_MIGRATE_JOURNAL_TYPE_CREATE,
				      NULL);
}

static void mailbox_migrate_mailbox_update(struct mailbox *box)
{
	struct mailbox_migrate_mailbox *mbox = MAILBOX_MIGRATE_CONTEXT(box);

	/* an update may set a new mailbox GUID */
	if (mbox != NULL)
		mbox->guid[0] = '\0';
	mailbox_migrate_mailbox_event(box, MAILBOX_MIGRATE_JOURNAL_TYPE_UPDATE,
				      NULL);
}

static void
mailbox_migrate_mailbox_rename(struct mailbox *src, struct mailbox *dest)
{
	mailbox_migrate_mailbox_event(dest, MAILBOX_MIGRATE_JOURNAL_TYPE_RENAME,
				      mailbox_get_vname(src));
}

static void
mailbox_migrate_mailbox_set_subscribed(struct mailbox *box, bool subscribed)
{
	mailbox_migrate_mailbox_event(box, subscribed ?
				      MAILBOX_MIGRATE_JOURNAL_TYPE_SUBSCRIBE :
				      MAILBOX_MIGRATE_JOURNAL_TYPE_UNSUBSCRIBE,
				      NULL);
}

static void *mailbox_migrate_mailbox_delete_begin(struct mailbox *box)
{
	struct mailbox_migrate_user *muser;
	struct mailbox_migrate_delete_txn *dtxn;
	const char *guid;

	muser = mailbox_migrate_user_get(box->storage->user);
	if (muser == NULL)
		return NULL;
	/* the box is open here; after the delete its GUID is gone */
	guid = mailbox_migrate_get_mailbox_guid(box);
	if (guid == NULL)
		return NULL;
	dtxn = i_new(struct mailbox_migrate_delete_txn, 1);
	dtxn->muser = muser;
	dtxn->mailbox_guid = i_strdup(guid);
	dtxn->name = i_strdup(mailbox_get_vname(box));
	return dtxn;
}

static void
mailbox_migrate_delete_txn_free(struct mailbox_migrate_delete_txn **_dtxn)
{
	struct mailbox_migrate_delete_txn *dtxn = *_dtxn;

	*_dtxn = NULL;
	i_free(dtxn->mailbox_guid);
	i_free(dtxn->name);
	i_free(dtxn);
}

static void
mailbox_migrate_mailbox_delete_commit(void *_dtxn,
				      struct mailbox *box ATTR_UNUSED)
{
	struct mailbox_migrate_delete_txn *dtxn = _dtxn;

	if (dtxn == NULL)
		return;
	T_BEGIN {
		mailbox_migrate_write_mailbox_entry(dtxn->muser, NULL,
			MAILBOX_MIGRATE_JOURNAL_TYPE_DELETE,
			dtxn->mailbox_guid, dtxn->name, NULL);
	} T_END;
	mailbox_migrate_delete_txn_free(&dtxn);
}

static void mailbox_migrate_mailbox_delete_rollback(void *_dtxn)
{
	struct mailbox_migrate_delete_txn *dtxn = _dtxn;

	if (dtxn != NULL)
		mailbox_migrate_delete_txn_free(&dtxn);
}

const struct notify_vfuncs mailbox_migrate_notify_vfuncs = {
	.mail_transaction_begin = mailbox_migrate_mail_transaction_begin,
	.mail_save = mailbox_migrate_mail_save,
	.mail_copy = mailbox_migrate_mail_copy,
	.mail_expunge = mailbox_migrate_mail_expunge,
	.mail_update_flags = mailbox_migrate_mail_update_flags,
	.mail_update_keywords = mailbox_migrate_mail_update_keywords,
	.mail_transaction_commit = mailbox_migrate_mail_transaction_commit,
	.mail_transaction_rollback = mailbox_migrate_mail_transaction_rollback,
	.mailbox_create = mailbox_migrate_mailbox_create,
	.mailbox_update = mailbox_migrate_mailbox_update,
	.mailbox_delete_begin = mailbox_migrate_mailbox_delete_begin,
	.mailbox_delete_commit = mailbox_migrate_mailbox_delete_commit,
	.mailbox_delete_rollback = mailbox_migrate_mailbox_delete_rollback,
	.mailbox_rename = mailbox_migrate_mailbox_rename,
	.mailbox_set_subscribed = mailbox_migrate_mailbox_set_subscribed,
};
