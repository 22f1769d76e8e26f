/*
 * gone.c: the daemon goes away while a call waits (the harness kills it
 * after "ready"). The waiting receive fails, later calls fail, and
 * everything is freed: run under valgrind, no leak and no invalid access.
 *
 *   ./gone SOCKET_PATH
 *
 * Exit 0 if the receive failed with -ECONNRESET or -ESHUTDOWN and the
 * calls after it failed cleanly.
 */
#include <busbar.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    busbar_bus *bus = NULL;
    busbar_endpoint *ep = NULL;
    busbar_message *m = NULL;
    if (busbar_bus_connect(argv[1], &bus) < 0 || busbar_endpoint_open(bus, &ep) < 0 ||
        busbar_bind(ep, "$.gone", false) < 0)
        return 3;
    printf("ready\n");
    fflush(stdout);
    int rc = busbar_recv(ep, 30000, &m);
    printf("recv: %s\n", busbar_errno_name(rc));
    int ok = (rc == -ECONNRESET || rc == -ESHUTDOWN) && m == NULL;
    /* Everything after it fails cleanly too. */
    busbar_msg_id id;
    int sent = busbar_announce(ep, "$.gone", (const uint8_t *)"x", 1, &id);
    printf("send: %s\n", busbar_errno_name(sent));
    ok = ok && sent < 0;
    busbar_endpoint *other = NULL;
    int opened = busbar_endpoint_open(bus, &other);
    printf("open: %s\n", busbar_errno_name(opened));
    ok = ok && opened < 0 && other == NULL;
    busbar_endpoint_close(ep); /* frees the handle whatever it returns */
    busbar_bus_free(bus);
    return ok ? 0 : 1;
}
