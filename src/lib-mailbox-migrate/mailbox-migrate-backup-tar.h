#ifndef MAILBOX_MIGRATE_BACKUP_TAR_H
#define MAILBOX_MIGRATE_BACKUP_TAR_H

/* The entries of a backup store's data file are POSIX ustar entries, so
   that "zcat DATA | tar t" lists them. Only regular files are written;
   names are short ASCII ("b/<sha256>", "p/<pass>.txt"). */

#define MAILBOX_MIGRATE_TAR_BLOCK_SIZE 512
#define MAILBOX_MIGRATE_TAR_NAME_MAX 99
/* largest entry the 11 octal digits of a ustar size field can say */
#define MAILBOX_MIGRATE_TAR_SIZE_MAX 077777777777ULL

/* Fill hdr with the header of a regular file entry. name must be at most
   MAILBOX_MIGRATE_TAR_NAME_MAX bytes, size at most
   MAILBOX_MIGRATE_TAR_SIZE_MAX. */
void mailbox_migrate_tar_header(unsigned char hdr[MAILBOX_MIGRATE_TAR_BLOCK_SIZE],
				const char *name, uoff_t size, time_t mtime);

/* Parse a header block. Returns 1 with the entry's name (allocated from
   the data stack) and size, 0 for an all-zero block (end of archive), -1
   if the block isn't a valid ustar header (bad checksum, number or
   type), with *error_r saying why. */
int mailbox_migrate_tar_parse(const unsigned char hdr[MAILBOX_MIGRATE_TAR_BLOCK_SIZE],
			      const char **name_r, uoff_t *size_r,
			      const char **error_r);

/* Bytes of zero padding after an entry's content of size bytes. */
static inline size_t mailbox_migrate_tar_padding(uoff_t size)
{
	return (MAILBOX_MIGRATE_TAR_BLOCK_SIZE -
		size % MAILBOX_MIGRATE_TAR_BLOCK_SIZE) %
		MAILBOX_MIGRATE_TAR_BLOCK_SIZE;
}

#endif
