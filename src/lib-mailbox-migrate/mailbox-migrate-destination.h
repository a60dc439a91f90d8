#ifndef MAILBOX_MIGRATE_DESTINATION_H
#define MAILBOX_MIGRATE_DESTINATION_H

struct mailbox_migrate_db;

ARRAY_DEFINE_TYPE(mailbox_migrate_destination,
		  struct mailbox_migrate_destination);

/* What the user's state file knows of each destination: how far in the
   journal it has been brought (its checkpoint), when, and where a cutover
   to it stands; and per mailbox, what the last pass left there. A
   destination is named by its expanded location. */

/* Phases, in the order a migration goes through them. A cutover records
   each step before it runs it, so that a rerun resumes there. */
#define MAILBOX_MIGRATE_PHASE_NONE "none"
#define MAILBOX_MIGRATE_PHASE_COPYING "copying"
#define MAILBOX_MIGRATE_PHASE_CUTOVER_HOLD "cutover:hold"
#define MAILBOX_MIGRATE_PHASE_CUTOVER_PASS "cutover:pass"
#define MAILBOX_MIGRATE_PHASE_CUTOVER_SWITCH "cutover:switch"
#define MAILBOX_MIGRATE_PHASE_CUTOVER_QUIET "cutover:quiet"
#define MAILBOX_MIGRATE_PHASE_CUTOVER_FINAL "cutover:final"
#define MAILBOX_MIGRATE_PHASE_DONE "done"

struct mailbox_migrate_destination {
	const char *name;
	/* Last journal seq the destination has taken; 0 = none yet (the
	   next pass compares in full). */
	uint64_t checkpoint_seq;
	time_t last_pass;
	const char *phase;
};

struct mailbox_migrate_destination_mailbox {
	uint32_t uidvalidity;
	/* Source UIDs below this were handled by a completed pass. */
	uint32_t src_uidnext;
	/* Both sides' highest modseq when that pass ended. */
	uint64_t src_modseq, dst_modseq;
	/* What the cutover raised the destination's UIDNEXT to before the
	   switch, 0 if it hasn't. */
	uint32_t raised_uidnext;
	/* The source mailbox's count of commits that could not be journaled
	   (its index extension), as of that pass. */
	uint32_t lost_count;
};

/* Returns 1 and the destination if known, 0 if not, -1 on error. Strings
   are allocated from the data stack. */
int mailbox_migrate_destination_get(struct mailbox_migrate_db *db,
				    const char *name,
				    struct mailbox_migrate_destination *dest_r,
				    const char **error_r);
/* Every destination, sorted by name; from the data stack. */
int mailbox_migrate_destination_list(struct mailbox_migrate_db *db,
		ARRAY_TYPE(mailbox_migrate_destination) *dests,
		const char **error_r);
/* Register or update a destination. A registered destination holds the
   journal entries it has not taken back from pruning until its phase is
   "done". */
int mailbox_migrate_destination_set(struct mailbox_migrate_db *db,
			const struct mailbox_migrate_destination *dest,
			const char **error_r);

/* Returns 1 and the record if there is one, 0 if not, -1 on error. */
int mailbox_migrate_destination_mailbox_get(struct mailbox_migrate_db *db,
		const char *dest_name, const char *mailbox_guid,
		struct mailbox_migrate_destination_mailbox *rec_r,
		const char **error_r);
int mailbox_migrate_destination_mailbox_set(struct mailbox_migrate_db *db,
		const char *dest_name, const char *mailbox_guid,
		const struct mailbox_migrate_destination_mailbox *rec,
		const char **error_r);
int mailbox_migrate_destination_mailbox_delete(struct mailbox_migrate_db *db,
		const char *dest_name, const char *mailbox_guid,
		const char **error_r);

/* TRUE if phase is one of the cutover steps. */
bool mailbox_migrate_phase_is_cutover(const char *phase);
/* TRUE if the logout hook keeps dest current: it had a first pass and is
   neither in a cutover nor done; else FALSE and why (data stack). */
bool mailbox_migrate_destination_is_routine(
	const struct mailbox_migrate_destination *dest, const char **reason_r);

#endif
