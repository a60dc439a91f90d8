#ifndef MAILBOX_MIGRATE_JOURNAL_H
#define MAILBOX_MIGRATE_JOURNAL_H

#include "mail-types.h"
#include "seq-range-array.h"

struct mailbox_migrate_db;

/* The per-user change journal. Every entry has a sequence number that is
   strictly increasing and never reused, and names its mailbox by GUID so
   that history follows renames. A reader remembers the last seq it has
   taken (its checkpoint) and asks the journal whether it can prove that it
   holds every change since then. */

enum mailbox_migrate_journal_type {
	/* A message was saved (APPEND, delivery, doveadm save/import). */
	MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE,
	/* A message was copied or moved here from another mailbox. */
	MAILBOX_MIGRATE_JOURNAL_TYPE_COPY,
	MAILBOX_MIGRATE_JOURNAL_TYPE_EXPUNGE,
	/* The message's system flags are now `flags`. */
	MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS,
	/* The message's keywords are now `keywords`. */
	MAILBOX_MIGRATE_JOURNAL_TYPE_KEYWORDS,
	MAILBOX_MIGRATE_JOURNAL_TYPE_CREATE,
	MAILBOX_MIGRATE_JOURNAL_TYPE_DELETE,
	/* The mailbox is now called `name`; it was `old_name`. */
	MAILBOX_MIGRATE_JOURNAL_TYPE_RENAME,
	MAILBOX_MIGRATE_JOURNAL_TYPE_SUBSCRIBE,
	MAILBOX_MIGRATE_JOURNAL_TYPE_UNSUBSCRIBE,
	/* Mailbox metadata changed (e.g. UIDVALIDITY, now `uidvalidity`). */
	MAILBOX_MIGRATE_JOURNAL_TYPE_UPDATE,
	/* Changes before this entry may be missing (`name` says why): a
	   reader whose checkpoint is below this entry's seq must compare the
	   whole mailbox store. mailbox_guid is "" (all mailboxes). */
	MAILBOX_MIGRATE_JOURNAL_TYPE_GAP,

	MAILBOX_MIGRATE_JOURNAL_TYPE_COUNT
};

struct mailbox_migrate_journal_entry {
	/* Assigned when written. */
	uint64_t seq;
	time_t time;
	enum mailbox_migrate_journal_type type;
	/* 32 hex digits, "" for GAP. */
	const char *mailbox_guid;
	uint32_t uidvalidity;
	uint32_t uid;
	/* NULL when not applicable or unknown. */
	const char *message_guid;
	/* Flags after the change (SAVE, COPY, FLAGS); MAIL_RECENT never. */
	enum mail_flags flags;
	/* Keywords after the change (SAVE, COPY, KEYWORDS), space separated;
	   NULL when not applicable. */
	const char *keywords;
	/* Mailbox name (UTF-8 vname) for mailbox entries; reason for GAP. */
	const char *name;
	const char *old_name;
	/* Service that made the change (imap, lmtp, doveadm, ...). */
	const char *service;
	/* The mailbox index's highest modseq right after the commit that
	   made the change (0 if unknown). */
	uint64_t modseq;
};

/* What the journal knows of one mailbox. */
struct mailbox_migrate_journal_mailbox {
	const char *guid;
	const char *name;
	uint32_t uidvalidity;
	/* The mailbox index's highest modseq right after the last commit the
	   journal recorded, and the journal's first seq at that modseq. A
	   change the index shows above witness_modseq must have an entry
	   after witness_seq, or up to it from a concurrent commit the index
	   made after witness_modseq (for an expunge, any entry). */
	uint64_t witness_modseq;
	uint64_t witness_seq;
	/* Lost commits (counted in the mailbox index) made good so far. */
	uint32_t lost_acked;
	bool deleted;
};

enum mailbox_migrate_journal_index_check {
	/* The index shows no change after the journal's witness. */
	MAILBOX_MIGRATE_JOURNAL_INDEX_COMPLETE,
	/* The index shows changes the journal can't have seen. */
	MAILBOX_MIGRATE_JOURNAL_INDEX_INCOMPLETE,
	/* The index has changes above the witness: each must be checked
	   against the journal (mailbox_migrate_journal_verify_mailbox()). */
	MAILBOX_MIGRATE_JOURNAL_INDEX_CHECK_CHANGES,
};

struct mailbox_migrate_journal_range {
	/* 0 when there are no entries. */
	uint64_t first_seq, last_seq;
	uint64_t entries;
};

struct mailbox_migrate_journal_completeness {
	/* 0 when the journal is complete. Otherwise a reader whose
	   checkpoint (last seq taken) is below this must compare in full. */
	uint64_t incomplete_since;
	/* Why, when incomplete. */
	const char *reason;
};

const char *
mailbox_migrate_journal_type_name(enum mailbox_migrate_journal_type type);
/* Returns TRUE and the type if name is a known type name. */
bool mailbox_migrate_journal_type_parse(const char *name,
					enum mailbox_migrate_journal_type *type_r);

/* A gap entry (see MAILBOX_MIGRATE_JOURNAL_TYPE_GAP) saying why. */
void mailbox_migrate_journal_gap_init(
	struct mailbox_migrate_journal_entry *entry, time_t now,
	const char *reason, const char *service);
/* Add an entry. Must be called inside a db write transaction. Sets
   entry->seq. */
int mailbox_migrate_journal_append(struct mailbox_migrate_db *db,
				   struct mailbox_migrate_journal_entry *entry,
				   const char **error_r);
/* Record what the journal knows of a mailbox: name ("" keeps the known
   one), uidvalidity (0 keeps the known one) and the witness modseq, which
   is only ever raised; when it is, witness_seq (the last seq written) is
   stored with it. Clears the deleted mark. */
int mailbox_migrate_journal_update_mailbox(struct mailbox_migrate_db *db,
					   const char *mailbox_guid,
					   const char *name,
					   uint32_t uidvalidity,
					   uint64_t witness_modseq,
					   uint64_t witness_seq,
					   const char **error_r);
int mailbox_migrate_journal_mark_deleted(struct mailbox_migrate_db *db,
					 const char *mailbox_guid,
					 const char **error_r);
/* Returns 1 and the mailbox if the journal knows it, 0 if not, -1 on
   error; the witness is the higher of the mailbox record's and its
   entries'. Strings are allocated from the data stack. */
int mailbox_migrate_journal_get_mailbox(struct mailbox_migrate_db *db,
				const char *mailbox_guid,
				struct mailbox_migrate_journal_mailbox *mbox_r,
				const char **error_r);

/* Drop entries that every registered destination has taken, and beyond
   max_entries the oldest ones anyway (then the journal reports itself
   incomplete since the cut). Must be called in a write transaction. */
int mailbox_migrate_journal_prune(struct mailbox_migrate_db *db,
				  unsigned int max_entries,
				  const char **error_r);
/* TRUE if a writer that took the journal from first_seq to last_seq should
   call prune. */
bool mailbox_migrate_journal_prune_due_between(uint64_t first_seq,
					       uint64_t last_seq,
					       unsigned int max_entries);

/* Range of the entries of one mailbox (mailbox_guid != NULL), or of all. */
int mailbox_migrate_journal_get_range(struct mailbox_migrate_db *db,
				      const char *mailbox_guid,
				      struct mailbox_migrate_journal_range *range_r,
				      const char **error_r);
/* Number of entries (of all mailboxes) after seq. */
int mailbox_migrate_journal_count_after(struct mailbox_migrate_db *db,
					uint64_t seq, uint64_t *count_r,
					const char **error_r);
/* Highest seq ever given (pruned or not), 0 if none. */
int mailbox_migrate_journal_get_last_seq(struct mailbox_migrate_db *db,
					 uint64_t *seq_r, const char **error_r);

/* Completeness of the journal as a whole: gap entries and lossy pruning. */
int mailbox_migrate_journal_check(struct mailbox_migrate_db *db,
			struct mailbox_migrate_journal_completeness *result_r,
			const char **error_r);
/* Compare what the journal knows of a mailbox (known, NULL if nothing)
   with the index's current UIDVALIDITY and highest modseq after a sync.
   Sets *reason_r when it returns INCOMPLETE. Pure function. */
enum mailbox_migrate_journal_index_check
mailbox_migrate_journal_check_index(
	const struct mailbox_migrate_journal_mailbox *known,
	uint32_t index_uidvalidity, uint64_t index_highest_modseq,
	const char **reason_r);
/* Mark *result incomplete for every reader (since last_seq+1) for reason,
   unless it already is so since later. */
void mailbox_migrate_journal_set_incomplete(
	struct mailbox_migrate_journal_completeness *result,
	uint64_t last_seq, const char *reason);
/* Returns 1 if the journal has an expunge of uid in the mailbox, 0 if
   not, -1 on error. */
int mailbox_migrate_journal_has_expunge(struct mailbox_migrate_db *db,
					const char *mailbox_guid,
					uint32_t uidvalidity, uint32_t uid,
					const char **error_r);
/* Add to uids every UID of the mailbox that has a save, copy, flag or
   keyword change written after seq (one read of those entries, not of
   the journal before them). Returns 0, or -1 on error. */
int mailbox_migrate_journal_get_changed_uids(struct mailbox_migrate_db *db,
					     const char *mailbox_guid,
					     uint32_t uidvalidity, uint64_t seq,
					     ARRAY_TYPE(seq_range) *uids,
					     const char **error_r);
/* Add to uids every UID of the mailbox that has such an entry up to seq
   whose commit the index made after modseq: a concurrent commit journaled
   before the one that recorded the witness (seq, modseq). Reads the
   journal up to seq. Returns 0, or -1 on error. */
int mailbox_migrate_journal_get_changed_uids_upto(struct mailbox_migrate_db *db,
					const char *mailbox_guid,
					uint32_t uidvalidity, uint64_t seq,
					uint64_t modseq,
					ARRAY_TYPE(seq_range) *uids,
					const char **error_r);

/* A UID and the highest modseq of its save, copy, flag and keyword
   entries (0: entries of a commit whose modseq wasn't known). */
struct mailbox_migrate_journal_uid_modseq {
	uint32_t uid;
	uint64_t modseq;
};
ARRAY_DEFINE_TYPE(mailbox_migrate_journal_uid_modseq,
		  struct mailbox_migrate_journal_uid_modseq);

/* Fill uids, sorted by UID, with every UID of the mailbox that has a
   save, copy, flag or keyword entry after seq and up to last_seq, and the
   highest modseq of those entries. Reads the journal after seq. Returns
   0, or -1 on error. */
int mailbox_migrate_journal_get_uid_modseqs(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t uidvalidity, uint64_t seq,
		uint64_t last_seq,
		ARRAY_TYPE(mailbox_migrate_journal_uid_modseq) *uids,
		const char **error_r);
/* The modseq of the oldest commit whose entries the journal still holds
   of the mailbox (0: none). Reads the whole journal. */
int mailbox_migrate_journal_get_first_modseq(struct mailbox_migrate_db *db,
		const char *mailbox_guid, uint32_t uidvalidity,
		uint64_t *modseq_r, const char **error_r);

/* Where the journal command last proved a mailbox complete: every change
   the index showed up to modseq had its entry, and an entry of a commit
   made after modseq lies after seq (seq was read before modseq). */
struct mailbox_migrate_journal_proof {
	uint32_t uidvalidity;
	uint64_t modseq;
	uint64_t seq;
	/* The mailbox's UIDs at modseq as an IMAP sequence set ("" for
	   none), or NULL if not known. */
	const char *uids;
};
/* Returns 1 and the proof, 0 if the mailbox has none, -1 on error. */
int mailbox_migrate_journal_get_proof(struct mailbox_migrate_db *db,
		const char *mailbox_guid,
		struct mailbox_migrate_journal_proof *proof_r,
		const char **error_r);
int mailbox_migrate_journal_set_proof(struct mailbox_migrate_db *db,
		const char *mailbox_guid,
		const struct mailbox_migrate_journal_proof *proof,
		const char **error_r);

/* Iterate entries with seq > since_seq, of one mailbox (plus the GAP
   entries, which concern every mailbox) or of all (mailbox_guid NULL).
   Entry strings stay valid until the next call. */
struct mailbox_migrate_journal_iter *
mailbox_migrate_journal_iter_init(struct mailbox_migrate_db *db,
				  uint64_t since_seq, const char *mailbox_guid);
bool mailbox_migrate_journal_iter_next(struct mailbox_migrate_journal_iter *iter,
			const struct mailbox_migrate_journal_entry **entry_r);
int mailbox_migrate_journal_iter_deinit(
	struct mailbox_migrate_journal_iter **iter, const char **error_r);

/* Keywords as the space separated string stored in the journal. */
const char *
mailbox_migrate_journal_keywords_join(const char *const *keywords);

#endif
