#ifndef MAILBOX_MIGRATE_SETTINGS_H
#define MAILBOX_MIGRATE_SETTINGS_H

struct mail_user;

/* Name of the state file inside the user's index directory when
   mailbox_migrate_db is not set. */
#define MAILBOX_MIGRATE_DB_DEFAULT_NAME "mailbox-migrate.db"

#define MAILBOX_MIGRATE_DEFAULT_LOCK_TIMEOUT_MSECS (5 * 1000)
#define MAILBOX_MIGRATE_DEFAULT_CUTOVER_WAIT_SECS 30
#define MAILBOX_MIGRATE_DEFAULT_PROGRESS_INTERVAL_SECS 5
#define MAILBOX_MIGRATE_DEFAULT_JOURNAL_MAX_ENTRIES 500000
#define MAILBOX_MIGRATE_DEFAULT_BACKUP_DIRTY_PERCENT 20
#define MAILBOX_MIGRATE_DEFAULT_LOGOUT_SOCKET "mailbox-migrate-logout"

/* Every mailbox_migrate_* setting of one user, parsed once. This is the
   only place that knows the setting names. */
struct mailbox_migrate_settings {
	/* mailbox_migrate_destination, mailbox_migrate_destination2, ...:
	   destinations kept current by the logout hook. Never NULL. */
	const char *const *destinations;
	/* How long a writer waits for another process' lock on the state file
	   before it gives up (and marks the journal incomplete). */
	unsigned int lock_timeout_msecs;
	/* Journal entries kept at most; beyond this the oldest are dropped and
	   the journal reports itself incomplete since the drop. */
	unsigned int journal_max_entries;
	unsigned int cutover_wait_secs;
	/* A pass running longer than this says how far it got on stderr, and
	   again at this interval; 0: never. */
	unsigned int progress_interval_msecs;
	/* 0 means "number of CPUs". */
	unsigned int workers;
	const char *backup_compression;
	unsigned int backup_dirty_percent;

	/* The socket of the service that runs the logout hook's passes
	   (relative to base_dir unless absolute). */
	const char *logout_socket;

	bool on_logout;
	/* fsync the state file at every commit */
	bool db_fsync;
};

/* Read the user's settings into a struct allocated from user->pool.
   Returns 0 on success, -1 if a setting is invalid (error_r names the
   setting and its value). */
int mailbox_migrate_settings_read(struct mail_user *user,
				  const struct mailbox_migrate_settings **set_r,
				  const char **error_r);

/* Absolute path of the user's state file (journal, seen UIDNEXT,
   destination checkpoints): mailbox_migrate_db, or by default a file in
   the INBOX namespace's index directory. Needs the user's namespaces.
   Returns 0 on success, -1 if it can't be known. */
int mailbox_migrate_settings_get_db_path(struct mail_user *user,
					 const char **path_r,
					 const char **error_r);

/* str with %u, %n, %d, %h, ... expanded for the user as mail_location
   is. Returns 0, or -1 with error_r. The result is from the data stack. */
int mailbox_migrate_settings_expand(struct mail_user *user, const char *str,
				    const char **expanded_r,
				    const char **error_r);
/* The directory of a backup:... destination for the user: expanded, ~/ as
   the user's home, always absolute (else -1 with error_r). */
int mailbox_migrate_settings_backup_dir(struct mail_user *user,
					const char *destination,
					const char **dir_r,
					const char **error_r);
/* The name a destination is known by in the user's state file: the
   expanded mail location, or "backup:" and the backup directory. The
   plugin and doveadm both name destinations through this. */
int mailbox_migrate_settings_destination_name(struct mail_user *user,
					      const char *destination,
					      const char **name_r,
					      const char **error_r);

#endif
