/*
 * replier: answers $.clock.time with the local time.
 *
 *   ./replier [SOCKET]      (default: the default busbar socket)
 *
 * Prints "ready" once bound, then serves until killed.
 */
#define _POSIX_C_SOURCE 200809L
#include <busbar.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

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
        rc = busbar_bind(ep, "$.clock.time", true);
    if (rc < 0) {
        fprintf(stderr, "replier: %s\n", busbar_strerror(rc));
        busbar_endpoint_close(ep);
        busbar_bus_free(bus);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    busbar_message *request;
    while ((rc = busbar_recv(ep, -1, &request)) == 0) {
        if (busbar_message_wants_us_to_reply(request)) {
            char now[64];
            time_t t = time(NULL);
            struct tm tm;
            strftime(now, sizeof now, "%Y-%m-%d %H:%M:%S %z", localtime_r(&t, &tm));
            rc = busbar_reply(ep, request, (const uint8_t *)now, strlen(now), NULL);
            if (rc < 0) /* e.g. -EADDRNOTAVAIL: the requester has gone */
                fprintf(stderr, "reply: %s\n", busbar_strerror(rc));
        }
        busbar_message_free(request);
    }
    fprintf(stderr, "recv: %s\n", busbar_strerror(rc));
    busbar_endpoint_close(ep);
    busbar_bus_free(bus);
    return 1;
}
