/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* strptime(), timegm() */
#endif

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "istream.h"
#include "iso8601-date.h"
#include "imap-match.h"
#include "guid.h"
#include "str-sanitize.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "mailbox-list-private.h"
#include "mail-search-build.h"
#include "mail-storage-service.h"
#include "settings-parser.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-backup-store.h"
#include "doveadm-mailbox-migrate-pass.h"
#include "doveadm-mailbox-migrate-cmd.h"

#include <stdio.h>
#include <time.h>

/* restored messages are committed in transactions of this many */
#define RESTORE_COMMIT_INTERVAL 1000

struct restore_cmd_context {
	struct mailbox_migrate_cmd_context mctx;
	const char *destination;
	const char *at_str;
	time_t at;
	ARRAY_TYPE(const_string) mailboxes;
	const char *to;
};

HASH_TABLE_DEFINE_TYPE(restore_present, const char *, void *);

struct restore_counts {
	unsigned int restored, present, failed;
};

/* A UNIX timestamp, or an ISO 8601 date-time (UTC unless it says
   otherwise), or a date. */
static int restore_parse_time(const char *str, time_t *t_r)
{
	static const char *const formats[] = {
		"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
		"%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d",
	};
	struct tm tm;
	const char *end;
	unsigned int i;
	int tz;

	if (str_to_time(str, t_r) == 0)
		return 0;
	if (iso8601_date_parse((const unsigned char *)str, strlen(str),
			       t_r, &tz))
		return 0;
	for (i = 0; i < N_ELEMENTS(formats); i++) {
		i_zero(&tm);
		end = strptime(str, formats[i], &tm);
		if (end != NULL && (*end == '\0' || strcmp(end, "Z") == 0)) {
			*t_r = timegm(&tm);
			return 0;
		}
	}
	return -1;
}

static bool restore_box_selected(struct imap_match_glob *const *globs,
				 const char *name)
{
	if (globs == NULL)
		return TRUE;
	for (; *globs != NULL; globs++) {
		if (imap_match(*globs, name) == IMAP_MATCH_YES)
			return TRUE;
	}
	return FALSE;
}

/* Open (making it if needed) the live mailbox a backed-up mailbox is
   restored into: the one with its GUID, else the one of its name (or of
   --to). *keep_uids_r: the mailbox has the backup's UIDVALIDITY, so UIDs
   at or above its UIDNEXT can be kept. */
static int restore_open_box(struct restore_cmd_context *ctx,
			    struct mail_user *user,
			    const struct mailbox_migrate_backup_mailbox *bbox,
			    struct mailbox **box_r, bool *keep_uids_r)
{
	struct mailbox_update update;
	struct mailbox_status status;
	struct mailbox_metadata metadata;
	struct mail_namespace *ns;
	struct mailbox *box;
	const char *name = ctx->to != NULL ? ctx->to : bbox->name;
	enum mail_error error;

	*keep_uids_r = FALSE;
	i_zero(&update);
	if (guid_128_from_string(bbox->guid, update.mailbox_guid) < 0)
		i_unreached();
	update.uid_validity = bbox->uidvalidity;

	ns = mail_namespace_find(user->namespaces, name);
	if (ctx->to == NULL) {
		box = mailbox_alloc_guid(ns->list, update.mailbox_guid, 0);
		if (mailbox_open(box) == 0) {
			*box_r = box;
			*keep_uids_r = mailbox_get_status(box,
				STATUS_UIDVALIDITY, &status) == 0 &&
				status.uidvalidity == bbox->uidvalidity;
			return 0;
		}
		mailbox_free(&box);
	}
	box = mailbox_alloc(ns->list, name, 0);
	if (mailbox_open(box) < 0) {
		(void)mailbox_get_last_internal_error(box, &error);
		if (error != MAIL_ERROR_NOTFOUND)
			goto failed;
		mailbox_free(&box);
		box = mailbox_alloc(ns->list, name, 0);
		/* a new mailbox: the backup's GUID and UIDVALIDITY, unless
		   it is a copy (--to) */
		if (mailbox_create(box, ctx->to != NULL ? NULL : &update,
				   FALSE) < 0 || mailbox_open(box) < 0)
			goto failed;
		*keep_uids_r = ctx->to == NULL;
		*box_r = box;
		return 0;
	}
	if (ctx->to == NULL &&
	    mailbox_get_status(box, STATUS_MESSAGES | STATUS_UIDNEXT,
			       &status) == 0 &&
	    status.messages == 0 && status.uidnext == 1 &&
	    mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &metadata) == 0 &&
	    !guid_128_equals(metadata.guid, update.mailbox_guid)) {
		/* e.g. the INBOX a login made after the store was lost:
		   empty, so it can become the backed-up one */
		if (mailbox_update(box, &update) < 0)
			goto failed;
		*keep_uids_r = TRUE;
	}
	*box_r = box;
	return 0;

failed:
	i_error("Can't open or create mailbox %s: %s",
		str_sanitize_utf8(name, 200),
		mailbox_get_last_internal_error(box, NULL));
	mailbox_free(&box);
	return -1;
}

/* GUIDs of the mailbox' messages; and, for messages whose GUID the
   backup doesn't know, their body hashes (same mail under another
   GUID). */
static int restore_present(struct mailbox *box,
			   const ARRAY_TYPE(mailbox_migrate_backup_message) *msgs,
			   pool_t pool, HASH_TABLE_TYPE(restore_present) *present_r)
{
	struct mailbox_transaction_context *t;
	struct mail_search_args *args;
	struct mail_search_context *search;
	const struct mailbox_migrate_backup_message *msg;
	HASH_TABLE(const char *, void *) backup_guids;
	struct istream *input;
	const unsigned char *data;
	const char *guid, *key;
	buffer_t *body;
	size_t size;
	struct mail *mail;
	int ret = 0;

	hash_table_create(&backup_guids, pool, 0, str_hash, strcmp);
	array_foreach(msgs, msg)
		hash_table_update(backup_guids, msg->guid, POINTER_CAST(1));
	body = buffer_create_dynamic(default_pool, 65536);
	args = mail_search_build_init();
	mail_search_build_add_all(args);
	t = mailbox_transaction_begin(box, 0, __func__);
	search = mailbox_search_init(t, args, NULL, 0, NULL);
	mail_search_args_unref(&args);
	while (mailbox_search_next(search, &mail)) {
		if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0) {
			ret = -1;
			break;
		}
		if (hash_table_lookup(backup_guids, guid) != NULL) {
			key = p_strdup(pool, guid);
			hash_table_update(*present_r, key, POINTER_CAST(1));
			continue;
		}
		if (mail_get_stream(mail, NULL, NULL, &input) < 0) {
			ret = -1;
			break;
		}
		buffer_set_used_size(body, 0);
		while (i_stream_read_more(input, &data, &size) > 0) {
			buffer_append(body, data, size);
			i_stream_skip(input, size);
		}
		if (input->stream_errno != 0) {
			ret = -1;
			break;
		}
		key = p_strdup(pool, mailbox_migrate_backup_hash(body->data,
							       body->used));
		hash_table_update(*present_r, key, POINTER_CAST(1));
	}
	if (mailbox_search_deinit(&search) < 0)
		ret = -1;
	(void)mailbox_transaction_commit(&t);
	buffer_free(&body);
	hash_table_destroy(&backup_guids);
	return ret;
}

/* Save the body (data, size bytes as verified against its hash) with the
   message's metadata; uid 0 lets the mailbox choose. */
static int restore_save(struct mailbox_transaction_context *t,
			const struct mailbox_migrate_backup_message *msg,
			const unsigned char *data, size_t size, uint32_t uid)
{
	struct mailbox *box = mailbox_transaction_get_mailbox(t);
	struct mail_save_context *save_ctx;
	struct mail_keywords *kw = NULL;
	struct istream *input;
	int ret = 0;

	save_ctx = mailbox_save_alloc(t);
	if (msg->keywords[0] != '\0') {
		kw = mailbox_keywords_create_valid(box,
			t_strsplit_spaces(msg->keywords, " "));
	}
	mailbox_save_set_flags(save_ctx, msg->flags, kw);
	if (kw != NULL)
		mailbox_keywords_unref(&kw);
	mailbox_save_set_received_date(save_ctx, msg->received, 0);
	if (msg->saved > 0)
		mailbox_save_set_save_date(save_ctx, msg->saved);
	if (msg->guid[0] != '\0')
		mailbox_save_set_guid(save_ctx, msg->guid);
	if (msg->pop3_uidl[0] != '\0')
		mailbox_save_set_pop3_uidl(save_ctx, msg->pop3_uidl);
	if (msg->pop3_order != 0)
		mailbox_save_set_pop3_order(save_ctx, msg->pop3_order);
	if (uid != 0)
		mailbox_save_set_uid(save_ctx, uid);
	input = i_stream_create_from_data(data, size);
	if (mailbox_save_begin(&save_ctx, input) < 0) {
		i_stream_unref(&input);
		return -1;
	}
	do {
		if (mailbox_save_continue(save_ctx) < 0) {
			ret = -1;
			break;
		}
	} while (i_stream_read(input) > 0);
	i_stream_unref(&input);
	if (ret < 0) {
		mailbox_save_cancel(&save_ctx);
		return -1;
	}
	return mailbox_save_finish(&save_ctx);
}

/* Special-use flags come from the namespace configuration, which restore
   can't change: say so when it gives the mailbox other flags than the
   backup recorded (e.g. a new server whose configuration names its Sent
   folder differently). */
static void
restore_check_special_use(struct mailbox_migrate_backup_store *store,
			  uint32_t pass_id,
			  const struct mailbox_migrate_backup_mailbox *bbox,
			  struct mailbox *box)
{
	const char *had, *has, *error;

	if (mailbox_migrate_backup_index_special_use(store->index, bbox->guid,
			pass_id, &had, &error) < 0) {
		i_warning("Backup index %s: %s", store->dir, error);
		return;
	}
	has = box->set == NULL ? "" : box->set->special_use;
	if (*had == '\0' || strcmp(had, has) == 0)
		return;
	i_warning("%s had the special-use flags %s when backed up; the "
		  "namespace configuration gives it %s (special_use in its "
		  "mailbox { } section)", str_sanitize_utf8(bbox->name, 200),
		  had, *has == '\0' ? "none" : has);
}

static int restore_box(struct restore_cmd_context *ctx, struct mail_user *user,
		       struct mailbox_migrate_backup_store *store,
		       uint32_t pass_id,
		       const struct mailbox_migrate_backup_mailbox *bbox,
		       struct restore_counts *counts)
{
	ARRAY_TYPE(mailbox_migrate_backup_message) msgs;
	const struct mailbox_migrate_backup_message *msg;
	struct mailbox_migrate_backup_body body;
	HASH_TABLE_TYPE(restore_present) present;
	struct mailbox_transaction_context *t;
	struct mailbox_status status;
	struct mailbox *box;
	const unsigned char *data;
	const char *error;
	unsigned int in_txn = 0;
	uint32_t next_uid;
	bool keep_uids;
	pool_t pool;
	int ret = 0;

	pool = pool_alloconly_create("mailbox-migrate restore", 16384);
	p_array_init(&msgs, pool, 64);
	if (mailbox_migrate_backup_index_messages(store->index, bbox->guid,
			pass_id, NULL, pool, &msgs, &error) < 0) {
		i_error("Backup index %s: %s", store->dir, error);
		pool_unref(&pool);
		return -1;
	}
	if (restore_open_box(ctx, user, bbox, &box, &keep_uids) < 0) {
		pool_unref(&pool);
		return -1;
	}
	if (ctx->to == NULL)
		restore_check_special_use(store, pass_id, bbox, box);
	hash_table_create(&present, pool, 0, str_hash, strcmp);
	if (mailbox_sync(box, 0) < 0 ||
	    mailbox_get_status(box, STATUS_UIDNEXT, &status) < 0 ||
	    restore_present(box, &msgs, pool, &present) < 0) {
		i_error("Reading mailbox %s failed: %s",
			str_sanitize_utf8(mailbox_get_vname(box), 200),
			mailbox_get_last_internal_error(box, NULL));
		ret = -1;
		goto out;
	}
	next_uid = status.uidnext;

	t = mailbox_transaction_begin(box, MAILBOX_TRANSACTION_FLAG_EXTERNAL |
				      MAILBOX_TRANSACTION_FLAG_ASSIGN_UIDS,
				      __func__);
	array_foreach(&msgs, msg) {
		if (hash_table_lookup(present, msg->guid) != NULL ||
		    hash_table_lookup(present, msg->hash) != NULL) {
			counts->present++;
			continue;
		}
		T_BEGIN {
			error = NULL;
			if (mailbox_migrate_backup_index_body_get(store->index,
					msg->hash, &body, &error) <= 0 ||
			    mailbox_migrate_backup_store_read_body(store,
					&body, &data, &error) < 0) {
				i_error("%s UID %u (GUID %s): body %s can't be "
					"read: %s", mailbox_get_vname(box),
					msg->uid, msg->guid, msg->hash,
					error == NULL ? "not in the index" :
					error);
				counts->failed++;
			} else if (restore_save(t, msg, data, body.size,
					keep_uids && msg->uid >= next_uid ?
					msg->uid : 0) < 0) {
				i_error("Saving into %s failed: %s",
					mailbox_get_vname(box),
					mailbox_get_last_internal_error(box,
									NULL));
				counts->failed++;
			} else {
				counts->restored++;
				in_txn++;
				if (keep_uids && msg->uid >= next_uid)
					next_uid = msg->uid + 1;
			}
		} T_END;
		if (in_txn >= RESTORE_COMMIT_INTERVAL) {
			if (mailbox_transaction_commit(&t) < 0) {
				ret = -1;
				break;
			}
			in_txn = 0;
			t = mailbox_transaction_begin(box,
				MAILBOX_TRANSACTION_FLAG_EXTERNAL |
				MAILBOX_TRANSACTION_FLAG_ASSIGN_UIDS, __func__);
		}
	}
	if (t != NULL && mailbox_transaction_commit(&t) < 0)
		ret = -1;
	if (ret < 0) {
		i_error("Committing into %s failed: %s",
			mailbox_get_vname(box),
			mailbox_get_last_internal_error(box, NULL));
	}
out:
	mailbox_free(&box);
	hash_table_destroy(&present);
	pool_unref(&pool);
	return ret;
}

/* The backup's subscriptions as of the pass, of the names -m selects (with
   --to: the --to mailbox, if a selected name was subscribed). Restore
   adds, never removes: the user's subscriptions now are kept. */
static int restore_subscriptions(struct restore_cmd_context *ctx,
				 struct mail_user *user,
				 struct mailbox_migrate_backup_store *store,
				 uint32_t pass_id,
				 struct imap_match_glob *const *globs)
{
	ARRAY_TYPE(const_string) names;
	struct mail_namespace *ns;
	struct mailbox *box;
	const char *const *namep, *name, *error;
	unsigned int added = 0;
	int ret = 0;

	t_array_init(&names, 16);
	if (mailbox_migrate_backup_index_subscriptions(store->index, pass_id,
			pool_datastack_create(), &names, &error) < 0) {
		i_error("Backup index %s: %s", store->dir, error);
		return -1;
	}
	array_foreach(&names, namep) {
		if (!restore_box_selected(globs, *namep))
			continue;
		name = ctx->to != NULL ? ctx->to : *namep;
		ns = mail_namespace_find(user->namespaces, name);
		box = mailbox_alloc(ns->list, name, 0);
		if (mailbox_list_iter_subscriptions_refresh(ns->list) == 0 &&
		    mailbox_is_subscribed(box)) {
			/* subscribed already */
		} else if (mailbox_set_subscribed(box, TRUE) < 0) {
			i_error("Subscribing %s failed: %s",
				str_sanitize_utf8(name, 200),
				mailbox_get_last_internal_error(box, NULL));
			ret = -1;
		} else {
			added++;
		}
		mailbox_free(&box);
		if (ctx->to != NULL)
			break;
	}
	if (added > 0) {
		i_info("Subscribed %u mailbox name%s as in the backup", added,
		       added == 1 ? "" : "s");
	}
	return ret;
}

static int
cmd_mailbox_migrate_restore_run(struct doveadm_mail_cmd_context *_ctx,
				struct mail_user *user)
{
	struct restore_cmd_context *ctx = (struct restore_cmd_context *)_ctx;
	const struct mailbox_migrate_settings *set;
	struct mailbox_migrate_backup_store *store;
	ARRAY_TYPE(mailbox_migrate_backup_mailbox) boxes;
	const struct mailbox_migrate_backup_mailbox *bbox;
	struct imap_match_glob **globs = NULL;
	struct restore_counts counts, total;
	const char *location, *error;
	unsigned int i, count, matched = 0;
	uint32_t pass_id;
	time_t pass_time;
	int ret;

	if (mailbox_migrate_settings_read(user, &set, &error) < 0) {
		i_error("%s", error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	location = mailbox_migrate_cmd_backup_dir(user, ctx->destination);
	if (location == NULL) {
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	ret = mailbox_migrate_backup_store_open(location,
			MAILBOX_MIGRATE_BACKUP_OPEN_READONLY,
			MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ,
			I_MAX(set->lock_timeout_msecs / 1000, 1), &store,
			&error);
	if (ret <= 0) {
		i_error("Backup store %s: %s", location,
			ret == 0 ? "doesn't exist" : error);
		doveadm_mail_failed_error(_ctx, ret == 0 ?
					  MAIL_ERROR_NOTFOUND : MAIL_ERROR_TEMP);
		return -1;
	}
	if (ctx->at_str != NULL)
		ret = mailbox_migrate_backup_index_pass_at(store->index,
				ctx->at, &pass_id, &pass_time, &error);
	else
		ret = mailbox_migrate_backup_index_last_pass(store->index,
				&pass_id, &pass_time, &error);
	if (ret <= 0) {
		if (ret < 0)
			i_error("Backup index %s: %s", store->dir, error);
		else
			i_error("%s has no backup %s", user->username,
				ctx->at_str == NULL ? "yet" : t_strdup_printf(
				"at or before %s", ctx->at_str));
		doveadm_mail_failed_error(_ctx, ret < 0 ? MAIL_ERROR_TEMP :
					  MAIL_ERROR_NOTFOUND);
		mailbox_migrate_backup_store_close(&store);
		return -1;
	}
	if (ctx->at_str != NULL && store->history_since > 0 &&
	    ctx->at <= store->history_since) {
		i_error("History before %s was dropped by compact --keep: "
			"can't restore %s as of %s",
			mailbox_migrate_cmd_time(store->history_since),
			user->username, ctx->at_str);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_NOTFOUND);
		mailbox_migrate_backup_store_close(&store);
		return -1;
	}
	i_info("Restoring %s as backed up at %s (pass %u)", user->username,
	       mailbox_migrate_cmd_time(pass_time), pass_id);

	count = array_count(&ctx->mailboxes);
	if (count > 0) {
		globs = t_new(struct imap_match_glob *, count + 1);
		for (i = 0; i < count; i++) {
			globs[i] = imap_match_init(pool_datastack_create(),
				array_idx_elem(&ctx->mailboxes, i), TRUE,
				mail_namespaces_get_root_sep(user->namespaces));
		}
	}
	t_array_init(&boxes, 16);
	if (mailbox_migrate_backup_index_mailboxes(store->index, pass_id,
			pool_datastack_create(), &boxes, &error) < 0) {
		i_error("Backup index %s: %s", store->dir, error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
		mailbox_migrate_backup_store_close(&store);
		return -1;
	}
	i_zero(&total);
	ret = 0;
	array_foreach(&boxes, bbox) {
		if (!restore_box_selected(globs, bbox->name))
			continue;
		matched++;
		i_zero(&counts);
		if (restore_box(ctx, user, store, pass_id, bbox, &counts) < 0)
			ret = -1;
		doveadm_print(ctx->to != NULL ?
			t_strdup_printf("%s (into %s)", bbox->name, ctx->to) :
			bbox->name);
		doveadm_print_num(counts.restored);
		doveadm_print_num(counts.present);
		doveadm_print_num(counts.failed);
		total.restored += counts.restored;
		total.present += counts.present;
		total.failed += counts.failed;
	}
	if (matched > 0 &&
	    restore_subscriptions(ctx, user, store, pass_id, globs) < 0)
		ret = -1;
	mailbox_migrate_backup_store_close(&store);
	/* written without an fsync per message (restore_prerun) */
	if (total.restored > 0 &&
	    mailbox_migrate_sync_user_mail(user, &error) < 0) {
		i_error("%s", error);
		ret = -1;
	}
	if (matched == 0 && globs != NULL) {
		i_error("No mailbox in the backup of %s matches %s",
			user->username, t_strarray_join(
				array_front(&ctx->mailboxes), " "));
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_NOTFOUND);
		return -1;
	}
	doveadm_print("(total)");
	doveadm_print_num(total.restored);
	doveadm_print_num(total.present);
	doveadm_print_num(total.failed);
	if (ret < 0 || total.failed > 0) {
		if (total.failed > 0) {
			i_error("%u messages couldn't be restored (the others "
				"were)", total.failed);
		}
		doveadm_mail_failed_error(_ctx, total.failed > 0 ?
					  MAIL_ERROR_EXPUNGED : MAIL_ERROR_TEMP);
		return -1;
	}
	return 0;
}

/* Restored mail is written without an fsync per message and made durable
   by one syncfs() at the end, as a migration pass writes. */
static int restore_prerun(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
			  struct mail_storage_service_user *service_user,
			  const char **error_r)
{
	struct setting_parser_context *set_parser =
		mail_storage_service_user_get_settings_parser(service_user);

	if (settings_parse_keyvalue(set_parser, "mail_fsync", "never") < 0) {
		*error_r = settings_parser_get_error(set_parser);
		return -1;
	}
	return 0;
}

static bool
cmd_mailbox_migrate_restore_parse_arg(struct doveadm_mail_cmd_context *_ctx,
				      int c)
{
	struct restore_cmd_context *ctx = (struct restore_cmd_context *)_ctx;
	const char *value;

	switch (c) {
	case 'a':
		ctx->at_str = p_strdup(_ctx->pool, optarg);
		break;
	case 'm':
		value = p_strdup(_ctx->pool, optarg);
		array_push_back(&ctx->mailboxes, &value);
		break;
	case 't':
		ctx->to = p_strdup(_ctx->pool, optarg);
		break;
	default:
		return FALSE;
	}
	return TRUE;
}

static void
cmd_mailbox_migrate_restore_init(struct doveadm_mail_cmd_context *_ctx,
				 const char *const args[])
{
	struct restore_cmd_context *ctx = (struct restore_cmd_context *)_ctx;

	if (args[0] == NULL || args[1] != NULL)
		doveadm_mail_help_name("mailbox-migrate restore");
	if (!str_begins(args[0], "backup:"))
		i_fatal_status(EX_USAGE, "restore reads a backup store: "
			       "backup:/path/%%u, not %s", args[0]);
	ctx->destination = p_strdup(_ctx->pool, args[0]);
	if (ctx->at_str != NULL &&
	    restore_parse_time(ctx->at_str, &ctx->at) < 0) {
		i_fatal_status(EX_USAGE, "Invalid --at %s: expected a UNIX "
			       "time or an ISO 8601 date-time", ctx->at_str);
	}
	if (ctx->to != NULL && array_count(&ctx->mailboxes) != 1)
		i_fatal_status(EX_USAGE, "--to needs exactly one -m MAILBOX");
	doveadm_print_header_simple("mailbox");
	doveadm_print_header("restored", "restored",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("present", "present",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("failed", "failed",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
}

static struct doveadm_mail_cmd_context *cmd_mailbox_migrate_restore_alloc(void)
{
	struct restore_cmd_context *ctx;

	ctx = mailbox_migrate_cmd_alloc(struct restore_cmd_context);
	ctx->mctx.ctx.getopt_args = "a:m:t:";
	ctx->mctx.ctx.v.parse_arg = cmd_mailbox_migrate_restore_parse_arg;
	ctx->mctx.ctx.v.init = cmd_mailbox_migrate_restore_init;
	ctx->mctx.ctx.v.run = cmd_mailbox_migrate_restore_run;
	ctx->mctx.ctx.v.prerun = restore_prerun;
	p_array_init(&ctx->mailboxes, ctx->mctx.ctx.pool, 4);
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->mctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate_restore = {
	.name = "mailbox-migrate restore",
	.mail_cmd = cmd_mailbox_migrate_restore_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--at <time>] [-m <mailbox>]... [--to <mailbox>] "
		"backup:<path>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('a', "at", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('m', "mailbox", CMD_PARAM_ARRAY, 0)
DOVEADM_CMD_PARAM('t', "to", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "backup", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
