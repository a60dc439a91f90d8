/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "mkdir-parents.h"
#include "write-full.h"
#include "mail-namespace.h"
#include "mailbox-list.h"
#include "mailbox-migrate-hold.h"

#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>

int mailbox_migrate_hold_get_path(struct mail_user *user, const char **path_r,
				  const char **error_r)
{
	struct mail_namespace *ns;
	const char *dir;

	ns = mail_namespace_find_inbox(user->namespaces);
	if (ns == NULL ||
	    !mailbox_list_get_root_path(ns->list, MAILBOX_LIST_PATH_TYPE_INDEX,
					&dir)) {
		*error_r = "The mail location has no index directory";
		return -1;
	}
	*path_r = t_strconcat(dir, "/", MAILBOX_MIGRATE_HOLD_FILE_NAME, NULL);
	return 0;
}

int mailbox_migrate_hold_set(const char *path, time_t until,
			     const char **error_r)
{
	const char *temp_path = t_strconcat(path, ".tmp", NULL);
	const char *data = t_strdup_printf("%ld\n", (long)until);
	const char *p;
	int fd;

	p = strrchr(path, '/');
	if (p != NULL && mkdir_parents(t_strdup_until(path, p), 0700) < 0 &&
	    errno != EEXIST) {
		*error_r = t_strdup_printf("mkdir(%s) failed: %m",
					   t_strdup_until(path, p));
		return -1;
	}
	fd = open(temp_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", temp_path);
		return -1;
	}
	if (write_full(fd, data, strlen(data)) < 0) {
		*error_r = t_strdup_printf("write(%s) failed: %m", temp_path);
		i_close_fd(&fd);
		i_unlink(temp_path);
		return -1;
	}
	i_close_fd(&fd);
	if (rename(temp_path, path) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   temp_path, path);
		i_unlink(temp_path);
		return -1;
	}
	return 0;
}

int mailbox_migrate_hold_clear(const char *path, const char **error_r)
{
	if (unlink(path) < 0 && errno != ENOENT) {
		*error_r = t_strdup_printf("unlink(%s) failed: %m", path);
		return -1;
	}
	return 0;
}

time_t mailbox_migrate_hold_get(const char *path)
{
	char buf[32];
	ssize_t ret;
	long until;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd == -1)
		return 0;
	ret = read(fd, buf, sizeof(buf) - 1);
	i_close_fd(&fd);
	if (ret <= 0)
		return 0;
	buf[ret] = '\0';
	if (sscanf(buf, "%ld", &until) != 1 || until <= 0)
		return 0;
	return (time_t)until;
}
