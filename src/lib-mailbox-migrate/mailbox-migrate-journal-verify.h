#ifndef MAILBOX_MIGRATE_JOURNAL_VERIFY_H
#define MAILBOX_MIGRATE_JOURNAL_VERIFY_H

#include "mailbox-migrate-journal.h"

struct mailbox;

/* Prove, against the mailbox's index, that the journal holds every change
   of the mailbox: every change the index shows above the journal's
   witness modseq (mail with a higher modseq, expunges since then) must
   have its journal entry. db may be NULL (no state file). The mailbox must
   be synced first; only the index is read, no message file. *result starts
   as the journal-wide completeness and is made incomplete since
   last_seq+1 when the proof fails. Returns 0, or -1 on a storage or state
   file error. */
int mailbox_migrate_journal_verify_mailbox(struct mailbox_migrate_db *db,
		struct mailbox *box, const char *mailbox_guid,
		uint64_t last_seq,
		struct mailbox_migrate_journal_completeness *result,
		const char **error_r);

#endif
