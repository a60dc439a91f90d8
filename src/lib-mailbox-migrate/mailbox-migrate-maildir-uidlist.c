/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "strnum.h"
#include "mailbox-migrate-maildir-uidlist.h"

bool mailbox_migrate_maildir_uidlist_header_parse(const char *line,
						  uint32_t *uidvalidity_r,
						  guid_128_t guid_r)
{
	const char *const *fields;
	bool have_guid = FALSE;

	*uidvalidity_r = 0;
	guid_128_empty(guid_r);
	if (line[0] != '3' || line[1] != ' ')
		return FALSE;
	for (fields = t_strsplit_spaces(line + 2, " "); *fields != NULL;
	     fields++) {
		const char *value = *fields + 1;

		/* as maildir_uidlist_read_v3_header(); N (the next UID) and
		   the fields Dovecot keeps without knowing them are skipped */
		switch (**fields) {
		case 'V':
			if (str_to_uint32(value, uidvalidity_r) < 0)
				return FALSE;
			break;
		case 'G':
			if (guid_128_from_string(value, guid_r) < 0)
				return FALSE;
			have_guid = TRUE;
			break;
		}
	}
	return have_guid && !guid_128_is_empty(guid_r) && *uidvalidity_r != 0;
}
