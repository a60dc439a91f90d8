/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "mail-index.h"
#include "mail-storage-private.h"
#include "mailbox-migrate-index-ext.h"

static uint32_t mailbox_migrate_index_ext_id(struct mailbox *box)
{
	/* registering again returns the same id */
	return mail_index_ext_register(box->index,
		MAILBOX_MIGRATE_INDEX_EXT_NAME,
		sizeof(struct mailbox_migrate_index_ext_header), 0, 0);
}

static void
mailbox_migrate_index_ext_read(struct mail_index_view *view, uint32_t ext_id,
			       struct mailbox_migrate_index_ext_header *hdr_r)
{
	const void *data;
	size_t size;

	i_zero(hdr_r);
	mail_index_get_header_ext(view, ext_id, &data, &size);
	if (size >= sizeof(*hdr_r))
		memcpy(hdr_r, data, sizeof(*hdr_r));
}

void mailbox_migrate_index_ext_get(struct mailbox *box,
				   struct mailbox_migrate_index_ext_header *hdr_r)
{
	i_zero(hdr_r);
	if (box->view == NULL)
		return;
	mailbox_migrate_index_ext_read(box->view,
				       mailbox_migrate_index_ext_id(box),
				       hdr_r);
}

int mailbox_migrate_index_ext_add_lost(struct mailbox *box, time_t now,
				       const char **error_r)
{
	struct mailbox_migrate_index_ext_header hdr;
	struct mail_index_view *view;
	struct mail_index_transaction *t;
	uint32_t ext_id;

	if (mailbox_open(box) < 0) {
		*error_r = mailbox_get_last_internal_error(box, NULL);
		return -1;
	}
	ext_id = mailbox_migrate_index_ext_id(box);
	(void)mail_index_refresh(box->index);
	view = mail_index_view_open(box->index);
	mailbox_migrate_index_ext_read(view, ext_id, &hdr);
	hdr.lost_count++;
	hdr.last_lost_time = (uint32_t)now;
	t = mail_index_transaction_begin(view,
		MAIL_INDEX_TRANSACTION_FLAG_EXTERNAL);
	mail_index_update_header_ext(t, ext_id, 0, &hdr, sizeof(hdr));
	if (mail_index_transaction_commit(&t) < 0) {
		*error_r = mail_index_get_error_message(box->index);
		mail_index_view_close(&view);
		return -1;
	}
	mail_index_view_close(&view);
	return 0;
}
