/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "ioloop.h"
#include "hash.h"
#include "mail-storage-private.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-seen.h"
#include "mailbox-migrate-journal-log.h"
#include "mailbox-migrate-plugin.h"

static unsigned int
mailbox_migrate_seen_key_hash(const struct mailbox_migrate_seen_key *key)
{
	return guid_128_hash(key->guid) ^ key->uidvalidity;
}

static int
mailbox_migrate_seen_key_cmp(const struct mailbox_migrate_seen_key *key1,
			     const struct mailbox_migrate_seen_key *key2)
{
	if (key1->uidvalidity != key2->uidvalidity)
		return key1->uidvalidity < key2->uidvalidity ? -1 : 1;
	return guid_128_cmp(key1->guid, key2->guid);
}

/* Fills the cache key for box/uidvalidity and returns whether the stored
   value may be below uidnext (FALSE: nothing to write, also when the key
   can't be made: then *key_made_r is FALSE); *known_r tells whether the
   stored value is known (read or written by this session). */
static bool
mailbox_migrate_seen_need_raise(struct mailbox_migrate_user *muser,
				struct mailbox *box, uint32_t uidvalidity,
				uint32_t uidnext,
				struct mailbox_migrate_seen_key *key_r,
				bool *key_made_r, bool *known_r)
{
	void *value;

	*known_r = FALSE;
	*key_made_r = FALSE;
	if (uidvalidity == 0 || uidnext == 0 ||
	    !mailbox_migrate_get_mailbox_guid_128(box, key_r->guid))
		return FALSE;
	key_r->uidvalidity = uidvalidity;
	*key_made_r = TRUE;
	if (!hash_table_is_created(muser->seen_cache)) {
		hash_table_create(&muser->seen_cache, muser->user->pool, 0,
				  mailbox_migrate_seen_key_hash,
				  mailbox_migrate_seen_key_cmp);
	}
	value = hash_table_lookup(muser->seen_cache, key_r);
	*known_r = value != NULL;
	return value == NULL || POINTER_CAST_TO(value, uint32_t) < uidnext;
}

static void
mailbox_migrate_seen_cache_set(struct mailbox_migrate_user *muser,
			       const struct mailbox_migrate_seen_key *key,
			       uint32_t uidnext)
{
	struct mailbox_migrate_seen_key *orig_key;
	void *value;

	if (!hash_table_lookup_full(muser->seen_cache, key, &orig_key,
				    &value)) {
		orig_key = p_new(muser->user->pool,
				 struct mailbox_migrate_seen_key, 1);
		*orig_key = *key;
	}
	hash_table_update(muser->seen_cache, orig_key, POINTER_CAST(uidnext));
}

/* Raise inside an open write transaction; returns the value now stored.
   The first time in a session the stored value is read (another session
   may have stored more); after that the raise alone does (it never
   lowers). */
static int
mailbox_migrate_seen_raise_in(struct mailbox_migrate_user *muser,
			      struct mailbox_migrate_db *db,
			      const struct mailbox_migrate_seen_key *key,
			      bool known, uint32_t *uidnext,
			      const char **error_r)
{
	struct mailbox_migrate_seen_record rec;
	const char *guid = guid_128_to_string(key->guid);
	int ret;

	if (known) {
		return mailbox_migrate_seen_raise(db, guid, key->uidvalidity,
				*uidnext, ioloop_time, muser->user->service,
				error_r) < 0 ? -1 : 0;
	}
	ret = mailbox_migrate_seen_get(db, guid, key->uidvalidity, &rec,
				       error_r);
	if (ret < 0)
		return -1;
	if (ret > 0 && rec.seen_uidnext >= *uidnext) {
		*uidnext = rec.seen_uidnext;
		return 0;
	}
	return mailbox_migrate_seen_raise(db, guid, key->uidvalidity,
					  *uidnext, ioloop_time,
					  muser->user->service,
					  error_r) < 0 ? -1 : 0;
}

void mailbox_migrate_seen_note(struct mailbox_migrate_user *muser,
			       struct mailbox *box, uint32_t uidvalidity,
			       uint32_t uidnext)
{
	struct mailbox_migrate_mailbox *mbox = MAILBOX_MIGRATE_CONTEXT(box);
	struct mailbox_migrate_seen_key key;
	struct mailbox_migrate_db *db;
	const char *error = NULL;
	bool ok, key_made, known;

	if (mbox != NULL && mbox->seen_uidvalidity == uidvalidity &&
	    mbox->seen_uidnext >= uidnext)
		return;
	if (!mailbox_migrate_seen_need_raise(muser, box, uidvalidity, uidnext,
					     &key, &key_made, &known)) {
		if (mbox != NULL && key_made) {
			mbox->seen_uidvalidity = uidvalidity;
			mbox->seen_uidnext = uidnext;
		}
		return;
	}
	db = mailbox_migrate_user_write_begin(muser);
	if (db != NULL) {
		ok = mailbox_migrate_seen_raise_in(muser, db, &key, known,
						   &uidnext, &error) == 0;
		(void)mailbox_migrate_user_write_end(muser, ok, error);
	}
	/* also after a failure: don't retry on every command */
	mailbox_migrate_seen_cache_set(muser, &key, uidnext);
	if (mbox != NULL) {
		mbox->seen_uidvalidity = uidvalidity;
		mbox->seen_uidnext = uidnext;
	}
}

void mailbox_migrate_seen_note_log(struct mailbox_migrate_user *muser,
				   buffer_t *buf, struct mailbox *box,
				   uint32_t uidvalidity, uint32_t uidnext)
{
	struct mailbox_migrate_seen_key key;
	bool key_made, known;

	if (!mailbox_migrate_seen_need_raise(muser, box, uidvalidity, uidnext,
					     &key, &key_made, &known))
		return;
	/* not read first even when unknown: the fold raises, never lowers */
	mailbox_migrate_journal_log_add_seen(buf, guid_128_to_string(key.guid),
		uidvalidity, uidnext, ioloop_time, muser->user->service);
	mailbox_migrate_seen_cache_set(muser, &key, uidnext);
}

static int
mailbox_migrate_get_status(struct mailbox *box, enum mailbox_status_items items,
			   struct mailbox_status *status_r)
{
	struct mailbox_migrate_mailbox *mbox =
		MAILBOX_MIGRATE_CONTEXT_REQUIRE(box);
	struct mailbox_migrate_user *muser;
	bool shown;

	/* STATUS (MESSAGES) or (UIDNEXT) tells the client about UIDs */
	shown = (items & (STATUS_UIDNEXT | STATUS_MESSAGES)) != 0;
	if (shown)
		items |= STATUS_UIDNEXT | STATUS_UIDVALIDITY;
	if (mbox->module_ctx.super.get_status(box, items, status_r) < 0)
		return -1;
	muser = mailbox_migrate_user_get(box->storage->user);
	if (shown && muser != NULL) T_BEGIN {
		mailbox_migrate_seen_note(muser, box, status_r->uidvalidity,
					  status_r->uidnext);
	} T_END;
	return 0;
}

static int
mailbox_migrate_sync_deinit(struct mailbox_sync_context *ctx,
			    struct mailbox_sync_status *status_r)
{
	struct mailbox *box = ctx->box;
	struct mailbox_migrate_mailbox *mbox =
		MAILBOX_MIGRATE_CONTEXT_REQUIRE(box);
	struct mailbox_status status;

	if (mbox->module_ctx.super.sync_deinit(ctx, status_r) < 0)
		return -1;
	/* After a sync (SELECT, NOOP, IDLE, the end of any command, POP3
	   login) the client is told of every message in the synced view; its
	   UIDNEXT is an upper bound of the UIDs it could have seen. Going
	   through get_status records it. */
	mailbox_get_open_status(box, STATUS_UIDNEXT | STATUS_UIDVALIDITY,
				&status);
	return 0;
}

void mailbox_migrate_seen_hooks_init(struct mailbox_vfuncs *v)
{
	v->get_status = mailbox_migrate_get_status;
	v->sync_deinit = mailbox_migrate_sync_deinit;
}
