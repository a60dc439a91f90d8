/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "restrict-access.h"
#include "program-client.h"
#include "mail-user.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal.h"
#include "mailbox-migrate-journal-log.h"
#include "mailbox-migrate-destination.h"
#include "mailbox-migrate-plugin.h"

/* The IMAP/POP3 client is already disconnected when the user is deinited,
   so the hand-over never delays its logout; still, a service that does not
   accept at once is given up on quickly. */
#define MAILBOX_MIGRATE_LOGOUT_CONNECT_TIMEOUT_MSECS 1000

/* Returns the name of the first configured destination that has journal
   entries it hasn't taken, or NULL if none has. Only routine destinations
   count (mailbox_migrate_destination_is_routine()); the rest are the
   administrator's. */
static const char *
mailbox_migrate_logout_find_behind(struct mailbox_migrate_user *muser,
				   uint64_t *behind_r)
{
	struct mail_user *user = muser->user;
	struct mailbox_migrate_destination dest;
	const char *const *destp, *name, *error, *reason;
	uint64_t last_seq;
	bool unfolded;
	int ret;

	if (mailbox_migrate_user_open_db(muser) < 0)
		return NULL;
	if (mailbox_migrate_journal_get_last_seq(muser->db, &last_seq,
						 &error) < 0) {
		e_error(muser->event, "Logout hook: %s", error);
		return NULL;
	}
	/* entries the session's fold couldn't take (another process held
	   the log or the state file): every destination is behind them */
	ret = mailbox_migrate_journal_log_need_fold(muser->db, &error);
	if (ret < 0) {
		e_error(muser->event, "Logout hook: %s", error);
		return NULL;
	}
	unfolded = ret > 0;
	for (destp = muser->set->destinations; *destp != NULL; destp++) {
		if (mailbox_migrate_settings_destination_name(user, *destp,
					&name, &error) < 0) {
			e_error(muser->event, "Logout hook: %s", error);
			continue;
		}
		ret = mailbox_migrate_destination_get(muser->db, name, &dest,
						      &error);
		if (ret < 0) {
			e_error(muser->event, "Logout hook: %s", error);
			continue;
		}
		if (ret == 0) {
			e_debug(muser->event, "Logout hook: no pass to %s yet",
				name);
			continue;
		}
		if (!mailbox_migrate_destination_is_routine(&dest, &reason)) {
			e_debug(muser->event, "Logout hook: %s skipped: %s",
				name, reason);
			continue;
		}
		if (last_seq > dest.checkpoint_seq || unfolded) {
			*behind_r = last_seq - dest.checkpoint_seq;
			return name;
		}
	}
	return NULL;
}

static void
mailbox_migrate_logout_hand_over(struct mailbox_migrate_user *muser,
				 const char *dest_name, uint64_t behind)
{
	struct mail_user *user = muser->user;
	struct program_client_settings set = {
		.client_connect_timeout_msecs =
			MAILBOX_MIGRATE_LOGOUT_CONNECT_TIMEOUT_MSECS,
		.debug = user->mail_debug,
		.event = muser->event,
	};
	struct program_client *pc;
	const char *socket_path = muser->set->logout_socket;
	/* doveadm mailbox-migrate as the service runs it gets these after
	   its own arguments; the destinations are taken from the user's
	   settings there, not from this (less trusted) process */
	const char *const args[] = { "-u", user->username, "--logout", NULL };
	int ret;

	restrict_access_init(&set.restrict_set);
	if (socket_path[0] != '/') {
		socket_path = t_strconcat(user->set->base_dir, "/",
					  socket_path, NULL);
	}
	e_debug(muser->event, "Logout hook: %s is at least %"PRIu64
		" journal entries behind, handing the user to %s", dest_name,
		behind, socket_path);
	pc = program_client_unix_create(socket_path, args, &set, TRUE);
	ret = program_client_run(pc);
	program_client_destroy(&pc);
	if (ret != PROGRAM_CLIENT_EXIT_STATUS_SUCCESS) {
		e_error(muser->event, "Logout hook: can't hand the user to "
			"the pass service at %s (is service "
			"mailbox-migrate-logout configured?); %s stays at "
			"least %"PRIu64" journal entries behind until the "
			"next pass",
			socket_path, dest_name, behind);
	}
}

bool mailbox_migrate_logout_wanted(struct mailbox_migrate_user *muser)
{
	/* track_seen: an IMAP or POP3 session, the only logouts */
	return muser->set->on_logout && muser->track_seen &&
		muser->set->destinations[0] != NULL;
}

void mailbox_migrate_logout(struct mailbox_migrate_user *muser)
{
	const char *dest_name;
	uint64_t behind;

	if (!mailbox_migrate_logout_wanted(muser))
		return;
	T_BEGIN {
		dest_name = mailbox_migrate_logout_find_behind(muser, &behind);
		if (dest_name != NULL)
			mailbox_migrate_logout_hand_over(muser, dest_name,
							 behind);
	} T_END;
}
