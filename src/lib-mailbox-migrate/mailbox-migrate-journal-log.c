/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "ioloop.h"
#include "buffer.h"
#include "str.h"
#include "strescape.h"
#include "strnum.h"
#include "crc32.h"
#include "guid.h"
#include "hostpid.h"
#include "hash.h"
#include "mailbox-migrate-journal.h"
#include "mailbox-migrate-seen.h"
#include "mailbox-migrate-journal-log.h"

#include <ctype.h>
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#define LOG_MAGIC0 'M'
#define LOG_MAGIC1 'J'
/* magic, type, payload size, payload crc32 */
#define LOG_RECORD_HDR_SIZE (2 + 1 + 4 + 4)
/* a record is one commit's worth at most: bigger means damage */
#define LOG_RECORD_MAX_SIZE (64 * 1024 * 1024)
#define LOG_META_KEY "journal_log"
/* the log is replaced under a writer at most this often in a row */
#define LOG_REOPEN_MAX_TRIES 5
#define LOG_LOCK_POLL_USECS 1000
/* What a fold writes over the first byte of a log (the magic, which no
   checksum covers) before it replaces the log, under its exclusive lock:
   a writer holding the old file then learns with one pread() that it must
   reopen, and needn't stat() the path on every append (on Linux 6.13 and
   later a stat() also has the next write() dirty the inode, for a
   fine-grained ctime). */
#define LOG_SEALED 'X'
/* how often (seconds) a writer also checks that its file is the one at the
   path: a log deleted or replaced by hand is never sealed */
#define LOG_PATH_CHECK_SECS 1

struct mailbox_migrate_journal_log {
	char *path;
	int fd;
	/* the file fd is (the path may be another's after a fold) */
	dev_t dev;
	ino_t ino;
	/* when the path was last found to be fd's file */
	time_t path_checked;
	bool fsync;
};

const char *mailbox_migrate_journal_log_path(const char *db_path)
{
	return t_strconcat(db_path, ".log", NULL);
}

static void log_put_le32(unsigned char *p, uint32_t value)
{
	p[0] = value & 0xff;
	p[1] = (value >> 8) & 0xff;
	p[2] = (value >> 16) & 0xff;
	p[3] = (value >> 24) & 0xff;
}

static uint32_t log_get_le32(const unsigned char *p)
{
	return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Start a record in buf: its header, size and checksum filled in by
   log_record_end(). Returns where it starts. Fields are written straight
   into buf (this is on every commit's path). */
static size_t log_record_begin(buffer_t *buf, char type)
{
	unsigned char hdr[LOG_RECORD_HDR_SIZE];
	size_t start = buf->used;

	memset(hdr, 0, sizeof(hdr));
	hdr[0] = LOG_MAGIC0;
	hdr[1] = LOG_MAGIC1;
	hdr[2] = type;
	buffer_append(buf, hdr, sizeof(hdr));
	return start;
}

/* The checksum covers the type, the size and the payload. */
static uint32_t log_record_crc(const unsigned char *record, size_t size)
{
	return crc32_data_more(crc32_data(record + 2, 5),
			       record + LOG_RECORD_HDR_SIZE, size);
}

static void log_record_end(buffer_t *buf, size_t start)
{
	size_t size = buf->used - start - LOG_RECORD_HDR_SIZE;
	unsigned char num[4];

	log_put_le32(num, size);
	buffer_write(buf, start + 3, num, sizeof(num));
	log_put_le32(num, log_record_crc(CONST_PTR_OFFSET(buf->data, start),
					 size));
	buffer_write(buf, start + 7, num, sizeof(num));
}

/* A record's first field goes in without a separator (it may be empty);
   log_add_field(), _optional() and _number() add the others after a tab. */
static void log_add_first(buffer_t *buf, const char *value)
{
	str_append_tabescaped(buf, value);
}

static void log_add_field(buffer_t *buf, const char *value)
{
	buffer_append_c(buf, '\t');
	str_append_tabescaped(buf, value);
}

/* NULL is an empty field, a string is "+" and the string */
static void log_add_optional(buffer_t *buf, const char *value)
{
	buffer_append_c(buf, '\t');
	if (value != NULL) {
		buffer_append_c(buf, '+');
		str_append_tabescaped(buf, value);
	}
}

static void log_add_number(buffer_t *buf, uint64_t value)
{
	buffer_append_c(buf, '\t');
	str_append(buf, dec2str(value));
}

void mailbox_migrate_journal_log_add_entry(
	buffer_t *buf, const struct mailbox_migrate_journal_entry *entry)
{
	size_t start = log_record_begin(buf,
		MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_ENTRY);

	str_append(buf, dec2str(entry->time));
	log_add_field(buf, mailbox_migrate_journal_type_name(entry->type));
	log_add_field(buf, entry->mailbox_guid);
	log_add_number(buf, entry->uidvalidity);
	log_add_number(buf, entry->uid);
	log_add_optional(buf, entry->message_guid);
	log_add_number(buf, entry->flags);
	log_add_optional(buf, entry->keywords);
	log_add_optional(buf, entry->name);
	log_add_optional(buf, entry->old_name);
	log_add_optional(buf, entry->service);
	log_add_number(buf, entry->modseq);
	log_record_end(buf, start);
}

void mailbox_migrate_journal_log_add_mailbox(buffer_t *buf,
					     const char *mailbox_guid,
					     const char *name,
					     uint32_t uidvalidity,
					     uint64_t witness_modseq,
					     bool witness_at_last_seq)
{
	size_t start = log_record_begin(buf,
		MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_MAILBOX);

	log_add_first(buf, mailbox_guid);
	log_add_optional(buf, name);
	log_add_number(buf, uidvalidity);
	log_add_number(buf, witness_modseq);
	log_add_number(buf, witness_at_last_seq ? 1 : 0);
	log_record_end(buf, start);
}

void mailbox_migrate_journal_log_add_deleted(buffer_t *buf,
					     const char *mailbox_guid)
{
	size_t start = log_record_begin(buf,
		MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_DELETED);

	log_add_first(buf, mailbox_guid);
	log_record_end(buf, start);
}

void mailbox_migrate_journal_log_add_seen(buffer_t *buf,
					  const char *mailbox_guid,
					  uint32_t uidvalidity,
					  uint32_t uidnext, time_t now,
					  const char *service)
{
	size_t start = log_record_begin(buf,
		MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_SEEN);

	log_add_first(buf, mailbox_guid);
	log_add_number(buf, uidvalidity);
	log_add_number(buf, uidnext);
	log_add_number(buf, now);
	log_add_field(buf, service);
	log_record_end(buf, start);
}

static void log_add_header(buffer_t *buf)
{
	guid_128_t id;
	size_t start = log_record_begin(buf,
		MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_HEADER);

	guid_128_generate(id);
	buffer_append(buf, guid_128_to_string(id), GUID_128_SIZE * 2);
	log_record_end(buf, start);
}

static bool log_parse_u32(const char *str, uint32_t *num_r)
{
	return str_to_uint32(str, num_r) == 0;
}

static bool log_parse_u64(const char *str, uint64_t *num_r)
{
	return str_to_uint64(str, num_r) == 0;
}

static bool log_parse_optional(const char *field, const char **value_r)
{
	if (field[0] == '\0') {
		*value_r = NULL;
		return TRUE;
	}
	if (field[0] != '+')
		return FALSE;
	*value_r = field + 1;
	return TRUE;
}

static bool
log_parse_payload(char type, const char *const *f,
		  struct mailbox_migrate_journal_log_record *rec)
{
	struct mailbox_migrate_journal_entry *e = &rec->entry;
	unsigned int count = str_array_length(f);
	uint64_t num;
	uint32_t flags;

	rec->type = type;
	switch (type) {
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_HEADER:
		e->name = f[0];
		return count == 1;
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_ENTRY:
		if (count != 12 || !log_parse_u64(f[0], &num) ||
		    !mailbox_migrate_journal_type_parse(f[1], &e->type) ||
		    !log_parse_u32(f[3], &e->uidvalidity) ||
		    !log_parse_u32(f[4], &e->uid) ||
		    !log_parse_optional(f[5], &e->message_guid) ||
		    !log_parse_u32(f[6], &flags) ||
		    !log_parse_optional(f[7], &e->keywords) ||
		    !log_parse_optional(f[8], &e->name) ||
		    !log_parse_optional(f[9], &e->old_name) ||
		    !log_parse_optional(f[10], &e->service) ||
		    !log_parse_u64(f[11], &e->modseq))
			return FALSE;
		e->time = (time_t)num;
		e->mailbox_guid = f[2];
		e->flags = flags;
		return TRUE;
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_MAILBOX:
		e->mailbox_guid = f[0];
		return count == 5 && log_parse_optional(f[1], &e->name) &&
			log_parse_u32(f[2], &e->uidvalidity) &&
			log_parse_u64(f[3], &e->modseq) &&
			log_parse_u32(f[4], &e->uid) && e->uid <= 1;
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_DELETED:
		e->mailbox_guid = f[0];
		return count == 1;
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_SEEN:
		if (count != 5 || !log_parse_u32(f[1], &e->uidvalidity) ||
		    !log_parse_u32(f[2], &e->uid) ||
		    !log_parse_u64(f[3], &num))
			return FALSE;
		e->mailbox_guid = f[0];
		e->time = (time_t)num;
		e->service = f[4];
		return TRUE;
	}
	return FALSE;
}

int mailbox_migrate_journal_log_parse(const unsigned char *data, size_t size,
				      size_t *pos,
				      struct mailbox_migrate_journal_log_record *rec_r,
				      const char **error_r)
{
	static const char *const empty_field[] = { "", NULL };
	const unsigned char *p = data + *pos;
	const char *const *fields;
	size_t left = size - *pos;
	uint32_t payload_size;
	char *payload;

	i_zero(rec_r);
	if (left == 0)
		return 0;
	if (left < LOG_RECORD_HDR_SIZE) {
		*error_r = "record cut short";
		return -1;
	}
	/* a log whose fold failed between sealing and replacing it (see
	   log_rotate()) stays in use */
	if ((p[0] != LOG_MAGIC0 && (p[0] != LOG_SEALED || *pos != 0)) ||
	    p[1] != LOG_MAGIC1) {
		*error_r = "no record starts here";
		return -1;
	}
	payload_size = log_get_le32(p + 3);
	if (payload_size > LOG_RECORD_MAX_SIZE) {
		*error_r = "record size out of range";
		return -1;
	}
	if (left - LOG_RECORD_HDR_SIZE < payload_size) {
		*error_r = "record cut short";
		return -1;
	}
	if (log_record_crc(p, payload_size) != log_get_le32(p + 7)) {
		*error_r = "record checksum mismatch";
		return -1;
	}
	payload = t_malloc_no0(payload_size + 1);
	memcpy(payload, p + LOG_RECORD_HDR_SIZE, payload_size);
	payload[payload_size] = '\0';
	/* an empty payload is one empty field (e.g. a GUID unknown) */
	if (strlen(payload) != payload_size)
		fields = NULL;
	else if (payload_size == 0)
		fields = empty_field;
	else
		fields = t_strsplit_tabescaped_inplace(payload);
	if (fields == NULL || !log_parse_payload((char)p[2], fields, rec_r)) {
		*error_r = t_strdup_printf("invalid record of type %c",
					   i_isprint(p[2]) ? p[2] : '?');
		return -1;
	}
	*pos += LOG_RECORD_HDR_SIZE + payload_size;
	return 1;
}

/* Wait for a flock() of the given kind, polling: the holder is a fold or
   one write(), both short. */
static int log_lock(int fd, const char *path, int operation,
		    unsigned int timeout_msecs, const char **error_r)
{
	unsigned int waited_usecs = 0;

	while (flock(fd, operation | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			*error_r = t_strdup_printf("flock(%s) failed: %m",
						   path);
			return -1;
		}
		if (waited_usecs >= timeout_msecs * 1000U) {
			errno = EWOULDBLOCK;
			*error_r = t_strdup_printf(
				"flock(%s) failed: still locked after %u ms",
				path, timeout_msecs);
			return -1;
		}
		usleep(LOG_LOCK_POLL_USECS);
		waited_usecs += LOG_LOCK_POLL_USECS;
	}
	return 0;
}

/* Write a new log holding only its header to a temporary file next to path
   and return that file's name. */
static int log_create_temp(const char *path, const char **temp_path_r,
			   const char **error_r)
{
	buffer_t *buf = t_buffer_create(64);
	const char *temp_path;
	int fd;

	/* never an existing name: a leftover could be a link to a log */
	temp_path = t_strdup_printf("%s.tmp.%s.%s.%s", path, my_hostname,
				    my_pid, guid_generate());
	fd = open(temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 && errno == ENOENT) {
		if (mailbox_migrate_mkdir_parent(path, error_r) < 0)
			return -1;
		fd = open(temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			  0600);
	}
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", temp_path);
		return -1;
	}
	log_add_header(buf);
	if (write(fd, buf->data, buf->used) != (ssize_t)buf->used) {
		if (errno == 0)
			errno = ENOSPC;
		*error_r = t_strdup_printf("write(%s) failed: %m", temp_path);
		i_close_fd(&fd);
		i_unlink(temp_path);
		return -1;
	}
	i_close_fd(&fd);
	*temp_path_r = temp_path;
	return 0;
}

static int log_create(const char *path, const char **error_r)
{
	const char *temp_path;
	int ret = 0;

	if (log_create_temp(path, &temp_path, error_r) < 0)
		return -1;
	/* link(), not rename(): another process may have created it */
	if (link(temp_path, path) < 0 && errno != EEXIST) {
		*error_r = t_strdup_printf("link(%s, %s) failed: %m",
					   temp_path, path);
		ret = -1;
	}
	i_unlink(temp_path);
	return ret;
}

/* Returns 1 if the file at path is the one of dev and ino (*path_st_r its
   stat()), 0 if a fold replaced it (the path is another file now, or
   none), -1 on error. The link count alone can't tell: a stray hard link
   keeps it above 0. */
static int log_is_current(const char *path, dev_t dev, ino_t ino,
			  struct stat *path_st_r, const char **error_r)
{
	if (stat(path, path_st_r) < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = t_strdup_printf("stat(%s) failed: %m", path);
		return -1;
	}
	return path_st_r->st_ino == ino && path_st_r->st_dev == dev ? 1 : 0;
}

/* The fold's lock: exclusive, on fd if it is still the log at path.
   Returns 1 if so (locked, *st_r its fstat()), 0 if a fold replaced it
   (unlocked: the caller reopens), -1 on error (unlocked). */
static int log_lock_current(int fd, const char *path,
			    unsigned int timeout_msecs, struct stat *st_r,
			    const char **error_r)
{
	struct stat path_st;
	int ret;

	if (log_lock(fd, path, LOCK_EX, timeout_msecs, error_r) < 0)
		return -1;
	if (fstat(fd, st_r) < 0) {
		*error_r = t_strdup_printf("fstat(%s) failed: %m", path);
		ret = -1;
	} else {
		ret = log_is_current(path, st_r->st_dev, st_r->st_ino,
				     &path_st, error_r);
	}
	if (ret <= 0)
		(void)flock(fd, LOCK_UN);
	return ret;
}

struct mailbox_migrate_journal_log *
mailbox_migrate_journal_log_init(const char *db_path, bool fsync)
{
	struct mailbox_migrate_journal_log *log;

	log = i_new(struct mailbox_migrate_journal_log, 1);
	log->path = i_strdup(mailbox_migrate_journal_log_path(db_path));
	log->fd = -1;
	log->fsync = fsync;
	return log;
}

void mailbox_migrate_journal_log_deinit(struct mailbox_migrate_journal_log **_log)
{
	struct mailbox_migrate_journal_log *log = *_log;

	*_log = NULL;
	i_close_fd_path(&log->fd, log->path);
	i_free(log->path);
	i_free(log);
}

static int log_open(struct mailbox_migrate_journal_log *log,
		    const char **error_r)
{
	struct stat st;
	unsigned int i;

	for (i = 0; i < 2; i++) {
		/* read too: the seal */
		log->fd = open(log->path, O_RDWR | O_APPEND | O_CLOEXEC);
		if (log->fd != -1)
			break;
		if (errno != ENOENT || i > 0) {
			*error_r = t_strdup_printf("open(%s) failed: %m",
						   log->path);
			return -1;
		}
		if (log_create(log->path, error_r) < 0)
			return -1;
	}
	if (fstat(log->fd, &st) < 0) {
		*error_r = t_strdup_printf("fstat(%s) failed: %m", log->path);
		i_close_fd_path(&log->fd, log->path);
		return -1;
	}
	log->dev = st.st_dev;
	log->ino = st.st_ino;
	log->path_checked = time(NULL);
	return 0;
}

/* Returns 1 if the open log is still the one at the path, 0 if it was
   replaced, -1 on error. Called with the shared lock held, so no fold is
   between sealing the log and replacing it. */
static int log_writer_is_current(struct mailbox_migrate_journal_log *log,
				 const char **error_r)
{
	struct stat st;
	time_t now;
	ssize_t ret;
	char first;

	ret = pread(log->fd, &first, 1, 0);
	if (ret < 0) {
		*error_r = t_strdup_printf("pread(%s) failed: %m", log->path);
		return -1;
	}
	if (ret == 1 && first == LOG_SEALED) {
		/* replaced, unless the fold failed before replacing it */
		return log_is_current(log->path, log->dev, log->ino, &st,
				      error_r);
	}
	now = time(NULL);
	if (now - log->path_checked < LOG_PATH_CHECK_SECS &&
	    now >= log->path_checked)
		return 1;
	ret = log_is_current(log->path, log->dev, log->ino, &st, error_r);
	if (ret > 0)
		log->path_checked = now;
	return ret;
}

/* A writer's lock: shared, on the file still at the path. Returns 1 if
   locked (*size_r the file's size), 0 if a fold replaced the file
   (unlocked: the caller reopens), -1 on error (unlocked). This is on every
   commit's path: a pread() of the seal and an lseek(), no stat(). */
static int log_lock_writer(struct mailbox_migrate_journal_log *log,
			   unsigned int timeout_msecs, uoff_t *size_r,
			   const char **error_r)
{
	off_t size;
	int ret;

	if (log_lock(log->fd, log->path, LOCK_SH, timeout_msecs, error_r) < 0)
		return -1;
	ret = log_writer_is_current(log, error_r);
	if (ret > 0) {
		size = lseek(log->fd, 0, SEEK_END);
		if (size < 0) {
			*error_r = t_strdup_printf("lseek(%s) failed: %m",
						   log->path);
			ret = -1;
		} else {
			*size_r = size;
		}
	}
	if (ret <= 0)
		(void)flock(log->fd, LOCK_UN);
	return ret;
}

static int
log_append_locked(struct mailbox_migrate_journal_log *log, const buffer_t *buf,
		  uoff_t size, uoff_t *size_r, const char **error_r)
{
	ssize_t ret;

	ret = write(log->fd, buf->data, buf->used);
	if (ret != (ssize_t)buf->used) {
		if (ret >= 0)
			errno = ENOSPC;
		*error_r = t_strdup_printf("write(%s) failed: %m", log->path);
		return -1;
	}
	if (log->fsync && fdatasync(log->fd) < 0) {
		*error_r = t_strdup_printf("fdatasync(%s) failed: %m",
					   log->path);
		return -1;
	}
	*size_r = size + buf->used;
	return 0;
}

int mailbox_migrate_journal_log_append(struct mailbox_migrate_journal_log *log,
				       const buffer_t *buf,
				       unsigned int lock_timeout_msecs,
				       uoff_t *size_r,
				       enum mailbox_migrate_db_error *error_code_r,
				       const char **error_r)
{
	uoff_t size;
	unsigned int i;
	int current, ret = -1;

	*size_r = 0;
	*error_code_r = MAILBOX_MIGRATE_DB_ERROR_NONE;
	for (i = 0; i < LOG_REOPEN_MAX_TRIES; i++) {
		if (log->fd == -1 && log_open(log, error_r) < 0)
			break;
		current = log_lock_writer(log, lock_timeout_msecs, &size,
					  error_r);
		if (current < 0)
			break;
		if (current == 0) {
			/* a fold replaced it: what goes into this one is
			   never read */
			i_close_fd_path(&log->fd, log->path);
			continue;
		}
		if (size >= MAILBOX_MIGRATE_JOURNAL_LOG_MAX_SIZE) {
			/* nothing folds it (the state file is broken?):
			   better a gap than a log without bound */
			errno = ENOSPC;
			*error_r = t_strdup_printf("%s has grown to %"PRIuUOFF_T
				" bytes without being folded into the state "
				"file", log->path, size);
		} else {
			ret = log_append_locked(log, buf, size, size_r,
						error_r);
		}
		(void)flock(log->fd, LOCK_UN);
		break;
	}
	if (i == LOG_REOPEN_MAX_TRIES) {
		errno = EWOULDBLOCK;
		*error_r = t_strdup_printf("%s was replaced %u times while "
					   "appending", log->path, i);
	}
	if (ret < 0)
		*error_code_r = mailbox_migrate_db_errno_kind(errno);
	return ret;
}

static const char *log_header_id(const unsigned char *data, size_t size)
{
	struct mailbox_migrate_journal_log_record rec;
	const char *error;
	size_t pos = 0;

	if (mailbox_migrate_journal_log_parse(data, size, &pos, &rec,
					      &error) <= 0 ||
	    rec.type != MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_HEADER)
		return NULL;
	return rec.entry.name;
}

/* Returns the offset up to which the log with this id was folded, or 0. */
static int log_get_folded(struct mailbox_migrate_db *db, const char *id,
			  uoff_t *offset_r, const char **error_r)
{
	const char *value, *p;
	int ret;

	*offset_r = 0;
	ret = mailbox_migrate_db_meta_get(db, LOG_META_KEY, &value, error_r);
	if (ret <= 0 || id == NULL)
		return ret;
	p = strchr(value, ' ');
	if (p == NULL || strcmp(t_strdup_until(value, p), id) != 0)
		return 0;
	if (str_to_uoff(p + 1, offset_r) < 0) {
		*offset_r = 0;
		return 0;
	}
	return 1;
}

static int log_read_all(int fd, const char *path, size_t size,
			buffer_t *buf, const char **error_r)
{
	void *data;
	ssize_t ret;

	data = buffer_append_space_unsafe(buf, size);
	ret = pread(fd, data, size, 0);
	if (ret < 0) {
		*error_r = t_strdup_printf("pread(%s) failed: %m", path);
		return -1;
	}
	/* only a fold shrinks it and we hold its lock */
	buffer_set_used_size(buf, ret);
	return 0;
}

#define LOG_HEADER_SIZE (LOG_RECORD_HDR_SIZE + GUID_128_SIZE * 2)

bool mailbox_migrate_journal_log_may_have_records(const char *db_path)
{
	struct stat st;

	/* a log holding only its header has nothing to fold */
	return stat(mailbox_migrate_journal_log_path(db_path), &st) == 0 &&
		st.st_size > LOG_HEADER_SIZE;
}

int mailbox_migrate_journal_log_need_fold(struct mailbox_migrate_db *db,
					  const char **error_r)
{
	const char *path, *id;
	unsigned char header[LOG_HEADER_SIZE];
	struct stat st;
	uoff_t offset;
	ssize_t ret;
	int fd;

	path = mailbox_migrate_journal_log_path(mailbox_migrate_db_get_path(db));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		*error_r = t_strdup_printf("open(%s) failed: %m", path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = t_strdup_printf("fstat(%s) failed: %m", path);
		i_close_fd(&fd);
		return -1;
	}
	if (st.st_size <= LOG_HEADER_SIZE) {
		i_close_fd(&fd);
		return 0;
	}
	ret = pread(fd, header, sizeof(header), 0);
	i_close_fd(&fd);
	if (ret < 0) {
		*error_r = t_strdup_printf("pread(%s) failed: %m", path);
		return -1;
	}
	id = log_header_id(header, ret);
	if (id == NULL)
		return 1;
	if (log_get_folded(db, id, &offset, error_r) < 0)
		return -1;
	/* folded up to its end, and rotated if it had grown big */
	return offset == (uoff_t)st.st_size &&
		offset < MAILBOX_MIGRATE_JOURNAL_LOG_ROTATE_SIZE ? 0 : 1;
}

/* A mailbox's record updates of one fold, merged: every commit writes
   one, and the state file needs only the sum of them (one upsert per
   mailbox instead of one per commit). Merging keeps what applying them
   in order gives: the last name and UIDVALIDITY given, the highest witness
   modseq with the seq that came with it. */
struct log_fold_mailbox {
	const char *guid;
	const char *name;
	uint32_t uidvalidity;
	uint64_t modseq, witness_seq;
};

struct log_fold_context {
	struct mailbox_migrate_db *db;
	const char *path;
	int fd;
	buffer_t *data;
	uoff_t start;
	const char *id;
	unsigned int folded;
	bool damaged;

	pool_t pool;
	HASH_TABLE(const char *, struct log_fold_mailbox *) mailboxes;
};

static void
log_fold_mailbox_merge(struct log_fold_context *ctx,
		       const struct mailbox_migrate_journal_entry *e,
		       uint64_t witness_seq)
{
	struct log_fold_mailbox *mbox;

	if (!hash_table_is_created(ctx->mailboxes)) {
		ctx->pool = pool_alloconly_create("journal log fold", 1024);
		hash_table_create(&ctx->mailboxes, ctx->pool, 0,
				  str_hash, strcmp);
	}
	mbox = hash_table_lookup(ctx->mailboxes, e->mailbox_guid);
	if (mbox == NULL) {
		mbox = p_new(ctx->pool, struct log_fold_mailbox, 1);
		mbox->guid = p_strdup(ctx->pool, e->mailbox_guid);
		mbox->name = "";
		/* the first record's witness, whatever its modseq: a new
		   row takes it as it is */
		mbox->modseq = e->modseq;
		mbox->witness_seq = witness_seq;
		hash_table_insert(ctx->mailboxes, mbox->guid, mbox);
	}
	if (e->name != NULL && e->name[0] != '\0')
		mbox->name = p_strdup(ctx->pool, e->name);
	if (e->uidvalidity != 0)
		mbox->uidvalidity = e->uidvalidity;
	if (e->modseq > mbox->modseq) {
		mbox->modseq = e->modseq;
		mbox->witness_seq = witness_seq;
	}
}

static int log_fold_mailbox_write(struct log_fold_context *ctx,
				  const struct log_fold_mailbox *mbox,
				  const char **error_r)
{
	return mailbox_migrate_journal_update_mailbox(ctx->db, mbox->guid,
		mbox->name, mbox->uidvalidity, mbox->modseq,
		mbox->witness_seq, error_r);
}

/* Write the merged record of guid (NULL: of every mailbox). */
static int log_fold_mailboxes_flush(struct log_fold_context *ctx,
				    const char *guid, const char **error_r)
{
	struct hash_iterate_context *iter;
	struct log_fold_mailbox *mbox;
	const char *key;
	int ret = 0;

	if (!hash_table_is_created(ctx->mailboxes))
		return 0;
	if (guid != NULL) {
		mbox = hash_table_lookup(ctx->mailboxes, guid);
		if (mbox == NULL)
			return 0;
		hash_table_remove(ctx->mailboxes, guid);
		return log_fold_mailbox_write(ctx, mbox, error_r);
	}
	iter = hash_table_iterate_init(ctx->mailboxes);
	while (ret == 0 && hash_table_iterate(iter, ctx->mailboxes,
					      &key, &mbox))
		ret = log_fold_mailbox_write(ctx, mbox, error_r);
	hash_table_iterate_deinit(&iter);
	hash_table_clear(ctx->mailboxes, TRUE);
	return ret;
}

/* Apply one record inside the fold's transaction. */
static int
log_fold_record(struct log_fold_context *ctx,
		struct mailbox_migrate_journal_log_record *rec,
		uint64_t *last_seq, const char **error_r)
{
	struct mailbox_migrate_db *db = ctx->db;
	struct mailbox_migrate_journal_entry *e = &rec->entry;

	switch (rec->type) {
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_HEADER:
		return 0;
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_ENTRY:
		if (mailbox_migrate_journal_append(db, e, error_r) < 0)
			return -1;
		*last_seq = e->seq;
		return 0;
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_MAILBOX:
		log_fold_mailbox_merge(ctx, e, e->uid != 0 ? *last_seq : 0);
		return 0;
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_DELETED:
		/* in order: the updates before the delete first */
		if (log_fold_mailboxes_flush(ctx, e->mailbox_guid,
					     error_r) < 0)
			return -1;
		return mailbox_migrate_journal_mark_deleted(db,
			e->mailbox_guid, error_r);
	case MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_SEEN:
		return mailbox_migrate_seen_raise(db, e->mailbox_guid,
			e->uidvalidity, e->uid, e->time, e->service,
			error_r) < 0 ? -1 : 0;
	}
	i_unreached();
}

static int
log_fold_gap(struct mailbox_migrate_db *db, const char *reason,
	     uint64_t *last_seq, const char **error_r)
{
	struct mailbox_migrate_journal_entry gap;

	mailbox_migrate_journal_gap_init(&gap, ioloop_time, reason, NULL);
	if (mailbox_migrate_journal_append(db, &gap, error_r) < 0)
		return -1;
	*last_seq = gap.seq;
	return 0;
}

/* Fold the record at *pos. Returns 1 if there may be more, 0 at the end
   (or after damage, folded as a gap), -1 on error. */
static int log_fold_next(struct log_fold_context *ctx, size_t *pos,
			 uint64_t *last_seq, const char **error_r)
{
	struct mailbox_migrate_journal_log_record rec;
	const char *parse_error;
	int ret;

	ret = mailbox_migrate_journal_log_parse(ctx->data->data,
			ctx->data->used, pos, &rec, &parse_error);
	if (ret == 0)
		return 0;
	if (ret > 0 && ctx->id == NULL) {
		/* every log is created with its header first */
		ret = -1;
		parse_error = "the log does not start with its header";
		*pos = 0;
	}
	if (ret < 0) {
		/* what follows may be gone too: the journal can no longer
		   prove it has every change before here */
		ctx->damaged = TRUE;
		if (log_fold_gap(ctx->db, t_strdup_printf(
				"journal log %s damaged at offset %zu: %s",
				ctx->path, *pos, parse_error),
				last_seq, error_r) < 0)
			return -1;
		return 0;
	}
	if (log_fold_record(ctx, &rec, last_seq, error_r) < 0)
		return -1;
	if (rec.type != MAILBOX_MIGRATE_JOURNAL_LOG_RECORD_HEADER)
		ctx->folded++;
	return 1;
}

/* Fold data[start..] inside the open transaction. */
static int log_fold_locked(struct log_fold_context *ctx,
			   unsigned int max_entries, const char **error_r)
{
	uint64_t first_seq, last_seq;
	size_t pos = ctx->start;
	int ret;

	if (mailbox_migrate_journal_get_last_seq(ctx->db, &first_seq,
						 error_r) < 0)
		return -1;
	last_seq = first_seq;
	if (ctx->start > ctx->data->used) {
		/* shorter than what was folded of it: its end was lost
		   (a power loss); what it holds now can't be told apart */
		ctx->damaged = TRUE;
		if (log_fold_gap(ctx->db, t_strdup_printf(
				"journal log %s lost its end after offset "
				"%"PRIuUOFF_T, ctx->path, ctx->start),
				&last_seq, error_r) < 0)
			return -1;
		pos = ctx->data->used;
	}
	do {
		T_BEGIN {
			ret = log_fold_next(ctx, &pos, &last_seq, error_r);
		} T_END_PASS_STR_IF(ret < 0, error_r);
	} while (ret > 0);
	if (ret < 0 || log_fold_mailboxes_flush(ctx, NULL, error_r) < 0)
		return -1;
	if (mailbox_migrate_db_meta_set(ctx->db, LOG_META_KEY,
			t_strdup_printf("%s %zu",
					ctx->id == NULL ? "-" : ctx->id,
					ctx->data->used), error_r) < 0)
		return -1;
	if (max_entries > 0 &&
	    mailbox_migrate_journal_prune_due_between(first_seq, last_seq,
						      max_entries)) {
		if (mailbox_migrate_journal_prune(ctx->db, max_entries,
						  error_r) < 0)
			return -1;
	}
	return 0;
}

/* Replace the log by an empty one (we hold its exclusive lock), sealing
   the old one first: writers that have it open find the seal once they
   get their lock, and reopen. A log that can't be sealed stays. */
static void log_rotate(struct log_fold_context *ctx)
{
	const char *temp_path, *error;
	const char sealed = LOG_SEALED, unsealed = LOG_MAGIC0;

	if (log_create_temp(ctx->path, &temp_path, &error) < 0)
		return;
	if (pwrite(ctx->fd, &sealed, 1, 0) != 1) {
		i_error("pwrite(%s) failed: %m", ctx->path);
		i_unlink(temp_path);
		return;
	}
	if (rename(temp_path, ctx->path) < 0) {
		i_unlink(temp_path);
		/* if this fails too, the sealed log stays in use all the
		   same: writers find it still at the path */
		if (pwrite(ctx->fd, &unsealed, 1, 0) != 1)
			i_error("pwrite(%s) failed: %m", ctx->path);
	}
}

static int log_fold_open(struct log_fold_context *ctx,
			 unsigned int lock_timeout_msecs, const char **error_r)
{
	struct stat st;
	unsigned int i;
	int current;

	for (i = 0; i < LOG_REOPEN_MAX_TRIES; i++) {
		ctx->fd = open(ctx->path, O_RDWR | O_CLOEXEC);
		if (ctx->fd == -1) {
			if (errno == ENOENT)
				return 0;
			*error_r = t_strdup_printf("open(%s) failed: %m",
						   ctx->path);
			return -1;
		}
		current = log_lock_current(ctx->fd, ctx->path,
					   lock_timeout_msecs, &st, error_r);
		if (current < 0)
			return -1;
		if (current > 0) {
			ctx->data = buffer_create_dynamic(default_pool,
							  st.st_size + 1);
			if (log_read_all(ctx->fd, ctx->path, st.st_size,
					 ctx->data, error_r) < 0)
				return -1;
			return 1;
		}
		/* another fold replaced it after our open */
		i_close_fd_path(&ctx->fd, ctx->path);
	}
	*error_r = t_strdup_printf("%s was replaced %u times while opening",
				   ctx->path, i);
	return -1;
}

int mailbox_migrate_journal_log_fold(struct mailbox_migrate_db *db,
				     unsigned int max_entries,
				     unsigned int lock_timeout_msecs,
				     enum mailbox_migrate_db_error *error_code_r,
				     const char **error_r)
{
	struct log_fold_context ctx;
	const char *db_path = mailbox_migrate_db_get_path(db);
	int ret;

	*error_code_r = MAILBOX_MIGRATE_DB_ERROR_NONE;
	if (!mailbox_migrate_journal_log_may_have_records(db_path))
		return 0;
	/* the common case, checked without taking any lock */
	if ((ret = mailbox_migrate_journal_log_need_fold(db, error_r)) <= 0) {
		if (ret < 0)
			*error_code_r = mailbox_migrate_db_errno_kind(errno);
		return ret;
	}
	if (!mailbox_migrate_db_is_at_path(db)) {
		/* what we'd fold would go into a file nobody reads */
		*error_code_r = MAILBOX_MIGRATE_DB_ERROR_CORRUPT;
		*error_r = t_strdup_printf("%s was replaced since it was "
					   "opened", db_path);
		return -1;
	}

	i_zero(&ctx);
	ctx.db = db;
	ctx.path = mailbox_migrate_journal_log_path(db_path);
	ctx.fd = -1;
	mailbox_migrate_db_set_lock_timeout(db, lock_timeout_msecs);
	ret = mailbox_migrate_db_begin(db, error_r);
	mailbox_migrate_db_reset_lock_timeout(db);
	if (ret < 0) {
		*error_code_r = mailbox_migrate_db_get_error(db);
		return -1;
	}
	ret = log_fold_open(&ctx, lock_timeout_msecs, error_r);
	if (ret < 0)
		*error_code_r = mailbox_migrate_db_errno_kind(errno);
	if (ret > 0) {
		ctx.id = log_header_id(ctx.data->data, ctx.data->used);
		if (ctx.id == NULL) {
			/* damaged from the start (folded as a gap) */
			ctx.start = 0;
		} else if (log_get_folded(db, ctx.id, &ctx.start,
					  error_r) < 0) {
			*error_code_r = mailbox_migrate_db_get_error(db);
			ret = -1;
		}
	}
	if (ret > 0 && ctx.start == ctx.data->used) {
		/* folded already; a crash may have prevented the rotation */
		mailbox_migrate_db_rollback(db);
		if (ctx.data->used >= MAILBOX_MIGRATE_JOURNAL_LOG_ROTATE_SIZE)
			log_rotate(&ctx);
		ret = 0;
	} else if (ret > 0) {
		if (log_fold_locked(&ctx, max_entries, error_r) < 0) {
			*error_code_r = mailbox_migrate_db_get_error(db);
			mailbox_migrate_db_rollback(db);
			ret = -1;
		} else if (mailbox_migrate_db_commit(db, error_r) < 0) {
			*error_code_r = mailbox_migrate_db_get_error(db);
			ret = -1;
		} else {
			if (ctx.damaged || ctx.data->used >=
			    MAILBOX_MIGRATE_JOURNAL_LOG_ROTATE_SIZE)
				log_rotate(&ctx);
			ret = ctx.folded;
		}
	} else {
		mailbox_migrate_db_rollback(db);
	}
	if (hash_table_is_created(ctx.mailboxes))
		hash_table_destroy(&ctx.mailboxes);
	pool_unref(&ctx.pool);
	if (ctx.data != NULL)
		buffer_free(&ctx.data);
	if (ctx.fd != -1)
		i_close_fd_path(&ctx.fd, ctx.path);
	if (ret < 0 && *error_code_r == MAILBOX_MIGRATE_DB_ERROR_NONE)
		*error_code_r = MAILBOX_MIGRATE_DB_ERROR_OTHER;
	return ret;
}
