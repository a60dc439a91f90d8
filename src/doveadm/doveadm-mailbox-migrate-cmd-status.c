/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "mail-storage.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal.h"
#include "mailbox-migrate-destination.h"
#include "doveadm-mailbox-migrate-cmd.h"

#include <stdio.h>

/* the histogram's last bucket holds every older user */
#define STATUS_HISTOGRAM_HOURS 48

struct status_cmd_context {
	struct mailbox_migrate_cmd_context mctx;
	/* only this destination (as given, compared after expansion) */
	const char *destination;

	/* users per hour of age of their last pass; [HOURS] = never */
	unsigned int histogram[STATUS_HISTOGRAM_HOURS + 1];
	unsigned int users;
};

static void status_print(const struct mailbox_migrate_destination *dest,
			 uint64_t pending)
{
	time_t age = dest->last_pass == 0 ? 0 : ioloop_time - dest->last_pass;

	doveadm_print(dest->name);
	doveadm_print(dest->phase);
	doveadm_print(mailbox_migrate_cmd_time(dest->last_pass));
	doveadm_print(dest->last_pass == 0 ? "" : dec2str(age));
	doveadm_print(dec2str(pending));
}

static int
cmd_mailbox_migrate_status_run(struct doveadm_mail_cmd_context *_ctx,
			       struct mail_user *user)
{
	struct status_cmd_context *ctx = (struct status_cmd_context *)_ctx;
	ARRAY_TYPE(mailbox_migrate_destination) dests;
	const struct mailbox_migrate_destination *dest;
	time_t newest = 0;
	uint64_t pending;
	const char *error, *want = NULL;
	int ret = 0;

	if (mailbox_migrate_cmd_open_state(&ctx->mctx, user) < 0)
		return -1;
	if (ctx->destination != NULL) {
		if (mailbox_migrate_settings_destination_name(user,
				ctx->destination, &want, &error) < 0) {
			i_error("%s", error);
			doveadm_mail_failed_error(_ctx, MAIL_ERROR_PARAMS);
			mailbox_migrate_cmd_close_state(&ctx->mctx);
			return -1;
		}
	}
	t_array_init(&dests, 4);
	if (ctx->mctx.db != NULL &&
	    mailbox_migrate_destination_list(ctx->mctx.db, &dests,
					     &error) < 0) {
		i_error("Can't read state file of user %s: %s",
			user->username, error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
		ret = -1;
	}
	array_foreach(&dests, dest) {
		if (want != NULL && strcmp(dest->name, want) != 0)
			continue;
		if (mailbox_migrate_journal_count_after(ctx->mctx.db,
				dest->checkpoint_seq, &pending, &error) < 0) {
			i_error("Can't read state file of user %s: %s",
				user->username, error);
			doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
			ret = -1;
			break;
		}
		status_print(dest, pending);
		if (dest->last_pass > newest)
			newest = dest->last_pass;
	}
	if (ctx->mctx.db != NULL && array_count(&dests) == 0 && ret == 0) {
		const char *from, *at;
		struct mailbox_migrate_destination here;

		/* the user lives here now: migrated from elsewhere */
		if (mailbox_migrate_db_meta_get(ctx->mctx.db, "migrated_from",
						&from, &error) > 0 &&
		    mailbox_migrate_db_meta_get(ctx->mctx.db, "migrated_at",
						&at, &error) > 0) {
			i_zero(&here);
			here.name = t_strdup_printf("(here, from %s)", from);
			here.phase = MAILBOX_MIGRATE_PHASE_DONE;
			if (str_to_time(at, &here.last_pass) < 0)
				here.last_pass = 0;
			status_print(&here, 0);
			newest = here.last_pass;
		}
	}
	if (want != NULL && newest == 0 && ret == 0) {
		struct mailbox_migrate_destination none;

		/* a user never brought there still gets a row */
		i_zero(&none);
		none.name = want;
		none.phase = MAILBOX_MIGRATE_PHASE_NONE;
		status_print(&none, 0);
	}
	ctx->users++;
	if (newest == 0)
		ctx->histogram[STATUS_HISTOGRAM_HOURS]++;
	else {
		time_t hours = (ioloop_time - newest) / 3600;

		ctx->histogram[I_MIN(hours, STATUS_HISTOGRAM_HOURS - 1)]++;
	}
	mailbox_migrate_cmd_close_state(&ctx->mctx);
	return ret;
}

static void cmd_mailbox_migrate_status_deinit(struct doveadm_mail_cmd_context *_ctx)
{
	struct status_cmd_context *ctx = (struct status_cmd_context *)_ctx;
	unsigned int i;

	if (ctx->users < 2)
		return;
	/* FastMail's morning report: users per hour of age of their last
	   pass, on stderr so that the table stays machine-readable */
	fprintf(stderr, "age of last pass (hours)  users\n");
	for (i = 0; i < STATUS_HISTOGRAM_HOURS; i++) {
		if (ctx->histogram[i] == 0)
			continue;
		fprintf(stderr, "%s%-24u  %u\n",
			i == STATUS_HISTOGRAM_HOURS - 1 ? ">=" : "", i,
			ctx->histogram[i]);
	}
	if (ctx->histogram[STATUS_HISTOGRAM_HOURS] > 0) {
		fprintf(stderr, "%-26s  %u\n", "never",
			ctx->histogram[STATUS_HISTOGRAM_HOURS]);
	}
}

static void
cmd_mailbox_migrate_status_init(struct doveadm_mail_cmd_context *_ctx,
				const char *const args[])
{
	struct status_cmd_context *ctx = (struct status_cmd_context *)_ctx;

	if (args[0] != NULL) {
		if (args[1] != NULL)
			doveadm_mail_help_name("mailbox-migrate status");
		ctx->destination = p_strdup(_ctx->pool, args[0]);
	}
	doveadm_print_header_simple("destination");
	doveadm_print_header_simple("phase");
	doveadm_print_header_simple("last_pass");
	doveadm_print_header("age_secs", "age_secs",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("pending", "pending",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
}

static struct doveadm_mail_cmd_context *cmd_mailbox_migrate_status_alloc(void)
{
	struct status_cmd_context *ctx;

	ctx = mailbox_migrate_cmd_alloc(struct status_cmd_context);
	ctx->mctx.ctx.v.init = cmd_mailbox_migrate_status_init;
	ctx->mctx.ctx.v.run = cmd_mailbox_migrate_status_run;
	ctx->mctx.ctx.v.deinit = cmd_mailbox_migrate_status_deinit;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->mctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_status = {
	.name = "mailbox-migrate status",
	.mail_cmd = cmd_mailbox_migrate_status_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "[<destination>]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('\0', "destination", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
