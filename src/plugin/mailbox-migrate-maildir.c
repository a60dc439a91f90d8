/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "maildir-storage.h"
#include "maildir-uidlist.h"
#include "mailbox-migrate-maildir-uidlist.h"
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

bool mailbox_migrate_maildir_read_mailbox_guid(struct mailbox *box,
					       guid_128_t guid_r)
{
	struct maildir_mailbox *mbox = MAILDIR_MAILBOX(box);
	const char *control_dir, *path;
	char buf[512], *p;
	uint32_t uidvalidity;
	ssize_t ret;
	int fd;

	i_assert(mailbox_migrate_is_maildir(box));

	/* Dovecot has read it already: it answers from memory */
	if (!box->opened || maildir_uidlist_is_read(mbox->uidlist))
		return FALSE;
	if (mailbox_get_path_to(box, MAILBOX_LIST_PATH_TYPE_CONTROL,
				&control_dir) <= 0)
		return FALSE;
	path = t_strconcat(control_dir, "/"MAILDIR_UIDLIST_NAME, NULL);
	if ((fd = open(path, O_RDONLY)) == -1)
		return FALSE;
	ret = read(fd, buf, sizeof(buf) - 1);
	i_close_fd(&fd);
	if (ret <= 0)
		return FALSE;
	buf[ret] = '\0';
	if ((p = strchr(buf, '\n')) == NULL)
		return FALSE;
	*p = '\0';
	if (!mailbox_migrate_maildir_uidlist_header_parse(buf, &uidvalidity,
							  guid_r))
		return FALSE;
	/* a uidlist recreated for a new UIDVALIDITY that the view doesn't
	   have yet may be another mailbox's */
	return uidvalidity == mail_index_get_header(box->view)->uid_validity;
}
