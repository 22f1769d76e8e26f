/*
 * api_support.c: the C API test, part: the checks and helpers every part
 * uses.
 */

#include "api.h"

/* ----- checking ------------------------------------------------------- */

int n_checks, n_failed;
pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;

void record(const char *file, int line, int ok, const char *what, const char *got, const char *want)
{
    pthread_mutex_lock(&check_lock);
    n_checks++;
    if (!ok) {
        n_failed++;
        printf("FAIL %s (%s:%d): got %s, want %s\n", what, file, line, got, want);
        fflush(stdout);
    }
    pthread_mutex_unlock(&check_lock);
}

/* A return code as text: 0, -EAGAIN, or a plain number. */
void rc_text(char *buf, size_t n, long long rc)
{
    if (rc < 0 && rc > INT_MIN && strcmp(busbar_errno_name((int)rc), "EUNKNOWN") != 0)
        snprintf(buf, n, "-%s", busbar_errno_name((int)rc));
    else
        snprintf(buf, n, "%lld", rc);
}

void check_rc_(const char *file, int line, const char *what, long long got, long long want)
{
    char g[64], w[64];
    rc_text(g, sizeof g, got);
    rc_text(w, sizeof w, want);
    record(file, line, got == want, what, g, w);
}

void check_num_(const char *file, int line, const char *what, unsigned long long got, unsigned long long want)
{
    char g[32], w[32];
    snprintf(g, sizeof g, "%llu", got);
    snprintf(w, sizeof w, "%llu", want);
    record(file, line, got == want, what, g, w);
}

void check_true_(const char *file, int line, const char *what, int cond)
{
    record(file, line, cond, what, cond ? "true" : "false", "true");
}

void check_str_(const char *file, int line, const char *what, const char *got, const char *want)
{
    char g[200], w[200];
    snprintf(g, sizeof g, "\"%.190s\"", got ? got : "(null)");
    snprintf(w, sizeof w, "\"%.190s\"", want);
    record(file, line, got && strcmp(got, want) == 0, what, g, w);
}

/* The message's data equals the string `want` (no NUL). */
void check_data_(const char *file, int line, const char *what, const busbar_message *m, const char *want)
{
    size_t len = 99;
    const uint8_t *d = busbar_message_data(m, &len);
    char g[200], w[200];
    snprintf(g, sizeof g, "\"%.*s\" (%zu bytes)", (int)(len < 150 ? len : 150),
             d ? (const char *)d : "", len);
    snprintf(w, sizeof w, "\"%.150s\" (%zu bytes)", want, strlen(want));
    int ok = len == strlen(want) && (len == 0 ? d == NULL : d != NULL && memcmp(d, want, len) == 0);
    record(file, line, ok, what, g, w);
}

void check_id_(const char *file, int line, const char *what, busbar_msg_id got, busbar_msg_id want)
{
    char g[48], w[48];
    snprintf(g, sizeof g, "{%u,%u}", got.network, got.serial);
    snprintf(w, sizeof w, "{%u,%u}", want.network, want.serial);
    record(file, line, got.network == want.network && got.serial == want.serial, what, g, w);
}

/* Setup that must work for the rest to mean anything. */
void must_(const char *file, int line, const char *what, int rc)
{
    if (rc < 0) {
        char g[64];
        rc_text(g, sizeof g, rc);
        printf("FAIL %s (%s:%d): got %s, want success (cannot go on)\n", what, file, line, g);
        printf("FAILED %d of %d checks\n", n_failed + 1, n_checks + 1);
        exit(1);
    }
}

const busbar_msg_id NO_ID = {0, 0};

/* ----- helpers ---------------------------------------------------------- */

busbar_endpoint *open_ep(const busbar_bus *bus)
{
    busbar_endpoint *ep = NULL;
    MUST("busbar_endpoint_open", busbar_endpoint_open(bus, &ep));
    return ep;
}

void close_ep(busbar_endpoint *ep)
{
    CHECK_RC("busbar_endpoint_close", busbar_endpoint_close(ep), 0);
}

const uint8_t *bytes(const char *s)
{
    return (const uint8_t *)s;
}

int announce(const busbar_endpoint *ep, const char *name, const char *data, busbar_msg_id *id)
{
    return busbar_announce(ep, name, bytes(data), strlen(data), id);
}

/* The next message, which must come (NULL, and a failure, if not). */
busbar_message *take_(const char *file, int line, busbar_endpoint *ep, const char *what)
{
    busbar_message *m = NULL;
    int rc = busbar_recv(ep, GUARD_MS, &m);
    check_rc_(file, line, what, rc, 0);
    return rc == 0 ? m : NULL;
}

/* Takes the next message and checks its name; frees it. */
void take_named_(const char *file, int line, busbar_endpoint *ep, const char *name)
{
    char what[160];
    snprintf(what, sizeof what, "receive %.120s", name);
    busbar_message *m = take_(file, line, ep, what);
    snprintf(what, sizeof what, "name of the message expected as %.120s", name);
    check_str_(file, line, what, busbar_message_name(m), name);
    busbar_message_free(m);
}

/* Nothing is queued. */
void check_empty_(const char *file, int line, busbar_endpoint *ep, const char *what)
{
    busbar_message *m = NULL;
    int rc = busbar_recv(ep, 0, &m);
    if (rc == 0) {
        char w[200];
        snprintf(w, sizeof w, "%s (unexpected %s)", what, busbar_message_name(m));
        check_rc_(file, line, w, rc, -EAGAIN);
        busbar_message_free(m);
    } else {
        check_rc_(file, line, what, rc, -EAGAIN);
    }
}

busbar_endpoint_stats ep_stats(const busbar_endpoint *ep)
{
    busbar_endpoint_stats s;
    memset(&s, 0, sizeof s);
    MUST("busbar_endpoint_get_stats", busbar_endpoint_get_stats(ep, &s));
    return s;
}

/* poll() on the endpoint's readiness fd: 1 readable, 0 not. */
int readable(const busbar_endpoint *ep, int timeout_ms)
{
    int fd = busbar_readiness_fd(ep);
    if (fd < 0)
        return fd;
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int n = poll(&p, 1, timeout_ms);
    return n > 0 && (p.revents & POLLIN) ? 1 : 0;
}

uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A name of `len` bytes: "$.aaa...". */
char *long_name(size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        abort();
    s[0] = '$';
    s[1] = '.';
    memset(s + 2, 'a', len - 2);
    s[len] = 0;
    return s;
}

void ms_sleep(int ms) /* only a poll interval, never synchronisation */
{
    struct timespec t = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
    nanosleep(&t, NULL);
}

long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int is_daemon;
char tmpdir[64];

/* At exit, even after a failure: the sockets the test made, and their
 * directory. */
void remove_tmpdir(void)
{
    static const char *const names[] = {"silent", "dead"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}
