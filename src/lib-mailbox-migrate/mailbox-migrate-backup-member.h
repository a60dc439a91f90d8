#ifndef MAILBOX_MIGRATE_BACKUP_MEMBER_H
#define MAILBOX_MIGRATE_BACKUP_MEMBER_H

/* A backup store's data file is a sequence of members, each a complete
   gzip member or zstd frame holding whole tar entries; concatenated they
   are one compressed tar stream ("zcat DATA | tar t"). Members are written
   through Dovecot's lib-compression. They are read one at a time with zlib
   or libzstd directly, because only those tell exactly where a member
   ends: the index records each member's offset and compressed size, and
   reindex and verify find them by walking the file. */

enum mailbox_migrate_backup_compression {
	MAILBOX_MIGRATE_BACKUP_COMPRESSION_GZ = 0,
	MAILBOX_MIGRATE_BACKUP_COMPRESSION_ZSTD,
};

/* "gz" or "zstd". Returns 0, or -1 if name is neither. */
int mailbox_migrate_backup_compression_parse(const char *name,
		enum mailbox_migrate_backup_compression *compression_r);
const char *
mailbox_migrate_backup_compression_name(enum mailbox_migrate_backup_compression compression);
/* File name extension: "gz" or "zst" */
const char *
mailbox_migrate_backup_compression_ext(enum mailbox_migrate_backup_compression compression);
/* Does data (at least 4 bytes) start like a member of this compression? */
bool mailbox_migrate_backup_member_magic(enum mailbox_migrate_backup_compression compression,
					 const unsigned char *data, size_t size);

/* Decompress the member starting at offset of fd, reading no further than
   limit, appending its content to out. Returns 1 with *member_size_r the
   member's compressed size, 0 if offset == limit, -1 if there is no valid
   member at offset (corrupt, or cut short by limit or by the file's end):
   *error_r says which, without the offset. */
int mailbox_migrate_backup_member_read(int fd,
		enum mailbox_migrate_backup_compression compression,
		uoff_t offset, uoff_t limit, buffer_t *out,
		uoff_t *member_size_r, const char **error_r);

/* Appends members to fd from offset. */
struct mailbox_migrate_backup_member_writer *
mailbox_migrate_backup_member_writer_init(int fd, uoff_t offset,
		enum mailbox_migrate_backup_compression compression);
/* Returns the writer's first error, or NULL. Frees the writer. */
void mailbox_migrate_backup_member_writer_deinit(
		struct mailbox_migrate_backup_member_writer **writer);

/* Offset in the file where the next member starts (after the last one
   ended). */
uoff_t mailbox_migrate_backup_member_writer_offset(
		struct mailbox_migrate_backup_member_writer *writer);
/* Uncompressed bytes written into the current member (0 if none open). */
uoff_t mailbox_migrate_backup_member_writer_member_pos(
		struct mailbox_migrate_backup_member_writer *writer);
/* Write data into the current member, starting one if none is open. */
void mailbox_migrate_backup_member_writer_write(
		struct mailbox_migrate_backup_member_writer *writer,
		const void *data, size_t size);
/* End the current member: *offset_r and *size_r give where it lies in the
   file. Returns 0, or -1 if writing it (or anything before) failed. */
int mailbox_migrate_backup_member_writer_end(
		struct mailbox_migrate_backup_member_writer *writer,
		uoff_t *offset_r, uoff_t *size_r, const char **error_r);

#endif
