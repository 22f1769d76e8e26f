/*
 * requester: asks $.clock.time for the time and prints the answer.
 *
 *   ./requester [SOCKET]    (default: the default busbar socket)
 *
 * The bus guarantees a reply: if the replier goes away (or closes without
 * answering), the reply is a synthetic one from the bus.
 */
#include <busbar.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    busbar_bus *bus;
    busbar_endpoint *ep;
    busbar_message *reply = NULL;
    int rc = busbar_bus_connect(argc > 1 ? argv[1] : NULL, &bus);
    if (rc < 0) {
        fprintf(stderr, "connect: %s\n", busbar_strerror(rc));
        return 1;
    }
    rc = busbar_endpoint_open(bus, &ep);
    if (rc < 0) {
        fprintf(stderr, "open: %s\n", busbar_strerror(rc));
        busbar_bus_free(bus);
        return 1;
    }

    rc = busbar_call(ep, "$.clock.time", NULL, 0, 5000, &reply);
    if (rc < 0) {
        /* -EADDRNOTAVAIL: nobody serves $.clock.time; -ETIMEDOUT: no answer yet. */
        fprintf(stderr, "call: %s\n", busbar_strerror(rc));
    } else if (busbar_message_is_synthetic(reply)) {
        /* $.KBUS.Replier.GoneAway, .Ignored or .Unbound */
        fprintf(stderr, "the replier went away (%s)\n", busbar_message_name(reply));
        rc = 1;
    } else {
        size_t len;
        const uint8_t *data = busbar_message_data(reply, &len);
        printf("the time is %.*s\n", (int)len, (const char *)data);
    }
    busbar_message_free(reply);
    busbar_endpoint_close(ep);
    busbar_bus_free(bus);
    return rc != 0;
}
