#ifndef MAILBOX_MIGRATE_SEEN_H
#define MAILBOX_MIGRATE_SEEN_H

struct mailbox_migrate_db;

/* The seen UIDNEXT: per mailbox GUID and UIDVALIDITY, the highest UIDNEXT
   an IMAP or POP3 client has been shown. It only ever rises; a new
   UIDVALIDITY starts a new record. */

struct mailbox_migrate_seen_record {
	uint32_t seen_uidnext;
	time_t seen_at;
	/* Service that last raised it: "imap" or "pop3". */
	const char *seen_by;
};

/* Returns 1 and the record if there is one, 0 if not, -1 on error.
   seen_by is allocated from the data stack. */
int mailbox_migrate_seen_get(struct mailbox_migrate_db *db,
			     const char *mailbox_guid, uint32_t uidvalidity,
			     struct mailbox_migrate_seen_record *record_r,
			     const char **error_r);
/* Raise the seen UIDNEXT to uidnext unless it is already at least that.
   Returns 1 if raised, 0 if not, -1 on error. One small write at most. */
int mailbox_migrate_seen_raise(struct mailbox_migrate_db *db,
			       const char *mailbox_guid, uint32_t uidvalidity,
			       uint32_t uidnext, time_t now,
			       const char *service, const char **error_r);

#endif
