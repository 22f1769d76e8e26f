/*
 * api.c: a self-checking test of the whole C API (busbar.h).
 *
 *   ./api in-process       the checks on a bus made by busbar_bus_in_process
 *   ./api SOCKET_PATH      the same checks through the daemon at SOCKET_PATH
 *
 * Prints "FAIL <what>: got ..., want ..." for each failed check, then
 * "ok N checks" (exit 0) or "FAILED F of N checks" (exit 1). It frees
 * everything it gets, so it also runs clean under
 *   valgrind --leak-check=full --error-exitcode=1 ./api ...
 *
 * Every function of busbar.h is called, and every error its comment
 * documents is provoked, except these, which need another user, a daemon
 * that goes away, or exhausting a resource:
 *
 *   busbar_bus_connect        -EACCES (a daemon of an untrusted user),
 *                             -EUSERS, -ENFILE, -EMFILE (daemon limits)
 *   busbar_bus_create         -EPERM (unprivileged client), -ENOMEM (the
 *                             kernel's most buses)
 *   busbar_bus_set_max_message_size, busbar_bus_set_quota,
 *   busbar_set_replier_bind_events, busbar_set_monitor
 *                             -EPERM (unprivileged client; the daemon runs
 *                             as our user here, so these are checked to
 *                             succeed)
 *   busbar_endpoint_open      -EMFILE (daemon limit), -ECONNREFUSED (the
 *                             daemon went away)
 *   busbar_endpoint_close, busbar_recv
 *                             -ECONNRESET (the daemon went away)
 *   busbar_bind               -EMFILE (daemon limit on bindings)
 *   busbar_send               -EPERM (a forwarded id from an unprivileged
 *                             client; the forwarded id itself is checked)
 *   busbar_readiness_fd       -EIO (out of fds)
 *
 * busbar_bus_connect's -ETIMEDOUT is provoked with a socket that listens
 * but never answers: that takes the 10 s handshake timeout, on a thread of
 * its own while the other checks run.
 *
 * Not called: busbar_bus_create(bus, NULL), which creates a bus before it
 * fails with -EINVAL.
 *
 * No sleep is used to synchronise: threads hand over through the bus
 * itself (a blocked call returns when another thread's operation lets it),
 * one thread polls endpoint stats to see a send pending, and waits for
 * something that must happen have generous guards (GUARD_MS) that only
 * bound a failure.
 */
#define _GNU_SOURCE

#include <busbar.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How long to wait for something that must happen (a failure bound only). */
#define GUARD_MS 30000
/* A wait that is meant to time out. */
#define SHORT_MS 50

#define NAME_BIND_EVENT "$.KBUS.ReplierBindEvent"

/* ----- checking ------------------------------------------------------- */

static int n_checks, n_failed;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;

static void record(int line, int ok, const char *what, const char *got, const char *want)
{
    pthread_mutex_lock(&check_lock);
    n_checks++;
    if (!ok) {
        n_failed++;
        printf("FAIL %s (api.c:%d): got %s, want %s\n", what, line, got, want);
        fflush(stdout);
    }
    pthread_mutex_unlock(&check_lock);
}

/* A return code as text: 0, -EAGAIN, or a plain number. */
static void rc_text(char *buf, size_t n, long long rc)
{
    if (rc < 0 && rc > INT_MIN && strcmp(busbar_errno_name((int)rc), "EUNKNOWN") != 0)
        snprintf(buf, n, "-%s", busbar_errno_name((int)rc));
    else
        snprintf(buf, n, "%lld", rc);
}

static void check_rc_(int line, const char *what, long long got, long long want)
{
    char g[64], w[64];
    rc_text(g, sizeof g, got);
    rc_text(w, sizeof w, want);
    record(line, got == want, what, g, w);
}

static void check_num_(int line, const char *what, unsigned long long got, unsigned long long want)
{
    char g[32], w[32];
    snprintf(g, sizeof g, "%llu", got);
    snprintf(w, sizeof w, "%llu", want);
    record(line, got == want, what, g, w);
}

static void check_true_(int line, const char *what, int cond)
{
    record(line, cond, what, cond ? "true" : "false", "true");
}

static void check_str_(int line, const char *what, const char *got, const char *want)
{
    char g[200], w[200];
    snprintf(g, sizeof g, "\"%.190s\"", got ? got : "(null)");
    snprintf(w, sizeof w, "\"%.190s\"", want);
    record(line, got && strcmp(got, want) == 0, what, g, w);
}

/* The message's data equals the string `want` (no NUL). */
static void check_data_(int line, const char *what, const busbar_message *m, const char *want)
{
    size_t len = 99;
    const uint8_t *d = busbar_message_data(m, &len);
    char g[200], w[200];
    snprintf(g, sizeof g, "\"%.*s\" (%zu bytes)", (int)(len < 150 ? len : 150),
             d ? (const char *)d : "", len);
    snprintf(w, sizeof w, "\"%.150s\" (%zu bytes)", want, strlen(want));
    int ok = len == strlen(want) && (len == 0 ? d == NULL : d != NULL && memcmp(d, want, len) == 0);
    record(line, ok, what, g, w);
}

static void check_id_(int line, const char *what, busbar_msg_id got, busbar_msg_id want)
{
    char g[48], w[48];
    snprintf(g, sizeof g, "{%u,%u}", got.network, got.serial);
    snprintf(w, sizeof w, "{%u,%u}", want.network, want.serial);
    record(line, got.network == want.network && got.serial == want.serial, what, g, w);
}

#define CHECK_RC(what, got, want) check_rc_(__LINE__, what, (got), (want))
#define CHECK_NUM(what, got, want) \
    check_num_(__LINE__, what, (unsigned long long)(got), (unsigned long long)(want))
#define CHECK(what, cond) check_true_(__LINE__, what, (cond) != 0)
#define CHECK_STR(what, got, want) check_str_(__LINE__, what, (got), (want))
#define CHECK_DATA(what, m, want) check_data_(__LINE__, what, (m), (want))
#define CHECK_ID(what, got, want) check_id_(__LINE__, what, (got), (want))

/* Setup that must work for the rest to mean anything. */
static void must_(int line, const char *what, int rc)
{
    if (rc < 0) {
        char g[64];
        rc_text(g, sizeof g, rc);
        printf("FAIL %s (api.c:%d): got %s, want success (cannot go on)\n", what, line, g);
        printf("FAILED %d of %d checks\n", n_failed + 1, n_checks + 1);
        exit(1);
    }
}
#define MUST(what, rc) must_(__LINE__, what, (rc))

static const busbar_msg_id NO_ID = {0, 0};

/* ----- helpers ---------------------------------------------------------- */

static busbar_endpoint *open_ep(const busbar_bus *bus)
{
    busbar_endpoint *ep = NULL;
    MUST("busbar_endpoint_open", busbar_endpoint_open(bus, &ep));
    return ep;
}

static void close_ep(busbar_endpoint *ep)
{
    CHECK_RC("busbar_endpoint_close", busbar_endpoint_close(ep), 0);
}

static const uint8_t *bytes(const char *s)
{
    return (const uint8_t *)s;
}

static int announce(const busbar_endpoint *ep, const char *name, const char *data, busbar_msg_id *id)
{
    return busbar_announce(ep, name, bytes(data), strlen(data), id);
}

/* The next message, which must come (NULL, and a failure, if not). */
static busbar_message *take_(int line, busbar_endpoint *ep, const char *what)
{
    busbar_message *m = NULL;
    int rc = busbar_recv(ep, GUARD_MS, &m);
    check_rc_(line, what, rc, 0);
    return rc == 0 ? m : NULL;
}
#define TAKE(ep, what) take_(__LINE__, (ep), (what))

/* Takes the next message and checks its name; frees it. */
static void take_named_(int line, busbar_endpoint *ep, const char *name)
{
    char what[160];
    snprintf(what, sizeof what, "receive %.120s", name);
    busbar_message *m = take_(line, ep, what);
    snprintf(what, sizeof what, "name of the message expected as %.120s", name);
    check_str_(line, what, busbar_message_name(m), name);
    busbar_message_free(m);
}
#define TAKE_NAMED(ep, name) take_named_(__LINE__, (ep), (name))

/* Nothing is queued. */
static void check_empty_(int line, busbar_endpoint *ep, const char *what)
{
    busbar_message *m = NULL;
    int rc = busbar_recv(ep, 0, &m);
    if (rc == 0) {
        char w[200];
        snprintf(w, sizeof w, "%s (unexpected %s)", what, busbar_message_name(m));
        check_rc_(line, w, rc, -EAGAIN);
        busbar_message_free(m);
    } else {
        check_rc_(line, what, rc, -EAGAIN);
    }
}
#define CHECK_EMPTY(ep, what) check_empty_(__LINE__, (ep), (what))

static busbar_endpoint_stats ep_stats(const busbar_endpoint *ep)
{
    busbar_endpoint_stats s;
    memset(&s, 0, sizeof s);
    MUST("busbar_endpoint_get_stats", busbar_endpoint_get_stats(ep, &s));
    return s;
}

/* poll() on the endpoint's readiness fd: 1 readable, 0 not. */
static int readable(const busbar_endpoint *ep, int timeout_ms)
{
    int fd = busbar_readiness_fd(ep);
    if (fd < 0)
        return fd;
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int n = poll(&p, 1, timeout_ms);
    return n > 0 && (p.revents & POLLIN) ? 1 : 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A name of `len` bytes: "$.aaa...". */
static char *long_name(size_t len)
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

static void ms_sleep(int ms) /* only a poll interval, never synchronisation */
{
    struct timespec t = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
    nanosleep(&t, NULL);
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int is_daemon;
static char tmpdir[64];

/* At exit, even after a failure: the sockets the test made, and their
 * directory. */
static void remove_tmpdir(void)
{
    static const char *const names[] = {"silent", "dead"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

/* ----- errors ----------------------------------------------------------- */

static void test_errors(void)
{
    static const struct {
        int err;
        const char *name;
    } known[] = {
        {EINVAL, "EINVAL"},             {ENOENT, "ENOENT"},
        {ECONNREFUSED, "ECONNREFUSED"}, {EACCES, "EACCES"},
        {ETIMEDOUT, "ETIMEDOUT"},       {EUSERS, "EUSERS"},
        {ENFILE, "ENFILE"},             {EMFILE, "EMFILE"},
        {EPERM, "EPERM"},               {ENOMEM, "ENOMEM"},
        {EBADMSG, "EBADMSG"},           {ENAMETOOLONG, "ENAMETOOLONG"},
        {EADDRINUSE, "EADDRINUSE"},     {EAGAIN, "EAGAIN"},
        {EMSGSIZE, "EMSGSIZE"},         {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
        {EPIPE, "EPIPE"},               {ECONNREFUSED, "ECONNREFUSED"},
        {ENOLCK, "ENOLCK"},             {EBUSY, "EBUSY"},
        {EALREADY, "EALREADY"},         {EDQUOT, "EDQUOT"},
        {ETOOMANYREFS, "ETOOMANYREFS"}, {EBADF, "EBADF"},
        {ECONNRESET, "ECONNRESET"},     {EIO, "EIO"},
    };
    const char *unknown_text = busbar_strerror(9999);
    CHECK("busbar_strerror(9999) is not NULL", unknown_text != NULL);
    CHECK_STR("busbar_errno_name(9999)", busbar_errno_name(9999), "EUNKNOWN");
    CHECK_STR("busbar_errno_name(-9999)", busbar_errno_name(-9999), "EUNKNOWN");
    CHECK_STR("busbar_errno_name(INT_MIN)", busbar_errno_name(INT_MIN), "EUNKNOWN");
    CHECK("busbar_strerror(INT_MIN) is not NULL", busbar_strerror(INT_MIN) != NULL);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "busbar_errno_name(-%s)", known[i].name);
        CHECK_STR(what, busbar_errno_name(-known[i].err), known[i].name);
        snprintf(what, sizeof what, "busbar_errno_name(%s)", known[i].name);
        CHECK_STR(what, busbar_errno_name(known[i].err), known[i].name);
        const char *neg = busbar_strerror(-known[i].err), *pos = busbar_strerror(known[i].err);
        snprintf(what, sizeof what, "busbar_strerror(-%s) is a sentence", known[i].name);
        CHECK(what, neg != NULL && strlen(neg) > 3);
        snprintf(what, sizeof what, "busbar_strerror(-%s) == busbar_strerror(%s)", known[i].name,
                 known[i].name);
        CHECK(what, neg && pos && strcmp(neg, pos) == 0);
        snprintf(what, sizeof what, "busbar_strerror(%s) differs from the unknown text",
                 known[i].name);
        CHECK(what, neg && unknown_text && strcmp(neg, unknown_text) != 0);
    }
    CHECK("strerror(EAGAIN) differs from strerror(EBUSY)",
          strcmp(busbar_strerror(EAGAIN), busbar_strerror(EBUSY)) != 0);
}

/* ----- connecting -------------------------------------------------------- */

struct timeout_job {
    char path[128];
    int listener;
    int rc;
    long long took_ms;
};

static void *connect_to_silent_daemon(void *arg)
{
    struct timeout_job *job = arg;
    busbar_bus *b = NULL;
    long long t0 = now_ms();
    job->rc = busbar_bus_connect(job->path, &b);
    job->took_ms = now_ms() - t0;
    busbar_bus_free(b);
    return NULL;
}

static int unix_socket_at(const char *path, int do_listen)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || (do_listen && listen(s, 4) < 0)) {
        int e = errno;
        close(s);
        return -e;
    }
    return s;
}

/* Starts a connect to a socket that listens but never answers (-ETIMEDOUT
 * after the 10 s handshake timeout). */
static pthread_t start_timeout_check(struct timeout_job *job)
{
    pthread_t t;
    snprintf(job->path, sizeof job->path, "%s/silent", tmpdir);
    job->listener = unix_socket_at(job->path, 1);
    MUST("a listening socket for the handshake timeout", job->listener);
    MUST("pthread_create", -pthread_create(&t, NULL, connect_to_silent_daemon, job));
    return t;
}

static void finish_timeout_check(pthread_t t, struct timeout_job *job)
{
    pthread_join(t, NULL);
    CHECK_RC("busbar_bus_connect to a daemon that never answers", job->rc, -ETIMEDOUT);
    CHECK("the handshake timeout is about 10 s", job->took_ms >= 9000 && job->took_ms < 60000);
    close(job->listener);
    unlink(job->path);
}

static void test_connect(const char *socket_path)
{
    char path[128];
    busbar_bus *b = NULL;
    int rc;

    snprintf(path, sizeof path, "%s/missing", tmpdir);
    rc = busbar_bus_connect(path, &b);
    CHECK("busbar_bus_connect to a missing socket is -ENOENT or -ECONNREFUSED",
          rc == -ENOENT || rc == -ECONNREFUSED);
    CHECK_RC("busbar_bus_connect to a missing socket", rc, -ENOENT);
    CHECK("busbar_bus_connect failing leaves *out NULL", b == NULL);

    /* A socket nobody listens on. */
    snprintf(path, sizeof path, "%s/dead", tmpdir);
    int s = unix_socket_at(path, 0);
    MUST("a socket that does not listen", s);
    CHECK_RC("busbar_bus_connect to a socket nobody listens on", busbar_bus_connect(path, &b),
             -ECONNREFUSED);
    close(s);
    unlink(path);

    /* NULL: the default path, $BUSBAR_SOCKET first. */
    const char *old = getenv("BUSBAR_SOCKET");
    char *saved = old ? strdup(old) : NULL;
    if (is_daemon) {
        setenv("BUSBAR_SOCKET", socket_path, 1);
        b = NULL;
        CHECK_RC("busbar_bus_connect(NULL) with $BUSBAR_SOCKET set", busbar_bus_connect(NULL, &b),
                 0);
        CHECK("busbar_bus_connect(NULL) gives a bus", b != NULL);
        CHECK_NUM("busbar_bus_id of a connected bus", busbar_bus_id(b), 0);
        busbar_bus_free(b);
        /* out NULL: -EINVAL (nothing returned to leak). */
        CHECK_RC("busbar_bus_connect(path, NULL)", busbar_bus_connect(socket_path, NULL), -EINVAL);
    } else {
        snprintf(path, sizeof path, "%s/missing", tmpdir);
        setenv("BUSBAR_SOCKET", path, 1);
        b = NULL;
        CHECK_RC("busbar_bus_connect(NULL) with $BUSBAR_SOCKET at a missing socket",
                 busbar_bus_connect(NULL, &b), -ENOENT);
        CHECK_RC("busbar_bus_in_process(NULL)", busbar_bus_in_process(NULL), -EINVAL);
    }
    if (saved) {
        setenv("BUSBAR_SOCKET", saved, 1);
        free(saved);
    } else {
        unsetenv("BUSBAR_SOCKET");
    }
}

/* ----- buses ------------------------------------------------------------ */

/* Makes the bus the rest of the test runs on (a new one, so that counts are
 * exact whatever else uses the daemon's bus 0). */
static busbar_bus *test_bus(busbar_bus *bus0)
{
    busbar_bus_info i0, i;
    busbar_bus *bus = NULL, *sel = NULL, *bad = NULL;

    CHECK_NUM("busbar_bus_id(bus 0)", busbar_bus_id(bus0), 0);
    CHECK_NUM("busbar_bus_id(NULL)", busbar_bus_id(NULL), 0);
    MUST("busbar_bus_get_info(bus 0)", busbar_bus_get_info(bus0, &i0));
    CHECK_NUM("info of bus 0: bus", i0.bus, 0);
    CHECK("info of bus 0: at least one bus", i0.buses >= 1);

    CHECK_RC("busbar_bus_create", busbar_bus_create(bus0, &bus), 0);
    if (!bus)
        MUST("busbar_bus_create gave no bus", -EIO);
    uint32_t id = busbar_bus_id(bus);
    CHECK("busbar_bus_id of a created bus is a new id", id >= i0.buses);
    CHECK_RC("busbar_bus_get_info of the new bus", busbar_bus_get_info(bus, &i), 0);
    CHECK_NUM("info: bus", i.bus, id);
    CHECK("info: buses counts the new one", i.buses > id);
    CHECK("info: max_message_size at least 100", i.max_message_size >= 100);
    CHECK("info: max_message_size <= absolute maximum",
          i.max_message_size <= i.absolute_max_message_size);
    CHECK_NUM("info: default max_message_size is 64 MiB", i.max_message_size, 64u << 20);
    CHECK_NUM("info: absolute maximum is 64 MiB", i.absolute_max_message_size, 64u << 20);
    CHECK("info: replier bind events off on a new bus", !i.replier_bind_events);

    CHECK_RC("busbar_bus_select(bus 0, new id)", busbar_bus_select(bus0, id, &sel), 0);
    CHECK_NUM("busbar_bus_id of the selected bus", busbar_bus_id(sel), id);
    memset(&i, 0, sizeof i);
    CHECK_RC("busbar_bus_get_info of the selected bus", busbar_bus_get_info(sel, &i), 0);
    CHECK_NUM("info of the selected bus: bus", i.bus, id);
    busbar_bus_free(sel);
    sel = NULL;
    CHECK_RC("busbar_bus_select(bus, 0)", busbar_bus_select(bus, 0, &sel), 0);
    CHECK_NUM("selecting bus 0 back", busbar_bus_id(sel), 0);
    busbar_bus_free(sel);
    CHECK_RC("busbar_bus_select(NULL, ...)", busbar_bus_select(NULL, 0, &sel), -EINVAL);
    CHECK_RC("busbar_bus_select(bus, 0, NULL)", busbar_bus_select(bus0, 0, NULL), -EINVAL);
    CHECK_RC("busbar_bus_create(NULL, ...)", busbar_bus_create(NULL, &sel), -EINVAL);

    /* A bus that does not exist: selecting works, using it is -ENOENT. */
    CHECK_RC("busbar_bus_select of a bus that does not exist",
             busbar_bus_select(bus0, 1000000, &bad), 0);
    CHECK_NUM("busbar_bus_id of it", busbar_bus_id(bad), 1000000);
    busbar_bus_stats bs;
    busbar_binding *bindings = NULL;
    size_t count = 0;
    uint32_t found = 7, prev = 0;
    busbar_quota q = {10, 1000, 10, 10}, qprev;
    busbar_endpoint *ep = NULL;
    CHECK_RC("busbar_bus_get_info(no such bus)", busbar_bus_get_info(bad, &i), -ENOENT);
    CHECK_RC("busbar_bus_get_stats(no such bus)", busbar_bus_get_stats(bad, &bs, NULL, 0), -ENOENT);
    CHECK_RC("busbar_bus_names(no such bus)", busbar_bus_names(bad, &bindings, &count), -ENOENT);
    CHECK_RC("busbar_bus_find_replier(no such bus)", busbar_bus_find_replier(bad, "$.a", &found),
             -ENOENT);
    CHECK_RC("busbar_bus_set_max_message_size(no such bus)",
             busbar_bus_set_max_message_size(bad, 1000, &prev), -ENOENT);
    CHECK_RC("busbar_bus_set_quota(no such bus)", busbar_bus_set_quota(bad, &q, &qprev), -ENOENT);
    CHECK_RC("busbar_endpoint_open(no such bus)", busbar_endpoint_open(bad, &ep), -ENOENT);
    CHECK("busbar_endpoint_open failing leaves *out NULL", ep == NULL);
    busbar_bus_free(bad);
    busbar_bus_free(NULL);
    return bus;
}

static void test_bus_settings(busbar_bus *bus)
{
    busbar_bus_info info;
    MUST("busbar_bus_get_info", busbar_bus_get_info(bus, &info));
    uint32_t prev = 0;
    CHECK_RC("busbar_bus_set_max_message_size(99)", busbar_bus_set_max_message_size(bus, 99, &prev),
             -EINVAL);
    CHECK_RC("busbar_bus_set_max_message_size(absolute + 1)",
             busbar_bus_set_max_message_size(bus, info.absolute_max_message_size + 1, &prev),
             -EINVAL);
    CHECK_RC("busbar_bus_set_max_message_size(NULL bus)",
             busbar_bus_set_max_message_size(NULL, 1000, &prev), -EINVAL);
    CHECK_RC("busbar_bus_set_max_message_size(100)",
             busbar_bus_set_max_message_size(bus, 100, &prev), 0);
    CHECK_NUM("previous maximum message size", prev, info.max_message_size);
    busbar_bus_info now;
    MUST("busbar_bus_get_info", busbar_bus_get_info(bus, &now));
    CHECK_NUM("info after set_max_message_size(100)", now.max_message_size, 100);
    busbar_bus_stats bs;
    MUST("busbar_bus_get_stats", busbar_bus_get_stats(bus, &bs, NULL, 0));
    CHECK_NUM("stats after set_max_message_size(100)", bs.max_message_size, 100);

    busbar_endpoint *l = open_ep(bus), *s = open_ep(bus);
    MUST("bind", busbar_bind(l, "$.size.a", false));
    /* name (8 bytes) + data: 92 bytes fit exactly, 93 do not. */
    uint8_t data[200];
    memset(data, 'x', sizeof data);
    CHECK_RC("a message of exactly the maximum size",
             busbar_announce(s, "$.size.a", data, 92, NULL), 0);
    CHECK_RC("a message one byte over the maximum size",
             busbar_announce(s, "$.size.a", data, 93, NULL), -EMSGSIZE);
    busbar_outgoing o = {0};
    o.name = "$.size.a";
    o.data = data;
    o.data_len = 150;
    CHECK_RC("busbar_send of a message over the maximum size", busbar_send(s, &o, NULL), -EMSGSIZE);
    busbar_message *m = TAKE(l, "the message of the maximum size");
    size_t len = 0;
    busbar_message_data(m, &len);
    CHECK_NUM("its length", len, 92);
    busbar_message_free(m);
    CHECK_EMPTY(l, "the messages over the size were not delivered");
    CHECK_RC("restore the maximum message size",
             busbar_bus_set_max_message_size(bus, info.max_message_size, &prev), 0);
    CHECK_NUM("previous maximum message size (restoring)", prev, 100);
    CHECK_RC("busbar_bus_set_max_message_size with previous NULL",
             busbar_bus_set_max_message_size(bus, info.max_message_size, NULL), 0);
    close_ep(l);
    close_ep(s);
}

static void test_find_replier(busbar_bus *bus)
{
    busbar_endpoint *r1 = open_ep(bus), *r2 = open_ep(bus), *r3 = open_ep(bus);
    uint32_t found = 99;
    CHECK_RC("busbar_bus_find_replier with no replier", busbar_bus_find_replier(bus, "$.fr.a.b", &found),
             0);
    CHECK_NUM("no replier: endpoint 0", found, 0);
    MUST("bind", busbar_bind(r1, "$.fr.*", true));
    MUST("bind", busbar_bind(r2, "$.fr.a.%", true));
    MUST("bind", busbar_bind(r3, "$.fr.a.b", true));
    CHECK_RC("find_replier $.fr.a.b", busbar_bus_find_replier(bus, "$.fr.a.b", &found), 0);
    CHECK_NUM("the exact name wins", found, busbar_endpoint_id(r3));
    CHECK_RC("find_replier $.fr.a.c", busbar_bus_find_replier(bus, "$.fr.a.c", &found), 0);
    CHECK_NUM("then the % binding of the parent", found, busbar_endpoint_id(r2));
    CHECK_RC("find_replier $.fr.a.c.d", busbar_bus_find_replier(bus, "$.fr.a.c.d", &found), 0);
    CHECK_NUM("then the * binding", found, busbar_endpoint_id(r1));
    CHECK_RC("find_replier $.fr", busbar_bus_find_replier(bus, "$.fr", &found), 0);
    CHECK_NUM("$.fr.* does not match $.fr", found, 0);
    CHECK_RC("find_replier of a bad name", busbar_bus_find_replier(bus, "fr.a", &found), -EBADMSG);
    CHECK_RC("find_replier of an empty word", busbar_bus_find_replier(bus, "$.fr..a", &found),
             -EBADMSG);
    char *longn = long_name(1001);
    CHECK_RC("find_replier of a 1001-byte name", busbar_bus_find_replier(bus, longn, &found),
             -ENAMETOOLONG);
    longn[1000] = 0;
    CHECK_RC("find_replier of a 1000-byte name", busbar_bus_find_replier(bus, longn, &found), 0);
    free(longn);
    CHECK_RC("find_replier(NULL name)", busbar_bus_find_replier(bus, NULL, &found), -EINVAL);
    CHECK_RC("find_replier(NULL bus)", busbar_bus_find_replier(NULL, "$.fr.a", &found), -EINVAL);
    close_ep(r1);
    close_ep(r2);
    close_ep(r3);
    CHECK_RC("find_replier after the repliers closed", busbar_bus_find_replier(bus, "$.fr.a.b", &found),
             0);
    CHECK_NUM("no replier left", found, 0);
}

static void test_names_and_stats(busbar_bus *bus)
{
    busbar_endpoint *a = open_ep(bus), *b = open_ep(bus), *c = open_ep(bus);
    uint32_t ida = busbar_endpoint_id(a), idb = busbar_endpoint_id(b), idc = busbar_endpoint_id(c);
    CHECK("endpoint ids are not 0", ida && idb && idc);
    CHECK("endpoint ids are increasing", ida < idb && idb < idc);
    MUST("bind", busbar_bind(b, "$.names.one", false));
    MUST("bind", busbar_bind(a, "$.names.*", true));
    MUST("bind", busbar_bind(c, "$.names.%", false));

    busbar_binding *list = NULL;
    size_t n = 99;
    CHECK_RC("busbar_bus_names", busbar_bus_names(bus, &list, &n), 0);
    CHECK_NUM("busbar_bus_names count", n, 3);
    if (list && n == 3) {
        CHECK_NUM("names[0].endpoint (oldest first)", list[0].endpoint, idb);
        CHECK_STR("names[0].name", list[0].name, "$.names.one");
        CHECK("names[0] is a listener", !list[0].replier);
        CHECK_NUM("names[0].pid", list[0].pid, (uint32_t)getpid());
        CHECK_NUM("names[0].uid", list[0].uid, (uint32_t)getuid());
        CHECK_NUM("names[1].endpoint", list[1].endpoint, ida);
        CHECK_STR("names[1].name", list[1].name, "$.names.*");
        CHECK("names[1] is a replier", list[1].replier);
        CHECK_NUM("names[2].endpoint", list[2].endpoint, idc);
        CHECK_STR("names[2].name", list[2].name, "$.names.%");
    }
    busbar_bindings_free(list, n);
    busbar_bindings_free(NULL, 0);
    CHECK_RC("busbar_bus_names(NULL bus)", busbar_bus_names(NULL, &list, &n), -EINVAL);
    CHECK_RC("busbar_bus_names(NULL bindings)", busbar_bus_names(bus, NULL, &n), -EINVAL);
    CHECK_RC("busbar_bus_names(NULL count)", busbar_bus_names(bus, &list, NULL), -EINVAL);

    busbar_msg_id sent;
    MUST("announce", announce(c, "$.names.one", "12345", &sent));
    busbar_bus_stats bs;
    memset(&bs, 0, sizeof bs);
    CHECK_RC("busbar_bus_get_stats with no endpoint array", busbar_bus_get_stats(bus, &bs, NULL, 0), 3);
    CHECK_NUM("bus stats: bus", bs.bus, busbar_bus_id(bus));
    CHECK_NUM("bus stats: endpoints", bs.endpoints, 3);
    CHECK_NUM("bus stats: bindings", bs.bindings, 3);
    CHECK_NUM("bus stats: replier_bindings", bs.replier_bindings, 1);
    CHECK_NUM("bus stats: next_serial", bs.next_serial, sent.serial + 1);
    CHECK("bus stats: bind events off", !bs.replier_bind_events);
    CHECK_NUM("bus stats: set_aside", bs.set_aside, 0);

    busbar_endpoint_stats es[4];
    memset(es, 0xab, sizeof es);
    CHECK_RC("busbar_bus_get_stats with room for 1 of 3 endpoints", busbar_bus_get_stats(bus, &bs, es, 1), 3);
    CHECK_NUM("endpoints[0].id", es[0].id, ida);
    CHECK_NUM("endpoints[1] untouched", es[1].id, 0xababababu);
    memset(es, 0xab, sizeof es);
    CHECK_RC("busbar_bus_get_stats with room for 4", busbar_bus_get_stats(bus, &bs, es, 4), 3);
    CHECK_NUM("endpoints[0].id", es[0].id, ida);
    CHECK_NUM("endpoints[1].id", es[1].id, idb);
    CHECK_NUM("endpoints[2].id", es[2].id, idc);
    CHECK_NUM("endpoints[3] untouched", es[3].id, 0xababababu);
    CHECK_NUM("endpoints[1].queued", es[1].queued, 1);
    CHECK_NUM("endpoints[1].queued_bytes (name + data)", es[1].queued_bytes, 11 + 5);
    CHECK_NUM("endpoints[1].bindings", es[1].bindings, 1);
    CHECK_NUM("endpoints[2].sent", es[2].sent, 1);
    CHECK_ID("endpoints[2].last_sent", es[2].last_sent, sent);
    CHECK_NUM("endpoints[0].pid", es[0].pid, (uint32_t)getpid());
    CHECK_NUM("endpoints[0].uid", es[0].uid, (uint32_t)getuid());
    CHECK_RC("busbar_bus_get_stats(capacity 2, NULL array)", busbar_bus_get_stats(bus, &bs, NULL, 2), -EINVAL);
    CHECK_RC("busbar_bus_get_stats(NULL bus)", busbar_bus_get_stats(NULL, &bs, NULL, 0), -EINVAL);
    close_ep(a);
    close_ep(b);
    close_ep(c);
    CHECK_RC("busbar_bus_get_stats after closing them", busbar_bus_get_stats(bus, &bs, NULL, 0), 0);
    CHECK_NUM("bus stats: bindings after closing", bs.bindings, 0);
}

/* ----- endpoints and bindings -------------------------------------------- */

static void test_endpoints(busbar_bus *bus)
{
    busbar_endpoint *ep = NULL;
    CHECK_RC("busbar_endpoint_open(NULL bus)", busbar_endpoint_open(NULL, &ep), -EINVAL);
    CHECK_RC("busbar_endpoint_open(bus, NULL)", busbar_endpoint_open(bus, NULL), -EINVAL);
    CHECK_RC("busbar_endpoint_open", busbar_endpoint_open(bus, &ep), 0);
    CHECK("busbar_endpoint_id is not 0", busbar_endpoint_id(ep) != 0);
    CHECK_NUM("busbar_endpoint_id(NULL)", busbar_endpoint_id(NULL), 0);
    busbar_endpoint *ep2 = open_ep(bus);
    CHECK("a second endpoint has another id", busbar_endpoint_id(ep2) > busbar_endpoint_id(ep));
    CHECK_RC("busbar_endpoint_close", busbar_endpoint_close(ep), 0);
    CHECK_RC("busbar_endpoint_close(NULL)", busbar_endpoint_close(NULL), 0);
    busbar_endpoint *ep3 = open_ep(bus);
    CHECK("ids are never reused", busbar_endpoint_id(ep3) > busbar_endpoint_id(ep2));
    close_ep(ep2);
    close_ep(ep3);

    /* Endpoints outlive the bus handle they were opened from. */
    busbar_bus *h = NULL;
    MUST("busbar_bus_select", busbar_bus_select(bus, busbar_bus_id(bus), &h));
    busbar_endpoint *ep4 = open_ep(h);
    busbar_bus_free(h);
    CHECK_RC("bind after the bus handle was freed", busbar_bind(ep4, "$.ep.self", false), 0);
    CHECK_RC("send after the bus handle was freed", announce(ep4, "$.ep.self", "me", NULL), 0);
    busbar_message *m = TAKE(ep4, "our own message after the bus handle was freed");
    CHECK_NUM("it is from us", busbar_message_from(m), busbar_endpoint_id(ep4));
    busbar_message_free(m);
    close_ep(ep4);
}

static void test_bind(busbar_bus *bus)
{
    busbar_endpoint *a = open_ep(bus), *b = open_ep(bus), *s = open_ep(bus);
    char *longn = long_name(1001);

    CHECK_RC("bind a listener", busbar_bind(a, "$.bind.a", false), 0);
    CHECK_RC("bind the same listener again", busbar_bind(a, "$.bind.a", false), 0);
    CHECK_RC("bind a replier", busbar_bind(a, "$.bind.r", true), 0);
    CHECK_RC("bind $.bind.* as replier", busbar_bind(a, "$.bind.*", true), 0);
    CHECK_RC("bind $.bind.% as replier", busbar_bind(b, "$.bind.%", true), 0);
    CHECK_RC("bind $.* as listener", busbar_bind(b, "$.*", false), 0);
    CHECK_RC("a second replier for a pattern", busbar_bind(b, "$.bind.r", true), -EADDRINUSE);
    CHECK_RC("the same replier twice", busbar_bind(a, "$.bind.r", true), -EADDRINUSE);
    CHECK_RC("bind a bad name", busbar_bind(a, "bind.a", false), -EBADMSG);
    CHECK_RC("bind an empty name", busbar_bind(a, "", false), -EBADMSG);
    CHECK_RC("bind a trailing dot", busbar_bind(a, "$.bind.", false), -EBADMSG);
    CHECK_RC("bind a bad character", busbar_bind(a, "$.bind.a_b", false), -EBADMSG);
    CHECK_RC("bind $.a* (wildcard inside a word)", busbar_bind(a, "$.bind*", false), -EBADMSG);
    CHECK_RC("bind $.*.a (wildcard not last)", busbar_bind(a, "$.*.a", false), -EBADMSG);
    CHECK_RC("bind ReplierBindEvent as replier", busbar_bind(a, NAME_BIND_EVENT, true), -EBADMSG);
    CHECK_RC("bind a 1001-byte name", busbar_bind(a, longn, false), -ENAMETOOLONG);
    CHECK_RC("bind(NULL endpoint)", busbar_bind(NULL, "$.bind.a", false), -EINVAL);
    CHECK_RC("bind(NULL pattern)", busbar_bind(a, NULL, false), -EINVAL);
    CHECK_NUM("bindings held by a", ep_stats(a).bindings, 4);

    /* Two listener bindings: two copies. */
    MUST("announce", announce(s, "$.bind.a", "x", NULL));
    TAKE_NAMED(a, "$.bind.a");
    TAKE_NAMED(a, "$.bind.a");
    TAKE_NAMED(b, "$.bind.a");
    CHECK_EMPTY(a, "two copies only");

    /* Unbind removes the most recent binding and the messages it brought. */
    MUST("announce", announce(s, "$.bind.a", "y", NULL));
    TAKE_NAMED(b, "$.bind.a");
    CHECK_NUM("two copies queued", ep_stats(a).queued, 2);
    CHECK_RC("unbind a listener", busbar_unbind(a, "$.bind.a", false), 0);
    CHECK_NUM("one copy left after unbind", ep_stats(a).queued, 1);
    CHECK_RC("unbind the other listener", busbar_unbind(a, "$.bind.a", false), 0);
    CHECK_EMPTY(a, "unbind removed the queued copies");
    CHECK_RC("unbind a listener that is not bound", busbar_unbind(a, "$.bind.a", false), -EINVAL);
    CHECK_RC("unbind a replier that is bound as listener", busbar_unbind(b, "$.*", true), -EINVAL);
    CHECK_RC("unbind a replier of someone else", busbar_unbind(b, "$.bind.r", true), -EINVAL);
    CHECK_RC("unbind a bad name", busbar_unbind(a, "$..a", false), -EBADMSG);
    CHECK_RC("unbind a 1001-byte name", busbar_unbind(a, longn, false), -ENAMETOOLONG);
    CHECK_RC("unbind(NULL endpoint)", busbar_unbind(NULL, "$.bind.a", false), -EINVAL);
    CHECK_RC("unbind(NULL pattern)", busbar_unbind(a, NULL, false), -EINVAL);

    /* Unbinding a replier with a request unread: Unbound. */
    busbar_msg_id req;
    MUST("request", busbar_request(s, "$.bind.r", bytes("q"), 1, &req));
    TAKE_NAMED(b, "$.bind.r"); /* b's listener copy through $.* */
    CHECK_RC("unbind the replier", busbar_unbind(a, "$.bind.r", true), 0);
    busbar_message *m = NULL;
    CHECK_RC("wait for the Unbound reply", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    CHECK_STR("the reply to a request whose replier unbound", busbar_message_name(m),
              "$.KBUS.Replier.Unbound");
    CHECK("Unbound is synthetic", busbar_message_is_synthetic(m));
    CHECK_NUM("Unbound is from the replier", busbar_message_from(m), busbar_endpoint_id(a));
    CHECK_NUM("Unbound is to the requester", busbar_message_to(m), busbar_endpoint_id(s));
    CHECK_ID("Unbound in_reply_to", busbar_message_in_reply_to(m), req);
    busbar_message_free(m);
    CHECK_EMPTY(a, "the unbound request was removed from the replier's queue");
    CHECK_RC("the replier pattern is free again", busbar_bind(b, "$.bind.r", true), 0);
    CHECK_RC("unbind it", busbar_unbind(b, "$.bind.r", true), 0);
    free(longn);
    close_ep(a);
    close_ep(b);
    close_ep(s);
}

/* ----- sending with busbar_outgoing ------------------------------------- */

static void test_send_struct(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *r = open_ep(bus), *l = open_ep(bus);
    uint32_t sid = busbar_endpoint_id(s), rid = busbar_endpoint_id(r);
    MUST("bind", busbar_bind(l, "$.s.*", false));
    MUST("bind", busbar_bind(r, "$.s.req", true));

    /* Announcement, with the fields that pass through unchanged. */
    busbar_outgoing o = {0};
    busbar_msg_id id = NO_ID;
    o.name = "$.s.ann";
    o.data = bytes("hello");
    o.data_len = 5;
    o.flags = 0x00050000u | BUSBAR_SYNTHETIC | BUSBAR_WANT_YOU_TO_REPLY;
    o.orig_from.network = 3;
    o.orig_from.local = 4;
    o.final_to.network = 5;
    o.final_to.local = 6;
    CHECK_RC("busbar_send an announcement", busbar_send(s, &o, &id), 0);
    CHECK_NUM("its id: network 0", id.network, 0);
    CHECK("its id: a serial", id.serial != 0);
    busbar_message *m = TAKE(l, "the announcement");
    CHECK_ID("busbar_message_id", busbar_message_id(m), id);
    CHECK_ID("busbar_message_in_reply_to of an announcement", busbar_message_in_reply_to(m), NO_ID);
    CHECK_NUM("busbar_message_to of an announcement", busbar_message_to(m), 0);
    CHECK_NUM("busbar_message_from", busbar_message_from(m), sid);
    CHECK_NUM("busbar_message_orig_from.network", busbar_message_orig_from(m).network, 3);
    CHECK_NUM("busbar_message_orig_from.local", busbar_message_orig_from(m).local, 4);
    CHECK_NUM("busbar_message_final_to.network", busbar_message_final_to(m).network, 5);
    CHECK_NUM("busbar_message_final_to.local", busbar_message_final_to(m).local, 6);
    CHECK_NUM("busbar_message_flags: user bits kept, SYNTHETIC and WANT_YOU_TO_REPLY cleared",
              busbar_message_flags(m), 0x00050000u);
    CHECK_STR("busbar_message_name", busbar_message_name(m), "$.s.ann");
    CHECK_DATA("busbar_message_data", m, "hello");
    size_t len = 0;
    const uint8_t *d1 = busbar_message_data(m, &len), *d2 = busbar_message_data(m, NULL);
    CHECK("busbar_message_data is not copied (same pointer twice)", d1 == d2 && d1 != NULL);
    busbar_creds c = busbar_message_creds(m);
    CHECK_NUM("creds.pid", c.pid, (uint32_t)getpid());
    CHECK_NUM("creds.uid", c.uid, (uint32_t)getuid());
    CHECK_NUM("creds.gid", c.gid, (uint32_t)getgid());
    CHECK_NUM("busbar_message_lost", busbar_message_lost(m), 0);
    CHECK("not synthetic", !busbar_message_is_synthetic(m));
    CHECK("not a request", !busbar_message_is_request(m));
    CHECK("not a reply", !busbar_message_is_reply(m));
    CHECK("does not want us to reply", !busbar_message_wants_us_to_reply(m));
    size_t hc = 99;
    CHECK("busbar_message_handles: none", busbar_message_handles(m, &hc) == NULL);
    CHECK_NUM("busbar_message_handles count", hc, 0);
    CHECK_NUM("busbar_message_destination", busbar_message_destination(m), 0);
    CHECK_NUM("busbar_message_fd_count", busbar_message_fd_count(m), 0);
    CHECK_RC("busbar_message_fd(0) without fds", busbar_message_fd(m, 0), -1);
    busbar_message_free(m);

    /* An announcement without data. */
    memset(&o, 0, sizeof o);
    o.name = "$.s.empty";
    CHECK_RC("busbar_send with no data", busbar_send(s, &o, NULL), 0);
    m = TAKE(l, "the empty announcement");
    len = 99;
    CHECK("no data: busbar_message_data is NULL", busbar_message_data(m, &len) == NULL);
    CHECK_NUM("no data: length 0", len, 0);
    busbar_message_free(m);

    /* A forwarded id is kept (privileged through the daemon; we are). */
    memset(&o, 0, sizeof o);
    o.name = "$.s.fwd";
    o.id.network = 9;
    o.id.serial = 77;
    id = NO_ID;
    CHECK_RC("busbar_send with a forwarded id", busbar_send(s, &o, &id), 0);
    CHECK_ID("the id returned for a forwarded message", id, ((busbar_msg_id){9, 77}));
    m = TAKE(l, "the forwarded message");
    CHECK_ID("a forwarded message keeps its id", busbar_message_id(m), ((busbar_msg_id){9, 77}));
    busbar_message_free(m);

    /* A request. */
    memset(&o, 0, sizeof o);
    o.name = "$.s.req";
    o.data = bytes("ping");
    o.data_len = 4;
    o.flags = BUSBAR_WANT_A_REPLY;
    busbar_msg_id req = NO_ID;
    CHECK_RC("busbar_send a request", busbar_send(s, &o, &req), 0);
    busbar_message *rq = TAKE(r, "the request (replier)");
    CHECK_NUM("replier's copy: flags", busbar_message_flags(rq),
              BUSBAR_WANT_A_REPLY | BUSBAR_WANT_YOU_TO_REPLY);
    CHECK("replier's copy is a request", busbar_message_is_request(rq));
    CHECK("replier's copy wants us to reply", busbar_message_wants_us_to_reply(rq));
    CHECK("replier's copy is not a reply", !busbar_message_is_reply(rq));
    CHECK_ID("replier's copy: id", busbar_message_id(rq), req);
    m = TAKE(l, "the request (listener)");
    CHECK_NUM("listener's copy: flags", busbar_message_flags(m), BUSBAR_WANT_A_REPLY);
    CHECK("listener's copy is a request", busbar_message_is_request(m));
    CHECK("listener's copy does not want us to reply", !busbar_message_wants_us_to_reply(m));
    busbar_message_free(m);
    CHECK_NUM("requester: outstanding_requests", ep_stats(s).outstanding_requests, 1);
    CHECK_NUM("replier: owed_replies", ep_stats(r).owed_replies, 1);

    /* A reply through the struct: to + in_reply_to. */
    memset(&o, 0, sizeof o);
    o.name = "$.s.req";
    o.data = bytes("pong");
    o.data_len = 4;
    o.flags = BUSBAR_WANT_A_REPLY;
    o.to = sid;
    o.in_reply_to = req;
    CHECK_RC("a request that is also a reply", busbar_send(r, &o, NULL), -EINVAL);
    o.flags = 0;
    o.to = rid;
    CHECK_RC("a reply with `to` not the requester", busbar_send(r, &o, NULL), -ECONNREFUSED);
    o.to = sid;
    CHECK_RC("a reply from an endpoint that is not the replier", busbar_send(l, &o, NULL),
             -ECONNREFUSED);
    busbar_msg_id rep = NO_ID;
    CHECK_RC("busbar_send a reply", busbar_send(r, &o, &rep), 0);
    CHECK_RC("busbar_send the same reply again", busbar_send(r, &o, NULL), -ECONNREFUSED);
    CHECK_NUM("replier owes nothing now", ep_stats(r).owed_replies, 0);
    m = NULL;
    CHECK_RC("busbar_wait_reply for the reply", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    CHECK_ID("reply: id", busbar_message_id(m), rep);
    CHECK_ID("reply: in_reply_to", busbar_message_in_reply_to(m), req);
    CHECK_NUM("reply: to", busbar_message_to(m), sid);
    CHECK_NUM("reply: from", busbar_message_from(m), rid);
    CHECK("reply: is_reply", busbar_message_is_reply(m));
    CHECK("reply: not a request", !busbar_message_is_request(m));
    CHECK("reply: not synthetic", !busbar_message_is_synthetic(m));
    CHECK_DATA("reply: data", m, "pong");
    busbar_message_free(m);
    m = TAKE(l, "the listener's copy of the reply");
    CHECK("the listener's copy is a reply", busbar_message_is_reply(m));
    busbar_message_free(m);
    CHECK_EMPTY(r, "a reply never reaches the replier binding");
    CHECK_NUM("requester: no outstanding request", ep_stats(s).outstanding_requests, 0);

    /* A stateful request through the struct (`to` = the replier). */
    memset(&o, 0, sizeof o);
    o.name = "$.s.req";
    o.flags = BUSBAR_WANT_A_REPLY;
    o.to = rid;
    CHECK_RC("a stateful request through busbar_send", busbar_send(s, &o, &req), 0);
    busbar_message_free(rq);
    rq = TAKE(r, "the stateful request");
    CHECK_NUM("the stateful request's to", busbar_message_to(rq), rid);
    CHECK_RC("busbar_reply to it", busbar_reply(r, rq, NULL, 0, NULL), 0);
    CHECK_RC("busbar_reply twice", busbar_reply(r, rq, NULL, 0, NULL), -ECONNREFUSED);
    busbar_message_free(rq);
    m = NULL;
    CHECK_RC("its reply", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.s.req");
    TAKE_NAMED(l, "$.s.req");

    /* URGENT goes to the front; two urgent ones read last-in first-out. */
    const char *order[] = {"$.s.u2", "$.s.u1", "$.s.n1", "$.s.n2"};
    memset(&o, 0, sizeof o);
    o.name = "$.s.n1";
    MUST("send", busbar_send(s, &o, NULL));
    o.name = "$.s.n2";
    MUST("send", busbar_send(s, &o, NULL));
    o.flags = BUSBAR_URGENT;
    o.name = "$.s.u1";
    MUST("send", busbar_send(s, &o, NULL));
    o.name = "$.s.u2";
    MUST("send", busbar_send(s, &o, NULL));
    for (int i = 0; i < 4; i++)
        TAKE_NAMED(l, order[i]);

    /* Bad sends change nothing. */
    busbar_bus_stats before, after;
    MUST("busbar_bus_get_stats", busbar_bus_get_stats(bus, &before, NULL, 0));
    char *longn = long_name(1001);
    memset(&o, 0, sizeof o);
    o.name = "$.s.x";
    o.flags = BUSBAR_ALL_OR_WAIT | BUSBAR_ALL_OR_FAIL;
    CHECK_RC("both ALL_OR flags", busbar_send(s, &o, NULL), -EINVAL);
    o.flags = 0;
    o.name = "s.x";
    CHECK_RC("send to a bad name", busbar_send(s, &o, NULL), -EBADMSG);
    o.name = "$.s.x.";
    CHECK_RC("send to a name with a trailing dot", busbar_send(s, &o, NULL), -EBADMSG);
    o.name = "$.s.*";
    CHECK_RC("send to a wildcard name", busbar_send(s, &o, NULL), -EBADMSG);
    o.name = "$.s.%";
    CHECK_RC("send to a % name", busbar_send(s, &o, NULL), -EBADMSG);
    o.name = longn;
    CHECK_RC("send to a 1001-byte name", busbar_send(s, &o, NULL), -ENAMETOOLONG);
    o.name = "$.s.nobody";
    o.flags = BUSBAR_WANT_A_REPLY;
    CHECK_RC("a request with no replier", busbar_send(s, &o, NULL), -EADDRNOTAVAIL);
    o.name = NULL;
    o.flags = 0;
    CHECK_RC("busbar_send with a NULL name", busbar_send(s, &o, NULL), -EINVAL);
    o.name = "$.s.x";
    o.data_len = 3;
    CHECK_RC("busbar_send with NULL data of length 3", busbar_send(s, &o, NULL), -EINVAL);
    o.data_len = 0;
    CHECK_RC("busbar_send(NULL message)", busbar_send(s, NULL, NULL), -EINVAL);
    CHECK_RC("busbar_send(NULL endpoint)", busbar_send(NULL, &o, NULL), -EINVAL);
    MUST("busbar_bus_get_stats", busbar_bus_get_stats(bus, &after, NULL, 0));
    CHECK_NUM("failed sends take no serial", after.next_serial, before.next_serial);
    CHECK_EMPTY(l, "failed sends deliver nothing");
    free(longn);
    close_ep(s);
    close_ep(r);
    close_ep(l);
}

/* Full queues, ENOLCK, EPIPE, EDQUOT, ETOOMANYREFS, EBADF. */
static void test_send_errors(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *r = open_ep(bus), *l = open_ep(bus), *r2 = open_ep(bus);
    busbar_outgoing o = {0};
    uint32_t prev = 0;

    /* -EBUSY: a full listener with ALL_OR_FAIL, a full replier. */
    MUST("bind", busbar_bind(l, "$.full.a", false));
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(l, 1, &prev));
    MUST("announce", announce(s, "$.full.a", "1", NULL));
    o.name = "$.full.a";
    o.flags = BUSBAR_ALL_OR_FAIL;
    CHECK_RC("ALL_OR_FAIL to a full listener", busbar_send(s, &o, NULL), -EBUSY);
    MUST("bind", busbar_bind(r, "$.full.r", true));
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(r, 1, NULL));
    MUST("request", busbar_request(s, "$.full.r", NULL, 0, NULL));
    CHECK_RC("a request to a full replier", busbar_request(s, "$.full.r", NULL, 0, NULL), -EBUSY);
    busbar_message *rq = TAKE(r, "the first request");
    CHECK_RC("answer it", busbar_reply(r, rq, NULL, 0, NULL), 0);
    busbar_message_free(rq);
    TAKE_NAMED(s, "$.full.r");
    TAKE_NAMED(l, "$.full.a");

    /* -ENOLCK: no room in our own queue for a request's reply. */
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(s, 1, NULL));
    busbar_msg_id req;
    MUST("request", busbar_request(s, "$.full.r", NULL, 0, &req));
    CHECK_RC("a second request with a queue limit of 1", busbar_request(s, "$.full.r", NULL, 0, NULL),
             -ENOLCK);
    CHECK_NUM("outstanding requests", ep_stats(s).outstanding_requests, 1);
    rq = TAKE(r, "the request");
    MUST("reply", busbar_reply(r, rq, bytes("ok"), 2, NULL));
    busbar_message_free(rq);
    busbar_message *m = NULL;
    CHECK_RC("the reply arrives in the reserved slot", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    busbar_message_free(m);
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(s, 100, NULL));

    /* -EPIPE / -EADDRNOTAVAIL: stateful requests after the replier changed. */
    MUST("bind", busbar_bind(r, "$.state.a", true));
    m = NULL;
    MUST("request", busbar_request(s, "$.state.a", NULL, 0, &req));
    rq = TAKE(r, "the request to $.state.a");
    MUST("reply", busbar_reply(r, rq, NULL, 0, NULL));
    busbar_message_free(rq);
    CHECK_RC("the reply", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    CHECK_RC("a stateful request to the same replier", busbar_stateful_request(s, m, "$.state.a",
             bytes("2"), 1, &req), 0);
    rq = TAKE(r, "the stateful request");
    CHECK_NUM("it reached the same replier, with to set", busbar_message_to(rq),
              busbar_endpoint_id(r));
    CHECK("it wants a reply", busbar_message_wants_us_to_reply(rq));
    busbar_message *rq2 = NULL;
    MUST("reply", busbar_reply(r, rq, NULL, 0, NULL));
    MUST("its reply", busbar_wait_reply(s, req, GUARD_MS, &rq2));
    busbar_message_free(rq2);
    MUST("unbind", busbar_unbind(r, "$.state.a", true));
    MUST("bind", busbar_bind(r2, "$.state.a", true));
    CHECK_RC("a stateful request when another endpoint holds the name",
             busbar_stateful_request(s, m, "$.state.a", NULL, 0, NULL), -EPIPE);
    /* The same with the struct: the replier as `to`. */
    memset(&o, 0, sizeof o);
    o.name = "$.state.a";
    o.flags = BUSBAR_WANT_A_REPLY;
    o.to = busbar_endpoint_id(r);
    CHECK_RC("busbar_send a stateful request when the replier changed", busbar_send(s, &o, NULL),
             -EPIPE);
    MUST("unbind", busbar_unbind(r2, "$.state.a", true));
    CHECK_RC("a stateful request when nobody holds the name",
             busbar_stateful_request(s, m, "$.state.a", NULL, 0, NULL), -EADDRNOTAVAIL);
    CHECK_RC("busbar_stateful_request(NULL earlier)",
             busbar_stateful_request(s, NULL, "$.state.a", NULL, 0, NULL), -EINVAL);
    CHECK_RC("busbar_stateful_request(NULL name)", busbar_stateful_request(s, rq, NULL, NULL, 0, NULL),
             -EINVAL);
    /* A stateful request built from an earlier stateful request. */
    MUST("bind", busbar_bind(r, "$.state.a", true));
    busbar_endpoint *s2 = open_ep(bus);
    CHECK_RC("a stateful request from an earlier stateful request",
             busbar_stateful_request(s2, rq, "$.state.a", NULL, 0, &req), 0);
    busbar_message_free(rq);
    rq = TAKE(r, "the request built from a stateful request");
    CHECK_NUM("it goes to the same replier", busbar_message_to(rq), busbar_endpoint_id(r));
    busbar_message_free(m);
    /* A reply whose requester has gone: -EADDRNOTAVAIL. */
    close_ep(s2);
    CHECK_RC("a reply to a requester that closed", busbar_reply(r, rq, NULL, 0, NULL),
             -EADDRNOTAVAIL);
    CHECK_NUM("that cancels the debt", ep_stats(r).owed_replies, 0);
    busbar_message_free(rq);

    /* -EDQUOT: the bus's quota per (receiving user, sending user). */
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(l, 100, NULL));
    busbar_quota q = {1, 1 << 20, 1, 16}, old, back;
    memset(&old, 0, sizeof old);
    CHECK_RC("busbar_bus_set_quota", busbar_bus_set_quota(bus, &q, &old), 0);
    CHECK_RC("one message within the quota", announce(s, "$.full.a", "q", NULL), 0);
    CHECK_RC("a message over the quota", announce(s, "$.full.a", "q", NULL), -EDQUOT);
    TAKE_NAMED(l, "$.full.a");
    CHECK_RC("after it was taken, room again", announce(s, "$.full.a", "q", NULL), 0);
    TAKE_NAMED(l, "$.full.a");
    uint64_t h1 = 0, h2 = 0;
    CHECK_RC("busbar_create_node within the handle quota", busbar_create_node(s, &h1), 0);
    CHECK_RC("busbar_create_node over the handle quota", busbar_create_node(s, &h2), -EDQUOT);
    CHECK_RC("busbar_destroy_nodes", busbar_destroy_nodes(s, &h1, 1), 0);
    TAKE_NAMED(s, "$.KBUS.Node.Destroyed");
    CHECK_RC("busbar_release_handle of the destroyed node", busbar_release_handle(s, h1), 0);
    CHECK_RC("busbar_bus_set_quota back", busbar_bus_set_quota(bus, &old, &back), 0);
    CHECK_NUM("previous quota: messages", back.messages, 1);
    CHECK_NUM("previous quota: bytes", back.bytes, 1 << 20);
    CHECK_NUM("previous quota: handles", back.handles, 1);
    CHECK_NUM("previous quota: fds", back.fds, 16);
    CHECK_RC("busbar_bus_set_quota with previous NULL", busbar_bus_set_quota(bus, &old, NULL), 0);
    CHECK_RC("busbar_bus_set_quota(NULL quota)", busbar_bus_set_quota(bus, NULL, &back), -EINVAL);
    CHECK_RC("busbar_bus_set_quota(NULL bus)", busbar_bus_set_quota(NULL, &old, &back), -EINVAL);

    /* -ETOOMANYREFS, -EBADF. */
    int fds[BUSBAR_MAX_FDS_PER_MESSAGE + 1];
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        fds[i] = 0;
    memset(&o, 0, sizeof o);
    o.name = "$.full.a";
    o.fds = fds;
    o.fd_count = BUSBAR_MAX_FDS_PER_MESSAGE + 1;
    CHECK_RC("254 fds", busbar_send(s, &o, NULL), -ETOOMANYREFS);
    uint64_t node = 0;
    MUST("busbar_create_node", busbar_create_node(s, &node));
    uint64_t *many = malloc(1025 * sizeof *many);
    for (int i = 0; i < 1025; i++)
        many[i] = node;
    memset(&o, 0, sizeof o);
    o.name = "$.full.a";
    o.handles = many;
    o.handle_count = 1025;
    CHECK_RC("1025 handles", busbar_send(s, &o, NULL), -ETOOMANYREFS);
    free(many);
    memset(&o, 0, sizeof o);
    o.name = "$.full.a";
    fds[0] = -1;
    o.fds = fds;
    o.fd_count = 1;
    CHECK_RC("an fd of -1", busbar_send(s, &o, NULL), -EBADF);
    fds[0] = INT_MAX;
    CHECK_RC("an fd that is not open", busbar_send(s, &o, NULL), -EBADF);
    o.fds = NULL;
    CHECK_RC("fds NULL with fd_count 1", busbar_send(s, &o, NULL), -EINVAL);
    o.fd_count = 0;
    o.handle_count = 1;
    CHECK_RC("handles NULL with handle_count 1", busbar_send(s, &o, NULL), -EINVAL);
    o.handle_count = 0;
    o.to_handle_count = 1;
    CHECK_RC("to_handles NULL with to_handle_count 1", busbar_send(s, &o, NULL), -EINVAL);
    CHECK_EMPTY(l, "nothing delivered by the failed sends");
    close_ep(s);
    close_ep(r);
    close_ep(r2);
    close_ep(l);
}

/* ----- ALL_OR_WAIT, pending sends ------------------------------------------ */

struct drain_job {
    busbar_endpoint *sender, *full;
    int saw_pending;
    int rc;
};

/* Waits until the sender's send is pending, then makes room for it. */
static void *drain_when_pending(void *arg)
{
    struct drain_job *job = arg;
    long long end = now_ms() + GUARD_MS;
    while (now_ms() < end) {
        busbar_endpoint_stats st;
        if (busbar_endpoint_get_stats(job->sender, &st) == 0 && st.has_pending_send) {
            job->saw_pending = 1;
            break;
        }
        ms_sleep(1);
    }
    busbar_message *m = NULL;
    job->rc = busbar_recv(job->full, 0, &m);
    busbar_message_free(m);
    return NULL;
}

static void test_all_or_wait(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    MUST("bind", busbar_bind(l, "$.wait.a", false));
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(l, 1, NULL));
    MUST("announce", announce(l, "$.wait.a", "fill", NULL));

    busbar_outgoing o = {0};
    o.name = "$.wait.a";
    o.data = bytes("w");
    o.data_len = 1;
    o.flags = BUSBAR_ALL_OR_WAIT;
    busbar_msg_id id = {1, 1};
    CHECK_RC("ALL_OR_WAIT to a full listener", busbar_send(s, &o, &id), -EAGAIN);
    busbar_endpoint_stats st = ep_stats(s);
    CHECK("stats: has_pending_send", st.has_pending_send);
    CHECK("stats: pending_send has a serial", st.pending_send.serial != 0);
    CHECK_ID("stats: last_sent is the pending send", st.last_sent, st.pending_send);
    busbar_msg_id pending = st.pending_send;
    busbar_msg_id oid = NO_ID;
    int result = 1;
    CHECK_RC("busbar_take_send_outcome while pending", busbar_take_send_outcome(s, &oid, &result),
             -EAGAIN);
    CHECK_RC("another send while one is pending", announce(s, "$.wait.b", "", NULL), -EALREADY);
    o.flags = 0;
    CHECK_RC("busbar_send_wait while one is pending", busbar_send_wait(s, &o, 0, NULL), -EALREADY);
    o.flags = BUSBAR_ALL_OR_WAIT;
    CHECK_NUM("the sender has nothing to take yet", readable(s, 0), 0);

    /* Room: the bus delivers the pending send. */
    busbar_message *m = TAKE(l, "the message that filled the queue");
    busbar_message_free(m);
    CHECK_NUM("the sender's readiness fd says an outcome is there", readable(s, GUARD_MS), 1);
    CHECK_RC("busbar_take_send_outcome", busbar_take_send_outcome(s, &oid, &result), 0);
    CHECK_ID("the outcome's id", oid, pending);
    CHECK_RC("the outcome's result", result, 0);
    CHECK_NUM("nothing to take after the outcome", readable(s, 0), 0);
    CHECK_RC("busbar_take_send_outcome again", busbar_take_send_outcome(s, &oid, &result), -EAGAIN);
    m = TAKE(l, "the pending message");
    CHECK_ID("delivered with the pending id", busbar_message_id(m), pending);
    busbar_message_free(m);

    /* Discarding. */
    MUST("announce", announce(l, "$.wait.a", "fill", NULL));
    CHECK_RC("ALL_OR_WAIT again", busbar_send(s, &o, NULL), -EAGAIN);
    CHECK_RC("busbar_discard_send with a pending send", busbar_discard_send(s), 1);
    CHECK_RC("busbar_discard_send with none", busbar_discard_send(s), 0);
    CHECK("no pending send after discard", !ep_stats(s).has_pending_send);
    CHECK_RC("a discarded send has no outcome", busbar_take_send_outcome(s, &oid, &result), -EAGAIN);
    CHECK_RC("busbar_discard_send(NULL)", busbar_discard_send(NULL), -EINVAL);
    CHECK_RC("busbar_take_send_outcome(NULL)", busbar_take_send_outcome(NULL, &oid, &result),
             -EINVAL);

    /* busbar_send_wait: times out (and discards), then succeeds when another
     * thread makes room. */
    CHECK_RC("busbar_send_wait on a full queue", busbar_send_wait(s, &o, SHORT_MS, &id), -ETIMEDOUT);
    CHECK("no pending send after the timeout", !ep_stats(s).has_pending_send);
    CHECK_RC("the queue still holds only its first message", (int)ep_stats(l).queued, 1);
    o.name = "$.wait..a";
    CHECK_RC("busbar_send_wait to a bad name", busbar_send_wait(s, &o, SHORT_MS, NULL), -EBADMSG);
    o.name = "$.wait.a";
    CHECK_RC("busbar_send_wait(NULL message)", busbar_send_wait(s, NULL, 0, NULL), -EINVAL);
    CHECK_RC("busbar_send_wait(NULL endpoint)", busbar_send_wait(NULL, &o, 0, NULL), -EINVAL);

    struct drain_job job = {s, l, 0, 1};
    pthread_t t;
    MUST("pthread_create", -pthread_create(&t, NULL, drain_when_pending, &job));
    id = NO_ID;
    CHECK_RC("busbar_send_wait until another thread makes room", busbar_send_wait(s, &o, GUARD_MS, &id),
             0);
    pthread_join(t, NULL);
    CHECK("the thread saw the send pending", job.saw_pending);
    CHECK_RC("the thread took the message in the way", job.rc, 0);
    m = TAKE(l, "the message busbar_send_wait sent");
    CHECK_ID("it has the id busbar_send_wait returned", busbar_message_id(m), id);
    CHECK_DATA("its data", m, "w");
    busbar_message_free(m);
    CHECK_RC("busbar_send_wait with room does not wait", busbar_send_wait(s, &o, 0, &id), 0);
    TAKE_NAMED(l, "$.wait.a");
    close_ep(s);
    close_ep(l);
}

/* ----- batches ------------------------------------------------------------ */

static void test_batch(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    MUST("bind", busbar_bind(l, "$.batch.*", false));
    busbar_outgoing b[3];
    memset(b, 0, sizeof b);
    b[0].name = "$.batch.one";
    b[1].name = "$.batch..bad";
    b[2].name = "$.batch.three";
    b[2].data = bytes("3");
    b[2].data_len = 1;
    int results[3] = {7, 7, 7};
    busbar_msg_id ids[3];
    memset(ids, 0, sizeof ids);
    CHECK_RC("busbar_send_batch of 3 with one bad", busbar_send_batch(s, b, 3, results, ids), 2);
    CHECK_RC("results[0]", results[0], 0);
    CHECK_RC("results[1]", results[1], -EBADMSG);
    CHECK_RC("results[2]", results[2], 0);
    CHECK("ids[0] and ids[2] in order", ids[0].serial != 0 && ids[2].serial > ids[0].serial);
    busbar_message *m = TAKE(l, "the batch's first message");
    CHECK_ID("its id", busbar_message_id(m), ids[0]);
    busbar_message_free(m);
    m = TAKE(l, "the batch's third message");
    CHECK_ID("its id", busbar_message_id(m), ids[2]);
    CHECK_DATA("its data", m, "3");
    busbar_message_free(m);

    CHECK_RC("busbar_send_batch with NULL results and ids", busbar_send_batch(s, b, 1, NULL, NULL), 1);
    TAKE_NAMED(l, "$.batch.one");
    CHECK_RC("busbar_send_batch of 0", busbar_send_batch(s, NULL, 0, NULL, NULL), 0);

    /* Errors that fail the whole batch. */
    b[1].name = NULL;
    CHECK_RC("busbar_send_batch with a NULL name", busbar_send_batch(s, b, 3, results, ids), -EINVAL);
    b[1].name = "$.batch.two";
    int bad_fd = -1;
    b[1].fds = &bad_fd;
    b[1].fd_count = 1;
    CHECK_RC("busbar_send_batch with an fd not open", busbar_send_batch(s, b, 3, results, ids), -EBADF);
    b[1].fds = NULL;
    b[1].fd_count = 0;
    CHECK_RC("busbar_send_batch(NULL messages, 1)", busbar_send_batch(s, NULL, 1, results, ids),
             -EINVAL);
    CHECK_RC("busbar_send_batch(NULL endpoint)", busbar_send_batch(NULL, b, 1, results, ids), -EINVAL);
    CHECK_EMPTY(l, "a batch that failed whole sent nothing");

    /* A pending send in a batch: the rest get -EALREADY. */
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(l, 1, NULL));
    MUST("announce", announce(s, "$.batch.fill", "", NULL));
    memset(b, 0, sizeof b);
    b[0].name = "$.batch.a";
    b[0].flags = BUSBAR_ALL_OR_WAIT;
    b[1].name = "$.batch.b";
    CHECK_RC("a batch whose first send goes pending", busbar_send_batch(s, b, 2, results, NULL), 0);
    CHECK_RC("results[0] pending", results[0], -EAGAIN);
    CHECK_RC("results[1] after a pending send", results[1], -EALREADY);
    CHECK_RC("discard it", busbar_discard_send(s), 1);
    TAKE_NAMED(l, "$.batch.fill");
    CHECK_EMPTY(l, "nothing else");
    close_ep(s);
    close_ep(l);
}

/* ----- announce/request/reply/call, with threads ---------------------------- */

enum serve_mode { SERVE_REPLY, SERVE_CLOSE_UNREAD, SERVE_CLOSE_TAKEN };

struct serve_job {
    busbar_endpoint *ep;
    enum serve_mode mode;
    int rc;
};

static void *serve_one(void *arg)
{
    struct serve_job *job = arg;
    busbar_message *m = NULL;
    switch (job->mode) {
    case SERVE_REPLY:
        job->rc = busbar_recv(job->ep, GUARD_MS, &m);
        if (job->rc == 0) {
            size_t n = 0;
            const uint8_t *d = busbar_message_data(m, &n);
            uint8_t rev[64];
            for (size_t i = 0; i < n && i < sizeof rev; i++)
                rev[i] = d[n - 1 - i];
            job->rc = busbar_reply(job->ep, m, rev, n < sizeof rev ? n : sizeof rev, NULL);
        }
        busbar_message_free(m);
        break;
    case SERVE_CLOSE_UNREAD: {
        /* Wait until the request is queued, then close without reading. */
        int r = readable(job->ep, GUARD_MS);
        job->rc = r == 1 ? 0 : -ETIMEDOUT;
        int c = busbar_endpoint_close(job->ep);
        if (job->rc == 0)
            job->rc = c;
        job->ep = NULL;
        break;
    }
    case SERVE_CLOSE_TAKEN: {
        job->rc = busbar_recv(job->ep, GUARD_MS, &m);
        busbar_message_free(m);
        int c = busbar_endpoint_close(job->ep);
        if (job->rc == 0)
            job->rc = c;
        job->ep = NULL;
        break;
    }
    }
    return NULL;
}

static void check_synthetic(int line, busbar_message *m, const char *name, uint32_t from,
                            uint32_t to)
{
    check_str_(line, "the synthetic reply's name", busbar_message_name(m), name);
    check_true_(line, "busbar_message_is_synthetic", busbar_message_is_synthetic(m));
    check_true_(line, "a synthetic reply has the SYNTHETIC flag",
                (busbar_message_flags(m) & BUSBAR_SYNTHETIC) != 0);
    check_true_(line, "a synthetic reply is a reply", busbar_message_is_reply(m));
    check_num_(line, "the synthetic reply's from (the replier)", busbar_message_from(m), from);
    check_num_(line, "the synthetic reply's to (the requester)", busbar_message_to(m), to);
    size_t len = 9;
    busbar_message_data(m, &len);
    check_num_(line, "a synthetic reply has no data", len, 0);
}

static void test_call(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    uint32_t sid = busbar_endpoint_id(s);
    busbar_message *m = NULL;
    pthread_t t;

    MUST("bind", busbar_bind(l, "$.call.*", false));

    /* announce */
    busbar_msg_id id = NO_ID;
    CHECK_RC("busbar_announce", busbar_announce(s, "$.call.news", bytes("n"), 1, &id), 0);
    m = TAKE(l, "the announcement");
    CHECK_ID("busbar_announce's id", busbar_message_id(m), id);
    busbar_message_free(m);
    CHECK_RC("busbar_announce with no data", busbar_announce(s, "$.call.news", NULL, 0, NULL), 0);
    TAKE_NAMED(l, "$.call.news");
    CHECK_RC("busbar_announce to nobody", busbar_announce(s, "$.nobody.listens", NULL, 0, NULL), 0);
    CHECK_RC("busbar_announce(NULL data, 1)", busbar_announce(s, "$.call.news", NULL, 1, NULL),
             -EINVAL);
    CHECK_RC("busbar_announce(NULL name)", busbar_announce(s, NULL, NULL, 0, NULL), -EINVAL);
    CHECK_RC("busbar_announce to a wildcard", busbar_announce(s, "$.call.*", NULL, 0, NULL), -EBADMSG);
    CHECK_RC("busbar_announce(NULL endpoint)", busbar_announce(NULL, "$.call.x", NULL, 0, NULL),
             -EINVAL);
    CHECK_RC("busbar_request with no replier", busbar_request(s, "$.call.nobody", NULL, 0, NULL),
             -EADDRNOTAVAIL);
    CHECK_RC("busbar_request(NULL name)", busbar_request(s, NULL, NULL, 0, NULL), -EINVAL);
    CHECK_RC("busbar_call with no replier", busbar_call(s, "$.call.nobody", NULL, 0, GUARD_MS, &m),
             -EADDRNOTAVAIL);
    CHECK_RC("busbar_call(NULL reply)", busbar_call(s, "$.call.nobody", NULL, 0, GUARD_MS, NULL),
             -EINVAL);
    CHECK_RC("busbar_reply(NULL request)", busbar_reply(s, NULL, NULL, 0, NULL), -EINVAL);

    /* request / reply with the helpers */
    busbar_endpoint *r = open_ep(bus);
    uint32_t rid = busbar_endpoint_id(r);
    MUST("bind", busbar_bind(r, "$.call.svc", true));
    busbar_msg_id req = NO_ID;
    CHECK_RC("busbar_request", busbar_request(s, "$.call.svc", bytes("abc"), 3, &req), 0);
    busbar_message *lcopy = TAKE(l, "the listener's copy of the request");
    CHECK_RC("busbar_reply from a listener", busbar_reply(l, lcopy, NULL, 0, NULL), -ECONNREFUSED);
    busbar_message_free(lcopy);
    busbar_message *rq = TAKE(r, "the request");
    busbar_msg_id rep = NO_ID;
    CHECK_RC("busbar_reply", busbar_reply(r, rq, bytes("cba"), 3, &rep), 0);
    CHECK_RC("busbar_reply(NULL data, 1)", busbar_reply(r, rq, NULL, 1, NULL), -EINVAL);
    busbar_message_free(rq);
    m = NULL;
    CHECK_RC("busbar_wait_reply", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    CHECK_ID("the reply's id is busbar_reply's", busbar_message_id(m), rep);
    CHECK_DATA("the reply's data", m, "cba");
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");

    /* call: a real reply from another thread */
    struct serve_job job = {r, SERVE_REPLY, 1};
    MUST("pthread_create", -pthread_create(&t, NULL, serve_one, &job));
    m = NULL;
    CHECK_RC("busbar_call answered by a thread", busbar_call(s, "$.call.svc", bytes("xyz"), 3, GUARD_MS,
             &m), 0);
    pthread_join(t, NULL);
    CHECK_RC("the serving thread", job.rc, 0);
    CHECK_DATA("busbar_call's reply", m, "zyx");
    CHECK("busbar_call's reply is real", !busbar_message_is_synthetic(m));
    CHECK_NUM("busbar_call's reply is from the replier", busbar_message_from(m), rid);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");
    TAKE_NAMED(l, "$.call.svc");

    /* call: -ETIMEDOUT, then the reply comes into the ordinary queue */
    m = NULL;
    CHECK_RC("busbar_call that times out", busbar_call(s, "$.call.svc", bytes("t"), 1, SHORT_MS, &m),
             -ETIMEDOUT);
    CHECK("no reply given on timeout", m == NULL);
    rq = TAKE(r, "the request of the call that timed out");
    MUST("reply", busbar_reply(r, rq, bytes("late"), 4, NULL));
    m = TAKE(s, "the late reply, in the ordinary queue");
    CHECK("the late reply is a reply", busbar_message_is_reply(m));
    CHECK_ID("the late reply answers that request", busbar_message_in_reply_to(m),
             busbar_message_id(rq));
    CHECK_DATA("the late reply's data", m, "late");
    busbar_message_free(m);
    busbar_message_free(rq);
    TAKE_NAMED(l, "$.call.svc");
    TAKE_NAMED(l, "$.call.svc");

    /* call: the replier closes with the request unread: GoneAway */
    job.mode = SERVE_CLOSE_UNREAD;
    job.rc = 1;
    MUST("pthread_create", -pthread_create(&t, NULL, serve_one, &job));
    m = NULL;
    CHECK_RC("busbar_call to a replier that closes", busbar_call(s, "$.call.svc", NULL, 0, GUARD_MS, &m),
             0);
    pthread_join(t, NULL);
    CHECK_RC("the closing thread", job.rc, 0);
    check_synthetic(__LINE__, m, "$.KBUS.Replier.GoneAway", rid, sid);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");
    CHECK_EMPTY(l, "listeners never see synthetic replies");

    /* call: the replier takes the request and closes: Ignored */
    r = open_ep(bus);
    rid = busbar_endpoint_id(r);
    MUST("bind", busbar_bind(r, "$.call.svc", true));
    struct serve_job job2 = {r, SERVE_CLOSE_TAKEN, 1};
    MUST("pthread_create", -pthread_create(&t, NULL, serve_one, &job2));
    m = NULL;
    CHECK_RC("busbar_call to a replier that takes and closes",
             busbar_call(s, "$.call.svc", NULL, 0, GUARD_MS, &m), 0);
    pthread_join(t, NULL);
    CHECK_RC("the taking thread", job2.rc, 0);
    check_synthetic(__LINE__, m, "$.KBUS.Replier.Ignored", rid, sid);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");

    /* request, then the replier closes: GoneAway through busbar_wait_reply */
    r = open_ep(bus);
    rid = busbar_endpoint_id(r);
    MUST("bind", busbar_bind(r, "$.call.svc", true));
    MUST("request", busbar_request(s, "$.call.svc", NULL, 0, &req));
    close_ep(r);
    m = NULL;
    CHECK_RC("busbar_wait_reply after the replier closed", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    check_synthetic(__LINE__, m, "$.KBUS.Replier.GoneAway", rid, sid);
    CHECK_ID("GoneAway in_reply_to", busbar_message_in_reply_to(m), req);
    CHECK("GoneAway has a fresh serial", busbar_message_id(m).serial > req.serial);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");
    close_ep(s);
    close_ep(l);
}

/* busbar_reply_then_recv: a replier's loop. */
static void test_reply_then_recv(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *r = open_ep(bus);
    MUST("bind", busbar_bind(r, "$.rtr.svc", true));
    MUST("bind", busbar_bind(r, "$.rtr.note", false));
    busbar_msg_id req1, req2, req3;
    MUST("request", busbar_request(s, "$.rtr.svc", bytes("one"), 3, &req1));
    MUST("request", busbar_request(s, "$.rtr.svc", bytes("two"), 3, &req2));
    busbar_message *rq = TAKE(r, "the first request"), *next = NULL, *m = NULL;
    int res = 1;
    CHECK_RC("busbar_reply_then_recv with the next request queued",
             busbar_reply_then_recv(r, rq, bytes("1"), 1, GUARD_MS, &res, &next), 0);
    CHECK_RC("its reply_result", res, 0);
    CHECK_ID("the next message is the second request", busbar_message_id(next), req2);
    busbar_message_free(rq);
    rq = next;
    next = NULL;
    res = 1;
    CHECK_RC("busbar_reply_then_recv with nothing next, timeout 0",
             busbar_reply_then_recv(r, rq, bytes("2"), 1, 0, &res, &next), -EAGAIN);
    CHECK_RC("its reply_result", res, 0);
    CHECK("no next message", next == NULL);
    CHECK_RC("the first reply", busbar_wait_reply(s, req1, GUARD_MS, &m), 0);
    CHECK_DATA("the first reply's data", m, "1");
    busbar_message_free(m);
    m = NULL;
    CHECK_RC("the second reply", busbar_wait_reply(s, req2, GUARD_MS, &m), 0);
    CHECK_DATA("the second reply's data", m, "2");
    busbar_message_free(m);
    res = 1;
    CHECK_RC("busbar_reply_then_recv answering again, a timeout",
             busbar_reply_then_recv(r, rq, NULL, 0, SHORT_MS, &res, &next), -ETIMEDOUT);
    CHECK_RC("its reply_result (answered already)", res, -ECONNREFUSED);
    busbar_message_free(rq);

    /* The requester has gone: the reply fails, the wait still happens. */
    busbar_endpoint *s2 = open_ep(bus);
    MUST("request", busbar_request(s2, "$.rtr.svc", NULL, 0, &req3));
    rq = TAKE(r, "the request of a requester that will close");
    close_ep(s2);
    MUST("announce", announce(s, "$.rtr.note", "next", NULL));
    res = 1;
    CHECK_RC("busbar_reply_then_recv to a requester that closed",
             busbar_reply_then_recv(r, rq, NULL, 0, GUARD_MS, &res, &next), 0);
    CHECK_RC("its reply_result", res, -EADDRNOTAVAIL);
    CHECK_STR("the next message still came", busbar_message_name(next), "$.rtr.note");
    busbar_message_free(next);
    next = NULL;
    CHECK_RC("busbar_reply_then_recv(NULL next)",
             busbar_reply_then_recv(r, rq, NULL, 0, 0, &res, NULL), -EINVAL);
    CHECK_RC("busbar_reply_then_recv(NULL request)",
             busbar_reply_then_recv(r, NULL, NULL, 0, 0, &res, &next), -EINVAL);
    CHECK_RC("busbar_reply_then_recv(NULL endpoint)",
             busbar_reply_then_recv(NULL, rq, NULL, 0, 0, &res, &next), -EINVAL);
    busbar_message_free(rq);
    CHECK_EMPTY(r, "nothing left for the replier");
    close_ep(s);
    close_ep(r);
}

/* ----- receiving and waiting --------------------------------------------- */

struct announce_job {
    busbar_endpoint *ep;
    int rc;
};

static void *announce_later(void *arg)
{
    struct announce_job *job = arg;
    job->rc = announce(job->ep, "$.recv.wake", "wake", NULL);
    return NULL;
}

static void test_recv(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus), *r = open_ep(bus);
    busbar_message *m = NULL;
    MUST("bind", busbar_bind(l, "$.recv.*", false));
    CHECK_RC("busbar_recv with nothing queued, timeout 0", busbar_recv(l, 0, &m), -EAGAIN);
    CHECK_RC("busbar_recv with nothing queued, a timeout", busbar_recv(l, SHORT_MS, &m), -ETIMEDOUT);
    CHECK("no message on failure", m == NULL);
    CHECK_RC("busbar_recv(NULL message)", busbar_recv(l, 0, NULL), -EINVAL);
    CHECK_RC("busbar_recv(NULL endpoint)", busbar_recv(NULL, 0, &m), -EINVAL);

    MUST("announce", announce(s, "$.recv.a", "1", NULL));
    CHECK_RC("busbar_recv(-1) with a message queued", busbar_recv(l, -1, &m), 0);
    CHECK_STR("it is the message", busbar_message_name(m), "$.recv.a");
    busbar_message_free(m);

    /* A blocked receive woken by another thread's send. */
    struct announce_job job = {s, 1};
    pthread_t t;
    MUST("pthread_create", -pthread_create(&t, NULL, announce_later, &job));
    m = NULL;
    CHECK_RC("a blocking busbar_recv woken by a thread", busbar_recv(l, GUARD_MS, &m), 0);
    pthread_join(t, NULL);
    CHECK_RC("the thread's announce", job.rc, 0);
    CHECK_STR("the thread's message", busbar_message_name(m), "$.recv.wake");
    busbar_message_free(m);

    /* wait_reply leaves other messages queued. */
    MUST("bind", busbar_bind(r, "$.recv.svc", true));
    MUST("bind", busbar_bind(s, "$.other.*", false));
    busbar_msg_id req, req2;
    MUST("request", busbar_request(s, "$.recv.svc", bytes("r"), 1, &req));
    m = NULL;
    CHECK_RC("busbar_wait_reply, timeout 0, not there yet", busbar_wait_reply(s, req, 0, &m), -EAGAIN);
    CHECK_RC("busbar_wait_reply, a timeout, not there", busbar_wait_reply(s, req, SHORT_MS, &m),
             -ETIMEDOUT);
    MUST("announce", announce(r, "$.other.first", "", NULL));
    busbar_message *rq = TAKE(r, "the request");
    MUST("reply", busbar_reply(r, rq, bytes("R"), 1, NULL));
    busbar_message_free(rq);
    MUST("announce", announce(r, "$.other.last", "", NULL));
    CHECK_RC("busbar_wait_reply", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    CHECK_ID("it answers the request", busbar_message_in_reply_to(m), req);
    busbar_message_free(m);
    m = NULL;
    CHECK_RC("busbar_wait_reply for a reply already taken", busbar_wait_reply(s, req, 0, &m), -EINVAL);
    busbar_msg_id unknown = {0, 0x7fffffff};
    CHECK_RC("busbar_wait_reply for an unknown id", busbar_wait_reply(s, unknown, GUARD_MS, &m),
             -EINVAL);
    CHECK_RC("busbar_wait_reply, timeout 0, unknown id", busbar_wait_reply(s, unknown, 0, &m), -EINVAL);
    CHECK_RC("busbar_wait_reply(NULL reply)", busbar_wait_reply(s, req, 0, NULL), -EINVAL);
    CHECK_RC("busbar_wait_reply(NULL endpoint)", busbar_wait_reply(NULL, req, 0, &m), -EINVAL);
    TAKE_NAMED(s, "$.other.first");
    TAKE_NAMED(s, "$.other.last");
    /* A reply taken with timeout 0 once it is there. */
    MUST("request", busbar_request(s, "$.recv.svc", NULL, 0, &req2));
    rq = TAKE(r, "the second request");
    MUST("reply", busbar_reply(r, rq, NULL, 0, NULL));
    busbar_message_free(rq);
    m = NULL;
    CHECK_RC("busbar_wait_reply, timeout 0, reply there", busbar_wait_reply(s, req2, 0, &m), 0);
    CHECK_ID("it answers the second request", busbar_message_in_reply_to(m), req2);
    busbar_message_free(m);
    /* the listener got: a, wake, (request), (reply), (request), (reply) */
    for (int i = 0; i < 4; i++)
        TAKE_NAMED(l, "$.recv.svc");
    CHECK_EMPTY(l, "nothing else for the listener");
    close_ep(s);
    close_ep(l);
    close_ep(r);
}

static void test_readiness(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    MUST("bind", busbar_bind(l, "$.ready.a", false));
    int fd = busbar_readiness_fd(l);
    CHECK("busbar_readiness_fd is an fd", fd >= 0);
    CHECK_RC("busbar_readiness_fd(NULL)", busbar_readiness_fd(NULL), -EINVAL);
    CHECK_NUM("not readable with nothing queued", readable(l, 0), 0);
    MUST("announce", announce(s, "$.ready.a", "1", NULL));
    MUST("announce", announce(s, "$.ready.a", "2", NULL));
    CHECK_NUM("readable once a message is queued", readable(l, GUARD_MS), 1);
    CHECK_NUM("still readable (level-triggered)", readable(l, 0), 1);
    TAKE_NAMED(l, "$.ready.a");
    CHECK_NUM("readable while a message is left", readable(l, 0), 1);
    TAKE_NAMED(l, "$.ready.a");
    CHECK_NUM("not readable once the queue is empty", readable(l, 0), 0);
    MUST("announce", announce(s, "$.ready.a", "3", NULL));
    CHECK_NUM("readable again", readable(l, GUARD_MS), 1);
    TAKE_NAMED(l, "$.ready.a");
    CHECK_NUM("not readable again", readable(l, 0), 0);
    CHECK_NUM("the sender has nothing to take", readable(s, 0), 0);
    close_ep(s);
    close_ep(l);
}

/* ----- endpoint settings ----------------------------------------------------- */

static void test_settings(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    uint32_t prev = 0;
    bool bprev = true;

    /* queue limit and lost messages */
    MUST("bind", busbar_bind(l, "$.set.a", false));
    CHECK_RC("busbar_set_queue_limit(0)", busbar_set_queue_limit(l, 0, &prev), -EINVAL);
    CHECK_RC("busbar_set_queue_limit(2)", busbar_set_queue_limit(l, 2, &prev), 0);
    CHECK_NUM("previous (default) queue limit", prev, 100);
    CHECK_RC("busbar_set_queue_limit(2) again", busbar_set_queue_limit(l, 2, &prev), 0);
    CHECK_NUM("previous queue limit", prev, 2);
    CHECK_RC("busbar_set_queue_limit with previous NULL", busbar_set_queue_limit(l, 2, NULL), 0);
    CHECK_RC("busbar_set_queue_limit(NULL endpoint)", busbar_set_queue_limit(NULL, 2, &prev), -EINVAL);
    CHECK_NUM("stats: queue_limit", ep_stats(l).queue_limit, 2);
    for (int i = 0; i < 5; i++)
        CHECK_RC("announce to a listener that may be full", announce(s, "$.set.a", "L", NULL), 0);
    busbar_endpoint_stats st = ep_stats(l);
    CHECK_NUM("stats: queued up to the limit", st.queued, 2);
    CHECK_NUM("stats: lost", st.lost, 3);
    busbar_message *m = TAKE(l, "the first message");
    CHECK_NUM("lost on the first message", busbar_message_lost(m), 0);
    busbar_message_free(m);
    m = TAKE(l, "the second message");
    CHECK_NUM("lost on the second message", busbar_message_lost(m), 0);
    busbar_message_free(m);
    MUST("announce", announce(s, "$.set.a", "after", NULL));
    m = TAKE(l, "the message after the losses");
    CHECK_NUM("busbar_message_lost reports the gap", busbar_message_lost(m), 3);
    CHECK_DATA("it is the new message", m, "after");
    busbar_message_free(m);
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(l, 100, NULL));

    /* only once */
    MUST("bind", busbar_bind(l, "$.set.*", false));
    MUST("announce", announce(s, "$.set.a", "", NULL));
    CHECK_NUM("two bindings, two copies", ep_stats(l).queued, 2);
    TAKE_NAMED(l, "$.set.a");
    TAKE_NAMED(l, "$.set.a");
    CHECK_RC("busbar_set_only_once(true)", busbar_set_only_once(l, true, &bprev), 0);
    CHECK("previous only-once: off", !bprev);
    CHECK("stats: only_once", ep_stats(l).only_once);
    MUST("announce", announce(s, "$.set.a", "", NULL));
    CHECK_NUM("only once: one copy", ep_stats(l).queued, 1);
    TAKE_NAMED(l, "$.set.a");
    CHECK_RC("busbar_set_only_once(false)", busbar_set_only_once(l, false, &bprev), 0);
    CHECK("previous only-once: on", bprev);
    CHECK_RC("busbar_set_only_once with previous NULL", busbar_set_only_once(l, false, NULL), 0);
    CHECK_RC("busbar_set_only_once(NULL endpoint)", busbar_set_only_once(NULL, true, &bprev), -EINVAL);

    /* monitor */
    busbar_endpoint *mon = open_ep(bus);
    CHECK_RC("busbar_set_monitor(true)", busbar_set_monitor(mon, true, &bprev), 0);
    CHECK("previous monitor: off", !bprev);
    busbar_msg_id id;
    MUST("announce", announce(s, "$.set.a", "seen", &id));
    m = TAKE(mon, "the monitor's copy");
    CHECK_ID("the monitor's copy has the message's id", busbar_message_id(m), id);
    CHECK_DATA("the monitor's copy's data", m, "seen");
    busbar_message_free(m);
    CHECK_EMPTY(mon, "one copy per message for the monitor");
    TAKE_NAMED(l, "$.set.a");
    TAKE_NAMED(l, "$.set.a");
    CHECK_RC("busbar_set_monitor(false)", busbar_set_monitor(mon, false, &bprev), 0);
    CHECK("previous monitor: on", bprev);
    MUST("announce", announce(s, "$.set.a", "unseen", NULL));
    CHECK_EMPTY(mon, "no copies once monitoring is off");
    TAKE_NAMED(l, "$.set.a");
    TAKE_NAMED(l, "$.set.a");
    CHECK_RC("busbar_set_monitor(NULL endpoint)", busbar_set_monitor(NULL, true, &bprev), -EINVAL);
    close_ep(mon);
    close_ep(s);
    close_ep(l);
}

/* Checks a $.KBUS.ReplierBindEvent. */
static void check_bind_event(int line, busbar_message *m, uint32_t is_bind, uint32_t binder,
                             const char *name)
{
    check_str_(line, "a bind event's name", busbar_message_name(m), NAME_BIND_EVENT);
    check_num_(line, "a bind event's flags", busbar_message_flags(m),
               BUSBAR_SYNTHETIC | BUSBAR_ALL_OR_FAIL);
    check_num_(line, "a bind event's from", busbar_message_from(m), 0);
    check_num_(line, "a bind event's to", busbar_message_to(m), 0);
    size_t len = 0;
    const uint8_t *d = busbar_message_data(m, &len);
    size_t nl = strlen(name);
    check_true_(line, "a bind event's data length", d && len >= 12 + nl && len % 4 == 0);
    if (!d || len < 12 + nl)
        return;
    check_num_(line, "a bind event's is_bind", le32(d), is_bind);
    check_num_(line, "a bind event's binder", le32(d + 4), binder);
    check_num_(line, "a bind event's name_len", le32(d + 8), nl);
    check_true_(line, "a bind event's name", memcmp(d + 12, name, nl) == 0);
}

static void test_bind_events(busbar_bus *bus)
{
    busbar_endpoint *e = open_ep(bus), *r = open_ep(bus), *r2 = open_ep(bus);
    bool prev = true;
    MUST("bind", busbar_bind(r, "$.be.x", true));
    MUST("bind", busbar_bind(e, NAME_BIND_EVENT, false));
    CHECK_RC("busbar_set_replier_bind_events(true)", busbar_set_replier_bind_events(e, true, &prev), 0);
    CHECK("previous bind events: off", !prev);
    busbar_bus_info info;
    MUST("busbar_bus_get_info", busbar_bus_get_info(bus, &info));
    CHECK("info: bind events on", info.replier_bind_events);
    busbar_message *m = TAKE(e, "the event for the existing replier");
    check_bind_event(__LINE__, m, 1, busbar_endpoint_id(r), "$.be.x");
    busbar_message_free(m);
    CHECK_EMPTY(e, "one event per existing replier");

    CHECK_RC("bind a replier with events on", busbar_bind(r2, "$.be.y", true), 0);
    m = TAKE(e, "the bind event");
    check_bind_event(__LINE__, m, 1, busbar_endpoint_id(r2), "$.be.y");
    busbar_message_free(m);
    CHECK_RC("unbind a replier with events on", busbar_unbind(r2, "$.be.y", true), 0);
    m = TAKE(e, "the unbind event");
    check_bind_event(__LINE__, m, 0, busbar_endpoint_id(r2), "$.be.y");
    busbar_message_free(m);
    CHECK_RC("a listener binding makes no event", busbar_bind(r2, "$.be.z", false), 0);
    CHECK_EMPTY(e, "no event for a listener binding");

    /* A full listener of the events: binds and unbinds of repliers fail. */
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(e, 1, NULL));
    MUST("bind", busbar_bind(e, "$.be.fill", false));
    MUST("announce", announce(r, "$.be.fill", "", NULL));
    CHECK_RC("bind a replier while a listener of the events is full", busbar_bind(r2, "$.be.y", true),
             -EAGAIN);
    CHECK_RC("unbind a replier while a listener of the events is full",
             busbar_unbind(r, "$.be.x", true), -EAGAIN);
    uint32_t found = 0;
    MUST("find_replier", busbar_bus_find_replier(bus, "$.be.y", &found));
    CHECK_NUM("the failed bind did nothing", found, 0);
    MUST("find_replier", busbar_bus_find_replier(bus, "$.be.x", &found));
    CHECK_NUM("the failed unbind did nothing", found, busbar_endpoint_id(r));
    TAKE_NAMED(e, "$.be.fill");

    /* A replier that closes cannot fail: with the listener of the events
     * full, its unbind event is set aside until there is room. */
    MUST("announce", announce(r2, "$.be.fill", "", NULL));
    uint32_t rid = busbar_endpoint_id(r);
    close_ep(r);
    busbar_bus_stats bs;
    MUST("busbar_bus_get_stats", busbar_bus_get_stats(bus, &bs, NULL, 0));
    CHECK_NUM("bus stats: set_aside", bs.set_aside, 1);
    CHECK_NUM("endpoint stats: set_aside", ep_stats(e).set_aside, 1);
    CHECK_NUM("endpoint stats: queued (the event is not queued yet)", ep_stats(e).queued, 1);
    TAKE_NAMED(e, "$.be.fill");
    m = TAKE(e, "the set-aside unbind event");
    check_bind_event(__LINE__, m, 0, rid, "$.be.x");
    busbar_message_free(m);
    CHECK_NUM("endpoint stats: nothing set aside any more", ep_stats(e).set_aside, 0);
    CHECK_NUM("not readable once all is taken", readable(e, 0), 0);

    /* Switching on when the events do not fit our queue: -EBUSY. */
    CHECK_RC("busbar_set_replier_bind_events(false)", busbar_set_replier_bind_events(e, false, &prev),
             0);
    CHECK("previous bind events: on", prev);
    MUST("bind", busbar_bind(r2, "$.be.y", true));
    MUST("bind", busbar_bind(r2, "$.be.w", true));
    busbar_endpoint *small = open_ep(bus);
    MUST("busbar_set_queue_limit", busbar_set_queue_limit(small, 1, NULL));
    CHECK_RC("switching events on when they do not fit", busbar_set_replier_bind_events(small, true,
             &prev), -EBUSY);
    MUST("busbar_bus_get_info", busbar_bus_get_info(bus, &info));
    CHECK("bind events still off", !info.replier_bind_events);
    CHECK_EMPTY(small, "no events queued by the failed switch");
    CHECK_RC("busbar_set_replier_bind_events with previous NULL",
             busbar_set_replier_bind_events(small, false, NULL), 0);
    CHECK_RC("busbar_set_replier_bind_events(NULL endpoint)",
             busbar_set_replier_bind_events(NULL, true, &prev), -EINVAL);
    close_ep(small);
    close_ep(e);
    close_ep(r2);
}

static void test_endpoint_stats(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *r = open_ep(bus);
    busbar_endpoint_stats st;
    CHECK_RC("busbar_endpoint_get_stats(NULL endpoint)", busbar_endpoint_get_stats(NULL, &st), -EINVAL);
    st = ep_stats(s);
    CHECK_NUM("stats: id", st.id, busbar_endpoint_id(s));
    CHECK_NUM("stats: pid", st.pid, (uint32_t)getpid());
    CHECK_NUM("stats: uid", st.uid, (uint32_t)getuid());
    CHECK_NUM("stats: queued", st.queued, 0);
    CHECK_NUM("stats: queued_bytes", st.queued_bytes, 0);
    CHECK_NUM("stats: set_aside", st.set_aside, 0);
    CHECK_NUM("stats: queue_limit", st.queue_limit, 100);
    CHECK_NUM("stats: lost", st.lost, 0);
    CHECK_NUM("stats: sent", st.sent, 0);
    CHECK_NUM("stats: received", st.received, 0);
    CHECK_NUM("stats: bindings", st.bindings, 0);
    CHECK("stats: only_once off", !st.only_once);
    CHECK("stats: no pending send", !st.has_pending_send);
    CHECK_ID("stats: pending_send", st.pending_send, NO_ID);
    CHECK_NUM("stats: handles", st.handles, 0);
    CHECK_NUM("stats: nodes", st.nodes, 0);
    CHECK_ID("stats: last_sent", st.last_sent, NO_ID);

    MUST("bind", busbar_bind(r, "$.st.svc", true));
    MUST("bind", busbar_bind(s, "$.st.*", false));
    busbar_msg_id a, req;
    MUST("announce", announce(s, "$.st.a", "abcd", &a));
    MUST("request", busbar_request(s, "$.st.svc", bytes("xy"), 2, &req));
    st = ep_stats(s);
    CHECK_NUM("stats: sent", st.sent, 2);
    CHECK_ID("stats: last_sent", st.last_sent, req);
    CHECK_NUM("stats: queued (own announcement and request)", st.queued, 2);
    CHECK_NUM("stats: queued_bytes", st.queued_bytes, (6 + 4) + (8 + 2));
    CHECK_NUM("stats: outstanding_requests", st.outstanding_requests, 1);
    CHECK_NUM("stats: bindings", st.bindings, 1);
    busbar_message *rq = TAKE(r, "the request");
    CHECK_NUM("replier stats: received", ep_stats(r).received, 1);
    CHECK_NUM("replier stats: owed_replies", ep_stats(r).owed_replies, 1);
    MUST("reply", busbar_reply(r, rq, NULL, 0, NULL));
    busbar_message_free(rq);
    CHECK_NUM("replier stats: owed_replies after replying", ep_stats(r).owed_replies, 0);
    TAKE_NAMED(s, "$.st.a");
    TAKE_NAMED(s, "$.st.svc");
    /* The reply: the requester's copy, and the listener binding's. */
    TAKE_NAMED(s, "$.st.svc");
    TAKE_NAMED(s, "$.st.svc");
    CHECK_EMPTY(s, "nothing else");
    st = ep_stats(s);
    CHECK_NUM("stats: received", st.received, 4);
    CHECK_NUM("stats: outstanding_requests", st.outstanding_requests, 0);
    CHECK_NUM("stats: queued", st.queued, 0);
    close_ep(s);
    close_ep(r);
}

/* ----- nodes and handles ------------------------------------------------- */

static void test_nodes(busbar_bus *bus)
{
    busbar_endpoint *a = open_ep(bus), *b = open_ep(bus), *l = open_ep(bus);
    uint32_t aid = busbar_endpoint_id(a), bid = busbar_endpoint_id(b);
    uint64_t h = 0;
    MUST("bind", busbar_bind(b, "$.node.carry", false));
    MUST("bind", busbar_bind(l, "$.node.*", false));

    CHECK_RC("busbar_create_node", busbar_create_node(a, &h), 0);
    CHECK("a handle is not 0", h != 0);
    busbar_endpoint_stats st = ep_stats(a);
    CHECK_NUM("owner stats: nodes", st.nodes, 1);
    CHECK_NUM("owner stats: handles", st.handles, 1);
    CHECK_RC("busbar_create_node(NULL endpoint)", busbar_create_node(NULL, &h), -EINVAL);

    /* Carry the handle to b (and l, which listens too). */
    busbar_outgoing o = {0};
    o.name = "$.node.carry";
    o.handles = &h;
    o.handle_count = 1;
    CHECK_RC("send a message carrying a handle", busbar_send(a, &o, NULL), 0);
    busbar_message *m = TAKE(b, "the message carrying the handle");
    size_t n = 0;
    const uint64_t *hs = busbar_message_handles(m, &n);
    CHECK_NUM("busbar_message_handles count", n, 1);
    uint64_t hb = hs && n == 1 ? hs[0] : 0;
    CHECK("the receiver's handle is not 0", hb != 0);
    CHECK("busbar_message_handles is not copied", busbar_message_handles(m, NULL) == hs);
    busbar_message_free(m);
    m = TAKE(l, "the listener's copy carrying the handle");
    hs = busbar_message_handles(m, &n);
    uint64_t hl = hs && n == 1 ? hs[0] : 0;
    CHECK("the listener's handle is not 0", hl != 0);
    busbar_message_free(m);
    CHECK_RC("the listener releases its handle", busbar_release_handle(l, hl), 0);
    CHECK_NUM("receiver stats: handles", ep_stats(b).handles, 1);

    /* Send to the node through the handle. */
    memset(&o, 0, sizeof o);
    o.name = "$.node.call";
    o.data = bytes("ping");
    o.data_len = 4;
    o.to_handles = &hb;
    o.to_handle_count = 1;
    busbar_msg_id id = NO_ID;
    CHECK_RC("send to a node (to_handles)", busbar_send(b, &o, &id), 0);
    m = TAKE(a, "the message to the node");
    CHECK_STR("its name", busbar_message_name(m), "$.node.call");
    CHECK_NUM("busbar_message_destination: the owner's handle", busbar_message_destination(m), h);
    CHECK_NUM("its from", busbar_message_from(m), bid);
    CHECK_ID("its id", busbar_message_id(m), id);
    CHECK_DATA("its data", m, "ping");
    busbar_message_free(m);
    CHECK_EMPTY(l, "listeners do not see messages to nodes");
    uint64_t two[2] = {hb, hb};
    o.to_handles = two;
    o.to_handle_count = 2;
    CHECK_RC("to_handles with a duplicate", busbar_send(b, &o, NULL), -EINVAL);
    uint64_t nothere = 424242;
    o.to_handles = &nothere;
    o.to_handle_count = 1;
    CHECK_RC("to_handles with a handle we do not hold", busbar_send(b, &o, NULL), -ENOENT);
    o.to_handles = &hb;
    o.flags = BUSBAR_WANT_A_REPLY;
    CHECK_RC("a request to a node", busbar_send(b, &o, NULL), -EINVAL);

    /* Releasing. */
    CHECK_RC("the owner releases its last reference to a live node", busbar_release_handle(a, h),
             -EBUSY);
    CHECK_RC("release a handle we do not hold", busbar_release_handle(a, nothere), -ENOENT);
    CHECK_RC("busbar_release_handle(NULL endpoint)", busbar_release_handle(NULL, h), -EINVAL);
    CHECK_RC("the holder releases its handle", busbar_release_handle(b, hb), 0);
    m = TAKE(a, "the release notice");
    CHECK_STR("its name", busbar_message_name(m), "$.KBUS.Node.Released");
    CHECK_NUM("its destination", busbar_message_destination(m), h);
    CHECK("it is synthetic", busbar_message_is_synthetic(m));
    busbar_message_free(m);
    CHECK_RC("release it again", busbar_release_handle(b, hb), -ENOENT);

    /* Carry it again: a new handle id (never reused). */
    memset(&o, 0, sizeof o);
    o.name = "$.node.carry";
    o.handles = &h;
    o.handle_count = 1;
    MUST("send", busbar_send(a, &o, NULL));
    m = TAKE(b, "the handle again");
    hs = busbar_message_handles(m, &n);
    uint64_t hb2 = hs && n == 1 ? hs[0] : 0;
    CHECK("a new handle id", hb2 != 0 && hb2 != hb);
    busbar_message_free(m);
    m = TAKE(l, "the listener's copy again");
    hs = busbar_message_handles(m, &n);
    hl = hs && n == 1 ? hs[0] : 0;
    busbar_message_free(m);
    MUST("release", busbar_release_handle(l, hl));

    /* Destroying. */
    CHECK_RC("destroy a node we do not own", busbar_destroy_nodes(b, &hb2, 1), -EPERM);
    uint64_t dup[2] = {h, h};
    CHECK_RC("destroy with a duplicate", busbar_destroy_nodes(a, dup, 2), -EINVAL);
    CHECK_RC("destroy an unknown handle", busbar_destroy_nodes(a, &nothere, 1), -ENOENT);
    CHECK_RC("busbar_destroy_nodes(NULL, 1)", busbar_destroy_nodes(a, NULL, 1), -EINVAL);
    CHECK_RC("busbar_destroy_nodes(NULL endpoint)", busbar_destroy_nodes(NULL, &h, 1), -EINVAL);
    CHECK_RC("busbar_destroy_nodes", busbar_destroy_nodes(a, &h, 1), 0);
    m = TAKE(b, "the holder's destroyed notice");
    CHECK_STR("its name", busbar_message_name(m), "$.KBUS.Node.Destroyed");
    CHECK_NUM("its destination (the holder's handle)", busbar_message_destination(m), hb2);
    CHECK_NUM("its from (the owner)", busbar_message_from(m), aid);
    CHECK("it is synthetic", busbar_message_is_synthetic(m));
    busbar_message_free(m);
    m = TAKE(a, "the owner's destroyed notice");
    CHECK_STR("its name", busbar_message_name(m), "$.KBUS.Node.Destroyed");
    CHECK_NUM("its destination (the owner's handle)", busbar_message_destination(m), h);
    busbar_message_free(m);
    CHECK_RC("destroy it again", busbar_destroy_nodes(a, &h, 1), -EINVAL);
    memset(&o, 0, sizeof o);
    o.name = "$.node.call";
    o.to_handles = &hb2;
    o.to_handle_count = 1;
    CHECK_RC("send to a destroyed node", busbar_send(b, &o, NULL), 0);
    CHECK_EMPTY(a, "a message to a destroyed node is discarded");
    CHECK_NUM("owner stats: no live node", ep_stats(a).nodes, 0);
    CHECK_RC("the owner may release a destroyed node's handle", busbar_release_handle(a, h), 0);
    CHECK_RC("the holder releases its handle", busbar_release_handle(b, hb2), 0);
    CHECK_NUM("owner stats: no handle", ep_stats(a).handles, 0);
    CHECK_NUM("holder stats: no handle", ep_stats(b).handles, 0);
    CHECK_EMPTY(l, "the listener saw only the named messages");
    close_ep(a);
    close_ep(b);
    close_ep(l);
}

/* ----- file descriptors ---------------------------------------------------- */

static void test_fds(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    MUST("bind", busbar_bind(l, "$.fd.*", false));
    const char *text = "written into a memfd";
    int mfd = memfd_create("busbar-api-test", MFD_CLOEXEC);
    MUST("memfd_create", mfd < 0 ? -errno : 0);
    MUST("write", write(mfd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -EIO);
    int p[2];
    MUST("pipe", pipe(p) < 0 ? -errno : 0);
    MUST("write", write(p[1], "through a pipe", 14) == 14 ? 0 : -EIO);
    close(p[1]);

    int fds[2] = {mfd, p[0]};
    busbar_outgoing o = {0};
    o.name = "$.fd.x";
    o.fds = fds;
    o.fd_count = 2;
    CHECK_RC("send a message carrying a memfd and a pipe", busbar_send(s, &o, NULL), 0);
    close(mfd);
    close(p[0]);
    busbar_message *m = TAKE(l, "the message carrying fds");
    CHECK_NUM("busbar_message_fd_count", busbar_message_fd_count(m), 2);
    int f0 = busbar_message_fd(m, 0), f1 = busbar_message_fd(m, 1);
    CHECK("busbar_message_fd(0) is an fd", f0 >= 0);
    CHECK("busbar_message_fd(1) is an fd", f1 >= 0);
    CHECK_RC("busbar_message_fd(2)", busbar_message_fd(m, 2), -1);
    CHECK_NUM("the same fd each time", busbar_message_fd(m, 0), f0);
    char buf[64] = {0};
    ssize_t n = f0 >= 0 ? pread(f0, buf, sizeof buf - 1, 0) : -1;
    CHECK_NUM("bytes read from the memfd", n, strlen(text));
    CHECK_STR("what the memfd holds", buf, text);
    memset(buf, 0, sizeof buf);
    n = f1 >= 0 ? read(f1, buf, sizeof buf - 1) : -1;
    CHECK_NUM("bytes read from the pipe", n, 14);
    CHECK_STR("what came through the pipe", buf, "through a pipe");
    n = f1 >= 0 ? read(f1, buf, sizeof buf - 1) : -1;
    CHECK_NUM("the pipe's writers are all closed (EOF)", n, 0);
    /* Keep one past the message with dup. */
    int kept = f0 >= 0 ? dup(f0) : -1;
    busbar_message_free(m);
    memset(buf, 0, sizeof buf);
    n = kept >= 0 ? pread(kept, buf, sizeof buf - 1, 0) : -1;
    CHECK_STR("a dup of the fd outlives the message", buf, text);
    if (kept >= 0)
        close(kept);
    close_ep(s);
    close_ep(l);
}

/* ----- NULL messages --------------------------------------------------------- */

static void test_null_message(void)
{
    size_t n = 99;
    CHECK_ID("busbar_message_id(NULL)", busbar_message_id(NULL), NO_ID);
    CHECK_ID("busbar_message_in_reply_to(NULL)", busbar_message_in_reply_to(NULL), NO_ID);
    CHECK_NUM("busbar_message_to(NULL)", busbar_message_to(NULL), 0);
    CHECK_NUM("busbar_message_from(NULL)", busbar_message_from(NULL), 0);
    CHECK_NUM("busbar_message_orig_from(NULL).network", busbar_message_orig_from(NULL).network, 0);
    CHECK_NUM("busbar_message_orig_from(NULL).local", busbar_message_orig_from(NULL).local, 0);
    CHECK_NUM("busbar_message_final_to(NULL).network", busbar_message_final_to(NULL).network, 0);
    CHECK_NUM("busbar_message_final_to(NULL).local", busbar_message_final_to(NULL).local, 0);
    CHECK_NUM("busbar_message_flags(NULL)", busbar_message_flags(NULL), 0);
    CHECK_STR("busbar_message_name(NULL)", busbar_message_name(NULL), "");
    CHECK("busbar_message_data(NULL)", busbar_message_data(NULL, &n) == NULL);
    CHECK_NUM("busbar_message_data(NULL) length", n, 0);
    busbar_creds c = busbar_message_creds(NULL);
    CHECK("busbar_message_creds(NULL) is zero", c.pid == 0 && c.uid == 0 && c.gid == 0);
    CHECK_NUM("busbar_message_lost(NULL)", busbar_message_lost(NULL), 0);
    CHECK("busbar_message_is_synthetic(NULL)", !busbar_message_is_synthetic(NULL));
    CHECK("busbar_message_is_request(NULL)", !busbar_message_is_request(NULL));
    CHECK("busbar_message_is_reply(NULL)", !busbar_message_is_reply(NULL));
    CHECK("busbar_message_wants_us_to_reply(NULL)", !busbar_message_wants_us_to_reply(NULL));
    n = 99;
    CHECK("busbar_message_handles(NULL)", busbar_message_handles(NULL, &n) == NULL);
    CHECK_NUM("busbar_message_handles(NULL) count", n, 0);
    CHECK_NUM("busbar_message_destination(NULL)", busbar_message_destination(NULL), 0);
    CHECK_NUM("busbar_message_fd_count(NULL)", busbar_message_fd_count(NULL), 0);
    CHECK_RC("busbar_message_fd(NULL, 0)", busbar_message_fd(NULL, 0), -1);
    busbar_message_free(NULL);
}

/* ----- main ------------------------------------------------------------------- */

/* busbar_recv_batch, busbar_bus_pattern_replier, busbar_set_kbus_compat. */
static void test_batch_recv_and_kbus(busbar_bus *bus)
{
    busbar_endpoint *a = open_ep(bus), *b = open_ep(bus);
    MUST("bind $.rb", busbar_bind(b, "$.rb", false));
    busbar_message *got[4] = {NULL, NULL, NULL, NULL};
    size_t n = 99;
    CHECK_RC("recv_batch with nothing queued, timeout 0", busbar_recv_batch(b, 4, 0, got, &n), -EAGAIN);
    CHECK_NUM("count 0", n, 0);
    CHECK_RC("recv_batch with nothing queued, 10 ms", busbar_recv_batch(b, 4, 10, got, &n), -ETIMEDOUT);
    CHECK_RC("recv_batch max 0", busbar_recv_batch(b, 0, 0, got, &n), -EINVAL);
    CHECK_RC("recv_batch NULL array", busbar_recv_batch(b, 4, 0, NULL, &n), -EINVAL);
    CHECK_RC("recv_batch NULL count", busbar_recv_batch(b, 4, 0, got, NULL), -EINVAL);
    for (int i = 0; i < 3; i++)
        MUST("announce", announce(a, "$.rb", "x", NULL));
    CHECK_RC("recv_batch takes the three", busbar_recv_batch(b, 4, GUARD_MS, got, &n), 0);
    CHECK_NUM("three of them", n, 3);
    for (size_t i = 0; i < n; i++) {
        CHECK_STR("each is $.rb", busbar_message_name(got[i]), "$.rb");
        busbar_message_free(got[i]);
    }
    /* Exact-pattern replier, against the resolving lookup. */
    MUST("bind replier $.pr.*", busbar_bind(b, "$.pr.*", true));
    uint32_t who = 99;
    CHECK_RC("pattern_replier $.pr.*", busbar_bus_pattern_replier(bus, "$.pr.*", &who), 0);
    CHECK_NUM("is b", who, busbar_endpoint_id(b));
    CHECK_RC("pattern_replier $.pr.x", busbar_bus_pattern_replier(bus, "$.pr.x", &who), 0);
    CHECK_NUM("nobody bound exactly that", who, 0);
    CHECK_RC("find_replier $.pr.x", busbar_bus_find_replier(bus, "$.pr.x", &who), 0);
    CHECK_NUM("but a request would reach b", who, busbar_endpoint_id(b));
    CHECK_RC("pattern_replier of a bad pattern", busbar_bus_pattern_replier(bus, "bad", &who), -EBADMSG);
    CHECK_RC("pattern_replier NULL out", busbar_bus_pattern_replier(bus, "$.pr.*", NULL), -EINVAL);
    /* KBUS compatibility: a failed send takes a serial. */
    bool previous = true;
    CHECK_RC("set_kbus_compat on", busbar_set_kbus_compat(a, true, &previous), 0);
    CHECK("it was off", !previous);
    busbar_msg_id before;
    MUST("announce", announce(a, "$.rb.none", "", &before));
    CHECK_RC("a request nobody answers", busbar_request(a, "$.nobody.here", NULL, 0, NULL), -EADDRNOTAVAIL);
    CHECK_NUM("took a serial all the same", ep_stats(a).last_sent.serial, before.serial + 1);
    CHECK_RC("set_kbus_compat off", busbar_set_kbus_compat(a, false, &previous), 0);
    CHECK("it was on", previous);
    MUST("unbind", busbar_unbind(b, "$.pr.*", true));
    MUST("unbind", busbar_unbind(b, "$.rb", false));
    close_ep(a);
    close_ep(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s in-process | SOCKET_PATH\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    is_daemon = strcmp(argv[1], "in-process") != 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bbapi.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    atexit(remove_tmpdir);

    /* First, while this is the only thread: it changes the environment. */
    test_connect(argv[1]);
    struct timeout_job tjob;
    memset(&tjob, 0, sizeof tjob);
    pthread_t tthread = start_timeout_check(&tjob);

    test_errors();
    test_null_message();

    busbar_bus *bus0 = NULL;
    if (is_daemon)
        MUST("busbar_bus_connect", busbar_bus_connect(argv[1], &bus0));
    else
        MUST("busbar_bus_in_process", busbar_bus_in_process(&bus0));

    busbar_bus *bus = test_bus(bus0);
    test_bus_settings(bus);
    test_find_replier(bus);
    test_names_and_stats(bus);
    test_endpoints(bus);
    test_bind(bus);
    test_send_struct(bus);
    test_send_errors(bus);
    test_all_or_wait(bus);
    test_batch(bus);
    test_call(bus);
    test_reply_then_recv(bus);
    test_recv(bus);
    test_readiness(bus);
    test_settings(bus);
    test_bind_events(bus);
    test_endpoint_stats(bus);
    test_nodes(bus);
    test_fds(bus);
    test_batch_recv_and_kbus(bus);

    busbar_bus_stats bs;
    MUST("busbar_bus_get_stats", busbar_bus_get_stats(bus, &bs, NULL, 0));
    CHECK_NUM("every endpoint closed at the end", bs.endpoints, 0);
    CHECK_NUM("no binding left at the end", bs.bindings, 0);
    busbar_bus_free(bus);
    busbar_bus_free(bus0);

    finish_timeout_check(tthread, &tjob);

    if (n_failed) {
        printf("FAILED %d of %d checks\n", n_failed, n_checks);
        return 1;
    }
    printf("ok %d checks\n", n_checks);
    return 0;
}
