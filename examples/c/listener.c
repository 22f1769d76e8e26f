/*
 * listener: prints every message under $.clock (requests and replies
 * included), waiting in poll() on the endpoint's readiness fd, as an event
 * loop would.
 *
 *   ./listener [SOCKET]     (default: the default busbar socket)
 *
 * Prints "ready" once bound, then runs until killed.
 */
#define _POSIX_C_SOURCE 200809L
#include <busbar.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    busbar_bus *bus;
    busbar_endpoint *ep;
    int rc = busbar_bus_connect(argc > 1 ? argv[1] : NULL, &bus);
    if (rc < 0) {
        fprintf(stderr, "connect: %s\n", busbar_strerror(rc));
        return 1;
    }
    rc = busbar_endpoint_open(bus, &ep);
    if (rc == 0)
        rc = busbar_bind(ep, "$.clock.*", false);
    struct pollfd pfd = {.fd = rc == 0 ? busbar_readiness_fd(ep) : rc, .events = POLLIN};
    if (pfd.fd < 0) {
        fprintf(stderr, "listener: %s\n", busbar_strerror(pfd.fd));
        busbar_endpoint_close(ep);
        busbar_bus_free(bus);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    for (;;) {
        /* Readable while something is queued (level-triggered). */
        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            break;
        }
        busbar_message *m;
        while ((rc = busbar_recv(ep, 0, &m)) == 0) {
            size_t len;
            const uint8_t *data = busbar_message_data(m, &len);
            busbar_msg_id id = busbar_message_id(m);
            printf("[%u] %s from %u%s%s: %.*s\n", id.serial, busbar_message_name(m),
                   busbar_message_from(m), busbar_message_is_request(m) ? " (request)" : "",
                   busbar_message_is_reply(m) ? " (reply)" : "", (int)len,
                   data ? (const char *)data : "");
            if (busbar_message_lost(m))
                printf("    (%u messages lost before it: the queue was full)\n",
                       busbar_message_lost(m));
            busbar_message_free(m);
        }
        fflush(stdout);
        if (rc != -EAGAIN) { /* -EAGAIN: drained; anything else is an error */
            fprintf(stderr, "recv: %s\n", busbar_strerror(rc));
            break;
        }
    }
    busbar_endpoint_close(ep);
    busbar_bus_free(bus);
    return 1;
}
