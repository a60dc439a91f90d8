/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "mailbox-migrate-backup-tar.h"

#include <stdio.h>

/* ustar field offsets and lengths */
#define TAR_NAME_OFS 0
#define TAR_NAME_LEN 100
#define TAR_MODE_OFS 100
#define TAR_UID_OFS 108
#define TAR_GID_OFS 116
#define TAR_SIZE_OFS 124
#define TAR_SIZE_LEN 12
#define TAR_MTIME_OFS 136
#define TAR_MTIME_LEN 12
#define TAR_CHKSUM_OFS 148
#define TAR_CHKSUM_LEN 8
#define TAR_TYPE_OFS 156
#define TAR_MAGIC_OFS 257
#define TAR_VERSION_OFS 263

static void tar_octal(unsigned char *dest, size_t len, unsigned long long value)
{
	/* len-1 digits, then NUL */
	char buf[32];

	i_assert(len < sizeof(buf));
	i_snprintf(buf, sizeof(buf), "%0*llo", (int)len - 1, value);
	memcpy(dest, buf, len - 1);
	dest[len - 1] = '\0';
}

static unsigned int tar_checksum(const unsigned char *hdr)
{
	unsigned int i, sum = 0;

	for (i = 0; i < MAILBOX_MIGRATE_TAR_BLOCK_SIZE; i++) {
		if (i >= TAR_CHKSUM_OFS && i < TAR_CHKSUM_OFS + TAR_CHKSUM_LEN)
			sum += ' ';
		else
			sum += hdr[i];
	}
	return sum;
}

void mailbox_migrate_tar_header(unsigned char hdr[MAILBOX_MIGRATE_TAR_BLOCK_SIZE],
				const char *name, uoff_t size, time_t mtime)
{
	size_t name_len = strlen(name);

	i_assert(name_len <= MAILBOX_MIGRATE_TAR_NAME_MAX);
	i_assert(size <= MAILBOX_MIGRATE_TAR_SIZE_MAX);

	memset(hdr, 0, MAILBOX_MIGRATE_TAR_BLOCK_SIZE);
	memcpy(hdr + TAR_NAME_OFS, name, name_len);
	tar_octal(hdr + TAR_MODE_OFS, 8, 0600);
	tar_octal(hdr + TAR_UID_OFS, 8, 0);
	tar_octal(hdr + TAR_GID_OFS, 8, 0);
	tar_octal(hdr + TAR_SIZE_OFS, TAR_SIZE_LEN, size);
	tar_octal(hdr + TAR_MTIME_OFS, TAR_MTIME_LEN,
		  mtime < 0 ? 0 : (unsigned long long)mtime);
	hdr[TAR_TYPE_OFS] = '0';
	memcpy(hdr + TAR_MAGIC_OFS, "ustar", 6);
	memcpy(hdr + TAR_VERSION_OFS, "00", 2);
	/* six digits, NUL, space: as tar itself writes it */
	i_snprintf((char *)hdr + TAR_CHKSUM_OFS, 7, "%06o",
		   tar_checksum(hdr));
	hdr[TAR_CHKSUM_OFS + 6] = '\0';
	hdr[TAR_CHKSUM_OFS + 7] = ' ';
}

static int tar_parse_octal(const unsigned char *field, size_t len,
			   unsigned long long *value_r)
{
	unsigned long long value = 0;
	size_t i = 0;

	while (i < len && field[i] == ' ')
		i++;
	if (i == len || field[i] < '0' || field[i] > '7')
		return -1;
	for (; i < len && field[i] >= '0' && field[i] <= '7'; i++)
		value = value * 8 + (field[i] - '0');
	for (; i < len; i++) {
		if (field[i] != '\0' && field[i] != ' ')
			return -1;
	}
	*value_r = value;
	return 0;
}

int mailbox_migrate_tar_parse(const unsigned char hdr[MAILBOX_MIGRATE_TAR_BLOCK_SIZE],
			      const char **name_r, uoff_t *size_r,
			      const char **error_r)
{
	unsigned long long size, chksum;
	unsigned int i;

	for (i = 0; i < MAILBOX_MIGRATE_TAR_BLOCK_SIZE; i++) {
		if (hdr[i] != 0)
			break;
	}
	if (i == MAILBOX_MIGRATE_TAR_BLOCK_SIZE)
		return 0;

	if (tar_parse_octal(hdr + TAR_CHKSUM_OFS, TAR_CHKSUM_LEN,
			    &chksum) < 0 || chksum != tar_checksum(hdr)) {
		*error_r = "tar header checksum mismatch";
		return -1;
	}
	if (memcmp(hdr + TAR_MAGIC_OFS, "ustar", 5) != 0) {
		*error_r = "not a ustar header";
		return -1;
	}
	if (hdr[TAR_TYPE_OFS] != '0' && hdr[TAR_TYPE_OFS] != '\0') {
		*error_r = t_strdup_printf("unexpected tar entry type '%c'",
					   hdr[TAR_TYPE_OFS]);
		return -1;
	}
	if (tar_parse_octal(hdr + TAR_SIZE_OFS, TAR_SIZE_LEN, &size) < 0) {
		*error_r = "invalid size in tar header";
		return -1;
	}
	if (memchr(hdr + TAR_NAME_OFS, '\0', TAR_NAME_LEN) == NULL) {
		*error_r = "unterminated name in tar header";
		return -1;
	}
	*name_r = t_strdup((const char *)hdr + TAR_NAME_OFS);
	*size_r = size;
	return 1;
}
