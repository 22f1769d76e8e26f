/*
 * api_calls.c: the C API test, part: announce, request, reply and call, with
 * threads; synthetic replies; reply_then_recv.
 */

#include "api.h"

/* ----- announce/request/reply/call, with threads ---------------------------- */

enum serve_mode { SERVE_REPLY, SERVE_CLOSE_UNREAD, SERVE_CLOSE_TAKEN };

struct serve_job {
    busbar_endpoint *ep;
    enum serve_mode mode;
    int rc;
};

static void *serve_one(void *arg)
{
    struct serve_job *job = arg;
    busbar_message *m = NULL;
    switch (job->mode) {
    case SERVE_REPLY:
        job->rc = busbar_recv(job->ep, GUARD_MS, &m);
        if (job->rc == 0) {
            size_t n = 0;
            const uint8_t *d = busbar_message_data(m, &n);
            uint8_t rev[64];
            for (size_t i = 0; i < n && i < sizeof rev; i++)
                rev[i] = d[n - 1 - i];
            job->rc = busbar_reply(job->ep, m, rev, n < sizeof rev ? n : sizeof rev, NULL);
        }
        busbar_message_free(m);
        break;
    case SERVE_CLOSE_UNREAD: {
        /* Wait until the request is queued, then close without reading. */
        int r = readable(job->ep, GUARD_MS);
        job->rc = r == 1 ? 0 : -ETIMEDOUT;
        int c = busbar_endpoint_close(job->ep);
        if (job->rc == 0)
            job->rc = c;
        job->ep = NULL;
        break;
    }
    case SERVE_CLOSE_TAKEN: {
        job->rc = busbar_recv(job->ep, GUARD_MS, &m);
        busbar_message_free(m);
        int c = busbar_endpoint_close(job->ep);
        if (job->rc == 0)
            job->rc = c;
        job->ep = NULL;
        break;
    }
    }
    return NULL;
}

static void check_synthetic(const char *file, int line, busbar_message *m, const char *name, uint32_t from,
                            uint32_t to)
{
    check_str_(file, line, "the synthetic reply's name", busbar_message_name(m), name);
    check_true_(file, line, "busbar_message_is_synthetic", busbar_message_is_synthetic(m));
    check_true_(file, line, "a synthetic reply has the SYNTHETIC flag",
                (busbar_message_flags(m) & BUSBAR_SYNTHETIC) != 0);
    check_true_(file, line, "a synthetic reply is a reply", busbar_message_is_reply(m));
    check_num_(file, line, "the synthetic reply's from (the replier)", busbar_message_from(m), from);
    check_num_(file, line, "the synthetic reply's to (the requester)", busbar_message_to(m), to);
    size_t len = 9;
    busbar_message_data(m, &len);
    check_num_(file, line, "a synthetic reply has no data", len, 0);
}

void test_call(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *l = open_ep(bus);
    uint32_t sid = busbar_endpoint_id(s);
    busbar_message *m = NULL;
    pthread_t t;

    MUST("bind", busbar_bind(l, "$.call.*", false));

    /* announce */
    busbar_msg_id id = NO_ID;
    CHECK_RC("busbar_announce", busbar_announce(s, "$.call.news", bytes("n"), 1, &id), 0);
    m = TAKE(l, "the announcement");
    CHECK_ID("busbar_announce's id", busbar_message_id(m), id);
    busbar_message_free(m);
    CHECK_RC("busbar_announce with no data", busbar_announce(s, "$.call.news", NULL, 0, NULL), 0);
    TAKE_NAMED(l, "$.call.news");
    CHECK_RC("busbar_announce to nobody", busbar_announce(s, "$.nobody.listens", NULL, 0, NULL), 0);
    CHECK_RC("busbar_announce(NULL data, 1)", busbar_announce(s, "$.call.news", NULL, 1, NULL),
             -EINVAL);
    CHECK_RC("busbar_announce(NULL name)", busbar_announce(s, NULL, NULL, 0, NULL), -EINVAL);
    CHECK_RC("busbar_announce to a wildcard", busbar_announce(s, "$.call.*", NULL, 0, NULL), -EBADMSG);
    CHECK_RC("busbar_announce(NULL endpoint)", busbar_announce(NULL, "$.call.x", NULL, 0, NULL),
             -EINVAL);
    CHECK_RC("busbar_request with no replier", busbar_request(s, "$.call.nobody", NULL, 0, NULL),
             -EADDRNOTAVAIL);
    CHECK_RC("busbar_request(NULL name)", busbar_request(s, NULL, NULL, 0, NULL), -EINVAL);
    CHECK_RC("busbar_call with no replier", busbar_call(s, "$.call.nobody", NULL, 0, GUARD_MS, &m),
             -EADDRNOTAVAIL);
    CHECK_RC("busbar_call(NULL reply)", busbar_call(s, "$.call.nobody", NULL, 0, GUARD_MS, NULL),
             -EINVAL);
    CHECK_RC("busbar_reply(NULL request)", busbar_reply(s, NULL, NULL, 0, NULL), -EINVAL);

    /* request / reply with the helpers */
    busbar_endpoint *r = open_ep(bus);
    uint32_t rid = busbar_endpoint_id(r);
    MUST("bind", busbar_bind(r, "$.call.svc", true));
    busbar_msg_id req = NO_ID;
    CHECK_RC("busbar_request", busbar_request(s, "$.call.svc", bytes("abc"), 3, &req), 0);
    busbar_message *lcopy = TAKE(l, "the listener's copy of the request");
    CHECK_RC("busbar_reply from a listener", busbar_reply(l, lcopy, NULL, 0, NULL), -ECONNREFUSED);
    busbar_message_free(lcopy);
    busbar_message *rq = TAKE(r, "the request");
    busbar_msg_id rep = NO_ID;
    CHECK_RC("busbar_reply", busbar_reply(r, rq, bytes("cba"), 3, &rep), 0);
    CHECK_RC("busbar_reply(NULL data, 1)", busbar_reply(r, rq, NULL, 1, NULL), -EINVAL);
    busbar_message_free(rq);
    m = NULL;
    CHECK_RC("busbar_wait_reply", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    CHECK_ID("the reply's id is busbar_reply's", busbar_message_id(m), rep);
    CHECK_DATA("the reply's data", m, "cba");
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");

    /* call: a real reply from another thread */
    struct serve_job job = {r, SERVE_REPLY, 1};
    MUST("pthread_create", -pthread_create(&t, NULL, serve_one, &job));
    m = NULL;
    CHECK_RC("busbar_call answered by a thread", busbar_call(s, "$.call.svc", bytes("xyz"), 3, GUARD_MS,
             &m), 0);
    pthread_join(t, NULL);
    CHECK_RC("the serving thread", job.rc, 0);
    CHECK_DATA("busbar_call's reply", m, "zyx");
    CHECK("busbar_call's reply is real", !busbar_message_is_synthetic(m));
    CHECK_NUM("busbar_call's reply is from the replier", busbar_message_from(m), rid);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");
    TAKE_NAMED(l, "$.call.svc");

    /* call: -ETIMEDOUT, then the reply comes into the ordinary queue */
    m = NULL;
    CHECK_RC("busbar_call that times out", busbar_call(s, "$.call.svc", bytes("t"), 1, SHORT_MS, &m),
             -ETIMEDOUT);
    CHECK("no reply given on timeout", m == NULL);
    rq = TAKE(r, "the request of the call that timed out");
    MUST("reply", busbar_reply(r, rq, bytes("late"), 4, NULL));
    m = TAKE(s, "the late reply, in the ordinary queue");
    CHECK("the late reply is a reply", busbar_message_is_reply(m));
    CHECK_ID("the late reply answers that request", busbar_message_in_reply_to(m),
             busbar_message_id(rq));
    CHECK_DATA("the late reply's data", m, "late");
    busbar_message_free(m);
    busbar_message_free(rq);
    TAKE_NAMED(l, "$.call.svc");
    TAKE_NAMED(l, "$.call.svc");

    /* call: the replier closes with the request unread: GoneAway */
    job.mode = SERVE_CLOSE_UNREAD;
    job.rc = 1;
    MUST("pthread_create", -pthread_create(&t, NULL, serve_one, &job));
    m = NULL;
    CHECK_RC("busbar_call to a replier that closes", busbar_call(s, "$.call.svc", NULL, 0, GUARD_MS, &m),
             0);
    pthread_join(t, NULL);
    CHECK_RC("the closing thread", job.rc, 0);
    check_synthetic(__FILE__, __LINE__, m, "$.KBUS.Replier.GoneAway", rid, sid);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");
    CHECK_EMPTY(l, "listeners never see synthetic replies");

    /* call: the replier takes the request and closes: Ignored */
    r = open_ep(bus);
    rid = busbar_endpoint_id(r);
    MUST("bind", busbar_bind(r, "$.call.svc", true));
    struct serve_job job2 = {r, SERVE_CLOSE_TAKEN, 1};
    MUST("pthread_create", -pthread_create(&t, NULL, serve_one, &job2));
    m = NULL;
    CHECK_RC("busbar_call to a replier that takes and closes",
             busbar_call(s, "$.call.svc", NULL, 0, GUARD_MS, &m), 0);
    pthread_join(t, NULL);
    CHECK_RC("the taking thread", job2.rc, 0);
    check_synthetic(__FILE__, __LINE__, m, "$.KBUS.Replier.Ignored", rid, sid);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");

    /* request, then the replier closes: GoneAway through busbar_wait_reply */
    r = open_ep(bus);
    rid = busbar_endpoint_id(r);
    MUST("bind", busbar_bind(r, "$.call.svc", true));
    MUST("request", busbar_request(s, "$.call.svc", NULL, 0, &req));
    close_ep(r);
    m = NULL;
    CHECK_RC("busbar_wait_reply after the replier closed", busbar_wait_reply(s, req, GUARD_MS, &m), 0);
    check_synthetic(__FILE__, __LINE__, m, "$.KBUS.Replier.GoneAway", rid, sid);
    CHECK_ID("GoneAway in_reply_to", busbar_message_in_reply_to(m), req);
    CHECK("GoneAway has a fresh serial", busbar_message_id(m).serial > req.serial);
    busbar_message_free(m);
    TAKE_NAMED(l, "$.call.svc");
    close_ep(s);
    close_ep(l);
}

/* busbar_reply_then_recv: a replier's loop. */
void test_reply_then_recv(busbar_bus *bus)
{
    busbar_endpoint *s = open_ep(bus), *r = open_ep(bus);
    MUST("bind", busbar_bind(r, "$.rtr.svc", true));
    MUST("bind", busbar_bind(r, "$.rtr.note", false));
    busbar_msg_id req1, req2, req3;
    MUST("request", busbar_request(s, "$.rtr.svc", bytes("one"), 3, &req1));
    MUST("request", busbar_request(s, "$.rtr.svc", bytes("two"), 3, &req2));
    busbar_message *rq = TAKE(r, "the first request"), *next = NULL, *m = NULL;
    int res = 1;
    CHECK_RC("busbar_reply_then_recv with the next request queued",
             busbar_reply_then_recv(r, rq, bytes("1"), 1, GUARD_MS, &res, &next), 0);
    CHECK_RC("its reply_result", res, 0);
    CHECK_ID("the next message is the second request", busbar_message_id(next), req2);
    busbar_message_free(rq);
    rq = next;
    next = NULL;
    res = 1;
    CHECK_RC("busbar_reply_then_recv with nothing next, timeout 0",
             busbar_reply_then_recv(r, rq, bytes("2"), 1, 0, &res, &next), -EAGAIN);
    CHECK_RC("its reply_result", res, 0);
    CHECK("no next message", next == NULL);
    CHECK_RC("the first reply", busbar_wait_reply(s, req1, GUARD_MS, &m), 0);
    CHECK_DATA("the first reply's data", m, "1");
    busbar_message_free(m);
    m = NULL;
    CHECK_RC("the second reply", busbar_wait_reply(s, req2, GUARD_MS, &m), 0);
    CHECK_DATA("the second reply's data", m, "2");
    busbar_message_free(m);
    res = 1;
    CHECK_RC("busbar_reply_then_recv answering again, a timeout",
             busbar_reply_then_recv(r, rq, NULL, 0, SHORT_MS, &res, &next), -ETIMEDOUT);
    CHECK_RC("its reply_result (answered already)", res, -ECONNREFUSED);
    busbar_message_free(rq);

    /* The requester has gone: the reply fails, the wait still happens. */
    busbar_endpoint *s2 = open_ep(bus);
    MUST("request", busbar_request(s2, "$.rtr.svc", NULL, 0, &req3));
    rq = TAKE(r, "the request of a requester that will close");
    close_ep(s2);
    MUST("announce", announce(s, "$.rtr.note", "next", NULL));
    res = 1;
    CHECK_RC("busbar_reply_then_recv to a requester that closed",
             busbar_reply_then_recv(r, rq, NULL, 0, GUARD_MS, &res, &next), 0);
    CHECK_RC("its reply_result", res, -EADDRNOTAVAIL);
    CHECK_STR("the next message still came", busbar_message_name(next), "$.rtr.note");
    busbar_message_free(next);
    next = NULL;
    CHECK_RC("busbar_reply_then_recv(NULL next)",
             busbar_reply_then_recv(r, rq, NULL, 0, 0, &res, NULL), -EINVAL);
    CHECK_RC("busbar_reply_then_recv(NULL request)",
             busbar_reply_then_recv(r, NULL, NULL, 0, 0, &res, &next), -EINVAL);
    CHECK_RC("busbar_reply_then_recv(NULL endpoint)",
             busbar_reply_then_recv(NULL, rq, NULL, 0, 0, &res, &next), -EINVAL);
    busbar_message_free(rq);
    CHECK_EMPTY(r, "nothing left for the replier");
    close_ep(s);
    close_ep(r);
}
