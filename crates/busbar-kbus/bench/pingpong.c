/*
 * KBUS request/reply round trips through the device ABI (run it under
 * `busbar kbus --`), against a raw Unix-socket ping-pong between the same
 * two processes, measured in the same run.
 *
 *   cc -O2 -o pingpong crates/busbar-kbus/bench/pingpong.c
 *   busbar kbus -- ./pingpong [ROUNDS]
 *
 * Prints p50/p99 of each, in microseconds, and their ratio. Written against
 * the ABI in docs/kbus.md (no KBUS headers needed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_GUARD 0x7375624Bu
#define END_GUARD 0x4B627573u
#define WANT_A_REPLY 0x1u
#define IOC_BIND 0x40086b02ul
#define IOC_NEXTMSG 0x80086b06ul
#define IOC_SEND 0x80086b08ul

struct hdr { /* struct kbus_message_header, 64-bit */
    uint32_t start_guard, id_net, id_serial, irt_net, irt_serial, to, from;
    uint32_t orig_net, orig_local, final_net, final_local, extra, flags;
    uint32_t name_len, data_len, pad;
    char *name;
    void *data;
    uint32_t end_guard, pad2;
};
_Static_assert(sizeof(struct hdr) == 88, "KBUS header is 88 bytes on 64-bit");

struct bind_req { uint32_t is_replier, name_len; char *name; };

static const char NAME[] = "$.bench.ping";

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void die(const char *what) { perror(what); exit(1); }

/* Writes a pointy message and SENDs it. */
static void send_msg(int k, uint32_t flags, uint32_t to, uint32_t irt_serial) {
    static char data[16] = "ping";
    struct hdr h = {0};
    h.start_guard = START_GUARD;
    h.end_guard = END_GUARD;
    h.flags = flags;
    h.to = to;
    h.irt_serial = irt_serial;
    h.name_len = sizeof NAME - 1;
    h.name = (char *)NAME;
    h.data_len = 4;
    h.data = data;
    if (write(k, &h, sizeof h) != sizeof h) die("write");
    uint32_t id[2];
    if (ioctl(k, IOC_SEND, id) < 0) die("SEND");
}

/* Waits for and reads the next message; returns its header. */
static struct hdr recv_msg(int k) {
    static char buf[4096];
    uint32_t len;
    for (;;) {
        int r = ioctl(k, IOC_NEXTMSG, &len);
        if (r < 0) die("NEXTMSG");
        if (r == 1) break;
        struct pollfd p = {k, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1) {
            fprintf(stderr, "pid %d: no message within 10 s\n", (int)getpid());
            exit(1);
        }
    }
    if (read(k, buf, len) != (ssize_t)len) die("read");
    struct hdr h;
    memcpy(&h, buf, sizeof h);
    return h;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, double *t, int n, double *p50) {
    qsort(t, n, sizeof *t, cmp);
    *p50 = t[n / 2];
    printf("%-28s p50 %7.2f us  p99 %7.2f us\n", what, t[n / 2], t[n * 99 / 100]);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    double *t = malloc(sizeof(double) * rounds);
    /* Raw baseline: a socketpair ping-pong between two processes. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
    fflush(stdout);
    pid_t echo = fork();
    if (echo == 0) {
        char c[4];
        close(sv[0]);
        while (read(sv[1], c, 4) == 4)
            if (write(sv[1], c, 4) != 4) break;
        _exit(0);
    }
    close(sv[1]);
    for (int i = 0; i < rounds; i++) {
        char c[4] = "ping";
        double t0 = now_us();
        if (write(sv[0], c, 4) != 4 || read(sv[0], c, 4) != 4) die("raw");
        t[i] = now_us() - t0;
    }
    close(sv[0]);
    waitpid(echo, NULL, 0);
    double raw, kbus;
    report("raw unix socket ping-pong", t, rounds, &raw);

    /* KBUS: a replier process and this requester, through /dev/kbus0. */
    int ready[2];
    if (pipe(ready) < 0) die("pipe");
    fflush(stdout);
    pid_t replier = fork();
    if (replier == 0) {
        int k = open("/dev/kbus0", O_RDWR);
        if (k < 0) die("open replier");
        struct bind_req b = {1, sizeof NAME - 1, (char *)NAME};
        if (ioctl(k, IOC_BIND, &b) < 0) die("BIND");
        if (write(ready[1], "r", 1) != 1) die("ready");
        for (int i = 0; i < rounds; i++) {
            struct hdr req = recv_msg(k);
            send_msg(k, 0, req.from, req.id_serial);
        }
        close(k);
        _exit(0);
    }
    char r;
    if (read(ready[0], &r, 1) != 1) die("wait for replier");
    int k = open("/dev/kbus0", O_RDWR);
    if (k < 0) die("open requester");
    for (int i = 0; i < rounds; i++) {
        double t0 = now_us();
        send_msg(k, WANT_A_REPLY, 0, 0);
        recv_msg(k);
        t[i] = now_us() - t0;
    }
    close(k);
    int status = 0;
    waitpid(replier, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the replier failed\n");
        return 1;
    }
    report("KBUS request/reply", t, rounds, &kbus);
    printf("ratio (p50): %.1fx the raw ping-pong\n", kbus / raw);
    return 0;
}
