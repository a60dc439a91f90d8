/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "seq-range-array.h"
#include "str.h"
#include "time-util.h"
#include "imap-seqset.h"
#include "imap-util.h"
#include "mail-storage-private.h"
#include "mail-index-private.h"
#include "mail-transaction-log-private.h"
#include "mail-search-build.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-destination.h"
#include "mailbox-migrate-index-ext.h"
#include "mailbox-migrate-journal-verify.h"

/* Every UID of expunged must have its expunge entry. */
static int
mailbox_migrate_verify_expunge_entries(struct mailbox_migrate_db *db,
				       const char *mailbox_guid,
				       uint32_t uidvalidity,
				       const ARRAY_TYPE(seq_range) *expunged,
				       const char **reason_r,
				       const char **error_r)
{
	struct seq_range_iter iter;
	unsigned int n = 0;
	uint32_t uid;
	int ret;

	seq_range_array_iter_init(&iter, expunged);
	while (seq_range_array_iter_nth(&iter, n++, &uid)) {
		ret = mailbox_migrate_journal_has_expunge(db, mailbox_guid,
							  uidvalidity, uid,
							  error_r);
		if (ret < 0)
			return -1;
		if (ret == 0) {
			*reason_r = t_strdup_printf("UID %u was expunged "
				"without a journal entry", uid);
			return 0;
		}
	}
	return 0;
}

/* Every UID expunged since the witness must have its expunge entry.
   *untold_r is set when the index no longer tells which were (*reason_r
   says so too). */
static int
mailbox_migrate_verify_expunges(struct mailbox_migrate_db *db,
				struct mailbox *box, const char *mailbox_guid,
				const struct mailbox_migrate_journal_mailbox *known,
				uint32_t uidvalidity, const char **reason_r,
				bool *untold_r, const char **error_r)
{
	ARRAY_TYPE(seq_range) uids_filter, expunged;

	*untold_r = FALSE;
	t_array_init(&uids_filter, 1);
	seq_range_array_add_range(&uids_filter, 1, (uint32_t)-1);
	t_array_init(&expunged, 16);
	if (!mailbox_get_expunged_uids(box, known->witness_modseq,
				       &uids_filter, &expunged)) {
		*reason_r = "the index no longer tells what was expunged "
			"since the journal's witness";
		*untold_r = TRUE;
		return 0;
	}
	return mailbox_migrate_verify_expunge_entries(db, mailbox_guid,
			uidvalidity, &expunged, reason_r, error_r);
}

typedef const char *
verify_changed_mail_t(struct mail *mail, void *context);

/* Call check for every mail whose modseq is above modseq (index only)
   until it returns a reason, which goes to *reason_r. */
static int
mailbox_migrate_verify_mails_changed_since(struct mailbox *box,
		uint64_t modseq, verify_changed_mail_t *check, void *context,
		const char **reason_r, const char **error_r)
{
	struct mail_search_args *search_args;
	struct mail_search_arg *arg;
	struct mailbox_transaction_context *t;
	struct mail_search_context *ctx;
	struct mail *mail;
	int ret = 0;

	search_args = mail_search_build_init();
	arg = mail_search_build_add(search_args, SEARCH_MODSEQ);
	arg->value.modseq = p_new(search_args->pool,
				  struct mail_search_modseq, 1);
	arg->value.modseq->modseq = modseq + 1;
	arg->value.modseq->type = MAIL_SEARCH_MODSEQ_TYPE_ANY;

	t = mailbox_transaction_begin(box, 0, __func__);
	ctx = mailbox_search_init(t, search_args, NULL, 0, NULL);
	mail_search_args_unref(&search_args);
	while (*reason_r == NULL && mailbox_search_next(ctx, &mail))
		*reason_r = check(mail, context);
	if (mailbox_search_deinit(&ctx) < 0) {
		*error_r = mailbox_get_last_internal_error(box, NULL);
		ret = -1;
	}
	(void)mailbox_transaction_commit(&t);
	return ret;
}

static const char *
verify_mail_has_entry(struct mail *mail, void *context)
{
	const ARRAY_TYPE(seq_range) *journaled = context;

	if (seq_range_exists(journaled, mail->uid))
		return NULL;
	return t_strdup_printf("UID %u changed (modseq %llu) without a "
			       "journal entry", mail->uid,
			       (unsigned long long)mail_get_modseq(mail));
}

/* Every mail changed since the witness must have an entry after it, or
   (concurrent_witness) one up to it of a commit the index made after the
   witness' modseq: a witness that a mailbox record carries (a create,
   rename or update; before 723e17d also a commit without entries: its
   modseq, the journal's last seq then) can postdate a concurrent
   commit's entry of a higher modseq. A pass's own witness (the checkpoint read
   before the mailbox's modseq) can't. */
static int
mailbox_migrate_verify_changed_mails(struct mailbox_migrate_db *db,
				struct mailbox *box, const char *mailbox_guid,
				const struct mailbox_migrate_journal_mailbox *known,
				bool concurrent_witness, uint32_t uidvalidity,
				const char **reason_r, const char **error_r)
{
	ARRAY_TYPE(seq_range) journaled;

	t_array_init(&journaled, 16);
	if (mailbox_migrate_journal_get_changed_uids(db, mailbox_guid,
			uidvalidity, known->witness_seq, &journaled,
			error_r) < 0)
		return -1;
	if (concurrent_witness &&
	    mailbox_migrate_journal_get_changed_uids_upto(db, mailbox_guid,
			uidvalidity, known->witness_seq, known->witness_modseq,
			&journaled, error_r) < 0)
		return -1;
	return mailbox_migrate_verify_mails_changed_since(box,
			known->witness_modseq, verify_mail_has_entry,
			&journaled, reason_r, error_r);
}

static int
uid_modseq_cmp(const uint32_t *uid,
	       const struct mailbox_migrate_journal_uid_modseq *um)
{
	return *uid < um->uid ? -1 : (*uid > um->uid ? 1 : 0);
}

/* Every mail changed since the proof's modseq must have an entry after
   its seq (context: their UIDs and highest modseqs) whose commit
   left the index at or above the mail's modseq: else the mail changed
   again after its last entry (an entry of unknown modseq counts as it
   always did). Entries of commits made after the proof's modseq all lie
   after its seq, which was read first; what lies after it of older
   commits can't vouch for a change made since. */
static const char *
verify_mail_has_later_entry(struct mail *mail, void *context)
{
	ARRAY_TYPE(mailbox_migrate_journal_uid_modseq) *journaled = context;
	const struct mailbox_migrate_journal_uid_modseq *um;
	uint64_t modseq = mail_get_modseq(mail);

	um = array_bsearch(journaled, &mail->uid, uid_modseq_cmp);
	if (um == NULL) {
		return t_strdup_printf("UID %u changed (modseq %llu) "
				       "without a journal entry", mail->uid,
				       (unsigned long long)modseq);
	}
	if (um->modseq != 0 && um->modseq < modseq) {
		return t_strdup_printf("UID %u changed (modseq %llu) after "
				       "its last journal entry (modseq %llu)",
				       mail->uid, (unsigned long long)modseq,
				       (unsigned long long)um->modseq);
	}
	return NULL;
}


/* The modseq from which the mailbox index's log still tells the
   expunges: the initial modseq of its oldest file that this process has
   opened (after mailbox_get_expunged_uids() found the log too short, the
   oldest there is). 0 if not known. */
static uint64_t mailbox_migrate_get_log_floor_modseq(struct mailbox *box)
{
	struct mail_transaction_log_file *file;
	uint32_t tail_seq;

	if (box->index == NULL || box->index->log == NULL ||
	    box->index->log->files == NULL)
		return 0;
	mail_transaction_log_get_tail(box->index->log, &tail_seq);
	for (file = box->index->log->files; file != NULL; file = file->next) {
		if (file->hdr.file_seq == tail_seq)
			return file->hdr.initial_modseq;
	}
	return 0;
}

/* The UIDs of the mailbox's view (as synced; what its status tells). */
static void
mailbox_migrate_get_view_uids(struct mailbox *box, uint32_t messages,
			      ARRAY_TYPE(seq_range) *uids)
{
	ARRAY_TYPE(seq_range) seqs;

	if (messages == 0)
		return;
	t_array_init(&seqs, 1);
	seq_range_array_add_range(&seqs, 1, messages);
	mailbox_get_uid_range(box, &seqs, uids);
}

/* Every UID the mailbox had at the proof (proof->uids, NULL if unknown)
   or got a journal entry for since, and no longer has, must have its
   expunge entry: what the index's log no longer tells once it has
   rotated. */
static int
mailbox_migrate_verify_expunges_since_start(struct mailbox_migrate_db *db,
	struct mailbox *box, const char *mailbox_guid,
	const struct mailbox_migrate_journal_proof *proof,
	const ARRAY_TYPE(mailbox_migrate_journal_uid_modseq) *journaled,
	uint32_t messages, const char **reason_r, const char **error_r)
{
	ARRAY_TYPE(seq_range) had, has;
	const struct mailbox_migrate_journal_uid_modseq *um;

	t_array_init(&had, 16);
	if (proof->uids != NULL && proof->uids[0] != '\0' &&
	    imap_seq_set_nostar_parse(proof->uids, &had) < 0) {
		*error_r = t_strdup_printf("Invalid UIDs in the journal's "
					   "proof: %s", proof->uids);
		return -1;
	}
	array_foreach(journaled, um)
		seq_range_array_add(&had, um->uid);
	t_array_init(&has, 16);
	mailbox_migrate_get_view_uids(box, messages, &has);
	seq_range_array_remove_seq_range(&had, &has);

	return mailbox_migrate_verify_expunge_entries(db, mailbox_guid,
			proof->uidvalidity, &had, reason_r, error_r);
}

/* A registered destination's record of the mailbox. */
struct verify_destination {
	struct mailbox_migrate_destination dest;
	struct mailbox_migrate_destination_mailbox rec;
};
ARRAY_DEFINE_TYPE(verify_destination, struct verify_destination);

/* The registered destinations whose migration isn't done that have a
   checkpoint and a record of the mailbox (of this uidvalidity), with
   that record. Returns 0, or -1 on error. */
static int
mailbox_migrate_verify_get_destinations(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t uidvalidity,
		ARRAY_TYPE(verify_destination) *dests_r,
		const char **error_r)
{
	ARRAY_TYPE(mailbox_migrate_destination) dests;
	const struct mailbox_migrate_destination *dest;
	struct verify_destination *vd;
	struct mailbox_migrate_destination_mailbox rec;
	int ret;

	t_array_init(dests_r, 4);
	t_array_init(&dests, 4);
	if (mailbox_migrate_destination_list(db, &dests, error_r) < 0)
		return -1;
	array_foreach(&dests, dest) {
		if (dest->checkpoint_seq == 0 ||
		    strcmp(dest->phase, MAILBOX_MIGRATE_PHASE_DONE) == 0)
			continue;
		ret = mailbox_migrate_destination_mailbox_get(db, dest->name,
				mailbox_guid, &rec, error_r);
		if (ret < 0)
			return -1;
		if (ret > 0 && rec.uidvalidity == uidvalidity) {
			vd = array_append_space(dests_r);
			vd->dest = *dest;
			vd->rec = rec;
		}
	}
	return 0;
}

/* The proof of mailbox_migrate_journal_verify_since() against each
   registered destination's own checkpoint of the mailbox: a witness
   raised by a journaled commit hides a change made just before it
   without the plugin, a destination's checkpoint doesn't. Returns 0 with
   *reason_r set (the destination named) if a destination's proof finds a
   change without its entry, else with it NULL; -1 on error. A destination
   that can't prove either way (none of its passes had the mailbox, another
   UIDVALIDITY, the index forgot the expunges since) is left out, as is one
   whose migration is done. */
static int
mailbox_migrate_verify_destinations(struct mailbox_migrate_db *db,
				    struct mailbox *box,
				    const char *mailbox_guid,
				    const struct mailbox_status *status,
				    const char **reason_r,
				    const char **error_r)
{
	ARRAY_TYPE(verify_destination) dests;
	const struct verify_destination *vd;
	struct mailbox_migrate_journal_mailbox known;
	const char *reason;
	bool untold;

	*reason_r = NULL;
	if (mailbox_migrate_verify_get_destinations(db, mailbox_guid,
			status->uidvalidity, &dests, error_r) < 0)
		return -1;
	array_foreach(&dests, vd) {
		if (status->highest_modseq <= vd->rec.src_modseq)
			continue;
		i_zero(&known);
		known.witness_modseq = vd->rec.src_modseq;
		known.witness_seq = vd->dest.checkpoint_seq;
		reason = NULL;
		if (mailbox_migrate_verify_expunges(db, box, mailbox_guid,
				&known, status->uidvalidity, &reason, &untold,
				error_r) < 0)
			return -1;
		if (untold)
			continue;
		if (reason == NULL &&
		    mailbox_migrate_verify_changed_mails(db, box,
				mailbox_guid, &known, FALSE,
				status->uidvalidity, &reason, error_r) < 0)
			return -1;
		if (reason != NULL) {
			*reason_r = t_strdup_printf("%s (since the last pass "
				"to %s)", reason, vd->dest.name);
			return 0;
		}
	}
	return 0;
}

/* Where the journal command's proof of the mailbox starts: the newest of
   its last proof and (with_destinations) the registered destinations'
   last passes of the mailbox (each of them is proven apart too), or the
   oldest commit the journal holds of the mailbox when there is none: what
   came before it isn't claimed. *origin_r says which, *destination_r
   whether it is a destination's pass. Returns 1 and the start, 0 if no
   proof can be made from there (nothing to start from, or entries after
   the start were pruned), -1 on error. */
static int
mailbox_migrate_proof_start(struct mailbox_migrate_db *db,
			    const char *mailbox_guid,
			    const struct mailbox_migrate_journal_mailbox *known,
			    uint32_t uidvalidity, bool with_destinations,
			    struct mailbox_migrate_journal_proof *proof_r,
			    const char **origin_r, bool *destination_r,
			    const char **error_r)
{
	ARRAY_TYPE(verify_destination) dests;
	const struct verify_destination *vd;
	struct mailbox_migrate_journal_range range;
	uint64_t first_modseq;
	int ret;

	ret = mailbox_migrate_journal_get_proof(db, mailbox_guid, proof_r,
						error_r);
	if (ret < 0)
		return -1;
	*origin_r = "the journal command's last proof";
	if (ret == 0 || proof_r->uidvalidity != uidvalidity) {
		if (mailbox_migrate_journal_get_first_modseq(db, mailbox_guid,
				uidvalidity, &first_modseq, error_r) < 0)
			return -1;
		i_zero(proof_r);
		proof_r->uidvalidity = uidvalidity;
		proof_r->modseq = first_modseq;
		if (known->witness_modseq != 0 &&
		    (first_modseq == 0 || known->witness_modseq < first_modseq))
			proof_r->modseq = known->witness_modseq;
		*origin_r = "the journal's first commit of the mailbox";
	}

	*destination_r = FALSE;
	if (!with_destinations)
		t_array_init(&dests, 1);
	else if (mailbox_migrate_verify_get_destinations(db, mailbox_guid,
			uidvalidity, &dests, error_r) < 0)
		return -1;
	array_foreach(&dests, vd) {
		if (vd->rec.src_modseq > proof_r->modseq) {
			proof_r->modseq = vd->rec.src_modseq;
			proof_r->seq = vd->dest.checkpoint_seq;
			proof_r->uids = NULL;
			*origin_r = t_strdup_printf("the last pass to %s",
						    vd->dest.name);
			*destination_r = TRUE;
		}
	}
	if (proof_r->modseq == 0)
		return 0;
	if (mailbox_migrate_journal_get_range(db, NULL, &range, error_r) < 0)
		return -1;
	return range.first_seq > proof_r->seq + 1 ? 0 : 1;
}

/* Prove the mailbox from where mailbox_migrate_proof_start() says (and
   give that in *start_r), with the journal up to last_seq (read before the
   mailbox was synced: a later entry may be of a commit the synced view
   doesn't have). Returns 1 with *reason_r set or NULL, 0 if it can't be
   made (no start, or the index no longer tells the expunges since;
   *destination_r: from a destination's pass), -1 on error. */
static int
mailbox_migrate_verify_from_proof(struct mailbox_migrate_db *db,
		struct mailbox *box, const char *mailbox_guid,
		const struct mailbox_migrate_journal_mailbox *known,
		const struct mailbox_status *status, uint64_t last_seq,
		bool with_destinations,
		struct mailbox_migrate_journal_proof *start_r,
		bool *destination_r, const char **reason_r,
		const char **error_r)
{
	ARRAY_TYPE(mailbox_migrate_journal_uid_modseq) journaled;
	struct mailbox_migrate_journal_mailbox since;
	const char *origin;
	bool untold;
	int ret;

	ret = mailbox_migrate_proof_start(db, mailbox_guid, known,
					  status->uidvalidity,
					  with_destinations, start_r,
					  &origin, destination_r, error_r);
	if (ret <= 0)
		return ret;
	if (status->highest_modseq <= start_r->modseq)
		return 1;
	t_array_init(&journaled, 64);
	if (mailbox_migrate_journal_get_uid_modseqs(db, mailbox_guid,
			start_r->uidvalidity, start_r->seq, last_seq,
			&journaled, error_r) < 0)
		return -1;
	/* Only the command's own proof keeps the UIDs the mailbox had; from
	   a destination's pass or the first commit, those the journal saw
	   since still tell an expunge of one of them where the index's log
	   no longer reaches back to it. */
	if (mailbox_migrate_verify_expunges_since_start(db, box, mailbox_guid,
			start_r, &journaled, status->messages, reason_r,
			error_r) < 0)
		return -1;
	if (*reason_r == NULL && start_r->uids == NULL) {
		i_zero(&since);
		since.witness_modseq = start_r->modseq;
		since.witness_seq = start_r->seq;
		if (mailbox_migrate_verify_expunges(db, box, mailbox_guid,
				&since, status->uidvalidity, reason_r,
				&untold, error_r) < 0)
			return -1;
		if (untold) {
			/* The mails' modseqs still tell every change since
			   the start but the expunges; those only as far back
			   as the index's log goes. */
			since.witness_modseq =
				mailbox_migrate_get_log_floor_modseq(box);
			*reason_r = NULL;
			if (since.witness_modseq <= start_r->modseq)
				return 0;
			if (mailbox_migrate_verify_expunges(db, box,
					mailbox_guid, &since,
					status->uidvalidity, reason_r,
					&untold, error_r) < 0)
				return -1;
			if (untold) {
				*reason_r = NULL;
				return 0;
			}
		}
	}
	if (*reason_r == NULL &&
	    mailbox_migrate_verify_mails_changed_since(box, start_r->modseq,
			verify_mail_has_later_entry, &journaled, reason_r,
			error_r) < 0)
		return -1;
	if (*reason_r != NULL)
		*reason_r = t_strdup_printf("%s (since %s)", *reason_r, origin);
	return 1;
}

/* Prove the mailbox from the journal's own witness (known NULL: the
   journal never saw it), which a journaled commit raises past a change
   made just before it without the plugin: only where no proof from the
   command's last one can be made. */
static int
mailbox_migrate_verify_from_witness(struct mailbox_migrate_db *db,
		struct mailbox *box, const char *mailbox_guid,
		const struct mailbox_migrate_journal_mailbox *known,
		const struct mailbox_status *status,
		const char **reason_r, const char **error_r)
{
	bool untold;

	switch (mailbox_migrate_journal_check_index(known, status->uidvalidity,
			status->highest_modseq, reason_r)) {
	case MAILBOX_MIGRATE_JOURNAL_INDEX_COMPLETE:
	case MAILBOX_MIGRATE_JOURNAL_INDEX_INCOMPLETE:
		break;
	case MAILBOX_MIGRATE_JOURNAL_INDEX_CHECK_CHANGES:
		/* Expunges done by a later sync and commits still being
		   journaled by another process land here. */
		if (mailbox_migrate_verify_expunges(db, box, mailbox_guid,
				known, status->uidvalidity, reason_r,
				&untold, error_r) < 0)
			return -1;
		if (*reason_r == NULL &&
		    mailbox_migrate_verify_changed_mails(db, box, mailbox_guid,
				known, TRUE, status->uidvalidity, reason_r,
				error_r) < 0)
			return -1;
		break;
	}
	return 0;
}

int mailbox_migrate_journal_verify_mailbox(struct mailbox_migrate_db *db,
		struct mailbox *box, const char *mailbox_guid,
		uint64_t last_seq,
		struct mailbox_migrate_journal_completeness *result,
		struct mailbox_migrate_journal_proof *proof_r,
		const char **error_r)
{
	struct mailbox_migrate_journal_mailbox known;
	struct mailbox_migrate_journal_proof proof;
	struct mailbox_migrate_index_ext_header lost;
	struct mailbox_status status;
	ARRAY_TYPE(seq_range) uids;
	string_t *uids_str;
	const char *reason = NULL;
	bool destination;
	int ret, proved = 0;

	i_zero(proof_r);

	if (mailbox_get_status(box, STATUS_UIDVALIDITY | STATUS_HIGHESTMODSEQ |
			       STATUS_MESSAGES, &status) < 0) {
		*error_r = mailbox_get_last_internal_error(box, NULL);
		return -1;
	}
	if (db == NULL) {
		if (status.highest_modseq > 1) {
			mailbox_migrate_journal_set_incomplete(result,
				last_seq, "no state file");
		}
		return 0;
	}
	ret = mailbox_migrate_journal_get_mailbox(db, mailbox_guid, &known,
						  error_r);
	if (ret < 0)
		return -1;
	mailbox_migrate_index_ext_get(box, &lost);
	if (lost.lost_count > (ret > 0 ? known.lost_acked : 0)) {
		mailbox_migrate_journal_set_incomplete(result, last_seq,
			t_strdup_printf("%u commit(s) could not be journaled, "
				"the last at %s", lost.lost_count -
				(ret > 0 ? known.lost_acked : 0),
				t_strflocaltime("%Y-%m-%d %H:%M:%S",
						lost.last_lost_time)));
		return 0;
	}
	i_zero(&proof);
	if (ret > 0 && known.uidvalidity == status.uidvalidity) {
		proved = mailbox_migrate_verify_from_proof(db, box,
				mailbox_guid, &known, &status, last_seq, TRUE,
				&proof, &destination, &reason, error_r);
		if (proved == 0 && destination) {
			/* the command's own last proof keeps the UIDs the
			   mailbox had: from there the expunges are told */
			proved = mailbox_migrate_verify_from_proof(db, box,
					mailbox_guid, &known, &status,
					last_seq, FALSE, &proof, &destination,
					&reason, error_r);
		}
		if (proved < 0)
			return -1;
	}
	if (proved == 0) {
		proof.modseq = 0;
		if (mailbox_migrate_verify_from_witness(db, box, mailbox_guid,
				ret > 0 ? &known : NULL, &status, &reason,
				error_r) < 0)
			return -1;
	}
	if (reason == NULL &&
	    mailbox_migrate_verify_destinations(db, box, mailbox_guid,
						&status, &reason, error_r) < 0)
		return -1;
	if (reason != NULL) {
		mailbox_migrate_journal_set_incomplete(result, last_seq, reason);
		return 0;
	}
	if (ret > 0 && status.highest_modseq > I_MAX(proof.modseq, 1)) {
		/* last_seq was read before the mailbox was synced; the UIDs
		   are of the same view as the status */
		proof_r->uidvalidity = status.uidvalidity;
		proof_r->modseq = status.highest_modseq;
		proof_r->seq = last_seq;
		t_array_init(&uids, 16);
		mailbox_migrate_get_view_uids(box, status.messages, &uids);
		uids_str = t_str_new(128);
		imap_write_seq_range(uids_str, &uids);
		proof_r->uids = str_c(uids_str);
	}
	return 0;
}

int mailbox_migrate_journal_verify_since(struct mailbox_migrate_db *db,
		struct mailbox *box, const char *mailbox_guid,
		uint32_t uidvalidity, uint64_t since_modseq,
		uint64_t since_seq, uint32_t lost_acked,
		const char **reason_r, const char **error_r)
{
	struct mailbox_migrate_journal_mailbox known;
	struct mailbox_migrate_index_ext_header lost;
	struct mailbox_status status;
	bool untold;

	*reason_r = NULL;
	if (mailbox_get_status(box, STATUS_UIDVALIDITY | STATUS_HIGHESTMODSEQ,
			       &status) < 0) {
		*error_r = mailbox_get_last_internal_error(box, NULL);
		return -1;
	}
	if (status.uidvalidity != uidvalidity) {
		*reason_r = "UIDVALIDITY changed";
		return 0;
	}
	mailbox_migrate_index_ext_get(box, &lost);
	if (lost.lost_count > lost_acked) {
		*reason_r = t_strdup_printf("%u commit(s) could not be "
			"journaled", lost.lost_count - lost_acked);
		return 0;
	}
	if (status.highest_modseq <= since_modseq)
		return 1;
	i_zero(&known);
	known.witness_modseq = since_modseq;
	known.witness_seq = since_seq;
	if (mailbox_migrate_verify_expunges(db, box, mailbox_guid, &known,
					    uidvalidity, reason_r, &untold,
					    error_r) < 0)
		return -1;
	if (*reason_r == NULL &&
	    mailbox_migrate_verify_changed_mails(db, box, mailbox_guid,
				&known, FALSE, uidvalidity, reason_r,
				error_r) < 0)
		return -1;
	return *reason_r == NULL ? 1 : 0;
}
