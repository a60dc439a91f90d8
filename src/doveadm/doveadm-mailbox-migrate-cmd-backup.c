/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "ioloop.h"
#include "mail-storage.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-backup-store.h"
#include "mailbox-migrate-backup-verify.h"
#include "mailbox-migrate-backup-compact.h"
#include "mailbox-migrate-backup-reindex.h"
#include "doveadm-mailbox-migrate-cmd.h"

/* doveadm mailbox-migrate verify | compact | reindex: the maintenance of
   backup stores, one user's store at a time. */

enum backup_cmd {
	BACKUP_CMD_VERIFY,
	BACKUP_CMD_COMPACT,
	BACKUP_CMD_REINDEX,
};

struct backup_cmd_context {
	struct mailbox_migrate_cmd_context mctx;
	enum backup_cmd cmd;
	const char *destination;
	bool quick;
	/* compact --keep DAYS */
	bool keep_set;
	unsigned int keep_days;
};

static int backup_open(struct backup_cmd_context *ctx, struct mail_user *user,
		       const struct mailbox_migrate_settings *set,
		       bool readonly, const char **dir_r,
		       struct mailbox_migrate_backup_store **store_r)
{
	const char *location, *error;
	int ret;

	location = mailbox_migrate_cmd_backup_dir(user, ctx->destination);
	if (location == NULL) {
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	*dir_r = location;
	if (store_r == NULL)
		return 0;
	ret = mailbox_migrate_backup_store_open(*dir_r, readonly ?
			MAILBOX_MIGRATE_BACKUP_OPEN_READONLY : 0,
			MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ,
			I_MAX(set->lock_timeout_msecs / 1000, 1), store_r,
			&error);
	if (ret <= 0) {
		i_error("Backup store %s: %s", *dir_r,
			ret == 0 ? "doesn't exist" : error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, ret == 0 ?
			MAIL_ERROR_NOTFOUND : MAIL_ERROR_TEMP);
		return -1;
	}
	return 0;
}

static int backup_verify(struct backup_cmd_context *ctx,
			 struct mail_user *user,
			 const struct mailbox_migrate_settings *set)
{
	struct mailbox_migrate_backup_verify_result result;
	struct mailbox_migrate_backup_store *store;
	const char *dir, *error;
	int ret;

	if (backup_open(ctx, user, set, TRUE, &dir, &store) < 0)
		return -1;
	ret = mailbox_migrate_backup_verify(store, ctx->quick, &result,
					    &error);
	mailbox_migrate_backup_store_close(&store);
	if (ret < 0) {
		i_error("Verifying %s failed: %s", dir, error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	doveadm_print(dir);
	doveadm_print(ctx->quick ? "" : dec2str(result.members));
	doveadm_print_num(result.bodies);
	doveadm_print_num(result.records);
	doveadm_print_num(result.messages);
	doveadm_print_num(result.bytes);
	doveadm_print_num(result.problems);
	doveadm_print(result.first_problem == NULL ? "" :
		t_strdup_printf("offset %"PRIuUOFF_T": %s",
				result.first_problem_offset,
				result.first_problem));
	if (result.problems > 0) {
		i_error("%s: %u problems, the first at offset %"PRIuUOFF_T
			": %s", dir, result.problems,
			result.first_problem_offset, result.first_problem);
		/* EX_DATAERR: the data is bad, not the run */
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_INVALIDDATA);
		return -1;
	}
	return 0;
}

static int backup_compact(struct backup_cmd_context *ctx,
			  struct mail_user *user,
			  const struct mailbox_migrate_settings *set)
{
	struct mailbox_migrate_backup_compact_result result;
	struct mailbox_migrate_backup_store *store;
	const char *dir, *error;
	/* without --keep all history is kept */
	time_t keep_since = !ctx->keep_set ? 0 :
		ioloop_time - (time_t)ctx->keep_days * 24 * 3600;
	int ret;

	if (backup_open(ctx, user, set, FALSE, &dir, &store) < 0)
		return -1;
	ret = mailbox_migrate_backup_compact(store, keep_since,
			set->backup_dirty_percent, &result, &error);
	mailbox_migrate_backup_store_close(&store);
	if (ret < 0) {
		i_error("Compacting %s failed: %s", dir, error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	doveadm_print(dir);
	doveadm_print(result.compacted ? "yes" : "no");
	doveadm_print_num(result.dirty_percent);
	doveadm_print_num(result.dead_bodies);
	doveadm_print_num(result.old_size);
	doveadm_print_num(result.new_size);
	if (!result.compacted) {
		i_info("%s: %u%% dead, below mailbox_migrate_backup_dirty "
		       "(%u%%): not compacted", dir, result.dirty_percent,
		       set->backup_dirty_percent);
	}
	return 0;
}

static int backup_reindex(struct backup_cmd_context *ctx,
			  struct mail_user *user,
			  const struct mailbox_migrate_settings *set)
{
	struct mailbox_migrate_backup_reindex_result result;
	const char *dir, *error;

	if (backup_open(ctx, user, set, FALSE, &dir, NULL) < 0)
		return -1;
	if (mailbox_migrate_backup_reindex(dir,
			I_MAX(set->lock_timeout_msecs / 1000, 1), &result,
			&error) < 0) {
		i_error("Reindexing %s failed: %s", dir, error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	if (result.cut_bytes > 0) {
		i_warning("%s: cut %"PRIuUOFF_T" bytes after the last "
			  "complete pass", result.data_path, result.cut_bytes);
	}
	doveadm_print(dir);
	doveadm_print_num(result.passes);
	doveadm_print_num(result.bodies);
	doveadm_print_num(result.messages);
	doveadm_print_num(result.bad_members);
	doveadm_print_num(result.bad_records);
	doveadm_print_num(result.cut_bytes);
	if (result.bad_members > 0 || result.bad_records > 0) {
		/* the index holds what could be read; what couldn't is
		   lost, which the exit code must say */
		i_error("%s: %u unreadable members and %u unusable state "
			"records skipped", dir, result.bad_members,
			result.bad_records);
		doveadm_mail_failed_error(&ctx->mctx.ctx,
					  MAIL_ERROR_INVALIDDATA);
		return -1;
	}
	return 0;
}

static int
cmd_mailbox_migrate_backup_run(struct doveadm_mail_cmd_context *_ctx,
			       struct mail_user *user)
{
	struct backup_cmd_context *ctx = (struct backup_cmd_context *)_ctx;
	const struct mailbox_migrate_settings *set;
	const char *error;

	if (mailbox_migrate_settings_read(user, &set, &error) < 0) {
		i_error("%s", error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	switch (ctx->cmd) {
	case BACKUP_CMD_VERIFY:
		return backup_verify(ctx, user, set);
	case BACKUP_CMD_COMPACT:
		return backup_compact(ctx, user, set);
	case BACKUP_CMD_REINDEX:
		return backup_reindex(ctx, user, set);
	}
	i_unreached();
}

static bool
cmd_mailbox_migrate_backup_parse_arg(struct doveadm_mail_cmd_context *_ctx,
				     int c)
{
	struct backup_cmd_context *ctx = (struct backup_cmd_context *)_ctx;

	switch (c) {
	case 'q':
		ctx->quick = TRUE;
		break;
	case 'k':
		if (str_to_uint(optarg, &ctx->keep_days) < 0)
			i_fatal_status(EX_USAGE, "Invalid --keep %s: expected "
				       "a number of days", optarg);
		ctx->keep_set = TRUE;
		break;
	default:
		return FALSE;
	}
	return TRUE;
}

static void
cmd_mailbox_migrate_backup_init(struct doveadm_mail_cmd_context *_ctx,
				const char *const args[])
{
	static const char *const names[] = {
		"mailbox-migrate verify", "mailbox-migrate compact",
		"mailbox-migrate reindex",
	};
	struct backup_cmd_context *ctx = (struct backup_cmd_context *)_ctx;

	if (args[0] == NULL || args[1] != NULL)
		doveadm_mail_help_name(names[ctx->cmd]);
	if (!str_begins(args[0], "backup:"))
		i_fatal_status(EX_USAGE, "%s works on a backup store: "
			       "backup:/path/%%u, not %s", names[ctx->cmd],
			       args[0]);
	ctx->destination = p_strdup(_ctx->pool, args[0]);
	doveadm_print_header_simple("store");
	switch (ctx->cmd) {
	case BACKUP_CMD_VERIFY:
		doveadm_print_header("members", "members",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("bodies", "bodies",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("records", "records",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("messages", "messages",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("bytes", "bytes",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("problems", "problems",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header_simple("first_problem");
		break;
	case BACKUP_CMD_COMPACT:
		doveadm_print_header_simple("compacted");
		doveadm_print_header("dirty_percent", "dirty_percent",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("dead_bodies", "dead_bodies",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("old_bytes", "old_bytes",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("new_bytes", "new_bytes",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		break;
	case BACKUP_CMD_REINDEX:
		doveadm_print_header("passes", "passes",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("bodies", "bodies",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("messages", "messages",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("bad_members", "bad_members",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("bad_records", "bad_records",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("cut_bytes", "cut_bytes",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		break;
	}
}

static struct doveadm_mail_cmd_context *backup_cmd_alloc(enum backup_cmd cmd)
{
	struct backup_cmd_context *ctx;

	ctx = mailbox_migrate_cmd_alloc(struct backup_cmd_context);
	ctx->cmd = cmd;
	ctx->mctx.ctx.getopt_args = cmd == BACKUP_CMD_VERIFY ? "q" :
		cmd == BACKUP_CMD_COMPACT ? "k:" : "";
	ctx->mctx.ctx.v.parse_arg = cmd_mailbox_migrate_backup_parse_arg;
	ctx->mctx.ctx.v.init = cmd_mailbox_migrate_backup_init;
	ctx->mctx.ctx.v.run = cmd_mailbox_migrate_backup_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->mctx.ctx;
}

static struct doveadm_mail_cmd_context *cmd_verify_alloc(void)
{
	return backup_cmd_alloc(BACKUP_CMD_VERIFY);
}

static struct doveadm_mail_cmd_context *cmd_compact_alloc(void)
{
	return backup_cmd_alloc(BACKUP_CMD_COMPACT);
}

static struct doveadm_mail_cmd_context *cmd_reindex_alloc(void)
{
	return backup_cmd_alloc(BACKUP_CMD_REINDEX);
}

struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_verify = {
	.name = "mailbox-migrate verify",
	.mail_cmd = cmd_verify_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "[--quick] backup:<path>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('q', "quick", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('\0', "backup", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};

struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_compact = {
	.name = "mailbox-migrate compact",
	.mail_cmd = cmd_compact_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "[--keep <days>] backup:<path>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('k', "keep", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "backup", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};

struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_reindex = {
	.name = "mailbox-migrate reindex",
	.mail_cmd = cmd_reindex_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "backup:<path>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('\0', "backup", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
