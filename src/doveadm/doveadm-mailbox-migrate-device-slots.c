/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "sleep.h"
#include "doveadm-mailbox-migrate-device-slots.h"

#include <sys/mman.h>

#define DEVICE_SLOT_POLL_MSECS 20

struct device_slot {
	dev_t dev;
	unsigned int used;
};

struct mailbox_migrate_device_slots {
	/* a spinlock (the table is touched for a few instructions) */
	volatile int lock;
	unsigned int per_device, max_devices;
	size_t size;
	struct device_slot slots[];
};

struct mailbox_migrate_device_slots *
mailbox_migrate_device_slots_init(unsigned int max_devices,
				  unsigned int per_device)
{
	struct mailbox_migrate_device_slots *slots;
	size_t size = sizeof(*slots) +
		sizeof(struct device_slot) * max_devices;

	i_assert(per_device > 0 && max_devices > 0);
	slots = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED)
		i_fatal("mmap(%zu) failed: %m", size);
	memset(slots, 0, size);
	slots->per_device = per_device;
	slots->max_devices = max_devices;
	slots->size = size;
	return slots;
}

void mailbox_migrate_device_slots_deinit(struct mailbox_migrate_device_slots **_slots)
{
	struct mailbox_migrate_device_slots *slots = *_slots;

	*_slots = NULL;
	if (slots != NULL && munmap(slots, slots->size) < 0)
		i_error("munmap() failed: %m");
}

static void device_slots_lock(struct mailbox_migrate_device_slots *slots)
{
	while (!__sync_bool_compare_and_swap(&slots->lock, 0, 1))
		i_sleep_msecs(1);
}

static void device_slots_unlock(struct mailbox_migrate_device_slots *slots)
{
	__sync_lock_release(&slots->lock);
}

static struct device_slot *
device_slot_find(struct mailbox_migrate_device_slots *slots, dev_t dev)
{
	struct device_slot *free_slot = NULL;
	unsigned int i;

	for (i = 0; i < slots->max_devices; i++) {
		if (slots->slots[i].used > 0 && slots->slots[i].dev == dev)
			return &slots->slots[i];
		if (slots->slots[i].used == 0 && free_slot == NULL)
			free_slot = &slots->slots[i];
	}
	/* one entry per worker: there's always a free one */
	i_assert(free_slot != NULL);
	free_slot->dev = dev;
	return free_slot;
}

unsigned int mailbox_migrate_device_slot_get(struct mailbox_migrate_device_slots *slots,
					     dev_t dev)
{
	struct device_slot *slot;
	unsigned int waited = 0;

	for (;;) {
		device_slots_lock(slots);
		slot = device_slot_find(slots, dev);
		if (slot->used < slots->per_device) {
			slot->used++;
			device_slots_unlock(slots);
			return waited;
		}
		device_slots_unlock(slots);
		i_sleep_msecs(DEVICE_SLOT_POLL_MSECS);
		waited += DEVICE_SLOT_POLL_MSECS;
	}
}

void mailbox_migrate_device_slot_put(struct mailbox_migrate_device_slots *slots,
				     dev_t dev)
{
	struct device_slot *slot;

	device_slots_lock(slots);
	slot = device_slot_find(slots, dev);
	i_assert(slot->used > 0);
	slot->used--;
	device_slots_unlock(slots);
}
