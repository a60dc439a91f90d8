/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "test-common.h"
#include "doveadm-mailbox-migrate-device-slots.h"

#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

/* every wait below is bounded: a hang fails the test instead */
#define TEST_ALARM_SECS 10

static pid_t test_child_take(struct mailbox_migrate_device_slots *slots,
			     dev_t dev, bool put, int fds[2])
{
	pid_t pid;
	char c = 'x';

	if (pipe(fds) < 0)
		i_fatal("pipe() failed: %m");
	pid = fork();
	if (pid < 0)
		i_fatal("fork() failed: %m");
	if (pid == 0) {
		(void)mailbox_migrate_device_slot_get(slots, dev, NULL, NULL);
		if (write(fds[1], &c, 1) != 1)
			_exit(2);
		if (put)
			mailbox_migrate_device_slot_put(slots, dev);
		else
			pause();
		_exit(0);
	}
	/* wait until the child holds its slot */
	if (read(fds[0], &c, 1) != 1)
		i_fatal("read(pipe) failed: %m");
	return pid;
}

static unsigned int test_waits;
static pid_t test_wait_kill;

static void test_no_wait(void *context ATTR_UNUSED)
{
	test_assert(FALSE);
}

static void test_kill_holder(void *context ATTR_UNUSED)
{
	test_waits++;
	test_assert(kill(test_wait_kill, SIGKILL) == 0);
}

static void test_device_slots_bound(void)
{
	struct mailbox_migrate_device_slots *slots;
	int fds[2], status;
	pid_t pid;

	test_begin("device slots: a bound per device, others free");
	alarm(TEST_ALARM_SECS);
	slots = mailbox_migrate_device_slots_init(3, 1);
	pid = test_child_take(slots, 1, FALSE, fds);
	/* another device is not held back */
	test_assert(mailbox_migrate_device_slot_get(slots, 2, test_no_wait,
						    NULL) == 0);
	mailbox_migrate_device_slot_put(slots, 2);
	/* the child holds device 1's only slot: the waiter is told once
	   before it waits; kill the child then and the slot comes back, even
	   before the child is reaped (a zombie) */
	test_waits = 0;
	test_wait_kill = pid;
	test_assert(mailbox_migrate_device_slot_get(slots, 1, test_kill_holder,
						    NULL) > 0);
	test_assert(test_waits == 1);
	mailbox_migrate_device_slot_put(slots, 1);
	test_assert(waitpid(pid, &status, 0) == pid);
	i_close_fd(&fds[0]);
	i_close_fd(&fds[1]);

	/* a child that puts its slot back frees it too */
	pid = test_child_take(slots, 1, TRUE, fds);
	test_assert(waitpid(pid, &status, 0) == pid &&
		    WIFEXITED(status) && WEXITSTATUS(status) == 0);
	test_assert(mailbox_migrate_device_slot_get(slots, 1, NULL, NULL) == 0);
	mailbox_migrate_device_slot_put(slots, 1);
	i_close_fd(&fds[0]);
	i_close_fd(&fds[1]);
	mailbox_migrate_device_slots_deinit(&slots);
	alarm(0);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_device_slots_bound,
		NULL
	};
	return test_run(test_functions);
}
