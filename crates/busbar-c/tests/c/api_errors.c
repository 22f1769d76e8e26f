/*
 * api_errors.c: the C API test, part: busbar_strerror and friends;
 * connecting (busbar_bus_connect and its errors, the handshake timeout).
 */

#include "api.h"

/* ----- errors ----------------------------------------------------------- */

void test_errors(void)
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
pthread_t start_timeout_check(struct timeout_job *job)
{
    pthread_t t;
    snprintf(job->path, sizeof job->path, "%s/silent", tmpdir);
    job->listener = unix_socket_at(job->path, 1);
    MUST("a listening socket for the handshake timeout", job->listener);
    MUST("pthread_create", -pthread_create(&t, NULL, connect_to_silent_daemon, job));
    return t;
}

void finish_timeout_check(pthread_t t, struct timeout_job *job)
{
    pthread_join(t, NULL);
    CHECK_RC("busbar_bus_connect to a daemon that never answers", job->rc, -ETIMEDOUT);
    CHECK("the handshake timeout is about 10 s", job->took_ms >= 9000 && job->took_ms < 60000);
    close(job->listener);
    unlink(job->path);
}

void test_connect(const char *socket_path)
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
