/*
 * api_buses.c: the C API test, part: buses (creating, settings, finding
 * repliers, names, statistics), endpoints and bindings.
 */

#include "api.h"

/* ----- buses ------------------------------------------------------------ */

/* Makes the bus the rest of the test runs on (a new one, so that counts are
 * exact whatever else uses the daemon's bus 0). */
busbar_bus *test_bus(busbar_bus *bus0)
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

void test_bus_settings(busbar_bus *bus)
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

void test_find_replier(busbar_bus *bus)
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

void test_names_and_stats(busbar_bus *bus)
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

void test_endpoints(busbar_bus *bus)
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

void test_bind(busbar_bus *bus)
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
