/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* syncfs() */
#endif
#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "seq-range-array.h"
#include "guid.h"
#include "time-util.h"
#include "imap-match.h"
#include "str-sanitize.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "mail-search-build.h"
#include "mailbox-list-iter.h"
#include "mailbox-list-private.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal.h"
#include "mailbox-migrate-journal-verify.h"
#include "mailbox-migrate-journal-log.h"
#include "mailbox-migrate-index-ext.h"
#include "mailbox-migrate-seen.h"
#include "mailbox-migrate-destination.h"
#include "mailbox-migrate-uid-rule.h"
#include "mailbox-migrate-guid-cache.h"
#include "doveadm-mailbox-migrate-pass-private.h"

#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

/* a fold mid-pass waits this long for sessions holding the log or the
   state file; a mailbox is compared in full otherwise */
#define PASS_JOURNAL_LOG_LOCK_TIMEOUT_MSECS 1000

struct pass_flag_update {
	uint32_t dst_uid;
	enum mail_flags flags;
	const char *const *keywords;
};

/* What one mailbox's pass will do, decided before anything is written. */
struct pass_box_plan {
	ARRAY(struct pass_flag_update) flag_updates;
	ARRAY_TYPE(uint32_t) expunges;
	/* source UIDs copied keeping their UID, and copied to the top */
	ARRAY_TYPE(uint32_t) copy_keep, copy_top;
	/* destination UIDs moved to the top */
	ARRAY_TYPE(uint32_t) renumber;
};

void pass_failed(struct mailbox_migrate_pass *pass,
			enum mail_error error, const char *text)
{
	/* the first failure is the one worth reporting */
	if (pass->error == NULL) {
		pass->error = p_strdup(pass->pool, text);
		pass->mail_error = error;
	}
}

void pass_box_failed(struct mailbox_migrate_pass *pass,
			    struct mailbox *box, const char *what)
{
	enum mail_error error;
	const char *errstr = mailbox_get_last_internal_error(box, &error);

	pass_failed(pass, error, t_strdup_printf("%s %s: %s", what,
				mailbox_get_vname(box), errstr));
}

bool pass_box_selected(struct mailbox_migrate_pass *pass,
			      const char *vname)
{
	unsigned int i;

	if (pass->globs == NULL)
		return TRUE;
	for (i = 0; pass->globs[i] != NULL; i++) {
		if (imap_match(pass->globs[i], vname) == IMAP_MATCH_YES)
			return TRUE;
	}
	return FALSE;
}

void pass_tick(struct mailbox_migrate_pass *pass)
{
	const struct timeval *since;
	struct timeval now;

	if (pass->set->tick != NULL)
		pass->set->tick(pass->set->context);
	if (pass->set->progress_interval_msecs == 0)
		return;
	/* the time of now, not ioloop_time: no ioloop runs during a pass */
	i_gettimeofday(&now);
	since = pass->last_progress.tv_sec != 0 ? &pass->last_progress :
		&pass->start;
	if (timeval_diff_msecs(&now, since) <
	    (long long)pass->set->progress_interval_msecs)
		return;
	pass->last_progress = now;
	fprintf(stderr, "mailbox-migrate(%s): %u%s mailboxes, "
		"%u messages copied, %u expunged, %lld s\n",
		pass->src_user->username, pass->boxes_done,
		pass->boxes_total == 0 ? "" :
		t_strdup_printf("/%u", pass->boxes_total),
		pass->result->total.copied + pass->copying,
		pass->result->total.expunged,
		(long long)timeval_diff_msecs(&now, &pass->start) / 1000);
}

/* A listed (so existing) source mailbox's GUID: from the mailbox list
   index when it has it, without opening the mailbox. */
static const char *pass_src_box_guid(struct mailbox *box)
{
	struct mailbox_metadata metadata;

	if (mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &metadata) < 0)
		return NULL;
	return guid_128_to_string(metadata.guid);
}

const char *pass_box_guid(struct mailbox *box)
{
	/* open first: Dovecot asserts on a GUID it failed to make when
	   the mailbox can't be created (autocreated INBOX, unwritable) */
	if (mailbox_open(box) < 0)
		return NULL;
	return pass_src_box_guid(box);
}

static struct mailbox *
pass_box_alloc(struct mail_user *user, const char *vname,
	       enum mailbox_flags flags)
{
	struct mail_namespace *ns = mail_namespace_find(user->namespaces, vname);

	return mailbox_alloc(ns->list, vname, flags);
}

/* Read the index record of the mail the mail object points at. */
static int pass_mail_read(struct mail *mail, pool_t pool,
			  struct pass_mail *pmail_r)
{
	const char *guid;

	i_zero(pmail_r);
	pmail_r->uid = mail->uid;
	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		return -1;
	pmail_r->guid = p_strdup(pool, guid);
	pmail_r->flags = mail_get_flags(mail) & ENUM_NEGATE(MAIL_RECENT);
	pmail_r->keywords = p_strarray_dup(pool, mail_get_keywords(mail));
	pmail_r->modseq = mail_get_modseq(mail);
	return 0;
}

/* Read the index records of all mails (uids == NULL) or of the given UIDs
   that still exist, in UID order. */
int pass_mails_load(struct mailbox *box, pool_t pool,
			   const ARRAY_TYPE(seq_range) *uids,
			   ARRAY_TYPE(pass_mail) *mails)
{
	struct mailbox_transaction_context *t;
	struct mail *mail;
	struct seq_range_iter iter;
	struct pass_mail *pmail;
	unsigned int n = 0;
	uint32_t seq, count, uid;
	int ret = 0;

	if (uids == NULL) {
		struct mailbox_status status;

		mailbox_get_open_status(box, STATUS_MESSAGES, &status);
		count = status.messages;
	}
	t = mailbox_transaction_begin(box, 0, __func__);
	mail = mail_alloc(t, MAIL_FETCH_FLAGS, NULL);
	if (uids == NULL) {
		for (seq = 1; seq <= count && ret == 0; seq++) {
			mail_set_seq(mail, seq);
			pmail = array_append_space(mails);
			if (pass_mail_read(mail, pool, pmail) < 0)
				ret = -1;
		}
	} else {
		seq_range_array_iter_init(&iter, uids);
		while (ret == 0 && seq_range_array_iter_nth(&iter, n++, &uid)) {
			if (!mail_set_uid(mail, uid))
				continue;
			pmail = array_append_space(mails);
			if (pass_mail_read(mail, pool, pmail) < 0) {
				if (mail->expunged) {
					array_pop_back(mails);
					continue;
				}
				ret = -1;
			}
		}
	}
	mail_free(&mail);
	(void)mailbox_transaction_commit(&t);
	return ret;
}

struct pass_mail *
pass_mails_find_uid(ARRAY_TYPE(pass_mail) *mails, uint32_t uid)
{
	struct pass_mail *m;
	unsigned int idx, left = 0, right = array_count(mails);

	while (left < right) {
		idx = (left + right) / 2;
		m = array_idx_modifiable(mails, idx);
		if (m->uid < uid)
			left = idx + 1;
		else if (m->uid > uid)
			right = idx;
		else
			return m;
	}
	return NULL;
}

/* Find an unpaired destination mail with the GUID. When the destination's
   mails are all loaded (full comparison) they are looked up in guids
   (GUID -> first index in dst_mails of a mail with it); otherwise the
   destination's index is searched and the found mail is added to
   dst_mails. */
static struct pass_mail *
pass_dst_find_guid(struct mailbox *dbox, pool_t pool, bool all_loaded,
		   ARRAY_TYPE(pass_mail) *dst_mails,
		   HASH_TABLE_TYPE(pass_guids) guids, const char *guid)
{
	struct mailbox_transaction_context *t;
	struct mail_search_args *args;
	struct mail_search_context *search;
	struct pass_mail *m, found;
	struct mail *mail;
	unsigned int i, count;
	bool have = FALSE;
	void *value;

	if (*guid == '\0')
		return NULL;
	if (all_loaded) {
		if (!hash_table_lookup_full(guids, guid, &guid, &value))
			return NULL;
		/* the same GUID may be there more than once (dbox copies) */
		count = array_count(dst_mails);
		for (i = POINTER_CAST_TO(value, unsigned int); i < count; i++) {
			m = array_idx_modifiable(dst_mails, i);
			if (!m->paired && strcmp(m->guid, guid) == 0)
				return m;
		}
		return NULL;
	}
	array_foreach_modifiable(dst_mails, m) {
		if (!m->paired && strcmp(m->guid, guid) == 0)
			return m;
	}

	args = mail_search_build_init();
	mail_search_build_add(args, SEARCH_GUID)->value.str =
		p_strdup(args->pool, guid);
	t = mailbox_transaction_begin(dbox, 0, __func__);
	search = mailbox_search_init(t, args, NULL, MAIL_FETCH_FLAGS, NULL);
	mail_search_args_unref(&args);
	while (mailbox_search_next(search, &mail)) {
		if (pass_mails_find_uid(dst_mails, mail->uid) != NULL)
			continue;
		if (pass_mail_read(mail, pool, &found) == 0) {
			have = TRUE;
			break;
		}
	}
	(void)mailbox_search_deinit(&search);
	(void)mailbox_transaction_commit(&t);
	if (!have)
		return NULL;

	/* keep the array sorted by UID */
	count = array_count(dst_mails);
	for (i = 0; i < count; i++) {
		const struct pass_mail *m2 = array_idx(dst_mails, i);

		if (m2->uid > found.uid)
			break;
	}
	array_insert(dst_mails, i, &found, 1);
	return array_idx_modifiable(dst_mails, i);
}

bool pass_keywords_equal(const char *const *a, const char *const *b)
{
	unsigned int i;

	for (i = 0; a[i] != NULL && b[i] != NULL; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return FALSE;
	}
	return a[i] == NULL && b[i] == NULL;
}

struct pass_box_state {
	const char *guid;
	uint32_t src_uidvalidity;
	struct mailbox_status src_status, dst_status;
	uint64_t src_highest_modseq, dst_highest_modseq;
	uint32_t src_seen_uidnext, dst_seen_uidnext;
	struct mailbox_migrate_destination_mailbox rec;
	bool have_rec;
};

/* Flags of a message both sides have: the side that changed them since
   the last pass wins; when both did, the destination (its change is the
   later one: clients move there at the switch). */
static void
pass_plan_flags(struct pass_box_plan *plan, const struct pass_box_state *st,
		const struct pass_mail *s, const struct pass_mail *d)
{
	struct pass_flag_update *upd;
	bool dst_changed;

	if (s->flags == d->flags && pass_keywords_equal(s->keywords,
							d->keywords))
		return;
	dst_changed = st->have_rec && d->modseq > st->rec.dst_modseq;
	if (dst_changed)
		return;
	upd = array_append_space(&plan->flag_updates);
	upd->dst_uid = d->uid;
	upd->flags = s->flags;
	upd->keywords = s->keywords;
}

/* A source message the destination doesn't have: decide its UID by the
   UID rule. clash is the destination's different message at its UID. */
static void
pass_plan_copy(struct pass_box_plan *plan, const struct pass_box_state *st,
	       const char *vname, const struct pass_mail *s,
	       struct pass_mail *clash)
{
	struct mailbox_migrate_uid_rule_input in;

	i_zero(&in);
	in.uid = s->uid;
	in.dst_has_other = clash != NULL;
	in.dst_uidnext = st->dst_status.uidnext;
	in.src_seen_uidnext = st->src_seen_uidnext;
	in.dst_seen_uidnext = st->dst_seen_uidnext;
	switch (mailbox_migrate_uid_rule(&in)) {
	case MAILBOX_MIGRATE_UID_KEEP:
		array_push_back(&plan->copy_keep, &s->uid);
		return;
	case MAILBOX_MIGRATE_UID_TOP_BOTH:
		array_push_back(&plan->renumber, &clash->uid);
		clash->paired = TRUE;
		i_info("%s: UID %u held %s on the destination and %s on the "
		       "source: both get new UIDs", vname, s->uid,
		       clash->guid, s->guid);
		break;
	case MAILBOX_MIGRATE_UID_TOP:
		if (clash != NULL) {
			i_info("%s: UID %u held %s on the destination (shown "
			       "to a client) and %s on the source: the "
			       "source's message gets a new UID", vname,
			       s->uid, clash->guid, s->guid);
		} else {
			i_info("%s: UID %u (%s) lies below the destination's "
			       "%s %u: it gets a new UID", vname, s->uid,
			       s->guid, s->uid < st->dst_seen_uidnext ?
			       "seen UIDNEXT" : "UIDNEXT",
			       s->uid < st->dst_seen_uidnext ?
			       st->dst_seen_uidnext : st->dst_status.uidnext);
		}
		break;
	}
	array_push_back(&plan->copy_top, &s->uid);
}

static bool
pass_guid_in(const ARRAY_TYPE(pass_mail) *mails, const char *guid)
{
	const struct pass_mail *m;

	array_foreach(mails, m) {
		if (strcmp(m->guid, guid) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Decide what to do with one mailbox. changes == NULL: full comparison,
   src_mails and dst_mails hold every mail. */
static void
pass_plan_box(struct mailbox *dbox,
	      pool_t pool, const struct pass_box_state *st,
	      const struct pass_box_changes *changes,
	      ARRAY_TYPE(pass_mail) *src_mails,
	      ARRAY_TYPE(pass_mail) *dst_mails, struct pass_box_plan *plan)
{
	const char *vname = mailbox_get_vname(dbox);
	struct pass_mail *s, *d;
	bool full = changes == NULL;
	HASH_TABLE_TYPE(pass_guids) dst_guids;
	uint32_t floor;
	unsigned int i, count;

	i_zero(&dst_guids);
	if (full) {
		hash_table_create(&dst_guids, pool, 0, str_hash, strcmp);
		count = array_count(dst_mails);
		for (i = count; i > 0; i--) {
			d = array_idx_modifiable(dst_mails, i - 1);
			hash_table_update(dst_guids, d->guid,
					  POINTER_CAST(i - 1));
		}
	}

	/* pair by UID and GUID first, then by GUID alone */
	array_foreach_modifiable(src_mails, s) {
		d = pass_mails_find_uid(dst_mails, s->uid);
		if (d != NULL && !d->paired && strcmp(d->guid, s->guid) == 0) {
			s->paired = d->paired = TRUE;
			pass_plan_flags(plan, st, s, d);
		}
	}
	array_foreach_modifiable(src_mails, s) {
		if (s->paired)
			continue;
		if (!full && !seq_range_exists(&changes->saved, s->uid)) {
			/* only its flags changed, and the destination doesn't
			   have it any more: it was deleted there */
			d = NULL;
		} else if (s->uid >= st->dst_status.uidnext) {
			/* the destination has never given this UID nor any
			   above it, so it can't hold this message anywhere
			   (a message moved to the top lies above UIDs the
			   source had then) */
			d = NULL;
		} else {
			d = pass_dst_find_guid(dbox, pool, full, dst_mails,
					       dst_guids, s->guid);
		}
		if (d != NULL) {
			s->paired = d->paired = TRUE;
			pass_plan_flags(plan, st, s, d);
			continue;
		}
		if (!full && !seq_range_exists(&changes->saved, s->uid))
			continue;
		if (st->have_rec && s->uid < st->rec.src_uidnext) {
			/* an earlier pass brought it; the destination
			   deleted it since */
			continue;
		}
		d = pass_mails_find_uid(dst_mails, s->uid);
		if (d != NULL && d->paired)
			d = NULL;
		pass_plan_copy(plan, st, vname, s, d);
	}

	/* source expunges */
	floor = !st->have_rec ? 0 :
		(st->rec.raised_uidnext != 0 ?
		 I_MIN(st->rec.raised_uidnext, st->rec.src_uidnext) :
		 st->rec.src_uidnext);
	if (full) {
		/* a destination mail the source doesn't have, below what
		   earlier passes handled, was expunged on the source; above
		   it the destination got it by itself */
		HASH_TABLE_TYPE(pass_guids) src_guids;

		hash_table_create(&src_guids, pool, 0, str_hash, strcmp);
		array_foreach_modifiable(src_mails, s)
			hash_table_update(src_guids, s->guid, POINTER_CAST(1));
		array_foreach_modifiable(dst_mails, d) {
			if (!d->paired && d->uid < floor &&
			    hash_table_lookup(src_guids, d->guid) == NULL) {
				d->paired = TRUE;
				array_push_back(&plan->expunges, &d->uid);
			}
		}
		hash_table_destroy(&src_guids);
		hash_table_destroy(&dst_guids);
		return;
	}
	count = array_count(&changes->expunged);
	for (i = 0; i < count; i++) {
		uint32_t uid = *array_idx(&changes->expunged, i);
		const char *guid = array_idx_elem(&changes->expunged_guids, i);

		if (pass_mails_find_uid(src_mails, uid) != NULL)
			continue;
		d = pass_mails_find_uid(dst_mails, uid);
		if (d != NULL && !d->paired &&
		    (*guid == '\0' ? uid < floor : strcmp(d->guid, guid) == 0)) {
			d->paired = TRUE;
			array_push_back(&plan->expunges, &d->uid);
			continue;
		}
		/* it may have been moved to another UID there */
		if (*guid != '\0' && !pass_guid_in(src_mails, guid)) {
			d = pass_dst_find_guid(dbox, pool, FALSE, dst_mails,
					       dst_guids, guid);
			if (d != NULL) {
				d->paired = TRUE;
				array_push_back(&plan->expunges, &d->uid);
			}
		}
	}
}

static struct mail_keywords *
pass_keywords(struct mailbox *box, const char *const *names)
{
	if (names == NULL || names[0] == NULL)
		return NULL;
	return mailbox_keywords_create_valid(box, names);
}

/* Fill save_ctx with everything of the source message but its body. */
static int pass_save_metadata(struct mail_save_context *save_ctx,
			      struct mail *smail, struct mailbox *dbox,
			      const struct pass_mail *s)
{
	struct mail_keywords *kw;
	const char *value;
	unsigned int order;
	time_t t;

	kw = pass_keywords(dbox, s->keywords);
	mailbox_save_set_flags(save_ctx, s->flags, kw);
	if (kw != NULL)
		mailbox_keywords_unref(&kw);
	if (mail_get_received_date(smail, &t) < 0)
		return -1;
	mailbox_save_set_received_date(save_ctx, t, 0);
	if (mail_get_save_date(smail, &t) < 0)
		return -1;
	if (t > 0)
		mailbox_save_set_save_date(save_ctx, t);
	if (*s->guid != '\0')
		mailbox_save_set_guid(save_ctx, s->guid);
	if (mail_get_special(smail, MAIL_FETCH_UIDL_BACKEND, &value) == 0 &&
	    *value != '\0')
		mailbox_save_set_pop3_uidl(save_ctx, value);
	if (mail_get_special(smail, MAIL_FETCH_POP3_ORDER, &value) == 0 &&
	    *value != '\0' && str_to_uint(value, &order) == 0)
		mailbox_save_set_pop3_order(save_ctx, order);
	return 0;
}

static int pass_copy(struct mailbox_transaction_context *dt, struct mail *smail,
		     const struct pass_mail *s, uint32_t uid)
{
	struct mail_save_context *save_ctx;
	struct mailbox *dbox = mailbox_transaction_get_mailbox(dt);
	struct mail *dmail;

	save_ctx = mailbox_save_alloc(dt);
	dmail = mailbox_save_get_dest_mail(save_ctx);
	if (pass_save_metadata(save_ctx, smail, dbox, s) < 0) {
		mailbox_save_cancel(&save_ctx);
		return -1;
	}
	if (uid != 0)
		mailbox_save_set_uid(save_ctx, uid);
	if (mailbox_copy(&save_ctx, smail) < 0)
		return -1;
	/* later passes check the destination's UIDs by GUID */
	mailbox_migrate_guid_cache_saving(dmail, s->guid);
	return 0;
}

/* A source read transaction and a destination write transaction, with a
   mail object on each. */
struct pass_txn {
	struct mailbox_transaction_context *st, *dt;
	struct mail *smail, *dmail;
};

static void pass_txn_begin(struct pass_txn *txn, struct mailbox *sbox,
			   struct mailbox *dbox)
{
	txn->st = mailbox_transaction_begin(sbox, 0, __func__);
	/* EXTERNAL and ASSIGN_UIDS as dsync's importer: UIDs as asked */
	txn->dt = mailbox_transaction_begin(dbox,
				MAILBOX_TRANSACTION_FLAG_EXTERNAL |
				MAILBOX_TRANSACTION_FLAG_ASSIGN_UIDS |
				MAILBOX_TRANSACTION_FLAG_NO_NOTIFY, __func__);
	/* every source mail set is copied: wanting its stream lets maildir
	   take the dates from the open file (fstat) rather than stat()ing
	   its path first */
	txn->smail = mail_alloc(txn->st, MAIL_FETCH_STREAM_HEADER |
				MAIL_FETCH_STREAM_BODY, NULL);
	txn->dmail = mail_alloc(txn->dt, 0, NULL);
}

/* Ends the source side; the destination transaction is left to commit
   (ok) or rolled back (!ok). */
static void pass_txn_end_source(struct pass_txn *txn, bool ok)
{
	mail_free(&txn->smail);
	mail_free(&txn->dmail);
	(void)mailbox_transaction_commit(&txn->st);
	if (!ok)
		mailbox_transaction_rollback(&txn->dt);
}

/* Copy the source mails of uids into the destination transaction, with
   their own UID (keep_uid) or at the top. Returns the number copied
   (mail expunged meanwhile is skipped), -1 on error. */
static int pass_copy_uids(struct mailbox_migrate_pass *pass,
			  struct pass_txn *txn,
			  ARRAY_TYPE(pass_mail) *src_mails,
			  const ARRAY_TYPE(uint32_t) *uids, bool keep_uid)
{
	const uint32_t *uidp;
	int copied = 0;

	array_foreach(uids, uidp) {
		if (!mail_set_uid(txn->smail, *uidp))
			continue;
		if (pass_copy(txn->dt, txn->smail,
			      pass_mails_find_uid(src_mails, *uidp),
			      keep_uid ? *uidp : 0) < 0) {
			if (txn->smail->expunged)
				continue;
			pass_box_failed(pass,
				mailbox_transaction_get_mailbox(txn->dt),
				"Copying into");
			return -1;
		}
		copied++;
		pass->copying++;
		pass_tick(pass);
	}
	return copied;
}

/* Flag updates and expunges of a plan, in a destination transaction of
   their own that is not EXTERNAL (as dsync's importer keeps two): an
   external change counts as already made in the backend, so maildir would
   neither rename nor unlink the files, and its next scan of the
   directory would take the old flags, and the mail, back. */
static int
pass_apply_changes(struct mailbox_migrate_pass *pass, struct mailbox *dbox,
		   struct pass_box_plan *plan,
		   struct mailbox_migrate_pass_counts *counts)
{
	const struct pass_flag_update *upd;
	struct mailbox_transaction_context *t;
	struct mail_keywords *kw;
	struct mail *mail;
	const uint32_t *uidp;
	unsigned int flag_changes = 0, expunged = 0;

	if (array_count(&plan->flag_updates) == 0 &&
	    array_count(&plan->expunges) == 0)
		return 0;
	t = mailbox_transaction_begin(dbox, MAILBOX_TRANSACTION_FLAG_NO_NOTIFY,
				      __func__);
	mail = mail_alloc(t, 0, NULL);
	array_foreach(&plan->flag_updates, upd) {
		if (!mail_set_uid(mail, upd->dst_uid))
			continue;
		mail_update_flags(mail, MODIFY_REPLACE, upd->flags);
		kw = mailbox_keywords_create_valid(dbox, upd->keywords);
		mail_update_keywords(mail, MODIFY_REPLACE, kw);
		mailbox_keywords_unref(&kw);
		flag_changes++;
	}
	array_foreach(&plan->expunges, uidp) {
		if (!mail_set_uid(mail, *uidp))
			continue;
		mail_expunge(mail);
		expunged++;
	}
	mail_free(&mail);
	if (mailbox_transaction_commit(&t) < 0) {
		pass_box_failed(pass, dbox, "Committing to");
		return -1;
	}
	counts->flag_changes += flag_changes;
	counts->expunged += expunged;
	return 0;
}

/* Apply the first half of a plan: flag updates and expunges, then the
   copies that keep their UID. */
static int
pass_apply_keep(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
		struct mailbox *dbox, ARRAY_TYPE(pass_mail) *src_mails,
		struct pass_box_plan *plan,
		struct mailbox_migrate_pass_counts *counts)
{
	struct mail_transaction_commit_changes changes;
	struct seq_range_iter iter;
	struct pass_txn txn;
	const uint32_t *uidp;
	unsigned int n = 0;
	uint32_t got;
	int copied;

	if (pass_apply_changes(pass, dbox, plan, counts) < 0)
		return -1;
	if (array_count(&plan->copy_keep) == 0)
		return 0;
	pass_txn_begin(&txn, sbox, dbox);
	copied = pass_copy_uids(pass, &txn, src_mails, &plan->copy_keep, TRUE);
	pass_txn_end_source(&txn, copied >= 0);
	if (copied < 0)
		return -1;
	if (mailbox_transaction_commit_get_changes(&txn.dt, &changes) < 0) {
		pass_box_failed(pass, dbox, "Committing to");
		return -1;
	}
	counts->copied += copied;
	/* a UID the destination gave to its own new mail meanwhile is
	   assigned anew at the top by Dovecot: count it */
	seq_range_array_iter_init(&iter, &changes.saved_uids);
	array_foreach(&plan->copy_keep, uidp) {
		if (!seq_range_array_iter_nth(&iter, n++, &got))
			break;
		if (got != *uidp) {
			i_info("%s: UID %u was taken on the destination "
			       "meanwhile: the message got UID %u",
			       mailbox_get_vname(dbox), *uidp, got);
			counts->reassigned++;
		}
	}
	pool_unref(&changes.pool);
	return 0;
}

/* Apply the second half: raise the destination's UIDNEXT to top, then
   move its clashing messages and copy the reassigned source messages
   there. */
static int
pass_apply_top(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
	       struct mailbox *dbox, ARRAY_TYPE(pass_mail) *src_mails,
	       struct pass_box_plan *plan, uint32_t top,
	       struct mailbox_migrate_pass_counts *counts)
{
	struct mail_save_context *save_ctx;
	struct mailbox_transaction_context *t;
	struct mailbox_update update;
	struct mail *mail;
	struct pass_txn txn;
	const uint32_t *uidp;
	unsigned int renumbered = 0;
	int copied = 0;

	if (array_count(&plan->copy_top) == 0 &&
	    array_count(&plan->renumber) == 0)
		return 0;

	i_zero(&update);
	update.min_next_uid = top;
	if (mailbox_update(dbox, &update) < 0) {
		pass_box_failed(pass, dbox, "Raising UIDNEXT of");
		return -1;
	}
	if (array_count(&plan->renumber) > 0) {
		/* a move, in two transactions: saves must be EXTERNAL, the
		   expunge of the destination's own mail must not be (see
		   pass_apply_changes()). A crash between the two leaves a
		   duplicate, never a loss. */
		t = mailbox_transaction_begin(dbox,
				MAILBOX_TRANSACTION_FLAG_EXTERNAL |
				MAILBOX_TRANSACTION_FLAG_NO_NOTIFY, __func__);
		mail = mail_alloc(t, 0, NULL);
		array_foreach(&plan->renumber, uidp) {
			if (!mail_set_uid(mail, *uidp))
				continue;
			save_ctx = mailbox_save_alloc(t);
			mailbox_save_copy_flags(save_ctx, mail);
			if (mailbox_copy(&save_ctx, mail) < 0) {
				copied = -1;
				break;
			}
			renumbered++;
		}
		mail_free(&mail);
		if (copied < 0 || mailbox_transaction_commit(&t) < 0) {
			if (t != NULL)
				mailbox_transaction_rollback(&t);
			pass_box_failed(pass, dbox, "Renumbering in");
			return -1;
		}
		t = mailbox_transaction_begin(dbox,
				MAILBOX_TRANSACTION_FLAG_NO_NOTIFY, __func__);
		mail = mail_alloc(t, 0, NULL);
		array_foreach(&plan->renumber, uidp) {
			if (mail_set_uid(mail, *uidp))
				mail_expunge(mail);
		}
		mail_free(&mail);
		if (mailbox_transaction_commit(&t) < 0) {
			pass_box_failed(pass, dbox, "Renumbering in");
			return -1;
		}
		counts->reassigned += renumbered;
	}
	if (array_count(&plan->copy_top) == 0)
		return 0;
	pass_txn_begin(&txn, sbox, dbox);
	copied = pass_copy_uids(pass, &txn, src_mails, &plan->copy_top, FALSE);
	pass_txn_end_source(&txn, copied >= 0);
	if (copied < 0)
		return -1;
	if (mailbox_transaction_commit(&txn.dt) < 0) {
		pass_box_failed(pass, dbox, "Committing to");
		return -1;
	}
	counts->copied += copied;
	counts->reassigned += copied;
	return 0;
}

static void pass_plan_init(struct pass_box_plan *plan)
{
	t_array_init(&plan->flag_updates, 16);
	t_array_init(&plan->expunges, 16);
	t_array_init(&plan->copy_keep, 64);
	t_array_init(&plan->copy_top, 4);
	t_array_init(&plan->renumber, 4);
}

int pass_box_status(struct mailbox *box, struct mailbox_status *status_r,
			   uint64_t *highest_modseq_r)
{
	if (mailbox_get_status(box, STATUS_UIDVALIDITY | STATUS_UIDNEXT |
			       STATUS_HIGHESTMODSEQ | STATUS_MESSAGES,
			       status_r) < 0)
		return -1;
	*highest_modseq_r = status_r->highest_modseq;
	return 0;
}

/* Bring one mailbox's messages over. sbox and dbox exist and have the same
   GUID. changes == NULL compares in full. */
static int
pass_sync_box(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
	      struct mailbox *dbox, const char *guid,
	      const struct pass_box_changes *changes,
	      struct mailbox_migrate_pass_counts *counts)
{
	struct pass_box_state st;
	struct mailbox_migrate_index_ext_header lost;
	struct mailbox_migrate_db *dst_db = NULL;
	struct pass_box_plan plan;
	struct mailbox_migrate_seen_record seen;
	ARRAY_TYPE(pass_mail) src_mails, dst_mails;
	ARRAY_TYPE(seq_range) uids;
	struct mailbox_update update;
	const char *error;
	uint32_t top;
	pool_t pool;
	int ret;

	i_zero(&st);
	st.guid = guid;
	/* per-message modseqs on the source let the next pass prove from
	   the index alone that the journal has every change. A journal pass
	   synced it already to prove the journal: on maildir a sync soon
	   after a change reads the whole directory again. */
	if (mailbox_enable(sbox, MAILBOX_FEATURE_CONDSTORE) < 0 ||
	    (!sbox->synced && mailbox_sync(sbox, 0) < 0)) {
		pass_box_failed(pass, sbox, "Syncing source mailbox");
		return -1;
	}
	if (mailbox_enable(dbox, MAILBOX_FEATURE_CONDSTORE) < 0 ||
	    mailbox_sync(dbox, 0) < 0) {
		pass_box_failed(pass, dbox, "Syncing destination mailbox");
		return -1;
	}
	if (pass_box_status(sbox, &st.src_status, &st.src_highest_modseq) < 0) {
		pass_box_failed(pass, sbox, "Reading source mailbox");
		return -1;
	}
	mailbox_migrate_index_ext_get(sbox, &lost);
	if (pass_box_status(dbox, &st.dst_status, &st.dst_highest_modseq) < 0) {
		pass_box_failed(pass, dbox, "Reading destination mailbox");
		return -1;
	}
	ret = mailbox_migrate_destination_mailbox_get(pass->db,
			pass->set->dest_name, guid, &st.rec, &error);
	if (ret < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		return -1;
	}
	st.have_rec = ret > 0 &&
		st.rec.uidvalidity == st.src_status.uidvalidity;
	if (!st.have_rec && changes != NULL) {
		/* nothing known of what an earlier pass left here */
		changes = NULL;
	}
	if (mailbox_migrate_seen_get(pass->db, guid, st.src_status.uidvalidity,
				     &seen, &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		return -1;
	}
	st.src_seen_uidnext = seen.seen_uidnext;
	if (pass->set->get_dst_db != NULL &&
	    pass->set->get_dst_db(pass->set->context, &dst_db) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, "Can't read the "
			    "destination's seen UIDNEXT");
		return -1;
	}
	if (dst_db != NULL) {
		if (mailbox_migrate_seen_get(dst_db, guid,
					     st.dst_status.uidvalidity,
					     &seen, &error) < 0) {
			pass_failed(pass, MAIL_ERROR_TEMP, t_strdup_printf(
				"Destination state file: %s", error));
			return -1;
		}
		st.dst_seen_uidnext = seen.seen_uidnext;
	}

	pool = pool_alloconly_create("mailbox-migrate pass mails", 16384);
	p_array_init(&src_mails, pool, 64);
	p_array_init(&dst_mails, pool, 64);
	if (changes == NULL) {
		ret = pass_mails_load(sbox, pool, NULL, &src_mails);
		if (ret == 0)
			ret = pass_mails_load(dbox, pool, NULL, &dst_mails);
	} else {
		t_array_init(&uids, 16);
		seq_range_array_merge(&uids, &changes->saved);
		seq_range_array_merge(&uids, &changes->flagged);
		ret = pass_mails_load(sbox, pool, &uids, &src_mails);
		if (ret == 0) {
			const uint32_t *uidp;

			array_foreach(&changes->expunged, uidp)
				seq_range_array_add(&uids, *uidp);
			ret = pass_mails_load(dbox, pool, &uids, &dst_mails);
		}
	}
	if (ret < 0) {
		pass_box_failed(pass, sbox, "Reading the index of");
		pool_unref(&pool);
		return -1;
	}

	pass_plan_init(&plan);
	pass_plan_box(dbox, pool, &st, changes, &src_mails, &dst_mails,
		      &plan);
	if (pass->set->dry_run) {
		counts->flag_changes += array_count(&plan.flag_updates);
		counts->expunged += array_count(&plan.expunges);
		counts->copied += array_count(&plan.copy_keep) +
			array_count(&plan.copy_top);
		counts->reassigned += array_count(&plan.copy_top) +
			array_count(&plan.renumber);
		pool_unref(&pool);
		return 0;
	}

	ret = pass_apply_keep(pass, sbox, dbox, &src_mails, &plan, counts);
	if (ret == 0 && (array_count(&plan.copy_top) > 0 ||
			 array_count(&plan.renumber) > 0)) {
		if (mailbox_sync(dbox, 0) < 0 ||
		    pass_box_status(dbox, &st.dst_status,
				    &st.dst_highest_modseq) < 0) {
			pass_box_failed(pass, dbox, "Syncing");
			ret = -1;
		} else {
			top = mailbox_migrate_uid_rule_top(
				st.src_status.uidnext, st.dst_status.uidnext,
				st.src_seen_uidnext, st.dst_seen_uidnext);
			ret = pass_apply_top(pass, sbox, dbox, &src_mails,
					     &plan, top, counts);
		}
	}
	pool_unref(&pool);
	if (ret < 0)
		return -1;

	/* the destination's UIDNEXT and HIGHESTMODSEQ never below the
	   source's */
	i_zero(&update);
	update.min_next_uid = st.src_status.uidnext;
	update.min_highest_modseq = st.src_highest_modseq;
	/* nothing a pass brings is \Recent to the destination's clients */
	update.min_next_uid = I_MAX(update.min_next_uid,
				    st.dst_status.uidnext);
	update.min_first_recent_uid = update.min_next_uid;
	if (mailbox_update(dbox, &update) < 0 ||
	    mailbox_sync(dbox, 0) < 0 ||
	    pass_box_status(dbox, &st.dst_status, &st.dst_highest_modseq) < 0) {
		pass_box_failed(pass, dbox, "Updating");
		return -1;
	}

	/* what this pass left, for the next one */
	if (changes == NULL || pass->set->source_quiet)
		st.rec.src_uidnext = st.src_status.uidnext;
	else if (!st.have_rec)
		st.rec.src_uidnext = 0;
	st.rec.uidvalidity = st.src_status.uidvalidity;
	st.rec.src_modseq = st.src_highest_modseq;
	st.rec.dst_modseq = st.dst_highest_modseq;
	st.rec.lost_count = lost.lost_count;
	/* written with the checkpoint, after the destination is synced: a
	   record must never say the destination has what a power loss took */
	pass_record_box(pass, guid, &st.rec);
	return 0;
}

/* Open (creating or renaming if needed) the destination mailbox with the
   source mailbox's GUID and name. Returns 1 if it was created now, 0 if it
   existed, -1 on error. */
static int
pass_dest_box(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
	      const char *guid, struct mailbox **dbox_r)
{
	const char *vname = mailbox_get_vname(sbox);
	struct mailbox *dbox, *gbox;
	struct mailbox_update update;
	struct mailbox_status sstatus, dstatus;
	const char *dguid, *old_vname, *what;
	enum mail_error error;
	struct mail_namespace *dns;

	*dbox_r = NULL;
	if (mailbox_get_status(sbox, STATUS_UIDVALIDITY, &sstatus) < 0) {
		pass_box_failed(pass, sbox, "Reading source mailbox");
		return -1;
	}
	/* what a mailbox made or adopted here gets */
	i_zero(&update);
	if (guid_128_from_string(guid, update.mailbox_guid) < 0)
		i_unreached();
	update.uid_validity = sstatus.uidvalidity;

	dbox = pass_box_alloc(pass->dst_user, vname, 0);
	dguid = pass_box_guid(dbox);
	if (dguid != NULL && strcmp(dguid, guid) == 0) {
		*dbox_r = dbox;
		return 0;
	}
	if (dguid == NULL) {
		(void)mailbox_get_last_internal_error(dbox, &error);
		if (error != MAIL_ERROR_NOTFOUND) {
			what = "Opening destination mailbox";
			goto failed;
		}
		/* the name is free: renamed on the source since the last
		   pass? (a GUID lookup lists the destination's mailboxes) */
		dns = mail_namespace_find(pass->dst_user->namespaces, vname);
		gbox = mailbox_alloc_guid(dns->list, update.mailbox_guid, 0);
		if (mailbox_open(gbox) == 0) {
			old_vname = t_strdup(mailbox_get_vname(gbox));
			if (!pass->set->dry_run) {
				/* a fresh object: the failed open left state */
				mailbox_free(&dbox);
				dbox = pass_box_alloc(pass->dst_user, vname, 0);
			}
			if (!pass->set->dry_run &&
			    mailbox_rename(gbox, dbox) < 0) {
				pass_box_failed(pass, gbox, t_strdup_printf(
					"Renaming to %s destination mailbox",
					str_sanitize_utf8(vname, 200)));
				mailbox_free(&gbox);
				mailbox_free(&dbox);
				return -1;
			}
			i_info("%s: renamed from %s on the destination%s",
			       vname, old_vname,
			       pass->set->dry_run ? " (dry run)" : "");
			mailbox_free(&gbox);
			*dbox_r = dbox;
			return 0;
		}
		mailbox_free(&gbox);
	} else {
		/* a mailbox of that name, with another GUID: adopt it only
		   if it's empty (e.g. INBOX made by an early login) */
		if (mailbox_get_status(dbox, STATUS_MESSAGES | STATUS_UIDNEXT,
				       &dstatus) < 0) {
			what = "Reading destination mailbox";
			goto failed;
		}
		if (dstatus.messages > 0 || dstatus.uidnext > 1) {
			pass_failed(pass, MAIL_ERROR_EXISTS, t_strdup_printf(
				"Destination mailbox %s exists with another "
				"GUID (%s, source %s): not merging two "
				"different mailboxes; rename or remove it",
				vname, dguid, guid));
			mailbox_free(&dbox);
			return -1;
		}
	}
	if (pass->set->dry_run) {
		*dbox_r = dbox;
		return 1;
	}

	if (dguid == NULL && mailbox_create(dbox, &update, FALSE) < 0) {
		(void)mailbox_get_last_internal_error(dbox, &error);
		if (error != MAIL_ERROR_EXISTS) {
			what = "Creating destination mailbox";
			goto failed;
		}
		/* a \Noselect parent directory: made a mailbox below */
		dguid = "";
	}
	/* adopting an empty mailbox or a directory, or a backend that
	   ignored the GUID at create: set GUID and UIDVALIDITY */
	if (dguid != NULL || (dguid = pass_box_guid(dbox)) == NULL ||
	    strcmp(dguid, guid) != 0) {
		if (mailbox_update(dbox, &update) < 0) {
			what = "Updating destination mailbox";
			goto failed;
		}
	}
	*dbox_r = dbox;
	return 1;

failed:
	pass_box_failed(pass, dbox, what);
	mailbox_free(&dbox);
	return -1;
}

int pass_subscribed_names(struct mailbox_migrate_pass *pass,
			  struct mail_user *user,
			  HASH_TABLE_TYPE(pass_names) *names)
{
	static const char *const patterns[] = { "*", NULL };
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;

	iter = mailbox_list_iter_init_namespaces(user->namespaces, patterns,
			MAIL_NAMESPACE_TYPE_PRIVATE,
			MAILBOX_LIST_ITER_SELECT_SUBSCRIBED |
			MAILBOX_LIST_ITER_RETURN_NO_FLAGS);
	while ((info = mailbox_list_iter_next(iter)) != NULL)
		hash_table_update(*names, t_strdup(info->vname), POINTER_CAST(1));
	if (mailbox_list_iter_deinit(&iter) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, "Listing subscriptions "
			    "failed");
		return -1;
	}
	return 0;
}

static void pass_set_subscribed(struct mailbox_migrate_pass *pass,
				const char *vname, bool set)
{
	struct mailbox *box;

	if (pass->set->dry_run)
		return;
	pass->subscriptions_written = TRUE;
	box = pass_box_alloc(pass->dst_user, vname, 0);
	if (mailbox_set_subscribed(box, set) < 0)
		pass_box_failed(pass, box, set ? "Subscribing" :
				"Unsubscribing");
	mailbox_free(&box);
}

void pass_subscriptions_sync(struct mailbox_migrate_pass *pass,
			     const ARRAY_TYPE(const_string) *changed_names,
			     HASH_TABLE_TYPE(pass_names) dst,
			     HASH_TABLE_TYPE(pass_names) may_drop,
			     pass_subscribed_set_t *set)
{
	HASH_TABLE_TYPE(pass_names) src;
	struct hash_iterate_context *iter;
	const char *const *namep, *name;
	void *value;
	bool want;

	hash_table_create(&src, pool_datastack_create(), 0, str_hash, strcmp);
	if (pass_subscribed_names(pass, pass->src_user, &src) < 0) {
		hash_table_destroy(&src);
		return;
	}
	if (changed_names != NULL) {
		array_foreach(changed_names, namep) {
			if (!pass_box_selected(pass, *namep))
				continue;
			want = hash_table_lookup(src, *namep) != NULL;
			if (want == (hash_table_lookup(dst, *namep) != NULL))
				continue;
			set(pass, *namep, want);
			/* a name the journal names twice */
			if (want)
				hash_table_update(dst, *namep, POINTER_CAST(1));
			else
				hash_table_remove(dst, *namep);
		}
	} else {
		iter = hash_table_iterate_init(src);
		while (hash_table_iterate(iter, src, &name, &value)) {
			if (pass_box_selected(pass, name) &&
			    hash_table_lookup(dst, name) == NULL)
				set(pass, name, TRUE);
		}
		hash_table_iterate_deinit(&iter);
		iter = hash_table_iterate_init(dst);
		while (hash_table_iterate(iter, dst, &name, &value)) {
			if (pass_box_selected(pass, name) &&
			    hash_table_lookup(src, name) == NULL &&
			    (!hash_table_is_created(may_drop) ||
			     hash_table_lookup(may_drop, name) != NULL))
				set(pass, name, FALSE);
		}
		hash_table_iterate_deinit(&iter);
	}
	hash_table_destroy(&src);
}

/* Subscriptions made on the destination to names that are no source
   mailbox are kept: a full comparison drops only subscriptions of source
   mailboxes (src_boxes) that the source has not subscribed. */
static void pass_subscriptions(struct mailbox_migrate_pass *pass,
			       const ARRAY_TYPE(const_string) *changed_names,
			       HASH_TABLE_TYPE(pass_names) src_boxes)
{
	HASH_TABLE_TYPE(pass_names) dst;

	i_assert(changed_names != NULL || hash_table_is_created(src_boxes));

	hash_table_create(&dst, pool_datastack_create(), 0, str_hash, strcmp);
	if (pass_subscribed_names(pass, pass->dst_user, &dst) == 0) {
		pass_subscriptions_sync(pass, changed_names, dst, src_boxes,
					pass_set_subscribed);
	}
	hash_table_destroy(&dst);
}

/* One source mailbox: make sure the destination has it, then bring its
   messages over (changes NULL: in full). */
static void
pass_box(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
	 const char *guid, const struct pass_box_changes *changes)
{
	struct mailbox_migrate_pass_counts counts;
	struct mailbox *dbox;
	struct timeval start;
	int ret;

	i_zero(&counts);
	i_gettimeofday(&start);
	if (pass->set->dry_run && pass->set->dest_missing) {
		dbox = NULL;
		ret = 1;
	} else {
		ret = pass_dest_box(pass, sbox, guid, &dbox);
	}
	if (ret < 0) {
		pass->result->mailboxes_failed++;
		return;
	}
	if (ret > 0 || (changes != NULL && changes->compare_full))
		changes = NULL;
	if (pass->set->dry_run && ret > 0) {
		/* a mailbox that doesn't exist yet: everything is copied */
		struct mailbox_status status;

		if (mailbox_get_status(sbox, STATUS_MESSAGES, &status) == 0)
			counts.copied = status.messages;
	} else if (pass_sync_box(pass, sbox, dbox, guid, changes,
				 &counts) < 0) {
		pass->result->mailboxes_failed++;
		mailbox_free(&dbox);
		return;
	}
	if (dbox != NULL)
		mailbox_free(&dbox);
	pass_box_done(pass, mailbox_get_vname(sbox), &counts, &start,
		      ret > 0 || changes != NULL);
}

void pass_box_done(struct mailbox_migrate_pass *pass, const char *vname,
		   const struct mailbox_migrate_pass_counts *counts,
		   const struct timeval *start, bool touched)
{
	struct timeval end;

	i_gettimeofday(&end);
	pass->copying = 0;
	pass->result->total.copied += counts->copied;
	pass->result->total.expunged += counts->expunged;
	pass->result->total.flag_changes += counts->flag_changes;
	pass->result->total.reassigned += counts->reassigned;
	if (touched || counts->copied > 0 || counts->expunged > 0 ||
	    counts->flag_changes > 0 || counts->reassigned > 0) {
		pass->result->mailboxes_touched++;
		if (pass->set->mailbox_done == NULL)
			return;
		if (pass->v->all_or_nothing && !pass->set->dry_run) {
			struct pass_held_row *row;

			if (!array_is_created(&pass->held_rows))
				p_array_init(&pass->held_rows, pass->pool, 8);
			row = array_append_space(&pass->held_rows);
			row->vname = p_strdup(pass->pool, vname);
			row->counts = *counts;
			row->secs = timeval_diff_usecs(&end, start) / 1e6;
		} else {
			pass->set->mailbox_done(pass->set->context, vname,
				counts, timeval_diff_usecs(&end, start) / 1e6);
		}
	}
}

/* After v->sync of an all_or_nothing destination: the held rows, or
   none and no counts if the destination kept nothing. */
static void pass_release_rows(struct mailbox_migrate_pass *pass)
{
	const struct pass_held_row *row;

	if (!pass->v->all_or_nothing)
		return;
	if (pass->error != NULL && pass->error_fatal) {
		i_zero(&pass->result->total);
		pass->result->mailboxes_touched = 0;
		return;
	}
	if (!array_is_created(&pass->held_rows))
		return;
	array_foreach(&pass->held_rows, row) {
		pass->set->mailbox_done(pass->set->context, row->vname,
					&row->counts, row->secs);
	}
}

void pass_record_box(struct mailbox_migrate_pass *pass, const char *guid,
		     const struct mailbox_migrate_destination_mailbox *rec)
{
	struct pass_pending_rec *pending;

	pending = array_append_space(&pass->pending_recs);
	pending->guid = p_strdup(pass->pool, guid);
	pending->rec = *rec;
}

/* Delete on the destination a mailbox that was deleted on the source: only
   one an earlier pass brought (by GUID), never one made there. */
static void pass_delete_box(struct mailbox_migrate_pass *pass,
			    const char *guid)
{
	struct mailbox_migrate_destination_mailbox rec;
	struct mailbox *dbox;
	guid_128_t guid_128;
	const char *error, *vname;
	int ret;

	ret = mailbox_migrate_destination_mailbox_get(pass->db,
			pass->set->dest_name, guid, &rec, &error);
	if (ret <= 0) {
		if (ret < 0)
			pass_failed(pass, MAIL_ERROR_TEMP, error);
		return;
	}
	if (guid_128_from_string(guid, guid_128) < 0)
		return;
	dbox = mailbox_alloc_guid(pass->dst_user->namespaces->list,
				  guid_128, 0);
	if (mailbox_open(dbox) < 0) {
		mailbox_free(&dbox);
		return;
	}
	vname = t_strdup(mailbox_get_vname(dbox));
	if (pass->set->dry_run) {
		i_info("%s: would be deleted on the destination", vname);
		mailbox_free(&dbox);
		return;
	}
	if (mailbox_delete(dbox) < 0) {
		pass_box_failed(pass, dbox, "Deleting destination mailbox");
		pass->result->mailboxes_failed++;
	} else {
		i_info("%s: deleted on the destination (deleted on the "
		       "source)", vname);
		pass->result->mailboxes_touched++;
		if (mailbox_migrate_destination_mailbox_delete(pass->db,
				pass->set->dest_name, guid, &error) < 0)
			pass_failed(pass, MAIL_ERROR_TEMP, error);
	}
	mailbox_free(&dbox);
}

struct pass_src_box {
	const char *vname;
	const char *guid;
};
ARRAY_DEFINE_TYPE(pass_src_box, struct pass_src_box);

/* Calls callback for every selectable source mailbox, opened read-only,
   with its GUID. Returns 0, or -1 if a mailbox couldn't be opened or the
   listing failed (logged in the pass; the others are still called). */
typedef void pass_source_callback_t(struct mailbox_migrate_pass *pass,
				    struct mailbox *box, const char *guid,
				    void *context);
static int pass_foreach_source(struct mailbox_migrate_pass *pass,
			       pass_source_callback_t *callback,
			       void *context)
{
	static const char *const patterns[] = { "*", NULL };
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	struct mailbox *box;
	enum mail_error error;
	int ret = 0;

	iter = mailbox_list_iter_init_namespaces(pass->src_user->namespaces,
			patterns, MAIL_NAMESPACE_TYPE_PRIVATE,
			MAILBOX_LIST_ITER_NO_AUTO_BOXES |
			MAILBOX_LIST_ITER_RETURN_NO_FLAGS |
			MAILBOX_LIST_ITER_SKIP_ALIASES);
	while ((info = mailbox_list_iter_next(iter)) != NULL) {
		if ((info->flags & (MAILBOX_NOSELECT |
				    MAILBOX_NONEXISTENT)) != 0)
			continue;
		box = mailbox_alloc(info->ns->list, info->vname,
				    MAILBOX_FLAG_READONLY);
		T_BEGIN {
			const char *guid = pass_src_box_guid(box);

			if (guid != NULL)
				callback(pass, box, guid, context);
			else {
				(void)mailbox_get_last_internal_error(box,
								      &error);
				/* NOTFOUND: deleted while listing */
				if (error != MAIL_ERROR_NOTFOUND) {
					pass_box_failed(pass, box, "Opening "
							"source mailbox");
					pass->result->mailboxes_failed++;
					ret = -1;
				}
			}
		} T_END;
		mailbox_free(&box);
	}
	if (mailbox_list_iter_deinit(&iter) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, t_strdup_printf(
			"Listing source mailboxes failed: %s",
			mailbox_list_get_last_internal_error(
				pass->src_user->namespaces->list, NULL)));
		ret = -1;
	}
	return ret;
}

static void pass_list_source_box(struct mailbox_migrate_pass *pass,
				 struct mailbox *box, const char *guid,
				 void *context)
{
	ARRAY_TYPE(pass_src_box) *boxes = context;
	struct pass_src_box *sb;

	sb = array_append_space(boxes);
	sb->vname = p_strdup(pass->pool, mailbox_get_vname(box));
	sb->guid = p_strdup(pass->pool, guid);
}

/* Every selectable source mailbox with its GUID. */
static int pass_list_source(struct mailbox_migrate_pass *pass,
			    ARRAY_TYPE(pass_src_box) *boxes)
{
	return pass_foreach_source(pass, pass_list_source_box, boxes);
}

static int pass_src_box_cmp(const struct pass_src_box *a,
			    const struct pass_src_box *b)
{
	return strcmp(a->vname, b->vname);
}

/* Mailboxes an earlier pass brought that the source no longer has. */
static void pass_delete_gone(struct mailbox_migrate_pass *pass,
			     HASH_TABLE_TYPE(pass_guids) src_guids)
{
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	static const char *const patterns[] = { "*", NULL };
	ARRAY_TYPE(const_string) gone;
	const char *guid, *const *guidp;
	struct mailbox *dbox;

	t_array_init(&gone, 4);
	iter = mailbox_list_iter_init_namespaces(
			pass->dst_user->namespaces, patterns,
			MAIL_NAMESPACE_TYPE_PRIVATE,
			MAILBOX_LIST_ITER_NO_AUTO_BOXES |
			MAILBOX_LIST_ITER_RETURN_NO_FLAGS);
	while ((info = mailbox_list_iter_next(iter)) != NULL) {
		if ((info->flags & (MAILBOX_NOSELECT |
				    MAILBOX_NONEXISTENT)) != 0)
			continue;
		dbox = mailbox_alloc(info->ns->list, info->vname, 0);
		guid = pass_box_guid(dbox);
		if (guid != NULL &&
		    hash_table_lookup(src_guids, guid) == NULL) {
			guid = t_strdup(guid);
			array_push_back(&gone, &guid);
		}
		mailbox_free(&dbox);
	}
	(void)mailbox_list_iter_deinit(&iter);
	array_foreach(&gone, guidp)
		pass_delete_box(pass, *guidp);
}

static void pass_full(struct mailbox_migrate_pass *pass)
{
	ARRAY_TYPE(pass_src_box) boxes;
	const struct pass_src_box *sb;
	struct mailbox *sbox;
	HASH_TABLE_TYPE(pass_guids) src_guids;
	HASH_TABLE_TYPE(pass_names) src_names;

	t_array_init(&boxes, 32);
	if (pass_list_source(pass, &boxes) < 0)
		return;
	array_sort(&boxes, pass_src_box_cmp);
	hash_table_create(&src_guids, pool_datastack_create(), 0,
			  str_hash, strcmp);
	hash_table_create(&src_names, pool_datastack_create(), 0,
			  str_hash, strcmp);
	pass->boxes_total = array_count(&boxes);
	array_foreach(&boxes, sb) {
		hash_table_update(src_guids, sb->guid, POINTER_CAST(1));
		hash_table_update(src_names, sb->vname, POINTER_CAST(1));
		pass->boxes_done++;
		if (!pass_box_selected(pass, sb->vname))
			continue;
		sbox = pass_box_alloc(pass->src_user, sb->vname,
				      MAILBOX_FLAG_READONLY);
		T_BEGIN {
			pass->v->box(pass, sbox, sb->guid, NULL);
		} T_END;
		mailbox_free(&sbox);
		/* what a failed mailbox copied was rolled back */
		pass->copying = 0;
		pass_tick(pass);
	}

	/* mailboxes an earlier pass brought that the source no longer has */
	if (pass->globs == NULL && !pass->set->dest_missing)
		pass->v->delete_gone(pass, src_guids);
	pass->v->subscriptions(pass, NULL, src_names);
	hash_table_destroy(&src_names);
	hash_table_destroy(&src_guids);
}

static struct pass_box_changes *
pass_changes_get(pool_t pool, HASH_TABLE_TYPE(pass_changes) *hash,
		 ARRAY_TYPE(pass_box_changes) *order, const char *guid)
{
	struct pass_box_changes *ch;

	ch = hash_table_lookup(*hash, guid);
	if (ch != NULL)
		return ch;
	ch = p_new(pool, struct pass_box_changes, 1);
	ch->guid = p_strdup(pool, guid);
	p_array_init(&ch->saved, pool, 8);
	p_array_init(&ch->flagged, pool, 8);
	p_array_init(&ch->expunged, pool, 8);
	p_array_init(&ch->expunged_guids, pool, 8);
	hash_table_insert(*hash, ch->guid, ch);
	array_push_back(order, &ch);
	return ch;
}

/* TRUE if the mailbox is as the last pass left it: the same UIDVALIDITY
   and HIGHESTMODSEQ (every change made through Dovecot raises it, also
   one made without the plugin). Only when Dovecot answers from its
   mailbox list index, which it updates at every commit and trusts only
   while the mailbox's index log (and maildir's cur/ and new/) are as it
   recorded them: an unchanged mailbox is neither opened nor synced. */
static bool
pass_box_unchanged(struct mailbox *box,
		   const struct mailbox_migrate_destination_mailbox *rec)
{
	struct mailbox_status status;

	if (rec->src_modseq == 0 || box->opened)
		return FALSE;
	if (mailbox_get_status(box, STATUS_UIDVALIDITY | STATUS_HIGHESTMODSEQ,
			       &status) < 0)
		return FALSE;
	/* opened: the list index couldn't answer, and the mailbox's own
	   index, unsynced, hasn't seen what a sync would find (mail put
	   into a maildir by hand) */
	if (box->opened)
		return FALSE;
	return status.uidvalidity == rec->uidvalidity &&
		status.highest_modseq == rec->src_modseq;
}

/* Fold what sessions appended to the journal log since the pass began.
   Returns TRUE if anything was folded. */
static bool pass_fold_journal_log(struct mailbox_migrate_pass *pass)
{
	enum mailbox_migrate_db_error code;
	const char *error;
	int ret;

	ret = mailbox_migrate_journal_log_fold(pass->db, 0,
			PASS_JOURNAL_LOG_LOCK_TIMEOUT_MSECS, &code, &error);
	if (ret < 0) {
		i_warning("Can't fold the journal log: %s", error);
		return FALSE;
	}
	return ret > 0;
}

/* Does the journal hold every change the source mailbox's index shows
   since the destination's record (rec)? Returns 1 if so, 0 if not
   (*reason_r says why), -1 if the mailbox couldn't be read (the pass is
   failed for it). */
static int
pass_journal_box_verify(struct mailbox_migrate_pass *pass,
			struct mailbox *sbox, const char *guid,
			const struct mailbox_migrate_destination_mailbox *rec,
			uint64_t checkpoint_seq, const char **reason_r)
{
	const char *error;

	*reason_r = NULL;
	if (mailbox_migrate_journal_verify_since(pass->db, sbox, guid,
			rec->uidvalidity, rec->src_modseq, checkpoint_seq,
			rec->lost_count, reason_r, &error) < 0) {
		pass_box_failed(pass, sbox, "Reading source mailbox");
		pass->result->mailboxes_failed++;
		return -1;
	}
	return *reason_r == NULL ? 1 : 0;
}

/* One source mailbox in a journal pass: changes (NULL if the journal has
   none for it) are taken if the index proves the journal complete for it
   since this destination's last pass; otherwise it is compared in full. */
static void
pass_journal_box(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
		 const char *guid, uint64_t checkpoint_seq,
		 struct pass_box_changes *changes, pool_t pool)
{
	struct mailbox_migrate_destination_mailbox rec;
	const char *error, *reason = NULL;
	int ret;

	ret = mailbox_migrate_destination_mailbox_get(pass->db,
			pass->set->dest_name, guid, &rec, &error);
	if (ret < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		pass->result->mailboxes_failed++;
		return;
	}
	if (ret == 0)
		reason = "not at the destination yet";
	else if (changes == NULL && pass_box_unchanged(sbox, &rec)) {
		pass->result->mailboxes_unchanged++;
		return;
	} else if (mailbox_enable(sbox, MAILBOX_FEATURE_CONDSTORE) < 0 ||
		   mailbox_sync(sbox, 0) < 0) {
		pass_box_failed(pass, sbox, "Reading source mailbox");
		pass->result->mailboxes_failed++;
		return;
	} else if ((ret = pass_journal_box_verify(pass, sbox, guid, &rec,
					checkpoint_seq, &reason)) < 0)
		return;
	else if (ret == 0 && pass_fold_journal_log(pass)) {
		/* a session may have journaled the change since the pass
		   began: what it folded has later seqs, taken by the next
		   pass, but it completes the journal for this check */
		if (pass_journal_box_verify(pass, sbox, guid, &rec,
					    checkpoint_seq, &reason) < 0)
			return;
	}
	if (reason != NULL) {
		i_info("%s: comparing in full: %s", mailbox_get_vname(sbox),
		       reason);
		if (changes == NULL)
			changes = p_new(pool, struct pass_box_changes, 1);
		changes->compare_full = TRUE;
	}
	if (changes == NULL)
		return;
	pass->v->box(pass, sbox, guid, changes);
}

struct pass_journal_context {
	HASH_TABLE_TYPE(pass_changes) hash;
	uint64_t since_seq;
	pool_t pool;
};

static void pass_journal_source_box(struct mailbox_migrate_pass *pass,
				    struct mailbox *box, const char *guid,
				    void *context)
{
	struct pass_journal_context *jctx = context;
	struct pass_box_changes *ch;

	pass->boxes_done++;
	ch = hash_table_lookup(jctx->hash, guid);
	if (ch != NULL)
		ch->seen_on_source = TRUE;
	if (pass_box_selected(pass, mailbox_get_vname(box))) {
		pass_journal_box(pass, box, guid, jctx->since_seq, ch,
				 jctx->pool);
	}
	pass->copying = 0;
	pass_tick(pass);
}

/* Returns 0, or -1 if the journal can't be used (then compare in full). */
static int pass_journal(struct mailbox_migrate_pass *pass,
			uint64_t since_seq, uint64_t until_seq,
			const char **full_reason_r)
{
	struct mailbox_migrate_journal_iter *iter;
	const struct mailbox_migrate_journal_entry *e;
	HASH_TABLE_TYPE(pass_changes) hash;
	HASH_TABLE_TYPE(pass_names) no_names;
	ARRAY_TYPE(pass_box_changes) order;
	ARRAY_TYPE(const_string) sub_names;
	struct pass_box_changes *ch, *const *chp;
	struct pass_journal_context jctx;
	const char *error;
	pool_t pool;
	int ret = 0;

	pool = pool_alloconly_create("mailbox-migrate journal changes", 4096);
	hash_table_create(&hash, pool, 0, str_hash, strcmp);
	p_array_init(&order, pool, 16);
	p_array_init(&sub_names, pool, 4);
	/* no entries since the checkpoint: nothing to read (a pass with
	   nothing to bring spends a good part of its time in SQLite) */
	iter = since_seq >= until_seq ? NULL :
		mailbox_migrate_journal_iter_init(pass->db, since_seq, NULL);
	while (iter != NULL && mailbox_migrate_journal_iter_next(iter, &e)) {
		if (e->seq > until_seq)
			break;
		if (e->type == MAILBOX_MIGRATE_JOURNAL_TYPE_GAP) {
			*full_reason_r = p_strdup_printf(pass->pool,
				"journal gap at seq %"PRIu64": %s",
				e->seq, e->name);
			ret = -1;
			break;
		}
		ch = pass_changes_get(pool, &hash, &order, e->mailbox_guid);
		switch (e->type) {
		case MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE:
		case MAILBOX_MIGRATE_JOURNAL_TYPE_COPY:
			seq_range_array_add(&ch->saved, e->uid);
			break;
		case MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS:
		case MAILBOX_MIGRATE_JOURNAL_TYPE_KEYWORDS:
			seq_range_array_add(&ch->flagged, e->uid);
			break;
		case MAILBOX_MIGRATE_JOURNAL_TYPE_EXPUNGE: {
			const char *guid = p_strdup(pool,
				e->message_guid == NULL ? "" :
				e->message_guid);
			array_push_back(&ch->expunged, &e->uid);
			array_push_back(&ch->expunged_guids, &guid);
			break;
		}
		case MAILBOX_MIGRATE_JOURNAL_TYPE_CREATE:
		case MAILBOX_MIGRATE_JOURNAL_TYPE_RENAME:
		case MAILBOX_MIGRATE_JOURNAL_TYPE_SUBSCRIBE:
		case MAILBOX_MIGRATE_JOURNAL_TYPE_UNSUBSCRIBE:
			/* the mailbox itself is brought over by GUID from the
			   source listing; its name's subscription by name */
			if (e->name != NULL) {
				const char *name = p_strdup(pool, e->name);
				array_push_back(&sub_names, &name);
			}
			break;
		case MAILBOX_MIGRATE_JOURNAL_TYPE_DELETE:
			/* seen_on_source stays FALSE: deleted there too */
			break;
		case MAILBOX_MIGRATE_JOURNAL_TYPE_UPDATE:
			ch->compare_full = TRUE;
			break;
		case MAILBOX_MIGRATE_JOURNAL_TYPE_GAP:
		case MAILBOX_MIGRATE_JOURNAL_TYPE_COUNT:
			i_unreached();
		}
	}
	if (iter != NULL &&
	    mailbox_migrate_journal_iter_deinit(&iter, &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		ret = -2;
	}
	if (ret < 0) {
		hash_table_destroy(&hash);
		pool_unref(&pool);
		return ret == -1 ? -1 : 0;
	}

	/* every source mailbox: those with journal entries are brought over
	   from them; for each the index proves (or not) that the journal
	   has all its changes since this destination last had it, which
	   also catches changes made without the plugin */
	/* one listing, each mailbox opened once for its GUID and proof */
	jctx.hash = hash;
	jctx.since_seq = since_seq;
	jctx.pool = pool;
	if (pass_foreach_source(pass, pass_journal_source_box, &jctx) < 0) {
		/* without the whole source listed, "not on the source"
		   can't be told from "couldn't be opened": delete nothing */
		hash_table_destroy(&hash);
		pool_unref(&pool);
		return 0;
	}
	/* mailboxes the journal names that the source no longer has */
	array_foreach(&order, chp) {
		ch = *chp;
		if (ch->guid[0] == '\0' || ch->seen_on_source ||
		    pass->globs != NULL)
			continue;
		T_BEGIN {
			pass->v->delete_box(pass, ch->guid);
		} T_END;
	}
	if (array_count(&sub_names) > 0) T_BEGIN {
		i_zero(&no_names);
		pass->v->subscriptions(pass, &sub_names, no_names);
	} T_END;
	hash_table_destroy(&hash);
	pool_unref(&pool);
	return 0;
}

static const struct mailbox_migrate_pass_vfuncs pass_location_vfuncs;

struct mailbox_migrate_pass_record {
	ARRAY_TYPE(pass_pending_rec) recs;
	/* the destination's record, with the new checkpoint if checkpoint */
	struct mailbox_migrate_destination dest;
	uint64_t last_seq;
	bool checkpoint;
};

static bool pass_wrote_destination(struct mailbox_migrate_pass *pass)
{
	const struct mailbox_migrate_pass_result *result = pass->result;

	return result->mailboxes_touched > 0 || pass->subscriptions_written ||
		result->total.copied + result->total.expunged +
		result->total.flag_changes + result->total.reassigned > 0;
}

/* The destination was written without an fsync per message (see the
   command): make it all durable before the checkpoint says it is there. */
static void pass_sync_destination(struct mailbox_migrate_pass *pass)
{
	const char *error;

	if (!pass->set->sync_destination || !pass_wrote_destination(pass))
		return;
	if (mailbox_migrate_sync_user_mail(pass->dst_user, &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		pass->error_fatal = TRUE;
	}
}

static int
pass_record_write(struct mailbox_migrate_db *db, const char *dest_name,
		  const ARRAY_TYPE(pass_pending_rec) *recs,
		  struct mailbox_migrate_destination *dest, bool checkpoint,
		  uint64_t last_seq, const char **error_r)
{
	const struct pass_pending_rec *pending;

	if (array_count(recs) == 0 && !checkpoint)
		return 0;
	if (mailbox_migrate_db_begin(db, error_r) < 0)
		return -1;
	array_foreach(recs, pending) {
		if (mailbox_migrate_destination_mailbox_set(db, dest_name,
				pending->guid, &pending->rec, error_r) < 0)
			goto failed;
	}
	if (checkpoint) {
		/* everything up to last_seq is at the destination now */
		dest->checkpoint_seq = last_seq;
		dest->last_pass = ioloop_time;
		if (strcmp(dest->phase, MAILBOX_MIGRATE_PHASE_NONE) == 0)
			dest->phase = MAILBOX_MIGRATE_PHASE_COPYING;
		if (mailbox_migrate_destination_set(db, dest, error_r) < 0)
			goto failed;
	}
	return mailbox_migrate_db_commit(db, error_r);
failed:
	mailbox_migrate_db_rollback(db);
	return -1;
}

/* What pass_commit_state() would write, kept for the caller to write once
   the destination is durable. */
static void pass_defer_record(struct mailbox_migrate_pass *pass,
			      const struct mailbox_migrate_destination *dest,
			      bool checkpoint, uint64_t last_seq)
{
	pool_t pool = pass->set->record_pool;
	struct mailbox_migrate_pass_record *record;
	const struct pass_pending_rec *pending;
	struct pass_pending_rec *copy;

	record = p_new(pool, struct mailbox_migrate_pass_record, 1);
	p_array_init(&record->recs, pool, array_count(&pass->pending_recs) + 1);
	array_foreach(&pass->pending_recs, pending) {
		copy = array_append_space(&record->recs);
		copy->guid = p_strdup(pool, pending->guid);
		copy->rec = pending->rec;
	}
	record->dest = *dest;
	record->dest.name = p_strdup(pool, dest->name);
	record->dest.phase = p_strdup(pool, dest->phase);
	record->checkpoint = checkpoint;
	record->last_seq = last_seq;
	pass->result->record = record;
}

/* Make what the pass wrote durable, then record it: the mailboxes'
   records, and (if the whole pass succeeded for every mailbox) the new
   checkpoint, in one short transaction of the state file. */
static void pass_commit_state(struct mailbox_migrate_pass *pass,
			      struct mailbox_migrate_destination *dest,
			      uint64_t last_seq)
{
	bool checkpoint = dest != NULL && pass->error == NULL &&
		pass->globs == NULL;
	const char *error;

	if (pass->set->defer_record && pass->set->sync_destination &&
	    dest != NULL && pass->v == &pass_location_vfuncs &&
	    (pass->error == NULL || !pass->error_fatal) &&
	    pass_wrote_destination(pass)) {
		pass_defer_record(pass, dest, checkpoint, last_seq);
		return;
	}
	pass->v->sync(pass);
	pass_release_rows(pass);
	if (pass->error != NULL && pass->error_fatal)
		return;
	if (pass_record_write(pass->db, pass->set->dest_name,
			      &pass->pending_recs, dest, checkpoint, last_seq,
			      &error) < 0) {
		pass_failed(pass, MAIL_ERROR_TEMP, error);
		return;
	}
	if (checkpoint)
		pass->result->checkpoint_seq = last_seq;
}

int mailbox_migrate_pass_record_write(struct mailbox_migrate_db *db,
			const struct mailbox_migrate_pass_record *record,
			uint64_t *checkpoint_seq_r, const char **error_r)
{
	struct mailbox_migrate_destination dest = record->dest;

	if (pass_record_write(db, dest.name, &record->recs, &dest,
			      record->checkpoint, record->last_seq,
			      error_r) < 0)
		return -1;
	*checkpoint_seq_r = dest.checkpoint_seq;
	return 0;
}

static const struct mailbox_migrate_pass_vfuncs pass_location_vfuncs = {
	.box = pass_box,
	.delete_box = pass_delete_box,
	.delete_gone = pass_delete_gone,
	.subscriptions = pass_subscriptions,
	.sync = pass_sync_destination,
};

void mailbox_migrate_user_mail_roots(struct mail_user *user,
				     const char **mail_root_r,
				     const char **index_root_r)
{
	struct mailbox_list *list = user->namespaces->list;

	if (!mailbox_list_get_root_path(list, MAILBOX_LIST_PATH_TYPE_MAILBOX,
					mail_root_r))
		*mail_root_r = NULL;
	if (!mailbox_list_get_root_path(list, MAILBOX_LIST_PATH_TYPE_INDEX,
					index_root_r))
		*index_root_r = NULL;
}

int mailbox_migrate_sync_paths(const char *const *paths, const char **error_r)
{
	ARRAY(dev_t) synced;
	dev_t dev;
	struct stat st;
	unsigned int i;
	bool seen;
	int fd, ret = 0;

	t_array_init(&synced, 4);
	for (i = 0; paths[i] != NULL && ret == 0; i++) {
		fd = open(paths[i], O_RDONLY);
		if (fd == -1) {
			if (errno == ENOENT)
				continue;
			*error_r = t_strdup_printf("open(%s) failed: %m",
						   paths[i]);
			return -1;
		}
		if (fstat(fd, &st) < 0) {
			*error_r = t_strdup_printf("fstat(%s) failed: %m",
						   paths[i]);
			ret = -1;
		} else {
			seen = FALSE;
			array_foreach_elem(&synced, dev)
				seen = seen || dev == st.st_dev;
			/* one filesystem is synced once */
			if (seen) {
			} else if (syncfs(fd) < 0) {
				*error_r = t_strdup_printf(
					"syncfs(%s) failed: %m", paths[i]);
				ret = -1;
			} else {
				array_push_back(&synced, &st.st_dev);
			}
		}
		i_close_fd(&fd);
	}
	return ret;
}

int mailbox_migrate_sync_user_mail(struct mail_user *user,
				   const char **error_r)
{
	const char *paths[3] = { NULL, NULL, NULL };
	const char *mail_root, *index_root;
	unsigned int n = 0;

	mailbox_migrate_user_mail_roots(user, &mail_root, &index_root);
	if (mail_root != NULL)
		paths[n++] = mail_root;
	if (index_root != NULL &&
	    (mail_root == NULL || strcmp(index_root, mail_root) != 0))
		paths[n++] = index_root;
	return mailbox_migrate_sync_paths(paths, error_r);
}

int mailbox_migrate_pass_run(struct mail_user *src_user,
			     struct mail_user *dst_user,
			     struct mailbox_migrate_db *db,
			     const struct mailbox_migrate_pass_settings *set,
			     struct mailbox_migrate_pass_result *result_r,
			     enum mail_error *mail_error_r,
			     const char **error_r)
{
	struct mailbox_migrate_pass pass;
	struct mailbox_migrate_destination dest;
	struct mailbox_migrate_journal_completeness completeness;
	const char *error, *full_reason = NULL;
	uint64_t last_seq;
	unsigned int i, count;
	int ret;

	i_zero(result_r);
	i_zero(&pass);
	pass.pool = pool_alloconly_create("mailbox-migrate pass", 1024);
	p_array_init(&pass.pending_recs, pass.pool, 16);
	pass.v = set->backup != NULL || set->backup_open != NULL ?
		&mailbox_migrate_backup_pass_vfuncs : &pass_location_vfuncs;
	pass.backup = set->backup;
	pass.src_user = src_user;
	pass.dst_user = dst_user;
	pass.db = db;
	pass.set = set;
	pass.result = result_r;
	i_gettimeofday(&pass.start);
	if (set->mailbox_patterns != NULL && set->mailbox_patterns[0] != NULL) {
		count = str_array_length(set->mailbox_patterns);
		pass.globs = p_new(pass.pool, struct imap_match_glob *,
				   count + 1);
		for (i = 0; i < count; i++) {
			pass.globs[i] = imap_match_init(pass.pool,
				set->mailbox_patterns[i], TRUE,
				mail_namespaces_get_root_sep(
					src_user->namespaces));
		}
	}

	/* the journal seq this pass will have taken: read before any
	   mailbox, so a change made while the pass runs is taken again by
	   the next pass rather than lost */
	if (mailbox_migrate_journal_get_last_seq(db, &last_seq, &error) < 0 ||
	    mailbox_migrate_journal_check(db, &completeness, &error) < 0 ||
	    (ret = mailbox_migrate_destination_get(db, set->dest_name, &dest,
						   &error)) < 0) {
		*mail_error_r = MAIL_ERROR_TEMP;
		*error_r = t_strdup(error);
		pool_unref(&pass.pool);
		return -1;
	}
	if (set->full)
		full_reason = set->full_reason != NULL ? set->full_reason :
			"--full";
	else if (ret == 0 || dest.last_pass == 0)
		full_reason = "first pass to this destination";
	else if (completeness.incomplete_since != 0 &&
		 dest.checkpoint_seq < completeness.incomplete_since) {
		full_reason = t_strdup_printf("journal incomplete since seq "
			"%"PRIu64": %s", completeness.incomplete_since,
			completeness.reason);
	}
	if (full_reason == NULL &&
	    pass_journal(&pass, dest.checkpoint_seq, last_seq,
			 &full_reason) < 0) {
		i_assert(full_reason != NULL);
	}
	if (full_reason != NULL && pass.error == NULL) {
		result_r->full = TRUE;
		result_r->full_reason = t_strdup(full_reason);
		pass_full(&pass);
	}

	if (pass.error == NULL && result_r->mailboxes_failed > 0)
		pass_failed(&pass, MAIL_ERROR_TEMP, "Some mailboxes failed");
	result_r->checkpoint_seq = dest.checkpoint_seq;
	if (!set->dry_run)
		pass_commit_state(&pass, &dest, last_seq);
	if (pass.error != NULL) {
		*mail_error_r = pass.mail_error;
		*error_r = t_strdup(pass.error);
		pool_unref(&pass.pool);
		return -1;
	}
	pool_unref(&pass.pool);
	return 0;
}

int mailbox_migrate_pass_raise_uidnext(struct mail_user *src_user,
				       struct mail_user *dst_user,
				       struct mailbox_migrate_db *db,
				       const char *dest_name, bool with_seen,
				       bool record_raise,
				       const char **error_r)
{
	struct mailbox_migrate_pass pass;
	struct mailbox_migrate_pass_result result;
	struct mailbox_migrate_pass_settings set;
	ARRAY_TYPE(pass_src_box) boxes;
	const struct pass_src_box *sb;
	struct mailbox_migrate_destination_mailbox rec;
	struct mailbox_migrate_seen_record seen;
	struct mailbox_status status;
	struct mailbox_update update;
	struct mailbox *sbox, *dbox;
	const char *error, *dguid;
	int ret = 0;

	i_zero(&pass);
	i_zero(&set);
	i_zero(&result);
	set.dest_name = dest_name;
	pass.pool = pool_alloconly_create("mailbox-migrate raise", 512);
	p_array_init(&pass.pending_recs, pass.pool, 16);
	pass.v = &pass_location_vfuncs;
	pass.src_user = src_user;
	pass.dst_user = dst_user;
	pass.db = db;
	pass.set = &set;
	pass.result = &result;
	t_array_init(&boxes, 32);
	if (pass_list_source(&pass, &boxes) < 0)
		ret = -1;
	array_foreach(&boxes, sb) {
		sbox = pass_box_alloc(src_user, sb->vname,
				      MAILBOX_FLAG_READONLY);
		dbox = pass_box_alloc(dst_user, sb->vname, 0);
		i_zero(&update);
		if (mailbox_sync(sbox, 0) < 0 ||
		    mailbox_get_status(sbox, STATUS_UIDNEXT |
				       STATUS_UIDVALIDITY, &status) < 0) {
			pass_box_failed(&pass, sbox, "Reading source mailbox");
			ret = -1;
		} else if ((dguid = pass_box_guid(dbox)) == NULL ||
			   strcmp(dguid, sb->guid) != 0) {
			/* not at the destination (yet): the pass brings it */
		} else {
			update.min_next_uid = status.uidnext;
			if (with_seen &&
			    mailbox_migrate_seen_get(db, sb->guid,
					status.uidvalidity, &seen,
					&error) > 0)
				update.min_next_uid = I_MAX(
					update.min_next_uid,
					seen.seen_uidnext);
			if (mailbox_update(dbox, &update) < 0) {
				pass_box_failed(&pass, dbox,
						"Raising UIDNEXT of");
				ret = -1;
			} else if (record_raise &&
				   mailbox_migrate_destination_mailbox_get(db,
					dest_name, sb->guid, &rec,
					&error) > 0) {
				struct pass_pending_rec *pending =
					array_append_space(&pass.pending_recs);

				rec.raised_uidnext = update.min_next_uid;
				pending->guid = p_strdup(pass.pool, sb->guid);
				pending->rec = rec;
			}
		}
		mailbox_free(&sbox);
		mailbox_free(&dbox);
	}
	if (ret == 0) {
		/* the raise must be durable before the records say so */
		set.sync_destination = TRUE;
		result.mailboxes_touched = 1;
		pass_commit_state(&pass, NULL, 0);
		if (pass.error != NULL)
			ret = -1;
	}
	if (ret < 0)
		*error_r = t_strdup(pass.error);
	pool_unref(&pass.pool);
	return ret;
}
