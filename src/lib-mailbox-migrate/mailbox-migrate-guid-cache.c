/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "mail-storage-private.h"
#include "index-storage.h"
#include "index-mail.h"
#include "mailbox-migrate-guid-cache.h"

void mailbox_migrate_guid_cache_saving(struct mail *mail, const char *guid)
{
	struct index_mailbox_context *ibox;

	if (guid[0] == '\0' || strcmp(mail->box->storage->name, "sdbox") != 0)
		return;
	ibox = INDEX_STORAGE_CONTEXT(mail->box);
	if (ibox == NULL || mail->seq == 0)
		return;
	index_mail_cache_add_idx(INDEX_MAIL(mail),
				 ibox->cache_fields[MAIL_CACHE_GUID].idx,
				 guid, strlen(guid));
}
