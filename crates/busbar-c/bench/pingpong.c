/*
 * C request/reply through a busbar daemon (busbar_call against a replier
 * looping on busbar_reply_then_recv, two processes), against a raw
 * Unix-socket ping-pong between two processes, in the same run.
 *
 *   scripts/install-c.sh PREFIX
 *   cc -O2 -std=c11 -o pingpong crates/busbar-c/bench/pingpong.c \
 *       $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs busbar)
 *   ./pingpong SOCKET [ROUNDS]
 *
 * Prints p50/p99 in microseconds and the ratio; compare with
 * `busbar bench --socket SOCKET` (the Rust API) run just before or after.
 */
#define _POSIX_C_SOURCE 200809L
#include <busbar.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char NAME[] = "$.bench.c";

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double report(const char *what, double *t, int n)
{
	qsort(t, (size_t)n, sizeof *t, cmp);
	printf("%-34s p50 %7.2f us  p99 %7.2f us\n", what, t[n / 2], t[n * 99 / 100]);
	return t[n / 2];
}

static void check(const char *what, int rc)
{
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", what, busbar_strerror(rc));
		exit(1);
	}
}

/* Serves `n` requests, one round trip each (reply, then the next one). */
static void replier(const char *socket, int n, int ready)
{
	busbar_bus *bus;
	busbar_endpoint *ep;
	busbar_message *m;
	check("connect", busbar_bus_connect(socket, &bus));
	check("open", busbar_endpoint_open(bus, &ep));
	check("bind", busbar_bind(ep, NAME, true));
	if (write(ready, "r", 1) != 1)
		exit(1);
	check("recv", busbar_recv(ep, -1, &m));
	for (int i = 0; i < n; i++) {
		size_t len;
		const uint8_t *data = busbar_message_data(m, &len);
		busbar_message *next = NULL;
		int sent;
		int rc = busbar_reply_then_recv(ep, m, data, len, i + 1 < n ? -1 : 0, &sent, &next);
		check("reply", sent);
		busbar_message_free(m);
		if (i + 1 < n)
			check("reply_then_recv", rc);
		m = next;
	}
	busbar_message_free(m);
	busbar_endpoint_close(ep);
	busbar_bus_free(bus);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SOCKET [ROUNDS]\n", argv[0]);
		return 2;
	}
	int rounds = argc > 2 ? atoi(argv[2]) : 20000, warm = rounds / 10;
	double *t = malloc(sizeof(double) * (size_t)rounds);
	char c[32] = {0};

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	fflush(stdout);
	pid_t echo = fork();
	if (echo == 0) {
		close(sv[0]);
		while (read(sv[1], c, sizeof c) == (ssize_t)sizeof c)
			if (write(sv[1], c, sizeof c) != (ssize_t)sizeof c)
				break;
		_exit(0);
	}
	close(sv[1]);
	for (int i = 0; i < warm + rounds; i++) {
		double t0 = now_us();
		if (write(sv[0], c, sizeof c) != (ssize_t)sizeof c || read(sv[0], c, sizeof c) != (ssize_t)sizeof c)
			return 1;
		if (i >= warm)
			t[i - warm] = now_us() - t0;
	}
	close(sv[0]);
	waitpid(echo, NULL, 0);
	double raw = report("raw Unix-socket ping-pong", t, rounds);

	int ready[2];
	if (pipe(ready) < 0)
		return 1;
	fflush(stdout);
	pid_t rp = fork();
	if (rp == 0) {
		replier(argv[1], warm + rounds, ready[1]);
		_exit(0);
	}
	if (read(ready[0], c, 1) != 1)
		return 1;
	busbar_bus *bus;
	busbar_endpoint *ep;
	check("connect", busbar_bus_connect(argv[1], &bus));
	check("open", busbar_endpoint_open(bus, &ep));
	for (int i = 0; i < warm + rounds; i++) {
		busbar_message *reply;
		double t0 = now_us();
		check("call", busbar_call(ep, NAME, (const uint8_t *)c, sizeof c, 10000, &reply));
		if (i >= warm)
			t[i - warm] = now_us() - t0;
		busbar_message_free(reply);
	}
	busbar_endpoint_close(ep);
	busbar_bus_free(bus);
	int status;
	waitpid(rp, &status, 0);
	double cp = report("C busbar_call through the daemon", t, rounds);
	printf("ratio (p50): %.2fx the raw ping-pong\n", cp / raw);
	free(t);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
