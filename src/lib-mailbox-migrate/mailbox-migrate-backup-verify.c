/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "hash.h"
#include "mailbox-migrate-backup-record.h"
#include "mailbox-migrate-backup-store.h"
#include "mailbox-migrate-backup-verify.h"

#include <unistd.h>
#include <sys/stat.h>

struct verify_context {
	struct mailbox_migrate_backup_store *store;
	struct mailbox_migrate_backup_verify_result *result;
	pool_t pool;
	/* hash -> the verified body's place */
	HASH_TABLE(const char *, struct mailbox_migrate_backup_body *) bodies;
	uoff_t last_member;
	bool quick;
};

static void verify_problem(struct verify_context *ctx, uoff_t offset,
			   const char *problem)
{
	struct mailbox_migrate_backup_verify_result *result = ctx->result;

	result->problems++;
	if (result->first_problem == NULL ||
	    offset < result->first_problem_offset) {
		result->first_problem = p_strdup(ctx->pool, problem);
		result->first_problem_offset = offset;
	}
}

static int verify_record(struct verify_context *ctx,
			 const struct mailbox_migrate_backup_entry *entry)
{
	struct mailbox_migrate_backup_line line;
	const char *const *lines, *error;
	unsigned int i;

	lines = t_strsplit(t_strndup(entry->data, entry->size), "\n");
	for (i = 0; lines[i] != NULL; i++) {
		if (lines[i][0] == '\0')
			continue;
		if (mailbox_migrate_backup_line_parse(lines[i], &line,
						      &error) < 0) {
			verify_problem(ctx, entry->member_offset,
				t_strdup_printf("record %s line %u: %s",
						entry->name, i + 1, error));
			return 0;
		}
	}
	return 0;
}

static int verify_entry(const struct mailbox_migrate_backup_entry *entry,
			void *context)
{
	struct verify_context *ctx = context;
	struct mailbox_migrate_backup_body *body;
	const char *hash;

	if (entry->error != NULL) {
		verify_problem(ctx, entry->member_offset, t_strdup_printf(
			"unreadable member: %s", entry->error));
		return 0;
	}
	if (ctx->last_member != entry->member_offset + 1) {
		ctx->last_member = entry->member_offset + 1;
		ctx->result->members++;
	}
	if (str_begins(entry->name, "b/")) {
		ctx->result->bodies++;
		hash = mailbox_migrate_backup_hash(entry->data, entry->size);
		if (strcmp(hash, entry->name + 2) != 0) {
			verify_problem(ctx, entry->member_offset,
				t_strdup_printf("body %s: content doesn't "
						"match its SHA-256",
						entry->name + 2));
			return 0;
		}
		body = p_new(ctx->pool, struct mailbox_migrate_backup_body, 1);
		body->hash = p_strdup(ctx->pool, hash);
		body->size = entry->size;
		body->member_offset = entry->member_offset;
		body->member_size = entry->member_size;
		body->entry_offset = entry->entry_offset;
		hash_table_update(ctx->bodies, body->hash, body);
	} else if (str_begins(entry->name, "p/")) {
		ctx->result->records++;
		return verify_record(ctx, entry);
	} else {
		verify_problem(ctx, entry->member_offset, t_strdup_printf(
			"unexpected entry %s", entry->name));
	}
	return 0;
}

static int verify_index_body(const struct mailbox_migrate_backup_body *body,
			     void *context)
{
	struct verify_context *ctx = context;
	const struct mailbox_migrate_backup_body *found;
	unsigned char magic[4];

	if (ctx->quick) {
		if (body->member_offset + body->member_size >
		    ctx->result->bytes) {
			verify_problem(ctx, body->member_offset,
				t_strdup_printf("body %s: member beyond the "
						"data file's end", body->hash));
		} else if (pread(ctx->store->data_fd, magic, sizeof(magic),
				 body->member_offset) != sizeof(magic) ||
			   !mailbox_migrate_backup_member_magic(
				ctx->store->compression, magic,
				sizeof(magic))) {
			verify_problem(ctx, body->member_offset,
				t_strdup_printf("body %s: no member starts "
						"at its offset", body->hash));
		}
		return 0;
	}
	found = hash_table_lookup(ctx->bodies, body->hash);
	if (found == NULL) {
		verify_problem(ctx, body->member_offset, t_strdup_printf(
			"body %s: not (intact) in the data file", body->hash));
	} else if (found->member_offset != body->member_offset ||
		   found->entry_offset != body->entry_offset ||
		   found->size != body->size) {
		verify_problem(ctx, body->member_offset, t_strdup_printf(
			"body %s: the index has another place for it (member "
			"%"PRIuUOFF_T")", body->hash, found->member_offset));
	}
	return 0;
}

int mailbox_migrate_backup_verify(struct mailbox_migrate_backup_store *store,
				  bool quick,
				  struct mailbox_migrate_backup_verify_result *result_r,
				  const char **error_r)
{
	struct mailbox_migrate_backup_index_stats stats;
	struct verify_context ctx;
	const char *first_hash;
	unsigned int missing;
	struct stat st;
	uoff_t end;
	int ret = 0;

	i_zero(result_r);
	i_zero(&ctx);
	ctx.store = store;
	ctx.result = result_r;
	ctx.quick = quick;
	ctx.pool = pool_alloconly_create("mailbox-migrate verify", 8192);
	hash_table_create(&ctx.bodies, ctx.pool, 0, str_hash, strcmp);

	result_r->bytes = store->data_size;
	if (fstat(store->data_fd, &st) < 0) {
		*error_r = t_strdup_printf("fstat(%s) failed: %m",
					   store->data_path);
		ret = -1;
		goto out;
	}
	if ((uoff_t)st.st_size < store->data_size) {
		verify_problem(&ctx, st.st_size, t_strdup_printf(
			"data file ends at %"PRIuUOFF_T", the index says "
			"%"PRIuUOFF_T, (uoff_t)st.st_size, store->data_size));
	}
	if (mailbox_migrate_backup_index_stats(store->index, 0, &stats,
					       error_r) < 0) {
		ret = -1;
		goto out;
	}
	result_r->messages = stats.messages;
	if (!quick) {
		if (mailbox_migrate_backup_store_scan(store, store->data_size,
				verify_entry, &ctx, &end, error_r) < 0) {
			ret = -1;
			goto out;
		}
	} else {
		result_r->bodies = stats.bodies;
		result_r->records = stats.passes;
	}
	if (mailbox_migrate_backup_index_bodies(store->index,
			verify_index_body, &ctx, error_r) < 0 ||
	    mailbox_migrate_backup_index_missing_bodies(store->index,
			&missing, &first_hash, error_r) < 0) {
		ret = -1;
		goto out;
	}
	if (missing > 0) {
		verify_problem(&ctx, store->data_size, t_strdup_printf(
			"%u message rows name bodies the index doesn't have "
			"(first: %s)", missing, first_hash));
	}
out:
	if (result_r->first_problem != NULL) {
		result_r->first_problem = t_strdup(result_r->first_problem);
	}
	hash_table_destroy(&ctx.bodies);
	pool_unref(&ctx.pool);
	return ret;
}
