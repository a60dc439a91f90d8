/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "guid.h"
#include "imap-util.h"
#include "mail-storage.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal-verify.h"
#include "mailbox-migrate-settings.h"
#include "doveadm-mailbox-migrate-cmd.h"

/* How often a mailbox is proven, the journal log folded again before each
   new try (see journal_mailbox_status()). */
#define JOURNAL_PROOF_MAX_TRIES 3

/* A proof to record: see journal_record_proofs(). */
struct journal_proof {
	const char *mailbox_guid;
	struct mailbox_migrate_journal_proof proof;
};

struct journal_cmd_context {
	struct mailbox_migrate_cmd_context mctx;
	uint64_t since_seq;
	bool list;

	/* per user */
	struct mailbox_migrate_journal_completeness global;
	uint64_t last_seq;
	struct mailbox_migrate_journal_completeness total;
	/* mailbox GUIDs to list, NULL-terminated (--list with mailboxes) */
	ARRAY_TYPE(const_string) list_guids;
	ARRAY(struct journal_proof) proofs;
};

static void
journal_print_row(const char *name, const char *guid,
		  const struct mailbox_migrate_journal_range *range,
		  const struct mailbox_migrate_journal_completeness *c)
{
	doveadm_print(name);
	doveadm_print(guid);
	doveadm_print_num(range->first_seq);
	doveadm_print_num(range->last_seq);
	doveadm_print_num(range->entries);
	doveadm_print(c->incomplete_since == 0 ? "yes" : "no");
	doveadm_print_num(c->incomplete_since);
	doveadm_print(c->reason == NULL ? "" : c->reason);
}

static void
journal_merge_total(struct journal_cmd_context *ctx,
		    const struct mailbox_migrate_journal_completeness *c)
{
	if (c->incomplete_since > ctx->total.incomplete_since) {
		ctx->total.incomplete_since = c->incomplete_since;
		ctx->total.reason = p_strdup(ctx->mctx.ctx.pool, c->reason);
	}
}

/* Read the journal-wide completeness and the last seq (before the
   mailboxes are synced, see mailbox_migrate_journal_verify_mailbox()). */
static int journal_read_state(struct journal_cmd_context *ctx)
{
	struct mailbox_migrate_db *db = ctx->mctx.db;
	const char *error;

	i_zero(&ctx->global);
	ctx->last_seq = 0;
	if (db == NULL)
		return 0;
	if (mailbox_migrate_journal_check(db, &ctx->global, &error) < 0 ||
	    mailbox_migrate_journal_get_last_seq(db, &ctx->last_seq,
						 &error) < 0) {
		i_error("Can't read state file %s: %s",
			mailbox_migrate_db_get_path(db), error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	if (ctx->global.reason != NULL) {
		ctx->global.reason = p_strdup(ctx->mctx.ctx.pool,
					      ctx->global.reason);
	}
	journal_merge_total(ctx, &ctx->global);
	return 0;
}

static int journal_read_global(struct journal_cmd_context *ctx)
{
	i_zero(&ctx->total);
	return journal_read_state(ctx);
}

static int
journal_mailbox_status(struct mailbox_migrate_cmd_context *_ctx,
		       struct mailbox *box)
{
	struct journal_cmd_context *ctx = (struct journal_cmd_context *)_ctx;
	struct mailbox_migrate_journal_range range;
	struct mailbox_migrate_journal_completeness c;
	struct mailbox_migrate_journal_proof proof;
	struct journal_proof *jp;
	struct mailbox_metadata metadata;
	struct mail_user *user = mail_storage_get_user(mailbox_get_storage(box));
	const char *guid, *error;
	unsigned int tries;
	int ret;

	/* a sync makes the index show changes made behind Dovecot's back */
	if (mailbox_sync(box, 0) < 0 ||
	    mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &metadata) < 0) {
		i_error("Mailbox %s: %s", mailbox_get_vname(box),
			mailbox_get_last_internal_error(box, NULL));
		doveadm_mail_failed_mailbox(&_ctx->ctx, box);
		return -1;
	}
	guid = guid_128_to_string(metadata.guid);
	if (ctx->list) {
		guid = p_strdup(_ctx->ctx.pool, guid);
		array_push_back(&ctx->list_guids, &guid);
		return 0;
	}

	for (tries = 1;; tries++) {
		i_zero(&range);
		c = ctx->global;
		if ((_ctx->db != NULL &&
		     mailbox_migrate_journal_get_range(_ctx->db, guid, &range,
						       &error) < 0) ||
		    mailbox_migrate_journal_verify_mailbox(_ctx->db, box, guid,
				ctx->last_seq, &c, &proof, &error) < 0) {
			i_error("Mailbox %s: can't verify the journal: %s",
				mailbox_get_vname(box), error);
			doveadm_mail_failed_error(&_ctx->ctx, MAIL_ERROR_TEMP);
			return -1;
		}
		if (c.incomplete_since == ctx->global.incomplete_since ||
		    tries == JOURNAL_PROOF_MAX_TRIES)
			break;
		/* A session may have committed a change of the mailbox after
		   the state file was opened: its entries are in the journal
		   log, not yet in the state file. Fold them and prove again
		   from a new sync, rather than answer a false "no". */
		ret = mailbox_migrate_cmd_refold_state(_ctx, user);
		if (ret < 0)
			return -1;
		if (ret == 0)
			break;
		if (journal_read_state(ctx) < 0)
			return -1;
		if (mailbox_sync(box, 0) < 0) {
			i_error("Mailbox %s: %s", mailbox_get_vname(box),
				mailbox_get_last_internal_error(box, NULL));
			doveadm_mail_failed_mailbox(&_ctx->ctx, box);
			return -1;
		}
	}
	if (proof.modseq != 0) {
		jp = array_append_space(&ctx->proofs);
		jp->mailbox_guid = p_strdup(_ctx->ctx.pool, guid);
		jp->proof = proof;
		jp->proof.uids = p_strdup(_ctx->ctx.pool, proof.uids);
	}
	journal_merge_total(ctx, &c);
	journal_print_row(mailbox_get_vname(box), guid, &range, &c);
	return 0;
}

static const char *journal_flags_string(enum mail_flags flags)
{
	string_t *str = t_str_new(64);

	imap_write_flags(str, flags & ~MAIL_RECENT, NULL);
	return str_c(str);
}

static int journal_list(struct journal_cmd_context *ctx, const char *guid)
{
	struct mailbox_migrate_db *db = ctx->mctx.db;
	struct mailbox_migrate_journal_iter *iter;
	const struct mailbox_migrate_journal_entry *e;
	struct mailbox_migrate_journal_mailbox known;
	const char *error, *name;
	bool has_flags;
	int ret = 0;

	iter = mailbox_migrate_journal_iter_init(db, ctx->since_seq, guid);
	while (ret == 0 && mailbox_migrate_journal_iter_next(iter, &e)) T_BEGIN {
		name = "";
		if (e->mailbox_guid[0] != '\0') {
			ret = mailbox_migrate_journal_get_mailbox(db,
				e->mailbox_guid, &known, &error);
			if (ret > 0)
				name = known.name;
			ret = ret < 0 ? -1 : 0;
		}
		has_flags = e->type == MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE ||
			e->type == MAILBOX_MIGRATE_JOURNAL_TYPE_COPY ||
			e->type == MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS;
		doveadm_print_num(e->seq);
		doveadm_print(mailbox_migrate_cmd_time(e->time));
		doveadm_print(mailbox_migrate_journal_type_name(e->type));
		doveadm_print(name);
		doveadm_print(e->mailbox_guid);
		doveadm_print_num(e->uidvalidity);
		doveadm_print_num(e->uid);
		doveadm_print(e->message_guid == NULL ? "" : e->message_guid);
		doveadm_print(has_flags ? journal_flags_string(e->flags) : "");
		doveadm_print(e->keywords == NULL ? "" : e->keywords);
		doveadm_print(e->name == NULL ? "" : e->name);
		doveadm_print(e->old_name == NULL ? "" : e->old_name);
		doveadm_print(e->service == NULL ? "" : e->service);
		doveadm_print_num(e->modseq);
	} T_END;
	if (mailbox_migrate_journal_iter_deinit(&iter, &error) < 0)
		ret = -1;
	if (ret < 0) {
		i_error("Can't read state file %s: %s",
			mailbox_migrate_db_get_path(db), error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
	}
	return ret;
}

static int journal_run_list(struct journal_cmd_context *ctx)
{
	const char *guid;

	if (ctx->mctx.db == NULL)
		return 0;
	if (ctx->mctx.ctx.args[0] == NULL)
		return journal_list(ctx, NULL);
	array_foreach_elem(&ctx->list_guids, guid) {
		if (journal_list(ctx, guid) < 0)
			return -1;
	}
	return 0;
}

static int journal_print_total(struct journal_cmd_context *ctx)
{
	struct mailbox_migrate_journal_range range;
	const char *error;

	i_zero(&range);
	if (ctx->mctx.db != NULL &&
	    mailbox_migrate_journal_get_range(ctx->mctx.db, NULL, &range,
					      &error) < 0) {
		i_error("Can't read state file %s: %s",
			mailbox_migrate_db_get_path(ctx->mctx.db), error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	journal_print_row("(total)", "", &range, &ctx->total);
	return 0;
}

/* Record where this run proved mailboxes complete, for the next run to
   prove from there. The state file is opened for writing only for that
   (the command reads it read-only); a failure loses nothing (the next run
   proves from further back), so it is only logged for debugging. */
static void journal_record_proofs(struct journal_cmd_context *ctx,
				  struct mail_user *user)
{
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const struct journal_proof *jp;
	const char *error;
	int ret;

	if (array_count(&ctx->proofs) == 0 || ctx->mctx.db == NULL)
		return;
	if (mailbox_migrate_db_open(mailbox_migrate_db_get_path(ctx->mctx.db),
				    MAILBOX_MIGRATE_DB_OPEN_FLAG_NO_FOLD,
				    ctx->mctx.set->lock_timeout_msecs, 0,
				    &db, &code, &error) < 0) {
		e_debug(user->event, "Can't record the journal's proofs: %s",
			error);
		return;
	}
	ret = mailbox_migrate_db_begin(db, &error);
	array_foreach(&ctx->proofs, jp) {
		if (ret < 0)
			break;
		ret = mailbox_migrate_journal_set_proof(db, jp->mailbox_guid,
							&jp->proof, &error);
	}
	if (ret == 0)
		ret = mailbox_migrate_db_commit(db, &error);
	else
		mailbox_migrate_db_rollback(db);
	if (ret < 0) {
		e_debug(user->event, "Can't record the journal's proofs: %s",
			error);
	}
	mailbox_migrate_db_close(&db);
}

static int
cmd_mailbox_migrate_journal_run(struct doveadm_mail_cmd_context *_ctx,
				struct mail_user *user)
{
	struct journal_cmd_context *ctx = (struct journal_cmd_context *)_ctx;
	int ret;

	if (mailbox_migrate_cmd_open_state(&ctx->mctx, user) < 0)
		return -1;
	array_clear(&ctx->list_guids);
	array_clear(&ctx->proofs);
	ret = journal_read_global(ctx);
	if (ret == 0 && (!ctx->list || _ctx->args[0] != NULL)) {
		ret = mailbox_migrate_cmd_mailboxes_foreach(&ctx->mctx, user,
				_ctx->args, journal_mailbox_status);
	}
	if (ret == 0)
		ret = ctx->list ? journal_run_list(ctx) :
			journal_print_total(ctx);
	if (ret == 0)
		journal_record_proofs(ctx, user);
	mailbox_migrate_cmd_close_state(&ctx->mctx);
	return ret;
}

static bool
cmd_mailbox_migrate_journal_parse_arg(struct doveadm_mail_cmd_context *_ctx,
				      int c)
{
	struct journal_cmd_context *ctx = (struct journal_cmd_context *)_ctx;

	switch (c) {
	case 'l':
		ctx->list = TRUE;
		break;
	case 's':
		if (str_to_uint64(optarg, &ctx->since_seq) < 0) {
			i_fatal_status(EX_USAGE,
				"Invalid --since %s: not a sequence number",
				optarg);
		}
		break;
	default:
		return FALSE;
	}
	return TRUE;
}

static void
cmd_mailbox_migrate_journal_init(struct doveadm_mail_cmd_context *_ctx,
				 const char *const args[] ATTR_UNUSED)
{
	struct journal_cmd_context *ctx = (struct journal_cmd_context *)_ctx;

	if (ctx->list) {
		doveadm_print_header("seq", "seq",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header_simple("time");
		doveadm_print_header_simple("type");
		doveadm_print_header_simple("mailbox");
		doveadm_print_header_simple("mailbox_guid");
		doveadm_print_header("uidvalidity", "uidvalidity",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header("uid", "uid",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		doveadm_print_header_simple("guid");
		doveadm_print_header_simple("flags");
		doveadm_print_header_simple("keywords");
		doveadm_print_header_simple("name");
		doveadm_print_header_simple("old_name");
		doveadm_print_header_simple("service");
		doveadm_print_header("modseq", "modseq",
				     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
		return;
	}
	doveadm_print_header_simple("mailbox");
	doveadm_print_header_simple("mailbox_guid");
	doveadm_print_header("first_seq", "first_seq",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("last_seq", "last_seq",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("entries", "entries",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header_simple("complete");
	doveadm_print_header("incomplete_since", "incomplete_since",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header_simple("reason");
}

static struct doveadm_mail_cmd_context *
cmd_mailbox_migrate_journal_alloc(void)
{
	struct journal_cmd_context *ctx;

	ctx = mailbox_migrate_cmd_alloc(struct journal_cmd_context);
	ctx->mctx.ctx.getopt_args = "ls:";
	ctx->mctx.ctx.v.parse_arg = cmd_mailbox_migrate_journal_parse_arg;
	ctx->mctx.ctx.v.init = cmd_mailbox_migrate_journal_init;
	ctx->mctx.ctx.v.run = cmd_mailbox_migrate_journal_run;
	p_array_init(&ctx->list_guids, ctx->mctx.ctx.pool, 8);
	p_array_init(&ctx->proofs, ctx->mctx.ctx.pool, 8);
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->mctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_journal = {
	.name = "mailbox-migrate journal",
	.mail_cmd = cmd_mailbox_migrate_journal_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--list [--since <seq>]] [<mailbox> [...]]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('l', "list", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('s', "since", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "mailbox", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
