#ifndef MAILBOX_MIGRATE_SQL_H
#define MAILBOX_MIGRATE_SQL_H

/* All SQL of the state file. Nothing outside this file holds SQL text. */

/* Current schema version, stored in PRAGMA user_version. */
#define MAILBOX_MIGRATE_SQL_SCHEMA_VERSION 4

/* upgrades[v-1] brings an empty file (v=1) or version v-1 to version v. */
extern const char *const mailbox_migrate_sql_upgrades[];

extern const char mailbox_migrate_sql_meta_get[];
extern const char mailbox_migrate_sql_meta_set[];

extern const char mailbox_migrate_sql_journal_insert[];
extern const char mailbox_migrate_sql_journal_range[];
extern const char mailbox_migrate_sql_journal_mailbox_range[];
extern const char mailbox_migrate_sql_journal_last_gap[];
extern const char mailbox_migrate_sql_journal_iter[];
extern const char mailbox_migrate_sql_journal_iter_mailbox[];
extern const char mailbox_migrate_sql_journal_count_after[];
extern const char mailbox_migrate_sql_journal_prune[];
extern const char mailbox_migrate_sql_mailbox_fold_witness[];
extern const char mailbox_migrate_sql_journal_witness[];
extern const char mailbox_migrate_sql_journal_max_seq[];
extern const char mailbox_migrate_sql_journal_bounds[];

extern const char mailbox_migrate_sql_mailbox_upsert[];
extern const char mailbox_migrate_sql_mailbox_deleted[];
extern const char mailbox_migrate_sql_mailbox_get[];
extern const char mailbox_migrate_sql_journal_has_expunge[];
extern const char mailbox_migrate_sql_journal_changed_uids[];
extern const char mailbox_migrate_sql_journal_changed_uids_upto[];
extern const char mailbox_migrate_sql_journal_uid_modseqs[];
extern const char mailbox_migrate_sql_journal_first_modseq[];
extern const char mailbox_migrate_sql_mailbox_proof_get[];
extern const char mailbox_migrate_sql_mailbox_proof_set[];

extern const char mailbox_migrate_sql_seen_get[];
extern const char mailbox_migrate_sql_seen_raise[];

extern const char mailbox_migrate_sql_destination_min_checkpoint[];
extern const char mailbox_migrate_sql_destination_get[];
extern const char mailbox_migrate_sql_destination_list[];
extern const char mailbox_migrate_sql_destination_set[];
extern const char mailbox_migrate_sql_destination_mailbox_get[];
extern const char mailbox_migrate_sql_destination_mailbox_set[];
extern const char mailbox_migrate_sql_destination_mailbox_delete[];

#endif
