#ifndef MAILBOX_MIGRATE_BACKUP_VERIFY_H
#define MAILBOX_MIGRATE_BACKUP_VERIFY_H

struct mailbox_migrate_backup_store;

struct mailbox_migrate_backup_verify_result {
	unsigned int members, bodies, records, messages;
	/* committed bytes of the data file */
	uoff_t bytes;
	unsigned int problems;
	/* the first problem (by offset in the data file), NULL if none */
	const char *first_problem;
	uoff_t first_problem_offset;
};

/* Check a store: every member decompresses, every body's content has
   the SHA-256 it is named by, every record parses, and every index row
   points at such a body (or, quick, only the structure: the data file's
   length, that index rows point at member starts inside it, that every
   message has a body row). Returns 0 with the result (problems > 0 on a
   mismatch), or -1 if the check couldn't run. */
int mailbox_migrate_backup_verify(struct mailbox_migrate_backup_store *store,
				  bool quick,
				  struct mailbox_migrate_backup_verify_result *result_r,
				  const char **error_r);

#endif
