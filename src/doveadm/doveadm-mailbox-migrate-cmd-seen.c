/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "guid.h"
#include "mail-storage.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-seen.h"
#include "doveadm-mailbox-migrate-cmd.h"

static int
cmd_mailbox_migrate_seen_mailbox(struct mailbox_migrate_cmd_context *ctx,
				 struct mailbox *box)
{
	struct mailbox_status status;
	struct mailbox_metadata metadata;
	struct mailbox_migrate_seen_record rec;
	const char *guid, *error;
	int ret = 0;

	if (mailbox_get_status(box, STATUS_UIDVALIDITY | STATUS_UIDNEXT,
			       &status) < 0 ||
	    mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &metadata) < 0) {
		i_error("Mailbox %s: %s", mailbox_get_vname(box),
			mailbox_get_last_internal_error(box, NULL));
		doveadm_mail_failed_mailbox(&ctx->ctx, box);
		return -1;
	}
	guid = guid_128_to_string(metadata.guid);
	i_zero(&rec);
	if (ctx->db != NULL) {
		ret = mailbox_migrate_seen_get(ctx->db, guid,
					       status.uidvalidity, &rec,
					       &error);
		if (ret < 0) {
			i_error("Can't read state file %s: %s",
				mailbox_migrate_db_get_path(ctx->db), error);
			doveadm_mail_failed_error(&ctx->ctx, MAIL_ERROR_TEMP);
			return -1;
		}
	}
	doveadm_print(mailbox_get_vname(box));
	doveadm_print(guid);
	doveadm_print_num(status.uidvalidity);
	doveadm_print_num(status.uidnext);
	doveadm_print_num(rec.seen_uidnext);
	doveadm_print(mailbox_migrate_cmd_time(rec.seen_at));
	doveadm_print(rec.seen_by == NULL ? "" : rec.seen_by);
	return 0;
}

static int
cmd_mailbox_migrate_seen_run(struct doveadm_mail_cmd_context *_ctx,
			     struct mail_user *user)
{
	struct mailbox_migrate_cmd_context *ctx =
		(struct mailbox_migrate_cmd_context *)_ctx;
	int ret;

	if (mailbox_migrate_cmd_open_state(ctx, user) < 0)
		return -1;
	ret = mailbox_migrate_cmd_mailboxes_foreach(ctx, user, _ctx->args,
			cmd_mailbox_migrate_seen_mailbox);
	mailbox_migrate_cmd_close_state(ctx);
	return ret;
}

static void
cmd_mailbox_migrate_seen_init(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
			      const char *const args[] ATTR_UNUSED)
{
	doveadm_print_header_simple("mailbox");
	doveadm_print_header_simple("mailbox_guid");
	doveadm_print_header("uidvalidity", "uidvalidity",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("uidnext", "uidnext",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("seen_uidnext", "seen_uidnext",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header_simple("seen_at");
	doveadm_print_header_simple("seen_by");
}

static struct doveadm_mail_cmd_context *cmd_mailbox_migrate_seen_alloc(void)
{
	struct mailbox_migrate_cmd_context *ctx;

	ctx = mailbox_migrate_cmd_alloc(struct mailbox_migrate_cmd_context);
	ctx->ctx.v.init = cmd_mailbox_migrate_seen_init;
	ctx->ctx.v.run = cmd_mailbox_migrate_seen_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->ctx;
}

struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_seen = {
	.name = "mailbox-migrate seen",
	.mail_cmd = cmd_mailbox_migrate_seen_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "[<mailbox mask> [...]]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('\0', "mailbox-mask", CMD_PARAM_ARRAY,
		  CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
