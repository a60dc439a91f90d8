#ifndef DOVEADM_MAILBOX_MIGRATE_PASS_H
#define DOVEADM_MAILBOX_MIGRATE_PASS_H

struct mail_user;
struct mailbox_migrate_db;
struct mailbox_migrate_backup_store;

/* One pass of a user's mail from the source (the user's own mail
   location) to a destination mail location: the pass engine shared by
   migration and the cutover.

   The first pass, --full, and any pass whose journal can't prove that it
   holds every change since the destination's checkpoint compare the two
   sides' indexes mailbox by mailbox; the others read the journal from the
   checkpoint and touch only the mailboxes and messages it names. Either
   way the pass merges: what the destination got on its own (mail, flag
   changes, mailboxes) is kept, and a message keeps its UID unless the UID
   rule (SPEC, "The cutover") says it must move to the top. */

struct mailbox_migrate_pass_counts {
	unsigned int copied;
	unsigned int expunged;
	unsigned int flag_changes;
	unsigned int reassigned;
};

struct mailbox_migrate_pass_settings {
	/* The destination's expanded location; names its checkpoint. */
	const char *dest_name;
	/* A backup store instead of a mail location (dst_user is then
	   NULL): the pass appends to it. */
	struct mailbox_migrate_backup_store *backup;
	/* Or a backup store opened only when the pass first needs it (a
	   pass with nothing to bring doesn't touch it). Returns 0 and the
	   store, or -1 with *error_r. */
	int (*backup_open)(void *context,
			   struct mailbox_migrate_backup_store **store_r,
			   const char **error_r);
	/* Mailbox name patterns (-m); NULL or empty means all. A pass
	   limited to some mailboxes doesn't move the checkpoint. */
	const char *const *mailbox_patterns;
	/* Compare in full even if the journal is complete, saying why
	   (full_reason; NULL: "--full"). */
	bool full;
	const char *full_reason;
	/* Decide and count, write nothing. */
	bool dry_run;
	/* The destination doesn't exist yet: a dry run must not open it
	   (that would create INBOX there). */
	bool dest_missing;
	/* The destination was written without fsyncs: sync its filesystem
	   before the checkpoint records the pass. */
	bool sync_destination;
	/* With sync_destination, for a pass that wrote to the destination:
	   neither sync nor record it, but leave result_r->record (allocated
	   from record_pool) to the caller, who makes the destination durable
	   (one syncfs() for several users' passes) and then writes it with
	   mailbox_migrate_pass_record_write(). */
	bool defer_record;
	pool_t record_pool;
	/* Nothing writes to the source any more (cutover final pass): the
	   pass may record that it has every source UID below UIDNEXT. */
	bool source_quiet;

	/* The destination's state file, for the seen UIDNEXT its clients
	   were shown: asked for only when a mailbox needs it. Returns 0 and
	   the file (NULL if there is none), or -1 if it can't be read. */
	int (*get_dst_db)(void *context, struct mailbox_migrate_db **db_r);

	/* Called now and then while the pass runs (after each mailbox and
	   each copied message), for work of the caller's own that must not
	   wait for the whole pass. */
	void (*tick)(void *context);
	/* A pass running longer than this prints how far it got on stderr,
	   and again at this interval; 0: never. */
	unsigned int progress_interval_msecs;
	/* Called for each mailbox the pass touched. */
	void (*mailbox_done)(void *context, const char *vname,
			     const struct mailbox_migrate_pass_counts *counts,
			     double secs);
	void *context;
};

struct mailbox_migrate_pass_result {
	struct mailbox_migrate_pass_counts total;
	unsigned int mailboxes_touched;
	unsigned int mailboxes_failed;
	/* Journal pass: mailboxes without journal entries that the mailbox
	   list index showed unchanged (not opened). */
	unsigned int mailboxes_unchanged;
	/* The pass compared in full, and why. */
	bool full;
	const char *full_reason;
	/* Journal seq the destination has now taken. */
	uint64_t checkpoint_seq;
	/* set->defer_record: what is still to be recorded, or NULL if the
	   pass recorded itself (it wrote nothing to sync) */
	struct mailbox_migrate_pass_record *record;
};

/* Run one pass from src_user to dst_user (the same account opened on the
   destination location, with dsyncing set so that the mail plugin does not
   journal the pass' own writes), or to set->backup. db is the source's
   state file opened for writing.
   Returns 0 if every selected mailbox was brought over, -1 if something
   failed: then *error_r says what and *mail_error_r its kind, the
   checkpoint is not moved, and a rerun converges. */
int mailbox_migrate_pass_run(struct mail_user *src_user,
			     struct mail_user *dst_user,
			     struct mailbox_migrate_db *db,
			     const struct mailbox_migrate_pass_settings *set,
			     struct mailbox_migrate_pass_result *result_r,
			     enum mail_error *mail_error_r,
			     const char **error_r);

/* Record a deferred pass (set->defer_record) in db, the state file it ran
   with: its mailboxes' records and, if the whole pass succeeded, the new
   checkpoint (then *checkpoint_seq_r). Call only once what the pass wrote
   is durable. Returns 0 or -1. */
int mailbox_migrate_pass_record_write(struct mailbox_migrate_db *db,
			const struct mailbox_migrate_pass_record *record,
			uint64_t *checkpoint_seq_r, const char **error_r);

/* The directories whose filesystems hold the user's mail and indexes. */
void mailbox_migrate_user_mail_roots(struct mail_user *user,
				     const char **mail_root_r,
				     const char **index_root_r);
/* One syncfs() per filesystem of the paths (NULL-terminated; a missing
   path is skipped): what was written with mail_fsync=never becomes
   durable. Returns 0 or -1. */
int mailbox_migrate_sync_paths(const char *const *paths,
			       const char **error_r);
/* mailbox_migrate_sync_paths() of the user's mail and index roots. */
int mailbox_migrate_sync_user_mail(struct mail_user *user,
				   const char **error_r);

/* Raise every destination mailbox's UIDNEXT to at least the source's
   current UIDNEXT (and its seen UIDNEXT when with_seen), and record the
   value as the mailbox's raised_uidnext when record_raise. Returns 0 or
   -1 with *error_r set. */
int mailbox_migrate_pass_raise_uidnext(struct mail_user *src_user,
				       struct mail_user *dst_user,
				       struct mailbox_migrate_db *db,
				       const char *dest_name, bool with_seen,
				       bool record_raise,
				       const char **error_r);

#endif
