/*
 * api_settings.c: the C API test, part: endpoint settings, replier bind
 * events, endpoint statistics.
 */

#include "api.h"

/* ----- endpoint settings ----------------------------------------------------- */

void test_settings(busbar_bus *bus)
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
static void check_bind_event(const char *file, int line, busbar_message *m, uint32_t is_bind, uint32_t binder,
                             const char *name)
{
    check_str_(file, line, "a bind event's name", busbar_message_name(m), NAME_BIND_EVENT);
    check_num_(file, line, "a bind event's flags", busbar_message_flags(m),
               BUSBAR_SYNTHETIC | BUSBAR_ALL_OR_FAIL);
    check_num_(file, line, "a bind event's from", busbar_message_from(m), 0);
    check_num_(file, line, "a bind event's to", busbar_message_to(m), 0);
    size_t len = 0;
    const uint8_t *d = busbar_message_data(m, &len);
    size_t nl = strlen(name);
    check_true_(file, line, "a bind event's data length", d && len >= 12 + nl && len % 4 == 0);
    if (!d || len < 12 + nl)
        return;
    check_num_(file, line, "a bind event's is_bind", le32(d), is_bind);
    check_num_(file, line, "a bind event's binder", le32(d + 4), binder);
    check_num_(file, line, "a bind event's name_len", le32(d + 8), nl);
    check_true_(file, line, "a bind event's name", memcmp(d + 12, name, nl) == 0);
}

void test_bind_events(busbar_bus *bus)
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
    check_bind_event(__FILE__, __LINE__, m, 1, busbar_endpoint_id(r), "$.be.x");
    busbar_message_free(m);
    CHECK_EMPTY(e, "one event per existing replier");

    CHECK_RC("bind a replier with events on", busbar_bind(r2, "$.be.y", true), 0);
    m = TAKE(e, "the bind event");
    check_bind_event(__FILE__, __LINE__, m, 1, busbar_endpoint_id(r2), "$.be.y");
    busbar_message_free(m);
    CHECK_RC("unbind a replier with events on", busbar_unbind(r2, "$.be.y", true), 0);
    m = TAKE(e, "the unbind event");
    check_bind_event(__FILE__, __LINE__, m, 0, busbar_endpoint_id(r2), "$.be.y");
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
    check_bind_event(__FILE__, __LINE__, m, 0, rid, "$.be.x");
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

void test_endpoint_stats(busbar_bus *bus)
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
