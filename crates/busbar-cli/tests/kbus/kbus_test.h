/*
 * kbus_test.h: the check helpers and Ksock helpers shared by abi.c and
 * readiness.c. Everything is static inline (a file uses what it needs).
 *
 * A check that fails prints "FAIL <what>: got ..., want ..."; kt_finish()
 * prints "ok N checks" or "FAILED F of N checks" and gives the exit status.
 *
 * Define _GNU_SOURCE before including this (strerrorname_np).
 */
#ifndef BUSBAR_TEST_KBUS_TEST_H
#define BUSBAR_TEST_KBUS_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kbus_abi.h"

/* ------------------------------------------------------------------ checks */

static int n_checks, n_failed;

static inline const char *ename(int e)
{
	const char *s = strerrorname_np(e);
	return s ? s : "errno?";
}

static inline void failf(const char *what, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void failf(const char *what, const char *fmt, ...)
{
	va_list ap;
	n_failed++;
	printf("FAIL %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* got == want (integers). */
static inline void check_eq(const char *what, long long got, long long want)
{
	n_checks++;
	if (got != want)
		failf(what, "got %lld, want %lld", got, want);
}

/* A condition, with a description of what was expected. */
static inline void check_true(const char *what, int cond, const char *want)
{
	n_checks++;
	if (!cond)
		failf(what, "got false, want %s", want);
}

static inline void check_str(const char *what, const char *got, const char *want)
{
	n_checks++;
	if (strcmp(got, want) != 0)
		failf(what, "got \"%s\", want \"%s\"", got, want);
}

/* A call failed with -1 and errno `want`. */
static inline void check_errno(const char *what, long rc, int err, int want)
{
	n_checks++;
	if (rc != -1 || err != want)
		failf(what, "got %ld (%s), want -1 (%s)", rc, rc == -1 ? ename(err) : "no error",
		      ename(want));
}

/* A call succeeded (rc >= 0). */
static inline void check_ok(const char *what, long rc, int err)
{
	n_checks++;
	if (rc < 0)
		failf(what, "got %ld (%s), want success", rc, ename(err));
}

#define EXPECT_ERR(what, call, want)                                                           \
	do {                                                                                   \
		errno = 0;                                                                     \
		long rc_ = (long)(call);                                                       \
		check_errno(what, rc_, errno, want);                                           \
	} while (0)

#define EXPECT_OK(what, call)                                                                  \
	do {                                                                                   \
		errno = 0;                                                                     \
		long rc_ = (long)(call);                                                       \
		check_ok(what, rc_, errno);                                                    \
	} while (0)

/* The summary line and the exit status. */
static inline int kt_finish(void)
{
	if (n_failed) {
		printf("FAILED %d of %d checks\n", n_failed, n_checks);
		return 1;
	}
	printf("ok %d checks\n", n_checks);
	return 0;
}

/* ------------------------------------------------------------------- names */

/* "$.<prog>.P<pid>.<suffix>", from a ring of buffers (a few live at once),
 * so runs sharing a bus do not meet. Not for use from several threads. */
static const char *kt_prog = "t";
static inline const char *nm(const char *suffix)
{
	static char ring[16][1100];
	static int next;
	char *b = ring[next++ % 16];
	snprintf(b, sizeof ring[0], "$.%s.P%ld.%s", kt_prog, (long)getpid(), suffix);
	return b;
}

/* ------------------------------------------------------------------ Ksocks */

/* Opens /dev/kbus<dev>; a failure here ends the program. */
static inline int kopen(unsigned dev, int flags)
{
	char path[32];
	snprintf(path, sizeof path, "/dev/kbus%u", dev);
	int fd = open(path, flags);
	if (fd < 0) {
		failf("open", "%s: got %s, want success", path, ename(errno));
		printf("FAILED %d of %d checks (fatal)\n", n_failed, n_checks);
		exit(1);
	}
	return fd;
}

static inline uint32_t ksock_id(int fd)
{
	uint32_t id = 0;
	if (ioctl(fd, KB_IOC_KSOCKID, &id) < 0)
		failf("KSOCKID", "got %s, want success", ename(errno));
	return id;
}

static inline int kbind_len(int fd, const char *name, uint32_t len, int replier)
{
	struct kb_bind b = {.is_replier = (uint32_t)replier, .name_len = len, .name = name};
	return ioctl(fd, KB_IOC_BIND, &b);
}

static inline int kbind(int fd, const char *name, int replier)
{
	return kbind_len(fd, name, (uint32_t)strlen(name), replier);
}

static inline int kunbind(int fd, const char *name, int replier)
{
	struct kb_bind b = {
		.is_replier = (uint32_t)replier, .name_len = (uint32_t)strlen(name), .name = name};
	return ioctl(fd, KB_IOC_UNBIND, &b);
}

/* A u32 in/out ioctl: returns the ioctl's result, the value in *out. */
static inline int u32_ioctl(int fd, unsigned long cmd, uint32_t in, uint32_t *out)
{
	uint32_t v = in;
	int rc = ioctl(fd, cmd, &v);
	if (out)
		*out = v;
	return rc;
}

static inline uint32_t nummsgs(int fd)
{
	uint32_t n = 0;
	if (ioctl(fd, KB_IOC_NUMMSGS, &n) < 0)
		failf("NUMMSGS", "got %s, want success", ename(errno));
	return n;
}

static inline struct kb_msg_id lastsent(int fd)
{
	struct kb_msg_id id = {0, 0};
	if (ioctl(fd, KB_IOC_LASTSENT, &id) < 0)
		failf("LASTSENT", "got %s, want success", ename(errno));
	return id;
}

/*
 * Writes header `h` (lengths, flags, to, in_reply_to set by the caller) in
 * entire form with `name` and `data`, then SENDs. Returns 0, or -1 with
 * errno from the write or the SEND. *id (if not NULL) gets SEND's id.
 * Safe to call from several threads on different Ksocks.
 */
static inline int send_hdr(int fd, struct kb_header h, const char *name, const void *data,
			   struct kb_msg_id *id)
{
	size_t len = kb_entire_len(h.name_len, h.data_len);
	unsigned char *buf = malloc(len);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	kb_build_entire(buf, &h, name, data);
	ssize_t w = write(fd, buf, len);
	int e = errno;
	free(buf);
	if (w < 0) {
		errno = e;
		return -1;
	}
	if ((size_t)w != len) {
		failf("write", "got %zd, want %zu", w, len);
		ioctl(fd, KB_IOC_DISCARD);
		errno = EIO;
		return -1;
	}
	struct kb_msg_id dummy = {0, 0};
	return ioctl(fd, KB_IOC_SEND, id ? id : &dummy);
}

/* An announcement (or a request, with flags) with optional string data. */
static inline int send_msg(int fd, const char *name, const char *data, uint32_t flags,
			   uint32_t to, struct kb_msg_id *id)
{
	size_t dlen = data ? strlen(data) : 0;
	struct kb_header h = kb_header_for(strlen(name), dlen, flags);
	h.to = to;
	return send_hdr(fd, h, name, data, id);
}

/* Empties a Ksock's queue. */
static inline void drain(int fd)
{
	uint32_t len;
	while (ioctl(fd, KB_IOC_NEXTMSG, &len) > 0)
		;
}

#endif
