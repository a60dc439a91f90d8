#ifndef DOVEADM_MAILBOX_MIGRATE_PASS_PRIVATE_H
#define DOVEADM_MAILBOX_MIGRATE_PASS_PRIVATE_H

#include "hash.h"
#include "seq-range-array.h"
#include "mail-storage.h"
#include "mailbox-migrate-destination.h"
#include "doveadm-mailbox-migrate-pass.h"

/* The pass engine's parts shared by its destinations: a mail location
   (doveadm-mailbox-migrate-pass.c) and a backup store
   (doveadm-mailbox-migrate-backup-pass.c). The engine chooses what to
   look at (journal from the checkpoint, or everything); a destination's
   vfuncs bring it over. */

/* One message as the index shows it: no message file is read for it. */
struct pass_mail {
	uint32_t uid;
	const char *guid;
	enum mail_flags flags;
	const char *const *keywords;
	uint64_t modseq;
	/* matched with a message of the other side */
	bool paired;
};
ARRAY_DEFINE_TYPE(pass_mail, struct pass_mail);

struct pass_box_changes;
HASH_TABLE_DEFINE_TYPE(pass_changes, const char *, struct pass_box_changes *);
ARRAY_DEFINE_TYPE(pass_box_changes, struct pass_box_changes *);
HASH_TABLE_DEFINE_TYPE(pass_names, const char *, void *);
HASH_TABLE_DEFINE_TYPE(pass_guids, const char *, void *);

/* What the journal says changed in one mailbox since the checkpoint. */
struct pass_box_changes {
	const char *guid;
	/* UIDs saved or copied, and UIDs whose flags or keywords changed */
	ARRAY_TYPE(seq_range) saved, flagged;
	/* expunged UIDs and their message GUIDs ("" when unknown) */
	ARRAY_TYPE(uint32_t) expunged;
	ARRAY_TYPE(const_string) expunged_guids;
	/* the source still has the mailbox (a journal pass lists it) */
	bool seen_on_source;
	/* UIDVALIDITY changed, or something else only a full comparison
	   of the mailbox can settle */
	bool compare_full;
};

/* A destination_mailbox record to write once the destination is
   durable. */
struct pass_pending_rec {
	const char *guid;
	struct mailbox_migrate_destination_mailbox rec;
};
ARRAY_DEFINE_TYPE(pass_pending_rec, struct pass_pending_rec);

/* A mailbox's row, held until the destination has committed the pass. */
struct pass_held_row {
	const char *vname;
	struct mailbox_migrate_pass_counts counts;
	double secs;
};
ARRAY_DEFINE_TYPE(pass_held_row, struct pass_held_row);

struct mailbox_migrate_pass_vfuncs;

struct mailbox_migrate_pass {
	pool_t pool;
	const struct mailbox_migrate_pass_vfuncs *v;
	ARRAY_TYPE(pass_pending_rec) pending_recs;
	struct mail_user *src_user, *dst_user;
	struct mailbox_migrate_db *db;
	const struct mailbox_migrate_pass_settings *set;
	struct mailbox_migrate_pass_result *result;
	struct imap_match_glob **globs;
	/* set->backup, or what set->backup_open gave (NULL until then) */
	struct mailbox_migrate_backup_store *backup;

	struct timeval start;
	struct timeval last_progress;
	unsigned int boxes_done, boxes_total;
	/* messages copied so far in the mailbox being worked on (not yet in
	   result->total) */
	unsigned int copying;

	/* subscriptions changed on the destination (to be synced) */
	bool subscriptions_written;

	enum mail_error mail_error;
	const char *error;
	/* the destination couldn't be made durable: record nothing */
	bool error_fatal;
	/* v->all_or_nothing: rows of the mailboxes done so far */
	ARRAY_TYPE(pass_held_row) held_rows;
};

struct mailbox_migrate_pass_vfuncs {
	/* Bring one source mailbox over; changes NULL: compare in full.
	   Counts and failures go to pass->result (pass_box_done()). */
	void (*box)(struct mailbox_migrate_pass *pass, struct mailbox *sbox,
		    const char *guid, const struct pass_box_changes *changes);
	/* The source deleted the mailbox with this GUID. */
	void (*delete_box)(struct mailbox_migrate_pass *pass,
			   const char *guid);
	/* A full pass: delete what an earlier pass brought whose GUID the
	   source no longer has. */
	void (*delete_gone)(struct mailbox_migrate_pass *pass,
			    HASH_TABLE_TYPE(pass_guids) src_guids);
	/* Subscriptions: changed_names from the journal, or NULL to compare
	   all (src_boxes: the source's mailbox names). */
	void (*subscriptions)(struct mailbox_migrate_pass *pass,
			      const ARRAY_TYPE(const_string) *changed_names,
			      HASH_TABLE_TYPE(pass_names) src_boxes);
	/* Make what was written durable: called before the state file
	   records the pass; sets the pass' error if it can't. */
	void (*sync)(struct mailbox_migrate_pass *pass);
	/* The destination keeps nothing of a pass whose sync fails (a
	   backup store takes a pass in one commit): the mailboxes' rows are
	   printed only once sync succeeded, and the counts are zero if it
	   failed. */
	bool all_or_nothing;
};

extern const struct mailbox_migrate_pass_vfuncs mailbox_migrate_backup_pass_vfuncs;

void pass_failed(struct mailbox_migrate_pass *pass,
		 enum mail_error error, const char *text);
void pass_box_failed(struct mailbox_migrate_pass *pass,
		     struct mailbox *box, const char *what);
bool pass_box_selected(struct mailbox_migrate_pass *pass, const char *vname);
/* The mailbox's GUID (opening it), NULL if it can't be opened. */
const char *pass_box_guid(struct mailbox *box);
int pass_box_status(struct mailbox *box, struct mailbox_status *status_r,
		    uint64_t *highest_modseq_r);
/* Read the index records of all mails (uids == NULL) or of the given UIDs
   that still exist, in UID order. */
int pass_mails_load(struct mailbox *box, pool_t pool,
		    const ARRAY_TYPE(seq_range) *uids,
		    ARRAY_TYPE(pass_mail) *mails);
struct pass_mail *
pass_mails_find_uid(ARRAY_TYPE(pass_mail) *mails, uint32_t uid);
bool pass_keywords_equal(const char *const *a, const char *const *b);
/* Add the user's subscribed names (private namespaces) to names. Returns
   0, or -1 with the pass failed. */
int pass_subscribed_names(struct mailbox_migrate_pass *pass,
			  struct mail_user *user,
			  HASH_TABLE_TYPE(pass_names) *names);
/* Subscribe (TRUE) or unsubscribe the name on the destination. */
typedef void pass_subscribed_set_t(struct mailbox_migrate_pass *pass,
				   const char *name, bool subscribed);
/* Subscriptions are names, not mailboxes (they may name none). Bring the
   destination's (dst: the names it has subscribed) to the source's state:
   of the names changed_names lists (journal), or (changed_names == NULL, a
   full comparison) of all; a full comparison unsubscribes a name only if
   may_drop has it, or any name when may_drop isn't created. Calls set for
   each change and keeps dst up to date in a journal pass. */
void pass_subscriptions_sync(struct mailbox_migrate_pass *pass,
			     const ARRAY_TYPE(const_string) *changed_names,
			     HASH_TABLE_TYPE(pass_names) dst,
			     HASH_TABLE_TYPE(pass_names) may_drop,
			     pass_subscribed_set_t *set);
/* After each mailbox and each copied message: the caller's tick, and a
   line of progress on stderr when set->progress_interval_msecs says. */
void pass_tick(struct mailbox_migrate_pass *pass);
/* Account a mailbox the pass worked on (touched: print its row, or hold
   it for after sync with v->all_or_nothing). */
void pass_box_done(struct mailbox_migrate_pass *pass, const char *vname,
		   const struct mailbox_migrate_pass_counts *counts,
		   const struct timeval *start, bool touched);
/* Remember what the destination has of the mailbox now, to be written
   with the checkpoint once the destination is durable. */
void pass_record_box(struct mailbox_migrate_pass *pass, const char *guid,
		     const struct mailbox_migrate_destination_mailbox *rec);

#endif
