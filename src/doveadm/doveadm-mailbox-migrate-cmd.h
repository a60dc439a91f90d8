#ifndef DOVEADM_MAILBOX_MIGRATE_CMD_H
#define DOVEADM_MAILBOX_MIGRATE_CMD_H

#include "doveadm-mail.h"

struct mailbox_migrate_db;
struct mailbox_migrate_settings;

/* Base context of every doveadm mailbox-migrate command. */
struct mailbox_migrate_cmd_context {
	struct doveadm_mail_cmd_context ctx;

	/* Set for the current user by mailbox_migrate_cmd_open_state(). */
	const struct mailbox_migrate_settings *set;
	/* The user's state file opened read-only; NULL when it doesn't
	   exist yet. */
	struct mailbox_migrate_db *db;

	bool userdb_list_checked:1;
};

/* Allocates a command context whose -A/-F iteration is
   mailbox_migrate_cmd_get_next_user(). */
#define mailbox_migrate_cmd_alloc(type) \
	(type *)mailbox_migrate_cmd_alloc_size(sizeof(type))
struct doveadm_mail_cmd_context *mailbox_migrate_cmd_alloc_size(size_t size);

/* With -A or -F, once: checks that the auth service's userdb socket can
   be reached, and if not exits with EX_TEMPFAIL and one clear line.
   doveadm opens a userdb list for both, and Dovecot 2.3's auth-master
   asserts (a panic and a core dump) when deinitializing a list whose
   connection failed; every user lookup would fail as well. */
void
mailbox_migrate_cmd_check_userdb_list(struct doveadm_mail_cmd_context *ctx);
/* The next user of -A (the userdb list) or -F (the file), checked first as
   above, as doveadm's own iteration gives them: returns 1 and the name, 0
   at the end, -1 on a read error of the file (logged). */
int mailbox_migrate_cmd_get_next_user(struct doveadm_mail_cmd_context *ctx,
				      const char **username_r);

/* Read the user's settings and open the state file read-only. Returns 0
   if ok (ctx->db may be NULL: no state yet), -1 after logging the error
   and setting the exit code. */
int mailbox_migrate_cmd_open_state(struct mailbox_migrate_cmd_context *ctx,
				   struct mail_user *user);
/* Fold into the state file what the user's sessions have appended to its
   journal log since it was opened, and reopen it (read-only) to see it.
   Returns 1 if it was reopened so, 0 if there was nothing to fold, -1 on
   error (logged, exit code set; ctx->db may then be NULL). */
int mailbox_migrate_cmd_refold_state(struct mailbox_migrate_cmd_context *ctx,
				     struct mail_user *user);
void mailbox_migrate_cmd_close_state(struct mailbox_migrate_cmd_context *ctx);

/* Calls callback for each selectable mailbox of the user matching the
   patterns (all when patterns is empty). A pattern without wildcards that
   matches no mailbox is an error: logged, exit code "not found". Returns
   0 if ok, -1 if something failed (exit code set). */
typedef int mailbox_migrate_cmd_mailbox_callback_t(
	struct mailbox_migrate_cmd_context *ctx, struct mailbox *box);
int mailbox_migrate_cmd_mailboxes_foreach(
	struct mailbox_migrate_cmd_context *ctx, struct mail_user *user,
	const char *const *patterns,
	mailbox_migrate_cmd_mailbox_callback_t *callback);

/* Time as printed by the commands: ISO 8601 in UTC, "" for 0. */
const char *mailbox_migrate_cmd_time(time_t t);

/* A destination with %u, %n, %d, %h, ... expanded for the user as
   mail_location is; NULL after logging an error. */
const char *mailbox_migrate_cmd_expand(struct mail_user *user,
				       const char *location);

/* The directory of a backup:... destination for the user (expanded, ~
   as the user's home); NULL after logging an error. */
const char *mailbox_migrate_cmd_backup_dir(struct mail_user *user,
					   const char *destination);

extern struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate;
extern struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_status;
extern struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_seen;
extern struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_journal;
extern struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_restore;
extern struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_verify;
extern struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_compact;
extern struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_reindex;

#endif
