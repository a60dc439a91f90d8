/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "unlink-directory.h"
#include "test-common.h"
#include "test-mailbox-migrate-dir.h"

#include <stdio.h>
#include <stdlib.h>

const char *test_dir;

static void test_dir_cleanup(void)
{
	const char *error;

	if (unlink_directory(test_dir, UNLINK_DIRECTORY_FLAG_RMDIR,
			     &error) < 0)
		i_error("%s", error);
}

int test_run_in_dir(const char *name, void (*const tests[])(void))
{
	/* the tests, then the cleanup while lib is still up */
	void (*all[64])(void);
	char dir[256];
	unsigned int i;

	if (snprintf(dir, sizeof(dir), "/tmp/test-%s.XXXXXX", name) >=
	    (int)sizeof(dir))
		i_fatal("test directory name too long");
	if (mkdtemp(dir) == NULL)
		i_fatal("mkdtemp() failed: %m");
	test_dir = dir;
	for (i = 0; tests[i] != NULL; i++) {
		i_assert(i + 2 < N_ELEMENTS(all));
		all[i] = tests[i];
	}
	all[i++] = test_dir_cleanup;
	all[i] = NULL;
	return test_run(all);
}
