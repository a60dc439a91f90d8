/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* syncfs() */
#endif

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "strescape.h"
#include "istream.h"
#include "write-full.h"
#include "file-lock.h"
#include "time-util.h"
#include "settings-parser.h"
#include "master-service.h"
#include "mail-namespace.h"
#include "mail-storage.h"
#include "mail-storage-service.h"
#include "mail-storage-settings.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "mailbox-migrate-settings.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal.h"
#include "mailbox-migrate-journal-log.h"
#include "mailbox-migrate-destination.h"
#include "mailbox-migrate-hold.h"
#include "mailbox-migrate-backup-store.h"
#include "doveadm-mailbox-migrate-pass.h"
#include "doveadm-mailbox-migrate-device-slots.h"
#include "doveadm-mailbox-migrate-cmd.h"

#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* the source counts as quiet once its journal hasn't moved for this long */
#define CUTOVER_QUIET_MSECS 1000
#define CUTOVER_POLL_MSECS 100
/* how long a pass waits for another pass of the same user to end (a
   logout pass doesn't wait: the running pass takes its changes, or the
   next logout will) */
#define MIGRATE_PASS_LOCK_WAIT_SECS 60

/* A worker records its users' passes once one syncfs() per filesystem
   has made several users' destinations durable, rather than one syncfs()
   per user: at most this many users' records wait, for at most this long
   (their pass locks are held until then). */
#define MIGRATE_DEFER_MAX_USERS 32
#define MIGRATE_DEFER_MAX_MSECS 1000

/* A pass whose record waits for the syncfs() of its destination. */
struct migrate_deferred {
	const char *username, *dest_name;
	struct mailbox_migrate_db *db;
	int pass_lock_fd;
	struct file_lock *pass_lock;
	struct mailbox_migrate_pass_record *record;
};

/* A filesystem the waiting passes wrote to, and a directory on it. */
struct migrate_sync_root {
	dev_t dev;
	const char *path;
	/* opened by the user whose pass wrote there: the later syncfs()
	   needs no right to the path (another user's, or NFS squashing
	   root) */
	int fd;
};

struct migrate_worker {
	pid_t pid;
	/* unlinked temporary file the worker writes its rows to */
	int rows_fd;
};

/* users are handed to the workers through one pipe in records of this
   size: a write and a read of at most PIPE_BUF bytes are atomic, so each
   worker reads whole records */
#define MIGRATE_USER_RECORD_SIZE 256

struct migrate_cmd_context {
	struct mailbox_migrate_cmd_context mctx;

	const char *destination;
	ARRAY_TYPE(const_string) mailboxes;
	const char *switch_command;
	bool full, dry_run, cutover;
	/* --logout: run by the logout hook's service for the destinations
	   of the user's settings, quietly, skipping what isn't routine */
	bool logout;
	/* DESTINATION is backup:DIR */
	bool backup;
	bool dest_missing;
	/* ctx->user is ours to free (a resumed cutover's source) */
	bool src_user_owned;

	/* -A/-F: users run in `workers` child processes, which take them
	   from users_fd (the parent's end writes) */
	unsigned int workers;
	/* workers at once on one filesystem device */
	unsigned int device_workers;
	struct mailbox_migrate_device_slots *device_slots;
	ARRAY(struct migrate_worker) running;
	int users_fd;
	/* in a worker: where its rows go */
	int rows_fd;
	/* in a worker: passes waiting to be recorded (deferred_pool holds
	   what they need), since deferred_since, and the filesystems to
	   sync first */
	pool_t deferred_pool;
	ARRAY(struct migrate_deferred) deferred;
	ARRAY(struct migrate_sync_root) sync_roots;
	struct timeval deferred_since;
	/* this user's pass may leave its record to the worker ... */
	bool defer_record;
	/* ... and did */
	struct mailbox_migrate_pass_record *record;

	/* per user */
	struct mail_user *user, *dst_user;
	const char *dest_name;
	struct mailbox_migrate_db *db, *dst_db;
	const char *src_db_path, *dst_db_path;
	struct mailbox_migrate_backup_store *store;
	/* backup: the store's directory; the store is opened only when the
	   pass first needs it */
	const char *backup_dir;
	bool backup_late_open;
	/* the user's own index rewrite settings, for the destination */
	uoff_t index_rewrite_min_log_bytes, index_rewrite_max_log_bytes;
	/* one pass of a user at a time */
	int pass_lock_fd;
	struct file_lock *pass_lock;
};

/* A row of the table: printed, or in a worker process written to the
   rows file the parent prints from. */
static void migrate_emit_row(struct migrate_cmd_context *ctx,
			     const char *vname,
			     const struct mailbox_migrate_pass_counts *counts,
			     double secs)
{
	const char *line;

	if (ctx->rows_fd != -1) {
		line = t_strdup_printf("%s\t%s\t%u\t%u\t%u\t%u\t%.3f\n",
				       str_tabescape(ctx->user->username),
				       str_tabescape(vname), counts->copied,
				       counts->expunged, counts->flag_changes,
				       counts->reassigned, secs);
		if (write_full(ctx->rows_fd, line, strlen(line)) < 0)
			i_error("write(rows file) failed: %m");
		return;
	}
	doveadm_print(vname);
	doveadm_print_num(counts->copied);
	doveadm_print_num(counts->expunged);
	doveadm_print_num(counts->flag_changes);
	doveadm_print_num(counts->reassigned);
	doveadm_print(t_strdup_printf("%.3f", secs));
}

static void migrate_print_row(void *context, const char *vname,
			      const struct mailbox_migrate_pass_counts *counts,
			      double secs)
{
	migrate_emit_row(context, vname, counts, secs);
}

static bool path_is_inside(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	return strncmp(path, dir, len) == 0 &&
		(path[len] == '/' || path[len] == '\0');
}

/* Returns 1 if both users' mail is in the same place, -1 if the
   destination is inside the source or the other way round (or the two
   can't be combined), 0 if they are apart. */
static int migrate_check_paths(struct mail_user *user,
			       struct mail_user *dst_user)
{
	static const enum mailbox_list_path_type types[] = {
		MAILBOX_LIST_PATH_TYPE_MAILBOX,
		MAILBOX_LIST_PATH_TYPE_INDEX,
	};
	struct mail_namespace *ns, *dns;
	const char *src, *dst;
	unsigned int i;
	bool same = TRUE;

	ns = mail_namespace_find_inbox(user->namespaces);
	dns = mail_namespace_find_inbox(dst_user->namespaces);
	if (ns == NULL || dns == NULL) {
		i_error("No INBOX namespace");
		return -1;
	}
	if (mail_namespace_get_sep(ns) != mail_namespace_get_sep(dns)) {
		i_error("Source and destination must use the same hierarchy "
			"separator ('%c' vs '%c')", mail_namespace_get_sep(ns),
			mail_namespace_get_sep(dns));
		return -1;
	}
	for (i = 0; i < N_ELEMENTS(types); i++) {
		if (!mailbox_list_get_root_path(ns->list, types[i], &src) ||
		    !mailbox_list_get_root_path(dns->list, types[i], &dst))
			continue;
		if (strcmp(src, dst) == 0)
			continue;
		same = FALSE;
		if (path_is_inside(dst, src) || path_is_inside(src, dst)) {
			i_error("Destination %s is %s the source %s", dst,
				path_is_inside(dst, src) ? "inside" :
				"a parent of", src);
			return -1;
		}
	}
	return same ? 1 : 0;
}

/* A backup store must lie apart from the user's mail. */
static int migrate_check_backup_path(struct mail_user *user, const char *dir)
{
	static const enum mailbox_list_path_type types[] = {
		MAILBOX_LIST_PATH_TYPE_MAILBOX,
		MAILBOX_LIST_PATH_TYPE_INDEX,
	};
	struct mail_namespace *ns;
	const char *root;
	unsigned int i;

	ns = mail_namespace_find_inbox(user->namespaces);
	for (i = 0; ns != NULL && i < N_ELEMENTS(types); i++) {
		if (!mailbox_list_get_root_path(ns->list, types[i], &root))
			continue;
		if (path_is_inside(dir, root) || path_is_inside(root, dir)) {
			i_error("Backup store %s is %s the user's mail %s", dir,
				path_is_inside(dir, root) ? "inside" :
				"a parent of", root);
			return -1;
		}
	}
	return 0;
}

/* Free a second mail user of the account (migrate_user_at()) as dsync frees
   its second user: without the session-finished event, which would read
   and report this process's statistics a second time for one session. */
static void migrate_user_free(struct mail_user **user)
{
	mail_user_unref(user);
}

/* A second mail user of the account being worked on, at location. */
static int migrate_user_at(struct migrate_cmd_context *ctx,
			   const char *location, struct mail_user **user_r)
{
	struct setting_parser_context *set_parser;
	const char *error;

	set_parser = mail_storage_service_user_get_settings_parser(
				ctx->mctx.ctx.cur_service_user);
	if (settings_parse_keyvalue(set_parser, "mail_location",
				    location) < 0) {
		i_error("Invalid mail location %s: %s", location,
			settings_parser_get_error(set_parser));
		return -1;
	}
	if (mail_storage_service_next(ctx->mctx.ctx.storage_service,
				      ctx->mctx.ctx.cur_service_user,
				      user_r, &error) < 0) {
		i_error("Mail location %s: %s", location, error);
		return -1;
	}
	/* the mail plugin loaded for this user must not journal the pass'
	   own writes nor count them as seen by a client */
	(*user_r)->dsyncing = TRUE;
	return 0;
}

/* The source of a cutover that was interrupted after the switch, when
   the userdb already names the destination. Returns 1 and the location,
   0 if there is none, -1 on error. */
static int migrate_find_cutover_source(struct migrate_cmd_context *ctx,
				       struct mail_user *user,
				       const char **location_r)
{
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *path, *error;
	int ret;

	if (mailbox_migrate_settings_get_db_path(user, &path, &error) < 0)
		return 0;
	ret = mailbox_migrate_db_open(path,
				      MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY,
				      ctx->mctx.set->lock_timeout_msecs,
				      ctx->mctx.set->journal_max_entries, &db,
				      &code, &error);
	if (ret <= 0)
		return ret;
	ret = mailbox_migrate_db_meta_get(db, "cutover_from", location_r,
					  &error);
	if (ret > 0)
		*location_r = t_strdup(*location_r);
	mailbox_migrate_db_close(&db);
	if (ret > 0 && (*location_r)[0] == '\0')
		ret = 0;
	return ret;
}

static int
migrate_set_index_rewrite(struct mail_storage_service_user *service_user,
			  uoff_t min_log_bytes, uoff_t max_log_bytes,
			  const char **error_r)
{
	if (mail_storage_service_user_set_setting(service_user,
			"mail_index_rewrite_min_log_bytes",
			t_strdup_printf("%"PRIuUOFF_T, min_log_bytes),
			error_r) < 0 ||
	    mail_storage_service_user_set_setting(service_user,
			"mail_index_rewrite_max_log_bytes",
			t_strdup_printf("%"PRIuUOFF_T, max_log_bytes),
			error_r) < 0)
		return -1;
	return 0;
}

static int migrate_init_users(struct migrate_cmd_context *ctx,
			      struct mail_user *user)
{
	struct setting_parser_context *set_parser;
	struct mail_user *other, *src_user;
	const char *location, *from, *root, *error;
	int ret;

	ctx->user = user;
	if (ctx->backup) {
		location = mailbox_migrate_cmd_backup_dir(user,
							  ctx->destination);
		if (location == NULL)
			return -1;
		ctx->dest_name = p_strconcat(ctx->mctx.ctx.pool, "backup:",
					     location, NULL);
		return migrate_check_backup_path(user, location);
	}
	location = mailbox_migrate_cmd_expand(user, ctx->destination);
	if (location == NULL)
		return -1;
	ctx->dest_name = p_strdup(ctx->mctx.ctx.pool, location);
	/* The destination is written without an fsync per message: the pass
	   syncs its filesystem once, when it wrote something, before it
	   records the checkpoint (a crash before that only makes the next
	   pass redo the work). One sync instead of one or two per message
	   is what makes passes fast on real disks. */
	set_parser = mail_storage_service_user_get_settings_parser(
				ctx->mctx.ctx.cur_service_user);
	if (settings_parse_keyvalue(set_parser, "mail_fsync", "never") < 0)
		i_unreached();
	/* the destination's index is rewritten as the user's settings say
	   (see migrate_user_settings()) */
	if (migrate_set_index_rewrite(ctx->mctx.ctx.cur_service_user,
				      ctx->index_rewrite_min_log_bytes,
				      ctx->index_rewrite_max_log_bytes,
				      &error) < 0) {
		i_error("%s", error);
		return -1;
	}
	if (migrate_user_at(ctx, location, &other) < 0)
		return -1;
	ret = migrate_check_paths(user, other);
	if (ret < 0) {
		migrate_user_free(&other);
		return -1;
	}
	ctx->user = user;
	ctx->dst_user = other;
	if (ret > 0 && ctx->logout) {
		/* the userdb already points at the destination: nothing to
		   keep current from here */
		migrate_user_free(&ctx->dst_user);
		i_info("Logout pass to %s skipped: it is the user's own mail "
		       "location", location);
		ctx->dest_name = NULL;
		return 0;
	}
	if (ret > 0) {
		migrate_user_free(&ctx->dst_user);
		ret = migrate_find_cutover_source(ctx, user, &from);
		if (ret <= 0) {
			if (ret == 0) {
				i_error("Destination %s is the same as the "
					"source", location);
			}
			return -1;
		}
		/* the cutover switched the userdb, then died: the source
		   is where it came from (made with the index rewrite
		   settings given back above, while the destination, the
		   user made first, keeps the source's) */
		i_info("The userdb already points at %s: finishing the "
		       "cutover from %s", location, from);
		if (migrate_user_at(ctx, from, &src_user) < 0)
			return -1;
		user->dsyncing = TRUE;
		ctx->user = src_user;
		ctx->dst_user = user;
		ctx->src_user_owned = TRUE;
	}

	ctx->dest_missing = FALSE;
	if (mailbox_list_get_root_path(ctx->dst_user->namespaces->list,
				       MAILBOX_LIST_PATH_TYPE_MAILBOX,
				       &root) && access(root, F_OK) < 0) {
		if (errno != ENOENT) {
			i_error("Destination %s: access(%s) failed: %m",
				location, root);
			return -1;
		}
		ctx->dest_missing = TRUE;
	}
	return 0;
}

/* The destination's state file, for the seen UIDNEXT its clients have
   been shown; it appears once the first session or the cutover's hold
   made it, so every pass looks again. */
static int migrate_open_dst_db(struct migrate_cmd_context *ctx)
{
	enum mailbox_migrate_db_error code;
	const char *error;

	if (ctx->dst_db != NULL || ctx->dst_db_path == NULL)
		return 0;
	if (mailbox_migrate_db_open(ctx->dst_db_path,
				    MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY,
				    ctx->mctx.set->lock_timeout_msecs,
				    ctx->mctx.set->journal_max_entries,
				    &ctx->dst_db, &code, &error) < 0) {
		i_error("Can't read the destination's state file: %s (%s)",
			error, mailbox_migrate_db_error_name(code));
		return -1;
	}
	return 0;
}

static int migrate_open_dbs(struct migrate_cmd_context *ctx,
			    struct mail_user *user)
{
	const struct mailbox_migrate_settings *set = ctx->mctx.set;
	enum mailbox_migrate_db_open_flags flags;
	enum mailbox_migrate_db_error code;
	const char *path, *dst_path, *error;

	if (mailbox_migrate_settings_get_db_path(user, &path, &error) < 0) {
		i_error("%s", error);
		return -1;
	}
	ctx->src_db_path = p_strdup(ctx->mctx.ctx.pool, path);
	flags = set->db_fsync ? MAILBOX_MIGRATE_DB_OPEN_FLAG_FSYNC : 0;
	if (!ctx->dry_run)
		flags |= MAILBOX_MIGRATE_DB_OPEN_FLAG_CHECKPOINT;
	if (mailbox_migrate_db_open(path, flags, set->lock_timeout_msecs,
				    set->journal_max_entries, &ctx->db,
				    &code, &error) < 0) {
		i_error("Can't open state file of user %s: %s (%s)%s",
			user->username, error,
			mailbox_migrate_db_error_name(code),
			code != MAILBOX_MIGRATE_DB_ERROR_CORRUPT ? "" :
			"; the user's next session that writes to it (an "
			"IMAP SELECT or POP3 login recording what the client "
			"was shown) moves it aside and starts a new journal "
			"(or move it aside yourself), then passes compare in "
			"full");
		return -1;
	}
	if (ctx->dst_user == NULL ||
	    mailbox_migrate_settings_get_db_path(ctx->dst_user, &dst_path,
						 &error) < 0)
		return 0;
	if (strcmp(dst_path, path) == 0) {
		i_warning("The destination's state file is the source's "
			  "(%s): the destination's seen UIDNEXT can't be "
			  "told apart; set mailbox_migrate_db per location",
			  path);
		return 0;
	}
	ctx->dst_db_path = p_strdup(ctx->mctx.ctx.pool, dst_path);
	return 0;
}

static int migrate_get_dst_db(void *context, struct mailbox_migrate_db **db_r)
{
	struct migrate_cmd_context *ctx = context;

	if (migrate_open_dst_db(ctx) < 0)
		return -1;
	*db_r = ctx->dst_db;
	return 0;
}

/* Open the pass' backup store as ctx->store (and begin the pass in it).
   Returns 1, 0 if a dry run found no store, -1 with *error_r. */
static int migrate_backup_open(struct migrate_cmd_context *ctx,
			       const char **error_r)
{
	const struct mailbox_migrate_settings *set = ctx->mctx.set;
	enum mailbox_migrate_backup_compression compression;
	int ret;

	if (mailbox_migrate_backup_compression_parse(set->backup_compression,
						     &compression) < 0)
		i_unreached(); /* checked by the settings */
	ret = mailbox_migrate_backup_store_open(ctx->backup_dir, ctx->dry_run ?
			MAILBOX_MIGRATE_BACKUP_OPEN_READONLY :
			MAILBOX_MIGRATE_BACKUP_OPEN_CREATE, compression,
			I_MAX(set->lock_timeout_msecs / 1000, 1),
			&ctx->store, error_r);
	if (ret <= 0)
		return ret;
	if (ctx->store->cut_bytes > 0) {
		i_warning("Backup store %s: cut %"PRIuUOFF_T" bytes of an "
			  "unfinished pass", ctx->backup_dir,
			  ctx->store->cut_bytes);
	}
	if (!ctx->dry_run)
		mailbox_migrate_backup_store_pass_begin(ctx->store, ioloop_time);
	return 1;
}

static int
migrate_backup_open_late(void *context,
			 struct mailbox_migrate_backup_store **store_r,
			 const char **error_r)
{
	struct migrate_cmd_context *ctx = context;
	const char *error;
	int ret;

	i_assert(!ctx->dry_run);
	if ((ret = migrate_backup_open(ctx, &error)) <= 0) {
		*error_r = t_strdup_printf("Backup store %s: %s",
			ctx->backup_dir, ret < 0 ? error : "doesn't exist");
		return -1;
	}
	*store_r = ctx->store;
	return 0;
}

static void migrate_flush_deferred(struct migrate_cmd_context *ctx);

/* Record the passes the worker holds now, in the middle of another
   user's work (whose log prefix stays). */
static void migrate_flush_deferred_now(struct migrate_cmd_context *ctx)
{
	const char *prefix;

	/* only a worker holds passes */
	if (!array_is_created(&ctx->deferred) ||
	    array_count(&ctx->deferred) == 0)
		return;
	prefix = t_strdup(i_get_failure_prefix());
	T_BEGIN {
		migrate_flush_deferred(ctx);
	} T_END;
	i_set_failure_prefix("%s", prefix);
}

/* Before a wait of unknown length (a lock, a device slot): the held
   passes and their pass locks don't wait with the worker. */
static void migrate_flush_before_wait(void *context)
{
	migrate_flush_deferred_now(context);
}

/* During a worker's pass: the passes it holds for one sync wait no longer
   than they would between users, whatever this pass takes. */
static void migrate_pass_tick(void *context)
{
	struct migrate_cmd_context *ctx = context;
	struct timeval now;

	if (array_count(&ctx->deferred) == 0)
		return;
	i_gettimeofday(&now);
	if (timeval_diff_msecs(&now, &ctx->deferred_since) >=
	    MIGRATE_DEFER_MAX_MSECS)
		migrate_flush_deferred_now(ctx);
}

/* Fold what the source's sessions appended to the journal log since the
   state file was opened (or last folded). */
static int migrate_fold_journal_log(struct migrate_cmd_context *ctx)
{
	enum mailbox_migrate_db_error code;
	const char *error;

	if (mailbox_migrate_journal_log_fold(ctx->db,
			ctx->mctx.set->journal_max_entries,
			ctx->mctx.set->lock_timeout_msecs, &code, &error) < 0) {
		i_error("Can't fold the journal log of user %s: %s",
			ctx->user->username, error);
		return -1;
	}
	return 0;
}

static int migrate_pass(struct migrate_cmd_context *ctx, bool source_quiet,
			const char *full_reason)
{
	struct mailbox_migrate_pass_settings set;
	struct mailbox_migrate_pass_result result;
	enum mail_error mail_error;
	struct timeval start, end;
	const char *error;
	int ret;

	i_gettimeofday(&start);
	/* the pass takes the journal as it is now: the state file was
	   opened (and its log folded) maybe a pass or a cutover step ago */
	if (migrate_fold_journal_log(ctx) < 0) {
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	i_zero(&set);
	set.dest_name = ctx->dest_name;
	if (array_count(&ctx->mailboxes) > 0) {
		array_append_zero(&ctx->mailboxes);
		set.mailbox_patterns = array_front(&ctx->mailboxes);
		array_pop_back(&ctx->mailboxes);
	}
	set.full = ctx->full || full_reason != NULL;
	set.full_reason = ctx->full ? NULL : full_reason;
	set.dry_run = ctx->dry_run;
	set.dest_missing = ctx->dest_missing;
	/* migrate_init_users() set mail_fsync=never for the destination */
	set.sync_destination = TRUE;
	set.defer_record = ctx->defer_record;
	set.record_pool = ctx->deferred_pool;
	set.source_quiet = source_quiet;
	set.mailbox_done = migrate_print_row;
	if (ctx->deferred_pool != NULL)
		set.tick = migrate_pass_tick;
	set.progress_interval_msecs = ctx->mctx.set->progress_interval_msecs;
	if (ctx->store != NULL)
		set.backup = ctx->store;
	else if (ctx->backup_late_open)
		set.backup_open = migrate_backup_open_late;
	else
		set.get_dst_db = migrate_get_dst_db;
	set.context = ctx;
	ret = mailbox_migrate_pass_run(ctx->user, ctx->dst_user, ctx->db,
				       &set, &result,
				       &mail_error, &error);
	ctx->record = result.record;
	i_info("%s%s pass to %s: %u mailboxes, %u copied, "
	       "%u expunged, %u flag changes, %u reassigned%s%s%s%s",
	       ctx->dry_run ? "(dry run) " : "",
	       result.full ? "full" : "journal", ctx->dest_name,
	       result.mailboxes_touched, result.total.copied,
	       result.total.expunged, result.total.flag_changes,
	       result.total.reassigned,
	       result.full ? " (" : "",
	       result.full ? result.full_reason : "",
	       result.full ? ")" : "",
	       result.mailboxes_unchanged == 0 ? "" :
	       t_strdup_printf("; %u unchanged per the mailbox list index",
			       result.mailboxes_unchanged));
	i_gettimeofday(&end);
	migrate_emit_row(ctx, "(total)", &result.total,
			 timeval_diff_usecs(&end, &start) / 1e6);
	if (ret < 0) {
		i_error("Pass to %s failed: %s", ctx->dest_name, error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, mail_error);
		return -1;
	}
	return 0;
}

static int migrate_set_phase(struct migrate_cmd_context *ctx,
			     const char *phase)
{
	struct mailbox_migrate_destination dest;
	const char *error;

	if (mailbox_migrate_destination_get(ctx->db, ctx->dest_name, &dest,
					    &error) < 0 ||
	    (dest.phase = phase,
	     mailbox_migrate_destination_set(ctx->db, &dest, &error)) < 0) {
		i_error("Recording phase %s: %s", phase, error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	return 0;
}

/* Run argv (argv[0] a path or a name found in PATH) with the privileges
   doveadm was started with (the pass itself runs as the mail user), and
   wait for it. Returns its exit status, -1 if it couldn't be run. */
static int migrate_run_program(const char *const *argv)
{
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0) {
		i_error("fork() failed: %m");
		return -1;
	}
	if (pid == 0) {
		if (getuid() == 0 && geteuid() != 0) {
			/* doveadm dropped privileges only temporarily */
			if (seteuid(0) < 0 || setgid(0) < 0 || setuid(0) < 0)
				i_fatal("Can't regain root privileges: %m");
		}
		/* stdout is the command's table (maybe JSON): what the
		   program says goes to stderr */
		if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			i_fatal("dup2() failed: %m");
		execvp(argv[0], (char *const *)argv);
		i_fatal("execvp(%s) failed: %m", argv[0]);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			i_error("waitpid() failed: %m");
			return -1;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	i_error("%s died with signal %d", argv[0], WTERMSIG(status));
	return -1;
}

static int migrate_switch(struct migrate_cmd_context *ctx)
{
	ARRAY_TYPE(const_string) argv;
	const char *const *words;
	int status;

	if (ctx->switch_command == NULL)
		return 0;
	/* the command's own words, then the user name as one argument:
	   never through a shell */
	words = t_strsplit_spaces(ctx->switch_command, " \t");
	if (words[0] == NULL)
		return 0;
	t_array_init(&argv, 8);
	array_append(&argv, words, str_array_length(words));
	array_push_back(&argv, &ctx->user->username);
	array_append_zero(&argv);
	status = migrate_run_program(array_front(&argv));
	if (status != 0) {
		i_error("Switch command %s failed (exit %d): the user stays "
			"on the source", words[0], status);
		return -1;
	}
	return 0;
}

static void migrate_kick_source(struct migrate_cmd_context *ctx)
{
	const char *argv[] = {
		"doveadm", "-c", master_service_get_config_path(master_service),
		"kick", ctx->user->username, NULL
	};
	char exe[PATH_MAX];
	ssize_t len;
	int status;

	/* this very doveadm binary, if it can be known */
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = '\0';
		argv[0] = t_strdup(exe);
	}
	status = migrate_run_program(argv);
	/* DOVEADM_EX_NOTFOUND: the user had no sessions */
	if (status != 0 && status != DOVEADM_EX_NOTFOUND) {
		i_warning("doveadm kick %s exited with %d: sessions on the "
			  "source end by themselves", ctx->user->username,
			  status);
	}
}

/* Wait until no process has written the source's journal for a while,
   bounded by mailbox_migrate_cutover_wait. */
static void migrate_wait_quiet(struct migrate_cmd_context *ctx)
{
	struct timeval start, now, last_change;
	uint64_t seq, last_seq = 0;
	const char *error;

	i_gettimeofday(&start);
	last_change = start;
	(void)migrate_fold_journal_log(ctx);
	(void)mailbox_migrate_journal_get_last_seq(ctx->db, &last_seq, &error);
	for (;;) {
		usleep(CUTOVER_POLL_MSECS * 1000);
		i_gettimeofday(&now);
		/* the sessions append to the journal log; a fold that
		   fails (locked) leaves the source not quiet yet */
		if (migrate_fold_journal_log(ctx) < 0)
			seq = last_seq + 1;
		else if (mailbox_migrate_journal_get_last_seq(ctx->db, &seq,
							      &error) < 0)
			break;
		if (seq != last_seq) {
			last_seq = seq;
			last_change = now;
		} else if (timeval_diff_msecs(&now, &last_change) >=
			   CUTOVER_QUIET_MSECS) {
			break;
		}
		if (timeval_diff_msecs(&now, &start) >=
		    (long long)ctx->mctx.set->cutover_wait_secs * 1000) {
			i_warning("Source still changing after %u s; "
				  "the final pass goes ahead",
				  ctx->mctx.set->cutover_wait_secs);
			break;
		}
	}
}

/* Write meta keys into the destination's own state file: where a cutover
   comes from (so that a rerun after the switch finds the source), and
   once done, where the user was migrated from (for `status` run there). */
static int migrate_dest_meta_set(struct migrate_cmd_context *ctx,
				 const char *const *keys_values)
{
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *path, *error;
	unsigned int i;
	int ret = 0;

	if (mailbox_migrate_settings_get_db_path(ctx->dst_user, &path,
						 &error) < 0 ||
	    strcmp(path, ctx->src_db_path) == 0)
		return 0;
	if (mailbox_migrate_db_open(path, 0, ctx->mctx.set->lock_timeout_msecs,
				    ctx->mctx.set->journal_max_entries,
				    &db, &code, &error) < 0) {
		i_error("Can't write the destination's state file %s: %s",
			path, error);
		return -1;
	}
	for (i = 0; keys_values[i] != NULL && ret == 0; i += 2) {
		if (mailbox_migrate_db_meta_set(db, keys_values[i],
				keys_values[i + 1], &error) < 0) {
			i_error("Can't write the destination's state file "
				"%s: %s", path, error);
			ret = -1;
		}
	}
	mailbox_migrate_db_close(&db);
	return ret;
}

static const char *migrate_source_location(struct migrate_cmd_context *ctx)
{
	return mail_user_set_get_storage_set(ctx->user)->mail_location;
}

static const char *const cutover_steps[] = {
	MAILBOX_MIGRATE_PHASE_CUTOVER_HOLD,
	MAILBOX_MIGRATE_PHASE_CUTOVER_PASS,
	MAILBOX_MIGRATE_PHASE_CUTOVER_SWITCH,
	MAILBOX_MIGRATE_PHASE_CUTOVER_QUIET,
	MAILBOX_MIGRATE_PHASE_CUTOVER_FINAL,
};

/* The cutover of SPEC, each step recorded before it runs so that a rerun
   resumes at the step that was interrupted. */
static int migrate_cutover(struct migrate_cmd_context *ctx,
			   const char *phase)
{
	const char *hold_path, *error;
	unsigned int step = 0, i;
	int ret = 0;

	for (i = 0; i < N_ELEMENTS(cutover_steps); i++) {
		if (strcmp(phase, cutover_steps[i]) == 0)
			step = i;
	}
	if (step > 0)
		i_info("Resuming the interrupted cutover at %s", phase);
	if (mailbox_migrate_hold_get_path(ctx->dst_user, &hold_path,
					  &error) < 0) {
		i_error("Destination %s: %s", ctx->dest_name, error);
		return -1;
	}

	for (; step < N_ELEMENTS(cutover_steps) && ret == 0; step++) {
		if (migrate_set_phase(ctx, cutover_steps[step]) < 0)
			return -1;
		switch (step) {
		case 0:
			/* a. hold the user's new sessions on the destination
			   (for longer than the cutover can take, should it
			   die: the plugin there bounds each wait itself) */
			if (mailbox_migrate_hold_set(hold_path, ioloop_time +
					ctx->mctx.set->cutover_wait_secs * 4 +
					60, &error) < 0) {
				i_error("Can't hold sessions: %s", error);
				ret = -1;
				break;
			}
			const char *hold_meta[] = {
				"cutover_from", migrate_source_location(ctx),
				NULL
			};
			ret = migrate_dest_meta_set(ctx, hold_meta);
			break;
		case 1:
			/* b. a pass while the source is live, then c. raise
			   the destination's UIDNEXTs to the source's */
			ret = migrate_pass(ctx, FALSE, NULL);
			if (ret == 0 &&
			    mailbox_migrate_pass_raise_uidnext(ctx->user,
					ctx->dst_user, ctx->db, ctx->dest_name,
					FALSE, TRUE, &error) < 0) {
				i_error("Raising UIDNEXT: %s", error);
				ret = -1;
			}
			break;
		case 2:
			/* d. the administrator's userdb flip */
			if (migrate_switch(ctx) < 0) {
				(void)mailbox_migrate_hold_clear(hold_path,
								 &error);
				(void)migrate_set_phase(ctx,
					MAILBOX_MIGRATE_PHASE_COPYING);
				doveadm_mail_failed_error(&ctx->mctx.ctx,
							  MAIL_ERROR_TEMP);
				return -1;
			}
			break;
		case 3:
			/* e. end the sessions on the source, wait for quiet */
			migrate_kick_source(ctx);
			migrate_wait_quiet(ctx);
			break;
		case 4:
			/* f. the final pass, g. every destination UIDNEXT
			   at least what any client of the source was shown */
			ret = migrate_pass(ctx, TRUE, NULL);
			if (ret == 0 &&
			    mailbox_migrate_pass_raise_uidnext(ctx->user,
					ctx->dst_user, ctx->db, ctx->dest_name,
					TRUE, FALSE, &error) < 0) {
				i_error("Raising UIDNEXT: %s", error);
				ret = -1;
			}
			break;
		}
	}
	if (ret < 0) {
		/* the hold stays until its time runs out or a rerun
		   finishes; the phase says where to resume */
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	/* h. release the held sessions, record the user as migrated */
	if (mailbox_migrate_hold_clear(hold_path, &error) < 0) {
		i_error("Can't release held sessions: %s", error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	if (migrate_set_phase(ctx, MAILBOX_MIGRATE_PHASE_DONE) < 0)
		return -1;
	const char *done_meta[] = {
		"migrated_from", migrate_source_location(ctx),
		"migrated_at", dec2str(ioloop_time),
		"cutover_from", "",
		NULL
	};
	if (migrate_dest_meta_set(ctx, done_meta) < 0)
		i_warning("status run on the destination won't show where "
			  "the user came from");
	i_info("Cutover of %s to %s done", ctx->user->username,
	       ctx->dest_name);
	return 0;
}

static int migrate_backup_user(struct migrate_cmd_context *ctx)
{
	const char *dir = ctx->dest_name + 7, *error;
	const char *full_reason = NULL, *last_pass_key, *files_key, *value;
	const char *files = NULL, *data_name;
	uint32_t last_pass, recorded = 0;
	time_t last_time;
	bool have_recorded = FALSE;
	int ret;

	ctx->backup_dir = dir;
	last_pass_key = t_strconcat("backup_last_pass:", dir, NULL);
	files_key = t_strconcat("backup_store_files:", dir, NULL);
	if (mailbox_migrate_db_meta_get(ctx->db, last_pass_key, &value,
					&error) > 0 &&
	    str_to_uint32(value, &recorded) == 0)
		have_recorded = TRUE;
	if (mailbox_migrate_db_meta_get(ctx->db, files_key, &files,
					&error) <= 0)
		files = NULL;

	if (!ctx->dry_run && !ctx->full && files != NULL &&
	    mailbox_migrate_backup_store_fingerprint_matches(dir, files)) {
		/* nobody has written to the store since a pass left it
		   complete: open it only if this pass brings something (a
		   pass with nothing to bring then reads only the journal and
		   the mailbox list index) */
		ctx->backup_late_open = TRUE;
	} else if ((ret = migrate_backup_open(ctx, &error)) < 0) {
		i_error("Backup store %s: %s", dir, error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	} else if (ret == 0) {
		/* a dry run doesn't make the store */
		i_info("(dry run) %s has no backup store yet: the pass would "
		       "make it and back up every mailbox", dir);
		return 0;
	} else if (ctx->store->index == NULL) {
		/* dry run of an empty store */
	} else if ((ret = mailbox_migrate_backup_index_last_pass(
			ctx->store->index, &last_pass, &last_time,
			&error)) < 0) {
		i_error("Backup store %s: %s", dir, error);
		mailbox_migrate_backup_store_close(&ctx->store);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	} else if (ret == 0) {
		/* a new (or emptied) store: whatever the state file says an
		   earlier pass left, it isn't here */
		full_reason = "the backup store has no pass yet";
	} else if (have_recorded && last_pass < recorded) {
		/* reindexed after damage, or put back from an older copy:
		   the journal checkpoint covers passes that aren't here */
		full_reason = t_strdup_printf("the backup store's last pass "
			"is %u, the state file remembers %u", last_pass,
			recorded);
	}
	ret = migrate_pass(ctx, FALSE, full_reason);
	ctx->backup_late_open = FALSE;
	if (ctx->store == NULL)
		return ret;
	if (ret == 0 && !ctx->dry_run &&
	    (mailbox_migrate_backup_index_last_pass(ctx->store->index,
			&last_pass, &last_time, &error) < 0 ||
	     /* a pass that appended nothing leaves it as it was */
	     ((!have_recorded || recorded != last_pass) &&
	      mailbox_migrate_db_meta_set(ctx->db, last_pass_key,
			dec2str(last_pass), &error) < 0))) {
		/* only the check above is weaker for it */
		i_warning("Can't record the backup store's last pass: %s",
			  error);
	}
	data_name = t_strdup(strrchr(ctx->store->data_path, '/') + 1);
	mailbox_migrate_backup_store_close(&ctx->store);
	if (ret < 0 || ctx->dry_run)
		return ret;
	/* after the close, which checkpointed the index */
	value = mailbox_migrate_backup_store_fingerprint(dir, data_name);
	if (value != NULL && null_strcmp(value, files) != 0 &&
	    mailbox_migrate_db_meta_set(ctx->db, files_key, value,
					&error) < 0) {
		/* the next pass opens the store even if it has nothing to
		   bring */
		i_warning("Can't record the backup store's files: %s", error);
	}
	return ret;
}

/* Take the user's pass lock, a file beside the state file: passes of one
   user (from cron, the logout hook, a cutover) run one at a time. Returns
   1 when taken, 0 when another pass holds it (after waiting wait_secs),
   -1 on error. */
static int migrate_lock_user(struct migrate_cmd_context *ctx,
			     unsigned int wait_secs)
{
	struct file_lock_settings lock_set = {
		.lock_method = FILE_LOCK_METHOD_FLOCK,
	};
	const char *path, *error;
	int ret;

	path = t_strconcat(ctx->src_db_path, ".pass-lock", NULL);
	/* not inherited by the switch command: a run killed while it runs
	   would leave its lock to the command */
	ctx->pass_lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ctx->pass_lock_fd == -1) {
		i_error("open(%s) failed: %m", path);
		return -1;
	}
	ret = file_try_lock(ctx->pass_lock_fd, path, F_WRLCK, &lock_set,
			    &ctx->pass_lock, &error);
	if (ret == 0 && wait_secs > 0) {
		/* the holder may be one of this worker's own held passes
		   (the user met again) */
		migrate_flush_before_wait(ctx);
		ret = file_wait_lock(ctx->pass_lock_fd, path, F_WRLCK,
				     &lock_set, wait_secs, &ctx->pass_lock,
				     &error);
	}
	if (ret <= 0) {
		if (ret < 0)
			i_error("%s", error);
		i_close_fd(&ctx->pass_lock_fd);
	}
	return ret;
}

static void migrate_unlock_user(struct migrate_cmd_context *ctx)
{
	file_lock_free(&ctx->pass_lock);
	if (ctx->pass_lock_fd != -1)
		i_close_fd(&ctx->pass_lock_fd);
}

static int migrate_user(struct migrate_cmd_context *ctx,
			struct mail_user *user)
{
	struct mailbox_migrate_destination dest;
	const char *error;
	int ret;

	if (mailbox_migrate_settings_read(user, &ctx->mctx.set, &error) < 0) {
		i_error("%s", error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	if (migrate_init_users(ctx, user) < 0) {
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	if (ctx->logout && ctx->dest_name == NULL)
		return 0;
	user = ctx->user;
	if (migrate_open_dbs(ctx, user) < 0) {
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	ret = ctx->dry_run ? 1 : migrate_lock_user(ctx, ctx->logout ? 0 :
					MIGRATE_PASS_LOCK_WAIT_SECS);
	if (ret <= 0) {
		if (ret == 0 && ctx->logout) {
			i_info("Logout pass to %s skipped: another pass of "
			       "the user is running", ctx->dest_name);
			return 0;
		}
		if (ret == 0) {
			i_error("Another pass of %s is still running after "
				"%u s; try again later", user->username,
				MIGRATE_PASS_LOCK_WAIT_SECS);
		}
		doveadm_mail_failed_error(&ctx->mctx.ctx, ret == 0 ?
					  MAIL_ERROR_INUSE : MAIL_ERROR_TEMP);
		return -1;
	}
	if (mailbox_migrate_destination_get(ctx->db, ctx->dest_name, &dest,
					    &error) < 0) {
		i_error("%s", error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	if (ctx->logout &&
	    !mailbox_migrate_destination_is_routine(&dest, &error)) {
		i_info("Logout pass to %s skipped: %s", ctx->dest_name, error);
		return 0;
	}
	if (ctx->backup)
		return migrate_backup_user(ctx);
	if (strcmp(dest.phase, MAILBOX_MIGRATE_PHASE_DONE) == 0) {
		i_info("%s was already migrated to %s; nothing to do",
		       user->username, ctx->dest_name);
		return 0;
	}
	if (ctx->dry_run) {
		if (mailbox_migrate_phase_is_cutover(dest.phase) ||
		    ctx->cutover)
			i_info("(dry run) the cutover would %s",
			       mailbox_migrate_phase_is_cutover(dest.phase) ?
			       t_strdup_printf("resume at %s", dest.phase) :
			       "hold sessions, pass, switch, kick, final "
			       "pass, release");
		return migrate_pass(ctx, FALSE, NULL);
	}
	if (ctx->cutover || mailbox_migrate_phase_is_cutover(dest.phase)) {
		if (!ctx->cutover) {
			i_error("A cutover of %s to %s was interrupted at %s: "
				"rerun with --cutover to finish it",
				user->username, ctx->dest_name, dest.phase);
			doveadm_mail_failed_error(&ctx->mctx.ctx,
						  MAIL_ERROR_INUSE);
			return -1;
		}
		return migrate_cutover(ctx, dest.phase);
	}
	ctx->defer_record = ctx->deferred_pool != NULL;
	ret = migrate_pass(ctx, FALSE, NULL);
	ctx->defer_record = FALSE;
	return ret;
}

/* The user's pass left its record to the worker: keep it, with the state
   file and the pass lock, until migrate_flush_deferred(). */
static void migrate_defer(struct migrate_cmd_context *ctx)
{
	struct migrate_deferred *deferred;
	struct migrate_sync_root *root, *r;
	const char *paths[2];
	struct stat st;
	unsigned int i;
	int fd;

	if (array_count(&ctx->deferred) == 0)
		i_gettimeofday(&ctx->deferred_since);
	mailbox_migrate_user_mail_roots(ctx->dst_user, &paths[0], &paths[1]);
	for (i = 0; i < N_ELEMENTS(paths); i++) {
		if (paths[i] == NULL || stat(paths[i], &st) < 0)
			continue;
		root = NULL;
		array_foreach_modifiable(&ctx->sync_roots, r) {
			if (r->dev == st.st_dev)
				root = r;
		}
		if (root != NULL && root->fd != -1)
			continue;
		/* a filesystem without a descriptor fails the batch's
		   records: it can't be synced */
		fd = open(paths[i], O_RDONLY);
		if (fd == -1) {
			i_error("open(%s) failed: %m", paths[i]);
			if (root != NULL)
				continue;
		}
		if (root == NULL) {
			root = array_append_space(&ctx->sync_roots);
			root->dev = st.st_dev;
		}
		root->path = p_strdup(ctx->deferred_pool, paths[i]);
		root->fd = fd;
	}
	deferred = array_append_space(&ctx->deferred);
	deferred->username = p_strdup(ctx->deferred_pool, ctx->user->username);
	deferred->dest_name = p_strdup(ctx->deferred_pool, ctx->dest_name);
	deferred->db = ctx->db;
	deferred->pass_lock_fd = ctx->pass_lock_fd;
	deferred->pass_lock = ctx->pass_lock;
	deferred->record = ctx->record;
	ctx->db = NULL;
	ctx->pass_lock_fd = -1;
	ctx->pass_lock = NULL;
	ctx->record = NULL;
}

/* syncfs() of each filesystem the waiting passes wrote to, through the
   descriptors their users opened; closes them. */
static int migrate_sync_roots(struct migrate_cmd_context *ctx,
			      const char **error_r)
{
	struct migrate_sync_root *root;
	int ret = 0;

	array_foreach_modifiable(&ctx->sync_roots, root) {
		if (root->fd == -1) {
			if (ret == 0) {
				*error_r = t_strdup_printf("Can't sync %s: "
					"it couldn't be opened", root->path);
			}
			ret = -1;
			continue;
		}
		if (ret == 0 && syncfs(root->fd) < 0) {
			*error_r = t_strdup_printf("syncfs(%s) failed: %m",
						   root->path);
			ret = -1;
		}
		i_close_fd(&root->fd);
	}
	return ret;
}

/* Sync the filesystems the waiting passes wrote to, then record them. */
static void migrate_flush_deferred(struct migrate_cmd_context *ctx)
{
	struct migrate_deferred *deferred;
	const char *error, *sync_error = NULL;
	uint64_t checkpoint_seq;

	if (array_count(&ctx->deferred) == 0)
		return;
	if (migrate_sync_roots(ctx, &error) < 0)
		sync_error = error;
	array_foreach_modifiable(&ctx->deferred, deferred) {
		i_set_failure_prefix("doveadm(%s): ", deferred->username);
		error = sync_error;
		if (error != NULL ||
		    mailbox_migrate_pass_record_write(deferred->db,
				deferred->record, &checkpoint_seq,
				&error) < 0) {
			/* the pass isn't recorded: the next one redoes it */
			i_error("Pass to %s failed: %s", deferred->dest_name,
				error);
			doveadm_mail_failed_error(&ctx->mctx.ctx,
						  MAIL_ERROR_TEMP);
		}
		mailbox_migrate_db_close(&deferred->db);
		file_lock_free(&deferred->pass_lock);
		if (deferred->pass_lock_fd != -1)
			i_close_fd(&deferred->pass_lock_fd);
	}
	array_clear(&ctx->deferred);
	array_clear(&ctx->sync_roots);
	p_clear(ctx->deferred_pool);
}

static int migrate_run_user(struct migrate_cmd_context *ctx,
			    struct mail_user *user)
{
	int ret;

	ctx->user = user;
	ctx->dest_name = NULL;
	ret = migrate_user(ctx, user);
	if (ctx->record != NULL)
		migrate_defer(ctx);
	migrate_unlock_user(ctx);
	mailbox_migrate_db_close(&ctx->db);
	mailbox_migrate_db_close(&ctx->dst_db);
	ctx->dst_db_path = NULL;
	if (ctx->src_user_owned) {
		migrate_user_free(&ctx->user);
		ctx->dst_user = NULL;
		ctx->src_user_owned = FALSE;
	} else if (ctx->dst_user != NULL) {
		migrate_user_free(&ctx->dst_user);
	}
	ctx->user = NULL;
	ctx->mctx.set = NULL;
	return ret;
}

/* Before each user is made:
   - INBOX's STATUS in the mailbox list index too, so that a journal pass
     finds an unchanged INBOX there (kept current by this process's passes;
     Dovecot checks the cached values against the mailbox's own index log
     and maildir directories before it trusts them, so processes without
     the setting only make the cache miss);
   - the source's dovecot.index is rewritten only once its log has grown
     past mail_index_rewrite_max_log_bytes (or rotates), not already past
     the minimum: a pass reads the source, the user's sessions keep its
     index, and the rewrite would cost the pass an fsync.
     migrate_init_users() gives the destination the user's own values
     back. */
static int migrate_user_settings(struct migrate_cmd_context *ctx,
				 struct mail_storage_service_user *service_user,
				 const char **error_r)
{
	const struct mail_storage_settings *mail_set =
		mail_storage_service_user_get_mail_set(service_user);

	ctx->index_rewrite_min_log_bytes =
		mail_set->mail_index_rewrite_min_log_bytes;
	ctx->index_rewrite_max_log_bytes =
		mail_set->mail_index_rewrite_max_log_bytes;
	if (mail_storage_service_user_set_setting(service_user,
			"mailbox_list_index_include_inbox", "yes",
			error_r) < 0)
		return -1;
	return migrate_set_index_rewrite(service_user,
					 ctx->index_rewrite_max_log_bytes,
					 ctx->index_rewrite_max_log_bytes,
					 error_r);
}

/* Print a finished worker's rows and take its exit code. */
static void migrate_worker_finish(struct migrate_cmd_context *ctx,
				  struct migrate_worker *worker, int status)
{
	struct istream *input;
	const char *line, *const *fields;
	unsigned int i;
	int code;

	if (lseek(worker->rows_fd, 0, SEEK_SET) < 0)
		i_error("lseek(rows file) failed: %m");
	input = i_stream_create_fd(worker->rows_fd, 65536);
	while ((line = i_stream_read_next_line(input)) != NULL) {
		fields = t_strsplit_tabescaped(line);
		if (str_array_length(fields) != 7)
			continue;
		doveadm_print_sticky("username", fields[0]);
		for (i = 1; i < 7; i++)
			doveadm_print(fields[i]);
	}
	i_stream_destroy(&input);
	i_close_fd(&worker->rows_fd);

	code = WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;
	if (!WIFEXITED(status))
		i_error("A worker died with signal %d", WTERMSIG(status));
	if (code != 0 && ctx->mctx.ctx.exit_code == 0)
		ctx->mctx.ctx.exit_code = code;
}

/* In a worker: look the user up and run the pass, as doveadm does for a
   user of -A (doveadm_mail_next_user()). */
/* Run the user once a slot of the device its mail is on is free. */
static void migrate_worker_run_user(struct migrate_cmd_context *ctx,
				    struct mail_user *user)
{
	struct doveadm_mail_cmd_context *_ctx = &ctx->mctx.ctx;
	struct mail_namespace *ns = mail_namespace_find_inbox(user->namespaces);
	const char *root;
	unsigned int waited;
	struct stat st;
	bool slot = FALSE;

	if (ns != NULL &&
	    mailbox_list_get_root_path(ns->list,
				       MAILBOX_LIST_PATH_TYPE_MAILBOX, &root) &&
	    stat(root, &st) == 0) {
		waited = mailbox_migrate_device_slot_get(ctx->device_slots,
				st.st_dev, migrate_flush_before_wait, ctx);
		if (waited > 0) {
			i_info("Waited %u ms for one of the %u workers allowed "
			       "on device %u:%u", waited, ctx->device_workers,
			       major(st.st_dev), minor(st.st_dev));
		}
		slot = TRUE;
	}
	if (migrate_run_user(ctx, user) < 0 && _ctx->exit_code == 0)
		_ctx->exit_code = EX_TEMPFAIL;
	if (slot)
		mailbox_migrate_device_slot_put(ctx->device_slots, st.st_dev);
}

static void migrate_worker_user(struct migrate_cmd_context *ctx,
				const char *username)
{
	struct doveadm_mail_cmd_context *_ctx = &ctx->mctx.ctx;
	struct mail_storage_service_input input = _ctx->storage_service_input;
	struct mail_storage_service_user *service_user;
	struct mail_user *user;
	const char *error;
	int ret;

	i_set_failure_prefix("doveadm(%s): ", username);
	input.username = username;
	ret = mail_storage_service_lookup(_ctx->storage_service, &input,
					  &service_user, &error);
	if (ret <= 0) {
		if (ret < 0) {
			i_error("User lookup failed: %s", error);
			doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
		} else {
			i_info("User no longer exists, skipping");
		}
		return;
	}
	if (migrate_user_settings(ctx, service_user, &error) < 0 ||
	    mail_storage_service_next(_ctx->storage_service, service_user,
				      &user, &error) < 0) {
		i_error("%s", error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
		mail_storage_service_user_unref(&service_user);
		return;
	}
	_ctx->cur_service_user = service_user;
	migrate_worker_run_user(ctx, user);
	_ctx->cur_service_user = NULL;
	mail_user_deinit(&user);
	mail_storage_service_user_unref(&service_user);
}

/* Wait until the next user can be read (the pipe is shared and
   non-blocking: another worker may take it first), with waiting passes at
   most until they have waited long enough. Returns FALSE if they have
   (flush them now). */
static bool migrate_wait_users(struct migrate_cmd_context *ctx, int users_fd)
{
	struct pollfd pfd = { .fd = users_fd, .events = POLLIN };
	struct timeval now;
	long long waited;
	int ret, timeout_msecs = -1;

	if (array_count(&ctx->deferred) > 0) {
		i_gettimeofday(&now);
		waited = timeval_diff_msecs(&now, &ctx->deferred_since);
		if (waited >= MIGRATE_DEFER_MAX_MSECS)
			return FALSE;
		timeout_msecs = MIGRATE_DEFER_MAX_MSECS - waited;
	}
	ret = poll(&pfd, 1, timeout_msecs);
	if (ret < 0 && errno != EINTR)
		i_error("poll(users pipe) failed: %m");
	return ret != 0;
}

static void ATTR_NORETURN
migrate_worker_main(struct migrate_cmd_context *ctx, int users_fd)
{
	char record[MIGRATE_USER_RECORD_SIZE];
	ssize_t ret;

	array_clear(&ctx->running);
	ctx->deferred_pool = pool_alloconly_create("mailbox-migrate deferred",
						   4096);
	i_array_init(&ctx->deferred, MIGRATE_DEFER_MAX_USERS);
	i_array_init(&ctx->sync_roots, 4);
	fd_set_nonblock(users_fd, TRUE);
	for (;;) {
		if (!migrate_wait_users(ctx, users_fd))
			T_BEGIN {
				migrate_flush_deferred(ctx);
			} T_END;
		ret = read(users_fd, record, sizeof(record));
		if (ret == 0)
			break;
		if (ret < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			i_error("read(users pipe) failed: %m");
			ctx->mctx.ctx.exit_code = EX_TEMPFAIL;
			break;
		}
		if (ret != sizeof(record) || record[sizeof(record) - 1] != '\0')
			i_panic("users pipe: short record");
		T_BEGIN {
			migrate_worker_user(ctx, record);
			if (array_count(&ctx->deferred) >=
			    MIGRATE_DEFER_MAX_USERS)
				migrate_flush_deferred(ctx);
		} T_END;
	}
	T_BEGIN {
		migrate_flush_deferred(ctx);
	} T_END;
	_exit(ctx->mctx.ctx.exit_code);
}

/* Start the workers: each takes users from one shared pipe until it is
   closed. Returns 0, or -1 if they can't be started (then doveadm runs
   the users itself, one by one). */
static int migrate_start_workers(struct migrate_cmd_context *ctx)
{
	struct migrate_worker *worker;
	char path[] = "/tmp/mailbox-migrate-rows.XXXXXX";
	int fds[2], fd;
	unsigned int i;
	pid_t pid;

	if (pipe(fds) < 0) {
		i_error("pipe() failed: %m");
		return -1;
	}
	ctx->device_slots = mailbox_migrate_device_slots_init(ctx->workers,
							ctx->device_workers);
	for (i = 0; i < ctx->workers; i++) {
		fd = mkstemp(path);
		if (fd == -1) {
			i_error("mkstemp(%s) failed: %m", path);
			break;
		}
		i_unlink(path);
		strcpy(path + strlen(path) - 6, "XXXXXX");
		pid = fork();
		if (pid < 0) {
			i_error("fork() failed: %m");
			i_close_fd(&fd);
			break;
		}
		if (pid == 0) {
			i_close_fd(&fds[1]);
			ctx->rows_fd = fd;
			migrate_worker_main(ctx, fds[0]);
		}
		worker = array_append_space(&ctx->running);
		worker->pid = pid;
		worker->rows_fd = fd;
	}
	i_close_fd(&fds[0]);
	if (array_count(&ctx->running) == 0) {
		i_close_fd(&fds[1]);
		return -1;
	}
	ctx->users_fd = fds[1];
	return 0;
}

static void migrate_wait_workers(struct migrate_cmd_context *ctx)
{
	struct migrate_worker *worker;
	int status;

	array_foreach_modifiable(&ctx->running, worker) {
		while (waitpid(worker->pid, &status, 0) < 0) {
			if (errno != EINTR) {
				i_error("waitpid() failed: %m");
				status = EX_TEMPFAIL << 8;
				break;
			}
		}
		migrate_worker_finish(ctx, worker, status);
	}
	array_clear(&ctx->running);
	mailbox_migrate_device_slots_deinit(&ctx->device_slots);
}

/* -A/-F with workers: hand every user to the workers and return none to
   doveadm, which would otherwise look each one up and run it here. */
static int
cmd_mailbox_migrate_get_next_user(struct doveadm_mail_cmd_context *_ctx,
				  const char **username_r)
{
	struct migrate_cmd_context *ctx = (struct migrate_cmd_context *)_ctx;
	char record[MIGRATE_USER_RECORD_SIZE];
	const char *username;
	int ret;

	/* before the workers exist, so that a failure leaves none behind */
	mailbox_migrate_cmd_check_userdb_list(_ctx);
	if (ctx->workers <= 1 || migrate_start_workers(ctx) < 0)
		goto own;
	for (;;) {
		ret = mailbox_migrate_cmd_get_next_user(_ctx, &username);
		if (ret <= 0)
			break;
		if (strlen(username) >= sizeof(record)) {
			i_error("User name too long: %s", username);
			_ctx->exit_code = EX_DATAERR;
			continue;
		}
		memset(record, 0, sizeof(record));
		memcpy(record, username, strlen(username));
		if (write_full(ctx->users_fd, record, sizeof(record)) < 0) {
			i_error("write(users pipe) failed: %m");
			ret = -1;
			break;
		}
	}
	i_close_fd(&ctx->users_fd);
	migrate_wait_workers(ctx);
	if (ret < 0)
		_ctx->exit_code = EX_TEMPFAIL;
	return 0;

own:
	ctx->workers = 1;
	return mailbox_migrate_cmd_get_next_user(_ctx, username_r);
}

/* --logout: a pass to each destination of the user's settings. */
static int migrate_logout_user(struct migrate_cmd_context *ctx,
			       struct mail_user *user)
{
	const struct mailbox_migrate_settings *set;
	const char *const *destp, *error;
	int ret = 0;

	if (mailbox_migrate_settings_read(user, &set, &error) < 0) {
		i_error("%s", error);
		doveadm_mail_failed_error(&ctx->mctx.ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	if (set->destinations[0] == NULL) {
		i_info("Logout pass skipped: the user has no "
		       "mailbox_migrate_destination");
		return 0;
	}
	for (destp = set->destinations; *destp != NULL; destp++) {
		ctx->destination = *destp;
		ctx->backup = str_begins(*destp, "backup:");
		if (migrate_run_user(ctx, user) < 0)
			ret = -1;
	}
	return ret;
}

static int
cmd_mailbox_migrate_prerun(struct doveadm_mail_cmd_context *_ctx,
			   struct mail_storage_service_user *service_user,
			   const char **error_r)
{
	struct migrate_cmd_context *ctx = (struct migrate_cmd_context *)_ctx;

	return migrate_user_settings(ctx, service_user, error_r);
}

static int
cmd_mailbox_migrate_run(struct doveadm_mail_cmd_context *_ctx,
			struct mail_user *user)
{
	struct migrate_cmd_context *ctx = (struct migrate_cmd_context *)_ctx;

	if (ctx->logout)
		return migrate_logout_user(ctx, user);
	return migrate_run_user(ctx, user);
}


static bool
cmd_mailbox_migrate_parse_arg(struct doveadm_mail_cmd_context *_ctx, int c)
{
	struct migrate_cmd_context *ctx = (struct migrate_cmd_context *)_ctx;
	const char *value;

	switch (c) {
	case 'm':
		value = p_strdup(_ctx->pool, optarg);
		array_push_back(&ctx->mailboxes, &value);
		break;
	case 'r':
		ctx->full = TRUE;
		break;
	case 'n':
		ctx->dry_run = TRUE;
		break;
	case 'c':
		ctx->cutover = TRUE;
		break;
	case 's':
		ctx->switch_command = p_strdup(_ctx->pool, optarg);
		break;
	case 'L':
		ctx->logout = TRUE;
		break;
	default:
		return FALSE;
	}
	return TRUE;
}

/* Before the user lookup: a missing destination is a usage error, not a
   missing -u. */
static void cmd_mailbox_migrate_preinit(struct doveadm_mail_cmd_context *_ctx)
{
	struct migrate_cmd_context *ctx = (struct migrate_cmd_context *)_ctx;

	if (ctx->logout ? _ctx->args[0] == NULL :
	    (_ctx->args[0] != NULL && _ctx->args[1] == NULL))
		return;
	fprintf(stderr,
		"usage: doveadm mailbox-migrate %s\n"
		"       doveadm mailbox-migrate <command> ...: "
		"status, seen, journal\n", doveadm_cmd_mailbox_migrate.usage);
	lib_exit(EX_USAGE);
}

static void migrate_print_headers(void)
{
	doveadm_print_header_simple("mailbox");
	doveadm_print_header("copied", "copied",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("expunged", "expunged",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("flag_changes", "flag_changes",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("reassigned", "reassigned",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("seconds", "seconds",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
}

static void migrate_logout_stdio(void)
{
	struct stat st;
	int fd;

	if (fstat(STDIN_FILENO, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    fstat(STDERR_FILENO, &st) == 0 && S_ISFIFO(st.st_mode)) {
		/* exec'd by the script service: stderr is the service's
		   pipe to Dovecot's log process, which wants its own
		   format (else every line counts as an error) */
		i_set_failure_internal();
	}
	fd = open("/dev/null", O_RDWR);
	if (fd == -1)
		i_fatal("open(/dev/null) failed: %m");
	if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0)
		i_fatal("dup2(/dev/null) failed: %m");
	if (fd > STDERR_FILENO)
		i_close_fd(&fd);
}

static void
cmd_mailbox_migrate_init(struct doveadm_mail_cmd_context *_ctx,
			 const char *const args[])
{
	struct migrate_cmd_context *ctx = (struct migrate_cmd_context *)_ctx;
	const char *value;

	if (ctx->logout) {
		if (ctx->cutover || ctx->full || ctx->dry_run ||
		    array_count(&ctx->mailboxes) > 0)
			i_fatal_status(EX_USAGE, "--logout takes no other "
				       "option");
		/* the service that runs us has the hook's connection on
		   stdin and stdout; it is gone by now. Logging goes to
		   stderr, Dovecot's log. */
		migrate_logout_stdio();
		ctx->workers = 1;
		migrate_print_headers();
		return;
	}
	ctx->destination = p_strdup(_ctx->pool, args[0]);
	ctx->backup = str_begins(ctx->destination, "backup:");
	if (ctx->backup && ctx->cutover)
		i_fatal_status(EX_USAGE, "--cutover needs a mail location, "
			       "not a backup store");
	if (strchr(ctx->destination, ':') == NULL) {
		i_fatal_status(EX_USAGE, "Invalid destination %s: expected a "
			       "mail location such as sdbox:/path/%%u",
			       ctx->destination);
	}
	if (ctx->switch_command != NULL && !ctx->cutover)
		i_fatal_status(EX_USAGE, "--switch-command needs --cutover");
	value = doveadm_plugin_getenv("mailbox_migrate_workers");
	if (value == NULL || value[0] == '\0' ||
	    str_to_uint(value, &ctx->workers) < 0 || ctx->workers == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		ctx->workers = cpus > 0 ? (unsigned int)cpus : 1;
	}
	value = doveadm_plugin_getenv("mailbox_migrate_device_workers");
	if (value == NULL || value[0] == '\0' ||
	    str_to_uint(value, &ctx->device_workers) < 0 ||
	    ctx->device_workers == 0) {
		/* half the workers, but at least two: one disk isn't
		   hammered by all of them, two keep its queue busy */
		ctx->device_workers = I_MAX((ctx->workers + 1) / 2, 2);
	}
	if (ctx->cutover && array_count(&ctx->mailboxes) > 0)
		i_fatal_status(EX_USAGE, "--cutover moves the whole user: "
			       "it can't be combined with -m");
	migrate_print_headers();
}

static struct doveadm_mail_cmd_context *cmd_mailbox_migrate_alloc(void)
{
	struct migrate_cmd_context *ctx;

	ctx = mailbox_migrate_cmd_alloc(struct migrate_cmd_context);
	ctx->mctx.ctx.getopt_args = "m:rncs:L";
	ctx->mctx.ctx.v.parse_arg = cmd_mailbox_migrate_parse_arg;
	ctx->mctx.ctx.v.preinit = cmd_mailbox_migrate_preinit;
	ctx->mctx.ctx.v.init = cmd_mailbox_migrate_init;
	ctx->mctx.ctx.v.prerun = cmd_mailbox_migrate_prerun;
	ctx->mctx.ctx.v.run = cmd_mailbox_migrate_run;
	ctx->mctx.ctx.v.get_next_user = cmd_mailbox_migrate_get_next_user;
	ctx->rows_fd = -1;
	ctx->users_fd = -1;
	ctx->pass_lock_fd = -1;
	p_array_init(&ctx->running, ctx->mctx.ctx.pool, 8);
	/* the switch command and doveadm kick run with doveadm's own
	   privileges; the pass with the mail user's */
	ctx->mctx.ctx.service_flags |=
		MAIL_STORAGE_SERVICE_FLAG_TEMP_PRIV_DROP;
	p_array_init(&ctx->mailboxes, ctx->mctx.ctx.pool, 4);
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->mctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_cmd_mailbox_migrate = {
	.name = "mailbox-migrate",
	.mail_cmd = cmd_mailbox_migrate_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[-m <mailbox>]... [--full] [--dry-run] "
		"[--cutover [--switch-command <cmd>]] <destination> | "
		"--logout",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('m', "mailbox", CMD_PARAM_ARRAY, 0)
DOVEADM_CMD_PARAM('r', "full", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('n', "dry-run", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('c', "cutover", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('s', "switch-command", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('L', "logout", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('\0', "destination", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
