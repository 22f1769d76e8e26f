/*
 * pair.c: two processes through a busbar daemon.
 *
 *   ./pair SOCKET replier NAME    binds NAME as replier, prints "ready",
 *                                 then answers every request with its data
 *                                 reversed, forever; a request whose data is
 *                                 "hang" it takes and never answers
 *   ./pair SOCKET requester NAME  calls NAME with "abc" (wants "cba"), prints
 *                                 "ok"; sends a request with data "hang",
 *                                 prints "sent" once the replier has taken
 *                                 it, then waits (30 s at most) for its
 *                                 reply and prints the reply's name; exits 0
 *                                 if it is $.KBUS.Replier.Ignored
 *
 * The harness kills the replier with SIGKILL after "sent": the bus then
 * answers the request it took with $.KBUS.Replier.Ignored. So that "sent"
 * really means "taken" (not merely queued, which would be answered
 * $.KBUS.Replier.GoneAway), the replier announces NAME.taken after taking
 * the "hang" request and the requester waits for that announcement before
 * printing "sent": no sleep, no race.
 */
#include <busbar.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD_MS 30000

static void check(const char *what, int rc)
{
    if (rc < 0) {
        fprintf(stderr, "pair: %s: %s (%s)\n", what, busbar_strerror(rc), busbar_errno_name(rc));
        exit(1);
    }
}

static void say(const char *line)
{
    printf("%s\n", line);
    fflush(stdout);
}

/* Whether the message's data is exactly `s`. */
static int data_is(const busbar_message *m, const char *s)
{
    size_t len = 0;
    const uint8_t *d = busbar_message_data(m, &len);
    return len == strlen(s) && (len == 0 || memcmp(d, s, len) == 0);
}

static int replier(busbar_endpoint *ep, const char *name, const char *taken)
{
    check("bind", busbar_bind(ep, name, true));
    say("ready");
    for (;;) {
        busbar_message *m;
        check("recv", busbar_recv(ep, -1, &m));
        if (!busbar_message_wants_us_to_reply(m)) {
            busbar_message_free(m);
            continue;
        }
        if (data_is(m, "hang")) {
            /* Taken and never answered: we owe it until we die. */
            busbar_message_free(m);
            check("announce", busbar_announce(ep, taken, NULL, 0, NULL));
            continue;
        }
        size_t len = 0;
        const uint8_t *d = busbar_message_data(m, &len);
        uint8_t *rev = malloc(len ? len : 1);
        if (!rev)
            abort();
        for (size_t i = 0; i < len; i++)
            rev[i] = d[len - 1 - i];
        int rc = busbar_reply(ep, m, rev, len, NULL);
        free(rev);
        busbar_message_free(m);
        if (rc != -EADDRNOTAVAIL) /* a requester that went away is no error */
            check("reply", rc);
    }
}

static int requester(busbar_endpoint *ep, const char *name, const char *taken)
{
    busbar_message *reply;
    check("call", busbar_call(ep, name, (const uint8_t *)"abc", 3, GUARD_MS, &reply));
    if (busbar_message_is_synthetic(reply) || !data_is(reply, "cba")) {
        fprintf(stderr, "pair: the call got %s, not \"cba\"\n", busbar_message_name(reply));
        busbar_message_free(reply);
        return 1;
    }
    busbar_message_free(reply);
    say("ok");

    check("bind", busbar_bind(ep, taken, false));
    busbar_msg_id id;
    check("request", busbar_request(ep, name, (const uint8_t *)"hang", 4, &id));
    busbar_message *m;
    check("wait for the replier to take the request", busbar_recv(ep, GUARD_MS, &m));
    int ok = strcmp(busbar_message_name(m), taken) == 0;
    if (!ok)
        fprintf(stderr, "pair: expected %s, got %s\n", taken, busbar_message_name(m));
    busbar_message_free(m);
    if (!ok)
        return 1;
    say("sent");

    check("wait_reply", busbar_wait_reply(ep, id, GUARD_MS, &reply));
    say(busbar_message_name(reply));
    ok = strcmp(busbar_message_name(reply), "$.KBUS.Replier.Ignored") == 0;
    busbar_message_free(reply);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[2], "replier") != 0 && strcmp(argv[2], "requester") != 0)) {
        fprintf(stderr, "usage: %s SOCKET replier|requester NAME\n", argv[0]);
        return 2;
    }
    const char *name = argv[3];
    char taken[BUSBAR_MAX_NAME_LEN + 1];
    if (snprintf(taken, sizeof taken, "%s.taken", name) >= (int)sizeof taken) {
        fprintf(stderr, "pair: name too long\n");
        return 2;
    }
    busbar_bus *bus;
    busbar_endpoint *ep;
    check("connect", busbar_bus_connect(argv[1], &bus));
    check("open", busbar_endpoint_open(bus, &ep));
    int rc = strcmp(argv[2], "replier") == 0 ? replier(ep, name, taken)
                                              : requester(ep, name, taken);
    busbar_endpoint_close(ep);
    busbar_bus_free(bus);
    return rc;
}
