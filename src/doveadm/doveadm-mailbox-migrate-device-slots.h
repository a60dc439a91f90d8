#ifndef DOVEADM_MAILBOX_MIGRATE_DEVICE_SLOTS_H
#define DOVEADM_MAILBOX_MIGRATE_DEVICE_SLOTS_H

#include <sys/types.h>

/* A bound on how many of the -A/-F workers work on users whose mail is on
   the same filesystem device at once (FastMail's feeders bounded theirs
   per drive unit): a small table in memory shared by the forked workers. */

struct mailbox_migrate_device_slots;

/* Make the table for this many workers before forking; per_device >= 1. */
struct mailbox_migrate_device_slots *
mailbox_migrate_device_slots_init(unsigned int workers,
				  unsigned int per_device);
void mailbox_migrate_device_slots_deinit(struct mailbox_migrate_device_slots **slots);

/* Take a slot on dev, waiting while per_device workers hold one (calling
   before_wait(context), if not NULL, once before it waits). Returns the
   number of milliseconds waited. */
unsigned int mailbox_migrate_device_slot_get(struct mailbox_migrate_device_slots *slots,
					     dev_t dev,
					     void (*before_wait)(void *context),
					     void *context);
void mailbox_migrate_device_slot_put(struct mailbox_migrate_device_slots *slots,
				     dev_t dev);

#endif
