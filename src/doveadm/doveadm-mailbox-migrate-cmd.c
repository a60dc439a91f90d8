/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "str.h"
#include "net.h"
#include "istream.h"
#include "var-expand.h"
#include "auth-master.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mail-storage.h"
#include "mailbox-list-iter.h"
#include "mail-storage-service.h"
#include "doveadm-mail.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal-log.h"
#include "doveadm-mailbox-migrate-cmd.h"

#include <time.h>
#include <sysexits.h>

struct doveadm_mail_cmd_context *mailbox_migrate_cmd_alloc_size(size_t size)
{
	struct doveadm_mail_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc_size(size);
	ctx->v.get_next_user = mailbox_migrate_cmd_get_next_user;
	return ctx;
}

void
mailbox_migrate_cmd_check_userdb_list(struct doveadm_mail_cmd_context *ctx)
{
	struct mailbox_migrate_cmd_context *mctx =
		(struct mailbox_migrate_cmd_context *)ctx;
	struct auth_master_connection *conn;
	const char *path;
	int fd;

	/* -F too: doveadm opens the userdb list for it as well, unused */
	if (mctx->userdb_list_checked)
		return;
	mctx->userdb_list_checked = TRUE;

	conn = mail_storage_service_get_auth_conn(ctx->storage_service);
	path = auth_master_get_socket_path(conn);
	fd = net_connect_unix(path);
	if (fd != -1)
		i_close_fd(&fd);
	else if (errno != EAGAIN) {
		/* exits before doveadm deinitializes the failed list */
		i_fatal_status(EX_TEMPFAIL, "Can't reach the auth service "
			       "for the users: connect(%s) failed: %m "
			       "(is Dovecot running, with this base_dir?)",
			       path);
	}
}

int mailbox_migrate_cmd_get_next_user(struct doveadm_mail_cmd_context *ctx,
				      const char **username_r)
{
	mailbox_migrate_cmd_check_userdb_list(ctx);
	if (ctx->users_list_input == NULL)
		return mail_storage_service_all_next(ctx->storage_service,
						     username_r);
	*username_r = i_stream_read_next_line(ctx->users_list_input);
	if (ctx->users_list_input->stream_errno != 0) {
		i_error("read(%s) failed: %s",
			i_stream_get_name(ctx->users_list_input),
			i_stream_get_error(ctx->users_list_input));
		return -1;
	}
	return *username_r != NULL ? 1 : 0;
}

int mailbox_migrate_cmd_open_state(struct mailbox_migrate_cmd_context *ctx,
				   struct mail_user *user)
{
	enum mailbox_migrate_db_error code;
	const char *path, *error;

	if (mailbox_migrate_settings_read(user, &ctx->set, &error) < 0 ||
	    mailbox_migrate_settings_get_db_path(user, &path, &error) < 0) {
		i_error("%s", error);
		doveadm_mail_failed_error(&ctx->ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	if (mailbox_migrate_db_open(path,
				    MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY,
				    ctx->set->lock_timeout_msecs,
				    ctx->set->journal_max_entries,
				    &ctx->db, &code, &error) < 0) {
		i_error("Can't read state file of user %s: %s (%s)",
			user->username, error,
			mailbox_migrate_db_error_name(code));
		switch (code) {
		case MAILBOX_MIGRATE_DB_ERROR_LOCKED:
			doveadm_mail_failed_error(&ctx->ctx,
						  MAIL_ERROR_INUSE);
			break;
		case MAILBOX_MIGRATE_DB_ERROR_NOACCESS:
			doveadm_mail_failed_error(&ctx->ctx, MAIL_ERROR_PERM);
			break;
		default:
			doveadm_mail_failed_error(&ctx->ctx,
						  MAIL_ERROR_TEMP);
			break;
		}
		return -1;
	}
	return 0;
}

int mailbox_migrate_cmd_refold_state(struct mailbox_migrate_cmd_context *ctx,
				     struct mail_user *user)
{
	const char *path, *error;
	int ret;

	if (ctx->db != NULL) {
		ret = mailbox_migrate_journal_log_need_fold(ctx->db, &error);
		if (ret < 0) {
			i_error("Can't read the journal log of user %s: %s",
				user->username, error);
			doveadm_mail_failed_error(&ctx->ctx, MAIL_ERROR_TEMP);
			return -1;
		}
		if (ret == 0)
			return 0;
	} else if (mailbox_migrate_settings_get_db_path(user, &path,
							&error) < 0 ||
		   !mailbox_migrate_journal_log_may_have_records(path)) {
		/* a bad path was reported at the open */
		return 0;
	}
	/* opening folds it, as at the start */
	mailbox_migrate_cmd_close_state(ctx);
	if (mailbox_migrate_cmd_open_state(ctx, user) < 0)
		return -1;
	return ctx->db != NULL ? 1 : 0;
}

void mailbox_migrate_cmd_close_state(struct mailbox_migrate_cmd_context *ctx)
{
	mailbox_migrate_db_close(&ctx->db);
	ctx->set = NULL;
}

static bool mailbox_migrate_pattern_has_wildcards(const char *pattern)
{
	return strpbrk(pattern, "*%") != NULL;
}

int mailbox_migrate_cmd_mailboxes_foreach(
	struct mailbox_migrate_cmd_context *ctx, struct mail_user *user,
	const char *const *patterns,
	mailbox_migrate_cmd_mailbox_callback_t *callback)
{
	static const char *const all_patterns[] = { "*", NULL };
	const enum mailbox_list_iter_flags iter_flags =
		MAILBOX_LIST_ITER_NO_AUTO_BOXES |
		MAILBOX_LIST_ITER_RETURN_NO_FLAGS |
		MAILBOX_LIST_ITER_SKIP_ALIASES;
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	HASH_TABLE(const char *, void *) seen;
	struct mailbox *box;
	unsigned int i;
	int ret = 0;

	if (patterns == NULL || patterns[0] == NULL)
		patterns = all_patterns;
	hash_table_create(&seen, pool_datastack_create(), 0, str_hash, strcmp);
	iter = mailbox_list_iter_init_namespaces(user->namespaces, patterns,
			MAIL_NAMESPACE_TYPE_PRIVATE, iter_flags);
	while ((info = mailbox_list_iter_next(iter)) != NULL) {
		if ((info->flags & (MAILBOX_NOSELECT |
				    MAILBOX_NONEXISTENT)) != 0)
			continue;
		hash_table_update(seen, t_strdup(info->vname), POINTER_CAST(1));
		box = mailbox_alloc(info->ns->list, info->vname,
				    MAILBOX_FLAG_READONLY);
		T_BEGIN {
			if (callback(ctx, box) < 0)
				ret = -1;
		} T_END;
		mailbox_free(&box);
	}
	if (mailbox_list_iter_deinit(&iter) < 0) {
		i_error("Listing mailboxes failed: %s",
			mailbox_list_get_last_internal_error(
				user->namespaces->list, NULL));
		doveadm_mail_failed_error(&ctx->ctx, MAIL_ERROR_TEMP);
		ret = -1;
	}
	for (i = 0; patterns[i] != NULL; i++) {
		if (!mailbox_migrate_pattern_has_wildcards(patterns[i]) &&
		    hash_table_lookup(seen, patterns[i]) == NULL) {
			i_error("Mailbox %s doesn't exist", patterns[i]);
			doveadm_mail_failed_error(&ctx->ctx,
						  MAIL_ERROR_NOTFOUND);
			ret = -1;
		}
	}
	hash_table_destroy(&seen);
	return ret;
}

const char *mailbox_migrate_cmd_time(time_t t)
{
	char buf[64];
	struct tm *tm;

	if (t == 0)
		return "";
	tm = gmtime(&t);
	if (tm == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ",
				   tm) == 0)
		return dec2str(t);
	return t_strdup(buf);
}

const char *mailbox_migrate_cmd_expand(struct mail_user *user,
				       const char *location)
{
	const char *expanded, *error;

	if (mailbox_migrate_settings_expand(user, location, &expanded,
					    &error) < 0) {
		i_error("%s", error);
		return NULL;
	}
	return expanded;
}

const char *mailbox_migrate_cmd_backup_dir(struct mail_user *user,
					   const char *destination)
{
	const char *dir, *error;

	if (mailbox_migrate_settings_backup_dir(user, destination, &dir,
						&error) < 0) {
		i_error("%s", error);
		return NULL;
	}
	return dir;
}
