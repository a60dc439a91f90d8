#ifndef MAILBOX_MIGRATE_MAILDIR_UIDLIST_H
#define MAILBOX_MIGRATE_MAILDIR_UIDLIST_H

#include "guid.h"

/* The header line of a maildir's dovecot-uidlist, what the plugin needs of
   it: Dovecot itself reads the whole file (a line per mail) to give the
   mailbox GUID, which the header line alone has. */

/* Parse the header line (without its newline) of a dovecot-uidlist:
   version 3, then space-separated fields, each a letter and its value
   ("3 V1700000000 N42 G0123...cdef"). Returns TRUE with the UIDVALIDITY
   and the mailbox GUID if the line has both, well formed and not zero;
   FALSE for any other version, a field that is not well formed, or a
   uidlist Dovecot hasn't given a GUID yet. */
bool mailbox_migrate_maildir_uidlist_header_parse(const char *line,
						  uint32_t *uidvalidity_r,
						  guid_128_t guid_r);

#endif
