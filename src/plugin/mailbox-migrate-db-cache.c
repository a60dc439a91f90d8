/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-plugin.h"

#include <sys/stat.h>

/* An LMTP process delivers to many users, each in a session of its own,
   and opening a state file costs more than the write it is opened for
   (SQLite parses the schema and the statements anew). So the state files
   of the last few users stay open in the process between their sessions.
   This is process-wide on purpose: sessions come and go, the process
   stays. */
#define MAILBOX_MIGRATE_DB_CACHE_SIZE 8

struct mailbox_migrate_db_cache_entry {
	char *path;
	enum mailbox_migrate_db_open_flags flags;
	struct mailbox_migrate_db *db;
	/* the state file's and its WAL's inodes when the handle was kept */
	dev_t dev;
	ino_t ino, wal_ino;
	time_t last_used;
};

static ARRAY(struct mailbox_migrate_db_cache_entry) mailbox_migrate_db_cache;

static int
mailbox_migrate_db_cache_stat(const char *path, struct stat *st_r,
			      ino_t *wal_ino_r)
{
	struct stat wal_st;

	if (stat(path, st_r) < 0 ||
	    stat(t_strconcat(path, "-wal", NULL), &wal_st) < 0)
		return -1;
	*wal_ino_r = wal_st.st_ino;
	return 0;
}

static void
mailbox_migrate_db_cache_free_entry(struct mailbox_migrate_db_cache_entry *entry)
{
	mailbox_migrate_db_close(&entry->db);
	i_free(entry->path);
}

struct mailbox_migrate_db *
mailbox_migrate_db_cache_take(const char *path,
			      enum mailbox_migrate_db_open_flags flags)
{
	struct mailbox_migrate_db_cache_entry *entry;
	struct mailbox_migrate_db *db;
	struct stat st;
	ino_t wal_ino;
	unsigned int i, count;

	if (!array_is_created(&mailbox_migrate_db_cache))
		return NULL;
	entry = array_get_modifiable(&mailbox_migrate_db_cache, &count);
	for (i = 0; i < count; i++) {
		if (strcmp(entry[i].path, path) == 0)
			break;
	}
	if (i == count)
		return NULL;
	db = entry[i].db;
	entry[i].db = NULL;
	/* another process may have replaced the file (a corrupt one moved
	   aside) or its WAL: then the open handle would use the old ones */
	if (mailbox_migrate_db_cache_stat(path, &st, &wal_ino) < 0 ||
	    st.st_dev != entry[i].dev || st.st_ino != entry[i].ino ||
	    wal_ino != entry[i].wal_ino || entry[i].flags != flags)
		mailbox_migrate_db_close(&db);
	mailbox_migrate_db_cache_free_entry(&entry[i]);
	array_delete(&mailbox_migrate_db_cache, i, 1);
	return db;
}

void mailbox_migrate_db_cache_put(struct mailbox_migrate_db **_db,
				  enum mailbox_migrate_db_open_flags flags)
{
	struct mailbox_migrate_db *db = *_db;
	struct mailbox_migrate_db_cache_entry *entry, new_entry;
	struct stat st;
	ino_t wal_ino;
	unsigned int i, count, oldest = 0;

	*_db = NULL;
	if (db == NULL)
		return;
	if (mailbox_migrate_db_cache_stat(mailbox_migrate_db_get_path(db),
					  &st, &wal_ino) < 0) {
		mailbox_migrate_db_close(&db);
		return;
	}
	if (!array_is_created(&mailbox_migrate_db_cache))
		i_array_init(&mailbox_migrate_db_cache,
			     MAILBOX_MIGRATE_DB_CACHE_SIZE);
	entry = array_get_modifiable(&mailbox_migrate_db_cache, &count);
	if (count >= MAILBOX_MIGRATE_DB_CACHE_SIZE) {
		for (i = 1; i < count; i++) {
			if (entry[i].last_used < entry[oldest].last_used)
				oldest = i;
		}
		mailbox_migrate_db_cache_free_entry(&entry[oldest]);
		array_delete(&mailbox_migrate_db_cache, oldest, 1);
	}
	i_zero(&new_entry);
	new_entry.path = i_strdup(mailbox_migrate_db_get_path(db));
	new_entry.flags = flags;
	new_entry.db = db;
	new_entry.dev = st.st_dev;
	new_entry.ino = st.st_ino;
	new_entry.wal_ino = wal_ino;
	new_entry.last_used = ioloop_time;
	array_push_back(&mailbox_migrate_db_cache, &new_entry);
}

void mailbox_migrate_db_cache_deinit(void)
{
	struct mailbox_migrate_db_cache_entry *entry;

	if (!array_is_created(&mailbox_migrate_db_cache))
		return;
	array_foreach_modifiable(&mailbox_migrate_db_cache, entry)
		mailbox_migrate_db_cache_free_entry(entry);
	array_free(&mailbox_migrate_db_cache);
}
