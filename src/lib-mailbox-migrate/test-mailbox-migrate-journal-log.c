/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "str.h"
#include "test-common.h"
#include "test-mailbox-migrate-dir.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal.h"
#include "mailbox-migrate-seen.h"
#include "mailbox-migrate-journal-log.h"

#include <stdio.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#define GUID_A "0123456789abcdef0123456789abcdef"
#define GUID_B "fedcba9876543210fedcba9876543210"
#define GUID_C "00112233445566778899aabbccddeeff"
/* a record's header: magic, type, size, crc32 */
#define RECORD_HDR_SIZE 11
#define LOG_HEADER_SIZE (RECORD_HDR_SIZE + 32)


static const char *test_path(const char *name)
{
	return t_strconcat(test_dir, "/", name, NULL);
}

static struct mailbox_migrate_db *test_db_open(const char *path, bool fold)
{
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error;

	if (mailbox_migrate_db_open(path, fold ? 0 :
				    MAILBOX_MIGRATE_DB_OPEN_FLAG_NO_FOLD,
				    200, 0, &db, &code, &error) <= 0)
		i_fatal("open(%s): %s", path, error);
	return db;
}

static void
test_entry(struct mailbox_migrate_journal_entry *entry,
	   enum mailbox_migrate_journal_type type, const char *mailbox_guid,
	   uint32_t uid)
{
	i_zero(entry);
	entry->time = 1700000000 + uid;
	entry->type = type;
	entry->mailbox_guid = mailbox_guid;
	entry->uidvalidity = 1234;
	entry->uid = uid;
	entry->message_guid = t_strdup_printf("msg%u", uid);
	entry->flags = MAIL_SEEN | MAIL_FLAGGED;
	entry->keywords = "$label1 work";
	entry->service = "imap";
	entry->modseq = 10 + uid;
}

/* Append saves of UIDs first..last to the log of db_path, one append each */
static void test_log_saves(const char *db_path, uint32_t first, uint32_t last)
{
	struct mailbox_migrate_journal_log *log;
	struct mailbox_migrate_journal_entry entry;
	enum mailbox_migrate_db_error code;
	const char *error;
	buffer_t *buf;
	uoff_t size;
	uint32_t uid;

	log = mailbox_migrate_journal_log_init(db_path, FALSE);
	for (uid = first; uid <= last; uid++) T_BEGIN {
		buf = t_buffer_create(128);
		test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A,
			   uid);
		mailbox_migrate_journal_log_add_entry(buf, &entry);
		test_assert(mailbox_migrate_journal_log_append(log, buf, 200,
				&size, &code, &error) == 0);
	} T_END;
	mailbox_migrate_journal_log_deinit(&log);
}

/* UIDs of the journal's entries after since_seq, "gap" for a gap */
static const char *test_journal_uids(struct mailbox_migrate_db *db,
				     uint64_t since_seq)
{
	struct mailbox_migrate_journal_iter *iter;
	const struct mailbox_migrate_journal_entry *entry;
	string_t *str = t_str_new(128);
	uint64_t prev_seq = since_seq;
	const char *error;

	iter = mailbox_migrate_journal_iter_init(db, since_seq, NULL);
	while (mailbox_migrate_journal_iter_next(iter, &entry)) {
		test_assert(entry->seq > prev_seq);
		prev_seq = entry->seq;
		if (str_len(str) > 0)
			str_append_c(str, ' ');
		if (entry->type == MAILBOX_MIGRATE_JOURNAL_TYPE_GAP)
			str_append(str, "gap");
		else
			str_printfa(str, "%u", entry->uid);
	}
	test_assert(mailbox_migrate_journal_iter_deinit(&iter, &error) == 0);
	return str_c(str);
}

static off_t test_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : st.st_size;
}

static void test_journal_log_records(void)
{
	struct mailbox_migrate_journal_log_record rec;
	struct mailbox_migrate_journal_entry entry;
	buffer_t *buf = t_buffer_create(256);
	const char *error;
	size_t pos = 0, end;
	unsigned char *data;

	test_begin("journal log records");
	test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_RENAME, GUID_A, 0);
	entry.message_guid = NULL;
	entry.keywords = "";
	entry.name = "Tab\there/new\nline/Ärger &-";
	entry.old_name = "+plus";
	mailbox_migrate_journal_log_add_entry(buf, &entry);
	mailbox_migrate_journal_log_add_mailbox(buf, GUID_B, "", 77, 12, TRUE);
	mailbox_migrate_journal_log_add_deleted(buf, GUID_A);
	mailbox_migrate_journal_log_add_deleted(buf, "");
	mailbox_migrate_journal_log_add_seen(buf, GUID_B, 77, 9, 1700000001,
					     "pop3");

	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) == 1);
	test_assert(rec.type == MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_ENTRY);
	test_assert(rec.entry.type == MAILBOX_MIGRATE_JOURNAL_TYPE_RENAME);
	test_assert(rec.entry.time == 1700000000);
	test_assert(strcmp(rec.entry.mailbox_guid, GUID_A) == 0);
	test_assert(rec.entry.uidvalidity == 1234 && rec.entry.uid == 0);
	test_assert(rec.entry.message_guid == NULL);
	test_assert(rec.entry.keywords != NULL &&
		    rec.entry.keywords[0] == '\0');
	test_assert(strcmp(rec.entry.name, entry.name) == 0);
	test_assert(strcmp(rec.entry.old_name, "+plus") == 0);
	test_assert(strcmp(rec.entry.service, "imap") == 0);
	test_assert(rec.entry.flags == (MAIL_SEEN | MAIL_FLAGGED));
	test_assert(rec.entry.modseq == 10);

	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) == 1);
	test_assert(rec.type == MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_MAILBOX);
	test_assert(strcmp(rec.entry.mailbox_guid, GUID_B) == 0);
	test_assert(rec.entry.name[0] == '\0');
	test_assert(rec.entry.uidvalidity == 77 && rec.entry.modseq == 12 &&
		    rec.entry.uid == 1);
	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) == 1);
	test_assert(rec.type == MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_DELETED);
	test_assert(strcmp(rec.entry.mailbox_guid, GUID_A) == 0);
	/* an empty field alone is a record too */
	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) == 1);
	test_assert(rec.type == MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_DELETED);
	test_assert(rec.entry.mailbox_guid[0] == '\0');
	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) == 1);
	test_assert(rec.type == MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_SEEN);
	test_assert(rec.entry.uidvalidity == 77 && rec.entry.uid == 9 &&
		    rec.entry.time == 1700000001 &&
		    strcmp(rec.entry.service, "pop3") == 0);
	end = pos;
	test_assert(end == buf->used);
	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) == 0);

	/* cut short anywhere: damage, never a record */
	for (end = 1; end < buf->used; end++) {
		size_t p = 0;
		int ret;

		while ((ret = mailbox_migrate_journal_log_parse(buf->data, end,
						&p, &rec, &error)) > 0) ;
		test_assert_idx(ret < 0 || p == end, end);
	}
	/* a flipped byte in a payload fails the checksum */
	data = buffer_get_modifiable_data(buf, NULL);
	data[RECORD_HDR_SIZE + 3] ^= 0x01;
	pos = 0;
	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) < 0);
	test_assert(pos == 0 && strstr(error, "checksum") != NULL);
	/* bad magic */
	data[RECORD_HDR_SIZE + 3] ^= 0x01;
	data[0] = 'Y';
	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) < 0);
	/* a sealed log's first record still parses (a fold that failed
	   to replace it leaves it in use), no later one does */
	data[0] = 'X';
	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) > 0);
	data[0] = 'M';
	data[pos] = 'X';
	test_assert(mailbox_migrate_journal_log_parse(buf->data, buf->used,
						      &pos, &rec, &error) < 0);
	test_end();
}

static void test_journal_log_fold(void)
{
	const char *path = test_path("fold/state.db");
	const char *log_path = mailbox_migrate_journal_log_path(path);
	struct mailbox_migrate_journal_log *log;
	struct mailbox_migrate_journal_entry entry;
	struct mailbox_migrate_journal_mailbox mbox;
	struct mailbox_migrate_seen_record seen;
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error;
	uint64_t last_seq;
	buffer_t *buf;
	uoff_t size;

	test_begin("journal log fold");
	db = test_db_open(path, FALSE);
	/* nothing to fold yet */
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) == 0);

	test_log_saves(path, 1, 3);
	test_assert(test_file_size(log_path) > LOG_HEADER_SIZE);
	test_assert(mailbox_migrate_journal_log_need_fold(db, &error) == 1);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) == 3);
	test_assert(strcmp(test_journal_uids(db, 0), "1 2 3") == 0);
	/* folded once only */
	test_assert(mailbox_migrate_journal_log_need_fold(db, &error) == 0);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) == 0);
	test_assert(strcmp(test_journal_uids(db, 0), "1 2 3") == 0);

	/* one append: an entry, the witness record, the seen UIDNEXT */
	log = mailbox_migrate_journal_log_init(path, TRUE);
	buf = t_buffer_create(256);
	test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS, GUID_A, 2);
	mailbox_migrate_journal_log_add_entry(buf, &entry);
	mailbox_migrate_journal_log_add_mailbox(buf, GUID_A, "INBOX", 1234,
						50, TRUE);
	mailbox_migrate_journal_log_add_seen(buf, GUID_A, 1234, 4, 1700000009,
					     "imap");
	/* a lower seen UIDNEXT later in the log doesn't lower it */
	mailbox_migrate_journal_log_add_seen(buf, GUID_A, 1234, 2, 1700000010,
					     "pop3");
	test_assert(mailbox_migrate_journal_log_append(log, buf, 200, &size,
						       &code, &error) == 0);
	test_assert((off_t)size == test_file_size(log_path));
	mailbox_migrate_journal_log_deinit(&log);
	mailbox_migrate_db_close(&db);

	/* a read-only open folds what is unfolded */
	test_assert(mailbox_migrate_db_open(path,
			MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY, 200, 0, &db,
			&code, &error) == 1);
	test_assert(strcmp(test_journal_uids(db, 0), "1 2 3 2") == 0);
	test_assert(mailbox_migrate_journal_get_last_seq(db, &last_seq,
							 &error) == 0);
	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_A, &mbox,
							&error) == 1);
	test_assert(strcmp(mbox.name, "INBOX") == 0);
	test_assert(mbox.witness_modseq == 50 && mbox.witness_seq == last_seq);
	test_assert(mailbox_migrate_seen_get(db, GUID_A, 1234, &seen,
					     &error) == 1);
	test_assert(seen.seen_uidnext == 4 &&
		    strcmp(seen.seen_by, "imap") == 0);
	mailbox_migrate_db_close(&db);
	test_end();
}

/* A fold writes a mailbox's record once for all its commits, with what
   writing each in turn would give. */
static void test_journal_log_fold_mailbox_records(void)
{
	const char *path = test_path("fold-mailbox/state.db");
	struct mailbox_migrate_journal_log *log;
	struct mailbox_migrate_journal_entry entry;
	struct mailbox_migrate_journal_mailbox mbox;
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error;
	uint64_t first_seq;
	buffer_t *buf;
	uoff_t size;

	test_begin("journal log fold merges mailbox records");
	db = test_db_open(path, FALSE);
	test_assert(mailbox_migrate_journal_get_last_seq(db, &first_seq,
							 &error) == 0);
	log = mailbox_migrate_journal_log_init(path, FALSE);
	buf = t_buffer_create(1024);
	/* GUID_A: three commits, the second with a lower modseq (it takes
	   neither the witness nor its seq), the third renames it */
	test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A, 1);
	mailbox_migrate_journal_log_add_entry(buf, &entry);
	mailbox_migrate_journal_log_add_mailbox(buf, GUID_A, "INBOX", 1234,
						40, TRUE);
	test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS, GUID_A, 1);
	mailbox_migrate_journal_log_add_entry(buf, &entry);
	mailbox_migrate_journal_log_add_mailbox(buf, GUID_A, "", 0, 30, TRUE);
	mailbox_migrate_journal_log_add_mailbox(buf, GUID_A, "Renamed", 0,
						40, TRUE);
	/* a new mailbox whose only record has modseq 0 (its index state
	   couldn't be read): its witness seq is still the record's */
	test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_C, 7);
	mailbox_migrate_journal_log_add_entry(buf, &entry);
	mailbox_migrate_journal_log_add_mailbox(buf, GUID_C, "Zero", 0, 0,
						TRUE);
	/* GUID_B: updated, then deleted: it stays deleted */
	mailbox_migrate_journal_log_add_mailbox(buf, GUID_B, "Gone", 99, 5,
						TRUE);
	mailbox_migrate_journal_log_add_deleted(buf, GUID_B);
	test_assert(mailbox_migrate_journal_log_append(log, buf, 200, &size,
						       &code, &error) == 0);
	mailbox_migrate_journal_log_deinit(&log);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code,
						     &error) > 0);

	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_A, &mbox,
							&error) == 1);
	test_assert_strcmp(mbox.name, "Renamed");
	test_assert(mbox.uidvalidity == 1234 && !mbox.deleted);
	/* the first record raised the witness to 40, after the first entry;
	   the later ones didn't raise it */
	test_assert(mbox.witness_modseq == 40);
	test_assert(mbox.witness_seq == first_seq + 1);
	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_B, &mbox,
							&error) == 1);
	test_assert(mbox.deleted && mbox.uidvalidity == 99);
	test_assert_strcmp(mbox.name, "Gone");
	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_C, &mbox,
							&error) == 1);
	test_assert(mbox.witness_seq == first_seq + 3);

	/* deleted, then made again (a new record after the delete) */
	log = mailbox_migrate_journal_log_init(path, FALSE);
	buffer_set_used_size(buf, 0);
	mailbox_migrate_journal_log_add_mailbox(buf, GUID_B, "Again", 0, 6,
						TRUE);
	test_assert(mailbox_migrate_journal_log_append(log, buf, 200, &size,
						       &code, &error) == 0);
	mailbox_migrate_journal_log_deinit(&log);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code,
						     &error) > 0);
	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_B, &mbox,
							&error) == 1);
	test_assert(!mbox.deleted && mbox.witness_modseq == 6);
	test_assert_strcmp(mbox.name, "Again");
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_log_rotate(void)
{
	const char *path = test_path("rotate/state.db");
	const char *log_path = mailbox_migrate_journal_log_path(path);
	struct mailbox_migrate_journal_log *log;
	struct mailbox_migrate_journal_entry entry;
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error, *copy_path = test_path("rotate/copy");
	uint32_t count = 0;
	buffer_t *buf;
	uoff_t size;
	int fd, fd2;
	char data[4096];
	ssize_t ret;

	test_begin("journal log replaced after a fold");
	db = test_db_open(path, FALSE);
	/* a writer with the log open before the fold replaces it */
	log = mailbox_migrate_journal_log_init(path, FALSE);
	while (test_file_size(log_path) <
	       MAILBOX_MIGRATE_JOURNAL_LOG_ROTATE_SIZE) T_BEGIN {
		buf = t_buffer_create(128);
		test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A,
			   ++count);
		mailbox_migrate_journal_log_add_entry(buf, &entry);
		test_assert(mailbox_migrate_journal_log_append(log, buf, 200,
				&size, &code, &error) == 0);
	} T_END;
	/* a stray hard link (a crash between link() and unlink() of a
	   new log's temporary file) keeps the old log's link count above 0
	   after the replacement: the writer must still notice it */
	test_assert(link(log_path, test_path("rotate/stray")) == 0);
	/* keep the full log, as if the fold crashed before replacing it */
	fd = open(log_path, O_RDONLY);
	fd2 = open(copy_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	while ((ret = read(fd, data, sizeof(data))) > 0)
		test_assert(write(fd2, data, ret) == ret);
	i_close_fd(&fd);
	i_close_fd(&fd2);

	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) ==
		    (int)count);
	test_assert(test_file_size(log_path) == LOG_HEADER_SIZE);
	/* the full log back in place, as if the fold had crashed before
	   replacing it: its id and size say it is folded */
	test_assert(rename(copy_path, log_path) == 0);
	test_assert(mailbox_migrate_journal_log_need_fold(db, &error) == 1);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) == 0);
	test_assert(test_file_size(log_path) == LOG_HEADER_SIZE);
	test_assert(strcmp(test_journal_uids(db, count - 1),
			   t_strdup_printf("%u", count)) == 0);

	/* the writer notices and appends to the new log */
	T_BEGIN {
		buf = t_buffer_create(128);
		test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_EXPUNGE,
			   GUID_A, 1);
		mailbox_migrate_journal_log_add_entry(buf, &entry);
		test_assert(mailbox_migrate_journal_log_append(log, buf, 200,
				&size, &code, &error) == 0);
	} T_END;
	mailbox_migrate_journal_log_deinit(&log);
	test_assert(test_file_size(log_path) > LOG_HEADER_SIZE);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) == 1);
	test_assert(strcmp(test_journal_uids(db, count), "1") == 0);
	mailbox_migrate_db_close(&db);
	test_end();
}

/* Append a save of uid through log (which stays open) */
static void test_log_append_save(struct mailbox_migrate_journal_log *log,
				 uint32_t uid)
{
	struct mailbox_migrate_journal_entry entry;
	enum mailbox_migrate_db_error code;
	const char *error;
	buffer_t *buf;
	uoff_t size;

	T_BEGIN {
		buf = t_buffer_create(128);
		test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A,
			   uid);
		mailbox_migrate_journal_log_add_entry(buf, &entry);
		test_assert_idx(mailbox_migrate_journal_log_append(log, buf,
				200, &size, &code, &error) == 0, uid);
	} T_END;
}

static void test_journal_log_seal(void)
{
	const char *path = test_path("seal/state.db");
	const char *log_path = mailbox_migrate_journal_log_path(path);
	struct mailbox_migrate_journal_log *log;
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error, *uids;
	unsigned int i;
	time_t start;
	int fd;

	test_begin("journal log seal");
	db = test_db_open(path, FALSE);
	log = mailbox_migrate_journal_log_init(path, FALSE);
	test_log_append_save(log, 1);

	/* a fold that sealed the log and failed to replace it: the log
	   stays in use, and folds */
	fd = open(log_path, O_WRONLY);
	test_assert(pwrite(fd, "X", 1, 0) == 1);
	i_close_fd(&fd);
	test_log_append_save(log, 2);
	test_assert(mailbox_migrate_journal_log_need_fold(db, &error) == 1);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code,
						     &error) == 2);
	test_assert(strcmp(test_journal_uids(db, 0), "1 2") == 0);

	/* a log moved away by hand is never sealed: the writer notices
	   within a second (what it appends until then may go to the old
	   file) and appends to a new log */
	test_assert(rename(log_path, test_path("seal/aside.log")) == 0);
	start = time(NULL);
	test_log_append_save(log, 3);
	for (i = 0; i < 30 && time(NULL) < start + 2; i++)
		usleep(100 * 1000);
	test_log_append_save(log, 4);
	test_assert(test_file_size(log_path) > LOG_HEADER_SIZE);
	mailbox_migrate_journal_log_deinit(&log);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code,
						     &error) >= 1);
	uids = test_journal_uids(db, 2);
	test_assert(strcmp(uids, "4") == 0 || strcmp(uids, "3 4") == 0);
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_log_damage(void)
{
	const char *path = test_path("damage/state.db");
	const char *log_path = mailbox_migrate_journal_log_path(path);
	struct mailbox_migrate_journal_completeness result;
	struct mailbox_migrate_journal_entry entry;
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error;
	uint64_t last_seq;
	buffer_t *buf;
	int fd;

	test_begin("journal log damage makes a gap");
	db = test_db_open(path, FALSE);
	test_log_saves(path, 1, 2);
	/* a record cut short, as a full disk leaves it */
	fd = open(log_path, O_WRONLY | O_APPEND);
	test_assert(write(fd, "MJE\x40\0\0\0", 7) == 7);
	i_close_fd(&fd);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) == 2);
	test_assert(strcmp(test_journal_uids(db, 0), "1 2 gap") == 0);
	test_assert(mailbox_migrate_journal_check(db, &result, &error) == 0);
	test_assert(mailbox_migrate_journal_get_last_seq(db, &last_seq,
							 &error) == 0);
	test_assert(result.incomplete_since == last_seq &&
		    strstr(result.reason, "damaged") != NULL);
	/* replaced: what follows folds normally */
	test_assert(test_file_size(log_path) == LOG_HEADER_SIZE);
	test_log_saves(path, 3, 3);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) == 1);
	test_assert(strcmp(test_journal_uids(db, last_seq), "3") == 0);

	/* a log without its header is damaged from the start */
	test_assert(unlink(log_path) == 0);
	fd = open(log_path, O_WRONLY | O_CREAT, 0600);
	buf = t_buffer_create(128);
	test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A, 4);
	mailbox_migrate_journal_log_add_entry(buf, &entry);
	test_assert(write(fd, buf->data, buf->used) == (ssize_t)buf->used);
	i_close_fd(&fd);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code, &error) == 0);
	test_assert(strcmp(test_journal_uids(db, last_seq), "3 gap") == 0);
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_log_lost_end(void)
{
	const char *path = test_path("lostend/state.db");
	const char *log_path = mailbox_migrate_journal_log_path(path);
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error;

	test_begin("journal log that lost its end makes a gap");
	db = test_db_open(path, FALSE);
	test_log_saves(path, 1, 3);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code,
						     &error) == 3);
	/* a power loss took back what had been folded: nothing is folded
	   again, the journal can't vouch for what follows */
	test_assert(truncate(log_path, LOG_HEADER_SIZE + 10) == 0);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code,
						     &error) == 0);
	test_assert(strcmp(test_journal_uids(db, 0), "1 2 3 gap") == 0);
	test_assert(test_file_size(log_path) == LOG_HEADER_SIZE);
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_log_db_replaced(void)
{
	const char *path = test_path("replaced/state.db");
	struct mailbox_migrate_db *db, *db2;
	enum mailbox_migrate_db_error code;
	const char *error;

	test_begin("journal log not folded into a replaced state file");
	db = test_db_open(path, FALSE);
	test_assert(rename(path, test_path("replaced/aside.db")) == 0);
	db2 = test_db_open(path, FALSE);
	test_log_saves(path, 1, 2);
	test_assert(mailbox_migrate_journal_log_fold(db, 0, 200, &code,
						     &error) < 0);
	test_assert(code == MAILBOX_MIGRATE_DB_ERROR_CORRUPT);
	test_assert(mailbox_migrate_journal_log_fold(db2, 0, 200, &code,
						     &error) == 2);
	test_assert(strcmp(test_journal_uids(db2, 0), "1 2") == 0);
	mailbox_migrate_db_close(&db);
	mailbox_migrate_db_close(&db2);
	test_end();
}

static void test_journal_log_cap(void)
{
	const char *path = test_path("cap/state.db");
	const char *log_path = mailbox_migrate_journal_log_path(path);
	struct mailbox_migrate_journal_log *log;
	struct mailbox_migrate_journal_entry entry;
	enum mailbox_migrate_db_error code;
	const char *error;
	buffer_t *buf = t_buffer_create(128);
	uoff_t size;

	test_begin("journal log stops at its size cap");
	test_log_saves(path, 1, 1);
	/* sparse: as big as the cap without writing it */
	test_assert(truncate(log_path,
			     MAILBOX_MIGRATE_JOURNAL_LOG_MAX_SIZE) == 0);
	log = mailbox_migrate_journal_log_init(path, FALSE);
	test_entry(&entry, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A, 2);
	mailbox_migrate_journal_log_add_entry(buf, &entry);
	test_assert(mailbox_migrate_journal_log_append(log, buf, 200, &size,
						       &code, &error) < 0);
	test_assert(code == MAILBOX_MIGRATE_DB_ERROR_FULL);
	test_assert(test_file_size(log_path) ==
		    MAILBOX_MIGRATE_JOURNAL_LOG_MAX_SIZE);
	mailbox_migrate_journal_log_deinit(&log);
	test_end();
}

static void test_journal_log_prune(void)
{
	const char *path = test_path("prune/state.db");
	struct mailbox_migrate_journal_completeness result;
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error;

	test_begin("journal log fold prunes");
	db = test_db_open(path, FALSE);
	test_log_saves(path, 1, 30);
	/* max 10 entries: the fold crosses a prune interval */
	test_assert(mailbox_migrate_journal_log_fold(db, 10, 200, &code, &error) ==
		    30);
	test_assert(mailbox_migrate_journal_check(db, &result, &error) == 0);
	/* the oldest entries are cut, and the journal says so */
	test_assert(result.incomplete_since == 21 &&
		    strstr(result.reason, "size bound") != NULL);
	test_assert(strcmp(test_journal_uids(db, 0),
			   "22 23 24 25 26 27 28 29 30") == 0);
	mailbox_migrate_db_close(&db);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_journal_log_records,
		test_journal_log_fold,
		test_journal_log_fold_mailbox_records,
		test_journal_log_rotate,
		test_journal_log_seal,
		test_journal_log_damage,
		test_journal_log_lost_end,
		test_journal_log_db_replaced,
		test_journal_log_cap,
		test_journal_log_prune,
		NULL
	};
	return test_run_in_dir("mailbox-migrate-journal-log", test_functions);
}
