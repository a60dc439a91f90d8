/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "maildir-storage.h"
#include "maildir-uidlist.h"
#include "mailbox-migrate-plugin.h"

bool mailbox_migrate_is_maildir(struct mailbox *box)
{
	return strcmp(box->storage->name, MAILDIR_STORAGE_NAME) == 0;
}

const char *mailbox_migrate_maildir_get_guid(struct mailbox *box, uint32_t uid)
{
	struct maildir_mailbox *mbox = MAILDIR_MAILBOX(box);
	enum maildir_uidlist_rec_flag flags;
	const char *guid, *fname, *p;

	i_assert(mailbox_migrate_is_maildir(box));

	/* as maildir_mail_get_special(): the uidlist's GUID if it has one,
	   else the file name up to its flags */
	guid = maildir_uidlist_lookup_ext(mbox->uidlist, uid,
					  MAILDIR_UIDLIST_REC_EXT_GUID);
	if (guid != NULL && guid[0] != '\0')
		return guid;
	if (maildir_uidlist_lookup(mbox->uidlist, uid, &flags, &fname) <= 0)
		return NULL;
	p = strchr(fname, MAILDIR_INFO_SEP);
	return p == NULL ? fname : t_strdup_until(fname, p);
}
