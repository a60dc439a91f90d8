/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "hash.h"
#include "hex-binary.h"
#include "str.h"
#include "ioloop.h"
#include "mkdir-parents.h"
#include "sleep.h"
#include "mailbox-migrate-backup-tar.h"
#include "mailbox-migrate-backup-record.h"
#include "mailbox-migrate-backup-store.h"

#include <stdio.h>
#include <fcntl.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <openssl/sha.h>

#define BACKUP_LOCK_POLL_MSECS 100

struct mailbox_migrate_backup_append {
	pool_t pool;
	uint32_t pass_id;
	time_t time;
	struct mailbox_migrate_backup_member_writer *writer;
	/* bodies appended, their member's place filled in when it ends */
	ARRAY_TYPE(mailbox_migrate_backup_body) bodies;
	unsigned int member_first_body;
	HASH_TABLE(const char *, void *) hashes;
	string_t *record;
	unsigned int lines;
	bool failed;
};

const char *mailbox_migrate_backup_hash(const void *data, size_t size)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	/* libcrypto's, not lib's sha2.c: with SHA extensions it is about
	   eight times faster, and every byte backed up is hashed */
	(void)SHA256(data, size, digest);
	return binary_to_hex(digest, sizeof(digest));
}

const char *
mailbox_migrate_backup_store_data_path(struct mailbox_migrate_backup_store *store,
				       unsigned int gen)
{
	return t_strdup_printf("%s/data-%u.tar.%s", store->dir, gen,
		mailbox_migrate_backup_compression_ext(store->compression));
}

int mailbox_migrate_backup_store_sync(int fd, const char *dir,
				      const char **error_r)
{
	int dir_fd;

	if (fd != -1 && fdatasync(fd) < 0) {
		*error_r = t_strdup_printf("fdatasync() failed: %m");
		return -1;
	}
	if (dir == NULL)
		return 0;
	dir_fd = open(dir, O_RDONLY);
	if (dir_fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", dir);
		return -1;
	}
	if (fsync(dir_fd) < 0) {
		*error_r = t_strdup_printf("fsync(%s) failed: %m", dir);
		i_close_fd(&dir_fd);
		return -1;
	}
	i_close_fd(&dir_fd);
	return 0;
}

static int backup_store_lock(struct mailbox_migrate_backup_store *store,
			     unsigned int timeout_secs, const char **error_r)
{
	const char *path = t_strdup_printf("%s/%s", store->dir,
					   MAILBOX_MIGRATE_BACKUP_LOCK_NAME);
	unsigned int waited_msecs = 0;
	int op = store->readonly ? LOCK_SH : LOCK_EX;

	store->lock_fd = open(path, store->readonly ? O_RDONLY :
			      O_RDWR | O_CREAT, 0600);
	if (store->lock_fd == -1 && store->readonly && errno == ENOENT) {
		/* a store made by a version without the lock file */
		return 0;
	}
	if (store->lock_fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", path);
		return -1;
	}
	while (flock(store->lock_fd, op | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			*error_r = t_strdup_printf("flock(%s) failed: %m",
						   path);
			return -1;
		}
		if (waited_msecs >= timeout_secs * 1000) {
			*error_r = t_strdup_printf("Backup store %s is locked "
				"by another mailbox-migrate run (waited %u s)",
				store->dir, timeout_secs);
			return -1;
		}
		i_sleep_msecs(BACKUP_LOCK_POLL_MSECS);
		waited_msecs += BACKUP_LOCK_POLL_MSECS;
	}
	return 0;
}

static int backup_store_meta_uint(struct mailbox_migrate_db *index,
				  const char *key, uoff_t *value_r,
				  const char **error_r)
{
	const char *value;
	int ret;

	ret = mailbox_migrate_db_meta_get(index, key, &value, error_r);
	if (ret < 0)
		return -1;
	if (ret == 0 || str_to_uoff(value, value_r) < 0) {
		*error_r = t_strdup_printf("index has no valid %s", key);
		return -1;
	}
	return 0;
}

static int backup_store_read_meta(struct mailbox_migrate_backup_store *store,
				  const char **error_r)
{
	const char *value;
	uoff_t gen, since = 0;
	int ret;

	ret = mailbox_migrate_db_meta_get(store->index, "compression", &value,
					  error_r);
	if (ret < 0)
		return -1;
	if (ret == 0 || mailbox_migrate_backup_compression_parse(value,
					&store->compression) < 0) {
		*error_r = "index has no valid compression";
		return -1;
	}
	if (backup_store_meta_uint(store->index, "generation", &gen,
				   error_r) < 0 ||
	    backup_store_meta_uint(store->index, "data_size",
				   &store->data_size, error_r) < 0)
		return -1;
	ret = mailbox_migrate_db_meta_get(store->index, "history_since",
					  &value, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0 && str_to_uoff(value, &since) < 0) {
		*error_r = "index has no valid history_since";
		return -1;
	}
	store->generation = gen;
	store->history_since = since;
	return 0;
}

static int backup_store_init_meta(struct mailbox_migrate_backup_store *store,
				  const char **error_r)
{
	const char *value;
	int ret;

	if (mailbox_migrate_db_begin(store->index, error_r) < 0)
		return -1;
	ret = mailbox_migrate_db_meta_get(store->index, "compression", &value,
					  error_r);
	if (ret == 0) {
		if (mailbox_migrate_db_meta_set(store->index, "compression",
				mailbox_migrate_backup_compression_name(
					store->compression), error_r) < 0 ||
		    mailbox_migrate_db_meta_set(store->index, "generation",
						"1", error_r) < 0 ||
		    mailbox_migrate_db_meta_set(store->index, "data_size",
						"0", error_r) < 0)
			ret = -1;
	}
	if (ret < 0) {
		mailbox_migrate_db_rollback(store->index);
		return -1;
	}
	return mailbox_migrate_db_commit(store->index, error_r);
}

/* Data files of other generations and temporary files are left by a
   compaction that was interrupted (or finished but didn't clean up). */
static void backup_store_clean(struct mailbox_migrate_backup_store *store)
{
	const char *current = strrchr(store->data_path, '/') + 1;
	struct dirent *d;
	DIR *dir;

	dir = opendir(store->dir);
	if (dir == NULL)
		return;
	while ((d = readdir(dir)) != NULL) {
		if (!str_begins(d->d_name, "data-") ||
		    strcmp(d->d_name, current) == 0)
			continue;
		const char *path = t_strdup_printf("%s/%s", store->dir,
						   d->d_name);
		if (unlink(path) < 0 && errno != ENOENT)
			i_error("unlink(%s) failed: %m", path);
	}
	(void)closedir(dir);
}

static bool backup_store_has_data(const char *dir)
{
	struct dirent *d;
	DIR *dirp;
	bool found = FALSE;

	dirp = opendir(dir);
	if (dirp == NULL)
		return FALSE;
	while (!found && (d = readdir(dirp)) != NULL)
		found = str_begins(d->d_name, "data-");
	(void)closedir(dirp);
	return found;
}

static bool
backup_store_stat_append(string_t *str, const char *path, bool may_be_missing)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno != ENOENT || !may_be_missing)
			return FALSE;
		str_append(str, " -");
		return TRUE;
	}
	str_printfa(str, " %llu:%llu:%lld.%09ld",
		    (unsigned long long)st.st_ino,
		    (unsigned long long)st.st_size,
		    (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
	return TRUE;
}

const char *
mailbox_migrate_backup_store_fingerprint(const char *dir,
					 const char *data_name)
{
	string_t *str = t_str_new(128);

	str_append(str, data_name);
	if (!backup_store_stat_append(str, t_strdup_printf("%s/%s", dir,
			data_name), FALSE) ||
	    !backup_store_stat_append(str, t_strdup_printf("%s/%s", dir,
			MAILBOX_MIGRATE_BACKUP_INDEX_NAME), FALSE) ||
	    !backup_store_stat_append(str, t_strdup_printf("%s/%s-wal", dir,
			MAILBOX_MIGRATE_BACKUP_INDEX_NAME), TRUE))
		return NULL;
	return str_c(str);
}

bool mailbox_migrate_backup_store_fingerprint_matches(const char *dir,
						      const char *fingerprint)
{
	const char *p = strchr(fingerprint, ' '), *now;

	if (p == NULL)
		return FALSE;
	now = mailbox_migrate_backup_store_fingerprint(dir,
			t_strdup_until(fingerprint, p));
	return now != NULL && strcmp(now, fingerprint) == 0;
}

int mailbox_migrate_backup_store_open(const char *dir,
		enum mailbox_migrate_backup_open_flags flags,
		enum mailbox_migrate_backup_compression compression,
		unsigned int lock_timeout_secs,
		struct mailbox_migrate_backup_store **store_r,
		const char **error_r)
{
	struct mailbox_migrate_backup_store *store;
	enum mailbox_migrate_db_open_flags db_flags =
		MAILBOX_MIGRATE_DB_OPEN_FLAG_FSYNC;
	enum mailbox_migrate_db_error db_error;
	const char *index_path;
	struct stat st;
	pool_t pool;
	int ret;

	*store_r = NULL;
	if (stat(dir, &st) < 0) {
		if (errno != ENOENT) {
			*error_r = t_strdup_printf("stat(%s) failed: %m", dir);
			return -1;
		}
		if ((flags & MAILBOX_MIGRATE_BACKUP_OPEN_CREATE) == 0)
			return 0;
		if (mkdir_parents(dir, 0700) < 0 && errno != EEXIST) {
			*error_r = t_strdup_printf("mkdir(%s) failed: %m", dir);
			return -1;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		*error_r = t_strdup_printf("%s is not a directory", dir);
		return -1;
	}

	pool = pool_alloconly_create("mailbox-migrate backup store", 1024);
	store = p_new(pool, struct mailbox_migrate_backup_store, 1);
	store->pool = pool;
	store->dir = p_strdup(pool, dir);
	store->data_fd = -1;
	store->lock_fd = -1;
	store->compression = compression;
	store->readonly = (flags & MAILBOX_MIGRATE_BACKUP_OPEN_READONLY) != 0;
	store->cached_offset = (uoff_t)-1;
	if (backup_store_lock(store, lock_timeout_secs, error_r) < 0)
		goto failed;
	if ((flags & MAILBOX_MIGRATE_BACKUP_OPEN_NO_INDEX) != 0) {
		*store_r = store;
		return 1;
	}

	index_path = t_strdup_printf("%s/%s", dir,
				     MAILBOX_MIGRATE_BACKUP_INDEX_NAME);
	if (stat(index_path, &st) < 0 && errno == ENOENT) {
		if (backup_store_has_data(dir)) {
			/* never start a new index over an old data file */
			*error_r = t_strdup_printf("%s has a data file but no "
				"index: run reindex to rebuild it", dir);
			goto failed;
		}
		if ((flags & MAILBOX_MIGRATE_BACKUP_OPEN_CREATE) == 0) {
			ret = 0;
			goto failed_ret;
		}
	}
	if (store->readonly)
		db_flags |= MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY;
	ret = mailbox_migrate_db_open_schema(index_path,
			&mailbox_migrate_backup_index_schema, db_flags,
			lock_timeout_secs * 1000, &store->index, &db_error,
			error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = t_strdup_printf("%s: empty index", dir);
		goto failed;
	}
	if (!store->readonly && backup_store_init_meta(store, error_r) < 0)
		goto failed;
	if (backup_store_read_meta(store, error_r) < 0) {
		*error_r = t_strdup_printf("%s: %s (run reindex)", index_path,
					   *error_r);
		goto failed;
	}
	store->data_path = p_strdup(pool,
		mailbox_migrate_backup_store_data_path(store,
						       store->generation));
	store->data_fd = store->readonly ? -1 :
		open(store->data_path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (store->data_fd != -1)
		store->data_created = TRUE;
	else if (store->readonly || errno == EEXIST) {
		store->data_fd = open(store->data_path, store->readonly ?
				      O_RDONLY : O_RDWR);
	}
	if (store->data_fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m",
					   store->data_path);
		goto failed;
	}
	if (fstat(store->data_fd, &st) < 0) {
		*error_r = t_strdup_printf("fstat(%s) failed: %m",
					   store->data_path);
		goto failed;
	}
	if (!store->readonly) {
		if ((uoff_t)st.st_size < store->data_size) {
			*error_r = t_strdup_printf("%s is %"PRIuUOFF_T" bytes "
				"shorter than its index says (%"PRIuUOFF_T
				"): the file was truncated; run verify, "
				"then reindex", store->data_path,
				store->data_size - st.st_size,
				store->data_size);
			goto failed;
		}
		if ((uoff_t)st.st_size > store->data_size) {
			/* an unfinished pass: its bytes were never indexed */
			store->cut_bytes = st.st_size - store->data_size;
			if (ftruncate(store->data_fd, store->data_size) < 0) {
				*error_r = t_strdup_printf("ftruncate(%s) "
					"failed: %m", store->data_path);
				goto failed;
			}
		}
		backup_store_clean(store);
	}
	*store_r = store;
	return 1;

failed:
	ret = -1;
failed_ret:
	mailbox_migrate_backup_store_close(&store);
	return ret;
}

void mailbox_migrate_backup_store_close(struct mailbox_migrate_backup_store **_store)
{
	struct mailbox_migrate_backup_store *store = *_store;

	if (store == NULL)
		return;
	*_store = NULL;
	if (store->append != NULL)
		mailbox_migrate_backup_store_pass_abort(store);
	mailbox_migrate_db_close(&store->index);
	i_close_fd(&store->data_fd);
	i_close_fd(&store->lock_fd);
	buffer_free(&store->cached_member);
	pool_unref(&store->pool);
}

struct mailbox_migrate_backup_append *
mailbox_migrate_backup_append_init(int fd, uoff_t offset,
		enum mailbox_migrate_backup_compression compression,
		time_t mtime)
{
	struct mailbox_migrate_backup_append *append;
	pool_t pool;

	pool = pool_alloconly_create("mailbox-migrate backup append", 4096);
	append = p_new(pool, struct mailbox_migrate_backup_append, 1);
	append->pool = pool;
	append->time = mtime;
	append->writer = mailbox_migrate_backup_member_writer_init(fd, offset,
								   compression);
	p_array_init(&append->bodies, pool, 64);
	hash_table_create(&append->hashes, pool, 0, str_hash, strcmp);
	return append;
}

void mailbox_migrate_backup_append_deinit(struct mailbox_migrate_backup_append **_append)
{
	struct mailbox_migrate_backup_append *append = *_append;

	*_append = NULL;
	mailbox_migrate_backup_member_writer_deinit(&append->writer);
	hash_table_destroy(&append->hashes);
	if (append->record != NULL)
		str_free(&append->record);
	pool_unref(&append->pool);
}

bool mailbox_migrate_backup_append_has_body(struct mailbox_migrate_backup_append *append,
					    const char *hash)
{
	return hash_table_lookup(append->hashes, hash) != NULL;
}

const ARRAY_TYPE(mailbox_migrate_backup_body) *
mailbox_migrate_backup_append_bodies(struct mailbox_migrate_backup_append *append)
{
	return &append->bodies;
}

static int backup_append_end_member(struct mailbox_migrate_backup_append *append,
				    uoff_t *offset_r, uoff_t *size_r,
				    const char **error_r)
{
	struct mailbox_migrate_backup_body *body;
	unsigned int i, count;

	if (mailbox_migrate_backup_member_writer_end(append->writer, offset_r,
						     size_r, error_r) < 0)
		return -1;
	body = array_get_modifiable(&append->bodies, &count);
	for (i = append->member_first_body; i < count; i++) {
		body[i].member_offset = *offset_r;
		body[i].member_size = *size_r;
	}
	append->member_first_body = count;
	return 0;
}

static void backup_append_entry(struct mailbox_migrate_backup_append *append,
				const char *name, const void *data,
				size_t size, uoff_t *entry_offset_r)
{
	static const unsigned char zeros[MAILBOX_MIGRATE_TAR_BLOCK_SIZE];
	unsigned char hdr[MAILBOX_MIGRATE_TAR_BLOCK_SIZE];

	mailbox_migrate_tar_header(hdr, name, size, append->time);
	mailbox_migrate_backup_member_writer_write(append->writer, hdr,
						   sizeof(hdr));
	*entry_offset_r =
		mailbox_migrate_backup_member_writer_member_pos(append->writer);
	mailbox_migrate_backup_member_writer_write(append->writer, data, size);
	mailbox_migrate_backup_member_writer_write(append->writer, zeros,
		mailbox_migrate_tar_padding(size));
}

void mailbox_migrate_backup_append_body(struct mailbox_migrate_backup_append *append,
					const char *hash,
					const void *data, size_t size)
{
	struct mailbox_migrate_backup_body *body;
	uoff_t offset, member_size;
	const char *error;

	if (append->failed ||
	    hash_table_lookup(append->hashes, hash) != NULL)
		return;

	body = array_append_space(&append->bodies);
	body->hash = p_strdup(append->pool, hash);
	body->size = size;
	hash_table_insert(append->hashes, body->hash, POINTER_CAST(1));
	backup_append_entry(append, t_strconcat("b/", hash, NULL),
			    data, size, &body->entry_offset);
	if (mailbox_migrate_backup_member_writer_member_pos(append->writer) >=
	    MAILBOX_MIGRATE_BACKUP_MEMBER_SIZE &&
	    backup_append_end_member(append, &offset, &member_size,
				     &error) < 0) {
		i_error("Writing backup data file: %s", error);
		append->failed = TRUE;
	}
}

int mailbox_migrate_backup_append_finish(struct mailbox_migrate_backup_append *append,
					 const char *record_name,
					 const string_t *record,
					 uoff_t *record_offset_r,
					 uoff_t *record_size_r,
					 const char **error_r)
{
	uoff_t offset, size, entry_offset;

	if (append->failed) {
		*error_r = "Writing the data file failed";
		return -1;
	}
	if (mailbox_migrate_backup_member_writer_member_pos(append->writer) > 0 &&
	    backup_append_end_member(append, &offset, &size, error_r) < 0)
		return -1;
	/* the record in its own member: reindex finds it there */
	backup_append_entry(append, record_name, str_data(record),
			    str_len(record), &entry_offset);
	return backup_append_end_member(append, record_offset_r,
					record_size_r, error_r);
}

void mailbox_migrate_backup_store_pass_begin(struct mailbox_migrate_backup_store *store,
					     time_t now)
{
	struct mailbox_migrate_backup_append *append;
	struct mailbox_migrate_backup_line line;
	const char *error;
	uint32_t last_id = 0;
	time_t last_time = 0;
	bool failed = FALSE;

	i_assert(store->append == NULL);
	i_assert(!store->readonly);

	if (mailbox_migrate_backup_index_last_pass(store->index, &last_id,
						   &last_time, &error) < 0) {
		i_error("%s: %s", store->dir, error);
		failed = TRUE;
	}
	/* a pass' time never goes below the last one's: restore --at
	   depends on the order */
	append = mailbox_migrate_backup_append_init(store->data_fd,
		store->data_size, store->compression, I_MAX(now, last_time));
	append->failed = failed;
	append->pass_id = last_id + 1;
	append->record = str_new(default_pool, 4096);
	store->append = append;

	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_PASS;
	line.pass_id = append->pass_id;
	line.time = append->time;
	mailbox_migrate_backup_line_write(append->record, &line);
}

int mailbox_migrate_backup_store_has_body(struct mailbox_migrate_backup_store *store,
					  const char *hash,
					  const char **error_r)
{
	struct mailbox_migrate_backup_body body;

	if (store->append != NULL &&
	    mailbox_migrate_backup_append_has_body(store->append, hash))
		return 1;
	return mailbox_migrate_backup_index_body_get(store->index, hash,
						     &body, error_r);
}

void mailbox_migrate_backup_store_add_body(struct mailbox_migrate_backup_store *store,
					   const char *hash,
					   const void *data, size_t size)
{
	mailbox_migrate_backup_append_body(store->append, hash, data, size);
}

void mailbox_migrate_backup_store_add_line(struct mailbox_migrate_backup_store *store,
		const struct mailbox_migrate_backup_line *line)
{
	mailbox_migrate_backup_line_write(store->append->record, line);
	store->append->lines++;
}

unsigned int mailbox_migrate_backup_store_pass_lines(struct mailbox_migrate_backup_store *store)
{
	return store->append->lines;
}

void mailbox_migrate_backup_store_pass_abort(struct mailbox_migrate_backup_store *store)
{
	mailbox_migrate_backup_append_deinit(&store->append);
	if (ftruncate(store->data_fd, store->data_size) < 0)
		i_error("ftruncate(%s) failed: %m", store->data_path);
}

int mailbox_migrate_backup_store_apply_record(struct mailbox_migrate_db *index,
					      const char *text, size_t size,
					      uint32_t *pass_id_r,
					      time_t *time_r,
					      const char **error_r)
{
	struct mailbox_migrate_backup_line line;
	const char *const *lines, *error;
	unsigned int i;
	int ret = 0;

	lines = t_strsplit(t_strndup(text, size), "\n");
	if (lines[0] == NULL ||
	    mailbox_migrate_backup_line_parse(lines[0], &line, &error) < 0 ||
	    (line.type != MAILBOX_MIGRATE_BACKUP_LINE_PASS &&
	     line.type != MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT)) {
		*error_r = "record doesn't start with a pass line";
		return -1;
	}
	*pass_id_r = line.pass_id;
	*time_r = line.time;
	/* a compacted store's history: what the snapshot says, since its
	   time (restore --at before it is refused) */
	if (line.type == MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT &&
	    (mailbox_migrate_backup_index_reset(index, error_r) < 0 ||
	     mailbox_migrate_db_meta_set(index, "history_since",
					 dec2str(line.time), error_r) < 0))
		return -1;
	for (i = 1; lines[i] != NULL && ret == 0; i++) {
		if (lines[i][0] == '\0')
			continue;
		T_BEGIN {
			if (mailbox_migrate_backup_line_parse(lines[i], &line,
							      &error) < 0) {
				*error_r = t_strdup_printf("record line %u: %s",
							   i + 1, error);
				ret = -1;
			} else if (mailbox_migrate_backup_index_apply(index,
					*pass_id_r, &line, &error) < 0) {
				*error_r = t_strdup(error);
				ret = -1;
			}
		} T_END_PASS_STR_IF(ret < 0, error_r);
	}
	return ret;
}

int mailbox_migrate_backup_store_pass_commit(struct mailbox_migrate_backup_store *store,
					     const char **error_r)
{
	struct mailbox_migrate_backup_append *append = store->append;
	const struct mailbox_migrate_backup_body *body;
	uoff_t record_offset, record_size;
	uint32_t pass_id;
	time_t pass_time;

	if (append->lines == 0 && array_count(&append->bodies) == 0 &&
	    !append->failed) {
		mailbox_migrate_backup_append_deinit(&store->append);
		return 0;
	}
	if (mailbox_migrate_backup_append_finish(append,
			t_strdup_printf("p/%u.txt", append->pass_id),
			append->record, &record_offset, &record_size,
			error_r) < 0 ||
	    mailbox_migrate_backup_store_sync(store->data_fd,
			store->data_created ? store->dir : NULL, error_r) < 0)
		goto failed;
	store->data_created = FALSE;

	if (mailbox_migrate_db_begin(store->index, error_r) < 0)
		goto failed;
	array_foreach(&append->bodies, body) {
		if (mailbox_migrate_backup_index_body_add(store->index, body,
							  error_r) < 0)
			goto failed_rollback;
	}
	if (mailbox_migrate_backup_index_pass_add(store->index,
			append->pass_id, append->time, record_offset,
			record_size, error_r) < 0 ||
	    mailbox_migrate_backup_store_apply_record(store->index,
			str_c(append->record), str_len(append->record),
			&pass_id, &pass_time, error_r) < 0 ||
	    mailbox_migrate_db_meta_set(store->index, "data_size",
			dec2str(record_offset + record_size), error_r) < 0)
		goto failed_rollback;
	if (mailbox_migrate_db_commit(store->index, error_r) < 0)
		goto failed;
	store->data_size = record_offset + record_size;
	mailbox_migrate_backup_append_deinit(&store->append);
	return 0;

failed_rollback:
	mailbox_migrate_db_rollback(store->index);
failed:
	*error_r = t_strdup(*error_r);
	mailbox_migrate_backup_store_pass_abort(store);
	return -1;
}

/* Parse the tar entry whose content starts at entry_offset of a member's
   content. */
static int backup_entry_at(const buffer_t *member, uoff_t entry_offset,
			   const char **name_r, uoff_t *size_r,
			   const char **error_r)
{
	int ret;

	if (entry_offset < MAILBOX_MIGRATE_TAR_BLOCK_SIZE ||
	    entry_offset > member->used) {
		*error_r = "entry offset outside the member";
		return -1;
	}
	ret = mailbox_migrate_tar_parse(CONST_PTR_OFFSET(member->data,
			entry_offset - MAILBOX_MIGRATE_TAR_BLOCK_SIZE),
			name_r, size_r, error_r);
	if (ret == 0)
		*error_r = "no tar header at the entry";
	if (ret <= 0)
		return -1;
	if (*size_r > member->used - entry_offset) {
		*error_r = "entry runs past the member's end";
		return -1;
	}
	return 0;
}

int mailbox_migrate_backup_store_read_body(struct mailbox_migrate_backup_store *store,
		const struct mailbox_migrate_backup_body *body,
		const unsigned char **data_r, const char **error_r)
{
	const char *name, *error;
	uoff_t member_size, size;
	int ret;

	if (store->cached_member == NULL)
		store->cached_member = buffer_create_dynamic(default_pool,
			MAILBOX_MIGRATE_BACKUP_MEMBER_SIZE + 65536);
	if (store->cached_offset != body->member_offset) {
		store->cached_offset = (uoff_t)-1;
		buffer_set_used_size(store->cached_member, 0);
		ret = mailbox_migrate_backup_member_read(store->data_fd,
				store->compression, body->member_offset,
				body->member_offset + body->member_size,
				store->cached_member, &member_size, &error);
		if (ret == 0)
			error = "past the data file's end";
		if (ret <= 0) {
			*error_r = t_strdup_printf("%s at offset %"PRIuUOFF_T
				": %s", store->data_path,
				body->member_offset, error);
			return -1;
		}
		store->cached_offset = body->member_offset;
	}
	if (backup_entry_at(store->cached_member, body->entry_offset, &name,
			    &size, &error) < 0 ||
	    (strcmp(name + (str_begins(name, "b/") ? 2 : 0), body->hash) != 0 &&
	     (error = "entry has another name") != NULL) ||
	    (size != body->size && (error = "entry has another size") != NULL) ||
	    (strcmp(mailbox_migrate_backup_hash(CONST_PTR_OFFSET(
			store->cached_member->data, body->entry_offset), size),
		    body->hash) != 0 &&
	     (error = "content doesn't match its SHA-256") != NULL)) {
		*error_r = t_strdup_printf("%s at offset %"PRIuUOFF_T": body "
			"%s: %s", store->data_path, body->member_offset,
			body->hash, error);
		return -1;
	}
	*data_r = CONST_PTR_OFFSET(store->cached_member->data,
				   body->entry_offset);
	return 0;
}

/* Find the next offset after offset where a member seems to start. */
static int backup_find_member(struct mailbox_migrate_backup_store *store,
			      uoff_t offset, uoff_t limit, uoff_t *next_r)
{
	unsigned char buf[65536];
	ssize_t n;
	size_t i;

	while (offset < limit) {
		n = pread(store->data_fd, buf, I_MIN(sizeof(buf),
						    limit - offset), offset);
		if (n <= 0)
			return n < 0 ? -1 : 0;
		for (i = 0; i + 4 <= (size_t)n; i++) {
			if (mailbox_migrate_backup_member_magic(
				store->compression, buf + i, n - i)) {
				*next_r = offset + i;
				return 1;
			}
		}
		if ((size_t)n < 4)
			return 0;
		offset += n - 3;
	}
	return 0;
}

int mailbox_migrate_backup_store_scan(struct mailbox_migrate_backup_store *store,
		uoff_t limit, mailbox_migrate_backup_scan_callback_t *callback,
		void *context, uoff_t *end_r, const char **error_r)
{
	struct mailbox_migrate_backup_entry entry;
	buffer_t *member;
	const char *error;
	uoff_t offset = 0, pos, member_size, next;
	int ret = 0, cb_ret = 0;
	bool io_failed = FALSE;

	*end_r = 0;
	member = buffer_create_dynamic(default_pool,
				       MAILBOX_MIGRATE_BACKUP_MEMBER_SIZE + 65536);
	while (offset < limit && cb_ret == 0) T_BEGIN {
		buffer_set_used_size(member, 0);
		i_zero(&entry);
		entry.member_offset = offset;
		ret = mailbox_migrate_backup_member_read(store->data_fd,
				store->compression, offset, limit, member,
				&member_size, &error);
		if (ret <= 0) {
			entry.error = error;
			cb_ret = callback(&entry, context);
			ret = backup_find_member(store, offset + 1, limit,
						 &next);
			if (ret < 0)
				io_failed = TRUE;
			if (ret <= 0)
				offset = limit;
			else
				offset = next;
		} else {
			entry.member_size = member_size;
			pos = 0;
			while (pos < member->used && cb_ret == 0) {
				if (member->used - pos <
				    MAILBOX_MIGRATE_TAR_BLOCK_SIZE) {
					ret = -1;
					error = "member ends inside a tar header";
				} else {
					ret = mailbox_migrate_tar_parse(
						CONST_PTR_OFFSET(member->data,
								 pos),
						&entry.name, &entry.size,
						&error);
				}
				if (ret == 1 && pos + MAILBOX_MIGRATE_TAR_BLOCK_SIZE +
				    entry.size > member->used) {
					error = "tar entry runs past its member";
					ret = -1;
				}
				if (ret <= 0) {
					entry.name = NULL;
					entry.error = ret == 0 ?
						"zero block in a member" : error;
					cb_ret = callback(&entry, context);
					break;
				}
				entry.entry_offset = pos +
					MAILBOX_MIGRATE_TAR_BLOCK_SIZE;
				entry.data = CONST_PTR_OFFSET(member->data,
						entry.entry_offset);
				cb_ret = callback(&entry, context);
				pos = entry.entry_offset + entry.size +
					mailbox_migrate_tar_padding(entry.size);
			}
			ret = 1;
			offset += member_size;
			*end_r = offset;
		}
	} T_END;
	buffer_free(&member);
	if (io_failed) {
		*error_r = t_strdup_printf("pread(%s) failed: %m",
					   store->data_path);
		return -1;
	}
	return 0;
}
