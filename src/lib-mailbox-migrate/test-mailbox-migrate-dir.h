#ifndef TEST_MAILBOX_MIGRATE_DIR_H
#define TEST_MAILBOX_MIGRATE_DIR_H

/* A scratch directory for a unit test program, under /tmp. */
extern const char *test_dir;

/* Run tests (NULL-terminated) with test_dir created for them, and removed
   after them. name goes into the directory's name. */
int test_run_in_dir(const char *name, void (*const tests[])(void));

#endif
