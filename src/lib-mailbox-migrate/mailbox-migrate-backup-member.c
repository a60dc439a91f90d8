/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "buffer.h"
#include "ostream.h"
#include "compression.h"
#include "mailbox-migrate-backup-member.h"

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define MEMBER_READ_CHUNK (128 * 1024)
/* zlib level 4: a few percent smaller than level 1 (the store should be
   no bigger than a tar.gz of the spool) for about a fifth more CPU, which
   the parallel workers have; zstd level 1: it already compresses better
   than gzip, and is the fast choice */
#define MEMBER_GZ_LEVEL 4
#define MEMBER_ZSTD_LEVEL 1

struct mailbox_migrate_backup_member_writer {
	const struct compression_handler *handler;
	struct ostream *file_output, *output;
	uoff_t member_start, member_pos;
	char *error;
};

int mailbox_migrate_backup_compression_parse(const char *name,
		enum mailbox_migrate_backup_compression *compression_r)
{
	if (strcmp(name, "gz") == 0 || strcmp(name, "gzip") == 0)
		*compression_r = MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ;
	else if (strcmp(name, "zstd") == 0)
		*compression_r = MAILBOX_MIGRATE_BACKUP_COMPRESSION_ZSTD;
	else
		return -1;
	return 0;
}

const char *
mailbox_migrate_backup_compression_name(enum mailbox_migrate_backup_compression compression)
{
	return compression == MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ ?
		"gz" : "zstd";
}

const char *
mailbox_migrate_backup_compression_ext(enum mailbox_migrate_backup_compression compression)
{
	return compression == MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ ?
		"gz" : "zst";
}

bool mailbox_migrate_backup_member_magic(enum mailbox_migrate_backup_compression compression,
					 const unsigned char *data, size_t size)
{
	if (size < 4)
		return FALSE;
	if (compression == MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ)
		return data[0] == 0x1f && data[1] == 0x8b && data[2] == 8;
	return data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f &&
		data[3] == 0xfd;
}

static ssize_t member_pread(int fd, void *buf, size_t size, uoff_t offset,
			    uoff_t limit, const char **error_r)
{
	ssize_t ret;

	if (offset >= limit)
		return 0;
	if (size > limit - offset)
		size = limit - offset;
	ret = pread(fd, buf, size, offset);
	if (ret < 0)
		*error_r = t_strdup_printf("pread() failed: %m");
	return ret;
}

static int member_read_gz(int fd, uoff_t offset, uoff_t limit, buffer_t *out,
			  uoff_t *member_size_r, const char **error_r)
{
	unsigned char *inbuf = t_malloc_no0(MEMBER_READ_CHUNK);
	unsigned char outbuf[IO_BLOCK_SIZE * 8];
	uoff_t pos = offset;
	z_stream zs;
	ssize_t n;
	int ret = Z_OK;

	i_zero(&zs);
	/* 16+: a gzip member, header and CRC32 trailer checked */
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		*error_r = "inflateInit2() failed";
		return -1;
	}
	while (ret != Z_STREAM_END) {
		if (zs.avail_in == 0) {
			n = member_pread(fd, inbuf, MEMBER_READ_CHUNK, pos,
					 limit, error_r);
			if (n < 0)
				break;
			if (n == 0) {
				*error_r = "member cut short (truncated file "
					"or unfinished write)";
				break;
			}
			pos += n;
			zs.next_in = inbuf;
			zs.avail_in = n;
		}
		zs.next_out = outbuf;
		zs.avail_out = sizeof(outbuf);
		ret = inflate(&zs, Z_NO_FLUSH);
		buffer_append(out, outbuf, sizeof(outbuf) - zs.avail_out);
		if (ret != Z_OK && ret != Z_STREAM_END) {
			*error_r = t_strdup_printf("corrupt gzip member: %s",
				zs.msg != NULL ? zs.msg : zError(ret));
			break;
		}
	}
	if (ret == Z_STREAM_END)
		*member_size_r = pos - zs.avail_in - offset;
	(void)inflateEnd(&zs);
	return ret == Z_STREAM_END ? 1 : -1;
}

static int member_read_zstd(int fd, uoff_t offset, uoff_t limit,
			    buffer_t *out, uoff_t *member_size_r,
			    const char **error_r)
{
	unsigned char *inbuf = t_malloc_no0(MEMBER_READ_CHUNK);
	unsigned char outbuf[IO_BLOCK_SIZE * 8];
	ZSTD_DStream *zs;
	ZSTD_inBuffer in = { inbuf, 0, 0 };
	ZSTD_outBuffer zout;
	uoff_t pos = offset;
	size_t ret = 1;
	ssize_t n;
	bool failed = FALSE;

	zs = ZSTD_createDStream();
	if (zs == NULL || ZSTD_isError(ZSTD_initDStream(zs))) {
		*error_r = "ZSTD_initDStream() failed";
		ZSTD_freeDStream(zs);
		return -1;
	}
	while (ret != 0) {
		if (in.pos == in.size) {
			n = member_pread(fd, inbuf, MEMBER_READ_CHUNK, pos,
					 limit, error_r);
			if (n <= 0) {
				if (n == 0)
					*error_r = "member cut short "
						"(truncated file or "
						"unfinished write)";
				failed = TRUE;
				break;
			}
			pos += n;
			in.size = n;
			in.pos = 0;
		}
		zout.dst = outbuf;
		zout.size = sizeof(outbuf);
		zout.pos = 0;
		ret = ZSTD_decompressStream(zs, &zout, &in);
		if (ZSTD_isError(ret)) {
			*error_r = t_strdup_printf("corrupt zstd frame: %s",
						   ZSTD_getErrorName(ret));
			failed = TRUE;
			break;
		}
		buffer_append(out, outbuf, zout.pos);
	}
	ZSTD_freeDStream(zs);
	if (failed)
		return -1;
	*member_size_r = pos - (in.size - in.pos) - offset;
	return 1;
}

int mailbox_migrate_backup_member_read(int fd,
		enum mailbox_migrate_backup_compression compression,
		uoff_t offset, uoff_t limit, buffer_t *out,
		uoff_t *member_size_r, const char **error_r)
{
	unsigned char magic[4];
	ssize_t n;

	*member_size_r = 0;
	n = member_pread(fd, magic, sizeof(magic), offset, limit, error_r);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	if (!mailbox_migrate_backup_member_magic(compression, magic, n)) {
		*error_r = t_strdup_printf("no %s member starts here",
			mailbox_migrate_backup_compression_name(compression));
		return -1;
	}
	if (compression == MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ)
		return member_read_gz(fd, offset, limit, out, member_size_r,
				      error_r);
	return member_read_zstd(fd, offset, limit, out, member_size_r,
				error_r);
}

struct mailbox_migrate_backup_member_writer *
mailbox_migrate_backup_member_writer_init(int fd, uoff_t offset,
		enum mailbox_migrate_backup_compression compression)
{
	struct mailbox_migrate_backup_member_writer *writer;
	const char *name = mailbox_migrate_backup_compression_name(compression);

	writer = i_new(struct mailbox_migrate_backup_member_writer, 1);
	if (compression_lookup_handler(name, &writer->handler) <= 0) {
		writer->error = i_strdup_printf("Dovecot's lib-compression "
			"has no %s support", name);
	}
	/* the file ostream write()s while it believes the fd's position
	   is where it writes */
	if (lseek(fd, offset, SEEK_SET) < 0) {
		writer->error = i_strdup_printf("lseek(%"PRIuUOFF_T") failed: "
						"%m", offset);
	}
	writer->file_output = o_stream_create_fd_file(fd, offset, FALSE);
	o_stream_set_name(writer->file_output, "backup data file");
	/* finishing a member must not finish the file */
	o_stream_set_finish_via_child(writer->file_output, FALSE);
	writer->member_start = offset;
	return writer;
}

void mailbox_migrate_backup_member_writer_deinit(
		struct mailbox_migrate_backup_member_writer **_writer)
{
	struct mailbox_migrate_backup_member_writer *writer = *_writer;

	*_writer = NULL;
	if (writer->output != NULL) {
		o_stream_abort(writer->output);
		o_stream_destroy(&writer->output);
	}
	o_stream_abort(writer->file_output);
	o_stream_destroy(&writer->file_output);
	i_free(writer->error);
	i_free(writer);
}

uoff_t mailbox_migrate_backup_member_writer_offset(
		struct mailbox_migrate_backup_member_writer *writer)
{
	return writer->member_start;
}

uoff_t mailbox_migrate_backup_member_writer_member_pos(
		struct mailbox_migrate_backup_member_writer *writer)
{
	return writer->output == NULL ? 0 : writer->member_pos;
}

void mailbox_migrate_backup_member_writer_write(
		struct mailbox_migrate_backup_member_writer *writer,
		const void *data, size_t size)
{
	if (writer->error != NULL)
		return;
	if (writer->output == NULL) {
		writer->output = writer->handler->create_ostream(
			writer->file_output,
			writer->handler == NULL ? 0 :
			strcmp(writer->handler->name, "gz") == 0 ?
			MEMBER_GZ_LEVEL : MEMBER_ZSTD_LEVEL);
		o_stream_cork(writer->output);
		writer->member_pos = 0;
	}
	o_stream_nsend(writer->output, data, size);
	writer->member_pos += size;
}

int mailbox_migrate_backup_member_writer_end(
		struct mailbox_migrate_backup_member_writer *writer,
		uoff_t *offset_r, uoff_t *size_r, const char **error_r)
{
	if (writer->error == NULL && writer->output != NULL) {
		if (o_stream_finish(writer->output) < 0) {
			writer->error = i_strdup(
				o_stream_get_error(writer->output));
		} else if (o_stream_flush(writer->file_output) < 0) {
			writer->error = i_strdup(
				o_stream_get_error(writer->file_output));
		}
	}
	if (writer->output != NULL)
		o_stream_destroy(&writer->output);
	if (writer->error != NULL) {
		*error_r = t_strdup(writer->error);
		return -1;
	}
	*offset_r = writer->member_start;
	*size_r = writer->file_output->offset - writer->member_start;
	writer->member_start = writer->file_output->offset;
	return 0;
}
