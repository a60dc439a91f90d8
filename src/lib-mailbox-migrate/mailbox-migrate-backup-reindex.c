/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "mailbox-migrate-backup-store.h"
#include "mailbox-migrate-backup-reindex.h"

#include <sqlite3.h>
#include <stdio.h>
#include <fcntl.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/stat.h>

struct reindex_context {
	struct mailbox_migrate_db *index;
	struct mailbox_migrate_backup_reindex_result *result;
	pool_t pool;
	/* bodies since the last record: indexed when a record follows */
	ARRAY_TYPE(mailbox_migrate_backup_body) pending;
	uoff_t committed_end;
	const char *error;
};

/* The newest data-<N>.tar.gz|zst of dir. Returns 1, 0 if none. */
static int reindex_find_data(const char *dir, unsigned int *gen_r,
			     enum mailbox_migrate_backup_compression *compression_r,
			     const char **error_r)
{
	struct dirent *d;
	DIR *dirp;
	unsigned int gen, best = 0;
	char ext[8];
	int ret = 0;

	dirp = opendir(dir);
	if (dirp == NULL) {
		*error_r = t_strdup_printf("opendir(%s) failed: %m", dir);
		return -1;
	}
	while ((d = readdir(dirp)) != NULL) {
		if (sscanf(d->d_name, "data-%u.tar.%7s", &gen, ext) != 2 ||
		    gen <= best ||
		    strcmp(d->d_name, t_strdup_printf("data-%u.tar.%s",
						       gen, ext)) != 0)
			continue;
		if (strcmp(ext, "gz") == 0)
			*compression_r = MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ;
		else if (strcmp(ext, "zst") == 0)
			*compression_r = MAILBOX_MIGRATE_BACKUP_COMPRESSION_ZSTD;
		else
			continue;
		best = gen;
		ret = 1;
	}
	(void)closedir(dirp);
	*gen_r = best;
	return ret;
}

/* Returns 0, or -1 with ctx->error set (which ends the scan). */
static int reindex_exec(struct reindex_context *ctx, const char *sql)
{
	const char *error;

	if (mailbox_migrate_db_exec(ctx->index, sql, &error) < 0) {
		ctx->error = p_strdup(ctx->pool, error);
		return -1;
	}
	return 0;
}

static int reindex_entry(const struct mailbox_migrate_backup_entry *entry,
			 void *context)
{
	struct reindex_context *ctx = context;
	struct mailbox_migrate_backup_body *body;
	const struct mailbox_migrate_backup_body *b;
	const char *error;
	uint32_t pass_id, name_id;
	time_t pass_time;

	if (entry->error != NULL) {
		ctx->result->bad_members++;
		i_warning("reindex: skipping the member at offset %"PRIuUOFF_T
			  ": %s", entry->member_offset, entry->error);
		return 0;
	}
	if (str_begins(entry->name, "b/")) {
		if (strcmp(mailbox_migrate_backup_hash(entry->data, entry->size),
			   entry->name + 2) != 0) {
			i_warning("reindex: body %s at offset %"PRIuUOFF_T
				  " doesn't match its SHA-256: skipped",
				  entry->name + 2, entry->member_offset);
			return 0;
		}
		body = array_append_space(&ctx->pending);
		body->hash = p_strdup(ctx->pool, entry->name + 2);
		body->size = entry->size;
		body->member_offset = entry->member_offset;
		body->member_size = entry->member_size;
		body->entry_offset = entry->entry_offset;
		return 0;
	}
	if (!str_begins(entry->name, "p/") ||
	    sscanf(entry->name, "p/%u.txt", &name_id) != 1) {
		i_warning("reindex: unexpected entry %s at offset %"PRIuUOFF_T
			  ": skipped", entry->name, entry->member_offset);
		return 0;
	}
	/* a record is applied whole or not at all */
	if (reindex_exec(ctx, "SAVEPOINT record") < 0)
		return -1;
	if (mailbox_migrate_backup_store_apply_record(ctx->index,
			(const char *)entry->data, entry->size, &pass_id,
			&pass_time, &error) < 0) {
		i_warning("reindex: record %s at offset %"PRIuUOFF_T": %s",
			  entry->name, entry->member_offset, error);
		ctx->result->bad_records++;
		return reindex_exec(ctx, "ROLLBACK TO record; RELEASE record");
	}
	if (reindex_exec(ctx, "RELEASE record") < 0)
		return -1;
	/* a snapshot's time is its history horizon, not a pass */
	if (strncmp((const char *)entry->data, "pass\t", 5) == 0 &&
	    mailbox_migrate_backup_index_pass_add(ctx->index, pass_id,
			pass_time, entry->member_offset, entry->member_size,
			&error) < 0) {
		ctx->error = p_strdup(ctx->pool, error);
		return -1;
	}
	array_foreach(&ctx->pending, b) {
		if (mailbox_migrate_backup_index_body_add(ctx->index, b,
							  &error) < 0) {
			ctx->error = p_strdup(ctx->pool, error);
			return -1;
		}
	}
	array_clear(&ctx->pending);
	ctx->committed_end = entry->member_offset + entry->member_size;
	return 0;
}

static void reindex_unlink(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT)
		i_error("unlink(%s) failed: %m", path);
}

static void reindex_checkpoint(const char *path)
{
	sqlite3 *db;

	if (access(path, F_OK) < 0)
		return;
	/* a corrupt or unreadable old index has nothing worth keeping */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
	    SQLITE_OK) {
		(void)sqlite3_busy_timeout(db, 1000);
		(void)sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)",
				   NULL, NULL, NULL);
	}
	(void)sqlite3_close(db);
}

int mailbox_migrate_backup_reindex(const char *dir,
				   unsigned int lock_timeout_secs,
				   struct mailbox_migrate_backup_reindex_result *result_r,
				   const char **error_r)
{
	struct mailbox_migrate_backup_store *store;
	struct mailbox_migrate_backup_index_stats stats;
	enum mailbox_migrate_db_error db_error;
	struct reindex_context ctx;
	const char *index_path, *tmp_path, *error;
	struct stat st;
	uoff_t end;
	int ret;

	i_zero(result_r);
	ret = mailbox_migrate_backup_store_open(dir,
			MAILBOX_MIGRATE_BACKUP_OPEN_NO_INDEX,
			MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ,
			lock_timeout_secs, &store, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = t_strdup_printf("%s doesn't exist", dir);
		return -1;
	}
	ret = reindex_find_data(dir, &store->generation, &store->compression,
				error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = t_strdup_printf("%s has no data file", dir);
		mailbox_migrate_backup_store_close(&store);
		return -1;
	}
	store->data_path = p_strdup(store->pool,
		mailbox_migrate_backup_store_data_path(store,
						       store->generation));
	result_r->data_path = t_strdup(store->data_path);
	store->data_fd = open(store->data_path, O_RDWR);
	if (store->data_fd == -1 || fstat(store->data_fd, &st) < 0) {
		*error_r = t_strdup_printf("open(%s) failed: %m",
					   store->data_path);
		mailbox_migrate_backup_store_close(&store);
		return -1;
	}

	index_path = t_strdup_printf("%s/%s", dir,
				     MAILBOX_MIGRATE_BACKUP_INDEX_NAME);
	tmp_path = t_strconcat(index_path, ".reindex", NULL);
	reindex_unlink(tmp_path);
	reindex_unlink(t_strconcat(tmp_path, "-wal", NULL));
	reindex_unlink(t_strconcat(tmp_path, "-shm", NULL));

	i_zero(&ctx);
	ctx.result = result_r;
	ctx.pool = pool_alloconly_create("mailbox-migrate reindex", 8192);
	p_array_init(&ctx.pending, ctx.pool, 64);
	if (mailbox_migrate_db_open_schema(tmp_path,
			&mailbox_migrate_backup_index_schema,
			MAILBOX_MIGRATE_DB_OPEN_FLAG_FSYNC,
			lock_timeout_secs * 1000, &ctx.index, &db_error,
			error_r) <= 0)
		goto failed;
	if (mailbox_migrate_db_begin(ctx.index, error_r) < 0)
		goto failed;
	ret = mailbox_migrate_backup_store_scan(store, st.st_size,
			reindex_entry, &ctx, &end, &error);
	if (ret < 0 || ctx.error != NULL) {
		*error_r = t_strdup(ctx.error != NULL ? ctx.error : error);
		mailbox_migrate_db_rollback(ctx.index);
		goto failed;
	}
	if (mailbox_migrate_db_meta_set(ctx.index, "compression",
			mailbox_migrate_backup_compression_name(
				store->compression), error_r) < 0 ||
	    mailbox_migrate_db_meta_set(ctx.index, "generation",
			dec2str(store->generation), error_r) < 0 ||
	    mailbox_migrate_db_meta_set(ctx.index, "data_size",
			dec2str(ctx.committed_end), error_r) < 0 ||
	    mailbox_migrate_db_meta_set(ctx.index, "reindexed",
			dec2str(ioloop_time), error_r) < 0 ||
	    mailbox_migrate_backup_index_stats(ctx.index, 0, &stats,
					       error_r) < 0) {
		mailbox_migrate_db_rollback(ctx.index);
		goto failed;
	}
	if (mailbox_migrate_db_commit(ctx.index, error_r) < 0 ||
	    /* all in the main file: only it is renamed */
	    mailbox_migrate_db_exec(ctx.index,
			"PRAGMA wal_checkpoint(TRUNCATE)", error_r) < 0)
		goto failed;
	mailbox_migrate_db_close(&ctx.index);
	result_r->passes = stats.passes;
	result_r->bodies = stats.bodies;
	result_r->messages = stats.messages;

	/* the switch: the old index and its WAL go, the new one comes. The
	   old WAL is folded into the old index first, so that a crash
	   before the rename leaves that index whole. */
	reindex_checkpoint(index_path);
	reindex_unlink(t_strconcat(index_path, "-wal", NULL));
	reindex_unlink(t_strconcat(index_path, "-shm", NULL));
	if (rename(tmp_path, index_path) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   tmp_path, index_path);
		goto failed;
	}
	reindex_unlink(t_strconcat(tmp_path, "-wal", NULL));
	reindex_unlink(t_strconcat(tmp_path, "-shm", NULL));
	if ((uoff_t)st.st_size > ctx.committed_end) {
		result_r->cut_bytes = st.st_size - ctx.committed_end;
		if (ftruncate(store->data_fd, ctx.committed_end) < 0)
			i_error("ftruncate(%s) failed: %m", store->data_path);
	}
	if (mailbox_migrate_backup_store_sync(store->data_fd, dir,
					      error_r) < 0)
		goto failed;
	pool_unref(&ctx.pool);
	mailbox_migrate_backup_store_close(&store);
	return 0;

failed:
	*error_r = t_strdup(*error_r);
	mailbox_migrate_db_close(&ctx.index);
	pool_unref(&ctx.pool);
	mailbox_migrate_backup_store_close(&store);
	return -1;
}
