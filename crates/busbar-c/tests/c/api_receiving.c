/*
 * api_receiving.c: the C API test, part: receiving, waiting and readiness;
 * batches of receives; exact-pattern repliers; KBUS compatibility.
 */

#include "api.h"

/* ----- receiving and waiting --------------------------------------------- */

struct announce_job {
    busbar_endpoint *ep;
    int rc;
};

static void *announce_later(void *arg)
{
    struct announce_job *job = arg;
    job->rc = announce(job->ep, "$.recv.wake", "wake", NULL);
    return NULL;
}

void test_recv(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus), *r = open_ep(bus);
    busbar_message *m = NULL;
    MUST("bind", busbar_bind(l, "$.recv.*", false));
    CHECK_RC("busbar_recv with nothing queued, timeout 0", busbar_recv(l, 0, &m), -EAGAIN);
    CHECK_RC("busbar_recv with nothing queued, a timeout", busbar_recv(l, SHORT_MS, &m), -ETIMEDOUT);
    CHECK("no message on failure", m == NULL);
    CHECK_RC("busbar_recv(NULL message)", busbar_recv(l, 0, NULL), -EINVAL);
    CHECK_RC("busbar_recv(NULL endpoint)", busbar_recv(NULL, 0, &m), -EINVAL);

    MUST("announce", announce(s, "$.recv.a", "1", NULL));
    CHECK_RC("busbar_recv(-1) with a message queued", busbar_recv(l, -1, &m), 0);
    CHECK_STR("it is the message", busbar_message_name(m), "$.recv.a");
    busbar_message_free(m);

    /* A blocked receive woken by another thread's send. */
    struct announce_job job = {s, 1};
    pthread_t t;
    MUST("pthread_create", -pthread_create(&t, NULL, announce_later, &job));
    m = NULL;
    CHECK_RC("a blocking busbar_recv woken by a thread", busbar_recv(l, GUARD_MS, &m), 0);
    pthread_join(t, NULL);
    CHECK_RC("the thread's announce", job.rc, 0);
    CHECK_STR("the thread's message", busbar_message_name(m), "$.recv.wake");
    busbar_message_free(m);

    /* wait_reply leaves other messages queued. */
    MUST("bind", busbar_bind(r, "$.recv.svc", true));
    MUST("bind", busbar_bind(s, "$.other.*", false));
    busbar_msg_id req, req2;
    MUST("request", busbar_request(s, "$.recv.svc", bytes("r"), 1, &req));
    m = NULL;
    CHECK_RC("busbar_wait_reply, timeout 0, not there yet", busbar_wait_reply(s, req, 0, &m), -EAGAIN);
    CHECK_RC("busbar_wait_reply, a timeout, not there", busbar_wait_reply(s, req, SHORT_MS, &m),
             -ETIMEDOUT);
    MUST("announce", announce(r, "$.other.first", "", NULL));
    busbar_message *rq = TAKE(r, "the request");
    MUST("reply", busbar_reply(r, rq, bytes("R"), 1, NULL));
    busbar_message_free(rq);
    MUST("announce", announce(r, "$.other.last", "", NULL));
    CHECK_RC("busbar_wait_reply", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    CHECK_ID("it answers the request", busbar_message_in_reply_to(m), req);
    busbar_message_free(m);
    m = NULL;
    CHECK_RC("busbar_wait_reply for a reply already taken", busbar_wait_reply(s, req, 0, &m), -EINVAL);
    busbar_msg_id unknown = {0, 0x7fffffff};
    CHECK_RC("busbar_wait_reply for an unknown id", busbar_wait_reply(s, unknown, GUARD_MS, &m),
             -EINVAL);
    CHECK_RC("busbar_wait_reply, timeout 0, unknown id", busbar_wait_reply(s, unknown, 0, &m), -EINVAL);
    CHECK_RC("busbar_wait_reply(NULL reply)", busbar_wait_reply(s, req, 0, NULL), -EINVAL);
    CHECK_RC("busbar_wait_reply(NULL endpoint)", busbar_wait_reply(NULL, req, 0, &m), -EINVAL);
    TAKE_NAMED(s, "$.other.first");
    TAKE_NAMED(s, "$.other.last");
    /* A reply taken with timeout 0 once it is there. */
    MUST("request", busbar_request(s, "$.recv.svc", NULL, 0, &req2));
    rq = TAKE(r, "the second request");
    MUST("reply", busbar_reply(r, rq, NULL, 0, NULL));
    busbar_message_free(rq);
    m = NULL;
    CHECK_RC("busbar_wait_reply, timeout 0, reply there", busbar_wait_reply(s, req2, 0, &m), 0);
    CHECK_ID("it answers the second request", busbar_message_in_reply_to(m), req2);
    busbar_message_free(m);
    /* the listener got: a, wake, (request), (reply), (request), (reply) */
    for (int i = 0; i < 4; i++)
        TAKE_NAMED(l, "$.recv.svc");
    CHECK_EMPTY(l, "nothing else for the listener");
    close_ep(s);
    close_ep(l);
    close_ep(r);
}

void test_readiness(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    MUST("bind", busbar_bind(l, "$.ready.a", false));
    int fd = busbar_readiness_fd(l);
    CHECK("busbar_readiness_fd is an fd", fd >= 0);
    CHECK_RC("busbar_readiness_fd(NULL)", busbar_readiness_fd(NULL), -EINVAL);
    CHECK_NUM("not readable with nothing queued", readable(l, 0), 0);
    MUST("announce", announce(s, "$.ready.a", "1", NULL));
    MUST("announce", announce(s, "$.ready.a", "2", NULL));
    CHECK_NUM("readable once a message is queued", readable(l, GUARD_MS), 1);
    CHECK_NUM("still readable (level-triggered)", readable(l, 0), 1);
    TAKE_NAMED(l, "$.ready.a");
    CHECK_NUM("readable while a message is left", readable(l, 0), 1);
    TAKE_NAMED(l, "$.ready.a");
    CHECK_NUM("not readable once the queue is empty", readable(l, 0), 0);
    MUST("announce", announce(s, "$.ready.a", "3", NULL));
    CHECK_NUM("readable again", readable(l, GUARD_MS), 1);
    TAKE_NAMED(l, "$.ready.a");
    CHECK_NUM("not readable again", readable(l, 0), 0);
    CHECK_NUM("the sender has nothing to take", readable(s, 0), 0);
    close_ep(s);
    close_ep(l);
}


/* busbar_recv_batch, busbar_bus_pattern_replier, busbar_set_kbus_compat. */
void test_batch_recv_and_kbus(busbar_bus *bus)
{
    busbar_endpoint *a = open_ep(bus), *b = open_ep(bus);
    MUST("bind $.rb", busbar_bind(b, "$.rb", false));
    busbar_message *got[4] = {NULL, NULL, NULL, NULL};
    size_t n = 99;
    CHECK_RC("recv_batch with nothing queued, timeout 0", busbar_recv_batch(b, 4, 0, got, &n), -EAGAIN);
    CHECK_NUM("count 0", n, 0);
    CHECK_RC("recv_batch with nothing queued, 10 ms", busbar_recv_batch(b, 4, 10, got, &n), -ETIMEDOUT);
    CHECK_RC("recv_batch max 0", busbar_recv_batch(b, 0, 0, got, &n), -EINVAL);
    CHECK_RC("recv_batch NULL array", busbar_recv_batch(b, 4, 0, NULL, &n), -EINVAL);
    CHECK_RC("recv_batch NULL count", busbar_recv_batch(b, 4, 0, got, NULL), -EINVAL);
    for (int i = 0; i < 3; i++)
        MUST("announce", announce(a, "$.rb", "x", NULL));
    CHECK_RC("recv_batch takes the three", busbar_recv_batch(b, 4, GUARD_MS, got, &n), 0);
    CHECK_NUM("three of them", n, 3);
    for (size_t i = 0; i < n; i++) {
        CHECK_STR("each is $.rb", busbar_message_name(got[i]), "$.rb");
        busbar_message_free(got[i]);
    }
    /* Exact-pattern replier, against the resolving lookup. */
    MUST("bind replier $.pr.*", busbar_bind(b, "$.pr.*", true));
    uint32_t who = 99;
    CHECK_RC("pattern_replier $.pr.*", busbar_bus_pattern_replier(bus, "$.pr.*", &who), 0);
    CHECK_NUM("is b", who, busbar_endpoint_id(b));
    CHECK_RC("pattern_replier $.pr.x", busbar_bus_pattern_replier(bus, "$.pr.x", &who), 0);
    CHECK_NUM("nobody bound exactly that", who, 0);
    CHECK_RC("find_replier $.pr.x", busbar_bus_find_replier(bus, "$.pr.x", &who), 0);
    CHECK_NUM("but a request would reach b", who, busbar_endpoint_id(b));
    CHECK_RC("pattern_replier of a bad pattern", busbar_bus_pattern_replier(bus, "bad", &who), -EBADMSG);
    CHECK_RC("pattern_replier NULL out", busbar_bus_pattern_replier(bus, "$.pr.*", NULL), -EINVAL);
    /* KBUS compatibility: a failed send takes a serial. */
    bool previous = true;
    CHECK_RC("set_kbus_compat on", busbar_set_kbus_compat(a, true, &previous), 0);
    CHECK("it was off", !previous);
    busbar_msg_id before;
    MUST("announce", announce(a, "$.rb.none", "", &before));
    CHECK_RC("a request nobody answers", busbar_request(a, "$.nobody.here", NULL, 0, NULL), -EADDRNOTAVAIL);
    CHECK_NUM("took a serial all the same", ep_stats(a).last_sent.serial, before.serial + 1);
    CHECK_RC("set_kbus_compat off", busbar_set_kbus_compat(a, false, &previous), 0);
    CHECK("it was on", previous);
    MUST("unbind", busbar_unbind(b, "$.pr.*", true));
    MUST("unbind", busbar_unbind(b, "$.rb", false));
    close_ep(a);
    close_ep(b);
}
