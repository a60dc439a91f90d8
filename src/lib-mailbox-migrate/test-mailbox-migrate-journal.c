/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "test-common.h"
#include "test-mailbox-migrate-dir.h"
#include "mailbox-migrate-db.h"
#include "mailbox-migrate-journal.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define GUID_A "0123456789abcdef0123456789abcdef"
#define GUID_B "fedcba9876543210fedcba9876543210"


static const char *test_db_path(const char *name)
{
	return t_strconcat(test_dir, "/", name, NULL);
}

static struct mailbox_migrate_db *test_db_open(const char *path)
{
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *error;

	if (mailbox_migrate_db_open(path, 0, 200, 0, &db, &code, &error) <= 0)
		i_fatal("open(%s): %s", path, error);
	return db;
}

static void
test_append(struct mailbox_migrate_db *db,
	    enum mailbox_migrate_journal_type type, const char *mailbox_guid,
	    uint32_t uid, uint64_t *seq_r)
{
	struct mailbox_migrate_journal_entry entry;
	const char *error;

	i_zero(&entry);
	entry.time = 1700000000;
	entry.type = type;
	entry.mailbox_guid = mailbox_guid;
	entry.uidvalidity = 1234;
	entry.uid = uid;
	entry.message_guid = "msgguid";
	entry.flags = MAIL_SEEN | MAIL_RECENT;
	entry.keywords = "$label1 work";
	entry.name = type == MAILBOX_MIGRATE_JOURNAL_TYPE_GAP ? "test" : NULL;
	entry.service = "imap";
	test_assert(mailbox_migrate_journal_append(db, &entry, &error) == 0);
	if (seq_r != NULL)
		*seq_r = entry.seq;
}

static void test_journal_type_names(void)
{
	enum mailbox_migrate_journal_type type, parsed;

	test_begin("journal type names");
	for (type = 0; type < MAILBOX_MIGRATE_JOURNAL_TYPE_COUNT; type++) {
		const char *name = mailbox_migrate_journal_type_name(type);

		test_assert_idx(mailbox_migrate_journal_type_parse(name,
								   &parsed),
				type);
		test_assert_idx(parsed == type, type);
	}
	test_assert(!mailbox_migrate_journal_type_parse("bogus", &parsed));
	test_end();
}

static void test_journal_open(void)
{
	struct mailbox_migrate_db *db;
	enum mailbox_migrate_db_error code;
	const char *path = test_db_path("open/sub/state.db");
	const char *error, *value;
	struct stat st;

	test_begin("journal open creates a private file");
	test_assert(mailbox_migrate_db_open(path,
			MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY, 100, 0,
			&db, &code, &error) == 0);
	test_assert(mailbox_migrate_db_open(path, 0, 100, 0, &db, &code,
					    &error) == 1);
	test_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	test_assert(mailbox_migrate_db_meta_get(db, "journal_id", &value,
						&error) == 1 &&
		    strlen(value) == 32);
	mailbox_migrate_db_close(&db);
	test_assert(db == NULL);
	test_assert(mailbox_migrate_db_open(path,
			MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY, 100, 0,
			&db, &code, &error) == 1);
	mailbox_migrate_db_close(&db);
	test_end();
}

#define TEST_OPEN_RACE_ROUNDS 10
#define TEST_OPEN_RACE_PROCESSES 4

/* Processes that meet a new state file at once (a session and a pass, the
   workers of one pass) all open it: none fails, and all see the one
   journal (the same journal_id, which each writes to ids[1]). */
static void test_journal_open_race(void)
{
	unsigned int round, i, failed = 0, mismatched = 0;
	int barrier[2], ids[2], status;
	pid_t pids[TEST_OPEN_RACE_PROCESSES];
	char id[32 * TEST_OPEN_RACE_PROCESSES + 1];
	ssize_t ret;

	test_begin("journal open of a new file by several processes at once");
	for (round = 0; round < TEST_OPEN_RACE_ROUNDS; round++) {
		const char *path = test_db_path(t_strdup_printf(
			"open-race-%u.db", round));
		const char *error, *journal_id = NULL, *value;
		struct mailbox_migrate_db *db;
		enum mailbox_migrate_db_error code;

		if (pipe(barrier) < 0 || pipe(ids) < 0)
			i_fatal("pipe() failed: %m");
		for (i = 0; i < TEST_OPEN_RACE_PROCESSES; i++) {
			if ((pids[i] = fork()) < 0)
				i_fatal("fork() failed: %m");
			if (pids[i] == 0) {
				char c;
				int ok;

				i_close_fd(&barrier[1]);
				i_close_fd(&ids[0]);
				/* returns at EOF: when the parent has
				   started them all */
				if (read(barrier[0], &c, 1) < 0)
					_exit(2);
				ok = mailbox_migrate_db_open(path, 0, 5000,
						0, &db, &code, &error);
				if (ok <= 0)
					i_error("open(%s): %s", path, error);
				else if (mailbox_migrate_db_meta_get(db,
						"journal_id", &value,
						&error) <= 0 ||
					 strlen(value) != 32 ||
					 write(ids[1], value, 32) != 32)
					ok = -1;
				mailbox_migrate_db_close(&db);
				_exit(ok > 0 ? 0 : 1);
			}
		}
		i_close_fd(&barrier[0]);
		i_close_fd(&barrier[1]);
		i_close_fd(&ids[1]);
		for (i = 0; i < TEST_OPEN_RACE_PROCESSES; i++) {
			if (waitpid(pids[i], &status, 0) < 0)
				i_fatal("waitpid() failed: %m");
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				failed++;
		}
		/* the children have exited: all they wrote is in the pipe */
		ret = read(ids[0], id, sizeof(id) - 1);
		i_close_fd(&ids[0]);
		db = test_db_open(path);
		test_assert_idx(mailbox_migrate_db_meta_get(db, "journal_id",
					&journal_id, &error) == 1 &&
				strlen(journal_id) == 32, round);
		mailbox_migrate_db_close(&db);
		if (ret != 32 * TEST_OPEN_RACE_PROCESSES)
			mismatched++;
		for (i = 0; ret > 0 && i < (unsigned int)ret / 32; i++) {
			if (journal_id == NULL ||
			    memcmp(id + i * 32, journal_id, 32) != 0)
				mismatched++;
		}
	}
	test_assert(failed == 0);
	test_assert(mismatched == 0);
	test_end();
}

static void test_journal_changed_uids_upto(void)
{
	static const uint64_t modseqs[] = { 5, 9, 7 };
	struct mailbox_migrate_db *db;
	struct mailbox_migrate_journal_entry entry;
	ARRAY_TYPE(seq_range) uids;
	const char *error;
	uint64_t seqs[N_ELEMENTS(modseqs)];
	unsigned int i;

	test_begin("journal changed uids up to a seq, after a modseq");
	db = test_db_open(test_db_path("upto.db"));
	for (i = 0; i < N_ELEMENTS(modseqs); i++) {
		i_zero(&entry);
		entry.time = 1700000000;
		entry.type = MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS;
		entry.mailbox_guid = GUID_A;
		entry.uidvalidity = 1234;
		entry.uid = i + 1;
		entry.modseq = modseqs[i];
		entry.service = "imap";
		test_assert(mailbox_migrate_journal_append(db, &entry,
							   &error) == 0);
		seqs[i] = entry.seq;
	}
	t_array_init(&uids, 4);
	/* a witness (6, seqs[2]): UIDs 2 and 3 are of commits after it */
	test_assert(mailbox_migrate_journal_get_changed_uids_upto(db, GUID_A,
			1234, seqs[2], 6, &uids, &error) == 0);
	test_assert(seq_range_count(&uids) == 2 &&
		    seq_range_exists(&uids, 2) && seq_range_exists(&uids, 3));
	array_clear(&uids);
	test_assert(mailbox_migrate_journal_get_changed_uids_upto(db, GUID_A,
			1234, seqs[1], 6, &uids, &error) == 0);
	test_assert(seq_range_count(&uids) == 1 &&
		    seq_range_exists(&uids, 2));
	array_clear(&uids);
	test_assert(mailbox_migrate_journal_get_changed_uids_upto(db, GUID_A,
			99, seqs[2], 0, &uids, &error) == 0);
	test_assert(array_count(&uids) == 0);
	test_assert(mailbox_migrate_journal_get_changed_uids_upto(db, GUID_B,
			1234, seqs[2], 0, &uids, &error) == 0);
	test_assert(array_count(&uids) == 0);
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_uid_modseqs_and_proof(void)
{
	static const struct {
		uint32_t uid;
		uint64_t modseq;
		uint32_t uidvalidity;
		enum mailbox_migrate_journal_type type;
	} entries[] = {
		{ 3, 8, 1234, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE },
		{ 1, 5, 1234, MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS },
		/* a delayed entry of an older commit of UID 3 */
		{ 3, 6, 1234, MAILBOX_MIGRATE_JOURNAL_TYPE_KEYWORDS },
		{ 1, 9, 1234, MAILBOX_MIGRATE_JOURNAL_TYPE_COPY },
		/* expunges, other UIDVALIDITYs don't count */
		{ 2, 10, 1234, MAILBOX_MIGRATE_JOURNAL_TYPE_EXPUNGE },
		{ 4, 11, 99, MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS },
		{ 5, 0, 1234, MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS },
	};
	ARRAY_TYPE(mailbox_migrate_journal_uid_modseq) uids;
	const struct mailbox_migrate_journal_uid_modseq *um;
	struct mailbox_migrate_journal_proof proof, proof2;
	struct mailbox_migrate_db *db;
	struct mailbox_migrate_journal_entry entry;
	const char *error;
	uint64_t seqs[N_ELEMENTS(entries)], modseq;
	unsigned int i;

	test_begin("journal highest modseq per UID, first modseq, proofs");
	db = test_db_open(test_db_path("proof.db"));
	for (i = 0; i < N_ELEMENTS(entries); i++) {
		i_zero(&entry);
		entry.time = 1700000000;
		entry.type = entries[i].type;
		entry.mailbox_guid = GUID_A;
		entry.uidvalidity = entries[i].uidvalidity;
		entry.uid = entries[i].uid;
		entry.modseq = entries[i].modseq;
		entry.service = "imap";
		test_assert(mailbox_migrate_journal_append(db, &entry,
							   &error) == 0);
		seqs[i] = entry.seq;
	}
	t_array_init(&uids, 4);
	test_assert(mailbox_migrate_journal_get_uid_modseqs(db, GUID_A, 1234,
			0, (uint64_t)-1, &uids, &error) == 0);
	test_assert(array_count(&uids) == 3);
	um = array_idx(&uids, 0);
	test_assert(um[0].uid == 1 && um[0].modseq == 9);
	test_assert(um[1].uid == 3 && um[1].modseq == 8);
	test_assert(um[2].uid == 5 && um[2].modseq == 0);
	/* only what lies after the seq: UID 3's delayed entry alone */
	array_clear(&uids);
	test_assert(mailbox_migrate_journal_get_uid_modseqs(db, GUID_A, 1234,
			seqs[1], (uint64_t)-1, &uids, &error) == 0);
	test_assert(array_count(&uids) == 3);
	um = array_idx(&uids, 0);
	test_assert(um[0].uid == 1 && um[0].modseq == 9);
	test_assert(um[1].uid == 3 && um[1].modseq == 6);
	/* and up to a seq: not UID 1's copy, nor what follows */
	array_clear(&uids);
	test_assert(mailbox_migrate_journal_get_uid_modseqs(db, GUID_A, 1234,
			0, seqs[2], &uids, &error) == 0);
	test_assert(array_count(&uids) == 2);
	um = array_idx(&uids, 0);
	test_assert(um[0].uid == 1 && um[0].modseq == 5);
	test_assert(um[1].uid == 3 && um[1].modseq == 8);
	array_clear(&uids);
	test_assert(mailbox_migrate_journal_get_uid_modseqs(db, GUID_B, 1234,
			0, (uint64_t)-1, &uids, &error) == 0);
	test_assert(array_count(&uids) == 0);

	test_assert(mailbox_migrate_journal_get_first_modseq(db, GUID_A, 1234,
			&modseq, &error) == 0 && modseq == 5);
	test_assert(mailbox_migrate_journal_get_first_modseq(db, GUID_A, 99,
			&modseq, &error) == 0 && modseq == 11);
	test_assert(mailbox_migrate_journal_get_first_modseq(db, GUID_B, 1234,
			&modseq, &error) == 0 && modseq == 0);

	test_assert(mailbox_migrate_journal_get_proof(db, GUID_A, &proof,
						      &error) == 0);
	proof.uidvalidity = 1234;
	proof.modseq = 11;
	proof.seq = seqs[6];
	test_assert(mailbox_migrate_journal_set_proof(db, GUID_A, &proof,
						      &error) == 0);
	test_assert(mailbox_migrate_journal_get_proof(db, GUID_A, &proof2,
						      &error) == 1);
	test_assert(proof2.uidvalidity == 1234 && proof2.modseq == 11 &&
		    proof2.seq == seqs[6] && proof2.uids == NULL);
	proof.uids = "";
	test_assert(mailbox_migrate_journal_set_proof(db, GUID_A, &proof,
						      &error) == 0);
	test_assert(mailbox_migrate_journal_get_proof(db, GUID_A, &proof2,
						      &error) == 1 &&
		    proof2.uids != NULL && proof2.uids[0] == '\0');
	proof.modseq = 12;
	proof.uids = "1,3:5";
	test_assert(mailbox_migrate_journal_set_proof(db, GUID_A, &proof,
						      &error) == 0);
	test_assert(mailbox_migrate_journal_get_proof(db, GUID_A, &proof2,
						      &error) == 1 &&
		    proof2.modseq == 12 && strcmp(proof2.uids, "1,3:5") == 0);
	test_assert(mailbox_migrate_journal_get_proof(db, GUID_B, &proof2,
						      &error) == 0);
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_append_iter(void)
{
	struct mailbox_migrate_db *db;
	struct mailbox_migrate_journal_iter *iter;
	const struct mailbox_migrate_journal_entry *e;
	struct mailbox_migrate_journal_range range;
	const char *error;
	ARRAY_TYPE(seq_range) uids;
	uint64_t seqs[5], last_seq = 0;
	unsigned int n;

	test_begin("journal append and iterate");
	db = test_db_open(test_db_path("append.db"));
	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A, 1, &seqs[0]);
	test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_B, 1, &seqs[1]);
	test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS, GUID_A, 1, &seqs[2]);
	test_assert(mailbox_migrate_db_commit(db, &error) == 0);

	/* a rolled back transaction leaves nothing, and its seq is reused
	   by nobody who could have seen it */
	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_EXPUNGE, GUID_A, 1, NULL);
	mailbox_migrate_db_rollback(db);

	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_GAP, "", 0, &seqs[3]);
	test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_EXPUNGE, GUID_B, 1,
		    &seqs[4]);
	test_assert(mailbox_migrate_db_commit(db, &error) == 0);
	for (n = 1; n < N_ELEMENTS(seqs); n++)
		test_assert_idx(seqs[n] > seqs[n-1], n);

	n = 0;
	iter = mailbox_migrate_journal_iter_init(db, 0, NULL);
	while (mailbox_migrate_journal_iter_next(iter, &e)) {
		test_assert_idx(n < N_ELEMENTS(seqs) && e->seq == seqs[n], n);
		test_assert_idx(e->seq > last_seq, n);
		last_seq = e->seq;
		n++;
	}
	test_assert(mailbox_migrate_journal_iter_deinit(&iter, &error) == 0);
	test_assert(n == 5);

	/* one mailbox: its own entries plus the gap */
	n = 0;
	iter = mailbox_migrate_journal_iter_init(db, seqs[0], GUID_A);
	while (mailbox_migrate_journal_iter_next(iter, &e)) {
		if (n == 0) {
			test_assert(e->seq == seqs[2]);
			test_assert(e->type == MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS);
			test_assert(e->flags == MAIL_SEEN);
			test_assert_strcmp(e->keywords, "$label1 work");
			test_assert_strcmp(e->message_guid, "msgguid");
			test_assert_strcmp(e->service, "imap");
			test_assert(e->uidvalidity == 1234 && e->uid == 1);
		} else {
			test_assert(e->type == MAILBOX_MIGRATE_JOURNAL_TYPE_GAP);
			test_assert(e->message_guid != NULL);
		}
		n++;
	}
	test_assert(mailbox_migrate_journal_iter_deinit(&iter, &error) == 0);
	test_assert(n == 2);

	test_assert(mailbox_migrate_journal_get_range(db, GUID_B, &range,
						      &error) == 0);
	test_assert(range.first_seq == seqs[1] && range.last_seq == seqs[4] &&
		    range.entries == 2);

	test_assert(mailbox_migrate_journal_has_expunge(db, GUID_B, 1234, 1,
							&error) == 1);
	test_assert(mailbox_migrate_journal_has_expunge(db, GUID_A, 1234, 1,
							&error) == 0);
	test_assert(mailbox_migrate_journal_has_expunge(db, GUID_B, 99, 1,
							&error) == 0);
	t_array_init(&uids, 4);
	test_assert(mailbox_migrate_journal_get_changed_uids(db, GUID_A, 1234,
			seqs[1], &uids, &error) == 0);
	test_assert(seq_range_count(&uids) == 1 &&
		    seq_range_exists(&uids, 1));
	array_clear(&uids);
	test_assert(mailbox_migrate_journal_get_changed_uids(db, GUID_A, 1234,
			seqs[2], &uids, &error) == 0);
	test_assert(array_count(&uids) == 0);
	test_assert(mailbox_migrate_journal_get_changed_uids(db, GUID_A, 99,
			0, &uids, &error) == 0);
	test_assert(array_count(&uids) == 0);
	test_assert(mailbox_migrate_journal_get_changed_uids(db, GUID_B, 1234,
			0, &uids, &error) == 0);
	test_assert(seq_range_count(&uids) == 1 &&
		    seq_range_exists(&uids, 1));
	/* after GUID_B's save only its expunge: not a change of a mail */
	array_clear(&uids);
	test_assert(mailbox_migrate_journal_get_changed_uids(db, GUID_B, 1234,
			seqs[1], &uids, &error) == 0);
	test_assert(array_count(&uids) == 0);
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_gap_and_prune(void)
{
	struct mailbox_migrate_db *db;
	struct mailbox_migrate_journal_completeness c;
	struct mailbox_migrate_journal_range range;
	const char *error;
	uint64_t seq, gap_seq, last_seq;
	unsigned int i;

	test_begin("journal completeness: gaps and pruning");
	db = test_db_open(test_db_path("prune.db"));
	test_assert(mailbox_migrate_journal_check(db, &c, &error) == 0);
	test_assert(c.incomplete_since == 0 && c.reason == NULL);

	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	for (i = 0; i < 10; i++)
		test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A,
			    i + 1, &seq);
	test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_GAP, "", 0, &gap_seq);
	test_assert(mailbox_migrate_db_commit(db, &error) == 0);
	test_assert(mailbox_migrate_journal_check(db, &c, &error) == 0);
	test_assert(c.incomplete_since == gap_seq);
	test_assert(strstr(c.reason, "test") != NULL);

	/* a destination that took up to seq 5: entries up to 5 go, and the
	   journal stays as complete as it was */
	test_assert(mailbox_migrate_db_exec(db,
		"INSERT INTO destination (name, checkpoint_seq) "
		"VALUES ('maildir:/x', 5)", &error) == 0);
	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	test_assert(mailbox_migrate_journal_prune(db, 100, &error) == 0);
	test_assert(mailbox_migrate_db_commit(db, &error) == 0);
	test_assert(mailbox_migrate_journal_get_range(db, NULL, &range,
						      &error) == 0);
	test_assert(range.first_seq == 6 && range.entries == 6);
	test_assert(mailbox_migrate_journal_check(db, &c, &error) == 0);
	test_assert(c.incomplete_since == gap_seq);

	/* the size bound drops more and says since when */
	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	for (i = 0; i < 30; i++)
		test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A,
			    100 + i, &seq);
	test_assert(mailbox_migrate_journal_prune(db, 10, &error) == 0);
	test_assert(mailbox_migrate_db_commit(db, &error) == 0);
	test_assert(mailbox_migrate_journal_get_range(db, NULL, &range,
						      &error) == 0);
	test_assert(range.entries == 9 && range.last_seq == seq);
	test_assert(mailbox_migrate_journal_check(db, &c, &error) == 0);
	test_assert(c.incomplete_since == range.first_seq - 1);
	test_assert(strstr(c.reason, "size bound") != NULL);

	/* sequence numbers are never given twice, even when every
	   destination took everything: pruning keeps the newest entry */
	test_assert(mailbox_migrate_db_exec(db, t_strdup_printf(
		"UPDATE destination SET checkpoint_seq = %llu",
		(unsigned long long)seq), &error) == 0);
	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	test_assert(mailbox_migrate_journal_prune(db, 100, &error) == 0);
	test_assert(mailbox_migrate_db_commit(db, &error) == 0);
	test_assert(mailbox_migrate_journal_get_range(db, NULL, &range,
						      &error) == 0);
	test_assert(range.entries == 1 && range.first_seq == seq &&
		    range.last_seq == seq);
	test_assert(mailbox_migrate_journal_get_last_seq(db, &last_seq,
							 &error) == 0);
	test_assert(last_seq == seq);
	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE, GUID_A, 1, &seq);
	test_assert(mailbox_migrate_db_commit(db, &error) == 0);
	test_assert(seq == last_seq + 1);
	/* nor when something else empties the journal */
	test_assert(mailbox_migrate_db_exec(db, "DELETE FROM journal",
					    &error) == 0);
	test_assert(mailbox_migrate_journal_get_last_seq(db, &last_seq,
							 &error) == 0);
	test_assert(last_seq == seq);

	test_assert(mailbox_migrate_journal_prune_due_between(255, 256,
							      500000));
	test_assert(mailbox_migrate_journal_prune_due_between(200, 300,
							      500000));
	test_assert(!mailbox_migrate_journal_prune_due_between(256, 257,
							       500000));
	test_assert(!mailbox_migrate_journal_prune_due_between(257, 511,
							       500000));
	test_assert(mailbox_migrate_journal_prune_due_between(2, 3, 4));
	test_assert(mailbox_migrate_journal_prune_due_between(29, 30, 100));
	test_assert(!mailbox_migrate_journal_prune_due_between(30, 31, 100));
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_check_index(void)
{
	static const struct {
		bool known;
		uint32_t known_uidvalidity;
		uint64_t witness;
		uint32_t index_uidvalidity;
		uint64_t index_modseq;
		enum mailbox_migrate_journal_index_check result;
	} tests[] = {
		/* unknown empty mailbox, unknown mailbox with history */
		{ FALSE, 0, 0, 5, 1, MAILBOX_MIGRATE_JOURNAL_INDEX_COMPLETE },
		{ FALSE, 0, 0, 5, 7, MAILBOX_MIGRATE_JOURNAL_INDEX_INCOMPLETE },
		/* journal saw everything, or more (concurrent writer) */
		{ TRUE, 5, 10, 5, 10, MAILBOX_MIGRATE_JOURNAL_INDEX_COMPLETE },
		{ TRUE, 5, 12, 5, 10, MAILBOX_MIGRATE_JOURNAL_INDEX_COMPLETE },
		/* index has changes after the witness: check them */
		{ TRUE, 5, 10, 5, 11,
		  MAILBOX_MIGRATE_JOURNAL_INDEX_CHECK_CHANGES },
		/* UIDVALIDITY changed behind the journal's back */
		{ TRUE, 5, 10, 6, 10, MAILBOX_MIGRATE_JOURNAL_INDEX_INCOMPLETE },
		/* uidvalidity not yet known */
		{ TRUE, 0, 10, 6, 10, MAILBOX_MIGRATE_JOURNAL_INDEX_COMPLETE },
	};
	struct mailbox_migrate_journal_mailbox known;
	struct mailbox_migrate_journal_completeness c;
	enum mailbox_migrate_journal_index_check result;
	const char *reason;
	unsigned int i;

	test_begin("journal cross-check against the index");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		i_zero(&known);
		known.uidvalidity = tests[i].known_uidvalidity;
		known.witness_modseq = tests[i].witness;
		result = mailbox_migrate_journal_check_index(
			tests[i].known ? &known : NULL,
			tests[i].index_uidvalidity, tests[i].index_modseq,
			&reason);
		test_assert_idx(result == tests[i].result, i);
		test_assert_idx((reason != NULL) ==
			(result == MAILBOX_MIGRATE_JOURNAL_INDEX_INCOMPLETE), i);
	}
	/* incompleteness found in the index concerns every reader */
	i_zero(&c);
	mailbox_migrate_journal_set_incomplete(&c, 41, "lost");
	test_assert(c.incomplete_since == 42);
	test_assert_strcmp(c.reason, "lost");
	/* a later known gap stays */
	c.incomplete_since = 50;
	c.reason = "gap";
	mailbox_migrate_journal_set_incomplete(&c, 41, "lost");
	test_assert(c.incomplete_since == 50);
	test_end();
}

static void test_journal_mailbox(void)
{
	struct mailbox_migrate_db *db;
	struct mailbox_migrate_journal_mailbox mbox;
	const char *error;

	test_begin("journal mailbox records");
	db = test_db_open(test_db_path("mailbox.db"));
	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_A, &mbox,
							&error) == 0);
	test_assert(mailbox_migrate_journal_update_mailbox(db, GUID_A,
			"Work/2026", 77, 10, 3, &error) == 0);
	/* the witness never goes down, and its seq moves only with it;
	   an empty name keeps the old one */
	test_assert(mailbox_migrate_journal_update_mailbox(db, GUID_A,
			"", 0, 4, 5, &error) == 0);
	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_A, &mbox,
							&error) == 1);
	test_assert_strcmp(mbox.name, "Work/2026");
	test_assert(mbox.uidvalidity == 77 && mbox.witness_modseq == 10);
	test_assert(mbox.witness_seq == 3);
	test_assert(mailbox_migrate_journal_update_mailbox(db, GUID_A,
			"", 0, 11, 6, &error) == 0);
	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_A, &mbox,
							&error) == 1);
	test_assert(mbox.witness_modseq == 11 && mbox.witness_seq == 6);

	/* entries carry the modseq of their commit: the witness is the
	   highest, with the first seq that has it, among the entries after
	   the record's witness seq (6: other mailboxes' entries first) */
	{
		struct mailbox_migrate_journal_entry e;
		unsigned int i;

		test_assert(mailbox_migrate_db_begin(db, &error) == 0);
		for (i = 0; i < 6; i++)
			test_append(db, MAILBOX_MIGRATE_JOURNAL_TYPE_SAVE,
				    GUID_B, i + 1, NULL);
		for (i = 0; i < 3; i++) {
			i_zero(&e);
			e.type = MAILBOX_MIGRATE_JOURNAL_TYPE_FLAGS;
			e.mailbox_guid = GUID_A;
			e.uid = i + 1;
			e.modseq = i < 2 ? 20 : 15;
			test_assert(mailbox_migrate_journal_append(db, &e,
								   &error) == 0);
		}
		test_assert(mailbox_migrate_db_commit(db, &error) == 0);
		test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_A,
				&mbox, &error) == 1);
		test_assert(mbox.witness_modseq == 20);
		test_assert(mbox.witness_seq == 7);
		/* pruning keeps the witness the entries had */
		test_assert(mailbox_migrate_db_begin(db, &error) == 0);
		test_assert(mailbox_migrate_db_exec(db,
			"INSERT INTO destination (name, checkpoint_seq) "
			"VALUES ('x', 9)", &error) == 0);
		test_assert(mailbox_migrate_journal_prune(db, 100,
							  &error) == 0);
		test_assert(mailbox_migrate_db_commit(db, &error) == 0);
		test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_A,
				&mbox, &error) == 1);
		test_assert(mbox.witness_modseq == 20);
		test_assert(mbox.witness_seq == 9);
	}
	test_assert(!mbox.deleted);
	test_assert(mailbox_migrate_journal_mark_deleted(db, GUID_A,
							 &error) == 0);
	test_assert(mailbox_migrate_journal_get_mailbox(db, GUID_A, &mbox,
							&error) == 1);
	test_assert(mbox.deleted);
	mailbox_migrate_db_close(&db);
	test_end();
}

static void test_journal_bad_files(void)
{
	struct mailbox_migrate_db *db, *db2;
	enum mailbox_migrate_db_error code;
	const char *path = test_db_path("corrupt.db"), *new_path, *error;
	struct stat st;
	int fd;

	test_begin("journal state file corrupt, newer or locked");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	test_assert(fd != -1);
	test_assert(write(fd, "this is not sqlite at all, not at all.....",
			  42) == 42);
	i_close_fd(&fd);
	test_assert(mailbox_migrate_db_open(path, 0, 100, 0, &db, &code,
					    &error) == -1);
	test_assert(code == MAILBOX_MIGRATE_DB_ERROR_CORRUPT);
	test_assert(mailbox_migrate_db_open(path,
			MAILBOX_MIGRATE_DB_OPEN_FLAG_READONLY, 100, 0,
			&db, &code, &error) == -1);
	test_assert(code == MAILBOX_MIGRATE_DB_ERROR_CORRUPT);
	test_assert(mailbox_migrate_db_move_aside(path, &new_path,
						  &error) == 0);
	test_assert(stat(new_path, &st) == 0 && st.st_size == 42);
	test_assert(mailbox_migrate_db_open(path, 0, 100, 0, &db, &code,
					    &error) == 1);

	/* another writer holds the lock past the timeout */
	test_assert(mailbox_migrate_db_open(path, 0, 100, 0, &db2, &code,
					    &error) == 1);
	test_assert(mailbox_migrate_db_begin(db2, &error) == 0);
	test_assert(mailbox_migrate_db_begin(db, &error) == -1);
	test_assert(mailbox_migrate_db_get_error(db) ==
		    MAILBOX_MIGRATE_DB_ERROR_LOCKED);
	mailbox_migrate_db_rollback(db2);
	test_assert(mailbox_migrate_db_begin(db, &error) == 0);
	mailbox_migrate_db_rollback(db);

	test_assert(mailbox_migrate_db_exec(db2, "PRAGMA user_version = 99",
					    &error) == 0);
	mailbox_migrate_db_close(&db2);
	mailbox_migrate_db_close(&db);
	test_assert(mailbox_migrate_db_open(path, 0, 100, 0, &db, &code,
					    &error) == -1);
	test_assert(code == MAILBOX_MIGRATE_DB_ERROR_VERSION);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_journal_type_names,
		test_journal_open,
		test_journal_open_race,
		test_journal_append_iter,
		test_journal_changed_uids_upto,
		test_journal_uid_modseqs_and_proof,
		test_journal_gap_and_prune,
		test_journal_check_index,
		test_journal_mailbox,
		test_journal_bad_files,
		NULL
	};
	return test_run_in_dir("mailbox-migrate-journal", test_functions);
}
