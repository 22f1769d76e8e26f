/*
 * readiness.c: many Ksocks in one process, and the readiness of Ksocks in
 * poll, ppoll, select, pselect and epoll, mixed with a pipe and an eventfd.
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -O1 -pthread -o readiness readiness.c
 * Run:   busbar kbus [--socket PATH] -- ./readiness
 *
 * Each check prints "FAIL <what>: got ..., want ..." when it fails; at the
 * end "ok N checks" (exit 0) or "FAILED F of N checks" (exit 1).
 *
 * No sleeps: a thread that must act while the main thread is blocked waits
 * until the main thread is asleep (its state in /proc/self/task/TID/stat),
 * which makes the blocking path likely but is not needed for correctness.
 * Every blocking call has a 10 s timeout, and reaching it is a failure.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <time.h>

#include "kbus_abi.h"
#include "kbus_test.h"

#define GUARD_MS 10000

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ------------------------------------------------- (a) 1001 Ksocks */

#define MANY 1001

static void test_many_ksocks(void)
{
	static int fds[MANY];
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 1100) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		EXPECT_OK("raise RLIMIT_NOFILE", setrlimit(RLIMIT_NOFILE, &rl));
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < MANY + 10) {
		printf("note: RLIMIT_NOFILE is %llu (hard %llu): 1001 Ksocks skipped\n",
		       (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
		return;
	}

	int opened = 0, first_errno = 0, max_fd = -1;
	for (int i = 0; i < MANY; i++) {
		fds[i] = open("/dev/kbus0", O_RDWR);
		if (fds[i] < 0) {
			if (!first_errno)
				first_errno = errno;
			continue;
		}
		opened++;
		if (fds[i] > max_fd)
			max_fd = fds[i];
	}
	check_eq("1001 opens succeed", opened, MANY);
	if (first_errno)
		failf("first failed open", "got %s, want success", ename(first_errno));
	if (opened != MANY) {
		for (int i = 0; i < MANY; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return;
	}
	/* Lowest free fds: 3..1003 if the library keeps nothing else open. */
	check_true("all 1001 Ksock fds < 1024 (usable with select)", max_fd < 1024, "< 1024");

	/* Ids go up with each open (other programs may open in between). */
	uint32_t prev = 0;
	int increasing = 1;
	for (int i = 0; i < MANY; i++) {
		uint32_t id = ksock_id(fds[i]);
		if (id <= prev)
			increasing = 0;
		prev = id;
	}
	check_true("Ksock ids increase with each open", increasing, "strictly increasing ids");

	/* Every 50th Ksock listens (0, 50, ..., 1000); Ksock 1 sends once. */
	const char *name = nm("Many");
	int bind_ok = 1;
	for (int i = 0; i < MANY; i += 50)
		if (kbind(fds[i], name, 0) < 0)
			bind_ok = 0;
	check_true("21 listener binds", bind_ok, "all succeed");
	EXPECT_OK("one send to 21 listeners", send_msg(fds[1], name, "x", 0, 0, NULL));
	int delivered = 0;
	for (int i = 0; i < MANY; i += 50)
		delivered += (int)nummsgs(fds[i]);
	check_eq("each listener has one copy", delivered, 21);
	check_eq("a Ksock that did not bind has none", nummsgs(fds[2]), 0);

	/* select on the highest Ksock fd. */
	fd_set rd;
	FD_ZERO(&rd);
	FD_SET(fds[MANY - 1], &rd);
	struct timeval tv = {0, 0};
	check_eq("select on the last Ksock (fd near 1000)", select(fds[MANY - 1] + 1, &rd, NULL, NULL, &tv),
		 1);
	check_true("... it is readable", FD_ISSET(fds[MANY - 1], &rd), "readable");

	int closed = 0;
	for (int i = 0; i < MANY; i++)
		if (close(fds[i]) == 0)
			closed++;
	check_eq("1001 closes succeed", closed, MANY);

	/* Their bindings went with them: a request finds no replier, and a
	 * new Ksock gets a low fd again. */
	int k = kopen(0, O_RDWR);
	check_true("fds are free again after closing", k < 64, "a low fd");
	EXPECT_OK("send after closing all", send_msg(k, name, NULL, 0, 0, NULL));
	close(k);
}

/* ------------------------------------------- (b) the readiness matrix */

enum mech { M_POLL, M_PPOLL, M_SELECT, M_PSELECT, M_EPOLL, M_EPOLL_KEPT, M_N };
static const char *mech_name[M_N] = {"poll",    "ppoll", "select",
				     "pselect", "epoll", "epoll (set kept across stages)"};

/* The fds of the matrix and what each should report now. */
enum { K_RW, K_RO, K_S, K_Q, P_R, P_W, EFD, N_FD };
static struct {
	int fd;
	const char *label;
	int r, w;
} F[N_FD];
static int kept_ep = -1;

static void want(int i, int r, int w)
{
	F[i].r = r;
	F[i].w = w;
}

/* Asks one mechanism, with a zero timeout, about all the fds at once. */
static void probe(enum mech m, int *r, int *w)
{
	memset(r, 0, sizeof(int) * N_FD);
	memset(w, 0, sizeof(int) * N_FD);
	if (m == M_POLL || m == M_PPOLL) {
		struct pollfd p[N_FD];
		for (int i = 0; i < N_FD; i++)
			p[i] = (struct pollfd){F[i].fd, POLLIN | POLLOUT, 0};
		struct timespec zero = {0, 0};
		int rc = m == M_POLL ? poll(p, N_FD, 0) : ppoll(p, N_FD, &zero, NULL);
		if (rc < 0)
			failf(mech_name[m], "got %s, want success", ename(errno));
		for (int i = 0; i < N_FD; i++) {
			r[i] = !!(p[i].revents & POLLIN);
			w[i] = !!(p[i].revents & POLLOUT);
			if (p[i].revents & (POLLERR | POLLNVAL | POLLHUP))
				failf(mech_name[m], "%s revents 0x%x, want no error bits", F[i].label,
				      p[i].revents);
		}
	} else if (m == M_SELECT || m == M_PSELECT) {
		fd_set rd, wr;
		int max = -1;
		FD_ZERO(&rd);
		FD_ZERO(&wr);
		for (int i = 0; i < N_FD; i++) {
			FD_SET(F[i].fd, &rd);
			FD_SET(F[i].fd, &wr);
			if (F[i].fd > max)
				max = F[i].fd;
		}
		struct timeval tv = {0, 0};
		struct timespec ts = {0, 0};
		int rc = m == M_SELECT ? select(max + 1, &rd, &wr, NULL, &tv)
				       : pselect(max + 1, &rd, &wr, NULL, &ts, NULL);
		if (rc < 0)
			failf(mech_name[m], "got %s, want success", ename(errno));
		for (int i = 0; i < N_FD; i++) {
			r[i] = FD_ISSET(F[i].fd, &rd) != 0;
			w[i] = FD_ISSET(F[i].fd, &wr) != 0;
		}
	} else {
		int ep = kept_ep;
		if (m == M_EPOLL) {
			ep = epoll_create1(EPOLL_CLOEXEC);
			for (int i = 0; i < N_FD; i++) {
				struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
				if (epoll_ctl(ep, EPOLL_CTL_ADD, F[i].fd, &ev) < 0)
					failf("epoll_ctl ADD", "%s: got %s", F[i].label, ename(errno));
			}
		}
		struct epoll_event evs[N_FD];
		int rc = epoll_wait(ep, evs, N_FD, 0);
		if (rc < 0)
			failf(mech_name[m], "got %s, want success", ename(errno));
		for (int j = 0; j < rc; j++) {
			uint32_t i = evs[j].data.u32;
			if (i >= N_FD)
				continue;
			r[i] = !!(evs[j].events & EPOLLIN);
			w[i] = !!(evs[j].events & EPOLLOUT);
			if (evs[j].events & (EPOLLERR | EPOLLHUP))
				failf(mech_name[m], "%s events 0x%x, want no error bits", F[i].label,
				      evs[j].events);
		}
		if (m == M_EPOLL)
			close(ep);
	}
}

/* Every mechanism reports what F says, for every fd, in the same call. */
static void expect_all(const char *stage)
{
	int r[N_FD], w[N_FD];
	char what[200];
	for (int m = 0; m < M_N; m++) {
		probe((enum mech)m, r, w);
		for (int i = 0; i < N_FD; i++) {
			snprintf(what, sizeof what, "%s: %s: %s readable", stage, mech_name[m],
				 F[i].label);
			check_eq(what, r[i], F[i].r);
			snprintf(what, sizeof what, "%s: %s: %s writable", stage, mech_name[m],
				 F[i].label);
			check_eq(what, w[i], F[i].w);
		}
	}
}

/* Blocks in poll until fd reports `events` (10 s guard); 1 if it did. */
static int wait_for(int fd, short events)
{
	struct pollfd p = {fd, events, 0};
	int rc = poll(&p, 1, GUARD_MS);
	return rc == 1 && (p.revents & events);
}

static void test_readiness_matrix(void)
{
	int p[2], rw = kopen(0, O_RDWR), ro = kopen(0, O_RDONLY), s = kopen(0, O_RDWR),
		  q = kopen(0, O_RDWR);
	const char *name = nm("Ready"), *qname = nm("ReadyQ");
	uint64_t one = 1, v64;
	uint32_t len, v;
	char byte;

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0 || (F[EFD].fd = eventfd(0, EFD_NONBLOCK)) < 0) {
		failf("pipe2/eventfd", "got %s", ename(errno));
		return;
	}
	F[K_RW].fd = rw, F[K_RW].label = "O_RDWR Ksock";
	F[K_RO].fd = ro, F[K_RO].label = "O_RDONLY Ksock";
	F[K_S].fd = s, F[K_S].label = "sender Ksock";
	F[K_Q].fd = q, F[K_Q].label = "queue-limited Ksock";
	F[P_R].fd = p[0], F[P_R].label = "pipe read end";
	F[P_W].fd = p[1], F[P_W].label = "pipe write end";
	F[EFD].label = "eventfd";

	EXPECT_OK("bind O_RDWR listener", kbind(rw, name, 0));
	EXPECT_OK("bind O_RDONLY listener", kbind(ro, name, 0));
	EXPECT_OK("bind queue-limited listener", kbind(q, qname, 0));
	check_true("MAXMSGS 1", u32_ioctl(q, KB_IOC_MAXMSGS, 1, &v) >= 0 && v == 1, "limit 1");

	kept_ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < N_FD; i++) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
		if (epoll_ctl(kept_ep, EPOLL_CTL_ADD, F[i].fd, &ev) < 0)
			failf("epoll_ctl ADD (kept set)", "%s: got %s", F[i].label, ename(errno));
	}

	/* Nothing queued: Ksocks opened for writing are writable, the
	 * read-only one never is. */
	want(K_RW, 0, 1), want(K_RO, 0, 0), want(K_S, 0, 1), want(K_Q, 0, 1);
	want(P_R, 0, 0), want(P_W, 0, 1), want(EFD, 0, 1);
	expect_all("idle");

	/* A message for rw and ro; the pipe and the eventfd have data too. */
	EXPECT_OK("send", send_msg(s, name, "m1", 0, 0, NULL));
	check_eq("write the pipe", write(p[1], "p", 1), 1);
	check_eq("write the eventfd", write(F[EFD].fd, &one, 8), 8);
	want(K_RW, 1, 1), want(K_RO, 1, 0), want(P_R, 1, 0), want(EFD, 1, 1);
	expect_all("one message queued");

	/* rw takes it with NEXTMSG: no longer readable, though unread. */
	check_eq("NEXTMSG", u32_ioctl(rw, KB_IOC_NEXTMSG, 0, &len), 1);
	check_eq("read the pipe", read(p[0], &byte, 1), 1);
	check_eq("read the eventfd", read(F[EFD].fd, &v64, 8), 8);
	want(K_RW, 0, 1), want(P_R, 0, 0), want(EFD, 0, 1);
	expect_all("message taken with NEXTMSG, not yet read");

	/* Two more: still readable after one of them is taken. */
	EXPECT_OK("send", send_msg(s, name, "m2", 0, 0, NULL));
	EXPECT_OK("send", send_msg(s, name, "m3", 0, 0, NULL));
	check_eq("NEXTMSG", u32_ioctl(rw, KB_IOC_NEXTMSG, 0, &len), 1);
	want(K_RW, 1, 1);
	expect_all("two queued, one taken");
	drain(rw);
	drain(ro);
	want(K_RW, 0, 1), want(K_RO, 0, 0);
	expect_all("all taken");

	/* ALL_OR_WAIT to a full queue: the sender is not writable while the
	 * send waits; it becomes writable when the send completes. */
	EXPECT_OK("fill the queue-limited Ksock", send_msg(s, qname, "fill", 0, 0, NULL));
	struct kb_msg_id pending = {0, 0};
	EXPECT_ERR("ALL_OR_WAIT to the full queue", send_msg(s, qname, "w1", KB_ALL_OR_WAIT, 0, &pending),
		   EAGAIN);
	want(K_S, 0, 0), want(K_Q, 1, 1);
	expect_all("ALL_OR_WAIT send pending");
	check_eq("q takes its message (makes room)", u32_ioctl(q, KB_IOC_NEXTMSG, 0, &len), 1);
	double t0 = now_ms();
	check_true("sender becomes writable when the waiting send completes", wait_for(s, POLLOUT),
		   "POLLOUT within 10 s");
	check_true("... well before the guard", now_ms() - t0 < GUARD_MS / 2, "< 5 s");
	want(K_S, 0, 1), want(K_Q, 1, 1);
	expect_all("ALL_OR_WAIT send completed");
	struct kb_header h;
	check_eq("the waiting message arrived", u32_ioctl(q, KB_IOC_NEXTMSG, 0, &len), 1);
	check_eq("read its header", read(q, &h, sizeof h), sizeof h);
	check_eq("it has the id SEND gave with EAGAIN", h.id.serial_num, pending.serial_num);
	drain(q);
	want(K_Q, 0, 1);

	/* Pending again, then DISCARD: writable at once. */
	EXPECT_OK("fill again", send_msg(s, qname, "fill", 0, 0, NULL));
	EXPECT_ERR("ALL_OR_WAIT again", send_msg(s, qname, "w2", KB_ALL_OR_WAIT, 0, NULL), EAGAIN);
	want(K_S, 0, 0), want(K_Q, 1, 1);
	expect_all("second ALL_OR_WAIT pending");
	check_eq("DISCARD", ioctl(s, KB_IOC_DISCARD), 0);
	want(K_S, 0, 1);
	expect_all("pending send discarded");
	drain(q);
	check_eq("the discarded message never arrives", nummsgs(q), 0);

	close(kept_ep);
	kept_ep = -1;
	close(p[0]);
	close(p[1]);
	close(F[EFD].fd);
	close(rw);
	close(ro);
	close(s);
	close(q);
}

/* ---------------------------------- (c) blocking waits woken by a thread */

enum action { A_SEND, A_PIPE, A_EVENTFD, A_MAKE_ROOM };
static const char *action_name[] = {"a message to the Ksock", "a byte to the pipe",
				    "the eventfd", "room for the waiting send"};

struct waker {
	pid_t tid;          /* the thread to wait for */
	enum action action;
	int sender;         /* A_SEND: Ksock to send from */
	const char *name;   /* A_SEND: name to send to */
	int fd;             /* A_PIPE, A_EVENTFD: fd to write; A_MAKE_ROOM: Ksock */
	int rc, err;        /* the action's result */
};

/* Is thread `tid` of this process asleep (state S)? */
static int asleep(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && paren[2] == 'S';
}

static void *waker_main(void *arg)
{
	struct waker *w = arg;
	double t0 = now_ms();
	/* Wait (10 s at most) for the main thread to block; then act. */
	while (!asleep(w->tid) && now_ms() - t0 < GUARD_MS)
		sched_yield();
	uint64_t one = 1;
	uint32_t len;
	errno = 0;
	switch (w->action) {
	case A_SEND:
		w->rc = send_msg(w->sender, w->name, "wake", 0, 0, NULL);
		break;
	case A_PIPE:
		w->rc = (int)write(w->fd, "p", 1);
		break;
	case A_EVENTFD:
		w->rc = (int)write(w->fd, &one, 8);
		break;
	case A_MAKE_ROOM:
		w->rc = u32_ioctl(w->fd, KB_IOC_NEXTMSG, 0, &len);
		break;
	}
	w->err = errno;
	return NULL;
}

enum wait_mech { W_POLL, W_PPOLL, W_SELECT, W_PSELECT, W_EPOLL, W_EPOLL_PWAIT, W_N };
static const char *wait_name[W_N] = {"poll",    "ppoll",      "select",
				     "pselect", "epoll_wait", "epoll_pwait"};

/* The timeout of block_in (a failure guard). */
static int block_ms = GUARD_MS;

/*
 * Blocks the calling thread in `m` on fds[0..n) for `events` (POLLIN or
 * POLLOUT) with a block_ms timeout; got[i] says which fds were ready.
 * Returns the call's result.
 */
static int block_in(enum wait_mech m, const int *fds, int n, short events, int *got)
{
	int rc = -1, ms = block_ms;
	memset(got, 0, sizeof(int) * (size_t)n);
	if (m == W_POLL || m == W_PPOLL) {
		struct pollfd p[8];
		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){fds[i], events, 0};
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		rc = m == W_POLL ? poll(p, (nfds_t)n, ms) : ppoll(p, (nfds_t)n, &ts, NULL);
		for (int i = 0; i < n; i++)
			got[i] = (p[i].revents & events) != 0;
	} else if (m == W_SELECT || m == W_PSELECT) {
		fd_set set;
		int max = -1;
		FD_ZERO(&set);
		for (int i = 0; i < n; i++) {
			FD_SET(fds[i], &set);
			if (fds[i] > max)
				max = fds[i];
		}
		fd_set *rd = events == POLLIN ? &set : NULL, *wr = events == POLLIN ? NULL : &set;
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000L};
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		rc = m == W_SELECT ? select(max + 1, rd, wr, NULL, &tv)
				   : pselect(max + 1, rd, wr, NULL, &ts, NULL);
		for (int i = 0; i < n; i++)
			got[i] = rc > 0 && FD_ISSET(fds[i], &set);
	} else {
		int ep = epoll_create1(EPOLL_CLOEXEC);
		for (int i = 0; i < n; i++) {
			struct epoll_event ev = {.events = events == POLLIN ? EPOLLIN : EPOLLOUT,
						 .data.u32 = (uint32_t)i};
			epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
		}
		struct epoll_event evs[8];
		rc = m == W_EPOLL ? epoll_wait(ep, evs, n, ms) : epoll_pwait(ep, evs, n, ms, NULL);
		for (int j = 0; j < rc; j++)
			if (evs[j].data.u32 < (uint32_t)n)
				got[evs[j].data.u32] = 1;
		close(ep);
	}
	return rc;
}

/* One round: block in `m` on `fds`, another thread does `w`; the call
 * must return (not time out) with exactly `want` ready. */
static void blocked_round(enum wait_mech m, const int *fds, int n, short events,
			  struct waker *w, const int *want_ready)
{
	char what[200];
	pthread_t t;
	int got[8];

	w->tid = gettid();
	if (pthread_create(&t, NULL, waker_main, w) != 0) {
		failf("pthread_create", "failed");
		return;
	}
	double t0 = now_ms();
	int rc = block_in(m, fds, n, events, got);
	double took = now_ms() - t0;
	pthread_join(t, NULL);

	snprintf(what, sizeof what, "%s woken by %s: thread's action", wait_name[m],
		 action_name[w->action]);
	check_true(what, w->rc >= 0, "success");
	snprintf(what, sizeof what, "%s woken by %s: returns before the 10 s guard", wait_name[m],
		 action_name[w->action]);
	check_true(what, rc > 0 && took < GUARD_MS / 2, "a positive result in < 5 s");
	for (int i = 0; i < n; i++) {
		snprintf(what, sizeof what, "%s woken by %s: fd %d ready", wait_name[m],
			 action_name[w->action], i);
		check_eq(what, got[i], want_ready[i]);
	}
}

static void test_blocking_waits(void)
{
	int k = kopen(0, O_RDWR), s = kopen(0, O_RDWR), p[2];
	int efd = eventfd(0, EFD_NONBLOCK);
	const char *name = nm("Block");
	uint64_t v64;
	char byte;

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0 || efd < 0) {
		failf("pipe2/eventfd", "got %s", ename(errno));
		return;
	}
	EXPECT_OK("bind listener", kbind(k, name, 0));
	int fds[3] = {k, p[0], efd};

	for (int m = 0; m < W_N; m++) {
		/* A message sent by another thread wakes a wait on the Ksock. */
		struct waker w = {.action = A_SEND, .sender = s, .name = name};
		blocked_round((enum wait_mech)m, fds, 3, POLLIN, &w, (int[]){1, 0, 0});
		drain(k);
		/* With the Ksock in the set, the pipe and eventfd still wake it. */
		w = (struct waker){.action = A_PIPE, .fd = p[1]};
		blocked_round((enum wait_mech)m, fds, 3, POLLIN, &w, (int[]){0, 1, 0});
		check_eq("drain the pipe", read(p[0], &byte, 1), 1);
		w = (struct waker){.action = A_EVENTFD, .fd = efd};
		blocked_round((enum wait_mech)m, fds, 3, POLLIN, &w, (int[]){0, 0, 1});
		check_eq("drain the eventfd", read(efd, &v64, 8), 8);
	}

	/* A waiting ALL_OR_WAIT send completes when another thread makes
	 * room: a wait for POLLOUT on the sender wakes. */
	int q = kopen(0, O_RDWR);
	uint32_t v;
	const char *qname = nm("BlockQ");
	EXPECT_OK("bind queue-limited listener", kbind(q, qname, 0));
	u32_ioctl(q, KB_IOC_MAXMSGS, 1, &v);
	const enum wait_mech out_mechs[] = {W_POLL, W_SELECT, W_EPOLL};
	for (size_t i = 0; i < sizeof out_mechs / sizeof out_mechs[0]; i++) {
		EXPECT_OK("fill", send_msg(s, qname, "fill", 0, 0, NULL));
		EXPECT_ERR("ALL_OR_WAIT to the full queue", send_msg(s, qname, "w", KB_ALL_OR_WAIT, 0, NULL),
			   EAGAIN);
		struct waker w = {.action = A_MAKE_ROOM, .fd = q};
		blocked_round(out_mechs[i], (int[]){s}, 1, POLLOUT, &w, (int[]){1});
		check_eq("the waiting message arrived", nummsgs(q), 1);
		drain(q);
	}

	close(q);
	close(k);
	close(s);
	close(p[0]);
	close(p[1]);
	close(efd);
}

/* ------------------------------------------ epoll sets and closed Ksocks */

static void test_epoll_membership(void)
{
	int k = kopen(0, O_RDWR), s = kopen(0, O_RDWR), p[2];
	const char *name = nm("Member");
	struct epoll_event evs[4];

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
		failf("pipe2", "got %s", ename(errno));
		return;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	EXPECT_OK("bind", kbind(k, name, 0));
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
	EXPECT_OK("epoll_ctl ADD Ksock", epoll_ctl(ep, EPOLL_CTL_ADD, k, &ev));
	ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = 2};
	EXPECT_OK("epoll_ctl ADD pipe", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = 1};
	EXPECT_ERR("epoll_ctl ADD Ksock twice", epoll_ctl(ep, EPOLL_CTL_ADD, k, &ev), EEXIST);

	EXPECT_OK("send", send_msg(s, name, NULL, 0, 0, NULL));
	int rc = epoll_wait(ep, evs, 4, GUARD_MS);
	check_eq("epoll_wait: one ready", rc, 1);
	check_eq("... the Ksock", rc == 1 ? evs[0].data.u32 : 0, 1);
	/* Level-triggered: still there until taken. */
	check_eq("epoll_wait again: still ready", epoll_wait(ep, evs, 4, 0), 1);

	/* MOD to EPOLLOUT only: writable, and the message no longer counts. */
	ev = (struct epoll_event){.events = EPOLLOUT, .data.u32 = 3};
	EXPECT_OK("epoll_ctl MOD Ksock to EPOLLOUT", epoll_ctl(ep, EPOLL_CTL_MOD, k, &ev));
	rc = epoll_wait(ep, evs, 4, 0);
	check_eq("after MOD: one ready", rc, 1);
	check_true("... writable with the new data", rc == 1 && evs[0].data.u32 == 3 &&
							 evs[0].events == EPOLLOUT,
		   "EPOLLOUT, data 3");

	/* DEL: nothing from the Ksock any more. */
	EXPECT_OK("epoll_ctl DEL Ksock", epoll_ctl(ep, EPOLL_CTL_DEL, k, NULL));
	check_eq("after DEL: none ready", epoll_wait(ep, evs, 4, 0), 0);
	EXPECT_ERR("epoll_ctl DEL again", epoll_ctl(ep, EPOLL_CTL_DEL, k, NULL), ENOENT);

	/* Closing a Ksock takes it out of the set; a new Ksock that gets the
	 * same fd number is not in it. */
	ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = 4};
	EXPECT_OK("epoll_ctl ADD Ksock again", epoll_ctl(ep, EPOLL_CTL_ADD, k, &ev));
	check_eq("ready again", epoll_wait(ep, evs, 4, 0), 1);
	int old_fd = k;
	close(k);
	check_eq("after close: none ready", epoll_wait(ep, evs, 4, 0), 0);
	k = kopen(0, O_RDWR);
	EXPECT_OK("bind", kbind(k, name, 0));
	EXPECT_OK("send", send_msg(s, name, NULL, 0, 0, NULL));
	if (k == old_fd)
		check_eq("a new Ksock on the closed one's fd is not in the set",
			 epoll_wait(ep, evs, 4, 0), 0);
	check_eq("the pipe is still in the set", write(p[1], "x", 1), 1);
	rc = epoll_wait(ep, evs, 4, GUARD_MS);
	check_true("... and reported", rc == 1 && evs[0].data.u32 == 2, "the pipe alone");

	close(ep);
	close(k);
	close(s);
	close(p[0]);
	close(p[1]);
}

/* ------------------------------------------- several threads, one Ksock */

/*
 * Every thread waiting on a Ksock hears of a change, whoever takes the
 * daemon's word of it (found missing when these tests were first written).
 */

/* A thread blocked in one of the waits on one Ksock. */
struct sleeper {
	enum wait_mech m;
	int fd;
	volatile pid_t tid;
	int rc, ready;
	double took;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *z = arg;
	z->tid = gettid();
	double t0 = now_ms();
	z->rc = block_in(z->m, &z->fd, 1, POLLIN, &z->ready);
	z->took = now_ms() - t0;
	return NULL;
}

/* Waits (10 s at most) until every sleeper is asleep. */
static void until_asleep(struct sleeper *z, int n)
{
	double t0 = now_ms();
	for (int i = 0; i < n && now_ms() - t0 < GUARD_MS; i++)
		while (!(z[i].tid && asleep(z[i].tid)) && now_ms() - t0 < GUARD_MS)
			sched_yield();
}

static void check_woken(const char *what, const struct sleeper *z)
{
	n_checks++;
	if (z->rc != 1 || !z->ready || z->took > block_ms / 2)
		failf(what, "got result %d after %.0f ms, want 1 (readable) at once", z->rc,
		      z->took);
}

static void test_threads(void)
{
	int k = kopen(0, O_RDWR), s = kopen(0, O_RDWR);
	const char *name = nm("Threads");
	char what[160];
	EXPECT_OK("bind", kbind(k, name, 0));

	/* KBUS wakes every waiter on a Ksock when a message arrives. */
	for (int m = 0; m < W_N; m++) {
		struct sleeper z[2] = {{.m = (enum wait_mech)m, .fd = k},
				       {.m = (enum wait_mech)m, .fd = k}};
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, sleeper_main, &z[i]);
		until_asleep(z, 2);
		EXPECT_OK("send", send_msg(s, name, "both", 0, 0, NULL));
		for (int i = 0; i < 2; i++) {
			pthread_join(t[i], NULL);
			snprintf(what, sizeof what, "two threads in %s on one Ksock: waiter %d wakes",
				 wait_name[m], i);
			check_woken(what, &z[i]);
		}
		drain(k);
	}

	/* A message a Ksock sends to itself (it listens to the name) wakes
	 * another thread waiting on that Ksock. */
	for (int m = 0; m < W_N; m++) {
		struct sleeper z = {.m = (enum wait_mech)m, .fd = k};
		pthread_t t;
		pthread_create(&t, NULL, sleeper_main, &z);
		until_asleep(&z, 1);
		EXPECT_OK("send to itself", send_msg(k, name, "self", 0, 0, NULL));
		pthread_join(t, NULL);
		snprintf(what, sizeof what, "%s in a thread, woken by a message its Ksock sent itself",
			 wait_name[m]);
		check_woken(what, &z);
		drain(k);
	}
	close(k);
	close(s);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	kt_prog = "ready";
	(void)argc;
	(void)argv;
	test_many_ksocks();
	test_readiness_matrix();
	test_blocking_waits();
	test_epoll_membership();
	test_threads();
	return kt_finish();
}
