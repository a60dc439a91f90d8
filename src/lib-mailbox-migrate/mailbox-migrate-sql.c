/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "mailbox-migrate-sql.h"

/* journal: one row per change, seq strictly increasing and never reused,
   keyed by mailbox GUID so history follows renames; modseq is the mailbox
   index's highest modseq right after the commit that made the change.
   mailbox: what the journal knows of each mailbox; witness_modseq/
   witness_seq keep that modseq for mailbox records (creates, renames,
   updates; before 723e17d also commits without entries) and for pruned
   entries, so that a reader can tell when the index holds changes the
   journal never saw; lost_acked is how many of the commits the mailbox
   index counts as not journaled a full comparison has made good.
   seen: the highest UIDNEXT an IMAP/POP3 client was shown. destination:
   per destination checkpoint (the journal seq it has taken). Schema 1 as
   first released; schema 3 rebuilds its journal table. */
static const char mailbox_migrate_sql_schema_v1[] =
"CREATE TABLE meta (\n"
"  key TEXT PRIMARY KEY NOT NULL,\n"
"  value TEXT NOT NULL\n"
");\n"
"CREATE TABLE journal (\n"
"  seq INTEGER PRIMARY KEY AUTOINCREMENT,\n"
"  time INTEGER NOT NULL,\n"
"  type TEXT NOT NULL,\n"
"  mailbox_guid TEXT NOT NULL,\n"
"  uidvalidity INTEGER NOT NULL DEFAULT 0,\n"
"  uid INTEGER NOT NULL DEFAULT 0,\n"
"  message_guid TEXT,\n"
"  flags INTEGER,\n"
"  keywords TEXT,\n"
"  name TEXT,\n"
"  old_name TEXT,\n"
"  service TEXT,\n"
"  modseq INTEGER NOT NULL DEFAULT 0\n"
");\n"
"CREATE INDEX journal_mailbox_uid ON journal (mailbox_guid, uid);\n"
"CREATE TABLE mailbox (\n"
"  guid TEXT PRIMARY KEY NOT NULL,\n"
"  name TEXT NOT NULL,\n"
"  uidvalidity INTEGER NOT NULL DEFAULT 0,\n"
"  witness_modseq INTEGER NOT NULL DEFAULT 0,\n"
"  witness_seq INTEGER NOT NULL DEFAULT 0,\n"
"  lost_acked INTEGER NOT NULL DEFAULT 0,\n"
"  deleted INTEGER NOT NULL DEFAULT 0\n"
");\n"
"CREATE TABLE seen (\n"
"  mailbox_guid TEXT NOT NULL,\n"
"  uidvalidity INTEGER NOT NULL,\n"
"  seen_uidnext INTEGER NOT NULL,\n"
"  seen_at INTEGER NOT NULL,\n"
"  seen_by TEXT NOT NULL,\n"
"  PRIMARY KEY (mailbox_guid, uidvalidity)\n"
");\n"
"CREATE TABLE destination (\n"
"  name TEXT PRIMARY KEY NOT NULL,\n"
"  checkpoint_seq INTEGER NOT NULL DEFAULT 0,\n"
"  last_pass INTEGER NOT NULL DEFAULT 0,\n"
"  phase TEXT NOT NULL DEFAULT 'none'\n"
");\n";

/* destination_mailbox: what a destination holds of each source mailbox
   after the last pass that completed it. src_uidnext: source UIDs below it
   were handled by a pass (a source mail below it that the destination
   lacks was deleted there). src_modseq/dst_modseq: both sides' highest
   modseq at the end of that pass, so a full comparison tells which side
   changed a message's flags since. raised_uidnext: the UIDNEXT the
   cutover raised the destination mailbox to before the switch; mail the
   destination got after the switch lies at or above it. lost_count: the
   source mailbox's count of commits the plugin could not journal, as of
   that pass. */
static const char mailbox_migrate_sql_schema_v2[] =
"CREATE TABLE destination_mailbox (\n"
"  destination TEXT NOT NULL,\n"
"  mailbox_guid TEXT NOT NULL,\n"
"  uidvalidity INTEGER NOT NULL,\n"
"  src_uidnext INTEGER NOT NULL DEFAULT 0,\n"
"  src_modseq INTEGER NOT NULL DEFAULT 0,\n"
"  dst_modseq INTEGER NOT NULL DEFAULT 0,\n"
"  raised_uidnext INTEGER NOT NULL DEFAULT 0,\n"
"  lost_count INTEGER NOT NULL DEFAULT 0,\n"
"  PRIMARY KEY (destination, mailbox_guid)\n"
");\n";

/* Every page a commit changes is a WAL frame (two writes) and most of the
   cost of a journal append, on the hot path of every delivery and flag
   change. Schema 3 makes an append change one page, the table's last leaf:
   - no AUTOINCREMENT (its sqlite_sequence row was a page per commit):
     seq is then MAX(seq) + 1, so the journal must never lose its newest
     entry. A trigger keeps it from any DELETE (pruning, a process of an
     earlier version still running, an administrator's sqlite3). A fully
     pruned journal of schema 2 gets a gap entry at the sequence it had
     reached, for the same reason.
   - only partial indexes, on expunges (a pass proving that every expunge
     the index shows was journaled) and on gaps (every pass asks for the
     last one); other entries don't touch them. Per mailbox lookups read
     the seq range after the mailbox's witness instead. */
static const char mailbox_migrate_sql_schema_v3[] =
"CREATE TABLE journal_v3 (\n"
"  seq INTEGER PRIMARY KEY,\n"
"  time INTEGER NOT NULL,\n"
"  type TEXT NOT NULL,\n"
"  mailbox_guid TEXT NOT NULL,\n"
"  uidvalidity INTEGER NOT NULL DEFAULT 0,\n"
"  uid INTEGER NOT NULL DEFAULT 0,\n"
"  message_guid TEXT,\n"
"  flags INTEGER,\n"
"  keywords TEXT,\n"
"  name TEXT,\n"
"  old_name TEXT,\n"
"  service TEXT,\n"
"  modseq INTEGER NOT NULL DEFAULT 0\n"
");\n"
"INSERT INTO journal_v3 SELECT seq, time, type, mailbox_guid, uidvalidity, "
"uid, message_guid, flags, keywords, name, old_name, service, modseq "
"FROM journal;\n"
"INSERT INTO journal_v3 (seq, time, type, mailbox_guid, name) "
"SELECT seq, CAST(strftime('%s', 'now') AS INTEGER), 'gap', '', "
"'entries up to this one were pruned before schema 3' "
"FROM sqlite_sequence WHERE name = 'journal' AND "
"seq > IFNULL((SELECT MAX(seq) FROM journal), 0);\n"
"DROP TABLE journal;\n"
"ALTER TABLE journal_v3 RENAME TO journal;\n"
/* A process of the previous version still running reads the journal's
   last seq from sqlite_sequence, whose row the DROP removed: it would read
   0 and record checkpoint 0 (the next pass a full one). The last seq of
   now only goes stale, which makes such a process's checkpoints and
   witnesses lag: later passes take more, nothing is missed. */
"INSERT INTO sqlite_sequence (name, seq) SELECT 'journal', seq "
"FROM journal ORDER BY seq DESC LIMIT 1;\n"
"CREATE INDEX journal_expunge ON journal (mailbox_guid, uid) "
"WHERE type = 'expunge';\n"
"CREATE INDEX journal_gap ON journal (seq) WHERE type = 'gap';\n"
"CREATE TRIGGER journal_keep_newest BEFORE DELETE ON journal "
"WHEN old.seq = (SELECT MAX(seq) FROM journal) "
"BEGIN SELECT RAISE(IGNORE); END;\n";

/* mailbox_proof: where `doveadm mailbox-migrate journal` last proved a
   mailbox's journal complete against its index (its highest modseq then,
   the journal's last seq read before that modseq, and the UIDs the
   mailbox had, as an IMAP sequence set). The next run proves from there,
   as a pass does from its checkpoint, instead of from the witness of
   later commits' entries; with the UIDs it tells what was expunged since
   even after the index has forgotten. */
static const char mailbox_migrate_sql_schema_v4[] =
"CREATE TABLE mailbox_proof (\n"
"  mailbox_guid TEXT PRIMARY KEY NOT NULL,\n"
"  uidvalidity INTEGER NOT NULL,\n"
"  modseq INTEGER NOT NULL,\n"
"  seq INTEGER NOT NULL,\n"
"  uids TEXT\n"
");\n";

const char *const mailbox_migrate_sql_upgrades[] = {
	mailbox_migrate_sql_schema_v1,
	mailbox_migrate_sql_schema_v2,
	mailbox_migrate_sql_schema_v3,
	mailbox_migrate_sql_schema_v4,
};

const char mailbox_migrate_sql_meta_get[] =
	"SELECT value FROM meta WHERE key = ?1";
const char mailbox_migrate_sql_meta_set[] =
	"INSERT INTO meta (key, value) VALUES (?1, ?2) "
	"ON CONFLICT (key) DO UPDATE SET value = excluded.value";

const char mailbox_migrate_sql_journal_insert[] =
	"INSERT INTO journal (time, type, mailbox_guid, uidvalidity, uid, "
	"message_guid, flags, keywords, name, old_name, service, modseq) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
const char mailbox_migrate_sql_journal_range[] =
	"SELECT MIN(seq), MAX(seq), COUNT(*) FROM journal";
const char mailbox_migrate_sql_journal_mailbox_range[] =
	"SELECT MIN(seq), MAX(seq), COUNT(*) FROM journal "
	"WHERE mailbox_guid = ?1";
const char mailbox_migrate_sql_journal_last_gap[] =
	"SELECT seq, name FROM journal WHERE type = 'gap' "
	"ORDER BY seq DESC LIMIT 1";
const char mailbox_migrate_sql_journal_iter[] =
	"SELECT seq, time, type, mailbox_guid, uidvalidity, uid, "
	"message_guid, flags, keywords, name, old_name, service, modseq "
	"FROM journal WHERE seq > ?1 ORDER BY seq";
const char mailbox_migrate_sql_journal_iter_mailbox[] =
	"SELECT seq, time, type, mailbox_guid, uidvalidity, uid, "
	"message_guid, flags, keywords, name, old_name, service, modseq "
	"FROM journal WHERE seq > ?1 AND (mailbox_guid = ?2 OR type = 'gap') "
	"ORDER BY seq";
const char mailbox_migrate_sql_journal_count_after[] =
	"SELECT COUNT(*) FROM journal WHERE seq > ?1";
/* the newest entry stays (journal_keep_newest): it holds the sequence
   the next entry follows */
const char mailbox_migrate_sql_journal_prune[] =
	"DELETE FROM journal WHERE seq <= ?1";
/* before pruning: keep the witness the dropped entries carried */
const char mailbox_migrate_sql_mailbox_fold_witness[] =
	"UPDATE mailbox SET "
	"witness_seq = CASE WHEN j.modseq > witness_modseq "
	"THEN ?1 ELSE witness_seq END, "
	"witness_modseq = MAX(witness_modseq, j.modseq) "
	"FROM (SELECT mailbox_guid, MAX(modseq) AS modseq FROM journal "
	"WHERE seq <= ?1 GROUP BY mailbox_guid) AS j "
	"WHERE mailbox.guid = j.mailbox_guid";
/* cheap bounds for pruning: seqs are dense but for rolled back inserts */
const char mailbox_migrate_sql_journal_bounds[] =
	"SELECT MIN(seq), MAX(seq) FROM journal";
const char mailbox_migrate_sql_journal_max_seq[] =
	"SELECT MAX(seq) FROM journal";

const char mailbox_migrate_sql_mailbox_upsert[] =
	"INSERT INTO mailbox (guid, name, uidvalidity, witness_modseq, "
	"witness_seq, deleted) VALUES (?1, ?2, ?3, ?4, ?5, 0) "
	"ON CONFLICT (guid) DO UPDATE SET "
	"name = CASE WHEN excluded.name = '' THEN name ELSE excluded.name END, "
	"uidvalidity = CASE WHEN excluded.uidvalidity = 0 THEN uidvalidity "
	"ELSE excluded.uidvalidity END, "
	"witness_seq = CASE WHEN excluded.witness_modseq > witness_modseq "
	"THEN excluded.witness_seq ELSE witness_seq END, "
	"witness_modseq = MAX(witness_modseq, excluded.witness_modseq), "
	"deleted = 0";
const char mailbox_migrate_sql_mailbox_deleted[] =
	"UPDATE mailbox SET deleted = 1 WHERE guid = ?1";
const char mailbox_migrate_sql_mailbox_get[] =
	"SELECT name, uidvalidity, witness_modseq, witness_seq, deleted, "
	"lost_acked FROM mailbox WHERE guid = ?1";
/* the entries' witness: highest modseq and the first entry that has it,
   among the entries after the mailbox record's witness_seq (those before
   it were folded into the record when pruned, or were older than the
   commit that set it) */
const char mailbox_migrate_sql_journal_witness[] =
	"SELECT modseq, seq FROM journal WHERE seq > ?2 AND "
	"mailbox_guid = ?1 ORDER BY modseq DESC, seq LIMIT 1";
const char mailbox_migrate_sql_journal_has_expunge[] =
	"SELECT 1 FROM journal WHERE mailbox_guid = ?1 AND uid = ?2 "
	"AND uidvalidity = ?3 AND type = 'expunge' LIMIT 1";
const char mailbox_migrate_sql_journal_changed_uids[] =
	"SELECT uid FROM journal WHERE seq > ?1 AND mailbox_guid = ?2 "
	"AND uidvalidity = ?3 AND type IN ('save', 'copy', 'flags', 'keywords')";
/* per UID, the highest modseq of its entries after seq ?1 and up to seq
   ?4: a change the index shows at a higher modseq came after every one
   of them */
const char mailbox_migrate_sql_journal_uid_modseqs[] =
	"SELECT uid, MAX(modseq) FROM journal WHERE seq > ?1 AND seq <= ?4 "
	"AND mailbox_guid = ?2 AND uidvalidity = ?3 AND "
	"type IN ('save', 'copy', 'flags', 'keywords') GROUP BY uid "
	"ORDER BY uid";
/* the modseq of the oldest commit the journal holds of the mailbox */
const char mailbox_migrate_sql_journal_first_modseq[] =
	"SELECT MIN(modseq) FROM journal WHERE mailbox_guid = ?1 AND "
	"uidvalidity = ?2 AND modseq > 0";
const char mailbox_migrate_sql_mailbox_proof_get[] =
	"SELECT uidvalidity, modseq, seq, uids FROM mailbox_proof "
	"WHERE mailbox_guid = ?1";
const char mailbox_migrate_sql_mailbox_proof_set[] =
	"INSERT INTO mailbox_proof (mailbox_guid, uidvalidity, modseq, seq, "
	"uids) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (mailbox_guid) DO "
	"UPDATE SET uidvalidity = excluded.uidvalidity, "
	"modseq = excluded.modseq, seq = excluded.seq, uids = excluded.uids";
/* the same up to seq, of commits the index made after modseq ?4 */
const char mailbox_migrate_sql_journal_changed_uids_upto[] =
	"SELECT uid FROM journal WHERE seq <= ?1 AND mailbox_guid = ?2 "
	"AND uidvalidity = ?3 AND type IN ('save', 'copy', 'flags', 'keywords') "
	"AND modseq > ?4";

const char mailbox_migrate_sql_seen_get[] =
	"SELECT seen_uidnext, seen_at, seen_by FROM seen "
	"WHERE mailbox_guid = ?1 AND uidvalidity = ?2";
const char mailbox_migrate_sql_seen_raise[] =
	"INSERT INTO seen (mailbox_guid, uidvalidity, seen_uidnext, seen_at, "
	"seen_by) VALUES (?1, ?2, ?3, ?4, ?5) "
	"ON CONFLICT (mailbox_guid, uidvalidity) DO UPDATE SET "
	"seen_uidnext = excluded.seen_uidnext, seen_at = excluded.seen_at, "
	"seen_by = excluded.seen_by "
	"WHERE excluded.seen_uidnext > seen.seen_uidnext";

/* a destination the user was migrated to for good no longer holds
   entries back */
const char mailbox_migrate_sql_destination_min_checkpoint[] =
	"SELECT MIN(checkpoint_seq) FROM destination WHERE phase != 'done'";
const char mailbox_migrate_sql_destination_get[] =
	"SELECT checkpoint_seq, last_pass, phase FROM destination "
	"WHERE name = ?1";
const char mailbox_migrate_sql_destination_list[] =
	"SELECT name, checkpoint_seq, last_pass, phase FROM destination "
	"ORDER BY name";
const char mailbox_migrate_sql_destination_set[] =
	"INSERT INTO destination (name, checkpoint_seq, last_pass, phase) "
	"VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE SET "
	"checkpoint_seq = excluded.checkpoint_seq, "
	"last_pass = excluded.last_pass, phase = excluded.phase";
const char mailbox_migrate_sql_destination_mailbox_get[] =
	"SELECT uidvalidity, src_uidnext, src_modseq, dst_modseq, "
	"raised_uidnext, lost_count FROM destination_mailbox "
	"WHERE destination = ?1 AND mailbox_guid = ?2";
const char mailbox_migrate_sql_destination_mailbox_set[] =
	"INSERT INTO destination_mailbox (destination, mailbox_guid, "
	"uidvalidity, src_uidnext, src_modseq, dst_modseq, raised_uidnext, "
	"lost_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
	"ON CONFLICT (destination, mailbox_guid) DO UPDATE SET "
	"uidvalidity = excluded.uidvalidity, "
	"src_uidnext = excluded.src_uidnext, "
	"src_modseq = excluded.src_modseq, dst_modseq = excluded.dst_modseq, "
	"raised_uidnext = excluded.raised_uidnext, "
	"lost_count = excluded.lost_count";
const char mailbox_migrate_sql_destination_mailbox_delete[] =
	"DELETE FROM destination_mailbox "
	"WHERE destination = ?1 AND mailbox_guid = ?2";
