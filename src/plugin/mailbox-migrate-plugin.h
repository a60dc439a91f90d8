#ifndef MAILBOX_MIGRATE_PLUGIN_H
#define MAILBOX_MIGRATE_PLUGIN_H

#include "module-context.h"
#include "hash.h"
#include "guid.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mailbox-migrate-db.h"

struct mailbox;
struct mailbox_migrate_db;
struct mailbox_migrate_settings;
struct mailbox_migrate_journal_entry;

#define MAILBOX_MIGRATE_CONTEXT(obj) \
	MODULE_CONTEXT(obj, mailbox_migrate_storage_module)
#define MAILBOX_MIGRATE_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, mailbox_migrate_storage_module)
#define MAILBOX_MIGRATE_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, mailbox_migrate_user_module)
#define MAILBOX_MIGRATE_USER_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, mailbox_migrate_user_module)

struct mailbox_migrate_mailbox_record {
	uint32_t uidvalidity;
	const char *name;
};

/* The seen cache's key, binary: every SELECT and every command's sync looks
   one up. */
struct mailbox_migrate_seen_key {
	guid_128_t guid;
	uint32_t uidvalidity;
};

struct mailbox_migrate_user {
	union mail_user_module_context module_ctx;
	struct mail_user *user;
	const struct mailbox_migrate_settings *set;
	struct event *event;

	/* State file path, known once the namespaces exist. */
	const char *db_path;
	/* Opened at the first write, closed at user deinit. */
	struct mailbox_migrate_db *db;
	/* The journal log, opened at the first append. */
	struct mailbox_migrate_journal_log *log;
	/* mailbox GUID and UIDVALIDITY -> highest seen UIDNEXT known to be
	   stored, so that a value is written only when it rises. */
	HASH_TABLE(struct mailbox_migrate_seen_key *, void *) seen_cache;
	/* mailbox GUID -> the state file's mailbox record as known to be
	   stored: commits write it only when it differs */
	HASH_TABLE(char *, struct mailbox_migrate_mailbox_record *) mailbox_cache;
	/* Set when a change could not be journaled: written as a gap entry
	   by the next write that succeeds. */
	const char *gap_reason;
	/* A cleared transaction pool, kept for the next transaction (a STORE
	   or an APPEND is one each): one allocation less per command. */
	pool_t txn_pool;

	/* IMAP or POP3 session: record what the client is shown. */
	bool track_seen:1;
	/* A state file failure was already logged in this session. */
	bool failure_logged:1;
	/* A fold failed in this session: not tried again inline (only by
	   the logout hook at its end). */
	bool fold_failed:1;
	bool fold_failure_logged:1;
};

struct mailbox_migrate_mailbox {
	union mailbox_module_context module_ctx;
	/* The mailbox GUID once looked up ("" before): every commit and
	   every seen check needs it. */
	char guid[GUID_128_SIZE * 2 + 1];
	guid_128_t guid_128;
	/* what this mailbox last noted as seen: the same again (every
	   command's sync) needs no further look */
	uint32_t seen_uidvalidity, seen_uidnext;
	/* The mail being saved and the GUID its save was given (none on
	   maildir): backends free the save data before notify reports the
	   save. */
	struct mail *saving_mail;
	char saving_guid[GUID_128_SIZE * 2 + 1];
};

extern MODULE_CONTEXT_DEFINE(mailbox_migrate_storage_module,
			     &mail_storage_module_register);
extern MODULE_CONTEXT_DEFINE(mailbox_migrate_user_module,
			     &mail_user_module_register);
extern const char *mailbox_migrate_plugin_dependencies[];
extern const char *mailbox_migrate_plugin_version;

void mailbox_migrate_plugin_init(struct module *module);
void mailbox_migrate_plugin_deinit(void);

/* Returns the user's context, or NULL when the plugin does nothing for
   this user (disabled, raw or shared user, or dsync/migrator writes). */
struct mailbox_migrate_user *
mailbox_migrate_user_get(struct mail_user *user);

/* Open the user's state file if it isn't yet (moving a corrupt one
   aside). Returns 0, or -1 after handling the failure as write_begin
   does. */
int mailbox_migrate_user_open_db(struct mailbox_migrate_user *muser);
/* Will mailbox_migrate_logout() look at the journal (the logout hook is
   on, with destinations, in an IMAP or POP3 session)? */
bool mailbox_migrate_logout_wanted(struct mailbox_migrate_user *muser);
/* At the end of an IMAP/POP3 session: when mailbox_migrate_on_logout is
   set and a configured destination has not taken every journal entry (or
   the journal log holds entries no fold took yet), hand the user to the
   logout pass service. Never fails the session; errors are logged. */
void mailbox_migrate_logout(struct mailbox_migrate_user *muser);
/* Start a write to the state file. Returns the db inside a write
   transaction, with any pending gap entry already written, or NULL after
   logging the failure (once per session) and remembering the gap. */
struct mailbox_migrate_db *
mailbox_migrate_user_write_begin(struct mailbox_migrate_user *muser);
/* Commit (success) or roll back the write. A failure is handled like in
   write_begin: logged once, journal marked incomplete. Returns 0 if the
   write was committed, -1 if not; never fails the caller's command. */
int mailbox_migrate_user_write_end(struct mailbox_migrate_user *muser,
				   bool success, const char *error);
/* An IMAP or POP3 session of a user whose cutover to this mail location is
   in its final pass waits (bounded by mailbox_migrate_cutover_wait) until
   the pass has ended. */
void mailbox_migrate_session_hold(struct mailbox_migrate_user *muser);
/* The journal entries of a commit to box were lost: count it in the
   mailbox's own index so readers know (errors are logged). */
void mailbox_migrate_mailbox_lost(struct mailbox_migrate_user *muser,
				  struct mailbox *box);
/* Add the mailbox record to buf (the caller's journal log append) unless
   this session already did with the same name and UIDVALIDITY. A witness
   (modseq, and the seq of the last entry before the record) always adds
   it. */
void mailbox_migrate_user_update_mailbox(struct mailbox_migrate_user *muser,
					 buffer_t *buf,
					 const char *mailbox_guid,
					 const char *name, uint32_t uidvalidity,
					 uint64_t witness_modseq,
					 bool witness_at_last_seq);
/* Start a journal log append: returns the buffer to add records to, with
   any pending gap entry already in it. */
buffer_t *mailbox_migrate_user_log_begin(struct mailbox_migrate_user *muser);
/* Append buf to the user's journal log with one write (nothing if it is
   empty). A failure is handled like a failed state file write. Returns 0,
   or -1 if the records were lost; never fails the caller's command. */
int mailbox_migrate_user_log_end(struct mailbox_migrate_user *muser,
				 buffer_t *buf);
/* Remember that changes were lost and log why (once per session). */
void mailbox_migrate_user_failed(struct mailbox_migrate_user *muser,
				 const char *reason, const char *error);

/* Mailbox GUID as 32 hex digits, or NULL if it can't be known. Looked up
   once per mailbox object. */
const char *mailbox_migrate_get_mailbox_guid(struct mailbox *box);
/* The same, binary. Returns FALSE if it can't be looked up. */
bool mailbox_migrate_get_mailbox_guid_128(struct mailbox *box,
					  guid_128_t guid_r);
/* Highest modseq of the mailbox's index as this process knows it, right
   after this process committed to it. 0 if unknown. */
uint64_t mailbox_migrate_get_index_modseq(struct mailbox *box);

/* The mailbox's UIDVALIDITY and highest modseq as its index has them now,
   also right after a change made outside any view (mailbox_update()).
   Returns 0, or -1 if the mailbox can't be opened. */
int mailbox_migrate_get_index_state(struct mailbox *box,
				    uint32_t *uidvalidity_r,
				    uint64_t *modseq_r);

/* State files kept open between the sessions of one process: take returns
   the open handle of path (and forgets it) or NULL; put keeps a handle
   (closing the least recently used beyond a few); deinit closes all. */
struct mailbox_migrate_db *
mailbox_migrate_db_cache_take(const char *path,
			      enum mailbox_migrate_db_open_flags flags);
void mailbox_migrate_db_cache_put(struct mailbox_migrate_db **db,
				  enum mailbox_migrate_db_open_flags flags);
void mailbox_migrate_db_cache_deinit(void);

/* TRUE if box is a maildir mailbox. */
bool mailbox_migrate_is_maildir(struct mailbox *box);
/* The GUID of a maildir message this process saved, right after the
   commit that gave it its UID (maildir can't tell it before: the name of
   the file is final only then). NULL if unknown. */
const char *mailbox_migrate_maildir_get_guid(struct mailbox *box,
					     uint32_t uid);
/* The GUID of an opened maildir mailbox from the header line of its
   dovecot-uidlist, if that gives one for the UIDVALIDITY of the mailbox's
   view. Asked for it, Dovecot reads the whole uidlist, a line per mail,
   once per opened mailbox: on a big maildir that made every SELECT cost
   milliseconds more. FALSE if the header gives none or can't be read, and
   if Dovecot has the uidlist in memory already: then ask Dovecot. */
bool mailbox_migrate_maildir_read_mailbox_guid(struct mailbox *box,
					       guid_128_t guid_r);

/* Notify callbacks turning changes into journal entries. */
extern const struct notify_vfuncs mailbox_migrate_notify_vfuncs;

void mailbox_migrate_mailbox_allocated(struct mailbox *box);

/* Seen-UIDNEXT tracking (IMAP and POP3 sessions): override v's status and
   sync vfuncs of a mailbox whose context is mbox. */
void mailbox_migrate_seen_hooks_init(struct mailbox_vfuncs *v);
/* The client may have been shown UIDs up to uidnext-1 of box: raise the
   seen UIDNEXT if it is below (one small write, only when it rises). */
void mailbox_migrate_seen_note(struct mailbox_migrate_user *muser,
			       struct mailbox *box, uint32_t uidvalidity,
			       uint32_t uidnext);
/* The same as a record added to buf, the caller's journal log append. */
void mailbox_migrate_seen_note_log(struct mailbox_migrate_user *muser,
				   buffer_t *buf, struct mailbox *box,
				   uint32_t uidvalidity, uint32_t uidnext);
#endif
