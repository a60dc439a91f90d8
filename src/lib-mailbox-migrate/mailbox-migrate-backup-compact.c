/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "ioloop.h"
#include "mailbox-migrate-backup-store.h"
#include "mailbox-migrate-backup-compact.h"

#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>

struct compact_context {
	struct mailbox_migrate_backup_store *store;
	struct mailbox_migrate_backup_append *append;
	HASH_TABLE_TYPE(mailbox_migrate_backup_hashes) needed;
	const char *error;
};

static int compact_body(const struct mailbox_migrate_backup_body *body,
			void *context)
{
	struct compact_context *ctx = context;
	const unsigned char *data;
	const char *error;

	if (hash_table_lookup(ctx->needed, body->hash) == NULL)
		return 0;
	if (mailbox_migrate_backup_store_read_body(ctx->store, body, &data,
						   &error) < 0) {
		/* never drop a needed body silently: verify and reindex
		   first */
		ctx->error = p_strdup(ctx->store->pool, error);
		return -1;
	}
	mailbox_migrate_backup_append_body(ctx->append, body->hash, data,
					   body->size);
	return 0;
}

int mailbox_migrate_backup_compact(struct mailbox_migrate_backup_store *store,
				   time_t keep_since,
				   unsigned int dirty_percent,
				   struct mailbox_migrate_backup_compact_result *result_r,
				   const char **error_r)
{
	struct mailbox_migrate_backup_index_stats stats;
	const struct mailbox_migrate_backup_body *body;
	struct compact_context ctx;
	const char *new_path, *tmp_path, *old_path, *error;
	uoff_t record_offset, record_size;
	uint32_t last_id = 0, pass_id;
	time_t last_time, pass_time;
	string_t *record;
	int fd;

	i_zero(result_r);
	i_assert(!store->readonly);
	/* history an earlier compaction dropped stays dropped: a longer
	   --keep must not claim it back (defensive: no row older than
	   that horizon is left to make a body dead) */
	keep_since = I_MAX(keep_since, store->history_since);
	result_r->old_size = result_r->new_size = store->data_size;
	if (mailbox_migrate_backup_index_stats(store->index, keep_since,
					       &stats, error_r) < 0 ||
	    mailbox_migrate_backup_index_last_pass(store->index, &last_id,
						   &last_time, error_r) < 0)
		return -1;
	result_r->dead_bodies = stats.dead_bodies;
	result_r->dead_bytes = stats.dead_bytes;
	result_r->dirty_percent = stats.body_bytes == 0 ? 0 :
		(unsigned int)(stats.dead_bytes * 100 / stats.body_bytes);
	if (last_id == 0 || stats.dead_bodies == 0 ||
	    result_r->dirty_percent < dirty_percent)
		return 0;

	new_path = mailbox_migrate_backup_store_data_path(store,
						store->generation + 1);
	tmp_path = t_strconcat(new_path, ".tmp", NULL);
	fd = open(tmp_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", tmp_path);
		return -1;
	}
	i_zero(&ctx);
	ctx.store = store;
	hash_table_create(&ctx.needed, default_pool, 0, str_hash, strcmp);
	if (mailbox_migrate_backup_index_needed_bodies(store->index,
			keep_since, store->pool, &ctx.needed, error_r) < 0) {
		hash_table_destroy(&ctx.needed);
		i_close_fd(&fd);
		return -1;
	}
	ctx.append = mailbox_migrate_backup_append_init(fd, 0,
				store->compression, ioloop_time);
	/* not from the data stack: the snapshot grows it inside frames of
	   its own */
	record = str_new(default_pool, 65536);
	/* bodies in their old order: the old file is read front to back */
	if (mailbox_migrate_backup_index_bodies(store->index, compact_body,
						&ctx, &error) < 0) {
		*error_r = ctx.error != NULL ? ctx.error : error;
		goto failed;
	}
	/* the history kept, as one record the index can be rebuilt from */
	if (mailbox_migrate_backup_index_snapshot(store->index, keep_since,
			last_id, keep_since, record, error_r) < 0 ||
	    mailbox_migrate_backup_append_finish(ctx.append,
			t_strdup_printf("p/%u.txt", last_id), record,
			&record_offset, &record_size, error_r) < 0 ||
	    mailbox_migrate_backup_store_sync(fd, store->dir, error_r) < 0)
		goto failed;
	if (rename(tmp_path, new_path) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   tmp_path, new_path);
		goto failed;
	}
	if (mailbox_migrate_backup_store_sync(-1, store->dir, error_r) < 0)
		goto failed_unlink;

	/* the switch: one index transaction */
	if (mailbox_migrate_db_begin(store->index, error_r) < 0)
		goto failed_unlink;
	if (mailbox_migrate_backup_index_bodies_clear(store->index,
						      error_r) < 0)
		goto failed_rollback;
	array_foreach(mailbox_migrate_backup_append_bodies(ctx.append), body) {
		if (mailbox_migrate_backup_index_body_add(store->index, body,
							  error_r) < 0)
			goto failed_rollback;
	}
	if (mailbox_migrate_backup_store_apply_record(store->index,
			str_c(record), str_len(record), &pass_id, &pass_time,
			error_r) < 0 ||
	    mailbox_migrate_db_meta_set(store->index, "generation",
			dec2str(store->generation + 1), error_r) < 0 ||
	    mailbox_migrate_db_meta_set(store->index, "data_size",
			dec2str(record_offset + record_size), error_r) < 0 ||
	    mailbox_migrate_db_meta_set(store->index, "compacted",
			dec2str(ioloop_time), error_r) < 0)
		goto failed_rollback;
	if (mailbox_migrate_db_commit(store->index, error_r) < 0)
		goto failed_unlink;

	old_path = store->data_path;
	i_close_fd(&store->data_fd);
	store->data_fd = fd;
	store->generation++;
	store->data_path = p_strdup(store->pool, new_path);
	store->data_size = record_offset + record_size;
	store->history_since = keep_since;
	store->cached_offset = (uoff_t)-1;
	if (unlink(old_path) < 0)
		i_error("unlink(%s) failed: %m", old_path);
	(void)mailbox_migrate_backup_store_sync(-1, store->dir, &error);
	mailbox_migrate_backup_append_deinit(&ctx.append);
	hash_table_destroy(&ctx.needed);
	str_free(&record);
	result_r->new_size = store->data_size;
	result_r->compacted = TRUE;
	return 0;

failed_rollback:
	mailbox_migrate_db_rollback(store->index);
failed_unlink:
	tmp_path = new_path;
failed:
	*error_r = t_strdup(*error_r);
	if (unlink(tmp_path) < 0)
		i_error("unlink(%s) failed: %m", tmp_path);
	mailbox_migrate_backup_append_deinit(&ctx.append);
	hash_table_destroy(&ctx.needed);
	str_free(&record);
	i_close_fd(&fd);
	return -1;
}
