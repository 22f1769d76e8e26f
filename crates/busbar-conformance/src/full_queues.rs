//! Full queues: skipped listeners (never silently), `EBUSY`, `ALL_OR_FAIL`,
//! `ALL_OR_WAIT` (pending sends, their completion, discard, `send_wait`).

use std::time::Duration;

use busbar::{Bus, Endpoint, Errno, Flags, MessageId, Outgoing, SendOutcome};

use crate::util::*;

fn wait_out(name: &str) -> Outgoing {
    Outgoing::announcement(name, &b"wait"[..]).with_flags(Flags::ALL_OR_WAIT)
}

/// `l` gets limit 1, binds `name`, and is filled by a message from a fresh
/// endpoint; returns that message's id.
fn fill(bus: &Bus, l: &Endpoint, name: &str) -> MessageId {
    l.set_queue_limit(1).unwrap();
    l.bind(name).unwrap();
    let id = open(bus).announce(name, &b"fill"[..]).unwrap();
    assert_eq!(l.stats().unwrap().queued, 1);
    id
}

/// Sends `out` from `s`, expecting it to go pending; returns its id.
#[track_caller]
fn go_pending(bus: &Bus, s: &Endpoint, out: Outgoing) -> MessageId {
    let id = serial(next_serial(bus));
    assert_err(s.send(out), Errno::EAGAIN);
    assert_eq!(s.stats().unwrap().pending_send, Some(id));
    assert_eq!(
        next_serial(bus),
        id.serial + 1,
        "a pending send takes a serial"
    );
    assert_eq!(s.take_send_outcome().unwrap(), None);
    id
}

#[track_caller]
fn assert_outcome(s: &Endpoint, id: MessageId, result: Result<(), Errno>) {
    assert_eq!(
        s.take_send_outcome().unwrap(),
        Some(SendOutcome { id, result })
    );
    assert_eq!(s.take_send_outcome().unwrap(), None);
    assert_eq!(s.stats().unwrap().pending_send, None);
}

/// A full listener is skipped; its next message reports the loss.
pub fn listener_skipped_lost(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, l2] = open_n(&bus);
    l.set_queue_limit(2).unwrap();
    l.bind("$.a").unwrap();
    l2.bind("$.a").unwrap();
    let send = || s.announce("$.a", &b""[..]).unwrap();
    let m: Vec<MessageId> = (0..3).map(|_| send()).collect();
    assert_eq!(ids(&drain(&l2)), m);
    let got = drain(&l);
    assert_eq!(ids(&got), m[..2]);
    assert_eq!((got[0].lost, got[1].lost), (0, 0));
    assert_eq!(l.stats().unwrap().lost, 1);
    let m4 = send();
    let got = next(&l);
    assert_eq!((got.id, got.lost), (m4, 1));
    assert_eq!(next(&l2).lost, 0);
    let m5 = send();
    let got = next(&l);
    assert_eq!((got.id, got.lost), (m5, 0));
    for _ in 0..5 {
        send(); // 2 queued, 3 lost
    }
    assert_eq!(drain(&l).iter().map(|m| m.lost).collect::<Vec<_>>(), [0, 0]);
    let m = send();
    let got = next(&l);
    assert_eq!((got.id, got.lost), (m, 3));
    assert_eq!(l.stats().unwrap().lost, 4);
    let bs = bus.stats().unwrap();
    let ls = bs.endpoint_stats.iter().find(|e| e.id == l.id()).unwrap();
    assert_eq!(ls.lost, 4);
    assert_eq!(l2.stats().unwrap().lost, 0);
}

/// A full replier fails the request with `EBUSY`; nobody gets it.
pub fn replier_full_ebusy(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    r.set_queue_limit(1).unwrap();
    l.bind("$.svc").unwrap();
    open(&bus).request("$.svc", &b""[..]).unwrap();
    drain(&l);
    assert_no_effect(&bus, Errno::EBUSY, || q.request("$.svc", &b""[..]));
    assert_empty(&l);
    assert_eq!(q.stats().unwrap().outstanding_requests, 0);
}

/// `ALL_OR_FAIL`: any full listener means `EBUSY` and nobody gets it.
pub fn all_or_fail(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l1, l2] = open_n(&bus);
    l2.bind("$.a").unwrap();
    let out = || Outgoing::announcement("$.a", &b""[..]).with_flags(Flags::ALL_OR_FAIL);
    // Nobody full: delivered, flag visible.
    fill(&bus, &l1, "$.b");
    drain(&l1);
    l1.bind("$.a").unwrap();
    let id = s.send(out()).unwrap();
    for l in [&l1, &l2] {
        let m = next(l);
        assert_eq!((m.id, m.flags), (id, Flags::ALL_OR_FAIL));
    }
    // l1 full.
    open(&bus).announce("$.b", &b""[..]).unwrap();
    assert_no_effect(&bus, Errno::EBUSY, || s.send(out()));
    assert_empty(&l2);
    assert_eq!(l1.stats().unwrap().lost, 0, "not a loss: nobody got it");
}

/// `ALL_OR_FAIL` requests: a full replier or a full listener, `EBUSY`.
pub fn all_or_fail_replier(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r, l] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    let out = || Outgoing::request("$.svc", &b""[..]).with_flags(Flags::ALL_OR_FAIL);
    fill(&bus, &l, "$.svc");
    assert_no_effect(&bus, Errno::EBUSY, || q.send(out()));
    assert_empty(&r);
    drain(&l);
    r.set_queue_limit(1).unwrap();
    open(&bus).request("$.svc", &b""[..]).unwrap();
    drain(&l);
    assert_no_effect(&bus, Errno::EBUSY, || q.send(out()));
    assert_empty(&l);
}

/// Copies one send plans for an endpoint count against its limit: no queue
/// ever exceeds its limit.
pub fn planned_copies_count(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.set_queue_limit(2).unwrap();
    l.bind("$.a").unwrap();
    l.bind("$.a").unwrap();
    l.bind("$.*").unwrap();
    let id = s.announce("$.a", &b""[..]).unwrap();
    let st = l.stats().unwrap();
    assert_eq!((st.queued, st.lost), (2, 1));
    assert_eq!(ids(&drain(&l)), [id, id]);
    let all = || Outgoing::announcement("$.a", &b""[..]).with_flags(Flags::ALL_OR_FAIL);
    assert_no_effect(&bus, Errno::EBUSY, || s.send(all()));
    l.set_queue_limit(3).unwrap();
    let id = s.send(all()).unwrap();
    assert_eq!(ids(&drain(&l)), [id, id, id]);
}

/// `ALL_OR_WAIT`: `EAGAIN`, pending with a serial; completes when the full
/// listener takes a message, in the order of its completion.
pub fn all_or_wait_recv(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, l2, x] = open_n(&bus);
    let m0 = fill(&bus, &l, "$.a");
    l2.bind("$.a").unwrap();
    drain(&l2);
    let p = go_pending(&bus, &s, wait_out("$.a"));
    assert_empty(&l2);
    // Delivered while p is pending: l2 gets it first, l loses it.
    let mx = x.announce("$.a", &b""[..]).unwrap();
    assert_eq!(s.stats().unwrap().sent, 0);
    assert_eq!(next(&l).id, m0);
    assert_outcome(&s, p, Ok(()));
    let got = drain(&l2);
    assert_eq!(
        ids(&got),
        [mx, p],
        "a pending send takes its place when it completes"
    );
    assert!(p.serial < mx.serial);
    assert_eq!(got[1].flags, Flags::ALL_OR_WAIT);
    assert_eq!(&got[1].data[..], b"wait");
    assert_eq!(got[1].from, s.id());
    let pm = next(&l);
    assert_eq!((pm.id, pm.lost), (p, 1));
    assert_eq!(s.stats().unwrap().sent, 1);
}

/// A pending send completes when the full listener unbinds a binding whose
/// queued message then goes.
pub fn all_or_wait_unbind(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    l.bind("$.a").unwrap();
    fill(&bus, &l, "$.b");
    let p = go_pending(&bus, &s, wait_out("$.a"));
    l.unbind("$.b").unwrap();
    assert_outcome(&s, p, Ok(()));
    assert_eq!(ids(&drain(&l)), [p]);
}

/// A pending send completes when the full endpoint closes.
pub fn all_or_wait_close(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, l2] = open_n(&bus);
    fill(&bus, &l, "$.a");
    l2.bind("$.a").unwrap();
    drain(&l2);
    let p = go_pending(&bus, &s, wait_out("$.a"));
    l.close().unwrap();
    assert_outcome(&s, p, Ok(()));
    assert_eq!(ids(&drain(&l2)), [p]);
}

/// A pending send completes when the full endpoint raises its limit.
pub fn all_or_wait_raise_limit(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    let m0 = fill(&bus, &l, "$.a");
    let p = go_pending(&bus, &s, wait_out("$.a"));
    assert_eq!(l.set_queue_limit(2).unwrap(), 1);
    assert_outcome(&s, p, Ok(()));
    assert_eq!(ids(&drain(&l)), [m0, p]);
}

/// A pending request keeps its reply slot and reaches the replier when it
/// has room; the reply then arrives as usual.
pub fn all_or_wait_request(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [q, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    r.set_queue_limit(1).unwrap();
    let filler = open(&bus);
    filler.request("$.svc", &b""[..]).unwrap();
    let p = go_pending(
        &bus,
        &q,
        Outgoing::request("$.svc", &b""[..]).with_flags(Flags::ALL_OR_WAIT),
    );
    assert_eq!(q.stats().unwrap().outstanding_requests, 1);
    assert_eq!(q.take_reply(p).unwrap(), None);
    next(&r); // the filler's request
    assert_outcome(&q, p, Ok(()));
    let req = next(&r);
    assert_eq!(req.id, p);
    assert_eq!(
        req.flags,
        Flags::WANT_A_REPLY | Flags::WANT_YOU_TO_REPLY | Flags::ALL_OR_WAIT
    );
    let rid = r.reply(&req, &b""[..]).unwrap();
    let rep = q.take_reply(p).unwrap().expect("the reply");
    assert_eq!((rep.id, rep.in_reply_to), (rid, p));
    assert_eq!(q.stats().unwrap().outstanding_requests, 0);
}

/// Pending sends are retried oldest first.
pub fn pending_oldest_first(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s1, s2, l] = open_n(&bus);
    let m0 = fill(&bus, &l, "$.a");
    let p1 = go_pending(&bus, &s1, wait_out("$.a"));
    let p2 = go_pending(&bus, &s2, wait_out("$.a"));
    assert_eq!(next(&l).id, m0);
    assert_outcome(&s1, p1, Ok(()));
    assert_eq!(s2.take_send_outcome().unwrap(), None);
    assert_eq!(s2.stats().unwrap().pending_send, Some(p2));
    assert_eq!(next(&l).id, p1);
    assert_outcome(&s2, p2, Ok(()));
    assert_eq!(next(&l).id, p2);
    assert_empty(&l);
}

/// `discard_send` drops a pending send: nobody gets it, a request's slot is
/// freed and it gets no reply.
pub fn discard_send(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, l2, r] = open_n(&bus);
    assert!(!s.discard_send().unwrap());
    fill(&bus, &l, "$.a");
    l2.bind("$.a").unwrap();
    drain(&l2);
    go_pending(&bus, &s, wait_out("$.a"));
    assert!(s.discard_send().unwrap());
    assert!(!s.discard_send().unwrap());
    assert_eq!(s.take_send_outcome().unwrap(), None);
    assert_eq!(s.stats().unwrap().pending_send, None);
    drain(&l);
    s.announce("$.zzz", &b""[..]).unwrap();
    assert_empty(&l);
    assert_empty(&l2);
    // A discarded request.
    r.bind_replier("$.svc").unwrap();
    r.set_queue_limit(1).unwrap();
    open(&bus).request("$.svc", &b""[..]).unwrap();
    let p = go_pending(
        &bus,
        &s,
        Outgoing::request("$.svc", &b""[..]).with_flags(Flags::ALL_OR_WAIT),
    );
    assert_eq!(s.stats().unwrap().outstanding_requests, 1);
    assert!(s.discard_send().unwrap());
    assert_eq!(s.stats().unwrap().outstanding_requests, 0);
    assert_err(s.take_reply(p), Errno::EINVAL);
    next(&r);
    assert_empty(&r);
    r.close().unwrap();
    assert_empty(&s);
}

/// `send_wait` waits for room and returns the id.
pub fn send_wait_completes(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    // Nothing full: no wait at all.
    let a = s.send_wait(wait_out("$.zzz"), Some(GUARD)).unwrap();
    assert_eq!(a, serial(1));
    let m0 = fill(&bus, &l, "$.a");
    let expect = serial(next_serial(&bus));
    let got = std::thread::scope(|sc| {
        let t = sc.spawn(|| s.send_wait(wait_out("$.a"), Some(GUARD)));
        wait_until("the send to go pending", || {
            s.stats().unwrap().pending_send.is_some()
        });
        assert_eq!(next(&l).id, m0);
        t.join().unwrap()
    });
    assert_eq!(got, Ok(expect));
    assert_eq!(next(&l).id, expect);
    assert_eq!(s.take_send_outcome().unwrap(), None, "send_wait took it");
    assert_eq!(s.stats().unwrap().pending_send, None);
}

/// `send_wait` sends with `ALL_OR_WAIT` whatever the message's own flags:
/// a plain announcement to a full queue waits for room instead of being
/// lost there, and one flagged `ALL_OR_FAIL` is refused.
pub fn send_wait_adds_all_or_wait(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    let m0 = fill(&bus, &l, "$.a");
    let expect = serial(next_serial(&bus));
    let plain = Outgoing::announcement("$.a", &b"plain"[..]);
    let got = std::thread::scope(|sc| {
        let t = sc.spawn(|| s.send_wait(plain, Some(GUARD)));
        wait_until("the send to go pending", || {
            s.stats().unwrap().pending_send.is_some()
        });
        assert_eq!(next(&l).id, m0);
        t.join().unwrap()
    });
    assert_eq!(got, Ok(expect));
    let m = next(&l);
    assert_eq!((m.id, m.lost), (expect, 0), "delivered, nothing lost");
    assert!(m.flags.contains(Flags::ALL_OR_WAIT));
    assert_err(
        s.send_wait(
            Outgoing::announcement("$.a", &b""[..]).with_flags(Flags::ALL_OR_FAIL),
            Some(GUARD),
        ),
        Errno::EINVAL,
    );
    assert_empty(&l);
}

/// `send_wait` with a timeout: `ETIMEDOUT`, and the send is gone.
pub fn send_wait_timeout(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, l2] = open_n(&bus);
    let m0 = fill(&bus, &l, "$.a");
    l2.bind("$.a").unwrap();
    drain(&l2);
    assert_err(
        s.send_wait(wait_out("$.a"), Some(Duration::from_millis(20))),
        Errno::ETIMEDOUT,
    );
    assert_eq!(s.stats().unwrap().pending_send, None);
    assert_eq!(s.take_send_outcome().unwrap(), None);
    assert_eq!(next(&l).id, m0);
    assert_empty(&l);
    assert_empty(&l2);
    let id = s.announce("$.a", &b""[..]).unwrap();
    assert_eq!(next(&l).id, id);
}

/// While a send is pending, any other send from that endpoint is `EALREADY`.
pub fn ealready(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l, r] = open_n(&bus);
    r.bind_replier("$.svc").unwrap();
    fill(&bus, &l, "$.a");
    go_pending(&bus, &s, wait_out("$.a"));
    assert_no_effect(&bus, Errno::EALREADY, || s.announce("$.other", &b""[..]));
    assert_no_effect(&bus, Errno::EALREADY, || s.request("$.svc", &b""[..]));
    assert_no_effect(&bus, Errno::EALREADY, || s.send(wait_out("$.a")));
    // Even an invalid one: EALREADY comes first.
    assert_no_effect(&bus, Errno::EALREADY, || s.announce("bad", &b""[..]));
    // Others are not affected.
    open(&bus).announce("$.other", &b""[..]).unwrap();
    assert!(s.discard_send().unwrap());
    s.announce("$.other", &b""[..]).unwrap();
}

/// Starting a new send forgets an outcome nobody took.
pub fn outcome_forgotten(make: &dyn Fn() -> Bus) {
    let bus = make();
    let [s, l] = open_n(&bus);
    fill(&bus, &l, "$.a");
    let p = go_pending(&bus, &s, wait_out("$.a"));
    drain(&l);
    assert_eq!(s.stats().unwrap().pending_send, None);
    s.announce("$.other", &b""[..]).unwrap();
    assert_eq!(s.take_send_outcome().unwrap(), None);
    // And one that is taken is given once.
    fill(&bus, &l, "$.b");
    let p2 = go_pending(&bus, &s, wait_out("$.b"));
    drain(&l);
    assert_outcome(&s, p2, Ok(()));
    assert_ne!(p, p2);
}
