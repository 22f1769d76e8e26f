/*
 * api_sending.c: the C API test, part: sending with busbar_outgoing, send
 * errors, ALL_OR_WAIT and pending sends, batches.
 */

#include "api.h"

/* ----- sending with busbar_outgoing ------------------------------------- */

void test_send_struct(busbar_bus *bus)
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
void test_send_errors(busbar_bus *bus)
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

void test_all_or_wait(busbar_bus *bus)
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

void test_batch(busbar_bus *bus)
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
