#ifndef MAILBOX_MIGRATE_GUID_CACHE_H
#define MAILBOX_MIGRATE_GUID_CACHE_H

struct mail;

/* sdbox keeps a mail's GUID only in the mail's file, and Dovecot caches it
   only once someone has read it from there. Put the GUID a save was given
   into the mailbox's cache with the save, so that later readers of it (the
   journal entry of a flag change, a pass checking the destination's UIDs)
   don't open the file. mail is the save's dest_mail after save_begin (or
   after a copy, until the transaction ends). Does nothing for other
   formats, whose GUIDs are in the index or the file name. */
void mailbox_migrate_guid_cache_saving(struct mail *mail, const char *guid);

#endif
