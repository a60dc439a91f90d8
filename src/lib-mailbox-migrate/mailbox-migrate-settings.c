/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "settings-parser.h"
#include "var-expand.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mailbox-list.h"
#include "mailbox-migrate-settings.h"

static int
mailbox_migrate_settings_get_time_msecs(struct mail_user *user,
					const char *name,
					unsigned int default_msecs,
					unsigned int *msecs_r,
					const char **error_r)
{
	const char *value, *error;

	value = mail_user_plugin_getenv(user, name);
	if (value == NULL || value[0] == '\0') {
		*msecs_r = default_msecs;
		return 0;
	}
	if (settings_get_time_msecs(value, msecs_r, &error) < 0) {
		*error_r = t_strdup_printf("Invalid %s=%s: %s",
					   name, value, error);
		return -1;
	}
	return 0;
}

static int
mailbox_migrate_settings_get_uint(struct mail_user *user, const char *name,
				  unsigned int default_value,
				  unsigned int *value_r, const char **error_r)
{
	const char *value;

	value = mail_user_plugin_getenv(user, name);
	if (value == NULL || value[0] == '\0') {
		*value_r = default_value;
		return 0;
	}
	if (str_to_uint(value, value_r) < 0) {
		*error_r = t_strdup_printf("Invalid %s=%s: not a number",
					   name, value);
		return -1;
	}
	return 0;
}

int mailbox_migrate_settings_get_db_path(struct mail_user *user,
					 const char **path_r,
					 const char **error_r)
{
	struct mail_namespace *ns;
	const char *value, *dir;

	value = mail_user_plugin_getenv(user, "mailbox_migrate_db");
	if (value != NULL && value[0] != '\0') {
		value = mail_user_home_expand(user, value);
		if (value[0] != '/') {
			*error_r = t_strdup_printf(
				"Invalid mailbox_migrate_db=%s: "
				"not an absolute path", value);
			return -1;
		}
		*path_r = value;
		return 0;
	}

	ns = mail_namespace_find_inbox(user->namespaces);
	if (ns == NULL ||
	    !mailbox_list_get_root_path(ns->list, MAILBOX_LIST_PATH_TYPE_INDEX,
					&dir)) {
		*error_r = "No index directory for the state file: "
			"set mailbox_migrate_db";
		return -1;
	}
	*path_r = t_strconcat(dir, "/", MAILBOX_MIGRATE_DB_DEFAULT_NAME, NULL);
	return 0;
}

static const char *const *
mailbox_migrate_settings_get_destinations(struct mail_user *user)
{
	ARRAY_TYPE(const_string) dests;
	const char *name, *value;
	unsigned int i;

	t_array_init(&dests, 4);
	for (i = 1;; i++) {
		name = i == 1 ? "mailbox_migrate_destination" :
			t_strdup_printf("mailbox_migrate_destination%u", i);
		value = mail_user_plugin_getenv(user, name);
		if (value == NULL || value[0] == '\0')
			break;
		value = p_strdup(user->pool, value);
		array_push_back(&dests, &value);
	}
	array_append_zero(&dests);
	return p_memdup(user->pool, array_front(&dests),
			array_count(&dests) * sizeof(const char *));
}

int mailbox_migrate_settings_read(struct mail_user *user,
				  const struct mailbox_migrate_settings **set_r,
				  const char **error_r)
{
	struct mailbox_migrate_settings *set;
	unsigned int cutover_wait_msecs;
	const char *value;

	set = p_new(user->pool, struct mailbox_migrate_settings, 1);
	set->destinations = mailbox_migrate_settings_get_destinations(user);
	set->on_logout = mail_user_plugin_getenv_bool(user,
		"mailbox_migrate_on_logout");
	set->db_fsync = mail_user_plugin_getenv_bool(user,
		"mailbox_migrate_db_fsync");
	value = mail_user_plugin_getenv(user, "mailbox_migrate_logout_socket");
	set->logout_socket = value == NULL || value[0] == '\0' ?
		MAILBOX_MIGRATE_DEFAULT_LOGOUT_SOCKET :
		p_strdup(user->pool, value);

	if (mailbox_migrate_settings_get_time_msecs(user,
			"mailbox_migrate_db_lock_timeout",
			MAILBOX_MIGRATE_DEFAULT_LOCK_TIMEOUT_MSECS,
			&set->lock_timeout_msecs, error_r) < 0)
		return -1;
	if (mailbox_migrate_settings_get_time_msecs(user,
			"mailbox_migrate_cutover_wait",
			MAILBOX_MIGRATE_DEFAULT_CUTOVER_WAIT_SECS * 1000,
			&cutover_wait_msecs, error_r) < 0)
		return -1;
	set->cutover_wait_secs = (cutover_wait_msecs + 999) / 1000;
	if (mailbox_migrate_settings_get_time_msecs(user,
			"mailbox_migrate_progress_interval",
			MAILBOX_MIGRATE_DEFAULT_PROGRESS_INTERVAL_SECS * 1000,
			&set->progress_interval_msecs, error_r) < 0)
		return -1;
	if (mailbox_migrate_settings_get_uint(user,
			"mailbox_migrate_journal_max_entries",
			MAILBOX_MIGRATE_DEFAULT_JOURNAL_MAX_ENTRIES,
			&set->journal_max_entries, error_r) < 0)
		return -1;
	if (set->journal_max_entries == 0) {
		*error_r = "Invalid mailbox_migrate_journal_max_entries=0: "
			"must be at least 1";
		return -1;
	}
	if (mailbox_migrate_settings_get_uint(user, "mailbox_migrate_workers",
					      0, &set->workers, error_r) < 0)
		return -1;

	value = mail_user_plugin_getenv(user,
					"mailbox_migrate_backup_compression");
	if (value == NULL || value[0] == '\0')
		value = "gz";
	if (strcmp(value, "gz") != 0 && strcmp(value, "zstd") != 0) {
		*error_r = t_strdup_printf(
			"Invalid mailbox_migrate_backup_compression=%s: "
			"use gz or zstd", value);
		return -1;
	}
	set->backup_compression = p_strdup(user->pool, value);

	value = mail_user_plugin_getenv(user, "mailbox_migrate_backup_dirty");
	if (value == NULL || value[0] == '\0')
		set->backup_dirty_percent =
			MAILBOX_MIGRATE_DEFAULT_BACKUP_DIRTY_PERCENT;
	else {
		size_t len = strlen(value);

		if (len > 0 && value[len-1] == '%')
			value = t_strndup(value, len - 1);
		if (str_to_uint(value, &set->backup_dirty_percent) < 0 ||
		    set->backup_dirty_percent > 100) {
			*error_r = t_strdup_printf(
				"Invalid mailbox_migrate_backup_dirty=%s: "
				"use a percentage from 0 to 100",
				mail_user_plugin_getenv(user,
					"mailbox_migrate_backup_dirty"));
			return -1;
		}
	}
	*set_r = set;
	return 0;
}

int mailbox_migrate_settings_expand(struct mail_user *user, const char *str,
				    const char **expanded_r,
				    const char **error_r)
{
	string_t *dest = t_str_new(128);
	const char *error;

	if (var_expand_with_funcs(dest, str, mail_user_var_expand_table(user),
				  mail_user_var_expand_func_table, user,
				  &error) <= 0) {
		*error_r = t_strdup_printf("Failed to expand %s: %s",
					   str, error);
		return -1;
	}
	*expanded_r = str_c(dest);
	return 0;
}

int mailbox_migrate_settings_backup_dir(struct mail_user *user,
					const char *destination,
					const char **dir_r,
					const char **error_r)
{
	const char *location, *home;

	if (mailbox_migrate_settings_expand(user, destination, &location,
					    error_r) < 0)
		return -1;
	i_assert(str_begins(location, "backup:"));
	location += 7;
	if (str_begins(location, "~/") &&
	    mail_user_get_home(user, &home) > 0)
		location = t_strconcat(home, location + 1, NULL);
	if (location[0] != '/') {
		*error_r = t_strdup_printf("Invalid backup destination "
			"backup:%s: expected an absolute path", location);
		return -1;
	}
	*dir_r = location;
	return 0;
}

int mailbox_migrate_settings_destination_name(struct mail_user *user,
					      const char *destination,
					      const char **name_r,
					      const char **error_r)
{
	const char *dir;

	if (!str_begins(destination, "backup:"))
		return mailbox_migrate_settings_expand(user, destination,
						       name_r, error_r);
	if (mailbox_migrate_settings_backup_dir(user, destination, &dir,
						error_r) < 0)
		return -1;
	*name_r = t_strconcat("backup:", dir, NULL);
	return 0;
}
