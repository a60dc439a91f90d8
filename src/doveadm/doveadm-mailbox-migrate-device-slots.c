/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "sleep.h"
#include "doveadm-mailbox-migrate-device-slots.h"

#include <signal.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>

#define DEVICE_SLOT_POLL_MSECS 20

/* A slot held by a worker: the worker's pid, so that the slots of a
   worker that died (killed, crashed) are taken back instead of blocking
   every other worker on that device for ever. */
struct device_slot {
	pid_t pid;
	dev_t dev;
};

struct mailbox_migrate_device_slots {
	/* a spinlock holding its owner's pid (the table is touched for a
	   few instructions); a dead owner's lock is taken over */
	volatile pid_t lock;
	unsigned int per_device, max_slots;
	size_t size;
	struct device_slot slots[];
};

struct mailbox_migrate_device_slots *
mailbox_migrate_device_slots_init(unsigned int workers,
				  unsigned int per_device)
{
	struct mailbox_migrate_device_slots *slots;
	size_t size = sizeof(*slots) +
		sizeof(struct device_slot) * workers;

	i_assert(per_device > 0 && workers > 0);
	slots = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED)
		i_fatal("mmap(%zu) failed: %m", size);
	memset(slots, 0, size);
	slots->per_device = per_device;
	/* a worker holds at most one slot at a time */
	slots->max_slots = workers;
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

/* A worker that died stays a zombie until the parent reaps it at the end
   of the run, and kill(pid, 0) still succeeds then: ask /proc. */
static bool pid_is_alive(pid_t pid)
{
	char path[64], buf[256];
	const char *p;
	ssize_t ret;
	int fd;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return FALSE;
	i_snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY);
	if (fd == -1)
		return errno != ENOENT;
	ret = read(fd, buf, sizeof(buf) - 1);
	i_close_fd(&fd);
	if (ret <= 0)
		return TRUE;
	buf[ret] = '\0';
	/* "pid (comm) S ...": the state follows the last ')' */
	p = strrchr(buf, ')');
	return p == NULL || p[1] != ' ' || (p[2] != 'Z' && p[2] != 'X');
}

static void device_slots_lock(struct mailbox_migrate_device_slots *slots)
{
	pid_t owner, me = getpid();

	for (;;) {
		if (__sync_bool_compare_and_swap(&slots->lock, 0, me))
			return;
		owner = slots->lock;
		if (owner != 0 && !pid_is_alive(owner) &&
		    __sync_bool_compare_and_swap(&slots->lock, owner, me))
			return;
		i_sleep_msecs(1);
	}
}

static void device_slots_unlock(struct mailbox_migrate_device_slots *slots)
{
	__sync_lock_release(&slots->lock);
}

/* The slots held on dev; with reclaim, those of holders that died are freed
   first. *free_slot_r is a free slot: one slot per worker, and a worker
   asking holds none, so there is always one. */
static unsigned int
device_slots_count(struct mailbox_migrate_device_slots *slots, dev_t dev,
		   bool reclaim, struct device_slot **free_slot_r)
{
	unsigned int i, used = 0;

	*free_slot_r = NULL;
	for (i = 0; i < slots->max_slots; i++) {
		struct device_slot *slot = &slots->slots[i];

		if (reclaim && slot->pid != 0 && slot->dev == dev &&
		    !pid_is_alive(slot->pid))
			slot->pid = 0;
		if (slot->pid == 0) {
			if (*free_slot_r == NULL)
				*free_slot_r = slot;
		} else if (slot->dev == dev) {
			used++;
		}
	}
	i_assert(*free_slot_r != NULL);
	return used;
}

unsigned int mailbox_migrate_device_slot_get(struct mailbox_migrate_device_slots *slots,
					     dev_t dev,
					     void (*before_wait)(void *context),
					     void *context)
{
	struct device_slot *free_slot;
	unsigned int used, waited = 0;

	for (;;) {
		device_slots_lock(slots);
		used = device_slots_count(slots, dev, FALSE, &free_slot);
		/* a dead holder's slot is taken back only when it is in the
		   way: asking /proc is four system calls a holder, under the
		   lock every worker takes twice a user */
		if (used >= slots->per_device)
			used = device_slots_count(slots, dev, TRUE, &free_slot);
		if (used < slots->per_device) {
			free_slot->pid = getpid();
			free_slot->dev = dev;
			device_slots_unlock(slots);
			return waited;
		}
		device_slots_unlock(slots);
		if (waited == 0 && before_wait != NULL)
			before_wait(context);
		i_sleep_msecs(DEVICE_SLOT_POLL_MSECS);
		waited += DEVICE_SLOT_POLL_MSECS;
	}
}

void mailbox_migrate_device_slot_put(struct mailbox_migrate_device_slots *slots,
				     dev_t dev)
{
	pid_t me = getpid();
	unsigned int i;

	device_slots_lock(slots);
	for (i = 0; i < slots->max_slots; i++) {
		if (slots->slots[i].pid == me && slots->slots[i].dev == dev) {
			slots->slots[i].pid = 0;
			break;
		}
	}
	i_assert(i < slots->max_slots);
	device_slots_unlock(slots);
}
