#ifndef MAILBOX_MIGRATE_BACKUP_RECORD_H
#define MAILBOX_MIGRATE_BACKUP_RECORD_H

#include "mail-types.h"

/* A backup pass' state record: the data file entry "p/<pass>.txt" that
   says what the pass changed, one line per change, tab-separated fields
   (tab-escaped). Replaying every record in order gives the store's index,
   so that the index can be rebuilt from the data file alone.

     pass     <id> <time>                  first line of a pass' record
     snapshot <id> <time>                  first line of a compacted
                                           store's record: the lines that
                                           follow replace all history
     passinfo <id> <time>                  (snapshot) an earlier pass
     mailbox  <guid> <uidvalidity> <name>  the mailbox exists with this
                                           name (new, renamed, or a new
                                           UIDVALIDITY: its old messages
                                           are gone)
     delete   <guid>                       the mailbox was deleted
     add      <mailbox-guid> <uid> <guid> <sha256> <size> <flags>
              <keywords> <received> <saved> <pop3-uidl> <pop3-order>
     flags    <mailbox-guid> <uid> <flags> <keywords>
     expunge  <mailbox-guid> <uid>
     subscribe   <name>                    the name is subscribed (it may
                                           name no mailbox)
     unsubscribe <name>                    it is not any more
     specialuse  <mailbox-guid> <flags>    the mailbox's special-use flags
                                           (space-separated; empty: none)

   In a snapshot, mailbox, add, subscribe and specialuse lines carry two
   more fields: the pass that made the row and the pass that ended it
   (0: still current).
   flags is the number of enum mail_flags (without \Recent), keywords are
   joined by spaces. */

enum mailbox_migrate_backup_line_type {
	MAILBOX_MIGRATE_BACKUP_LINE_PASS = 0,
	MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT,
	MAILBOX_MIGRATE_BACKUP_LINE_PASSINFO,
	MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX,
	MAILBOX_MIGRATE_BACKUP_LINE_DELETE,
	MAILBOX_MIGRATE_BACKUP_LINE_ADD,
	MAILBOX_MIGRATE_BACKUP_LINE_FLAGS,
	MAILBOX_MIGRATE_BACKUP_LINE_EXPUNGE,
	MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE,
	MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE,
	MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE,

	MAILBOX_MIGRATE_BACKUP_LINE_COUNT
};

struct mailbox_migrate_backup_line {
	enum mailbox_migrate_backup_line_type type;

	/* pass, snapshot, passinfo */
	uint32_t pass_id;
	time_t time;

	/* mailbox, delete, specialuse; the message's mailbox for add, flags,
	   expunge */
	const char *mailbox_guid;
	uint32_t uidvalidity;
	/* mailbox; the subscribed name for subscribe, unsubscribe */
	const char *name;
	/* specialuse: never NULL there */
	const char *special_use;

	/* add, flags, expunge */
	uint32_t uid;
	const char *guid;
	const char *hash;
	uoff_t size;
	enum mail_flags flags;
	/* NULL-terminated, never NULL for add and flags */
	const char *const *keywords;
	time_t received, saved;
	const char *pop3_uidl;
	uint32_t pop3_order;

	/* snapshot rows (mailbox, add, subscribe, specialuse): made by /
	   ended by (0: current) */
	uint32_t from_pass, until_pass;
	bool snapshot_row;
};

/* Append line (with its LF) to dest. */
void mailbox_migrate_backup_line_write(string_t *dest,
				       const struct mailbox_migrate_backup_line *line);
/* Parse one line (without LF). Strings are allocated from the data stack.
   Returns 0, or -1 with *error_r if the line is malformed. */
int mailbox_migrate_backup_line_parse(const char *text,
				      struct mailbox_migrate_backup_line *line_r,
				      const char **error_r);

/* Is hash a SHA-256 as the store names bodies (64 lowercase hex)? */
bool mailbox_migrate_backup_hash_is_valid(const char *hash);

#endif
