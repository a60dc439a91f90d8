/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "test-common.h"
#include "test-mailbox-migrate-dir.h"
#include "mailbox-migrate-backup-tar.h"
#include "mailbox-migrate-backup-record.h"
#include "mailbox-migrate-backup-store.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#define BOX_A "0123456789abcdef0123456789abcdef"
#define BOX_B "fedcba9876543210fedcba9876543210"


static void test_tar_header(void)
{
	unsigned char hdr[MAILBOX_MIGRATE_TAR_BLOCK_SIZE];
	const char *name, *error;
	uoff_t size;

	test_begin("backup tar header");
	mailbox_migrate_tar_header(hdr, "b/abc", 12345, 1700000000);
	test_assert(mailbox_migrate_tar_parse(hdr, &name, &size, &error) == 1);
	test_assert(strcmp(name, "b/abc") == 0 && size == 12345);
	/* a flipped byte fails the checksum */
	hdr[3] ^= 0x20;
	test_assert(mailbox_migrate_tar_parse(hdr, &name, &size, &error) == -1);
	hdr[3] ^= 0x20;
	hdr[124] = 'x';
	test_assert(mailbox_migrate_tar_parse(hdr, &name, &size, &error) == -1);
	memset(hdr, 0, sizeof(hdr));
	test_assert(mailbox_migrate_tar_parse(hdr, &name, &size, &error) == 0);
	test_assert(mailbox_migrate_tar_padding(0) == 0);
	test_assert(mailbox_migrate_tar_padding(1) == 511);
	test_assert(mailbox_migrate_tar_padding(512) == 0);
	test_assert(mailbox_migrate_tar_padding(513) == 511);
	test_end();
}

static void test_record_lines(void)
{
	static const char *const keywords[] = { "$Label1", "work", NULL };
	struct mailbox_migrate_backup_line line, parsed;
	const char *error, *text, *hash;
	string_t *str = t_str_new(256);

	test_begin("backup record lines");
	hash = mailbox_migrate_backup_hash("hello", 5);
	test_assert(strcmp(hash, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1f"
			   "a7425e73043362938b9824") == 0);
	test_assert(mailbox_migrate_backup_hash_is_valid(hash));
	test_assert(!mailbox_migrate_backup_hash_is_valid("2CF24DBA"));

	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_ADD;
	line.mailbox_guid = BOX_A;
	line.uid = 42;
	line.guid = "1700000000.M1P2.host";
	line.hash = hash;
	line.size = 5;
	line.flags = MAIL_SEEN | MAIL_FLAGGED | MAIL_RECENT;
	line.keywords = keywords;
	line.received = 1700000001;
	line.saved = 1700000002;
	line.pop3_uidl = "uidl\twith tab";
	line.pop3_order = 3;
	mailbox_migrate_backup_line_write(str, &line);
	text = t_strcut(str_c(str), '\n');
	test_assert(mailbox_migrate_backup_line_parse(text, &parsed,
						      &error) == 0);
	test_assert(parsed.type == MAILBOX_MIGRATE_BACKUP_LINE_ADD);
	test_assert(parsed.uid == 42 && parsed.size == 5);
	/* \Recent is never stored */
	test_assert(parsed.flags == (MAIL_SEEN | MAIL_FLAGGED));
	test_assert(strcmp(parsed.pop3_uidl, "uidl\twith tab") == 0);
	test_assert(str_array_length(parsed.keywords) == 2 &&
		    strcmp(parsed.keywords[1], "work") == 0);
	test_assert(parsed.received == 1700000001 && parsed.saved == 1700000002);
	test_assert(!parsed.snapshot_row);

	/* snapshot rows carry their passes */
	str_truncate(str, 0);
	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX;
	line.mailbox_guid = BOX_B;
	line.uidvalidity = 99;
	line.name = "Odd &AOQ- name/with\ttab";
	line.snapshot_row = TRUE;
	line.from_pass = 2;
	line.until_pass = 5;
	mailbox_migrate_backup_line_write(str, &line);
	text = t_strcut(str_c(str), '\n');
	test_assert(mailbox_migrate_backup_line_parse(text, &parsed,
						      &error) == 0);
	test_assert(parsed.snapshot_row && parsed.from_pass == 2 &&
		    parsed.until_pass == 5);
	test_assert(strcmp(parsed.name, line.name) == 0);

	/* subscriptions and special-use flags */
	str_truncate(str, 0);
	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE;
	line.name = "Work/&AOQ- tab\there";
	mailbox_migrate_backup_line_write(str, &line);
	text = t_strcut(str_c(str), '\n');
	test_assert(mailbox_migrate_backup_line_parse(text, &parsed,
						      &error) == 0);
	test_assert(parsed.type == MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE &&
		    strcmp(parsed.name, line.name) == 0 &&
		    !parsed.snapshot_row);
	str_truncate(str, 0);
	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE;
	line.mailbox_guid = BOX_A;
	line.special_use = "";
	line.snapshot_row = TRUE;
	line.from_pass = 3;
	mailbox_migrate_backup_line_write(str, &line);
	text = t_strcut(str_c(str), '\n');
	test_assert(mailbox_migrate_backup_line_parse(text, &parsed,
						      &error) == 0);
	test_assert(parsed.type == MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE &&
		    strcmp(parsed.special_use, "") == 0 &&
		    parsed.snapshot_row && parsed.from_pass == 3 &&
		    parsed.until_pass == 0);
	test_assert(mailbox_migrate_backup_line_parse("specialuse\t" BOX_A
			"\t\\Sent \\Archive", &parsed, &error) == 0 &&
		    strcmp(parsed.special_use, "\\Sent \\Archive") == 0);

	/* malformed lines */
	test_assert(mailbox_migrate_backup_line_parse("subscribe\t", &parsed,
						      &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("unsubscribe", &parsed,
						      &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("specialuse\tnotaguid"
			"\t\\Sent", &parsed, &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("bogus\t1", &parsed,
						      &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("expunge\t" BOX_A,
						      &parsed, &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("expunge\tnotaguid\t1",
						      &parsed, &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("expunge\t" BOX_A "\t0",
						      &parsed, &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("flags\t" BOX_A
			"\t1\t64\t", &parsed, &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("pass\t0\t1", &parsed,
						      &error) < 0);
	test_assert(mailbox_migrate_backup_line_parse("", &parsed,
						      &error) < 0);
	test_end();
}

static void test_member_round_trip(enum mailbox_migrate_backup_compression c)
{
	struct mailbox_migrate_backup_member_writer *writer;
	const char *path, *error;
	uoff_t off1, size1, off2, size2, msize;
	buffer_t *out = t_buffer_create(1024);
	int fd;

	test_begin(t_strdup_printf("backup member %s",
		mailbox_migrate_backup_compression_name(c)));
	path = t_strdup_printf("%s/member.%s", test_dir,
		mailbox_migrate_backup_compression_ext(c));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	test_assert(fd != -1);
	writer = mailbox_migrate_backup_member_writer_init(fd, 0, c);
	mailbox_migrate_backup_member_writer_write(writer, "first member", 12);
	test_assert(mailbox_migrate_backup_member_writer_end(writer, &off1,
			&size1, &error) == 0);
	mailbox_migrate_backup_member_writer_write(writer, "second", 6);
	mailbox_migrate_backup_member_writer_write(writer, " member", 7);
	test_assert(mailbox_migrate_backup_member_writer_end(writer, &off2,
			&size2, &error) == 0);
	mailbox_migrate_backup_member_writer_deinit(&writer);
	test_assert(off1 == 0 && off2 == size1);
	/* a later writer appends after what is there */
	uoff_t off3, size3;
	writer = mailbox_migrate_backup_member_writer_init(fd, off2 + size2, c);
	mailbox_migrate_backup_member_writer_write(writer, "third", 5);
	test_assert(mailbox_migrate_backup_member_writer_end(writer, &off3,
			&size3, &error) == 0);
	mailbox_migrate_backup_member_writer_deinit(&writer);
	test_assert(off3 == off2 + size2);
	test_assert(mailbox_migrate_backup_member_read(fd, c, off3,
			off3 + size3, out, &msize, &error) == 1);
	test_assert(msize == size3 && out->used == 5);
	buffer_set_used_size(out, 0);

	test_assert(mailbox_migrate_backup_member_read(fd, c, 0, off2 + size2,
			out, &msize, &error) == 1);
	test_assert(msize == size1 && out->used == 12 &&
		    memcmp(out->data, "first member", 12) == 0);
	buffer_set_used_size(out, 0);
	test_assert(mailbox_migrate_backup_member_read(fd, c, off2,
			off2 + size2, out, &msize, &error) == 1);
	test_assert(msize == size2 && out->used == 13);
	test_assert(mailbox_migrate_backup_member_read(fd, c, off2 + size2,
			off2 + size2, out, &msize, &error) == 0);
	/* cut short */
	test_assert(mailbox_migrate_backup_member_read(fd, c, off2,
			off2 + size2 - 3, out, &msize, &error) == -1);
	/* not at a member start */
	test_assert(mailbox_migrate_backup_member_read(fd, c, 1,
			off2 + size2, out, &msize, &error) == -1);
	i_close_fd(&fd);
	test_end();
}

static void test_members(void)
{
	test_member_round_trip(MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ);
	test_member_round_trip(MAILBOX_MIGRATE_BACKUP_COMPRESSION_ZSTD);
}

static struct mailbox_migrate_backup_store *
test_store_open(const char *dir, enum mailbox_migrate_backup_open_flags flags)
{
	struct mailbox_migrate_backup_store *store;
	const char *error;

	if (mailbox_migrate_backup_store_open(dir,
			MAILBOX_MIGRATE_BACKUP_OPEN_CREATE | flags,
			MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ, 1, &store,
			&error) <= 0)
		i_fatal("open(%s): %s", dir, error);
	return store;
}

static void test_add(struct mailbox_migrate_backup_store *store,
		     const char *box, uint32_t uid, const char *body,
		     enum mail_flags flags)
{
	static const char *const no_keywords[] = { NULL };
	struct mailbox_migrate_backup_line line;
	const char *hash = mailbox_migrate_backup_hash(body, strlen(body));

	mailbox_migrate_backup_store_add_body(store, hash, body, strlen(body));
	i_zero(&line);
	line.type = MAILBOX_MIGRATE_BACKUP_LINE_ADD;
	line.mailbox_guid = box;
	line.uid = uid;
	line.guid = t_strdup_printf("guid%u", uid);
	line.hash = hash;
	line.size = strlen(body);
	line.flags = flags;
	line.keywords = no_keywords;
	mailbox_migrate_backup_store_add_line(store, &line);
}

static void test_line(struct mailbox_migrate_backup_store *store,
		      enum mailbox_migrate_backup_line_type type,
		      const char *box, uint32_t uid, const char *name)
{
	static const char *const no_keywords[] = { NULL };
	struct mailbox_migrate_backup_line line;

	i_zero(&line);
	line.type = type;
	line.mailbox_guid = box;
	line.uid = uid;
	line.uidvalidity = 7;
	line.name = name;
	line.flags = MAIL_SEEN;
	line.keywords = no_keywords;
	mailbox_migrate_backup_store_add_line(store, &line);
}

static unsigned int
test_messages(struct mailbox_migrate_backup_store *store, const char *box,
	      uint32_t pass_id, enum mail_flags *first_flags_r)
{
	ARRAY_TYPE(mailbox_migrate_backup_message) msgs;
	const char *error;

	t_array_init(&msgs, 8);
	test_assert(mailbox_migrate_backup_index_messages(store->index, box,
			pass_id, NULL, pool_datastack_create(), &msgs,
			&error) == 0);
	if (first_flags_r != NULL && array_count(&msgs) > 0) {
		const struct mailbox_migrate_backup_message *msg =
			array_idx(&msgs, 0);
		*first_flags_r = msg->flags;
	}
	return array_count(&msgs);
}

static void test_store_passes(void)
{
	struct mailbox_migrate_backup_store *store;
	struct mailbox_migrate_backup_mailbox box;
	struct mailbox_migrate_backup_body body;
	const char *dir, *error;
	const unsigned char *data;
	enum mail_flags flags = 0;
	uoff_t size;
	struct stat st;
	int fd;

	test_begin("backup store passes");
	dir = t_strdup_printf("%s/store", test_dir);
	store = test_store_open(dir, 0);

	/* pass 1: a mailbox, two messages with the same body, one other */
	mailbox_migrate_backup_store_pass_begin(store, 1000);
	test_line(store, MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX, BOX_A, 0, "INBOX");
	test_add(store, BOX_A, 1, "same body", 0);
	test_add(store, BOX_A, 2, "same body", 0);
	test_add(store, BOX_A, 3, "other body", 0);
	test_assert(mailbox_migrate_backup_store_pass_commit(store,
							     &error) == 0);
	size = store->data_size;
	test_assert(size > 0);

	/* pass 2: flag change, expunge, rename */
	mailbox_migrate_backup_store_pass_begin(store, 2000);
	test_line(store, MAILBOX_MIGRATE_BACKUP_LINE_FLAGS, BOX_A, 1, NULL);
	test_line(store, MAILBOX_MIGRATE_BACKUP_LINE_EXPUNGE, BOX_A, 3, NULL);
	test_line(store, MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX, BOX_A, 0,
		  "Renamed");
	test_assert(mailbox_migrate_backup_store_pass_commit(store,
							     &error) == 0);

	/* dedup: one body row for the shared body */
	test_assert(mailbox_migrate_backup_index_body_get(store->index,
		mailbox_migrate_backup_hash("same body", 9), &body,
		&error) == 1);
	test_assert(mailbox_migrate_backup_store_read_body(store, &body,
							   &data, &error) == 0);
	test_assert(memcmp(data, "same body", 9) == 0);

	/* point in time */
	test_assert(test_messages(store, BOX_A, 1, &flags) == 3 && flags == 0);
	test_assert(test_messages(store, BOX_A, 2, &flags) == 2 &&
		    flags == MAIL_SEEN);
	test_assert(test_messages(store, BOX_A, 0, NULL) == 2);
	test_assert(mailbox_migrate_backup_index_mailbox_get(store->index,
			BOX_A, 1, &box, &error) == 1 &&
		    strcmp(box.name, "INBOX") == 0);
	test_assert(mailbox_migrate_backup_index_mailbox_get(store->index,
			BOX_A, 0, &box, &error) == 1 &&
		    strcmp(box.name, "Renamed") == 0);

	/* an unfinished pass is cut when the store is next opened */
	mailbox_migrate_backup_store_pass_begin(store, 3000);
	test_add(store, BOX_A, 4, "never committed", 0);
	mailbox_migrate_backup_store_close(&store);
	fd = open(t_strdup_printf("%s/data-1.tar.gz", dir), O_WRONLY | O_APPEND);
	test_assert(fd != -1 && write(fd, "\x1f\x8b\x08garbage", 10) == 10);
	i_close_fd(&fd);
	store = test_store_open(dir, 0);
	test_assert(store->cut_bytes == 10);
	test_assert(stat(store->data_path, &st) == 0 &&
		    (uoff_t)st.st_size == store->data_size);
	test_assert(test_messages(store, BOX_A, 0, NULL) == 2);

	/* a second writer waits for the lock, then gives up */
	struct mailbox_migrate_backup_store *store2;
	test_assert(mailbox_migrate_backup_store_open(dir, 0,
			MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ, 0, &store2,
			&error) == -1);
	test_assert(strstr(error, "locked") != NULL);
	mailbox_migrate_backup_store_close(&store);
	test_end();
}

static void test_state_line(struct mailbox_migrate_backup_store *store,
			    enum mailbox_migrate_backup_line_type type,
			    const char *value)
{
	struct mailbox_migrate_backup_line line;

	i_zero(&line);
	line.type = type;
	if (type == MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE) {
		line.mailbox_guid = BOX_A;
		line.special_use = value;
	} else {
		line.name = value;
	}
	mailbox_migrate_backup_store_add_line(store, &line);
}

static const char *
test_subscriptions(struct mailbox_migrate_backup_store *store,
		   uint32_t pass_id)
{
	ARRAY_TYPE(const_string) names;
	const char *error;

	t_array_init(&names, 8);
	test_assert(mailbox_migrate_backup_index_subscriptions(store->index,
			pass_id, pool_datastack_create(), &names,
			&error) == 0);
	array_append_zero(&names);
	return t_strarray_join(array_front(&names), ",");
}

static const char *
test_special_use(struct mailbox_migrate_backup_store *store,
		 uint32_t pass_id)
{
	const char *flags, *error;

	test_assert(mailbox_migrate_backup_index_special_use(store->index,
			BOX_A, pass_id, &flags, &error) == 0);
	return flags;
}

/* The state of each pass, before and after the index is made anew from a
   snapshot of it. */
static void test_list_state_passes(struct mailbox_migrate_backup_store *store)
{
	test_assert_strcmp(test_subscriptions(store, 1), "Gone,INBOX");
	test_assert_strcmp(test_subscriptions(store, 2), "INBOX,New");
	test_assert_strcmp(test_subscriptions(store, 3), "INBOX,New");
	test_assert_strcmp(test_subscriptions(store, 0), "INBOX,New");
	test_assert_strcmp(test_special_use(store, 1), "\\Sent");
	test_assert_strcmp(test_special_use(store, 2), "\\Sent \\Archive");
	/* deleting the mailbox ends its flags */
	test_assert_strcmp(test_special_use(store, 3), "");
	test_assert_strcmp(test_special_use(store, 0), "");
}

static void test_store_list_state(void)
{
	struct mailbox_migrate_backup_store *store;
	struct mailbox_migrate_backup_line line;
	const char *dir, *error, *const *lines;
	string_t *snapshot = t_str_new(1024);
	unsigned int i;

	test_begin("backup store subscriptions and special-use flags");
	dir = t_strdup_printf("%s/store-state", test_dir);
	store = test_store_open(dir, 0);

	mailbox_migrate_backup_store_pass_begin(store, 1000);
	test_line(store, MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX, BOX_A, 0, "Sent");
	test_state_line(store, MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE, "INBOX");
	test_state_line(store, MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE, "Gone");
	test_state_line(store, MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE,
			"\\Sent");
	test_assert(mailbox_migrate_backup_store_pass_commit(store,
							     &error) == 0);

	mailbox_migrate_backup_store_pass_begin(store, 2000);
	test_state_line(store, MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE,
			"Gone");
	test_state_line(store, MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE, "New");
	/* subscribing a subscribed name changes nothing */
	test_state_line(store, MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE, "INBOX");
	test_state_line(store, MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE,
			"\\Sent \\Archive");
	test_assert(mailbox_migrate_backup_store_pass_commit(store,
							     &error) == 0);

	mailbox_migrate_backup_store_pass_begin(store, 3000);
	test_line(store, MAILBOX_MIGRATE_BACKUP_LINE_DELETE, BOX_A, 0, NULL);
	test_assert(mailbox_migrate_backup_store_pass_commit(store,
							     &error) == 0);
	test_list_state_passes(store);

	/* a compaction's snapshot keeps all of it */
	test_assert(mailbox_migrate_backup_index_snapshot(store->index, 1, 4,
			4000, snapshot, &error) == 0);
	test_assert(strstr(str_c(snapshot), "subscribe\tGone\t1\t2\n") !=
		    NULL);
	test_assert(mailbox_migrate_db_begin(store->index, &error) == 0);
	test_assert(mailbox_migrate_backup_index_reset(store->index,
						       &error) == 0);
	test_assert_strcmp(test_subscriptions(store, 0), "");
	lines = t_strsplit(str_c(snapshot), "\n");
	for (i = 0; lines[i] != NULL && lines[i][0] != '\0'; i++) {
		test_assert(mailbox_migrate_backup_line_parse(lines[i], &line,
							      &error) == 0);
		test_assert(mailbox_migrate_backup_index_apply(store->index, 4,
							       &line,
							       &error) == 0);
	}
	test_assert(mailbox_migrate_db_commit(store->index, &error) == 0);
	test_list_state_passes(store);
	mailbox_migrate_backup_store_close(&store);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_tar_header,
		test_record_lines,
		test_members,
		test_store_passes,
		test_store_list_state,
		NULL
	};
	return test_run_in_dir("mailbox-migrate-backup", test_functions);
}
