/*
 * api_nodes.c: the C API test, part: nodes and handles, file descriptors,
 * NULL messages.
 */

#include "api.h"

/* ----- nodes and handles ------------------------------------------------- */

void test_nodes(busbar_bus *bus)
{
    busbar_endpoint *a = open_ep(bus), *b = open_ep(bus), *l = open_ep(bus);
    uint32_t aid = busbar_endpoint_id(a), bid = busbar_endpoint_id(b);
    uint64_t h = 0;
    MUST("bind", busbar_bind(b, "$.node.carry", false));
    MUST("bind", busbar_bind(l, "$.node.*", false));

    CHECK_RC("busbar_create_node", busbar_create_node(a, &h), 0);
    CHECK("a handle is not 0", h != 0);
    busbar_endpoint_stats st = ep_stats(a);
    CHECK_NUM("owner stats: nodes", st.nodes, 1);
    CHECK_NUM("owner stats: handles", st.handles, 1);
    CHECK_RC("busbar_create_node(NULL endpoint)", busbar_create_node(NULL, &h), -EINVAL);

    /* Carry the handle to b (and l, which listens too). */
    busbar_outgoing o = {0};
    o.name = "$.node.carry";
    o.handles = &h;
    o.handle_count = 1;
    CHECK_RC("send a message carrying a handle", busbar_send(a, &o, NULL), 0);
    busbar_message *m = TAKE(b, "the message carrying the handle");
    size_t n = 0;
    const uint64_t *hs = busbar_message_handles(m, &n);
    CHECK_NUM("busbar_message_handles count", n, 1);
    uint64_t hb = hs && n == 1 ? hs[0] : 0;
    CHECK("the receiver's handle is not 0", hb != 0);
    CHECK("busbar_message_handles is not copied", busbar_message_handles(m, NULL) == hs);
    busbar_message_free(m);
    m = TAKE(l, "the listener's copy carrying the handle");
    hs = busbar_message_handles(m, &n);
    uint64_t hl = hs && n == 1 ? hs[0] : 0;
    CHECK("the listener's handle is not 0", hl != 0);
    busbar_message_free(m);
    CHECK_RC("the listener releases its handle", busbar_release_handle(l, hl), 0);
    CHECK_NUM("receiver stats: handles", ep_stats(b).handles, 1);

    /* Send to the node through the handle. */
    memset(&o, 0, sizeof o);
    o.name = "$.node.call";
    o.data = bytes("ping");
    o.data_len = 4;
    o.to_handles = &hb;
    o.to_handle_count = 1;
    busbar_msg_id id = NO_ID;
    CHECK_RC("send to a node (to_handles)", busbar_send(b, &o, &id), 0);
    m = TAKE(a, "the message to the node");
    CHECK_STR("its name", busbar_message_name(m), "$.node.call");
    CHECK_NUM("busbar_message_destination: the owner's handle", busbar_message_destination(m), h);
    CHECK_NUM("its from", busbar_message_from(m), bid);
    CHECK_ID("its id", busbar_message_id(m), id);
    CHECK_DATA("its data", m, "ping");
    busbar_message_free(m);
    CHECK_EMPTY(l, "listeners do not see messages to nodes");
    uint64_t two[2] = {hb, hb};
    o.to_handles = two;
    o.to_handle_count = 2;
    CHECK_RC("to_handles with a duplicate", busbar_send(b, &o, NULL), -EINVAL);
    uint64_t nothere = 424242;
    o.to_handles = &nothere;
    o.to_handle_count = 1;
    CHECK_RC("to_handles with a handle we do not hold", busbar_send(b, &o, NULL), -ENOENT);
    o.to_handles = &hb;
    o.flags = BUSBAR_WANT_A_REPLY;
    CHECK_RC("a request to a node", busbar_send(b, &o, NULL), -EINVAL);

    /* Releasing. */
    CHECK_RC("the owner releases its last reference to a live node", busbar_release_handle(a, h),
             -EBUSY);
    CHECK_RC("release a handle we do not hold", busbar_release_handle(a, nothere), -ENOENT);
    CHECK_RC("busbar_release_handle(NULL endpoint)", busbar_release_handle(NULL, h), -EINVAL);
    CHECK_RC("the holder releases its handle", busbar_release_handle(b, hb), 0);
    m = TAKE(a, "the release notice");
    CHECK_STR("its name", busbar_message_name(m), "$.KBUS.Node.Released");
    CHECK_NUM("its destination", busbar_message_destination(m), h);
    CHECK("it is synthetic", busbar_message_is_synthetic(m));
    busbar_message_free(m);
    CHECK_RC("release it again", busbar_release_handle(b, hb), -ENOENT);

    /* Carry it again: a new handle id (never reused). */
    memset(&o, 0, sizeof o);
    o.name = "$.node.carry";
    o.handles = &h;
    o.handle_count = 1;
    MUST("send", busbar_send(a, &o, NULL));
    m = TAKE(b, "the handle again");
    hs = busbar_message_handles(m, &n);
    uint64_t hb2 = hs && n == 1 ? hs[0] : 0;
    CHECK("a new handle id", hb2 != 0 && hb2 != hb);
    busbar_message_free(m);
    m = TAKE(l, "the listener's copy again");
    hs = busbar_message_handles(m, &n);
    hl = hs && n == 1 ? hs[0] : 0;
    busbar_message_free(m);
    MUST("release", busbar_release_handle(l, hl));

    /* Destroying. */
    CHECK_RC("destroy a node we do not own", busbar_destroy_nodes(b, &hb2, 1), -EPERM);
    uint64_t dup[2] = {h, h};
    CHECK_RC("destroy with a duplicate", busbar_destroy_nodes(a, dup, 2), -EINVAL);
    CHECK_RC("destroy an unknown handle", busbar_destroy_nodes(a, &nothere, 1), -ENOENT);
    CHECK_RC("busbar_destroy_nodes(NULL, 1)", busbar_destroy_nodes(a, NULL, 1), -EINVAL);
    CHECK_RC("busbar_destroy_nodes(NULL endpoint)", busbar_destroy_nodes(NULL, &h, 1), -EINVAL);
    CHECK_RC("busbar_destroy_nodes", busbar_destroy_nodes(a, &h, 1), 0);
    m = TAKE(b, "the holder's destroyed notice");
    CHECK_STR("its name", busbar_message_name(m), "$.KBUS.Node.Destroyed");
    CHECK_NUM("its destination (the holder's handle)", busbar_message_destination(m), hb2);
    CHECK_NUM("its from (the owner)", busbar_message_from(m), aid);
    CHECK("it is synthetic", busbar_message_is_synthetic(m));
    busbar_message_free(m);
    m = TAKE(a, "the owner's destroyed notice");
    CHECK_STR("its name", busbar_message_name(m), "$.KBUS.Node.Destroyed");
    CHECK_NUM("its destination (the owner's handle)", busbar_message_destination(m), h);
    busbar_message_free(m);
    CHECK_RC("destroy it again", busbar_destroy_nodes(a, &h, 1), -EINVAL);
    memset(&o, 0, sizeof o);
    o.name = "$.node.call";
    o.to_handles = &hb2;
    o.to_handle_count = 1;
    CHECK_RC("send to a destroyed node", busbar_send(b, &o, NULL), 0);
    CHECK_EMPTY(a, "a message to a destroyed node is discarded");
    CHECK_NUM("owner stats: no live node", ep_stats(a).nodes, 0);
    CHECK_RC("the owner may release a destroyed node's handle", busbar_release_handle(a, h), 0);
    CHECK_RC("the holder releases its handle", busbar_release_handle(b, hb2), 0);
    CHECK_NUM("owner stats: no handle", ep_stats(a).handles, 0);
    CHECK_NUM("holder stats: no handle", ep_stats(b).handles, 0);
    CHECK_EMPTY(l, "the listener saw only the named messages");
    close_ep(a);
    close_ep(b);
    close_ep(l);
}

/* ----- file descriptors ---------------------------------------------------- */

void test_fds(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    MUST("bind", busbar_bind(l, "$.fd.*", false));
    const char *text = "written into a memfd";
    int mfd = memfd_create("busbar-api-test", MFD_CLOEXEC);
    MUST("memfd_create", mfd < 0 ? -errno : 0);
    MUST("write", write(mfd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -EIO);
    int p[2];
    MUST("pipe", pipe(p) < 0 ? -errno : 0);
    MUST("write", write(p[1], "through a pipe", 14) == 14 ? 0 : -EIO);
    close(p[1]);

    int fds[2] = {mfd, p[0]};
    busbar_outgoing o = {0};
    o.name = "$.fd.x";
    o.fds = fds;
    o.fd_count = 2;
    CHECK_RC("send a message carrying a memfd and a pipe", busbar_send(s, &o, NULL), 0);
    close(mfd);
    close(p[0]);
    busbar_message *m = TAKE(l, "the message carrying fds");
    CHECK_NUM("busbar_message_fd_count", busbar_message_fd_count(m), 2);
    int f0 = busbar_message_fd(m, 0), f1 = busbar_message_fd(m, 1);
    CHECK("busbar_message_fd(0) is an fd", f0 >= 0);
    CHECK("busbar_message_fd(1) is an fd", f1 >= 0);
    CHECK_RC("busbar_message_fd(2)", busbar_message_fd(m, 2), -1);
    CHECK_NUM("the same fd each time", busbar_message_fd(m, 0), f0);
    char buf[64] = {0};
    ssize_t n = f0 >= 0 ? pread(f0, buf, sizeof buf - 1, 0) : -1;
    CHECK_NUM("bytes read from the memfd", n, strlen(text));
    CHECK_STR("what the memfd holds", buf, text);
    memset(buf, 0, sizeof buf);
    n = f1 >= 0 ? read(f1, buf, sizeof buf - 1) : -1;
    CHECK_NUM("bytes read from the pipe", n, 14);
    CHECK_STR("what came through the pipe", buf, "through a pipe");
    n = f1 >= 0 ? read(f1, buf, sizeof buf - 1) : -1;
    CHECK_NUM("the pipe's writers are all closed (EOF)", n, 0);
    /* Keep one past the message with dup. */
    int kept = f0 >= 0 ? dup(f0) : -1;
    busbar_message_free(m);
    memset(buf, 0, sizeof buf);
    n = kept >= 0 ? pread(kept, buf, sizeof buf - 1, 0) : -1;
    CHECK_STR("a dup of the fd outlives the message", buf, text);
    if (kept >= 0)
        close(kept);
    close_ep(s);
    close_ep(l);
}

/* ----- NULL messages --------------------------------------------------------- */

void test_null_message(void)
{
    size_t n = 99;
    CHECK_ID("busbar_message_id(NULL)", busbar_message_id(NULL), NO_ID);
    CHECK_ID("busbar_message_in_reply_to(NULL)", busbar_message_in_reply_to(NULL), NO_ID);
    CHECK_NUM("busbar_message_to(NULL)", busbar_message_to(NULL), 0);
    CHECK_NUM("busbar_message_from(NULL)", busbar_message_from(NULL), 0);
    CHECK_NUM("busbar_message_orig_from(NULL).network", busbar_message_orig_from(NULL).network, 0);
    CHECK_NUM("busbar_message_orig_from(NULL).local", busbar_message_orig_from(NULL).local, 0);
    CHECK_NUM("busbar_message_final_to(NULL).network", busbar_message_final_to(NULL).network, 0);
    CHECK_NUM("busbar_message_final_to(NULL).local", busbar_message_final_to(NULL).local, 0);
    CHECK_NUM("busbar_message_flags(NULL)", busbar_message_flags(NULL), 0);
    CHECK_STR("busbar_message_name(NULL)", busbar_message_name(NULL), "");
    CHECK("busbar_message_data(NULL)", busbar_message_data(NULL, &n) == NULL);
    CHECK_NUM("busbar_message_data(NULL) length", n, 0);
    busbar_creds c = busbar_message_creds(NULL);
    CHECK("busbar_message_creds(NULL) is zero", c.pid == 0 && c.uid == 0 && c.gid == 0);
    CHECK_NUM("busbar_message_lost(NULL)", busbar_message_lost(NULL), 0);
    CHECK("busbar_message_is_synthetic(NULL)", !busbar_message_is_synthetic(NULL));
    CHECK("busbar_message_is_request(NULL)", !busbar_message_is_request(NULL));
    CHECK("busbar_message_is_reply(NULL)", !busbar_message_is_reply(NULL));
    CHECK("busbar_message_wants_us_to_reply(NULL)", !busbar_message_wants_us_to_reply(NULL));
    n = 99;
    CHECK("busbar_message_handles(NULL)", busbar_message_handles(NULL, &n) == NULL);
    CHECK_NUM("busbar_message_handles(NULL) count", n, 0);
    CHECK_NUM("busbar_message_destination(NULL)", busbar_message_destination(NULL), 0);
    CHECK_NUM("busbar_message_fd_count(NULL)", busbar_message_fd_count(NULL), 0);
    CHECK_RC("busbar_message_fd(NULL, 0)", busbar_message_fd(NULL, 0), -1);
    busbar_message_free(NULL);
}
