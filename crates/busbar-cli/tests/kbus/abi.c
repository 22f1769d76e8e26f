/*
 * abi.c: checks the /dev/kbusN emulation (libbusbar_kbus.so) through the raw
 * KBUS device ABI: open, write, read, ioctl, stat and /proc/kbus/bindings.
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -O1 -o abi abi.c
 * Run:   busbar kbus [--socket PATH] -- ./abi
 *
 * Each check prints "FAIL <what>: got ..., want ..." when it fails; at the
 * end "ok N checks" (exit 0) or "FAILED F of N checks" (exit 1).
 *
 * Names are "$.abi.P<pid>.<topic>", so several runs can share a bus. Checks
 * of device-wide state (MAXMSGSIZE, REPORTREPLIERBINDS, VERBOSE) and of
 * exact serial arithmetic run on a private device made with NEWDEVICE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kbus_abi.h"
#include "kbus_test.h"

/* A received message, taken apart. */
struct msg {
	struct kb_header h;
	char name[KB_MAX_NAME_LEN + 1];
	unsigned char data[4096];
	size_t len;
	unsigned char raw[8192];
};

/* NEXTMSG then read it all: 1 with *m filled, 0 when the queue is empty. */
static int take(int fd, struct msg *m)
{
	uint32_t len = 0;
	int rc = ioctl(fd, KB_IOC_NEXTMSG, &len);
	if (rc < 0) {
		failf("NEXTMSG", "got %s, want success", ename(errno));
		return 0;
	}
	if (rc == 0)
		return 0;
	if (len > sizeof m->raw || len < sizeof(struct kb_header)) {
		failf("NEXTMSG length", "got %u, want <= %zu", len, sizeof m->raw);
		return 0;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, m->raw + got, len - got);
		if (n <= 0) {
			failf("read", "got %zd (%s) at %zu of %u", n, ename(errno), got, len);
			return 0;
		}
		got += (size_t)n;
	}
	m->len = len;
	memcpy(&m->h, m->raw, sizeof m->h);
	size_t nl = m->h.name_len <= KB_MAX_NAME_LEN ? m->h.name_len : 0;
	memcpy(m->name, kb_entire_name(m->raw), nl);
	m->name[nl] = 0;
	size_t dl = m->h.data_len <= sizeof m->data ? m->h.data_len : 0;
	memcpy(m->data, kb_entire_data(m->raw), dl);
	return 1;
}

/* Takes the next message and checks its name; returns 1 if there was one. */
static int take_named(const char *what, int fd, struct msg *m, const char *want_name)
{
	if (!take(fd, m)) {
		n_checks++;
		failf(what, "got no message, want %s", want_name);
		return 0;
	}
	check_str(what, m->name, want_name);
	return 1;
}

/* Sends a reply to request `req` (received by the replier). */
static int send_reply(int fd, const struct msg *req, const char *data, struct kb_msg_id *id)
{
	size_t dlen = data ? strlen(data) : 0;
	struct kb_header h = kb_header_for(req->h.name_len, dlen, 0);
	h.to = req->h.from;
	h.in_reply_to = req->h.id;
	return send_hdr(fd, h, req->name, data, id);
}

/* --------------------------------------------------------- stat and open */

static void test_stat_and_open(void)
{
	struct stat st;
	EXPECT_OK("stat /dev/kbus0", stat("/dev/kbus0", &st));
	check_eq("stat /dev/kbus0 st_mode (octal 020666)", st.st_mode, 020666);
	check_true("stat /dev/kbus0 is a character device", S_ISCHR(st.st_mode), "S_ISCHR");

	/* A bus the daemon does not have (99: NEWDEVICE in earlier runs
	 * against the same daemon may have made kbus3..). */
	EXPECT_ERR("stat of a missing bus /dev/kbus99", stat("/dev/kbus99", &st), ENOENT);
	EXPECT_ERR("open of a missing bus /dev/kbus99", open("/dev/kbus99", O_RDWR), ENOENT);

	int ro = kopen(0, O_RDONLY), rw = kopen(0, O_RDWR), rw2 = kopen(0, O_RDWR);
	uint32_t a = ksock_id(ro), b = ksock_id(rw), c = ksock_id(rw2);
	check_true("KSOCKID nonzero", a && b && c, "all ids nonzero");
	check_true("KSOCKID distinct", a != b && b != c && a != c, "three distinct ids");

	/* fstat of a Ksock: the character device. */
	EXPECT_OK("fstat of a Ksock", fstat(rw, &st));
	check_eq("fstat of a Ksock st_mode", st.st_mode, 020666);
	EXPECT_OK("access /dev/kbus0 R_OK|W_OK", access("/dev/kbus0", R_OK | W_OK));
	EXPECT_ERR("access of a missing bus", access("/dev/kbus99", F_OK), ENOENT);

	/* The open flags as fcntl reports them. */
	check_eq("F_GETFL access mode of an O_RDONLY Ksock", fcntl(ro, F_GETFL) & O_ACCMODE,
		 O_RDONLY);
	check_eq("F_GETFL access mode of an O_RDWR Ksock", fcntl(rw, F_GETFL) & O_ACCMODE, O_RDWR);
	check_eq("no FD_CLOEXEC without O_CLOEXEC", fcntl(rw, F_GETFD) & FD_CLOEXEC, 0);
	int ce = open("/dev/kbus0", O_RDWR | O_CLOEXEC);
	check_ok("open with O_CLOEXEC", ce, errno);
	check_eq("FD_CLOEXEC with O_CLOEXEC", fcntl(ce, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(ce);

	/* write on a read-only Ksock is EBADF (from the VFS in KBUS). */
	struct kb_header h = kb_header_for(strlen(nm("RO")), 0, 0);
	unsigned char buf[256];
	size_t len = kb_build_entire(buf, &h, nm("RO"), NULL);
	EXPECT_ERR("write to an O_RDONLY Ksock", write(ro, buf, len), EBADF);

	/* A read-only Ksock can still bind and read. */
	EXPECT_OK("bind on an O_RDONLY Ksock", kbind(ro, nm("RO"), 0));
	EXPECT_OK("send to the O_RDONLY listener", send_msg(rw, nm("RO"), "x", 0, 0, NULL));
	struct msg m;
	take_named("O_RDONLY Ksock reads", ro, &m, nm("RO"));

	close(ro);
	close(rw);
	close(rw2);
}

/* ------------------------------------------------------------------- bind */

static void test_bind(void)
{
	int k = kopen(0, O_RDWR), k2 = kopen(0, O_RDWR);
	static char name[1100];

	EXPECT_OK("bind listener", kbind(k, nm("Bind"), 0));
	EXPECT_OK("bind the same listener twice", kbind(k, nm("Bind"), 0));
	EXPECT_OK("bind listener wildcard *", kbind(k, nm("Bind.*"), 0));
	EXPECT_OK("bind listener wildcard %", kbind(k, nm("Bind.%"), 0));
	EXPECT_OK("unbind listener", kunbind(k, nm("Bind"), 0));
	EXPECT_OK("unbind its duplicate", kunbind(k, nm("Bind"), 0));
	EXPECT_ERR("unbind a third time", kunbind(k, nm("Bind"), 0), EINVAL);
	EXPECT_OK("unbind wildcard *", kunbind(k, nm("Bind.*"), 0));
	EXPECT_OK("unbind wildcard %", kunbind(k, nm("Bind.%"), 0));

	/* Bad names. */
	EXPECT_ERR("bind empty word", kbind(k, "$.a..b", 0), EBADMSG);
	EXPECT_ERR("bind without $.", kbind(k, "Fred", 0), EBADMSG);
	EXPECT_ERR("bind trailing dot", kbind(k, "$.a.", 0), EBADMSG);
	EXPECT_ERR("bind bad character", kbind(k, "$.a_b", 0), EBADMSG);
	EXPECT_ERR("bind wildcard not last", kbind(k, "$.*.a", 0), EBADMSG);
	EXPECT_ERR("bind name_len 0", kbind_len(k, "$.a", 0, 0), EBADMSG);
	EXPECT_ERR("unbind name_len 0", ioctl(k, KB_IOC_UNBIND, &(struct kb_bind){0, 0, "$.a"}),
		   EBADMSG);

	/* 1000 bytes is the longest name; 1001 is ENAMETOOLONG. */
	memset(name, 'a', sizeof name);
	memcpy(name, "$.", 2);
	name[1000] = 0;
	EXPECT_OK("bind a 1000-byte name", kbind(k, name, 0));
	EXPECT_OK("unbind a 1000-byte name", kunbind(k, name, 0));
	name[1000] = 'a';
	name[1001] = 0;
	EXPECT_ERR("bind a 1001-byte name", kbind(k, name, 0), ENAMETOOLONG);
	EXPECT_ERR("bind a 1001-byte name as replier", kbind(k, name, 1), ENAMETOOLONG);
	EXPECT_ERR("unbind a 1001-byte name", kunbind(k, name, 0), ENAMETOOLONG);

	/* One replier per exact name, whoever asks. */
	EXPECT_OK("bind replier", kbind(k, nm("Rep"), 1));
	EXPECT_ERR("second replier (another Ksock)", kbind(k2, nm("Rep"), 1), EADDRINUSE);
	EXPECT_ERR("second replier (same Ksock)", kbind(k, nm("Rep"), 1), EADDRINUSE);
	EXPECT_OK("listener beside a replier", kbind(k2, nm("Rep"), 0));
	EXPECT_OK("replier on a wildcard of the name", kbind(k2, nm("*"), 1));

	/* Unbind must name an existing binding of this Ksock, of this kind. */
	EXPECT_ERR("unbind a replier as listener", kunbind(k, nm("Rep"), 0), EINVAL);
	EXPECT_ERR("unbind another Ksock's replier", kunbind(k2, nm("Rep"), 1), EINVAL);
	EXPECT_ERR("unbind a name never bound", kunbind(k, nm("Never"), 0), EINVAL);
	EXPECT_OK("unbind replier", kunbind(k, nm("Rep"), 1));
	EXPECT_OK("rebind replier after unbind", kbind(k2, nm("Rep"), 1));

	/* The bind-event name may be listened to but not replied to. */
	EXPECT_ERR("bind $.KBUS.ReplierBindEvent as replier",
		   kbind(k, "$.KBUS.ReplierBindEvent", 1), EBADMSG);
	EXPECT_OK("bind $.KBUS.ReplierBindEvent as listener",
		  kbind(k, "$.KBUS.ReplierBindEvent", 0));
	EXPECT_OK("unbind $.KBUS.ReplierBindEvent listener",
		  kunbind(k, "$.KBUS.ReplierBindEvent", 0));

	close(k);
	close(k2);
}

/* -------------------------------------------------- entire write and read */

static void test_entire_and_reads(void)
{
	int s = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	uint32_t sid = ksock_id(s);
	const char *name = nm("Entire");
	unsigned char buf[512], m1[512];
	struct kb_msg_id id = {0, 0};
	uint32_t len = 0, left = 0;

	EXPECT_OK("bind listener", kbind(l, name, 0));

	/* read with no current message: end of file. */
	check_eq("read with no current message", read(l, buf, sizeof buf), 0);
	check_eq("LENLEFT with no current message", u32_ioctl(l, KB_IOC_LENLEFT, 99, &left), 0);
	check_eq("LENLEFT value with no current message", left, 0);
	check_eq("NEXTMSG on an empty queue returns 0", u32_ioctl(l, KB_IOC_NEXTMSG, 99, &len), 0);
	check_eq("NEXTMSG on an empty queue gives length 0", len, 0);

	/* Entire form: one write, then SEND. 7 bytes of data (padded to 8). */
	struct kb_header h = kb_header_for(strlen(name), 7, 0x00010000u /* a user flag */);
	h.extra = 0x1234; /* zeroed by the bus */
	size_t want_len = kb_build_entire(buf, &h, name, "abcdefg");
	check_eq("entire length of the message", want_len, kb_entire_len(strlen(name), 7));
	check_eq("write of an entire message", write(s, buf, want_len), (long long)want_len);
	check_eq("SEND returns 0", ioctl(s, KB_IOC_SEND, &id), 0);
	check_eq("SEND id network 0", id.network_id, 0);
	check_true("SEND id serial nonzero", id.serial_num != 0, "serial > 0");
	struct kb_msg_id last = lastsent(s);
	check_eq("LASTSENT after SEND", last.serial_num, id.serial_num);

	/* A second message, to see that reads never cross into it. */
	struct kb_msg_id id2 = {0, 0};
	EXPECT_OK("second send", send_msg(s, name, "xyz", 0, 0, &id2));
	check_eq("serials go up", id2.serial_num > id.serial_num, 1);

	check_eq("NUMMSGS with two queued", nummsgs(l), 2);
	check_eq("NEXTMSG returns 1", u32_ioctl(l, KB_IOC_NEXTMSG, 0, &len), 1);
	check_eq("NEXTMSG length is the entire length", len, (long long)want_len);
	check_eq("NUMMSGS after NEXTMSG", nummsgs(l), 1);
	u32_ioctl(l, KB_IOC_LENLEFT, 0, &left);
	check_eq("LENLEFT before reading", left, len);

	/* Read in 1-byte pieces for a while, then odd sizes. */
	size_t got = 0;
	for (int i = 0; i < 5; i++) {
		ssize_t n = read(l, m1 + got, 1);
		check_eq("1-byte read", n, 1);
		got += n > 0 ? (size_t)n : 0;
	}
	u32_ioctl(l, KB_IOC_LENLEFT, 0, &left);
	check_eq("LENLEFT after 5 bytes", left, len - 5);
	while (got < len) {
		size_t piece = got % 2 ? 7 : 13;
		if (piece > len - got)
			piece = len - got;
		ssize_t n = read(l, m1 + got, piece);
		check_eq("odd-size read", n, (long long)piece);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	u32_ioctl(l, KB_IOC_LENLEFT, 0, &left);
	check_eq("LENLEFT after reading it all", left, 0);
	/* The end of the current message: 0, not the next message's bytes. */
	check_eq("read past the end of the message", read(l, m1 + got, 100), 0);
	check_eq("what was read equals what was written, padding aside", got, want_len);

	/* The header as received. */
	struct kb_header r;
	memcpy(&r, m1, sizeof r);
	check_eq("received start_guard", r.start_guard, KB_START_GUARD);
	check_eq("received end_guard", r.end_guard, KB_END_GUARD);
	check_eq("received id", r.id.serial_num, id.serial_num);
	check_eq("received from", r.from, sid);
	check_eq("received flags (user bit kept)", r.flags, 0x00010000u);
	check_eq("received extra zeroed", r.extra, 0);
	check_eq("received name_len", r.name_len, strlen(name));
	check_eq("received data_len", r.data_len, 7);
	check_true("received name/data pointers NULL", r.name == NULL && r.data == NULL,
		   "NULL pointers");
	check_true("received name", memcmp(kb_entire_name(m1), name, strlen(name) + 1) == 0,
		   name);
	check_true("received data", memcmp(kb_entire_data(m1), "abcdefg\0", 8) == 0,
		   "abcdefg + one zero byte of padding");
	uint32_t tail;
	memcpy(&tail, m1 + got - 4, 4);
	check_eq("received final end guard", tail, KB_END_GUARD);

	/* A read bigger than what is left stops at the message's end. */
	check_eq("NEXTMSG for the second", u32_ioctl(l, KB_IOC_NEXTMSG, 0, &len), 1);
	check_eq("second length", len, kb_entire_len(strlen(name), 3));
	check_eq("one big read returns exactly one message", read(l, buf, sizeof buf), len);
	check_eq("then end of message", read(l, buf, sizeof buf), 0);
	check_eq("NUMMSGS at the end", nummsgs(l), 0);

	/* NEXTMSG drops a partly read message. */
	EXPECT_OK("third send", send_msg(s, name, NULL, 0, 0, NULL));
	EXPECT_OK("fourth send", send_msg(s, name, "4", 0, 0, NULL));
	u32_ioctl(l, KB_IOC_NEXTMSG, 0, &len);
	check_eq("partial read", read(l, buf, 10), 10);
	check_eq("NEXTMSG over a partly read message", u32_ioctl(l, KB_IOC_NEXTMSG, 0, &len), 1);
	check_eq("it gives the next one (length)", len, kb_entire_len(strlen(name), 1));
	u32_ioctl(l, KB_IOC_LENLEFT, 0, &left);
	check_eq("LENLEFT of the new current message", left, len);

	close(s);
	close(l);
}

/* ------------------------------------------------------------ pointy form */

static void test_pointy(void)
{
	int s = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	char name[64], data[16];
	struct msg m;
	struct kb_msg_id id = {0, 0};

	snprintf(name, sizeof name, "%s", nm("Pointy"));
	EXPECT_OK("bind listener", kbind(l, name, 0));

	/* Header only, name and data behind pointers; read at SEND. */
	struct kb_header h = kb_header_for(strlen(name), 5, 0);
	h.name = name;
	h.data = data;
	memcpy(data, "early", 5);
	check_eq("write of a pointy header", write(s, &h, sizeof h), sizeof h);
	memcpy(data, "later", 5); /* what SEND copies */
	check_eq("SEND of a pointy message", ioctl(s, KB_IOC_SEND, &id), 0);
	memcpy(data, "after", 5); /* too late to matter */
	if (take_named("pointy message arrives", l, &m, name)) {
		check_eq("pointy data_len", m.h.data_len, 5);
		check_true("pointy data is copied at SEND", memcmp(m.data, "later", 5) == 0,
			   "\"later\"");
		check_eq("pointy message is read in entire form", m.len,
			 kb_entire_len(strlen(name), 5));
		check_true("read pointers are NULL", m.h.name == NULL && m.h.data == NULL,
			   "NULL");
	}

	/* Pointy without data: data NULL, data_len 0. */
	h = kb_header_for(strlen(name), 0, 0);
	h.name = name;
	check_eq("write of a pointy header without data", write(s, &h, sizeof h), sizeof h);
	EXPECT_OK("SEND pointy without data", ioctl(s, KB_IOC_SEND, &id));
	if (take_named("pointy message without data arrives", l, &m, name))
		check_eq("its data_len", m.h.data_len, 0);

	/* A pointy message's name is checked at SEND. */
	const char *wild = nm("*");
	h = kb_header_for(strlen(wild), 0, 0);
	h.name = (char *)wild;
	check_eq("write of a pointy header naming a wildcard", write(s, &h, sizeof h), sizeof h);
	EXPECT_ERR("SEND of a pointy wildcard name", ioctl(s, KB_IOC_SEND, &id), EBADMSG);
	EXPECT_ERR("after that nothing is written", ioctl(s, KB_IOC_SEND, &id), ENOMSG);

	/* A byte after a pointy header is past the message's end. */
	h = kb_header_for(strlen(name), 0, 0);
	h.name = name;
	check_eq("write pointy header", write(s, &h, sizeof h), sizeof h);
	EXPECT_ERR("a byte after a pointy header", write(s, "x", 1), EMSGSIZE);
	EXPECT_ERR("the message is gone", ioctl(s, KB_IOC_SEND, &id), ENOMSG);

	close(s);
	close(l);
}

/* --------------------------------------------------- one byte at a time */

static void test_byte_writes(void)
{
	int s = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	const char *name = nm("Bytes");
	unsigned char buf[256];
	struct kb_msg_id id = {0, 0};
	struct msg m;

	EXPECT_OK("bind listener", kbind(l, name, 0));
	struct kb_header h = kb_header_for(strlen(name), 6, 0);
	size_t len = kb_build_entire(buf, &h, name, "123456");
	int all_one = 1;
	for (size_t i = 0; i < len; i++) {
		if (i > 0 && i % 31 == 0) /* an incomplete message cannot be sent */
			EXPECT_ERR("SEND of an incomplete message", ioctl(s, KB_IOC_SEND, &id), EINVAL);
		if (write(s, buf + i, 1) != 1)
			all_one = 0;
	}
	check_true("every 1-byte write returns 1", all_one, "1 each time");
	/* The partial SENDs above failed with EINVAL and must not have
	 * discarded the message: KBUS keeps writing state across them. */
	EXPECT_OK("SEND after 1-byte writes", ioctl(s, KB_IOC_SEND, &id));
	if (take_named("message written byte by byte arrives", l, &m, name)) {
		check_true("its data", memcmp(m.data, "123456", 6) == 0, "\"123456\"");
		check_eq("its id", m.h.id.serial_num, id.serial_num);
	}
	close(s);
	close(l);
}

/* --------------------------------------------------------- write errors */

/* Writes `len` bytes expecting errno `want`, then checks SEND is ENOMSG. */
static void write_fails(const char *what, int fd, const void *buf, size_t len, int want)
{
	char w[160];
	struct kb_msg_id id = {0, 0};
	EXPECT_ERR(what, write(fd, buf, len), want);
	snprintf(w, sizeof w, "%s: then SEND (message discarded)", what);
	EXPECT_ERR(w, ioctl(fd, KB_IOC_SEND, &id), ENOMSG);
}

static void test_write_errors(void)
{
	int s = kopen(0, O_RDWR);
	const char *name = nm("WErr");
	unsigned char buf[512];
	char data[8] = "data";
	struct kb_header h;
	struct kb_msg_id id = {0, 0};

	/* Header checks, in KBUS's order. */
	h = kb_header_for(strlen(name), 0, 0);
	h.start_guard = 0x12345678;
	h.name_len = 0; /* the guard is checked first */
	write_fails("bad start guard", s, &h, sizeof h, EINVAL);

	h = kb_header_for(strlen(name), 0, 0);
	h.end_guard = 0;
	write_fails("bad end guard in the header", s, &h, sizeof h, EINVAL);

	h = kb_header_for(0, 0, 0);
	write_fails("name_len 0", s, &h, sizeof h, EINVAL);

	h = kb_header_for(1001, 0, KB_ALL_OR_WAIT | KB_ALL_OR_FAIL); /* length first */
	write_fails("name_len 1001", s, &h, sizeof h, ENAMETOOLONG);

	h = kb_header_for(strlen(name), 4, 0);
	h.data = data; /* name NULL but data set */
	write_fails("name NULL with data pointer", s, &h, sizeof h, EINVAL);

	h = kb_header_for(strlen(name), 4, 0);
	h.name = (char *)name; /* data_len 4 but data NULL */
	write_fails("pointy data_len without data pointer", s, &h, sizeof h, EINVAL);

	h = kb_header_for(strlen(name), 0, 0);
	h.name = (char *)name;
	h.data = data; /* data pointer with data_len 0 */
	write_fails("pointy data pointer with data_len 0", s, &h, sizeof h, EINVAL);

	h = kb_header_for(strlen(name), 0, KB_ALL_OR_WAIT | KB_ALL_OR_FAIL);
	write_fails("both ALL_OR flags", s, &h, sizeof h, EINVAL);

	/* Bigger than the device's maximum (entire form measured). */
	uint32_t max = 0;
	EXPECT_OK("MAXMSGSIZE query", u32_ioctl(s, KB_IOC_MAXMSGSIZE, 0, &max));
	h = kb_header_for(strlen(name), max, 0);
	write_fails("entire length over MAXMSGSIZE", s, &h, sizeof h, EMSGSIZE);

	/* Names are checked as soon as they have arrived (entire form). */
	const char *wild = nm("*");
	h = kb_header_for(strlen(wild), 0, 0);
	size_t len = kb_build_entire(buf, &h, wild, NULL);
	write_fails("wildcard name in an entire message", s, buf, len, EBADMSG);
	h = kb_header_for(strlen("$.a..b"), 0, 0);
	len = kb_build_entire(buf, &h, "$.a..b", NULL);
	/* Just the header and the name: the error comes before the guard. */
	write_fails("invalid name in an entire message", s, buf, sizeof h + 6, EBADMSG);

	/* The final guard. */
	h = kb_header_for(strlen(name), 3, 0);
	len = kb_build_entire(buf, &h, name, "abc");
	buf[len - 1] ^= 0xff;
	write_fails("bad final end guard", s, buf, len, EINVAL);

	/* A byte after a complete message. */
	len = kb_build_entire(buf, &h, name, "abc");
	check_eq("complete message", write(s, buf, len), (long long)len);
	write_fails("a byte after a complete message", s, "x", 1, EMSGSIZE);

	/* A failed write throws away what came before it, too. */
	check_eq("half a header", write(s, buf, 40), 40);
	unsigned char bad[48];
	memcpy(bad, buf + 40, sizeof bad);
	memset(bad + (80 - 40), 0, 4); /* the header's end guard */
	write_fails("bad end guard completing a split header", s, bad, sizeof bad, EINVAL);

	/* After all that, a good message goes through. */
	check_eq("good message after errors", write(s, buf, len), (long long)len);
	EXPECT_OK("SEND after errors", ioctl(s, KB_IOC_SEND, &id));

	close(s);
}

/* ----------------------------------------------------- SEND and DISCARD */

static void test_send_discard(void)
{
	int s = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	const char *name = nm("Disc");
	unsigned char buf[256];
	struct kb_msg_id id = {0, 0};

	EXPECT_OK("bind listener", kbind(l, name, 0));
	EXPECT_ERR("SEND with nothing written", ioctl(s, KB_IOC_SEND, &id), ENOMSG);
	struct kb_header h = kb_header_for(strlen(name), 2, 0);
	size_t len = kb_build_entire(buf, &h, name, "hi");

	check_eq("write part of a header", write(s, buf, 50), 50);
	EXPECT_ERR("SEND with part of a header", ioctl(s, KB_IOC_SEND, &id), EINVAL);
	check_eq("write the rest of the header", write(s, buf + 50, sizeof h - 50),
		 (long long)(sizeof h - 50));
	EXPECT_ERR("SEND with the header but no name", ioctl(s, KB_IOC_SEND, &id), EINVAL);
	check_eq("DISCARD returns 0", ioctl(s, KB_IOC_DISCARD), 0);
	EXPECT_ERR("SEND after DISCARD", ioctl(s, KB_IOC_SEND, &id), ENOMSG);
	check_eq("DISCARD with nothing written", ioctl(s, KB_IOC_DISCARD), 0);

	check_eq("write whole message", write(s, buf, len), (long long)len);
	check_eq("DISCARD a whole message", ioctl(s, KB_IOC_DISCARD), 0);
	EXPECT_ERR("SEND after DISCARD of a whole message", ioctl(s, KB_IOC_SEND, &id), ENOMSG);
	check_eq("nothing was delivered", nummsgs(l), 0);

	/* After a successful SEND the message is gone: SEND again is ENOMSG. */
	check_eq("write whole message", write(s, buf, len), (long long)len);
	EXPECT_OK("SEND", ioctl(s, KB_IOC_SEND, &id));
	EXPECT_ERR("SEND again", ioctl(s, KB_IOC_SEND, &id), ENOMSG);
	check_eq("one delivered", nummsgs(l), 1);

	close(s);
	close(l);
}

/* ----------------------------------------------- requests and replies */

static void test_no_replier(void)
{
	int s = kopen(0, O_RDWR);
	struct kb_msg_id before = {0, 0}, id = {0, 0};

	EXPECT_OK("announcement to nobody succeeds", send_msg(s, nm("Nobody"), NULL, 0, 0, &before));
	EXPECT_ERR("request with no replier", send_msg(s, nm("Nobody"), NULL, KB_WANT_A_REPLY, 0, &id),
		   EADDRNOTAVAIL);
	struct kb_msg_id last = lastsent(s);
	/* KBUS: the failed request took a serial and LASTSENT names it. */
	check_true("LASTSENT names the failed request", last.serial_num > before.serial_num,
		   "a serial above the previous send's");
	check_eq("UNREPLIEDTO of a requester", u32_ioctl(s, KB_IOC_UNREPLIEDTO, 0, &id.serial_num), 0);
	check_eq("it is 0", id.serial_num, 0);
	close(s);
}

static void test_request_reply(void)
{
	int s = kopen(0, O_RDWR), r = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	uint32_t sid = ksock_id(s), rid = ksock_id(r);
	const char *name = nm("Req");
	struct kb_msg_id req_id = {0, 0}, rep_id = {0, 0};
	struct msg m, req;
	uint32_t n;

	EXPECT_OK("bind replier", kbind(r, name, 1));
	EXPECT_OK("bind listener", kbind(l, name, 0));
	EXPECT_OK("send request", send_msg(s, name, "question", KB_WANT_A_REPLY, 0, &req_id));

	/* The replier's copy asks it to reply; the listener's does not. */
	u32_ioctl(r, KB_IOC_UNREPLIEDTO, 0, &n);
	check_eq("UNREPLIEDTO before NEXTMSG", n, 0);
	if (take_named("replier gets the request", r, &req, name)) {
		check_eq("replier's copy flags", req.h.flags, KB_WANT_A_REPLY | KB_WANT_YOU_TO_REPLY);
		check_eq("request from", req.h.from, sid);
		check_eq("request id", req.h.id.serial_num, req_id.serial_num);
		check_true("request data", memcmp(req.data, "question", 8) == 0, "\"question\"");
	}
	u32_ioctl(r, KB_IOC_UNREPLIEDTO, 0, &n);
	check_eq("UNREPLIEDTO after NEXTMSG", n, 1);
	if (take_named("listener gets the request", l, &m, name))
		check_eq("listener's copy flags", m.h.flags, KB_WANT_A_REPLY);

	/* The reply goes to the requester and to listeners, not the replier. */
	EXPECT_OK("send reply", send_reply(r, &req, "answer", &rep_id));
	u32_ioctl(r, KB_IOC_UNREPLIEDTO, 0, &n);
	check_eq("UNREPLIEDTO after replying", n, 0);
	if (take_named("requester gets the reply", s, &m, name)) {
		check_eq("reply in_reply_to", m.h.in_reply_to.serial_num, req_id.serial_num);
		check_eq("reply from", m.h.from, rid);
		check_eq("reply to", m.h.to, sid);
		check_eq("reply flags", m.h.flags, 0);
		check_eq("reply id", m.h.id.serial_num, rep_id.serial_num);
		check_true("reply data", memcmp(m.data, "answer", 6) == 0, "\"answer\"");
	}
	if (take_named("listener gets the reply", l, &m, name))
		check_eq("listener's reply in_reply_to", m.h.in_reply_to.serial_num,
			 req_id.serial_num);
	check_eq("the replier does not get the reply", nummsgs(r), 0);

	/* A second reply, or one nobody awaits: ECONNREFUSED. */
	EXPECT_ERR("second reply to the same request", send_reply(r, &req, NULL, NULL),
		   ECONNREFUSED);
	struct msg fake = req;
	fake.h.id.serial_num = req_id.serial_num + 100000;
	EXPECT_ERR("reply to an id nobody awaits", send_reply(r, &fake, NULL, NULL), ECONNREFUSED);
	struct kb_msg_id last = lastsent(r);
	check_true("LASTSENT names the refused reply", last.serial_num > rep_id.serial_num,
		   "a serial above the reply's");

	/* A reply naming no Ksock (to 0, or an id never opened). */
	EXPECT_OK("send another request", send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, &req_id));
	take_named("replier gets it", r, &req, name);
	struct kb_header h = kb_header_for(strlen(name), 0, 0);
	h.in_reply_to = req.h.id;
	EXPECT_ERR("reply with to 0", send_hdr(r, h, name, NULL, NULL), EADDRNOTAVAIL);
	h.to = 0x7fffffff;
	EXPECT_ERR("reply to a Ksock id that does not exist", send_hdr(r, h, name, NULL, NULL),
		   EADDRNOTAVAIL);
	EXPECT_OK("the real reply still goes", send_reply(r, &req, NULL, NULL));
	take(s, &m);

	/* busbar: a request cannot also be a reply. */
	h = kb_header_for(strlen(name), 0, KB_WANT_A_REPLY);
	h.in_reply_to = req.h.id;
	EXPECT_ERR("WANT_A_REPLY with in_reply_to", send_hdr(s, h, name, NULL, NULL), EINVAL);

	/* A reply to a requester that has closed: EADDRNOTAVAIL. */
	EXPECT_OK("send another request", send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, &req_id));
	take_named("replier gets it", r, &req, name);
	close(s);
	EXPECT_ERR("reply to a closed requester", send_reply(r, &req, NULL, NULL), EADDRNOTAVAIL);

	close(r);
	close(l);
}

/* KBUS lets any Ksock answer a request while its requester awaits it. */
static void test_third_party_reply(void)
{
	int s = kopen(0, O_RDWR), r = kopen(0, O_RDWR), x = kopen(0, O_RDWR);
	const char *name = nm("Third");
	struct kb_msg_id req_id = {0, 0};
	struct msg req, m;

	EXPECT_OK("bind replier", kbind(r, name, 1));
	EXPECT_OK("send request", send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, &req_id));
	take_named("replier gets the request", r, &req, name);
	EXPECT_OK("a third Ksock answers it", send_reply(x, &req, "x", NULL));
	if (take_named("requester gets the third party's reply", s, &m, name))
		check_eq("its from", m.h.from, ksock_id(x));
	EXPECT_ERR("the replier's own reply afterwards", send_reply(r, &req, NULL, NULL),
		   ECONNREFUSED);
	close(s);
	close(r);
	close(x);
}

/* Among replier wildcards of one kind the most recently bound wins. */
static void test_wildcard_replier(void)
{
	int r1 = kopen(0, O_RDWR), r2 = kopen(0, O_RDWR), s = kopen(0, O_RDWR);
	struct msg m;

	EXPECT_OK("bind longer * replier", kbind(r1, nm("WC.*"), 1));
	EXPECT_OK("bind shorter * replier later", kbind(r2, nm("*"), 1));
	EXPECT_OK("request under both", send_msg(s, nm("WC.x"), NULL, KB_WANT_A_REPLY, 0, NULL));
	check_eq("the longer prefix does not get it", nummsgs(r1), 0);
	check_eq("the most recent * replier gets it", nummsgs(r2), 1);
	EXPECT_OK("bind exact replier", kbind(r1, nm("WC.x"), 1));
	EXPECT_OK("request to the exact name", send_msg(s, nm("WC.x"), NULL, KB_WANT_A_REPLY, 0, NULL));
	check_eq("the exact replier gets it", nummsgs(r1), 1);
	take(r1, &m);
	close(r1);
	close(r2);
	close(s);
}

/* ENOLCK: the requester's own queue has no room for the reply. */
static void test_enolck(void)
{
	int s = kopen(0, O_RDWR), r = kopen(0, O_RDWR);
	const char *name = nm("Lck");
	struct kb_msg_id id1 = {0, 0}, id2 = {0, 0};
	uint32_t v;

	EXPECT_OK("bind replier", kbind(r, name, 1));
	check_eq("MAXMSGS 1", u32_ioctl(s, KB_IOC_MAXMSGS, 1, &v) >= 0, 1);
	check_eq("MAXMSGS 1 result", v, 1);
	EXPECT_OK("first request", send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, &id1));
	EXPECT_ERR("second request while the first is outstanding",
		   send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, &id2), ENOLCK);
	check_eq("ENOLCK takes no serial: LASTSENT still the first", lastsent(s).serial_num,
		 id1.serial_num);
	check_eq("the replier has only one", nummsgs(r), 1);
	EXPECT_ERR("ENOLCK discards the message", ioctl(s, KB_IOC_SEND, &id2), ENOMSG);
	close(s);
	close(r);
}

/* EBUSY: the replier's queue is full. */
static void test_ebusy(void)
{
	int s = kopen(0, O_RDWR), r = kopen(0, O_RDWR);
	const char *name = nm("Busy");
	struct kb_msg_id id1 = {0, 0}, id2 = {0, 0};
	uint32_t v;

	EXPECT_OK("bind replier", kbind(r, name, 1));
	u32_ioctl(r, KB_IOC_MAXMSGS, 1, &v);
	EXPECT_OK("first request fills the replier", send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, &id1));
	EXPECT_ERR("second request to the full replier",
		   send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, &id2), EBUSY);
	check_true("EBUSY took a serial (LASTSENT)", lastsent(s).serial_num > id1.serial_num,
		   "above the first request's");
	EXPECT_ERR("...even with ALL_OR_FAIL",
		   send_msg(s, name, NULL, KB_WANT_A_REPLY | KB_ALL_OR_FAIL, 0, &id2), EBUSY);
	check_eq("the replier still has one", nummsgs(r), 1);
	close(s);
	close(r);
}

/* ALL_OR_WAIT to a full listener: EAGAIN, then "sending" until DISCARD. */
static void test_all_or_wait(void)
{
	int s = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	const char *name = nm("Wait");
	unsigned char buf[256];
	struct kb_msg_id id = {0, 0}, id2 = {0, 0};
	uint32_t v;

	EXPECT_OK("bind listener", kbind(l, name, 0));
	u32_ioctl(l, KB_IOC_MAXMSGS, 1, &v);
	EXPECT_OK("fill the listener", send_msg(s, name, NULL, 0, 0, NULL));
	EXPECT_ERR("ALL_OR_FAIL to a full listener", send_msg(s, name, NULL, KB_ALL_OR_FAIL, 0, NULL),
		   EBUSY);
	EXPECT_OK("a plain send skips the full listener", send_msg(s, name, NULL, 0, 0, NULL));
	memset(&id, 0, sizeof id);
	EXPECT_ERR("ALL_OR_WAIT to a full listener", send_msg(s, name, NULL, KB_ALL_OR_WAIT, 0, &id),
		   EAGAIN);
	check_true("EAGAIN still gives the id", id.serial_num != 0, "a nonzero serial");
	check_eq("LASTSENT is the pending send", lastsent(s).serial_num, id.serial_num);
	struct kb_header h = kb_header_for(strlen(name), 0, 0);
	size_t len = kb_build_entire(buf, &h, name, NULL);
	EXPECT_ERR("write while sending", write(s, buf, len), EALREADY);
	memset(&id2, 0, sizeof id2);
	EXPECT_ERR("SEND again while the listener is full", ioctl(s, KB_IOC_SEND, &id2), EAGAIN);
	check_eq("... keeps the id", id2.serial_num, id.serial_num);
	check_eq("DISCARD ends it", ioctl(s, KB_IOC_DISCARD), 0);
	check_eq("write works again", write(s, buf, len), (long long)len);
	ioctl(s, KB_IOC_DISCARD);
	drain(l);
	check_eq("the discarded send never arrives", nummsgs(l), 0);

	/* Waiting again; the listener makes room; SEND then completes it. */
	EXPECT_OK("fill the listener again", send_msg(s, name, NULL, 0, 0, NULL));
	EXPECT_ERR("ALL_OR_WAIT again", send_msg(s, name, "w", KB_ALL_OR_WAIT, 0, &id), EAGAIN);
	struct msg m;
	take(l, &m);
	memset(&id2, 0, sizeof id2);
	check_eq("SEND after the listener made room", ioctl(s, KB_IOC_SEND, &id2), 0);
	check_eq("... gives the id it had", id2.serial_num, id.serial_num);
	if (take_named("the waiting message arrives", l, &m, name))
		check_eq("... with its id", m.h.id.serial_num, id.serial_num);
	EXPECT_ERR("then nothing is written", ioctl(s, KB_IOC_SEND, &id2), ENOMSG);
	close(s);
	close(l);
}

/* Stateful requests: `to` names the replier the sender expects. */
static void test_stateful(void)
{
	int s = kopen(0, O_RDWR), r = kopen(0, O_RDWR), other = kopen(0, O_RDWR);
	uint32_t rid = ksock_id(r), oid = ksock_id(other);
	const char *name = nm("State");
	struct kb_msg_id id = {0, 0};

	EXPECT_ERR("stateful request with no replier",
		   send_msg(s, name, NULL, KB_WANT_A_REPLY, rid, &id), EADDRNOTAVAIL);
	EXPECT_OK("bind replier", kbind(r, name, 1));
	EXPECT_OK("stateful request to the replier", send_msg(s, name, NULL, KB_WANT_A_REPLY, rid, &id));
	struct kb_msg_id before = lastsent(s);
	EXPECT_ERR("stateful request naming another Ksock",
		   send_msg(s, name, NULL, KB_WANT_A_REPLY, oid, &id), EPIPE);
	check_true("EPIPE took a serial (LASTSENT)", lastsent(s).serial_num > before.serial_num,
		   "above the previous send's");
	check_eq("the replier got only the first", nummsgs(r), 1);
	close(s);
	close(r);
	close(other);
}

/* UNBIND removes the queued copies that binding brought, and only those. */
static void test_unbind_removes_copies(void)
{
	int k = kopen(0, O_RDWR), s = kopen(0, O_RDWR);
	const char *name = nm("UnbQ");
	uint32_t len, left;
	struct msg m;

	EXPECT_OK("bind exact", kbind(k, name, 0));
	EXPECT_OK("bind exact again", kbind(k, name, 0));
	EXPECT_OK("bind %", kbind(k, nm("%"), 0));
	EXPECT_OK("send", send_msg(s, name, "a", 0, 0, NULL));
	check_eq("one copy per binding", nummsgs(k), 3);
	EXPECT_OK("unbind one exact binding", kunbind(k, name, 0));
	check_eq("its copy is gone", nummsgs(k), 2);
	EXPECT_OK("unbind %", kunbind(k, nm("%"), 0));
	check_eq("the % copy is gone", nummsgs(k), 1);
	check_eq("take the last copy", u32_ioctl(k, KB_IOC_NEXTMSG, 0, &len), 1);
	EXPECT_OK("unbind the last binding", kunbind(k, name, 0));
	u32_ioctl(k, KB_IOC_LENLEFT, 0, &left);
	check_eq("the message being read survives its binding's unbind", left, len);
	take(k, &m);
	close(k);
	close(s);
}

/* --------------------------------------------------------- REPLIER query */

static void test_replier_query(void)
{
	int r = kopen(0, O_RDWR), q = kopen(0, O_RDONLY);
	uint32_t rid = ksock_id(r);
	struct kb_bind b;

	EXPECT_OK("bind exact replier", kbind(r, nm("Q.Exact"), 1));
	EXPECT_OK("bind wildcard replier", kbind(r, nm("Q.*"), 1));

	b = (struct kb_bind){0, (uint32_t)strlen(nm("Q.Exact")), nm("Q.Exact")};
	check_eq("REPLIER for a bound name returns 1", ioctl(q, KB_IOC_REPLIER, &b), 1);
	check_eq("REPLIER gives the replier's id", b.is_replier, rid);

	b = (struct kb_bind){77, (uint32_t)strlen(nm("Q.Other")), nm("Q.Other")};
	check_eq("REPLIER for a name matched only by a wildcard returns 0",
		 ioctl(q, KB_IOC_REPLIER, &b), 0);
	check_eq("... with id 0", b.is_replier, 0);

	b = (struct kb_bind){0, (uint32_t)strlen(nm("Q.*")), nm("Q.*")};
	check_eq("REPLIER for the wildcard string itself returns 1", ioctl(q, KB_IOC_REPLIER, &b), 1);
	check_eq("... with the id", b.is_replier, rid);

	b = (struct kb_bind){77, (uint32_t)strlen(nm("Unbound")), nm("Unbound")};
	check_eq("REPLIER for an unbound name returns 0", ioctl(q, KB_IOC_REPLIER, &b), 0);
	check_eq("... with id 0", b.is_replier, 0);

	b = (struct kb_bind){77, 6, "$.a..b"};
	check_eq("REPLIER for an invalid name returns 0 (no validation)",
		 ioctl(q, KB_IOC_REPLIER, &b), 0);

	b = (struct kb_bind){0, 0, nm("Q.Exact")};
	EXPECT_ERR("REPLIER with name_len 0", ioctl(q, KB_IOC_REPLIER, &b), ENAMETOOLONG);
	static char longname[1002];
	memset(longname, 'a', 1001);
	memcpy(longname, "$.", 2);
	b = (struct kb_bind){0, 1001, longname};
	EXPECT_ERR("REPLIER with name_len 1001", ioctl(q, KB_IOC_REPLIER, &b), ENAMETOOLONG);

	close(r);
	b = (struct kb_bind){77, (uint32_t)strlen(nm("Q.Exact")), nm("Q.Exact")};
	check_eq("REPLIER after the replier closed returns 0", ioctl(q, KB_IOC_REPLIER, &b), 0);
	close(q);
}

/* ---------------------------------------------------- MAXMSGS / NUMMSGS */

static void test_maxmsgs(void)
{
	int k = kopen(0, O_RDWR);
	const char *name = nm("Max");
	uint32_t v = 0;

	check_true("MAXMSGS query", u32_ioctl(k, KB_IOC_MAXMSGS, 0, &v) >= 0, "success");
	check_eq("default queue limit", v, 100);
	check_true("MAXMSGS set 5", u32_ioctl(k, KB_IOC_MAXMSGS, 5, &v) >= 0, "success");
	check_eq("MAXMSGS set 5 gives the resulting limit", v, 5);
	u32_ioctl(k, KB_IOC_MAXMSGS, 0, &v);
	check_eq("MAXMSGS query after set", v, 5);

	EXPECT_OK("bind own name", kbind(k, name, 0));
	check_eq("NUMMSGS empty", nummsgs(k), 0);
	for (int i = 0; i < 3; i++)
		EXPECT_OK("send to self", send_msg(k, name, NULL, 0, 0, NULL));
	check_eq("NUMMSGS after 3", nummsgs(k), 3);
	/* Lowering below the count discards nothing; new copies are dropped. */
	u32_ioctl(k, KB_IOC_MAXMSGS, 2, &v);
	check_eq("MAXMSGS lowered to 2", v, 2);
	EXPECT_OK("send to own full queue (listener skipped)", send_msg(k, name, NULL, 0, 0, NULL));
	check_eq("NUMMSGS still 3", nummsgs(k), 3);
	struct msg m;
	take(k, &m);
	check_eq("NUMMSGS after one NEXTMSG", nummsgs(k), 2);
	close(k);
}

/* ------------------------------------------------ MSGONLYONCE / VERBOSE */

/* A 0 / 1 / 0xFFFFFFFF flag ioctl: returns previous values, 2 is EINVAL. */
static void check_flag_ioctl(const char *what, int fd, unsigned long cmd)
{
	char w[128];
	uint32_t v;
#define W(s) (snprintf(w, sizeof w, "%s %s", what, s), w)
	EXPECT_OK(W("query"), u32_ioctl(fd, cmd, 0xFFFFFFFFu, &v));
	check_eq(W("default is 0"), v, 0);
	EXPECT_OK(W("set 1"), u32_ioctl(fd, cmd, 1, &v));
	check_eq(W("set 1 returns previous 0"), v, 0);
	u32_ioctl(fd, cmd, 0xFFFFFFFFu, &v);
	check_eq(W("query after set gives 1"), v, 1);
	EXPECT_OK(W("set 1 again"), u32_ioctl(fd, cmd, 1, &v));
	check_eq(W("set 1 again returns previous 1"), v, 1);
	EXPECT_ERR(W("arg 2"), u32_ioctl(fd, cmd, 2, NULL), EINVAL);
	u32_ioctl(fd, cmd, 0xFFFFFFFFu, &v);
	check_eq(W("EINVAL changed nothing"), v, 1);
	EXPECT_OK(W("set 0"), u32_ioctl(fd, cmd, 0, &v));
	check_eq(W("set 0 returns previous 1"), v, 1);
	u32_ioctl(fd, cmd, 0xFFFFFFFFu, &v);
	check_eq(W("query after clear gives 0"), v, 0);
#undef W
}

static void test_msgonlyonce(void)
{
	int k = kopen(0, O_RDWR), s = kopen(0, O_RDWR);
	const char *name = nm("Once.A");
	uint32_t v;

	check_flag_ioctl("MSGONLYONCE", k, KB_IOC_MSGONLYONCE);

	/* Its effect: two matching bindings give one copy. */
	EXPECT_OK("bind exact", kbind(k, name, 0));
	EXPECT_OK("bind wildcard", kbind(k, nm("Once.*"), 0));
	EXPECT_OK("send", send_msg(s, name, NULL, 0, 0, NULL));
	check_eq("without only-once: two copies", nummsgs(k), 2);
	drain(k);
	u32_ioctl(k, KB_IOC_MSGONLYONCE, 1, &v);
	EXPECT_OK("send", send_msg(s, name, NULL, 0, 0, NULL));
	EXPECT_OK("send", send_msg(s, name, NULL, 0, 0, NULL));
	check_eq("with only-once: one copy each", nummsgs(k), 2);
	/* A replier's copy is the one kept. */
	drain(k);
	EXPECT_OK("bind replier too", kbind(k, name, 1));
	EXPECT_OK("request", send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, NULL));
	check_eq("only-once with replier and listeners: one copy", nummsgs(k), 1);
	struct msg m;
	if (take(k, &m))
		check_eq("it is the replier's copy", m.h.flags & KB_WANT_YOU_TO_REPLY,
			 KB_WANT_YOU_TO_REPLY);
	/* The second Ksock's setting is its own. */
	u32_ioctl(s, KB_IOC_MSGONLYONCE, 0xFFFFFFFFu, &v);
	check_eq("MSGONLYONCE is per Ksock", v, 0);
	close(k);
	close(s);
}

/* ------------------------------------------------------------- NEWDEVICE */

/* Returns the new device's number, or 0 (meaning: use kbus0) on failure. */
static unsigned test_newdevice(void)
{
	int k = kopen(0, O_RDWR);
	uint32_t n = 0;
	struct stat st;
	char path[32];

	check_eq("NEWDEVICE returns 0", u32_ioctl(k, KB_IOC_NEWDEVICE, 0, &n), 0);
	check_true("NEWDEVICE gives a new number", n >= 3, ">= 3 (the daemon has 0..2)");
	close(k);
	if (n < 1 || n > 255)
		return 0;
	snprintf(path, sizeof path, "/dev/kbus%u", n);
	EXPECT_OK("stat the new device at once", stat(path, &st));
	check_eq("its st_mode", st.st_mode, 020666);
	int a = open(path, O_RDWR);
	check_ok("open the new device", a, errno);
	if (a < 0)
		return 0;
	check_eq("first Ksock on a new device has id 1", ksock_id(a), 1);
	close(a);
	return n;
}

/* --------------------------------------------------- device-wide ioctls */

static void test_verbose(unsigned dev)
{
	int k = kopen(dev, O_RDWR);
	check_flag_ioctl("VERBOSE", k, KB_IOC_VERBOSE);
	close(k);
}

static void test_maxmsgsize(unsigned dev)
{
	int k = kopen(dev, O_RDWR), l = kopen(dev, O_RDWR);
	const char *name = nm("Size");
	uint32_t orig = 0, abs_max = 0, v = 0;
	unsigned char buf[512];
	static char data[256];
	struct kb_msg_id id = {0, 0};

	memset(data, 'd', sizeof data);
	EXPECT_OK("MAXMSGSIZE 0 (query)", u32_ioctl(k, KB_IOC_MAXMSGSIZE, 0, &orig));
	EXPECT_OK("MAXMSGSIZE 1 (absolute max)", u32_ioctl(k, KB_IOC_MAXMSGSIZE, 1, &abs_max));
	check_true("current max <= absolute max", orig <= abs_max && orig >= 100,
		   "100 <= current <= absolute");
	EXPECT_ERR("MAXMSGSIZE 99", u32_ioctl(k, KB_IOC_MAXMSGSIZE, 99, NULL), EINVAL);
	EXPECT_ERR("MAXMSGSIZE 2", u32_ioctl(k, KB_IOC_MAXMSGSIZE, 2, NULL), EINVAL);
	if (abs_max < 0xFFFFFFFFu)
		EXPECT_ERR("MAXMSGSIZE absolute+1",
			   u32_ioctl(k, KB_IOC_MAXMSGSIZE, abs_max + 1, NULL), EINVAL);
	u32_ioctl(k, KB_IOC_MAXMSGSIZE, 0, &v);
	check_eq("failed sets changed nothing", v, orig);

	EXPECT_OK("MAXMSGSIZE 200", u32_ioctl(k, KB_IOC_MAXMSGSIZE, 200, &v));
	check_eq("MAXMSGSIZE 200 gives 200", v, 200);
	u32_ioctl(l, KB_IOC_MAXMSGSIZE, 0, &v);
	check_eq("another Ksock sees 200", v, 200);

	/* Entire length exactly 200 fits; 4 bytes more (data_len+1) does not. */
	EXPECT_OK("bind listener", kbind(l, name, 0));
	size_t n = strlen(name), d = 200 - 92 - kb_padded_name_len(n);
	check_eq("entire length of the largest message", kb_entire_len(n, d), 200);
	struct kb_header h = kb_header_for(n, d, 0);
	EXPECT_OK("send entire length 200", send_hdr(k, h, name, data, &id));
	check_eq("it arrives", nummsgs(l), 1);
	h = kb_header_for(n, d + 1, 0);
	size_t len = kb_build_entire(buf, &h, name, data);
	write_fails("entire message of length 204", k, buf, len, EMSGSIZE);
	h.name = (char *)name;
	h.data = data;
	write_fails("pointy message measured in entire form", k, &h, sizeof h, EMSGSIZE);
	h = kb_header_for(n, d, 0);
	h.name = (char *)name;
	h.data = data;
	check_eq("pointy message of entire length 200", write(k, &h, sizeof h), sizeof h);
	EXPECT_OK("... sends", ioctl(k, KB_IOC_SEND, &id));

	EXPECT_OK("MAXMSGSIZE 100", u32_ioctl(k, KB_IOC_MAXMSGSIZE, 100, &v));
	EXPECT_OK("restore MAXMSGSIZE", u32_ioctl(k, KB_IOC_MAXMSGSIZE, orig, &v));
	check_eq("restored", v, orig);
	close(k);
	close(l);
}

/* Checks a $.KBUS.ReplierBindEvent message's data. */
static void check_bind_event(const char *what, const struct msg *m, uint32_t is_bind,
			     uint32_t binder, const char *name)
{
	char w[160];
	struct kb_bind_event ev;
	snprintf(w, sizeof w, "%s: name", what);
	check_str(w, m->name, "$.KBUS.ReplierBindEvent");
	snprintf(w, sizeof w, "%s: data_len", what);
	/* 12 bytes of fields, then the name with its NUL, padded to 4. */
	check_eq(w, m->h.data_len, sizeof ev + kb_padded_name_len(strlen(name)));
	memcpy(&ev, m->data, sizeof ev);
	snprintf(w, sizeof w, "%s: is_bind", what);
	check_eq(w, ev.is_bind, is_bind);
	snprintf(w, sizeof w, "%s: binder", what);
	check_eq(w, ev.binder, binder);
	snprintf(w, sizeof w, "%s: name_len", what);
	check_eq(w, ev.name_len, strlen(name));
	snprintf(w, sizeof w, "%s: bound name", what);
	check_true(w, memcmp(m->data + sizeof ev, name, strlen(name)) == 0, name);
	snprintf(w, sizeof w, "%s: flags", what);
	check_eq(w, m->h.flags & (KB_SYNTHETIC | KB_WANT_A_REPLY), KB_SYNTHETIC);
	snprintf(w, sizeof w, "%s: from", what);
	check_eq(w, m->h.from, 0);
}

static void test_report_replier_binds(unsigned dev)
{
	int r = kopen(dev, O_RDWR), k = kopen(dev, O_RDWR), s = kopen(dev, O_RDWR);
	uint32_t rid = ksock_id(r), v;
	const char *one = nm("RB.One"), *two = nm("RB.Two"), *three = nm("RB.Three");
	struct msg m;

	/* Start from "off" on this device. */
	u32_ioctl(k, KB_IOC_REPORTREPLIERBINDS, 0, NULL);
	EXPECT_OK("bind replier One", kbind(r, one, 1));
	EXPECT_OK("bind replier Two", kbind(r, two, 1));
	EXPECT_OK("a listener bind", kbind(r, nm("RB.Listen"), 0));

	/* busbar: switching on with no room for the dump is EBUSY and changes
	 * nothing (KBUS left the flag on and part of the dump queued). */
	u32_ioctl(k, KB_IOC_MAXMSGS, 1, &v);
	EXPECT_ERR("REPORTREPLIERBINDS 1 with no room for the dump",
		   u32_ioctl(k, KB_IOC_REPORTREPLIERBINDS, 1, NULL), EBUSY);
	u32_ioctl(k, KB_IOC_REPORTREPLIERBINDS, 0xFFFFFFFFu, &v);
	check_eq("... the flag stays off", v, 0);
	check_eq("... nothing queued", nummsgs(k), 0);
	u32_ioctl(k, KB_IOC_MAXMSGS, 100, &v);

	/* Switching on dumps the existing replier binds to the caller, whether
	 * or not it listens to the event name. */
	EXPECT_OK("REPORTREPLIERBINDS 1", u32_ioctl(k, KB_IOC_REPORTREPLIERBINDS, 1, &v));
	check_eq("REPORTREPLIERBINDS 1 returns previous 0", v, 0);
	int seen_one = 0, seen_two = 0, others = 0;
	while (take(k, &m)) {
		struct kb_bind_event ev;
		memcpy(&ev, m.data, sizeof ev);
		const char *bound = (const char *)m.data + sizeof ev;
		if (ev.binder == rid && strcmp(bound, one) == 0) {
			seen_one++;
			check_bind_event("dump of One", &m, 1, rid, one);
		} else if (ev.binder == rid && strcmp(bound, two) == 0) {
			seen_two++;
			check_bind_event("dump of Two", &m, 1, rid, two);
		} else {
			others++;
		}
	}
	check_eq("dump has One once", seen_one, 1);
	check_eq("dump has Two once", seen_two, 1);
	check_eq("dump has nothing else (private device)", others, 0);
	u32_ioctl(k, KB_IOC_REPORTREPLIERBINDS, 0xFFFFFFFFu, &v);
	check_eq("REPORTREPLIERBINDS query gives 1", v, 1);
	EXPECT_ERR("REPORTREPLIERBINDS 2", u32_ioctl(k, KB_IOC_REPORTREPLIERBINDS, 2, NULL), EINVAL);

	/* While on: a replier bind/unbind tells listeners of the event name. */
	EXPECT_OK("listen to bind events", kbind(k, "$.KBUS.ReplierBindEvent", 0));
	EXPECT_OK("replier bind Three", kbind(r, three, 1));
	if (take(k, &m))
		check_bind_event("event for bind of Three", &m, 1, rid, three);
	else
		check_true("event for bind of Three", 0, "a message");
	EXPECT_OK("listener bind (no event)", kbind(r, nm("RB.Four"), 0));
	check_eq("no event for a listener bind", nummsgs(k), 0);
	EXPECT_OK("replier unbind Three", kunbind(r, three, 1));
	if (take(k, &m))
		check_bind_event("event for unbind of Three", &m, 0, rid, three);
	else
		check_true("event for unbind of Three", 0, "a message");
	EXPECT_ERR("bad unbind", kunbind(r, three, 1), EINVAL);
	EXPECT_ERR("EADDRINUSE before any event", kbind(s, one, 1), EADDRINUSE);
	check_eq("no event for failed binds", nummsgs(k), 0);

	/* A full listener of the events blocks replier binds: EAGAIN. */
	u32_ioctl(k, KB_IOC_MAXMSGS, 1, &v);
	EXPECT_OK("replier bind Three again", kbind(r, three, 1));
	EXPECT_ERR("replier bind while the event listener is full", kbind(r, nm("RB.Five"), 1),
		   EAGAIN);
	struct kb_bind q = {0, (uint32_t)strlen(nm("RB.Five")), nm("RB.Five")};
	check_eq("... and it was not done", ioctl(k, KB_IOC_REPLIER, &q), 0);
	EXPECT_ERR("replier unbind while the event listener is full", kunbind(r, three, 1),
		   EAGAIN);
	q = (struct kb_bind){0, (uint32_t)strlen(three), three};
	check_eq("... and it was not done", ioctl(k, KB_IOC_REPLIER, &q), 1);
	drain(k);

	u32_ioctl(k, KB_IOC_MAXMSGS, 100, &v);

	/* A closing Ksock's replier bindings are unbound: is_bind 0 events. */
	int c = kopen(dev, O_RDWR);
	uint32_t cid = ksock_id(c);
	EXPECT_OK("replier bind Six", kbind(c, nm("RB.Six"), 1));
	if (take(k, &m))
		check_bind_event("event for bind of Six", &m, 1, cid, nm("RB.Six"));
	close(c);
	if (take(k, &m))
		check_bind_event("event for Six when its Ksock closed", &m, 0, cid, nm("RB.Six"));
	else
		check_true("event for Six when its Ksock closed", 0, "a message");

	/* Switch off: no more events. */
	EXPECT_OK("REPORTREPLIERBINDS 0", u32_ioctl(k, KB_IOC_REPORTREPLIERBINDS, 0, &v));
	check_eq("REPORTREPLIERBINDS 0 returns previous 1", v, 1);
	EXPECT_OK("replier bind Five", kbind(r, nm("RB.Five"), 1));
	check_eq("no event when off", nummsgs(k), 0);
	close(r);
	close(k);
	close(s);
}

/* Exact serial arithmetic (on a device nobody else sends on). */
static void test_serials(unsigned dev)
{
	int s = kopen(dev, O_RDWR);
	struct kb_msg_id a = {0, 0}, b = {0, 0}, failed = {0, 0};
	const char *name = nm("Serial");

	EXPECT_OK("announcement", send_msg(s, name, NULL, 0, 0, &a));
	EXPECT_ERR("request with no replier", send_msg(s, name, NULL, KB_WANT_A_REPLY, 0, NULL),
		   EADDRNOTAVAIL);
	failed = lastsent(s);
	check_eq("the failed request took the next serial", failed.serial_num, a.serial_num + 1);
	EXPECT_OK("announcement", send_msg(s, name, NULL, 0, 0, &b));
	check_eq("the next send's serial is larger by 2", b.serial_num, a.serial_num + 2);
	close(s);
}

/* ------------------------------------------- RESET, ENOTTY, EFAULT */

static void test_misc_ioctls(void)
{
	int k = kopen(0, O_RDWR);
	check_eq("RESET returns 0", ioctl(k, KB_IOC_RESET), 0);
	EXPECT_ERR("unknown 'k' ioctl _IO('k', 0x30)", ioctl(k, _IO('k', 0x30)), ENOTTY);
	EXPECT_ERR("KSOCKID with a wrong size field", ioctl(k, 0x80046b04u, &(uint32_t){0}), ENOTTY);
	EXPECT_ERR("a terminal ioctl (TCGETS) on a Ksock", ioctl(k, 0x5401, &(char[64]){0}), ENOTTY);
	EXPECT_ERR("KSOCKID NULL", ioctl(k, KB_IOC_KSOCKID, NULL), EFAULT);
	EXPECT_ERR("BIND NULL", ioctl(k, KB_IOC_BIND, NULL), EFAULT);
	EXPECT_ERR("NEXTMSG NULL", ioctl(k, KB_IOC_NEXTMSG, NULL), EFAULT);
	EXPECT_ERR("MAXMSGS NULL", ioctl(k, KB_IOC_MAXMSGS, NULL), EFAULT);
	EXPECT_ERR("LASTSENT NULL", ioctl(k, KB_IOC_LASTSENT, NULL), EFAULT);
	EXPECT_ERR("MAXMSGSIZE NULL", ioctl(k, KB_IOC_MAXMSGSIZE, NULL), EFAULT);
	struct kb_bind b = {0, 5, NULL};
	EXPECT_ERR("BIND with a NULL name pointer", ioctl(k, KB_IOC_BIND, &b), EFAULT);
	check_eq("the Ksock still works", ksock_id(k) != 0, 1);
	close(k);
}

/* ----------------------------------------------------------------- URGENT */

static void test_urgent(void)
{
	int s = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	const char *name = nm("Urgent");
	struct msg m;

	EXPECT_OK("bind listener", kbind(l, name, 0));
	EXPECT_OK("send A", send_msg(s, name, "A", 0, 0, NULL));
	EXPECT_OK("send B", send_msg(s, name, "B", 0, 0, NULL));
	EXPECT_OK("send C urgent", send_msg(s, name, "C", KB_URGENT, 0, NULL));
	EXPECT_OK("send D urgent", send_msg(s, name, "D", KB_URGENT, 0, NULL));
	const char *want = "DCAB";
	char got[5] = "????";
	for (int i = 0; i < 4; i++)
		if (take(l, &m))
			got[i] = (char)m.data[0];
	check_str("urgent first, LIFO among urgent", got, want);
	close(s);
	close(l);
}

/* ------------------------------------------------- /proc/kbus/bindings */

/* Reads the whole file with open+read, or with fopen+fgets. */
static void read_bindings(char *out, size_t cap, int use_stdio)
{
	size_t got = 0;
	out[0] = 0;
	if (use_stdio) {
		FILE *f = fopen("/proc/kbus/bindings", "r");
		check_true("fopen /proc/kbus/bindings", f != NULL, "a FILE");
		if (!f)
			return;
		char line[1200];
		while (fgets(line, sizeof line, f) && got + strlen(line) < cap) {
			strcpy(out + got, line);
			got += strlen(line);
		}
		fclose(f);
	} else {
		int fd = open("/proc/kbus/bindings", O_RDONLY);
		check_ok("open /proc/kbus/bindings", fd, errno);
		if (fd < 0)
			return;
		ssize_t n;
		while (got + 1 < cap && (n = read(fd, out + got, cap - 1 - got)) > 0)
			got += (size_t)n;
		out[got] = 0;
		close(fd);
	}
}

static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
			return 1;
	return 0;
}

static void test_proc_bindings(void)
{
	int r = kopen(0, O_RDWR), l = kopen(0, O_RDONLY);
	uint32_t rid = ksock_id(r), lid = ksock_id(l);
	static char text[1 << 20];
	char rline[200], lline[200];

	EXPECT_OK("bind replier", kbind(r, nm("Proc.R"), 1));
	EXPECT_OK("bind listener", kbind(l, nm("Proc.L"), 0));
	snprintf(rline, sizeof rline, "%3u: %8u %8lu  %c  %s", 0u, rid, (unsigned long)getpid(), 'R',
		 nm("Proc.R"));
	snprintf(lline, sizeof lline, "%3u: %8u %8lu  %c  %s", 0u, lid, (unsigned long)getpid(), 'L',
		 nm("Proc.L"));
	for (int stdio = 0; stdio < 2; stdio++) {
		read_bindings(text, sizeof text, stdio);
		const char *how = stdio ? "fopen" : "open+read";
		char w[200];
		snprintf(w, sizeof w, "bindings (%s) starts with a # line", how);
		check_true(w, text[0] == '#', "'#' first");
		snprintf(w, sizeof w, "bindings (%s) has the replier line", how);
		check_true(w, has_line(text, rline), rline);
		snprintf(w, sizeof w, "bindings (%s) has the listener line", how);
		check_true(w, has_line(text, lline), lline);
	}
	/* After close its bindings are gone. */
	close(r);
	read_bindings(text, sizeof text, 0);
	check_true("replier line gone after close", !has_line(text, rline), "no replier line");
	check_true("listener line still there", has_line(text, lline), lline);
	EXPECT_OK("unbind listener", kunbind(l, nm("Proc.L"), 0));
	read_bindings(text, sizeof text, 1);
	check_true("listener line gone after unbind", !has_line(text, lline), "no listener line");
	close(l);
}

/* ----------------------------------------------- synthetic replies */

static void check_synthetic(const char *what, int s, const char *want, uint32_t rid,
			    uint32_t sid, struct kb_msg_id req)
{
	struct msg m;
	char w[160];
	snprintf(w, sizeof w, "%s: synthetic reply", what);
	if (!take_named(w, s, &m, want))
		return;
	snprintf(w, sizeof w, "%s: in_reply_to", what);
	check_eq(w, m.h.in_reply_to.serial_num, req.serial_num);
	snprintf(w, sizeof w, "%s: from", what);
	check_eq(w, m.h.from, rid);
	snprintf(w, sizeof w, "%s: to", what);
	check_eq(w, m.h.to, sid);
	snprintf(w, sizeof w, "%s: SYNTHETIC flag", what);
	check_eq(w, m.h.flags & KB_SYNTHETIC, KB_SYNTHETIC);
	snprintf(w, sizeof w, "%s: no data", what);
	check_eq(w, m.h.data_len, 0);
}

static void test_synthetic(void)
{
	int s = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	uint32_t sid = ksock_id(s);
	struct kb_msg_id id = {0, 0};
	uint32_t len;

	/* The replier closes with the request unread: GoneAway. */
	int r = kopen(0, O_RDWR);
	uint32_t rid = ksock_id(r);
	EXPECT_OK("bind replier", kbind(r, nm("Gone"), 1));
	EXPECT_OK("bind listener", kbind(l, nm("Gone"), 0));
	EXPECT_OK("request", send_msg(s, nm("Gone"), NULL, KB_WANT_A_REPLY, 0, &id));
	close(r);
	check_synthetic("replier closed unread", s, "$.KBUS.Replier.GoneAway", rid, sid, id);
	drain(l);

	/* The replier took it (NEXTMSG, not even read) and closed: Ignored. */
	r = kopen(0, O_RDWR);
	rid = ksock_id(r);
	EXPECT_OK("bind replier", kbind(r, nm("Ign"), 1));
	EXPECT_OK("bind listener", kbind(l, nm("Ign"), 0));
	EXPECT_OK("request", send_msg(s, nm("Ign"), NULL, KB_WANT_A_REPLY, 0, &id));
	check_eq("replier NEXTMSG", u32_ioctl(r, KB_IOC_NEXTMSG, 0, &len), 1);
	close(r);
	check_synthetic("replier took it and closed", s, "$.KBUS.Replier.Ignored", rid, sid, id);

	/* The replier unbinds with it unread: Unbound, and it leaves the queue. */
	r = kopen(0, O_RDWR);
	rid = ksock_id(r);
	EXPECT_OK("bind replier", kbind(r, nm("Unb"), 1));
	EXPECT_OK("bind listener", kbind(l, nm("Unb"), 0));
	EXPECT_OK("request", send_msg(s, nm("Unb"), NULL, KB_WANT_A_REPLY, 0, &id));
	check_eq("replier has it queued", nummsgs(r), 1);
	EXPECT_OK("replier unbinds", kunbind(r, nm("Unb"), 1));
	check_eq("the unbind removed it from the replier's queue", nummsgs(r), 0);
	check_synthetic("replier unbound", s, "$.KBUS.Replier.Unbound", rid, sid, id);
	close(r);

	/* A request waiting (ALL_OR_WAIT) for a full replier that then goes
	 * away: the retry finds no replier, and the requester gets
	 * Disappeared (from KBUS itself). Another requester's request that
	 * was in the replier's queue gets GoneAway. */
	int s2 = kopen(0, O_RDWR);
	r = kopen(0, O_RDWR);
	rid = ksock_id(r);
	struct kb_msg_id first = {0, 0};
	EXPECT_OK("bind replier", kbind(r, nm("Dis"), 1));
	u32_ioctl(r, KB_IOC_MAXMSGS, 1, &len);
	EXPECT_OK("first request fills the replier",
		  send_msg(s2, nm("Dis"), NULL, KB_WANT_A_REPLY, 0, &first));
	EXPECT_ERR("request waiting for room",
		   send_msg(s, nm("Dis"), NULL, KB_WANT_A_REPLY | KB_ALL_OR_WAIT, 0, &id), EAGAIN);
	close(r);
	struct pollfd pw = {s, POLLOUT, 0};
	check_eq("the waiting send ends (POLLOUT within 10 s)", poll(&pw, 1, 10000), 1);
	check_synthetic("waiting request, replier gone", s, "$.KBUS.Replier.Disappeared", 0, sid, id);
	check_synthetic("queued request, replier gone", s2, "$.KBUS.Replier.GoneAway", rid,
			ksock_id(s2), first);
	close(s2);

	/* Synthetic replies go only to the requester, not to listeners. */
	struct msg m;
	int ann = 0;
	while (take(l, &m))
		if (strncmp(m.name, "$.KBUS.", 7) == 0)
			ann++;
	check_eq("listeners see no synthetic replies", ann, 0);
	check_eq("requester has nothing more", nummsgs(s), 0);
	close(s);
	close(l);
}

/* ------------------------------- bad buffers, O_WRONLY, paths, EPOLLET */

/*
 * Behaviour the emulation did not match when these tests were first
 * written, since fixed.
 */

/* Child modes ("./abi --child MODE"): a bad buffer given to read or write,
 * run in a separate process so that a crash is a failure, not the end. */
static int child_bad_buffer(const char *mode)
{
	int s = kopen(0, O_RDWR), l = kopen(0, O_RDWR);
	uint32_t len;
	long rc;
	EXPECT_OK("bind", kbind(l, nm("Bad"), 0));
	EXPECT_OK("send", send_msg(s, nm("Bad"), "data", 0, 0, NULL));
	u32_ioctl(l, KB_IOC_NEXTMSG, 0, &len);
	/* volatile: keep the compiler from seeing (and refusing) the pointer */
	static volatile uintptr_t null_addr = 0, bad_addr = 8;
	errno = 0;
	if (strcmp(mode, "read-null") == 0)
		rc = read(l, (void *)null_addr, 10);
	else if (strcmp(mode, "read-bad") == 0)
		rc = read(l, (void *)bad_addr, 10);
	else
		rc = write(s, (const void *)bad_addr, 10);
	check_errno(mode, rc, errno, EFAULT);
	return kt_finish();
}

static void run_child(const char *mode)
{
	char what[100];
	snprintf(what, sizeof what, "%s (bad buffer pointer): EFAULT, in a child", mode);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		execl("/proc/self/exe", "abi", "--child", mode, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	n_checks++;
	if (WIFSIGNALED(status))
		failf(what, "got killed by signal %d, want -1 (EFAULT)", WTERMSIG(status));
	else if (WEXITSTATUS(status) != 0)
		failf(what, "got exit status %d, want 0", WEXITSTATUS(status));
}

static void test_edges(void)
{
	/* KBUS: copy_to_user/copy_from_user fail with EFAULT. */
	run_child("read-null");
	run_child("read-bad");
	run_child("write-bad");

	/* KBUS: the VFS refuses read on a file not opened for reading. */
	int s = kopen(0, O_RDWR), wo = kopen(0, O_WRONLY);
	uint32_t len;
	char buf[256];
	EXPECT_OK("bind on O_WRONLY", kbind(wo, nm("WO"), 0));
	EXPECT_OK("send", send_msg(s, nm("WO"), "x", 0, 0, NULL));
	check_eq("NEXTMSG on O_WRONLY", u32_ioctl(wo, KB_IOC_NEXTMSG, 0, &len), 1);
	EXPECT_ERR("read on an O_WRONLY Ksock", read(wo, buf, sizeof buf), EBADF);
	close(wo);

	/* The device is a path like any other: relative or not canonical. */
	int fd = open("/dev//kbus0", O_RDWR);
	check_ok("open /dev//kbus0", fd, errno);
	if (fd >= 0)
		close(fd);
	if (chdir("/dev") == 0) {
		fd = open("kbus0", O_RDWR);
		check_ok("open kbus0 relative to /dev", fd, errno);
		if (fd >= 0)
			close(fd);
	}

	/* EPOLLET: one event per arrival, not one per epoll_wait. */
	int l = kopen(0, O_RDWR), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET}, evs[2];
	EXPECT_OK("bind", kbind(l, nm("ET"), 0));
	EXPECT_OK("epoll_ctl ADD EPOLLET", epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev));
	EXPECT_OK("send", send_msg(s, nm("ET"), NULL, 0, 0, NULL));
	check_eq("EPOLLET: the arrival is reported", epoll_wait(ep, evs, 2, 10000), 1);
	check_eq("EPOLLET: not again without a new arrival", epoll_wait(ep, evs, 2, 0), 0);
	EXPECT_OK("send", send_msg(s, nm("ET"), NULL, 0, 0, NULL));
	check_eq("EPOLLET: a new arrival is reported", epoll_wait(ep, evs, 2, 10000), 1);
	close(ep);
	close(l);
	close(s);
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	kt_prog = "abi";
	if (argc == 3 && strcmp(argv[1], "--child") == 0)
		return child_bad_buffer(argv[2]);
	test_stat_and_open();
	test_bind();
	test_entire_and_reads();
	test_pointy();
	test_byte_writes();
	test_write_errors();
	test_send_discard();
	test_no_replier();
	test_request_reply();
	test_third_party_reply();
	test_wildcard_replier();
	test_enolck();
	test_ebusy();
	test_all_or_wait();
	test_stateful();
	test_replier_query();
	test_unbind_removes_copies();
	test_maxmsgs();
	test_msgonlyonce();
	test_misc_ioctls();
	test_urgent();
	test_proc_bindings();
	test_synthetic();
	test_edges();

	/* Device-wide settings and serial arithmetic on a private device. */
	unsigned dev = test_newdevice();
	test_verbose(dev);
	test_maxmsgsize(dev);
	test_report_replier_binds(dev);
	test_serials(dev);

	return kt_finish();
}
