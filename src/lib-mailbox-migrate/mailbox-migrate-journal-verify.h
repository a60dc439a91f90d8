#ifndef MAILBOX_MIGRATE_JOURNAL_VERIFY_H
#define MAILBOX_MIGRATE_JOURNAL_VERIFY_H

#include "mailbox-migrate-journal.h"

struct mailbox;

/* Prove, against the mailbox's index, that the journal holds every change
   of the mailbox: every change the index shows since the start of the
   proof (expunges since then, mail with a higher modseq) must have its
   journal entry, one from a commit that left the index at or above the
   mail's modseq. The proof starts from the newest of the last proof
   recorded (see mailbox_migrate_journal_set_proof()) and the registered
   destinations' last passes, or from the journal's first commit of the
   mailbox. Where it can't (the index no longer tells the expunges since,
   the entries since were pruned) it starts from the journal's own
   witness, which a journaled commit raises past a change made just before
   it without the plugin. Every change since each registered destination's
   last pass must have its entry too. db may be NULL (no state file). The
   mailbox must be synced first, and last_seq read before that; only the
   index is read, no message file. *result starts as the journal-wide
   completeness and is made incomplete since last_seq+1 when the proof
   fails. *proof_r is what to record for the next proof to start from
   (modseq 0: nothing new). Returns 0, or -1 on a storage or state file
   error. */
int mailbox_migrate_journal_verify_mailbox(struct mailbox_migrate_db *db,
		struct mailbox *box, const char *mailbox_guid,
		uint64_t last_seq,
		struct mailbox_migrate_journal_completeness *result,
		struct mailbox_migrate_journal_proof *proof_r,
		const char **error_r);

/* The same proof for one reader (a destination): every change the index
   shows above since_modseq (the mailbox's highest modseq when the reader
   last had it all) must have a journal entry after since_seq (the reader's
   checkpoint); no more lost commits than lost_acked; the same
   UIDVALIDITY. Index only, no message file. Returns 1 if proven, 0 if not
   (*reason_r says why), -1 on error. */
int mailbox_migrate_journal_verify_since(struct mailbox_migrate_db *db,
		struct mailbox *box, const char *mailbox_guid,
		uint32_t uidvalidity, uint64_t since_modseq,
		uint64_t since_seq, uint32_t lost_acked,
		const char **reason_r, const char **error_r);

#endif
