/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "ioloop.h"
#include "time-util.h"
#include "mail-user.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-hold.h"
#include "mailbox-migrate-plugin.h"

#include <unistd.h>

/* how often a held session looks whether the final pass has ended */
#define MAILBOX_MIGRATE_HOLD_POLL_MSECS 100

void mailbox_migrate_session_hold(struct mailbox_migrate_user *muser)
{
	struct timeval start, now;
	const char *path, *error;
	time_t until, limit;
	bool logged = FALSE;

	if (!muser->track_seen || muser->user->dsyncing)
		return;
	if (mailbox_migrate_hold_get_path(muser->user, &path, &error) < 0)
		return;
	/* the wait is bounded twice: by the time the cutover wrote, and by
	   this side's mailbox_migrate_cutover_wait */
	i_gettimeofday(&start);
	limit = start.tv_sec + muser->set->cutover_wait_secs;
	while ((until = mailbox_migrate_hold_get(path)) != 0) {
		i_gettimeofday(&now);
		if (now.tv_sec >= until || now.tv_sec >= limit) {
			e_warning(muser->event, "Cutover final pass still "
				  "running after %lld ms: not holding the "
				  "session any longer",
				  (long long)timeval_diff_msecs(&now, &start));
			return;
		}
		if (!logged) {
			e_info(muser->event, "Holding the session while the "
			       "cutover's final pass runs");
			logged = TRUE;
		}
		usleep(MAILBOX_MIGRATE_HOLD_POLL_MSECS * 1000);
	}
	if (logged) {
		i_gettimeofday(&now);
		e_info(muser->event, "Session released after %lld ms",
		       (long long)timeval_diff_msecs(&now, &start));
	}
}
