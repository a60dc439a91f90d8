/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "doveadm-mail.h"
#include "doveadm-cmd.h"
#include "doveadm-mailbox-migrate-cmd.h"

const char *doveadm_mailbox_migrate_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_mailbox_migrate_plugin_init(struct module *module);
void doveadm_mailbox_migrate_plugin_deinit(void);

/* doveadm runs the first registered command whose words all match, so the
   subcommands must come before the bare "mailbox-migrate". */
static struct doveadm_cmd_ver2 *const doveadm_mailbox_migrate_cmds[] = {
	&doveadm_cmd_mailbox_migrate_seen,
	&doveadm_cmd_mailbox_migrate_journal,
	&doveadm_cmd_mailbox_migrate_status,
	&doveadm_cmd_mailbox_migrate_restore,
	&doveadm_cmd_mailbox_migrate_verify,
	&doveadm_cmd_mailbox_migrate_compact,
	&doveadm_cmd_mailbox_migrate_reindex,
	&doveadm_cmd_mailbox_migrate,
};

void doveadm_mailbox_migrate_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(doveadm_mailbox_migrate_cmds); i++)
		doveadm_cmd_register_ver2(doveadm_mailbox_migrate_cmds[i]);
}

void doveadm_mailbox_migrate_plugin_deinit(void)
{
}
