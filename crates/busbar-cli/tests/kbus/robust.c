/*
 * robust.c: the preload library under careless and hostile use (each case
 * was found by a review of the emulation): fork, fclose, huge counts, bad
 * pointers, epoll edge cases, closing tricks.
 *
 * Build: cc -std=gnu11 -Wall -Wextra -Werror -O1 -pthread -o robust robust.c
 * Run:   busbar kbus [--socket PATH] -- ./robust
 *
 * Same conventions as abi.c: "FAIL <what>: ..." per failure, then "ok N
 * checks" (exit 0) or "FAILED F of N checks" (exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kbus_test.h"

/* Pointers and sizes the compiler must not see through (it would refuse
 * the deliberately bad calls). */
static volatile uintptr_t bad_addr = 8, one_addr = 1;
static volatile size_t huge = (size_t)1 << 40;
static volatile int many_events = INT32_MAX;
#define BAD(type) ((type)bad_addr)
#define ONE(type) ((type)one_addr)

/* CPU seconds this process has used (busy loops show up here). */
static double cpu_seconds(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
	       (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

/* A child made by fork opens, uses and closes its own Ksocks while the
 * parent keeps one open (the child must not share the parent's daemon
 * connection), several children at once. */
static void test_fork_children_open_their_own(void)
{
	int parent = kopen(0, O_RDWR);
	pid_t kids[4];
	for (int i = 0; i < 4; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			for (int j = 0; j < 50; j++) {
				struct stat st;
				int k = open("/dev/kbus0", O_RDWR);
				if (k < 0 || stat("/dev/kbus0", &st) != 0 || ksock_id(k) == 0)
					_exit(1);
				close(k);
			}
			_exit(0);
		}
	}
	for (int i = 0; i < 4; i++) {
		int status = 0;
		waitpid(kids[i], &status, 0);
		check_true("a forked child opens and closes its own Ksocks",
			   WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit 0");
	}
	check_true("the parent's Ksock still works", ksock_id(parent) != 0, "an id");
	close(parent);
}

/* fclose of an fopen'ed Ksock releases it: the next file on that fd
 * number is an ordinary file. */
static void test_fclose(void)
{
	FILE *f = fopen("/dev/kbus0", "r+");
	check_true("fopen /dev/kbus0", f != NULL, "a stream");
	if (!f)
		return;
	check_true("ioctl on fileno(stream)", ksock_id(fileno(f)) != 0, "an id");
	fclose(f);
	char path[] = "/tmp/busbar-robust-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	check_eq("write to the file that reuses the fd number", write(fd, "hello\n", 6), 6);
	check_eq("it is an ordinary file again", lseek(fd, 0, SEEK_SET), 0);
	char buf[8] = {0};
	check_eq("and reads back", read(fd, buf, sizeof buf), 6);
	close(fd);
}

/* A huge count copies only what the message can take. */
static void test_huge_counts(void)
{
	int k = kopen(0, O_RDWR);
	char buf[16] = {0};
	EXPECT_ERR("write of 2^40 bytes (a bad header first)", write(k, buf, huge), EINVAL);
	struct iovec iov = {buf, SIZE_MAX / 2};
	EXPECT_ERR("writev of a huge iovec", writev(k, &iov, 1), EINVAL);
	close(k);
}

/* A child that never opens a Ksock sees glibc's answers to bad pointers
 * (EFAULT), not a crash. */
static void test_bad_pointers_untouched(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		int p[2];
		if (pipe(p) != 0)
			_exit(3);
		struct timeval tv = {0, 0};
		errno = 0;
		int a = select(p[0] + 1, ONE(fd_set *), NULL, NULL, &tv);
		int ea = errno;
		errno = 0;
		int b = poll(ONE(struct pollfd *), 1, 0);
		int eb = errno;
		errno = 0;
		int c = open(ONE(const char *), O_RDONLY);
		int ec = errno;
		_exit(a == -1 && ea == EFAULT && b == -1 && eb == EFAULT && c == -1 && ec == EFAULT ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	check_true("bad pointers give EFAULT (select, poll, open)",
		   WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit 0, no signal");
}

/* With Ksocks open, bad pointers in our own paths give EFAULT too. */
static void test_bad_pointers_with_ksocks(void)
{
	int k = kopen(0, O_RDWR);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	EXPECT_OK("epoll_ctl ADD", epoll_ctl(ep, EPOLL_CTL_ADD, k, &ev));
	EXPECT_ERR("epoll_ctl MOD with a bad event", epoll_ctl(ep, EPOLL_CTL_MOD, k, BAD(struct epoll_event *)), EFAULT);
	EXPECT_ERR("stat into a bad buffer", stat("/dev/kbus0", BAD(struct stat *)), EFAULT);
	EXPECT_ERR("poll of a bad array", poll(BAD(struct pollfd *), 1, 0), EFAULT);
	EXPECT_ERR("epoll_wait with maxevents past the kernel's limit",
		   epoll_wait(ep, &ev, many_events, 0), EINVAL);
	close(ep);
	/* NEXTMSG with a bad length pointer loses no message. */
	int s = kopen(0, O_RDWR);
	const char *name = nm("Keep");
	EXPECT_OK("bind", kbind(k, name, 0));
	EXPECT_OK("send", send_msg(s, name, "x", 0, 0, NULL));
	EXPECT_ERR("NEXTMSG into a bad pointer", ioctl(k, KB_IOC_NEXTMSG, BAD(void *)), EFAULT);
	check_eq("the message is still queued", nummsgs(k), 1);
	/* A write from a bad buffer leaves no partial message behind. */
	struct kb_header h = kb_header_for(strlen(name), 1, 0);
	uint8_t msg[1200];
	size_t len = kb_build_entire(msg, &h, name, "d");
	check_eq("first part of a message", write(s, msg, 40), 40);
	EXPECT_ERR("the rest from a bad buffer", write(s, BAD(const void *), len - 40), EFAULT);
	uint32_t id[2];
	EXPECT_ERR("nothing left to send", ioctl(s, KB_IOC_SEND, id), ENOMSG);
	close(s);
	close(k);
}

/* EPOLLET in the usual loop (wait, drain, wait): each arrival is an edge. */
static void test_epollet_loop(void)
{
	int k = kopen(0, O_RDWR), s = kopen(0, O_RDWR);
	const char *name = nm("ET");
	EXPECT_OK("bind", kbind(k, name, 0));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET}, out[2];
	EXPECT_OK("add EPOLLET", epoll_ctl(ep, EPOLL_CTL_ADD, k, &ev));
	for (int round = 0; round < 3; round++) {
		EXPECT_OK("send", send_msg(s, name, "x", 0, 0, NULL));
		check_eq("each arrival is reported", epoll_wait(ep, out, 2, 10000), 1);
		uint32_t len;
		while (u32_ioctl(k, KB_IOC_NEXTMSG, 0, &len) == 1)
			;
		check_eq("and only once", epoll_wait(ep, out, 2, 0), 0);
	}
	close(ep);
	close(s);
	close(k);
}

/* A disarmed EPOLLONESHOT Ksock, and a closed Ksock whose dup lives, do not
 * make epoll_wait spin. */
static void test_epoll_no_busy_loop(void)
{
	int k = kopen(0, O_RDWR), s = kopen(0, O_RDWR);
	const char *name = nm("Spin");
	EXPECT_OK("bind", kbind(k, name, 0));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT}, out[2];
	EXPECT_OK("add ONESHOT", epoll_ctl(ep, EPOLL_CTL_ADD, k, &ev));
	EXPECT_OK("send", send_msg(s, name, "x", 0, 0, NULL));
	check_eq("reported once", epoll_wait(ep, out, 2, 10000), 1);
	EXPECT_OK("send again", send_msg(s, name, "y", 0, 0, NULL));
	double c0 = cpu_seconds();
	check_eq("not again while disarmed", epoll_wait(ep, out, 2, 300), 0);
	double used = cpu_seconds() - c0;
	check_true("waiting disarmed costs no CPU", used < 0.15, "under 0.15 s of CPU in a 0.3 s wait");
	ev.events = EPOLLIN;
	EXPECT_OK("re-arm with MOD", epoll_ctl(ep, EPOLL_CTL_MOD, k, &ev));
	check_eq("reported after MOD", epoll_wait(ep, out, 2, 10000), 1);
	/* Close the registered fd, keep the Ksock through a dup. */
	int d = dup(k);
	close(k);
	EXPECT_OK("send to the dup'd Ksock", send_msg(s, name, "z", 0, 0, NULL));
	c0 = cpu_seconds();
	epoll_wait(ep, out, 2, 300);
	used = cpu_seconds() - c0;
	check_true("a closed fd's registration costs no CPU", used < 0.15, "under 0.15 s of CPU");
	check_true("the dup still works", ksock_id(d) != 0, "an id");
	close(ep);
	close(d);
	close(s);
}

/* close_range over an epoll set forgets it: a new epoll fd on that number
 * reports only its own fds. */
static void test_close_range_epoll(void)
{
	int k = kopen(0, O_RDWR), s = kopen(0, O_RDWR);
	const char *name = nm("CR");
	EXPECT_OK("bind", kbind(k, name, 0));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1111}, out[2];
	EXPECT_OK("add", epoll_ctl(ep, EPOLL_CTL_ADD, k, &ev));
	check_eq("close_range over the set", close_range((unsigned)ep, (unsigned)ep, 0), 0);
	int ep2 = epoll_create1(EPOLL_CLOEXEC);
	check_eq("the new set gets the same number", ep2, ep);
	EXPECT_OK("send", send_msg(s, name, "x", 0, 0, NULL));
	check_eq("the new set reports nothing of the old", epoll_wait(ep2, out, 2, 0), 0);
	close(ep2);
	close(s);
	close(k);
}

/* open flags: O_NONBLOCK is remembered; a device is not a directory. */
static void test_open_flags(void)
{
	int k = open("/dev/kbus0", O_RDWR | O_NONBLOCK);
	check_true("open O_NONBLOCK", k >= 0, "an fd");
	check_true("F_GETFL shows O_NONBLOCK", (fcntl(k, F_GETFL) & O_NONBLOCK) != 0, "set");
	close(k);
	errno = 0;
	check_true("open O_DIRECTORY: ENOTDIR", open("/dev/kbus0", O_RDONLY | O_DIRECTORY) == -1 && errno == ENOTDIR, "ENOTDIR");
	errno = 0;
	check_true("open /dev/kbus0/: ENOTDIR", open("/dev/kbus0/", O_RDONLY) == -1 && errno == ENOTDIR, "ENOTDIR");
	struct stat st;
	errno = 0;
	check_true("stat /dev/kbus0/.: ENOTDIR", stat("/dev/kbus0/.", &st) == -1 && errno == ENOTDIR, "ENOTDIR");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	kt_prog = "robust";
	test_fork_children_open_their_own();
	test_fclose();
	test_huge_counts();
	test_bad_pointers_untouched();
	test_bad_pointers_with_ksocks();
	test_epollet_loop();
	test_epoll_no_busy_loop();
	test_close_range_epoll();
	test_open_flags();
	return kt_finish();
}
