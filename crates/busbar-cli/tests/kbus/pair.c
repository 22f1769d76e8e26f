/*
 * pair.c: the two halves of a cross-process KBUS test, driven by a harness.
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -O1 -o pair pair.c
 *
 *   busbar kbus -- ./pair replier NAME
 *       Opens /dev/kbus0, binds NAME as replier, prints "ready <ksock id>",
 *       then blocks in pause() forever without reading anything.
 *
 *   busbar kbus -- ./pair requester NAME
 *       Opens /dev/kbus0, sends a request to NAME, prints "sent <serial>",
 *       waits (poll, 30 s guard) for a message, takes it and prints
 *       "got <name> in_reply_to <serial>". Exit status 0 if that is
 *       $.KBUS.Replier.GoneAway answering the request sent, else 1.
 *
 * The harness starts the replier, reads "ready", starts the requester,
 * reads "sent", kills the replier with SIGKILL and expects the requester
 * to exit 0: a replier that dies with the request unread in its queue
 * must produce GoneAway.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kbus_abi.h"

#define GUARD_MS 30000

static int die(const char *what)
{
	fprintf(stderr, "pair: %s: %s\n", what, strerror(errno));
	return 1;
}

static int replier(const char *name)
{
	int fd = open("/dev/kbus0", O_RDWR);
	if (fd < 0)
		return die("open /dev/kbus0");
	struct kb_bind b = {1, (uint32_t)strlen(name), name};
	if (ioctl(fd, KB_IOC_BIND, &b) < 0)
		return die("BIND replier");
	uint32_t id = 0;
	if (ioctl(fd, KB_IOC_KSOCKID, &id) < 0)
		return die("KSOCKID");
	printf("ready %u\n", id);
	fflush(stdout);
	for (;;)
		pause();
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int requester(const char *name)
{
	int fd = open("/dev/kbus0", O_RDWR);
	if (fd < 0)
		return die("open /dev/kbus0");

	/* The request, in entire form. */
	size_t n = strlen(name);
	if (n == 0 || n > KB_MAX_NAME_LEN) {
		fprintf(stderr, "pair: bad name length\n");
		return 1;
	}
	static unsigned char buf[8192];
	struct kb_header h = kb_header_for(n, 0, KB_WANT_A_REPLY);
	size_t len = kb_build_entire(buf, &h, name, NULL);
	if (write(fd, buf, len) != (ssize_t)len)
		return die("write request");
	struct kb_msg_id id = {0, 0};
	if (ioctl(fd, KB_IOC_SEND, &id) < 0)
		return die("SEND request");
	printf("sent %u\n", id.serial_num);
	fflush(stdout);

	/* Wait for the answer. */
	long long deadline = now_ms() + GUARD_MS;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			printf("timeout\n");
			return 1;
		}
		struct pollfd p = {fd, POLLIN, 0};
		int rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return die("poll");
		if (rc > 0 && (p.revents & POLLIN))
			break;
	}

	uint32_t mlen = 0;
	if (ioctl(fd, KB_IOC_NEXTMSG, &mlen) != 1)
		return die("NEXTMSG (readable, but no message)");
	if (mlen > sizeof buf || mlen < sizeof(struct kb_header)) {
		fprintf(stderr, "pair: message length %u\n", mlen);
		return 1;
	}
	size_t got = 0;
	while (got < mlen) {
		ssize_t r = read(fd, buf + got, mlen - got);
		if (r <= 0)
			return die("read");
		got += (size_t)r;
	}
	struct kb_header m;
	memcpy(&m, buf, sizeof m);
	char mname[KB_MAX_NAME_LEN + 1];
	size_t ml = m.name_len <= KB_MAX_NAME_LEN ? m.name_len : 0;
	memcpy(mname, kb_entire_name(buf), ml);
	mname[ml] = 0;
	printf("got %s in_reply_to %u\n", mname, m.in_reply_to.serial_num);
	fflush(stdout);
	int ok = strcmp(mname, "$.KBUS.Replier.GoneAway") == 0 &&
		 m.in_reply_to.serial_num == id.serial_num && m.in_reply_to.network_id == 0;
	close(fd);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "replier") == 0)
		return replier(argv[2]);
	if (argc == 3 && strcmp(argv[1], "requester") == 0)
		return requester(argv[2]);
	fprintf(stderr, "usage: pair replier NAME | pair requester NAME\n");
	return 2;
}
