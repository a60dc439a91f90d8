/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "istream.h"
#include "time-util.h"
#include "str-sanitize.h"
#include "mail-storage-private.h"
#include "mailbox-migrate-index-ext.h"
#include "mailbox-migrate-backup-record.h"
#include "mailbox-migrate-backup-store.h"
#include "doveadm-mailbox-migrate-pass-private.h"

/* The pass engine's backup destination: what changed in a source mailbox
   becomes lines of the pass' state record, and bodies the store doesn't
   have yet are appended once (named by their SHA-256). The store's index
   is the "destination side" a full comparison reads. */

struct backup_box {
	struct mailbox_migrate_pass *pass;
	struct mailbox_migrate_backup_store *store;
	struct mailbox *sbox;
	const char *guid;
	pool_t pool;
	struct mailbox_transaction_context *t;
	struct mail *mail;
	buffer_t *body;
	struct mailbox_migrate_pass_counts *counts;
};

static const char *const *backup_keywords(const char *keywords)
{
	if (*keywords == '\0')
		return t_new(const char *, 1);
	return (const char *const *)t_strsplit_spaces(keywords, " ");
}

static struct mailbox_migrate_backup_message *
backup_rows_find_uid(ARRAY_TYPE(mailbox_migrate_backup_message) *rows,
		     uint32_t uid)
{
	struct mailbox_migrate_backup_message *row;
	unsigned int idx, left = 0, right = array_count(rows);

	while (left < right) {
		idx = (left + right) / 2;
		row = array_idx_modifiable(rows, idx);
		if (row->uid < uid)
			left = idx + 1;
		else if (row->uid > uid)
			right = idx;
		else
			return row;
	}
	return NULL;
}

/* Read the message's whole body into bb->body. Returns 1, 0 if it was
   expunged meanwhile, -1 on error. */
static int backup_read_body(struct backup_box *bb)
{
	struct istream *input;
	const unsigned char *data;
	size_t size;
	int ret;

	buffer_set_used_size(bb->body, 0);
	if (mail_get_stream(bb->mail, NULL, NULL, &input) < 0)
		return bb->mail->expunged ? 0 : -1;
	while ((ret = i_stream_read_more(input, &data, &size)) > 0) {
		buffer_append(bb->body, data, size);
		i_stream_skip(input, size);
	}
	if (input->stream_errno != 0) {
		mail_set_critical(bb->mail, "read(%s) failed: %s",
				  i_stream_get_name(input),
				  i_stream_get_error(input));
		return -1;
	}
	return 1;
}

/* Append an add line (and the body if the store lacks it). Returns 1, 0
   if the mail was expunged meanwhile, -1 on error. */
static int backup_add(struct backup_box *bb, const struct pass_mail *s)
{
	struct mailbox_migrate_backup_line line;
	const char *hash, *value, *error;
	unsigned int order;
	time_t t;
	int ret;

	if (!mail_set_uid(bb->mail, s->uid))
		return 0;
	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_ADD;
	line.mailbox_guid = bb->guid;
	line.uid = s->uid;
	line.guid = s->guid;
	line.flags = s->flags;
	line.keywords = s->keywords;
	if (mail_get_received_date(bb->mail, &t) < 0)
		return bb->mail->expunged ? 0 : -1;
	line.received = t;
	if (mail_get_save_date(bb->mail, &t) < 0)
		return bb->mail->expunged ? 0 : -1;
	line.saved = t;
	if (mail_get_special(bb->mail, MAIL_FETCH_UIDL_BACKEND, &value) == 0)
		line.pop3_uidl = value;
	if (mail_get_special(bb->mail, MAIL_FETCH_POP3_ORDER, &value) == 0 &&
	    *value != '\0' && str_to_uint(value, &order) == 0)
		line.pop3_order = order;
	if ((ret = backup_read_body(bb)) <= 0)
		return ret;
	hash = mailbox_migrate_backup_hash(bb->body->data, bb->body->used);
	line.hash = hash;
	line.size = bb->body->used;

	ret = mailbox_migrate_backup_store_has_body(bb->store, hash, &error);
	if (ret < 0) {
		pass_failed(bb->pass, MAIL_ERROR_TEMP, error);
		return -1;
	}
	if (ret == 0) {
		mailbox_migrate_backup_store_add_body(bb->store, hash,
			bb->body->data, bb->body->used);
	}
	mailbox_migrate_backup_store_add_line(bb->store, &line);
	return 1;
}

static void backup_line_uid(struct backup_box *bb,
			    enum mailbox_migrate_backup_line_type type,
			    const struct pass_mail *s, uint32_t uid)
{
	struct mailbox_migrate_backup_line line;

	i_zero(&line);
	line.type = type;
	line.mailbox_guid = bb->guid;
	line.uid = uid;
	if (s != NULL) {
		line.flags = s->flags;
		line.keywords = s->keywords;
	}
	mailbox_migrate_backup_store_add_line(bb->store, &line);
}

/* Compare the loaded source mails with the store's rows of the same UIDs
   and record the difference. */
static int backup_box_diff(struct backup_box *bb,
			   ARRAY_TYPE(pass_mail) *src_mails,
			   ARRAY_TYPE(mailbox_migrate_backup_message) *rows)
{
	struct mailbox_migrate_backup_message *row;
	struct pass_mail *s;
	bool dry_run = bb->pass->set->dry_run;
	int ret;

	array_foreach_modifiable(src_mails, s) {
		row = backup_rows_find_uid(rows, s->uid);
		if (row != NULL)
			row->from_pass = 0; /* paired */
		if (row != NULL && strcmp(row->guid, s->guid) == 0) {
			if (row->flags == s->flags &&
			    pass_keywords_equal(backup_keywords(row->keywords),
						s->keywords))
				continue;
			bb->counts->flag_changes++;
			if (!dry_run) {
				backup_line_uid(bb,
					MAILBOX_MIGRATE_BACKUP_LINE_FLAGS,
					s, s->uid);
			}
			continue;
		}
		if (dry_run) {
			bb->counts->copied++;
			continue;
		}
		T_BEGIN {
			ret = backup_add(bb, s);
		} T_END;
		if (ret < 0) {
			pass_box_failed(bb->pass, bb->sbox, "Reading");
			return -1;
		}
		if (ret > 0) {
			bb->counts->copied++;
			bb->pass->copying++;
			pass_tick(bb->pass);
		} else if (row != NULL) {
			/* replaced, then expunged: gone all the same */
			row->from_pass = 1;
		}
	}
	/* rows the source doesn't have (any more) */
	array_foreach_modifiable(rows, row) {
		if (row->from_pass == 0)
			continue;
		bb->counts->expunged++;
		if (!dry_run) {
			backup_line_uid(bb, MAILBOX_MIGRATE_BACKUP_LINE_EXPUNGE,
					NULL, row->uid);
		}
	}
	return 0;
}

/* The store, opened now if the pass hasn't needed it before. NULL (and the
   pass failed) if it can't be opened. */
static struct mailbox_migrate_backup_store *
backup_pass_store(struct mailbox_migrate_pass *pass)
{
	const char *error;

	if (pass->backup == NULL && pass->error_fatal) {
		/* tried already (and waited for its lock) */
		return NULL;
	}
	if (pass->backup == NULL &&
	    pass->set->backup_open(pass->set->context, &pass->backup,
				   &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		pass->error_fatal = TRUE;
		return NULL;
	}
	return pass->backup;
}

/* Special-use flags come from the namespace configuration (Dovecot 2.3
   keeps none with the mailbox): recorded when they differ from what the
   store has, which a full pass notices for every mailbox and a journal
   pass for the mailboxes that changed. */
static int backup_box_special_use(struct mailbox_migrate_pass *pass,
				  struct mailbox_migrate_backup_store *store,
				  struct mailbox *sbox, const char *guid,
				  bool *touched_r)
{
	struct mailbox_migrate_backup_line line;
	const char *want, *have, *error;

	want = sbox->set == NULL ? "" : sbox->set->special_use;
	if (mailbox_migrate_backup_index_special_use(store->index, guid, 0,
						     &have, &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		return -1;
	}
	if (strcmp(want, have) == 0)
		return 0;
	*touched_r = TRUE;
	if (pass->set->dry_run)
		return 0;
	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE;
	line.mailbox_guid = guid;
	line.special_use = want;
	mailbox_migrate_backup_store_add_line(store, &line);
	return 0;
}

static int
backup_sync_box(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
		const char *guid, const struct pass_box_changes *changes,
		struct mailbox_migrate_pass_counts *counts, bool *touched_r)
{
	struct mailbox_migrate_backup_store *store = backup_pass_store(pass);
	struct mailbox_migrate_index_ext_header lost;
	struct mailbox_migrate_destination_mailbox rec;
	struct mailbox_migrate_backup_mailbox bbox;
	struct mailbox_migrate_backup_line line;
	struct mailbox_status status;
	ARRAY_TYPE(pass_mail) src_mails;
	ARRAY_TYPE(mailbox_migrate_backup_message) rows;
	ARRAY_TYPE(seq_range) uids;
	struct backup_box bb;
	const char *vname = mailbox_get_vname(sbox), *error;
	uint64_t highest_modseq;
	bool new_rows = FALSE;
	int ret;

	if (store == NULL)
		return -1;
	/* synced already when a journal pass proved the journal */
	if (mailbox_enable(sbox, MAILBOX_FEATURE_CONDSTORE) < 0 ||
	    (!sbox->synced && mailbox_sync(sbox, 0) < 0) ||
	    pass_box_status(sbox, &status, &highest_modseq) < 0) {
		pass_box_failed(pass, sbox, "Syncing source mailbox");
		return -1;
	}
	mailbox_migrate_index_ext_get(sbox, &lost);
	ret = mailbox_migrate_destination_mailbox_get(pass->db,
			pass->set->dest_name, guid, &rec, &error);
	if (ret < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		return -1;
	}
	if (ret == 0 || rec.uidvalidity != status.uidvalidity) {
		i_zero(&rec);
		changes = NULL;
	}

	/* the mailbox itself: new, renamed, or with a new UIDVALIDITY */
	ret = mailbox_migrate_backup_index_mailbox_get(store->index, guid, 0,
						       &bbox, &error);
	if (ret < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		return -1;
	}
	if (ret == 0 || bbox.uidvalidity != status.uidvalidity ||
	    strcmp(bbox.name, vname) != 0) {
		if (ret > 0 && bbox.uidvalidity == status.uidvalidity) {
			i_info("%s: renamed from %s in the backup%s", vname,
			       str_sanitize_utf8(bbox.name, 200),
			       pass->set->dry_run ? " (dry run)" : "");
		} else {
			/* the store's rows are of another UIDVALIDITY (or
			   none): every message is new to it */
			new_rows = TRUE;
			changes = NULL;
		}
		*touched_r = TRUE;
		if (!pass->set->dry_run) {
			i_zero(&line);
			line.type = MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX;
			line.mailbox_guid = guid;
			line.uidvalidity = status.uidvalidity;
			line.name = vname;
			mailbox_migrate_backup_store_add_line(store, &line);
		}
	}
	if (backup_box_special_use(pass, store, sbox, guid, touched_r) < 0)
		return -1;

	i_zero(&bb);
	bb.pass = pass;
	bb.store = store;
	bb.sbox = sbox;
	bb.guid = guid;
	bb.counts = counts;
	bb.pool = pool_alloconly_create("mailbox-migrate backup box", 16384);
	p_array_init(&src_mails, bb.pool, 64);
	p_array_init(&rows, bb.pool, 64);
	t_array_init(&uids, 16);
	if (changes == NULL) {
		ret = pass_mails_load(sbox, bb.pool, NULL, &src_mails);
	} else {
		const uint32_t *uidp;

		seq_range_array_merge(&uids, &changes->saved);
		seq_range_array_merge(&uids, &changes->flagged);
		ret = pass_mails_load(sbox, bb.pool, &uids, &src_mails);
		array_foreach(&changes->expunged, uidp)
			seq_range_array_add(&uids, *uidp);
	}
	if (ret < 0) {
		pass_box_failed(pass, sbox, "Reading the index of");
		pool_unref(&bb.pool);
		return -1;
	}
	if (!new_rows &&
	    mailbox_migrate_backup_index_messages(store->index, guid, 0,
			changes == NULL ? NULL : &uids, bb.pool, &rows,
			&error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		pool_unref(&bb.pool);
		return -1;
	}

	bb.t = mailbox_transaction_begin(sbox, 0, __func__);
	bb.mail = mail_alloc(bb.t, MAIL_FETCH_STREAM_HEADER |
			     MAIL_FETCH_STREAM_BODY, NULL);
	bb.body = buffer_create_dynamic(default_pool, 65536);
	ret = backup_box_diff(&bb, &src_mails, &rows);
	buffer_free(&bb.body);
	mail_free(&bb.mail);
	(void)mailbox_transaction_commit(&bb.t);
	pool_unref(&bb.pool);
	if (ret < 0)
		return -1;

	if (changes == NULL || pass->set->source_quiet)
		rec.src_uidnext = status.uidnext;
	rec.uidvalidity = status.uidvalidity;
	rec.src_modseq = highest_modseq;
	rec.lost_count = lost.lost_count;
	if (!pass->set->dry_run)
		pass_record_box(pass, guid, &rec);
	return 0;
}

static void
backup_pass_box(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
		const char *guid, const struct pass_box_changes *changes)
{
	struct mailbox_migrate_pass_counts counts;
	struct timeval start;
	bool touched = FALSE;

	i_zero(&counts);
	i_gettimeofday(&start);
	if (backup_sync_box(pass, sbox, guid, changes, &counts,
			    &touched) < 0) {
		pass->result->mailboxes_failed++;
		return;
	}
	pass_box_done(pass, mailbox_get_vname(sbox), &counts, &start,
		      touched || changes != NULL);
}

static void backup_pass_delete_box(struct mailbox_migrate_pass *pass,
				   const char *guid)
{
	struct mailbox_migrate_backup_store *store = backup_pass_store(pass);
	struct mailbox_migrate_backup_mailbox bbox;
	struct mailbox_migrate_backup_line line;
	const char *error;
	int ret;

	if (store == NULL)
		return;
	ret = mailbox_migrate_backup_index_mailbox_get(store->index, guid, 0,
						       &bbox, &error);
	if (ret <= 0) {
		if (ret < 0)
			pass_failed(pass, MAIL_ERROR_TEMP, error);
		return;
	}
	i_info("%s: deleted on the source: marked deleted in the backup "
	       "(restorable until compacted)%s",
	       str_sanitize_utf8(bbox.name, 200),
	       pass->set->dry_run ? " (dry run)" : "");
	pass->result->mailboxes_touched++;
	if (pass->set->dry_run)
		return;
	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_DELETE;
	line.mailbox_guid = guid;
	mailbox_migrate_backup_store_add_line(store, &line);
	if (mailbox_migrate_destination_mailbox_delete(pass->db,
			pass->set->dest_name, guid, &error) < 0)
		pass_failed(pass, MAIL_ERROR_TEMP, error);
}

static void backup_pass_delete_gone(struct mailbox_migrate_pass *pass,
				    HASH_TABLE_TYPE(pass_guids) src_guids)
{
	struct mailbox_migrate_backup_store *store = backup_pass_store(pass);
	ARRAY_TYPE(mailbox_migrate_backup_mailbox) boxes;
	const struct mailbox_migrate_backup_mailbox *box;
	const char *error;

	if (store == NULL)
		return;
	t_array_init(&boxes, 16);
	if (mailbox_migrate_backup_index_mailboxes(store->index,
			0, pool_datastack_create(), &boxes, &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		return;
	}
	array_foreach(&boxes, box) {
		if (hash_table_lookup(src_guids, box->guid) == NULL)
			backup_pass_delete_box(pass, box->guid);
	}
}

static void backup_line_subscribed(struct mailbox_migrate_pass *pass,
				   const char *name, bool subscribed)
{
	struct mailbox_migrate_backup_line line;

	if (pass->set->dry_run)
		return;
	pass->subscriptions_written = TRUE;
	i_zero(&line);
	line.type = subscribed ? MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE :
		MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE;
	line.name = name;
	mailbox_migrate_backup_store_add_line(pass->backup, &line);
}

/* The store holds the source's subscriptions as they are (it is nobody's
   live mail, so there is nothing of its own to keep). */
static void
backup_pass_subscriptions(struct mailbox_migrate_pass *pass,
			  const ARRAY_TYPE(const_string) *changed_names,
			  HASH_TABLE_TYPE(pass_names) src_boxes ATTR_UNUSED)
{
	struct mailbox_migrate_backup_store *store = backup_pass_store(pass);
	HASH_TABLE_TYPE(pass_names) have, any;
	ARRAY_TYPE(const_string) stored;
	const char *const *namep, *error;

	if (store == NULL)
		return;
	t_array_init(&stored, 16);
	if (mailbox_migrate_backup_index_subscriptions(store->index, 0,
			pool_datastack_create(), &stored, &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		return;
	}
	hash_table_create(&have, pool_datastack_create(), 0, str_hash, strcmp);
	array_foreach(&stored, namep)
		hash_table_update(have, *namep, POINTER_CAST(1));
	i_zero(&any);
	pass_subscriptions_sync(pass, changed_names, have, any,
				backup_line_subscribed);
	hash_table_destroy(&have);
}

static void backup_pass_sync(struct mailbox_migrate_pass *pass)
{
	const char *error;

	if (pass->backup == NULL) {
		/* never needed: nothing was brought */
		return;
	}
	if (mailbox_migrate_backup_store_pass_commit(pass->backup,
						     &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, t_strdup_printf(
			"Backup store %s: %s", pass->backup->dir, error));
		pass->error_fatal = TRUE;
	}
}

const struct mailbox_migrate_pass_vfuncs mailbox_migrate_backup_pass_vfuncs = {
	.box = backup_pass_box,
	.delete_box = backup_pass_delete_box,
	.delete_gone = backup_pass_delete_gone,
	.subscriptions = backup_pass_subscriptions,
	.sync = backup_pass_sync,
	.all_or_nothing = TRUE,
};
