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
#include "api.h"

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
