#ifndef MAILBOX_MIGRATE_HOLD_H
#define MAILBOX_MIGRATE_HOLD_H

struct mail_user;

/* The cutover's hold: while a user's final pass runs, a small file in the
   destination's INBOX index directory tells the plugin there to hold the
   user's new IMAP and POP3 sessions (a bounded wait) rather than show them
   a half-copied store. It names the time after which it no longer holds
   anything, so a cutover that died can't lock a user out. */

#define MAILBOX_MIGRATE_HOLD_FILE_NAME "mailbox-migrate.hold"

/* Path of the hold file of the user's mail location (its INBOX index
   directory). Returns 0, or -1 if the location has none. */
int mailbox_migrate_hold_get_path(struct mail_user *user, const char **path_r,
				  const char **error_r);
/* Create or replace the hold file, holding until `until`. */
int mailbox_migrate_hold_set(const char *path, time_t until,
			     const char **error_r);
/* Remove the hold file; a missing one is fine. */
int mailbox_migrate_hold_clear(const char *path, const char **error_r);
/* Returns the time the hold file holds until, 0 if there is none (or it
   can't be read). A single failed open() when there is none. */
time_t mailbox_migrate_hold_get(const char *path);

#endif
